/* travel.c: (process nonce, core address) names for travelling objects. */
#include "travel.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

static atomic_ullong process_nonce;

static unsigned long long nonce(void)
{
    unsigned long long n = atomic_load(&process_nonce);
    if (n == 0) {
        unsigned long long zero = 0;
        n = ((unsigned long long)(uintptr_t)&process_nonce ^
             ((unsigned long long)uv_hrtime() * 0x9e3779b97f4a7c15ull)) |
            1;
        if (!atomic_compare_exchange_strong(&process_nonce, &zero, n))
            n = zero; /* another thread won */
    }
    return n;
}

void travel_pack(lua_State *L, const void *core)
{
    unsigned long long n = nonce();
    char buf[sizeof n + sizeof core];
    memcpy(buf, &n, sizeof n);
    memcpy(buf + sizeof n, &core, sizeof core);
    lua_pushlstring(L, buf, sizeof buf);
}

void *travel_unpack(lua_State *L, const char *data, size_t len, const char *what)
{
    unsigned long long n;
    void *core;
    if (len != sizeof n + sizeof core)
        return NULL;
    memcpy(&n, data, sizeof n);
    if (n != nonce())
        luaL_error(L, "%s cannot travel to another process on this backend", what);
    memcpy(&core, data + sizeof n, sizeof core);
    return core;
}

void travel_new_copies(lua_State *L, const void *key)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}
