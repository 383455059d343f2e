/*
** test-codec.c: tests of the closure codec (shared/codec/codec.h). Values are
** encoded in one lua_State and decoded in another, as a pool does.
** Run all: test-codec; run one: test-codec NAME.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "lua_test.h"
#include "test.h"

/* ---- helpers ----------------------------------------------------------- */

static codec_limits trusted(void)
{
    codec_limits lim;
    codec_limits_default(&lim);
    lim.allow_bytecode = 1;
    lim.allow_require = 1;
    return lim;
}

static char errbuf[512];

/* Runs `code` in A (a chunk named chunkname returning values), encodes all
   its results, decodes them in B (with lim). Returns the codec result; on
   success B's stack has the values on top and *n their count. */
static int transfer_named(lua_State *A, lua_State *B, const char *code, const char *chunkname,
                          const codec_limits *lim, int *n)
{
    int top = lua_gettop(A);
    if (luaL_loadbuffer(A, code, strlen(code), chunkname) != LUA_OK ||
        lua_pcall(A, 0, LUA_MULTRET, 0) != LUA_OK) {
        fprintf(stderr, "Lua error in A: %s\n", lua_tostring(A, -1));
        exit(2);
    }
    int k = lua_gettop(A) - top;
    char *buf;
    size_t len;
    int rc = codec_encode(A, top + 1, k, NULL, &buf, &len, errbuf, sizeof errbuf);
    if (lua_gettop(A) != top + k) {
        fprintf(stderr, "encode changed the stack of A\n");
        exit(2);
    }
    lua_settop(A, top);
    if (rc != 0)
        return rc;
    int btop = lua_gettop(B);
    rc = codec_decode(B, buf, len, lim, n, errbuf, sizeof errbuf);
    free(buf);
    if (rc != 0 && lua_gettop(B) != btop) {
        fprintf(stderr, "failed decode left values on the stack\n");
        exit(2);
    }
    return rc;
}

static int transfer(lua_State *A, lua_State *B, const char *code, int *n)
{
    codec_limits lim = trusted();
    return transfer_named(A, B, code, "=sender", &lim, n);
}

/* Calls the Lua check `code` in B with the n values on top of B as `...`;
   the check returns true or raises. Returns 0 on success. */
static int check(lua_State *B, int n, const char *code)
{
    if (luaL_loadstring(B, code) != LUA_OK) {
        fprintf(stderr, "check does not compile: %s\n", lua_tostring(B, -1));
        lua_pop(B, 1 + n);
        return 1;
    }
    lua_insert(B, -n - 1);
    if (lua_pcall(B, n, 1, 0) != LUA_OK) {
        fprintf(stderr, "check failed: %s\n", lua_tostring(B, -1));
        lua_pop(B, 1);
        return 1;
    }
    int ok = lua_toboolean(B, -1);
    lua_pop(B, 1);
    if (!ok)
        fprintf(stderr, "check returned false\n");
    return !ok;
}

/* Encodes the values `code` returns in L; *buf must be freed. */
static int encode_code(lua_State *L, const char *code, char **buf, size_t *len)
{
    int top = lua_gettop(L);
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "Lua error: %s\n", lua_tostring(L, -1));
        exit(2);
    }
    int rc = codec_encode(L, top + 1, lua_gettop(L) - top, NULL, buf, len, errbuf, sizeof errbuf);
    lua_settop(L, top);
    return rc;
}

/* ---- round trips ------------------------------------------------------- */

static int test_scalars(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    ASSERT_EQ(transfer(A, B,
                       "return nil, true, false, 0, -1, math.mininteger, "
                       "math.maxinteger, 3, 3.0, -0.0, 1/0, -1/0, 0/0, 0.1, "
                       "'', 'a\\0b\\255', string.rep('x\\0', 40000), 2^53, "
                       "-129, 65536, 4294967296, nil",
                       &n),
              0);
    ASSERT_EQ(n, 22);
    ASSERT_EQ(check(B, n,
                    "local v = table.pack(...)\n"
                    "assert(v.n == 22)\n"
                    "assert(v[1] == nil and v[2] == true and v[3] == false)\n"
                    "assert(math.type(v[4]) == 'integer' and v[4] == 0)\n"
                    "assert(v[5] == -1 and math.type(v[5]) == 'integer')\n"
                    "assert(v[6] == math.mininteger and math.type(v[6]) == 'integer')\n"
                    "assert(v[7] == math.maxinteger and math.type(v[7]) == 'integer')\n"
                    "assert(math.type(v[8]) == 'integer' and v[8] == 3)\n"
                    "assert(math.type(v[9]) == 'float' and v[9] == 3.0)\n"
                    "assert(math.type(v[10]) == 'float' and 1/v[10] == -1/0)\n"
                    "assert(v[11] == 1/0 and v[12] == -1/0)\n"
                    "assert(v[13] ~= v[13])\n"
                    "assert(v[14] == 0.1)\n"
                    "assert(v[15] == '' and v[16] == 'a\\0b\\255' and #v[16] == 4)\n"
                    "assert(v[17] == string.rep('x\\0', 40000))\n"
                    "assert(math.type(v[18]) == 'float' and v[18] == 2^53)\n"
                    "assert(v[19] == -129 and v[20] == 65536 and v[21] == 4294967296)\n"
                    "assert(v[22] == nil)\n"
                    "return true"),
              0);
    /* every integer width at its edges, both signs */
    ASSERT_EQ(transfer(A, B,
                       "local t = {} for i = 0, 63 do local x = 1 << i "
                       "t[#t+1] = x t[#t+1] = x - 1 t[#t+1] = -x "
                       "t[#t+1] = -x - 1 end return t",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local t = ... local j = 1 for i = 0, 63 do local x = 1 << i "
                    "for _, e in ipairs{x, x - 1, -x, -x - 1} do "
                    "assert(t[j] == e and math.type(t[j]) == 'integer', j) "
                    "j = j + 1 end end return true"),
              0);
    /* nothing at all */
    ASSERT_EQ(transfer(A, B, "return", &n), 0);
    ASSERT_EQ(n, 0);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_tables(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    ASSERT_EQ(transfer(A, B,
                       "local shared = {v = 1}\n"
                       "local cyc = {} cyc.self = cyc\n"
                       "local k = {'key'}\n"
                       "local big = {} for i = 1, 70000 do big[i] = i end\n"
                       "return {1, 2, 3}, {x = 1, ['y z'] = {2}}, "
                       "{1, 2, nil, 4, x = 5, [10] = 6, [1.5] = 7, [true] = 8}, "
                       "{a = shared, b = shared}, cyc, {[k] = k}, {}, big, "
                       "shared",
                       &n),
              0);
    ASSERT_EQ(n, 9);
    ASSERT_EQ(check(B, n,
                    "local a, h, m, s, cyc, kk, e, big, shared = ...\n"
                    "assert(#a == 3 and a[1] == 1 and a[3] == 3)\n"
                    "assert(h.x == 1 and h['y z'][1] == 2)\n"
                    "assert(m[1] == 1 and m[2] == 2 and m[3] == nil and m[4] == 4)\n"
                    "assert(m.x == 5 and m[10] == 6 and m[1.5] == 7 and m[true] == 8)\n"
                    "assert(s.a == s.b and s.a.v == 1)\n"
                    "assert(s.a == shared)\n"
                    "assert(cyc.self == cyc)\n"
                    "local key, val = next(kk) assert(key == val and key[1] == 'key')\n"
                    "assert(next(e) == nil)\n"
                    "assert(#big == 70000 and big[70000] == 70000)\n"
                    "return true"),
              0);
    /* a mutation in B is not seen in A (values are copies) */
    LUA_RUN(A, "T = {1}");
    ASSERT_EQ(transfer(A, B, "return T", &n), 0);
    ASSERT_EQ(check(B, n, "local t = ... t[1] = 99 return true"), 0);
    LUA_RUN(A, "assert(T[1] == 1)");
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_functions(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    /* a function plus its arguments, upvalues of several kinds */
    ASSERT_EQ(transfer(A, B,
                       "local base, cfg = 10, {scale = 2}\n"
                       "local function f(a, b) return (a + b + base) * cfg.scale end\n"
                       "return f, 1, 2",
                       &n),
              0);
    ASSERT_EQ(n, 3);
    ASSERT_EQ(check(B, n, "local f, a, b = ... return f(a, b) == 26"), 0);

    /* shared upvalue between two nested closures */
    ASSERT_EQ(transfer(A, B,
                       "local function mk()\n"
                       "  local n = 0\n"
                       "  return function() n = n + 1 return n end,\n"
                       "         function() return n end\n"
                       "end\n"
                       "local inc, get = mk() inc()\n"
                       "INC, GET = inc, get\n"
                       "return {inc = inc, get = get}",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local t = ... assert(t.get() == 1)\n"
                    "assert(t.inc() == 2) assert(t.get() == 2)\n"
                    "assert(debug.upvalueid(t.inc, 1) == debug.upvalueid(t.get, 1))\n"
                    "return true"),
              0);
    LUA_RUN(A, "assert(GET() == 1)"); /* the sender's copy is untouched */

    /* recursion through an upvalue, nested prototypes, varargs */
    ASSERT_EQ(transfer(A, B,
                       "local function fact(n) if n < 2 then return 1 end "
                       "return n * fact(n - 1) end\n"
                       "local function adder(x) return function(y) return x + y end end\n"
                       "return fact, adder, function(...) return select('#', ...) end",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local fact, adder, cnt = ...\n"
                    "assert(fact(10) == 3628800)\n"
                    "assert(adder(2)(3) == 5)\n"
                    "assert(cnt(nil, nil, nil) == 3)\n"
                    "return true"),
              0);

    /* an argument that is also an upvalue stays one table */
    ASSERT_EQ(transfer(A, B,
                       "local acc = {}\n"
                       "return function(t) t[#t + 1] = 1 return #acc end, acc",
                       &n),
              0);
    ASSERT_EQ(check(B, n, "local f, acc = ... return f(acc) == 1"), 0);

    /* a table holding a closure that holds the table */
    ASSERT_EQ(transfer(A, B,
                       "local obj = {n = 1}\n"
                       "function obj.get() return obj.n end\n"
                       "return obj",
                       &n),
              0);
    ASSERT_EQ(check(B, n, "local o = ... o.n = 7 return o.get() == 7"), 0);

    /* tracebacks name the sender's file and line: dumps keep debug info */
    codec_limits lim = trusted();
    ASSERT_EQ(transfer_named(A, B,
                             "local x = 1\n"
                             "return function() error('boom ' .. x) end",
                             "@deploy.sloth", &lim, &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local f = ... local ok, e = pcall(f)\n"
                    "assert(not ok and e:find('deploy.sloth:2: boom 1', 1, true), e)\n"
                    "local i = debug.getinfo(f, 'S')\n"
                    "assert(i.short_src == 'deploy.sloth' and i.linedefined == 2)\n"
                    "return true"),
              0);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_env_globals(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    LUA_RUN(A, "who = 'A'");
    LUA_RUN(B, "who = 'B'");
    ASSERT_EQ(transfer(A, B,
                       "return function() counter = (counter or 0) + 1 "
                       "return who end, _G, _ENV",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local f, g, e = ...\n"
                    "assert(f() == 'B')\n"
                    "assert(counter == 1)\n"
                    "assert(g == _G and e == _G)\n"
                    "local name, v = debug.getupvalue(f, 1)\n"
                    "assert(name == '_ENV' and v == _G)\n"
                    "return true"),
              0);
    /* a receiver that decodes into a per-task proxy of its globals */
    LUA_RUN(B, "PROXY = setmetatable({}, {__index = _G})");
    lua_rawgeti(B, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* the real one */
    lua_getglobal(B, "PROXY");
    lua_rawseti(B, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    ASSERT_EQ(transfer(A, B, "local p = print return function() x = who return p end, print", &n),
              0);
    ASSERT_EQ(n, 2);
    lua_pushvalue(B, -n - 1);
    lua_rawseti(B, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* back to the real one */
    ASSERT_EQ(check(B, n,
                    "local f, p = ...\n"
                    "assert(p == print and f() == print)\n"
                    "assert(PROXY.x == 'B' and rawget(_G, 'x') == nil)\n"
                    "return true"),
              0);
    lua_pop(B, 1);
    /* two functions of one chunk share its _ENV box, and still do */
    ASSERT_EQ(transfer(A, B,
                       "local n = 0\n"
                       "local function a() n = n + 1 return who end\n"
                       "local function b() return who .. '!', n end\n"
                       "return a, b",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local a, b = ...\n"
                    "assert(a() == 'B' and select(2, b()) == 1)\n"
                    "local function id(f, name) for i = 1, 10 do\n"
                    "  if debug.getupvalue(f, i) == name then\n"
                    "    return debug.upvalueid(f, i) end end end\n"
                    "assert(id(a, '_ENV') == id(b, '_ENV'))\n"
                    "assert(id(a, 'n') == id(b, 'n'))\n"
                    "return true"),
              0);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_modules(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    const char *preload = "package.preload.greeter = function()\n"
                          "  LOADS = (LOADS or 0) + 1\n"
                          "  return {greet = function(n) return 'hi ' .. n end}\n"
                          "end";
    LUA_RUN(A, preload);
    LUA_RUN(B, preload);
    ASSERT_EQ(transfer(A, B,
                       "local g = require('greeter')\n"
                       "local fmt = string.format\n"
                       "return function(x) return fmt('%s/%d', g.greet(x), 7) end,"
                       " string.format, string, print, table.concat, g, "
                       "io.write, coroutine",
                       &n),
              0);
    ASSERT_EQ(n, 8);
    ASSERT_EQ(check(B, n,
                    "local f, sf, s, p, tc, g, w, co = ...\n"
                    "assert(f('x') == 'hi x/7')\n"
                    "assert(sf == string.format and s == string)\n"
                    "assert(p == print and tc == table.concat)\n"
                    "assert(g == package.loaded.greeter and LOADS == 1)\n"
                    "assert(w == io.write and co == coroutine)\n"
                    "return true"),
              0);

    /* without allow_require a module must already be loaded */
    lua_State *C = lua_test_vm();
    LUA_RUN(C, preload);
    codec_limits lim = trusted();
    lim.allow_require = 0;
    ASSERT_EQ(transfer_named(A, C, "return require('greeter')", "=s", &lim, &n), CODEC_EMODULE);
    ASSERT_CONTAINS(errbuf, "greeter");
    LUA_RUN(C, "require('greeter')");
    ASSERT_EQ(transfer_named(A, C, "return require('greeter')", "=s", &lim, &n), 0);
    ASSERT_EQ(check(C, n, "return ... == package.loaded.greeter"), 0);

    /* a module the receiver lacks */
    LUA_RUN(A, "package.preload.onlyA = function() return {f = print} end");
    ASSERT_EQ(transfer(A, B, "return require('onlyA')", &n), CODEC_EMODULE);
    ASSERT_CONTAINS(errbuf, "onlyA");

    /* the reverse map is rebuilt when package.loaded changes */
    codec_stats s1, s2;
    codec_stats_get(A, &s1);
    ASSERT_EQ(transfer(A, B, "return string", &n), 0);
    lua_pop(B, n);
    codec_stats_get(A, &s2);
    ASSERT_EQ(s2.modmap_builds, s1.modmap_builds); /* unchanged: cached */
    LUA_RUN(A, "package.loaded.newmod = {}");
    LUA_RUN(B, "package.loaded.newmod = {}");
    ASSERT_EQ(transfer(A, B, "return package.loaded.newmod", &n), 0);
    codec_stats_get(A, &s2);
    ASSERT_EQ(s2.modmap_builds, s1.modmap_builds + 1);
    ASSERT_EQ(check(B, n, "return ... == package.loaded.newmod"), 0);
    lua_close(A);
    lua_close(B);
    lua_close(C);
    return 0;
}

/* A "handle" userdata type: an id; B keeps a table id -> handle so that a
   handle arrives as the receiver's object for that id. */
#define HANDLE "test.handle"

static int handle_new(lua_State *L)
{
    lua_Integer id = luaL_checkinteger(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "test.handles");
    if (lua_rawgeti(L, -1, id) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    lua_Integer *p = lua_newuserdatauv(L, sizeof *p, 0);
    *p = id;
    luaL_setmetatable(L, HANDLE);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, id);
    return 1;
}

static int handle_enc(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    (void)call;
    lua_Integer *p = luaL_checkudata(L, idx, HANDLE);
    char b[32];
    int k = snprintf(b, sizeof b, "%lld", (long long)*p);
    lua_pushlstring(L, b, (size_t)k);
    return 0;
}

static int handle_dec(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)ud;
    (void)call;
    char b[32];
    if (len == 0 || len >= sizeof b)
        return -1;
    memcpy(b, data, len);
    b[len] = '\0';
    lua_pushcfunction(L, handle_new);
    lua_pushinteger(L, strtoll(b, NULL, 10));
    lua_call(L, 1, 1);
    return 0;
}

static void handle_setup(lua_State *L)
{
    luaL_newmetatable(L, HANDLE);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "test.handles");
    lua_pushcfunction(L, handle_new);
    lua_setglobal(L, "handle");
}

static int test_udata_hooks(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    handle_setup(A);
    handle_setup(B);
    /* no hook yet: cannot travel */
    ASSERT_EQ(transfer(A, B, "return handle(5)", &n), CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "argument #1 (userdata)");
    ASSERT_EQ(codec_register_udata(A, HANDLE, handle_enc, handle_dec, NULL), 0);
    ASSERT_EQ(codec_register_udata(B, HANDLE, handle_enc, handle_dec, NULL), 0);
    ASSERT_EQ(codec_register_udata(B, NULL, handle_enc, handle_dec, NULL), CODEC_EINVAL);
    LUA_RUN(B, "H5 = handle(5)");
    ASSERT_EQ(transfer(A, B,
                       "local h = handle(5)\n"
                       "return function() return h end, h, {h, h}, handle(6)",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local f, h, t, h6 = ...\n"
                    "assert(h == H5 and f() == H5 and t[1] == H5 and t[2] == H5)\n"
                    "assert(h6 == handle(6) and h6 ~= H5)\n"
                    "return true"),
              0);
    /* a userdata of another type with a name but no hook */
    ASSERT_EQ(transfer(A, B, "return io.stdout", &n), CODEC_EUNSENDABLE);
    /* a receiver without the hook refuses */
    lua_State *C = lua_test_vm();
    ASSERT_EQ(transfer(A, C, "return handle(1)", &n), CODEC_EUDATA);
    ASSERT_CONTAINS(errbuf, HANDLE);
    lua_close(A);
    lua_close(B);
    lua_close(C);
    return 0;
}

/* ---- what cannot travel ------------------------------------------------ */

static int test_unsendable(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    codec_limits lim = trusted();
    ASSERT_EQ(transfer(A, B, "return 1, coroutine.create(print)", &n), CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send argument #2 (thread)");

    ASSERT_EQ(transfer_named(A, B,
                             "local conn = io.stdout\n"
                             "local n = 1\n"
                             "return function() return n, conn end",
                             "@deploy.sloth", &lim, &n),
              CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send upvalue 'conn' (userdata) of function "
                          "at deploy.sloth:3");

    ASSERT_EQ(transfer(A, B, "return 0, {x = {y = io.stdout}}", &n), CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send field 'x.y' (userdata) of argument #2");

    ASSERT_EQ(transfer(A, B, "return {list = {1, 2, coroutine.running()}}", &n), CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send field 'list[3]' (thread) of argument #1");

    ASSERT_EQ(transfer(A, B, "return {['a b'] = {[coroutine.running()] = 1}}", &n),
              CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send table key (thread) of field '[\"a b\"]' of "
                          "argument #1");

    /* a C function of no module */
    ASSERT_EQ(transfer_named(A, B,
                             "local cb = coroutine.wrap(function() end)\n"
                             "local cfg = {cb = cb}\n"
                             "return {job = function() return cfg end}",
                             "@jobs.lua", &lim, &n),
              CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send field 'cb' (C function) of upvalue "
                          "'cfg' of function at jobs.lua:3 of field 'job' of "
                          "argument #1");

    /* upvalue names stripped: the index is named instead */
    ASSERT_EQ(transfer(A, B,
                       "local co = coroutine.create(print)\n"
                       "local f = load(string.dump(function() return co end, true))\n"
                       "debug.setupvalue(f, 1, co)\n"
                       "return f",
                       &n),
              CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "cannot send upvalue #1 (thread) of function at");

    /* light userdata, pushed from C */
    int top = lua_gettop(A);
    lua_pushinteger(A, 1);
    lua_pushlightuserdata(A, &top);
    char *buf = (char *)1;
    size_t len = 1;
    ASSERT_EQ(codec_encode(A, top + 1, 2, NULL, &buf, &len, errbuf, sizeof errbuf),
              CODEC_EUNSENDABLE);
    ASSERT(buf == NULL && len == 0);
    ASSERT_STR_EQ(errbuf, "cannot send argument #2 (light userdata)");
    ASSERT_EQ(lua_gettop(A), top + 2);
    lua_settop(A, top);

    /* invalid ranges */
    ASSERT_EQ(codec_encode(A, lua_gettop(A) + 1, 3, NULL, &buf, &len, errbuf, sizeof errbuf),
              CODEC_EINVAL);
    lua_close(A);
    lua_close(B);
    return 0;
}

/* ---- decoder rejections ------------------------------------------------ */

static int decode_bytes(lua_State *L, const void *p, size_t len, const codec_limits *lim)
{
    int top = lua_gettop(L);
    int n = -1;
    int rc = codec_decode(L, p, len, lim, &n, errbuf, sizeof errbuf);
    if (rc == 0) {
        if (lua_gettop(L) != top + n)
            return 99;
        lua_settop(L, top);
    } else if (lua_gettop(L) != top || n != 0) {
        return 98;
    }
    return rc;
}

static const char *sample_code =
    "local shared = {1, 2.5, 'three', {four = 4}}\n"
    "local n = 0\n"
    "local function inc() n = n + 1 return n end\n"
    "local function get() return n, shared end\n"
    "return inc, get, shared, {a = shared, s = 'x\\0y', f = string.format}, "
    "-7, 2^40, true";

static int test_reject_header(void)
{
    lua_State *L = lua_test_vm();
    ASSERT_EQ(decode_bytes(L, "", 0, NULL), CODEC_ETRUNCATED);
    ASSERT_EQ(decode_bytes(L, "MTR", 3, NULL), CODEC_ETRUNCATED);
    ASSERT_EQ(decode_bytes(L, "XTR\x01\x90", 5, NULL), CODEC_EMAGIC);
    ASSERT_EQ(decode_bytes(L, "MTR\x04\x90", 5, NULL), CODEC_EVERSION);
    ASSERT_CONTAINS(errbuf, "version 4");
    ASSERT_EQ(decode_bytes(L, "MTR\x00\x90", 5, NULL), CODEC_EVERSION);
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x90", 5, NULL), 0);
    ASSERT_EQ(decode_bytes(L, "MTR\x02\x90", 5, NULL), 0); /* version 3 reads all three */
    ASSERT_EQ(decode_bytes(L, "MTR\x03\x90", 5, NULL), 0);
    ASSERT_EQ(decode_bytes(L, "MTR\x01", 4, NULL), CODEC_ETRUNCATED);
    ASSERT_EQ(decode_bytes(L, "MTR\x01\xc0", 5, NULL), CODEC_EMALFORMED);
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x90\x00", 6, NULL), CODEC_EMALFORMED);
    ASSERT_CONTAINS(errbuf, "trailing");
    /* malformed bodies */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\xc1", 6, NULL), CODEC_EMALFORMED);
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\x81\xc0\x01", 8, NULL), CODEC_EMALFORMED); /* nil key */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\x81\xcb\x7f\xf8\0\0\0\0\0\0\x01", 15, NULL),
              CODEC_EMALFORMED); /* NaN key */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\xd4\x01\x00", 8, NULL),
              CODEC_EMALFORMED); /* reference to nothing */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\xd4\x63\x00", 8, NULL),
              CODEC_EMALFORMED); /* unknown ext */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\xc7\x00\x02", 8, NULL),
              CODEC_EMALFORMED); /* function marker alone */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 14, NULL),
              CODEC_EMALFORMED); /* uint64 beyond int64 */
    ASSERT_EQ(decode_bytes(L,
                           "MTR\x01\x91\xd5\x06"
                           "ab",
                           9, NULL),
              CODEC_EMALFORMED); /* module ref without a NUL */
    /* a table that is its own element decodes */
    ASSERT_EQ(decode_bytes(L, "MTR\x01\x91\x91\xd4\x01\x00", 9, NULL), 0);
    lua_close(L);
    return 0;
}

static int test_reject_truncated(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    char *buf;
    size_t len;
    ASSERT_EQ(encode_code(A, sample_code, &buf, &len), 0);
    codec_limits lim = trusted();
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), 0);
    for (size_t i = 0; i < len; i++) {
        int rc = decode_bytes(B, buf, i, &lim);
        if (rc >= 0 || rc == 98 || rc == 99) {
            fprintf(stderr, "prefix of %zu/%zu bytes gave %d\n", i, len, rc);
            free(buf);
            return 1;
        }
    }
    free(buf);
    lua_close(A);
    lua_close(B);
    return 0;
}

/* ---- metatables (format version 2) ------------------------------------- */

/* Makes the registered metatable "test.regmt" (luaL_newmetatable) in L. */
static void regmt_setup(lua_State *L)
{
    luaL_newmetatable(L, "test.regmt");
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "registered");
    lua_setfield(L, -2, "kind");
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}

static int test_metatables(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    /* copied metatables: methods and metamethods work, one metatable of two
       objects stays one, a table may be its own metatable, __metatable does
       not hide the real one from the encoder */
    ASSERT_EQ(
        transfer(A, B,
                 "local Point = {}\n"
                 "Point.__index = Point\n"
                 "function Point.new(x, y) return setmetatable({x = x, y = y}, Point) end\n"
                 "function Point:len2() return self.x ^ 2 + self.y ^ 2 end\n"
                 "Point.__tostring = function(p) return 'P(' .. p.x .. ',' .. p.y .. ')' end\n"
                 "Point.__add = function(a, b) return Point.new(a.x + b.x, a.y + b.y) end\n"
                 "local a, b = Point.new(1, 2), Point.new(3, 4)\n"
                 "local list = setmetatable({1, 2, 3}, {__len = function() return 99 end})\n"
                 "local selfmt = {v = 7}\n"
                 "selfmt.__index = selfmt\n"
                 "setmetatable(selfmt, selfmt)\n"
                 "local hidden = setmetatable({}, {__metatable = 'locked', __index = {k = 'v'}})\n"
                 "return a, b, list, selfmt, hidden, Point",
                 &n),
        0);
    ASSERT_EQ(n, 6);
    ASSERT_EQ(check(B, n,
                    "local a, b, list, selfmt, hidden, P = ...\n"
                    "assert(getmetatable(a) == P and getmetatable(b) == P)\n"
                    "assert(a:len2() == 5 and b:len2() == 25)\n"
                    "assert(tostring(a + b) == 'P(4,6)')\n"
                    "assert(getmetatable(a + b) == P)\n"
                    "assert(#list == 99 and list[3] == 3 and rawlen(list) == 3)\n"
                    "assert(getmetatable(selfmt) == selfmt and selfmt.__index == selfmt)\n"
                    "assert(getmetatable(hidden) == 'locked' and hidden.k == 'v')\n"
                    "return true"),
              0);

    /* version 1 unless a metatable needs version 2 */
    char *buf;
    size_t len;
    ASSERT_EQ(encode_code(A, "return {1, {x = 2}}, 'x'", &buf, &len), 0);
    ASSERT_EQ(buf[3], 1);
    free(buf);
    ASSERT_EQ(encode_code(A, "return {1, setmetatable({}, {})}", &buf, &len), 0);
    ASSERT_EQ(buf[3], 2);
    free(buf);

    /* a module's table as metatable travels by name */
    const char *preload = "package.preload.shape = function()\n"
                          "  local M = {} M.__index = M\n"
                          "  function M.area(s) return s.w * s.h end\n"
                          "  return M\n"
                          "end";
    LUA_RUN(A, preload);
    LUA_RUN(B, preload);
    LUA_RUN(B, "require('shape')");
    ASSERT_EQ(transfer(A, B, "return setmetatable({w = 2, h = 3}, require('shape'))", &n), 0);
    ASSERT_EQ(check(B, n,
                    "local s = ...\n"
                    "assert(getmetatable(s) == package.loaded.shape and s:area() == 6)\n"
                    "return true"),
              0);

    /* a metatable registered with luaL_newmetatable travels by its name */
    regmt_setup(A);
    regmt_setup(B);
    ASSERT_EQ(transfer(A, B,
                       "local mt = debug.getregistry()['test.regmt']\n"
                       "return setmetatable({}, mt), setmetatable({}, mt), mt",
                       &n),
              0);
    ASSERT_EQ(check(B, n,
                    "local a, b, mt = ...\n"
                    "assert(mt == debug.getregistry()['test.regmt'])\n"
                    "assert(getmetatable(a) == mt and getmetatable(b) == mt)\n"
                    "assert(a.kind == 'registered')\n"
                    "return true"),
              0);
    lua_State *C = lua_test_vm(); /* a receiver that lacks it */
    ASSERT_EQ(transfer(A, C, "return setmetatable({}, debug.getregistry()['test.regmt'])", &n),
              CODEC_EMODULE);
    ASSERT_CONTAINS(errbuf, "metatable 'test.regmt' is not registered here");
    /* a name's bytes in a message are shown escaped and bounded, never raw */
    ASSERT_EQ(transfer(A, C,
                       "local name = 'evil\\27[31m\\255\\'' .. ('x'):rep(400)\n"
                       "local mt = {__name = name}\n"
                       "debug.getregistry()[name] = mt\n"
                       "return setmetatable({}, mt)",
                       &n),
              CODEC_EMODULE);
    ASSERT_CONTAINS(errbuf, "metatable 'evil\\x1b[31m\\xff\\x27xxx");
    ASSERT_CONTAINS(errbuf, "xxx...' is not registered here");
    ASSERT_NOT_CONTAINS(errbuf, "\x1b");
    ASSERT_NOT_CONTAINS(errbuf, "\xff");
    ASSERT_LT(strlen(errbuf), 200);

    /* a metatable that cannot travel is named */
    ASSERT_EQ(transfer(A, B, "return 1, setmetatable({}, {co = coroutine.create(print)})", &n),
              CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send field 'co' (thread) of metatable of argument #2");
    ASSERT_EQ(transfer(A, B,
                       "return {obj = setmetatable({}, "
                       "{__index = {cb = coroutine.wrap(print)}})}",
                       &n),
              CODEC_EUNSENDABLE);
    ASSERT_STR_EQ(errbuf, "cannot send field '__index.cb' (C function) of metatable of "
                          "field 'obj' of argument #1");

    /* only trusted senders' metatables are set: the receiver would call
       their functions unasked */
    codec_limits lim;
    codec_limits_default(&lim);
    ASSERT_EQ(transfer_named(A, B, "return setmetatable({}, {__index = {k = 1}})", "=s", &lim, &n),
              CODEC_EBYTECODE);
    ASSERT_CONTAINS(errbuf, "metatable");

    /* hand-made messages */
    lim = trusted();
#define DECODE_B(bytes) decode_bytes(B, bytes, sizeof bytes - 1, &lim)
    ASSERT_EQ(DECODE_B("MTR\x02\x91\x81\xc7\x00\x08\x80"), 0);
    ASSERT_EQ(DECODE_B("MTR\x01\x91\x81\xc7\x00\x08\x80"), CODEC_EMALFORMED); /* not in v1 */
    ASSERT_EQ(DECODE_B("MTR\x02\x91\x81\xc7\x00\x08\x01"), CODEC_EMALFORMED); /* no table */
    ASSERT_EQ(DECODE_B("MTR\x02\x91\x82\xc7\x00\x08\x80\xc7\x00\x08\x80"),
              CODEC_EMALFORMED);                                                  /* two */
    ASSERT_EQ(DECODE_B("MTR\x02\x91\xc7\x00\x08"), CODEC_EMALFORMED);             /* as a value */
    ASSERT_EQ(DECODE_B("MTR\x02\x91\x81\xc7\x01\x08\x00\x80"), CODEC_EMALFORMED); /* payload */
    ASSERT_EQ(DECODE_B("MTR\x02\x91\xc7\x05\x09"
                       "FILE*"),
              0);
    ASSERT_EQ(DECODE_B("MTR\x01\x91\xc7\x05\x09"
                       "FILE*"),
              CODEC_EMALFORMED);
    ASSERT_EQ(DECODE_B("MTR\x02\x91\xc7\x07\x09"
                       "_LOADED"),
              CODEC_EMODULE); /* a registry entry that is no registered metatable */
#undef DECODE_B
    lua_close(A);
    lua_close(B);
    lua_close(C);
    return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int test_reject_flips(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    char *buf;
    size_t len;
    ASSERT_EQ(encode_code(A,
                          "return {1, 2.5, 'three', {four = 4}, "
                          "{x = {y = {z = true}}}, -7, 2^40, string.rep('a', 300)}, "
                          "string.format, _G, nil, false",
                          &buf, &len),
              0);
    char *m = malloc(len);
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(m, buf, len);
        int flips = 1 + (int)(rng() % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = 4 + (size_t)(rng() % (len - 4));
            m[at] = (char)(rng() & 0xff);
        }
        int rc = decode_bytes(B, m, len, NULL);
        if (rc == 98 || rc == 99) {
            fprintf(stderr, "iteration %d broke the stack\n", iter);
            return 1;
        }
        rc == 0 ? ok++ : bad++;
    }
    ASSERT_GT(bad, 0);
    /* the function message too, bytecode refused */
    free(buf);
    ASSERT_EQ(encode_code(A, sample_code, &buf, &len), 0);
    char *grown = realloc(m, len);
    ASSERT(grown != NULL);
    m = grown;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(m, buf, len);
        size_t at = 4 + (size_t)(rng() % (len - 4));
        m[at] = (char)(rng() & 0xff);
        int rc = decode_bytes(B, m, len, NULL);
        ASSERT(rc != 98 && rc != 99);
    }
    free(m);
    free(buf);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_reject_limits(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    codec_limits lim;
    codec_limits_default(&lim);
    /* depth bomb: 100000 nested one-element arrays */
    size_t n = 100000;
    char *bomb = malloc(n + 6);
    memcpy(bomb, "MTR\x01\x91", 5);
    memset(bomb + 5, 0x91, n);
    bomb[n + 5] = (char)0xc0;
    ASSERT_EQ(decode_bytes(B, bomb, n + 6, NULL), CODEC_ETOODEEP);
    /* the same with maps */
    for (size_t i = 0; i < n; i += 2) {
        bomb[5 + i] = (char)0x81;
        bomb[6 + i] = 0x01;
    }
    ASSERT_EQ(decode_bytes(B, bomb, n + 6, NULL), CODEC_ETOODEEP);
    free(bomb);
    /* a huge array claimed by a tiny message */
    ASSERT_EQ(decode_bytes(B, "MTR\x01\x91\xdd\xff\xff\xff\xff\xc0", 11, NULL), CODEC_ETRUNCATED);
    ASSERT_EQ(decode_bytes(B, "MTR\x01\xdd\xff\xff\xff\xff", 9, NULL), CODEC_ETRUNCATED);
    ASSERT_EQ(decode_bytes(B, "MTR\x01\x91\xdf\x7f\xff\xff\xff\xc0\xc0", 12, NULL),
              CODEC_ETRUNCATED);
    ASSERT_EQ(decode_bytes(B, "MTR\x01\x91\xdb\xff\xff\xff\xff", 10, NULL), CODEC_ETRUNCATED);
    /* element limit */
    char *buf;
    size_t len;
    ASSERT_EQ(encode_code(A,
                          "local t = {} for i = 1, 100 do t[i] = i end "
                          "return t",
                          &buf, &len),
              0);
    lim.max_elems = 50;
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_ETOOMANY);
    lim.max_elems = 101; /* the table and its 100 elements */
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), 0);
    /* size limit, both directions */
    lim.max_bytes = len - 1;
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_ETOOBIG);
    free(buf);
    int top = lua_gettop(A);
    luaL_dostring(A, "return string.rep('x', 1000)");
    lim.max_bytes = 500;
    ASSERT_EQ(codec_encode(A, top + 1, 1, &lim, &buf, &len, errbuf, sizeof errbuf), CODEC_ETOOBIG);
    ASSERT(buf == NULL);
    lua_settop(A, top);
    /* encoding deep structures stops at max_depth too */
    luaL_dostring(A, "local t = {} for i = 1, 300 do t = {t} end return t");
    ASSERT_EQ(codec_encode(A, top + 1, 1, NULL, &buf, &len, errbuf, sizeof errbuf), CODEC_ETOODEEP);
    lim.max_bytes = 1 << 20;
    lim.max_elems = 1 << 20;
    lim.max_depth = 400;
    ASSERT_EQ(codec_encode(A, top + 1, 1, &lim, &buf, &len, errbuf, sizeof errbuf), 0);
    ASSERT_EQ(decode_bytes(B, buf, len, NULL), CODEC_ETOODEEP);
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), 0);
    free(buf);
    lua_settop(A, top);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_reject_bytecode(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    char *buf;
    size_t len;
    ASSERT_EQ(encode_code(A, "return 1, function() return 2 end", &buf, &len), 0);
    codec_limits lim;
    codec_limits_default(&lim);
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_EBYTECODE);
    ASSERT_CONTAINS(errbuf, "allow_bytecode");
    lim.allow_bytecode = 1;
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), 0);
    /* a bytecode header of another Lua: lua_load refuses it */
    char *sig = memmem(buf, len, "\x1bLua\x54", 5);
    ASSERT(sig != NULL);
    sig[4] = 0x53;
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_ELOAD);
    ASSERT_CONTAINS(errbuf, "version mismatch");
    sig[4] = 0x54;
    sig[12] = 8; /* sizeof(Instruction) */
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_ELOAD);
    free(buf);
    /* source text in place of bytecode is not loaded */
    static const char txt[] = "MTR\x01\x91\x92\xc7\x00\x02\xc4\x08return 1";
    ASSERT_EQ(decode_bytes(B, txt, sizeof txt - 1, &lim), CODEC_ELOAD);
    /* a message that lies about the number of upvalues */
    ASSERT_EQ(encode_code(A, "local a, b = 1, 2 return function() return a + b end", &buf, &len),
              0);
    ASSERT_EQ((unsigned char)buf[5], 0x94); /* [FUNC, code, a, b] */
    buf[5] = (char)0x93;
    ASSERT_NE(decode_bytes(B, buf, len - 1, &lim), 0);
    free(buf);
    ASSERT_EQ(encode_code(A, "return function() return 1 end", &buf, &len), 0);
    char *m = malloc(len + 1);
    memcpy(m, buf, len);
    m[5] = (char)0x93;
    m[len] = 0x01;
    ASSERT_EQ(decode_bytes(B, m, len + 1, &lim), CODEC_EMALFORMED);
    free(m);
    free(buf);
    /* shared upvalue references that point at nothing sensible */
    ASSERT_EQ(encode_code(A,
                          "local t = {} local n = 0\n"
                          "local function a() n = n + 1 return t end\n"
                          "local function b() return n end\n"
                          "return t, a, b",
                          &buf, &len),
              0);
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), 0);
    char *up = memmem(buf, len, "\xc7\x05\x03", 3);
    ASSERT(up != NULL);
    ASSERT_EQ(up[7], 1); /* upvalue 1 of function... */
    ASSERT_EQ(up[6], 1); /* ...with object id 1 (a) */
    up[7] = 9;
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_EMALFORMED);
    up[7] = 0;
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_EMALFORMED);
    up[7] = 1;
    up[6] = 0; /* object 0 is the table t */
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_EMALFORMED);
    up[6] = 2; /* object 2 is b itself, not yet complete: index 1 exists */
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), 0);
    up[6] = 3; /* no such object */
    ASSERT_EQ(decode_bytes(B, buf, len, &lim), CODEC_EMALFORMED);
    free(buf);
    lua_close(A);
    lua_close(B);
    return 0;
}

/* ---- caches ------------------------------------------------------------ */

static int test_cache(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    codec_limits lim = trusted();
    codec_stats s0, s;
    LUA_RUN(A, "local n = 0 F = function(step) n = n + step return n end");
    char *b1, *b2;
    size_t l1, l2;
    ASSERT_EQ(encode_code(A, "return F, 1", &b1, &l1), 0);
    codec_stats_get(A, &s);
    ASSERT_EQ(s.dumps, 1);
    ASSERT_EQ(s.dump_hits, 0);
    ASSERT_EQ(encode_code(A, "return F, 1", &b2, &l2), 0);
    codec_stats_get(A, &s);
    ASSERT_EQ(s.dumps, 1); /* same function encoded twice: dumped once */
    ASSERT_EQ(s.dump_hits, 1);
    ASSERT_EQ(l1, l2);
    ASSERT(memcmp(b1, b2, l1) == 0);

    /* decoded twice: loaded once, two closures with their own upvalues */
    int n;
    ASSERT_EQ(codec_decode(B, b1, l1, &lim, &n, errbuf, sizeof errbuf), 0);
    lua_setglobal(B, "s1");
    lua_setglobal(B, "f1");
    ASSERT_EQ(codec_decode(B, b2, l2, &lim, &n, errbuf, sizeof errbuf), 0);
    lua_setglobal(B, "s2");
    lua_setglobal(B, "f2");
    codec_stats_get(B, &s);
    ASSERT_EQ(s.loads, 1);
    ASSERT_EQ(s.load_hits, 1);
    LUA_RUN(B, "assert(f1 ~= f2) assert(f1(s1) == 1 and f1(s1) == 2) "
               "assert(f2(s2) == 1)");
    free(b1);
    free(b2);

    /* new closures of one prototype: dumped once (the prototype cache: a
       new closure of a known prototype costs a lookup), loaded once, each
       with its own upvalues */
    codec_stats_get(A, &s0);
    LUA_RUN(A, "FS = {} for i = 1, 10 do FS[i] = function() return i end end");
    for (int i = 1; i <= 10; i++) {
        char code[64];
        snprintf(code, sizeof code, "return FS[%d]", i);
        ASSERT_EQ(encode_code(A, code, &b1, &l1), 0);
        ASSERT_EQ(codec_decode(B, b1, l1, &lim, &n, errbuf, sizeof errbuf), 0);
        lua_setglobal(B, "g");
        char chk[64];
        snprintf(chk, sizeof chk, "assert(g() == %d)", i);
        LUA_RUN(B, chk);
        free(b1);
    }
    codec_stats_get(A, &s);
    ASSERT_EQ(s.dumps - s0.dumps, 1);
    ASSERT_EQ(s.dump_hits - s0.dump_hits, 9);
    codec_stats_get(B, &s0);
    ASSERT_EQ(s0.loads, 2); /* F, then FS[1]; FS[2..10] from the cache */

    /* a function without upvalues is reused as is */
    ASSERT_EQ(encode_code(A, "return load('return 42')", &b1, &l1), 0);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(codec_decode(B, b1, l1, &lim, &n, errbuf, sizeof errbuf), 0);
        lua_setglobal(B, "h");
        LUA_RUN(B, "assert(h() == 42)");
    }
    free(b1);
    codec_stats_get(B, &s);
    ASSERT_EQ(s.loads, 3);
    ASSERT_EQ(s.load_hits - s0.load_hits, 2);

    /* the same bytecode twice in one message travels once */
    ASSERT_EQ(encode_code(A, "return FS[1], FS[2], FS[3]", &b1, &l1), 0);
    ASSERT_EQ(encode_code(A, "return FS[1]", &b2, &l2), 0);
    ASSERT_LT(l1, 2 * l2);
    ASSERT_EQ(codec_decode(B, b1, l1, &lim, &n, errbuf, sizeof errbuf), 0);
    ASSERT_EQ(check(B, n, "local a, b, c = ... return a() == 1 and b() == 2 and c() == 3"), 0);
    free(b1);
    free(b2);

    /* caches off: every encode dumps, every decode loads */
    ASSERT_EQ(codec_cache_enable(A, 0), 0);
    ASSERT_EQ(codec_cache_enable(B, 0), 0);
    codec_stats_get(A, &s0);
    ASSERT_EQ(encode_code(A, "return F, 1", &b1, &l1), 0);
    ASSERT_EQ(encode_code(A, "return F, 1", &b2, &l2), 0);
    codec_stats_get(A, &s);
    ASSERT_EQ(s.dumps - s0.dumps, 2);
    codec_stats_get(B, &s0);
    ASSERT_EQ(codec_decode(B, b1, l1, &lim, &n, errbuf, sizeof errbuf), 0);
    ASSERT_EQ(check(B, n, "local f, s = ... return f(s) == 1"), 0);
    ASSERT_EQ(codec_decode(B, b2, l2, &lim, &n, errbuf, sizeof errbuf), 0);
    ASSERT_EQ(check(B, n, "local f, s = ... return f(s) == 1"), 0);
    codec_stats_get(B, &s);
    ASSERT_EQ(s.loads - s0.loads, 2);
    ASSERT_EQ(s.load_hits - s0.load_hits, 0);
    free(b1);
    free(b2);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_many_upvalues(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    int n;
    /* 255 upvalues: more than a factory can hold, loaded each time */
    const char *code = "local src = {}\n"
                       "local function add(x) src[#src + 1] = x end\n"
                       "for i = 1, 150 do add(('local u%d = %d\\n'):format(i, i)) end\n"
                       "add('return (function()\\n')\n"
                       "for i = 151, 255 do add(('local u%d = %d\\n'):format(i, i)) end\n"
                       "add('return function() return u1 + u150 + u151 + u255')\n"
                       "for i = 2, 254 do add((' + u%d * 0'):format(i)) end\n"
                       "add(' end end)()')\n"
                       "return assert(load(table.concat(src)))()";
    for (int k = 0; k < 2; k++) {
        ASSERT_EQ(transfer(A, B, code, &n), 0);
        ASSERT_EQ(check(B, n,
                        "local f = ... return f() == 1 + 150 + 151 + 255 "
                        "and debug.getinfo(f, 'u').nups == 255"),
                  0);
    }
    codec_stats s;
    codec_stats_get(B, &s);
    ASSERT_EQ(s.loads, 2);
    lua_close(A);
    lua_close(B);
    return 0;
}

/* ---- out of memory ----------------------------------------------------- */

typedef struct budget {
    size_t used, limit;
} budget;

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    budget *b = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        b->used -= old;
        return NULL;
    }
    if (nsize > old && b->used + (nsize - old) > b->limit)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p != NULL)
        b->used = b->used - old + nsize;
    return p;
}

static int test_oom(void)
{
    lua_State *A = lua_test_vm();
    char *msg;
    size_t len;
    ASSERT_EQ(encode_code(A, sample_code, &msg, &len), 0);
    codec_limits lim = trusted();
    int ok_enc = 0, ok_dec = 0;
    for (size_t extra = 0; extra < 40000; extra += 97) {
        budget bd = {0, (size_t)-1};
        lua_State *L = lua_newstate(limited_alloc, &bd);
        luaL_openlibs(L);
        luaL_dostring(L, sample_code);
        int nv = lua_gettop(L);
        bd.limit = bd.used + extra;
        char *out;
        size_t olen;
        int rc = codec_encode(L, 1, nv, NULL, &out, &olen, errbuf, sizeof errbuf);
        if (rc != 0 && rc != CODEC_ENOMEM)
            fprintf(stderr, "encode: %d %s\n", rc, errbuf);
        ASSERT(rc == 0 || rc == CODEC_ENOMEM);
        if (rc == 0) {
            ok_enc++;
            free(out);
        }
        ASSERT_EQ(lua_gettop(L), nv);
        lua_settop(L, 0);
        rc = codec_decode(L, msg, len, &lim, &nv, errbuf, sizeof errbuf);
        if (rc != 0 && rc != CODEC_ENOMEM)
            fprintf(stderr, "decode: %d %s\n", rc, errbuf);
        ASSERT(rc == 0 || rc == CODEC_ENOMEM);
        if (rc == 0)
            ok_dec++;
        bd.limit = (size_t)-1;
        lua_close(L);
    }
    ASSERT_GT(ok_enc, 0);
    ASSERT_GT(ok_dec, 0);
    free(msg);
    lua_close(A);
    return 0;
}

static int test_strerror(void)
{
    ASSERT_STR_EQ(codec_strerror(CODEC_ETRUNCATED), "truncated message");
    ASSERT_STR_EQ(codec_errname(CODEC_EVERSION), "EVERSION");
    ASSERT_STR_EQ(codec_strerror(12345), "unknown error");
    codec_limits lim;
    codec_limits_default(&lim);
    ASSERT_EQ(lim.allow_bytecode, 0);
    ASSERT_EQ(lim.allow_require, 0);
    return 0;
}

/* ---- runner ------------------------------------------------------------ */

typedef struct test_entry {
    const char *name;
    int (*fn)(void);
} test_entry;

static const test_entry tests[] = {
    {"scalars", test_scalars},
    {"tables", test_tables},
    {"functions", test_functions},
    {"env_globals", test_env_globals},
    {"modules", test_modules},
    {"udata_hooks", test_udata_hooks},
    {"unsendable", test_unsendable},
    {"metatables", test_metatables},
    {"reject_header", test_reject_header},
    {"reject_truncated", test_reject_truncated},
    {"reject_flips", test_reject_flips},
    {"reject_limits", test_reject_limits},
    {"reject_bytecode", test_reject_bytecode},
    {"cache", test_cache},
    {"many_upvalues", test_many_upvalues},
    {"oom", test_oom},
    {"strerror", test_strerror},
};

int main(int argc, char **argv)
{
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        ran++;
        int rc = tests[i].fn();
        printf("%s %zu - %s\n", rc == 0 ? "ok" : "not ok", i + 1, tests[i].name);
        fflush(stdout);
        failed += rc != 0;
    }
    printf("# %d/%d passed\n", ran - failed, ran);
    return failed || ran == 0 ? 1 : 0;
}
