/* preempt.c: CPU-time signals arm a yielding line hook (see preempt.h). */
#include "preempt.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "envopt.h"

#define PREEMPT_SIGNAL SIGURG
#define TICK_NS 2000000ull /* CPU time between checks */

static uint64_t slice_ns = 10000000ull; /* a drain longer than this is preempted */
static int preempt_enabled = 1;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static _Thread_local sched *tl_sched;   /* the scheduler draining on this thread */
static _Thread_local int tl_timer_made; /* this thread has its CPU timer */
static _Thread_local timer_t tl_timer;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void preempt_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    gor *g = gor_of(L);
    if (g && g->state == G_DEAD) {
        /* the <close> handlers of a killed goroutine (sched_kill) */
        sched *s = tl_sched;
        if (s && s->close_deadline && mono_ns() >= s->close_deadline) {
            g->flags |= GF_HOOKERR;
            luaL_error(L, "cancelled: a <close> handler ran past its grace period");
        }
        return;
    }
    if (!g) {
        /* a plain coroutine run by a goroutine (coroutines.c) */
        sched *s = tl_sched;
        if (!s || atomic_load_explicit(&s->running_L, memory_order_relaxed) != L) {
            lua_sethook(L, NULL, 0, 0);
            return;
        }
        if (!s->pcal) {
            s->pcal = 1;
            return;
        }
        if (lua_isyieldable(L)) {
            lua_sethook(L, NULL, 0, 0);
            s->pcal = 0;
            s->nested_preempt = 1;
            lua_yield(L, 0);
            return;
        }
        uint64_t dl = atomic_load_explicit(&s->run_deadline, memory_order_relaxed);
        if (dl && mono_ns() >= dl)
            luaL_error(L, "cancelled: deadline passed");
        return;
    }
    /* The first line event after arming may come mid-line (Lua's last-line
     * memory is stale while no line hook runs): let it pass. */
    if (!(g->flags & GF_CALIBRATED)) {
        g->flags |= GF_CALIBRATED;
        return;
    }
    if (lua_isyieldable(L)) {
        lua_sethook(L, NULL, 0, 0);
        g->flags = (uint8_t)((g->flags & ~GF_CALIBRATED) | GF_PREEMPTED);
        lua_yield(L, 0);
        return;
    }
    /* Inside a C call that cannot yield (a sort comparator, a gsub callback):
     * keep the hook; past the deadline, raise at every line so that no pcall
     * can hold the goroutine past its deadline. */
    uint64_t dl = g->sc ? g->sc->eff_deadline : 0;
    if (dl && mono_ns() >= dl) {
        g->flags |= GF_HOOKERR;
        luaL_error(L, "cancelled: deadline passed");
    }
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    int saved = errno;
    sched *s = tl_sched;
    if (s) {
        uint64_t since = atomic_load_explicit(&s->busy_since, memory_order_relaxed);
        if (since) {
            uint64_t now = mono_ns();
            uint64_t dl = atomic_load_explicit(&s->run_deadline, memory_order_relaxed);
            if (now - since >= slice_ns || (dl && now >= dl)) {
                atomic_store_explicit(&s->preempt, 1, memory_order_relaxed);
                lua_State *co = atomic_load_explicit(&s->running_L, memory_order_relaxed);
                /* Arm only once: lua_sethook marks every call frame of the
                 * thread, so it costs time in proportion to the stack depth.
                 * On a very deep stack (a recursion about to overflow) that
                 * takes longer than a tick, and re-arming at every tick kept
                 * the thread inside this handler for good (100% CPU, no
                 * progress). */
                if (co && lua_gethook(co) != preempt_hook)
                    lua_sethook(co, preempt_hook, LUA_MASKLINE, 0);
            }
        }
    }
    errno = saved;
}

static void install(void)
{
    if (envopt_int("MUTIRAO_PREEMPT", 0, 1, 1) == 0) {
        preempt_enabled = 0;
        return;
    }
    slice_ns = (uint64_t)envopt_int("MUTIRAO_SLICE_MS", 1, 60000, (long)(slice_ns / 1000000u)) *
               1000000ull;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(PREEMPT_SIGNAL, &sa, NULL) != 0)
        preempt_enabled = 0;
}

static _Thread_local int tl_users; /* schedulers attached on this thread */

void preempt_thread_attach(void)
{
    pthread_once(&install_once, install);
    tl_sched = NULL; /* touch the TLS block before any signal can read it */
    tl_users++;
    if (!preempt_enabled || tl_timer_made)
        return;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = PREEMPT_SIGNAL;
    sev._sigev_un._tid = gettid();
    timer_t t;
    if (timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &t) != 0)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_nsec = (long)TICK_NS;
    its.it_interval.tv_nsec = (long)TICK_NS;
    if (timer_settime(t, 0, &its, NULL) != 0) {
        timer_delete(t);
        return;
    }
    /* The timer costs nothing while the thread sleeps; a thread that runs
     * VMs keeps it until preempt_thread_detach(). */
    tl_timer = t;
    tl_timer_made = 1;
}

void preempt_thread_detach(void)
{
    if (--tl_users <= 0 && tl_timer_made) {
        tl_users = 0;
        timer_delete(tl_timer);
        tl_timer_made = 0;
    }
}

sched *preempt_enter(sched *s)
{
    sched *prev = tl_sched;
    atomic_store_explicit(&s->busy_since, mono_ns(), memory_order_relaxed);
    tl_sched = s;
    return prev;
}

void preempt_leave(sched *s, sched *prev)
{
    tl_sched = prev;
    atomic_store_explicit(&s->busy_since, 0, memory_order_relaxed);
    atomic_store_explicit(&s->preempt, 0, memory_order_relaxed);
}
