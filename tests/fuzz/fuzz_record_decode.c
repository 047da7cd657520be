/*
 * fuzz_record_decode - a card record as read back from the store. The store
 * is the vault's own, but a damaged or tampered file must give a clean
 * refusal, never a crash: any input either decodes, and then encodes back to
 * the same bytes, or is -API_STATUS_INTERNAL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct card_record r;
    struct api_writer w;
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exact size: ASan sees over-reads */
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = record_decode(&r, copy, size);
    if (rc != 0 && rc != -API_STATUS_INTERNAL)
        abort();
    if (rc == 0) {
        api_writer_init(&w, RECORD_MAX);
        if (record_encode(&w, &r) != 0 || api_writer_len(&w) != size ||
            memcmp(api_writer_data(&w), copy, size) != 0)
            abort();
        api_writer_cleanup(&w);
    }
    free(copy);
    return 0;
}
