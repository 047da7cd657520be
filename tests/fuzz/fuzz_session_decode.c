/*
 * fuzz_session_decode - a sale session as read back from the store
 * (vault/ops/sessions.h). A damaged or tampered store must give a clean
 * refusal, never a crash: any input either decodes, with every field in its
 * documented range, and then encodes back to the same bytes, or is
 * -API_STATUS_INTERNAL.
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
    struct sale_session s;
    struct api_writer w;
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exact size: ASan sees over-reads */
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = ops_session_decode(&s, copy, size);
    if (rc != 0 && rc != -API_STATUS_INTERNAL)
        abort();
    if (rc == 0) {
        if ((s.state != OPS_SESSION_OPEN && s.state != OPS_SESSION_CONSUMED) ||
            !fuzz_printable(s.merchant, API_ID_MAX) || s.amount > API_AMOUNT_MAX ||
            strlen(s.currency) != API_CURRENCY_LEN || s.expires_at > API_TIME_MAX ||
            s.expires_at * 1000u <= s.created_at_ms)
            abort();
        api_writer_init(&w, OPS_SESSION_MAX);
        if (ops_session_encode(&w, &s) != 0 || api_writer_len(&w) != size ||
            memcmp(api_writer_data(&w), copy, size) != 0)
            abort();
        api_writer_cleanup(&w);
    }
    free(copy);
    return 0;
}
