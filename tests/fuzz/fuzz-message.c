/*
** fuzz-message.c: libFuzzer target for a worker's whole path of a Kafka
** message (worker/consumer.c, authenticate then on_message): the signature
** check against a trusted key (sign_verify), the task envelope
** (envelope_task_decode) and its payload (codec_decode, bytecode refused as
** for anyone unauthenticated). The first input byte picks how the rest is
** seen: 0 as the message itself (as an attacker sends it), 1 signed first
** by the trusted key (so the fuzzer reaches the envelope and codec behind a
** valid signature), 2 by a worker without keys (unwrapped unchecked). Never
** a crash, leak or UB; a refusal always comes with a message.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "envelope.h"
#include "sign.h"

static sign_key *key;
static sign_trust *trust;
static lua_State *L;

static void setup(void)
{
    char dir[] = "/tmp/fuzz-message-XXXXXX", err[512], path[600];
    if (!mkdtemp(dir) || sign_keygen(dir, "k", NULL, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz-message: keygen: %s\n", err);
        abort();
    }
    snprintf(path, sizeof path, "%s/k.key", dir);
    if (sign_key_load(path, &key, err, sizeof err) != 0)
        abort();
    snprintf(path, sizeof path, "%s/k.pub", dir);
    if (sign_trust_load(path, &trust, err, sizeof err) != 0)
        abort();
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0)
        fprintf(stderr, "fuzz-message: cannot remove %s\n", dir);
    L = luaL_newstate();
    luaL_openlibs(L);
}

/* The payload, as a task VM would decode it (bytecode refused, source
   compiled). */
static void decode_payload(const char *p, size_t n)
{
    codec_limits lim;
    codec_limits_default(&lim);
    lim.max_bytes = 1 << 20;
    lim.max_depth = 64;
    lim.max_elems = 1 << 16;
    lim.allow_source = 1;
    char err[256] = "";
    int nv = 0, top = lua_gettop(L);
    if (codec_decode(L, p, n, &lim, &nv, err, sizeof err) != 0 && err[0] == '\0')
        abort();
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long runs;
    if (!key)
        setup();
    if (size == 0)
        return 0;
    int mode = data[0] % 3;
    const char *msg = (const char *)data + 1;
    size_t len = size - 1;
    char *wrapped = NULL;
    char err[512] = "";
    if (mode == 1) {
        if (sign_wrap(key, msg, len, &wrapped, &len, err, sizeof err) != 0)
            abort();
        msg = wrapped;
    }
    const char *env = msg;
    size_t envlen = len;
    int rc = 0;
    if (mode == 2) {
        if (sign_is_signed(msg, len) && sign_unwrap(msg, len, &env, &envlen) != 0) {
            env = msg;
            envlen = len;
        }
    } else {
        rc = sign_verify(trust, msg, len, 1 << 20, &env, &envlen, NULL, err, sizeof err);
        if (rc != 0 && err[0] == '\0')
            abort();
        if (mode == 1 && rc != 0) { /* what this key signed must verify */
            fprintf(stderr, "signed by the trusted key, refused: %s\n", err);
            abort();
        }
        if (rc == 0 && (env < msg || env + envlen > msg + len))
            abort();
    }
    if (rc == 0) {
        envelope_task e;
        envelope_limits lim;
        envelope_limits_default(&lim);
        lim.max_payload = 1 << 20;
        err[0] = '\0';
        if (envelope_task_decode(env, envlen, &lim, &e, err, sizeof err) == 0)
            decode_payload(e.payload, e.payload_len);
        else if (err[0] == '\0')
            abort();
    }
    free(wrapped);
    if (++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
