/* goroutine.h: entry point of the `goroutine` Lua module. */
#ifndef MUTIRAO_GOROUTINE_H
#define MUTIRAO_GOROUTINE_H

#include <lua.h>

#define MUTIRAO_EXPORT __attribute__((visibility("default")))

/* require("goroutine"): creates the VM's scheduler on first use. */
MUTIRAO_EXPORT int luaopen_goroutine(lua_State *L);
/* require("http"), require("exec") (iomods.c). */
MUTIRAO_EXPORT int luaopen_http(lua_State *L);
MUTIRAO_EXPORT int luaopen_exec(lua_State *L);

#endif
