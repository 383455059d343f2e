/* sema.h: a counting semaphore for goroutines ("goroutine.Semaphore",
 * Go's x/sync/semaphore.Weighted): acquire(k) takes k units, waiting in
 * FIFO order (a big request at the head is not overtaken by small ones);
 * release(k) gives them back. The core is malloc'd and reference counted
 * (the userdata and each waiter), like mutex.h's. */
#ifndef MUTIRAO_SEMA_H
#define MUTIRAO_SEMA_H

#include <stddef.h>

#include "scheduler.h"

#define SEMAPHORE_TNAME "goroutine.Semaphore"

/* Registers the metatable; sets `semaphore` on the table on top of the
 * stack. */
void semaphore_open(lua_State *L, sched *s);
/* Travelling (sync.c registers them with the VM's sched as their ud). */
int semaphore_encode(lua_State *L, int idx, void *ud, void *call);
int semaphore_decode(lua_State *L, const char *data, size_t len, void *ud, void *call);

#endif
