/* fleet_keys.c: the fleet's Redis key names (see fleet_keys.h). Pool names
 * and ids are validated by envelope.c before they get here, so a key never
 * exceeds FLEET_KEY_MAX; snprintf truncates rather than overflows anyway. */
#include "fleet_keys.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "decimal.h"

static int tagged_layout; /* fleet_keys_set_tagged */

void fleet_keys_set_tagged(int tagged)
{
    tagged_layout = tagged != 0;
}

int fleet_keys_tagged(void)
{
    return tagged_layout;
}

int fleet_keys_use_url(const char *url)
{
    int c = url && (strncmp(url, "redis+cluster://", 16) == 0 ||
                    strncmp(url, "rediss+cluster://", 17) == 0);
    fleet_keys_set_tagged(c);
    return c;
}

static int parse_id(const char *id, size_t len, size_t *plen, uint64_t *n);

size_t fleet_id_tag(const char *id, size_t len)
{
    size_t plen;
    uint64_t n;
    return parse_id(id, len, &plen, &n) == 0 ? plen : len;
}

size_t fleet_prefix(char *out, const char *tag, size_t taglen)
{
    if (!tagged_layout) {
        memcpy(out, "mutirao:", 9);
        return 8;
    }
    if (taglen + 12 > FLEET_KEY_MAX) {
        out[0] = 0;
        return 0;
    }
    memcpy(out, "mutirao:{", 9);
    memcpy(out + 9, tag, taglen);
    memcpy(out + 9 + taglen, "}:", 3);
    return taglen + 11;
}

size_t fleet_prefix_id(char *out, const char *id)
{
    size_t len = strlen(id);
    return fleet_prefix(out, id, fleet_id_tag(id, len));
}

size_t fleet_prefix_producer(char *out, const char *producer)
{
    return fleet_prefix(out, producer, strlen(producer));
}

size_t fleet_prefix_pool(char *out, const char *pool)
{
    return fleet_prefix(out, pool, strlen(pool));
}

size_t fleet_prefix_retries(char *out)
{
    return fleet_prefix(out, "retries", 7);
}

/* out = the prefix pre (n bytes, already in out) + a + b + c; its length,
 * cut at FLEET_KEY_MAX - 1 */
static size_t after(char *out, size_t n, const char *a, const char *b, const char *c)
{
    int m = snprintf(out + n, FLEET_KEY_MAX - n, "%s%s%s", a, b, c ? c : "");
    if (m < 0)
        return 0;
    n += (size_t)m;
    return n < FLEET_KEY_MAX ? n : FLEET_KEY_MAX - 1;
}

static size_t pool_key(char *out, const char *pool, const char *suffix)
{
    return after(out, fleet_prefix_pool(out, pool), "pool:", pool, suffix);
}

static size_t task_key(char *out, const char *kind, const char *id, const char *suffix)
{
    return after(out, fleet_prefix_id(out, id), kind, id, suffix);
}

size_t fleet_key_pool(char *out, const char *pool)
{
    return pool_key(out, pool, NULL);
}

size_t fleet_key_stats(char *out, const char *pool)
{
    return pool_key(out, pool, ":stats");
}

size_t fleet_key_pstats(char *out, const char *pool, const char *producer)
{
    if (!tagged_layout)
        return fleet_key_stats(out, pool);
    return after(out, fleet_prefix_producer(out, producer), "stats:", pool, NULL);
}

size_t fleet_key_producers(char *out, const char *pool)
{
    return pool_key(out, pool, ":producers");
}

size_t fleet_key_failures(char *out, const char *pool, const char *producer)
{
    if (!tagged_layout)
        return pool_key(out, pool, ":failures");
    return after(out, fleet_prefix_producer(out, producer), "pool:", pool, ":failures");
}

size_t fleet_key_retries(char *out, int is_signed)
{
    return after(out, fleet_prefix_retries(out), "retries", is_signed ? ":signed" : "", NULL);
}

size_t fleet_key_active(char *out, const char *pool)
{
    return pool_key(out, pool, ":active");
}

size_t fleet_key_task(char *out, const char *id)
{
    return task_key(out, "task:", id, NULL);
}

size_t fleet_key_task_info(char *out, const char *id)
{
    return task_key(out, "task:", id, ":info");
}

size_t fleet_key_worker(char *out, const char *worker)
{
    return after(out, fleet_prefix(out, "workers", 7), "worker:", worker, NULL);
}

size_t fleet_key_workers(char *out)
{
    return after(out, fleet_prefix(out, "workers", 7), "workers", "", NULL);
}

size_t fleet_key_task_queued(char *out, const char *id)
{
    return task_key(out, "task:", id, ":q");
}

size_t fleet_key_task_wg(char *out, const char *id)
{
    return task_key(out, "task:", id, ":w");
}

size_t fleet_key_notify(char *out, const char *producer)
{
    return after(out, fleet_prefix_producer(out, producer), "done:", producer, NULL);
}

size_t fleet_key_delivery(char *out, const char *id)
{
    return task_key(out, "delivery:", id, NULL);
}

size_t fleet_key_dead(char *out, const char *pool)
{
    return pool_key(out, pool, ":dead");
}

size_t fleet_key_dead_env(char *out, const char *pool)
{
    return pool_key(out, pool, ":dead:env");
}

size_t fleet_key_task_in(char *out, const char *id)
{
    return task_key(out, "task:", id, ":in");
}

size_t fleet_key_task_out(char *out, const char *id)
{
    return task_key(out, "task:", id, ":out");
}

size_t fleet_key_outbox(char *out, const char *id)
{
    return task_key(out, "task:", id, ":x");
}

int fleet_task_keys(const char *id, unsigned which, char out[][FLEET_KEY_MAX], size_t *len)
{
    int n = 0;
    len[n] = fleet_key_task(out[n], id);
    n++;
    if (which & FLEET_TK_Q) {
        len[n] = fleet_key_task_queued(out[n], id);
        n++;
    }
    if (which & FLEET_TK_W) {
        len[n] = fleet_key_task_wg(out[n], id);
        n++;
    }
    if (which & FLEET_TK_IN) {
        len[n] = fleet_key_task_in(out[n], id);
        n++;
    }
    if (which & FLEET_TK_OUT) {
        len[n] = fleet_key_task_out(out[n], id);
        n++;
    }
    return n;
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
    const char *c1 = memrchr(id, ':', len);
    if (!c1)
        return -1;
    const char *last = c1 + 1, *end = id + len, *digits = NULL;
    size_t dlen = 0;
    if (all_of(last, (size_t)(end - last), 2)) {
        const char *c2 = memrchr(id, ':', (size_t)(c1 - id));
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

/* The seen bitmap's key of producer part p (plen bytes), shard shard into
 * out (FLEET_KEY_MAX bytes): the slot's prefix, "seen:", p, ':', shard; its
 * length, or 0 when it does not fit. */
static size_t seen_key(char *out, const char *p, size_t plen, uint64_t shard)
{
    char pfx[FLEET_KEY_MAX];
    size_t pl = fleet_prefix(pfx, p, plen);
    if (pl == 0 || pl + 5 >= FLEET_KEY_MAX)
        return 0;
    memcpy(pfx + pl, "seen:", 5);
    return bitmap_key(out, pfx, pl + 5, p, plen, shard);
}

/* The submitted bitmap's key of the same task, from its seen key (len
 * bytes): "seen:" becomes "sub:" */
static size_t sub_key(char *out, const char *seen, size_t len, size_t pre)
{
    memcpy(out, seen, pre);
    memcpy(out + pre, "sub:", 4);
    memcpy(out + pre + 4, seen + pre + 5, len - pre - 5 + 1);
    return len - 1;
}

int fleet_bit_of(const char *id, size_t len, fleet_bit *b)
{
    size_t plen;
    uint64_t n;
    if (parse_id(id, len, &plen, &n) != 0)
        return -1;
    b->seen_len = seen_key(b->seen, id, plen, n / FLEET_SEEN_SHARD);
    b->sub_len =
        b->seen_len ? sub_key(b->sub, b->seen, b->seen_len, tagged_layout ? plen + 11 : 8) : 0;
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
    char k[FLEET_KEY_MAX];
    size_t kl = seen_key(k, id, plen, n / FLEET_SEEN_SHARD);
    if (kl == 0)
        return 0;
    if (i > 0 && strcmp(s->seen[i - 1], k) == 0) {
        /* the same bitmap as the task before's */
        seen = s->seen[i - 1];
        sub = s->sub[i - 1];
    } else {
        char q[FLEET_KEY_MAX];
        size_t ql = sub_key(q, k, kl, tagged_layout ? plen + 11 : 8);
        seen = own_key(s, k, kl);
        sub = seen ? own_key(s, q, ql) : NULL;
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
