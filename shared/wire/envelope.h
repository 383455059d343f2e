/*
** envelope.h: the fleet's two records. A task envelope wraps a codec message
** (the function and its arguments) for a pool's Kafka topic; a result record
** is what a worker writes to Redis when the task is done. Both are msgpack;
** docs/wire-format.md ("Task envelope (Kafka) and result record (Redis)")
** describes the bytes. Pure functions: no I/O, no Lua, no globals.
*/
#ifndef MUTIRAO_ENVELOPE_H
#define MUTIRAO_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of both records this code writes; it reads versions 1..this. */
#define ENVELOPE_FORMAT_VERSION 1

/* Longest id (task, producer, worker), in bytes, of [A-Za-z0-9._:-]. */
#define ENVELOPE_ID_MAX 127
/* Longest pool name, in bytes, of [A-Za-z0-9._-] (Kafka topic characters). */
#define ENVELOPE_POOL_MAX 200
/* Default largest payload (codec message) accepted in either direction. */
#define ENVELOPE_PAYLOAD_MAX_DEFAULT ((size_t)64 << 20)

/* Error codes: negative ints, one table. XX(name, value, message): base
 * codes (MERR_*) and the envelope's own, -201... (errors.h). */
#define ENVELOPE_ERRNO_MAP(XX)                                                                     \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(EINVAL, MERR_EINVAL, "invalid argument")                                                    \
    XX(ETOOBIG, MERR_ETOOBIG, "payload exceeds the size limit")                                    \
    XX(EMAGIC, MERR_EMAGIC, "not a mutirao task envelope or result record")                        \
    XX(EVERSION, MERR_EVERSION, "unsupported record version")                                      \
    XX(ENEWER, -201, "record written by a newer mutirao")                                          \
    XX(ETRUNCATED, MERR_ETRUNCATED, "truncated record")                                            \
    XX(EMALFORMED, MERR_EMALFORMED, "malformed record")                                            \
    XX(ETYPE, -202, "field has the wrong type")                                                    \
    XX(EMISSING, -203, "required field missing")                                                   \
    XX(EBADID, -204, "invalid id")                                                                 \
    XX(EBADPOOL, MERR_EBADPOOL, "invalid pool name")                                               \
    XX(ERANGE, -205, "field value out of range")

MERR_ENUM(envelope_errno, ENVELOPE, ENVELOPE_ERRNO_MAP)

/* Static description of an error code ("unknown error" for others). */
const char *envelope_strerror(int err);
/* Static name of an error code, e.g. "ETRUNCATED" ("OK" for 0, "UNKNOWN" for others). */
const char *envelope_errname(int err);

/* Limits for both directions. */
typedef struct envelope_limits {
    size_t max_payload; /* largest payload in bytes; encode and decode refuse more */
    size_t max_ref;     /* largest payload kept in Redis by reference (ref_len) */
} envelope_limits;

/* Fills *lim with the defaults (max_payload and max_ref =
 * ENVELOPE_PAYLOAD_MAX_DEFAULT). */
void envelope_limits_default(envelope_limits *lim);

/*
** A task on its way to a worker. Strings are NUL-terminated inside the
** struct. payload points to payload_len bytes owned by someone else: on
** encode, the caller's codec message; after decode, a slice of the decoded
** input, valid only while the caller keeps that input.
*/
typedef struct envelope_task {
    char id[ENVELOPE_ID_MAX + 1];       /* task id, unique per task */
    char pool[ENVELOPE_POOL_MAX + 1];   /* pool name (the topic is derived from it) */
    uint32_t attempt;                   /* 1 for the first delivery, then 2, 3, ... */
    uint64_t submitted_at_ms;           /* Unix time of the submit, ms */
    uint64_t deadline_ms;               /* Unix time after which not to start it (and at which
                                           to cancel it), 0: none */
    char producer[ENVELOPE_ID_MAX + 1]; /* id of the submitting process */
    const char *payload;                /* codec message: function then arguments */
    size_t payload_len;                 /* its size in bytes */
    uint32_t max_deliveries;            /* optional: deliveries before it is dead-lettered,
                                           0 = not given (workers use FLEET_MAX_DELIVERIES) */
    uint64_t ref_len;    /* optional: >0 when the payload, that long, is kept in Redis by
                            reference (fleet_keys.h: mutirao:task:ID:in); payload is then empty */
    uint64_t ref_sum;    /* its envelope_ref_sum */
    uint32_t timeout_ms; /* optional: cancel it after it ran this long, ms; 0: none */
    uint64_t memory;     /* optional: bytes it may hold; 0: the worker's default */
    /* optional: the pool's retry policy (retry.h); all 0 (absent): no retries */
    uint32_t retries;            /* attempts after the first when one raises */
    uint32_t backoff_initial_ms; /* backoff.initial */
    uint32_t backoff_max_ms;     /* backoff.max */
    uint32_t backoff_jitter;     /* backoff.jitter, in 1/1000 */
    uint64_t allow; /* optional: the pool's sandbox narrowing (allow.h): ALLOW_PRESENT | what
                       its tasks may do (intersected with the worker's worker.allow); 0: none */
} envelope_task;

/* The outcome of one attempt of a task, as a worker stores it. Same rules. */
typedef struct envelope_result {
    char id[ENVELOPE_ID_MAX + 1];     /* task id */
    char pool[ENVELOPE_POOL_MAX + 1]; /* pool name */
    uint32_t attempt;                 /* the attempt that produced this outcome, >= 1 */
    int ok;                           /* 1: the function returned, 0: it raised */
    uint64_t finished_at_ms;          /* Unix time the attempt ended, ms */
    char worker[ENVELOPE_ID_MAX + 1]; /* id of the worker that ran it */
    const char *payload;              /* codec message: return values, or the error */
    size_t payload_len;               /* its size in bytes */
    int dead_lettered;                /* optional: 1 when the task was not run again but
                                         dead-lettered (ok is then 0) */
    uint64_t ref_len;                 /* optional: as in envelope_task (mutirao:task:ID:out) */
    uint64_t ref_sum;
    const char *wg; /* optional: the task's changes of its producer's WaitGroups,
                       "WGID DELTA" lines (what mutirao:task:ID:w holds), written
                       in signed records so that they are signed with the outcome */
    size_t wg_len;  /* its size in bytes (0: absent) */
} envelope_result;

/*
** Growable output buffer. Init with caller storage (may be NULL, 0): output
** goes there while it fits, then to a malloc'd block the buffer owns.
** envelope_buf_free releases that block (never the caller's storage) and
** leaves the buffer empty; data then points to the storage again.
*/
typedef struct envelope_buf {
    char *data;    /* the bytes written: len of them */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes available at data */
    char *storage; /* the caller's storage, or NULL */
    size_t storage_cap;
} envelope_buf;

void envelope_buf_init(envelope_buf *b, char *storage, size_t cap);
void envelope_buf_free(envelope_buf *b);

/*
** Encoders. Check every field with the decoder's rules (so nothing is written
** that a reader would refuse), then replace b's contents with the record
** (b->len = its size). On error b->len is 0 and err (if not NULL) names the
** field. lim may be NULL (defaults).
*/
int envelope_task_encode(const envelope_task *t, const envelope_limits *lim, envelope_buf *b,
                         char *err, size_t errlen);
int envelope_result_encode(const envelope_result *r, const envelope_limits *lim, envelope_buf *b,
                           char *err, size_t errlen);

/*
** Decoders: validate everything (header, version, each field's type, size
** and range, trailing bytes) and fill *out. data is only read; out->payload
** points into it. Unknown fields are skipped; a newer version is
** ENVELOPE_ENEWER. On error *out is zeroed and err names the problem.
*/
int envelope_task_decode(const char *data, size_t len, const envelope_limits *lim,
                         envelope_task *out, char *err, size_t errlen);
int envelope_result_decode(const char *data, size_t len, const envelope_limits *lim,
                           envelope_result *out, char *err, size_t errlen);

/* The checksum of a payload kept by reference (64-bit FNV-1a): what the
   reader checks the bytes it fetched against, with their length. */
uint64_t envelope_ref_sum(const void *data, size_t len);

/* Checks the bytes fetched for a payload kept by reference (len of them;
   bytes NULL: none came, the key is gone) against the record's ref_len and
   ref_sum. 0 if they match; else ENVELOPE_EMISSING (gone) or
   ENVELOPE_EMALFORMED (another length or checksum), with the reason in err,
   e.g. "its arguments in Redis do not match its envelope (...)": what names
   the payload ("arguments", "result values"), holder what refers to it
   ("envelope", "record"). */
int envelope_ref_verify(const char *what, const char *holder, const char *bytes, size_t len,
                        uint64_t ref_len, uint64_t ref_sum, char *err, size_t errlen);

/* 0 if s[0..len) is a valid id (1..64 bytes of [A-Za-z0-9._:-]), else
   ENVELOPE_EBADID with the reason in err. */
int envelope_check_id(const char *s, size_t len, char *err, size_t errlen);

/* 0 if s[0..len) is a valid pool name: 1..200 bytes of [A-Za-z0-9._-], not
   "." or "..", so that a Kafka topic can be named after it. Else
   ENVELOPE_EBADPOOL with the reason in err. */
int envelope_check_pool(const char *s, size_t len, char *err, size_t errlen);

/* Copies the NUL-terminated s into dst (cap bytes) if it fits with its NUL;
   returns 0, or ENVELOPE_EINVAL (dst then ""). For filling the structs. */
int envelope_copy(char *dst, size_t cap, const char *s);

#ifdef __cplusplus
}
#endif

#endif /* MUTIRAO_ENVELOPE_H */
