/* executor.h: runs encoded tasks on the process's VM threads (procs.h).
 *
 * A task is a codec message: a function and its arguments. The executor
 * sends it to the least loaded VM, which decodes it with fresh globals and
 * runs it as a goroutine of its own scope; when the function returns or
 * raises, the VM encodes the outcome (ok, values... or the error) and the
 * task goes back to its owner VM, whose done callback runs on the owner's
 * thread. If goroutines the task started still run then, its `lingering`
 * flag is set and the owner's ended callback runs when the last of them
 * ends.
 *
 * An executor runs at most `limit` tasks at once and queues the others;
 * executor_submit can bound the queue, and registers the submitting VM to
 * be told (ex_hooks.notify) when room frees up or the executor goes idle.
 * Thread-safe: any VM may submit to any executor.
 *
 * Limits (ex_task.timeout_ms, deadline_ms, memory) are enforced on the VM
 * that runs the task, so both backends get the same behaviour: a task whose
 * deadline passed before it started is not run; the task's scope is
 * cancelled at whichever comes first, its timeout after it started or its
 * deadline (preemption stops even a CPU-bound loop, pcall or not), and it
 * fails with "timeout after N ms"; its goroutines allocate from a memory
 * account of `memory` bytes (memlimit.h), past which Lua raises "not enough
 * memory" in them.
 *
 * Ownership: the caller allocates each ex_task (usually inside a struct of
 * its own), fills in, id, pool, done (ended, decode_ctx, the limits), and
 * keeps it until done runs; the executor holds its own reference on the
 * executor while tasks run. */
#ifndef MUTIRAO_EXECUTOR_H
#define MUTIRAO_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "envelope.h"
#include "errors.h"
#include "port.h"
#include "travel.h"

/* A task's memory limit when its pool names none: pool_create's `memory`
 * default, and the worker's for an envelope without the field. */
#define EX_MEMORY_DEFAULT ((size_t)256 << 20)

typedef struct executor executor;
typedef struct ex_task ex_task;
typedef struct proc proc;

/* On the owner's thread; owner is NULL when its VM is gone. */
typedef void (*ex_done_fn)(sched *owner, ex_task *t);
/* t is the task as done left it: valid only while the owner keeps it
 * (the worker does; the embedded backend may have forgotten it: it looks
 * the id up). */
typedef void (*ex_ended_fn)(sched *owner, const char *id, ex_task *t);

struct ex_task {
    xmsg msg; /* RUN to a VM, then DONE back to the owner */
    ex_task *next;
    executor *ex;
    port *owner; /* (a reference) */
    proc *vm;
    const char *in; /* the encoded task (inlen bytes), the caller's until done; it may
                       lie in buf, which the outcome then reuses unless keep_in */
    size_t inlen;
    int keep_in; /* in is read again after this run (a retry): the outcome never
                    overwrites it */
    char *out;   /* the encoded outcome, out == buf while it fits */
    size_t outlen;
    int ok;        /* 1 returned, 0 raised or could not run */
    int lingering; /* goroutines it started still ran at its end */
    int timed_out; /* 1: it failed at its timeout or deadline (or was too late to start) */
    ex_done_fn done;
    ex_ended_fn ended;
    travel_ctx *decode_ctx; /* how objects in the task travel (NULL: this process) */
    const char *id;         /* the task id (the caller's memory, until done) */
    const char *pool;       /* its pool's name, the same (with id: its log label) */
    /* limits (0: none) */
    uint64_t deadline_ms;  /* Unix ms: not started after it, cancelled at it */
    uint64_t submitted_ms; /* Unix ms of the submit: deadline - submitted is the N of its error */
    uint32_t timeout_ms;   /* cancelled once it has run this long */
    size_t memory;         /* bytes its goroutines may hold at once */
    uint64_t allow;        /* its pool's sandbox narrowing (sandbox.h): ALLOW_PRESENT | what it
                              may do, or 0: as much as the process's ceiling */
    int source_only;       /* its functions must come as source (crafted bytecode escapes any
                              sandbox): a fleet task, unless load.binary is allowed */
    /* the VM's, while it runs there */
    scope *sc;         /* its scope */
    scope_watch watch; /* on sc: its cancellation fails it */
    char buf[256];
};

typedef struct ex_hooks {
    /* Runs on a VM that asked to be told (EX_EQUEUEFULL, executor_wait_idle) once
     * room freed up, the executor closed or went idle. */
    xmsg_fn notify;
    /* Runs on the thread of the task that ended last once a closed
     * executor has nothing left to run. */
    void (*drained)(void *ud);
    void *ud;
} ex_hooks;

/* executor_submit's outcome: EX_OK (0) or a code of this table (errors.h). */
#define EX_ERRNO_MAP(XX)                                                                           \
    XX(EQUEUEFULL, MERR_EQUEUEFULL, "executor queue is full")                                      \
    XX(ECLOSED, MERR_ECLOSED, "executor is closed")                                                \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")
enum { EX_OK = 0 };
MERR_ENUM(ex_errno, EX, EX_ERRNO_MAP)

/* A new executor (refs = 1). NULL when out of memory or the VM threads
 * cannot start. hooks may be NULL (nobody is told). */
executor *executor_new(int limit, const ex_hooks *hooks);
void executor_ref(executor *ex);
void executor_unref(executor *ex);
void executor_set_limit(executor *ex, int limit);

/* Runs t now if fewer than limit run, else queues it if fewer than qmax
 * are queued (qmax < 0: no bound). EX_EQUEUEFULL: not taken; with watcher set,
 * watcher is told when room frees up. EX_ECLOSED: closed. */
int executor_submit(executor *ex, ex_task *t, sched *owner, int qmax, port *watcher);

/* The task whose goroutines include those of scope sc (sc or one of its
 * ancestors is the task's own scope), or NULL: a goroutine outside every
 * pool task. On the VM's thread, while the task runs. */
const ex_task *executor_task_of(const scope *sc);

/* Stops taking tasks; queued and running ones still run. Tells the
 * watchers. */
void executor_close(executor *ex);
/* Takes back the queued tasks (those not sent to a VM yet): none of them
 * runs, their done callback never fires, and the counters forget them
 * (submitted goes down by as many). Each is the caller's again, as if never
 * submitted (it may submit it again, or free it). Returns them in queue
 * order, linked through their `next`, NULL when none was queued; *n (may be
 * NULL) gets how many. Running tasks go on. Tells the watchers as if those
 * tasks had ended: room freed up, idle when nothing runs (and a closed
 * executor's drained hook then runs, on this thread). */
ex_task *executor_take_queued(executor *ex, int *n);
/* Counts; *closed may be NULL. Returns 1 when nothing runs or is queued. */
int executor_counts(executor *ex, int *running, int *queued, int *closed);
/* Whether executor_close ran (without the executor's lock). */
int executor_closed(executor *ex);
/* 1 if idle now; else watcher is told when it is. */
int executor_idle_or_watch(executor *ex, port *watcher);
/* The executor's counters. */
typedef struct ex_stats {
    int limit, running, queued, closed;
    long long submitted, completed, failed;
} ex_stats;
void executor_stats(executor *ex, ex_stats *out);

/* Submitter side: makes the package.path/cpath of L's VM the ones tasks
 * load modules with (published only when they changed). seen is the
 * caller's record of what this VM saw last (one per VM, zeroed at first). */
typedef struct ex_paths {
    int pkg_ref;              /* registry ref of the package table (0: none yet) */
    const void *path, *cpath; /* the strings compared last */
} ex_paths;
void executor_publish_paths(lua_State *L, ex_paths *seen);

/* Frees what an ex_task owns (its outcome buffer) and the owner reference. */
void ex_task_release(ex_task *t);

#endif
