/* timerheap.h: a binary min-heap of deadlines (nanoseconds, uv_hrtime
 * clock). One uv_timer per scheduler is armed at the earliest entry, so
 * 100,000 sleeping goroutines cost one libuv handle and O(log n) each.
 * Entries are embedded in their owners (a goroutine, a scope); the heap
 * stores pointers and never owns them. */
#ifndef MUTIRAO_TIMERHEAP_H
#define MUTIRAO_TIMERHEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct theap_ent theap_ent;
typedef void (*theap_cb)(theap_ent *ent);

struct theap_ent {
    uint64_t due; /* deadline, ns */
    uint64_t seq; /* insertion order: equal deadlines fire first-in first-out */
    size_t idx;   /* position in the heap + 1; 0 when not in the heap */
    theap_cb cb;  /* called by the owner of the heap when the entry is due */
};

typedef struct theap {
    theap_ent **v;
    size_t n, cap;
    uint64_t seq;
} theap;

void theap_init(theap *h);
void theap_free(theap *h); /* frees the array, not the entries */
/* Inserts ent (not already in a heap). Returns 0, or -1 when out of memory. */
int theap_push(theap *h, theap_ent *ent);
/* Removes ent if it is in the heap; a no-op otherwise. */
void theap_remove(theap *h, theap_ent *ent);
static inline theap_ent *theap_min(const theap *h)
{
    return h->n ? h->v[0] : NULL;
}
static inline int theap_has(const theap_ent *ent)
{
    return ent->idx != 0;
}

#endif
