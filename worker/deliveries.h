/* deliveries.h: a worker asks, before it runs a task, what the task's
 * delivery record says (FLEET_DELIVER_LUA in shared/wire/fleet_keys.h):
 * run it (this is delivery N), it is done already (its outcome is recorded:
 * do not run it again), or it was delivered max_deliveries times without an
 * outcome (dead-letter it), or its next delivery is its last (run it
 * alone, then ask again). The questions of one loop turn go in one script
 * call, as the completions do, on a connection of their own; a failed call
 * is asked again after a backoff.
 * Everything runs on the worker's loop. */
#ifndef MUTIRAO_DELIVERIES_H
#define MUTIRAO_DELIVERIES_H

#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "fleet_keys.h"
#include "redis_uv.h"

typedef struct deliveries deliveries;
typedef struct dlv_ask dlv_ask;

/* The answer: DLV_DONE, DLV_CLOSED, n > 0 (run it: delivery n) or -n
 * (dead-letter it: n deliveries ran it without an outcome). */
#define DLV_DONE 0
#define DLV_CLOSED INT64_MIN                      /* deliveries_close came first */
#define DLV_BUSY ((int64_t)FLEET_DELIVERY_BUSY)   /* running on another live worker: ask later */
#define DLV_ALONE ((int64_t)FLEET_DELIVERY_ALONE) /* its last delivery: ask again with alone */
typedef void (*dlv_answer_fn)(dlv_ask *a, int64_t answer);

/* One question, in the caller's memory until answered. */
struct dlv_ask {
    const char *id;       /* the task id */
    uint32_t max;         /* its max_deliveries (>= 1) */
    const char *pool;     /* its pool's name */
    int alone;            /* 1: the worker runs it with no other task beside it */
    dlv_answer_fn answer; /* called once, on the loop, never inside deliveries_ask */
    dlv_ask *next;        /* (the queue's) */
    int live;             /* (the deliveries': -1, or whether its latest worker is alive) */
};

/* The tagged layout has two more answers, handled here: FLEET_DELIVERY_ASK
 * (the latest worker's liveness is read from the pool's :active, then the
 * question is asked again with it) and FLEET_DELIVERY_REPLAY (a completed
 * task's outbox is pushed, outbox.h, then the answer is DLV_DONE). */
/* Opens a Redis connection of its own (cfg's redis.url, options ro): a
 * question waits for no completion batch pipelined before it. cfg and tag
 * (this worker process, "ID#INCARNATION") outlive the deliveries. NULL when out of memory or the
 * URL is bad. */
deliveries *deliveries_new(uv_loop_t *loop, const redis_uv_options *ro, const config *cfg,
                           const char *tag);
void deliveries_ask(deliveries *d, dlv_ask *a);
/* Answers every question not answered yet with DLV_CLOSED (now), then
 * frees d once its handles and calls in flight are gone. */
void deliveries_close(deliveries *d);

#endif
