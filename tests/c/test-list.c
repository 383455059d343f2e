/*
** test-list.c: tests of the intrusive list (shared/base/list.h): order of
** insertion at either end and next to a node, O(1) removal from anywhere,
** the linked flag of a node, pop, splice, iteration that removes or frees
** as it goes, and a long random sequence of operations checked against an
** array model. Run all: test-list; run one: test-list NAME.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "test.h"

typedef struct item {
    int v;
    mlist node;
} item;

/* Compares h with the n values of want, front to back and back to front. */
static int check(const mlist *h, const int *want, int n)
{
    int i = 0;
    const mlist *p;
    mlist_foreach (p, h) {
        ASSERT_LT(i, n);
        ASSERT_EQ(mlist_entry(p, item, node)->v, want[i]);
        ASSERT_PTR_EQ(p->next->prev, p);
        ASSERT_PTR_EQ(p->prev->next, p);
        i++;
    }
    ASSERT_EQ(i, n);
    for (p = h->prev; p != h; p = p->prev)
        ASSERT_EQ(mlist_entry(p, item, node)->v, want[--i]);
    ASSERT_EQ(i, 0);
    ASSERT_EQ(mlist_empty(h), n == 0);
    return 0;
}

#define CHECK(h, ...)                                                                              \
    do {                                                                                           \
        static const int want_[] = {__VA_ARGS__};                                                  \
        if (check(h, want_, (int)(sizeof want_ / sizeof want_[0])) != 0) {                         \
            fprintf(stderr, "%s:%d: list differs\n", __FILE__, __LINE__);                          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)
static const int none[1];
#define CHECK_EMPTY(h) ASSERT_EQ(check(h, none, 0), 0)

static int test_empty(void)
{
    mlist h;
    mlist_init(&h);
    ASSERT(mlist_empty(&h));
    ASSERT_NULL(mlist_first(&h));
    ASSERT_NULL(mlist_last(&h));
    ASSERT_NULL(mlist_pop_front(&h));
    ASSERT_NULL(mlist_first_entry(&h, item, node));
    ASSERT_NULL(mlist_last_entry(&h, item, node));
    CHECK_EMPTY(&h);
    return 0;
}

static int test_push_order(void)
{
    item it[4] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}};
    mlist h;
    mlist_init(&h);
    mlist_push_back(&h, &it[1].node);
    mlist_push_back(&h, &it[2].node);
    mlist_push_front(&h, &it[0].node);
    mlist_push_back(&h, &it[3].node);
    CHECK(&h, 0, 1, 2, 3);
    ASSERT_PTR_EQ(mlist_first_entry(&h, item, node), &it[0]);
    ASSERT_PTR_EQ(mlist_last_entry(&h, item, node), &it[3]);
    ASSERT_PTR_EQ(mlist_next(&h, &it[1].node), &it[2].node);
    ASSERT_NULL(mlist_next(&h, &it[3].node));
    return 0;
}

static int test_insert_at(void)
{
    item it[5] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}};
    mlist h;
    mlist_init(&h);
    mlist_insert_after(&h, &it[2].node);  /* after the head: front */
    mlist_insert_before(&h, &it[4].node); /* before the head: back */
    mlist_insert_before(&it[2].node, &it[1].node);
    mlist_insert_after(&it[2].node, &it[3].node);
    mlist_insert_before(&it[1].node, &it[0].node);
    CHECK(&h, 0, 1, 2, 3, 4);
    return 0;
}

static int test_remove(void)
{
    item it[5] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}};
    mlist h;
    mlist_init(&h);
    for (int i = 0; i < 5; i++) {
        ASSERT(!mlist_linked(&it[i].node)); /* zeroed: not linked */
        mlist_push_back(&h, &it[i].node);
        ASSERT(mlist_linked(&it[i].node));
    }
    mlist_remove(&it[2].node); /* middle */
    ASSERT(!mlist_linked(&it[2].node));
    CHECK(&h, 0, 1, 3, 4);
    mlist_remove(&it[0].node); /* first */
    CHECK(&h, 1, 3, 4);
    mlist_remove(&it[4].node); /* last */
    CHECK(&h, 1, 3);
    mlist_push_front(&h, &it[2].node); /* a removed node links again */
    CHECK(&h, 2, 1, 3);
    mlist_remove(&it[1].node);
    mlist_remove(&it[3].node);
    mlist_remove(&it[2].node);
    CHECK_EMPTY(&h);
    for (int i = 0; i < 5; i++)
        ASSERT(!mlist_linked(&it[i].node));
    return 0;
}

static int test_pop(void)
{
    item it[3] = {{.v = 0}, {.v = 1}, {.v = 2}};
    mlist h;
    mlist_init(&h);
    for (int i = 0; i < 3; i++)
        mlist_push_back(&h, &it[i].node);
    for (int i = 0; i < 3; i++) {
        mlist *n = mlist_pop_front(&h);
        ASSERT_PTR_EQ(n, &it[i].node);
        ASSERT(!mlist_linked(n));
    }
    ASSERT_NULL(mlist_pop_front(&h));
    CHECK_EMPTY(&h);
    return 0;
}

static int test_splice(void)
{
    item it[5] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}, {.v = 4}};
    mlist a, b;
    mlist_init(&a);
    mlist_init(&b);
    mlist_splice_back(&a, &b); /* both empty */
    CHECK_EMPTY(&a);
    CHECK_EMPTY(&b);
    mlist_push_back(&b, &it[0].node);
    mlist_push_back(&b, &it[1].node);
    mlist_splice_back(&a, &b); /* into an empty list */
    CHECK(&a, 0, 1);
    CHECK_EMPTY(&b);
    mlist_splice_back(&a, &b); /* an empty one: nothing changes */
    CHECK(&a, 0, 1);
    mlist_push_back(&b, &it[2].node);
    mlist_push_back(&b, &it[3].node);
    mlist_push_back(&b, &it[4].node);
    mlist_splice_back(&a, &b);
    CHECK(&a, 0, 1, 2, 3, 4);
    CHECK_EMPTY(&b);
    mlist_remove(&it[4].node); /* the spliced nodes are a's now */
    mlist_remove(&it[0].node);
    CHECK(&a, 1, 2, 3);
    mlist_push_back(&b, &it[4].node); /* and b still works */
    CHECK(&b, 4);
    return 0;
}

static int test_foreach_safe(void)
{
    mlist h;
    mlist_init(&h);
    for (int i = 0; i < 6; i++) {
        item *x = calloc(1, sizeof *x);
        ASSERT_NOT_NULL(x);
        x->v = i;
        mlist_push_back(&h, &x->node);
    }
    mlist *n, *tmp;
    mlist_foreach_safe (n, tmp, &h) { /* drop the odd ones */
        item *x = mlist_entry(n, item, node);
        if (x->v % 2) {
            mlist_remove(n);
            free(x); /* freed: the loop must not read it again */
        }
    }
    CHECK(&h, 0, 2, 4);
    mlist_foreach_safe (n, tmp, &h) {
        mlist_remove(n);
        free(mlist_entry(n, item, node));
    }
    CHECK_EMPTY(&h);
    return 0;
}

/* Random operations on 3 lists of 64 items against an array model. */
#define NITEMS 64
#define NLISTS 3
static int test_random(void)
{
    static item it[NITEMS];
    mlist h[NLISTS];
    int model[NLISTS][NITEMS], len[NLISTS] = {0}, where[NITEMS];
    memset(it, 0, sizeof it);
    for (int l = 0; l < NLISTS; l++)
        mlist_init(&h[l]);
    for (int i = 0; i < NITEMS; i++) {
        it[i].v = i;
        where[i] = -1;
    }
    unsigned seed = 12345;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % NITEMS), l = (int)((seed >> 20) % NLISTS);
        int op = (int)((seed >> 24) % 6);
        if (where[i] >= 0) {
            int w = where[i], k = 0;
            while (model[w][k] != i)
                k++;
            if (op == 5) { /* splice w onto l */
                if (w == l)
                    continue;
                mlist_splice_back(&h[l], &h[w]);
                for (int j = 0; j < len[w]; j++) {
                    model[l][len[l]++] = model[w][j];
                    where[model[w][j]] = l;
                }
                len[w] = 0;
            } else if (op == 4) { /* pop w's first */
                int first = model[w][0];
                ASSERT_PTR_EQ(mlist_pop_front(&h[w]), &it[first].node);
                memmove(&model[w][0], &model[w][1], (size_t)(len[w] - 1) * sizeof(int));
                len[w]--;
                where[first] = -1;
            } else {
                ASSERT(mlist_linked(&it[i].node));
                mlist_remove(&it[i].node);
                memmove(&model[w][k], &model[w][k + 1], (size_t)(len[w] - k - 1) * sizeof(int));
                len[w]--;
                where[i] = -1;
            }
        } else {
            ASSERT(!mlist_linked(&it[i].node));
            if (op % 2) {
                mlist_push_back(&h[l], &it[i].node);
                model[l][len[l]++] = i;
            } else {
                mlist_push_front(&h[l], &it[i].node);
                memmove(&model[l][1], &model[l][0], (size_t)len[l] * sizeof(int));
                model[l][0] = i;
                len[l]++;
            }
            where[i] = l;
        }
        if (step % 97 == 0)
            for (int k = 0; k < NLISTS; k++)
                ASSERT_EQ(check(&h[k], model[k], len[k]), 0);
    }
    for (int k = 0; k < NLISTS; k++)
        ASSERT_EQ(check(&h[k], model[k], len[k]), 0);
    return 0;
}

/* ---- runner ------------------------------------------------------------- */

static const test tests[] = {
    {"empty", test_empty},
    {"push_order", test_push_order},
    {"insert_at", test_insert_at},
    {"remove", test_remove},
    {"pop", test_pop},
    {"splice", test_splice},
    {"foreach_safe", test_foreach_safe},
    {"random", test_random},
};

int main(int argc, char **argv)
{
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
