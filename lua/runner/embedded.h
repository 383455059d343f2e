/* embedded.h: Lua sources compiled into the binary (lua/embed_lua.cmake
 * generates the table from lua/dsl.lua and lua/runner.lua). The arrays are
 * static and read-only; the table ends with an entry whose name is NULL. */
#ifndef MUTIRAO_EMBEDDED_H
#define MUTIRAO_EMBEDDED_H

#include <stddef.h>

typedef struct embedded_chunk {
    const char *name;          /* module name for require(), e.g. "mutirao.dsl" */
    const char *chunkname;     /* name in tracebacks, e.g. "@mutirao/dsl.lua" */
    const unsigned char *data; /* the source text (NUL-terminated, len excludes it) */
    size_t len;
} embedded_chunk;

extern const embedded_chunk embedded_lua[];

#endif
