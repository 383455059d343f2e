/* dashboard.c: `mutirao dashboard`, a web page of the fleet served on a
 * libuv loop by the shared HTTP server (shared/http/http_server.h).
 *
 *   GET  /, /app.js, /app.css      the page (built in: producer/dashboard/)
 *   GET  /api/config               {"can_write": BOOL}: a token is set
 *   GET  /api/pools                `mutirao pools --json`
 *   GET  /api/workers              `mutirao workers --json`
 *   GET  /api/stats/POOL           `mutirao stats POOL --json`
 *   GET  /api/failures/POOL        the pool's recent failures (ops_data.h)
 *   GET  /api/dlq/POOL             `mutirao dlq list POOL --json`
 *   POST /api/dlq/POOL/retry|drop  body {"id": "TASK"}: `mutirao dlq retry|drop`
 *
 * The data comes from the functions behind those commands (ops_data.h),
 * each request read from Redis on their private loop while this one waits
 * (a few round trips, bounded by the configured timeouts). A POST needs the
 * token (dashboard.token_file, MUTIRAO_DASHBOARD_TOKEN or --token-file) in
 * the X-Mutirao-Token header, compared in constant time: without a token
 * set every POST is refused (403). A header, not a cookie: another site's
 * page cannot send it (a cross-origin request with it needs a preflight
 * this server never allows). Loopback by default (dashboard.listen); on a
 * loopback address a request must name it in its Host header
 * (127.0.0.1:PORT, localhost:PORT, [::1]:PORT), so that a page of another
 * site rebound to 127.0.0.1 cannot read the API (DNS rebinding). */
#include "dashboard.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "cli_config.h"
#include "config.h"
#include "embedded_files.h"
#include "envelope.h"
#include "http_server.h"
#include "ops_data.h"

enum { OK = 0, FAIL = 1, USAGE = 2 };

#define TOKEN_MAX 256
#define BODY_MAX 4096
#define FAILURES_MAX 20

typedef struct dash {
    const config *cfg;
    ops_conn *ops;
    dlq_conn *dlq;
    char token[TOKEN_MAX + 1]; /* "" = none: read-only */
    uv_signal_t sigint, sigterm;
    http_server *srv;
    int loopback; /* listening on a loopback address: Host is checked */
} dash;

static const char usage_text[] =
    "usage: mutirao dashboard [--listen ADDR] [--token-file FILE] [--config FILE]\n"
    "\n"
    "Serves a web page of the fleet on ADDR (dashboard.listen, default\n"
    "127.0.0.1:8080: loopback): pools, workers, rates, recent failures with their\n"
    "tracebacks and dead letters, refreshed every 2 s, with a JSON API under /api/.\n"
    "Retry and drop need the token (the first line of --token-file FILE or of\n"
    "dashboard.token_file, or MUTIRAO_DASHBOARD_TOKEN), which the page asks for;\n"
    "without one the dashboard only shows. Redis and Kafka as for `mutirao run\n"
    "--fleet`. Stops on Ctrl-C (SIGINT) or SIGTERM.\n"
    "\n"
    "Exit status: 0 once stopped, 1 when it cannot start, 2 on bad usage.\n";

/* 1 if a equals b, in a time that depends only on b's length. */
static int same_token(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    volatile unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < lb; i++)
        d |= (unsigned char)(b[i] ^ (i < la ? a[i] : 0));
    return d == 0;
}

/* The token from the first line of path; 0, or -1 with err. */
static int read_token(const char *path, char *out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "token file %s: cannot read it", path);
        return -1;
    }
    char line[TOKEN_MAX + 2];
    if (!fgets(line, sizeof line, f))
        line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (strlen(line) > TOKEN_MAX || strlen(line) < 8) {
        snprintf(err, errlen, "token file %s: the token must be 8 to %d characters", path,
                 TOKEN_MAX);
        return -1;
    }
    snprintf(out, TOKEN_MAX + 1, "%s", line);
    return 0;
}

static const char json_type[] = "application/json; charset=utf-8";
static const char no_store[] = "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n";

/* {"error": MSG} with status. */
static void answer_error(http_req *req, const char *status, const char *msg)
{
    char body[1024];
    size_t k = (size_t)snprintf(body, sizeof body, "{\"error\": \"");
    for (const char *p = msg; *p && k < sizeof body - 8; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            k += (size_t)snprintf(body + k, sizeof body - k, "\\%c", ch);
        else if (ch < 0x20)
            body[k++] = ' ';
        else
            body[k++] = (char)ch;
    }
    k += (size_t)snprintf(body + k, sizeof body - k, "\"}\n");
    http_respond(req, status, json_type, no_store, body, k, 0);
}

/* The path's part after prefix up to the next '/' as a pool name into out;
 * rest: what follows it. 0, or -1 (not a valid pool name). */
static int path_pool(const char *path, const char *prefix, char *out, const char **rest)
{
    const char *p = path + strlen(prefix);
    size_t n = strcspn(p, "/");
    if (n == 0 || n > ENVELOPE_POOL_MAX || envelope_check_pool(p, n, NULL, 0) != 0)
        return -1;
    memcpy(out, p, n);
    out[n] = 0;
    *rest = p + n;
    return 0;
}

/* The "id" of a body {"id": "TASK"}; 0, or -1. */
static int body_id(const http_req *req, char *out, size_t outlen)
{
    char body[BODY_MAX + 1];
    size_t n = req->body_len < BODY_MAX ? req->body_len : BODY_MAX;
    memcpy(body, req->body, n);
    body[n] = 0;
    const char *k = strstr(body, "\"id\"");
    if (!k)
        return -1;
    k += 4;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r')
        k++;
    if (*k++ != ':')
        return -1;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r')
        k++;
    if (*k++ != '"')
        return -1;
    size_t len = strcspn(k, "\"\\");
    if (k[len] != '"' || len == 0 || len >= outlen || envelope_check_id(k, len, NULL, 0) != 0)
        return -1;
    memcpy(out, k, len);
    out[len] = 0;
    return 0;
}

/* Calls one of ops_data.h's functions and answers what it wrote. */
typedef int (*data_fn)(dash *d, const char *arg, FILE *out, FILE *err);

static int do_pools(dash *d, const char *arg, FILE *out, FILE *err)
{
    (void)arg;
    return ops_pools_json(d->ops, out, err);
}

static int do_workers(dash *d, const char *arg, FILE *out, FILE *err)
{
    (void)arg;
    return ops_workers_json(d->ops, out, err);
}

static int do_stats(dash *d, const char *arg, FILE *out, FILE *err)
{
    return ops_stats_json(d->ops, arg, out, err);
}

static int do_failures(dash *d, const char *arg, FILE *out, FILE *err)
{
    return ops_failures_json(d->ops, arg, FAILURES_MAX, out, err);
}

static int do_dlq(dash *d, const char *arg, FILE *out, FILE *err)
{
    return dlq_list_json(d->dlq, arg, out, err);
}

static void answer_data(http_req *req, dash *d, data_fn fn, const char *arg, int head)
{
    char *obuf = NULL, *ebuf = NULL;
    size_t olen = 0, elen = 0;
    FILE *out = open_memstream(&obuf, &olen), *err = open_memstream(&ebuf, &elen);
    if (!out || !err) {
        if (out)
            fclose(out);
        if (err)
            fclose(err);
        free(obuf);
        free(ebuf);
        answer_error(req, "503 Service Unavailable", "out of memory");
        return;
    }
    int st = fn(d, arg, out, err);
    fclose(out);
    fclose(err);
    if (st == 0) {
        http_respond(req, "200 OK", json_type, no_store, obuf, olen, head);
    } else {
        while (elen > 0 && ebuf[elen - 1] == '\n')
            ebuf[--elen] = 0;
        const char *msg = elen ? ebuf : "failed";
        fprintf(stderr, "mutirao dashboard: %s\n", msg);
        answer_error(req, strstr(msg, "not found") ? "404 Not Found" : "502 Bad Gateway", msg);
    }
    free(obuf);
    free(ebuf);
}

static void answer_action(http_req *req, dash *d, const char *pool, int retry)
{
    char tok[TOKEN_MAX + 2] = "";
    if (!d->token[0]) {
        answer_error(req, "403 Forbidden",
                     "no token is set (dashboard.token_file, MUTIRAO_DASHBOARD_TOKEN or "
                     "--token-file): the dashboard only shows");
        return;
    }
    if (!http_req_header(req, "X-Mutirao-Token", tok, sizeof tok) || !same_token(tok, d->token)) {
        answer_error(req, "403 Forbidden", "a wrong or missing X-Mutirao-Token");
        return;
    }
    char id[ENVELOPE_ID_MAX + 1];
    if (body_id(req, id, sizeof id) != 0) {
        answer_error(req, "400 Bad Request", "the body must be {\"id\": \"TASK ID\"}");
        return;
    }
    char *obuf = NULL, *ebuf = NULL;
    size_t olen = 0, elen = 0;
    FILE *out = open_memstream(&obuf, &olen), *err = open_memstream(&ebuf, &elen);
    int st = out && err ? dlq_act(d->dlq, pool, id, retry, out, err) : 1;
    if (out)
        fclose(out);
    if (err)
        fclose(err);
    if (st == 0) {
        while (olen > 0 && obuf[olen - 1] == '\n')
            obuf[--olen] = 0;
        fprintf(stderr, "mutirao dashboard: %s\n", obuf ? obuf : "");
        char body[512];
        int n = snprintf(body, sizeof body, "{\"ok\": true, \"id\": \"%s\", \"action\": \"%s\"}\n",
                         id, retry ? "retried" : "dropped");
        http_respond(req, "200 OK", json_type, no_store, body, (size_t)n, 0);
    } else {
        while (ebuf && elen > 0 && ebuf[elen - 1] == '\n')
            ebuf[--elen] = 0;
        const char *msg = ebuf && elen ? ebuf : "failed";
        fprintf(stderr, "%s\n", msg);
        answer_error(req,
                     strstr(msg, "not found") || strstr(msg, "no dead letter") ? "404 Not Found"
                                                                               : "502 Bad Gateway",
                     msg);
    }
    free(obuf);
    free(ebuf);
}

static const embedded_file *asset(const char *name)
{
    for (const embedded_file *f = embedded_files; f->name; f++)
        if (!strcmp(f->name, name))
            return f;
    return NULL;
}

/* 1 if the request names this server by a loopback name: on loopback a
 * page of another site whose name was rebound to 127.0.0.1 (DNS
 * rebinding) would send its own name. */
static int host_ok(const dash *d, const http_req *req)
{
    if (!d->loopback)
        return 1;
    char host[300], want[64];
    if (!http_req_header(req, "Host", host, sizeof host))
        return 0;
    int port = http_server_port(d->srv);
    static const char *const names[] = {"127.0.0.1", "localhost", "[::1]"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(want, sizeof want, "%s:%d", names[i], port);
        if (!strcasecmp(host, want))
            return 1;
    }
    return 0;
}

static void handle(http_req *req, void *ud)
{
    dash *d = ud;
    if (!host_ok(d, req)) {
        answer_error(req, "403 Forbidden",
                     "the Host header does not name this dashboard (127.0.0.1:PORT, "
                     "localhost:PORT or [::1]:PORT)");
        return;
    }
    int get = !strcmp(req->method, "GET"), head = !strcmp(req->method, "HEAD");
    int post = !strcmp(req->method, "POST");
    const char *p = req->path;
    char pool[ENVELOPE_POOL_MAX + 1];
    const char *rest;
    if (!strncmp(p, "/api/dlq/", 9) && path_pool(p, "/api/dlq/", pool, &rest) == 0 &&
        (!strcmp(rest, "/retry") || !strcmp(rest, "/drop"))) {
        if (!post) {
            http_respond(req, "405 Method Not Allowed", NULL, "Allow: POST\r\n", NULL, 0, 0);
            return;
        }
        answer_action(req, d, pool, !strcmp(rest, "/retry"));
        return;
    }
    if (!get && !head) {
        http_respond(req, "405 Method Not Allowed", NULL, "Allow: GET, HEAD\r\n", NULL, 0, 0);
        return;
    }
    if (!strcmp(p, "/") || !strcmp(p, "/app.js") || !strcmp(p, "/app.css")) {
        const embedded_file *f = asset(!strcmp(p, "/") ? "index.html" : p + 1);
        if (!f) {
            http_respond(req, "404 Not Found", NULL, NULL, NULL, 0, head);
            return;
        }
        const char *type = !strcmp(p, "/")         ? "text/html; charset=utf-8"
                           : !strcmp(p, "/app.js") ? "text/javascript; charset=utf-8"
                                                   : "text/css; charset=utf-8";
        static const char headers[] =
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
            "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n";
        http_respond(req, "200 OK", type, headers, (const char *)f->data, f->len, head);
        return;
    }
    if (!strcmp(p, "/api/config")) {
        char body[64];
        int n =
            snprintf(body, sizeof body, "{\"can_write\": %s}\n", d->token[0] ? "true" : "false");
        http_respond(req, "200 OK", json_type, no_store, body, (size_t)n, head);
    } else if (!strcmp(p, "/api/pools")) {
        answer_data(req, d, do_pools, NULL, head);
    } else if (!strcmp(p, "/api/workers")) {
        answer_data(req, d, do_workers, NULL, head);
    } else if (!strncmp(p, "/api/stats/", 11) && path_pool(p, "/api/stats/", pool, &rest) == 0 &&
               !*rest) {
        answer_data(req, d, do_stats, pool, head);
    } else if (!strncmp(p, "/api/failures/", 14) &&
               path_pool(p, "/api/failures/", pool, &rest) == 0 && !*rest) {
        answer_data(req, d, do_failures, pool, head);
    } else if (!strncmp(p, "/api/dlq/", 9) && path_pool(p, "/api/dlq/", pool, &rest) == 0 &&
               !*rest) {
        answer_data(req, d, do_dlq, pool, head);
    } else {
        http_respond(req, "404 Not Found", NULL, NULL, NULL, 0, head);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    dash *d = s->data;
    fprintf(stderr, "mutirao dashboard: stopping\n");
    http_server_close(d->srv);
    d->srv = NULL;
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
}

static int bad_usage(const char *fmt, const char *arg)
{
    fputs("mutirao dashboard: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see mutirao dashboard --help)\n", stderr);
    return USAGE;
}

int cmd_dashboard(int argc, char **argv)
{
    const char *listen = NULL, *token_file = NULL;
    for (int i = 0, st; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = !strcmp(a, "--listen")       ? &listen
                            : !strcmp(a, "--token-file") ? &token_file
                                                         : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return OK;
        } else if (slot) {
            if (i + 1 >= argc || !argv[i + 1][0])
                return bad_usage("option %s needs a value", a);
            *slot = argv[++i];
        } else if ((st = cli_config_option(argc, argv, &i, "mutirao dashboard",
                                           "mutirao dashboard --help")) != CLI_CONFIG_OTHER) {
            if (st != 0)
                return st;
        } else if (a[0] == '-') {
            return bad_usage("unknown option '%s'", a);
        } else {
            return bad_usage("unexpected argument '%s'", a);
        }
    }
    config cfg;
    char err[512];
    if (config_load(&cfg, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "mutirao: %s\n", err);
        config_free(&cfg);
        return USAGE;
    }
    char host[64] = "127.0.0.1", why[200];
    int port;
    const char *addr = listen ? listen : cfg.dashboard_listen;
    if (config_host_port(addr, host, sizeof host, &port, why, sizeof why) != 0) {
        fprintf(stderr, "mutirao dashboard: the dashboard address '%s': %s\n", addr, why);
        config_free(&cfg);
        return USAGE;
    }
    dash d;
    memset(&d, 0, sizeof d);
    d.cfg = &cfg;
    const char *env = getenv("MUTIRAO_DASHBOARD_TOKEN");
    if (!token_file && cfg.dashboard_token_file && cfg.dashboard_token_file[0])
        token_file = cfg.dashboard_token_file;
    int st = OK;
    if (token_file) {
        if (read_token(token_file, d.token, err, sizeof err) != 0) {
            fprintf(stderr, "mutirao dashboard: %s\n", err);
            st = USAGE;
        }
    } else if (env && *env) {
        if (strlen(env) > TOKEN_MAX || strlen(env) < 8) {
            fprintf(stderr,
                    "mutirao dashboard: MUTIRAO_DASHBOARD_TOKEN must be 8 to %d characters\n",
                    TOKEN_MAX);
            st = USAGE;
        } else {
            snprintf(d.token, sizeof d.token, "%s", env);
        }
    }
    if (st == OK && !(d.ops = ops_open(&cfg, stderr)))
        st = FAIL;
    if (st == OK && !(d.dlq = dlq_open(&cfg, stderr)))
        st = FAIL;
    uv_loop_t loop;
    uv_loop_init(&loop);
    if (st == OK) {
        d.srv =
            http_server_start(&loop, addr, "the dashboard", BODY_MAX, handle, &d, err, sizeof err);
        if (!d.srv) {
            fprintf(stderr, "mutirao dashboard: %s\n", err);
            st = FAIL;
        } else {
            uv_signal_init(&loop, &d.sigint);
            uv_signal_init(&loop, &d.sigterm);
            d.sigint.data = d.sigterm.data = &d;
            uv_signal_start(&d.sigint, on_signal, SIGINT);
            uv_signal_start(&d.sigterm, on_signal, SIGTERM);
            int v6 = strchr(host, ':') != NULL;
            d.loopback =
                !strncmp(host, "127.", 4) || !strcmp(host, "::1") || !strcmp(host, "localhost");
            fprintf(stderr, "mutirao dashboard: serving http://%s%s%s:%d/ (%s)\n", v6 ? "[" : "",
                    host, v6 ? "]" : "", http_server_port(d.srv),
                    d.token[0] ? "retry and drop need the token" : "read-only: no token set");
            fflush(stderr);
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    dlq_close(d.dlq);
    ops_close(d.ops);
    config_free(&cfg);
    return st;
}
