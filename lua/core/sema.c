/* sema.c: acquire, release, try_acquire, available, capacity (see
 * sema.h). */
#include "sema.h"

#include <stdlib.h>

#include <lauxlib.h>

#include "sync.h"
#include "travel.h"
#include "waitq.h"

typedef struct sem_core {
    atomic_int refs;
    travel_anchor ta; /* its name once it travelled */
    sync_lock lock;   /* guards the rest once shared (waitq.h) */
    lua_Integer avail, cap;
    mlist queue; /* waiters (waiter.node; n = units asked), FIFO */
} sem_core;

typedef struct sem_ud { /* a sync_ud */
    sem_core *core;
    sched *s;
} sem_ud;

static void core_ref(void *core)
{
    atomic_fetch_add(&((sem_core *)core)->refs, 1);
}

static void core_unref(void *core)
{
    sem_core *c = core;
    if (travel_unref(c, &c->ta, &c->refs)) {
        sync_lock_destroy(&c->lock);
        free(c);
    }
}

/* Grants the waiters at the head while their requests fit; cur: the
 * caller's VM. */
static void grant(sem_core *c, sched *cur)
{
    waiter *w;
    while ((w = waitq_first(&c->queue)) && w->n <= c->avail) {
        c->avail -= w->n;
        waiter_grant(w, cur);
    }
}

static void abandon(waiter *w, int wake)
{
    sem_core *c = w->core;
    if (w->state == W_GRANTED)
        c->avail += w->n;
    waiter_unlink(w);
    if (wake)
        grant(c, w->s); /* its units, or its place at the head, go to the next */
}

static const waiter_ops sem_ops = {core_ref, core_unref, abandon};

static sem_ud *check_sem(lua_State *L)
{
    return luaL_checkudata(L, 1, SEMAPHORE_TNAME);
}

/* The units argument: 1 when absent, else 1..capacity. */
static lua_Integer check_units(lua_State *L, sem_core *c)
{
    if (lua_isnoneornil(L, 2))
        return 1;
    lua_Integer k = sync_check_integer(L, 2);
    if (k < 1 || k > c->cap)
        luaL_argerror(L, 2,
                      lua_pushfstring(L, "units must be 1..%I (the capacity), got %I", c->cap, k));
    return k;
}

static int acquire_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    waiter *w = (waiter *)ctx;
    if (waiter_take_state(w) == W_QUEUED)
        return waiter_wait(L, w, ctx, acquire_k);
    return 0; /* granted: the units are ours */
}

/* Takes k units at once when nobody waits and they are there (1). */
static int take_now(sem_core *c, lua_Integer k)
{
    sync_enter(&c->lock);
    int ok = mlist_empty(&c->queue) && c->avail >= k;
    if (ok)
        c->avail -= k;
    sync_leave(&c->lock);
    return ok;
}

static int sem_acquire(lua_State *L)
{
    sem_ud *u = check_sem(L);
    sem_core *c = u->core;
    lua_Integer k = check_units(L, c);
    lua_settop(L, 1);
    if (take_now(c, k))
        return 0;
    waiter *w = waiter_push(L, u->s, c, &sem_ops, k, &c->lock);
    sync_enter(&c->lock);
    if (mlist_empty(&c->queue) && c->avail >= k) { /* (released meanwhile, by another VM) */
        c->avail -= k;
        sync_leave(&c->lock);
        return 0;
    }
    waiter_enqueue(&c->queue, w);
    sync_leave(&c->lock);
    return waiter_wait(L, w, (lua_KContext)w, acquire_k);
}

static int sem_try_acquire(lua_State *L)
{
    sem_core *c = check_sem(L)->core;
    lua_pushboolean(L, take_now(c, check_units(L, c)));
    return 1;
}

static int sem_release(lua_State *L)
{
    sem_ud *u = check_sem(L);
    sem_core *c = u->core;
    lua_Integer k = check_units(L, c);
    sync_enter(&c->lock);
    lua_Integer avail = c->avail;
    int over = k > c->cap - avail;
    if (!over) {
        c->avail += k;
        grant(c, u->s);
    }
    sync_leave(&c->lock);
    if (over)
        return luaL_error(L,
                          "semaphore released more than acquired (%I available of %I, "
                          "releasing %I)",
                          avail, c->cap, k);
    return 0;
}

static int sem_available(lua_State *L)
{
    sem_core *c = check_sem(L)->core;
    sync_enter(&c->lock);
    lua_Integer avail = c->avail;
    sync_leave(&c->lock);
    lua_pushinteger(L, avail);
    return 1;
}

static int sem_capacity(lua_State *L)
{
    lua_pushinteger(L, check_sem(L)->core->cap);
    return 1;
}

static int sem_tostring(lua_State *L)
{
    sem_core *c = check_sem(L)->core;
    size_t n = 0;
    const mlist *p;
    sync_enter(&c->lock);
    mlist_foreach (p, &c->queue)
        n++;
    lua_Integer avail = c->avail;
    sync_leave(&c->lock);
    if (n)
        lua_pushfstring(L, "Semaphore(%I/%I, %I waiting)", avail, c->cap, (lua_Integer)n);
    else
        lua_pushfstring(L, "Semaphore(%I/%I)", avail, c->cap);
    return 1;
}

static int sem_gc(lua_State *L)
{
    sem_ud *u = lua_touserdata(L, 1);
    if (u->core)
        core_unref(u->core);
    u->core = NULL;
    return 0;
}

static int g_semaphore(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer n = sync_check_integer(L, 1);
    luaL_argcheck(L, n >= 1, 1, "capacity must be at least 1");
    sem_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = NULL;
    u->s = s;
    luaL_setmetatable(L, SEMAPHORE_TNAME);
    sem_core *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    atomic_init(&c->refs, 1);
    sync_lock_init(&c->lock);
    c->avail = c->cap = n;
    mlist_init(&c->queue);
    u->core = c;
    return 1;
}

int semaphore_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    sem_core *c = ((sem_ud *)lua_touserdata(L, idx))->core;
    travel_ctx *tc = call;
    if (tc && tc->obj_encode) {
        /* it leaves the process: the layer's object (Redis) from now on */
        if (c->ta.id)
            return luaL_error(L,
                              "a semaphore shared with pool tasks of this process cannot travel "
                              "to %s",
                              tc->where);
        if (!mlist_empty(&c->queue))
            return luaL_error(L, "a semaphore with goroutines waiting on it cannot travel to %s",
                              tc->where);
        return tc->obj_encode(tc, L, idx, "semaphore", c->cap, c->avail);
    }
    if (!call)
        sync_share(L, &c->lock, &c->queue);
    return sync_encode_core(L, idx, call, "a semaphore", c, &c->ta);
}

int semaphore_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    travel_ctx *tc = call;
    if (tc && tc->obj_decode)
        return tc->obj_decode(tc, L, data, len);
    return sync_decode_core(L, data, len, call, ud, SEMAPHORE_TNAME, "a semaphore", core_ref,
                            core_unref);
}

void semaphore_open(lua_State *L, sched *s)
{
    static const luaL_Reg methods[] = {
        {"acquire", sem_acquire},     {"release", sem_release},   {"try_acquire", sem_try_acquire},
        {"available", sem_available}, {"capacity", sem_capacity}, {NULL, NULL}};
    if (luaL_newmetatable(L, SEMAPHORE_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, sem_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, sem_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, s);
    lua_pushcclosure(L, g_semaphore, 1);
    lua_setfield(L, -2, "semaphore");
}
