/* port.c: cross-thread mailboxes of schedulers (see port.h). */
#include "port.h"

#include <stdlib.h>

/* Takes the queued messages (mu not held by the caller). */
static xmsg *take(port *p, sched **sp)
{
    pthread_mutex_lock(&p->mu);
    xmsg *m = atomic_load_explicit(&p->head, memory_order_relaxed);
    atomic_store_explicit(&p->head, NULL, memory_order_relaxed);
    p->tail = NULL;
    *sp = p->s;
    pthread_mutex_unlock(&p->mu);
    return m;
}

static void run_list(sched *s, xmsg *m)
{
    s->in_cb++;
    while (m) {
        xmsg *next = m->next;
        m->fn(s, m);
        m = next;
    }
    s->in_cb--;
}

static void on_async(uv_async_t *a)
{
    port *p = a->data;
    sched *s;
    xmsg *m = take(p, &s);
    if (s && m)
        run_list(s, m);
}

int port_run(port *p)
{
    int n = 0;
    /* (the head is read without the lock first: most calls find nothing) */
    for (int round = 0; round < 4 && atomic_load_explicit(&p->head, memory_order_relaxed);
         round++) {
        sched *s;
        xmsg *m = take(p, &s);
        if (!s || !m)
            break;
        for (xmsg *x = m; x; x = x->next)
            n++;
        run_list(s, m);
    }
    return n;
}

/* Before the loop polls. Messages posted while it ran callbacks did not
 * signal it (sleeping was 0): they run now. Then, unless goroutines are
 * ready (the poll will not wait: the idle handle is active), the loop may
 * sleep: from here a post signals it. */
static void on_prepare(uv_prepare_t *h)
{
    port *p = h->data;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        xmsg *m = atomic_load_explicit(&p->head, memory_order_relaxed);
        sched *s = p->s;
        if (!m || !s) {
            if (!s || !uv_is_active((uv_handle_t *)&s->idle))
                atomic_store_explicit(&p->sleeping, 1, memory_order_relaxed);
            pthread_mutex_unlock(&p->mu);
            return;
        }
        atomic_store_explicit(&p->head, NULL, memory_order_relaxed);
        p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        run_list(s, m);
    }
}

port *port_open(sched *s)
{
    port *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    /* held for a few instructions by the poster and the loop: spin a
     * little before sleeping in the kernel */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&p->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    p->s = s;
    atomic_init(&p->refs, 2); /* the scheduler's, and the prepare handle's until closed */
    atomic_init(&p->sleeping, 1);
    uv_async_init(s->loop, &p->async, on_async);
    p->async.data = p;
    /* A port alone must not keep a finished program's loop running. */
    uv_unref((uv_handle_t *)&p->async);
    uv_prepare_init(s->loop, &p->prep);
    p->prep.data = p;
    uv_prepare_start(&p->prep, on_prepare);
    uv_unref((uv_handle_t *)&p->prep);
    return p;
}

void port_ref(port *p)
{
    atomic_fetch_add(&p->refs, 1);
}

void port_unref(port *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
}

int port_post(port *p, xmsg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (!p->s) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    /* a loop that is not about to sleep looks at its messages before it
     * does (on_prepare): no system call then */
    int wake = atomic_load_explicit(&p->sleeping, memory_order_relaxed);
    if (p->tail)
        p->tail->next = m;
    else
        atomic_store_explicit(&p->head, m, memory_order_relaxed);
    p->tail = m;
    if (wake) {
        atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
        uv_async_send(&p->async);
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void sched_hold(sched *s)
{
    if (s->holds++ == 0)
        uv_ref((uv_handle_t *)&s->port->async);
}

void sched_unhold(sched *s)
{
    if (--s->holds == 0) {
        uv_unref((uv_handle_t *)&s->port->async);
        sched_stop_if_done(s);
    }
}

static void on_port_closed(uv_handle_t *h)
{
    port_unref(h->data);
}

/* Drops undelivered messages (their functions run with s == NULL) and
 * releases the scheduler's reference once the handle is closed. */
void port_close(port *p)
{
    pthread_mutex_lock(&p->mu);
    xmsg *m = atomic_load_explicit(&p->head, memory_order_relaxed);
    atomic_store_explicit(&p->head, NULL, memory_order_relaxed);
    p->tail = NULL;
    p->s = NULL;
    pthread_mutex_unlock(&p->mu);
    while (m) {
        xmsg *next = m->next;
        m->fn(NULL, m);
        m = next;
    }
    uv_close((uv_handle_t *)&p->prep, on_port_closed);
    uv_close((uv_handle_t *)&p->async, on_port_closed);
}
