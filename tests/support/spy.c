/*
 * spy.c - the spy window around a wallet operation (contract in spy.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/support/spy.h"

void
tv_spy_begin(tv_spy *spy)
{
    if (tv_p11_fault_spy(&spy->at) != 0)
        fail_msg("the spy needs the token opened through the wrapper (tv_token_open_spied)");
}

void
tv_spy_check(const tv_spy *spy, hsm_path path, bool derives)
{
    struct tv_p11_fault_spy now;
    unsigned long digests, derived, in, out;

    if (tv_p11_fault_spy(&now) != 0)
        fail_msg("the wrapper is no longer loaded");
    digests = now.digest_key_calls - spy->at.digest_key_calls;
    derived = now.derive_key_calls - spy->at.derive_key_calls;
    in = now.secret_values_in - spy->at.secret_values_in;
    out = now.secret_values_out - spy->at.secret_values_out;
    if (out != 0)
        fail_msg("%lu secret key values were read into host memory", out);
    if (path == HSM_PATH_IN_TOKEN) {
        if (digests != 0 || in != 0)
            fail_msg("in-token path, yet %lu C_DigestKey and %lu secrets made from host bytes",
                     digests, in);
        if (derives && derived == 0)
            fail_msg("in-token path, yet no C_DeriveKey");
    } else if (path == HSM_PATH_DIGEST_KEY) {
        if (digests == 0 || in == 0)
            fail_msg("digest-key path, yet %lu C_DigestKey and %lu secrets from host bytes: the "
                     "spy does not see the host path",
                     digests, in);
    }
}
