/* test-libmutirao.c: the producer library through its public header only
 * (include/mutirao.h), with msgpack-c writing arguments and reading
 * results as a caller in any language would. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <mutirao.h>

static int failures;

#define ASSERT_INT(a, b)                                                                           \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld (last error: %s)\n", __FILE__,   \
                    __LINE__, #a, #b, a_, b_, mutirao_last_error());                               \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define ASSERT_OK(call) ASSERT_INT(call, 0)
#define ASSERT_TRUE(c)                                                                             \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: %s failed (last error: %s)\n", __FILE__, __LINE__, #c,         \
                    mutirao_last_error());                                                         \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (!h_ || !strstr(h_, (needle))) {                                                        \
            fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__,             \
                    h_ ? h_ : "(null)", (needle));                                                 \
            failures++;                                                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static mutirao *M;

/* ---- helpers ---- */

typedef struct buf {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} buf;

static void buf_init(buf *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

/* Submits src with args and awaits; the result array is left in *u. */
static int run_task(const char *pool, const char *src, const void *args, size_t argslen, int *ok,
                    msgpack_unpacked *u, char **raw)
{
    char id[MUTIRAO_TASK_ID_MAX];
    int rc = mutirao_submit(M, pool, src, strlen(src), args, argslen, id);
    if (rc)
        return rc;
    void *res;
    size_t len;
    rc = mutirao_await(M, id, 10000, ok, &res, &len);
    if (rc)
        return rc;
    msgpack_unpacked_init(u);
    size_t off = 0;
    if (msgpack_unpack_next(u, res, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        u->data.type != MSGPACK_OBJECT_ARRAY)
        rc = -1000;
    *raw = res; /* u points into it */
    return rc;
}

static const msgpack_object *elem(const msgpack_unpacked *u, unsigned i)
{
    return i < u->data.via.array.size ? &u->data.via.array.ptr[i] : NULL;
}

/* The first result as a C string (error messages), in a static buffer. */
static const char *str0(const msgpack_unpacked *u)
{
    static char s[4096];
    const msgpack_object *o = elem(u, 0);
    if (!o || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    snprintf(s, sizeof s, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    return s;
}

static void done(msgpack_unpacked *u, char *raw)
{
    msgpack_unpacked_destroy(u);
    mutirao_free(raw);
}

/* ---- tests ---- */

static void test_version_and_errors(void)
{
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", MUTIRAO_VERSION_MAJOR, MUTIRAO_VERSION_MINOR,
             MUTIRAO_VERSION_PATCH);
    ASSERT_TRUE(strcmp(mutirao_version(), v) == 0);
    ASSERT_TRUE(strcmp(mutirao_errname(MUTIRAO_ENOPOOL), "ENOPOOL") == 0);
    ASSERT_TRUE(strcmp(mutirao_strerror(MUTIRAO_EQUEUEFULL), "pool queue is full") == 0);
    ASSERT_TRUE(strcmp(mutirao_strerror(12345), "unknown error") == 0);
    ASSERT_TRUE(MUTIRAO_EINTERNAL < 0 && MUTIRAO_EINVAL < 0);
}

static void test_open_config(void)
{
    char err[512], path[] = "/tmp/test-libmutirao-XXXXXX";
    mutirao *m = (mutirao *)1;
    int fd = mkstemp(path);
    ASSERT_TRUE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    /* (fleet = on is process-wide: tests/integration/fleet_test.py covers it) */
    fputs("fleet = maybe\n", f);
    fclose(f);
    ASSERT_INT(mutirao_open(path, &m, err, sizeof err), MUTIRAO_ECONFIG);
    ASSERT_TRUE(m == NULL);
    ASSERT_CONTAINS(err, "fleet");
    ASSERT_CONTAINS(mutirao_last_error(), "fleet");
    f = fopen(path, "w");
    fputs("fleet = off\npayload.max_bytes = 4096\n", f);
    fclose(f);
    ASSERT_OK(mutirao_open(path, &m, err, sizeof err));
    unlink(path);
    /* the configured payload limit applies to arguments */
    ASSERT_OK(mutirao_pool_create(m, "cfg", 1, -1, 0));
    char *big = calloc(1, 8192);
    big[0] = (char)0x91;
    big[1] = (char)0xc5; /* bin 16 of 8000 bytes */
    big[2] = (char)(8000 >> 8);
    big[3] = (char)(8000 & 0xff);
    char id[MUTIRAO_TASK_ID_MAX];
    ASSERT_INT(mutirao_submit(m, "cfg", "return 1", 8, big, 8004, id), MUTIRAO_ETOOBIG);
    free(big);
    mutirao_close(m);
    ASSERT_INT(mutirao_open("/nonexistent/mutirao.conf", &m, err, sizeof err), MUTIRAO_ECONFIG);
    ASSERT_INT(mutirao_open(NULL, NULL, NULL, 0), MUTIRAO_EINVAL);
}

static void test_types_round_trip(void)
{
    buf b;
    buf_init(&b);
    msgpack_packer *pk = &b.pk;
    msgpack_pack_array(pk, 14);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_false(pk);
    msgpack_pack_int64(pk, 7);
    msgpack_pack_int64(pk, -33);
    msgpack_pack_int64(pk, 1LL << 40);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_double(pk, 1.5);
    msgpack_pack_str_with_body(pk, "olá", strlen("olá"));
    msgpack_pack_bin_with_body(pk, "\x00\xff\x01", 3);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 2);
    msgpack_pack_int(pk, 3);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "k", 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_true(pk);
    msgpack_pack_uint64(pk, (uint64_t)INT64_MAX);
    msgpack_pack_float(pk, 0.25f);
    int ok;
    msgpack_unpacked u;
    char *raw;
    ASSERT_OK(run_task("types", "return ...", b.sb.data, b.sb.size, &ok, &u, &raw));
    ASSERT_INT(ok, 1);
    ASSERT_INT(u.data.via.array.size, 14);
    msgpack_unpacked in;
    msgpack_unpacked_init(&in);
    msgpack_unpack_next(&in, b.sb.data, b.sb.size, NULL);
    for (unsigned i = 0; i < 13; i++) {
        if (!msgpack_object_equal(*elem(&u, i), in.data.via.array.ptr[i])) {
            fprintf(stderr, "types: element %u differs: ", i + 1);
            msgpack_object_print(stderr, *elem(&u, i));
            fprintf(stderr, " vs ");
            msgpack_object_print(stderr, in.data.via.array.ptr[i]);
            fprintf(stderr, "\n");
            failures++;
        }
    }
    ASSERT_TRUE(elem(&u, 9)->type == MSGPACK_OBJECT_BIN);
    ASSERT_TRUE(elem(&u, 8)->type == MSGPACK_OBJECT_STR);
    ASSERT_TRUE(elem(&u, 13)->type == MSGPACK_OBJECT_FLOAT64 && elem(&u, 13)->via.f64 == 0.25);
    msgpack_unpacked_destroy(&in);
    done(&u, raw);

    /* the values as Lua sees them */
    static const char check[] = "local n, t, f, i, s, bin, arr, map = ...\n"
                                "assert(n == nil and t == true and f == false)\n"
                                "assert(math.type(i) == 'integer' and i == 7)\n"
                                "assert(math.type(s) == 'float' and s == 1.5)\n"
                                "assert(bin == '\\0\\255\\1' and #arr == 3 and arr[3] == 3)\n"
                                "assert(map.k[1] == true)\n"
                                "return select('#', ...)\n";
    msgpack_sbuffer_clear(&b.sb);
    msgpack_pack_array(pk, 8);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_false(pk);
    msgpack_pack_int(pk, 7);
    msgpack_pack_double(pk, 1.5);
    msgpack_pack_bin_with_body(pk, "\x00\xff\x01", 3);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 2);
    msgpack_pack_int(pk, 3);
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "k", 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_true(pk);
    ASSERT_OK(run_task("types", check, b.sb.data, b.sb.size, &ok, &u, &raw));
    if (!ok)
        fprintf(stderr, "%s\n", str0(&u));
    ASSERT_INT(ok, 1);
    ASSERT_INT(elem(&u, 0)->via.i64, 8);
    done(&u, raw);
    msgpack_sbuffer_destroy(&b.sb);

    /* tables back: sequences as arrays, others as maps, {} as [] */
    ASSERT_OK(run_task("types", "return {1, 2, 3}, {x = 1}, {}, {[1] = 'a', [3] = 'c'}, 2^53", NULL,
                       0, &ok, &u, &raw));
    ASSERT_INT(ok, 1);
    ASSERT_INT(u.data.via.array.size, 5);
    ASSERT_TRUE(elem(&u, 0)->type == MSGPACK_OBJECT_ARRAY && elem(&u, 0)->via.array.size == 3);
    ASSERT_TRUE(elem(&u, 1)->type == MSGPACK_OBJECT_MAP);
    ASSERT_TRUE(elem(&u, 2)->type == MSGPACK_OBJECT_ARRAY && elem(&u, 2)->via.array.size == 0);
    ASSERT_TRUE(elem(&u, 3)->type == MSGPACK_OBJECT_MAP && elem(&u, 3)->via.map.size == 2);
    ASSERT_TRUE(elem(&u, 4)->type == MSGPACK_OBJECT_FLOAT64);
    done(&u, raw);

    /* no values: an empty array */
    ASSERT_OK(run_task("types", "local x = 1", NULL, 0, &ok, &u, &raw));
    ASSERT_INT(ok, 1);
    ASSERT_INT(u.data.via.array.size, 0);
    done(&u, raw);

    /* values with no msgpack form */
    ASSERT_OK(run_task("types", "return 1, {f = print}", NULL, 0, &ok, &u, &raw));
    ASSERT_INT(ok, 0);
    ASSERT_CONTAINS(str0(&u), "result #2.f");
    done(&u, raw);
    ASSERT_OK(run_task("types", "return function() return 1 end", NULL, 0, &ok, &u, &raw));
    ASSERT_INT(ok, 0);
    ASSERT_CONTAINS(str0(&u), "no msgpack form");
    done(&u, raw);

    /* each task has fresh globals */
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(run_task("types", "counter = (counter or 0) + 1 return counter", NULL, 0, &ok, &u,
                           &raw));
        ASSERT_INT(elem(&u, 0)->via.i64, 1);
        done(&u, raw);
    }
}

static void test_failures(void)
{
    int ok;
    msgpack_unpacked u;
    char *raw;
    ASSERT_OK(run_task("types",
                       "local a = ...\nlocal function deep() error('boom ' .. a) end\ndeep()",
                       "\x91\xa3"
                       "abc",
                       5, &ok, &u, &raw));
    ASSERT_INT(ok, 0);
    ASSERT_CONTAINS(str0(&u), "task:2: boom abc");
    ASSERT_CONTAINS(str0(&u), "stack traceback:");
    ASSERT_CONTAINS(str0(&u), "deep");
    done(&u, raw);
    /* a non-string error value comes back as itself */
    ASSERT_OK(run_task("types", "error({code = 42})", NULL, 0, &ok, &u, &raw));
    ASSERT_INT(ok, 0);
    ASSERT_TRUE(elem(&u, 0)->type == MSGPACK_OBJECT_MAP);
    done(&u, raw);

    char id[MUTIRAO_TASK_ID_MAX];
    ASSERT_INT(mutirao_submit(M, "types", "return +", 8, NULL, 0, id), MUTIRAO_ESYNTAX);
    ASSERT_CONTAINS(mutirao_last_error(), "task:1:");
    ASSERT_TRUE(id[0] == 0);
    /* precompiled chunks are refused */
    ASSERT_INT(mutirao_submit(M, "types", "\x1bLua\x54", 5, NULL, 0, id), MUTIRAO_ESYNTAX);
    ASSERT_CONTAINS(mutirao_last_error(), "binary");

    ASSERT_INT(mutirao_submit(M, "nope", "return 1", 8, NULL, 0, id), MUTIRAO_ENOPOOL);
    ASSERT_CONTAINS(mutirao_last_error(), "pool not found: nope");
    mutirao_stats st;
    ASSERT_INT(mutirao_pool_stats(M, "nope", &st), MUTIRAO_ENOPOOL);
    ASSERT_INT(mutirao_pool_wait(M, "nope", 100), MUTIRAO_ENOPOOL);
    ASSERT_INT(mutirao_pool_close(M, "nope"), MUTIRAO_ENOPOOL);
    ASSERT_INT(mutirao_pool_create(M, "types", 1, 1, 0), MUTIRAO_EEXIST);
    ASSERT_INT(mutirao_pool_create(M, "bad name!", 1, 1, 0), MUTIRAO_EINVAL);
    ASSERT_CONTAINS(mutirao_last_error(), "pool name");
    ASSERT_INT(mutirao_pool_create(M, "x", 1, 1, 99), MUTIRAO_EINVAL);

    int okv;
    void *res;
    size_t len;
    ASSERT_INT(mutirao_await(M, "no-such-task", 100, &okv, &res, &len), MUTIRAO_ENOTASK);
    ASSERT_TRUE(res == NULL);
    ASSERT_INT(mutirao_await(M, "00000000-1", -1, &okv, &res, &len), MUTIRAO_ENOTASK);
    ASSERT_INT(mutirao_submit(NULL, "types", "return 1", 8, NULL, 0, id), MUTIRAO_EINVAL);
}

static void test_malformed_args(void)
{
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        const char *msg;
    } cases[] = {
        {"truncated array", "\x92\x01", 2, "2 elements in 1 bytes"},
        {"truncated nested", "\x91\x92\x01", 3, "elements in"},
        {"truncated str",
         "\x91\xa5"
         "ab",
         4, "truncated"},
        {"truncated int", "\x91\xcd\x01", 3, "truncated"},
        {"not an array", "\x01", 1, "array of arguments expected"},
        {"a map", "\x81\x01\x02", 3, "array of arguments expected"},
        {"a string", "\xa1x", 2, "array of arguments expected"},
        {"trailing bytes", "\x91\x01\x02", 3, "after the array"},
        {"reserved byte", "\x91\xc1", 2, "0xc1"},
        {"ext type", "\x91\xd4\x01\x02", 4, "ext"},
        {"huge array claim", "\x91\xdd\xff\xff\xff\xff", 6, "elements in"},
        {"huge map claim", "\x91\xdf\xff\xff\xff\xff", 6, "pairs in"},
        {"huge str claim", "\x91\xdb\xff\xff\xff\xff", 6, "truncated"},
        {"nil map key", "\x91\x81\xc0\x01", 4, "nil"},
        {"duplicate key", "\x91\x82\x01\x01\x01\x02", 6, "duplicate"},
        {"uint64 beyond int64", "\x91\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 10, "does not fit"},
    };
    char id[MUTIRAO_TASK_ID_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = mutirao_submit(M, "types", "return ...", 10, cases[i].bytes, cases[i].len, id);
        if (rc != MUTIRAO_EARGS || !strstr(mutirao_last_error(), cases[i].msg)) {
            fprintf(stderr, "malformed args '%s': rc %d (%s), message '%s'\n", cases[i].what, rc,
                    mutirao_errname(rc), mutirao_last_error());
            failures++;
        }
    }
    /* too deep: 200 nested arrays */
    char deep[256];
    deep[0] = (char)0x91;
    for (int i = 1; i < 201; i++)
        deep[i] = (char)0x91;
    deep[201] = 0x01;
    ASSERT_INT(mutirao_submit(M, "types", "return ...", 10, deep, 202, id), MUTIRAO_EARGS);
    ASSERT_CONTAINS(mutirao_last_error(), "deeper than");
    /* 30 deep is fine and comes back as deep (msgpack-c reads at most 32) */
    int ok;
    msgpack_unpacked u;
    char *raw;
    ASSERT_OK(run_task("types", "return ...", deep + 171, 31, &ok, &u, &raw));
    ASSERT_INT(ok, 1);
    done(&u, raw);
    /* more arguments than allowed */
    buf b;
    buf_init(&b);
    msgpack_pack_array(&b.pk, 5000);
    for (int i = 0; i < 5000; i++)
        msgpack_pack_nil(&b.pk);
    ASSERT_INT(mutirao_submit(M, "types", "return ...", 10, b.sb.data, b.sb.size, id),
               MUTIRAO_ETOOBIG);
    msgpack_sbuffer_destroy(&b.sb);
}

static void test_timeouts(void)
{
    char id[MUTIRAO_TASK_ID_MAX];
    static const char slow[] = "require('goroutine').sleep(300) return 'late'";
    ASSERT_OK(mutirao_submit(M, "types", slow, strlen(slow), NULL, 0, id));
    int ok;
    void *res;
    size_t len;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_INT(mutirao_await(M, id, 30, &ok, &res, &len), MUTIRAO_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ASSERT_TRUE(ms >= 25 && ms < 250);
    ASSERT_INT(mutirao_await(M, id, 0, &ok, &res, &len), MUTIRAO_ETIMEDOUT);
    ASSERT_INT(mutirao_pool_wait(M, "types", 20), MUTIRAO_ETIMEDOUT);
    ASSERT_OK(mutirao_await(M, id, -1, &ok, &res, &len));
    ASSERT_INT(ok, 1);
    mutirao_free(res);
    /* a finished task: timeout 0 answers at once, and again */
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(mutirao_await(M, id, 0, &ok, &res, &len));
        ASSERT_INT(ok, 1);
        ASSERT_TRUE(len == 6 && memcmp(res, "\x91\xa4late", 6) == 0);
        mutirao_free(res);
    }
}

static void test_stats_exact(void)
{
    ASSERT_OK(mutirao_pool_create(M, "stats", 2, 100, 0));
    char id[MUTIRAO_TASK_ID_MAX];
    static const char src[] = "local i = ...\n"
                              "require('goroutine').sleep(2)\n"
                              "if i % 4 == 0 then error('multiple of four') end\n"
                              "return i\n";
    for (int i = 1; i <= 20; i++) {
        unsigned char a[2] = {0x91, (unsigned char)i};
        ASSERT_OK(mutirao_submit(M, "stats", src, strlen(src), a, 2, id));
    }
    ASSERT_OK(mutirao_pool_wait(M, "stats", 10000));
    mutirao_stats st;
    ASSERT_OK(mutirao_pool_stats(M, "stats", &st));
    ASSERT_INT(st.workers, 2);
    ASSERT_INT(st.queue, 100);
    ASSERT_INT(st.submitted, 20);
    ASSERT_INT(st.completed, 15);
    ASSERT_INT(st.failed, 5);
    ASSERT_INT(st.active, 0);
    ASSERT_INT(st.queued, 0);
    ASSERT_INT(st.rejected, 0);
    ASSERT_OK(mutirao_pool_close(M, "stats"));
    ASSERT_INT(mutirao_pool_close(M, "stats"), MUTIRAO_ENOPOOL);
}

static void test_backpressure(void)
{
    static const char slow[] = "require('goroutine').sleep(50) return 1";
    char id[MUTIRAO_TASK_ID_MAX], id2[MUTIRAO_TASK_ID_MAX];
    /* no-block pool: a full queue is an error at once */
    ASSERT_OK(mutirao_pool_create(M, "nb", 1, 0, MUTIRAO_POOL_NOBLOCK));
    ASSERT_OK(mutirao_submit(M, "nb", slow, strlen(slow), NULL, 0, id));
    ASSERT_INT(mutirao_submit(M, "nb", slow, strlen(slow), NULL, 0, id2), MUTIRAO_EQUEUEFULL);
    ASSERT_CONTAINS(mutirao_last_error(), "pool queue is full");
    /* closed while its task runs: "pool is closed" until it ends */
    ASSERT_OK(mutirao_pool_close(M, "nb"));
    ASSERT_INT(mutirao_submit(M, "nb", slow, strlen(slow), NULL, 0, id2), MUTIRAO_EPOOLCLOSED);
    int ok;
    void *res;
    size_t len;
    ASSERT_OK(mutirao_await(M, id, 5000, &ok, &res, &len));
    ASSERT_INT(ok, 1);
    mutirao_free(res);
    /* blocking pool: submits wait for room and all run */
    ASSERT_OK(mutirao_pool_create(M, "bp", 1, 1, 0));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 5; i++)
        ASSERT_OK(mutirao_submit(M, "bp", slow, strlen(slow), NULL, 0, id));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    ASSERT_TRUE(ms >= 100); /* the 3rd to 5th waited for room */
    ASSERT_OK(mutirao_pool_wait(M, "bp", 5000));
    mutirao_stats st;
    ASSERT_OK(mutirao_pool_stats(M, "bp", &st));
    ASSERT_INT(st.completed, 5);
    ASSERT_INT(st.rejected, 0);
    ASSERT_OK(mutirao_pool_close(M, "bp"));
}

#define NTHREADS 8
#define PER_THREAD 150

static void *submitter(void *arg)
{
    long t = (long)arg;
    static const char src[] = "local a, b = ... return a * b, tostring(a)";
    char ids[PER_THREAD][MUTIRAO_TASK_ID_MAX];
    long bad = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        buf b;
        buf_init(&b);
        msgpack_pack_array(&b.pk, 2);
        msgpack_pack_int64(&b.pk, t * 1000 + i);
        msgpack_pack_int64(&b.pk, 3);
        if (mutirao_submit(M, "mt", src, strlen(src), b.sb.data, b.sb.size, ids[i]) != 0)
            bad++;
        msgpack_sbuffer_destroy(&b.sb);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        int ok;
        void *res;
        size_t len;
        if (mutirao_await(M, ids[i], 20000, &ok, &res, &len) != 0 || !ok) {
            bad++;
            continue;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, res, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
            u.data.via.array.size != 2 || u.data.via.array.ptr[0].via.i64 != (t * 1000 + i) * 3)
            bad++;
        msgpack_unpacked_destroy(&u);
        mutirao_free(res);
    }
    return (void *)bad;
}

static void test_threads(void)
{
    ASSERT_OK(mutirao_pool_create(M, "mt", 16, 64, 0));
    pthread_t th[NTHREADS];
    for (long t = 0; t < NTHREADS; t++)
        pthread_create(&th[t], NULL, submitter, (void *)t);
    long bad = 0;
    for (int t = 0; t < NTHREADS; t++) {
        void *r;
        pthread_join(th[t], &r);
        bad += (long)r;
    }
    ASSERT_INT(bad, 0);
    mutirao_stats st;
    ASSERT_OK(mutirao_pool_stats(M, "mt", &st));
    ASSERT_INT(st.submitted, NTHREADS * PER_THREAD);
    ASSERT_INT(st.completed, NTHREADS * PER_THREAD);
    ASSERT_OK(mutirao_pool_close(M, "mt"));
}

typedef struct blocked {
    mutirao *m;
    char id[MUTIRAO_TASK_ID_MAX];
    int rc;
} blocked;

static void *await_forever(void *arg)
{
    blocked *b = arg;
    int ok;
    void *res;
    size_t len;
    b->rc = mutirao_await(b->m, b->id, -1, &ok, &res, &len);
    return NULL;
}

static void test_open_close_cycles(void)
{
    char err[256];
    for (int i = 0; i < 40; i++) {
        mutirao *m;
        ASSERT_OK(mutirao_open(NULL, &m, err, sizeof err));
        /* the pool is closed with the client, so its name is free again */
        ASSERT_OK(mutirao_pool_create(m, "cycle", 2, -1, 0));
        char id[MUTIRAO_TASK_ID_MAX];
        ASSERT_OK(mutirao_submit(m, "cycle", "return ...", 10, "\x91\x05", 2, id));
        if (i % 2 == 0) { /* every other client leaves its task unawaited */
            int ok;
            void *res;
            size_t len;
            ASSERT_OK(mutirao_await(m, id, 5000, &ok, &res, &len));
            mutirao_free(res);
        }
        mutirao_close(m);
    }
    /* a call blocked in another thread returns ECLOSED when the client closes */
    mutirao *m;
    ASSERT_OK(mutirao_open(NULL, &m, err, sizeof err));
    ASSERT_OK(mutirao_pool_create(m, "cycle", 1, -1, 0));
    blocked b = {.m = m, .rc = 1};
    static const char slow[] = "require('goroutine').sleep(400) return 1";
    ASSERT_OK(mutirao_submit(m, "cycle", slow, strlen(slow), NULL, 0, b.id));
    pthread_t th;
    pthread_create(&th, NULL, await_forever, &b);
    struct timespec d = {0, 50 * 1000000};
    nanosleep(&d, NULL);
    mutirao_close(m);
    pthread_join(th, NULL);
    ASSERT_INT(b.rc, MUTIRAO_ECLOSED);
    mutirao_close(NULL);
}

int main(void)
{
    char err[256];
    test_version_and_errors();
    test_open_config();
    if (mutirao_open(NULL, &M, err, sizeof err) != 0) {
        fprintf(stderr, "mutirao_open: %s\n", err);
        return 1;
    }
    if (mutirao_pool_create(M, "types", 4, -1, 0) != 0) {
        fprintf(stderr, "pool_create: %s\n", mutirao_last_error());
        return 1;
    }
    test_types_round_trip();
    test_failures();
    test_malformed_args();
    test_timeouts();
    test_stats_exact();
    test_backpressure();
    test_threads();
    mutirao_close(M);
    test_open_close_cycles();
    if (failures) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("libmutirao: all tests passed\n");
    return 0;
}
