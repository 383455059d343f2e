/*
** test-sign.c: signed task envelopes (shared/wire/sign.c): key files,
** signing and verifying, and refusal of every altered, truncated, oversized,
** unsigned or foreign message. Keys are made in a temporary directory.
** Run all: test-sign; run one: test-sign NAME.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "envelope.h"
#include "sign.h"
#include "test.h"

static char dir[64];

static void cleanup(void)
{
    if (dir[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", dir);
    }
}

/* DIR/NAME.EXT */
static const char *kpath(const char *name, const char *ext)
{
    static char buf[4][256];
    static int at;
    char *b = buf[at++ % 4];
    snprintf(b, 256, "%s/%s.%s", dir, name, ext);
    return b;
}

/* Makes key pair NAME once. */
static int need_key(const char *name)
{
    if (access(kpath(name, "key"), F_OK) == 0)
        return 0;
    char err[256], id[17];
    int rc = sign_keygen(dir, name, id, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "keygen %s: %s\n", name, err);
    return rc;
}

/* A stand-in envelope: the signature treats it as bytes. */
static const char ENV[] = "MTE\x01\x87\xa2id\xa3t-1 and the rest of a task envelope's map";
#define ENVLEN (sizeof ENV - 1)

static int test_keygen(void)
{
    char err[256], id[17];
    ASSERT_EQ(sign_keygen(dir, "gen", id, err, sizeof err), 0);
    ASSERT_EQ(strlen(id), 16);
    struct stat st;
    ASSERT_EQ(stat(kpath("gen", "key"), &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    ASSERT_EQ(stat(kpath("gen", "pub"), &st), 0);
    ASSERT_EQ(st.st_mode & 0077, 0044);
    /* never overwritten */
    FILE *f = fopen(kpath("gen", "key"), "r");
    ASSERT_NOT_NULL(f);
    char before[512] = {0}, after[512] = {0};
    ASSERT(fread(before, 1, sizeof before - 1, f) > 0);
    fclose(f);
    ASSERT_EQ(sign_keygen(dir, "gen", id, err, sizeof err), SIGN_EEXIST);
    ASSERT_CONTAINS(err, "not overwritten");
    f = fopen(kpath("gen", "key"), "r");
    ASSERT_NOT_NULL(f);
    ASSERT(fread(after, 1, sizeof after - 1, f) > 0);
    fclose(f);
    ASSERT_STR_EQ(before, after);
    /* names that would leave the directory, and a missing directory */
    ASSERT_EQ(sign_keygen(dir, "../x", id, err, sizeof err), SIGN_EINVAL);
    ASSERT_EQ(sign_keygen(dir, "", id, err, sizeof err), SIGN_EINVAL);
    ASSERT_EQ(sign_keygen("/nonexistent/dir", "x", id, err, sizeof err), SIGN_EIO);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/made", dir);
    char subid[17];
    ASSERT_EQ(sign_keygen(sub, "x", subid, err, sizeof err), 0);
    struct stat dst;
    ASSERT_EQ(stat(sub, &dst), 0);
    ASSERT_EQ(dst.st_mode & 0777, 0700);
    /* the key id of the loaded private key is the one keygen printed */
    sign_key *k = NULL;
    ASSERT_EQ(sign_key_load(kpath("gen", "key"), &k, err, sizeof err), 0);
    char hex[17];
    sign_keyid_hex(sign_key_id(k), hex);
    ASSERT_STR_EQ(hex, id);
    sign_key_free(k);
    return 0;
}

static int test_load_errors(void)
{
    char err[256];
    sign_key *k = NULL;
    sign_trust *t = NULL;
    ASSERT_EQ(need_key("a"), 0);
    ASSERT_EQ(sign_key_load(kpath("missing", "key"), &k, err, sizeof err), SIGN_EIO);
    ASSERT_NULL(k);
    /* a public key is no signing key */
    ASSERT_EQ(sign_key_load(kpath("a", "pub"), &k, err, sizeof err), SIGN_EKEY);
    ASSERT_NULL(k);
    /* not a key at all */
    FILE *f = fopen(kpath("junk", "pub"), "w");
    ASSERT_NOT_NULL(f);
    fputs("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", f);
    fclose(f);
    ASSERT_EQ(sign_trust_load(kpath("junk", "pub"), &t, err, sizeof err), SIGN_EKEY);
    ASSERT_NULL(t);
    char list[600];
    snprintf(list, sizeof list, "%s,%s", kpath("a", "pub"), kpath("missing", "pub"));
    ASSERT_EQ(sign_trust_load(list, &t, err, sizeof err), SIGN_EIO);
    ASSERT_CONTAINS(err, "missing.pub");
    snprintf(list, sizeof list, "%s,", kpath("a", "pub"));
    ASSERT_EQ(sign_trust_load(list, &t, err, sizeof err), SIGN_EINVAL);
    ASSERT_NULL(t);
    /* empty list: an empty set; a private key file stands for its public key */
    ASSERT_EQ(sign_trust_load("", &t, err, sizeof err), 0);
    ASSERT_EQ(sign_trust_count(t), 0);
    sign_trust_free(t);
    snprintf(list, sizeof list, "%s,%s", kpath("a", "key"), kpath("a", "pub"));
    ASSERT_EQ(sign_trust_load(list, &t, err, sizeof err), 0);
    ASSERT_EQ(sign_trust_count(t), 1); /* the same key once */
    sign_trust_free(t);
    return 0;
}

/* Signs ENV with key NAME; *msg malloc'd. */
static int sign_with(const char *name, char **msg, size_t *len)
{
    char err[256];
    sign_key *k = NULL;
    if (need_key(name) != 0 || sign_key_load(kpath(name, "key"), &k, err, sizeof err) != 0)
        return -1;
    int rc = sign_wrap(k, ENV, ENVLEN, msg, len, err, sizeof err);
    sign_key_free(k);
    return rc;
}

static sign_trust *trust(const char *names)
{
    char list[1024] = "", err[256];
    const char *p = names;
    while (*p) {
        char name[32];
        size_t n = strcspn(p, ",");
        snprintf(name, sizeof name, "%.*s", (int)n, p);
        if (need_key(name) != 0)
            return NULL;
        if (list[0])
            strcat(list, ",");
        strcat(list, kpath(name, "pub"));
        p += n + (p[n] == ',');
    }
    sign_trust *t = NULL;
    if (sign_trust_load(list, &t, err, sizeof err) != 0)
        fprintf(stderr, "trust %s: %s\n", names, err);
    return t;
}

static int test_roundtrip(void)
{
    char *msg;
    size_t len;
    ASSERT_EQ(sign_with("a", &msg, &len), 0);
    ASSERT_EQ(len, ENVLEN + SIGN_OVERHEAD);
    ASSERT(sign_is_signed(msg, len));
    ASSERT(!sign_is_signed(ENV, ENVLEN));
    ASSERT_EQ(memcmp(msg, "MTE\x02", 4), 0);
    sign_trust *t = trust("a");
    ASSERT_NOT_NULL(t);
    const char *env = NULL;
    size_t envlen = 0;
    unsigned char id[SIGN_KEYID_LEN];
    char err[256] = "";
    ASSERT_EQ(sign_verify(t, msg, len, 0, &env, &envlen, id, err, sizeof err), 0);
    ASSERT_EQ(envlen, ENVLEN);
    ASSERT_EQ(memcmp(env, ENV, ENVLEN), 0);
    ASSERT_EQ(memcmp(id, msg + 4, SIGN_KEYID_LEN), 0);
    /* within an exact limit */
    ASSERT_EQ(sign_verify(t, msg, len, len, NULL, NULL, NULL, err, sizeof err), 0);
    /* unwrap without keys gives the same bytes */
    env = NULL;
    ASSERT_EQ(sign_unwrap(msg, len, &env, &envlen), 0);
    ASSERT_EQ(envlen, ENVLEN);
    ASSERT_EQ(memcmp(env, ENV, ENVLEN), 0);
    ASSERT_EQ(sign_unwrap(ENV, ENVLEN, &env, &envlen), SIGN_EUNSIGNED);
    /* rotation: several trusted keys, any of them verifies */
    sign_trust *t2 = trust("b,a");
    ASSERT_NOT_NULL(t2);
    ASSERT_EQ(sign_trust_count(t2), 2);
    ASSERT_EQ(sign_verify(t2, msg, len, 0, NULL, NULL, NULL, err, sizeof err), 0);
    sign_trust_free(t2);
    sign_trust_free(t);
    free(msg);
    return 0;
}

/* One flipped bit anywhere: never verifies, and the error names the part. */
static int test_flipped_bits(void)
{
    char *msg;
    size_t len;
    ASSERT_EQ(sign_with("a", &msg, &len), 0);
    sign_trust *t = trust("a");
    ASSERT_NOT_NULL(t);
    char err[256];
    int counts[4] = {0};
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            msg[i] ^= (char)(1 << bit);
            int rc = sign_verify(t, msg, len, 0, NULL, NULL, NULL, err, sizeof err);
            msg[i] ^= (char)(1 << bit);
            if (i < 4) {
                ASSERT_EQ(rc, SIGN_EUNSIGNED); /* magic or version */
                counts[0]++;
            } else if (i < SIGN_HEAD_LEN) {
                ASSERT_EQ(rc, SIGN_EUNKNOWNKEY); /* key id */
                counts[1]++;
            } else {
                ASSERT_EQ(rc, SIGN_EBADSIG); /* envelope or signature */
                ASSERT_CONTAINS(err, "altered or forged");
                counts[i < len - SIGN_SIG_LEN ? 2 : 3]++;
            }
        }
    ASSERT_EQ(counts[0], 32);
    ASSERT_EQ(counts[1], 64);
    ASSERT_EQ(counts[2], (int)ENVLEN * 8);
    ASSERT_EQ(counts[3], SIGN_SIG_LEN * 8);
    /* and the untouched message still verifies */
    ASSERT_EQ(sign_verify(t, msg, len, 0, NULL, NULL, NULL, err, sizeof err), 0);
    sign_trust_free(t);
    free(msg);
    return 0;
}

static int test_wrong_key(void)
{
    char *msg, err[256];
    size_t len;
    ASSERT_EQ(sign_with("b", &msg, &len), 0);
    sign_trust *ta = trust("a");
    ASSERT_NOT_NULL(ta);
    ASSERT_EQ(sign_verify(ta, msg, len, 0, NULL, NULL, NULL, err, sizeof err), SIGN_EUNKNOWNKEY);
    ASSERT_CONTAINS(err, "not among the trusted keys");
    /* no keys at all */
    ASSERT_EQ(sign_verify(NULL, msg, len, 0, NULL, NULL, NULL, err, sizeof err), SIGN_EUNKNOWNKEY);
    /* signed by b but claiming a's key id: the signature does not verify */
    char *amsg;
    size_t alen;
    ASSERT_EQ(sign_with("a", &amsg, &alen), 0);
    memcpy(msg + 4, amsg + 4, SIGN_KEYID_LEN);
    ASSERT_EQ(sign_verify(ta, msg, len, 0, NULL, NULL, NULL, err, sizeof err), SIGN_EBADSIG);
    /* with a's signature too it is a's message, byte for byte (deterministic) */
    memcpy(msg + len - SIGN_SIG_LEN, amsg + alen - SIGN_SIG_LEN, SIGN_SIG_LEN);
    ASSERT_EQ(alen, len);
    ASSERT_EQ(memcmp(msg, amsg, len), 0);
    ASSERT_EQ(sign_verify(ta, msg, len, 0, NULL, NULL, NULL, err, sizeof err), 0);
    free(amsg);
    free(msg);
    sign_trust_free(ta);
    return 0;
}

static int test_truncated_and_oversized(void)
{
    char *msg, err[256];
    size_t len;
    ASSERT_EQ(sign_with("a", &msg, &len), 0);
    sign_trust *t = trust("a");
    ASSERT_NOT_NULL(t);
    for (size_t n = 0; n < len; n++) {
        int rc = sign_verify(t, msg, n, 0, NULL, NULL, NULL, err, sizeof err);
        if (n < 4)
            ASSERT_EQ(rc, SIGN_EUNSIGNED);
        else if (n < SIGN_OVERHEAD)
            ASSERT_EQ(rc, SIGN_ETRUNCATED);
        else
            ASSERT_EQ(rc, SIGN_EBADSIG);
    }
    ASSERT_EQ(sign_unwrap(msg, SIGN_OVERHEAD - 1, NULL, NULL), SIGN_ETRUNCATED);
    /* over the limit: refused before any check */
    ASSERT_EQ(sign_verify(t, msg, len, len - 1, NULL, NULL, NULL, err, sizeof err), SIGN_ETOOBIG);
    ASSERT_CONTAINS(err, "exceeds the limit");
    /* appended bytes (the signature is then elsewhere) */
    char *big = malloc(len + 100);
    ASSERT_NOT_NULL(big);
    memcpy(big, msg, len);
    memset(big + len, 0, 100);
    ASSERT_EQ(sign_verify(t, big, len + 100, 0, NULL, NULL, NULL, err, sizeof err), SIGN_EBADSIG);
    free(big);
    /* an unsigned envelope */
    ASSERT_EQ(sign_verify(t, ENV, ENVLEN, 0, NULL, NULL, NULL, err, sizeof err), SIGN_EUNSIGNED);
    ASSERT_CONTAINS(err, "not signed");
    ASSERT_EQ(sign_verify(t, NULL, 0, 0, NULL, NULL, NULL, err, sizeof err), SIGN_EUNSIGNED);
    sign_trust_free(t);
    free(msg);
    return 0;
}

/* Random damage (bytes changed, cut, appended) and random messages: never
 * verified, never a crash (run it under ASan or valgrind for the latter). */
static int test_random_damage(void)
{
    char *msg, err[256];
    size_t len;
    ASSERT_EQ(sign_with("a", &msg, &len), 0);
    sign_trust *t = trust("a");
    ASSERT_NOT_NULL(t);
    unsigned seed = 12345;
    char buf[512] = {0};
    int refused = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = len;
        memcpy(buf, msg, len);
        int changes = 1 + (int)(rand_r(&seed) % 4);
        for (int c = 0; c < changes; c++) {
            size_t at = (size_t)rand_r(&seed) % len;
            buf[at] = (char)(buf[at] ^ (1 + rand_r(&seed) % 255)); /* a different byte */
        }
        if (i % 3 == 1)
            n = (size_t)rand_r(&seed) % len; /* and cut */
        else if (i % 3 == 2)
            n = len + (size_t)rand_r(&seed) % (sizeof buf - len); /* or grown */
        if (n == len && memcmp(buf, msg, len) == 0)
            buf[0] ^= 1; /* two changes undid each other: damage it for sure */
        ASSERT(sign_verify(t, buf, n, 0, NULL, NULL, NULL, err, sizeof err) < 0);
        /* random bytes, half of them with a signed header */
        n = (size_t)rand_r(&seed) % sizeof buf;
        for (size_t k = 0; k < n; k++)
            buf[k] = (char)rand_r(&seed);
        if (i % 2 && n >= 4)
            memcpy(buf, "MTE\x02", 4);
        ASSERT(sign_verify(t, buf, n, 0, NULL, NULL, NULL, err, sizeof err) < 0);
        refused += 2;
    }
    ASSERT_EQ(refused, 40000);
    ASSERT_EQ(sign_verify(t, msg, len, 0, NULL, NULL, NULL, err, sizeof err), 0);
    sign_trust_free(t);
    free(msg);
    return 0;
}

/* Error messages never carry key material. */
static int test_no_secrets_in_errors(void)
{
    ASSERT_EQ(need_key("a"), 0);
    FILE *f = fopen(kpath("a", "key"), "r");
    ASSERT_NOT_NULL(f);
    char pem[512] = {0};
    ASSERT(fread(pem, 1, sizeof pem - 1, f) > 0);
    fclose(f);
    char *b64 = strchr(pem, '\n');
    ASSERT_NOT_NULL(b64);
    b64[17] = '\0'; /* the first 16 characters of the key's base64 */
    char err[512];
    sign_key *k = NULL;
    /* a trusted-keys list given the private key's bytes by mistake */
    ASSERT(sign_trust_load(b64 + 1, NULL, err, sizeof err) < 0);
    sign_trust *t = NULL;
    ASSERT(sign_key_load(kpath("a", "pub"), &k, err, sizeof err) < 0);
    ASSERT_NOT_CONTAINS(err, b64 + 1);
    ASSERT(sign_trust_load(kpath("junk2", "pub"), &t, err, sizeof err) < 0);
    ASSERT_NOT_CONTAINS(err, b64 + 1);
    return 0;
}

static int test_strerror(void)
{
#define CHECK_XX(name, value, msg)                                                                 \
    ASSERT_STR_EQ(sign_strerror(value), msg);                                                      \
    ASSERT_STR_EQ(sign_errname(value), #name);
    SIGN_ERRNO_MAP(CHECK_XX)
#undef CHECK_XX
    ASSERT_STR_EQ(sign_errname(-999), "UNKNOWN");
    return 0;
}

/* ---- signed result records ---- */

/* Encodes a result record of task id (with WaitGroup changes wg, or NULL)
 * into b. */
static int result_of(const char *id, int ok, const char *wg, envelope_buf *b)
{
    envelope_result r;
    memset(&r, 0, sizeof r);
    envelope_copy(r.id, sizeof r.id, id);
    envelope_copy(r.pool, sizeof r.pool, "jobs");
    envelope_copy(r.worker, sizeof r.worker, "w-1");
    r.attempt = 1;
    r.ok = ok;
    r.finished_at_ms = 1000;
    r.payload = ""; /* kept by reference: length and checksum are signed */
    r.ref_len = 2000000;
    r.ref_sum = 77;
    r.wg = wg;
    r.wg_len = wg ? strlen(wg) : 0;
    envelope_buf_init(b, NULL, 0);
    char err[200];
    return envelope_result_encode(&r, NULL, b, err, sizeof err);
}

static int test_result_roundtrip(void)
{
    char err[256];
    sign_key *k = NULL;
    sign_trust *t = NULL;
    ASSERT_EQ(need_key("w"), 0);
    ASSERT_EQ(sign_key_load(kpath("w", "key"), &k, err, sizeof err), 0);
    ASSERT_EQ(sign_trust_load(kpath("w", "pub"), &t, err, sizeof err), 0);
    envelope_buf b;
    ASSERT_EQ(result_of("p:1:ab", 1, "p/1 2\np/2 -1", &b), 0);
    ASSERT_EQ(sign_result_is_signed(b.data, b.len), 0);
    ASSERT_EQ(sign_result_verify(t, b.data, b.len, err, sizeof err), SIGN_EUNSIGNED);
    char *rec = NULL;
    size_t len = 0;
    ASSERT_EQ(sign_result(k, b.data, b.len, &rec, &len, err, sizeof err), 0);
    ASSERT_EQ(len, b.len + SIGN_RESULT_TAIL);
    ASSERT_EQ(sign_result_is_signed(rec, len), 1);
    ASSERT_EQ(sign_result_verify(t, rec, len, err, sizeof err), 0);
    /* a signed record is still an ordinary record to any reader: every
     * field as written, "sig" skipped as an unknown field */
    envelope_result r;
    ASSERT_EQ(envelope_result_decode(rec, len, NULL, &r, err, sizeof err), 0);
    ASSERT_STR_EQ(r.id, "p:1:ab");
    ASSERT_EQ(r.ok, 1);
    ASSERT_EQ(r.ref_len, 2000000);
    ASSERT_EQ(r.ref_sum, 77);
    ASSERT_EQ(r.wg_len, strlen("p/1 2\np/2 -1"));
    ASSERT(memcmp(r.wg, "p/1 2\np/2 -1", r.wg_len) == 0);
    /* signing twice, or something that is not a result record: refused */
    char *again = NULL;
    size_t alen = 0;
    ASSERT_EQ(sign_result(k, rec, len, &again, &alen, err, sizeof err), SIGN_EINVAL);
    ASSERT_NULL(again);
    ASSERT_EQ(sign_result(k, ENV, ENVLEN, &again, &alen, err, sizeof err), SIGN_EINVAL);
    free(rec);
    envelope_buf_free(&b);
    sign_key_free(k);
    sign_trust_free(t);
    return 0;
}

/* Every single flipped bit of a signed record (including the id, the ok
 * flag, the reference's length and checksum, the WaitGroup changes, the
 * key id and the signature) is refused; so is every truncation, a record
 * of another task with the signature moved over, and another key. */
static int test_result_forged(void)
{
    char err[256];
    sign_key *k = NULL, *other = NULL;
    sign_trust *t = NULL;
    ASSERT_EQ(need_key("w"), 0);
    ASSERT_EQ(need_key("x"), 0);
    ASSERT_EQ(sign_key_load(kpath("w", "key"), &k, err, sizeof err), 0);
    ASSERT_EQ(sign_key_load(kpath("x", "key"), &other, err, sizeof err), 0);
    ASSERT_EQ(sign_trust_load(kpath("w", "pub"), &t, err, sizeof err), 0);
    envelope_buf b, b2;
    ASSERT_EQ(result_of("p:1:ab", 1, "p/1 1", &b), 0);
    ASSERT_EQ(result_of("p:2:cd", 1, "p/1 1", &b2), 0);
    char *rec = NULL, *rec2 = NULL, *rx = NULL;
    size_t len = 0, len2 = 0, lx = 0;
    ASSERT_EQ(sign_result(k, b.data, b.len, &rec, &len, err, sizeof err), 0);
    ASSERT_EQ(sign_result(k, b2.data, b2.len, &rec2, &len2, err, sizeof err), 0);
    ASSERT_EQ(sign_result(other, b.data, b.len, &rx, &lx, err, sizeof err), 0);
    for (size_t i = 0; i < len; i++)
        for (int bit = 0; bit < 8; bit++) {
            rec[i] ^= (char)(1 << bit);
            int rc = sign_result_verify(t, rec, len, err, sizeof err);
            rec[i] ^= (char)(1 << bit);
            if (rc == 0)
                fprintf(stderr, "byte %zu bit %d flipped verifies\n", i, bit);
            ASSERT(rc == SIGN_EBADSIG || rc == SIGN_EUNKNOWNKEY || rc == SIGN_EUNSIGNED);
        }
    ASSERT_EQ(sign_result_verify(t, rec, len, err, sizeof err), 0);
    for (size_t n = 0; n < len; n++)
        ASSERT(sign_result_verify(t, rec, n, err, sizeof err) != 0);
    /* task 2's record with task 1's signature: does not verify */
    ASSERT_EQ(len, len2);
    memcpy(rec2 + len2 - SIGN_SIG_LEN, rec + len - SIGN_SIG_LEN, SIGN_SIG_LEN);
    ASSERT_EQ(sign_result_verify(t, rec2, len2, err, sizeof err), SIGN_EBADSIG);
    ASSERT_CONTAINS(err, "altered or forged");
    /* an untrusted key, and no trusted keys at all */
    ASSERT_EQ(sign_result_verify(t, rx, lx, err, sizeof err), SIGN_EUNKNOWNKEY);
    ASSERT_CONTAINS(err, "not among the trusted keys");
    ASSERT_EQ(sign_result_verify(NULL, rec, len, err, sizeof err), SIGN_EUNKNOWNKEY);
    free(rec);
    free(rec2);
    free(rx);
    envelope_buf_free(&b);
    envelope_buf_free(&b2);
    sign_key_free(k);
    sign_key_free(other);
    sign_trust_free(t);
    return 0;
}

static const test tests[] = {
    {"result_roundtrip", test_result_roundtrip},
    {"result_forged", test_result_forged},
    {"keygen", test_keygen},
    {"load_errors", test_load_errors},
    {"roundtrip", test_roundtrip},
    {"flipped_bits", test_flipped_bits},
    {"wrong_key", test_wrong_key},
    {"truncated_and_oversized", test_truncated_and_oversized},
    {"random_damage", test_random_damage},
    {"no_secrets_in_errors", test_no_secrets_in_errors},
    {"strerror", test_strerror},
};

int main(int argc, char **argv)
{
    snprintf(dir, sizeof dir, "/tmp/test-sign-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup);
    return test_run(tests, sizeof tests / sizeof tests[0], argc, argv);
}
