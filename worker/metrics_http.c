/* metrics_http.c: the worker's /metrics endpoint (see metrics_http.h) on
 * the shared HTTP server (shared/http/http_server.h). */
#include "metrics_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_server.h"

struct metrics_http {
    http_server *srv;
    metrics *m;
};

static void handle(http_req *req, void *ud)
{
    metrics_http *h = ud;
    int get = !strcmp(req->method, "GET");
    int head = !strcmp(req->method, "HEAD");
    if (strcmp(req->path, "/metrics") != 0) {
        http_respond(req, "404 Not Found", NULL, NULL, NULL, 0, head);
        return;
    }
    if (!get && !head) {
        http_respond(req, "405 Method Not Allowed", NULL, "Allow: GET, HEAD\r\n", NULL, 0, 0);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(h->m, &text, &len) != 0) {
        http_respond(req, "503 Service Unavailable", NULL, NULL, NULL, 0, head);
        return;
    }
    http_respond(req, "200 OK", "text/plain; version=0.0.4; charset=utf-8", NULL, text, len, head);
    free(text);
}

metrics_http *metrics_http_start(uv_loop_t *loop, const char *addr, metrics *m, char *err,
                                 size_t errlen)
{
    metrics_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    h->m = m;
    /* a small body is read and ignored: a POST is answered 405 */
    h->srv = http_server_start(loop, addr, "/metrics", 1024, handle, h, err, errlen);
    if (!h->srv) {
        free(h);
        return NULL;
    }
    return h;
}

int metrics_http_port(const metrics_http *h)
{
    return http_server_port(h->srv);
}

void metrics_http_close(metrics_http *h)
{
    if (!h)
        return;
    http_server_close(h->srv);
    free(h);
}
