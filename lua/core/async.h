/* async.h: async handles: the outcome of a goroutine, awaited any number of
 * times by any number of goroutines.
 *
 * A handle is a full userdata ("goroutine.handle"). While its goroutine runs
 * the goroutine record keeps it alive; its outcome is a Lua table
 * {n = N, ok, values...} kept in the registry until the handle is collected.
 * A handle may also hold a reference on a scope (timeout(), run_scope()) and
 * releases it when collected. */
#ifndef MUTIRAO_ASYNC_H
#define MUTIRAO_ASYNC_H

#include "scheduler.h"

typedef struct hcore hcore;

struct ghandle {
    uint64_t id;
    uint8_t done, ok;
    uint8_t remote; /* a copy of a handle of another VM (see handle_travel.c) */
    uint8_t asked;  /* (remote) the home VM was asked for the outcome */
    int res_ref;    /* registry ref of the outcome table, or LUA_NOREF */
    glist waiters;  /* goroutines awaiting it */
    sched *s;
    scope *sc;   /* scope this handle holds a reference on, or NULL */
    hcore *core; /* shared with copies in other VMs once it travelled */
};

#define HANDLE_TNAME "goroutine.handle"

/* Pushes a new pending handle onto L. */
ghandle *handle_new(lua_State *L, sched *s);
ghandle *handle_test(lua_State *L, int idx);
/* Resolves h with ok=true and the nres values on top of co (popped). */
void handle_resolve_values(ghandle *h, lua_State *co, int nres);
/* Resolves h with ok=false and the value on top of T (popped). */
void handle_resolve_error(ghandle *h, lua_State *T);
/* Waits (yielding) until h is done, then returns its outcome like await:
 * true, values... or false, err. */
int handle_await(lua_State *L, ghandle *h);
/* Pushes h's outcome onto L as await returns it; returns the count. */
int handle_push_outcome(lua_State *L, ghandle *h);
void handle_register(lua_State *L, sched *s);
/* Stores the outcome table on top of T (popped) in h and wakes its waiters. */
void handle_set_outcome(ghandle *h, lua_State *T);

/* handle_travel.c: handles that travel into pool tasks. */
void handle_travel_register(lua_State *L, sched *s);
/* Called when a travelled handle is resolved (home VM) or collected. */
void handle_travel_resolved(ghandle *h);
void handle_travel_gc(ghandle *h);
/* Before waiting on a remote copy: asks its home VM for the outcome. */
void handle_travel_ask(ghandle *h);

#endif
