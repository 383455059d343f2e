/* faults-topic-count: how many messages a Kafka topic holds, the sum of its
 * partitions' high watermarks (the topics of the fault scenarios are never
 * compacted or trimmed while they run, so this is what was produced).
 *
 *   faults-topic-count BROKERS TOPIC
 *
 * Prints the count; exit 1 (with the reason on stderr) when Kafka cannot
 * say. Used by tests/faults/faults.py to restart the broker only once every
 * submitted task is in the topic (scenario kafka_consume). */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TIMEOUT_MS 10000

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "faults-topic-count: %s: %s\n", what, detail);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: faults-topic-count BROKERS TOPIC\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof errstr))
        return die("kafka configuration", errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk)
        return die("kafka client", errstr);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, argv[2], NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, TIMEOUT_MS);
    int rc = 0;
    if (e) {
        rc = die("metadata", rd_kafka_err2str(e));
    } else if (md->topic_cnt != 1 || md->topics[0].err) {
        rc = die(argv[2], md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no such topic");
    } else {
        int64_t total = 0;
        for (int p = 0; p < md->topics[0].partition_cnt && !rc; p++) {
            int64_t lo, hi;
            e = rd_kafka_query_watermark_offsets(rk, argv[2], md->topics[0].partitions[p].id, &lo,
                                                 &hi, TIMEOUT_MS);
            if (e)
                rc = die("watermarks", rd_kafka_err2str(e));
            else
                total += hi;
        }
        if (!rc)
            printf("%" PRId64 "\n", total);
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return rc;
}
