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
                return lua_yieldk(L, 0, ctx, k);
            }
            narg = 0; /* cannot yield here: carry on */
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
    return finish_resume(L, resume_preemptible(L, co, 0, ctx, resume_k));
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "coroutine");
    return finish_resume(L, resume_preemptible(L, co, lua_gettop(L) - 1, 0, resume_k));
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
    lua_pushcfunction(L, co_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pop(L, 2);
}
