/* channel_core.c: a shared channel's core: its deque of encoded values,
 * references, locking and value encoding (see channel_core.h). */
#include "channel_core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "codec.h"

chan_core *chan_core_new(lua_Integer cap)
{
    chan_core *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->cap = cap;
    mlist_init(&c->recvq);
    mlist_init(&c->sendq);
    return c;
}

void chan_core_ref(chan_core *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void chan_core_ref_any(void *c)
{
    chan_core_ref(c);
}

void chan_core_unref(chan_core *c)
{
    if (!travel_unref(c, &c->ta, &c->refs))
        return;
    /* no VM holds it: nobody waits on it either (a waiter holds its channel) */
    for (size_t i = 0; i < c->count; i++)
        free(c->ring[(c->head + i) % c->rcap].p);
    free(c->ring);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static int grow(chan_core *c)
{
    size_t n = c->rcap ? 2 * c->rcap : 8;
    if (n > SIZE_MAX / sizeof(chan_val))
        return -1;
    chan_val *r = malloc(n * sizeof *r);
    if (!r)
        return -1;
    for (size_t i = 0; i < c->count; i++)
        r[i] = c->ring[(c->head + i) % c->rcap];
    free(c->ring);
    c->ring = r;
    c->rcap = n;
    c->head = 0;
    return 0;
}

int chan_core_push(chan_core *c, chan_val v, int front)
{
    if (c->count == c->rcap && grow(c) != 0)
        return -1;
    if (front) {
        c->head = (c->head + c->rcap - 1) % c->rcap;
        c->ring[c->head] = v;
    } else {
        c->ring[(c->head + c->count) % c->rcap] = v;
    }
    c->count++;
    return 0;
}

chan_val chan_core_pop(chan_core *c)
{
    chan_val v = c->ring[c->head];
    c->ring[c->head] = (chan_val){NULL, 0};
    c->head = (c->head + 1) % c->rcap;
    c->count--;
    return v;
}

static int by_address(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (chan_core *const *)a, y = (uintptr_t) * (chan_core *const *)b;
    return (x > y) - (x < y);
}

void chan_cores_lock(chan_core **cs, int n)
{
    if (n > 1)
        qsort(cs, (size_t)n, sizeof *cs, by_address);
    for (int i = 0; i < n; i++)
        if (i == 0 || cs[i] != cs[i - 1])
            pthread_mutex_lock(&cs[i]->mu);
}

void chan_cores_unlock(chan_core **cs, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (i == 0 || cs[i] != cs[i - 1])
            pthread_mutex_unlock(&cs[i]->mu);
}

/* Values cross between VMs of this process only: functions as bytecode. */
static void limits(codec_limits *lim)
{
    codec_limits_default(lim);
    lim->allow_bytecode = 1;
    lim->value_name = "channel value";
}

int chan_val_encode(lua_State *L, int idx, chan_val *out, char *err, size_t errlen)
{
    codec_limits lim;
    limits(&lim);
    int rc = codec_encode(L, lua_absindex(L, idx), 1, &lim, &out->p, &out->n, err, errlen);
    if (rc != 0)
        out->p = NULL;
    return rc;
}

int chan_val_decode(lua_State *L, chan_val *v, char *err, size_t errlen)
{
    codec_limits lim;
    limits(&lim);
    int n = 0;
    int rc = codec_decode(L, v->p, v->n, &lim, &n, err, errlen);
    if (rc != 0)
        return rc;
    lua_pop(L, n - 1); /* (one value: this file encoded it) */
    chan_val_free(v);
    return 0;
}

void chan_val_free(chan_val *v)
{
    free(v->p);
    v->p = NULL;
    v->n = 0;
}
