/*
** config.c: the fleet configuration. One table describes every key (name,
** environment variable, type, range, default, checker); defaults, file
** lines, environment variables and config_set all go through set_key, so a
** value is checked the same way wherever it comes from.
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <strings.h>
#include <unistd.h>

#include "allow.h"
#include "config.h"
#include "envelope.h"
#include "fleet_keys.h"

extern char **environ;

/* ---- errors -------------------------------------------------------------- */

MERR_FUNCS(, config, CONFIG_ERRNO_MAP)

/* ---- value checkers: 0 if fine, else -1 with what was expected in why ---- */

typedef int (*check_fn)(const char *v, char *why, size_t whylen);

static int check_brokers_item(const char *v, char *why, size_t whylen)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon[1] == '/' || strchr(colon, ']') != NULL)
        return 0; /* no port (the client's default), a scheme, or a bare IPv6 address */
    char *end = (char *)colon;
    errno = 0;
    long port = isdigit((unsigned char)colon[1]) ? strtol(colon + 1, &end, 10) : 0;
    if (colon == v || port < 1 || port > 65535 || errno != 0 || *end != '\0') {
        snprintf(why, whylen, "comma-separated host:port list expected ('%s' is not host:port)", v);
        return -1;
    }
    return 0;
}

static int check_redis_url(const char *v, char *why, size_t whylen)
{
    static const char *const schemes[] = {"redis://", "rediss://", "unix://", "redis+cluster://",
                                          "rediss+cluster://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(v, schemes[i], n) == 0 && v[n] != '\0')
            return 0;
    }
    snprintf(why, whylen,
             "redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// URL expected");
    return -1;
}

static int check_prefix(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    int bad = n > CONFIG_PREFIX_MAX;
    for (size_t i = 0; i < n && !bad; i++) {
        unsigned char c = (unsigned char)v[i];
        bad = !(isalnum(c) || c == '.' || c == '_' || c == '-');
    }
    if (bad)
        snprintf(why, whylen, "at most %d bytes of A-Z a-z 0-9 . _ - expected", CONFIG_PREFIX_MAX);
    return bad ? -1 : 0;
}

/* A Kafka topic name: 1 to 249 bytes of A-Z a-z 0-9 . _ -, not "." or "..". */
static int check_topic(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);
    int bad = n == 0 || n > CONFIG_TOPIC_MAX || !strcmp(v, ".") || !strcmp(v, "..");
    for (size_t i = 0; i < n && !bad; i++) {
        unsigned char c = (unsigned char)v[i];
        bad = !(isalnum(c) || c == '.' || c == '_' || c == '-');
    }
    if (bad)
        snprintf(why, whylen, "a Kafka topic name (1 to %d bytes of A-Z a-z 0-9 . _ -) expected",
                 CONFIG_TOPIC_MAX);
    return bad ? -1 : 0;
}

/* A consumer group id: the characters of a topic name (safe in logs and
 * Kafka's tools alike). */
static int check_group(const char *v, char *why, size_t whylen)
{
    if (check_topic(v, why, whylen) == 0)
        return 0;
    snprintf(why, whylen, "a Kafka consumer group id (1 to %d bytes of A-Z a-z 0-9 . _ -) expected",
             CONFIG_TOPIC_MAX);
    return -1;
}

static int check_pool(const char *v, char *why, size_t whylen)
{
    char r[160];
    if (envelope_check_pool(v, strlen(v), r, sizeof r) == 0)
        return 0;
    snprintf(why, whylen, "pool names expected (%s)", r);
    return -1;
}

static int check_id_or_empty(const char *v, char *why, size_t whylen)
{
    if (v[0] == '\0' || envelope_check_id(v, strlen(v), NULL, 0) == 0)
        return 0;
    snprintf(why, whylen, "id of 1 to %d bytes of A-Z a-z 0-9 . _ : - (or nothing) expected",
             ENVELOPE_ID_MAX);
    return -1;
}

static int check_allow(const char *v, char *why, size_t whylen)
{
    return allow_check_item(v, strlen(v), 0, why, whylen);
}

/* One word of a fixed set, any case. */
static int check_word(const char *v, const char *const *words, size_t n, char *why, size_t whylen)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v, words[i]) == 0)
            return 0;
    size_t at = (size_t)snprintf(why, whylen, "one of ");
    for (size_t i = 0; i < n && at < whylen; i++)
        at += (size_t)snprintf(why + at, whylen - at, "%s%s", i ? ", " : "", words[i]);
    if (at < whylen)
        snprintf(why + at, whylen - at, " expected");
    return -1;
}

static int check_protocol(const char *v, char *why, size_t whylen)
{
    static const char *const w[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl"};
    return check_word(v, w, 4, why, whylen);
}

static int check_mechanism(const char *v, char *why, size_t whylen)
{
    static const char *const w[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"};
    return check_word(v, w, 3, why, whylen);
}

int config_host_port(const char *v, char *host, size_t hostlen, int *port, char *why, size_t whylen)
{
    static const char expected[] = "PORT, HOST:PORT or [IPV6]:PORT expected (HOST an IPv4 or IPv6 "
                                   "address or localhost; PORT 1 to 65535)";
    const char *colon = strrchr(v, ':');
    const char *p = colon ? colon + 1 : v;
    char h[64];
    if (!colon) {
        snprintf(h, sizeof h, "127.0.0.1");
    } else if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (!close || close + 1 != colon || (size_t)(close - v - 1) >= sizeof h)
            goto bad;
        memcpy(h, v + 1, (size_t)(close - v - 1));
        h[close - v - 1] = 0;
    } else {
        if ((size_t)(colon - v) >= sizeof h || memchr(v, ':', (size_t)(colon - v)))
            goto bad;
        memcpy(h, v, (size_t)(colon - v));
        h[colon - v] = 0;
    }
    if (!strcmp(h, "localhost"))
        snprintf(h, sizeof h, "127.0.0.1");
    unsigned char addr[16];
    if (inet_pton(AF_INET, h, addr) != 1 && inet_pton(AF_INET6, h, addr) != 1)
        goto bad;
    char *end;
    errno = 0;
    long n = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : 0;
    if (n < 1 || n > 65535 || errno || *end)
        goto bad;
    if (host && snprintf(host, hostlen, "%s", h) >= (int)hostlen)
        goto bad;
    if (port)
        *port = (int)n;
    return 0;
bad:
    snprintf(why, whylen, "%s", expected);
    return -1;
}

static int check_metrics_addr(const char *v, char *why, size_t whylen)
{
    return v[0] ? config_host_port(v, NULL, 0, NULL, why, whylen) : 0;
}

/* ---- the key table -------------------------------------------------------- */

typedef enum ktype {
    T_STR,  /* char *; check is applied to the whole value */
    T_CSV,  /* char *; a comma list normalised to "a,b"; check applies per item */
    T_LIST, /* char ** + count (worker.pools); check applies per item */
    T_BOOL, /* int 0/1 */
    T_AUTO, /* int 0/1, or -1 for "auto" */
    T_INT   /* int in min..max */
} ktype;

typedef struct key {
    const char *name;
    const char *env;
    ktype t;
    size_t off;
    int min, max; /* T_INT range; T_CSV/T_LIST: min = 1 if it may not be empty */
    const char *def;
    check_fn check;
    int secret; /* 1: show redacted (a URL that may hold a password); 2: never show */
} key;

#define OFF(f) offsetof(config, f)

static const key keys[CONFIG_NKEYS] = {
    {"kafka.brokers", "MUTIRAO_KAFKA_BROKERS", T_CSV, OFF(kafka_brokers), 1, 0, "localhost:9092",
     check_brokers_item, 0},
    {"redis.url", "MUTIRAO_REDIS_URL", T_STR, OFF(redis_url), 0, 0, "redis://localhost:6379/0",
     check_redis_url, 1},
    {"fleet", "MUTIRAO_FLEET", T_BOOL, OFF(fleet), 0, 0, "off", NULL, 0},
    {"topic.prefix", "MUTIRAO_TOPIC_PREFIX", T_STR, OFF(topic_prefix), 0, 0, "mutirao.pool.",
     check_prefix, 0},
    {"topic.partitions", "MUTIRAO_TOPIC_PARTITIONS", T_INT, OFF(topic_partitions), 1, 10000, "8",
     NULL, 0},
    {"topic.replication", "MUTIRAO_TOPIC_REPLICATION", T_INT, OFF(topic_replication), 1, 32767, "1",
     NULL, 0},
    {"kafka.session_timeout_ms", "MUTIRAO_KAFKA_SESSION_TIMEOUT_MS", T_INT,
     OFF(kafka_session_timeout_ms), 1000, 3600000, "6000", NULL, 0},
    {"connect.timeout_ms", "MUTIRAO_CONNECT_TIMEOUT_MS", T_INT, OFF(connect_timeout_ms), 0,
     86400000, "5000", NULL, 0},
    {"op.timeout_ms", "MUTIRAO_OP_TIMEOUT_MS", T_INT, OFF(op_timeout_ms), 0, 86400000, "10000",
     NULL, 0},
    {"kafka.delivery_timeout_ms", "MUTIRAO_KAFKA_DELIVERY_TIMEOUT_MS", T_INT,
     OFF(kafka_delivery_timeout_ms), 1000, 86400000, "120000", NULL, 0},
    {"result.ttl_s", "MUTIRAO_RESULT_TTL_S", T_INT, OFF(result_ttl_s), 0, 315360000, "86400", NULL,
     0},
    {"payload.max_bytes", "MUTIRAO_PAYLOAD_MAX_BYTES", T_INT, OFF(payload_max_bytes), 1024,
     1073741824, "1000000", NULL, 0},
    {"worker.pools", "MUTIRAO_WORKER_POOLS", T_LIST, OFF(worker_pools), 0, 0, "", check_pool, 0},
    {"producer.id", "MUTIRAO_PRODUCER_ID", T_STR, OFF(producer_id), 0, 0, "", check_id_or_empty, 0},
    {"worker.id", "MUTIRAO_WORKER_ID", T_STR, OFF(worker_id), 0, 0, "", check_id_or_empty, 0},
    {"topic.dead", "MUTIRAO_TOPIC_DEAD", T_STR, OFF(topic_dead), 0, 0, "mutirao.dead", check_topic,
     0},
    {"payload.max_ref_bytes", "MUTIRAO_PAYLOAD_MAX_REF_BYTES", T_INT, OFF(payload_max_ref_bytes), 0,
     536870912, "67108864", NULL, 0},
    /* FLEET_GROUP (fleet_keys.h): the one group of workers unless configured */
    {"worker.group", "MUTIRAO_WORKER_GROUP", T_STR, OFF(worker_group), 0, 0, FLEET_GROUP,
     check_group, 0},
    /* what fleet tasks may do beyond the sandbox's default (allow.h) */
    {"worker.allow", "MUTIRAO_WORKER_ALLOW", T_CSV, OFF(worker_allow), 0, 0, "", check_allow, 0},
    /* signed task envelopes (shared/wire/sign.h): key files, read when used */
    {"auth.signing_key", "MUTIRAO_AUTH_SIGNING_KEY", T_STR, OFF(auth_signing_key), 0, 0, "", NULL,
     0},
    {"auth.trusted_keys", "MUTIRAO_AUTH_TRUSTED_KEYS", T_CSV, OFF(auth_trusted_keys), 0, 0, "",
     NULL, 0},
    {"auth.required", "MUTIRAO_AUTH_REQUIRED", T_AUTO, OFF(auth_required), 0, 0, "auto", NULL, 0},
    /* Kafka security: config_kafka_conf */
    {"kafka.security_protocol", "MUTIRAO_KAFKA_SECURITY_PROTOCOL", T_STR,
     OFF(kafka_security_protocol), 0, 0, "plaintext", check_protocol, 0},
    {"kafka.sasl_mechanism", "MUTIRAO_KAFKA_SASL_MECHANISM", T_STR, OFF(kafka_sasl_mechanism), 0, 0,
     "PLAIN", check_mechanism, 0},
    {"kafka.sasl_username", "MUTIRAO_KAFKA_SASL_USERNAME", T_STR, OFF(kafka_sasl_username), 0, 0,
     "", NULL, 0},
    {"kafka.sasl_password", "MUTIRAO_KAFKA_SASL_PASSWORD", T_STR, OFF(kafka_sasl_password), 0, 0,
     "", NULL, 2},
    {"kafka.sasl_password_file", "MUTIRAO_KAFKA_SASL_PASSWORD_FILE", T_STR,
     OFF(kafka_sasl_password_file), 0, 0, "", NULL, 0},
    {"kafka.ssl_ca_file", "MUTIRAO_KAFKA_SSL_CA_FILE", T_STR, OFF(kafka_ssl_ca_file), 0, 0, "",
     NULL, 0},
    {"kafka.ssl_cert_file", "MUTIRAO_KAFKA_SSL_CERT_FILE", T_STR, OFF(kafka_ssl_cert_file), 0, 0,
     "", NULL, 0},
    {"kafka.ssl_key_file", "MUTIRAO_KAFKA_SSL_KEY_FILE", T_STR, OFF(kafka_ssl_key_file), 0, 0, "",
     NULL, 0},
    /* Redis security: rediss:// and redis_uv_options */
    {"redis.tls_ca_file", "MUTIRAO_REDIS_TLS_CA_FILE", T_STR, OFF(redis_tls_ca_file), 0, 0, "",
     NULL, 0},
    {"redis.tls_cert_file", "MUTIRAO_REDIS_TLS_CERT_FILE", T_STR, OFF(redis_tls_cert_file), 0, 0,
     "", NULL, 0},
    {"redis.tls_key_file", "MUTIRAO_REDIS_TLS_KEY_FILE", T_STR, OFF(redis_tls_key_file), 0, 0, "",
     NULL, 0},
    {"redis.password_file", "MUTIRAO_REDIS_PASSWORD_FILE", T_STR, OFF(redis_password_file), 0, 0,
     "", NULL, 0},
    {"task.info_ttl_s", "MUTIRAO_TASK_INFO_TTL_S", T_INT, OFF(task_info_ttl_s), 0, 315360000, "0",
     NULL, 0},
    /* a worker's Prometheus endpoint (worker/metrics_http.h) */
    {"worker.metrics_addr", "MUTIRAO_WORKER_METRICS_ADDR", T_STR, OFF(worker_metrics_addr), 0, 0,
     "", check_metrics_addr, 0},
    /* `mutirao dashboard` (producer/dashboard.c) */
    {"dashboard.listen", "MUTIRAO_DASHBOARD_LISTEN", T_STR, OFF(dashboard_listen), 0, 0,
     "127.0.0.1:8080", check_metrics_addr, 0},
    {"dashboard.token_file", "MUTIRAO_DASHBOARD_TOKEN_FILE", T_STR, OFF(dashboard_token_file), 0, 0,
     "", NULL, 0},
};

/* Most items of a worker.pools list. */
#define LIST_MAX 1024

static const key *find_key(const char *name, size_t len)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (strlen(keys[i].name) == len && memcmp(keys[i].name, name, len) == 0)
            return &keys[i];
    return NULL;
}

#define FIELD(cfg, k, type) ((type *)((char *)(cfg) + (k)->off))

static void free_list(char **list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Shows value in an error message: redacted if secret, cut at 80 bytes. */
static const char *shown(const key *k, const char *value, char *buf, size_t buflen)
{
    if (k != NULL && k->secret == 2)
        return "***";
    if (k != NULL && k->secret) {
        config_redact_url(value, buf, buflen);
        value = buf;
    }
    if (strlen(value) > 80) {
        if (value != buf)
            snprintf(buf, buflen, "%.77s...", value);
        else
            memcpy(buf + 77, "...", 4);
        return buf;
    }
    return value;
}

static int parse_bool(const char *v)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

/* Splits a comma list into trimmed items: *items gets a malloc'd array of
   malloc'd strings. Returns the count, -1 (why filled) or -2 (no memory). */
static long split_list(const key *k, const char *v, char ***items, char *why, size_t whylen)
{
    char **list = NULL;
    size_t n = 0;
    *items = NULL;
    const char *p = v;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        const char *e = comma != NULL ? comma : p + strlen(p);
        const char *s = p;
        while (s < e && is_space(*s))
            s++;
        const char *t = e;
        while (t > s && is_space(t[-1]))
            t--;
        int rc = 0;
        if (t == s) {
            snprintf(why, whylen, "comma-separated list without empty items expected");
            rc = -1;
        } else if (n >= LIST_MAX) {
            snprintf(why, whylen, "at most %d items expected", LIST_MAX);
            rc = -1;
        }
        char *item = NULL;
        if (rc == 0) {
            item = strndup(s, (size_t)(t - s));
            char **nl = item != NULL ? realloc(list, (n + 1) * sizeof *list) : NULL;
            if (nl == NULL) {
                free(item);
                rc = -2;
            } else {
                list = nl;
                list[n++] = item;
            }
        }
        if (rc == 0) {
            for (const char *q = item; *q != '\0' && rc == 0; q++)
                if (is_space(*q)) {
                    snprintf(why, whylen, "comma-separated list expected ('%s' has a space)", item);
                    rc = -1;
                }
        }
        if (rc == 0 && k->check != NULL && k->check(item, why, whylen) != 0)
            rc = -1;
        for (size_t i = 0; rc == 0 && i + 1 < n; i++)
            if (strcmp(list[i], item) == 0) {
                snprintf(why, whylen, "list without repeats expected ('%s' twice)", item);
                rc = -1;
            }
        if (rc < 0) {
            free_list(list, n);
            return rc;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
        if (*p == '\0') {
            snprintf(why, whylen, "comma-separated list without empty items expected");
            free_list(list, n);
            return -1;
        }
    }
    if (n == 0 && k->min > 0) {
        snprintf(why, whylen, "non-empty comma-separated list expected");
        return -1;
    }
    *items = list;
    return (long)n;
}

static void set_origin(config *cfg, const key *k, const char *origin)
{
    snprintf(cfg->origin[k - keys], CONFIG_ORIGIN_MAX, "%s", origin);
}

/* The one place a value is checked and stored. value is trimmed first. */
static int set_key(config *cfg, const key *k, const char *value, const char *origin, char *err,
                   size_t errlen)
{
    char why[320], sbuf[96];
    while (is_space(*value))
        value++;
    size_t vlen = strlen(value);
    while (vlen > 0 && is_space(value[vlen - 1]))
        vlen--;
    char *v = strndup(value, vlen);
    if (v == NULL)
        return merr_fail(err, errlen, CONFIG_ENOMEM, "%s: %s: out of memory", origin, k->name);
    int rc = 0, stored = 0; /* stored: v now belongs to cfg */
    switch (k->t) {
    case T_STR:
        if (k->check != NULL && k->check(v, why, sizeof why) != 0) {
            rc = CONFIG_EVALUE;
            break;
        }
        free(*FIELD(cfg, k, char *));
        *FIELD(cfg, k, char *) = v;
        stored = 1;
        break;
    case T_CSV:
    case T_LIST: {
        char **items;
        long n = split_list(k, v, &items, why, sizeof why);
        if (n == -2) {
            free(v);
            return merr_fail(err, errlen, CONFIG_ENOMEM, "%s: %s: out of memory", origin, k->name);
        }
        if (n < 0) {
            rc = CONFIG_EVALUE;
            break;
        }
        if (k->t == T_LIST) {
            free_list(cfg->worker_pools, cfg->worker_npools);
            cfg->worker_pools = items;
            cfg->worker_npools = (size_t)n;
            break;
        }
        /* Join the trimmed items back: "a:1, b:2" -> "a:1,b:2". */
        char *j = v; /* never longer than the input */
        size_t at = 0;
        for (long i = 0; i < n; i++) {
            size_t il = strlen(items[i]);
            if (i > 0)
                j[at++] = ',';
            memcpy(j + at, items[i], il);
            at += il;
        }
        j[at] = '\0';
        free_list(items, (size_t)n);
        free(*FIELD(cfg, k, char *));
        *FIELD(cfg, k, char *) = j;
        stored = 1;
        break;
    }
    case T_BOOL:
    case T_AUTO: {
        int b = k->t == T_AUTO && strcasecmp(v, "auto") == 0 ? -1 : parse_bool(v);
        if (b < 0 && !(k->t == T_AUTO && strcasecmp(v, "auto") == 0)) {
            snprintf(why, sizeof why, "on/off, true/false, yes/no or 1/0%s expected",
                     k->t == T_AUTO ? " (or auto)" : "");
            rc = CONFIG_EVALUE;
            break;
        }
        *FIELD(cfg, k, int) = b;
        break;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (v[0] == '\0' || *end != '\0' || errno != 0 || x < k->min || x > k->max ||
            !(isdigit((unsigned char)v[0]) || v[0] == '-')) {
            snprintf(why, sizeof why, "integer from %d to %d expected", k->min, k->max);
            rc = CONFIG_EVALUE;
            break;
        }
        *FIELD(cfg, k, int) = (int)x;
        break;
    }
    }
    if (rc < 0) {
        rc = merr_fail(err, errlen, rc, "%s: %s: %s, got '%s'", origin, k->name, why,
                       shown(k, v, sbuf, sizeof sbuf));
        free(v);
        return rc;
    }
    if (!stored)
        free(v);
    set_origin(cfg, k, origin);
    return 0;
}

/* ---- the secret files ---------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

void config_secret_files(const config *cfg,
                         void (*fn)(void *ud, const char *what, const char *path), void *ud)
{
    if (cfg->path && cfg->path[0])
        fn(ud, "configuration file", cfg->path);
    const struct {
        const char *key, *path;
    } files[] = {
        {"auth.signing_key", cfg->auth_signing_key},
        {"kafka.sasl_password_file", cfg->kafka_sasl_password_file},
        {"kafka.ssl_key_file", cfg->kafka_ssl_key_file},
        {"redis.tls_key_file", cfg->redis_tls_key_file},
        {"redis.password_file", cfg->redis_password_file},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (files[i].path && files[i].path[0])
            fn(ud, files[i].key, files[i].path);
    static const char *const public_files[] = {"ssl.ca.location", "ssl.crl.location",
                                               "ssl.certificate.location"};
    for (size_t i = 0; i < cfg->kafka_nprops; i++) {
        const config_prop *pr = &cfg->kafka_props[i];
        if (!pr->value || !pr->value[0])
            continue;
        int secret = 0;
        if (ends_with(pr->name, ".location")) {
            secret = 1;
            for (size_t j = 0; j < sizeof public_files / sizeof public_files[0]; j++)
                if (strcmp(pr->name, public_files[j]) == 0)
                    secret = 0;
        } else if (strstr(pr->name, "keytab")) {
            secret = 1;
        } else if (config_kafka_secret_property(pr->name)) {
            struct stat st; /* a file, not the secret itself */
            secret = strchr(pr->value, '/') && stat(pr->value, &st) == 0 && S_ISREG(st.st_mode);
        }
        if (secret) {
            char what[sizeof CONFIG_KAFKA_PROPERTY_PREFIX + CONFIG_PROPERTY_NAME_MAX];
            snprintf(what, sizeof what, "%s%s", CONFIG_KAFKA_PROPERTY_PREFIX, pr->name);
            fn(ud, what, pr->value);
        }
    }
}

/* ---- kafka.property.NAME ------------------------------------------------------ */

int config_kafka_secret_property(const char *name)
{
    static const char *const parts[] = {"password", "secret", ".pem", "sasl.oauthbearer.config",
                                        "ssl_key"};
    for (size_t i = 0; name != NULL && i < sizeof parts / sizeof parts[0]; i++)
        if (strstr(name, parts[i]) != NULL)
            return 1;
    return 0;
}

/* A librdkafka property name: 1 to 128 bytes of a-z 0-9 . _ - (they are
 * lower-case; librdkafka itself checks that it exists). */
static int check_prop_name(const char *n, size_t len, char *why, size_t whylen)
{
    int bad = len == 0 || len > CONFIG_PROPERTY_NAME_MAX;
    for (size_t i = 0; i < len && !bad; i++) {
        unsigned char c = (unsigned char)n[i];
        bad = !(islower(c) || isdigit(c) || c == '.' || c == '_' || c == '-');
    }
    if (bad)
        snprintf(why, whylen,
                 "a librdkafka property name (1 to %d bytes of a-z 0-9 . _ -) expected after "
                 "'" CONFIG_KAFKA_PROPERTY_PREFIX "', got '%.*s'",
                 CONFIG_PROPERTY_NAME_MAX, (int)(len > 64 ? 64 : len), n);
    return bad ? -1 : 0;
}

/* Sets the property name (len bytes) to value (trimmed), replacing an earlier
 * value of it. */
static int set_prop(config *cfg, const char *name, size_t len, const char *value,
                    const char *origin, char *err, size_t errlen)
{
    char why[320];
    if (check_prop_name(name, len, why, sizeof why) != 0)
        return merr_fail(err, errlen, CONFIG_EUNKNOWN, "%s: %s", origin, why);
    while (is_space(*value))
        value++;
    size_t vlen = strlen(value);
    while (vlen > 0 && is_space(value[vlen - 1]))
        vlen--;
    if (vlen == 0)
        return merr_fail(err, errlen, CONFIG_EVALUE,
                         "%s: " CONFIG_KAFKA_PROPERTY_PREFIX "%.*s: a value expected", origin,
                         (int)len, name);
    size_t i = 0;
    while (i < cfg->kafka_nprops && !(strlen(cfg->kafka_props[i].name) == len &&
                                      !memcmp(cfg->kafka_props[i].name, name, len)))
        i++;
    if (i == cfg->kafka_nprops && i >= CONFIG_PROPERTIES_MAX)
        return merr_fail(err, errlen, CONFIG_EVALUE, "%s: at most %d kafka.property keys", origin,
                         CONFIG_PROPERTIES_MAX);
    char *v = strndup(value, vlen);
    char *n = i == cfg->kafka_nprops ? strndup(name, len) : NULL;
    config_prop *np = NULL;
    if (v != NULL && i == cfg->kafka_nprops && n != NULL)
        np = realloc(cfg->kafka_props, (i + 1) * sizeof *np);
    if (v == NULL || (i == cfg->kafka_nprops && np == NULL)) {
        free(v);
        free(n);
        return merr_fail(err, errlen, CONFIG_ENOMEM, "%s: out of memory", origin);
    }
    if (np != NULL) {
        cfg->kafka_props = np;
        np[i].name = n;
        np[i].value = NULL;
        cfg->kafka_nprops++;
    }
    if (cfg->kafka_props[i].value != NULL) {
        explicit_bzero(cfg->kafka_props[i].value, strlen(cfg->kafka_props[i].value));
        free(cfg->kafka_props[i].value);
    }
    cfg->kafka_props[i].value = v;
    snprintf(cfg->kafka_props[i].origin, CONFIG_ORIGIN_MAX, "%s", origin);
    return 0;
}

/* name is "kafka.property.X" (len bytes)? */
static int is_prop_key(const char *name, size_t len)
{
    size_t pl = strlen(CONFIG_KAFKA_PROPERTY_PREFIX);
    return len >= pl && memcmp(name, CONFIG_KAFKA_PROPERTY_PREFIX, pl) == 0;
}

/* ---- life cycle ------------------------------------------------------------ */

int config_init(config *cfg)
{
    if (cfg == NULL)
        return CONFIG_EINVAL;
    memset(cfg, 0, sizeof *cfg);
    cfg->path = strdup("");
    int rc = cfg->path != NULL ? 0 : CONFIG_ENOMEM;
    for (size_t i = 0; i < CONFIG_NKEYS && rc == 0; i++)
        rc = set_key(cfg, &keys[i], keys[i].def, "default", NULL, 0);
    if (rc < 0) {
        config_free(cfg);
        return rc;
    }
    return 0;
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (keys[i].t == T_STR || keys[i].t == T_CSV) {
            char *v = *FIELD(cfg, &keys[i], char *);
            if (v != NULL && keys[i].secret)
                explicit_bzero(v, strlen(v));
            free(v);
        }
    free_list(cfg->worker_pools, cfg->worker_npools);
    for (size_t i = 0; i < cfg->kafka_nprops; i++) {
        free(cfg->kafka_props[i].name);
        if (cfg->kafka_props[i].value != NULL)
            explicit_bzero(cfg->kafka_props[i].value, strlen(cfg->kafka_props[i].value));
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}

int config_set(config *cfg, const char *name, const char *value, const char *origin, char *err,
               size_t errlen)
{
    if (origin == NULL)
        origin = "config_set";
    if (cfg == NULL || name == NULL || value == NULL)
        return merr_fail(err, errlen, CONFIG_EINVAL, "%s: missing argument", origin);
    const key *k = find_key(name, strlen(name));
    if (k == NULL && is_prop_key(name, strlen(name))) {
        size_t pl = strlen(CONFIG_KAFKA_PROPERTY_PREFIX);
        return set_prop(cfg, name + pl, strlen(name) - pl, value, origin, err, errlen);
    }
    if (k == NULL)
        return merr_fail(err, errlen, CONFIG_EUNKNOWN, "%s: unknown key '%s'", origin, name);
    return set_key(cfg, k, value, origin, err, errlen);
}

/* ---- the file --------------------------------------------------------------- */

/* Reads all of path (at most CONFIG_FILE_MAX bytes) into a malloc'd,
   NUL-terminated buffer. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return merr_fail(err, errlen, errno == ENOENT ? CONFIG_ENOENT : CONFIG_EIO, "%s: %s", path,
                         strerror(errno));
    char *buf = malloc(CONFIG_FILE_MAX + 2);
    if (buf == NULL) {
        fclose(f);
        return merr_fail(err, errlen, CONFIG_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return merr_fail(err, errlen, CONFIG_EIO, "%s: read error", path);
    }
    if (n > CONFIG_FILE_MAX) {
        free(buf);
        return merr_fail(err, errlen, CONFIG_EIO, "%s: larger than %d bytes", path,
                         CONFIG_FILE_MAX);
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}

/* Parses one line (NUL-terminated, modified in place). Sets *k and *value,
   or *k = NULL for a blank or comment line. why says what is wrong. */
static int parse_line(char *line, const key **k, char **prop, char **value, int *code, char *why,
                      size_t whylen)
{
    *k = NULL;
    *prop = NULL;
    char *p = line;
    while (is_space(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    *code = CONFIG_ESYNTAX;
    if (*p == '[') {
        snprintf(why, whylen, "sections are not supported: write 'kafka.brokers = ...'");
        return -1;
    }
    char *eq = strchr(p, '=');
    if (eq == NULL) {
        snprintf(why, whylen, "'key = value' expected");
        return -1;
    }
    char *ke = eq;
    while (ke > p && is_space(ke[-1]))
        ke--;
    if (ke == p) {
        snprintf(why, whylen, "key expected before '='");
        return -1;
    }
    *k = find_key(p, (size_t)(ke - p));
    if (*k == NULL && is_prop_key(p, (size_t)(ke - p))) {
        *ke = '\0'; /* (ke <= eq: the value is after it) */
        *prop = p;
    } else if (*k == NULL) {
        *code = CONFIG_EUNKNOWN;
        snprintf(why, whylen, "unknown key '%.*s'", (int)(ke - p > 64 ? 64 : ke - p), p);
        return -1;
    }
    char *v = eq + 1;
    while (is_space(*v))
        v++;
    if (*v == '"') { /* "quoted": keeps '#' and spaces; no escapes */
        char *close = strchr(v + 1, '"');
        if (close == NULL) {
            snprintf(why, whylen, "closing '\"' expected");
            return -1;
        }
        char *rest = close + 1;
        while (is_space(*rest))
            rest++;
        if (*rest != '\0' && *rest != '#') {
            snprintf(why, whylen, "nothing but a comment expected after the closing '\"'");
            return -1;
        }
        *close = '\0';
        *value = v + 1;
        return 0;
    }
    /* '#' after a space (or at the start of the value) starts a comment. */
    for (char *q = v; *q != '\0'; q++)
        if (*q == '#' && (q == v || is_space(q[-1]))) {
            *q = '\0';
            break;
        }
    *value = v;
    return 0;
}

int config_load_file(config *cfg, const char *path, char *err, size_t errlen)
{
    if (cfg == NULL || path == NULL)
        return merr_fail(err, errlen, CONFIG_EINVAL, "config_load_file: missing argument");
    char *buf = NULL;
    size_t len = 0;
    int rc = read_file(path, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    int first_line[CONFIG_NKEYS] = {0};
    char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) /* UTF-8 byte order mark */
        p += 3;
    for (int lineno = 1; rc == 0 && p < end; lineno++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl != NULL ? nl : end;
        char origin[CONFIG_ORIGIN_MAX], why[200];
        snprintf(origin, sizeof origin, "%s:%d", path, lineno);
        if (memchr(p, '\0', (size_t)(le - p)) != NULL) {
            rc = merr_fail(err, errlen, CONFIG_ESYNTAX, "%s: NUL byte in the line", origin);
            break;
        }
        if (le - p > CONFIG_LINE_MAX) {
            rc = merr_fail(err, errlen, CONFIG_ESYNTAX, "%s: line longer than %d bytes", origin,
                           CONFIG_LINE_MAX);
            break;
        }
        *le = '\0';
        const key *k;
        char *value = NULL, *prop = NULL;
        int code = 0;
        if (parse_line(p, &k, &prop, &value, &code, why, sizeof why) < 0) {
            rc = k != NULL && code == CONFIG_ESYNTAX
                     ? merr_fail(err, errlen, code, "%s: %s: %s", origin, k->name, why)
                     : merr_fail(err, errlen, code, "%s: %s", origin, why);
            break;
        }
        if (k != NULL) {
            size_t i = (size_t)(k - keys);
            if (first_line[i] != 0) {
                rc = merr_fail(err, errlen, CONFIG_EDUPLICATE,
                               "%s: %s: set twice (first on line %d)", origin, k->name,
                               first_line[i]);
                break;
            }
            first_line[i] = lineno;
            rc = set_key(cfg, k, value, origin, err, errlen);
        } else if (prop != NULL) {
            const char *pn = prop + strlen(CONFIG_KAFKA_PROPERTY_PREFIX);
            size_t plen = strlen(path);
            for (size_t i = 0; i < cfg->kafka_nprops && rc == 0; i++) {
                const char *o = cfg->kafka_props[i].origin;
                if (strcmp(cfg->kafka_props[i].name, pn) == 0 && strncmp(o, path, plen) == 0 &&
                    o[plen] == ':')
                    rc = merr_fail(err, errlen, CONFIG_EDUPLICATE,
                                   "%s: %s: set twice (first on line %s)", origin, prop,
                                   o + plen + 1);
            }
            if (rc == 0)
                rc = set_prop(cfg, pn, strlen(pn), value, origin, err, errlen);
        }
        p = le + 1;
    }
    free(buf);
    if (rc == 0) {
        char *np = strdup(path);
        if (np == NULL)
            return merr_fail(err, errlen, CONFIG_ENOMEM, "%s: out of memory", path);
        free(cfg->path);
        cfg->path = np;
    }
    return rc;
}

/* ---- the environment -------------------------------------------------------- */

static const char *env_get(const char *const *envp, const char *name)
{
    if (envp == NULL)
        envp = (const char *const *)environ;
    size_t n = strlen(name);
    const char *found = NULL;
    for (; envp != NULL && *envp != NULL; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            found = *envp + n + 1;
    return found;
}

int config_apply_env(config *cfg, const char *const *envp, char *err, size_t errlen)
{
    if (cfg == NULL)
        return merr_fail(err, errlen, CONFIG_EINVAL, "config_apply_env: missing argument");
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const char *v = env_get(envp, keys[i].env);
        if (v == NULL || v[0] == '\0')
            continue;
        int rc = set_key(cfg, &keys[i], v, keys[i].env, err, errlen);
        if (rc < 0)
            return rc;
    }
    /* MUTIRAO_KAFKA_PROPERTY_SSL_CA_LOCATION=... -> ssl.ca.location */
    if (envp == NULL)
        envp = (const char *const *)environ;
    size_t pl = strlen(CONFIG_KAFKA_PROPERTY_ENV);
    for (; envp != NULL && *envp != NULL; envp++) {
        const char *e = *envp, *eq = strchr(e, '=');
        if (strncmp(e, CONFIG_KAFKA_PROPERTY_ENV, pl) != 0 || eq == NULL || eq[1] == '\0')
            continue;
        char name[CONFIG_PROPERTY_NAME_MAX + 1], var[CONFIG_PROPERTY_NAME_MAX + 32];
        size_t n = 0;
        for (const char *q = e + pl; q < eq && n < sizeof name - 1; q++) {
            if (q[0] == '_' && q + 1 < eq && q[1] == '_') {
                name[n++] = '_';
                q++;
            } else {
                name[n++] = q[0] == '_' ? '.' : (char)tolower((unsigned char)q[0]);
            }
        }
        name[n] = '\0';
        snprintf(var, sizeof var, "%.*s", (int)(eq - e > 150 ? 150 : eq - e), e);
        int rc = set_prop(cfg, name, n, eq + 1, var, err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_use_file(const char *path, char *err, size_t errlen)
{
    if (!path || !*path) {
        snprintf(err, errlen, "option --config needs a file");
        return -1;
    }
    struct stat st;
    if (access(path, R_OK) != 0 || stat(path, &st) != 0) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--config %s: %s", path, strerror(EISDIR));
        return -1;
    }
    setenv("MUTIRAO_CONFIG", path, 1);
    return 0;
}

int config_find_file(const char *const *envp, char *out, size_t outlen, char *err, size_t errlen)
{
    static const char *const candidates[] = {"config/mutirao.conf", "/etc/mutirao/mutirao.conf"};
    const char *path = env_get(envp, "MUTIRAO_CONFIG");
    if (path != NULL && path[0] != '\0') {
        if (access(path, F_OK) != 0)
            return merr_fail(err, errlen, CONFIG_ENOENT, "MUTIRAO_CONFIG: %s: %s", path,
                             strerror(errno));
    } else {
        path = NULL;
        for (size_t i = 0; i < 2 && path == NULL; i++)
            if (access(candidates[i], F_OK) == 0)
                path = candidates[i];
        if (path == NULL)
            return 0;
    }
    if (strlen(path) >= outlen)
        return merr_fail(err, errlen, CONFIG_ENOSPACE, "%s: path too long", path);
    memcpy(out, path, strlen(path) + 1);
    return 1;
}

int config_load(config *cfg, const char *const *envp, char *err, size_t errlen)
{
    int rc = config_init(cfg);
    if (rc < 0)
        return merr_fail(err, errlen, rc, "configuration: out of memory");
    char path[4096];
    rc = config_find_file(envp, path, sizeof path, err, errlen);
    if (rc > 0)
        rc = config_load_file(cfg, path, err, errlen);
    if (rc == 0)
        rc = config_apply_env(cfg, envp, err, errlen);
    if (rc == 0 && (rc = config_derive_ids(cfg)) < 0)
        merr_fail(err, errlen, rc, "configuration: out of memory");
    return rc;
}

int config_derive_ids(config *cfg)
{
    char host[256] = "host";
    if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    char pid[24];
    int pl = snprintf(pid, sizeof pid, "-%ld", (long)getpid());
    size_t hl = strlen(host);
    if (hl > (size_t)(ENVELOPE_ID_MAX - pl))
        hl = (size_t)(ENVELOPE_ID_MAX - pl);
    char id[ENVELOPE_ID_MAX + 1];
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)host[i];
        id[i] = isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-' ? (char)c : '-';
    }
    memcpy(id + hl, pid, (size_t)pl + 1);
    char **slots[2] = {&cfg->producer_id, &cfg->worker_id};
    for (int i = 0; i < 2; i++) {
        if ((*slots[i])[0] != '\0')
            continue;
        char *d = strdup(id);
        if (d == NULL)
            return CONFIG_ENOMEM;
        free(*slots[i]);
        *slots[i] = d;
        const char *name = i == 0 ? "producer.id" : "worker.id";
        set_origin(cfg, find_key(name, strlen(name)), "derived");
    }
    return 0;
}

/* ---- topics, redaction, dump -------------------------------------------------- */

int config_topic_for_pool(const config *cfg, const char *pool, char *out, size_t outlen, char *err,
                          size_t errlen)
{
    if (cfg == NULL || out == NULL)
        return merr_fail(err, errlen, CONFIG_EINVAL, "config_topic_for_pool: missing argument");
    if (outlen > 0)
        out[0] = '\0';
    char why[160];
    size_t pl = pool != NULL ? strlen(pool) : 0;
    if (envelope_check_pool(pool, pl, why, sizeof why) < 0)
        return merr_fail(err, errlen, CONFIG_EBADPOOL, "invalid pool name '%.*s': %s",
                         (int)(pl > 64 ? 64 : pl), pool != NULL ? pool : "", why);
    size_t xl = strlen(cfg->topic_prefix);
    if (xl + pl > CONFIG_TOPIC_MAX)
        return merr_fail(
            err, errlen, CONFIG_EBADPOOL,
            "invalid pool name '%.64s...': topic '%s' + pool is %zu bytes, Kafka allows %d", pool,
            cfg->topic_prefix, xl + pl, CONFIG_TOPIC_MAX);
    if (xl + pl + 1 > outlen)
        return merr_fail(err, errlen, CONFIG_ENOSPACE, "topic name needs %zu bytes", xl + pl + 1);
    memcpy(out, cfg->topic_prefix, xl);
    memcpy(out + xl, pool, pl + 1);
    return 0;
}

int config_check_dead_topic(const config *cfg, char *err, size_t errlen)
{
    if (cfg == NULL)
        return merr_fail(err, errlen, CONFIG_EINVAL, "config_check_dead_topic: missing argument");
    const char *d = cfg->topic_dead;
    size_t xl = strlen(cfg->topic_prefix);
    if (cfg->worker_npools == 0) {
        if (strncmp(d, cfg->topic_prefix, xl) == 0)
            return merr_fail(err, errlen, CONFIG_EVALUE,
                             "topic.dead '%s' starts with topic.prefix '%s': the workers, which "
                             "consume every topic starting with it, would run dead letters again",
                             d, cfg->topic_prefix);
        return 0;
    }
    for (size_t i = 0; i < cfg->worker_npools; i++)
        if (strncmp(d, cfg->topic_prefix, xl) == 0 && strcmp(d + xl, cfg->worker_pools[i]) == 0)
            return merr_fail(
                err, errlen, CONFIG_EVALUE,
                "topic.dead '%s' is the topic of pool '%s', which this worker consumes", d,
                cfg->worker_pools[i]);
    return 0;
}

int config_auth_required(const config *cfg)
{
    if (cfg->auth_required >= 0)
        return cfg->auth_required;
    return cfg->auth_trusted_keys != NULL && cfg->auth_trusted_keys[0] != '\0';
}

/* Appends to out like snprintf, counting what is needed in *total. */
static void put(char *out, size_t outlen, size_t *total, const char *s, size_t n)
{
    if (*total < outlen) {
        size_t room = outlen - *total - 1;
        memcpy(out + *total, s, n < room ? n : room);
        out[*total + (n < room ? n : room)] = '\0';
    }
    *total += n;
}

size_t config_redact_url(const char *url, char *out, size_t outlen)
{
    size_t total = 0;
    if (outlen > 0)
        out[0] = '\0';
    if (url == NULL)
        return 0;
    const char *q = strchr(url, '?');
    const char *stop = q != NULL ? q : url + strlen(url);
    const char *scheme = strstr(url, "://");
    const char *at = NULL;
    if (scheme != NULL && scheme < stop)
        for (const char *p = scheme + 3; p < stop; p++)
            if (*p == '@')
                at = p; /* the last '@': a password may contain '@' or '/' */
    if (at != NULL) {
        const char *ui = scheme + 3;
        const char *colon = memchr(ui, ':', (size_t)(at - ui));
        put(out, outlen, &total, url, (size_t)(ui - url));
        if (colon != NULL) {
            put(out, outlen, &total, ui, (size_t)(colon - ui));
            put(out, outlen, &total, ":***", 4);
        } else {
            put(out, outlen, &total, "***", 3);
        }
        put(out, outlen, &total, at, (size_t)(stop - at));
    } else {
        put(out, outlen, &total, url, (size_t)(stop - url));
    }
    if (q == NULL)
        return total;
    /* Query: hide the value of password= (and pass=, auth=, ...) parameters. */
    for (const char *p = q; *p != '\0';) {
        const char *amp = strchr(p + 1, '&');
        const char *e = amp != NULL ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *name = p + 1;
        int secret = 0;
        if (eq != NULL) {
            static const char *const names[] = {"password", "pass", "pwd", "auth", "secret"};
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
                if ((size_t)(eq - name) == strlen(names[i]) &&
                    strncasecmp(name, names[i], (size_t)(eq - name)) == 0)
                    secret = 1;
        }
        if (secret) {
            put(out, outlen, &total, p, (size_t)(eq + 1 - p));
            put(out, outlen, &total, "***", 3);
        } else {
            put(out, outlen, &total, p, (size_t)(e - p));
        }
        p = e;
    }
    return total;
}

size_t config_dump(const config *cfg, char *out, size_t outlen)
{
    size_t total = 0;
    if (outlen > 0)
        out[0] = '\0';
    if (cfg == NULL)
        return 0;
    char buf[512];
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const key *k = &keys[i];
        put(out, outlen, &total, k->name, strlen(k->name));
        put(out, outlen, &total, " = ", 3);
        const void *f = (const char *)cfg + k->off;
        switch (k->t) {
        case T_STR:
        case T_CSV: {
            const char *s = *(char *const *)f;
            if (k->secret == 2) {
                if (s[0] != '\0')
                    put(out, outlen, &total, "***", 3);
            } else if (k->secret) {
                size_t need = config_redact_url(s, NULL, 0);
                char *r = need < sizeof buf ? buf : malloc(need + 1);
                if (r == NULL) {
                    put(out, outlen, &total, "(hidden)", 8);
                    break;
                }
                config_redact_url(s, r, need + 1);
                put(out, outlen, &total, r, need);
                if (r != buf)
                    free(r);
            } else {
                put(out, outlen, &total, s, strlen(s));
            }
            break;
        }
        case T_LIST:
            for (size_t j = 0; j < cfg->worker_npools; j++) {
                if (j > 0)
                    put(out, outlen, &total, ", ", 2);
                put(out, outlen, &total, cfg->worker_pools[j], strlen(cfg->worker_pools[j]));
            }
            break;
        case T_BOOL:
        case T_AUTO: {
            int b = *(const int *)f;
            const char *t = b < 0 ? "auto" : b ? "on" : "off";
            put(out, outlen, &total, t, strlen(t));
            break;
        }
        case T_INT: {
            int n = snprintf(buf, sizeof buf, "%d", *(const int *)f);
            put(out, outlen, &total, buf, (size_t)n);
            break;
        }
        }
        put(out, outlen, &total, "  # ", 4);
        put(out, outlen, &total, cfg->origin[i], strlen(cfg->origin[i]));
        put(out, outlen, &total, "\n", 1);
    }
    for (size_t i = 0; i < cfg->kafka_nprops; i++) {
        const config_prop *pr = &cfg->kafka_props[i];
        put(out, outlen, &total, CONFIG_KAFKA_PROPERTY_PREFIX,
            strlen(CONFIG_KAFKA_PROPERTY_PREFIX));
        put(out, outlen, &total, pr->name, strlen(pr->name));
        put(out, outlen, &total, " = ", 3);
        if (config_kafka_secret_property(pr->name))
            put(out, outlen, &total, "***", 3);
        else
            put(out, outlen, &total, pr->value, strlen(pr->value));
        put(out, outlen, &total, "  # ", 4);
        put(out, outlen, &total, pr->origin, strlen(pr->origin));
        put(out, outlen, &total, "\n", 1);
    }
    return total;
}

/* ---- secrets and the Kafka clients' settings ------------------------------------ */

int config_read_secret(const char *path, const char *what, char **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return merr_fail(err, errlen, CONFIG_EIO, "%s: %s: %s", what, path, strerror(errno));
    char *buf = malloc(CONFIG_SECRET_MAX + 2);
    if (buf == NULL) {
        fclose(f);
        return merr_fail(err, errlen, CONFIG_ENOMEM, "%s: out of memory", what);
    }
    size_t n = fread(buf, 1, CONFIG_SECRET_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    size_t len = nl != NULL ? (size_t)(nl - buf) : n;
    int rc = 0;
    if (bad)
        rc = merr_fail(err, errlen, CONFIG_EIO, "%s: %s: read error", what, path);
    else if (len > CONFIG_SECRET_MAX)
        rc = merr_fail(err, errlen, CONFIG_EVALUE, "%s: %s: longer than %d bytes", what, path,
                       CONFIG_SECRET_MAX);
    else if (len == 0 || memchr(buf, '\0', len) != NULL)
        rc = merr_fail(err, errlen, CONFIG_EVALUE, "%s: %s: %s", what, path,
                       len == 0 ? "empty (the secret is its first line)" : "holds a NUL byte");
    if (rc < 0) {
        explicit_bzero(buf, CONFIG_SECRET_MAX + 2);
        free(buf);
        return rc;
    }
    explicit_bzero(buf + len, n - len);
    buf[len] = '\0';
    *out = buf;
    return 0;
}

typedef struct kvec {
    char **v;
    size_t n, cap;
    int oom;
} kvec;

static void kv_put(kvec *kv, const char *k, const char *v)
{
    if (kv->oom)
        return;
    if (kv->n + 3 > kv->cap) {
        size_t cap = kv->cap ? kv->cap * 2 : 32;
        char **nv = realloc(kv->v, cap * sizeof *nv);
        if (nv == NULL) {
            kv->oom = 1;
            return;
        }
        kv->v = nv;
        kv->cap = cap;
    }
    char *a = strdup(k), *b = strdup(v);
    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        kv->oom = 1;
        return;
    }
    kv->v[kv->n++] = a;
    kv->v[kv->n++] = b;
    kv->v[kv->n] = NULL;
}

void config_kafka_conf_free(char **conf)
{
    for (size_t i = 0; conf != NULL && conf[i] != NULL; i++) {
        explicit_bzero(conf[i], strlen(conf[i]));
        free(conf[i]);
    }
    free(conf);
}

static const char *prop_get(const config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->kafka_nprops; i++)
        if (strcmp(cfg->kafka_props[i].name, name) == 0)
            return cfg->kafka_props[i].value;
    return NULL;
}

int config_kafka_conf(const config *cfg, const char *const *base, char ***out, char *err,
                      size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL)
        return merr_fail(err, errlen, CONFIG_EINVAL, "config_kafka_conf: missing argument");
    /* the protocol in effect: a kafka.property.security.protocol wins */
    const char *proto = prop_get(cfg, "security.protocol");
    if (proto == NULL)
        proto = cfg->kafka_security_protocol;
    int sasl = strncasecmp(proto, "sasl_", 5) == 0;
    int ssl = strcasecmp(proto, "ssl") == 0 || strcasecmp(proto, "sasl_ssl") == 0;
    if (!sasl && (cfg->kafka_sasl_username[0] || cfg->kafka_sasl_password[0] ||
                  cfg->kafka_sasl_password_file[0]))
        return merr_fail(err, errlen, CONFIG_EVALUE,
                         "kafka.sasl_username/password are set but kafka.security_protocol is "
                         "'%s' (sasl_ssl or sasl_plaintext uses them)",
                         proto);
    if (!ssl &&
        (cfg->kafka_ssl_ca_file[0] || cfg->kafka_ssl_cert_file[0] || cfg->kafka_ssl_key_file[0]))
        return merr_fail(err, errlen, CONFIG_EVALUE,
                         "kafka.ssl_* files are set but kafka.security_protocol is '%s' (ssl or "
                         "sasl_ssl uses them)",
                         proto);
    if (!cfg->kafka_ssl_cert_file[0] != !cfg->kafka_ssl_key_file[0])
        return merr_fail(err, errlen, CONFIG_EVALUE,
                         "kafka.ssl_cert_file and kafka.ssl_key_file go together: set both or "
                         "neither");
    char *pw = NULL;
    if (sasl) {
        if (cfg->kafka_sasl_password[0] && cfg->kafka_sasl_password_file[0])
            return merr_fail(err, errlen, CONFIG_EVALUE,
                             "kafka.sasl_password and kafka.sasl_password_file are both set: "
                             "set one");
        int has_user = cfg->kafka_sasl_username[0] || prop_get(cfg, "sasl.username");
        int has_pw = cfg->kafka_sasl_password[0] || cfg->kafka_sasl_password_file[0] ||
                     prop_get(cfg, "sasl.password");
        if (!has_user || !has_pw)
            return merr_fail(err, errlen, CONFIG_EVALUE,
                             "kafka.security_protocol '%s' needs kafka.sasl_username and "
                             "kafka.sasl_password_file (or MUTIRAO_KAFKA_SASL_PASSWORD)",
                             proto);
        if (cfg->kafka_sasl_password_file[0]) {
            int rc = config_read_secret(cfg->kafka_sasl_password_file, "kafka.sasl_password_file",
                                        &pw, err, errlen);
            if (rc < 0)
                return rc;
        }
    }
    kvec kv = {0};
    for (size_t i = 0; base != NULL && base[i] != NULL && base[i + 1] != NULL; i += 2)
        kv_put(&kv, base[i], base[i + 1]);
    kv_put(&kv, "security.protocol", cfg->kafka_security_protocol);
    if (sasl) {
        char mech[32];
        snprintf(mech, sizeof mech, "%s", cfg->kafka_sasl_mechanism);
        for (char *q = mech; *q != '\0'; q++)
            *q = (char)toupper((unsigned char)*q);
        kv_put(&kv, "sasl.mechanisms", mech);
        if (cfg->kafka_sasl_username[0])
            kv_put(&kv, "sasl.username", cfg->kafka_sasl_username);
        if (pw != NULL || cfg->kafka_sasl_password[0])
            kv_put(&kv, "sasl.password", pw != NULL ? pw : cfg->kafka_sasl_password);
    }
    if (pw != NULL) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    if (ssl && cfg->kafka_ssl_ca_file[0])
        kv_put(&kv, "ssl.ca.location", cfg->kafka_ssl_ca_file);
    if (ssl && cfg->kafka_ssl_cert_file[0]) {
        kv_put(&kv, "ssl.certificate.location", cfg->kafka_ssl_cert_file);
        kv_put(&kv, "ssl.key.location", cfg->kafka_ssl_key_file);
    }
    for (size_t i = 0; i < cfg->kafka_nprops; i++)
        kv_put(&kv, cfg->kafka_props[i].name, cfg->kafka_props[i].value);
    if (kv.oom || kv.v == NULL) {
        config_kafka_conf_free(kv.v);
        return merr_fail(err, errlen, CONFIG_ENOMEM, "kafka settings: out of memory");
    }
    *out = kv.v;
    return 0;
}
