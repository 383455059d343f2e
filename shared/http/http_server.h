/* http_server.h: a small HTTP/1.x server on a libuv loop (http_server.c),
 * shared by the worker's /metrics endpoint (worker/metrics_http.c) and
 * `mutirao dashboard` (producer/dashboard.c).
 *
 * One request per connection (Connection: close). The handler is called
 * once per request, with the whole header and body read, and answers it
 * with http_respond before it returns. Never blocks the loop by itself: a
 * request header over HTTP_SERVER_HEADER_MAX is answered 431, a body over
 * the server's body_max 413, a malformed request 400, all with the
 * connection closed; a client that has not sent its whole request (or read
 * its answer) within HTTP_SERVER_TIMEOUT_MS is dropped; at most
 * HTTP_SERVER_MAX_CONNS connections are open at once (more are closed at
 * once); a client gone mid-answer only ends its own connection. */
#ifndef MUTIRAO_HTTP_SERVER_H
#define MUTIRAO_HTTP_SERVER_H

#include <stddef.h>

#include <uv.h>

#define HTTP_SERVER_HEADER_MAX 8192
#define HTTP_SERVER_TIMEOUT_MS 10000
#define HTTP_SERVER_MAX_CONNS 1024

typedef struct http_server http_server;

/* One request, valid during the handler's call. */
typedef struct http_req {
    const char *method; /* NUL-terminated */
    const char *path;   /* without the query, NUL-terminated, not decoded */
    const char *query;  /* after '?', "" for none */
    const char *body;
    size_t body_len;
    void *conn;       /* the server's */
    const char *head; /* the header lines (after the request line) */
    size_t head_len;
} http_req;

typedef void (*http_handler)(http_req *req, void *ud);

/* Listens on addr ("PORT", "HOST:PORT", "[IPV6]:PORT": config_host_port;
 * loopback when only a port is given) on loop; what names the server in
 * messages ("/metrics"). body_max: the largest request body taken (0:
 * none). NULL with err saying why (e.g. "cannot listen on 127.0.0.1:9464
 * for /metrics: address already in use"). */
http_server *http_server_start(uv_loop_t *loop, const char *addr, const char *what, size_t body_max,
                               http_handler handler, void *ud, char *err, size_t errlen);

/* The port it listens on (useful with port 0). */
int http_server_port(const http_server *h);

/* A request header's value (name matched case-insensitively) copied into
 * out (NUL-terminated, truncated to outlen - 1); 1 if present, else 0. */
int http_req_header(const http_req *req, const char *name, char *out, size_t outlen);

/* Answers req: status ("200 OK"), content type (NULL: text/plain), extra
 * header lines (each ending in "\r\n", or NULL), body (NULL: the status
 * line as text) of len bytes; head: no body sent (HEAD). Once per request. */
void http_respond(http_req *req, const char *status, const char *type, const char *extra,
                  const char *body, size_t len, int head);

/* Stops listening and drops every connection; the memory goes in libuv's
 * close callbacks. h is invalid afterwards. */
void http_server_close(http_server *h);

#endif
