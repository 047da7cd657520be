/*
 * gen_apple.h - Apple Pay tokens made the way Apple makes them, for tests and
 * the demo: a test CA (root, intermediate with the 1.2.840.113635.100.6.2.14
 * marker, signing leaf with 1.2.840.113635.100.6.29), a detached CMS
 * signature with signingTime over the signed fields, and EC_v1 (ECDH + Apple
 * KDF + AES-256-GCM) or RSA_v1 (OAEP-SHA256 + AES-128-GCM) content. It plays
 * Apple, so it holds the CA's keys; nothing here is product code.
 *
 * For the tests and tokenvault-walletgen (the demo): no cmocka, no HSM.
 * Built as the library tv_walletgen (tools/CMakeLists.txt).
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_GEN_APPLE_H
#define TOKENVAULT_TESTS_SUPPORT_GEN_APPLE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

struct gen_apple_ca {
    EVP_PKEY *root_key, *inter_key, *leaf_key;
    X509 *root, *inter, *leaf;
    unsigned char *root_der; /* the root to pin, DER */
    int root_der_len;
};

/* Options that make a CA Apple would not: for the refusal tests. */
#define GEN_APPLE_RSA_LEAF 1u        /* the signing leaf holds an RSA-2048 key (RSA_v1) */
#define GEN_APPLE_NO_LEAF_MARKER 2u  /* leaf without 1.2.840.113635.100.6.29 */
#define GEN_APPLE_NO_INTER_MARKER 4u /* intermediate without 1.2.840.113635.100.6.2.14 */

/* A new test CA valid from a year before to a year after now. NULL on failure. */
struct gen_apple_ca *gen_apple_ca_new(unsigned flags);
void gen_apple_ca_free(struct gen_apple_ca *ca);

/* gen_apple_ca_save writes |ca| into |dir| (made 0700 if it does not exist):
 * root.pem, intermediate.pem, leaf.pem (certificates) and root-key.pem,
 * intermediate-key.pem, leaf-key.pem (unencrypted PKCS#8 PEM), every file
 * created new with mode 0600; an existing file stops it (nothing is
 * overwritten) and the files it made are removed. root.pem is what an
 * officer stores as the apple-root trust anchor. 0, or -1 with errno set
 * (EEXIST for an existing file) or OpenSSL's error queue. */
int gen_apple_ca_save(const struct gen_apple_ca *ca, const char *dir);

/* gen_apple_ca_load reads a CA gen_apple_ca_save wrote: each key must be a
 * regular file, not a symlink, with no group or other permission bits, and
 * must match its certificate; the intermediate must be issued by the root
 * and the leaf by the intermediate. A new CA (free with gen_apple_ca_free),
 * or NULL. */
struct gen_apple_ca *gen_apple_ca_load(const char *dir);

/* gen_apple_merchant_cert issues an "Apple Pay Payment Processing"
 * certificate for the merchant key |merchant_spki| (DER SubjectPublicKeyInfo
 * of an EC P-256 or RSA-2048 key; anything else is refused), signed by
 * |ca|'s intermediate as Apple's WWDR CA signs them, valid from a year before
 * to a year after now, carrying extension 1.2.840.113635.100.6.32 with
 * |merchant_id| (SHA-256 of the merchant identifier) as Apple encodes it: a
 * DER UTF8String of 64 upper-case hex digits (WALLETS.md 1.4), which is what
 * wallet_merchant_id_decode accepts. 0 with *der (malloc'd DER, free it) and
 * *der_len set, or -1. */
int gen_apple_merchant_cert(const struct gen_apple_ca *ca, const uint8_t *merchant_spki,
                            size_t spki_len, const uint8_t merchant_id[32], uint8_t **der,
                            size_t *der_len);

/* gen_apple_token: a paymentData JSON (malloc'd) for the merchant whose
 * Payment Processing key is |merchant_spki| (EC P-256 for "EC_v1", RSA for
 * "RSA_v1") and whose merchant id is |merchant_id| (32 bytes), carrying
 * |plaintext|, signed at |signing_time| by |ca|'s leaf; |app_data| (32 bytes)
 * or NULL. NULL on failure. */
char *gen_apple_token(const struct gen_apple_ca *ca, const char *version,
                      const uint8_t *merchant_spki, size_t spki_len, const uint8_t merchant_id[32],
                      const char *plaintext, time_t signing_time, const uint8_t *app_data);

#endif
