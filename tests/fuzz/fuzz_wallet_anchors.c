/*
 * fuzz_wallet_anchors - what officers hand the wallet-key ceremonies (Google's
 * keys.json, Apple certificates and their merchant id extension, base64) and
 * what the vault reads back from the token (anchor records). Every input
 * parses or is refused with the parser's own format error; what parses is in
 * range.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hsm/hsm.h"
#include "vault/wallet/anchors.h"
#include "vault/wallet/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
protocol_known(const char *p)
{
    return strcmp(p, "ECv1") == 0 || strcmp(p, "ECv2") == 0 || strcmp(p, "ECv2SigningOnly") == 0;
}

static void
check_keys(const uint8_t *data, size_t size)
{
    static struct wallet_root_keys keys;
    char err[WALLET_WHY_MAX];
    int r = wallet_google_keys_parse(&keys, (const char *)data, size, err, sizeof(err));

    if (r == WALLET_ERR_FORMAT || r == WALLET_ERR_NO_MEMORY)
        return;
    if (r != WALLET_OK || keys.num == 0 || keys.num > WALLET_ROOT_KEYS_MAX)
        abort();
    for (size_t i = 0; i < keys.num; i++) {
        const struct wallet_root_key *k = &keys.keys[i];

        if (!protocol_known(k->protocol) || k->spki_len == 0 || k->spki_len > WALLET_SPKI_MAX ||
            (k->has_expiration &&
             (k->expiration_ms == 0 || k->expiration_ms > WALLET_EXPIRATION_MAX_MS)) ||
            (!k->has_expiration && strcmp(k->protocol, "ECv1") != 0))
            abort();
    }
}

static void
check_merchant_id(const uint8_t *data, size_t size)
{
    uint8_t id[WALLET_MERCHANT_ID_LEN];
    int r = wallet_merchant_id_decode(id, data, size);

    /* Only the exact 66-byte string form decodes. */
    if ((r == WALLET_OK && size != 2 + 2 * WALLET_MERCHANT_ID_LEN) ||
        (r != WALLET_OK && r != WALLET_ERR_FORMAT))
        abort();
    r = wallet_cert_merchant_id(id, data, size);
    if (r != WALLET_OK && r != WALLET_ERR_FORMAT && r != WALLET_ERR_ABSENT &&
        r != WALLET_ERR_NO_MEMORY)
        abort();
}

static void
check_b64(const uint8_t *data, size_t size)
{
    uint8_t out[WALLET_SPKI_MAX];
    size_t n = 0;
    int r = wallet_b64_decode(out, sizeof(out), &n, (const char *)data, size);

    if (r == WALLET_ERR_FORMAT)
        return;
    /* 3 bytes per 4 characters, less 0..2 for the padding. */
    if (r != WALLET_OK || size % 4 != 0 || n > size / 4 * 3 || n + 2 < size / 4 * 3)
        abort();
}

static void
check_record(const uint8_t *data, size_t size)
{
    const uint8_t *spki = NULL;
    size_t spki_len = 0;
    uint64_t exp = 0;
    int r = hsm_anchor_record_decode(data, size, &exp, &spki, &spki_len);

    if (r == HSM_ERR_INPUT)
        return;
    if (r != HSM_OK || spki < data || spki_len == 0 || spki_len > HSM_SPKI_MAX ||
        (size_t)(spki - data) + spki_len != size)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly |size| bytes, so reading past it is caught. */
    uint8_t *copy = malloc(size > 0 ? size : 1);

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    check_keys(copy, size);
    check_merchant_id(copy, size);
    check_b64(copy, size);
    check_record(copy, size);
    free(copy);
    return 0;
}
