/* deliveries.c: the delivery-record questions of a worker, batched per loop
 * turn (see deliveries.h). */
#include "deliveries.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "decimal.h"
#include "fleet_keys.h"
#include "wlog.h"

#define ASK_BATCH 256 /* questions per script call */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

struct deliveries {
    redis_uv *r;
    const config *cfg;
    const char *tag; /* this worker process, for the records' history */
    int script;
    dlv_ask *head, *tail; /* not sent yet */
    uv_check_t flush;     /* sends them after each loop turn */
    uv_timer_t retry;     /* after a failed call: nothing is sent until it fires */
    unsigned retry_ms;
    int closed, handles; /* handles still open */
    int calls;           /* script calls in flight */
    struct ask_call *inflight;
};

/* A script call in flight; its questions are answered by the reply unless
 * deliveries_close answered them first (orphan). */
typedef struct ask_call {
    deliveries *d;
    int n, orphan;
    struct ask_call *next;
    dlv_ask *a[];
} ask_call;

static void maybe_free(deliveries *d)
{
    if (d->closed && d->handles == 0 && d->calls == 0)
        free(d);
}

static void on_handle_closed(uv_handle_t *h)
{
    deliveries *d = h->data;
    d->handles--;
    maybe_free(d);
}

static void unlink_call(deliveries *d, ask_call *c)
{
    for (ask_call **pp = &d->inflight; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

static void requeue_front(deliveries *d, ask_call *c)
{
    for (int i = c->n - 1; i >= 0; i--) {
        c->a[i]->next = d->head;
        d->head = c->a[i];
        if (!d->tail)
            d->tail = c->a[i];
    }
}

static void on_retry(uv_timer_t *h)
{
    (void)h; /* the next loop turn's flush sends what waits */
}

static void failed(deliveries *d, ask_call *c, const char *why)
{
    wlog(WLOG_WARN, "cannot read %d task(s)' delivery records (%s); asking again in %u ms", c->n,
         why, d->retry_ms);
    requeue_front(d, c);
    uv_timer_start(&d->retry, on_retry, d->retry_ms, 0);
    d->retry_ms = d->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : d->retry_ms * 2;
}

/* 1 if the reply holds n comma-separated integers. */
static int answers_ok(const redisReply *r, int n)
{
    const char *p = r->str, *end = r->str + r->len;
    for (int i = 0; i < n; i++) {
        if (p < end && *p == '-')
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return 0;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (i + 1 < n && (p >= end || *p++ != ','))
            return 0;
    }
    return p == end;
}

static void on_reply(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    ask_call *c = ud;
    deliveries *d = c->d;
    unlink_call(d, c);
    d->calls--;
    if (c->orphan) {
        free(c);
        maybe_free(d);
        return;
    }
    if (status == 0 && reply && reply->type == REDIS_REPLY_STRING && answers_ok(reply, c->n)) {
        d->retry_ms = RETRY_MIN_MS;
        const char *p = reply->str;
        for (int i = 0; i < c->n; i++) {
            char *end;
            long long v = strtoll(p, &end, 10);
            p = end + 1; /* the comma */
            c->a[i]->answer(c->a[i], (int64_t)v);
        }
        free(c);
        return;
    }
    const char *why = err;
    if (status == 0)
        why = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply";
    failed(d, c, why ? why : "error");
    free(c);
}

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* One script call for up to ASK_BATCH waiting questions. */
static void send_one(deliveries *d)
{
    int n = 0;
    for (dlv_ask *a = d->head; a && n < ASK_BATCH; a = a->next)
        n++;
    int argc = 3 + 6 * n;
    ask_call *c = malloc(sizeof *c + (size_t)n * sizeof c->a[0]);
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    char(*num)[12] = malloc((size_t)n * sizeof *num);
    fleet_bits bits;
    int have = fleet_bits_init(&bits, n) == 0;
    if (!c || !argv || !lens || !num || !have) {
        free(c);
        free(argv);
        free(lens);
        free(num);
        if (have)
            fleet_bits_free(&bits);
        uv_timer_start(&d->retry, on_retry, d->retry_ms, 0);
        return;
    }
    char now[24], ttl[16];
    snprintf(now, sizeof now, "%" PRIu64, unix_ms());
    snprintf(ttl, sizeof ttl, "%d", FLEET_DELIVERY_TTL_S);
    argv[0] = now;
    argv[1] = d->tag;
    argv[2] = ttl;
    c->d = d;
    c->n = n;
    c->orphan = 0;
    for (int i = 0; i < n; i++) {
        dlv_ask *a = d->head;
        d->head = a->next;
        c->a[i] = a;
        /* by hand: snprintf costs more, once per task */
        *dec_put(num[i], a->max ? a->max : FLEET_MAX_DELIVERIES) = 0;
        if (fleet_bits_set(&bits, i, a->id, strlen(a->id)) != 0)
            have = 0;
        argv[3 + 6 * i] = a->id;
        argv[4 + 6 * i] = num[i];
        argv[5 + 6 * i] = a->pool;
        argv[6 + 6 * i] = a->alone ? "1" : "0";
        argv[7 + 6 * i] = bits.seen[i];
        argv[8 + 6 * i] = bits.bit[i];
    }
    if (!d->head)
        d->tail = NULL;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    /* without a task's bits its done check would differ: not sent */
    int rc =
        have ? redis_uv_eval(d->r, on_reply, c, d->script, 0, argc, argv, lens) : REDIS_UV_ENOMEM;
    free(argv);
    free(lens);
    free(num);
    fleet_bits_free(&bits);
    if (rc != 0) {
        failed(d, c, redis_uv_strerror(rc));
        free(c);
        return;
    }
    c->next = d->inflight;
    d->inflight = c;
    d->calls++;
}

static void on_flush(uv_check_t *h)
{
    deliveries *d = h->data;
    while (d->head && !uv_is_active((uv_handle_t *)&d->retry))
        send_one(d);
}

static void on_redis_closed(void *ud)
{
    deliveries *d = ud;
    d->handles--;
    maybe_free(d);
}

deliveries *deliveries_new(uv_loop_t *loop, const redis_uv_options *ro, const config *cfg,
                           const char *tag)
{
    deliveries *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    if (redis_uv_open(loop, cfg->redis_url, ro, &d->r) != 0) {
        free(d);
        return NULL;
    }
    d->cfg = cfg;
    d->tag = tag;
    d->retry_ms = RETRY_MIN_MS;
    d->script = redis_uv_script(d->r, FLEET_DELIVER_LUA, strlen(FLEET_DELIVER_LUA));
    uv_check_init(loop, &d->flush);
    d->flush.data = d;
    uv_check_start(&d->flush, on_flush);
    uv_timer_init(loop, &d->retry);
    d->retry.data = d;
    uv_unref((uv_handle_t *)&d->retry);
    d->handles = 3; /* flush, retry, the Redis client */
    return d;
}

void deliveries_ask(deliveries *d, dlv_ask *a)
{
    a->next = NULL;
    if (d->tail)
        d->tail->next = a;
    else
        d->head = a;
    d->tail = a;
}

void deliveries_close(deliveries *d)
{
    if (d->closed)
        return;
    d->closed = 1;
    for (ask_call *c = d->inflight; c; c = c->next) {
        if (c->orphan)
            continue;
        c->orphan = 1;
        for (int i = 0; i < c->n; i++)
            c->a[i]->answer(c->a[i], DLV_CLOSED);
    }
    while (d->head) {
        dlv_ask *a = d->head;
        d->head = a->next;
        a->answer(a, DLV_CLOSED);
    }
    d->tail = NULL;
    uv_close((uv_handle_t *)&d->flush, on_handle_closed);
    uv_close((uv_handle_t *)&d->retry, on_handle_closed);
    redis_uv_close(d->r, on_redis_closed, d);
}
