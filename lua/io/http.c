/* http.c: the `http` Lua module: get, post, put, patch, delete, head and
 * request on libcurl, waiting the goroutine way (see http.h).
 *
 * A call checks its arguments, builds a curl easy handle owned by a request
 * userdata marked to-be-closed on the caller's stack, starts it on the VM's
 * curl multi handle (curl_uv.c) and parks the caller. The transfer's end
 * wakes it; the continuation builds the response table. A goroutine killed
 * while it waits (task timeout, goroutine.timeout) closes the userdata,
 * which takes the transfer out of the multi handle. */
#include "http.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "curl_uv.h"
#include "scheduler.h"

#define REQ_TNAME "mutirao.http_request"
#define HEADERS_TNAME "mutirao.http_headers"
#define DEFAULT_TIMEOUT_S 30.0
#define MAX_REDIRS 10L
#ifndef MUTIRAO_VERSION
#define MUTIRAO_VERSION "0"
#endif

enum { REQ_NEW, REQ_RUNNING, REQ_DONE };

typedef struct membuf {
    char *p;
    size_t n, cap;
} membuf;

/* One request; the userdata owns everything it points to. */
typedef struct hreq {
    curluv_xfer x; /* x.easy: the transfer */
    sched *s;
    glist waiters; /* the caller, while it waits */
    int state;
    CURLcode rc;
    struct curl_slist *hdrs;
    membuf body;
    char *url; /* as given, for messages */
    char method[16];
    char err[CURL_ERROR_SIZE];
} hreq;

/* The arguments of a call, checked. */
typedef struct hargs {
    const char *url;
    size_t urllen;
    const char *body;
    size_t bodylen;
    double timeout_s;
    int follow;
    const char *ca_file;
    int opts; /* stack index of the options table, or 0 */
    int oarg; /* its argument number, for messages */
    int hdrs; /* stack index of the headers table, or 0 */
    char method[16];
} hargs;

static sched *S(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* ---- the request userdata ---- */

static void req_release(hreq *r)
{
    if (r->x.c)
        curluv_remove(&r->x);
    if (r->x.easy) {
        curl_easy_cleanup(r->x.easy);
        r->x.easy = NULL;
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    free(r->body.p);
    r->body.p = NULL;
    r->body.n = r->body.cap = 0;
    free(r->url);
    r->url = NULL;
}

static int req_gc(lua_State *L)
{
    req_release(luaL_checkudata(L, 1, REQ_TNAME));
    return 0;
}

static void req_done(curluv_xfer *x, CURLcode rc)
{
    hreq *r = (hreq *)x; /* x is the first member */
    r->rc = rc;
    r->state = REQ_DONE;
    sched_ready_all(r->s, &r->waiters);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    membuf *b = ud;
    size_t len = size * n;
    if (len > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < len) {
            if (cap > ((size_t)-1) / 2)
                return 0;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p)
            return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return len;
}

/* ---- arguments ---- */

static int fielderror(lua_State *L, hargs *a, const char *field, const char *expected)
{
    lua_getfield(L, a->opts, field);
    const char *got = luaL_typename(L, -1);
    return luaL_argerror(
        L, a->oarg, lua_pushfstring(L, "field '%s': %s expected, got %s", field, expected, got));
}

static const char *check_str_field(lua_State *L, hargs *a, const char *field, size_t *len)
{
    int t = lua_getfield(L, a->opts, field);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TSTRING)
        fielderror(L, a, field, "string");
    const char *s = lua_tolstring(L, -1, len);
    lua_pop(L, 1); /* still anchored by the options table */
    return s;
}

static int has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 1;
    return 0;
}

static void set_method(lua_State *L, hargs *a, const char *m, size_t n, int arg)
{
    if (n == 0 || n >= sizeof a->method)
        luaL_argerror(L, arg, "invalid HTTP method");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (!isalpha(c) && c != '-')
            luaL_argerror(L, arg, lua_pushfstring(L, "invalid HTTP method '%s'", m));
        a->method[i] = (char)toupper(c);
    }
    a->method[n] = 0;
}

/* A misspelt option is an error, not silently ignored. */
static void check_names(lua_State *L, hargs *a, int with_target)
{
    static const char *const known[] = {"timeout", "headers", "body", "follow_redirects",
                                        "ca_file", "method",  "url",  NULL};
    int nknown = with_target ? 7 : 5;
    lua_pushnil(L);
    while (lua_next(L, a->opts)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; i < nknown && !ok; i++)
                ok = strcmp(k, known[i]) == 0;
        }
        if (!ok) {
            lua_pushvalue(L, -1);
            luaL_argerror(L, a->oarg,
                          lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, NULL)));
        }
    }
}

/* Reads the options table at a->opts (may be 0). */
static void read_opts(lua_State *L, hargs *a, int with_target)
{
    a->timeout_s = DEFAULT_TIMEOUT_S;
    a->follow = 1;
    if (!a->opts)
        return;
    check_names(L, a, with_target);
    int t = lua_getfield(L, a->opts, "timeout");
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            fielderror(L, a, "timeout", "number");
        double v = lua_tonumber(L, -1);
        if (!(v > 0))
            luaL_argerror(L, a->oarg, "field 'timeout': positive number of seconds expected");
        a->timeout_s = v;
    }
    lua_pop(L, 1);
    t = lua_getfield(L, a->opts, "headers");
    if (t != LUA_TNIL && t != LUA_TTABLE)
        fielderror(L, a, "headers", "table");
    if (t == LUA_TTABLE)
        a->hdrs = lua_gettop(L); /* stays on the stack */
    else
        lua_pop(L, 1);
    size_t n;
    const char *body = check_str_field(L, a, "body", &n);
    if (body) {
        a->body = body;
        a->bodylen = n;
    }
    t = lua_getfield(L, a->opts, "follow_redirects");
    if (t != LUA_TNIL && t != LUA_TBOOLEAN)
        fielderror(L, a, "follow_redirects", "boolean");
    if (t == LUA_TBOOLEAN)
        a->follow = lua_toboolean(L, -1);
    lua_pop(L, 1);
    a->ca_file = check_str_field(L, a, "ca_file", &n);
}

static void check_url(lua_State *L, hargs *a, int idx, int arg, const char *field)
{
    if (lua_type(L, idx) != LUA_TSTRING) {
        if (field)
            luaL_argerror(L, arg,
                          lua_pushfstring(L, "field '%s': string expected, got %s", field,
                                          luaL_typename(L, idx)));
        luaL_typeerror(L, arg, "string");
    }
    a->url = lua_tolstring(L, idx, &a->urllen);
    if (a->urllen == 0 || strlen(a->url) != a->urllen || has_ctl(a->url, a->urllen))
        luaL_argerror(L, arg, "invalid URL");
}

/* Appends "Name: value" lines from the headers table to r->hdrs. */
static void build_headers(lua_State *L, hargs *a, hreq *r)
{
    int has_expect = 0;
    if (a->hdrs) {
        lua_pushnil(L);
        while (lua_next(L, a->hdrs)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_argerror(L, a->oarg, "field 'headers': names must be strings");
            size_t kn, vn;
            const char *k = lua_tolstring(L, -2, &kn);
            int vt = lua_type(L, -1);
            if (vt != LUA_TSTRING && vt != LUA_TNUMBER)
                luaL_argerror(
                    L, a->oarg,
                    lua_pushfstring(L, "field 'headers': value of '%s': string expected, got %s", k,
                                    luaL_typename(L, -1)));
            lua_pushvalue(L, -1);
            const char *v = lua_tolstring(L, -1, &vn); /* a copy: no lua_next confusion */
            if (kn == 0 || has_ctl(k, kn) || memchr(k, ':', kn) || has_ctl(v, vn))
                luaL_argerror(L, a->oarg,
                              lua_pushfstring(L, "field 'headers': invalid header '%s'", k));
            if (kn == 6 && strncasecmp(k, "expect", 6) == 0)
                has_expect = 1;
            /* "Name;" is curl's way to send a header with an empty value */
            lua_pushfstring(L, vn ? "%s: %s" : "%s;", k, v);
            struct curl_slist *l = curl_slist_append(r->hdrs, lua_tostring(L, -1));
            if (!l)
                luaL_error(L, "not enough memory");
            r->hdrs = l;
            lua_pop(L, 3);
        }
    }
    if (!has_expect) {
        /* no "Expect: 100-continue" round trip before large bodies */
        struct curl_slist *l = curl_slist_append(r->hdrs, "Expect:");
        if (!l)
            luaL_error(L, "not enough memory");
        r->hdrs = l;
    }
}

/* ---- the call ---- */

static int request_k(lua_State *L, int status, lua_KContext ctx);

static void push_headers(lua_State *L, hreq *r)
{
    lua_newtable(L);
    luaL_setmetatable(L, HEADERS_TNAME);
    struct curl_header *h = NULL;
    luaL_Buffer b;
    while ((h = curl_easy_nextheader(r->x.easy, CURLH_HEADER, -1, h))) {
        size_t n = strlen(h->name);
        char *low = luaL_buffinitsize(L, &b, n);
        for (size_t i = 0; i < n; i++)
            low[i] = (char)tolower((unsigned char)h->name[i]);
        luaL_pushresultsize(&b, n);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) == LUA_TSTRING) /* repeated: values joined as HTTP allows */
            lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), h->value);
        else
            lua_pushstring(L, h->value);
        lua_remove(L, -2);
        lua_rawset(L, -3);
    }
}

static int raise_failure(lua_State *L, hreq *r)
{
    long oserr = 0;
    curl_easy_getinfo(r->x.easy, CURLINFO_OS_ERRNO, &oserr);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    size_t n = strlen(r->err);
    while (n > 0 && (r->err[n - 1] == '\n' || r->err[n - 1] == '\r'))
        r->err[--n] = 0;
    /* curl's own message when it wrote one, else the code's description */
    lua_pushfstring(L, "%s %s failed: %s", r->method, r->url,
                    n ? r->err : curl_easy_strerror(r->rc));
    luaL_addvalue(&b);
    if (oserr > 0) {
        char ebuf[128];
        const char *os = strerror_r((int)oserr, ebuf, sizeof ebuf); /* GNU: thread-safe */
        if (!strstr(r->err, os)) {
            luaL_addstring(&b, " (");
            luaL_addstring(&b, os);
            luaL_addchar(&b, ')');
        }
    }
    luaL_pushresult(&b);
    req_release(r);
    return lua_error(L);
}

static int request_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    hreq *r = (hreq *)ctx;
    if (r->state != REQ_DONE) /* woken for another reason: wait on */
        return sched_wait(L, r->s, &r->waiters, 0, ctx, request_k);
    if (r->rc != CURLE_OK)
        return raise_failure(L, r);
    long code = 0;
    curl_easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)code);
    lua_setfield(L, -2, "status_code");
    lua_pushlstring(L, r->body.p ? r->body.p : "", r->body.n);
    lua_setfield(L, -2, "body");
    push_headers(L, r);
    lua_setfield(L, -2, "headers");
    req_release(r);
    return 1;
}

/* Starts the request described by a (its strings live on the stack) and
 * waits for it. */
static int start(lua_State *L, hargs *a)
{
    sched *s = S(L);
    curluv *c = curluv_get(L, s); /* before the request: finalised after it */
    hreq *r = lua_newuserdatauv(L, sizeof *r, 0);
    memset(r, 0, sizeof *r);
    luaL_setmetatable(L, REQ_TNAME);
    r->s = s;
    glist_init(&r->waiters);
    memcpy(r->method, a->method, sizeof r->method);
    r->url = malloc(a->urllen + 1);
    r->x.easy = curl_easy_init();
    if (!r->url || !r->x.easy) {
        req_release(r);
        return luaL_error(L, "not enough memory");
    }
    memcpy(r->url, a->url, a->urllen + 1);
    r->x.done = req_done;
    build_headers(L, a, r);
    CURL *e = r->x.easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, a->follow ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRS);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "mutirao/" MUTIRAO_VERSION);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
    if (isfinite(a->timeout_s) && a->timeout_s < 1e9) {
        long ms = (long)ceil(a->timeout_s * 1000.0);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    }
    if (a->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file);
    if (!strcmp(a->method, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(a->method, "GET") && !a->body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(a->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, a->method);
        if (a->body || !strcmp(a->method, "POST")) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->bodylen);
            if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, a->body ? a->body : "") != CURLE_OK) {
                req_release(r);
                return luaL_error(L, "not enough memory");
            }
        }
    }
    if (curluv_add(c, &r->x) != 0) {
        req_release(r);
        return luaL_error(L, "%s %s failed: cannot start the transfer", a->method, a->url);
    }
    r->state = REQ_RUNNING;
    /* keep only the request, to be closed if the caller is killed */
    lua_replace(L, 1);
    lua_settop(L, 1);
    lua_toclose(L, 1);
    return sched_wait(L, s, &r->waiters, 0, (lua_KContext)r, request_k);
}

static void opts_at(lua_State *L, hargs *a, int arg)
{
    if (lua_isnoneornil(L, arg))
        return;
    luaL_checktype(L, arg, LUA_TTABLE);
    a->opts = arg;
    a->oarg = arg;
}

static int call(lua_State *L, const char *method, int body_arg)
{
    hargs a;
    memset(&a, 0, sizeof a);
    check_url(L, &a, 1, 1, NULL);
    set_method(L, &a, method, strlen(method), 1);
    int oarg = 2;
    if (body_arg && lua_type(L, 2) == LUA_TSTRING) { /* post(url, body, opts) */
        oarg = 3;
    } else if (body_arg && !lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TTABLE) {
        luaL_typeerror(L, 2, "string (body) or table (options)");
    }
    opts_at(L, &a, oarg);
    lua_settop(L, oarg);
    read_opts(L, &a, 0);
    if (oarg == 3) {
        a.body = lua_tolstring(L, 2, &a.bodylen);
    }
    return start(L, &a);
}

static int h_get(lua_State *L)
{
    return call(L, "GET", 0);
}

static int h_head(lua_State *L)
{
    return call(L, "HEAD", 0);
}

static int h_delete(lua_State *L)
{
    return call(L, "DELETE", 1);
}

static int h_post(lua_State *L)
{
    return call(L, "POST", 1);
}

static int h_put(lua_State *L)
{
    return call(L, "PUT", 1);
}

static int h_patch(lua_State *L)
{
    return call(L, "PATCH", 1);
}

/* request{method=, url=, body=, headers=, timeout=, ...} */
static int h_request(lua_State *L)
{
    hargs a;
    memset(&a, 0, sizeof a);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    a.opts = 1;
    a.oarg = 1;
    lua_getfield(L, 1, "url");
    check_url(L, &a, 2, 1, "url");
    int t = lua_getfield(L, 1, "method");
    if (t == LUA_TNIL) {
        set_method(L, &a, "GET", 3, 1);
    } else if (t == LUA_TSTRING) {
        size_t n;
        const char *m = lua_tolstring(L, -1, &n);
        set_method(L, &a, m, n, 1);
    } else {
        fielderror(L, &a, "method", "string");
    }
    lua_pop(L, 1);
    read_opts(L, &a, 1);
    return start(L, &a);
}

/* headers[name]: names are stored lower-case; any case finds them. */
static int headers_index(lua_State *L)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        return 0;
    size_t n;
    const char *k = lua_tolstring(L, 2, &n);
    luaL_Buffer b;
    char *low = luaL_buffinitsize(L, &b, n);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)k[i]);
    luaL_pushresultsize(&b, n);
    lua_rawget(L, 1);
    return 1;
}

void http_headers_metatable(lua_State *L)
{
    if (luaL_newmetatable(L, HEADERS_TNAME)) {
        lua_pushcfunction(L, headers_index);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

int http_open(lua_State *L, sched *s)
{
    static const luaL_Reg funcs[] = {{"get", h_get},         {"post", h_post},     {"put", h_put},
                                     {"patch", h_patch},     {"delete", h_delete}, {"head", h_head},
                                     {"request", h_request}, {NULL, NULL}};
    if (luaL_newmetatable(L, REQ_TNAME)) {
        lua_pushcfunction(L, req_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, req_gc);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    http_headers_metatable(L);
    luaL_newlibtable(L, funcs);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    return 1;
}
