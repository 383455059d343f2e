/* fleet_wg.h: WaitGroups captured by fleet tasks (the WaitGroup's fleet
 * half).
 *
 * A WaitGroup that travels to a fleet pool gets the name "PRODUCER/N"
 * (PRODUCER: the submitting VM's producer id) and is kept alive by its VM
 * while fleet tasks carry it. On the worker, the task gets a proxy that
 * counts its add and done calls (waitgroup.h); when the task ends, the
 * worker pushes the total to the producer's notification list in the same
 * Redis script that records the task (shared/wire/fleet_keys.h), so a task run
 * twice changes it once. The producer applies the change to the original
 * and wakes wg:wait(). On the wire a WaitGroup is "fleet:" + its name. */
#ifndef MUTIRAO_FLEET_WG_H
#define MUTIRAO_FLEET_WG_H

#include <stddef.h>

#include <lua.h>

#include "scheduler.h"
#include "travel.h"
#include "waitgroup.h"

/* ---- producer side: one per VM ---- */
typedef struct fleet_wgs fleet_wgs;

/* producer: the VM's producer id (copied). Raises when out of memory. */
fleet_wgs *fleet_wgs_new(lua_State *L, const char *producer);
/* The VM is closing: frees w (no Lua calls). */
void fleet_wgs_free(fleet_wgs *w);

/* The travel context of one fleet submit: WaitGroups among the values are
 * named and recorded as carried by the task (a registry table, *carried). */
typedef struct fleet_submit_ctx {
    travel_ctx tc;
    fleet_wgs *wgs;
    int carried; /* registry ref of the task's WaitGroups, or LUA_NOREF */
} fleet_submit_ctx;
void fleet_submit_ctx_init(fleet_submit_ctx *c, fleet_wgs *w);
/* The task ended (or was not sent): its WaitGroups are no longer carried
 * by it. */
void fleet_wgs_release(lua_State *L, fleet_wgs *w, int *carried);

/* How objects in fleet outcomes travel back to this VM. */
travel_ctx *fleet_wgs_outcome_ctx(fleet_wgs *w);
/* A worker's "W<name> <delta>" notification: applies it to this VM's
 * WaitGroup of that name. */
void fleet_wgs_apply(lua_State *L, fleet_wgs *w, const char *s, size_t len);

/* ---- worker side: one per task ---- */

/* The travel context of a task run on a worker: WaitGroups become proxies
 * (or this VM's own WaitGroup, when it is its producer). */
typedef struct fleet_task_wgs {
    travel_ctx tc;
    wgcore **proxies;
    int n, cap;
} fleet_task_wgs;
void fleet_task_wgs_init(fleet_task_wgs *c);
/* fn for each proxy changed by the task: owner is the producer id its name
 * starts with; then releases them. Any thread, once the task ended. */
void fleet_task_wgs_drain(fleet_task_wgs *c,
                          void (*fn)(void *ud, const char *owner, const char *name,
                                     long long delta),
                          void *ud);

/* The producer side of the VM decoding (set by the fleet backend), or NULL. */
fleet_wgs *fleet_wgs_of(sched *s);

#endif
