/* embedded.h: the runner's Lua sources compiled into the binary
 * (cmake/embed_lua.cmake generates the table from lua/runner/dsl.lua and
 * lua/runner/runner.lua). The arrays are static and read-only; the table
 * ends with an entry whose name is NULL. */
#ifndef MUTIRAO_EMBEDDED_H
#define MUTIRAO_EMBEDDED_H

#include "embedded_chunk.h"

extern const embedded_chunk embedded_lua[];

#endif
