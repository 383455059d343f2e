/* http_server.c: a small HTTP/1.x server on a libuv loop (see
 * http_server.h). Each connection reads its request (header, then a body
 * of Content-Length bytes) into one buffer, answers once, shuts its side
 * down and closes; a timer bounds its whole life, so a slow or silent
 * client costs one buffer until then. */
#include "http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "list.h"
#include "uv_closer.h"

typedef struct conn conn;

struct http_server {
    uv_tcp_t tcp;
    http_handler handler;
    void *ud;
    size_t body_max;
    mlist conns; /* open connections */
    int nconns;
    int port;
    int closing;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sd;
    mlist link; /* in srv->conns while open */
    http_server *srv;
    uvc_closer closer;
    int closing, answered;
    char *resp;      /* the answer being written (malloc'd) */
    size_t len;      /* bytes read */
    size_t head_end; /* header bytes (0 until it is whole) */
    size_t want;     /* head_end + Content-Length */
    size_t cap;
    char buf[]; /* HTTP_SERVER_HEADER_MAX + body_max */
};

static void on_server_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_free(void *arg)
{
    conn *c = arg;
    free(c->resp);
    free(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (mlist_linked(&c->link)) {
        mlist_remove(&c->link);
        c->srv->nconns--;
    }
    uvc_close(&c->closer, (uv_handle_t *)&c->timer);
    uvc_close(&c->closer, (uv_handle_t *)&c->tcp);
    uvc_release(&c->closer);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

static void on_written(uv_write_t *req, int status)
{
    conn *c = req->data;
    if (c->closing)
        return; /* cancelled by the close (a timeout) */
    if (status < 0 || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c); /* the client went away mid-answer */
}

static void respond(conn *c, const char *status, const char *type, const char *extra,
                    const char *body, size_t body_len, int head)
{
    if (c->answered || c->closing)
        return;
    c->answered = 1;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (!type)
        type = "text/plain; charset=utf-8";
    size_t blen = body ? body_len : strlen(status) + 1;
    char hdr[1024];
    int hl = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, type, blen, extra ? extra : "");
    if (hl < 0 || (size_t)hl >= sizeof hdr) {
        conn_close(c);
        return;
    }
    if (head)
        blen = 0;
    c->resp = malloc((size_t)hl + blen + 1);
    if (!c->resp) {
        conn_close(c);
        return;
    }
    memcpy(c->resp, hdr, (size_t)hl);
    if (!head && body)
        memcpy(c->resp + hl, body, blen);
    else if (!head)
        snprintf(c->resp + hl, blen + 1, "%s\n", status);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hl + blen));
    c->wr.data = c;
    c->sd.data = c;
    /* the answer must be read within the same bound */
    uv_timer_start(&c->timer, on_timeout, HTTP_SERVER_TIMEOUT_MS, 0);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

void http_respond(http_req *req, const char *status, const char *type, const char *extra,
                  const char *body, size_t len, int head)
{
    respond(req->conn, status, type, extra, body, len, head);
}

int http_req_header(const http_req *req, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name);
    const char *p = req->head, *end = req->head + req->head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            size_t n = (size_t)(ve - v);
            if (outlen) {
                if (n >= outlen)
                    n = outlen - 1;
                memcpy(out, v, n);
                out[n] = 0;
            }
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

/* The whole request is in c->buf: hands it to the handler. */
static void dispatch(conn *c)
{
    char *line = c->buf, *end = memchr(line, '\n', c->head_end);
    size_t ll = (size_t)(end - line);
    if (ll > 0 && line[ll - 1] == '\r')
        ll--;
    char *sp1 = memchr(line, ' ', ll);
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || (size_t)(line + ll - (sp2 + 1)) < 8 ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || memchr(line, 0, ll)) {
        respond(c, "400 Bad Request", NULL, NULL, NULL, 0, 0);
        return;
    }
    http_req req;
    memset(&req, 0, sizeof req);
    *sp1 = 0;
    *sp2 = 0;
    req.method = line;
    req.path = sp1 + 1;
    char *q = strchr(sp1 + 1, '?');
    if (q) {
        *q = 0;
        req.query = q + 1;
    } else {
        req.query = "";
    }
    req.head = end + 1;
    req.head_len = c->head_end - (size_t)(end + 1 - c->buf);
    req.body = c->buf + c->head_end;
    req.body_len = c->want - c->head_end;
    req.conn = c;
    c->srv->handler(&req, c->srv->ud);
    if (!c->answered)
        respond(c, "500 Internal Server Error", NULL, NULL, NULL, 0, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

/* The header ends at the first empty line (CRLF CRLF, or bare LFs): its
 * length, else 0. */
static size_t header_end(const conn *c, size_t from)
{
    size_t start = from > 3 ? from - 3 : 0;
    for (size_t i = start; i < c->len; i++)
        if (c->buf[i] == '\n' && ((i >= 1 && c->buf[i - 1] == '\n') ||
                                  (i >= 2 && c->buf[i - 1] == '\r' && c->buf[i - 2] == '\n')))
            return i + 1;
    return 0;
}

/* The header is whole: how much body follows. 0, or -1 after answering. */
static int body_length(conn *c)
{
    http_req r = {0};
    const char *nl = memchr(c->buf, '\n', c->head_end);
    r.head = nl + 1;
    r.head_len = c->head_end - (size_t)(nl + 1 - c->buf);
    char v[32];
    size_t n = 0;
    if (http_req_header(&r, "Transfer-Encoding", v, sizeof v)) {
        respond(c, "411 Length Required", NULL, NULL, NULL, 0, 0);
        return -1;
    }
    if (http_req_header(&r, "Content-Length", v, sizeof v)) {
        char *e;
        unsigned long long x = strtoull(v, &e, 10);
        if (!v[0] || *e || v[0] == '-') {
            respond(c, "400 Bad Request", NULL, NULL, NULL, 0, 0);
            return -1;
        }
        if (x > c->srv->body_max) {
            respond(c, "413 Content Too Large", NULL, NULL, NULL, 0, 0);
            return -1;
        }
        n = (size_t)x;
    }
    c->want = c->head_end + n;
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    conn *c = s->data;
    if (n < 0) {
        conn_close(c); /* EOF or error before a whole request */
        return;
    }
    size_t from = c->len;
    c->len += (size_t)n;
    if (!c->head_end) {
        c->head_end = header_end(c, from);
        if (c->head_end > HTTP_SERVER_HEADER_MAX ||
            (!c->head_end && c->len >= HTTP_SERVER_HEADER_MAX)) {
            respond(c, "431 Request Header Fields Too Large", NULL, NULL, NULL, 0, 0);
            return;
        }
        if (!c->head_end)
            return;
        if (body_length(c) != 0)
            return;
    }
    if (c->len >= c->want)
        dispatch(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    http_server *h = server->data;
    if (status < 0 || h->closing)
        return;
    size_t cap = HTTP_SERVER_HEADER_MAX + h->body_max;
    conn *c = calloc(1, sizeof *c + cap + 1);
    if (!c) {
        /* the connection waits in the backlog; accepted when memory allows */
        return;
    }
    c->srv = h;
    c->cap = cap;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    uvc_init(&c->closer, conn_free, c);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (h->nconns >= HTTP_SERVER_MAX_CONNS) {
        conn_close(c); /* too many at once: this one is dropped */
        return;
    }
    mlist_push_back(&h->conns, &c->link);
    h->nconns++;
    uv_timer_start(&c->timer, on_timeout, HTTP_SERVER_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

http_server *http_server_start(uv_loop_t *loop, const char *addr, const char *what, size_t body_max,
                               http_handler handler, void *ud, char *err, size_t errlen)
{
    char host[64], why[200];
    int port;
    if (config_host_port(addr, host, sizeof host, &port, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s address '%s': %s", what, addr, why);
        return NULL;
    }
    struct sockaddr_storage sa;
    int v6 = strchr(host, ':') != NULL;
    int rc = v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa)
                : uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
    http_server *h = calloc(1, sizeof *h);
    if (rc != 0 || !h) {
        snprintf(err, errlen, "%s address '%s': %s", what, addr,
                 h ? uv_strerror(rc) : "out of memory");
        free(h);
        return NULL;
    }
    h->handler = handler;
    h->ud = ud;
    h->body_max = body_max;
    h->port = port;
    mlist_init(&h->conns);
    uv_tcp_init(loop, &h->tcp);
    h->tcp.data = h;
    rc = uv_tcp_bind(&h->tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->tcp, 511, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%d for %s: %s", v6 ? "[" : "", host,
                 v6 ? "]" : "", port, what, uv_strerror(rc));
        uv_close((uv_handle_t *)&h->tcp, on_server_closed);
        return NULL;
    }
    struct sockaddr_storage got;
    int gl = sizeof got;
    if (uv_tcp_getsockname(&h->tcp, (struct sockaddr *)&got, &gl) == 0)
        h->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                  : ((struct sockaddr_in *)&got)->sin_port);
    return h;
}

int http_server_port(const http_server *h)
{
    return h->port;
}

void http_server_close(http_server *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    while (!mlist_empty(&h->conns))
        conn_close(mlist_entry(mlist_first(&h->conns), conn, link));
    uv_close((uv_handle_t *)&h->tcp, on_server_closed);
}
