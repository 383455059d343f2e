/* embedded_chunk.h: a Lua source compiled into a binary as a byte array
 * (cmake/embed_lua.cmake writes the tables of them; a table ends with an
 * entry whose name is NULL). */
#ifndef MUTIRAO_EMBEDDED_CHUNK_H
#define MUTIRAO_EMBEDDED_CHUNK_H

#include <stddef.h>

typedef struct embedded_chunk {
    const char *name;          /* module name for require(), e.g. "mutirao.dsl" */
    const char *chunkname;     /* name in tracebacks, e.g. "@mutirao/dsl.lua" */
    const unsigned char *data; /* the source text (NUL-terminated, len excludes it) */
    size_t len;
} embedded_chunk;

#endif
