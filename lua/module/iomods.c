/* iomods.c: the `http` and `exec` modules' entry points and their
 * registration in a VM (see iomods.h). */
#include "iomods.h"

#include <lauxlib.h>

#include "exec.h"
#include "goroutine.h"
#include "http.h"

/* require("http") / require("exec"): also load the goroutine module (the
 * VM's scheduler and its patched coroutine library). */
MUTIRAO_EXPORT int luaopen_http(lua_State *L)
{
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0);
    lua_pop(L, 1);
    return http_open(L, sched_get(L));
}

MUTIRAO_EXPORT int luaopen_exec(lua_State *L)
{
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0);
    lua_pop(L, 1);
    return exec_open(L, sched_get(L));
}

void iomods_open(lua_State *L)
{
    static const luaL_Reg mods[] = {{"http", luaopen_http}, {"exec", luaopen_exec}, {NULL, NULL}};
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    for (const luaL_Reg *m = mods; m->name; m++) {
        lua_pushcfunction(L, m->func);
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 1);
    for (const luaL_Reg *m = mods; m->name; m++) {
        luaL_requiref(L, m->name, m->func, 1);
        lua_pop(L, 1);
    }
}
