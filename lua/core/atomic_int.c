/* atomic_int.c: AtomicInt (see atomic_int.h). */
#include "atomic_int.h"

#include <stdatomic.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "codec.h"
#include "sync.h"
#include "travel.h"
#include "waitq.h"

typedef struct aint_core {
    atomic_int refs;
    travel_anchor ta; /* its name once it travelled */
    _Atomic lua_Integer v;
} aint_core;

typedef struct aint_ud { /* a sync_ud (waitq.h) */
    aint_core *core;
    sched *s; /* (unused: NULL) */
} aint_ud;

static void core_ref(void *c)
{
    atomic_fetch_add(&((aint_core *)c)->refs, 1);
}

static void core_unref(void *core)
{
    aint_core *c = core;
    if (travel_unref(c, &c->ta, &c->refs))
        free(c);
}

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
    if (u->core)
        core_unref(u->core);
    u->core = NULL;
    return 0;
}

/* ---- travelling to the other VMs of this process (pool tasks): the core
 * is shared, every operation on it is atomic ---- */

static int ai_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    aint_core *c = ((aint_ud *)lua_touserdata(L, idx))->core;
    travel_ctx *tc = call;
    if (tc && tc->obj_encode) {
        /* it leaves the process: the layer's object (Redis) from now on */
        if (c->ta.id)
            return luaL_error(L,
                              "an AtomicInt shared with pool tasks of this process cannot travel "
                              "to %s",
                              tc->where);
        return tc->obj_encode(tc, L, idx, "atomic_int", atomic_load(&c->v), 0);
    }
    return sync_encode_core(L, idx, call, "an AtomicInt", c, &c->ta);
}

static int ai_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)ud;
    travel_ctx *tc = call;
    if (tc && tc->obj_decode)
        return tc->obj_decode(tc, L, data, len);
    return sync_decode_core(L, data, len, call, NULL, ATOMIC_INT_TNAME, "an AtomicInt", core_ref,
                            core_unref);
}

static int g_atomic_int(lua_State *L)
{
    lua_Integer v = lua_isnoneornil(L, 1) ? 0 : sync_check_integer(L, 1);
    aint_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = NULL;
    u->s = NULL;
    luaL_setmetatable(L, ATOMIC_INT_TNAME);
    aint_core *c = malloc(sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    atomic_init(&c->refs, 1);
    c->ta.id = 0;
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
    codec_register_udata(L, ATOMIC_INT_TNAME, ai_encode, ai_decode, NULL);
    lua_pushcfunction(L, g_atomic_int);
    lua_setfield(L, -2, "atomic_int");
}
