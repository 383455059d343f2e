/* coroutines.h: preemptible coroutine.resume / coroutine.wrap (see
 * coroutines.c). */
#ifndef MUTIRAO_COROUTINES_H
#define MUTIRAO_COROUTINES_H

#include <lua.h>

/* Replaces resume, wrap, status and close in the VM's coroutine library. */
void coroutines_patch(lua_State *L);
/* A goroutine whose thread is outer is being killed: closes the plain
 * coroutines it was running when preempted, innermost first (their pending
 * <close> variables run). T is a scratch thread. */
void coroutines_close_chain(lua_State *T, lua_State *outer);

#endif
