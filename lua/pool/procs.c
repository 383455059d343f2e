/* procs.c: VM threads for pool tasks (see procs.h). */
#include "procs.h"

#include "envopt.h"
#include "memlimit.h"
#include "rtlog.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

static pthread_mutex_t procs_mu = PTHREAD_MUTEX_INITIALIZER;
static const char DEADLOCK_KEY = 'd'; /* sched_ext key of a VM's stuck_watch */
static proc *procs_v;
static atomic_int procs_n;
static atomic_uint procs_rr;
static procs_setup_fn procs_setup;
static _Atomic(procs_setup_fn) procs_opener;

void procs_set_setup(procs_setup_fn fn)
{
    procs_setup = fn;
}

void procs_set_opener(procs_setup_fn fn)
{
    procs_setup_fn none = NULL;
    atomic_compare_exchange_strong(&procs_opener, &none, fn);
}

int procs_count(void)
{
    return atomic_load(&procs_n);
}

typedef struct boot {
    proc *p;
    uv_sem_t ready;
    int err;
} boot;

/* os.exit in a pool VM: a task cannot end the process that runs it (the
 * program that submitted it, or a fleet worker, with every other task):
 * the call fails the task instead. */
static int no_exit(lua_State *L)
{
    return luaL_error(L, "os.exit called in a pool task: a pool task cannot end its process "
                         "(return, or raise an error, instead)");
}

/* Opens a new VM's modules (protected: the hooks may raise). */
static int vm_open(lua_State *L)
{
    luaL_openlibs(L);
    procs_setup_fn opener = atomic_load(&procs_opener);
    if (opener)
        opener(L); /* the goroutine module and the io modules */
    if (procs_setup)
        procs_setup(L);
    if (lua_getglobal(L, "os") == LUA_TTABLE) {
        lua_pushcfunction(L, no_exit);
        lua_setfield(L, -2, "exit");
    }
    lua_pop(L, 1);
    return 0;
}

/* A pool VM's deadlock watch: before its loop sleeps, when its parked
 * goroutines can never be woken (sched_stuck), the tasks they belong to
 * fail with a deadlock error (their scopes are cancelled, their goroutines
 * killed) instead of waiting forever. */
typedef struct stuck_watch {
    uv_prepare_t prep;
    sched *s;
    unsigned base_handles;
} stuck_watch;

#define DEADLOCK_REASON "deadlock: every goroutine of the task waits forever"

static void on_stuck_check(uv_prepare_t *h)
{
    stuck_watch *w = h->data;
    sched *s = w->s;
    if (!sched_stuck(s, 1, w->base_handles))
        return;
    mlist *n, *next;
    mlist_foreach_safe (n, next, &s->root.children) {
        scope *sc = mlist_entry(n, scope, sib);
        if (!sc->cancelled)
            scope_cancel(sc, DEADLOCK_REASON);
    }
}

static void on_watch_closed(uv_handle_t *h)
{
    free(h->data);
}

static void stuck_watch_free(sched *s, void *data)
{
    (void)s;
    stuck_watch *w = data;
    uv_close((uv_handle_t *)&w->prep, on_watch_closed); /* (the scheduler runs the close) */
}

/* Starts the watch once the VM is idle and holds itself (sched_hold). */
static void stuck_watch_start(sched *s)
{
    stuck_watch *w = calloc(1, sizeof *w);
    if (!w)
        return; /* (no watch: a stuck task waits for its timeout, as before) */
    w->s = s;
    uv_prepare_init(s->loop, &w->prep);
    w->prep.data = w;
    uv_prepare_start(&w->prep, on_stuck_check);
    uv_unref((uv_handle_t *)&w->prep);
    w->base_handles = s->loop->active_handles;
    if (sched_ext_set(s, &DEADLOCK_KEY, w, stuck_watch_free) != 0) {
        uv_close((uv_handle_t *)&w->prep, on_watch_closed);
        return;
    }
}

static void proc_main(void *arg)
{
    boot *b = arg;
    proc *p = b->p;
    char name[16];
    snprintf(name, sizeof name, "mutirao-vm%d", p->index);
    pthread_setname_np(pthread_self(), name);
    memheap *heap = NULL; /* per-task memory limits (memlimit.h) */
    lua_State *L = memheap_newstate(&heap);
    if (!L) {
        b->err = -ENOMEM;
        uv_sem_post(&b->ready);
        return;
    }
    lua_pushcfunction(L, vm_open);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        rtlog_process(RTLOG_ERROR, "mutirao: cannot set up pool VM %d: %s", p->index,
                      lua_tostring(L, -1));
        lua_close(L);
        memheap_free(heap);
        b->err = -EINVAL;
        uv_sem_post(&b->ready);
        return;
    }
    sched *s = sched_get(L);
    sched_set_tag_slot(s, memheap_slot(heap)); /* a task's goroutines charge its account */
    p->port = s->port;
    port_ref(p->port);
    sched_hold(s); /* a pool VM waits for work forever */
    stuck_watch_start(s);
    uv_sem_post(&b->ready); /* b is gone after this */
    uv_run(s->loop, UV_RUN_DEFAULT);
    lua_close(L);
    memheap_free(heap);
}

int procs_start(void)
{
    if (atomic_load(&procs_n) > 0)
        return atomic_load(&procs_n);
    pthread_mutex_lock(&procs_mu);
    int n = atomic_load(&procs_n);
    if (n > 0) {
        pthread_mutex_unlock(&procs_mu);
        return n;
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cores = cores < 1 ? 1 : cores > 256 ? 256 : cores;
    n = (int)envopt_int("MUTIRAO_PROCS", 1, 256, cores);
    proc *v = calloc((size_t)n, sizeof *v);
    if (!v) {
        pthread_mutex_unlock(&procs_mu);
        return -ENOMEM;
    }
    int started = 0;
    for (int i = 0; i < n; i++) {
        boot b = {.p = &v[i], .err = 0};
        v[i].index = i;
        uv_sem_init(&b.ready, 0);
        uv_thread_t th;
        uv_thread_options_t opt = {.flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = 8u << 20};
        if (uv_thread_create_ex(&th, &opt, proc_main, &b) != 0) {
            uv_sem_destroy(&b.ready);
            break;
        }
        uv_sem_wait(&b.ready);
        uv_sem_destroy(&b.ready);
        if (b.err)
            break;
        started++;
    }
    if (started == 0) {
        free(v);
        pthread_mutex_unlock(&procs_mu);
        return -EAGAIN;
    }
    procs_v = v;
    atomic_store(&procs_n, started);
    pthread_mutex_unlock(&procs_mu);
    return started;
}

proc *procs_pick(void)
{
    int n = atomic_load(&procs_n);
    /* start at a rotating index so equal loads spread round-robin */
    int start = (int)(atomic_fetch_add(&procs_rr, 1) % (unsigned)n);
    proc *best = &procs_v[start];
    int best_load = atomic_load_explicit(&best->load, memory_order_relaxed);
    for (int k = 1; k < n && best_load > 0; k++) {
        proc *p = &procs_v[(start + k) % n];
        int l = atomic_load_explicit(&p->load, memory_order_relaxed);
        if (l < best_load) {
            best = p;
            best_load = l;
        }
    }
    return best;
}

void procs_global_require(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK)
        lua_setglobal(L, name);
    else
        lua_pop(L, 1);
}
