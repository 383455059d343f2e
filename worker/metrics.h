/* metrics.h: the worker's Prometheus metrics registry (worker/metrics.c).
 *
 * Counters and the task-duration histogram live in plain structs, one per
 * pool, updated on the loop thread with an increment (nothing allocated or
 * locked per task). The gauges read at scrape time (running tasks, slots,
 * Kafka lag, process figures) come from hooks the worker registers; the
 * text exposition format (version 0.0.4) is written only when /metrics is
 * asked for (metrics_http.h). */
#ifndef MUTIRAO_METRICS_H
#define MUTIRAO_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Upper bounds of the task-duration histogram, seconds (+Inf is implied). */
#define METRICS_DURATION_BUCKETS 14
/* ... and of the Redis round-trip histogram. */
#define METRICS_RTT_BUCKETS 10

typedef struct metrics metrics;

/* One pool's figures since the worker started. Owned by the registry. */
typedef struct metrics_pool {
    struct metrics_pool *next;
    uint64_t completed;     /* outcomes recorded ok */
    uint64_t failed;        /* outcomes recorded failed (dead letters, timeouts included) */
    uint64_t retried;       /* failed attempts whose next attempt was scheduled */
    uint64_t dead_lettered; /* tasks recorded as dead letters */
    uint64_t timed_out;     /* attempts cancelled at their timeout or deadline */
    uint64_t rejected;      /* messages refused unrun (signature) */
    uint64_t dur_count;     /* task durations observed */
    uint64_t dur_bucket[METRICS_DURATION_BUCKETS]; /* not cumulative: the render sums */
    uint64_t dur_sum_ns;
    int running, slots; /* gauges, filled by the gauge hook before a render */
    char name[];
} metrics_pool;

/* A new, empty registry (NULL when out of memory). start_unix_s: the
 * process's start time (process_start_time_seconds). */
metrics *metrics_new(double start_unix_s);
void metrics_free(metrics *m);

/* The pool's figures, made at first use (NULL when out of memory); the
 * pointer stays valid until metrics_free. */
metrics_pool *metrics_pool_get(metrics *m, const char *pool);

/* One task's run time, in nanoseconds. */
static inline void metrics_observe_duration(metrics_pool *p, uint64_t ns)
{
    static const uint64_t bounds_ns[METRICS_DURATION_BUCKETS] = {
        1000000ull,    5000000ull,     10000000ull,    25000000ull,   50000000ull,
        100000000ull,  250000000ull,   500000000ull,   1000000000ull, 2500000000ull,
        5000000000ull, 10000000000ull, 30000000000ull, 60000000000ull};
    int i = 0;
    while (i < METRICS_DURATION_BUCKETS && ns > bounds_ns[i])
        i++;
    if (i < METRICS_DURATION_BUCKETS)
        p->dur_bucket[i]++;
    p->dur_count++;
    p->dur_sum_ns += ns;
}

/* mutirao_worker_info{worker=ID,version=V} 1. 0, or -1 without memory. */
int metrics_set_info(metrics *m, const char *worker_id, const char *version);

/* One Redis round trip, in nanoseconds. */
void metrics_observe_redis_rtt(metrics *m, uint64_t ns);

/* Scrape-time hooks (each may be NULL). gauges(ud, m) fills every pool's
 * running and slots. lag(ud, m) reports the Kafka consumer lag by calling
 * metrics_put_lag for each partition it knows. */
typedef struct metrics_hooks {
    void (*gauges)(void *ud, metrics *m);
    void (*lag)(void *ud, metrics *m);
    void *ud;
} metrics_hooks;
void metrics_set_hooks(metrics *m, const metrics_hooks *h);

/* During the lag hook: the lag of one partition of a pool's topic. */
void metrics_put_lag(metrics *m, const char *pool, int32_t partition, int64_t lag);

/* The whole exposition: *out gets a malloc'd text of *len bytes (free it).
 * 0, or -1 when out of memory. Runs the hooks. */
int metrics_render(metrics *m, char **out, size_t *len);

/* For tests and the render: escapes a label value (backslash, double quote,
 * newline) into out, NUL-terminated; returns the length it needed. */
size_t metrics_escape_label(const char *v, char *out, size_t outlen);

#endif
