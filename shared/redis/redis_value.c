/* redis_value.c: a hiredis reply deep-copied out of its callback
 * (redis_value.h). */
#include "redis_value.h"

#include <stdlib.h>
#include <string.h>

void redis_value_free(redis_value *v)
{
    for (size_t i = 0; i < v->n; i++)
        redis_value_free(&v->el[i]);
    free(v->el);
    free(v->str);
    memset(v, 0, sizeof *v);
}

int redis_value_copy(redis_value *to, const redisReply *r, int max_depth)
{
    memset(to, 0, sizeof *to);
    to->type = r->type;
    to->integer = r->integer;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
        r->type == REDIS_REPLY_ERROR) {
        if (!(to->str = malloc(r->len + 1)))
            return -1;
        memcpy(to->str, r->str, r->len);
        to->str[r->len] = 0;
        to->len = r->len;
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        if (max_depth == 0 || !(to->el = calloc(r->elements, sizeof *to->el)))
            return -1;
        /* (n counts the elements copied: a partial copy frees cleanly) */
        for (; to->n < r->elements; to->n++)
            if (redis_value_copy(&to->el[to->n], r->element[to->n],
                                 max_depth < 0 ? max_depth : max_depth - 1) != 0) {
                to->n++;
                return -1;
            }
    }
    return 0;
}
