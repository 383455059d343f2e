/*
** kafka_uv.h: librdkafka driven by a libuv loop (producer, admin, consumer).
** Every callback runs on the loop thread. Nothing here waits on the network
** on the loop thread: librdkafka is polled with zero timeouts. Two kinds of
** short waits remain: kuv_producer_close's flush (bounded by its timeout)
** and rd_kafka_destroy's thread joins at close; and subscribe, assign and
** the assignment query, which librdkafka answers from its own main thread
** without network I/O.
*/
#ifndef MUTIRAO_KAFKA_UV_H
#define MUTIRAO_KAFKA_UV_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes: negative ints, one table. XX(name, value, message): base
 * codes (MERR_*) and Kafka's own, -501... (errors.h). */
#define KUV_ERRNO_MAP(XX)                                                                          \
    XX(EINVAL, MERR_EINVAL, "invalid argument")                                                    \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(ECONFIG, MERR_ECONFIG, "invalid Kafka configuration")                                       \
    XX(EIO, MERR_EIO, "cannot create the event pipe")                                              \
    XX(EQUEUEFULL, MERR_EQUEUEFULL, "producer queue is full")                                      \
    XX(EMSGSIZE, -501, "message too large")                                                        \
    XX(ETIMEDOUT, MERR_ETIMEDOUT, "timed out")                                                     \
    XX(ECANCELED, -502, "canceled by close")                                                       \
    XX(ECLOSED, MERR_ECLOSED, "handle is closing")                                                 \
    XX(ENOTASSIGNED, -503, "partition not assigned to this consumer")                              \
    XX(ENOTTRACKED, -504, "offset not handed out or already finished")                             \
    XX(EKAFKA, -505, "Kafka error")

MERR_ENUM(kuv_errno, KUV, KUV_ERRNO_MAP)

/* Static description of an error code ("unknown error" for others). */
const char *kuv_strerror(int err);
/* Static name of an error code, e.g. "EQUEUEFULL" ("OK" for 0, "UNKNOWN" for others). */
const char *kuv_errname(int err);

/* ---- producer and admin ---- */

typedef struct kuv_producer kuv_producer;

/* Delivery report of one message, on the loop: err 0 (then partition and
   offset are the message's) or a KUV_E* code with errmsg, a text naming the
   topic and the brokers that lives only during the call. */
typedef void (*kuv_delivery_cb)(void *ud, int err, const char *errmsg, int32_t partition,
                                int64_t offset);
/* Outcome of an operation, on the loop: err 0 or a KUV_E* code with errmsg
   (lives only during the call). */
typedef void (*kuv_result_cb)(void *ud, int err, const char *errmsg);
/* A client-level error (a broker down, all brokers down...), informational:
   librdkafka keeps retrying. msg lives only during the call. */
typedef void (*kuv_error_cb)(void *ud, int err, const char *msg);

typedef struct kuv_producer_opts {
    int message_timeout_ms;  /* a message not delivered by then fails (default 30000) */
    int linger_ms;           /* batching delay in ms (default and -1: 0) */
    int admin_timeout_ms;    /* kuv_topic_ensure's bound (default message_timeout_ms) */
    int replication_factor;  /* of topics kuv_topic_ensure creates: default 1, -1 broker's */
    const char *const *conf; /* NULL or "key", "value", ..., NULL: librdkafka settings
                                applied last (they win) */
    kuv_error_cb error_cb;   /* NULL or client-level errors */
    void *ud;                /* for error_cb */
    char *errbuf;            /* NULL or where kuv_producer_new explains a failure */
    size_t errlen;
    int weak; /* 1: the producer's handles do not keep the loop alive (its user
               * keeps it running while it waits for reports or results) */
} kuv_producer_opts;

/* Fills *o with the defaults; *o is the caller's. */
void kuv_producer_opts_default(kuv_producer_opts *o);

/*
** A producer on loop (acks=all, idempotent, linger 0 ms). brokers is
** "host:port,...". opts may be NULL (defaults). Returns NULL with *err set
** (err may be NULL) on failure. The producer is owned by the layer until
** kuv_producer_close; the caller keeps ownership of brokers and opts.
*/
kuv_producer *kuv_producer_new(uv_loop_t *loop, const char *brokers, const kuv_producer_opts *opts,
                               int *err);

/*
** Produces value (len bytes; NULL/0 for a null value) with key (NULL/0 for
** none) to topic, on any partition the key hashes to. The bytes are copied
** before return: the caller keeps its buffers. cb (may be NULL) fires once
** on the loop with the delivery report; on an error return it never fires.
** KUV_EQUEUEFULL: librdkafka's queue is full, retry after some reports
** (backpressure).
*/
int kuv_produce(kuv_producer *p, const char *topic, const void *key, size_t keylen,
                const void *value, size_t len, kuv_delivery_cb cb, void *ud);

/* Messages produced whose report has not fired yet. */
size_t kuv_producer_pending(const kuv_producer *p);

/*
** Waits at most timeout_ms on the calling thread (shutdown only) for every
** message produced to be delivered; their reports fire during the call.
** Returns how many reports are still due (0: all delivered or failed).
** Called from one of p's callbacks, or on a closing p, it only returns that
** count.
*/
size_t kuv_producer_flush(kuv_producer *p, int timeout_ms);

/*
** Creates topic with partitions partitions (Admin CreateTopics; an existing
** topic is success, whatever its partition count). cb fires once on the
** loop within admin_timeout_ms; on an error return it never fires. The
** caller keeps ownership of topic.
*/
int kuv_topic_ensure(kuv_producer *p, const char *topic, int partitions, kuv_result_cb cb,
                     void *ud);

/*
** Flushes (waiting at most timeout_ms on the calling thread: call it at
** shutdown), fails what is left with KUV_ECANCELED (every delivery and
** ensure callback fires exactly once, some during this call), then destroys
** the client and frees p in libuv's close callbacks. p is invalid after this
** call. Called from one of p's callbacks, the close happens when it returns.
*/
void kuv_producer_close(kuv_producer *p, int timeout_ms);

/* ---- consumer ---- */

typedef struct kuv_consumer kuv_consumer;

/* A message handed to the application. Every pointer lives only during the
   callback: copy what you keep. */
typedef struct kuv_message {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key; /* NULL when the message has no key */
    size_t keylen;
    const void *value; /* NULL for a null value */
    size_t len;
    int64_t timestamp; /* ms since the epoch, -1 if unknown */
} kuv_message;

typedef struct kuv_partition {
    const char *topic; /* lives only during the callback */
    int32_t partition;
} kuv_partition;

/* A message, on the loop. Finish it with kuv_done (now or later). */
typedef void (*kuv_msg_cb)(void *ud, const kuv_message *m);
/* Partitions assigned (assigned = 1, after the layer took them) or revoked
   (assigned = 0, before the layer commits their finished prefix and forgets
   them: kuv_done still counts during this call). parts lives only during
   the call. */
typedef void (*kuv_rebalance_cb)(void *ud, int assigned, const kuv_partition *parts, size_t n);
/* A commit's outcome for one partition (offset is what was committed). */
typedef void (*kuv_commit_cb)(void *ud, int err, const char *topic, int32_t partition,
                              int64_t offset);

typedef struct kuv_consumer_opts {
    int session_timeout_ms;    /* default 6000: a dead member's partitions move within it */
    int heartbeat_interval_ms; /* default 2000 */
    int metadata_refresh_ms;   /* default 1000: regex subscriptions see new topics */
    int commit_interval_ms;    /* finished prefixes are committed this often (default 100) */
    int close_timeout_ms;      /* kuv_consumer_close gives up leaving the group after it
                                  (default 10000) */
    int max_per_wakeup;        /* messages handed out per loop wakeup (default 256) */
    const char *const *conf;   /* NULL or "key", "value", ..., NULL: applied last */
    kuv_error_cb error_cb;     /* NULL or client-level errors */
    kuv_commit_cb commit_cb;   /* NULL or commit outcomes */
    char *errbuf;              /* NULL or where kuv_consumer_new explains a failure */
    size_t errlen;
} kuv_consumer_opts;

/* Fills *o with the defaults; *o is the caller's. */
void kuv_consumer_opts_default(kuv_consumer_opts *o);

/*
** A consumer of group on loop: no auto commit, no auto offset store,
** auto.offset.reset=earliest. msg_cb is required; rebalance_cb may be NULL;
** ud goes to every callback. Returns NULL with *err set (err may be NULL).
** The consumer is owned by the layer until kuv_consumer_close; the caller
** keeps ownership of brokers, group and opts.
*/
kuv_consumer *kuv_consumer_new(uv_loop_t *loop, const char *brokers, const char *group,
                               const kuv_consumer_opts *opts, kuv_msg_cb msg_cb,
                               kuv_rebalance_cb rebalance_cb, void *ud, int *err);

/* Subscribes to n topics; a pattern starting with '^' is a regex. Replaces
   the previous subscription. The caller keeps ownership of patterns. */
int kuv_subscribe(kuv_consumer *c, const char *const *patterns, size_t n);

/*
** Stops (kuv_pause) or restarts (kuv_resume) fetching one assigned
** partition; topic NULL means every assigned partition, and then also the
** partitions assigned later until kuv_resume(c, NULL, 0). Messages already
** handed out stay handed out; a resumed partition continues after the last
** message handed out. KUV_ENOTASSIGNED for a partition not assigned. A
** partition's pause ends with its assignment: revoked and assigned again,
** it is fetched (from the committed offset) unless everything is paused.
*/
int kuv_pause(kuv_consumer *c, const char *topic, int32_t partition);
int kuv_resume(kuv_consumer *c, const char *topic, int32_t partition);

/*
** Holds (hold = 1) or releases (0) the messages of topic: while held, none
** is handed out, and librdkafka goes on fetching each of its partitions
** only until that partition's queue holds queued.min.messages messages or
** queued.max.messages.kbytes (per partition), keeping what it fetched:
** flow control at the application's pace without the refetch a pause
** costs. The hold covers the topic's partitions assigned later too, until
** released. Messages of one batch already taken from a partition's queue
** are still handed out after a hold from within msg_cb (at most 32).
*/
int kuv_hold(kuv_consumer *c, const char *topic, int hold);

/*
** Marks a handed-out offset finished. The layer commits, per partition, the
** offset after the longest finished prefix of what it handed out (async,
** every commit_interval_ms). KUV_ENOTASSIGNED (harmless) when the partition
** was revoked since; KUV_ENOTTRACKED when the offset was not handed out or is
** already finished. Not after kuv_consumer_close.
*/
int kuv_done(kuv_consumer *c, const char *topic, int32_t partition, int64_t offset);

/*
** The consumer lag of each assigned partition whose lag is known: fn(ud,
** topic, partition, lag) with its high watermark as of its last fetch
** (librdkafka's cached value: no request is sent, nothing waits) minus the
** first offset not finished here (the oldest unfinished message handed
** out, else the one after the last handed out, else the consumer's
** position). A partition with neither a watermark nor a position yet is
** left out. topic lives only during the call.
*/
void kuv_consumer_lag(kuv_consumer *c,
                      void (*fn)(void *ud, const char *topic, int32_t partition, int64_t lag),
                      void *ud);

/* Handed-out messages not yet finished, over every assigned partition. */
size_t kuv_consumer_pending(const kuv_consumer *c);

/*
** Commits the finished prefixes, leaves the group (without waiting on the
** loop) and frees c in libuv's close callbacks once left (or after
** close_timeout_ms). No callback fires after this call; c is invalid.
** Called from one of c's callbacks, the close starts when it returns.
*/
void kuv_consumer_close(kuv_consumer *c);

#ifdef __cplusplus
}
#endif

#endif
