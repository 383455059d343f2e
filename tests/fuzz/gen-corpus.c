/*
** gen-corpus.c: writes seed messages for fuzz-codec into DIR (one file
** per sample), made by the real encoder so they cover every value kind;
** with MSGDIR, also seeds for fuzz-message: each sample in a task envelope,
** behind the mode byte 1 (signed by the fuzzer's key) and 2 (no keys).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"
#include "envelope.h"

/* DIR/NAME-NN holding the mode byte (or none: -1) and len bytes. */
static int save(const char *dir, const char *name, size_t i, int mode, const char *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%02zu", dir, name, i);
    FILE *f = fopen(path, "wb");
    unsigned char m = (unsigned char)mode;
    if (f == NULL || (mode >= 0 && fwrite(&m, 1, 1, f) != 1) || fwrite(buf, 1, len, f) != len ||
        fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* The sample in a task envelope, as mode 1 and mode 2 seeds. */
static int save_messages(const char *dir, size_t i, const char *payload, size_t len)
{
    envelope_task e;
    memset(&e, 0, sizeof e);
    strcpy(e.id, "p-1:1:00112233445566778899aabbccddeeff");
    strcpy(e.pool, "jobs");
    strcpy(e.producer, "p-1");
    e.attempt = 1;
    e.submitted_at_ms = 1000;
    e.max_deliveries = 3;
    e.payload = payload;
    e.payload_len = len;
    envelope_limits lim;
    envelope_limits_default(&lim);
    envelope_buf b;
    envelope_buf_init(&b, NULL, 0);
    char err[256];
    int rc = envelope_task_encode(&e, &lim, &b, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "sample %zu: %s\n", i, err);
    else if (save(dir, "signed", i, 1, b.data, b.len) != 0 ||
             save(dir, "open", i, 2, b.data, b.len) != 0)
        rc = -1;
    envelope_buf_free(&b);
    return rc;
}

static const char *samples[] = {
    "return",
    "return nil, true, false, 0, -1, 127, 128, -33, 65536, math.maxinteger, "
    "math.mininteger",
    "return 3.0, -0.0, 1/0, 0/0, 0.1",
    "return '', 'abc', 'a\\0b', string.rep('x', 300), string.rep('y', 70000)",
    "return {1, 2, 3}, {x = 1, y = {z = 2}}, {1, nil, 3, k = 'v'}",
    "local s = {1} return {a = s, b = s}, s",
    "local t = {} t.self = t t[t] = t return t",
    "return _G, string, string.format, print, table, io.write",
    "local t = {} for i = 1, 20 do t = {t, i} end return t",
    "local n = 0 return function() n = n + 1 return n end, 1, 'x'",
    "local n = 0 local function a() n = n + 1 end local function b() return n "
    "end return {a = a, b = b}",
    "return function() return print end",
    /* version 2: metatables (copied, shared, a module, its own) */
    "local mt = {__index = {k = 1}, __mode = 'k'} "
    "return setmetatable({1, 2}, mt), setmetatable({}, mt), setmetatable({}, string)",
    "local t = {} t.__index = t return setmetatable(t, t)",
};

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: gen-corpus DIR [MSGDIR]\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        lua_settop(L, 0);
        if (luaL_dostring(L, samples[i]) != LUA_OK) {
            fprintf(stderr, "sample %zu: %s\n", i, lua_tostring(L, -1));
            return 1;
        }
        char *buf, err[256];
        size_t len;
        codec_limits lim; /* functions as source, as producers send them to workers */
        codec_limits_default(&lim);
        lim.send_source = 1;
        if (codec_encode(L, 1, lua_gettop(L), &lim, &buf, &len, err, sizeof err) != 0) {
            fprintf(stderr, "sample %zu: %s\n", i, err);
            return 1;
        }
        if (save(argv[1], "seed", i, -1, buf, len) != 0 ||
            (argc == 3 && save_messages(argv[2], i, buf, len) != 0))
            return 1;
        free(buf);
    }
    lua_close(L);
    return 0;
}
