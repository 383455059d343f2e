-- Two tasks that succeed, one returning nothing (counts as success).
task("first"):description("says hello"):command(function(this)
    log.info("hello from", this:name(), "-", this:description(), 42)
    return true, "first done"
end):build()
task("second"):command(function() end):build()
