/* registry.c: a worker's entry in the worker registry (registry.h). */
#include "registry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "fleet_keys.h"

#ifndef MUTIRAO_VERSION
#define MUTIRAO_VERSION "0.0.0"
#endif

/* A "dur:NAME" value: FLEET_DUR_BUCKETS counts of at most 10 digits, spaces */
#define DUR_TEXT (FLEET_DUR_BUCKETS * 11 + 1)

int registry_write(redis_uv *r, const config *cfg, const registry_pool *pools, int n, int threads,
                   uint64_t started_ms, uint64_t now_ms)
{
    char key[FLEET_KEY_MAX], set[FLEET_KEY_MAX], host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "?");
    host[sizeof host - 1] = 0;
    fleet_key_worker(key, cfg->worker_id);
    fleet_key_workers(set);
    /* the fixed fields, then "pool:NAME" and "dur:NAME" per pool */
    int argc = 2 + 2 * 9 + 4 * n;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    char *nums = malloc((size_t)(9 + n) * 64);
    char *names = malloc((size_t)n * 2 * (ENVELOPE_POOL_MAX + 6) + 1);
    char *durs = malloc((size_t)n * DUR_TEXT + 1);
    char *serves = NULL;
    if (!argv || !nums || !names || !durs) {
        free(argv);
        free(nums);
        free(names);
        free(durs);
        return REDIS_UV_ENOMEM;
    }
    /* worker.pools: the pools it serves ("*": every pool) */
    size_t sl = 2;
    for (size_t i = 0; i < cfg->worker_npools; i++)
        sl += strlen(cfg->worker_pools[i]) + 1;
    serves = malloc(sl);
    if (!serves) {
        free(argv);
        free(nums);
        free(names);
        free(durs);
        return REDIS_UV_ENOMEM;
    }
    serves[0] = 0;
    if (cfg->worker_npools == 0)
        strcpy(serves, "*");
    for (size_t i = 0; i < cfg->worker_npools; i++) {
        if (i)
            strcat(serves, ",");
        strcat(serves, cfg->worker_pools[i]);
    }
    int running = 0, slots = 0;
    for (int i = 0; i < n; i++) {
        running += pools[i].running;
        slots += pools[i].slots;
    }
    int k = 0;
    char *num = nums;
#define NUM(fmt, v) (snprintf(num, 64, fmt, v), num += 64, num - 64)
    argv[k++] = "HSET";
    argv[k++] = key;
    argv[k++] = "host";
    argv[k++] = host;
    argv[k++] = "pid";
    argv[k++] = NUM("%ld", (long)getpid());
    argv[k++] = "version";
    argv[k++] = MUTIRAO_VERSION;
    argv[k++] = "started";
    argv[k++] = NUM("%" PRIu64, started_ms);
    argv[k++] = "seen";
    argv[k++] = NUM("%" PRIu64, now_ms);
    argv[k++] = "serves";
    argv[k++] = serves;
    argv[k++] = "threads";
    argv[k++] = NUM("%d", threads);
    argv[k++] = "running";
    argv[k++] = NUM("%d", running);
    argv[k++] = "slots";
    argv[k++] = NUM("%d", slots);
    char *nm = names;
    for (int i = 0; i < n; i++) {
        int m = snprintf(nm, ENVELOPE_POOL_MAX + 6, "pool:%s", pools[i].name);
        argv[k++] = nm;
        nm += m + 1;
        snprintf(num, 64, "%d %d %u", pools[i].running, pools[i].slots, pools[i].last_minute);
        argv[k++] = num;
        num += 64;
        if (pools[i].last_minute == 0)
            continue;
        /* "dur:NAME" = the counts of its FLEET_DUR_BUCKETS buckets */
        m = snprintf(nm, ENVELOPE_POOL_MAX + 6, "dur:%s", pools[i].name);
        argv[k++] = nm;
        nm += m + 1;
        char *d = durs + (size_t)i * DUR_TEXT;
        argv[k++] = d;
        for (int j = 0; j < FLEET_DUR_BUCKETS; j++)
            d += snprintf(d, 12, j ? " %u" : "%u", pools[i].dur[j]);
    }
#undef NUM
    int rc = redis_uv_command_argv(r, NULL, NULL, k, argv, NULL);
    if (rc == 0) {
        char ttl[24], at[24], old[24];
        snprintf(ttl, sizeof ttl, "%d", FLEET_WORKER_TTL_S);
        snprintf(at, sizeof at, "%" PRIu64, now_ms);
        snprintf(old, sizeof old, "(%" PRIu64, now_ms - (uint64_t)FLEET_WORKER_TTL_S * 1000);
        const char *ex[] = {"EXPIRE", key, ttl};
        const char *za[] = {"ZADD", set, at, cfg->worker_id};
        const char *zr[] = {"ZREMRANGEBYSCORE", set, "-inf", old};
        const char *sx[] = {"EXPIRE", set, ttl};
        redis_uv_command_argv(r, NULL, NULL, 3, ex, NULL);
        redis_uv_command_argv(r, NULL, NULL, 4, za, NULL);
        redis_uv_command_argv(r, NULL, NULL, 4, zr, NULL);
        redis_uv_command_argv(r, NULL, NULL, 3, sx, NULL);
    }
    free(argv);
    free(nums);
    free(names);
    free(durs);
    free(serves);
    return rc;
}

void registry_remove(redis_uv *r, const config *cfg)
{
    char key[FLEET_KEY_MAX], set[FLEET_KEY_MAX];
    fleet_key_worker(key, cfg->worker_id);
    fleet_key_workers(set);
    const char *del[] = {"DEL", key};
    const char *zr[] = {"ZREM", set, cfg->worker_id};
    redis_uv_command_argv(r, NULL, NULL, 2, del, NULL);
    redis_uv_command_argv(r, NULL, NULL, 3, zr, NULL);
}
