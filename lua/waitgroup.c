/* waitgroup.c: add/done/wait; a counter below zero is an error, as in Go. */
#include "waitgroup.h"

#include <lauxlib.h>

static waitgroup *check_wg(lua_State *L) { return luaL_checkudata(L, 1, WAITGROUP_TNAME); }

waitgroup *waitgroup_new(lua_State *L, sched *s)
{
    waitgroup *wg = lua_newuserdatauv(L, sizeof *wg, 0);
    wg->count = 0;
    wg->s = s;
    glist_init(&wg->waiters);
    luaL_setmetatable(L, WAITGROUP_TNAME);
    return wg;
}

static int wg_change(lua_State *L, waitgroup *wg, lua_Integer delta)
{
    lua_Integer n = wg->count + delta;
    if (n < 0)
        return luaL_error(L, "negative WaitGroup counter");
    wg->count = n;
    if (n == 0)
        sched_ready_all(wg->s, &wg->waiters);
    return 0;
}

static int wg_add(lua_State *L)
{
    waitgroup *wg = check_wg(L);
    lua_Integer delta = luaL_optinteger(L, 2, 1);
    wg_change(L, wg, delta);
    return 0;
}

static int wg_done(lua_State *L)
{
    wg_change(L, check_wg(L), -1);
    return 0;
}

static int wg_wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)L;
    (void)status;
    (void)ctx;
    return 0;
}

static int wg_wait(lua_State *L)
{
    waitgroup *wg = check_wg(L);
    if (wg->count == 0)
        return 0;
    return sched_wait(L, wg->s, &wg->waiters, 0, 0, wg_wait_k);
}

static int wg_count(lua_State *L)
{
    lua_pushinteger(L, check_wg(L)->count);
    return 1;
}

static int wg_tostring(lua_State *L)
{
    waitgroup *wg = check_wg(L);
    lua_pushfstring(L, "WaitGroup(%I)", wg->count);
    return 1;
}

void waitgroup_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", wg_add}, {"done", wg_done}, {"wait", wg_wait}, {"count", wg_count}, {NULL, NULL}};
    if (luaL_newmetatable(L, WAITGROUP_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, wg_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
