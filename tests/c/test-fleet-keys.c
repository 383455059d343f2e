/* test-fleet-keys.c: fleet_bit_of (shared/wire/fleet_keys.c) gives, for
 * every id, the bitmap keys and bit the scripts' own seen(id)
 * (FLEET_SEEN_LUA, run here in a Lua state) would: the workers and the
 * producer pass them to the scripts instead of letting Redis parse ids;
 * fleet_bits holds a batch's of them. Both key layouts: flat, and tagged
 * (Redis Cluster), where every key of a task, of a producer or of a pool
 * carries the same hash tag. */
#include "test.h"

#include "fleet_keys.h"
#include "lua_test.h"

/* seen(id) of FLEET_SEEN_LUA: "KEY BIT", or "" for none */
static const char *lua_seen(lua_State *L, const char *id)
{
    lua_getglobal(L, "seen_of");
    lua_pushstring(L, id);
    lua_call(L, 1, 1);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays interned: the chunk keeps it in a table */
    return s;
}

static lua_State *seen_vm(const char *pre);

/* L: a state whose scripts run in the slot of prefix "mutirao:" (flat), or
 * NULL: one for the id's own slot (tagged) */
static int same_as_lua(lua_State *L, const char *id)
{
    fleet_bit b;
    char mine[2 * FLEET_KEY_MAX], pre[FLEET_KEY_MAX];
    size_t pl = fleet_prefix_id(pre, id);
    lua_State *own = L ? NULL : seen_vm(pre);
    ASSERT(L || own);
    mine[0] = 0;
    if (fleet_bit_of(id, strlen(id), &b) == 0) {
        snprintf(mine, sizeof mine, "%s %s", b.seen, b.bit);
        /* PREFIX "seen:" REST and PREFIX "sub:" REST */
        ASSERT(strncmp(b.seen, pre, pl) == 0 && strncmp(b.sub, pre, pl) == 0);
        ASSERT(strncmp(b.seen + pl, "seen:", 5) == 0 && strncmp(b.sub + pl, "sub:", 4) == 0);
        ASSERT_STR_EQ(b.sub + pl + 4, b.seen + pl + 5);
        ASSERT_EQ(b.seen_len, strlen(b.seen));
        ASSERT_EQ(b.sub_len, strlen(b.sub));
        ASSERT_EQ(b.bit_len, strlen(b.bit));
    }
    const char *lua = lua_seen(L ? L : own, id);
    int bad = strcmp(mine, lua) != 0;
    if (bad)
        fprintf(stderr, "id \"%s\": C \"%s\", Lua \"%s\"\n", id, mine, lua);
    if (own)
        lua_close(own);
    return bad;
}

/* The scripts' shared Lua, run in the slot of prefix pre (KEYS[1]) */
static lua_State *seen_vm(const char *pre)
{
    lua_State *L = lua_test_vm();
    lua_createtable(L, 1, 0);
    lua_pushstring(L, pre);
    lua_rawseti(L, -2, 1);
    lua_setglobal(L, "KEYS");
    /* redis.call is not needed by seen() */
    if (luaL_dostring(L, "redis = {}\n" FLEET_SEEN_LUA "keep = {}\n"
                         "function seen_of(id)\n"
                         "  local k, b = seen(id)\n"
                         "  local s = k and (k .. ' ' .. b) or ''\n"
                         "  keep[#keep + 1] = s\n"
                         "  return s\n"
                         "end\n") != LUA_OK) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        lua_close(L);
        return NULL;
    }
    return L;
}

static int fixed_ids_in(int tagged)
{
    static const char *ids[] = {"p.0a1b2c3d.0:1:00112233445566778899aabbccddeeff",
                                "p:1:ff",
                                "p:1",
                                "p:12:34",
                                "a:1:2:ff",
                                "a:b:17",
                                "::1",
                                ":1:ff",
                                ":1",
                                "p:",
                                "p::ff",
                                "p:1:",
                                "p:1:fz",
                                "p:x:ff",
                                "plain-id",
                                "p:4095",
                                "p:4096",
                                "p:1000000000000000",
                                "p:1000000000000001",
                                "p:000000000000000000000000000000000000000004097:ab",
                                "p:99999999999999999999:ab",
                                "1:2",
                                "p.x.1:18446744073709551615:ab",
                                "p:0:0",
                                "p:8191:ABCDEF",
                                ":",
                                "a",
                                "p:1:2:3",
                                "x:y:z:5:f5"};
    fleet_keys_set_tagged(tagged);
    lua_State *L = tagged ? NULL : seen_vm("mutirao:");
    ASSERT(tagged || L);
    int bad = 0;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        bad |= same_as_lua(L, ids[i]);
    if (L)
        lua_close(L);
    fleet_keys_set_tagged(0);
    return bad;
}

static int fixed_ids(void)
{
    return fixed_ids_in(0) | fixed_ids_in(1);
}

/* random ids over an alphabet that makes every form likely */
static int random_ids_in(int tagged)
{
    static const char alpha[] = "0123456789::abfxAF.-_";
    fleet_keys_set_tagged(tagged);
    lua_State *L = tagged ? NULL : seen_vm("mutirao:");
    ASSERT(tagged || L);
    unsigned s = 12345;
    int bad = 0;
    for (int n = 0; n < (tagged ? 4000 : 20000) && !bad; n++) {
        char id[40];
        s = s * 1103515245u + 12345u;
        int len = 1 + (int)((s >> 16) % 30);
        for (int i = 0; i < len; i++) {
            s = s * 1103515245u + 12345u;
            id[i] = alpha[(s >> 16) % (sizeof alpha - 1)];
        }
        id[len] = 0;
        bad |= same_as_lua(L, id);
    }
    if (L)
        lua_close(L);
    fleet_keys_set_tagged(0);
    return bad;
}

static int random_ids(void)
{
    return random_ids_in(0) | random_ids_in(1);
}

static int bits_rounds(void);

/* fleet_bits: per task the same keys and bit as fleet_bit_of, a key shared
 * with the task before when equal, and ids without bits as "" */
static int bits_batch(void)
{
    char ids[64][64];
    int n = 0;
    for (int i = 0; i < 20; i++) /* one bitmap, then the next shard */
        snprintf(ids[n++], sizeof ids[0], "p.1:%d:ab", 4090 + i);
    snprintf(ids[n++], sizeof ids[0], "plain-id");
    for (int i = 0; i < 10; i++) /* two producers alternating */
        snprintf(ids[n++], sizeof ids[0], "%s:%d:ff", i % 2 ? "q.2" : "r.3", i);
    snprintf(ids[n++], sizeof ids[0], "p.1:4095:ab");
    fleet_bits s;
    ASSERT_EQ(fleet_bits_init(&s, n), 0);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(fleet_bits_set(&s, i, ids[i], strlen(ids[i])), 0);
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        fleet_bit b;
        if (fleet_bit_of(ids[i], strlen(ids[i]), &b) != 0) {
            ASSERT_STR_EQ(s.seen[i], "");
            ASSERT_STR_EQ(s.sub[i], "");
            ASSERT_STR_EQ(s.bit[i], "");
            continue;
        }
        ASSERT_STR_EQ(s.seen[i], b.seen);
        ASSERT_STR_EQ(s.sub[i], b.sub);
        ASSERT_STR_EQ(s.bit[i], b.bit);
        distinct += i == 0 || s.seen[i] != s.seen[i - 1];
    }
    /* shards 0 and 1 of p.1, 10 alternations, p.1's shard 0 again */
    ASSERT_EQ(distinct, 13);
    ASSERT_EQ(s.nown, 2 * distinct);
    const char *argv[4];
    fleet_lookup_args(ids[3], &s, 3, argv);
    ASSERT_STR_EQ(argv[0], ids[3]);
    ASSERT_STR_EQ(argv[1], "mutirao:seen:p.1:0");
    ASSERT_STR_EQ(argv[2], "mutirao:sub:p.1:0");
    ASSERT_STR_EQ(argv[3], "4093");
    fleet_bits_free(&s);
    fleet_keys_set_tagged(0);
    int bad = bits_rounds();
    fleet_keys_set_tagged(1);
    bad |= bits_rounds();
    fleet_keys_set_tagged(0);
    return bad;
}

/* random batches whose producer parts share prefixes and whose sequence
 * numbers cross shards: each task as fleet_bit_of says */
static int bits_rounds(void)
{
    fleet_bits s;
    static const char *prods[] = {"p.1", "p.10", "p.1:2", "q", "p.1:20", ""};
    unsigned r = 7;
    for (int round = 0; round < 200; round++) {
        int k = 1 + (int)(r % 60);
        ASSERT_EQ(fleet_bits_init(&s, k), 0);
        char batch[64][80];
        for (int i = 0; i < k; i++) {
            r = r * 1103515245u + 12345u;
            const char *pp = prods[(r >> 16) % 6];
            r = r * 1103515245u + 12345u;
            unsigned seq = 4090 + (r >> 16) % 12 + ((r >> 8) % 3 == 0 ? 40960 : 0);
            snprintf(batch[i], sizeof batch[0], (r >> 4) % 5 ? "%s:%u:ab" : "%s:%u", pp, seq);
            ASSERT_EQ(fleet_bits_set(&s, i, batch[i], strlen(batch[i])), 0);
        }
        for (int i = 0; i < k; i++) {
            fleet_bit b;
            if (fleet_bit_of(batch[i], strlen(batch[i]), &b) != 0) {
                ASSERT_STR_EQ(s.seen[i], "");
                continue;
            }
            ASSERT_STR_EQ(s.seen[i], b.seen);
            ASSERT_STR_EQ(s.sub[i], b.sub);
            ASSERT_STR_EQ(s.bit[i], b.bit);
        }
        fleet_bits_free(&s);
    }
    return 0;
}

/* The names of both layouts: flat as ever; tagged, "mutirao:{TAG}:" and
 * the flat name's rest, TAG the id's producer part (the whole id for an id
 * of another form), the producer, the pool, "retries" */
static int layouts(void)
{
    char k[FLEET_KEY_MAX];
    const char *id = "prod.1a2b3c4d.0:17:00ff", *odd = "plain-id";
    static const struct {
        int tagged;
        const char *want[14];
    } cases[] = {
        {0,
         {"mutirao:task:prod.1a2b3c4d.0:17:00ff", "mutirao:delivery:prod.1a2b3c4d.0:17:00ff",
          "mutirao:task:prod.1a2b3c4d.0:17:00ff:out", "mutirao:task:plain-id",
          "mutirao:done:prod.1a2b3c4d.0", "mutirao:pool:pl", "mutirao:pool:pl:stats",
          "mutirao:pool:pl:stats", "mutirao:pool:pl:active", "mutirao:pool:pl:dead:env",
          "mutirao:retries", "mutirao:retries:signed", "mutirao:", "mutirao:"}},
        {1,
         {"mutirao:{prod.1a2b3c4d.0}:task:prod.1a2b3c4d.0:17:00ff",
          "mutirao:{prod.1a2b3c4d.0}:delivery:prod.1a2b3c4d.0:17:00ff",
          "mutirao:{prod.1a2b3c4d.0}:task:prod.1a2b3c4d.0:17:00ff:out",
          "mutirao:{plain-id}:task:plain-id", "mutirao:{prod.1a2b3c4d.0}:done:prod.1a2b3c4d.0",
          "mutirao:{pl}:pool:pl", "mutirao:{pl}:pool:pl:stats",
          "mutirao:{prod.1a2b3c4d.0}:stats:pl", "mutirao:{pl}:pool:pl:active",
          "mutirao:{pl}:pool:pl:dead:env", "mutirao:{retries}:retries",
          "mutirao:{retries}:retries:signed", "mutirao:{prod.1a2b3c4d.0}:", "mutirao:{pl}:"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fleet_keys_set_tagged(cases[c].tagged);
        ASSERT_EQ(fleet_keys_tagged(), cases[c].tagged);
        const char *const *w = cases[c].want;
        size_t n = fleet_key_task(k, id);
        ASSERT_STR_EQ(k, w[0]);
        ASSERT_EQ(n, strlen(k));
        fleet_key_delivery(k, id);
        ASSERT_STR_EQ(k, w[1]);
        fleet_key_task_out(k, id);
        ASSERT_STR_EQ(k, w[2]);
        fleet_key_task(k, odd);
        ASSERT_STR_EQ(k, w[3]);
        fleet_key_notify(k, "prod.1a2b3c4d.0");
        ASSERT_STR_EQ(k, w[4]);
        fleet_key_pool(k, "pl");
        ASSERT_STR_EQ(k, w[5]);
        fleet_key_stats(k, "pl");
        ASSERT_STR_EQ(k, w[6]);
        fleet_key_pstats(k, "pl", "prod.1a2b3c4d.0");
        ASSERT_STR_EQ(k, w[7]);
        fleet_key_active(k, "pl");
        ASSERT_STR_EQ(k, w[8]);
        fleet_key_dead_env(k, "pl");
        ASSERT_STR_EQ(k, w[9]);
        fleet_key_retries(k, 0);
        ASSERT_STR_EQ(k, w[10]);
        fleet_key_retries(k, 1);
        ASSERT_STR_EQ(k, w[11]);
        n = fleet_prefix_id(k, id);
        ASSERT_STR_EQ(k, w[12]);
        ASSERT_EQ(n, strlen(k));
        fleet_prefix_pool(k, "pl");
        ASSERT_STR_EQ(k, w[13]);
        /* the task's bitmaps share its slot */
        fleet_bit b;
        ASSERT_EQ(fleet_bit_of(id, strlen(id), &b), 0);
        fleet_prefix_id(k, id);
        ASSERT(strncmp(b.seen, k, strlen(k)) == 0 && strncmp(b.sub, k, strlen(k)) == 0);
        /* every task key of it too */
        char keys[FLEET_TASK_KEYS][FLEET_KEY_MAX];
        size_t lens[FLEET_TASK_KEYS];
        ASSERT_EQ(fleet_task_keys(id, FLEET_TK_ALL, keys, lens), FLEET_TASK_KEYS);
        for (int i = 0; i < FLEET_TASK_KEYS; i++)
            ASSERT(strncmp(keys[i], k, strlen(k)) == 0 && lens[i] == strlen(keys[i]));
        /* only those asked for, the result first */
        ASSERT_EQ(fleet_task_keys(id, 0, keys, lens), 1);
        fleet_key_task(k, id);
        ASSERT_STR_EQ(keys[0], k);
        ASSERT_EQ(fleet_task_keys(id, FLEET_TK_W | FLEET_TK_OUT, keys, lens), 3);
        fleet_key_task_wg(k, id);
        ASSERT_STR_EQ(keys[1], k);
        fleet_key_task_out(k, id);
        ASSERT_STR_EQ(keys[2], k);
    }
    ASSERT_EQ(fleet_keys_use_url("redis+cluster://127.0.0.1:7000"), 1);
    ASSERT_EQ(fleet_keys_use_url("rediss+cluster://h:1,h:2"), 1);
    ASSERT_EQ(fleet_keys_use_url("redis://127.0.0.1:6379"), 0);
    ASSERT_EQ(fleet_keys_tagged(), 0);
    ASSERT_EQ(fleet_keys_use_url(NULL), 0);
    /* a tag too long for a key is refused, not cut */
    char tag[FLEET_KEY_MAX];
    memset(tag, 'a', sizeof tag - 1);
    tag[sizeof tag - 1] = 0;
    fleet_keys_set_tagged(1);
    ASSERT_EQ(fleet_prefix(k, tag, strlen(tag)), 0);
    fleet_keys_set_tagged(0);
    return 0;
}

int main(int argc, char **argv)
{
    static const test tests[] = {{"fixed_ids", fixed_ids},
                                 {"random_ids", random_ids},
                                 {"bits_batch", bits_batch},
                                 {"layouts", layouts}};
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
