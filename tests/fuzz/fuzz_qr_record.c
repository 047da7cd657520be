/*
 * fuzz_qr_record - a QR payment request as read back from the store. The
 * store is the vault's own, but a damaged or tampered file must give a clean
 * refusal, never a crash: any input either decodes, and then holds values in
 * range and encodes back to the same bytes, or is -API_STATUS_INTERNAL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_check.h"
#include "vault/ops/qr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qr_record r;
    struct api_writer w;
    uint8_t *copy = malloc(size > 0 ? size : 1); /* exact size: ASan sees over-reads */
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = qr_record_decode(&r, copy, size);
    if (rc != 0 && rc != -API_STATUS_INTERNAL)
        abort();
    if (rc == 0) {
        bool paid = r.state == API_QR_PAID;

        if ((r.state != API_QR_ISSUED && !paid) || r.amount == 0 || r.amount > API_AMOUNT_MAX ||
            r.expires_at > API_TIME_MAX || r.created_at > r.expires_at ||
            !fuzz_printable(r.merchant, API_ID_MAX) || !fuzz_printable(r.order_id, API_ID_MAX) ||
            paid != fuzz_printable(r.payer_ref, API_ID_MAX) || paid != (r.paid_at != 0) ||
            strlen(r.currency) != API_CURRENCY_LEN)
            abort();
        api_writer_init(&w, QR_RECORD_MAX);
        if (qr_record_encode(&w, &r) != 0 || api_writer_len(&w) != size ||
            memcmp(api_writer_data(&w), copy, size) != 0)
            abort();
        api_writer_cleanup(&w);
    }
    free(copy);
    return 0;
}
