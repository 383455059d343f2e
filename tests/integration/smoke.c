/* integration.services_smoke: the loopback services of tests/services.sh work
 * from C with the libraries the fleet links.
 *
 *   Kafka (librdkafka, MUTIRAO_TEST_KAFKA_BROKERS=host:port): create a topic
 *   with 8 partitions through the Admin API, produce 100 keyed messages,
 *   consume them in a fresh consumer group and check that all 100 arrive
 *   exactly once; then delete the topic.
 *   Redis (hiredis, MUTIRAO_TEST_REDIS_URL=redis://host:port[/db]): SET, GET,
 *   DEL.
 *
 * Exit status: 0 ok, 1 failure, 77 skipped (a variable is missing and CI is
 * not set; under CI a missing variable is a failure). */
#include <librdkafka/rdkafka.h>
#include <hiredis/hiredis.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SKIP 77
#define PARTITIONS 8
#define MESSAGES 100
#define OP_TIMEOUT_MS 30000
#define CONSUME_TIMEOUT_S 60

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("smoke: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "smoke: FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int set_conf(rd_kafka_conf_t *conf, const char *key, const char *val)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, val, errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        return fail("conf %s=%s: %s", key, val, errstr);
    return 0;
}

static rd_kafka_conf_t *base_conf(const char *brokers)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (set_conf(conf, "bootstrap.servers", brokers) ||
        set_conf(conf, "client.id", "mutirao-smoke")) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

/* --- Admin API ------------------------------------------------------------ */

/* Waits for the result event of an admin request on QUEUE. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *queue, const char *what)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(queue, OP_TIMEOUT_MS + 5000);
    if (!ev) {
        fail("%s: no result in %d ms", what, OP_TIMEOUT_MS + 5000);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        fail("%s: %s", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static int create_topic(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    int rc = 1;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, PARTITIONS, 1, errstr, sizeof errstr);
    if (!nt)
        return fail("NewTopic %s: %s", topic, errstr);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, OP_TIMEOUT_MS, errstr, sizeof errstr);
    rd_kafka_AdminOptions_set_request_timeout(opts, OP_TIMEOUT_MS, errstr, sizeof errstr);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);

    rd_kafka_CreateTopics(rk, &nt, 1, opts, queue);
    rd_kafka_event_t *ev = admin_wait(queue, "CreateTopics");
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        if (n != 1)
            fail("CreateTopics: %zu topic results", n);
        else if (rd_kafka_topic_result_error(tr[0]))
            fail("CreateTopics %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));
        else
            rc = 0;
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(queue);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

static void delete_topic(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, OP_TIMEOUT_MS, errstr, sizeof errstr);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, opts, queue);
    rd_kafka_event_t *ev = admin_wait(queue, "DeleteTopics");
    if (ev) {
        const rd_kafka_DeleteTopics_result_t *res = rd_kafka_event_DeleteTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_DeleteTopics_result_topics(res, &n) : NULL;
        if (n == 1 && rd_kafka_topic_result_error(tr[0]))
            say("warning: DeleteTopics %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));
        else
            say("kafka: deleted topic %s", topic);
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(queue);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_DeleteTopic_destroy(dt);
}

/* --- produce / consume ----------------------------------------------------- */

struct delivery {
    int ok, failed;
    unsigned partitions_seen; /* bit mask */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct delivery *d = opaque;
    if (m->err) {
        if (d->failed++ == 0)
            fprintf(stderr, "smoke: delivery failed: %s\n", rd_kafka_err2str(m->err));
    } else {
        d->ok++;
        if (m->partition >= 0 && m->partition < 32)
            d->partitions_seen |= 1u << m->partition;
    }
}

static int popcount(unsigned v)
{
    int n = 0;
    for (; v; v &= v - 1)
        n++;
    return n;
}

static int produce(const char *brokers, const char *topic)
{
    char errstr[512];
    struct delivery d = {0, 0, 0};
    rd_kafka_conf_t *conf = base_conf(brokers);
    if (!conf || set_conf(conf, "acks", "all") || set_conf(conf, "linger.ms", "5") ||
        set_conf(conf, "message.timeout.ms", "30000")) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, &d);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return fail("producer: %s", errstr);
    }
    int rc = 0;
    for (int i = 0; i < MESSAGES && !rc; i++) {
        char key[32], val[64];
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(val, sizeof val, "message-%d", i);
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                    RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (err)
            rc = fail("produce message %d: %s", i, rd_kafka_err2str(err));
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, OP_TIMEOUT_MS);
    if (!rc && ferr)
        rc = fail("flush: %s (%d delivered)", rd_kafka_err2str(ferr), d.ok);
    if (!rc && (d.ok != MESSAGES || d.failed))
        rc = fail("%d of %d messages delivered, %d failed", d.ok, MESSAGES, d.failed);
    if (!rc)
        say("kafka: produced %d messages to %s (acks=all) over %d partitions", d.ok, topic,
            popcount(d.partitions_seen));
    rd_kafka_destroy(rk);
    return rc;
}

static int consume(const char *brokers, const char *topic, const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = base_conf(brokers);
    if (!conf || set_conf(conf, "group.id", group) ||
        set_conf(conf, "auto.offset.reset", "earliest") ||
        set_conf(conf, "enable.auto.commit", "false")) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return fail("consumer: %s", errstr);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    int rc = 0;
    if (err)
        rc = fail("subscribe %s: %s", topic, rd_kafka_err2str(err));

    char seen[MESSAGES] = {0};
    int got = 0, dups = 0, errors = 0;
    unsigned parts = 0;
    double t0 = now_s(), first = 0;
    while (!rc && got < MESSAGES && now_s() - t0 < CONSUME_TIMEOUT_S) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m)
            continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && errors++ < 5)
                fprintf(stderr, "smoke: consumer: %s\n", rd_kafka_message_errstr(m));
        } else {
            int n = -1;
            char buf[64];
            size_t len = m->len < sizeof buf - 1 ? m->len : sizeof buf - 1;
            memcpy(buf, m->payload, len);
            buf[len] = '\0';
            if (sscanf(buf, "message-%d", &n) != 1 || n < 0 || n >= MESSAGES) {
                rc = fail("unexpected payload '%s'", buf);
            } else if (seen[n]) {
                dups++;
            } else {
                seen[n] = 1;
                got++;
                if (!first)
                    first = now_s();
                if (m->partition >= 0 && m->partition < 32)
                    parts |= 1u << m->partition;
            }
        }
        rd_kafka_message_destroy(m);
    }
    if (!rc && got != MESSAGES) {
        int missing = -1;
        for (int i = 0; i < MESSAGES && missing < 0; i++)
            if (!seen[i])
                missing = i;
        rc = fail("consumed %d of %d messages in %d s (first missing: message-%d)", got, MESSAGES,
                  CONSUME_TIMEOUT_S, missing);
    }
    if (!rc) {
        err = rd_kafka_commit(rk, NULL, 0);
        if (err)
            rc = fail("commit: %s", rd_kafka_err2str(err));
    }
    if (!rc)
        say("kafka: consumed %d/%d messages in group %s from %d partitions "
            "(group join %.1f s, %d duplicates), offsets committed",
            got, MESSAGES, group, popcount(parts), first - t0, dups);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static int kafka_smoke(const char *brokers)
{
    char errstr[512], topic[128], group[128];
    snprintf(topic, sizeof topic, "mutirao-smoke-%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(group, sizeof group, "mutirao-smoke-group-%ld-%ld", (long)getpid(), (long)time(NULL));
    say("kafka: brokers %s (librdkafka %s)", brokers, rd_kafka_version_str());

    rd_kafka_conf_t *conf = base_conf(brokers);
    if (!conf)
        return 1;
    rd_kafka_t *admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!admin) {
        rd_kafka_conf_destroy(conf);
        return fail("admin client: %s", errstr);
    }
    double t0 = now_s();
    int rc = create_topic(admin, topic);
    if (!rc)
        say("kafka: created topic %s with %d partitions in %.2f s", topic, PARTITIONS,
            now_s() - t0);
    if (!rc) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(admin, topic, NULL);
        rd_kafka_resp_err_t err = rd_kafka_metadata(admin, 0, rkt, &md, OP_TIMEOUT_MS);
        if (err)
            rc = fail("metadata %s: %s", topic, rd_kafka_err2str(err));
        else if (md->topic_cnt != 1 || md->topics[0].err ||
                 md->topics[0].partition_cnt != PARTITIONS)
            rc = fail("metadata %s: %d partitions (%s)", topic,
                      md->topic_cnt ? md->topics[0].partition_cnt : -1,
                      md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no topic");
        else
            say("kafka: metadata shows %d partitions, broker id %d", PARTITIONS,
                md->orig_broker_id);
        if (md)
            rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
    }
    if (!rc)
        rc = produce(brokers, topic);
    if (!rc)
        rc = consume(brokers, topic, group);
    delete_topic(admin, topic);
    rd_kafka_destroy(admin);
    return rc;
}

/* --- Redis ------------------------------------------------------------------ */

static int redis_smoke(const char *url)
{
    char host[256];
    int port = 6379, db = 0;
    const char *p = url;
    if (strncmp(p, "redis://", 8) != 0)
        return fail("MUTIRAO_TEST_REDIS_URL '%s' is not redis://host:port[/db]", url);
    p += 8;
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof host)
        return fail("MUTIRAO_TEST_REDIS_URL '%s': bad host", url);
    memcpy(host, p, hl);
    host[hl] = '\0';
    p += hl;
    if (*p == ':')
        port = atoi(p + 1);
    p += strcspn(p, "/");
    if (*p == '/' && p[1])
        db = atoi(p + 1);

    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        int rc = fail("redis connect %s:%d: %s", host, port, c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return rc;
    }
    redisSetTimeout(c, tv);
    int rc = 0;
    char key[128], val[128];
    snprintf(key, sizeof key, "mutirao:smoke:%ld", (long)getpid());
    snprintf(val, sizeof val, "hello from pid %ld at %ld", (long)getpid(), (long)time(NULL));

    redisReply *r;
    if (db) {
        r = redisCommand(c, "SELECT %d", db);
        if (!r || r->type == REDIS_REPLY_ERROR)
            rc = fail("SELECT %d: %s", db, r ? r->str : c->errstr);
        if (r)
            freeReplyObject(r);
    }
    if (!rc) {
        r = redisCommand(c, "SET %s %s EX 60", key, val);
        if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
            rc = fail("SET %s: %s", key, r ? (r->str ? r->str : "?") : c->errstr);
        if (r)
            freeReplyObject(r);
    }
    if (!rc) {
        r = redisCommand(c, "GET %s", key);
        if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, val) != 0)
            rc = fail("GET %s: %s", key, r && r->str ? r->str : (r ? "(nil)" : c->errstr));
        if (r)
            freeReplyObject(r);
    }
    if (!rc) {
        r = redisCommand(c, "DEL %s", key);
        if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != 1)
            rc = fail("DEL %s", key);
        if (r)
            freeReplyObject(r);
    }
    if (!rc)
        say("redis: SET/GET/DEL %s on %s:%d db %d ok", key, host, port, db);
    redisFree(c);
    return rc;
}

int main(void)
{
    const char *brokers = getenv("MUTIRAO_TEST_KAFKA_BROKERS");
    const char *redis = getenv("MUTIRAO_TEST_REDIS_URL");
    const char *ci = getenv("CI");
    int missing = 0;
    if (!brokers || !*brokers) {
        fprintf(stderr, "smoke: MUTIRAO_TEST_KAFKA_BROKERS is not set\n");
        missing = 1;
    }
    if (!redis || !*redis) {
        fprintf(stderr, "smoke: MUTIRAO_TEST_REDIS_URL is not set\n");
        missing = 1;
    }
    if (missing) {
        if (ci && *ci) {
            fprintf(stderr, "smoke: FAIL: CI is set but the services' variables are missing: "
                            "start them with tests/services.sh start and source "
                            "build-services/env.sh\n");
            return 1;
        }
        fprintf(stderr, "smoke: SKIPPED (tests/services.sh start; source build-services/env.sh)\n");
        return SKIP;
    }
    double t0 = now_s();
    int rc = redis_smoke(redis);
    rc |= kafka_smoke(brokers);
    if (rd_kafka_wait_destroyed(5000) != 0)
        rc |= fail("librdkafka handles still alive at exit");
    say("%s in %.2f s", rc ? "FAILED" : "ok", now_s() - t0);
    return rc ? 1 : 0;
}
