/*
** decode.c: msgpack -> Lua values. A bounds-checked cursor over the
** message (no intermediate tree): every length is checked against the bytes
** left before anything is allocated, nesting against max_depth and the
** number of values against max_elems.
*/
#include <math.h>
#include <string.h>

#include "codec_int.h"

static size_t left(codec__ctx *c)
{
    return (size_t)(c->end - c->p);
}

static void need(codec__ctx *c, size_t n)
{
    if (left(c) < n)
        codec__fail(c, CODEC_ETRUNCATED, "truncated message: %zu bytes needed, %zu left", n,
                    left(c));
}

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t take(codec__ctx *c, size_t n)
{
    need(c, n);
    uint64_t v = be(c->p, n);
    c->p += n;
    return v;
}

static const unsigned char *take_bytes(codec__ctx *c, uint32_t n)
{
    need(c, n);
    const unsigned char *p = c->p;
    c->p += n;
    return p;
}

/* Parses an ext header at c->p without consuming it. Returns the header
   size (0 if the next value is not an ext) and fills *type, *len. */
static size_t ext_header(codec__ctx *c, int *type, uint32_t *len)
{
    if (left(c) < 1)
        return 0;
    unsigned b = c->p[0];
    size_t hl, ll = 0;
    if (b >= 0xd4 && b <= 0xd8) {
        static const uint32_t fix[] = {1, 2, 4, 8, 16};
        *len = fix[b - 0xd4];
        hl = 2;
    } else if (b >= 0xc7 && b <= 0xc9) {
        ll = (size_t)1 << (b - 0xc7);
        hl = 2 + ll;
    } else {
        return 0;
    }
    need(c, hl);
    if (ll)
        *len = (uint32_t)be(c->p + 1, ll);
    *type = (int8_t)c->p[hl - 1];
    return hl;
}

int codec__peek_ext(codec__ctx *c, int *type)
{
    uint32_t len;
    return ext_header(c, type, &len) != 0;
}

void codec__read_ext(codec__ctx *c, int *type, const unsigned char **data, uint32_t *len)
{
    size_t hl = ext_header(c, type, len);
    if (hl == 0)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: ext expected");
    c->p += hl;
    *data = take_bytes(c, *len);
}

/* Reads a str or bin value. */
void codec__read_raw(codec__ctx *c, const unsigned char **data, uint32_t *len)
{
    need(c, 1);
    unsigned b = *c->p++;
    if (b >= 0xa0 && b <= 0xbf)
        *len = b & 0x1f;
    else if (b == 0xd9 || b == 0xc4)
        *len = (uint32_t)take(c, 1);
    else if (b == 0xda || b == 0xc5)
        *len = (uint32_t)take(c, 2);
    else if (b == 0xdb || b == 0xc6)
        *len = (uint32_t)take(c, 4);
    else
        codec__fail(c, CODEC_EMALFORMED, "malformed message: bytes expected (0x%02x)", b);
    *data = take_bytes(c, *len);
}

/* Is the next value an integer? */
int codec__peek_int(codec__ctx *c)
{
    if (left(c) < 1)
        return 0;
    unsigned b = c->p[0];
    return b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3);
}

lua_Integer codec__read_int(codec__ctx *c)
{
    need(c, 1);
    unsigned b = *c->p++;
    if (b <= 0x7f)
        return (lua_Integer)b;
    if (b >= 0xe0)
        return (lua_Integer)(int8_t)b;
    if (b >= 0xcc && b <= 0xcf) {
        uint64_t v = take(c, (size_t)1 << (b - 0xcc));
        if (v > (uint64_t)INT64_MAX)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: integer out of range");
        return (lua_Integer)v;
    }
    if (b >= 0xd0 && b <= 0xd3) {
        size_t n = (size_t)1 << (b - 0xd0);
        uint64_t v = take(c, n);
        if (n < 8 && (v >> (8 * n - 1)) & 1)
            v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        return (lua_Integer)(int64_t)v;
    }
    c->p--;
    codec__fail(c, CODEC_EMALFORMED, "malformed message: integer expected (0x%02x)", b);
}

static void enter(codec__ctx *c)
{
    if (++c->depth > c->lim.max_depth)
        codec__fail(c, CODEC_ETOODEEP, "nesting deeper than max_depth %u", c->lim.max_depth);
    codec__checkstack(c, 8);
}

/* Checks a container claiming n elements of at least per bytes each. */
static void claim(codec__ctx *c, uint32_t n, size_t per)
{
    if ((uint64_t)n * per > left(c))
        codec__fail(c, CODEC_ETRUNCATED, "truncated message: %u elements claimed, %zu bytes left",
                    n, left(c));
    if ((size_t)n > c->lim.max_elems - c->nodes)
        codec__fail(c, CODEC_ETOOMANY, "container of %u elements exceeds max_elems %zu", n,
                    c->lim.max_elems);
}

static int prealloc(uint32_t n)
{
    return (int)(n < CODEC__PREALLOC_CAP ? n : CODEC__PREALLOC_CAP);
}

/* Numbers the value on top (the first one waits in its stack slot, the
   table is made for a second one). */
void codec__register_top(codec__ctx *c)
{
    lua_State *L = c->L;
    if (c->nobjs == INT32_MAX)
        codec__fail(c, CODEC_ETOOMANY, "too many objects");
    if (c->nobjs == 0) {
        lua_pushvalue(L, -1);
        lua_replace(L, c->obj1);
        c->nobjs = 1;
        return;
    }
    if (lua_type(L, c->objs) == LUA_TNIL) {
        lua_createtable(L, 4, 0);
        lua_replace(L, c->objs);
        lua_pushvalue(L, c->obj1);
        lua_rawseti(L, c->objs, 1);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, c->objs, ++c->nobjs);
}

void codec__push_obj(codec__ctx *c, lua_Integer id)
{
    if (lua_type(c->L, c->objs) == LUA_TNIL)
        lua_pushvalue(c->L, c->obj1); /* id 0, the only one */
    else
        lua_rawgeti(c->L, c->objs, id + 1);
}

static void register_top(codec__ctx *c)
{
    codec__register_top(c);
}

static void decode_array(codec__ctx *c, uint32_t n)
{
    lua_State *L = c->L;
    int type;
    if (n > 0 && codec__peek_ext(c, &type) && type == CODEC__EXT_FUNC) {
        const unsigned char *d;
        uint32_t len;
        codec__read_ext(c, &type, &d, &len);
        if (len != 0)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: function marker has a payload");
        claim(c, n - 1, 1);
        enter(c);
        codec__decode_function(c, n);
        c->depth--;
        return;
    }
    claim(c, n, 1);
    enter(c);
    lua_createtable(L, prealloc(n), 0);
    register_top(c);
    int t = lua_gettop(L);
    for (uint32_t i = 1; i <= n; i++) {
        codec__decode_value(c);
        lua_rawseti(L, t, (lua_Integer)i);
    }
    c->depth--;
}

/* The value of a map entry keyed by ext META (version 2): the table's
   metatable, pushed. Only from trusted senders: a metatable makes the
   receiver call its functions (__index, __gc...) without being asked. */
static void decode_meta(codec__ctx *c, int have)
{
    lua_State *L = c->L;
    int type;
    const unsigned char *d;
    uint32_t len;
    codec__read_ext(c, &type, &d, &len);
    if (len != 0)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: metatable marker has a payload");
    if (have)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: a table with two metatables");
    if (!c->lim.allow_bytecode && !c->lim.allow_source)
        codec__fail(c, CODEC_EBYTECODE,
                    "message carries a metatable and functions are refused (allow_bytecode "
                    "and allow_source are off) "
                    "(metatables, like functions, are accepted only from trusted senders)");
    if (c->nodes >= c->lim.max_elems)
        codec__fail(c, CODEC_ETOOMANY, "more than max_elems %zu values", c->lim.max_elems);
    c->nodes++; /* the marker */
    c->as_meta = 1;
    codec__decode_value(c);
    if (!lua_istable(L, -1))
        codec__fail(c, CODEC_EMALFORMED, "malformed message: a metatable that is a %s",
                    luaL_typename(L, -1));
}

static void decode_map(codec__ctx *c, uint32_t n)
{
    lua_State *L = c->L;
    claim(c, n, 2);
    enter(c);
    lua_createtable(L, 0, prealloc(n));
    register_top(c);
    int t = lua_gettop(L);
    int mt = 0; /* stack slot of the metatable once read */
    for (uint32_t i = 0; i < n; i++) {
        int type;
        if (c->version >= 2 && codec__peek_ext(c, &type) && type == CODEC__EXT_META) {
            decode_meta(c, mt != 0);
            mt = lua_gettop(L);
            continue;
        }
        codec__decode_value(c);
        int kt = lua_type(L, -1);
        if (kt == LUA_TNIL)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: nil table key");
        if (kt == LUA_TNUMBER && !lua_isinteger(L, -1) && isnan((double)lua_tonumber(L, -1)))
            codec__fail(c, CODEC_EMALFORMED, "malformed message: NaN table key");
        codec__decode_value(c);
        lua_rawset(L, t);
    }
    if (mt) /* set once the entries are in (the metatable is on top) */
        lua_setmetatable(L, t);
    c->depth--;
}

static void decode_udata(codec__ctx *c, const unsigned char *d, uint32_t len)
{
    lua_State *L = c->L;
    if (len < 1 || (uint32_t)d[0] + 1 > len || d[0] == 0)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: bad userdata payload");
    size_t tlen = d[0];
    lua_rawgeti(L, c->state, CODEC__S_HOOKS);
    lua_pushlstring(L, (const char *)d + 1, tlen);
    lua_rawget(L, -2);
    codec__hook *h = lua_touserdata(L, -1);
    char shown[CODEC__SHOWN];
    if (h == NULL)
        codec__fail(c, CODEC_EUDATA, "no hook registered for userdata '%s'",
                    codec__shown(d + 1, tlen, shown, sizeof shown));
    lua_pop(L, 2);
    int top = lua_gettop(L);
    int rc = h->dec(L, (const char *)d + 1 + tlen, len - 1 - tlen, h->ud, c->lim.call);
    if (rc < 0 || lua_gettop(L) != top + 1)
        codec__fail(c, CODEC_EUDATA, "decode hook for userdata '%s' failed (%d)",
                    codec__shown(d + 1, tlen, shown, sizeof shown), rc);
}

/* A metatable the receiver registered under that name (luaL_newmetatable):
   the registry entry must be a table whose __name is the name. */
static void decode_regmeta(codec__ctx *c, const unsigned char *d, uint32_t len)
{
    lua_State *L = c->L;
    if (c->version < 2 || len == 0)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: bad registered metatable");
    lua_pushlstring(L, (const char *)d, len);
    lua_pushvalue(L, -1);
    int ok = lua_rawget(L, LUA_REGISTRYINDEX) == LUA_TTABLE;
    if (ok) {
        lua_pushliteral(L, "__name");
        lua_rawget(L, -2);
        ok = lua_rawequal(L, -1, -3);
        lua_pop(L, 1);
    }
    char shown[CODEC__SHOWN];
    if (!ok)
        codec__fail(c, CODEC_EMODULE,
                    "metatable '%s' is not registered here (load the library that makes it)",
                    codec__shown(d, len, shown, sizeof shown));
    lua_remove(L, -2);
}

static void decode_ext(codec__ctx *c)
{
    lua_State *L = c->L;
    int type;
    const unsigned char *d;
    uint32_t len;
    codec__read_ext(c, &type, &d, &len);
    switch (type) {
    case CODEC__EXT_REF: {
        if (len != 1 && len != 2 && len != 4)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: bad reference size");
        uint64_t id = be(d, len);
        if (id >= (uint64_t)c->nobjs)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: reference to unknown object %llu",
                        (unsigned long long)id);
        codec__push_obj(c, (lua_Integer)id);
        return;
    }
    case CODEC__EXT_GLOBALS:
        if (len != 0)
            codec__fail(c, CODEC_EMALFORMED, "malformed message: globals marker has a payload");
        lua_pushvalue(L, c->globals);
        break;
    case CODEC__EXT_MODULE:
    case CODEC__EXT_MODFUNC:
        codec__modref_resolve(c, type, d, len);
        break;
    case CODEC__EXT_UDATA:
        decode_udata(c, d, len);
        break;
    case CODEC__EXT_REGMETA:
        decode_regmeta(c, d, len);
        break;
    default:
        codec__fail(c, CODEC_EMALFORMED, "malformed message: unexpected ext type %d", type);
    }
    register_top(c);
}

void codec__decode_value(codec__ctx *c)
{
    lua_State *L = c->L;
    int as_meta = c->as_meta;
    c->as_meta = 0;
    if (c->nodes >= c->lim.max_elems)
        codec__fail(c, CODEC_ETOOMANY, "more than max_elems %zu values", c->lim.max_elems);
    c->nodes++;
    codec__checkstack(c, 4);
    need(c, 1);
    unsigned b = c->p[0];
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
        lua_pushinteger(L, codec__read_int(c));
        return;
    }
    if ((b >= 0xa0 && b <= 0xbf) || b == 0xd9 || b == 0xda || b == 0xdb ||
        (b >= 0xc4 && b <= 0xc6)) {
        const unsigned char *s;
        uint32_t n;
        codec__read_raw(c, &s, &n);
        lua_pushlstring(L, (const char *)s, n);
        return;
    }
    if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) {
        decode_ext(c);
        if (!as_meta && c->lim.view && lua_type(L, -1) == LUA_TTABLE)
            c->lim.view(L);
        return;
    }
    c->p++;
    switch (b) {
    case 0xc0:
        lua_pushnil(L);
        return;
    case 0xc2:
        lua_pushboolean(L, 0);
        return;
    case 0xc3:
        lua_pushboolean(L, 1);
        return;
    case 0xca: {
        uint32_t u = (uint32_t)take(c, 4);
        float f;
        memcpy(&f, &u, sizeof f);
        lua_pushnumber(L, (lua_Number)f);
        return;
    }
    case 0xcb: {
        uint64_t u = take(c, 8);
        double d;
        memcpy(&d, &u, sizeof d);
        lua_pushnumber(L, (lua_Number)d);
        return;
    }
    case 0xdc:
        decode_array(c, (uint32_t)take(c, 2));
        return;
    case 0xdd:
        decode_array(c, (uint32_t)take(c, 4));
        return;
    case 0xde:
        decode_map(c, (uint32_t)take(c, 2));
        return;
    case 0xdf:
        decode_map(c, (uint32_t)take(c, 4));
        return;
    default:
        break;
    }
    if (b >= 0x90 && b <= 0x9f) {
        decode_array(c, b & 0x0f);
        return;
    }
    if (b >= 0x80 && b <= 0x8f) {
        decode_map(c, b & 0x0f);
        return;
    }
    codec__fail(c, CODEC_EMALFORMED, "malformed message: byte 0x%02x", b);
}
