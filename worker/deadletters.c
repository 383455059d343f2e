/* deadletters.c: dead letters to the dead-letter topic and Redis (see
 * deadletters.h). */
#include "deadletters.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fleet_keys.h"
#include "kafka_uv.h"
#include "wlog.h"

#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000

struct deadletters {
    uv_loop_t *loop;
    redis_uv *r;
    const config *cfg;
    kuv_producer *kp; /* from the first dead letter on */
    int script;
    int topic;      /* 0: not ensured, 1: being ensured, 2: there */
    dl_item *items; /* not done yet */
    uv_timer_t retry;
    unsigned retry_ms;
    int closed, refs; /* refs: the struct, the timer, each call in flight */
};

/* A call in flight for one item (a produce, a script call, the ensure):
 * it outlives a close, which clears it. */
typedef struct dl_op {
    deadletters *d;
    dl_item *it; /* NULL for the topic's ensure, or after a close */
} dl_op;

static void unref(deadletters *d)
{
    if (--d->refs == 0)
        free(d);
}

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static void step(deadletters *d, dl_item *it);

static void on_retry(uv_timer_t *h)
{
    deadletters *d = h->data;
    for (dl_item *it = d->items; it; it = it->next)
        if (!it->busy)
            step(d, it);
}

static void later(deadletters *d, dl_item *it, const char *what, const char *why)
{
    it->busy = 0;
    wlog(WLOG_WARN, "pool=%s task=%s: cannot dead-letter it yet (%s: %s); trying again in %u ms",
         it->pool, it->id, what, why, d->retry_ms);
    if (!uv_is_active((uv_handle_t *)&d->retry)) {
        uv_timer_start(&d->retry, on_retry, d->retry_ms, 0);
        d->retry_ms = d->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : d->retry_ms * 2;
    }
}

static void finish(deadletters *d, dl_item *it, int ok, const char *rec, size_t len)
{
    for (dl_item **pp = &d->items; *pp; pp = &(*pp)->next)
        if (*pp == it) {
            *pp = it->next;
            break;
        }
    it->busy = 0;
    it->done(it, ok, rec, len);
}

static dl_op *op_new(deadletters *d, dl_item *it)
{
    dl_op *op = malloc(sizeof *op);
    if (!op)
        return NULL;
    op->d = d;
    op->it = it;
    d->refs++;
    return op;
}

/* The call is over: 1 when its item is still ours to continue. */
static int op_end(dl_op *op, deadletters **dp, dl_item **itp)
{
    deadletters *d = op->d;
    dl_item *it = op->it;
    free(op);
    *dp = d;
    *itp = it;
    int live = !d->closed && it;
    unref(d);
    return live;
}

static void on_stored(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    deadletters *d;
    dl_item *it;
    if (!op_end(ud, &d, &it))
        return;
    if (status == 0 && reply && reply->type == REDIS_REPLY_STRING) {
        d->retry_ms = RETRY_MIN_MS;
        finish(d, it, 1, reply->str, reply->len);
        return;
    }
    const char *why = err;
    if (status == 0)
        why = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    later(d, it, "redis", why ? why : "error");
}

/* The FLEET_DEAD_LUA call; rec, reclen: the task's delivery record as read
 * (tagged layout: ARGV[6]; NULL in the flat one, where the script reads
 * it). */
static void store_with(deadletters *d, dl_item *it, const char *rec, size_t reclen)
{
    char pre[FLEET_KEY_MAX], now[24];
    size_t prelen = fleet_prefix_pool(pre, it->pool); /* KEYS[1]: the pool's slot */
    snprintf(now, sizeof now, "%" PRIu64, unix_ms());
    const char *why = it->reason ? it->reason : "";
    const char *argv[] = {pre, now, it->id, it->pool, it->env, why, rec};
    size_t lens[] = {prelen,     strlen(now), strlen(it->id), strlen(it->pool),
                     it->envlen, strlen(why), reclen};
    dl_op *op = op_new(d, it);
    int rc = op ? redis_uv_eval(d->r, on_stored, op, d->script, 1, rec ? 7 : 6, argv, lens) : -1;
    if (rc != 0) {
        if (op) {
            free(op);
            unref(d);
        }
        later(d, it, "redis", rc == -1 ? "out of memory" : redis_uv_strerror(rc));
    }
}

/* The delivery record, read in the task's slot (tagged layout). */
static void on_record(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    deadletters *d;
    dl_item *it;
    if (!op_end(ud, &d, &it))
        return;
    if (status == 0 && reply->type == REDIS_REPLY_STRING)
        store_with(d, it, reply->str, reply->len);
    else if (status == 0 && reply->type == REDIS_REPLY_NIL)
        store_with(d, it, "", 0);
    else
        later(d, it, "redis",
              status != 0                        ? (err ? err : "error")
              : reply->type == REDIS_REPLY_ERROR ? reply->str
                                                 : "unexpected reply");
}

static void store(deadletters *d, dl_item *it)
{
    if (!fleet_keys_tagged()) {
        store_with(d, it, NULL, 0);
        return;
    }
    char key[FLEET_KEY_MAX];
    fleet_key_delivery(key, it->id);
    dl_op *op = op_new(d, it);
    int rc = op ? redis_uv_command(d->r, on_record, op, "GET %s", key) : -1;
    if (rc != 0) {
        if (op) {
            free(op);
            unref(d);
        }
        later(d, it, "redis", rc == -1 ? "out of memory" : redis_uv_strerror(rc));
    }
}

static void on_produced(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    deadletters *d;
    dl_item *it;
    if (!op_end(ud, &d, &it))
        return;
    if (err) {
        later(d, it, "kafka", errmsg ? errmsg : kuv_strerror(err));
        return;
    }
    wlog(WLOG_DEBUG, "pool=%s task=%s: dead letter at %s[%d] offset %" PRId64, it->pool, it->id,
         d->cfg->topic_dead, (int)partition, offset);
    store(d, it);
}

static void on_ensured(void *ud, int err, const char *errmsg)
{
    deadletters *d;
    dl_item *it;
    op_end(ud, &d, &it);
    if (d->closed)
        return;
    if (err) {
        d->topic = 0;
        for (dl_item *i = d->items; i; i = i->next)
            if (i->busy)
                later(d, i, "kafka", errmsg ? errmsg : kuv_strerror(err));
        return;
    }
    d->topic = 2;
    for (dl_item *i = d->items; i; i = i->next)
        if (i->busy) {
            i->busy = 0;
            step(d, i);
        }
}

/* The next step of it: the producer and the topic, the produce (then the
 * store, from its delivery report). */
static void step(deadletters *d, dl_item *it)
{
    it->busy = 1;
    if (!d->kp) {
        char err[300] = "";
        kuv_producer_opts o;
        kuv_producer_opts_default(&o);
        o.replication_factor = d->cfg->topic_replication;
        o.errbuf = err;
        o.errlen = sizeof err;
        o.weak = 1;
        char **conf = NULL; /* TLS, SASL, kafka.property */
        int rc = config_kafka_conf(d->cfg, NULL, &conf, err, sizeof err);
        if (rc != 0) {
            later(d, it, "kafka", err);
            return;
        }
        o.conf = (const char *const *)conf;
        d->kp = kuv_producer_new(d->loop, d->cfg->kafka_brokers, &o, &rc);
        config_kafka_conf_free(conf);
        if (!d->kp) {
            later(d, it, "kafka", err[0] ? err : kuv_strerror(rc));
            return;
        }
    }
    if (d->topic == 1)
        return; /* continued by on_ensured */
    if (d->topic == 0) {
        dl_op *op = op_new(d, NULL);
        int rc = op ? kuv_topic_ensure(d->kp, d->cfg->topic_dead, d->cfg->topic_partitions,
                                       on_ensured, op)
                    : KUV_ENOMEM;
        if (rc != 0) {
            if (op) {
                free(op);
                unref(d);
            }
            later(d, it, "kafka", kuv_strerror(rc));
            return;
        }
        d->topic = 1;
        return;
    }
    dl_op *op = op_new(d, it);
    int rc = op ? kuv_produce(d->kp, d->cfg->topic_dead, it->id, strlen(it->id), it->env,
                              it->envlen, on_produced, op)
                : KUV_ENOMEM;
    if (rc != 0) {
        if (op) {
            free(op);
            unref(d);
        }
        later(d, it, "kafka", kuv_strerror(rc));
    }
}

deadletters *deadletters_new(uv_loop_t *loop, redis_uv *r, const config *cfg)
{
    deadletters *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->r = r;
    d->cfg = cfg;
    d->retry_ms = RETRY_MIN_MS;
    d->script = redis_uv_script(r, FLEET_DEAD_LUA, strlen(FLEET_DEAD_LUA));
    uv_timer_init(loop, &d->retry);
    d->retry.data = d;
    d->refs = 2; /* the struct, the timer */
    return d;
}

void deadletters_put(deadletters *d, dl_item *it)
{
    it->next = d->items;
    it->busy = 0;
    d->items = it;
    step(d, it);
}

static void on_timer_closed(uv_handle_t *h)
{
    unref(h->data);
}

void deadletters_close(deadletters *d)
{
    if (d->closed)
        return;
    d->closed = 1;
    while (d->items)
        finish(d, d->items, 0, NULL, 0);
    uv_close((uv_handle_t *)&d->retry, on_timer_closed);
    if (d->kp)
        kuv_producer_close(d->kp, 2000); /* its reports fire: op_end sees closed */
    d->kp = NULL;
    unref(d);
}
