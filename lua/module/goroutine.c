/* goroutine.c: the `goroutine` Lua module: spawn, spawn_many, wait_group,
 * async, await, await_all, sleep, timeout, plus the runner's internals
 * (_run_scope, _context, _set_error_handler). Pools live in pool.c. */
#include "goroutine.h"

#include <dlfcn.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "async.h"
#include "cancel_link.h"
#include "channel.h"
#include "coroutines.h"
#include "http.h"
#include "iomods.h"
#include "patterns.h"
#include "pool.h"
#include "procs.h"
#include "scheduler.h"
#include "sync.h"
#include "travel.h"
#include "waitgroup.h"

static sched *S(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* Milliseconds argument: a non-negative number (fractions allowed; more
 * than about 30 years, math.huge included, means never). */
static double check_ms(lua_State *L, int arg)
{
    lua_Number ms = luaL_checknumber(L, arg);
    if (!(ms >= 0))
        luaL_argerror(L, arg, "non-negative number of milliseconds expected");
    return (double)ms;
}

#define NEVER_MS 1e12

/* Nanoseconds from milliseconds; UINT64_MAX for "never". */
static uint64_t ms_to_ns(double ms)
{
    return ms > NEVER_MS ? UINT64_MAX : (uint64_t)llround(ms * 1e6);
}

static int g_spawn(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    sched_spawn(S(L), L, lua_gettop(L) - 1, NULL, NULL);
    return 0;
}

/* The most goroutines one spawn_many call starts. Each waits in the run
 * queue with its own thread (about 1.3 KB) until it runs, so this is already
 * about 13 GB; far larger counts (1e15) could only end in the machine
 * running out of memory. */
#define SPAWN_MANY_MAX 10000000

/* spawn_many's loop, run under lua_pcall: (sched, fn, n). */
static int spawn_many_loop(lua_State *L)
{
    sched *s = lua_touserdata(L, 1);
    lua_Integer n = lua_tointeger(L, 3);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushvalue(L, 2);
        lua_pushinteger(L, i);
        sched_spawn(s, L, 1, NULL, NULL);
    }
    return 0;
}

static int g_spawn_many(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 0, 1, "non-negative count expected");
    luaL_argcheck(L, n <= SPAWN_MANY_MAX, 1, "count too large (at most 10000000)");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    sched *s = S(L);
    /* All or nothing: when an error (not enough memory) stops the loop
     * part-way, the goroutines it started are taken back before the error
     * goes on, so a caller that catches it has nothing half done and gets
     * their memory back. */
    uint64_t before = s->next_id;
    lua_pushcfunction(L, spawn_many_loop);
    lua_pushlightuserdata(L, s);
    lua_pushvalue(L, 2);
    lua_pushinteger(L, n);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        sched_unspawn(s, sched_current_scope(s, L), before);
        return lua_error(L);
    }
    return 0;
}

static int g_wait_group(lua_State *L)
{
    waitgroup_new(L, S(L));
    return 1;
}

static int nothing_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)L;
    (void)status;
    (void)ctx;
    return 0;
}

static int g_sleep(lua_State *L)
{
    double ms = check_ms(L, 1);
    sched *s = S(L);
    uint64_t ns = ms_to_ns(ms);
    gor *g = gor_of(L);
    if (ns == 0 && g && g->state == G_RUNNING && lua_isyieldable(L))
        return lua_yield(L, 0); /* let the others run, as Go's runtime.Gosched */
    if (ns == UINT64_MAX)       /* forever: only cancellation ends it */
        return sched_wait(L, s, NULL, 0, 0, nothing_k);
    return sched_wait(L, s, NULL, sched_now_ns() + (ns ? ns : 1), 0, nothing_k);
}

static int g_async(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    sched *s = S(L);
    int nargs = lua_gettop(L) - 1;
    ghandle *h = handle_new(L, s);
    lua_insert(L, 1);
    lua_pushvalue(L, 1);
    lua_insert(L, 1); /* h, h, fn, args... */
    gor *g = sched_spawn(s, L, nargs, NULL, h);
    if (!h->id)
        h->id = g->id;
    return 1;
}

static ghandle *check_handle(lua_State *L, int arg)
{
    ghandle *h = handle_test(L, arg);
    if (!h)
        luaL_typeerror(L, arg, "async handle");
    return h;
}

static int g_await(lua_State *L)
{
    if (lua_type(L, 1) == LUA_TSTRING) /* a pool task id */
        return pool_await(L, S(L), 1);
    ghandle *h = check_handle(L, 1);
    lua_settop(L, 1); /* keeps h alive while waiting */
    return handle_await(L, h);
}

static ghandle *await_all_at(lua_State *L, lua_Integer i)
{
    lua_rawgeti(L, 1, i);
    ghandle *h = handle_test(L, -1);
    if (!h)
        luaL_argerror(L, 1,
                      lua_pushfstring(L, "async handle or task id expected at index %I, got %s", i,
                                      luaL_typename(L, -1)));
    lua_pop(L, 1);
    return h;
}

static int await_all_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    sched *s = S(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = (lua_Integer)ctx; i <= n; i++) {
        ghandle *h = await_all_at(L, i);
        if (h->done)
            continue;
        if (h->remote)
            handle_travel_ask(h);
        gor *g = gor_of(L);
        if (g && g->state == G_RUNNING)
            return sched_wait(L, s, &h->waiters, 0, (lua_KContext)i, await_all_k);
        sched_block(L, s, &h->waiters, 0);
    }
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        ghandle *h = await_all_at(L, i);
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, h->ok);
        lua_setfield(L, -2, "success");
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->res_ref); /* {n, ok, values...} */
        if (h->ok) {
            lua_getfield(L, -1, "n");
            lua_Integer m = lua_tointeger(L, -1);
            lua_pop(L, 1);
            lua_createtable(L, (int)(m - 1), 1);
            for (lua_Integer j = 2; j <= m; j++) {
                lua_rawgeti(L, -2, j);
                lua_rawseti(L, -2, j - 1);
            }
            lua_pushinteger(L, m - 1);
            lua_setfield(L, -2, "n");
            lua_setfield(L, -3, "values");
        } else {
            lua_rawgeti(L, -1, 2);
            lua_setfield(L, -3, "error");
        }
        lua_pop(L, 1);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* The goroutine that stands for a pool task id in await_all. */
static const char await_id_src[] = "local await, id = ...\n"
                                   "local r = table.pack(await(id))\n"
                                   "if r[1] then return table.unpack(r, 2, r.n) end\n"
                                   "error(r[2], 0)\n";

/* await_all also takes pool task ids: each becomes a handle of a goroutine
 * awaiting it (a copy of the table is used; the caller's is not changed). */
static void ids_to_handles(lua_State *L)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    int any = 0;
    for (lua_Integer i = 1; i <= n && !any; i++) {
        any = lua_rawgeti(L, 1, i) == LUA_TSTRING;
        lua_pop(L, 1);
    }
    if (!any)
        return;
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        if (lua_rawgeti(L, 1, i) == LUA_TSTRING) {
            int id = lua_gettop(L);
            lua_pushlightuserdata(L, S(L));
            lua_pushcclosure(L, g_async, 1);
            if (luaL_loadbufferx(L, await_id_src, sizeof await_id_src - 1, "=await_all", "t") !=
                LUA_OK)
                lua_error(L);
            lua_pushlightuserdata(L, S(L));
            lua_pushcclosure(L, g_await, 1);
            lua_pushvalue(L, id);
            lua_call(L, 3, 1); /* async(body, await, id) */
            lua_remove(L, id);
        }
        lua_rawseti(L, -2, i);
    }
    lua_replace(L, 1);
}

static int g_await_all(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    ids_to_handles(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    for (lua_Integer i = 1; i <= n; i++)
        await_all_at(L, i);
    return await_all_k(L, LUA_OK, 1);
}

/* Starts fn (at index fidx, arguments after it up to the top) as the lead
 * goroutine of a new scope with the given timeout. Leaves the lead's handle,
 * which holds the creator's reference on the scope, as the only value on
 * the stack. */
static ghandle *start_scope(lua_State *L, int fidx, uint64_t timeout_ns, scope **out)
{
    sched *s = S(L);
    scope *sc = scope_new(s, sched_current_scope(s, L), timeout_ns);
    if (!sc)
        luaL_error(L, "not enough memory");
    ghandle *h = handle_new(L, s);
    h->sc = sc;
    int nargs = lua_gettop(L) - fidx - 1; /* handle now on top */
    lua_insert(L, fidx);
    lua_pushvalue(L, fidx);
    lua_insert(L, fidx); /* h, h, fn, args... */
    gor *g = sched_spawn(s, L, nargs, sc, h);
    h->id = g->id;
    lua_settop(L, fidx);
    lua_replace(L, 1);
    lua_settop(L, 1);
    *out = sc;
    return h;
}

/* timeout()'s outcome: fn's, except that a failure at or past the deadline
 * (fn stopped inside a C call that could not yield) reads as the timeout. */
static int timeout_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    ghandle *h = (ghandle *)ctx;
    scope *sc = h->sc;
    if (!h->ok && (sc->cancelled || (sc->eff_deadline && sched_now_ns() >= sc->eff_deadline))) {
        if (!sc->cancelled)
            scope_cancel(sc, NULL); /* its goroutines go with it */
        lua_pushboolean(L, 0);
        lua_pushstring(L, sc->reason);
        return 2;
    }
    return handle_push_outcome(L, h);
}

static int g_timeout(lua_State *L)
{
    double ms = check_ms(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    scope *sc;
    if (ms == floor(ms))
        lua_pushfstring(L, "timeout after %I ms", (lua_Integer)ms);
    else
        lua_pushfstring(L, "timeout after %f ms", (lua_Number)ms);
    char reason[sizeof sc->reason];
    strncpy(reason, lua_tostring(L, -1), sizeof reason - 1);
    reason[sizeof reason - 1] = 0;
    lua_pop(L, 1);
    ghandle *h = start_scope(L, 2, ms_to_ns(ms), &sc);
    memcpy(sc->reason, reason, sizeof reason);
    sc->lead = scope_newest(sc); /* the deadline ends when fn returns in time */
    if (h->done)
        return timeout_k(L, LUA_OK, (lua_KContext)h);
    return sched_wait(L, h->s, &h->waiters, 0, (lua_KContext)h, timeout_k);
}

static int run_scope_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    ghandle *h = (ghandle *)ctx;
    scope *sc = h->sc;
    if (sc->nlive > 0)
        return sched_wait(L, S(L), &sc->waiters, 0, ctx, run_scope_k);
    if (sc->cancelled) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, sc->reason);
        lua_pushboolean(L, 1);
        return 3;
    }
    int n = handle_push_outcome(L, h);
    if (h->ok)
        return n;
    lua_pushnil(L); /* false, err, nil, and the id of fn's goroutine, which raised it */
    lua_pushinteger(L, (lua_Integer)h->id);
    return n + 2;
}

/* _run_scope(opts, fn, ...): runs fn in a new scope and waits until fn and
 * every goroutine started in the scope have ended. opts.timeout_ms cancels
 * them all at the deadline; opts.label names the scope in logs. Returns
 * true, fn's values / false, err, nil, ID (fn's goroutine, which raised
 * err) / false, reason, true when cancelled. */
static int g_run_scope(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    uint64_t tns = UINT64_MAX;
    char reason[64] = "";
    if (lua_getfield(L, 1, "timeout_ms") != LUA_TNIL) {
        double ms = check_ms(L, -1);
        tns = ms_to_ns(ms);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "reason") == LUA_TSTRING) {
        strncpy(reason, lua_tostring(L, -1), sizeof reason - 1);
    }
    lua_pop(L, 1);
    int label_ref = LUA_NOREF;
    if (lua_getfield(L, 1, "label") != LUA_TNIL)
        label_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else
        lua_pop(L, 1);
    scope *sc;
    ghandle *h = start_scope(L, 2, tns, &sc);
    sc->label_ref = label_ref;
    if (reason[0])
        memcpy(sc->reason, reason, sizeof reason);
    return run_scope_k(L, LUA_OK, (lua_KContext)h);
}

static int g_context(lua_State *L)
{
    sched *s = S(L);
    gor *g = gor_of(L);
    for (scope *sc = sched_current_scope(s, L); sc; sc = sc->parent) {
        if (scope_has_label(sc)) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, scope_label_ref(sc));
            goto found;
        }
    }
    lua_pushnil(L);
found:
    if (g)
        lua_pushinteger(L, (lua_Integer)g->id);
    else
        lua_pushnil(L);
    return 2;
}

static int g_id(lua_State *L)
{
    gor *g = gor_of(L);
    lua_pushinteger(L, g ? (lua_Integer)g->id : 0);
    return 1;
}

/* now(): a monotonic clock in milliseconds (fractional), for measuring. */
static int g_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)sched_now_ns() / 1e6);
    return 1;
}

/* _wall_ms(): the Unix time in milliseconds (contexts' deadlines). */
static int g_wall_ms(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec * 1e3 + (lua_Number)ts.tv_nsec / 1e6);
    return 1;
}

/* _local_only(what): a guard that refuses to travel, naming what (for the
 * objects written in Lua: context.lua). */
static int g_local_only(lua_State *L)
{
    travel_push_guard(L, luaL_checkstring(L, 1));
    return 1;
}

/* _report_error(msg): logs msg as the running goroutine's error is (the
 * runtime's log sink, with its id and task label), without raising. */
static int g_report_error(lua_State *L)
{
    sched *s = S(L);
    luaL_checkany(L, 1);
    gor *g = gor_of(L);
    int label = sched_label_ref(s, L);
    lua_State *T = sched_scratch(s);
    lua_pushvalue(L, 1);
    lua_xmove(L, T, 1);
    sched_report_error(s, g ? g->id : 0, label);
    return 0;
}

static int g_set_error_handler(lua_State *L)
{
    sched *s = S(L);
    if (!lua_isnoneornil(L, 1))
        luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    if (s->errh_ref != LUA_NOREF)
        luaL_unref(L, LUA_REGISTRYINDEX, s->errh_ref);
    s->errh_ref = lua_isnil(L, 1) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Keeps this shared object mapped for the life of the process: lua_close
 * unloads C modules, but a preemption signal may still be on its way to a
 * handler that lives here. */
static void pin_module(void)
{
    Dl_info info;
    if (dladdr((void *)pin_module, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
}

/* What a pool VM opens besides the standard libraries (procs.h). */
static void open_pool_vm(lua_State *L)
{
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0);
    lua_pop(L, 1);
    iomods_open(L); /* the globals http and exec */
}

MUTIRAO_EXPORT int luaopen_goroutine(lua_State *L)
{
    pin_module();
    procs_set_opener(open_pool_vm);
    coroutines_patch(L);
    static const luaL_Reg funcs[] = {{"spawn", g_spawn},
                                     {"spawn_many", g_spawn_many},
                                     {"wait_group", g_wait_group},
                                     {"async", g_async},
                                     {"await", g_await},
                                     {"await_all", g_await_all},
                                     {"sleep", g_sleep},
                                     {"timeout", g_timeout},
                                     {"id", g_id},
                                     {"now", g_now},
                                     {"_run_scope", g_run_scope},
                                     {"_context", g_context},
                                     {"_set_error_handler", g_set_error_handler},
                                     {"_wall_ms", g_wall_ms},
                                     {"_local_only", g_local_only},
                                     {"_report_error", g_report_error},
                                     {NULL, NULL}};
    sched *s = sched_get(L);
    handle_register(L, s);
    waitgroup_register(L, s);
    http_headers_metatable(L); /* (see http.h) */
    luaL_newlibtable(L, funcs);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    channel_open(L, s);
    sync_open(L, s);
    cancel_link_open(L, s);
    patterns_open(L);
    pool_open(L, s);
    return 1;
}
