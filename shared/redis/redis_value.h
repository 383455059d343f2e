/* redis_value.h: a hiredis reply deep-copied out of its callback (whose
 * redisReply is freed when the callback returns), for a caller that reads
 * it later: the fleet objects' script calls (lua/fleet/fleet_objects.c)
 * and the operations commands (producer/ops_redis.c). */
#ifndef MUTIRAO_REDIS_VALUE_H
#define MUTIRAO_REDIS_VALUE_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* A copied reply; the caller owns it (redis_value_free). */
typedef struct redis_value {
    int type; /* REDIS_REPLY_* */
    long long integer;
    char *str; /* strings, status and errors (NUL-terminated); NULL for nil */
    size_t len;
    struct redis_value *el; /* an array's elements */
    size_t n;
} redis_value;

/* Copies r into *to (overwritten, not freed first). Arrays are copied
 * from depth 0 (r itself) to max_depth - 1; one deeper is refused
 * (max_depth negative: no limit). 0, or -1 when memory ran out or an array
 * was nested too deep: *to then holds what was copied so far, for
 * redis_value_free. */
int redis_value_copy(redis_value *to, const redisReply *r, int max_depth);
/* Frees what v holds and empties it (safe on an empty or partial copy). */
void redis_value_free(redis_value *v);

#endif
