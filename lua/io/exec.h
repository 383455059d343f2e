/* exec.h: the `exec` Lua module (require("exec"), and a global in task
 * files and pool VMs).
 *
 *   exec.run(cmd [, opts]) -> {code, stdout, stderr, signal, timed_out, ok, pid}
 *   cmd: a string run by /bin/sh -c, or an argv array ({"ls", "-l", dir})
 *   opts: timeout (seconds), cwd, env (name -> value added to or replacing
 *   the inherited environment; false removes one), stdin (string; without
 *   it the child reads /dev/null)
 *
 * code is the exit status, or 128 + signal when a signal ended the child
 * (signal is then set; timed_out says whether it was our timeout). The
 * child runs in its own process group; a timeout, a cancelled caller or
 * the VM's end kill the whole group. Only the calling goroutine waits. A
 * command that cannot be started (no such program or cwd) raises
 * "exec.run: cannot run 'PROGRAM': cause". */
#ifndef MUTIRAO_EXEC_H
#define MUTIRAO_EXEC_H

#include <lua.h>

#include "scheduler.h"

/* Pushes the module table for s's VM (luaopen_exec in lua/module/iomods.c
 * is require("exec")). */
int exec_open(lua_State *L, sched *s);

#endif
