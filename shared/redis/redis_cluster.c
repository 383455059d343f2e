/* redis_cluster.c: the cluster mode of the async client (redis_cluster.h),
 * built on plain clients (redis_uv.h) and the slot helpers (redis_slot.h). */
#include "redis_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_slot.h"

typedef struct rnode {
    char host[REDIS_SLOT_HOST_MAX + 1];
    int port;
    redis_uv *cli;
    int *sids; /* the facade's script id -> this client's (-1: not registered yet) */
    int nsids;
    int closed; /* its close callback ran */
} rnode;

struct rcluster {
    uv_loop_t *loop;
    redis_uv *facade;
    redis_uv_options opt; /* the plain clients' options (strings: ours, below) */
    char *prefix;         /* "redis://USERINFO@" or "rediss://..." (may hold a password) */
    char *password, *ca, *cert, *key;
    rnode **nodes;
    size_t nnodes, cap;
    size_t nseeds;
    uint16_t owner[REDIS_SLOTS]; /* node index + 1; 0: unknown */
    int refreshing;              /* a CLUSTER SLOTS is in flight */
    size_t refresh_next;         /* the node asked next */
    uint64_t refreshes, moved, asked;
    struct creq *waiting; /* commands waiting to be resent (CLUSTERDOWN...), a list */
    int closing;
    size_t close_left;
    void (*done)(void *);
    void *done_arg;
    char endpoint[300];
};

/* A routed command: its arguments kept for resending. */
typedef struct creq {
    uv_timer_t timer;         /* the delay before a resend (initialised on the first) */
    int timer_on;             /* timer initialised: freed from its close callback */
    struct creq *prev, *next; /* in cl->waiting while the timer runs */
    uint64_t deadline;        /* loop ms: no resend after it (the op timeout from the call) */
    unsigned waits;           /* resends after a transient error so far */
    rcluster *cl;
    redis_uv_cb cb;
    void *ud;
    int script; /* the facade's script id, or -1 */
    const char *src;
    size_t srclen;
    int nkeys;
    int argc;
    int hops;
    size_t node; /* where it was sent */
    const char **argv;
    size_t *lens;
} creq;

int rcl_is_cluster_url(const char *url)
{
    return url != NULL && (strncmp(url, "redis+cluster://", 16) == 0 ||
                           strncmp(url, "rediss+cluster://", 17) == 0);
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] ? strdup(s) : NULL;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void cl_free(rcluster *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        free(cl->nodes[i]->sids);
        free(cl->nodes[i]);
    }
    free(cl->nodes);
    wipe_free(cl->prefix);
    wipe_free(cl->password);
    free(cl->ca);
    free(cl->cert);
    free(cl->key);
    free(cl);
}

/* ---- nodes -------------------------------------------------------------- */

/* The node (host, port), opened when new; its index, or a negative error. */
static int node_get(rcluster *cl, const char *host, int port, char *errbuf, size_t errlen)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i]->port == port && strcmp(cl->nodes[i]->host, host) == 0)
            return (int)i;
    if (cl->closing)
        return REDIS_UV_ECLOSED;
    if (cl->nnodes >= REDIS_SLOT_NODES_MAX || strlen(host) > REDIS_SLOT_HOST_MAX || port < 1 ||
        port > 65535)
        return REDIS_UV_EREPLY;
    if (cl->nnodes == cl->cap) {
        size_t nc = cl->cap ? cl->cap * 2 : 4;
        rnode **nn = realloc(cl->nodes, nc * sizeof *nn);
        if (nn == NULL)
            return REDIS_UV_ENOMEM;
        cl->nodes = nn;
        cl->cap = nc;
    }
    rnode *n = calloc(1, sizeof *n);
    if (n == NULL)
        return REDIS_UV_ENOMEM;
    snprintf(n->host, sizeof n->host, "%s", host);
    n->port = port;
    char url[REDIS_SLOT_HOST_MAX + 600];
    int v6 = strchr(host, ':') != NULL;
    snprintf(url, sizeof url, "%s%s%s%s:%d", cl->prefix, v6 ? "[" : "", host, v6 ? "]" : "", port);
    redis_uv_options o = cl->opt;
    o.password = cl->password;
    o.tls_ca_file = cl->ca;
    o.tls_cert_file = cl->cert;
    o.tls_key_file = cl->key;
    o.errbuf = errbuf;
    o.errlen = errlen;
    int rc = redis_uv_open(cl->loop, url, &o, &n->cli);
    explicit_bzero(url, sizeof url);
    if (rc != 0) {
        free(n);
        return rc;
    }
    cl->nodes[cl->nnodes] = n;
    return (int)cl->nnodes++;
}

/* The client's id of the facade's script id on node n, registering it. */
static int node_sid(rnode *n, int script, const char *src, size_t srclen)
{
    if (script >= n->nsids) {
        int cap = script + 8;
        int *s = realloc(n->sids, (size_t)cap * sizeof *s);
        if (s == NULL)
            return REDIS_UV_ENOMEM;
        for (int i = n->nsids; i < cap; i++)
            s[i] = -1;
        n->sids = s;
        n->nsids = cap;
    }
    if (n->sids[script] < 0) {
        int id = redis_uv_script(n->cli, src, srclen);
        if (id < 0)
            return id;
        n->sids[script] = id;
    }
    return n->sids[script];
}

/* ---- the slot map ------------------------------------------------------- */

static void on_slots(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud);

static void refresh(rcluster *cl)
{
    if (cl->refreshing || cl->closing || cl->nnodes == 0)
        return;
    /* a connected node first, round robin */
    size_t pick = cl->refresh_next % cl->nnodes;
    for (size_t k = 0; k < cl->nnodes; k++) {
        size_t i = (cl->refresh_next + k) % cl->nnodes;
        if (redis_uv_is_connected(cl->nodes[i]->cli)) {
            pick = i;
            break;
        }
    }
    cl->refresh_next = pick + 1;
    if (redis_uv_command(cl->nodes[pick]->cli, on_slots, cl, "CLUSTER SLOTS") == 0) {
        cl->refreshing = 1;
        cl->refreshes++;
    }
}

static void on_slots(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    rcluster *cl = ud;
    redis_slot_map map;
    const char *asked_host = "";
    (void)err;
    cl->refreshing = 0;
    if (cl->closing || status != 0 || redis_slot_map_parse(reply, &map) != 0)
        return;
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i]->cli == cli)
            asked_host = cl->nodes[i]->host;
    int idx[REDIS_SLOT_NODES_MAX] = {0};
    for (size_t i = 0; i < map.nnodes; i++) {
        const char *h = map.nodes[i].host;
        if (h[0] == '\0' || strcmp(h, "?") == 0)
            h = asked_host;
        idx[i] = node_get(cl, h, map.nodes[i].port, NULL, 0);
    }
    for (unsigned s = 0; s < REDIS_SLOTS; s++) {
        int o = map.owner[s] ? idx[map.owner[s] - 1] : -1;
        cl->owner[s] = (uint16_t)(o >= 0 ? o + 1 : 0);
    }
    redis_slot_map_free(&map);
}

/* ---- routing ------------------------------------------------------------ */

static void on_reply(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud);

/* Sends c to node i (after ASKING when ask). 0 or the client's error. */
static int send_to(creq *c, size_t i, int ask)
{
    rnode *n = c->cl->nodes[i];
    int rc;
    c->node = i;
    if (ask && (rc = redis_uv_command(n->cli, NULL, NULL, "ASKING")) != 0)
        return rc;
    if (c->script >= 0) {
        int sid = node_sid(n, c->script, c->src, c->srclen);
        if (sid < 0)
            return sid;
        return redis_uv_eval(n->cli, on_reply, c, sid, c->nkeys, c->argc, c->argv, c->lens);
    }
    return redis_uv_command_argv(n->cli, on_reply, c, c->argc, c->argv, c->lens);
}

/* The node of c's slot (its routing key's), or the first node. */
static size_t route(const creq *c)
{
    int at = -1;
    if (c->script >= 0) {
        if (c->nkeys > 0)
            at = 0; /* an eval's argv starts with its KEYS */
    } else {
        int k = redis_slot_cmd_key(c->argc, c->argv, c->lens);
        if (k > 0)
            at = k;
    }
    if (at < 0)
        return 0;
    unsigned slot = redis_slot_of(c->argv[at], c->lens[at]);
    return c->cl->owner[slot] ? (size_t)c->cl->owner[slot] - 1 : 0;
}

static void on_creq_closed(uv_handle_t *h)
{
    free(h->data);
}

static void creq_free(creq *c)
{
    if (c->timer_on)
        uv_close((uv_handle_t *)&c->timer, on_creq_closed);
    else
        free(c);
}

/* Errors a node answers without running the command, for a moment: a
 * master restarted (CLUSTERDOWN for its first 2 s, until it rejoins as
 * writable), loading its data (LOADING), a multi-key command during a slot
 * migration (TRYAGAIN). Resent until the command's deadline. */
static int transient(const redisReply *reply)
{
    static const char *const words[] = {"CLUSTERDOWN ", "LOADING ", "TRYAGAIN "};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (reply->len >= strlen(words[i]) && strncmp(reply->str, words[i], strlen(words[i])) == 0)
            return 1;
    return 0;
}

static void unlink_waiting(creq *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->cl->waiting = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void on_resend(uv_timer_t *t)
{
    creq *c = t->data;
    rcluster *cl = c->cl;
    unlink_waiting(c);
    int rc = send_to(c, route(c), 0);
    if (rc != 0) {
        if (c->cb != NULL)
            c->cb(cl->facade, rc, NULL, redis_uv_strerror(rc), c->ud);
        creq_free(c);
    }
}

/* Resends c after a delay (50 ms doubling to 500 ms) when its deadline
 * allows; 0 when it will. */
static int resend_later(creq *c)
{
    rcluster *cl = c->cl;
    unsigned delay = c->waits < 4 ? 50u << c->waits : 500u;
    if (uv_now(cl->loop) + delay >= c->deadline)
        return -1;
    if (!c->timer_on) {
        if (uv_timer_init(cl->loop, &c->timer) != 0)
            return -1;
        c->timer.data = c;
        c->timer_on = 1;
        if (cl->opt.weak)
            uv_unref((uv_handle_t *)&c->timer);
    }
    c->waits++;
    c->prev = NULL;
    c->next = cl->waiting;
    if (cl->waiting != NULL)
        cl->waiting->prev = c;
    cl->waiting = c;
    uv_timer_start(&c->timer, on_resend, delay, 0);
    return 0;
}

static void on_reply(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    creq *c = ud;
    rcluster *cl = c->cl;
    (void)cli;
    if (status == 0 && reply->type == REDIS_REPLY_ERROR && !cl->closing &&
        c->hops < REDIS_CLUSTER_HOPS) {
        redis_redirect d;
        if (redis_redirect_parse(reply->str, reply->len, &d) == 1) {
            const char *h = d.host[0] ? d.host : cl->nodes[c->node]->host;
            int i = node_get(cl, h, d.port, NULL, 0);
            if (i >= 0) {
                c->hops++;
                if (d.ask) {
                    cl->asked++;
                } else {
                    cl->moved++;
                    cl->owner[d.slot] = (uint16_t)(i + 1);
                    refresh(cl);
                }
                int rc = send_to(c, (size_t)i, d.ask);
                if (rc == 0)
                    return;
                if (c->cb != NULL)
                    c->cb(cl->facade, rc, NULL, redis_uv_strerror(rc), c->ud);
                creq_free(c);
                return;
            }
        }
    }
    if (status == 0 && reply->type == REDIS_REPLY_ERROR && !cl->closing && transient(reply) &&
        resend_later(c) == 0) {
        refresh(cl); /* the slot may have moved meanwhile (a failover) */
        return;
    }
    if (status == REDIS_UV_ECONNLOST || status == REDIS_UV_EUNREACHABLE ||
        status == REDIS_UV_ETIMEDOUT)
        refresh(cl);
    if (c->cb != NULL)
        c->cb(cl->facade, status, reply, err, c->ud);
    creq_free(c);
}

/* A request holding copies of argv, routed and sent. */
static int start(rcluster *cl, redis_uv_cb cb, void *ud, int script, const char *src, size_t srclen,
                 int nkeys, int argc, const char *const *argv, const size_t *argvlen)
{
    if (cl->closing)
        return REDIS_UV_ECLOSED;
    size_t data = 0;
    for (int i = 0; i < argc; i++)
        data += (argvlen != NULL ? argvlen[i] : strlen(argv[i])) + 1;
    creq *c = malloc(sizeof *c + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + data);
    if (c == NULL)
        return REDIS_UV_ENOMEM;
    memset(c, 0, sizeof *c);
    c->cl = cl;
    c->deadline = uv_now(cl->loop) + (cl->opt.op_timeout_ms ? cl->opt.op_timeout_ms : 5000);
    c->cb = cb;
    c->ud = ud;
    c->script = script;
    c->src = src;
    c->srclen = srclen;
    c->nkeys = nkeys;
    c->argc = argc;
    c->argv = (const char **)(c + 1);
    c->lens = (size_t *)(c->argv + argc);
    char *p = (char *)(c->lens + argc);
    for (int i = 0; i < argc; i++) {
        size_t n = argvlen != NULL ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], n);
        p[n] = '\0';
        c->argv[i] = p;
        c->lens[i] = n;
        p += n + 1;
    }
    int rc = send_to(c, route(c), 0);
    if (rc != 0)
        creq_free(c);
    return rc;
}

int rcl_command_argv(rcluster *cl, redis_uv_cb cb, void *ud, int argc, const char *const *argv,
                     const size_t *argvlen)
{
    if (cl == NULL || argc < 1 || argv == NULL)
        return REDIS_UV_EINVAL;
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return REDIS_UV_EINVAL;
    return start(cl, cb, ud, -1, NULL, 0, 0, argc, argv, argvlen);
}

/* A decimal at p (ending in "\r\n" before end) into *v; the position after, or NULL. */
static const char *resp_num(const char *p, const char *end, long *v)
{
    long n = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 12) {
        n = n * 10 + (*p++ - '0');
        digits++;
    }
    if (digits == 0 || end - p < 2 || p[0] != '\r' || p[1] != '\n')
        return NULL;
    *v = n;
    return p + 2;
}

int rcl_command_resp(rcluster *cl, redis_uv_cb cb, void *ud, const char *cmd, size_t len)
{
    long argc;
    if (cl == NULL || cmd == NULL)
        return REDIS_UV_EINVAL;
    const char *p = cmd, *end = cmd + len;
    if (len < 4 || *p != '*' || (p = resp_num(p + 1, end, &argc)) == NULL || argc < 1 ||
        argc > (long)len)
        return REDIS_UV_EINVAL;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    int rc = argv && lens ? 0 : REDIS_UV_ENOMEM;
    for (long i = 0; rc == 0 && i < argc; i++) {
        long n;
        if (p >= end || *p != '$' || (p = resp_num(p + 1, end, &n)) == NULL || n > end - p - 2) {
            rc = REDIS_UV_EINVAL;
            break;
        }
        argv[i] = p;
        lens[i] = (size_t)n;
        p += n + 2;
    }
    if (rc == 0)
        rc = start(cl, cb, ud, -1, NULL, 0, 0, (int)argc, argv, lens);
    free(argv);
    free(lens);
    return rc;
}

int rcl_eval(rcluster *cl, redis_uv_cb cb, void *ud, int script_id, const char *src, size_t srclen,
             int nkeys, int argc, const char *const *argv, const size_t *argvlen)
{
    if (cl == NULL || script_id < 0 || src == NULL || nkeys < 0 || nkeys > argc)
        return REDIS_UV_EINVAL;
    return start(cl, cb, ud, script_id, src, srclen, nkeys, argc, argv, argvlen);
}

/* ---- open / close ------------------------------------------------------- */

static int open_fail(const redis_uv_options *opts, int rc, const char *why)
{
    if (opts != NULL && opts->errbuf != NULL && opts->errlen > 0)
        snprintf(opts->errbuf, opts->errlen, "%s", why);
    return rc;
}

int rcl_open(uv_loop_t *loop, const char *url, const redis_uv_options *opts, redis_uv *facade,
             rcluster **out)
{
    *out = NULL;
    int tls = strncmp(url, "rediss+cluster://", 17) == 0;
    const char *s = url + (tls ? 17 : 16);
    size_t hl = strcspn(s, "/");
    const char *path = s + hl;
    if (*path == '/' && path[1] != '\0' && strcmp(path, "/0") != 0)
        return open_fail(opts, REDIS_UV_EURL, "a Redis Cluster has only database 0");
    if (*path == '/' && path[1] == '\0')
        return open_fail(opts, REDIS_UV_EURL, "malformed Redis URL");
    const char *at = memchr(s, '@', hl);
    const char *hosts = at ? at + 1 : s;
    size_t hostslen = hl - (size_t)(hosts - s);
    if (hostslen == 0)
        return open_fail(opts, REDIS_UV_EURL, "malformed Redis URL");

    rcluster *cl = calloc(1, sizeof *cl);
    if (cl == NULL)
        return REDIS_UV_ENOMEM;
    cl->loop = loop;
    cl->facade = facade;
    if (opts != NULL)
        cl->opt = *opts;
    cl->opt.errbuf = NULL;
    cl->opt.errlen = 0;
    size_t plen = 10 + (at ? (size_t)(at - s) + 1 : 0);
    cl->prefix = malloc(plen + 1);
    if (cl->prefix != NULL)
        snprintf(cl->prefix, plen + 1, "%s%.*s%s", tls ? "rediss://" : "redis://",
                 at ? (int)(at - s) : 0, s, at ? "@" : "");
    cl->password = dup_or_null(opts ? opts->password : NULL);
    cl->ca = dup_or_null(opts ? opts->tls_ca_file : NULL);
    cl->cert = dup_or_null(opts ? opts->tls_cert_file : NULL);
    cl->key = dup_or_null(opts ? opts->tls_key_file : NULL);
    if (cl->prefix == NULL || (opts && opts->password && opts->password[0] && !cl->password) ||
        (opts && opts->tls_ca_file && opts->tls_ca_file[0] && !cl->ca) ||
        (opts && opts->tls_cert_file && opts->tls_cert_file[0] && !cl->cert) ||
        (opts && opts->tls_key_file && opts->tls_key_file[0] && !cl->key)) {
        cl_free(cl);
        return REDIS_UV_ENOMEM;
    }
    snprintf(cl->endpoint, sizeof cl->endpoint, "cluster %.*s", (int)hostslen, hosts);

    /* each seed: host[:port], [v6][:port] */
    const char *p = hosts, *end = hosts + hostslen;
    int rc = 0;
    while (rc == 0 && p < end) {
        const char *e = memchr(p, ',', (size_t)(end - p));
        if (e == NULL)
            e = end;
        char host[REDIS_SLOT_HOST_MAX + 1];
        const char *hs = p, *he, *q;
        long port = 6379;
        if (*p == '[') {
            hs = p + 1;
            he = memchr(hs, ']', (size_t)(e - hs));
            q = he ? he + 1 : NULL;
        } else {
            he = memchr(p, ':', (size_t)(e - p));
            if (he == NULL)
                he = e;
            q = he;
        }
        if (he == NULL || he == hs || (size_t)(he - hs) > REDIS_SLOT_HOST_MAX) {
            rc = REDIS_UV_EURL;
            break;
        }
        if (q < e) {
            char *pe;
            if (*q != ':' || q + 1 == e)
                rc = REDIS_UV_EURL;
            else if ((port = strtol(q + 1, &pe, 10)) < 1 || port > 65535 || pe != e)
                rc = REDIS_UV_EURL;
            if (rc != 0)
                break;
        }
        memcpy(host, hs, (size_t)(he - hs));
        host[he - hs] = '\0';
        char why[256] = "";
        int i = node_get(cl, host, (int)port, why, sizeof why);
        if (i < 0) {
            rc = i;
            if (why[0])
                open_fail(opts, rc, why);
        }
        p = e + 1;
    }
    if (rc == REDIS_UV_EURL)
        open_fail(opts, rc, "malformed Redis URL");
    if (rc == 0 && cl->nnodes == 0)
        rc = open_fail(opts, REDIS_UV_EURL, "malformed Redis URL");
    if (rc != 0) {
        /* the seeds opened so far are closed; nothing was issued on them */
        cl->closing = 1;
        for (size_t i = 0; i < cl->nnodes; i++) {
            redis_uv_close(cl->nodes[i]->cli, NULL, NULL);
            cl->nodes[i]->cli = NULL;
        }
        cl_free(cl);
        return rc;
    }
    cl->nseeds = cl->nnodes;
    refresh(cl);
    *out = cl;
    return 0;
}

static void on_node_closed(void *ud)
{
    rcluster *cl = ud;
    if (--cl->close_left == 0) {
        void (*done)(void *) = cl->done;
        void *arg = cl->done_arg;
        cl_free(cl);
        if (done != NULL)
            done(arg);
    }
}

void rcl_close(rcluster *cl, void (*done)(void *), void *arg)
{
    if (cl == NULL || cl->closing)
        return;
    cl->closing = 1;
    cl->done = done;
    cl->done_arg = arg;
    /* the commands waiting to be resent fail as the nodes' pending ones do */
    while (cl->waiting != NULL) {
        creq *c = cl->waiting;
        unlink_waiting(c);
        uv_timer_stop(&c->timer);
        if (c->cb != NULL)
            c->cb(cl->facade, REDIS_UV_ECLOSED, NULL, "redis: closed", c->ud);
        creq_free(c);
    }
    cl->close_left = cl->nnodes;
    /* nodes are only added while open: this count is final */
    for (size_t i = 0; i < cl->nnodes; i++)
        redis_uv_close(cl->nodes[i]->cli, on_node_closed, cl);
}

void rcl_hold(rcluster *cl)
{
    if (cl == NULL)
        return;
    cl->opt.weak = 0; /* and for nodes opened later */
    for (creq *c = cl->waiting; c != NULL; c = c->next)
        uv_ref((uv_handle_t *)&c->timer);
    for (size_t i = 0; i < cl->nnodes; i++)
        redis_uv_hold(cl->nodes[i]->cli);
}

/* ---- introspection ------------------------------------------------------ */

int rcl_is_connected(const rcluster *cl)
{
    if (cl == NULL || cl->closing)
        return 0;
    int owners = 0;
    for (size_t i = 0; i < cl->nnodes; i++) {
        int owns = 0;
        for (unsigned s = 0; s < REDIS_SLOTS && !owns; s++)
            owns = cl->owner[s] == i + 1;
        if (owns && !redis_uv_is_connected(cl->nodes[i]->cli))
            return 0;
        owners += owns;
    }
    return owners > 0;
}

const char *rcl_endpoint(const rcluster *cl)
{
    return cl != NULL ? cl->endpoint : "";
}

void rcl_get_stats(const rcluster *cl, redis_uv_stats *out)
{
    memset(out, 0, sizeof *out);
    if (cl == NULL)
        return;
    for (size_t i = 0; i < cl->nnodes; i++) {
        redis_uv_stats s;
        redis_uv_get_stats(cl->nodes[i]->cli, &s);
        out->sent += s.sent;
        out->replies += s.replies;
        out->failures += s.failures;
        out->timeouts += s.timeouts;
        out->connects += s.connects;
        out->drops += s.drops;
        out->noscript += s.noscript;
        out->pending += s.pending;
        out->queued += s.queued;
    }
    out->moved = cl->moved;
    out->asked = cl->asked;
    out->refreshes = cl->refreshes;
    out->connected = rcl_is_connected(cl);
}
