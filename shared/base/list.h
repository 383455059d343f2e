/*
** list.h: the intrusive doubly linked list of the whole tree.
**
** An element embeds an mlist node; the list is a circular chain of nodes
** through a head (an mlist too, never an element), so that insertion and
** removal are a few stores with no branch and no allocation, and removal
** needs the node only, not the head:
**
**     typedef struct job { int n; mlist node; } job;
**
**     mlist jobs;                       mlist_init(&jobs): empty
**     mlist_push_back(&jobs, &j->node);  FIFO; mlist_push_front: LIFO
**     mlist_remove(&j->node);            O(1), from whichever list holds it
**     job *first = mlist_first_entry(&jobs, job, node);    NULL when empty
**     mlist *n, *tmp;
**     mlist_foreach_safe (n, tmp, &jobs)     may remove (or free) n
**         free(mlist_entry(n, job, node));
**
** Heads must be initialised (mlist_init) before use and must not move
** while the list is not empty (the first and last nodes point to the head).
** Nodes need no initialisation if they start zeroed (calloc, memset): a
** node is linked when its next pointer is set (mlist_linked), and
** mlist_remove clears both pointers again. Removing a node that is not
** linked is a bug, as is inserting one that is; callers that do not know
** check mlist_linked first. Nothing here locks: a list belongs to one
** thread, or to whoever holds the lock that guards it.
*/
#ifndef MUTIRAO_LIST_H
#define MUTIRAO_LIST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mlist mlist;
struct mlist {
    mlist *next, *prev;
};

/* The element that embeds node as its member `member` (node not NULL). */
#define mlist_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

/* Makes h an empty list. */
static inline void mlist_init(mlist *h)
{
    h->next = h->prev = h;
}

static inline int mlist_empty(const mlist *h)
{
    return h->next == h;
}

/* Whether node n is on a list (a zeroed or removed node is not). */
static inline int mlist_linked(const mlist *n)
{
    return n->next != NULL;
}

/* Links n (not linked) between the adjacent nodes prev and next. */
static inline void mlist_link_(mlist *n, mlist *prev, mlist *next)
{
    n->prev = prev;
    n->next = next;
    prev->next = n;
    next->prev = n;
}

/* Inserts n after node at (a head: at the front). */
static inline void mlist_insert_after(mlist *at, mlist *n)
{
    mlist_link_(n, at, at->next);
}

/* Inserts n before node at (a head: at the back). */
static inline void mlist_insert_before(mlist *at, mlist *n)
{
    mlist_link_(n, at->prev, at);
}

static inline void mlist_push_front(mlist *h, mlist *n)
{
    mlist_link_(n, h, h->next);
}

static inline void mlist_push_back(mlist *h, mlist *n)
{
    mlist_link_(n, h->prev, h);
}

/* Unlinks n (linked) from its list; n is then not linked. */
static inline void mlist_remove(mlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* The first node of h, or NULL when h is empty. */
static inline mlist *mlist_first(const mlist *h)
{
    return h->next != h ? h->next : NULL;
}

/* The last node of h, or NULL when h is empty. */
static inline mlist *mlist_last(const mlist *h)
{
    return h->prev != h ? h->prev : NULL;
}

/* The node after n on h, or NULL when n is the last. */
static inline mlist *mlist_next(const mlist *h, const mlist *n)
{
    return n->next != h ? n->next : NULL;
}

/* Removes and returns the first node of h, or NULL when h is empty. */
static inline mlist *mlist_pop_front(mlist *h)
{
    mlist *n = h->next;
    if (n == h)
        return NULL;
    mlist_remove(n);
    return n;
}

/* Moves every node of src, in order, to the back of dst; src is then empty. */
static inline void mlist_splice_back(mlist *dst, mlist *src)
{
    if (src->next == src)
        return;
    mlist *first = src->next, *last = src->prev;
    first->prev = dst->prev;
    dst->prev->next = first;
    last->next = dst;
    dst->prev = last;
    src->next = src->prev = src;
}

/* The element of the first (last) node of h, or NULL when h is empty. */
#define mlist_first_entry(h, type, member)                                                         \
    (mlist_empty(h) ? (type *)NULL : mlist_entry((h)->next, type, member))
#define mlist_last_entry(h, type, member)                                                          \
    (mlist_empty(h) ? (type *)NULL : mlist_entry((h)->prev, type, member))

/* Iterates node pos (an mlist *) over h, front to back. The body must not
 * remove pos; mlist_foreach_safe's may (tmp, an mlist *, holds the next
 * node: the body must not remove that one). */
#define mlist_foreach(pos, h) for ((pos) = (h)->next; (pos) != (h); (pos) = (pos)->next)
#define mlist_foreach_safe(pos, tmp, h)                                                            \
    for ((pos) = (h)->next, (tmp) = (pos)->next; (pos) != (h); (pos) = (tmp), (tmp) = (pos)->next)

#ifdef __cplusplus
}
#endif

#endif /* MUTIRAO_LIST_H */
