/* log.c: the `log` module (see log.h): record formatting, colours on TTYs,
 * JSON encoding. */
#include "log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "scheduler.h"

enum { LV_DEBUG, LV_INFO, LV_WARN, LV_ERROR, LV_COUNT };

static const char *const level_names[LV_COUNT + 1] = {"debug", "info", "warn", "error", NULL};
static const char *const level_tags[LV_COUNT] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
static const char *const level_colours[LV_COUNT] = {"\033[2m", "\033[32m", "\033[33m",
                                                    "\033[1;31m"};
#define RESET "\033[0m"
#define JSON_DEPTH 32

typedef struct logcfg {
    int level;     /* records below it are dropped */
    int json;      /* one JSON object per line */
    int color_err; /* stderr is a TTY and colours are wanted */
    int color_out; /* the same for stdout */
} logcfg;

static logcfg *cfg(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int parse_level(const char *s)
{
    for (int i = 0; i < LV_COUNT; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return LV_WARN;
    return -1;
}

/* ---- JSON ---- */

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned c = p[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else
        return 0;
    if (len > avail || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    return len;
}

static void json_string(luaL_Buffer *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    luaL_addchar(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(b, '\\');
            luaL_addchar(b, (char)c);
            i++;
        } else if (c == '\n') {
            luaL_addstring(b, "\\n");
            i++;
        } else if (c == '\t') {
            luaL_addstring(b, "\\t");
            i++;
        } else if (c == '\r') {
            luaL_addstring(b, "\\r");
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            luaL_addlstring(b, u, sizeof u);
            i++;
        } else if (c < 0x80) {
            luaL_addchar(b, (char)c);
            i++;
        } else {
            /* keep valid UTF-8 sequences; replace stray bytes by U+FFFD */
            size_t len = utf8_len((const unsigned char *)s + i, n - i);
            int ok = len > 0;
            if (ok) {
                luaL_addlstring(b, s + i, len);
                i += len;
            } else {
                luaL_addstring(b, "\\ufffd");
                i++;
            }
        }
    }
    luaL_addchar(b, '"');
}

/* Pushes the JSON text of the value at idx (absolute index). Every
 * luaL_Buffer here is used with its box on top of the stack: nested values
 * are encoded into strings of their own first. */
static void json_push(lua_State *L, int idx, int depth);

static void json_push_string(lua_State *L, const char *s, size_t n)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    json_string(&b, s, n);
    luaL_pushresult(&b);
}

static int is_array(lua_State *L, int idx, lua_Integer *len)
{
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
            lua_pop(L, 1);
            return 0;
        }
        count++;
    }
    *len = n;
    return count == n && n > 0;
}

/* Pushes ",\"k\":v" for each string key of the table at idx not in skip
 * (comma first unless first_plain), concatenated. */
static void json_members(lua_State *L, int idx, int depth, const char *const *skip, int first_plain)
{
    lua_newtable(L);
    int t = lua_gettop(L), m = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int v = lua_gettop(L);
        int skipped = 0;
        if (skip) {
            if (lua_type(L, v - 1) != LUA_TSTRING)
                skipped = 1;
            for (int i = 0; !skipped && skip[i]; i++)
                skipped = strcmp(lua_tostring(L, v - 1), skip[i]) == 0;
        }
        if (!skipped) {
            lua_pushvalue(L, v - 1);
            size_t kn;
            const char *k = luaL_tolstring(L, -1, &kn);
            json_push_string(L, k, kn);
            lua_replace(L, -3);
            lua_pop(L, 1); /* key json */
            lua_pushliteral(L, ":");
            json_push(L, v, depth + 1);
            lua_concat(L, 3);
            lua_rawseti(L, t, ++m);
        }
        lua_settop(L, v - 1);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= m; i++) {
        if (i > 1 || !first_plain)
            luaL_addchar(&b, ',');
        lua_rawgeti(L, t, i);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    lua_remove(L, t);
}

static void json_push(lua_State *L, int idx, int depth)
{
    luaL_checkstack(L, 8, "json");
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TNONE:
        lua_pushliteral(L, "null");
        return;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            lua_pushfstring(L, "%I", lua_tointeger(L, idx));
        } else {
            double d = lua_tonumber(L, idx);
            char num[32];
            if (isfinite(d))
                snprintf(num, sizeof num, "%.14g", d);
            else
                snprintf(num, sizeof num, "null");
            lua_pushstring(L, num);
        }
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        json_push_string(L, s, n);
        return;
    }
    case LUA_TTABLE:
        break;
    default: {
        size_t n;
        const char *s = luaL_tolstring(L, idx, &n);
        json_push_string(L, s, n);
        lua_remove(L, -2);
        return;
    }
    }
    if (depth >= JSON_DEPTH) {
        lua_pushliteral(L, "null");
        return;
    }
    lua_Integer n;
    if (is_array(L, idx, &n)) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, '[');
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1)
                luaL_addchar(&b, ',');
            lua_rawgeti(L, idx, i);
            json_push(L, lua_gettop(L), depth + 1);
            lua_remove(L, -2);
            luaL_addvalue(&b);
        }
        luaL_addchar(&b, ']');
        luaL_pushresult(&b);
        return;
    }
    lua_pushliteral(L, "{");
    json_members(L, idx, depth, NULL, 1);
    lua_pushliteral(L, "}");
    lua_concat(L, 3);
}

/* ---- records ---- */

static void now_parts(struct tm *tm, int *ms, int utc)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t t = ts.tv_sec;
    if (utc)
        gmtime_r(&t, tm);
    else
        localtime_r(&t, tm);
    *ms = (int)(ts.tv_nsec / 1000000);
}

/* Pushes the task label and the goroutine id of L's goroutine (nil when
 * absent). */
static void push_context(lua_State *L)
{
    gor *g = gor_of(L);
    scope *sc = g ? g->sc : NULL;
    while (sc && !scope_has_label(sc))
        sc = sc->parent;
    if (sc)
        lua_rawgeti(L, LUA_REGISTRYINDEX, scope_label_ref(sc));
    else
        lua_pushnil(L);
    if (g)
        lua_pushinteger(L, (lua_Integer)g->id);
    else
        lua_pushnil(L);
}

/* Writes one record. Stack: msg at msg_idx; fields table (or nil) at
 * fields_idx; task and goroutine values at task_idx, task_idx + 1. */
static void emit(lua_State *L, logcfg *c, int level, int msg_idx, int fields_idx, int task_idx)
{
    luaL_Buffer b;
    struct tm tm;
    int ms;
    now_parts(&tm, &ms, c->json);
    char ts[48];
    size_t mlen;
    const char *msg = lua_tolstring(L, msg_idx, &mlen);
    if (c->json) {
        static const char *const fixed[] = {"task", "goroutine", "ts", "level", "msg", NULL};
        json_push(L, task_idx, 0);
        json_push(L, task_idx + 1, 0);
        if (lua_istable(L, fields_idx))
            json_members(L, fields_idx, 0, fixed, 0);
        else
            lua_pushliteral(L, "");
        int enc = lua_gettop(L) - 2; /* task, goroutine, fields */
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        char head[128];
        snprintf(head, sizeof head, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"msg\":", ts, ms,
                 level_names[level]);
        lua_pushstring(L, head);
        json_push_string(L, msg, mlen);
        lua_pushliteral(L, ",\"task\":");
        lua_pushvalue(L, enc);
        lua_pushliteral(L, ",\"goroutine\":");
        lua_pushvalue(L, enc + 1);
        lua_pushvalue(L, enc + 2);
        lua_pushliteral(L, "}\n");
        lua_concat(L, 8);
        lua_replace(L, enc);
        lua_settop(L, enc);
    } else {
        luaL_buffinit(L, &b);
        int col = c->color_err;
        strftime(ts, sizeof ts, "%H:%M:%S", &tm);
        if (col)
            luaL_addstring(&b, "\033[2m");
        char stamp[64];
        snprintf(stamp, sizeof stamp, "%s.%03d ", ts, ms);
        luaL_addstring(&b, stamp);
        if (col) {
            luaL_addstring(&b, RESET);
            luaL_addstring(&b, level_colours[level]);
        }
        luaL_addstring(&b, level_tags[level]);
        if (col)
            luaL_addstring(&b, RESET);
        luaL_addchar(&b, ' ');
        int has_task = !lua_isnil(L, task_idx), has_g = !lua_isnil(L, task_idx + 1);
        if (has_task || has_g) {
            if (col)
                luaL_addstring(&b, "\033[36m");
            luaL_addchar(&b, '[');
            if (has_task) {
                lua_pushvalue(L, task_idx);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(&b);
            }
            if (has_g) {
                lua_pushfstring(L, "%sg%I", has_task ? " " : "",
                                (lua_Integer)lua_tointeger(L, task_idx + 1));
                luaL_addvalue(&b);
            }
            luaL_addstring(&b, "] ");
            if (col)
                luaL_addstring(&b, RESET);
        }
        luaL_addlstring(&b, msg, mlen);
        luaL_addchar(&b, '\n');
        luaL_pushresult(&b);
    }
    size_t n;
    const char *line = lua_tolstring(L, -1, &n);
    fwrite(line, 1, n, stderr);
    fflush(stderr);
    lua_pop(L, 1);
}

/* log.<level>(...): message = arguments joined by spaces. */
static int log_at(lua_State *L, int level)
{
    logcfg *c = cfg(L);
    if (level < c->level)
        return 0;
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    int msg = lua_gettop(L);
    lua_pushnil(L); /* no fields */
    push_context(L);
    emit(L, c, level, msg, msg + 1, msg + 2);
    return 0;
}

static int l_debug(lua_State *L)
{
    return log_at(L, LV_DEBUG);
}
static int l_info(lua_State *L)
{
    return log_at(L, LV_INFO);
}
static int l_warn(lua_State *L)
{
    return log_at(L, LV_WARN);
}
static int l_error(lua_State *L)
{
    return log_at(L, LV_ERROR);
}

static int l_event(lua_State *L)
{
    logcfg *c = cfg(L);
    int level = luaL_checkoption(L, 1, NULL, level_names);
    luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    if (level < c->level)
        return 0;
    push_context(L); /* 4, 5 */
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "task") != LUA_TNIL) {
            if (lua_type(L, -1) == LUA_TBOOLEAN) { /* task = false: no task context */
                lua_pop(L, 1);
                lua_pushnil(L);
            }
            lua_replace(L, 4);
        } else {
            lua_pop(L, 1);
        }
        if (lua_getfield(L, 3, "goroutine") != LUA_TNIL)
            lua_replace(L, 5);
        else
            lua_pop(L, 1);
    }
    emit(L, c, level, 2, 3, 4);
    return 0;
}

static int l_enabled(lua_State *L)
{
    int level = luaL_checkoption(L, 1, NULL, level_names);
    lua_pushboolean(L, level >= cfg(L)->level);
    return 1;
}

static int l_configure(lua_State *L)
{
    logcfg *c = cfg(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    if (lua_getfield(L, 1, "level") != LUA_TNIL) {
        const char *s = luaL_checkstring(L, -1);
        int lv = parse_level(s);
        if (lv < 0)
            return luaL_error(L, "invalid log level '%s' (expected debug, info, warn or error)", s);
        c->level = lv;
    }
    if (lua_getfield(L, 1, "format") != LUA_TNIL) {
        const char *s = luaL_checkstring(L, -1);
        if (strcmp(s, "json") == 0)
            c->json = 1;
        else if (strcmp(s, "text") == 0)
            c->json = 0;
        else
            return luaL_error(L, "invalid log format '%s' (expected text or json)", s);
    }
    return 0;
}

static int l_json(lua_State *L)
{
    lua_settop(L, 1);
    json_push(L, 1, 0);
    return 1;
}

static int l_paint(lua_State *L)
{
    static const char *const styles[] = {"red", "green", "yellow", "cyan", "dim", "bold", NULL};
    static const char *const codes[] = {"\033[31m", "\033[32m", "\033[33m",
                                        "\033[36m", "\033[2m",  "\033[1m"};
    static const char *const streams[] = {"stdout", "stderr", NULL};
    logcfg *c = cfg(L);
    luaL_checkstring(L, 1);
    int style = luaL_checkoption(L, 2, NULL, styles);
    int stream = luaL_checkoption(L, 3, "stdout", streams);
    if (!(stream == 0 ? c->color_out : c->color_err) || c->json) {
        lua_settop(L, 1);
        return 1;
    }
    lua_pushfstring(L, "%s%s" RESET, codes[style], lua_tostring(L, 1));
    return 1;
}

static int want_colour(int fd)
{
    const char *nc = getenv("NO_COLOR");
    if (nc && *nc)
        return 0;
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0)
        return 0;
    return isatty(fd);
}

int luaopen_mutirao_log(lua_State *L)
{
    static const luaL_Reg funcs[] = {{"debug", l_debug},
                                     {"info", l_info},
                                     {"warn", l_warn},
                                     {"error", l_error},
                                     {"_event", l_event},
                                     {"_enabled", l_enabled},
                                     {"_configure", l_configure},
                                     {"_json", l_json},
                                     {"_paint", l_paint},
                                     {NULL, NULL}};
    luaL_newlibtable(L, funcs);
    logcfg *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->level = LV_INFO;
    c->json = 0;
    c->color_err = want_colour(STDERR_FILENO);
    c->color_out = want_colour(STDOUT_FILENO);
    luaL_setfuncs(L, funcs, 1);
    return 1;
}

void log_global_open(lua_State *L, const char *format, const char *level)
{
    luaL_requiref(L, "log", luaopen_mutirao_log, 1);
    lua_getfield(L, -1, "_configure");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, format);
    lua_setfield(L, -2, "format");
    lua_pushstring(L, level);
    lua_setfield(L, -2, "level");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) /* a bad level: the defaults stay */
        lua_pop(L, 1);
    lua_pop(L, 1);
}
