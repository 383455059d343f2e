-- mutirao-goroutine-scm-1.rockspec: the goroutine module (with the http and
-- exec modules) for Lua 5.4, built by CMake with MUTIRAO_LUA_MODULES_ONLY:
-- needs Lua's headers, libuv, libcurl and msgpack-c, not Kafka, Redis or
-- OpenSSL (the fleet, the commands and libmutirao: `cmake --install`).
--
--   luarocks --lua-version 5.4 make                  (from the checkout)
--   luarocks --lua-version 5.4 pack mutirao-goroutine (a binary rock of it)
rockspec_format = "3.0"
package = "mutirao-goroutine"
version = "scm-1"

source = {
   -- `luarocks make` builds the checkout it runs in; this address is only
   -- read by `luarocks install`/`pack` of this rockspec on its own.
   url = "git+file://./mutirao",
}

description = {
   summary = "Go-style goroutines, wait groups, channels, timeouts and worker pools for Lua 5.4",
   detailed = [[
require("goroutine"): goroutines (coroutines on a libuv loop, preempted
when CPU-bound), wait groups, async/await, timeouts, channels and select,
contexts, mutexes, and pools that run functions in parallel on one VM per
core. require("http") and require("exec"): HTTP requests (libcurl) and
child processes that suspend only the calling goroutine.
]],
   labels = { "concurrency", "coroutines", "libuv" },
}

dependencies = {
   "lua >= 5.4, < 5.5",
}

-- libuv, libcurl and msgpack-c are found by CMake through pkg-config
-- (Debian: libuv1-dev libcurl4-openssl-dev libmsgpack-dev pkg-config cmake),
-- which knows multiarch include paths (curl/curl.h) LuaRocks does not search.

build = {
   type = "cmake",
   variables = {
      MUTIRAO_LUA_MODULES_ONLY = "ON",
      LUA_INCDIR = "$(LUA_INCDIR)",
      MUTIRAO_LUA_CMOD_DIR = "$(LIBDIR)",
      MUTIRAO_LUA_IO_LINKS = "OFF",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
   },
   -- http and exec: links to goroutine.so in a cmake --install; a rock
   -- holds no links, so two lines of Lua that load them from goroutine.so
   install = {
      lua = {
         http = "lua/rock/http.lua",
         exec = "lua/rock/exec.lua",
      },
   },
}
