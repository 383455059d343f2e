/* waitq.c: waiter records as to-be-closed userdata (see waitq.h). */
#include "waitq.h"

#include <lauxlib.h>

#define WAITER_TNAME "goroutine.waiter"

static void waiter_release(waiter *w, int wake)
{
    if (!w->core)
        return;
    if (w->state != W_IDLE)
        w->ops->abandon(w, wake);
    w->state = W_IDLE;
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
    if (w->core && w->state == W_QUEUED)
        mlist_remove(&w->node);
    w->state = W_IDLE;
    waiter_release(w, 0);
    return 0;
}

waiter *waiter_push(lua_State *L, sched *s, void *core, const waiter_ops *ops, lua_Integer n)
{
    waiter *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->node.next = w->node.prev = NULL;
    glist_init(&w->wl);
    w->s = s;
    w->core = core;
    w->ops = ops;
    w->n = n;
    w->phase = 0;
    w->state = W_IDLE;
    if (luaL_newmetatable(L, WAITER_TNAME)) {
        lua_pushcfunction(L, waiter_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, waiter_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    ops->ref(core);
    lua_toclose(L, -1);
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

void waiter_grant(waiter *w)
{
    waiter_unlink(w);
    w->state = W_GRANTED;
    sched_ready_all(w->s, &w->wl);
}

int waiter_wait(lua_State *L, waiter *w, lua_KContext ctx, lua_KFunction k)
{
    return sched_wait(L, w->s, &w->wl, 0, ctx, k);
}
