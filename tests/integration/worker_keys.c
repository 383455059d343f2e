/*
** worker_keys.c: the worker's Redis calls in the key layout of a URL (flat
** for redis://, tagged for redis+cluster://), against a real server:
** worker_keys_test.py runs it on a redis-server and on a 3-master cluster
** of its own. The delivery questions go through worker/deliveries.c (ASK
** and REPLAY included) and the outbox through worker/outbox.c; the
** completion, retry claim and dead-letter calls are made with the keys and
** arguments the worker gives them (consumer.c, retries.c, deadletters.c).
** Any error reply (CROSSSLOT, a key not in the script's slot) fails it.
** Usage: worker-keys-check URL. Exit 0 when every check passed.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "deliveries.h"
#include "fleet_keys.h"
#include "outbox.h"
#include "redis_uv.h"
#include "wlog.h"

static uv_loop_t *loop;
static redis_uv *r;
static int failures;
static char run[32]; /* this run's suffix of producer and pool names */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* ---- a reply, copied ---- */

typedef struct res {
    int done, type;
    long long integer;
    char *str; /* STRING, STATUS, ERROR (or the transport error) */
    size_t len;
    size_t n; /* ARRAY: its elements (strings, or integers as text) */
    char **el;
    size_t *ellen;
} res;

static void res_free(res *x)
{
    free(x->str);
    for (size_t i = 0; i < x->n; i++)
        free(x->el[i]);
    free(x->el);
    free(x->ellen);
    memset(x, 0, sizeof *x);
}

static char *dup_bytes(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static void on_res(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    res *x = ud;
    x->done = 1;
    if (status != 0) {
        x->type = REDIS_REPLY_ERROR;
        x->str = strdup(err ? err : "error");
        x->len = strlen(x->str);
        return;
    }
    x->type = reply->type;
    x->integer = reply->integer;
    if (reply->str) {
        x->str = dup_bytes(reply->str, reply->len);
        x->len = reply->len;
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        x->n = reply->elements;
        x->el = calloc(x->n + 1, sizeof *x->el);
        x->ellen = calloc(x->n + 1, sizeof *x->ellen);
        for (size_t i = 0; i < x->n; i++) {
            const redisReply *e = reply->element[i];
            char num[32];
            if (e->type == REDIS_REPLY_INTEGER) {
                snprintf(num, sizeof num, "%lld", e->integer);
                x->el[i] = strdup(num);
                x->ellen[i] = strlen(num);
            } else {
                x->el[i] = dup_bytes(e->str ? e->str : "", e->str ? e->len : 0);
                x->ellen[i] = e->str ? e->len : 0;
            }
        }
    }
}

static void on_tick(uv_timer_t *h)
{
    (void)h;
}

/* Runs the loop until *done (at most 10 s); a ticking timer wakes it, so
 * that a question asked outside the loop is sent by its next turn. */
static void wait_for(const int *done)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uint64_t end = unix_ms() + 10000;
    while (!*done && unix_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* A command (redis_uv_command's format), waited for; an error reply fails. */
static void cmd(res *x, const char *fmt, ...)
{
    memset(x, 0, sizeof *x);
    va_list ap;
    va_start(ap, fmt);
    int rc = redis_uv_commandv(r, on_res, x, fmt, ap);
    va_end(ap);
    CHECK(rc == 0, "command %s: %s", fmt, redis_uv_strerror(rc));
    if (rc == 0)
        wait_for(&x->done);
    CHECK(x->type != REDIS_REPLY_ERROR, "command %s: %s", fmt, x->str ? x->str : "no reply");
}

/* A script call (argv: the keys, then ARGV; C strings unless lens). */
static void eval(res *x, int script, int nkeys, int argc, const char **argv, const size_t *lens)
{
    memset(x, 0, sizeof *x);
    int rc = redis_uv_eval(r, on_res, x, script, nkeys, argc, argv, lens);
    CHECK(rc == 0, "eval: %s", redis_uv_strerror(rc));
    if (rc == 0)
        wait_for(&x->done);
    CHECK(x->type != REDIS_REPLY_ERROR, "eval: %s", x->str ? x->str : "no reply");
}

/* ---- delivery questions ---- */

typedef struct q {
    dlv_ask a;
    int64_t answer;
    int done;
    char id[96];
} q;

static void on_answer(dlv_ask *a, int64_t answer)
{
    q *x = (q *)a;
    x->answer = answer;
    x->done = 1;
}

static void ask_init(q *x, const char *id, const char *pool)
{
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    x->a.id = x->id;
    x->a.max = 3;
    x->a.pool = pool;
    x->a.answer = on_answer;
}

/* Asks n questions in one loop turn; waits for every answer. */
static void ask_all(deliveries *d, q *xs, int n)
{
    for (int i = 0; i < n; i++)
        deliveries_ask(d, &xs[i].a);
    for (int i = 0; i < n; i++)
        wait_for(&xs[i].done);
}

static int64_t ask_as(deliveries *d, const char *id, const char *pool, int alone)
{
    q x;
    ask_init(&x, id, pool);
    x.a.alone = alone;
    ask_all(d, &x, 1);
    CHECK(x.done, "task %s: no answer", id);
    return x.answer;
}

static int64_t ask(deliveries *d, const char *id, const char *pool)
{
    return ask_as(d, id, pool, 0);
}

/* ---- outbox ---- */

typedef struct pushed {
    int done, ok;
} pushed;

static void on_pushed(void *ud, int ok, const char *why)
{
    pushed *p = ud;
    p->done = 1;
    p->ok = ok;
    if (!ok)
        fprintf(stderr, "outbox: %s\n", why);
}

static int push(int script, const char *id)
{
    pushed p = {0};
    int rc = outbox_push(r, script, id, on_pushed, &p);
    if (rc != 0)
        return 0;
    wait_for(&p.done);
    return p.ok;
}

/* ---- the completion call, as consumer.c's send_batch makes it ---- */

/* One task completed (st "completed") by producer prod, with one
 * WaitGroup change of owner (NULL: none); or st "retry" with env and due.
 * Returns the task's answer (-1: none). */
static long long complete(int script, const char *id, const char *pool, const char *prod,
                          const char *st, const char *rec, const char *blob, const char *owner)
{
    fleet_bit b;
    int has = fleet_bit_of(id, strlen(id), &b) == 0;
    char pre[FLEET_KEY_MAX], wel[64];
    fleet_prefix_id(pre, id);
    if (owner)
        snprintf(wel, sizeof wel, "W%s/1 1", owner);
    /* its mutirao:task:ID:info, "STATE ATTEMPT SUBMITTED STARTED FINISHED WORKER POOL\n" */
    char info[200];
    snprintf(info, sizeof info, "%s 1 1 2 3 w1 %s\n", strcmp(st, "retry") ? st : "retrying", pool);
    const char *argv[] = {pre,
                          "3600",
                          "86400",
                          "600",
                          id,
                          pool,
                          prod,
                          st,
                          rec,
                          blob,
                          has ? b.seen : "",
                          has ? b.bit : "",
                          owner ? "1" : "0",
                          info,
                          owner,
                          wel};
    res x;
    eval(&x, script, 1, owner ? 16 : 14, argv, NULL);
    long long a = x.type == REDIS_REPLY_ARRAY && x.n == 1 ? strtoll(x.el[0], NULL, 10) : -1;
    res_free(&x);
    return a;
}

/* The list of producer p's notifications: its element i starts with s? */
static int list_has(const char *p, const char *s, size_t slen)
{
    char key[FLEET_KEY_MAX];
    fleet_key_notify(key, p);
    res x;
    cmd(&x, "LRANGE %s 0 -1", key);
    int found = 0;
    for (size_t i = 0; i < x.n; i++)
        if (x.ellen[i] >= slen && memcmp(x.el[i], s, slen) == 0)
            found++;
    res_free(&x);
    return found;
}

static long long exists(const char *key)
{
    res x;
    cmd(&x, "EXISTS %s", key);
    long long n = x.integer;
    res_free(&x);
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s REDIS_URL\n", argv[0]);
        return 2;
    }
    const char *url = argv[1];
    int tagged = fleet_keys_use_url(url);
    wlog_setup("check", WLOG_INFO);
    snprintf(run, sizeof run, "%x%x", (unsigned)getpid(), (unsigned)(unix_ms() & 0xffffff));
    loop = uv_default_loop();
    if (redis_uv_open(loop, url, NULL, &r) != 0) {
        fprintf(stderr, "cannot open %s\n", url);
        return 1;
    }
    config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.redis_url = (char *)url;
    deliveries *d1 = deliveries_new(loop, NULL, &cfg, "w1#aa01");
    deliveries *d2 = deliveries_new(loop, NULL, &cfg, "w2#bb02");
    int complete_s = redis_uv_script(r, FLEET_COMPLETE_LUA, strlen(FLEET_COMPLETE_LUA));
    int claim_s = redis_uv_script(r, FLEET_RETRY_CLAIM_LUA, strlen(FLEET_RETRY_CLAIM_LUA));
    int dead_s = redis_uv_script(r, FLEET_DEAD_LUA, strlen(FLEET_DEAD_LUA));
    int notify_s = outbox_script(r);
    char pa[40], pb[40], pc[40], pool[40], id[80], key[FLEET_KEY_MAX], val[64];
    snprintf(pa, sizeof pa, "pa%s", run);
    snprintf(pb, sizeof pb, "pb%s", run);
    snprintf(pc, sizeof pc, "pc%s", run);
    snprintf(pool, sizeof pool, "kp%s", run);
    res x;

    /* 1. deliveries: first, busy on a live worker (ASK in the tagged
     * layout), then counted once that worker's report is gone */
    snprintf(id, sizeof id, "%s:1:ab", pa);
    CHECK(ask(d1, id, pool) == 1, "first delivery");
    fleet_key_active(key, pool);
    snprintf(val, sizeof val, "1 %" PRIu64 " aa01", unix_ms());
    cmd(&x, "HSET %s w1 %s", key, val);
    res_free(&x);
    CHECK(ask(d2, id, pool) == DLV_BUSY, "busy on w1 (alive)");
    snprintf(val, sizeof val, "1 %" PRIu64 " ffff", unix_ms());
    cmd(&x, "HSET %s w1 %s", key, val);
    res_free(&x);
    CHECK(ask(d2, id, pool) == 2, "w1 restarted (another incarnation): delivery 2");
    CHECK(ask(d1, id, pool) == DLV_ALONE, "w2 not reported: the last delivery, alone");
    CHECK(ask_as(d1, id, pool, 1) == 3, "delivery 3, alone");
    CHECK(ask(d2, id, pool) == -3, "max_deliveries reached: dead-letter it");
    /* a batch over three slots (tagged: three calls) */
    q many[6];
    const char *prods[] = {pa, pb, pc, pa, pc, pb};
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "%s:%d:ab", prods[i], 100 + i);
        ask_init(&many[i], id, pool);
    }
    ask_all(d1, many, 6);
    for (int i = 0; i < 6; i++)
        CHECK(many[i].done && many[i].answer == 1, "batch task %s: %" PRId64, many[i].id,
              many[i].answer);

    /* 2. a completion with a WaitGroup change of another producer: the
     * tagged layout's outbox, pushed (answer 3), the flat one's push */
    snprintf(id, sizeof id, "%s:10:ab", pa);
    CHECK(ask(d1, id, pool) == 1, "delivery of %s", id);
    long long a = complete(complete_s, id, pool, pa, "completed", "REC10", "", pb);
    CHECK(a == (tagged ? 3 : 1), "completion answer %lld", a);
    char wel[128];
    int wlen = snprintf(wel, sizeof wel, "W%s/1 1", pb);
    wel[wlen] = 0; /* + NUL + "TASKID N" */
    if (tagged) {
        CHECK(list_has(pb, wel, (size_t)wlen + 1) == 0, "pushed before the outbox step");
        CHECK(push(notify_s, id), "outbox push");
        fleet_key_outbox(key, id);
        CHECK(exists(key) == 0, "outbox left after its push");
        CHECK(push(notify_s, id), "second outbox push (nothing left)");
    }
    CHECK(list_has(pb, wel, (size_t)wlen + 1) == 1, "%s's W element", pb);
    CHECK(list_has(pa, "RREC10", 6) == 1, "%s's R element", pa);
    fleet_key_task_info(key, id);
    cmd(&x, "GET %s", key);
    CHECK(x.str && strncmp(x.str, "completed 1 1 2 3 w1 ", 21) == 0, "task info: %s",
          x.str ? x.str : "none");
    res_free(&x);
    cmd(&x, "TTL %s", key);
    CHECK(x.integer > 0 && x.integer <= 600, "a completed task's info: TTL %lld", x.integer);
    res_free(&x);
    CHECK(ask(d2, id, pool) == DLV_DONE, "delivered again once done");

    /* 3. the replay: a completion whose outbox was left (a worker stopped
     * before pushing it) is pushed by the next delivery */
    snprintf(id, sizeof id, "%s:11:ab", pa);
    CHECK(ask(d1, id, pool) == 1, "delivery of %s", id);
    a = complete(complete_s, id, pool, pa, "completed", "REC11", "", pb);
    CHECK(a == (tagged ? 3 : 1), "completion answer %lld", a);
    CHECK(ask(d2, id, pool) == DLV_DONE, "replayed, then done");
    fleet_key_outbox(key, id);
    CHECK(exists(key) == 0, "outbox left after the replay");
    CHECK(list_has(pb, wel, (size_t)wlen + 1) == 2, "%s's W elements after the replay", pb);
    CHECK(ask(d2, id, pool) == DLV_DONE, "asked again: done");

    /* 4. a retry: (tagged) the worker's ZADD, then the completion (2); the
     * claim in the retry sets' slot, then the ZREM */
    snprintf(id, sizeof id, "%s:12:ab", pa);
    CHECK(ask(d1, id, pool) == 1, "delivery of %s", id);
    char member[128], due[32];
    snprintf(member, sizeof member, "%s NEXTENV", id);
    snprintf(due, sizeof due, "%" PRIu64, unix_ms() - 1);
    size_t kl = fleet_key_retries(key, 0);
    if (tagged) {
        const char *zv[] = {"ZADD", key, "NX", due, member};
        size_t zl[] = {4, kl, 2, strlen(due), strlen(member)};
        memset(&x, 0, sizeof x);
        redis_uv_command_argv(r, on_res, &x, 5, zv, zl);
        wait_for(&x.done);
        CHECK(x.type == REDIS_REPLY_INTEGER && x.integer == 1, "ZADD of the retry");
        res_free(&x);
    }
    a = complete(complete_s, id, pool, pa, "retry", "NEXTENV", due, NULL);
    CHECK(a == 2, "retry answer %lld", a);
    fleet_key_delivery(key, id);
    CHECK(exists(key) == 0, "delivery record kept after the retry");
    fleet_key_task_info(key, id);
    cmd(&x, "GET %s", key);
    CHECK(x.str && strncmp(x.str, "retrying 1 ", 11) == 0, "retry's task info: %s",
          x.str ? x.str : "none");
    res_free(&x);
    cmd(&x, "TTL %s", key);
    CHECK(x.integer > 600 && x.integer <= 3600, "a retry's info: TTL %lld (the result's)",
          x.integer);
    res_free(&x);
    char pre[FLEET_KEY_MAX], now[32];
    fleet_prefix_retries(pre);
    snprintf(now, sizeof now, "%" PRIu64, unix_ms());
    const char *cv[] = {pre, now, "30000", "100"};
    eval(&x, claim_s, 1, 4, cv, NULL);
    int claimed = 0;
    for (size_t i = 0; i < x.n; i++)
        claimed += strcmp(x.el[i], member) == 0;
    CHECK(claimed == 1, "the retry claimed (%zu member(s))", x.n);
    res_free(&x);
    kl = fleet_key_retries(key, 0);
    cmd(&x, "ZREM %s %s", key, member);
    CHECK(x.integer == 1, "ZREM of the claimed retry");
    res_free(&x);

    /* 5. a dead letter: KEYS[1] the pool's slot, the delivery record
     * passed in the tagged layout */
    snprintf(id, sizeof id, "%s:13:ab", pb);
    CHECK(ask(d1, id, pool) == 1, "delivery of %s", id);
    char *rec = NULL;
    if (tagged) {
        fleet_key_delivery(key, id);
        cmd(&x, "GET %s", key);
        rec = x.str ? strdup(x.str) : strdup("");
        res_free(&x);
    }
    fleet_prefix_pool(pre, pool);
    const char *dv[] = {pre, now, id, pool, "ENV13", "", rec};
    eval(&x, dead_s, 1, tagged ? 7 : 6, dv, NULL);
    CHECK(x.type == REDIS_REPLY_STRING && strncmp(x.str, "1 ", 2) == 0 &&
              strstr(x.str, "worker w1 ended without recording an outcome (delivery 1)"),
          "dead letter record: %s", x.str ? x.str : "none");
    res_free(&x);
    free(rec);
    fleet_key_dead(key, pool);
    cmd(&x, "HEXISTS %s %s", key, id);
    CHECK(x.integer == 1, "dead letter stored");
    res_free(&x);
    fleet_key_stats(key, pool);
    cmd(&x, "HGET %s dead_lettered", key);
    CHECK(x.str && strcmp(x.str, "1") == 0, "dead_lettered counted");
    res_free(&x);

    deliveries_close(d1);
    deliveries_close(d2);
    redis_uv_close(r, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("%s layout (%s): %s\n", tagged ? "tagged" : "flat", url,
           failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
