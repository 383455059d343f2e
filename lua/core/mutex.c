/* mutex.c: Mutex and RWMutex (see mutex.h): lock, unlock, try_lock and,
 * for the RWMutex, rlock, runlock, try_rlock. */
#include "mutex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

enum { SIDE_READ = 0, SIDE_WRITE = 1 };

struct mutex_core {
    atomic_int refs;
    travel_anchor ta; /* its name once it travelled */
    sync_lock lock;   /* guards the rest once shared (a Cond's too) */
    int writer;       /* held for writing (a Mutex: locked) */
    uint64_t owner;   /* the goroutine that took it for writing (0: none, or not a goroutine) */
    sched *owner_s;   /* its VM */
    size_t readers;   /* read holders */
    mlist queue;      /* waiters (waiter.node; n = SIDE_*), FIFO */
};

typedef struct mutex_ud { /* a sync_ud */
    mutex_core *core;
    sched *s;
} mutex_ud;

void mutex_core_ref(void *core)
{
    atomic_fetch_add(&((mutex_core *)core)->refs, 1);
}

void mutex_core_unref(void *core)
{
    mutex_core *mu = core;
    if (travel_unref(mu, &mu->ta, &mu->refs)) {
        sync_lock_destroy(&mu->lock);
        free(mu);
    }
}

static int can_take(const mutex_core *mu, lua_Integer side)
{
    if (mu->writer || !mlist_empty(&mu->queue))
        return 0;
    return side == SIDE_READ || mu->readers == 0;
}

static void take(mutex_core *mu, lua_Integer side, uint64_t gid, sched *s)
{
    if (side == SIDE_WRITE) {
        mu->writer = 1;
        mu->owner = gid;
        mu->owner_s = s;
    } else {
        mu->readers++;
    }
}

/* The id of the goroutine running L (0: not a goroutine). */
static uint64_t caller_id(lua_State *L)
{
    gor *g = gor_of(L);
    return g ? g->id : 0;
}

/* Hands the lock to the waiters at the head that can have it now: one
 * writer, or every reader up to the next writer; cur: the caller's VM. */
static void grant(mutex_core *mu, sched *cur)
{
    waiter *w;
    while ((w = waitq_first(&mu->queue)) && !mu->writer) {
        if (w->n == SIDE_WRITE && mu->readers)
            break;
        take(mu, w->n, w->gid, w->s);
        waiter_grant(w, cur);
    }
}

void mutex_abandon(mutex_core *mu, waiter *w, int wake)
{
    if (w->state == W_GRANTED) {
        if (w->n == SIDE_WRITE)
            mu->writer = 0;
        else
            mu->readers--;
    }
    waiter_unlink(w);
    if (wake)
        grant(mu, w->s); /* what it had, or its place at the head, goes to the next */
}

static void abandon(waiter *w, int wake)
{
    mutex_abandon(w->core, w, wake);
}

static const waiter_ops mutex_ops = {mutex_core_ref, mutex_core_unref, abandon};

sync_lock *mutex_lock_of(mutex_core *mu)
{
    return &mu->lock;
}

int mutex_locked(const mutex_core *mu)
{
    return mu->writer;
}

void mutex_unlock(mutex_core *mu, sched *cur)
{
    mu->writer = 0;
    grant(mu, cur);
}

int mutex_try(mutex_core *mu, lua_State *L, sched *s)
{
    if (!can_take(mu, SIDE_WRITE))
        return 0;
    take(mu, SIDE_WRITE, caller_id(L), s);
    return 1;
}

/* A goroutine killed while it waited (a cond wait cancelled by a timeout)
 * runs its pending <close> handlers without the lock; the usual guard that
 * unlocks in one must then not release a lock another goroutine holds:
 * such an unlock does nothing. */
static int killed_unlock_of_other(lua_State *L, const mutex_core *mu)
{
    gor *g = gor_of(L);
    return g && g->state == G_DEAD && (!mu->writer || mu->owner != g->id || mu->owner_s != g->s);
}

void mutex_enqueue(mutex_core *mu, waiter *w)
{
    w->n = SIDE_WRITE;
    waiter_enqueue(&mu->queue, w);
}

mutex_core *mutex_test(lua_State *L, int idx)
{
    mutex_ud *m = luaL_testudata(L, idx, MUTEX_TNAME);
    if (!m)
        m = luaL_testudata(L, idx, RWMUTEX_TNAME);
    return m ? m->core : NULL;
}

/* ---- methods ---- */

static int lock_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    waiter *w = (waiter *)ctx;
    if (waiter_take_state(w) == W_QUEUED)
        return waiter_wait(L, w, ctx, lock_k);
    return 0; /* granted: the lock is ours */
}

/* Takes the lock at once when it can (1). */
static int lock_now(lua_State *L, mutex_ud *m, lua_Integer side)
{
    mutex_core *mu = m->core;
    sync_enter(&mu->lock);
    int ok = can_take(mu, side);
    if (ok)
        take(mu, side, caller_id(L), m->s);
    sync_leave(&mu->lock);
    return ok;
}

static int do_lock(lua_State *L, const char *tname, lua_Integer side)
{
    mutex_ud *m = luaL_checkudata(L, 1, tname);
    mutex_core *mu = m->core;
    lua_settop(L, 1);
    if (lock_now(L, m, side))
        return 0;
    waiter *w = waiter_push(L, m->s, mu, &mutex_ops, side, &mu->lock);
    sync_enter(&mu->lock);
    if (can_take(mu, side)) { /* (freed meanwhile, by another VM) */
        take(mu, side, caller_id(L), m->s);
        sync_leave(&mu->lock);
        return 0;
    }
    waiter_enqueue(&mu->queue, w);
    sync_leave(&mu->lock);
    return waiter_wait(L, w, (lua_KContext)w, lock_k);
}

static int do_try(lua_State *L, const char *tname, lua_Integer side)
{
    lua_pushboolean(L, lock_now(L, luaL_checkudata(L, 1, tname), side));
    return 1;
}

static int mu_lock(lua_State *L)
{
    return do_lock(L, MUTEX_TNAME, SIDE_WRITE);
}

static int mu_try_lock(lua_State *L)
{
    return do_try(L, MUTEX_TNAME, SIDE_WRITE);
}

/* unlock (side SIDE_WRITE) or runlock: 0, or the error to raise. */
static const char *do_unlock(lua_State *L, const char *tname, lua_Integer side)
{
    mutex_ud *m = luaL_checkudata(L, 1, tname);
    mutex_core *mu = m->core;
    const char *err = NULL;
    sync_enter(&mu->lock);
    if (side == SIDE_WRITE && killed_unlock_of_other(L, mu)) {
        /* nothing */
    } else if (side == SIDE_WRITE && !mu->writer) {
        err = strcmp(tname, MUTEX_TNAME) == 0 ? "unlock of unlocked mutex"
                                              : "unlock of unlocked rwmutex";
    } else if (side == SIDE_WRITE) {
        mutex_unlock(mu, m->s);
    } else if (mu->readers == 0) {
        err = "runlock of unlocked rwmutex";
    } else {
        mu->readers--;
        grant(mu, m->s);
    }
    sync_leave(&mu->lock);
    return err;
}

static int mu_unlock(lua_State *L)
{
    const char *err = do_unlock(L, MUTEX_TNAME, SIDE_WRITE);
    return err ? luaL_error(L, "%s", err) : 0;
}

static int rw_lock(lua_State *L)
{
    return do_lock(L, RWMUTEX_TNAME, SIDE_WRITE);
}

static int rw_try_lock(lua_State *L)
{
    return do_try(L, RWMUTEX_TNAME, SIDE_WRITE);
}

static int rw_unlock(lua_State *L)
{
    const char *err = do_unlock(L, RWMUTEX_TNAME, SIDE_WRITE);
    return err ? luaL_error(L, "%s", err) : 0;
}

static int rw_rlock(lua_State *L)
{
    return do_lock(L, RWMUTEX_TNAME, SIDE_READ);
}

static int rw_try_rlock(lua_State *L)
{
    return do_try(L, RWMUTEX_TNAME, SIDE_READ);
}

static int rw_runlock(lua_State *L)
{
    const char *err = do_unlock(L, RWMUTEX_TNAME, SIDE_READ);
    return err ? luaL_error(L, "%s", err) : 0;
}

static size_t nwaiting(const mutex_core *mu)
{
    size_t n = 0;
    const mlist *p;
    mlist_foreach (p, &mu->queue)
        n++;
    return n;
}

static int push_waiting(lua_State *L, size_t n)
{
    if (n)
        lua_pushfstring(L, ", %I waiting)", (lua_Integer)n);
    else
        lua_pushliteral(L, ")");
    return 1;
}

static int mu_tostring(lua_State *L)
{
    mutex_core *mu = ((mutex_ud *)luaL_checkudata(L, 1, MUTEX_TNAME))->core;
    sync_enter(&mu->lock);
    int writer = mu->writer;
    size_t n = nwaiting(mu);
    sync_leave(&mu->lock);
    lua_pushstring(L, writer ? "Mutex(locked" : "Mutex(unlocked");
    push_waiting(L, n);
    lua_concat(L, 2);
    return 1;
}

static int rw_tostring(lua_State *L)
{
    mutex_core *mu = ((mutex_ud *)luaL_checkudata(L, 1, RWMUTEX_TNAME))->core;
    sync_enter(&mu->lock);
    int writer = mu->writer;
    size_t readers = mu->readers, n = nwaiting(mu);
    sync_leave(&mu->lock);
    if (writer)
        lua_pushliteral(L, "RWMutex(locked");
    else if (readers)
        lua_pushfstring(L, "RWMutex(%I reader%s", (lua_Integer)readers, readers == 1 ? "" : "s");
    else
        lua_pushliteral(L, "RWMutex(unlocked");
    push_waiting(L, n);
    lua_concat(L, 2);
    return 1;
}

static int mutex_gc(lua_State *L)
{
    mutex_ud *m = lua_touserdata(L, 1);
    if (m->core)
        mutex_core_unref(m->core);
    m->core = NULL;
    return 0;
}

static int new_mutex(lua_State *L, const char *tname)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    mutex_ud *m = lua_newuserdatauv(L, sizeof *m, 0);
    m->core = NULL;
    m->s = s;
    luaL_setmetatable(L, tname);
    mutex_core *mu = calloc(1, sizeof *mu);
    if (!mu)
        return luaL_error(L, "not enough memory");
    atomic_init(&mu->refs, 1);
    sync_lock_init(&mu->lock);
    mlist_init(&mu->queue);
    m->core = mu;
    return 1;
}

/* ---- travelling ---- */

void mutex_share(lua_State *L, mutex_core *mu)
{
    sync_share(L, &mu->lock, &mu->queue);
}

static int encode(lua_State *L, int idx, void *call, const char *what)
{
    mutex_ud *m = lua_touserdata(L, idx);
    if (!call)
        mutex_share(L, m->core);
    return sync_encode_core(L, idx, call, what, m->core, &m->core->ta);
}

int mutex_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    return encode(L, idx, call, "a mutex");
}

int rwmutex_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    return encode(L, idx, call, "an rwmutex");
}

int mutex_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    return sync_decode_core(L, data, len, call, ud, MUTEX_TNAME, "a mutex", mutex_core_ref,
                            mutex_core_unref);
}

int rwmutex_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    return sync_decode_core(L, data, len, call, ud, RWMUTEX_TNAME, "an rwmutex", mutex_core_ref,
                            mutex_core_unref);
}

static int g_mutex(lua_State *L)
{
    return new_mutex(L, MUTEX_TNAME);
}

static int g_rwmutex(lua_State *L)
{
    return new_mutex(L, RWMUTEX_TNAME);
}

static void new_metatable(lua_State *L, const char *tname, const luaL_Reg *methods,
                          lua_CFunction tostring)
{
    if (luaL_newmetatable(L, tname)) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, mutex_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}

void mutex_open(lua_State *L, sched *s)
{
    static const luaL_Reg mu_methods[] = {
        {"lock", mu_lock}, {"unlock", mu_unlock}, {"try_lock", mu_try_lock}, {NULL, NULL}};
    static const luaL_Reg rw_methods[] = {
        {"lock", rw_lock},   {"unlock", rw_unlock},   {"try_lock", rw_try_lock},
        {"rlock", rw_rlock}, {"runlock", rw_runlock}, {"try_rlock", rw_try_rlock},
        {NULL, NULL}};
    static const luaL_Reg ctors[] = {{"mutex", g_mutex}, {"rwmutex", g_rwmutex}, {NULL, NULL}};
    new_metatable(L, MUTEX_TNAME, mu_methods, mu_tostring);
    new_metatable(L, RWMUTEX_TNAME, rw_methods, rw_tostring);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, ctors, 1);
}
