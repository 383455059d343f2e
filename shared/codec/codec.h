/*
** codec.h: Lua values <-> msgpack messages (the closure codec).
** A pool task is a function plus its arguments encoded in one VM and decoded
** in another; docs/wire-format.md describes the bytes.
*/
#ifndef MUTIRAO_CODEC_H
#define MUTIRAO_CODEC_H

#include <stddef.h>

#include <lua.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Newest version of the wire format. The encoder writes the lowest version
   a message needs (2: a table with a metatable; 3: a function as source),
   so older decoders still read everything they can; the decoder reads
   versions 1 up to this one. */
#define CODEC_FORMAT_VERSION 3

/* Error codes: negative ints, one table. XX(name, value, message): base
 * codes (MERR_*) and the codec's own, -101... (errors.h). */
#define CODEC_ERRNO_MAP(XX)                                                                        \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(EINVAL, MERR_EINVAL, "invalid argument")                                                    \
    XX(EUNSENDABLE, MERR_EUNSENDABLE, "value cannot travel")                                       \
    XX(ETOOBIG, MERR_ETOOBIG, "message exceeds the size limit")                                    \
    XX(ETOODEEP, -101, "nesting exceeds the depth limit")                                          \
    XX(ETOOMANY, -102, "element count exceeds the limit")                                          \
    XX(EMAGIC, MERR_EMAGIC, "not a mutirao codec message")                                         \
    XX(EVERSION, MERR_EVERSION, "unsupported codec format version")                                \
    XX(ETRUNCATED, MERR_ETRUNCATED, "truncated message")                                           \
    XX(EMALFORMED, MERR_EMALFORMED, "malformed message")                                           \
    XX(EBYTECODE, -103, "bytecode refused")                                                        \
    XX(ELOAD, -104, "bytecode does not load in this Lua")                                          \
    XX(EMODULE, -105, "module reference cannot be resolved")                                       \
    XX(EUDATA, -106, "userdata hook failed")                                                       \
    XX(ELUA, -107, "Lua error inside the codec")

MERR_ENUM(codec_errno, CODEC, CODEC_ERRNO_MAP)

/* Static description of an error code ("unknown error" for others). */
const char *codec_strerror(int err);
/* Static name of an error code, e.g. "ETRUNCATED" ("OK" for 0, "UNKNOWN" for others). */
const char *codec_errname(int err);

/*
** Limits and trust. Both directions honour max_bytes and max_depth; the
** decoder also honours max_elems and the allow_* flags.
*/
typedef struct codec_limits {
    size_t max_bytes;   /* largest whole message, header included */
    unsigned max_depth; /* deepest nesting of tables and functions */
    size_t max_elems;   /* most values (every node counts) in one message */
    int allow_bytecode; /* 0: refuse functions sent as bytecode */
    int allow_source;   /* 0: refuse functions sent as source (compiled here) */
    /* Encode only: functions travel as source (their chunk's text and their
     * place in it) for receivers that do not load bytecode; a function whose
     * chunk's text is not known cannot travel (see codec_note_source). */
    int send_source;
    /* With send_source: the text of a function of a "@file" chunk may be read
     * from its file (0 in a sandboxed task: it must not open files). */
    int source_files;
    int allow_require; /* 0: module refs resolve only to loaded modules */
    /* How error messages name the encoded values: "<value_name> #<n>" with n
     * counted from first_number ("argument #1" by default). */
    const char *value_name;
    int first_number;
    /* Handed to the userdata hooks of this one call (NULL by default): what
     * the caller's layer needs to say where the values travel (see
     * lua/core/travel.h). */
    void *call;
    /* Decode only, NULL by default: called with a table that a message
     * refers to by name or by reference (a module, a registered metatable,
     * an object seen before) at the top of L's stack, except where it is a
     * table's metatable; it may replace it (the task sandbox gives a task a
     * view of the VM's shared tables that it cannot change). */
    void (*view)(lua_State *L);
} codec_limits;

/* Encode: a function that, given a table at idx that stands for another
 * (the task sandbox's view of a shared table), pushes that one and returns
 * 1 (else 0, nothing pushed): the table travels as the one it stands for
 * (a module by name, the globals). One for the process; NULL: none. */
typedef int (*codec_unview_fn)(lua_State *L, int idx);
void codec_set_unview(codec_unview_fn fn);

/* Fills *lim with the defaults: 64 MiB, depth 128, 4 Mi values, no
   functions, no require, functions sent as bytecode. The caller owns *lim. */
void codec_limits_default(codec_limits *lim);

/*
** Encodes the n values at stack indices first..first+n-1 of L as one message.
** On success *out is a malloc'd buffer the caller must free() and *outlen its
** size; on error *out is NULL, nothing is allocated, err (if not NULL) holds
** a message naming the value that cannot travel and where it is. lim may be
** NULL (defaults). The stack of L is left as it was.
*/
int codec_encode(lua_State *L, int first, int n, const codec_limits *lim, char **out,
                 size_t *outlen, char *err, size_t errlen);

/*
** The same, writing into the caller's buf of cap bytes while the message
** fits: then *out == buf and nothing is allocated; a larger message goes to a
** malloc'd buffer the caller frees (test *out != buf).
*/
int codec_encode_buf(lua_State *L, int first, int n, const codec_limits *lim, char *buf, size_t cap,
                     char **out, size_t *outlen, char *err, size_t errlen);

/*
** A message of one Lua string (text, len bytes) made without a Lua state:
** *out is malloc'd (the caller frees it). 0 or CODEC_ENOMEM.
*/
int codec_encode_text(const char *text, size_t len, char **out, size_t *outlen);

/*
** Decodes a whole message and pushes its values onto L; *nvals receives how
** many. data is only read during the call (the caller keeps owning it). On
** error nothing is pushed, nothing leaks and err holds a message. lim may be
** NULL (defaults: functions refused).
*/
int codec_decode(lua_State *L, const char *data, size_t len, const codec_limits *lim, int *nvals,
                 char *err, size_t errlen);

/*
** Userdata hooks. enc is given the userdata at stack index idx (and the
** call's codec_limits.call) and must push
** exactly one Lua string (opaque bytes) and return 0, or return < 0 and push
** nothing. dec is given those bytes and must push exactly one value and
** return 0, or return < 0 and push nothing. Both run inside the codec's
** protected call and may raise Lua errors (reported as CODEC_EUDATA/ELUA).
*/
typedef int (*codec_udata_encode_fn)(lua_State *L, int idx, void *ud, void *call);
typedef int (*codec_udata_decode_fn)(lua_State *L, const char *data, size_t len, void *ud,
                                     void *call);

/* Registers the hooks for userdata whose metatable is the one
   luaL_newmetatable(L, tname) made (tname at most 255 bytes). Replaces an
   earlier registration; the VM keeps a copy of tname, the caller keeps ud
   alive as long as L. */
int codec_register_udata(lua_State *L, const char *tname, codec_udata_encode_fn enc,
                         codec_udata_decode_fn dec, void *ud);

/* Counters of the per-VM caches (see docs/wire-format.md, "Caches"). */
typedef struct codec_stats {
    unsigned long long dumps;         /* lua_dump calls by the encoder */
    unsigned long long dump_hits;     /* functions whose dump came from cache */
    unsigned long long loads;         /* lua_load calls for received bytecode */
    unsigned long long load_hits;     /* functions made without lua_load */
    unsigned long long modmap_builds; /* module reverse-map (re)builds */
    unsigned long long compiles;      /* chunks compiled for functions as source */
    unsigned long long source_hits;   /* functions as source found compiled */
    unsigned long long source_resets; /* the source tables started over (budget) */
    unsigned long long source_fast;   /* of source_hits: found by the front (no Lua string) */
} codec_stats;

/* For tests: nonzero makes every function as source hash alike in the
   front of the source cache (every entry collides); process-wide. */
void codec_test_collide(int on);

/* Longest text a function as source may have (bytes): a receiver refuses
   longer ones (CODEC_ETOOBIG), a sender does not send them. */
#define CODEC_SOURCE_MAX (256 << 10)

/*
** Functions as source (codec_limits.send_source): the encoder finds the text
** a function was compiled from by its chunk name: the texts given here, then
** for "@file" the file as it is now, and for a chunk loaded without a name
** the name itself (load's default). Tells L's VM that text (len bytes) is a
** chunk named chunkname, for chunks compiled from memory under a name
** (whoever compiles them calls this). 0 or CODEC_ENOMEM / CODEC_ELUA.
*/
int codec_note_source(lua_State *L, const char *chunkname, const char *text, size_t len);

/* Copies L's counters into *out (all zero if the codec never ran in L). */
int codec_stats_get(lua_State *L, codec_stats *out);

/* Turns both function caches of L on (default) or off and empties them;
   for benchmarks and tests. */
int codec_cache_enable(lua_State *L, int on);

#ifdef __cplusplus
}
#endif

#endif /* MUTIRAO_CODEC_H */
