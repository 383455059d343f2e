/* once.c: Once (see once.h). The first call runs fn under a waiter whose
 * close (fn returned, raised, or was killed) marks it done and wakes the
 * callers waiting for it. */
#include "once.h"

#include <stdlib.h>

#include <lauxlib.h>

#include "waitq.h"

enum { ONCE_NEW, ONCE_RUNNING, ONCE_DONE };
enum { PH_RUN, PH_WAIT }; /* waiter.phase: the first call's, or a later one's */

typedef struct once_core {
    atomic_int refs;
    travel_anchor ta; /* its name once it travelled */
    sync_lock lock;   /* guards the rest once shared (waitq.h) */
    int state;
    mlist queue; /* later calls waiting for the first one to finish (waiter.node) */
} once_core;

typedef struct once_ud { /* a sync_ud */
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
    if (travel_unref(c, &c->ta, &c->refs)) {
        sync_lock_destroy(&c->lock);
        free(c);
    }
}

/* A waiter closes with the lock held: the first call's (fn returned,
 * raised, or its goroutine was killed) marks the once done and wakes the
 * later calls (those of other VMs even while this VM closes: wake 0); a
 * later call's leaves the queue. */
static void abandon(waiter *w, int wake)
{
    once_core *c = w->core;
    if (w->phase == PH_WAIT) {
        waiter_unlink(w);
        return;
    }
    c->state = ONCE_DONE;
    w->state = W_IDLE;
    waiter *q;
    while ((q = waitq_first(&c->queue)))
        if (wake || q->s != w->s)
            waiter_grant(q, w->s);
        else
            waiter_unlink(q);
}

static const waiter_ops once_ops = {core_ref, core_unref, abandon};

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    waiter *w = (waiter *)ctx;
    if (waiter_take_state(w) == W_QUEUED)
        return waiter_wait(L, w, ctx, wait_k);
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
    sync_enter(&c->lock);
    int st = c->state;
    sync_leave(&c->lock);
    if (st == ONCE_DONE)
        return 0;
    int nargs = lua_gettop(L) - 2;
    luaL_checkstack(L, nargs + 2, "too many arguments");
    waiter *w = waiter_push(L, u->s, c, &once_ops, 0, &c->lock);
    sync_enter(&c->lock);
    st = c->state;
    if (st == ONCE_NEW) {
        c->state = ONCE_RUNNING;
        w->phase = PH_RUN;
        w->state = W_GRANTED; /* its close finishes the once */
    } else if (st == ONCE_RUNNING) {
        w->phase = PH_WAIT;
        waiter_enqueue(&c->queue, w);
    }
    sync_leave(&c->lock);
    if (st == ONCE_DONE)
        return 0;
    if (st == ONCE_RUNNING)
        return waiter_wait(L, w, (lua_KContext)w, wait_k);
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
    sync_enter(&c->lock);
    int st = c->state;
    sync_leave(&c->lock);
    lua_pushstring(L, names[st]);
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
    sync_lock_init(&c->lock);
    c->state = ONCE_NEW;
    mlist_init(&c->queue);
    u->core = c;
    return 1;
}

int once_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    once_core *c = ((once_ud *)lua_touserdata(L, idx))->core;
    if (!call)
        sync_share(L, &c->lock, &c->queue);
    return sync_encode_core(L, idx, call, "a once object", c, &c->ta);
}

int once_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    return sync_decode_core(L, data, len, call, ud, ONCE_TNAME, "a once object", core_ref,
                            core_unref);
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
