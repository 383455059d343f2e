/* mutex.h: Go's sync.Mutex and sync.RWMutex for goroutines
 * ("goroutine.Mutex", "goroutine.RWMutex").
 *
 * Both are one core: a writer flag, a count of readers and a FIFO queue of
 * waiters. An unlock hands the lock to the waiter at the head of the queue
 * (it owns the lock from then on: a newcomer's try_lock fails meanwhile), so
 * nobody starves; consecutive readers at the head are let in together, and
 * a waiting writer stops new readers (as in Go). The core is malloc'd and
 * reference counted (the userdata, each waiter, a Cond, each VM it
 * travelled to: once shared its lock guards it, see waitq.h). */
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
/* The rest with mutex_lock_of(mu) held (a Cond's lock too). */
sync_lock *mutex_lock_of(mutex_core *mu);
/* Locked (for writing). */
int mutex_locked(const mutex_core *mu);
/* Unlocks (for writing) a locked mutex: hands it to the next waiter; cur:
 * the caller's VM. */
void mutex_unlock(mutex_core *mu, sched *cur);
/* Takes the lock for writing when it is free and nobody waits: 1, else 0;
 * the goroutine running L (if any) of VM s owns it then. */
int mutex_try(mutex_core *mu, lua_State *L, sched *s);
/* Queues w (a waiter of another primitive) for the write lock. */
void mutex_enqueue(mutex_core *mu, waiter *w);
/* Undoes w's part in mu (w queued on it or granted it): see waiter_ops. */
void mutex_abandon(mutex_core *mu, waiter *w, int wake);
/* Travelling: the codec hooks (sync.c registers them with the VM's sched
 * as their ud). mutex_share: mu becomes shared (a Cond travels). */
void mutex_share(lua_State *L, mutex_core *mu);
int mutex_encode(lua_State *L, int idx, void *ud, void *call);
int rwmutex_encode(lua_State *L, int idx, void *ud, void *call);
int mutex_decode(lua_State *L, const char *data, size_t len, void *ud, void *call);
int rwmutex_decode(lua_State *L, const char *data, size_t len, void *ud, void *call);

#endif
