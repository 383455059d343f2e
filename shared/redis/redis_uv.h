/*
** redis_uv.h: an asynchronous Redis client on a libuv loop (hiredis's
** protocol code on a libuv stream; TLS for rediss:// with OpenSSL), with
** reconnection, per-command timeouts and Lua scripts run by SHA1.
**
** One client belongs to one uv_loop_t and is used from that loop's thread
** only (one loop per VM thread). Nothing here blocks the loop: host names
** are resolved on libuv's thread pool, connects are non-blocking, and every
** command has a deadline.
**
** Model. A client keeps at most one connection. Commands issued while it is
** connected are written at once and pipelined (those issued while a write
** is in flight go out together when it ends). Commands issued while it is disconnected wait in a
** queue and are sent, in order, once it is connected again. Every command
** has the client's op timeout, counted from the call (libuv's cached loop
** time, as for uv timers):
**   - still queued when it expires:   REDIS_UV_EUNREACHABLE,
**       "redis: unreachable at HOST:PORT after N ms (LAST ERROR)";
**   - sent, no reply when it expires: REDIS_UV_ETIMEDOUT,
**       "redis: timed out after N ms at HOST:PORT"; the connection is then
**       treated as stalled: it is dropped and re-established.
** When a connection drops, every command sent on it and not yet answered
** fails with REDIS_UV_ECONNLOST, "redis: connection lost (REASON)"; the client
** reconnects with backoff (backoff_min_ms doubling up to backoff_max_ms) and
** sends AUTH and SELECT, when the URL gives them, before anything else.
** A command that failed with a timeout or a lost connection may still have
** been executed by the server.
**
** Callbacks. Each accepted command's callback fires exactly once, from the
** loop, never from inside the call that issued it. If a function that takes
** a callback returns an error, the callback never fires (libuv's rule).
** status == 0: `reply` is the server's reply, of any type, including
** REDIS_REPLY_ERROR (callers check the type), and `err` is NULL.
** status < 0: `reply` is NULL and `err` is a message for humans.
** Ownership: `reply` and `err` belong to the client and live only during the
** callback: copy what you keep.
**
** Closing. redis_uv_close() fails every pending command with REDIS_UV_ECLOSED
** ("redis: closed"), each callback once, possibly after close returns but
** before the close callback; then frees the client after libuv's close
** callbacks. Commands issued after close return REDIS_UV_ECLOSED. A client
** may be closed from inside any of its callbacks. An open client keeps its
** loop alive (a socket or a reconnect timer is always active), as an open
** uv_tcp_t does.
**
** Not supported: pub/sub, MONITOR and CLIENT REPLY (they break the one reply
** per command rule): such commands return REDIS_UV_ENOTSUP. Blocking
** commands (BLPOP...) longer than the op timeout need a client of their own
** with a larger op_timeout_ms.
*/
#ifndef MUTIRAO_REDIS_UV_H
#define MUTIRAO_REDIS_UV_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: negative ints, one table. XX(name, value, message): base
 * codes (MERR_*) and the client's own, -401... (errors.h). */
#define REDIS_UV_ERRNO_MAP(XX)                                                                     \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(EINVAL, MERR_EINVAL, "invalid argument")                                                    \
    XX(EURL, -401, "malformed Redis URL")                                                          \
    XX(ECLOSED, MERR_ECLOSED, "client closed")                                                     \
    XX(ECONNLOST, -402, "connection lost")                                                         \
    XX(ETIMEDOUT, MERR_ETIMEDOUT, "command timed out")                                             \
    XX(EUNREACHABLE, -403, "server unreachable")                                                   \
    XX(ENOSCRIPT, -404, "unknown script id")                                                       \
    XX(ENOTSUP, MERR_ENOTSUP, "command not supported by this client")                              \
    XX(ETLS, -405, "TLS settings refused (CA, certificate or key file)")                           \
    XX(EREPLY, -406, "malformed reply from the server")

MERR_ENUM(redis_uv_errno, REDIS_UV, REDIS_UV_ERRNO_MAP)

/* Static description of an error code ("unknown error" for others). */
const char *redis_uv_strerror(int err);
/* Static name of an error code, e.g. "ETIMEDOUT" ("OK" for 0, "UNKNOWN" for others). */
const char *redis_uv_errname(int err);

typedef struct redis_uv redis_uv;

/* Tuning; zero fields take the defaults shown. */
typedef struct redis_uv_options {
    unsigned op_timeout_ms;      /* 5000: deadline of every command, from the call */
    unsigned connect_timeout_ms; /* 2000: one attempt: resolve + connect + AUTH/SELECT */
    unsigned backoff_min_ms;     /* 50: first delay before reconnecting */
    unsigned backoff_max_ms;     /* 2000: the delay doubles up to this */
    int weak;                    /* 0: the client's handles keep the loop alive; 1: they do not
                                  * (its user keeps the loop running while it waits for replies) */
    /* Security. rediss:// (TLS) verifies the server's certificate against
     * tls_ca_file (NULL or "": the system's CA store) and its host name or
     * IP address; tls_cert_file + tls_key_file: a client certificate (PEM).
     * password (NULL or ""): AUTH with it (and the URL's user), instead of
     * the URL's password. The strings are read during redis_uv_open only. */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *password;
    char *errbuf; /* NULL, or where redis_uv_open explains a failure */
    size_t errlen;
} redis_uv_options;

/* Counters since the client was opened. */
typedef struct redis_uv_stats {
    uint64_t sent;      /* commands written to a connection (a NOSCRIPT resend counts) */
    uint64_t replies;   /* callbacks fired with a reply (status 0) */
    uint64_t failures;  /* callbacks fired with status < 0 */
    uint64_t timeouts;  /* ETIMEDOUT + EUNREACHABLE among the failures */
    uint64_t connects;  /* connections that became ready (AUTH/SELECT done) */
    uint64_t drops;     /* ready connections lost or dropped */
    uint64_t noscript;  /* EVALSHA answered NOSCRIPT and resent as EVAL */
    uint64_t moved;     /* cluster mode: MOVED replies followed */
    uint64_t asked;     /* cluster mode: ASK replies followed */
    uint64_t refreshes; /* cluster mode: CLUSTER SLOTS asked */
    size_t pending;     /* commands whose callback is still due */
    size_t queued;      /* of those, waiting for a connection */
    int connected;      /* 1 when a connection is ready now */
} redis_uv_stats;

/* Reply callback; see "Callbacks" above. `reply` and `err` live only during
** the call. */
typedef void (*redis_uv_cb)(redis_uv *cli, int status, const redisReply *reply, const char *err,
                            void *ud);
/* Runs once the client's memory is freed. */
typedef void (*redis_uv_close_cb)(void *ud);

/*
** Creates a client on `loop` and starts connecting. url:
**   redis://[[user]:password@]host[:port][/db]   (port 6379; host may be [v6])
**   rediss://...                                 (the same over TLS)
**   unix://[[user]:password@]/path/to/socket
**   redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0]
**   rediss+cluster://...                         (Redis Cluster; the same over TLS)
** A URL may name a user without a password ("redis://user@host") only when
** opts->password gives it.
** Cluster mode (redis_cluster.h, redis_slot.h): the hosts are seeds; the
** client asks one for CLUSTER SLOTS and keeps a plain client (all of the
** above) per master. Each command goes to the master of the slot of its
** first key (an eval's first KEYS element; a command without a key: the
** first node); MOVED updates the map and resends, ASK resends once after
** ASKING; at most REDIS_CLUSTER_HOPS (5) resends. The deadline, the
** reconnection and the queue are each node's, so a redirected command's
** deadline starts again at each hop. Every key of a command or script must
** hash to one slot (hash tags) or the server answers CROSSSLOT. Scripts
** registered here are registered with each node's client when first used
** there. redis_uv_is_connected: every master serving slots is connected.
** The password may be %-encoded. `opts` may be NULL. On success *out is the
** client, which the caller owns until redis_uv_close(); on error (EINVAL,
** EURL, ENOMEM, ETLS: a TLS file refused, opts->errbuf says which) nothing
** is created. A wrong password or a server certificate that does not verify
** fails the connection attempt (then the commands, at their deadline, as
** for an unreachable server, with that reason: "AUTH failed: WRONGPASS ...",
** "TLS handshake failed: certificate verify failed: ..."). A server that is down is not an error:
** commands queue and the client keeps trying.
*/
int redis_uv_open(uv_loop_t *loop, const char *url, const redis_uv_options *opts, redis_uv **out);

/* A weak client (options.weak) keeps its loop alive from now on, like a
 * plain one: for a last command whose reply must come before the loop ends
 * (e.g. close once Redis answered). */
void redis_uv_hold(redis_uv *cli);

/* Closes the client; see "Closing" above. `cb` (may be NULL) runs once
** everything is freed. Calling it twice does nothing. */
void redis_uv_close(redis_uv *cli, redis_uv_close_cb cb, void *ud);

/*
** Issues a command formatted as hiredis does ("SET %s %b", key, val, vlen):
** %s is a C string, %b a binary-safe (pointer, size_t) pair. `cb` may be
** NULL (the reply is dropped). The client copies the command: arguments may
** be freed when the call returns. 0 or a negative error (EINVAL, ENOMEM,
** ECLOSED, ENOTSUP); on error `cb` never fires.
*/
int redis_uv_command(redis_uv *cli, redis_uv_cb cb, void *ud, const char *fmt, ...);
int redis_uv_commandv(redis_uv *cli, redis_uv_cb cb, void *ud, const char *fmt, va_list ap);
/* The same from an argument vector, binary-safe. argvlen may be NULL
** (then each argv[i] is a C string). */
int redis_uv_command_argv(redis_uv *cli, redis_uv_cb cb, void *ud, int argc,
                          const char *const *argv, const size_t *argvlen);

/*
** Registers a Lua script with the client (copied) and returns its id (>= 0)
** or a negative error (EINVAL, ENOMEM, ECLOSED). Registering the same source
** twice returns the same id. The SHA1 is computed locally.
*/
int redis_uv_script(redis_uv *cli, const char *src, size_t len);
/* The script's SHA1 as 40 lowercase hex digits, or NULL for a bad id.
** Owned by the client. */
const char *redis_uv_script_sha(const redis_uv *cli, int script_id);

/*
** Runs a registered script: argv[0..nkeys) are its KEYS, the rest its ARGV
** (binary-safe; argvlen may be NULL for C strings). Sent as EVALSHA; the
** first use on each connection is sent as EVAL so the server caches the
** script in order with the commands around it; a NOSCRIPT answer (SCRIPT
** FLUSH by someone else) is resent once as EVAL, transparently, but then
** runs after the commands pipelined behind it. The same deadline applies.
** Errors as for redis_uv_command, plus ENOSCRIPT for an unknown id.
*/
int redis_uv_eval(redis_uv *cli, redis_uv_cb cb, void *ud, int script_id, int nkeys, int argc,
                  const char *const *argv, const size_t *argvlen);

/* 1 when a connection is ready, else 0. */
int redis_uv_is_connected(const redis_uv *cli);
/* "HOST:PORT" or the socket path. Owned by the client. */
const char *redis_uv_endpoint(const redis_uv *cli);
/* Fills *out with the client's counters. */
void redis_uv_get_stats(const redis_uv *cli, redis_uv_stats *out);

#ifdef __cplusplus
}
#endif

#endif
