/*
** closure.c: Lua functions travel as [FUNC, bytecode, upvalue...]. Upvalues
** are copied by value; one shared by several closures (same lua_upvalueid)
** is sent once and rejoined with lua_upvaluejoin on arrival.
**
** Caches (per VM, see docs/wire-format.md):
** - encoder: prototype -> a live closure of it (weak) -> its dump (weak),
**   so that a new closure of a prototype sent before (the usual
**   pool_submit(p, function() ... end)) costs two table lookups, not a
**   dump. The prototype is read from the closure (Lua 5.4's LClosure
**   layout, checked once per process against closures known to share a
**   prototype or not; if the check fails, closures are cached one by one:
**   on their second encoding, a new closure is dumped again).
** - decoder: bytecode -> "factory" (found first by a hash of the bytes and
**   a comparison, with no Lua string made; then by the string): the received prototype grafted
**   into a tiny compiled chunk `local u1..uN return function() ... end`, so
**   one call makes a fresh closure with fresh upvalues without lua_load.
**   Functions without upvalues are reused as they are.
*/
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec_int.h"

/* ---- prototypes ---------------------------------------------------------- */

/* How Lua 5.4 lays out a Lua closure (lobject.h: CommonHeader, nupvalues,
   gclist, then its Proto *); lua_topointer gives its address. */
typedef struct lclosure_head {
    void *next;
    unsigned char tt, marked, nupvalues;
    void *gclist;
    const void *p;
} lclosure_head;

#define LCLOSURE_TT 6 /* LUA_VLCL: a Lua closure */

static atomic_int proto_layout; /* 0: not checked yet, 1: as above, -1: not */

static const lclosure_head *closure_head(lua_State *L, int f)
{
    return lua_topointer(L, f);
}

/* Checks the layout on closures known to share a prototype (two made by one
   function) or not. Runs in the codec's protected call. */
static int proto_check(lua_State *L)
{
    static const char probe[] = "local a, b = 1, 2 "
                                "local function f() return function() return a + b end end "
                                "return f(), f(), function() return a end";
    if (lua_version(L) != LUA_VERSION_NUM || LUA_VERSION_NUM != 504)
        return -1;
    int top = lua_gettop(L);
    if (luaL_loadbufferx(L, probe, sizeof probe - 1, "=codec-probe", "t") != LUA_OK) {
        lua_settop(L, top);
        return 0; /* out of memory (a task's limit): not known yet, checked again later */
    }
    lua_call(L, 0, 3);
    const lclosure_head *x = closure_head(L, top + 1), *y = closure_head(L, top + 2),
                        *z = closure_head(L, top + 3);
    int ok = x && y && z && x != y && x->tt == LCLOSURE_TT && y->tt == LCLOSURE_TT &&
             z->tt == LCLOSURE_TT && x->nupvalues == 2 && y->nupvalues == 2 && z->nupvalues == 1 &&
             x->p && x->p == y->p && z->p && z->p != x->p && x->p != (const void *)x &&
             x->p != (const void *)y;
    lua_settop(L, top);
    return ok ? 1 : -1;
}

/* The prototype of the Lua function at f, or NULL when it cannot be read. */
static const void *proto_of(codec__ctx *c, int f)
{
    int layout = atomic_load_explicit(&proto_layout, memory_order_relaxed);
    if (layout == 0) {
        layout = proto_check(c->L);
        if (layout != 0)
            atomic_store(&proto_layout, layout);
    }
    if (layout <= 0)
        return NULL;
    const lclosure_head *h = closure_head(c->L, f);
    return h && h->tt == LCLOSURE_TT ? h->p : NULL;
}

/* ---- encoding ---------------------------------------------------------- */

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    codec__ctx *c = ud;
    return codec__buf_add(&c->scratch, p, n) != 0;
}

/* Pushes the dump (not stripped: tracebacks keep file and line) of the Lua
   function at f. A closure enters the dump cache on its second encoding:
   the first only leaves it in a small "recent" memo, so that a new closure
   per task (never encoded again) does not pay for a weak-table insertion. */
int codec__cached_dump(lua_State *L, int state, int f)
{
    if (atomic_load_explicit(&proto_layout, memory_order_relaxed) <= 0)
        return 0;
    const lclosure_head *h = closure_head(L, f);
    if (!h || h->tt != LCLOSURE_TT)
        return 0;
    lua_rawgeti(L, state, CODEC__S_PROTOS);
    lua_pushlightuserdata(L, (void *)h->p);
    if (lua_rawget(L, -2) != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return 0;
    }
    lua_rawgeti(L, state, CODEC__S_DUMPCACHE);
    lua_insert(L, -2);
    if (lua_rawget(L, -2) != LUA_TSTRING) {
        lua_pop(L, 3);
        return 0;
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 1;
}

int codec__last_dump(lua_State *L, int state, codec__vm *vm, int f, const char **dump, size_t *dlen,
                     const void **proto)
{
    if (atomic_load_explicit(&proto_layout, memory_order_relaxed) <= 0)
        return 0;
    const lclosure_head *h = closure_head(L, f);
    if (!h || h->tt != LCLOSURE_TT)
        return 0;
    if (vm->last_dump && h->p == vm->last_proto) {
        *dump = vm->last_dump;
        *dlen = vm->last_dlen;
        *proto = NULL;
        return 1;
    }
    if (!codec__cached_dump(L, state, f))
        return 0;
    *dump = lua_tolstring(L, -1, dlen);
    *proto = h->p;
    return 2;
}

void codec__last_dump_keep(lua_State *L, int state, codec__vm *vm, int f, int dump,
                           const void *proto)
{
    /* (slots of the state table's array part: no allocation, no error) */
    lua_pushvalue(L, f);
    lua_rawseti(L, state, CODEC__S_LASTFN);
    lua_pushvalue(L, dump);
    lua_rawseti(L, state, CODEC__S_LASTDUMP);
    vm->last_proto = proto;
    vm->last_dump = lua_tolstring(L, dump, &vm->last_dlen);
}

static void dump_new(codec__ctx *c, int f)
{
    lua_State *L = c->L;
    c->scratch.len = 0;
    lua_pushvalue(L, f);
    int rc = lua_dump(L, dump_writer, c, 0);
    lua_pop(L, 1);
    if (rc != 0)
        codec__fail(c, CODEC_ENOMEM, "out of memory dumping a function");
    c->vm->stats.dumps++;
    lua_pushlstring(L, c->scratch.data, c->scratch.len);
}

/* The prototype cache: PROTOS[prototype] is a live closure of it (then the
   address names that prototype: it cannot be freed and reused while the
   closure lives) and DUMPCACHE[that closure] its dump. */
static int push_proto_dump(codec__ctx *c, int f, const void *proto)
{
    lua_State *L = c->L;
    lua_rawgeti(L, c->state, CODEC__S_PROTOS);
    lua_pushlightuserdata(L, (void *)proto);
    if (lua_rawget(L, -2) == LUA_TFUNCTION) { /* [protos, g] */
        lua_rawgeti(L, c->state, CODEC__S_DUMPCACHE);
        lua_insert(L, -2);
        if (lua_rawget(L, -2) == LUA_TSTRING) { /* [protos, cache, dump] */
            lua_replace(L, -3);
            lua_pop(L, 1);
            c->vm->stats.dump_hits++;
            return 1;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* [protos] */
    dump_new(c, f);
    lua_pushlightuserdata(L, (void *)proto);
    lua_pushvalue(L, f);
    lua_rawset(L, -4); /* protos[proto] = f */
    lua_rawgeti(L, c->state, CODEC__S_DUMPCACHE);
    lua_pushvalue(L, f);
    lua_pushvalue(L, -3);
    lua_rawset(L, -3); /* cache[f] = dump */
    lua_pop(L, 1);
    lua_remove(L, -2);
    return 1;
}

void codec__push_dump(codec__ctx *c, int f)
{
    lua_State *L = c->L;
    int on = c->vm->cache_on;
    lua_Integer slot = 0;
    if (on) {
        const void *proto = proto_of(c, f);
        if (proto && push_proto_dump(c, f, proto))
            return;
        lua_rawgeti(L, c->state, CODEC__S_DUMPCACHE);
        lua_pushvalue(L, f);
        if (lua_rawget(L, -2) == LUA_TSTRING) {
            lua_remove(L, -2);
            c->vm->stats.dump_hits++;
            return;
        }
        lua_pop(L, 1); /* [cache] */
        uintptr_t p = (uintptr_t)lua_topointer(L, f);
        slot = (lua_Integer)(((p >> 4) ^ (p >> 10)) % CODEC__RECENT_SLOTS);
        lua_rawgeti(L, c->state, CODEC__S_RECENT); /* [cache, recent] */
        lua_rawgeti(L, -1, 2 * slot + 1);
        int seen = lua_rawequal(L, -1, f);
        lua_pop(L, 1);
        if (seen) { /* second time: promote into the cache */
            lua_rawgeti(L, -1, 2 * slot + 2);
            lua_pushvalue(L, f);
            lua_pushvalue(L, -2);
            lua_rawset(L, -5); /* cache[f] = dump */
            lua_replace(L, -3);
            lua_pop(L, 1);
            c->vm->stats.dump_hits++;
            return;
        }
    }
    dump_new(c, f);
    if (on) { /* [cache, recent, dump] */
        lua_pushvalue(L, f);
        lua_rawseti(L, -3, 2 * slot + 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, 2 * slot + 2);
        lua_replace(L, -3);
        lua_pop(L, 1);
    }
}

static void pack_bin(codec__ctx *c, int idx)
{
    size_t n;
    const char *bc = lua_tolstring(c->L, idx, &n);
    codec__pack_ok(c, msgpack_pack_bin(&c->pk, n));
    codec__pack_ok(c, msgpack_pack_bin_body(&c->pk, bc, n));
}

void codec__pack_blob(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    idx = lua_absindex(L, idx);
    if (c->nblobs == 0) { /* the first: no table yet */
        lua_pushvalue(L, idx);
        lua_replace(L, c->blob1);
        c->nblobs = 1;
        pack_bin(c, idx);
        return;
    }
    if (lua_type(L, c->blobs) == LUA_TNIL) {
        lua_createtable(L, 0, 4);
        lua_replace(L, c->blobs);
        lua_pushvalue(L, c->blob1);
        lua_pushinteger(L, 1);
        lua_rawset(L, c->blobs);
    }
    lua_pushvalue(L, idx);
    if (lua_rawget(L, c->blobs) == LUA_TNUMBER) {
        codec__pack_ok(c, msgpack_pack_int64(&c->pk, lua_tointeger(L, -1)));
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushinteger(L, ++c->nblobs);
    lua_rawset(L, c->blobs);
    pack_bin(c, idx);
}

void codec__read_blob_bytes(codec__ctx *c, const char *what, const char **bytes, size_t *len)
{
    lua_State *L = c->L;
    if (codec__peek_int(c)) {
        lua_Integer i = codec__read_int(c);
        if (i < 1 || i > c->nblobs)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: unknown %s index %lld", what,
                        (long long)i);
        if (i == 1) {
            *bytes = (const char *)c->blob1p;
            *len = c->blob1n;
            return;
        }
        lua_rawgeti(L, c->blobs, i); /* kept by the table */
        *bytes = lua_tolstring(L, -1, len);
        lua_pop(L, 1);
        return;
    }
    const unsigned char *p;
    uint32_t n;
    codec__read_raw(c, &p, &n);
    if (c->nblobs == 0) { /* the first: the bytes in the message */
        c->blob1p = p;
        c->blob1n = n;
        c->nblobs = 1;
    } else { /* later ones are referred to from the table */
        codec__table(L, c->blobs);
        lua_pushlstring(L, (const char *)p, n);
        lua_rawseti(L, c->blobs, ++c->nblobs);
    }
    *bytes = (const char *)p;
    *len = n;
}

void codec__read_blob(codec__ctx *c, const char *what)
{
    const char *p;
    size_t n;
    codec__read_blob_bytes(c, what, &p, &n);
    lua_pushlstring(c->L, p, n);
}

void codec__encode_function(codec__ctx *c, int f)
{
    lua_State *L = c->L;
    lua_Integer objid = c->nobjs - 1; /* the caller just registered f */
    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">u", &ar);
    int nups = ar.nups;
    int as_source = c->lim.send_source;
    codec__pack_ok(c, msgpack_pack_array(&c->pk, (as_source ? 4 : 2) + (size_t)nups));
    codec__pack_ok(c, msgpack_pack_ext(&c->pk, 0, CODEC__EXT_FUNC));

    if (as_source) {
        codec__encode_source(c, f);
    } else {
        codec__push_dump(c, f);
        codec__pack_blob(c, lua_gettop(L));
        lua_pop(L, 1);
    }

    for (int i = 1; i <= nups; i++) {
        void *id = lua_upvalueid(L, f, i);
        /* seen before in this message? (the first id waits in c->up1, the
         * table is made for a second one) */
        int seen = 0;
        lua_Integer v = 0;
        if (id == c->up1 && id) {
            seen = 1;
            v = c->up1v;
        } else if (lua_type(L, c->upvals) != LUA_TNIL) {
            lua_pushlightuserdata(L, id);
            if (lua_rawget(L, c->upvals) == LUA_TNUMBER) {
                seen = 1;
                v = lua_tointeger(L, -1);
            }
            lua_pop(L, 1);
        }
        if (seen) {
            unsigned char b[5];
            lua_Integer owner = v >> 8;
            for (int k = 0; k < 4; k++)
                b[k] = (unsigned char)(owner >> (24 - 8 * k));
            b[4] = (unsigned char)(v & 0xff);
            codec__pack_ok(c, msgpack_pack_ext(&c->pk, 5, CODEC__EXT_UPREF));
            codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, b, 5));
            continue;
        }
        if (!c->up1 && id) {
            c->up1 = id;
            c->up1v = objid << 8 | i;
        } else {
            codec__table(L, c->upvals);
            lua_pushlightuserdata(L, id);
            lua_pushinteger(L, objid << 8 | i);
            lua_rawset(L, c->upvals);
        }
        const char *upname = lua_getupvalue(L, f, i);
        if (upname && strcmp(upname, "_ENV") == 0 && lua_type(L, -1) == LUA_TTABLE) {
            /* a function's environment, whatever table it is here (a test
             * framework's sandbox, a pool task's fresh globals), is the
             * receiver's globals */
            codec__encode_as_globals(c, lua_gettop(L));
            lua_pop(L, 1);
            continue;
        }
        codec__path_push(c, CODEC__SEG_UPVAL, f, i);
        codec__encode_value(c, lua_gettop(L));
        c->npath--;
        lua_pop(L, 1);
    }
}

/* ---- decoding ---------------------------------------------------------- */

typedef struct chunk {
    const char *p;
    size_t n;
} chunk;

static const char *chunk_reader(lua_State *L, void *ud, size_t *size)
{
    (void)L;
    chunk *k = ud;
    *size = k->n;
    k->n = 0;
    return *size ? k->p : NULL;
}

/* lua_load in binary mode; pushes the function or fails. */
static void load_bytes(codec__ctx *c, const char *p, size_t n)
{
    lua_State *L = c->L;
    chunk k = {p, n};
    c->vm->stats.loads++;
    int st = lua_load(L, chunk_reader, &k, "=(codec)", "b");
    if (st != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        codec__fail(c, st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_ELOAD,
                    "cannot load function bytecode: %s", m ? m : "?");
    }
}

static void add(codec__ctx *c, const void *p, size_t n)
{
    if (codec__buf_add(&c->scratch, p, n) != 0)
        codec__fail(c, CODEC_ENOMEM, "out of memory building a factory");
}

/* Pushes the stripped dump of `local u1..un return function() return
   u1..un end`, compiled once per VM and n. */
static void push_template(codec__ctx *c, int n)
{
    lua_State *L = c->L;
    lua_rawgeti(L, c->state, CODEC__S_TEMPLATES);
    if (lua_rawgeti(L, -1, n) == LUA_TSTRING) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 1);
    char v[16];
    c->scratch.len = 0;
    add(c, "local ", 6);
    for (int i = 1; i <= n; i++) {
        int k = snprintf(v, sizeof v, "%su%d", i > 1 ? "," : "", i);
        add(c, v, (size_t)k);
    }
    add(c, " return function() return ", strlen(" return function() return "));
    for (int i = 1; i <= n; i++) {
        int k = snprintf(v, sizeof v, "%su%d", i > 1 ? "," : "", i);
        add(c, v, (size_t)k);
    }
    add(c, " end", 4);
    int st = luaL_loadbufferx(L, c->scratch.data, c->scratch.len, "=codec-factory", "t");
    if (st != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        codec__fail(c, st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_ELUA, "cannot compile a factory: %s",
                    m ? m : "?");
    }
    c->scratch.len = 0;
    if (lua_dump(L, dump_writer, c, 1) != 0)
        codec__fail(c, CODEC_ENOMEM, "out of memory dumping a factory");
    lua_pop(L, 1);
    lua_pushlstring(L, c->scratch.data, c->scratch.len);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, n);
    lua_remove(L, -2);
}

/* Pushes a factory for the received bytecode bc of a function with nups
   upvalues and returns 1; returns 0 (pushing nothing) when bc does not have
   the expected shape, so that a plain lua_load reports the problem. */
static int push_factory(codec__ctx *c, const char *bc, size_t len, int nups)
{
    lua_State *L = c->L;
    push_template(c, nups);
    size_t tlen;
    const char *t = lua_tolstring(L, -1, &tlen);
    size_t th = codec__bc_hdrlen(t, tlen);
    size_t uh = codec__bc_hdrlen(bc, len);
    size_t cs, ce, uoff;
    unsigned un;
    if (th == 0 || uh != th || memcmp(bc, t, th) != 0 || (unsigned char)bc[uh] != nups ||
        codec__bc_upvalues(bc, len, uh, &uoff, &un) != 0 || un != (unsigned)nups) {
        lua_pop(L, 1);
        return 0;
    }
    if (codec__bc_child(t, tlen, th, &cs, &ce) != 0)
        codec__fail(c, CODEC_ELUA, "unexpected factory template layout");
    c->scratch.len = 0;
    add(c, t, cs);                        /* template up to its child */
    add(c, bc + uh + 1, uoff - (uh + 1)); /* received function head */
    for (unsigned i = 0; i < un; i++) {   /* upvalue i = factory local i */
        unsigned char d[3] = {1, (unsigned char)i, (unsigned char)bc[uoff + 3 * i + 2]};
        add(c, d, 3);
    }
    add(c, bc + uoff + 3 * un, len - uoff - 3 * un); /* rest of function */
    add(c, t + ce, tlen - ce);                       /* rest of the template */
    load_bytes(c, c->scratch.data, c->scratch.len);
    lua_remove(L, -2);
    return 1;
}

static int nups_of(lua_State *L, int idx)
{
    lua_Debug ar;
    lua_pushvalue(L, idx);
    lua_getinfo(L, ">u", &ar);
    return ar.nups;
}

/* A hash of received bytecode for the front of the load cache (8 bytes at
   a time; the bytes are compared in full on a match). */
static uint64_t bytes_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

/* Makes a fresh closure from the cached function on top: a function
   without upvalues is itself, anything else is a factory (one upvalue:
   its _ENV). */
static void from_cached(codec__ctx *c)
{
    lua_State *L = c->L;
    if (nups_of(L, -1) != 0) {
        lua_call(L, 0, 1);
        if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1))
            codec__fail(c, CODEC_ELUA, "factory did not make a function");
    }
}

/* Pushes a fresh closure for the received bytecode bc (len bytes, valid
   during the call) of a function with nups upvalues; returns the number of
   upvalues the closure really has. */
static int instantiate(codec__ctx *c, const char *bc, size_t len, int nups)
{
    lua_State *L = c->L;
    int on = c->vm->cache_on;
    codec__front *fe = NULL;
    uint64_t h = 0;
    if (on && len <= CODEC__FRONT_MAXLEN) {
        h = bytes_hash(bc, len);
        fe = &c->vm->front[h % CODEC__FRONT_SLOTS];
        if (fe->len == len && fe->hash == h && fe->nups == nups &&
            memcmp(fe->bytes, bc, len) == 0) {
            lua_rawgeti(L, c->state, CODEC__S_LOADFRONT);
            lua_rawgeti(L, -1, (lua_Integer)(2 * (size_t)(fe - c->vm->front) + 2));
            lua_remove(L, -2);
            c->vm->stats.load_hits++;
            if (fe->nups != 0) {
                lua_call(L, 0, 1);
                if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1))
                    codec__fail(c, CODEC_ELUA, "factory did not make a function");
            }
            return nups; /* what it makes: checked when it entered the front */
        }
    }
    lua_pushlstring(L, bc, len);
    int key = lua_gettop(L);
    if (on) {
        lua_rawgeti(L, c->state, CODEC__S_LOADCACHE);
        lua_pushvalue(L, key);
        if (lua_rawget(L, -2) == LUA_TFUNCTION) {
            lua_remove(L, -2);
            c->vm->stats.load_hits++;
            goto have;
        }
        lua_pop(L, 2);
    }
    if (nups == 0 || nups > CODEC__FACTORY_MAXUP || !push_factory(c, bc, len, nups)) {
        load_bytes(c, bc, len);
        if (nups != 0) {
            lua_remove(L, key);
            return nups_of(L, -1); /* a plain closure of its own: not cached */
        }
        if (nups_of(L, -1) != 0) /* never cache (or call) a lie */
            codec__fail(c, CODEC_EMALFORMED,
                        "malformed message: function has upvalues, message "
                        "gives none");
    }
    if (on) {
        lua_rawgeti(L, c->state, CODEC__S_LOADCOUNT);
        lua_Integer count = lua_tointeger(L, -1) + 1;
        lua_pop(L, 1);
        /* bounded in entries and in bytes (large functions) */
        c->vm->load_bytes += len;
        if (count > CODEC__LOADCACHE_MAX || c->vm->load_bytes > CODEC__LOADCACHE_BYTES) {
            lua_newtable(L);
            lua_rawseti(L, c->state, CODEC__S_LOADCACHE);
            count = 1;
            c->vm->load_bytes = len;
        }
        lua_pushinteger(L, count);
        lua_rawseti(L, c->state, CODEC__S_LOADCOUNT);
        lua_rawgeti(L, c->state, CODEC__S_LOADCACHE);
        lua_pushvalue(L, key);
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
have:; /* [key, cached function] */
    lua_pushvalue(L, -1);
    from_cached(c); /* [key, cached function, closure] */
    int real = nups_of(L, -1);
    if (fe && real == nups) {
        /* into the front: found next time without a Lua string */
        lua_rawgeti(L, c->state, CODEC__S_LOADFRONT);
        lua_Integer k = (lua_Integer)(2 * (size_t)(fe - c->vm->front));
        lua_pushvalue(L, key);
        lua_rawseti(L, -2, k + 1);
        lua_pushvalue(L, -3);
        lua_rawseti(L, -2, k + 2);
        lua_pop(L, 1);
        fe->bytes = lua_tostring(L, key); /* kept alive by LOADFRONT[k + 1] */
        fe->len = len;
        fe->hash = h;
        fe->nups = nups;
    }
    lua_remove(L, key);
    lua_remove(L, -2);
    return real;
}

void codec__decode_function(codec__ctx *c, uint32_t count)
{
    lua_State *L = c->L;
    int type;
    int as_source = codec__peek_ext(c, &type) && type == CODEC__EXT_SOURCE;
    uint32_t fixed = as_source ? 4 : 2;
    if (count < fixed || count - fixed > 255)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: function array of %u elements", count);
    int nups = (int)(count - fixed);
    codec__checkstack(c, 8);
    if (as_source) {
        if (!c->lim.allow_source)
            codec__fail(c, CODEC_EBYTECODE,
                        "message carries a function and allow_source is off "
                        "(functions are compiled only from trusted senders)");
        codec__decode_source(c); /* bytecode this VM compiled */
    } else {
        if (!c->lim.allow_bytecode)
            codec__fail(c, CODEC_EBYTECODE,
                        c->lim.allow_source
                            ? "message carries a function as bytecode and only functions "
                              "as source are accepted here"
                            : "message carries a function and allow_bytecode is off "
                              "(bytecode is loaded only from trusted senders)");
    }
    int real;
    if (as_source) { /* the bytecode this VM compiled, on top */
        int key = lua_gettop(L);
        size_t len;
        const char *bc = lua_tolstring(L, key, &len);
        real = instantiate(c, bc, len, nups);
        lua_remove(L, key);
    } else {
        const char *bc;
        size_t len;
        codec__read_blob_bytes(c, "bytecode", &bc, &len);
        real = instantiate(c, bc, len, nups);
    }
    if (real != nups)
        codec__fail(c, CODEC_EMALFORMED,
                    "malformed message: function has %d upvalues, message "
                    "gives %d",
                    real, nups);
    codec__register_top(c);
    int f = lua_gettop(L);

    for (int i = 1; i <= nups; i++) {
        int type;
        if (codec__peek_ext(c, &type) && type == CODEC__EXT_UPREF) {
            const unsigned char *d;
            uint32_t len;
            codec__read_ext(c, &type, &d, &len);
            if (len != 5)
                codec__fail(c, CODEC_EMALFORMED, "malformed message: bad shared upvalue");
            uint32_t owner =
                (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
            int n = d[4];
            if (owner >= (uint32_t)c->nobjs)
                codec__fail(c, CODEC_EMALFORMED,
                            "malformed message: shared upvalue of unknown "
                            "object %u",
                            owner);
            codec__push_obj(c, (lua_Integer)owner);
            int o = lua_gettop(L);
            if (lua_type(L, o) != LUA_TFUNCTION || lua_iscfunction(L, o) || n < 1 ||
                n > nups_of(L, o))
                codec__fail(c, CODEC_EMALFORMED, "malformed message: bad shared upvalue target");
            lua_upvaluejoin(L, f, i, o, n);
            lua_pop(L, 1);
        } else {
            codec__decode_value(c);
            lua_setupvalue(L, f, i);
        }
    }
}
