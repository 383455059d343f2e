-- build() without a command is a definition error.
task("empty"):description("has no command"):build()
