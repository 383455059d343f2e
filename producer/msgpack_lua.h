/* msgpack_lua.h: plain msgpack <-> Lua values, for callers that speak
 * msgpack and know nothing of Lua (the producer library's task arguments
 * and results). Unlike the closure codec (shared/codec/codec.h) there is no
 * header, no functions and no extension types: only what any msgpack
 * library writes. The decoder treats its input as untrusted. */
#ifndef MUTIRAO_MSGPACK_LUA_H
#define MUTIRAO_MSGPACK_LUA_H

#include <stddef.h>

#include <lua.h>

#include "errors.h"

/* Error codes: negative ints, one table. XX(name, value, message): base
 * codes only (errors.h). */
#define MPL_ERRNO_MAP(XX)                                                                          \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(ETOOBIG, MERR_ETOOBIG, "message exceeds the size limit")                                    \
    XX(EMALFORMED, MERR_EMALFORMED, "malformed msgpack")                                           \
    XX(EUNSENDABLE, MERR_EUNSENDABLE, "value has no msgpack form")

MERR_ENUM(mpl_errno, MPL, MPL_ERRNO_MAP)

typedef struct mpl_limits {
    size_t max_bytes;   /* largest message, either direction */
    unsigned max_depth; /* deepest nesting of arrays and maps (top level = 1) */
    size_t max_top;     /* most elements of the top-level array (decoding) */
} mpl_limits;

/* 64 MiB, depth 128, 4096 top-level elements. */
void mpl_limits_default(mpl_limits *lim);

/*
 * Decodes data (one msgpack array and nothing after it) and pushes its
 * elements onto L: nil, booleans, integers (unsigned beyond 2^63-1 refused),
 * floats, str and bin as strings, arrays as sequences, maps as tables (nil
 * or NaN keys and duplicate keys refused; nil values dropped). *n receives
 * the count. An empty input (len 0) is an empty array. On error nothing is
 * pushed and err holds a message with the byte offset. data is only read.
 */
int mpl_decode_array(lua_State *L, const char *data, size_t len, const mpl_limits *lim, int *n,
                     char *err, size_t errlen);

/*
 * Encodes the n values at stack indices first..first+n-1 as one msgpack
 * array. Tables whose keys are exactly 1..k become arrays (the empty table
 * an empty array), other tables maps; strings that are valid UTF-8 become
 * str, others bin; integral floats stay floats. Functions, threads and
 * userdata are refused, naming where ("result #2.key"). *out is malloc'd
 * (the caller frees it) or NULL on error. The stack is left as it was.
 */
int mpl_encode_values(lua_State *L, int first, int n, const mpl_limits *lim, char **out,
                      size_t *outlen, char *err, size_t errlen);

#endif
