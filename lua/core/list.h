/* list.h: intrusive doubly linked lists of goroutines.
 * A goroutine is on at most one wait list at a time (the run queue, a
 * WaitGroup's waiters, a handle's waiters, ...); `on` names that list so a
 * cancelled goroutine can be unlinked in O(1) from wherever it waits. */
#ifndef MUTIRAO_LIST_H
#define MUTIRAO_LIST_H

#include <stddef.h>

typedef struct gor gor;

typedef struct glist {
    gor *head, *tail;
    size_t len;
} glist;

static inline void glist_init(glist *l)
{
    l->head = l->tail = NULL;
    l->len = 0;
}

#endif
