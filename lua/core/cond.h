/* cond.h: Go's sync.Cond for goroutines ("goroutine.Cond"): a condition
 * variable over a Mutex (or an RWMutex's write side). wait() unlocks the
 * mutex, waits for signal() (wakes the longest waiter) or broadcast()
 * (wakes all), and locks it again before returning. A waiter killed while
 * waiting for the signal or for the mutex never holds the mutex, and a
 * signal it got but did not live to see goes to the next waiter. A wait
 * that raises (a deadlock in the main chunk) leaves the mutex unlocked. */
#ifndef MUTIRAO_COND_H
#define MUTIRAO_COND_H

#include <stddef.h>

#include "scheduler.h"

#define COND_TNAME "goroutine.Cond"

/* Registers the metatable; sets `cond` on the table on top of the stack. */
void cond_open(lua_State *L, sched *s);
/* Travelling (sync.c registers them with the VM's sched as their ud): a
 * Cond makes its mutex shared too. */
int cond_encode(lua_State *L, int idx, void *ud, void *call);
int cond_decode(lua_State *L, const char *data, size_t len, void *ud, void *call);

#endif
