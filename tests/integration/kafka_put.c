/* kafka-put BROKERS TOPIC PARTITION KEY HEX: produces one message whose value
 * is the bytes HEX spells (e.g. 4d54450280) to TOPIC's PARTITION, and waits
 * for its delivery. The fleet tests use it to put bytes no mutirao writes
 * (a task envelope of a newer version) on a pool's topic.
 * Exit status: 0 delivered, 1 not, 2 bad usage. */
#include <librdkafka/rdkafka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int delivered = -1;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivered = m->err == 0;
    if (m->err)
        fprintf(stderr, "kafka-put: %s\n", rd_kafka_err2str(m->err));
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: kafka-put BROKERS TOPIC PARTITION KEY HEX\n");
        return 2;
    }
    size_t hl = strlen(argv[5]);
    if (hl % 2) {
        fprintf(stderr, "kafka-put: odd number of hex digits\n");
        return 2;
    }
    unsigned char *val = malloc(hl / 2 + 1);
    for (size_t i = 0; val && i < hl / 2; i++) {
        unsigned x;
        if (sscanf(argv[5] + 2 * i, "%2x", &x) != 1) {
            fprintf(stderr, "kafka-put: bad hex at %zu\n", 2 * i);
            return 2;
        }
        val[i] = (unsigned char)x;
    }
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka-put: %s\n", err);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk || !val) {
        fprintf(stderr, "kafka-put: %s\n", rk ? "out of memory" : err);
        return 1;
    }
    rd_kafka_resp_err_t e =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_PARTITION(atoi(argv[3])),
                          RD_KAFKA_V_KEY(argv[4], strlen(argv[4])), RD_KAFKA_V_VALUE(val, hl / 2),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (e) {
        fprintf(stderr, "kafka-put: %s\n", rd_kafka_err2str(e));
        return 1;
    }
    rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    free(val);
    return delivered == 1 ? 0 : 1;
}
