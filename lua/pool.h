/* pool.h: worker pools on the process's VM threads (the embedded backend).
 *
 * A pool has a name, a cap on tasks running at once (`workers`), a bounded
 * queue of waiting tasks and counters. pool_submit encodes the function and
 * its arguments with the closure codec, and the task runs as a goroutine in
 * one of the VMs of procs.c, with fresh globals; its outcome travels back
 * encoded to the submitting VM, which keeps it for await(task_id).
 *
 * Pools are process-wide (any VM may submit to a pool by name) and guarded
 * by a mutex each; goroutines that wait (for queue room, in pool_wait, in
 * await) wait in their own VM and are woken by messages on its port. */
#ifndef MUTIRAO_POOL_H
#define MUTIRAO_POOL_H

#include <lua.h>

#include "scheduler.h"

/* Adds pool_create, pool_submit, pool_wait, pool_close and pool_stats to the
 * module table on top of L (their upvalue is s). */
void pool_open(lua_State *L, sched *s);
/* await(task_id): returns like await, or raises for a non-string. */
int pool_await(lua_State *L, sched *s, int idx);
/* The scheduler tells pools that a scope was cancelled or freed: pool
 * tasks its goroutines submitted stop keeping the process alive. */
void pool_scope_cancelled(scope *sc);
void pool_scope_freed(scope *sc);
/* Frees what the scheduler's VM keeps for pools (results, waiters). */
void pool_sched_free(sched *s);

/*
** Pools for the fleet worker: run tasks that arrive already encoded (a codec
** message from a trusted topic: bytecode is loaded) on the process's VMs,
** at most `workers` at once, the rest queued without bound (the caller
** stops fetching instead). cb fires on owner's thread with ok = 1 (returned)
** or 0 (raised; out is the encoded error), or -1 when owner is gone, and
** with what the task's decode attached (see pool_decoding_remote); out lives
** only during the call. These pools have no name in the registry.
*/
typedef struct pool pool;
typedef void (*pool_ext_done_fn)(void *ud, int ok, const char *out, size_t outlen, void *remote);
pool *pool_ext_new(const char *name, int workers);
void pool_ext_set_workers(pool *p, int workers);
/* Copies payload and id. 0, or -1 when out of memory (cb never fires). */
int pool_ext_submit(pool *p, sched *owner, const char *id, const char *payload, size_t len,
                    pool_ext_done_fn cb, void *ud);
void pool_ext_counts(pool *p, int *active, int *queued);
/* Drops the caller's reference; queued and running tasks keep their own. */
void pool_ext_release(pool *p);
/* While a pool VM decodes a task: the slot where codec hooks may attach one
 * pointer for the task's completion (a fleet WaitGroup proxy list); NULL
 * outside a decode. */
void **pool_decoding_remote(void);

#endif
