/* test-fleet-keys.c: fleet_bit_of (shared/wire/fleet_keys.c) gives, for
 * every id, the bitmap keys and bit the scripts' own seen(id)
 * (FLEET_SEEN_LUA, run here in a Lua state) would: the workers and the
 * producer pass them to the scripts instead of letting Redis parse ids;
 * fleet_bits holds a batch's of them. */
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

static int same_as_lua(lua_State *L, const char *id)
{
    fleet_bit b;
    char mine[2 * FLEET_KEY_MAX];
    mine[0] = 0;
    if (fleet_bit_of(id, strlen(id), &b) == 0) {
        snprintf(mine, sizeof mine, "%s %s", b.seen, b.bit);
        ASSERT_STR_EQ(b.sub + strlen("mutirao:sub:"), b.seen + strlen("mutirao:seen:"));
        ASSERT_EQ(b.seen_len, strlen(b.seen));
        ASSERT_EQ(b.sub_len, strlen(b.sub));
        ASSERT_EQ(b.bit_len, strlen(b.bit));
    }
    const char *lua = lua_seen(L, id);
    if (strcmp(mine, lua) != 0) {
        fprintf(stderr, "id \"%s\": C \"%s\", Lua \"%s\"\n", id, mine, lua);
        return 1;
    }
    return 0;
}

static lua_State *seen_vm(void)
{
    lua_State *L = lua_test_vm();
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

static int fixed_ids(void)
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
    lua_State *L = seen_vm();
    ASSERT_NOT_NULL(L);
    int bad = 0;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        bad |= same_as_lua(L, ids[i]);
    lua_close(L);
    return bad;
}

/* random ids over an alphabet that makes every form likely */
static int random_ids(void)
{
    static const char alpha[] = "0123456789::abfxAF.-_";
    lua_State *L = seen_vm();
    ASSERT_NOT_NULL(L);
    unsigned s = 12345;
    int bad = 0;
    for (int n = 0; n < 20000 && !bad; n++) {
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
    lua_close(L);
    return bad;
}

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
    /* random batches whose producer parts share prefixes and whose
     * sequence numbers cross shards: each task as fleet_bit_of says */
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

int main(int argc, char **argv)
{
    static const test tests[] = {
        {"fixed_ids", fixed_ids}, {"random_ids", random_ids}, {"bits_batch", bits_batch}};
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
