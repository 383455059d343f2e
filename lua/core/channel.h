/* channel.h: Go's channels and select for the goroutines of one VM
 * ("goroutine.Channel"): goroutine.channel([cap]), select, select_timeout,
 * after, and the channel_* module functions.
 *
 * A channel's values stay Lua values of its VM: a buffered value waits in
 * the channel's ring buffer (its user value), a value handed to a waiting
 * receiver goes straight onto the receiver's stack, and a waiting sender's
 * value stays on the sender's stack until a receiver takes it. A wait is a
 * select of one or more cases (chan_sel): it is queued on every channel it
 * names, and the first channel operation that completes one of its cases
 * takes it off all of them, so no other case ever happens. */
#ifndef MUTIRAO_CHANNEL_H
#define MUTIRAO_CHANNEL_H

#include <lua.h>

#include "scheduler.h"

#define CHANNEL_TNAME "goroutine.Channel"

/* Registers the metatable and sets channel, channel_send, channel_receive,
 * channel_close, channel_len, channel_cap, select, select_timeout and
 * after on the module table at the top of L's stack. */
void channel_open(lua_State *L, sched *s);

#endif
