/* handle_travel.c: async handles captured by pool tasks.
 *
 * A handle that travels to another VM becomes a copy there that awaits the
 * same goroutine. The original and its copies share a core: the first time
 * the handle travels, its home VM anchors it (so it outlives its last local
 * reference) and, when it is resolved, encodes its outcome once into the
 * core and drops the anchor. A copy asks the home VM for the outcome the
 * first time it is awaited; the home VM answers at once when the outcome is
 * encoded, or when it is. Copies of the same core in one VM are one object,
 * and a handle that comes back home is the original again. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "async.h"
#include "codec.h"
#include "port.h"
#include "travel.h"

struct hcore {
    atomic_int refs;
    travel_anchor ta; /* its name in this process */
    uint64_t id;
    port *home; /* the home VM (a reference) */
    ghandle *h; /* the original (home thread only); NULL once collected */
    int anchor; /* (home thread) registry ref keeping the original alive */
    pthread_mutex_t mu;
    int encoded; /* (mu) bytes hold the outcome */
    char *bytes; /* (mu) codec message: ok, values... */
    size_t len;
    port **askers; /* (home thread) VMs waiting for the outcome */
    int nask, capask;
};

static const char COPIES = 'H'; /* registry: weak core -> handle userdata of this VM */

static void core_ref_any(void *c)
{
    atomic_fetch_add(&((hcore *)c)->refs, 1);
}

static void core_unref(hcore *c)
{
    if (!travel_unref(c, &c->ta, &c->refs))
        return;
    for (int i = 0; i < c->nask; i++)
        port_unref(c->askers[i]);
    free(c->askers);
    free(c->bytes);
    pthread_mutex_destroy(&c->mu);
    port_unref(c->home);
    free(c);
}

/* ---- messages ---- */

typedef struct hmsg {
    xmsg m;
    hcore *core; /* a reference */
    port *asker; /* (ask) who wants the outcome, a reference */
} hmsg;

static void on_reply(sched *s, xmsg *m);

static void reply(hcore *c, port *to)
{
    hmsg *r = malloc(sizeof *r);
    if (!r)
        return;
    atomic_fetch_add(&c->refs, 1);
    r->core = c;
    r->asker = NULL;
    r->m.fn = on_reply;
    if (port_post(to, &r->m) != 0) {
        core_unref(c);
        free(r);
    }
}

/* Home VM: someone elsewhere awaits the handle. */
static void on_ask(sched *s, xmsg *m)
{
    hmsg *a = (hmsg *)m;
    hcore *c = a->core;
    if (s) {
        pthread_mutex_lock(&c->mu);
        int ready = c->encoded;
        pthread_mutex_unlock(&c->mu);
        if (ready || !c->h) {
            reply(c, a->asker);
        } else {
            if (c->nask == c->capask) {
                int cap = c->capask ? c->capask * 2 : 4;
                port **v = realloc(c->askers, (size_t)cap * sizeof *v);
                if (v) {
                    c->askers = v;
                    c->capask = cap;
                }
            }
            if (c->nask < c->capask) {
                c->askers[c->nask++] = a->asker;
                a->asker = NULL; /* kept until the outcome is published */
            } else {
                reply(c, a->asker); /* out of memory: a "dropped" answer */
            }
        }
    }
    if (a->asker)
        port_unref(a->asker);
    core_unref(c);
    free(a);
}

/* A copy's VM: the outcome is there. */
static void on_reply(sched *s, xmsg *m)
{
    hmsg *r = (hmsg *)m;
    hcore *c = r->core;
    if (s) {
        sched_unhold(s);
        lua_State *T = s->T;
        int top = lua_gettop(T);
        lua_rawgetp(T, LUA_REGISTRYINDEX, &COPIES);
        lua_rawgetp(T, -1, c);
        ghandle *h = lua_touserdata(T, -1);
        if (h && h->remote && !h->done) {
            pthread_mutex_lock(&c->mu);
            int encoded = c->encoded;
            pthread_mutex_unlock(&c->mu);
            codec_limits lim;
            codec_limits_default(&lim);
            lim.allow_bytecode = 1; /* from this process */
            lim.allow_require = 1;
            char err[200];
            int n = 0;
            int base = lua_gettop(T);
            if (!encoded || codec_decode(T, c->bytes, c->len, &lim, &n, err, sizeof err) != 0) {
                lua_settop(T, base);
                lua_pushboolean(T, 0);
                if (encoded)
                    lua_pushfstring(T, "cannot receive the outcome of handle %I: %s",
                                    (lua_Integer)c->id, err);
                else
                    lua_pushfstring(T, "the VM of handle %I dropped it before it ended",
                                    (lua_Integer)c->id);
                n = 2;
            }
            lua_createtable(T, n, 1);
            lua_insert(T, base + 1);
            for (int i = n; i >= 1; i--)
                lua_rawseti(T, base + 1, i);
            lua_pushinteger(T, n);
            lua_setfield(T, -2, "n");
            lua_rawgeti(T, -1, 1);
            h->ok = (uint8_t)lua_toboolean(T, -1);
            lua_pop(T, 1);
            handle_set_outcome(h, T);
        }
        lua_settop(T, top);
    }
    core_unref(c);
    free(r);
}

void handle_travel_ask(ghandle *h)
{
    if (h->asked || h->done)
        return;
    h->asked = 1;
    hcore *c = h->core;
    hmsg *a = malloc(sizeof *a);
    if (!a)
        return;
    atomic_fetch_add(&c->refs, 1);
    a->core = c;
    a->asker = h->s->port;
    port_ref(a->asker);
    a->m.fn = on_ask;
    sched_hold(h->s); /* until the reply */
    if (port_post(c->home, &a->m) != 0) {
        /* the home VM is gone: answer ourselves */
        port_unref(a->asker);
        free(a);
        reply(c, h->s->port);
        core_unref(c);
    }
}

/* Home VM: h was resolved; publish its outcome to the copies. */
void handle_travel_resolved(ghandle *h)
{
    hcore *c = h->core;
    lua_State *T = h->s->T;
    int top = lua_gettop(T);
    lua_rawgeti(T, LUA_REGISTRYINDEX, h->res_ref);
    lua_getfield(T, -1, "n");
    int n = (int)lua_tointeger(T, -1);
    lua_pop(T, 1);
    luaL_checkstack(T, n, NULL);
    for (int i = 1; i <= n; i++)
        lua_rawgeti(T, top + 1, i);
    char *out = NULL;
    size_t len = 0;
    char err[200];
    if (codec_encode(T, top + 2, n, NULL, &out, &len, err, sizeof err) != 0) {
        lua_settop(T, top);
        lua_pushboolean(T, 0);
        lua_pushfstring(T, "the outcome of handle %I cannot travel: %s", (lua_Integer)c->id, err);
        codec_encode(T, top + 1, 2, NULL, &out, &len, NULL, 0);
    }
    lua_settop(T, top);
    pthread_mutex_lock(&c->mu);
    c->bytes = out;
    c->len = len;
    c->encoded = out != NULL;
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->nask; i++) {
        reply(c, c->askers[i]);
        port_unref(c->askers[i]);
    }
    c->nask = 0;
    if (c->anchor != LUA_NOREF) {
        luaL_unref(T, LUA_REGISTRYINDEX, c->anchor);
        c->anchor = LUA_NOREF;
    }
}

void handle_travel_gc(ghandle *h)
{
    hcore *c = h->core;
    h->core = NULL;
    if (!h->remote) {
        c->h = NULL;
        /* copies still waiting get "dropped" answers */
        for (int i = 0; i < c->nask; i++) {
            reply(c, c->askers[i]);
            port_unref(c->askers[i]);
        }
        c->nask = 0;
    }
    core_unref(c);
}

/* ---- codec hooks (travel.h) ---- */

static int h_encode(lua_State *L, int idx, void *ud, void *call)
{
    travel_ctx *tc = call;
    if (tc) {
        if (!tc->handle_encode)
            return luaL_error(L,
                              "an async handle cannot travel to %s (await it first and pass "
                              "its values)",
                              tc->where);
        return tc->handle_encode(tc, L, idx);
    }
    sched *s = ud;
    ghandle *h = lua_touserdata(L, idx);
    if (!h->core) {
        hcore *c = calloc(1, sizeof *c);
        if (!c)
            return -1;
        atomic_init(&c->refs, 1);
        c->id = h->id;
        c->home = s->port;
        port_ref(c->home);
        c->h = h;
        c->anchor = LUA_NOREF;
        pthread_mutex_init(&c->mu, NULL);
        h->core = c;
        lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
        lua_pushvalue(L, idx);
        lua_rawsetp(L, -2, c);
        lua_pop(L, 1);
        if (h->done) {
            handle_travel_resolved(h);
        } else {
            lua_pushvalue(L, idx);
            c->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
        }
    }
    travel_name(L, h->core, &h->core->ta);
    return 0;
}

static int h_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    travel_ctx *tc = call;
    if (tc) {
        if (!tc->handle_decode)
            return luaL_error(L, "an async handle cannot travel from %s", tc->where);
        return tc->handle_decode(tc, L, data, len);
    }
    sched *s = ud;
    hcore *c = travel_take(L, data, len, "an async handle", core_ref_any);
    if (!c)
        return -1;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &COPIES);
    if (lua_rawgetp(L, -1, c) == LUA_TUSERDATA) { /* the original, or this VM's copy */
        lua_remove(L, -2);
        core_unref(c);
        return 0;
    }
    lua_pop(L, 1);
    ghandle *h = handle_new(L, s);
    h->remote = 1;
    h->id = c->id;
    h->core = c; /* the reference travel_take took */
    lua_pushvalue(L, -1);
    lua_rawsetp(L, -3, c);
    lua_remove(L, -2);
    return 0;
}

void handle_travel_register(lua_State *L, sched *s)
{
    travel_new_copies(L, &COPIES);
    codec_register_udata(L, HANDLE_TNAME, h_encode, h_decode, s);
}
