/* retries.h: a worker's part in running failed attempts again (pools with
 * `retries`; docs/ARCHITECTURE.md, "Retries"). The completion script put
 * each next attempt's envelope in mutirao:retries with the time it is due;
 * every worker polls that set (FLEET_RETRY_CLAIM_LUA, every
 * RETRIES_POLL_MS with jitter), which claims the due ones for a lease, and
 * produces each envelope to its pool's topic; once Kafka has it, the member
 * goes. A worker that dies on the way leaves claimed members another one
 * claims when their lease ends. Everything runs on the worker's loop. */
#ifndef MUTIRAO_RETRIES_H
#define MUTIRAO_RETRIES_H

#include <uv.h>

#include "config.h"
#include "redis_uv.h"

#define RETRIES_POLL_MS 200 /* between polls, +- a quarter of it */

typedef struct retries retries;

/* r and cfg outlive it. Polls from now on; the Kafka producer starts with
 * the first attempt due. NULL when out of memory. */
retries *retries_new(uv_loop_t *loop, redis_uv *r, const config *cfg);
/* Stops polling, closes the producer (waiting at most 2 s for what it still
 * sends; members not yet removed are claimed again after their lease),
 * frees it later. */
void retries_close(retries *q);

#endif
