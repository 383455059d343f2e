/* fleet_pool.c: pool_* and await(task_id) on the fleet (see fleet_pool.h).
 *
 * A task's life on this side: pool_submit encodes it, registers an ftask
 * (id -> ftask in a registry table of the VM), produces the envelope to the
 * pool's topic and returns the id; the delivery report only matters when
 * it fails (the task then fails with the Kafka error). The worker's
 * completion script pushes 'R' + result record to mutirao:done:PRODUCER;
 * the poller (one BLMPOP in flight while tasks are outstanding) marks the
 * ftask done, wakes its awaiters, the pool's pool_wait and blocked
 * submitters. Finished ftasks are kept for await like the embedded
 * backend's (RESULT_TTL_S, RESULT_MAX); after that, and for ids of other
 * processes, await reads mutirao:task:ID from Redis. */
#include "fleet_pool.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "codec.h"
#include "envelope.h"
#include "fleet_keys.h"
#include "fleet_wg.h"
#include "kafka_uv.h"
#include "redis_uv.h"
#include "uv_closer.h"
#include "waitgroup.h"

#define RESULT_TTL_S 300
#define RESULT_MAX 100000
#define POLL_BLOCK_S 2     /* one BLMPOP waits at most this long */
#define POLL_COUNT 1000    /* notifications read per BLMPOP */
#define FOREIGN_POLL_MS 20 /* first interval of await on another process's task */

/* ---- the process's configuration ---- */

static pthread_mutex_t cfg_mu = PTHREAD_MUTEX_INITIALIZER;
static config cfg;
static int cfg_state; /* 0: not loaded, 1: loaded, -1: failed (cfg_err) */
static char cfg_err[512];
static atomic_uint vm_counter;

static int cfg_load_locked(void)
{
    if (cfg_state == 0) {
        int rc = config_load(&cfg, NULL, cfg_err, sizeof cfg_err);
        if (rc != 0) {
            config_free(&cfg);
            cfg_state = -1;
        } else {
            cfg_state = 1;
        }
    }
    return cfg_state;
}

int fleet_configure(config *c)
{
    pthread_mutex_lock(&cfg_mu);
    if (cfg_state == 1)
        config_free(&cfg);
    cfg = *c;
    if (!cfg.producer_id[0])
        config_derive_ids(&cfg);
    cfg_state = 1;
    pthread_mutex_unlock(&cfg_mu);
    return 0;
}

int fleet_override(const char *key, const char *value, const char *origin, char *err, size_t errlen)
{
    pthread_mutex_lock(&cfg_mu);
    int rc;
    if (cfg_load_locked() < 0) {
        snprintf(err, errlen, "%s", cfg_err);
        rc = CONFIG_EINVAL;
    } else {
        rc = config_set(&cfg, key, value, origin, err, errlen);
    }
    pthread_mutex_unlock(&cfg_mu);
    return rc;
}

static const config *get_config(lua_State *L)
{
    pthread_mutex_lock(&cfg_mu);
    int st = cfg_load_locked();
    pthread_mutex_unlock(&cfg_mu);
    if (st < 0)
        luaL_error(L, "mutirao configuration: %s", cfg_err);
    return &cfg;
}

int fleet_on(lua_State *L)
{
    return get_config(L)->fleet;
}

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ---- state ---- */

typedef struct fpool fpool;
typedef struct ftask ftask;
typedef struct fvm fvm;

struct fpool {
    fpool *next;
    char name[ENVELOPE_POOL_MAX + 1];
    char topic[CONFIG_TOPIC_MAX + 1];
    int workers, qcap, block, closed;
    long outstanding;                                 /* this VM's tasks not finished */
    long long submitted, completed, failed, rejected; /* this VM's tasks */
    glist room, idle;
};

enum { F_PENDING, F_DONE };

struct ftask {
    ftask *all_prev, *all_next; /* every ftask of the VM */
    ftask *done_next;           /* finished, oldest first */
    fpool *p;
    int state, ok, delivering, held;
    char *out; /* codec message of the outcome, or NULL (then err) */
    size_t outlen;
    char *err;
    glist waiters;
    uint64_t done_ns;
    int wgs_ref; /* registry: WaitGroups this task carries, or LUA_NOREF */
    scope *sc;   /* the submitter's scope while it tracks the task */
    ftask *sc_prev, *sc_next;
    char where[120];
    char id[ENVELOPE_ID_MAX + 1];
};

struct fvm {
    sched *s;
    const config *cfg;
    char producer[ENVELOPE_ID_MAX + 1];
    char notify_key[FLEET_KEY_MAX];
    kuv_producer *kp;
    redis_uv *r;  /* commands */
    redis_uv *rb; /* the blocking reads of the notification list */
    int submit_script;
    int polling;
    uv_timer_t tick; /* retries a failed poll; warns when nothing comes back */
    int tick_on;
    uint64_t last_progress_ms;
    uint64_t seq, wg_seq;
    int tasks_ref; /* registry: id -> light userdata ftask */
    int wgs_ref;   /* registry: WaitGroup fleet id -> WaitGroup */
    fpool *pools;
    long outstanding;
    ftask *all;
    ftask *done_head, *done_tail;
    size_t ndone;
    char last_poll_err[200];
    int closing;
    /* submit bookkeeping not sent yet: FLEET_SUBMIT_LUA's ARGV (pool, id)... */
    uv_check_t flush;
    char **sub_argv;
    size_t *sub_len;
    int nsub, capsub;
    uvc_closer closer; /* frees the struct once tick and flush are both closed */
};

#define SUBMIT_BATCH 512 /* (pool, id) pairs per FLEET_SUBMIT_LUA call */

/* Sends the submit bookkeeping gathered so far in one script call. */
static void flush_submits(fvm *v)
{
    if (v->nsub <= 1)
        return;
    redis_uv_eval(v->r, NULL, NULL, v->submit_script, 0, v->nsub, (const char *const *)v->sub_argv,
                  v->sub_len);
    for (int i = 1; i < v->nsub; i++)
        free(v->sub_argv[i]);
    v->nsub = 1; /* ARGV[1], the TTL, stays */
}

static void on_flush(uv_check_t *h)
{
    flush_submits(h->data);
}

static void note_submit(fvm *v, const char *pool, const char *id)
{
    if (v->nsub + 2 > v->capsub) {
        int c = v->capsub ? v->capsub * 2 : 64;
        char **a = realloc(v->sub_argv, (size_t)c * sizeof *a);
        if (!a)
            return;
        v->sub_argv = a;
        size_t *l = realloc(v->sub_len, (size_t)c * sizeof *l);
        if (!l)
            return;
        v->sub_len = l;
        v->capsub = c;
    }
    char *p = strdup(pool), *i = strdup(id);
    if (!p || !i) {
        free(p);
        free(i);
        return;
    }
    v->sub_argv[v->nsub] = p;
    v->sub_len[v->nsub++] = strlen(p);
    v->sub_argv[v->nsub] = i;
    v->sub_len[v->nsub++] = strlen(i);
    if (v->nsub >= 1 + 2 * SUBMIT_BATCH)
        flush_submits(v);
}

/* ---- the VM's clients ---- */

static void on_kafka_error(void *ud, int err, const char *msg)
{
    (void)err;
    fvm *v = ud;
    fprintf(stderr, "mutirao: fleet producer %s: kafka: %s\n", v->producer, msg);
}

static void poll_start(fvm *v);

static void on_tick(uv_timer_t *h)
{
    fvm *v = h->data;
    if (v->outstanding > 0 && !v->polling)
        poll_start(v);
    uint64_t now = unix_ms(),
             quiet = (uint64_t)(v->cfg->op_timeout_ms > 0 ? v->cfg->op_timeout_ms : 10000);
    if (v->outstanding > 0 && now - v->last_progress_ms >= quiet) {
        fprintf(stderr,
                "mutirao: %ld fleet task(s) of producer %s have had no result for %" PRIu64
                " s: is a mutirao-worker running (same Kafka and Redis)?%s%s\n",
                v->outstanding, v->producer, (now - v->last_progress_ms) / 1000,
                v->last_poll_err[0] ? " Last Redis error: " : "", v->last_poll_err);
        v->last_progress_ms = now;
    }
}

/* 32 bits that differ between runs of this process (and between processes). */
static unsigned run_nonce(void)
{
    static atomic_uint nonce;
    unsigned v = atomic_load(&nonce);
    if (v == 0) {
        unsigned r = 0;
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(&r, sizeof r, 1, f) != 1)
            r = (unsigned)(uv_hrtime() ^ ((uint64_t)getpid() << 16) ^ (uint64_t)time(NULL));
        if (f)
            fclose(f);
        r |= 1;
        unsigned zero = 0;
        v = atomic_compare_exchange_strong(&nonce, &zero, r) ? r : zero;
    }
    return v;
}

static fvm *vm_get(lua_State *L, sched *s)
{
    if (s->fleet_state)
        return s->fleet_state;
    const config *c = get_config(L);
    fvm *v = calloc(1, sizeof *v);
    if (!v)
        luaL_error(L, "not enough memory");
    v->s = s;
    v->cfg = c;
    unsigned n = atomic_fetch_add(&vm_counter, 1);
    char base[48];
    snprintf(base, sizeof base, "%.24s", c->producer_id[0] ? c->producer_id : "producer");
    /* a part unique to this run: a fixed producer.id (or a host name and pid
     * seen before) must not make this run's task ids collide with results
     * of an earlier run still in Redis */
    snprintf(v->producer, sizeof v->producer, "%s.%08x.%u", base, run_nonce(), n % 100000);
    fleet_key_notify(v->notify_key, v->producer);
    char err[512] = "";
    kuv_producer_opts po;
    kuv_producer_opts_default(&po);
    po.message_timeout_ms = c->op_timeout_ms > 0 ? c->op_timeout_ms : 10000;
    po.admin_timeout_ms = po.message_timeout_ms;
    po.replication_factor = c->topic_replication;
    po.error_cb = on_kafka_error;
    po.ud = v;
    po.errbuf = err;
    po.errlen = sizeof err;
    /* librdkafka looks an unknown topic up only at the next metadata
     * refresh: a short interval keeps a new producer's first task from
     * waiting up to a second (librdkafka issue #3202) */
    static const char *const conf[] = {"topic.metadata.refresh.interval.ms", "200",
                                       /* its log lines repeat what error_cb reports */
                                       "log_level", "2", NULL};
    po.conf = conf;
    int rc = 0;
    v->kp = kuv_producer_new(s->loop, c->kafka_brokers, &po, &rc);
    if (!v->kp) {
        free(v);
        luaL_error(L, "kafka: cannot create the producer for %s: %s", c->kafka_brokers,
                   err[0] ? err : kuv_strerror(rc));
    }
    redis_uv_options ro = {0};
    ro.op_timeout_ms = (unsigned)po.message_timeout_ms;
    ro.connect_timeout_ms =
        c->connect_timeout_ms > 0 ? (unsigned)c->connect_timeout_ms : 1; /* 0: fail at once */
    if ((rc = redis_uv_open(s->loop, c->redis_url, &ro, &v->r)) == 0) {
        ro.op_timeout_ms += POLL_BLOCK_S * 1000;
        rc = redis_uv_open(s->loop, c->redis_url, &ro, &v->rb);
    }
    if (rc != 0) {
        char red[300];
        config_redact_url(c->redis_url, red, sizeof red);
        if (v->r)
            redis_uv_close(v->r, NULL, NULL);
        kuv_producer_close(v->kp, 0);
        free(v);
        luaL_error(L, "redis: %s: %s", red, redis_uv_strerror(rc));
    }
    v->submit_script = redis_uv_script(v->r, FLEET_SUBMIT_LUA, strlen(FLEET_SUBMIT_LUA));
    lua_newtable(L);
    v->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    v->wgs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    uv_timer_init(s->loop, &v->tick);
    v->tick.data = v;
    uv_unref((uv_handle_t *)&v->tick);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", c->result_ttl_s);
    v->capsub = 64;
    v->sub_argv = calloc((size_t)v->capsub, sizeof *v->sub_argv);
    v->sub_len = calloc((size_t)v->capsub, sizeof *v->sub_len);
    if (!v->sub_argv || !v->sub_len || !(v->sub_argv[0] = strdup(ttl)))
        luaL_error(L, "not enough memory");
    v->sub_len[0] = strlen(ttl);
    v->nsub = 1;
    uv_check_init(s->loop, &v->flush);
    v->flush.data = v;
    uv_check_start(&v->flush, on_flush);
    uv_unref((uv_handle_t *)&v->flush);
    s->fleet_state = v;
    return v;
}

static fpool *pool_get(fvm *v, const char *name)
{
    fpool *closed = NULL;
    for (fpool *p = v ? v->pools : NULL; p; p = p->next) {
        if (strcmp(p->name, name) != 0)
            continue;
        if (!p->closed)
            return p;
        closed = p;
    }
    return closed;
}

/* Records a pool in this VM (name already checked). Raises when out of memory. */
static fpool *pool_add(lua_State *L, fvm *v, const char *name, int workers, int qcap, int block)
{
    fpool *p = calloc(1, sizeof *p);
    if (!p)
        luaL_error(L, "not enough memory");
    envelope_copy(p->name, sizeof p->name, name);
    config_topic_for_pool(v->cfg, p->name, p->topic, sizeof p->topic, NULL, 0);
    p->workers = workers;
    p->qcap = qcap;
    p->block = block;
    glist_init(&p->room);
    glist_init(&p->idle);
    p->next = v->pools;
    v->pools = p;
    return p;
}

/* ---- waiting for one asynchronous operation ---- */

/* What a goroutine waits for: a Kafka admin call or Redis replies. Owned by
 * the waiting goroutine's guard and by each callback still due. */
typedef struct fop {
    int refs, pending, stage;
    int failed;
    char msg[400];
    sched *s;
    glist waiters;
    /* results */
    long long n[4];
    char *data;
    size_t len;
    int have_data, queued;
    uint64_t due_ns;
    unsigned interval_ms;
    fpool *p;
    int workers, qcap, block;
    char name[ENVELOPE_POOL_MAX + 1];
} fop;

static void fop_unref(fop *op)
{
    if (--op->refs == 0) {
        free(op->data);
        free(op);
    }
}

static int fop_gc(lua_State *L)
{
    fop **box = lua_touserdata(L, 1);
    if (*box) {
        fop_unref(*box);
        *box = NULL;
    }
    return 0;
}

static fop *fop_push(lua_State *L, sched *s, int tbc);

/* Pushes a guard for a new op at the top of L, to-be-closed. */
static fop *fop_new(lua_State *L, sched *s)
{
    return fop_push(L, s, 1);
}

/* The same; without tbc the guard may be popped (the GC frees the op). */
static fop *fop_push(lua_State *L, sched *s, int tbc)
{
    fop **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    if (luaL_newmetatable(L, "goroutine.fleet_op")) {
        lua_pushcfunction(L, fop_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, fop_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    fop *op = calloc(1, sizeof *op);
    if (!op)
        luaL_error(L, "not enough memory");
    op->refs = 1;
    op->s = s;
    glist_init(&op->waiters);
    *box = op;
    if (tbc)
        lua_toclose(L, -1);
    return op;
}

static void fop_fail(fop *op, const char *fmt, const char *a, const char *b)
{
    if (!op->failed) {
        op->failed = 1;
        snprintf(op->msg, sizeof op->msg, fmt, a, b);
    }
}

/* A callback is done with op: wakes the waiter when it was the last. */
static void fop_settle(fop *op)
{
    if (--op->pending == 0 && op->refs > 1)
        sched_ready_all(op->s, &op->waiters);
    fop_unref(op);
}

static void fop_expect(fop *op)
{
    op->refs++;
    op->pending++;
}

/* A send that fop_expect announced failed at once (rc): no callback comes. */
static void fop_unexpect(fop *op, int rc)
{
    op->refs--;
    op->pending--;
    fop_fail(op, "redis: %s%s", redis_uv_strerror(rc), "");
}

/* Sends a command whose reply cb settles op; a send that fails at once
 * fails op (no callback comes). Returns redis_uv_commandv's code. */
static int fop_send(fop *op, redis_uv *r, redis_uv_cb cb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fop_expect(op);
    int rc = redis_uv_commandv(r, cb, op, fmt, ap);
    va_end(ap);
    if (rc != 0)
        fop_unexpect(op, rc);
    return rc;
}

/* A failure or an error reply fails the op: returns 1; 0 for a usable reply. */
static int reply_failed(fop *op, int status, const redisReply *reply, const char *err)
{
    if (status < 0)
        fop_fail(op, "%s%s", err, "");
    else if (reply->type == REDIS_REPLY_ERROR)
        fop_fail(op, "redis: %s%s", reply->str, "");
    else
        return 0;
    return 1;
}

/* Generic Redis reply: an error reply or a failure fails the op. */
static void on_reply(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fop *op = ud;
    reply_failed(op, status, reply, err);
    fop_settle(op);
}

static int not_found(lua_State *L, const char *name)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "pool not found: %s", name);
    return 2;
}

/* ---- outcomes ---- */

static int push_outcome_bytes(lua_State *L, const char *id, int ok, const char *out, size_t outlen,
                              const char *err)
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
    lim.allow_bytecode = 1; /* from the fleet's workers: trusted like the topics */
    lim.allow_require = 1;
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

static void task_free(ftask *t)
{
    free(t->out);
    free(t->err);
    free(t);
}

static void task_unlink(fvm *v, ftask *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else
        v->all = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
}

static void evict(fvm *v)
{
    uint64_t now = sched_now_ns(), ttl = (uint64_t)RESULT_TTL_S * 1000000000ull;
    lua_State *T = v->s->T;
    while (v->done_head && (v->ndone > RESULT_MAX || now - v->done_head->done_ns > ttl)) {
        ftask *t = v->done_head;
        if (t->waiters.head || t->delivering)
            break;
        v->done_head = t->done_next;
        if (!v->done_head)
            v->done_tail = NULL;
        v->ndone--;
        lua_rawgeti(T, LUA_REGISTRYINDEX, v->tasks_ref);
        lua_pushnil(T);
        lua_setfield(T, -2, t->id);
        lua_pop(T, 1);
        task_unlink(v, t);
        task_free(t);
    }
}

/* Releases the WaitGroups t carried (they may be collected once no fleet
 * task carries them). */
static void release_wgs(fvm *v, ftask *t)
{
    if (t->wgs_ref == LUA_NOREF)
        return;
    lua_State *T = v->s->T;
    lua_rawgeti(T, LUA_REGISTRYINDEX, t->wgs_ref);
    lua_rawgeti(T, LUA_REGISTRYINDEX, v->wgs_ref);
    lua_pushnil(T);
    while (lua_next(T, -3)) {
        waitgroup *wg = luaL_testudata(T, -1, WAITGROUP_TNAME);
        if (wg && wg->core && --wg->core->fleet_pending <= 0 && wg->core->fleet_id) {
            lua_pushnil(T);
            lua_setfield(T, -4, wg->core->fleet_id);
        }
        lua_pop(T, 1);
    }
    lua_pop(T, 2);
    luaL_unref(T, LUA_REGISTRYINDEX, t->wgs_ref);
    t->wgs_ref = LUA_NOREF;
}

static void untrack(ftask *t);

/* A task of this VM ended: its outcome is kept, everyone waiting is woken. */
static void task_finish(fvm *v, ftask *t, int ok, const char *out, size_t outlen, const char *err)
{
    sched *s = v->s;
    if (t->state == F_DONE)
        return;
    t->state = F_DONE;
    t->ok = ok;
    if (out) {
        t->out = malloc(outlen ? outlen : 1);
        if (t->out) {
            memcpy(t->out, out, outlen);
            t->outlen = outlen;
        } else {
            t->err = strdup("out of memory for its outcome");
            t->ok = 0;
        }
    } else {
        t->err = strdup(err ? err : "failed");
    }
    t->done_ns = sched_now_ns();
    v->last_progress_ms = unix_ms();
    sched_ready_all(s, &t->waiters);
    release_wgs(v, t);
    fpool *p = t->p;
    v->outstanding--;
    p->outstanding--;
    if (t->ok)
        p->completed++;
    else
        p->failed++;
    if (p->room.head)
        sched_ready_all(s, &p->room);
    if (p->outstanding == 0 && p->idle.head)
        sched_ready_all(s, &p->idle);
    if (!t->ok) {
        lua_State *T = s->T;
        int top = lua_gettop(T);
        int n = push_outcome_bytes(T, t->id, 0, t->out, t->outlen, t->err);
        const char *msg = n >= 2 ? luaL_tolstring(T, top + 2, NULL) : "?";
        if (s->errh_ref != LUA_NOREF) {
            lua_rawgeti(T, LUA_REGISTRYINDEX, s->errh_ref);
            lua_pushfstring(T, "fleet task %s of pool %s (submitted at %s) failed: %s", t->id,
                            p->name, t->where, msg);
            lua_pushnil(T);
            lua_pushfstring(T, "%s %s", p->name, t->id);
            lua_pcall(T, 3, 0, 0);
        } else {
            fprintf(stderr, "fleet task %s of pool %s (submitted at %s) failed: %s\n", t->id,
                    p->name, t->where, msg);
        }
        lua_settop(T, top);
    }
    t->done_next = NULL;
    if (v->done_tail)
        v->done_tail->done_next = t;
    else
        v->done_head = t;
    v->done_tail = t;
    v->ndone++;
    untrack(t);
    if (t->held) {
        t->held = 0;
        sched_unhold(s);
    }
    evict(v);
}

static void untrack(ftask *t)
{
    scope *sc = t->sc;
    if (!sc)
        return;
    if (t->sc_prev)
        t->sc_prev->sc_next = t->sc_next;
    else
        sc->ftasks = t->sc_next;
    if (t->sc_next)
        t->sc_next->sc_prev = t->sc_prev;
    t->sc = NULL;
    t->sc_prev = t->sc_next = NULL;
}

static void track(ftask *t, scope *sc)
{
    if (!sc)
        return;
    t->sc = sc;
    t->sc_prev = NULL;
    t->sc_next = sc->ftasks;
    if (sc->ftasks)
        ((ftask *)sc->ftasks)->sc_prev = t;
    sc->ftasks = t;
}

void fleet_scope_done(scope *sc, int cancelled)
{
    ftask *t;
    while ((t = sc->ftasks)) {
        untrack(t);
        if (cancelled && t->held) {
            t->held = 0;
            sched_unhold(sc->s);
        }
    }
}

static ftask *task_find(fvm *v, lua_State *L, const char *id)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, v->tasks_ref);
    lua_getfield(L, -1, id);
    ftask *t = lua_touserdata(L, -1);
    lua_pop(L, 2);
    return t;
}

/* ---- the notification poller ---- */

static void apply_wg(fvm *v, const char *s, size_t len)
{
    char buf[200];
    if (len >= sizeof buf)
        return;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *sp = strrchr(buf, ' ');
    if (!sp)
        return;
    *sp = 0;
    long long d = strtoll(sp + 1, NULL, 10);
    lua_State *T = v->s->T;
    lua_rawgeti(T, LUA_REGISTRYINDEX, v->wgs_ref);
    if (lua_getfield(T, -1, buf) == LUA_TUSERDATA && waitgroup_apply(T, -1, d) != 0)
        fprintf(stderr,
                "mutirao: negative WaitGroup counter: fleet tasks called done() more "
                "often than add() on WaitGroup %s\n",
                buf);
    lua_pop(T, 2);
}

static void on_notification(fvm *v, const char *s, size_t len)
{
    if (len < 1)
        return;
    if (s[0] == 'W') {
        apply_wg(v, s + 1, len - 1);
        return;
    }
    if (s[0] != 'R')
        return;
    envelope_result r;
    char why[200];
    if (envelope_result_decode(s + 1, len - 1, NULL, &r, why, sizeof why) != 0) {
        fprintf(stderr, "mutirao: producer %s: bad notification skipped: %s\n", v->producer, why);
        return;
    }
    ftask *t = task_find(v, v->s->T, r.id);
    if (!t || t->state == F_DONE)
        return;
    task_finish(v, t, r.ok, r.payload, r.payload_len, NULL);
}

static void on_poll(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fvm *v = ud;
    v->polling = 0;
    if (status == REDIS_UV_ECLOSED)
        return;
    if (status < 0 || reply->type == REDIS_REPLY_ERROR) {
        snprintf(v->last_poll_err, sizeof v->last_poll_err, "%s", status < 0 ? err : reply->str);
        return; /* the tick retries */
    }
    v->last_poll_err[0] = 0;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *items = reply->element[1];
        for (size_t i = 0; i < items->elements; i++)
            if (items->element[i]->type == REDIS_REPLY_STRING)
                on_notification(v, items->element[i]->str, items->element[i]->len);
    }
    if (v->outstanding > 0)
        poll_start(v);
}

static void poll_start(fvm *v)
{
    if (v->polling)
        return;
    char block[16], count[16];
    snprintf(block, sizeof block, "%d", POLL_BLOCK_S);
    snprintf(count, sizeof count, "%d", POLL_COUNT);
    const char *argv[] = {"BLMPOP", block, "1", v->notify_key, "LEFT", "COUNT", count};
    if (redis_uv_command_argv(v->rb, on_poll, v, 7, argv, NULL) == 0)
        v->polling = 1;
    if (!v->tick_on) {
        v->tick_on = 1;
        uv_timer_start(&v->tick, on_tick, 1000, 1000);
    }
}

/* ---- pool_create ---- */

static void on_ensure(void *ud, int err, const char *errmsg)
{
    fop *op = ud;
    if (err && errmsg && !strncmp(errmsg, "kafka: ", 7))
        fop_fail(op, "%s%s", errmsg, "");
    else if (err)
        fop_fail(op, "kafka: %s%s", errmsg ? errmsg : kuv_strerror(err), "");
    fop_settle(op);
}

static int create_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fop *op = (fop *)ctx;
    sched *s = op->s;
    fvm *v = s->fleet_state;
    if (op->pending > 0)
        return sched_wait(L, s, &op->waiters, 0, ctx, create_k);
    if (op->failed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool '%s': %s", op->name, op->msg);
        return 2;
    }
    if (op->stage == 0) {
        /* the topic exists: record the options for the workers */
        op->stage = 1;
        char key[FLEET_KEY_MAX], w[16], q[16];
        fleet_key_pool(key, op->name);
        snprintf(w, sizeof w, "%d", op->workers);
        snprintf(q, sizeof q, "%d", op->qcap);
        if (fop_send(op, v->r, on_reply, "HSET %s workers %s queue %s block %s", key, w, q,
                     op->block ? "1" : "0") != 0)
            return create_k(L, LUA_OK, ctx);
        return sched_wait(L, s, &op->waiters, 0, ctx, create_k);
    }
    fpool *same = pool_get(v, op->name); /* created meanwhile by another goroutine? */
    if (same && !same->closed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool already exists: %s", op->name);
        return 2;
    }
    pool_add(L, v, op->name, op->workers, op->qcap, op->block);
    lua_pushboolean(L, 1);
    return 1;
}

int fleet_pool_create(lua_State *L, sched *s, const char *name, int workers, int qcap, int block)
{
    fvm *v = vm_get(L, s);
    fpool *old = pool_get(v, name);
    if (old && !old->closed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool already exists: %s", name);
        return 2;
    }
    char topic[CONFIG_TOPIC_MAX + 1], why[200];
    if (config_topic_for_pool(v->cfg, name, topic, sizeof topic, why, sizeof why) != 0)
        return luaL_argerror(L, 1, why);
    char copy[ENVELOPE_POOL_MAX + 1]; /* name lives on the stack cleared below */
    envelope_copy(copy, sizeof copy, name);
    lua_settop(L, 0);
    fop *op = fop_new(L, s);
    memcpy(op->name, copy, sizeof op->name);
    op->workers = workers;
    op->qcap = qcap;
    op->block = block;
    fop_expect(op);
    int rc = kuv_topic_ensure(v->kp, topic, v->cfg->topic_partitions, on_ensure, op);
    if (rc != 0) {
        op->refs--; /* no callback comes */
        op->pending--;
        luaL_pushfail(L);
        lua_pushfstring(L, "pool '%s': kafka: cannot create topic %s: %s", op->name, topic,
                        kuv_strerror(rc));
        return 2;
    }
    return sched_wait(L, s, &op->waiters, 0, (lua_KContext)op, create_k);
}

/* ---- pool_submit ---- */

static _Thread_local fvm *encoding_vm;
static _Thread_local ftask *encoding_task;

int fleet_wg_encoding(void)
{
    return encoding_vm != NULL;
}

/* Adds the WaitGroup at idx to the task being encoded (once). */
static void carry(lua_State *L, int idx)
{
    ftask *t = encoding_task;
    waitgroup *wg = lua_touserdata(L, idx);
    if (!t || !wg->core->fleet_id)
        return;
    idx = lua_absindex(L, idx);
    if (t->wgs_ref == LUA_NOREF) {
        lua_newtable(L);
        t->wgs_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->wgs_ref);
    if (lua_getfield(L, -1, wg->core->fleet_id) == LUA_TNIL) {
        lua_pushvalue(L, idx);
        lua_setfield(L, -3, wg->core->fleet_id);
        wg->core->fleet_pending++;
    }
    lua_pop(L, 2);
    /* the VM's table keeps it alive (and findable) while carried */
    lua_rawgeti(L, LUA_REGISTRYINDEX, encoding_vm->wgs_ref);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, wg->core->fleet_id);
    lua_pop(L, 1);
}

char *fleet_wg_register(lua_State *L, sched *s, int idx)
{
    (void)s;
    fvm *v = encoding_vm;
    if (!v)
        return NULL;
    char buf[ENVELOPE_ID_MAX + 24];
    snprintf(buf, sizeof buf, "%s/%" PRIu64, v->producer, ++v->wg_seq);
    char *id = strdup(buf);
    if (!id)
        return NULL;
    waitgroup *wg = lua_touserdata(L, idx);
    wg->core->fleet_id = id;
    carry(L, idx);
    return id;
}

void fleet_wg_carried(lua_State *L, sched *s, int idx)
{
    (void)s;
    carry(L, idx);
}

int fleet_wg_find(lua_State *L, sched *s, const char *id, size_t len)
{
    fvm *v = s->fleet_state;
    if (!v)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, v->wgs_ref);
    lua_pushlstring(L, id, len);
    if (lua_rawget(L, -2) == LUA_TUSERDATA) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 2);
    return 0;
}

typedef struct dreport {
    fvm *v;
    ftask *t;
} dreport;

static int submit_k(lua_State *L, int status, lua_KContext ctx);

/* HGETALL mutirao:pool:NAME: workers, queue, block into n[0..2]. */
static void on_pool_record(redis_uv *cli, int status, const redisReply *reply, const char *err,
                           void *ud)
{
    (void)cli;
    fop *op = ud;
    if (!reply_failed(op, status, reply, err) && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements >= 2) {
        op->have_data = 1;
        op->n[0] = 4;
        op->n[1] = -1;
        op->n[2] = 1;
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const char *k = reply->element[i]->str, *val = reply->element[i + 1]->str;
            if (!k || !val)
                continue;
            long long x = strtoll(val, NULL, 10);
            if (!strcmp(k, "workers") && x >= 1 && x <= 1000000)
                op->n[0] = x;
            else if (!strcmp(k, "queue") && x >= 0 && x <= 1000000)
                op->n[1] = x;
            else if (!strcmp(k, "block"))
                op->n[2] = x != 0;
        }
    }
    fop_settle(op);
}

/* pool_submit to a pool this VM did not create: adopts the pool record
 * another process (or VM) left in Redis. Stack: name, fn, args..., guard. */
static int adopt_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fop *op = (fop *)ctx;
    sched *s = op->s;
    fvm *v = s->fleet_state;
    if (op->pending > 0)
        return sched_wait(L, s, &op->waiters, 0, ctx, adopt_k);
    if (op->failed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool '%s': %s", op->name, op->msg);
        return 2;
    }
    fpool *p = pool_get(v, op->name); /* created meanwhile by this VM? */
    if (!p && !op->have_data) {
        return not_found(L, op->name);
    }
    if (!p)
        p = pool_add(L, v, op->name, (int)op->n[0],
                     op->n[1] >= 0 ? (int)op->n[1] : 2 * (int)op->n[0], (int)op->n[2]);
    lua_pop(L, 1); /* the guard */
    lua_pushlightuserdata(L, p);
    lua_insert(L, 1); /* p, name, fn, args... */
    return submit_k(L, LUA_OK, 0);
}

int fleet_pool_submit(lua_State *L, sched *s)
{
    const char *name = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    fvm *v = vm_get(L, s);
    fpool *p = pool_get(v, name);
    if (!p) {
        /* created by another process (or VM)? its options are in Redis */
        char key[FLEET_KEY_MAX];
        char why[200];
        if (envelope_check_pool(name, strlen(name), why, sizeof why) != 0)
            return luaL_argerror(L, 1, why);
        fop *op = fop_push(L, s, 0);
        envelope_copy(op->name, sizeof op->name, name);
        fleet_key_pool(key, name);
        fop_send(op, v->r, on_pool_record, "HGETALL %s", key);
        return adopt_k(L, LUA_OK, (lua_KContext)op);
    }
    lua_pushlightuserdata(L, p);
    lua_insert(L, 1); /* p, name, fn, args... */
    return submit_k(L, LUA_OK, 0);
}

static void on_failed_delivery(fvm *v, ftask *t, const char *errmsg)
{
    char key[FLEET_KEY_MAX];
    fleet_key_stats(key, t->p->name);
    redis_uv_command(v->r, NULL, NULL, "HINCRBY %s failed 1", key);
    fleet_key_task_queued(key, t->id);
    redis_uv_command(v->r, NULL, NULL, "DEL %s", key);
    char msg[600];
    snprintf(msg, sizeof msg, "not delivered to Kafka: %s", errmsg);
    task_finish(v, t, 0, NULL, 0, msg);
}

static void on_report(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    (void)partition;
    (void)offset;
    dreport *d = ud;
    d->t->delivering = 0;
    if (err && !d->v->closing && d->t->state != F_DONE)
        on_failed_delivery(d->v, d->t, errmsg ? errmsg : kuv_strerror(err));
    free(d);
}

static int submit_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    fvm *v = s->fleet_state;
    fpool *p = lua_touserdata(L, 1);
    if (p->closed) {
        p->rejected++;
        luaL_pushfail(L);
        lua_pushliteral(L, "pool is closed");
        return 2;
    }
    if (p->outstanding >= (long)p->workers + p->qcap) {
        if (!p->block) {
            p->rejected++;
            luaL_pushfail(L);
            lua_pushliteral(L, "pool queue is full");
            return 2;
        }
        return sched_wait(L, s, &p->room, 0, 0, submit_k);
    }
    ftask *t = calloc(1, sizeof *t);
    if (!t)
        return luaL_error(L, "not enough memory");
    t->p = p;
    t->wgs_ref = LUA_NOREF;
    glist_init(&t->waiters);
    char idbuf[ENVELOPE_ID_MAX + 32];
    snprintf(idbuf, sizeof idbuf, "%s:%" PRIu64, v->producer, ++v->seq);
    envelope_copy(t->id, sizeof t->id, idbuf);
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
        snprintf(t->where, sizeof t->where, "%s:%d", ar.short_src, ar.currentline);
    else
        memcpy(t->where, "?", 2);
    /* encode fn and its arguments; WaitGroups among them get fleet ids */
    char err[256], stack[512];
    char *payload = NULL;
    size_t plen = 0;
    codec_limits lim;
    codec_limits_default(&lim);
    lim.first_number = 2;
    encoding_vm = v;
    encoding_task = t;
    int rc = codec_encode_buf(L, 3, lua_gettop(L) - 2, &lim, stack, sizeof stack, &payload, &plen,
                              err, sizeof err);
    encoding_vm = NULL;
    encoding_task = NULL;
    if (rc != 0) {
        release_wgs(v, t);
        task_free(t);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    envelope_task e;
    memset(&e, 0, sizeof e);
    memcpy(e.id, t->id, sizeof e.id);
    memcpy(e.pool, p->name, sizeof e.pool);
    memcpy(e.producer, v->producer, sizeof e.producer);
    e.attempt = 1;
    e.submitted_at_ms = unix_ms();
    e.payload = payload;
    e.payload_len = plen;
    envelope_limits elim;
    envelope_limits_default(&elim);
    elim.max_payload = (size_t)v->cfg->payload_max_bytes;
    char estack[768];
    envelope_buf b;
    envelope_buf_init(&b, estack, sizeof estack);
    rc = envelope_task_encode(&e, &elim, &b, err, sizeof err);
    if (payload != stack)
        free(payload);
    dreport *d = rc == 0 ? malloc(sizeof *d) : NULL;
    if (rc == 0 && !d)
        rc = -1;
    if (rc == 0) {
        d->v = v;
        d->t = t;
        rc = kuv_produce(v->kp, p->topic, t->id, strlen(t->id), b.data, b.len, on_report, d);
        if (rc != 0) {
            free(d);
            snprintf(err, sizeof err, "kafka: %s", kuv_strerror(rc));
        }
    } else if (rc == ENVELOPE_ETOOBIG) {
        snprintf(stack, sizeof stack, "task too large for payload.max_bytes (%d): %s",
                 v->cfg->payload_max_bytes, err);
        memcpy(err, stack, sizeof err - 1);
        err[sizeof err - 1] = 0;
    }
    envelope_buf_free(&b);
    if (rc != 0) {
        release_wgs(v, t);
        task_free(t);
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    /* accepted */
    t->delivering = 1;
    t->all_next = v->all;
    if (v->all)
        v->all->all_prev = t;
    v->all = t;
    lua_rawgeti(L, LUA_REGISTRYINDEX, v->tasks_ref);
    lua_pushlightuserdata(L, t);
    lua_setfield(L, -2, t->id);
    lua_pop(L, 1);
    if (v->outstanding == 0)
        v->last_progress_ms = unix_ms();
    v->outstanding++;
    p->outstanding++;
    p->submitted++;
    t->held = 1;
    sched_hold(s);
    track(t, sched_current_scope(s, L));
    note_submit(v, p->name, t->id);
    poll_start(v);
    lua_pushstring(L, t->id);
    return 1;
}

/* ---- pool_wait, pool_close ---- */

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fpool *p = (fpool *)ctx;
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    if (p->outstanding == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return sched_wait(L, s, &p->idle, 0, ctx, wait_k);
}

int fleet_pool_wait(lua_State *L, sched *s)
{
    const char *name = luaL_checkstring(L, 1);
    fpool *p = pool_get(s->fleet_state, name);
    if (!p) {
        return not_found(L, name);
    }
    return wait_k(L, LUA_OK, (lua_KContext)p);
}

int fleet_pool_close(lua_State *L, sched *s)
{
    const char *name = luaL_checkstring(L, 1);
    fpool *p = pool_get(s->fleet_state, name);
    if (!p) {
        return not_found(L, name);
    }
    if (p->closed) {
        luaL_pushfail(L);
        lua_pushliteral(L, "pool is closed");
        return 2;
    }
    p->closed = 1;
    sched_ready_all(s, &p->room); /* blocked submitters see "pool is closed" */
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- pool_stats ---- */

static void on_stats(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fop *op = ud;
    if (!reply_failed(op, status, reply, err) && reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const char *k = reply->element[i]->str, *val = reply->element[i + 1]->str;
            if (!k || !val)
                continue;
            if (!strcmp(k, "submitted"))
                op->n[0] = strtoll(val, NULL, 10);
            else if (!strcmp(k, "completed"))
                op->n[1] = strtoll(val, NULL, 10);
            else if (!strcmp(k, "failed"))
                op->n[2] = strtoll(val, NULL, 10);
        }
    }
    fop_settle(op);
}

static void on_active(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fop *op = ud;
    if (!reply_failed(op, status, reply, err) && reply->type == REDIS_REPLY_ARRAY) {
        uint64_t now = unix_ms();
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const char *val = reply->element[i + 1]->str;
            char *end;
            long long n = val ? strtoll(val, &end, 10) : 0;
            unsigned long long at = val ? strtoull(end, NULL, 10) : 0;
            if (n > 0 && at + FLEET_ACTIVE_STALE_MS >= now)
                op->n[3] += n;
        }
    }
    fop_settle(op);
}

static int stats_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fop *op = (fop *)ctx;
    if (op->pending > 0)
        return sched_wait(L, op->s, &op->waiters, 0, ctx, stats_k);
    if (op->failed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool '%s': %s", op->name, op->msg);
        return 2;
    }
    /* this process's tasks, as on the embedded backend; running ones as the
     * workers report them; fleet_*: every producer's, since the pool's topic
     * was first used */
    fpool *p = op->p;
    long long active = op->n[3] < p->outstanding ? op->n[3] : p->outstanding;
    const struct {
        const char *k;
        long long v;
    } f[] = {{"workers", p->workers},
             {"queue", p->qcap},
             {"active", active},
             {"queued", p->outstanding - active},
             {"completed", p->completed},
             {"failed", p->failed},
             {"submitted", p->submitted},
             {"rejected", p->rejected},
             {"fleet_active", op->n[3]},
             {"fleet_submitted", op->n[0]},
             {"fleet_completed", op->n[1]},
             {"fleet_failed", op->n[2]}};
    lua_createtable(L, 0, 14);
    lua_pushstring(L, p->name);
    lua_setfield(L, -2, "name");
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        lua_pushinteger(L, (lua_Integer)f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
    lua_pushliteral(L, "fleet");
    lua_setfield(L, -2, "backend");
    return 1;
}

int fleet_pool_stats(lua_State *L, sched *s)
{
    const char *name = luaL_checkstring(L, 1);
    fvm *v = s->fleet_state;
    fpool *p = pool_get(v, name);
    if (!p) {
        return not_found(L, name);
    }
    lua_settop(L, 0);
    fop *op = fop_new(L, s);
    op->p = p;
    memcpy(op->name, p->name, sizeof op->name);
    char key[FLEET_KEY_MAX];
    fleet_key_stats(key, p->name);
    fop_send(op, v->r, on_stats, "HGETALL %s", key);
    fleet_key_active(key, p->name);
    fop_send(op, v->r, on_active, "HGETALL %s", key);
    return stats_k(L, LUA_OK, (lua_KContext)op);
}

/* ---- await ---- */

static int await_local_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    ftask *t = (ftask *)ctx;
    return push_outcome_bytes(L, t->id, t->ok, t->out, t->outlen, t->err);
}

/* MGET mutirao:task:ID mutirao:task:ID:q */
static void on_lookup(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fop *op = ud;
    if (!reply_failed(op, status, reply, err) && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == 2) {
        const redisReply *res = reply->element[0];
        if (res->type == REDIS_REPLY_STRING) {
            free(op->data);
            op->data = malloc(res->len ? res->len : 1);
            if (op->data) {
                memcpy(op->data, res->str, res->len);
                op->len = res->len;
                op->have_data = 1;
            }
        }
        op->queued = reply->element[1]->type == REDIS_REPLY_STRING;
    }
    fop_settle(op);
}

static int await_foreign_k(lua_State *L, int status, lua_KContext ctx);

static int foreign_lookup(lua_State *L, fop *op)
{
    fvm *v = op->s->fleet_state;
    char k1[FLEET_KEY_MAX], k2[FLEET_KEY_MAX];
    fleet_key_task(k1, op->name);
    fleet_key_task_queued(k2, op->name);
    op->stage = 1;
    if (fop_send(op, v->r, on_lookup, "MGET %s %s", k1, k2) != 0)
        return await_foreign_k(L, LUA_OK, (lua_KContext)op);
    return sched_wait(L, op->s, &op->waiters, 0, (lua_KContext)op, await_foreign_k);
}

static int await_foreign_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fop *op = (fop *)ctx;
    if (op->stage == 2) /* slept: look again */
        return foreign_lookup(L, op);
    if (op->pending > 0)
        return sched_wait(L, op->s, &op->waiters, 0, ctx, await_foreign_k);
    if (op->failed) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "task %s: %s", op->name, op->msg);
        return 2;
    }
    if (op->have_data) {
        envelope_result r;
        char why[200];
        if (envelope_result_decode(op->data, op->len, NULL, &r, why, sizeof why) != 0) {
            lua_pushboolean(L, 0);
            lua_pushfstring(L, "task %s: bad result record in Redis: %s", op->name, why);
            return 2;
        }
        return push_outcome_bytes(L, op->name, r.ok, r.payload, r.payload_len, NULL);
    }
    if (!op->queued) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "unknown task id: %s (never submitted, or its result expired)",
                        op->name);
        return 2;
    }
    /* submitted by another process and not finished: look again later */
    op->stage = 2;
    op->interval_ms = op->interval_ms ? op->interval_ms * 2 : FOREIGN_POLL_MS;
    if (op->interval_ms > 500)
        op->interval_ms = 500;
    return sched_wait(L, op->s, NULL, sched_now_ns() + (uint64_t)op->interval_ms * 1000000u, ctx,
                      await_foreign_k);
}

int fleet_await(lua_State *L, sched *s, int idx)
{
    const char *id = luaL_checkstring(L, idx);
    fvm *v = vm_get(L, s);
    ftask *t = task_find(v, L, id);
    if (t) {
        if (t->state == F_DONE)
            return push_outcome_bytes(L, t->id, t->ok, t->out, t->outlen, t->err);
        return sched_wait(L, s, &t->waiters, 0, (lua_KContext)t, await_local_k);
    }
    size_t len = strlen(id);
    if (envelope_check_id(id, len, NULL, 0) != 0) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "unknown task id: %s (not a task id)", id);
        return 2;
    }
    char copy[ENVELOPE_ID_MAX + 1];
    memcpy(copy, id, len + 1);
    lua_settop(L, 0);
    fop *op = fop_new(L, s);
    memcpy(op->name, copy, len + 1);
    return foreign_lookup(L, op);
}

/* ---- teardown ---- */

void fleet_sched_free(sched *s)
{
    fvm *v = s->fleet_state;
    if (!v)
        return;
    s->fleet_state = NULL;
    v->closing = 1;
    flush_submits(v);
    /* flushes what is still queued for Kafka: its reports fire now */
    kuv_producer_close(v->kp, v->cfg->op_timeout_ms > 5000 ? 5000 : v->cfg->op_timeout_ms);
    redis_uv_close(v->r, NULL, NULL);
    redis_uv_close(v->rb, NULL, NULL);
    while (v->all) {
        ftask *t = v->all;
        v->all = t->all_next;
        untrack(t);
        task_free(t);
    }
    while (v->pools) {
        fpool *p = v->pools;
        v->pools = p->next;
        free(p);
    }
    for (int i = 0; i < v->nsub; i++)
        free(v->sub_argv[i]);
    free(v->sub_argv);
    free(v->sub_len);
    /* libuv may run flush's close callback after tick's: v goes after both */
    uvc_init(&v->closer, free, v);
    uvc_close(&v->closer, (uv_handle_t *)&v->flush);
    uvc_close(&v->closer, (uv_handle_t *)&v->tick);
    uvc_release(&v->closer);
}
