/*
** modref.c: loaded modules and their C functions travel by name. The
** reverse map (value -> "name" or "name\0field") is built lazily per VM and
** rebuilt when a signature of package.loaded (entry count and identities)
** changes; the receiver resolves names through package.loaded, `require`
** (when allowed) and, for "_G", its own globals table (the one in
** LUA_RIDX_GLOBALS during the decode: it may be a per-task proxy).
*/
#include <stdint.h>
#include <string.h>

#include "codec_int.h"

/* A cheap fingerprint of package.loaded: entry count and value identities. */
static lua_Integer loaded_signature(lua_State *L, int loaded)
{
    uint64_t sig = 1469598103934665603ull;
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        uint64_t v = (uint64_t)(uintptr_t)lua_topointer(L, -1);
        sig = (sig ^ v) * 1099511628211ull;
        sig += 0x9e3779b97f4a7c15ull;
        lua_pop(L, 1);
    }
    return (lua_Integer)(sig & 0x7fffffffffffffffull);
}

/* Sets map[value at v] = name unless it already has a non-"_G" name. */
static void map_set(lua_State *L, int map, int v, int name)
{
    lua_pushvalue(L, v);
    if (lua_rawget(L, map) == LUA_TSTRING) {
        const char *old = lua_tostring(L, -1);
        if (strncmp(old, "_G", 3) != 0) { /* "_G\0..." compares as "_G" */
            lua_pop(L, 1);
            return;
        }
    }
    lua_pop(L, 1);
    lua_pushvalue(L, v);
    lua_pushvalue(L, name);
    lua_rawset(L, map);
}

static void build_map(codec__ctx *c, int loaded)
{
    lua_State *L = c->L;
    codec__checkstack(c, 10);
    lua_newtable(L);
    int map = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, loaded)) {
        int mod = lua_gettop(L);
        if (lua_type(L, mod - 1) != LUA_TSTRING || !lua_istable(L, mod)) {
            lua_pop(L, 1);
            continue;
        }
        size_t nlen;
        const char *name = lua_tolstring(L, mod - 1, &nlen);
        if (memchr(name, '\0', nlen) == NULL) {
            if (!lua_rawequal(L, mod, c->globals))
                map_set(L, map, mod, mod - 1);
            lua_pushnil(L);
            while (lua_next(L, mod)) {
                size_t flen;
                const char *f;
                if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1) &&
                    (f = lua_tolstring(L, -2, &flen)) != NULL && memchr(f, '\0', flen) == NULL) {
                    lua_pushlstring(L, name, nlen);
                    lua_pushlstring(L, "", 1);
                    lua_pushvalue(L, -4);
                    lua_concat(L, 3);
                    map_set(L, map, lua_gettop(L) - 1, lua_gettop(L));
                    lua_pop(L, 1);
                }
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    lua_rawseti(L, c->state, CODEC__S_MODMAP);
}

int codec__modref_name(codec__ctx *c, int idx)
{
    lua_State *L = c->L;
    codec__checkstack(c, 6);
    if (!c->modmap_checked) {
        c->modmap_checked = 1;
        if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE) {
            lua_pop(L, 1);
            return 0;
        }
        int loaded = lua_gettop(L);
        lua_Integer sig = loaded_signature(L, loaded);
        lua_rawgeti(L, c->state, CODEC__S_MODSIG);
        int same = lua_isinteger(L, -1) && lua_tointeger(L, -1) == sig;
        lua_pop(L, 1);
        if (!same) {
            build_map(c, loaded);
            lua_pushinteger(L, sig);
            lua_rawseti(L, c->state, CODEC__S_MODSIG);
            c->vm->stats.modmap_builds++;
        }
        lua_pop(L, 1);
    }
    if (lua_rawgeti(L, c->state, CODEC__S_MODMAP) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        return 0;
    }
    lua_remove(L, -2);
    return 1;
}

/* Pushes package.loaded[name], requiring it if allowed. */
static void resolve_module(codec__ctx *c, const char *name, size_t n)
{
    lua_State *L = c->L;
    if (n == 2 && memcmp(name, "_G", 2) == 0) {
        lua_pushvalue(L, c->globals);
        return;
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushlstring(L, name, n);
    if (lua_istable(L, -2) && lua_rawget(L, -2) != LUA_TNIL) {
        lua_remove(L, -2);
        return;
    }
    lua_pop(L, 2);
    char shown[CODEC__SHOWN];
    if (!c->lim.allow_require)
        codec__fail(c, CODEC_EMODULE, "module '%s' is not loaded here (allow_require is off)",
                    codec__shown(name, n, shown, sizeof shown));
    lua_getglobal(L, "require");
    lua_pushlstring(L, name, n);
    int st = lua_pcall(L, 1, 1, 0);
    if (st != LUA_OK) {
        const char *m = lua_tostring(L, -1); /* (it names the module: shown too) */
        size_t mlen = m ? lua_rawlen(L, -1) : 1;
        char why[180];
        codec__fail(c, st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_EMODULE,
                    "cannot require module '%s': %s", codec__shown(name, n, shown, sizeof shown),
                    codec__shown(m ? m : "?", mlen, why, sizeof why));
    }
}

void codec__modref_resolve(codec__ctx *c, int type, const unsigned char *p, uint32_t len)
{
    lua_State *L = c->L;
    const char *name = (const char *)p;
    const char *nul = memchr(name, '\0', len);
    size_t nlen = nul ? (size_t)(nul - name) : len;
    if (nlen == 0 || (type == CODEC__EXT_MODFUNC) != (nul != NULL) ||
        (nul && (nul + 1 == name + len || memchr(nul + 1, '\0', len - nlen - 1) != NULL)))
        codec__fail(c, CODEC_EMALFORMED, "malformed message: bad module reference");
    codec__checkstack(c, 6);
    resolve_module(c, name, nlen);
    char shown[CODEC__SHOWN], fshown[CODEC__SHOWN];
    if (type == CODEC__EXT_MODULE) {
        if (!lua_istable(L, -1))
            codec__fail(c, CODEC_EMODULE, "module '%s' is not a table here",
                        codec__shown(name, nlen, shown, sizeof shown));
        return;
    }
    size_t flen = len - nlen - 1;
    if (!lua_istable(L, -1))
        codec__fail(c, CODEC_EMODULE, "module '%s' is not a table here",
                    codec__shown(name, nlen, shown, sizeof shown));
    if (c->lim.view) /* the function as the receiver's view of the module has it */
        c->lim.view(L);
    lua_pushlstring(L, nul + 1, flen);
    /* not raw: a globals table may be a proxy (__index) of the real one */
    if (lua_gettable(L, -2) != LUA_TFUNCTION)
        codec__fail(c, CODEC_EMODULE, "module '%s' has no function '%s'",
                    codec__shown(name, nlen, shown, sizeof shown),
                    codec__shown(nul + 1, flen, fshown, sizeof fshown));
    lua_remove(L, -2);
}
