/*
 * fuzz_mapping_decode - a clientCardId mapping as read back from the store
 * (vault/ops/sessions.h): decodes with its fields in range and encodes back
 * to the same bytes, or is -API_STATUS_INTERNAL; never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "vault/ops/sessions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t zero[HSM_HMAC_SHA256_LEN];
    struct card_mapping m;
    struct api_writer w;
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exact size: ASan sees over-reads */
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = ops_mapping_decode(&m, copy, size);
    if (rc != 0 && rc != -API_STATUS_INTERNAL)
        abort();
    if (rc == 0) {
        if (!fuzz_printable(m.token, API_ID_MAX) || m.created_at > API_TIME_MAX ||
            (!m.has_email && memcmp(m.email_fp, zero, sizeof(zero)) != 0))
            abort();
        api_writer_init(&w, OPS_MAPPING_MAX);
        if (ops_mapping_encode(&w, &m) != 0 || api_writer_len(&w) != size ||
            memcmp(api_writer_data(&w), copy, size) != 0)
            abort();
        api_writer_cleanup(&w);
    }
    free(copy);
    return 0;
}
