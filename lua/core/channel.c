/* channel.c: channels and select (see channel.h). Every wait, a plain
 * send or receive included, is a select: one chan_sel with a waiter per
 * case, queued on the cases' channels while its goroutine is parked. */
#include "channel.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "travel.h"
#include "list.h"

#define SELECT_MAX_CASES 4096

enum { C_RECV = 1, C_SEND, C_DEFAULT };

typedef struct channel channel;
typedef struct chan_sel chan_sel;

typedef struct chan_waiter {
    mlist node; /* in ch->recvq or ch->sendq while queued */
    chan_sel *sel;
    channel *ch;
    int vidx;  /* a send: its value's index on the waiter's stack */
    int chidx; /* its channel's index on the waiter's stack */
    int no;    /* its case number, 1-based */
    int dir;   /* C_RECV or C_SEND */
    int queued;
} chan_waiter;

struct chan_sel {
    sched_parker parker;
    sched *s;
    gor *g;     /* the parked waiter (park) */
    int fired;  /* the case that happened; 0 while none has */
    int closed; /* it happened because its channel was closed */
    int dir;    /* the kind of the case that happened */
    int n;
    chan_waiter w[];
};

struct channel {
    uint64_t magic; /* CH_MAGIC */
    sched *s;
    lua_Integer cap, head, count; /* ring buffer in user value 1, slots 1..cap */
    lua_Integer nback;            /* values given back (user value 2), received first */
    int closed;
    int recv_only;      /* after()'s and a context's done(): Lua code cannot send or close */
    mlist recvq, sendq; /* of chan_waiter.node, oldest first */
    theap_ent after;    /* goroutine.after: when it receives its value */
    int after_ref;      /* anchors it in the registry until then, else LUA_NOREF */
    int fn_ref;         /* _after_call: the function it calls then, else LUA_NOREF */
};

/* A channel's first field: a full userdata of a channel's size whose first
 * word is this is a channel (no pointer has these top bits, so no other
 * userdata of this size starts with it by chance; Lua code cannot write a
 * userdata's bytes). Checked without the metatable lookup by name that
 * luaL_checkudata makes, the ping-pong's largest cost after the switches. */
#define CH_MAGIC 0xc4a11e7c0a11e7c5ull

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

static void unqueue_all(chan_sel *sel)
{
    for (int i = 0; i < sel->n; i++)
        if (sel->w[i].queued) {
            mlist_remove(&sel->w[i].node);
            sel->w[i].queued = 0;
        }
}

/* w's case happened: its select is over, on every channel it waited on. */
static void fire(chan_waiter *w, int closed)
{
    chan_sel *sel = w->sel;
    sel->fired = w->no;
    sel->closed = closed;
    sel->dir = w->dir;
    unqueue_all(sel);
    sched_ready(sel->s, sel->g);
}

static void sel_park(sched_parker *p, gor *g)
{
    chan_sel *sel = (chan_sel *)p;
    sel->g = g;
    for (int i = 0; i < sel->n; i++) {
        chan_waiter *w = &sel->w[i];
        mlist_push_back(w->dir == C_RECV ? &w->ch->recvq : &w->ch->sendq, &w->node);
        w->queued = 1;
    }
}

/* Waits of one case (a plain send or receive) reuse the VM's spare. */
static void sel_free(chan_sel *sel)
{
    if (sel->n == 1 && !sel->s->spare_wait)
        sel->s->spare_wait = sel;
    else
        free(sel);
}

static void give_back(chan_sel *sel, gor *g);

static void sel_cancel(sched_parker *p, gor *g)
{
    chan_sel *sel = (chan_sel *)p;
    if (g && sel->fired && sel->dir == C_RECV && !sel->closed)
        give_back(sel, g);
    unqueue_all(sel);
    sel_free(sel);
}

static chan_sel *sel_new(lua_State *L, sched *s, int n)
{
    chan_sel *sel = s->spare_wait;
    if (n == 1 && sel)
        s->spare_wait = NULL;
    else
        sel = malloc(sizeof *sel + (size_t)(n > 1 ? n : 1) * sizeof(chan_waiter));
    if (!sel)
        luaL_error(L, "not enough memory");
    sel->parker.park = sel_park;
    sel->parker.cancel = sel_cancel;
    sel->s = s;
    sel->g = NULL;
    sel->fired = sel->closed = 0;
    sel->n = n;
    return sel;
}

/* In the continuation: the wait is over (fired, or its deadline passed). */
static void sel_end(lua_State *L, chan_sel *sel)
{
    gor *g = gor_of(L);
    if (g)
        g->parker = NULL;
    unqueue_all(sel);
}

/* ---- the operations that do not wait ---- */

/* Sends the value at vidx: 1 done, 0 it would wait, -1 the channel is
 * closed. */
static int try_send_at(lua_State *L, channel *ch, int chidx, int vidx)
{
    if (ch->closed)
        return -1;
    chan_waiter *r = first_waiter(&ch->recvq);
    if (r) {
        lua_pushvalue(L, vidx);
        lua_xmove(L, r->sel->g->L, 1); /* the receiver made room before it parked */
        fire(r, 0);
        return 1;
    }
    if (ch->count < ch->cap) {
        lua_pushvalue(L, vidx);
        buf_push(L, ch, chidx);
        return 1;
    }
    return 0;
}

/* Pushes the first waiting sender's value (taken) and wakes it. */
static void take_from_sender(lua_State *L, chan_waiter *w)
{
    lua_State *S = w->sel->g->L;
    lua_pushvalue(S, w->vidx); /* the sender made room before it parked */
    lua_xmove(S, L, 1);
    fire(w, 0);
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
    chan_waiter *w = first_waiter(&ch->sendq);
    if (ch->count > 0) {
        buf_pop(L, ch, chidx);
        if (w) { /* the first waiting sender's value takes the freed slot */
            take_from_sender(L, w);
            buf_push(L, ch, chidx);
        }
        lua_pushboolean(L, 1);
        return 1;
    }
    if (w) {
        take_from_sender(L, w);
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

static int recv_ready(const channel *ch)
{
    return ch->count > 0 || ch->nback > 0 || !mlist_empty(&ch->sendq) || ch->closed;
}

static int send_ready(const channel *ch)
{
    return ch->closed || !mlist_empty(&ch->recvq) || ch->count < ch->cap;
}

/* A receiver was handed a value (it is on top of g's stack) and killed
 * before it ran: the value goes to the next waiting receiver, or waits in
 * the channel for one, so a value a send reported as delivered is never
 * lost. */
static void give_back(chan_sel *sel, gor *g)
{
    chan_waiter *w = NULL;
    for (int i = 0; i < sel->n && !w; i++)
        if (sel->w[i].no == sel->fired)
            w = &sel->w[i];
    lua_State *L = g->L;
    channel *ch = w->ch;
    chan_waiter *r = first_waiter(&ch->recvq);
    if (r) {
        lua_xmove(L, r->sel->g->L, 1);
        fire(r, 0);
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
    sel_free(sel);
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
    int r = try_send_at(L, ch, 1, 2);
    if (r < 0)
        return push_closed_send(L);
    if (r > 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    luaL_checkstack(L, 4, "channel send");
    chan_sel *sel = sel_new(L, ch->s, 1);
    sel->w[0] = (chan_waiter){.sel = sel, .ch = ch, .vidx = 2, .chidx = 1, .no = 1, .dir = C_SEND};
    return sched_wait_parker(L, ch->s, &sel->parker, 0, (lua_KContext)sel, send_k);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    chan_sel *sel = (chan_sel *)ctx;
    sel_end(L, sel);
    int closed = sel->closed;
    sel_free(sel);
    if (closed) { /* the value the sender pushed is not there */
        lua_pushnil(L);
        lua_pushboolean(L, 0);
    } else {
        lua_pushboolean(L, 1);
    }
    return 2;
}

static int ch_receive(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    lua_settop(L, 1);
    if (try_recv(L, ch, 1))
        return 2;
    luaL_checkstack(L, 4, "channel receive");
    chan_sel *sel = sel_new(L, ch->s, 1);
    sel->w[0] = (chan_waiter){.sel = sel, .ch = ch, .chidx = 1, .no = 1, .dir = C_RECV};
    return sched_wait_parker(L, ch->s, &sel->parker, 0, (lua_KContext)sel, recv_k);
}

static int ch_try_send(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    check_writable(L, ch, "send");
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    int r = try_send_at(L, ch, 1, 2);
    if (r < 0)
        return push_closed_send(L);
    lua_pushboolean(L, r);
    return 1;
}

static int ch_try_receive(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    lua_settop(L, 1);
    if (try_recv(L, ch, 1))
        return 2;
    lua_pushnil(L);
    lua_pushboolean(L, 0);
    return 2;
}

static int close_channel(lua_State *L, channel *ch)
{
    if (ch->closed) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "channel already closed");
        return 2;
    }
    ch->closed = 1;
    chan_waiter *w;
    while ((w = first_waiter(&ch->recvq)))
        fire(w, 1);
    while ((w = first_waiter(&ch->sendq)))
        fire(w, 1);
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

/* _recv_only(ch): Lua code can no longer send on ch or close it. */
static int g_recv_only(lua_State *L)
{
    check_ch(L, 1)->recv_only = 1;
    lua_settop(L, 1);
    return 1;
}

static int ch_len(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    lua_pushinteger(L, ch->count + ch->nback);
    return 1;
}

static int ch_cap(lua_State *L)
{
    lua_pushinteger(L, check_ch(L, 1)->cap);
    return 1;
}

static int ch_is_closed(lua_State *L)
{
    lua_pushboolean(L, check_ch(L, 1)->closed);
    return 1;
}

static int ch_tostring(lua_State *L)
{
    channel *ch = check_ch(L, 1);
    lua_pushfstring(L, "Channel(%s%I/%I)", ch->closed ? "closed, " : "", (lua_Integer)ch->count,
                    (lua_Integer)ch->cap);
    return 1;
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
    if (cap > 0) {
        lua_createtable(L, cap < 64 ? (int)cap : 64, 0);
        lua_setiuservalue(L, -2, 1);
    }
    luaL_setmetatable(L, CHANNEL_TNAME);
    return ch;
}

#define CHANNEL_CAP_MAX ((lua_Integer)1 << 40)

static int g_channel(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer cap = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, cap >= 0 && cap <= CHANNEL_CAP_MAX, 1,
                  "capacity must be a non-negative integer");
    push_channel(L, s, cap);
    return 1;
}

/* ---- select ---- */

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

/* Stack of a select from base (the cases table): base+1 the kinds (a
 * userdata of n bytes), then per case i two slots: its channel (or false for
 * default) at base+2i, its send value at base+2i+1. */
#define SEL_KINDS(base) ((base) + 1)
#define SEL_CH(base, i) ((base) + 2 * (i))
#define SEL_VAL(base, i) ((base) + 2 * (i) + 1)

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
    sel_end(L, sel);
    int no = sel->fired, closed = sel->closed;
    int dir = sel->dir;
    sel_free(sel);
    if (!no)
        return select_timed_out(L);
    if (dir == C_SEND) {
        if (closed)
            return closed_send_error(L, no);
        return select_finish(L, base, no, 0);
    }
    if (closed) {
        lua_pushnil(L);
        lua_pushboolean(L, 0);
    } else {
        lua_pushboolean(L, 1); /* the value is on the stack already */
    }
    return select_finish(L, base, no, 2);
}

/* select(cases) with the cases table at index 1; due: the deadline (ns,
 * 0: none; timed: whether there is one, so that 0 ms polls). */
static int select_run(lua_State *L, sched *s, int timed, uint64_t due)
{
    int base = 1;
    luaL_checktype(L, base, LUA_TTABLE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, base);
    luaL_argcheck(L, n <= SELECT_MAX_CASES, base, "too many cases");
    lua_settop(L, base);
    luaL_checkstack(L, (int)(2 * n + 8), "select");
    char *kinds = lua_newuserdatauv(L, (size_t)n + 1, 0);
    int dflt = 0, nwait = 0;
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
        if (!to_ch(L, -1))
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
        if (!recv && ((channel *)lua_touserdata(L, -2))->recv_only)
            return luaL_error(
                L, "bad argument #1 to 'select' (case %d: send on a receive-only channel)", i);
        kinds[i] = recv ? C_RECV : C_SEND;
        nwait++;
        lua_remove(L, c); /* leaves channel, value */
    }
    /* the cases that can proceed now, one of them chosen uniformly */
    int chosen = 0;
    uint64_t nready = 0;
    for (int i = 1; i <= n; i++) {
        if (kinds[i] == C_DEFAULT)
            continue;
        channel *ch = lua_touserdata(L, SEL_CH(base, i));
        if (kinds[i] == C_RECV ? recv_ready(ch) : send_ready(ch)) {
            nready++;
            if (rng_next() % nready == 0)
                chosen = i;
        }
    }
    if (chosen) {
        channel *ch = lua_touserdata(L, SEL_CH(base, chosen));
        if (kinds[chosen] == C_RECV) {
            try_recv(L, ch, SEL_CH(base, chosen));
            return select_finish(L, base, chosen, 2);
        }
        if (try_send_at(L, ch, SEL_CH(base, chosen), SEL_VAL(base, chosen)) < 0)
            return closed_send_error(L, chosen);
        return select_finish(L, base, chosen, 0);
    }
    if (dflt)
        return select_finish(L, base, dflt, 0);
    if (timed && due <= sched_now_ns())
        return select_timed_out(L);
    chan_sel *sel = sel_new(L, s, nwait);
    int k = 0;
    for (int i = 1; i <= n; i++) {
        if (kinds[i] == C_DEFAULT)
            continue;
        sel->w[k++] = (chan_waiter){.sel = sel,
                                    .ch = lua_touserdata(L, SEL_CH(base, i)),
                                    .vidx = SEL_VAL(base, i),
                                    .chidx = SEL_CH(base, i),
                                    .no = i,
                                    .dir = kinds[i]};
    }
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
    channel *ch = push_channel(L, s, 1);
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
                                     {NULL, NULL}};
    int mod = lua_gettop(L);
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
    }
    lua_pop(L, 1);
    travel_refuse(L, CHANNEL_TNAME, "a channel");
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    /* channel_send(ch, v) and the others: the methods, channel first */
    static const char *const aliases[][2] = {{"channel_send", "send"},
                                             {"channel_receive", "receive"},
                                             {"channel_close", "close"},
                                             {"channel_len", "len"},
                                             {"channel_cap", "cap"}};
    luaL_getmetatable(L, CHANNEL_TNAME);
    lua_getfield(L, -1, "__index");
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        lua_getfield(L, -1, aliases[i][1]);
        lua_setfield(L, mod, aliases[i][0]);
    }
    lua_pop(L, 2);
}
