/*
** codec_int.h: internals shared by the codec's files (codec__ prefix).
** Not installed, not for other modules: include shared/codec.h instead.
*/
#ifndef MUTIRAO_CODEC_INT_H
#define MUTIRAO_CODEC_INT_H

#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <msgpack.h>

#include "codec.h"

#define CODEC__NORETURN __attribute__((noreturn))

/* Header: 3 magic bytes then the version byte. */
#define CODEC__MAGIC "MTR"
#define CODEC__HDRLEN 4

/* msgpack ext types (application range 0..127); see docs/wire-format.md. */
enum {
    CODEC__EXT_REF = 1,     /* payload: object id, big endian, 1/2/4 bytes */
    CODEC__EXT_FUNC = 2,    /* empty; only as element 1 of a function array */
    CODEC__EXT_UPREF = 3,   /* payload: u32 object id, u8 upvalue number */
    CODEC__EXT_GLOBALS = 4, /* empty: the receiver's globals table */
    CODEC__EXT_MODULE = 5,  /* payload: module name */
    CODEC__EXT_MODFUNC = 6, /* payload: module name, NUL, field name */
    CODEC__EXT_UDATA = 7,   /* payload: u8 n, tname (n bytes), hook bytes */
    /* version 2 */
    CODEC__EXT_META = 8,    /* empty; as a map key: the entry's value is the table's metatable */
    CODEC__EXT_REGMETA = 9, /* payload: name of a metatable registered with luaL_newmetatable */
    /* version 3 */
    CODEC__EXT_SOURCE = 10 /* payload: u16 path; only as element 2 of a function array */
};

/* Hard cap on max_depth, whatever the caller asks: C stack safety. */
#define CODEC__DEPTH_CAP 1000u
/* Path segments kept in the context itself (deeper paths use a userdata). */
#define CODEC__PATH_INLINE 136u
/* Tables are preallocated to at most this many slots; they grow after. */
#define CODEC__PREALLOC_CAP 4096u
/* Slots of the "recently dumped" memo (closures seen once). */
#define CODEC__RECENT_SLOTS 8
/* Most distinct received bytecodes kept per VM before the cache restarts. */
#define CODEC__LOADCACHE_MAX 256
/* ... and at most this many bytes of bytecode (its keys). */
#define CODEC__LOADCACHE_BYTES ((size_t)16 << 20)
/* Texts noted by codec_note_source kept per VM before NOTED starts over. */
#define CODEC__SOURCES_MAX 256
/* Bytes of strings the three source tables hold at most per VM. */
#define CODEC__SRC_BUDGET ((size_t)16 << 20)
/* Largest file the encoder reads to find a function's text. */
#define CODEC__FILE_MAX ((off_t)8 << 20)
/* Longest chunk name a message may give. */
#define CODEC__CHUNKNAME_MAX 4096u
/* Factories are compiled for functions with at most this many upvalues
   (Lua allows 200 locals per function). */
#define CODEC__FACTORY_MAXUP 200

/* Slots of the per-VM state table kept in the registry. */
enum {
    CODEC__S_DUMPCACHE = 1, /* weak ("kv"): Lua closure -> dump string */
    CODEC__S_LOADCACHE,     /* bytecode string -> function or factory */
    CODEC__S_LOADCOUNT,     /* number of entries in the load cache */
    CODEC__S_MODMAP,        /* module table / C function -> name */
    CODEC__S_MODSIG,        /* signature of package.loaded for MODMAP */
    CODEC__S_HOOKS,         /* tname -> codec__hook userdata */
    CODEC__S_VM,            /* codec__vm userdata */
    CODEC__S_TEMPLATES,     /* nups -> stripped factory template dump */
    CODEC__S_RECENT,        /* weak ("v"): 2k-1 -> closure, 2k -> its dump */
    CODEC__S_SRCDESC,       /* function dump -> {chunkname, text, path} (source.c) */
    CODEC__S_SOURCES,       /* chunk name -> {text = true} */
    CODEC__S_SRCCACHE,      /* text -> {[chunkname] = dump, [chunkname NUL path] = bytecode} */
    CODEC__S_NOTED,         /* chunk name -> {text = true}: codec_note_source's, kept */
    CODEC__S_NOTEDCOUNT,    /* its texts */
    CODEC__S_PROTOS,        /* weak ("v"): prototype address -> a live closure of it */
    CODEC__S_LOADFRONT,     /* 2k+1 -> bytecode string, 2k+2 -> its function (codec__vm.front) */
    CODEC__S_LASTFN,        /* the closure whose prototype codec__vm.last_proto is (kept alive) */
    CODEC__S_LASTDUMP,      /* its dump (codec__vm.last_dump) */
    CODEC__S_SRCFRONT,      /* 3k+1 -> text, 3k+2 -> chunk name, 3k+3 -> bytecode (srcfront) */
    CODEC__S_N = CODEC__S_SRCFRONT
};

/* Entries of the front of the load cache: received bytecode found by a hash
   of its bytes and a comparison, without making a Lua string of it. */
#define CODEC__FRONT_SLOTS 64
/* Largest bytecode kept there (bytes). */
#define CODEC__FRONT_MAXLEN ((size_t)64 << 10)

typedef struct codec__front {
    const char *bytes; /* the string at LOADFRONT[2k+1] (kept alive there) */
    size_t len;        /* 0: empty */
    uint64_t hash;
    int nups; /* of the function made from it */
} codec__front;

/* Entries of the front of the source cache (source.c): a function received
   as source (its path, chunk name and text as the message has them) found
   by a hash of those bytes and a comparison of all of them, without making
   Lua strings of them; it gives the bytecode SRCCACHE gave the first time. */
#define CODEC__SRCFRONT_SLOTS 64
/* Longest text kept there (bytes; the front holds at most SLOTS of them
   besides the budget of the source tables) and longest path (2 bytes per
   level). */
#define CODEC__SRCFRONT_TEXTMAX ((size_t)64 << 10)
#define CODEC__SRCFRONT_PATHMAX 32u

typedef struct codec__srcfront {
    const char *text; /* the string at SRCFRONT[3k+1] (kept alive there) */
    const char *name; /* the string at SRCFRONT[3k+2]; NULL: named by the text */
    size_t textlen;
    size_t namelen;
    uint64_t hash;
    uint32_t plen;
    int used;
    unsigned char path[CODEC__SRCFRONT_PATHMAX];
} codec__srcfront;

/* Per-VM C state (a userdata in the state table). */
typedef struct codec__vm {
    codec_stats stats; /* counters reported by codec_stats_get */
    int cache_on;      /* both function caches enabled */
    size_t src_bytes;  /* held by the source tables (source.c) */
    size_t load_bytes; /* bytecode keys of the load cache */
    codec__front front[CODEC__FRONT_SLOTS];
    codec__srcfront srcfront[CODEC__SRCFRONT_SLOTS];
    /* The prototype last found in the dump cache and its dump: a loop that
     * submits a new closure of one function each time finds it here
     * without a table lookup (both anchored in the state table) */
    const void *last_proto;
    const char *last_dump;
    size_t last_dlen;
} codec__vm;

/* A registered userdata hook (a userdata in the hooks table). */
typedef struct codec__hook {
    codec_udata_encode_fn enc; /* bytes from a userdata */
    codec_udata_decode_fn dec; /* a value from bytes */
    void *ud;                  /* caller's pointer, passed back */
} codec__hook;

/* One step of the path from an argument to the value being encoded. */
enum {
    CODEC__SEG_ARG,
    CODEC__SEG_FIELD,
    CODEC__SEG_INDEX,
    CODEC__SEG_KEY,
    CODEC__SEG_UPVAL,
    CODEC__SEG_META /* the metatable of the table before it */
};
typedef struct codec__seg {
    int kind;      /* CODEC__SEG_* */
    int a;         /* ARG: number; FIELD: key stack index; UPVAL: fn index */
    lua_Integer i; /* INDEX: array index; UPVAL: upvalue number */
} codec__seg;

/* A growable byte buffer owned by a codec call (freed by the entry point
   even when a Lua error unwinds the work). */
typedef struct codec__buf {
    char *data;   /* malloc'd, or the caller's buffer while borrowed */
    size_t len;   /* bytes used */
    size_t cap;   /* bytes allocated */
    int borrowed; /* data is the caller's (codec_encode_buf): never realloc'd or freed */
} codec__buf;

/* The context of one codec_encode / codec_decode call. */
typedef struct codec__ctx {
    lua_State *L;
    codec_limits lim; /* effective limits (depth capped) */
    int code;         /* codec error code of a failure raised by us */
    char msg[320];    /* its message */
    codec__vm *vm;    /* per-VM counters and switches */
    /* absolute stack slots inside the protected call */
    int state;  /* per-VM state table */
    int objs;   /* encode: object -> id; decode: id+1 -> object */
    int blobs;  /* encode: dump -> index; decode: index -> code */
    int upvals; /* encode: upvalue id -> (object id << 8 | n) */
    /* A message of one object and one bytecode blob (a task's function)
     * makes no work table: the first object and the first blob wait in
     * these stack slots, the tables are made for a second one. */
    int obj1;                    /* the object numbered 0 (encode) / 1 (decode) */
    int blob1;                   /* encode: the string of blob 1 */
    const unsigned char *blob1p; /* decode: the bytes of blob 1, in the message */
    uint32_t blob1n;
    void *up1;        /* encode: the first upvalue id seen (upvals is made for a second) */
    lua_Integer up1v; /* its (object id << 8 | n) */
    int globals;      /* the globals table of L */
    int as_meta;      /* decode: the next value is a table's metatable */
    int nobjs;        /* objects numbered so far */
    int nblobs;       /* bytecode blobs numbered so far */
    unsigned depth;   /* current nesting */
    size_t nodes;     /* values counted so far (max_elems) */
    /* encoder */
    codec__buf out;                             /* the message being written */
    codec__buf scratch;                         /* lua_dump output, factory bytes */
    int overflow;                               /* out hit max_bytes */
    msgpack_packer pk;                          /* writes into out */
    codec__seg *path;                           /* path of the value being encoded */
    codec__seg path_inline[CODEC__PATH_INLINE]; /* its usual storage */
    int npath;                                  /* its length */
    int modmap_checked;                         /* the module map was validated by this call */
    int nargs;                                  /* encode: values to encode (args 2..nargs+1) */
    int v2;                                     /* encode: the message needs format version 2 */
    int v3;                                     /* encode: ... version 3 (functions as source) */
    /* decoder */
    const unsigned char *p;   /* next byte */
    const unsigned char *end; /* one past the last byte */
    int nvals;                /* decode: values pushed */
    int version;              /* decode: format version of the message */
} codec__ctx;

/* codec.c */
void codec__state(lua_State *L);
codec__vm *codec__vm_of(lua_State *L, int state);
CODEC__NORETURN void codec__fail(codec__ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void codec__checkstack(codec__ctx *c, int n);
/* Bytes of a message (untrusted: a name in it) as an error message may
 * show them: printable ASCII as is, any other byte and ' and \ as \xNN,
 * as many as fit in out (size bytes, at least 8) with "..." after a
 * longer one. out. */
const char *codec__shown(const void *s, size_t n, char *out, size_t size);
/* The size of a codec__shown buffer for a name (at most 99 characters). */
#define CODEC__SHOWN 100
/* Makes the work table at stack slot `slot` (reserved as nil) exist. */
static inline void codec__table(lua_State *L, int slot)
{
    if (lua_type(L, slot) == LUA_TNIL) {
        lua_newtable(L);
        lua_replace(L, slot);
    }
}
int codec__buf_add(codec__buf *b, const void *data, size_t len);

/* encode.c */
/* Encodes the table at idx as the receiver's globals (a function's _ENV). */
void codec__encode_as_globals(codec__ctx *c, int idx);
void codec__encode_value(codec__ctx *c, int idx);
void codec__pack_ok(codec__ctx *c, int rc);
void codec__register(codec__ctx *c, int idx);
CODEC__NORETURN void codec__unsendable(codec__ctx *c, const char *what);
void codec__path_push(codec__ctx *c, int kind, int a, lua_Integer i);

/* decode.c */
void codec__decode_value(codec__ctx *c);
void codec__register_top(codec__ctx *c);
int codec__peek_ext(codec__ctx *c, int *type);
void codec__read_ext(codec__ctx *c, int *type, const unsigned char **data, uint32_t *len);
void codec__read_raw(codec__ctx *c, const unsigned char **data, uint32_t *len);
int codec__peek_int(codec__ctx *c);
lua_Integer codec__read_int(codec__ctx *c);

/* closure.c */
void codec__encode_function(codec__ctx *c, int idx);
void codec__decode_function(codec__ctx *c, uint32_t count);
/* Pushes the cached dump of the Lua function at f (a closure of a prototype
   sent before) and returns 1, else returns 0 pushing nothing. Only reads
   tables: raises nothing (2 free stack slots needed). */
int codec__cached_dump(lua_State *L, int state, int f);
/* The dump of the Lua function at f when its prototype's is cached: the
   last one found (returns 1), else from the cache (returns 2: pushed, and
   *proto set for codec__last_dump_keep); 0: not cached. */
int codec__last_dump(lua_State *L, int state, codec__vm *vm, int f, const char **dump, size_t *dlen,
                     const void **proto);
/* Remembers f's prototype and its dump (at index dump) as the last one
   found, both anchored in the state table. */
void codec__last_dump_keep(lua_State *L, int state, codec__vm *vm, int f, int dump,
                           const void *proto);
/* Pushes the dump of the Lua function at f (cached per VM). */
void codec__push_dump(codec__ctx *c, int f);
/* Writes the string at idx as a bin, or as the index of the same bytes
   sent before in this message. */
void codec__pack_blob(codec__ctx *c, int idx);
/* Reads what codec__pack_blob wrote and pushes the string (what: "bytecode",
   "source": for the error naming a bad index). */
void codec__read_blob(codec__ctx *c, const char *what);
/* The same without pushing: *p, *n are the bytes, valid until the decode
   ends (in the message, or in a string the work tables keep). */
void codec__read_blob_bytes(codec__ctx *c, const char *what, const char **p, size_t *n);
/* Pushes the object numbered id (decode) / gives the id of the object at
   idx, -1 when it has none yet (encode). */
void codec__push_obj(codec__ctx *c, lua_Integer id);
lua_Integer codec__obj_id(codec__ctx *c, int idx);

/* source.c */
/* Writes the function at f as [ext SOURCE, chunk name, text] (the array
   header and ext FUNC are written). Raises when its source is unknown. */
void codec__encode_source(codec__ctx *c, int f);
/* Reads ext SOURCE, chunk name and text; pushes the function's bytecode,
   compiled here. */
void codec__decode_source(codec__ctx *c);
/* At the start of a codec call: the source tables start over when they hold
   more than times x their budget (decode 1, encode 2: see source.c). */
void codec__source_budget(codec__ctx *c, int times);
/* Empties the front of the source cache (with SRCCACHE). */
void codec__srcfront_clear(lua_State *L, int state, codec__vm *vm);

/* modref.c */
int codec__modref_name(codec__ctx *c, int idx);
void codec__modref_resolve(codec__ctx *c, int type, const unsigned char *p, uint32_t len);

/* bytecode.c: Lua 5.4 binary chunks (output of lua_dump). */
size_t codec__bc_hdrlen(const char *bc, size_t len);
int codec__bc_upvalues(const char *bc, size_t len, size_t hdrlen, size_t *off, unsigned *n);
int codec__bc_child(const char *bc, size_t len, size_t hdrlen, size_t *start, size_t *end);
/* Deepest function nesting a chunk may have (Lua's own limit is lower). */
#define CODEC__BC_MAXDEPTH 200
/* A function inside a chunk: its bytes are [start, end); its source field
   (a dumped string) ends at after_source. Offsets from the chunk's start. */
typedef struct codec__bc_fn {
    size_t start, after_source, end;
    unsigned nups;
} codec__bc_fn;
/* Called for each function of a chunk, nested ones before their parent,
   with its path from the main function (depth child indices, 0-based; the
   main function has depth 0). Nonzero stops the walk. */
typedef int (*codec__bc_visit_fn)(void *ud, const uint16_t *path, int depth, const codec__bc_fn *f);
/* Walks a whole chunk (header included). 0 when all of it was read, 1 when
   the visitor stopped it, -1 when it is not a well-formed chunk. */
int codec__bc_walk(const char *bc, size_t len, codec__bc_visit_fn fn, void *ud);

#endif /* MUTIRAO_CODEC_INT_H */
