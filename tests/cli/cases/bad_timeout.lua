-- An invalid timeout is rejected where it is written.
task("t"):command(function() end):timeout("5 parsecs"):build()
