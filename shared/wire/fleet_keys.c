/* fleet_keys.c: the fleet's Redis key names (see fleet_keys.h). Pool names
 * and ids are validated by envelope.c before they get here, so a key never
 * exceeds FLEET_KEY_MAX; snprintf truncates rather than overflows anyway. */
#include "fleet_keys.h"

#include <stdio.h>

static size_t key(char *out, const char *fmt, const char *s)
{
    int n = snprintf(out, FLEET_KEY_MAX, fmt, s);
    if (n < 0)
        return 0;
    return (size_t)n < FLEET_KEY_MAX ? (size_t)n : FLEET_KEY_MAX - 1;
}

size_t fleet_key_pool(char *out, const char *pool)
{
    return key(out, "mutirao:pool:%s", pool);
}

size_t fleet_key_stats(char *out, const char *pool)
{
    return key(out, "mutirao:pool:%s:stats", pool);
}

size_t fleet_key_active(char *out, const char *pool)
{
    return key(out, "mutirao:pool:%s:active", pool);
}

size_t fleet_key_task(char *out, const char *id)
{
    return key(out, "mutirao:task:%s", id);
}

size_t fleet_key_task_queued(char *out, const char *id)
{
    return key(out, "mutirao:task:%s:q", id);
}

size_t fleet_key_task_wg(char *out, const char *id)
{
    return key(out, "mutirao:task:%s:w", id);
}

size_t fleet_key_notify(char *out, const char *producer)
{
    return key(out, "mutirao:done:%s", producer);
}

size_t fleet_key_delivery(char *out, const char *id)
{
    return key(out, "mutirao:delivery:%s", id);
}

size_t fleet_key_dead(char *out, const char *pool)
{
    return key(out, "mutirao:pool:%s:dead", pool);
}

size_t fleet_key_dead_env(char *out, const char *pool)
{
    return key(out, "mutirao:pool:%s:dead:env", pool);
}

size_t fleet_key_task_in(char *out, const char *id)
{
    return key(out, "mutirao:task:%s:in", id);
}

size_t fleet_key_task_out(char *out, const char *id)
{
    return key(out, "mutirao:task:%s:out", id);
}

int fleet_task_keys(const char *id, char out[][FLEET_KEY_MAX], size_t *len)
{
    len[0] = fleet_key_task(out[0], id);
    len[1] = fleet_key_task_queued(out[1], id);
    len[2] = fleet_key_task_wg(out[2], id);
    len[3] = fleet_key_task_in(out[3], id);
    len[4] = fleet_key_task_out(out[4], id);
    return FLEET_TASK_KEYS;
}
