/* test-timerheap.c: the deadline min-heap of lua/core/timerheap.c.
 * Ordering, removal (of the min, the last, the middle, absent entries),
 * FIFO order of equal deadlines, and a seeded randomized comparison of
 * push/remove/pop sequences against a sorted reference.
 * MUTIRAO_TEST_SEED=N replays a run; the seed is printed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timerheap.h"
#define TEST_FAIL abort()
#include "test.h"

static void noop_cb(theap_ent *e)
{
    (void)e;
}

/* The heap invariant and the back-pointers of every entry. */
static void check_heap(const theap *h)
{
    ASSERT_UINT64_LE(h->n, h->cap);
    for (size_t i = 0; i < h->n; i++) {
        ASSERT_UINT64_EQ(h->v[i]->idx, i + 1);
        if (i > 0) {
            const theap_ent *p = h->v[(i - 1) / 2], *c = h->v[i];
            ASSERT(p->due < c->due || (p->due == c->due && p->seq < c->seq));
        }
    }
}

static theap_ent *pop(theap *h)
{
    theap_ent *e = theap_min(h);
    if (e)
        theap_remove(h, e);
    return e;
}

static void test_empty(void)
{
    theap h;
    theap_init(&h);
    ASSERT_NULL(theap_min(&h));
    ASSERT_NULL(pop(&h));
    theap_ent e;
    memset(&e, 0, sizeof e);
    ASSERT_EQ(theap_has(&e), 0);
    theap_remove(&h, &e); /* absent: no-op */
    ASSERT_EQ(h.n, 0);
    theap_free(&h);
    theap_free(&h); /* twice is fine */
}

static void test_ordering(void)
{
    static const uint64_t dues[] = {50, 10, 40, 20, 30, 5, 45, 15, 25, 35, 1, 100, 60, 0};
    enum { N = sizeof dues / sizeof dues[0] };
    theap_ent e[N];
    theap h;
    theap_init(&h);
    for (int i = 0; i < N; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].due = dues[i];
        e[i].cb = noop_cb;
        ASSERT_EQ(theap_push(&h, &e[i]), 0);
        ASSERT(theap_has(&e[i]));
        check_heap(&h);
    }
    ASSERT_EQ(h.n, N);
    uint64_t last = 0;
    for (int i = 0; i < N; i++) {
        theap_ent *m = pop(&h);
        ASSERT_NOT_NULL(m);
        ASSERT_EQ(theap_has(m), 0);
        ASSERT_UINT64_LE(last, m->due);
        last = m->due;
        check_heap(&h);
    }
    ASSERT_NULL(theap_min(&h));
    theap_free(&h);
}

static void test_fifo_ties(void)
{
    enum { N = 300 };
    theap_ent e[N];
    theap h;
    theap_init(&h);
    /* three deadlines interleaved, equal deadlines must pop in push order */
    for (int i = 0; i < N; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].due = 1000 + (uint64_t)(i % 3);
        ASSERT_EQ(theap_push(&h, &e[i]), 0);
    }
    for (int d = 0; d < 3; d++) {
        for (int i = d; i < N; i += 3) {
            theap_ent *m = pop(&h);
            ASSERT_PTR_EQ(m, &e[i]);
        }
    }
    ASSERT_EQ(h.n, 0);
    /* an entry removed and pushed again goes behind its equals */
    for (int i = 0; i < 4; i++) {
        e[i].due = 7;
        theap_push(&h, &e[i]);
    }
    theap_remove(&h, &e[0]);
    theap_push(&h, &e[0]);
    ASSERT_PTR_EQ(pop(&h), &e[1]);
    ASSERT_PTR_EQ(pop(&h), &e[2]);
    ASSERT_PTR_EQ(pop(&h), &e[3]);
    ASSERT_PTR_EQ(pop(&h), &e[0]);
    theap_free(&h);
}

static void test_remove_positions(void)
{
    enum { N = 64 };
    theap_ent e[N];
    theap h;
    theap_init(&h);
    for (int i = 0; i < N; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].due = (uint64_t)((i * 37) % N);
        theap_push(&h, &e[i]);
    }
    /* the min */
    theap_ent *m = theap_min(&h);
    theap_remove(&h, m);
    ASSERT_EQ(theap_has(m), 0);
    check_heap(&h);
    /* the last slot */
    theap_ent *last = h.v[h.n - 1];
    theap_remove(&h, last);
    ASSERT_EQ(theap_has(last), 0);
    check_heap(&h);
    /* a middle one, then the same again (no-op) */
    theap_ent *mid = h.v[h.n / 2];
    theap_remove(&h, mid);
    size_t n = h.n;
    theap_remove(&h, mid);
    ASSERT_EQ(h.n, n);
    check_heap(&h);
    ASSERT_EQ(h.n, N - 3);
    /* theap_free leaves every entry "not in a heap" */
    theap_ent *any = h.v[0];
    theap_free(&h);
    ASSERT_EQ(theap_has(any), 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(theap_has(&e[i]), 0);
}

/* ---- randomized comparison against a sorted reference ---- */

typedef struct {
    theap_ent *e;
    uint64_t due, order; /* order: global push counter, the tie breaker */
} ref_item;

static int ref_cmp(const void *a, const void *b)
{
    const ref_item *x = a, *y = b;
    if (x->due != y->due)
        return x->due < y->due ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* xorshift64*: reproducible on every libc */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static void test_randomized(uint64_t seed)
{
    enum { N = 2000, OPS = 60000 };
    theap_ent *ents = calloc(N, sizeof *ents);
    ref_item *ref = calloc(N, sizeof *ref);
    ASSERT_NOT_NULL(ents);
    ASSERT_NOT_NULL(ref);
    size_t nref = 0;
    uint64_t order = 0;
    rng_state = seed ? seed : 1;
    theap h;
    theap_init(&h);
    for (int op = 0; op < OPS; op++) {
        uint64_t r = rnd() % 10;
        if (r < 5) { /* push an entry that is not in the heap */
            theap_ent *e = &ents[rnd() % N];
            if (theap_has(e))
                continue;
            /* few distinct deadlines: plenty of ties */
            e->due = rnd() % 64;
            ASSERT_EQ(theap_push(&h, e), 0);
            ref[nref].e = e;
            ref[nref].due = e->due;
            ref[nref].order = order++;
            nref++;
        } else if (r < 8) { /* remove an arbitrary entry (maybe absent) */
            theap_ent *e = &ents[rnd() % N];
            int had = theap_has(e);
            theap_remove(&h, e);
            ASSERT_EQ(theap_has(e), 0);
            size_t i;
            for (i = 0; i < nref && ref[i].e != e; i++)
                ;
            ASSERT_EQ(i < nref, had);
            if (i < nref)
                ref[i] = ref[--nref];
        } else { /* pop the minimum: must be the reference's first */
            qsort(ref, nref, sizeof *ref, ref_cmp);
            theap_ent *m = pop(&h);
            if (nref == 0) {
                ASSERT_NULL(m);
                continue;
            }
            ASSERT_PTR_EQ(m, ref[0].e);
            memmove(ref, ref + 1, (nref - 1) * sizeof *ref);
            nref--;
        }
        ASSERT_EQ(h.n, nref);
        if (op % 97 == 0)
            check_heap(&h);
    }
    /* drain: the full order must match */
    qsort(ref, nref, sizeof *ref, ref_cmp);
    for (size_t i = 0; i < nref; i++)
        ASSERT_PTR_EQ(pop(&h), ref[i].e);
    ASSERT_NULL(theap_min(&h));
    theap_free(&h);
    free(ents);
    free(ref);
}

static void test_many(void)
{
    enum { N = 100000 };
    theap_ent *e = calloc(N, sizeof *e);
    ASSERT_NOT_NULL(e);
    theap h;
    theap_init(&h);
    for (int i = 0; i < N; i++) {
        e[i].due = (uint64_t)(N - i);
        ASSERT_EQ(theap_push(&h, &e[i]), 0);
    }
    check_heap(&h);
    for (int i = 0; i < N; i++)
        ASSERT_UINT64_EQ(pop(&h)->due, (uint64_t)(i + 1));
    theap_free(&h);
    free(e);
}

int main(void)
{
    const char *env = getenv("MUTIRAO_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("test-timerheap: seed %" PRIu64 " (MUTIRAO_TEST_SEED=%" PRIu64 " to replay)\n", seed,
           seed);
    fflush(stdout);
    test_empty();
    test_ordering();
    test_fifo_ties();
    test_remove_positions();
    test_randomized(seed);
    test_randomized(0x9e3779b97f4a7c15ull); /* and one fixed seed, always */
    test_many();
    printf("test-timerheap: ok\n");
    return 0;
}
