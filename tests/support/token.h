/*
 * token.h - the token test fixture: every test gets a token of its own in a
 * fresh temporary directory, initialized with the module's real tool, and a
 * 0600 PIN file. Nothing outside the directory is touched.
 *
 * The module is SoftHSM2 (softhsm2-util --init-token) unless the environment
 * says TV_TEST_MODULE=nss: then it is NSS softokn (libsoftokn3.so) on a
 * database made with certutil -N, loaded with its init string, the second
 * module the hsm/ and wallet tests run against (tests/CMakeLists.txt).
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_TOKEN_H
#define TOKENVAULT_TESTS_SUPPORT_TOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "hsm/hsm.h"

/* Test PINs: test tokens only. The product reads its PIN from a file. */
#define TV_TEST_SO_PIN "so-pin-4321"
#define TV_TEST_USER_PIN "user-pin-1234"
#define TV_TEST_LABEL "tokenvault-test"

/* NSS softokn: the token of a key database is always this one. */
#define TV_TEST_NSS_LABEL "NSS Certificate DB"

typedef struct tv_token {
    bool nss;                 /* NSS softokn instead of SoftHSM2 */
    const char *module;       /* the module's path */
    const char *label;        /* the token's label */
    char init_args[400];      /* C_Initialize pReserved ("" for none) */
    char dir[256];
    char conf[300];
    char pin_file[300];
    hsm_pin_source *pin;
    hsm *h;
} tv_token;

/* Makes the directory, the SoftHSM config (SOFTHSM2_CONF is set for this
 * process), the token, and the PIN file. Returns 0 or -1 with a message. */
int tv_token_setup(tv_token *t);

/* Fills |cfg| to open t's token (module, label, init string, short
 * backoffs); the pointers are t's. */
void tv_token_config(const tv_token *t, hsm_config *cfg);

/* Opens the hsm on the token (t->h, t->pin). Returns an HSM_ERR_ code. */
int tv_token_open(tv_token *t);

/* tv_token_open_spied opens the same token through the fault-injection
 * wrapper (p11_fault.h) with no rules, so its spy counters see every call:
 * for tests that prove what crosses the module boundary. */
int tv_token_open_spied(tv_token *t);

/* Closes the hsm if open and removes the directory. */
void tv_token_teardown(tv_token *t);

/* The usual fixture of an hsm/ test: setup, open, and one session lent to
 * the test. Returns 0, or -1 with a message on stderr. The teardown gives the
 * session back (if any) and removes the token. */
int tv_token_session_setup(tv_token *t, hsm_session **s);
void tv_token_session_teardown(tv_token *t, hsm_session **s);
/* The same fixture with the token opened by tv_token_open_spied. */
int tv_token_session_setup_spied(tv_token *t, hsm_session **s);

/* assert_hsm(expr, want): fails the cmocka test with both codes' names and
 * the layer's detail when an hsm call returns something else. For files that
 * include cmocka.h before this header. */
#define assert_hsm(expr, want)                                                               \
    do {                                                                                     \
        int r_ = (expr);                                                                     \
        if (r_ != (want))                                                                    \
            fail_msg("%s = %s, want %s (detail: %s)", #expr, hsm_strerror(r_),              \
                     hsm_strerror(want), hsm_last_detail());                                 \
    } while (0)

/* tv_random_next: splitmix64 (Steele, Lea, Flood 2014; its published
 * constants), the same numbers from the same seed with every C library,
 * which rand() is not. For tests that print their seed to be repeated. */
uint64_t tv_random_next(uint64_t *state);

/* Writes |pin| to |path| with |mode|. Returns 0 or -1. */
int tv_write_file(const char *path, const char *data, unsigned mode);

/* Reads a vector file from tests/vectors (path relative to it) into a malloc'd,
 * NUL-terminated buffer. Aborts the test on failure. */
char *tv_vector_read(const char *rel, size_t *out_len);

/* Decodes base64 (standard alphabet, padding, no newlines) or hex into a
 * malloc'd buffer; aborts the test on bad input. */
unsigned char *tv_b64(const char *b64, size_t *out_len);
unsigned char *tv_hex(const char *hex, size_t *out_len);
/* tv_vector_b64: a vector file holding base64 text, decoded (malloc'd). */
unsigned char *tv_vector_b64(const char *rel, size_t *out_len);

#endif
