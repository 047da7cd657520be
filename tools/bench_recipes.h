/*
 * bench_recipes.h - `tokenvault-bench recipes`: the HSM recipe of each wallet
 * format (the token's steps only: ECDH, the KDF, the message key's use; or
 * the RSA unwrap and GCM), one thread, on whatever module and token it is
 * pointed at, by the path that module's probe chose. scripts/bench modules
 * runs it on SoftHSM2 and on NSS softokn so BENCHMARKS.md can show the price
 * of each path (hsm/kdf.c).
 */
#ifndef TOKENVAULT_TOOLS_BENCH_RECIPES_H
#define TOKENVAULT_TOOLS_BENCH_RECIPES_H

#include <stdbool.h>

/* Messages per format by default, and with --smoke. */
#define RECIPES_DEFAULT 2000u
#define RECIPES_SMOKE 50u

struct recipes_opts {
    const char *module;
    const char *module_args;  /* NULL: none */
    bool reduced_key_attributes;
    const char *token;
    const char *pin_file;
    unsigned count;
};

/* Makes a merchant EC key and an RSA key in the token (labels with the
 * process id; left there: use a scratch token), prepares |count| messages
 * per format on the host with OpenSSL, then times the token's part of
 * opening each. Every message must open to its payload (else it fails).
 * Prints one line per format. Returns 0, or 1 on any failure. */
int bench_recipes(const struct recipes_opts *o);

#endif
