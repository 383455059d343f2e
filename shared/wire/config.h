/*
** config.h: the fleet configuration (Kafka, Redis, topics, timeouts, ids).
** Values come from defaults < a file < MUTIRAO_* environment variables <
** explicit config_set calls (the command line); config/mutirao.conf is the
** commented example and docs/wire-format.md the topic naming rule.
*/
#ifndef MUTIRAO_CONFIG_H
#define MUTIRAO_CONFIG_H

#include <stddef.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: negative ints, one table. XX(name, value, message): base
 * codes (MERR_*) and the configuration's own, -301... (errors.h). */
#define CONFIG_ERRNO_MAP(XX)                                                                       \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(EINVAL, MERR_EINVAL, "invalid argument")                                                    \
    XX(ENOENT, -301, "configuration file not found")                                               \
    XX(EIO, MERR_EIO, "configuration file cannot be read")                                         \
    XX(ESYNTAX, MERR_ESYNTAX, "syntax error in configuration file")                                \
    XX(EUNKNOWN, -302, "unknown configuration key")                                                \
    XX(EVALUE, -303, "invalid configuration value")                                                \
    XX(EDUPLICATE, -304, "configuration key set twice in one file")                                \
    XX(EBADPOOL, MERR_EBADPOOL, "invalid pool name")                                               \
    XX(ENOSPACE, -305, "output buffer too small")

MERR_ENUM(config_errno, CONFIG, CONFIG_ERRNO_MAP)

/* Static description of an error code ("unknown error" for others). */
const char *config_strerror(int err);
/* Static name of an error code, e.g. "EVALUE" ("OK" for 0, "UNKNOWN" for others). */
const char *config_errname(int err);

/* Number of keys (see config/mutirao.conf for the list). */
#define CONFIG_NKEYS 38
/* Longest origin kept per key ("config/mutirao.conf:7", "MUTIRAO_FLEET"). */
#define CONFIG_ORIGIN_MAX 160
/* Longest Kafka topic name. */
#define CONFIG_TOPIC_MAX 249
/* Longest topic.prefix: a 200-byte pool name must still make a topic. */
#define CONFIG_PREFIX_MAX 49
/* Largest configuration file read, and longest line in it. */
#define CONFIG_FILE_MAX (1 << 20)
#define CONFIG_LINE_MAX 4096
/* kafka.property.NAME = VALUE: any librdkafka property, passed through. */
#define CONFIG_KAFKA_PROPERTY_PREFIX "kafka.property."
/* Its environment form: MUTIRAO_KAFKA_PROPERTY_SSL_CA_LOCATION sets
   ssl.ca.location ('_' -> '.', "__" -> '_', lower-cased). */
#define CONFIG_KAFKA_PROPERTY_ENV "MUTIRAO_KAFKA_PROPERTY_"
/* Longest property name, most properties, longest secret read from a file. */
#define CONFIG_PROPERTY_NAME_MAX 128
#define CONFIG_PROPERTIES_MAX 256
#define CONFIG_SECRET_MAX 4096

/* One kafka.property.NAME = VALUE. */
typedef struct config_prop {
    char *name, *value;
    char origin[CONFIG_ORIGIN_MAX];
} config_prop;

/*
** The configuration. Strings are malloc'd and owned by the struct (never
** NULL after config_init: "" when empty); config_free releases them. Read the
** fields freely; change them only through config_set.
*/
typedef struct config {
    char *kafka_brokers;           /* kafka.brokers: host:port[,host:port...] */
    char *redis_url;               /* redis.url: redis://, rediss:// or unix:// */
    int fleet;                     /* fleet: 1 = pools run on the fleet */
    char *topic_prefix;            /* topic.prefix: topic = prefix + pool name */
    int topic_partitions;          /* topic.partitions: for topics pool_create makes */
    int topic_replication;         /* topic.replication: replication factor of those */
    int kafka_session_timeout_ms;  /* kafka.session_timeout_ms: consumer group session */
    int connect_timeout_ms;        /* connect.timeout_ms: wait for Kafka/Redis to connect */
    int op_timeout_ms;             /* op.timeout_ms: wait for one submit/await operation */
    int kafka_delivery_timeout_ms; /* kafka.delivery_timeout_ms: a submitted task Kafka has
                                      not taken by then fails (it waits out a broker restart) */
    int result_ttl_s;              /* result.ttl_s: life of a result in Redis, 0 = forever */
    int task_info_ttl_s;           /* task.info_ttl_s: life of a completed task's
                                      mutirao:task:ID:info, 0 = not written */
    int payload_max_bytes;         /* payload.max_bytes: largest task or result inline in Kafka
                                      and in the notification; larger ones go by reference */
    int payload_max_ref_bytes;     /* payload.max_ref_bytes: largest one by reference (Redis) */
    char **worker_pools;           /* worker.pools: pools a worker consumes */
    size_t worker_npools;          /* how many */
    char *producer_id;             /* producer.id: "" until config_derive_ids */
    char *worker_id;               /* worker.id: "" until config_derive_ids */
    char *topic_dead;              /* topic.dead: where workers put dead letters */
    char *worker_group;            /* worker.group: the workers' Kafka consumer group */
    char *worker_allow;            /* worker.allow: what fleet tasks may do beyond the
                                      sandbox (allow.h), "a,b"; "" = nothing more */
    char *auth_signing_key;        /* auth.signing_key: private key file this process signs
                                      the task envelopes it produces with; "" = none */
    char *auth_trusted_keys;       /* auth.trusted_keys: public key files "a,b" whose
                                      signatures a worker (envelopes) and a producer
                                      (result records) accept; "" = none */
    int auth_required;             /* auth.required: 1 on, 0 off, -1 auto (the default: on
                                      exactly when trusted keys are set); read it through
                                      config_auth_required */
    /* Kafka security (config_kafka_conf turns them into librdkafka settings) */
    char *kafka_security_protocol;  /* kafka.security_protocol: plaintext, ssl, sasl_plaintext,
                                       sasl_ssl */
    char *kafka_sasl_mechanism;     /* kafka.sasl_mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 */
    char *kafka_sasl_username;      /* kafka.sasl_username */
    char *kafka_sasl_password;      /* kafka.sasl_password: secret, never shown */
    char *kafka_sasl_password_file; /* kafka.sasl_password_file: the password's file */
    char *kafka_ssl_ca_file;        /* kafka.ssl_ca_file: CA certificates (PEM) to trust */
    char *kafka_ssl_cert_file;      /* kafka.ssl_cert_file: client certificate (PEM) */
    char *kafka_ssl_key_file;       /* kafka.ssl_key_file: its private key (PEM) */
    /* Redis security (rediss:// URLs; the password may also be in the URL) */
    char *redis_tls_ca_file;    /* redis.tls_ca_file: CA certificates (PEM) to trust */
    char *redis_tls_cert_file;  /* redis.tls_cert_file: client certificate (PEM) */
    char *redis_tls_key_file;   /* redis.tls_key_file: its private key (PEM) */
    char *redis_password_file;  /* redis.password_file: the password's file */
    char *worker_metrics_addr;  /* worker.metrics_addr: where a worker serves /metrics,
                                   "[HOST:]PORT" (config_host_port); "" = nowhere */
    char *dashboard_listen;     /* dashboard.listen: where `mutirao dashboard` serves */
    char *dashboard_token_file; /* dashboard.token_file: its token's file ("" = none) */
    config_prop *kafka_props;   /* kafka.property.NAME = VALUE, in the order first set */
    size_t kafka_nprops;
    char *path;                                   /* the file config_load read, "" if none */
    char origin[CONFIG_NKEYS][CONFIG_ORIGIN_MAX]; /* where each key's value came from */
} config;

/* Sets every key to its default. Returns 0 or CONFIG_ENOMEM (then cfg holds
   nothing to free). The caller owns cfg and calls config_free. */
int config_init(config *cfg);
/* Releases what cfg owns; cfg may then be config_init'ed again. */
void config_free(config *cfg);

/*
** Sets key to the text value, checked as a file or environment value would
** be. origin names where it came from ("--fleet", "MUTIRAO_FLEET") and
** prefixes error messages: "ORIGIN: KEY: what was expected, got 'VALUE'".
** On error cfg is unchanged.
*/
int config_set(config *cfg, const char *key, const char *value, const char *origin, char *err,
               size_t errlen);

/*
** Reads a file of "key = value" lines ('#' comments) into cfg. Errors name
** the file, line and key: "config/mutirao.conf:7: topic.partitions: integer
** from 1 to 10000 expected, got 'lots'". On error cfg may hold the keys of
** the lines before the bad one.
*/
int config_load_file(config *cfg, const char *path, char *err, size_t errlen);

/*
** Applies the MUTIRAO_* variable of each key (MUTIRAO_KAFKA_BROKERS,
** MUTIRAO_REDIS_URL, MUTIRAO_FLEET, ...: the key upper-cased, '.' -> '_').
** envp is a NULL-terminated "NAME=value" array, or NULL for the process
** environment. Empty variables count as unset.
*/
int config_apply_env(config *cfg, const char *const *envp, char *err, size_t errlen);

/*
** A command line's --config PATH: PATH must be a readable file; it becomes
** $MUTIRAO_CONFIG for the config_load that follows. Returns 0, or -1 with
** "--config PATH: reason" in err.
*/
int config_use_file(const char *path, char *err, size_t errlen);

/*
** Which file config_load reads: $MUTIRAO_CONFIG (which must exist), else
** config/mutirao.conf if the current directory has one, else
** /etc/mutirao/mutirao.conf if it exists. Returns 1 and the path in out, 0
** if there is none (defaults and environment only), or < 0.
*/
int config_find_file(const char *const *envp, char *out, size_t outlen, char *err, size_t errlen);

/*
** The whole lookup: config_init, the file config_find_file names, the
** environment (envp as above), then config_derive_ids. Whatever it returns,
** the caller calls config_free(cfg).
*/
int config_load(config *cfg, const char *const *envp, char *err, size_t errlen);

/* Fills an empty producer.id / worker.id with "HOST-PID" (made a valid id). */
int config_derive_ids(config *cfg);

/*
** Checks pool (see envelope_check_pool: what Kafka topics allow) and writes
** its topic, topic.prefix + pool, into out (outlen >= CONFIG_TOPIC_MAX + 1
** always suffices). CONFIG_EBADPOOL with err saying why, CONFIG_ENOSPACE.
*/
int config_topic_for_pool(const config *cfg, const char *pool, char *out, size_t outlen, char *err,
                          size_t errlen);

/*
** 0 if a worker consuming cfg's pools (worker.pools, or every topic starting
** with topic.prefix) would not consume topic.dead, else CONFIG_EVALUE with
** err saying why: a worker would run its own dead letters again.
*/
int config_check_dead_topic(const config *cfg, char *err, size_t errlen);

/*
** Splits "PORT", "HOST:PORT" or "[IPV6]:PORT" (worker.metrics_addr): host
** gets HOST (the brackets removed; "127.0.0.1" when only a port is given,
** loopback by default) and *port the port, 1 to 65535. HOST is an IPv4 or
** IPv6 address or "localhost" (127.0.0.1); "0.0.0.0" or "::" listen on
** every address. 0, or -1 with why filled (what was expected).
*/
int config_host_port(const char *v, char *host, size_t hostlen, int *port, char *why,
                     size_t whylen);

/* auth.required as it applies: on when set on, off when set off, and when
   left at auto, on exactly when auth.trusted_keys is not empty. */
int config_auth_required(const config *cfg);

/* Copies url into out with any password replaced by "***" (userinfo of a
   URL, password= query parameters). Returns the length it needed, like
   snprintf. */
size_t config_redact_url(const char *url, char *out, size_t outlen);

/*
** Writes every key as "key = value  # origin" lines, passwords redacted,
** for logs. Returns the length needed (like snprintf: out holds it all when
** that is < outlen).
*/
size_t config_dump(const config *cfg, char *out, size_t outlen);

/*
** The files of cfg that hold its secrets, for a process that keeps its
** tasks from them: the configuration file read (cfg->path), auth.signing_key,
** kafka.sasl_password_file, kafka.ssl_key_file, redis.tls_key_file,
** redis.password_file and every kafka.property.NAME naming a key store, key,
** keytab or password file (NAME ending in ".location" but for the public
** ssl.ca.location, ssl.crl.location and ssl.certificate.location; NAME with
** "keytab"; a secret property, config_kafka_secret_property, whose value is
** a file). Calls fn(ud, what, path) for each set one; what names the key
** ("auth.signing_key", "kafka.property.ssl.key.location", "configuration
** file"). CA and certificate files and auth.trusted_keys are public.
*/
void config_secret_files(const config *cfg,
                         void (*fn)(void *ud, const char *what, const char *path), void *ud);

/* 1 if a librdkafka property holds a secret (its value is never shown):
   names with "password", "secret" or ".pem", sasl.oauthbearer.config. */
int config_kafka_secret_property(const char *name);

/*
** The librdkafka settings of every client: base ("key", "value", ...,
** NULL; may be NULL), then the security keys (kafka.security_protocol,
** SASL, SSL files, the password read from kafka.sasl_password_file), then
** every kafka.property (last: they win). *out gets a malloc'd NULL-terminated
** "key", "value", ... array for kuv_producer_opts.conf and
** kuv_consumer_opts.conf; free it with config_kafka_conf_free (which wipes
** the secrets). CONFIG_EVALUE with err saying which key is wrong (never a
** secret), CONFIG_EIO for an unreadable password file, CONFIG_ENOMEM.
*/
int config_kafka_conf(const config *cfg, const char *const *base, char ***out, char *err,
                      size_t errlen);
void config_kafka_conf_free(char **conf);

/*
** Reads a secret from path: its first line, without the line end; at most
** CONFIG_SECRET_MAX bytes. what names it in errors ("redis.password_file").
** *out is malloc'd; wipe and free it. CONFIG_EIO, CONFIG_EVALUE (empty),
** CONFIG_ENOMEM.
*/
int config_read_secret(const char *path, const char *what, char **out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* MUTIRAO_CONFIG_H */
