/* mutex.h: Go's sync.Mutex and sync.RWMutex for goroutines
 * ("goroutine.Mutex", "goroutine.RWMutex").
 *
 * Both are one core: a writer flag, a count of readers and a FIFO queue of
 * waiters. An unlock hands the lock to the waiter at the head of the queue
 * (it owns the lock from then on: a newcomer's try_lock fails meanwhile), so
 * nobody starves; consecutive readers at the head are let in together, and
 * a waiting writer stops new readers (as in Go). The core is malloc'd and
 * reference counted (the userdata, each waiter, a Cond): its state is
 * touched by the home VM's thread only for now, so that a later step can
 * share it with pool VMs the way WaitGroups are shared. */
#ifndef MUTIRAO_MUTEX_H
#define MUTIRAO_MUTEX_H

#include "waitq.h"

#define MUTEX_TNAME "goroutine.Mutex"
#define RWMUTEX_TNAME "goroutine.RWMutex"

typedef struct mutex_core mutex_core;

/* Registers the metatables; sets `mutex` and `rwmutex` on the table on top
 * of the stack. */
void mutex_open(lua_State *L, sched *s);

/* For cond.c. The core of the Mutex or RWMutex at idx, or NULL. */
mutex_core *mutex_test(lua_State *L, int idx);
void mutex_core_ref(void *core);
void mutex_core_unref(void *core);
/* Locked (for writing). */
int mutex_locked(const mutex_core *mu);
/* Unlocks (for writing) a locked mutex: hands it to the next waiter. */
void mutex_unlock(mutex_core *mu);
/* Takes the lock for writing when it is free and nobody waits: 1, else 0;
 * the goroutine running L (if any) owns it then. */
int mutex_try(mutex_core *mu, lua_State *L);
/* Queues w (a waiter of another primitive) for the write lock. */
void mutex_enqueue(mutex_core *mu, waiter *w);
/* Undoes w's part in mu (w queued on it or granted it): see waiter_ops. */
void mutex_abandon(mutex_core *mu, waiter *w, int wake);

#endif
