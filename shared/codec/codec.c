/*
** codec.c: entry points of the closure codec, its error table, limits and
** per-VM state. The work runs inside lua_pcall so that a Lua error (out of
** memory, a hook that raises) unwinds to here and is returned as a code.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_int.h"

/* Registry key of the per-VM state table (its address is the key). */
static const char state_key = 0;

MERR_FUNCS(, codec, CODEC_ERRNO_MAP)

void codec_limits_default(codec_limits *lim)
{
    lim->max_bytes = (size_t)64 << 20;
    lim->max_depth = 128;
    lim->max_elems = (size_t)4 << 20;
    lim->allow_bytecode = 0;
    lim->allow_source = 0;
    lim->send_source = 0;
    lim->source_files = 0;
    lim->allow_require = 0;
    lim->value_name = "argument";
    lim->first_number = 1;
    lim->view = NULL;
    lim->call = NULL;
}

void codec__fail(codec__ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->code = code;
    lua_pushstring(c->L, c->msg);
    lua_error(c->L);
    abort(); /* not reached: lua_error does not return */
}

const char *codec__shown(const void *s, size_t n, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *b = s;
    size_t k = 0, i = 0;
    for (; i < n; i++) {
        int plain = b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\'' && b[i] != '\\';
        if (k + (plain ? 1 : 4) + 4 > size) /* room for it, "..." and the NUL */
            break;
        if (plain) {
            out[k++] = (char)b[i];
        } else {
            out[k++] = '\\';
            out[k++] = 'x';
            out[k++] = hex[b[i] >> 4];
            out[k++] = hex[b[i] & 15];
        }
    }
    if (i < n) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = 0;
    return out;
}

void codec__checkstack(codec__ctx *c, int n)
{
    if (!lua_checkstack(c->L, n))
        codec__fail(c, CODEC_ENOMEM, "cannot grow the Lua stack by %d slots", n);
}

int codec__buf_add(codec__buf *b, const void *data, size_t len)
{
    if (len > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < len) {
            if (cap > ((size_t)-1) / 2)
                return CODEC_ENOMEM;
            cap *= 2;
        }
        char *p;
        if (b->borrowed) {
            p = malloc(cap);
            if (p && b->len)
                memcpy(p, b->data, b->len);
        } else {
            p = realloc(b->data, cap);
        }
        if (p == NULL)
            return CODEC_ENOMEM;
        b->data = p;
        b->cap = cap;
        b->borrowed = 0;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void new_weak_table(lua_State *L, const char *mode)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushstring(L, mode);
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
}

/* Pushes the per-VM state table, creating it on first use (may raise). */
void codec__state(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_createtable(L, CODEC__S_N, 0);
    new_weak_table(L, "kv");
    lua_rawseti(L, -2, CODEC__S_DUMPCACHE);
    lua_newtable(L);
    lua_rawseti(L, -2, CODEC__S_LOADCACHE);
    lua_pushinteger(L, 0);
    lua_rawseti(L, -2, CODEC__S_LOADCOUNT);
    lua_newtable(L);
    lua_rawseti(L, -2, CODEC__S_HOOKS);
    codec__vm *vm = lua_newuserdatauv(L, sizeof *vm, 0);
    memset(vm, 0, sizeof *vm);
    vm->cache_on = 1;
    lua_rawseti(L, -2, CODEC__S_VM);
    lua_newtable(L);
    lua_rawseti(L, -2, CODEC__S_TEMPLATES);
    new_weak_table(L, "v");
    lua_rawseti(L, -2, CODEC__S_RECENT);
    new_weak_table(L, "v");
    lua_rawseti(L, -2, CODEC__S_PROTOS);
    lua_createtable(L, 2 * CODEC__FRONT_SLOTS, 0);
    lua_rawseti(L, -2, CODEC__S_LOADFRONT);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &state_key);
}

codec__vm *codec__vm_of(lua_State *L, int state)
{
    lua_rawgeti(L, state, CODEC__S_VM);
    codec__vm *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* Runs fn(ctx) under lua_pcall with the nargs values on top of L as extra
   arguments; returns 0 or a codec error code with the message in err. */
static int protect(lua_State *L, lua_CFunction fn, codec__ctx *c, int nargs, int nresults,
                   char *err, size_t errlen)
{
    lua_pushcfunction(L, fn);
    lua_insert(L, -nargs - 1);
    lua_pushlightuserdata(L, c);
    lua_insert(L, -nargs - 1);
    int st = lua_pcall(L, nargs + 1, nresults, 0);
    if (st == LUA_OK)
        return 0;
    int code = c->code;
    if (code == 0)
        code = st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_ELUA;
    if (c->code != 0) {
        set_err(err, errlen, c->msg);
    } else {
        const char *m = lua_tostring(L, -1);
        set_err(err, errlen, m != NULL ? m : codec_strerror(code));
    }
    lua_pop(L, 1);
    return code;
}

static void ctx_init(codec__ctx *c, lua_State *L, const codec_limits *lim)
{
    /* all but the inline path storage (3 KiB, written before it is read) */
    memset(c, 0, offsetof(codec__ctx, path_inline));
    memset((char *)c + offsetof(codec__ctx, npath), 0, sizeof *c - offsetof(codec__ctx, npath));
    c->L = L;
    if (lim != NULL)
        c->lim = *lim;
    else
        codec_limits_default(&c->lim);
    if (c->lim.max_depth > CODEC__DEPTH_CAP)
        c->lim.max_depth = CODEC__DEPTH_CAP;
}

/* msgpack writer callback: appends to c->out within max_bytes. */
static int out_write(void *data, const char *buf, size_t len)
{
    codec__ctx *c = data;
    if (len > c->lim.max_bytes || c->out.len > c->lim.max_bytes - len) {
        c->overflow = 1;
        return -1;
    }
    return codec__buf_add(&c->out, buf, len) == 0 ? 0 : -1;
}

/* Protected body of codec_encode: arguments 2..nargs+1 are the values. */
static int encode_main(lua_State *L)
{
    codec__ctx *c = lua_touserdata(L, 1);
    int n = c->nargs;
    codec__checkstack(c, 8);
    codec__state(L);
    c->state = lua_gettop(L);
    c->vm = codec__vm_of(L, c->state);
    codec__source_budget(c, 2); /* between messages, never inside one */
    lua_pushnil(L);             /* work tables are made on first use (codec__table) */
    c->objs = lua_gettop(L);
    lua_pushnil(L);
    c->blobs = lua_gettop(L);
    lua_pushnil(L);
    c->upvals = lua_gettop(L);
    lua_pushnil(L);
    c->obj1 = lua_gettop(L);
    lua_pushnil(L);
    c->blob1 = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    c->globals = lua_gettop(L);
    if (c->lim.max_depth + 4u <= CODEC__PATH_INLINE)
        c->path = c->path_inline;
    else
        c->path = lua_newuserdatauv(L, sizeof(codec__seg) * (c->lim.max_depth + 4u), 0);

    msgpack_packer_init(&c->pk, c, out_write);
    /* version 1 unless a value needs version 2 (set at the end) */
    char hdr[CODEC__HDRLEN] = {CODEC__MAGIC[0], CODEC__MAGIC[1], CODEC__MAGIC[2], 1};
    if (out_write(c, hdr, sizeof hdr) != 0)
        codec__pack_ok(c, -1);
    codec__pack_ok(c, msgpack_pack_array(&c->pk, (size_t)n));
    for (int i = 0; i < n; i++) {
        c->npath = 0;
        codec__path_push(c, CODEC__SEG_ARG, i + 1, 0);
        codec__encode_value(c, 2 + i);
        c->npath = 0;
    }
    if (c->v3)
        c->out.data[3] = 3;
    else if (c->v2)
        c->out.data[3] = 2; /* the header is in the buffer: it cannot have overflowed */
    return 0;
}

int codec_encode_text(const char *text, size_t len, char **out, size_t *outlen)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char hdr[CODEC__HDRLEN] = {CODEC__MAGIC[0], CODEC__MAGIC[1], CODEC__MAGIC[2],
                               CODEC_FORMAT_VERSION};
    if (msgpack_sbuffer_write(&sb, hdr, sizeof hdr) != 0 || msgpack_pack_array(&pk, 1) != 0 ||
        msgpack_pack_str(&pk, len) != 0 || msgpack_pack_str_body(&pk, text, len) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return CODEC_ENOMEM;
    }
    *out = sb.data;
    *outlen = sb.size;
    return 0;
}

int codec_encode(lua_State *L, int first, int n, const codec_limits *lim, char **out,
                 size_t *outlen, char *err, size_t errlen)
{
    return codec_encode_buf(L, first, n, lim, NULL, 0, out, outlen, err, errlen);
}

/* msgpack writer of the scalar fast path: into a codec__buf within a bound. */
typedef struct scalar_out {
    codec__buf b;
    size_t max;
    int overflow;
} scalar_out;

static int scalar_write(void *data, const char *buf, size_t len)
{
    scalar_out *o = data;
    if (len > o->max || o->b.len > o->max - len) {
        o->overflow = 1;
        return -1;
    }
    return codec__buf_add(&o->b, buf, len) == 0 ? 0 : -1;
}

/* Starts a fast-path message: o writes into buf (cap bytes, growing into
   memory of its own past them) or, without buf, into memory of its own,
   never beyond max_bytes; pk packs through o. Writes the header and the
   array of the message's n values. Returns nonzero when that already
   failed (o->overflow tells too big from out of memory). */
static int scalar_begin(scalar_out *o, msgpack_packer *pk, char *buf, size_t cap, size_t max_bytes,
                        size_t n)
{
    *o = (scalar_out){{buf, 0, buf ? cap : 0, buf != NULL}, max_bytes, 0};
    if (!buf || !cap)
        o->b = (codec__buf){NULL, 0, 0, 0};
    msgpack_packer_init(pk, o, scalar_write);
    const char hdr[CODEC__HDRLEN] = {CODEC__MAGIC[0], CODEC__MAGIC[1], CODEC__MAGIC[2], 1};
    return scalar_write(o, hdr, sizeof hdr) != 0 || msgpack_pack_array(pk, n) != 0;
}

/* Values that are all nil, booleans, numbers and strings (a task's usual
   arguments and results) need no Lua state, protected call or work table:
   written here, byte for byte what encode_main writes. Returns 1 when it
   handled them (rc in *rc), 0 to take the general path. */
static int encode_scalars(lua_State *L, int first, int n, const codec_limits *lim, char *buf,
                          size_t cap, char **out, size_t *outlen, char *err, size_t errlen, int *rc)
{
    if (n > 16)
        return 0;
    for (int i = 0; i < n; i++) {
        int t = lua_type(L, first + i);
        if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
            return 0;
    }
    codec_limits dl;
    if (lim == NULL) {
        codec_limits_default(&dl);
        lim = &dl;
    }
    if ((size_t)n > lim->max_elems)
        return 0; /* the general path words the error */
    scalar_out o;
    msgpack_packer pk;
    int bad = scalar_begin(&o, &pk, buf, cap, lim->max_bytes, (size_t)n);
    for (int i = 0; i < n && !bad; i++) {
        int idx = first + i;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
            bad = msgpack_pack_nil(&pk) != 0;
            break;
        case LUA_TBOOLEAN:
            bad = (lua_toboolean(L, idx) ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) != 0;
            break;
        case LUA_TNUMBER:
            if (lua_isinteger(L, idx))
                bad = msgpack_pack_int64(&pk, (int64_t)lua_tointeger(L, idx)) != 0;
            else
                bad = msgpack_pack_double(&pk, (double)lua_tonumber(L, idx)) != 0;
            break;
        default: {
            size_t len;
            const char *str = lua_tolstring(L, idx, &len);
            bad = msgpack_pack_str(&pk, len) != 0 || msgpack_pack_str_body(&pk, str, len) != 0;
        }
        }
    }
    if (bad) {
        if (!o.b.borrowed)
            free(o.b.data);
        if (!o.overflow)
            return 0; /* out of memory: the general path says so */
        char m[96];
        snprintf(m, sizeof m, "message would exceed max_bytes %zu", lim->max_bytes);
        set_err(err, errlen, m);
        *rc = CODEC_ETOOBIG;
        return 1;
    }
    *out = o.b.data;
    *outlen = o.b.len;
    *rc = 0;
    return 1;
}

static int is_scalar(int t)
{
    return t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING;
}

static int pack_scalar(lua_State *L, msgpack_packer *pk, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return msgpack_pack_nil(pk);
    case LUA_TBOOLEAN:
        return lua_toboolean(L, idx) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            return msgpack_pack_int64(pk, (int64_t)lua_tointeger(L, idx));
        return msgpack_pack_double(pk, (double)lua_tonumber(L, idx));
    default: {
        size_t len;
        const char *str = lua_tolstring(L, idx, &len);
        return msgpack_pack_str(pk, len) != 0 || msgpack_pack_str_body(pk, str, len) != 0 ? -1 : 0;
    }
    }
}

/* A task as pool_submit makes it: a Lua function whose prototype was sent
   before (its dump cached), its upvalues nil, booleans, numbers, strings
   or its _ENV, then such arguments. Written here without a protected call,
   work tables or a dump (nothing here can raise: tables are only read),
   byte for byte what encode_main writes. Returns 1 when it wrote the
   message, 0 (nothing changed) for the general path. */
static int encode_task_fast(lua_State *L, int first, int n, const codec_limits *lim, char *buf,
                            size_t cap, char **out, size_t *outlen)
{
    if (n < 1 || n > 16 || lim == NULL || lim->send_source || lim->max_depth < 2 ||
        lim->max_elems < 64 || lua_type(L, first) != LUA_TFUNCTION || lua_iscfunction(L, first))
        return 0;
    for (int i = 1; i < n; i++)
        if (!is_scalar(lua_type(L, first + i)))
            return 0;
    if (!lua_checkstack(L, 8))
        return 0;
    int top = lua_gettop(L), done = 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) != LUA_TTABLE)
        goto out;
    int state = top + 1;
    lua_rawgeti(L, state, CODEC__S_VM);
    codec__vm *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    const char *dump;
    size_t dlen;
    const void *proto;
    int found =
        vm && vm->cache_on ? codec__last_dump(L, state, vm, first, &dump, &dlen, &proto) : 0;
    if (!found)
        goto out;
    lua_Debug ar;
    lua_pushvalue(L, first);
    lua_getinfo(L, ">u", &ar);
    int nups = ar.nups;
    if (nups > 8)
        goto out;
    void *ids[8];
    int env = 0; /* the upvalue that is the function's _ENV */
    for (int i = 1; i <= nups; i++) {
        ids[i - 1] = lua_upvalueid(L, first, i);
        for (int j = 1; j < i; j++)
            if (ids[j - 1] == ids[i - 1])
                goto out; /* joined upvalues: the general path refers to the first */
        const char *name = lua_getupvalue(L, first, i);
        int t = lua_type(L, -1);
        lua_pop(L, 1);
        if (t == LUA_TTABLE && !env && name && strcmp(name, "_ENV") == 0)
            env = i;
        else if (!is_scalar(t))
            goto out;
    }
    scalar_out o;
    msgpack_packer pk;
    int bad = scalar_begin(&o, &pk, buf, cap, lim->max_bytes, (size_t)n) ||
              msgpack_pack_array(&pk, 2 + (size_t)nups) != 0 ||
              msgpack_pack_ext(&pk, 0, CODEC__EXT_FUNC) != 0 || msgpack_pack_bin(&pk, dlen) != 0 ||
              msgpack_pack_bin_body(&pk, dump, dlen) != 0;
    for (int i = 1; i <= nups && !bad; i++) {
        if (i == env) {
            bad = msgpack_pack_ext(&pk, 0, CODEC__EXT_GLOBALS) != 0;
        } else {
            lua_getupvalue(L, first, i);
            bad = pack_scalar(L, &pk, lua_gettop(L)) != 0;
            lua_pop(L, 1);
        }
    }
    for (int i = 1; i < n && !bad; i++)
        bad = pack_scalar(L, &pk, first + i) != 0;
    if (bad) { /* too big, or out of memory: the general path says which */
        if (!o.b.borrowed)
            free(o.b.data);
        goto out;
    }
    vm->stats.dump_hits++;
    /* a closure of that prototype comes next, most likely: remembered only
     * now, with upvalues that hold nothing big (scalars, its _ENV) */
    if (found == 2)
        codec__last_dump_keep(L, state, vm, first, top + 2, proto);
    *out = o.b.data;
    *outlen = o.b.len;
    done = 1;
out:
    lua_settop(L, top);
    return done;
}

int codec_encode_buf(lua_State *L, int first, int n, const codec_limits *lim, char *buf, size_t cap,
                     char **out, size_t *outlen, char *err, size_t errlen)
{
    codec__ctx c;
    if (out == NULL || outlen == NULL || n < 0) {
        set_err(err, errlen, codec_strerror(CODEC_EINVAL));
        return CODEC_EINVAL;
    }
    *out = NULL;
    *outlen = 0;
    {
        int fa = lua_absindex(L, first), rc;
        if (n == 0 || (fa >= 1 && fa + n - 1 <= lua_gettop(L))) {
            if (encode_scalars(L, fa, n, lim, buf, cap, out, outlen, err, errlen, &rc))
                return rc;
            if (encode_task_fast(L, fa, n, lim, buf, cap, out, outlen))
                return 0;
        }
    }
    ctx_init(&c, L, lim);
    if (buf && cap) {
        c.out.data = buf;
        c.out.cap = cap;
        c.out.borrowed = 1;
    }
    first = lua_absindex(L, first);
    if (n > 0 && (first < 1 || first + n - 1 > lua_gettop(L))) {
        set_err(err, errlen, "invalid stack range");
        return CODEC_EINVAL;
    }
    if (!lua_checkstack(L, n + 4)) {
        set_err(err, errlen, "too many values for the Lua stack");
        return CODEC_ETOOMANY;
    }
    for (int i = 0; i < n; i++)
        lua_pushvalue(L, first + i);
    c.nargs = n;
    int rc = protect(L, encode_main, &c, n, 0, err, errlen);
    free(c.scratch.data);
    if (rc != 0) {
        if (!c.out.borrowed)
            free(c.out.data);
        return rc;
    }
    *out = c.out.data;
    *outlen = c.out.len;
    return 0;
}

/* Protected body of codec_decode: pushes the decoded values. */
static int decode_main(lua_State *L)
{
    codec__ctx *c = lua_touserdata(L, 1);
    codec__checkstack(c, 8);
    codec__state(L);
    c->state = lua_gettop(L);
    c->vm = codec__vm_of(L, c->state);
    codec__source_budget(c, 1); /* between messages, never inside one */
    lua_pushnil(L);             /* work tables are made on first use (codec__table) */
    c->objs = lua_gettop(L);
    lua_pushnil(L);
    c->blobs = lua_gettop(L);
    lua_pushnil(L);
    c->obj1 = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    c->globals = lua_gettop(L);
    int base = lua_gettop(L);

    size_t len = (size_t)(c->end - c->p);
    if (len < CODEC__HDRLEN)
        codec__fail(c, CODEC_ETRUNCATED,
                    "message of %zu bytes is shorter "
                    "than its header",
                    len);
    if (memcmp(c->p, CODEC__MAGIC, 3) != 0)
        codec__fail(c, CODEC_EMAGIC, "bad magic: not a mutirao codec message");
    if (c->p[3] < 1 || c->p[3] > CODEC_FORMAT_VERSION)
        codec__fail(c, CODEC_EVERSION,
                    "unsupported codec format version %u (this codec reads "
                    "versions 1 to %d)",
                    c->p[3], CODEC_FORMAT_VERSION);
    c->version = c->p[3];
    c->p += CODEC__HDRLEN;
    if (c->p == c->end)
        codec__fail(c, CODEC_ETRUNCATED, "truncated message: no body");
    unsigned b = *c->p++;
    uint32_t n;
    if (b >= 0x90 && b <= 0x9f) {
        n = b & 0x0f;
    } else if (b == 0xdc || b == 0xdd) {
        size_t w = b == 0xdc ? 2 : 4;
        if ((size_t)(c->end - c->p) < w)
            codec__fail(c, CODEC_ETRUNCATED, "truncated message: header");
        n = 0;
        for (size_t i = 0; i < w; i++)
            n = n << 8 | c->p[i];
        c->p += w;
    } else {
        codec__fail(c, CODEC_EMALFORMED, "malformed message: body is not an array (0x%02x)", b);
    }
    if (n > (size_t)(c->end - c->p))
        codec__fail(c, CODEC_ETRUNCATED, "truncated message: %u values claimed, %zu bytes left", n,
                    (size_t)(c->end - c->p));
    if (n > c->lim.max_elems || n > INT32_MAX - 64)
        codec__fail(c, CODEC_ETOOMANY, "message has %u values (limit %zu)", n, c->lim.max_elems);
    codec__checkstack(c, (int)n + 4);
    for (uint32_t i = 0; i < n; i++)
        codec__decode_value(c);
    if (c->p != c->end)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: %zu trailing bytes",
                    (size_t)(c->end - c->p));
    c->nvals = lua_gettop(L) - base;
    return c->nvals;
}

int codec_decode(lua_State *L, const char *data, size_t len, const codec_limits *lim, int *nvals,
                 char *err, size_t errlen)
{
    codec__ctx c;
    if (nvals != NULL)
        *nvals = 0;
    if (data == NULL && len > 0) {
        set_err(err, errlen, codec_strerror(CODEC_EINVAL));
        return CODEC_EINVAL;
    }
    ctx_init(&c, L, lim);
    if (len > c.lim.max_bytes) {
        char m[128];
        snprintf(m, sizeof m, "message of %zu bytes exceeds max_bytes %zu", len, c.lim.max_bytes);
        set_err(err, errlen, m);
        return CODEC_ETOOBIG;
    }
    if (!lua_checkstack(L, 4)) {
        set_err(err, errlen, codec_strerror(CODEC_ENOMEM));
        return CODEC_ENOMEM;
    }
    c.p = (const unsigned char *)(data != NULL ? data : "");
    c.end = c.p + len;
    int top = lua_gettop(L);
    int rc = protect(L, decode_main, &c, 0, LUA_MULTRET, err, errlen);
    free(c.scratch.data);
    if (rc != 0) {
        lua_settop(L, top);
        return rc;
    }
    if (nvals != NULL)
        *nvals = lua_gettop(L) - top;
    return 0;
}

/* Protected body of codec_register_udata. */
static int register_main(lua_State *L)
{
    codec__hook *src = lua_touserdata(L, 1);
    const char *tname = lua_tostring(L, 2);
    codec__state(L);
    lua_rawgeti(L, -1, CODEC__S_HOOKS);
    codec__hook *h = lua_newuserdatauv(L, sizeof *h, 0);
    *h = *src;
    lua_setfield(L, -2, tname);
    return 0;
}

int codec_register_udata(lua_State *L, const char *tname, codec_udata_encode_fn enc,
                         codec_udata_decode_fn dec, void *ud)
{
    if (tname == NULL || tname[0] == '\0' || strlen(tname) > 255 || enc == NULL || dec == NULL)
        return CODEC_EINVAL;
    if (!lua_checkstack(L, 4))
        return CODEC_ENOMEM;
    codec__hook h = {enc, dec, ud};
    lua_pushcfunction(L, register_main);
    lua_pushlightuserdata(L, &h);
    lua_pushstring(L, tname);
    int st = lua_pcall(L, 2, 0, 0);
    if (st != LUA_OK) {
        lua_pop(L, 1);
        return st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_ELUA;
    }
    return 0;
}

int codec_stats_get(lua_State *L, codec_stats *out)
{
    if (out == NULL)
        return CODEC_EINVAL;
    memset(out, 0, sizeof *out);
    if (!lua_checkstack(L, 2))
        return CODEC_ENOMEM;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &state_key) == LUA_TTABLE) {
        codec__vm *vm = codec__vm_of(L, lua_gettop(L));
        *out = vm->stats;
    }
    lua_pop(L, 1);
    return 0;
}

/* Protected body of codec_cache_enable. */
static int cache_main(lua_State *L)
{
    int on = (int)lua_tointeger(L, 1);
    codec__state(L);
    codec__vm *vm = codec__vm_of(L, lua_gettop(L));
    vm->cache_on = on;
    vm->last_proto = NULL;
    vm->last_dump = NULL;
    vm->last_dlen = 0;
    lua_pushnil(L);
    lua_rawseti(L, -2, CODEC__S_LASTFN);
    lua_pushnil(L);
    lua_rawseti(L, -2, CODEC__S_LASTDUMP);
    new_weak_table(L, "kv");
    lua_rawseti(L, -2, CODEC__S_DUMPCACHE);
    new_weak_table(L, "v");
    lua_rawseti(L, -2, CODEC__S_RECENT);
    new_weak_table(L, "v");
    lua_rawseti(L, -2, CODEC__S_PROTOS);
    memset(vm->front, 0, sizeof vm->front);
    lua_createtable(L, 2 * CODEC__FRONT_SLOTS, 0);
    lua_rawseti(L, -2, CODEC__S_LOADFRONT);
    lua_newtable(L);
    lua_rawseti(L, -2, CODEC__S_LOADCACHE);
    lua_pushinteger(L, 0);
    lua_rawseti(L, -2, CODEC__S_LOADCOUNT);
    /* the compiled functions as source (the known texts stay) */
    lua_pushnil(L);
    lua_rawseti(L, -2, CODEC__S_SRCDESC);
    lua_pushnil(L);
    lua_rawseti(L, -2, CODEC__S_SRCCACHE);
    codec__srcfront_clear(L, lua_gettop(L), vm);
    return 0;
}

int codec_cache_enable(lua_State *L, int on)
{
    if (!lua_checkstack(L, 4))
        return CODEC_ENOMEM;
    lua_pushcfunction(L, cache_main);
    lua_pushinteger(L, on != 0);
    int st = lua_pcall(L, 1, 0, 0);
    if (st != LUA_OK) {
        lua_pop(L, 1);
        return st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_ELUA;
    }
    return 0;
}
