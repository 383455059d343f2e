/* redis_slot.c: hash slots, routing keys, redirects and slot maps of Redis
 * Cluster (see redis_slot.h). */
#include "redis_slot.h"

#include <stdlib.h>
#include <string.h>

/* CRC16/XMODEM, bit by bit: keys are short, and a table would be 512 bytes
 * of constants to get right by hand. */
uint16_t redis_slot_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned redis_slot_of(const char *key, size_t len)
{
    if (key == NULL || len == 0)
        return redis_slot_crc16("", 0) & (REDIS_SLOTS - 1);
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        size_t from = (size_t)(open - key) + 1;
        const char *close = memchr(key + from, '}', len - from);
        if (close != NULL && close > key + from)
            return redis_slot_crc16(key + from, (size_t)(close - (key + from))) & (REDIS_SLOTS - 1);
    }
    return redis_slot_crc16(key, len) & (REDIS_SLOTS - 1);
}

/* ---- routing key -------------------------------------------------------- */

static size_t arg_len(const char *const *argv, const size_t *argvlen, int i)
{
    return argvlen != NULL ? argvlen[i] : strlen(argv[i]);
}

/* argv[i] equals word (ASCII, case-insensitive). */
static int arg_is(const char *const *argv, const size_t *argvlen, int i, const char *word)
{
    size_t n = arg_len(argv, argvlen, i), wl = strlen(word);
    if (n != wl)
        return 0;
    for (size_t k = 0; k < n; k++) {
        char c = argv[i][k];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c != word[k])
            return 0;
    }
    return 1;
}

/* argv[i] as a count of keys (a small decimal), else -1. */
static long arg_count(const char *const *argv, const size_t *argvlen, int i)
{
    size_t n = arg_len(argv, argvlen, i);
    long v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t k = 0; k < n; k++) {
        if (argv[i][k] < '0' || argv[i][k] > '9')
            return -1;
        v = v * 10 + (argv[i][k] - '0');
    }
    return v;
}

/* The key at index at when the command holds count >= 1 keys there. */
static int counted_key(int argc, const char *const *argv, const size_t *argvlen, int count_at,
                       int at)
{
    if (argc <= at)
        return 0;
    long n = arg_count(argv, argvlen, count_at);
    return n >= 1 && n <= argc - at ? at : 0;
}

int redis_slot_cmd_key(int argc, const char *const *argv, const size_t *argvlen)
{
    static const char *const keyless[] = {
        "PING",         "ECHO",    "INFO",      "CLUSTER",    "SCRIPT",    "AUTH",    "SELECT",
        "HELLO",        "CLIENT",  "ASKING",    "READONLY",   "READWRITE", "TIME",    "DBSIZE",
        "FLUSHALL",     "FLUSHDB", "COMMAND",   "CONFIG",     "MULTI",     "EXEC",    "DISCARD",
        "WAIT",         "QUIT",    "SHUTDOWN",  "DEBUG",      "KEYS",      "SCAN",    "RANDOMKEY",
        "FUNCTION",     "LATENCY", "SLOWLOG",   "ROLE",       "LASTSAVE",  "SAVE",    "BGSAVE",
        "BGREWRITEAOF", "MONITOR", "SUBSCRIBE", "PSUBSCRIBE", "PUBLISH",   "UNWATCH", "ACL",
        "MODULE",       "RESET",   "SWAPDB",    "FAILOVER",   "REPLICAOF", "SLAVEOF",
    };
    if (argv == NULL || argc < 2 || argc > 1000000 || argv[0] == NULL)
        return 0;
    for (int i = 0; i < argc; i++)
        if (argv[i] == NULL)
            return 0;
    for (size_t i = 0; i < sizeof keyless / sizeof keyless[0]; i++)
        if (arg_is(argv, argvlen, 0, keyless[i]))
            return 0;
    if (arg_is(argv, argvlen, 0, "EVAL") || arg_is(argv, argvlen, 0, "EVALSHA") ||
        arg_is(argv, argvlen, 0, "EVAL_RO") || arg_is(argv, argvlen, 0, "EVALSHA_RO") ||
        arg_is(argv, argvlen, 0, "FCALL") || arg_is(argv, argvlen, 0, "FCALL_RO"))
        return argc > 2 ? counted_key(argc, argv, argvlen, 2, 3) : 0;
    if (arg_is(argv, argvlen, 0, "BLMPOP") || arg_is(argv, argvlen, 0, "BZMPOP"))
        return argc > 2 ? counted_key(argc, argv, argvlen, 2, 3) : 0;
    if (arg_is(argv, argvlen, 0, "LMPOP") || arg_is(argv, argvlen, 0, "ZMPOP") ||
        arg_is(argv, argvlen, 0, "ZUNION") || arg_is(argv, argvlen, 0, "ZINTER") ||
        arg_is(argv, argvlen, 0, "ZDIFF") || arg_is(argv, argvlen, 0, "SINTERCARD") ||
        arg_is(argv, argvlen, 0, "ZINTERCARD"))
        return counted_key(argc, argv, argvlen, 1, 2);
    if (arg_is(argv, argvlen, 0, "OBJECT") || arg_is(argv, argvlen, 0, "MEMORY"))
        return argc > 2 ? 2 : 0;
    if (arg_is(argv, argvlen, 0, "XREAD") || arg_is(argv, argvlen, 0, "XREADGROUP")) {
        for (int i = 1; i + 1 < argc; i++)
            if (arg_is(argv, argvlen, i, "STREAMS"))
                return i + 1;
        return 0;
    }
    return 1;
}

/* ---- redirects ---------------------------------------------------------- */

/* A decimal in s[0..n) no greater than max, else -1. */
static long parse_num(const char *s, size_t n, long max)
{
    long v = 0;
    if (n == 0 || n > 6)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

int redis_redirect_parse(const char *s, size_t len, redis_redirect *out)
{
    size_t at;
    if (s == NULL || out == NULL)
        return 0;
    if (len >= 6 && memcmp(s, "MOVED ", 6) == 0) {
        out->ask = 0;
        at = 6;
    } else if (len >= 4 && memcmp(s, "ASK ", 4) == 0) {
        out->ask = 1;
        at = 4;
    } else {
        return 0;
    }
    const char *sp = memchr(s + at, ' ', len - at);
    if (sp == NULL)
        return REDIS_SLOT_EREPLY;
    long slot = parse_num(s + at, (size_t)(sp - (s + at)), REDIS_SLOTS - 1);
    if (slot < 0)
        return REDIS_SLOT_EREPLY;
    const char *ep = sp + 1, *end = s + len;
    /* the endpoint ends at the first space or the end; the port follows its last ':' */
    const char *eend = memchr(ep, ' ', (size_t)(end - ep));
    if (eend == NULL)
        eend = end;
    const char *colon = NULL;
    for (const char *p = ep; p < eend; p++)
        if (*p == ':')
            colon = p;
    if (colon == NULL)
        return REDIS_SLOT_EREPLY;
    long port = parse_num(colon + 1, (size_t)(eend - colon - 1), 65535);
    size_t hl = (size_t)(colon - ep);
    if (port < 1 || hl > REDIS_SLOT_HOST_MAX || memchr(ep, '\0', hl) != NULL)
        return REDIS_SLOT_EREPLY;
    out->slot = (unsigned)slot;
    out->port = (int)port;
    memcpy(out->host, ep, hl);
    out->host[hl] = '\0';
    return 1;
}

/* ---- slot maps ---------------------------------------------------------- */

/* The index + 1 of (host, port) in map, adding it when new; 0 on error. */
static int node_index(redis_slot_map *map, const char *host, size_t hl, int port, size_t *cap,
                      int *rc)
{
    for (size_t i = 0; i < map->nnodes; i++)
        if (map->nodes[i].port == port && strlen(map->nodes[i].host) == hl &&
            memcmp(map->nodes[i].host, host, hl) == 0)
            return (int)i + 1;
    if (map->nnodes >= REDIS_SLOT_NODES_MAX) {
        *rc = REDIS_SLOT_EREPLY;
        return 0;
    }
    if (map->nnodes == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        redis_slot_node *nn = realloc(map->nodes, nc * sizeof *nn);
        if (nn == NULL) {
            *rc = REDIS_SLOT_ENOMEM;
            return 0;
        }
        map->nodes = nn;
        *cap = nc;
    }
    redis_slot_node *n = &map->nodes[map->nnodes++];
    memcpy(n->host, host, hl);
    n->host[hl] = '\0';
    n->port = port;
    return (int)map->nnodes;
}

/* An integer element in [0, max], else -1. */
static long int_elem(const redisReply *r, long max)
{
    if (r == NULL || r->type != REDIS_REPLY_INTEGER || r->integer < 0 || r->integer > max)
        return -1;
    return (long)r->integer;
}

int redis_slot_map_parse(const redisReply *reply, redis_slot_map *map)
{
    size_t cap = 0;
    int rc = 0;
    if (map == NULL)
        return REDIS_SLOT_EREPLY;
    memset(map, 0, sizeof *map);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || (reply->elements && !reply->element))
        return REDIS_SLOT_EREPLY;
    for (size_t i = 0; i < reply->elements && rc == 0; i++) {
        const redisReply *r = reply->element[i];
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element == NULL) {
            rc = REDIS_SLOT_EREPLY;
            break;
        }
        long lo = int_elem(r->element[0], REDIS_SLOTS - 1);
        long hi = int_elem(r->element[1], REDIS_SLOTS - 1);
        const redisReply *m = r->element[2];
        if (lo < 0 || hi < lo || m == NULL || m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
            m->element == NULL || m->element[0] == NULL ||
            (m->element[0]->type != REDIS_REPLY_STRING && m->element[0]->type != REDIS_REPLY_NIL)) {
            rc = REDIS_SLOT_EREPLY;
            break;
        }
        long port = int_elem(m->element[1], 65535);
        const char *host = m->element[0]->type == REDIS_REPLY_STRING ? m->element[0]->str : "";
        size_t hl = m->element[0]->type == REDIS_REPLY_STRING ? m->element[0]->len : 0;
        if (port < 1 || hl > REDIS_SLOT_HOST_MAX || (hl > 0 && host == NULL) ||
            (hl > 0 && memchr(host, '\0', hl) != NULL)) {
            rc = REDIS_SLOT_EREPLY;
            break;
        }
        int idx = node_index(map, host, hl, (int)port, &cap, &rc);
        if (idx == 0)
            break;
        for (long s = lo; s <= hi; s++) {
            if (map->owner[s] != 0) {
                rc = REDIS_SLOT_EREPLY;
                break;
            }
            map->owner[s] = (uint16_t)idx;
        }
    }
    if (rc != 0)
        redis_slot_map_free(map);
    return rc;
}

unsigned redis_slot_map_covered(const redis_slot_map *map)
{
    unsigned n = 0;
    if (map == NULL)
        return 0;
    for (unsigned s = 0; s < REDIS_SLOTS; s++)
        n += map->owner[s] != 0;
    return n;
}

const redis_slot_node *redis_slot_map_node(const redis_slot_map *map, unsigned slot)
{
    if (map == NULL || slot >= REDIS_SLOTS || map->owner[slot] == 0 ||
        map->owner[slot] > map->nnodes)
        return NULL;
    return &map->nodes[map->owner[slot] - 1];
}

void redis_slot_map_free(redis_slot_map *map)
{
    if (map == NULL)
        return;
    free(map->nodes);
    memset(map, 0, sizeof *map);
}
