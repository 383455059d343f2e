/* sync.h: the synchronisation primitives of the goroutine module (Go's
 * sync package): mutex, rwmutex (mutex.h), semaphore (sema.h),
 * atomic_int (atomic_int.h), once (once.h), cond (cond.h). Each wait
 * suspends only the calling goroutine (or runs the loop from the main
 * chunk), and a waiter killed by a timeout leaves the primitive usable
 * (waitq.h). */
#ifndef MUTIRAO_SYNC_H
#define MUTIRAO_SYNC_H

#include "scheduler.h"

/* Registers the metatables and sets the constructors (mutex, rwmutex,
 * semaphore, atomic_int, once, cond) on the module table on top of the
 * stack. */
void sync_open(lua_State *L, sched *s);

/* Argument arg as an integer: a number with an exact integer value (not a
 * string), else an argument error. */
lua_Integer sync_check_integer(lua_State *L, int arg);

#endif
