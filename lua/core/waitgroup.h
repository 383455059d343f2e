/* waitgroup.h: Go's sync.WaitGroup for goroutines ("goroutine.WaitGroup").
 *
 * The counter lives in a shared core so that a WaitGroup captured by a pool
 * task (another VM, another thread) is the same WaitGroup there: add and
 * done are atomic; when the counter reaches zero on another VM, a message
 * to the home VM wakes the goroutines waiting there. A wait in a VM other
 * than the home one polls the counter every 2 ms. While copies of it live
 * in other VMs, a wait at home holds the loop: their done() may still come.
 *
 * For the layers that send WaitGroups out of the process (the fleet), a
 * WaitGroup can carry a name, and a *proxy* stands for a WaitGroup of
 * another process: it only counts the add/done calls made on it, which its
 * layer applies to the original later; waiting on a proxy is an error. */
#ifndef MUTIRAO_WAITGROUP_H
#define MUTIRAO_WAITGROUP_H

#include <stdatomic.h>

#include "port.h"
#include "scheduler.h"

#define WAITGROUP_TNAME "goroutine.WaitGroup"

typedef struct wgcore wgcore;

typedef struct waitgroup {
    wgcore *core;
    sched *s; /* VM of this copy */
    int home; /* this copy is the original */
    glist waiters;
} waitgroup;

/* Pushes a new WaitGroup with counter 0. */
waitgroup *waitgroup_new(lua_State *L, sched *s);
/* Registers the metatable and the codec hooks that let it travel. */
void waitgroup_register(lua_State *L, sched *s);
/* The WaitGroup at idx, or NULL. */
waitgroup *waitgroup_test(lua_State *L, int idx);

/* Its name outside this process, or NULL. waitgroup_set_name copies name;
 * 0, or -1 when out of memory. */
const char *waitgroup_name(const waitgroup *wg);
int waitgroup_set_name(waitgroup *wg, const char *name);
/* 1 for a proxy. */
int waitgroup_is_proxy(const waitgroup *wg);

/* Pushes a proxy for the WaitGroup named name (len bytes) and returns its
 * core with a reference for the caller (waitgroup_core_release). Raises
 * when out of memory. */
wgcore *waitgroup_proxy_new(lua_State *L, sched *s, const char *name, size_t len);
/* A proxy's name and the sum of the add/done changes made on it. */
const char *waitgroup_core_name(const wgcore *c);
long long waitgroup_core_delta(wgcore *c);
void waitgroup_core_release(wgcore *c);

/* Applies a change made elsewhere to the WaitGroup at idx (the original);
 * wakes its waiters at zero. A change below zero stops at zero and returns
 * -1. */
int waitgroup_apply(lua_State *L, int idx, long long delta);

#endif
