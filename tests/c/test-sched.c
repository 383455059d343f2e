/* test-sched.c: the goroutine scheduler (lua/core/scheduler.c) driven from C on
 * a lua_State made with luaL_newstate + luaopen_goroutine.
 * Covers: spawning from C (with arguments), sched_run's return value (0 when
 * all ended, the number of blocked goroutines on a deadlock), the main
 * thread's deadlock error, sched_kill of a parked goroutine (its __close
 * handlers run, its handle fails with the reason), scope cancellation
 * cascading to child scopes and sparing siblings, scope deadlines, reuse of
 * goroutine records (free list), errors in goroutines, two independent
 * states, scope tags and scope_deadline, and lua_close with goroutines
 * still parked (run under ASan:
 * LeakSanitizer fails the test on any leak). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "async.h"
#include "goroutine.h"
#include "scheduler.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif
#define TEST_FAIL abort()
#include "test.h"

/* ---- fixture ---- */

static lua_State *L;
static sched *S;

static void setup(void)
{
    L = luaL_newstate();
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 1);
    lua_setglobal(L, "G");
    S = sched_get(L);
    ASSERT_NOT_NULL(S);
    ASSERT_PTR_EQ(sched_get(L), S); /* one scheduler per state */
    ASSERT_EQ(lua_gettop(L), 0);
}

static void teardown(void)
{
    lua_close(L);
    L = NULL;
    S = NULL;
}

static void dostring(const char *code)
{
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "Lua error: %s\n", lua_tostring(L, -1));
        abort();
    }
}

/* Spawns `code` (a chunk; its arguments arrive as ...) with nargs integer
 * arguments into scope sc (NULL: the root scope). */
static gor *spawn_code(const char *code, scope *sc, int nargs, const lua_Integer *args)
{
    int top = lua_gettop(L);
    ASSERT_EQ(luaL_loadstring(L, code), LUA_OK);
    for (int i = 0; i < nargs; i++)
        lua_pushinteger(L, args[i]);
    gor *g = sched_spawn(S, L, nargs, sc, NULL);
    ASSERT_NOT_NULL(g);
    ASSERT_EQ(lua_gettop(L), top); /* function and arguments popped */
    return g;
}

static lua_Integer global_int(const char *name)
{
    lua_getglobal(L, name);
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    return isnum ? v : -1;
}

static int global_bool(const char *name)
{
    lua_getglobal(L, name);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* Copies global string `name` into buf ("" when not a string). */
static const char *global_str(const char *name, char *buf, size_t len)
{
    lua_getglobal(L, name);
    const char *s = lua_tostring(L, -1);
    snprintf(buf, len, "%s", s ? s : "");
    lua_pop(L, 1);
    return buf;
}

/* Lets every ready goroutine run until it parks (no timer is due). */
static void run_ready(void)
{
    for (int i = 0; i < 50; i++)
        uv_run(S->loop, UV_RUN_NOWAIT);
}

static double ms_since(uint64_t t0)
{
    return (double)(uv_hrtime() - t0) / 1e6;
}

#define CLOSE_COUNTER                                                                              \
    "local _c <close> = setmetatable({}, {__close = function() closed = (closed or 0) + 1 end})\n"

/* ---- tests ---- */

static void test_spawn_from_c(void)
{
    setup();
    lua_Integer args[2] = {40, 2};
    gor *g = spawn_code("local a, b = ...\n"
                        "G.sleep(5)\n"
                        "result = a + b\n"
                        "nargs = select('#', ...)\n",
                        NULL, 2, args);
    ASSERT_EQ(g->state, G_READY);
    ASSERT_GT(g->id, 0);
    ASSERT_PTR_EQ(g->sc, &S->root);
    ASSERT_EQ(S->nlive, 1);
    ASSERT_EQ(global_int("result"), -1); /* not run yet */
    gor *g2 = spawn_code("second = true", NULL, 0, NULL);
    ASSERT_GT(g2->id, g->id);
    uint64_t t0 = uv_hrtime();
    ASSERT_EQ(sched_run(S), 0);
    ASSERT_GE(ms_since(t0), 4.9);
    ASSERT_EQ(global_int("result"), 42);
    ASSERT_EQ(global_int("nargs"), 2);
    ASSERT(global_bool("second"));
    ASSERT_EQ(S->nlive, 0);
    ASSERT_EQ(sched_run(S), 0); /* nothing left: returns at once */
    teardown();
}

static void test_main_thread_waits(void)
{
    setup();
    /* a wait in the main chunk (not a goroutine) runs the loop until done */
    dostring("G.spawn(function() G.sleep(10); flag = true end)\n"
             "local t0 = G.now(); G.sleep(20); waited = math.floor(G.now() - t0)\n");
    ASSERT(global_bool("flag"));
    ASSERT_GE(global_int("waited"), 19);
    ASSERT_LT(global_int("waited"), 1000);
    /* and reports a deadlock when nothing can wake it */
    ASSERT_NE(luaL_dostring(L, "local w = G.wait_group(); w:add(); w:wait()"), LUA_OK);
    ASSERT_CONTAINS(lua_tostring(L, -1), "deadlock");
    lua_pop(L, 1);
    ASSERT_EQ(sched_run(S), 0);
    teardown();
}

static void test_run_reports_deadlock(void)
{
    setup();
    dostring("wg = G.wait_group(); wg:add(1)\n"
             "for i = 1, 3 do G.spawn(function() wg:wait(); woken = (woken or 0) + 1 end) end\n"
             "G.spawn(function() G.sleep(1) end)\n");
    ASSERT_EQ(S->nlive, 4);
    ASSERT_EQ(sched_run(S), 3); /* three parked forever */
    ASSERT_EQ(S->nlive, 3);
    /* sched_dump_parked names each of them */
    FILE *f = tmpfile();
    ASSERT_NOT_NULL(f);
    sched_dump_parked(S, f);
    char buf[8192];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    int count = 0;
    for (const char *p = buf; (p = strstr(p, "[blocked]")); p++)
        count++;
    ASSERT_EQ(count, 3);
    ASSERT_CONTAINS(buf, "goroutine ");
    ASSERT_EQ(lua_gettop(L), 0);
    /* release them: the same scheduler runs on */
    dostring("wg:done()");
    ASSERT_EQ(sched_run(S), 0);
    ASSERT_EQ(global_int("woken"), 3);
    teardown();
}

static void test_kill_parked(void)
{
    setup();
    /* parked on a timer */
    gor *g = spawn_code(CLOSE_COUNTER "G.sleep(1e9)\nresumed = true\n", NULL, 0, NULL);
    run_ready();
    ASSERT_EQ(g->state, G_PARKED);
    ASSERT_EQ(global_int("closed"), -1);
    sched_kill(S, g, "killed from C");
    ASSERT_EQ(g->state, G_DEAD);
    ASSERT_EQ(global_int("closed"), 1); /* its __close handler ran */
    ASSERT_EQ(S->nlive, 0);
    sched_kill(S, g, "again"); /* a dead goroutine: no-op */
    ASSERT_EQ(global_int("closed"), 1);
    uint64_t t0 = uv_hrtime();
    ASSERT_EQ(sched_run(S), 0); /* its timer is gone: returns at once */
    ASSERT_LT(ms_since(t0), 1000);
    ASSERT(!global_bool("resumed"));

    /* parked on a wait list (WaitGroup) */
    dostring("wg = G.wait_group(); wg:add()");
    g = spawn_code(CLOSE_COUNTER "wg:wait()\nresumed = true\n", NULL, 0, NULL);
    run_ready();
    ASSERT_EQ(g->state, G_PARKED);
    ASSERT_NOT_NULL(g->on);
    sched_kill(S, g, NULL);
    ASSERT_NULL(g->on); /* unlinked from the waiters */
    ASSERT_EQ(global_int("closed"), 2);
    dostring("wg:done()"); /* must not wake the dead one */
    ASSERT_EQ(sched_run(S), 0);
    ASSERT(!global_bool("resumed"));

    /* an async goroutine: its handle fails with the reason */
    dostring("h = G.async(function() G.sleep(1e9) end)");
    run_ready();
    g = scope_newest(&S->root); /* the most recent member */
    ASSERT_NOT_NULL(g);
    ASSERT_NOT_NULL(g->handle);
    sched_kill(S, g, "killed from C");
    dostring("ok, err = G.await(h)");
    ASSERT(!global_bool("ok"));
    char buf[128];
    ASSERT_STR_EQ(global_str("err", buf, sizeof buf), "killed from C");
    ASSERT_EQ(sched_run(S), 0);
    teardown();
}

static void test_scope_cascade(void)
{
    setup();
    scope *parent = scope_new(S, &S->root, UINT64_MAX);
    scope *child = scope_new(S, parent, UINT64_MAX);
    scope *grand = scope_new(S, child, UINT64_MAX);
    scope *sibling = scope_new(S, &S->root, UINT64_MAX);
    ASSERT_NOT_NULL(parent);
    ASSERT_NOT_NULL(child);
    ASSERT_NOT_NULL(grand);
    ASSERT_NOT_NULL(sibling);
    ASSERT_PTR_EQ(child->parent, parent);
    ASSERT_PTR_EQ(grand->parent, child);
    const char *sleeper = CLOSE_COUNTER "G.sleep(1e9)\nresumed = true\n";
    scope *all[] = {parent, child, grand, sibling};
    for (int i = 0; i < 4; i++) {
        spawn_code(sleeper, all[i], 0, NULL);
        spawn_code(sleeper, all[i], 0, NULL);
    }
    run_ready();
    ASSERT_EQ(S->nlive, 8);
    ASSERT_EQ(parent->nlive, 3); /* 2 members + the live child scope */
    ASSERT_EQ(child->nlive, 3);
    ASSERT_EQ(grand->nlive, 2);

    scope_cancel(parent, "stop now");
    ASSERT_EQ(global_int("closed"), 6); /* all of parent, child, grand */
    ASSERT_EQ(S->nlive, 2);             /* the sibling's two live on */
    ASSERT(parent->cancelled);
    ASSERT(child->cancelled);
    ASSERT(grand->cancelled);
    ASSERT(!sibling->cancelled);
    ASSERT_STR_EQ(grand->reason, "stop now");
    ASSERT_EQ(grand->nlive, 0);
    ASSERT_EQ(parent->nlive, 0);
    ASSERT_NULL(scope_newest(parent));

    /* spawning into a cancelled scope kills the goroutine at birth */
    gor *g = spawn_code("born_ran = true", grand, 0, NULL);
    ASSERT_EQ(g->state, G_DEAD);
    ASSERT_EQ(S->nlive, 2);
    /* a scope created under a cancelled one starts cancelled */
    scope *late = scope_new(S, child, UINT64_MAX);
    ASSERT(late->cancelled);
    ASSERT_STR_EQ(late->reason, "stop now");
    scope_release(late);

    scope_cancel(sibling, NULL);
    ASSERT_STR_EQ(sibling->reason, "cancelled");
    ASSERT_EQ(global_int("closed"), 8);
    ASSERT_EQ(S->nlive, 0);
    scope_cancel(sibling, "twice"); /* no-op */
    ASSERT_STR_EQ(sibling->reason, "cancelled");

    scope_release(grand);
    scope_release(child);
    scope_release(parent);
    scope_release(sibling);
    ASSERT_EQ(sched_run(S), 0);
    ASSERT(!global_bool("resumed"));
    ASSERT(!global_bool("born_ran"));
    teardown();
}

static void test_scope_deadline(void)
{
    setup();
    scope *sc = scope_new(S, &S->root, 30 * 1000000ull);
    ASSERT_NE(sc->eff_deadline, 0);
    scope *inner = scope_new(S, sc, UINT64_MAX); /* inherits the deadline */
    ASSERT_EQ(inner->eff_deadline, sc->eff_deadline);
    spawn_code(CLOSE_COUNTER "G.sleep(1e9)", sc, 0, NULL);
    /* CPU-bound: stopped by preemption. Under TSan the signal that drives
     * it waits for the thread's next intercepted call, which a pure Lua
     * loop never makes: there the inner goroutine sleeps instead. */
    spawn_code(UNDER_TSAN ? CLOSE_COUNTER "G.sleep(1e9)" : CLOSE_COUNTER "while true do end", inner,
               0, NULL);
    uint64_t t0 = uv_hrtime();
    ASSERT_EQ(sched_run(S), 0);
    double ms = ms_since(t0);
    ASSERT_GE(ms, 29);
    ASSERT_LT(ms, 2000);
    ASSERT(sc->cancelled);
    ASSERT(inner->cancelled);
    ASSERT_EQ(global_int("closed"), 2);
    scope_release(inner);
    scope_release(sc);
    teardown();
}

/* scope tags: the slot holds the running goroutine's scope tag, inherited
 * by child scopes, NULL outside a resume; tag_free runs once, when the
 * tagged scope is freed. And scope_deadline. */
static void *tag_slot;
static int tag_frees;
static void *tag_freed;

static void count_tag_free(void *tag)
{
    tag_frees++;
    tag_freed = tag;
}

static int peek_tag(lua_State *l)
{
    lua_pushlightuserdata(l, tag_slot);
    return 1;
}

static void test_scope_tags(void)
{
    setup();
    static int account;
    tag_slot = NULL;
    tag_frees = 0;
    sched_set_tag_slot(S, &tag_slot);
    lua_register(L, "peek", peek_tag);
    scope *sc = scope_new(S, &S->root, UINT64_MAX);
    scope_set_tag(sc, &account, count_tag_free);
    scope *inner = scope_new(S, sc, UINT64_MAX);
    ASSERT_PTR_EQ(inner->tag, &account);
    ASSERT_NULL(inner->tag_free);
    spawn_code("outer = peek() G.sleep(5) outer2 = peek()", sc, 0, NULL);
    spawn_code("inner = peek()", inner, 0, NULL);
    spawn_code("root = peek()", NULL, 0, NULL);
    ASSERT_EQ(sched_run(S), 0);
    ASSERT_NULL(tag_slot); /* outside a resume */
    const char *names[] = {"outer", "outer2", "inner"};
    for (int i = 0; i < 3; i++) {
        lua_getglobal(L, names[i]);
        ASSERT_PTR_EQ(lua_touserdata(L, -1), &account);
        lua_pop(L, 1);
    }
    lua_getglobal(L, "root");
    ASSERT_NULL(lua_touserdata(L, -1));
    lua_pop(L, 1);
    ASSERT_EQ(tag_frees, 0); /* still held */
    scope_release(inner);
    ASSERT_EQ(tag_frees, 0);
    scope_release(sc);
    ASSERT_EQ(tag_frees, 1);
    ASSERT_PTR_EQ(tag_freed, &account);

    /* scope_deadline: the earliest armed deadline up the chain */
    ASSERT_EQ(scope_deadline(&S->root), 0);
    scope *a = scope_new(S, &S->root, 1000 * 1000000ull);
    scope *b = scope_new(S, a, UINT64_MAX);
    scope *c = scope_new(S, b, 100 * 1000000ull);
    ASSERT_EQ(scope_deadline(a), a->deadline.due);
    ASSERT_EQ(scope_deadline(b), a->deadline.due);
    ASSERT_EQ(scope_deadline(c), c->deadline.due);
    ASSERT_LT(scope_deadline(c), scope_deadline(a));
    scope_cancel(c, NULL);
    uint64_t now = sched_now_ns();
    ASSERT_LE(scope_deadline(c), sched_now_ns());
    ASSERT_GE(scope_deadline(c), now);
    scope_release(c);
    scope_release(b);
    scope_release(a);
    sched_set_tag_slot(S, NULL);
    teardown();
    ASSERT_EQ(tag_frees, 1);
}

static void test_free_list(void)
{
    enum { N = 1000 };
    setup();
    static gor *first[N];
    for (int i = 0; i < N; i++) {
        lua_Integer a = i;
        first[i] = spawn_code("local i = ...; count = (count or 0) + 1", NULL, 1, &a);
    }
    int nfree0 = S->nfree;
    ASSERT_EQ(sched_run(S), 0);
    ASSERT_EQ(global_int("count"), N);
    ASSERT_EQ(S->nfree, nfree0 + N);
    uint64_t maxid = 0;
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(first[i]->state, G_DEAD);
        if (first[i]->id > maxid)
            maxid = first[i]->id;
    }
    lua_gc(L, LUA_GCCOLLECT, 0); /* records on the free list stay anchored */
    for (int i = 0; i < N; i++) {
        gor *g = spawn_code("count = count + 1", NULL, 0, NULL);
        int found = 0;
        for (int j = 0; j < N && !found; j++)
            found = (first[j] == g);
        ASSERT(found);           /* a record of the first batch */
        ASSERT_GT(g->id, maxid); /* with a fresh id */
        ASSERT_PTR_EQ(gor_of(g->L), g);
    }
    ASSERT_EQ(S->nfree, nfree0);
    ASSERT_EQ(sched_run(S), 0);
    ASSERT_EQ(global_int("count"), 2 * N);
    ASSERT_EQ(S->nfree, nfree0 + N);

    /* a burst: 6000 goroutines alive at once, then ended; their records
     * are kept, and each GC cycle returns half of those beyond FREE_KEEP
     * (1024) to the collector */
    dostring("wg = G.wait_group(); wg:add(6000)\n"
             "for i = 1, 6000 do G.spawn(function() G.sleep(1); wg:done() end) end\n"
             "wg:wait()");
    ASSERT_EQ(sched_run(S), 0);
    int burst = S->nfree;
    ASSERT_GE(burst, 1024);
    lua_gc(L, LUA_GCCOLLECT, 0);
    ASSERT_LT(S->nfree, burst);
    for (int i = 0; i < 30; i++)
        lua_gc(L, LUA_GCCOLLECT, 0);
    ASSERT_GT(S->nfree, 0);
    ASSERT_LE(S->nfree, 1024);
    /* the records dropped from the free list are collectable and gone;
     * the state still works */
    dostring("local h = G.async(function() return 7 end); ok, v = G.await(h)");
    ASSERT(global_bool("ok"));
    ASSERT_EQ(global_int("v"), 7);
    teardown();
}

static void test_errors(void)
{
    setup();
    dostring("errs = {}\n"
             "G._set_error_handler(function(msg, id) errs[#errs + 1] = msg; last_id = id end)");
    gor *g = spawn_code("error('boom from C test')", NULL, 0, NULL);
    uint64_t id = g->id;
    spawn_code("G.sleep(2); survivor = true", NULL, 0, NULL);
    ASSERT_EQ(sched_run(S), 0);
    dostring("nerrs = #errs; first = errs[1]");
    ASSERT_EQ(global_int("nerrs"), 1);
    ASSERT_EQ(global_int("last_id"), (lua_Integer)id);
    char buf[1024];
    global_str("first", buf, sizeof buf);
    ASSERT_CONTAINS(buf, "boom from C test");
    ASSERT_CONTAINS(buf, "stack traceback");
    ASSERT(global_bool("survivor"));
    /* the errored record is reusable */
    spawn_code("after_error = true", NULL, 0, NULL);
    ASSERT_EQ(sched_run(S), 0);
    ASSERT(global_bool("after_error"));
    teardown();
}

/* An allocator with a ceiling, to run out of memory on purpose. */
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
    if (p)
        b->used = b->used - old + nsize;
    return p;
}

/* spawn_many: a count it cannot honour is an argument error; running out of
 * memory part-way is an error pcall catches, with none of the goroutines
 * left behind (the ones it had started are taken back, earlier ones stay),
 * their memory collectable, and the state usable. From the main thread
 * (root scope) and from a goroutine. */
static void test_spawn_many_out_of_memory(void)
{
    budget bd = {0, (size_t)-1};
    L = lua_newstate(limited_alloc, &bd);
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 1);
    lua_setglobal(L, "G");
    S = sched_get(L);
    dostring("ok, err = pcall(G.spawn_many, 1e15, print)");
    ASSERT(!global_bool("ok"));
    char buf[256];
    ASSERT_CONTAINS(global_str("err", buf, sizeof buf),
                    "spawn_many' (count too large (at most 10000000))");
    ASSERT_EQ(S->nlive, 0);

    dostring("G.spawn(function() early = true end)\n"
             "f = function(id) ran = (ran or 0) + 1 end");
    lua_gc(L, LUA_GCCOLLECT, 0);
    size_t base = bd.used;
    bd.limit = base + 2 * 1024 * 1024; /* room for about 2,000 goroutines */
    dostring("ok, err = pcall(G.spawn_many, 100000, f)");
    ASSERT(!global_bool("ok"));
    ASSERT_STR_EQ(global_str("err", buf, sizeof buf), "not enough memory");
    ASSERT_EQ(S->nlive, 1); /* only the earlier goroutine */
    lua_gc(L, LUA_GCCOLLECT, 0);
    ASSERT_LT(bd.used, base + 256 * 1024); /* the taken back ones are garbage */
    dostring("G.spawn_many(3, f)");        /* still fits and works */
    ASSERT_EQ(sched_run(S), 0);
    ASSERT(global_bool("early"));
    ASSERT_EQ(global_int("ran"), 3);

    /* from a goroutine, in a scope of its own: its sibling is not touched */
    dostring("ran = 0\n"
             "G.timeout(1e9, function()\n"
             "    G.spawn(function() G.sleep(1); sibling = true end)\n"
             "    ok, err = pcall(G.spawn_many, 100000, f)\n"
             "    live_inside = true\n"
             "end)");
    ASSERT(!global_bool("ok"));
    ASSERT_STR_EQ(global_str("err", buf, sizeof buf), "not enough memory");
    ASSERT(global_bool("live_inside"));
    ASSERT_EQ(sched_run(S), 0);
    ASSERT(global_bool("sibling"));
    ASSERT_EQ(global_int("ran"), 0);
    bd.limit = (size_t)-1;
    teardown();
}

static void test_two_states(void)
{
    lua_State *A, *B;
    sched *sa, *sb;
    setup();
    A = L;
    sa = S;
    setup();
    B = L;
    sb = S;
    ASSERT_PTR_NE(sa, sb);
    ASSERT_PTR_NE(sa->loop, sb->loop);
    L = A;
    S = sa;
    spawn_code("G.sleep(5); who = 'A'", NULL, 0, NULL);
    L = B;
    S = sb;
    spawn_code("G.sleep(5); who = 'B'", NULL, 0, NULL);
    ASSERT_EQ(sb->nlive, 1);
    ASSERT_EQ(sa->nlive, 1);
    ASSERT_EQ(sched_run(sb), 0);
    ASSERT_EQ(sa->nlive, 1); /* A's goroutine did not run on B's loop */
    char buf[8];
    ASSERT_STR_EQ(global_str("who", buf, sizeof buf), "B");
    teardown();
    L = A;
    S = sa;
    ASSERT_EQ(sched_run(sa), 0);
    ASSERT_STR_EQ(global_str("who", buf, sizeof buf), "A");
    teardown();
}

/* lua_close while goroutines are parked in every way, or never ran: all
 * memory is freed (LeakSanitizer checks at exit in the ASan build) and
 * nothing is touched after it is freed. */
static void test_close_with_parked(void)
{
    setup();
    dostring("wg = G.wait_group(); wg:add()\n"
             "never = G.async(function() wg:wait() end)\n"
             "for i = 1, 50 do G.spawn(function() G.sleep(1e9) end) end\n"
             "for i = 1, 50 do G.spawn(function() wg:wait() end) end\n"
             "for i = 1, 50 do G.spawn(function() G.await(never) end) end\n"
             "for i = 1, 20 do G.spawn(function() G.timeout(1e9, function()\n"
             "    G.spawn(function() G.sleep(1e9) end); G.sleep(1e9) end) end) end\n"
             "for i = 1, 20 do G.spawn(function() G._run_scope({ label = 'x', timeout_ms = 1e9 },\n"
             "    function() G.spawn(function() wg:wait() end); wg:wait() end) end) end\n"
             "handles = {}\n"
             "for i = 1, 20 do handles[i] = G.async(function() G.sleep(1e9) end) end\n"
             "G.spawn(function() G.await_all(handles) end)\n");
    run_ready();
    ASSERT_GT(S->nlive, 250);
    /* and some that never ran at all */
    for (int i = 0; i < 10; i++)
        spawn_code(CLOSE_COUNTER "G.sleep(1)", NULL, 0, NULL);
    teardown();

    /* a state whose scheduler was created but never ran */
    setup();
    dostring("G.spawn(function() end)");
    teardown();

    /* a closed-over scope held by a live C caller is not our concern;
     * scopes held by Lua handles are released by the handles' __gc */
    setup();
    dostring("t = {}\n"
             "for i = 1, 10 do G.spawn(function() t[i] = G.timeout(5, function() G.sleep(1e9) end) "
             "end) end");
    ASSERT_EQ(sched_run(S), 0);
    teardown();
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"spawn_from_c", test_spawn_from_c},
        {"main_thread_waits", test_main_thread_waits},
        {"run_reports_deadlock", test_run_reports_deadlock},
        {"kill_parked", test_kill_parked},
        {"scope_cascade", test_scope_cascade},
        {"scope_deadline", test_scope_deadline},
        {"scope_tags", test_scope_tags},
        {"free_list", test_free_list},
        {"errors", test_errors},
        {"spawn_many_out_of_memory", test_spawn_many_out_of_memory},
        {"two_states", test_two_states},
        {"close_with_parked", test_close_with_parked},
    };
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        printf("test-sched: %s\n", tests[i].name);
        tests[i].fn();
    }
    printf("test-sched: ok\n");
    return 0;
}
