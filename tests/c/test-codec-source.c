/*
** test-codec-source.c: functions that travel as source (codec_limits
** send_source / allow_source, shared/codec/source.c). The receiver compiles
** the text itself and never loads the sender's bytes: the tests check that
** functions still work (upvalues, nested ones, several on one line, files
** with a "#!" line), that tracebacks keep file and line, and that a message
** with bytecode, a bad path or a text that does not compile is refused.
** Run all: test-codec-source; run one: test-codec-source NAME.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "lua_test.h"
#include "test.h"

static char errbuf[512];

/* The receiver's limits: functions as source only. */
static codec_limits receiver(void)
{
    codec_limits lim;
    codec_limits_default(&lim);
    lim.allow_source = 1;
    return lim;
}

/* Encodes the global `name` of A as source; on success *msg (malloc'd). */
static int encode_global(lua_State *A, const char *name, char **msg, size_t *len)
{
    codec_limits lim;
    codec_limits_default(&lim);
    lim.send_source = 1;
    lim.source_files = 1;
    lua_getglobal(A, name);
    int rc = codec_encode(A, lua_gettop(A), 1, &lim, msg, len, errbuf, sizeof errbuf);
    lua_pop(A, 1);
    return rc;
}

/* Moves global name from A to B (as source); 0 or the codec's code. */
static int move(lua_State *A, lua_State *B, const char *name)
{
    char *msg;
    size_t len;
    int rc = encode_global(A, name, &msg, &len);
    if (rc != 0)
        return rc;
    codec_limits lim = receiver();
    int n;
    rc = codec_decode(B, msg, len, &lim, &n, errbuf, sizeof errbuf);
    free(msg);
    if (rc == 0)
        lua_setglobal(B, name);
    return rc;
}

/* Writes text to a new temporary file; its path in path (PATH_MAX). */
static int write_temp(char *path, size_t cap, const char *text)
{
    snprintf(path, cap, "/tmp/codec-source-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    return 0;
}

static int test_closures(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    /* load(text): the chunk name is the text itself */
    LUA_RUN(A,
            "local chunk = [[local base = 10\n"
            "local a, b = function(x) return base + x end, function(x) return base * x end\n"
            "return a, b, function(n) local function inner(k) return k + n end return inner end]]\n"
            "A1, B1, MK = load(chunk)() ; INNER = MK(5)");
    ASSERT_EQ(move(A, B, "A1"), 0);
    ASSERT_EQ(move(A, B, "B1"), 0);
    ASSERT_EQ(move(A, B, "INNER"), 0);
    LUA_RUN(B, "assert(A1(1) == 11, 'first on the line') assert(B1(2) == 20, 'second on the line')"
               " assert(INNER(1) == 6, 'nested')");
    /* same lines as A's (tracebacks) */
    LUA_RUN(A, "L1 = debug.getinfo(INNER, 'S').linedefined .. '-' .. debug.getinfo(B1, "
               "'S').lastlinedefined");
    LUA_RUN(B, "L1 = debug.getinfo(INNER, 'S').linedefined .. '-' .. debug.getinfo(B1, "
               "'S').lastlinedefined");
    lua_getglobal(A, "L1");
    lua_getglobal(B, "L1");
    ASSERT_STR_EQ(lua_tostring(A, -1), lua_tostring(B, -1));
    ASSERT_STR_EQ(lua_tostring(B, -1), "3-2");
    lua_pop(A, 1);
    lua_pop(B, 1);
    /* each function travels as its own text: one compile each, none when
     * one comes again; B1's message does not carry A1's text */
    codec_stats st;
    codec_stats_get(B, &st);
    ASSERT_EQ(st.compiles, 3);
    ASSERT_EQ(move(A, B, "A1"), 0);
    codec_stats_get(B, &st);
    ASSERT_EQ(st.compiles, 3);
    char *msg;
    size_t len;
    ASSERT_EQ(encode_global(A, "B1", &msg, &len), 0);
    ASSERT(memmem(msg, len, "base * x", 8) != NULL);
    ASSERT(memmem(msg, len, "base + x", 8) == NULL);
    free(msg);
    lua_close(A);
    lua_close(B);
    return 0;
}

static int test_file(void)
{
    char path[256];
    ASSERT_EQ(write_temp(path, sizeof path,
                         "#!/usr/bin/env mutirao\n"
                         "local M = {}\n"
                         "function M.ok(x) return x * 2 end\n"
                         "function M.boom() error('boom here') end\n"
                         "return M\n"),
              0);
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    lua_pushstring(A, path);
    lua_setglobal(A, "PATH");
    LUA_RUN(A, "local M = assert(loadfile(PATH))() OK, BOOM = M.ok, M.boom");
    ASSERT_EQ(move(A, B, "OK"), 0);
    ASSERT_EQ(move(A, B, "BOOM"), 0);
    LUA_RUN(B, "assert(OK(21) == 42)");
    /* the error names the file and the line of the sender's text */
    LUA_RUN(B, "local ok, e = pcall(BOOM) assert(not ok) MSG = e");
    lua_getglobal(B, "MSG");
    ASSERT_CONTAINS(lua_tostring(B, -1), ":4: boom here");
    ASSERT_CONTAINS(lua_tostring(B, -1), path + 5); /* its file name */
    lua_pop(B, 1);

    /* the file changed since: the function cannot travel (a fresh VM has
     * not indexed it yet) */
    lua_State *C = lua_test_vm();
    lua_pushstring(C, path);
    lua_setglobal(C, "PATH");
    LUA_RUN(C, "local M = assert(loadfile(PATH))() OK = M.ok");
    FILE *f = fopen(path, "w");
    fputs("return {ok = function(x) return x end}\n", f);
    fclose(f);
    char *msg;
    size_t len;
    ASSERT_EQ(encode_global(C, "OK", &msg, &len), CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "no longer holds the text");
    unlink(path);
    lua_close(A);
    lua_close(B);
    lua_close(C);
    return 0;
}

static int test_noted(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    const char *text = "local t = ... return function() return t .. '!' end";
    ASSERT_EQ(luaL_loadbufferx(A, text, strlen(text), "=task", "t"), LUA_OK);
    lua_pushliteral(A, "hi");
    lua_call(A, 1, 1);
    lua_setglobal(A, "F");
    char *msg;
    size_t len;
    /* "=task": the text is not known until someone says it */
    ASSERT_EQ(encode_global(A, "F", &msg, &len), CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "text is not known");
    ASSERT_EQ(codec_note_source(A, "=task", "return 1", 8), 0); /* another text, same name */
    ASSERT_EQ(codec_note_source(A, "=task", text, strlen(text)), 0);
    ASSERT_EQ(move(A, B, "F"), 0);
    LUA_RUN(B, "assert(F() == 'hi!')");
    lua_close(A);
    lua_close(B);
    return 0;
}

/* Headers that are not plain `function(`: a method, a dotted name, a
 * comment in the header (sent as the whole chunk then), a <const> local
 * folded into the function (its own text would not compile the same). */
static int test_shapes(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    LUA_RUN(A, "F = load([==[local M = {k = 2}\n"
               "function M:scale(x) return self.k * x end\n"
               "function M.add(a, b) return a + b end\n"
               "local N <const> = 7\n"
               "local function seven() return N end\n"
               "local odd = function --[[ a comment ]] (x) return x + 1 end\n"
               "local function fact(n) if n <= 1 then return 1 end return n * fact(n - 1) end\n"
               "return M, seven, odd, fact]==])\n"
               "M, SEVEN, ODD, FACT = F() SCALE, ADD = M.scale, M.add");
    ASSERT_EQ(move(A, B, "SCALE"), 0);
    ASSERT_EQ(move(A, B, "ADD"), 0);
    ASSERT_EQ(move(A, B, "SEVEN"), 0);
    ASSERT_EQ(move(A, B, "ODD"), 0);
    ASSERT_EQ(move(A, B, "FACT"), 0);
    /* a function loaded from a stripped dump: no upvalue names, no lines */
    LUA_RUN(A, "local k = 5 local function f() return k end "
               "STRIPPED = load(string.dump(f, true), '=stripped', 'b')");
    char *msg;
    size_t len;
    ASSERT_EQ(encode_global(A, "STRIPPED", &msg, &len), CODEC_EUNSENDABLE);
    ASSERT_EQ(lua_gettop(A), 0);
    LUA_RUN(B, "assert(SCALE({k = 3}, 5) == 15) assert(ADD(2, 3) == 5) assert(SEVEN() == 7)"
               " assert(ODD(1) == 2) assert(FACT(5) == 120)");
    lua_close(A);
    lua_close(B);
    return 0;
}

/* A task's own submits: B received F as source and sends on a function
 * nested in it (its chunk's text is known from the message). */
static int test_forward(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm(), *C = lua_test_vm();
    LUA_RUN(A, "F = load('return function(n) return function() return n * 3 end end')()");
    ASSERT_EQ(move(A, B, "F"), 0);
    LUA_RUN(B, "G = F(7)");
    ASSERT_EQ(move(B, C, "G"), 0);
    LUA_RUN(C, "assert(G() == 21)");
    lua_close(A);
    lua_close(B);
    lua_close(C);
    return 0;
}

static int test_refuse_bytecode(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    LUA_RUN(A, "F = function() return 1 end");
    codec_limits lim;
    codec_limits_default(&lim); /* as bytecode */
    lua_getglobal(A, "F");
    char *msg;
    size_t len;
    ASSERT_EQ(codec_encode(A, lua_gettop(A), 1, &lim, &msg, &len, errbuf, sizeof errbuf), 0);
    codec_limits r = receiver();
    int n;
    ASSERT_EQ(codec_decode(B, msg, len, &r, &n, errbuf, sizeof errbuf), CODEC_EBYTECODE);
    ASSERT_CONTAINS(errbuf, "only functions as source");
    free(msg);
    /* and source refused where only bytecode is allowed */
    ASSERT_EQ(encode_global(A, "F", &msg, &len), 0);
    codec_limits_default(&r);
    r.allow_bytecode = 1;
    ASSERT_EQ(codec_decode(B, msg, len, &r, &n, errbuf, sizeof errbuf), CODEC_EBYTECODE);
    free(msg);
    lua_close(A);
    lua_close(B);
    return 0;
}

/* Finds the ext SOURCE (type 10) header in msg; its offset or -1. */
static long find_source_ext(const char *msg, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char b = (unsigned char)msg[i];
        if ((b == 0xc7 && i + 2 < len && msg[i + 2] == 10) ||
            (b >= 0xd4 && b <= 0xd8 && msg[i + 1] == 10))
            return (long)i;
    }
    return -1;
}

static int test_hostile(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    LUA_RUN(A, "F = load('return function() return 1 end')()");
    char *msg;
    size_t len;
    ASSERT_EQ(encode_global(A, "F", &msg, &len), 0);
    ASSERT_EQ((unsigned char)msg[3], 3); /* format version 3 */
    long at = find_source_ext(msg, len);
    ASSERT(at >= 0);
    codec_limits r = receiver();
    int n;
    /* a path to a function that is not there */
    char *bad = malloc(len);
    memcpy(bad, msg, len);
    ASSERT_EQ((unsigned char)bad[at], 0xd5); /* fixext 2: a path of one index */
    bad[at + 2] = 0x01;                      /* child 256 */
    ASSERT_EQ(codec_decode(B, bad, len, &r, &n, errbuf, sizeof errbuf), CODEC_EMALFORMED);
    ASSERT_CONTAINS(errbuf, "no function at the source path");
    /* version 2 header: ext SOURCE is malformed there */
    memcpy(bad, msg, len);
    bad[3] = 2;
    ASSERT_EQ(codec_decode(B, bad, len, &r, &n, errbuf, sizeof errbuf), CODEC_EMALFORMED);
    /* every truncation fails cleanly */
    for (size_t k = 0; k < len; k++)
        ASSERT(codec_decode(B, msg, k, &r, &n, errbuf, sizeof errbuf) != 0);
    free(bad);
    free(msg);

    /* a text that is a binary chunk: compiled in text mode, refused */
    LUA_RUN(A, "BIN = string.dump(function() os.exit(3) end)");
    lua_getglobal(A, "BIN");
    size_t blen;
    const char *bin = lua_tolstring(A, -1, &blen);
    /* hand-made message: [[ext FUNC, ext SOURCE (main), "=x", the bytes
     * as text, ext GLOBALS (its _ENV)]] */
    unsigned char m[4096];
    ASSERT(blen < sizeof m - 32);
    memcpy(m, "MTR\x03\x91\x95\xc7\x00\x02\xc7\x00\x0a\xa2=x\xc5", 16);
    size_t k = 16;
    m[k++] = (unsigned char)(blen >> 8);
    m[k++] = (unsigned char)blen;
    memcpy(m + k, bin, blen);
    k += blen;
    memcpy(m + k, "\xc7\x00\x04", 3);
    k += 3;
    int rc = codec_decode(B, (char *)m, k, &r, &n, errbuf, sizeof errbuf);
    if (rc != CODEC_ELOAD)
        fprintf(stderr, "%s\n", errbuf);
    ASSERT_EQ(rc, CODEC_ELOAD);
    ASSERT_CONTAINS(errbuf, "cannot compile");
    /* the same with no chunk name (the name is the text): NUL bytes in it */
    m[12] = 0xc0;
    memmove(m + 13, m + 15, k - 15);
    ASSERT_EQ(codec_decode(B, (char *)m, k - 2, &r, &n, errbuf, sizeof errbuf), CODEC_ELOAD);
    ASSERT_CONTAINS(errbuf, "holds a NUL byte (source, not a binary chunk");
    lua_close(A);
    lua_close(B);
    return 0;
}

/* Where the sender looks for a text: not in files when told so (a
 * sandboxed task), never waiting on a FIFO, saying what was missing. */
static int test_files(void)
{
    lua_State *A = lua_test_vm();
    LUA_RUN(A, "F = load('return function() return 1 end', '@/no/such/file.lua')()");
    char *msg;
    size_t len;
    ASSERT_EQ(encode_global(A, "F", &msg, &len), CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "its file cannot be read: No such file or directory");
    char fifo[] = "/tmp/codec-source-fifo-XXXXXX";
    int fd = mkstemp(fifo);
    ASSERT(fd >= 0);
    close(fd);
    unlink(fifo);
    ASSERT_EQ(mkfifo(fifo, 0600), 0);
    lua_pushstring(A, fifo);
    lua_setglobal(A, "FIFO");
    LUA_RUN(A, "G = load('return function() return 2 end', '@' .. FIFO)()");
    ASSERT_EQ(encode_global(A, "G", &msg, &len), CODEC_EUNSENDABLE); /* no wait */
    ASSERT_CONTAINS(errbuf, "its file cannot be read: not a regular file");
    unlink(fifo);
    /* a sandboxed task's encode reads no file at all */
    char path[256];
    ASSERT_EQ(write_temp(path, sizeof path, "return function() return 3 end\n"), 0);
    lua_pushstring(A, path);
    lua_setglobal(A, "PATH");
    LUA_RUN(A, "H = assert(loadfile(PATH))()");
    codec_limits lim;
    codec_limits_default(&lim);
    lim.send_source = 1;
    lua_getglobal(A, "H");
    ASSERT_EQ(codec_encode(A, lua_gettop(A), 1, &lim, &msg, &len, errbuf, sizeof errbuf),
              CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "its file is not read here");
    lua_pop(A, 1);
    unlink(path);
    lua_close(A);
    return 0;
}

/* Ever new texts do not grow the receiver without bound; a text over
 * CODEC_SOURCE_MAX is neither sent nor compiled. */
static int test_bounds(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm(), *C = lua_test_vm();
    /* 200 distinct texts of about 200 KB each (40 MB in all), each sent whole */
    LUA_RUN(A, "PAD = string.rep('-- padding line\\n', 12000)");
    for (int i = 0; i < 200; i++) {
        char code[200];
        /* a header its own lines cannot drop: the whole chunk travels */
        snprintf(code, sizeof code,
                 "F = load(PAD .. 'local x = function --[[c]] () return %d end return x')()", i);
        LUA_RUN(A, code);
        int rc = move(A, B, "F");
        if (rc != 0)
            fprintf(stderr, "%d: %s\n", i, errbuf);
        ASSERT_EQ(rc, 0);
        /* what B received it can send on at once, whatever B's tables did */
        lua_getglobal(B, "F");
        lua_setglobal(B, "G");
        rc = move(B, C, "G");
        if (rc != 0)
            fprintf(stderr, "%d on: %s\n", i, errbuf);
        ASSERT_EQ(rc, 0);
        lua_getglobal(B, "F");
        lua_call(B, 0, 1);
        ASSERT_EQ(lua_tointeger(B, -1), i);
        lua_pop(B, 1);
    }
    lua_gc(B, LUA_GCCOLLECT);
    codec_stats st;
    codec_stats_get(B, &st);
    ASSERT(st.source_resets >= 1);
    ASSERT_LT(lua_gc(B, LUA_GCCOUNT), 48 * 1024); /* KB: the budget and some */
    /* a function whose own lines do not compile alone, in a chunk over the
     * limit: not sent */
    LUA_RUN(A,
            "BIG = load(string.rep('-- pad\\n', 50000) .. 'local x = function --[[c]] () return 1 "
            "end return x')()");
    char *msg;
    size_t len;
    ASSERT_EQ(encode_global(A, "BIG", &msg, &len), CODEC_EUNSENDABLE);
    ASSERT_CONTAINS(errbuf, "over CODEC_SOURCE_MAX");
    lua_close(A);
    lua_close(B);
    lua_close(C);
    return 0;
}

/* Calls global name of B (no arguments); its integer result. */
static lua_Integer call_global(lua_State *B, const char *name)
{
    lua_getglobal(B, name);
    lua_call(B, 0, 1);
    lua_Integer v = lua_tointeger(B, -1);
    lua_pop(B, 1);
    return v;
}

/* Decodes msg into B's global F; 0 or the codec's code. */
static int decode_as_f(lua_State *B, const char *msg, size_t len)
{
    codec_limits lim = receiver();
    int n;
    int rc = codec_decode(B, msg, len, &lim, &n, errbuf, sizeof errbuf);
    if (rc == 0)
        lua_setglobal(B, "F");
    return rc;
}

/* The front of the receiver's source cache (found from the message's bytes,
 * every byte compared): a text of the same length, chunk name (none, or
 * "=x") and path as an entry's, with the same hash, is a miss and compiles
 * its own code; an
 * entry another takes the slot of is found again through SRCCACHE; ever new
 * functions (more than the slots) all run their own code. */
static int test_front(void)
{
    lua_State *A = lua_test_vm(), *B = lua_test_vm();
    static const char t1[] = "return function() return 1 end",
                      t2[] = "return function() return 2 end";
    ASSERT_EQ(codec_note_source(A, "=x", t1, sizeof t1 - 1), 0);
    ASSERT_EQ(codec_note_source(A, "=x", t2, sizeof t2 - 1), 0);
    char *m1, *m2;
    size_t n1, n2;
    for (int named = 0; named <= 1; named++) {
        if (named)
            LUA_RUN(A, "F = load('return function() return 1 end', '=x')() "
                       "G = load('return function() return 2 end', '=x')()");
        else
            LUA_RUN(A, "F = load('return function() return 1 end')() "
                       "G = load('return function() return 2 end')()");
        ASSERT_EQ(encode_global(A, "F", &m1, &n1), 0);
        ASSERT_EQ(encode_global(A, "G", &m2, &n2), 0);
        ASSERT_EQ(n1, n2); /* one byte differs: the text's '1' and '2' */
        size_t diff = 0, ndiff = 0;
        for (size_t i = 0; i < n1; i++)
            if (m1[i] != m2[i])
                diff = i, ndiff++;
        ASSERT_EQ(ndiff, 1);
        ASSERT_EQ(m1[diff], '1');
        codec_stats st0, st;
        for (int collide = 1; collide >= 0; collide--) {
            codec_test_collide(collide);
            codec_cache_enable(B, 1); /* empties the source cache */
            codec_stats_get(B, &st0);
            ASSERT_EQ(decode_as_f(B, m1, n1), 0);
            ASSERT_EQ(call_global(B, "F"), 1);
            ASSERT_EQ(decode_as_f(B, m1, n1), 0); /* the same bytes: from the front */
            ASSERT_EQ(call_global(B, "F"), 1);
            codec_stats_get(B, &st);
            ASSERT_EQ(st.source_fast - st0.source_fast, 1);
            ASSERT_EQ(st.compiles - st0.compiles, 1);
            /* same length, chunk name, path (and hash when colliding): a miss */
            ASSERT_EQ(decode_as_f(B, m2, n2), 0);
            ASSERT_EQ(call_global(B, "F"), 2);
            codec_stats_get(B, &st);
            ASSERT_EQ(st.source_fast - st0.source_fast, 1);
            ASSERT_EQ(st.compiles - st0.compiles, 2);
            /* the message changed in place, the front's entry is G's text */
            char *m = malloc(n1);
            memcpy(m, m2, n2);
            m[diff] = '1';
            ASSERT_EQ(decode_as_f(B, m, n1), 0);
            ASSERT_EQ(call_global(B, "F"), 1);
            m[diff] = '2';
            ASSERT_EQ(decode_as_f(B, m, n1), 0);
            ASSERT_EQ(call_global(B, "F"), 2);
            m[diff] = '3'; /* never seen: compiled, its own code */
            ASSERT_EQ(decode_as_f(B, m, n1), 0);
            ASSERT_EQ(call_global(B, "F"), 3);
            free(m);
            codec_stats_get(B, &st);
            ASSERT_EQ(st.compiles - st0.compiles, 3);
            /* colliding, each took the one slot from the one before: found
             * again through SRCCACHE, not the front */
            if (collide)
                ASSERT_EQ(st.source_fast - st0.source_fast, 1);
        }
        free(m1);
        free(m2);
    }
    /* more functions than the front has slots, each twice, then all again */
    codec_test_collide(0);
    enum { N = 3 * 64 };
    char *ms[N];
    size_t ns[N];
    for (int i = 0; i < N; i++) {
        char code[160];
        snprintf(code, sizeof code, "H = load('return function() return %d end')()", 1000 + i);
        LUA_RUN(A, code);
        ASSERT_EQ(encode_global(A, "H", &ms[i], &ns[i]), 0);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            ASSERT_EQ(decode_as_f(B, ms[i], ns[i]), 0);
            ASSERT_EQ(call_global(B, "F"), 1000 + i);
        }
    for (int i = 0; i < N; i++)
        free(ms[i]);
    lua_close(A);
    lua_close(B);
    return 0;
}

static const test tests[] = {
    {"closures", test_closures}, {"file", test_file},     {"noted", test_noted},
    {"forward", test_forward},   {"shapes", test_shapes}, {"refuse_bytecode", test_refuse_bytecode},
    {"hostile", test_hostile},   {"files", test_files},   {"bounds", test_bounds},
    {"front", test_front},
};

int main(int argc, char **argv)
{
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
