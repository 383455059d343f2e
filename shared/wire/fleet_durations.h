/* fleet_durations.h: the task-duration buckets of a worker's registry entry
 * (the field `dur:NAME` of mutirao:worker:W, docs/wire-format.md): per pool,
 * the number of outcomes recorded over the last minute whose duration
 * (started to recorded, in ms) falls in each bucket. Bucket i holds the
 * durations above bound i-1 and at most bound i; the last one those above
 * FLEET_DUR_MAX_MS. The worker counts (worker/consumer.c), `mutirao top`
 * reads the quantiles (producer/cli_top.c). */
#ifndef MUTIRAO_FLEET_DURATIONS_H
#define MUTIRAO_FLEET_DURATIONS_H

#include <stdint.h>

#define FLEET_DUR_BUCKETS 15
#define FLEET_DUR_MAX_MS 60000

/* Bucket i's upper bound in ms (i < FLEET_DUR_BUCKETS - 1). */
static inline unsigned fleet_dur_bound(int i)
{
    static const unsigned b[FLEET_DUR_BUCKETS - 1] = {1,   5,    10,   25,   50,    100,   250,
                                                      500, 1000, 2500, 5000, 10000, 30000, 60000};
    return b[i];
}

/* The bucket of a duration of ms. */
static inline int fleet_dur_bucket(uint64_t ms)
{
    int i = 0;
    while (i < FLEET_DUR_BUCKETS - 1 && ms > fleet_dur_bound(i))
        i++;
    return i;
}

/* The q-quantile (0 < q < 1) of the counts n, in ms, interpolated linearly
 * inside its bucket (as Prometheus' histogram_quantile); -1 when there is
 * none; FLEET_DUR_MAX_MS when it is in the last bucket (above it). */
static inline double fleet_dur_quantile(const unsigned long long *n, double q)
{
    unsigned long long total = 0;
    for (int i = 0; i < FLEET_DUR_BUCKETS; i++)
        total += n[i];
    if (total == 0)
        return -1;
    double rank = q * (double)total, cum = 0;
    for (int i = 0; i < FLEET_DUR_BUCKETS - 1; i++) {
        if (n[i] && cum + (double)n[i] >= rank) {
            double lo = i ? fleet_dur_bound(i - 1) : 0, hi = fleet_dur_bound(i);
            return lo + (hi - lo) * (rank - cum) / (double)n[i];
        }
        cum += (double)n[i];
    }
    return FLEET_DUR_MAX_MS;
}

#endif
