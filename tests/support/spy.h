/*
 * spy.h - what crossed the PKCS#11 boundary while a wallet packet was opened,
 * read from the fault-injection wrapper's counters (p11_fault.h) around a
 * token opened with tv_token_open_spied / tv_token_session_setup_spied.
 *
 * The claim it checks is SECURITY.md's: on the all-in-token path no
 * per-message key value is ever in host memory: the code never digests a
 * key into a host-visible hash (C_DigestKey), never creates a secret key
 * from host bytes (C_CreateObject with CKA_VALUE), never reads a secret
 * key's CKA_VALUE. On the digest-key path the same counters must move, which
 * shows that the spy sees what it is there to see.
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_SPY_H
#define TOKENVAULT_TESTS_SUPPORT_SPY_H

#include <stdbool.h>

#include "hsm/hsm.h"
#include "tests/support/p11_fault.h"

typedef struct tv_spy {
    struct tv_p11_fault_spy at;
} tv_spy;

/* Marks now. Fails the test if the wrapper is not loaded. */
void tv_spy_begin(tv_spy *spy);

/* Fails the test unless what crossed since tv_spy_begin fits |path|:
 *   HSM_PATH_IN_TOKEN    no C_DigestKey, no secret value in or out; and
 *                        with |derives|, at least one C_DeriveKey;
 *   HSM_PATH_DIGEST_KEY  C_DigestKey called and secrets created from host
 *                        bytes, none read out;
 *   other                no secret value read out.
 * A secret key's value is never read out on any path. */
void tv_spy_check(const tv_spy *spy, hsm_path path, bool derives);

#endif
