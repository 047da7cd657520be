/*
 * fuzz_mandate_decode - a mandate record as read back from the store. The
 * store is the vault's own, but a damaged or tampered file must give a clean
 * refusal, never a crash or a mandate outside its invariants: any input
 * either decodes, and then encodes back to the same bytes (encode refuses
 * what decode would), or is -API_STATUS_INTERNAL with the output zeroed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/mandate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct mandate_record zero;
    struct mandate_record m;
    struct api_writer w;
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exact size: ASan sees over-reads */
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = mandate_decode(&m, copy, size);
    if (rc != 0 && (rc != -API_STATUS_INTERNAL || memcmp(&m, &zero, sizeof(m)) != 0))
        abort();
    if (rc == 0) {
        /* What the rules rely on: a real end date, a minimum not above the
         * maximum, a count only with a last charge. */
        int32_t days = 0;

        if (mandate_date_days(&m.max_date, &days) != 0 || m.min_amount > m.max_amount ||
            (m.charge_count != 0) != m.has_last_charge || size > MANDATE_MAX)
            abort();
        api_writer_init(&w, MANDATE_MAX);
        if (mandate_encode(&w, &m) != 0 || api_writer_len(&w) != size ||
            memcmp(api_writer_data(&w), copy, size) != 0)
            abort();
        api_writer_cleanup(&w);
    }
    free(copy);
    return 0;
}
