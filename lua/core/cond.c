/* cond.c: Cond (see cond.h). A wait is one waiter in two phases: queued on
 * the Cond for a signal, then queued on the mutex to lock it again. */
#include "cond.h"

#include <stdlib.h>

#include <lauxlib.h>

#include "mutex.h"
#include "waitq.h"

/* waiter.phase */
enum { PH_SIGNAL, PH_SIGNALLED, PH_BROADCAST, PH_RELOCK };

typedef struct cond_core {
    atomic_int refs;
    mutex_core *mu; /* a reference */
    mlist queue;    /* waiters for a signal (waiter.node), FIFO */
} cond_core;

typedef struct cond_ud {
    cond_core *core;
    sched *s;
} cond_ud;

static void core_ref(void *core)
{
    atomic_fetch_add(&((cond_core *)core)->refs, 1);
}

static void core_unref(void *core)
{
    cond_core *c = core;
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        mutex_core_unref(c->mu);
        free(c);
    }
}

static void signal_one(cond_core *c, int phase)
{
    waiter *w = waitq_first(&c->queue);
    if (w) {
        w->phase = phase;
        waiter_grant(w);
    }
}

static void abandon(waiter *w, int wake)
{
    cond_core *c = w->core;
    if (w->phase == PH_RELOCK) {
        mutex_abandon(c->mu, w, wake);
        return;
    }
    int pass_on = w->state == W_GRANTED && w->phase == PH_SIGNALLED;
    waiter_unlink(w);
    if (wake && pass_on)
        signal_one(c, PH_SIGNALLED);
}

static const waiter_ops cond_ops = {core_ref, core_unref, abandon};

static cond_ud *check_cond(lua_State *L)
{
    return luaL_checkudata(L, 1, COND_TNAME);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    waiter *w = (waiter *)ctx;
    cond_core *c = w->core;
    if (w->state == W_QUEUED)
        return waiter_wait(L, w, ctx, wait_k);
    if (w->phase == PH_RELOCK) {
        w->state = W_IDLE; /* granted: the mutex is ours again */
        return 0;
    }
    /* signalled: lock the mutex again */
    w->state = W_IDLE;
    w->phase = PH_RELOCK;
    if (mutex_try(c->mu, L))
        return 0;
    mutex_enqueue(c->mu, w);
    return waiter_wait(L, w, ctx, wait_k);
}

static int cond_wait(lua_State *L)
{
    cond_ud *u = check_cond(L);
    cond_core *c = u->core;
    lua_settop(L, 1);
    if (!mutex_locked(c->mu))
        return luaL_error(L, "Cond wait with its mutex not locked");
    waiter *w = waiter_push(L, u->s, c, &cond_ops, 0);
    w->phase = PH_SIGNAL;
    waiter_enqueue(&c->queue, w);
    mutex_unlock(c->mu);
    return waiter_wait(L, w, (lua_KContext)w, wait_k);
}

static int cond_signal(lua_State *L)
{
    signal_one(check_cond(L)->core, PH_SIGNALLED);
    return 0;
}

static int cond_broadcast(lua_State *L)
{
    cond_core *c = check_cond(L)->core;
    while (!mlist_empty(&c->queue))
        signal_one(c, PH_BROADCAST);
    return 0;
}

static int cond_tostring(lua_State *L)
{
    cond_core *c = check_cond(L)->core;
    size_t n = 0;
    const mlist *p;
    mlist_foreach (p, &c->queue)
        n++;
    lua_pushfstring(L, "Cond(%I waiting)", (lua_Integer)n);
    return 1;
}

static int cond_gc(lua_State *L)
{
    cond_ud *u = lua_touserdata(L, 1);
    if (u->core)
        core_unref(u->core);
    u->core = NULL;
    return 0;
}

static int g_cond(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    mutex_core *mu = mutex_test(L, 1);
    if (!mu)
        return luaL_typeerror(L, 1, "Mutex or RWMutex");
    cond_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = NULL;
    u->s = s;
    luaL_setmetatable(L, COND_TNAME);
    cond_core *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    atomic_init(&c->refs, 1);
    mutex_core_ref(mu);
    c->mu = mu;
    mlist_init(&c->queue);
    u->core = c;
    return 1;
}

void cond_open(lua_State *L, sched *s)
{
    static const luaL_Reg methods[] = {
        {"wait", cond_wait}, {"signal", cond_signal}, {"broadcast", cond_broadcast}, {NULL, NULL}};
    if (luaL_newmetatable(L, COND_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, cond_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, cond_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    lua_pushcclosure(L, g_cond, 1);
    lua_setfield(L, -2, "cond");
}
