/* fleet_objects.c: the C half of fleet channels, semaphores and AtomicInts
 * (fleet_objects.h): per VM, a Redis connection opened at the first
 * operation, script calls a goroutine waits for, the codec hooks of the
 * objects' metatables, and a timer that keeps this VM's semaphore leases
 * alive. The objects' logic is fleet_objects.lua. */
#include "fleet_objects.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "atomic_int.h"
#include "channel.h"
#include "codec.h"
#include "embedded_chunk.h"
#include "fleet_conn.h"
#include "list.h"
#include "redis_uv.h"
#include "redis_value.h"
#include "sema.h"
#include "uv_closer.h"

extern const embedded_chunk fleet_objects_lua[];

#define LEASE_MS 15000 /* a semaphore's units outlive their VM this long */
#define TTL_S 86400    /* an object's keys outlive their last use this long */
#define EVAL_MAX_ARGS 16

static const char FOBJ_KEY = 'o';

/* kind, the fleet type's metatable, the local type's, what messages call it */
static const char *const KINDS[][4] = {
    {"channel", "goroutine.fleet_channel", CHANNEL_TNAME, "channel"},
    {"semaphore", "goroutine.fleet_semaphore", SEMAPHORE_TNAME, "semaphore"},
    {"atomic_int", "goroutine.fleet_atomic_int", ATOMIC_INT_TNAME, "AtomicInt"}};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

typedef struct fobj_vm {
    sched *s;
    const config *cfg;
    char token[96];
    redis_uv *r;     /* NULL until the first operation */
    int api_ref;     /* fleet_objects.lua's table */
    uv_timer_t tick; /* semaphore leases */
    int tick_on;
    mlist calls; /* in flight (fcall.node) */
    travel_ctx values;
    unsigned char left_gc[NKINDS]; /* per kind: the "left" metatable has its __gc */
    uvc_closer closer;
    lua_Integer seq; /* P.seq's last (this VM's thread only) */
} fobj_vm;

/* ---- a script call a goroutine waits for ---- */

typedef struct fcall {
    mlist node;
    int refs;
    sched *s; /* NULL once the VM is gone */
    glist waiters;
    int done, failed;
    char err[300];
    redis_value reply;
} fcall;

/* arrays in a reply are copied to this depth; deeper ones are refused (the
 * scripts answer flat arrays or one level of nesting) */
#define REPLY_DEPTH 5

static void reply_push(lua_State *L, const redis_value *v)
{
    switch (v->type) {
    case REDIS_REPLY_INTEGER:
        lua_pushinteger(L, (lua_Integer)v->integer);
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
        lua_pushlstring(L, v->str, v->len);
        break;
    case REDIS_REPLY_NIL:
        lua_pushnil(L);
        break;
    case REDIS_REPLY_ARRAY:
        lua_createtable(L, (int)v->n, 0);
        for (size_t i = 0; i < v->n; i++) {
            reply_push(L, &v->el[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    default:
        lua_pushboolean(L, 0); /* nil in an array: false */
    }
}

static void fcall_unref(fcall *c)
{
    if (--c->refs == 0) {
        redis_value_free(&c->reply);
        free(c);
    }
}

static void on_call(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    (void)cli;
    fcall *c = ud;
    if (!c)
        return;       /* eval_nowait */
    if (status < 0) { /* no reply (a connection lost, a timeout): may be sent again */
        c->failed = 2;
        snprintf(c->err, sizeof c->err, "%s", err ? err : "redis: failed");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        c->failed = 1;
        snprintf(c->err, sizeof c->err, "redis: %s", reply->str);
    } else if (redis_value_copy(&c->reply, reply, REPLY_DEPTH) != 0) {
        c->failed = 1;
        snprintf(c->err, sizeof c->err, "not enough memory");
    }
    c->done = 1;
    if (mlist_linked(&c->node))
        mlist_remove(&c->node);
    if (c->s) {
        sched_unhold(c->s);
        if (c->refs > 1)
            sched_ready_all(c->s, &c->waiters);
    }
    fcall_unref(c);
}

static int call_gc(lua_State *L)
{
    fcall **box = lua_touserdata(L, 1);
    if (*box) {
        fcall_unref(*box);
        *box = NULL;
    }
    return 0;
}

static fobj_vm *vm_of(lua_State *L)
{
    fobj_vm *v = sched_ext_get(sched_get(L), &FOBJ_KEY);
    if (!v)
        luaL_error(L, "fleet objects need the fleet backend in this VM");
    return v;
}

/* The VM's connection, opened at its first use; NULL with err set. */
static redis_uv *conn(fobj_vm *v, char *err, size_t errlen)
{
    if (v->r)
        return v->r;
    const config *c = v->cfg;
    redis_uv_options ro = {0};
    ro.weak = 1; /* a call in flight holds the loop (sched_hold) */
    ro.op_timeout_ms = c->op_timeout_ms > 0 ? (unsigned)c->op_timeout_ms : 10000;
    ro.connect_timeout_ms = c->connect_timeout_ms > 0 ? (unsigned)c->connect_timeout_ms : 1;
    char *pw = NULL;
    err[0] = 0;
    int rc = fleet_redis_security(c, &ro, &pw, err, errlen);
    if (rc == 0)
        rc = redis_uv_open(v->s->loop, c->redis_url, &ro, &v->r);
    fleet_redis_security_done(&ro, pw);
    if (rc != 0) {
        char red[300];
        config_redact_url(c->redis_url, red, sizeof red);
        char why[200];
        snprintf(why, sizeof why, "%s", err[0] ? err : redis_uv_strerror(rc));
        snprintf(err, errlen, "redis: %.150s: %s", red, why);
        v->r = NULL;
        return NULL;
    }
    return v->r;
}

/* script(src) -> id */
static int p_script(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *src = luaL_checklstring(L, 1, &len);
    char err[400];
    redis_uv *r = conn(v, err, sizeof err);
    if (!r)
        return luaL_error(L, "fleet object: %s", err);
    int id = redis_uv_script(r, src, len);
    if (id < 0)
        return luaL_error(L, "fleet object: %s", redis_uv_strerror(id));
    lua_pushinteger(L, id);
    return 1;
}

/* Sends the command of the arguments 1..top (a plain command), its reply
 * for c. 0, or pushes nil, message: 2. */
static int send_command(lua_State *L, fobj_vm *v, fcall *c, int top)
{
    luaL_argcheck(L, top >= 1 && top <= EVAL_MAX_ARGS, 1, "1 to 16 command words expected");
    const char *argv[EVAL_MAX_ARGS];
    size_t lens[EVAL_MAX_ARGS];
    for (int i = 0; i < top; i++)
        argv[i] = luaL_checklstring(L, i + 1, &lens[i]);
    char err[400];
    redis_uv *r = conn(v, err, sizeof err);
    int rc = r ? redis_uv_command_argv(r, on_call, c, top, argv, lens) : 0;
    if (!r || rc != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, r ? redis_uv_strerror(rc) : err);
        return 2;
    }
    return 0;
}

/* Sends script id (arg 1) with keys (the list at 2) and the arguments 3..top,
 * its reply for c (NULL: none wanted). 0, or pushes nil, message: 2. */
static int send_eval(lua_State *L, fobj_vm *v, fcall *c, int top)
{
    int id = (int)luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int nkeys = (int)lua_rawlen(L, 2);
    int nargs = top - 2;
    luaL_argcheck(L, nkeys + nargs <= EVAL_MAX_ARGS, 2, "too many keys and arguments");
    const char *argv[EVAL_MAX_ARGS];
    size_t lens[EVAL_MAX_ARGS];
    for (int i = 0; i < nkeys; i++) {
        lua_rawgeti(L, 2, i + 1);
        argv[i] = luaL_checklstring(L, -1, &lens[i]);
        lua_pop(L, 1); /* (the list keeps the string) */
    }
    for (int i = 0; i < nargs; i++)
        argv[nkeys + i] = luaL_checklstring(L, 3 + i, &lens[nkeys + i]);
    char err[400];
    redis_uv *r = conn(v, err, sizeof err);
    int rc = r ? redis_uv_eval(r, on_call, c, id, nkeys, nkeys + nargs, argv, lens) : 0;
    if (!r || rc != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, r ? redis_uv_strerror(rc) : err);
        return 2;
    }
    return 0;
}

static int eval_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    fcall *c = (fcall *)ctx;
    if (!c->done)
        return sched_wait(L, c->s, &c->waiters, 0, ctx, eval_k);
    if (c->failed) {
        luaL_pushfail(L);
        lua_pushstring(L, c->err);
        lua_pushboolean(L, c->failed == 2);
        return 3;
    }
    reply_push(L, &c->reply);
    return 1;
}

/* eval(script, keys, args...) -> reply | nil, message, transient (true:
 * no reply came, the call may have run or not), once Redis answered
 * (the calling goroutine waits; killed meanwhile, the reply is dropped);
 * command(words...) the same for a plain command (upvalue 2 true) */
static int p_eval(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    int plain = lua_toboolean(L, lua_upvalueindex(2));
    int top = lua_gettop(L);
    fcall **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    if (luaL_newmetatable(L, "goroutine.fleet_call")) {
        lua_pushcfunction(L, call_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, call_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, -1);
    fcall *c = calloc(1, sizeof *c);
    if (!c)
        return luaL_error(L, "not enough memory");
    c->refs = 1;
    c->s = v->s;
    glist_init(&c->waiters);
    mlist_init(&c->node);
    *box = c;
    int n = plain ? send_command(L, v, c, top) : send_eval(L, v, c, top);
    if (n)
        return n;
    c->refs++; /* the reply's */
    sched_hold(v->s);
    mlist_push_back(&v->calls, &c->node);
    return sched_wait(L, v->s, &c->waiters, 0, (lua_KContext)c, eval_k);
}

/* eval_nowait(script, keys, args...): sent, its reply ignored */
static int p_eval_nowait(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    return send_eval(L, v, NULL, lua_gettop(L));
}

/* ---- values ---- */

/* Whether the value at idx holds a function or a table with a metatable
 * (a channel carries data: a function would have to be loaded from bytes
 * anyone with Redis could write, and a metatable may carry functions): 1
 * and 2, else 0. *seen: the stack index of a table of the tables looked
 * at. */
static int has_function(lua_State *L, int idx, const int *seen, int depth)
{
    int t = lua_type(L, idx);
    if (t == LUA_TFUNCTION)
        return 1;
    if (t != LUA_TTABLE || depth > 128)
        return 0;
    idx = lua_absindex(L, idx);
    lua_pushvalue(L, idx);
    if (lua_rawget(L, *seen) != LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, *seen);
    luaL_checkstack(L, 4, "value too deep");
    if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        return 2;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int f = has_function(L, -1, seen, depth + 1);
        if (!f)
            f = has_function(L, -2, seen, depth + 1);
        if (f) {
            lua_pop(L, 2);
            return f;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* encode(v) -> bytes | nil, message: the task arguments' codec, without
 * functions; a channel, semaphore or AtomicInt among them goes by name */
static int p_encode(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    lua_settop(L, 1);
    int seen = 2;
    if (lua_istable(L, 1))
        lua_newtable(L); /* (seen: only tables are walked) */
    int f = has_function(L, 1, &seen, 0);
    if (f) {
        luaL_pushfail(L);
        lua_pushstring(L, f == 1 ? "a function cannot be sent on a fleet channel"
                                 : "a table with a metatable cannot be sent on a fleet channel");
        return 2;
    }
    lua_settop(L, 1);
    codec_limits lim;
    codec_limits_default(&lim);
    lim.call = &v->values;
    lim.value_name = "value";
    char *out = NULL;
    size_t len = 0;
    char err[300];
    if (codec_encode(L, 1, 1, &lim, &out, &len, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushlstring(L, out, len);
    free(out);
    return 1;
}

/* decode(bytes) -> v | nil, message (functions refused) */
static int p_decode(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    size_t len;
    const char *b = luaL_checklstring(L, 1, &len);
    codec_limits lim;
    codec_limits_default(&lim);
    lim.call = &v->values;
    int n = 0;
    char err[300];
    if (codec_decode(L, b, len, &lim, &n, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    if (n != 1) {
        lua_pop(L, n);
        luaL_pushfail(L);
        lua_pushliteral(L, "not one value");
        return 2;
    }
    return 1;
}

/* ---- objects ---- */

static int p_newobject(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_newuserdatauv(L, 1, 0);
    lua_pushvalue(L, 1);
    lua_setmetatable(L, -2);
    return 1;
}

static int p_setmetatable(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TUSERDATA);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_setmetatable(L, 1);
    return 0;
}

/* where() -> "file:line: " of the innermost Lua function on the stack that
 * is not fleet_objects.lua's (the call in the user's code), or "" */
static int p_where(lua_State *L)
{
    const char *self = fleet_objects_lua[0].chunkname;
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && strcmp(ar.source, self) != 0) {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return 1;
        }
    }
    lua_pushliteral(L, "");
    return 1;
}

/* described(v) -> what a message calls v when it is no fleet object: "local
 * channel" (semaphore, AtomicInt), else its metatable's __name, else its
 * type */
static int p_described(lua_State *L)
{
    luaL_checkany(L, 1);
    for (size_t i = 0; i < NKINDS; i++) {
        if (luaL_testudata(L, 1, KINDS[i][2])) {
            lua_pushfstring(L, "local %s", KINDS[i][3]);
            return 1;
        }
    }
    if (luaL_getmetafield(L, 1, "__name") != LUA_TSTRING)
        lua_pushstring(L, luaL_typename(L, 1));
    return 1;
}

static int p_now_ms(lua_State *L)
{
    lua_pushnumber(L, (double)uv_hrtime() / 1e6);
    return 1;
}

/* The Lua half runs in goroutines, which the preemption hook may suspend
 * at any line: a counter or table entry it reads then writes back is one of
 * these C calls, or another goroutine's update made in between is lost (two
 * sends with one id: one value gone). */

/* P.seq() -> the next number of this VM's sequence (ids of sends, receive
 * claims and waiting receivers). */
static int p_seq(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    lua_pushinteger(L, ++v->seq);
    return 1;
}

/* P.add(t, k, d) -> n: t[k] = (t[k] or 0) + d, the entry removed when n is
 * not positive (raw). */
static int p_add(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_Integer d = luaL_checkinteger(L, 3);
    lua_pushvalue(L, 2);
    lua_Integer n = (lua_rawget(L, 1) == LUA_TNIL ? 0 : lua_tointeger(L, -1)) + d;
    lua_pushvalue(L, 2);
    if (n > 0)
        lua_pushinteger(L, n);
    else
        lua_pushnil(L);
    lua_rawset(L, 1);
    lua_pushinteger(L, n);
    return 1;
}

/* Pushes fleet_objects.lua's function name. */
static void api_get(lua_State *L, fobj_vm *v, const char *name)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, v->api_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
}

static void on_tick(uv_timer_t *t)
{
    fobj_vm *v = t->data;
    lua_State *T = sched_scratch(v->s);
    api_get(T, v, "refresh");
    if (lua_pcall(T, 0, 1, 0) != LUA_OK || !lua_toboolean(T, -1)) {
        uv_timer_stop(&v->tick);
        v->tick_on = 0;
    }
    lua_pop(T, 1);
}

/* keep_alive(): this VM holds semaphore units; their leases are renewed
 * every lease / 3 while it does (the timer does not keep the loop alive) */
static int p_keep_alive(lua_State *L)
{
    fobj_vm *v = lua_touserdata(L, lua_upvalueindex(1));
    if (!v->tick_on) {
        uv_timer_start(&v->tick, on_tick, LEASE_MS / 3, LEASE_MS / 3);
        v->tick_on = 1;
    }
    return 0;
}

/* ---- the codec hooks of the objects' metatables, the travel hooks ---- */

static int obj_call(lua_State *L, fobj_vm *v, const char *fn, int nargs)
{
    api_get(L, v, fn);
    lua_insert(L, -1 - nargs);
    lua_call(L, nargs, 2);
    if (lua_isnil(L, -2))
        return luaL_error(L, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "fleet object");
    lua_pop(L, 1);
    return 0;
}

static int mt_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)call;
    lua_pushvalue(L, idx);
    return obj_call(L, ud, "name_of", 1);
}

static int mt_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)call;
    lua_pushlstring(L, data, len);
    return obj_call(L, ud, "named", 1);
}

int fleet_obj_encode(travel_ctx *tc, lua_State *L, int idx, const char *kind, lua_Integer a,
                     lua_Integer b)
{
    (void)tc;
    fobj_vm *v = vm_of(L);
    idx = lua_absindex(L, idx);
    /* the local type's __gc goes on: the userdata still owns its core
     * (copied into the kind's "left" metatable at its first promote: the
     * local type's metatable exists once one of its objects does) */
    for (size_t i = 0; i < NKINDS; i++) {
        if (v->left_gc[i] || strcmp(KINDS[i][0], kind) != 0)
            continue;
        v->left_gc[i] = 1;
        char tname[64];
        snprintf(tname, sizeof tname, "%s_left", KINDS[i][1]);
        luaL_getmetatable(L, tname);
        luaL_getmetatable(L, KINDS[i][2]);
        lua_getfield(L, -1, "__gc");
        lua_setfield(L, -3, "__gc");
        lua_pop(L, 2);
    }
    lua_pushvalue(L, idx);
    lua_pushstring(L, kind);
    lua_pushinteger(L, a);
    lua_pushinteger(L, b);
    return obj_call(L, v, "promote", 4);
}

int fleet_obj_decode(travel_ctx *tc, lua_State *L, const char *data, size_t len)
{
    (void)tc;
    return mt_decode(L, data, len, vm_of(L), NULL);
}

/* ---- the VM ---- */

static void vm_free(sched *s, void *data)
{
    (void)s;
    fobj_vm *v = data;
    mlist *n, *next;
    for (n = v->calls.next; n != &v->calls; n = next) { /* their replies come to nobody */
        next = n->next;
        fcall *c = mlist_entry(n, fcall, node);
        c->s = NULL;
        mlist_remove(&c->node);
    }
    if (v->r)
        redis_uv_close(v->r, NULL, NULL);
    uvc_init(&v->closer, free, v);
    uvc_close(&v->closer, (uv_handle_t *)&v->tick);
    uvc_release(&v->closer);
}

void fleet_objects_install(lua_State *L, sched *s, const config *cfg, const char *token)
{
    fobj_vm *v = calloc(1, sizeof *v);
    if (!v)
        luaL_error(L, "not enough memory");
    v->s = s;
    v->cfg = cfg;
    snprintf(v->token, sizeof v->token, "%s", token);
    v->api_ref = LUA_NOREF;
    mlist_init(&v->calls);
    v->values.obj_encode = fleet_obj_encode;
    v->values.obj_decode = fleet_obj_decode;
    v->values.where = "a fleet channel";
    uv_timer_init(s->loop, &v->tick);
    v->tick.data = v;
    uv_unref((uv_handle_t *)&v->tick);
    if (sched_ext_set(s, &FOBJ_KEY, v, vm_free) != 0) {
        uv_close((uv_handle_t *)&v->tick, NULL);
        luaL_error(L, "not enough memory"); /* (v: freed with the loop's handles) */
    }
    const embedded_chunk *ch = &fleet_objects_lua[0];
    if (luaL_loadbuffer(L, (const char *)ch->data, ch->len, ch->chunkname) != LUA_OK)
        lua_error(L);
    static const luaL_Reg prims[] = {
        {"script", p_script}, {"eval", p_eval},     {"eval_nowait", p_eval_nowait},
        {"encode", p_encode}, {"decode", p_decode}, {"keep_alive", p_keep_alive},
        {NULL, NULL}};
    lua_newtable(L);
    lua_pushlightuserdata(L, v);
    lua_pushboolean(L, 0);
    luaL_setfuncs(L, prims, 2);
    lua_pushlightuserdata(L, v);
    lua_pushboolean(L, 1);
    lua_pushcclosure(L, p_eval, 2);
    lua_setfield(L, -2, "command");
    lua_pushcfunction(L, p_newobject);
    lua_setfield(L, -2, "newobject");
    lua_pushcfunction(L, p_setmetatable);
    lua_setfield(L, -2, "setmetatable");
    lua_pushcfunction(L, p_now_ms);
    lua_setfield(L, -2, "now_ms");
    lua_pushcfunction(L, p_where);
    lua_setfield(L, -2, "where");
    lua_pushcfunction(L, p_described);
    lua_setfield(L, -2, "described");
    lua_pushlightuserdata(L, v);
    lua_pushcclosure(L, p_seq, 1);
    lua_setfield(L, -2, "seq");
    lua_pushcfunction(L, p_add);
    lua_setfield(L, -2, "add");
    lua_pushstring(L, v->token);
    lua_setfield(L, -2, "token");
    lua_pushinteger(L, LEASE_MS);
    lua_setfield(L, -2, "lease_ms");
    lua_pushinteger(L, TTL_S);
    lua_setfield(L, -2, "ttl_s");
    lua_newtable(L); /* mts */
    for (size_t i = 0; i < NKINDS; i++) {
        lua_createtable(L, 0, 2);
        char tname[64];
        snprintf(tname, sizeof tname, "%s_left", KINDS[i][1]);
        luaL_newmetatable(L, tname);
        lua_setfield(L, -2, "left");
        luaL_newmetatable(L, KINDS[i][1]);
        lua_setfield(L, -2, "named");
        lua_setfield(L, -2, KINDS[i][0]);
        codec_register_udata(L, tname, mt_encode, mt_decode, v);
        codec_register_udata(L, KINDS[i][1], mt_encode, mt_decode, v);
    }
    lua_setfield(L, -2, "mts");
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_call(L, 2, 1);
    v->api_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
