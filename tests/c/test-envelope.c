/*
** test-envelope.c: tests of the task envelope and the result record
** (shared/wire/envelope.h): round trips, and every way a record can be refused.
** Run all: test-envelope; run one: test-envelope NAME.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "allow.h"
#include "envelope.h"
#include "retry.h"
#include "test.h"

/* Asserts that rc is the error code want, printing both names and err. */
#define ASSERT_ERR(rc, want, err)                                                                  \
    do {                                                                                           \
        int r_ = (rc), w_ = (want);                                                                \
        if (r_ != w_) {                                                                            \
            fprintf(stderr, "%s:%d: %s: expected %s, got %s (%d): %s\n", __FILE__, __LINE__, #rc,  \
                    envelope_errname(w_), envelope_errname(r_), r_, (err));                        \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- helpers ----------------------------------------------------------- */

static const char payload_bytes[] = "MTR\x01\x92\xa3one\x00\xff";
#define PAYLOAD_LEN (sizeof payload_bytes - 1)

static envelope_task sample_task(void)
{
    envelope_task t;
    memset(&t, 0, sizeof t);
    envelope_copy(t.id, sizeof t.id, "01HX3J8Z-task:42");
    envelope_copy(t.pool, sizeof t.pool, "image-resize_v2.eu");
    t.attempt = 3;
    t.submitted_at_ms = 1715250000123ULL;
    t.deadline_ms = 1715250030123ULL;
    envelope_copy(t.producer, sizeof t.producer, "host-a:1234");
    t.payload = payload_bytes;
    t.payload_len = PAYLOAD_LEN;
    return t;
}

static envelope_result sample_result(void)
{
    envelope_result r;
    memset(&r, 0, sizeof r);
    envelope_copy(r.id, sizeof r.id, "01HX3J8Z-task:42");
    envelope_copy(r.pool, sizeof r.pool, "image-resize_v2.eu");
    r.attempt = 1;
    r.ok = 0;
    r.finished_at_ms = UINT64_MAX;
    envelope_copy(r.worker, sizeof r.worker, "worker-7");
    r.payload = payload_bytes;
    r.payload_len = PAYLOAD_LEN;
    return r;
}

/* A hand-made record: header then a map built field by field. */
typedef struct craft {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} craft;

static void craft_begin(craft *c, const char *magic, unsigned version, size_t nfields)
{
    msgpack_sbuffer_init(&c->sb);
    msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
    char hdr[4] = {magic[0], magic[1], magic[2], (char)version};
    msgpack_sbuffer_write(&c->sb, hdr, 4);
    msgpack_pack_map(&c->pk, nfields);
}

static void craft_key(craft *c, const char *k)
{
    msgpack_pack_str(&c->pk, strlen(k));
    msgpack_pack_str_body(&c->pk, k, strlen(k));
}

static void craft_str(craft *c, const char *k, const char *v)
{
    craft_key(c, k);
    msgpack_pack_str(&c->pk, strlen(v));
    msgpack_pack_str_body(&c->pk, v, strlen(v));
}

static void craft_uint(craft *c, const char *k, uint64_t v)
{
    craft_key(c, k);
    msgpack_pack_uint64(&c->pk, v);
}

static void craft_bin(craft *c, const char *k, const char *v, size_t n)
{
    craft_key(c, k);
    msgpack_pack_bin(&c->pk, n);
    msgpack_pack_bin_body(&c->pk, v, n);
}

/* The standard task fields except the one named omit ("" for none); the
   caller adds extra fields (map size: 7 - omitted + extra). */
static void craft_task(craft *c, const char *omit, size_t extra)
{
    craft_begin(c, "MTE", 1, 7 - (omit[0] != '\0') + extra);
    if (strcmp(omit, "id") != 0)
        craft_str(c, "id", "t-1");
    if (strcmp(omit, "pool") != 0)
        craft_str(c, "pool", "jobs");
    if (strcmp(omit, "attempt") != 0)
        craft_uint(c, "attempt", 1);
    if (strcmp(omit, "submitted_at") != 0)
        craft_uint(c, "submitted_at", 1000);
    if (strcmp(omit, "deadline") != 0)
        craft_uint(c, "deadline", 0);
    if (strcmp(omit, "producer") != 0)
        craft_str(c, "producer", "p-1");
    if (strcmp(omit, "payload") != 0)
        craft_bin(c, "payload", "MTR\x01\x90", 5);
}

static int craft_decode(craft *c, envelope_task *t, char *err, size_t errlen)
{
    int rc = envelope_task_decode(c->sb.data, c->sb.size, NULL, t, err, errlen);
    msgpack_sbuffer_destroy(&c->sb);
    return rc;
}

/* ---- tests ------------------------------------------------------------- */

static int test_task_roundtrip(void)
{
    envelope_task t = sample_task(), d;
    envelope_buf b;
    char storage[512], err[256] = "";
    envelope_buf_init(&b, storage, sizeof storage);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT(b.data == storage); /* fits: no allocation */
    /* Header: magic "MTE", version 1, then a fixmap of 7 fields. */
    ASSERT_EQ(memcmp(b.data, "MTE\x01", 4), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_STR_EQ(d.id, t.id);
    ASSERT_STR_EQ(d.pool, t.pool);
    ASSERT_EQ(d.attempt, 3);
    ASSERT(d.submitted_at_ms == t.submitted_at_ms);
    ASSERT(d.deadline_ms == t.deadline_ms);
    ASSERT_STR_EQ(d.producer, t.producer);
    ASSERT_EQ(d.payload_len, PAYLOAD_LEN);
    ASSERT_EQ(memcmp(d.payload, payload_bytes, PAYLOAD_LEN), 0);
    /* Zero-copy: the payload is a slice of the input. */
    ASSERT(d.payload >= b.data && d.payload + d.payload_len <= b.data + b.len);
    envelope_buf_free(&b);

    /* Extremes: max-size ids and pool, attempt UINT32_MAX, no deadline,
       empty payload, growable buffer without storage. */
    memset(t.id, 'a', ENVELOPE_ID_MAX);
    t.id[ENVELOPE_ID_MAX] = '\0';
    memset(t.pool, 'p', ENVELOPE_POOL_MAX);
    t.pool[ENVELOPE_POOL_MAX] = '\0';
    t.attempt = UINT32_MAX;
    t.submitted_at_ms = UINT64_MAX;
    t.deadline_ms = 0;
    t.payload = NULL;
    t.payload_len = 0;
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_STR_EQ(d.id, t.id);
    ASSERT_STR_EQ(d.pool, t.pool);
    ASSERT(d.attempt == UINT32_MAX);
    ASSERT(d.submitted_at_ms == UINT64_MAX);
    ASSERT_EQ(d.deadline_ms, 0);
    ASSERT_EQ(d.payload_len, 0);
    envelope_buf_free(&b);
    ASSERT(b.data == NULL && b.len == 0);
    return 0;
}

static int test_result_roundtrip(void)
{
    envelope_result r = sample_result(), d;
    envelope_buf b;
    char storage[16], err[256] = ""; /* too small: moves to the heap */
    envelope_buf_init(&b, storage, sizeof storage);
    for (int ok = 0; ok <= 1; ok++) {
        r.ok = ok;
        ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
        ASSERT(b.data != storage);
        ASSERT_EQ(memcmp(b.data, "MTO\x01", 4), 0);
        ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
        ASSERT_STR_EQ(d.id, r.id);
        ASSERT_STR_EQ(d.pool, r.pool);
        ASSERT_STR_EQ(d.worker, r.worker);
        ASSERT_EQ(d.attempt, 1);
        ASSERT_EQ(d.ok, ok);
        ASSERT(d.finished_at_ms == UINT64_MAX);
        ASSERT_EQ(d.payload_len, PAYLOAD_LEN);
        ASSERT_EQ(memcmp(d.payload, payload_bytes, PAYLOAD_LEN), 0);
    }
    envelope_buf_free(&b);
    ASSERT(b.data == storage && b.len == 0);

    /* A large payload: the buffer grows several times. */
    size_t n = 300000;
    char *big = malloc(n);
    ASSERT(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)(i * 7);
    r.payload = big;
    r.payload_len = n;
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.payload_len, n);
    ASSERT_EQ(memcmp(d.payload, big, n), 0);
    envelope_buf_free(&b);
    free(big);
    return 0;
}

static int test_truncation(void)
{
    envelope_task t = sample_task(), d;
    envelope_result r = sample_result(), dr;
    envelope_buf b;
    char err[256];
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    for (size_t i = 0; i < b.len; i++) {
        /* A private copy of the prefix, so ASan sees any read past it. */
        char *p = malloc(i + 1);
        ASSERT(p != NULL);
        memcpy(p, b.data, i);
        int rc = envelope_task_decode(p, i, NULL, &d, err, sizeof err);
        free(p);
        if (rc != ENVELOPE_ETRUNCATED)
            fprintf(stderr, "prefix %zu of %zu\n", i, b.len);
        ASSERT_ERR(rc, ENVELOPE_ETRUNCATED, err);
        ASSERT_EQ(d.attempt, 0); /* zeroed on error */
        ASSERT_EQ(d.id[0], '\0');
    }
    ASSERT_EQ(envelope_task_decode(NULL, 0, NULL, &d, err, sizeof err), ENVELOPE_ETRUNCATED);
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    for (size_t i = 0; i < b.len; i++) {
        char *p = malloc(i + 1);
        ASSERT(p != NULL);
        memcpy(p, b.data, i);
        int rc = envelope_result_decode(p, i, NULL, &dr, err, sizeof err);
        free(p);
        ASSERT_ERR(rc, ENVELOPE_ETRUNCATED, err);
    }
    envelope_buf_free(&b);
    return 0;
}

static int test_trailing_bytes(void)
{
    envelope_task t = sample_task(), d;
    envelope_buf b;
    char err[256];
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    char *p = malloc(b.len + 1);
    ASSERT(p != NULL);
    memcpy(p, b.data, b.len);
    p[b.len] = '\0';
    int rc = envelope_task_decode(p, b.len + 1, NULL, &d, err, sizeof err);
    free(p);
    envelope_buf_free(&b);
    ASSERT_ERR(rc, ENVELOPE_EMALFORMED, err);
    ASSERT_CONTAINS(err, "1 bytes after the end");
    return 0;
}

static int test_magic_and_version(void)
{
    envelope_task t = sample_task(), d;
    envelope_result r = sample_result(), dr;
    envelope_buf b;
    char err[256];
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);

    /* A task envelope is not a result record, and the error says so. */
    ASSERT_ERR(envelope_result_decode(b.data, b.len, NULL, &dr, err, sizeof err), ENVELOPE_EMAGIC,
               err);
    ASSERT_CONTAINS(err, "a task envelope where a result record was expected");

    b.data[0] = 'X';
    ASSERT_ERR(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), ENVELOPE_EMAGIC,
               err);
    ASSERT_ERR(envelope_task_decode(b.data, 1, NULL, &d, err, sizeof err), ENVELOPE_EMAGIC, err);
    b.data[0] = 'M';
    /* A codec message is not an envelope either. */
    ASSERT_ERR(envelope_task_decode(payload_bytes, PAYLOAD_LEN, NULL, &d, err, sizeof err),
               ENVELOPE_EMAGIC, err);

    /* A newer version: refused with its own code, whatever follows. */
    b.data[3] = 2;
    ASSERT_ERR(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), ENVELOPE_ENEWER,
               err);
    ASSERT_STR_EQ(err, "task envelope version 2 was written by a newer mutirao; this one reads up "
                       "to 1");
    b.data[3] = (char)0xff;
    ASSERT_ERR(envelope_task_decode(b.data, 4, NULL, &d, err, sizeof err), ENVELOPE_ENEWER, err);
    b.data[3] = 0;
    ASSERT_ERR(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), ENVELOPE_EVERSION,
               err);

    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_ERR(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), ENVELOPE_EMAGIC,
               err);
    ASSERT_CONTAINS(err, "a result record where a task envelope was expected");
    b.data[3] = 9;
    ASSERT_ERR(envelope_result_decode(b.data, b.len, NULL, &dr, err, sizeof err), ENVELOPE_ENEWER,
               err);
    envelope_buf_free(&b);

    /* A newer version with fields this reader has never heard of. */
    craft c;
    craft_begin(&c, "MTE", 2, 1);
    craft_str(&c, "trace_parent", "00-abc");
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ENEWER, err);
    return 0;
}

static int test_unknown_fields_ignored(void)
{
    envelope_task d;
    char err[256] = "";
    craft c;
    craft_task(&c, "", 4);
    craft_str(&c, "trace", "00-4bf92f3577b34da6a3ce929d0e0e4736");
    craft_key(&c, "routing");
    msgpack_pack_map(&c.pk, 2);
    craft_key(&c, "nested");
    msgpack_pack_array(&c.pk, 4);
    msgpack_pack_nil(&c.pk);
    msgpack_pack_double(&c.pk, 1.5);
    msgpack_pack_float(&c.pk, 2.5f);
    msgpack_pack_int64(&c.pk, -5);
    craft_key(&c, "ext");
    msgpack_pack_ext(&c.pk, 3, 42);
    msgpack_pack_ext_body(&c.pk, "abc", 3);
    craft_key(&c, "fixext");
    msgpack_pack_ext(&c.pk, 8, -1);
    msgpack_pack_ext_body(&c.pk, "12345678", 8);
    craft_key(&c, "flags");
    msgpack_pack_true(&c.pk);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), 0);
    ASSERT_STR_EQ(d.id, "t-1");
    ASSERT_STR_EQ(d.pool, "jobs");
    ASSERT_EQ(d.payload_len, 5);

    /* Unknown fields nested too deep, or claiming more than is there. */
    craft_task(&c, "", 1);
    craft_key(&c, "deep");
    for (int i = 0; i < 40; i++)
        msgpack_pack_array(&c.pk, 1);
    msgpack_pack_nil(&c.pk);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED, err);
    ASSERT_CONTAINS(err, "nested deeper");

    craft_task(&c, "", 1);
    craft_key(&c, "huge");
    msgpack_pack_array(&c.pk, 0xffffffffu);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETRUNCATED, err);
    craft_task(&c, "", 1);
    craft_key(&c, "huge");
    msgpack_pack_bin(&c.pk, 0xffffffffu);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETRUNCATED, err);

    /* Fields in another order are fine; signed integer encodings too. */
    craft_begin(&c, "MTE", 1, 7);
    craft_bin(&c, "payload", "x", 1);
    craft_str(&c, "producer", "p");
    craft_key(&c, "attempt");
    msgpack_pack_int64(&c.pk, 7); /* packed as a positive fixint by msgpack-c */
    craft_key(&c, "deadline");
    msgpack_sbuffer_write(&c.sb, "\xd3\x00\x00\x00\x00\x00\x00\x07\xd0", 9); /* int64 2000 */
    craft_key(&c, "submitted_at");
    msgpack_sbuffer_write(&c.sb, "\xd1\x03\xe8", 3); /* int16 1000 */
    craft_str(&c, "pool", "P");
    craft_str(&c, "id", "i");
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), 0);
    ASSERT_EQ(d.attempt, 7);
    ASSERT_EQ(d.deadline_ms, 2000);
    ASSERT_EQ(d.submitted_at_ms, 1000);
    return 0;
}

static int test_bad_types(void)
{
    envelope_task d;
    char err[256] = "";
    craft c;
    static const char *const names[] = {"id",       "pool",     "attempt", "submitted_at",
                                        "deadline", "producer", "payload"};

    /* Every field missing in turn. */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        craft_task(&c, names[i], 0);
        ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMISSING, err);
        char want[64];
        snprintf(want, sizeof want, "without field '%s'", names[i]);
        ASSERT_CONTAINS(err, want);
    }
    /* Every field with a wrong type in turn: nil, then a map. */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (int shape = 0; shape < 2; shape++) {
            craft_task(&c, names[i], 1);
            craft_key(&c, names[i]);
            if (shape == 0)
                msgpack_pack_nil(&c.pk);
            else
                msgpack_pack_map(&c.pk, 0);
            ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE, err);
            ASSERT_CONTAINS(err, names[i]);
            ASSERT_CONTAINS(err, shape == 0 ? "got nil" : "got map");
        }
    }
    /* Near misses: a string as bin, a float timestamp, a string attempt. */
    craft_task(&c, "payload", 1);
    craft_str(&c, "payload", "MTR\x01\x90");
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE, err);
    ASSERT_STR_EQ(err, "field 'payload': binary expected, got string");
    craft_task(&c, "id", 1);
    craft_bin(&c, "id", "t-1", 3);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE, err);
    craft_task(&c, "submitted_at", 1);
    craft_key(&c, "submitted_at");
    msgpack_pack_double(&c.pk, 1000.0);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE, err);
    craft_task(&c, "attempt", 1);
    craft_str(&c, "attempt", "1");
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE, err);

    /* Ranges: attempt 0 and 2^32, negative timestamps, deadline < submit. */
    craft_task(&c, "attempt", 1);
    craft_uint(&c, "attempt", 0);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE, err);
    craft_task(&c, "attempt", 1);
    craft_uint(&c, "attempt", (uint64_t)UINT32_MAX + 1);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE, err);
    craft_task(&c, "submitted_at", 1);
    craft_key(&c, "submitted_at");
    msgpack_pack_int64(&c.pk, -1);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE, err);
    ASSERT_CONTAINS(err, "negative");
    craft_task(&c, "deadline", 1);
    craft_uint(&c, "deadline", 999);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE, err);
    ASSERT_CONTAINS(err, "before submitted_at");

    /* Structure: duplicate field, non-string key, not a map, bad byte. */
    craft_task(&c, "", 1);
    craft_str(&c, "pool", "other");
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED, err);
    ASSERT_CONTAINS(err, "'pool' appears twice");
    craft_task(&c, "", 1);
    msgpack_pack_int(&c.pk, 1);
    msgpack_pack_int(&c.pk, 2);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED, err);
    msgpack_sbuffer_init(&c.sb);
    msgpack_packer_init(&c.pk, &c.sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&c.sb, "MTE\x01", 4);
    msgpack_pack_array(&c.pk, 0);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED, err);
    ASSERT_CONTAINS(err, "map expected, got array");
    ASSERT_ERR(envelope_task_decode("MTE\x01\xc1", 5, NULL, &d, err, sizeof err),
               ENVELOPE_EMALFORMED, err);
    ASSERT_ERR(envelope_task_decode("MTE\x01\x81\xc1\xc0", 7, NULL, &d, err, sizeof err),
               ENVELOPE_EMALFORMED, err);

    /* The result record's own field: ok must be a boolean. */
    envelope_result dr;
    craft_begin(&c, "MTO", 1, 7);
    craft_str(&c, "id", "t");
    craft_str(&c, "pool", "p");
    craft_uint(&c, "attempt", 1);
    craft_uint(&c, "ok", 1);
    craft_uint(&c, "finished_at", 5);
    craft_str(&c, "worker", "w");
    craft_bin(&c, "payload", "", 0);
    int rc = envelope_result_decode(c.sb.data, c.sb.size, NULL, &dr, err, sizeof err);
    msgpack_sbuffer_destroy(&c.sb);
    ASSERT_ERR(rc, ENVELOPE_ETYPE, err);
    ASSERT_STR_EQ(err, "field 'ok': boolean expected, got integer");
    return 0;
}

static int test_oversize(void)
{
    envelope_limits lim;
    envelope_limits_default(&lim);
    ASSERT(lim.max_payload == ENVELOPE_PAYLOAD_MAX_DEFAULT);
    lim.max_payload = PAYLOAD_LEN - 1;
    envelope_task t = sample_task(), d;
    envelope_result r = sample_result();
    envelope_buf b;
    char err[256];
    envelope_buf_init(&b, NULL, 0);
    ASSERT_ERR(envelope_task_encode(&t, &lim, &b, err, sizeof err), ENVELOPE_ETOOBIG, err);
    ASSERT_EQ(b.len, 0);
    ASSERT_ERR(envelope_result_encode(&r, &lim, &b, err, sizeof err), ENVELOPE_ETOOBIG, err);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_ERR(envelope_task_decode(b.data, b.len, &lim, &d, err, sizeof err), ENVELOPE_ETOOBIG,
               err);
    ASSERT_CONTAINS(err, "the limit is");
    lim.max_payload = PAYLOAD_LEN;
    ASSERT_EQ(envelope_task_decode(b.data, b.len, &lim, &d, err, sizeof err), 0);
    envelope_buf_free(&b);

    /* Oversize id and pool strings on the wire. */
    char longid[ENVELOPE_ID_MAX + 2], longpool[ENVELOPE_POOL_MAX + 2];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    memset(longpool, 'p', sizeof longpool - 1);
    longpool[sizeof longpool - 1] = '\0';
    craft c;
    craft_task(&c, "id", 1);
    craft_str(&c, "id", longid);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EBADID, err);
    ASSERT_CONTAINS(err, "id of 128 bytes, at most 127 allowed");
    craft_task(&c, "producer", 1);
    craft_str(&c, "producer", longid);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EBADID, err);
    ASSERT_CONTAINS(err, "field 'producer'");
    craft_task(&c, "pool", 1);
    craft_str(&c, "pool", longpool);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EBADPOOL, err);
    ASSERT_CONTAINS(err, "pool name of 201 bytes, at most 200 allowed");
    return 0;
}

static int test_bad_names(void)
{
    char err[256];
    static const char *const bad_ids[] = {"", "a b", "a/b", "é", "a\nb", "tab\t", "a\\b", "x@y"};
    static const char *const good_ids[] = {"a", "A-Z_0.9:x", "01HX3J8ZQ7:task-42"};
    static const char *const bad_pools[] = {"",    ".",    "..",   "a b",    "a/b",
                                            "a:b", "ação", "a\0b", "jobs#1", "*"};
    static const char *const good_pools[] = {"a", "...", "my.pool_v2-x", "JOBS", "-", "_"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
        ASSERT_ERR(envelope_check_id(bad_ids[i], strlen(bad_ids[i]), err, sizeof err),
                   ENVELOPE_EBADID, bad_ids[i]);
    for (size_t i = 0; i < sizeof good_ids / sizeof good_ids[0]; i++)
        ASSERT_ERR(envelope_check_id(good_ids[i], strlen(good_ids[i]), err, sizeof err), 0, err);
    for (size_t i = 0; i < sizeof bad_pools / sizeof bad_pools[0]; i++)
        ASSERT_ERR(
            envelope_check_pool(bad_pools[i], i == 7 ? 3 : strlen(bad_pools[i]), err, sizeof err),
            ENVELOPE_EBADPOOL, bad_pools[i]);
    for (size_t i = 0; i < sizeof good_pools / sizeof good_pools[0]; i++)
        ASSERT_ERR(envelope_check_pool(good_pools[i], strlen(good_pools[i]), err, sizeof err), 0,
                   err);
    ASSERT_EQ(envelope_check_pool("a b", 3, err, sizeof err), ENVELOPE_EBADPOOL);
    ASSERT_STR_EQ(err, "pool name has ' ' at byte 2; Kafka topics allow only A-Z a-z 0-9 . _ -");
    ASSERT_EQ(envelope_check_id("a\x01", 2, err, sizeof err), ENVELOPE_EBADID);
    ASSERT_CONTAINS(err, "0x01 at byte 2");
    ASSERT_EQ(envelope_check_pool(NULL, 0, NULL, 0), ENVELOPE_EBADPOOL);

    /* The encoder refuses what the decoder would. */
    envelope_task t = sample_task();
    envelope_buf b;
    envelope_buf_init(&b, NULL, 0);
    envelope_copy(t.pool, sizeof t.pool, "bad pool");
    ASSERT_ERR(envelope_task_encode(&t, NULL, &b, err, sizeof err), ENVELOPE_EBADPOOL, err);
    ASSERT_CONTAINS(err, "field 'pool'");
    t = sample_task();
    t.id[0] = '\0';
    ASSERT_ERR(envelope_task_encode(&t, NULL, &b, err, sizeof err), ENVELOPE_EBADID, err);
    t = sample_task();
    memset(t.producer, 'x', sizeof t.producer); /* no NUL at all */
    ASSERT_ERR(envelope_task_encode(&t, NULL, &b, err, sizeof err), ENVELOPE_EBADID, err);
    ASSERT_CONTAINS(err, "not NUL-terminated");
    t = sample_task();
    t.attempt = 0;
    ASSERT_ERR(envelope_task_encode(&t, NULL, &b, err, sizeof err), ENVELOPE_ERANGE, err);
    t = sample_task();
    t.deadline_ms = t.submitted_at_ms - 1;
    ASSERT_ERR(envelope_task_encode(&t, NULL, &b, err, sizeof err), ENVELOPE_ERANGE, err);
    t = sample_task();
    t.payload = NULL;
    ASSERT_ERR(envelope_task_encode(&t, NULL, &b, err, sizeof err), ENVELOPE_EINVAL, err);
    envelope_result r = sample_result();
    r.ok = 2;
    ASSERT_ERR(envelope_result_encode(&r, NULL, &b, err, sizeof err), ENVELOPE_ERANGE, err);
    r = sample_result();
    envelope_copy(r.worker, sizeof r.worker, "w/1");
    ASSERT_ERR(envelope_result_encode(&r, NULL, &b, err, sizeof err), ENVELOPE_EBADID, err);
    ASSERT_CONTAINS(err, "field 'worker'");
    ASSERT_EQ(b.len, 0);
    ASSERT_ERR(envelope_task_encode(NULL, NULL, &b, err, sizeof err), ENVELOPE_EINVAL, err);
    ASSERT_ERR(envelope_task_encode(&t, NULL, NULL, err, sizeof err), ENVELOPE_EINVAL, err);
    ASSERT_ERR(envelope_task_decode("MTE\x01", 4, NULL, NULL, err, sizeof err), ENVELOPE_EINVAL,
               err);
    envelope_buf_free(&b);

    /* Bad names on the wire. */
    envelope_task d;
    craft c;
    for (size_t i = 1; i < sizeof bad_pools / sizeof bad_pools[0]; i++) {
        if (i == 7)
            continue;
        craft_task(&c, "pool", 1);
        craft_str(&c, "pool", bad_pools[i]);
        ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EBADPOOL, bad_pools[i]);
    }
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        craft_task(&c, "id", 1);
        craft_str(&c, "id", bad_ids[i]);
        ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EBADID, bad_ids[i]);
    }
    /* envelope_copy refuses what does not fit. */
    char small[4];
    ASSERT_EQ(envelope_copy(small, sizeof small, "abc"), 0);
    ASSERT_EQ(envelope_copy(small, sizeof small, "abcd"), ENVELOPE_EINVAL);
    ASSERT_STR_EQ(small, "");
    return 0;
}

/* Random corruption of valid records: never a crash (ASan), always either
   success or a known error code with a message. */
static int test_corruption(void)
{
    envelope_task t = sample_task(), d;
    envelope_result r = sample_result(), dr;
    envelope_buf bt, br;
    char err[256];
    envelope_buf_init(&bt, NULL, 0);
    envelope_buf_init(&br, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &bt, err, sizeof err), 0);
    ASSERT_EQ(envelope_result_encode(&r, NULL, &br, err, sizeof err), 0);
    uint32_t seed = 12345;
    for (int iter = 0; iter < 40000; iter++) {
        const envelope_buf *src = iter % 2 ? &br : &bt;
        char *p = malloc(src->len);
        ASSERT(p != NULL);
        memcpy(p, src->data, src->len);
        int flips = 1 + iter % 3;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % src->len;
            seed = seed * 1103515245u + 12345u;
            p[at] = (char)(seed >> 16);
        }
        size_t len = src->len - (size_t)(iter % 5 == 0 ? (seed >> 4) % src->len : 0);
        err[0] = '\0';
        int rc = iter % 2 ? envelope_result_decode(p, len, NULL, &dr, err, sizeof err)
                          : envelope_task_decode(p, len, NULL, &d, err, sizeof err);
        free(p);
        ASSERT(rc <= 0 && rc >= ENVELOPE_ERANGE);
        if (rc < 0)
            ASSERT(err[0] != '\0');
    }
    envelope_buf_free(&bt);
    envelope_buf_free(&br);
    return 0;
}

/* max_deliveries: optional; written only when set, read when present, a
   record without it (an older writer) is accepted with 0; 0 or a non-integer
   given explicitly is refused. */
static int test_max_deliveries(void)
{
    envelope_task t = sample_task(), d;
    envelope_buf b;
    char err[256] = "";
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87); /* absent: 7 fields, as version 1 always wrote */
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.max_deliveries, 0);
    t.max_deliveries = 5;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x88);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.max_deliveries, 5);
    ASSERT_STR_EQ(d.id, t.id);
    envelope_buf_free(&b);

    /* docs/wire-format.md's example: 85 bytes, 101 with max_deliveries 3 */
    envelope_task x;
    memset(&x, 0, sizeof x);
    strcpy(x.id, "t-1");
    strcpy(x.pool, "jobs");
    strcpy(x.producer, "p-1");
    x.attempt = 1;
    x.submitted_at_ms = 1000;
    x.payload = "MTR\x01\x90";
    x.payload_len = 5;
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_task_encode(&x, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(b.len, 85);
    x.max_deliveries = 3;
    ASSERT_EQ(envelope_task_encode(&x, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(b.len, 101);
    ASSERT_EQ(memcmp(b.data + 85,
                     "\xae"
                     "max_deliveries"
                     "\x03",
                     16),
              0);
    envelope_buf_free(&b);

    /* a result record carries dead_lettered only when true */
    envelope_result r, rd;
    memset(&r, 0, sizeof r);
    strcpy(r.id, "t-1");
    strcpy(r.pool, "jobs");
    strcpy(r.worker, "w-1");
    r.attempt = 1;
    r.payload = "MTR\x01\x90";
    r.payload_len = 5;
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87);
    ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &rd, err, sizeof err), 0);
    ASSERT_EQ(rd.dead_lettered, 0);
    r.dead_lettered = 1;
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x88);
    ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &rd, err, sizeof err), 0);
    ASSERT_EQ(rd.dead_lettered, 1);
    ASSERT_EQ(rd.ok, 0);
    envelope_buf_free(&b);

    craft c;
    craft_task(&c, "", 1);
    craft_uint(&c, "max_deliveries", 0);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE);
    ASSERT(strstr(err, "max_deliveries") != NULL);
    craft_task(&c, "", 1);
    craft_str(&c, "max_deliveries", "3");
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE);
    craft_task(&c, "", 1);
    craft_uint(&c, "max_deliveries", 7);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), 0);
    ASSERT_EQ(d.max_deliveries, 7);
    return 0;
}

/* ref_len/ref_sum: a payload kept by reference. Round trip on both records;
   an inline payload beside a reference, a checksum without a length, or a
   length over max_ref are refused by the encoder and the decoder alike. */
static int test_by_reference(void)
{
    envelope_task t = sample_task(), d;
    envelope_result r = sample_result(), dr;
    envelope_buf b;
    char err[256] = "";
    envelope_buf_init(&b, NULL, 0);
    const char blob[] = "a payload kept in Redis";
    t.payload = "";
    t.payload_len = 0;
    t.ref_len = sizeof blob;
    t.ref_sum = envelope_ref_sum(blob, sizeof blob);
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.ref_len, sizeof blob);
    ASSERT_EQ(d.ref_sum, envelope_ref_sum(blob, sizeof blob));
    ASSERT_EQ(d.payload_len, 0);
    r.payload = "";
    r.payload_len = 0;
    r.ref_len = 3000000;
    r.ref_sum = 42;
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &dr, err, sizeof err), 0);
    ASSERT_EQ(dr.ref_len, 3000000);
    ASSERT_EQ(dr.ref_sum, 42);
    /* the checksum sees every byte */
    ASSERT(envelope_ref_sum("ab", 2) != envelope_ref_sum("ba", 2));
    ASSERT(envelope_ref_sum("a", 1) != envelope_ref_sum("a\0", 2));
    /* the fetched bytes checked against a reference: the readers' messages */
    uint64_t sum = envelope_ref_sum(blob, sizeof blob);
    ASSERT_EQ(envelope_ref_verify("arguments", "envelope", blob, sizeof blob, sizeof blob, sum, err,
                                  sizeof err),
              0);
    ASSERT_EQ(envelope_ref_verify("result values", "record", NULL, 0, 3000000, 42, err, sizeof err),
              ENVELOPE_EMISSING);
    ASSERT_STR_EQ(err, "its result values (3000000 bytes, kept in Redis by reference) are gone: "
                       "expired (result.ttl_s) or deleted");
    ASSERT_EQ(envelope_ref_verify("arguments", "envelope", blob, sizeof blob - 1, sizeof blob, sum,
                                  err, sizeof err),
              ENVELOPE_EMALFORMED);
    ASSERT_STR_EQ(err, "its arguments in Redis do not match its envelope (23 bytes, 24 expected, "
                       "or another checksum)");
    ASSERT_EQ(envelope_ref_verify("result values", "record", "b", 1, 1, envelope_ref_sum("a", 1),
                                  err, sizeof err),
              ENVELOPE_EMALFORMED);
    ASSERT_STR_CONTAINS(err, "do not match its record (1 bytes, 1 expected");
    /* refused on encode */
    envelope_task bad = sample_task();
    bad.ref_len = 10;
    ASSERT_EQ(envelope_task_encode(&bad, NULL, &b, err, sizeof err), ENVELOPE_EMALFORMED);
    bad = sample_task();
    bad.payload_len = 0;
    bad.ref_sum = 7;
    ASSERT_EQ(envelope_task_encode(&bad, NULL, &b, err, sizeof err), ENVELOPE_EMALFORMED);
    envelope_limits lim;
    envelope_limits_default(&lim);
    lim.max_ref = 100;
    t.ref_len = 101;
    ASSERT_EQ(envelope_task_encode(&t, &lim, &b, err, sizeof err), ENVELOPE_ETOOBIG);
    ASSERT(strstr(err, "ref_len") != NULL);
    envelope_buf_free(&b);
    /* refused on decode (the crafted payload is 5 bytes unless replaced) */
    craft c;
    craft_task(&c, "payload", 2);
    craft_bin(&c, "payload", "", 0);
    craft_uint(&c, "ref_sum", 9);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED);
    craft_task(&c, "", 1);
    craft_uint(&c, "ref_len", 5);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED);
    ASSERT(strstr(err, "both inline") != NULL);
    craft_task(&c, "payload", 2);
    craft_bin(&c, "payload", "", 0);
    craft_uint(&c, "ref_len", (uint64_t)ENVELOPE_PAYLOAD_MAX_DEFAULT + 1);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETOOBIG);
    craft_task(&c, "payload", 3);
    craft_bin(&c, "payload", "", 0);
    craft_uint(&c, "ref_len", 5);
    craft_uint(&c, "ref_sum", 9);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), 0);
    ASSERT_EQ(d.ref_len, 5);
    return 0;
}

/* retry.h: initial * 2^(attempt - 1) before attempt + 1, capped at max,
   moved by at most +- jitter; retry_random varies. */
static int test_retry_delay(void)
{
    pool_retry r;
    retry_default(&r);
    ASSERT_EQ(r.retries, 0);
    ASSERT_EQ(r.initial_ms, 100);
    ASSERT_EQ(r.max_ms, 10000);
    ASSERT_EQ(r.jitter, 200);
    r.jitter = 0;
    ASSERT(retry_delay_ms(&r, 2, 12345) == 100);
    ASSERT(retry_delay_ms(&r, 3, 1) == 200);
    ASSERT(retry_delay_ms(&r, 4, 1) == 400);
    ASSERT(retry_delay_ms(&r, 9, 1) == 10000); /* 12800 capped */
    ASSERT(retry_delay_ms(&r, 1000, 1) == 10000);
    r.max_ms = 150;
    ASSERT(retry_delay_ms(&r, 3, 1) == 150);
    r.initial_ms = r.max_ms = 0;
    ASSERT(retry_delay_ms(&r, 5, 1) == 0);
    retry_default(&r);
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        uint64_t d = retry_delay_ms(&r, 2, retry_random());
        ASSERT(d >= 80 && d <= 120);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    ASSERT(lo < 90 && hi > 110); /* spread over the range */
    r.jitter = 1000;
    for (uint32_t u = 0; u < 1000; u++) {
        uint64_t d = retry_delay_ms(&r, 2, u * 2654435761u);
        ASSERT(d <= 200);
    }
    return 0;
}

/* The optional retry fields: written only when set, read back; an
   envelope without them reads as "no retries". */
static int test_optional_retries(void)
{
    envelope_task t = sample_task(), d;
    envelope_buf b;
    char err[256] = "";
    envelope_buf_init(&b, NULL, 0);
    t.retries = 3;
    t.backoff_initial_ms = 100;
    t.backoff_max_ms = 10000;
    t.backoff_jitter = 200;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x8b); /* a fixmap of 11 fields */
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.retries, 3);
    ASSERT_EQ(d.backoff_initial_ms, 100);
    ASSERT_EQ(d.backoff_max_ms, 10000);
    ASSERT_EQ(d.backoff_jitter, 200);
    t.retries = t.backoff_initial_ms = t.backoff_max_ms = t.backoff_jitter = 0;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87);
    ASSERT(memmem(b.data, b.len, "retries", 7) == NULL);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.retries, 0);
    envelope_buf_free(&b);
    return 0;
}

/* The optional sandbox narrowing: written only when set, read back; an
   envelope without it reads as 0 (no narrowing). */
static int test_optional_allow(void)
{
    envelope_task t = sample_task(), d;
    envelope_buf b;
    char err[256] = "";
    envelope_buf_init(&b, NULL, 0);
    t.allow = ALLOW_PRESENT | ALLOW_OS_EXECUTE | ALLOW_HTTP;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x88); /* a fixmap of 8 fields */
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT(d.allow == (ALLOW_PRESENT | ALLOW_OS_EXECUTE | ALLOW_HTTP));
    t.allow = ALLOW_PRESENT; /* allows nothing: still present */
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT(d.allow == ALLOW_PRESENT);
    t.allow = 0;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87);
    ASSERT(memmem(b.data, b.len, "allow", 5) == NULL);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT(d.allow == 0);
    envelope_buf_free(&b);
    return 0;
}

/* The sandbox's vocabulary: items, groups, require.NAME (worker lists
   only), errors naming the item. */
static int test_allow_vocabulary(void)
{
    allow_set s;
    char why[400];
    ASSERT_EQ(allow_parse("", 0, &s, why, sizeof why), 0);
    ASSERT_EQ(s.bits, 0);
    ASSERT_EQ(allow_parse("none", 0, &s, why, sizeof why), 0);
    ASSERT_EQ(s.bits, 0);
    ASSERT_EQ(allow_parse("os, exec,require.lpeg,require.cjson", 0, &s, why, sizeof why), 0);
    ASSERT(s.bits == (ALLOW_OS_EXECUTE | ALLOW_OS_REMOVE | ALLOW_OS_RENAME | ALLOW_OS_TMPNAME |
                      ALLOW_OS_GETENV | ALLOW_EXEC));
    ASSERT(allow_module(&s, "lpeg") && allow_module(&s, "cjson"));
    ASSERT(!allow_module(&s, "lpe") && !allow_module(&s, "socket"));
    allow_set_free(&s);
    ASSERT_EQ(allow_parse("io,load.binary,require", 0, &s, why, sizeof why), 0);
    ASSERT(s.bits == (ALLOW_IO_POPEN | ALLOW_IO_WRITE | ALLOW_LOAD_BINARY | ALLOW_REQUIRE));
    ASSERT(allow_module(&s, "anything"));
    allow_set_free(&s);
    ASSERT_EQ(allow_parse("all", 1, &s, why, sizeof why), 0);
    ASSERT_EQ(s.bits, ALLOW_ALL_BITS);
    ASSERT_EQ(allow_parse("os.exec", 0, &s, why, sizeof why), -1);
    ASSERT_CONTAINS(why, "'os.exec'");
    ASSERT_CONTAINS(why, "os.execute");
    ASSERT_EQ(allow_parse("require.lpeg", 1, &s, why, sizeof why), -1); /* pools: no names */
    ASSERT_EQ(allow_parse("require.", 0, &s, why, sizeof why), -1);
    ASSERT_EQ(allow_parse("require.a/b", 0, &s, why, sizeof why), -1);
    /* none only alone */
    ASSERT_EQ(allow_parse("none,os.execute", 0, &s, why, sizeof why), -1);
    ASSERT_CONTAINS(why, "'none' allows nothing and cannot be combined");
    ASSERT_EQ(allow_parse("all, none", 1, &s, why, sizeof why), -1);
    ASSERT_EQ(allow_parse("io.open.special", 0, &s, why, sizeof why), 0);
    ASSERT_EQ(s.bits, ALLOW_IO_SPECIAL);
    ASSERT_EQ(allow_parse("os.getenv", 1, &s, why, sizeof why), 0);
    ASSERT_EQ(s.bits, ALLOW_OS_GETENV);
    ASSERT(ALLOW_ALL_BITS & ALLOW_OS_GETENV);
    ASSERT_EQ(allow_parse("os.getenv2", 0, &s, why, sizeof why), -1);
    ASSERT_CONTAINS(why, "os.getenv");
    ASSERT_STR_EQ(allow_name(ALLOW_OS_GETENV), "os.getenv");
    ASSERT_STR_EQ(allow_name(ALLOW_IO_WRITE), "io.open.write");
    ASSERT_STR_EQ(allow_name(ALLOW_LOAD_BINARY), "load.binary");
    return 0;
}

/* The optional fields timeout and memory: written only when set, absent
   reads as 0, checked like the others when present. */
static int test_optional_limits(void)
{
    envelope_task t = sample_task(), d;
    envelope_buf b;
    char err[256] = "";
    envelope_buf_init(&b, NULL, 0);
    t.timeout_ms = UINT32_MAX;
    t.memory = (uint64_t)256 << 20;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x89); /* a fixmap of 9 fields */
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT(d.timeout_ms == UINT32_MAX);
    ASSERT(d.memory == (uint64_t)256 << 20);
    ASSERT(d.deadline_ms == t.deadline_ms);
    /* every prefix of the longer record is still a truncated one */
    for (size_t i = 0; i < b.len; i++) {
        char *p = malloc(i + 1);
        ASSERT(p != NULL);
        memcpy(p, b.data, i);
        int rc = envelope_task_decode(p, i, NULL, &d, err, sizeof err);
        free(p);
        ASSERT_ERR(rc, ENVELOPE_ETRUNCATED, err);
    }
    /* one of the two */
    t.timeout_ms = 200;
    t.memory = 0;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x88);
    ASSERT_EQ(envelope_task_decode(b.data, b.len, NULL, &d, err, sizeof err), 0);
    ASSERT_EQ(d.timeout_ms, 200);
    ASSERT(d.memory == 0);
    /* neither: the 7 fields a reader without them knows */
    t.timeout_ms = 0;
    ASSERT_EQ(envelope_task_encode(&t, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87);
    ASSERT(memmem(b.data, b.len, "timeout", 7) == NULL);
    ASSERT(memmem(b.data, b.len, "memory", 6) == NULL);
    envelope_buf_free(&b);

    craft c;
    /* present with 0: the same as absent */
    craft_task(&c, "", 2);
    craft_uint(&c, "timeout", 0);
    craft_uint(&c, "memory", 0);
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), 0);
    ASSERT_EQ(d.timeout_ms, 0);
    ASSERT(d.memory == 0);
    /* any integer encoding, any order */
    craft_begin(&c, "MTE", 1, 9);
    craft_uint(&c, "memory", UINT64_MAX);
    craft_key(&c, "timeout");
    msgpack_sbuffer_write(&c.sb, "\xd2\x00\x00\x01\x2c", 5); /* int32 300 */
    craft_bin(&c, "payload", "MTR\x01\x90", 5);
    craft_str(&c, "producer", "p-1");
    craft_uint(&c, "deadline", 0);
    craft_uint(&c, "submitted_at", 1000);
    craft_uint(&c, "attempt", 1);
    craft_str(&c, "pool", "jobs");
    craft_str(&c, "id", "t-1");
    ASSERT_EQ(craft_decode(&c, &d, err, sizeof err), 0);
    ASSERT_EQ(d.timeout_ms, 300);
    ASSERT(d.memory == UINT64_MAX);
    /* wrong types and ranges */
    static const char *const names[] = {"timeout", "memory"};
    for (int i = 0; i < 2; i++) {
        craft_task(&c, "", 1);
        craft_str(&c, names[i], "10");
        ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ETYPE, err);
        ASSERT_CONTAINS(err, names[i]);
        ASSERT_EQ(d.timeout_ms, 0); /* zeroed on error */
        craft_task(&c, "", 1);
        craft_key(&c, names[i]);
        msgpack_pack_int64(&c.pk, -5);
        ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE, err);
        craft_task(&c, "", 2);
        craft_uint(&c, names[i], 1);
        craft_uint(&c, names[i], 2);
        ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_EMALFORMED, err);
        ASSERT_CONTAINS(err, "twice");
    }
    craft_task(&c, "", 1);
    craft_uint(&c, "timeout", (uint64_t)UINT32_MAX + 1);
    ASSERT_ERR(craft_decode(&c, &d, err, sizeof err), ENVELOPE_ERANGE, err);
    ASSERT_CONTAINS(err, "field 'timeout'");
    /* a result record has no such fields: skipped there as unknown */
    envelope_result r = sample_result(), dr;
    craft_begin(&c, "MTO", 1, 8);
    craft_str(&c, "id", r.id);
    craft_str(&c, "pool", r.pool);
    craft_uint(&c, "attempt", 1);
    craft_key(&c, "ok");
    msgpack_pack_true(&c.pk);
    craft_uint(&c, "finished_at", 5);
    craft_str(&c, "worker", "w");
    craft_bin(&c, "payload", "MTR\x01\x90", 5);
    craft_str(&c, "timeout", "not a number");
    ASSERT_EQ(envelope_result_decode(c.sb.data, c.sb.size, NULL, &dr, err, sizeof err), 0);
    msgpack_sbuffer_destroy(&c.sb);
    ASSERT_EQ(dr.ok, 1);
    return 0;
}

static int test_strerror(void)
{
#define CHECK_XX(name, value, msg)                                                                 \
    ASSERT_STR_EQ(envelope_strerror(value), msg);                                                  \
    ASSERT_STR_EQ(envelope_errname(value), #name);
    ENVELOPE_ERRNO_MAP(CHECK_XX)
#undef CHECK_XX
    ASSERT_STR_EQ(envelope_strerror(0), "unknown error");
    ASSERT_STR_EQ(envelope_strerror(-999), "unknown error");
    ASSERT_STR_EQ(envelope_errname(-999), "UNKNOWN");
    ASSERT_EQ(ENVELOPE_ENEWER, -201);
    return 0;
}

/* ---- runner ------------------------------------------------------------ */

/* wg: a result record's signed WaitGroup changes, written only when not
   empty, read back byte for byte, a bin (a string is the wrong type). */
static int test_optional_wg(void)
{
    envelope_result r, rd;
    memset(&r, 0, sizeof r);
    strcpy(r.id, "t-1");
    strcpy(r.pool, "jobs");
    strcpy(r.worker, "w-1");
    r.attempt = 1;
    r.payload = "MTR\x01\x90";
    r.payload_len = 5;
    char err[256] = "";
    envelope_buf b;
    envelope_buf_init(&b, NULL, 0);
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x87);
    ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &rd, err, sizeof err), 0);
    ASSERT_EQ(rd.wg_len, 0);
    ASSERT_NULL(rd.wg);
    static const char wg[] = "p:1/1 -1\np:1/2 3";
    r.wg = wg;
    r.wg_len = sizeof wg - 1;
    ASSERT_EQ(envelope_result_encode(&r, NULL, &b, err, sizeof err), 0);
    ASSERT_EQ((unsigned char)b.data[4], 0x88);
    ASSERT_EQ(envelope_result_decode(b.data, b.len, NULL, &rd, err, sizeof err), 0);
    ASSERT_EQ(rd.wg_len, sizeof wg - 1);
    ASSERT_EQ(memcmp(rd.wg, wg, rd.wg_len), 0);
    /* the field as a string: the wrong type */
    char *at = memmem(b.data, b.len, "\xa2wg\xc4", 4);
    ASSERT_NOT_NULL(at);
    at += 3;
    ASSERT_EQ((unsigned char)at[1], sizeof wg - 1);
    at[0] = (char)(0xa0 | (sizeof wg - 1)); /* a fixstr of the same bytes */
    memmove(at + 1, at + 2, (size_t)(b.data + b.len - at - 2));
    ASSERT_EQ(envelope_result_decode(b.data, b.len - 1, NULL, &rd, err, sizeof err),
              ENVELOPE_ETYPE);
    ASSERT_CONTAINS(err, "field 'wg'");
    envelope_buf_free(&b);
    return 0;
}

/* ---- the encoder's bytes against msgpack-c's -------------------------------- */

static int ref_write(void *data, const char *p, size_t n)
{
    msgpack_sbuffer_write(data, p, n);
    return 0;
}

static void ref_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void ref_bin(msgpack_packer *pk, const char *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    if (n > 0)
        msgpack_pack_bin_body(pk, p, n);
}

/* A value at or next to a bound of msgpack's forms (positive fixint, 8,
 * 16, 32, 64 bits), or anything. */
static uint64_t edge_u64(unsigned r)
{
    static const uint64_t e[] = {
        0, 1, 127, 128, 255, 256, 65535, 65536, UINT32_MAX, 1ull << 32, UINT64_MAX - 1, UINT64_MAX};
    return r % 3 == 0
               ? ((uint64_t)rand() << 33 ^ (uint64_t)rand() << 11 ^ (uint64_t)rand()) >> (r % 60)
               : e[r % (sizeof e / sizeof e[0])];
}

static void fill_name(char *s, size_t max, unsigned r)
{
    static const size_t lens[] = {1, 30, 31, 32, 33, 100, 255, 256};
    size_t n = lens[r % 8];
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        s[i] = "abcxyz019._-"[(r + i * 7) % 12];
    s[n] = '\0';
}

/* Every field at the bounds of its msgpack forms, present or absent: the
 * encoder writes the bytes msgpack-c writes (the format is msgpack's, as
 * read by any msgpack reader). */
static int test_encoder_bytes(void)
{
    static char big[70000];
    static const size_t plens[] = {0, 1, 255, 256, 65535, 65536, 69999};
    memset(big, 0x5a, sizeof big);
    srand(7);
    for (int round = 0; round < 4000; round++) {
        unsigned r = (unsigned)rand();
        envelope_task t;
        memset(&t, 0, sizeof t);
        fill_name(t.id, ENVELOPE_ID_MAX, r);
        fill_name(t.pool, ENVELOPE_POOL_MAX, r >> 3);
        fill_name(t.producer, ENVELOPE_ID_MAX, r >> 6);
        t.attempt = (uint32_t)edge_u64(r >> 4) | 1;
        t.submitted_at_ms = edge_u64(r >> 5);
        t.deadline_ms = r & 1 ? 0 : UINT64_MAX;
        t.payload = big;
        t.payload_len = plens[(r >> 7) % 7];
        t.max_deliveries = (uint32_t)edge_u64(r >> 8);
        t.timeout_ms = (uint32_t)edge_u64(r >> 9);
        t.memory = edge_u64(r >> 10);
        t.retries = (uint32_t)edge_u64(r >> 11);
        t.backoff_initial_ms = (uint32_t)edge_u64(r >> 12);
        t.backoff_max_ms = (uint32_t)edge_u64(r >> 13);
        t.backoff_jitter = (uint32_t)edge_u64(r >> 14);
        t.allow = edge_u64(r >> 15);
        envelope_limits lim;
        envelope_limits_default(&lim);
        lim.max_payload = sizeof big;
        envelope_buf b;
        char storage[64], err[256] = "";
        envelope_buf_init(&b, r & 2 ? storage : NULL, r & 2 ? sizeof storage : 0);
        ASSERT_EQ(envelope_task_encode(&t, &lim, &b, err, sizeof err), 0);

        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, ref_write);
        msgpack_sbuffer_write(&sb, "MTE\x01", 4);
        uint32_t fields[] = {t.max_deliveries,     t.timeout_ms,     t.retries,
                             t.backoff_initial_ms, t.backoff_max_ms, t.backoff_jitter};
        int n = 7;
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            n += fields[i] != 0;
        n += (t.memory != 0) + (t.allow != 0);
        msgpack_pack_map(&pk, (size_t)n);
        ref_str(&pk, "id");
        ref_str(&pk, t.id);
        ref_str(&pk, "pool");
        ref_str(&pk, t.pool);
        ref_str(&pk, "attempt");
        msgpack_pack_uint32(&pk, t.attempt);
        ref_str(&pk, "submitted_at");
        msgpack_pack_uint64(&pk, t.submitted_at_ms);
        ref_str(&pk, "deadline");
        msgpack_pack_uint64(&pk, t.deadline_ms);
        ref_str(&pk, "producer");
        ref_str(&pk, t.producer);
        ref_str(&pk, "payload");
        ref_bin(&pk, t.payload, t.payload_len);
        if (t.max_deliveries)
            ref_str(&pk, "max_deliveries"), msgpack_pack_uint32(&pk, t.max_deliveries);
        if (t.timeout_ms)
            ref_str(&pk, "timeout"), msgpack_pack_uint32(&pk, t.timeout_ms);
        if (t.memory)
            ref_str(&pk, "memory"), msgpack_pack_uint64(&pk, t.memory);
        if (t.retries)
            ref_str(&pk, "retries"), msgpack_pack_uint32(&pk, t.retries);
        if (t.backoff_initial_ms)
            ref_str(&pk, "backoff_initial"), msgpack_pack_uint32(&pk, t.backoff_initial_ms);
        if (t.backoff_max_ms)
            ref_str(&pk, "backoff_max"), msgpack_pack_uint32(&pk, t.backoff_max_ms);
        if (t.backoff_jitter)
            ref_str(&pk, "backoff_jitter"), msgpack_pack_uint32(&pk, t.backoff_jitter);
        if (t.allow)
            ref_str(&pk, "allow"), msgpack_pack_uint64(&pk, t.allow);
        if (b.len != sb.size || memcmp(b.data, sb.data, b.len) != 0) {
            fprintf(stderr, "round %d: %zu bytes, msgpack-c wrote %zu\n", round, b.len, sb.size);
            return 1;
        }
        msgpack_sbuffer_destroy(&sb);

        /* the result record: booleans, the optional WaitGroup changes */
        envelope_result x;
        memset(&x, 0, sizeof x);
        memcpy(x.id, t.id, sizeof x.id);
        memcpy(x.pool, t.pool, sizeof x.pool);
        memcpy(x.worker, t.producer, sizeof x.worker);
        x.attempt = t.attempt;
        x.ok = (int)(r >> 16 & 1);
        x.finished_at_ms = t.submitted_at_ms;
        x.payload = big;
        x.payload_len = t.payload_len;
        x.dead_lettered = (int)(r >> 17 & 1);
        x.wg = r >> 18 & 1 ? big : NULL;
        x.wg_len = r >> 18 & 1 ? plens[(r >> 19) % 7] : 0;
        ASSERT_EQ(envelope_result_encode(&x, &lim, &b, err, sizeof err), 0);
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, ref_write);
        msgpack_sbuffer_write(&sb, "MTO\x01", 4);
        msgpack_pack_map(&pk, (size_t)(7 + x.dead_lettered + (x.wg_len != 0)));
        ref_str(&pk, "id");
        ref_str(&pk, x.id);
        ref_str(&pk, "pool");
        ref_str(&pk, x.pool);
        ref_str(&pk, "attempt");
        msgpack_pack_uint32(&pk, x.attempt);
        ref_str(&pk, "ok");
        x.ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        ref_str(&pk, "finished_at");
        msgpack_pack_uint64(&pk, x.finished_at_ms);
        ref_str(&pk, "worker");
        ref_str(&pk, x.worker);
        ref_str(&pk, "payload");
        ref_bin(&pk, x.payload, x.payload_len);
        if (x.dead_lettered)
            ref_str(&pk, "dead_lettered"), msgpack_pack_true(&pk);
        if (x.wg_len)
            ref_str(&pk, "wg"), ref_bin(&pk, x.wg, x.wg_len);
        if (b.len != sb.size || memcmp(b.data, sb.data, b.len) != 0) {
            fprintf(stderr, "round %d (result): %zu bytes, msgpack-c wrote %zu\n", round, b.len,
                    sb.size);
            return 1;
        }
        msgpack_sbuffer_destroy(&sb);
        envelope_buf_free(&b);
    }
    return 0;
}

static const test tests[] = {
    {"optional_wg", test_optional_wg},
    {"task_roundtrip", test_task_roundtrip},
    {"encoder_bytes", test_encoder_bytes},
    {"result_roundtrip", test_result_roundtrip},
    {"truncation", test_truncation},
    {"trailing_bytes", test_trailing_bytes},
    {"magic_and_version", test_magic_and_version},
    {"unknown_fields_ignored", test_unknown_fields_ignored},
    {"bad_types", test_bad_types},
    {"oversize", test_oversize},
    {"bad_names", test_bad_names},
    {"corruption", test_corruption},
    {"max_deliveries", test_max_deliveries},
    {"by_reference", test_by_reference},
    {"optional_limits", test_optional_limits},
    {"optional_retries", test_optional_retries},
    {"optional_allow", test_optional_allow},
    {"allow_vocabulary", test_allow_vocabulary},
    {"retry_delay", test_retry_delay},
    {"strerror", test_strerror},
};

int main(int argc, char **argv)
{
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
