/*
** closure.c: Lua functions travel as [FUNC, bytecode, upvalue...]. Upvalues
** are copied by value; one shared by several closures (same lua_upvalueid)
** is sent once and rejoined with lua_upvaluejoin on arrival.
**
** Caches (per VM, see docs/wire-format.md):
** - encoder: closure -> dump (weak), entered on a closure's second
**   encoding, so resubmitting one closure dumps once; new closures of one
**   prototype are dumped again (about 0.15 us each: no cheap proof exists
**   that two closures share a prototype).
** - decoder: bytecode string -> "factory": the received prototype grafted
**   into a tiny compiled chunk `local u1..uN return function() ... end`, so
**   one call makes a fresh closure with fresh upvalues without lua_load.
**   Functions without upvalues are reused as they are.
*/
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec_int.h"

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
void codec__push_dump(codec__ctx *c, int f)
{
    lua_State *L = c->L;
    int on = c->vm->cache_on;
    lua_Integer slot = 0;
    if (on) {
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
    c->scratch.len = 0;
    lua_pushvalue(L, f);
    int rc = lua_dump(L, dump_writer, c, 0);
    lua_pop(L, 1);
    if (rc != 0)
        codec__fail(c, CODEC_ENOMEM, "out of memory dumping a function");
    c->vm->stats.dumps++;
    lua_pushlstring(L, c->scratch.data, c->scratch.len);
    if (on) { /* [cache, recent, dump] */
        lua_pushvalue(L, f);
        lua_rawseti(L, -3, 2 * slot + 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, 2 * slot + 2);
        lua_replace(L, -3);
        lua_pop(L, 1);
    }
}

void codec__pack_blob(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    codec__table(L, c->blobs);
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
    size_t n;
    const char *bc = lua_tolstring(L, idx, &n);
    codec__pack_ok(c, msgpack_pack_bin(&c->pk, n));
    codec__pack_ok(c, msgpack_pack_bin_body(&c->pk, bc, n));
}

void codec__read_blob(codec__ctx *c, const char *what)
{
    lua_State *L = c->L;
    codec__table(L, c->blobs);
    if (codec__peek_int(c)) {
        lua_Integer i = codec__read_int(c);
        if (i < 1 || i > c->nblobs)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: unknown %s index %lld", what,
                        (long long)i);
        lua_rawgeti(L, c->blobs, i);
        return;
    }
    const unsigned char *p;
    uint32_t n;
    codec__read_raw(c, &p, &n);
    lua_pushlstring(L, (const char *)p, n);
    lua_pushvalue(L, -1);
    lua_rawseti(L, c->blobs, ++c->nblobs);
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

    codec__table(L, c->blobs);
    codec__table(L, c->upvals);
    if (as_source) {
        codec__encode_source(c, f);
    } else {
        codec__push_dump(c, f);
        codec__pack_blob(c, lua_gettop(L));
        lua_pop(L, 1);
    }

    for (int i = 1; i <= nups; i++) {
        void *id = lua_upvalueid(L, f, i);
        lua_pushlightuserdata(L, id);
        if (lua_rawget(L, c->upvals) == LUA_TNUMBER) {
            lua_Integer v = lua_tointeger(L, -1);
            lua_pop(L, 1);
            unsigned char b[5];
            lua_Integer owner = v >> 8;
            for (int k = 0; k < 4; k++)
                b[k] = (unsigned char)(owner >> (24 - 8 * k));
            b[4] = (unsigned char)(v & 0xff);
            codec__pack_ok(c, msgpack_pack_ext(&c->pk, 5, CODEC__EXT_UPREF));
            codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, b, 5));
            continue;
        }
        lua_pop(L, 1);
        lua_pushlightuserdata(L, id);
        lua_pushinteger(L, objid << 8 | i);
        lua_rawset(L, c->upvals);
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

/* Pushes a fresh closure for the bytecode string at key. */
static void instantiate(codec__ctx *c, int key, int nups)
{
    lua_State *L = c->L;
    int on = c->vm->cache_on;
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
    size_t len;
    const char *bc = lua_tolstring(L, key, &len);
    if (nups == 0 || nups > CODEC__FACTORY_MAXUP || !push_factory(c, bc, len, nups)) {
        load_bytes(c, bc, len);
        if (nups != 0)
            return;              /* a plain closure of its own: not cached */
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
have:
    /* A cached function without upvalues is the function itself; anything
       else cached is a factory (one upvalue: its _ENV). */
    if (nups_of(L, -1) != 0) {
        lua_call(L, 0, 1);
        if (lua_type(L, -1) != LUA_TFUNCTION || lua_iscfunction(L, -1))
            codec__fail(c, CODEC_ELUA, "factory did not make a function");
    }
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
        codec__read_blob(c, "bytecode");
    }
    int key = lua_gettop(L);
    instantiate(c, key, nups);
    int real = nups_of(L, -1);
    if (real != nups)
        codec__fail(c, CODEC_EMALFORMED,
                    "malformed message: function has %d upvalues, message "
                    "gives %d",
                    real, nups);
    lua_remove(L, key);
    codec__table(L, c->objs);
    lua_pushvalue(L, -1);
    lua_rawseti(L, c->objs, ++c->nobjs);
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
            lua_rawgeti(L, c->objs, (lua_Integer)owner + 1);
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
