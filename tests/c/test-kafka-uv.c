/* test-kafka-uv.c: shared/kafka/kafka_uv.c and shared/kafka/kafka_tracker.c.
 * `test-kafka-uv NAME` runs one test: tracker (pure, randomized against a
 * model; MUTIRAO_TEST_SEED=N replays), and against librdkafka's mock cluster
 * on loopback: produce, ensure, consume, commit, pause, broker_down,
 * close_inflight. `real` runs produce/consume/commit against
 * MUTIRAO_TEST_KAFKA_BROKERS (exit 77, skipped, without it). `bench` prints
 * produce latency and throughput against the mock. A 5 ms ticker checks that
 * the loop is never blocked. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <uv.h>

#include "kafka_tracker.h"
#include "kafka_uv.h"
#define TEST_FAIL abort()
#include "test.h"

static uv_loop_t *loop;
static pthread_t loop_thread;

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* ---- the ticker: the largest gap between 5 ms ticks is the longest time
   the loop was blocked ---- */
static uv_timer_t ticker;
static uint64_t last_tick, max_gap;

static void tick_cb(uv_timer_t *t)
{
    (void)t;
    uint64_t n = now_ms();
    if (last_tick && n - last_tick > max_gap)
        max_gap = n - last_tick;
    last_tick = n;
}

static void ticker_start(void)
{
    uv_timer_init(loop, &ticker);
    last_tick = 0;
    max_gap = 0;
    uv_timer_start(&ticker, tick_cb, 5, 5);
}

/* Stops the ticker and runs the loop until every handle is closed. */
static void finish_loop(void)
{
    uv_close((uv_handle_t *)&ticker, NULL);
    uint64_t t0 = now_ms();
    uv_run(loop, UV_RUN_DEFAULT);
    ASSERT_LE(now_ms() - t0, 15000);
    ASSERT_EQ(uv_loop_alive(loop), 0);
}

/* Runs the loop until cond(arg) or timeout_ms; returns cond's last value. */
static int run_until(int (*cond)(void *), void *arg, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (!cond(arg) && now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    return cond(arg);
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void run_for(int ms)
{
    run_until(never, NULL, ms);
}

/* Waits until counter >= target. */
static int wait_count(int *counter, int target, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (*counter < target && now_ms() < deadline)
        uv_run(loop, UV_RUN_ONCE);
    return *counter >= target;
}

/* ---- the mock cluster ---- */
typedef struct mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bs;
} mock;

static void mock_start(mock *m)
{
    char es[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", es, sizeof es);
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es);
    ASSERT(m->rk != NULL);
    m->mc = rd_kafka_mock_cluster_new(m->rk, 1);
    ASSERT(m->mc != NULL);
    m->bs = rd_kafka_mock_cluster_bootstraps(m->mc);
    fprintf(stderr, "mock cluster at %s\n", m->bs);
}

static void mock_topic(mock *m, const char *topic, int partitions)
{
    ASSERT_EQ(rd_kafka_mock_topic_create(m->mc, topic, partitions, 1), 0);
}

static void mock_stop(mock *m)
{
    rd_kafka_mock_cluster_destroy(m->mc);
    rd_kafka_destroy(m->rk);
}

static const char *const quiet_conf[] = {"log_level", "3", NULL, NULL, NULL};

/* ---- delivery bookkeeping ---- */
typedef struct dr_stats {
    int ok, failed, fired;
    int last_err;
    int per_partition[8];
    char lastmsg[768];
    int off_thread; /* a callback ran outside the loop thread */
} dr_stats;

static void dr_cb(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    dr_stats *s = ud;
    s->fired++;
    if (!pthread_equal(pthread_self(), loop_thread))
        s->off_thread++;
    if (err == 0) {
        s->ok++;
        ASSERT_GE(offset, 0);
        if (partition >= 0 && partition < 8)
            s->per_partition[partition]++;
    } else {
        s->failed++;
        s->last_err = err;
        ASSERT(errmsg != NULL);
        snprintf(s->lastmsg, sizeof s->lastmsg, "%s", errmsg);
    }
}

static void never_cb(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    (void)ud;
    (void)err;
    (void)errmsg;
    (void)partition;
    (void)offset;
    ASSERT(!"a callback fired after an error return");
}

static kuv_producer *producer(const char *bs, int msg_timeout_ms)
{
    kuv_producer_opts o;
    char ebuf[256] = "";
    kuv_producer_opts_default(&o);
    o.message_timeout_ms = msg_timeout_ms;
    o.conf = quiet_conf;
    o.errbuf = ebuf;
    o.errlen = sizeof ebuf;
    int err = 1;
    kuv_producer *p = kuv_producer_new(loop, bs, &o, &err);
    if (!p)
        fprintf(stderr, "producer: %s (%s)\n", ebuf, kuv_strerror(err));
    ASSERT(p != NULL);
    ASSERT_EQ(err, 0);
    return p;
}

static void produce_n(kuv_producer *p, const char *topic, int n, dr_stats *s)
{
    for (int i = 0; i < n; i++) {
        char key[32], val[64];
        int kl = snprintf(key, sizeof key, "k%d", i);
        int vl = snprintf(val, sizeof val, "%s:%d", topic, i);
        ASSERT_EQ(kuv_produce(p, topic, key, (size_t)kl, val, (size_t)vl, dr_cb, s), 0);
    }
}

/* ---- consumer bookkeeping ---- */
#define MAXMSG 4096
typedef struct rec {
    char topic[64];
    int32_t partition;
    int64_t offset;
    char value[64];
} rec;

typedef struct cstate {
    kuv_consumer *c;
    rec msgs[MAXMSG];
    int n;
    int assigned, revoked; /* rebalance callbacks */
    int assigned_to[4];    /* assignments of each partition */
    int auto_done;         /* kuv_done each message right away */
    int commits_ok;
    int64_t last_commit[4]; /* per partition of the committed topic */
    int after_close;        /* callbacks after kuv_consumer_close */
    int closed;
    int off_thread;
} cstate;

static void msg_cb(void *ud, const kuv_message *m)
{
    cstate *s = ud;
    if (s->closed)
        s->after_close++;
    if (!pthread_equal(pthread_self(), loop_thread))
        s->off_thread++;
    ASSERT(s->n < MAXMSG);
    rec *r = &s->msgs[s->n++];
    snprintf(r->topic, sizeof r->topic, "%s", m->topic);
    r->partition = m->partition;
    r->offset = m->offset;
    size_t l = m->len < sizeof r->value - 1 ? m->len : sizeof r->value - 1;
    memcpy(r->value, m->value, l);
    r->value[l] = 0;
    if (s->auto_done)
        ASSERT_EQ(kuv_done(s->c, m->topic, m->partition, m->offset), 0);
}

static void rebalance_cb(void *ud, int assigned, const kuv_partition *parts, size_t n)
{
    cstate *s = ud;
    if (s->closed)
        s->after_close++;
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, "  %s %s [%d]\n", assigned ? "assigned" : "revoked", parts[i].topic,
                parts[i].partition);
    for (size_t i = 0; i < n; i++)
        if (assigned && parts[i].partition >= 0 && parts[i].partition < 4)
            s->assigned_to[parts[i].partition]++;
    if (assigned)
        s->assigned++;
    else
        s->revoked++;
}

static void commit_cb(void *ud, int err, const char *topic, int32_t partition, int64_t offset)
{
    cstate *s = ud;
    (void)topic;
    if (s->closed)
        s->after_close++;
    if (err == 0) {
        s->commits_ok++;
        if (partition >= 0 && partition < 4)
            s->last_commit[partition] = offset;
    }
}

static kuv_consumer *consumer_conf(const char *bs, const char *group, cstate *s, int commit_ms,
                                   const char *const *conf)
{
    kuv_consumer_opts o;
    char ebuf[256] = "";
    kuv_consumer_opts_default(&o);
    o.commit_interval_ms = commit_ms;
    o.commit_cb = commit_cb;
    o.conf = conf;
    o.errbuf = ebuf;
    o.errlen = sizeof ebuf;
    int err = 1;
    for (int i = 0; i < 4; i++)
        s->last_commit[i] = -1;
    kuv_consumer *c = kuv_consumer_new(loop, bs, group, &o, msg_cb, rebalance_cb, s, &err);
    if (!c)
        fprintf(stderr, "consumer: %s (%s)\n", ebuf, kuv_strerror(err));
    ASSERT(c != NULL);
    ASSERT_EQ(err, 0);
    s->c = c;
    return c;
}

static kuv_consumer *consumer(const char *bs, const char *group, cstate *s, int commit_ms)
{
    return consumer_conf(bs, group, s, commit_ms, quiet_conf);
}

static void close_consumer(cstate *s)
{
    kuv_consumer_close(s->c);
    s->closed = 1;
    s->c = NULL;
}

/* rd_kafka_committed blocks: run it on libuv's thread pool. */
typedef struct committed_req {
    uv_work_t w;
    const char *bs, *group, *topic;
    int32_t partition;
    int64_t offset;
    int done;
} committed_req;

static void committed_work(uv_work_t *w)
{
    committed_req *q = w->data;
    char es[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", q->bs, es, sizeof es);
    rd_kafka_conf_set(conf, "group.id", q->group, es, sizeof es);
    rd_kafka_conf_set(conf, "log_level", "3", es, sizeof es);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    ASSERT(rk != NULL);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, q->topic, q->partition);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
    q->offset = e ? -1000 - e : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static void committed_after(uv_work_t *w, int status)
{
    committed_req *q = w->data;
    (void)status;
    q->done = 1;
}

static int64_t committed(const char *bs, const char *group, const char *topic, int32_t partition)
{
    committed_req q = {.bs = bs, .group = group, .topic = topic, .partition = partition};
    q.w.data = &q;
    ASSERT_EQ(uv_queue_work(loop, &q.w, committed_work, committed_after), 0);
    while (!q.done)
        uv_run(loop, UV_RUN_ONCE);
    return q.offset;
}

static int find_offset(cstate *s, const char *topic, int32_t partition, int64_t offset)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->msgs[i].topic, topic) && s->msgs[i].partition == partition &&
            s->msgs[i].offset == offset)
            return i;
    return -1;
}

typedef struct commit_wait {
    cstate *s;
    int32_t partition;
    int64_t offset;
} commit_wait;

static int committed_to(void *arg)
{
    commit_wait *w = arg;
    return w->s->last_commit[w->partition] == w->offset;
}

static void wait_commit(cstate *s, int32_t partition, int64_t offset)
{
    commit_wait w = {s, partition, offset};
    if (!run_until(committed_to, &w, 10000))
        fprintf(stderr, "commit of [%d] stuck at %" PRId64 ", want %" PRId64 "\n", partition,
                s->last_commit[partition], offset);
    ASSERT_EQ(s->last_commit[partition], offset);
}

/* ================================================================ */
/* tracker                                                          */
/* ================================================================ */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The model: flags over offsets; committable computed by brute force. */
#define MODEL_MAX 4096
typedef struct model {
    unsigned char handed[MODEL_MAX], done[MODEL_MAX];
    int64_t last, committable;
} model;

static int64_t model_committable(model *m)
{
    int64_t best = m->committable;
    for (int64_t o = 0; o <= m->last; o++) {
        if (!m->handed[o])
            continue;
        if (!m->done[o])
            break;
        if (o + 1 > best)
            best = o + 1;
    }
    return best;
}

static int test_tracker(void)
{
    kuv_tracker t;
    kuv_tracker_init(&t);
    /* fixed cases */
    ASSERT_EQ(kuv_tracker_committable(&t), -1);
    ASSERT_EQ(kuv_tracker_done(&t, 0), KUV_ENOTTRACKED);
    ASSERT_EQ(kuv_tracker_add(&t, -1), KUV_EINVAL);
    for (int64_t o = 10; o < 15; o++)
        ASSERT_EQ(kuv_tracker_add(&t, o), 0);
    ASSERT_EQ(kuv_tracker_add(&t, 14), KUV_EINVAL); /* not increasing */
    ASSERT_EQ(kuv_tracker_add(&t, 3), KUV_EINVAL);
    ASSERT_EQ(kuv_tracker_pending(&t), 5);
    ASSERT_EQ(kuv_tracker_done(&t, 12), 0);
    ASSERT_EQ(kuv_tracker_done(&t, 12), KUV_ENOTTRACKED); /* twice */
    ASSERT_EQ(kuv_tracker_done(&t, 9), KUV_ENOTTRACKED);
    ASSERT_EQ(kuv_tracker_done(&t, 15), KUV_ENOTTRACKED);
    ASSERT_EQ(kuv_tracker_committable(&t), -1);
    ASSERT_EQ(kuv_tracker_done(&t, 10), 0);
    ASSERT_EQ(kuv_tracker_committable(&t), 11);
    ASSERT_EQ(kuv_tracker_done(&t, 11), 0);
    ASSERT_EQ(kuv_tracker_committable(&t), 13);           /* 10, 11, 12 done */
    ASSERT_EQ(kuv_tracker_done(&t, 10), KUV_ENOTTRACKED); /* committed past */
    ASSERT_EQ(kuv_tracker_add(&t, 20), 0);                /* a gap (compaction) */
    ASSERT_EQ(kuv_tracker_done(&t, 20), 0);
    ASSERT_EQ(kuv_tracker_committable(&t), 13);
    ASSERT_EQ(kuv_tracker_done(&t, 14), 0);
    ASSERT_EQ(kuv_tracker_done(&t, 13), 0);
    ASSERT_EQ(kuv_tracker_committable(&t), 21);
    ASSERT_EQ(kuv_tracker_pending(&t), 0);
    kuv_tracker_reset(&t);
    ASSERT_EQ(kuv_tracker_committable(&t), -1);
    ASSERT_EQ(kuv_tracker_add(&t, 5), 0);
    kuv_tracker_free(&t);

    /* randomized against the model */
    const char *seed_env = getenv("MUTIRAO_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    fprintf(stderr, "tracker: seed %" PRIu64 "\n", seed);
    rng_state = seed * 2654435761u + 1;
    static model m;
    for (int round = 0; round < 300; round++) {
        memset(&m, 0, sizeof m);
        m.last = -1;
        m.committable = -1;
        kuv_tracker_init(&t);
        int64_t next = (int64_t)(rnd() % 5);
        int steps = 200 + (int)(rnd() % 3000);
        int window = 1 + (int)(rnd() % 300); /* how far out of order */
        for (int s = 0; s < steps; s++) {
            if (rnd() % 2 == 0 && next < MODEL_MAX - 10) {
                ASSERT_EQ(kuv_tracker_add(&t, next), 0);
                m.handed[next] = 1;
                m.last = next;
                next += 1 + (rnd() % 8 == 0 ? (int64_t)(rnd() % 4) : 0);
            } else if (m.last >= 0) {
                int64_t lo = m.last - window < 0 ? 0 : m.last - window;
                int64_t o = lo + (int64_t)(rnd() % (uint64_t)(m.last - lo + 2));
                int expect = (o <= m.last && m.handed[o] && !m.done[o] && o >= m.committable)
                                 ? 0
                                 : KUV_ENOTTRACKED;
                ASSERT_EQ(kuv_tracker_done(&t, o), expect);
                if (expect == 0)
                    m.done[o] = 1;
            }
            m.committable = model_committable(&m);
            ASSERT_EQ(kuv_tracker_committable(&t), m.committable);
            size_t pend = 0;
            for (int64_t o = 0; o <= m.last; o++)
                pend += m.handed[o] && !m.done[o];
            ASSERT_EQ(kuv_tracker_pending(&t), pend);
        }
        kuv_tracker_free(&t);
    }
    fprintf(stderr, "tracker: 300 randomized rounds agree with the model\n");
    ASSERT_EQ(strcmp(kuv_strerror(KUV_EQUEUEFULL), "producer queue is full"), 0);
    ASSERT_EQ(strcmp(kuv_errname(KUV_ENOTASSIGNED), "ENOTASSIGNED"), 0);
    ASSERT_EQ(strcmp(kuv_strerror(12345), "unknown error"), 0);
    return 0;
}

/* ================================================================ */
/* produce                                                          */
/* ================================================================ */

static int test_produce(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "t.prod", 3);
    ticker_start();
    kuv_producer *p = producer(m.bs, 10000);
    /* bad input: an error code, never a callback */
    ASSERT_EQ(kuv_produce(NULL, "t", NULL, 0, "x", 1, never_cb, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_produce(p, NULL, NULL, 0, "x", 1, never_cb, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_produce(p, "", NULL, 0, "x", 1, never_cb, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_produce(p, "t.prod", NULL, 3, "x", 1, never_cb, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_produce(p, "t.prod", NULL, 0, NULL, 1, never_cb, NULL), KUV_EINVAL);
    int err = 0;
    ASSERT(kuv_producer_new(NULL, m.bs, NULL, &err) == NULL);
    ASSERT_EQ(err, KUV_EINVAL);
    kuv_producer_opts bad;
    char ebuf[256] = "";
    kuv_producer_opts_default(&bad);
    const char *const badconf[] = {"no.such.setting", "1", NULL};
    bad.conf = badconf;
    bad.errbuf = ebuf;
    bad.errlen = sizeof ebuf;
    ASSERT(kuv_producer_new(loop, m.bs, &bad, &err) == NULL);
    ASSERT_EQ(err, KUV_ECONFIG);
    ASSERT_STR_CONTAINS(ebuf, "no.such.setting");

    dr_stats s = {0};
    char buf[16] = "will change";
    ASSERT_EQ(kuv_produce(p, "t.prod", "k", 1, buf, sizeof buf, dr_cb, &s), 0);
    memset(buf, 'X', sizeof buf); /* the payload was copied */
    ASSERT_EQ(kuv_produce(p, "t.prod", NULL, 0, NULL, 0, dr_cb, &s), 0); /* null value */
    ASSERT_EQ(kuv_produce(p, "t.prod", "k", 1, "no callback", 11, NULL, NULL), 0);
    produce_n(p, "t.prod", 100, &s);
    ASSERT_EQ(kuv_producer_pending(p), 103);
    ASSERT(wait_count(&s.fired, 102, 10000));
    ASSERT_EQ(s.ok, 102);
    ASSERT_EQ(s.off_thread, 0);
    ASSERT(s.per_partition[0] + s.per_partition[1] + s.per_partition[2] == 102);
    run_for(100);
    ASSERT_EQ(kuv_producer_pending(p), 0);
    kuv_producer_close(p, 2000);
    fprintf(stderr, "produce: 102 reports on the loop thread; max loop gap %" PRIu64 " ms\n",
            max_gap);
    ASSERT_LE(max_gap, 250);
    finish_loop();
    mock_stop(&m);
    return 0;
}

/* ================================================================ */
/* ensure                                                           */
/* ================================================================ */

typedef struct ens {
    int fired, err;
    char msg[768];
} ens;

static void ens_cb(void *ud, int err, const char *errmsg)
{
    ens *e = ud;
    e->fired++;
    e->err = err;
    snprintf(e->msg, sizeof e->msg, "%s", errmsg ? errmsg : "");
}

static void never_result(void *ud, int err, const char *errmsg)
{
    (void)ud;
    (void)err;
    (void)errmsg;
    ASSERT(!"a callback fired after an error return");
}

/* Ensures topic twice against bs; returns the first result's error. */
static int ensure_twice(const char *bs, const char *topic, int partitions, int admin_ms, char *msg,
                        size_t msglen)
{
    kuv_producer_opts o;
    kuv_producer_opts_default(&o);
    o.admin_timeout_ms = admin_ms;
    o.conf = quiet_conf;
    int err;
    kuv_producer *p = kuv_producer_new(loop, bs, &o, &err);
    ASSERT(p != NULL);
    ASSERT_EQ(kuv_topic_ensure(p, "bad name!", 1, never_result, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_topic_ensure(p, "", 1, never_result, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_topic_ensure(p, "..", 1, never_result, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_topic_ensure(p, "ok", 0, never_result, NULL), KUV_EINVAL);
    ASSERT_EQ(kuv_topic_ensure(p, "ok", 1, NULL, NULL), KUV_EINVAL);
    ens a = {0}, b = {0};
    uint64_t t0 = now_ms();
    ASSERT_EQ(kuv_topic_ensure(p, topic, partitions, ens_cb, &a), 0);
    ASSERT(wait_count(&a.fired, 1, admin_ms + 5000));
    fprintf(stderr, "ensure %s: %s (%s) in %" PRIu64 " ms\n", topic, kuv_errname(a.err), a.msg,
            now_ms() - t0);
    snprintf(msg, msglen, "%s", a.msg);
    if (a.err == 0) {
        ASSERT_EQ(kuv_topic_ensure(p, topic, partitions, ens_cb, &b), 0);
        ASSERT(wait_count(&b.fired, 1, admin_ms + 5000));
        fprintf(stderr, "ensure %s again: %s %s\n", topic, kuv_errname(b.err), b.msg);
        ASSERT_EQ(b.err, 0); /* "already exists" is success */
    }
    /* one left in flight is canceled by the close, exactly once */
    ens c = {0};
    ASSERT_EQ(kuv_topic_ensure(p, topic, partitions, ens_cb, &c), 0);
    kuv_producer_close(p, 1000);
    run_for(50);
    ASSERT_EQ(c.fired, 1);
    ASSERT_EQ(a.fired, 1);
    return a.err;
}

static int test_ensure(void)
{
    mock m;
    mock_start(&m);
    ticker_start();
    char msg[768];
    int err = ensure_twice(m.bs, "t.ensure", 4, 3000, msg, sizeof msg);
    if (err == 0) {
        fprintf(stderr, "ensure: the mock supports CreateTopics\n");
    } else {
        /* librdkafka 2.0.2's mock has no CreateTopics: the error must come
           back in bounded time with a clear message. */
        fprintf(stderr, "ensure: the mock does not support CreateTopics (%s)\n", msg);
        ASSERT_STR_CONTAINS(msg, "t.ensure");
        mock_topic(&m, "t.ensure", 4);
    }
    ASSERT_LE(max_gap, 250);
    finish_loop();
    mock_stop(&m);

    const char *real = getenv("MUTIRAO_TEST_KAFKA_BROKERS");
    if (real && *real) {
        char topic[128];
        snprintf(topic, sizeof topic, "mutirao.test.ensure.%d.%ld", (int)getpid(),
                 (long)time(NULL));
        ticker_start();
        ASSERT_EQ(ensure_twice(real, topic, 2, 15000, msg, sizeof msg), 0);
        finish_loop();
    } else {
        fprintf(stderr, "ensure: MUTIRAO_TEST_KAFKA_BROKERS not set; real broker part skipped\n");
    }
    return 0;
}

/* ================================================================ */
/* consume with a regex subscription                                */
/* ================================================================ */

static int count_topic(cstate *s, const char *topic)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += !strcmp(s->msgs[i].topic, topic);
    return n;
}

static int test_consume(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "t.a", 2);
    mock_topic(&m, "t.b", 1);
    mock_topic(&m, "other", 1);
    ticker_start();
    kuv_producer *p = producer(m.bs, 10000);
    dr_stats ds = {0};
    produce_n(p, "t.a", 10, &ds);
    produce_n(p, "t.b", 10, &ds);
    produce_n(p, "other", 5, &ds);
    ASSERT(wait_count(&ds.ok, 25, 10000));

    static cstate s;
    memset(&s, 0, sizeof s);
    s.auto_done = 1;
    kuv_consumer *c = consumer(m.bs, "g.consume", &s, 100);
    const char *bad[] = {""};
    ASSERT_EQ(kuv_subscribe(c, bad, 1), KUV_EINVAL);
    ASSERT_EQ(kuv_subscribe(c, NULL, 0), KUV_EINVAL);
    const char *pats[] = {"^t\\..*"};
    uint64_t t0 = now_ms();
    ASSERT_EQ(kuv_subscribe(c, pats, 1), 0);
    ASSERT(wait_count(&s.n, 20, 30000));
    fprintf(stderr, "consume: 20 messages in %" PRIu64 " ms after subscribing\n", now_ms() - t0);
    ASSERT_EQ(count_topic(&s, "t.a"), 10);
    ASSERT_EQ(count_topic(&s, "t.b"), 10);
    ASSERT_EQ(count_topic(&s, "other"), 0);
    for (int i = 0; i < s.n; i++) { /* the value says where it was produced */
        char want[64];
        ASSERT_EQ(strncmp(s.msgs[i].value, s.msgs[i].topic, strlen(s.msgs[i].topic)), 0);
        snprintf(want, sizeof want, "%s:", s.msgs[i].topic);
        ASSERT_STR_CONTAINS(s.msgs[i].value, want);
    }
    ASSERT_EQ(s.off_thread, 0);
    ASSERT_EQ(kuv_consumer_pending(c), 0);

    /* a topic created after subscribing is seen at the next metadata refresh */
    mock_topic(&m, "t.c", 1);
    t0 = now_ms();
    produce_n(p, "t.c", 5, &ds);
    ASSERT(wait_count(&s.n, 25, 20000));
    ASSERT_EQ(count_topic(&s, "t.c"), 5);
    fprintf(stderr, "consume: new topic t.c consumed %" PRIu64 " ms after its creation\n",
            now_ms() - t0);

    kuv_producer_close(p, 1000);
    t0 = now_ms();
    close_consumer(&s);
    fprintf(stderr, "consume: max loop gap %" PRIu64 " ms\n", max_gap);
    ASSERT_LE(max_gap, 250);
    finish_loop();
    fprintf(stderr, "consume: consumer closed in %" PRIu64 " ms\n", now_ms() - t0);
    ASSERT_EQ(s.after_close, 0);
    mock_stop(&m);
    return 0;
}

/* ================================================================ */
/* contiguous-prefix commits                                        */
/* ================================================================ */

/* Produces 10 to topic (1 partition) at bs, consumes in group, finishes out
   of order and checks the committed offsets; then a second consumer checks
   the revoke commit and that a finish after the revoke is ignored. */
static void commit_scenario(const char *bs, const char *topic, const char *group, int ensure)
{
    kuv_producer *p = producer(bs, 15000);
    if (ensure) {
        ens e = {0};
        ASSERT_EQ(kuv_topic_ensure(p, topic, 1, ens_cb, &e), 0);
        ASSERT(wait_count(&e.fired, 1, 20000));
        ASSERT_EQ(e.err, 0);
    }
    dr_stats ds = {0};
    produce_n(p, topic, 10, &ds);
    ASSERT(wait_count(&ds.fired, 10, 20000));
    ASSERT_EQ(ds.ok, 10);

    static cstate s;
    memset(&s, 0, sizeof s);
    kuv_consumer *c = consumer(bs, group, &s, 50);
    const char *pats[] = {topic};
    ASSERT_EQ(kuv_subscribe(c, pats, 1), 0);
    ASSERT(wait_count(&s.n, 10, 30000));
    for (int64_t o = 0; o < 10; o++)
        ASSERT_GE(find_offset(&s, topic, 0, o), 0);
    ASSERT_EQ(kuv_consumer_pending(c), 10);

    ASSERT_EQ(kuv_done(c, topic, 0, 3), 0);
    ASSERT_EQ(kuv_done(c, topic, 0, 1), 0);
    ASSERT_EQ(kuv_done(c, topic, 0, 0), 0);
    ASSERT_EQ(kuv_done(c, topic, 0, 0), KUV_ENOTTRACKED);
    ASSERT_EQ(kuv_done(c, topic, 0, 42), KUV_ENOTTRACKED);
    ASSERT_EQ(kuv_done(c, topic, 7, 0), KUV_ENOTASSIGNED);
    ASSERT_EQ(kuv_done(c, "nope", 0, 0), KUV_ENOTASSIGNED);
    wait_commit(&s, 0, 2);
    ASSERT_EQ(committed(bs, group, topic, 0), 2);
    ASSERT_EQ(kuv_done(c, topic, 0, 2), 0);
    wait_commit(&s, 0, 4);
    for (int64_t o = 9; o >= 5; o--)
        ASSERT_EQ(kuv_done(c, topic, 0, o), 0);
    run_for(200);
    ASSERT_EQ(s.last_commit[0], 4);
    ASSERT_EQ(committed(bs, group, topic, 0), 4);
    ASSERT_EQ(kuv_done(c, topic, 0, 4), 0);
    wait_commit(&s, 0, 10);
    ASSERT_EQ(committed(bs, group, topic, 0), 10);
    ASSERT_EQ(kuv_consumer_pending(c), 0);
    close_consumer(&s);
    run_for(200);
    ASSERT_EQ(s.after_close, 0);
    fprintf(stderr, "commit: out-of-order finishes committed 2, 4, 10\n");

    /* second consumer: resumes at 10; a resubscribe revokes the partition
       and commits its finished prefix; a later finish is ignored */
    produce_n(p, topic, 5, &ds);
    ASSERT(wait_count(&ds.ok, 15, 20000));
    static cstate s2;
    memset(&s2, 0, sizeof s2);
    kuv_consumer *c2 = consumer(bs, group, &s2, 60000); /* only the revoke commits */
    ASSERT_EQ(kuv_subscribe(c2, pats, 1), 0);
    ASSERT(wait_count(&s2.n, 5, 30000));
    ASSERT_EQ(s2.msgs[0].offset, 10);
    ASSERT_EQ(kuv_done(c2, topic, 0, 10), 0);
    ASSERT_EQ(kuv_done(c2, topic, 0, 11), 0);
    ASSERT_EQ(kuv_done(c2, topic, 0, 13), 0);
    const char *other[] = {"^mutirao-nothing-matches-this$"};
    ASSERT_EQ(kuv_subscribe(c2, other, 1), 0);
    ASSERT(wait_count(&s2.revoked, 1, 30000));
    ASSERT_EQ(kuv_done(c2, topic, 0, 12), KUV_ENOTASSIGNED); /* after the revoke: ignored */
    ASSERT_EQ(kuv_consumer_pending(c2), 0);
    wait_commit(&s2, 0, 12);
    ASSERT_EQ(committed(bs, group, topic, 0), 12);
    close_consumer(&s2);
    kuv_producer_close(p, 1000);
    fprintf(stderr, "commit: revoke committed 12; a finish after it was ignored\n");
}

static int test_commit(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "c.t", 1);
    ticker_start();
    commit_scenario(m.bs, "c.t", "g.commit", 0);
    fprintf(stderr, "commit: max loop gap %" PRIu64 " ms\n", max_gap);
    ASSERT_LE(max_gap, 250);
    finish_loop();
    mock_stop(&m);
    return 0;
}

static int test_real(void)
{
    const char *real = getenv("MUTIRAO_TEST_KAFKA_BROKERS");
    if (!real || !*real) {
        fprintf(stderr, "real: MUTIRAO_TEST_KAFKA_BROKERS not set; skipped\n");
        return 77;
    }
    char topic[128], group[128];
    snprintf(topic, sizeof topic, "mutirao.test.kuv.%d.%ld", (int)getpid(), (long)time(NULL));
    snprintf(group, sizeof group, "mutirao.test.g.%d.%ld", (int)getpid(), (long)time(NULL));
    ticker_start();
    commit_scenario(real, topic, group, 1);
    fprintf(stderr, "real: max loop gap %" PRIu64 " ms\n", max_gap);
    ASSERT_LE(max_gap, 250);
    finish_loop();
    return 0;
}

/* ================================================================ */
/* pause / resume                                                   */
/* ================================================================ */

static int count_partition(cstate *s, int32_t partition)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += s->msgs[i].partition == partition;
    return n;
}

/* Each (topic, partition, offset) handed out to s at most once: nothing
 * fetched twice; with in_order, also in increasing offset order per (topic,
 * partition). Fails through ASSERT (TEST_FAIL aborts in this file). */
static void check_once(const cstate *s, int in_order)
{
    for (int i = 0; i < s->n; i++)
        for (int j = i + 1; j < s->n; j++) {
            const rec *a = &s->msgs[i], *b = &s->msgs[j];
            if (a->partition != b->partition || strcmp(a->topic, b->topic) != 0)
                continue;
            if (in_order)
                ASSERT_LT(a->offset, b->offset);
            else
                ASSERT(a->offset != b->offset);
        }
}

static int test_pause(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "p.t", 2);
    ticker_start();
    kuv_producer *p = producer(m.bs, 10000);
    static cstate s;
    memset(&s, 0, sizeof s);
    s.auto_done = 1;
    kuv_consumer *c = consumer(m.bs, "g.pause", &s, 100);
    const char *pats[] = {"p.t"};
    ASSERT_EQ(kuv_subscribe(c, pats, 1), 0);
    dr_stats ds = {0};
    produce_n(p, "p.t", 20, &ds);
    ASSERT(wait_count(&s.n, 20, 30000));

    /* all partitions */
    ASSERT_EQ(kuv_pause(c, NULL, 0), 0);
    produce_n(p, "p.t", 20, &ds);
    ASSERT(wait_count(&ds.ok, 40, 10000));
    run_for(1500);
    ASSERT_EQ(s.n, 20);
    ASSERT_EQ(kuv_resume(c, NULL, 0), 0);
    ASSERT(wait_count(&s.n, 40, 10000));
    run_for(200);
    ASSERT_EQ(s.n, 40);

    /* one partition */
    ASSERT_EQ(kuv_pause(c, "p.t", 9), KUV_ENOTASSIGNED);
    ASSERT_EQ(kuv_pause(c, "nope", 0), KUV_ENOTASSIGNED);
    ASSERT_EQ(kuv_pause(c, "p.t", 0), 0);
    int p0 = count_partition(&s, 0), p1 = count_partition(&s, 1);
    int before0 = ds.per_partition[0], before1 = ds.per_partition[1];
    int n0 = s.n; /* before: some may be handed out before the reports */
    produce_n(p, "p.t", 40, &ds);
    ASSERT(wait_count(&ds.ok, 80, 10000));
    int new0 = ds.per_partition[0] - before0, new1 = ds.per_partition[1] - before1;
    ASSERT(new0 > 0 && new1 > 0);
    int target = n0 + new1;
    ASSERT(wait_count(&s.n, target, 10000));
    run_for(1000);
    ASSERT_EQ(count_partition(&s, 0), p0);
    ASSERT_EQ(count_partition(&s, 1), p1 + new1);
    ASSERT_EQ(kuv_resume(c, "p.t", 0), 0);
    ASSERT(wait_count(&s.n, 80, 10000));
    ASSERT_EQ(count_partition(&s, 0), p0 + new0);
    fprintf(stderr, "pause: all and one partition held back, then resumed (%d messages)\n", s.n);

    check_once(&s, 0); /* no duplicates (one topic here) */
    kuv_producer_close(p, 1000);
    close_consumer(&s);
    ASSERT_LE(max_gap, 250);
    finish_loop();
    mock_stop(&m);
    return 0;
}

/* kuv_hold: a held topic's messages wait in librdkafka's partition queues
 * (fetching stops at queued.min.messages) and nothing is handed out; the
 * consumer stays in its group however long the hold lasts (the poll that
 * max.poll.interval.ms counts goes on); released, every message comes once,
 * in offset order per partition. A hold taken before the topic is
 * assigned covers it once assigned. */
static int test_hold(void)
{
    static const char *const conf[] = {
        "log_level", "3", "queued.min.messages", "50", "max.poll.interval.ms", "6500", NULL};
    mock m;
    mock_start(&m);
    mock_topic(&m, "h.t", 2);
    mock_topic(&m, "h2.t", 2);
    ticker_start();
    kuv_producer *p = producer(m.bs, 10000);
    static cstate s;
    memset(&s, 0, sizeof s);
    s.auto_done = 1;
    kuv_consumer *c = consumer_conf(m.bs, "g.hold", &s, 100, conf);
    ASSERT_EQ(kuv_hold(NULL, "h.t", 1), KUV_EINVAL);
    ASSERT_EQ(kuv_hold(c, NULL, 1), KUV_EINVAL);
    ASSERT_EQ(kuv_hold(c, "", 1), KUV_EINVAL);
    ASSERT_EQ(kuv_hold(c, "h2.t", 1), 0); /* before it is assigned */
    ASSERT_EQ(kuv_hold(c, "h2.t", 1), 0); /* twice: one hold */
    const char *pats[] = {"h.t", "h2.t"};
    ASSERT_EQ(kuv_subscribe(c, pats, 2), 0);
    dr_stats ds = {0};
    produce_n(p, "h.t", 20, &ds);
    ASSERT(wait_count(&s.n, 20, 30000));

    ASSERT_EQ(kuv_hold(c, "h.t", 1), 0);
    produce_n(p, "h.t", 400, &ds);
    produce_n(p, "h2.t", 30, &ds);
    ASSERT(wait_count(&ds.ok, 450, 10000));
    run_for(8000); /* longer than max.poll.interval.ms */
    ASSERT_EQ(s.n, 20);
    int revoked = s.revoked;
    ASSERT_EQ(kuv_hold(c, "h.t", 0), 0);
    ASSERT(wait_count(&s.n, 420, 10000));
    ASSERT_EQ(kuv_hold(c, "h2.t", 0), 0);
    ASSERT(wait_count(&s.n, 450, 10000));
    run_for(500);
    ASSERT_EQ(s.n, 450);
    ASSERT_EQ(s.revoked, revoked); /* never left the group */
    fprintf(stderr, "hold: 430 messages held for 8 s, then handed out\n");

    check_once(&s, 1); /* once each, in offset order per partition */
    kuv_producer_close(p, 1000);
    close_consumer(&s);
    ASSERT_LE(max_gap, 250);
    finish_loop();
    mock_stop(&m);
    return 0;
}

/* A paused partition moved to another consumer and given back is fetched
 * again; the one that stayed keeps its pause. (librdkafka keeps a
 * partition's pause across its revocation and a later assignment.) */
static int test_pause_rebalance(void)
{
    static const char *const coop_conf[] = {"log_level", "3", "partition.assignment.strategy",
                                            "cooperative-sticky", NULL};
    mock m;
    mock_start(&m);
    mock_topic(&m, "pr.t", 2);
    ticker_start();
    kuv_producer *p = producer(m.bs, 10000);
    static cstate s1, s2;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    s1.auto_done = s2.auto_done = 1;
    kuv_consumer *c1 = consumer_conf(m.bs, "g.pr", &s1, 100, coop_conf);
    const char *pats[] = {"pr.t"};
    ASSERT_EQ(kuv_subscribe(c1, pats, 1), 0);
    dr_stats ds = {0};
    produce_n(p, "pr.t", 10, &ds);
    ASSERT(wait_count(&s1.n, 10, 30000));
    run_for(500); /* their offsets commit */
    ASSERT_EQ(kuv_pause(c1, "pr.t", 0), 0);
    ASSERT_EQ(kuv_pause(c1, "pr.t", 1), 0);

    /* a second consumer takes one partition, then leaves: it comes back */
    int a1 = s1.assigned;
    consumer_conf(m.bs, "g.pr", &s2, 100, coop_conf);
    ASSERT_EQ(kuv_subscribe(s2.c, pats, 1), 0);
    ASSERT(wait_count(&s2.assigned, 1, 30000));
    int moved = s2.assigned_to[0] ? 0 : 1, kept = 1 - moved;
    close_consumer(&s2);
    ASSERT(wait_count(&s1.assigned, a1 + 1, 30000));
    ASSERT_EQ(s1.assigned_to[moved], 2);
    ASSERT_EQ(s1.assigned_to[kept], 1);

    int had_moved = count_partition(&s1, moved), had_kept = count_partition(&s1, kept);
    int pm = ds.per_partition[moved], pk = ds.per_partition[kept];
    int n1 = s1.n; /* before: some may be handed out before the reports */
    produce_n(p, "pr.t", 20, &ds);
    ASSERT(wait_count(&ds.ok, 30, 10000));
    int new_moved = ds.per_partition[moved] - pm, new_kept = ds.per_partition[kept] - pk;
    ASSERT(new_moved > 0 && new_kept > 0);
    ASSERT(wait_count(&s1.n, n1 + new_moved, 10000));
    run_for(1000);
    ASSERT_EQ(count_partition(&s1, moved), had_moved + new_moved);
    ASSERT_EQ(count_partition(&s1, kept), had_kept);
    ASSERT_EQ(kuv_resume(c1, "pr.t", kept), 0);
    ASSERT(wait_count(&s1.n, 30, 10000));
    ASSERT_EQ(count_partition(&s1, kept), had_kept + new_kept);
    fprintf(stderr, "pause_rebalance: partition %d fetched again once given back\n", moved);
    kuv_producer_close(p, 1000);
    close_consumer(&s1);
    finish_loop();
    mock_stop(&m);
    return 0;
}

/* ================================================================ */
/* a broker taken down                                              */
/* ================================================================ */

static int test_broker_down(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "d.t", 1);
    ticker_start();
    const int timeout = 1500;
    kuv_producer *p = producer(m.bs, timeout);
    dr_stats s = {0};
    produce_n(p, "d.t", 1, &s);
    ASSERT(wait_count(&s.ok, 1, 10000));

    ASSERT_EQ(rd_kafka_mock_broker_set_down(m.mc, 1), 0);
    run_for(100);
    uint64_t t0 = now_ms();
    produce_n(p, "d.t", 20, &s);
    ASSERT(wait_count(&s.fired, 21, timeout + 5000));
    uint64_t took = now_ms() - t0;
    fprintf(stderr, "broker_down: 20 deliveries failed in %" PRIu64 " ms: %s: %s\n", took,
            kuv_errname(s.last_err), s.lastmsg);
    ASSERT_EQ(s.failed, 20);
    ASSERT_EQ(s.last_err, KUV_ETIMEDOUT);
    ASSERT_STR_CONTAINS(s.lastmsg, m.bs); /* names the broker */
    ASSERT_STR_CONTAINS(s.lastmsg, "d.t");
    ASSERT_LE(took, timeout + 2000); /* librdkafka scans timeouts once a second */

    /* the broker comes back: deliveries succeed again */
    ASSERT_EQ(rd_kafka_mock_broker_set_up(m.mc, 1), 0);
    /* reconnect backoff may outlast a 1.5 s message timeout, and a message
       in flight waits for its request to time out: retry a while */
    uint64_t t1 = now_ms();
    while (s.ok < 2 && now_ms() - t1 < 40000) {
        int fired = s.fired;
        produce_n(p, "d.t", 1, &s);
        ASSERT(wait_count(&s.fired, fired + 1, 45000));
    }
    ASSERT_EQ(s.ok, 2);
    fprintf(stderr, "broker_down: a delivery succeeded %" PRIu64 " ms after set_up\n",
            now_ms() - t1);
    fprintf(stderr, "broker_down: recovered after set_up; max loop gap %" PRIu64 " ms\n", max_gap);
    ASSERT_LE(max_gap, 250);
    kuv_producer_close(p, 1000);
    finish_loop();
    mock_stop(&m);
    return 0;
}

/* ================================================================ */
/* close with messages in flight                                    */
/* ================================================================ */

static kuv_producer *close_from_cb_p;
static void close_in_cb(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    dr_cb(ud, err, errmsg, partition, offset);
    if (close_from_cb_p) {
        kuv_producer *p = close_from_cb_p;
        close_from_cb_p = NULL;
        kuv_producer_close(p, 2000); /* deferred until the callback returns */
        ASSERT_EQ(kuv_produce(p, "x.t", NULL, 0, "x", 1, never_cb, NULL), KUV_ECLOSED);
    }
}

static int test_close_inflight(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "x.t", 2);
    ticker_start();

    /* 1. close right after producing 2000: every report fires exactly once */
    kuv_producer *p = producer(m.bs, 10000);
    dr_stats s = {0};
    produce_n(p, "x.t", 2000, &s);
    uint64_t t0 = now_ms();
    kuv_producer_close(p, 2000);
    uint64_t took = now_ms() - t0;
    last_tick = max_gap = 0;
    fprintf(stderr,
            "close_inflight: close with 2000 in flight took %" PRIu64 " ms: %d ok, %d "
            "failed\n",
            took, s.ok, s.failed);
    ASSERT_EQ(s.fired, 2000);
    run_for(100);
    ASSERT_EQ(s.fired, 2000);

    /* 2. broker down: the flush gives up at its bound, the rest is canceled */
    kuv_producer *q = producer(m.bs, 30000);
    dr_stats s2 = {0};
    produce_n(q, "x.t", 1, &s2);
    ASSERT(wait_count(&s2.ok, 1, 10000));
    ASSERT_EQ(rd_kafka_mock_broker_set_down(m.mc, 1), 0);
    run_for(100);
    produce_n(q, "x.t", 50, &s2);
    ens e = {0};
    ASSERT_EQ(kuv_topic_ensure(q, "x.t", 2, ens_cb, &e), 0);
    t0 = now_ms();
    kuv_producer_close(q, 300);
    took = now_ms() - t0;
    last_tick = max_gap = 0; /* the close blocked by design: bounded by its timeout */
    fprintf(stderr, "close_inflight: close with the broker down took %" PRIu64 " ms: %s (%s)\n",
            took, kuv_errname(s2.last_err), s2.lastmsg);
    ASSERT_EQ(s2.fired, 51);
    ASSERT_EQ(s2.failed, 50);
    ASSERT_EQ(s2.last_err, KUV_ECANCELED);
    ASSERT_EQ(e.fired, 1);
    ASSERT_LE(took, 3000);
    ASSERT_EQ(rd_kafka_mock_broker_set_up(m.mc, 1), 0);

    /* 3. close from inside a delivery callback */
    kuv_producer *r = producer(m.bs, 10000);
    dr_stats s3 = {0};
    close_from_cb_p = r;
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(kuv_produce(r, "x.t", NULL, 0, "v", 1, close_in_cb, &s3), 0);
    ASSERT(wait_count(&s3.fired, 100, 10000));
    ASSERT_EQ(close_from_cb_p, NULL);

    /* 4. a consumer closed with handed-out, unfinished messages */
    kuv_producer *w = producer(m.bs, 10000);
    dr_stats s4 = {0};
    produce_n(w, "x.t", 30, &s4);
    static cstate cs;
    memset(&cs, 0, sizeof cs);
    kuv_consumer *c = consumer(m.bs, "g.close", &cs, 100);
    const char *pats[] = {"x.t"};
    ASSERT_EQ(kuv_subscribe(c, pats, 1), 0);
    ASSERT(wait_count(&cs.n, 10, 30000));
    ASSERT_EQ(kuv_done(c, cs.msgs[0].topic, cs.msgs[0].partition, cs.msgs[0].offset), 0);
    kuv_producer_close(w, 1000);
    t0 = now_ms();
    close_consumer(&cs);
    ASSERT_LE(max_gap, 250);
    finish_loop(); /* returns once every handle is closed and freed */
    fprintf(stderr, "close_inflight: consumer with %d unfinished closed in %" PRIu64 " ms\n",
            cs.n - 1, now_ms() - t0);
    ASSERT_EQ(cs.after_close, 0);
    mock_stop(&m);
    return 0;
}

/* ================================================================ */
/* bench (not a ctest): latency and throughput against the mock     */
/* ================================================================ */

static const char *bench_where = "mock cluster";

typedef struct lat {
    uint64_t *sent, *got;
    int n, fired, failed;
} lat;

static void lat_cb(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    (void)errmsg;
    (void)partition;
    (void)offset;
    uint64_t *slot = ud;
    *slot = uv_hrtime();
    if (err)
        fprintf(stderr, "bench: delivery failed: %s\n", errmsg);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct pacer {
    kuv_producer *p;
    lat *l;
    int i;
    uv_timer_t t;
} pacer;

static void pace_cb(uv_timer_t *t)
{
    pacer *pc = t->data;
    if (pc->i >= pc->l->n) {
        uv_timer_stop(t);
        return;
    }
    char v[100];
    memset(v, 'v', sizeof v);
    pc->l->sent[pc->i] = uv_hrtime();
    ASSERT_EQ(kuv_produce(pc->p, "b.t", NULL, 0, v, sizeof v, lat_cb, &pc->l->got[pc->i]), 0);
    pc->i++;
}

static int all_got(void *arg)
{
    lat *l = arg;
    for (int i = 0; i < l->n; i++)
        if (!l->got[i])
            return 0;
    return 1;
}

static void report_latency(const char *what, lat *l)
{
    uint64_t *d = malloc((size_t)l->n * sizeof *d);
    for (int i = 0; i < l->n; i++)
        d[i] = l->got[i] - l->sent[i];
    qsort(d, (size_t)l->n, sizeof *d, cmp_u64);
    printf("bench (%s): %s: n=%d p50 %.3f ms p99 %.3f ms max %.3f ms\n", bench_where, what, l->n,
           d[l->n / 2] / 1e6, d[(l->n * 99) / 100] / 1e6, d[l->n - 1] / 1e6);
    free(d);
}

typedef struct flood {
    kuv_producer *p;
    int total, produced, acked, full;
    uv_idle_t idle;
} flood;

static void flood_dr(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    flood *f = ud;
    (void)errmsg;
    (void)partition;
    (void)offset;
    ASSERT_EQ(err, 0);
    f->acked++;
}

static void flood_cb(uv_idle_t *h)
{
    flood *f = h->data;
    char v[100];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 1000 && f->produced < f->total; i++) {
        int r = kuv_produce(f->p, "b.t", NULL, 0, v, sizeof v, flood_dr, f);
        if (r == KUV_EQUEUEFULL) {
            f->full++;
            return; /* backpressure: the loop serves reports, then we retry */
        }
        ASSERT_EQ(r, 0);
        f->produced++;
    }
    if (f->produced == f->total)
        uv_idle_stop(h);
}

static int bench_on(const char *bs);

static int test_bench(void)
{
    mock m;
    mock_start(&m);
    mock_topic(&m, "b.t", 1);
    int r = bench_on(m.bs);
    mock_stop(&m);
    return r;
}

/* The same against MUTIRAO_TEST_KAFKA_BROKERS (topic b.t, 1 partition). */
static int test_bench_real(void)
{
    const char *real = getenv("MUTIRAO_TEST_KAFKA_BROKERS");
    if (!real || !*real)
        return 77;
    bench_where = "real Kafka";
    ticker_start();
    kuv_producer *p = producer(real, 30000);
    ens e = {0};
    ASSERT_EQ(kuv_topic_ensure(p, "b.t", 1, ens_cb, &e), 0);
    ASSERT(wait_count(&e.fired, 1, 20000));
    ASSERT_EQ(e.err, 0);
    kuv_producer_close(p, 1000);
    finish_loop();
    return bench_on(real);
}

static int bench_on(const char *bs)
{
    ticker_start();
    kuv_producer *p = producer(bs, 30000);
    dr_stats warm = {0};
    produce_n(p, "b.t", 10, &warm);
    ASSERT(wait_count(&warm.ok, 10, 10000));

    /* paced: one message per ms */
    lat l = {0};
    l.n = 3000;
    l.sent = calloc((size_t)l.n, sizeof *l.sent);
    l.got = calloc((size_t)l.n, sizeof *l.got);
    pacer pc = {.p = p, .l = &l};
    uv_timer_init(loop, &pc.t);
    pc.t.data = &pc;
    uv_timer_start(&pc.t, pace_cb, 1, 1);
    ASSERT(run_until(all_got, &l, 60000));
    uv_close((uv_handle_t *)&pc.t, NULL);
    report_latency("produce -> delivery report, 1 msg/ms, 100 B, linger.ms=1, acks=all", &l);

    /* one at a time: the next is produced from the previous report */
    memset(l.got, 0, (size_t)l.n * sizeof *l.got);
    l.n = 1000;
    for (int i = 0; i < l.n; i++) {
        l.sent[i] = uv_hrtime();
        ASSERT_EQ(kuv_produce(p, "b.t", NULL, 0, "x", 1, lat_cb, &l.got[i]), 0);
        while (!l.got[i])
            uv_run(loop, UV_RUN_ONCE);
    }
    report_latency("produce -> delivery report, one at a time", &l);
    free(l.sent);
    free(l.got);

    /* throughput */
    flood f = {.p = p, .total = 300000};
    uv_idle_init(loop, &f.idle);
    f.idle.data = &f;
    uint64_t t0 = uv_hrtime();
    uv_idle_start(&f.idle, flood_cb);
    ASSERT(wait_count(&f.acked, f.total, 120000));
    double secs = (uv_hrtime() - t0) / 1e9;
    uv_close((uv_handle_t *)&f.idle, NULL);
    printf("bench (%s): throughput %d x 100 B in %.2f s = %.0f msg/s (queue-full "
           "backoffs %d)\n",
           bench_where, f.total, secs, f.total / secs, f.full);
    printf("bench: max loop gap %" PRIu64 " ms\n", max_gap);
    kuv_producer_close(p, 2000);
    finish_loop();
    return 0;
}

/* ================================================================ */

static const struct {
    const char *name;
    int (*fn)(void);
} tests[] = {
    {"tracker", test_tracker},
    {"produce", test_produce},
    {"ensure", test_ensure},
    {"consume", test_consume},
    {"commit", test_commit},
    {"pause", test_pause},
    {"pause_rebalance", test_pause_rebalance},
    {"hold", test_hold},
    {"broker_down", test_broker_down},
    {"close_inflight", test_close_inflight},
    {"real", test_real},
    {"bench", test_bench},
    {"bench-real", test_bench_real},
};

int main(int argc, char **argv)
{
    loop = uv_default_loop();
    loop_thread = pthread_self();
    int rc = 0, ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 ? strcmp(argv[1], tests[i].name) != 0 : !strncmp(tests[i].name, "bench", 5))
            continue;
        fprintf(stderr, "== %s\n", tests[i].name);
        int r = tests[i].fn();
        ran++;
        if (r == 77 && argc > 1)
            return 77;
        if (r && r != 77)
            rc = 1;
    }
    if (!ran) {
        fprintf(stderr, "unknown test %s\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    uv_loop_close(loop);
    return rc;
}
