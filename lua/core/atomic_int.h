/* atomic_int.h: an integer shared by goroutines ("goroutine.AtomicInt",
 * Go's atomic.Int64): add, load, store, swap, compare_and_swap. The value
 * lives in a malloc'd core and every operation is a C11 atomic, so an
 * AtomicInt captured by a pool task (another VM, another thread) is the same
 * counter there; it comes back as the same object. It cannot leave the
 * process (a fleet pool). Arithmetic wraps around like Lua integers. */
#ifndef MUTIRAO_ATOMIC_INT_H
#define MUTIRAO_ATOMIC_INT_H

#include <lua.h>

#define ATOMIC_INT_TNAME "goroutine.AtomicInt"

/* Registers the metatable; sets `atomic_int` on the table on top of the
 * stack. */
void atomic_int_open(lua_State *L);

#endif
