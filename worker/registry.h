/* registry.h: a worker's entry in the fleet's worker registry
 * (mutirao:worker:ID and mutirao:workers, shared/wire/fleet_keys.h), what
 * `mutirao workers` and `mutirao pools` read. Written every
 * FLEET_WORKER_REPORT_MS by the consumer's report timer: one HSET, a
 * PEXPIRE, a ZADD and a ZREMRANGEBYSCORE of the stale members, pipelined,
 * no reply awaited. Nothing per task. */
#ifndef MUTIRAO_WORKER_REGISTRY_H
#define MUTIRAO_WORKER_REGISTRY_H

#include <stdint.h>

#include "config.h"
#include "fleet_durations.h"
#include "redis_uv.h"

/* One pool this worker ran tasks of. */
typedef struct registry_pool {
    const char *name;
    int running, slots;
    unsigned last_minute;            /* outcomes recorded over the last minute */
    unsigned dur[FLEET_DUR_BUCKETS]; /* theirs by duration (fleet_durations.h) */
} registry_pool;

/* Writes the entry of worker cfg->worker_id: its pools, threads (VM
 * threads), started (Unix ms). 0, or a redis_uv error code. */
int registry_write(redis_uv *r, const config *cfg, const registry_pool *pools, int n, int threads,
                   uint64_t started_ms, uint64_t now_ms);
/* Removes the entry (a clean stop). */
void registry_remove(redis_uv *r, const config *cfg);

#endif
