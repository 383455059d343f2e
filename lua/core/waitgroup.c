/* waitgroup.c: add/done/wait on a shared counter (see waitgroup.h); a
 * counter below zero is an error, as in Go. */
#include "waitgroup.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "travel.h"

struct wgcore {
    atomic_llong count;
    atomic_int refs;
    travel_anchor ta; /* its name in this process once it travelled */
    port *home;       /* the creating VM's port (a reference); NULL for a proxy */
    glist *waiters;   /* the home copy's waiters (home thread only), NULL when collected */
    char *name;       /* its name outside the process, or the name a proxy stands for */
    int proxy;        /* counts changes only (see waitgroup.h) */
};

static const char HOME_COPIES = 'W'; /* registry: weak core -> home userdata */

static waitgroup *check_wg(lua_State *L)
{
    return luaL_checkudata(L, 1, WAITGROUP_TNAME);
}

static void core_ref(void *c)
{
    atomic_fetch_add(&((wgcore *)c)->refs, 1);
}

static void core_unref(wgcore *c)
{
    if (travel_unref(c, &c->ta, &c->refs)) {
        if (c->home)
            port_unref(c->home);
        free(c->name);
        free(c);
    }
}

static waitgroup *push_copy(lua_State *L, sched *s, wgcore *core, int home)
{
    waitgroup *wg = lua_newuserdatauv(L, sizeof *wg, 0);
    wg->core = core;
    wg->s = s;
    wg->home = home;
    glist_init(&wg->waiters);
    luaL_setmetatable(L, WAITGROUP_TNAME);
    return wg;
}

waitgroup *waitgroup_new(lua_State *L, sched *s)
{
    wgcore *core = calloc(1, sizeof *core);
    if (!core)
        luaL_error(L, "not enough memory");
    atomic_init(&core->count, 0);
    atomic_init(&core->refs, 1);
    core->home = s->port;
    port_ref(core->home);
    core->waiters = NULL;
    waitgroup *wg = push_copy(L, s, core, 1);
    core->waiters = &wg->waiters;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &HOME_COPIES);
    lua_pushvalue(L, -2);
    lua_rawsetp(L, -2, core);
    lua_pop(L, 1);
    return wg;
}

typedef struct wake_msg {
    xmsg m;
    wgcore *core;
} wake_msg;

static void on_wake(sched *s, xmsg *m)
{
    wake_msg *w = (wake_msg *)m;
    if (s && w->core->waiters && atomic_load(&w->core->count) == 0)
        sched_ready_all(s, w->core->waiters);
    core_unref(w->core);
    free(w);
}

static void wg_change(lua_State *L, waitgroup *wg, lua_Integer delta)
{
    wgcore *c = wg->core;
    long long old = atomic_load(&c->count), n;
    if (c->proxy) { /* the change reaches the original through the proxy's layer */
        atomic_fetch_add(&c->count, (long long)delta);
        return;
    }
    do {
        if (__builtin_add_overflow(old, (long long)delta, &n))
            luaL_error(L, "WaitGroup counter overflow");
        if (n < 0)
            luaL_error(L, "negative WaitGroup counter");
    } while (!atomic_compare_exchange_weak(&c->count, &old, n));
    if (n != 0)
        return;
    if (wg->home) {
        sched_ready_all(wg->s, &wg->waiters);
        return;
    }
    wake_msg *w = malloc(sizeof *w);
    if (!w)
        luaL_error(L, "not enough memory");
    atomic_fetch_add(&c->refs, 1);
    w->core = c;
    w->m.fn = on_wake;
    if (port_post(c->home, &w->m) != 0) {
        core_unref(c); /* the home VM is gone: nobody waits */
        free(w);
    }
}

static int wg_add(lua_State *L)
{
    waitgroup *wg = check_wg(L);
    wg_change(L, wg, luaL_optinteger(L, 2, 1));
    return 0;
}

static int wg_done(lua_State *L)
{
    wg_change(L, check_wg(L), -1);
    return 0;
}

static int wg_wait_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    waitgroup *wg = (waitgroup *)ctx;
    if (wg->home || atomic_load(&wg->core->count) == 0)
        return 0;
    /* a copy in another VM: poll */
    return sched_wait(L, wg->s, NULL, sched_now_ns() + 2000000, ctx, wg_wait_k);
}

static int wg_wait(lua_State *L)
{
    waitgroup *wg = check_wg(L);
    lua_settop(L, 1);
    if (wg->core->proxy)
        return luaL_error(L,
                          "cannot wait on WaitGroup %s here: it belongs to another process (its "
                          "add and done calls reach it when this task finishes)",
                          wg->core->name);
    if (atomic_load(&wg->core->count) == 0)
        return 0;
    if (!wg->home)
        return wg_wait_k(L, LUA_OK, (lua_KContext)wg);
    return sched_wait(L, wg->s, &wg->waiters, 0, (lua_KContext)wg, wg_wait_k);
}

static int wg_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)atomic_load(&check_wg(L)->core->count));
    return 1;
}

static int wg_tostring(lua_State *L)
{
    waitgroup *wg = check_wg(L);
    lua_pushfstring(L, "WaitGroup(%I)", (lua_Integer)atomic_load(&wg->core->count));
    return 1;
}

static int wg_gc(lua_State *L)
{
    waitgroup *wg = lua_touserdata(L, 1);
    if (!wg->core)
        return 0;
    if (wg->home)
        wg->core->waiters = NULL;
    core_unref(wg->core);
    wg->core = NULL;
    return 0;
}

/* ---- travelling: (process nonce, core pointer) as 16 opaque bytes ---- */

static int wg_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    travel_ctx *tc = call;
    waitgroup *wg = lua_touserdata(L, idx);
    if (tc) {
        if (!tc->wg_encode)
            return luaL_error(L, "a WaitGroup cannot travel to %s", tc->where);
        return tc->wg_encode(tc, L, idx);
    }
    if (wg->core->proxy)
        return luaL_error(L, "WaitGroup %s of another process cannot travel further",
                          wg->core->name);
    travel_name(L, wg->core, &wg->core->ta);
    return 0;
}

static int wg_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    sched *s = ud;
    travel_ctx *tc = call;
    if (tc) {
        if (!tc->wg_decode)
            return luaL_error(L, "a WaitGroup cannot travel from %s", tc->where);
        return tc->wg_decode(tc, L, data, len);
    }
    wgcore *core = travel_take(L, data, len, "a WaitGroup", core_ref);
    if (!core)
        return -1;
    if (core->home == s->port) {
        /* back home: the original object, if it is still alive */
        lua_rawgetp(L, LUA_REGISTRYINDEX, &HOME_COPIES);
        if (lua_rawgetp(L, -1, core) == LUA_TUSERDATA) {
            lua_remove(L, -2);
            core_unref(core);
            return 0;
        }
        lua_pop(L, 2);
    }
    push_copy(L, s, core, 0);
    return 0;
}

/* ---- for the layers that send WaitGroups out of the process ---- */

waitgroup *waitgroup_test(lua_State *L, int idx)
{
    waitgroup *wg = luaL_testudata(L, idx, WAITGROUP_TNAME);
    return wg && wg->core ? wg : NULL;
}

const char *waitgroup_name(const waitgroup *wg)
{
    return wg->core->name;
}

int waitgroup_set_name(waitgroup *wg, const char *name)
{
    char *copy = strdup(name);
    if (!copy)
        return -1;
    free(wg->core->name);
    wg->core->name = copy;
    return 0;
}

int waitgroup_is_proxy(const waitgroup *wg)
{
    return wg->core->proxy;
}

wgcore *waitgroup_proxy_new(lua_State *L, sched *s, const char *name, size_t len)
{
    wgcore *core = calloc(1, sizeof *core);
    char *copy = malloc(len + 1);
    if (!core || !copy) {
        free(core);
        free(copy);
        luaL_error(L, "not enough memory");
        return NULL;
    }
    memcpy(copy, name, len);
    copy[len] = 0;
    atomic_init(&core->count, 0);
    atomic_init(&core->refs, 2); /* the copy's and the caller's */
    core->name = copy;
    core->proxy = 1;
    push_copy(L, s, core, 0);
    return core;
}

const char *waitgroup_core_name(const wgcore *c)
{
    return c->name;
}

long long waitgroup_core_delta(wgcore *c)
{
    return atomic_load(&c->count);
}

void waitgroup_core_release(wgcore *c)
{
    core_unref(c);
}

int waitgroup_apply(lua_State *L, int idx, long long delta)
{
    waitgroup *wg = waitgroup_test(L, idx);
    if (!wg)
        return 0;
    long long n = atomic_load(&wg->core->count) + delta;
    int rc = 0;
    if (n < 0) {
        n = 0;
        rc = -1;
    }
    atomic_store(&wg->core->count, n);
    if (n == 0)
        sched_ready_all(wg->s, &wg->waiters);
    return rc;
}

void waitgroup_register(lua_State *L, sched *s)
{
    static const luaL_Reg methods[] = {
        {"add", wg_add}, {"done", wg_done}, {"wait", wg_wait}, {"count", wg_count}, {NULL, NULL}};
    if (luaL_newmetatable(L, WAITGROUP_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, wg_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushcfunction(L, wg_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    travel_new_copies(L, &HOME_COPIES);
    codec_register_udata(L, WAITGROUP_TNAME, wg_encode, wg_decode, s);
}
