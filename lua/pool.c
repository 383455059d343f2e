/* pool.c: pool_create, pool_submit, pool_wait, pool_close, pool_stats and
 * await(task_id) on the embedded backend (see pool.h).
 *
 * A task's life: the submitting goroutine encodes fn and its arguments, the
 * pool either sends the task to a VM at once (fewer than `workers` running)
 * or queues it (fewer than `queue` waiting) or the submitter waits for room.
 * The VM decodes it with fresh globals and runs it as a goroutine; when it
 * ends, the VM encodes the outcome, updates the pool's counters, sends the
 * next queued task and posts the outcome back to the submitter's VM, which
 * keeps it for await until evicted (see RESULT_TTL_S / RESULT_MAX). */
#include "pool.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "codec.h"
#include "envelope.h"
#include "fleet_pool.h"
#include "port.h"
#include "procs.h"

#define RESULT_TTL_S 300  /* a finished task's outcome is kept this long... */
#define RESULT_MAX 100000 /* ...and at most this many per VM (oldest go first) */

typedef struct pool pool;
typedef struct ptask ptask;

enum { T_PENDING, T_DONE };

struct ptask {
    xmsg msg;    /* RUN to a VM, then DONE back to the submitter */
    ptask *next; /* pool queue, then the submitter's finished list */
    pool *p;
    port *owner; /* submitter's VM (a reference) */
    proc *vm;
    char *in, *out; /* encoded fn + args; encoded outcome */
    size_t inlen, outlen;
    int ok, state;
    uint64_t seq; /* the number in the task id */
    scope *sc;    /* (submitter) scope of the submitting goroutine, while it tracks t */
    ptask *sc_prev, *sc_next;
    int held;      /* (submitter) t keeps the submitter's loop alive */
    int label_ref; /* (submitter) label of the submitting goroutine's scope */
    uint64_t done_ns;
    glist waiters;           /* awaiting goroutines (submitter's thread only) */
    pool_ext_done_fn ext_cb; /* (pool_ext_submit) called with the outcome instead */
    void *ext_ud;
    void *remote; /* (fleet) what the task's decode attached, see pool_decoding_remote */
    char id[ENVELOPE_ID_MAX + 1];
    char where[120]; /* submit site, file:line */
    /* the encoded task and then its outcome, while they fit: no allocation,
     * and nothing allocated on one thread is freed on another */
    char buf[256];
};

static void buf_free(ptask *t, char **p)
{
    if (*p && *p != t->buf)
        free(*p);
    *p = NULL;
}

struct pool {
    pool *next; /* registry list (pools_mu) */
    char *name;
    int workers, qcap, block;
    atomic_int refs;
    pthread_mutex_t mu; /* everything below */
    int closed;
    long long submitted, rejected, completed, failed;
    int active, queued;
    ptask *qhead, *qtail;
    port **room_w, **idle_w; /* VMs with goroutines waiting for room / for idle */
    int nroom, nidle, caproom, capidle;
};

/* What one VM keeps for pools: outcomes for await and local waiters. */
typedef struct pool_vm {
    int tasks_ref; /* registry: task seq -> light userdata ptask */
    ptask *done_head, *done_tail;
    size_t ndone;
    glist room, idle;    /* goroutines waiting for queue room / pool idle */
    unsigned paths_seen; /* paths_version this VM adopted */
} pool_vm;

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;

/* package.path and package.cpath of the latest submitter, so that a module
 * a task uses by name is found on arrival where the submitter found it (a
 * task file's own directory, a path set by the script). */
static pthread_mutex_t paths_mu = PTHREAD_MUTEX_INITIALIZER;
static char *paths[2];              /* path, cpath (paths_mu) */
static atomic_uint paths_version;   /* bumped at each change */
static const char PATHS_SEEN = 'p'; /* registry: {path, cpath} this VM published */
static pool *pools;
static atomic_ullong task_seq;

/* Task ids read "<8 hex digits of this process>-<sequence number>". */
static char id_prefix[10];

static void format_id(char *out, uint64_t seq)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    memcpy(out, id_prefix, 9);
    for (int i = 0; i < n; i++)
        out[9 + i] = digits[n - 1 - i];
    out[9 + n] = 0;
}

/* The sequence number of one of this process's task ids, or 0. */
static uint64_t parse_id(const char *id)
{
    if (strncmp(id, id_prefix, 9) != 0 || !id[9])
        return 0;
    uint64_t v = 0;
    for (const char *p = id + 9; *p; p++) {
        if (*p < '0' || *p > '9' || v > UINT64_MAX / 10 - 10)
            return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    return v;
}

/* ---- pools ---- */

static void pool_unref(pool *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p->room_w);
    free(p->idle_w);
    free(p->name);
    free(p);
}

/* Finds an open pool and takes a reference on it. */
/* The registry holds each open pool, and each closed pool until its last
 * task has finished (so that a submit says "pool is closed" meanwhile). */

static int pool_is_closed(pool *p)
{
    pthread_mutex_lock(&p->mu);
    int c = p->closed;
    pthread_mutex_unlock(&p->mu);
    return c;
}

/* Unlinks p if it is listed (pools_mu held); returns whether it was. */
static int unlist(pool *p)
{
    for (pool **pp = &pools; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return 1;
        }
    }
    return 0;
}

/* Finds the open pool of that name, else a closed one still draining, and
 * takes a reference on it. pools_mu held. */
static pool *find_locked(const char *name)
{
    pool *closed = NULL;
    for (pool *p = pools; p; p = p->next) {
        if (strcmp(p->name, name) != 0)
            continue;
        if (!pool_is_closed(p))
            return p;
        closed = p;
    }
    return closed;
}

static pool *pool_find(const char *name)
{
    pthread_mutex_lock(&pools_mu);
    pool *p = find_locked(name);
    if (p)
        atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&pools_mu);
    return p;
}

static int watch_add(port ***v, int *n, int *cap, port *pt)
{
    for (int i = 0; i < *n; i++)
        if ((*v)[i] == pt)
            return 0;
    if (*n == *cap) {
        int c = *cap ? *cap * 2 : 4;
        port **nv = realloc(*v, (size_t)c * sizeof *nv);
        if (!nv)
            return -1;
        *v = nv;
        *cap = c;
    }
    port_ref(pt);
    (*v)[(*n)++] = pt;
    return 0;
}

/* ---- messages ---- */

static void on_event(sched *s, xmsg *m);

/* Tells each watcher VM to wake its waiters (they re-check), and forgets
 * the watchers: waiters that still need to wait register again. */
static void notify(port **v, int n)
{
    for (int i = 0; i < n; i++) {
        xmsg *m = malloc(sizeof *m);
        if (m) {
            m->fn = on_event;
            if (port_post(v[i], m) != 0)
                free(m);
        }
        port_unref(v[i]);
    }
    free(v);
}

static pool_vm *vm_state(sched *s);

static void on_event(sched *s, xmsg *m)
{
    free(m);
    if (!s)
        return;
    pool_vm *pv = vm_state(s);
    sched_ready_all(s, &pv->room);
    sched_ready_all(s, &pv->idle);
}

static void run_task(sched *s, xmsg *m);

/* Sends t to a VM. Called with t->p->mu held; a task that no VM takes is
 * put on *undelivered, for the caller to fail once the lock is released. */
static void dispatch(ptask *t, ptask **undelivered)
{
    t->vm = procs_pick();
    atomic_fetch_add_explicit(&t->vm->load, 1, memory_order_relaxed);
    t->msg.fn = run_task;
    if (port_post(t->vm->port, &t->msg) != 0) {
        t->next = *undelivered;
        *undelivered = t;
    }
}

/* Runs t now if the pool has a free worker, else queues it. p->mu held. */
static void admit(pool *p, ptask *t, ptask **undelivered)
{
    if (p->active < p->workers) {
        p->active++;
        dispatch(t, undelivered);
        return;
    }
    p->queued++;
    if (p->qtail)
        p->qtail->next = t;
    else
        p->qhead = t;
    p->qtail = t;
}

/* Sends queued tasks while workers are free. p->mu held. */
static void run_queued(pool *p, ptask **undelivered)
{
    while (p->active < p->workers && p->qhead) {
        ptask *q = p->qhead;
        p->qhead = q->next;
        if (!p->qhead)
            p->qtail = NULL;
        q->next = NULL;
        p->queued--;
        p->active++;
        dispatch(q, undelivered);
    }
}

static void task_complete(ptask *t);
static void task_free(ptask *t);

static void fail_undelivered(ptask *list)
{
    while (list) {
        ptask *t = list;
        list = t->next;
        t->next = NULL;
        t->ok = 0;
        task_complete(t);
    }
}

static void on_done(sched *s, xmsg *m);

/* The task ended on its VM (or could not run): counters, the next queued
 * task, the watchers, and the outcome back to the submitter. */
static void task_complete(ptask *t)
{
    pool *p = t->p;
    port **rw = NULL, **iw = NULL;
    int nr = 0, ni = 0;
    if (t->vm)
        atomic_fetch_sub_explicit(&t->vm->load, 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    p->active--;
    if (t->ok)
        p->completed++;
    else
        p->failed++;
    ptask *undelivered = NULL;
    run_queued(p, &undelivered);
    /* wake blocked submitters once a quarter of the queue is free, not at
     * every completion */
    if (p->nroom && (p->closed || p->active < p->workers ||
                     p->queued <= p->qcap - (p->qcap / 4 > 1 ? p->qcap / 4 : 1))) {
        rw = p->room_w;
        nr = p->nroom;
        p->room_w = NULL;
        p->nroom = p->caproom = 0;
    }
    int drained = p->closed && p->active == 0 && p->queued == 0;
    if (p->nidle && p->active == 0 && p->queued == 0) {
        iw = p->idle_w;
        ni = p->nidle;
        p->idle_w = NULL;
        p->nidle = p->capidle = 0;
    }
    pthread_mutex_unlock(&p->mu);
    t->p = NULL;
    t->msg.fn = on_done;
    if (port_post(t->owner, &t->msg) != 0)
        task_free(t); /* the submitter's VM is gone */
    if (nr)
        notify(rw, nr);
    if (ni)
        notify(iw, ni);
    fail_undelivered(undelivered);
    if (drained) {
        pthread_mutex_lock(&pools_mu);
        int was = unlist(p);
        pthread_mutex_unlock(&pools_mu);
        if (was)
            pool_unref(p); /* the registry's reference */
    }
    pool_unref(p);
}

/* Submitter side: publishes this VM's package.path/cpath if they changed
 * since it last did (interned strings: a pointer comparison). */
static void paths_publish(lua_State *L)
{
    static const char *const keys[2] = {"path", "cpath"};
    luaL_checkstack(L, 4, NULL);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE ||
        lua_getfield(L, -1, "package") != LUA_TTABLE) {
        lua_pop(L, 2);
        return;
    }
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &PATHS_SEEN) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 2, 0);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &PATHS_SEEN);
    }
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, -2, keys[i]);
        lua_rawgeti(L, -2, i + 1);
        int same = lua_rawequal(L, -1, -2) || lua_type(L, -2) != LUA_TSTRING;
        lua_pop(L, 1);
        if (same) {
            lua_pop(L, 1);
            continue;
        }
        char *copy = strdup(lua_tostring(L, -1));
        lua_rawseti(L, -2, i + 1);
        if (!copy)
            continue;
        pthread_mutex_lock(&paths_mu);
        free(paths[i]);
        paths[i] = copy;
        atomic_fetch_add(&paths_version, 1);
        pthread_mutex_unlock(&paths_mu);
    }
    lua_pop(L, 3);
}

/* Pool VM side: takes the latest published paths before loading a task. */
static void paths_adopt(lua_State *T, unsigned *seen)
{
    unsigned v = atomic_load(&paths_version);
    if (v == *seen)
        return;
    *seen = v;
    if (lua_getfield(T, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE ||
        lua_getfield(T, -1, "package") != LUA_TTABLE) {
        lua_pop(T, 2);
        return;
    }
    pthread_mutex_lock(&paths_mu);
    if (paths[0]) {
        lua_pushstring(T, paths[0]);
        lua_setfield(T, -2, "path");
    }
    if (paths[1]) {
        lua_pushstring(T, paths[1]);
        lua_setfield(T, -2, "cpath");
    }
    pthread_mutex_unlock(&paths_mu);
    lua_pop(T, 2);
}

/* ---- the pool VM side ---- */

static int task_msgh(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING)
        luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Encodes the outcome now on L (values from index first to the top) into t. */
static void task_encode(lua_State *L, ptask *t, int ok, int first)
{
    char err[256];
    int n = lua_gettop(L) - first + 1;
    buf_free(t, &t->out);
    codec_limits lim;
    codec_limits_default(&lim);
    lim.value_name = ok ? "result" : "error value";
    if (codec_encode_buf(L, first, n, &lim, t->buf, sizeof t->buf, &t->out, &t->outlen, err,
                         sizeof err) != 0) {
        lua_pushfstring(L, "task %s: cannot send its %s back: %s", t->id, ok ? "results" : "error",
                        err);
        ok = 0;
        codec_encode_buf(L, lua_gettop(L), 1, NULL, t->buf, sizeof t->buf, &t->out, &t->outlen,
                         NULL, 0);
        lua_pop(L, 1);
    }
    t->ok = ok;
}

static int task_k(lua_State *L, int status, lua_KContext ctx)
{
    ptask *t = (ptask *)ctx;
    if (status == LUA_OK || status == LUA_YIELD)
        task_encode(L, t, 1, 2);
    else
        task_encode(L, t, 0, lua_gettop(L));
    task_complete(t);
    return 0;
}

/* The goroutine of a pool task: fn(args...) under a traceback handler. */
static int task_main(lua_State *L)
{
    ptask *t = lua_touserdata(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L) - 1;
    lua_pushcfunction(L, task_msgh);
    lua_insert(L, 1);
    return task_k(L, lua_pcallk(L, nargs, LUA_MULTRET, 1, (lua_KContext)t, task_k),
                  (lua_KContext)t);
}

static const char TASK_ENV_MT = 'E';

/* Pushes a fresh globals table for one task: reads fall through to the
 * VM's globals, writes stay in the task. */
static void push_task_env(lua_State *L)
{
    lua_createtable(L, 0, 4);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &TASK_ENV_MT) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_setfield(L, -2, "__index");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &TASK_ENV_MT);
    }
    lua_setmetatable(L, -2);
}

/* The task whose payload this thread is decoding (for codec hooks). */
static _Thread_local ptask *decoding;

void **pool_decoding_remote(void)
{
    return decoding ? &decoding->remote : NULL;
}

static void run_task(sched *s, xmsg *m)
{
    ptask *t = (ptask *)m;
    if (!s) {
        t->ok = 0;
        t->out = NULL;
        t->outlen = 0;
        task_complete(t);
        return;
    }
    lua_State *T = s->T;
    int base = lua_gettop(T);
    paths_adopt(T, &vm_state(s)->paths_seen);
    char err[256];
    codec_limits lim;
    codec_limits_default(&lim);
    lim.allow_bytecode = 1; /* from this process: trusted */
    lim.allow_require = 1;
    /* decode with a fresh globals table standing in for the VM's */
    lua_rawgeti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    push_task_env(T);
    lua_rawseti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int n = 0;
    decoding = t;
    int rc = codec_decode(T, t->in, t->inlen, &lim, &n, err, sizeof err);
    decoding = NULL;
    lua_pushvalue(T, base + 1);
    lua_rawseti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    buf_free(t, &t->in); /* decoded: t->buf is free for the outcome */
    if (rc != 0 || n < 1 || lua_type(T, base + 2) != LUA_TFUNCTION) {
        lua_settop(T, base);
        lua_pushfstring(T, "task %s: cannot load: %s", t->id, rc ? err : "no function");
        task_encode(T, t, 0, lua_gettop(T));
        lua_settop(T, base);
        task_complete(t);
        return;
    }
    lua_remove(T, base + 1); /* the saved globals */
    lua_pushlightuserdata(T, t);
    lua_pushcclosure(T, task_main, 1);
    lua_insert(T, base + 1); /* task_main, fn, args... */
    /* a scope of its own names the task in its goroutines' log lines */
    scope *sc = scope_new(s, &s->root, UINT64_MAX);
    if (sc) {
        lua_pushfstring(T, "%s %s", t->p->name, t->id);
        sc->label_ref = luaL_ref(T, LUA_REGISTRYINDEX);
    }
    sched_spawn(s, T, n, sc ? sc : &s->root, NULL);
    if (sc)
        scope_release(sc); /* it lives on while the task's goroutines do */
    lua_settop(T, base);
}

/* ---- the submitter side ---- */

/* The submitter's scope keeps a list of its unfinished pool tasks. */
static void track(ptask *t, scope *sc)
{
    t->sc = sc;
    t->sc_prev = NULL;
    t->sc_next = sc->ptasks;
    if (sc->ptasks)
        ((ptask *)sc->ptasks)->sc_prev = t;
    sc->ptasks = t;
}

static void untrack(ptask *t)
{
    scope *sc = t->sc;
    if (!sc)
        return;
    if (t->sc_prev)
        t->sc_prev->sc_next = t->sc_next;
    else
        sc->ptasks = t->sc_next;
    if (t->sc_next)
        t->sc_next->sc_prev = t->sc_prev;
    t->sc = NULL;
    t->sc_prev = t->sc_next = NULL;
}

static pool_vm *vm_state(sched *s)
{
    if (s->pool_state)
        return s->pool_state;
    pool_vm *pv = calloc(1, sizeof *pv);
    if (!pv)
        luaL_error(s->T, "not enough memory");
    glist_init(&pv->room);
    glist_init(&pv->idle);
    lua_State *T = s->T;
    lua_newtable(T);
    pv->tasks_ref = luaL_ref(T, LUA_REGISTRYINDEX);
    s->pool_state = pv;
    return pv;
}

static void task_free(ptask *t)
{
    if (t->owner)
        port_unref(t->owner);
    buf_free(t, &t->in);
    buf_free(t, &t->out);
    free(t);
}

/* Forgets finished outcomes past the TTL or beyond RESULT_MAX. */
static void evict(sched *s, pool_vm *pv)
{
    uint64_t now = sched_now_ns(), ttl = (uint64_t)RESULT_TTL_S * 1000000000ull;
    lua_State *T = s->T;
    while (pv->done_head && (pv->ndone > RESULT_MAX || now - pv->done_head->done_ns > ttl)) {
        ptask *t = pv->done_head;
        if (t->waiters.head)
            break; /* being awaited right now */
        pv->done_head = t->next;
        if (!pv->done_head)
            pv->done_tail = NULL;
        pv->ndone--;
        lua_rawgeti(T, LUA_REGISTRYINDEX, pv->tasks_ref);
        lua_pushnil(T);
        lua_rawseti(T, -2, (lua_Integer)t->seq);
        lua_pop(T, 1);
        task_free(t);
    }
}

/* Pushes the decoded outcome of a finished task: true, values... or
 * false, err. Returns the count. */
static int push_outcome(lua_State *L, ptask *t)
{
    char err[256];
    codec_limits lim;
    codec_limits_default(&lim);
    lim.allow_bytecode = 1;
    lim.allow_require = 1;
    int n = 0;
    lua_pushboolean(L, t->ok);
    if (!t->out) {
        lua_pushboolean(L, 0);
        lua_replace(L, -2);
        lua_pushfstring(L, "task %s: its VM is gone", t->id);
        return 2;
    }
    if (codec_decode(L, t->out, t->outlen, &lim, &n, err, sizeof err) != 0) {
        lua_pushboolean(L, 0);
        lua_replace(L, -2);
        lua_pushfstring(L, "task %s: cannot decode its outcome: %s", t->id, err);
        return 2;
    }
    return n + 1;
}

static void on_done(sched *s, xmsg *m)
{
    ptask *t = (ptask *)m;
    if (t->ext_cb) {
        t->ext_cb(t->ext_ud, s ? t->ok : -1, t->out, t->outlen, t->remote);
        t->remote = NULL;
        task_free(t);
        return;
    }
    if (!s) {
        task_free(t);
        return;
    }
    pool_vm *pv = vm_state(s);
    t->state = T_DONE;
    t->done_ns = sched_now_ns();
    t->next = NULL;
    if (pv->done_tail)
        pv->done_tail->next = t;
    else
        pv->done_head = t;
    pv->done_tail = t;
    pv->ndone++;
    sched_ready_all(s, &t->waiters);
    if (!t->ok && s->errh_ref != LUA_NOREF) {
        lua_State *T = s->T;
        int top = lua_gettop(T);
        int n = push_outcome(T, t);
        const char *msg = n >= 2 ? luaL_tolstring(T, top + 2, NULL) : "?";
        lua_rawgeti(T, LUA_REGISTRYINDEX, s->errh_ref);
        lua_pushfstring(T, "pool task %s (submitted at %s) failed: %s", t->id, t->where, msg);
        lua_pushnil(T); /* no goroutine of this VM */
        if (t->label_ref != LUA_NOREF)
            lua_rawgeti(T, LUA_REGISTRYINDEX, t->label_ref);
        else
            lua_pushnil(T);
        lua_pcall(T, 3, 0, 0);
        lua_settop(T, top);
    } else if (!t->ok) {
        lua_State *T = s->T;
        int top = lua_gettop(T);
        int n = push_outcome(T, t);
        fprintf(stderr, "pool task %s (submitted at %s) failed: %s\n", t->id, t->where,
                n >= 2 ? luaL_tolstring(T, top + 2, NULL) : "?");
        lua_settop(T, top);
    }
    if (t->label_ref != LUA_NOREF) {
        luaL_unref(s->T, LUA_REGISTRYINDEX, t->label_ref);
        t->label_ref = LUA_NOREF;
    }
    untrack(t);
    if (t->held) {
        t->held = 0;
        sched_unhold(s);
    }
    evict(s, pv);
}

/* A scope of the submitter's VM was cancelled (a task's timeout): the pool
 * tasks its goroutines submitted no longer keep the process alive. They run
 * to their end in their VMs; their outcomes are still kept for await. */
void pool_scope_cancelled(scope *sc)
{
    ptask *t;
    while ((t = sc->ptasks)) {
        untrack(t);
        if (t->held) {
            t->held = 0;
            sched_unhold(sc->s);
        }
    }
}

/* A scope ended: its unfinished pool tasks are simply no longer tracked. */
void pool_scope_freed(scope *sc)
{
    while (sc->ptasks)
        untrack(sc->ptasks);
}

void pool_sched_free(sched *s)
{
    pool_vm *pv = s->pool_state;
    if (!pv)
        return;
    while (pv->done_head) {
        ptask *t = pv->done_head;
        pv->done_head = t->next;
        task_free(t);
    }
    free(pv);
    s->pool_state = NULL;
}

/* ---- Lua API ---- */

static sched *S(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int opt_int_field(lua_State *L, int t, const char *k, int def, int min)
{
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > 1000000)
        luaL_error(L,
                   "bad option '%s' to 'pool_create' (integer from %d to 1000000 expected, got %s)",
                   k, min, isint ? "out of range" : luaL_typename(L, -1));
    lua_pop(L, 1);
    return (int)v;
}

static int l_pool_create(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    char why[160];
    if (envelope_check_pool(name, len, why, sizeof why) != 0) /* Kafka's rule, both backends */
        luaL_argerror(L, 1, why);
    int workers = 4, qcap, block = 1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        /* a misspelt option would silently mean its default */
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (!k || (strcmp(k, "workers") && strcmp(k, "queue") && strcmp(k, "block")))
                return luaL_error(L,
                                  "bad option '%s' to 'pool_create' (unknown option; expected "
                                  "workers, queue or block)",
                                  k ? k : luaL_typename(L, -2));
            lua_pop(L, 1);
        }
        workers = opt_int_field(L, 2, "workers", 4, 1);
        qcap = opt_int_field(L, 2, "queue", workers * 2, 0);
        int bt = lua_getfield(L, 2, "block");
        if (bt == LUA_TBOOLEAN)
            block = lua_toboolean(L, -1);
        else if (bt != LUA_TNIL)
            luaL_error(L, "bad option 'block' to 'pool_create' (boolean expected, got %s)",
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    } else {
        qcap = workers * 2;
    }
    if (fleet_on(L))
        return fleet_pool_create(L, S(L), name, workers, qcap, block);
    if (procs_start() < 0) {
        luaL_pushfail(L);
        lua_pushliteral(L, "cannot start the pool's VM threads");
        return 2;
    }
    pool *p = calloc(1, sizeof *p);
    char *nm = malloc(len + 1);
    if (!p || !nm) {
        free(p);
        free(nm);
        return luaL_error(L, "not enough memory");
    }
    memcpy(nm, name, len + 1);
    p->name = nm;
    p->workers = workers;
    p->qcap = qcap;
    p->block = block;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_lock(&pools_mu);
    pool *q = find_locked(name);
    if (q && !pool_is_closed(q)) {
        pthread_mutex_unlock(&pools_mu);
        pool_unref(p);
        luaL_pushfail(L);
        lua_pushfstring(L, "pool already exists: %s", name);
        return 2;
    }
    p->next = pools; /* a closed namesake keeps draining, unnamed from now on */
    pools = p;
    pthread_mutex_unlock(&pools_mu);
    lua_pushboolean(L, 1);
    return 1;
}

static int not_found(lua_State *L, const char *name)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "pool not found: %s", name);
    return 2;
}

/* The task being submitted, owned by a userdata on the submitter's stack
 * until the pool accepts it (so a killed submitter frees it). */
typedef struct tguard {
    ptask *t;
    sched *s;
    int holding; /* the submitter waits for room: its loop is held */
} tguard;

static int tguard_gc(lua_State *L)
{
    tguard *g = lua_touserdata(L, 1);
    if (g->holding) {
        g->holding = 0;
        sched_unhold(g->s);
    }
    if (g->t) {
        if (g->t->p)
            pool_unref(g->t->p);
        task_free(g->t);
        g->t = NULL;
    }
    return 0;
}

static int submit_k(lua_State *L, int status, lua_KContext ctx);

static int l_pool_submit(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    sched *s = S(L);
    if (fleet_on(L))
        return fleet_pool_submit(L, s);
    pool *p = pool_find(name);
    if (!p)
        return not_found(L, name);
    tguard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->t = NULL;
    g->s = s;
    g->holding = 0;
    if (luaL_newmetatable(L, "goroutine.pool_submission")) {
        lua_pushcfunction(L, tguard_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, tguard_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    ptask *t = calloc(1, sizeof *t);
    if (!t) {
        pool_unref(p);
        return luaL_error(L, "not enough memory");
    }
    g->t = t;
    t->p = p;
    glist_init(&t->waiters);
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(t->where, sizeof t->where, "%s:%d", ar.short_src, ar.currentline);
    else
        memcpy(t->where, "?", 2);
    paths_publish(L);
    char err[256];
    int top = lua_gettop(L); /* the guard is on top */
    codec_limits lim;
    codec_limits_default(&lim);
    lim.first_number = 2; /* fn is pool_submit's argument #2 */
    if (codec_encode_buf(L, 2, top - 2, &lim, t->buf, sizeof t->buf, &t->in, &t->inlen, err,
                         sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2; /* the guard frees t and the pool reference */
    }
    lua_replace(L, 1); /* keep only the guard: index 1 */
    lua_settop(L, 1);
    lua_toclose(L, 1); /* a killed submitter still frees t and its hold */
    return submit_k(L, LUA_OK, (lua_KContext)g);
}

static int submit_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    sched *s = S(L);
    tguard *g = (tguard *)ctx;
    if (g->holding) {
        g->holding = 0;
        sched_unhold(s);
    }
    ptask *t = g->t;
    pool *p = t->p;
    pthread_mutex_lock(&p->mu);
    if (p->closed) {
        p->rejected++;
        pthread_mutex_unlock(&p->mu);
        luaL_pushfail(L);
        lua_pushliteral(L, "pool is closed");
        return 2;
    }
    if (p->active < p->workers || p->queued < p->qcap) {
        /* accepted: from here the pool owns t */
        g->t = NULL;
        t->seq = atomic_fetch_add(&task_seq, 1) + 1;
        format_id(t->id, t->seq);
        t->owner = s->port;
        port_ref(t->owner);
        t->label_ref = LUA_NOREF;
        for (scope *sc = sched_current_scope(s, L); sc; sc = sc->parent) {
            if (sc->label_ref != LUA_NOREF) {
                lua_rawgeti(L, LUA_REGISTRYINDEX, sc->label_ref);
                t->label_ref = luaL_ref(L, LUA_REGISTRYINDEX);
                break;
            }
        }
        p->submitted++;
        pool_vm *pv = vm_state(s);
        lua_rawgeti(L, LUA_REGISTRYINDEX, pv->tasks_ref);
        lua_pushlightuserdata(L, t);
        lua_rawseti(L, -2, (lua_Integer)t->seq);
        lua_pop(L, 1);
        lua_pushstring(L, t->id);
        sched_hold(s);
        t->held = 1;
        track(t, sched_current_scope(s, L));
        ptask *undelivered = NULL;
        admit(p, t, &undelivered);
        pthread_mutex_unlock(&p->mu);
        fail_undelivered(undelivered);
        return 1;
    }
    if (!p->block) {
        p->rejected++;
        pthread_mutex_unlock(&p->mu);
        luaL_pushfail(L);
        lua_pushliteral(L, "pool queue is full");
        return 2;
    }
    watch_add(&p->room_w, &p->nroom, &p->caproom, s->port);
    pthread_mutex_unlock(&p->mu);
    pool_vm *pv = vm_state(s);
    sched_hold(s);
    g->holding = 1;
    return sched_wait(L, s, &pv->room, 0, ctx, submit_k);
}

/* An idle waiter's hold, released by __close if the waiter is killed. */
typedef struct wguard {
    sched *s;
    pool *p;
    int holding;
} wguard;

static int wguard_close(lua_State *L)
{
    wguard *w = lua_touserdata(L, 1);
    if (w->holding) {
        w->holding = 0;
        sched_unhold(w->s);
    }
    if (w->p) {
        pool_unref(w->p);
        w->p = NULL;
    }
    return 0;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    wguard *w = (wguard *)ctx;
    sched *s = w->s;
    pool *p = w->p;
    if (w->holding) {
        w->holding = 0;
        sched_unhold(s);
    }
    pthread_mutex_lock(&p->mu);
    if (p->active == 0 && p->queued == 0) {
        pthread_mutex_unlock(&p->mu);
        lua_pushboolean(L, 1);
        return 1;
    }
    watch_add(&p->idle_w, &p->nidle, &p->capidle, s->port);
    pthread_mutex_unlock(&p->mu);
    sched_hold(s);
    w->holding = 1;
    return sched_wait(L, s, &vm_state(s)->idle, 0, ctx, wait_k);
}

static int l_pool_wait(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (fleet_on(L))
        return fleet_pool_wait(L, S(L));
    pool *p = pool_find(name);
    if (!p)
        return not_found(L, name);
    wguard *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->s = S(L);
    w->p = p;
    w->holding = 0;
    if (luaL_newmetatable(L, "goroutine.pool_wait")) {
        lua_pushcfunction(L, wguard_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, wguard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_replace(L, 1);
    lua_settop(L, 1);
    lua_toclose(L, 1);
    return wait_k(L, LUA_OK, (lua_KContext)w);
}

static int l_pool_close(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (fleet_on(L))
        return fleet_pool_close(L, S(L));
    pthread_mutex_lock(&pools_mu);
    pool *p = find_locked(name);
    if (!p || pool_is_closed(p)) {
        pthread_mutex_unlock(&pools_mu);
        if (!p)
            return not_found(L, name);
        luaL_pushfail(L);
        lua_pushliteral(L, "pool is closed");
        return 2;
    }
    pthread_mutex_lock(&p->mu);
    p->closed = 1;
    port **rw = p->room_w;
    int nr = p->nroom;
    p->room_w = NULL;
    p->nroom = p->caproom = 0;
    int idle = p->active == 0 && p->queued == 0;
    pthread_mutex_unlock(&p->mu);
    int unlisted = idle && unlist(p); /* else the last task unlists it */
    pthread_mutex_unlock(&pools_mu);
    if (nr)
        notify(rw, nr); /* blocked submitters see "pool is closed" */
    if (unlisted)
        pool_unref(p); /* queued and running tasks hold their own references */
    lua_pushboolean(L, 1);
    return 1;
}

static int l_pool_stats(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (fleet_on(L))
        return fleet_pool_stats(L, S(L));
    pool *p = pool_find(name);
    if (!p)
        return not_found(L, name);
    pthread_mutex_lock(&p->mu);
    const struct {
        const char *k;
        long long v;
    } f[] = {{"workers", p->workers},     {"queue", p->qcap},          {"active", p->active},
             {"queued", p->queued},       {"completed", p->completed}, {"failed", p->failed},
             {"submitted", p->submitted}, {"rejected", p->rejected}};
    pthread_mutex_unlock(&p->mu);
    pool_unref(p);
    lua_createtable(L, 0, 9);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushinteger(L, (lua_Integer)f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    return 1;
}

static int await_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return push_outcome(L, (ptask *)ctx);
}

int pool_await(lua_State *L, sched *s, int idx)
{
    const char *id = luaL_checkstring(L, idx);
    if (fleet_on(L))
        return fleet_await(L, s, idx);
    pool_vm *pv = vm_state(s);
    uint64_t seq = parse_id(id);
    ptask *t = NULL;
    if (seq) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, pv->tasks_ref);
        lua_rawgeti(L, -1, (lua_Integer)seq);
        t = lua_touserdata(L, -1);
        lua_pop(L, 2);
    }
    if (!t) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L,
                        "unknown task id: %s (not submitted from this VM, or finished more than "
                        "%d s ago)",
                        id, RESULT_TTL_S);
        return 2;
    }
    if (t->state == T_DONE)
        return push_outcome(L, t);
    return sched_wait(L, s, &t->waiters, 0, (lua_KContext)t, await_k);
}

/* ---- pools for the fleet worker ---- */

pool *pool_ext_new(const char *name, int workers)
{
    pool *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name)) || procs_start() < 0) {
        if (p)
            free(p->name);
        free(p);
        return NULL;
    }
    p->workers = workers > 0 ? workers : 1;
    p->qcap = INT32_MAX;
    p->block = 0;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void pool_ext_set_workers(pool *p, int workers)
{
    pthread_mutex_lock(&p->mu);
    p->workers = workers > 0 ? workers : 1;
    ptask *undelivered = NULL;
    run_queued(p, &undelivered);
    pthread_mutex_unlock(&p->mu);
    fail_undelivered(undelivered);
}

int pool_ext_submit(pool *p, sched *owner, const char *id, const char *payload, size_t len,
                    pool_ext_done_fn cb, void *ud)
{
    ptask *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    if (len <= sizeof t->buf) {
        t->in = t->buf;
    } else if (!(t->in = malloc(len))) {
        free(t);
        return -1;
    }
    memcpy(t->in, payload, len);
    t->inlen = len;
    glist_init(&t->waiters);
    envelope_copy(t->id, sizeof t->id, id);
    memcpy(t->where, "fleet", 6);
    t->label_ref = LUA_NOREF;
    t->ext_cb = cb;
    t->ext_ud = ud;
    t->owner = owner->port;
    port_ref(t->owner);
    atomic_fetch_add(&p->refs, 1);
    t->p = p;
    ptask *undelivered = NULL;
    pthread_mutex_lock(&p->mu);
    p->submitted++;
    admit(p, t, &undelivered);
    pthread_mutex_unlock(&p->mu);
    fail_undelivered(undelivered);
    return 0;
}

void pool_ext_counts(pool *p, int *active, int *queued)
{
    pthread_mutex_lock(&p->mu);
    *active = p->active;
    *queued = p->queued;
    pthread_mutex_unlock(&p->mu);
}

void pool_ext_release(pool *p)
{
    pool_unref(p);
}

void pool_open(lua_State *L, sched *s)
{
    static const luaL_Reg funcs[] = {{"pool_create", l_pool_create}, {"pool_submit", l_pool_submit},
                                     {"pool_wait", l_pool_wait},     {"pool_close", l_pool_close},
                                     {"pool_stats", l_pool_stats},   {NULL, NULL}};
    if (!id_prefix[0]) {
        unsigned prefix = (unsigned)(((uint64_t)getpid() * 2654435761u) ^ (uint64_t)time(NULL));
        snprintf(id_prefix, sizeof id_prefix, "%08x-", prefix);
    }
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
