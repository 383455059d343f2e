/* deadletters.h: what a worker does with a task delivered max_deliveries
 * times without an outcome (its worker died each time): the envelope is
 * produced to the dead-letter topic (topic.dead, keyed by task id), then
 * stored for operators with FLEET_DEAD_LUA (shared/wire/fleet_keys.h: the
 * pool's dead hashes, dead_lettered + 1), whose reply, the dead letter's
 * record, goes to the caller, which records the task's failure through the
 * normal completion path. A step that fails is tried again after a backoff.
 * Everything runs on the worker's loop. */
#ifndef MUTIRAO_DEADLETTERS_H
#define MUTIRAO_DEADLETTERS_H

#include <stddef.h>

#include <uv.h>

#include "config.h"
#include "redis_uv.h"

typedef struct deadletters deadletters;
typedef struct dl_item dl_item;

/* ok 1: stored; rec is the record ("COUNT FIRST LAST DEAD_AT\nHISTORY\nERROR",
 * reclen bytes, valid during the call). ok 0: deadletters_close came first. */
typedef void (*dl_done_fn)(dl_item *it, int ok, const char *rec, size_t reclen);

/* One dead letter, in the caller's memory until done. */
struct dl_item {
    const char *id, *pool; /* task id, pool name */
    const char *env;       /* the task envelope (the message as it came) */
    size_t envlen;
    const char *reason; /* NULL: the error is the delivery record's; else this one, and
                           the message was refused unrun (counted as `unauthenticated`
                           instead of `dead_lettered`) */
    dl_done_fn done;    /* called once, on the loop, never inside deadletters_put */
    /* (the deadletters') */
    dl_item *next;
    int busy; /* a produce or script call for it is in flight */
};

/* r and cfg outlive the deadletters. The Kafka producer starts with the
 * first dead letter. NULL when out of memory. */
deadletters *deadletters_new(uv_loop_t *loop, redis_uv *r, const config *cfg);
void deadletters_put(deadletters *d, dl_item *it);
/* Calls done(it, 0) for every item not done yet (now), closes the producer
 * (waiting at most 2 s for what it still sends), frees d later. */
void deadletters_close(deadletters *d);

#endif
