/* outbox.h: the tagged layout's outbox of a completed task
 * (mutirao:{T}:task:ID:x, shared/wire/fleet_keys.h): its notifications for
 * lists outside the task's slot, pairs owner, element. outbox_push reads
 * it (LRANGE), pushes each owner's elements in order (FLEET_NOTIFY_LUA, in
 * the owner's slot: a replay pushes nothing twice), then deletes it. Used
 * by the completion (answer 3) and the delivery record (the replay of one
 * a worker left behind). Everything runs on the client's loop. */
#ifndef MUTIRAO_OUTBOX_H
#define MUTIRAO_OUTBOX_H

#include "redis_uv.h"

/* ok 1: pushed and deleted (or there was none); ok 0: a step failed (why:
 * for the log, valid during the call), the outbox is left for a retry. */
typedef void (*outbox_done_fn)(void *ud, int ok, const char *why);

/* The FLEET_NOTIFY_LUA script id on r (register once per client). */
int outbox_script(redis_uv *r);
/* Starts the push of task id's outbox; done is called once, on the loop,
 * never inside this call. 0, or a negative error (then done never fires). */
int outbox_push(redis_uv *r, int script, const char *id, outbox_done_fn done, void *ud);

#endif
