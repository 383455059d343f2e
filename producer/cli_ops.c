/* cli_ops.c: the operations commands of `mutirao`, what the fleet is doing,
 * read from Redis (shared/wire/fleet_keys.h, docs/wire-format.md):
 *
 *   pools [--json]         every pool: workers, queued, running, completed,
 *                          failed, retried, dead-lettered, outcomes/min
 *   stats POOL [--json]    one pool: the same, its options and its workers
 *   task ID [--json]       a task's state, pool, worker, attempts, times, error
 *   workers [--json]       the live workers (their registry entries)
 *
 * A table on stdout, or with --json one JSON value for scripts. Redis comes
 * from the configuration as for `mutirao run --fleet`. Its commands run on a
 * private libuv loop driven until each reply is in; every command, the
 * first one included, has connect.timeout_ms to answer, so an unreachable
 * Redis is one line after that long. Exit status: 0, 1 (unknown pool or
 * task, Redis failure), 2 (bad usage). */
#include "cli_ops.h"
#include "ops_data.h"
#include "ops_redis.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "codec.h"
#include "cli_config.h"
#include "config.h"
#include "envelope.h"
#include "fleet_conn.h"
#include "fleet_keys.h"
#include "json_out.h"
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
#define PFX (err_to ? "" : "mutirao: ")

/* ---- Redis, one command at a time (ops_redis.h) ---- */

typedef struct conn {
    ops_redis rd;
    char *err; /* ops_quiet: failures go here, not to stderr */
    size_t errlen;
} conn;

/* Says a failure: one line on stderr, or into c->err. */
static void say(conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->err) {
        vsnprintf(c->err, c->errlen, fmt, ap);
    } else {
        fputs(PFX, ERR);
        vfprintf(ERR, fmt, ap);
        fputc('\n', ERR);
    }
    va_end(ap);
}

/* Runs one command; 0 with *out (ops_reply_free it), or -1 after saying why on
 * ERR (the first failure ends the command: one line). */
static int run(conn *c, ops_reply *out, int argc, const char *const *argv)
{
    ops_redis_err e;
    if (ops_redis_run(&c->rd, out, argc, argv, NULL, &e) == 0)
        return 0;
    if (e.unsent)
        say(c, "redis %s: %s", c->rd.url, redis_uv_strerror(e.status));
    else if (e.status == REDIS_UV_EUNREACHABLE || e.status == REDIS_UV_ETIMEDOUT)
        say(c, "cannot reach Redis at %s within %d ms (redis.url)", c->rd.url,
            c->rd.cfg->connect_timeout_ms > 0 ? c->rd.cfg->connect_timeout_ms : 5000);
    else
        say(c, "redis %s: %s", c->rd.url, e.msg);
    return -1;
}

static int run2(conn *c, ops_reply *out, const char *a, const char *b)
{
    const char *argv[] = {a, b};
    return run(c, out, 2, argv);
}

static int run3(conn *c, ops_reply *out, const char *a, const char *b, const char *d)
{
    const char *argv[] = {a, b, d};
    return run(c, out, 3, argv);
}

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- output ---- */

static void json_str(const char *s, size_t n)
{
    json_out_str(OUT, s, n);
}

static void json_cstr(const char *s)
{
    if (s)
        json_str(s, strlen(s));
    else
        fputs("null", OUT);
}

/* Unix ms as "2026-01-02T03:04:05.678Z", "-" for 0. */
static void iso_ms(uint64_t ms, char *out, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms == 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, n, "-");
        return;
    }
    char s[32];
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03uZ", s, (unsigned)(ms % 1000));
}

/* "3s ago", "2m ago" */
static void ago(uint64_t ms, uint64_t now, char *out, size_t n)
{
    uint64_t d = now > ms ? (now - ms) / 1000 : 0;
    if (d < 120)
        snprintf(out, n, "%" PRIu64 "s ago", d);
    else
        snprintf(out, n, "%" PRIu64 "m ago", d / 60);
}

/* ---- connection ---- */

/* Opens the client of cfg's redis.url; 0, or -1 after one line on ERR. */
static int conn_open(conn *c, const config *cfg)
{
    memset(c, 0, sizeof *c);
    unsigned ct = cfg->connect_timeout_ms > 0 ? (unsigned)cfg->connect_timeout_ms : 5000;
    char why[300];
    /* reads of a few keys: an unreachable server fails within ct */
    if (ops_redis_open(&c->rd, cfg, ct, ct, why, sizeof why) != 0) {
        fprintf(ERR, "%sredis.url %s: %s\n", PFX, c->rd.url, why);
        return -1;
    }
    return 0;
}

static void conn_close(conn *c)
{
    ops_redis_close(&c->rd);
}

/* ---- the worker registry ---- */

typedef struct wentry {
    char *id;
    ops_reply h; /* its hash */
} wentry;

typedef struct wlist {
    wentry *w;
    size_t n;
} wlist;

static void wlist_free(wlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->w[i].id);
        ops_reply_free(&l->w[i].h);
    }
    free(l->w);
    memset(l, 0, sizeof *l);
}

/* The live workers: the registry's members seen within FLEET_WORKER_TTL_S
 * whose entry is still there. 0 or -1 (said). */
static int workers_load(conn *c, wlist *l)
{
    memset(l, 0, sizeof *l);
    char set[FLEET_KEY_MAX], min[32];
    fleet_key_workers(set);
    snprintf(min, sizeof min, "%" PRIu64, now_ms() - (uint64_t)FLEET_WORKER_TTL_S * 1000);
    const char *argv[] = {"ZRANGEBYSCORE", set, min, "+inf"};
    ops_reply ids;
    if (run(c, &ids, 4, argv) != 0)
        return -1;
    l->w = calloc(ids.n ? ids.n : 1, sizeof *l->w);
    if (!l->w) {
        ops_reply_free(&ids);
        return -1;
    }
    for (size_t i = 0; i < ids.n; i++) {
        if (!ids.el[i].str)
            continue;
        char key[FLEET_KEY_MAX];
        fleet_key_worker(key, ids.el[i].str);
        ops_reply h;
        if (run2(c, &h, "HGETALL", key) != 0) {
            ops_reply_free(&ids);
            wlist_free(l);
            return -1;
        }
        if (h.n == 0) {
            ops_reply_free(&h);
            continue;
        }
        l->w[l->n].id = strdup(ids.el[i].str);
        l->w[l->n++].h = h;
    }
    ops_reply_free(&ids);
    return 0;
}

/* Worker w's "pool:NAME" numbers: running, slots, outcomes over the last
 * minute; 0 when it has the pool, -1 if not. */
static int worker_pool(const wentry *w, const char *pool, long long *running, long long *slots,
                       long long *rate)
{
    char f[ENVELOPE_POOL_MAX + 8];
    snprintf(f, sizeof f, "pool:%s", pool);
    const char *v = ops_reply_field(&w->h, f);
    *running = *slots = *rate = 0;
    if (!v)
        return -1;
    if (sscanf(v, "%lld %lld %lld", running, slots, rate) < 1)
        return -1;
    return 0;
}

/* 1 if worker w serves pool by name (its --pools list names it). */
static int serves_pool(const wentry *w, const char *pool)
{
    const char *s = ops_reply_field(&w->h, "serves");
    size_t n = strlen(pool);
    while (s && *s) {
        size_t k = strcspn(s, ",");
        if (k == n && !memcmp(s, pool, n))
            return 1;
        s += k + (s[k] == ',');
    }
    return 0;
}

/* ---- pools ---- */

typedef struct pstat {
    char name[ENVELOPE_POOL_MAX + 1];
    int known; /* some key of the pool is in Redis */
    long long submitted, completed, failed, dead, retried, running, queued, workers, rate;
    ops_reply opts; /* mutirao:pool:NAME */
} pstat;

static void add_counters(pstat *p, const ops_reply *h)
{
    p->submitted += ops_reply_field_ll(h, "submitted");
    p->completed += ops_reply_field_ll(h, "completed");
    p->failed += ops_reply_field_ll(h, "failed");
    p->dead += ops_reply_field_ll(h, "dead_lettered");
    p->retried += ops_reply_field_ll(h, "retried");
}

/* Reads pool p->name's keys and the registry's view of it. 0 or -1. */
static int pool_load(conn *c, pstat *p, const wlist *wl)
{
    char key[FLEET_KEY_MAX];
    ops_reply h;
    fleet_key_pool(key, p->name);
    if (run2(c, &p->opts, "HGETALL", key) != 0)
        return -1;
    p->known = p->opts.n > 0;
    fleet_key_stats(key, p->name);
    if (run2(c, &h, "HGETALL", key) != 0)
        return -1;
    p->known |= h.n > 0;
    add_counters(p, &h);
    ops_reply_free(&h);
    if (fleet_keys_tagged()) {
        /* the counters of each producer's tasks, in their slots */
        ops_reply prods;
        fleet_key_producers(key, p->name);
        if (run(c, &prods, 4, (const char *const[]){"ZRANGE", key, "0", "-1"}) != 0)
            return -1;
        for (size_t i = 0; i < prods.n; i++) {
            if (!prods.el[i].str || prods.el[i].len > ENVELOPE_ID_MAX)
                continue;
            fleet_key_pstats(key, p->name, prods.el[i].str);
            if (run2(c, &h, "HGETALL", key) != 0) {
                ops_reply_free(&prods);
                return -1;
            }
            p->known |= h.n > 0;
            add_counters(p, &h);
            ops_reply_free(&h);
        }
        ops_reply_free(&prods);
    }
    fleet_key_active(key, p->name);
    if (run2(c, &h, "HGETALL", key) != 0)
        return -1;
    p->known |= h.n > 0;
    uint64_t now = now_ms();
    for (size_t i = 0; i + 1 < h.n; i += 2) {
        const char *v = h.el[i + 1].str;
        char *end;
        long long n = v ? strtoll(v, &end, 10) : 0;
        unsigned long long at = v ? strtoull(end, NULL, 10) : 0;
        if (n > 0 && at + FLEET_ACTIVE_STALE_MS >= now)
            p->running += n;
    }
    ops_reply_free(&h);
    fleet_key_dead(key, p->name);
    if (run(c, &h, 2, (const char *const[]){"EXISTS", key}) != 0)
        return -1;
    p->known |= h.integer > 0;
    ops_reply_free(&h);
    for (size_t i = 0; i < wl->n; i++) {
        long long r, s, m;
        if (worker_pool(&wl->w[i], p->name, &r, &s, &m) == 0) {
            p->workers++;
            p->rate += m;
        } else if (serves_pool(&wl->w[i], p->name)) {
            p->workers++; /* no task of it yet */
        }
    }
    p->queued = p->submitted - p->completed - p->failed - p->running;
    if (p->queued < 0)
        p->queued = 0;
    return 0;
}

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_add(names *s, const char *name, size_t len)
{
    if (len == 0 || len > ENVELOPE_POOL_MAX || envelope_check_pool(name, len, NULL, 0) != 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && !memcmp(s->v[i], name, len))
            return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return;
        s->v = v;
        s->cap = cap;
    }
    char *d = malloc(len + 1);
    if (!d)
        return;
    memcpy(d, name, len);
    d[len] = 0;
    s->v[s->n++] = d;
}

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every pool's name: from the pool keys in Redis (SCAN) and the workers'
 * registry entries. 0 or -1. */
static int pool_names(conn *c, const wlist *wl, names *out)
{
    memset(out, 0, sizeof *out);
    /* flat: mutirao:pool:NAME[:...]; tagged: mutirao:{NAME}:pool:NAME[:...]
     * (pool names hold no ':') */
    const char *match = fleet_keys_tagged() ? "mutirao:{*}:pool:*" : "mutirao:pool:*";
    char cursor[32] = "0";
    do {
        ops_reply r;
        const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        if (run(c, &r, 6, argv) != 0)
            return -1;
        if (r.n == 2 && r.el[0].str) {
            snprintf(cursor, sizeof cursor, "%s", r.el[0].str);
            for (size_t i = 0; i < r.el[1].n; i++) {
                const char *k = r.el[1].el[i].str, *p;
                if (!k || !(p = strstr(k, "pool:")))
                    continue;
                p += 5;
                const char *e = strchr(p, ':');
                names_add(out, p, e ? (size_t)(e - p) : strlen(p));
            }
        } else {
            cursor[0] = '0';
            cursor[1] = 0;
        }
        ops_reply_free(&r);
    } while (strcmp(cursor, "0") != 0);
    for (size_t i = 0; i < wl->n; i++)
        for (size_t j = 0; j < wl->w[i].h.n; j += 2) {
            const char *f = wl->w[i].h.el[j].str;
            if (f && !strncmp(f, "pool:", 5))
                names_add(out, f + 5, strlen(f + 5));
        }
    qsort(out->v, out->n, sizeof *out->v, by_name);
    return 0;
}

/* Every pool (pool_names), loaded: *out (pstats_free it). 0 or -1. */
static void pstats_free(pstat *ps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ops_reply_free(&ps[i].opts);
    free(ps);
}

static int pools_collect(conn *c, const wlist *wl, pstat **out, size_t *n)
{
    names ns;
    *out = NULL;
    *n = 0;
    if (pool_names(c, wl, &ns) != 0)
        return -1;
    pstat *ps = calloc(ns.n ? ns.n : 1, sizeof *ps);
    int st = ps ? 0 : -1;
    for (size_t i = 0; i < ns.n && st == 0; i++) {
        snprintf(ps[i].name, sizeof ps[i].name, "%s", ns.v[i]);
        st = pool_load(c, &ps[i], wl);
    }
    names_free(&ns);
    if (st != 0) {
        if (ps)
            pstats_free(ps, ns.n);
        return -1;
    }
    *out = ps;
    *n = ns.n;
    return 0;
}

static void pool_json(const pstat *p)
{
    fputs("{\"pool\": ", OUT);
    json_cstr(p->name);
    fprintf(OUT,
            ", \"workers\": %lld, \"queued\": %lld, \"running\": %lld, \"submitted\": %lld, "
            "\"completed\": %lld, \"failed\": %lld, \"retried\": %lld, \"dead_lettered\": %lld, "
            "\"rate_per_min\": %lld",
            p->workers, p->queued, p->running, p->submitted, p->completed, p->failed, p->retried,
            p->dead, p->rate);
}

static const char pools_head[] = "%-24s %7s %8s %8s %10s %8s %8s %6s %9s\n";
static const char pools_row[] = "%-24s %7lld %8lld %8lld %10lld %8lld %8lld %6lld %9lld\n";

static void pool_row(const pstat *p)
{
    fprintf(OUT, pools_row, p->name, p->workers, p->queued, p->running, p->completed, p->failed,
            p->retried, p->dead, p->rate);
}

static int cmd_pools(conn *c, int json)
{
    wlist wl;
    pstat *ps;
    size_t n;
    if (workers_load(c, &wl) != 0)
        return FAIL;
    if (pools_collect(c, &wl, &ps, &n) != 0) {
        wlist_free(&wl);
        return FAIL;
    }
    if (json)
        fputc('[', OUT);
    else if (n == 0)
        fprintf(OUT, "no pools (none created, or their keys expired)\n");
    else
        fprintf(OUT, pools_head, "POOL", "WORKERS", "QUEUED", "RUNNING", "COMPLETED", "FAILED",
                "RETRIED", "DEAD", "RATE/MIN");
    for (size_t i = 0; i < n; i++) {
        if (json) {
            fprintf(OUT, "%s\n  ", i ? "," : "");
            pool_json(&ps[i]);
            fputc('}', OUT);
        } else {
            pool_row(&ps[i]);
        }
    }
    if (json)
        fprintf(OUT, "%s]\n", n ? "\n" : "");
    pstats_free(ps, n);
    wlist_free(&wl);
    return OK;
}

static int cmd_stats(conn *c, const char *pool, int json)
{
    wlist wl;
    if (workers_load(c, &wl) != 0)
        return FAIL;
    pstat p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", pool);
    if (pool_load(c, &p, &wl) != 0) {
        ops_reply_free(&p.opts);
        wlist_free(&wl);
        return FAIL;
    }
    if (!p.known && p.workers == 0) {
        fprintf(ERR, "%spool not found: %s\n", PFX, pool);
        ops_reply_free(&p.opts);
        wlist_free(&wl);
        return FAIL;
    }
    static const char *const opts[] = {"workers", "queue", "max_deliveries", "timeout", "memory"};
    if (json) {
        pool_json(&p);
        fputs(", \"options\": {", OUT);
        int first = 1;
        for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
            const char *v = ops_reply_field(&p.opts, opts[i]);
            if (!v)
                continue;
            fprintf(OUT, "%s\"%s\": %lld", first ? "" : ", ", opts[i], strtoll(v, NULL, 10));
            first = 0;
        }
        fputs("}, \"by_worker\": [", OUT);
        first = 1;
        for (size_t i = 0; i < wl.n; i++) {
            long long r, s, m;
            if (worker_pool(&wl.w[i], pool, &r, &s, &m) != 0)
                continue;
            fprintf(OUT, "%s{\"worker\": ", first ? "" : ", ");
            json_cstr(wl.w[i].id);
            fprintf(OUT, ", \"running\": %lld, \"slots\": %lld, \"rate_per_min\": %lld}", r, s, m);
            first = 0;
        }
        fputs("]}\n", OUT);
    } else {
        fprintf(OUT,
                "pool           %s\n"
                "workers        %lld\n"
                "queued         %lld\n"
                "running        %lld\n"
                "submitted      %lld\n"
                "completed      %lld\n"
                "failed         %lld  (dead-lettered %lld)\n"
                "retried        %lld\n"
                "rate           %lld outcomes over the last minute\n",
                p.name, p.workers, p.queued, p.running, p.submitted, p.completed, p.failed, p.dead,
                p.retried, p.rate);
        for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
            const char *v = ops_reply_field(&p.opts, opts[i]);
            if (v)
                fprintf(OUT, "option %-7s %s\n", opts[i], v);
        }
        int head = 0;
        for (size_t i = 0; i < wl.n; i++) {
            long long r, s, m;
            if (worker_pool(&wl.w[i], pool, &r, &s, &m) != 0)
                continue;
            if (!head++)
                fprintf(OUT, "\n%-32s %8s %6s %9s\n", "WORKER", "RUNNING", "SLOTS", "RATE/MIN");
            fprintf(OUT, "%-32s %8lld %6lld %9lld\n", wl.w[i].id, r, s, m);
        }
    }
    ops_reply_free(&p.opts);
    wlist_free(&wl);
    return OK;
}

/* ---- workers ---- */

/* Worker w as the table shows it. */
static void worker_summary(const wentry *w, ops_worker *o)
{
    const ops_reply *h = &w->h;
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", w->id);
    /* the pools it ran tasks of, else those it serves */
    size_t pl = 0;
    for (size_t j = 0; j < h->n; j += 2) {
        const char *f = h->el[j].str;
        if (f && !strncmp(f, "pool:", 5) && pl < sizeof o->pools)
            pl +=
                (size_t)snprintf(o->pools + pl, sizeof o->pools - pl, "%s%s", pl ? "," : "", f + 5);
    }
    const char *serves = ops_reply_field(h, "serves");
    if (!o->pools[0])
        snprintf(o->pools, sizeof o->pools, "%s", serves && strcmp(serves, "*") ? serves : "(all)");
    snprintf(o->host, sizeof o->host, "%s",
             ops_reply_field(h, "host") ? ops_reply_field(h, "host") : "-");
    snprintf(o->version, sizeof o->version, "%s",
             ops_reply_field(h, "version") ? ops_reply_field(h, "version") : "-");
    o->running = ops_reply_field_ll(h, "running");
    o->slots = ops_reply_field_ll(h, "slots");
    o->seen_ms = (uint64_t)ops_reply_field_ll(h, "seen");
}

static int cmd_workers(conn *c, int json)
{
    wlist wl;
    if (workers_load(c, &wl) != 0)
        return FAIL;
    uint64_t now = now_ms();
    if (json)
        fputc('[', OUT);
    else if (wl.n == 0)
        fprintf(OUT, "no live workers (none reported in the last %d s)\n", FLEET_WORKER_TTL_S);
    else
        fprintf(OUT, "%-28s %-20s %-20s %7s %5s %-10s %s\n", "ID", "HOST", "POOLS", "RUNNING",
                "SLOTS", "LAST SEEN", "VERSION");
    for (size_t i = 0; i < wl.n; i++) {
        const ops_reply *h = &wl.w[i].h;
        const char *serves = ops_reply_field(h, "serves");
        uint64_t seen = (uint64_t)ops_reply_field_ll(h, "seen");
        if (json) {
            fprintf(OUT, "%s\n  {\"id\": ", i ? "," : "");
            json_cstr(wl.w[i].id);
            fputs(", \"host\": ", OUT);
            json_cstr(ops_reply_field(h, "host"));
            fprintf(OUT, ", \"pid\": %lld, \"version\": ", ops_reply_field_ll(h, "pid"));
            json_cstr(ops_reply_field(h, "version"));
            fputs(", \"serves\": ", OUT);
            json_cstr(serves);
            fputs(", \"pools\": [", OUT);
            int first = 1;
            for (size_t j = 0; j < h->n; j += 2) {
                const char *f = h->el[j].str;
                if (f && !strncmp(f, "pool:", 5)) {
                    fputs(first ? "" : ", ", OUT);
                    json_cstr(f + 5);
                    first = 0;
                }
            }
            fprintf(OUT,
                    "], \"running\": %lld, \"slots\": %lld, \"threads\": %lld, "
                    "\"started_ms\": %lld, \"last_seen_ms\": %" PRIu64 "}",
                    ops_reply_field_ll(h, "running"), ops_reply_field_ll(h, "slots"),
                    ops_reply_field_ll(h, "threads"), ops_reply_field_ll(h, "started"), seen);
        } else {
            char when[32];
            ops_worker o;
            worker_summary(&wl.w[i], &o);
            ago(o.seen_ms, now, when, sizeof when);
            fprintf(OUT, "%-28s %-20s %-20s %7lld %5lld %-10s %s\n", o.id, o.host, o.pools,
                    o.running, o.slots, when, o.version);
        }
    }
    if (json)
        fprintf(OUT, "%s]\n", wl.n ? "\n" : "");
    wlist_free(&wl);
    return OK;
}

/* ---- the same as data (ops_data.h) ---- */

struct ops_conn {
    conn c;
};

void ops_quiet(ops_conn *o, char *err, size_t n)
{
    o->c.err = err;
    o->c.errlen = n;
}

void ops_snapshot_free(ops_snapshot *s)
{
    free(s->pools);
    free(s->workers);
    memset(s, 0, sizeof *s);
}

/* Worker w's "dur:NAME" counts added to p->dur. */
static void add_durations(const wentry *w, ops_pool *p)
{
    char f[ENVELOPE_POOL_MAX + 8];
    snprintf(f, sizeof f, "dur:%s", p->name);
    const char *v = ops_reply_field(&w->h, f);
    for (int k = 0; v && *v && k < FLEET_DUR_BUCKETS; k++) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (end == v)
            break;
        p->dur[k] += n;
        v = end;
    }
}

int ops_read(ops_conn *o, ops_snapshot *s)
{
    memset(s, 0, sizeof *s);
    wlist wl;
    pstat *ps;
    size_t n;
    if (workers_load(&o->c, &wl) != 0)
        return -1;
    if (pools_collect(&o->c, &wl, &ps, &n) != 0) {
        wlist_free(&wl);
        return -1;
    }
    s->pools = calloc(n ? n : 1, sizeof *s->pools);
    s->workers = calloc(wl.n ? wl.n : 1, sizeof *s->workers);
    if (!s->pools || !s->workers) {
        say(&o->c, "out of memory");
        ops_snapshot_free(s);
        pstats_free(ps, n);
        wlist_free(&wl);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        ops_pool *p = &s->pools[i];
        memcpy(p->name, ps[i].name, sizeof p->name);
        p->workers = ps[i].workers;
        p->queued = ps[i].queued;
        p->running = ps[i].running;
        p->submitted = ps[i].submitted;
        p->completed = ps[i].completed;
        p->failed = ps[i].failed;
        p->retried = ps[i].retried;
        p->dead = ps[i].dead;
        p->rate = ps[i].rate;
        for (size_t j = 0; j < wl.n; j++)
            add_durations(&wl.w[j], p);
    }
    s->npools = n;
    for (size_t i = 0; i < wl.n; i++)
        worker_summary(&wl.w[i], &s->workers[i]);
    s->nworkers = wl.n;
    pstats_free(ps, n);
    wlist_free(&wl);
    return 0;
}

/* ---- task ---- */

typedef struct tinfo {
    const char *state;
    char pool[ENVELOPE_POOL_MAX + 1];
    char worker[ENVELOPE_ID_MAX + 1];
    unsigned long long attempt, submitted, started, finished;
    char *error; /* malloc'd text, or NULL */
} tinfo;

/* The error value (codec bytes) as text, malloc'd. */
static char *error_text(const char *data, size_t len)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    char *out = NULL;
    int n = 0;
    if (codec_decode(L, data, len, NULL, &n, NULL, 0) == 0 && n >= 1) {
        size_t l;
        const char *s = luaL_tolstring(L, -n, &l);
        out = malloc(l + 1);
        if (out) {
            memcpy(out, s, l);
            out[l] = 0;
        }
    } else {
        out = strdup("(an error value this command cannot read)");
    }
    lua_close(L);
    return out;
}

static int cmd_task(conn *c, const char *id, int json)
{
    tinfo t;
    memset(&t, 0, sizeof t);
    char key[FLEET_KEY_MAX];
    ops_reply v;
    fleet_key_task_info(key, id);
    if (run2(c, &v, "GET", key) != 0)
        return FAIL;
    if (v.str) {
        /* "STATE ATTEMPT SUBMITTED STARTED FINISHED WORKER POOL\nERROR" */
        static char state[32];
        const char *nl = memchr(v.str, '\n', v.len);
        if (sscanf(v.str, "%31s %llu %llu %llu %llu %127s %200s", state, &t.attempt, &t.submitted,
                   &t.started, &t.finished, t.worker, t.pool) >= 5)
            t.state = state;
        if (nl && (size_t)(nl + 1 - v.str) < v.len)
            t.error = error_text(nl + 1, v.len - (size_t)(nl + 1 - v.str));
    }
    ops_reply_free(&v);
    if (!t.state) {
        /* an outcome from a worker that writes no info: its record */
        fleet_key_task(key, id);
        if (run2(c, &v, "GET", key) != 0)
            return FAIL;
        envelope_result r;
        const char *rec = v.str;
        size_t reclen = v.len;
        if (rec && sign_is_signed(rec, reclen) && sign_unwrap(v.str, v.len, &rec, &reclen) != 0)
            rec = NULL;
        if (rec && envelope_result_decode(rec, reclen, NULL, &r, NULL, 0) == 0) {
            t.state = r.dead_lettered ? "dead_lettered" : r.ok ? "completed" : "failed";
            t.attempt = r.attempt;
            t.finished = r.finished_at_ms;
            snprintf(t.worker, sizeof t.worker, "%s", r.worker);
            snprintf(t.pool, sizeof t.pool, "%s", r.pool);
            if (!r.ok && r.payload_len)
                t.error = error_text(r.payload, r.payload_len);
        }
        ops_reply_free(&v);
    }
    if (!t.state) {
        /* running: its delivery record "COUNT FIRST LAST WORKER#INC@MS ..." */
        fleet_key_delivery(key, id);
        if (run2(c, &v, "GET", key) != 0)
            return FAIL;
        if (v.str) {
            unsigned long long first = 0, last = 0;
            if (sscanf(v.str, "%llu %llu %llu", &t.attempt, &first, &last) == 3) {
                t.state = "running";
                t.started = last;
                const char *h = strrchr(v.str, ' ');
                if (h) {
                    h++;
                    size_t n = strcspn(h, "#@");
                    snprintf(t.worker, sizeof t.worker, "%.*s", (int)n, h);
                }
            }
        }
        ops_reply_free(&v);
    }
    fleet_bit b;
    if (!t.state && fleet_bit_of(id, strlen(id), &b) == 0) {
        /* done (the details expired or were never kept) or only submitted */
        if (run3(c, &v, "GETBIT", b.seen, b.bit) != 0)
            return FAIL;
        if (v.integer == 1)
            t.state = "done";
        ops_reply_free(&v);
        if (!t.state) {
            if (run3(c, &v, "GETBIT", b.sub, b.bit) != 0)
                return FAIL;
            if (v.integer == 1)
                t.state = "queued";
            ops_reply_free(&v);
        }
    }
    if (!t.state) {
        fleet_key_task_queued(key, id);
        if (run(c, &v, 2, (const char *const[]){"EXISTS", key}) != 0)
            return FAIL;
        if (v.integer > 0)
            t.state = "queued";
        ops_reply_free(&v);
    }
    if (!t.state) {
        fprintf(ERR, "%stask not found: %s\n", PFX, id);
        return FAIL;
    }
    char s1[40], s2[40], s3[40];
    iso_ms(t.submitted, s1, sizeof s1);
    iso_ms(t.started, s2, sizeof s2);
    iso_ms(t.finished, s3, sizeof s3);
    long long dur = t.started && t.finished >= t.started ? (long long)(t.finished - t.started) : -1;
    if (json) {
        fputs("{\"id\": ", OUT);
        json_cstr(id);
        fputs(", \"state\": ", OUT);
        json_cstr(t.state);
        fputs(", \"pool\": ", OUT);
        json_cstr(t.pool[0] ? t.pool : NULL);
        fputs(", \"worker\": ", OUT);
        json_cstr(t.worker[0] ? t.worker : NULL);
        fprintf(OUT,
                ", \"attempts\": %llu, \"submitted_ms\": %llu, \"started_ms\": %llu, "
                "\"finished_ms\": %llu, \"duration_ms\": ",
                t.attempt, t.submitted, t.started, t.finished);
        if (dur >= 0)
            fprintf(OUT, "%lld", dur);
        else
            fputs("null", OUT);
        fputs(", \"error\": ", OUT);
        json_cstr(t.error);
        fputs("}\n", OUT);
    } else {
        fprintf(OUT,
                "task       %s\n"
                "state      %s\n",
                id, t.state);
        if (t.pool[0])
            fprintf(OUT, "pool       %s\n", t.pool);
        fprintf(OUT,
                "worker     %s\n"
                "attempts   %llu\n"
                "submitted  %s\n"
                "started    %s\n"
                "finished   %s\n",
                t.worker[0] ? t.worker : "-", t.attempt, s1, s2, s3);
        if (dur >= 0)
            fprintf(OUT, "duration   %lld.%03llds\n", dur / 1000, dur % 1000);
        else
            fprintf(OUT, "duration   -\n");
        if (t.error)
            fprintf(OUT, "error      %s\n", t.error);
    }
    free(t.error);
    return OK;
}

/* ---- the command line ---- */

/* The commands' help (after their usage line). */
static const char cli_ops_help[] =
    "Reads what the fleet keeps in Redis (redis.url of config/mutirao.conf,\n"
    "$MUTIRAO_CONFIG, --config FILE or MUTIRAO_REDIS_URL). A table, or with --json\n"
    "one JSON value. rate: task outcomes recorded over the last minute by the live\n"
    "workers.\n"
    "\n"
    "Exit status: 0, 1 for an unknown pool or task or when Redis cannot be read,\n"
    "2 on bad usage.\n";

static const char usage_line[] = "usage: mutirao pools [--json] [--config FILE]\n"
                                 "       mutirao stats POOL [--json] [--config FILE]\n"
                                 "       mutirao task ID [--json] [--config FILE]\n"
                                 "       mutirao workers [--json] [--config FILE]";

static int ops_usage(const char *cmd, const char *fmt, const char *arg)
{
    fputs("mutirao: ", ERR);
    fprintf(ERR, fmt, arg);
    fprintf(ERR, " (see mutirao %s --help)\n", cmd);
    return USAGE;
}

int cli_ops_is_command(const char *cmd)
{
    return !strcmp(cmd, "pools") || !strcmp(cmd, "stats") || !strcmp(cmd, "task") ||
           !strcmp(cmd, "workers");
}

int cli_ops_main(const char *cmd, int argc, char **argv)
{
    int json = 0, needs = !strcmp(cmd, "stats") || !strcmp(cmd, "task");
    const char *arg = NULL;
    char prog[32], hint[48];
    snprintf(prog, sizeof prog, "mutirao %s", cmd);
    snprintf(hint, sizeof hint, "mutirao %s --help", cmd);
    for (int i = 0, st; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fprintf(OUT, "%s\n\n%s", usage_line, cli_ops_help);
            return OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if ((st = cli_config_option(argc, argv, &i, prog, hint)) != CLI_CONFIG_OTHER) {
            if (st != 0)
                return st;
        } else if (a[0] == '-' && a[1]) {
            return ops_usage(cmd, "unknown option '%s'", a);
        } else if (needs && !arg) {
            arg = a;
        } else {
            return ops_usage(cmd, "unexpected argument '%s'", a);
        }
    }
    char why[300];
    if (needs && !arg)
        return ops_usage(cmd, "%s",
                         !strcmp(cmd, "stats") ? "stats: no pool given" : "task: no id given");
    if (!strcmp(cmd, "stats") && envelope_check_pool(arg, strlen(arg), why, sizeof why) != 0)
        return fprintf(ERR, "mutirao: invalid pool name '%s': %s\n", arg, why), USAGE;
    if (!strcmp(cmd, "task") && envelope_check_id(arg, strlen(arg), why, sizeof why) != 0)
        return fprintf(ERR, "mutirao: invalid task id '%s': %s\n", arg, why), USAGE;
    config cfg;
    char err[512];
    if (config_load(&cfg, NULL, err, sizeof err) != 0) {
        fprintf(ERR, "mutirao: %s\n", err);
        config_free(&cfg);
        return USAGE;
    }
    conn c;
    int st = FAIL;
    if (conn_open(&c, &cfg) == 0) {
        if (!strcmp(cmd, "pools"))
            st = cmd_pools(&c, json);
        else if (!strcmp(cmd, "stats"))
            st = cmd_stats(&c, arg, json);
        else if (!strcmp(cmd, "task"))
            st = cmd_task(&c, arg, json);
        else
            st = cmd_workers(&c, json);
        conn_close(&c);
    }
    config_free(&cfg);
    return st;
}

/* ---- the same as JSON, for other callers (ops_data.h; struct ops_conn
 * above) ---- */

/* Runs f's call with out and err as the streams. */
#define WITH_STREAMS(out, err, call)                                                               \
    do {                                                                                           \
        out_to = (out);                                                                            \
        err_to = (err);                                                                            \
        st = (call);                                                                               \
        out_to = err_to = NULL;                                                                    \
    } while (0)

ops_conn *ops_open(const config *cfg, FILE *err)
{
    ops_conn *c = calloc(1, sizeof *c);
    int st = 0;
    if (!c) {
        fprintf(err ? err : stderr, "mutirao: out of memory\n");
        return NULL;
    }
    WITH_STREAMS(NULL, err, conn_open(&c->c, cfg));
    if (st != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void ops_close(ops_conn *c)
{
    if (!c)
        return;
    conn_close(&c->c);
    free(c);
}

int ops_pools_json(ops_conn *c, FILE *out, FILE *err)
{
    int st;
    WITH_STREAMS(out, err, cmd_pools(&c->c, 1));
    return st;
}

int ops_stats_json(ops_conn *c, const char *pool, FILE *out, FILE *err)
{
    int st;
    WITH_STREAMS(out, err, cmd_stats(&c->c, pool, 1));
    return st;
}

int ops_workers_json(ops_conn *c, FILE *out, FILE *err)
{
    int st;
    WITH_STREAMS(out, err, cmd_workers(&c->c, 1));
    return st;
}

int ops_task_json(ops_conn *c, const char *id, FILE *out, FILE *err)
{
    int st;
    WITH_STREAMS(out, err, cmd_task(&c->c, id, 1));
    return st;
}

/* The ids of list key k (newest first) appended to ids. 0 or -1 (said). */
static int failure_ids(conn *c, const char *k, int max, names *ids)
{
    char last[16];
    snprintf(last, sizeof last, "%d", max - 1);
    ops_reply r;
    if (run(c, &r, 4, (const char *const[]){"LRANGE", k, "0", last}) != 0)
        return -1;
    for (size_t i = 0; i < r.n; i++) {
        const char *id = r.el[i].str;
        if (!id || envelope_check_id(id, r.el[i].len, NULL, 0) != 0 || ids->n >= (size_t)max)
            continue;
        size_t j = 0;
        while (j < ids->n && strcmp(ids->v[j], id) != 0)
            j++;
        if (j < ids->n)
            continue;
        if (ids->n == ids->cap) {
            size_t cap = ids->cap ? ids->cap * 2 : 16;
            char **v = realloc(ids->v, cap * sizeof *v);
            if (!v)
                break;
            ids->v = v;
            ids->cap = cap;
        }
        if ((ids->v[ids->n] = strdup(id)))
            ids->n++;
    }
    ops_reply_free(&r);
    return 0;
}

static int cmd_failures(conn *c, const char *pool, int max)
{
    names ids = {0};
    char key[FLEET_KEY_MAX];
    if (max < 1)
        max = 1;
    if (!fleet_keys_tagged()) {
        fleet_key_failures(key, pool, NULL);
        if (failure_ids(c, key, max, &ids) != 0)
            return FAIL;
    } else {
        ops_reply prods;
        fleet_key_producers(key, pool);
        if (run(c, &prods, 4, (const char *const[]){"ZRANGE", key, "0", "-1"}) != 0)
            return FAIL;
        for (size_t i = 0; i < prods.n; i++) {
            if (!prods.el[i].str || prods.el[i].len > ENVELOPE_ID_MAX)
                continue;
            fleet_key_failures(key, pool, prods.el[i].str);
            if (failure_ids(c, key, max, &ids) != 0) {
                ops_reply_free(&prods);
                names_free(&ids);
                return FAIL;
            }
        }
        ops_reply_free(&prods);
    }
    FILE *out = OUT, *err = ERR;
    fputc('[', out);
    int first = 1;
    for (size_t i = 0; i < ids.n; i++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *one = open_memstream(&buf, &len);
        if (!one)
            break;
        out_to = one;
        err_to = NULL;
        FILE *quiet = fopen("/dev/null", "w");
        err_to = quiet;
        int st = cmd_task(c, ids.v[i], 1);
        fclose(one);
        if (quiet)
            fclose(quiet);
        out_to = out;
        err_to = err;
        if (st == OK && len > 0) {
            while (len > 0 && buf[len - 1] == '\n')
                len--;
            fputs(first ? "\n  " : ",\n  ", out);
            fwrite(buf, 1, len, out);
            first = 0;
        }
        free(buf);
    }
    fputs(first ? "]\n" : "\n]\n", out);
    names_free(&ids);
    return OK;
}

int ops_failures_json(ops_conn *c, const char *pool, int max, FILE *out, FILE *err)
{
    int st;
    WITH_STREAMS(out, err, cmd_failures(&c->c, pool, max));
    return st;
}
