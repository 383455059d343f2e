/*
** redis_uv.c: the asynchronous Redis client of redis_uv.h.
**
** Design. hiredis does the protocol: its command formatting and its reply
** parser (redisReader). The connection is a libuv stream (TCP or a unix
** socket) this file drives: formatted commands go out through uv_write,
** bytes read are fed to the reader, and replies are matched to the commands
** sent on that connection in order (one reply per command: pub/sub and the
** like are refused). For rediss:// URLs the stream carries TLS, done by
** OpenSSL over two memory BIOs: SSL_write turns commands into records that
** are written like plain bytes, bytes read go into the SSL object and
** SSL_read gives the plain replies. The server's certificate and host name
** (or IP address) are verified.
** This file adds what a bare connection lacks: a connection state machine
** with backoff, a queue for commands issued while disconnected, deadlines,
** scripts by SHA1, and a close that fails everything once.
**
** Every request is a `rreq` on the deadline list (`dl`) from the call until
** its callback fires. All requests share the client's op timeout, so the
** list, kept in call order, is also in deadline order: one uv timer, armed
** for the head, serves every command. Unsent requests are also on the wait
** queue (`wq`), in the same order. A sent request is on its connection's
** sent list until its reply comes (or the connection goes); when its
** deadline fires first, it is marked done, leaves the deadline list, and is
** freed when its reply comes or its connection goes.
**
** A connection (`rconn`) that goes away (dropped here, lost, closed) is
** detached from its client at once (cli->conn = NULL) and its handle closed;
** the commands sent on it fail then, or, when that happens inside one of
** its reply callbacks, as soon as that callback returns.
*/
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "decimal.h"
#include "list.h"
#include "redis_cluster.h"
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
    mlist sq; /* in its connection's sent list: reply due */
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
    int hs;       /* HS_AUTH or HS_SELECT: the connection's own handshake command */
};

enum { HS_AUTH = 1, HS_SELECT };

typedef struct rconn rconn;

typedef struct rscript {
    char *src;
    size_t len;
    char sha[41];
    uint64_t epoch; /* connection epoch in which the server was sent the source */
} rscript;

struct redis_uv {
    uv_loop_t *loop;
    rcluster *cl; /* cluster mode (redis_cluster.h): the commands go to its nodes' clients */
    rconn *conn;  /* current connection, or NULL */
    int state;    /* enum cstate */
    int closing;
    /* endpoint */
    char *host, *path, *user, *pass;
    int port, db; /* db < 0: no SELECT */
    int tls;      /* rediss:// */
    SSL_CTX *ssl_ctx;
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
    if (mlist_linked(&r->sq))
        mlist_remove(&r->sq);
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

/* "$N\r\n" + n bytes + "\r\n" (formatted by hand: a command's every
 * argument goes through here, snprintf was a tenth of a worker's time). */
static size_t bulk_size(size_t n)
{
    return 1 + dec_len(n) + 2 + n + 2;
}

static char *put_bulk(char *p, const char *s, size_t n)
{
    *p++ = '$';
    p = dec_put(p, n);
    *p++ = '\r';
    *p++ = '\n';
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

/* ---- the connection: a libuv stream, TLS, hiredis's reader ------------ */

struct rconn {
    redis_uv *cli;   /* NULL once detached */
    redis_uv *owner; /* the client it was detached from, until its sent list failed */
    union {
        uv_handle_t h;
        uv_stream_t s;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } u;
    uv_connect_t creq;
    redisReader *reader;
    SSL *ssl;         /* rediss://, else NULL */
    BIO *rbio, *wbio; /* memory BIOs (owned by ssl): bytes from / for the server */
    int tls_ready;    /* the TLS handshake is done */
    mlist sent;       /* rreq.sq, oldest first */
    char *obuf;       /* bytes for the socket not yet handed to uv_write */
    size_t olen, ocap;
    int writing;     /* a uv_write in flight */
    int dispatching; /* inside reply callbacks */
    char why[256];   /* why it was detached */
    char rbuf[65536];
};

typedef struct wreq {
    uv_write_t req;
    rconn *c;
    char *buf;
} wreq;

static void conn_gone(rconn *c, const char *why);
static void conn_down(redis_uv *cli, const char *why);
static void conn_ready(redis_uv *cli);
static void handle_reply(rconn *c, rreq *r, redisReply *reply);

static void conn_free(uv_handle_t *h)
{
    rconn *c = h->data;
    if (c->reader != NULL)
        redisReaderFree(c->reader);
    SSL_free(c->ssl); /* and its BIOs */
    free(c->obuf);
    free(c);
}

/* Room for n more bytes in the output buffer. */
static int obuf_room(rconn *c, size_t n)
{
    if (c->olen + n <= c->ocap)
        return 0;
    size_t cap = c->ocap ? c->ocap : 4096;
    while (cap < c->olen + n)
        cap *= 2;
    char *nb = realloc(c->obuf, cap);
    if (nb == NULL)
        return -1;
    c->obuf = nb;
    c->ocap = cap;
    return 0;
}

static int obuf_put(rconn *c, const void *p, size_t n)
{
    if (obuf_room(c, n) != 0)
        return -1;
    memcpy(c->obuf + c->olen, p, n);
    c->olen += n;
    return 0;
}

/* TLS records the SSL object wrote go to the output buffer. */
static int tls_pull(rconn *c)
{
    size_t n;
    while ((n = BIO_ctrl_pending(c->wbio)) > 0) {
        if (n > INT_MAX)
            n = INT_MAX;
        if (obuf_room(c, n) != 0)
            return -1;
        int got = BIO_read(c->wbio, c->obuf + c->olen, (int)n);
        if (got <= 0)
            return -1;
        c->olen += (size_t)got;
    }
    return 0;
}

static void conn_kick(rconn *c);

static void on_written(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    rconn *c = w->c;
    free(w->buf);
    free(w);
    c->writing = 0;
    if (c->cli == NULL)
        return;
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
        conn_gone(c, why);
        return;
    }
    conn_kick(c);
}

/* Hands the output buffer to uv_write unless a write is in flight (the bytes
 * of a burst of commands then go out together when it ends). */
static void conn_kick(rconn *c)
{
    if (c->writing || c->olen == 0 || c->cli == NULL)
        return;
    wreq *w = malloc(sizeof *w);
    if (w == NULL)
        return; /* the next kick tries again; the deadlines still run */
    w->c = c;
    w->buf = c->obuf;
    uv_buf_t b = uv_buf_init(c->obuf, (unsigned)c->olen);
    c->obuf = NULL;
    c->olen = c->ocap = 0;
    c->writing = 1;
    int rc = uv_write(&w->req, &c->u.s, &b, 1, on_written);
    if (rc < 0) {
        char why[160];
        c->writing = 0;
        free(w->buf);
        free(w);
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(rc));
        conn_gone(c, why);
    }
}

/* Queues bytes of the protocol for the server (through TLS on rediss://). */
static int conn_send(rconn *c, const char *p, size_t n)
{
    if (c->ssl != NULL) {
        while (n > 0) {
            int k = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
            if (k <= 0) {
                ERR_clear_error();
                return -1;
            }
            p += k;
            n -= (size_t)k;
        }
        if (tls_pull(c) != 0)
            return -1;
    } else if (obuf_put(c, p, n) != 0) {
        return -1;
    }
    conn_kick(c);
    return 0;
}

/* Fails the commands sent on a detached connection: "connection lost
 * (why)", or "closed" when its client is closing. */
static void fail_sent(rconn *c)
{
    redis_uv *cli = c->owner;
    rreq *r;
    if (cli == NULL)
        return;
    c->owner = NULL;
    while ((r = mlist_first_entry(&c->sent, rreq, sq)) != NULL) {
        mlist_remove(&r->sq);
        if (r->hs || r->state == RQ_DONE) {
            req_free(r);
            continue;
        }
        dl_unlink(cli, r);
        if (cli->closing)
            req_fail(r, REDIS_UV_ECLOSED, "redis: closed");
        else
            req_fail(r, REDIS_UV_ECONNLOST, "redis: connection lost (%s)", c->why);
        req_free(r);
    }
    if (dl_first(cli) == NULL)
        dl_arm(cli);
}

/* Detaches c from its client and closes it; its sent commands fail now,
 * or after the reply callback running now. */
static void conn_detach(rconn *c, const char *why)
{
    redis_uv *cli = c->cli;
    if (cli == NULL)
        return;
    if (cli->conn == c)
        cli->conn = NULL;
    c->cli = NULL;
    c->owner = cli;
    snprintf(c->why, sizeof c->why, "%s", why);
    if (!uv_is_closing(&c->u.h))
        uv_close(&c->u.h, conn_free);
    if (!c->dispatching)
        fail_sent(c);
}

/* The server side went away, or the connection broke. */
static void conn_gone(rconn *c, const char *why)
{
    redis_uv *cli = c->cli;
    if (cli == NULL)
        return;
    if (cli->conn == c) {
        cli->conn = NULL;
        conn_down(cli, why);
    }
    conn_detach(c, why);
}

/* Writes a handshake command (AUTH, SELECT) on c. */
static int send_hs(rconn *c, int hs, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    rreq *r = len > 0 ? calloc(1, sizeof *r) : NULL;
    int rc = r != NULL ? conn_send(c, cmd, (size_t)len) : -1;
    if (cmd != NULL) {
        explicit_bzero(cmd, (size_t)(len > 0 ? len : 0)); /* AUTH's password */
        redisFreeCommand(cmd);
    }
    if (rc != 0) {
        free(r);
        return -1;
    }
    r->cli = c->cli;
    r->hs = hs;
    r->script = -1;
    r->state = RQ_SENT;
    mlist_push_back(&c->sent, &r->sq);
    return 0;
}

/* Connected (and TLS done): AUTH and SELECT when the URL gives them. */
static void start_handshake(rconn *c)
{
    redis_uv *cli = c->cli;
    cli->state = CS_HANDSHAKE;
    cli->handshake_left = 0;
    if (cli->pass != NULL) {
        int rc = cli->user != NULL ? send_hs(c, HS_AUTH, "AUTH %s %s", cli->user, cli->pass)
                                   : send_hs(c, HS_AUTH, "AUTH %s", cli->pass);
        if (rc != 0) {
            conn_gone(c, "out of memory");
            return;
        }
        cli->handshake_left++;
    }
    if (cli->db >= 0) {
        if (send_hs(c, HS_SELECT, "SELECT %d", cli->db) != 0) {
            conn_gone(c, "out of memory");
            return;
        }
        cli->handshake_left++;
    }
    if (cli->handshake_left == 0)
        conn_ready(cli);
}

/* Why the TLS handshake failed, for humans. */
static void tls_why(rconn *c, char *why, size_t n)
{
    long vr = SSL_get_verify_result(c->ssl);
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (vr != X509_V_OK)
        snprintf(why, n, "TLS handshake failed: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (reason != NULL)
        snprintf(why, n, "TLS handshake failed: %s", reason);
    else
        snprintf(why, n, "TLS handshake failed");
    ERR_clear_error();
}

/* Bytes from a TLS server: the handshake, then plain bytes to the reader.
 * 0, or -1 when the connection is gone. */
static int tls_in(rconn *c, const char *p, size_t n)
{
    char why[300], buf[16384];
    if (BIO_write(c->rbio, p, (int)n) != (int)n) {
        conn_gone(c, "out of memory");
        return -1;
    }
    if (!c->tls_ready) {
        int r = SSL_do_handshake(c->ssl);
        if (tls_pull(c) != 0) {
            conn_gone(c, "out of memory");
            return -1;
        }
        conn_kick(c);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            tls_why(c, why, sizeof why);
            conn_gone(c, why);
            return -1;
        }
        c->tls_ready = 1;
        start_handshake(c);
        if (c->cli == NULL)
            return -1;
    }
    for (;;) {
        int r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) {
            if (redisReaderFeed(c->reader, buf, (size_t)r) != REDIS_OK) {
                conn_gone(c, "out of memory");
                return -1;
            }
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            snprintf(why, sizeof why, "server closed the TLS connection");
        } else {
            unsigned long le = ERR_peek_last_error();
            const char *reason = le ? ERR_reason_error_string(le) : NULL;
            snprintf(why, sizeof why, "TLS: %s", reason ? reason : "read failed");
        }
        ERR_clear_error();
        conn_gone(c, why);
        return -1;
    }
    if (tls_pull(c) != 0) { /* (key updates, alerts) */
        conn_gone(c, "out of memory");
        return -1;
    }
    conn_kick(c);
    return 0;
}

/* Hands each complete reply to the command it answers, oldest first. */
static void dispatch(rconn *c)
{
    c->dispatching++;
    while (c->cli != NULL) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            char why[200];
            snprintf(why, sizeof why, "protocol error: %s", c->reader->errstr);
            conn_gone(c, why);
            break;
        }
        if (reply == NULL)
            break;
        rreq *r = mlist_first_entry(&c->sent, rreq, sq);
        if (r == NULL) {
            freeReplyObject(reply);
            conn_gone(c, "protocol error: a reply to no command");
            break;
        }
        mlist_remove(&r->sq);
        handle_reply(c, r, reply);
        freeReplyObject(reply);
    }
    c->dispatching--;
    if (c->cli == NULL && !c->dispatching)
        fail_sent(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    rconn *c = h->data;
    (void)suggested;
    *b = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    rconn *c = st->data;
    if (c->cli == NULL || n == 0)
        return;
    if (n < 0) {
        char why[160];
        if (n == UV_EOF)
            snprintf(why, sizeof why, "server closed the connection");
        else
            snprintf(why, sizeof why, "%s", uv_strerror((int)n));
        conn_gone(c, why);
        return;
    }
    if (c->ssl != NULL) {
        if (tls_in(c, b->base, (size_t)n) != 0)
            return;
    } else if (redisReaderFeed(c->reader, b->base, (size_t)n) != REDIS_OK) {
        conn_gone(c, "out of memory");
        return;
    }
    dispatch(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    rconn *c = req->data;
    if (c->cli == NULL)
        return; /* dropped meanwhile (UV_ECANCELED) */
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "%s", uv_strerror(status));
        conn_gone(c, why);
        return;
    }
    int rc = uv_read_start(&c->u.s, on_alloc, on_read);
    if (rc < 0) {
        conn_gone(c, uv_strerror(rc));
        return;
    }
    c->cli->state = CS_HANDSHAKE;
    if (c->ssl == NULL) {
        start_handshake(c);
        return;
    }
    int r = SSL_do_handshake(c->ssl); /* the ClientHello */
    if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
        char why[300];
        tls_why(c, why, sizeof why);
        conn_gone(c, why);
        return;
    }
    if (tls_pull(c) != 0) {
        conn_gone(c, "out of memory");
        return;
    }
    conn_kick(c);
}

/* The TLS side of a new connection: verifies the server's certificate
 * against its host name or IP address. */
static int tls_setup(redis_uv *cli, rconn *c)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    if ((c->ssl = SSL_new(cli->ssl_ctx)) == NULL)
        return -1;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        return -1;
    }
    BIO_set_mem_eof_return(c->rbio, -1); /* empty: "want read", not end of file */
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_connect_state(c->ssl);
    int ip = inet_pton(AF_INET, cli->host, tmp) == 1 || inet_pton(AF_INET6, cli->host, tmp) == 1;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), cli->host) == 1 ? 0 : -1;
    if (SSL_set_tlsext_host_name(c->ssl, cli->host) != 1 || SSL_set1_host(c->ssl, cli->host) != 1)
        return -1;
    return 0;
}

/* ---- sending ----------------------------------------------------------- */

/* Writes r on the ready connection. 0, or -1 when it could not (r is then
** unchanged). `force_eval`: send an eval as EVAL whatever the epoch. */
static int req_send(redis_uv *cli, rreq *r, int force_eval)
{
    rconn *c = cli->conn;
    if (c == NULL || cli->state != CS_READY)
        return -1;
    if (r->script >= 0) {
        rscript *sc = &cli->scripts[r->script];
        int use_sha = !force_eval && sc->epoch == cli->epoch;
        size_t n = 0;
        char *buf = eval_format(cli, r, use_sha, &n);
        if (buf == NULL)
            return -1;
        int rc = conn_send(c, buf, n);
        free(buf);
        if (rc != 0)
            return -1;
        if (!use_sha)
            sc->epoch = cli->epoch;
    } else {
        if (conn_send(c, r->cmd, r->len) != 0)
            return -1;
        free_cmd(r);
    }
    r->state = RQ_SENT;
    mlist_push_back(&c->sent, &r->sq);
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

/* The connection is gone (cli->conn already detached): note why, and plan
** the next attempt. */
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
** (now, or after the running reply callback) with "connection lost (why)". */
static void conn_drop(redis_uv *cli, const char *why)
{
    rconn *c = cli->conn;
    cli->conn = NULL;
    snprintf(cli->drop_reason, sizeof cli->drop_reason, "%s", why);
    conn_down(cli, why);
    if (c != NULL)
        conn_detach(c, why);
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

/* A reply to AUTH or SELECT. */
static void on_handshake(rconn *c, const redisReply *reply, const char *what)
{
    redis_uv *cli = c->cli;
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

/* Opens a connection to a numeric address or a socket path. */
static void conn_open(redis_uv *cli, const char *addr)
{
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } sa;
    char why[200];
    rconn *c = calloc(1, sizeof *c);
    if (c == NULL || (c->reader = redisReaderCreate()) == NULL) {
        free(c);
        conn_down(cli, "out of memory");
        return;
    }
    mlist_init(&c->sent);
    c->cli = cli;
    c->u.h.data = c;
    c->creq.data = c;
    if (cli->tls && tls_setup(cli, c) != 0) {
        redisReaderFree(c->reader);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        conn_down(cli, "cannot set up TLS");
        return;
    }
    int rc;
    if (cli->path != NULL) {
        uv_pipe_init(cli->loop, &c->u.pipe, 0);
        uv_pipe_connect(&c->creq, &c->u.pipe, cli->path, on_connect);
        rc = 0;
    } else {
        uv_tcp_init(cli->loop, &c->u.tcp);
        uv_tcp_nodelay(&c->u.tcp, 1);
        rc = strchr(addr, ':') != NULL ? uv_ip6_addr(addr, cli->port, &sa.in6)
                                       : uv_ip4_addr(addr, cli->port, &sa.in);
        if (rc == 0)
            rc = uv_tcp_connect(&c->creq, &c->u.tcp, &sa.sa, on_connect);
    }
    if (cli->opt.weak)
        uv_unref(&c->u.h);
    cli->conn = c;
    cli->state = CS_CONNECTING;
    if (rc < 0) {
        snprintf(why, sizeof why, "%s", uv_strerror(rc));
        conn_gone(c, why);
    }
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

static void handle_reply(rconn *c, rreq *r, redisReply *reply)
{
    redis_uv *cli = c->cli;
    if (r->hs) {
        int hs = r->hs;
        req_free(r);
        on_handshake(c, reply, hs == HS_AUTH ? "AUTH" : "SELECT");
        return;
    }
    if (r->state == RQ_DONE) { /* its callback already fired (timeout) */
        req_free(r);
        return;
    }
    if (r->script >= 0 && !r->fellback && reply->type == REDIS_REPLY_ERROR && reply->len >= 8 &&
        strncmp(reply->str, "NOSCRIPT", 8) == 0 && cli->conn == c) {
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
            /* still on its connection's sent list: freed with its reply */
            r->state = RQ_DONE;
            stalled = 1;
            req_fail(r, REDIS_UV_ETIMEDOUT, "redis: timed out after %llu ms at %s", ms,
                     cli->endpoint);
        }
    }
    if (stalled && !cli->closing && cli->conn != NULL && cli->state == CS_READY)
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
    if (colon == NULL) { /* a user without a password: the password option's */
        if (at == s)
            return REDIS_UV_EURL;
        if ((cli->user = pct_dup(s, (size_t)(at - s), &bad)) == NULL)
            return bad ? REDIS_UV_EURL : REDIS_UV_ENOMEM;
        return 0;
    }
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
    if (strncmp(url, "rediss://", 9) == 0) {
        cli->tls = 1;
        s = url + 9;
    } else if (strncmp(url, "redis://", 8) == 0) {
        s = url + 8;
    } else {
        return REDIS_UV_EURL;
    }
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

static int open_fail(redis_uv *cli, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int open_fail(redis_uv *cli, int rc, const char *fmt, ...)
{
    if (cli->opt.errbuf != NULL && cli->opt.errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cli->opt.errbuf, cli->opt.errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Why OpenSSL refused a file, for humans. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "unreadable";
}

/* The password option, and the TLS context of a rediss:// client: the CA
** file (else the system's store), a client certificate and key. */
static int security_setup(redis_uv *cli)
{
    const redis_uv_options *o = &cli->opt;
    if (o->password != NULL && o->password[0] != '\0') {
        if (cli->pass != NULL)
            explicit_bzero(cli->pass, strlen(cli->pass));
        free(cli->pass);
        if ((cli->pass = str_ndup(o->password, strlen(o->password))) == NULL)
            return REDIS_UV_ENOMEM;
    }
    if (cli->user != NULL && cli->pass == NULL)
        return open_fail(cli, REDIS_UV_EURL,
                         "the URL names a user but no password (give it in the URL or a "
                         "password file)");
    int has_ca = o->tls_ca_file != NULL && o->tls_ca_file[0];
    int has_cert = o->tls_cert_file != NULL && o->tls_cert_file[0];
    int has_key = o->tls_key_file != NULL && o->tls_key_file[0];
    if (!cli->tls)
        return has_ca || has_cert || has_key
                   ? open_fail(cli, REDIS_UV_ETLS, "TLS files are set but the URL is not rediss://")
                   : 0;
    if (has_cert != has_key)
        return open_fail(cli, REDIS_UV_ETLS,
                         "a client certificate and its key go together: set both or neither");
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return REDIS_UV_ENOMEM;
    cli->ssl_ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int rc = 0;
    if (has_ca && SSL_CTX_load_verify_locations(ctx, o->tls_ca_file, NULL) != 1)
        rc = open_fail(cli, REDIS_UV_ETLS, "cannot load the CA file %s: %s", o->tls_ca_file,
                       ssl_reason());
    else if (!has_ca && SSL_CTX_set_default_verify_paths(ctx) != 1)
        rc = open_fail(cli, REDIS_UV_ETLS, "cannot load the system's CA store: %s", ssl_reason());
    else if (has_cert && SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert_file) != 1)
        rc = open_fail(cli, REDIS_UV_ETLS, "cannot load the certificate file %s: %s",
                       o->tls_cert_file, ssl_reason());
    else if (has_key && SSL_CTX_use_PrivateKey_file(ctx, o->tls_key_file, SSL_FILETYPE_PEM) != 1)
        rc = open_fail(cli, REDIS_UV_ETLS, "cannot load the key file %s: %s", o->tls_key_file,
                       ssl_reason());
    else if (has_key && SSL_CTX_check_private_key(ctx) != 1)
        rc = open_fail(cli, REDIS_UV_ETLS, "the key file %s does not match the certificate %s",
                       o->tls_key_file, o->tls_cert_file);
    ERR_clear_error();
    return rc;
}

static void cli_free(redis_uv *cli)
{
    if (cli->pass != NULL)
        explicit_bzero(cli->pass, strlen(cli->pass));
    SSL_CTX_free(cli->ssl_ctx);
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
    if (rcl_is_cluster_url(url)) {
        /* a facade: no connection of its own, scripts registered here */
        cli->loop = loop;
        if ((rc = rcl_open(loop, url, opts, cli, &cli->cl)) != 0) {
            cli_free(cli);
            return rc;
        }
        snprintf(cli->endpoint, sizeof cli->endpoint, "%s", rcl_endpoint(cli->cl));
        *out = cli;
        return 0;
    }
    if ((rc = parse_url(cli, url)) != 0) {
        cli_free(cli);
        if (opts != NULL && opts->errbuf != NULL && opts->errlen > 0)
            snprintf(opts->errbuf, opts->errlen, "%s", redis_uv_strerror(rc));
        return rc;
    }
    if (opts != NULL)
        cli->opt = *opts;
    rc = security_setup(cli);
    /* the caller's strings are read during open only */
    cli->opt.tls_ca_file = cli->opt.tls_cert_file = cli->opt.tls_key_file = NULL;
    cli->opt.password = NULL;
    cli->opt.errbuf = NULL;
    cli->opt.errlen = 0;
    if (rc != 0) {
        cli_free(cli);
        return rc;
    }
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
    if (cli->cl != NULL) {
        rcl_close(cli->cl, finish_close, cli);
        return;
    }
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
    /* Sent ones fail now or (inside a reply callback) as soon as that
    ** callback returns. */
    if (cli->conn != NULL) {
        rconn *c = cli->conn;
        cli->conn = NULL;
        snprintf(cli->drop_reason, sizeof cli->drop_reason, "closed");
        conn_detach(c, "closed");
    }
    uvc_release(&cli->closer);
}

void redis_uv_hold(redis_uv *cli)
{
    if (cli != NULL && cli->cl != NULL && !cli->closing) {
        rcl_hold(cli->cl);
        return;
    }
    if (cli == NULL || cli->closing || !cli->opt.weak)
        return;
    cli->opt.weak = 0; /* and for a later connection's watcher */
    uv_ref((uv_handle_t *)&cli->conn_timer);
    uv_ref((uv_handle_t *)&cli->dl_timer);
    if (cli->conn != NULL)
        uv_ref(&cli->conn->u.h);
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
    if (rc == 0 && cli->cl != NULL)
        rc = rcl_command_resp(cli->cl, cb, ud, cmd, (size_t)len);
    if (rc != 0 || cli->cl != NULL) {
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
    size_t nbulk = (size_t)argc + (first != NULL);
    if (header)
        total += 1 + dec_len(nbulk) + 2;
    if (first != NULL)
        total += bulk_size(firstlen);
    for (int i = 0; i < argc; i++)
        total += bulk_size(argvlen != NULL ? argvlen[i] : strlen(argv[i]));
    char *buf = malloc(total + 1), *p = buf;
    if (buf == NULL)
        return NULL;
    if (header) {
        *p++ = '*';
        p = dec_put(p, nbulk);
        *p++ = '\r';
        *p++ = '\n';
    }
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
    if (rc == 0 && cli->cl != NULL)
        rc = rcl_command_argv(cli->cl, cb, ud, argc, argv, argvlen);
    if (rc != 0 || cli->cl != NULL) {
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
    if (cli->cl != NULL)
        return rcl_eval(cli->cl, cb, ud, script_id, cli->scripts[script_id].src,
                        cli->scripts[script_id].len, nkeys, argc, argv, argvlen);
    int n = snprintf(nk, sizeof nk, "%d", nkeys);
    char *tail = format_argv(argc, argv, argvlen, 0, nk, (size_t)n, &len);
    if (tail == NULL)
        return REDIS_UV_ENOMEM;
    return submit(cli, cb, ud, tail, len, 0, script_id, argc + 1);
}

/* ---- introspection ----------------------------------------------------- */

int redis_uv_is_connected(const redis_uv *cli)
{
    if (cli != NULL && cli->cl != NULL)
        return rcl_is_connected(cli->cl);
    return cli != NULL && cli->state == CS_READY && cli->conn != NULL;
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
    if (cli->cl != NULL) {
        rcl_get_stats(cli->cl, out);
        return;
    }
    *out = cli->st;
    out->pending = cli->npending;
    out->queued = cli->nqueued;
    out->connected = redis_uv_is_connected(cli);
}
