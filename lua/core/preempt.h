/* preempt.h: preemption of CPU-bound goroutines and enforcement of deadlines.
 *
 * Each VM thread gets a CPU-time timer (timer_create on
 * CLOCK_THREAD_CPUTIME_ID) that sends SIGURG every couple of milliseconds of
 * CPU the thread burns; an idle thread gets no signal. The handler looks at
 * the scheduler draining on its thread: when the drain has run longer than a
 * slice (10 ms) or the running goroutine is past its deadline, it arms a line
 * hook on that goroutine (lua_sethook is safe in a signal handler). The hook
 * yields at the next line boundary, so a single Lua statement is never cut.
 * No hook is installed the rest of the time: Lua runs at full speed. */
#ifndef MUTIRAO_PREEMPT_H
#define MUTIRAO_PREEMPT_H

#include "scheduler.h"

/* Counts a scheduler on the calling thread and makes sure the thread has
 * its CPU timer; call on the VM's thread. */
void preempt_thread_attach(void);
/* Uncounts a scheduler; the thread's CPU timer goes with the last one. */
void preempt_thread_detach(void);
/* Marks s as draining on this thread; returns the previous one. */
sched *preempt_enter(sched *s);
void preempt_leave(sched *s, sched *prev);

#endif
