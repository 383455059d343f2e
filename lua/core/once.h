/* once.h: Go's sync.Once for goroutines ("goroutine.Once"): call(fn, ...)
 * runs fn only the first time and returns fn's results to that caller;
 * every other call returns nothing. Callers that come while it runs wait
 * until it has finished; it counts as done even when fn raised (the error
 * reaches the first caller) or its goroutine was killed. The core is malloc'd and reference counted
 * like mutex.h's. */
#ifndef MUTIRAO_ONCE_H
#define MUTIRAO_ONCE_H

#include <stddef.h>

#include "scheduler.h"

#define ONCE_TNAME "goroutine.Once"

/* Registers the metatable; sets `once` on the table on top of the stack. */
void once_open(lua_State *L, sched *s);
/* Travelling (sync.c registers them with the VM's sched as their ud). */
int once_encode(lua_State *L, int idx, void *ud, void *call);
int once_decode(lua_State *L, const char *data, size_t len, void *ud, void *call);

#endif
