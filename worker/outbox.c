/* outbox.c: a completed task's notifications for other slots, pushed (see
 * outbox.h). */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_keys.h"

typedef struct ob_op {
    redis_uv *r;
    int script;
    outbox_done_fn done;
    void *ud;
    int pending, failed; /* FLEET_NOTIFY_LUA calls in flight; one failed */
    char why[200];
    char key[FLEET_KEY_MAX]; /* the outbox */
    redisReply *last;        /* the last owner's pairs, pushed once the others are in */
    char id[];
} ob_op;

static void finish(ob_op *op, int ok, const char *why)
{
    op->done(op->ud, ok, why);
    if (op->last)
        freeReplyObject(op->last);
    free(op);
}

static int push_owners(ob_op *op, const redisReply *reply, int which);

/* NULL when the call succeeded with a reply of type type, else why not. */
static const char *failure(int status, const redisReply *reply, const char *err, int type)
{
    if (status != 0)
        return err ? err : "error";
    if (reply->type == REDIS_REPLY_ERROR)
        return reply->str;
    return reply->type == type ? NULL : "unexpected reply";
}

static void on_deleted(redis_uv *cli, int status, const redisReply *reply, const char *err,
                       void *ud)
{
    (void)cli;
    const char *why = failure(status, reply, err, REDIS_REPLY_INTEGER);
    finish(ud, !why, why);
}

/* Every owner has its elements: the outbox goes. */
static void del(ob_op *op)
{
    int rc = redis_uv_command(op->r, on_deleted, op, "DEL %s", op->key);
    if (rc != 0)
        finish(op, 0, redis_uv_strerror(rc));
}

static void on_notified(redis_uv *cli, int status, const redisReply *reply, const char *err,
                        void *ud)
{
    (void)cli;
    ob_op *op = ud;
    const char *why = failure(status, reply, err, REDIS_REPLY_INTEGER);
    if (why && !op->failed) {
        op->failed = 1;
        snprintf(op->why, sizeof op->why, "%s", why);
    }
    if (--op->pending > 0)
        return;
    if (op->failed) {
        finish(op, 0, op->why);
        return;
    }
    if (op->last) {
        /* the others have theirs: now the last owner's (its outcome) */
        redisReply *last = op->last;
        op->last = NULL;
        int n = push_owners(op, last, 1);
        freeReplyObject(last);
        if (n > 0)
            return;
        if (op->failed) {
            finish(op, 0, op->why);
            return;
        }
    }
    del(op);
}

/* One FLEET_NOTIFY_LUA call per owner of reply's pairs, its elements in
 * the outbox's order: which 0, the owners but the last pair's; 1, only
 * the last pair's. Returns the calls sent (op->pending counts them);
 * failures set op->failed. */
static int push_owners(ob_op *op, const redisReply *reply, int which)
{
    size_t n = reply->elements / 2;
    const redisReply *lo = reply->element[2 * (n - 1)]; /* the last owner */
    char *used = calloc(n, 1);
    const char **argv = malloc((n + 4) * sizeof *argv);
    size_t *lens = malloc((n + 4) * sizeof *lens);
    char pre[FLEET_KEY_MAX], nttl[16];
    int sent = 0;
    snprintf(nttl, sizeof nttl, "%d", FLEET_NOTIFY_TTL_S);
    for (size_t i = 0; i < n && used && argv && lens; i++) {
        const redisReply *o = reply->element[2 * i];
        int is_last = o->len == lo->len && memcmp(o->str, lo->str, lo->len) == 0;
        if (used[i] || is_last != which)
            continue;
        lens[0] = fleet_prefix(pre, o->str, o->len);
        argv[0] = pre;
        argv[1] = o->str;
        lens[1] = o->len;
        argv[2] = nttl;
        lens[2] = strlen(nttl);
        argv[3] = op->id;
        lens[3] = strlen(op->id);
        int k = 4;
        for (size_t j = i; j < n; j++) {
            const redisReply *oj = reply->element[2 * j];
            if (oj->len != o->len || memcmp(oj->str, o->str, o->len) != 0)
                continue;
            used[j] = 1;
            argv[k] = reply->element[2 * j + 1]->str;
            lens[k++] = reply->element[2 * j + 1]->len;
        }
        int rc = lens[0] ? redis_uv_eval(op->r, on_notified, op, op->script, 1, k, argv, lens)
                         : REDIS_UV_EINVAL;
        if (rc == 0) {
            op->pending++;
            sent++;
        } else if (!op->failed) {
            op->failed = 1;
            snprintf(op->why, sizeof op->why, "%s", redis_uv_strerror(rc));
        }
    }
    if (!used || !argv || !lens) {
        op->failed = 1;
        snprintf(op->why, sizeof op->why, "out of memory");
    }
    free(used);
    free(argv);
    free(lens);
    return sent;
}

/* A copy of the reply's strings as an array reply (hiredis frees the
 * original after the callback). NULL without memory. */
static redisReply *copy_pairs(const redisReply *reply)
{
    redisReply *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->type = REDIS_REPLY_ARRAY;
    c->element = calloc(reply->elements, sizeof *c->element);
    if (!c->element) {
        free(c);
        return NULL;
    }
    c->elements = reply->elements;
    for (size_t i = 0; i < reply->elements; i++) {
        redisReply *e = calloc(1, sizeof *e);
        char *str = e ? malloc(reply->element[i]->len + 1) : NULL;
        if (!str) {
            free(e);
            c->elements = i;
            freeReplyObject(c);
            return NULL;
        }
        memcpy(str, reply->element[i]->str, reply->element[i]->len);
        str[reply->element[i]->len] = 0;
        e->type = REDIS_REPLY_STRING;
        e->str = str;
        e->len = reply->element[i]->len;
        c->element[i] = e;
    }
    return c;
}

/* The outbox read: the other owners' elements are pushed first, the last
 * pair's owner's (the task's own producer, its outcome last) once they
 * are in, so that a producer has the task's changes of its WaitGroups
 * before the task's producer has its outcome (a task awaiting it may end
 * only then). */
static void on_range(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    ob_op *op = ud;
    const char *why = failure(status, reply, err, REDIS_REPLY_ARRAY);
    if (!why && reply->elements % 2)
        why = "an outbox of odd length";
    for (size_t i = 0; !why && i < reply->elements; i++)
        if (reply->element[i]->type != REDIS_REPLY_STRING)
            why = "an outbox element that is not a string";
    if (why) {
        finish(op, 0, why);
        return;
    }
    if (reply->elements == 0) { /* pushed and deleted before */
        del(op);
        return;
    }
    if (!(op->last = copy_pairs(reply))) {
        finish(op, 0, "out of memory");
        return;
    }
    if (push_owners(op, reply, 0) > 0)
        return; /* on_notified goes on */
    if (op->failed) {
        finish(op, 0, op->why);
        return;
    }
    /* only the last owner's elements */
    redisReply *last = op->last;
    op->last = NULL;
    int n = push_owners(op, last, 1);
    freeReplyObject(last);
    if (n > 0)
        return;
    if (op->failed)
        finish(op, 0, op->why);
    else
        del(op);
}

int outbox_script(redis_uv *r)
{
    return redis_uv_script(r, FLEET_NOTIFY_LUA, strlen(FLEET_NOTIFY_LUA));
}

int outbox_push(redis_uv *r, int script, const char *id, outbox_done_fn done, void *ud)
{
    size_t idlen = strlen(id);
    ob_op *op = calloc(1, sizeof *op + idlen + 1);
    if (!op)
        return REDIS_UV_ENOMEM;
    op->r = r;
    op->script = script;
    op->done = done;
    op->ud = ud;
    memcpy(op->id, id, idlen + 1);
    fleet_key_outbox(op->key, id);
    int rc = redis_uv_command(r, on_range, op, "LRANGE %s 0 -1", op->key);
    if (rc != 0)
        free(op);
    return rc;
}
