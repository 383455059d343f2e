/* producer.c: a C service submitting Lua tasks through libmutirao.
 *
 * Knows nothing of Lua's C API: the tasks are Lua source text, their
 * arguments and results msgpack (written and read here with msgpack-c).
 *
 *   cc producer.c $(pkg-config --cflags --libs mutirao msgpack) -o producer
 *   ./producer            # MUTIRAO_CONFIG or config/mutirao.conf if present
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <mutirao.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "%s: %s (%s)\n", #call, mutirao_last_error(), mutirao_errname(rc_));   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Prints the result array of a task: [v1, v2, ...]. */
static void print_result(const char *what, int ok, const void *res, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, res, len, NULL) != MSGPACK_UNPACK_SUCCESS) {
        printf("%s: undecodable result\n", what);
    } else {
        printf("%s: %s ", what, ok ? "ok" : "failed");
        msgpack_object_print(stdout, u.data);
        printf("\n");
    }
    msgpack_unpacked_destroy(&u);
}

int main(void)
{
    char err[512];
    mutirao *m;
    printf("libmutirao %s\n", mutirao_version());
    if (mutirao_open(NULL, &m, err, sizeof err) != 0) {
        fprintf(stderr, "mutirao_open: %s\n", err);
        return 1;
    }
    CHECK(mutirao_pool_create(m, "example", 4, -1, 0));

    /* ten tasks `return (...) * 2` with the arguments [i] */
    static const char doubler[] = "return (...) * 2";
    char ids[10][MUTIRAO_TASK_ID_MAX];
    for (int i = 0; i < 10; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_int(&pk, i + 1);
        CHECK(mutirao_submit(m, "example", doubler, strlen(doubler), sb.data, sb.size, ids[i]));
        msgpack_sbuffer_destroy(&sb);
    }
    long long total = 0;
    for (int i = 0; i < 10; i++) {
        int ok;
        void *res;
        size_t len;
        CHECK(mutirao_await(m, ids[i], 5000, &ok, &res, &len));
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (ok && msgpack_unpack_next(&u, res, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 1)
            total += (long long)u.data.via.array.ptr[0].via.i64;
        msgpack_unpacked_destroy(&u);
        mutirao_free(res);
    }
    printf("doubled 1..10: total %lld\n", total);

    /* a sum over an array argument, returning a map and a string */
    static const char summer[] = "local xs, label = ...\n"
                                 "local s = 0\n"
                                 "for _, x in ipairs(xs) do s = s + x end\n"
                                 "return {sum = s, n = #xs}, label .. ' done'\n";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_array(&pk, 100);
    for (int i = 1; i <= 100; i++)
        msgpack_pack_int(&pk, i);
    msgpack_pack_str_with_body(&pk, "sum", 3);
    char id[MUTIRAO_TASK_ID_MAX];
    CHECK(mutirao_submit(m, "example", summer, strlen(summer), sb.data, sb.size, id));
    msgpack_sbuffer_destroy(&sb);
    int ok;
    void *res;
    size_t len;
    CHECK(mutirao_await(m, id, 5000, &ok, &res, &len));
    print_result("sum", ok, res, len);
    mutirao_free(res);

    /* a failing task: *ok = 0 and the error message with its traceback */
    static const char bad[] = "error('no such host: ' .. ...)";
    static const unsigned char arg[] = {0x91, 0xa6, 'd', 'b', '-', '0', '9', '9'}; /* ["db-099"] */
    CHECK(mutirao_submit(m, "example", bad, strlen(bad), arg, sizeof arg, id));
    CHECK(mutirao_await(m, id, 5000, &ok, &res, &len));
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (!ok && msgpack_unpack_next(&u, res, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.via.array.size == 1 && u.data.via.array.ptr[0].type == MSGPACK_OBJECT_STR) {
        msgpack_object_str s = u.data.via.array.ptr[0].via.str;
        const char *nl = memchr(s.ptr, '\n', s.size);
        printf("failing task: %.*s\n", (int)(nl ? nl - s.ptr : s.size), s.ptr);
    }
    msgpack_unpacked_destroy(&u);
    mutirao_free(res);

    CHECK(mutirao_pool_wait(m, "example", 5000));
    mutirao_stats st;
    CHECK(mutirao_pool_stats(m, "example", &st));
    printf("stats: workers=%lld submitted=%lld completed=%lld failed=%lld active=%lld "
           "queued=%lld\n",
           (long long)st.workers, (long long)st.submitted, (long long)st.completed,
           (long long)st.failed, (long long)st.active, (long long)st.queued);
    CHECK(mutirao_pool_close(m, "example"));
    mutirao_close(m);
    return 0;
}
