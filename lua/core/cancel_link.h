/* cancel_link.h: a cancellation shared by the VMs of a process
 * ("goroutine.CancelLink"), for the contexts written in Lua
 * (lua/module/context.lua): a context's link travels with it to a pool
 * task, and cancelling it in any VM cancels it in every VM that holds it.
 *
 * A link is a core (a mutex, the reason once cancelled, the ports of the
 * VMs that hold it) with one userdata per VM. Cancelling sets the reason
 * (once) and posts a message to each other VM holding it; there the VM's
 * handler (_link_on_cancel) runs from the loop with the link and the
 * reason, and cancels that VM's contexts. */
#ifndef MUTIRAO_CANCEL_LINK_H
#define MUTIRAO_CANCEL_LINK_H

#include <lua.h>

#include "scheduler.h"

#define CANCEL_LINK_TNAME "goroutine.CancelLink"

/* Registers the metatable and the codec hooks; sets _link_new,
 * _link_on_cancel, _link_class, _cancel_func and the table helpers _keys
 * and _put_new (one C call each: context.lua runs in goroutines that may
 * be preempted at any line) on the module table on top of L's stack. */
void cancel_link_open(lua_State *L, sched *s);

#endif
