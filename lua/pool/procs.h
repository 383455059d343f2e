/* procs.h: the process's VMs for pool tasks, one OS thread each.
 *
 * Started on first use with MUTIRAO_PROCS threads (default: the number of
 * cores). Each thread owns a lua_State with the standard libraries, the
 * goroutine module and whatever the host's setup hook adds (the runner adds
 * `log`), a scheduler and its libuv loop; pool tasks reach it as messages
 * on its port and run there as goroutines. The threads live as long as the
 * process. */
#ifndef MUTIRAO_PROCS_H
#define MUTIRAO_PROCS_H

#include <stdatomic.h>

#include <lua.h>

#include "port.h"

typedef struct proc {
    int index;
    port *port;      /* the VM's mailbox (a reference held here) */
    atomic_int load; /* pool tasks sent to it and not yet finished */
} proc;

/* A new pool VM gets the standard libraries, then the opener's modules
 * (the goroutine module sets it when first opened: itself and the io
 * modules; the first one set stays), then the host's setup (the runner's
 * `log`, the worker's fleet backend). Both are set before the first pool
 * is created; they may raise (the VM then does not start). */
typedef void (*procs_setup_fn)(lua_State *L);
void procs_set_opener(procs_setup_fn fn);
void procs_set_setup(procs_setup_fn fn);

/* For a setup hook: the global NAME = require(NAME) in L, e.g. the task
 * file's `goroutine` in a pool VM; nothing when the require fails. */
void procs_global_require(lua_State *L, const char *name);

/* Starts the VM threads if they are not running. Returns their count, or a
 * negative errno-style value. Thread-safe. */
int procs_start(void);
/* The least loaded VM (procs_start() must have succeeded). */
proc *procs_pick(void);
int procs_count(void);

#endif
