/*
** redis_slot.h: what a Redis Cluster client computes and reads besides the
** protocol itself: the hash slot of a key, the key a command is routed by,
** the MOVED and ASK redirects of error replies, and the slot map of a
** CLUSTER SLOTS reply. Pure functions (no I/O), used by the cluster mode
** of the async client (redis_uv.h) and by tests.
**
** Slots. A key's slot is CRC16 (XMODEM: polynomial 0x1021, initial value
** 0, no reflection) of its hash tag, mod 16384. The hash tag is the bytes
** between the first '{' of the key and the first '}' after it, when they
** are not empty; otherwise the whole key. So "mutirao:pool:{p1}:stats" and
** "mutirao:pool:{p1}" share a slot, "{}x" hashes "{}x" whole, "a{{b}}"
** hashes "{b" and "a{b}{c}" hashes "b" (Redis's own rule, cluster.c
** keyHashSlot).
**
** Replies from the network are untrusted: every parser here checks types,
** ranges and lengths and returns an error for anything else, never
** aborting and never reading past what it was given.
*/
#ifndef MUTIRAO_REDIS_SLOT_H
#define MUTIRAO_REDIS_SLOT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REDIS_SLOTS 16384
#define REDIS_SLOT_HOST_MAX 256   /* host names longer than this are refused */
#define REDIS_SLOT_NODES_MAX 1000 /* a map naming more nodes is refused */

/* CRC16/XMODEM of buf: the checksum Redis Cluster hashes keys with
 * ("123456789" -> 0x31C3). */
uint16_t redis_slot_crc16(const char *buf, size_t len);

/* The hash slot (0..16383) of a key of len bytes (binary-safe; key may be
 * NULL when len is 0). */
unsigned redis_slot_of(const char *key, size_t len);

/*
** The argv index of the key a command is routed by: the first key of the
** command, or 0 when it has none (PING, INFO, CLUSTER..., SCRIPT...,
** EVAL/EVALSHA/FCALL with 0 keys, a malformed numkeys) or is a command
** about the connection (AUTH, SELECT, ASKING...). Knows the commands whose
** first key is not argv[1]: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL,
** FCALL_RO (argv[3] when numkeys > 0), BLMPOP, BZMPOP (argv[3]), LMPOP,
** ZMPOP (argv[2]), OBJECT, MEMORY USAGE (argv[2]), XREAD, XREADGROUP (the
** first key after STREAMS). Names are case-insensitive. argvlen may be
** NULL (C strings). Every other command with an argument is routed by
** argv[1]. A negative or absurd argc gives 0.
*/
int redis_slot_cmd_key(int argc, const char *const *argv, const size_t *argvlen);

/* A MOVED or ASK redirect read from an error reply. */
typedef struct redis_redirect {
    int ask;       /* 1: ASK (this one command, after ASKING), 0: MOVED (the slot moved) */
    unsigned slot; /* 0..16383 */
    int port;      /* 1..65535 */
    char host[REDIS_SLOT_HOST_MAX + 1]; /* "" when the server gave none ("MOVED 1 :6380":
                                         * the host of the node that answered) */
} redis_redirect;

/*
** Reads an error reply's text (len bytes, without the leading '-'), e.g.
** "MOVED 3999 127.0.0.1:6381" or "ASK 3999 ::1:6381" (an IPv6 address is
** not bracketed: the port follows the last ':'). Returns 1 and fills *out
** for a well-formed redirect; 0 when the text is another error (it does not
** start with "MOVED " or "ASK "); REDIS_SLOT_EREPLY for a MOVED or ASK whose
** slot, host or port is malformed or out of range (*out is then unchanged
** but for garbage in its fields).
*/
int redis_redirect_parse(const char *s, size_t len, redis_redirect *out);

/* A node of a slot map. */
typedef struct redis_slot_node {
    char host[REDIS_SLOT_HOST_MAX + 1]; /* "" or "?": the server does not know its endpoint
                                         * (use the host the map was read from) */
    int port;
} redis_slot_node;

/* Which master serves each slot. */
typedef struct redis_slot_map {
    uint16_t owner[REDIS_SLOTS]; /* node index + 1; 0: no node serves the slot */
    redis_slot_node *nodes;      /* distinct (host, port), malloc'd */
    size_t nnodes;
} redis_slot_map;

/* Error codes (negative ints; the values are the async client's table's,
 * redis_uv.h: -2 out of memory, -406 malformed reply). */
#define REDIS_SLOT_ENOMEM (-2)
#define REDIS_SLOT_EREPLY (-406)

/*
** Builds *map from a CLUSTER SLOTS reply: an array of ranges [start, end,
** master, replica...], each node an array [host, port, ...]. Replicas are
** ignored. Returns 0; REDIS_SLOT_EREPLY when the reply is not of that form
** (wrong types, start > end, a slot over 16383, a port out of range, a host
** over REDIS_SLOT_HOST_MAX bytes or holding a NUL, two ranges claiming the
** same slot, more than REDIS_SLOT_NODES_MAX nodes); REDIS_SLOT_ENOMEM. On
** error *map is left empty (no nodes, no owners). Slots no range names stay
** 0 (a cluster that does not cover every slot is not an error here:
** redis_slot_map_covered says whether it does). Free with
** redis_slot_map_free.
*/
int redis_slot_map_parse(const redisReply *reply, redis_slot_map *map);

/* The number of slots with an owner (16384: the cluster serves every slot). */
unsigned redis_slot_map_covered(const redis_slot_map *map);

/* The node serving slot, or NULL (no owner, or slot out of range). */
const redis_slot_node *redis_slot_map_node(const redis_slot_map *map, unsigned slot);

/* Frees the map's nodes and empties it; safe on an empty or zeroed map. */
void redis_slot_map_free(redis_slot_map *map);

#ifdef __cplusplus
}
#endif

#endif
