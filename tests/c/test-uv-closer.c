/*
** test-uv-closer.c: tests of the counted close (shared/base/uv_closer.h). An
** owner, malloc'd, embeds handles of several kinds (timer, check, async,
** idle); the free function must run exactly once, after the close callback
** of its last handle, whether the handles are closed before uv_run, from
** inside one of their own callbacks while the loop runs, or across loop
** turns. The owner really is freed: run under valgrind or ASan, a use after
** free fails the test too.
** Run all: test-uv-closer; run one: test-uv-closer NAME.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* Most checks run inside libuv callbacks: a failure ends the process. */
#define TEST_FAIL abort()
#include "test.h"
#include "uv_closer.h"

enum { K_TIMER, K_CHECK, K_ASYNC, K_IDLE, NKINDS };

typedef struct owner {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_check_t check;
    uv_async_t async;
    uv_idle_t idle;
    int has[NKINDS]; /* which of the handles are initialized */
    uvc_closer closer;
} owner;

/* what the free function saw; reset by each test */
static int nfreed;
static const void *freed_addr[8];

/* ---- the owner ---------------------------------------------------------- */

static uv_handle_t *handle_of(owner *o, int k)
{
    switch (k) {
    case K_TIMER:
        return (uv_handle_t *)&o->timer;
    case K_CHECK:
        return (uv_handle_t *)&o->check;
    case K_ASYNC:
        return (uv_handle_t *)&o->async;
    default:
        return (uv_handle_t *)&o->idle;
    }
}

static void on_timer(uv_timer_t *h)
{
    (void)h;
}

static void on_check(uv_check_t *h)
{
    (void)h;
}

static void owner_close(owner *o);
static int async_closes; /* on_async closes its owner */

static void on_async(uv_async_t *h)
{
    if (async_closes)
        owner_close(h->data);
}

static void on_idle(uv_idle_t *h)
{
    (void)h;
}

/* An owner with the handles of kinds[0..n) initialized and started. */
static owner *owner_new(uv_loop_t *loop, const int *kinds, int n)
{
    owner *o = calloc(1, sizeof *o);
    ASSERT_NOT_NULL(o);
    o->loop = loop;
    for (int i = 0; i < n; i++) {
        switch (kinds[i]) {
        case K_TIMER:
            ASSERT_EQ(uv_timer_init(loop, &o->timer), 0);
            ASSERT_EQ(uv_timer_start(&o->timer, on_timer, 10, 10), 0);
            break;
        case K_CHECK:
            ASSERT_EQ(uv_check_init(loop, &o->check), 0);
            ASSERT_EQ(uv_check_start(&o->check, on_check), 0);
            break;
        case K_ASYNC:
            ASSERT_EQ(uv_async_init(loop, &o->async, on_async), 0);
            break;
        case K_IDLE:
            ASSERT_EQ(uv_idle_init(loop, &o->idle), 0);
            ASSERT_EQ(uv_idle_start(&o->idle, on_idle), 0);
            break;
        }
        handle_of(o, kinds[i])->data = o;
        o->has[kinds[i]] = 1;
    }
    return o;
}

/* Walk callback: none of the owner's handles may still be in the loop
 * (libuv takes a handle out of it just before its close callback). */
static void walk_check(uv_handle_t *h, void *arg)
{
    owner *o = arg;
    ASSERT((char *)h < (char *)o || (char *)h >= (char *)(o + 1));
}

static void owner_free(void *arg)
{
    owner *o = arg;
    ASSERT_LT(nfreed, 8);
    for (int i = 0; i < nfreed; i++)
        ASSERT_PTR_NE(freed_addr[i], o); /* once per owner */
    freed_addr[nfreed++] = o;
    uv_walk(o->loop, walk_check, o);
    memset(o, 0xdd, sizeof *o);
    free(o);
}

/* Closes every initialized handle of o, in kind order, and drops the
 * owner's count: the teardown the runtime does. */
static void owner_close(owner *o)
{
    uvc_init(&o->closer, owner_free, o);
    for (int k = 0; k < NKINDS; k++)
        if (o->has[k])
            uvc_close(&o->closer, handle_of(o, k));
    uvc_release(&o->closer);
}

static void loop_init(uv_loop_t *loop)
{
    nfreed = 0;
    ASSERT_EQ(uv_loop_init(loop), 0);
}

/* Runs the loop to its end and closes it: nothing may be left open. */
static void loop_finish(uv_loop_t *loop)
{
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

/* ---- tests -------------------------------------------------------------- */

static const int sets[][4] = {
    {K_TIMER},                           /* 1 handle */
    {K_TIMER, K_CHECK},                  /* 2: the fleet VM's pair */
    {K_CHECK, K_TIMER},                  /* the same, initialized the other way */
    {K_ASYNC, K_IDLE, K_TIMER},          /* 3 */
    {K_IDLE, K_CHECK, K_ASYNC},          /* 3 */
    {K_TIMER, K_CHECK, K_ASYNC, K_IDLE}, /* all 4 */
};
static const int set_len[] = {1, 2, 2, 3, 3, 4};
#define NSETS (int)(sizeof set_len / sizeof set_len[0])

/* Closed outside the loop: nothing is freed until uv_run runs the close
 * callbacks, then once. */
static int test_before_run(void)
{
    for (int s = 0; s < NSETS; s++) {
        uv_loop_t loop;
        loop_init(&loop);
        owner *o = owner_new(&loop, sets[s], set_len[s]);
        owner_close(o);
        ASSERT_EQ(nfreed, 0);
        ASSERT_EQ(uv_run(&loop, UV_RUN_NOWAIT), 0);
        ASSERT_EQ(nfreed, 1);
        ASSERT_PTR_EQ(freed_addr[0], o);
        loop_finish(&loop);
        ASSERT_EQ(nfreed, 1);
    }
    return 0;
}

/* Two owners closed in the same loop turn are each freed once. */
static int test_two_owners(void)
{
    uv_loop_t loop;
    loop_init(&loop);
    owner *a = owner_new(&loop, sets[3], set_len[3]);
    owner *b = owner_new(&loop, sets[5], set_len[5]);
    owner_close(b);
    owner_close(a);
    loop_finish(&loop);
    ASSERT_EQ(nfreed, 2);
    ASSERT((freed_addr[0] == a && freed_addr[1] == b) ||
           (freed_addr[0] == b && freed_addr[1] == a));
    return 0;
}

/* Closed from inside a callback of one of the owner's own handles while
 * the loop runs (the handle whose callback it is included). */
static owner *cb_owner;

static void on_timer_close_all(uv_timer_t *h)
{
    owner *o = h->data;
    ASSERT_PTR_EQ(o, cb_owner);
    owner_close(o);
    ASSERT_EQ(nfreed, 0); /* the close callbacks come later in this turn */
}

static void on_check_close_all(uv_check_t *h)
{
    owner_close(h->data);
    ASSERT_EQ(nfreed, 0);
}

static int test_from_callback(void)
{
    for (int s = 0; s < NSETS; s++) {
        for (int via = 0; via < 3; via++) {
            uv_loop_t loop;
            loop_init(&loop);
            owner *o = cb_owner = owner_new(&loop, sets[s], set_len[s]);
            if (via == 0 && o->has[K_TIMER]) {
                ASSERT_EQ(uv_timer_start(&o->timer, on_timer_close_all, 1, 0), 0);
            } else if (via == 1 && o->has[K_CHECK]) {
                uv_check_stop(&o->check); /* a started one keeps its callback */
                ASSERT_EQ(uv_check_start(&o->check, on_check_close_all), 0);
            } else if (via == 2 && o->has[K_ASYNC]) {
                async_closes = 1;
                ASSERT_EQ(uv_async_send(&o->async), 0);
            } else {
                owner_close(o); /* this set lacks that kind */
            }
            loop_finish(&loop);
            async_closes = 0;
            ASSERT_EQ(nfreed, 1);
            ASSERT_PTR_EQ(freed_addr[0], o);
        }
    }
    return 0;
}

/* Handles closed one at a time across loop turns (after an early
 * uvc_init): the owner's count keeps it until its uvc_release. */
static void on_idle_close_one(uv_idle_t *h)
{
    owner *o = h->data;
    uvc_close(&o->closer, (uv_handle_t *)h); /* the first, alone */
}

static void on_timer_close_rest(uv_timer_t *h)
{
    owner *o = h->data;
    ASSERT_EQ(nfreed, 0); /* the idle handle is closed by now */
    uvc_close(&o->closer, (uv_handle_t *)&o->check);
    uvc_close(&o->closer, (uv_handle_t *)h);
    uvc_release(&o->closer);
    ASSERT_EQ(nfreed, 0);
}

static int test_staggered(void)
{
    static const int kinds[] = {K_IDLE, K_CHECK, K_TIMER};
    uv_loop_t loop;
    loop_init(&loop);
    owner *o = owner_new(&loop, kinds, 3);
    uvc_init(&o->closer, owner_free, o);
    uv_idle_stop(&o->idle); /* a started one keeps its callback */
    ASSERT_EQ(uv_idle_start(&o->idle, on_idle_close_one), 0);
    ASSERT_EQ(uv_timer_start(&o->timer, on_timer_close_rest, 20, 0), 0);
    loop_finish(&loop);
    ASSERT_EQ(nfreed, 1);
    ASSERT_PTR_EQ(freed_addr[0], o);
    return 0;
}

/* All close callbacks done before the owner's release: the release frees. */
static int test_release_last(void)
{
    static const int kinds[] = {K_TIMER, K_ASYNC};
    uv_loop_t loop;
    loop_init(&loop);
    owner *o = owner_new(&loop, kinds, 2);
    uvc_init(&o->closer, owner_free, o);
    uvc_close(&o->closer, (uv_handle_t *)&o->timer);
    uvc_close(&o->closer, (uv_handle_t *)&o->async);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(nfreed, 0);
    uvc_release(&o->closer);
    ASSERT_EQ(nfreed, 1);
    loop_finish(&loop);
    return 0;
}

/* No handle at all: uvc_release frees at once. A hold (something else that
 * must end first) keeps the owner past the last close callback. */
static void on_timer_release_hold(uv_timer_t *h)
{
    uvc_closer *c = h->data;
    ASSERT_EQ(nfreed, 0);
    uvc_release(c); /* the hold: the owner goes now */
    ASSERT_EQ(nfreed, 1);
    uv_close((uv_handle_t *)h, NULL);
}

static int test_holds(void)
{
    uv_loop_t loop;
    loop_init(&loop);
    owner *o = owner_new(&loop, NULL, 0);
    uvc_init(&o->closer, owner_free, o);
    uvc_release(&o->closer);
    ASSERT_EQ(nfreed, 1);

    nfreed = 0;
    static const int kinds[] = {K_CHECK, K_IDLE};
    o = owner_new(&loop, kinds, 2);
    uvc_init(&o->closer, owner_free, o);
    uvc_hold(&o->closer);
    uv_timer_t later; /* not the owner's: ends the hold after the closes */
    ASSERT_EQ(uv_timer_init(&loop, &later), 0);
    later.data = &o->closer;
    ASSERT_EQ(uv_timer_start(&later, on_timer_release_hold, 20, 0), 0);
    uvc_close(&o->closer, (uv_handle_t *)&o->check);
    uvc_close(&o->closer, (uv_handle_t *)&o->idle);
    uvc_release(&o->closer);
    ASSERT_NE(uv_run(&loop, UV_RUN_NOWAIT), 0); /* closes done, timer pending */
    ASSERT_EQ(nfreed, 0);
    loop_finish(&loop);
    ASSERT_EQ(nfreed, 1);
    return 0;
}

/* ---- runner ------------------------------------------------------------- */

static const test tests[] = {
    {"before_run", test_before_run},       {"two_owners", test_two_owners},
    {"from_callback", test_from_callback}, {"staggered", test_staggered},
    {"release_last", test_release_last},   {"holds", test_holds},
};

int main(int argc, char **argv)
{
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
