/*
** kafka_tracker.h: the offsets of one Kafka partition handed out to the
** application and not yet committed; finds the contiguous finished prefix.
** A pure data structure (no I/O, no librdkafka): kafka_uv.c keeps one per
** assigned partition.
*/
#ifndef MUTIRAO_KAFKA_TRACKER_H
#define MUTIRAO_KAFKA_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "kafka_uv.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
** Offsets are handed out in increasing order (gaps are fine: compaction and
** transaction markers leave holes) and finished in any order. The tracker
** keeps a ring of the handed-out offsets from the oldest unfinished one on,
** each with a done flag; finishing the oldest pops the finished prefix.
*/
typedef struct kuv_tracker {
    int64_t *off;        /* ring of handed-out offsets, increasing */
    unsigned char *done; /* done[i]: off[i] finished */
    size_t cap;          /* ring capacity (a power of two, or 0) */
    size_t head;         /* index of the oldest entry */
    size_t len;          /* entries in the ring */
    size_t pending;      /* entries not done */
    int64_t last;        /* last offset handed out, -1 before the first */
    int64_t committable; /* next offset to commit (last of the prefix + 1), -1: none */
} kuv_tracker;

/* Initializes an empty tracker; *t is the caller's memory. */
void kuv_tracker_init(kuv_tracker *t);
/* Frees the ring; *t stays the caller's and is empty (reusable) afterwards. */
void kuv_tracker_free(kuv_tracker *t);
/* Forgets every entry and the committable point (a fresh assignment). */
void kuv_tracker_reset(kuv_tracker *t);

/*
** Records offset off as handed out. Returns 0, KUV_ENOMEM (nothing changed)
** or KUV_EINVAL when off is negative or not greater than the last offset
** handed out (the caller decides: kafka_uv.c resets the tracker, since the
** fetch position moved back).
*/
int kuv_tracker_add(kuv_tracker *t, int64_t off);

/*
** Marks off finished. Returns 0, or KUV_ENOTTRACKED when off was not handed
** out, is already finished or was already committed past (nothing changed).
*/
int kuv_tracker_done(kuv_tracker *t, int64_t off);

/* The offset to commit (Kafka's convention: the next one to read), or -1
   while no prefix is finished. Never decreases between resets. */
static inline int64_t kuv_tracker_committable(const kuv_tracker *t)
{
    return t->committable;
}

/* Handed-out offsets not yet finished. */
static inline size_t kuv_tracker_pending(const kuv_tracker *t)
{
    return t->pending;
}

#ifdef __cplusplus
}
#endif

#endif
