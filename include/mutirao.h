/* mutirao.h: the producer library (libmutirao) for services in any language
 * with a C FFI: submit tasks written in Lua to worker pools, await their
 * results, read pool statistics. No Lua is needed in the caller.
 *
 * Values cross the API as plain msgpack: a task's arguments are one msgpack
 * array (nil, bool, int, float, str, bin, array, map), its results come back
 * as one msgpack array of the values the task returned. The backend is chosen
 * by the configuration: the embedded backend runs pools on VM threads of this
 * process; the fleet backend (`fleet = on`) publishes them to Kafka for
 * mutirao-worker processes and reads results from Redis (the fleet
 * configuration is process-wide: the latest client opened sets it).
 *
 * Every call is thread-safe on one handle, except mutirao_close (see there).
 * Functions return 0 or a negative MUTIRAO_E* code; mutirao_last_error()
 * describes the calling thread's latest failure in words. */
#ifndef MUTIRAO_H
#define MUTIRAO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define MUTIRAO_API
#elif defined(__GNUC__)
#define MUTIRAO_API __attribute__((visibility("default")))
#else
#define MUTIRAO_API
#endif

#define MUTIRAO_VERSION_MAJOR 0
#define MUTIRAO_VERSION_MINOR 1
#define MUTIRAO_VERSION_PATCH 0
/* The version as one number, e.g. 100 for 0.1.0. */
#define MUTIRAO_VERSION_NUM                                                                        \
    (MUTIRAO_VERSION_MAJOR * 10000 + MUTIRAO_VERSION_MINOR * 100 + MUTIRAO_VERSION_PATCH)

/* Error codes: negative ints, one table. XX(name, value, message). The
 * values are fixed: a code means the same in every release. */
#define MUTIRAO_ERRNO_MAP(XX)                                                                      \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(ECONFIG, -3, "invalid configuration")                                                       \
    XX(ENOTSUP, -4, "not supported")                                                               \
    XX(ECLOSED, -5, "the client is closed")                                                        \
    XX(ENOPOOL, -6, "pool not found")                                                              \
    XX(EEXIST, -7, "pool already exists")                                                          \
    XX(EPOOLCLOSED, -8, "pool is closed")                                                          \
    XX(EQUEUEFULL, -9, "pool queue is full")                                                       \
    XX(ESYNTAX, -10, "the task's Lua source does not compile")                                     \
    XX(EARGS, -11, "the arguments are not a valid msgpack array")                                  \
    XX(ENOTASK, -12, "unknown task id")                                                            \
    XX(ETIMEDOUT, -13, "timed out")                                                                \
    XX(ETOOBIG, -14, "message exceeds the size limit")                                             \
    XX(ETHREAD, -15, "cannot start a thread")                                                      \
    XX(EINTERNAL, -16, "internal error")

typedef enum mutirao_errno {
#define MUTIRAO_XX_ENUM(name, value, msg) MUTIRAO_##name = (value),
    MUTIRAO_ERRNO_MAP(MUTIRAO_XX_ENUM)
#undef MUTIRAO_XX_ENUM
} mutirao_errno;

/* Longest task id, terminating NUL included. */
#define MUTIRAO_TASK_ID_MAX 128

/* mutirao_pool_create flags. */
#define MUTIRAO_POOL_NOBLOCK 1 /* a submit to a full queue fails with MUTIRAO_EQUEUEFULL */

/* An open client: its own pools, tasks and results. Opaque. */
typedef struct mutirao mutirao;

/* Counters of one pool, as the Lua pool_stats returns them. */
typedef struct mutirao_stats {
    int64_t workers;   /* tasks that run at once */
    int64_t queue;     /* capacity of the queue of waiting tasks */
    int64_t active;    /* running now */
    int64_t queued;    /* waiting now */
    int64_t completed; /* ended well */
    int64_t failed;    /* raised an error (or could not run) */
    int64_t submitted; /* accepted */
    int64_t rejected;  /* refused: queue full (no-block pool) or pool closed */
} mutirao_stats;

/* "0.1.0": the version of the library actually loaded. Static string. */
MUTIRAO_API const char *mutirao_version(void);
/* Static description of an error code ("unknown error" for others). */
MUTIRAO_API const char *mutirao_strerror(int err);
/* Static name of an error code, e.g. "ENOPOOL" ("OK" for 0, "UNKNOWN" for others). */
MUTIRAO_API const char *mutirao_errname(int err);
/* The calling thread's latest failure in words (e.g. "pool not found: img");
 * valid until this thread's next mutirao call. Never NULL. */
MUTIRAO_API const char *mutirao_last_error(void);

/*
 * Opens a client. config_path names a configuration file (see
 * config/mutirao.conf); NULL looks it up: $MUTIRAO_CONFIG, else
 * ./config/mutirao.conf, else /etc/mutirao/mutirao.conf, else defaults.
 * MUTIRAO_* environment variables override the file. With `fleet = on`
 * pools run on the fleet. On success *out is the caller's, to be
 * released with mutirao_close; on error *out is NULL and err (if not NULL)
 * holds a message.
 */
MUTIRAO_API int mutirao_open(const char *config_path, mutirao **out, char *err, size_t errlen);

/*
 * Closes the client and frees it. The pools this client created and did not
 * close are closed (their queued and running tasks still finish, in the
 * background); results not yet awaited are dropped. Calls blocked in other
 * threads on this handle return MUTIRAO_ECLOSED before mutirao_close
 * returns; no call may start on the handle once mutirao_close has begun.
 * NULL is a no-op.
 */
MUTIRAO_API void mutirao_close(mutirao *m);

/*
 * Creates a pool (process-wide in the embedded backend: any client and any
 * Lua VM of the process may submit to it by name). workers: tasks running
 * at once (<= 0: 4); queue: waiting tasks (< 0: 2 x workers); flags:
 * MUTIRAO_POOL_NOBLOCK or 0. The name is 1-200 of A-Z a-z 0-9 . _ -.
 * MUTIRAO_EEXIST when an open pool has that name.
 */
MUTIRAO_API int mutirao_pool_create(mutirao *m, const char *pool, int workers, int queue,
                                    int flags);
/* Stops the pool accepting tasks; queued and running ones still finish. */
MUTIRAO_API int mutirao_pool_close(mutirao *m, const char *pool);

/*
 * Submits a task: lua_source (srclen bytes, text only: precompiled chunks are
 * refused) is a Lua chunk, compiled once per distinct source, called with
 * the elements of args as `...`; what it returns is the task's result. args
 * is one msgpack array (argslen bytes; NULL/0: no arguments), checked
 * strictly: MUTIRAO_EARGS for anything else (another top-level type, bytes
 * left over, truncation, ext types, nil/NaN/duplicate map keys, unsigned
 * integers beyond 2^63-1, nesting deeper than 128); MUTIRAO_ETOOBIG for
 * more than 4096 arguments or more bytes than payload.max_bytes.
 * The task runs with fresh globals on a pool VM (the standard libraries and
 * require("goroutine") are there). When the pool's queue is full the call
 * blocks until there is room (MUTIRAO_EQUEUEFULL at once for a
 * MUTIRAO_POOL_NOBLOCK pool). On success task_id holds the task's id
 * (NUL-terminated), to be awaited through this same client.
 */
MUTIRAO_API int mutirao_submit(mutirao *m, const char *pool, const char *lua_source, size_t srclen,
                               const void *args, size_t argslen, char task_id[MUTIRAO_TASK_ID_MAX]);

/*
 * Waits up to timeout_ms (< 0: forever; 0: only checks) for a task of this
 * client to end. Returns 0 with *ok = 1 and *result a msgpack array of the
 * values it returned (tables with keys 1..n become arrays, other tables
 * maps, strings that are valid UTF-8 str, others bin), or *ok = 0 and
 * *result a msgpack array holding the error (a string: message and
 * traceback) when the task failed or its results cannot be expressed in
 * msgpack (a function, a coroutine...). *result is malloc'd: free it with
 * mutirao_free. Awaiting a task again returns the same result (results are
 * kept 300 s). MUTIRAO_ETIMEDOUT, MUTIRAO_ENOTASK (never submitted through
 * this client, or forgotten).
 */
MUTIRAO_API int mutirao_await(mutirao *m, const char *task_id, int timeout_ms, int *ok,
                              void **result, size_t *len);

/* Frees a result of mutirao_await. NULL is a no-op. */
MUTIRAO_API void mutirao_free(void *p);

/* Copies the pool's counters into *out. MUTIRAO_ENOPOOL. */
MUTIRAO_API int mutirao_pool_stats(mutirao *m, const char *pool, mutirao_stats *out);

/* Waits up to timeout_ms (< 0: forever) until the pool has no task queued
 * or running (whoever submitted them); the pool stays usable.
 * MUTIRAO_ETIMEDOUT, MUTIRAO_ENOPOOL. */
MUTIRAO_API int mutirao_pool_wait(mutirao *m, const char *pool, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* MUTIRAO_H */
