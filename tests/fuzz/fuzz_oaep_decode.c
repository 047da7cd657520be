/*
 * fuzz_oaep_decode - the host-side OAEP-SHA256 decoder reads bytes that an
 * attacker chose (the RSA output of a wallet packet): any input must give
 * either a message that fits or HSM_ERR_VERIFY, never a crash or a read
 * outside the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsm/hsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t out[64];
    size_t out_len = 0;
    /* Copy to an exact-size heap buffer so ASan sees any over-read. */
    uint8_t *em = malloc(size > 0 ? size : 1);
    int r;

    if (em == NULL)
        return 0;
    memcpy(em, data, size);
    r = hsm_oaep_sha256_decode(em, size, out, sizeof(out), &out_len);
    if (r == HSM_OK && out_len > sizeof(out))
        abort();
    if (r != HSM_OK && r != HSM_ERR_VERIFY)
        abort();
    free(em);
    return 0;
}
