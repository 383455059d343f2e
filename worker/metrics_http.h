/* metrics_http.h: the worker's /metrics endpoint (worker/metrics_http.c), a
 * the shared HTTP/1.x server (shared/http/http_server.h) on the worker's
 * libuv loop.
 *
 * GET (or HEAD) /metrics answers the registry's text exposition
 * (text/plain; version=0.0.4); other paths 404, other methods 405, a
 * malformed request 400. One request per connection (Connection: close).
 * Never blocks the loop: a request header over 8 KB is answered 431 and the
 * connection closed, a client that has not sent its whole header (or read
 * its answer) within METRICS_HTTP_TIMEOUT_MS is dropped, at most
 * METRICS_HTTP_MAX_CONNS connections are open at once (more are closed at
 * once), and a client gone mid-answer only ends its own connection. */
#ifndef MUTIRAO_METRICS_HTTP_H
#define MUTIRAO_METRICS_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "metrics.h"

#include "http_server.h"

#define METRICS_HTTP_HEADER_MAX HTTP_SERVER_HEADER_MAX
#define METRICS_HTTP_TIMEOUT_MS HTTP_SERVER_TIMEOUT_MS
#define METRICS_HTTP_MAX_CONNS HTTP_SERVER_MAX_CONNS

typedef struct metrics_http metrics_http;

/* Listens on addr ("PORT", "HOST:PORT", "[IPV6]:PORT": config_host_port;
 * loopback when only a port is given) on loop, serving m (which must
 * outlive the server). NULL with err saying why (e.g. "cannot listen on
 * 127.0.0.1:9464: address already in use"). */
metrics_http *metrics_http_start(uv_loop_t *loop, const char *addr, metrics *m, char *err,
                                 size_t errlen);

/* The port it listens on (useful with port 0 in tests). */
int metrics_http_port(const metrics_http *h);

/* Stops listening and drops every connection; the memory goes in libuv's
 * close callbacks. h is invalid afterwards. */
void metrics_http_close(metrics_http *h);

#endif
