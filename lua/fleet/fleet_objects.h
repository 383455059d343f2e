/*
** fleet_objects.h: channels, semaphores and AtomicInts across the fleet.
**
** The first time a local channel, semaphore or AtomicInt travels to a fleet
** pool (captured by a task or passed as an argument) it becomes a fleet
** object for good: named PRODUCER/N, its state in Redis keys tagged
** {mutirao:obj:NAME}, its methods fleet_objects.lua's, each one script call
** on a Redis connection of the VM (opened at the first use). A task that
** receives it gets an object of the same name; every VM that holds the name
** operates on the same keys. See docs/ARCHITECTURE.md, "Fleet channels,
** semaphores and AtomicInts".
*/
#ifndef MUTIRAO_FLEET_OBJECTS_H
#define MUTIRAO_FLEET_OBJECTS_H

#include <lua.h>

#include "config.h"
#include "scheduler.h"
#include "travel.h"

/* Sets the VM up (metatables, codec hooks, the Lua half): cfg is the
 * host's (it outlives the VM), token names this VM (its producer id).
 * Raises when out of memory. */
void fleet_objects_install(lua_State *L, sched *s, const config *cfg, const char *token);

/* The travel_ctx hooks (travel.h) of the fleet's encodes and decodes. */
int fleet_obj_encode(travel_ctx *tc, lua_State *L, int idx, const char *kind, lua_Integer a,
                     lua_Integer b);
int fleet_obj_decode(travel_ctx *tc, lua_State *L, const char *data, size_t len);

#endif
