/*
** errors.h: the error codes every module shares, and the one way a module
** defines its error table.
**
** A module's functions return 0 or a negative code from its table, an
** X-macro with one row XX(name, value, message) per code:
**
**     #define CODEC_ERRNO_MAP(XX)                                           \
**         XX(ENOMEM, MERR_ENOMEM, "out of memory")                          \
**         XX(ETOODEEP, -101, "nesting exceeds the depth limit")
**
**     MERR_ENUM(codec_errno, CODEC, CODEC_ERRNO_MAP)      in its header:
**         typedef enum codec_errno { CODEC_ENOMEM = -2, ... } codec_errno;
**     MERR_FUNCS(, codec, CODEC_ERRNO_MAP)                in one .c file:
**         const char *codec_strerror(int err)   the row's message, else
**                                                "unknown error"
**         const char *codec_errname(int err)    the row's name ("ETOODEEP"),
**                                                "OK" for 0, else "UNKNOWN"
**
** Values. A code that means the same in several modules (out of memory,
** invalid argument, too big, timed out, ...) is a base code with one value,
** listed in MUTIRAO_BASE_ERRORS below: a module's row for it says
** MERR_<name> and words the message its own way. A module's own codes take
** the values of its range, -101, -102, ... for the codec (MERR_RANGES). So
** two codes of the tree never share a value unless they mean the same, and
** a value in a log names its error whichever module returned it
** (tests/c/test-errors.c checks every table).
**
** The public header include/mutirao.h cannot include this file. Its table
** is a part of the base one: the base codes -1..-16 are numbered as the
** library's ABI always numbered them, and producer/mutirao.c checks at
** compile time that each public code has its base value.
*/
#ifndef MUTIRAO_ERRORS_H
#define MUTIRAO_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* The base codes, XX(name, value, message). Append only: values never change. */
#define MUTIRAO_BASE_ERRORS(XX)                                                                    \
    XX(EINVAL, -1, "invalid argument")                                                             \
    XX(ENOMEM, -2, "out of memory")                                                                \
    XX(ECONFIG, -3, "invalid configuration")                                                       \
    XX(ENOTSUP, -4, "not supported")                                                               \
    XX(ECLOSED, -5, "closed")                                                                      \
    XX(ENOPOOL, -6, "pool not found")                                                              \
    XX(EEXIST, -7, "already exists")                                                               \
    XX(EPOOLCLOSED, -8, "pool is closed")                                                          \
    XX(EQUEUEFULL, -9, "queue is full")                                                            \
    XX(ESYNTAX, -10, "syntax error")                                                               \
    XX(EARGS, -11, "invalid arguments")                                                            \
    XX(ENOTASK, -12, "unknown task id")                                                            \
    XX(ETIMEDOUT, -13, "timed out")                                                                \
    XX(ETOOBIG, -14, "exceeds the size limit")                                                     \
    XX(ETHREAD, -15, "cannot start a thread")                                                      \
    XX(EINTERNAL, -16, "internal error")                                                           \
    XX(EIO, -17, "input/output error")                                                             \
    XX(EMAGIC, -18, "not a mutirao record")                                                        \
    XX(EVERSION, -19, "unsupported version")                                                       \
    XX(ETRUNCATED, -20, "truncated")                                                               \
    XX(EMALFORMED, -21, "malformed")                                                               \
    XX(EUNSENDABLE, -22, "value cannot travel")                                                    \
    XX(EBADPOOL, -23, "invalid pool name")

/* The modules with codes of their own, XX(prefix, range): a module's own
 * codes are range - 1, range - 2, ... down to range - 99. The base codes
 * take -1..-99. Append only. */
#define MERR_RANGES(XX)                                                                            \
    XX(CODEC, -100)    /* shared/codec/codec.h */                                                  \
    XX(ENVELOPE, -200) /* shared/wire/envelope.h */                                                \
    XX(CONFIG, -300)   /* shared/wire/config.h */                                                  \
    XX(REDIS_UV, -400) /* shared/redis/redis_uv.h */                                               \
    XX(KUV, -500)      /* shared/kafka/kafka_uv.h */                                               \
    XX(SIGN, -600)     /* shared/wire/sign.h */

/* How MERR_ENUM names the constants of each table: PREFIX_name. One row per
 * module (a macro cannot define one). */
#define MERR_ROW_MERR(name, value, msg) MERR_##name = (value),
#define MERR_ROW_CODEC(name, value, msg) CODEC_##name = (value),
#define MERR_ROW_ENVELOPE(name, value, msg) ENVELOPE_##name = (value),
#define MERR_ROW_CONFIG(name, value, msg) CONFIG_##name = (value),
#define MERR_ROW_REDIS_UV(name, value, msg) REDIS_UV_##name = (value),
#define MERR_ROW_KUV(name, value, msg) KUV_##name = (value),
#define MERR_ROW_SIGN(name, value, msg) SIGN_##name = (value),
#define MERR_ROW_MPL(name, value, msg) MPL_##name = (value),
#define MERR_ROW_EX(name, value, msg) EX_##name = (value),

/* typedef enum type { PREFIX_name = value, ... } type; from table MAP. */
#define MERR_ENUM(type, PREFIX, MAP) typedef enum type { MAP(MERR_ROW_##PREFIX) } type;

#define MERR_CASE_MSG_(name, value, msg)                                                           \
    case (value):                                                                                  \
        return (msg);
#define MERR_CASE_NAME_(name, value, msg)                                                          \
    case (value):                                                                                  \
        return #name;

/* Defines fn_strerror and fn_errname of table MAP (see the top of this
 * file), with linkage (e.g. nothing, static, an export attribute). */
#define MERR_FUNCS(linkage, fn, MAP)                                                               \
    linkage const char *fn##_strerror(int err)                                                     \
    {                                                                                              \
        switch (err) {                                                                             \
            MAP(MERR_CASE_MSG_)                                                                    \
        default:                                                                                   \
            return "unknown error";                                                                \
        }                                                                                          \
    }                                                                                              \
    linkage const char *fn##_errname(int err)                                                      \
    {                                                                                              \
        switch (err) {                                                                             \
        case 0:                                                                                    \
            return "OK";                                                                           \
            MAP(MERR_CASE_NAME_)                                                                   \
        default:                                                                                   \
            return "UNKNOWN";                                                                      \
        }                                                                                          \
    }

/* The base codes as constants: MERR_EINVAL, MERR_ENOMEM, ... */
MERR_ENUM(merr_errno, MERR, MUTIRAO_BASE_ERRORS)

/* merr_strerror, merr_errname: the base table's (for whoever reports a
 * base code without knowing its module). */
MERR_FUNCS(static inline, merr, MUTIRAO_BASE_ERRORS)

#ifdef __cplusplus
}
#endif

/* Writes a message into err (when err is not NULL and errlen > 0) and
 * returns code: `return merr_fail(err, errlen, CONFIG_EVALUE, "...", ...);` */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
static inline int merr_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int merr_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

#endif /* MUTIRAO_ERRORS_H */
