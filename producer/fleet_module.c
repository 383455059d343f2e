/* fleet_module.c: goroutine_fleet.so, the goroutine module on the fleet for
 * the stock lua5.4 interpreter.
 *
 *   local goroutine = require("goroutine_fleet")
 *
 * loads the configuration the way the mutirao command does (MUTIRAO_CONFIG,
 * config/mutirao.conf, /etc/mutirao/mutirao.conf, MUTIRAO_* variables; the
 * fleet is on whatever `fleet` says), puts this VM's pools on the fleet and
 * returns the goroutine module, also as package.loaded.goroutine so that a
 * later require("goroutine") in this VM is the same module (and
 * require("http"), require("exec") this library's). goroutine.so
 * stays free of Kafka, Redis and OpenSSL: this is a separate library with
 * its own copy of the runtime, so a process uses one of the two. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "config.h"
#include "fleet_pool.h"
#include "goroutine.h"
#include "scheduler.h"

static const char CFG_KEY = 'c';

static void cfg_free(sched *s, void *data)
{
    (void)s;
    config_free(data);
    free(data);
}

MUTIRAO_EXPORT int luaopen_goroutine_fleet(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    if (lua_getfield(L, loaded, "goroutine") != LUA_TNIL)
        return luaL_error(L, "goroutine_fleet: require it before 'goroutine' (this VM already "
                             "has the goroutine module of goroutine.so)");
    lua_pop(L, 1);
    /* require("http") / require("exec") must give this library's modules,
     * not load goroutine.so's second runtime from package.cpath */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_http);
    lua_setfield(L, -2, "http");
    lua_pushcfunction(L, luaopen_exec);
    lua_setfield(L, -2, "exec");
    lua_pop(L, 1);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0);
    sched *s = sched_get(L);
    config *cfg = calloc(1, sizeof *cfg);
    if (!cfg || sched_ext_set(s, &CFG_KEY, cfg, cfg_free) != 0) {
        free(cfg);
        return luaL_error(L, "not enough memory");
    }
    char err[512];
    if (config_load(cfg, NULL, err, sizeof err) != 0)
        return luaL_error(L, "goroutine_fleet: %s", err);
    if (cfg->fleet)
        fleet_backend_install(L, s, cfg);
    return 1;
}
