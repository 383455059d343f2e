/* rtlog.c: the runtime's one log sink (see rtlog.h). The only place of the
 * runtime that writes to stderr. */
#include "rtlog.h"

#include <stdarg.h>
#include <stdio.h>

#include <lauxlib.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void to_stderr(int level, uint64_t gid, const char *msg)
{
    if (level == RTLOG_ERROR && gid)
        fprintf(stderr, "goroutine %llu failed: %s\n", (unsigned long long)gid, msg);
    else if (level == RTLOG_ERROR)
        fprintf(stderr, "%s\n", msg);
    else
        fprintf(stderr, "mutirao: %s\n", msg);
    fflush(stderr);
}

void rtlog_value(sched *s, int level, uint64_t gid, int label_ref)
{
    lua_State *T = sched_scratch(s);
    if (level < RTLOG_DEBUG || level > RTLOG_ERROR)
        level = RTLOG_ERROR;
    if (s->errh_ref != LUA_NOREF) {
        lua_rawgeti(T, LUA_REGISTRYINDEX, s->errh_ref);
        lua_pushvalue(T, -2);
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
            lua_pop(T, 1);
            return;
        }
        to_stderr(
            RTLOG_ERROR, 0,
            lua_pushfstring(T, "goroutine error handler failed: %s", luaL_tolstring(T, -1, NULL)));
        lua_pop(T, 3);
    }
    to_stderr(level, gid, luaL_tolstring(T, -1, NULL));
    lua_pop(T, 2);
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
    to_stderr(level, 0, msg);
}
