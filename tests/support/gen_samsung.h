/*
 * gen_samsung.h - builds Samsung Pay packets the way Samsung's servers do,
 * with OpenSSL on the host: a JWE compact serialization (RFC 7516 section
 * 3.1) of the payment plaintext, the content key (CEK) drawn at random and
 * encrypted to the merchant's RSA public key with RSA1_5, RSA-OAEP or
 * RSA-OAEP-256 (RFC 7518 section 4), the plaintext encrypted with AES-GCM
 * under a fresh 96-bit IV and AAD = ASCII(base64url(protected header))
 * (RFC 7516 section 5.1 step 14), and optionally the paymentCredential JSON
 * a Samsung Pay SDK hands the merchant around it (WALLETS.md section 3).
 *
 * For the tests and the demo tool: no cmocka, no HSM. Errors: 0 or -1 (with
 * OpenSSL's error queue left for the caller to print).
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_GEN_SAMSUNG_H
#define TOKENVAULT_TESTS_SUPPORT_GEN_SAMSUNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gen_samsung_params {
    const uint8_t *recipient_spki; /* DER SubjectPublicKeyInfo of the merchant's RSA key */
    size_t recipient_spki_len;
    const char *kid;               /* the header's kid (Samsung: base64 of a key hash) */
    const char *alg;               /* how the CEK is encrypted: "RSA1_5", "RSA-OAEP", "RSA-OAEP-256" */
    const char *enc;               /* the content cipher: "A128GCM" or "A256GCM" */
    const uint8_t *plaintext;      /* the payment JSON */
    size_t plaintext_len;
    /* NULL: the header Samsung sends, {"alg","kid","typ":"JOSE",
     * "channelSecurityContext":"RSA_PKI","enc"}. Otherwise this exact text is
     * the protected header (hostile tests: other algorithms, extra members);
     * |alg| and |enc| still say how the packet is really encrypted. */
    const char *header_json;
    /* 0: a CEK of the length |enc| needs. Otherwise a CEK of this many bytes
     * is wrapped (hostile tests: a key of the wrong length under correct
     * padding); the content is then encrypted with AES of that size when it
     * is 16, 24 or 32 bytes, else with an unrelated random key. */
    size_t cek_len;
    /* Wrap the JWE in the paymentCredential JSON (3DS.data). */
    bool payment_credential;
    /* Its card_brand ("VI", "MC", "AX", "DS") and card_last4digits (four
     * digits); NULL: "VI" and "1111". Anything else is refused. */
    const char *card_brand;
    const char *card_last4;
};

/* gen_samsung_packet builds one packet; *out is a malloc'd NUL-terminated
 * text (free it), *out_len its length (may be NULL). */
int gen_samsung_packet(const struct gen_samsung_params *p, char **out, size_t *out_len);

/* gen_samsung_b64url writes |len| bytes at |in| as base64url without
 * padding into a malloc'd NUL-terminated string (hostile tests rebuild
 * parts with it). */
int gen_samsung_b64url(const uint8_t *in, size_t len, char **out);

#endif
