/* coroutines.h: preemptible coroutine.resume / coroutine.wrap (see
 * coroutines.c). */
#ifndef MUTIRAO_COROUTINES_H
#define MUTIRAO_COROUTINES_H

#include <lua.h>

/* Replaces resume and wrap in the VM's coroutine library. */
void coroutines_patch(lua_State *L);

#endif
