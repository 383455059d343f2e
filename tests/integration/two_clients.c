/* two_clients.c: three libmutirao clients in one process, each with its own
 * configuration file (tests/integration/fleet_test.py, case two_clients):
 *
 *   two_clients EMBEDDED.conf FLEET.conf BROKEN.conf POOL
 *
 * The first runs its pools on this process's VM threads, the second on the
 * fleet, the third on a fleet whose Redis cannot be reached. The same pool
 * name is created on each; a task reports which backend ran it (the pool
 * backend of its VM), so a configuration leaking from one client to
 * another shows. Prints "two_clients: ok" and exits 0 when all holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <mutirao.h>

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "two_clients: FAIL %s:%d: ", __FILE__, __LINE__);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* Runs `return backend name, arg` on client m's pool; copies the backend
 * name the task saw into where. */
static int run_where(mutirao *m, const char *pool, char *where, size_t cap)
{
    static const char src[] = "return require('goroutine')._backend(), (...) + 1";
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_int(&pk, 41);
    char id[MUTIRAO_TASK_ID_MAX];
    int rc = mutirao_submit(m, pool, src, sizeof src - 1, sb.data, sb.size, id);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0)
        return rc;
    int ok = 0;
    void *res = NULL;
    size_t len = 0;
    rc = mutirao_await(m, id, 60000, &ok, &res, &len);
    if (rc != 0)
        return rc;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    where[0] = 0;
    if (msgpack_unpack_next(&u, res, len, NULL) == MSGPACK_UNPACK_SUCCESS && ok &&
        u.data.type == MSGPACK_OBJECT_ARRAY && u.data.via.array.size == 2 &&
        u.data.via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
        u.data.via.array.ptr[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        u.data.via.array.ptr[1].via.u64 == 42) {
        msgpack_object_str s = u.data.via.array.ptr[0].via.str;
        snprintf(where, cap, "%.*s", (int)s.size, s.ptr);
    }
    msgpack_unpacked_destroy(&u);
    mutirao_free(res);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: two_clients EMBEDDED.conf FLEET.conf BROKEN.conf POOL\n");
        return 2;
    }
    const char *pool = argv[4];
    char err[512];
    mutirao *emb = NULL, *fleet = NULL, *broken = NULL;
    int rc = mutirao_open(argv[1], &emb, err, sizeof err);
    EXPECT(rc == 0, "open embedded: %s", err);
    rc = mutirao_open(argv[2], &fleet, err, sizeof err);
    EXPECT(rc == 0, "open fleet: %s", err);
    rc = mutirao_open(argv[3], &broken, err, sizeof err);
    EXPECT(rc == 0, "open broken: %s", err);
    if (failures)
        return 1;

    /* the broken client first: its failure must not touch the others */
    rc = mutirao_pool_create(broken, pool, 2, -1, 0);
    EXPECT(rc != 0, "pool_create on an unreachable Redis succeeded");
    EXPECT(strstr(mutirao_last_error(), "127.0.0.1:1") != NULL,
           "the error names the broken client's Redis: %s", mutirao_last_error());

    EXPECT(mutirao_pool_create(emb, pool, 2, -1, 0) == 0, "create embedded: %s",
           mutirao_last_error());
    EXPECT(mutirao_pool_create(fleet, pool, 2, -1, 0) == 0, "create fleet: %s",
           mutirao_last_error());

    char where[64];
    for (int round = 0; round < 3; round++) {
        rc = run_where(emb, pool, where, sizeof where);
        EXPECT(rc == 0 && !strcmp(where, "embedded"), "embedded client's task ran on '%s' (%s)",
               where, rc ? mutirao_last_error() : "ok");
        rc = run_where(fleet, pool, where, sizeof where);
        EXPECT(rc == 0 && !strcmp(where, "fleet"), "fleet client's task ran on '%s' (%s)", where,
               rc ? mutirao_last_error() : "ok");
    }
    mutirao_stats st;
    EXPECT(mutirao_pool_stats(emb, pool, &st) == 0 && st.completed == 3 && st.submitted == 3,
           "embedded stats: completed %lld submitted %lld", (long long)st.completed,
           (long long)st.submitted);
    EXPECT(mutirao_pool_stats(fleet, pool, &st) == 0 && st.completed == 3 && st.submitted == 3,
           "fleet stats: completed %lld submitted %lld", (long long)st.completed,
           (long long)st.submitted);

    mutirao_close(broken);
    mutirao_close(fleet);
    mutirao_close(emb);
    if (failures)
        return 1;
    printf("two_clients: ok\n");
    return 0;
}
