/*
** sign.h: signed task envelopes (Ed25519 through OpenSSL's libcrypto).
** Loads a private key (auth.signing_key) and a set of trusted public keys
** (auth.trusted_keys), wraps envelope bytes in a signed record, checks one
** against the trusted set, and writes new key pairs (`mutirao keygen`).
** The byte layout is in docs/wire-format.md ("Signed task envelope"):
**
**   'M' 'T' 'E' 0x02 | key id (8) | envelope (any bytes) | signature (64)
**
** the signature covering every byte before it. A key id is the first 8
** bytes of SHA-256 over the raw 32-byte public key. Nothing here aborts on
** bad input: functions return 0 or a negative SIGN_E* code with a message
** that never contains key material.
*/
#ifndef MUTIRAO_SIGN_H
#define MUTIRAO_SIGN_H

#include <stddef.h>

#include "errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SIGN_ERRNO_MAP(XX)                                                                         \
    XX(EINVAL, MERR_EINVAL, "invalid argument")                                                    \
    XX(ENOMEM, MERR_ENOMEM, "out of memory")                                                       \
    XX(EIO, MERR_EIO, "key file cannot be read or written")                                        \
    XX(EEXIST, MERR_EEXIST, "key file already exists")                                             \
    XX(ETOOBIG, MERR_ETOOBIG, "signed envelope exceeds the size limit")                            \
    XX(ETRUNCATED, MERR_ETRUNCATED, "signed envelope is truncated")                                \
    XX(EKEY, -601, "not an Ed25519 key")                                                           \
    XX(EUNSIGNED, -602, "task envelope is not signed")                                             \
    XX(EUNKNOWNKEY, -603, "task envelope is signed by a key that is not trusted")                  \
    XX(EBADSIG, -604, "signature does not verify (altered or forged)")                             \
    XX(ECRYPTO, -605, "crypto library failure")

MERR_ENUM(sign_errno, SIGN, SIGN_ERRNO_MAP)

const char *sign_strerror(int err);
const char *sign_errname(int err);

#define SIGN_MAGIC "MTE"
#define SIGN_VERSION 2
#define SIGN_KEYID_LEN 8
#define SIGN_SIG_LEN 64
#define SIGN_HEAD_LEN (4 + SIGN_KEYID_LEN)
/* Bytes a signature adds to an envelope. */
#define SIGN_OVERHEAD (SIGN_HEAD_LEN + SIGN_SIG_LEN)
/* Most trusted keys in one set. */
#define SIGN_TRUST_MAX 64

typedef struct sign_key sign_key;     /* a private key and its id */
typedef struct sign_trust sign_trust; /* public keys whose signatures are accepted */

/* Loads a PEM private Ed25519 key. *out: free with sign_key_free. */
int sign_key_load(const char *path, sign_key **out, char *err, size_t errlen);
void sign_key_free(sign_key *k);
/* Its key id (SIGN_KEYID_LEN bytes). */
const unsigned char *sign_key_id(const sign_key *k);

/* Loads the PEM public keys of a comma-separated list of paths (a private
   key file is accepted too: its public half is used). An empty list gives
   an empty set. *out: free with sign_trust_free. */
int sign_trust_load(const char *paths, sign_trust **out, char *err, size_t errlen);
void sign_trust_free(sign_trust *t);
size_t sign_trust_count(const sign_trust *t);

/* Writes the key id as 16 hex digits (out: at least 17 bytes). */
void sign_keyid_hex(const unsigned char *id, char *out);

/* 1 when msg starts like a signed envelope (magic and version 2), else 0. */
int sign_is_signed(const void *msg, size_t len);

/* Signs env: *out (malloc'd, the caller frees) holds len + SIGN_OVERHEAD
   bytes. */
int sign_wrap(const sign_key *k, const void *env, size_t len, char **out, size_t *outlen, char *err,
              size_t errlen);

/*
** Checks a signed envelope of len bytes (at most max_len; 0: no limit)
** against the trusted keys: SIGN_EUNSIGNED (not a signed envelope),
** SIGN_ETRUNCATED, SIGN_ETOOBIG, SIGN_EUNKNOWNKEY (key id not in t; t may
** be NULL or empty), SIGN_EBADSIG. On 0, *env and *envlen (either may be
** NULL) name the inner envelope inside msg; keyid (NULL or 8 bytes) gets
** the signer's id whenever the header could be read.
*/
int sign_verify(const sign_trust *t, const void *msg, size_t len, size_t max_len, const char **env,
                size_t *envlen, unsigned char *keyid, char *err, size_t errlen);

/* The inner envelope of a signed one, not checked (for a process that
   trusts its input without keys). SIGN_EUNSIGNED or SIGN_ETRUNCATED. */
int sign_unwrap(const void *msg, size_t len, const char **env, size_t *envlen);

/*
** Signed result records (docs/wire-format.md, "Signed result record"). A
** worker signs the result record (envelope.h, magic 'MTO' version 1) it
** stores and pushes: the record's map gets one more entry, last,
**
**   "sig": bin of 72 = key id (8) | Ed25519 signature (64)
**
** the signature covering every byte of the record before it (header, map
** header counting "sig", every field, "sig", the bin header and the key
** id). Readers that do not check skip it as an unknown field.
*/
#define SIGN_RESULT_TAIL (6 + SIGN_KEYID_LEN + SIGN_SIG_LEN) /* bytes a signature adds */

/* Signs the result record rec (len bytes): *out (malloc'd, the caller frees)
   gets the signed record, len + SIGN_RESULT_TAIL bytes. SIGN_EINVAL for a
   record that is not an 'MTO' one or already signed. */
int sign_result(const sign_key *k, const void *rec, size_t len, char **out, size_t *outlen,
                char *err, size_t errlen);

/* 1 when rec ends like a signed result record (its "sig" entry), else 0. */
int sign_result_is_signed(const void *rec, size_t len);

/* Checks a signed result record against the trusted keys: SIGN_EUNSIGNED,
   SIGN_EUNKNOWNKEY, SIGN_EBADSIG (err says which, never with key material
   beyond the key id). The record itself is then decoded as usual. */
int sign_result_verify(const sign_trust *t, const void *rec, size_t len, char *err, size_t errlen);

/*
** Makes a new key pair: DIR/NAME.key (PKCS#8 PEM, created with mode 0600,
** never overwritten: SIGN_EEXIST) and DIR/NAME.pub (PEM public key); DIR is
** made (mode 0700) when missing and its parent exists. On
** success idhex (NULL or 17 bytes) gets the key id.
*/
int sign_keygen(const char *dir, const char *name, char *idhex, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* MUTIRAO_SIGN_H */
