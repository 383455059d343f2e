/* waitgroup.h: Go's sync.WaitGroup for goroutines ("goroutine.WaitGroup").
 *
 * The counter lives in a shared core so that a WaitGroup captured by a pool
 * task (another VM, another thread) is the same WaitGroup there: add and
 * done are atomic; when the counter reaches zero on another VM, a message
 * to the home VM wakes the goroutines waiting there. A wait in a VM other
 * than the home one polls the counter every 2 ms. */
#ifndef MUTIRAO_WAITGROUP_H
#define MUTIRAO_WAITGROUP_H

#include <stdatomic.h>

#include "port.h"
#include "scheduler.h"

#define WAITGROUP_TNAME "goroutine.WaitGroup"

typedef struct wgcore {
    atomic_llong count;
    atomic_int refs;
    port *home;     /* the creating VM's port (a reference) */
    glist *waiters; /* the home copy's waiters (home thread only), NULL when collected */
    /* The fleet (see fleet_wg.h). fleet_id: "PRODUCER/N" once the WaitGroup
     * travelled to a fleet pool, or the id a worker-side proxy stands for.
     * A proxy (remote = 1) counts the changes a fleet task makes, which
     * travel back with the task's completion; it cannot be waited on. */
    char *fleet_id;
    int remote;
    int fleet_pending;          /* (producer, home thread) fleet tasks that carry it */
    struct wgcore *remote_next; /* (worker) proxies made by one task's decode */
} wgcore;

typedef struct waitgroup {
    wgcore *core;
    sched *s; /* VM of this copy */
    int home; /* this copy is the original */
    glist waiters;
} waitgroup;

/* Pushes a new WaitGroup with counter 0. */
waitgroup *waitgroup_new(lua_State *L, sched *s);
/* Registers the metatable and the codec hooks that let it travel. */
void waitgroup_register(lua_State *L, sched *s);
/* (producer) Applies a fleet task's change to the WaitGroup at idx; wakes
 * its waiters at zero. A change below zero stops at zero and returns -1. */
int waitgroup_apply(lua_State *L, int idx, long long delta);

#endif
