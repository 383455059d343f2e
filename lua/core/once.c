/* once.c: Once (see once.h). The first call runs fn under a waiter whose
 * close (fn returned, raised, or was killed) marks it done and wakes the
 * callers waiting for it. */
#include "once.h"

#include <stdlib.h>

#include <lauxlib.h>

#include "waitq.h"

enum { ONCE_NEW, ONCE_RUNNING, ONCE_DONE };

typedef struct once_core {
    atomic_int refs;
    int state;
    glist waiters; /* callers waiting for the first one to finish */
} once_core;

typedef struct once_ud {
    once_core *core;
    sched *s;
} once_ud;

static void core_ref(void *core)
{
    atomic_fetch_add(&((once_core *)core)->refs, 1);
}

static void core_unref(void *core)
{
    once_core *c = core;
    if (atomic_fetch_sub(&c->refs, 1) == 1)
        free(c);
}

/* The first call's waiter is closed: fn returned, raised, or its goroutine
 * was killed. Done either way. */
static void finish(waiter *w, int wake)
{
    once_core *c = w->core;
    c->state = ONCE_DONE;
    w->state = W_IDLE;
    if (wake)
        sched_ready_all(w->s, &c->waiters);
}

static const waiter_ops once_ops = {core_ref, core_unref, finish};

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    once_ud *u = (once_ud *)ctx;
    if (u->core->state != ONCE_DONE)
        return sched_wait(L, u->s, &u->core->waiters, 0, ctx, wait_k);
    return 0;
}

static int call_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return lua_gettop(L) - (int)ctx; /* fn's results; the waiter closes on return */
}

static int once_call(lua_State *L)
{
    once_ud *u = luaL_checkudata(L, 1, ONCE_TNAME);
    once_core *c = u->core;
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (c->state == ONCE_DONE)
        return 0;
    if (c->state == ONCE_RUNNING) {
        lua_settop(L, 1);
        return sched_wait(L, u->s, &c->waiters, 0, (lua_KContext)u, wait_k);
    }
    int nargs = lua_gettop(L) - 2;
    luaL_checkstack(L, nargs + 2, "too many arguments");
    waiter *w = waiter_push(L, u->s, c, &once_ops, 0);
    w->state = W_GRANTED; /* its close finishes the once */
    c->state = ONCE_RUNNING;
    int base = lua_gettop(L);
    for (int i = 2; i < base; i++)
        lua_pushvalue(L, i);
    lua_callk(L, nargs, LUA_MULTRET, base, call_k);
    return call_k(L, LUA_OK, base);
}

static int once_tostring(lua_State *L)
{
    once_core *c = ((once_ud *)luaL_checkudata(L, 1, ONCE_TNAME))->core;
    static const char *const names[] = {"Once(not run)", "Once(running)", "Once(done)"};
    lua_pushstring(L, names[c->state]);
    return 1;
}

static int once_gc(lua_State *L)
{
    once_ud *u = lua_touserdata(L, 1);
    if (u->core)
        core_unref(u->core);
    u->core = NULL;
    return 0;
}

static int g_once(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    once_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = NULL;
    u->s = s;
    luaL_setmetatable(L, ONCE_TNAME);
    once_core *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    atomic_init(&c->refs, 1);
    c->state = ONCE_NEW;
    glist_init(&c->waiters);
    u->core = c;
    return 1;
}

void once_open(lua_State *L, sched *s)
{
    static const luaL_Reg methods[] = {{"call", once_call}, {NULL, NULL}};
    if (luaL_newmetatable(L, ONCE_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, once_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, once_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    lua_pushcclosure(L, g_once, 1);
    lua_setfield(L, -2, "once");
}
