/* scheduler.h: the per-VM goroutine scheduler.
 *
 * A goroutine is a Lua coroutine of the VM that spawned it, run from that
 * VM's libuv loop. Ready goroutines wait in a run queue drained by an idle
 * handle; every wait parks the calling goroutine on some list and yields to
 * the drain; waking a goroutine moves it back to the run queue. Nothing here
 * blocks an OS thread while a goroutine could run.
 *
 * Goroutines belong to scopes (structured concurrency): a scope ends when
 * every goroutine in it and in its child scopes has ended; cancelling a scope
 * (a `timeout` deadline, a task's timeout) kills all of them. The root scope
 * holds what the main chunk spawns.
 *
 * Ownership: a sched is created by sched_get() for one lua_State and freed
 * when that state is closed; goroutine records are Lua userdata anchored in
 * the registry while alive (or kept for reuse); scopes are malloc'd and
 * reference counted. */
#ifndef MUTIRAO_SCHED_H
#define MUTIRAO_SCHED_H

#include <stdatomic.h>
#include <stdint.h>

#include <lua.h>
#include <uv.h>

#include "glist.h"
#include "timerheap.h"

typedef struct gor gor;
typedef struct sched sched;
typedef struct scope scope;
typedef struct ghandle ghandle;
typedef struct port port;
typedef struct scope_watch scope_watch;
typedef struct sched_ext sched_ext;
typedef struct sched_parker sched_parker;

enum gstate { G_READY = 1, G_RUNNING, G_PARKED, G_DEAD };

enum gflags {
    GF_BLOCKING = 1,   /* a pseudo goroutine: a non-goroutine thread running the loop until woken */
    GF_WOKEN = 2,      /* (blocking only) its wait is over */
    GF_PREEMPTED = 4,  /* yielded by the preemption hook */
    GF_CALIBRATED = 8, /* preemption line hook has seen its first event */
    GF_HOOKERR = 16    /* an error was raised from its hook: its thread is not reusable */
};

struct gor {
    uint32_t magic;
    uint8_t state, flags;
    int ref;   /* registry ref of this userdata (anchors it and its thread) */
    int nargs; /* values on the thread's stack to pass to the next resume */
    uint64_t id;
    lua_State *L; /* the coroutine */
    sched *s;
    scope *sc;            /* scope it belongs to; NULL for blocking pseudo goroutines */
    mlist node;           /* link on `on` */
    mlist sc_node;        /* membership in sc (sc->members). Right after node: running and
                           * ending a goroutine write the node.prev and sc_node.next of the
                           * one spawned after it, one cache line (spawn ~10% faster) */
    glist *on;            /* wait list it is on, or NULL */
    theap_ent timer;      /* sleep deadline */
    ghandle *handle;      /* async handle resolved when it ends, or NULL */
    gor *free_next;       /* free list of recyclable records */
    sched_parker *parker; /* its wait's own lists (sched_wait_parker), or NULL */
};

struct scope {
    sched *s;
    scope *parent;
    mlist children; /* child scopes (of scope.sib), the newest first */
    mlist sib;      /* link in parent->children */
    mlist all;      /* link in sched.scopes: every live scope, for teardown */
    mlist members;  /* goroutines (of gor.sc_node), the newest first */
    int nlive;      /* live member goroutines + live child scopes */
    int refs;       /* holders besides liveness (a waiter, the parent link) */
    glist waiters;  /* goroutines waiting for nlive == 0 */
    theap_ent deadline;
    uint64_t eff_deadline; /* min of own and ancestors' deadlines, ns; 0 = none */
    uint8_t cancelled, counted;
    char reason[64];  /* why it was cancelled, e.g. "timeout after 100 ms" */
    int label_ref;    /* registry ref of a label (task name), or LUA_NOREF; read it
                         with scope_label_ref */
    char *label_text; /* a label not made a Lua string yet (malloc'd: a pool task's,
                         made into label_ref when first needed), or NULL */
    gor *lead;        /* goroutine whose end disarms the deadline (timeout()), or NULL */
    mlist watches;    /* layers above watching this scope's end (scope_watch_add) */
    void *tag;        /* a layer above's value for this scope and its descendants (scope_set_tag) */
    void (*tag_free)(void *tag); /* set on the scope that got the tag, not on its children */
};

struct sched {
    lua_State *L; /* main thread of the VM */
    lua_State *T; /* scratch thread for the scheduler's own Lua calls */
    int T_ref;
    uv_loop_t *loop;
    int own_loop;
    uv_idle_t idle;     /* active while the run queue is not empty */
    uv_timer_t timer;   /* armed at the earliest timer heap entry */
    uint64_t timer_due; /* what `timer` is armed for; 0 = not armed */
    theap timers;
    glist runq, next_round;
    gor *running;                   /* goroutine being resumed, or NULL */
    _Atomic(lua_State *) running_L; /* its thread, read by the preemption signal handler */
    _Atomic uint64_t busy_since;    /* ns since this drain started; 0 when idle */
    _Atomic uint64_t run_deadline;  /* eff_deadline of the running goroutine */
    atomic_int preempt;             /* set by the signal handler: end this drain */
    volatile int nested_preempt;    /* a plain coroutine inside a goroutine was preempted */
    volatile int pcal;              /* preemption hook calibrated on a plain coroutine */
    uint64_t close_deadline;        /* while a killed goroutine's <close> handlers run */
    int in_cb;                      /* inside a loop callback of ours: no nested uv_run */
    uint64_t next_id;
    scope root;
    mlist scopes; /* all malloc'd scopes (of scope.all) */
    gor *free;    /* recyclable goroutine records */
    int nfree;
    int closing;      /* being destroyed (lua_close) */
    port *port;       /* mailbox for other threads */
    int holds;        /* remote waits keeping the loop alive */
    int remote_waits; /* goroutines parked on objects other VMs can wake (a shared channel) */
    int in_run;       /* inside sched_run: stop the loop once nothing is left */
    sched_ext *exts;  /* per-VM state of the layers above (sched_ext_set) */
    int errh_ref;     /* the host's log handler (rtlog.h), or LUA_NOREF */
    size_t nlive;     /* live goroutines */
    sched *tl_prev;   /* sched that was current on this thread before this drain */
    void *spare_wait; /* a one-case channel wait kept for the next one (channel.c), freed here */
    void **tag_slot;  /* gets the running goroutine's scope tag (sched_set_tag_slot), or NULL */
};

#define GOR_MAGIC 0x676f726fu

/* Returns the scheduler of L's VM, creating it on first use. */
sched *sched_get(lua_State *L);
/* The goroutine running as thread L, or NULL when L is not a goroutine. */
static inline gor *gor_of(lua_State *L)
{
    gor *g = *(gor **)lua_getextraspace(L);
    return (g && g->magic == GOR_MAGIC && g->L == L) ? g : NULL;
}

uint64_t sched_now_ns(void);

/* Spawns the function on L's stack below its nargs arguments (popping them
 * all) as a goroutine in scope sc (NULL: the current goroutine's scope).
 * With h, h's userdata sits just below the function (popped too): the
 * goroutine keeps it alive and resolves it with its outcome. */
gor *sched_spawn(sched *s, lua_State *L, int nargs, scope *sc, ghandle *h);

/* Takes back the goroutines of scope sc with ids above after_id that have
 * not run yet (a spawn_many that failed part-way): they never run and their
 * records are dropped, not kept for reuse, so their memory can be collected. */
void sched_unspawn(sched *s, scope *sc, uint64_t after_id);

/* Parks the calling goroutine of L on list wl (may be NULL: woken by a
 * timer or sched_ready) and yields; k runs when it is woken. A call from a
 * thread that is no goroutine runs the loop until woken instead. Returns
 * like a lua_CFunction (call it as `return sched_wait(...)`). */
int sched_wait(lua_State *L, sched *s, glist *wl, uint64_t due_ns, lua_KContext ctx,
               lua_KFunction k);
/*
** A wait on lists of its own rather than one glist (a select over several
** channels). park runs once the waiter is known, before it yields: g is the
** goroutine, or a pseudo goroutine when the caller is no goroutine (the
** main chunk), valid until the wait ends. cancel runs when the wait ends
** without reaching k: the goroutine is killed (a timeout; also after it was
** made ready, before k ran), the main chunk's wait is a deadlock, or the
** wait cannot start (g is NULL: park never ran); it must take the waiter off
** its lists and free what the wait holds. k clears g->parker (gor_of(L)).
*/
struct sched_parker {
    void (*park)(sched_parker *p, gor *g);
    void (*cancel)(sched_parker *p, gor *g);
};
int sched_wait_parker(lua_State *L, sched *s, sched_parker *p, uint64_t due_ns, lua_KContext ctx,
                      lua_KFunction k);

/* Timer heap entries of the layers above (a channel that receives once
 * after a delay): cb runs on the loop when due. sched_timer_del is a no-op
 * for an entry that is not waiting. */
void sched_timer_add(sched *s, theap_ent *e, uint64_t due_ns, theap_cb cb);
void sched_timer_del(sched *s, theap_ent *e);

/* Kills a goroutine that is not running: it never runs again, its pending
 * __close handlers run, its handle (if any) fails with reason. */
void sched_kill(sched *s, gor *g, const char *reason);
/* Runs the goroutines that are ready (the idle handle's callback). */
void sched_drain(sched *s);
/* The same wait for a thread that is no goroutine: runs the loop until
 * woken (raises a deadlock error when nothing is left that could wake it). */
void sched_block(lua_State *L, sched *s, glist *wl, uint64_t due);
/* Makes a parked goroutine runnable. */
void sched_ready(sched *s, gor *g);
/* Wakes every goroutine on wl. */
void sched_ready_all(sched *s, glist *wl);

/* Scopes. scope_new returns a scope with refs = 1 (the caller's). */
scope *scope_new(sched *s, scope *parent, uint64_t timeout_ns);
void scope_release(scope *sc);
void scope_cancel(scope *sc, const char *reason);
scope *sched_current_scope(sched *s, lua_State *L);
/* The goroutine that joined sc last, or NULL when sc has none. */
static inline gor *scope_newest(const scope *sc)
{
    return mlist_first_entry(&sc->members, gor, sc_node);
}

/*
** Extension points for the layers above the core (pools, the fleet): the
** core names none of them.
**
** A scope_watch is embedded in something that lives as long as a scope's
** goroutines may care about it (a pool task submitted from the scope). When
** the scope is cancelled (cancelled = 1) or ends (0), on_end runs once and
** the watch is unlinked before it runs.
*/
struct scope_watch {
    mlist node; /* in sc->watches */
    scope *sc;  /* NULL while not watching */
    void (*on_end)(scope_watch *w, int cancelled);
};
void scope_watch_add(scope *sc, scope_watch *w);
void scope_watch_del(scope_watch *w);

/*
** Scope tags: a layer above attaches a value to a scope (a pool task's
** memory account); scopes created under it inherit it. tag_free (may be
** NULL) runs when that scope is freed, after its descendants. While a
** goroutine is being resumed, or its pending <close> handlers run because
** it was killed, *slot holds its scope's tag, and NULL at any other time
** (so whatever the tag selects applies to Lua code the goroutine runs,
** never to the scheduler's own calls outside a resume).
*/
void scope_set_tag(scope *sc, void *tag, void (*tag_free)(void *tag));
void sched_set_tag_slot(sched *s, void **slot);

/* The deadline that will cancel sc (its own or an ancestor's, the earliest,
 * on the sched_now_ns clock); 0 when none will. A cancelled scope's is now.
 * For a layer that passes the deadline on (a pool task it submits). */
uint64_t scope_deadline(const scope *sc);

/*
** Per-VM slots: a layer keeps its state for a VM under the address of a
** static of its own. on_free runs when the VM's scheduler is destroyed,
** the latest set first. sched_ext_set returns 0, or -1 when out of memory.
*/
struct sched_ext {
    sched_ext *next;
    const void *key;
    void *data;
    void (*on_free)(sched *s, void *data);
};
void *sched_ext_get(sched *s, const void *key);
int sched_ext_set(sched *s, const void *key, void *data, void (*on_free)(sched *s, void *data));

/* While holds > 0 the loop stays alive (through the VM's port): something
 * is waited for that another thread or process will bring (a pool task's
 * outcome). Call on the scheduler's thread (port.c). */
void sched_hold(sched *s);
void sched_unhold(sched *s);

/* Pushes a to-be-closed guard that holds s's loop (sched_hold) until the
 * guard is closed or collected: a wait on work done elsewhere (another
 * thread, another process) is pending work, not a deadlock, even when the
 * waiter is killed midway. Returns the guard; sched_guard_release ends the
 * hold early. */
typedef struct sched_guard sched_guard;
sched_guard *sched_guard_push(lua_State *L, sched *s);
void sched_guard_release(sched_guard *g);

/* A thread of the VM for Lua calls made from loop callbacks (port
 * messages, timers): keep its stack as you found it. */
lua_State *sched_scratch(sched *s);
/* Reports an error nobody awaits, the value on top of sched_scratch(s)
 * (popped), through the runtime's log sink (rtlog.h): gid is the
 * goroutine it came from (0: none), label_ref a registry ref of the label of
 * the task it belongs to (LUA_NOREF: none). */
void sched_report_error(sched *s, uint64_t gid, int label_ref);
/* The registry ref of the label of the innermost labelled scope of the
 * goroutine running L (LUA_NOREF: none). */
int sched_label_ref(sched *s, lua_State *L);
/* sc's label as a registry ref (LUA_NOREF: none), made from label_text on
 * first use; scope_has_label: whether it has one. */
int scope_label_ref(scope *sc);
int scope_has_label(const scope *sc);

/* Whether s's parked goroutines can never be woken again: goroutines are
 * alive but none is ready, no timer is due ever, there are at most
 * own_holds holds and the loop has no active handle or request beyond
 * base_handles (what its owner counted while the loop was idle). A pool
 * VM, whose loop its own hold keeps alive forever, asks this before it
 * sleeps (the main VM's uv_run returns 0 instead). Every wake from another
 * thread is announced by a hold (await, a WaitGroup's copies, queue room),
 * so only new work could still run there. A goroutine parked on a shared
 * channel (remote_waits) may be woken by another VM: not stuck. */
int sched_stuck(const sched *s, int own_holds, unsigned base_handles);

/* Runs the loop until no goroutine is left and no pool task this VM
 * submitted is still running. Returns the number of goroutines still alive
 * (parked forever: a deadlock). */
size_t sched_run(sched *s);
/* Used by sched_run's helpers (drain, unhold): see scheduler.c. */
void sched_stop_if_done(sched *s);
/* Writes where each live goroutine is parked (id + traceback) to f. */
void sched_dump_parked(sched *s, void *file);

#endif
