/* test-fleet-wg.c: how a producer VM takes the 'W' notifications of its
 * WaitGroups (lua/fleet/fleet_wg.c): a change of a pending task waits for
 * the task's 'R' and applies only when all the task's changes came; one of
 * a finished task is dropped; one of another producer's task, or without a
 * task, applies at once; malformed elements (network input) change nothing.
 * Also the "WGID DELTA" lines of mutirao:task:ID:w. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "fleet_wg.h"
#include "goroutine.h"
#include "scheduler.h"
#include "test.h"

static lua_State *L;
static fleet_wgs *W;
static int carried = LUA_NOREF;

/* prodA:1 is pending, prodA:2 finished; other ids are another producer's */
static int which(void *ud, const char *id, const char *change, size_t clen)
{
    (void)ud;
    (void)change; /* fleet_pool.c pins the WaitGroup it names */
    (void)clen;
    if (!strcmp(id, "prodA:1"))
        return FLEET_WG_HOLD;
    if (!strcmp(id, "prodA:2"))
        return FLEET_WG_DROP;
    return FLEET_WG_APPLY;
}

static long long count(void)
{
    luaL_dostring(L, "return wg:count()");
    long long n = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return n;
}

static void note(const char *s, size_t len)
{
    fleet_wgs_note(L, W, s, len, which, NULL);
}

#define NOTE(lit) note(lit, sizeof lit - 1)

/* A WaitGroup at 5 named prodA/1, carried by an encoded task. */
static int setup(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 1);
    lua_setglobal(L, "G");
    ASSERT_NOT_NULL(sched_get(L));
    W = fleet_wgs_new(L, "prodA");
    ASSERT_EQ(
        luaL_dostring(L, "local w = G.wait_group() w:add(5) wg = w return function() w:done() end"),
        LUA_OK);
    fleet_submit_ctx sc;
    fleet_submit_ctx_init(&sc, W);
    codec_limits lim;
    codec_limits_default(&lim);
    lim.call = &sc.tc;
    char stack[512], err[200], *out = NULL;
    size_t outlen = 0;
    ASSERT_EQ(codec_encode_buf(L, 1, 1, &lim, stack, sizeof stack, &out, &outlen, err, sizeof err),
              0);
    if (out != stack)
        free(out);
    carried = sc.carried;
    lua_settop(L, 0);
    ASSERT_EQ(count(), 5);
    return 0;
}

static void teardown(void)
{
    fleet_wgs_release(L, W, &carried);
    fleet_wgs_free(W);
    lua_close(L);
}

static int t_without_task(void)
{
    ASSERT_EQ(setup(), 0);
    NOTE("prodA/1 -1"); /* an older worker's element */
    ASSERT_EQ(count(), 4);
    NOTE("prodA/1 -1\0prodB:7 1"); /* another producer's task */
    ASSERT_EQ(count(), 3);
    ASSERT_EQ(fleet_wgs_held(W, "prodB:7"), 0);
    teardown();
    return 0;
}

static int t_held_until_r(void)
{
    ASSERT_EQ(setup(), 0);
    NOTE("prodA/1 -1\0prodA:1 2");
    ASSERT_EQ(count(), 5);
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), -1); /* one of two */
    NOTE("prodA/1 -2\0prodA:1 2");
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), 1);
    ASSERT_EQ(count(), 5);
    fleet_wgs_settle(L, W, "prodA:1", 1);
    ASSERT_EQ(count(), 2);
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), 0);
    fleet_wgs_settle(L, W, "prodA:1", 1); /* nothing twice */
    ASSERT_EQ(count(), 2);
    teardown();
    return 0;
}

static int t_dropped(void)
{
    ASSERT_EQ(setup(), 0);
    /* a partial set is not applied (the record's :w is) */
    NOTE("prodA/1 -1\0prodA:1 2");
    fleet_wgs_settle(L, W, "prodA:1", 0);
    ASSERT_EQ(count(), 5);
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), 0);
    /* held changes whose 'R' was lost go with the next 'R' */
    NOTE("prodA/1 -1\0prodA:1 1");
    fleet_wgs_settle(L, W, "prodA:9", 1);
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), 0);
    ASSERT_EQ(count(), 5);
    /* a finished task's */
    NOTE("prodA/1 -1\0prodA:2 1");
    ASSERT_EQ(fleet_wgs_held(W, "prodA:2"), 0);
    ASSERT_EQ(count(), 5);
    teardown();
    return 0;
}

static int t_malformed(void)
{
    ASSERT_EQ(setup(), 0);
    static const struct {
        const char *s;
        size_t len;
    } bad[] = {
#define B(lit) {lit, sizeof lit - 1}
        B("prodA/1 -1\0"),
        B("prodA/1 -1\0prodA:1 "),
        B("prodA/1 -1\0prodA:1 x"),
        B("prodA/1 -1\0prodA:1 0"),
        B("prodA/1 -1\0prodA:1 -3"),
        B("\0prodA:1 1"),
        B("prodA/1 -1\0pro dA:1 1"),
        B("prodA/1 -1\0prodA:1 1 1"),
        B("prodA/1 -1\0prodA:1 123456789012345678901234567890"),
        B("prodA/1 -1\0prodB:7\0 1"),
#undef B
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        note(bad[i].s, bad[i].len);
        ASSERT_EQ(count(), 5);
        ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), 0);
    }
    /* a change naming no WaitGroup of this VM, or not a number */
    NOTE("prodA/2 -1\0prodB:7 1");
    NOTE("prodA/1\0prodB:7 1");
    ASSERT_EQ(count(), 5);
    teardown();
    return 0;
}

/* More changes than are held before an 'R' (a flood): the task's set is
 * then incomplete, never applied twice or in part. */
static int t_flood(void)
{
    ASSERT_EQ(setup(), 0);
    for (int i = 0; i < 5000; i++)
        NOTE("prodA/1 -1\0prodA:1 5000");
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), -1);
    fleet_wgs_settle(L, W, "prodA:1", 0);
    ASSERT_EQ(count(), 5);
    ASSERT_EQ(fleet_wgs_held(W, "prodA:1"), 0);
    teardown();
    return 0;
}

static int t_lines(void)
{
    ASSERT_EQ(setup(), 0);
    const char lines[] = "prodA/1 -1\nprodA/1 -2\n\nnot a change\nprodA/9 -1";
    fleet_wgs_apply_lines(L, W, lines, sizeof lines - 1);
    ASSERT_EQ(count(), 2);
    teardown();
    return 0;
}

int main(int argc, char **argv)
{
    static const test tests[] = {{"without_task", t_without_task},
                                 {"held_until_r", t_held_until_r},
                                 {"dropped", t_dropped},
                                 {"malformed", t_malformed},
                                 {"flood", t_flood},
                                 {"lines", t_lines}};
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
