/* fleet_keys.c: the fleet's Redis key names (see fleet_keys.h). Pool names
 * and ids are validated by envelope.c before they get here, so a key never
 * exceeds FLEET_KEY_MAX; snprintf truncates rather than overflows anyway. */
#include "fleet_keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "decimal.h"

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

/* Bytes of id segments: 1 decimal digit, 2 hex digit (both for 0-9). */
static const unsigned char digit_class[256] = {
    ['0' ... '9'] = 3,
    ['a' ... 'f'] = 2,
    ['A' ... 'F'] = 2,
};

/* n > 0 bytes at s, each of class c */
static int all_of(const char *s, size_t n, unsigned char c)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(digit_class[(unsigned char)s[i]] & c))
            return 0;
    return 1;
}

/* Writes PREFIX P ":" shard into out (FLEET_KEY_MAX bytes); its length, or
 * 0 when it does not fit. */
static size_t bitmap_key(char *out, const char *prefix, size_t pre, const char *p, size_t plen,
                         uint64_t shard)
{
    char d[21]; /* any uint64_t */
    size_t dl = (size_t)(dec_put(d, shard) - d);
    if (pre + plen + 1 + dl + 1 > FLEET_KEY_MAX)
        return 0;
    memcpy(out, prefix, pre);
    memcpy(out + pre, p, plen);
    out[pre + plen] = ':';
    memcpy(out + pre + plen + 1, d, dl);
    out[pre + plen + 1 + dl] = 0;
    return pre + plen + 1 + dl;
}

/* The producer part of id (its length into *plen) and its sequence number
 * (*n): FLEET_SEEN_LUA's seen() without the keys. 0, or -1 for an id
 * without a bit. */
static int parse_id(const char *id, size_t len, size_t *plen, uint64_t *n)
{
    /* Lua's '^(.+):(%d+):%x+$', then '^(.+):(%d+)$': (%d+) and %x+ hold no
     * ':', so they are the last segments, and (.+) all that comes before */
    const char *c1 = NULL;
    for (size_t i = len; i-- > 0;)
        if (id[i] == ':') {
            c1 = id + i;
            break;
        }
    if (!c1)
        return -1;
    const char *last = c1 + 1, *end = id + len, *digits = NULL;
    size_t dlen = 0;
    if (all_of(last, (size_t)(end - last), 2)) {
        const char *c2 = NULL;
        for (const char *q = c1; q-- > id;)
            if (*q == ':') {
                c2 = q;
                break;
            }
        if (c2 && c2 > id && all_of(c2 + 1, (size_t)(c1 - c2 - 1), 1)) {
            digits = c2 + 1;
            dlen = (size_t)(c1 - c2 - 1);
            *plen = (size_t)(c2 - id);
        }
    }
    if (!digits && c1 > id && all_of(last, (size_t)(end - last), 1)) {
        digits = last;
        dlen = (size_t)(end - last);
        *plen = (size_t)(c1 - id);
    }
    if (!digits)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < dlen; i++) {
        v = v * 10 + (uint64_t)(digits[i] - '0');
        if (v > 1000000000000000ull) /* the scripts' 1e15 */
            return -1;
    }
    *n = v;
    return 0;
}

#define SEEN_PREFIX "mutirao:seen:"
#define SUB_PREFIX "mutirao:sub:"

int fleet_bit_of(const char *id, size_t len, fleet_bit *b)
{
    size_t plen;
    uint64_t n;
    if (parse_id(id, len, &plen, &n) != 0)
        return -1;
    b->seen_len =
        bitmap_key(b->seen, SEEN_PREFIX, sizeof SEEN_PREFIX - 1, id, plen, n / FLEET_SEEN_SHARD);
    b->sub_len =
        bitmap_key(b->sub, SUB_PREFIX, sizeof SUB_PREFIX - 1, id, plen, n / FLEET_SEEN_SHARD);
    char *e = dec_put(b->bit, n % FLEET_SEEN_SHARD);
    *e = 0;
    b->bit_len = (size_t)(e - b->bit);
    return b->seen_len && b->sub_len ? 0 : -1;
}

int fleet_bits_init(fleet_bits *s, int n)
{
    memset(s, 0, sizeof *s);
    if (n < 1)
        n = 1;
    /* per task: two key pointers, room for two distinct keys, the bit */
    char *m = malloc((size_t)n * (4 * sizeof(char *) + sizeof s->bit[0]));
    if (!m)
        return -1;
    s->n = n;
    s->seen = (const char **)m;
    s->sub = s->seen + n;
    s->own = (char **)(s->sub + n);
    s->bit = (char(*)[8])(s->own + 2 * n);
    for (int i = 0; i < n; i++) {
        s->seen[i] = s->sub[i] = "";
        s->bit[i][0] = 0;
    }
    return 0;
}

/* A copy of key, freed with the set; NULL without memory. */
static const char *own_key(fleet_bits *s, const char *key, size_t len)
{
    char *k = malloc(len + 1);
    if (!k)
        return NULL;
    memcpy(k, key, len + 1);
    s->own[s->nown++] = k;
    return k;
}

int fleet_bits_set(fleet_bits *s, int i, const char *id, size_t len)
{
    size_t plen;
    uint64_t n;
    if (i < 0 || i >= s->n || parse_id(id, len, &plen, &n) != 0)
        return 0;
    const char *seen = NULL, *sub = NULL;
    if (i > 0 && s->seen[i - 1][0]) {
        /* the same bitmap as the task before: its key is SEEN_PREFIX, the
         * same producer part, ':', the same shard */
        const char *prev = s->seen[i - 1] + sizeof SEEN_PREFIX - 1;
        char d[21];
        size_t dl = (size_t)(dec_put(d, n / FLEET_SEEN_SHARD) - d);
        if (strncmp(prev, id, plen) == 0 && prev[plen] == ':' &&
            strncmp(prev + plen + 1, d, dl) == 0 && prev[plen + 1 + dl] == 0) {
            seen = s->seen[i - 1];
            sub = s->sub[i - 1];
        }
    }
    if (!seen) {
        fleet_bit b;
        if (fleet_bit_of(id, len, &b) != 0)
            return 0;
        seen = own_key(s, b.seen, b.seen_len);
        sub = seen ? own_key(s, b.sub, b.sub_len) : NULL;
        if (!seen || !sub)
            return -1;
    }
    s->seen[i] = seen;
    s->sub[i] = sub;
    *dec_put(s->bit[i], n % FLEET_SEEN_SHARD) = 0;
    return 0;
}

void fleet_bits_free(fleet_bits *s)
{
    for (int i = 0; i < s->nown; i++)
        free(s->own[i]);
    free(s->seen);
    memset(s, 0, sizeof *s);
}

void fleet_lookup_args(const char *id, const fleet_bits *s, int i, const char **argv)
{
    argv[0] = id;
    argv[1] = s->seen[i];
    argv[2] = s->sub[i];
    argv[3] = s->bit[i];
}
