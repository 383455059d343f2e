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
    travel_anchor ta; /* its name once it travelled */
    mutex_core *mu;   /* a reference; its lock guards the queue too (waitq.h) */
    mlist queue;      /* waiters for a signal (waiter.node), FIFO */
} cond_core;

typedef struct cond_ud { /* a sync_ud */
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
    if (travel_unref(c, &c->ta, &c->refs)) {
        mutex_core_unref(c->mu);
        free(c);
    }
}

static void signal_one(cond_core *c, int phase, sched *cur)
{
    waiter *w = waitq_first(&c->queue);
    if (w) {
        w->phase = phase;
        waiter_grant(w, cur);
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
        signal_one(c, PH_SIGNALLED, w->s);
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
    sync_lock *lock = mutex_lock_of(c->mu);
    sync_enter(lock);
    if (w->state == W_QUEUED) {
        sync_leave(lock);
        return waiter_wait(L, w, ctx, wait_k);
    }
    w->state = W_IDLE;
    if (w->phase == PH_RELOCK) { /* granted: the mutex is ours again */
        sync_leave(lock);
        return 0;
    }
    /* signalled: lock the mutex again */
    w->phase = PH_RELOCK;
    if (mutex_try(c->mu, L, w->s)) {
        sync_leave(lock);
        return 0;
    }
    mutex_enqueue(c->mu, w);
    sync_leave(lock);
    return waiter_wait(L, w, ctx, wait_k);
}

static int cond_wait(lua_State *L)
{
    cond_ud *u = check_cond(L);
    cond_core *c = u->core;
    sync_lock *lock = mutex_lock_of(c->mu);
    lua_settop(L, 1);
    sync_enter(lock);
    int locked = mutex_locked(c->mu);
    sync_leave(lock);
    if (!locked)
        return luaL_error(L, "Cond wait with its mutex not locked");
    waiter *w = waiter_push(L, u->s, c, &cond_ops, 0, lock);
    w->phase = PH_SIGNAL;
    sync_enter(lock);
    waiter_enqueue(&c->queue, w);
    mutex_unlock(c->mu, u->s);
    sync_leave(lock);
    return waiter_wait(L, w, (lua_KContext)w, wait_k);
}

static int cond_signal(lua_State *L)
{
    cond_ud *u = check_cond(L);
    sync_lock *lock = mutex_lock_of(u->core->mu);
    sync_enter(lock);
    signal_one(u->core, PH_SIGNALLED, u->s);
    sync_leave(lock);
    return 0;
}

static int cond_broadcast(lua_State *L)
{
    cond_ud *u = check_cond(L);
    cond_core *c = u->core;
    sync_lock *lock = mutex_lock_of(c->mu);
    sync_enter(lock);
    while (!mlist_empty(&c->queue))
        signal_one(c, PH_BROADCAST, u->s);
    sync_leave(lock);
    return 0;
}

static int cond_tostring(lua_State *L)
{
    cond_core *c = check_cond(L)->core;
    size_t n = 0;
    const mlist *p;
    sync_enter(mutex_lock_of(c->mu));
    mlist_foreach (p, &c->queue)
        n++;
    sync_leave(mutex_lock_of(c->mu));
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

int cond_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    cond_core *c = ((cond_ud *)lua_touserdata(L, idx))->core;
    if (!call) { /* its mutex's waiters, then its own (under the same lock) */
        sync_lock *lock = mutex_lock_of(c->mu);
        mlist *n;
        if (!lock->shared)
            mlist_foreach (n, &c->queue)
                waiter_share(L, mlist_entry(n, waiter, node));
        mutex_share(L, c->mu);
    }
    return sync_encode_core(L, idx, call, "a cond", c, &c->ta);
}

int cond_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    return sync_decode_core(L, data, len, call, ud, COND_TNAME, "a cond", core_ref, core_unref);
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
