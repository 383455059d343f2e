/* sandbox.h: what a pool task may do: the task sandbox of the pool VMs.
 *
 * The vocabulary is shared/wire/allow.h. Two levels:
 *   - the process's ceiling (sandbox_set_ceiling): the most any task on this
 *     process's pool VMs may do. Everything (no sandbox) unless the host
 *     sets it; mutirao-worker sets it from `worker.allow`, before its VMs
 *     start. What the ceiling denies is gone from the VM: the original
 *     functions are dropped, not hidden.
 *   - a task's narrowing (ex_task.allow, from a pool's `allow` option):
 *     ALLOW_PRESENT | what the pool allows, intersected with the ceiling at
 *     each call. It follows the task's goroutines through their memory
 *     account (memacct_note); code that runs for no task (a finalizer
 *     outside any goroutine) gets the ceiling.
 *
 * The gates are installed in place, in the VM's own tables (os, io, debug,
 * package, package.searchers, load, loadfile, dofile, the exec and http
 * modules and their preload entries), so that nothing a task can reach
 * (package.loaded, require, _G, a module reference decoded by the codec)
 * leads to an ungated original. A denied call raises "NAME is not allowed in
 * fleet tasks (worker.allow = SETTING allows it)", or, for a pool's
 * narrowing, "... in this pool's tasks (pool_create option allow = {...}
 * lacks 'SETTING')". */
#ifndef MUTIRAO_SANDBOX_H
#define MUTIRAO_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "memlimit.h"

/* Sets the process's ceiling from a comma list (allow.h, worker
 * vocabulary). Before the pool VMs start; not thread-safe. 0, or -1 with
 * why filled. */
int sandbox_set_ceiling(const char *list, char *why, size_t whylen);
/* 1 when a ceiling below "all" was set. */
int sandbox_active(void);

/* The worker's secret files (its key and password files, its
 * configuration file): no sandboxed task may open them, whatever it is
 * allowed (only "all", the sandbox off, lets it). Registers path's file by
 * (st_dev, st_ino) and real path: a symbolic or hard link to it, or a file
 * renamed from it, is refused too (checked on the descriptor opened where
 * the gate opens the file itself: io.open, io.input, io.output, io.lines,
 * loadfile, dofile, require). Before the pool VMs run tasks; not
 * thread-safe. 0, or -1 with errno (stat failed). */
int sandbox_deny_file(const char *path);

/* Installs the gates in L's VM (a pool VM, on its thread) unless they are
 * there already. May raise (out of memory). */
void sandbox_install(lua_State *L);
/* Installs them under a protected call: 0, or -1 (the message on L's
 * stack is popped). */
int sandbox_install_safe(lua_State *L);

/* Parses a pool's `allow` option at the top of the stack (a list of
 * strings, or nil) for pool_create: 0 when nil, else ALLOW_PRESENT | bits.
 * Raises an argument error for anything else. */
uint64_t sandbox_check_option(lua_State *L, int idx, const char *fname);

/* The narrowing of the task whose goroutine runs on L now (0: none). A
 * task that submits to a pool passes it on: its tasks get no more than it
 * had (sandbox_narrow of the pool's and this). */
uint64_t sandbox_current(lua_State *L);
/* 1 when the process's ceiling and narrowing (0: none) both allow bit. */
int sandbox_allows(uint64_t narrowing, uint32_t bit);
/* The intersection of two narrowings (either may be 0: none). */
uint64_t sandbox_narrow(uint64_t a, uint64_t b);

/* Pushes a fresh globals table for a sandboxed task (a task of a pool
 * with `allow`, or any task on a VM with a ceiling), the task's view of the
 * VM (see "a task's view" in sandbox.c), and keeps its context with acct
 * (memacct_set_ctx) for the gates. */
void sandbox_push_env(lua_State *L, memacct *acct);
/* The codec's view hook (codec_limits.view) for a sandboxed task's
 * decode: a shared table at the top becomes the task's view of it. */
void sandbox_view(lua_State *L);

#endif
