/* fleet_pool.h: the fleet backend of the pool functions (fleet = on).
 *
 * pool_create makes sure the pool's Kafka topic exists and records the
 * pool's options in Redis; pool_submit publishes the codec-encoded task in
 * an envelope to the topic; mutirao-worker processes run it and record the
 * outcome in Redis (shared/fleet_keys.h), which pushes a notification to
 * this VM's list; one BLMPOP at a time reads those and wakes await,
 * pool_wait and blocked submitters. Each VM that uses fleet pools has its
 * own producer id, Kafka producer and two Redis connections (commands, and
 * the blocking reads), made on first use on the VM's loop: nothing here
 * blocks a thread.
 *
 * The configuration is process-wide: config_load's lookup on first use,
 * unless the host set one first (fleet_configure, fleet_override). */
#ifndef MUTIRAO_FLEET_POOL_H
#define MUTIRAO_FLEET_POOL_H

#include <stddef.h>

#include <lua.h>

#include "config.h"
#include "scheduler.h"

/* Host setup, before the first pool call. fleet_configure takes over *cfg
 * (the caller must not free it). fleet_override loads the usual
 * configuration if none is set yet, then sets key (as `--fleet` does).
 * Both return 0 or a CONFIG_E* code with err filled. */
int fleet_configure(config *cfg);
int fleet_override(const char *key, const char *value, const char *origin, char *err,
                   size_t errlen);

/* 1 when pools run on the fleet. Raises the configuration's error. */
int fleet_on(lua_State *L);

/* The Lua functions' fleet halves; arguments as the Lua API's. */
int fleet_pool_create(lua_State *L, sched *s, const char *name, int workers, int qcap, int block);
int fleet_pool_submit(lua_State *L, sched *s);
int fleet_pool_wait(lua_State *L, sched *s);
int fleet_pool_close(lua_State *L, sched *s);
int fleet_pool_stats(lua_State *L, sched *s);
int fleet_await(lua_State *L, sched *s, int idx);

/* A scope ended (cancelled = 0) or was cancelled (1): its goroutines' fleet
 * tasks are no longer tracked; cancelled ones stop keeping the process
 * alive (they still run on the fleet; await still gets their outcome). */
void fleet_scope_done(scope *sc, int cancelled);

/* Closes the VM's fleet clients and frees its tasks (the VM is closing). */
void fleet_sched_free(sched *s);

#endif
