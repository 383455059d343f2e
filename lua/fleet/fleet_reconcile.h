/* fleet_reconcile.h: a producer VM looks up, in Redis, the fleet tasks whose
 * notification did not come, so a lost one never hangs await, pool_wait or
 * wg:wait (docs/ARCHITECTURE.md, "Lost notifications").
 *
 * A notification is lost when Redis popped it for a BLMPOP whose reply the
 * connection lost, or when Redis restarted and lost it. Every pending task
 * of the VM is on one list, least recently looked at first. Once a second
 * (frc_tick), and again at once after a round that found something, a round
 * takes the tasks at the head that have waited FRC_AFTER_MS since their
 * submit or their last look, at most FRC_BATCH, and reads them in one
 * FLEET_LOOKUP_LUA call (shared/wire/fleet_keys.h):
 *   - the result record: the task ended; found() finishes it with the record
 *     and the changes it made to its producer's WaitGroups (mutirao:task:ID:w);
 *   - the marker: still queued or running;
 *   - its seen bit alone: it completed and another process's await deleted
 *     its record: its notification should still come; gone() after
 *     FRC_GONE_LOOKS such looks;
 *   - nothing, once the submit bookkeeping that writes the marker has been
 *     answered: Redis lost it all (restarted without persistence, or the
 *     keys expired): lost() submits the task again (attempt + 1) and the
 *     marker is written again (FLEET_REMARK_LUA).
 * Everything runs on the VM's thread. */
#ifndef MUTIRAO_FLEET_RECONCILE_H
#define MUTIRAO_FLEET_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "redis_uv.h"

#define FRC_AFTER_MS 3000 /* a task is looked up after this long without news */
#define FRC_BATCH 500     /* tasks per round */
#define FRC_GONE_LOOKS 3  /* looks that find a task completed but its record deleted */

typedef struct frc frc;

/* Embedded in the backend's task. */
typedef struct frc_task {
    mlist node;          /* in the pending list (least recently looked at first) */
    const char *id;      /* the task id, owned by the task */
    uint64_t touched_ms; /* submit, last look or re-submit (Unix ms) */
    uint8_t marking;     /* the write of its marker is not answered yet */
    uint8_t gone;        /* looks that found it completed, its record deleted */
} frc_task;

typedef struct frc_ops {
    /* The pending task of that id, or NULL (finished meanwhile). */
    frc_task *(*lookup)(void *ud, const char *id);
    /* Its result record (rec, reclen bytes: untrusted) and the "WGID DELTA"
     * lines it left (wg, wglen; wg NULL when none) were found: finish it.
     * 0 when it did; -1 when the record was not used (its signature does not
     * verify: the task stays pending, looked at again later). */
    int (*found)(void *ud, frc_task *t, const char *rec, size_t reclen, const char *wg,
                 size_t wglen);
    /* Redis has neither its record nor its marker: submit it again. 0 when it
     * was (its marker is then written again), else it is looked at later. */
    int (*lost)(void *ud, frc_task *t);
    /* It completed, but another process's await read and deleted its record
     * and FRC_GONE_LOOKS looks later its notification has not come: it will
     * not (fail it, saying so). */
    void (*gone)(void *ud, frc_task *t);
} frc_ops;

typedef struct frc_stats {
    uint64_t rounds, looked, found, lost, gone;
} frc_stats;

/* r: the VM's command connection; ttl_s: the markers' TTL (result.ttl_s).
 * NULL when out of memory. */
frc *frc_new(redis_uv *r, int ttl_s, const frc_ops *ops, void *ud);
/* The VM closes (call before closing r): nothing is called back after. */
void frc_free(frc *c);

/* t was just submitted (t->id set): pending, its marker being written. */
void frc_add(frc *c, frc_task *t, uint64_t now_ms);
/* The ids of one call that writes markers (the submit bookkeeping): give
 * frc_on_marked and the batch to the call; its reply, whatever it is, ends
 * their `marking`. A batch not sent is freed with frc_ids_discard. */
typedef struct frc_ids frc_ids;
frc_ids *frc_ids_new(frc *c, int cap);
void frc_ids_add(frc_ids *b, const char *id); /* at most cap */
void frc_ids_discard(frc_ids *b);
void frc_on_marked(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud);
/* t's record is to be read at once (its 'R' came without all its WaitGroup
 * changes): first in the next round, which starts now unless one is out. */
void frc_soon(frc *c, frc_task *t);
/* t finished: off the list. */
void frc_remove(frc *c, frc_task *t);
/* Starts a round when one is due and none is in flight. */
void frc_tick(frc *c, uint64_t now_ms);
void frc_get_stats(const frc *c, frc_stats *out);

#endif
