/*
** redis_uv.c: the asynchronous Redis client of redis_uv.h.
**
** Design. hiredis does the protocol; a small adapter (hiredis's hooks on a
** uv_poll_t) watches the socket.
** This file adds what hiredis's async API lacks: a connection state machine
** with backoff, a queue for commands issued while disconnected, deadlines,
** scripts by SHA1, and a close that fails everything once.
**
** Every request is a `rreq` on the deadline list (`dl`) from the call until
** its callback fires. All requests share the client's op timeout, so the
** list, kept in call order, is also in deadline order: one uv timer, armed
** for the head, serves every command. Unsent requests are also on the wait
** queue (`wq`), in the same order. A sent request is hiredis's privdata until
** hiredis calls it back (with a reply, or NULL when the context goes away);
** when its deadline fires first, it is marked done, leaves the deadline list,
** and is freed when hiredis finally calls back.
**
** hiredis rules this file relies on (0.14 and later): callbacks of a freed
** context run synchronously, with NULL replies, inside redisAsyncFree() or
** the read that saw the error; redisAsyncFree() from inside a reply callback
** is deferred until that callback returns; the connect callback must not
** free its context. So the current context is detached (cli->ac = NULL)
** before anything can free it, and a callback compares its context with
** cli->ac to tell the live connection from a dying one.
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <uv.h>

#include "list.h"
#include "redis_uv.h"
#include "uv_closer.h"

/* ---- errors ------------------------------------------------------------ */

MERR_FUNCS(, redis_uv, REDIS_UV_ERRNO_MAP)

/* ---- types ------------------------------------------------------------- */

enum rstate { RQ_QUEUED = 1, RQ_SENT, RQ_DONE };

/* Connection states. */
enum cstate {
    CS_WAIT = 1,  /* no connection; conn_timer is the backoff before the next attempt */
    CS_RESOLVING, /* uv_getaddrinfo in flight; conn_timer is the attempt's deadline */
    CS_CONNECTING,
    CS_HANDSHAKE, /* connected, AUTH/SELECT replies due */
    CS_READY,
    CS_CLOSING
};

typedef struct rreq rreq;
struct rreq {
    mlist dl; /* in the deadline list: callback still due */
    mlist wq; /* in the wait queue: not sent yet */
    struct redis_uv *cli;
    redis_uv_cb cb;
    void *ud;
    uint64_t start, deadline; /* loop time (ms) */
    char *cmd;                /* unsent command, or an eval's KEYS/ARGV part (kept) */
    size_t len;
    int state;    /* enum rstate */
    int script;   /* script id, or -1 for a plain command */
    int nbulk;    /* eval: bulk strings in cmd (numkeys + argc) */
    int fellback; /* eval: already resent as EVAL after NOSCRIPT */
    int from_hr;  /* cmd was formatted by hiredis (free with redisFreeCommand) */
};

typedef struct rscript {
    char *src;
    size_t len;
    char sha[41];
    uint64_t epoch; /* connection epoch in which the server was sent the source */
} rscript;

struct redis_uv {
    uv_loop_t *loop;
    redisAsyncContext *ac; /* current connection, or NULL */
    int state;             /* enum cstate */
    int closing;
    /* endpoint */
    char *host, *path, *user, *pass;
    int port, db; /* db < 0: no SELECT */
    char endpoint[300];
    redis_uv_options opt;
    unsigned backoff;
    uint64_t epoch; /* +1 per ready connection */
    int handshake_left;
    /* handles */
    uv_timer_t conn_timer; /* backoff or connect deadline */
    uv_timer_t dl_timer;   /* deadline of the oldest request */
    uv_getaddrinfo_t gai;
    int resolving;
    unsigned attempts; /* failed attempts since the last ready connection */
    uvc_closer closer; /* frees the client after its timers (and a lookup) */
    redis_uv_close_cb close_cb;
    void *close_ud;
    /* requests */
    mlist dl, wq; /* the two lists (of rreq.dl, rreq.wq), oldest first */
    size_t npending, nqueued;
    /* scripts */
    rscript *scripts;
    int nscripts, capscripts;
    char last_err[256];    /* why the last attempt or connection failed */
    char drop_reason[256]; /* why this file dropped the connection */
    redis_uv_stats st;
};

/* ---- lists ------------------------------------------------------------- */

static void dl_push(redis_uv *cli, rreq *r)
{
    mlist_push_back(&cli->dl, &r->dl);
    cli->npending++;
}

static void dl_unlink(redis_uv *cli, rreq *r)
{
    if (!mlist_linked(&r->dl))
        return;
    mlist_remove(&r->dl);
    cli->npending--;
}

static rreq *dl_first(redis_uv *cli)
{
    return mlist_first_entry(&cli->dl, rreq, dl);
}

static void wq_push(redis_uv *cli, rreq *r)
{
    mlist_push_back(&cli->wq, &r->wq);
    cli->nqueued++;
}

static void wq_unlink(redis_uv *cli, rreq *r)
{
    if (!mlist_linked(&r->wq))
        return;
    mlist_remove(&r->wq);
    cli->nqueued--;
}

static rreq *wq_first(redis_uv *cli)
{
    return mlist_first_entry(&cli->wq, rreq, wq);
}

/* ---- the libuv adapter ------------------------------------------------- */

/*
** hiredis's event hooks on a uv_poll_t, as in hiredis's adapters/libuv.h,
** with one fix: that header (0.14) ignores a poll callback with status < 0,
** which libuv reports for POLLERR (a refused connect, a reset) after
** stopping the handle, so the context would hang until a timeout. Here an
** error is handed to hiredis as the events it waits for: its read, write or
** connect check then sees the socket error and tears the context down.
** The watcher is freed in its close callback; it never points at the client.
*/
typedef struct ruv_watch {
    redisAsyncContext *ac; /* NULL once hiredis let go of it */
    uv_poll_t poll;
    int events;
} ruv_watch;

static void ruv_on_poll(uv_poll_t *h, int status, int events)
{
    ruv_watch *w = h->data;
    int ev = status < 0 ? w->events : events;
    if (w->ac != NULL && (ev & UV_READABLE))
        redisAsyncHandleRead(w->ac);
    if (w->ac != NULL && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(w->ac);
}

static void ruv_update(ruv_watch *w, int events)
{
    w->events = events;
    if (events)
        uv_poll_start(&w->poll, events, ruv_on_poll);
    else
        uv_poll_stop(&w->poll);
}

static void ruv_add_read(void *p)
{
    ruv_watch *w = p;
    ruv_update(w, w->events | UV_READABLE);
}

static void ruv_del_read(void *p)
{
    ruv_watch *w = p;
    ruv_update(w, w->events & ~UV_READABLE);
}

static void ruv_add_write(void *p)
{
    ruv_watch *w = p;
    ruv_update(w, w->events | UV_WRITABLE);
}

static void ruv_del_write(void *p)
{
    ruv_watch *w = p;
    ruv_update(w, w->events & ~UV_WRITABLE);
}

static void ruv_on_close(uv_handle_t *h)
{
    free(h->data);
}

static void ruv_cleanup(void *p)
{
    ruv_watch *w = p;
    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, ruv_on_close);
}

static int ruv_attach(redisAsyncContext *ac, uv_loop_t *loop, int weak)
{
    ruv_watch *w;
    if (ac->ev.data != NULL || (w = calloc(1, sizeof *w)) == NULL)
        return -1;
    if (uv_poll_init(loop, &w->poll, ac->c.fd) != 0) {
        free(w);
        return -1;
    }
    if (weak)
        uv_unref((uv_handle_t *)&w->poll);
    w->ac = ac;
    w->poll.data = w;
    ac->ev.data = w;
    ac->ev.addRead = ruv_add_read;
    ac->ev.delRead = ruv_del_read;
    ac->ev.addWrite = ruv_add_write;
    ac->ev.delWrite = ruv_del_write;
    ac->ev.cleanup = ruv_cleanup;
    return 0;
}

/* ---- requests ---------------------------------------------------------- */

static void free_cmd(rreq *r)
{
    if (r->cmd == NULL)
        return;
    if (r->from_hr)
        redisFreeCommand(r->cmd);
    else
        free(r->cmd);
    r->cmd = NULL;
}

static void req_free(rreq *r)
{
    free_cmd(r);
    free(r);
}

/* Fires r's callback with an error; r must be off the deadline list. */
static void req_fail(rreq *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void req_fail(rreq *r, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->cli->st.failures++;
    if (status == REDIS_UV_ETIMEDOUT || status == REDIS_UV_EUNREACHABLE)
        r->cli->st.timeouts++;
    if (r->cb != NULL)
        r->cb(r->cli, status, NULL, msg, r->ud);
}

/* Deadline timer: armed for the head of the deadline list while it is not
** empty; a late fire finds nothing expired and re-arms. */
static void on_dl_timer(uv_timer_t *t);

static void dl_arm(redis_uv *cli)
{
    rreq *r = dl_first(cli);
    if (cli->closing)
        return;
    if (r == NULL) {
        uv_timer_stop(&cli->dl_timer);
        return;
    }
    uint64_t now = uv_now(cli->loop);
    uv_timer_start(&cli->dl_timer, on_dl_timer, r->deadline > now ? r->deadline - now : 0, 0);
}

/* ---- RESP formatting --------------------------------------------------- */

static size_t bulk_size(size_t n)
{
    char tmp[32];
    return (size_t)snprintf(tmp, sizeof tmp, "$%zu\r\n", n) + n + 2;
}

static char *put_bulk(char *p, const char *s, size_t n)
{
    p += sprintf(p, "$%zu\r\n", n);
    if (n > 0)
        memcpy(p, s, n);
    p += n;
    *p++ = '\r';
    *p++ = '\n';
    return p;
}

/* The first two arguments of a formatted command (RESP array of bulks). */
static int cmd_name(const char *cmd, size_t len, const char **name, size_t *nlen, const char **sub,
                    size_t *slen)
{
    const char *p = cmd, *end = cmd + len;
    char *e;
    *name = *sub = NULL;
    *nlen = *slen = 0;
    if (len < 4 || *p != '*')
        return -1;
    long argc = strtol(p + 1, &e, 10);
    if (e + 2 > end || e[0] != '\r' || argc < 1)
        return -1;
    p = e + 2;
    for (int i = 0; i < 2 && i < argc; i++) {
        if (p >= end || *p != '$')
            return -1;
        long n = strtol(p + 1, &e, 10);
        if (n < 0 || e + 2 + n > end)
            return -1;
        if (i == 0) {
            *name = e + 2;
            *nlen = (size_t)n;
        } else {
            *sub = e + 2;
            *slen = (size_t)n;
        }
        p = e + 2 + n + 2;
    }
    return 0;
}

static int word_is(const char *s, size_t n, const char *w)
{
    return s != NULL && strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* 0, EINVAL for an empty or malformed command, or ENOTSUP for commands that
** break "one reply per command" and so hiredis's callback bookkeeping. */
static int cmd_check(const char *cmd, size_t len)
{
    static const char *const refused[] = {"subscribe",   "psubscribe",   "ssubscribe",
                                          "unsubscribe", "punsubscribe", "sunsubscribe",
                                          "monitor"};
    const char *name, *sub;
    size_t nlen, slen;
    if (cmd_name(cmd, len, &name, &nlen, &sub, &slen) != 0 || name == NULL)
        return REDIS_UV_EINVAL;
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (word_is(name, nlen, refused[i]))
            return REDIS_UV_ENOTSUP;
    if (word_is(name, nlen, "client") && word_is(sub, slen, "reply"))
        return REDIS_UV_ENOTSUP;
    return 0;
}

/* EVAL/EVALSHA for an eval request: header + body + the kept KEYS/ARGV. */
static char *eval_format(redis_uv *cli, const rreq *r, int use_sha, size_t *outlen)
{
    const rscript *s = &cli->scripts[r->script];
    const char *verb = use_sha ? "EVALSHA" : "EVAL";
    const char *body = use_sha ? s->sha : s->src;
    size_t blen = use_sha ? 40 : s->len;
    char head[64];
    int hn = snprintf(head, sizeof head, "*%d\r\n", r->nbulk + 2);
    size_t total = (size_t)hn + bulk_size(strlen(verb)) + bulk_size(blen) + r->len;
    char *buf = malloc(total), *p = buf;
    if (buf == NULL)
        return NULL;
    memcpy(p, head, (size_t)hn);
    p += hn;
    p = put_bulk(p, verb, strlen(verb));
    p = put_bulk(p, body, blen);
    memcpy(p, r->cmd, r->len);
    *outlen = total;
    return buf;
}

/* ---- sending ----------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply, void *priv);

/* Writes r on the ready connection. 0, or -1 when hiredis refused it (r is
** then unchanged). `force_eval`: send an eval as EVAL whatever the epoch. */
static int req_send(redis_uv *cli, rreq *r, int force_eval)
{
    int rc;
    if (cli->ac == NULL || cli->state != CS_READY)
        return -1;
    if (r->script >= 0) {
        rscript *s = &cli->scripts[r->script];
        int use_sha = !force_eval && s->epoch == cli->epoch;
        size_t n = 0;
        char *buf = eval_format(cli, r, use_sha, &n);
        if (buf == NULL)
            return -1;
        rc = redisAsyncFormattedCommand(cli->ac, on_reply, r, buf, n);
        free(buf);
        if (rc != REDIS_OK)
            return -1;
        if (!use_sha)
            s->epoch = cli->epoch;
    } else {
        rc = redisAsyncFormattedCommand(cli->ac, on_reply, r, r->cmd, r->len);
        if (rc != REDIS_OK)
            return -1;
        free_cmd(r);
    }
    r->state = RQ_SENT;
    cli->st.sent++;
    return 0;
}

/* Sends queued requests, in order, while the connection takes them. */
static void wq_flush(redis_uv *cli)
{
    rreq *r;
    while ((r = wq_first(cli)) != NULL) {
        if (req_send(cli, r, 0) != 0)
            break; /* left queued: its deadline still runs */
        wq_unlink(cli, r);
    }
}

/* Takes ownership of cmd (formatted by hiredis when from_hr). */
static int submit(redis_uv *cli, redis_uv_cb cb, void *ud, char *cmd, size_t len, int from_hr,
                  int script, int nbulk)
{
    rreq *r = calloc(1, sizeof *r);
    if (r == NULL) {
        if (from_hr)
            redisFreeCommand(cmd);
        else
            free(cmd);
        return REDIS_UV_ENOMEM;
    }
    r->cli = cli;
    r->cb = cb;
    r->ud = ud;
    r->cmd = cmd;
    r->len = len;
    r->from_hr = from_hr;
    r->script = script;
    r->nbulk = nbulk;
    r->start = uv_now(cli->loop);
    r->deadline = r->start + cli->opt.op_timeout_ms;
    int was_empty = dl_first(cli) == NULL;
    dl_push(cli, r);
    if (was_empty)
        dl_arm(cli);
    if (cli->state == CS_READY && wq_first(cli) != NULL)
        wq_flush(cli);
    if (wq_first(cli) == NULL && req_send(cli, r, 0) == 0)
        return 0;
    r->state = RQ_QUEUED;
    wq_push(cli, r);
    return 0;
}

/* ---- connection -------------------------------------------------------- */

static void conn_start(redis_uv *cli);
static void conn_drop(redis_uv *cli, const char *why);

static void on_conn_timer(uv_timer_t *t)
{
    redis_uv *cli = t->data;
    if (cli->state == CS_WAIT) {
        conn_start(cli);
        return;
    }
    /* The attempt's deadline passed. */
    conn_drop(cli, "connect timed out");
}

/* The connection is gone (cli->ac already detached): note why, and plan the
** next attempt. */
static void conn_down(redis_uv *cli, const char *why)
{
    if (cli->state == CS_READY)
        cli->st.drops++;
    else
        cli->attempts++;
    snprintf(cli->last_err, sizeof cli->last_err, "%s", why ? why : "unknown error");
    if (cli->closing)
        return;
    cli->state = CS_WAIT;
    uv_timer_start(&cli->conn_timer, on_conn_timer, cli->backoff, 0);
    cli->backoff =
        cli->backoff * 2 > cli->opt.backoff_max_ms ? cli->opt.backoff_max_ms : cli->backoff * 2;
}

/* Drops the current connection on this side. The commands sent on it fail
** (now, or after the running hiredis callback) with "connection lost (why)". */
static void conn_drop(redis_uv *cli, const char *why)
{
    redisAsyncContext *ac = cli->ac;
    cli->ac = NULL;
    snprintf(cli->drop_reason, sizeof cli->drop_reason, "%s", why);
    conn_down(cli, why);
    if (ac != NULL)
        redisAsyncFree(ac);
}

/* hiredis is tearing down `ac` (read/write error, server closed it). */
static void conn_lost(redis_uv *cli, const redisAsyncContext *ac)
{
    if (cli->ac != ac)
        return;
    cli->ac = NULL;
    conn_down(cli, ac->errstr != NULL && ac->errstr[0] ? ac->errstr : "disconnected");
}

static void conn_ready(redis_uv *cli)
{
    cli->state = CS_READY;
    uv_timer_stop(&cli->conn_timer);
    cli->backoff = cli->opt.backoff_min_ms;
    cli->attempts = 0;
    cli->epoch++;
    cli->st.connects++;
    cli->last_err[0] = '\0';
    wq_flush(cli);
}

static void on_handshake(redisAsyncContext *ac, void *reply_, void *priv, const char *what)
{
    redis_uv *cli = priv;
    const redisReply *reply = reply_;
    if (cli->ac != ac)
        return;
    if (reply == NULL) {
        conn_lost(cli, ac);
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        char why[256];
        snprintf(why, sizeof why, "%s failed: %.*s", what,
                 (int)(reply->len > 200 ? 200 : reply->len), reply->str);
        conn_drop(cli, why);
        return;
    }
    if (--cli->handshake_left == 0)
        conn_ready(cli);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    on_handshake(ac, reply, priv, "AUTH");
}

static void on_select(redisAsyncContext *ac, void *reply, void *priv)
{
    on_handshake(ac, reply, priv, "SELECT");
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redis_uv *cli = cac->data;
    redisAsyncContext *ac = cli->ac;
    if (ac != cac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        cli->ac = NULL;
        conn_down(cli, cac->errstr != NULL && cac->errstr[0] ? cac->errstr : "connect failed");
        return;
    }
    cli->state = CS_HANDSHAKE;
    cli->handshake_left = 0;
    if (cli->pass != NULL) {
        int rc = cli->user != NULL
                     ? redisAsyncCommand(ac, on_auth, cli, "AUTH %s %s", cli->user, cli->pass)
                     : redisAsyncCommand(ac, on_auth, cli, "AUTH %s", cli->pass);
        if (rc == REDIS_OK)
            cli->handshake_left++;
    }
    if (cli->db >= 0 && redisAsyncCommand(ac, on_select, cli, "SELECT %d", cli->db) == REDIS_OK)
        cli->handshake_left++;
    if (cli->handshake_left == 0)
        conn_ready(cli);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    conn_lost((redis_uv *)ac->data, ac);
}

/* Opens a hiredis context to a numeric address or a socket path. */
static void conn_open(redis_uv *cli, const char *addr)
{
    redisAsyncContext *ac =
        cli->path != NULL ? redisAsyncConnectUnix(cli->path) : redisAsyncConnect(addr, cli->port);
    if (ac == NULL) {
        conn_down(cli, "out of memory");
        return;
    }
    if (ac->err) {
        char why[256];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_down(cli, why);
        return;
    }
    if (ruv_attach(ac, cli->loop, cli->opt.weak) != 0) {
        redisAsyncFree(ac);
        conn_down(cli, "cannot watch the socket");
        return;
    }
    ac->data = cli;
    cli->ac = ac;
    cli->state = CS_CONNECTING;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncSetConnectCallback(ac, on_connect);
}

static int family_rank(int family)
{
    return family == AF_INET ? 0 : family == AF_INET6 ? 1 : -1;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redis_uv *cli = req->data;
    char addr[INET6_ADDRSTRLEN] = "";
    cli->resolving = 0;
    if (cli->closing) {
        if (res != NULL)
            uv_freeaddrinfo(res);
        uvc_release(&cli->closer);
        return;
    }
    if (status == 0 && res != NULL) {
        /* IPv4 addresses first (as hiredis does), then the others; each
        ** failed attempt moves on to the next address. */
        const struct addrinfo *pick = NULL, *ai;
        unsigned n = 0, k;
        for (ai = res; ai != NULL; ai = ai->ai_next)
            n += ai->ai_family == AF_INET || ai->ai_family == AF_INET6;
        k = n ? cli->attempts % n : 0;
        for (int rank = 0; rank < 2 && pick == NULL; rank++)
            for (ai = res; ai != NULL && pick == NULL; ai = ai->ai_next)
                if (family_rank(ai->ai_family) == rank && k-- == 0)
                    pick = ai;
        if (pick != NULL) {
            const void *a =
                pick->ai_family == AF_INET6
                    ? (const void *)&((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
                    : (const void *)&((const struct sockaddr_in *)pick->ai_addr)->sin_addr;
            inet_ntop(pick->ai_family, a, addr, sizeof addr);
        }
    }
    if (res != NULL)
        uv_freeaddrinfo(res);
    if (cli->state != CS_RESOLVING)
        return; /* the attempt timed out meanwhile */
    if (addr[0] == '\0') {
        char why[256];
        snprintf(why, sizeof why, "cannot resolve %.200s: %s", cli->host,
                 status < 0 ? uv_strerror(status) : "no address");
        conn_down(cli, why);
        return;
    }
    conn_open(cli, addr);
}

static void conn_start(redis_uv *cli)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    uv_timer_start(&cli->conn_timer, on_conn_timer, cli->opt.connect_timeout_ms, 0);
    if (cli->path != NULL || inet_pton(AF_INET, cli->host, tmp) == 1 ||
        inet_pton(AF_INET6, cli->host, tmp) == 1) {
        conn_open(cli, cli->host);
        return;
    }
    /* A name: resolve it off the loop (getaddrinfo blocks). */
    cli->state = CS_RESOLVING;
    if (cli->resolving)
        return; /* adopt the lookup still in flight */
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    cli->gai.data = cli;
    int rc = uv_getaddrinfo(cli->loop, &cli->gai, on_resolved, cli->host, NULL, &hints);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "cannot resolve %.200s: %s", cli->host, uv_strerror(rc));
        conn_down(cli, why);
        return;
    }
    cli->resolving = 1;
}

/* ---- replies and deadlines --------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *reply_, void *priv)
{
    rreq *r = priv;
    redis_uv *cli = r->cli;
    const redisReply *reply = reply_;

    if (r->state == RQ_DONE) { /* its callback already fired (timeout) */
        req_free(r);
        return;
    }
    if (reply == NULL) {
        const char *why;
        conn_lost(cli, ac);
        why = ac->err && ac->errstr != NULL && ac->errstr[0] ? ac->errstr : cli->drop_reason;
        dl_unlink(cli, r);
        if (cli->closing)
            req_fail(r, REDIS_UV_ECLOSED, "redis: closed");
        else
            req_fail(r, REDIS_UV_ECONNLOST, "redis: connection lost (%s)", why);
        req_free(r);
        if (dl_first(cli) == NULL)
            dl_arm(cli);
        return;
    }
    if (r->script >= 0 && !r->fellback && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && cli->ac == ac) {
        r->fellback = 1;
        if (req_send(cli, r, 1) == 0) {
            cli->st.noscript++;
            return;
        }
    }
    dl_unlink(cli, r);
    cli->st.replies++;
    if (r->cb != NULL)
        r->cb(cli, 0, reply, NULL, r->ud);
    req_free(r);
    if (dl_first(cli) == NULL)
        dl_arm(cli);
}

static void on_dl_timer(uv_timer_t *t)
{
    redis_uv *cli = t->data;
    uint64_t now = uv_now(cli->loop);
    int stalled = 0;
    rreq *r;

    while (!cli->closing && (r = dl_first(cli)) != NULL && r->deadline <= now) {
        unsigned long long ms = (unsigned long long)(now - r->start);
        dl_unlink(cli, r);
        if (r->state == RQ_QUEUED) {
            wq_unlink(cli, r);
            if (cli->last_err[0])
                req_fail(r, REDIS_UV_EUNREACHABLE, "redis: unreachable at %s after %llu ms (%s)",
                         cli->endpoint, ms, cli->last_err);
            else
                req_fail(r, REDIS_UV_EUNREACHABLE, "redis: unreachable at %s after %llu ms",
                         cli->endpoint, ms);
            req_free(r);
        } else {
            /* hiredis still holds it: freed when it calls back. */
            r->state = RQ_DONE;
            stalled = 1;
            req_fail(r, REDIS_UV_ETIMEDOUT, "redis: timed out after %llu ms at %s", ms,
                     cli->endpoint);
        }
    }
    if (stalled && !cli->closing && cli->ac != NULL && cli->state == CS_READY)
        conn_drop(cli, "a command timed out: server stalled");
    dl_arm(cli);
}

/* ---- URL --------------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copies s[0..n) with %XX decoded; NULL on ENOMEM or a bad escape (*bad). */
static char *pct_dup(const char *s, size_t n, int *bad)
{
    char *out = malloc(n + 1), *p = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int h, l;
            if (i + 2 >= n) {
                free(out);
                *bad = 1;
                return NULL;
            }
            h = hexval((unsigned char)s[i + 1]);
            l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) {
                free(out);
                *bad = 1;
                return NULL;
            }
            *p++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *p++ = s[i];
        }
    }
    *p = '\0';
    return out;
}

static char *str_ndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* Parses "[user]:password@" ending at `at`. */
static int parse_userinfo(redis_uv *cli, const char *s, const char *at)
{
    const char *colon = memchr(s, ':', (size_t)(at - s));
    int bad = 0;
    if (colon == NULL)
        return REDIS_UV_EURL; /* a user without a password */
    if (colon > s && (cli->user = pct_dup(s, (size_t)(colon - s), &bad)) == NULL)
        return bad ? REDIS_UV_EURL : REDIS_UV_ENOMEM;
    if ((cli->pass = pct_dup(colon + 1, (size_t)(at - colon - 1), &bad)) == NULL)
        return bad ? REDIS_UV_EURL : REDIS_UV_ENOMEM;
    return 0;
}

static int parse_url(redis_uv *cli, const char *url)
{
    const char *s, *end, *at;
    int rc;
    cli->port = 6379;
    cli->db = -1;
    if (strncmp(url, "unix://", 7) == 0) {
        s = url + 7;
        at = strstr(s, "@/");
        if (*s != '/' && at != NULL) {
            if ((rc = parse_userinfo(cli, s, at)) != 0)
                return rc;
            s = at + 1;
        }
        if (*s != '/' || s[1] == '\0')
            return REDIS_UV_EURL;
        if ((cli->path = str_ndup(s, strlen(s))) == NULL)
            return REDIS_UV_ENOMEM;
        snprintf(cli->endpoint, sizeof cli->endpoint, "%s", cli->path);
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return REDIS_UV_EURL;
    s = url + 8;
    end = s + strcspn(s, "/");
    at = memchr(s, '@', (size_t)(end - s));
    if (at != NULL) {
        if ((rc = parse_userinfo(cli, s, at)) != 0)
            return rc;
        s = at + 1;
    }
    const char *hs, *he, *p;
    if (*s == '[') {
        hs = s + 1;
        he = memchr(hs, ']', (size_t)(end - hs));
        if (he == NULL)
            return REDIS_UV_EURL;
        p = he + 1;
    } else {
        hs = s;
        he = s + strcspn(s, ":/");
        if (he > end)
            he = end;
        p = he;
    }
    if (he == hs)
        return REDIS_UV_EURL;
    if (p < end && *p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e == p + 1 || e != end || port < 1 || port > 65535)
            return REDIS_UV_EURL;
        cli->port = (int)port;
    } else if (p != end) {
        return REDIS_UV_EURL;
    }
    if (*end == '/' && end[1] != '\0') {
        char *e;
        long db = strtol(end + 1, &e, 10);
        if (!isdigit((unsigned char)end[1]) || *e != '\0' || db > 1000000)
            return REDIS_UV_EURL;
        cli->db = (int)db;
    }
    if ((cli->host = str_ndup(hs, (size_t)(he - hs))) == NULL)
        return REDIS_UV_ENOMEM;
    snprintf(cli->endpoint, sizeof cli->endpoint, *s == '[' ? "[%s]:%d" : "%s:%d", cli->host,
             cli->port);
    return 0;
}

/* ---- open / close ------------------------------------------------------ */

static void cli_free(redis_uv *cli)
{
    for (int i = 0; i < cli->nscripts; i++)
        free(cli->scripts[i].src);
    free(cli->scripts);
    free(cli->host);
    free(cli->path);
    free(cli->user);
    free(cli->pass);
    free(cli);
}

int redis_uv_open(uv_loop_t *loop, const char *url, const redis_uv_options *opts, redis_uv **out)
{
    int rc;
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || url == NULL || out == NULL)
        return REDIS_UV_EINVAL;
    redis_uv *cli = calloc(1, sizeof *cli);
    if (cli == NULL)
        return REDIS_UV_ENOMEM;
    if ((rc = parse_url(cli, url)) != 0) {
        cli_free(cli);
        return rc;
    }
    if (opts != NULL)
        cli->opt = *opts;
    if (cli->opt.op_timeout_ms == 0)
        cli->opt.op_timeout_ms = 5000;
    if (cli->opt.connect_timeout_ms == 0)
        cli->opt.connect_timeout_ms = 2000;
    if (cli->opt.backoff_min_ms == 0)
        cli->opt.backoff_min_ms = 50;
    if (cli->opt.backoff_max_ms == 0)
        cli->opt.backoff_max_ms = 2000;
    if (cli->opt.backoff_max_ms < cli->opt.backoff_min_ms)
        cli->opt.backoff_max_ms = cli->opt.backoff_min_ms;
    cli->loop = loop;
    cli->backoff = cli->opt.backoff_min_ms;
    mlist_init(&cli->dl);
    mlist_init(&cli->wq);
    uv_timer_init(loop, &cli->conn_timer);
    uv_timer_init(loop, &cli->dl_timer);
    if (cli->opt.weak) {
        uv_unref((uv_handle_t *)&cli->conn_timer);
        uv_unref((uv_handle_t *)&cli->dl_timer);
    }
    cli->conn_timer.data = cli;
    cli->dl_timer.data = cli;
    cli->state = CS_WAIT;
    conn_start(cli);
    *out = cli;
    return 0;
}

/* The closer's free function: after both timers and any host lookup. */
static void finish_close(void *arg)
{
    redis_uv *cli = arg;
    redis_uv_close_cb cb = cli->close_cb;
    void *ud = cli->close_ud;
    cli_free(cli);
    if (cb != NULL)
        cb(ud);
}

void redis_uv_close(redis_uv *cli, redis_uv_close_cb cb, void *ud)
{
    rreq *r;
    if (cli == NULL || cli->closing)
        return;
    cli->closing = 1;
    cli->state = CS_CLOSING;
    cli->close_cb = cb;
    cli->close_ud = ud;
    uvc_init(&cli->closer, finish_close, cli);
    uvc_close(&cli->closer, (uv_handle_t *)&cli->conn_timer);
    uvc_close(&cli->closer, (uv_handle_t *)&cli->dl_timer);
    if (cli->resolving) {
        uvc_hold(&cli->closer); /* on_resolved releases (UV_ECANCELED or a late result) */
        uv_cancel((uv_req_t *)&cli->gai);
    }
    /* Unsent requests are ours: fail them now. */
    while ((r = wq_first(cli)) != NULL) {
        wq_unlink(cli, r);
        dl_unlink(cli, r);
        req_fail(r, REDIS_UV_ECLOSED, "redis: closed");
        req_free(r);
    }
    /* Sent ones fail from hiredis's NULL callbacks, now or (inside a reply
    ** callback) as soon as that callback returns. */
    if (cli->ac != NULL) {
        redisAsyncContext *ac = cli->ac;
        cli->ac = NULL;
        snprintf(cli->drop_reason, sizeof cli->drop_reason, "closed");
        redisAsyncFree(ac);
    }
    uvc_release(&cli->closer);
}

void redis_uv_hold(redis_uv *cli)
{
    if (cli == NULL || cli->closing || !cli->opt.weak)
        return;
    cli->opt.weak = 0; /* and for a later connection's watcher */
    uv_ref((uv_handle_t *)&cli->conn_timer);
    uv_ref((uv_handle_t *)&cli->dl_timer);
    if (cli->ac != NULL && cli->ac->ev.data != NULL)
        uv_ref((uv_handle_t *)&((ruv_watch *)cli->ac->ev.data)->poll);
}

/* ---- commands ---------------------------------------------------------- */

int redis_uv_commandv(redis_uv *cli, redis_uv_cb cb, void *ud, const char *fmt, va_list ap)
{
    char *cmd = NULL;
    if (cli == NULL || fmt == NULL)
        return REDIS_UV_EINVAL;
    if (cli->closing)
        return REDIS_UV_ECLOSED;
    int len = redisvFormatCommand(&cmd, fmt, ap);
    if (len == -1) /* hiredis: -1 out of memory, -2 bad format */
        return REDIS_UV_ENOMEM;
    if (len <= 0 || cmd == NULL)
        return REDIS_UV_EINVAL;
    int rc = cmd_check(cmd, (size_t)len);
    if (rc != 0) {
        redisFreeCommand(cmd);
        return rc;
    }
    return submit(cli, cb, ud, cmd, (size_t)len, 1, -1, 0);
}

int redis_uv_command(redis_uv *cli, redis_uv_cb cb, void *ud, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = redis_uv_commandv(cli, cb, ud, fmt, ap);
    va_end(ap);
    return rc;
}

/* RESP bulks for argv (with a leading "*N" header when `header`). */
static char *format_argv(int argc, const char *const *argv, const size_t *argvlen, int header,
                         const char *first, size_t firstlen, size_t *outlen)
{
    size_t total = 0;
    char head[32] = "";
    int nbulk = argc + (first != NULL);
    if (header)
        total += (size_t)snprintf(head, sizeof head, "*%d\r\n", nbulk);
    if (first != NULL)
        total += bulk_size(firstlen);
    for (int i = 0; i < argc; i++)
        total += bulk_size(argvlen != NULL ? argvlen[i] : strlen(argv[i]));
    char *buf = malloc(total + 1), *p = buf;
    if (buf == NULL)
        return NULL;
    p += sprintf(p, "%s", head);
    if (first != NULL)
        p = put_bulk(p, first, firstlen);
    for (int i = 0; i < argc; i++)
        p = put_bulk(p, argv[i], argvlen != NULL ? argvlen[i] : strlen(argv[i]));
    *outlen = total;
    return buf;
}

static int argv_ok(int argc, const char *const *argv)
{
    if (argc > 0 && argv == NULL)
        return 0;
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return 0;
    return 1;
}

int redis_uv_command_argv(redis_uv *cli, redis_uv_cb cb, void *ud, int argc,
                          const char *const *argv, const size_t *argvlen)
{
    size_t len = 0;
    if (cli == NULL || argc < 1 || !argv_ok(argc, argv))
        return REDIS_UV_EINVAL;
    if (cli->closing)
        return REDIS_UV_ECLOSED;
    char *cmd = format_argv(argc, argv, argvlen, 1, NULL, 0, &len);
    if (cmd == NULL)
        return REDIS_UV_ENOMEM;
    int rc = cmd_check(cmd, len);
    if (rc != 0) {
        free(cmd);
        return rc;
    }
    return submit(cli, cb, ud, cmd, len, 0, -1, 0);
}

/* ---- scripts ----------------------------------------------------------- */

int redis_uv_script(redis_uv *cli, const char *src, size_t len)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    char sha[41];
    if (cli == NULL || src == NULL)
        return REDIS_UV_EINVAL;
    if (cli->closing)
        return REDIS_UV_ECLOSED;
    SHA1((const unsigned char *)src, len, md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(sha + 2 * i, 3, "%02x", md[i]);
    for (int i = 0; i < cli->nscripts; i++)
        if (strcmp(cli->scripts[i].sha, sha) == 0)
            return i;
    if (cli->nscripts == cli->capscripts) {
        int cap = cli->capscripts ? cli->capscripts * 2 : 8;
        rscript *s = realloc(cli->scripts, (size_t)cap * sizeof *s);
        if (s == NULL)
            return REDIS_UV_ENOMEM;
        cli->scripts = s;
        cli->capscripts = cap;
    }
    rscript *s = &cli->scripts[cli->nscripts];
    if ((s->src = str_ndup(src, len)) == NULL)
        return REDIS_UV_ENOMEM;
    s->len = len;
    memcpy(s->sha, sha, sizeof sha);
    s->epoch = 0;
    return cli->nscripts++;
}

const char *redis_uv_script_sha(const redis_uv *cli, int script_id)
{
    if (cli == NULL || script_id < 0 || script_id >= cli->nscripts)
        return NULL;
    return cli->scripts[script_id].sha;
}

int redis_uv_eval(redis_uv *cli, redis_uv_cb cb, void *ud, int script_id, int nkeys, int argc,
                  const char *const *argv, const size_t *argvlen)
{
    char nk[24];
    size_t len = 0;
    if (cli == NULL || argc < 0 || nkeys < 0 || nkeys > argc || !argv_ok(argc, argv))
        return REDIS_UV_EINVAL;
    if (cli->closing)
        return REDIS_UV_ECLOSED;
    if (script_id < 0 || script_id >= cli->nscripts)
        return REDIS_UV_ENOSCRIPT;
    int n = snprintf(nk, sizeof nk, "%d", nkeys);
    char *tail = format_argv(argc, argv, argvlen, 0, nk, (size_t)n, &len);
    if (tail == NULL)
        return REDIS_UV_ENOMEM;
    return submit(cli, cb, ud, tail, len, 0, script_id, argc + 1);
}

/* ---- introspection ----------------------------------------------------- */

int redis_uv_is_connected(const redis_uv *cli)
{
    return cli != NULL && cli->state == CS_READY && cli->ac != NULL;
}

const char *redis_uv_endpoint(const redis_uv *cli)
{
    return cli != NULL ? cli->endpoint : "";
}

void redis_uv_get_stats(const redis_uv *cli, redis_uv_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof *out);
    if (cli == NULL)
        return;
    *out = cli->st;
    out->pending = cli->npending;
    out->queued = cli->nqueued;
    out->connected = redis_uv_is_connected(cli);
}
