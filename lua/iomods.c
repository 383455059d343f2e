/* iomods.c: registers the `http` and `exec` modules in a VM (see iomods.h). */
#include "iomods.h"

#include <lauxlib.h>

#include "exec.h"
#include "http.h"

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
