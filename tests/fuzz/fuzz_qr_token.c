/*
 * fuzz_qr_token - the QR payment-request token as a gateway hands it over
 * from a payer's wallet (untrusted text). Any input either parses, and then
 * holds values in range and encodes back to exactly the same text (one
 * encoding per token), or is -API_STATUS_BAD_VALUE.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/ops/qr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size > 0 ? size : 1); /* exact size: ASan sees over-reads */
    char again[QR_TOKEN_TEXT_LEN + 1];
    struct qr_token t;
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = qr_token_parse(&t, copy, size);
    if (rc != 0 && rc != -API_STATUS_BAD_VALUE)
        abort();
    if (rc == 0) {
        if (size != QR_TOKEN_TEXT_LEN || t.version != QR_TOKEN_VERSION ||
            t.expires_at > API_TIME_MAX || qr_token_encode(again, &t) != 0 ||
            memcmp(again, copy, size) != 0)
            abort();
    }
    free(copy);
    return 0;
}
