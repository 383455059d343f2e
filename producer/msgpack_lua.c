/* msgpack_lua.c: plain msgpack <-> Lua values (see msgpack_lua.h).
 *
 * The decoder is written out by hand rather than built on msgpack-c's
 * unpacker: that one allocates an array's elements up front from the length
 * the input claims. Here every length is checked against the bytes left
 * (each element takes at least one byte) before anything is allocated, and
 * Lua allocations run under a protected call so that running out of memory
 * is an error code, not a longjmp. The encoder uses msgpack-c's packer. */
#include "msgpack_lua.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <msgpack.h>

void mpl_limits_default(mpl_limits *lim)
{
    lim->max_bytes = (size_t)64 << 20;
    lim->max_depth = 128;
    lim->max_top = 4096;
}

/* ---- decoding ---- */

typedef struct dctx {
    const unsigned char *p, *end, *start;
    const mpl_limits *lim;
    int rc;
    char *err;
    size_t errlen;
    int n;
} dctx;

static int dfail(lua_State *L, dctx *d, int rc, const char *fmt, ...)
{
    d->rc = rc;
    if (d->err && d->errlen) {
        int k = snprintf(d->err, d->errlen, "at byte %zu: ", (size_t)(d->p - d->start));
        if (k >= 0 && (size_t)k < d->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->err + k, d->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return luaL_error(L, "msgpack");
}

static uint64_t rd_be(dctx *d, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | d->p[i];
    d->p += bytes;
    return v;
}

static void need(lua_State *L, dctx *d, size_t k)
{
    if ((size_t)(d->end - d->p) < k)
        dfail(L, d, MPL_EMALFORMED, "truncated message (%zu more bytes needed)",
              k - (size_t)(d->end - d->p));
}

/* Reads a length of `bytes` bytes (big-endian) after the type byte. */
static size_t rd_len(lua_State *L, dctx *d, int bytes)
{
    need(L, d, (size_t)bytes);
    return (size_t)rd_be(d, bytes);
}

static void decode_value(lua_State *L, dctx *d, unsigned depth);

static void decode_str(lua_State *L, dctx *d, size_t len)
{
    need(L, d, len);
    lua_pushlstring(L, (const char *)d->p, len);
    d->p += len;
}

static void decode_array(lua_State *L, dctx *d, size_t len, unsigned depth)
{
    if (depth > d->lim->max_depth)
        dfail(L, d, MPL_EMALFORMED, "nesting deeper than %u", d->lim->max_depth);
    if (len > (size_t)(d->end - d->p))
        dfail(L, d, MPL_EMALFORMED, "array of %zu elements in %zu bytes", len,
              (size_t)(d->end - d->p));
    lua_createtable(L, len > INT32_MAX ? 0 : (int)len, 0);
    for (size_t i = 1; i <= len; i++) {
        decode_value(L, d, depth + 1);
        lua_rawseti(L, -2, (lua_Integer)i);
    }
}

static void decode_map(lua_State *L, dctx *d, size_t len, unsigned depth)
{
    if (depth > d->lim->max_depth)
        dfail(L, d, MPL_EMALFORMED, "nesting deeper than %u", d->lim->max_depth);
    if (len > (size_t)(d->end - d->p) / 2)
        dfail(L, d, MPL_EMALFORMED, "map of %zu pairs in %zu bytes", len, (size_t)(d->end - d->p));
    lua_createtable(L, 0, len > INT32_MAX ? 0 : (int)len);
    for (size_t i = 0; i < len; i++) {
        const unsigned char *at = d->p;
        decode_value(L, d, depth + 1);
        if (lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) &&
                                 isnan(lua_tonumber(L, -1)))) {
            d->p = at;
            dfail(L, d, MPL_EMALFORMED, "map key is %s", lua_isnil(L, -1) ? "nil" : "NaN");
        }
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) != LUA_TNIL) {
            d->p = at;
            dfail(L, d, MPL_EMALFORMED, "duplicate map key");
        }
        lua_pop(L, 1);
        decode_value(L, d, depth + 1);
        lua_rawset(L, -3);
    }
}

static void decode_value(lua_State *L, dctx *d, unsigned depth)
{
    luaL_checkstack(L, 4, "msgpack nesting");
    need(L, d, 1);
    unsigned c = *d->p++;
    if (c <= 0x7f) {
        lua_pushinteger(L, (lua_Integer)c);
    } else if (c >= 0xe0) {
        lua_pushinteger(L, (lua_Integer)(int8_t)c);
    } else if (c >= 0x80 && c <= 0x8f) {
        decode_map(L, d, c & 0x0f, depth);
    } else if (c >= 0x90 && c <= 0x9f) {
        decode_array(L, d, c & 0x0f, depth);
    } else if (c >= 0xa0 && c <= 0xbf) {
        decode_str(L, d, c & 0x1f);
    } else {
        switch (c) {
        case 0xc0:
            lua_pushnil(L);
            break;
        case 0xc2:
            lua_pushboolean(L, 0);
            break;
        case 0xc3:
            lua_pushboolean(L, 1);
            break;
        case 0xc4: /* bin 8/16/32 */
        case 0xd9: /* str 8 */
            decode_str(L, d, rd_len(L, d, 1));
            break;
        case 0xc5:
        case 0xda:
            decode_str(L, d, rd_len(L, d, 2));
            break;
        case 0xc6:
        case 0xdb:
            decode_str(L, d, rd_len(L, d, 4));
            break;
        case 0xca: {
            need(L, d, 4);
            uint32_t b = (uint32_t)rd_be(d, 4);
            float f;
            memcpy(&f, &b, 4);
            lua_pushnumber(L, (lua_Number)f);
            break;
        }
        case 0xcb: {
            need(L, d, 8);
            uint64_t b = rd_be(d, 8);
            double f;
            memcpy(&f, &b, 8);
            lua_pushnumber(L, (lua_Number)f);
            break;
        }
        case 0xcc:
            need(L, d, 1);
            lua_pushinteger(L, (lua_Integer)rd_be(d, 1));
            break;
        case 0xcd:
            need(L, d, 2);
            lua_pushinteger(L, (lua_Integer)rd_be(d, 2));
            break;
        case 0xce:
            need(L, d, 4);
            lua_pushinteger(L, (lua_Integer)rd_be(d, 4));
            break;
        case 0xcf: {
            need(L, d, 8);
            uint64_t v = rd_be(d, 8);
            if (v > (uint64_t)INT64_MAX) {
                d->p -= 9;
                dfail(L, d, MPL_EMALFORMED, "unsigned integer %llu does not fit a Lua integer",
                      (unsigned long long)v);
            }
            lua_pushinteger(L, (lua_Integer)v);
            break;
        }
        case 0xd0:
            need(L, d, 1);
            lua_pushinteger(L, (lua_Integer)(int8_t)rd_be(d, 1));
            break;
        case 0xd1:
            need(L, d, 2);
            lua_pushinteger(L, (lua_Integer)(int16_t)rd_be(d, 2));
            break;
        case 0xd2:
            need(L, d, 4);
            lua_pushinteger(L, (lua_Integer)(int32_t)rd_be(d, 4));
            break;
        case 0xd3:
            need(L, d, 8);
            lua_pushinteger(L, (lua_Integer)(int64_t)rd_be(d, 8));
            break;
        case 0xdc:
            decode_array(L, d, rd_len(L, d, 2), depth);
            break;
        case 0xdd:
            decode_array(L, d, rd_len(L, d, 4), depth);
            break;
        case 0xde:
            decode_map(L, d, rd_len(L, d, 2), depth);
            break;
        case 0xdf:
            decode_map(L, d, rd_len(L, d, 4), depth);
            break;
        case 0xc1:
            d->p--;
            dfail(L, d, MPL_EMALFORMED, "reserved type byte 0xc1");
            break;
        default: /* 0xc7-0xc9, 0xd4-0xd8: ext */
            d->p--;
            dfail(L, d, MPL_EMALFORMED, "msgpack ext types are not supported (type byte 0x%02x)",
                  c);
        }
    }
}

static int decode_top(lua_State *L)
{
    dctx *d = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (d->p == d->end) {
        d->n = 0;
        return 0;
    }
    unsigned c = *d->p;
    size_t len;
    if (c >= 0x90 && c <= 0x9f) {
        d->p++;
        len = c & 0x0f;
    } else if (c == 0xdc || c == 0xdd) {
        d->p++;
        len = rd_len(L, d, c == 0xdc ? 2 : 4);
    } else {
        return dfail(L, d, MPL_EMALFORMED,
                     "a msgpack array of arguments expected (type byte 0x%02x)", c);
    }
    if (len > d->lim->max_top)
        dfail(L, d, MPL_ETOOBIG, "%zu arguments (at most %zu)", len, d->lim->max_top);
    if (len > (size_t)(d->end - d->p))
        dfail(L, d, MPL_EMALFORMED, "array of %zu elements in %zu bytes", len,
              (size_t)(d->end - d->p));
    luaL_checkstack(L, (int)len + 8, "too many arguments");
    for (size_t i = 0; i < len; i++)
        decode_value(L, d, 2);
    if (d->p != d->end)
        dfail(L, d, MPL_EMALFORMED, "%zu bytes after the array", (size_t)(d->end - d->p));
    d->n = (int)len;
    return (int)len;
}

int mpl_decode_array(lua_State *L, const char *data, size_t len, const mpl_limits *lim, int *n,
                     char *err, size_t errlen)
{
    mpl_limits dl;
    if (!lim) {
        mpl_limits_default(&dl);
        lim = &dl;
    }
    if (err && errlen)
        err[0] = 0;
    *n = 0;
    if (len > lim->max_bytes) {
        if (err)
            snprintf(err, errlen, "%zu bytes of arguments (at most %zu)", len, lim->max_bytes);
        return MPL_ETOOBIG;
    }
    if (!lua_checkstack(L, 4)) {
        if (err)
            snprintf(err, errlen, "no Lua stack space");
        return MPL_ENOMEM;
    }
    dctx d = {.p = (const unsigned char *)data,
              .end = (const unsigned char *)data + len,
              .start = (const unsigned char *)data,
              .lim = lim,
              .err = err,
              .errlen = errlen};
    int top = lua_gettop(L);
    lua_pushcfunction(L, decode_top);
    lua_pushlightuserdata(L, &d);
    if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
        int rc = d.rc ? d.rc : MPL_ENOMEM;
        if (!d.rc && err)
            snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "Lua error");
        lua_settop(L, top);
        return rc;
    }
    *n = d.n;
    return 0;
}

/* ---- encoding ---- */

typedef struct ectx {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const mpl_limits *lim;
    int rc;
    char path[256]; /* where the value being encoded is, e.g. "result #2.items[3]" */
    size_t plen;
    char *err;
    size_t errlen;
} ectx;

static int efail(lua_State *L, ectx *e, int rc, const char *fmt, ...)
{
    e->rc = rc;
    if (e->err && e->errlen) {
        int k = snprintf(e->err, e->errlen, "%s: ", e->path);
        if (k >= 0 && (size_t)k < e->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->err + k, e->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return luaL_error(L, "msgpack");
}

static void echeck(lua_State *L, ectx *e, int wrc)
{
    if (wrc != 0)
        efail(L, e, MPL_ENOMEM, "out of memory");
    if (e->sb.size > e->lim->max_bytes)
        efail(L, e, MPL_ETOOBIG, "results exceed %zu bytes", e->lim->max_bytes);
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k >= n)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static size_t path_push_key(ectx *e, lua_State *L, int kidx)
{
    size_t saved = e->plen;
    size_t room = sizeof e->path - e->plen;
    int k = 0;
    if (lua_type(L, kidx) == LUA_TNUMBER && lua_isinteger(L, kidx))
        k = snprintf(e->path + e->plen, room, "[%lld]", (long long)lua_tointeger(L, kidx));
    else if (lua_type(L, kidx) == LUA_TSTRING)
        k = snprintf(e->path + e->plen, room, ".%s", lua_tostring(L, kidx));
    else
        k = snprintf(e->path + e->plen, room, "[%s]", luaL_typename(L, kidx));
    if (k > 0)
        e->plen = (size_t)k < room ? e->plen + (size_t)k : sizeof e->path - 1;
    return saved;
}

static void path_pop(ectx *e, size_t saved)
{
    e->plen = saved;
    e->path[saved] = 0;
}

static void encode_value(lua_State *L, ectx *e, int idx, unsigned depth);

/* The length k when the table at idx has exactly the keys 1..k, else -1. */
static lua_Integer array_len(lua_State *L, int idx)
{
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max)
            max = k;
        count++;
    }
    return max == count ? count : -1;
}

static void encode_table(lua_State *L, ectx *e, int idx, unsigned depth)
{
    if (depth > e->lim->max_depth)
        efail(L, e, MPL_ETOOBIG, "tables nested deeper than %u (a cycle?)", e->lim->max_depth);
    luaL_checkstack(L, 6, "msgpack nesting");
    lua_Integer n = array_len(L, idx);
    if (n >= 0) {
        if ((unsigned long long)n > UINT32_MAX)
            efail(L, e, MPL_ETOOBIG, "table too large");
        echeck(L, e, msgpack_pack_array(&e->pk, (size_t)n));
        for (lua_Integer i = 1; i <= n; i++) {
            lua_pushinteger(L, i);
            size_t saved = path_push_key(e, L, -1);
            lua_pop(L, 1);
            lua_rawgeti(L, idx, i);
            encode_value(L, e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            path_pop(e, saved);
        }
        return;
    }
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
    }
    if (count > UINT32_MAX)
        efail(L, e, MPL_ETOOBIG, "table too large");
    echeck(L, e, msgpack_pack_map(&e->pk, count));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int v = lua_gettop(L), k = v - 1;
        size_t saved = path_push_key(e, L, k);
        encode_value(L, e, k, depth + 1);
        encode_value(L, e, v, depth + 1);
        path_pop(e, saved);
        lua_pop(L, 1);
    }
}

static void encode_value(lua_State *L, ectx *e, int idx, unsigned depth)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        echeck(L, e, msgpack_pack_nil(&e->pk));
        break;
    case LUA_TBOOLEAN:
        echeck(L, e,
               lua_toboolean(L, idx) ? msgpack_pack_true(&e->pk) : msgpack_pack_false(&e->pk));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            echeck(L, e, msgpack_pack_int64(&e->pk, (int64_t)lua_tointeger(L, idx)));
        else
            echeck(L, e, msgpack_pack_double(&e->pk, (double)lua_tonumber(L, idx)));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (len > e->lim->max_bytes)
            efail(L, e, MPL_ETOOBIG, "string of %zu bytes", len);
        if (valid_utf8((const unsigned char *)s, len))
            echeck(L, e, msgpack_pack_str_with_body(&e->pk, s, len));
        else
            echeck(L, e, msgpack_pack_bin_with_body(&e->pk, s, len));
        break;
    }
    case LUA_TTABLE:
        encode_table(L, e, idx, depth);
        break;
    default:
        efail(L, e, MPL_EUNSENDABLE, "a %s has no msgpack form", luaL_typename(L, idx));
    }
}

typedef struct eargs {
    ectx *e;
    int n;
} eargs;

static int encode_top(lua_State *L)
{
    eargs *a = lua_touserdata(L, -1);
    lua_pop(L, 1); /* the values are the arguments: 1..n */
    ectx *e = a->e;
    echeck(L, e, msgpack_pack_array(&e->pk, (size_t)a->n));
    for (int i = 0; i < a->n; i++) {
        e->plen = (size_t)snprintf(e->path, sizeof e->path, "result #%d", i + 1);
        encode_value(L, e, i + 1, 1);
    }
    return 0;
}

int mpl_encode_values(lua_State *L, int first, int n, const mpl_limits *lim, char **out,
                      size_t *outlen, char *err, size_t errlen)
{
    mpl_limits dl;
    if (!lim) {
        mpl_limits_default(&dl);
        lim = &dl;
    }
    *out = NULL;
    *outlen = 0;
    if (err && errlen)
        err[0] = 0;
    ectx e = {.lim = lim, .err = err, .errlen = errlen};
    msgpack_sbuffer_init(&e.sb);
    msgpack_packer_init(&e.pk, &e.sb, msgpack_sbuffer_write);
    int top = lua_gettop(L);
    if (n < 0 || n > INT32_MAX - 16 || !lua_checkstack(L, n + 8)) {
        if (err)
            snprintf(err, errlen, "no Lua stack space");
        msgpack_sbuffer_destroy(&e.sb);
        return MPL_ENOMEM;
    }
    first = lua_absindex(L, first);
    eargs a = {.e = &e, .n = n};
    lua_pushcfunction(L, encode_top);
    for (int i = 0; i < n; i++)
        lua_pushvalue(L, first + i);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, n + 1, 0, 0);
    if (st != LUA_OK) {
        int rc = e.rc ? e.rc : MPL_ENOMEM;
        if (!e.rc && err)
            snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "Lua error");
        lua_settop(L, top);
        msgpack_sbuffer_destroy(&e.sb);
        return rc;
    }
    lua_settop(L, top);
    if (!e.sb.data) { /* n == 0 still wrote 0x90: data is set; belt and braces */
        msgpack_sbuffer_destroy(&e.sb);
        return MPL_ENOMEM;
    }
    *out = e.sb.data;
    *outlen = e.sb.size;
    return 0;
}
