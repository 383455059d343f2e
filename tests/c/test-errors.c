/*
** test-errors.c: the error tables of the tree against each other and
** against shared/base/errors.h. Across every table (the base one, each
** module's, the public header's), a value names one code: two rows with the
** same value have the same name, two rows with the same name the same
** value. A module's row for a base code has the base value; its own codes
** lie in its range. Each module's strerror and errname give its rows'
** messages and names. Run all: test-errors; run one: test-errors NAME.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "envelope.h"
#include "errors.h"
#include "executor.h"
#include "kafka_uv.h"
#include "msgpack_lua.h"
#include "mutirao.h"
#include "redis_uv.h"
#include "sign.h"
#include "test.h"

typedef struct row {
    const char *name;
    int value;
    const char *msg;
} row;

#define ROW(name, value, msg) {#name, (value), (msg)},
static const row base_rows[] = {MUTIRAO_BASE_ERRORS(ROW)};
static const row codec_rows[] = {CODEC_ERRNO_MAP(ROW)};
static const row envelope_rows[] = {ENVELOPE_ERRNO_MAP(ROW)};
static const row config_rows[] = {CONFIG_ERRNO_MAP(ROW)};
static const row redis_rows[] = {REDIS_UV_ERRNO_MAP(ROW)};
static const row kuv_rows[] = {KUV_ERRNO_MAP(ROW)};
static const row sign_rows[] = {SIGN_ERRNO_MAP(ROW)};
static const row mpl_rows[] = {MPL_ERRNO_MAP(ROW)};
static const row ex_rows[] = {EX_ERRNO_MAP(ROW)};
static const row public_rows[] = {MUTIRAO_ERRNO_MAP(ROW)};
#undef ROW

typedef struct table {
    const char *module;
    const char *prefix; /* in MERR_RANGES, or NULL: no codes of its own */
    const row *rows;
    size_t n;
    const char *(*strerror_fn)(int);
    const char *(*errname_fn)(int);
} table;

#define TABLE(mod, prefix, rows, fn)                                                               \
    {                                                                                              \
        mod, prefix, rows, sizeof rows / sizeof rows[0], fn##_strerror, fn##_errname               \
    }
#define TABLE_NOFN(mod, prefix, rows)                                                              \
    {                                                                                              \
        mod, prefix, rows, sizeof rows / sizeof rows[0], NULL, NULL                                \
    }

static const table tables[] = {
    TABLE("base", NULL, base_rows, merr),
    TABLE("codec", "CODEC", codec_rows, codec),
    TABLE("envelope", "ENVELOPE", envelope_rows, envelope),
    TABLE("config", "CONFIG", config_rows, config),
    TABLE("redis_uv", "REDIS_UV", redis_rows, redis_uv),
    TABLE("kafka_uv", "KUV", kuv_rows, kuv),
    TABLE("sign", "SIGN", sign_rows, sign),
    TABLE_NOFN("msgpack_lua", NULL, mpl_rows),
    TABLE_NOFN("executor", NULL, ex_rows),
#ifdef TEST_PUBLIC_FUNCTIONS /* linked with libmutirao */
    TABLE("mutirao.h", NULL, public_rows, mutirao),
#else
    TABLE_NOFN("mutirao.h", NULL, public_rows),
#endif
};
#define NTABLES (sizeof tables / sizeof tables[0])

typedef struct range {
    const char *prefix;
    int start;
} range;

#define RANGE(prefix, start) {#prefix, (start)},
static const range ranges[] = {MERR_RANGES(RANGE)};
#undef RANGE
#define NRANGES (sizeof ranges / sizeof ranges[0])

static const row *base_row(const char *name)
{
    for (size_t i = 0; i < sizeof base_rows / sizeof base_rows[0]; i++)
        if (strcmp(base_rows[i].name, name) == 0)
            return &base_rows[i];
    return NULL;
}

static const range *range_of(const char *prefix)
{
    for (size_t i = 0; prefix && i < NRANGES; i++)
        if (strcmp(ranges[i].prefix, prefix) == 0)
            return &ranges[i];
    return NULL;
}

/* The ranges: distinct hundreds below the base codes. */
static int test_ranges(void)
{
    for (size_t i = 0; i < NRANGES; i++) {
        ASSERT_LE(ranges[i].start, -100);
        ASSERT_EQ(ranges[i].start % 100, 0);
        for (size_t j = 0; j < i; j++)
            ASSERT_NE(ranges[i].start, ranges[j].start);
    }
    for (size_t i = 0; i < sizeof base_rows / sizeof base_rows[0]; i++) {
        ASSERT_LT(base_rows[i].value, 0);
        ASSERT_GT(base_rows[i].value, -100);
    }
    return 0;
}

/* Within a table: negative values, names and values used once. */
static int test_each_table(void)
{
    for (size_t t = 0; t < NTABLES; t++) {
        const table *tb = &tables[t];
        ASSERT_GT(tb->n, 0);
        for (size_t i = 0; i < tb->n; i++) {
            ASSERT_LT(tb->rows[i].value, 0);
            ASSERT(tb->rows[i].msg[0] != '\0');
            for (size_t j = 0; j < i; j++) {
                if (tb->rows[i].value == tb->rows[j].value ||
                    strcmp(tb->rows[i].name, tb->rows[j].name) == 0) {
                    fprintf(stderr, "%s: %s (%d) and %s (%d)\n", tb->module, tb->rows[i].name,
                            tb->rows[i].value, tb->rows[j].name, tb->rows[j].value);
                    return 1;
                }
            }
        }
    }
    return 0;
}

/* A base code keeps its base value; a module's own codes are in its range. */
static int test_base_or_range(void)
{
    for (size_t t = 0; t < NTABLES; t++) {
        const table *tb = &tables[t];
        const range *r = range_of(tb->prefix);
        ASSERT((tb->prefix == NULL) == (r == NULL));
        for (size_t i = 0; i < tb->n; i++) {
            const row *x = &tb->rows[i], *b = base_row(x->name);
            if (b) {
                if (x->value != b->value) {
                    fprintf(stderr, "%s: %s is %d, the base code %d\n", tb->module, x->name,
                            x->value, b->value);
                    return 1;
                }
            } else if (!r || x->value >= r->start || x->value <= r->start - 100) {
                fprintf(stderr, "%s: %s (%d) is no base code and outside the module's range\n",
                        tb->module, x->name, x->value);
                return 1;
            }
        }
    }
    return 0;
}

/* Across all tables: one value, one name (and one name, one value). */
static int test_no_clash(void)
{
    int checked = 0;
    for (size_t t = 0; t < NTABLES; t++) {
        for (size_t i = 0; i < tables[t].n; i++) {
            const row *x = &tables[t].rows[i];
            for (size_t u = 0; u < NTABLES; u++) {
                for (size_t j = 0; j < tables[u].n; j++) {
                    const row *y = &tables[u].rows[j];
                    int same_value = x->value == y->value;
                    int same_name = strcmp(x->name, y->name) == 0;
                    if (same_value != same_name) {
                        fprintf(stderr, "%s %s (%d) vs %s %s (%d)\n", tables[t].module, x->name,
                                x->value, tables[u].module, y->name, y->value);
                        return 1;
                    }
                    checked++;
                }
            }
        }
    }
    ASSERT_GT(checked, 100);
    /* the ones the tree's modules all have */
    ASSERT_EQ(CODEC_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(ENVELOPE_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(CONFIG_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(REDIS_UV_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(KUV_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(MPL_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(EX_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(MUTIRAO_ENOMEM, MERR_ENOMEM);
    ASSERT_EQ(KUV_EINVAL, CODEC_EINVAL);
    ASSERT_EQ(MUTIRAO_ETOOBIG, ENVELOPE_ETOOBIG);
    return 0;
}

/* The public values: the library's ABI, as include/mutirao.h has always
 * numbered them. */
static int test_public_abi(void)
{
    static const struct {
        int code, value;
    } abi[] = {
        {MUTIRAO_EINVAL, -1},     {MUTIRAO_ENOMEM, -2},      {MUTIRAO_ECONFIG, -3},
        {MUTIRAO_ENOTSUP, -4},    {MUTIRAO_ECLOSED, -5},     {MUTIRAO_ENOPOOL, -6},
        {MUTIRAO_EEXIST, -7},     {MUTIRAO_EPOOLCLOSED, -8}, {MUTIRAO_EQUEUEFULL, -9},
        {MUTIRAO_ESYNTAX, -10},   {MUTIRAO_EARGS, -11},      {MUTIRAO_ENOTASK, -12},
        {MUTIRAO_ETIMEDOUT, -13}, {MUTIRAO_ETOOBIG, -14},    {MUTIRAO_ETHREAD, -15},
        {MUTIRAO_EINTERNAL, -16},
    };
    ASSERT_EQ(sizeof abi / sizeof abi[0], sizeof public_rows / sizeof public_rows[0]);
    for (size_t i = 0; i < sizeof abi / sizeof abi[0]; i++) {
        ASSERT_EQ(abi[i].code, abi[i].value);
        ASSERT_EQ(public_rows[i].value, abi[i].value);
        ASSERT_NOT_NULL(base_row(public_rows[i].name));
    }
    return 0;
}

/* strerror and errname of each module: its rows, and the fallbacks. */
static int test_strerror(void)
{
    for (size_t t = 0; t < NTABLES; t++) {
        const table *tb = &tables[t];
        if (!tb->strerror_fn)
            continue;
        for (size_t i = 0; i < tb->n; i++) {
            ASSERT_STR_EQ(tb->strerror_fn(tb->rows[i].value), tb->rows[i].msg);
            ASSERT_STR_EQ(tb->errname_fn(tb->rows[i].value), tb->rows[i].name);
        }
        ASSERT_STR_EQ(tb->strerror_fn(0), "unknown error");
        ASSERT_STR_EQ(tb->strerror_fn(-99999), "unknown error");
        ASSERT_STR_EQ(tb->strerror_fn(1), "unknown error");
        ASSERT_STR_EQ(tb->errname_fn(0), "OK");
        ASSERT_STR_EQ(tb->errname_fn(-99999), "UNKNOWN");
    }
    /* messages are each module's own wording */
    ASSERT_STR_EQ(codec_strerror(CODEC_ETOOBIG), "message exceeds the size limit");
    ASSERT_STR_EQ(envelope_strerror(ENVELOPE_ETOOBIG), "payload exceeds the size limit");
    ASSERT_STR_EQ(kuv_strerror(KUV_ECLOSED), "handle is closing");
    ASSERT_STR_EQ(redis_uv_strerror(REDIS_UV_ECLOSED), "client closed");
    return 0;
}

/* ---- runner ------------------------------------------------------------- */

static const test tests[] = {
    {"ranges", test_ranges},
    {"each_table", test_each_table},
    {"base_or_range", test_base_or_range},
    {"no_clash", test_no_clash},
    {"public_abi", test_public_abi},
    {"strerror", test_strerror},
};

int main(int argc, char **argv)
{
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
