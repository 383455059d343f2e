/* fleet_reconcile.c: the look-up of tasks whose notification did not come
 * (see fleet_reconcile.h). */
#include "fleet_reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "envelope.h"
#include "fleet_keys.h"

struct frc {
    redis_uv *r;
    int script; /* FLEET_REMARK_LUA */
    int lookup; /* FLEET_LOOKUP_LUA */
    char ttl[16];
    const frc_ops *ops;
    void *ud;
    mlist pending;
    int refs;     /* 1 for the VM, 1 per reply due */
    int closed;   /* the VM is gone: replies only free */
    int inflight; /* a round's FLEET_LOOKUP_LUA call is out */
    frc_stats st;
};

/* The ids of one round's lookup, or of one call that writes markers. */
struct frc_ids {
    frc *c;
    int n, cap;
    char id[][ENVELOPE_ID_MAX + 1];
};

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

frc *frc_new(redis_uv *r, int ttl_s, const frc_ops *ops, void *ud)
{
    frc *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->r = r;
    c->script = redis_uv_script(r, FLEET_REMARK_LUA, strlen(FLEET_REMARK_LUA));
    c->lookup = redis_uv_script(r, FLEET_LOOKUP_LUA, strlen(FLEET_LOOKUP_LUA));
    snprintf(c->ttl, sizeof c->ttl, "%d", ttl_s);
    c->ops = ops;
    c->ud = ud;
    c->refs = 1;
    mlist_init(&c->pending);
    return c;
}

static void frc_unref(frc *c)
{
    if (--c->refs == 0)
        free(c);
}

void frc_free(frc *c)
{
    if (!c)
        return;
    c->closed = 1;
    while (!mlist_empty(&c->pending))
        mlist_remove(c->pending.next);
    frc_unref(c);
}

void frc_add(frc *c, frc_task *t, uint64_t now_ms)
{
    t->touched_ms = now_ms;
    t->marking = 1;
    t->gone = 0;
    mlist_push_back(&c->pending, &t->node);
}

void frc_soon(frc *c, frc_task *t)
{
    if (!mlist_linked(&t->node))
        return;
    mlist_remove(&t->node);
    t->touched_ms = 0; /* the list stays in touched order */
    mlist_push_front(&c->pending, &t->node);
    frc_tick(c, unix_ms());
}

void frc_remove(frc *c, frc_task *t)
{
    (void)c;
    if (mlist_linked(&t->node))
        mlist_remove(&t->node);
}

frc_ids *frc_ids_new(frc *c, int cap)
{
    frc_ids *b = malloc(sizeof *b + (size_t)(cap > 0 ? cap : 1) * sizeof b->id[0]);
    if (!b)
        return NULL;
    b->c = c;
    b->n = 0;
    b->cap = cap;
    c->refs++;
    return b;
}

void frc_ids_add(frc_ids *b, const char *id)
{
    if (b->n < b->cap) {
        size_t n = strnlen(id, sizeof b->id[0] - 1);
        memcpy(b->id[b->n], id, n);
        b->id[b->n++][n] = '\0';
    }
}

void frc_ids_discard(frc_ids *b)
{
    frc *c = b->c;
    free(b);
    frc_unref(c);
}

void frc_get_stats(const frc *c, frc_stats *out)
{
    *out = c->st;
}

void frc_on_marked(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    (void)status;
    (void)reply;
    (void)err;
    frc_ids *b = ud;
    frc *c = b->c;
    if (!c->closed)
        for (int i = 0; i < b->n; i++) {
            frc_task *t = c->ops->lookup(c->ud, b->id[i]);
            if (t)
                t->marking = 0; /* written, or not: the next look decides */
        }
    free(b);
    frc_unref(c);
}

/* Writes the markers of the tasks just submitted again. */
static void remark(frc *c, frc_ids *b)
{
    const char **argv = malloc((size_t)(2 * b->n + 2) * sizeof *argv);
    fleet_bits bits;
    char pre[FLEET_KEY_MAX]; /* KEYS[1]: the producer's tasks are all in its slot */
    int rc = fleet_bits_init(&bits, b->n);
    if (argv && rc == 0 && b->n > 0) {
        fleet_prefix_id(pre, b->id[0]);
        argv[0] = pre;
        argv[1] = c->ttl;
        for (int i = 0; i < b->n && rc == 0; i++) {
            rc = fleet_bits_set(&bits, i, b->id[i], strlen(b->id[i]));
            argv[2 + 2 * i] = bits.sub[i];
            argv[3 + 2 * i] = bits.bit[i];
        }
        if (rc == 0)
            rc = redis_uv_eval(c->r, frc_on_marked, b, c->script, 1, 2 * b->n + 2, argv, NULL);
    } else {
        rc = -1;
    }
    free(argv);
    if (bits.n)
        fleet_bits_free(&bits);
    if (rc == 0)
        return;
    for (int i = 0; i < b->n; i++) {
        frc_task *t = c->ops->lookup(c->ud, b->id[i]);
        if (t)
            t->marking = 0;
    }
    frc_ids_discard(b);
}

static void on_round(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    (void)err;
    frc_ids *b = ud;
    frc *c = b->c;
    c->inflight = 0;
    if (c->closed || status < 0 || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != (size_t)b->n * 2) {
        frc_ids_discard(b);
        return; /* the next tick tries again */
    }
    c->st.rounds++;
    int news = 0;
    frc_ids *again = NULL;
    for (int i = 0; i < b->n; i++) {
        frc_task *t = c->ops->lookup(c->ud, b->id[i]);
        if (!t)
            continue; /* finished meanwhile */
        c->st.looked++;
        const redisReply *rec = reply->element[2 * i], *wg = reply->element[2 * i + 1];
        long long st = rec->type == REDIS_REPLY_INTEGER ? rec->integer : 1;
        if (rec->type == REDIS_REPLY_STRING) {
            int has_wg = wg->type == REDIS_REPLY_STRING && wg->len > 0;
            if (c->ops->found(c->ud, t, rec->str, rec->len, has_wg ? wg->str : NULL,
                              has_wg ? wg->len : 0) != 0)
                continue; /* not used: looked at again after FRC_AFTER_MS */
            c->st.found++;
            news++;
        } else if (st == 2) {
            if (++t->gone >= FRC_GONE_LOOKS) {
                c->st.gone++;
                c->ops->gone(c->ud, t);
            }
        } else if (st == 0 && !t->marking) {
            if (c->ops->lost(c->ud, t) != 0)
                continue;
            c->st.lost++;
            news++;
            t->marking = 1;
            if (!again)
                again = frc_ids_new(c, b->n);
            if (again)
                frc_ids_add(again, b->id[i]);
            else
                t->marking = 0;
        }
    }
    free(b); /* its reference on c goes at the end */
    if (again)
        remark(c, again);
    /* a round that found something, or a task to read at once: the next
     * round now, not in a second */
    if (!c->closed &&
        (news > 0 || (!mlist_empty(&c->pending) &&
                      mlist_first_entry(&c->pending, frc_task, node)->touched_ms == 0)))
        frc_tick(c, unix_ms());
    frc_unref(c);
}

void frc_tick(frc *c, uint64_t now_ms)
{
    if (c->closed || c->inflight || mlist_empty(&c->pending))
        return;
    frc_ids *b = NULL;
    int n = 0;
    while (n < FRC_BATCH && !mlist_empty(&c->pending)) {
        frc_task *t = mlist_first_entry(&c->pending, frc_task, node);
        if (t->touched_ms + FRC_AFTER_MS > now_ms)
            break;
        /* looked at now: to the back of the list */
        mlist_remove(&t->node);
        t->touched_ms = now_ms;
        mlist_push_back(&c->pending, &t->node);
        if (!b && !(b = frc_ids_new(c, FRC_BATCH)))
            return;
        frc_ids_add(b, t->id);
        n++;
    }
    if (n == 0)
        return;
    const char **argv = malloc((size_t)(4 * n + 1) * sizeof *argv);
    fleet_bits bits;
    char pre[FLEET_KEY_MAX]; /* KEYS[1]: the producer's tasks are all in its slot */
    int rc = fleet_bits_init(&bits, n);
    if (argv && rc == 0) {
        fleet_prefix_id(pre, b->id[0]);
        argv[0] = pre;
        for (int i = 0; i < n && rc == 0; i++) {
            rc = fleet_bits_set(&bits, i, b->id[i], strlen(b->id[i]));
            fleet_lookup_args(b->id[i], &bits, i, argv + 1 + 4 * i);
        }
        if (rc == 0)
            rc = redis_uv_eval(c->r, on_round, b, c->lookup, 1, 4 * n + 1, argv, NULL);
    } else {
        rc = -1;
    }
    free(argv);
    if (bits.n)
        fleet_bits_free(&bits);
    if (rc != 0) {
        frc_ids_discard(b);
        return;
    }
    c->inflight = 1;
}
