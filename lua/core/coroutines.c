/* coroutines.c: coroutine.resume and coroutine.wrap that keep preemption
 * and cancellation working inside plain coroutines run by a goroutine.
 *
 * They behave as Lua's own (lcorolib.c), and in addition: while a plain
 * coroutine runs, the scheduler's signal handler arms its hook on that
 * innermost thread (running_L); when the hook yields it, the resume here
 * yields its own caller in turn, up to the goroutine, which the scheduler
 * then treats as preempted (and kills at a deadline). When the goroutine
 * runs again, the resume continues the plain coroutine where it stopped. */
#include "coroutines.h"

#include <lauxlib.h>
#include <lualib.h>

#include "scheduler.h"

/* Registry tables (weak keys): INNER[outer] = inner while outer is suspended
 * because the plain coroutine inner it resumed was preempted; BUSY[inner] =
 * true meanwhile (inner is "normal": nobody else may resume or close it). */
static const char INNER = 'i', BUSY = 'b';

static void weak_table(lua_State *L, const void *key)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE)
        return;
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

/* Records (or, with inner NULL, forgets) that outer waits for inner. */
static void mark_chain(lua_State *L, lua_State *outer, lua_State *inner, lua_State *was)
{
    luaL_checkstack(L, 4, NULL);
    weak_table(L, &INNER);
    lua_pushthread(outer);
    lua_xmove(outer, L, 1);
    if (inner) {
        lua_pushthread(inner);
        lua_xmove(inner, L, 1);
    } else {
        lua_pushnil(L);
    }
    lua_rawset(L, -3);
    lua_pop(L, 1);
    weak_table(L, &BUSY);
    lua_State *t = inner ? inner : was;
    lua_pushthread(t);
    lua_xmove(t, L, 1);
    if (inner)
        lua_pushboolean(L, 1);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int is_busy(lua_State *L, lua_State *co)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &BUSY) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    int busy = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return busy;
}

void coroutines_close_chain(lua_State *T, lua_State *outer)
{
    lua_State *chain[64];
    int n = 0;
    if (lua_rawgetp(T, LUA_REGISTRYINDEX, &INNER) != LUA_TTABLE) {
        lua_pop(T, 1);
        return;
    }
    lua_State *cur = outer;
    while (n < 64) {
        lua_pushthread(cur);
        lua_xmove(cur, T, 1);
        lua_rawget(T, -2);
        lua_State *inner = lua_tothread(T, -1);
        lua_pop(T, 1);
        if (!inner)
            break;
        mark_chain(T, cur, NULL, inner);
        chain[n++] = inner;
        cur = inner;
    }
    lua_pop(T, 1);
    /* innermost first: their pending <close> variables run now */
    while (n > 0) {
        lua_State *co = chain[--n];
#if LUA_VERSION_RELEASE_NUM >= 50406
        lua_closethread(co, T);
#else
        lua_resetthread(co);
#endif
        lua_settop(co, 0);
    }
}

/* Resumes co with the narg values on top of L; on success leaves the results
 * on L and returns their count, on failure leaves the error and returns -1.
 * A preemption of co (or of a coroutine it resumed) yields L with
 * continuation k and context ctx when L can yield; k must call back here
 * with narg = 0. */
static int resume_preemptible(lua_State *L, lua_State *co, int narg, lua_KContext ctx,
                              lua_KFunction k)
{
    sched *s = sched_get(L);
    for (;;) {
        if (!lua_checkstack(co, narg)) {
            lua_pushliteral(L, "too many arguments to resume");
            return -1;
        }
        lua_xmove(L, co, narg);
        lua_State *outer = atomic_load_explicit(&s->running_L, memory_order_relaxed);
        atomic_store_explicit(&s->running_L, co, memory_order_relaxed);
        int nres, status = lua_resume(co, L, narg, &nres);
        atomic_store_explicit(&s->running_L, outer, memory_order_relaxed);
        if (status == LUA_YIELD && s->nested_preempt) {
            s->nested_preempt = 0;
            lua_pop(co, nres);
            if (lua_isyieldable(L) && outer == L) {
                /* pass the preemption up: an outer plain coroutine's resume
                 * sees the flag again, a goroutine is just preempted */
                s->nested_preempt = gor_of(L) == NULL;
                mark_chain(L, L, co, NULL);
                return lua_yieldk(L, 0, ctx, k);
            }
            /* cannot yield here (a sort comparator...): carry on, unless
             * the goroutine is past its deadline */
            uint64_t dl = atomic_load_explicit(&s->run_deadline, memory_order_relaxed);
            if (dl && sched_now_ns() >= dl)
                return luaL_error(L, "cancelled: deadline passed");
            narg = 0;
            continue;
        }
        if (status == LUA_OK || status == LUA_YIELD) {
            if (!lua_checkstack(L, nres + 1)) {
                lua_pop(co, nres);
                lua_pushliteral(L, "too many results to resume");
                return -1;
            }
            lua_xmove(co, L, nres);
            return nres;
        }
        lua_xmove(co, L, 1); /* the error */
        return -1;
    }
}

/* coroutine.resume(co, ...): co is argument 1 and stays there. */
static int resume_k(lua_State *L, int status, lua_KContext ctx);

static int finish_resume(lua_State *L, int r)
{
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int resume_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    lua_State *co = lua_tothread(L, 1);
    lua_settop(L, 1);
    mark_chain(L, L, NULL, co);
    return finish_resume(L, resume_preemptible(L, co, 0, ctx, resume_k));
}

/* A goroutine's own thread, or a coroutine waiting in a preempted resume,
 * is active ("normal"): it is not to be resumed or closed by hand. */
static int is_normal(lua_State *L, lua_State *co)
{
    return co != L && (gor_of(co) != NULL || is_busy(L, co));
}

static int co_resume(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_State *co = lua_tothread(L, 1);
    if (is_normal(L, co)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "cannot resume non-suspended coroutine");
        return 2;
    }
    return finish_resume(L, resume_preemptible(L, co, lua_gettop(L) - 1, 0, resume_k));
}

static lua_CFunction orig_status, orig_close;

static int co_status(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    if (is_normal(L, lua_tothread(L, 1))) {
        lua_pushliteral(L, "normal");
        return 1;
    }
    return orig_status(L);
}

static int co_close(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    if (is_normal(L, lua_tothread(L, 1)))
        return luaL_error(L, "cannot close a normal coroutine");
    return orig_close(L);
}

/* coroutine.wrap(f): the coroutine is upvalue 1 of the returned function. */
static int finish_wrap(lua_State *L, int r)
{
    if (r >= 0)
        return r;
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) { /* an error in the coroutine */
#if LUA_VERSION_RELEASE_NUM >= 50406
        stat = lua_closethread(co, L);
#else
        stat = lua_resetthread(co); /* close its to-be-closed variables */
#endif
        lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1); /* the caller's position, as Lua's wrap adds it */
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int wrap_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    lua_settop(L, (int)ctx); /* what was below the arguments */
    mark_chain(L, L, NULL, co);
    return finish_wrap(L, resume_preemptible(L, co, 0, ctx, wrap_k));
}

static int wrap_call(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    return finish_wrap(L, resume_preemptible(L, co, lua_gettop(L), 0, wrap_k));
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, wrap_call, 1);
    return 1;
}

void coroutines_patch(lua_State *L)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE ||
        lua_getfield(L, -1, LUA_COLIBNAME) != LUA_TTABLE) {
        lua_pop(L, 2);
        return;
    }
    lua_pushcfunction(L, co_resume);
    lua_setfield(L, -2, "resume");
    if (!orig_status) { /* the library's own C functions, the same in every VM */
        lua_getfield(L, -1, "status");
        orig_status = lua_tocfunction(L, -1);
        lua_getfield(L, -2, "close");
        orig_close = lua_tocfunction(L, -1);
        lua_pop(L, 2);
    }
    if (orig_status && orig_close) {
        lua_pushcfunction(L, co_status);
        lua_setfield(L, -2, "status");
        lua_pushcfunction(L, co_close);
        lua_setfield(L, -2, "close");
    }
    lua_pushcfunction(L, co_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 2);
}
