/* http.h: the `http` Lua module (require("http"), and a global in task
 * files and pool VMs).
 *
 *   http.get(url [, opts])          http.head(url [, opts])
 *   http.post(url [, body] [, opts]) and put, patch, delete likewise
 *   http.request{method=, url=, body=, headers=, timeout=, ...}
 *   opts: timeout (seconds, default 30; math.huge: none), headers (name ->
 *   string/number), body (string), follow_redirects (default true), ca_file
 *
 * Returns {status_code, body, headers} for any HTTP status; header names are
 * lower-case keys and any case finds them. A transport failure (refused,
 * DNS, TLS, timeout) raises "METHOD URL failed: cause". The calling goroutine
 * waits; the VM's other goroutines run meanwhile (curl_uv.c). */
#ifndef MUTIRAO_HTTP_H
#define MUTIRAO_HTTP_H

#include <lua.h>

#include "scheduler.h"

/* Pushes the module table for s's VM (luaopen_http in lua/module/iomods.c
 * is require("http")). */
int http_open(lua_State *L, sched *s);

/* Registers the metatable of responses' header tables (luaL_newmetatable)
 * unless it is there. Metatables travel to and from pool tasks by that name,
 * so every VM with the goroutine module has it: a response a task returns
 * keeps its any-case header lookup even where http was never required. */
void http_headers_metatable(lua_State *L);

#endif
