/* consumer.c: the worker's Kafka consumer, task hand-off and completion
 * records (see worker.h). Before a task runs, its delivery record is asked
 * (deliveries.h): a task recorded already is not run again, one delivered
 * too often without an outcome becomes a dead letter (deadletters.h). A
 * partition stops at an envelope of a newer version (hold_partition). A
 * failed attempt with attempts left goes to the due-retry set instead of
 * being recorded (retry_outcome; retries.h brings it back). With trusted
 * keys (auth.*), a message's signature is checked before anything else of
 * it is read (authenticate): a refused one is dead-lettered unrun (reject).
 * Everything here runs on the main VM's loop. */
#include "worker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "allow.h"
#include "codec.h"
#include "deadletters.h"
#include "decimal.h"
#include "deliveries.h"
#include "envelope.h"
#include "executor.h"
#include "fleet_conn.h"
#include "fleet_durations.h"
#include "fleet_keys.h"
#include "fleet_wg.h"
#include "kafka_uv.h"
#include "metrics.h"
#include "outbox.h"
#include "procs.h"
#include "redis_uv.h"
#include "registry.h"
#include "retries.h"
#include "retry.h"
#include "sandbox.h"
#include "sign.h"
#include "wlog.h"

#define DEFAULT_WORKERS 4
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000
#define REPORT_MS 1000
#define COMPLETE_BATCH 256 /* completions per script call */
#define HEARTBEAT_MS 500   /* Kafka group heartbeats: see worker_start */
#define RATE_BUCKET_S 5
#define RATE_BUCKETS 12 /* one minute */

typedef struct wpool wpool;
typedef struct wtask wtask;

/* A pool this worker has seen messages of. */
struct wpool {
    wpool *next;
    char topic[CONFIG_TOPIC_MAX + 1];
    char name[ENVELOPE_POOL_MAX + 1];
    executor *ex;                          /* runs its tasks on the VM threads */
    int cap;                               /* its `workers` option: tasks at once in this process */
    int inflight;                          /* handed to ext and not yet recorded in Redis */
    int reported;                          /* the running count last written to Redis, -1: never */
    unsigned long long received, recorded; /* since start, for debug lines */
    wtask *running[256]; /* the tasks here by (partition, offset): see on_message */
    int holding;         /* its topic is held (kuv_hold): inflight reached cap + PREFETCH */
    struct held *held;   /* partitions stopped at an envelope this worker cannot read */
    int nheld;
    /* tasks wait here until one of the pool's `workers` slots is free: the
     * delivery record counts a task when it is about to run, not when it
     * was fetched (a task queued behind one that kills its worker was not
     * delivered to any code) */
    wtask *qhead, *qtail;
    int nstarted;    /* asked or running: at most cap */
    metrics_pool *m; /* its Prometheus figures (NULL: no metrics) */
    /* outcomes recorded here, in RATE_BUCKETS buckets of RATE_BUCKET_S
     * seconds: the registry's tasks over the last minute (registry.c) */
    unsigned rate_n[RATE_BUCKETS];
    uint64_t rate_at[RATE_BUCKETS];
    /* and their durations (started to recorded) by fleet_durations.h's
     * buckets, in the same time buckets: `mutirao top`'s p50 and p99 */
    unsigned dur_n[RATE_BUCKETS][FLEET_DUR_BUCKETS];
};

/* A partition stopped at a message of a newer envelope version: paused, the
 * message not marked done (so not committed), left for a newer worker. */
struct held {
    int32_t partition;
    int64_t offset;
};

/* The steps of a task's completion (the tagged layout adds the first and
 * the last): its next attempt joins the retry set (a "retry" only), the
 * completion script, its outbox is pushed (an answer 3 only). */
enum { COMPLETE_CALL, COMPLETE_RETRY_ADD, COMPLETE_OUTBOX };

/* A task from its message to its completion record. */
struct wtask {
    worker *w;
    wpool *wp;
    wtask *hnext; /* chain of wp->running */
    wtask *qnext; /* wp's queue */
    int started;  /* counted in wp->nstarted */
    int32_t partition;
    int64_t offset;
    char id[ENVELOPE_ID_MAX + 1];
    char producer[ENVELOPE_ID_MAX + 1];
    uint32_t attempt;
    uint32_t max_deliveries; /* from its envelope (0: not given) */
    int ok;
    dlv_ask ask;  /* its delivery record's question */
    dl_item dead; /* when it is dead-lettered */
    char *env;    /* its envelope (in run.buf or in), until it runs */
    size_t envlen;
    /* the completion script's arguments, built once */
    int argc, nkeys;
    char **argv;
    size_t *argvlen;
    uv_timer_t retry;
    unsigned retry_ms;
    int stage;          /* what retry_later tries again: a COMPLETE_* */
    ex_task run;        /* what runs on a VM */
    fleet_task_wgs wgs; /* the WaitGroup proxies its decode made */
    char *in;           /* the task's envelope when larger than run.buf */
    uint64_t ref_len;   /* its payload is in Redis by reference (envelope_task) */
    uint64_t ref_sum;
    char *ref; /* that payload, once read (ref_fetch) */
    /* pools with `retries`, while attempts are left: the next attempt */
    char *next_env; /* its envelope (attempt + 1), malloc'd */
    size_t next_envlen;
    pool_retry policy;      /* the envelope's retries and backoff */
    uint64_t deadline_ms;   /* the envelope's deadline (0: none) */
    uint64_t started_ms;    /* Unix ms it was handed to a VM thread (0: never) */
    char *reject;           /* why the message was refused unrun (malloc'd), or NULL */
    char *unrun;            /* why it fails without running (malloc'd), or NULL */
    uint64_t start_ns;      /* uv_hrtime when it was handed to its executor (with metrics) */
    unsigned char was_dead; /* recorded as a dead letter */
    unsigned char tmo;      /* it failed at its timeout or deadline */
};

struct worker {
    sched *s;
    const config *cfg;
    char incarnation[17];                   /* this process's random hex tag */
    char tag[ENVELOPE_ID_MAX + 1 + 17 + 1]; /* "WORKER_ID#INCARNATION" */
    kuv_consumer *c;
    redis_uv *r;
    int complete_script;
    int notify_script; /* FLEET_NOTIFY_LUA (outbox.h) */
    wpool *pools;
    uv_timer_t report;
    long inflight;    /* over all pools */
    int stopping;     /* worker_stop called: fetch nothing more */
    uv_timer_t drain; /* bounds the drain */
    int calls;        /* completion calls in flight sent before the stop */
    int left;         /* the consumer is closed: this worker left the group */
    uv_timer_t leave; /* bounds the wait for those calls before leaving */
    void (*done)(void *ud);
    void *done_ud;
    int closed;
    unsigned ticks;
    size_t prefix_len;
    uv_check_t flush; /* sends the completions of each loop turn */
    wtask **pend;
    int npend, cappend;
    int nclosing; /* handles whose close callback is due */
    char **pats;  /* the subscription, until it is made (see on_ping) */
    size_t npats;
    int subscribed;
    uv_timer_t ping_timer;
    /* tasks whose next delivery is their last (a worker died while they
     * ran, max_deliveries - 1 times): each runs alone, no task of any pool
     * beside it, so that a crash counts against the task that caused it
     * (DLV_ALONE). They wait here, chained by qnext, until nothing runs. */
    wtask *alone_head, *alone_tail;
    wtask *alone;        /* the one asked or running alone */
    deliveries *dv;      /* the delivery-record questions */
    deadletters *dl;     /* dead letters on their way */
    retries *rq;         /* the due retries, back to their topics */
    sign_trust *trust;   /* auth.trusted_keys (NULL: none) */
    sign_key *key;       /* auth.signing_key: signs the next attempts it produces */
    int auth_required;   /* config_auth_required */
    uint64_t started_ms; /* for the registry */
    metrics *m;          /* the Prometheus figures (NULL: none) */
    uint64_t ping_ns;    /* when the pending round-trip PING was sent, 0: none pending */
};

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ---- pools ---- */

static void fetch_cap(worker *w, wpool *p);

static wpool *pool_for(worker *w, const char *topic)
{
    for (wpool *p = w->pools; p; p = p->next)
        if (!strcmp(p->topic, topic))
            return p;
    if (strlen(topic) <= w->prefix_len || strlen(topic) > CONFIG_TOPIC_MAX)
        return NULL;
    wpool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    strcpy(p->topic, topic);
    envelope_copy(p->name, sizeof p->name, topic + w->prefix_len);
    p->cap = DEFAULT_WORKERS;
    p->reported = -1;
    p->ex = executor_new(p->cap, NULL);
    if (!p->ex) {
        free(p);
        return NULL;
    }
    p->m = w->m ? metrics_pool_get(w->m, p->name) : NULL;
    p->next = w->pools;
    w->pools = p;
    fetch_cap(w, p);
    wlog(WLOG_INFO, "pool=%s first task seen (topic %s)", p->name, topic);
    return p;
}

/* ---- the tasks here, by message ---- */

static wtask **running_slot(wpool *p, int32_t partition, int64_t offset)
{
    uint64_t h = (uint64_t)offset * 0x9e3779b97f4a7c15ull + (uint64_t)(uint32_t)partition;
    wtask **pp = &p->running[(h >> 56) & 255];
    while (*pp && ((*pp)->partition != partition || (*pp)->offset != offset))
        pp = &(*pp)->hnext;
    return pp;
}

/* ---- flow control ---- */

/* The pool's messages stop being handed out when PREFETCH tasks beyond its
 * `workers` are here (they wait in the pool's queue, so the VMs never run
 * dry) and flow again once half of those are gone. Meanwhile librdkafka
 * keeps a bounded number of them fetched ahead per partition (kuv_hold):
 * nothing is dropped and fetched again, so the pipeline never waits for a
 * refetch. */
#define PREFETCH 1024

static void maybe_hold(worker *w, wpool *p)
{
    if (p->holding || p->inflight < p->cap + PREFETCH)
        return;
    if (kuv_hold(w->c, p->topic, 1) == 0)
        p->holding = 1;
}

static void maybe_release(worker *w, wpool *p)
{
    if (w->stopping || !p->holding || p->inflight > p->cap + PREFETCH / 2)
        return;
    if (kuv_hold(w->c, p->topic, 0) == 0)
        p->holding = 0;
}

/* ---- partitions held at a newer envelope version ---- */

/* 1 when the partition is held (*offset: the message it stopped at). */
static int held_at(const wpool *p, int32_t partition, int64_t *offset)
{
    for (int i = 0; i < p->nheld; i++)
        if (p->held[i].partition == partition) {
            if (offset)
                *offset = p->held[i].offset;
            return 1;
        }
    return 0;
}

/* The message is a task envelope of a version newer than this worker reads
 * (docs/wire-format.md: left for newer workers). Its partition stops here:
 * paused, the message not marked done (its offset is not committed), the
 * messages after it, already fetched, ignored. Said once per hold. A newer
 * worker runs them when the partition moves to it (this worker stops or
 * leaves the group); until then the partition's tasks wait. */
static void hold_partition(worker *w, wpool *p, const kuv_message *m, const char *why)
{
    struct held *n = realloc(p->held, (size_t)(p->nheld + 1) * sizeof *n);
    if (n) {
        p->held = n;
        p->held[p->nheld].partition = m->partition;
        p->held[p->nheld].offset = m->offset;
        p->nheld++;
    }
    kuv_pause(w->c, p->topic, m->partition);
    wlog(WLOG_WARN,
         "pool=%s partition %d offset %" PRId64 ": %s; partition paused here and left for a "
         "newer mutirao-worker (not committed: it runs when a worker that reads it takes the "
         "partition, e.g. once this one is upgraded or stopped)",
         p->name, (int)m->partition, m->offset, why);
}

/* The partition left this worker: its hold goes with it. */
static void unhold(worker *w, const char *topic, int32_t partition)
{
    for (wpool *p = w->pools; p; p = p->next) {
        if (strcmp(p->topic, topic) != 0)
            continue;
        for (int i = 0; i < p->nheld; i++)
            if (p->held[i].partition == partition) {
                p->held[i] = p->held[--p->nheld];
                wlog(WLOG_INFO, "pool=%s partition %d: no longer held here (revoked)", p->name,
                     (int)partition);
                break;
            }
    }
}

/* ---- completion ---- */

static void wtask_free(wtask *t)
{
    free(t->in);
    free(t->ref);
    free(t->next_env);
    free(t->reject);
    free(t->unrun);
    free(t->argv); /* its lengths and bytes are in the same block */
    free(t);
}

static void on_retry_closed(uv_handle_t *h)
{
    wtask_free(h->data);
}

static void maybe_finish_stop(worker *w);

/* The task is recorded (or given up at shutdown): its offset may commit. */
static void task_settled(wtask *t, int recorded)
{
    worker *w = t->w;
    wpool *p = t->wp;
    if (recorded && w->c) {
        int rc = kuv_done(w->c, p->topic, t->partition, t->offset);
        if (rc != 0 && rc != KUV_ENOTASSIGNED)
            wlog(WLOG_WARN, "pool=%s task=%s offset %" PRId64 ": %s", p->name, t->id, t->offset,
                 kuv_strerror(rc));
    }
    wtask **slot = running_slot(p, t->partition, t->offset);
    if (*slot == t)
        *slot = t->hnext;
    p->inflight--;
    w->inflight--;
    p->recorded++;
    if (recorded && t->started_ms) {
        uint64_t now = unix_ms(), b = now / 1000 / RATE_BUCKET_S;
        int i = (int)(b % RATE_BUCKETS);
        if (p->rate_at[i] != b) {
            p->rate_at[i] = b;
            p->rate_n[i] = 0;
            memset(p->dur_n[i], 0, sizeof p->dur_n[i]);
        }
        p->rate_n[i]++;
        p->dur_n[i][fleet_dur_bucket(now > t->started_ms ? now - t->started_ms : 0)]++;
    }
    maybe_release(w, p);
    uv_close((uv_handle_t *)&t->retry, on_retry_closed);
    maybe_finish_stop(w);
}

/* A completion script call for a batch of tasks. */
typedef struct batch {
    worker *w;
    int counted; /* in w->calls */
    int n;
    wtask *t[];
} batch;

static void send_batch(worker *w, wtask **ts, int n);
static void retry_add(wtask *t);
static void push_outbox(wtask *t);
static void queue_completion(wtask *t);

static void on_retry(uv_timer_t *h)
{
    wtask *t = h->data;
    if (t->stage == COMPLETE_RETRY_ADD)
        retry_add(t);
    else if (t->stage == COMPLETE_OUTBOX)
        push_outbox(t);
    else
        send_batch(t->w, &t, 1);
}

static void retry_later(wtask *t, const char *why)
{
    worker *w = t->w;
    if (w->closed || (w->stopping && !uv_is_active((uv_handle_t *)&w->drain))) {
        if (t->stage == COMPLETE_OUTBOX) /* recorded: its next delivery pushes the outbox */
            wlog(WLOG_WARN,
                 "pool=%s task=%s: notifications for other producers not pushed yet (%s); "
                 "its next delivery pushes them",
                 t->wp->name, t->id, why);
        else
            wlog(WLOG_WARN, "pool=%s task=%s: outcome not recorded (%s); it will run again",
                 t->wp->name, t->id, why);
        task_settled(t, 0);
        return;
    }
    wlog(WLOG_WARN, "pool=%s task=%s: cannot record the outcome (%s); retrying in %u ms",
         t->wp->name, t->id, why, t->retry_ms);
    uv_timer_start(&t->retry, on_retry, t->retry_ms, 0);
    t->retry_ms = t->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : t->retry_ms * 2;
}

/* The completion script's answer for t (1 recorded, 2 its next attempt
 * scheduled, 3 recorded with notifications left to push, 0 recorded
 * before: a repeat run) in the pool's figures. */
static void count_outcome(wtask *t, long long answer)
{
    metrics_pool *m = t->wp->m;
    if (!m || answer < 1 || answer > 3)
        return;
    if (answer == 2)
        m->retried++;
    else if (t->ok)
        m->completed++;
    else
        m->failed++;
    if (answer != 2 && t->was_dead)
        m->dead_lettered++;
    if (t->tmo)
        m->timed_out++;
}

static void on_completed(redis_uv *cli, int status, const redisReply *reply, const char *err,
                         void *ud)
{
    (void)cli;
    batch *b = ud;
    const char *why = err;
    if (status == 0 && reply && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements == (size_t)b->n) {
        wlog(WLOG_DEBUG, "recorded %d outcome(s)", b->n);
        for (int i = 0; i < b->n; i++) {
            wtask *t = b->t[i];
            if (reply->element[i]->type == REDIS_REPLY_INTEGER)
                count_outcome(t, reply->element[i]->integer);
            if (reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer == 3) {
                t->stage = COMPLETE_OUTBOX; /* finished once its outbox is pushed */
                push_outbox(t);
                continue;
            }
            if (reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer == 0)
                wlog(WLOG_INFO, "pool=%s task=%s attempt %u: already completed (a repeat run)",
                     t->wp->name, t->id, t->attempt);
            else if (reply->element[i]->type == REDIS_REPLY_INTEGER &&
                     reply->element[i]->integer == 2)
                wlog(WLOG_DEBUG, "pool=%s task=%s attempt %u failed: attempt %u is due later",
                     t->wp->name, t->id, t->attempt, t->attempt + 1);
            task_settled(t, 1);
        }
        free(b);
        return;
    }
    if (status == 0)
        why = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    for (int i = 0; i < b->n; i++)
        retry_later(b->t[i], why);
    free(b);
}

static void call_answered(worker *w);

/* on_completed, then the stop path learns that a call sent before the stop
 * has its answer (see leave_when_answered). */
static void on_batch_reply(redis_uv *cli, int status, const redisReply *reply, const char *err,
                           void *ud)
{
    batch *b = ud;
    worker *w = b->w;
    int counted = b->counted;
    on_completed(cli, status, reply, err, ud);
    if (counted)
        call_answered(w);
}

/* One FLEET_COMPLETE_LUA call for n tasks. */
static void send_batch(worker *w, wtask **ts, int n)
{
    int argc = 4;
    for (int i = 0; i < n; i++)
        argc += ts[i]->argc;
    batch *b = malloc(sizeof *b + (size_t)n * sizeof b->t[0]);
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    if (!b || !argv || !lens) {
        free(b);
        free(argv);
        free(lens);
        for (int i = 0; i < n; i++)
            retry_later(ts[i], "out of memory");
        return;
    }
    b->w = w;
    b->n = n;
    b->counted = !w->stopping;
    char pre[FLEET_KEY_MAX], ttl[16], nttl[16], ittl[16];
    snprintf(ttl, sizeof ttl, "%d", w->cfg->result_ttl_s);
    snprintf(nttl, sizeof nttl, "%d", FLEET_NOTIFY_TTL_S);
    snprintf(ittl, sizeof ittl, "%d", w->cfg->task_info_ttl_s);
    argv[0] = pre; /* KEYS[1]: the tasks' slot (flush_completions) */
    lens[0] = fleet_prefix_id(pre, ts[0]->id);
    argv[1] = ttl;
    lens[1] = strlen(ttl);
    argv[2] = nttl;
    lens[2] = strlen(nttl);
    argv[3] = ittl; /* a completed task's info (task.info_ttl_s) */
    lens[3] = strlen(ittl);
    int k = 4;
    for (int i = 0; i < n; i++) {
        b->t[i] = ts[i];
        for (int j = 0; j < ts[i]->argc; j++) {
            argv[k] = ts[i]->argv[j];
            lens[k++] = ts[i]->argvlen[j];
        }
    }
    int rc = redis_uv_eval(w->r, on_batch_reply, b, w->complete_script, 1, argc, argv, lens);
    free(argv);
    free(lens);
    if (rc == 0 && b->counted)
        w->calls++;
    if (rc != 0) {
        free(b);
        for (int i = 0; i < n; i++)
            retry_later(ts[i], redis_uv_strerror(rc));
    }
}

/* Its outbox is pushed: the task is finished. */
static void on_outbox_pushed(void *ud, int ok, const char *why)
{
    wtask *t = ud;
    if (!ok) {
        retry_later(t, why); /* or, closing, left to its next delivery's replay */
        return;
    }
    t->stage = COMPLETE_CALL;
    task_settled(t, 1);
}

/* Answer 3 (tagged layout): the completion left notifications for other
 * slots in the task's outbox; they are pushed before its offset commits. */
static void push_outbox(wtask *t)
{
    int rc = outbox_push(t->w->r, t->w->notify_script, t->id, on_outbox_pushed, t);
    if (rc != 0)
        retry_later(t, redis_uv_strerror(rc));
}

static void on_retry_added(redis_uv *cli, int status, const redisReply *reply, const char *err,
                           void *ud)
{
    (void)cli;
    wtask *t = ud;
    if (status != 0 || reply->type != REDIS_REPLY_INTEGER) {
        retry_later(t, status != 0                        ? err
                       : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                          : "unexpected reply");
        return;
    }
    if (t->w->closed) {
        task_settled(t, 0); /* it runs again elsewhere */
        return;
    }
    t->stage = COMPLETE_CALL;
    queue_completion(t);
}

/* A "retry" in the tagged layout, where the retry set is in another slot:
 * the next attempt joins it here (ZADD NX, score its due time, member "ID
 * ENVELOPE": the flat script's step), before the completion call that
 * counts it. t->argv holds the "retry" arguments (retry_outcome). */
static void retry_add(wtask *t)
{
    const char *id = t->argv[0], *env = t->argv[4], *due = t->argv[5];
    size_t idlen = t->argvlen[0], envlen = t->argvlen[4];
    char key[FLEET_KEY_MAX];
    size_t kl = fleet_key_retries(key, sign_is_signed(env, envlen));
    char *member = malloc(idlen + 1 + envlen);
    if (!member) {
        retry_later(t, "out of memory");
        return;
    }
    memcpy(member, id, idlen);
    member[idlen] = ' ';
    memcpy(member + idlen + 1, env, envlen);
    const char *argv[] = {"ZADD", key, "NX", due, member};
    size_t lens[] = {4, kl, 2, t->argvlen[5], idlen + 1 + envlen};
    int rc = redis_uv_command_argv(t->w->r, on_retry_added, t, 5, argv, lens);
    free(member);
    if (rc != 0)
        retry_later(t, redis_uv_strerror(rc));
}

/* 1 when task t has the tag (len bytes) of a call's slot. */
static int in_slot(const wtask *t, const char *tag, size_t len)
{
    return fleet_id_tag(t->id, strlen(t->id)) == len && memcmp(t->id, tag, len) == 0;
}

/* Sends the completions gathered in this loop turn: in the tagged layout
 * one call per slot (the tasks' tag), in the flat one all together. */
static void flush_completions(worker *w)
{
    int n = w->npend;
    w->npend = 0;
    if (!fleet_keys_tagged()) {
        for (int i = 0; i < n; i += COMPLETE_BATCH)
            send_batch(w, w->pend + i, n - i < COMPLETE_BATCH ? n - i : COMPLETE_BATCH);
        return;
    }
    wtask *one[COMPLETE_BATCH];
    while (n > 0) {
        const char *tag = w->pend[0]->id;
        size_t len = fleet_id_tag(tag, strlen(tag));
        int m = 0, rest = 0;
        for (int i = 0; i < n; i++) {
            wtask *t = w->pend[i];
            if (m < COMPLETE_BATCH && in_slot(t, tag, len))
                one[m++] = t;
            else
                w->pend[rest++] = t; /* the next calls' (tag is one[0]'s) */
        }
        send_batch(w, one, m);
        n = rest;
    }
}

static void on_flush(uv_check_t *h)
{
    worker *w = h->data;
    if (w->npend)
        flush_completions(w);
}

static void queue_completion(wtask *t)
{
    worker *w = t->w;
    if (w->npend == w->cappend) {
        int c = w->cappend ? w->cappend * 2 : 256;
        wtask **p = realloc(w->pend, (size_t)c * sizeof *p);
        if (!p) {
            send_batch(w, &t, 1);
            return;
        }
        w->pend = p;
        w->cappend = c;
    }
    w->pend[w->npend++] = t;
    if (w->npend >= COMPLETE_BATCH)
        flush_completions(w);
}

/* One argument of the completion script, before it is copied. */
typedef struct argpart {
    const char *p;
    size_t n;
} argpart;

/* t->argv, t->argvlen: copies of the n parts, NUL-terminated, in one
 * allocation (the pointers, the lengths, then the bytes; freed with
 * t->argv). 0, or -1 without memory. */
static int set_args(wtask *t, const argpart *a, int n)
{
    size_t bytes = (size_t)n * (sizeof(char *) + sizeof(size_t));
    for (int i = 0; i < n; i++)
        bytes += a[i].n + 1;
    char **argv = malloc(bytes);
    if (!argv)
        return -1;
    size_t *lens = (size_t *)(argv + n);
    char *d = (char *)(lens + n);
    for (int i = 0; i < n; i++) {
        argv[i] = d;
        lens[i] = a[i].n;
        if (a[i].n)
            memcpy(d, a[i].p, a[i].n);
        d[a[i].n] = 0;
        d += a[i].n + 1;
    }
    t->argv = argv;
    t->argvlen = lens;
    t->argc = n;
    return 0;
}

/* FLEET_COMPLETE_LUA's seen bitmap key and bit of the task ("" "" for an
 * id without them): computed here, not parsed by Redis. */
static void bit_parts(const wtask *t, fleet_bit *b, argpart *out)
{
    int has = fleet_bit_of(t->id, strlen(t->id), b) == 0;
    out[0] = (argpart){has ? b->seen : "", has ? b->seen_len : 0};
    out[1] = (argpart){has ? b->bit : "", has ? b->bit_len : 0};
}

typedef struct delta_list {
    char (*owner)[ENVELOPE_ID_MAX + 1];
    char **elem;
    int n, cap;
} delta_list;

static void collect_delta(void *ud, const char *owner, const char *wgid, long long delta)
{
    delta_list *d = ud;
    if (d->n == d->cap) {
        int c = d->cap ? d->cap * 2 : 4;
        void *o = realloc(d->owner, (size_t)c * sizeof *d->owner);
        if (!o)
            return;
        d->owner = o;
        void *e = realloc(d->elem, (size_t)c * sizeof *d->elem);
        if (!e)
            return;
        d->elem = e;
        d->cap = c;
    }
    char buf[160];
    snprintf(buf, sizeof buf, "W%s %lld", wgid, delta);
    if (!(d->elem[d->n] = strdup(buf)))
        return;
    envelope_copy(d->owner[d->n], sizeof d->owner[d->n], owner);
    d->n++;
}

/* The changes among d, "WGID DELTA" lines (malloc'd, *len bytes), or NULL
 * when none (or out of memory). A WGID names its owner ("PRODUCER/N"): each
 * producer applies the lines of its own WaitGroups. */
static char *all_changes(const delta_list *d, size_t *len)
{
    size_t n = 0;
    for (int i = 0; i < d->n; i++)
        n += strlen(d->elem[i]); /* 'W' + change: the change and a newline */
    char *s = n ? malloc(n) : NULL;
    *len = 0;
    if (!s)
        return NULL;
    for (int i = 0; i < d->n; i++) {
        if (*len)
            s[(*len)++] = '\n';
        size_t l = strlen(d->elem[i]) - 1;
        memcpy(s + *len, d->elem[i] + 1, l);
        *len += l;
    }
    return s;
}

/* The task ended on its VM (s is NULL when this VM is gone: exiting). */
static void record_outcome(wtask *t, int ok);

static void slot_free(wtask *t);

static void on_task_done(sched *s, ex_task *x)
{
    wtask *t = (wtask *)((char *)x - offsetof(wtask, run));
    free(t->in);
    t->in = NULL;
    free(t->ref);
    t->ref = NULL;
    t->tmo = (unsigned char)x->timed_out;
    if (t->wp->m && t->start_ns && s)
        metrics_observe_duration(t->wp->m, uv_hrtime() - t->start_ns);
    slot_free(t);
    if (s && x->lingering)
        return; /* recorded when the goroutines it started have ended too */
    record_outcome(t, s ? x->ok : -1);
}

/* The goroutines a finished task started have all ended: their add() and
 * done() calls on the task's WaitGroups are in the record with its outcome. */
static void on_task_ended(sched *s, const char *id, ex_task *x)
{
    (void)id;
    wtask *t = (wtask *)((char *)x - offsetof(wtask, run));
    record_outcome(t, s ? x->ok : -1);
}

static void record_result(wtask *t, int ok, const char *out, size_t outlen, int dead);

static void drop_delta(void *ud, const char *owner, const char *wgid, long long delta)
{
    (void)ud;
    (void)owner;
    (void)wgid;
    (void)delta;
}

/* The task's mutirao:task:ID:info (fleet_keys.h): "STATE ATTEMPT SUBMITTED
 * STARTED FINISHED WORKER POOL\n" + err (the error, a codec value; NULL for
 * none) into buf (its n bytes) or a malloc'd block (*heap, freed by the
 * caller). Returns its length, 0 when it does not fit or without memory
 * (then no info). No snprintf: this is per task. */
static size_t task_info(const wtask *t, const char *state, uint64_t finished, const char *err,
                        size_t errlen, char *buf, size_t n, char **heap)
{
    const char *wid = t->w->cfg->worker_id, *pool = t->wp->name;
    size_t sl = strlen(state), wl = strlen(wid), pl = strlen(pool);
    *heap = NULL;
    if (sl + wl + pl + 4 * 21 + 7 > n)
        return 0;
    char *p = buf;
    memcpy(p, state, sl);
    p += sl;
    *p++ = ' ';
    p = dec_put(p, t->attempt);
    *p++ = ' ';
    p = dec_put(p, t->run.submitted_ms);
    *p++ = ' ';
    p = dec_put(p, t->started_ms);
    *p++ = ' ';
    p = dec_put(p, finished);
    *p++ = ' ';
    memcpy(p, wid, wl);
    p += wl;
    *p++ = ' ';
    memcpy(p, pool, pl);
    p += pl;
    *p++ = '\n';
    size_t m = (size_t)(p - buf);
    if (!err || errlen == 0)
        return m;
    if (m + errlen <= n) {
        memcpy(buf + m, err, errlen);
        return m + errlen;
    }
    if (!(*heap = malloc(m + errlen)))
        return 0;
    memcpy(*heap, buf, m);
    memcpy(*heap + m, err, errlen);
    return m + errlen;
}

/* A failed attempt with attempts left: queues its "retry" entry for the
 * completion script (the next attempt's envelope, due after the backoff)
 * instead of an outcome. Returns 0, or -1 when it is recorded as it is (no
 * attempt left, past its deadline, out of memory). */
static int retry_outcome(wtask *t)
{
    if (!t->next_env || t->w->closed)
        return -1;
    uint64_t due = unix_ms() + retry_delay_ms(&t->policy, t->attempt + 1, retry_random());
    if (t->deadline_ms && due >= t->deadline_ms)
        return -1; /* it would not start: its failure is the outcome */
    char num[24];
    snprintf(num, sizeof num, "%" PRIu64, due);
    fleet_bit b;
    char ibuf[640], *iheap;
    size_t ilen = task_info(t, "retrying", unix_ms(), t->run.out, t->run.out ? t->run.outlen : 0,
                            ibuf, sizeof ibuf, &iheap);
    argpart a[10] = {{t->id, strlen(t->id)},
                     {t->wp->name, strlen(t->wp->name)},
                     {t->producer, strlen(t->producer)},
                     {"retry", 5},
                     {t->next_env, t->next_envlen},
                     {num, strlen(num)}};
    bit_parts(t, &b, a + 6);
    a[8] = (argpart){"0", 1};
    a[9] = (argpart){iheap ? iheap : ibuf, ilen};
    int src = set_args(t, a, 10);
    free(iheap);
    if (src != 0)
        return -1;
    /* the failed attempt's WaitGroup changes go with it: the next attempt
     * makes its own */
    fleet_task_wgs_drain(&t->wgs, drop_delta, NULL);
    ex_task_release(&t->run);
    if (fleet_keys_tagged()) {
        t->stage = COMPLETE_RETRY_ADD; /* then the completion call */
        retry_add(t);
    } else {
        queue_completion(t);
    }
    return 0;
}

/* Builds the task's completion record (outcome and WaitGroup changes) and
 * queues it for the completion script. ok: 1, 0, or -1 (the VM is gone). */
static void record_outcome(wtask *t, int ok)
{
    if (ok == 0 && retry_outcome(t) == 0)
        return;
    record_result(t, ok, t->run.out, t->run.outlen, 0);
}

/* Records a failure whose error is msg (dead: a dead letter's). */
static void record_failure(wtask *t, const char *msg, int dead)
{
    char *enc = NULL;
    size_t elen = 0;
    if (codec_encode_text(msg, strlen(msg), &enc, &elen) != 0) {
        enc = NULL;
        elen = 0;
    }
    record_result(t, 0, enc, elen, dead);
    free(enc);
}

/* record_outcome with the outcome's bytes (out may be NULL). */
static void record_result(wtask *t, int ok, const char *out, size_t outlen, int dead)
{
    ex_task *x = &t->run;
    worker *w = t->w;
    delta_list d = {0};
    fleet_task_wgs_drain(&t->wgs, collect_delta, &d);
    envelope_result r;
    memset(&r, 0, sizeof r);
    envelope_copy(r.id, sizeof r.id, t->id);
    envelope_copy(r.pool, sizeof r.pool, t->wp->name);
    envelope_copy(r.worker, sizeof r.worker, w->cfg->worker_id);
    r.attempt = t->attempt;
    r.ok = ok == 1;
    r.dead_lettered = dead;
    t->was_dead = (unsigned char)dead;
    r.finished_at_ms = unix_ms();
    r.payload = out ? out : "";
    r.payload_len = out ? outlen : 0;
    t->ok = r.ok;
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_payload = (size_t)w->cfg->payload_max_bytes;
    lim.max_ref = (size_t)w->cfg->payload_max_ref_bytes;
    const char *blob = "";
    size_t bloblen = 0;
    if (out && outlen > lim.max_payload && outlen <= lim.max_ref) {
        /* too large for the notification: the completion script stores it
         * by reference (mutirao:task:ID:out) */
        blob = out;
        bloblen = outlen;
        r.payload = "";
        r.payload_len = 0;
        r.ref_len = outlen;
        r.ref_sum = envelope_ref_sum(out, outlen);
    }
    /* a signed record carries the task's WaitGroup changes, so that they
     * are signed with the outcome: its producer's, and those of other
     * producers, who read the record when their 'W' element comes
     * (docs/wire-format.md, "Signed result record") */
    char *mine = NULL;
    size_t minelen = 0;
    if (w->key)
        mine = all_changes(&d, &minelen);
    r.wg = mine;
    r.wg_len = mine ? minelen : 0;
    char errbuf[200];
    envelope_buf b;
    envelope_buf_init(&b, NULL, 0);
    char *enc = NULL;
    int rc = envelope_result_encode(&r, &lim, &b, errbuf, sizeof errbuf);
    if (rc != 0) {
        /* e.g. a result over payload.max_bytes: record the failure instead */
        char msg[400];
        snprintf(msg, sizeof msg, "task %s: its outcome cannot be recorded: %s", t->id, errbuf);
        wlog(WLOG_WARN, "pool=%s %s", t->wp->name, msg);
        r.ok = 0;
        t->ok = 0;
        /* the error the producer's await returns: msg, encoded as a value
         * (freed at the end: the task's info holds it too) */
        size_t elen = 0;
        if (codec_encode_text(msg, strlen(msg), &enc, &elen) != 0) {
            enc = NULL;
            elen = 0;
        }
        r.payload = enc;
        r.payload_len = elen;
        r.ref_len = r.ref_sum = 0;
        blob = "";
        bloblen = 0;
        rc = envelope_result_encode(&r, &lim, &b, errbuf, sizeof errbuf);
    }
    free(mine);
    char *sealed = NULL;
    size_t sealedlen = 0;
    if (rc == 0 && w->key &&
        (rc = sign_result(w->key, b.data, b.len, &sealed, &sealedlen, errbuf, sizeof errbuf)) ==
            0) {
        envelope_buf_free(&b);
        b.data = sealed; /* b.len bytes of the signed record; freed below */
        b.len = sealedlen;
    }
    int nargs = 10 + 2 * d.n, fail = rc != 0;
    argpart few[10], *a = d.n ? malloc((size_t)nargs * sizeof *a) : few;
    char ibuf[640], *iheap = NULL;
    size_t ilen = 0;
    if (!fail && a) {
        char num[24];
        fleet_bit bit;
        *dec_put(num, (uint64_t)d.n) = 0; /* a count: never negative */
        a[0] = (argpart){t->id, strlen(t->id)};
        a[1] = (argpart){t->wp->name, strlen(t->wp->name)};
        a[2] = (argpart){t->producer, strlen(t->producer)};
        a[3] = t->ok ? (argpart){"completed", 9} : (argpart){"failed", 6};
        a[4] = (argpart){b.data, b.len};
        a[5] = (argpart){blob, bloblen};
        bit_parts(t, &bit, a + 6);
        a[8] = (argpart){num, strlen(num)};
        /* the error of a failure: the outcome's value (not one kept by
         * reference); a completed task's only with task.info_ttl_s */
        if (!t->ok || w->cfg->task_info_ttl_s > 0)
            ilen = task_info(t,
                             t->ok  ? "completed"
                             : dead ? "dead_lettered"
                                    : "failed",
                             r.finished_at_ms, t->ok ? NULL : r.payload, t->ok ? 0 : r.payload_len,
                             ibuf, sizeof ibuf, &iheap);
        a[9] = (argpart){iheap ? iheap : ibuf, ilen};
        for (int i = 0; i < d.n; i++) {
            a[10 + 2 * i] = (argpart){d.owner[i], strlen(d.owner[i])};
            a[11 + 2 * i] = (argpart){d.elem[i], strlen(d.elem[i])};
        }
        fail = set_args(t, a, nargs) != 0;
        free(iheap);
        free(enc);
        enc = NULL;
    } else {
        fail = 1;
    }
    free(enc);
    if (a != few)
        free(a);
    for (int i = 0; i < d.n; i++)
        free(d.elem[i]);
    free(d.elem);
    free(d.owner);
    if (sealed)
        free(sealed);
    else
        envelope_buf_free(&b);
    ex_task_release(x); /* its outcome is in the arguments now */
    if (fail) {
        wlog(WLOG_ERROR, "pool=%s task=%s: cannot build its completion record (%s)", t->wp->name,
             t->id, rc ? errbuf : "out of memory");
        task_settled(t, 0);
        return;
    }
    queue_completion(t);
}

/* ---- messages ---- */

/* The dead letter is stored: its failure is recorded as the task's outcome
 * (ok 0: the worker is closing; it is dead-lettered again by the next
 * delivery). */
static void on_dead_stored(dl_item *it, int ok, const char *rec, size_t len)
{
    wtask *t = (wtask *)((char *)it - offsetof(wtask, dead));
    if (!ok) {
        task_settled(t, 0);
        return;
    }
    if (t->reject) { /* never a task here: nothing is recorded for its id */
        if (t->wp->m)
            t->wp->m->rejected++;
        task_settled(t, 1);
        return;
    }
    /* rec: "COUNT FIRST LAST DEAD_AT\nHISTORY\nERROR" */
    const char *end = rec + len, *nl1 = memchr(rec, '\n', len);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    long count = strtol(rec, NULL, 10);
    char msg[700];
    snprintf(msg, sizeof msg, "dead-lettered after %ld deliver%s: %.*s", count,
             count == 1 ? "y" : "ies", nl2 ? (int)(end - nl2 - 1) : 22,
             nl2 ? nl2 + 1 : "no outcome was recorded");
    wlog(WLOG_WARN, "pool=%s task=%s: %s; not run again (topic %s, `mutirao dlq list %s`)",
         t->wp->name, t->id, msg, t->w->cfg->topic_dead, t->wp->name);
    record_failure(t, msg, 1);
}

static void run_task(wtask *t);
static void ref_fetch(wtask *t);
static void pump(wpool *p);

#define BUSY_REASK_MS 1000

/* A task that ran on another live worker: back in its pool's queue, to be
 * asked again (unless the worker stops meanwhile: it then runs elsewhere). */
static void on_reask(uv_timer_t *h)
{
    wtask *t = h->data;
    if (t->w->stopping || t->w->closed) {
        task_settled(t, 0);
        return;
    }
    wpool *p = t->wp;
    t->qnext = NULL;
    if (p->qtail)
        p->qtail->qnext = t;
    else
        p->qhead = t;
    p->qtail = t;
    pump(p);
}

/* What the task's delivery record says (deliveries.h). */
static void on_asked(dlv_ask *a, int64_t answer)
{
    wtask *t = (wtask *)((char *)a - offsetof(wtask, ask));
    worker *w = t->w;
    if (answer <= 0)
        slot_free(t); /* it does not run here */
    if (answer == DLV_CLOSED) {
        task_settled(t, 0); /* it runs again after a restart */
        return;
    }
    if (answer == DLV_DONE) {
        wlog(WLOG_INFO,
             "pool=%s task=%s attempt %u: outcome already recorded (delivered again); not run "
             "again",
             t->wp->name, t->id, t->attempt);
        task_settled(t, 1);
        return;
    }
    if (answer < 0) {
        t->dead.id = t->id;
        t->dead.pool = t->wp->name;
        t->dead.env = t->env;
        t->dead.envlen = t->envlen;
        t->dead.done = on_dead_stored;
        deadletters_put(w->dl, &t->dead);
        return;
    }
    if (answer == DLV_ALONE) {
        wlog(WLOG_WARN,
             "pool=%s task=%s: workers ended %u time(s) while it ran; its last delivery runs "
             "alone on this worker once the tasks running here end",
             t->wp->name, t->id, t->ask.max - 1);
        t->qnext = NULL;
        if (w->alone_tail)
            w->alone_tail->qnext = t;
        else
            w->alone_head = t;
        w->alone_tail = t;
        slot_free(t); /* starts it when nothing else runs */
        return;
    }
    if (answer == DLV_BUSY) {
        /* the partition moved here while the task runs on a live worker:
         * neither run nor count it; its outcome settles it here later */
        wlog(WLOG_INFO,
             "pool=%s task=%s: still running on another live worker; asked again in %d ms",
             t->wp->name, t->id, BUSY_REASK_MS);
        slot_free(t);
        uv_timer_start(&t->retry, on_reask, BUSY_REASK_MS, 0);
        return;
    }
    if (answer > 1)
        wlog(WLOG_INFO, "pool=%s task=%s: delivery %" PRId64 " of at most %u", t->wp->name, t->id,
             answer, t->ask.max);
    if (t->unrun) { /* a task this worker cannot take: its failure is recorded */
        wlog(WLOG_ERROR, "pool=%s task=%s: %s", t->wp->name, t->id, t->unrun);
        slot_free(t);
        record_failure(t, t->unrun, 0);
    } else if (t->ref_len)
        ref_fetch(t);
    else
        run_task(t);
}

/* The task's payload, read from Redis: checked against the envelope's
 * length and checksum, then run. Anything else fails the task, saying why. */
static void on_ref(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    wtask *t = ud;
    if (status == REDIS_UV_ECLOSED) {
        slot_free(t);
        task_settled(t, 0); /* closing: it runs again elsewhere */
        return;
    }
    char msg[300];
    msg[0] = 0;
    int rc;
    if (status < 0 || reply->type == REDIS_REPLY_ERROR)
        snprintf(msg, sizeof msg, "cannot read its arguments from Redis: %s",
                 status < 0 ? err : reply->str);
    else if ((rc = envelope_ref_verify("arguments", "envelope",
                                       reply->type == REDIS_REPLY_STRING ? reply->str : NULL,
                                       reply->type == REDIS_REPLY_STRING ? reply->len : 0,
                                       t->ref_len, t->ref_sum, msg, sizeof msg)) != 0) {
        if (rc == ENVELOPE_EMALFORMED) { /* other bytes than the envelope's */
            size_t n = strlen(msg);
            snprintf(msg + n, sizeof msg - n, ": not run");
        }
    } else if (!(t->ref = malloc(reply->len ? reply->len : 1)))
        snprintf(msg, sizeof msg, "out of memory for its arguments (%zu bytes)", reply->len);
    if (msg[0]) {
        wlog(WLOG_ERROR, "pool=%s task=%s: %s", t->wp->name, t->id, msg);
        slot_free(t);
        record_failure(t, msg, 0);
        return;
    }
    memcpy(t->ref, reply->str, reply->len);
    t->run.in = t->ref;
    t->run.inlen = reply->len;
    run_task(t);
}

static void ref_fetch(wtask *t)
{
    char key[FLEET_KEY_MAX];
    fleet_key_task_in(key, t->id);
    if (redis_uv_command(t->w->r, on_ref, t, "GET %s", key) != 0)
        on_ref(t->w->r, REDIS_UV_ECLOSED, NULL, "closed", t);
}

/* Hands the task to its pool's executor. */
static void run_task(wtask *t)
{
    t->started_ms = unix_ms();
    if (t->wp->m)
        t->start_ns = uv_hrtime();
    if (executor_submit(t->wp->ex, &t->run, t->w->s, -1, NULL) != EX_OK) {
        wlog(WLOG_ERROR, "pool=%s task=%s: out of memory", t->wp->name, t->id);
        free(t->in);
        t->in = NULL;
        slot_free(t);
        task_settled(t, 0);
    }
}

/* Asks the delivery records of the queued tasks that fit in the pool's
 * free slots; none while a task runs alone or waits to. */
static void pump(wpool *p)
{
    while (p->qhead && p->nstarted < p->cap) {
        wtask *t = p->qhead;
        if (t->w->alone || t->w->alone_head)
            return;
        p->qhead = t->qnext;
        if (!p->qhead)
            p->qtail = NULL;
        t->started = 1;
        p->nstarted++;
        deliveries_ask(t->w->dv, &t->ask);
    }
}

/* Once no task is started on the worker, starts the first task waiting to
 * run alone; with none waiting, asks for the queued tasks of every pool. */
static void run_alone_or_pump(worker *w)
{
    if (w->alone)
        return;
    if (w->alone_head) {
        for (wpool *p = w->pools; p; p = p->next)
            if (p->nstarted > 0)
                return; /* the last one to end comes back here */
        wtask *t = w->alone_head;
        w->alone_head = t->qnext;
        if (!w->alone_head)
            w->alone_tail = NULL;
        w->alone = t;
        t->started = 1;
        t->wp->nstarted++;
        t->ask.alone = 1;
        deliveries_ask(w->dv, &t->ask);
        return;
    }
    for (wpool *p = w->pools; p; p = p->next)
        pump(p);
}

/* The task no longer takes one of its pool's slots. */
static void slot_free(wtask *t)
{
    if (!t->started)
        return;
    t->started = 0;
    t->wp->nstarted--;
    worker *w = t->w;
    if (w->alone == t) {
        w->alone = NULL;
        t->ask.alone = 0;
    }
    if (w->alone || w->alone_head || t->wp->nstarted == 0)
        run_alone_or_pump(w);
    else
        pump(t->wp);
}

/* The partition moved to another worker, which runs its unfinished tasks:
 * those still queued here (not asked, not started) are given up rather than
 * run twice. */
static void drop_revoked(worker *w, const char *topic, int32_t partition)
{
    for (wpool *p = w->pools; p; p = p->next) {
        if (strcmp(p->topic, topic) != 0)
            continue;
        wtask **pp = &p->qhead, *prev = NULL, *dropped = NULL;
        while (*pp) {
            wtask *t = *pp;
            if (t->partition != partition) {
                prev = t;
                pp = &t->qnext;
                continue;
            }
            *pp = t->qnext;
            t->qnext = dropped;
            dropped = t;
        }
        p->qtail = prev;
        int n = 0;
        while (dropped) {
            wtask *t = dropped;
            dropped = t->qnext;
            task_settled(t, 0);
            n++;
        }
        if (n)
            wlog(WLOG_INFO, "pool=%s partition %d revoked: %d queued task(s) left to its new owner",
                 p->name, (int)partition, n);
    }
    /* and those of the partition waiting to run alone */
    wtask **pp = &w->alone_head, *prev = NULL;
    while (*pp) {
        wtask *t = *pp;
        if (t->partition != partition || strcmp(t->wp->topic, topic) != 0) {
            prev = t;
            pp = &t->qnext;
            continue;
        }
        *pp = t->qnext;
        task_settled(t, 0);
        if (!w->alone_head)
            run_alone_or_pump(w); /* none waits any more: the pools go on */
    }
    w->alone_tail = prev;
}

/* Gives up the tasks still queued (the worker stops): they run again.
 * Returns how many. */
static long drop_queued(worker *w)
{
    long n = 0;
    while (w->alone_head) {
        wtask *t = w->alone_head;
        w->alone_head = t->qnext;
        task_settled(t, 0);
        n++;
    }
    w->alone_tail = NULL;
    for (wpool *p = w->pools; p; p = p->next)
        while (p->qhead) {
            wtask *t = p->qhead;
            p->qhead = t->qnext;
            if (!p->qhead)
                p->qtail = NULL;
            task_settled(t, 0);
            n++;
        }
    return n;
}

/* Largest signed message checked: the inline payload and room for the
 * envelope's fields; a larger one is refused before any check. */
#define AUTH_SLACK 4096

/*
** The signature check, before anything else of the message is read: 0 with
** *env, *envlen the envelope to decode (inside m->value), or -1 with why
** the message is refused. Without trusted keys and with auth.required off,
** everything passes (a signed envelope is unwrapped unchecked).
*/
static int authenticate(worker *w, const kuv_message *m, const char **env, size_t *envlen,
                        char *why, size_t whylen)
{
    *env = m->value;
    *envlen = m->len;
    int is_signed = sign_is_signed(m->value, m->len);
    if (!w->auth_required && sign_trust_count(w->trust) == 0) {
        if (is_signed && sign_unwrap(m->value, m->len, env, envlen) != 0) {
            *env = m->value; /* too short: the decoder says what it is */
            *envlen = m->len;
        }
        return 0;
    }
    if (!is_signed && !w->auth_required)
        return 0; /* unsigned tasks allowed (auth.required = off) */
    size_t max = (size_t)w->cfg->payload_max_bytes + AUTH_SLACK;
    int rc = sign_verify(w->trust, m->value, m->len, max, env, envlen, NULL, why, whylen);
    if (rc == SIGN_EUNSIGNED)
        snprintf(why, whylen, "task envelope is not signed (auth.required is on)");
    return rc == 0 ? 0 : -1;
}

/*
** A message refused unrun (authenticate): nothing of it is decoded. It goes
** to the dead-letter topic and the pool's dead hashes with the reason, under
** an id of its own ("rejected-pPARTITION-oOFFSET": its envelope's task id
** is not to be believed), is counted in the pool's `unauthenticated`
** statistic, and its offset commits once that is stored.
*/
static void reject(worker *w, wpool *p, const kuv_message *m, const char *why)
{
    char claim[ENVELOPE_ID_MAX + 40] = "";
    if (m->key && m->keylen > 0 && envelope_check_id(m->key, m->keylen, NULL, 0) == 0)
        snprintf(claim, sizeof claim, " (its key names task %.*s)", (int)m->keylen,
                 (const char *)m->key);
    wtask **slot = running_slot(p, m->partition, m->offset);
    if (*slot)
        return; /* delivered again while its dead letter is being stored */
    wtask *t = calloc(1, sizeof *t);
    char *reason = malloc(strlen(why) + sizeof claim + 40);
    char *env = malloc(m->len ? m->len : 1);
    if (!t || !reason || !env) {
        free(t);
        free(reason);
        free(env);
        wlog(WLOG_ERROR, "pool=%s partition %d offset %" PRId64 ": out of memory", p->name,
             (int)m->partition, m->offset);
        return; /* not marked done: refused again after a restart */
    }
    sprintf(reason, "refused unrun: %s%s", why, claim);
    if (m->len)
        memcpy(env, m->value, m->len);
    t->w = w;
    t->wp = p;
    t->partition = m->partition;
    t->offset = m->offset;
    snprintf(t->id, sizeof t->id, "rejected-p%d-o%" PRId64, (int)m->partition, m->offset);
    t->reject = reason;
    t->in = env;
    t->env = env;
    t->envlen = m->len;
    uv_timer_init(w->s->loop, &t->retry);
    t->retry.data = t;
    *slot = t;
    p->inflight++;
    w->inflight++;
    p->received++;
    wlog(WLOG_WARN, "pool=%s partition %d offset %" PRId64 ": %s; not run, dead-lettered as %s",
         p->name, (int)m->partition, m->offset, reason, t->id);
    t->dead.id = t->id;
    t->dead.pool = p->name;
    t->dead.env = t->env;
    t->dead.envlen = t->envlen;
    t->dead.reason = t->reject;
    t->dead.done = on_dead_stored;
    deadletters_put(w->dl, &t->dead);
}

static void on_message(void *ud, const kuv_message *m)
{
    worker *w = ud;
    wpool *p = pool_for(w, m->topic);
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_payload = (size_t)w->cfg->payload_max_bytes;
    lim.max_ref = (size_t)w->cfg->payload_max_ref_bytes;
    envelope_task e;
    char why[200];
    if (!p) {
        wlog(WLOG_ERROR, "topic %s: cannot track its pool (out of memory)", m->topic);
        return; /* not marked done: it runs again after a restart */
    }
    if (w->stopping)
        return; /* fetched before the stop: not done, it runs elsewhere */
    int64_t stop;
    if (held_at(p, m->partition, &stop) && m->offset >= stop)
        return; /* behind a message this worker cannot read: left as it is */
    const char *ev = m->value;
    size_t evlen = m->len;
    if (authenticate(w, m, &ev, &evlen, why, sizeof why) != 0) {
        reject(w, p, m, why);
        return;
    }
    int rc =
        m->value ? envelope_task_decode(ev, evlen, &lim, &e, why, sizeof why) : ENVELOPE_ETRUNCATED;
    char unrun[300] = "";
    if (rc == ENVELOPE_ETOOBIG) {
        /* a task over this worker's payload limits (its producer's are
         * larger): it fails, saying so, rather than wait forever unrecorded */
        envelope_limits any = lim;
        any.max_payload = evlen;
        any.max_ref = SIZE_MAX;
        char why2[200];
        if (envelope_task_decode(ev, evlen, &any, &e, why2, sizeof why2) == 0) {
            snprintf(unrun, sizeof unrun,
                     "not run: %s (this worker's payload.max_bytes / payload.max_ref_bytes; its "
                     "producer's are larger)",
                     why);
            rc = 0;
        }
    }
    if (rc == ENVELOPE_ENEWER) {
        hold_partition(w, p, m, why);
        return;
    }
    if (rc != 0) {
        wlog(WLOG_ERROR, "pool=%s partition %d offset %" PRId64 ": not a task (%s); skipped",
             p->name, (int)m->partition, m->offset, m->value ? why : "empty message");
        kuv_done(w->c, m->topic, m->partition, m->offset);
        return;
    }
    if (strcmp(e.pool, p->name) != 0 && (w->auth_required || sign_trust_count(w->trust) > 0)) {
        /* its signature covers the pool it was made for, not the topic */
        char r[2 * ENVELOPE_POOL_MAX + 100];
        snprintf(r, sizeof r, "task envelope of pool %s delivered on the topic of pool %s", e.pool,
                 p->name);
        reject(w, p, m, r);
        return;
    }
    wlog(WLOG_DEBUG, "pool=%s task=%s attempt %u received %" PRIu64 " ms after its submit", p->name,
         e.id, e.attempt, unix_ms() - e.submitted_at_ms);
    wtask **slot = running_slot(p, m->partition, m->offset);
    if (*slot) {
        /* handed out again after a rebalance gave this worker the partition
         * back while the task still runs here: its completion marks this
         * offset done, so it is not run twice */
        wlog(WLOG_INFO, "pool=%s task=%s: delivered again while running here; not run twice",
             p->name, e.id);
        return;
    }
    wtask *t = calloc(1, sizeof *t);
    if (!t) {
        wlog(WLOG_ERROR, "pool=%s task=%s: out of memory", p->name, e.id);
        return;
    }
    t->w = w;
    t->wp = p;
    t->partition = m->partition;
    t->offset = m->offset;
    t->attempt = e.attempt;
    t->max_deliveries = e.max_deliveries;
    t->ref_len = e.ref_len;
    t->ref_sum = e.ref_sum;
    t->retry_ms = RETRY_MIN_MS;
    if (unrun[0] && !(t->unrun = strdup(unrun))) {
        free(t);
        wlog(WLOG_ERROR, "pool=%s task=%s: out of memory", p->name, e.id);
        return;
    }
    memcpy(t->id, e.id, sizeof t->id);
    memcpy(t->producer, e.producer, sizeof t->producer);
    uv_timer_init(w->s->loop, &t->retry);
    t->retry.data = t;
    *slot = t;
    p->inflight++;
    w->inflight++;
    p->received++;
    /* the envelope is kept (a dead letter is made of it); the task's bytes
     * are its payload */
    if (m->len <= sizeof t->run.buf) {
        memcpy(t->run.buf, m->value, m->len);
        t->env = t->run.buf;
    } else if ((t->in = malloc(m->len))) {
        memcpy(t->in, m->value, m->len);
        t->env = t->in;
    }
    t->envlen = m->len;
    fleet_task_wgs_init(&t->wgs);
    t->run.in = t->env ? t->env + (e.payload - (const char *)m->value) : NULL;
    t->run.inlen = e.payload_len;
    t->run.id = t->id;
    t->run.pool = p->name;
    t->run.done = on_task_done;
    t->run.ended = on_task_ended;
    t->run.decode_ctx = &t->wgs.tc;
    /* its limits travel in the envelope: no Redis read here */
    t->run.deadline_ms = e.deadline_ms;
    t->run.submitted_ms = e.submitted_at_ms;
    t->run.timeout_ms = e.timeout_ms;
    t->run.memory = e.memory && e.memory <= SIZE_MAX ? (size_t)e.memory : EX_MEMORY_DEFAULT;
    t->run.allow = e.allow; /* the pool's narrowing of worker.allow (sandbox.h) */
    /* crafted bytecode escapes any Lua sandbox: functions come as source,
     * compiled here, unless the operator allows binary chunks */
    t->run.source_only = !sandbox_allows(e.allow, ALLOW_LOAD_BINARY);
    t->deadline_ms = e.deadline_ms;
    if (e.retries >= e.attempt && t->env && !t->unrun) {
        /* attempts left: the next one's envelope, made while e is valid */
        t->policy.retries = e.retries;
        t->policy.initial_ms = e.backoff_initial_ms;
        t->policy.max_ms = e.backoff_max_ms;
        t->policy.jitter = e.backoff_jitter > 1000 ? 1000 : e.backoff_jitter;
        e.attempt++;
        envelope_buf nb;
        envelope_buf_init(&nb, NULL, 0);
        char *sig = NULL;
        size_t siglen = 0;
        if (envelope_task_encode(&e, &lim, &nb, why, sizeof why) == 0 &&
            (!w->key || sign_wrap(w->key, nb.data, nb.len, &sig, &siglen, why, sizeof why) == 0)) {
            /* signed by this worker's key when it has one */
            if (sig) {
                t->next_env = sig;
                t->next_envlen = siglen;
            } else if ((t->next_env = malloc(nb.len)) != NULL) {
                memcpy(t->next_env, nb.data, nb.len);
                t->next_envlen = nb.len;
            }
        }
        if (!t->next_env) {
            wlog(WLOG_WARN,
                 "pool=%s task=%s: its next attempt cannot be prepared (%s); a "
                 "failure is its outcome",
                 p->name, e.id, t->next_env ? why : "out of memory");
        }
        envelope_buf_free(&nb);
    }
    if (!t->env) {
        wlog(WLOG_ERROR, "pool=%s task=%s: out of memory", p->name, e.id);
        task_settled(t, 0);
        return;
    }
    /* runs once a slot is free and its delivery record says so (on_asked) */
    t->ask.id = t->id;
    t->ask.max = e.max_deliveries ? e.max_deliveries : FLEET_MAX_DELIVERIES;
    t->ask.pool = p->name;
    t->ask.answer = on_asked;
    if (p->qtail)
        p->qtail->qnext = t;
    else
        p->qhead = t;
    p->qtail = t;
    pump(p);
    maybe_hold(w, p);
}

static void on_rebalance(void *ud, int assigned, const kuv_partition *parts, size_t n)
{
    worker *w = ud;
    if (n == 0)
        return;
    wlog(WLOG_INFO, "%s %zu partition(s), e.g. %s[%d]", assigned ? "assigned" : "revoked", n,
         parts[0].topic, (int)parts[0].partition);
    if (!assigned)
        for (size_t i = 0; i < n; i++) {
            unhold(w, parts[i].topic, parts[i].partition);
            drop_revoked(w, parts[i].topic, parts[i].partition);
        }
}

static void on_kafka_error(void *ud, int err, const char *msg)
{
    (void)ud;
    (void)err;
    /* at start, before any pool exists, the pattern matches nothing yet */
    wlog(strstr(msg, "Subscribed topic not available") ? WLOG_DEBUG : WLOG_WARN, "kafka: %s", msg);
}

/* ---- running counts for pool_stats ---- */

static void on_report(uv_timer_t *h)
{
    worker *w = h->data;
    char key[FLEET_KEY_MAX], val[48];
    for (wpool *p = w->pools; p; p = p->next) {
        int active, queued;
        executor_counts(p->ex, &active, &queued, NULL);
        wlog(WLOG_DEBUG,
             "pool=%s here: %d running, %d queued, %d not yet recorded%s, %d partition(s) "
             "held at a newer envelope; %llu received, %llu recorded",
             p->name, active, queued, p->inflight, p->holding ? " (fetching held)" : "", p->nheld,
             p->received, p->recorded);
        if (active == 0 && p->reported == 0)
            continue;
        snprintf(val, sizeof val, "%d %" PRIu64 " %s", active, unix_ms(), w->incarnation);
        fleet_key_active(key, p->name);
        redis_uv_command(w->r, NULL, NULL, "HSET %s %s %s", key, w->cfg->worker_id, val);
        redis_uv_command(w->r, NULL, NULL, "EXPIRE %s %d", key, FLEET_POOL_IDLE_TTL_S);
        p->reported = active;
    }
}

/* ---- the pools' options ---- */

typedef struct cap_req {
    worker *w;
    char name[ENVELOPE_POOL_MAX + 1];
} cap_req;

static void on_cap(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    (void)err;
    cap_req *q = ud;
    if (status == 0 && reply && reply->type == REDIS_REPLY_STRING && !q->w->closed) {
        long v = strtol(reply->str, NULL, 10);
        for (wpool *p = q->w->pools; p; p = p->next) {
            if (v > 0 && v <= 1000000 && !strcmp(p->name, q->name) && p->cap != (int)v) {
                p->cap = (int)v;
                executor_set_limit(p->ex, p->cap);
                pump(p);
                maybe_release(q->w, p);
            }
        }
    }
    free(q);
}

/* Reads the pool's `workers` option, recorded by pool_create. */
static void fetch_cap(worker *w, wpool *p)
{
    char key[FLEET_KEY_MAX];
    cap_req *q = malloc(sizeof *q);
    if (!q)
        return;
    q->w = w;
    memcpy(q->name, p->name, sizeof q->name);
    fleet_key_pool(key, p->name);
    if (redis_uv_command(w->r, on_cap, q, "HGET %s workers", key) != 0)
        free(q);
}

/* The worker's registry entry (registry.h): its pools' running tasks, slots
 * and outcomes over the last minute, with their durations. */
static void registry_report(worker *w)
{
    registry_pool few[16], *ps = few;
    int n = 0;
    for (wpool *p = w->pools; p; p = p->next)
        n++;
    if (n > 16 && !(ps = malloc((size_t)n * sizeof *ps)))
        return;
    uint64_t now = unix_ms(), b = now / 1000 / RATE_BUCKET_S;
    int i = 0;
    for (wpool *p = w->pools; p; p = p->next, i++) {
        int active, queued;
        executor_counts(p->ex, &active, &queued, NULL);
        ps[i] = (registry_pool){p->name, active, p->cap, 0, {0}};
        for (int j = 0; j < RATE_BUCKETS; j++)
            if (p->rate_at[j] + RATE_BUCKETS > b) {
                ps[i].last_minute += p->rate_n[j];
                for (int k = 0; k < FLEET_DUR_BUCKETS; k++)
                    ps[i].dur[k] += p->dur_n[j][k];
            }
    }
    int rc = registry_write(w->r, w->cfg, ps, n, procs_count(), w->started_ms, now);
    if (rc != 0)
        wlog(WLOG_DEBUG, "registry: %s", redis_uv_strerror(rc));
    if (ps != few)
        free(ps);
}

/* Every 5 s, re-reads the known pools' options (pool_create may run after
 * the first task arrived, or again with other options). */
static void on_rtt(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    (void)err;
    worker *w = ud;
    if (status == REDIS_UV_ECLOSED)
        return; /* the worker is closing */
    if (status == 0 && reply && reply->type == REDIS_REPLY_STATUS && w->m)
        metrics_observe_redis_rtt(w->m, uv_hrtime() - w->ping_ns);
    w->ping_ns = 0;
}

/* With metrics: a PING a second, its round trip timed (one at a time). */
static void rtt_ping(worker *w)
{
    if (!w->m || w->ping_ns || w->closed)
        return;
    w->ping_ns = uv_hrtime();
    if (redis_uv_command(w->r, on_rtt, w, "PING") != 0)
        w->ping_ns = 0;
}

static void on_report_tick(uv_timer_t *h)
{
    worker *w = h->data;
    on_report(h);
    if (w->ticks % (FLEET_WORKER_REPORT_MS / REPORT_MS) == 0)
        registry_report(w);
    rtt_ping(w);
    if (++w->ticks % 5 == 0)
        for (wpool *p = w->pools; p; p = p->next)
            fetch_cap(w, p);
}

/* ---- start / stop ---- */

static void ping(worker *w);

static void on_ping_timer(uv_timer_t *h)
{
    ping(h->data);
}

static void on_ping(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    worker *w = ud;
    if (w->closed || w->subscribed || status == REDIS_UV_ECLOSED)
        return;
    if (status < 0 || reply->type == REDIS_REPLY_ERROR) {
        wlog(WLOG_WARN, "redis %s: %s; not taking tasks until it answers", redis_uv_endpoint(w->r),
             status < 0 ? err : reply->str);
        uv_timer_start(&w->ping_timer, on_ping_timer, 2000, 0);
        return;
    }
    int rc = kuv_subscribe(w->c, (const char *const *)w->pats, w->npats);
    if (rc != 0) {
        wlog(WLOG_ERROR, "cannot subscribe: %s; retrying", kuv_strerror(rc));
        uv_timer_start(&w->ping_timer, on_ping_timer, 2000, 0);
        return;
    }
    w->subscribed = 1;
    wlog(WLOG_INFO, "redis %s answers; consuming", redis_uv_endpoint(w->r));
}

static void ping(worker *w)
{
    if (redis_uv_command(w->r, on_ping, w, "PING") != 0)
        uv_timer_start(&w->ping_timer, on_ping_timer, 2000, 0);
}

static void auth_free(worker *w)
{
    sign_trust_free(w->trust);
    sign_key_free(w->key);
    w->trust = NULL;
    w->key = NULL;
}

/* Loads the auth.* keys and says plainly what this worker will run. */
static int auth_start(worker *w, char *err, size_t errlen)
{
    const config *cfg = w->cfg;
    char kerr[600];
    if (cfg->auth_trusted_keys[0] &&
        sign_trust_load(cfg->auth_trusted_keys, &w->trust, kerr, sizeof kerr) != 0) {
        snprintf(err, errlen, "auth.trusted_keys: %s", kerr);
        return -1;
    }
    if (cfg->auth_signing_key[0] &&
        sign_key_load(cfg->auth_signing_key, &w->key, kerr, sizeof kerr) != 0) {
        snprintf(err, errlen, "auth.signing_key: %s", kerr);
        auth_free(w);
        return -1;
    }
    w->auth_required = config_auth_required(cfg);
    struct stat st;
    if (w->key && stat(cfg->auth_signing_key, &st) == 0 && (st.st_mode & 077))
        wlog(WLOG_WARN,
             "auth.signing_key %s can be read by other users (mode %03o): whoever reads it "
             "can sign tasks for this fleet; chmod 600 it",
             cfg->auth_signing_key, (unsigned)(st.st_mode & 0777));
    size_t n = sign_trust_count(w->trust);
    if (n == 0 && !w->auth_required)
        wlog(WLOG_WARN, "auth.trusted_keys is not set: this worker runs UNAUTHENTICATED code, "
                        "the Lua of every message on its pool topics, from whoever can write "
                        "to them; set auth.trusted_keys (keys from `mutirao keygen`) unless this "
                        "is a local development fleet");
    else if (n == 0)
        wlog(WLOG_WARN, "auth.required is on and auth.trusted_keys is not set: every task "
                        "envelope is refused");
    else
        wlog(WLOG_INFO, "auth: %zu trusted key(s); %s", n,
             w->auth_required ? "unsigned task envelopes are refused"
                              : "auth.required is off: unsigned task envelopes run too");
    if (n > 0 && !w->key)
        wlog(WLOG_WARN, "auth.signing_key is not set: the retries this worker produces go "
                        "unsigned (workers requiring signatures refuse them)");
    return 0;
}

/* ---- scrape-time figures (metrics.h) ---- */

static void gauges_hook(void *ud, metrics *m)
{
    (void)m;
    worker *w = ud;
    for (wpool *p = w->pools; p; p = p->next)
        if (p->m) {
            int active = 0, queued = 0;
            executor_counts(p->ex, &active, &queued, NULL);
            p->m->running = active;
            p->m->slots = p->cap;
        }
}

static void put_lag(void *ud, const char *topic, int32_t partition, int64_t lag)
{
    worker *w = ud;
    for (wpool *p = w->pools; p; p = p->next)
        if (!strcmp(p->topic, topic)) {
            metrics_put_lag(w->m, p->name, partition, lag);
            return;
        }
}

static void lag_hook(void *ud, metrics *m)
{
    (void)m;
    worker *w = ud;
    if (w->c && !w->closed)
        kuv_consumer_lag(w->c, put_lag, w);
}

worker *worker_start(sched *s, const config *cfg, metrics *m, char *err, size_t errlen)
{
    worker *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->s = s;
    w->cfg = cfg;
    w->m = m;
    w->prefix_len = strlen(cfg->topic_prefix);
    if (auth_start(w, err, errlen) != 0) {
        auth_free(w);
        free(w);
        return NULL;
    }
    redis_uv_options ro = {0};
    ro.op_timeout_ms = cfg->op_timeout_ms > 0 ? (unsigned)cfg->op_timeout_ms : 10000;
    ro.connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? (unsigned)cfg->connect_timeout_ms : 1; /* 0: fail at once */
    char *rpw = NULL, rerr[300];        /* redis.password_file's; TLS files */
    fleet_keys_use_url(cfg->redis_url); /* the key layout: tagged on a cluster */
    int rc = fleet_redis_security(cfg, &ro, &rpw, rerr, sizeof rerr);
    if (rc == 0)
        rc = redis_uv_open(s->loop, cfg->redis_url, &ro, &w->r);
    if (rc != 0) {
        snprintf(err, errlen, "redis.url: %s", rerr[0] ? rerr : redis_uv_strerror(rc));
        fleet_redis_security_done(&ro, rpw);
        auth_free(w);
        free(w);
        return NULL;
    }
    w->complete_script = redis_uv_script(w->r, FLEET_COMPLETE_LUA, strlen(FLEET_COMPLETE_LUA));
    w->notify_script = outbox_script(w->r);
    /* a restarted worker with the same id is another process: its
     * deliveries are told apart from the ones of the one that died */
    uint32_t rnd[2] = {(uint32_t)uv_hrtime(), (uint32_t)(uv_hrtime() >> 32)};
    uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL); /* (the clock if that fails) */
    snprintf(w->incarnation, sizeof w->incarnation, "%08x%08x", (unsigned)rnd[0], (unsigned)rnd[1]);
    snprintf(w->tag, sizeof w->tag, "%s#%s", cfg->worker_id, w->incarnation);
    w->dv = deliveries_new(s->loop, &ro, cfg, w->tag);
    fleet_redis_security_done(&ro, rpw);
    w->dl = deadletters_new(s->loop, w->r, cfg);
    w->rq = retries_new(s->loop, w->r, cfg);
    if (!w->dv || !w->dl || !w->rq || config_check_dead_topic(cfg, err, errlen) != 0) {
        if (!w->dv || !w->dl || !w->rq)
            snprintf(err, errlen, "out of memory");
        if (w->rq)
            retries_close(w->rq);
        if (w->dv)
            deliveries_close(w->dv);
        if (w->dl)
            deadletters_close(w->dl);
        redis_uv_close(w->r, NULL, NULL);
        auth_free(w);
        free(w);
        return NULL;
    }
    kuv_consumer_opts o;
    kuv_consumer_opts_default(&o);
    o.session_timeout_ms = cfg->kafka_session_timeout_ms;
    /* the other members learn from a heartbeat that one left (or joined):
     * every HEARTBEAT_MS (at most a third of the session), so a stopped
     * worker's partitions move within about that */
    int hb = cfg->kafka_session_timeout_ms / 3;
    o.heartbeat_interval_ms = hb < HEARTBEAT_MS ? hb : HEARTBEAT_MS;
    o.error_cb = on_kafka_error;
    /* fetch.wait.max.ms: how long the broker holds a fetch request that
     * finds nothing new. A partition that becomes fetchable meanwhile
     * (newly assigned, or its queue drained below the bound kuv_hold keeps
     * fetched ahead) joins only the next request to its broker: keep the
     * broker's long poll short.
     * fetch.min.bytes stays 1: a fetch answers as soon as one task is
     * there, which at 1,000 tasks/s open loop is one fetch per task (0.96,
     * counted by the broker). Holding fetches for more (fetch.min.bytes
     * 100000, measured interleaved with this setting, 2026-12-06,
     * bench/RESULTS.md): fetch.wait.max.ms 1 made it 0.65 fetches per task
     * but the broker dearer (345 -> 369 us per task: a fetch that expires
     * costs it more than one a produce completes) and p50 +0.7 ms; 2 ms made
     * 0.38 per task, the broker 374 -> 334 and the worker 231 -> 146 us per
     * task, but p50 1.6 -> 3.3 ms. kafka.property.fetch.min.bytes and
     * kafka.property.fetch.wait.max.ms choose that trade instead. */
    /* MUTIRAO_KAFKA_DEBUG: librdkafka debug contexts (e.g. "fetch,consumer"), for diagnosis */
    const char *dbg = getenv("MUTIRAO_KAFKA_DEBUG");
    /* cooperative-sticky: a worker joining or leaving moves only the
     * partitions that change hands; the others keep running undisturbed */
    /* librdkafka's own log lines repeat what error_cb reports: critical only,
     * unless debugging */
    const char *base[] = {
        "fetch.wait.max.ms",          "20",        "partition.assignment.strategy",
        "cooperative-sticky",         "log_level", dbg && *dbg ? "7" : "2",
        dbg && *dbg ? "debug" : NULL, dbg,         NULL};
    char **conf = NULL; /* + TLS, SASL, kafka.property */
    rc = config_kafka_conf(cfg, base, &conf, err, errlen);
    o.conf = (const char *const *)conf;
    o.errbuf = err;
    o.errlen = errlen;
    if (rc == 0)
        w->c = kuv_consumer_new(s->loop, cfg->kafka_brokers, cfg->worker_group, &o, on_message,
                                on_rebalance, w, &rc);
    config_kafka_conf_free(conf);
    if (!w->c) {
        deliveries_close(w->dv);
        deadletters_close(w->dl);
        retries_close(w->rq);
        redis_uv_close(w->r, NULL, NULL);
        auth_free(w);
        free(w);
        return NULL;
    }
    /* every pool (a regex over the prefix), or the named ones */
    char **pats = NULL;
    size_t np = cfg->worker_npools ? cfg->worker_npools : 1;
    pats = calloc(np, sizeof *pats);
    rc = pats ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < np; i++) {
        char buf[2 * CONFIG_TOPIC_MAX + 8];
        if (cfg->worker_npools) {
            config_topic_for_pool(cfg, cfg->worker_pools[i], buf, sizeof buf, NULL, 0);
        } else {
            size_t k = 0;
            buf[k++] = '^';
            for (const char *c = cfg->topic_prefix; *c; c++) {
                if (*c == '.')
                    buf[k++] = '\\';
                buf[k++] = *c;
            }
            memcpy(buf + k, ".+", 3);
        }
        if (!(pats[i] = strdup(buf)))
            rc = -1;
    }
    if (rc != 0) {
        for (size_t i = 0; pats && i < np; i++)
            free(pats[i]);
        free(pats);
        snprintf(err, errlen, "out of memory");
        kuv_consumer_close(w->c);
        deliveries_close(w->dv);
        deadletters_close(w->dl);
        retries_close(w->rq);
        redis_uv_close(w->r, NULL, NULL);
        auth_free(w);
        free(w);
        return NULL;
    }
    /* subscribed once Redis answers: tasks taken before could not be recorded */
    w->pats = pats;
    w->npats = np;
    uv_timer_init(s->loop, &w->ping_timer);
    w->ping_timer.data = w;
    ping(w);
    w->started_ms = unix_ms();
    uv_timer_init(s->loop, &w->report);
    w->report.data = w;
    uv_timer_start(&w->report, on_report_tick, REPORT_MS, REPORT_MS);
    uv_timer_init(s->loop, &w->drain);
    w->drain.data = w;
    uv_timer_init(s->loop, &w->leave);
    w->leave.data = w;
    uv_check_init(s->loop, &w->flush);
    w->flush.data = w;
    uv_check_start(&w->flush, on_flush);
    if (m) {
        metrics_hooks hk = {gauges_hook, lag_hook, w};
        metrics_set_hooks(m, &hk);
    }
    return w;
}

static void on_worker_closed(uv_handle_t *h)
{
    worker *w = h->data;
    if (--w->nclosing > 0) /* the last of its handles frees it (any order) */
        return;
    void (*done)(void *) = w->done;
    void *ud = w->done_ud;
    if (w->inflight > 0) { /* tasks still running hold w: the process is exiting */
        if (done)
            done(ud);
        return;
    }
    while (w->pools) {
        wpool *p = w->pools;
        w->pools = p->next;
        executor_unref(p->ex);
        free(p->held);
        free(p);
    }
    free(w->pend);
    for (size_t i = 0; i < w->npats; i++)
        free(w->pats[i]);
    free(w->pats);
    auth_free(w);
    free(w);
    if (done)
        done(ud);
}

/* ---- the stop ----
 *
 * worker_stop: fetch nothing more (pause), give the tasks not started back
 * (taken out of the pools' queues and executors unrun; their offsets stay
 * uncommitted, so they run on the workers that get the partitions; tasks
 * already asking their delivery record count as running), then leave the
 * group as soon as the completion calls already sent have their answers
 * (their offsets commit first): kuv_consumer_close commits the finished
 * prefixes and leaves, so the partitions move now. The running tasks
 * finish meanwhile (up to the drain timeout) and are recorded; their
 * offsets are no longer this worker's to commit, so they may be delivered
 * again elsewhere: the delivery record or the completion script sees that
 * their outcome is recorded, so it is recorded and counted once. */

#define LEAVE_WAIT_MS 500 /* at most this long for the answers before leaving */

static void leave_group(worker *w)
{
    if (w->left)
        return;
    w->left = 1;
    uv_timer_stop(&w->leave);
    if (!w->c)
        return;
    kuv_consumer_close(w->c);
    w->c = NULL;
    wlog(WLOG_INFO, "left the group; %ld task(s) still running here", w->inflight);
}

static void call_answered(worker *w)
{
    if (--w->calls == 0 && w->stopping)
        leave_group(w);
}

static void on_leave_timeout(uv_timer_t *h)
{
    leave_group(h->data);
}

static void leave_when_answered(worker *w)
{
    if (w->calls == 0)
        leave_group(w);
    else
        uv_timer_start(&w->leave, on_leave_timeout, LEAVE_WAIT_MS, 0);
}

/* Gives back the tasks not started: those waiting in the pools' queues for
 * a slot (drop_queued) and any queued in the executors (a pool whose
 * `workers` went down): none runs here, none is recorded or marked done.
 * Returns how many. */
static long give_back(worker *w)
{
    long total = drop_queued(w);
    for (wpool *p = w->pools; p; p = p->next) {
        int n = 0;
        ex_task *x = executor_take_queued(p->ex, &n);
        while (x) {
            ex_task *next = x->next;
            wtask *t = (wtask *)((char *)x - offsetof(wtask, run));
            slot_free(t);
            task_settled(t, 0);
            x = next;
        }
        total += n;
    }
    return total;
}

static void finish_stop(worker *w)
{
    if (w->closed)
        return;
    w->closed = 1;
    if (w->m)
        metrics_set_hooks(w->m, NULL); /* its pools go: their gauges stay as last read */
    uv_timer_stop(&w->drain);
    on_report(&w->report); /* running counts to 0 */
    registry_remove(w->r, w->cfg);
    flush_completions(w);
    leave_group(w);
    /* tasks still waiting for their delivery record or their dead letter
     * are given up (they are delivered again) */
    drop_queued(w);
    deliveries_close(w->dv);
    deadletters_close(w->dl);
    retries_close(w->rq);
    redis_uv_close(w->r, NULL, NULL);
    w->nclosing = 5;
    uv_close((uv_handle_t *)&w->leave, on_worker_closed);
    uv_close((uv_handle_t *)&w->ping_timer, on_worker_closed);
    uv_close((uv_handle_t *)&w->report, on_worker_closed);
    uv_close((uv_handle_t *)&w->flush, on_worker_closed);
    uv_close((uv_handle_t *)&w->drain, on_worker_closed);
}

static void maybe_finish_stop(worker *w)
{
    if (w->stopping && w->inflight == 0)
        finish_stop(w);
}

static void on_drain_timeout(uv_timer_t *h)
{
    worker *w = h->data;
    wlog(WLOG_WARN, "stopping with %ld task(s) unfinished: they will run again elsewhere",
         w->inflight);
    finish_stop(w);
}

void worker_stop(worker *w, int drain_ms, void (*done)(void *ud), void *ud)
{
    if (w->stopping)
        return;
    flush_completions(w); /* sent before the stop: answered before leaving */
    w->stopping = 1;
    w->done = done;
    w->done_ud = ud;
    if (w->c)
        kuv_pause(w->c, NULL, 0);
    long back = give_back(w);
    wlog(WLOG_INFO, "stopping: gave back %ld queued task(s); %ld running or being recorded", back,
         w->inflight);
    if (w->inflight == 0) {
        finish_stop(w);
        return;
    }
    uv_timer_start(&w->drain, on_drain_timeout, (uint64_t)drain_ms, 0);
    leave_when_answered(w);
}
