/* channel.c: channels and select (see channel.h). Every wait, a plain
 * send or receive included, is a select: one chan_sel with a waiter per
 * case, queued on the cases' channels while its goroutine is parked.
 *
 * A channel that travelled to another VM is shared (channel_core.h): its
 * waiters may be woken from another thread. A select is over when one
 * compare-and-swap on its `fired` sets it (to its case, or to -1 when its
 * owner ends it first: a deadline, a kill), so exactly one case happens
 * even when VMs race for it. A firer takes its waiter off the list it
 * holds; the owner takes the others off when it resumes, and a waiter whose
 * select is over is skipped (and dropped) by whoever meets it in a list. */
#include "channel.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "channel_core.h"
#include "codec.h"
#include "list.h"
#include "port.h"
#include "travel.h"

#define SELECT_MAX_CASES 4096

enum { C_RECV = 1, C_SEND, C_DEFAULT };

typedef struct channel channel;
typedef struct chan_sel chan_sel;

typedef struct chan_waiter {
    mlist node; /* in its channel's recvq or sendq while queued */
    chan_sel *sel;
    channel *ch;
    chan_core *core; /* a shared channel's core (its queues), else NULL */
    chan_val val;    /* shared: a send's encoded value; the value a receive was handed */
    int vidx;        /* a send: its value's index on the waiter's stack */
    int chidx;       /* its channel's index on the waiter's stack */
    int no;          /* its case number, 1-based */
    int dir;         /* C_RECV or C_SEND */
    int queued;      /* (shared: under core->mu) */
} chan_waiter;

struct chan_sel {
    sched_parker parker;
    xmsg wake; /* posted by a firer in another VM */
    sched *s;
    port *port; /* s->port, a reference while shared waits may wake it */
    gor *g;     /* the parked waiter (park) */
    /* the case that happened; 0 while none has; -1: the owner ended it */
    atomic_int fired;
    atomic_int refs; /* the owner's, and a wake message's in flight */
    int closed;      /* it happened because its channel was closed */
    int dir;         /* the kind of the case that happened */
    int parked;      /* (owner's thread) waiting: a wake makes it ready */
    int counted;     /* in s->remote_waits */
    int nshared;     /* waiters on shared channels */
    int ncores;      /* cores[]: the shared waiters' cores, locked from scan to park */
    int locked;
    int n;
    chan_core **cores;
    chan_waiter w[];
};

struct channel {
    uint64_t magic; /* CH_MAGIC */
    sched *s;
    chan_core *core;              /* shared (travelled), or NULL */
    lua_Integer cap, head, count; /* ring buffer in user value 1, slots 1..cap */
    lua_Integer nback;            /* values given back (user value 2), received first */
    int closed;
    int recv_only;      /* after()'s and a context's done(): Lua code cannot send or close */
    int sharing;        /* share() runs on it */
    int remote_close;   /* another VM may close it (a travelled context's done()) */
    mlist recvq, sendq; /* of chan_waiter.node, oldest first */
    theap_ent after;    /* goroutine.after: when it receives its value */
    int after_ref;      /* anchors it in the registry until then, else LUA_NOREF */
    int fn_ref;         /* _after_call: the function it calls then, else LUA_NOREF */
};

static const char COPIES = 'C'; /* registry: weak core -> this VM's channel for it */

/* A channel's first field: a full userdata of a channel's size whose first
 * word is this is a channel (no pointer has these top bits, so no other
 * userdata of this size starts with it by chance; Lua code cannot write a
 * userdata's bytes). Checked without the metatable lookup by name that
 * luaL_checkudata makes, the ping-pong's largest cost after the switches. */
#define CH_MAGIC 0xc4a11e7c0a11e7c5ull
/* The first word of a channel that left the process (ch_leave): its
 * userdata is the fleet's object now. */
#define CH_LEFT_MAGIC 0xc4a11e7c0a11e7c6ull

static channel *to_ch(lua_State *L, int idx)
{
    channel *ch = lua_touserdata(L, idx);
    /* (a light userdata's length is 0) */
    return ch && lua_rawlen(L, idx) == sizeof *ch && ch->magic == CH_MAGIC ? ch : NULL;
}

static channel *check_ch(lua_State *L, int idx)
{
    channel *ch = to_ch(L, idx);
    if (!ch)
        luaL_typeerror(L, idx, "channel");
    return ch;
}

/* ---- the ring buffer (values of the channel's VM) ---- */

/* Appends the value on top of L (popped). */
static void buf_push(lua_State *L, channel *ch, int chidx)
{
    lua_getiuservalue(L, chidx, 1);
    lua_rotate(L, -2, 1);
    lua_rawseti(L, -2, (ch->head + ch->count) % ch->cap + 1);
    lua_pop(L, 1);
    ch->count++;
}

/* Pushes the oldest value and takes it out. */
static void buf_pop(lua_State *L, channel *ch, int chidx)
{
    lua_getiuservalue(L, chidx, 1);
    lua_rawgeti(L, -1, ch->head + 1);
    lua_pushnil(L);
    lua_rawseti(L, -3, ch->head + 1);
    lua_remove(L, -2);
    ch->head = (ch->head + 1) % ch->cap;
    ch->count--;
}

/* Values handed to a receiver that was killed before it took them (a
 * timeout's deadline that came in the same loop turn): they wait in a queue
 * of their own (user value 2) and are received before the buffer's. */
static void back_push(lua_State *L, channel *ch, int chidx)
{
    if (lua_getiuservalue(L, chidx, 2) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, chidx, 2);
    }
    lua_rotate(L, -2, 1);
    lua_rawseti(L, -2, ++ch->nback);
    lua_pop(L, 1);
}

/* back_push(channel, value) as a Lua function, for a protected call. */
static int back_push_p(lua_State *L)
{
    back_push(L, lua_touserdata(L, 1), 1);
    return 0;
}

/* Pushes the oldest value given back and takes it out. */
static void back_pop(lua_State *L, channel *ch, int chidx)
{
    lua_getiuservalue(L, chidx, 2);
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    lua_getiuservalue(L, chidx, 2);
    for (lua_Integer i = 1; i < ch->nback; i++) { /* (rare, and short) */
        lua_rawgeti(L, -1, i + 1);
        lua_rawseti(L, -2, i);
    }
    lua_pushnil(L);
    lua_rawseti(L, -2, ch->nback--);
    lua_pop(L, 1);
}

/* ---- waiters ---- */

static chan_waiter *first_waiter(mlist *q)
{
    return mlist_first_entry(q, chan_waiter, node);
}

static void dequeue(chan_waiter *w)
{
    mlist_remove(&w->node);
    w->queued = 0;
}

/* The oldest waiter of q whose select is not over; drops those that are
 * (a shared queue: with its core's lock held). */
static chan_waiter *first_live(mlist *q)
{
    chan_waiter *w;
    while ((w = first_waiter(q)) && atomic_load_explicit(&w->sel->fired, memory_order_relaxed) != 0)
        dequeue(w);
    return w;
}

/* Ends w's select with w's case, unless it is over already (0). */
static int claim(chan_waiter *w, int closed)
{
    chan_sel *sel = w->sel;
    int none = 0;
    if (!atomic_compare_exchange_strong(&sel->fired, &none, w->no))
        return 0;
    sel->closed = closed;
    sel->dir = w->dir;
    return 1;
}

static void sel_release(chan_sel *sel);

/* Makes a claimed waiter's goroutine runnable; cur: the VM of the caller. */
static void wake(chan_waiter *w, sched *cur)
{
    chan_sel *sel = w->sel;
    if (sel->s == cur) {
        if (sel->parked && sel->g->state == G_PARKED)
            sched_ready(cur, sel->g);
        return;
    }
    atomic_fetch_add(&sel->refs, 1);
    if (port_post(sel->port, &sel->wake) != 0)
        atomic_fetch_sub(&sel->refs, 1); /* its VM is gone (and sel with it: left as it is) */
}

/* The wake message, on the owner's thread (s NULL: its VM went away). */
static void on_wake(sched *s, xmsg *m)
{
    chan_sel *sel = mlist_entry(m, chan_sel, wake);
    if (s && sel->parked && sel->g->state == G_PARKED)
        sched_ready(s, sel->g);
    sel_release(sel);
}

/* Takes sel's waiters on channels of this VM off their lists. */
static void unqueue_local(chan_sel *sel)
{
    for (int i = 0; i < sel->n; i++)
        if (!sel->w[i].core && sel->w[i].queued) /* (a shared one's: under its lock) */
            dequeue(&sel->w[i]);
}

/* w's case happened (w is on a list of this VM's, or of a shared core
 * whose lock is held; cur the caller's VM): its select is over. Returns 0
 * when it was over already. */
static int fire(chan_waiter *w, int closed, sched *cur)
{
    if (!claim(w, closed))
        return 0;
    if (w->queued)
        dequeue(w);
    if (w->sel->s == cur)
        unqueue_local(w->sel);
    wake(w, cur);
    return 1;
}

static void sel_park(sched_parker *p, gor *g)
{
    chan_sel *sel = (chan_sel *)p;
    sel->g = g;
    sel->parked = 1;
    int remote = 0; /* another VM may end the wait */
    for (int i = 0; i < sel->n; i++) {
        chan_waiter *w = &sel->w[i];
        if (w->core) {
            mlist_push_back(w->dir == C_RECV ? &w->core->recvq : &w->core->sendq, &w->node);
            remote = 1;
        } else {
            mlist_push_back(w->dir == C_RECV ? &w->ch->recvq : &w->ch->sendq, &w->node);
            remote |= w->ch->remote_close;
        }
        w->queued = 1;
    }
    if (remote && !sel->counted) {
        sel->counted = 1;
        sel->s->remote_waits++;
    }
    if (sel->locked) {
        sel->locked = 0;
        chan_cores_unlock(sel->cores, sel->ncores);
    }
}

static void free_vals(chan_sel *sel)
{
    for (int i = 0; i < sel->n; i++)
        if (sel->w[i].val.p)
            chan_val_free(&sel->w[i].val);
}

/* Waits of one case (a plain send or receive) reuse the VM's spare. */
static void sel_free(chan_sel *sel)
{
    if (sel->nshared)
        free_vals(sel);
    if (sel->port) {
        port_unref(sel->port);
        sel->port = NULL;
    }
    if (sel->n == 1 && !sel->s->closing && !sel->s->spare_wait)
        sel->s->spare_wait = sel;
    else
        free(sel);
}

static void sel_release(chan_sel *sel)
{
    /* (a select no other VM could reach has no other holder: no atomic) */
    if (!sel->port || atomic_fetch_sub(&sel->refs, 1) == 1)
        sel_free(sel);
}

/* The owner's end of a wait that parked, or started to: no case can
 * happen any more, and no list holds a waiter of sel. Returns the case that
 * happened (0: none). */
static int sel_settle(chan_sel *sel)
{
    sel->parked = 0;
    int none = 0;
    if (atomic_load_explicit(&sel->fired, memory_order_relaxed) == 0)
        atomic_compare_exchange_strong(&sel->fired, &none, -1);
    unqueue_local(sel);
    if (sel->nshared) /* (locking every core also waits for a firer's writes) */
        for (int i = 0; i < sel->n; i++) {
            chan_waiter *w = &sel->w[i];
            if (!w->core)
                continue;
            pthread_mutex_lock(&w->core->mu);
            if (w->queued)
                dequeue(w);
            pthread_mutex_unlock(&w->core->mu);
        }
    if (sel->counted) {
        sel->counted = 0;
        sel->s->remote_waits--;
    }
    int no = atomic_load(&sel->fired);
    return no > 0 ? no : 0;
}

static chan_waiter *waiter_of(chan_sel *sel, int no)
{
    for (int i = 0; i < sel->n; i++)
        if (sel->w[i].no == no)
            return &sel->w[i];
    return NULL;
}

static void give_back(chan_sel *sel, gor *g);

static void sel_cancel(sched_parker *p, gor *g)
{
    chan_sel *sel = (chan_sel *)p;
    if (sel->locked) { /* the wait could not start */
        sel->locked = 0;
        chan_cores_unlock(sel->cores, sel->ncores);
    }
    int no = sel_settle(sel);
    if (g && no && sel->dir == C_RECV && !sel->closed)
        give_back(sel, g);
    sel_release(sel);
}

static chan_sel *sel_new(lua_State *L, sched *s, int n)
{
    chan_sel *sel = s->spare_wait;
    if (n == 1 && sel)
        s->spare_wait = NULL;
    else
        sel =
            malloc(sizeof *sel + (size_t)(n > 1 ? n : 1) * (sizeof(chan_waiter) + sizeof(void *)));
    if (!sel)
        luaL_error(L, "not enough memory");
    sel->parker.park = sel_park;
    sel->parker.cancel = sel_cancel;
    sel->wake.fn = on_wake;
    sel->s = s;
    sel->port = NULL;
    sel->g = NULL;
    atomic_init(&sel->fired, 0);
    atomic_init(&sel->refs, 1);
    sel->closed = sel->parked = sel->counted = sel->nshared = sel->ncores = sel->locked = 0;
    sel->n = n;
    sel->cores = (chan_core **)&sel->w[n > 1 ? n : 1];
    return sel;
}

static void waiter_init(chan_waiter *w, chan_sel *sel, channel *ch, int chidx, int vidx, int no,
                        int dir)
{
    w->node.next = w->node.prev = NULL;
    w->sel = sel;
    w->ch = ch;
    w->core = NULL;
    w->val.p = NULL;
    w->val.n = 0;
    w->vidx = vidx;
    w->chidx = chidx;
    w->no = no;
    w->dir = dir;
    w->queued = 0;
}

/* In the continuation: the wait is over (fired, or its deadline passed).
 * Returns the case that happened (0: none). */
static int sel_end(lua_State *L, chan_sel *sel)
{
    gor *g = gor_of(L);
    if (g)
        g->parker = NULL;
    return sel_settle(sel);
}

static void decode_or_return(lua_State *L, chan_core *c, chan_val *v, sched *cur);

/* After sel_end, for a receive that happened: pushes the value (a shared
 * channel's, decoded here; a local one's is on the stack already) and
 * true, or nil, false when it happened because the channel was closed; then
 * releases sel. */
static void recv_result(lua_State *L, chan_sel *sel, int no)
{
    if (sel->closed) {
        sel_release(sel);
        lua_pushnil(L);
        lua_pushboolean(L, 0);
        return;
    }
    chan_waiter *w = waiter_of(sel, no);
    if (w->core) {
        chan_val v = w->val;
        chan_core *c = w->core; /* (alive: its channel is on this stack) */
        sched *s = sel->s;
        w->val.p = NULL;
        sel_release(sel);
        decode_or_return(L, c, &v, s);
    } else {
        sel_release(sel);
    }
    lua_pushboolean(L, 1);
}

/* xorshift64*, seeded once per thread: select's choice among ready cases. */
static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state;
    if (!x)
        x = sched_now_ns() ^ (uint64_t)(uintptr_t)&rng_state ^ 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ---- the operations that do not wait: a channel of this VM ---- */

/* Sends the value at vidx: 1 done, 0 it would wait, -1 the channel is
 * closed. */
static int try_send_at(lua_State *L, channel *ch, int chidx, int vidx)
{
    if (ch->closed)
        return -1;
    chan_waiter *r;
    while ((r = first_live(&ch->recvq))) {
        if (!claim(r, 0)) { /* (a shared case of its select won meanwhile) */
            dequeue(r);
            continue;
        }
        lua_pushvalue(L, vidx);
        lua_xmove(L, r->sel->g->L, 1); /* the receiver made room before it parked */
        dequeue(r);
        unqueue_local(r->sel);
        wake(r, ch->s);
        return 1;
    }
    if (ch->count < ch->cap) {
        lua_pushvalue(L, vidx);
        buf_push(L, ch, chidx);
        return 1;
    }
    return 0;
}

/* Pushes the first live waiting sender's value (taken) and wakes it; 0
 * (nothing pushed) when there is none. */
static int take_from_sender(lua_State *L, channel *ch)
{
    chan_waiter *w;
    while ((w = first_live(&ch->sendq))) {
        if (!claim(w, 0)) {
            dequeue(w);
            continue;
        }
        lua_State *S = w->sel->g->L;
        lua_pushvalue(S, w->vidx); /* the sender made room before it parked */
        lua_xmove(S, L, 1);
        dequeue(w);
        unqueue_local(w->sel);
        wake(w, ch->s);
        return 1;
    }
    return 0;
}

/* Receives: pushes value, true (1); or nil, false once closed and drained
 * (1); or nothing when it would wait (0). */
static int try_recv(lua_State *L, channel *ch, int chidx)
{
    if (ch->nback > 0) {
        back_pop(L, ch, chidx);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (ch->count > 0) {
        buf_pop(L, ch, chidx);
        if (take_from_sender(L, ch)) /* its value takes the freed slot */
            buf_push(L, ch, chidx);
        lua_pushboolean(L, 1);
        return 1;
    }
    if (take_from_sender(L, ch)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (ch->closed) {
        lua_pushnil(L);
        lua_pushboolean(L, 0);
        return 1;
    }
    return 0;
}

/* Whether a receive (a send) can proceed now on a channel with count
 * values waiting, its senders' (receivers') queue q and its closed flag: a
 * channel of this VM's, or a shared core's with its lock held. */
static int recv_ready(lua_Integer count, mlist *q, int closed)
{
    return count > 0 || first_live(q) || closed;
}

static int send_ready(lua_Integer count, lua_Integer cap, mlist *q, int closed)
{
    return closed || first_live(q) || count < cap;
}

/* ---- the same on a shared channel, with its core's lock held ---- */

/* Sends *v (taken when done): 1 done, 0 it would wait, -1 closed, -2 out
 * of memory. */
static int core_try_send(chan_core *c, chan_val *v, sched *cur)
{
    if (c->closed)
        return -1;
    chan_waiter *r;
    while ((r = first_live(&c->recvq))) {
        if (!claim(r, 0)) {
            dequeue(r);
            continue;
        }
        r->val = *v;
        v->p = NULL;
        dequeue(r);
        wake(r, cur);
        return 1;
    }
    if ((lua_Integer)c->count < c->cap) {
        if (chan_core_push(c, *v, 0) != 0)
            return -2;
        v->p = NULL;
        return 1;
    }
    return 0;
}

/* Takes the first live waiting sender's value into *v and wakes it. */
static int core_take_from_sender(chan_core *c, chan_val *v, sched *cur)
{
    chan_waiter *w;
    while ((w = first_live(&c->sendq))) {
        if (!claim(w, 0)) {
            dequeue(w);
            continue;
        }
        *v = w->val;
        w->val.p = NULL;
        dequeue(w);
        wake(w, cur);
        return 1;
    }
    return 0;
}

/* Receives into *v: 1 with a value, 2 closed and drained, 0 it would wait. */
static int core_try_recv(chan_core *c, chan_val *v, sched *cur)
{
    if (c->count > 0) {
        *v = chan_core_pop(c);
        chan_val sv;
        if (core_take_from_sender(c, &sv, cur))
            chan_core_push(c, sv, 0); /* (room: a slot was just freed) */
        return 1;
    }
    if (core_take_from_sender(c, v, cur))
        return 1;
    return c->closed ? 2 : 0;
}

/* A value received from c that its receiver cannot take after all: to the
 * next live receiver, or back to the front of the channel. */
static void core_return(chan_core *c, chan_val v, sched *cur)
{
    pthread_mutex_lock(&c->mu);
    chan_waiter *r;
    int done = 0;
    while (!done && (r = first_live(&c->recvq))) {
        if (!claim(r, 0)) {
            dequeue(r);
            continue;
        }
        r->val = v;
        dequeue(r);
        wake(r, cur);
        done = 1;
    }
    if (!done && chan_core_push(c, v, 1) != 0)
        done = -1;
    pthread_mutex_unlock(&c->mu);
    if (done < 0) { /* out of memory: the value is lost, and said so */
        lua_State *T = sched_scratch(cur);
        lua_pushliteral(T, "a channel value was lost (out of memory)");
        sched_report_error(cur, 0, LUA_NOREF);
        chan_val_free(&v);
    }
}

/* A value handed to w (of a shared channel) whose goroutine was killed
 * before it took it. */
static void core_give_back(chan_waiter *w, sched *cur)
{
    chan_val v = w->val;
    w->val.p = NULL;
    core_return(w->core, v, cur);
}

/* Pushes a value received from c; when this VM cannot decode it (out of
 * memory), the value goes back to the channel, not lost, and the receive
 * raises. */
static void decode_or_return(lua_State *L, chan_core *c, chan_val *v, sched *cur)
{
    char err[256];
    if (chan_val_decode(L, v, err, sizeof err) == 0)
        return;
    core_return(c, *v, cur);
    v->p = NULL;
    luaL_error(L, "cannot receive a channel value here: %s (it stays in the channel)", err);
}

/* A receiver was handed a value and killed before it ran: the value goes
 * to the next waiting receiver, or waits in the channel for one, so a value
 * a send reported as delivered is never lost. A local channel's value is on
 * top of g's stack. */
static void give_back(chan_sel *sel, gor *g)
{
    chan_waiter *w = waiter_of(sel, atomic_load(&sel->fired));
    if (w->core) {
        core_give_back(w, sel->s);
        return;
    }
    lua_State *L = g->L;
    channel *ch = w->ch;
    chan_waiter *r;
    while ((r = first_live(&ch->recvq))) {
        if (!claim(r, 0)) {
            dequeue(r);
            continue;
        }
        lua_xmove(L, r->sel->g->L, 1);
        dequeue(r);
        unqueue_local(r->sel);
        wake(r, sel->s);
        return;
    }
    /* the queue may need memory: a protected call on the VM's scratch
     * thread (this runs inside sched_kill, from a loop callback, where an
     * error must not escape); the killed goroutine's thread cannot call */
    lua_State *T = sched_scratch(sel->s);
    lua_pushvalue(L, w->chidx);
    lua_insert(L, -2);
    lua_xmove(L, T, 2); /* channel, value */
    lua_pushcfunction(T, back_push_p);
    lua_insert(T, -3);
    if (lua_pcall(T, 2, 0, 0) != LUA_OK) /* (out of memory: the value is lost, and said so) */
        sched_report_error(sel->s, g->id, LUA_NOREF);
}

/* ---- choosing among the cases that can proceed ---- */

/* Stack of a select from base (the cases table): base+1 the kinds (a
 * userdata of n bytes), then per case i two slots: its channel (or false for
 * default) at base+2i, its send value at base+2i+1. */
#define SEL_KINDS(base) ((base) + 1)
#define SEL_CH(base, i) ((base) + 2 * (i))
#define SEL_VAL(base, i) ((base) + 2 * (i) + 1)

/* The cases of a wait as a scan sees them: sel's waiters, or (sel NULL)
 * the cases of a select over channels of this VM on the stack from base,
 * kinds[1..n] (C_DEFAULT: no channel), before any waiter is made. */
typedef struct cases {
    chan_sel *sel;
    lua_State *L;
    const char *kinds;
    int base, n;
} cases;

/* Case i (0-based) of cs: its channel and kind (NULL: the default). */
static channel *case_at(const cases *cs, int i, int *dir)
{
    if (cs->sel) {
        *dir = cs->sel->w[i].dir;
        return cs->sel->w[i].ch;
    }
    *dir = cs->kinds[i + 1];
    return *dir == C_DEFAULT ? NULL : lua_touserdata(cs->L, SEL_CH(cs->base, i + 1));
}

/* Whether a case of kind dir on ch can proceed now (a shared channel:
 * with its core's lock held). */
static int case_ready(channel *ch, int dir)
{
    chan_core *c = ch->core;
    if (c)
        return dir == C_RECV ? recv_ready((lua_Integer)c->count, &c->sendq, c->closed)
                             : send_ready((lua_Integer)c->count, c->cap, &c->recvq, c->closed);
    return dir == C_RECV ? recv_ready(ch->count + ch->nback, &ch->sendq, ch->closed)
                         : send_ready(ch->count, ch->cap, &ch->recvq, ch->closed);
}

/* One of the cases that can proceed now, each with the same chance
 * (reservoir sampling: one draw per ready case): its index, or -1 when
 * none can. Shared channels: with their cores locked. */
static int scan_ready(const cases *cs)
{
    int chosen = -1;
    uint64_t nready = 0;
    for (int i = 0; i < cs->n; i++) {
        int dir;
        channel *ch = case_at(cs, i, &dir);
        if (ch && case_ready(ch, dir) && rng_next() % ++nready == 0)
            chosen = i;
    }
    return chosen;
}

/* Does case i of cs, which the scan found ready: 0 when it cannot after all
 * (another VM took a waiter it counted on meanwhile); else it happened,
 * *closed telling whether because its channel was closed (a receive on a
 * channel of this VM pushed value, ok); -2: out of memory. */
static int try_case(lua_State *L, sched *s, const cases *cs, int i, int *closed)
{
    int dir, r;
    channel *ch = case_at(cs, i, &dir);
    if (ch->core) { /* (a waiter's: op_run made one per case) */
        chan_val *v = &cs->sel->w[i].val;
        r = dir == C_RECV ? core_try_recv(ch->core, v, s) : core_try_send(ch->core, v, s);
        *closed = dir == C_RECV ? r == 2 : r == -1;
        return r;
    }
    int chidx = cs->sel ? cs->sel->w[i].chidx : SEL_CH(cs->base, i + 1);
    if (dir == C_RECV) {
        r = try_recv(L, ch, chidx);
        *closed = r && !lua_toboolean(L, -1);
    } else {
        r = try_send_at(L, ch, chidx, cs->sel ? cs->sel->w[i].vidx : SEL_VAL(cs->base, i + 1));
        *closed = r < 0;
    }
    return r;
}

/* Does one of the cases of cs that can proceed now, chosen uniformly (again
 * when the one chosen could not after all): its index, *r and *closed as
 * try_case left them; -1 when none can. */
static int run_ready(lua_State *L, sched *s, const cases *cs, int *r, int *closed)
{
    for (;;) {
        int i = scan_ready(cs);
        if (i < 0 || (*r = try_case(L, s, cs, i, closed)) != 0)
            return i;
    }
}

/* ---- a wait that names a shared channel ---- */

/* A shared channel's case joins sel (before its cores are locked). */
static void mark_shared(chan_sel *sel, chan_waiter *w, chan_core *c)
{
    w->core = c;
    sel->nshared++;
    if (!sel->port) {
        sel->port = sel->s->port;
        port_ref(sel->port);
    }
    if (sel->parked && !sel->counted) { /* (a channel that became shared under it) */
        sel->counted = 1;
        sel->s->remote_waits++;
    }
}

/* Encodes the values of sel's sends on shared channels; one of them may
 * make another case's channel shared (a channel sent on a channel). */
static void encode_sends(lua_State *L, chan_sel *sel)
{
    for (int again = 1; again;) {
        again = 0;
        for (int i = 0; i < sel->n; i++) {
            chan_waiter *w = &sel->w[i];
            if (w->dir != C_SEND || !w->ch->core || w->val.p)
                continue;
            char err[256];
            if (chan_val_encode(L, w->vidx, &w->val, err, sizeof err) != 0) {
                sel_release(sel);
                luaL_error(L, "%s", err);
            }
            again = 1;
        }
    }
}

/*
** Runs a wait whose cases (sel->w, filled by the caller) name at least one
** shared channel; dflt: the default case's number, 0 for none. With every
** core of its cases locked, it does one ready case (chosen uniformly) or
** the default, or parks (park unlocks). k gets sel in every case: at once
** when the wait did not park (fired is the case, with dir C_DEFAULT for the
** default; -1 when the deadline had passed).
*/
static int op_run(lua_State *L, sched *s, chan_sel *sel, int dflt, int timed, uint64_t due,
                  lua_KFunction k)
{
    encode_sends(L, sel);
    for (int i = 0; i < sel->n; i++) {
        chan_waiter *w = &sel->w[i];
        if (w->ch->core) {
            mark_shared(sel, w, w->ch->core);
            sel->cores[sel->ncores++] = w->core;
        }
    }
    chan_cores_lock(sel->cores, sel->ncores);
    sel->locked = 1;
    int no = -1, dir = 0, closed = 0, r = 0;
    cases cs = {sel, L, NULL, 0, sel->n};
    int i = run_ready(L, s, &cs, &r, &closed);
    if (i >= 0) {
        chan_waiter *w = &sel->w[i];
        no = w->no;
        dir = w->dir;
        if (!w->core && dir == C_RECV) /* value, ok: recv_result takes the value */
            lua_pop(L, closed ? 2 : 1);
    }
    if (no < 0 && dflt) {
        no = dflt;
        dir = C_DEFAULT;
    } else if (no < 0 && (!timed || due > sched_now_ns())) {
        return sched_wait_parker(L, s, &sel->parker, timed ? due : 0, (lua_KContext)sel, k);
    }
    sel->locked = 0;
    chan_cores_unlock(sel->cores, sel->ncores);
    if (r == -2) {
        sel_release(sel);
        return luaL_error(L, "not enough memory");
    }
    atomic_store(&sel->fired, no);
    sel->dir = dir;
    sel->closed = closed;
    return k(L, LUA_OK, (lua_KContext)sel);
}

/* A plain send (vidx 2) or receive on a shared channel (index 1). */
static int shared_op(lua_State *L, channel *ch, int dir, lua_KFunction k)
{
    luaL_checkstack(L, 4, "channel operation");
    chan_sel *sel = sel_new(L, ch->s, 1);
    waiter_init(&sel->w[0], sel, ch, 1, dir == C_SEND ? 2 : 0, 1, dir);
    return op_run(L, ch->s, sel, 0, 0, 0, k);
}

/* try_send on a shared channel: 1, 0 or -1 (closed). */
static int shared_try_send(lua_State *L, channel *ch, int vidx)
{
    chan_val v;
    char err[256];
    if (chan_val_encode(L, vidx, &v, err, sizeof err) != 0)
        return luaL_error(L, "%s", err);
    pthread_mutex_lock(&ch->core->mu);
    int r = core_try_send(ch->core, &v, ch->s);
    pthread_mutex_unlock(&ch->core->mu);
    chan_val_free(&v); /* (taken when sent) */
    if (r == -2)
        return luaL_error(L, "not enough memory");
    return r;
}

/* try_receive on a shared channel: pushes value, ok like try_recv, or
 * nothing (0) when it would wait. */
static int shared_try_recv(lua_State *L, channel *ch)
{
    chan_val v = {NULL, 0};
    pthread_mutex_lock(&ch->core->mu);
    int r = core_try_recv(ch->core, &v, ch->s);
    pthread_mutex_unlock(&ch->core->mu);
    if (r == 0)
        return 0;
    if (r == 2) {
        lua_pushnil(L);
        lua_pushboolean(L, 0);
        return 1;
    }
    decode_or_return(L, ch->core, &v, ch->s);
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- send / receive ---- */

static int push_closed_send(lua_State *L)
{
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "send on closed channel");
    return 2;
}

static int send_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    chan_sel *sel = (chan_sel *)ctx;
    sel_end(L, sel);
    int closed = sel->closed;
    sel_release(sel);
    if (closed)
        return push_closed_send(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* Raises for a send or close (what) on a receive-only channel. */
static void check_writable(lua_State *L, const channel *ch, const char *what)
{
    if (ch->recv_only)
        luaL_error(L, "%s on a receive-only channel (after() or a context's done())", what);
}

static int ch_send(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    check_writable(L, ch, "send");
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    if (ch->core)
        return shared_op(L, ch, C_SEND, send_k);
    int r = try_send_at(L, ch, 1, 2);
    if (r < 0)
        return push_closed_send(L);
    if (r > 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_checkstack(L, 4, "channel send");
    chan_sel *sel = sel_new(L, ch->s, 1);
    waiter_init(&sel->w[0], sel, ch, 1, 2, 1, C_SEND);
    return sched_wait_parker(L, ch->s, &sel->parker, 0, (lua_KContext)sel, send_k);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    chan_sel *sel = (chan_sel *)ctx;
    recv_result(L, sel, sel_end(L, sel));
    return 2;
}

static int ch_receive(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    lua_settop(L, 1);
    if (ch->core)
        return shared_op(L, ch, C_RECV, recv_k);
    if (try_recv(L, ch, 1))
        return 2;
    luaL_checkstack(L, 4, "channel receive");
    chan_sel *sel = sel_new(L, ch->s, 1);
    waiter_init(&sel->w[0], sel, ch, 1, 0, 1, C_RECV);
    return sched_wait_parker(L, ch->s, &sel->parker, 0, (lua_KContext)sel, recv_k);
}

static int ch_try_send(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    check_writable(L, ch, "send");
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    int r = ch->core ? shared_try_send(L, ch, 2) : try_send_at(L, ch, 1, 2);
    if (r < 0)
        return push_closed_send(L);
    lua_pushboolean(L, r);
    return 1;
}

static int ch_try_receive(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    lua_settop(L, 1);
    if (ch->core ? shared_try_recv(L, ch) : try_recv(L, ch, 1))
        return 2;
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
}

static int push_already_closed(lua_State *L)
{
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "channel already closed");
    return 2;
}

static int close_shared(lua_State *L, channel *ch)
{
    chan_core *c = ch->core;
    pthread_mutex_lock(&c->mu);
    int was = c->closed;
    c->closed = 1;
    chan_waiter *w;
    while (!was && (w = first_live(&c->recvq)))
        if (!fire(w, 1, ch->s))
            dequeue(w);
    while (!was && (w = first_live(&c->sendq)))
        if (!fire(w, 1, ch->s))
            dequeue(w);
    pthread_mutex_unlock(&c->mu);
    if (was)
        return push_already_closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int close_channel(lua_State *L, channel *ch)
{
    if (ch->core)
        return close_shared(L, ch);
    if (ch->closed)
        return push_already_closed(L);
    ch->closed = 1;
    chan_waiter *w;
    while ((w = first_live(&ch->recvq)))
        if (!fire(w, 1, ch->s))
            dequeue(w);
    while ((w = first_live(&ch->sendq)))
        if (!fire(w, 1, ch->s))
            dequeue(w);
    if (ch->after_ref != LUA_NOREF) {
        sched_timer_del(ch->s, &ch->after);
        luaL_unref(L, LUA_REGISTRYINDEX, ch->after_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, ch->fn_ref);
        ch->after_ref = ch->fn_ref = LUA_NOREF;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int ch_close(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    check_writable(L, ch, "close");
    return close_channel(L, ch);
}

/* _close(ch): closes a receive-only channel too (a context's done()). */
static int g_close_internal(lua_State *L)
{
    return close_channel(L, check_ch(L, 1));
}

/* _remote_close(ch): another VM may close ch (by a message to this one): a
 * goroutine waiting on it is not stuck (sched_stuck). */
static int g_remote_close(lua_State *L)
{
    check_ch(L, 1)->remote_close = 1;
    lua_settop(L, 1);
    return 1;
}

/* _recv_only(ch): Lua code can no longer send on ch or close it. */
static int g_recv_only(lua_State *L)
{
    check_ch(L, 1)->recv_only = 1;
    lua_settop(L, 1);
    return 1;
}

/* Values waiting in ch, and whether it is closed. */
static lua_Integer ch_count(channel *ch, int *closed)
{
    if (!ch->core) {
        *closed = ch->closed;
        return ch->count + ch->nback;
    }
    pthread_mutex_lock(&ch->core->mu);
    lua_Integer n = (lua_Integer)ch->core->count;
    *closed = ch->core->closed;
    pthread_mutex_unlock(&ch->core->mu);
    return n;
}

static int ch_len(lua_State *L)
{
    int closed;
    lua_pushinteger(L, ch_count(check_ch(L, 1), &closed));
    return 1;
}

static int ch_cap(lua_State *L)
{
    lua_pushinteger(L, check_ch(L, 1)->cap);
    return 1;
}

static int ch_is_closed(lua_State *L)
{
    int closed;
    ch_count(check_ch(L, 1), &closed);
    lua_pushboolean(L, closed);
    return 1;
}

static int ch_tostring(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    int closed;
    lua_Integer n = ch_count(ch, &closed);
    lua_pushfstring(L, "Channel(%s%s%I/%I)", ch->core ? "shared, " : "", closed ? "closed, " : "",
                    n, (lua_Integer)ch->cap);
    return 1;
}

static int ch_gc(lua_State *L)
{
    channel *ch = lua_touserdata(L, 1);
    if (ch->core) {
        chan_core_unref(ch->core);
        ch->core = NULL;
    }
    return 0;
}

static channel *push_channel(lua_State *L, sched *s, lua_Integer cap)
{
    channel *ch = lua_newuserdatauv(L, sizeof *ch, 2);
    memset(ch, 0, sizeof *ch);
    ch->magic = CH_MAGIC;
    ch->s = s;
    ch->cap = cap;
    ch->after_ref = ch->fn_ref = LUA_NOREF;
    mlist_init(&ch->recvq);
    mlist_init(&ch->sendq);
    luaL_setmetatable(L, CHANNEL_TNAME);
    return ch;
}

/* A new channel of this VM, its ring buffer made. */
static channel *push_local_channel(lua_State *L, sched *s, lua_Integer cap)
{
    channel *ch = push_channel(L, s, cap);
    if (cap > 0) {
        lua_createtable(L, cap < 64 ? (int)cap : 64, 0);
        lua_setiuservalue(L, -2, 1);
    }
    return ch;
}

#define CHANNEL_CAP_MAX ((lua_Integer)1 << 40)

static int g_channel(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer cap = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, cap >= 0 && cap <= CHANNEL_CAP_MAX, 1,
                  "capacity must be a non-negative integer");
    push_local_channel(L, s, cap);
    return 1;
}

/* ---- select ---- */

static int select_call_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return lua_gettop(L) - (int)ctx;
}

/* Case no happened; its nv results (receive: value, ok) are on top. Returns
 * no followed by its handler's results (or by the nv values when it has no
 * handler). */
static int select_finish(lua_State *L, int base, int no, int nv)
{
    int top0 = lua_gettop(L) - nv;
    luaL_checkstack(L, 3, "select");
    lua_pushinteger(L, no);
    lua_insert(L, top0 + 1);
    lua_rawgeti(L, base, no);
    lua_getfield(L, -1, "handler");
    lua_remove(L, -2);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return nv + 1;
    }
    lua_insert(L, top0 + 2);
    lua_callk(L, nv, LUA_MULTRET, (lua_KContext)top0, select_call_k);
    return select_call_k(L, LUA_OK, (lua_KContext)top0);
}

static int select_timed_out(lua_State *L)
{
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "timeout");
    return 2;
}

static int closed_send_error(lua_State *L, int no)
{
    return luaL_error(L, "select: send on closed channel (case %d)", no);
}

static int select_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    chan_sel *sel = (chan_sel *)ctx;
    int base = 1;
    int no = sel_end(L, sel);
    int closed = sel->closed, dir = sel->dir;
    if (!no) {
        sel_release(sel);
        return select_timed_out(L);
    }
    if (dir != C_RECV) {
        sel_release(sel);
        if (dir == C_SEND && closed)
            return closed_send_error(L, no);
        return select_finish(L, base, no, 0);
    }
    recv_result(L, sel, no);
    return select_finish(L, base, no, 2);
}

/* The wait of a select: a waiter per case but the default. */
static chan_sel *select_sel(lua_State *L, sched *s, int base, const char *kinds, int n, int nwait)
{
    chan_sel *sel = sel_new(L, s, nwait);
    int k = 0;
    for (int i = 1; i <= n; i++)
        if (kinds[i] != C_DEFAULT)
            waiter_init(&sel->w[k++], sel, lua_touserdata(L, SEL_CH(base, i)), SEL_CH(base, i),
                        SEL_VAL(base, i), i, kinds[i]);
    return sel;
}

/* select(cases) with the cases table at index 1; due: the deadline (ns,
 * 0: none; timed: whether there is one, so that 0 ms polls). */
static int results_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return lua_gettop(L);
}

/* A case's channel is another layer's (a fleet channel, its __select on
 * top of L's stack): that layer runs the whole select, __select(cases,
 * ms or nil). */
static int select_other(lua_State *L, int timed, uint64_t due)
{
    lua_replace(L, 2);
    lua_settop(L, 2);
    lua_rotate(L, 1, 1); /* __select, cases */
    if (timed) {
        uint64_t now = sched_now_ns();
        lua_pushnumber(L, due > now ? (double)(due - now) / 1e6 : 0);
    } else {
        lua_pushnil(L);
    }
    lua_callk(L, 2, LUA_MULTRET, 0, results_k);
    return lua_gettop(L);
}

static int select_run(lua_State *L, sched *s, int timed, uint64_t due)
{
    int base = 1;
    luaL_checktype(L, base, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, base);
    luaL_argcheck(L, n <= SELECT_MAX_CASES, base, "too many cases");
    lua_settop(L, base);
    luaL_checkstack(L, (int)(2 * n + 8), "select");
    char *kinds = lua_newuserdatauv(L, (size_t)n + 1, 0);
    int dflt = 0, nwait = 0, shared = 0;
    for (int i = 1; i <= n; i++) {
        if (lua_rawgeti(L, base, i) != LUA_TTABLE)
            return luaL_error(L, "bad argument #1 to 'select' (case %d: table expected, got %s)", i,
                              luaL_typename(L, -1));
        int c = lua_gettop(L);
        lua_getfield(L, c, "handler");
        if (!lua_isnil(L, -1) && !lua_isfunction(L, -1) && !luaL_getmetafield(L, -1, "__call"))
            return luaL_error(
                L, "bad argument #1 to 'select' (case %d: handler must be a function)", i);
        lua_settop(L, c);
        lua_getfield(L, c, "default");
        int is_default = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (is_default) {
            lua_getfield(L, c, "channel");
            int named = !lua_isnil(L, -1);
            lua_pop(L, 1);
            if (named)
                return luaL_error(L,
                                  "bad argument #1 to 'select' (case %d: a default case takes no "
                                  "channel)",
                                  i);
            if (dflt)
                return luaL_error(L, "bad argument #1 to 'select' (more than one default case)");
            dflt = i;
            kinds[i] = C_DEFAULT;
            lua_pop(L, 1);
            lua_pushboolean(L, 0);
            lua_pushnil(L);
            continue;
        }
        lua_getfield(L, c, "channel");
        channel *ch = to_ch(L, -1);
        if (!ch && luaL_getmetafield(L, -1, "__select") != LUA_TNIL)
            return select_other(L, timed, due);
        if (!ch)
            return luaL_error(L, "bad argument #1 to 'select' (case %d: channel expected, got %s)",
                              i, luaL_typename(L, -1));
        lua_getfield(L, c, "receive");
        int recv = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, c, "send");
        if (recv == !lua_isnil(L, -1))
            return luaL_error(L,
                              "bad argument #1 to 'select' (case %d: receive = true or send = "
                              "value expected%s)",
                              i, recv ? ", not both" : "");
        if (!recv && ch->recv_only)
            return luaL_error(
                L, "bad argument #1 to 'select' (case %d: send on a receive-only channel)", i);
        kinds[i] = recv ? C_RECV : C_SEND;
        nwait++;
        shared |= ch->core != NULL;
        lua_remove(L, c); /* leaves channel, value */
    }
    if (shared)
        return op_run(L, s, select_sel(L, s, base, kinds, (int)n, nwait), dflt, timed, due,
                      select_k);
    cases cs = {NULL, L, kinds, base, (int)n};
    int r = 0, closed = 0, i = run_ready(L, s, &cs, &r, &closed);
    if (i >= 0 && kinds[i + 1] == C_RECV) /* value, ok */
        return select_finish(L, base, i + 1, 2);
    if (i >= 0)
        return closed ? closed_send_error(L, i + 1) : select_finish(L, base, i + 1, 0);
    if (dflt)
        return select_finish(L, base, dflt, 0);
    if (timed && due <= sched_now_ns())
        return select_timed_out(L);
    chan_sel *sel = select_sel(L, s, base, kinds, (int)n, nwait);
    return sched_wait_parker(L, s, &sel->parker, timed ? due : 0, (lua_KContext)sel, select_k);
}

static double check_ms(lua_State *L, int arg)
{
    lua_Number ms = luaL_checknumber(L, arg);
    luaL_argcheck(L, ms >= 0, arg, "non-negative number of milliseconds expected");
    return (double)ms;
}

/* Unix-free deadline on the sched_now_ns clock; UINT64_MAX for never. */
static uint64_t due_after(double ms)
{
    if (ms > 1e12)
        return UINT64_MAX;
    return sched_now_ns() + (uint64_t)llround(ms * 1e6);
}

static int g_select(lua_State *L)
{
    return select_run(L, lua_touserdata(L, lua_upvalueindex(1)), 0, 0);
}

static int g_select_timeout(lua_State *L)
{
    uint64_t due = due_after(check_ms(L, 1));
    lua_remove(L, 1);
    return select_run(L, lua_touserdata(L, lua_upvalueindex(1)), due != UINT64_MAX,
                      due == UINT64_MAX ? 0 : due);
}

/* ---- after(ms) ---- */

static void on_after(theap_ent *e)
{
    channel *ch = mlist_entry(e, channel, after);
    lua_State *T = sched_scratch(ch->s);
    int ref = ch->after_ref;
    ch->after_ref = LUA_NOREF;
    lua_rawgeti(T, LUA_REGISTRYINDEX, ref);
    lua_pushnumber(T, (lua_Number)sched_now_ns() / 1e6);
    try_send_at(T, ch, lua_gettop(T) - 1, lua_gettop(T));
    lua_pop(T, 2);
    luaL_unref(T, LUA_REGISTRYINDEX, ref);
    if (ch->fn_ref != LUA_NOREF) { /* _after_call's function: it cannot wait here */
        int fref = ch->fn_ref;
        ch->fn_ref = LUA_NOREF;
        lua_rawgeti(T, LUA_REGISTRYINDEX, fref);
        luaL_unref(T, LUA_REGISTRYINDEX, fref);
        if (lua_pcall(T, 0, 0, 0) != LUA_OK)
            sched_report_error(ch->s, 0, LUA_NOREF);
    }
}

static int g_after(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    uint64_t due = due_after(check_ms(L, 1));
    channel *ch = push_local_channel(L, s, 1);
    ch->recv_only = 1; /* as Go's <-chan: its one value is the timer's */
    if (due == UINT64_MAX)
        return 1; /* never */
    /* anchored first: a timer entry must never outlive its channel (luaL_ref
     * can raise when memory runs out) */
    lua_pushvalue(L, -1);
    ch->after_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    sched_timer_add(s, &ch->after, due, on_after);
    if (!theap_has(&ch->after)) {
        luaL_unref(L, LUA_REGISTRYINDEX, ch->after_ref);
        ch->after_ref = LUA_NOREF;
        return luaL_error(L, "not enough memory");
    }
    return 1;
}

/* _after_call(ms, fn): after(ms) that also calls fn() (from the loop: fn
 * cannot wait) when it fires; closing the channel first stops both. For
 * the contexts' deadlines (lua/module/context.lua). */
static int g_after_call(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    int fref = luaL_ref(L, LUA_REGISTRYINDEX); /* (before the timer: see g_after) */
    lua_settop(L, 1);
    g_after(L); /* (reads ms, pushes the channel; cannot raise once the timer is set) */
    channel *ch = lua_touserdata(L, -1);
    if (ch->after_ref != LUA_NOREF)
        ch->fn_ref = fref;
    else
        luaL_unref(L, LUA_REGISTRYINDEX, fref);
    return 1;
}

/* ---- travelling to another VM: the channel becomes shared ---- */

/* Encodes the value on top of L (popped) to the back of c; NULL, or the
 * error. */
static const char *share_value(lua_State *L, chan_core *c, char *err, size_t errlen)
{
    chan_val v;
    int rc = chan_val_encode(L, -1, &v, err, errlen);
    lua_pop(L, 1);
    if (rc != 0)
        return err;
    if (chan_core_push(c, v, 0) != 0) {
        chan_val_free(&v);
        return "not enough memory";
    }
    return NULL;
}

/* Moves ch's live waiters of q to the core's list cq. */
static void share_waiters(mlist *q, mlist *cq, chan_core *c)
{
    chan_waiter *w;
    while ((w = first_waiter(q))) {
        dequeue(w);
        if (atomic_load(&w->sel->fired) != 0)
            continue;
        mark_shared(w->sel, w, c);
        mlist_push_back(cq, &w->node);
        w->queued = 1;
    }
}

/* The first time ch (at chidx, a channel of this VM) travels: its values
 * (given back, buffered, and those of its waiting senders, in the order
 * they will be received) are encoded into a new core, and its waiters move
 * there. Raises, changing nothing, when one of them cannot travel. */
static chan_core *share(lua_State *L, channel *ch, int chidx)
{
    if (ch->core)
        return ch->core;
    if (ch->recv_only)
        luaL_error(
            L, "an after() channel or a context's done() cannot travel to another VM or process "
               "(it belongs to the VM that made it)");
    if (ch->sharing)
        luaL_error(L, "a channel that holds itself cannot travel");
    chan_core *c = chan_core_new(ch->cap);
    if (!c)
        luaL_error(L, "not enough memory");
    char err[256];
    const char *fail = NULL;
    luaL_checkstack(L, 4, "channel");
    ch->sharing = 1;
    for (lua_Integer i = 1; i <= ch->nback && !fail; i++) {
        lua_getiuservalue(L, chidx, 2);
        lua_rawgeti(L, -1, i);
        lua_remove(L, -2);
        fail = share_value(L, c, err, sizeof err);
    }
    for (lua_Integer i = 0; i < ch->count && !fail; i++) {
        lua_getiuservalue(L, chidx, 1);
        lua_rawgeti(L, -1, (ch->head + i) % ch->cap + 1);
        lua_remove(L, -2);
        fail = share_value(L, c, err, sizeof err);
    }
    mlist *n;
    mlist_foreach (n, &ch->sendq) {
        chan_waiter *w = mlist_entry(n, chan_waiter, node);
        if (fail || atomic_load(&w->sel->fired) != 0)
            continue;
        lua_State *S = w->sel->g->L;
        lua_pushvalue(S, w->vidx);
        lua_xmove(S, L, 1);
        if (chan_val_encode(L, -1, &w->val, err, sizeof err) != 0)
            fail = err;
        lua_pop(L, 1);
    }
    ch->sharing = 0;
    if (fail) {
        mlist_foreach (n, &ch->sendq)
            chan_val_free(&mlist_entry(n, chan_waiter, node)->val);
        chan_core_unref(c);
        luaL_error(L, "a channel that holds a value that cannot travel cannot travel: %s", fail);
    }
    share_waiters(&ch->recvq, &c->recvq, c);
    share_waiters(&ch->sendq, &c->sendq, c);
    c->closed = ch->closed;
    lua_pushnil(L);
    lua_setiuservalue(L, chidx, 1);
    lua_pushnil(L);
    lua_setiuservalue(L, chidx, 2);
    ch->head = ch->count = ch->nback = 0;
    ch->core = c; /* (the core's first reference) */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
    lua_pushvalue(L, chidx);
    lua_rawsetp(L, -2, c);
    lua_pop(L, 1);
    return c;
}

/* A channel that leaves the process (a fleet pool) becomes the layer's
 * object (Redis-backed) for good: this VM's userdata stops being a channel
 * here (its methods are the layer's), so nothing may be in it or wait on it
 * yet, and no other VM may share it. */
static int ch_leave(lua_State *L, int idx, travel_ctx *tc)
{
    channel *ch = lua_touserdata(L, idx);
    if (!tc->obj_encode)
        return luaL_error(L, "a channel cannot travel to %s", tc->where);
    if (ch->core)
        return luaL_error(L, "a channel shared with pool tasks of this process cannot travel to %s",
                          tc->where);
    if (ch->recv_only || ch->remote_close || ch->after_ref != LUA_NOREF)
        return luaL_error(L,
                          "a receive-only channel (after(), a context's done()) cannot travel "
                          "to %s",
                          tc->where);
    if (ch->count > 0 || ch->nback > 0 || first_live(&ch->recvq) || first_live(&ch->sendq))
        return luaL_error(L,
                          "a channel that holds values or has goroutines waiting on it cannot "
                          "travel to %s (submit the task before using the channel)",
                          tc->where);
    if (tc->obj_encode(tc, L, idx, "channel", ch->cap, ch->closed) != 0)
        return -1;
    ch->magic = CH_LEFT_MAGIC; /* no longer a channel of this VM */
    return 0;
}

static int ch_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    travel_ctx *tc = call;
    if (tc)
        return ch_leave(L, idx, tc);
    chan_core *c = share(L, lua_touserdata(L, idx), lua_absindex(L, idx));
    travel_name(L, c, &c->ta);
    return 0;
}

static int ch_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    sched *s = ud;
    travel_ctx *tc = call;
    if (tc && tc->obj_decode)
        return tc->obj_decode(tc, L, data, len);
    if (tc)
        return luaL_error(L, "a channel cannot travel from %s", tc->where);
    chan_core *c = travel_take(L, data, len, "a channel", chan_core_ref_any);
    if (!c)
        return -1;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
    if (lua_rawgetp(L, -1, c) == LUA_TUSERDATA) { /* this VM has it already */
        lua_remove(L, -2);
        chan_core_unref(c);
        return 0;
    }
    lua_pop(L, 1);
    channel *ch = push_channel(L, s, c->cap);
    ch->core = c;
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, c);
    lua_remove(L, -2);
    return 0;
}

/* ---- range and iter, in Lua: their loop calls back into Lua code that
 * may itself wait ---- */

static const char LOOPS_LUA[] =
    "local receive = ...\n"
    "local function range(ch, fn)\n"
    "  if type(fn) ~= 'function' and not (getmetatable(fn) or {}).__call then\n"
    "    error(\"bad argument #1 to 'range' (function expected, got \" .. type(fn) .. ')', 2)\n"
    "  end\n"
    "  while true do\n"
    "    local v, ok = receive(ch)\n"
    "    if not ok then return end\n"
    "    fn(v)\n"
    "  end\n"
    "end\n"
    "local function iter(ch)\n"
    "  receive(ch, nil, true)\n"
    "  return function()\n"
    "    local v, ok = receive(ch)\n"
    "    if ok then return v end\n"
    "  end\n"
    "end\n"
    "return range, iter\n";

/* receive(ch, nil, true) only checks ch (iter's argument check). */
static int ch_receive_or_check(lua_State *L)
{
    if (lua_toboolean(L, 3)) {
        check_ch(L, 1);
        return 0;
    }
    return ch_receive(L);
}

/* channel_send(ch, ...) and the others are ch's methods; for an object
 * whose metatable says __channel (a channel that left the process), its
 * own method of that name. */
static int alias_call(lua_State *L, const char *method, lua_CFunction local)
{
    if (to_ch(L, 1))
        return local(L);
    if (luaL_getmetafield(L, 1, "__channel") != LUA_TNIL) {
        lua_pop(L, 1);
        if (luaL_getmetafield(L, 1, "__index") == LUA_TTABLE) {
            lua_getfield(L, -1, method);
            lua_remove(L, -2);
            lua_insert(L, 1);
            lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, results_k);
            return lua_gettop(L);
        }
    }
    check_ch(L, 1); /* raises */
    return 0;
}

static int alias_send(lua_State *L)
{
    return alias_call(L, "send", ch_send);
}

static int alias_receive(lua_State *L)
{
    return alias_call(L, "receive", ch_receive);
}

static int alias_close(lua_State *L)
{
    return alias_call(L, "close", ch_close);
}

static int alias_len(lua_State *L)
{
    return alias_call(L, "len", ch_len);
}

static int alias_cap(lua_State *L)
{
    return alias_call(L, "cap", ch_cap);
}

void channel_open(lua_State *L, sched *s)
{
    static const luaL_Reg methods[] = {{"send", ch_send},
                                       {"receive", ch_receive},
                                       {"try_send", ch_try_send},
                                       {"try_receive", ch_try_receive},
                                       {"close", ch_close},
                                       {"len", ch_len},
                                       {"cap", ch_cap},
                                       {"is_closed", ch_is_closed},
                                       {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"channel", g_channel},
                                     {"select", g_select},
                                     {"select_timeout", g_select_timeout},
                                     {"after", g_after},
                                     {"_after_call", g_after_call},
                                     {"_close", g_close_internal},
                                     {"_recv_only", g_recv_only},
                                     {"_remote_close", g_remote_close},
                                     {NULL, NULL}};
    if (luaL_newmetatable(L, CHANNEL_TNAME)) {
        luaL_newlib(L, methods);
        if (luaL_loadbuffer(L, LOOPS_LUA, sizeof LOOPS_LUA - 1, "=goroutine.channel") != LUA_OK)
            lua_error(L);
        lua_pushcfunction(L, ch_receive_or_check);
        lua_call(L, 1, 2);
        lua_setfield(L, -3, "iter");
        lua_setfield(L, -2, "range");
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, ch_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, ch_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    travel_new_copies(L, &COPIES);
    codec_register_udata(L, CHANNEL_TNAME, ch_encode, ch_decode, s);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    /* channel_send(ch, v) and the others: the methods, channel first */
    static const luaL_Reg aliases[] = {
        {"channel_send", alias_send},   {"channel_receive", alias_receive},
        {"channel_close", alias_close}, {"channel_len", alias_len},
        {"channel_cap", alias_cap},     {NULL, NULL}};
    luaL_setfuncs(L, aliases, 0);
}
