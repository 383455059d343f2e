/*
** kafka_uv.c: librdkafka on a libuv loop.
**
** Each client gets a non-blocking pipe. Its queues (the main queue; the
** consumer queue; the admin result queue) write one byte to the pipe when
** they go from empty to non-empty (rd_kafka_queue_io_event_enable). A
** uv_poll_t on the read end drains the pipe and serves the queues with zero
** timeouts: rd_kafka_poll fires delivery reports, errors and commit results;
** rd_kafka_consumer_poll returns messages and fires rebalances. Each wakeup
** serves a bounded amount; when more is left a uv_idle_t continues on the
** next loop iteration so other handles get their turn.
**
** The consumer hands messages out, tracks their offsets per partition
** (kafka_tracker.c) and commits the finished prefix asynchronously from a
** timer. A revoke commits what is committable, then forgets the partition.
** Closing a consumer uses rd_kafka_consumer_close_queue: the group is left
** while the loop keeps running; the client is destroyed once it reports
** closed. The handles are freed in libuv's close callbacks.
*/
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "kafka_tracker.h"
#include "kafka_uv.h"
#include "list.h"
#include "uv_closer.h"

/* Bounds of one wakeup: calls of rd_kafka_poll (each serves what is queued)
   and admin events. Messages are bounded by max_per_wakeup. */
#define KUV_POLL_ROUNDS 8
#define KUV_EVENTS_PER_WAKEUP 64

/* ---- errors ---- */

MERR_FUNCS(, kuv, KUV_ERRNO_MAP)

static void set_errbuf(char *buf, size_t len, const char *msg)
{
    if (buf && len > 0)
        snprintf(buf, len, "%s", msg);
}

/* A delivery or admin error code from librdkafka's. */
static int map_err(rd_kafka_resp_err_t e)
{
    switch (e) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return KUV_EQUEUEFULL;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return KUV_EMSGSIZE;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return KUV_ETIMEDOUT;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
        return KUV_ECANCELED;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS:
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR:
        return KUV_EINVAL;
    default:
        return KUV_EKAFKA;
    }
}

/* Kafka's topic name rule: 1-249 of [A-Za-z0-9._-], not "." or "..". */
static int valid_topic(const char *s)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n == 0 || n > 249 || !strcmp(s, ".") || !strcmp(s, ".."))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

/* ---- configuration ---- */

/* A property whose value is a secret: never shown (as config.c's
 * config_kafka_secret_property). */
static int conf_secret(const char *k)
{
    return strstr(k, "password") || strstr(k, "secret") || strstr(k, ".pem") ||
           strstr(k, "sasl.oauthbearer.config") || strstr(k, "ssl_key");
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *ebuf, size_t elen)
{
    char es[512];
    if (rd_kafka_conf_set(conf, k, v, es, sizeof es) != RD_KAFKA_CONF_OK) {
        if (ebuf && elen)
            snprintf(ebuf, elen, "kafka: %s=%s: %s", k, conf_secret(k) ? "***" : v,
                     conf_secret(k) ? "invalid value" : es);
        return KUV_ECONFIG;
    }
    return 0;
}

static int conf_seti(rd_kafka_conf_t *conf, const char *k, int v, char *ebuf, size_t elen)
{
    char s[32];
    snprintf(s, sizeof s, "%d", v);
    return conf_set(conf, k, s, ebuf, elen);
}

/* The caller's "key", "value", ..., NULL pairs. */
static int conf_pairs(rd_kafka_conf_t *conf, const char *const *kv, char *ebuf, size_t elen)
{
    for (size_t i = 0; kv && kv[i]; i += 2) {
        if (!kv[i + 1]) {
            set_errbuf(ebuf, elen, "kafka: conf pairs: odd number of strings");
            return KUV_EINVAL;
        }
        int r = conf_set(conf, kv[i], kv[i + 1], ebuf, elen);
        if (r)
            return r;
    }
    return 0;
}

/* A non-blocking close-on-exec pipe; fds[0] read end. */
static int open_pipe(int fds[2])
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return KUV_EIO;
    return 0;
}

static void drain_pipe(int fd)
{
    char buf[256];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
}

/* ================================================================ */
/* producer                                                          */
/* ================================================================ */

typedef struct kuv_dr {
    kuv_delivery_cb cb;
    void *ud;
} kuv_dr;

typedef struct kuv_ensure {
    kuv_producer *p;
    kuv_result_cb cb;
    void *ud;
    mlist node; /* in p->ensures */
    char topic[];
} kuv_ensure;

struct kuv_producer {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;  /* io events enabled */
    rd_kafka_queue_t *adminq; /* admin results, io events enabled */
    uv_poll_t poll;
    uv_idle_t more;
    int rfd, wfd;
    uvc_closer closer; /* frees the producer once poll and more are closed */
    int in_serve;      /* inside serve(): defer close */
    int closing;       /* kuv_producer_close called */
    int close_pending; /* close requested from a callback */
    int close_timeout;
    size_t pending; /* messages without a delivery report yet */
    int message_timeout_ms, admin_timeout_ms, replication_factor;
    mlist ensures; /* admin requests in flight (of kuv_ensure.node) */
    kuv_error_cb error_cb;
    void *ud;
    char lasterr[512]; /* last client-level error, "" if none */
    char brokers[];
};

void kuv_producer_opts_default(kuv_producer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->message_timeout_ms = 30000;
    o->linger_ms = -1;
    o->replication_factor = 1;
}

static void producer_close_now(kuv_producer *p);

static void p_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    kuv_producer *p = opaque;
    kuv_dr *d = m->_private;
    (void)rk;
    if (p->pending > 0)
        p->pending--;
    if (!d)
        return;
    if (!m->err) {
        d->cb(d->ud, 0, NULL, m->partition, m->offset);
    } else {
        char msg[768];
        int err = map_err(m->err);
        const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "?";
        if (err == KUV_ETIMEDOUT)
            snprintf(msg, sizeof msg,
                     "kafka: delivery to topic '%s' failed: %s after %d ms (brokers %s%s%s)", topic,
                     rd_kafka_err2str(m->err), p->message_timeout_ms, p->brokers,
                     p->lasterr[0] ? "; last error: " : "", p->lasterr);
        else
            snprintf(msg, sizeof msg, "kafka: delivery to topic '%s' failed: %s (brokers %s)",
                     topic, rd_kafka_err2str(m->err), p->brokers);
        d->cb(d->ud, err, msg, m->partition, m->offset);
    }
    free(d);
}

/* reason, with a hint when it is a SCRAM refusal a librdkafka older than
 * 2.6.1 causes: those send a client proof Kafka 4 brokers reject. */
static const char *with_hint(const char *reason, char *buf, size_t len)
{
    if (rd_kafka_version() >= 0x020601ff || !strstr(reason, "SCRAM") ||
        !strstr(reason, "invalid credentials"))
        return reason;
    snprintf(buf, len,
             "%s (if the password is right: librdkafka %s cannot do SCRAM with Kafka 4 "
             "brokers; 2.6.1 or newer can, or use PLAIN over sasl_ssl)",
             reason, rd_kafka_version_str());
    return buf;
}

static void p_error_cb(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    kuv_producer *p = opaque;
    char buf[640];
    (void)rk;
    reason = with_hint(reason, buf, sizeof buf);
    snprintf(p->lasterr, sizeof p->lasterr, "%s", reason);
    if (p->error_cb && !p->closing)
        p->error_cb(p->ud, map_err((rd_kafka_resp_err_t)e), reason);
}

static void ensure_finish(kuv_ensure *e, int err, const char *msg)
{
    mlist_remove(&e->node);
    e->cb(e->ud, err, msg);
    free(e);
}

static void admin_event(kuv_producer *p, rd_kafka_event_t *ev)
{
    kuv_ensure *e = rd_kafka_event_opaque(ev);
    if (rd_kafka_event_type(ev) != RD_KAFKA_EVENT_CREATETOPICS_RESULT || !e)
        return;
    char msg[1280];
    rd_kafka_resp_err_t re = rd_kafka_event_error(ev);
    if (re) {
        /* a timeout says nothing of why: the latest client-level error
         * does ("SASL authentication error: ...", "SSL handshake failed") */
        snprintf(msg, sizeof msg, "kafka: create topic '%s' failed: %s (brokers %s%s%s)", e->topic,
                 rd_kafka_event_error_string(ev), p->brokers,
                 p->lasterr[0] ? "; latest error: " : "", p->lasterr);
        ensure_finish(e, map_err(re), msg);
        return;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
    if (n < 1) {
        snprintf(msg, sizeof msg, "kafka: create topic '%s': empty result", e->topic);
        ensure_finish(e, KUV_EKAFKA, msg);
        return;
    }
    re = rd_kafka_topic_result_error(tr[0]);
    if (re == RD_KAFKA_RESP_ERR_NO_ERROR || re == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        ensure_finish(e, 0, NULL);
        return;
    }
    const char *es = rd_kafka_topic_result_error_string(tr[0]);
    snprintf(msg, sizeof msg, "kafka: create topic '%s' failed: %s (brokers %s)", e->topic,
             es ? es : rd_kafka_err2str(re), p->brokers);
    ensure_finish(e, map_err(re), msg);
}

/* Serves a bounded amount; returns 1 when more may be left. */
static int producer_serve(kuv_producer *p)
{
    int more = 0;
    drain_pipe(p->rfd);
    p->in_serve++;
    int r = 0;
    for (int i = 0; i < KUV_POLL_ROUNDS && !p->close_pending; i++) {
        r = rd_kafka_poll(p->rk, 0);
        if (r <= 0)
            break;
    }
    if (r > 0)
        more = 1;
    int i;
    for (i = 0; i < KUV_EVENTS_PER_WAKEUP && !p->close_pending; i++) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(p->adminq, 0);
        if (!ev)
            break;
        admin_event(p, ev);
        rd_kafka_event_destroy(ev);
    }
    if (i == KUV_EVENTS_PER_WAKEUP)
        more = 1;
    p->in_serve--;
    if (p->close_pending && !p->in_serve) {
        producer_close_now(p);
        return 0;
    }
    return more;
}

static void p_more_cb(uv_idle_t *h)
{
    kuv_producer *p = h->data;
    if (!producer_serve(p) && !p->closing)
        uv_idle_stop(&p->more);
}

static void p_poll_cb(uv_poll_t *h, int status, int events)
{
    kuv_producer *p = h->data;
    (void)status;
    (void)events;
    if (producer_serve(p) && !p->closing)
        uv_idle_start(&p->more, p_more_cb);
}

kuv_producer *kuv_producer_new(uv_loop_t *loop, const char *brokers, const kuv_producer_opts *opts,
                               int *err)
{
    kuv_producer_opts def;
    int r = 0, dummy;
    if (!err)
        err = &dummy;
    if (!opts) {
        kuv_producer_opts_default(&def);
        opts = &def;
    }
    char *ebuf = opts->errbuf;
    size_t elen = opts->errlen;
    if (!loop || !brokers || !*brokers || opts->message_timeout_ms < 0 ||
        opts->admin_timeout_ms < 0 || opts->linger_ms < -1 || opts->replication_factor < -1) {
        set_errbuf(ebuf, elen, "kafka: producer: invalid argument");
        *err = KUV_EINVAL;
        return NULL;
    }
    size_t blen = strlen(brokers);
    kuv_producer *p = calloc(1, sizeof *p + blen + 1);
    if (!p) {
        *err = KUV_ENOMEM;
        return NULL;
    }
    memcpy(p->brokers, brokers, blen + 1);
    p->loop = loop;
    mlist_init(&p->ensures);
    p->rfd = p->wfd = -1;
    p->message_timeout_ms = opts->message_timeout_ms ? opts->message_timeout_ms : 30000;
    p->admin_timeout_ms = opts->admin_timeout_ms ? opts->admin_timeout_ms : p->message_timeout_ms;
    p->replication_factor = opts->replication_factor ? opts->replication_factor : 1;
    p->error_cb = opts->error_cb;
    p->ud = opts->ud;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* linger 0: a message goes out at once when nothing is in flight, and
     * what accumulates while requests are in flight goes in the next one:
     * batches grow with the rate by themselves. linger.ms=1 cost 1.3 ms of
     * p50 at 1,000 tasks/s and no throughput at 25,000.
     * At 1,000 tasks/s open loop a request's round trip is far shorter than
     * the 1 ms between tasks, so each task is its own produce request (0.98
     * per task, counted by the broker): nothing can join it without waiting
     * for the next task. Measured there (20 s runs, interleaved with this
     * setting, 2026-12-06, bench/RESULTS.md): max.in.flight 1 left 0.98
     * requests per task; linger.ms 0.5 made it 0.93 (the fleet's messages
     * are keyed by task id over the topic's partitions and librdkafka
     * lingers per partition) for +0.8 ms of p50; linger 2 with the worker's
     * fetch held 2 ms made 0.78 produce + 0.36 fetch requests per task, the
     * broker 345 -> 273 us per task, p50 1.8 -> 5.6 ms. Not worth it: the
     * p50 target is 1.5 ms. kafka.property.linger.ms still sets it. */
    int linger = opts->linger_ms <= 0 ? 0 : opts->linger_ms;
    if ((r = conf_set(conf, "bootstrap.servers", brokers, ebuf, elen)) ||
        (r = conf_set(conf, "client.id", "mutirao", ebuf, elen)) ||
        (r = conf_set(conf, "acks", "all", ebuf, elen)) ||
        (r = conf_set(conf, "enable.idempotence", "true", ebuf, elen)) ||
        (r = conf_seti(conf, "linger.ms", linger, ebuf, elen)) ||
        (r = conf_seti(conf, "message.timeout.ms", p->message_timeout_ms, ebuf, elen)) ||
        (r = conf_pairs(conf, opts->conf, ebuf, elen))) {
        rd_kafka_conf_destroy(conf);
        free(p);
        *err = r;
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, p_dr_cb);
    rd_kafka_conf_set_error_cb(conf, p_error_cb);

    int fds[2];
    if ((r = open_pipe(fds))) {
        rd_kafka_conf_destroy(conf);
        free(p);
        set_errbuf(ebuf, elen, "kafka: producer: cannot create a pipe");
        *err = r;
        return NULL;
    }
    p->rfd = fds[0];
    p->wfd = fds[1];

    char es[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    if (!p->rk) { /* conf is still ours on failure */
        rd_kafka_conf_destroy(conf);
        if (ebuf && elen)
            snprintf(ebuf, elen, "kafka: producer: %s", es);
        close(p->rfd);
        close(p->wfd);
        free(p);
        *err = KUV_ECONFIG;
        return NULL;
    }
    p->mainq = rd_kafka_queue_get_main(p->rk);
    p->adminq = rd_kafka_queue_new(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, p->wfd, "1", 1);
    rd_kafka_queue_io_event_enable(p->adminq, p->wfd, "1", 1);

    uv_poll_init(loop, &p->poll, p->rfd);
    uv_idle_init(loop, &p->more);
    if (opts->weak) {
        uv_unref((uv_handle_t *)&p->poll);
        uv_unref((uv_handle_t *)&p->more);
    }
    p->poll.data = p->more.data = p;
    uv_poll_start(&p->poll, UV_READABLE, p_poll_cb);
    *err = 0;
    return p;
}

int kuv_produce(kuv_producer *p, const char *topic, const void *key, size_t keylen,
                const void *value, size_t len, kuv_delivery_cb cb, void *ud)
{
    if (!p || !topic || !*topic || (keylen && !key) || (len && !value))
        return KUV_EINVAL;
    if (p->closing || p->close_pending)
        return KUV_ECLOSED;
    kuv_dr *d = NULL;
    if (cb) {
        d = malloc(sizeof *d);
        if (!d)
            return KUV_ENOMEM;
        d->cb = cb;
        d->ud = ud;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
                          RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (e) {
        free(d);
        return map_err(e);
    }
    p->pending++;
    return 0;
}

size_t kuv_producer_pending(const kuv_producer *p)
{
    return p ? p->pending : 0;
}

size_t kuv_producer_flush(kuv_producer *p, int timeout_ms)
{
    if (!p)
        return 0;
    if (p->in_serve || p->closing || p->close_pending || timeout_ms <= 0)
        return p->pending;
    p->in_serve++;                     /* a report's callback may ask for the close: deferred */
    rd_kafka_flush(p->rk, timeout_ms); /* serves the reports as they come */
    p->in_serve--;
    size_t left = p->pending;
    if (p->close_pending)
        producer_close_now(p);
    return left;
}

int kuv_topic_ensure(kuv_producer *p, const char *topic, int partitions, kuv_result_cb cb, void *ud)
{
    if (!p || !cb || !valid_topic(topic) || partitions < 1)
        return KUV_EINVAL;
    if (p->closing || p->close_pending)
        return KUV_ECLOSED;
    size_t tlen = strlen(topic);
    kuv_ensure *e = calloc(1, sizeof *e + tlen + 1);
    if (!e)
        return KUV_ENOMEM;
    memcpy(e->topic, topic, tlen + 1);
    e->p = p;
    e->cb = cb;
    e->ud = ud;
    char es[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, p->replication_factor, es, sizeof es);
    if (!nt) {
        free(e);
        return KUV_EINVAL;
    }
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (!ao) {
        rd_kafka_NewTopic_destroy(nt);
        free(e);
        return KUV_ENOMEM;
    }
    rd_kafka_AdminOptions_set_request_timeout(ao, p->admin_timeout_ms, es, sizeof es);
    rd_kafka_AdminOptions_set_operation_timeout(ao, p->admin_timeout_ms, es, sizeof es);
    rd_kafka_AdminOptions_set_opaque(ao, e);
    mlist_push_front(&p->ensures, &e->node);
    rd_kafka_CreateTopics(p->rk, &nt, 1, ao, p->adminq);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    return 0;
}

static void p_free(void *ud)
{
    kuv_producer *p = ud;
    close(p->rfd);
    free(p);
}

static void producer_close_now(kuv_producer *p)
{
    p->close_pending = 0;
    p->closing = 1;
    p->in_serve++; /* callbacks fired below must not re-enter the close */
    rd_kafka_flush(p->rk, p->close_timeout);
    if (p->pending > 0) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        /* The purged reports are queued now or very soon: bounded wait. */
        for (int i = 0; i < 100 && p->pending > 0; i++)
            rd_kafka_poll(p->rk, i == 0 ? 0 : 10);
    }
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(p->adminq, 0))) {
        admin_event(p, ev);
        rd_kafka_event_destroy(ev);
    }
    kuv_ensure *e;
    while ((e = mlist_first_entry(&p->ensures, kuv_ensure, node)))
        ensure_finish(e, KUV_ECANCELED, "kafka: create topic canceled: producer closed");
    rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
    rd_kafka_queue_io_event_enable(p->adminq, -1, NULL, 0);
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_queue_destroy(p->adminq);
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    close(p->wfd);
    p->in_serve--;
    uvc_init(&p->closer, p_free, p);
    uvc_close(&p->closer, (uv_handle_t *)&p->poll);
    uvc_close(&p->closer, (uv_handle_t *)&p->more);
    uvc_release(&p->closer);
}

void kuv_producer_close(kuv_producer *p, int timeout_ms)
{
    if (!p || p->closing || p->close_pending)
        return;
    p->close_timeout = timeout_ms > 0 ? timeout_ms : 0;
    if (p->in_serve) {
        p->close_pending = 1;
        return;
    }
    producer_close_now(p);
}

/* ================================================================ */
/* consumer                                                          */
/* ================================================================ */

typedef struct kuv_part {
    struct kuv_part *next; /* hash chain */
    mlist ready;           /* in the consumer's round of fetch queues while assigned */
    rd_kafka_queue_t *fq;  /* the partition's own fetch queue (not forwarded), or NULL */
    int32_t partition;
    int paused;
    int held;     /* its topic is held (kuv_hold): nothing handed out */
    int64_t sent; /* last commit sent, -1 none */
    kuv_tracker tr;
    char topic[];
} kuv_part;

#define KUV_NBUCKETS 256

struct kuv_consumer {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq, *cq, *closeq;
    uv_poll_t poll;
    uv_idle_t more;
    uv_timer_t commit_timer, close_timer;
    uv_timer_t alive; /* polls now and then: see alive_cb */
    int rfd, wfd;
    uvc_closer closer; /* frees the consumer once its 5 handles are closed */
    int in_serve;
    int closing; /* close started: no user callbacks */
    int close_pending;
    int destroyed;
    int rebalanced;       /* a rebalance came (librdkafka's assignor has its state) */
    int close_deferred;   /* close asked for before the first rebalance: see kuv_consumer_close */
    int subscribed;       /* kuv_subscribe succeeded */
    uint64_t deferred_at; /* loop time of the deferred close */
    int paused_all;
    int kick;    /* a partition queue may hold messages no wakeup announces */
    mlist round; /* assigned partitions, served in turn (kuv_part.ready) */
    char **held; /* topics held (kuv_hold) */
    size_t nheld;
    kuv_msg_cb msg_cb;
    kuv_rebalance_cb rebalance_cb;
    kuv_error_cb error_cb;
    kuv_commit_cb commit_cb;
    void *ud;
    int commit_interval_ms, close_timeout_ms, max_per_wakeup;
    size_t pending;
    kuv_part *buckets[KUV_NBUCKETS];
};

/* No user callback fires once a close was asked for. */
static int quiet(const kuv_consumer *c)
{
    return c->closing || c->close_pending || c->close_deferred;
}

void kuv_consumer_opts_default(kuv_consumer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->session_timeout_ms = 6000;
    o->heartbeat_interval_ms = 2000;
    o->metadata_refresh_ms = 1000;
    o->commit_interval_ms = 100;
    o->close_timeout_ms = 10000;
    o->max_per_wakeup = 256;
}

static unsigned part_hash(const char *topic, int32_t partition)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)topic; *s; s++)
        h = (h ^ *s) * 16777619u;
    h = (h ^ (uint32_t)partition) * 16777619u;
    return h % KUV_NBUCKETS;
}

/* The entry of topic among the held ones, or NULL. */
static char **topic_held(const kuv_consumer *c, const char *topic)
{
    for (size_t i = 0; i < c->nheld; i++)
        if (!strcmp(c->held[i], topic))
            return &c->held[i];
    return NULL;
}

/* The partition's fetch queue is let go (its messages not handed out stay
 * with librdkafka, which drops them with the assignment). */
static void part_unqueue(kuv_part *q)
{
    if (mlist_linked(&q->ready))
        mlist_remove(&q->ready);
    if (q->fq) {
        rd_kafka_queue_io_event_enable(q->fq, -1, NULL, 0);
        rd_kafka_queue_destroy(q->fq);
        q->fq = NULL;
    }
}

static kuv_part *part_find(kuv_consumer *c, const char *topic, int32_t partition)
{
    for (kuv_part *q = c->buckets[part_hash(topic, partition)]; q; q = q->next)
        if (q->partition == partition && !strcmp(q->topic, topic))
            return q;
    return NULL;
}

static kuv_part *part_get(kuv_consumer *c, const char *topic, int32_t partition)
{
    kuv_part *q = part_find(c, topic, partition);
    if (q)
        return q;
    size_t tl = strlen(topic);
    q = calloc(1, sizeof *q + tl + 1);
    if (!q)
        return NULL;
    memcpy(q->topic, topic, tl + 1);
    q->partition = partition;
    q->sent = -1;
    q->held = topic_held(c, topic) != NULL;
    kuv_tracker_init(&q->tr);
    unsigned b = part_hash(topic, partition);
    q->next = c->buckets[b];
    c->buckets[b] = q;
    return q;
}

static void part_forget(kuv_consumer *c, const char *topic, int32_t partition)
{
    kuv_part **pp = &c->buckets[part_hash(topic, partition)];
    for (; *pp; pp = &(*pp)->next) {
        kuv_part *q = *pp;
        if (q->partition == partition && !strcmp(q->topic, topic)) {
            *pp = q->next;
            c->pending -= kuv_tracker_pending(&q->tr);
            part_unqueue(q);
            kuv_tracker_free(&q->tr);
            free(q);
            return;
        }
    }
}

static void part_forget_all(kuv_consumer *c)
{
    for (int b = 0; b < KUV_NBUCKETS; b++) {
        while (c->buckets[b]) {
            kuv_part *q = c->buckets[b];
            c->buckets[b] = q->next;
            part_unqueue(q);
            kuv_tracker_free(&q->tr);
            free(q);
        }
    }
    c->pending = 0;
}

static void add_commit(rd_kafka_topic_partition_list_t *l, kuv_part *q)
{
    int64_t off = kuv_tracker_committable(&q->tr);
    if (off < 0 || off == q->sent)
        return;
    rd_kafka_topic_partition_list_add(l, q->topic, q->partition)->offset = off;
    q->sent = off;
}

static void send_commit(kuv_consumer *c, rd_kafka_topic_partition_list_t *l)
{
    if (l->cnt > 0) {
        rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, l, 1);
        if (e && c->error_cb && !quiet(c))
            c->error_cb(c->ud, map_err(e), rd_kafka_err2str(e));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Commits every partition's finished prefix not yet sent. */
static void commit_all(kuv_consumer *c)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (int b = 0; b < KUV_NBUCKETS; b++)
        for (kuv_part *q = c->buckets[b]; q; q = q->next)
            add_commit(l, q);
    send_commit(c, l);
}

static void commit_timer_cb(uv_timer_t *t)
{
    kuv_consumer *c = t->data;
    if (!c->destroyed)
        commit_all(c);
}

static void c_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                        rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    kuv_consumer *c = opaque;
    (void)rk;
    if (e == RD_KAFKA_RESP_ERR__NO_OFFSET || !offsets)
        return;
    for (int i = 0; i < offsets->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &offsets->elems[i];
        rd_kafka_resp_err_t pe = tp->err ? tp->err : e;
        if (pe) { /* let the next timer tick retry it */
            kuv_part *q = part_find(c, tp->topic, tp->partition);
            if (q && q->sent == tp->offset) {
                q->sent = -1;
                if (!c->closing && !uv_is_active((uv_handle_t *)&c->commit_timer))
                    uv_timer_start(&c->commit_timer, commit_timer_cb,
                                   (uint64_t)c->commit_interval_ms, 0);
            }
        }
        if (c->commit_cb && !quiet(c))
            c->commit_cb(c->ud, map_err(pe), tp->topic, tp->partition, tp->offset);
    }
}

static void c_error_cb(rd_kafka_t *rk, int e, const char *reason, void *opaque)
{
    kuv_consumer *c = opaque;
    char buf[640];
    (void)rk;
    if (c->error_cb && !quiet(c))
        c->error_cb(c->ud, map_err((rd_kafka_resp_err_t)e), with_hint(reason, buf, sizeof buf));
}

static void call_user_rebalance(kuv_consumer *c, int assigned,
                                const rd_kafka_topic_partition_list_t *l)
{
    if (!c->rebalance_cb || quiet(c) || l->cnt <= 0)
        return;
    kuv_partition *v = malloc((size_t)l->cnt * sizeof *v); /* rebalances are rare */
    if (!v)
        return;
    for (int i = 0; i < l->cnt; i++) {
        v[i].topic = l->elems[i].topic;
        v[i].partition = l->elems[i].partition;
    }
    c->rebalance_cb(c->ud, assigned, v, (size_t)l->cnt);
    free(v);
}

static void report_error(kuv_consumer *c, rd_kafka_error_t *err)
{
    if (!err)
        return;
    if (c->error_cb && !quiet(c))
        c->error_cb(c->ud, KUV_EKAFKA, rd_kafka_error_string(err));
    rd_kafka_error_destroy(err);
}

/* Before its fetching starts, an assigned partition's messages are kept in
 * its own queue instead of the consumer's (forwarding off): each is served
 * at the application's pace (kuv_hold), and librdkafka stops fetching a
 * partition whose queue holds queued.min.messages or
 * queued.max.messages.kbytes, keeping what it fetched (a pause would drop
 * it and fetch it again). Without its own queue (out of memory) the
 * partition's messages come through the consumer queue, unheld. */
static void part_queue(kuv_consumer *c, kuv_part *q)
{
    if (!q->fq) {
        q->fq = rd_kafka_queue_get_partition(c->rk, q->topic, q->partition);
        if (!q->fq)
            return;
        rd_kafka_queue_forward(q->fq, NULL);
        rd_kafka_queue_io_event_enable(q->fq, c->wfd, "1", 1);
    }
    if (!mlist_linked(&q->ready))
        mlist_push_back(&c->round, &q->ready);
    c->kick = 1;
}

static void rebalance_apply(kuv_consumer *c, rd_kafka_resp_err_t e,
                            rd_kafka_topic_partition_list_t *l)
{
    int coop = !strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE");
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < l->cnt; i++) {
            kuv_part *q = part_get(c, l->elems[i].topic, l->elems[i].partition);
            if (q) { /* a fresh assignment starts from the committed offset */
                c->pending -= kuv_tracker_pending(&q->tr);
                kuv_tracker_reset(&q->tr);
                q->sent = -1;
                q->paused = 0;
                part_queue(c, q);
            }
        }
        if (coop)
            report_error(c, rd_kafka_incremental_assign(c->rk, l));
        else
            rd_kafka_assign(c->rk, l);
        if (c->paused_all && !c->closing) {
            rd_kafka_pause_partitions(c->rk, l);
            for (int i = 0; i < l->cnt; i++) {
                kuv_part *q = part_find(c, l->elems[i].topic, l->elems[i].partition);
                if (q)
                    q->paused = 1;
            }
        } else {
            /* librdkafka keeps a partition paused across its revocation and
             * a later assignment: one paused here, moved away and given back
             * would never be fetched again. A fresh assignment is not paused. */
            rd_kafka_resume_partitions(c->rk, l);
        }
        call_user_rebalance(c, 1, l);
        return;
    }
    if (e == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        call_user_rebalance(c, 0, l);
        if (!rd_kafka_assignment_lost(c->rk)) {
            rd_kafka_topic_partition_list_t *cl = rd_kafka_topic_partition_list_new(l->cnt);
            for (int i = 0; i < l->cnt; i++) {
                kuv_part *q = part_find(c, l->elems[i].topic, l->elems[i].partition);
                if (q)
                    add_commit(cl, q);
            }
            send_commit(c, cl);
        }
        for (int i = 0; i < l->cnt; i++)
            part_forget(c, l->elems[i].topic, l->elems[i].partition);
        if (coop)
            report_error(c, rd_kafka_incremental_unassign(c->rk, l));
        else
            rd_kafka_assign(c->rk, NULL);
        return;
    }
    if (c->error_cb && !quiet(c))
        c->error_cb(c->ud, KUV_EKAFKA, rd_kafka_err2str(e));
    part_forget_all(c);
    rd_kafka_assign(c->rk, NULL);
}

/* A close deferred by kuv_consumer_close stops waiting. */
static void deferred_close_end(kuv_consumer *c)
{
    c->close_deferred = 0;
    uv_timer_stop(&c->close_timer);
}

static void rebalance(kuv_consumer *c, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l)
{
    c->rebalanced = 1;
    rebalance_apply(c, e, l);
    if (c->close_deferred) { /* the close waited for this: it starts after the serve */
        deferred_close_end(c);
        c->close_pending = 1;
    }
}

static void c_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                           rd_kafka_topic_partition_list_t *l, void *opaque)
{
    (void)rk;
    rebalance(opaque, e, l);
}

static void deliver(kuv_consumer *c, rd_kafka_message_t *m)
{
    if (quiet(c))
        return;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && c->error_cb)
            c->error_cb(c->ud, map_err(m->err), rd_kafka_message_errstr(m));
        return;
    }
    const char *topic = rd_kafka_topic_name(m->rkt);
    kuv_part *q = part_get(c, topic, m->partition);
    if (!q) {
        if (c->error_cb)
            c->error_cb(c->ud, KUV_ENOMEM, "kafka: out of memory tracking a partition");
        return;
    }
    int r = kuv_tracker_add(&q->tr, m->offset);
    if (r == KUV_EINVAL) { /* the fetch position moved back: start over */
        c->pending -= kuv_tracker_pending(&q->tr);
        kuv_tracker_reset(&q->tr);
        q->sent = -1;
        r = kuv_tracker_add(&q->tr, m->offset);
    }
    if (r) {
        if (c->error_cb)
            c->error_cb(c->ud, r, "kafka: cannot track an offset; message skipped");
        return;
    }
    c->pending++;
    kuv_message km = {
        .topic = topic,
        .partition = m->partition,
        .offset = m->offset,
        .key = m->key,
        .keylen = m->key ? m->key_len : 0,
        .value = m->payload,
        .len = m->payload ? m->len : 0,
        .timestamp = rd_kafka_message_timestamp(m, NULL),
    };
    c->msg_cb(c->ud, &km);
}

static void consumer_close_start(kuv_consumer *c);
static void consumer_destroy(kuv_consumer *c, int forced);

/* Messages taken from one partition's queue at a time. */
#define KUV_BATCH 32

/* Hands out at most budget messages from the partitions' own queues, a
 * batch from each in turn (a served one goes to the back of the round);
 * held and paused ones are skipped. Returns 1 when messages may be left. */
static int serve_round(kuv_consumer *c, int budget)
{
    rd_kafka_message_t *ms[KUV_BATCH];
    int more = c->kick;
    c->kick = 0;
    /* every partition of the round visited at most once per wakeup */
    mlist *last = c->round.prev;
    for (mlist *n = mlist_first(&c->round); n && budget > 0 && !c->close_pending;
         n = mlist_first(&c->round)) {
        kuv_part *q = mlist_entry(n, kuv_part, ready);
        int final = n == last;
        mlist_remove(n);
        mlist_push_back(&c->round, n);
        if (!q->held && !q->paused && q->fq) {
            ssize_t got = rd_kafka_consume_batch_queue(
                q->fq, 0, ms, (size_t)(budget < KUV_BATCH ? budget : KUV_BATCH));
            for (ssize_t i = 0; i < got; i++) {
                /* a callback may close the consumer, or revoke and free q */
                if (!c->close_pending)
                    deliver(c, ms[i]);
                rd_kafka_message_destroy(ms[i]);
            }
            if (got > 0) {
                budget -= (int)got;
                more |= got == KUV_BATCH || budget == 0;
            }
        }
        if (final)
            break;
    }
    more |= c->kick; /* a hold released meanwhile */
    c->kick = 0;
    return more;
}

/* Serves the queues during a close: rebalances (revokes) and the end. */
static int consumer_serve_closing(kuv_consumer *c)
{
    int i;
    rd_kafka_poll(c->rk, 0);
    for (i = 0; i < KUV_EVENTS_PER_WAKEUP; i++) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(c->closeq, 0);
        if (!ev)
            break;
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_event_topic_partition_list(ev);
            rebalance(c, rd_kafka_event_error(ev), l);
        }
        rd_kafka_event_destroy(ev);
    }
    if (rd_kafka_consumer_closed(c->rk)) {
        consumer_destroy(c, 0);
        return 0;
    }
    return i == KUV_EVENTS_PER_WAKEUP;
}

static int consumer_serve(kuv_consumer *c)
{
    if (c->destroyed)
        return 0;
    drain_pipe(c->rfd);
    if (c->closing)
        return consumer_serve_closing(c);
    int more = 0, r = 0;
    c->in_serve++;
    for (int i = 0; i < KUV_POLL_ROUNDS && !c->close_pending; i++) {
        r = rd_kafka_poll(c->rk, 0);
        if (r <= 0)
            break;
    }
    if (r > 0)
        more = 1;
    /* rd_kafka_consumer_poll also serves non-message ops (commit results...)
     * and then returns NULL with messages still queued behind them: those
     * messages would wait for the next empty -> non-empty wakeup, up to a
     * second later. Keep going while the queue is not empty. */
    int n = 0, skipped = 0;
    while (n < c->max_per_wakeup && !c->close_pending) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 0);
        if (!m) {
            if (rd_kafka_queue_length(c->cq) == 0)
                break;
            if (++skipped > KUV_POLL_ROUNDS) {
                more = 1;
                break;
            }
            continue;
        }
        deliver(c, m);
        rd_kafka_message_destroy(m);
        n++;
    }
    if (serve_round(c, c->max_per_wakeup - n) || n == c->max_per_wakeup)
        more = 1;
    c->in_serve--;
    if (c->close_pending && !c->in_serve) {
        consumer_close_start(c);
        return 1; /* serve the close queue next iteration */
    }
    return more;
}

static void c_more_cb(uv_idle_t *h)
{
    kuv_consumer *c = h->data;
    if (!consumer_serve(c) && !c->destroyed)
        uv_idle_stop(&c->more);
}

static void c_poll_cb(uv_poll_t *h, int status, int events)
{
    kuv_consumer *c = h->data;
    (void)status;
    (void)events;
    if (consumer_serve(c) && !c->destroyed)
        uv_idle_start(&c->more, c_more_cb);
}

static void alive_cb(uv_timer_t *t);

kuv_consumer *kuv_consumer_new(uv_loop_t *loop, const char *brokers, const char *group,
                               const kuv_consumer_opts *opts, kuv_msg_cb msg_cb,
                               kuv_rebalance_cb rebalance_cb, void *ud, int *err)
{
    kuv_consumer_opts def;
    int r, dummy;
    if (!err)
        err = &dummy;
    if (!opts) {
        kuv_consumer_opts_default(&def);
        opts = &def;
    }
    char *ebuf = opts->errbuf;
    size_t elen = opts->errlen;
    if (!loop || !brokers || !*brokers || !group || !*group || !msg_cb ||
        opts->session_timeout_ms < 0 || opts->heartbeat_interval_ms < 0 ||
        opts->metadata_refresh_ms < 0 || opts->commit_interval_ms < 0 ||
        opts->close_timeout_ms < 0 || opts->max_per_wakeup < 0) {
        set_errbuf(ebuf, elen, "kafka: consumer: invalid argument");
        *err = KUV_EINVAL;
        return NULL;
    }
    kuv_consumer *c = calloc(1, sizeof *c);
    if (!c) {
        *err = KUV_ENOMEM;
        return NULL;
    }
    c->loop = loop;
    mlist_init(&c->round);
    c->msg_cb = msg_cb;
    c->rebalance_cb = rebalance_cb;
    c->error_cb = opts->error_cb;
    c->commit_cb = opts->commit_cb;
    c->ud = ud;
    /* 10 commits a second: one request each, with a record for every
     * assigned partition (the broker's messages in: 80 a second on 8
     * partitions): 0.5% of the broker's requests at 1,000 tasks/s, and what a
     * worker killed without a clean stop hands on to run again */
    c->commit_interval_ms = opts->commit_interval_ms ? opts->commit_interval_ms : 100;
    c->close_timeout_ms = opts->close_timeout_ms ? opts->close_timeout_ms : 10000;
    c->max_per_wakeup = opts->max_per_wakeup ? opts->max_per_wakeup : 256;
    int session = opts->session_timeout_ms ? opts->session_timeout_ms : 6000;
    int heartbeat = opts->heartbeat_interval_ms ? opts->heartbeat_interval_ms : 2000;
    int refresh = opts->metadata_refresh_ms ? opts->metadata_refresh_ms : 1000;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if ((r = conf_set(conf, "bootstrap.servers", brokers, ebuf, elen)) ||
        (r = conf_set(conf, "client.id", "mutirao", ebuf, elen)) ||
        (r = conf_set(conf, "group.id", group, ebuf, elen)) ||
        (r = conf_set(conf, "enable.auto.commit", "false", ebuf, elen)) ||
        (r = conf_set(conf, "enable.auto.offset.store", "false", ebuf, elen)) ||
        (r = conf_set(conf, "auto.offset.reset", "earliest", ebuf, elen)) ||
        (r = conf_seti(conf, "session.timeout.ms", session, ebuf, elen)) ||
        (r = conf_seti(conf, "heartbeat.interval.ms", heartbeat, ebuf, elen)) ||
        (r = conf_seti(conf, "topic.metadata.refresh.interval.ms", refresh, ebuf, elen)) ||
        /* per partition queue (part_queue): what is fetched ahead of the
         * application, and how soon a partition whose queue was full is
         * looked at again (librdkafka backs off fetch.error.backoff.ms, 500
         * by default: its queue would run dry first) */
        (r = conf_set(conf, "queued.min.messages", "5000", ebuf, elen)) ||
        (r = conf_set(conf, "queued.max.messages.kbytes", "2048", ebuf, elen)) ||
        (r = conf_set(conf, "fetch.error.backoff.ms", "20", ebuf, elen)) ||
        (r = conf_pairs(conf, opts->conf, ebuf, elen))) {
        rd_kafka_conf_destroy(conf);
        free(c);
        *err = r;
        return NULL;
    }
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_rebalance_cb(conf, c_rebalance_cb);
    rd_kafka_conf_set_offset_commit_cb(conf, c_commit_cb);
    rd_kafka_conf_set_error_cb(conf, c_error_cb);

    int fds[2];
    if ((r = open_pipe(fds))) {
        rd_kafka_conf_destroy(conf);
        free(c);
        set_errbuf(ebuf, elen, "kafka: consumer: cannot create a pipe");
        *err = r;
        return NULL;
    }
    c->rfd = fds[0];
    c->wfd = fds[1];
    char es[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    if (!c->rk) {
        rd_kafka_conf_destroy(conf);
        if (ebuf && elen)
            snprintf(ebuf, elen, "kafka: consumer: %s", es);
        close(c->rfd);
        close(c->wfd);
        free(c);
        *err = KUV_ECONFIG;
        return NULL;
    }
    c->mainq = rd_kafka_queue_get_main(c->rk);
    c->cq = rd_kafka_queue_get_consumer(c->rk);
    rd_kafka_queue_io_event_enable(c->mainq, c->wfd, "1", 1);
    rd_kafka_queue_io_event_enable(c->cq, c->wfd, "1", 1);

    uv_poll_init(loop, &c->poll, c->rfd);
    uv_idle_init(loop, &c->more);
    uv_timer_init(loop, &c->commit_timer);
    uv_timer_init(loop, &c->close_timer);
    uv_timer_init(loop, &c->alive);
    c->poll.data = c->more.data = c->commit_timer.data = c->close_timer.data = c->alive.data = c;
    uv_timer_start(&c->alive, alive_cb, 1000, 1000);
    uv_poll_start(&c->poll, UV_READABLE, c_poll_cb);
    *err = 0;
    return c;
}

int kuv_subscribe(kuv_consumer *c, const char *const *patterns, size_t n)
{
    if (!c || !patterns || n == 0 || n > INT32_MAX)
        return KUV_EINVAL;
    if (c->closing || c->close_pending)
        return KUV_ECLOSED;
    for (size_t i = 0; i < n; i++)
        if (!patterns[i] || !*patterns[i])
            return KUV_EINVAL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, patterns[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (!e)
        c->subscribed = 1;
    return e ? map_err(e) : 0;
}

static int pause_resume(kuv_consumer *c, const char *topic, int32_t partition, int pause)
{
    if (!c || (topic && partition < 0))
        return KUV_EINVAL;
    if (c->closing || c->close_pending)
        return KUV_ECLOSED;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (!topic) {
        c->paused_all = pause;
        if (rd_kafka_assignment(c->rk, &l) || !l)
            return KUV_EKAFKA;
    } else {
        kuv_part *q = part_find(c, topic, partition);
        if (!q)
            return KUV_ENOTASSIGNED;
        l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition);
    }
    rd_kafka_resp_err_t e =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    int r = e ? map_err(e) : 0;
    for (int i = 0; i < l->cnt; i++) {
        if (l->elems[i].err) {
            if (topic)
                r = KUV_ENOTASSIGNED;
            continue;
        }
        kuv_part *q = part_find(c, l->elems[i].topic, l->elems[i].partition);
        if (q)
            q->paused = pause;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return r;
}

int kuv_pause(kuv_consumer *c, const char *topic, int32_t partition)
{
    return pause_resume(c, topic, partition, 1);
}

int kuv_resume(kuv_consumer *c, const char *topic, int32_t partition)
{
    return pause_resume(c, topic, partition, 0);
}

int kuv_hold(kuv_consumer *c, const char *topic, int hold)
{
    if (!c || !topic || !*topic)
        return KUV_EINVAL;
    if (c->closing || c->close_pending)
        return KUV_ECLOSED;
    char **at = topic_held(c, topic);
    if (!!at == !!hold)
        return 0;
    if (hold) {
        char **n = realloc(c->held, (c->nheld + 1) * sizeof *n);
        if (!n)
            return KUV_ENOMEM;
        c->held = n;
        if (!(n[c->nheld] = strdup(topic)))
            return KUV_ENOMEM;
        c->nheld++;
    } else {
        free(*at);
        *at = c->held[--c->nheld];
    }
    for (int b = 0; b < KUV_NBUCKETS; b++)
        for (kuv_part *q = c->buckets[b]; q; q = q->next)
            if (!strcmp(q->topic, topic))
                q->held = hold;
    /* what its queues kept is handed out without waiting for a wakeup */
    if (!hold && !c->in_serve && !c->destroyed)
        uv_idle_start(&c->more, c_more_cb);
    else if (!hold)
        c->kick = 1;
    return 0;
}

int kuv_done(kuv_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    if (!c || !topic)
        return KUV_EINVAL;
    if (c->closing)
        return KUV_ECLOSED;
    kuv_part *q = part_find(c, topic, partition);
    if (!q)
        return KUV_ENOTASSIGNED;
    int r = kuv_tracker_done(&q->tr, offset);
    if (r)
        return r;
    c->pending--;
    if (kuv_tracker_committable(&q->tr) != q->sent &&
        !uv_is_active((uv_handle_t *)&c->commit_timer))
        uv_timer_start(&c->commit_timer, commit_timer_cb, (uint64_t)c->commit_interval_ms, 0);
    return 0;
}

void kuv_consumer_lag(kuv_consumer *c,
                      void (*fn)(void *ud, const char *topic, int32_t partition, int64_t lag),
                      void *ud)
{
    if (c->closing || c->destroyed)
        return;
    for (int b = 0; b < KUV_NBUCKETS; b++)
        for (kuv_part *q = c->buckets[b]; q; q = q->next) {
            int64_t lo, hi, next = -1;
            if (rd_kafka_get_watermark_offsets(c->rk, q->topic, q->partition, &lo, &hi) !=
                    RD_KAFKA_RESP_ERR_NO_ERROR ||
                hi < 0)
                continue;
            if (q->tr.len > 0)
                next = q->tr.off[q->tr.head]; /* the oldest unfinished */
            else if (q->tr.last >= 0)
                next = q->tr.last + 1;
            else {
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, q->topic, q->partition);
                if (rd_kafka_position(c->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                    l->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[0].offset >= 0)
                    next = l->elems[0].offset;
                rd_kafka_topic_partition_list_destroy(l);
                if (next < 0 && lo >= 0 && lo == hi)
                    next = hi; /* nothing in it to consume */
            }
            if (next >= 0)
                fn(ud, q->topic, q->partition, hi > next ? hi - next : 0);
        }
}

size_t kuv_consumer_pending(const kuv_consumer *c)
{
    return c ? c->pending : 0;
}

static void c_free(void *ud)
{
    kuv_consumer *c = ud;
    close(c->rfd);
    for (size_t i = 0; i < c->nheld; i++)
        free(c->held[i]);
    free(c->held);
    free(c);
}

static void consumer_destroy(kuv_consumer *c, int forced)
{
    if (c->destroyed)
        return;
    c->destroyed = 1;
    /* no queue of the client may outlive it */
    for (int b = 0; b < KUV_NBUCKETS; b++)
        for (kuv_part *q = c->buckets[b]; q; q = q->next)
            part_unqueue(q);
    rd_kafka_queue_io_event_enable(c->mainq, -1, NULL, 0);
    rd_kafka_queue_io_event_enable(c->cq, -1, NULL, 0);
    rd_kafka_queue_io_event_enable(c->closeq, -1, NULL, 0);
    rd_kafka_queue_destroy(c->closeq);
    rd_kafka_queue_destroy(c->cq);
    rd_kafka_queue_destroy(c->mainq);
    if (forced)
        rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    else
        rd_kafka_destroy(c->rk);
    c->rk = NULL;
    close(c->wfd);
    part_forget_all(c);
    uvc_init(&c->closer, c_free, c);
    uvc_close(&c->closer, (uv_handle_t *)&c->poll);
    uvc_close(&c->closer, (uv_handle_t *)&c->more);
    uvc_close(&c->closer, (uv_handle_t *)&c->commit_timer);
    uvc_close(&c->closer, (uv_handle_t *)&c->close_timer);
    uvc_close(&c->closer, (uv_handle_t *)&c->alive);
    uvc_release(&c->closer);
}

/* librdkafka counts max.poll.interval.ms from the last consumer poll, and
 * with nothing to fetch the queues never wake the loop: an idle consumer
 * would be dropped from its group every 5 minutes. */
static void alive_cb(uv_timer_t *t)
{
    kuv_consumer *c = t->data;
    if (!c->closing && !c->destroyed && !c->in_serve && consumer_serve(c) && !c->destroyed)
        uv_idle_start(&c->more, c_more_cb);
}

static void closing_check_cb(uv_timer_t *t)
{
    consumer_serve(t->data);
}

static void close_timer_cb(uv_timer_t *t)
{
    consumer_destroy(t->data, 1);
}

static void consumer_close_start(kuv_consumer *c)
{
    c->close_pending = 0;
    commit_all(c);
    c->closing = 1;
    uv_timer_stop(&c->commit_timer);
    uv_timer_stop(&c->alive);
    c->closeq = rd_kafka_queue_new(c->rk);
    rd_kafka_queue_io_event_enable(c->closeq, c->wfd, "1", 1);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, c->closeq);
    if (e) {
        rd_kafka_error_destroy(e);
        consumer_destroy(c, 1);
        return;
    }
    uv_timer_start(&c->close_timer, close_timer_cb, (uint64_t)c->close_timeout_ms, 0);
    /* The end is seen when serving the close queue; check it every 20 ms too. */
    uv_timer_start(&c->commit_timer, closing_check_cb, 0, 20);
}

/* The group gave this member an id: it joined, or is joining. */
static int joined(kuv_consumer *c)
{
    char *m = rd_kafka_memberid(c->rk);
    int j = m && *m;
    if (m)
        rd_kafka_mem_free(c->rk, m);
    return j;
}

#define KUV_JOIN_GRACE_MS 1500 /* a join under way shows its member id by then */

/* Every 50 ms while a close waits for the first rebalance: it stops
 * waiting after KUV_JOIN_GRACE_MS if the member has no id (it is not
 * joining: no topic of its subscription exists yet), else after
 * close_timeout_ms. */
static void deferred_close_cb(uv_timer_t *t)
{
    kuv_consumer *c = t->data;
    if (!c->close_deferred)
        return;
    uint64_t waited = uv_now(c->loop) - c->deferred_at;
    if (waited < (uint64_t)c->close_timeout_ms && (waited < KUV_JOIN_GRACE_MS || joined(c)))
        return;
    deferred_close_end(c);
    consumer_close_start(c);
}

void kuv_consumer_close(kuv_consumer *c)
{
    if (!c || c->closing || c->close_pending || c->close_deferred)
        return;
    /* librdkafka 2.0 (Debian 12) aborts in rd_kafka_destroy when the
     * cooperative-sticky assignor was chosen by a join whose assignment
     * never came (rdkafka_sticky_assignor.c: assertion 'assignor_state',
     * librdkafka issue #4312, fixed upstream in 2023): a worker stopped
     * during its first rebalance died with SIGABRT. Its maintainers'
     * advice: wait for the first rebalance. A subscribed member without
     * one yet closes at its first rebalance; when it has no member id,
     * after KUV_JOIN_GRACE_MS instead (a JoinGroup may be on its way: its
     * answer chooses the assignor, and the abort would follow); at most
     * after close_timeout_ms. Meanwhile nothing is handed out (quiet) and
     * what is assigned is paused. */
    if (!c->rebalanced && c->subscribed) {
        c->close_deferred = 1;
        c->paused_all = 1;
        c->deferred_at = uv_now(c->loop);
        uv_timer_start(&c->close_timer, deferred_close_cb, 50, 50);
        return;
    }
    if (c->in_serve) {
        c->close_pending = 1; /* no user callback from here on */
        return;
    }
    consumer_close_start(c);
}
