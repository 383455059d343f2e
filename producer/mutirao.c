/* mutirao.c: the producer library's C API (include/mutirao.h).
 *
 * A client owns one thread running a "producer VM": a lua_State with the
 * goroutine module, its scheduler and libuv loop, exactly like a VM of
 * lua/pool/procs.c. An API call fills a request on the caller's stack, posts it
 * to the VM's port and sleeps on the request's condition variable. On the
 * VM thread each request becomes a goroutine running a small Lua driver
 * (below) that calls the goroutine module's own pool_create, pool_submit,
 * await, pool_wait, pool_stats and pool_close, so every pool rule (queue
 * backpressure, counters, result keeping) is the Lua API's, not a copy. The
 * driver hands outcomes back through the H.* functions, which find the
 * request by number in the client's list of live requests and complete it:
 * Lua never holds a pointer to a caller's memory, and a request completed
 * once can never be touched again. The client's configuration chooses its
 * VM's pool backend: embedded, or the fleet (with this client's Kafka and
 * Redis; another client in the same process may use others).
 *
 * Closing: a shutdown request closes the client's pools and stops the loop;
 * the thread then closes the VM (parked goroutines die with it) and
 * completes every request still live with MUTIRAO_ECLOSED. Pool tasks still
 * running finish on their VMs and find the client's port closed: their
 * outcomes are freed there (lua/pool/executor.c). */
#include "mutirao.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "codec.h"
#include "config.h"
#include "errors.h"
#include "fleet_pool.h"
#include "goroutine.h"
#include "list.h"
#include "msgpack_lua.h"
#include "port.h"
#include "scheduler.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define ERRMSG_MAX 1024

/* ---- error codes and messages ---- */

MUTIRAO_API const char *mutirao_version(void)
{
    return STR(MUTIRAO_VERSION_MAJOR) "." STR(MUTIRAO_VERSION_MINOR) "." STR(MUTIRAO_VERSION_PATCH);
}

/* The public codes are base codes (errors.h), with the same values: the
 * public header repeats them since it cannot include private headers. */
#define MUTIRAO_XX_CHECK(name, value, msg)                                                         \
    _Static_assert((int)MUTIRAO_##name == (int)MERR_##name,                                        \
                   "include/mutirao.h: MUTIRAO_" #name " is not the base code's value");
MUTIRAO_ERRNO_MAP(MUTIRAO_XX_CHECK)
#undef MUTIRAO_XX_CHECK

MERR_FUNCS(MUTIRAO_API, mutirao, MUTIRAO_ERRNO_MAP)

/* The code of an error name such as "ENOPOOL" (the driver speaks names). */
static int errcode_of(const char *name)
{
#define MUTIRAO_XX_CODE(nm, value, msg)                                                            \
    if (strcmp(name, #nm) == 0)                                                                    \
        return value;
    MUTIRAO_ERRNO_MAP(MUTIRAO_XX_CODE)
#undef MUTIRAO_XX_CODE
    return MUTIRAO_EINTERNAL;
}

/* Per-thread description of the latest failure, like errno. */
static _Thread_local char last_error[ERRMSG_MAX];

MUTIRAO_API const char *mutirao_last_error(void)
{
    return last_error;
}

static int fail(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- the client and its requests ---- */

enum op { OP_CREATE, OP_CLOSE, OP_SUBMIT, OP_AWAIT, OP_STATS, OP_WAIT, OP_SHUTDOWN };
static const char *const op_names[] = {"create", "close", "submit",  "await",
                                       "stats",  "wait",  "shutdown"};

typedef struct req req;
struct req {
    xmsg msg; /* first: what is posted to the VM's port */
    mutirao *m;
    int op;
    lua_Integer id; /* the number the driver knows it by */
    mlist node;     /* in m->live, while a goroutine works on it */
    /* inputs: the caller's memory, read on the VM thread until completion */
    const char *pool, *src, *task;
    size_t srclen;
    const void *args;
    size_t argslen;
    int workers, queue, block, timeout_ms;
    /* outputs, written on the VM thread before `done` */
    int rc, ok;
    char *out;
    size_t outlen;
    char task_id[MUTIRAO_TASK_ID_MAX];
    mutirao_stats stats;
    char errmsg[ERRMSG_MAX];
    int done;
    pthread_cond_t cv;
};

struct mutirao {
    pthread_mutex_t mu; /* closing, calls, live, next_id, req->done */
    pthread_cond_t idle_cv;
    int closing;
    int calls;  /* API calls inside the library (mutirao_close waits for 0) */
    mlist live; /* requests a goroutine works on (of req.node), the newest first */
    lua_Integer next_id;
    port *port; /* the producer VM's mailbox (a reference) */
    uv_thread_t th;
    int started;
    /* the VM thread's own */
    lua_State *L;
    sched *s;
    int driver_ref;
    /* startup handshake */
    uv_sem_t ready;
    int start_rc;
    char start_err[256];
    config cfg;
    mpl_limits lim;
};

/* Completes r (on the VM thread, or the caller's for a request never
 * posted). r belongs to its caller again as soon as the lock is released. */
static void complete(req *r, int rc, const char *msg)
{
    mutirao *m = r->m;
    pthread_mutex_lock(&m->mu);
    if (mlist_linked(&r->node))
        mlist_remove(&r->node);
    r->rc = rc;
    if (msg)
        snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    r->done = 1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&m->mu);
}

/* The live request with that number, or NULL (completed already). The
 * pointer stays valid on the VM thread until it completes the request. */
static req *find_live(mutirao *m, lua_Integer id)
{
    pthread_mutex_lock(&m->mu);
    req *r = NULL;
    mlist *n;
    mlist_foreach (n, &m->live) {
        req *x = mlist_entry(n, req, node);
        if (x->id == id) {
            r = x;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return r;
}

/* ---- the driver (runs in the producer VM) ---- */

static const char driver_src[] =
    "local g, H = ...\n"
    "g._set_error_handler(function() end) -- failures are the caller's to read\n"
    "local cache, ncache, mine, closing = {}, 0, {}, false\n"
    "local function compile(src)\n"
    "  local fn = cache[src]\n"
    "  if fn then return fn end\n"
    "  local f, err = load(src, '=task', 't')\n"
    "  if not f then return nil, err end\n"
    "  if ncache >= 256 then cache, ncache = {}, 0 end\n"
    "  cache[src], ncache = f, ncache + 1\n"
    "  return f\n"
    "end\n"
    "local function classify(msg)\n"
    "  msg = tostring(msg)\n"
    "  if msg:find('^pool not found') then return 'ENOPOOL' end\n"
    "  if msg:find('^pool already exists') then return 'EEXIST' end\n"
    "  if msg == 'pool is closed' then return 'EPOOLCLOSED' end\n"
    "  if msg == 'pool queue is full' then return 'EQUEUEFULL' end\n"
    "  if msg:find('^timeout after') then return 'ETIMEDOUT' end\n"
    "  return 'EINTERNAL'\n"
    "end\n"
    "local ops = {}\n"
    "function ops.create(id, pool, workers, queue, block)\n"
    "  local ok, r, err = pcall(g.pool_create, pool,\n"
    "                           {workers = workers, queue = queue, block = block})\n"
    "  if not ok then return H.fail(id, 'EINVAL', r) end\n"
    "  if not r then return H.fail(id, classify(err), err) end\n"
    "  mine[pool] = true\n"
    "  return H.done(id)\n"
    "end\n"
    "function ops.close(id, pool)\n"
    "  local r, err = g.pool_close(pool)\n"
    "  if not r then return H.fail(id, classify(err), err) end\n"
    "  mine[pool] = nil\n"
    "  return H.done(id)\n"
    "end\n"
    "function ops.submit(id, pool, src, ...)\n"
    "  local fn, err = compile(src)\n"
    "  if not fn then return H.fail(id, 'ESYNTAX', err) end\n"
    "  H.note_source(src) -- fleet workers compile the task from this text (each time:\n"
    "  -- the codec's tables may have started over since)\n"
    "  local tid, e = g.pool_submit(pool, fn, ...)\n"
    "  if not tid and closing then\n"
    "    return H.fail(id, 'ECLOSED', 'the client was closed while this call waited')\n"
    "  end\n"
    "  if not tid then return H.fail(id, classify(e), e) end\n"
    "  return H.submitted(id, tid)\n"
    "end\n"
    "local function awaited(id, tid, ok, ...)\n"
    "  return H.result(id, tid, ok, ...)\n"
    "end\n"
    "function ops.await(id, tid, ms)\n"
    "  if ms < 0 then return awaited(id, tid, g.await(tid)) end\n"
    "  local function after(tok, ...)\n"
    "    if not tok then return H.fail(id, classify((...)), (...)) end\n"
    "    return awaited(id, tid, ...)\n"
    "  end\n"
    "  return after(g.timeout(ms, g.await, tid))\n"
    "end\n"
    "function ops.stats(id, pool)\n"
    "  local st, err = g.pool_stats(pool)\n"
    "  if not st then return H.fail(id, classify(err), err) end\n"
    "  return H.stats(id, st.workers, st.queue, st.active, st.queued, st.completed,\n"
    "                 st.failed, st.submitted, st.rejected)\n"
    "end\n"
    "function ops.wait(id, pool, ms)\n"
    "  local r, err\n"
    "  if ms < 0 then\n"
    "    r, err = g.pool_wait(pool)\n"
    "  else\n"
    "    local tok\n"
    "    tok, r, err = g.timeout(ms, g.pool_wait, pool)\n"
    "    if not tok then return H.fail(id, classify(r), r) end\n"
    "  end\n"
    "  if not r then return H.fail(id, classify(err), err) end\n"
    "  return H.done(id)\n"
    "end\n"
    "function ops.shutdown(id)\n"
    "  closing = true -- submits woken by the closes below: ECLOSED\n"
    "  for name in pairs(mine) do g.pool_close(name) end\n"
    "  mine = {}\n"
    "  H.stop()\n"
    "  return H.done(id)\n"
    "end\n"
    "return function(op, id, ...)\n"
    "  local ok, err = xpcall(ops[op], debug.traceback, id, ...)\n"
    "  if not ok then H.fail(id, 'EINTERNAL', tostring(err)) end\n"
    "end\n";

static mutirao *M(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* H.fail(id, ENAME, msg) */
static int h_fail(lua_State *L)
{
    req *r = find_live(M(L), luaL_checkinteger(L, 1));
    if (r)
        complete(r, errcode_of(luaL_checkstring(L, 2)), luaL_tolstring(L, 3, NULL));
    return 0;
}

/* H.done(id) */
static int h_done(lua_State *L)
{
    req *r = find_live(M(L), luaL_checkinteger(L, 1));
    if (r)
        complete(r, 0, NULL);
    return 0;
}

/* H.submitted(id, task_id) */
static int h_submitted(lua_State *L)
{
    req *r = find_live(M(L), luaL_checkinteger(L, 1));
    size_t len;
    const char *tid = luaL_checklstring(L, 2, &len);
    if (!r)
        return 0;
    if (len >= sizeof r->task_id) {
        complete(r, MUTIRAO_EINTERNAL, "task id too long");
        return 0;
    }
    memcpy(r->task_id, tid, len + 1);
    complete(r, 0, NULL);
    return 0;
}

/* H.result(id, task_id, ok, values...): await's outcome. */
static int h_result(lua_State *L)
{
    mutirao *m = M(L);
    req *r = find_live(m, luaL_checkinteger(L, 1));
    size_t tlen;
    const char *tid = luaL_checklstring(L, 2, &tlen);
    int ok = lua_toboolean(L, 3);
    int n = lua_gettop(L) - 3;
    if (!r)
        return 0;
    if (!ok && n >= 1 && lua_type(L, 4) == LUA_TSTRING) {
        /* pool.c's answer for ids it does not know */
        const char *e = lua_tostring(L, 4);
        static const char unknown[] = "unknown task id: ";
        if (strncmp(e, unknown, sizeof unknown - 1) == 0 &&
            strncmp(e + sizeof unknown - 1, tid, tlen) == 0 &&
            strncmp(e + sizeof unknown - 1 + tlen, " (", 2) == 0) {
            complete(r, MUTIRAO_ENOTASK, e);
            return 0;
        }
    }
    char err[512];
    char *out = NULL;
    size_t outlen = 0;
    int rc;
    if (ok) {
        rc = mpl_encode_values(L, 4, n, &m->lim, &out, &outlen, err, sizeof err);
        if (rc != 0) {
            ok = 0;
            lua_settop(L, 3);
            lua_pushfstring(L, "task %s: its results cannot be sent as msgpack: %s", tid, err);
            n = 1;
        }
    }
    if (!ok) {
        if (n < 1) {
            lua_pushliteral(L, "task failed");
            n = 1;
        }
        rc = mpl_encode_values(L, 4, 1, &m->lim, &out, &outlen, err, sizeof err);
        if (rc != 0) { /* an error value with no msgpack form: its text */
            luaL_tolstring(L, 4, NULL);
            rc = mpl_encode_values(L, -1, 1, &m->lim, &out, &outlen, err, sizeof err);
        }
        if (rc != 0) {
            complete(r, MUTIRAO_ENOMEM, err);
            return 0;
        }
    }
    r->ok = ok;
    r->out = out;
    r->outlen = outlen;
    complete(r, 0, NULL);
    return 0;
}

/* H.stats(id, workers, queue, active, queued, completed, failed, submitted, rejected) */
static int h_stats(lua_State *L)
{
    req *r = find_live(M(L), luaL_checkinteger(L, 1));
    if (!r)
        return 0;
    int64_t v[8];
    for (int i = 0; i < 8; i++)
        v[i] = (int64_t)lua_tointeger(L, i + 2);
    mutirao_stats *st = &r->stats;
    st->workers = v[0];
    st->queue = v[1];
    st->active = v[2];
    st->queued = v[3];
    st->completed = v[4];
    st->failed = v[5];
    st->submitted = v[6];
    st->rejected = v[7];
    complete(r, 0, NULL);
    return 0;
}

/* H.stop(): ends the VM thread's loop once this drain is over. */
static int h_stop(lua_State *L)
{
    mutirao *m = M(L);
    uv_stop(m->s->loop);
    return 0;
}

/* Runs protected in the new VM: the goroutine module and the driver. */
/* H.note_source(src): the codec sends functions of chunk "=task" as this
 * text (fleet workers compile tasks from source). */
static int h_note_source(lua_State *L)
{
    size_t n;
    const char *src = luaL_checklstring(L, 1, &n);
    if (codec_note_source(L, "=task", src, n) != 0)
        return luaL_error(L, "not enough memory");
    return 0;
}

static int vm_setup(lua_State *L)
{
    mutirao *m = lua_touserdata(L, 1);
    static const luaL_Reg hfuncs[] = {
        {"fail", h_fail},   {"done", h_done}, {"submitted", h_submitted},     {"result", h_result},
        {"stats", h_stats}, {"stop", h_stop}, {"note_source", h_note_source}, {NULL, NULL}};
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0); /* g */
    m->s = sched_get(L);
    if (m->cfg.fleet) /* this client's pools run on the fleet, with its configuration */
        fleet_backend_install(L, m->s, &m->cfg);
    if (luaL_loadbuffer(L, driver_src, sizeof driver_src - 1, "=mutirao-driver") != LUA_OK)
        return lua_error(L);
    lua_insert(L, -2); /* chunk, g */
    luaL_newlibtable(L, hfuncs);
    lua_pushlightuserdata(L, m);
    luaL_setfuncs(L, hfuncs, 1);
    lua_call(L, 2, 1);
    luaL_checktype(L, -1, LUA_TFUNCTION);
    m->driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

/* Runs protected on the scheduler's scratch thread: pushes the driver and
 * the request's arguments and spawns them as a goroutine. Returns 1 when
 * the request was completed here instead (bad arguments). */
static int spawn_req(lua_State *L)
{
    req *r = lua_touserdata(L, 1);
    mutirao *m = r->m;
    int base = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, m->driver_ref);
    lua_pushstring(L, op_names[r->op]);
    lua_pushinteger(L, r->id);
    switch (r->op) {
    case OP_CREATE:
        lua_pushstring(L, r->pool);
        lua_pushinteger(L, r->workers);
        lua_pushinteger(L, r->queue);
        lua_pushboolean(L, r->block);
        break;
    case OP_CLOSE:
    case OP_STATS:
        lua_pushstring(L, r->pool);
        break;
    case OP_WAIT:
        lua_pushstring(L, r->pool);
        lua_pushinteger(L, r->timeout_ms);
        break;
    case OP_AWAIT:
        lua_pushstring(L, r->task);
        lua_pushinteger(L, r->timeout_ms);
        break;
    case OP_SUBMIT: {
        lua_pushstring(L, r->pool);
        lua_pushlstring(L, r->src, r->srclen);
        int n = 0;
        char err[512];
        int rc = mpl_decode_array(L, r->args, r->argslen, &m->lim, &n, err, sizeof err);
        if (rc != 0) {
            lua_settop(L, base);
            lua_pushboolean(L, 1);
            complete(r,
                     rc == MPL_ETOOBIG  ? MUTIRAO_ETOOBIG
                     : rc == MPL_ENOMEM ? MUTIRAO_ENOMEM
                                        : MUTIRAO_EARGS,
                     err);
            return 1;
        }
        break;
    }
    default:
        break;
    }
    int nargs = lua_gettop(L) - base - 1;
    sched_spawn(m->s, L, nargs, &m->s->root, NULL);
    lua_settop(L, base);
    lua_pushboolean(L, 0);
    return 1;
}

/* A request arrives on the VM thread (s == NULL: the VM is gone). */
static void on_req(sched *s, xmsg *msg)
{
    req *r = (req *)msg;
    mutirao *m = r->m;
    if (!s) {
        complete(r, MUTIRAO_ECLOSED, "the client is closed");
        return;
    }
    pthread_mutex_lock(&m->mu);
    r->id = ++m->next_id;
    mlist_push_front(&m->live, &r->node);
    pthread_mutex_unlock(&m->mu);
    lua_State *T = sched_scratch(s);
    int top = lua_gettop(T);
    lua_pushcfunction(T, spawn_req);
    lua_pushlightuserdata(T, r);
    if (lua_pcall(T, 1, 1, 0) != LUA_OK) {
        const char *e = lua_tostring(T, -1);
        req *still = find_live(m, r->id);
        if (still)
            complete(still, MUTIRAO_ENOMEM, e ? e : "cannot start the request");
    }
    lua_settop(T, top);
}

static void fail_live(mutirao *m)
{
    for (;;) {
        pthread_mutex_lock(&m->mu);
        req *r = mlist_first_entry(&m->live, req, node);
        pthread_mutex_unlock(&m->mu);
        if (!r)
            break;
        complete(r, MUTIRAO_ECLOSED, "the client was closed while this call waited");
    }
}

static void vm_main(void *arg)
{
    mutirao *m = arg;
    char name[16] = "mutirao-client";
    pthread_setname_np(pthread_self(), name);
    lua_State *L = luaL_newstate();
    if (!L) {
        m->start_rc = MUTIRAO_ENOMEM;
        snprintf(m->start_err, sizeof m->start_err, "cannot create a Lua state");
        uv_sem_post(&m->ready);
        return;
    }
    lua_pushcfunction(L, vm_setup);
    lua_pushlightuserdata(L, m);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        m->start_rc = MUTIRAO_EINTERNAL;
        snprintf(m->start_err, sizeof m->start_err, "cannot start the client's VM: %s",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_close(L);
        uv_sem_post(&m->ready);
        return;
    }
    m->L = L;
    m->port = m->s->port;
    port_ref(m->port);
    sched_hold(m->s); /* the loop waits for requests until shutdown */
    uv_sem_post(&m->ready);
    uv_run(m->s->loop, UV_RUN_DEFAULT);
    lua_close(L); /* closes the port: requests posted later fail at once */
    m->L = NULL;
    m->s = NULL;
    fail_live(m);
}

/* ---- calls ---- */

static int enter(mutirao *m)
{
    pthread_mutex_lock(&m->mu);
    int closing = m->closing;
    if (!closing)
        m->calls++;
    pthread_mutex_unlock(&m->mu);
    return closing ? fail(MUTIRAO_ECLOSED, "the client is closed") : 0;
}

static void leave(mutirao *m)
{
    pthread_mutex_lock(&m->mu);
    if (--m->calls == 0)
        pthread_cond_broadcast(&m->idle_cv);
    pthread_mutex_unlock(&m->mu);
}

/* Posts r and waits for its completion; returns r->rc (and sets the
 * thread's last error when it is not 0). The caller has entered. */
static int run(mutirao *m, req *r, int op)
{
    r->m = m;
    r->op = op;
    r->msg.fn = on_req;
    pthread_cond_init(&r->cv, NULL);
    if (port_post(m->port, &r->msg) != 0) {
        r->rc = MUTIRAO_ECLOSED;
        snprintf(r->errmsg, sizeof r->errmsg, "the client is closed");
    } else {
        pthread_mutex_lock(&m->mu);
        while (!r->done)
            pthread_cond_wait(&r->cv, &m->mu);
        pthread_mutex_unlock(&m->mu);
    }
    pthread_cond_destroy(&r->cv);
    if (r->rc != 0)
        fail(r->rc, "%s", r->errmsg[0] ? r->errmsg : mutirao_strerror(r->rc));
    return r->rc;
}

static req *req_new(void)
{
    req *r = calloc(1, sizeof *r);
    if (!r)
        fail(MUTIRAO_ENOMEM, "out of memory");
    return r;
}

/* The configuration lookup of mutirao_open: the named file (then the
 * environment), or config_load's search. The caller frees *cfg. */
static int load_config(config *cfg, const char *path, char *e, size_t elen)
{
    if (!path)
        return config_load(cfg, NULL, e, elen); /* config_init included */
    int crc = config_init(cfg);
    if (crc == 0)
        crc = config_load_file(cfg, path, e, elen);
    if (crc == 0)
        crc = config_apply_env(cfg, NULL, e, elen);
    if (crc == 0)
        crc = config_derive_ids(cfg);
    return crc;
}

MUTIRAO_API int mutirao_open(const char *config_path, mutirao **out, char *err, size_t errlen)
{
    char e[512] = "";
    int rc = 0;
    if (out)
        *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (!out) {
        snprintf(e, sizeof e, "mutirao_open: out is NULL");
        rc = MUTIRAO_EINVAL;
        goto done;
    }
    mutirao *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(e, sizeof e, "out of memory");
        rc = MUTIRAO_ENOMEM;
        goto done;
    }
    mlist_init(&m->live);
    int crc = load_config(&m->cfg, config_path, e, sizeof e);
    if (crc != 0) {
        if (!e[0])
            snprintf(e, sizeof e, "%s", config_strerror(crc));
        rc = crc == CONFIG_ENOMEM ? MUTIRAO_ENOMEM : MUTIRAO_ECONFIG;
        config_free(&m->cfg);
        free(m);
        goto done;
    }
    mpl_limits_default(&m->lim);
    if (m->cfg.payload_max_bytes > 0)
        m->lim.max_bytes = (size_t)m->cfg.payload_max_bytes;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->idle_cv, NULL);
    m->driver_ref = LUA_NOREF;
    uv_sem_init(&m->ready, 0);
    uv_thread_options_t opt = {.flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = 8u << 20};
    if (uv_thread_create_ex(&m->th, &opt, vm_main, m) != 0) {
        snprintf(e, sizeof e, "cannot start the client's thread");
        rc = MUTIRAO_ETHREAD;
    } else {
        uv_sem_wait(&m->ready);
        m->started = 1;
        if (m->start_rc) {
            uv_thread_join(&m->th);
            snprintf(e, sizeof e, "%s", m->start_err);
            rc = m->start_rc;
        }
    }
    uv_sem_destroy(&m->ready);
    if (rc != 0) {
        pthread_cond_destroy(&m->idle_cv);
        pthread_mutex_destroy(&m->mu);
        config_free(&m->cfg);
        free(m);
        goto done;
    }
    *out = m;
done:
    if (rc != 0) {
        fail(rc, "%s", e);
        if (err && errlen)
            snprintf(err, errlen, "%s", e);
    }
    return rc;
}

MUTIRAO_API void mutirao_close(mutirao *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    int was = m->closing;
    m->closing = 1;
    pthread_mutex_unlock(&m->mu);
    if (was)
        return;
    req r;
    memset(&r, 0, sizeof r);
    run(m, &r, OP_SHUTDOWN);
    uv_thread_join(&m->th);
    pthread_mutex_lock(&m->mu);
    while (m->calls > 0)
        pthread_cond_wait(&m->idle_cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    port_unref(m->port);
    pthread_cond_destroy(&m->idle_cv);
    pthread_mutex_destroy(&m->mu);
    config_free(&m->cfg);
    free(m);
}

MUTIRAO_API int mutirao_pool_create(mutirao *m, const char *pool, int workers, int queue, int flags)
{
    if (!m || !pool)
        return fail(MUTIRAO_EINVAL, "mutirao_pool_create: NULL argument");
    if (flags & ~MUTIRAO_POOL_NOBLOCK)
        return fail(MUTIRAO_EINVAL, "mutirao_pool_create: unknown flags 0x%x", (unsigned)flags);
    if (workers <= 0)
        workers = 4;
    if (queue < 0)
        queue = workers > 500000 ? 1000000 : workers * 2;
    int rc = enter(m);
    if (rc)
        return rc;
    req r;
    memset(&r, 0, sizeof r);
    r.pool = pool;
    r.workers = workers;
    r.queue = queue;
    r.block = !(flags & MUTIRAO_POOL_NOBLOCK);
    rc = run(m, &r, OP_CREATE);
    leave(m);
    return rc;
}

MUTIRAO_API int mutirao_pool_close(mutirao *m, const char *pool)
{
    if (!m || !pool)
        return fail(MUTIRAO_EINVAL, "mutirao_pool_close: NULL argument");
    int rc = enter(m);
    if (rc)
        return rc;
    req r;
    memset(&r, 0, sizeof r);
    r.pool = pool;
    rc = run(m, &r, OP_CLOSE);
    leave(m);
    return rc;
}

MUTIRAO_API int mutirao_submit(mutirao *m, const char *pool, const char *lua_source, size_t srclen,
                               const void *args, size_t argslen, char task_id[MUTIRAO_TASK_ID_MAX])
{
    if (task_id)
        task_id[0] = 0;
    if (!m || !pool || !lua_source || !task_id || (!args && argslen))
        return fail(MUTIRAO_EINVAL, "mutirao_submit: NULL argument");
    if (argslen > m->lim.max_bytes)
        return fail(MUTIRAO_ETOOBIG, "%zu bytes of arguments (payload.max_bytes is %zu)", argslen,
                    m->lim.max_bytes);
    int rc = enter(m);
    if (rc)
        return rc;
    req *r = req_new(); /* large: not on the caller's stack */
    if (!r) {
        leave(m);
        return MUTIRAO_ENOMEM;
    }
    r->pool = pool;
    r->src = lua_source;
    r->srclen = srclen;
    r->args = args;
    r->argslen = argslen;
    rc = run(m, r, OP_SUBMIT);
    if (rc == 0)
        memcpy(task_id, r->task_id, sizeof r->task_id);
    free(r);
    leave(m);
    return rc;
}

MUTIRAO_API int mutirao_await(mutirao *m, const char *task_id, int timeout_ms, int *ok,
                              void **result, size_t *len)
{
    if (ok)
        *ok = 0;
    if (result)
        *result = NULL;
    if (len)
        *len = 0;
    if (!m || !task_id || !ok || !result)
        return fail(MUTIRAO_EINVAL, "mutirao_await: NULL argument");
    if (strlen(task_id) >= MUTIRAO_TASK_ID_MAX)
        return fail(MUTIRAO_ENOTASK, "unknown task id: %.40s...", task_id);
    int rc = enter(m);
    if (rc)
        return rc;
    req *r = req_new();
    if (!r) {
        leave(m);
        return MUTIRAO_ENOMEM;
    }
    r->task = task_id;
    r->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
    rc = run(m, r, OP_AWAIT);
    if (rc == 0) {
        *ok = r->ok;
        *result = r->out;
        if (len)
            *len = r->outlen;
    }
    free(r);
    leave(m);
    return rc;
}

MUTIRAO_API void mutirao_free(void *p)
{
    free(p);
}

MUTIRAO_API int mutirao_pool_stats(mutirao *m, const char *pool, mutirao_stats *out)
{
    if (!m || !pool || !out)
        return fail(MUTIRAO_EINVAL, "mutirao_pool_stats: NULL argument");
    int rc = enter(m);
    if (rc)
        return rc;
    req *r = req_new();
    if (!r) {
        leave(m);
        return MUTIRAO_ENOMEM;
    }
    r->pool = pool;
    rc = run(m, r, OP_STATS);
    if (rc == 0)
        *out = r->stats;
    free(r);
    leave(m);
    return rc;
}

MUTIRAO_API int mutirao_pool_wait(mutirao *m, const char *pool, int timeout_ms)
{
    if (!m || !pool)
        return fail(MUTIRAO_EINVAL, "mutirao_pool_wait: NULL argument");
    int rc = enter(m);
    if (rc)
        return rc;
    req *r = req_new();
    if (!r) {
        leave(m);
        return MUTIRAO_ENOMEM;
    }
    r->pool = pool;
    r->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
    rc = run(m, r, OP_WAIT);
    free(r);
    leave(m);
    return rc;
}
