/* taskbook.c: the pool tasks a VM submitted, on either backend (see
 * taskbook.h). */
#include "taskbook.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "rtlog.h"

/* Task id -> record: open addressing, linear probing; a slot is NULL
 * (never used), TOMB (emptied) or a record, with the record's hash beside
 * it (a probe reads the slot array alone: records are not touched unless
 * the hash matches). Grows at half full. */
#define TOMB ((tb_task *)&tomb_mark)
static const char tomb_mark;

typedef struct tb_slot {
    tb_task *t;
    uint32_t hash;
} tb_slot;

/* A submit site's "file:line", shared by the records submitted there (a
 * loop submits from one line): 8 bytes per record instead of the text. */
typedef struct tb_site {
    struct tb_site *next; /* in its bucket */
    unsigned refs;        /* records pointing at it */
    uint32_t hash;
    char text[];
} tb_site;

#define SITE_BUCKETS 64

struct taskbook {
    sched *s;
    tb_site *sites[SITE_BUCKETS];
    tb_site *last_site; /* the site of the latest submit (a loop submits from one line) */
    tb_slot *slots;
    size_t cap, used; /* used: records and tombs */
    size_t live;      /* records */
    mlist all;        /* every record (of tb_task.node), the newest first */
    tb_task *done_head, *done_tail;
    size_t ndone;
};

static const char BOOK_KEY = 'B';

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static uint32_t hash_id(const char *id)
{
    const unsigned char *u = (const unsigned char *)id;
    uint32_t h = 2166136261u; /* FNV-1a */
    /* An embedded pool's id, "<8 hex digits>-<sequence number>": the hash
     * of the prefix plus the number, so that the tasks of a loop sit in
     * consecutive slots (a submit and an eviction then touch memory the
     * previous ones touched, not a random slot of a table of 100,000
     * records each) */
    int k = 0;
    while (k < 8 && is_hex(u[k]))
        k++;
    if (k == 8 && u[8] == '-' && u[9] >= '1' && u[9] <= '9') {
        uint32_t seq = 0;
        const unsigned char *p = u + 9;
        while (*p >= '0' && *p <= '9')
            seq = seq * 10u + (uint32_t)(*p++ - '0');
        if (!*p && p - u <= 9 + 9) { /* at most 9 digits: no wrap-around */
            for (int i = 0; i < 9; i++)
                h = (h ^ u[i]) * 16777619u;
            h ^= h >> 15;
            return h + seq;
        }
    }
    /* any other id (a fleet task's "<producer>:<sequence>", 40-60 bytes):
     * 8 bytes at a time */
    size_t n = strlen(id), i = 0;
    uint64_t w, x = 0x9e3779b97f4a7c15ull ^ n;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, u + i, 8);
        x = (x ^ w) * 0xff51afd7ed558ccdull;
        x ^= x >> 32;
    }
    w = 0;
    memcpy(&w, u + i, n - i);
    x = (x ^ w) * 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 29; /* the low bits pick the slot: mix the high ones in */
    return (uint32_t)x ^ (uint32_t)(x >> 32);
}

/* The slot of id: its record's, or the empty one where it would go. */
static tb_slot *map_slot(taskbook *b, const char *id, uint32_t h)
{
    tb_slot *tomb = NULL;
    for (size_t i = h & (b->cap - 1);; i = (i + 1) & (b->cap - 1)) {
        tb_slot *sl = &b->slots[i];
        tb_task *t = sl->t;
        if (!t)
            return tomb ? tomb : sl;
        if (t == TOMB) {
            if (!tomb)
                tomb = sl;
        } else if (sl->hash == h && !strcmp(t->id, id)) {
            return sl;
        }
    }
}

/* The slot holding t itself (NULL if none): no id comparison needed. */
static tb_slot *map_slot_of(taskbook *b, const tb_task *t)
{
    for (size_t i = t->hash & (b->cap - 1);; i = (i + 1) & (b->cap - 1)) {
        tb_slot *sl = &b->slots[i];
        if (sl->t == t)
            return sl;
        if (!sl->t)
            return NULL;
    }
}

/* Rehashes into a table four times the live records (at least 1024
 * slots): it grows with them, and tombs left by evicted records go. */
static int map_grow(taskbook *b)
{
    size_t cap = 1024;
    while (cap < 4 * (b->live + 1))
        cap *= 2;
    tb_slot *old = b->slots;
    size_t ocap = b->cap;
    tb_slot *v = calloc(cap, sizeof *v);
    if (!v)
        return -1;
    b->slots = v;
    b->cap = cap;
    b->used = 0;
    for (size_t i = 0; i < ocap; i++) {
        tb_task *t = old[i].t;
        if (t && t != TOMB) {
            size_t j = old[i].hash & (cap - 1);
            while (v[j].t)
                j = (j + 1) & (cap - 1);
            v[j] = old[i];
            b->used++;
        }
    }
    free(old);
    return 0;
}

static int map_put(taskbook *b, tb_task *t)
{
    if ((b->used + 1) * 2 > b->cap && map_grow(b) != 0)
        return -1;
    t->hash = hash_id(t->id);
    tb_slot *slot = map_slot(b, t->id, t->hash);
    if (!slot->t)
        b->used++;
    if (!slot->t || slot->t == TOMB)
        b->live++;
    slot->t = t; /* (ids are unique: a namesake would only be replaced) */
    slot->hash = t->hash;
    return 0;
}

static void map_del(taskbook *b, tb_task *t)
{
    if (!b->cap)
        return;
    tb_slot *slot = map_slot_of(b, t);
    if (slot) {
        slot->t = TOMB;
        b->live--;
    }
}

static void unhold(taskbook *b, tb_task *t)
{
    if (t->held) {
        t->held = 0;
        sched_unhold(b->s);
    }
}

/* The shared site of that text, with a reference for the caller (NULL:
 * out of memory). */
static tb_site *site_get(taskbook *b, const char *text)
{
    tb_site *last = b->last_site;
    if (last && !strcmp(last->text, text)) {
        last->refs++;
        return last;
    }
    uint32_t h = hash_id(text);
    tb_site **bucket = &b->sites[h % SITE_BUCKETS];
    for (tb_site *st = *bucket; st; st = st->next) {
        if (st->hash == h && !strcmp(st->text, text)) {
            st->refs++;
            b->last_site = st;
            return st;
        }
    }
    size_t n = strlen(text);
    tb_site *st = malloc(sizeof *st + n + 1);
    if (!st)
        return NULL;
    st->refs = 1;
    st->hash = h;
    memcpy(st->text, text, n + 1);
    st->next = *bucket;
    *bucket = st;
    b->last_site = st;
    return st;
}

static void site_put(taskbook *b, tb_site *st)
{
    if (!st || --st->refs > 0)
        return;
    if (b->last_site == st)
        b->last_site = NULL;
    for (tb_site **pp = &b->sites[st->hash % SITE_BUCKETS]; *pp; pp = &(*pp)->next) {
        if (*pp == st) {
            *pp = st->next;
            break;
        }
    }
    free(st);
}

static void unlink_task(taskbook *b, tb_task *t)
{
    site_put(b, t->where);
    t->where = NULL;
    map_del(b, t);
    scope_watch_del(&t->watch);
    mlist_remove(&t->node);
    free(t->err);
    t->err = NULL;
}

static void forget(taskbook *b, tb_task *t)
{
    unlink_task(b, t);
    t->ops->free(t);
}

static void book_free(sched *s, void *data)
{
    (void)s;
    taskbook *b = data;
    tb_task *t;
    while ((t = mlist_first_entry(&b->all, tb_task, node))) {
        t->held = 0; /* the loop is going away */
        if (!t->done && t->ops->orphan) {
            unlink_task(b, t);
            t->ops->orphan(t);
        } else {
            forget(b, t);
        }
    }
    free(b->slots);
    free(b);
}

taskbook *taskbook_get(lua_State *L, sched *s)
{
    taskbook *b = sched_ext_get(s, &BOOK_KEY);
    if (b)
        return b;
    b = calloc(1, sizeof *b);
    if (!b || sched_ext_set(s, &BOOK_KEY, b, book_free) != 0) {
        free(b);
        luaL_error(L, "not enough memory");
        return NULL;
    }
    b->s = s;
    mlist_init(&b->all);
    return b;
}

/* The submitting scope was cancelled (its task timed out): its tasks stop
 * keeping the process alive; they still run, and await still gets them. */
static void on_scope_end(scope_watch *w, int cancelled)
{
    tb_task *t = (tb_task *)((char *)w - offsetof(tb_task, watch));
    if (cancelled) {
        unhold(t->book, t);
        t->lingering = 0;
    }
}

/* "<src>:<line>" into out (what snprintf "%s:%d" writes, without it: this
 * runs for every task). */
static void format_where(char *out, size_t cap, const char *src, int line)
{
    char digits[12];
    int nd = 0;
    unsigned v = (unsigned)line;
    do {
        digits[nd++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    size_t n = strlen(src);
    if (n + 1 + (size_t)nd + 1 > cap) {
        snprintf(out, cap, "%s:%d", src, line);
        return;
    }
    memcpy(out, src, n);
    out[n++] = ':';
    while (nd)
        out[n++] = digits[--nd];
    out[n] = 0;
}

void taskbook_add(taskbook *b, lua_State *L, tb_task *t, const tb_ops *ops)
{
    t->ops = ops;
    t->book = b;
    t->done = t->ok = t->lingering = t->pinned = 0;
    t->out = NULL;
    t->outlen = 0;
    t->err = NULL;
    glist_init(&t->waiters);
    lua_Debug ar;
    t->where = NULL;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
        char where[120];
        format_where(where, sizeof where, ar.short_src, ar.currentline);
        t->where = site_get(b, where);
    }
    int label = sched_label_ref(b->s, L);
    if (label != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, label);
        t->label_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        t->label_ref = LUA_NOREF;
    }
    if (map_put(b, t) != 0) {
        if (t->label_ref != LUA_NOREF)
            luaL_unref(L, LUA_REGISTRYINDEX, t->label_ref);
        site_put(b, t->where);
        t->where = NULL;
        luaL_error(L, "not enough memory");
    }
    mlist_push_front(&b->all, &t->node);
    t->watch.sc = NULL;
    t->watch.on_end = on_scope_end;
    scope_watch_add(sched_current_scope(b->s, L), &t->watch);
    sched_hold(b->s);
    t->held = 1;
}

/* Forgets finished outcomes past the TTL or beyond TASKBOOK_MAX. */
static void evict(taskbook *b)
{
    uint64_t now = sched_now_ns(), ttl = (uint64_t)TASKBOOK_TTL_S * 1000000000ull;
    while (b->done_head && (b->ndone > TASKBOOK_MAX || now - b->done_head->done_ns > ttl)) {
        tb_task *t = b->done_head;
        if (!glist_empty(&t->waiters) || t->pinned || t->lingering)
            break; /* being awaited right now, or still in use */
        b->done_head = t->done_next;
        if (!b->done_head)
            b->done_tail = NULL;
        b->ndone--;
        forget(b, t);
    }
}

static void report_failure(taskbook *b, tb_task *t)
{
    lua_State *T = sched_scratch(b->s);
    int top = lua_gettop(T);
    int n = taskbook_push_outcome(T, t);
    const char *msg = n >= 2 ? rtlog_tostring(T, top + 2) : "?";
    lua_pushfstring(T, "%s task %s of pool %s (submitted at %s) failed: %s", t->ops->kind, t->id,
                    t->pool, t->where ? t->where->text : "?", msg);
    int label = t->label_ref;
    if (label == LUA_NOREF) {
        lua_pushfstring(T, "%s %s", t->pool, t->id);
        label = luaL_ref(T, LUA_REGISTRYINDEX);
    }
    sched_report_error(b->s, 0, label);
    if (label != t->label_ref)
        luaL_unref(T, LUA_REGISTRYINDEX, label);
    lua_settop(T, top);
}

void taskbook_finish(taskbook *b, tb_task *t, int ok, const char *out, size_t outlen,
                     const char *err, int lingering)
{
    if (t->done)
        return;
    t->done = 1;
    t->ok = (uint8_t)(ok && out);
    t->out = out;
    t->outlen = outlen;
    if (!out && !(t->err = strdup(err ? err : "failed")))
        t->ok = 0;
    t->done_ns = sched_now_ns();
    sched_ready_all(b->s, &t->waiters);
    if (!t->ok)
        report_failure(b, t);
    if (t->label_ref != LUA_NOREF) {
        luaL_unref(sched_scratch(b->s), LUA_REGISTRYINDEX, t->label_ref);
        t->label_ref = LUA_NOREF;
    }
    t->done_next = NULL;
    if (b->done_tail)
        b->done_tail->done_next = t;
    else
        b->done_head = t;
    b->done_tail = t;
    b->ndone++;
    if (lingering && t->held) {
        t->lingering = 1; /* still watching its scope; settled later */
    } else {
        scope_watch_del(&t->watch);
        unhold(b, t);
    }
    evict(b);
}

void taskbook_settle(taskbook *b, const char *id)
{
    lua_State *T = sched_scratch(b->s);
    tb_task *t = taskbook_find(b, T, id);
    if (!t || !t->lingering)
        return;
    t->lingering = 0;
    scope_watch_del(&t->watch);
    unhold(b, t);
}

size_t taskbook_unfinished(const taskbook *b)
{
    return b->live - b->ndone;
}

tb_task *taskbook_find(taskbook *b, lua_State *L, const char *id)
{
    (void)L;
    if (!b->cap)
        return NULL;
    tb_task *t = map_slot(b, id, hash_id(id))->t;
    return t == TOMB ? NULL : t;
}

int taskbook_push_bytes(lua_State *L, const char *id, int ok, const char *out, size_t outlen,
                        const char *err, travel_ctx *ctx)
{
    if (!out) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "task %s: %s", id, err ? err : "failed");
        return 2;
    }
    if (outlen == 0) {
        lua_pushboolean(L, ok);
        if (ok)
            return 1;
        lua_pushfstring(L, "task %s failed (its outcome could not be recorded)", id);
        return 2;
    }
    char why[256];
    codec_limits lim;
    codec_limits_default(&lim);
    lim.allow_bytecode = 1; /* from this process's VMs, or the fleet's workers */
    lim.allow_require = 1;
    lim.call = ctx;
    int n = 0;
    lua_pushboolean(L, ok);
    if (codec_decode(L, out, outlen, &lim, &n, why, sizeof why) != 0) {
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "task %s: cannot decode its outcome: %s", id, why);
        return 2;
    }
    return n + 1;
}

int taskbook_push_outcome(lua_State *L, const tb_task *t)
{
    return taskbook_push_bytes(L, t->id, t->ok, t->out, t->outlen, t->err, t->ops->outcome_ctx);
}

/* await's answer: t's outcome; the first one tells the backend. */
static int push_awaited(lua_State *L, tb_task *t)
{
    int n = taskbook_push_outcome(L, t);
    if (!t->awaited) {
        t->awaited = 1;
        if (t->ops->awaited)
            t->ops->awaited(t);
    }
    return n;
}

static int await_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return push_awaited(L, (tb_task *)ctx);
}

int taskbook_await(lua_State *L, taskbook *b, tb_task *t)
{
    if (t->done)
        return push_awaited(L, t);
    /* the task runs elsewhere: that is pending work even when its
     * submitting scope was cancelled, not a deadlock */
    if (!t->held)
        sched_guard_push(L, b->s);
    return sched_wait(L, b->s, &t->waiters, 0, (lua_KContext)t, await_k);
}
