/* fleet_seen.h: whether workers run tasks of a pool now, as their own
 * reports say: each mutirao-worker writes "COUNT MS" under its id in
 * mutirao:pool:NAME:active every second while it runs tasks of the pool,
 * and once more when it becomes idle (worker/consumer.c, on_report); a
 * report younger than FLEET_ACTIVE_STALE_MS is a worker seen. The producer
 * asks before it suggests that no mutirao-worker is running. */
#ifndef MUTIRAO_FLEET_SEEN_H
#define MUTIRAO_FLEET_SEEN_H

#include "redis_uv.h"

#define FLEET_SEEN_MAX 8 /* pools per check */

/* status 0: seen[i] is 1 when a worker runs tasks of pools[i]; status < 0:
 * Redis failed (err says why; seen[] are 0). Not called when the client
 * closed first. */
typedef void (*fleet_seen_cb)(void *ud, int status, const char *err, const int *seen, int n);

/* Reads the active hash of the n (<= FLEET_SEEN_MAX) pools, then calls cb
 * once. 0, or a negative redis_uv error (cb is then never called). */
int fleet_seen_check(redis_uv *r, const char *const *pools, int n, fleet_seen_cb cb, void *ud);

#endif
