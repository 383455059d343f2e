/* executor.c: encoded tasks on the VM threads (see executor.h).
 *
 * A task's life: executor_submit sends it to a VM at once (fewer than
 * `limit` running) or queues it. The VM decodes it with a fresh globals
 * table standing in for its own and runs it as a goroutine in a scope named
 * after the task; when the function ends, the VM encodes the outcome,
 * updates the counters, sends the next queued task, tells the watchers and
 * posts the task back to its owner. */
#include "executor.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <lauxlib.h>

#include "codec.h"
#include "memlimit.h"
#include "procs.h"
#include "sandbox.h"

struct executor {
    atomic_int refs;
    atomic_int closed_flag; /* closed, read without the lock (executor_closed) */
    pthread_mutex_t mu;     /* everything below */
    int limit, running, queued, closed;
    int qmax; /* the queue bound of the latest bounded submit */
    long long submitted, completed, failed;
    ex_task *qhead, *qtail;
    port **room_w, **idle_w; /* VMs to tell when room frees up / when idle */
    int nroom, nidle, caproom, capidle;
    ex_hooks hooks;
};

static void out_free(ex_task *t)
{
    if (t->out && t->out != t->buf)
        free(t->out);
    t->out = NULL;
    t->outlen = 0;
}

void ex_task_release(ex_task *t)
{
    out_free(t);
    if (t->owner) {
        port_unref(t->owner);
        t->owner = NULL;
    }
}

/* ---- the executor ---- */

executor *executor_new(int limit, const ex_hooks *hooks)
{
    if (procs_start() < 0)
        return NULL;
    executor *ex = calloc(1, sizeof *ex);
    if (!ex)
        return NULL;
    ex->limit = limit > 0 ? limit : 1;
    ex->qmax = -1;
    if (hooks)
        ex->hooks = *hooks;
    atomic_init(&ex->refs, 1);
    /* taken at every submit and completion from several threads, for a few
     * instructions: spin a little before sleeping in the kernel */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&ex->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    return ex;
}

void executor_ref(executor *ex)
{
    atomic_fetch_add(&ex->refs, 1);
}

void executor_unref(executor *ex)
{
    if (atomic_fetch_sub(&ex->refs, 1) != 1)
        return;
    for (int i = 0; i < ex->nroom; i++)
        port_unref(ex->room_w[i]);
    for (int i = 0; i < ex->nidle; i++)
        port_unref(ex->idle_w[i]);
    pthread_mutex_destroy(&ex->mu);
    free(ex->room_w);
    free(ex->idle_w);
    free(ex);
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

/* Tells each watcher VM (they re-check) and forgets them: those that still
 * need to wait register again. */
static void notify(executor *ex, port **v, int n)
{
    for (int i = 0; i < n; i++) {
        xmsg *m = ex->hooks.notify ? malloc(sizeof *m) : NULL;
        if (m) {
            m->fn = ex->hooks.notify;
            if (port_post(v[i], m) != 0)
                free(m);
        }
        port_unref(v[i]);
    }
    free(v);
}

static void run_task(sched *s, xmsg *m);

/* Sends t to a VM (ex->mu not held: see sendq); a task that no VM takes is
 * put on *undelivered, for the caller to fail. */
static void dispatch(ex_task *t, ex_task **undelivered)
{
    t->vm = procs_pick();
    atomic_fetch_add_explicit(&t->vm->load, 1, memory_order_relaxed);
    t->msg.fn = run_task;
    if (port_post(t->vm->port, &t->msg) != 0) {
        t->next = *undelivered;
        *undelivered = t;
    }
}

/* Tasks taken to run, in order, posted to their VMs once ex->mu is
 * released (a post may write to an eventfd: no system call under the lock
 * that every submit and every completion takes). */
typedef struct sendq {
    ex_task *head, *tail;
} sendq;

static void sendq_add(sendq *q, ex_task *t)
{
    t->next = NULL;
    if (q->tail)
        q->tail->next = t;
    else
        q->head = t;
    q->tail = t;
}

/* ex->mu not held; failures go on *undelivered. */
static void sendq_send(sendq *q, ex_task **undelivered)
{
    ex_task *t = q->head;
    while (t) {
        ex_task *next = t->next;
        t->next = NULL;
        dispatch(t, undelivered);
        t = next;
    }
    q->head = q->tail = NULL;
}

/* Takes queued tasks to run while fewer than limit run. ex->mu held. */
static void run_queued(executor *ex, sendq *out)
{
    while (ex->running < ex->limit && ex->qhead) {
        ex_task *q = ex->qhead;
        ex->qhead = q->next;
        if (!ex->qhead)
            ex->qtail = NULL;
        q->next = NULL;
        ex->queued--;
        ex->running++;
        sendq_add(out, q);
    }
}

static void task_complete(ex_task *t);

static void fail_undelivered(ex_task *list)
{
    while (list) {
        ex_task *t = list;
        list = t->next;
        t->next = NULL;
        t->ok = 0;
        task_complete(t);
    }
}

int executor_submit(executor *ex, ex_task *t, sched *owner, int qmax, port *watcher)
{
    pthread_mutex_lock(&ex->mu);
    if (ex->closed) {
        pthread_mutex_unlock(&ex->mu);
        return EX_ECLOSED;
    }
    ex_task *undelivered = NULL;
    sendq out = {NULL, NULL};
    if (ex->running < ex->limit || qmax < 0 || ex->queued < qmax) {
        /* taken: from here the executor uses t until its done callback */
        t->ex = ex;
        executor_ref(ex);
        t->owner = owner->port;
        port_ref(t->owner);
        t->next = NULL;
        t->out = NULL;
        t->outlen = 0;
        t->ok = t->lingering = 0;
        t->vm = NULL;
        ex->submitted++;
        if (qmax >= 0)
            ex->qmax = qmax;
        if (ex->running < ex->limit) {
            ex->running++;
            sendq_add(&out, t);
        } else {
            ex->queued++;
            if (ex->qtail)
                ex->qtail->next = t;
            else
                ex->qhead = t;
            ex->qtail = t;
        }
        pthread_mutex_unlock(&ex->mu);
        sendq_send(&out, &undelivered);
        fail_undelivered(undelivered);
        return EX_OK;
    }
    if (watcher)
        watch_add(&ex->room_w, &ex->nroom, &ex->caproom, watcher);
    pthread_mutex_unlock(&ex->mu);
    return EX_EQUEUEFULL;
}

void executor_set_limit(executor *ex, int limit)
{
    pthread_mutex_lock(&ex->mu);
    ex->limit = limit > 0 ? limit : 1;
    ex_task *undelivered = NULL;
    sendq out = {NULL, NULL};
    run_queued(ex, &out);
    pthread_mutex_unlock(&ex->mu);
    sendq_send(&out, &undelivered);
    fail_undelivered(undelivered);
}

void executor_close(executor *ex)
{
    pthread_mutex_lock(&ex->mu);
    ex->closed = 1;
    atomic_store(&ex->closed_flag, 1);
    port **rw = ex->room_w;
    int nr = ex->nroom;
    ex->room_w = NULL;
    ex->nroom = ex->caproom = 0;
    pthread_mutex_unlock(&ex->mu);
    if (nr)
        notify(ex, rw, nr); /* blocked submitters see that it closed */
}

int executor_closed(executor *ex)
{
    return atomic_load(&ex->closed_flag);
}

int executor_counts(executor *ex, int *running, int *queued, int *closed)
{
    pthread_mutex_lock(&ex->mu);
    if (running)
        *running = ex->running;
    if (queued)
        *queued = ex->queued;
    if (closed)
        *closed = ex->closed;
    int idle = ex->running == 0 && ex->queued == 0;
    pthread_mutex_unlock(&ex->mu);
    return idle;
}

int executor_idle_or_watch(executor *ex, port *watcher)
{
    pthread_mutex_lock(&ex->mu);
    int idle = ex->running == 0 && ex->queued == 0;
    if (!idle)
        watch_add(&ex->idle_w, &ex->nidle, &ex->capidle, watcher);
    pthread_mutex_unlock(&ex->mu);
    return idle;
}

void executor_stats(executor *ex, ex_stats *o)
{
    pthread_mutex_lock(&ex->mu);
    o->limit = ex->limit;
    o->running = ex->running;
    o->queued = ex->queued;
    o->closed = ex->closed;
    o->submitted = ex->submitted;
    o->completed = ex->completed;
    o->failed = ex->failed;
    pthread_mutex_unlock(&ex->mu);
}

/* Who to tell after the queue or the running count shrank. */
typedef struct wake {
    port **rw, **iw;
    int nr, ni;
    int drained;
} wake;

/* Takes the watchers due now off ex. ex->mu held. */
static void wake_collect(executor *ex, wake *k)
{
    memset(k, 0, sizeof *k);
    /* wake blocked submitters once a quarter of the queue is free, not at
     * every completion */
    int q = ex->qmax > 0 ? ex->qmax : 0;
    if (ex->nroom &&
        (ex->closed || ex->running < ex->limit || ex->queued <= q - (q / 4 > 1 ? q / 4 : 1))) {
        k->rw = ex->room_w;
        k->nr = ex->nroom;
        ex->room_w = NULL;
        ex->nroom = ex->caproom = 0;
    }
    k->drained = ex->closed && ex->running == 0 && ex->queued == 0;
    if (ex->nidle && ex->running == 0 && ex->queued == 0) {
        k->iw = ex->idle_w;
        k->ni = ex->nidle;
        ex->idle_w = NULL;
        ex->nidle = ex->capidle = 0;
    }
}

/* Tells them. ex->mu not held. */
static void wake_send(executor *ex, wake *k)
{
    if (k->nr)
        notify(ex, k->rw, k->nr);
    if (k->ni)
        notify(ex, k->iw, k->ni);
    if (k->drained && ex->hooks.drained)
        ex->hooks.drained(ex->hooks.ud);
}

static void on_done(sched *s, xmsg *m);

/* The task ended on its VM (or could not run): counters, the next queued
 * task, the watchers, and the task back to its owner. Any thread. */
static void task_complete(ex_task *t)
{
    executor *ex = t->ex;
    int ok = t->ok;
    if (t->vm)
        atomic_fetch_sub_explicit(&t->vm->load, 1, memory_order_relaxed);
    /* the outcome goes to its owner before the task stops counting as
     * running: an owner told "idle" (pool_wait) then has every outcome in
     * its port already, none still on its way from another thread */
    t->ex = NULL;
    t->msg.fn = on_done;
    if (port_post(t->owner, &t->msg) != 0)
        t->done(NULL, t); /* the owner's VM is gone */
    pthread_mutex_lock(&ex->mu);
    ex->running--;
    if (ok)
        ex->completed++;
    else
        ex->failed++;
    ex_task *undelivered = NULL;
    sendq out = {NULL, NULL};
    run_queued(ex, &out);
    wake k;
    wake_collect(ex, &k);
    pthread_mutex_unlock(&ex->mu);
    sendq_send(&out, &undelivered);
    int drained = k.drained;
    k.drained = 0; /* after the undelivered ones, as before */
    wake_send(ex, &k);
    fail_undelivered(undelivered);
    if (drained && ex->hooks.drained)
        ex->hooks.drained(ex->hooks.ud);
    executor_unref(ex);
}

ex_task *executor_take_queued(executor *ex, int *n)
{
    pthread_mutex_lock(&ex->mu);
    ex_task *list = ex->qhead;
    int count = ex->queued;
    ex->qhead = ex->qtail = NULL;
    ex->queued = 0;
    ex->submitted -= count;
    wake k = {0};
    if (count)
        wake_collect(ex, &k);
    pthread_mutex_unlock(&ex->mu);
    if (n)
        *n = count;
    if (!count)
        return NULL;
    /* what executor_submit took: the owner and executor references */
    for (ex_task *t = list; t; t = t->next) {
        port_unref(t->owner);
        t->owner = NULL;
        t->ex = NULL;
        executor_unref(ex); /* never the last: the caller holds one */
    }
    wake_send(ex, &k);
    return list;
}

static void on_done(sched *s, xmsg *m)
{
    ex_task *t = (ex_task *)m;
    t->done(s, t);
}

/* ---- package.path and package.cpath ---- */

/* Those of the latest submitter, so that a module a task uses by name is
 * found on arrival where the submitter found it (a task file's own
 * directory, a path set by the script). */
static pthread_mutex_t paths_mu = PTHREAD_MUTEX_INITIALIZER;
static char *paths[2];              /* path, cpath (paths_mu) */
static atomic_uint paths_version;   /* bumped at each change */
static const char PATHS_SEEN = 'p'; /* registry: {path, cpath} this VM published */
static const char PATHS_ADOPTED = 'a';

void executor_publish_paths(lua_State *L, ex_paths *seen)
{
    static const char *const keys[2] = {"path", "cpath"};
    luaL_checkstack(L, 4, NULL);
    if (seen->pkg_ref > 0) {
        /* the usual case at every submit: the same two strings as last
         * time (kept by PATHS_SEEN, so their addresses name them) */
        lua_rawgeti(L, LUA_REGISTRYINDEX, seen->pkg_ref);
        lua_getfield(L, -1, "path");
        lua_getfield(L, -2, "cpath");
        int same =
            seen->path && lua_topointer(L, -2) == seen->path && lua_topointer(L, -1) == seen->cpath;
        lua_pop(L, 3);
        if (same)
            return;
    }
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
        if (same) { /* interned strings: a pointer comparison */
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
    /* what the next submit compares with: the strings PATHS_SEEN keeps
     * (a path equal to them in another string object takes this way again) */
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    seen->path = lua_type(L, -2) == LUA_TSTRING ? lua_topointer(L, -2) : NULL;
    seen->cpath = lua_type(L, -1) == LUA_TSTRING ? lua_topointer(L, -1) : NULL;
    lua_pop(L, 2);
    if (seen->pkg_ref <= 0) {
        lua_pushvalue(L, -2);
        seen->pkg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
        lua_pushvalue(L, -2);
        lua_rawseti(L, LUA_REGISTRYINDEX, seen->pkg_ref);
    }
    lua_pop(L, 3);
}

/* VM side: takes the latest published paths before loading a task. */
static void paths_adopt(lua_State *T)
{
    unsigned v = atomic_load(&paths_version);
    lua_rawgetp(T, LUA_REGISTRYINDEX, &PATHS_ADOPTED);
    unsigned seen = (unsigned)lua_tointeger(T, -1);
    lua_pop(T, 1);
    if (v == seen)
        return;
    lua_pushinteger(T, (lua_Integer)v);
    lua_rawsetp(T, LUA_REGISTRYINDEX, &PATHS_ADOPTED);
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

/* ---- the VM side ---- */

/* Goroutines a finished task started that still run: their scope's end is
 * told to the owner (ex_task.ended). Lives on the VM's thread until posted. */
typedef struct lingering {
    xmsg msg;
    scope_watch watch;
    port *owner; /* a reference */
    ex_ended_fn ended;
    ex_task *t;
    char id[ENVELOPE_ID_MAX + 1];
} lingering;

static void on_ended(sched *s, xmsg *m)
{
    lingering *g = (lingering *)m;
    if (s)
        g->ended(s, g->id, g->t);
    port_unref(g->owner);
    free(g);
}

static void on_linger_end(scope_watch *w, int cancelled)
{
    (void)cancelled;
    lingering *g = (lingering *)((char *)w - offsetof(lingering, watch));
    g->msg.fn = on_ended;
    if (port_post(g->owner, &g->msg) != 0) {
        port_unref(g->owner);
        free(g);
    }
}

static int task_msgh(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING)
        luaL_traceback(L, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Encodes the outcome now on L (values from index first to the top): into
 * buf while it fits, unless buf holds an input kept for another run. */
static void task_encode(lua_State *L, ex_task *t, int ok, int first)
{
    char err[256];
    int n = lua_gettop(L) - first + 1;
    out_free(t);
    char *buf = t->keep_in && t->in == t->buf ? NULL : t->buf; /* an input there starts it */
    size_t cap = buf ? sizeof t->buf : 0;
    codec_limits lim;
    codec_limits_default(&lim);
    lim.value_name = ok ? "result" : "error value";
    lim.call = t->decode_ctx;
    if (codec_encode_buf(L, first, n, &lim, buf, cap, &t->out, &t->outlen, err, sizeof err) != 0) {
        lua_pushfstring(L, "task %s: cannot send its %s back: %s", t->id, ok ? "results" : "error",
                        err);
        ok = 0;
        codec_encode_buf(L, lua_gettop(L), 1, NULL, buf, cap, &t->out, &t->outlen, NULL, 0);
        lua_pop(L, 1);
    }
    t->ok = ok;
}

/* Ends t with an error message as its outcome (no Lua involved: it may be
 * out of memory). */
static void fail_text(ex_task *t, const char *msg)
{
    out_free(t);
    char *enc = NULL;
    size_t elen = 0;
    if (codec_encode_text(msg, strlen(msg), &enc, &elen) == 0) {
        t->out = enc;
        t->outlen = elen;
    }
    t->ok = 0;
    task_complete(t);
}

/* The task's scope was cancelled (its timeout or deadline) before the task
 * function ended: it fails with the reason; its goroutines have been killed
 * (their <close> handlers ran) by then. */
static void on_task_cancelled(scope_watch *w, int cancelled)
{
    ex_task *t = (ex_task *)((char *)w - offsetof(ex_task, watch));
    /* at its time limit (not the VM's end) */
    t->timed_out = cancelled && t->sc->eff_deadline && sched_now_ns() >= t->sc->eff_deadline;
    fail_text(t, cancelled && t->sc->reason[0] ? t->sc->reason : "cancelled");
}

const ex_task *executor_task_of(const scope *sc)
{
    for (; sc; sc = sc->parent) {
        const mlist *n;
        mlist_foreach (n, &sc->watches) {
            const scope_watch *w = mlist_entry(n, scope_watch, node);
            if (w->on_end == on_task_cancelled) { /* only a task's own watch on its scope */
                const ex_task *t = (const ex_task *)((const char *)w - offsetof(ex_task, watch));
                if (t->sc == sc)
                    return t;
            }
        }
    }
    return NULL;
}

/* The task function returned or raised, inside its goroutine. */
static int task_k(lua_State *L, int status, lua_KContext ctx)
{
    ex_task *t = (ex_task *)ctx;
    scope_watch_del(&t->watch);
    gor *g0 = gor_of(L);
    scope *sc = g0 ? g0->sc : NULL;
    /* the outcome is encoded outside the task's memory account: a task
     * that ran out still gets its error back */
    memacct *acct = memacct_switch(L, NULL);
    if (status == LUA_OK || status == LUA_YIELD) {
        task_encode(L, t, 1, 2);
    } else if (sc && sc->eff_deadline && sched_now_ns() >= sc->eff_deadline) {
        /* stopped inside a C call that could not yield: the timeout */
        t->timed_out = 1;
        lua_pushstring(L, sc->reason[0] ? sc->reason : "cancelled: deadline passed");
        task_encode(L, t, 0, lua_gettop(L));
    } else {
        task_encode(L, t, 0, lua_gettop(L));
    }
    memacct_switch(L, acct);
    /* goroutines it started (or timeouts still running) outlive it? */
    if (t->ended && sc && sc != &g0->s->root && sc->nlive > 1) {
        lingering *g = calloc(1, sizeof *g);
        if (g) {
            g->owner = t->owner;
            port_ref(g->owner);
            g->ended = t->ended;
            g->t = t;
            snprintf(g->id, sizeof g->id, "%s", t->id);
            g->watch.on_end = on_linger_end;
            scope_watch_add(sc, &g->watch);
            t->lingering = 1;
        }
    }
    task_complete(t);
    return 0;
}

/* The goroutine of a task: fn(args...) under a traceback handler. */
static int task_main(lua_State *L)
{
    ex_task *t = lua_touserdata(L, 1); /* (an argument: no closure made per task) */
    lua_remove(L, 1);
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
    lua_createtable(L, 0, 0); /* (one allocation: most tasks set no global) */
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

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

#define LIMIT_MAX_MS (100ull * 366 * 86400 * 1000) /* a deadline further off: none in practice */

/* How long t may run from now (ms; 0: no limit) and the error it then
 * fails with. UINT64_MAX: its deadline has passed already. */
static uint64_t task_limit(const ex_task *t, char *reason, size_t rlen)
{
    uint64_t limit = 0;
    if (t->timeout_ms) {
        limit = t->timeout_ms;
        snprintf(reason, rlen, "timeout after %" PRIu32 " ms", t->timeout_ms);
    }
    if (t->deadline_ms) {
        uint64_t now = unix_ms();
        uint64_t given = t->submitted_ms && t->submitted_ms <= t->deadline_ms
                             ? t->deadline_ms - t->submitted_ms
                             : 0;
        if (now >= t->deadline_ms) {
            snprintf(reason, rlen,
                     "timeout after %" PRIu64 " ms (the deadline passed before it started)", given);
            return UINT64_MAX;
        }
        if (!limit || t->deadline_ms - now < limit) {
            limit = t->deadline_ms - now;
            if (limit > LIMIT_MAX_MS)
                limit = LIMIT_MAX_MS;
            snprintf(reason, rlen, "timeout after %" PRIu64 " ms", given ? given : limit);
        }
    }
    return limit;
}

static void run_task(sched *s, xmsg *m)
{
    ex_task *t = (ex_task *)m;
    if (!s) {
        t->ok = 0;
        task_complete(t);
        return;
    }
    char reason[128] = ""; /* (the running one, "timeout after N ms", fits sc->reason) */
    uint64_t limit_ms = task_limit(t, reason, sizeof reason);
    if (limit_ms == UINT64_MAX) { /* too late to start it */
        t->timed_out = 1;
        fail_text(t, reason);
        return;
    }
    lua_State *T = sched_scratch(s);
    /* a pool that narrows the sandbox: the gates on this VM (the worker's
     * are there from the start, an embedded pool's come with its first
     * such task) */
    if (t->allow && sandbox_install_safe(T) != 0) {
        fail_text(t, "not enough memory (setting up the task sandbox)");
        return;
    }
    /* its memory account: its arguments count too; it carries the task's
     * sandbox narrowing to its goroutines */
    int sandboxed = t->allow || sandbox_active();
    memacct *acct =
        t->memory || sandboxed ? memacct_new(T, t->memory ? t->memory : SIZE_MAX) : NULL;
    if ((t->memory || sandboxed) && !acct) {
        fail_text(t, "not enough memory");
        return;
    }
    if (acct)
        memacct_set_note(acct, t->allow);
    int base = lua_gettop(T);
    paths_adopt(T);
    char err[256];
    codec_limits lim;
    codec_limits_default(&lim);
    /* from this process, or a signed envelope (functions as source, which
     * this VM compiles, unless the worker accepts bytecode) */
    lim.allow_bytecode = !t->source_only;
    lim.allow_source = 1;
    lim.allow_require = 1;
    lim.call = t->decode_ctx;
    /* decode with a fresh globals table standing in for the VM's (a
     * sandboxed task's: its view of the VM, shared tables it cannot
     * change) */
    lua_rawgeti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    if (sandboxed) {
        sandbox_push_env(T, acct);
        lim.view = sandbox_view;
    } else
        push_task_env(T);
    lua_rawseti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int n = 0;
    memacct *was = memacct_switch(T, acct);
    int rc = codec_decode(T, t->in, t->inlen, &lim, &n, err, sizeof err);
    memacct_switch(T, was);
    lua_pushvalue(T, base + 1);
    lua_rawseti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    if (rc != 0 || n < 1 || lua_type(T, base + 2) != LUA_TFUNCTION) {
        lua_settop(T, base);
        lua_pushfstring(T, "task %s: cannot load: %s", t->id, rc ? err : "no function");
        task_encode(T, t, 0, lua_gettop(T));
        lua_settop(T, base);
        memacct_close(acct);
        task_complete(t);
        return;
    }
    lua_remove(T, base + 1); /* the saved globals */
    lua_pushcfunction(T, task_main);
    lua_pushlightuserdata(T, t);
    lua_rotate(T, base + 1, 2); /* task_main, t, fn, args... */
    /* a scope of its own names the task in its goroutines' log lines,
     * carries its memory account and is cancelled at its time limit */
    scope *sc = scope_new(s, &s->root, limit_ms ? limit_ms * 1000000u : UINT64_MAX);
    if (!sc) {
        lua_settop(T, base);
        memacct_close(acct);
        fail_text(t, "not enough memory");
        return;
    }
    { /* its label "<pool> <id>", made a Lua string only if a log line or an
       * error report needs it (most tasks never do) */
        size_t pl = strlen(t->pool), il = strlen(t->id);
        sc->label_text = malloc(pl + il + 2);
        if (sc->label_text) {
            memcpy(sc->label_text, t->pool, pl);
            sc->label_text[pl] = ' ';
            memcpy(sc->label_text + pl + 1, t->id, il + 1);
        } else {
            lua_pushfstring(T, "%s %s", t->pool, t->id);
            sc->label_ref = luaL_ref(T, LUA_REGISTRYINDEX);
        }
    }
    if (limit_ms)
        snprintf(sc->reason, sizeof sc->reason, "%s", reason);
    if (acct)
        scope_set_tag(sc, acct, memacct_close); /* closed when the scope ends */
    t->sc = sc;
    t->watch.on_end = on_task_cancelled;
    scope_watch_add(sc, &t->watch);
    sched_spawn(s, T, n + 1, sc, NULL);
    scope_release(sc); /* it lives on while the task's goroutines do */
    lua_settop(T, base);
}
