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
#include "outbox.h"
#include "wlog.h"

#define ASK_BATCH 256 /* questions per script call */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

struct deliveries {
    redis_uv *r;
    const config *cfg;
    const char *tag; /* this worker process, for the records' history */
    int script;
    int notify;           /* FLEET_NOTIFY_LUA (outbox.h) */
    dlv_ask *head, *tail; /* not sent yet */
    uv_check_t flush;     /* sends them after each loop turn */
    uv_timer_t retry;     /* after a failed call: nothing is sent until it fires */
    unsigned retry_ms;
    int closed, handles; /* handles still open */
    int calls;           /* script calls in flight */
    struct ask_call *inflight;
};

/* A script call in flight; its questions are answered by the reply unless
 * deliveries_close answered them first (orphan). Also the steps of one
 * question (n = 1) after an ASK or a REPLAY answer (tagged layout). */
typedef struct ask_call {
    deliveries *d;
    int n, orphan;
    struct ask_call *next;
    char lw[256]; /* ASK: the latest worker, "ID#INCARNATION" */
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
        c->a[i]->live = -1; /* read again if asked */
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

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ---- the steps of one question after ASK or REPLAY (tagged layout) ---- */

/* A call of one question's own, in d->inflight like a script call. */
static ask_call *step_new(deliveries *d, dlv_ask *a)
{
    ask_call *c = malloc(sizeof *c + sizeof c->a[0]);
    if (!c)
        return NULL;
    c->d = d;
    c->n = 1;
    c->orphan = 0;
    c->lw[0] = 0;
    c->a[0] = a;
    c->next = d->inflight;
    d->inflight = c;
    d->calls++;
    return c;
}

/* The steps are over (answered, asked again, or orphaned by a close). */
static void step_end(ask_call *c)
{
    deliveries *d = c->d;
    unlink_call(d, c);
    d->calls--;
    free(c);
    maybe_free(d);
}

/* A step failed: the question waits for the backoff, then starts again. */
static void step_failed(ask_call *c, const char *why)
{
    if (!c->orphan)
        failed(c->d, c, why);
    step_end(c);
}

/* The question goes back to the front with what was learnt (a->live). */
static void ask_again(deliveries *d, dlv_ask *a)
{
    a->next = d->head;
    d->head = a;
    if (!d->tail)
        d->tail = a;
}

/* The flat script's alive(): the pool's :active report of worker id (the
 * latest worker's "ID#INC", lw) has the same incarnation, a count > 0 and
 * is fresher than FLEET_ACTIVE_STALE_MS. */
static int alive(const char *inc, const char *report, uint64_t now)
{
    char *e;
    unsigned long long n = strtoull(report, &e, 10);
    if (e == report || *e != ' ')
        return 0;
    const char *m = e + 1;
    unsigned long long ms = strtoull(m, &e, 10);
    if (e == m || *e != ' ' || strcmp(e + 1, inc) != 0)
        return 0;
    return n > 0 && (int64_t)now - (int64_t)ms < FLEET_ACTIVE_STALE_MS;
}

static void on_active(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    ask_call *c = ud;
    if (c->orphan) {
        step_end(c);
        return;
    }
    if (status != 0 || reply->type == REDIS_REPLY_ERROR) {
        step_failed(c, status != 0 ? err : reply->str);
        return;
    }
    const char *inc = strrchr(c->lw, '#') + 1; /* checked by on_record */
    c->a[0]->live = reply->type == REDIS_REPLY_STRING && alive(inc, reply->str, unix_ms());
    ask_again(c->d, c->a[0]);
    step_end(c);
}

/* lw: the worker of the last "WORKER@MS" of a delivery record "COUNT FIRST
 * LAST HISTORY" (the flat script's match), if it is "ID#HEX". 0, or -1. */
static int latest_worker(const char *rec, size_t len, char *lw, size_t lwlen)
{
    const char *end = rec + len, *p = rec;
    for (int f = 0; f < 3; f++) { /* COUNT FIRST LAST */
        const char *q = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == q || p >= end || *p != ' ')
            return -1;
        p++;
    }
    const char *tok = end;
    while (tok > p && tok[-1] != ' ')
        tok--;
    const char *at = end;
    while (at > tok && at[-1] != '@')
        at--;
    if (at <= tok + 1 || at == end || (size_t)(at - 1 - tok) >= lwlen)
        return -1;
    for (const char *d = at; d < end; d++)
        if (*d < '0' || *d > '9')
            return -1;
    memcpy(lw, tok, (size_t)(at - 1 - tok));
    lw[at - 1 - tok] = 0;
    /* "ID#INCARNATION": the incarnation is hex */
    char *h = strrchr(lw, '#');
    if (!h || h == lw || !h[1] || strspn(h + 1, "0123456789abcdefABCDEF") != strlen(h + 1))
        return -1;
    return 0;
}

static void on_record(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    ask_call *c = ud;
    if (c->orphan) {
        step_end(c);
        return;
    }
    if (status != 0 || reply->type == REDIS_REPLY_ERROR) {
        step_failed(c, status != 0 ? err : reply->str);
        return;
    }
    dlv_ask *a = c->a[0];
    if (reply->type != REDIS_REPLY_STRING ||
        latest_worker(reply->str, reply->len, c->lw, sizeof c->lw) != 0) {
        a->live = 0; /* no record (any more), or no worker in it */
        ask_again(c->d, a);
        step_end(c);
        return;
    }
    char key[FLEET_KEY_MAX];
    fleet_key_active(key, a->pool);
    char *h = strrchr(c->lw, '#');
    int rc = redis_uv_command(c->d->r, on_active, c, "HGET %s %b", key, c->lw, (size_t)(h - c->lw));
    if (rc != 0)
        step_failed(c, redis_uv_strerror(rc));
}

/* ASK: reads the task's delivery record, then its latest worker's report
 * in the pool's :active, and asks again with live "1" or "0". */
static void probe(deliveries *d, dlv_ask *a)
{
    ask_call *c = step_new(d, a);
    char key[FLEET_KEY_MAX];
    if (c)
        fleet_key_delivery(key, a->id);
    int rc = c ? redis_uv_command(d->r, on_record, c, "GET %s", key) : REDIS_UV_ENOMEM;
    if (rc != 0 && c)
        step_failed(c, redis_uv_strerror(rc));
    else if (rc != 0) { /* out of memory: asked again after the backoff */
        a->live = -1;
        ask_again(d, a);
        uv_timer_start(&d->retry, on_retry, d->retry_ms, 0);
    }
}

static void on_replayed(void *ud, int ok, const char *why)
{
    ask_call *c = ud;
    if (c->orphan) {
        step_end(c);
        return;
    }
    if (!ok) {
        step_failed(c, why);
        return;
    }
    wlog(WLOG_INFO, "task=%s: pushed the notifications its completion left", c->a[0]->id);
    dlv_ask *a = c->a[0];
    step_end(c);
    a->answer(a, DLV_DONE);
}

/* REPLAY: the task is done, its outbox is left: pushed, then answered as
 * done. */
static void replay(deliveries *d, dlv_ask *a)
{
    ask_call *c = step_new(d, a);
    int rc = c ? outbox_push(d->r, d->notify, a->id, on_replayed, c) : REDIS_UV_ENOMEM;
    if (rc != 0 && c)
        step_failed(c, redis_uv_strerror(rc));
    else if (rc != 0) {
        a->live = -1;
        ask_again(d, a);
        uv_timer_start(&d->retry, on_retry, d->retry_ms, 0);
    }
}

/* ---- the batched script calls ---- */

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
            if (v == FLEET_DELIVERY_ASK)
                probe(d, c->a[i]);
            else if (v == FLEET_DELIVERY_REPLAY)
                replay(d, c->a[i]);
            else
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

/* 1 when a's task has the tag (len bytes) of the call's slot. */
static int in_slot(const dlv_ask *a, const char *tag, size_t len)
{
    return fleet_id_tag(a->id, strlen(a->id)) == len && memcmp(a->id, tag, len) == 0;
}

/* One script call for up to ASK_BATCH waiting questions of one slot: in
 * the flat layout the first ones, in the tagged one those of the first's
 * slot (the others wait for the next call). */
static void send_one(deliveries *d)
{
    int tagged = fleet_keys_tagged();
    const char *tag = d->head->id;
    size_t taglen = tagged ? fleet_id_tag(tag, strlen(tag)) : 0;
    int n = 0;
    for (dlv_ask *a = d->head; a && n < ASK_BATCH; a = a->next)
        if (!tagged || in_slot(a, tag, taglen))
            n++;
    int argc = 4 + 7 * n;
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
    char pre[FLEET_KEY_MAX], now[24], ttl[16];
    fleet_prefix(pre, tag, taglen); /* KEYS[1] (flat: "mutirao:") */
    snprintf(now, sizeof now, "%" PRIu64, unix_ms());
    snprintf(ttl, sizeof ttl, "%d", FLEET_DELIVERY_TTL_S);
    argv[0] = pre;
    argv[1] = now;
    argv[2] = d->tag;
    argv[3] = ttl;
    c->d = d;
    c->n = n;
    c->orphan = 0;
    /* the chosen questions leave the queue; the others keep their order */
    dlv_ask **pp = &d->head, *last = NULL;
    for (int i = 0; i < n;) {
        dlv_ask *a = *pp;
        if (tagged && !in_slot(a, tag, taglen)) {
            last = a;
            pp = &a->next;
            continue;
        }
        *pp = a->next;
        c->a[i] = a;
        /* by hand: snprintf costs more, once per task */
        *dec_put(num[i], a->max ? a->max : FLEET_MAX_DELIVERIES) = 0;
        if (fleet_bits_set(&bits, i, a->id, strlen(a->id)) != 0)
            have = 0;
        const char **v = argv + 4 + 7 * i;
        v[0] = a->id;
        v[1] = num[i];
        v[2] = a->pool;
        v[3] = a->alone ? "1" : "0";
        v[4] = bits.seen[i];
        v[5] = bits.bit[i];
        v[6] = a->live < 0 ? "" : a->live ? "1" : "0"; /* what an ASK learnt */
        i++;
    }
    if (!*pp)
        d->tail = last;
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    /* without a task's bits its done check would differ: not sent */
    int rc =
        have ? redis_uv_eval(d->r, on_reply, c, d->script, 1, argc, argv, lens) : REDIS_UV_ENOMEM;
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
    d->notify = outbox_script(d->r);
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
    a->live = -1; /* unknown: the flat script reads it, the tagged one answers ASK */
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
