/*
 * gen_apple.h - Apple Pay tokens made the way Apple makes them, for tests and
 * the demo: a test CA (root, intermediate with the 1.2.840.113635.100.6.2.14
 * marker, signing leaf with 1.2.840.113635.100.6.29), a detached CMS
 * signature with signingTime over the signed fields, and EC_v1 (ECDH + Apple
 * KDF + AES-256-GCM) or RSA_v1 (OAEP-SHA256 + AES-128-GCM) content. It plays
 * Apple, so it holds the CA's keys; nothing here is product code.
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

/* gen_apple_token: a paymentData JSON (malloc'd) for the merchant whose
 * Payment Processing key is |merchant_spki| (EC P-256 for "EC_v1", RSA for
 * "RSA_v1") and whose merchant id is |merchant_id| (32 bytes), carrying
 * |plaintext|, signed at |signing_time| by |ca|'s leaf; |app_data| (32 bytes)
 * or NULL. NULL on failure. */
char *gen_apple_token(const struct gen_apple_ca *ca, const char *version,
                      const uint8_t *merchant_spki, size_t spki_len, const uint8_t merchant_id[32],
                      const char *plaintext, time_t signing_time, const uint8_t *app_data);

#endif
