/* dlq.c: operators' view of a pool's dead letters: tasks a worker did not
 * run again because they were delivered max_deliveries times without an
 * outcome (worker/deadletters.h; the keys and scripts are in
 * shared/wire/fleet_keys.h).
 *
 *   list POOL [--json]         id, attempts, first/last delivery, error
 *   retry POOL ID|--all        the stored envelope back on the pool's topic
 *   drop POOL ID|--all         forgotten
 *
 * Kafka and Redis come from the configuration as for `mutirao run --fleet`
 * (config file, MUTIRAO_* environment). Redis and Kafka run on a private
 * libuv loop that this command drives until each reply is in: a command-line
 * tool, with nothing else to run meanwhile. */
#include "dlq.h"
#include "ops_data.h"
#include "ops_redis.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "cli_config.h"
#include "config.h"
#include "envelope.h"
#include "fleet_conn.h"
#include "fleet_keys.h"
#include "json_out.h"
#include "kafka_uv.h"
#include "redis_uv.h"
#include "sign.h"

enum { OK = 0, FAIL = 1, USAGE = 2 };

/* Where the commands write: stdout and stderr, or a caller's streams
 * (ops_data.h) for the length of its call. */
static FILE *out_to, *err_to;
#define OUT (out_to ? out_to : stdout)
#define ERR (err_to ? err_to : stderr)
/* The start of an error line: the command's name on the command line, nothing
 * for the callers of ops_data.h (they give err and say where it came from). */
#define PFX (err_to ? "" : "mutirao dlq: ")

static const char usage_text[] =
    "usage: mutirao dlq list POOL [--json] [--config FILE]\n"
    "       mutirao dlq retry POOL ID|--all [--config FILE]\n"
    "       mutirao dlq drop POOL ID|--all [--config FILE]\n"
    "\n"
    "A pool's dead letters: fleet tasks delivered max_deliveries times without an\n"
    "outcome (their worker died each time), not run again. list shows them (--json:\n"
    "one JSON array); retry puts a task back on the pool's topic, to run and record\n"
    "its outcome again; drop forgets it. Kafka and Redis as for `mutirao run\n"
    "--fleet`: --config FILE, $MUTIRAO_CONFIG, config/mutirao.conf or\n"
    "MUTIRAO_KAFKA_BROKERS / MUTIRAO_REDIS_URL.\n"
    "\n"
    "Exit status: 0 done, 1 unknown pool or id or a Kafka/Redis failure, 2 bad usage.\n";

/* ---- Redis, one command at a time (ops_redis.h) ---- */

typedef struct ctx {
    ops_redis rd; /* its loop also runs the Kafka producer */
    kuv_producer *kp;
    int take, remove; /* script ids */
} ctx;

/* A reply, or why there is none. */
typedef struct answer {
    ops_reply v;
    ops_redis_err e;
} answer;

static void answer_free(answer *a)
{
    ops_reply_free(&a->v);
}

static int cmd(ctx *c, answer *a, int argc, const char *const *argv, const size_t *lens)
{
    return ops_redis_run(&c->rd, &a->v, argc, argv, lens, &a->e);
}

/* A script call in the slot of prefix pre (its KEYS[1]) with argc ARGV. */
static int eval(ctx *c, answer *a, int script, const char *pre, int argc, const char *const *argv)
{
    return ops_redis_eval(&c->rd, &a->v, script, pre, argc, argv, &a->e);
}

/* ---- dead letters ---- */

/* One dead letter: its record "COUNT FIRST LAST DEAD_AT\nHISTORY\nERROR". */
typedef struct letter {
    const char *id;
    long long count;
    unsigned long long first, last, dead_at;
    const char *history; /* "WORKER@MS ...", in rec */
    size_t hlen;
    const char *error; /* to the end of rec */
    size_t elen;
} letter;

static void parse_letter(letter *l, const char *id, const char *rec, size_t len)
{
    memset(l, 0, sizeof *l);
    l->id = id;
    const char *end = rec + len;
    const char *nl1 = memchr(rec, '\n', len);
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    if (sscanf(rec, "%lld %llu %llu %llu", &l->count, &l->first, &l->last, &l->dead_at) != 4)
        l->count = -1;
    if (nl1 && nl2) {
        l->history = nl1 + 1;
        l->hlen = (size_t)(nl2 - nl1 - 1);
        l->error = nl2 + 1;
        l->elen = (size_t)(end - nl2 - 1);
    } else {
        l->history = l->error = "";
    }
}

static int by_dead_at(const void *a, const void *b)
{
    const letter *x = a, *y = b;
    if (x->dead_at != y->dead_at)
        return x->dead_at < y->dead_at ? -1 : 1;
    return strcmp(x->id, y->id);
}

static void iso_time(unsigned long long ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms == 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, n, "-");
        return;
    }
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_str(const char *s, size_t n)
{
    json_out_str(OUT, s, n);
}

/* The error on one line, at most max bytes (tracebacks are long). */
static void one_line(const char *s, size_t n, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < max; i++, k++)
        fputc(s[i] == '\n' || s[i] == '\t' || s[i] == '\r' ? ' ' : s[i], OUT);
    if (n > max)
        fputs("...", OUT);
}

/* 1 if the pool exists (its options or a dead letter are in Redis), 0 if
 * not, -1 on error (said). */
static int pool_known(ctx *c, const char *pool)
{
    char k1[FLEET_KEY_MAX], k2[FLEET_KEY_MAX];
    fleet_key_pool(k1, pool);
    fleet_key_dead(k2, pool);
    const char *argv[] = {"EXISTS", k1, k2};
    answer a;
    if (cmd(c, &a, 3, argv, NULL) != 0) {
        fprintf(ERR, "%s%s\n", PFX, a.e.msg);
        answer_free(&a);
        return -1;
    }
    int n = a.v.integer > 0;
    answer_free(&a);
    if (!n)
        fprintf(ERR, "%spool not found: %s\n", PFX, pool);
    return n;
}

static int do_list(ctx *c, const char *pool, int json)
{
    int known = pool_known(c, pool);
    if (known <= 0)
        return FAIL;
    char key[FLEET_KEY_MAX];
    fleet_key_dead(key, pool);
    const char *argv[] = {"HGETALL", key};
    answer a;
    if (cmd(c, &a, 2, argv, NULL) != 0) {
        fprintf(ERR, "%s%s\n", PFX, a.e.msg);
        answer_free(&a);
        return FAIL;
    }
    size_t n = a.v.n / 2;
    letter *ls = calloc(n ? n : 1, sizeof *ls);
    if (!ls) {
        answer_free(&a);
        fprintf(ERR, "%sout of memory\n", PFX);
        return FAIL;
    }
    size_t k = 0;
    for (size_t i = 0; i + 1 < a.v.n; i += 2)
        if (a.v.el[i].str && a.v.el[i + 1].str)
            parse_letter(&ls[k++], a.v.el[i].str, a.v.el[i + 1].str, a.v.el[i + 1].len);
    qsort(ls, k, sizeof *ls, by_dead_at);
    char t1[32], t2[32];
    if (json) {
        fputc('[', OUT);
        for (size_t i = 0; i < k; i++) {
            letter *l = &ls[i];
            fprintf(OUT, "%s\n  {\"id\": ", i ? "," : "");
            json_str(l->id, strlen(l->id));
            fprintf(OUT, ", \"pool\": ");
            json_str(pool, strlen(pool));
            fprintf(OUT,
                    ", \"attempts\": %lld, \"first_ms\": %llu, \"last_ms\": %llu, "
                    "\"dead_at_ms\": %llu, \"error\": ",
                    l->count, l->first, l->last, l->dead_at);
            json_str(l->error, l->elen);
            fprintf(OUT, ", \"history\": [");
            /* "WORKER#INCARNATION@MS ..." */
            const char *p = l->history, *e = l->history + l->hlen;
            int first = 1;
            while (p < e) {
                const char *sp = memchr(p, ' ', (size_t)(e - p));
                const char *q = sp ? sp : e;
                const char *at = NULL;
                for (const char *x = p; x < q; x++)
                    if (*x == '@')
                        at = x;
                if (at) {
                    /* WORKER#INCARNATION: the worker process (deliveries.h) */
                    const char *hash = NULL;
                    for (const char *x = p; x < at; x++)
                        if (*x == '#')
                            hash = x;
                    fprintf(OUT, "%s{\"worker\": ", first ? "" : ", ");
                    json_str(p, (size_t)((hash ? hash : at) - p));
                    if (hash) {
                        fprintf(OUT, ", \"incarnation\": ");
                        json_str(hash + 1, (size_t)(at - hash - 1));
                    }
                    fprintf(OUT, ", \"at_ms\": %.*s}", (int)(q - at - 1), at + 1);
                    first = 0;
                }
                p = q + 1;
            }
            fprintf(OUT, "]}");
        }
        fprintf(OUT, "%s]\n", k ? "\n" : "");
    } else if (k == 0) {
        fprintf(OUT, "no dead letters in pool %s\n", pool);
    } else {
        fprintf(OUT, "%-32s %8s  %-20s  %-20s  %s\n", "ID", "ATTEMPTS", "FIRST", "LAST", "ERROR");
        for (size_t i = 0; i < k; i++) {
            letter *l = &ls[i];
            iso_time(l->first, t1, sizeof t1);
            iso_time(l->last, t2, sizeof t2);
            fprintf(OUT, "%-32s %8lld  %-20s  %-20s  ", l->id, l->count, t1, t2);
            one_line(l->error, l->elen, 200);
            fputc('\n', OUT);
        }
    }
    free(ls);
    answer_free(&a);
    return OK;
}

/* The ids to act on: the one given, or every dead letter's (--all). */
static int ids_of(ctx *c, const char *pool, const char *which, answer *a)
{
    char key[FLEET_KEY_MAX];
    fleet_key_dead(key, pool);
    if (strcmp(which, "--all") != 0) {
        const char *argv[] = {"HEXISTS", key, which};
        if (cmd(c, a, 3, argv, NULL) != 0) {
            fprintf(ERR, "%s%s\n", PFX, a->e.msg);
            return -1;
        }
        if (a->v.integer != 1) {
            fprintf(ERR, "%sno dead letter %s in pool %s\n", PFX, which, pool);
            return -1;
        }
        answer_free(a);
        a->v.type = REDIS_REPLY_ARRAY;
        if (!(a->v.el = calloc(1, sizeof *a->v.el)) || !(a->v.el[0].str = strdup(which)))
            return -1;
        a->v.el[0].type = REDIS_REPLY_STRING;
        a->v.el[0].len = strlen(which);
        a->v.n = 1;
        return 0;
    }
    const char *argv[] = {"HKEYS", key};
    if (cmd(c, a, 2, argv, NULL) != 0) {
        fprintf(ERR, "%s%s\n", PFX, a->e.msg);
        return -1;
    }
    return 0;
}

typedef struct produced {
    int done, err;
    char msg[400];
} produced;

static void on_produced(void *ud, int err, const char *errmsg, int32_t partition, int64_t offset)
{
    (void)partition;
    (void)offset;
    produced *p = ud;
    p->done = 1;
    p->err = err;
    if (err)
        snprintf(p->msg, sizeof p->msg, "%s", errmsg ? errmsg : kuv_strerror(err));
}

/* One dead letter back on its pool's topic. */
static int retry_one(ctx *c, const char *pool, const char *topic, const char *id)
{
    char key[FLEET_KEY_MAX], ttl[16];
    fleet_key_dead_env(key, pool);
    const char *argv[] = {"HGET", key, id};
    answer env;
    if (cmd(c, &env, 3, argv, NULL) != 0 || !env.v.str) {
        fprintf(ERR, "%s%s: %s\n", PFX, id,
                env.e.msg[0] ? env.e.msg : "its envelope is not stored");
        answer_free(&env);
        return FAIL;
    }
    envelope_task e;
    char why[200];
    /* a signed message is produced again as it is; its envelope is read
     * inside it, unchecked (the worker checks the signature) */
    const char *inner = env.v.str;
    size_t innerlen = env.v.len;
    if (sign_is_signed(inner, innerlen) && sign_unwrap(env.v.str, env.v.len, &inner, &innerlen))
        innerlen = 0; /* too short: not a task */
    int drc = envelope_task_decode(inner, innerlen, NULL, &e, why, sizeof why);
    if (drc != 0 && drc != ENVELOPE_ENEWER) {
        fprintf(ERR, "%s%s: the stored envelope is not a task (%s)\n", PFX, id, why);
        answer_free(&env);
        return FAIL;
    }
    if (drc == 0 && e.ref_len > 0) {
        /* its arguments were kept by reference: without them it cannot run */
        char ik[FLEET_KEY_MAX];
        fleet_key_task_in(ik, id);
        const char *xargv[] = {"EXISTS", ik};
        answer x;
        int xrc = cmd(c, &x, 2, xargv, NULL);
        long long there = x.v.integer;
        answer_free(&x);
        if (xrc == 0 && there == 0) {
            fprintf(ERR,
                    "mutirao dlq: %s: its arguments (%llu bytes, kept in Redis by reference) are "
                    "gone (deleted when its failure was awaited, or expired): it cannot run "
                    "again; drop it\n",
                    id, (unsigned long long)e.ref_len);
            answer_free(&env);
            return FAIL;
        }
    }
    /* its outcome and delivery record go first, or a worker would say
     * "done" and not run it */
    snprintf(ttl, sizeof ttl, "%d", c->rd.cfg->result_ttl_s);
    const char *targv[] = {pool, id, ttl};
    char pre[FLEET_KEY_MAX];
    answer a;
    int rc = 0;
    if (fleet_keys_tagged()) {
        /* the take cannot see the pool's slot: is it still a dead letter? */
        char dk[FLEET_KEY_MAX];
        fleet_key_dead(dk, pool);
        const char *hargv[] = {"HEXISTS", dk, id};
        rc = cmd(c, &a, 3, hargv, NULL);
        if (rc == 0 && a.v.integer != 1) {
            fprintf(ERR, "%s%s: no longer a dead letter\n", PFX, id);
            answer_free(&a);
            answer_free(&env);
            return FAIL;
        }
        answer_free(&a);
    }
    fleet_prefix_id(pre, id);
    if (rc == 0)
        rc = eval(c, &a, c->take, pre, 3, targv);
    if (rc != 0 || a.v.integer != 1) {
        fprintf(ERR, "%s%s: %s\n", PFX, id, rc ? a.e.msg : "no longer a dead letter");
        answer_free(&a);
        answer_free(&env);
        return FAIL;
    }
    answer_free(&a);
    produced p = {0};
    rc = kuv_produce(c->kp, topic, id, strlen(id), env.v.str, env.v.len, on_produced, &p);
    answer_free(&env);
    if (rc != 0) {
        fprintf(ERR, "%s%s: kafka: %s\n", PFX, id, kuv_strerror(rc));
        return FAIL;
    }
    ops_redis_wait(&c->rd, &p.done);
    if (p.err) {
        fprintf(ERR, "%s%s: not delivered to Kafka (it stays a dead letter): %s\n", PFX, id, p.msg);
        /* not submitted after all: an await elsewhere must not wait for it */
        char qk[FLEET_KEY_MAX];
        fleet_key_task_queued(qk, id);
        const char *dargv[] = {"DEL", qk};
        answer_free(&a);
        cmd(c, &a, 2, dargv, NULL);
        answer_free(&a);
        fleet_bit b;
        if (fleet_bit_of(id, strlen(id), &b) == 0) {
            const char *bargv[] = {"SETBIT", b.sub, b.bit, "0"};
            cmd(c, &a, 4, bargv, NULL);
            answer_free(&a);
        }
        return FAIL;
    }
    const char *rargv[] = {pool, id, "retried"};
    fleet_prefix_pool(pre, pool);
    if (eval(c, &a, c->remove, pre, 3, rargv) != 0) {
        fprintf(ERR, "%s%s: back on %s, but %s\n", PFX, id, topic, a.e.msg);
        answer_free(&a);
        return FAIL;
    }
    answer_free(&a);
    fprintf(OUT, "retried %s (back on %s)\n", id, topic);
    return OK;
}

static int do_retry_drop(ctx *c, const char *pool, const char *which, int retry)
{
    int known = pool_known(c, pool);
    if (known <= 0)
        return FAIL;
    char topic[CONFIG_TOPIC_MAX + 1], why[300];
    if (config_topic_for_pool(c->rd.cfg, pool, topic, sizeof topic, why, sizeof why) != 0) {
        fprintf(ERR, "%s%s\n", PFX, why);
        return FAIL;
    }
    answer ids;
    if (ids_of(c, pool, which, &ids) != 0) {
        answer_free(&ids);
        return FAIL;
    }
    if (ids.v.n == 0)
        fprintf(OUT, "no dead letters in pool %s\n", pool);
    if (retry && ids.v.n > 0 && !c->kp) {
        char err[400] = "";
        kuv_producer_opts o;
        kuv_producer_opts_default(&o);
        o.message_timeout_ms = c->rd.cfg->op_timeout_ms > 0 ? c->rd.cfg->op_timeout_ms : 10000;
        o.errbuf = err;
        o.errlen = sizeof err;
        static const char *const base[] = {"log_level", "2", NULL};
        char **conf = NULL; /* + TLS, SASL, kafka.property */
        int rc = config_kafka_conf(c->rd.cfg, base, &conf, err, sizeof err);
        if (rc != 0) {
            fprintf(ERR, "%skafka: %s\n", PFX, err);
            answer_free(&ids);
            return FAIL;
        }
        o.conf = (const char *const *)conf;
        c->kp = kuv_producer_new(&c->rd.loop, c->rd.cfg->kafka_brokers, &o, &rc);
        config_kafka_conf_free(conf);
        if (!c->kp) {
            fprintf(ERR, "%skafka %s: %s\n", PFX, c->rd.cfg->kafka_brokers,
                    err[0] ? err : kuv_strerror(rc));
            answer_free(&ids);
            return FAIL;
        }
    }
    int st = OK;
    for (size_t i = 0; i < ids.v.n; i++) {
        if (!ids.v.el[i].str)
            continue;
        if (retry) {
            if (retry_one(c, pool, topic, ids.v.el[i].str) != OK)
                st = FAIL;
            continue;
        }
        const char *argv[] = {pool, ids.v.el[i].str, "dropped"};
        char pre[FLEET_KEY_MAX];
        fleet_prefix_pool(pre, pool);
        answer a;
        if (eval(c, &a, c->remove, pre, 3, argv) != 0) {
            fprintf(ERR, "%s%s: %s\n", PFX, ids.v.el[i].str, a.e.msg);
            st = FAIL;
        } else {
            fprintf(OUT, "dropped %s\n", ids.v.el[i].str);
        }
        answer_free(&a);
    }
    answer_free(&ids);
    return st;
}

/* Opens Redis for cfg (which must outlive c): 0, or -1 after a line. */
static int ctx_open(ctx *c, const config *cfg)
{
    memset(c, 0, sizeof *c);
    unsigned op = cfg->op_timeout_ms > 0 ? (unsigned)cfg->op_timeout_ms : 10000;
    unsigned ct = cfg->connect_timeout_ms > 0 ? (unsigned)cfg->connect_timeout_ms : 1;
    char why[300];
    if (ops_redis_open(&c->rd, cfg, ct, op, why, sizeof why) != 0) {
        fprintf(ERR, "%sredis.url: %s\n", PFX, why);
        return -1;
    }
    c->take = redis_uv_script(c->rd.r, FLEET_DLQ_TAKE_LUA, strlen(FLEET_DLQ_TAKE_LUA));
    c->remove = redis_uv_script(c->rd.r, FLEET_DLQ_REMOVE_LUA, strlen(FLEET_DLQ_REMOVE_LUA));
    return 0;
}

static void ctx_close(ctx *c)
{
    if (c->kp)
        kuv_producer_close(c->kp, 5000);
    ops_redis_close(&c->rd);
}

/* Takes --config FILE (or --config=FILE) out of argv, anywhere in it.
 * Returns 0, or USAGE after a line on ERR. */
static int take_config(int *argc, char **argv)
{
    int k = 0;
    for (int i = 0; i < *argc; i++) {
        int st = cli_config_option(*argc, argv, &i, "mutirao dlq", "mutirao dlq help");
        if (st == CLI_CONFIG_OTHER)
            argv[k++] = argv[i];
        else if (st != 0)
            return st;
    }
    *argc = k;
    return 0;
}

int cmd_dlq(int argc, char **argv)
{
    if (take_config(&argc, argv) != 0)
        return USAGE;
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (!sub || !strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        if (sub) {
            fputs(usage_text, OUT);
            return OK;
        }
        fputs("mutirao dlq: no subcommand given (see mutirao dlq help)\n", ERR);
        return USAGE;
    }
    int list = !strcmp(sub, "list"), retry = !strcmp(sub, "retry"), drop = !strcmp(sub, "drop");
    const char *pool = NULL, *which = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (list && !strcmp(a, "--json"))
            json = 1;
        else if (!list && !strcmp(a, "--all") && !which)
            which = a;
        else if (a[0] == '-' && a[1])
            return fprintf(ERR, "mutirao dlq: unknown option '%s' (see mutirao dlq help)\n", a),
                   USAGE;
        else if (!pool)
            pool = a;
        else if (!list && !which)
            which = a;
        else
            return fprintf(ERR, "mutirao dlq: unexpected argument '%s' (see mutirao dlq help)\n",
                           a),
                   USAGE;
    }
    if (!list && !retry && !drop)
        return fprintf(ERR, "mutirao dlq: unknown subcommand '%s' (see mutirao dlq help)\n", sub),
               USAGE;
    if (!pool)
        return fprintf(ERR, "mutirao dlq %s: no pool given (see mutirao dlq help)\n", sub), USAGE;
    if (!list && !which)
        return fprintf(ERR, "mutirao dlq %s: no task id (or --all) given (see mutirao dlq help)\n",
                       sub),
               USAGE;
    char why[300];
    if (envelope_check_pool(pool, strlen(pool), why, sizeof why) != 0)
        return fprintf(ERR, "mutirao dlq: invalid pool name '%s': %s\n", pool, why), USAGE;
    if (which && strcmp(which, "--all") && envelope_check_id(which, strlen(which), why, sizeof why))
        return fprintf(ERR, "mutirao dlq: invalid task id: %s\n", why), USAGE;

    config cfg;
    char err[512];
    if (config_load(&cfg, NULL, err, sizeof err) != 0) {
        fprintf(ERR, "mutirao: %s\n", err);
        config_free(&cfg);
        return USAGE;
    }
    ctx c;
    int st = USAGE;
    if (ctx_open(&c, &cfg) == 0) {
        st = list ? do_list(&c, pool, json) : do_retry_drop(&c, pool, which, retry);
        ctx_close(&c);
    }
    config_free(&cfg);
    return st;
}

/* ---- the same, for other callers (ops_data.h) ---- */

struct dlq_conn {
    ctx c;
};

dlq_conn *dlq_open(const config *cfg, FILE *err)
{
    dlq_conn *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    err_to = err;
    int rc = ctx_open(&d->c, cfg);
    err_to = NULL;
    if (rc != 0) {
        free(d);
        return NULL;
    }
    return d;
}

void dlq_close(dlq_conn *d)
{
    if (!d)
        return;
    ctx_close(&d->c);
    free(d);
}

int dlq_list_json(dlq_conn *d, const char *pool, FILE *out, FILE *err)
{
    out_to = out;
    err_to = err;
    int st = do_list(&d->c, pool, 1);
    out_to = err_to = NULL;
    return st;
}

int dlq_act(dlq_conn *d, const char *pool, const char *id, int retry, FILE *out, FILE *err)
{
    out_to = out;
    err_to = err;
    int st = do_retry_drop(&d->c, pool, id, retry);
    out_to = err_to = NULL;
    return st;
}
