/* channel_core.h: the shared state of a channel that travelled to another
 * VM of this process (a pool task captured it, or got it as an argument).
 *
 * Until it first travels, a channel keeps Lua values of its own VM
 * (channel.c). The first time it travels it becomes shared: its buffer,
 * its waiting senders and receivers and its closed flag move into a
 * chan_core guarded by a mutex, and every VM that holds the channel holds a
 * userdata that points to the same core. Values in a shared channel are
 * codec messages (as a pool task's arguments): a receiver decodes its own
 * copy, in its own VM. */
#ifndef MUTIRAO_CHANNEL_CORE_H
#define MUTIRAO_CHANNEL_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <lua.h>

#include "list.h"

/* One encoded value (a codec message of one value); p NULL: none. */
typedef struct chan_val {
    char *p;
    size_t n;
} chan_val;

typedef struct chan_core {
    pthread_mutex_t mu;
    atomic_int refs; /* a channel userdata in some VM, or a name in flight */
    lua_Integer cap;
    int closed;         /* (mu) */
    chan_val *ring;     /* (mu) the values waiting, a deque of rcap slots */
    size_t rcap, head;  /* (mu) */
    size_t count;       /* (mu) may exceed cap by values given back */
    mlist recvq, sendq; /* (mu) waiters (channel.c's chan_waiter.node), oldest first */
} chan_core;

/* A core with one reference (the caller's), or NULL when out of memory. */
chan_core *chan_core_new(lua_Integer cap);
void chan_core_ref(chan_core *c);
void chan_core_unref(chan_core *c);

/* With c->mu held: appends v (front: as the next value received). Returns 0,
 * or -1 when out of memory (v is still the caller's). */
int chan_core_push(chan_core *c, chan_val v, int front);
/* With c->mu held and c->count > 0: takes the next value. */
chan_val chan_core_pop(chan_core *c);

/* Locks (unlocks) the distinct cores of cs[0..n-1], in address order so
 * that two selects over the same channels never wait for each other. Sorts
 * cs in place. */
void chan_cores_lock(chan_core **cs, int n);
void chan_cores_unlock(chan_core **cs, int n);

/* Encodes the value at idx of L into *out (malloc'd). Returns 0, or a codec
 * error with err naming the value that cannot travel (raises nothing). */
int chan_val_encode(lua_State *L, int idx, chan_val *out, char *err, size_t errlen);
/* Pushes the value v holds and frees v; raises when it cannot be decoded
 * (out of memory) after freeing it. */
void chan_val_decode(lua_State *L, chan_val *v);
void chan_val_free(chan_val *v);

#endif
