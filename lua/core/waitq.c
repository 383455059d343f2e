/* waitq.c: waiter records as to-be-closed userdata, and the waking of
 * waiters of shared primitives from other VMs (see waitq.h). */
#include "waitq.h"

#include <stdlib.h>

#include <lauxlib.h>

#include "port.h"
#include "travel.h"

#define WAITER_TNAME "goroutine.waiter"

/* Wakes a waiter from another VM's thread. Its fields but `refs` and
 * `posted` are the waiter VM's: the message runs there. */
struct wq_token {
    xmsg m;
    atomic_int refs;   /* the waiter's (until it is closed), the message's in flight */
    atomic_int posted; /* the message is queued: a second grant needs no second one */
    waiter *w;         /* NULL once the waiter is closed */
    port *port;        /* the waiter VM's (a reference) */
};

static void token_unref(wq_token *t)
{
    if (atomic_fetch_sub(&t->refs, 1) == 1) {
        port_unref(t->port);
        free(t);
    }
}

/* On the waiter's VM (s NULL: it went away). */
static void on_token(sched *s, xmsg *m)
{
    wq_token *t = (wq_token *)m;
    atomic_store(&t->posted, 0);
    if (s && t->w)
        sched_ready_all(s, &t->w->wl);
    token_unref(t);
}

void sync_lock_init(sync_lock *k)
{
    pthread_mutex_init(&k->mu, NULL);
    k->shared = 0;
}

void sync_lock_destroy(sync_lock *k)
{
    pthread_mutex_destroy(&k->mu);
}

static void waiter_release(waiter *w, int wake)
{
    if (!w->core)
        return;
    sync_enter(w->lock);
    if (w->state != W_IDLE)
        w->ops->abandon(w, wake);
    w->state = W_IDLE;
    sync_leave(w->lock);
    if (w->tok) {
        w->tok->w = NULL;
        token_unref(w->tok);
        w->tok = NULL;
    }
    if (w->counted) {
        w->counted = 0;
        w->s->remote_waits--;
    }
    w->ops->unref(w->core);
    w->core = NULL;
}

/* __close: the call returned (nothing owed), raised, or its goroutine was
 * killed. */
static int waiter_close(lua_State *L)
{
    waiter *w = lua_touserdata(L, 1);
    waiter_release(w, !w->s->closing);
    return 0;
}

/* __gc: only when the VM is closed while the call still waits: the
 * scheduler may be gone already, the core is not. */
static int waiter_gc(lua_State *L)
{
    waiter *w = lua_touserdata(L, 1);
    if (w->core) {
        sync_enter(w->lock);
        if (w->state == W_QUEUED)
            mlist_remove(&w->node);
        w->state = W_IDLE;
        sync_leave(w->lock);
    }
    w->counted = 0; /* (the scheduler may be gone) */
    waiter_release(w, 0);
    return 0;
}

void waiter_share(lua_State *L, waiter *w)
{
    if (w->tok)
        return;
    wq_token *t = malloc(sizeof *t);
    if (!t)
        luaL_error(L, "not enough memory");
    t->m.fn = on_token;
    atomic_init(&t->refs, 1);
    atomic_init(&t->posted, 0);
    t->w = w;
    t->port = w->s->port;
    port_ref(t->port);
    w->tok = t;
    if (!w->counted) {
        w->counted = 1;
        w->s->remote_waits++;
    }
}

waiter *waiter_push(lua_State *L, sched *s, void *core, const waiter_ops *ops, lua_Integer n,
                    sync_lock *lock)
{
    waiter *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->node.next = w->node.prev = NULL;
    glist_init(&w->wl);
    w->s = s;
    w->core = NULL;
    w->ops = ops;
    w->lock = lock;
    w->tok = NULL;
    gor *g = gor_of(L);
    w->gid = g ? g->id : 0;
    w->n = n;
    w->phase = 0;
    w->state = W_IDLE;
    w->counted = 0;
    if (luaL_newmetatable(L, WAITER_TNAME)) {
        lua_pushcfunction(L, waiter_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, waiter_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    ops->ref(core);
    w->core = core;
    lua_toclose(L, -1);
    if (lock->shared) /* (read on the home thread, or once shared for good) */
        waiter_share(L, w);
    return w;
}

void waiter_enqueue(mlist *q, waiter *w)
{
    mlist_push_back(q, &w->node);
    w->state = W_QUEUED;
}

waiter *waitq_first(const mlist *q)
{
    mlist *n = mlist_first(q);
    return n ? mlist_entry(n, waiter, node) : NULL;
}

void waiter_unlink(waiter *w)
{
    if (w->state == W_QUEUED)
        mlist_remove(&w->node);
    w->state = W_IDLE;
}

void waiter_grant(waiter *w, sched *cur)
{
    waiter_unlink(w);
    w->state = W_GRANTED;
    if (w->s == cur || !w->tok) {
        sched_ready_all(w->s, &w->wl);
        return;
    }
    wq_token *t = w->tok;
    if (atomic_exchange(&t->posted, 1))
        return; /* its message is on its way */
    atomic_fetch_add(&t->refs, 1);
    if (port_post(t->port, &t->m) != 0) { /* its VM is gone */
        atomic_store(&t->posted, 0);
        atomic_fetch_sub(&t->refs, 1);
    }
}

int waiter_wait(lua_State *L, waiter *w, lua_KContext ctx, lua_KFunction k)
{
    return sched_wait(L, w->s, &w->wl, 0, ctx, k);
}

int waiter_take_state(waiter *w)
{
    sync_enter(w->lock);
    int st = w->state;
    if (st == W_GRANTED)
        w->state = W_IDLE;
    sync_leave(w->lock);
    return st;
}

static const char COPIES = 'S'; /* registry: weak core -> this VM's userdata */

void sync_share(lua_State *L, sync_lock *lock, mlist *q)
{
    if (lock->shared)
        return;
    mlist *n;
    if (q)
        mlist_foreach (n, q)
            waiter_share(L, mlist_entry(n, waiter, node));
    lock->shared = 1;
}

/* Pushes the registry table of this VM's copies. */
static void push_copies(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES) != LUA_TTABLE) {
        lua_pop(L, 1);
        travel_new_copies(L, &COPIES);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
    }
}

int sync_encode_core(lua_State *L, int idx, void *call, const char *what, void *core,
                     travel_anchor *ta)
{
    travel_ctx *tc = call;
    if (tc)
        return luaL_error(L, "%s cannot travel to %s", what, tc->where);
    idx = lua_absindex(L, idx);
    push_copies(L);
    lua_pushvalue(L, idx);
    lua_rawsetp(L, -2, core);
    lua_pop(L, 1);
    travel_name(L, core, ta);
    return 0;
}

int sync_decode_core(lua_State *L, const char *data, size_t len, void *call, sched *s,
                     const char *tname, const char *what, void (*ref)(void *core),
                     void (*unref)(void *core))
{
    travel_ctx *tc = call;
    if (tc)
        return luaL_error(L, "%s cannot travel from %s", what, tc->where);
    void *core = travel_take(L, data, len, what, ref);
    if (!core)
        return -1;
    push_copies(L);
    if (lua_rawgetp(L, -1, core) == LUA_TUSERDATA) { /* this VM has it already */
        lua_remove(L, -2);
        unref(core);
        return 0;
    }
    lua_pop(L, 1);
    sync_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = core;
    u->s = s;
    luaL_setmetatable(L, tname);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, core);
    lua_remove(L, -2);
    return 0;
}
