/* patterns.h: what the goroutine module writes in Lua on top of its C
 * functions: contexts and error groups (context.lua), pipelines, fan-out and
 * fan-in (pipeline.lua), embedded at build time (cmake/embed_lua.cmake). */
#ifndef MUTIRAO_PATTERNS_H
#define MUTIRAO_PATTERNS_H

#include <lua.h>

#include "embedded_chunk.h"

extern const embedded_chunk goroutine_lua[];

/* Runs each embedded chunk with the module table at the top of L's stack,
 * which gets their functions. */
void patterns_open(lua_State *L);

#endif
