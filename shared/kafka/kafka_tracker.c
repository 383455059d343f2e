/*
** kafka_tracker.c: contiguous-prefix offset tracking for one partition.
** A ring of handed-out offsets (increasing) with done flags. kuv_tracker_done
** finds its entry by binary search and, when it is the oldest, pops every
** finished entry from the front and moves the committable point past them.
*/
#include <stdlib.h>
#include <string.h>

#include "kafka_tracker.h"

void kuv_tracker_init(kuv_tracker *t)
{
    memset(t, 0, sizeof *t);
    t->last = -1;
    t->committable = -1;
}

void kuv_tracker_free(kuv_tracker *t)
{
    free(t->off);
    free(t->done);
    kuv_tracker_init(t);
}

void kuv_tracker_reset(kuv_tracker *t)
{
    t->head = t->len = t->pending = 0;
    t->last = -1;
    t->committable = -1;
}

/* Doubles the ring, unwrapping it so head is 0. */
static int grow(kuv_tracker *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 16;
    if (ncap < t->cap || ncap > SIZE_MAX / sizeof(int64_t))
        return KUV_ENOMEM;
    int64_t *off = malloc(ncap * sizeof *off);
    unsigned char *done = malloc(ncap);
    if (!off || !done) {
        free(off);
        free(done);
        return KUV_ENOMEM;
    }
    for (size_t i = 0; i < t->len; i++) {
        size_t j = (t->head + i) & (t->cap - 1);
        off[i] = t->off[j];
        done[i] = t->done[j];
    }
    free(t->off);
    free(t->done);
    t->off = off;
    t->done = done;
    t->cap = ncap;
    t->head = 0;
    return 0;
}

int kuv_tracker_add(kuv_tracker *t, int64_t off)
{
    if (off < 0 || off <= t->last)
        return KUV_EINVAL;
    if (t->len == t->cap) {
        int r = grow(t);
        if (r)
            return r;
    }
    size_t j = (t->head + t->len) & (t->cap - 1);
    t->off[j] = off;
    t->done[j] = 0;
    t->len++;
    t->pending++;
    t->last = off;
    return 0;
}

int kuv_tracker_done(kuv_tracker *t, int64_t off)
{
    size_t lo = 0, hi = t->len, mask = t->cap - 1;
    while (lo < hi) { /* first logical index whose offset >= off */
        size_t mid = lo + (hi - lo) / 2;
        if (t->off[(t->head + mid) & mask] < off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == t->len)
        return KUV_ENOTTRACKED;
    size_t j = (t->head + lo) & mask;
    if (t->off[j] != off || t->done[j])
        return KUV_ENOTTRACKED;
    t->done[j] = 1;
    t->pending--;
    while (t->len > 0 && t->done[t->head]) {
        t->committable = t->off[t->head] + 1;
        t->head = (t->head + 1) & mask;
        t->len--;
    }
    if (t->len == 0)
        t->head = 0;
    return 0;
}
