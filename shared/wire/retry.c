/* retry.c: the wait before a task's next attempt (retry.h). */
#include "retry.h"

#include <time.h>
#include <unistd.h>

void retry_default(pool_retry *r)
{
    r->retries = 0;
    r->initial_ms = RETRY_INITIAL_MS_DEFAULT;
    r->max_ms = RETRY_MAX_MS_DEFAULT;
    r->jitter = RETRY_JITTER_PERMILLE_DEFAULT;
}

uint64_t retry_delay_ms(const pool_retry *r, uint32_t next, uint32_t rnd)
{
    uint64_t d = r->initial_ms;
    for (uint32_t i = 2; i < next && d < r->max_ms; i++)
        d *= 2;
    if (d > r->max_ms)
        d = r->max_ms;
    if (r->jitter == 0 || d == 0)
        return d;
    /* spread: d * jitter/1000 * u, u uniform in [-1, 1] */
    int64_t span = (int64_t)(d * r->jitter / 1000);
    int64_t off = span == 0 ? 0 : (int64_t)(rnd % (uint64_t)(2 * span + 1)) - span;
    return (uint64_t)((int64_t)d + off);
}

uint32_t retry_random(void)
{
    static _Thread_local uint64_t x;
    if (x == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^
            (uint64_t)(uintptr_t)&x;
        if (x == 0)
            x = 0x9e3779b97f4a7c15u;
    }
    /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return (uint32_t)((x * 0x2545f4914f6cdd1du) >> 32);
}
