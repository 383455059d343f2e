/* port.c: cross-thread mailboxes of schedulers (see port.h). */
#include "port.h"

#include <stdlib.h>

static void on_async(uv_async_t *a)
{
    port *p = a->data;
    pthread_mutex_lock(&p->mu);
    xmsg *m = p->head;
    p->head = p->tail = NULL;
    sched *s = p->s;
    pthread_mutex_unlock(&p->mu);
    if (!s)
        return;
    s->in_cb++;
    while (m) {
        xmsg *next = m->next;
        m->fn(s, m);
        m = next;
    }
    s->in_cb--;
}

port *port_open(sched *s)
{
    port *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->s = s;
    atomic_init(&p->refs, 1);
    uv_async_init(s->loop, &p->async, on_async);
    p->async.data = p;
    /* A port alone must not keep a finished program's loop running. */
    uv_unref((uv_handle_t *)&p->async);
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
    int wake = p->head == NULL;
    if (p->tail)
        p->tail->next = m;
    else
        p->head = m;
    p->tail = m;
    if (wake)
        uv_async_send(&p->async);
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
    xmsg *m = p->head;
    p->head = p->tail = NULL;
    p->s = NULL;
    pthread_mutex_unlock(&p->mu);
    while (m) {
        xmsg *next = m->next;
        m->fn(NULL, m);
        m = next;
    }
    uv_close((uv_handle_t *)&p->async, on_port_closed);
}
