/* waitgroup.c: add/done/wait on a shared counter (see waitgroup.h); a
 * counter below zero is an error, as in Go. */
#include "waitgroup.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "fleet_wg.h"
#include "pool.h"
#include "travel.h"

static const char HOME_COPIES = 'W'; /* registry: weak core -> home userdata */

static waitgroup *check_wg(lua_State *L)
{
    return luaL_checkudata(L, 1, WAITGROUP_TNAME);
}

static void core_unref(wgcore *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        if (c->home)
            port_unref(c->home);
        free(c->fleet_id);
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
    if (c->remote) { /* a fleet proxy: the change travels with the task's completion */
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
    if (wg->core->remote)
        return luaL_error(L,
                          "cannot wait on WaitGroup %s from a fleet task: it belongs to another "
                          "process (its add and done calls reach it when this task finishes)",
                          wg->core->fleet_id);
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

#define FLEET_MARK "fleet:"

static int wg_encode(lua_State *L, int idx, void *ud)
{
    sched *s = ud;
    waitgroup *wg = lua_touserdata(L, idx);
    if (fleet_wg_encoding()) {
        /* to a fleet pool: named by an id the producer VM resolves */
        if (!wg->core->fleet_id) {
            if (!wg->home)
                return luaL_error(L, "a WaitGroup of another VM cannot travel to a fleet pool");
            char *id = fleet_wg_register(L, s, idx);
            if (!id)
                return luaL_error(L, "not enough memory");
            wg->core->fleet_id = id;
        } else if (!wg->core->remote) {
            fleet_wg_carried(L, s, idx);
        }
        lua_pushfstring(L, FLEET_MARK "%s", wg->core->fleet_id);
        return 0;
    }
    if (wg->core->remote)
        return luaL_error(L, "WaitGroup %s of another process cannot travel further",
                          wg->core->fleet_id);
    atomic_fetch_add(&wg->core->refs, 1); /* taken over by the decoded copy */
    travel_pack(L, wg->core);
    return 0;
}

/* A WaitGroup named by a fleet id: the home object when it is this VM's,
 * else a proxy counting this task's changes. */
static int wg_decode_fleet(lua_State *L, sched *s, const char *id, size_t len)
{
    if (len == 0 || len > 200 || memchr(id, 0, len))
        return -1;
    if (fleet_wg_find(L, s, id, len))
        return 0;
    wgcore *core = calloc(1, sizeof *core);
    char *fid = malloc(len + 1);
    if (!core || !fid) {
        free(core);
        free(fid);
        return luaL_error(L, "not enough memory");
    }
    memcpy(fid, id, len);
    fid[len] = 0;
    atomic_init(&core->count, 0);
    atomic_init(&core->refs, 1);
    core->fleet_id = fid;
    core->remote = 1;
    void **slot = pool_decoding_remote();
    if (slot) { /* the task's completion reads and releases it */
        atomic_fetch_add(&core->refs, 1);
        core->remote_next = *slot;
        *slot = core;
    }
    push_copy(L, s, core, 0);
    return 0;
}

void fleet_wg_drain(void *remote,
                    void (*fn)(void *ud, const char *owner, const char *wgid, long long delta),
                    void *ud)
{
    wgcore *c = remote;
    while (c) {
        wgcore *next = c->remote_next;
        long long d = atomic_load(&c->count);
        const char *slash = strrchr(c->fleet_id, '/');
        if (d != 0 && slash && fn) {
            char owner[80];
            size_t n = (size_t)(slash - c->fleet_id);
            if (n < sizeof owner) {
                memcpy(owner, c->fleet_id, n);
                owner[n] = 0;
                fn(ud, owner, c->fleet_id, d);
            }
        }
        core_unref(c);
        c = next;
    }
}

int waitgroup_apply(lua_State *L, int idx, long long delta)
{
    waitgroup *wg = luaL_testudata(L, idx, WAITGROUP_TNAME);
    if (!wg || !wg->core)
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

static int wg_decode(lua_State *L, const char *data, size_t len, void *ud)
{
    sched *s = ud;
    if (len >= sizeof FLEET_MARK - 1 && !memcmp(data, FLEET_MARK, sizeof FLEET_MARK - 1))
        return wg_decode_fleet(L, s, data + sizeof FLEET_MARK - 1, len - (sizeof FLEET_MARK - 1));
    wgcore *core = travel_unpack(L, data, len, "a WaitGroup");
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
