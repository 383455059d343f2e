/*
** codec-bench.c: cost of sending a small pool task through the codec:
** a closure with 2 upvalues plus 2 arguments, encoded in one VM and
** decoded in another, with the per-VM function caches on and off, and the
** raw lua_dump / lua_load costs the caches avoid; and the same as source
** (what fleet producers send and workers compile). Each case reports the
** median of 5 rounds with the min and max of their totals. Not a test.
** Usage: codec-bench [ITERATIONS]
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static lua_State *vm(void)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    return L;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "%s: %s\n", what, err);
    exit(1);
}

/* The task: TASK(3, 4) with upvalues base (number) and cfg (table). */
static const char *setup =
    "local base, cfg = 10, {scale = 2}\n"
    "function MAKE() return function(x, y) return (x + y + base) * cfg.scale end end\n"
    "TASK = MAKE()";

typedef struct result {
    double enc_ns, dec_ns;
    size_t bytes;
    double min_ns, max_ns; /* totals of the fastest and slowest rounds */
} result;

/* Encodes TASK (or a fresh MAKE() each time) with 2 arguments in A and
   decodes in B, iters times. */
static result run(lua_State *A, lua_State *B, int iters, int fresh, int source)
{
    codec_limits lim, enc;
    codec_limits_default(&lim);
    codec_limits_default(&enc);
    lim.allow_bytecode = !source;
    lim.allow_source = source;
    enc.send_source = source;
    char err[256];
    result r = {0, 0, 0, 0, 0};
    for (int i = 0; i < iters; i++) {
        if (fresh)
            luaL_dostring(A, "TASK = MAKE()");
        lua_getglobal(A, "TASK");
        lua_pushinteger(A, 3);
        lua_pushinteger(A, 4);
        char *buf;
        size_t len;
        double t0 = now_ns();
        if (codec_encode(A, -3, 3, &enc, &buf, &len, err, sizeof err) != 0)
            die("encode", err);
        double t1 = now_ns();
        int n;
        if (codec_decode(B, buf, len, &lim, &n, err, sizeof err) != 0)
            die("decode", err);
        double t2 = now_ns();
        r.enc_ns += t1 - t0;
        r.dec_ns += t2 - t1;
        r.bytes = len;
        free(buf);
        lua_settop(A, 0);
        if (i == 0) { /* the task really runs on arrival */
            lua_call(B, 2, 1);
            if (lua_tointeger(B, -1) != 34)
                die("task", "wrong result");
        }
        lua_settop(B, 0);
    }
    r.enc_ns /= iters;
    r.dec_ns /= iters;
    return r;
}

static int by_total(const void *a, const void *b)
{
    const result *x = a, *y = b;
    double d = (x->enc_ns + x->dec_ns) - (y->enc_ns + y->dec_ns);
    return d < 0 ? -1 : d > 0;
}

/* 5 rounds of iters/5: the median round, with the min and max totals. */
static result rounds(lua_State *A, lua_State *B, int iters, int fresh, int source)
{
    result r[5];
    for (int k = 0; k < 5; k++)
        r[k] = run(A, B, iters / 5 + 1, fresh, source);
    qsort(r, 5, sizeof r[0], by_total);
    r[2].min_ns = r[0].enc_ns + r[0].dec_ns;
    r[2].max_ns = r[4].enc_ns + r[4].dec_ns;
    return r[2];
}

static void report(const char *name, result r)
{
    printf("%-48s encode %6.0f ns  decode %6.0f ns  total %6.0f ns (%.0f-%.0f)  (%zu bytes)\n",
           name, r.enc_ns, r.dec_ns, r.enc_ns + r.dec_ns, r.min_ns, r.max_ns, r.bytes);
}

static int writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    (void)p;
    *(size_t *)ud += n;
    return 0;
}

typedef struct rd {
    const char *p;
    size_t n;
} rd;

static const char *reader(lua_State *L, void *ud, size_t *size)
{
    (void)L;
    rd *r = ud;
    *size = r->n;
    r->n = 0;
    return *size ? r->p : NULL;
}

/* Raw lua_dump / lua_load of TASK, stripped or not. */
static void raw(lua_State *A, int iters, int strip)
{
    lua_getglobal(A, "string");
    lua_getfield(A, -1, "dump");
    lua_getglobal(A, "TASK");
    lua_pushboolean(A, strip);
    lua_call(A, 2, 1);
    size_t len;
    const char *bc = lua_tolstring(A, -1, &len);
    lua_getglobal(A, "TASK");
    size_t dumped = 0;
    double t0 = now_ns();
    for (int i = 0; i < iters; i++)
        lua_dump(A, writer, &dumped, strip);
    double t1 = now_ns();
    lua_pop(A, 1);
    lua_State *B = vm();
    double t2 = now_ns();
    for (int i = 0; i < iters; i++) {
        rd r = {bc, len};
        if (lua_load(B, reader, &r, "=b", "b") != LUA_OK)
            die("lua_load", lua_tostring(B, -1));
        lua_pop(B, 1);
    }
    double t3 = now_ns();
    printf("raw %-8s lua_dump %5.0f ns  lua_load %5.0f ns  (%zu bytes of bytecode)\n",
           strip ? "stripped" : "full", (t1 - t0) / iters, (t3 - t2) / iters, len);
    lua_close(B);
    lua_settop(A, 0);
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 200000;
    if (iters < 1)
        iters = 1;
    lua_State *A = vm(), *B = vm();
    if (luaL_dostring(A, setup) != LUA_OK)
        die("setup", lua_tostring(A, -1));
    run(A, B, 1000, 0, 0); /* warm up */
    run(A, B, 1000, 0, 1);
    report("same closure, caches on", rounds(A, B, iters, 0, 0));
    report("fresh closure of one prototype, caches on", rounds(A, B, iters, 1, 0));
    report("as source: same closure, caches on", rounds(A, B, iters, 0, 1));
    report("as source: fresh closure, caches on", rounds(A, B, iters, 1, 1));
    codec_cache_enable(A, 0);
    codec_cache_enable(B, 0);
    report("same closure, caches off", rounds(A, B, iters, 0, 0));
    report("fresh closure of one prototype, caches off", rounds(A, B, iters, 1, 0));
    codec_cache_enable(A, 1);
    codec_cache_enable(B, 1);
    raw(A, iters, 0);
    raw(A, iters, 1);
    codec_stats s;
    codec_stats_get(A, &s);
    printf("sender stats: dumps %llu, dump hits %llu\n", s.dumps, s.dump_hits);
    codec_stats_get(B, &s);
    printf("receiver stats: loads %llu, load hits %llu\n", s.loads, s.load_hits);
    lua_close(A);
    lua_close(B);
    return 0;
}
