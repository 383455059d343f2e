/* travel.c: (process nonce, core address) names for travelling objects. */
#include "travel.h"

#include "codec.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
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

static int refuse(lua_State *L, const char *what)
{
    return luaL_error(
        L, "%s cannot travel to another VM or process (it belongs to the VM that made it)", what);
}

static int refuse_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)idx;
    (void)call;
    return refuse(L, ud);
}

static int refuse_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)data;
    (void)len;
    (void)call;
    return refuse(L, ud);
}

void travel_refuse(lua_State *L, const char *tname, const char *what)
{
    codec_register_udata(L, tname, refuse_encode, refuse_decode, (void *)what);
}

#define GUARD_TNAME "goroutine.LocalOnly"

typedef struct guard {
    char what[32];
} guard;

static int guard_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    (void)call;
    return refuse(L, ((guard *)lua_touserdata(L, idx))->what);
}

static int guard_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)data;
    (void)len;
    (void)ud;
    (void)call;
    return refuse(L, "a local object");
}

void travel_push_guard(lua_State *L, const char *what)
{
    guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    snprintf(g->what, sizeof g->what, "%s", what);
    if (luaL_newmetatable(L, GUARD_TNAME))
        codec_register_udata(L, GUARD_TNAME, guard_encode, guard_decode, NULL);
    lua_setmetatable(L, -2);
}
