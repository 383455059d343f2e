/* fleet_pool.c: the fleet backend of the pool functions (see fleet_pool.h).
 *
 * A task's life on this side: pool_submit encodes it (WaitGroups among its
 * values get fleet names, fleet_wg.h), records it in the VM's taskbook,
 * produces the envelope to the pool's topic and returns the id; the
 * delivery report only matters when it fails (the task then fails with the
 * Kafka error). The submit bookkeeping (FLEET_SUBMIT_LUA) is batched per
 * loop turn. The worker's completion script pushes 'R' + result record to
 * mutirao:done:PRODUCER; the poller (one BLMPOP in flight while tasks are
 * outstanding) finishes the task in the taskbook, which wakes its
 * awaiters; the pool's pool_wait and blocked submitters wake here. After
 * the taskbook forgot a task, and for ids of other processes, await reads
 * mutirao:task:ID from Redis. */
#include "fleet_pool.h"

#include <inttypes.h>
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
#include "decimal.h"
#include "envelope.h"
#include "executor.h"
#include "fleet_conn.h"
#include "fleet_keys.h"
#include "fleet_objects.h"
#include "fleet_reconcile.h"
#include "fleet_seen.h"
#include "fleet_wg.h"
#include "kafka_uv.h"
#include "pool.h"
#include "redis_uv.h"
#include "rtlog.h"
#include "sandbox.h"
#include "sign.h"
#include "taskbook.h"
#include "uv_closer.h"

#define POLL_BLOCK_S 2     /* one BLMPOP waits at most this long */
#define POLL_COUNT 1000    /* notifications read per BLMPOP */
#define FOREIGN_POLL_MS 20 /* first interval of await on another process's task */

static atomic_uint vm_counter;
static const char FVM_KEY = 'f';

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
    int max_deliveries;  /* carried by each task's envelope */
    uint32_t timeout_ms; /* each task's time limit, 0: none (in every envelope) */
    size_t memory;       /* each task's memory limit (in every envelope) */
    pool_retry retry;    /* runs again of a task that raised (in every envelope) */
    uint64_t allow;      /* its sandbox narrowing, 0: none (in every envelope; sandbox.h) */
    long outstanding;    /* this VM's tasks not finished */
    long long submitted, completed, failed, rejected; /* this VM's tasks */
    long long dead_lettered;                          /* of the failed: dead letters */
    uint64_t touched_ms;                              /* tagged layout: the latest pool_touch */
    glist room, idle;
};

struct ftask {
    tb_task tb;
    fpool *p;
    char *out;   /* the outcome's codec message (tb.out), malloc'd */
    int carried; /* registry ref of the WaitGroups it carries, or LUA_NOREF */
    int keep;    /* its record carries other producers' WaitGroup changes: not retired */
    frc_task rc; /* on the reconciliation's list while pending */
    int wg_done; /* its WaitGroup changes were applied (with its 'R' or its record) */
    char *env;   /* its task envelope while pending: submitted again if Redis lost it */
    size_t envlen;
    int refused;   /* a result for it that does not verify was logged (once per task) */
    unsigned keys; /* FLEET_TK_* it may have in Redis besides its result (retire_task) */
};

struct fvm {
    sched *s;
    const config *cfg; /* the host's, outlives the VM */
    tb_ops ops;        /* how the taskbook frees and decodes this VM's tasks */
    char producer[ENVELOPE_ID_MAX + 1];
    char notify_key[FLEET_KEY_MAX];
    char prefix[FLEET_KEY_MAX]; /* of this producer's slot: its scripts' KEYS[1] */
    size_t prefix_len;
    fleet_wgs *wgs;
    kuv_producer *kp;  /* NULL until the first pool call */
    int kafka_said;    /* a Kafka error was logged since Kafka last answered */
    sign_key *key;     /* auth.signing_key, loaded with kp; NULL: envelopes go unsigned */
    sign_trust *trust; /* auth.trusted_keys, loaded with kp; NULL: results are not checked */
    int auth_required; /* with trust: unsigned results are refused too (auth.required) */
    int wg_refused;    /* a refused WaitGroup change of another producer's task was logged */
    /* other producers' tasks whose signed records were read for this VM's
     * WaitGroup changes (foreign_wg_read): a registry table, id -> 0 while
     * read, then the record's finished_at (ms); nforeign entries */
    int foreign_ref;
    int pins_ref; /* task id -> {WaitGroup name = true} pinned while its record is read */
    long nforeign;
    int foreign_logged;  /* refusals logged (at most FOREIGN_WG_LOG_MAX) */
    uint64_t started_ms; /* records of tasks finished before are not this VM's */
    redis_uv *r;         /* commands */
    redis_uv *rb;        /* the blocking reads of the notification list */
    frc *rc;             /* looks up pending tasks whose notification did not come */
    frc_stats rc_seen;   /* its counters at the last report */
    int submit_script;
    int lookup_script;            /* FLEET_LOOKUP_LUA: an await of another producer's task */
    int checking_workers;         /* the "no result" warning's look at the workers is out */
    fpool *quiet[FLEET_SEEN_MAX]; /* the pools it looks at */
    int nquiet;
    int polling;
    uv_timer_t tick; /* retries a failed poll; warns when nothing comes back */
    int tick_on;
    uint64_t last_progress_ms; /* the latest result (or first submit) */
    uint64_t last_warn_ms;     /* the latest "no result" warning */
    uint64_t seq;
    unsigned char rnd[256]; /* OS random bytes for task ids, used from the end */
    size_t rnd_left;
    fpool *pools;
    long outstanding;
    char last_poll_err[200];
    int closing;
    size_t undelivered; /* tasks Kafka failed to take while closing */
    uvc_closer closer;  /* frees the struct once tick and flush are both closed */
    /* submit bookkeeping not sent yet: FLEET_SUBMIT_LUA's ARGV (pool, id)...;
     * the ids are copied into sub_ids (task i's at sub_ids[i]), a pool's name
     * once for a run of tasks of that pool (sub_free_pool) */
    uv_check_t flush;
    char **sub_argv;
    size_t *sub_len;
    int nsub, capsub;
    char (*sub_ids)[ENVELOPE_ID_MAX + 1];
    /* keys of awaited tasks not deleted yet: UNLINK's arguments */
    char **ret_argv;
    size_t *ret_len;
    int nret, capret;
};

/* What a Kafka delivery report is about. */
typedef struct dreport {
    fvm *v;
    ftask *t;
} dreport;

#define SUBMIT_BATCH 512 /* (pool, id) pairs per FLEET_SUBMIT_LUA call */
#define TOUCH_MS 1000    /* pool_touch's least interval per pool */

static fpool *pool_get(fvm *v, const char *name);

/* The tagged layout's part of the submit bookkeeping in the pool's slot
 * (the flat layout's submit script does it): the pool's keys live on
 * FLEET_POOL_IDLE_TTL_S after its latest submit, and this producer stays
 * among those whose counters pool_stats sums. At most once per TOUCH_MS per
 * pool; fire and forget (the first submit's entry was awaited:
 * registry_send). */
static void pool_touch(fvm *v, const char *pool)
{
    fpool *p = pool_get(v, pool);
    uint64_t now = unix_ms();
    if (!p || now - p->touched_ms < TOUCH_MS)
        return;
    p->touched_ms = now;
    char key[FLEET_KEY_MAX];
    fleet_key_producers(key, pool);
    redis_uv_command(v->r, NULL, NULL, "ZADD %s %llu %s", key, (unsigned long long)now,
                     v->producer);
    redis_uv_command(v->r, NULL, NULL, "EXPIRE %s %d", key, FLEET_POOL_IDLE_TTL_S);
    /* producers quiet for twice the counters' life: their counters are gone */
    redis_uv_command(v->r, NULL, NULL, "ZREMRANGEBYSCORE %s -inf %llu", key,
                     (unsigned long long)(now - 2000ull * FLEET_POOL_IDLE_TTL_S));
    fleet_key_pool(key, pool);
    redis_uv_command(v->r, NULL, NULL, "EXPIRE %s %d", key, FLEET_POOL_IDLE_TTL_S);
}

/* Frees the pool names of the batch (each run of one pool's tasks shares
 * one copy). */
static void sub_free_pools(fvm *v)
{
    for (int i = 1; i < v->nsub; i += 2)
        if (i == 1 || v->sub_argv[i] != v->sub_argv[i - 2])
            free(v->sub_argv[i]);
}

/* Sends the submit bookkeeping gathered so far in one script call. */
static void flush_submits(fvm *v)
{
    if (v->nsub <= 1)
        return;
    /* its reply tells the reconciliation the markers are written */
    frc_ids *ids = v->rc ? frc_ids_new(v->rc, (v->nsub - 1) / 2) : NULL;
    for (int i = 2; ids && i < v->nsub; i += 2)
        frc_ids_add(ids, v->sub_argv[i]);
    /* KEYS[1], this producer's slot (its tasks' ids are all its own);
     * per task: pool, the key and bit of its submitted bitmap */
    int n = (v->nsub - 1) / 2, argc = 2 + 3 * n, rc = -1;
    fleet_bits bits;
    int have = fleet_bits_init(&bits, n) == 0;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    if (have && argv) {
        argv[0] = v->prefix;
        argv[1] = v->sub_argv[0];
        for (int i = 0; i < n && have; i++) {
            have = fleet_bits_set(&bits, i, v->sub_argv[2 + 2 * i], v->sub_len[2 + 2 * i]) == 0;
            argv[2 + 3 * i] = v->sub_argv[1 + 2 * i];
            argv[3 + 3 * i] = bits.sub[i];
            argv[4 + 3 * i] = bits.bit[i];
            /* tagged: the pools' keys are in their own slots */
            if (fleet_keys_tagged() && (i == 0 || strcmp(argv[2 + 3 * i], argv[3 * i - 1]) != 0))
                pool_touch(v, argv[2 + 3 * i]);
        }
        if (have)
            rc = redis_uv_eval(v->r, ids ? frc_on_marked : NULL, ids, v->submit_script, 1, argc,
                               argv, NULL);
    }
    if (bits.n)
        fleet_bits_free(&bits);
    free(argv);
    if (rc != 0 && ids)
        frc_on_marked(v->r, -1, NULL, NULL, ids);
    sub_free_pools(v);
    v->nsub = 1; /* ARGV[1], the TTL, stays */
}

#define RETIRE_BATCH 512 /* keys per UNLINK */

/* Deletes the keys of the tasks awaited so far (one UNLINK). */
static void flush_retired(fvm *v)
{
    if (v->nret <= 1)
        return;
    redis_uv_command_argv(v->r, NULL, NULL, v->nret, (const char **)v->ret_argv, v->ret_len);
    for (int i = 1; i < v->nret; i++)
        free(v->ret_argv[i]);
    v->nret = 1; /* ARGV[0], "UNLINK", stays */
}

/* Once its outcome was read, a task's keys are not needed any more (its
 * seen bit stays: see fleet_keys.h): its result and which (FLEET_TK_*) of
 * the others it may have. Batched per loop turn. */
static void retire_task(fvm *v, const char *id, unsigned which)
{
    char keys[FLEET_TASK_KEYS][FLEET_KEY_MAX];
    size_t lens[FLEET_TASK_KEYS];
    int n = fleet_task_keys(id, which, keys, lens);
    if (fleet_keys_tagged() && strncmp(keys[0], v->prefix, v->prefix_len) != 0) {
        /* another producer's task: its keys are in another slot */
        const char *argv[1 + FLEET_TASK_KEYS] = {"UNLINK"};
        size_t alen[1 + FLEET_TASK_KEYS] = {6};
        for (int i = 0; i < n; i++) {
            argv[1 + i] = keys[i];
            alen[1 + i] = lens[i];
        }
        redis_uv_command_argv(v->r, NULL, NULL, 1 + n, argv, alen);
        return;
    }
    if (v->nret + n > v->capret) {
        int c = v->capret ? v->capret * 2 : 64;
        char **a = realloc(v->ret_argv, (size_t)c * sizeof *a);
        if (!a)
            return; /* the keys expire with result.ttl_s instead */
        v->ret_argv = a;
        size_t *l = realloc(v->ret_len, (size_t)c * sizeof *l);
        if (!l)
            return;
        v->ret_len = l;
        v->capret = c;
    }
    if (v->nret == 0) {
        if (!(v->ret_argv[0] = strdup("UNLINK")))
            return;
        v->ret_len[0] = 6;
        v->nret = 1;
    }
    for (int i = 0; i < n; i++) {
        char *k = malloc(lens[i] + 1);
        if (!k)
            break;
        memcpy(k, keys[i], lens[i] + 1);
        v->ret_argv[v->nret] = k;
        v->ret_len[v->nret++] = lens[i];
    }
    if (v->nret > RETIRE_BATCH)
        flush_retired(v);
}

static void on_flush(uv_check_t *h)
{
    flush_submits(h->data);
    flush_retired(h->data);
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
    size_t il = strlen(id);
    if (il > ENVELOPE_ID_MAX) /* checked by the submit: not here */
        return;
    char *p;
    size_t pl;
    if (v->nsub > 1 && strcmp(v->sub_argv[v->nsub - 2], pool) == 0) {
        p = v->sub_argv[v->nsub - 2]; /* the task before's pool: one copy */
        pl = v->sub_len[v->nsub - 2];
    } else if ((p = strdup(pool))) {
        pl = strlen(p);
    } else {
        return;
    }
    char *i = v->sub_ids[(v->nsub - 1) / 2];
    memcpy(i, id, il + 1);
    v->sub_len[v->nsub] = pl;
    v->sub_argv[v->nsub++] = p;
    v->sub_argv[v->nsub] = i;
    v->sub_len[v->nsub++] = il;
    if (v->nsub >= 1 + 2 * SUBMIT_BATCH)
        flush_submits(v);
}

/* ---- the VM's clients ---- */

/* librdkafka's errors: the first one since Kafka last answered (a topic
 * made, a task delivered) is a warning, the rest of that outage debug
 * lines (librdkafka repeats a broker's connection errors; an operation that
 * fails says the latest one). */
static void on_kafka_error(void *ud, int err, const char *msg)
{
    (void)err;
    fvm *v = ud;
    rtlog(v->s, v->kafka_said ? RTLOG_DEBUG : RTLOG_WARN, 0, LUA_NOREF,
          "fleet producer %s: kafka: %s", v->producer, msg);
    v->kafka_said = 1;
}

static void poll_start(fvm *v);

/* ---- the "no result" warning ---- */

/* fleet_seen_check's answer: the hint about mutirao-worker only for the
 * pools no worker reports running tasks of. */
static void on_seen(void *ud, int status, const char *err, const int *seen, int n)
{
    fvm *v = ud;
    v->checking_workers = 0;
    if (v->outstanding <= 0)
        return;
    uint64_t now = unix_ms(), quiet_s = (now - v->last_progress_ms) / 1000;
    v->last_warn_ms = now;
    if (status < 0) {
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "%ld fleet task(s) of producer %s have had no result for %" PRIu64 " s: Redis: %s",
              v->outstanding, v->producer, quiet_s, err);
        return;
    }
    size_t unsent = v->kp ? kuv_producer_pending(v->kp) : 0;
    if (unsent > 0) {
        /* the workers cannot have them: no word about workers */
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "%ld fleet task(s) of producer %s have had no result for %" PRIu64
              " s: %zu not taken by Kafka yet (brokers %s), kept up to "
              "kafka.delivery_timeout_ms = %d from each submit",
              v->outstanding, v->producer, quiet_s, unsent, v->cfg->kafka_brokers,
              v->cfg->kafka_delivery_timeout_ms);
        return;
    }
    char names[400] = "";
    size_t len = 0;
    long out = 0;
    for (int i = 0; i < n && i < v->nquiet; i++) {
        if (seen[i])
            continue;
        out += v->quiet[i]->outstanding;
        int k =
            snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "", v->quiet[i]->name);
        if (k > 0)
            len = len + (size_t)k < sizeof names ? len + (size_t)k : sizeof names - 1;
    }
    if (out > 0)
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "%ld fleet task(s) of producer %s in pool(s) %s have had no result for %" PRIu64
              " s and no worker reports running tasks of them: is a mutirao-worker running "
              "for them (same Kafka and Redis)?%s%s%s",
              out, v->producer, names, quiet_s,
              /* workers that require signatures refuse this producer's
               * tasks unrun, and cannot say so to it (a forged refusal
               * would fail someone else's task): they are dead letters */
              v->key ? ""
                     : " This producer signs nothing (no auth.signing_key): workers with "
                       "auth.trusted_keys refuse its tasks unrun (`mutirao dlq list POOL` shows "
                       "them).",
              v->last_poll_err[0] ? " Reading the results fails: " : "", v->last_poll_err);
    else if (v->last_poll_err[0])
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "%ld fleet task(s) of producer %s have had no result for %" PRIu64
              " s: reading the results fails: %s",
              v->outstanding, v->producer, quiet_s, v->last_poll_err);
    /* else workers run them: long tasks, nothing is wrong */
}

/* Nothing came back for a while: whether workers run the pools of the
 * tasks out decides what to say. */
static void check_workers(fvm *v)
{
    const char *names[FLEET_SEEN_MAX];
    v->nquiet = 0;
    for (fpool *p = v->pools; p && v->nquiet < FLEET_SEEN_MAX; p = p->next)
        if (p->outstanding > 0) {
            names[v->nquiet] = p->name;
            v->quiet[v->nquiet++] = p;
        }
    if (v->nquiet > 0 && fleet_seen_check(v->r, names, v->nquiet, on_seen, v) == 0)
        v->checking_workers = 1;
}

/* One line per second at most about what the reconciliation did. */
static void report_reconciled(fvm *v)
{
    frc_stats st;
    frc_get_stats(v->rc, &st);
    if (st.found > v->rc_seen.found)
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "producer %s: %" PRIu64 " fleet task outcome(s) read from Redis, their "
              "notification lost or late (a Redis connection reset or restart?)",
              v->producer, st.found - v->rc_seen.found);
    if (st.lost > v->rc_seen.lost)
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "producer %s: Redis has neither the outcome nor the queued marker of %" PRIu64
              " fleet task(s) (restarted without persistence?): submitted again",
              v->producer, st.lost - v->rc_seen.lost);
    v->rc_seen = st;
}

static void on_tick(uv_timer_t *h)
{
    fvm *v = h->data;
    if (v->outstanding > 0 && !v->polling)
        poll_start(v);
    uint64_t now = unix_ms(),
             quiet = (uint64_t)(v->cfg->op_timeout_ms > 0 ? v->cfg->op_timeout_ms : 10000);
    if (v->rc) {
        frc_tick(v->rc, now);
        report_reconciled(v);
    }
    /* a warning every `quiet` ms while nothing comes back, saying for how
     * long nothing has */
    if (v->outstanding > 0 && now - v->last_progress_ms >= quiet &&
        now - v->last_warn_ms >= quiet && !v->checking_workers)
        check_workers(v);
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

static const frc_ops reconcile_ops;

/* Makes the VM's Kafka producer and Redis connections on first use. */
static fvm *clients(lua_State *L, fvm *v)
{
    if (v->kp)
        return v;
    const config *c = v->cfg;
    sched *s = v->s;
    char err[512] = "";
    if (c->auth_signing_key[0] && !v->key &&
        sign_key_load(c->auth_signing_key, &v->key, err, sizeof err) != 0)
        luaL_error(L, "auth.signing_key: %s", err);
    if (c->auth_trusted_keys[0] && !v->trust) {
        if (sign_trust_load(c->auth_trusted_keys, &v->trust, err, sizeof err) != 0)
            luaL_error(L, "auth.trusted_keys: %s", err);
        if (sign_trust_count(v->trust) == 0) {
            sign_trust_free(v->trust);
            v->trust = NULL;
        }
        v->auth_required = config_auth_required(c);
    }
    kuv_producer_opts po;
    kuv_producer_opts_default(&po);
    /* a submitted task waits for Kafka up to kafka.delivery_timeout_ms (a
     * broker restart); creating a topic, a caller's operation, only up to
     * op.timeout_ms */
    po.message_timeout_ms = c->kafka_delivery_timeout_ms;
    po.admin_timeout_ms = c->op_timeout_ms > 0 ? c->op_timeout_ms : 10000;
    po.replication_factor = c->topic_replication;
    po.error_cb = on_kafka_error;
    po.ud = v;
    po.errbuf = err;
    po.errlen = sizeof err;
    po.weak = 1; /* see fop_pending */
    /* librdkafka looks an unknown topic up only at the next metadata
     * refresh: a short interval keeps a new producer's first task from
     * waiting up to a second (librdkafka issue #3202). What it costs: 5
     * metadata requests a second per producer, 0.3% of the broker's requests
     * at 1,000 tasks/s (a produce and a fetch per task); with 10 s instead
     * (and commits every second, not 100 ms) the broker's CPU per task was
     * within the runs' noise (345 -> 331 us, 3 pairs, 2026-12-06) */
    static const char *const base[] = {"topic.metadata.refresh.interval.ms", "200",
                                       /* its log lines repeat what error_cb reports */
                                       "log_level", "2", NULL};
    char **conf = NULL; /* + TLS, SASL, kafka.property */
    int rc = config_kafka_conf(c, base, &conf, err, sizeof err);
    if (rc != 0)
        luaL_error(L, "kafka: %s", err);
    po.conf = (const char *const *)conf;
    v->kp = kuv_producer_new(s->loop, c->kafka_brokers, &po, &rc);
    config_kafka_conf_free(conf);
    if (!v->kp) {
        luaL_error(L, "kafka: cannot create the producer for %s: %s", c->kafka_brokers,
                   err[0] ? err : kuv_strerror(rc));
    }
    redis_uv_options ro = {0};
    ro.weak = 1; /* see fop_pending */
    ro.op_timeout_ms = (unsigned)po.admin_timeout_ms;
    ro.connect_timeout_ms =
        c->connect_timeout_ms > 0 ? (unsigned)c->connect_timeout_ms : 1; /* 0: fail at once */
    char *rpw = NULL;                                                    /* redis.password_file's */
    fleet_keys_use_url(c->redis_url); /* the key layout: tagged on a cluster */
    if ((rc = fleet_redis_security(c, &ro, &rpw, err, sizeof err)) == 0 &&
        (rc = redis_uv_open(s->loop, c->redis_url, &ro, &v->r)) == 0) {
        ro.op_timeout_ms += POLL_BLOCK_S * 1000;
        rc = redis_uv_open(s->loop, c->redis_url, &ro, &v->rb);
    }
    fleet_redis_security_done(&ro, rpw);
    if (rc != 0) {
        char red[300];
        config_redact_url(c->redis_url, red, sizeof red);
        if (v->r)
            redis_uv_close(v->r, NULL, NULL);
        v->r = NULL;
        kuv_producer_close(v->kp, 0);
        v->kp = NULL;
        luaL_error(L, "redis: %s: %s", red, err[0] ? err : redis_uv_strerror(rc));
    }
    v->submit_script = redis_uv_script(v->r, FLEET_SUBMIT_LUA, strlen(FLEET_SUBMIT_LUA));
    v->lookup_script = redis_uv_script(v->r, FLEET_LOOKUP_LUA, strlen(FLEET_LOOKUP_LUA));
    if (!(v->rc = frc_new(v->r, c->result_ttl_s, &reconcile_ops, v)))
        luaL_error(L, "not enough memory");
    uv_timer_init(s->loop, &v->tick);
    v->tick.data = v;
    uv_unref((uv_handle_t *)&v->tick);
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", c->result_ttl_s);
    v->capsub = 64;
    v->sub_argv = calloc((size_t)v->capsub, sizeof *v->sub_argv);
    v->sub_len = calloc((size_t)v->capsub, sizeof *v->sub_len);
    v->sub_ids = malloc(SUBMIT_BATCH * sizeof *v->sub_ids);
    if (!v->sub_argv || !v->sub_len || !v->sub_ids || !(v->sub_argv[0] = strdup(ttl)))
        luaL_error(L, "not enough memory");
    v->sub_len[0] = strlen(ttl);
    v->nsub = 1;
    uv_check_init(s->loop, &v->flush);
    v->flush.data = v;
    uv_check_start(&v->flush, on_flush);
    uv_unref((uv_handle_t *)&v->flush);
    return v;
}

static fpool *pool_get(fvm *v, const char *name)
{
    fpool *closed = NULL;
    for (fpool *p = v->pools; p; p = p->next) {
        if (strcmp(p->name, name) != 0)
            continue;
        if (!p->closed)
            return p;
        closed = p;
    }
    return closed;
}

/* Records a pool in this VM (name already checked). Raises when out of memory. */
static fpool *pool_add(lua_State *L, fvm *v, const char *name, int workers, int qcap, int block,
                       int max_deliveries, uint32_t timeout_ms, size_t memory,
                       const pool_retry *retry)
{
    fpool *p = calloc(1, sizeof *p);
    if (!p)
        luaL_error(L, "not enough memory");
    envelope_copy(p->name, sizeof p->name, name);
    config_topic_for_pool(v->cfg, p->name, p->topic, sizeof p->topic, NULL, 0);
    p->workers = workers;
    p->qcap = qcap;
    p->block = block;
    p->max_deliveries = max_deliveries;
    p->timeout_ms = timeout_ms;
    p->memory = memory;
    p->retry = *retry;
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
    fvm *v;
    glist waiters;
    /* results */
    long long n[7];
    char *data;
    size_t len;
    int have_data, queued;
    int refused; /* await of another process's task: a refused record was logged */
    uint64_t due_ns;
    unsigned interval_ms;
    fpool *p;
    int workers, qcap, block, max_deliveries;
    uint32_t timeout_ms;
    size_t memory;
    pool_retry retry;
    uint64_t allow;
    char name[ENVELOPE_POOL_MAX + 1];
    void *task; /* a submit's task while its payload is stored (freed with op) */
} fop;

static void fop_unref(fop *op)
{
    if (--op->refs == 0) {
        free(op->data);
        free(op->task);
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

static fop *fop_push(lua_State *L, fvm *v, int tbc);

/* Pushes a guard for a new op at the top of L, to-be-closed. */
static fop *fop_new(lua_State *L, fvm *v)
{
    return fop_push(L, v, 1);
}

/* The same; without tbc the guard may be popped (the GC frees the op). */
static fop *fop_push(lua_State *L, fvm *v, int tbc)
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
    op->s = v->s;
    op->v = v;
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

/* The VM's Kafka and Redis clients do not keep its loop alive (a wait
 * nothing can end is then a deadlock, reported as such): while an op has
 * callbacks due, it holds the loop itself. */
static void fop_pending(fop *op, int delta)
{
    int was = op->pending;
    op->pending += delta;
    if (was == 0 && op->pending > 0)
        sched_hold(op->s);
    else if (was > 0 && op->pending == 0)
        sched_unhold(op->s);
}

/* A callback is done with op: wakes the waiter when it was the last. */
static void fop_settle(fop *op)
{
    fop_pending(op, -1);
    if (op->pending == 0 && op->refs > 1)
        sched_ready_all(op->s, &op->waiters);
    fop_unref(op);
}

static void fop_expect(fop *op)
{
    op->refs++;
    fop_pending(op, 1);
}

/* A send that fop_expect announced failed at once (rc): no callback comes. */
static void fop_unexpect(fop *op, int rc)
{
    op->refs--;
    fop_pending(op, -1);
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

/* Tagged layout: before this producer's first task of pool op->name, its
 * entry in the pool's :producers, awaited by op (pool_stats sums the
 * counters of the producers there: an entry written after the tasks could
 * be lost with the process, and its counts with it). */
static void registry_send(fop *op)
{
    if (!fleet_keys_tagged())
        return;
    char key[FLEET_KEY_MAX];
    fleet_key_producers(key, op->name);
    fop_send(op, op->v->r, on_reply, "ZADD %s %llu %s", key, (unsigned long long)unix_ms(),
             op->v->producer);
    fop_send(op, op->v->r, on_reply, "EXPIRE %s %d", key, FLEET_POOL_IDLE_TTL_S);
}

/* ---- tasks ---- */

static void ftask_free(tb_task *tb)
{
    ftask *t = (ftask *)tb;
    free(t->out);
    free(t->env);
    free(t);
}

/* A task of this VM ended: its outcome goes to the taskbook (which wakes
 * its awaiters and reports a failure); the pool's waiters wake. */
static void task_finish(fvm *v, ftask *t, int ok, const char *out, size_t outlen, const char *err,
                        int dead)
{
    sched *s = v->s;
    if (t->tb.done)
        return;
    if (out) {
        t->out = malloc(outlen ? outlen : 1);
        if (t->out) {
            memcpy(t->out, out, outlen);
        } else {
            err = "out of memory for its outcome";
            ok = 0;
        }
    }
    fleet_wgs_release(sched_scratch(s), v->wgs, &t->carried);
    if (v->rc)
        frc_remove(v->rc, &t->rc);
    free(t->env); /* no re-submit after this */
    t->env = NULL;
    v->last_progress_ms = unix_ms();
    fpool *p = t->p;
    v->outstanding--;
    p->outstanding--;
    if (ok && t->out)
        p->completed++;
    else
        p->failed++;
    if (dead)
        p->dead_lettered++;
    if (!glist_empty(&p->room))
        sched_ready_all(s, &p->room);
    if (p->outstanding == 0 && !glist_empty(&p->idle))
        sched_ready_all(s, &p->idle);
    taskbook_finish(taskbook_get(sched_scratch(s), s), &t->tb, ok, t->out, t->out ? outlen : 0, err,
                    0);
}

/* await read t's outcome: its keys in Redis go, but for a record that
 * other producers read for their WaitGroups' changes (it expires with
 * result.ttl_s). */
static void task_awaited(tb_task *tb)
{
    fvm *v = (fvm *)((char *)tb->ops - offsetof(fvm, ops));
    ftask *t = (ftask *)((char *)tb - offsetof(ftask, tb));
    if (!v->closing && v->r && !t->keep)
        retire_task(v, tb->id, t->keys);
}

/* ---- the notification poller ---- */

/* This VM's task of that id, finished or not, or NULL. */
static ftask *task_of(fvm *v, const char *id)
{
    lua_State *T = sched_scratch(v->s);
    tb_task *tb = taskbook_find(taskbook_get(T, v->s), T, id);
    return tb && tb->ops == &v->ops ? (ftask *)tb : NULL;
}

/* fleet_wgs_note: the WaitGroup changes of this VM's pending tasks wait for
 * their 'R'; those of its finished tasks were applied with the outcome
 * (also when the reconciliation found it). */
/* ---- WaitGroup changes by other producers' tasks ---- */

/* A signed record older than this is not read for WaitGroup changes (a
 * replay): the ids read are remembered that long. */
#define FOREIGN_WG_MAX_AGE_MS (3600 * 1000)
#define FOREIGN_WG_PRUNE 4096  /* entries before old ones are forgotten */
#define FOREIGN_WG_LOG_MAX 100 /* refusals logged per VM */

typedef struct fwg_read {
    fvm *v;
    char id[ENVELOPE_ID_MAX + 1];
} fwg_read;

/* Pushes the table of foreign reads. */
static lua_State *foreign_table(fvm *v)
{
    lua_State *T = sched_scratch(v->s);
    lua_rawgeti(T, LUA_REGISTRYINDEX, v->foreign_ref);
    return T;
}

/* id -> val: 0 being read, > 0 applied (finished at), -1 refused. */
static void foreign_set(fvm *v, const char *id, lua_Integer val)
{
    lua_State *T = foreign_table(v);
    lua_pushinteger(T, val);
    lua_setfield(T, -2, id);
    lua_pop(T, 1);
}

/* Forgets the ids read longer ago than the age limit (their records are
 * refused by age from then on). */
static void foreign_prune(fvm *v)
{
    lua_State *T = foreign_table(v);
    lua_Integer old = (lua_Integer)unix_ms() - FOREIGN_WG_MAX_AGE_MS;
    long n = 0;
    lua_pushnil(T);
    while (lua_next(T, -2)) {
        lua_Integer at = lua_tointeger(T, -1);
        lua_pop(T, 1);
        if ((at > 0 && at < old) || at < 0) { /* old, or refused (read again if it comes) */
            lua_pushvalue(T, -1);
            lua_pushnil(T);
            lua_rawset(T, -4); /* clearing a field during lua_next is allowed */
        } else {
            n++;
        }
    }
    lua_pop(T, 1);
    v->nforeign = n;
}

/* Logged once per task id (an entry of -1 stays: the next 'W' element of
 * the task reads its record again, silently). */
static void foreign_unpin(fvm *v, const char *id);

static void foreign_refuse(fvm *v, const char *id, const char *why)
{
    lua_State *T = foreign_table(v);
    int logged = lua_getfield(T, -1, id) == LUA_TNUMBER && lua_tointeger(T, -1) < 0;
    lua_pop(T, 2);
    if (!logged && v->foreign_logged < FOREIGN_WG_LOG_MAX) {
        v->foreign_logged++;
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "producer %s: WaitGroup change by task %s (of another producer) ignored: %s%s",
              v->producer, id, why,
              v->foreign_logged == FOREIGN_WG_LOG_MAX ? " (further ones are not logged)" : "");
    }
}

/* 0 when rec is a result record signed by a trusted key, else an error
 * code with why said. */
static int record_verify(fvm *v, const char *rec, size_t len, char *why, size_t wl)
{
    if (!sign_result_is_signed(rec, len))
        return merr_fail(why, wl, SIGN_EUNSIGNED,
                         "result record is not signed (auth.required is on)");
    return sign_result_verify(v->trust, rec, len, why, wl);
}

/* The signed record of another producer's task that changed this VM's
 * WaitGroups: verified, of that task, recent, then its changes of this
 * VM's WaitGroups apply (once: the id stays known). */
static void on_foreign_record(redis_uv *cli, int status, const redisReply *reply, const char *err,
                              void *ud)
{
    (void)cli;
    fwg_read *f = ud;
    fvm *v = f->v;
    if (status == REDIS_UV_ECLOSED || v->closing) {
        free(f);
        return;
    }
    char why[200] = "";
    envelope_result r;
    if (status < 0 || reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof why, "its record cannot be read from Redis: %s",
                 status < 0 ? err : reply->str);
    } else if (reply->type != REDIS_REPLY_STRING) {
        snprintf(why, sizeof why, "its record is not in Redis");
    } else if (record_verify(v, reply->str, reply->len, why, sizeof why) != 0) {
        /* why says */
    } else {
        envelope_limits lim;
        envelope_limits_default(&lim);
        lim.max_payload = lim.max_ref = SIZE_MAX;
        char dwhy[160];
        uint64_t now = unix_ms();
        if (envelope_result_decode(reply->str, reply->len, &lim, &r, dwhy, sizeof dwhy) != 0)
            snprintf(why, sizeof why, "its record does not decode: %s", dwhy);
        else if (strcmp(r.id, f->id) != 0)
            snprintf(why, sizeof why, "its signed record names task %s", r.id);
        else if (r.finished_at_ms + 60000 < v->started_ms ||
                 r.finished_at_ms + FOREIGN_WG_MAX_AGE_MS < now)
            snprintf(why, sizeof why,
                     "its record is older than this producer or an hour (a replay)");
    }
    if (why[0]) {
        foreign_refuse(v, f->id, why);
        foreign_set(v, f->id, -1); /* its next 'W' element reads it again */
    } else {
        fleet_wgs_apply_lines(sched_scratch(v->s), v->wgs, r.wg, r.wg_len);
        foreign_set(v, f->id, r.finished_at_ms > 0 ? (lua_Integer)r.finished_at_ms : 1);
    }
    foreign_unpin(v, f->id);
    free(f);
}

/* While task id's record is read, the WaitGroup its 'W' element names
 * stays known by name (its carrying task may end meanwhile): pins[id] =
 * {name = true}, let go when the read ends (foreign_unpin). */
static void foreign_pin(fvm *v, const char *id, const char *change, size_t clen)
{
    lua_State *T = sched_scratch(v->s);
    const char *sp = clen ? memrchr(change, ' ', clen) : NULL;
    size_t nlen = sp ? (size_t)(sp - change) : clen;
    lua_rawgeti(T, LUA_REGISTRYINDEX, v->pins_ref);
    if (lua_getfield(T, -1, id) != LUA_TTABLE) {
        lua_pop(T, 1);
        lua_newtable(T);
        lua_pushvalue(T, -1);
        lua_setfield(T, -3, id);
    }
    lua_pushlstring(T, change, nlen);
    if (lua_rawget(T, -2) == LUA_TNIL && fleet_wgs_pin(T, v->wgs, change, nlen, 1)) {
        lua_pushlstring(T, change, nlen);
        lua_pushboolean(T, 1);
        lua_rawset(T, -4);
    }
    lua_pop(T, 3);
}

static void foreign_unpin(fvm *v, const char *id)
{
    lua_State *T = sched_scratch(v->s);
    lua_rawgeti(T, LUA_REGISTRYINDEX, v->pins_ref);
    if (lua_getfield(T, -1, id) == LUA_TTABLE) {
        lua_pushnil(T);
        while (lua_next(T, -2)) {
            lua_pop(T, 1);
            size_t n;
            const char *name = lua_tolstring(T, -1, &n);
            fleet_wgs_pin(T, v->wgs, name, n, -1);
        }
    }
    lua_pop(T, 1);
    lua_pushnil(T);
    lua_setfield(T, -2, id);
    lua_pop(T, 1);
}

/* A 'W' notification of task id of another producer (a WaitGroup of this
 * VM that a fleet task passed on): with trusted keys, its changes are taken
 * from the task's signed record instead (once per task). 1 while that read
 * is out. */
static int foreign_wg_read(fvm *v, const char *id)
{
    lua_State *T = foreign_table(v);
    int known = lua_getfield(T, -1, id) != LUA_TNIL;
    lua_Integer at = lua_tointeger(T, -1);
    lua_pop(T, 2);
    if (known && at >= 0)
        return at == 0; /* being read (1), or read */
    if (!known && v->nforeign >= FOREIGN_WG_PRUNE)
        foreign_prune(v);
    fwg_read *f = calloc(1, sizeof *f);
    if (!f) {
        foreign_refuse(v, id, "out of memory");
        return 0;
    }
    f->v = v;
    envelope_copy(f->id, sizeof f->id, id);
    char key[FLEET_KEY_MAX];
    fleet_key_task(key, id);
    int rc = redis_uv_command(v->r, on_foreign_record, f, "GET %s", key);
    if (rc != 0) {
        free(f);
        foreign_refuse(v, id, redis_uv_strerror(rc));
        if (!known) {
            foreign_set(v, id, -1);
            v->nforeign++;
        }
        return 0;
    }
    if (!known) { /* a refused one stays -1 while read again: logged once */
        v->nforeign++;
        foreign_set(v, id, 0);
    }
    return 1;
}

static int wg_change_of(void *ud, const char *id, const char *change, size_t clen)
{
    fvm *v = ud;
    size_t n = strlen(v->producer);
    if (strncmp(id, v->producer, n) != 0 || id[n] != ':') {
        /* another producer's task: the 'W' element is unsigned; with trusted
         * keys its signed record has the changes (foreign_wg_read) */
        if (!v->trust || !v->auth_required)
            return FLEET_WG_APPLY;
        if (v->r && envelope_check_id(id, strlen(id), NULL, 0) == 0) {
            if (foreign_wg_read(v, id))
                foreign_pin(v, id, change, clen); /* until the read ends */
            return FLEET_WG_DROP;
        }
        if (!v->wg_refused) {
            v->wg_refused = 1;
            rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
                  "producer %s: WaitGroup change by task %s (of another producer) ignored: it "
                  "cannot be checked against a signed record (logged once)",
                  v->producer, id);
        }
        return FLEET_WG_DROP;
    }
    ftask *t = task_of(v, id);
    return t && !t->tb.done ? FLEET_WG_HOLD : FLEET_WG_DROP;
}

/*
** With trusted keys (auth.trusted_keys): may the result record rec (len
** bytes, from Redis: untrusted) be used as an outcome? 1 when its signature
** verifies (its `wg` then holds the task's changes of this VM's
** WaitGroups), 0 when no check applies (no trusted keys, or an unsigned
** record while auth.required is off), -1 when it must be ignored: unsigned,
** signed by an unknown key or altered; logged with pool and task id once
** (*logged set). Checked before the record is decoded.
*/
static int result_trusted(fvm *v, const char *pool, const char *id, int *logged, const char *rec,
                          size_t len, const char *what)
{
    if (!v->trust)
        return 0;
    char why[200];
    if (!sign_result_is_signed(rec, len) && !v->auth_required)
        return 0;
    if (record_verify(v, rec, len, why, sizeof why) == 0)
        return 1;
    if (!*logged) {
        *logged = 1;
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "pool=%s task=%s: %s ignored, the task stays pending: %s", pool, id, what, why);
    }
    return -1;
}

/* A verified record of a different task than the one it was found for (a
 * genuine record copied to another key): logged once per task, ignored. */
static void result_misplaced(fvm *v, const char *pool, const char *id, int *logged,
                             const char *names, const char *what)
{
    if (*logged)
        return;
    *logged = 1;
    rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
          "pool=%s task=%s: %s ignored, the task stays pending: it is the signed record of task %s",
          pool, id, what, names);
}

/* This VM's unfinished task of that id, or NULL. */
static ftask *pending_task(fvm *v, const char *id)
{
    lua_State *T = sched_scratch(v->s);
    tb_task *tb = taskbook_find(taskbook_get(T, v->s), T, id);
    ftask *t = tb && tb->ops == &v->ops ? (ftask *)tb : NULL;
    return t && !t->tb.done ? t : NULL;
}

/* A result kept by reference, on its way from Redis. */
typedef struct rfetch {
    fvm *v;
    int ok, dead;
    uint64_t len, sum;
    char id[ENVELOPE_ID_MAX + 1];
} rfetch;

static void on_result_ref(redis_uv *cli, int status, const redisReply *reply, const char *err,
                          void *ud)
{
    (void)cli;
    rfetch *f = ud;
    if (status == REDIS_UV_ECLOSED) { /* the VM is closing */
        free(f);
        return;
    }
    ftask *t = pending_task(f->v, f->id);
    char msg[400];
    if (!t) {
        /* finished meanwhile (another read of the same outcome) */
    } else if (status < 0 || reply->type == REDIS_REPLY_ERROR) {
        snprintf(msg, sizeof msg, "cannot read its result from Redis: %s",
                 status < 0 ? err : reply->str);
        task_finish(f->v, t, 0, NULL, 0, msg, 0);
    } else if (envelope_ref_verify("result values", "record",
                                   reply->type == REDIS_REPLY_STRING ? reply->str : NULL,
                                   reply->type == REDIS_REPLY_STRING ? reply->len : 0, f->len,
                                   f->sum, msg, sizeof msg) != 0) {
        task_finish(f->v, t, 0, NULL, 0, msg, 0);
    } else {
        task_finish(f->v, t, f->ok, reply->str, reply->len, NULL, f->dead);
    }
    free(f);
}

/* The outcome of r is in mutirao:task:ID:out: read it, then finish the task. */
static void result_ref_fetch(fvm *v, const envelope_result *r)
{
    ftask *t = pending_task(v, r->id);
    if (r->ref_len > (uint64_t)v->cfg->payload_max_ref_bytes) {
        char msg[300];
        snprintf(msg, sizeof msg,
                 "its result (%" PRIu64 " bytes) is over this process's payload.max_ref_bytes (%d)",
                 r->ref_len, v->cfg->payload_max_ref_bytes);
        task_finish(v, t, 0, NULL, 0, msg, 0);
        return;
    }
    rfetch *f = calloc(1, sizeof *f);
    if (!f) {
        task_finish(v, t, 0, NULL, 0, "out of memory for its result", 0);
        return;
    }
    f->v = v;
    f->ok = r->ok;
    f->dead = r->dead_lettered;
    f->len = r->ref_len;
    f->sum = r->ref_sum;
    memcpy(f->id, r->id, sizeof f->id);
    char key[FLEET_KEY_MAX];
    fleet_key_task_out(key, r->id);
    int rc = redis_uv_command(v->r, on_result_ref, f, "GET %s", key);
    if (rc != 0) {
        free(f);
        char msg[200];
        snprintf(msg, sizeof msg, "cannot read its result from Redis: %s", redis_uv_strerror(rc));
        task_finish(v, t, 0, NULL, 0, msg, 0);
    }
}

static void on_notification(fvm *v, const char *s, size_t len)
{
    if (len < 1)
        return;
    lua_State *T = sched_scratch(v->s);
    if (s[0] == 'W') {
        if (v->trust && v->auth_required && !memchr(s + 1, 0, len - 1)) {
            /* names no task (an older worker's, or forged): nothing signed
             * vouches for it */
            if (!v->wg_refused) {
                v->wg_refused = 1;
                rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
                      "producer %s: a WaitGroup change that names no task ignored: "
                      "auth.trusted_keys is set (logged once)",
                      v->producer);
            }
            return;
        }
        fleet_wgs_note(T, v->wgs, s + 1, len - 1, wg_change_of, v);
        return;
    }
    if (s[0] != 'R')
        return;
    envelope_result r;
    char why[200];
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_ref = (size_t)1 << 30; /* over this process's limit: the task fails, saying so */
    if (envelope_result_decode(s + 1, len - 1, &lim, &r, why, sizeof why) != 0) {
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF, "producer %s: bad notification skipped: %s",
              v->producer, why);
        fleet_wgs_settle(T, v->wgs, "", 0);
        return;
    }
    ftask *t = task_of(v, r.id);
    int pending = t && !t->tb.done;
    int trusted = 0;
    if (v->trust && pending &&
        (trusted = result_trusted(v, t->p->name, r.id, &t->refused, s + 1, len - 1,
                                  "notification")) < 0) {
        fleet_wgs_settle(T, v->wgs, "", 0);
        return; /* its genuine outcome may still come (or the reconciliation find it) */
    }
    if (trusted == 1) {
        /* signed: the record carries the task's changes of this VM's
         * WaitGroups; the unsigned 'W' elements are not used */
        fleet_wgs_settle(T, v->wgs, "", 0);
        t->keep = r.wg_len && fleet_wgs_has_others(v->wgs, r.wg, r.wg_len);
        if (!t->wg_done && r.wg_len)
            fleet_wgs_apply_lines(T, v->wgs, r.wg, r.wg_len);
        t->wg_done = 1;
        if (r.ref_len) {
            t->keys |= FLEET_TK_OUT;
            result_ref_fetch(v, &r);
        } else
            task_finish(v, t, r.ok, r.payload, r.payload_len, NULL, r.dead_lettered);
        return;
    }
    /* a task carrying this VM's WaitGroups whose changes did not all come
     * (lost with an earlier reply): its record and changes are read from
     * Redis instead (rc_found) */
    if (pending && t->carried != LUA_NOREF && !t->wg_done && fleet_wgs_held(v->wgs, r.id) != 1) {
        fleet_wgs_settle(T, v->wgs, r.id, 0);
        frc_soon(v->rc, &t->rc);
        return;
    }
    /* exactly once: a task the reconciliation finished is done here */
    fleet_wgs_settle(T, v->wgs, r.id, pending && !t->wg_done);
    if (!pending)
        return;
    t->wg_done = 1;
    if (r.ref_len) {
        t->keys |= FLEET_TK_OUT;
        result_ref_fetch(v, &r);
    } else
        task_finish(v, t, r.ok, r.payload, r.payload_len, NULL, r.dead_lettered);
}

/* ---- reconciliation (fleet_reconcile.h) ---- */

static frc_task *rc_lookup(void *ud, const char *id)
{
    ftask *t = pending_task(ud, id);
    return t ? &t->rc : NULL;
}

/* The task's record was in Redis, its notification not here: -1 when the
 * record is not used (with trusted keys, one that does not verify). */
static int rc_found(void *ud, frc_task *rt, const char *rec, size_t reclen, const char *wg,
                    size_t wglen)
{
    fvm *v = ud;
    ftask *t = (ftask *)((char *)rt - offsetof(ftask, rc));
    envelope_result r;
    char why[200], msg[300];
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_ref = (size_t)1 << 30; /* over this process's limit: the task fails, saying so */
    int trusted =
        result_trusted(v, t->p->name, t->tb.id, &t->refused, rec, reclen, "result record in Redis");
    if (trusted < 0)
        return -1; /* looked at again later: the genuine outcome replaces it */
    int rc = envelope_result_decode(rec, reclen, &lim, &r, why, sizeof why);
    if (rc == 0 && trusted == 1 && strcmp(r.id, t->tb.id) != 0) {
        result_misplaced(v, t->p->name, t->tb.id, &t->refused, r.id, "result record in Redis");
        return -1;
    }
    if (rc == 0 && strcmp(r.id, t->tb.id) != 0) {
        snprintf(why, sizeof why, "it names task %s", r.id);
        rc = -1;
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "bad result record in Redis: %s", why);
        task_finish(v, t, 0, NULL, 0, msg, 0);
        return 0;
    }
    if (trusted == 1) { /* signed: its own `wg`, not the unsigned :w */
        wg = r.wg;
        wglen = r.wg_len;
        t->keep = r.wg_len && fleet_wgs_has_others(v->wgs, r.wg, r.wg_len);
    }
    if (wg && wglen && !t->wg_done)
        fleet_wgs_apply_lines(sched_scratch(v->s), v->wgs, wg, wglen);
    t->wg_done = 1;
    if (r.ref_len) {
        t->keys |= FLEET_TK_OUT;
        result_ref_fetch(v, &r);
    } else
        task_finish(v, t, r.ok, r.payload, r.payload_len, NULL, r.dead_lettered);
    return 0;
}

static void on_report(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset);

/* Hands task t's envelope to Kafka, signed first when auth.signing_key is
 * set (docs/wire-format.md, "Signed task envelope"); err says why not. */
static int produce_env(fvm *v, ftask *t, const char *topic, const char *env, size_t len, dreport *d,
                       char *err, size_t errlen)
{
    char *sig = NULL;
    size_t siglen = 0;
    int rc = 0;
    if (v->key) {
        if ((rc = sign_wrap(v->key, env, len, &sig, &siglen, err, errlen)) != 0)
            return rc;
        env = sig;
        len = siglen;
    }
    rc = kuv_produce(v->kp, topic, t->tb.id, strlen(t->tb.id), env, len, on_report, d);
    if (rc != 0)
        snprintf(err, errlen, "kafka: %s", kuv_strerror(rc));
    free(sig);
    return rc;
}

/* Redis has neither the task's record nor its marker: it lost them (a
 * restart without persistence) after the task may have run. The task goes
 * to its topic again, attempt + 1; whichever run is recorded first is its
 * outcome (the completion script's SET NX). */
static int rc_lost(void *ud, frc_task *rt)
{
    fvm *v = ud;
    ftask *t = (ftask *)((char *)rt - offsetof(ftask, rc));
    if (!t->env || v->closing)
        return -1;
    envelope_task e;
    char err[200];
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_payload = (size_t)v->cfg->payload_max_bytes;
    lim.max_ref = (size_t)v->cfg->payload_max_ref_bytes;
    if (envelope_task_decode(t->env, t->envlen, &lim, &e, err, sizeof err) != 0)
        return -1;
    e.attempt++;
    envelope_buf b;
    envelope_buf_init(&b, NULL, 0);
    int rc = envelope_task_encode(&e, &lim, &b, err, sizeof err);
    dreport *d = rc == 0 ? malloc(sizeof *d) : NULL;
    if (d) {
        d->v = v;
        d->t = t;
        rc = produce_env(v, t, t->p->topic, b.data, b.len, d, err, sizeof err);
        if (rc != 0)
            free(d);
    } else {
        rc = -1;
    }
    if (rc == 0) {
        /* the new attempt is the one to send again next time (b has no
         * storage: its data is malloc'd) */
        free(t->env);
        t->env = b.data;
        t->envlen = b.len;
        envelope_buf_init(&b, NULL, 0);
        if (t->tb.pinned < 255)
            t->tb.pinned++; /* until this delivery report too */
    }
    envelope_buf_free(&b);
    return rc == 0 ? 0 : -1;
}

/* Completed, its record read and deleted by another process's await, and
 * its notification lost: the outcome cannot come any more. */
static void rc_gone(void *ud, frc_task *rt)
{
    ftask *t = (ftask *)((char *)rt - offsetof(ftask, rc));
    task_finish(ud, t, 0, NULL, 0,
                "its outcome was read and deleted by another process's await, and its "
                "notification to this one was lost",
                0);
}

static const frc_ops reconcile_ops = {rc_lookup, rc_found, rc_lost, rc_gone};

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
    if (!err)
        op->v->kafka_said = 0; /* Kafka answers */
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
    fvm *v = op->v;
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
        char key[FLEET_KEY_MAX], w[16], q[16], md[16], tm[16], mem[24], rt[16], bi[16], bm[16],
            bj[16], al[24];
        fleet_key_pool(key, op->name);
        snprintf(w, sizeof w, "%d", op->workers);
        snprintf(q, sizeof q, "%d", op->qcap);
        snprintf(md, sizeof md, "%d", op->max_deliveries);
        snprintf(tm, sizeof tm, "%" PRIu32, op->timeout_ms);
        snprintf(mem, sizeof mem, "%zu", op->memory);
        snprintf(rt, sizeof rt, "%" PRIu32, op->retry.retries);
        snprintf(bi, sizeof bi, "%" PRIu32, op->retry.initial_ms);
        snprintf(bm, sizeof bm, "%" PRIu32, op->retry.max_ms);
        snprintf(bj, sizeof bj, "%" PRIu32, op->retry.jitter);
        snprintf(al, sizeof al, "%" PRIu64, op->allow);
        /* every field, timeout 0 included: a pool created again without a
         * timeout must not keep the old one */
        if (fop_send(op, v->r, on_reply,
                     "HSET %s workers %s queue %s block %s max_deliveries %s timeout %s memory %s "
                     "retries %s backoff_initial %s backoff_max %s backoff_jitter %s allow %s",
                     key, w, q, op->block ? "1" : "0", md, tm, mem, rt, bi, bm, bj, al) != 0)
            return create_k(L, LUA_OK, ctx);
        fop_send(op, v->r, on_reply, "EXPIRE %s %d", key, FLEET_POOL_IDLE_TTL_S);
        registry_send(op);
        return sched_wait(L, s, &op->waiters, 0, ctx, create_k);
    }
    fpool *same = pool_get(v, op->name); /* created meanwhile by another goroutine? */
    if (same && !same->closed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool already exists: %s", op->name);
        return 2;
    }
    fpool *p = pool_add(L, v, op->name, op->workers, op->qcap, op->block, op->max_deliveries,
                        op->timeout_ms, op->memory, &op->retry);
    p->allow = op->allow;
    lua_pushboolean(L, 1);
    return 1;
}

static int f_create(lua_State *L, void *be, const char *name, const pool_opts *o)
{
    fvm *v = clients(L, be);
    sched *s = v->s;
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
    fop *op = fop_new(L, v);
    memcpy(op->name, copy, sizeof op->name);
    op->workers = o->workers;
    op->qcap = o->queue;
    op->block = o->block;
    op->max_deliveries = o->max_deliveries;
    op->timeout_ms = o->timeout_ms;
    op->memory = o->memory;
    op->retry = o->retry;
    op->allow = o->allow;
    fop_expect(op);
    int rc = kuv_topic_ensure(v->kp, topic, v->cfg->topic_partitions, on_ensure, op);
    if (rc != 0) {
        op->refs--; /* no callback comes */
        fop_pending(op, -1);
        luaL_pushfail(L);
        lua_pushfstring(L, "pool '%s': kafka: cannot create topic %s: %s", op->name, topic,
                        kuv_strerror(rc));
        return 2;
    }
    return sched_wait(L, s, &op->waiters, 0, (lua_KContext)op, create_k);
}

/* ---- pool_submit ---- */

static int submit_k(lua_State *L, int status, lua_KContext ctx);
static int submit_ref_k(lua_State *L, int status, lua_KContext ctx);
static int submit_send(lua_State *L, fvm *v, fpool *p, ftask *t, const char *payload, size_t plen,
                       uint64_t ref_len, uint64_t ref_sum);
static void store_ref(fop *op, const char *key, const char *bytes, size_t len);

/* HGETALL mutirao:pool:NAME: workers, queue, block, max_deliveries into
 * n[0..3], timeout and memory into timeout_ms and memory (a record written
 * before they existed has neither: no timeout, the default memory limit),
 * the retry policy into retry (none in an older record: no retries). */
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
        op->n[3] = FLEET_MAX_DELIVERIES;
        op->timeout_ms = 0;
        op->memory = EX_MEMORY_DEFAULT;
        retry_default(&op->retry);
        op->allow = 0;
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
            else if (!strcmp(k, "max_deliveries") && x >= 1 && x <= 1000000)
                op->n[3] = x;
            else if (!strcmp(k, "timeout") && x >= 0 && x <= (long long)POOL_TIMEOUT_MAX)
                op->timeout_ms = (uint32_t)x;
            else if (!strcmp(k, "memory") && x >= (long long)POOL_MEMORY_MIN &&
                     x <= (long long)POOL_MEMORY_MAX)
                op->memory = (size_t)x;
            else if (!strcmp(k, "retries") && x >= 0 && x <= RETRY_MAX)
                op->retry.retries = (uint32_t)x;
            else if (!strcmp(k, "backoff_initial") && x >= 0 && x <= RETRY_BACKOFF_MS_MAX)
                op->retry.initial_ms = (uint32_t)x;
            else if (!strcmp(k, "backoff_max") && x >= 0 && x <= RETRY_BACKOFF_MS_MAX)
                op->retry.max_ms = (uint32_t)x;
            else if (!strcmp(k, "backoff_jitter") && x >= 0 && x <= 1000)
                op->retry.jitter = (uint32_t)x;
            else if (!strcmp(k, "allow"))
                op->allow = (uint64_t)strtoull(val, NULL, 10);
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
    fvm *v = op->v;
    if (op->pending > 0)
        return sched_wait(L, op->s, &op->waiters, 0, ctx, adopt_k);
    if (op->failed) {
        luaL_pushfail(L);
        lua_pushfstring(L, "pool '%s': %s", op->name, op->msg);
        return 2;
    }
    fpool *p = pool_get(v, op->name); /* created meanwhile by this VM? */
    if (!p && !op->have_data)
        return pool_not_found(L, op->name);
    if (!p) {
        p = pool_add(L, v, op->name, (int)op->n[0],
                     op->n[1] >= 0 ? (int)op->n[1] : 2 * (int)op->n[0], (int)op->n[2],
                     (int)op->n[3], op->timeout_ms, op->memory, &op->retry);
        p->allow = op->allow;
    }
    lua_pop(L, 1); /* the guard */
    lua_pushlightuserdata(L, p);
    lua_insert(L, 1); /* p, name, fn, args... */
    return submit_k(L, LUA_OK, (lua_KContext)v);
}

static int f_submit(lua_State *L, void *be)
{
    fvm *v = clients(L, be);
    const char *name = lua_tostring(L, 1);
    fpool *p = pool_get(v, name);
    if (!p) {
        /* created by another process (or VM)? its options are in Redis */
        char key[FLEET_KEY_MAX];
        char why[200];
        if (envelope_check_pool(name, strlen(name), why, sizeof why) != 0)
            return luaL_argerror(L, 1, why);
        fop *op = fop_push(L, v, 0);
        envelope_copy(op->name, sizeof op->name, name);
        fleet_key_pool(key, name);
        fop_send(op, v->r, on_pool_record, "HGETALL %s", key);
        registry_send(op);
        return adopt_k(L, LUA_OK, (lua_KContext)op);
    }
    lua_pushlightuserdata(L, p);
    lua_insert(L, 1); /* p, name, fn, args... */
    return submit_k(L, LUA_OK, (lua_KContext)v);
}

static void on_failed_delivery(fvm *v, ftask *t, const char *errmsg)
{
    char key[FLEET_KEY_MAX];
    fleet_key_pstats(key, t->p->name, v->producer);
    redis_uv_command(v->r, NULL, NULL, "HINCRBY %s failed 1", key);
    fleet_bit b; /* not submitted after all: an await elsewhere must not wait for it */
    if (fleet_bit_of(t->tb.id, strlen(t->tb.id), &b) == 0)
        redis_uv_command(v->r, NULL, NULL, "SETBIT %s %s 0", b.sub, b.bit);
    char msg[600];
    snprintf(msg, sizeof msg, "not delivered to Kafka: %s", errmsg);
    task_finish(v, t, 0, NULL, 0, msg, 0);
}

static void on_report(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    (void)partition;
    (void)offset;
    dreport *d = ud;
    if (!err)
        d->v->kafka_said = 0; /* Kafka answers */
    if (d->t->tb.pinned > 0)
        d->t->tb.pinned--;
    if (err && !d->v->closing && !d->t->tb.done)
        on_failed_delivery(d->v, d->t, errmsg ? errmsg : kuv_strerror(err));
    else if (err && d->v->closing)
        d->v->undelivered++;
    free(d);
}

/* Fails the submit: the task was not sent. */
static int not_sent(lua_State *L, fvm *v, ftask *t, const char *err)
{
    fleet_wgs_release(L, v->wgs, &t->carried);
    free(t);
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
}

/*
** The next task id, PRODUCER:SEQ:RANDOM: SEQ numbers this VM's submits (the
** seen bitmaps shard by PRODUCER and SEQ, FLEET_SEEN_LUA) and RANDOM is 128
** bits from the OS's CSPRNG (getrandom through uv_random) in 32 lowercase
** hex digits, so nobody can tell a task's id before it is submitted.
*/
static int task_id(fvm *v, char *out, size_t outlen)
{
    if (v->rnd_left < 16) {
        if (uv_random(NULL, NULL, v->rnd, sizeof v->rnd, 0, NULL) != 0)
            return -1;
        v->rnd_left = sizeof v->rnd;
    }
    v->rnd_left -= 16;
    const unsigned char *r = v->rnd + v->rnd_left;
    /* "PRODUCER:SEQ:HEX", formatted by hand: snprintf was a tenth of a
     * producer's time */
    static const char digits[] = "0123456789abcdef";
    uint64_t seq = ++v->seq;
    size_t plen = strlen(v->producer), slen = dec_len(seq);
    if (plen + 1 + slen + 1 + 32 + 1 > outlen)
        return -1;
    char *o = out;
    memcpy(o, v->producer, plen);
    o += plen;
    *o++ = ':';
    o = dec_put(o, seq);
    *o++ = ':';
    for (int i = 0; i < 16; i++) {
        *o++ = digits[r[i] >> 4];
        *o++ = digits[r[i] & 15];
    }
    *o = 0;
    memset(v->rnd + v->rnd_left, 0, 16); /* used once */
    return 0;
}

static int submit_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fvm *v = (fvm *)ctx;
    sched *s = v->s;
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
        return sched_wait(L, s, &p->room, 0, ctx, submit_k);
    }
    ftask *t = calloc(1, sizeof *t);
    if (!t)
        return luaL_error(L, "not enough memory");
    t->p = p;
    t->carried = LUA_NOREF;
    char idbuf[2 * ENVELOPE_ID_MAX + 64];
    if (task_id(v, idbuf, sizeof idbuf) != 0) {
        free(t);
        luaL_pushfail(L);
        lua_pushliteral(L, "cannot draw random bits for the task id from the OS");
        return 2;
    }
    envelope_copy(t->tb.id, sizeof t->tb.id, idbuf);
    t->tb.pool = p->name; /* the VM's pools live as long as the VM */
    /* encode fn and its arguments; WaitGroups among them get fleet names */
    char err[256], stack[512];
    char *payload = NULL;
    size_t plen = 0;
    fleet_submit_ctx sc;
    fleet_submit_ctx_init(&sc, v->wgs);
    codec_limits lim;
    codec_limits_default(&lim);
    lim.first_number = 2;
    lim.call = &sc.tc;
    lim.send_source = 1; /* workers compile tasks from source, never load our bytes */
    /* texts of "@file" chunks from their files, but not in a sandboxed task
     * (a worker's: its functions' texts came with its message) */
    lim.source_files = !sandbox_active() && !sandbox_current(L);
    int rc = codec_encode_buf(L, 3, lua_gettop(L) - 2, &lim, stack, sizeof stack, &payload, &plen,
                              err, sizeof err);
    t->carried = sc.carried;
    if (sc.carried != LUA_NOREF) /* it may change them: its record may get a :w */
        t->keys |= FLEET_TK_W;
    if (rc != 0)
        return not_sent(L, v, t, err);
    if (plen > (size_t)v->cfg->payload_max_bytes && plen <= (size_t)v->cfg->payload_max_ref_bytes) {
        /* too large for a Kafka message: by reference, once Redis has it */
        fop *op = fop_new(L, v);
        op->task = t;
        op->data = payload; /* malloc'd: larger than stack */
        op->len = plen;
        char key[FLEET_KEY_MAX];
        fleet_key_task_in(key, t->tb.id);
        t->keys |= FLEET_TK_IN;
        store_ref(op, key, payload, plen);
        return submit_ref_k(L, LUA_OK, (lua_KContext)op);
    }
    rc = submit_send(L, v, p, t, payload, plen, 0, 0);
    if (payload != stack)
        free(payload);
    return rc;
}

/* SET key bytes [EX result.ttl_s] for op: a payload kept by reference. */
static void store_ref(fop *op, const char *key, const char *bytes, size_t len)
{
    fvm *v = op->v;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%d", v->cfg->result_ttl_s);
    const char *argv[] = {"SET", key, bytes, "EX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
    fop_expect(op);
    int rc =
        redis_uv_command_argv(v->r, on_reply, op, v->cfg->result_ttl_s > 0 ? 5 : 3, argv, lens);
    if (rc != 0)
        fop_unexpect(op, rc);
}

/* The payload of a large task is in Redis (or could not be stored): the
 * envelope goes with its length and checksum. Stack: p, name, fn, args...,
 * guard. */
static int submit_ref_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fop *op = (fop *)ctx;
    if (op->pending > 0)
        return sched_wait(L, op->s, &op->waiters, 0, ctx, submit_ref_k);
    ftask *t = op->task;
    op->task = NULL; /* the submit's now */
    fpool *p = lua_touserdata(L, 1);
    if (op->failed) {
        char err[500];
        snprintf(err, sizeof err, "cannot keep its arguments (%zu bytes) in Redis: %s", op->len,
                 op->msg);
        return not_sent(L, op->v, t, err);
    }
    return submit_send(L, op->v, p, t, NULL, 0, op->len, envelope_ref_sum(op->data, op->len));
}

/* Wraps the task's payload (or its reference: ref_len > 0) in an envelope,
 * hands it to Kafka and records the task; returns like pool_submit. */
static int submit_send(lua_State *L, fvm *v, fpool *p, ftask *t, const char *payload, size_t plen,
                       uint64_t ref_len, uint64_t ref_sum)
{
    sched *s = v->s;
    char err[256], stack[512];
    envelope_task e;
    memset(&e, 0, sizeof e);
    memcpy(e.id, t->tb.id, sizeof e.id);
    memcpy(e.pool, p->name, sizeof e.pool);
    memcpy(e.producer, v->producer, sizeof e.producer);
    e.attempt = 1;
    e.max_deliveries = (uint32_t)p->max_deliveries;
    e.submitted_at_ms = unix_ms();
    e.timeout_ms = p->timeout_ms;
    e.memory = p->memory;
    e.retries = p->retry.retries;
    e.backoff_initial_ms = p->retry.initial_ms;
    e.backoff_max_ms = p->retry.max_ms;
    e.backoff_jitter = p->retry.jitter;
    e.allow = sandbox_narrow(p->allow, sandbox_current(L)); /* a task's are no wider */
    /* inside goroutine.timeout or a task file's :timeout: the worker does
     * not start the task after that deadline, and cancels it there */
    uint64_t dl = scope_deadline(sched_current_scope(s, L)), now_ns = sched_now_ns();
    if (dl)
        e.deadline_ms = e.submitted_at_ms + (dl > now_ns ? (dl - now_ns + 999999) / 1000000 : 0);
    e.payload = payload ? payload : "";
    e.payload_len = plen;
    e.ref_len = ref_len;
    e.ref_sum = ref_sum;
    envelope_limits elim;
    envelope_limits_default(&elim);
    elim.max_payload = (size_t)v->cfg->payload_max_bytes;
    elim.max_ref = (size_t)v->cfg->payload_max_ref_bytes;
    char estack[768];
    envelope_buf b;
    envelope_buf_init(&b, estack, sizeof estack);
    int rc = envelope_task_encode(&e, &elim, &b, err, sizeof err);
    dreport *d = rc == 0 ? malloc(sizeof *d) : NULL;
    if (rc == 0 && !d)
        rc = -1;
    if (rc == 0) {
        d->v = v;
        d->t = t;
        rc = produce_env(v, t, p->topic, b.data, b.len, d, err, sizeof err);
        if (rc != 0) {
            free(d);
        } else if ((t->env = malloc(b.len)) != NULL) {
            /* kept while pending: sent again if Redis loses the task (rc_lost) */
            memcpy(t->env, b.data, b.len);
            t->envlen = b.len;
        }
    } else if (rc == ENVELOPE_ETOOBIG) {
        snprintf(stack, sizeof stack,
                 "task too large: %zu bytes encoded, over payload.max_bytes (%d) and "
                 "payload.max_ref_bytes (%d)",
                 plen, v->cfg->payload_max_bytes, v->cfg->payload_max_ref_bytes);
        memcpy(err, stack, sizeof err - 1);
        err[sizeof err - 1] = 0;
    }
    envelope_buf_free(&b);
    if (rc != 0)
        return not_sent(L, v, t, err);
    /* accepted */
    taskbook_add(taskbook_get(L, s), L, &t->tb, &v->ops);
    t->tb.pinned = 1; /* until its delivery report */
    if (v->outstanding == 0)
        v->last_progress_ms = unix_ms();
    v->outstanding++;
    p->outstanding++;
    p->submitted++;
    t->rc.id = t->tb.id;
    frc_add(v->rc, &t->rc, unix_ms());
    note_submit(v, p->name, t->tb.id);
    poll_start(v);
    lua_pushstring(L, t->tb.id);
    return 1;
}

/* ---- pool_wait, pool_close ---- */

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fpool *p = (fpool *)ctx;
    if (p->outstanding == 0) {
        lua_pushboolean(L, 1);
        return 1;
    }
    return sched_wait(L, sched_get(L), &p->idle, 0, ctx, wait_k);
}

static int f_wait(lua_State *L, void *be, const char *name)
{
    fpool *p = pool_get(be, name);
    if (!p)
        return pool_not_found(L, name);
    return wait_k(L, LUA_OK, (lua_KContext)p);
}

/* Tagged layout: pool_close's shorter life for every producer's counters
 * of the pool too (they are in the producers' slots: the pool's
 * :producers says whose). */
typedef struct close_ctx {
    char pool[ENVELOPE_POOL_MAX + 1];
} close_ctx;

static void on_close_producers(redis_uv *cli, int status, const redisReply *reply, const char *err,
                               void *ud)
{
    (void)err;
    close_ctx *c = ud;
    if (status == 0 && reply && reply->type == REDIS_REPLY_ARRAY) {
        char key[FLEET_KEY_MAX], who[ENVELOPE_ID_MAX + 1];
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > ENVELOPE_ID_MAX)
                continue;
            memcpy(who, e->str, e->len);
            who[e->len] = 0;
            fleet_key_pstats(key, c->pool, who);
            redis_uv_command(cli, NULL, NULL, "EXPIRE %s %d", key, FLEET_POOL_CLOSED_TTL_S);
        }
    }
    free(c);
}

static void close_counters(fvm *v, const char *pool)
{
    close_ctx *c = malloc(sizeof *c);
    char key[FLEET_KEY_MAX];
    if (!c)
        return; /* they expire FLEET_POOL_IDLE_TTL_S after their last use */
    envelope_copy(c->pool, sizeof c->pool, pool);
    fleet_key_producers(key, pool);
    if (redis_uv_command(v->r, on_close_producers, c, "ZRANGE %s 0 -1", key) != 0)
        free(c);
}

static int f_close(lua_State *L, void *be, const char *name)
{
    fvm *v = be;
    fpool *p = pool_get(v, name);
    if (!p)
        return pool_not_found(L, name);
    if (p->closed) {
        luaL_pushfail(L);
        lua_pushliteral(L, "pool is closed");
        return 2;
    }
    p->closed = 1;
    sched_ready_all(v->s, &p->room); /* blocked submitters see "pool is closed" */
    if (v->r) {
        /* its keys go in a while, unless another process goes on using it */
        char key[FLEET_KEY_MAX];
        size_t (*const kf[])(char *, const char *) = {fleet_key_pool, fleet_key_stats,
                                                      fleet_key_active, fleet_key_producers};
        for (size_t i = 0; i < sizeof kf / sizeof kf[0]; i++) {
            kf[i](key, p->name);
            redis_uv_command(v->r, NULL, NULL, "EXPIRE %s %d", key, FLEET_POOL_CLOSED_TTL_S);
        }
        if (fleet_keys_tagged())
            close_counters(v, p->name);
    }
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
                op->n[0] += strtoll(val, NULL, 10);
            else if (!strcmp(k, "completed"))
                op->n[1] += strtoll(val, NULL, 10);
            else if (!strcmp(k, "failed"))
                op->n[2] += strtoll(val, NULL, 10);
            else if (!strcmp(k, "dead_lettered"))
                op->n[4] += strtoll(val, NULL, 10);
            else if (!strcmp(k, "retried"))
                op->n[5] += strtoll(val, NULL, 10);
            else if (!strcmp(k, "unauthenticated"))
                op->n[6] += strtoll(val, NULL, 10);
        }
    }
    fop_settle(op);
}

/* Tagged layout: the pool's :producers, whose counters of its tasks are
 * summed too (on_stats) */
static void on_producers(redis_uv *cli, int status, const redisReply *reply, const char *err,
                         void *ud)
{
    (void)cli;
    fop *op = ud;
    if (!reply_failed(op, status, reply, err) && reply->type == REDIS_REPLY_ARRAY) {
        char key[FLEET_KEY_MAX];
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *e = reply->element[i];
            char who[ENVELOPE_ID_MAX + 1];
            if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > ENVELOPE_ID_MAX)
                continue;
            memcpy(who, e->str, e->len);
            who[e->len] = 0;
            fleet_key_pstats(key, op->name, who);
            fop_send(op, op->v->r, on_stats, "HGETALL %s", key);
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
    const pool_stat f[] = {{"workers", p->workers},
                           {"queue", p->qcap},
                           {"active", active},
                           {"queued", p->outstanding - active},
                           {"completed", p->completed},
                           {"failed", p->failed},
                           {"submitted", p->submitted},
                           {"rejected", p->rejected},
                           {"dead_lettered", p->dead_lettered},
                           {"timeout", p->timeout_ms},
                           {"memory", (long long)p->memory},
                           {"retries", p->retry.retries},
                           {"fleet_active", op->n[3]},
                           {"fleet_submitted", op->n[0]},
                           {"fleet_completed", op->n[1]},
                           {"fleet_failed", op->n[2]},
                           {"fleet_dead_lettered", op->n[4]},
                           {"fleet_retried", op->n[5]},
                           {"fleet_unauthenticated", op->n[6]}};
    pool_push_stats(L, p->name, f, (int)(sizeof f / sizeof f[0]));
    lua_pushliteral(L, "fleet");
    lua_setfield(L, -2, "backend");
    return 1;
}

static int f_stats(lua_State *L, void *be, const char *name)
{
    fvm *v = be;
    fpool *p = pool_get(v, name);
    if (!p)
        return pool_not_found(L, name);
    lua_settop(L, 0);
    fop *op = fop_new(L, v);
    op->p = p;
    memcpy(op->name, p->name, sizeof op->name);
    char key[FLEET_KEY_MAX];
    fleet_key_stats(key, p->name);
    fop_send(op, v->r, on_stats, "HGETALL %s", key);
    if (fleet_keys_tagged()) {
        fleet_key_producers(key, p->name);
        fop_send(op, v->r, on_producers, "ZRANGE %s 0 -1", key);
    }
    fleet_key_active(key, p->name);
    fop_send(op, v->r, on_active, "HGETALL %s", key);
    return stats_k(L, LUA_OK, (lua_KContext)op);
}

/* ---- await ---- */

/* FLEET_LOOKUP_LUA of one task: its record, or 0 / 1 (queued) / 2 */
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
        op->queued = res->type == REDIS_REPLY_INTEGER && res->integer == 1;
    }
    fop_settle(op);
}

static int await_foreign_k(lua_State *L, int status, lua_KContext ctx);
static int foreign_again(lua_State *L, fop *op);

/* GET: the string (if any) into op->data. */
static void on_get(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fop *op = ud;
    if (!reply_failed(op, status, reply, err) && reply->type == REDIS_REPLY_STRING) {
        free(op->data);
        op->data = malloc(reply->len ? reply->len : 1);
        if (op->data) {
            memcpy(op->data, reply->str, reply->len);
            op->len = reply->len;
            op->have_data = 1;
        }
    }
    fop_settle(op);
}

static int foreign_lookup(lua_State *L, fop *op)
{
    fvm *v = op->v;
    fleet_bits b;
    char pre[FLEET_KEY_MAX];
    const char *argv[5] = {pre}; /* KEYS[1]: the task's slot */
    fleet_prefix_id(pre, op->name);
    int rc = fleet_bits_init(&b, 1);
    if (rc == 0 && (rc = fleet_bits_set(&b, 0, op->name, strlen(op->name))) == 0)
        fleet_lookup_args(op->name, &b, 0, argv + 1);
    op->stage = 1;
    fop_expect(op);
    if (rc == 0)
        rc = redis_uv_eval(v->r, on_lookup, op, v->lookup_script, 1, 5, argv, NULL);
    else
        rc = REDIS_UV_ENOMEM;
    if (b.n)
        fleet_bits_free(&b);
    if (rc != 0) {
        fop_unexpect(op, rc);
        return await_foreign_k(L, LUA_OK, (lua_KContext)op);
    }
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
    if (op->stage == 3) { /* the outcome kept by reference: op->n = ok, length, checksum */
        char msg[400];
        if (envelope_ref_verify("result values", "record", op->have_data ? op->data : NULL, op->len,
                                (uint64_t)op->n[1], (uint64_t)op->n[2], msg, sizeof msg) != 0) {
            lua_pushboolean(L, 0);
            lua_pushfstring(L, "task %s: %s", op->name, msg);
            return 2;
        }
        int n = taskbook_push_bytes(L, op->name, (int)op->n[0], op->data, op->len, NULL,
                                    fleet_wgs_outcome_ctx(op->v->wgs));
        retire_task(op->v, op->name, FLEET_TK_ALL); /* read: its keys go */
        return n;
    }
    if (op->have_data) {
        envelope_result r;
        char why[200];
        envelope_limits lim;
        envelope_limits_default(&lim);
        lim.max_ref = (size_t)op->v->cfg->payload_max_ref_bytes;
        /* with trusted keys: the pool the record names, for the log line */
        int dec = op->v->trust
                      ? envelope_result_decode(op->data, op->len, &lim, &r, why, sizeof why)
                      : -1;
        const char *pool = dec == 0 ? r.pool : "?";
        int trusted =
            result_trusted(op->v, pool, op->name, &op->refused, op->data, op->len, "result record");
        if (trusted == 1 && dec == 0 && strcmp(r.id, op->name) != 0) {
            result_misplaced(op->v, pool, op->name, &op->refused, r.id, "result record");
            trusted = -1;
        }
        if (trusted < 0) { /* not its outcome: look again later (the genuine one replaces it) */
            op->have_data = 0;
            op->queued = 1;
            return foreign_again(L, op);
        }
        if (envelope_result_decode(op->data, op->len, &lim, &r, why, sizeof why) != 0) {
            lua_pushboolean(L, 0);
            lua_pushfstring(L, "task %s: bad result record in Redis: %s", op->name, why);
            return 2;
        }
        if (r.ref_len) {
            op->stage = 3;
            op->n[0] = r.ok;
            op->n[1] = (long long)r.ref_len;
            op->n[2] = (long long)r.ref_sum;
            op->have_data = 0;
            char key[FLEET_KEY_MAX];
            fleet_key_task_out(key, op->name);
            if (fop_send(op, op->v->r, on_get, "GET %s", key) != 0)
                return await_foreign_k(L, LUA_OK, ctx);
            return sched_wait(L, op->s, &op->waiters, 0, ctx, await_foreign_k);
        }
        int n = taskbook_push_bytes(L, op->name, r.ok, r.payload, r.payload_len, NULL,
                                    fleet_wgs_outcome_ctx(op->v->wgs));
        retire_task(op->v, op->name, FLEET_TK_ALL); /* read: its keys go */
        return n;
    }
    if (!op->queued) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "unknown task id: %s (never submitted, or its result expired)",
                        op->name);
        return 2;
    }
    return foreign_again(L, op);
}

/* Submitted by another process and not finished: look again later. */
static int foreign_again(lua_State *L, fop *op)
{
    lua_KContext ctx = (lua_KContext)op;
    op->stage = 2;
    op->interval_ms = op->interval_ms ? op->interval_ms * 2 : FOREIGN_POLL_MS;
    if (op->interval_ms > 500)
        op->interval_ms = 500;
    return sched_wait(L, op->s, NULL, sched_now_ns() + (uint64_t)op->interval_ms * 1000000u, ctx,
                      await_foreign_k);
}

static int f_await_other(lua_State *L, void *be, const char *id)
{
    fvm *v = clients(L, be);
    size_t len = strlen(id);
    if (envelope_check_id(id, len, NULL, 0) != 0) {
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "unknown task id: %s (not a task id)", id);
        return 2;
    }
    char copy[ENVELOPE_ID_MAX + 1];
    memcpy(copy, id, len + 1);
    lua_settop(L, 0);
    fop *op = fop_new(L, v);
    memcpy(op->name, copy, len + 1);
    return foreign_lookup(L, op);
}

/* ---- setup and teardown ---- */

static void on_last_reply(redis_uv *cli, int status, const redisReply *reply, const char *err,
                          void *ud)
{
    (void)reply;
    (void)err;
    (void)ud;
    if (status != REDIS_UV_ECLOSED)
        redis_uv_close(cli, NULL, NULL);
}

/* Closes the command client once Redis has answered what was sent last (the
 * final submit counters and deletions of awaited tasks' keys: a process that
 * ends right after an await must not drop them); replies come in order, so
 * a PING's marks the end. At once when not connected (nothing would go out
 * anyway). The client holds the host's loop until it has closed. */
static void close_after_last_reply(redis_uv *r)
{
    redis_uv_stats st;
    redis_uv_get_stats(r, &st);
    if (!st.connected) {
        redis_uv_close(r, NULL, NULL);
        return;
    }
    redis_uv_hold(r); /* the client is weak: the loop must wait for that reply */
    if (redis_uv_command(r, on_last_reply, NULL, "PING") != 0)
        redis_uv_close(r, NULL, NULL);
}

static void fvm_free(sched *s, void *data)
{
    (void)s;
    fvm *v = data;
    v->closing = 1;
    sign_key_free(v->key);
    v->key = NULL;
    sign_trust_free(v->trust);
    v->trust = NULL;
    fleet_wgs_free(v->wgs);
    while (v->pools) {
        fpool *p = v->pools;
        v->pools = p->next;
        free(p);
    }
    if (!v->kp) {
        free(v);
        return;
    }
    flush_submits(v);
    flush_retired(v);
    frc_free(v->rc); /* before r: its replies still due only free */
    v->rc = NULL;
    /* tasks submitted and not awaited may still wait for Kafka (a broker
     * restarting): they get up to kafka.delivery_timeout_ms from their
     * submit, and a word on stderr when that takes longer than a moment */
    int quick = v->cfg->op_timeout_ms > 5000 ? 5000 : v->cfg->op_timeout_ms;
    size_t left = kuv_producer_flush(v->kp, quick);
    if (left > 0) {
        rtlog(v->s, RTLOG_WARN, 0, LUA_NOREF,
              "fleet producer %s: waiting for Kafka to take %zu submitted task(s) before exiting "
              "(up to kafka.delivery_timeout_ms = %d from each submit)",
              v->producer, left, v->cfg->kafka_delivery_timeout_ms);
        left = kuv_producer_flush(v->kp, v->cfg->kafka_delivery_timeout_ms);
    }
    if (left + v->undelivered > 0)
        rtlog(v->s, RTLOG_ERROR, 0, LUA_NOREF,
              "fleet producer %s: %zu submitted task(s) not delivered to Kafka: they will not run",
              v->producer, left + v->undelivered);
    /* fails what is left (their reports fire now) */
    kuv_producer_close(v->kp, 0);
    close_after_last_reply(v->r);
    redis_uv_close(v->rb, NULL, NULL);
    if (v->sub_argv) {
        sub_free_pools(v);
        free(v->sub_argv[0]);
    }
    free(v->sub_argv);
    free(v->sub_len);
    free(v->sub_ids);
    for (int i = 0; i < v->nret; i++)
        free(v->ret_argv[i]);
    free(v->ret_argv);
    free(v->ret_len);
    /* v goes when both handles have closed (in whatever order libuv runs
     * their close callbacks) */
    uvc_init(&v->closer, free, v);
    uvc_close(&v->closer, (uv_handle_t *)&v->flush);
    uvc_close(&v->closer, (uv_handle_t *)&v->tick);
    uvc_release(&v->closer);
}

static const pool_backend fleet_backend = {"fleet", f_create, f_submit,     f_wait,
                                           f_close, f_stats,  f_await_other};

int fleet_backend_install(lua_State *L, sched *s, const config *cfg)
{
    /* the taskbook first: it is freed after the fvm, whose delivery
     * reports still touch tasks */
    taskbook_get(L, s);
    fvm *v = calloc(1, sizeof *v);
    if (!v)
        return luaL_error(L, "not enough memory");
    v->s = s;
    v->cfg = cfg;
    unsigned n = atomic_fetch_add(&vm_counter, 1);
    char base[48];
    snprintf(base, sizeof base, "%.24s",
             cfg->producer_id && cfg->producer_id[0] ? cfg->producer_id : "producer");
    /* a part unique to this run: a fixed producer.id (or a host name and pid
     * seen before) must not make this run's task ids collide with results
     * of an earlier run still in Redis */
    snprintf(v->producer, sizeof v->producer, "%s.%08x.%u", base, run_nonce(), n % 100000);
    fleet_keys_use_url(cfg->redis_url); /* the key layout: tagged on a cluster */
    fleet_key_notify(v->notify_key, v->producer);
    v->prefix_len = fleet_prefix_producer(v->prefix, v->producer);
    if (sched_ext_set(s, &FVM_KEY, v, fvm_free) != 0) {
        free(v);
        return luaL_error(L, "not enough memory");
    }
    v->wgs = fleet_wgs_new(L, v->producer);
    fleet_objects_install(L, s, cfg, v->producer);
    lua_newtable(L);
    v->foreign_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    v->pins_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    v->started_ms = unix_ms();
    v->ops.kind = "fleet";
    v->ops.free = ftask_free;
    v->ops.orphan = NULL; /* its delivery report already fired (fvm_free) */
    v->ops.outcome_ctx = fleet_wgs_outcome_ctx(v->wgs);
    v->ops.awaited = task_awaited;
    if (pool_backend_use(L, s, &fleet_backend, v) != 0)
        return luaL_error(L, "this VM's pools already run on another backend");
    return 0;
}

/* ---- a configuration that did not load ---- */

static int broken(lua_State *L, void *be)
{
    return luaL_error(L, "mutirao configuration: %s", (const char *)be);
}

static int b_create(lua_State *L, void *be, const char *name, const pool_opts *o)
{
    (void)name;
    (void)o;
    return broken(L, be);
}

static int b_submit(lua_State *L, void *be)
{
    return broken(L, be);
}

static int b_named(lua_State *L, void *be, const char *name)
{
    (void)name;
    return broken(L, be);
}

static const pool_backend broken_backend = {"fleet", b_create, b_submit, b_named,
                                            b_named, b_named,  b_named};

static void why_free(sched *s, void *data)
{
    (void)s;
    free(data);
}

static const char BROKEN_KEY = 'x';

int fleet_backend_broken(lua_State *L, sched *s, const char *why)
{
    char *copy = strdup(why);
    if (!copy || sched_ext_set(s, &BROKEN_KEY, copy, why_free) != 0) {
        free(copy);
        return luaL_error(L, "not enough memory");
    }
    if (pool_backend_use(L, s, &broken_backend, copy) != 0)
        return luaL_error(L, "this VM's pools already run on another backend");
    return 0;
}
