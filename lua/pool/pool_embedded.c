/* pool_embedded.c: the embedded pool backend: named pools on this
 * process's VM threads (see pool.h).
 *
 * A pool is a name, a queue bound and an executor (executor.h) that runs
 * at most `workers` of its tasks at once. Pools are process-wide: any VM
 * may submit to a pool by name. pool_submit encodes the function and its
 * arguments into the task; the executor runs it on a VM and brings the
 * outcome back to the submitting VM, whose taskbook keeps it for await.
 * Goroutines that wait (for queue room, in pool_wait) wait in their own VM
 * and are woken by the executor's notify message on its port.
 *
 * Retries: a task that raised, with attempts left (the pool's `retries`),
 * is not finished: a timer on its submitter's loop (the backoff of
 * retry.h) submits it to the executor again, so it holds no slot while it
 * waits; its submitter's taskbook keeps it unfinished until an attempt
 * returns or the last one raised. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "executor.h"
#include "pool.h"
#include "sandbox.h"
#include "taskbook.h"

typedef struct epool epool;

struct epool {
    epool *next; /* registry list (pools_mu) */
    char *name;
    int workers, qcap, block;
    uint32_t timeout_ms; /* each task's time limit (0: none) */
    size_t memory;       /* each task's memory limit */
    uint64_t allow;      /* each task's sandbox narrowing (sandbox.h), 0: none */
    atomic_int refs;
    atomic_llong rejected;
    pool_retry retry;      /* runs again of a task that raised */
    atomic_llong retried;  /* attempts that raised and will run again */
    atomic_llong rerun;    /* of those, submitted to the executor again */
    atomic_int unfinished; /* tasks taken and not finished, with retries only */
    executor *ex;
};

typedef struct etask etask;

/* A task waiting for its next attempt: a timer on its submitter's loop. */
typedef struct eretry {
    uv_timer_t timer;
    etask *t; /* NULL once fired or given up */
    sched *s;
} eretry;

/* A task: what runs (ex) and what its submitter keeps (tb). */
struct etask {
    ex_task ex;
    tb_task tb;
    epool *p;         /* its pool (a reference, until the task is done: its name) */
    char *in;         /* the encoded task when larger than ex.buf, else NULL */
    uint32_t attempt; /* 1, 2, ... */
    eretry *retry;    /* while waiting for the next attempt */
};

/* What one VM keeps: goroutines waiting for queue room / an idle pool. */
typedef struct evm {
    sched *s;
    glist room, idle;
    ex_paths paths; /* package.path/cpath as last published */
} evm;

/* Tasks out of one submitter past which pool_submit reads outcomes. */
#define SUBMIT_READ_OUTCOMES 1024

static pthread_mutex_t pools_mu = PTHREAD_MUTEX_INITIALIZER;
static epool *pools; /* open pools, and closed ones until their last task ended */
static atomic_ullong task_seq;
static const char EVM_KEY = 'e';

/* ---- pools ---- */

static void pool_unref(epool *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    executor_unref(p->ex);
    free(p->name);
    free(p);
}

/* Unlinks p if it is listed (pools_mu held); returns whether it was. */
static int unlist(epool *p)
{
    for (epool **pp = &pools; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return 1;
        }
    }
    return 0;
}

static int is_closed(epool *p)
{
    return executor_closed(p->ex);
}

/* The open pool of that name, else a closed one still draining. pools_mu
 * held. */
static epool *find_locked(const char *name)
{
    epool *closed = NULL;
    for (epool *p = pools; p; p = p->next) {
        if (strcmp(p->name, name) != 0)
            continue;
        if (!is_closed(p))
            return p;
        closed = p;
    }
    return closed;
}

/* The same, with a reference for the caller. */
static epool *pool_find(const char *name)
{
    pthread_mutex_lock(&pools_mu);
    epool *p = find_locked(name);
    if (p)
        atomic_fetch_add(&p->refs, 1);
    pthread_mutex_unlock(&pools_mu);
    return p;
}

/* A closed pool ran its last task: its name goes. */
static void on_drained(void *ud)
{
    epool *p = ud;
    pthread_mutex_lock(&pools_mu);
    int was = unlist(p);
    pthread_mutex_unlock(&pools_mu);
    if (was)
        pool_unref(p); /* the registry's reference */
}

/* ---- per-VM state ---- */

static void evm_free(sched *s, void *data)
{
    (void)s;
    free(data);
}

void *pool_embedded_state(lua_State *L, sched *s)
{
    evm *v = sched_ext_get(s, &EVM_KEY);
    if (v)
        return v;
    v = calloc(1, sizeof *v);
    if (!v || sched_ext_set(s, &EVM_KEY, v, evm_free) != 0) {
        free(v);
        luaL_error(L, "not enough memory");
        return NULL;
    }
    v->s = s;
    glist_init(&v->room);
    glist_init(&v->idle);
    return v;
}

/* The executor says: room freed up, or a pool went idle (waiters re-check). */
static void on_notify(sched *s, xmsg *m)
{
    free(m);
    if (!s)
        return;
    evm *v = sched_ext_get(s, &EVM_KEY);
    if (v) {
        sched_ready_all(s, &v->room);
        sched_ready_all(s, &v->idle);
    }
}

/* ---- tasks ---- */

static void etask_free(tb_task *tb)
{
    etask *t = (etask *)((char *)tb - offsetof(etask, tb));
    ex_task_release(&t->ex);
    free(t->in);
    free(t);
}

/* The submitter's VM closes while the task runs: the executor still
 * brings it back, to a closed port, and on_task_done frees it then. */
static void retry_closed(uv_handle_t *h)
{
    free(h);
}

static void etask_orphan(tb_task *tb)
{
    etask *t = (etask *)((char *)tb - offsetof(etask, tb));
    if (!t->retry)
        return;
    /* waiting for its next attempt: nothing else will free it */
    t->retry->t = NULL;
    uv_close((uv_handle_t *)&t->retry->timer, retry_closed);
    t->retry = NULL;
    if (t->p->retry.retries)
        atomic_fetch_sub(&t->p->unfinished, 1);
    pool_unref(t->p);
    ex_task_release(&t->ex);
    free(t->in);
    free(t);
}

static const tb_ops etask_ops = {"pool", etask_free, etask_orphan, NULL, NULL};

static void finished(etask *t)
{
    if (t->p->retry.retries)
        atomic_fetch_sub(&t->p->unfinished, 1);
}

/* The backoff is over: the next attempt goes to the executor. */
static void on_retry(uv_timer_t *h)
{
    eretry *r = (eretry *)h;
    etask *t = r->t;
    sched *s = r->s;
    uv_close((uv_handle_t *)h, retry_closed);
    if (!t)
        return;
    t->retry = NULL;
    ex_task_release(&t->ex); /* the failed attempt's outcome */
    int rc = executor_submit(t->p->ex, &t->ex, s, -1, NULL);
    if (rc == EX_OK) {
        atomic_fetch_add(&t->p->rerun, 1);
        return;
    }
    finished(t);
    taskbook_finish(taskbook_get(sched_scratch(s), s), &t->tb, 0, NULL, 0,
                    rc == EX_ECLOSED ? "pool closed before the task's next attempt"
                                     : "out of memory for the task's next attempt",
                    0);
    t->tb.pool = "?";
    pool_unref(t->p);
    t->p = NULL;
}

/* An attempt raised: waits for the next one if one is left. Returns 1 if
 * it does. */
static int retry_later(sched *s, etask *t)
{
    const pool_retry *rp = &t->p->retry;
    if (t->attempt > rp->retries || !t->ex.out)
        return 0;
    eretry *r = malloc(sizeof *r);
    if (!r)
        return 0;
    uint64_t ms = retry_delay_ms(rp, t->attempt + 1, retry_random());
    uv_timer_init(s->loop, &r->timer);
    uv_unref((uv_handle_t *)&r->timer); /* the taskbook's hold keeps the loop */
    r->t = t;
    r->s = s;
    t->retry = r;
    t->attempt++;
    atomic_fetch_add(&t->p->retried, 1);
    uv_timer_start(&r->timer, on_retry, ms, 0);
    return 1;
}

/* The task ended (on the submitter's thread; s is NULL when its VM is gone). */
static void on_task_done(sched *s, ex_task *x)
{
    etask *t = (etask *)x;
    if (s && !x->ok && retry_later(s, t))
        return;  /* t->in is read again */
    free(t->in); /* decoded long ago */
    t->in = NULL;
    finished(t);
    if (!s) {
        pool_unref(t->p);
        ex_task_release(x);
        free(t);
        return;
    }
    taskbook *b = taskbook_get(sched_scratch(s), s);
    taskbook_finish(b, &t->tb, x->ok, x->out, x->out ? x->outlen : 0,
                    x->out ? NULL : "its VM is gone", x->lingering);
    t->tb.pool = "?"; /* done: its pool's name is no longer needed */
    pool_unref(t->p);
    t->p = NULL;
}

static void on_task_ended(sched *s, const char *id, ex_task *x)
{
    (void)x; /* perhaps forgotten already: looked up by id */
    taskbook_settle(taskbook_get(sched_scratch(s), s), id);
}

/* Task ids read "<8 hex digits of this process>-<sequence number>"
 * (written by hand: this runs for every task). */
static void format_id(char *out)
{
    uint64_t seq = atomic_fetch_add(&task_seq, 1) + 1;
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    memcpy(out, pool_id_prefix(), 9);
    for (int i = 0; i < n; i++)
        out[9 + i] = digits[n - 1 - i];
    out[9 + n] = 0;
}

/* ---- pool_create ---- */

static int e_create(lua_State *L, void *be, const char *name, const pool_opts *o)
{
    (void)be;
    static const ex_hooks hooks = {on_notify, NULL, NULL};
    epool *p = calloc(1, sizeof *p);
    char *nm = strdup(name);
    if (!p || !nm) {
        free(p);
        free(nm);
        return luaL_error(L, "not enough memory");
    }
    ex_hooks h = hooks;
    h.drained = on_drained;
    h.ud = p;
    p->ex = executor_new(o->workers, &h);
    if (!p->ex) {
        free(p);
        free(nm);
        luaL_pushfail(L);
        lua_pushliteral(L, "cannot start the pool's VM threads");
        return 2;
    }
    p->name = nm;
    p->workers = o->workers;
    p->qcap = o->queue;
    p->block = o->block;
    p->timeout_ms = o->timeout_ms;
    p->memory = o->memory;
    p->allow = o->allow;
    p->retry = o->retry;
    atomic_init(&p->refs, 1);
    pthread_mutex_lock(&pools_mu);
    epool *q = find_locked(name);
    if (q && !is_closed(q)) {
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

/* ---- pool_submit ---- */

/* The task being submitted, owned by a to-be-closed userdata on the
 * submitter's stack until the pool takes it (so a killed submitter frees
 * it), with the submitter's hold while it waits for room. */
typedef struct tguard {
    etask *t;
    epool *p;
    sched *s;
    int holding;
} tguard;

static int tguard_close(lua_State *L)
{
    tguard *g = lua_touserdata(L, 1);
    if (g->holding) {
        g->holding = 0;
        sched_unhold(g->s);
    }
    if (g->t) {
        free(g->t->in);
        free(g->t);
        g->t = NULL;
    }
    if (g->p) {
        pool_unref(g->p);
        g->p = NULL;
    }
    return 0;
}

static int rejected(lua_State *L, epool *p, const char *why)
{
    atomic_fetch_add(&p->rejected, 1);
    luaL_pushfail(L);
    lua_pushstring(L, why);
    return 2;
}

/* The pool took t: from here the executor, then the taskbook, own it; the
 * task keeps the caller's pool reference. */
static int submitted(lua_State *L, sched *s, epool *p, etask *t)
{
    t->p = p;
    if (p->retry.retries)
        atomic_fetch_add(&p->unfinished, 1);
    taskbook *b = taskbook_get(L, s);
    taskbook_add(b, L, &t->tb, &etask_ops);
    lua_pushstring(L, t->tb.id);
    /* A submitter that keeps submitting without waiting (a loop in the
     * main chunk or in one goroutine) would leave every outcome unread
     * until it waits: a record per task, all of them new memory. With
     * many tasks out, it takes the outcomes that came back (and whatever
     * else its port holds) here, at most a few batches, as its loop would
     * (outside loop callbacks other than the drain running it: messages
     * only ready goroutines, never run them), so that finished records
     * are kept within the taskbook's bound and their memory is reused. */
    if (taskbook_unfinished(b) > SUBMIT_READ_OUTCOMES && s->port &&
        s->in_cb == (s->running ? 1 : 0))
        port_run(s->port);
    return 1;
}

static int submit_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    tguard *g = (tguard *)ctx;
    sched *s = g->s;
    if (g->holding) {
        g->holding = 0;
        sched_unhold(s);
    }
    etask *t = g->t;
    epool *p = g->p;
    int rc = executor_submit(p->ex, &t->ex, s, p->qcap, p->block ? s->port : NULL);
    if (rc == EX_ECLOSED)
        return rejected(L, p, "pool is closed");
    if (rc == EX_EQUEUEFULL && !p->block)
        return rejected(L, p, "pool queue is full");
    if (rc == EX_EQUEUEFULL) {
        evm *v = pool_embedded_state(L, s);
        sched_hold(s);
        g->holding = 1;
        return sched_wait(L, s, &v->room, 0, ctx, submit_k);
    }
    g->t = NULL;
    g->p = NULL;
    return submitted(L, s, p, t);
}

static int new_guard(lua_State *L)
{
    tguard *g = lua_newuserdatauv(L, sizeof *g, 0);
    memset(g, 0, sizeof *g);
    if (luaL_newmetatable(L, "goroutine.pool_submission")) {
        lua_pushcfunction(L, tguard_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, tguard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    return 1;
}

static void etask_discard(etask *t, epool *p)
{
    free(t->in);
    free(t);
    pool_unref(p);
}

static int e_submit(lua_State *L, void *be)
{
    evm *v = be;
    sched *s = v->s;
    const char *name = lua_tostring(L, 1);
    executor_publish_paths(L, &v->paths); /* (may raise: before anything is held) */
    epool *p = pool_find(name);
    if (!p)
        return pool_not_found(L, name);
    etask *t = calloc(1, sizeof *t);
    if (!t) {
        pool_unref(p);
        return luaL_error(L, "not enough memory");
    }
    char err[256];
    int top = lua_gettop(L);
    codec_limits lim;
    codec_limits_default(&lim);
    lim.first_number = 2; /* fn is pool_submit's argument #2 */
    char *in;
    size_t inlen;
    if (codec_encode_buf(L, 2, top - 1, &lim, t->ex.buf, sizeof t->ex.buf, &in, &inlen, err,
                         sizeof err) != 0) {
        etask_discard(t, p);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (in != t->ex.buf)
        t->in = in;
    t->ex.in = in;
    t->ex.inlen = inlen;
    t->ex.keep_in = p->retry.retries > 0; /* decoded again by its next attempt */
    t->ex.done = on_task_done;
    t->ex.ended = on_task_ended;
    t->ex.timeout_ms = p->timeout_ms;
    t->ex.memory = p->memory;
    t->ex.allow = sandbox_narrow(p->allow, sandbox_current(L)); /* a task's are no wider */
    t->attempt = 1;
    format_id(t->tb.id);
    t->ex.id = t->tb.id;
    t->ex.pool = t->tb.pool = p->name;
    /* the usual case first: taken at once, no guard needed */
    int rc = executor_submit(p->ex, &t->ex, s, p->qcap, p->block ? s->port : NULL);
    if (rc == EX_OK)
        return submitted(L, s, p, t);
    if (rc == EX_ECLOSED || !p->block) {
        atomic_fetch_add(&p->rejected, 1);
        etask_discard(t, p);
        luaL_pushfail(L);
        lua_pushstring(L, rc == EX_ECLOSED ? "pool is closed" : "pool queue is full");
        return 2;
    }
    /* waits for room: the task is owned by a to-be-closed guard on the
     * submitter's stack until the pool takes it (so a killed submitter
     * frees it), with the submitter's hold */
    lua_pushcfunction(L, new_guard);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK) { /* out of memory: t is still ours */
        etask_discard(t, p);
        return lua_error(L);
    }
    tguard *g = lua_touserdata(L, -1);
    g->t = t;
    g->p = p;
    g->s = s;
    lua_replace(L, 1); /* keep only the guard: index 1 */
    lua_settop(L, 1);
    lua_toclose(L, 1);
    evm *ev = pool_embedded_state(L, s);
    sched_hold(s);
    g->holding = 1;
    return sched_wait(L, s, &ev->room, 0, (lua_KContext)g, submit_k);
}

/* ---- pool_wait, pool_close, pool_stats ---- */

/* An idle waiter's pool reference and hold, released by __close if the
 * waiter is killed. */
typedef struct wguard {
    sched *s;
    epool *p;
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
    if (w->holding) {
        w->holding = 0;
        sched_unhold(s);
    }
    int idle = executor_idle_or_watch(w->p->ex, s->port);
    if (idle && atomic_load(&w->p->unfinished) == 0) {
        /* the outcomes in this VM's port are recorded before pool_wait
         * returns (kept, counted, the oldest forgotten past the bound);
         * the executor posted every one before it said idle */
        if (s->port && s->in_cb == (s->running ? 1 : 0))
            port_run(s->port);
        lua_pushboolean(L, 1);
        return 1;
    }
    sched_hold(s);
    w->holding = 1;
    if (idle) /* tasks waiting for their next attempt: look again soon */
        return sched_wait(L, s, NULL, sched_now_ns() + 10000000, ctx, wait_k);
    evm *v = pool_embedded_state(L, s);
    return sched_wait(L, s, &v->idle, 0, ctx, wait_k);
}

static int e_wait(lua_State *L, void *be, const char *name)
{
    evm *v = be;
    epool *p = pool_find(name);
    if (!p)
        return pool_not_found(L, name);
    const ex_task *self = executor_task_of(sched_current_scope(v->s, L));
    if (self && self->ex == p->ex) { /* it counts itself: never idle */
        pool_unref(p);
        return luaL_error(L, "pool_wait('%s') inside task %s of that pool would wait for itself",
                          name, self->id);
    }
    wguard *w = lua_newuserdatauv(L, sizeof *w, 0);
    w->s = v->s;
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

static int e_close(lua_State *L, void *be, const char *name)
{
    (void)be;
    pthread_mutex_lock(&pools_mu);
    epool *p = find_locked(name);
    if (!p || is_closed(p)) {
        pthread_mutex_unlock(&pools_mu);
        if (!p)
            return pool_not_found(L, name);
        luaL_pushfail(L);
        lua_pushliteral(L, "pool is closed");
        return 2;
    }
    executor_close(p->ex); /* blocked submitters see "pool is closed" */
    int idle = executor_counts(p->ex, NULL, NULL, NULL);
    int unlisted = idle && unlist(p); /* else its last task unlists it */
    pthread_mutex_unlock(&pools_mu);
    if (unlisted)
        pool_unref(p); /* queued and running tasks hold their own references */
    lua_pushboolean(L, 1);
    return 1;
}

static int e_stats(lua_State *L, void *be, const char *name)
{
    (void)be;
    epool *p = pool_find(name);
    if (!p)
        return pool_not_found(L, name);
    ex_stats st;
    executor_stats(p->ex, &st);
    const pool_stat f[] = {{"workers", p->workers},
                           {"queue", p->qcap},
                           {"active", st.running},
                           {"queued", st.queued},
                           {"completed", st.completed},
                           /* the executor counts attempts; a task counts once */
                           {"failed", st.failed - atomic_load(&p->retried)},
                           {"submitted", st.submitted - atomic_load(&p->rerun)},
                           {"rejected", atomic_load(&p->rejected)},
                           {"timeout", p->timeout_ms},
                           {"memory", (long long)p->memory},
                           {"retries", p->retry.retries},
                           {"retried", atomic_load(&p->retried)}};
    pool_unref(p);
    pool_push_stats(L, name, f, (int)(sizeof f / sizeof f[0]));
    return 1;
}

static int e_await_other(lua_State *L, void *be, const char *id)
{
    (void)be;
    lua_pushboolean(L, 0);
    lua_pushfstring(L,
                    "unknown task id: %s (not submitted from this VM, or finished more than %d s "
                    "ago)",
                    id, TASKBOOK_TTL_S);
    return 2;
}

const pool_backend pool_embedded = {"embedded", e_create, e_submit,     e_wait,
                                    e_close,    e_stats,  e_await_other};
