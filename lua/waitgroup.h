/* waitgroup.h: Go's sync.WaitGroup for goroutines ("goroutine.WaitGroup"). */
#ifndef MUTIRAO_WAITGROUP_H
#define MUTIRAO_WAITGROUP_H

#include "scheduler.h"

#define WAITGROUP_TNAME "goroutine.WaitGroup"

typedef struct waitgroup {
    lua_Integer count;
    glist waiters;
    sched *s;
} waitgroup;

/* Pushes a new WaitGroup with counter 0. */
waitgroup *waitgroup_new(lua_State *L, sched *s);
void waitgroup_register(lua_State *L);

#endif
