/*
 * fuzz_audit_decode - an audit entry as a verifier reads it from a copy of
 * the store: any input decodes or is -API_STATUS_INTERNAL, and a decoded
 * checkpoint's signed prefix lies inside the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct audit_entry e;
    uint8_t *copy = malloc(size > 0 ? size : 1);
    int rc;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    rc = audit_decode(&e, copy, size);
    if (rc != 0 && rc != -API_STATUS_INTERNAL)
        abort();
    if (rc == 0 && (e.seq == 0 || (e.type == AUDIT_CHECKPOINT &&
                                   (e.signed_len > size || e.sig_len > sizeof(e.sig)))))
        abort();
    free(copy);
    return 0;
}
