/* retries.c: the due retries, from the retry sets to the pools' topics
 * (see retries.h). */
#include "retries.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "envelope.h"
#include "fleet_keys.h"
#include "kafka_uv.h"
#include "retry.h"
#include "sign.h"
#include "wlog.h"

struct retries {
    uv_loop_t *loop;
    redis_uv *r;
    const config *cfg;
    kuv_producer *kp; /* from the first attempt due on */
    int script;
    int polling; /* a claim is in flight */
    uv_timer_t tick;
    int closed, refs; /* refs: the struct, the timer, each call in flight */
};

/* One claimed member on its way to Kafka, then out of the set. */
typedef struct rq_op {
    retries *q;
    size_t len;
    char member[]; /* "ID ENVELOPE" */
} rq_op;

static void unref(retries *q)
{
    if (--q->refs == 0)
        free(q);
}

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* The set a member "ID ENVELOPE" is in (key: FLEET_KEY_MAX bytes): signed
 * envelopes have their own. Its length. */
static size_t retries_key(char *key, const char *env, size_t len)
{
    return fleet_key_retries(key, sign_is_signed(env, len));
}

static void on_removed(redis_uv *cli, int status, const redisReply *reply, const char *err,
                       void *ud)
{
    (void)cli;
    (void)reply;
    rq_op *op = ud;
    if (status != 0)
        wlog(WLOG_WARN,
             "retries: cannot remove a produced retry (%s); it is produced again "
             "after its lease, and not run twice",
             err ? err : "error");
    retries *q = op->q;
    free(op);
    unref(q);
}

static void on_produced(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    rq_op *op = ud;
    retries *q = op->q;
    const char *sp = memchr(op->member, ' ', op->len);
    int idlen = sp ? (int)(sp - op->member) : 0;
    if (err || q->closed) {
        if (err)
            wlog(WLOG_WARN,
                 "retries: task %.*s: cannot produce its next attempt (%s); tried "
                 "again after its lease",
                 idlen, op->member, errmsg ? errmsg : kuv_strerror(err));
        free(op);
        unref(q);
        return;
    }
    wlog(WLOG_DEBUG, "retries: task %.*s: next attempt at partition %d offset %" PRId64, idlen,
         op->member, (int)partition, offset);
    char k[FLEET_KEY_MAX];
    size_t kl =
        retries_key(k, sp ? sp + 1 : op->member, sp ? op->len - (size_t)(sp + 1 - op->member) : 0);
    const char *argv[] = {"ZREM", k, op->member};
    size_t lens[] = {4, kl, op->len};
    if (redis_uv_command_argv(q->r, on_removed, op, 3, argv, lens) != 0) {
        free(op);
        unref(q);
    }
}

static int producer(retries *q)
{
    if (q->kp)
        return 0;
    char err[300] = "";
    kuv_producer_opts o;
    kuv_producer_opts_default(&o);
    o.replication_factor = q->cfg->topic_replication;
    o.errbuf = err;
    o.errlen = sizeof err;
    o.weak = 1;
    char **conf = NULL; /* TLS, SASL, kafka.property */
    int rc = config_kafka_conf(q->cfg, NULL, &conf, err, sizeof err);
    if (rc != 0) {
        wlog(WLOG_WARN, "retries: kafka: %s", err);
        return -1;
    }
    o.conf = (const char *const *)conf;
    q->kp = kuv_producer_new(q->loop, q->cfg->kafka_brokers, &o, &rc);
    config_kafka_conf_free(conf);
    if (!q->kp) {
        wlog(WLOG_WARN, "retries: kafka: %s", err[0] ? err : kuv_strerror(rc));
        return -1;
    }
    return 0;
}

/* Produces one claimed member's envelope to its pool's topic. */
static void send_one(retries *q, const char *m, size_t len)
{
    const char *sp = memchr(m, ' ', len);
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_payload = (size_t)q->cfg->payload_max_bytes;
    lim.max_ref = (size_t)q->cfg->payload_max_ref_bytes;
    envelope_task e;
    char why[200], topic[CONFIG_TOPIC_MAX + 1];
    /* a signed envelope goes as it is: its pool and id are read inside it,
     * unchecked (the worker that receives it checks the signature) */
    const char *env = sp ? sp + 1 : NULL;
    size_t envlen = sp ? len - (size_t)(sp + 1 - m) : 0;
    if (sp && sign_is_signed(env, envlen) && sign_unwrap(sp + 1, envlen, &env, &envlen) != 0)
        envlen = 0; /* too short: refused as not a task below */
    if (!sp || envelope_task_decode(env, envlen, &lim, &e, why, sizeof why) != 0 ||
        config_topic_for_pool(q->cfg, e.pool, topic, sizeof topic, why, sizeof why) != 0) {
        char k[FLEET_KEY_MAX];
        size_t kl = retries_key(k, sp ? sp + 1 : m, sp ? len - (size_t)(sp + 1 - m) : 0);
        wlog(WLOG_ERROR, "retries: a member of %s is not a task's next attempt (%s); removed", k,
             sp ? why : "no id");
        const char *argv[] = {"ZREM", k, m};
        size_t lens[] = {4, kl, len};
        redis_uv_command_argv(q->r, NULL, NULL, 3, argv, lens);
        return;
    }
    rq_op *op = malloc(sizeof *op + len);
    if (!op || producer(q) != 0) {
        free(op);
        return; /* claimed again after its lease */
    }
    op->q = q;
    op->len = len;
    memcpy(op->member, m, len);
    q->refs++;
    int rc = kuv_produce(q->kp, topic, e.id, strlen(e.id), sp + 1, len - (size_t)(sp + 1 - m),
                         on_produced, op);
    if (rc != 0) {
        wlog(WLOG_WARN, "retries: task %s: %s; tried again after its lease", e.id,
             kuv_strerror(rc));
        free(op);
        unref(q);
    }
}

static void poll_due(retries *q);

static void on_tick(uv_timer_t *h)
{
    poll_due(h->data);
}

static void rearm(retries *q)
{
    unsigned spread = RETRIES_POLL_MS / 2;
    unsigned ms = RETRIES_POLL_MS - spread / 2 + (retry_random() % (spread + 1));
    uv_timer_start(&q->tick, on_tick, ms, 0);
}

static void on_claimed(redis_uv *cli, int status, const redisReply *reply, const char *err,
                       void *ud)
{
    (void)cli;
    retries *q = ud;
    q->polling = 0;
    if (q->closed) {
        unref(q);
        return;
    }
    if (status == 0 && reply && reply->type == REDIS_REPLY_ARRAY) {
        if (reply->elements)
            wlog(WLOG_DEBUG, "retries: %zu attempt(s) due", reply->elements);
        for (size_t i = 0; i < reply->elements; i++)
            if (reply->element[i]->type == REDIS_REPLY_STRING)
                send_one(q, reply->element[i]->str, reply->element[i]->len);
    } else if (status != 0 || (reply && reply->type == REDIS_REPLY_ERROR)) {
        wlog(WLOG_DEBUG, "retries: poll failed (%s)",
             status != 0 ? (err ? err : "error") : reply->str);
    }
    /* a full batch: more may be due */
    if (status == 0 && reply && reply->type == REDIS_REPLY_ARRAY &&
        reply->elements >= FLEET_RETRY_CLAIM_MAX)
        uv_timer_start(&q->tick, on_tick, 0, 0);
    else
        rearm(q);
    unref(q);
}

static void poll_due(retries *q)
{
    if (q->closed || q->polling)
        return;
    char now[24], lease[16], max[16];
    snprintf(now, sizeof now, "%" PRIu64, unix_ms());
    snprintf(lease, sizeof lease, "%d", FLEET_RETRY_LEASE_MS);
    snprintf(max, sizeof max, "%d", FLEET_RETRY_CLAIM_MAX);
    char pre[FLEET_KEY_MAX]; /* KEYS[1]: the retry sets' slot */
    size_t prelen = fleet_prefix_retries(pre);
    const char *argv[] = {pre, now, lease, max};
    size_t lens[] = {prelen, strlen(now), strlen(lease), strlen(max)};
    q->refs++;
    q->polling = 1;
    if (redis_uv_eval(q->r, on_claimed, q, q->script, 1, 4, argv, lens) != 0) {
        q->polling = 0;
        unref(q);
        rearm(q);
    }
}

retries *retries_new(uv_loop_t *loop, redis_uv *r, const config *cfg)
{
    retries *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->loop = loop;
    q->r = r;
    q->cfg = cfg;
    q->script = redis_uv_script(r, FLEET_RETRY_CLAIM_LUA, strlen(FLEET_RETRY_CLAIM_LUA));
    uv_timer_init(loop, &q->tick);
    uv_unref((uv_handle_t *)&q->tick);
    q->tick.data = q;
    q->refs = 2; /* the struct, the timer */
    rearm(q);
    return q;
}

static void on_timer_closed(uv_handle_t *h)
{
    unref(h->data);
}

void retries_close(retries *q)
{
    if (q->closed)
        return;
    q->closed = 1;
    uv_close((uv_handle_t *)&q->tick, on_timer_closed);
    if (q->kp)
        kuv_producer_close(q->kp, 2000); /* its reports fire: on_produced sees closed */
    q->kp = NULL;
    unref(q);
}
