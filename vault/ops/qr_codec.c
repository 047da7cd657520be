/*
 * qr_codec.c - the QR payment-request token and record; see qr.h.
 */
#include "vault/ops/qr.h"

#include <stdbool.h>
#include <string.h>

#include "api/reader.h"
#include "vault/be64.h"
#include "vault/wallet/codec.h"

_Static_assert(QR_TOKEN_BIN_LEN % 3u == 0, "the token is whole base64 groups");
_Static_assert(QR_TOKEN_TEXT_LEN <= API_QR_TOKEN_MAX, "the token fits its wire field");

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- token ------------------------------------------------------------------ */

int
qr_token_encode(char out[QR_TOKEN_TEXT_LEN + 1], const struct qr_token *t)
{
    uint8_t bin[QR_TOKEN_BIN_LEN];
    size_t n = 0;

    if (t->version != QR_TOKEN_VERSION || t->expires_at > API_TIME_MAX)
        return -API_STATUS_INTERNAL;
    bin[0] = t->version;
    memcpy(bin + 1, t->id, QR_REQUEST_ID_LEN);
    vault_put_be64(bin + 1 + QR_REQUEST_ID_LEN, t->expires_at);
    memcpy(bin + 1 + QR_REQUEST_ID_LEN + 8, t->tag, QR_TAG_LEN);
    for (size_t i = 0; i < QR_TOKEN_BIN_LEN; i += 3) {
        uint32_t acc = (uint32_t)bin[i] << 16 | (uint32_t)bin[i + 1] << 8 | bin[i + 2];

        out[n++] = b64url_alphabet[acc >> 18 & 0x3f];
        out[n++] = b64url_alphabet[acc >> 12 & 0x3f];
        out[n++] = b64url_alphabet[acc >> 6 & 0x3f];
        out[n++] = b64url_alphabet[acc & 0x3f];
    }
    out[n] = '\0';
    return 0;
}

int
qr_token_parse(struct qr_token *out, const char *text, size_t len)
{
    uint8_t bin[QR_TOKEN_BIN_LEN];
    struct api_reader rd, v;
    struct qr_token t;
    size_t n = 0;

    /* One length only: there is one token format, and each of its byte
     * strings has exactly one encoding (no padding, no partial group). */
    if (text == NULL || len != QR_TOKEN_TEXT_LEN)
        return -API_STATUS_BAD_VALUE;
    /* The wallets' strict base64url decoder: alphabet, no padding, zero
     * unused bits (none here: 76 characters are whole groups). */
    if (wallet_b64url_decode(bin, sizeof(bin), &n, text, len) != WALLET_OK || n != sizeof(bin))
        return -API_STATUS_BAD_VALUE;
    memset(&t, 0, sizeof(t));
    api_reader_init(&rd, bin, n);
    if (api_reader_get_u8(&rd, &t.version) != 0 || t.version != QR_TOKEN_VERSION ||
        api_reader_get_bytes(&rd, &v, QR_REQUEST_ID_LEN) != 0)
        return -API_STATUS_BAD_VALUE;
    memcpy(t.id, v.data, v.len);
    if (api_reader_get_u64(&rd, &t.expires_at) != 0 || t.expires_at > API_TIME_MAX ||
        api_reader_get_bytes(&rd, &v, QR_TAG_LEN) != 0)
        return -API_STATUS_BAD_VALUE;
    memcpy(t.tag, v.data, v.len);
    if (api_reader_len(&rd) != 0)
        return -API_STATUS_BAD_VALUE;
    *out = t;
    return 0;
}

/* ---- what the tag covers ------------------------------------------------------ */

int
qr_mac_input(uint8_t out[QR_MAC_INPUT_MAX], size_t *out_len, uint8_t version,
             const uint8_t id[QR_REQUEST_ID_LEN], const struct qr_record *rec)
{
    size_t mlen = strnlen(rec->merchant, sizeof(rec->merchant));
    size_t olen = strnlen(rec->order_id, sizeof(rec->order_id));
    size_t n = 0;

    if (mlen == 0 || mlen > API_ID_MAX || olen == 0 || olen > API_ID_MAX ||
        strnlen(rec->currency, sizeof(rec->currency)) != API_CURRENCY_LEN)
        return -API_STATUS_INTERNAL;
    memcpy(out, QR_MAC_LABEL, sizeof(QR_MAC_LABEL)); /* with its NUL */
    n += sizeof(QR_MAC_LABEL);
    out[n++] = version;
    memcpy(out + n, id, QR_REQUEST_ID_LEN);
    n += QR_REQUEST_ID_LEN;
    out[n++] = (uint8_t)mlen;
    memcpy(out + n, rec->merchant, mlen);
    n += mlen;
    out[n++] = (uint8_t)olen;
    memcpy(out + n, rec->order_id, olen);
    n += olen;
    vault_put_be64(out + n, rec->amount);
    n += 8;
    memcpy(out + n, rec->currency, API_CURRENCY_LEN);
    n += API_CURRENCY_LEN;
    vault_put_be64(out + n, rec->expires_at);
    n += 8;
    *out_len = n;
    return 0;
}

/* ---- record ------------------------------------------------------------------ */

/* 1..max printable ASCII, no blank: the codec's id type (0 allowed when
 * |empty_ok|). */
static bool
id_ok(const char *s, size_t max, bool empty_ok)
{
    size_t n = strnlen(s, max + 1);

    if (n > max || (n == 0 && !empty_ok))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    }
    return true;
}

static bool
currency_ok(const char *c)
{
    for (size_t i = 0; i < API_CURRENCY_LEN; i++) {
        if (c[i] < 'A' || c[i] > 'Z')
            return false;
    }
    return c[API_CURRENCY_LEN] == '\0';
}

/* The record's values in range and consistent: what encode writes and
 * decode takes. */
static bool
record_ok(const struct qr_record *r)
{
    bool paid = r->state == API_QR_PAID;

    if (r->state != API_QR_ISSUED && !paid)
        return false;
    if (r->created_at > r->expires_at || r->expires_at > API_TIME_MAX ||
        r->paid_at > API_TIME_MAX || r->amount == 0 || r->amount > API_AMOUNT_MAX)
        return false;
    /* Paid exactly when it carries when and by whom. */
    if (paid != (r->paid_at != 0) || paid != (r->payer_ref[0] != '\0'))
        return false;
    return currency_ok(r->currency) && id_ok(r->merchant, API_ID_MAX, false) &&
           id_ok(r->order_id, API_ID_MAX, false) && id_ok(r->payer_ref, API_ID_MAX, true);
}

int
qr_record_encode(struct api_writer *w, const struct qr_record *r)
{
    int e = 0;

    /* A record decode would refuse is never written: it could not be read back. */
    if (!record_ok(r))
        return -API_STATUS_INTERNAL;
    e = e ? e : api_writer_put_u8(w, r->key_version == 0 ? QR_RECORD_VERSION_V1
                                                          : QR_RECORD_VERSION);
    e = e ? e : api_writer_put_u8(w, r->state);
    if (r->key_version != 0)
        e = e ? e : api_writer_put_u32(w, r->key_version);
    e = e ? e : api_writer_put_u64(w, r->created_at);
    e = e ? e : api_writer_put_u64(w, r->expires_at);
    e = e ? e : api_writer_put_u64(w, r->paid_at);
    e = e ? e : api_writer_put_u64(w, r->amount);
    e = e ? e : api_writer_put_bytes(w, (const uint8_t *)r->currency, API_CURRENCY_LEN);
    e = e ? e : api_writer_put_str8(w, r->merchant);
    e = e ? e : api_writer_put_str8(w, r->order_id);
    e = e ? e : api_writer_put_str8(w, r->payer_ref);
    return e;
}

int
qr_record_decode(struct qr_record *out, const uint8_t *data, size_t len)
{
    struct api_reader rd, v;
    uint8_t version = 0;
    int r = -API_STATUS_INTERNAL;

    memset(out, 0, sizeof(*out));
    api_reader_init(&rd, data, len);
    if (api_reader_get_u8(&rd, &version) != 0 ||
        (version != QR_RECORD_VERSION && version != QR_RECORD_VERSION_V1) ||
        api_reader_get_u8(&rd, &out->state) != 0 ||
        (version == QR_RECORD_VERSION &&
         (api_reader_get_u32(&rd, &out->key_version) != 0 || out->key_version == 0)) ||
        api_reader_get_u64(&rd, &out->created_at) != 0 ||
        api_reader_get_u64(&rd, &out->expires_at) != 0 ||
        api_reader_get_u64(&rd, &out->paid_at) != 0 || api_reader_get_u64(&rd, &out->amount) != 0 ||
        api_reader_get_bytes(&rd, &v, API_CURRENCY_LEN) != 0)
        goto out;
    memcpy(out->currency, v.data, API_CURRENCY_LEN);
    if (api_reader_get_str8(&rd, out->merchant, sizeof(out->merchant), 1, API_ID_MAX) != 0 ||
        api_reader_get_str8(&rd, out->order_id, sizeof(out->order_id), 1, API_ID_MAX) != 0 ||
        api_reader_get_str8(&rd, out->payer_ref, sizeof(out->payer_ref), 0, API_ID_MAX) != 0 ||
        api_reader_len(&rd) != 0 || !record_ok(out))
        goto out;
    r = 0;
out:
    if (r != 0)
        memset(out, 0, sizeof(*out));
    return r;
}

uint8_t
qr_record_state(const struct qr_record *r, uint64_t now)
{
    if (r->state == API_QR_PAID)
        return API_QR_PAID;
    return now >= r->expires_at ? API_QR_EXPIRED : API_QR_ISSUED;
}

/* ---- keys ------------------------------------------------------------------- */

size_t
qr_record_key(uint8_t out[QR_RECORD_KEY_LEN], const uint8_t id[QR_REQUEST_ID_LEN])
{
    out[0] = QR_KEY_RECORD;
    memcpy(out + 1, id, QR_REQUEST_ID_LEN);
    return QR_RECORD_KEY_LEN;
}

size_t
qr_order_key(uint8_t out[QR_ORDER_KEY_MAX], const char *merchant, const char *order_id)
{
    size_t mlen = strnlen(merchant, API_ID_MAX), olen = strnlen(order_id, API_ID_MAX), n = 0;

    out[n++] = QR_KEY_ORDER;
    memcpy(out + n, merchant, mlen);
    n += mlen;
    out[n++] = 0;
    memcpy(out + n, order_id, olen);
    return n + olen;
}

void
qr_request_id_text(char out[QR_REQUEST_ID_TEXT_LEN + 1], const uint8_t id[QR_REQUEST_ID_LEN])
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < QR_REQUEST_ID_LEN; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 0x0f];
    }
    out[QR_REQUEST_ID_TEXT_LEN] = '\0';
}
