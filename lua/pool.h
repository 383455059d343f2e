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

#endif
