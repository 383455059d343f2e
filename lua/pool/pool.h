/* pool.h: the pool functions of the goroutine module (pool_create,
 * pool_submit, pool_wait, pool_close, pool_stats, await(task_id)) and the
 * one interface their backends implement.
 *
 * pool.c checks the arguments, then calls the backend of the caller's VM.
 * A VM's backend is chosen once, by the host, before its first pool call
 * (pool_backend_use); a VM whose host chose none gets the embedded backend
 * (pool_embedded.c: pools on this process's VM threads). The fleet backend
 * (lua/fleet/) is the other implementation. Tasks a VM submitted, on either
 * backend, are kept in its taskbook (taskbook.h). */
#ifndef MUTIRAO_POOL_H
#define MUTIRAO_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "retry.h"
#include "scheduler.h"

typedef struct pool_opts {
    int workers;         /* tasks running at once */
    int queue;           /* tasks waiting */
    int block;           /* a submit to a full queue waits (else fails) */
    int max_deliveries;  /* fleet: deliveries of a task whose worker never recorded an
                            outcome before it is dead-lettered (embedded: unused) */
    uint32_t timeout_ms; /* a task is cancelled after running this long; 0: never */
    size_t memory;       /* bytes a task may hold (EX_MEMORY_DEFAULT unless given) */
    pool_retry retry;    /* runs again of a task that raised (retry.h) */
    uint64_t allow;      /* the `allow` option (sandbox.h): ALLOW_PRESENT | bits, 0: none */
} pool_opts;

/* The bounds of pool_create's `timeout` (ms) and `memory` (bytes). */
#define POOL_TIMEOUT_MAX 2147483647u
#define POOL_MEMORY_MIN ((size_t)1 << 20)
#define POOL_MEMORY_MAX ((size_t)1 << 50)

/* Each function runs as the body of the Lua function of the same name and
 * returns like it (values pushed on L, or a wait). be is the backend's
 * per-VM state. Arguments are checked already: name is a valid pool name;
 * submit's stack is name, fn, args... */
typedef struct pool_backend {
    const char *name; /* "embedded", "fleet" */
    int (*create)(lua_State *L, void *be, const char *name, const pool_opts *o);
    int (*submit)(lua_State *L, void *be);
    int (*wait)(lua_State *L, void *be, const char *name);
    int (*close)(lua_State *L, void *be, const char *name);
    int (*stats)(lua_State *L, void *be, const char *name);
    /* await(id) for an id this VM's taskbook does not hold */
    int (*await_other)(lua_State *L, void *be, const char *id);
} pool_backend;

/* The host chooses the backend of L's VM: be is made (and freed, through
 * the VM's slots) by the backend's own setup function. Returns 0, or -1
 * when the VM already uses another backend. */
int pool_backend_use(lua_State *L, sched *s, const pool_backend *vt, void *be);
/* The VM's backend (the embedded one when none was chosen); *be receives
 * its state. Raises when the embedded backend cannot start. */
const pool_backend *pool_backend_of(lua_State *L, sched *s, void **be);

/* Adds the pool functions to the module table on top of L (their upvalue
 * is s). */
void pool_open(lua_State *L, sched *s);
/* await(task_id), called by the module's await: returns like await. */
int pool_await(lua_State *L, sched *s, int idx);

/* Helpers for backends: `nil, "pool not found: NAME"`. */
int pool_not_found(lua_State *L, const char *name);
/* Pushes a stats table {name, workers, queue, ...} of n fields. */
typedef struct pool_stat {
    const char *k;
    long long v;
} pool_stat;
void pool_push_stats(lua_State *L, const char *name, const pool_stat *f, int n);
/* The task id prefix of this process: 8 hex digits and '-'. */
const char *pool_id_prefix(void);

/* The embedded backend (pool_embedded.c), the default. */
extern const pool_backend pool_embedded;
void *pool_embedded_state(lua_State *L, sched *s);

#endif
