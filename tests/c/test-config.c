/*
** test-config.c: tests of the fleet configuration (shared/wire/config.h):
** defaults, the file format and its errors, environment overrides, the
** lookup order, topic names and redaction.
** Run all: test-config; run one: test-config NAME.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "envelope.h"
#include "test.h"

/* Asserts that rc is the error code want, printing both names and err. */
#define ASSERT_ERR(rc, want, err)                                                                  \
    do {                                                                                           \
        int r_ = (rc), w_ = (want);                                                                \
        if (r_ != w_) {                                                                            \
            fprintf(stderr, "%s:%d: %s: expected %s, got %s (%d): %s\n", __FILE__, __LINE__, #rc,  \
                    config_errname(w_), config_errname(r_), r_, (err));                            \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- helpers ----------------------------------------------------------- */

/* A private temporary directory, made once, removed at exit. */
static char tmpdir[64];

static void rm_tmpdir(void)
{
    if (tmpdir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

/* Writes text to tmpdir/name; returns the path (static buffer per call
   site is not needed: the caller copies). */
static const char *write_file(const char *name, const char *text, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return NULL;
    fputs(text, f);
    fclose(f);
    return path;
}

/* ---- tests ------------------------------------------------------------- */

static int test_defaults(void)
{
    config c;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_STR_EQ(c.kafka_brokers, "localhost:9092");
    ASSERT_STR_EQ(c.redis_url, "redis://localhost:6379/0");
    ASSERT_EQ(c.fleet, 0);
    ASSERT_STR_EQ(c.topic_prefix, "mutirao.pool.");
    ASSERT_EQ(c.topic_partitions, 8);
    ASSERT_EQ(c.topic_replication, 1);
    ASSERT_EQ(c.kafka_session_timeout_ms, 6000);
    ASSERT_EQ(c.connect_timeout_ms, 5000);
    ASSERT_EQ(c.op_timeout_ms, 10000);
    ASSERT_EQ(c.kafka_delivery_timeout_ms, 120000);
    ASSERT_EQ(c.result_ttl_s, 86400);
    ASSERT_EQ(c.task_info_ttl_s, 0);
    ASSERT_EQ(c.payload_max_bytes, 1000000);
    ASSERT_EQ(c.payload_max_ref_bytes, 67108864);
    ASSERT_EQ(c.worker_npools, 0);
    ASSERT_STR_EQ(c.producer_id, "");
    ASSERT_STR_EQ(c.worker_id, "");
    ASSERT_STR_EQ(c.topic_dead, "mutirao.dead");
    ASSERT_EQ(config_check_dead_topic(&c, NULL, 0), 0);
    char derr[300];
    ASSERT_EQ(config_set(&c, "topic.dead", "mutirao.pool.dead", "test", derr, sizeof derr), 0);
    ASSERT_EQ(config_check_dead_topic(&c, derr, sizeof derr), CONFIG_EVALUE);
    ASSERT(strstr(derr, "starts with topic.prefix") != NULL);
    ASSERT_EQ(config_set(&c, "worker.pools", "a,b", "test", derr, sizeof derr), 0);
    ASSERT_EQ(config_check_dead_topic(&c, NULL, 0), 0); /* not one of the pools' topics */
    ASSERT_EQ(config_set(&c, "worker.pools", "a,dead", "test", derr, sizeof derr), 0);
    ASSERT_EQ(config_check_dead_topic(&c, derr, sizeof derr), CONFIG_EVALUE);
    ASSERT_EQ(config_set(&c, "topic.dead", "bad topic", "test", derr, sizeof derr), CONFIG_EVALUE);
    /* the workers' consumer group */
    ASSERT_STR_EQ(c.worker_group, "mutirao.workers");
    ASSERT_EQ(config_set(&c, "worker.group", "fleet-b.workers", "test", derr, sizeof derr), 0);
    ASSERT_STR_EQ(c.worker_group, "fleet-b.workers");
    ASSERT_EQ(config_set(&c, "worker.group", "no spaces", "test", derr, sizeof derr),
              CONFIG_EVALUE);
    ASSERT_CONTAINS(derr, "consumer group id");
    ASSERT_EQ(config_set(&c, "worker.group", "", "test", derr, sizeof derr), CONFIG_EVALUE);
    /* what fleet tasks may do beyond the sandbox (allow.h) */
    ASSERT_STR_EQ(c.worker_allow, "");
    ASSERT_EQ(config_set(&c, "worker.allow", " exec , http,os.execute,require.lpeg", "test", derr,
                         sizeof derr),
              0);
    ASSERT_STR_EQ(c.worker_allow, "exec,http,os.execute,require.lpeg");
    ASSERT_EQ(
        config_set(&c, "worker.allow", "exec,shell", "MUTIRAO_WORKER_ALLOW", derr, sizeof derr),
        CONFIG_EVALUE);
    ASSERT_CONTAINS(derr, "MUTIRAO_WORKER_ALLOW: worker.allow");
    ASSERT_CONTAINS(derr, "os.execute");
    ASSERT_STR_EQ(c.worker_allow, "exec,http,os.execute,require.lpeg");
    /* where a worker serves /metrics: loopback unless a host is given */
    ASSERT_STR_EQ(c.worker_metrics_addr, "");
    char host[64];
    int port = 0;
    ASSERT_EQ(config_set(&c, "worker.metrics_addr", "9464", "test", derr, sizeof derr), 0);
    ASSERT_EQ(config_host_port(c.worker_metrics_addr, host, sizeof host, &port, derr, sizeof derr),
              0);
    ASSERT_STR_EQ(host, "127.0.0.1");
    ASSERT_EQ(port, 9464);
    ASSERT_EQ(config_host_port("[::1]:80", host, sizeof host, &port, derr, sizeof derr), 0);
    ASSERT_STR_EQ(host, "::1");
    ASSERT_EQ(config_host_port("0.0.0.0:9100", host, sizeof host, &port, derr, sizeof derr), 0);
    ASSERT_STR_EQ(host, "0.0.0.0");
    ASSERT_EQ(config_host_port("localhost:1", host, sizeof host, &port, derr, sizeof derr), 0);
    ASSERT_STR_EQ(host, "127.0.0.1");
    const char *bad[] = {
        "0", "65536", "host.example:80", "1.2.3.4:", ":80", "::1:80", "[::1]80", "80x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_EQ(config_host_port(bad[i], host, sizeof host, &port, derr, sizeof derr), -1);
    ASSERT_EQ(
        config_set(&c, "worker.metrics_addr", "nowhere:1", "--metrics-addr", derr, sizeof derr),
        CONFIG_EVALUE);
    ASSERT_CONTAINS(derr, "--metrics-addr: worker.metrics_addr: PORT, HOST:PORT");
    ASSERT_STR_EQ(c.worker_metrics_addr, "9464");
    config_free(&c);
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_STR_EQ(c.path, "");
    for (int i = 0; i < CONFIG_NKEYS; i++)
        ASSERT_STR_EQ(c.origin[i], "default");
    config_free(&c);
    config_free(&c); /* harmless twice */
    return 0;
}

static int test_file(void)
{
    char path[256], err[512] = "";
    ASSERT(write_file("good.conf",
                      "\xef\xbb\xbf# a comment\n"
                      "\n"
                      "   # an indented comment\n"
                      "kafka.brokers = k1:9092 , k2:19092,PLAINTEXT://k3:9093  # inline comment\n"
                      "redis.url=redis://:s3cret#x@r1:6390/2\n"
                      "fleet = YES\r\n"
                      "topic.prefix = \"acme.jobs.\"   # quoted\n"
                      "topic.partitions = 12\n"
                      "topic.replication = 3\n"
                      "kafka.session_timeout_ms = 6000\n"
                      "connect.timeout_ms = 0\n"
                      "op.timeout_ms = 2500\n"
                      "result.ttl_s = 60\n"
                      "payload.max_bytes = 2048\n"
                      "worker.pools = images, reports ,x.y_z-1\n"
                      "producer.id = api-1\n"
                      "worker.id =\n",
                      path, sizeof path) != NULL);
    config c;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_load_file(&c, path, err, sizeof err), 0, err);
    ASSERT_STR_EQ(c.kafka_brokers, "k1:9092,k2:19092,PLAINTEXT://k3:9093");
    /* '#' inside a value (not after a space) is part of it. */
    ASSERT_STR_EQ(c.redis_url, "redis://:s3cret#x@r1:6390/2");
    ASSERT_EQ(c.fleet, 1);
    ASSERT_STR_EQ(c.topic_prefix, "acme.jobs.");
    ASSERT_EQ(c.topic_partitions, 12);
    ASSERT_EQ(c.topic_replication, 3);
    ASSERT_EQ(c.connect_timeout_ms, 0);
    ASSERT_EQ(c.op_timeout_ms, 2500);
    ASSERT_EQ(c.result_ttl_s, 60);
    ASSERT_EQ(c.payload_max_bytes, 2048);
    ASSERT_EQ(c.worker_npools, 3);
    ASSERT_STR_EQ(c.worker_pools[0], "images");
    ASSERT_STR_EQ(c.worker_pools[1], "reports");
    ASSERT_STR_EQ(c.worker_pools[2], "x.y_z-1");
    ASSERT_STR_EQ(c.producer_id, "api-1");
    ASSERT_STR_EQ(c.worker_id, "");
    ASSERT_STR_EQ(c.path, path);
    char want[300];
    snprintf(want, sizeof want, "%s:8", path);
    ASSERT_STR_EQ(c.origin[4], want); /* topic.partitions, line 8 */
    config_free(&c);
    return 0;
}

/* Loads text as a file into fresh defaults; returns the code, err filled. */
static int load_text(const char *text, char *err, size_t errlen, config *out)
{
    char path[256];
    if (write_file("bad.conf", text, path, sizeof path) == NULL)
        return -1000;
    config c;
    if (config_init(&c) != 0)
        return -1001;
    int rc = config_load_file(&c, path, err, errlen);
    if (out != NULL)
        *out = c;
    else
        config_free(&c);
    return rc;
}

static int test_file_errors(void)
{
    char err[512], want[512], path[256];
    snprintf(path, sizeof path, "%s/bad.conf", tmpdir);

    /* The example, word for word. */
    ASSERT_ERR(
        load_text("# 1\n#2\n\nfleet = on\n\n\ntopic.partitions = lots\n", err, sizeof err, NULL),
        CONFIG_EVALUE, err);
    snprintf(want, sizeof want,
             "%s:7: topic.partitions: integer from 1 to 10000 expected, got 'lots'", path);
    ASSERT_STR_EQ(err, want);

    static const struct {
        const char *text;
        int code;
        const char *msg; /* after "PATH:" */
    } cases[] = {
        {"topic.partitions = 0\n", CONFIG_EVALUE, "1: topic.partitions: integer from 1 to 10000"},
        {"topic.partitions = 10001\n", CONFIG_EVALUE, "got '10001'"},
        {"topic.partitions = 8x\n", CONFIG_EVALUE, "got '8x'"},
        {"topic.partitions = +8\n", CONFIG_EVALUE, "got '+8'"},
        {"topic.partitions = 99999999999999999999\n", CONFIG_EVALUE, "integer from"},
        {"topic.partitions =\n", CONFIG_EVALUE, "got ''"},
        {"kafka.session_timeout_ms = 999\n", CONFIG_EVALUE, "integer from 1000 to 3600000"},
        {"kafka.delivery_timeout_ms = 0\n", CONFIG_EVALUE, "integer from 1000 to 86400000"},
        {"fleet = maybe\n", CONFIG_EVALUE,
         "1: fleet: on/off, true/false, yes/no or 1/0 expected, got 'maybe'"},
        {"\n\nkafka.broker = x:1\n", CONFIG_EUNKNOWN, "3: unknown key 'kafka.broker'"},
        {"just words\n", CONFIG_ESYNTAX, "1: 'key = value' expected"},
        {"= value\n", CONFIG_ESYNTAX, "1: key expected before '='"},
        {"[kafka]\nbrokers = x\n", CONFIG_ESYNTAX, "1: sections are not supported"},
        {"fleet = on\nfleet = off\n", CONFIG_EDUPLICATE, "2: fleet: set twice (first on line 1)"},
        {"topic.prefix = \"abc\n", CONFIG_ESYNTAX, "1: topic.prefix: closing '\"' expected"},
        {"topic.prefix = \"abc\" def\n", CONFIG_ESYNTAX, "1: topic.prefix: nothing but a comment"},
        {"topic.prefix = a b\n", CONFIG_EVALUE, "topic.prefix: at most 49 bytes"},
        {"topic.prefix = 01234567890123456789012345678901234567890123456789\n", CONFIG_EVALUE,
         "topic.prefix: at most 49 bytes"},
        {"redis.url = http://localhost\n", CONFIG_EVALUE,
         "1: redis.url: redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// URL "
         "expected, got 'http://localhost'"},
        {"redis.url = redis://\n", CONFIG_EVALUE, "redis.url"},
        {"redis.url = redis+cluster://\n", CONFIG_EVALUE, "redis.url"},
        {"kafka.brokers =\n", CONFIG_EVALUE, "kafka.brokers: non-empty"},
        {"kafka.brokers = a:1,,b:2\n", CONFIG_EVALUE, "without empty items"},
        {"kafka.brokers = a:1,\n", CONFIG_EVALUE, "without empty items"},
        {"kafka.brokers = a:99999\n", CONFIG_EVALUE, "'a:99999' is not host:port"},
        {"kafka.brokers = a:x\n", CONFIG_EVALUE, "is not host:port"},
        {"kafka.brokers = :9092\n", CONFIG_EVALUE, "is not host:port"},
        {"kafka.brokers = a b:1\n", CONFIG_EVALUE, "has a space"},
        {"worker.pools = ok, bad pool\n", CONFIG_EVALUE, "worker.pools: "},
        {"worker.pools = a/b\n", CONFIG_EVALUE, "pool name has '/' at byte 2"},
        {"worker.pools = a, b, a\n", CONFIG_EVALUE, "'a' twice"},
        {"worker.pools = ..\n", CONFIG_EVALUE, "reserved"},
        {"producer.id = has space\n", CONFIG_EVALUE, "producer.id: id of 1 to 127 bytes"},
        /* ENVELOPE_ID_MAX + 1 = 128 bytes */
        {"worker.id = 0123456789012345678901234567890123456789012345678901234567890123"
         "0123456789012345678901234567890123456789012345678901234567890123\n",
         CONFIG_EVALUE, "worker.id"},
        {"fleet = on\x00garbage\n", CONFIG_ESYNTAX, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *text = cases[i].text;
        char buf[300];
        if (i == sizeof cases / sizeof cases[0] - 1) { /* a NUL byte inside the file */
            FILE *f = fopen(path, "wb");
            ASSERT(f != NULL);
            fwrite("fleet = on\0x\n", 1, 13, f);
            fclose(f);
            config c;
            ASSERT_EQ(config_init(&c), 0);
            int rc = config_load_file(&c, path, err, sizeof err);
            config_free(&c);
            ASSERT_ERR(rc, CONFIG_ESYNTAX, err);
            ASSERT_CONTAINS(err, ":1: NUL byte");
            continue;
        }
        int rc = load_text(text, err, sizeof err, NULL);
        if (rc != cases[i].code)
            fprintf(stderr, "case %zu: %s", i, text);
        ASSERT_ERR(rc, cases[i].code, err);
        snprintf(buf, sizeof buf, "%s:", path);
        ASSERT(strncmp(err, buf, strlen(buf)) == 0); /* every error names the file */
        ASSERT_CONTAINS(err, cases[i].msg);
    }

    /* A password never appears in an error message. */
    ASSERT_ERR(load_text("redis.url = http://user:hunter2@host/\n", err, sizeof err, NULL),
               CONFIG_EVALUE, err);
    ASSERT_NOT_CONTAINS(err, "hunter2");
    ASSERT_CONTAINS(err, "got 'http://user:***@host/'");

    /* Lines before the bad one are kept, the bad one changes nothing. */
    config c;
    ASSERT_ERR(load_text("topic.partitions = 16\nfleet = on\nfleet2 = x\n", err, sizeof err, &c),
               CONFIG_EUNKNOWN, err);
    ASSERT_EQ(c.topic_partitions, 16);
    ASSERT_EQ(c.fleet, 1);
    config_free(&c);
    ASSERT_ERR(load_text("worker.pools = a,b\nworker.pools = c, c\n", err, sizeof err, &c),
               CONFIG_EDUPLICATE, err);
    ASSERT_EQ(c.worker_npools, 2);
    config_free(&c);

    /* A very long line; a missing file. */
    char *longtext = malloc(CONFIG_LINE_MAX + 64);
    ASSERT(longtext != NULL);
    memcpy(longtext, "fleet = on\nproducer.id = ", 25);
    memset(longtext + 25, 'x', CONFIG_LINE_MAX);
    strcpy(longtext + 25 + CONFIG_LINE_MAX, "\n");
    int rc = load_text(longtext, err, sizeof err, NULL);
    free(longtext);
    ASSERT_ERR(rc, CONFIG_ESYNTAX, err);
    ASSERT_CONTAINS(err, ":2: line longer than 4096 bytes");

    ASSERT_EQ(config_init(&c), 0);
    snprintf(path, sizeof path, "%s/does-not-exist.conf", tmpdir);
    ASSERT_ERR(config_load_file(&c, path, err, sizeof err), CONFIG_ENOENT, err);
    ASSERT_CONTAINS(err, "does-not-exist.conf: No such file");
    ASSERT_ERR(config_load_file(&c, tmpdir, err, sizeof err), CONFIG_EIO, err); /* a directory */
    config_free(&c);
    return 0;
}

static int test_env(void)
{
    char err[512] = "";
    config c;
    ASSERT_EQ(config_init(&c), 0);
    const char *const env[] = {"PATH=/bin",
                               "MUTIRAO_KAFKA_BROKERS=b1:9092,b2:9092",
                               "MUTIRAO_REDIS_URL=rediss://u:pw@r:6380/1",
                               "MUTIRAO_FLEET=true",
                               "MUTIRAO_TOPIC_PARTITIONS=32",
                               "MUTIRAO_TOPIC_PREFIX=", /* empty: unset */
                               "MUTIRAO_WORKER_POOLS=a,b",
                               "MUTIRAO_OP_TIMEOUT_MS=1",
                               "MUTIRAO_RESULT_TTL_S=0",
                               "MUTIRAO_PRODUCER_ID=svc:1",
                               "MUTIRAO_UNRELATED=whatever", /* not a key: ignored */
                               "MUTIRAO_TOPIC_PARTITIONSX=1",
                               NULL};
    ASSERT_ERR(config_apply_env(&c, env, err, sizeof err), 0, err);
    ASSERT_STR_EQ(c.kafka_brokers, "b1:9092,b2:9092");
    ASSERT_STR_EQ(c.redis_url, "rediss://u:pw@r:6380/1");
    ASSERT_EQ(c.fleet, 1);
    ASSERT_EQ(c.topic_partitions, 32);
    ASSERT_STR_EQ(c.topic_prefix, "mutirao.pool.");
    ASSERT_EQ(c.worker_npools, 2);
    ASSERT_EQ(c.op_timeout_ms, 1);
    ASSERT_EQ(c.result_ttl_s, 0);
    ASSERT_STR_EQ(c.producer_id, "svc:1");
    ASSERT_STR_EQ(c.origin[4], "MUTIRAO_TOPIC_PARTITIONS");
    ASSERT_STR_EQ(c.origin[3], "default");

    const char *const bad[] = {"MUTIRAO_TOPIC_PARTITIONS=lots", NULL};
    ASSERT_ERR(config_apply_env(&c, bad, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_STR_EQ(err, "MUTIRAO_TOPIC_PARTITIONS: topic.partitions: integer from 1 to 10000 "
                       "expected, got 'lots'");
    ASSERT_EQ(c.topic_partitions, 32); /* unchanged */
    const char *const bad2[] = {"MUTIRAO_FLEET=enabled", NULL};
    ASSERT_ERR(config_apply_env(&c, bad2, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "MUTIRAO_FLEET: fleet: on/off");
    config_free(&c);

    /* NULL: the process environment. */
    ASSERT_EQ(setenv("MUTIRAO_TOPIC_REPLICATION", "2", 1), 0);
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_apply_env(&c, NULL, err, sizeof err), 0, err);
    ASSERT_EQ(c.topic_replication, 2);
    config_free(&c);
    unsetenv("MUTIRAO_TOPIC_REPLICATION");

    /* config_set: the command line (mutirao run --fleet), after the env. */
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_set(&c, "fleet", "on", "--fleet", err, sizeof err), 0, err);
    ASSERT_EQ(c.fleet, 1);
    ASSERT_STR_EQ(c.origin[2], "--fleet");
    ASSERT_ERR(config_set(&c, "no.such", "1", "--set", err, sizeof err), CONFIG_EUNKNOWN, err);
    ASSERT_STR_EQ(err, "--set: unknown key 'no.such'");
    ASSERT_ERR(config_set(&c, "topic.partitions", " 9 ", NULL, err, sizeof err), 0, err);
    ASSERT_EQ(c.topic_partitions, 9);
    ASSERT_ERR(config_set(&c, "worker.pools", "", "--pools", err, sizeof err), 0, err);
    ASSERT_EQ(c.worker_npools, 0);
    ASSERT_ERR(config_set(NULL, "fleet", "on", NULL, err, sizeof err), CONFIG_EINVAL, err);
    config_free(&c);
    return 0;
}

/* Runs config_load in dir with envp. */
static int load_in(const char *dir, const char *const *envp, config *c, char *err, size_t errlen)
{
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL || chdir(dir) != 0)
        return -1000;
    int rc = config_load(c, envp, err, errlen);
    if (chdir(cwd) != 0)
        return -1001;
    return rc;
}

static int test_precedence(void)
{
    char err[512] = "", dir[128], sub[160], path[256], other[256];
    config c;
    snprintf(dir, sizeof dir, "%s/proj", tmpdir);
    snprintf(sub, sizeof sub, "%s/config", dir);
    ASSERT_EQ(mkdir(dir, 0700), 0);
    ASSERT_EQ(mkdir(sub, 0700), 0);
    ASSERT(write_file("proj/config/mutirao.conf",
                      "topic.partitions = 20\nfleet = on\nop.timeout_ms = 700\n", path,
                      sizeof path) != NULL);
    ASSERT(write_file("other.conf", "topic.partitions = 30\n", other, sizeof other) != NULL);

    /* defaults < file (config/mutirao.conf of the cwd) < environment */
    const char *const env1[] = {"MUTIRAO_TOPIC_PARTITIONS=40", NULL};
    ASSERT_ERR(load_in(dir, env1, &c, err, sizeof err), 0, err);
    ASSERT_STR_EQ(c.path, "config/mutirao.conf");
    ASSERT_EQ(c.topic_partitions, 40);     /* env beats file */
    ASSERT_EQ(c.fleet, 1);                 /* file beats default */
    ASSERT_EQ(c.op_timeout_ms, 700);       /* file */
    ASSERT_EQ(c.connect_timeout_ms, 5000); /* default */
    ASSERT_STR_EQ(c.origin[1], "default"); /* redis.url */
    ASSERT_STR_EQ(c.origin[2], "config/mutirao.conf:2");
    ASSERT_STR_EQ(c.origin[4], "MUTIRAO_TOPIC_PARTITIONS");
    /* ids derived, valid */
    ASSERT(c.producer_id[0] != '\0');
    ASSERT_EQ(envelope_check_id(c.producer_id, strlen(c.producer_id), err, sizeof err), 0);
    ASSERT_STR_EQ(c.producer_id, c.worker_id);
    ASSERT_STR_EQ(c.origin[13], "derived"); /* producer.id */
    /* then the command line */
    ASSERT_ERR(config_set(&c, "topic.partitions", "50", "--partitions", err, sizeof err), 0, err);
    ASSERT_EQ(c.topic_partitions, 50);
    config_free(&c);

    /* MUTIRAO_CONFIG wins over the cwd's file. */
    char cfgvar[300];
    snprintf(cfgvar, sizeof cfgvar, "MUTIRAO_CONFIG=%s", other);
    const char *const env2[] = {cfgvar, "MUTIRAO_PRODUCER_ID=me", NULL};
    ASSERT_ERR(load_in(dir, env2, &c, err, sizeof err), 0, err);
    ASSERT_STR_EQ(c.path, other);
    ASSERT_EQ(c.topic_partitions, 30);
    ASSERT_EQ(c.fleet, 0);
    ASSERT_STR_EQ(c.producer_id, "me"); /* not replaced by a derived id */
    ASSERT(c.worker_id[0] != '\0');
    config_free(&c);

    /* MUTIRAO_CONFIG naming a missing file is an error, not a fallback. */
    const char *const env3[] = {"MUTIRAO_CONFIG=/nonexistent/mutirao.conf", NULL};
    ASSERT_ERR(load_in(dir, env3, &c, err, sizeof err), CONFIG_ENOENT, err);
    ASSERT_CONTAINS(err, "MUTIRAO_CONFIG: /nonexistent/mutirao.conf");
    config_free(&c);

    /* Errors from the file and the environment come through config_load. */
    const char *const env4[] = {"MUTIRAO_FLEET=perhaps", NULL};
    ASSERT_ERR(load_in(dir, env4, &c, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "MUTIRAO_FLEET: fleet:");
    config_free(&c);
    ASSERT(write_file("proj/config/mutirao.conf", "fleet = on\ntopic.partitions = lots\n", path,
                      sizeof path) != NULL);
    ASSERT_ERR(load_in(dir, NULL, &c, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_STR_EQ(err, "config/mutirao.conf:2: topic.partitions: integer from 1 to 10000 expected, "
                       "got 'lots'");
    config_free(&c);

    /* No file anywhere (unless this machine has /etc/mutirao/mutirao.conf). */
    if (access("/etc/mutirao/mutirao.conf", F_OK) != 0) {
        char found[256];
        const char *const none[] = {NULL};
        char cwd[PATH_MAX];
        ASSERT(getcwd(cwd, sizeof cwd) != NULL);
        ASSERT_EQ(chdir(tmpdir), 0);
        int rc = config_find_file(none, found, sizeof found, err, sizeof err);
        ASSERT_EQ(chdir(cwd), 0);
        ASSERT_EQ(rc, 0);
        ASSERT_ERR(load_in(tmpdir, none, &c, err, sizeof err), 0, err);
        ASSERT_STR_EQ(c.path, "");
        ASSERT_EQ(c.topic_partitions, 8);
        config_free(&c);
    }
    return 0;
}

static int test_topic_for_pool(void)
{
    char err[512] = "", topic[CONFIG_TOPIC_MAX + 1];
    config c;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_topic_for_pool(&c, "images", topic, sizeof topic, err, sizeof err), 0, err);
    ASSERT_STR_EQ(topic, "mutirao.pool.images");
    ASSERT_ERR(config_topic_for_pool(&c, "a b", topic, sizeof topic, err, sizeof err),
               CONFIG_EBADPOOL, err);
    ASSERT_STR_EQ(err, "invalid pool name 'a b': pool name has ' ' at byte 2; Kafka topics allow "
                       "only A-Z a-z 0-9 . _ -");
    ASSERT_STR_EQ(topic, "");
    static const char *const bad[] = {"", ".", "..", "x/y", "ação", "p:1", "a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ASSERT_ERR(config_topic_for_pool(&c, bad[i], topic, sizeof topic, err, sizeof err),
                   CONFIG_EBADPOOL, bad[i]);
    ASSERT_ERR(config_topic_for_pool(&c, NULL, topic, sizeof topic, err, sizeof err),
               CONFIG_EBADPOOL, err);

    /* 200-byte pool with the longest prefix: exactly Kafka's 249. */
    char pool[ENVELOPE_POOL_MAX + 2];
    memset(pool, 'p', ENVELOPE_POOL_MAX);
    pool[ENVELOPE_POOL_MAX] = '\0';
    ASSERT_ERR(config_set(&c, "topic.prefix", "0123456789012345678901234567890123456789012345678",
                          "test", err, sizeof err),
               0, err);
    ASSERT_ERR(config_topic_for_pool(&c, pool, topic, sizeof topic, err, sizeof err), 0, err);
    ASSERT_EQ(strlen(topic), CONFIG_TOPIC_MAX);
    pool[ENVELOPE_POOL_MAX] = 'p';
    pool[ENVELOPE_POOL_MAX + 1] = '\0';
    ASSERT_ERR(config_topic_for_pool(&c, pool, topic, sizeof topic, err, sizeof err),
               CONFIG_EBADPOOL, err);
    ASSERT_CONTAINS(err, "at most 200 allowed");

    /* Empty prefix: the topic is the pool name. Too small a buffer. */
    ASSERT_ERR(config_set(&c, "topic.prefix", "", "test", err, sizeof err), 0, err);
    ASSERT_ERR(config_topic_for_pool(&c, "jobs", topic, sizeof topic, err, sizeof err), 0, err);
    ASSERT_STR_EQ(topic, "jobs");
    ASSERT_ERR(config_topic_for_pool(&c, "jobs", topic, 4, err, sizeof err), CONFIG_ENOSPACE, err);
    ASSERT_ERR(config_topic_for_pool(&c, "jobs", topic, 5, err, sizeof err), 0, err);
    config_free(&c);
    return 0;
}

static int test_redact(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"redis://localhost:6379/0", "redis://localhost:6379/0"},
        {"redis://:secret@host:6379/0", "redis://:***@host:6379/0"},
        {"redis://user:secret@host", "redis://user:***@host"},
        {"rediss://secret@host:6380", "rediss://***@host:6380"},
        {"redis://u:p@ss/w@rd@host/1", "redis://u:***@host/1"},
        {"unix://:pw@/tmp/redis.sock?db=2", "unix://:***@/tmp/redis.sock?db=2"},
        {"redis://host/0?password=hunter2&db=1", "redis://host/0?password=***&db=1"},
        {"redis://host?db=1&PASSWORD=x", "redis://host?db=1&PASSWORD=***"},
        {"", ""},
    };
    char out[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = config_redact_url(cases[i].in, out, sizeof out);
        ASSERT_STR_EQ(out, cases[i].out);
        ASSERT_EQ(n, strlen(cases[i].out));
    }
    /* Truncation like snprintf: NUL-terminated, needed length returned. */
    ASSERT_EQ(config_redact_url("redis://:secret@host", out, 10), 17);
    ASSERT_STR_EQ(out, "redis://:");
    ASSERT_EQ(config_redact_url("redis://:secret@host", NULL, 0), 17);
    return 0;
}

static int test_dump(void)
{
    char err[512] = "";
    config c;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_EQ(config_set(&c, "redis.url", "redis://admin:topsecret@r:6379/0", "MUTIRAO_REDIS_URL",
                         err, sizeof err),
              0);
    ASSERT_EQ(config_set(&c, "worker.pools", "a,b", "--pools", err, sizeof err), 0);
    size_t need = config_dump(&c, NULL, 0);
    ASSERT_GT(need, 100);
    char *out = malloc(need + 1);
    ASSERT(out != NULL);
    ASSERT_EQ(config_dump(&c, out, need + 1), need);
    ASSERT_EQ(strlen(out), need);
    ASSERT_NOT_CONTAINS(out, "topsecret");
    ASSERT_CONTAINS(out, "redis.url = redis://admin:***@r:6379/0  # MUTIRAO_REDIS_URL\n");
    ASSERT_CONTAINS(out, "kafka.brokers = localhost:9092  # default\n");
    ASSERT_CONTAINS(out, "fleet = off  # default\n");
    ASSERT_CONTAINS(out, "topic.partitions = 8  # default\n");
    ASSERT_CONTAINS(out, "worker.pools = a, b  # --pools\n");
    ASSERT_CONTAINS(out, "producer.id =   # default\n");
    /* Truncated like snprintf. */
    char small[20];
    ASSERT_EQ(config_dump(&c, small, sizeof small), need);
    ASSERT_EQ(strlen(small), sizeof small - 1);
    ASSERT_EQ(strncmp(small, out, sizeof small - 1), 0);
    free(out);
    config_free(&c);
    return 0;
}

static int test_strerror(void)
{
#define CHECK_XX(name, value, msg)                                                                 \
    ASSERT_STR_EQ(config_strerror(value), msg);                                                    \
    ASSERT_STR_EQ(config_errname(value), #name);
    CONFIG_ERRNO_MAP(CHECK_XX)
#undef CHECK_XX
    ASSERT_STR_EQ(config_strerror(1), "unknown error");
    ASSERT_STR_EQ(config_errname(-77), "UNKNOWN");
    return 0;
}

/* The example file in the repository loads and states every default. */
static int test_example_file(void)
{
    char err[512] = "";
    config c, d;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_EQ(config_init(&d), 0);
    ASSERT_ERR(config_load_file(&c, MUTIRAO_SOURCE_DIR "/config/mutirao.conf", err, sizeof err), 0,
               err);
    ASSERT_STR_EQ(c.kafka_brokers, d.kafka_brokers);
    ASSERT_STR_EQ(c.redis_url, d.redis_url);
    ASSERT_EQ(c.fleet, d.fleet);
    ASSERT_STR_EQ(c.topic_prefix, d.topic_prefix);
    ASSERT_EQ(c.topic_partitions, d.topic_partitions);
    ASSERT_EQ(c.kafka_session_timeout_ms, d.kafka_session_timeout_ms);
    ASSERT_EQ(c.op_timeout_ms, d.op_timeout_ms);
    ASSERT_EQ(c.result_ttl_s, d.result_ttl_s);
    ASSERT_EQ(c.payload_max_bytes, d.payload_max_bytes);
    ASSERT_STR_EQ(c.auth_signing_key, d.auth_signing_key);
    ASSERT_STR_EQ(c.auth_trusted_keys, d.auth_trusted_keys);
    ASSERT_EQ(c.auth_required, d.auth_required);
    /* Every key is mentioned in it. */
    char *dump = malloc(8192);
    ASSERT(dump != NULL);
    config_dump(&c, dump, 8192);
    FILE *f = fopen(MUTIRAO_SOURCE_DIR "/config/mutirao.conf", "rb");
    ASSERT(f != NULL);
    char *text = calloc(1, 65536);
    ASSERT(text != NULL);
    size_t n = fread(text, 1, 65535, f);
    fclose(f);
    ASSERT_GT(n, 0);
    for (char *line = strtok(dump, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char keyname[64];
        ASSERT_EQ(sscanf(line, "%63s", keyname), 1);
        ASSERT_CONTAINS(text, keyname);
    }
    free(text);
    free(dump);
    config_free(&c);
    config_free(&d);
    return 0;
}

/* The auth.* keys: paths, a list of paths, and auth.required's auto. */
static int test_auth(void)
{
    char err[512] = "";
    config c;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_STR_EQ(c.auth_signing_key, "");
    ASSERT_STR_EQ(c.auth_trusted_keys, "");
    ASSERT_EQ(c.auth_required, -1);
    ASSERT_EQ(config_auth_required(&c), 0); /* auto, no trusted keys: off */
    ASSERT_ERR(config_set(&c, "auth.trusted_keys", " /k/a.pub , /k/b.pub", "t", err, sizeof err), 0,
               err);
    ASSERT_STR_EQ(c.auth_trusted_keys, "/k/a.pub,/k/b.pub");
    ASSERT_EQ(config_auth_required(&c), 1); /* auto, trusted keys: on */
    ASSERT_ERR(config_set(&c, "auth.required", "off", "t", err, sizeof err), 0, err);
    ASSERT_EQ(config_auth_required(&c), 0);
    ASSERT_ERR(config_set(&c, "auth.required", "AUTO", "t", err, sizeof err), 0, err);
    ASSERT_EQ(c.auth_required, -1);
    ASSERT_EQ(config_auth_required(&c), 1);
    ASSERT_EQ(config_set(&c, "auth.required", "maybe", "t", err, sizeof err), CONFIG_EVALUE);
    ASSERT_CONTAINS(err, "(or auto)");
    ASSERT_EQ(config_set(&c, "auth.trusted_keys", "/k/a.pub,,/k/b.pub", "t", err, sizeof err),
              CONFIG_EVALUE);
    ASSERT_STR_EQ(c.auth_trusted_keys, "/k/a.pub,/k/b.pub"); /* unchanged */
    ASSERT_ERR(config_set(&c, "auth.trusted_keys", "", "t", err, sizeof err), 0, err);
    ASSERT_EQ(config_auth_required(&c), 0);
    ASSERT_ERR(config_set(&c, "auth.required", "on", "t", err, sizeof err), 0, err);
    ASSERT_EQ(config_auth_required(&c), 1); /* on without keys: nothing is accepted */
    /* "auth.required" is not a boolean everywhere: fleet stays on/off only */
    ASSERT_EQ(config_set(&c, "fleet", "auto", "t", err, sizeof err), CONFIG_EVALUE);
    config_free(&c);
    /* the environment */
    const char *const env[] = {"MUTIRAO_AUTH_SIGNING_KEY=/k/p.key",
                               "MUTIRAO_AUTH_TRUSTED_KEYS=/k/a.pub", "MUTIRAO_AUTH_REQUIRED=no",
                               NULL};
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_apply_env(&c, env, err, sizeof err), 0, err);
    ASSERT_STR_EQ(c.auth_signing_key, "/k/p.key");
    ASSERT_STR_EQ(c.auth_trusted_keys, "/k/a.pub");
    ASSERT_EQ(config_auth_required(&c), 0);
    char dump[4096];
    config_dump(&c, dump, sizeof dump);
    ASSERT_CONTAINS(dump, "auth.signing_key = /k/p.key  # MUTIRAO_AUTH_SIGNING_KEY\n");
    ASSERT_CONTAINS(dump, "auth.required = off  # MUTIRAO_AUTH_REQUIRED\n");
    config_free(&c);
    ASSERT_EQ(config_init(&c), 0);
    config_dump(&c, dump, sizeof dump);
    ASSERT_CONTAINS(dump, "auth.required = auto  # default\n");
    config_free(&c);
    return 0;
}

/* Value of key in a NULL-terminated "key", "value", ... array (the last one). */
static const char *conf_get(char **conf, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; conf != NULL && conf[i] != NULL; i += 2)
        if (strcmp(conf[i], key) == 0)
            v = conf[i + 1];
    return v;
}

/* Kafka and Redis security keys, kafka.property pass-through, secrets. */
static int test_security(void)
{
    char err[512] = "", path[256], pwpath[256];
    config c;
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_STR_EQ(c.kafka_security_protocol, "plaintext");
    ASSERT_STR_EQ(c.kafka_sasl_mechanism, "PLAIN");
    ASSERT_STR_EQ(c.kafka_sasl_password, "");
    ASSERT_STR_EQ(c.redis_tls_ca_file, "");
    ASSERT_STR_EQ(c.redis_password_file, "");
    ASSERT_EQ(c.kafka_nprops, 0);
    /* plaintext: only the protocol, after the base pairs */
    static const char *const base[] = {"log_level", "2", NULL};
    char **kc = NULL;
    ASSERT_ERR(config_kafka_conf(&c, base, &kc, err, sizeof err), 0, err);
    ASSERT_STR_EQ(conf_get(kc, "log_level"), "2");
    ASSERT_STR_EQ(conf_get(kc, "security.protocol"), "plaintext");
    ASSERT(conf_get(kc, "sasl.password") == NULL);
    config_kafka_conf_free(kc);
    config_free(&c);

    ASSERT(write_file("kafka.pw", "s3cr3t-from-file\nsecond line\n", pwpath, sizeof pwpath));
    char text[1024];
    snprintf(text, sizeof text,
             "kafka.security_protocol = SASL_SSL\n"
             "kafka.sasl_mechanism = scram-sha-512\n"
             "kafka.sasl_username = alice\n"
             "kafka.sasl_password_file = %s\n"
             "kafka.ssl_ca_file = /etc/ca.pem\n"
             "kafka.property.ssl.endpoint.identification.algorithm = none\n"
             "kafka.property.ssl.key.password = keypass\n"
             "redis.tls_ca_file = /etc/redis-ca.pem\n"
             "redis.password_file = /etc/redis.pw\n",
             pwpath);
    ASSERT(write_file("sec.conf", text, path, sizeof path));
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_load_file(&c, path, err, sizeof err), 0, err);
    ASSERT_EQ(c.kafka_nprops, 2);
    ASSERT_STR_EQ(c.kafka_props[0].name, "ssl.endpoint.identification.algorithm");
    ASSERT_STR_EQ(c.kafka_props[0].value, "none");
    ASSERT_STR_EQ(c.redis_tls_ca_file, "/etc/redis-ca.pem");
    /* the environment: keys and properties ('_' -> '.', "__" -> '_') */
    const char *const env[] = {"MUTIRAO_KAFKA_PROPERTY_SSL_KEY_PASSWORD=other",
                               "MUTIRAO_KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT__ID=x",
                               "MUTIRAO_KAFKA_PROPERTY_EMPTY=", "MUTIRAO_KAFKA_SASL_USERNAME=bob",
                               NULL};
    ASSERT_ERR(config_apply_env(&c, env, err, sizeof err), 0, err);
    ASSERT_EQ(c.kafka_nprops, 3);
    ASSERT_STR_EQ(c.kafka_props[1].value, "other");
    ASSERT_STR_EQ(c.kafka_props[1].origin, "MUTIRAO_KAFKA_PROPERTY_SSL_KEY_PASSWORD");
    ASSERT_STR_EQ(c.kafka_props[2].name, "sasl.oauthbearer.client_id");
    ASSERT_ERR(config_set(&c, "kafka.property.client.rack", "r1", "--set", err, sizeof err), 0,
               err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), 0, err);
    ASSERT_STR_EQ(conf_get(kc, "security.protocol"), "SASL_SSL");
    ASSERT_STR_EQ(conf_get(kc, "sasl.mechanisms"), "SCRAM-SHA-512");
    ASSERT_STR_EQ(conf_get(kc, "sasl.username"), "bob");
    ASSERT_STR_EQ(conf_get(kc, "sasl.password"), "s3cr3t-from-file"); /* the first line */
    ASSERT_STR_EQ(conf_get(kc, "ssl.ca.location"), "/etc/ca.pem");
    ASSERT_STR_EQ(conf_get(kc, "ssl.endpoint.identification.algorithm"), "none");
    ASSERT_STR_EQ(conf_get(kc, "ssl.key.password"), "other");
    ASSERT_STR_EQ(conf_get(kc, "client.rack"), "r1");
    config_kafka_conf_free(kc);
    /* no secret in the dump */
    char dump[8192];
    config_dump(&c, dump, sizeof dump);
    ASSERT_NOT_CONTAINS(dump, "other");
    ASSERT_NOT_CONTAINS(dump, "keypass");
    ASSERT_CONTAINS(dump, "kafka.property.ssl.key.password = ***  # "
                          "MUTIRAO_KAFKA_PROPERTY_SSL_KEY_PASSWORD\n");
    ASSERT_CONTAINS(dump, "kafka.property.client.rack = r1  # --set\n");
    ASSERT_CONTAINS(dump, "kafka.sasl_username = bob  # MUTIRAO_KAFKA_SASL_USERNAME\n");
    ASSERT_CONTAINS(dump, "kafka.sasl_password =   # default\n");
    /* the password both ways: refused */
    ASSERT_ERR(config_set(&c, "kafka.sasl_password", "hunter2", "MUTIRAO_KAFKA_SASL_PASSWORD", err,
                          sizeof err),
               0, err);
    config_dump(&c, dump, sizeof dump);
    ASSERT_NOT_CONTAINS(dump, "hunter2");
    ASSERT_CONTAINS(dump, "kafka.sasl_password = ***  # MUTIRAO_KAFKA_SASL_PASSWORD\n");
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "both set");
    ASSERT_NOT_CONTAINS(err, "hunter2");
    ASSERT_ERR(config_set(&c, "kafka.sasl_password_file", "", "test", err, sizeof err), 0, err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), 0, err);
    ASSERT_STR_EQ(conf_get(kc, "sasl.password"), "hunter2");
    config_kafka_conf_free(kc);
    /* a missing password file names the key and the file */
    ASSERT_ERR(config_set(&c, "kafka.sasl_password", "", "test", err, sizeof err), 0, err);
    ASSERT_ERR(
        config_set(&c, "kafka.sasl_password_file", "/nonexistent/pw", "test", err, sizeof err), 0,
        err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), CONFIG_EIO, err);
    ASSERT_CONTAINS(err, "kafka.sasl_password_file: /nonexistent/pw: No such file");
    /* sasl without a password; ssl files without ssl */
    ASSERT_ERR(config_set(&c, "kafka.sasl_password_file", "", "test", err, sizeof err), 0, err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "needs kafka.sasl_username and kafka.sasl_password_file");
    ASSERT_ERR(config_set(&c, "kafka.security_protocol", "ssl", "test", err, sizeof err), 0, err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "kafka.sasl_username/password are set");
    ASSERT_ERR(config_set(&c, "kafka.sasl_username", "", "test", err, sizeof err), 0, err);
    ASSERT_ERR(config_set(&c, "kafka.ssl_cert_file", "/c.pem", "test", err, sizeof err), 0, err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "go together");
    ASSERT_ERR(config_set(&c, "kafka.security_protocol", "plaintext", "test", err, sizeof err), 0,
               err);
    ASSERT_ERR(config_kafka_conf(&c, NULL, &kc, err, sizeof err), CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "kafka.ssl_* files are set");
    config_free(&c);

    /* value and name errors */
    ASSERT_ERR(load_text("kafka.security_protocol = tls\n", err, sizeof err, NULL), CONFIG_EVALUE,
               err);
    ASSERT_CONTAINS(err, "one of plaintext, ssl, sasl_plaintext, sasl_ssl expected, got 'tls'");
    ASSERT_ERR(load_text("kafka.sasl_mechanism = GSSAPI\n", err, sizeof err, NULL), CONFIG_EVALUE,
               err);
    ASSERT_ERR(load_text("kafka.property.Bad Name = 1\n", err, sizeof err, NULL), CONFIG_EUNKNOWN,
               err);
    ASSERT_CONTAINS(err, "librdkafka property name");
    ASSERT_ERR(load_text("kafka.property. = 1\n", err, sizeof err, NULL), CONFIG_EUNKNOWN, err);
    ASSERT_ERR(load_text("kafka.property.a.b =\n", err, sizeof err, NULL), CONFIG_EVALUE, err);
    ASSERT_ERR(load_text("kafka.property.a.b = 1\nkafka.property.a.b = 2\n", err, sizeof err, NULL),
               CONFIG_EDUPLICATE, err);
    ASSERT_CONTAINS(err, ":2: kafka.property.a.b: set twice (first on line 1)");
    /* a value is never echoed for a secret key */
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_EQ(config_set(&c, "kafka.sasl_password", "x", "t", err, sizeof err), 0);
    config_free(&c);

    /* config_read_secret */
    char *sec = NULL;
    ASSERT(write_file("crlf.pw", "pw\r\n", pwpath, sizeof pwpath));
    ASSERT_ERR(config_read_secret(pwpath, "redis.password_file", &sec, err, sizeof err), 0, err);
    ASSERT_STR_EQ(sec, "pw");
    free(sec);
    ASSERT(write_file("empty.pw", "\n", pwpath, sizeof pwpath));
    ASSERT_ERR(config_read_secret(pwpath, "redis.password_file", &sec, err, sizeof err),
               CONFIG_EVALUE, err);
    ASSERT_CONTAINS(err, "redis.password_file: ");
    ASSERT_CONTAINS(err, "empty");
    ASSERT(sec == NULL);
    ASSERT_EQ(config_kafka_secret_property("sasl.password"), 1);
    ASSERT_EQ(config_kafka_secret_property("ssl.key.pem"), 1);
    ASSERT_EQ(config_kafka_secret_property("ssl.ca.location"), 0);
    return 0;
}

/* config_secret_files: the files a worker keeps its tasks from. */
typedef struct seen_files {
    char text[2048];
} seen_files;

static void note_file(void *ud, const char *what, const char *path)
{
    seen_files *s = ud;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof s->text - n, "%s=%s;", what, path);
}

static int test_secret_files(void)
{
    char err[512] = "", path[256], pwpath[256], text[1536];
    config c;
    seen_files s = {""};
    ASSERT_EQ(config_init(&c), 0);
    config_secret_files(&c, note_file, &s);
    ASSERT_STR_EQ(s.text, ""); /* nothing set, no file read */
    config_free(&c);
    ASSERT(write_file("secret.pw", "pw\n", pwpath, sizeof pwpath));
    snprintf(text, sizeof text,
             "auth.signing_key = /k/sign.key\n"
             "auth.trusted_keys = /k/a.pub\n"
             "redis.password_file = /k/redis.pw\n"
             "redis.tls_ca_file = /k/ca.pem\n"
             "redis.tls_cert_file = /k/redis.crt\n"
             "redis.tls_key_file = /k/redis.key\n"
             "kafka.security_protocol = sasl_ssl\n"
             "kafka.sasl_username = u\n"
             "kafka.sasl_password_file = /k/kafka.pw\n"
             "kafka.ssl_ca_file = /k/kca.pem\n"
             "kafka.ssl_cert_file = /k/k.crt\n"
             "kafka.ssl_key_file = /k/k.key\n"
             "kafka.property.ssl.keystore.location = /k/store.p12\n"
             "kafka.property.ssl.ca.location = /k/pca.pem\n"
             "kafka.property.ssl.certificate.location = /k/pc.crt\n"
             "kafka.property.sasl.kerberos.keytab = /k/krb.keytab\n"
             "kafka.property.ssl.key.password = not-a-file\n"
             "kafka.property.ssl.keystore.password = %s\n"
             "kafka.property.client.rack = r1\n",
             pwpath);
    ASSERT(write_file("secrets.conf", text, path, sizeof path));
    ASSERT_EQ(config_init(&c), 0);
    ASSERT_ERR(config_load_file(&c, path, err, sizeof err), 0, err);
    config_secret_files(&c, note_file, &s);
    char want[2048];
    snprintf(want, sizeof want,
             "configuration file=%s;auth.signing_key=/k/sign.key;"
             "kafka.sasl_password_file=/k/kafka.pw;kafka.ssl_key_file=/k/k.key;"
             "redis.tls_key_file=/k/redis.key;redis.password_file=/k/redis.pw;"
             "kafka.property.ssl.keystore.location=/k/store.p12;"
             "kafka.property.sasl.kerberos.keytab=/k/krb.keytab;"
             "kafka.property.ssl.keystore.password=%s;",
             path, pwpath);
    ASSERT_STR_EQ(s.text, want);
    config_free(&c);
    return 0;
}

/* ---- runner ------------------------------------------------------------ */

static const test tests[] = {
    {"defaults", test_defaults},
    {"file", test_file},
    {"file_errors", test_file_errors},
    {"env", test_env},
    {"precedence", test_precedence},
    {"topic_for_pool", test_topic_for_pool},
    {"redact", test_redact},
    {"dump", test_dump},
    {"strerror", test_strerror},
    {"example_file", test_example_file},
    {"auth", test_auth},
    {"security", test_security},
    {"secret_files", test_secret_files},
};

int main(int argc, char **argv)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mutirao-test-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    atexit(rm_tmpdir);
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
