/* log.h: the `log` Lua module of task files.
 *
 * log.debug/info/warn/error(...) join their arguments (tostring) with
 * spaces and write one record to stderr: timestamp (ms), level, task context
 * (the label of the goroutine's scope, i.e. the task name, and the goroutine
 * id) and message. Text records are coloured when stderr is a TTY (and
 * NO_COLOR is unset); `--log-format json` writes one JSON object per line
 * instead. The runner configures it and emits its task events through the
 * underscore functions:
 *   _configure{level=, format=}     level: debug|info|warn|error; format: text|json
 *   _event(level, msg, fields)      a record with extra fields (fields.task and
 *                                   fields.goroutine override the context)
 *   _enabled(level)                 whether records of that level are written
 *   _json(value)                    value encoded as JSON (tables: arrays or objects)
 *   _paint(text, style, stream)     text coloured when stream ("stdout"|"stderr")
 *                                   is a TTY; style: red|green|yellow|cyan|dim|bold
 * Settings live in a userdata upvalue of the module's functions (one per
 * VM); nothing is global. */
#ifndef MUTIRAO_LOG_H
#define MUTIRAO_LOG_H

#include <lua.h>

/* require("log"): returns the module table (a new settings block per call). */
int luaopen_mutirao_log(lua_State *L);

/* Sets the global `log` (package.loaded.log too) configured with format
 * ("text"|"json") and level: what a pool VM or a worker's task VM gets
 * (the runner configures the main VM's from Lua). */
void log_global_open(lua_State *L, const char *format, const char *level);

#endif
