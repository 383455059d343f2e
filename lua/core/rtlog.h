/* rtlog.h: the runtime's one log sink.
 *
 * Every record the runtime writes (a goroutine or pool task that failed
 * with nobody awaiting it, a fleet warning) goes through here. When the
 * VM's host set a handler (goroutine._set_error_handler(fn): the runner
 * routes it to the `log` module, with the task and goroutine as context)
 * the record goes to fn(message, goroutine id, label, level); else to
 * stderr: errors as "goroutine ID failed: MESSAGE" (or the message alone),
 * other levels as "mutirao: MESSAGE". */
#ifndef MUTIRAO_RTLOG_H
#define MUTIRAO_RTLOG_H

#include <stdint.h>

#include "scheduler.h"

enum { RTLOG_DEBUG, RTLOG_INFO, RTLOG_WARN, RTLOG_ERROR };

/* A record of s's VM: gid the goroutine it is about (0: none), label_ref a
 * registry ref of the label of its task (LUA_NOREF: none). */
void rtlog(sched *s, int level, uint64_t gid, int label_ref, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The same for the value on top of sched_scratch(s) (popped): a non-string
 * goes to a handler as it is, to stderr as tostring shows it. */
void rtlog_value(sched *s, int level, uint64_t gid, int label_ref);
/* Pushes tostring(value at idx) and returns it, never raising: a
 * __tostring that raises or returns no string (or no memory) gives
 * "TYPE: ADDRESS". For the values the runtime writes to logs. */
const char *rtlog_tostring(lua_State *L, int idx);

/* A record with no VM to go through (a VM that could not start). */
void rtlog_process(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
