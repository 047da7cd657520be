/*
 * record.c - card records: the clear header, the sealed secrets.
 */
#include "vault/record.h"

#include <openssl/crypto.h>
#include <string.h>

#include "api/reader.h"
#include "vault/keys.h"

void
record_secret_wipe(struct card_secret *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, sizeof(*s));
}

static bool
all_digits(const char *s)
{
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* The clear header's values in range: what encode writes and decode takes. */
static bool
header_ok(const struct card_record *r)
{
    return r->kind >= 1 && r->kind <= API_ENUM_MAX(CARD_KIND) &&
           (r->flags & ~(RECORD_F_ACTIVE | RECORD_F_NEED_CVC | RECORD_F_CONSENT)) == 0 &&
           r->verification >= 1 && r->verification <= API_ENUM_MAX(VERIFICATION) &&
           r->brand >= 1 && r->brand <= API_ENUM_MAX(BRAND) && r->exp_month >= 1 &&
           r->exp_month <= 12 && r->exp_year >= 2000 && r->exp_year <= 2099 &&
           r->created_at <= API_TIME_MAX && r->expires_at <= API_TIME_MAX;
}

int
record_encode(struct api_writer *w, const struct card_record *r)
{
    int e = 0;

    /* A record decode would refuse is never written: it could not be read back. */
    if (!header_ok(r))
        return -API_STATUS_INTERNAL;

    e = e ? e : api_writer_put_u8(w, RECORD_VERSION);
    e = e ? e : api_writer_put_u8(w, r->kind);
    e = e ? e : api_writer_put_u8(w, r->flags);
    e = e ? e : api_writer_put_u8(w, r->verification);
    e = e ? e : api_writer_put_u8(w, r->brand);
    e = e ? e : api_writer_put_u8(w, r->exp_month);
    e = e ? e : api_writer_put_u16(w, r->exp_year);
    e = e ? e : api_writer_put_u64(w, r->created_at);
    e = e ? e : api_writer_put_u64(w, r->expires_at);
    e = e ? e : api_writer_put_str8(w, r->bin);
    e = e ? e : api_writer_put_str8(w, r->last4);
    e = e ? e : api_writer_put_str8(w, r->merchant);
    e = e ? e : api_writer_put_str8(w, r->initial_txn_id);
    e = e ? e : api_writer_put_bytes(w, r->fingerprint, sizeof(r->fingerprint));
    e = e ? e : api_writer_put_u32(w, r->dek_version);
    e = e ? e : api_writer_put_bytes(w, r->iv, sizeof(r->iv));
    if (e == 0 && (r->ct_len < HSM_GCM_TAG_LEN || r->ct_len > RECORD_CT_MAX))
        e = -API_STATUS_INTERNAL;
    e = e ? e : api_writer_put_u16(w, (uint16_t)r->ct_len);
    e = e ? e : api_writer_put_bytes(w, r->ct, r->ct_len);
    return e;
}

int
record_decode(struct card_record *out, const uint8_t *data, size_t len)
{
    struct api_reader rd, v;
    uint8_t version;
    uint16_t ct_len;
    int r = -API_STATUS_INTERNAL;

    memset(out, 0, sizeof(*out));
    api_reader_init(&rd, data, len);
    if (api_reader_get_u8(&rd, &version) != 0 || version != RECORD_VERSION ||
        api_reader_get_u8(&rd, &out->kind) != 0 || api_reader_get_u8(&rd, &out->flags) != 0 ||
        api_reader_get_u8(&rd, &out->verification) != 0 || api_reader_get_u8(&rd, &out->brand) != 0 ||
        api_reader_get_u8(&rd, &out->exp_month) != 0 || api_reader_get_u16(&rd, &out->exp_year) != 0 ||
        api_reader_get_u64(&rd, &out->created_at) != 0 ||
        api_reader_get_u64(&rd, &out->expires_at) != 0)
        goto out;
    if (!header_ok(out))
        goto out;
    if (api_reader_get_str8(&rd, out->bin, sizeof(out->bin), 6, API_BIN_MAX) != 0 ||
        !all_digits(out->bin) ||
        api_reader_get_str8(&rd, out->last4, sizeof(out->last4), API_LAST4_LEN, API_LAST4_LEN) != 0 ||
        !all_digits(out->last4) ||
        api_reader_get_str8(&rd, out->merchant, sizeof(out->merchant), 1, API_ID_MAX) != 0 ||
        api_reader_get_str8(&rd, out->initial_txn_id, sizeof(out->initial_txn_id), 0,
                            API_ID_MAX) != 0)
        goto out;
    if (api_reader_get_bytes(&rd, &v, sizeof(out->fingerprint)) != 0)
        goto out;
    memcpy(out->fingerprint, v.data, v.len);
    if (api_reader_get_u32(&rd, &out->dek_version) != 0 || out->dek_version == 0 ||
        api_reader_get_bytes(&rd, &v, sizeof(out->iv)) != 0)
        goto out;
    memcpy(out->iv, v.data, v.len);
    if (api_reader_get_u16(&rd, &ct_len) != 0 || ct_len < HSM_GCM_TAG_LEN ||
        ct_len > RECORD_CT_MAX || api_reader_get_bytes(&rd, &v, ct_len) != 0 ||
        api_reader_len(&rd) != 0)
        goto out;
    memcpy(out->ct, v.data, ct_len);
    out->ct_len = ct_len;
    r = 0;
out:
    if (r != 0)
        memset(out, 0, sizeof(*out));
    return r;
}

/* The additional data of a record's GCM encryption (see record.h). */
#define AAD_MAX (1u + 1u + 1u + API_ID_MAX + 1u + API_ID_MAX + 4u)

static int
make_aad(uint8_t out[AAD_MAX], size_t *out_len, const struct card_record *r, const char *token,
         uint32_t dek_version)
{
    size_t mlen = strlen(r->merchant), tlen = strlen(token), n = 0;

    if (mlen == 0 || mlen > API_ID_MAX || tlen == 0 || tlen > API_ID_MAX)
        return -API_STATUS_INTERNAL;
    out[n++] = RECORD_VERSION;
    out[n++] = r->kind;
    out[n++] = (uint8_t)mlen;
    memcpy(out + n, r->merchant, mlen);
    n += mlen;
    out[n++] = (uint8_t)tlen;
    /* Length-prefixed bytes, as the merchant's above: no NUL in the AAD. */
    memcpy(out + n, token, tlen); /* NOLINT(bugprone-not-null-terminated-result) */
    n += tlen;
    out[n++] = (uint8_t)(dek_version >> 24);
    out[n++] = (uint8_t)(dek_version >> 16);
    out[n++] = (uint8_t)(dek_version >> 8);
    out[n++] = (uint8_t)dek_version;
    *out_len = n;
    return 0;
}

int
record_seal(hsm_session *s, hsm_key *dek, uint32_t dek_version, const char *token,
            struct card_record *r, const struct card_secret *sec)
{
    struct api_writer pt;
    uint8_t aad[AAD_MAX];
    size_t aad_len, ct_len = 0;
    int e = 0;

    api_writer_init(&pt, RECORD_SECRET_MAX);
    e = e ? e : make_aad(aad, &aad_len, r, token, dek_version);
    e = e ? e : api_writer_put_str8(&pt, sec->pan);
    e = e ? e : api_writer_put_str8(&pt, sec->holder);
    e = e ? e : api_writer_put_str8(&pt, sec->email);
    if (e != 0) {
        e = -API_STATUS_INTERNAL;
        goto out;
    }
    e = hsm_gcm_encrypt(s, dek, aad, aad_len, api_writer_data(&pt), api_writer_len(&pt), r->iv,
                        r->ct, sizeof(r->ct), &ct_len);
    if (e != 0) {
        e = vault_hsm_status(e);
        goto out;
    }
    r->ct_len = ct_len;
    r->dek_version = dek_version;
out:
    api_writer_cleanup(&pt); /* wipes the secrets */
    return e;
}

int
record_open(hsm_session *s, hsm_key *dek, const char *token, const struct card_record *r,
            struct card_secret *out)
{
    uint8_t aad[AAD_MAX], pt[RECORD_SECRET_MAX];
    struct api_reader rd;
    size_t aad_len, pt_len = 0;
    int e;

    memset(out, 0, sizeof(*out));
    if ((e = make_aad(aad, &aad_len, r, token, r->dek_version)) != 0)
        return e;
    e = hsm_gcm_decrypt(s, dek, aad, aad_len, r->iv, sizeof(r->iv), r->ct, r->ct_len, pt,
                        sizeof(pt), &pt_len);
    if (e != 0) {
        /* A tag that does not verify is an altered or moved record, never a
         * caller's mistake: INTERNAL, and the caller logs it loudly. */
        e = e == HSM_ERR_VERIFY ? -API_STATUS_INTERNAL : vault_hsm_status(e);
        goto out;
    }
    api_reader_init(&rd, pt, pt_len);
    if (api_reader_get_str8(&rd, out->pan, sizeof(out->pan), API_PAN_MIN, API_PAN_MAX) != 0 ||
        !all_digits(out->pan) ||
        api_reader_get_str8(&rd, out->holder, sizeof(out->holder), 0, API_HOLDER_MAX) != 0 ||
        api_reader_get_str8(&rd, out->email, sizeof(out->email), 0, API_EMAIL_MAX) != 0 ||
        api_reader_len(&rd) != 0)
        e = -API_STATUS_INTERNAL;
out:
    OPENSSL_cleanse(pt, sizeof(pt));
    if (e != 0)
        record_secret_wipe(out);
    return e;
}
