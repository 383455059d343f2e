/* async.c: async handles, await and await_all (see async.h). */
#include "async.h"

#include <lauxlib.h>

ghandle *handle_new(lua_State *L, sched *s)
{
    ghandle *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->id = 0;
    h->done = h->ok = 0;
    h->res_ref = LUA_NOREF;
    h->s = s;
    h->sc = NULL;
    h->core = NULL;
    h->remote = h->asked = 0;
    glist_init(&h->waiters);
    luaL_setmetatable(L, HANDLE_TNAME);
    return h;
}

ghandle *handle_test(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, HANDLE_TNAME);
}

void handle_set_outcome(ghandle *h, lua_State *T)
{
    h->res_ref = luaL_ref(T, LUA_REGISTRYINDEX);
    h->done = 1;
    sched_ready_all(h->s, &h->waiters);
}

static void resolve(ghandle *h, lua_State *T)
{
    handle_set_outcome(h, T);
    if (h->core)
        handle_travel_resolved(h);
}

void handle_resolve_values(ghandle *h, lua_State *co, int nres)
{
    lua_State *T = h->s->T;
    luaL_checkstack(T, 3, NULL);
    lua_createtable(T, nres + 1, 1);
    lua_pushboolean(T, 1);
    lua_rawseti(T, -2, 1);
    for (int i = nres; i >= 1; i--) {
        lua_xmove(co, T, 1);
        lua_rawseti(T, -2, i + 1);
    }
    lua_pushinteger(T, nres + 1);
    lua_setfield(T, -2, "n");
    h->ok = 1;
    resolve(h, T);
}

void handle_resolve_error(ghandle *h, lua_State *T)
{
    luaL_checkstack(T, 3, NULL);
    lua_createtable(T, 2, 1);
    lua_pushboolean(T, 0);
    lua_rawseti(T, -2, 1);
    lua_rotate(T, -2, 1); /* error value above the table */
    lua_rawseti(T, -2, 2);
    lua_pushinteger(T, 2);
    lua_setfield(T, -2, "n");
    h->ok = 0;
    resolve(h, T);
}

int handle_push_outcome(lua_State *L, ghandle *h)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->res_ref);
    lua_getfield(L, -1, "n");
    int n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results to await");
    for (int i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -n - 1);
    return n;
}

static int await_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    return handle_push_outcome(L, (ghandle *)ctx);
}

int handle_await(lua_State *L, ghandle *h)
{
    if (h->done)
        return handle_push_outcome(L, h);
    if (h->remote)
        handle_travel_ask(h);
    return sched_wait(L, h->s, &h->waiters, 0, (lua_KContext)h, await_k);
}

static int handle_tostring(lua_State *L)
{
    ghandle *h = luaL_checkudata(L, 1, HANDLE_TNAME);
    lua_pushfstring(L, "goroutine.handle: %I (%s)", (lua_Integer)h->id,
                    !h->done ? "running"
                    : h->ok  ? "done"
                             : "failed");
    return 1;
}

static int handle_gc(lua_State *L)
{
    ghandle *h = luaL_checkudata(L, 1, HANDLE_TNAME);
    if (h->res_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, h->res_ref);
        h->res_ref = LUA_NOREF;
    }
    if (h->sc) {
        scope_release(h->sc);
        h->sc = NULL;
    }
    if (h->core)
        handle_travel_gc(h);
    return 0;
}

void handle_register(lua_State *L, sched *s)
{
    if (luaL_newmetatable(L, HANDLE_TNAME)) {
        lua_pushcfunction(L, handle_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, handle_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, "goroutine.handle");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    handle_travel_register(L, s);
}
