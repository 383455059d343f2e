/* test-memlimit.c: the pool VMs' accounting allocator (lua/pool/memlimit.h)
 * on a state of its own, driven from C: charges and credits, the limit
 * (Lua raises "not enough memory", caught by lua_pcall), no limit outside an
 * account, growth moving a block to the running account, an account that
 * outlives its task until its last block goes, and states made otherwise.
 * Run under ASan: LeakSanitizer fails the test on a leaked account or
 * block, ASan on an account freed too early. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "memlimit.h"
#include "test.h"

#define MB ((size_t)1 << 20)

/* Pushes a string of n bytes, built in a protected call; returns the
 * status (LUA_OK, or LUA_ERRMEM with the message on the stack). */
static int make_string(lua_State *L, size_t n)
{
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "rep");
    lua_remove(L, -2);
    lua_pushliteral(L, "x");
    lua_pushinteger(L, (lua_Integer)n);
    return lua_pcall(L, 2, 1, 0);
}

/* Runs code; returns its status (luaL_dostring gives only 0 or 1). */
static int run(lua_State *L, const char *code)
{
    int rc = luaL_loadstring(L, code);
    return rc != LUA_OK ? rc : lua_pcall(L, 0, 0, 0);
}

static void collect(lua_State *L)
{
    lua_gc(L, LUA_GCCOLLECT, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
}

static int test_charges_and_limit(void)
{
    memheap *h = NULL;
    lua_State *L = memheap_newstate(&h);
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    memacct *a = memacct_new(L, 4 * MB);
    ASSERT_NOT_NULL(a);
    ASSERT_EQ(memacct_used(a), 0);
    ASSERT_NULL(memacct_switch(L, a));
    /* 1 MB held: charged (a little more for the string's header) */
    ASSERT_EQ(make_string(L, MB), LUA_OK);
    size_t held = memacct_used(a);
    ASSERT_GE(held, MB);
    ASSERT_LT(held, 3 * MB); /* (string.rep's buffer may not be collected yet) */
    /* 8 MB would pass the limit: refused, the state goes on */
    ASSERT_EQ(make_string(L, 8 * MB), LUA_ERRMEM);
    ASSERT_STR_EQ(lua_tostring(L, -1), "not enough memory");
    lua_pop(L, 1);
    ASSERT_LE(memacct_used(a), 4 * MB);
    /* without an account nothing is limited */
    ASSERT_PTR_EQ(memacct_switch(L, NULL), a);
    ASSERT_EQ(make_string(L, 8 * MB), LUA_OK);
    lua_pop(L, 1);
    collect(L);
    /* dropping the 1 MB string credits the account */
    lua_pop(L, 1);
    collect(L);
    ASSERT_LT(memacct_used(a), 64 * 1024);
    /* the account again: what was refused once fits after the collection */
    memacct_switch(L, a);
    ASSERT_EQ(make_string(L, 3 * MB / 2), LUA_OK);
    lua_pop(L, 1);
    memacct_switch(L, NULL);
    memacct_close(a); /* blocks still charged to it keep it */
    lua_close(L);     /* the last of them free it */
    memheap_free(h);
    return 0;
}

static int test_growth_moves_the_block(void)
{
    memheap *h = NULL;
    lua_State *L = memheap_newstate(&h);
    ASSERT_NOT_NULL(L);
    luaL_openlibs(L);
    memacct *a = memacct_new(L, 64 * MB), *b = memacct_new(L, 2 * MB);
    ASSERT(a && b);
    /* a table grown under a, then grown further under b: the whole array
     * becomes b's (and passes b's limit) */
    memacct_switch(L, a);
    ASSERT_EQ(run(L, "t = {} for i = 1, 100000 do t[i] = i end"), LUA_OK);
    size_t a_used = memacct_used(a);
    ASSERT_GE(a_used, 100000 * sizeof(lua_Integer));
    memacct_switch(L, b);
    int rc = run(L, "for i = 100001, 300000 do t[i] = i end");
    ASSERT_EQ(rc, LUA_ERRMEM);
    lua_pop(L, 1);
    ASSERT_LE(memacct_used(b), 2 * MB);
    /* the refused growth left a's array alone (the emergency collection
     * may have freed a's garbage: the chunk compiled above) */
    ASSERT_GE(memacct_used(a), a_used - 64 * 1024);
    /* b with room: the array moves to b, a is credited */
    memacct_switch(L, NULL);
    memacct *c = memacct_new(L, 64 * MB);
    memacct_switch(L, c);
    ASSERT_EQ(run(L, "for i = 100001, 300000 do t[i] = i end"), LUA_OK);
    ASSERT_LT(memacct_used(a), a_used / 2);
    ASSERT_GE(memacct_used(c), 200000 * sizeof(lua_Integer));
    /* shrinking (a collection shrinks the string table and tables) never
     * fails, even with an account full */
    memacct_switch(L, b);
    ASSERT_EQ(run(L, "t = nil"), LUA_OK);
    collect(L);
    memacct_switch(L, NULL);
    ASSERT_LT(memacct_used(c), 64 * 1024);
    memacct_close(a);
    memacct_close(b);
    memacct_close(c);
    lua_close(L);
    memheap_free(h);
    return 0;
}

static int test_other_states(void)
{
    lua_State *L = luaL_newstate();
    ASSERT_NOT_NULL(L);
    ASSERT_NULL(memacct_new(L, MB)); /* not a memheap: no account */
    ASSERT_NULL(memacct_switch(L, NULL));
    lua_close(L);
    memheap *h = NULL;
    L = memheap_newstate(&h);
    ASSERT_NOT_NULL(L);
    ASSERT_NULL(memacct_new(L, 0));
    memacct_close(NULL);
    /* warnings are off until "@on", as with luaL_newstate */
    lua_warning(L, "not shown", 0);
    lua_warning(L, "@on", 0);
    lua_warning(L, "@off", 0);
    lua_close(L);
    memheap_free(h);
    return 0;
}

int main(int argc, char **argv)
{
    static const test tests[] = {
        {"charges_and_limit", test_charges_and_limit},
        {"growth_moves_the_block", test_growth_moves_the_block},
        {"other_states", test_other_states},
    };
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
