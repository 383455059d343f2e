/* ops_data.h: what the fleet is doing, read from Redis (cli_ops.c): the
 * pools and the live workers as `mutirao pools` and `mutirao workers` show
 * them, as data, for the commands that redraw them (`mutirao top`). */
#ifndef MUTIRAO_OPS_DATA_H
#define MUTIRAO_OPS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "envelope.h"
#include "fleet_durations.h"

typedef struct ops_conn ops_conn;

typedef struct ops_pool {
    char name[ENVELOPE_POOL_MAX + 1];
    long long workers, queued, running, submitted, completed, failed, retried, dead;
    long long rate; /* outcomes over the last minute */
    /* those outcomes by duration (fleet_durations.h), from the workers */
    unsigned long long dur[FLEET_DUR_BUCKETS];
} ops_pool;

typedef struct ops_worker {
    char id[ENVELOPE_ID_MAX + 1];
    char host[256];
    char pools[1024]; /* the pools it ran tasks of, else those it serves */
    char version[64];
    long long running, slots;
    uint64_t seen_ms;
} ops_worker;

typedef struct ops_snapshot {
    ops_pool *pools; /* by name */
    size_t npools;
    ops_worker *workers;
    size_t nworkers;
} ops_snapshot;

/* Opens the client of cfg's redis.url (cfg must outlive it); NULL after one
 * line on stderr. */
ops_conn *ops_connect(const config *cfg);
/* From now on a failure is written into err (n bytes) instead of stderr. */
void ops_quiet(ops_conn *c, char *err, size_t n);
void ops_disconnect(ops_conn *c);
/* Reads every pool and live worker; 0, or -1 (said). */
int ops_read(ops_conn *c, ops_snapshot *s);
void ops_snapshot_free(ops_snapshot *s);

#endif
