/* ops_data.h: what the operations commands read from Redis, for callers
 * other than the command line: as JSON (`mutirao dashboard`), and the pools
 * and live workers as data (`mutirao top`). The same
 * functions print `mutirao pools|stats|workers|task --json` and `mutirao
 * dlq list --json` (producer/cli_ops.c, producer/dlq.c); here they write to
 * the given streams. Each call runs on the connection's private libuv loop
 * until its replies are in (at most the configured timeouts). Not for
 * several threads at once. */
#ifndef MUTIRAO_OPS_DATA_H
#define MUTIRAO_OPS_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "envelope.h"
#include "fleet_durations.h"

typedef struct ops_conn ops_conn;

/* Opens the client of cfg's redis.url (cfg must outlive it); NULL after
 * one line on err (NULL: stderr). Later failures of ops_read go to stderr
 * (or ops_quiet's buffer), those of the JSON writers to their err. */
ops_conn *ops_open(const config *cfg, FILE *err);
/* Closes c (NULL is fine). */
void ops_close(ops_conn *c);

/* Each writes one JSON value to out and returns 0, or 1 after a line on
 * err (an unknown pool, Redis failed). */
int ops_pools_json(ops_conn *c, FILE *out, FILE *err);
int ops_stats_json(ops_conn *c, const char *pool, FILE *out, FILE *err);
int ops_workers_json(ops_conn *c, FILE *out, FILE *err);
int ops_task_json(ops_conn *c, const char *id, FILE *out, FILE *err);
/* The pool's recent failures, newest first (at most max): an array of
 * what ops_task_json writes (the error holds the traceback); those whose
 * details expired are left out. */
int ops_failures_json(ops_conn *c, const char *pool, int max, FILE *out, FILE *err);

/* Dead letters (producer/dlq.c): with Kafka for a retry. */
typedef struct dlq_conn dlq_conn;
dlq_conn *dlq_open(const config *cfg, FILE *err);
void dlq_close(dlq_conn *c);
/* `mutirao dlq list POOL --json` */
int dlq_list_json(dlq_conn *c, const char *pool, FILE *out, FILE *err);
/* `mutirao dlq retry|drop POOL ID`: 0, or 1 after a line on err; what it
 * did on out. */
int dlq_act(dlq_conn *c, const char *pool, const char *id, int retry, FILE *out, FILE *err);

/* ---- as data (mutirao top) ---- */

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

/* From now on a failure of ops_read is written into err (n bytes) instead
 * of stderr. */
void ops_quiet(ops_conn *c, char *err, size_t n);
/* Reads every pool and live worker; 0, or -1 (said). */
int ops_read(ops_conn *c, ops_snapshot *s);
void ops_snapshot_free(ops_snapshot *s);

#endif
