/* test.h: the assertions of the C tests, libuv style: a failed check prints
 * the expression and both operands, then fails the test with TEST_FAIL,
 * which is `return 1` (the test function's failure) unless the file defines
 * it before including this header (e.g. `abort()` for tests that check from
 * inside callbacks). */
#ifndef MUTIRAO_TEST_H
#define MUTIRAO_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TEST_FAIL
#define TEST_FAIL return 1
#endif

/* A table of named test functions (0: passed) and the one way to run it:
 * every test, or only the one named by argv[1]; prints a line per test and
 * "N/M passed"; exit status 0, 1 (a failure) or 2 (no such test). */
typedef struct test {
    const char *name;
    int (*fn)(void);
} test;

static inline int test_run(const test *tests, size_t n, int argc, char **argv)
{
    int failed = 0, ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        ran++;
        int rc = tests[i].fn();
        printf("%s %s\n", rc == 0 ? "ok  " : "FAIL", tests[i].name);
        failed += rc != 0;
    }
    if (ran == 0) {
        fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "?");
        return 2;
    }
    printf("%d/%d passed\n", ran - failed, ran);
    return failed != 0;
}

#define ASSERT(expr)                                                                               \
    do {                                                                                           \
        if (!(expr)) {                                                                             \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr);           \
            TEST_FAIL;                                                                             \
        }                                                                                          \
    } while (0)

/* a op b, both converted to type and printed with fmt */
#define ASSERT_BASE(a, op, b, type, fmt)                                                           \
    do {                                                                                           \
        type a_ = (type)(a);                                                                       \
        type b_ = (type)(b);                                                                       \
        if (!(a_ op b_)) {                                                                         \
            fprintf(stderr, "%s:%d: assertion failed: %s %s %s (" fmt " %s " fmt ")\n", __FILE__,  \
                    __LINE__, #a, #op, #b, a_, #op, b_);                                           \
            TEST_FAIL;                                                                             \
        }                                                                                          \
    } while (0)

#define ASSERT_EQ(a, b) ASSERT_BASE(a, ==, b, int64_t, "%" PRId64)
#define ASSERT_NE(a, b) ASSERT_BASE(a, !=, b, int64_t, "%" PRId64)
#define ASSERT_LT(a, b) ASSERT_BASE(a, <, b, int64_t, "%" PRId64)
#define ASSERT_LE(a, b) ASSERT_BASE(a, <=, b, int64_t, "%" PRId64)
#define ASSERT_GT(a, b) ASSERT_BASE(a, >, b, int64_t, "%" PRId64)
#define ASSERT_GE(a, b) ASSERT_BASE(a, >=, b, int64_t, "%" PRId64)
#define ASSERT_UINT64_EQ(a, b) ASSERT_BASE(a, ==, b, uint64_t, "%" PRIu64)
#define ASSERT_UINT64_LE(a, b) ASSERT_BASE(a, <=, b, uint64_t, "%" PRIu64)
#define ASSERT_PTR_EQ(a, b) ASSERT_BASE(a, ==, b, const void *, "%p")
#define ASSERT_PTR_NE(a, b) ASSERT_BASE(a, !=, b, const void *, "%p")
#define ASSERT_NULL(a) ASSERT_BASE(a, ==, NULL, const void *, "%p")
#define ASSERT_NOT_NULL(a) ASSERT_BASE(a, !=, NULL, const void *, "%p")

#define ASSERT_STR_EQ(a, b)                                                                        \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                     \
            fprintf(stderr, "%s:%d: assertion failed: %s == %s (\"%s\" vs \"%s\")\n", __FILE__,    \
                    __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                     \
            TEST_FAIL;                                                                             \
        }                                                                                          \
    } while (0)

/* hay contains needle (want 1) or does not (want 0) */
#define ASSERT_CONTAINS_IF(hay, needle, want)                                                      \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (h_ == NULL || (strstr(h_, n_) != NULL) != (want)) {                                    \
            fprintf(stderr, "%s:%d: assertion failed: \"%s\" %s \"%s\"\n", __FILE__, __LINE__,     \
                    h_ ? h_ : "(null)", (want) ? "contains" : "does not contain", n_);             \
            TEST_FAIL;                                                                             \
        }                                                                                          \
    } while (0)
#define ASSERT_CONTAINS(hay, needle) ASSERT_CONTAINS_IF(hay, needle, 1)
#define ASSERT_NOT_CONTAINS(hay, needle) ASSERT_CONTAINS_IF(hay, needle, 0)
#define ASSERT_STR_CONTAINS(hay, needle) ASSERT_CONTAINS_IF(hay, needle, 1)

#endif
