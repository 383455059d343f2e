/*
** retry.h: a pool's retry policy (pool_create's `retries` and `backoff`)
** and the wait before a task's next attempt. Both backends use it: the
** embedded one on the submitter's loop, the fleet worker for its due-retry
** set (docs/ARCHITECTURE.md, "Retries"). No I/O, no Lua.
*/
#ifndef MUTIRAO_RETRY_H
#define MUTIRAO_RETRY_H

#include <stdint.h>

#define RETRY_MAX 1000                    /* the largest `retries` */
#define RETRY_INITIAL_MS_DEFAULT 100      /* backoff.initial */
#define RETRY_MAX_MS_DEFAULT 10000        /* backoff.max */
#define RETRY_JITTER_PERMILLE_DEFAULT 200 /* backoff.jitter = 0.2 */
#define RETRY_BACKOFF_MS_MAX 86400000u    /* the largest initial or max (a day) */

typedef struct pool_retry {
    uint32_t retries;    /* runs after the first of a task that raised; 0: none */
    uint32_t initial_ms; /* the wait before the second attempt */
    uint32_t max_ms;     /* no wait is longer (before the jitter) */
    uint32_t jitter;     /* each wait is moved by up to +- this fraction, in 1/1000 */
} pool_retry;

/* The defaults: no retries, backoff {initial = 100, max = 10000, jitter = 0.2}. */
void retry_default(pool_retry *r);

/* The wait in ms before attempt `next` (>= 2): initial * 2^(next - 2),
 * capped at max, then moved by a random fraction in [-jitter, +jitter]
 * (rnd: a uniform random 32-bit number). */
uint64_t retry_delay_ms(const pool_retry *r, uint32_t next, uint32_t rnd);

/* A random 32-bit number for the jitter: per thread, seeded from the time,
 * the process and the thread, so processes spread apart. */
uint32_t retry_random(void);

#endif
