/* metrics_http.c: the worker's /metrics HTTP server on its libuv loop (see
 * metrics_http.h). Each connection reads its request header into a fixed
 * buffer, answers once, shuts its side down and closes; a timer bounds its
 * whole life, so a slow or silent client costs one buffer until then. */
#include "metrics_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "list.h"
#include "uv_closer.h"

typedef struct conn conn;

struct metrics_http {
    uv_tcp_t tcp;
    metrics *m;
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
    metrics_http *srv;
    uvc_closer closer;
    int closing;
    char *resp; /* the answer being written (malloc'd) */
    size_t len; /* header bytes read */
    char buf[METRICS_HTTP_HEADER_MAX];
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

/* Writes status, headers and body (body_len bytes, not sent for HEAD). */
static void respond(conn *c, const char *status, const char *extra, const char *body,
                    size_t body_len, int head)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    const char *type =
        body == NULL ? "text/plain; charset=utf-8" : "text/plain; version=0.0.4; charset=utf-8";
    char hdr[512];
    int hl = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                      "Connection: close\r\n\r\n",
                      status, type, body ? body_len : strlen(status) + 1, extra ? extra : "");
    size_t blen = head ? 0 : body ? body_len : strlen(status) + 1;
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
    uv_timer_start(&c->timer, on_timeout, METRICS_HTTP_TIMEOUT_MS, 0);
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static int token_is(const char *p, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(p, word, n) == 0;
}

/* The whole header is in c->buf: answers it. */
static void handle(conn *c)
{
    const char *line = c->buf, *end = memchr(line, '\n', c->len);
    size_t ll = (size_t)(end - line);
    if (ll > 0 && line[ll - 1] == '\r')
        ll--;
    const char *sp1 = memchr(line, ' ', ll);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ll - (size_t)(sp1 + 1 - line)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || (size_t)(line + ll - (sp2 + 1)) < 8 ||
        memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond(c, "400 Bad Request", NULL, NULL, 0, 0);
        return;
    }
    const char *target = sp1 + 1;
    size_t tl = (size_t)(sp2 - target);
    const char *q = memchr(target, '?', tl);
    if (q)
        tl = (size_t)(q - target);
    int get = token_is(line, (size_t)(sp1 - line), "GET");
    int head = token_is(line, (size_t)(sp1 - line), "HEAD");
    if (!token_is(target, tl, "/metrics")) {
        respond(c, "404 Not Found", NULL, NULL, 0, head);
        return;
    }
    if (!get && !head) {
        respond(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", NULL, 0, 0);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(c->srv->m, &text, &len) != 0) {
        respond(c, "503 Service Unavailable", NULL, NULL, 0, head);
        return;
    }
    respond(c, "200 OK", NULL, text, len, head);
    free(text);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    conn *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

/* The header ends at the first empty line (CRLF CRLF, or bare LFs). */
static int header_complete(const conn *c, size_t from)
{
    size_t start = from > 3 ? from - 3 : 0;
    for (size_t i = start; i < c->len; i++)
        if (c->buf[i] == '\n' && ((i >= 1 && c->buf[i - 1] == '\n') ||
                                  (i >= 2 && c->buf[i - 1] == '\r' && c->buf[i - 2] == '\n')))
            return 1;
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
    if (header_complete(c, from))
        handle(c);
    else if (c->len == sizeof c->buf)
        respond(c, "431 Request Header Fields Too Large", NULL, NULL, 0, 0);
}

static void on_connection(uv_stream_t *server, int status)
{
    metrics_http *h = server->data;
    if (status < 0 || h->closing)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* the connection waits in the backlog; accepted when memory allows */
        return;
    }
    c->srv = h;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    uvc_init(&c->closer, conn_free, c);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (h->nconns >= METRICS_HTTP_MAX_CONNS) {
        conn_close(c); /* too many at once: this one is dropped */
        return;
    }
    mlist_push_back(&h->conns, &c->link);
    h->nconns++;
    uv_timer_start(&c->timer, on_timeout, METRICS_HTTP_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

metrics_http *metrics_http_start(uv_loop_t *loop, const char *addr, metrics *m, char *err,
                                 size_t errlen)
{
    char host[64], why[200];
    int port;
    if (config_host_port(addr, host, sizeof host, &port, why, sizeof why) != 0) {
        snprintf(err, errlen, "metrics address '%s': %s", addr, why);
        return NULL;
    }
    struct sockaddr_storage sa;
    int v6 = strchr(host, ':') != NULL;
    int rc = v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa)
                : uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
    metrics_http *h = calloc(1, sizeof *h);
    if (rc != 0 || !h) {
        snprintf(err, errlen, "metrics address '%s': %s", addr,
                 h ? uv_strerror(rc) : "out of memory");
        free(h);
        return NULL;
    }
    h->m = m;
    h->port = port;
    mlist_init(&h->conns);
    uv_tcp_init(loop, &h->tcp);
    h->tcp.data = h;
    rc = uv_tcp_bind(&h->tcp, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->tcp, 511, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%d for /metrics: %s", v6 ? "[" : "", host,
                 v6 ? "]" : "", port, uv_strerror(rc));
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

int metrics_http_port(const metrics_http *h)
{
    return h->port;
}

void metrics_http_close(metrics_http *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    while (!mlist_empty(&h->conns))
        conn_close(mlist_entry(mlist_first(&h->conns), conn, link));
    uv_close((uv_handle_t *)&h->tcp, on_server_closed);
}
