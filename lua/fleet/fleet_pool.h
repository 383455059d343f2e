/* fleet_pool.h: the fleet backend of the pool functions.
 *
 * pool_create makes sure the pool's Kafka topic exists and records the
 * pool's options in Redis; pool_submit publishes the codec-encoded task in
 * an envelope to the topic; mutirao-worker processes run it and record the
 * outcome in Redis (shared/wire/fleet_keys.h), which pushes a notification to
 * this VM's list; one BLMPOP at a time reads those and wakes await,
 * pool_wait and blocked submitters. Each VM on the fleet has its own
 * configuration, producer id, Kafka producer and two Redis connections
 * (commands, and the blocking reads), made on first use on the VM's loop:
 * nothing here blocks a thread. */
#ifndef MUTIRAO_FLEET_POOL_H
#define MUTIRAO_FLEET_POOL_H

#include <lua.h>

#include "config.h"
#include "scheduler.h"

/* The host puts L's VM on the fleet, with cfg (which must outlive the VM;
 * cfg->fleet need not be set). Call before the VM's first pool call.
 * Returns 0, or raises (out of memory, the VM uses another backend). */
int fleet_backend_install(lua_State *L, sched *s, const config *cfg);

/* The host could not load the configuration: every pool call of L's VM
 * raises "mutirao configuration: why" (as a fleet run would fail). */
int fleet_backend_broken(lua_State *L, sched *s, const char *why);

#endif
