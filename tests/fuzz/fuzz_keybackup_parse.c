/*
 * fuzz_keybackup_parse - a key backup file as restore reads it once its MAC
 * has verified (the MAC is what an attacker without the transport key cannot
 * pass; the parser behind it is still held to bounds): any input parses or
 * is refused with KEYBACKUP_ERR_FORMAT, and what parses is in range. With a
 * fixed transport key, keybackup_decode must refuse every input whose MAC
 * does not verify, and a parsed backup must encode and decode back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/keybackup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t tkey[HSM_TRANSPORT_KEY_LEN] = "fuzz-transport-key-0123456789ab";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size > 0 ? size : 1), *enc = NULL;
    struct keybackup b = {0}, again = {0};
    size_t enc_len = 0;
    int r;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    r = keybackup_parse(&b, copy, size);
    if (r != 0 && r != KEYBACKUP_ERR_FORMAT && r != KEYBACKUP_ERR_NO_MEMORY)
        abort();
    if (r == 0) {
        if (b.num == 0 || b.num > KEYBACKUP_KEYS_MAX)
            abort();
        for (size_t i = 0; i < b.num; i++)
            if (b.keys[i].spki_len > HSM_SPKI_MAX || b.keys[i].wrapped_len > HSM_BACKUP_WRAPPED_MAX ||
                b.keys[i].wrapped_len == 0)
                abort();
        if (keybackup_encode(&b, tkey, &enc, &enc_len) != 0 ||
            keybackup_decode(&again, enc, enc_len, tkey) != 0 || again.num != b.num)
            abort();
    }
    keybackup_free(&again);
    /* A random input almost never carries a valid MAC: it must be refused
     * before anything of it is parsed. */
    r = keybackup_decode(&again, copy, size, tkey);
    if (r != KEYBACKUP_ERR_MAC && r != KEYBACKUP_ERR_FORMAT && r != 0)
        abort();
    keybackup_free(&b);
    keybackup_free(&again);
    free(enc);
    free(copy);
    return 0;
}
