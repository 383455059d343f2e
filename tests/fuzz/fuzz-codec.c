/*
** fuzz-codec.c: libFuzzer target for the codec's decoder. Any input must
** be rejected with an error code or decode into values that re-encode and
** decode again to the same number of values; never a crash, leak or UB.
** Bytecode stays refused (allow_bytecode = 0), as for untrusted senders;
** functions as source are compiled (allow_source = 1), as on a worker.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"

#define HANDLE "fuzz.handle"

static int handle_enc(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    (void)call;
    size_t *p = lua_touserdata(L, idx);
    lua_pushlstring(L, (const char *)p, sizeof *p);
    return 0;
}

static int handle_dec(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)ud;
    (void)call;
    if (len != sizeof(size_t))
        return -1;
    size_t *p = lua_newuserdatauv(L, sizeof *p, 0);
    memcpy(p, data, sizeof *p);
    luaL_setmetatable(L, HANDLE);
    return 0;
}

static lua_State *vm(void)
{
    static lua_State *L;
    if (L == NULL) {
        L = luaL_newstate();
        luaL_openlibs(L);
        luaL_newmetatable(L, HANDLE);
        lua_pop(L, 1);
        if (codec_register_udata(L, HANDLE, handle_enc, handle_dec, NULL) != 0)
            abort();
    }
    return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long runs;
    lua_State *L = vm();
    codec_limits lim;
    codec_limits_default(&lim);
    lim.max_bytes = 1 << 20;
    lim.max_depth = 64;
    lim.max_elems = 1 << 16;
    lim.allow_source = 1;
    char err[256];
    int n, top = lua_gettop(L);
    int rc = codec_decode(L, (const char *)data, size, &lim, &n, err, sizeof err);
    if (rc != 0) {
        if (lua_gettop(L) != top || n != 0 || err[0] == '\0')
            abort();
    } else {
        if (lua_gettop(L) != top + n)
            abort();
        /* what decodes must travel again */
        char *buf;
        size_t len;
        codec_limits big;
        codec_limits_default(&big);
        big.max_depth = 64;
        big.send_source = 1;
        big.allow_source = 1;
        rc = codec_encode(L, top + 1, n, &big, &buf, &len, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "re-encode failed: %s\n", err);
            abort();
        }
        lua_settop(L, top);
        int n2;
        rc = codec_decode(L, buf, len, &big, &n2, err, sizeof err);
        free(buf);
        if (rc != 0 || n2 != n) {
            fprintf(stderr, "re-decode failed: %s\n", err);
            abort();
        }
        lua_settop(L, top);
    }
    if (++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
