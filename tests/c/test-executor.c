/* test-executor.c: the executor (lua/pool/executor.c) driven from C:
 * executor_take_queued gives the queued tasks back (none of them runs, no
 * done callback, the counters forget them, they can be submitted again),
 * leaves the running ones alone, and a closed executor's drained hook fires
 * once either way; a small task's outcome reuses its buffer unless the
 * input there is kept for another run. Run under ASan to see leaks. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "executor.h"
#include "goroutine.h"
#include "scheduler.h"
#include "test.h"

static lua_State *L;
static sched *S;

#define NT 6
typedef struct item {
    ex_task x; /* first: done gets &x */
    char id[16];
    char *in;       /* the encoded task when larger than x.buf */
    int done;       /* done callback calls */
    int ok;         /* its outcome */
    long value;     /* its first returned integer */
    int out_in_buf; /* its outcome was written into x.buf */
    int in_intact;  /* x.in still held the bytes prepare encoded */
    char enc[sizeof(((ex_task *)0)->buf)];
    size_t enclen; /* prepare's encoding (when it fit x.buf) */
} item;

static item items[NT];
static int waiting;        /* done callbacks still due before the loop may end */
static atomic_int drained; /* on_drained runs on a VM thread */

static void on_done(sched *owner, ex_task *x)
{
    item *it = (item *)x;
    it->done++;
    it->ok = x->ok;
    it->value = -1;
    it->out_in_buf = x->out == x->buf;
    it->in_intact = x->inlen == it->enclen && memcmp(x->in, it->enc, it->enclen) == 0;
    if (owner && x->ok) {
        int n = 0;
        if (codec_decode(L, x->out, x->outlen, NULL, &n, NULL, 0) == 0) {
            if (n >= 1 && lua_isinteger(L, -n))
                it->value = (long)lua_tointeger(L, -n);
            lua_pop(L, n);
        }
    }
    ex_task_release(x);
    if (--waiting == 0)
        sched_unhold(S);
}

static void on_drained(void *ud)
{
    (void)ud;
    atomic_fetch_add(&drained, 1);
}

/* Encodes `return function(...) ... end` (code) with argument arg into it. */
static int prepare(item *it, int k, const char *code, long arg)
{
    memset(it, 0, sizeof *it);
    if (luaL_dostring(L, code) != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        return -1;
    }
    lua_pushinteger(L, arg);
    char err[128];
    char *out;
    size_t len;
    int rc = codec_encode_buf(L, lua_gettop(L) - 1, 2, NULL, it->x.buf, sizeof it->x.buf, &out,
                              &len, err, sizeof err);
    lua_pop(L, 2);
    if (rc != 0) {
        fprintf(stderr, "encode: %s\n", err);
        return -1;
    }
    if (out != it->x.buf)
        it->in = out;
    if (len <= sizeof it->enc) {
        memcpy(it->enc, out, len);
        it->enclen = len;
    }
    it->x.in = out;
    it->x.inlen = len;
    snprintf(it->id, sizeof it->id, "t%d", k);
    it->x.id = it->id;
    it->x.pool = "test";
    it->x.done = on_done;
    return 0;
}

static const char SLOW[] = "return function(x) require('goroutine').sleep(200) return x end";
static const char FAST[] = "return function(x) return x * 10 end";

/* Runs the loop until `n` more done callbacks came. */
static void run_until(int n)
{
    waiting = n;
    sched_hold(S);
    sched_run(S);
}

static void setup(void)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 1);
    lua_pop(L, 1);
    S = sched_get(L);
    drained = 0;
}

static void teardown(void)
{
    for (int i = 0; i < NT; i++)
        free(items[i].in);
    lua_close(L);
}

static int take_queued(void)
{
    setup();
    ex_hooks h = {.drained = on_drained};
    executor *ex = executor_new(1, &h);
    ASSERT(ex != NULL);
    ASSERT_EQ(prepare(&items[0], 0, SLOW, 7), 0);
    for (int i = 1; i < NT; i++)
        ASSERT_EQ(prepare(&items[i], i, FAST, i), 0);
    for (int i = 0; i < NT; i++)
        ASSERT_EQ(executor_submit(ex, &items[i].x, S, -1, NULL), EX_OK);
    ex_stats st;
    executor_stats(ex, &st);
    ASSERT_EQ(st.running, 1);
    ASSERT_EQ(st.queued, NT - 1);
    ASSERT_EQ(st.submitted, NT);

    /* the slow one runs; the others come back in their order */
    int n = -1;
    ex_task *back = executor_take_queued(ex, &n);
    ASSERT_EQ(n, NT - 1);
    int k = 1;
    for (ex_task *t = back; t; t = t->next, k++) {
        ASSERT_PTR_EQ(t, &items[k].x);
        ASSERT(t->owner == NULL && t->ex == NULL);
    }
    ASSERT_EQ(k, NT);
    executor_stats(ex, &st);
    ASSERT_EQ(st.running, 1);
    ASSERT_EQ(st.queued, 0);
    ASSERT_EQ(st.submitted, 1);
    ASSERT(executor_take_queued(ex, &n) == NULL);
    ASSERT_EQ(n, 0);

    run_until(1);
    ASSERT_EQ(items[0].done, 1);
    ASSERT_EQ(items[0].ok, 1);
    ASSERT_EQ(items[0].value, 7);
    for (int i = 1; i < NT; i++)
        ASSERT_EQ(items[i].done, 0); /* none of them ran */
    executor_stats(ex, &st);
    ASSERT_EQ(st.completed, 1);
    ASSERT_EQ(st.failed, 0);

    /* given back, a task is the caller's again: it can be submitted anew */
    ASSERT_EQ(executor_submit(ex, &items[3].x, S, -1, NULL), EX_OK);
    run_until(1);
    ASSERT_EQ(items[3].done, 1);
    ASSERT_EQ(items[3].value, 30);
    for (int i = 1; i < NT; i++)
        ASSERT_EQ(items[i].done, i == 3);
    ASSERT_EQ(atomic_load(&drained), 0); /* never closed */
    executor_unref(ex);
    teardown();
    return 0;
}

/* A closed executor still running one task: taking the queue back does not
 * drain it, the running task's end does (once). */
static int closed_drains_once(void)
{
    setup();
    ex_hooks h = {.drained = on_drained};
    executor *ex = executor_new(1, &h);
    ASSERT(ex != NULL);
    ASSERT_EQ(prepare(&items[0], 0, SLOW, 1), 0);
    ASSERT_EQ(prepare(&items[1], 1, FAST, 2), 0);
    ASSERT_EQ(prepare(&items[2], 2, FAST, 3), 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(executor_submit(ex, &items[i].x, S, -1, NULL), EX_OK);
    executor_close(ex);
    int n;
    ASSERT(executor_take_queued(ex, &n) != NULL);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(atomic_load(&drained), 0);
    run_until(1);
    ASSERT_EQ(items[0].done, 1);
    ASSERT_EQ(atomic_load(&drained), 1);
    ASSERT_EQ(items[1].done + items[2].done, 0);
    ASSERT_EQ(executor_submit(ex, &items[1].x, S, -1, NULL), EX_ECLOSED);
    ASSERT(executor_take_queued(ex, &n) == NULL); /* nothing queued: no second drain */
    ASSERT_EQ(atomic_load(&drained), 1);
    executor_unref(ex);
    teardown();
    return 0;
}

/* A task whose input lies in its buffer: the outcome is written over it
 * (it was decoded first) unless keep_in says a retry decodes it again. */
static int keep_in(void)
{
    setup();
    ex_hooks h = {.drained = on_drained};
    executor *ex = executor_new(1, &h);
    ASSERT(ex != NULL);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(prepare(&items[i], i, FAST, 4 + i), 0);
        ASSERT_PTR_EQ(items[i].x.in, items[i].x.buf); /* small: encoded in place */
        items[i].x.keep_in = i == 1;
        ASSERT_EQ(executor_submit(ex, &items[i].x, S, -1, NULL), EX_OK);
    }
    run_until(2);
    ASSERT_EQ(items[0].value, 40);
    ASSERT_EQ(items[0].out_in_buf, 1); /* no allocation for a small outcome */
    ASSERT_EQ(items[0].in_intact, 0);
    ASSERT_EQ(items[1].value, 50);
    ASSERT_EQ(items[1].out_in_buf, 0);
    ASSERT_EQ(items[1].in_intact, 1);
    /* run again from the kept input: the same outcome */
    items[1].done = 0;
    ASSERT_EQ(executor_submit(ex, &items[1].x, S, -1, NULL), EX_OK);
    run_until(1);
    ASSERT_EQ(items[1].done, 1);
    ASSERT_EQ(items[1].value, 50);
    ASSERT_EQ(items[1].in_intact, 1);
    executor_unref(ex);
    teardown();
    return 0;
}

int main(int argc, char **argv)
{
    static const test tests[] = {
        {"take_queued", take_queued},
        {"closed_drains_once", closed_drains_once},
        {"keep_in", keep_in},
    };
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
