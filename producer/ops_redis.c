/* ops_redis.c: Redis for the operations commands, one command at a time
 * on a private loop (ops_redis.h). */
#include "ops_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_conn.h"
#include "fleet_keys.h"

/* ---- replies ---- */

void ops_reply_free(ops_reply *v)
{
    redis_value_free(v);
}

const char *ops_reply_field(const ops_reply *h, const char *f)
{
    for (size_t i = 0; i + 1 < h->n; i += 2)
        if (h->el[i].str && !strcmp(h->el[i].str, f))
            return h->el[i + 1].str;
    return NULL;
}

long long ops_reply_field_ll(const ops_reply *h, const char *f)
{
    const char *v = ops_reply_field(h, f);
    return v ? strtoll(v, NULL, 10) : 0;
}

/* ---- the client ---- */

static void on_closed(void *ud)
{
    (void)ud;
}

int ops_redis_open(ops_redis *c, const config *cfg, unsigned connect_timeout_ms,
                   unsigned op_timeout_ms, char *why, size_t n)
{
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    uv_loop_init(&c->loop);
    config_redact_url(cfg->redis_url, c->url, sizeof c->url);
    redis_uv_options ro = {0};
    ro.connect_timeout_ms = connect_timeout_ms;
    ro.op_timeout_ms = op_timeout_ms;
    char *pw = NULL, err[300] = "";     /* redis.password_file's; TLS files */
    fleet_keys_use_url(cfg->redis_url); /* the key layout: tagged on a cluster */
    int rc = fleet_redis_security(cfg, &ro, &pw, err, sizeof err);
    if (rc == 0)
        rc = redis_uv_open(&c->loop, cfg->redis_url, &ro, &c->r);
    fleet_redis_security_done(&ro, pw);
    if (rc != 0) {
        snprintf(why, n, "%s", err[0] ? err : redis_uv_strerror(rc));
        c->r = NULL;
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        return -1;
    }
    return 0;
}

void ops_redis_close(ops_redis *c)
{
    if (c->r)
        redis_uv_close(c->r, on_closed, NULL);
    c->r = NULL;
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
}

void ops_redis_wait(ops_redis *c, const int *done)
{
    while (!*done)
        uv_run(&c->loop, UV_RUN_ONCE);
}

/* ---- commands ---- */

/* A call in flight: its reply or failure, filled by on_reply. */
typedef struct pending {
    int done;
    ops_reply v;
    ops_redis_err *e;
} pending;

static void on_reply(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    pending *p = ud;
    p->done = 1;
    p->e->status = status;
    if (status < 0) {
        snprintf(p->e->msg, sizeof p->e->msg, "%s", err ? err : redis_uv_strerror(status));
    } else if (reply->type == REDIS_REPLY_ERROR) {
        p->e->status = -1;
        snprintf(p->e->msg, sizeof p->e->msg, "redis: %s", reply->str);
    } else if (redis_value_copy(&p->v, reply, -1) != 0) {
        p->e->status = -1;
        snprintf(p->e->msg, sizeof p->e->msg, "out of memory");
    }
}

/* Drives the loop until p's reply is in (rc: what sending it returned). */
static int await_reply(ops_redis *c, pending *p, int rc, ops_reply *out)
{
    if (rc != 0) {
        p->e->status = rc;
        p->e->unsent = 1;
        snprintf(p->e->msg, sizeof p->e->msg, "redis: %s", redis_uv_strerror(rc));
        return -1;
    }
    ops_redis_wait(c, &p->done);
    if (p->e->status < 0) {
        ops_reply_free(&p->v);
        return -1;
    }
    *out = p->v;
    return 0;
}

int ops_redis_run(ops_redis *c, ops_reply *out, int argc, const char *const *argv,
                  const size_t *lens, ops_redis_err *e)
{
    pending p;
    memset(&p, 0, sizeof p);
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    p.e = e;
    return await_reply(c, &p, redis_uv_command_argv(c->r, on_reply, &p, argc, argv, lens), out);
}

int ops_redis_eval(ops_redis *c, ops_reply *out, int script, const char *key, int argc,
                   const char *const *argv, ops_redis_err *e)
{
    pending p;
    const char *kv[8];
    memset(&p, 0, sizeof p);
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    p.e = e;
    if (argc < 0 || argc + 1 > (int)(sizeof kv / sizeof kv[0]))
        return await_reply(c, &p, REDIS_UV_EINVAL, out);
    kv[0] = key;
    memcpy(kv + 1, argv, (size_t)argc * sizeof *argv);
    return await_reply(c, &p, redis_uv_eval(c->r, on_reply, &p, script, 1, argc + 1, kv, NULL),
                       out);
}
