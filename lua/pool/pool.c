/* pool.c: the pool functions of the goroutine module: argument checks, then
 * the VM's backend (see pool.h). */
#include "pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "envelope.h"
#include "executor.h"
#include "sandbox.h"
#include "taskbook.h"

typedef struct backend_choice {
    const pool_backend *vt;
    void *be;
} backend_choice;

static const char BACKEND_KEY = 'b';

static void choice_free(sched *s, void *data)
{
    (void)s;
    free(data);
}

int pool_backend_use(lua_State *L, sched *s, const pool_backend *vt, void *be)
{
    backend_choice *c = sched_ext_get(s, &BACKEND_KEY);
    if (c)
        return c->vt == vt && c->be == be ? 0 : -1;
    c = malloc(sizeof *c);
    if (!c || sched_ext_set(s, &BACKEND_KEY, c, choice_free) != 0) {
        free(c);
        luaL_error(L, "not enough memory");
        return -1;
    }
    c->vt = vt;
    c->be = be;
    return 0;
}

const pool_backend *pool_backend_of(lua_State *L, sched *s, void **be)
{
    backend_choice *c = sched_ext_get(s, &BACKEND_KEY);
    if (!c) {
        void *st = pool_embedded_state(L, s);
        pool_backend_use(L, s, &pool_embedded, st);
        c = sched_ext_get(s, &BACKEND_KEY);
    }
    *be = c->be;
    return c->vt;
}

/* ---- helpers for backends ---- */

int pool_not_found(lua_State *L, const char *name)
{
    luaL_pushfail(L);
    lua_pushfstring(L, "pool not found: %s", name);
    return 2;
}

void pool_push_stats(lua_State *L, const char *name, const pool_stat *f, int n)
{
    lua_createtable(L, 0, n + 1);
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    for (int i = 0; i < n; i++) {
        lua_pushinteger(L, (lua_Integer)f[i].v);
        lua_setfield(L, -2, f[i].k);
    }
}

static char id_prefix[10];
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void id_init(void)
{
    unsigned prefix = (unsigned)(((uint64_t)getpid() * 2654435761u) ^ (uint64_t)time(NULL));
    snprintf(id_prefix, sizeof id_prefix, "%08x-", prefix);
}

const char *pool_id_prefix(void)
{
    pthread_once(&id_once, id_init);
    return id_prefix;
}

/* ---- Lua API ---- */

static sched *S(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* What an option's bad value was, for its error: the number itself, else
 * its type (pushes a string when it is a number). */
static const char *got(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        return luaL_tolstring(L, idx, NULL);
    return luaL_typename(L, idx);
}

static int opt_int_field(lua_State *L, int t, const char *k, int def, int min)
{
    int ty = lua_getfield(L, t, k);
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > 1000000)
        luaL_error(L,
                   "bad option '%s' to 'pool_create' (integer from %d to 1000000 expected, got %s)",
                   k, min, got(L, -1));
    lua_pop(L, 1);
    return (int)v;
}

/* The pool name argument: Kafka's rule on both backends. */
static const char *check_name(lua_State *L, int arg)
{
    size_t len;
    const char *name = luaL_checklstring(L, arg, &len);
    char why[160];
    if (envelope_check_pool(name, len, why, sizeof why) != 0)
        luaL_argerror(L, arg, why);
    return name;
}

/* An optional integer option from min to max (a wider range than
 * opt_int_field's: milliseconds, bytes). */
static lua_Integer opt_big_field(lua_State *L, int t, const char *k, lua_Integer def,
                                 lua_Integer min, lua_Integer max, const char *unit)
{
    if (lua_getfield(L, t, k) == LUA_TNIL) {
        lua_pop(L, 1);
        return def;
    }
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < min || v > max)
        luaL_error(L,
                   "bad option '%s' to 'pool_create' (integer from %I to %I (%s) expected, got "
                   "%s)",
                   k, min, max, unit, got(L, -1));
    lua_pop(L, 1);
    return v;
}

/* The `backoff` option: {initial = ms, max = ms, jitter = 0..1}. */
static void opt_backoff(lua_State *L, int t, pool_retry *r)
{
    int ty = lua_getfield(L, t, "backoff");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (ty != LUA_TTABLE)
        luaL_error(L, "bad option 'backoff' to 'pool_create' (table expected, got %s)",
                   luaL_typename(L, -1));
    int b = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, b)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || (strcmp(k, "initial") && strcmp(k, "max") && strcmp(k, "jitter")))
            luaL_error(L,
                       "bad option 'backoff' to 'pool_create' (unknown field '%s'; expected "
                       "initial, max or jitter)",
                       k ? k : luaL_typename(L, -2));
        lua_pop(L, 1);
    }
    static const char *const ms[] = {"initial", "max"};
    uint32_t *dst[] = {&r->initial_ms, &r->max_ms};
    for (int i = 0; i < 2; i++) {
        if (lua_getfield(L, b, ms[i]) != LUA_TNIL) {
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint || v < 0 || v > (lua_Integer)RETRY_BACKOFF_MS_MAX)
                luaL_error(L,
                           "bad option 'backoff' to 'pool_create' (%s: integer from 0 to %I (ms) "
                           "expected, got %s)",
                           ms[i], (lua_Integer)RETRY_BACKOFF_MS_MAX, got(L, -1));
            *dst[i] = (uint32_t)v;
        }
        lua_pop(L, 1);
    }
    if (lua_getfield(L, b, "jitter") != LUA_TNIL) {
        int isnum;
        lua_Number j = lua_tonumberx(L, -1, &isnum);
        if (!isnum || !(j >= 0 && j <= 1))
            luaL_error(L,
                       "bad option 'backoff' to 'pool_create' (jitter: number from 0 to 1 "
                       "expected, got %s)",
                       got(L, -1));
        r->jitter = (uint32_t)(j * 1000 + 0.5);
    }
    lua_pop(L, 2);
    if (r->max_ms < r->initial_ms)
        luaL_error(L, "bad option 'backoff' to 'pool_create' (max %d ms is below initial %d ms)",
                   (int)r->max_ms, (int)r->initial_ms);
}

static int l_pool_create(lua_State *L)
{
    const char *name = check_name(L, 1);
    pool_opts o = {
        .workers = 4, .queue = 8, .block = 1, .max_deliveries = 3, .memory = EX_MEMORY_DEFAULT};
    retry_default(&o.retry);
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        /* a misspelt option would silently mean its default */
        static const char *const known[] = {"workers", "queue",   "block",
                                            "timeout", "memory",  "max_deliveries",
                                            "retries", "backoff", "allow"};
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            size_t i = 0;
            while (k && i < sizeof known / sizeof known[0] && strcmp(k, known[i]))
                i++;
            if (!k)
                return luaL_error(L,
                                  "bad option key to 'pool_create' (option names are strings, "
                                  "got %s)",
                                  luaL_typename(L, -2));
            if (i == sizeof known / sizeof known[0])
                return luaL_error(L,
                                  "bad option '%s' to 'pool_create' (unknown option; expected "
                                  "workers, queue, block, max_deliveries, timeout, memory, "
                                  "retries, backoff or allow)",
                                  k);
            lua_pop(L, 1);
        }
        o.workers = opt_int_field(L, 2, "workers", 4, 1);
        o.queue = opt_int_field(L, 2, "queue", o.workers * 2, 0);
        o.max_deliveries = opt_int_field(L, 2, "max_deliveries", 3, 1);
        o.timeout_ms = (uint32_t)opt_big_field(L, 2, "timeout", 0, 1, POOL_TIMEOUT_MAX, "ms");
        o.memory = (size_t)opt_big_field(L, 2, "memory", (lua_Integer)EX_MEMORY_DEFAULT,
                                         (lua_Integer)POOL_MEMORY_MIN, (lua_Integer)POOL_MEMORY_MAX,
                                         "bytes");
        o.retry.retries = (uint32_t)opt_big_field(L, 2, "retries", 0, 0, RETRY_MAX, "runs");
        opt_backoff(L, 2, &o.retry);
        lua_getfield(L, 2, "allow");
        o.allow = sandbox_check_option(L, -1, "pool_create");
        lua_pop(L, 1);
        int bt = lua_getfield(L, 2, "block");
        if (bt == LUA_TBOOLEAN)
            o.block = lua_toboolean(L, -1);
        else if (bt != LUA_TNIL)
            luaL_error(L, "bad option 'block' to 'pool_create' (boolean expected, got %s)",
                       luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    void *be;
    const pool_backend *vt = pool_backend_of(L, S(L), &be);
    return vt->create(L, be, name, &o);
}

static int l_pool_submit(lua_State *L)
{
    luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    void *be;
    const pool_backend *vt = pool_backend_of(L, S(L), &be);
    return vt->submit(L, be);
}

static int l_pool_wait(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    void *be;
    const pool_backend *vt = pool_backend_of(L, S(L), &be);
    return vt->wait(L, be, name);
}

static int l_pool_close(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    void *be;
    const pool_backend *vt = pool_backend_of(L, S(L), &be);
    return vt->close(L, be, name);
}

static int l_pool_stats(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    void *be;
    const pool_backend *vt = pool_backend_of(L, S(L), &be);
    return vt->stats(L, be, name);
}

int pool_await(lua_State *L, sched *s, int idx)
{
    size_t len;
    const char *id = luaL_checklstring(L, idx, &len);
    if (len == 0 || len > ENVELOPE_ID_MAX || memchr(id, 0, len)) {
        /* no task id of either backend: say so, without echoing it whole */
        char shown[48];
        size_t n = 0;
        for (size_t i = 0; i < len && n + 4 < sizeof shown; i++)
            shown[n++] = id[i] >= 32 && id[i] < 127 ? id[i] : '?';
        shown[n] = 0;
        lua_pushboolean(L, 0);
        lua_pushfstring(L, "unknown task id: '%s%s' (not a task id)", shown, n < len ? "..." : "");
        return 2;
    }
    taskbook *b = taskbook_get(L, s);
    tb_task *t = taskbook_find(b, L, id);
    if (t)
        return taskbook_await(L, b, t);
    void *be;
    const pool_backend *vt = pool_backend_of(L, s, &be);
    return vt->await_other(L, be, id);
}

/* _backend(): the name of this VM's pool backend ("embedded", "fleet"). */
static int l_backend(lua_State *L)
{
    void *be;
    lua_pushstring(L, pool_backend_of(L, S(L), &be)->name);
    return 1;
}

void pool_open(lua_State *L, sched *s)
{
    static const luaL_Reg funcs[] = {{"pool_create", l_pool_create},
                                     {"pool_submit", l_pool_submit},
                                     {"pool_wait", l_pool_wait},
                                     {"pool_close", l_pool_close},
                                     {"pool_stats", l_pool_stats},
                                     {"_backend", l_backend},
                                     {NULL, NULL}};
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
