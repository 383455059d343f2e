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
 * / ops->unref), released when it is closed or collected.
 *
 * Shared primitives: a primitive that travelled to another VM of the
 * process (a pool task captured it) is shared (sync_lock.shared): from then
 * on every access to its core, from any VM, holds its sync_lock, and a
 * grant to a waiter of another VM wakes it through that VM's port (the
 * waiter's token: a message that outlives the waiter if it must). */
#ifndef MUTIRAO_WAITQ_H
#define MUTIRAO_WAITQ_H

#include <pthread.h>
#include <stdint.h>

#include "scheduler.h"
#include "travel.h"

enum waiter_state {
    W_IDLE,    /* not waiting, nothing owed */
    W_QUEUED,  /* on the primitive's queue */
    W_GRANTED, /* granted and woken, not resumed yet */
};

typedef struct waiter waiter;
typedef struct wq_token wq_token;

/* A primitive's core lock: taken only once the primitive is shared (set on
 * its home VM's thread before any other VM can reach it). */
typedef struct sync_lock {
    pthread_mutex_t mu;
    int shared;
} sync_lock;

void sync_lock_init(sync_lock *k);
void sync_lock_destroy(sync_lock *k);
static inline void sync_enter(sync_lock *k)
{
    if (k->shared)
        pthread_mutex_lock(&k->mu);
}
static inline void sync_leave(sync_lock *k)
{
    if (k->shared)
        pthread_mutex_unlock(&k->mu);
}

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
    sync_lock *lock; /* the core's lock: guards node, n, phase and state */
    wq_token *tok;   /* (shared) wakes it from another VM; NULL while local */
    uint64_t gid;    /* the waiting goroutine's id (0: the main chunk) */
    lua_Integer n;   /* what it asks for (semaphore units, rwmutex side...) */
    int phase;       /* the primitive's own use (cond.c) */
    int state;       /* enum waiter_state */
    int counted;     /* in s->remote_waits */
};

/* Pushes a new W_IDLE waiter on core (taking a reference) and marks it
 * to-be-closed: it is closed when the calling C function returns (closing
 * it takes lock). Call it without holding lock (it may raise). */
waiter *waiter_push(lua_State *L, sched *s, void *core, const waiter_ops *ops, lua_Integer n,
                    sync_lock *lock);
/* A primitive becomes shared (on its home VM's thread, lock not shared
 * yet): each of its queued waiters gets its token. Raises when out of
 * memory (nothing changed for the waiters done so far: they just can be
 * woken from elsewhere). */
void waiter_share(lua_State *L, waiter *w);

/* Appends w to q (W_QUEUED). */
void waiter_enqueue(mlist *q, waiter *w);
/* The first waiter of q, or NULL. */
waiter *waitq_first(const mlist *q);
/* Unlinks w from its queue (W_IDLE). */
void waiter_unlink(waiter *w);
/* Unlinks w, makes it W_GRANTED and wakes its goroutine; cur is the VM of
 * the caller (w's, or another VM's: then through w's token). With the lock
 * held. */
void waiter_grant(waiter *w, sched *cur);
/* Parks the caller on w until it is woken (call it with the lock
 * released); k runs then (see sched_wait) and reads w's state under the
 * lock (waiter_state). */
int waiter_wait(lua_State *L, waiter *w, lua_KContext ctx, lua_KFunction k);
/* w's state, read under its lock; a granted waiter becomes W_IDLE. */
int waiter_take_state(waiter *w);

/*
** Travelling (the primitives' codec hooks). A primitive's userdata is
** { core, s } (sync_ud) in every VM; one per VM stands for a core (a weak
** registry table), so it comes back as the same object.
*/
typedef struct sync_ud {
    void *core;
    sched *s;
} sync_ud;
/* Makes lock shared, first giving the waiters queued on q a token (q may
 * be NULL). On the primitive's home thread. */
void sync_share(lua_State *L, sync_lock *lock, mlist *q);
/* The encode hook's end: refuses the fleet (call set: "<what> cannot
 * travel to <where>"), records the userdata at idx as this VM's for core
 * and pushes core's name (travel.h; ta: the core's anchor). */
int sync_encode_core(lua_State *L, int idx, void *call, const char *what, void *core,
                     travel_anchor *ta);
/* The decode hook: pushes this VM's userdata of type tname for the core
 * named by data (made now, with s, if there is none). */
int sync_decode_core(lua_State *L, const char *data, size_t len, void *call, sched *s,
                     const char *tname, const char *what, void (*ref)(void *core),
                     void (*unref)(void *core));

#endif
