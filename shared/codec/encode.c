/*
** encode.c: Lua values -> msgpack. Scalars map to msgpack scalars, tables to
** maps/arrays (a table's metatable as a last map entry keyed by ext META),
** every table, function and userdata is numbered on first sight and sent
** again as a reference, so sharing and cycles survive. On a value that
** cannot travel the path to it is rendered into the error message.
*/
#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "codec_int.h"

void codec__pack_ok(codec__ctx *c, int rc)
{
    if (rc == 0)
        return;
    if (c->overflow)
        codec__fail(c, CODEC_ETOOBIG, "message would exceed max_bytes %zu", c->lim.max_bytes);
    codec__fail(c, CODEC_ENOMEM, "out of memory writing the message");
}

void codec__path_push(codec__ctx *c, int kind, int a, lua_Integer i)
{
    codec__seg *s = &c->path[c->npath++];
    s->kind = kind;
    s->a = a;
    s->i = i;
}

/* Gives the object at idx (an absolute index) the next id: the first one
   waits in its stack slot, the table of ids is made for a second one. */
void codec__register(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    if (c->nobjs == 0) {
        lua_pushvalue(L, idx);
        lua_replace(L, c->obj1);
        c->nobjs = 1;
        return;
    }
    if (lua_type(L, c->objs) == LUA_TNIL) {
        lua_createtable(L, 0, 4);
        lua_replace(L, c->objs);
        lua_pushvalue(L, c->obj1);
        lua_pushinteger(L, 0);
        lua_rawset(L, c->objs);
    }
    lua_pushvalue(L, idx);
    lua_pushinteger(L, c->nobjs++);
    lua_rawset(L, c->objs);
}

lua_Integer codec__obj_id(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    if (c->nobjs == 0)
        return -1;
    if (lua_type(L, c->objs) == LUA_TNIL)
        return lua_rawequal(L, idx, c->obj1) ? 0 : -1;
    lua_pushvalue(L, idx);
    lua_Integer id = lua_rawget(L, c->objs) == LUA_TNUMBER ? lua_tointeger(L, -1) : -1;
    lua_pop(L, 1);
    return id;
}

/* ---- error messages ---------------------------------------------------- */

typedef struct msgbuf {
    char *s;
    size_t cap;
    size_t len;
} msgbuf;

static void mb_add(msgbuf *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mb_add(msgbuf *m, const char *fmt, ...)
{
    if (m->len + 1 >= m->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(m->s + m->len, m->cap - m->len, fmt, ap);
    va_end(ap);
    if (k > 0)
        m->len += (size_t)k < m->cap - m->len ? (size_t)k : m->cap - m->len - 1;
}

static int is_ident(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return 0;
    return 1;
}

/* Appends the key at stack index k as a path component. */
static void mb_key(codec__ctx *c, msgbuf *m, int k, int first)
{
    lua_State *L = c->L;
    size_t n;
    switch (lua_type(L, k)) {
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, k, &n);
        if (is_ident(s, n))
            mb_add(m, "%s%s", first ? "" : ".", s);
        else
            mb_add(m, "[\"%.*s%s\"]", (int)(n > 40 ? 40 : n), s, n > 40 ? "..." : "");
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, k))
            mb_add(m, "[%lld]", (long long)lua_tointeger(L, k));
        else
            mb_add(m, "[%g]", (double)lua_tonumber(L, k));
        break;
    case LUA_TBOOLEAN:
        mb_add(m, "[%s]", lua_toboolean(L, k) ? "true" : "false");
        break;
    default:
        mb_add(m, "[%s]", luaL_typename(L, k));
        break;
    }
}

/* Renders path[*i] (and the fields before it) into m; moves *i outwards.
   Returns the segment kind rendered. When typ is not NULL it is written
   after the name of the piece. */
static int mb_piece(codec__ctx *c, msgbuf *m, int *i, const char *typ)
{
    lua_State *L = c->L;
    codec__seg *s = &c->path[*i];
    switch (s->kind) {
    case CODEC__SEG_FIELD:
    case CODEC__SEG_INDEX: {
        int j = *i;
        while (j > 0 &&
               (c->path[j - 1].kind == CODEC__SEG_FIELD || c->path[j - 1].kind == CODEC__SEG_INDEX))
            j--;
        mb_add(m, "field '");
        for (int k = j; k <= *i; k++) {
            if (c->path[k].kind == CODEC__SEG_INDEX)
                mb_add(m, "[%lld]", (long long)c->path[k].i);
            else
                mb_key(c, m, c->path[k].a, k == j);
        }
        mb_add(m, "'");
        if (typ)
            mb_add(m, " (%s)", typ);
        *i = j - 1;
        return CODEC__SEG_FIELD;
    }
    case CODEC__SEG_META:
        mb_add(m, "metatable");
        if (typ)
            mb_add(m, " (%s)", typ);
        *i -= 1;
        return CODEC__SEG_META;
    case CODEC__SEG_KEY:
        mb_add(m, "table key");
        if (typ)
            mb_add(m, " (%s)", typ);
        *i -= 1;
        return CODEC__SEG_KEY;
    case CODEC__SEG_UPVAL: {
        const char *name = lua_getupvalue(L, s->a, (int)s->i);
        if (name != NULL)
            lua_pop(L, 1);
        if (name != NULL && name[0] != '\0' && strcmp(name, "(no name)") != 0)
            mb_add(m, "upvalue '%s'", name);
        else
            mb_add(m, "upvalue #%d", (int)s->i);
        if (typ)
            mb_add(m, " (%s)", typ);
        lua_Debug ar;
        lua_pushvalue(L, s->a);
        if (lua_getinfo(L, ">S", &ar))
            mb_add(m, " of function at %s:%d", ar.short_src, ar.linedefined);
        *i -= 1;
        return CODEC__SEG_UPVAL;
    }
    default:
        mb_add(m, "%s #%d", c->lim.value_name ? c->lim.value_name : "argument",
               s->a - 1 + c->lim.first_number);
        if (typ)
            mb_add(m, " (%s)", typ);
        *i -= 1;
        return CODEC__SEG_ARG;
    }
}

void codec__unsendable(codec__ctx *c, const char *what)
{
    msgbuf m = {c->msg, sizeof c->msg, 0};
    c->msg[0] = '\0';
    mb_add(&m, "cannot send ");
    int i = c->npath - 1;
    int inner = mb_piece(c, &m, &i, what);
    while (i >= 0) {
        /* "upvalue 'x' of function at f:1" already names the function */
        if (c->path[i].kind == CODEC__SEG_ARG && inner == CODEC__SEG_UPVAL) {
            i--;
            continue;
        }
        mb_add(&m, " of ");
        inner = mb_piece(c, &m, &i, NULL);
    }
    c->code = CODEC_EUNSENDABLE;
    lua_pushstring(c->L, c->msg);
    lua_error(c->L);
    abort();
}

/* ---- values ------------------------------------------------------------ */

static void enter(codec__ctx *c)
{
    if (++c->depth > c->lim.max_depth)
        codec__fail(c, CODEC_ETOODEEP, "nesting deeper than max_depth %u", c->lim.max_depth);
    codec__checkstack(c, 8);
}

static void count_nodes(codec__ctx *c, size_t n)
{
    if (n > c->lim.max_elems || c->nodes > c->lim.max_elems - n)
        codec__fail(c, CODEC_ETOOMANY, "more than max_elems %zu values", c->lim.max_elems);
    c->nodes += n;
}

static void pack_ext(codec__ctx *c, int type, const void *p, size_t n)
{
    codec__pack_ok(c, msgpack_pack_ext(&c->pk, n, (int8_t)type));
    if (n)
        codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, p, n));
}

static void encode_table(codec__ctx *c, int t)
{
    lua_State *L = c->L;
    /* the real metatable (lua_getmetatable ignores __metatable) */
    int mt = lua_getmetatable(L, t) ? lua_gettop(L) : 0;
    lua_Integer b = (lua_Integer)lua_rawlen(L, t);
    size_t total = 0;
    lua_Integer seq = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        total++;
        if (lua_isinteger(L, -2)) {
            lua_Integer k = lua_tointeger(L, -2);
            if (k >= 1 && k <= b)
                seq++;
        }
        lua_pop(L, 1);
    }
    if (!mt && total > 0 && (lua_Integer)total == b && seq == b) {
        codec__pack_ok(c, msgpack_pack_array(&c->pk, total));
        for (lua_Integer i = 1; i <= b; i++) {
            lua_rawgeti(L, t, i);
            codec__path_push(c, CODEC__SEG_INDEX, 0, i);
            codec__encode_value(c, lua_gettop(L));
            c->npath--;
            lua_pop(L, 1);
        }
        return;
    }
    codec__pack_ok(c, msgpack_pack_map(&c->pk, total + (mt ? 1 : 0)));
    size_t done = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int v = lua_gettop(L);
        codec__path_push(c, CODEC__SEG_KEY, 0, 0);
        codec__encode_value(c, v - 1);
        c->npath--;
        codec__path_push(c, CODEC__SEG_FIELD, v - 1, 0);
        codec__encode_value(c, v);
        c->npath--;
        lua_pop(L, 1);
        done++;
    }
    if (done != total)
        codec__fail(c, CODEC_EINVAL, "table changed while being encoded");
    if (mt) {
        /* last, so that the receiver sets it once the entries are in */
        count_nodes(c, 1);
        pack_ext(c, CODEC__EXT_META, NULL, 0);
        codec__path_push(c, CODEC__SEG_META, 0, 0);
        codec__encode_value(c, mt);
        c->npath--;
        c->v2 = 1;
        lua_pop(L, 1);
    }
}

/* Sends a table that luaL_newmetatable registered (its __name field names
   it in the registry, e.g. a library's metatable of its objects) by that
   name; returns 0 when it is not one. */
static int encode_regmeta(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    lua_pushliteral(L, "__name");
    if (lua_rawget(L, idx) != LUA_TSTRING) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, -1);
    int same = lua_rawget(L, LUA_REGISTRYINDEX) == LUA_TTABLE && lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    if (!same) {
        lua_pop(L, 1);
        return 0;
    }
    size_t n;
    const char *name = lua_tolstring(L, -1, &n);
    codec__register(c, idx);
    pack_ext(c, CODEC__EXT_REGMETA, name, n);
    c->v2 = 1;
    lua_pop(L, 1);
    return 1;
}

static void encode_udata(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    if (!lua_getmetatable(L, idx))
        codec__unsendable(c, "userdata");
    int mt = lua_gettop(L);
    if (lua_getfield(L, mt, "__name") != LUA_TSTRING)
        codec__unsendable(c, "userdata");
    size_t tlen;
    const char *tname = lua_tolstring(L, -1, &tlen);
    lua_rawgeti(L, c->state, CODEC__S_HOOKS);
    lua_pushvalue(L, -2);
    lua_rawget(L, -2);
    codec__hook *h = lua_touserdata(L, -1);
    if (h == NULL || tlen > 255 || luaL_getmetatable(L, tname) != LUA_TTABLE ||
        !lua_rawequal(L, -1, mt))
        codec__unsendable(c, "userdata");
    lua_pop(L, 1);
    codec__register(c, idx);
    int top = lua_gettop(L);
    int rc = h->enc(L, idx, h->ud, c->lim.call);
    if (rc < 0 || lua_gettop(L) != top + 1 || lua_type(L, -1) != LUA_TSTRING)
        codec__fail(c, CODEC_EUDATA, "encode hook for userdata '%s' failed (%d)", tname, rc);
    size_t blen;
    const char *bytes = lua_tolstring(L, -1, &blen);
    unsigned char tl = (unsigned char)tlen;
    codec__pack_ok(c, msgpack_pack_ext(&c->pk, 1 + tlen + blen, CODEC__EXT_UDATA));
    codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, &tl, 1));
    codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, tname, tlen));
    codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, bytes, blen));
    lua_settop(L, mt - 1);
}

/* Sends the name of the module (or module function) at idx if it is one;
   returns 0 when it is not a module value. */
static int encode_modref(codec__ctx *c, int idx)
{
    if (!codec__modref_name(c, idx))
        return 0;
    size_t n;
    const char *name = lua_tolstring(c->L, -1, &n);
    codec__register(c, idx);
    pack_ext(c, memchr(name, '\0', n) ? CODEC__EXT_MODFUNC : CODEC__EXT_MODULE, name, n);
    lua_pop(c->L, 1);
    return 1;
}

static void encode_ref(codec__ctx *c, lua_Integer id)
{
    unsigned char b[4];
    size_t n;
    if (id <= 0xff) {
        b[0] = (unsigned char)id;
        n = 1;
    } else if (id <= 0xffff) {
        b[0] = (unsigned char)(id >> 8);
        b[1] = (unsigned char)id;
        n = 2;
    } else {
        for (int i = 0; i < 4; i++)
            b[i] = (unsigned char)(id >> (24 - 8 * i));
        n = 4;
    }
    pack_ext(c, CODEC__EXT_REF, b, n);
}

static _Atomic(codec_unview_fn) unview_fn;

void codec_set_unview(codec_unview_fn fn)
{
    atomic_store(&unview_fn, fn);
}

static void encode_object(codec__ctx *c, int idx, int type)
{
    lua_State *L = c->L;
    codec_unview_fn uv = atomic_load_explicit(&unview_fn, memory_order_relaxed);
    if (type == LUA_TTABLE && uv) {
        codec__checkstack(c, 4);
        if (uv(L, idx)) { /* travels as the table it stands for */
            encode_object(c, lua_gettop(L), type);
            lua_pop(L, 1);
            return;
        }
    }
    count_nodes(c, 1);
    lua_Integer id = codec__obj_id(c, idx);
    if (id >= 0) {
        encode_ref(c, id);
        return;
    }
    enter(c);
    if (type == LUA_TTABLE) {
        if (lua_rawequal(L, idx, c->globals)) {
            codec__register(c, idx);
            pack_ext(c, CODEC__EXT_GLOBALS, NULL, 0);
        } else if (!encode_modref(c, idx) && !encode_regmeta(c, idx)) {
            codec__register(c, idx);
            encode_table(c, idx);
        }
    } else if (type == LUA_TFUNCTION) {
        if (lua_iscfunction(L, idx)) {
            if (!encode_modref(c, idx))
                codec__unsendable(c, "C function");
        } else {
            codec__register(c, idx);
            codec__encode_function(c, idx);
        }
    } else {
        encode_udata(c, idx);
    }
    c->depth--;
}

void codec__encode_as_globals(codec__ctx *c, int idx)
{
    count_nodes(c, 1);
    lua_Integer id = codec__obj_id(c, idx);
    if (id >= 0) {
        encode_ref(c, id);
        return;
    }
    codec__register(c, idx);
    pack_ext(c, CODEC__EXT_GLOBALS, NULL, 0);
}

void codec__encode_value(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    int type = lua_type(L, idx);
    switch (type) {
    case LUA_TNIL:
        count_nodes(c, 1);
        codec__pack_ok(c, msgpack_pack_nil(&c->pk));
        break;
    case LUA_TBOOLEAN:
        count_nodes(c, 1);
        codec__pack_ok(c, lua_toboolean(L, idx) ? msgpack_pack_true(&c->pk)
                                                : msgpack_pack_false(&c->pk));
        break;
    case LUA_TNUMBER:
        count_nodes(c, 1);
        if (lua_isinteger(L, idx))
            codec__pack_ok(c, msgpack_pack_int64(&c->pk, (int64_t)lua_tointeger(L, idx)));
        else
            codec__pack_ok(c, msgpack_pack_double(&c->pk, (double)lua_tonumber(L, idx)));
        break;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        count_nodes(c, 1);
        codec__pack_ok(c, msgpack_pack_str(&c->pk, n));
        codec__pack_ok(c, msgpack_pack_str_body(&c->pk, s, n));
        break;
    }
    case LUA_TTABLE:
    case LUA_TFUNCTION:
    case LUA_TUSERDATA:
        encode_object(c, idx, type);
        break;
    case LUA_TLIGHTUSERDATA:
        codec__unsendable(c, "light userdata");
    default:
        codec__unsendable(c, luaL_typename(L, idx));
    }
}
