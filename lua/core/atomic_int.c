/* atomic_int.c: AtomicInt (see atomic_int.h). */
#include "atomic_int.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "sync.h"

typedef struct aint_core {
    atomic_int refs;
    _Atomic lua_Integer v;
} aint_core;

typedef struct aint_ud {
    aint_core *core;
} aint_ud;

static aint_core *check_aint(lua_State *L)
{
    return ((aint_ud *)luaL_checkudata(L, 1, ATOMIC_INT_TNAME))->core;
}

static int ai_add(lua_State *L)
{
    aint_core *c = check_aint(L);
    lua_Integer d = sync_check_integer(L, 2);
    /* signed atomic arithmetic wraps around (C11 7.17.7.5) */
    lua_Integer old = atomic_fetch_add(&c->v, d);
    lua_pushinteger(L, (lua_Integer)((lua_Unsigned)old + (lua_Unsigned)d));
    return 1;
}

static int ai_load(lua_State *L)
{
    lua_pushinteger(L, atomic_load(&check_aint(L)->v));
    return 1;
}

static int ai_store(lua_State *L)
{
    aint_core *c = check_aint(L);
    atomic_store(&c->v, sync_check_integer(L, 2));
    return 0;
}

static int ai_swap(lua_State *L)
{
    aint_core *c = check_aint(L);
    lua_pushinteger(L, atomic_exchange(&c->v, sync_check_integer(L, 2)));
    return 1;
}

static int ai_cas(lua_State *L)
{
    aint_core *c = check_aint(L);
    lua_Integer old = sync_check_integer(L, 2);
    lua_Integer new = sync_check_integer(L, 3);
    lua_pushboolean(L, atomic_compare_exchange_strong(&c->v, &old, new));
    return 1;
}

static int ai_tostring(lua_State *L)
{
    lua_pushfstring(L, "AtomicInt(%I)", atomic_load(&check_aint(L)->v));
    return 1;
}

static int ai_gc(lua_State *L)
{
    aint_ud *u = lua_touserdata(L, 1);
    if (u->core && atomic_fetch_sub(&u->core->refs, 1) == 1)
        free(u->core);
    u->core = NULL;
    return 0;
}

static int g_atomic_int(lua_State *L)
{
    lua_Integer v = lua_isnoneornil(L, 1) ? 0 : sync_check_integer(L, 1);
    aint_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = NULL;
    luaL_setmetatable(L, ATOMIC_INT_TNAME);
    aint_core *c = malloc(sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    atomic_init(&c->refs, 1);
    atomic_init(&c->v, v);
    u->core = c;
    return 1;
}

void atomic_int_open(lua_State *L)
{
    static const luaL_Reg methods[] = {{"add", ai_add},
                                       {"load", ai_load},
                                       {"store", ai_store},
                                       {"swap", ai_swap},
                                       {"compare_and_swap", ai_cas},
                                       {NULL, NULL}};
    if (luaL_newmetatable(L, ATOMIC_INT_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ai_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, ai_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, g_atomic_int);
    lua_setfield(L, -2, "atomic_int");
}
