/* cancel_link.c: a cancellation shared by the VMs of a process (see
 * cancel_link.h). */
#include "cancel_link.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"
#include "port.h"
#include "travel.h"

typedef struct link_core {
    atomic_int refs;  /* a userdata in some VM, or a message in flight */
    travel_anchor ta; /* its name once it travelled */
    pthread_mutex_t mu;
    char *why;    /* (mu) the reason, once cancelled; NULL before */
    port **ports; /* (mu) the VMs holding a userdata of it (one each) */
    int nports, capports;
} link_core;

typedef struct link_ud {
    link_core *core;
    sched *s;
} link_ud;

static const char COPIES = 'K';  /* registry: weak core -> this VM's userdata */
static const char HANDLER = 'k'; /* registry: this VM's _link_on_cancel function */

static void core_ref(void *c)
{
    atomic_fetch_add(&((link_core *)c)->refs, 1);
}

static void core_unref(link_core *c)
{
    if (!travel_unref(c, &c->ta, &c->refs))
        return;
    free(c->why);
    free(c->ports);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* A copy of the reason (malloc'd), or NULL while not cancelled (or out of
 * memory): pushed after the lock is released, since pushing may raise. */
static char *why_copy(link_core *c)
{
    pthread_mutex_lock(&c->mu);
    char *w = c->why ? strdup(c->why) : NULL;
    pthread_mutex_unlock(&c->mu);
    return w;
}

/* ---- the message to the other VMs ---- */

typedef struct cancel_msg {
    xmsg m;
    link_core *core; /* a reference */
} cancel_msg;

static void on_cancel(sched *s, xmsg *m)
{
    cancel_msg *cm = (cancel_msg *)m;
    link_core *c = cm->core;
    free(cm);
    if (s) {
        lua_State *T = sched_scratch(s);
        int top = lua_gettop(T);
        lua_rawgetp(T, LUA_REGISTRYINDEX, &HANDLER);
        lua_rawgetp(T, LUA_REGISTRYINDEX, &COPIES);
        if (lua_isfunction(T, top + 1) && lua_istable(T, top + 2) &&
            lua_rawgetp(T, top + 2, c) == LUA_TUSERDATA) { /* (collected: nothing to cancel) */
            lua_remove(T, top + 2);
            char *why = why_copy(c);
            lua_pushstring(T, why ? why : "context canceled");
            free(why);
            if (lua_pcall(T, 2, 0, 0) != LUA_OK)
                sched_report_error(s, 0, LUA_NOREF);
        }
        lua_settop(T, top);
    }
    core_unref(c);
}

/* ---- the VMs holding it ---- */

static int add_port(link_core *c, port *p)
{
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (c->nports == c->capports) {
        int n = c->capports ? 2 * c->capports : 4;
        port **np = realloc(c->ports, (size_t)n * sizeof *np);
        if (np) {
            c->ports = np;
            c->capports = n;
        } else {
            rc = -1;
        }
    }
    if (rc == 0) {
        port_ref(p);
        c->ports[c->nports++] = p;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void drop_port(link_core *c, port *p)
{
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nports; i++)
        if (c->ports[i] == p) {
            c->ports[i] = c->ports[--c->nports];
            port_unref(p);
            break;
        }
    pthread_mutex_unlock(&c->mu);
}

/* Pushes a new userdata of this VM (s) for c, taking over one reference,
 * and records it as this VM's. Raises when out of memory (c's reference
 * then dropped). */
static link_ud *push_ud(lua_State *L, sched *s, link_core *c)
{
    link_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->core = NULL;
    u->s = s;
    luaL_setmetatable(L, CANCEL_LINK_TNAME);
    if (add_port(c, s->port) != 0) {
        core_unref(c);
        luaL_error(L, "not enough memory");
    }
    u->core = c;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
    lua_pushvalue(L, -2);
    lua_rawsetp(L, -2, c);
    lua_pop(L, 1);
    return u;
}

static link_ud *check_link(lua_State *L)
{
    link_ud *u = luaL_checkudata(L, 1, CANCEL_LINK_TNAME);
    if (!u->core)
        luaL_error(L, "a collected context's link");
    return u;
}

/* ---- methods ---- */

/* link:cancel(why) -> true the first time (the other VMs are told), false
 * once cancelled. */
static int l_cancel(lua_State *L)
{
    link_ud *u = check_link(L);
    size_t len;
    const char *why = luaL_checklstring(L, 2, &len);
    char *copy = malloc(len + 1);
    if (!copy)
        return luaL_error(L, "not enough memory");
    memcpy(copy, why, len + 1);
    link_core *c = u->core;
    pthread_mutex_lock(&c->mu);
    int first = c->why == NULL;
    if (first) {
        c->why = copy;
        copy = NULL;
        for (int i = 0; i < c->nports; i++) {
            if (c->ports[i] == u->s->port)
                continue;
            cancel_msg *m = malloc(sizeof *m); /* (out of memory: that VM learns it when it asks) */
            if (!m)
                continue;
            m->m.fn = on_cancel;
            m->core = c;
            atomic_fetch_add(&c->refs, 1);
            if (port_post(c->ports[i], &m->m) != 0) {
                atomic_fetch_sub(&c->refs, 1);
                free(m);
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    free(copy);
    lua_pushboolean(L, first);
    return 1;
}

/* link:state() -> the reason, or nil while not cancelled. */
static int l_state(lua_State *L)
{
    char *why = why_copy(check_link(L)->core);
    if (!why) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, why); /* (a memory error here leaks the copy) */
    free(why);
    return 1;
}

/* link:shared() -> whether another VM holds it too. */
static int l_shared(lua_State *L)
{
    link_core *c = check_link(L)->core;
    pthread_mutex_lock(&c->mu);
    int n = c->nports;
    pthread_mutex_unlock(&c->mu);
    lua_pushboolean(L, n > 1);
    return 1;
}

static int l_gc(lua_State *L)
{
    link_ud *u = lua_touserdata(L, 1);
    if (u->core) {
        drop_port(u->core, u->s->port);
        core_unref(u->core);
        u->core = NULL;
    }
    return 0;
}

/* ---- travelling ---- */

static int l_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    travel_ctx *tc = call;
    if (tc)
        return luaL_error(L, "a context cannot travel to %s", tc->where);
    link_ud *u = lua_touserdata(L, idx);
    if (!u->core) /* (finalized: met through a weak table) */
        return luaL_error(L, "a collected context cannot travel");
    travel_name(L, u->core, &u->core->ta);
    return 0;
}

static int l_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    sched *s = ud;
    travel_ctx *tc = call;
    if (tc)
        return luaL_error(L, "a context cannot travel from %s", tc->where);
    link_core *c = travel_take(L, data, len, "a context", core_ref);
    if (!c)
        return -1;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
    if (lua_rawgetp(L, -1, c) == LUA_TUSERDATA) {
        lua_remove(L, -2);
        core_unref(c);
        return 0;
    }
    lua_pop(L, 2);
    push_ud(L, s, c);
    return 0;
}

/* ---- module functions ---- */

static int g_link_new(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    link_core *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    atomic_init(&c->refs, 1);
    pthread_mutex_init(&c->mu, NULL);
    push_ud(L, s, c);
    return 1;
}

/* _link_on_cancel(fn): fn(link, why) runs (from the loop: it cannot wait)
 * when another VM cancels a link this VM holds. */
static int g_link_on_cancel(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &HANDLER);
    return 0;
}

/* _link_class(mt): registers mt under its __name, so that a table with it
 * travels with this VM's table of that name as its metatable there. */
static int g_link_class(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "__name") != LUA_TSTRING)
        return luaL_argerror(L, 1, "a __name expected");
    lua_pushvalue(L, 1);
    lua_rawset(L, LUA_REGISTRYINDEX);
    return 0;
}

static int call_cancel(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_getfield(L, 1, "cancel");
    lua_insert(L, 1);
    lua_call(L, 1, 0);
    return 0;
}

/* _cancel_func(ctx): a function that calls ctx:cancel() (a C closure: a
 * Lua one would take context.lua's tables with it wherever it travels). */
static int g_cancel_func(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    lua_pushcclosure(L, call_cancel, 1);
    return 1;
}

/* _keys(t): the keys of t (nil: none) as an array, taken in one C call.
 * A pairs() loop in Lua can be preempted (a goroutine that cancels a
 * context); another goroutine adding a key meanwhile breaks the traversal,
 * which then skips keys. */
static int g_keys(lua_State *L)
{
    lua_settop(L, 1);
    lua_newtable(L);
    if (lua_isnil(L, 1))
        return 1;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 2, ++n);
    }
    return 1;
}

/* _put_new(t, k, v) -> t[k] when set, else v, stored at t[k] first (raw).
 * One C call: a Lua look-up then store can be preempted in between, and
 * another goroutine's entry made meanwhile would be replaced. */
static int g_put_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 1) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, 1);
    return 1;
}

void cancel_link_open(lua_State *L, sched *s)
{
    static const luaL_Reg methods[] = {
        {"cancel", l_cancel}, {"state", l_state}, {"shared", l_shared}, {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"_link_new", g_link_new},
                                     {"_link_on_cancel", g_link_on_cancel},
                                     {"_link_class", g_link_class},
                                     {"_cancel_func", g_cancel_func},
                                     {"_keys", g_keys},
                                     {"_put_new", g_put_new},
                                     {NULL, NULL}};
    if (luaL_newmetatable(L, CANCEL_LINK_TNAME)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    travel_new_copies(L, &COPIES);
    codec_register_udata(L, CANCEL_LINK_TNAME, l_encode, l_decode, s);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
}
