/* progress.h: the module `mutirao.term` (progress.c), what the progress
 * lines of `mutirao run` (progress.lua) ask of the terminal. */
#ifndef MUTIRAO_PROGRESS_H
#define MUTIRAO_PROGRESS_H

#include <lua.h>

int luaopen_mutirao_term(lua_State *L);

#endif
