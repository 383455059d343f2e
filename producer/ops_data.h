/* ops_data.h: what the operations commands read from Redis, as JSON, for
 * callers other than the command line (`mutirao dashboard`). The same
 * functions print `mutirao pools|stats|workers|task --json` and `mutirao
 * dlq list --json` (producer/cli_ops.c, producer/dlq.c); here they write to
 * the given streams. Each call runs on the connection's private libuv loop
 * until its replies are in (at most the configured timeouts). Not for
 * several threads at once. */
#ifndef MUTIRAO_OPS_DATA_H
#define MUTIRAO_OPS_DATA_H

#include <stdio.h>

#include "config.h"

typedef struct ops_conn ops_conn;

/* A Redis connection for cfg (which must outlive it); NULL after a line
 * on err. */
ops_conn *ops_open(const config *cfg, FILE *err);
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

#endif
