/* sync.c: registers the synchronisation primitives (see sync.h). */
#include "sync.h"

#include <lauxlib.h>

#include "atomic_int.h"
#include "cond.h"
#include "mutex.h"
#include "once.h"
#include "sema.h"
#include "codec.h"

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
    /* each travels to the other VMs of the process as the same object (an
     * atomic_int: atomic_int.c; the others: waitq.h), not to the fleet */
    codec_register_udata(L, MUTEX_TNAME, mutex_encode, mutex_decode, s);
    codec_register_udata(L, RWMUTEX_TNAME, rwmutex_encode, rwmutex_decode, s);
    codec_register_udata(L, SEMAPHORE_TNAME, semaphore_encode, semaphore_decode, s);
    codec_register_udata(L, ONCE_TNAME, once_encode, once_decode, s);
    codec_register_udata(L, COND_TNAME, cond_encode, cond_decode, s);
}
