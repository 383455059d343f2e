/* taskbook.h: what a VM keeps about the pool tasks it submitted, on either
 * backend: task id -> record, the waiters of await(task_id), the outcome
 * once the task ended (kept TASKBOOK_TTL_S after that, at most
 * TASKBOOK_MAX per VM, oldest first), the submitting scope (a cancelled
 * scope's tasks stop keeping the process alive), the hold that keeps the
 * loop running while a task is out, and the report of a failed task.
 *
 * A backend embeds a tb_task in its own task struct; the taskbook frees it
 * through ops->free when it evicts it or the VM closes. Everything here
 * runs on the submitting VM's thread. */
#ifndef MUTIRAO_TASKBOOK_H
#define MUTIRAO_TASKBOOK_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "envelope.h"
#include "list.h"
#include "scheduler.h"
#include "travel.h"

#define TASKBOOK_TTL_S 300  /* a finished task's outcome is kept this long... */
#define TASKBOOK_MAX 100000 /* ...and at most this many per VM */

typedef struct taskbook taskbook;
typedef struct tb_task tb_task;

typedef struct tb_ops {
    const char *kind;        /* "pool" or "fleet": names the task in reports */
    void (*free)(tb_task *); /* releases the backend's task */
    /* The VM closes while t is still out: NULL frees it like a finished one;
     * else the backend still owns it (its completion frees it). */
    void (*orphan)(tb_task *t);
    travel_ctx *outcome_ctx; /* how objects in outcomes travel (NULL: this process) */
    /* await returned t's outcome for the first time (NULL: nothing to do);
     * the fleet then deletes the task's keys in Redis */
    void (*awaited)(tb_task *t);
} tb_ops;

struct tb_task {
    const tb_ops *ops;
    taskbook *book;
    mlist node;         /* in the book's list of every record */
    tb_task *done_next; /* finished ones, oldest first */
    uint8_t done, ok, held, lingering, pinned, awaited;
    uint32_t hash;   /* of id, for the book's map */
    const char *out; /* encoded outcome (owned by the backend's task), or NULL: err */
    size_t outlen;
    char *err; /* why there is no outcome (malloc'd) */
    glist waiters;
    uint64_t done_ns;
    scope_watch watch;     /* the submitting goroutine's scope */
    int label_ref;         /* the submitter's label (task name), or LUA_NOREF */
    struct tb_site *where; /* submit site, "file:line" (shared by the book's records from
                              one site), or NULL: unknown */
    const char *pool;      /* its pool's name: the backend keeps it valid until done */
    char id[ENVELOPE_ID_MAX + 1];
};

/* The book of s's VM, made on first use (raises when out of memory). */
taskbook *taskbook_get(lua_State *L, sched *s);

/* Records t (t->id and t->pool filled) as just submitted by the goroutine
 * running L: label and file:line of the caller, scope, and a hold on the
 * loop until it ends. */
void taskbook_add(taskbook *b, lua_State *L, tb_task *t, const tb_ops *ops);

/* t ended. out (outlen bytes, possibly 0) is its encoded outcome, owned by
 * the backend's task; or out is NULL and err says why. lingering: goroutines
 * the task started still run; taskbook_settle(id) follows when they end,
 * and until then the loop stays held (unless the submitting scope was
 * cancelled). Wakes awaiters, reports a failure, may evict old records. */
void taskbook_finish(taskbook *b, tb_task *t, int ok, const char *out, size_t outlen,
                     const char *err, int lingering);
void taskbook_settle(taskbook *b, const char *id);

/* Tasks recorded and not finished yet. */
size_t taskbook_unfinished(const taskbook *b);

/* The record of id, or NULL. */
tb_task *taskbook_find(taskbook *b, lua_State *L, const char *id);

/* await(task_id) for a record: its outcome now, or after a wait (which
 * holds the loop: a task still running elsewhere is pending work). Returns
 * like await. */
int taskbook_await(lua_State *L, taskbook *b, tb_task *t);

/* Pushes t's outcome as await returns it (t done); returns the count. */
int taskbook_push_outcome(lua_State *L, const tb_task *t);

/* Pushes the decoded outcome bytes: true, values... / false, err. */
int taskbook_push_bytes(lua_State *L, const char *id, int ok, const char *out, size_t outlen,
                        const char *err, travel_ctx *ctx);

#endif
