/*
** gen-corpus.c: writes seed messages for fuzz-codec into DIR (one file
** per sample), made by the real encoder so they cover every value kind.
*/
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec.h"

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
    if (argc != 2) {
        fprintf(stderr, "usage: gen-corpus DIR\n");
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
        if (codec_encode(L, 1, lua_gettop(L), NULL, &buf, &len, err, sizeof err) != 0) {
            fprintf(stderr, "sample %zu: %s\n", i, err);
            return 1;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/seed-%02zu", argv[1], i);
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
            perror(path);
            return 1;
        }
        free(buf);
    }
    lua_close(L);
    return 0;
}
