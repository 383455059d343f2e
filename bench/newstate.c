/* newstate.c: the baseline for pool throughput: what the spec's own design
 * (a new lua_State per task) costs. Each task: luaL_newstate, luaL_openlibs,
 * load the task's bytecode, call it with one argument, lua_close. Runs N
 * tasks on T threads (each its own loop of N/T) and prints tasks/s and the
 * process's CPU time per task.
 * Usage: newstate-bench [N] [THREADS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lualib.h>

static char *bytecode;
static size_t bytecode_len;

static int writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    (void)ud;
    char *nb = realloc(bytecode, bytecode_len + sz);
    if (!nb)
        return 1;
    memcpy(nb + bytecode_len, p, sz);
    bytecode = nb;
    bytecode_len += sz;
    return 0;
}

typedef struct job {
    long n;
    long done;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    for (long i = 0; i < j->n; i++) {
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        if (luaL_loadbufferx(L, bytecode, bytecode_len, "=task", "b") != LUA_OK)
            abort();
        lua_pushinteger(L, i);
        if (lua_pcall(L, 1, 1, 0) != LUA_OK || lua_tointeger(L, -1) != i)
            abort();
        lua_close(L);
        j->done++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (n <= 0 || threads <= 0 || threads > 64)
        return 2;
    /* the same trivial task the pool benchmark submits: function(i) return i end */
    lua_State *L = luaL_newstate();
    if (luaL_loadstring(L, "local i = ... return i") != LUA_OK || lua_dump(L, writer, NULL, 0))
        return 1;
    lua_close(L);
    pthread_t th[64];
    job jobs[64];
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (int t = 0; t < threads; t++) {
        jobs[t].n = n / threads;
        jobs[t].done = 0;
        pthread_create(&th[t], NULL, worker, &jobs[t]);
    }
    long total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        total += jobs[t].done;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    printf("new lua_State per task: %ld tasks on %d threads in %.0f ms = %.0f tasks/s, cpu %.2f "
           "us/task\n",
           total, threads, s * 1000, (double)total / s, cpu * 1e6 / (double)total);
    free(bytecode);
    return 0;
}
