/* waitq.h: FIFO queues of waiters for the synchronisation primitives
 * (mutex.c, semaphore.c, once.c, cond.c).
 *
 * A waiter is the record of one blocking call (a lock() that must wait): a
 * to-be-closed userdata on the caller's stack that sits on the primitive's
 * queue while it waits. The primitive grants it (hands it the lock, the
 * units...) and wakes its goroutine; the call consumes the grant when it
 * resumes. When the waiter is closed before that (its goroutine killed by a
 * timeout, an error unwinding the call, a deadlock error in the main chunk),
 * the primitive's abandon hook undoes what it was owed: unlinks it from the
 * queue or gives back what it was granted, and passes it on. So a killed
 * waiter never blocks the others nor keeps a lock.
 *
 * Ownership: the waiter holds a reference on the primitive's core (ops->ref
 * / ops->unref), released when it is closed or collected. */
#ifndef MUTIRAO_WAITQ_H
#define MUTIRAO_WAITQ_H

#include "scheduler.h"

enum waiter_state {
    W_IDLE,    /* not waiting, nothing owed */
    W_QUEUED,  /* on the primitive's queue */
    W_GRANTED, /* granted and woken, not resumed yet */
};

typedef struct waiter waiter;

typedef struct waiter_ops {
    void (*ref)(void *core);
    void (*unref)(void *core);
    /* w is closed while W_QUEUED or W_GRANTED: undo (w is then W_IDLE).
     * wake = 0 while the VM is being closed: change state only, wake nobody. */
    void (*abandon)(waiter *w, int wake);
} waiter_ops;

struct waiter {
    mlist node; /* in the primitive's queue while W_QUEUED */
    glist wl;   /* the parked goroutine */
    sched *s;
    void *core; /* the primitive's core (a reference); NULL once released */
    const waiter_ops *ops;
    lua_Integer n; /* what it asks for (semaphore units, rwmutex side...) */
    int phase;     /* the primitive's own use (cond.c) */
    int state;     /* enum waiter_state */
};

/* Pushes a new W_IDLE waiter on core (taking a reference) and marks it
 * to-be-closed: it is closed when the calling C function returns. */
waiter *waiter_push(lua_State *L, sched *s, void *core, const waiter_ops *ops, lua_Integer n);

/* Appends w to q (W_QUEUED). */
void waiter_enqueue(mlist *q, waiter *w);
/* The first waiter of q, or NULL. */
waiter *waitq_first(const mlist *q);
/* Unlinks w from its queue (W_IDLE). */
void waiter_unlink(waiter *w);
/* Unlinks w, makes it W_GRANTED and wakes its goroutine. */
void waiter_grant(waiter *w);
/* Parks the caller on w until it is woken; k runs then (see sched_wait). */
int waiter_wait(lua_State *L, waiter *w, lua_KContext ctx, lua_KFunction k);

#endif
