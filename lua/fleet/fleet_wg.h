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
/* "<name> <delta>": applies it to this VM's WaitGroup of that name. */
void fleet_wgs_apply(lua_State *L, fleet_wgs *w, const char *s, size_t len);
/* "<name> <delta>" lines (a task's mutirao:task:ID:w, a signed record's
 * `wg`): applies those of this VM's WaitGroups, skips the others. */
void fleet_wgs_apply_lines(lua_State *L, fleet_wgs *w, const char *s, size_t len);

/* What to do with a 'W' notification of task id (fleet_wgs_note's `which`). */
enum { FLEET_WG_APPLY, FLEET_WG_HOLD, FLEET_WG_DROP };
/* A 'W' notification without its type byte: "<name> <delta>", optionally
 * followed by NUL and "TASKID N": the task that made the change and how
 * many such changes it pushed to this VM's list. Without an id
 * it applies now; with one, which(ud, id) decides: FLEET_WG_APPLY (another
 * producer's task: a WaitGroup passed on by a fleet task), FLEET_WG_HOLD
 * (a pending task of this VM: it applies with the task's 'R', see
 * fleet_wgs_settle) or FLEET_WG_DROP (a task of this VM already finished:
 * its changes were applied with its outcome). */
void fleet_wgs_note(lua_State *L, fleet_wgs *w, const char *s, size_t len,
                    int (*which)(void *ud, const char *id, const char *change, size_t clen),
                    void *ud);
/* 1 when the "<name> <delta>" lines s name a WaitGroup of another producer. */
int fleet_wgs_has_others(fleet_wgs *w, const char *s, size_t len);
/* Keeps the WaitGroup of that name (nlen bytes) known by its name while
 * pinned (delta +1), as a task carrying it would; -1 lets it go. Returns 1
 * when pinned: the name is one of this VM's WaitGroups that fleet tasks
 * carry. */
int fleet_wgs_pin(lua_State *L, fleet_wgs *w, const char *name, size_t nlen, int delta);
/* The changes of task id held: 1 all of them (as many as each names), 0
 * none, -1 only some (the others were lost). */
int fleet_wgs_held(const fleet_wgs *w, const char *id);
/* The 'R' of task id arrived: its held changes apply when `apply`, and every
 * held change is dropped (a task's 'W' elements come right before its 'R':
 * held ones of another task lost their 'R' with a lost reply, and that task's
 * changes come with its record, fleet_reconcile.h). */
void fleet_wgs_settle(lua_State *L, fleet_wgs *w, const char *id, int apply);

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
