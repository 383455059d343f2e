/*
** test-redis-slot.c: tests of shared/redis/redis_slot.h.
**   test-redis-slot [NAME]           the unit tests (no server): CRC16
**                                    vectors, hash tags, routing keys,
**                                    MOVED/ASK parsing, CLUSTER SLOTS
**                                    replies built here, hostile ones too;
**   test-redis-slot live HOST:PORT   the same functions against a running
**                                    Redis Cluster (tests/integration/
**                                    redis_cluster_test.py starts a local one):
**                                    the map of its CLUSTER SLOTS, each key's
**                                    slot against CLUSTER KEYSLOT, routing
**                                    keys against COMMAND GETKEYS, the MOVED
**                                    of a node that does not serve a key and
**                                    the ASK of a slot being migrated; then
**                                    the async client's cluster mode
**                                    (redis+cluster://, redis_uv.h): keys
**                                    spread over the masters, scripts with
**                                    KEYS, a blocking pop, MOVED after a slot
**                                    moved, ASK while it moves, errors passed
**                                    through, a close with commands pending;
**   test-redis-slot restart HOST:PORT  a master killed and started again
**                                    (the caller kills it on "kill PORT");
**   test-redis-slot auth HOST:PORT PASSWORD, tls HOST:PORT CA_FILE
**                                    nodes requiring a password; TLS nodes.
** (tests/c/test-redis-slot.c is named after the slot helpers; the cluster
** client's tests live here because they share the live cluster's setup.)
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis_slot.h"
#include "redis_uv.h"
#include "test.h"

#define ASSERT_INT(a, op, b) ASSERT_BASE(a, op, b, int64_t, "%" PRId64)
#define ASSERT_UINT(a, op, b) ASSERT_BASE(a, op, b, uint64_t, "%" PRIu64)
#define ASSERT_STR(a, b) ASSERT_STR_EQ(a, b)

/* ---- unit tests --------------------------------------------------------- */

static int test_crc16(void)
{
    ASSERT_UINT(redis_slot_crc16("123456789", 9), ==, 0x31C3);
    ASSERT_UINT(redis_slot_crc16("", 0), ==, 0);
    ASSERT_UINT(redis_slot_crc16("A", 1), ==, 0x58E5);
    /* slots Redis documents or reports (CLUSTER KEYSLOT) */
    ASSERT_UINT(redis_slot_of("foo", 3), ==, 12182);
    ASSERT_UINT(redis_slot_of("bar", 3), ==, 5061);
    ASSERT_UINT(redis_slot_of("hello", 5), ==, 866);
    ASSERT_UINT(redis_slot_of("123456789", 9), ==, 0x31C3 % 16384);
    ASSERT_UINT(redis_slot_of(NULL, 0), ==, 0);
    ASSERT_UINT(redis_slot_of("", 0), ==, 0);
    /* binary-safe: a NUL inside the key counts */
    ASSERT(redis_slot_of("a\0b", 3) != redis_slot_of("a", 1));
    return 0;
}

static unsigned slot_s(const char *k)
{
    return redis_slot_of(k, strlen(k));
}

static int test_hash_tags(void)
{
    /* the tag alone is hashed */
    ASSERT_UINT(slot_s("{user1000}.following"), ==, slot_s("user1000"));
    ASSERT_UINT(slot_s("{user1000}.followers"), ==, slot_s("user1000"));
    ASSERT_UINT(slot_s("mutirao:pool:{p1}:stats"), ==, slot_s("p1"));
    ASSERT_UINT(slot_s("mutirao:pool:{p1}"), ==, slot_s("mutirao:x:{p1}:y:{p2}"));
    /* only the first '{' and the first '}' after it */
    ASSERT_UINT(slot_s("foo{bar}{zap}"), ==, slot_s("bar"));
    ASSERT_UINT(slot_s("foo{{bar}}zap"), ==, slot_s("{bar"));
    ASSERT_UINT(slot_s("a}b{c}"), ==, slot_s("c"));
    /* an empty tag or an unclosed one: the whole key */
    ASSERT_UINT(slot_s("foo{}{bar}"), ==, redis_slot_crc16("foo{}{bar}", 10) % 16384);
    ASSERT_UINT(slot_s("{}"), ==, redis_slot_crc16("{}", 2) % 16384);
    ASSERT_UINT(slot_s("foo{bar"), ==, redis_slot_crc16("foo{bar", 7) % 16384);
    ASSERT_UINT(slot_s("{"), ==, redis_slot_crc16("{", 1) % 16384);
    /* a tag closed past len is not a tag */
    ASSERT_UINT(redis_slot_of("x{ab}", 4), ==, redis_slot_crc16("x{ab", 4) % 16384);
    return 0;
}

static int key_of(const char *line)
{
    const char *argv[32];
    char buf[512];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *t = strtok(buf, " "); t != NULL && argc < 32; t = strtok(NULL, " "))
        argv[argc++] = t;
    return redis_slot_cmd_key(argc, argv, NULL);
}

static int test_cmd_key(void)
{
    ASSERT_INT(key_of("GET k"), ==, 1);
    ASSERT_INT(key_of("set k v"), ==, 1);
    ASSERT_INT(key_of("DEL a b c"), ==, 1);
    ASSERT_INT(key_of("BLPOP a b 0"), ==, 1);
    ASSERT_INT(key_of("HINCRBY h f 1"), ==, 1);
    ASSERT_INT(key_of("EVALSHA abc 2 k1 k2 a1"), ==, 3);
    ASSERT_INT(key_of("evalsha abc 0 a1 a2"), ==, 0);
    ASSERT_INT(key_of("EVAL src 1 k"), ==, 3);
    ASSERT_INT(key_of("EVAL src 2 k"), ==, 0);  /* numkeys past the end */
    ASSERT_INT(key_of("EVAL src -1 k"), ==, 0); /* malformed */
    ASSERT_INT(key_of("EVAL src x k"), ==, 0);
    ASSERT_INT(key_of("EVAL src"), ==, 0);
    ASSERT_INT(key_of("FCALL f 1 k"), ==, 3);
    ASSERT_INT(key_of("BLMPOP 2 1 l LEFT COUNT 1000"), ==, 3);
    ASSERT_INT(key_of("BLMPOP 2 0 l LEFT"), ==, 0);
    ASSERT_INT(key_of("LMPOP 2 a b LEFT"), ==, 2);
    ASSERT_INT(key_of("OBJECT ENCODING k"), ==, 2);
    ASSERT_INT(key_of("MEMORY USAGE k"), ==, 2);
    ASSERT_INT(key_of("XREAD COUNT 1 STREAMS s 0"), ==, 4);
    ASSERT_INT(key_of("XREAD COUNT 1"), ==, 0);
    ASSERT_INT(key_of("PING"), ==, 0);
    ASSERT_INT(key_of("PING x"), ==, 0);
    ASSERT_INT(key_of("CLUSTER SLOTS"), ==, 0);
    ASSERT_INT(key_of("SCRIPT LOAD x"), ==, 0);
    ASSERT_INT(key_of("AUTH u p"), ==, 0);
    ASSERT_INT(key_of("asking"), ==, 0);
    ASSERT_INT(redis_slot_cmd_key(0, NULL, NULL), ==, 0);
    ASSERT_INT(redis_slot_cmd_key(-3, NULL, NULL), ==, 0);
    const char *withnull[] = {"GET", NULL};
    ASSERT_INT(redis_slot_cmd_key(2, withnull, NULL), ==, 0);
    /* binary-safe lengths */
    const char *bin[] = {"GETxx", "k"};
    size_t lens[] = {3, 1};
    ASSERT_INT(redis_slot_cmd_key(2, bin, lens), ==, 1);
    const char *pingb[] = {"PINGxx", "k"};
    size_t plens[] = {4, 1};
    ASSERT_INT(redis_slot_cmd_key(2, pingb, plens), ==, 0);
    return 0;
}

static int redirect_s(const char *s, redis_redirect *r)
{
    return redis_redirect_parse(s, strlen(s), r);
}

static int test_redirect(void)
{
    redis_redirect r;
    ASSERT_INT(redirect_s("MOVED 3999 127.0.0.1:6381", &r), ==, 1);
    ASSERT_INT(r.ask, ==, 0);
    ASSERT_UINT(r.slot, ==, 3999);
    ASSERT_STR(r.host, "127.0.0.1");
    ASSERT_INT(r.port, ==, 6381);
    ASSERT_INT(redirect_s("ASK 0 ::1:7000", &r), ==, 1);
    ASSERT_INT(r.ask, ==, 1);
    ASSERT_UINT(r.slot, ==, 0);
    ASSERT_STR(r.host, "::1");
    ASSERT_INT(r.port, ==, 7000);
    ASSERT_INT(redirect_s("MOVED 16383 :6380", &r), ==, 1);
    ASSERT_STR(r.host, "");
    ASSERT_UINT(r.slot, ==, 16383);
    ASSERT_INT(redirect_s("MOVED 1 redis-2.example:65535 extra", &r), ==, 1);
    ASSERT_STR(r.host, "redis-2.example");
    ASSERT_INT(r.port, ==, 65535);
    /* other errors */
    ASSERT_INT(redirect_s("ERR unknown command", &r), ==, 0);
    ASSERT_INT(redirect_s("CROSSSLOT Keys in request don't hash to the same slot", &r), ==, 0);
    ASSERT_INT(redirect_s("MOVED", &r), ==, 0);
    ASSERT_INT(redirect_s("", &r), ==, 0);
    ASSERT_INT(redis_redirect_parse(NULL, 0, &r), ==, 0);
    /* malformed redirects */
    ASSERT_INT(redirect_s("MOVED 16384 h:1", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED -1 h:1", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED 12 h", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED 12 h:0", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED 12 h:65536", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED 12 h:99999999999999999999", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED 12 h:", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED 12", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("MOVED  h:1", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redirect_s("ASK 1x h:1", &r), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redis_redirect_parse("MOVED 1 a\0b:5", 13, &r), ==, REDIS_SLOT_EREPLY);
    char big[600];
    memset(big, 'h', sizeof big);
    memcpy(big, "MOVED 1 ", 8);
    memcpy(big + sizeof big - 5, ":6379", 5);
    ASSERT_INT(redis_redirect_parse(big, sizeof big, &r), ==, REDIS_SLOT_EREPLY);
    /* the length is honoured: the port ends where len says */
    ASSERT_INT(redis_redirect_parse("MOVED 7 h:6379", 12, &r), ==, 1);
    ASSERT_INT(r.port, ==, 63);
    return 0;
}

/* ---- CLUSTER SLOTS replies built by hand --------------------------------- */

static redisReply *r_int(long long v)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

static redisReply *r_str(const char *s)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

static redisReply *r_arr(size_t n, ...)
{
    va_list ap;
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static redisReply *node(const char *host, long long port)
{
    return r_arr(3, r_str(host), r_int(port), r_str("0123456789abcdef"));
}

static redisReply *range(long long lo, long long hi, redisReply *master)
{
    return r_arr(4, r_int(lo), r_int(hi), master, node("10.0.0.9", 7009));
}

static int test_map(void)
{
    redis_slot_map m;
    redisReply *ok = r_arr(
        4, range(0, 5460, node("127.0.0.1", 7000)), range(5461, 10922, node("127.0.0.1", 7001)),
        range(10923, 16000, node("127.0.0.1", 7002)), range(16001, 16383, node("127.0.0.1", 7000)));
    ASSERT_INT(redis_slot_map_parse(ok, &m), ==, 0);
    ASSERT_UINT(m.nnodes, ==, 3); /* replicas are not nodes of the map; 7000 once */
    ASSERT_UINT(redis_slot_map_covered(&m), ==, 16384);
    ASSERT_INT(redis_slot_map_node(&m, 0)->port, ==, 7000);
    ASSERT_INT(redis_slot_map_node(&m, 5461)->port, ==, 7001);
    ASSERT_INT(redis_slot_map_node(&m, 16383)->port, ==, 7000);
    ASSERT_STR(redis_slot_map_node(&m, 12000)->host, "127.0.0.1");
    ASSERT(redis_slot_map_node(&m, 16384) == NULL);
    redis_slot_map_free(&m);
    redis_slot_map_free(&m); /* twice: harmless */
    freeReplyObject(ok);

    /* a partial map is a map; uncovered slots have no node */
    redisReply *part = r_arr(1, range(100, 199, node("", 7005)));
    ASSERT_INT(redis_slot_map_parse(part, &m), ==, 0);
    ASSERT_UINT(redis_slot_map_covered(&m), ==, 100);
    ASSERT(redis_slot_map_node(&m, 99) == NULL);
    ASSERT_STR(redis_slot_map_node(&m, 150)->host, "");
    redis_slot_map_free(&m);
    freeReplyObject(part);

    redisReply *empty = r_arr(0);
    ASSERT_INT(redis_slot_map_parse(empty, &m), ==, 0);
    ASSERT_UINT(redis_slot_map_covered(&m), ==, 0);
    redis_slot_map_free(&m);
    freeReplyObject(empty);

    /* hostile replies: each refused, the map left empty */
    redisReply *bad[] = {
        r_int(3),
        r_str("x"),
        r_arr(1, r_int(1)),
        r_arr(1, r_arr(2, r_int(0), r_int(1))),
        r_arr(1, range(10, 5, node("h", 1))),
        r_arr(1, range(0, 16384, node("h", 1))),
        r_arr(1, range(-1, 5, node("h", 1))),
        r_arr(1, range(0, 5, node("h", 0))),
        r_arr(1, range(0, 5, node("h", 65536))),
        r_arr(1, r_arr(3, r_int(0), r_int(5), r_str("h"))),
        r_arr(1, r_arr(3, r_int(0), r_int(5), r_arr(1, r_str("h")))),
        r_arr(1, r_arr(3, r_int(0), r_int(5), r_arr(2, r_int(1), r_int(1)))),
        r_arr(1, r_arr(3, r_str("0"), r_int(5), node("h", 1))),
        r_arr(2, range(0, 10, node("h", 1)), range(10, 20, node("h", 2))),
        r_arr(2, range(0, 10, node("h", 1)), (redisReply *)NULL),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&m, 0x55, sizeof m);
        int rc = redis_slot_map_parse(bad[i], &m);
        if (rc != REDIS_SLOT_EREPLY)
            fprintf(stderr, "hostile reply %zu: %d\n", i, rc);
        ASSERT_INT(rc, ==, REDIS_SLOT_EREPLY);
        ASSERT(m.nodes == NULL && m.nnodes == 0 && redis_slot_map_covered(&m) == 0);
        /* freeReplyObject stops at a NULL element */
        freeReplyObject(bad[i]);
    }
    ASSERT_INT(redis_slot_map_parse(NULL, &m), ==, REDIS_SLOT_EREPLY);
    ASSERT_INT(redis_slot_map_parse(NULL, NULL), ==, REDIS_SLOT_EREPLY);

    /* a host with a NUL, a host too long */
    redisReply *nul = r_arr(1, range(0, 1, node("h", 1)));
    nul->element[0]->element[2]->element[0]->str[0] = '\0';
    ASSERT_INT(redis_slot_map_parse(nul, &m), ==, REDIS_SLOT_EREPLY);
    freeReplyObject(nul);
    char longhost[REDIS_SLOT_HOST_MAX + 2];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    redisReply *lh = r_arr(1, range(0, 1, node(longhost, 1)));
    ASSERT_INT(redis_slot_map_parse(lh, &m), ==, REDIS_SLOT_EREPLY);
    freeReplyObject(lh);

    /* too many nodes */
    redisReply *many = calloc(1, sizeof *many);
    many->type = REDIS_REPLY_ARRAY;
    many->elements = REDIS_SLOT_NODES_MAX + 1;
    many->element = calloc(many->elements, sizeof *many->element);
    for (size_t i = 0; i < many->elements; i++)
        many->element[i] = range((long long)i, (long long)i, node("h", (long long)i + 1));
    ASSERT_INT(redis_slot_map_parse(many, &m), ==, REDIS_SLOT_EREPLY);
    ASSERT(m.nodes == NULL);
    freeReplyObject(many);
    return 0;
}

/* ---- against a live cluster ---------------------------------------------- */

static redisContext *conn(const char *host, int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL || c->err) {
        fprintf(stderr, "cannot connect to %s:%d: %s\n", host, port, c ? c->errstr : "oom");
        if (c)
            redisFree(c);
        return NULL;
    }
    return c;
}

typedef struct live {
    redis_slot_map map;
    redisContext *node[8];
    char id[8][64];
} live;

static int live_close(live *l, int rc)
{
    for (size_t i = 0; i < l->map.nnodes && i < 8; i++)
        if (l->node[i])
            redisFree(l->node[i]);
    redis_slot_map_free(&l->map);
    return rc;
}

static int node_of(const live *l, unsigned slot)
{
    const redis_slot_node *n = redis_slot_map_node(&l->map, slot);
    return n ? (int)(n - l->map.nodes) : -1;
}

/* The keys the live test routes: plain, tagged like the fleet's, binary. */
static void key_n(char *out, size_t cap, int i)
{
    switch (i % 4) {
    case 0:
        snprintf(out, cap, "k%d", i);
        break;
    case 1:
        snprintf(out, cap, "mutirao:pool:{pool-%d}:stats", i);
        break;
    case 2:
        snprintf(out, cap, "mutirao:task:{host-%d-ab12}:%d:0f0f", i, i * 7);
        break;
    default:
        snprintf(out, cap, "x{}{%d}{y}", i);
        break;
    }
}

/* ---- the async client in cluster mode ------------------------------------ */

typedef struct answer {
    int done, status, type;
    long long integer;
    char str[256];
    size_t elements;
    char elem[4][64];
} answer;

static void on_answer(redis_uv *cli, int status, const redisReply *r, const char *err, void *ud)
{
    answer *a = ud;
    (void)cli;
    a->done++;
    a->status = status;
    if (status != 0) {
        snprintf(a->str, sizeof a->str, "%s", err ? err : "?");
        return;
    }
    a->type = r->type;
    a->integer = r->integer;
    if (r->str != NULL)
        snprintf(a->str, sizeof a->str, "%.*s", (int)r->len, r->str);
    a->elements = r->elements;
    /* BLMPOP: [key, [elements...]] */
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->element[1]->elements && i < 4; i++)
            snprintf(a->elem[i], sizeof a->elem[i], "%s", r->element[1]->element[i]->str);
}

static int run_until(uv_loop_t *loop, const int *flag, int want)
{
    uint64_t end = uv_hrtime() + 20000000000ULL;
    while (*flag < want && uv_hrtime() < end)
        uv_run(loop, UV_RUN_ONCE);
    return *flag >= want ? 0 : -1;
}

/* One command through the cluster client, waited for. */
static int cmd1(uv_loop_t *loop, redis_uv *c, answer *a, const char *fmt, const char *k,
                const char *v)
{
    memset(a, 0, sizeof *a);
    if (redis_uv_command(c, on_answer, a, fmt, k, v) != 0)
        return -1;
    return run_until(loop, &a->done, 1);
}

static redisReply *on_node(live *l, int n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(l->node[n], fmt, ap);
    va_end(ap);
    return r;
}

/* Moves slot from node src to node dst with its keys (what redis-cli
 * --cluster reshard does), keeping `keep` (a key of the slot, or NULL) on
 * src, the migration left open when keep is given. */
static int move_slot(live *l, unsigned slot, int src, int dst, const char *keep)
{
    redisReply *r;
    r = on_node(l, dst, "CLUSTER SETSLOT %u IMPORTING %s", slot, l->id[src]);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = on_node(l, src, "CLUSTER SETSLOT %u MIGRATING %s", slot, l->id[dst]);
    ok = ok && r && r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    r = on_node(l, src, "CLUSTER GETKEYSINSLOT %u 100", slot);
    if (!ok || r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (keep != NULL && strcmp(r->element[i]->str, keep) == 0)
            continue;
        redisReply *m = on_node(l, src, "MIGRATE %s %d %s 0 5000", "127.0.0.1",
                                l->map.nodes[dst].port, r->element[i]->str);
        ok = ok && m && m->type == REDIS_REPLY_STATUS;
        freeReplyObject(m);
    }
    freeReplyObject(r);
    if (keep != NULL || !ok)
        return ok ? 0 : -1;
    for (int n = 0; n < (int)l->map.nnodes; n++) {
        r = on_node(l, n, "CLUSTER SETSLOT %u NODE %s", slot, l->id[dst]);
        ok = ok && r && r->type == REDIS_REPLY_STATUS;
        freeReplyObject(r);
    }
    return ok ? 0 : -1;
}

static void on_closed(void *ud)
{
    (*(int *)ud)++;
}

static int live_client(live *l, const char *seed)
{
    uv_loop_t loop;
    redis_uv *c = NULL, *b = NULL;
    char url[300];
    answer a, pop;
    int closed = 0;
    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis+cluster://%s", seed);
    redis_uv_options o = {0};
    o.op_timeout_ms = 5000;
    ASSERT_INT(redis_uv_open(&loop, url, &o, &c), ==, 0);
    /* the map arrives: every master connected */
    for (int i = 0; i < 2000 && !redis_uv_is_connected(c); i++)
        uv_run(&loop, UV_RUN_NOWAIT), uv_sleep(1);
    ASSERT(redis_uv_is_connected(c));
    ASSERT_STR_CONTAINS(redis_uv_endpoint(c), "cluster ");

    /* keys of every master, written and read back, each on its owner */
    answer many[300];
    char keys[300][64];
    memset(many, 0, sizeof many);
    for (int i = 0; i < 300; i++) {
        key_n(keys[i], sizeof keys[i], i + 1000);
        ASSERT_INT(redis_uv_command(c, on_answer, &many[i], "SET %s v%d", keys[i], i), ==, 0);
    }
    for (int i = 0; i < 300; i++) {
        ASSERT_INT(run_until(&loop, &many[i].done, 1), ==, 0);
        ASSERT_INT(many[i].status, ==, 0);
        ASSERT_STR(many[i].str, "OK");
    }
    int per[8] = {0};
    for (int i = 0; i < 300; i++) {
        char want[16];
        snprintf(want, sizeof want, "v%d", i);
        const char *argv[] = {"GET", keys[i]};
        memset(&a, 0, sizeof a);
        ASSERT_INT(redis_uv_command_argv(c, on_answer, &a, 2, argv, NULL), ==, 0);
        ASSERT_INT(run_until(&loop, &a.done, 1), ==, 0);
        ASSERT_STR(a.str, want);
        int own = node_of(l, redis_slot_of(keys[i], strlen(keys[i])));
        redisReply *r = on_node(l, own, "GET %s", keys[i]);
        ASSERT(r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0);
        freeReplyObject(r);
        per[own]++;
    }
    for (int n = 0; n < 3; n++)
        ASSERT_INT(per[n], >, 30);
    redis_uv_stats st;
    redis_uv_get_stats(c, &st);
    ASSERT_INT(st.moved, ==, 0); /* the map was known: every command went to its owner */
    ASSERT_INT(st.connects, ==, 3);

    /* a script with its KEYS in one slot, on each master */
    static const char src[] = "redis.call('SET', KEYS[1], ARGV[1])\n"
                              "return redis.call('INCRBY', KEYS[2], #ARGV[1])\n";
    int sid = redis_uv_script(c, src, strlen(src));
    ASSERT_INT(sid, >=, 0);
    for (int i = 0; i < 30; i++) {
        char k1[64], k2[64];
        snprintf(k1, sizeof k1, "mutirao:{tag%d}:a", i);
        snprintf(k2, sizeof k2, "mutirao:{tag%d}:b", i);
        const char *argv[] = {k1, k2, "hello"};
        for (int round = 1; round <= 2; round++) {
            memset(&a, 0, sizeof a);
            ASSERT_INT(redis_uv_eval(c, on_answer, &a, sid, 2, 3, argv, NULL), ==, 0);
            ASSERT_INT(run_until(&loop, &a.done, 1), ==, 0);
            ASSERT_INT(a.status, ==, 0);
            ASSERT_INT(a.type, ==, REDIS_REPLY_INTEGER);
            ASSERT_INT(a.integer, ==, 5 * round);
        }
    }
    /* keys of two slots: the server's CROSSSLOT comes back as a reply */
    ASSERT_INT(cmd1(&loop, c, &a, "MGET %s %s", "{x1}a", "{x2}b"), ==, 0);
    ASSERT_INT(a.status, ==, 0);
    ASSERT_INT(a.type, ==, REDIS_REPLY_ERROR);
    ASSERT_STR_CONTAINS(a.str, "CROSSSLOT");
    /* keyless commands go to a node */
    memset(&a, 0, sizeof a);
    ASSERT_INT(redis_uv_command(c, on_answer, &a, "PING"), ==, 0);
    ASSERT_INT(run_until(&loop, &a.done, 1), ==, 0);
    ASSERT_STR(a.str, "PONG");

    /* a blocking pop on a client of its own, answered by a push on another */
    o.op_timeout_ms = 10000;
    ASSERT_INT(redis_uv_open(&loop, url, &o, &b), ==, 0);
    memset(&pop, 0, sizeof pop);
    ASSERT_INT(redis_uv_command(b, on_answer, &pop, "BLMPOP 5 1 %s LEFT COUNT 10",
                                "mutirao:done:{prod-7}"),
               ==, 0);
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT), uv_sleep(2);
    ASSERT_INT(pop.done, ==, 0);
    ASSERT_INT(cmd1(&loop, c, &a, "RPUSH %s %s", "mutirao:done:{prod-7}", "Rone"), ==, 0);
    ASSERT_INT(a.integer, ==, 1);
    ASSERT_INT(run_until(&loop, &pop.done, 1), ==, 0);
    ASSERT_INT(pop.status, ==, 0);
    ASSERT_STR(pop.elem[0], "Rone");

    /* MOVED: a slot moved to another master with its key; the client follows */
    const char *mk = "mutirao:pool:{moving}:stats";
    unsigned ms = redis_slot_of(mk, strlen(mk));
    int msrc = node_of(l, ms), mdst = (msrc + 1) % 3;
    redis_uv_stats st0, st1;
    ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", mk, "before"), ==, 0);
    ASSERT_INT(move_slot(l, ms, msrc, mdst, NULL), ==, 0);
    redis_uv_get_stats(c, &st0);
    ASSERT_INT(cmd1(&loop, c, &a, "GET %s", mk, NULL), ==, 0);
    ASSERT_INT(a.status, ==, 0);
    ASSERT_STR(a.str, "before");
    redis_uv_get_stats(c, &st1);
    ASSERT_INT(st1.moved, ==, st0.moved + 1);
    ASSERT_INT(st1.refreshes, >, st0.refreshes);
    ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", mk, "after"), ==, 0);
    redisReply *r = on_node(l, mdst, "GET %s", mk);
    ASSERT(r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, "after") == 0);
    freeReplyObject(r);
    /* and a script on the moved slot */
    {
        const char *argv[] = {mk, "mutirao:pool:{moving}:x", "abc"};
        memset(&a, 0, sizeof a);
        ASSERT_INT(redis_uv_eval(c, on_answer, &a, sid, 2, 3, argv, NULL), ==, 0);
        ASSERT_INT(run_until(&loop, &a.done, 1), ==, 0);
        ASSERT_INT(a.integer, ==, 3);
    }

    /* ASK: one key of a slot moved, the other not yet */
    const char *k1 = "mutirao:task:{asking}:1", *k2 = "mutirao:task:{asking}:2";
    unsigned as = redis_slot_of(k1, strlen(k1));
    int asrc = node_of(l, as), adst = (asrc + 2) % 3;
    ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", k1, "one"), ==, 0);
    ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", k2, "two"), ==, 0);
    ASSERT_INT(move_slot(l, as, asrc, adst, k2), ==, 0);
    r = on_node(l, asrc, "GET %s", k1);
    ASSERT(r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ASK ", 4) == 0);
    freeReplyObject(r);
    redis_uv_get_stats(c, &st0);
    ASSERT_INT(cmd1(&loop, c, &a, "GET %s", k1, NULL), ==, 0);
    ASSERT_INT(a.status, ==, 0);
    ASSERT_STR(a.str, "one");
    redis_uv_get_stats(c, &st1);
    ASSERT_INT(st1.asked, ==, st0.asked + 1);
    ASSERT_INT(cmd1(&loop, c, &a, "GET %s", k2, NULL), ==, 0);
    ASSERT_STR(a.str, "two");
    ASSERT_INT(move_slot(l, as, asrc, adst, NULL), ==, 0); /* finish it */
    ASSERT_INT(cmd1(&loop, c, &a, "GET %s", k2, NULL), ==, 0);
    ASSERT_STR(a.str, "two");

    /* close with a command pending: its callback once, with ECLOSED */
    memset(&pop, 0, sizeof pop);
    ASSERT_INT(redis_uv_command(b, on_answer, &pop, "BLMPOP 5 1 %s LEFT", "mutirao:done:{idle}"),
               ==, 0);
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    redis_uv_close(b, on_closed, &closed);
    ASSERT_INT(redis_uv_command(b, NULL, NULL, "PING"), ==, REDIS_UV_ECLOSED);
    redis_uv_close(c, on_closed, &closed);
    ASSERT_INT(run_until(&loop, &closed, 2), ==, 0);
    ASSERT_INT(pop.done, ==, 1);
    ASSERT_INT(pop.status, ==, REDIS_UV_ECLOSED);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_INT(uv_loop_close(&loop), ==, 0);

    /* URLs refused */
    redis_uv *x = NULL;
    uv_loop_init(&loop);
    ASSERT_INT(redis_uv_open(&loop, "redis+cluster://", NULL, &x), ==, REDIS_UV_EURL);
    ASSERT_INT(redis_uv_open(&loop, "redis+cluster://h:1/3", NULL, &x), ==, REDIS_UV_EURL);
    ASSERT_INT(redis_uv_open(&loop, "redis+cluster://h:0", NULL, &x), ==, REDIS_UV_EURL);
    ASSERT_INT(redis_uv_open(&loop, "redis+cluster://h:1,,h:2", NULL, &x), ==, REDIS_UV_EURL);
    ASSERT_INT(redis_uv_open(&loop, "redis+cluster://[::1", NULL, &x), ==, REDIS_UV_EURL);
    ASSERT(x == NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_INT(uv_loop_close(&loop), ==, 0);
    return 0;
}

/* Reads the map from seed and connects to each master (hiredis); the
 * caller frees l with live_close either way. */
static int live_map(live *l, const char *seed)
{
    char host[256];
    const char *colon = strrchr(seed, ':');
    ASSERT(colon != NULL && (size_t)(colon - seed) < sizeof host);
    memcpy(host, seed, (size_t)(colon - seed));
    host[colon - seed] = '\0';

    redisContext *c = conn(host, atoi(colon + 1));
    ASSERT(c != NULL);
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    int rc = r != NULL ? redis_slot_map_parse(r, &l->map) : -1;
    freeReplyObject(r);
    redisFree(c);
    ASSERT_INT(rc, ==, 0);
    ASSERT_UINT(redis_slot_map_covered(&l->map), ==, 16384);
    ASSERT_UINT(l->map.nnodes, ==, 3);
    for (size_t i = 0; i < l->map.nnodes; i++) {
        const char *h = l->map.nodes[i].host[0] && strcmp(l->map.nodes[i].host, "?") != 0
                            ? l->map.nodes[i].host
                            : host;
        l->node[i] = conn(h, l->map.nodes[i].port);
        ASSERT(l->node[i] != NULL);
        r = redisCommand(l->node[i], "CLUSTER MYID");
        int ok = r != NULL && r->type == REDIS_REPLY_STRING && r->len < sizeof l->id[i];
        if (ok)
            memcpy(l->id[i], r->str, r->len);
        freeReplyObject(r);
        ASSERT(ok);
    }
    return 0;
}

static int live_run(const char *seed)
{
    live l;
    redisReply *r;
    int rc;
    memset(&l, 0, sizeof l);
    if (live_map(&l, seed) != 0)
        return live_close(&l, 1);

    /* every key's slot as the server computes it; its owner answers, the others MOVE */
    int moved = 0;
    for (int i = 0; i < 400; i++) {
        char k[128];
        key_n(k, sizeof k, i);
        r = redisCommand(l.node[0], "CLUSTER KEYSLOT %s", k);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER ||
            (unsigned)r->integer != redis_slot_of(k, strlen(k))) {
            fprintf(stderr, "key %s: server slot %lld, ours %u\n", k, r ? r->integer : -1,
                    redis_slot_of(k, strlen(k)));
            freeReplyObject(r);
            return live_close(&l, 1);
        }
        freeReplyObject(r);
        unsigned slot = redis_slot_of(k, strlen(k));
        int own = node_of(&l, slot);
        for (int n = 0; n < (int)l.map.nnodes; n++) {
            r = redisCommand(l.node[n], "SET %s v", k);
            if (r == NULL)
                return live_close(&l, 1);
            if (n == own) {
                if (r->type != REDIS_REPLY_STATUS) {
                    fprintf(stderr, "owner of %s answered %s\n", k, r->str ? r->str : "?");
                    freeReplyObject(r);
                    return live_close(&l, 1);
                }
            } else {
                redis_redirect d;
                int pr =
                    r->type == REDIS_REPLY_ERROR ? redis_redirect_parse(r->str, r->len, &d) : -1;
                if (pr != 1 || d.ask || d.slot != slot || d.port != l.map.nodes[own].port) {
                    fprintf(stderr, "node %d on %s: %s\n", n, k, r->str ? r->str : "?");
                    freeReplyObject(r);
                    return live_close(&l, 1);
                }
                moved++;
            }
            freeReplyObject(r);
        }
        r = redisCommand(l.node[own], "DEL %s", k);
        freeReplyObject(r);
    }
    ASSERT_INT(moved, ==, 800);

    /* routing keys agree with the server's COMMAND GETKEYS */
    static const char *const cmds[] = {
        "GET k1",
        "DEL k2 k3",
        "HINCRBY h f 1",
        "EVALSHA 0123 2 k4 k5 a",
        "EVAL x 1 k6 a",
        "BLMPOP 2 1 k7 LEFT COUNT 1000",
        "LMPOP 2 k8 k9 LEFT",
        "BLPOP k10 k11 0",
        "OBJECT ENCODING k12",
        "MEMORY USAGE k13",
        "XREAD COUNT 1 STREAMS k14 0",
        "ZADD k15 NX 1 m",
        "EXPIRE k16 5",
        "SET k17 v EX 5",
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *argv[16];
        char buf[128];
        int argc = 0;
        snprintf(buf, sizeof buf, "COMMAND GETKEYS %s", cmds[i]);
        for (char *t = strtok(buf, " "); t != NULL && argc < 16; t = strtok(NULL, " "))
            argv[argc++] = t;
        r = redisCommandArgv(l.node[0], argc, argv, NULL);
        int at = redis_slot_cmd_key(argc - 2, argv + 2, NULL);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || at < 1 ||
            strcmp(r->element[0]->str, argv[2 + at]) != 0) {
            fprintf(stderr, "%s: server %s, ours argv[%d]\n", cmds[i],
                    r && r->type == REDIS_REPLY_ARRAY && r->elements ? r->element[0]->str
                    : r && r->str                                    ? r->str
                                                                     : "?",
                    at);
            freeReplyObject(r);
            return live_close(&l, 1);
        }
        freeReplyObject(r);
    }

    /* ASK: the slot of a key being migrated from its owner to another node */
    const char *ak = "mutirao:{ask-test}:x";
    unsigned aslot = redis_slot_of(ak, strlen(ak));
    int src = node_of(&l, aslot), dst = (src + 1) % (int)l.map.nnodes;
    r = redisCommand(l.node[dst], "CLUSTER SETSLOT %u IMPORTING %s", aslot, l.id[src]);
    ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(l.node[src], "CLUSTER SETSLOT %u MIGRATING %s", aslot, l.id[dst]);
    ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redis_redirect d;
    r = redisCommand(l.node[src], "GET %s", ak); /* not there: ASK */
    ASSERT(r != NULL && r->type == REDIS_REPLY_ERROR);
    rc = redis_redirect_parse(r->str, r->len, &d);
    freeReplyObject(r);
    ASSERT_INT(rc, ==, 1);
    ASSERT_INT(d.ask, ==, 1);
    ASSERT_UINT(d.slot, ==, aslot);
    ASSERT_INT(d.port, ==, l.map.nodes[dst].port);
    r = redisCommand(l.node[dst], "GET %s", ak); /* without ASKING: MOVED back */
    ASSERT(r != NULL && r->type == REDIS_REPLY_ERROR);
    rc = redis_redirect_parse(r->str, r->len, &d);
    freeReplyObject(r);
    ASSERT_INT(rc, ==, 1);
    ASSERT_INT(d.ask, ==, 0);
    ASSERT_INT(d.port, ==, l.map.nodes[src].port);
    r = redisCommand(l.node[dst], "ASKING");
    ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);
    r = redisCommand(l.node[dst], "GET %s", ak); /* after ASKING: served */
    ASSERT(r != NULL && r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    for (int n = 0; n < (int)l.map.nnodes; n++) {
        r = redisCommand(l.node[n], "CLUSTER SETSLOT %u STABLE", aslot);
        ASSERT(r != NULL && r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
    }
    return live_close(&l, live_client(&l, seed));
}

/* A master killed and restarted while the client runs (tests/integration/
 * redis_cluster_test.py, case node_restart, does the killing: this prints
 * "kill PORT" and "restart PORT" and waits for a line on stdin after each).
 * Commands for its slots fail while it is down, the others do not; once it
 * is back, the client reconnects and they succeed. */
static int restart_run(const char *seed)
{
    live l;
    char line[64];
    memset(&l, 0, sizeof l);
    if (live_map(&l, seed) != 0)
        return live_close(&l, 1);
    uv_loop_t loop;
    redis_uv *c = NULL;
    char url[300];
    answer a;
    int closed = 0;
    uv_loop_init(&loop);
    snprintf(url, sizeof url, "redis+cluster://%s", seed);
    redis_uv_options o = {0};
    o.op_timeout_ms = 1000;
    o.backoff_max_ms = 200;
    ASSERT_INT(redis_uv_open(&loop, url, &o, &c), ==, 0);
    for (int i = 0; i < 2000 && !redis_uv_is_connected(c); i++)
        uv_run(&loop, UV_RUN_NOWAIT), uv_sleep(1);
    ASSERT(redis_uv_is_connected(c));
    /* one key per master */
    char key[3][64];
    int have = 0;
    for (int i = 0; have != 7 && i < 1000; i++) {
        char k[64];
        snprintf(k, sizeof k, "mutirao:pool:{restart-%d}:stats", i);
        int n = node_of(&l, redis_slot_of(k, strlen(k)));
        if (n >= 0 && n < 3 && !(have & (1 << n))) {
            snprintf(key[n], sizeof key[n], "%s", k);
            have |= 1 << n;
        }
    }
    ASSERT_INT(have, ==, 7);
    for (int n = 0; n < 3; n++) {
        ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", key[n], "v"), ==, 0);
        ASSERT_STR(a.str, "OK");
    }
    int victim = 1;
    printf("kill %d\n", l.map.nodes[victim].port);
    fflush(stdout);
    ASSERT(fgets(line, sizeof line, stdin) != NULL);
    ASSERT_INT(cmd1(&loop, c, &a, "GET %s", key[victim], NULL), ==, 0);
    ASSERT_INT(a.status, <, 0); /* connection lost, or unreachable */
    fprintf(stderr, "while down: %s\n", a.str);
    for (int n = 0; n < 3; n++) {
        if (n == victim)
            continue;
        ASSERT_INT(cmd1(&loop, c, &a, "GET %s", key[n], NULL), ==, 0);
        ASSERT_INT(a.status, ==, 0);
        ASSERT_STR(a.str, "v");
    }
    ASSERT(!redis_uv_is_connected(c));
    printf("restart %d\n", l.map.nodes[victim].port);
    fflush(stdout);
    ASSERT(fgets(line, sizeof line, stdin) != NULL);
    int ok = 0;
    for (int i = 0; i < 100 && !ok; i++) {
        ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", key[victim], "w"), ==, 0);
        ok = a.status == 0 && a.type == REDIS_REPLY_STATUS;
        if (!ok)
            uv_sleep(100);
    }
    ASSERT(ok);
    ASSERT_INT(cmd1(&loop, c, &a, "GET %s", key[victim], NULL), ==, 0);
    ASSERT_STR(a.str, "w");
    ASSERT(redis_uv_is_connected(c));
    redis_uv_close(c, on_closed, &closed);
    ASSERT_INT(run_until(&loop, &closed, 1), ==, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_INT(uv_loop_close(&loop), ==, 0);
    return live_close(&l, 0);
}

/* A cluster whose nodes require a password (tests/integration/
 * redis_cluster_test.py, case auth): the URL's password, the password
 * option, and a wrong password failing commands with AUTH's reason. With
 * ca (case tls, pass NULL): rediss+cluster:// with that CA file, then the
 * system's CA store failing to verify the nodes' certificates. */
static int auth_run(const char *seed, const char *pass, const char *ca)
{
    uv_loop_t loop;
    redis_uv *c = NULL;
    char url[300];
    answer a;
    int closed = 0;
    uv_loop_init(&loop);
    for (int way = 0; way < 3; way++) {
        redis_uv_options o = {0};
        o.op_timeout_ms = 1500;
        const char *scheme = ca != NULL ? "rediss+cluster" : "redis+cluster";
        o.tls_ca_file = ca;
        if (ca != NULL && way > 0)
            break; /* TLS: the certificate checks, not the password */
        if (way == 0 && pass != NULL)
            snprintf(url, sizeof url, "%s://:%s@%s", scheme, pass, seed);
        else
            snprintf(url, sizeof url, "%s://%s", scheme, seed);
        if (way == 1)
            o.password = pass;
        if (way == 2)
            o.password = "wrong";
        ASSERT_INT(redis_uv_open(&loop, url, &o, &c), ==, 0);
        if (pass != NULL)
            ASSERT_NOT_CONTAINS(redis_uv_endpoint(c), pass);
        for (int i = 0; i < 40; i++) {
            char k[64];
            snprintf(k, sizeof k, "mutirao:pool:{auth-%d}", i);
            ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", k, "v"), ==, 0);
            if (way < 2) {
                ASSERT_INT(a.status, ==, 0);
                ASSERT_STR(a.str, "OK");
            } else {
                ASSERT_INT(a.status, ==, REDIS_UV_EUNREACHABLE);
                ASSERT_STR_CONTAINS(a.str, "AUTH failed");
                break;
            }
        }
        if (way < 2)
            ASSERT(redis_uv_is_connected(c));
        redis_uv_close(c, on_closed, &closed);
        ASSERT_INT(run_until(&loop, &closed, way + 1), ==, 0);
    }
    if (ca != NULL) {
        /* the certificate does not verify with another CA (the system's) */
        redis_uv_options o = {0};
        o.op_timeout_ms = 1500;
        snprintf(url, sizeof url, "rediss+cluster://%s", seed);
        ASSERT_INT(redis_uv_open(&loop, url, &o, &c), ==, 0);
        ASSERT_INT(cmd1(&loop, c, &a, "SET %s %s", "mutirao:pool:{tls}", "v"), ==, 0);
        ASSERT_INT(a.status, ==, REDIS_UV_EUNREACHABLE);
        ASSERT_STR_CONTAINS(a.str, "certificate verify failed");
        redis_uv_close(c, on_closed, &closed);
        ASSERT_INT(run_until(&loop, &closed, 2), ==, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_INT(uv_loop_close(&loop), ==, 0);
    return 0;
}

int main(int argc, char **argv)
{
    static const test tests[] = {
        {"crc16", test_crc16},     {"hash_tags", test_hash_tags},
        {"cmd_key", test_cmd_key}, {"redirect", test_redirect},
        {"map", test_map},
    };
    if (argc == 4 && strcmp(argv[1], "auth") == 0) {
        int rc = auth_run(argv[2], argv[3], NULL);
        printf("%s auth %s\n", rc == 0 ? "ok  " : "FAIL", argv[2]);
        return rc != 0;
    }
    if (argc == 4 && strcmp(argv[1], "tls") == 0) {
        int rc = auth_run(argv[2], NULL, argv[3]);
        printf("%s tls %s\n", rc == 0 ? "ok  " : "FAIL", argv[2]);
        return rc != 0;
    }
    if (argc == 3 && strcmp(argv[1], "restart") == 0) {
        int rc = restart_run(argv[2]);
        printf("%s restart %s\n", rc == 0 ? "ok  " : "FAIL", argv[2]);
        return rc != 0;
    }
    if (argc == 3 && strcmp(argv[1], "live") == 0) {
        int rc = live_run(argv[2]);
        printf("%s live %s\n", rc == 0 ? "ok  " : "FAIL", argv[2]);
        return rc != 0;
    }
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
