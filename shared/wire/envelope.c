/*
** envelope.c: task envelopes and result records <-> msgpack. Both records are
** a 4-byte header (magic, version) and one msgpack map of named fields,
** described by a field table per record. The encoder writes the msgpack
** itself (the bytes msgpack-c would write) into room it makes once; the
** decoder is a bounds-checked cursor that allocates nothing.
*/
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

#define HDRLEN 4
#define MAGIC_TASK "MTE"   /* task envelope (Kafka) */
#define MAGIC_RESULT "MTO" /* result record (Redis): the outcome */
/* Deepest nesting of an unknown field's value that the decoder skips. */
#define SKIP_DEPTH 32

/* ---- errors -------------------------------------------------------------- */

MERR_FUNCS(, envelope, ENVELOPE_ERRNO_MAP)

void envelope_limits_default(envelope_limits *lim)
{
    lim->max_payload = ENVELOPE_PAYLOAD_MAX_DEFAULT;
    lim->max_ref = ENVELOPE_PAYLOAD_MAX_DEFAULT;
}

int envelope_copy(char *dst, size_t cap, const char *s)
{
    if (dst == NULL || cap == 0)
        return ENVELOPE_EINVAL;
    size_t n = s != NULL ? strlen(s) : 0;
    if (s == NULL || n >= cap) {
        dst[0] = '\0';
        return ENVELOPE_EINVAL;
    }
    memcpy(dst, s, n + 1);
    return 0;
}

/* ---- names ---------------------------------------------------------------- */

/* Bytes of names: 1 in pool names and ids, 2 in ids only. A table: every
 * id of every message goes through here, on both sides, char by char. */
static const unsigned char name_char[256] = {
    ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1, ['0' ... '9'] = 1, ['.'] = 1,
    ['_'] = 1,         ['-'] = 1,         [':'] = 2,
};

static int is_pool_char(unsigned char c)
{
    return name_char[c] == 1;
}

/* Prints byte c readably for an error message. */
static const char *show_char(unsigned char c, char buf[8])
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, 8, "'%c'", c);
    else
        snprintf(buf, 8, "0x%02x", c);
    return buf;
}

int envelope_check_id(const char *s, size_t len, char *err, size_t errlen)
{
    char cb[8];
    if (s == NULL || len == 0)
        return merr_fail(err, errlen, ENVELOPE_EBADID, "empty id");
    if (len > ENVELOPE_ID_MAX)
        return merr_fail(err, errlen, ENVELOPE_EBADID, "id of %zu bytes, at most %d allowed", len,
                         ENVELOPE_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!name_char[c])
            return merr_fail(err, errlen, ENVELOPE_EBADID,
                             "id has %s at byte %zu (allowed: A-Z a-z 0-9 . _ : -)",
                             show_char(c, cb), i + 1);
    }
    return 0;
}

int envelope_check_pool(const char *s, size_t len, char *err, size_t errlen)
{
    char cb[8];
    if (s == NULL || len == 0)
        return merr_fail(err, errlen, ENVELOPE_EBADPOOL, "empty pool name");
    if (len > ENVELOPE_POOL_MAX)
        return merr_fail(err, errlen, ENVELOPE_EBADPOOL,
                         "pool name of %zu bytes, at most %d allowed", len, ENVELOPE_POOL_MAX);
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return merr_fail(err, errlen, ENVELOPE_EBADPOOL, "pool name '%.*s' is reserved", (int)len,
                         s);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!is_pool_char(c))
            return merr_fail(
                err, errlen, ENVELOPE_EBADPOOL,
                "pool name has %s at byte %zu; Kafka topics allow only A-Z a-z 0-9 . _ -",
                show_char(c, cb), i + 1);
    }
    return 0;
}

/* ---- field tables ------------------------------------------------------- */

typedef enum kind {
    K_ID,      /* str, envelope_check_id; char[ENVELOPE_ID_MAX + 1] */
    K_POOL,    /* str, envelope_check_pool; char[ENVELOPE_POOL_MAX + 1] */
    K_ATTEMPT, /* uint, 1..UINT32_MAX; uint32_t */
    K_U64,     /* uint, 0..UINT64_MAX; uint64_t (ms timestamps, bytes) */
    K_U32,     /* uint, 0..UINT32_MAX; uint32_t (ms) */
    K_BOOL,    /* bool; int 0/1 */
    K_PAYLOAD  /* bin, at most max_payload bytes; const char * then size_t */
} kind;

typedef struct field {
    const char *name;
    kind k;
    size_t off;     /* of the value in the record struct */
    size_t len_off; /* K_PAYLOAD: of the length */
    int opt;        /* optional: 0 in the struct = absent (not written, may be missing) */
    size_t nlen;    /* strlen(name), under 32 */
} field;

static const field task_fields[] = {
    {"id", K_ID, offsetof(envelope_task, id), 0, 0, sizeof "id" - 1},
    {"pool", K_POOL, offsetof(envelope_task, pool), 0, 0, sizeof "pool" - 1},
    {"attempt", K_ATTEMPT, offsetof(envelope_task, attempt), 0, 0, sizeof "attempt" - 1},
    {"submitted_at", K_U64, offsetof(envelope_task, submitted_at_ms), 0, 0,
     sizeof "submitted_at" - 1},
    {"deadline", K_U64, offsetof(envelope_task, deadline_ms), 0, 0, sizeof "deadline" - 1},
    {"producer", K_ID, offsetof(envelope_task, producer), 0, 0, sizeof "producer" - 1},
    {"payload", K_PAYLOAD, offsetof(envelope_task, payload), offsetof(envelope_task, payload_len),
     0, sizeof "payload" - 1},
    {"max_deliveries", K_ATTEMPT, offsetof(envelope_task, max_deliveries), 0, 1,
     sizeof "max_deliveries" - 1},
    {"ref_len", K_U64, offsetof(envelope_task, ref_len), 0, 1, sizeof "ref_len" - 1},
    {"ref_sum", K_U64, offsetof(envelope_task, ref_sum), 0, 1, sizeof "ref_sum" - 1},
    {"timeout", K_U32, offsetof(envelope_task, timeout_ms), 0, 1, sizeof "timeout" - 1},
    {"memory", K_U64, offsetof(envelope_task, memory), 0, 1, sizeof "memory" - 1},
    {"retries", K_U32, offsetof(envelope_task, retries), 0, 1, sizeof "retries" - 1},
    {"backoff_initial", K_U32, offsetof(envelope_task, backoff_initial_ms), 0, 1,
     sizeof "backoff_initial" - 1},
    {"backoff_max", K_U32, offsetof(envelope_task, backoff_max_ms), 0, 1, sizeof "backoff_max" - 1},
    {"backoff_jitter", K_U32, offsetof(envelope_task, backoff_jitter), 0, 1,
     sizeof "backoff_jitter" - 1},
    {"allow", K_U64, offsetof(envelope_task, allow), 0, 1, sizeof "allow" - 1},
};

static const field result_fields[] = {
    {"id", K_ID, offsetof(envelope_result, id), 0, 0, sizeof "id" - 1},
    {"pool", K_POOL, offsetof(envelope_result, pool), 0, 0, sizeof "pool" - 1},
    {"attempt", K_ATTEMPT, offsetof(envelope_result, attempt), 0, 0, sizeof "attempt" - 1},
    {"ok", K_BOOL, offsetof(envelope_result, ok), 0, 0, sizeof "ok" - 1},
    {"finished_at", K_U64, offsetof(envelope_result, finished_at_ms), 0, 0,
     sizeof "finished_at" - 1},
    {"worker", K_ID, offsetof(envelope_result, worker), 0, 0, sizeof "worker" - 1},
    {"payload", K_PAYLOAD, offsetof(envelope_result, payload),
     offsetof(envelope_result, payload_len), 0, sizeof "payload" - 1},
    {"dead_lettered", K_BOOL, offsetof(envelope_result, dead_lettered), 0, 1,
     sizeof "dead_lettered" - 1},
    {"ref_len", K_U64, offsetof(envelope_result, ref_len), 0, 1, sizeof "ref_len" - 1},
    {"ref_sum", K_U64, offsetof(envelope_result, ref_sum), 0, 1, sizeof "ref_sum" - 1},
    {"wg", K_PAYLOAD, offsetof(envelope_result, wg), offsetof(envelope_result, wg_len), 1,
     sizeof "wg" - 1},
};

typedef struct record {
    const char *what;  /* "task envelope" or "result record" */
    const char *magic; /* 3 bytes */
    const field *fields;
    int n; /* how many (at most 32: the decoder's `seen` bits) */
} record;

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
static const record task_rec = {"task envelope", MAGIC_TASK, task_fields, COUNT(task_fields)};
static const record result_rec = {"result record", MAGIC_RESULT, result_fields,
                                  COUNT(result_fields)};

/* An optional field left at 0 in the struct: not written. */
static int absent(const field *f, const char *base)
{
    if (!f->opt)
        return 0;
    if (f->k == K_ATTEMPT || f->k == K_U32)
        return *(const uint32_t *)(base + f->off) == 0;
    if (f->k == K_U64)
        return *(const uint64_t *)(base + f->off) == 0;
    if (f->k == K_PAYLOAD)
        return *(const size_t *)(base + f->len_off) == 0;
    return f->k == K_BOOL && *(const int *)(base + f->off) == 0;
}

static size_t cap_of(kind k)
{
    return k == K_ID ? ENVELOPE_ID_MAX + 1 : ENVELOPE_POOL_MAX + 1;
}

/* Checks one string field of a record about to be encoded; its length into
 * *lenp. One pass over it when it is valid (the usual case); the checks
 * that say what is wrong otherwise. */
static int check_str_field(const field *f, const char *s, char *err, size_t errlen, size_t *lenp)
{
    size_t cap = cap_of(f->k), len = strnlen(s, cap);
    unsigned bad = 0;
    const unsigned char *u = (const unsigned char *)s;
    if (f->k == K_ID) {
        for (size_t i = 0; i < len; i++)
            bad |= name_char[u[i]] == 0;
    } else {
        for (size_t i = 0; i < len; i++)
            bad |= name_char[u[i]] != 1;
    }
    *lenp = len;
    if (len == cap)
        return merr_fail(err, errlen, f->k == K_ID ? ENVELOPE_EBADID : ENVELOPE_EBADPOOL,
                         "field '%s': not NUL-terminated within %zu bytes", f->name, cap);
    /* (a pool may not be "." or "..") */
    if (!bad && len > 0 && (f->k == K_ID || !(len <= 2 && s[0] == '.' && s[len - 1] == '.')))
        return 0;
    char why[160];
    int rc = f->k == K_ID ? envelope_check_id(s, len, why, sizeof why)
                          : envelope_check_pool(s, len, why, sizeof why);
    if (rc < 0)
        return merr_fail(err, errlen, rc, "field '%s': %s", f->name, why);
    return 0;
}

/* ---- encoder ------------------------------------------------------------ */

void envelope_buf_init(envelope_buf *b, char *storage, size_t cap)
{
    b->storage = storage;
    b->storage_cap = storage != NULL ? cap : 0;
    b->data = storage;
    b->cap = b->storage_cap;
    b->len = 0;
}

void envelope_buf_free(envelope_buf *b)
{
    if (b->data != NULL && b->data != b->storage)
        free(b->data);
    b->data = b->storage;
    b->cap = b->storage_cap;
    b->len = 0;
}

/* A payload kept by reference: within max_ref, and the inline payload then
 * empty. ref_len/payload_len sit at the same offsets in both records' views. */
static int check_ref(const record *rec, const void *obj, const envelope_limits *lim, char *err,
                     size_t errlen)
{
    uint64_t ref_len, ref_sum;
    size_t plen;
    if (rec == &task_rec) {
        const envelope_task *t = obj;
        ref_len = t->ref_len, ref_sum = t->ref_sum, plen = t->payload_len;
    } else {
        const envelope_result *r = obj;
        ref_len = r->ref_len, ref_sum = r->ref_sum, plen = r->payload_len;
    }
    if (ref_len == 0 && ref_sum != 0)
        return merr_fail(err, errlen, ENVELOPE_EMALFORMED, "%s: field 'ref_sum' without 'ref_len'",
                         rec->what);
    if (ref_len > lim->max_ref)
        return merr_fail(err, errlen, ENVELOPE_ETOOBIG,
                         "field 'ref_len': %llu bytes, the limit is %zu",
                         (unsigned long long)ref_len, lim->max_ref);
    if (ref_len > 0 && plen > 0)
        return merr_fail(err, errlen, ENVELOPE_EMALFORMED,
                         "%s: a payload both inline (%zu bytes) and by reference", rec->what, plen);
    return 0;
}

uint64_t envelope_ref_sum(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int envelope_ref_verify(const char *what, const char *holder, const char *bytes, size_t len,
                        uint64_t ref_len, uint64_t ref_sum, char *err, size_t errlen)
{
    if (!bytes)
        return merr_fail(err, errlen, ENVELOPE_EMISSING,
                         "its %s (%" PRIu64 " bytes, kept in Redis by reference) are gone: "
                         "expired (result.ttl_s) or deleted",
                         what, ref_len);
    if ((uint64_t)len != ref_len || envelope_ref_sum(bytes, len) != ref_sum)
        return merr_fail(err, errlen, ENVELOPE_EMALFORMED,
                         "its %s in Redis do not match its %s (%zu bytes, %" PRIu64
                         " expected, or another checksum)",
                         what, holder, len, ref_len);
    return 0;
}

/* Appends n bytes (p NULL: room only, counted) to the envelope_buf, growing it. */
static int buf_write(void *data, const char *p, size_t n)
{
    envelope_buf *b = data;
    if (n > b->cap - b->len) {
        if (n > SIZE_MAX / 2 - b->len)
            return -1;
        size_t need = b->len + n, ncap = b->cap > 256 ? b->cap : 256;
        while (ncap < need)
            ncap *= 2;
        char *nd;
        if (b->data != NULL && b->data != b->storage) {
            nd = realloc(b->data, ncap);
        } else {
            nd = malloc(ncap);
            if (nd != NULL && b->len > 0)
                memcpy(nd, b->data, b->len);
        }
        if (nd == NULL)
            return -1;
        b->data = nd;
        b->cap = ncap;
    }
    if (n > 0 && p != NULL)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Makes room for n more bytes in b (growing it as buf_write does). */
static int buf_reserve(envelope_buf *b, size_t n)
{
    if (n <= b->cap - b->len)
        return 0;
    size_t len = b->len;
    if (buf_write(b, NULL, n) != 0) /* grows, then counts n bytes: uncounted below */
        return -1;
    b->len = len;
    return 0;
}

/* The msgpack writers, each the shortest form as msgpack-c writes it (the
 * bytes are the same as msgpack_pack_*'s: tests/c/test-envelope.c checks
 * them against msgpack-c), into room made by buf_reserve. */
static unsigned char *put_be(unsigned char *o, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        *o++ = (unsigned char)(v >> (8 * i));
    return o;
}

static unsigned char *put_uint(unsigned char *o, uint64_t v)
{
    if (v < 128) {
        *o++ = (unsigned char)v;
        return o;
    }
    if (v < 256) {
        *o++ = 0xcc;
        return put_be(o, v, 1);
    }
    if (v < 65536) {
        *o++ = 0xcd;
        return put_be(o, v, 2);
    }
    if (v <= UINT32_MAX) {
        *o++ = 0xce;
        return put_be(o, v, 4);
    }
    *o++ = 0xcf;
    return put_be(o, v, 8);
}

static unsigned char *put_str(unsigned char *o, const char *s, size_t n)
{
    if (n < 32) {
        *o++ = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        *o++ = 0xd9;
        o = put_be(o, n, 1);
    } else if (n < 65536) {
        *o++ = 0xda;
        o = put_be(o, n, 2);
    } else {
        *o++ = 0xdb;
        o = put_be(o, n, 4);
    }
    memcpy(o, s, n);
    return o + n;
}

static unsigned char *put_bin(unsigned char *o, const char *p, size_t n)
{
    if (n < 256) {
        *o++ = 0xc4;
        o = put_be(o, n, 1);
    } else if (n < 65536) {
        *o++ = 0xc5;
        o = put_be(o, n, 2);
    } else {
        *o++ = 0xc6;
        o = put_be(o, n, 4);
    }
    if (n > 0)
        memcpy(o, p, n);
    return o + n;
}

static unsigned char *put_map(unsigned char *o, uint32_t n)
{
    if (n < 16) {
        *o++ = (unsigned char)(0x80 | n);
        return o;
    }
    if (n < 65536) {
        *o++ = 0xde;
        return put_be(o, n, 2);
    }
    *o++ = 0xdf;
    return put_be(o, n, 4);
}

static int encode(const record *rec, const void *obj, const envelope_limits *lim, envelope_buf *b,
                  char *err, size_t errlen)
{
    envelope_limits dl;
    if (lim == NULL) {
        envelope_limits_default(&dl);
        lim = &dl;
    }
    if (b == NULL)
        return merr_fail(err, errlen, ENVELOPE_EINVAL, "no output buffer");
    b->len = 0;
    if (obj == NULL)
        return merr_fail(err, errlen, ENVELOPE_EINVAL, "no %s to encode", rec->what);
    const char *base = obj;

    /* Validate everything first: nothing is written that a reader refuses.
     * Meanwhile: which fields are written, the lengths of the strings, and
     * at most how many bytes it all takes. */
    int nout = 0;
    unsigned present = 0;
    size_t slen[32], room = HDRLEN + 5;
    for (int i = 0; i < rec->n; i++) {
        const field *f = &rec->fields[i];
        const void *v = base + f->off;
        int rc = 0;
        if (absent(f, base))
            continue;
        nout++;
        present |= 1u << i;
        room += 1 + f->nlen + 9; /* a name under 32 bytes; a number */
        switch (f->k) {
        case K_ID:
        case K_POOL:
            rc = check_str_field(f, v, err, errlen, &slen[i]);
            room += slen[i];
            break;
        case K_ATTEMPT:
            if (*(const uint32_t *)v < 1)
                rc = merr_fail(err, errlen, ENVELOPE_ERANGE,
                               "field 'attempt': 0, at least 1 expected");
            break;
        case K_BOOL: {
            int ok = *(const int *)v;
            if (ok != 0 && ok != 1)
                rc = merr_fail(err, errlen, ENVELOPE_ERANGE, "field '%s': %d, 0 or 1 expected",
                               f->name, ok);
            break;
        }
        case K_PAYLOAD: {
            const char *p = *(const char *const *)v;
            size_t n = *(const size_t *)(base + f->len_off);
            if (p == NULL && n > 0)
                rc = merr_fail(err, errlen, ENVELOPE_EINVAL, "field '%s': NULL with length %zu",
                               f->name, n);
            else if (n > lim->max_payload || n > UINT32_MAX)
                rc = merr_fail(err, errlen, ENVELOPE_ETOOBIG,
                               "field '%s': %zu bytes, the limit is %zu", f->name, n,
                               lim->max_payload);
            room += n;
            break;
        }
        case K_U64:
        case K_U32:
            break;
        }
        if (rc < 0)
            return rc;
    }
    int rrc = check_ref(rec, obj, lim, err, errlen);
    if (rrc < 0)
        return rrc;
    if (rec == &task_rec) {
        const envelope_task *t = obj;
        if (t->deadline_ms != 0 && t->deadline_ms < t->submitted_at_ms)
            return merr_fail(err, errlen, ENVELOPE_ERANGE,
                             "field 'deadline': %llu ms is before submitted_at %llu ms",
                             (unsigned long long)t->deadline_ms,
                             (unsigned long long)t->submitted_at_ms);
    }

    if (buf_reserve(b, room) != 0) {
        envelope_buf_free(b);
        return merr_fail(err, errlen, ENVELOPE_ENOMEM, "out of memory encoding a %s", rec->what);
    }
    unsigned char *o = (unsigned char *)b->data;
    memcpy(o, rec->magic, 3);
    o[3] = ENVELOPE_FORMAT_VERSION;
    o = put_map(o + HDRLEN, (uint32_t)nout);
    for (int i = 0; i < rec->n; i++) {
        if (!(present & (1u << i)))
            continue;
        const field *f = &rec->fields[i];
        const void *v = base + f->off;
        o = put_str(o, f->name, f->nlen);
        switch (f->k) {
        case K_ID:
        case K_POOL:
            o = put_str(o, v, slen[i]);
            break;
        case K_ATTEMPT:
        case K_U32:
            o = put_uint(o, *(const uint32_t *)v);
            break;
        case K_U64:
            o = put_uint(o, *(const uint64_t *)v);
            break;
        case K_BOOL:
            *o++ = *(const int *)v ? 0xc3 : 0xc2;
            break;
        case K_PAYLOAD:
            o = put_bin(o, *(const char *const *)v, *(const size_t *)(base + f->len_off));
            break;
        }
    }
    b->len = (size_t)(o - (unsigned char *)b->data);
    return 0;
}

int envelope_task_encode(const envelope_task *t, const envelope_limits *lim, envelope_buf *b,
                         char *err, size_t errlen)
{
    return encode(&task_rec, t, lim, b, err, errlen);
}

int envelope_result_encode(const envelope_result *r, const envelope_limits *lim, envelope_buf *b,
                           char *err, size_t errlen)
{
    return encode(&result_rec, r, lim, b, err, errlen);
}

/* ---- decoder ------------------------------------------------------------ */

typedef struct cursor {
    const unsigned char *p, *end;
    char *err;
    size_t errlen;
} cursor;

static size_t left(const cursor *c)
{
    return (size_t)(c->end - c->p);
}

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads an n-byte big-endian length or value after the type byte. */
static int take(cursor *c, size_t n, uint64_t *v, const char *what)
{
    if (left(c) < n)
        return merr_fail(c->err, c->errlen, ENVELOPE_ETRUNCATED,
                         "truncated record: %s needs %zu bytes, %zu left", what, n, left(c));
    *v = be(c->p, n);
    c->p += n;
    return 0;
}

/* Skips n bytes of a value body (string, bin, ext). */
static int skip(cursor *c, uint64_t n, const char *what)
{
    if (left(c) < n)
        return merr_fail(c->err, c->errlen, ENVELOPE_ETRUNCATED,
                         "truncated record: %s of %llu bytes, %zu left", what,
                         (unsigned long long)n, left(c));
    c->p += n;
    return 0;
}

/* The msgpack shapes the decoder tells apart. */
typedef enum shape {
    S_NIL,
    S_BOOL,
    S_UINT,
    S_INT,
    S_FLOAT,
    S_STR,
    S_BIN,
    S_ARR,
    S_MAP,
    S_EXT
} shape;

static const char *shape_name(shape s)
{
    static const char *const names[] = {"nil",    "boolean", "integer", "integer", "float",
                                        "string", "binary",  "array",   "map",     "ext"};
    return names[s];
}

/* Reads the head of one value: its shape and, for strings/bin/ext, the
   length of the body that follows (not consumed); for arrays/maps, the
   count; for numbers and booleans the value (ints as uint64 bits). */
typedef struct head {
    shape s;
    uint64_t n; /* value, length or count */
} head;

static int read_head(cursor *c, head *h)
{
    if (left(c) < 1)
        return merr_fail(c->err, c->errlen, ENVELOPE_ETRUNCATED,
                         "truncated record: value expected");
    unsigned char b = *c->p++;
    uint64_t v;
    int rc = 0;
    if (b <= 0x7f) {
        *h = (head){S_UINT, b};
    } else if (b <= 0x8f) {
        *h = (head){S_MAP, b & 0x0fu};
    } else if (b <= 0x9f) {
        *h = (head){S_ARR, b & 0x0fu};
    } else if (b <= 0xbf) {
        *h = (head){S_STR, b & 0x1fu};
    } else if (b >= 0xe0) {
        *h = (head){S_INT, (uint64_t)(int64_t)(int8_t)b};
    } else {
        switch (b) {
        case 0xc0:
            *h = (head){S_NIL, 0};
            break;
        case 0xc2:
        case 0xc3:
            *h = (head){S_BOOL, b == 0xc3};
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            rc = take(c, (size_t)1 << (b - 0xc4), &v, "binary length");
            *h = (head){S_BIN, v};
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9:
            rc = take(c, (size_t)1 << (b - 0xc7), &v, "ext length");
            *h = (head){S_EXT, v + 1}; /* the type byte is part of the body */
            break;
        case 0xca:
        case 0xcb:
            rc = take(c, b == 0xca ? 4 : 8, &v, "float");
            *h = (head){S_FLOAT, v};
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            rc = take(c, (size_t)1 << (b - 0xcc), &v, "integer");
            *h = (head){S_UINT, v};
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t n = (size_t)1 << (b - 0xd0);
            rc = take(c, n, &v, "integer");
            if (rc == 0 && n < 8 && (v >> (8 * n - 1)) != 0) /* sign-extend */
                v |= ~(uint64_t)0 << (8 * n);
            *h = (head){(int64_t)v < 0 ? S_INT : S_UINT, v};
            break;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            *h = (head){S_EXT, 1 + ((uint64_t)1 << (b - 0xd4))};
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            rc = take(c, (size_t)1 << (b - 0xd9), &v, "string length");
            *h = (head){S_STR, v};
            break;
        case 0xdc:
        case 0xdd:
            rc = take(c, b == 0xdc ? 2 : 4, &v, "array length");
            *h = (head){S_ARR, v};
            break;
        case 0xde:
        case 0xdf:
            rc = take(c, b == 0xde ? 2 : 4, &v, "map length");
            *h = (head){S_MAP, v};
            break;
        default: /* 0xc1: never used */
            return merr_fail(c->err, c->errlen, ENVELOPE_EMALFORMED,
                             "malformed record: byte 0x%02x is not a msgpack type", b);
        }
    }
    if (rc == 0 && (h->s == S_ARR || h->s == S_MAP)) {
        /* Every element takes at least one byte: believe no count above that. */
        uint64_t min = h->s == S_MAP ? 2 * h->n : h->n;
        if (min > left(c))
            rc = merr_fail(c->err, c->errlen, ENVELOPE_ETRUNCATED,
                           "truncated record: %s of %llu elements, %zu bytes left",
                           shape_name(h->s), (unsigned long long)h->n, left(c));
    }
    return rc;
}

/* Skips one whole value (an unknown field's), nested at most SKIP_DEPTH. */
static int skip_value(cursor *c, int depth)
{
    head h;
    int rc = read_head(c, &h);
    if (rc < 0)
        return rc;
    switch (h.s) {
    case S_STR:
    case S_BIN:
    case S_EXT:
        return skip(c, h.n, shape_name(h.s));
    case S_ARR:
    case S_MAP:
        if (depth >= SKIP_DEPTH)
            return merr_fail(c->err, c->errlen, ENVELOPE_EMALFORMED,
                             "malformed record: unknown field nested deeper than %d", SKIP_DEPTH);
        for (uint64_t i = 0, n = h.s == S_MAP ? 2 * h.n : h.n; i < n; i++)
            if ((rc = skip_value(c, depth + 1)) < 0)
                return rc;
        return 0;
    default:
        return 0;
    }
}

/* Reads the header; returns 0 or an error naming what is wrong. */
static int read_header(cursor *c, const record *rec)
{
    size_t n = left(c) < 3 ? left(c) : 3;
    if (memcmp(c->p, rec->magic, n) != 0) {
        const record *other = rec == &task_rec ? &result_rec : &task_rec;
        if (n == 3 && memcmp(c->p, other->magic, 3) == 0)
            return merr_fail(c->err, c->errlen, ENVELOPE_EMAGIC, "a %s where a %s was expected",
                             other->what, rec->what);
        return merr_fail(c->err, c->errlen, ENVELOPE_EMAGIC,
                         "not a mutirao %s (magic '%s' expected)", rec->what, rec->magic);
    }
    if (left(c) < HDRLEN)
        return merr_fail(c->err, c->errlen, ENVELOPE_ETRUNCATED,
                         "truncated record: %zu bytes, a %d-byte header expected", left(c), HDRLEN);
    unsigned v = c->p[3];
    if (v > ENVELOPE_FORMAT_VERSION)
        return merr_fail(c->err, c->errlen, ENVELOPE_ENEWER,
                         "%s version %u was written by a newer mutirao; this one reads up to %d",
                         rec->what, v, ENVELOPE_FORMAT_VERSION);
    if (v < 1)
        return merr_fail(c->err, c->errlen, ENVELOPE_EVERSION, "%s version %u is not supported",
                         rec->what, v);
    c->p += HDRLEN;
    return 0;
}

/* Reads the value of known field f into the struct at base. */
static int read_field(cursor *c, const field *f, char *base, const envelope_limits *lim)
{
    head h;
    int rc = read_head(c, &h);
    if (rc < 0)
        return rc;
    void *v = base + f->off;
    const char *want = NULL;
    switch (f->k) {
    case K_ID:
    case K_POOL: {
        if (h.s != S_STR) {
            want = "string";
            break;
        }
        if ((rc = skip(c, h.n, "string")) < 0)
            return rc;
        const char *s = (const char *)c->p - h.n;
        char why[160];
        rc = f->k == K_ID ? envelope_check_id(s, (size_t)h.n, why, sizeof why)
                          : envelope_check_pool(s, (size_t)h.n, why, sizeof why);
        if (rc < 0)
            return merr_fail(c->err, c->errlen, rc, "field '%s': %s", f->name, why);
        memcpy(v, s, (size_t)h.n);
        ((char *)v)[h.n] = '\0';
        return 0;
    }
    case K_ATTEMPT:
    case K_U64:
    case K_U32:
        if (h.s == S_INT)
            return merr_fail(c->err, c->errlen, ENVELOPE_ERANGE,
                             "field '%s': negative integer %lld", f->name, (long long)(int64_t)h.n);
        if (h.s != S_UINT) {
            want = "integer";
            break;
        }
        if (f->k == K_U64) {
            *(uint64_t *)v = h.n;
            return 0;
        }
        if (f->k == K_U32) {
            if (h.n > UINT32_MAX)
                return merr_fail(c->err, c->errlen, ENVELOPE_ERANGE,
                                 "field '%s': %llu, an integer from 0 to %lu expected", f->name,
                                 (unsigned long long)h.n, (unsigned long)UINT32_MAX);
            *(uint32_t *)v = (uint32_t)h.n;
            return 0;
        }
        if (h.n < 1 || h.n > UINT32_MAX)
            return merr_fail(c->err, c->errlen, ENVELOPE_ERANGE,
                             "field '%s': %llu, an integer from 1 to %lu expected", f->name,
                             (unsigned long long)h.n, (unsigned long)UINT32_MAX);
        *(uint32_t *)v = (uint32_t)h.n;
        return 0;
    case K_BOOL:
        if (h.s != S_BOOL) {
            want = "boolean";
            break;
        }
        *(int *)v = (int)h.n;
        return 0;
    case K_PAYLOAD:
        if (h.s != S_BIN) {
            want = "binary";
            break;
        }
        if (h.n > lim->max_payload)
            return merr_fail(c->err, c->errlen, ENVELOPE_ETOOBIG,
                             "field '%s': %llu bytes, the limit is %zu", f->name,
                             (unsigned long long)h.n, lim->max_payload);
        if ((rc = skip(c, h.n, f->name)) < 0)
            return rc;
        *(const char **)v = (const char *)c->p - h.n;
        *(size_t *)(base + f->len_off) = (size_t)h.n;
        return 0;
    }
    return merr_fail(c->err, c->errlen, ENVELOPE_ETYPE, "field '%s': %s expected, got %s", f->name,
                     want, shape_name(h.s));
}

static int decode(const record *rec, const char *data, size_t len, const envelope_limits *lim,
                  void *out, size_t outsize, char *err, size_t errlen)
{
    envelope_limits dl;
    if (lim == NULL) {
        envelope_limits_default(&dl);
        lim = &dl;
    }
    if (out == NULL)
        return merr_fail(err, errlen, ENVELOPE_EINVAL, "no output struct");
    memset(out, 0, outsize);
    if (data == NULL && len > 0)
        return merr_fail(err, errlen, ENVELOPE_EINVAL, "NULL data with length %zu", len);
    cursor c = {(const unsigned char *)data, (const unsigned char *)data + len, err, errlen};
    if (len == 0)
        return merr_fail(err, errlen, ENVELOPE_ETRUNCATED, "empty %s", rec->what);

    int rc = read_header(&c, rec);
    head h = {S_NIL, 0};
    if (rc == 0)
        rc = read_head(&c, &h);
    if (rc == 0 && h.s != S_MAP)
        rc = merr_fail(err, errlen, ENVELOPE_EMALFORMED, "malformed %s: map expected, got %s",
                       rec->what, shape_name(h.s));
    unsigned seen = 0;
    int next = 0;
    for (uint64_t i = 0; rc == 0 && i < h.n; i++) {
        head k;
        if ((rc = read_head(&c, &k)) < 0)
            break;
        if (k.s != S_STR) {
            rc = merr_fail(err, errlen, ENVELOPE_EMALFORMED, "malformed %s: field name is a %s",
                           rec->what, shape_name(k.s));
            break;
        }
        if ((rc = skip(&c, k.n, "field name")) < 0)
            break;
        const char *name = (const char *)c.p - k.n;
        /* writers put the fields in the table's order: the search starts
         * after the field before */
        int fi = -1;
        for (int m = 0; m < rec->n && fi < 0; m++) {
            int j = (next + m) % rec->n;
            if (rec->fields[j].nlen == k.n && memcmp(rec->fields[j].name, name, k.n) == 0)
                fi = j;
        }
        if (fi >= 0)
            next = fi + 1;
        if (fi < 0) { /* a field from a later writer of this version: skip it */
            rc = skip_value(&c, 1);
        } else if (seen & (1u << fi)) {
            rc = merr_fail(err, errlen, ENVELOPE_EMALFORMED,
                           "malformed %s: field '%s' appears twice", rec->what,
                           rec->fields[fi].name);
        } else {
            seen |= 1u << fi;
            rc = read_field(&c, &rec->fields[fi], out, lim);
        }
    }
    for (int j = 0; rc == 0 && j < rec->n; j++)
        if (!(seen & (1u << j)) && !rec->fields[j].opt)
            rc = merr_fail(err, errlen, ENVELOPE_EMISSING, "%s without field '%s'", rec->what,
                           rec->fields[j].name);
    if (rc == 0 && c.p != c.end)
        rc = merr_fail(err, errlen, ENVELOPE_EMALFORMED, "malformed %s: %zu bytes after the end",
                       rec->what, left(&c));
    if (rc == 0)
        rc = check_ref(rec, out, lim, err, errlen);
    if (rc == 0 && rec == &task_rec) {
        const envelope_task *t = out;
        if (t->deadline_ms != 0 && t->deadline_ms < t->submitted_at_ms)
            rc = merr_fail(err, errlen, ENVELOPE_ERANGE,
                           "field 'deadline': %llu ms is before submitted_at %llu ms",
                           (unsigned long long)t->deadline_ms,
                           (unsigned long long)t->submitted_at_ms);
    }
    if (rc < 0)
        memset(out, 0, outsize);
    return rc;
}

int envelope_task_decode(const char *data, size_t len, const envelope_limits *lim,
                         envelope_task *out, char *err, size_t errlen)
{
    return decode(&task_rec, data, len, lim, out, sizeof *out, err, errlen);
}

int envelope_result_decode(const char *data, size_t len, const envelope_limits *lim,
                           envelope_result *out, char *err, size_t errlen)
{
    return decode(&result_rec, data, len, lim, out, sizeof *out, err, errlen);
}
