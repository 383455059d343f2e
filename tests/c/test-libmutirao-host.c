/* test-libmutirao-host.c: a host program with functions and a global named
 * like libmutirao's internals (libmutirao-host.h) links against
 * libmutirao.a or libmutirao.so (no duplicate definitions), runs tasks
 * through the public API, and its own calls reach its own functions while
 * the library never calls them. Needs no msgpack library: the few msgpack
 * bytes are written by hand. */
#include <stdio.h>
#include <string.h>

#include <mutirao.h>

#include "libmutirao-host.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: %s failed (last error: %s)\n", __FILE__, __LINE__, #cond,      \
                    mutirao_last_error());                                                         \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Calls each of the host's own functions once (10 calls) and checks what
 * they return: the host's behaviour, not the library's. */
static void call_own(void)
{
    char rot[16];
    int n = 3;
    CHECK(config_load("answer", 0) == 42);
    int h = handle_new();
    CHECK(h >= 1000);
    CHECK(port_post(2.0) == 3.0);
    CHECK(strcmp(sched_get(4), "fri") == 0);
    CHECK(codec_encode("Hello", rot, sizeof rot) == 5 && strcmp(rot, "Uryyb") == 0);
    CHECK(envelope_check_id(98) == 1);
    CHECK(redis_uv_open() == -42);
    CHECK(kuv_producer_new(6, 7) == 42);
    CHECK(travel_pack(30) == 2);
    int before = pools;
    procs_start(&n);
    CHECK(n == 7 && pools == before + 3);
}

/* Task i: a goroutine multiplies i by i + 1; the result is [i * (i + 1), "product"]. */
static const char task[] = "local G = require('goroutine')\n"
                           "local x, y = ...\n"
                           "local h = G.async(function(a, b) G.sleep(1) return a * b end, x, y)\n"
                           "local ok, v = G.await(h)\n"
                           "assert(ok, v)\n"
                           "return v, 'product'\n";
#define NTASKS 8

static void run_tasks(void)
{
    char err[256];
    mutirao *m = NULL;
    int rc = mutirao_open(NULL, &m, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "mutirao_open: %s\n", err);
        failures++;
        return;
    }
    CHECK(mutirao_pool_create(m, "host", 2, -1, 0) == 0);
    char ids[NTASKS][MUTIRAO_TASK_ID_MAX];
    for (int i = 1; i <= NTASKS; i++) {
        const unsigned char args[] = {0x92, (unsigned char)i,
                                      (unsigned char)(i + 1)}; /* [i, i+1] */
        CHECK(mutirao_submit(m, "host", task, strlen(task), args, sizeof args, ids[i - 1]) == 0);
    }
    for (int i = 1; i <= NTASKS; i++) {
        /* [i * (i + 1), "product"]: a fixarray of a positive fixint and a fixstr */
        const unsigned char want[] = {
            0x92, (unsigned char)(i * (i + 1)), 0xa7, 'p', 'r', 'o', 'd', 'u', 'c', 't'};
        int ok = 0;
        void *res = NULL;
        size_t len = 0;
        CHECK(mutirao_await(m, ids[i - 1], 10000, &ok, &res, &len) == 0);
        CHECK(ok == 1);
        CHECK(len == sizeof want && memcmp(res, want, len) == 0);
        if (!ok && res) /* the error message, inside its msgpack framing */
            fprintf(stderr, "task %d failed: %.*s\n", i, (int)len, (const char *)res);
        mutirao_free(res);
    }
    mutirao_stats st;
    CHECK(mutirao_pool_wait(m, "host", 10000) == 0);
    CHECK(mutirao_pool_stats(m, "host", &st) == 0);
    CHECK(st.completed == NTASKS && st.failed == 0);
    CHECK(mutirao_pool_close(m, "host") == 0);
    mutirao_close(m);
}

int main(void)
{
    printf("libmutirao %s\n", mutirao_version());
    call_own();
    CHECK(host_calls == 10);
    run_tasks();
    /* the library ran tasks, opened a configuration, made handles... through
     * its own functions: the host's were not called */
    CHECK(host_calls == 10);
    call_own();
    CHECK(host_calls == 20);
    CHECK(pools == 6);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("host: %d tasks ok, own functions intact\n", NTASKS);
    return 0;
}
