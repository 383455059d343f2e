/* kafka-replay BROKERS TOPIC: produces every message now in TOPIC to TOPIC
 * once more (same key, same bytes), as a broker or consumer fault would
 * deliver them again. The fleet tests use it to check that a task whose
 * outcome is recorded is not counted (or run) twice.
 *
 * Reads the topic from its beginning in a consumer group of its own (so the
 * workers' group is untouched) until every partition reports its end, then
 * produces the copies and waits for their delivery reports. Prints
 * "replayed N" on success. Exit status: 0 ok, 1 failure. */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MESSAGES 1000000
#define TIMEOUT_S 60

typedef struct copy {
    void *key, *val;
    size_t klen, vlen;
} copy;

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[512];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka-replay: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

static void *dup_bytes(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static int failed_reports;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *ud)
{
    (void)rk;
    (void)ud;
    if (m->err) {
        fprintf(stderr, "kafka-replay: delivery failed: %s\n", rd_kafka_err2str(m->err));
        failed_reports++;
    }
}

/* Reads every message of topic into *out; returns the count or -1. */
static long read_all(const char *brokers, const char *topic, copy **out)
{
    char err[512], group[64];
    snprintf(group, sizeof group, "kafka-replay-%ld-%ld", (long)getpid(), (long)time(NULL));
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", brokers) || conf_set(c, "group.id", group) ||
        conf_set(c, "auto.offset.reset", "earliest") ||
        conf_set(c, "enable.partition.eof", "true") || conf_set(c, "enable.auto.commit", "false"))
        return -1;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "kafka-replay: %s\n", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        fprintf(stderr, "kafka-replay: subscribe: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return -1;
    }
    /* the partition count, to know when every one reached its end */
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    int parts = -1;
    if (t && rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        parts = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    if (parts <= 0) {
        fprintf(stderr, "kafka-replay: topic %s: no metadata\n", topic);
        rd_kafka_destroy(rk);
        return -1;
    }
    long n = 0, cap = 0;
    int eofs = 0;
    time_t end = time(NULL) + TIMEOUT_S;
    while (eofs < parts && time(NULL) < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eofs++;
        } else if (m->err) {
            fprintf(stderr, "kafka-replay: consume: %s\n", rd_kafka_message_errstr(m));
        } else if (n < MAX_MESSAGES) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                copy *g = realloc(*out, (size_t)cap * sizeof *g);
                if (!g) {
                    rd_kafka_message_destroy(m);
                    break;
                }
                *out = g;
            }
            copy *d = &(*out)[n++];
            d->klen = m->key_len;
            d->vlen = m->len;
            d->key = dup_bytes(m->key, m->key_len);
            d->val = dup_bytes(m->payload, m->len);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (eofs < parts) {
        fprintf(stderr, "kafka-replay: %d of %d partitions read to their end in %d s\n", eofs,
                parts, TIMEOUT_S);
        return -1;
    }
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: kafka-replay BROKERS TOPIC\n");
        return 1;
    }
    copy *msgs = NULL;
    long n = read_all(argv[1], argv[2], &msgs);
    if (n < 0)
        return 1;
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (conf_set(c, "bootstrap.servers", argv[1]))
        return 1;
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "kafka-replay: %s\n", err);
        return 1;
    }
    int rc = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]),
                                      RD_KAFKA_V_KEY(msgs[i].key, msgs[i].klen),
                                      RD_KAFKA_V_VALUE(msgs[i].val, msgs[i].vlen),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e) {
            fprintf(stderr, "kafka-replay: produce: %s\n", rd_kafka_err2str(e));
            rc = 1;
        }
    }
    if (rd_kafka_flush(rk, TIMEOUT_S * 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kafka-replay: not every copy delivered in %d s\n", TIMEOUT_S);
        rc = 1;
    }
    rd_kafka_destroy(rk);
    for (long i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].val);
    }
    free(msgs);
    if (failed_reports)
        rc = 1;
    if (rc == 0)
        printf("replayed %ld\n", n);
    return rc;
}
