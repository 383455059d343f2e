/* patterns.c: loads the module's embedded Lua (see patterns.h). */
#include "patterns.h"

#include <lauxlib.h>

void patterns_open(lua_State *L)
{
    int mod = lua_gettop(L);
    for (const embedded_chunk *c = goroutine_lua; c->name; c++) {
        if (luaL_loadbufferx(L, (const char *)c->data, c->len, c->chunkname, "t") != LUA_OK)
            lua_error(L);
        lua_pushvalue(L, mod);
        lua_call(L, 1, 0);
    }
}
