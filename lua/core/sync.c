/* sync.c: registers the synchronisation primitives (see sync.h). */
#include "sync.h"

#include <lauxlib.h>

#include "atomic_int.h"
#include "cond.h"
#include "mutex.h"
#include "once.h"
#include "sema.h"
#include "travel.h"

lua_Integer sync_check_integer(lua_State *L, int arg)
{
    int isint;
    lua_Integer v = lua_tointegerx(L, arg, &isint);
    if (lua_type(L, arg) != LUA_TNUMBER)
        luaL_typeerror(L, arg, "integer");
    else if (!isint)
        luaL_argerror(L, arg, "number has no integer representation");
    return v;
}

void sync_open(lua_State *L, sched *s)
{
    mutex_open(L, s);
    semaphore_open(L, s);
    atomic_int_open(L);
    once_open(L, s);
    cond_open(L, s);
    /* (an atomic_int travels: atomic_int.c) */
    travel_refuse(L, MUTEX_TNAME, "a mutex");
    travel_refuse(L, RWMUTEX_TNAME, "an rwmutex");
    travel_refuse(L, SEMAPHORE_TNAME, "a semaphore");
    travel_refuse(L, ONCE_TNAME, "a once object");
    travel_refuse(L, COND_TNAME, "a cond");
}
