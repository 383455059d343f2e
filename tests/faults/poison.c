/* faults-poison: produces task envelopes whose payload is corrupt Lua
 * bytecode straight to a pool's Kafka topic, as an attacker (or a broken
 * producer) with access to the topic could: each is a well-formed envelope
 * (shared/wire/envelope.h) around a well-formed codec message
 * (shared/codec/codec.h) of a function and one argument, whose instructions
 * were then altered in place. Lua does not verify bytecode: running such a
 * chunk reads outside its upvalue or constant arrays.
 *
 *   faults-poison BROKERS TOPIC POOL PRODUCER [VARIANT...]
 *
 * Variants (default: all): upval (GETTABUP reads upvalue #200 of a closure
 * with one), const (GETTABUP's key is constant #255 of a function with a
 * few), flipN (N pseudo-random bit flips in the instructions, fixed seed).
 * Prints "produced ID VARIANT" per message; exit 0 when Kafka took them all.
 * Used by tests/faults/faults.py (scenario poison_bytecode). */
#include <librdkafka/rdkafka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "envelope.h"

/* Lua 5.4 instruction layout (lopcodes.h, not installed): op 7 bits, A 8,
 * k 1, B 8, C 8. */
#define OP_GETTABUP 11
#define OP_MASK 0x7fu
#define B_SHIFT 16
#define C_SHIFT 24

static const char TASK_SRC[] = "return function(x)\n"
                               "  local t = {}\n"
                               "  for i = 1, 8 do t[i] = x * i end\n"
                               "  return t[3] + #tostring(x) + #string.format('%d', x)\n"
                               "end\n";

static int die(const char *what, const char *detail)
{
    fprintf(stderr, "faults-poison: %s: %s\n", what, detail);
    return 1;
}

/* Lua 5.4 dump varint: 7 bits a byte, most significant first, the last
 * byte has 0x80 set. */
static int read_size(const unsigned char *p, size_t len, size_t *pos, size_t *out)
{
    size_t x = 0;
    for (;;) {
        if (*pos >= len || x > (SIZE_MAX >> 8))
            return -1;
        unsigned b = p[(*pos)++];
        x = (x << 7) | (b & 0x7f);
        if (b & 0x80)
            break;
    }
    *out = x;
    return 0;
}

/* Finds the code array of the main function of the dump at p: *code points
 * to its first instruction, *n is the count. */
static int find_code(unsigned char *p, size_t len, unsigned char **code, size_t *n)
{
    /* header: "\x1bLua", version, format, LUAC_DATA (6), three sizes,
     * LUAC_INT (8), LUAC_NUM (8); then the upvalue count */
    size_t pos = 4 + 1 + 1 + 6 + 3 + 8 + 8 + 1, v;
    if (len < pos)
        return -1;
    if (read_size(p, len, &pos, &v)) /* source: 0 = none, else length + 1 */
        return -1;
    if (v)
        pos += v - 1;
    if (read_size(p, len, &pos, &v) || read_size(p, len, &pos, &v)) /* line numbers */
        return -1;
    pos += 3; /* numparams, is_vararg, maxstacksize */
    if (read_size(p, len, &pos, n) || pos + *n * 4 > len)
        return -1;
    *code = p + pos;
    return 0;
}

static uint32_t get_ins(const unsigned char *c, size_t i)
{
    uint32_t v;
    memcpy(&v, c + 4 * i, 4);
    return v;
}

static void set_ins(unsigned char *c, size_t i, uint32_t v)
{
    memcpy(c + 4 * i, &v, 4);
}

/* Alters the instructions in place; returns how many were changed. */
static int corrupt(unsigned char *code, size_t n, const char *variant)
{
    int changed = 0;
    if (!strcmp(variant, "upval") || !strcmp(variant, "const")) {
        int shift = !strcmp(variant, "upval") ? B_SHIFT : C_SHIFT;
        uint32_t val = !strcmp(variant, "upval") ? 200 : 255;
        for (size_t i = 0; i < n; i++) {
            uint32_t ins = get_ins(code, i);
            if ((ins & OP_MASK) == OP_GETTABUP) {
                ins = (ins & ~(0xffu << shift)) | (val << shift);
                set_ins(code, i, ins);
                changed++;
            }
        }
    } else if (!strncmp(variant, "flip", 4)) {
        int flips = atoi(variant + 4);
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(flips + 1);
        for (int k = 0; k < flips; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            size_t bit = (size_t)(x % (n * 32));
            code[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            changed++;
        }
    }
    return changed;
}

static int build(const char *variant, const char *id, const char *pool, const char *producer,
                 envelope_buf *env)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_dostring(L, TASK_SRC) != LUA_OK)
        return die("task source", lua_tostring(L, -1));
    lua_pushinteger(L, 7);
    codec_limits lim;
    codec_limits_default(&lim);
    char *msg = NULL, err[256];
    size_t msglen = 0;
    int rc = codec_encode(L, 1, 2, &lim, &msg, &msglen, err, sizeof err);
    lua_close(L);
    if (rc)
        return die("codec_encode", err);
    unsigned char *dump = memmem(msg, msglen, "\x1bLua", 4), *code;
    size_t n;
    if (!dump || find_code(dump, msglen - (size_t)(dump - (unsigned char *)msg), &code, &n))
        return die(variant, "no Lua 5.4 dump found in the codec message");
    if (corrupt(code, n, variant) == 0)
        return die(variant, "unknown variant, or nothing to alter");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    envelope_task t;
    memset(&t, 0, sizeof t);
    envelope_copy(t.id, sizeof t.id, id);
    envelope_copy(t.pool, sizeof t.pool, pool);
    envelope_copy(t.producer, sizeof t.producer, producer);
    t.attempt = 1;
    t.submitted_at_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    t.payload = msg;
    t.payload_len = msglen;
    rc = envelope_task_encode(&t, NULL, env, err, sizeof err);
    free(msg);
    return rc ? die("envelope_task_encode", err) : 0;
}

static void on_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err)
        fprintf(stderr, "faults-poison: not delivered: %s\n", rd_kafka_err2str(m->err));
    else
        (*(int *)m->_private)++;
}

int main(int argc, char **argv)
{
    static const char *const all[] = {"upval", "const", "flip3", "flip8"};
    if (argc < 5) {
        fprintf(stderr, "usage: faults-poison BROKERS TOPIC POOL PRODUCER [VARIANT...]\n");
        return 2;
    }
    const char *brokers = argv[1], *topic = argv[2], *pool = argv[3], *producer = argv[4];
    const char *const *variants = argc > 5 ? (const char *const *)argv + 5 : all;
    int nv = argc > 5 ? argc - 5 : (int)(sizeof all / sizeof *all);

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "30000", errstr, sizeof errstr))
        return die("kafka configuration", errstr);
    rd_kafka_conf_set_dr_msg_cb(conf, on_report);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk)
        return die("kafka producer", errstr);

    int delivered = 0, rc = 0;
    for (int v = 0; v < nv && !rc; v++) {
        char id[ENVELOPE_ID_MAX + 1];
        snprintf(id, sizeof id, "%s:poison-%s", producer, variants[v]);
        envelope_buf env;
        envelope_buf_init(&env, NULL, 0);
        if ((rc = build(variants[v], id, pool, producer, &env)))
            break;
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(id, strlen(id)),
            RD_KAFKA_V_VALUE(env.data, env.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE(&delivered), RD_KAFKA_V_END);
        envelope_buf_free(&env);
        if (e) {
            rc = die("produce", rd_kafka_err2str(e));
            break;
        }
        printf("produced %s %s\n", id, variants[v]);
    }
    rd_kafka_flush(rk, 30000);
    rd_kafka_destroy(rk);
    if (!rc && delivered != nv)
        rc = die("delivery", "Kafka did not take every message");
    return rc;
}
