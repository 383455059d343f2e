/* fleet_seen.c: whether workers run tasks of a pool now (see fleet_seen.h). */
#include "fleet_seen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "fleet_keys.h"

typedef struct seen_req {
    fleet_seen_cb cb;
    void *ud;
    int left, n, status, closed;
    int seen[FLEET_SEEN_MAX];
    char err[200];
} seen_req;

typedef struct seen_slot {
    seen_req *q;
    int i;
} seen_slot;

static uint64_t unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static void seen_done(seen_req *q)
{
    if (--q->left > 0)
        return;
    if (!q->closed)
        q->cb(q->ud, q->status, q->status < 0 ? q->err : NULL, q->seen, q->n);
    free(q);
}

/* HGETALL mutirao:pool:NAME:active: worker id -> "COUNT MS". */
static void on_active(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    seen_slot *s = ud;
    seen_req *q = s->q;
    if (status == REDIS_UV_ECLOSED) {
        q->closed = 1;
    } else if (status < 0 || reply->type == REDIS_REPLY_ERROR) {
        q->status = status < 0 ? status : -1;
        snprintf(q->err, sizeof q->err, "%s", status < 0 ? err : reply->str);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        uint64_t now = unix_ms();
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            const char *val = reply->element[i + 1]->str;
            const char *sp = val ? strchr(val, ' ') : NULL;
            unsigned long long at = sp ? strtoull(sp + 1, NULL, 10) : 0;
            if (at + FLEET_ACTIVE_STALE_MS >= now)
                q->seen[s->i] = 1;
        }
    }
    free(s);
    seen_done(q);
}

int fleet_seen_check(redis_uv *r, const char *const *pools, int n, fleet_seen_cb cb, void *ud)
{
    if (n < 1 || n > FLEET_SEEN_MAX || !cb)
        return REDIS_UV_EINVAL;
    seen_req *q = calloc(1, sizeof *q);
    if (!q)
        return REDIS_UV_ENOMEM;
    q->cb = cb;
    q->ud = ud;
    q->n = n;
    q->left = 1; /* until every command is sent */
    int sent = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        seen_slot *s = malloc(sizeof *s);
        char key[FLEET_KEY_MAX];
        fleet_key_active(key, pools[i]);
        if (!s) {
            rc = REDIS_UV_ENOMEM;
            break;
        }
        s->q = q;
        s->i = i;
        if ((rc = redis_uv_command(r, on_active, s, "HGETALL %s", key)) != 0) {
            free(s);
            break;
        }
        q->left++;
        sent++;
    }
    if (sent == 0) {
        free(q);
        return rc ? rc : REDIS_UV_EINVAL;
    }
    if (rc != 0) {
        q->status = rc;
        snprintf(q->err, sizeof q->err, "%s", redis_uv_strerror(rc));
    }
    seen_done(q); /* never the last one here: replies come from the loop */
    return 0;
}
