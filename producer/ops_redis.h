/* ops_redis.h: Redis for the operations commands (`mutirao pools|stats|
 * task|workers|top|dashboard`, producer/cli_ops.c; `mutirao dlq`,
 * producer/dlq.c): a client on a private libuv loop, each command or
 * script driven on that loop until its reply is in, the reply copied out.
 * For command-line tools with nothing else to run meanwhile; not for
 * several threads at once. The callers word their own messages from
 * ops_redis_err. */
#ifndef MUTIRAO_OPS_REDIS_H
#define MUTIRAO_OPS_REDIS_H

#include <stddef.h>

#include <uv.h>

#include "config.h"
#include "redis_uv.h"
#include "redis_value.h"

/* A reply, copied out of its callback (redis_value.h); the caller owns it
 * (ops_reply_free). */
typedef redis_value ops_reply;

void ops_reply_free(ops_reply *v);
/* A hash's (HGETALL's) field f, or NULL; as a number, 0 when absent. */
const char *ops_reply_field(const ops_reply *h, const char *f);
long long ops_reply_field_ll(const ops_reply *h, const char *f);

/* The client and its loop (which a Kafka producer may share: dlq.c). */
typedef struct ops_redis {
    uv_loop_t loop;
    redis_uv *r;
    const config *cfg; /* the caller's: must outlive the client */
    char url[512];     /* redis.url redacted, for messages */
} ops_redis;

/* Why a command failed. */
typedef struct ops_redis_err {
    int status;    /* the redis_uv code; -1 for an error reply or out of memory */
    int unsent;    /* 1: refused before it was sent (status: the call's code) */
    char msg[400]; /* "redis: ..." (the server's error, or an unsent command's
                    * code), the client's reason, or "out of memory" */
} ops_redis_err;

/* Opens the client of cfg's redis.url (with its TLS and password settings;
 * the key layout follows the URL: fleet_keys_use_url) with these timeouts.
 * 0, or -1 with the reason in why (n bytes) and nothing left open. */
int ops_redis_open(ops_redis *c, const config *cfg, unsigned connect_timeout_ms,
                   unsigned op_timeout_ms, char *why, size_t n);
/* Closes the client and runs its loop until every handle on it closed
 * (the caller closes the others first). */
void ops_redis_close(ops_redis *c);

/* Runs c's loop until *done is set. */
void ops_redis_wait(ops_redis *c, const int *done);

/* Runs one command (lens: the arguments' lengths, NULL for C strings):
 * 0 with *out (ops_reply_free it), or -1 with *e (*out is empty). */
int ops_redis_run(ops_redis *c, ops_reply *out, int argc, const char *const *argv,
                  const size_t *lens, ops_redis_err *e);
/* Runs script (redis_uv_script's id) with key as KEYS[1] and at most 7
 * ARGV; as ops_redis_run. */
int ops_redis_eval(ops_redis *c, ops_reply *out, int script, const char *key, int argc,
                   const char *const *argv, ops_redis_err *e);

#endif
