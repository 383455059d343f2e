/* glist.h: the wait lists of goroutines, on the tree's list (list.h).
 * A goroutine is on at most one wait list at a time (the run queue, a
 * WaitGroup's waiters, a handle's waiters, ...); `on` names that list so a
 * cancelled goroutine can be unlinked in O(1) from wherever it waits. The
 * scheduler (scheduler.c) links and unlinks; the layers above own lists
 * and ask whether one is empty. */
#ifndef MUTIRAO_GLIST_H
#define MUTIRAO_GLIST_H

#include <stddef.h>

#include "list.h"

typedef struct glist {
    mlist head; /* of gor.node */
    size_t len;
} glist;

static inline void glist_init(glist *l)
{
    mlist_init(&l->head);
    l->len = 0;
}

static inline int glist_empty(const glist *l)
{
    return mlist_empty(&l->head);
}

#endif
