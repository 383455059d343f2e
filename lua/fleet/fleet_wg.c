/* fleet_wg.c: WaitGroups across the fleet (see fleet_wg.h). */
#include "fleet_wg.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "envelope.h"
#include "fleet_objects.h"
#include "rtlog.h"

#define FLEET_MARK "fleet:"
#define MARK_LEN (sizeof FLEET_MARK - 1)
#define NAME_MAX_LEN 200
#define HELD_MAX 4096 /* 'W' changes held before an 'R' (a task pushes one per WaitGroup) */

/* A 'W' notification held until its task's 'R' (fleet_wgs_note). */
typedef struct held_change {
    char id[ENVELOPE_ID_MAX + 1];
    char change[NAME_MAX_LEN + 32]; /* "<name> <delta>" */
    long n;                         /* how many the task pushed to this list */
} held_change;

struct fleet_wgs {
    char producer[ENVELOPE_ID_MAX + 1];
    held_change *held;
    int nheld, capheld;
    uint64_t seq;
    int named_ref;   /* registry: name -> the WaitGroup, while fleet tasks carry it */
    int carried_ref; /* registry: name -> how many fleet tasks carry it */
    travel_ctx outcome;
};

static const char WGS_KEY = 'w';

static int outcome_decode(travel_ctx *tc, lua_State *L, const char *data, size_t len);

fleet_wgs *fleet_wgs_new(lua_State *L, const char *producer)
{
    fleet_wgs *w = calloc(1, sizeof *w);
    if (!w)
        luaL_error(L, "not enough memory");
    snprintf(w->producer, sizeof w->producer, "%s", producer);
    lua_newtable(L);
    w->named_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    w->carried_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    w->outcome.wg_decode = outcome_decode;
    w->outcome.obj_decode = fleet_obj_decode;
    w->outcome.where = "a fleet task's outcome";
    lua_pushlightuserdata(L, w);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &WGS_KEY);
    return w;
}

void fleet_wgs_free(fleet_wgs *w)
{
    free(w->held);
    free(w);
}

fleet_wgs *fleet_wgs_of(sched *s)
{
    lua_State *T = sched_scratch(s);
    lua_rawgetp(T, LUA_REGISTRYINDEX, &WGS_KEY);
    fleet_wgs *w = lua_touserdata(T, -1);
    lua_pop(T, 1);
    return w;
}

/* Pushes this VM's WaitGroup of that name and returns 1, or returns 0. */
static int find_named(lua_State *L, fleet_wgs *w, const char *name, size_t len)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->named_ref);
    lua_pushlstring(L, name, len);
    if (lua_rawget(L, -2) == LUA_TUSERDATA) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 2);
    return 0;
}

/* "fleet:NAME" -> NAME, or NULL when malformed. */
static const char *unmark(const char *data, size_t len, size_t *nlen)
{
    if (len <= MARK_LEN || memcmp(data, FLEET_MARK, MARK_LEN) != 0)
        return NULL;
    *nlen = len - MARK_LEN;
    if (*nlen > NAME_MAX_LEN || memchr(data + MARK_LEN, 0, *nlen))
        return NULL;
    return data + MARK_LEN;
}

/* ---- producer: submit ---- */

/* The task being encoded carries the WaitGroup at idx (named): counted once
 * per task, kept alive (and findable by name) while carried. */
static void carry(lua_State *L, fleet_submit_ctx *c, int idx, const char *name)
{
    fleet_wgs *w = c->wgs;
    idx = lua_absindex(L, idx);
    if (c->carried == LUA_NOREF) {
        lua_newtable(L);
        c->carried = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->carried);
    if (lua_getfield(L, -1, name) != LUA_TNIL) {
        lua_pop(L, 2);
        return;
    }
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->carried_ref);
    lua_getfield(L, -1, name);
    lua_Integer n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, n + 1);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->named_ref);
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int submit_encode(travel_ctx *tc, lua_State *L, int idx)
{
    fleet_submit_ctx *c = (fleet_submit_ctx *)tc;
    waitgroup *wg = waitgroup_test(L, idx);
    if (!wg)
        return -1;
    if (waitgroup_is_proxy(wg)) {
        /* a WaitGroup a task of this worker VM received: its name goes on */
        lua_pushfstring(L, FLEET_MARK "%s", waitgroup_name(wg));
        return 0;
    }
    if (!wg->home)
        return luaL_error(L, "a WaitGroup of another VM cannot travel to a fleet pool");
    if (!waitgroup_name(wg)) {
        char name[ENVELOPE_ID_MAX + 24];
        snprintf(name, sizeof name, "%s/%" PRIu64, c->wgs->producer, ++c->wgs->seq);
        if (waitgroup_set_name(wg, name) != 0)
            return luaL_error(L, "not enough memory");
    }
    carry(L, c, idx, waitgroup_name(wg));
    lua_pushfstring(L, FLEET_MARK "%s", waitgroup_name(wg));
    return 0;
}

void fleet_submit_ctx_init(fleet_submit_ctx *c, fleet_wgs *w)
{
    memset(c, 0, sizeof *c);
    c->tc.wg_encode = submit_encode;
    c->tc.obj_encode = fleet_obj_encode;
    c->tc.where = "a fleet pool";
    c->wgs = w;
    c->carried = LUA_NOREF;
}

/* carried[name] += delta (the name on top of L's stack, left there); a
 * WaitGroup carried by no fleet task any more may be collected. Returns the
 * new count. */
static lua_Integer carried_add(lua_State *L, fleet_wgs *w, lua_Integer delta)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->carried_ref);
    lua_pushvalue(L, -2);
    lua_Integer n = lua_rawget(L, -2) == LUA_TNUMBER ? lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    if (delta > 0 && n <= 0) { /* not carried: gone, or not this VM's */
        lua_pop(L, 1);
        return 0;
    }
    n += delta;
    lua_pushvalue(L, -2);
    if (n > 0)
        lua_pushinteger(L, n);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (n <= 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, w->named_ref);
        lua_pushvalue(L, -2);
        lua_pushnil(L);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    return n;
}

void fleet_wgs_release(lua_State *L, fleet_wgs *w, int *carried)
{
    if (*carried == LUA_NOREF)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, *carried);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        carried_add(L, w, -1);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, *carried);
    *carried = LUA_NOREF;
}

/* ---- producer: outcomes and notifications ---- */

static int outcome_decode(travel_ctx *tc, lua_State *L, const char *data, size_t len)
{
    fleet_wgs *w = (fleet_wgs *)((char *)tc - offsetof(fleet_wgs, outcome));
    size_t nlen;
    const char *name = unmark(data, len, &nlen);
    if (!name)
        return -1;
    if (find_named(L, w, name, nlen))
        return 0;
    return luaL_error(L, "WaitGroup %s is no longer carried by a fleet task of this VM", name);
}

travel_ctx *fleet_wgs_outcome_ctx(fleet_wgs *w)
{
    return &w->outcome;
}

void fleet_wgs_apply(lua_State *L, fleet_wgs *w, const char *s, size_t len)
{
    char buf[NAME_MAX_LEN + 32];
    if (len >= sizeof buf)
        return;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *sp = strrchr(buf, ' ');
    if (!sp)
        return;
    *sp = 0;
    long long d = strtoll(sp + 1, NULL, 10);
    if (find_named(L, w, buf, strlen(buf))) {
        if (waitgroup_apply(L, -1, d) != 0)
            rtlog(sched_get(L), RTLOG_ERROR, 0, LUA_NOREF,
                  "negative WaitGroup counter: fleet tasks called done() more often than add() "
                  "on WaitGroup %s",
                  buf);
        lua_pop(L, 1);
    }
}

/* Calls f(L, w, line, n) for each "PRODUCER/N DELTA" line of s naming
 * one of this VM's WaitGroups (mine = 1) or of another producer's
 * (mine = 0); stops at the first f returning nonzero and returns that. */
static int each_line(lua_State *L, fleet_wgs *w, const char *s, size_t len, int mine,
                     int (*f)(lua_State *L, fleet_wgs *w, const char *line, size_t n))
{
    size_t plen = strlen(w->producer);
    while (len > 0) {
        const char *nl = memchr(s, '\n', len);
        size_t n = nl ? (size_t)(nl - s) : len;
        int is_mine = n > plen && memcmp(s, w->producer, plen) == 0 && s[plen] == '/';
        int r;
        if (n > 0 && is_mine == mine && (r = f(L, w, s, n)) != 0)
            return r;
        if (!nl)
            break;
        len -= n + 1;
        s = nl + 1;
    }
    return 0;
}

static int apply_line(lua_State *L, fleet_wgs *w, const char *s, size_t n)
{
    fleet_wgs_apply(L, w, s, n);
    return 0;
}

void fleet_wgs_apply_lines(lua_State *L, fleet_wgs *w, const char *s, size_t len)
{
    /* a record also carries the changes of other producers' WaitGroups */
    each_line(L, w, s, len, 1, apply_line);
}

static int found_line(lua_State *L, fleet_wgs *w, const char *s, size_t n)
{
    (void)L, (void)w, (void)s, (void)n;
    return 1;
}

int fleet_wgs_has_others(fleet_wgs *w, const char *s, size_t len)
{
    return each_line(NULL, w, s, len, 0, found_line);
}

int fleet_wgs_pin(lua_State *L, fleet_wgs *w, const char *name, size_t nlen, int delta)
{
    if (nlen == 0)
        return 0;
    lua_pushlstring(L, name, nlen);
    lua_Integer n = carried_add(L, w, delta);
    lua_pop(L, 1);
    return delta < 0 || n > 0;
}

void fleet_wgs_note(lua_State *L, fleet_wgs *w, const char *s, size_t len,
                    int (*which)(void *ud, const char *id, const char *change, size_t clen),
                    void *ud)
{
    const char *nul = memchr(s, 0, len);
    if (!nul) {
        fleet_wgs_apply(L, w, s, len); /* a worker that names no task */
        return;
    }
    /* after the NUL: "TASKID N" */
    size_t clen = (size_t)(nul - s), idlen = len - clen - 1;
    const char *sp = memchr(nul + 1, ' ', idlen);
    long n = 0;
    if (sp) {
        char num[24];
        size_t nlen = (size_t)(s + len - sp - 1);
        if (nlen == 0 || nlen >= sizeof num)
            return; /* malformed */
        memcpy(num, sp + 1, nlen);
        num[nlen] = 0;
        char *end;
        n = strtol(num, &end, 10);
        if (*end || n < 1)
            return;
        idlen = (size_t)(sp - nul - 1);
    }
    char id[ENVELOPE_ID_MAX + 1];
    if (clen == 0 || clen >= sizeof w->held[0].change ||
        envelope_check_id(nul + 1, idlen, NULL, 0) != 0)
        return; /* malformed */
    memcpy(id, nul + 1, idlen);
    id[idlen] = 0;
    switch (which(ud, id, s, clen)) {
    case FLEET_WG_APPLY:
        fleet_wgs_apply(L, w, s, clen);
        return;
    case FLEET_WG_HOLD:
        break;
    default:
        return;
    }
    if (w->nheld >= HELD_MAX)
        return; /* not held: its task's 'R' sees a change missing and reads them all */
    if (w->nheld == w->capheld) {
        int cap = w->capheld ? w->capheld * 2 : 8;
        held_change *h = realloc(w->held, (size_t)cap * sizeof *h);
        if (!h)
            return; /* the same */
        w->held = h;
        w->capheld = cap;
    }
    held_change *h = &w->held[w->nheld++];
    h->n = n;
    memcpy(h->id, id, idlen + 1);
    memcpy(h->change, s, clen);
    h->change[clen] = 0;
}

int fleet_wgs_held(const fleet_wgs *w, const char *id)
{
    long got = 0, want = 0;
    for (int i = 0; i < w->nheld; i++)
        if (!strcmp(w->held[i].id, id)) {
            got++;
            want = w->held[i].n;
        }
    return got == 0 ? 0 : got == want ? 1 : -1;
}

void fleet_wgs_settle(lua_State *L, fleet_wgs *w, const char *id, int apply)
{
    for (int i = 0; i < w->nheld; i++)
        if (apply && !strcmp(w->held[i].id, id))
            fleet_wgs_apply(L, w, w->held[i].change, strlen(w->held[i].change));
    w->nheld = 0;
}

/* ---- worker: a task's proxies ---- */

static int task_decode(travel_ctx *tc, lua_State *L, const char *data, size_t len)
{
    fleet_task_wgs *c = (fleet_task_wgs *)tc;
    size_t nlen;
    const char *name = unmark(data, len, &nlen);
    if (!name)
        return -1;
    sched *s = sched_get(L);
    fleet_wgs *own = fleet_wgs_of(s);
    if (own && find_named(L, own, name, nlen))
        return 0; /* this VM's own WaitGroup, sent to a pool that runs here */
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 4;
        wgcore **v = realloc(c->proxies, (size_t)cap * sizeof *v);
        if (!v)
            return luaL_error(L, "not enough memory");
        c->proxies = v;
        c->cap = cap;
    }
    c->proxies[c->n++] = waitgroup_proxy_new(L, s, name, nlen);
    return 0;
}

void fleet_task_wgs_init(fleet_task_wgs *c)
{
    memset(c, 0, sizeof *c);
    c->tc.wg_decode = task_decode;
    c->tc.obj_encode = fleet_obj_encode; /* (its outcome is encoded with it) */
    c->tc.obj_decode = fleet_obj_decode;
    c->tc.where = "another process";
}

void fleet_task_wgs_drain(fleet_task_wgs *c,
                          void (*fn)(void *ud, const char *owner, const char *name,
                                     long long delta),
                          void *ud)
{
    for (int i = 0; i < c->n; i++) {
        wgcore *p = c->proxies[i];
        long long d = waitgroup_core_delta(p);
        const char *name = waitgroup_core_name(p);
        const char *slash = strrchr(name, '/');
        if (d != 0 && slash && fn) {
            char owner[ENVELOPE_ID_MAX + 1];
            size_t n = (size_t)(slash - name);
            if (n < sizeof owner) {
                memcpy(owner, name, n);
                owner[n] = 0;
                fn(ud, owner, name, d);
            }
        }
        waitgroup_core_release(p);
    }
    free(c->proxies);
    c->proxies = NULL;
    c->n = c->cap = 0;
}
