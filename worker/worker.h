/* worker.h: one mutirao-worker process's consumer (worker/consumer.c).
 *
 * Runs on the main VM's loop: a Kafka consumer in group worker.group
 * reads task envelopes from the pools' topics, hands each to the pool's
 * executor (lua/pool/executor.h: run these bytes on the process's VM
 * threads, call back with the outcome), and when a task ends
 * writes its outcome to Redis with the idempotent completion script
 * (shared/wire/fleet_keys.h) before marking its offset done, so that Kafka
 * commits only offsets whose tasks are recorded (at least once), and a task
 * run twice is counted once. */
#ifndef MUTIRAO_WORKER_H
#define MUTIRAO_WORKER_H

#include "config.h"
#include "metrics.h"
#include "scheduler.h"

typedef struct worker worker;

/* Starts consuming. cfg must outlive the worker. m (may be NULL) gets the
 * worker's Prometheus figures (per pool counters, task durations, Redis
 * round trips; running, slots and Kafka lag at scrape time through its
 * hooks) and must outlive it too. NULL with a message in err on failure. */
worker *worker_start(sched *s, const config *cfg, metrics *m, char *err, size_t errlen);
/* Stops fetching, gives the tasks not started back (taken out of the
 * executors, never run or recorded here: they run on the workers that get
 * their partitions), commits the recorded offsets and leaves the group at
 * once, lets the running tasks finish and record (up to drain_ms), closes;
 * done(ud) runs on the loop at the end. */
void worker_stop(worker *w, int drain_ms, void (*done)(void *ud), void *ud);

#endif
