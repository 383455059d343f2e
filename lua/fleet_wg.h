/* fleet_wg.h: WaitGroups captured by fleet tasks.
 *
 * A WaitGroup that travels to a fleet pool is named "PRODUCER/N" (PRODUCER:
 * the submitting VM's producer id) and kept alive by that VM while fleet
 * tasks carry it. On the worker, the task gets a proxy that counts its add
 * and done calls; when the task ends, the worker pushes the total to the
 * producer's notification list in the same Redis script that records the
 * task (shared/fleet_keys.h), so a task run twice changes it once. The
 * producer applies the change to the original and wakes wg:wait(). */
#ifndef MUTIRAO_FLEET_WG_H
#define MUTIRAO_FLEET_WG_H

#include <stddef.h>

#include <lua.h>

#include "scheduler.h"

/* Non-zero while this thread encodes a task for a fleet pool. */
int fleet_wg_encoding(void);
/* (producer) Names the WaitGroup at idx for the fleet, keeps it for the
 * task being encoded; returns the malloc'd id or NULL. */
char *fleet_wg_register(lua_State *L, sched *s, int idx);
/* (producer) The task being encoded carries the already named WaitGroup at idx. */
void fleet_wg_carried(lua_State *L, sched *s, int idx);
/* Pushes this VM's WaitGroup with that fleet id and returns 1, or returns 0. */
int fleet_wg_find(lua_State *L, sched *s, const char *id, size_t len);
/* (worker) For each proxy a task's decode made (the `remote` list of
 * pool_ext_done_fn): fn with its owner (producer id), id and change when it
 * is not 0; then releases the list. */
void fleet_wg_drain(void *remote,
                    void (*fn)(void *ud, const char *owner, const char *wgid, long long delta),
                    void *ud);

#endif
