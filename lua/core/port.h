/* port.h: a scheduler's mailbox for other threads.
 *
 * Another thread (a pool VM, later a Kafka or Redis callback) posts a
 * message; the scheduler's thread runs the message's function from its loop
 * (a uv_async handle), where it may spawn or wake goroutines. A port
 * outlives its scheduler: posting to a port whose scheduler is gone calls
 * the message's function with s == NULL so it can free itself.
 * Ownership: the scheduler holds one reference; every holder of a port
 * pointer on another thread holds one (port_ref/port_unref). */
#ifndef MUTIRAO_PORT_H
#define MUTIRAO_PORT_H

#include <pthread.h>
#include <stdatomic.h>

#include "scheduler.h"

typedef struct xmsg xmsg;
/* Runs on the target scheduler's thread and owns (frees) m; s is NULL when
 * the scheduler went away with m still queued. */
typedef void (*xmsg_fn)(sched *s, xmsg *m);

struct xmsg {
    xmsg *next;
    xmsg_fn fn;
};

struct port {
    pthread_mutex_t mu;
    _Atomic(xmsg *) head; /* written under mu; read without it by port_run */
    xmsg *tail;
    sched *s;         /* NULL once the scheduler is destroyed */
    uv_async_t async; /* owned by the scheduler's loop */
    /* Runs before the loop polls: takes the messages posted since, then
     * (nothing left to run) marks the loop as about to sleep. */
    uv_prepare_t prep;
    /* The loop may sleep in its poll: a post must signal (mu). While it is
     * 0 the loop will look at its messages before it sleeps, and a post
     * makes no system call. Read without mu as a hint (port_sleeping). */
    atomic_int sleeping;
    atomic_int refs;
};

/* The scheduler's port is s->port, created with its scheduler. */
void port_ref(port *p);
void port_unref(port *p);
/* Queues m for p's scheduler. Returns 0, or -1 when the scheduler is gone:
 * m is then still the caller's. Safe from any thread. */
int port_post(port *p, xmsg *m);

/* Whether p's loop may be asleep (a hint, racy: for picking a VM). */
static inline int port_sleeping(port *p)
{
    return atomic_load_explicit(&p->sleeping, memory_order_relaxed);
}

/* On the scheduler's thread: runs the messages posted so far (at most a
 * few batches). Returns how many ran. */
int port_run(port *p);

/* Called by the scheduler: creation on its thread, and closing. */
port *port_open(sched *s);
void port_close(port *p);

#endif
