/* rtlog.c: the runtime's one log sink (see rtlog.h). The only place of the
 * runtime that writes to stderr. */
#include "rtlog.h"

#include <stdarg.h>
#include <stdio.h>

#include <lauxlib.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int tostring_k(lua_State *L)
{
    luaL_tolstring(L, 1, NULL);
    return 1;
}

const char *rtlog_tostring(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        lua_pushvalue(L, idx);
        return lua_tostring(L, -1);
    }
    if (lua_checkstack(L, 3)) {
        lua_pushcfunction(L, tostring_k);
        lua_pushvalue(L, idx);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
            return lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    /* (lua_pushfstring may raise only for memory: then the message is lost) */
    return lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
}

/* label: "[TASK] " or "" (the task the record is about) */
static void to_stderr(int level, uint64_t gid, const char *label, const char *msg)
{
    if (level == RTLOG_ERROR && gid)
        fprintf(stderr, "%sgoroutine %llu failed: %s\n", label, (unsigned long long)gid, msg);
    else if (level == RTLOG_ERROR)
        fprintf(stderr, "%s%s\n", label, msg);
    else
        fprintf(stderr, "mutirao: %s%s\n", label, msg);
    fflush(stderr);
}

void rtlog_value(sched *s, int level, uint64_t gid, int label_ref)
{
    lua_State *T = sched_scratch(s);
    if (level < RTLOG_DEBUG || level > RTLOG_ERROR)
        level = RTLOG_ERROR;
    int value = lua_gettop(T);
    if (s->errh_ref != LUA_NOREF) {
        lua_rawgeti(T, LUA_REGISTRYINDEX, s->errh_ref);
        lua_pushvalue(T, value);
        if (gid)
            lua_pushinteger(T, (lua_Integer)gid);
        else
            lua_pushnil(T);
        if (label_ref != LUA_NOREF)
            lua_rawgeti(T, LUA_REGISTRYINDEX, label_ref);
        else
            lua_pushnil(T);
        lua_pushstring(T, level_names[level]);
        if (lua_pcall(T, 4, 0, 0) == LUA_OK) {
            lua_settop(T, value - 1);
            return;
        }
        to_stderr(RTLOG_ERROR, 0, "",
                  lua_pushfstring(T, "goroutine error handler failed: %s", rtlog_tostring(T, -1)));
        lua_settop(T, value);
    }
    const char *label = "";
    if (label_ref != LUA_NOREF) {
        lua_rawgeti(T, LUA_REGISTRYINDEX, label_ref);
        label = lua_pushfstring(T, "[%s] ", rtlog_tostring(T, -1));
    }
    to_stderr(level, gid, label, rtlog_tostring(T, value));
    lua_settop(T, value - 1);
}

void rtlog(sched *s, int level, uint64_t gid, int label_ref, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lua_pushstring(sched_scratch(s), msg);
    rtlog_value(s, level, gid, label_ref);
}

void rtlog_process(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    to_stderr(level, 0, "", msg);
}
