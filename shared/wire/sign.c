/*
** sign.c: Ed25519 signatures over task envelopes with OpenSSL 3 (see
** sign.h). The crypto is libcrypto's (EVP_DigestSign/Verify, SHA-256 for
** key ids); this file only frames bytes and manages keys.
*/
#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

MERR_FUNCS(, sign, SIGN_ERRNO_MAP)

struct sign_key {
    EVP_PKEY *pkey;
    unsigned char id[SIGN_KEYID_LEN];
};

struct sign_trust {
    size_t n;
    EVP_PKEY *pkey[SIGN_TRUST_MAX];
    unsigned char id[SIGN_TRUST_MAX][SIGN_KEYID_LEN];
};

/* Never prompts for a passphrase (an encrypted key is refused). */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int key_id(EVP_PKEY *pkey, unsigned char *id)
{
    unsigned char raw[32], md[SHA256_DIGEST_LENGTH];
    size_t rawlen = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != sizeof raw)
        return -1;
    if (EVP_Digest(raw, rawlen, md, NULL, EVP_sha256(), NULL) != 1)
        return -1;
    memcpy(id, md, SIGN_KEYID_LEN);
    return 0;
}

void sign_keyid_hex(const unsigned char *id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < SIGN_KEYID_LEN; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[2 * SIGN_KEYID_LEN] = '\0';
}

/* Reads one PEM key from path: private (priv 1) or public, else private. */
static int read_pem(const char *path, int priv, EVP_PKEY **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return merr_fail(err, errlen, SIGN_EIO, "%s: %s", path, strerror(errno));
    EVP_PKEY *k = NULL;
    if (!priv)
        k = PEM_read_PUBKEY(f, NULL, no_password, NULL);
    if (k == NULL) {
        rewind(f);
        k = PEM_read_PrivateKey(f, NULL, no_password, NULL);
    }
    fclose(f);
    ERR_clear_error();
    if (k == NULL)
        return merr_fail(err, errlen, SIGN_EKEY, "%s: no %sPEM key in it (or an encrypted one)",
                         path, priv ? "unencrypted private " : "");
    if (EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return merr_fail(err, errlen, SIGN_EKEY, "%s: not an Ed25519 key", path);
    }
    *out = k;
    return 0;
}

int sign_key_load(const char *path, sign_key **out, char *err, size_t errlen)
{
    if (out == NULL || path == NULL || path[0] == '\0')
        return merr_fail(err, errlen, SIGN_EINVAL, "sign_key_load: missing argument");
    *out = NULL;
    EVP_PKEY *pk;
    int rc = read_pem(path, 1, &pk, err, errlen);
    if (rc < 0)
        return rc;
    sign_key *k = calloc(1, sizeof *k);
    if (k == NULL) {
        EVP_PKEY_free(pk);
        return merr_fail(err, errlen, SIGN_ENOMEM, "%s: out of memory", path);
    }
    k->pkey = pk;
    if (key_id(pk, k->id) != 0) {
        sign_key_free(k);
        ERR_clear_error();
        return merr_fail(err, errlen, SIGN_ECRYPTO, "%s: cannot compute its key id", path);
    }
    *out = k;
    return 0;
}

void sign_key_free(sign_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

const unsigned char *sign_key_id(const sign_key *k)
{
    return k->id;
}

int sign_trust_load(const char *paths, sign_trust **out, char *err, size_t errlen)
{
    if (out == NULL || paths == NULL)
        return merr_fail(err, errlen, SIGN_EINVAL, "sign_trust_load: missing argument");
    *out = NULL;
    sign_trust *t = calloc(1, sizeof *t);
    if (t == NULL)
        return merr_fail(err, errlen, SIGN_ENOMEM, "trusted keys: out of memory");
    int rc = 0;
    for (const char *p = paths; *p != '\0' && rc == 0;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char path[4096];
        if (n == 0 || n >= sizeof path) {
            rc = merr_fail(err, errlen, SIGN_EINVAL, "trusted keys: %s path in the list",
                           n == 0 ? "empty" : "too long a");
            break;
        }
        memcpy(path, p, n);
        path[n] = '\0';
        EVP_PKEY *pk;
        unsigned char id[SIGN_KEYID_LEN];
        rc = read_pem(path, 0, &pk, err, errlen);
        if (rc == 0 && key_id(pk, id) != 0) {
            EVP_PKEY_free(pk);
            ERR_clear_error();
            rc = merr_fail(err, errlen, SIGN_ECRYPTO, "%s: cannot compute its key id", path);
        }
        if (rc < 0)
            break;
        int dup = 0;
        for (size_t i = 0; i < t->n && !dup; i++)
            dup = memcmp(t->id[i], id, SIGN_KEYID_LEN) == 0;
        if (dup) {
            EVP_PKEY_free(pk);
        } else if (t->n == SIGN_TRUST_MAX) {
            EVP_PKEY_free(pk);
            rc = merr_fail(err, errlen, SIGN_EINVAL, "trusted keys: more than %d", SIGN_TRUST_MAX);
        } else {
            t->pkey[t->n] = pk;
            memcpy(t->id[t->n], id, SIGN_KEYID_LEN);
            t->n++;
        }
        p = comma != NULL ? comma + 1 : p + n;
        if (comma != NULL && *p == '\0')
            rc = merr_fail(err, errlen, SIGN_EINVAL, "trusted keys: empty path in the list");
    }
    if (rc < 0) {
        sign_trust_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void sign_trust_free(sign_trust *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        EVP_PKEY_free(t->pkey[i]);
    free(t);
}

size_t sign_trust_count(const sign_trust *t)
{
    return t != NULL ? t->n : 0;
}

int sign_is_signed(const void *msg, size_t len)
{
    const unsigned char *m = msg;
    return msg != NULL && len >= 4 && memcmp(m, SIGN_MAGIC, 3) == 0 && m[3] == SIGN_VERSION;
}

int sign_wrap(const sign_key *k, const void *env, size_t len, char **out, size_t *outlen, char *err,
              size_t errlen)
{
    if (k == NULL || (env == NULL && len > 0) || out == NULL || outlen == NULL)
        return merr_fail(err, errlen, SIGN_EINVAL, "sign_wrap: missing argument");
    *out = NULL;
    *outlen = 0;
    if (len > (size_t)-1 - SIGN_OVERHEAD)
        return merr_fail(err, errlen, SIGN_ETOOBIG, "envelope too large to sign");
    unsigned char *b = malloc(len + SIGN_OVERHEAD);
    if (b == NULL)
        return merr_fail(err, errlen, SIGN_ENOMEM, "signing: out of memory");
    memcpy(b, SIGN_MAGIC, 3);
    b[3] = SIGN_VERSION;
    memcpy(b + 4, k->id, SIGN_KEYID_LEN);
    if (len > 0)
        memcpy(b + SIGN_HEAD_LEN, env, len);
    size_t signed_len = SIGN_HEAD_LEN + len, siglen = SIGN_SIG_LEN;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, b + signed_len, &siglen, b, signed_len) == 1 &&
             siglen == SIGN_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        free(b);
        ERR_clear_error();
        return merr_fail(err, errlen, SIGN_ECRYPTO, "signing failed in libcrypto");
    }
    *out = (char *)b;
    *outlen = signed_len + SIGN_SIG_LEN;
    return 0;
}

int sign_unwrap(const void *msg, size_t len, const char **env, size_t *envlen)
{
    if (!sign_is_signed(msg, len))
        return SIGN_EUNSIGNED;
    if (len < SIGN_OVERHEAD)
        return SIGN_ETRUNCATED;
    if (env != NULL)
        *env = (const char *)msg + SIGN_HEAD_LEN;
    if (envlen != NULL)
        *envlen = len - SIGN_OVERHEAD;
    return 0;
}

/* Verifies the signature in the last SIGN_SIG_LEN bytes of the len bytes at
   m, over all the bytes before it, with the trusted key whose id is at id.
   what names the message in the unknown-key error ("task envelope is signed
   by key ..."), altered in the bad-signature one ("... the envelope was
   altered or forged"). 0, or a SIGN_E* code with err set. */
static int verify_trusted(const sign_trust *t, const unsigned char *m, size_t len,
                          const unsigned char *id, const char *what, const char *altered, char *err,
                          size_t errlen)
{
    char hex[2 * SIGN_KEYID_LEN + 1];
    sign_keyid_hex(id, hex);
    size_t i = 0, n = sign_trust_count(t);
    while (i < n && memcmp(t->id[i], id, SIGN_KEYID_LEN) != 0)
        i++;
    if (i == n)
        return merr_fail(err, errlen, SIGN_EUNKNOWNKEY,
                         "%s is signed by key %s, which is not among the trusted keys", what, hex);
    size_t signed_len = len - SIGN_SIG_LEN;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return merr_fail(err, errlen, SIGN_ENOMEM, "verifying: out of memory");
    int rc = -1;
    if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, t->pkey[i]) == 1)
        rc = EVP_DigestVerify(ctx, m + signed_len, SIGN_SIG_LEN, m, signed_len);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (rc != 1)
        return merr_fail(err, errlen, SIGN_EBADSIG,
                         "signature by key %s does not verify: the %s was altered or forged", hex,
                         altered);
    return 0;
}

int sign_verify(const sign_trust *t, const void *msg, size_t len, size_t max_len, const char **env,
                size_t *envlen, unsigned char *keyid, char *err, size_t errlen)
{
    const unsigned char *m = msg;
    if (env != NULL)
        *env = NULL;
    if (envlen != NULL)
        *envlen = 0;
    if (!sign_is_signed(msg, len))
        return merr_fail(err, errlen, SIGN_EUNSIGNED,
                         "task envelope is not signed and this worker requires signatures");
    if (max_len > 0 && len > max_len)
        return merr_fail(err, errlen, SIGN_ETOOBIG,
                         "signed envelope of %zu bytes exceeds the limit of %zu", len, max_len);
    if (len < SIGN_OVERHEAD)
        return merr_fail(err, errlen, SIGN_ETRUNCATED,
                         "signed envelope of %zu bytes is truncated (at least %d expected)", len,
                         SIGN_OVERHEAD);
    if (keyid != NULL)
        memcpy(keyid, m + 4, SIGN_KEYID_LEN);
    int rc = verify_trusted(t, m, len, m + 4, "task envelope", "envelope", err, errlen);
    if (rc != 0)
        return rc;
    if (env != NULL)
        *env = (const char *)m + SIGN_HEAD_LEN;
    if (envlen != NULL)
        *envlen = len - SIGN_OVERHEAD;
    return 0;
}

/* ---- signed result records ------------------------------------------------ */

/* The "sig" entry's bytes before the key id: fixstr "sig", bin8 of 72. */
static const unsigned char result_tail[6] = {0xa3, 's',  'i',
                                             'g',  0xc4, SIGN_KEYID_LEN + SIGN_SIG_LEN};

int sign_result_is_signed(const void *rec, size_t len)
{
    const unsigned char *m = rec;
    return rec != NULL && len >= 5 + SIGN_RESULT_TAIL && memcmp(m, "MTO", 3) == 0 &&
           memcmp(m + len - SIGN_RESULT_TAIL, result_tail, sizeof result_tail) == 0;
}

/* Adds one to the count of the map at b (the record's body): 0, or -1 when
   it is no map or the count cannot grow in place. */
static int map_count_inc(unsigned char *b, size_t len)
{
    if (len < 1)
        return -1;
    if (b[0] >= 0x80 && b[0] < 0x8f) {
        b[0]++;
        return 0;
    }
    if (b[0] == 0xde && len >= 3) {
        unsigned n = (unsigned)b[1] << 8 | b[2];
        if (n == 0xffff)
            return -1;
        n++;
        b[1] = (unsigned char)(n >> 8);
        b[2] = (unsigned char)n;
        return 0;
    }
    return -1;
}

int sign_result(const sign_key *k, const void *rec, size_t len, char **out, size_t *outlen,
                char *err, size_t errlen)
{
    if (k == NULL || rec == NULL || out == NULL || outlen == NULL)
        return merr_fail(err, errlen, SIGN_EINVAL, "sign_result: missing argument");
    *out = NULL;
    *outlen = 0;
    if (len < 5 || memcmp(rec, "MTO", 3) != 0 || sign_result_is_signed(rec, len) ||
        len > (size_t)-1 - SIGN_RESULT_TAIL)
        return merr_fail(err, errlen, SIGN_EINVAL, "sign_result: not an unsigned result record");
    unsigned char *b = malloc(len + SIGN_RESULT_TAIL);
    if (b == NULL)
        return merr_fail(err, errlen, SIGN_ENOMEM, "signing: out of memory");
    memcpy(b, rec, len);
    if (map_count_inc(b + 4, len - 4) != 0) {
        free(b);
        return merr_fail(err, errlen, SIGN_EINVAL, "sign_result: the record's map cannot grow");
    }
    memcpy(b + len, result_tail, sizeof result_tail);
    memcpy(b + len + sizeof result_tail, k->id, SIGN_KEYID_LEN);
    size_t signed_len = len + SIGN_RESULT_TAIL - SIGN_SIG_LEN, siglen = SIGN_SIG_LEN;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, b + signed_len, &siglen, b, signed_len) == 1 &&
             siglen == SIGN_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        free(b);
        ERR_clear_error();
        return merr_fail(err, errlen, SIGN_ECRYPTO, "signing failed in libcrypto");
    }
    *out = (char *)b;
    *outlen = len + SIGN_RESULT_TAIL;
    return 0;
}

int sign_result_verify(const sign_trust *t, const void *rec, size_t len, char *err, size_t errlen)
{
    const unsigned char *m = rec;
    if (!sign_result_is_signed(rec, len))
        return merr_fail(err, errlen, SIGN_EUNSIGNED, "result record is not signed");
    return verify_trusted(t, m, len, m + len - SIGN_KEYID_LEN - SIGN_SIG_LEN, "result record",
                          "result record", err, errlen);
}

/* ---- keygen --------------------------------------------------------------- */

static int check_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || name[0] == '.')
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return -1;
    }
    return 0;
}

/* Creates path exclusively with mode and writes the key into it. */
static int write_key(const char *path, mode_t mode, EVP_PKEY *pk, int priv, char *err,
                     size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return merr_fail(err, errlen, errno == EEXIST ? SIGN_EEXIST : SIGN_EIO, "%s: %s%s", path,
                         strerror(errno), errno == EEXIST ? " (not overwritten)" : "");
    if (fchmod(fd, mode) != 0) { /* whatever the umask */
        int e = errno;
        close(fd);
        unlink(path);
        return merr_fail(err, errlen, SIGN_EIO, "%s: %s", path, strerror(e));
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(path);
        return merr_fail(err, errlen, SIGN_EIO, "%s: %s", path, strerror(errno));
    }
    int ok = priv ? PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL) == 1
                  : PEM_write_PUBKEY(f, pk) == 1;
    ok = fclose(f) == 0 && ok;
    ERR_clear_error();
    if (!ok) {
        unlink(path);
        return merr_fail(err, errlen, SIGN_EIO, "%s: cannot write the key", path);
    }
    return 0;
}

int sign_keygen(const char *dir, const char *name, char *idhex, char *err, size_t errlen)
{
    if (dir == NULL || dir[0] == '\0' || name == NULL)
        return merr_fail(err, errlen, SIGN_EINVAL, "keygen: missing argument");
    if (check_name(name) != 0)
        return merr_fail(err, errlen, SIGN_EINVAL,
                         "keygen: name '%.64s': 1 to 100 bytes of A-Z a-z 0-9 . _ - expected "
                         "(not starting with '.')",
                         name);
    char kpath[4096], ppath[4096];
    if ((size_t)snprintf(kpath, sizeof kpath, "%s/%s.key", dir, name) >= sizeof kpath ||
        (size_t)snprintf(ppath, sizeof ppath, "%s/%s.pub", dir, name) >= sizeof ppath)
        return merr_fail(err, errlen, SIGN_EINVAL, "keygen: directory path too long");
    struct stat st;
    if (access(ppath, F_OK) == 0)
        return merr_fail(err, errlen, SIGN_EEXIST, "%s: exists already (not overwritten)", ppath);
    if (stat(dir, &st) != 0 && errno == ENOENT)
        (void)mkdir(dir, 0700); /* one level, private: it will hold a private key */
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return merr_fail(err, errlen, SIGN_EIO, "%s: not a directory", dir);
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (pk == NULL) {
        ERR_clear_error();
        return merr_fail(err, errlen, SIGN_ECRYPTO, "keygen: libcrypto cannot make an Ed25519 key");
    }
    unsigned char id[SIGN_KEYID_LEN];
    int rc = key_id(pk, id) == 0
                 ? 0
                 : merr_fail(err, errlen, SIGN_ECRYPTO, "keygen: cannot compute the key id");
    if (rc == 0)
        rc = write_key(kpath, 0600, pk, 1, err, errlen);
    if (rc == 0 && (rc = write_key(ppath, 0644, pk, 0, err, errlen)) < 0)
        unlink(kpath);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    if (rc == 0 && idhex != NULL)
        sign_keyid_hex(id, idhex);
    return rc;
}
