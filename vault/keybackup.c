/*
 * keybackup.c - the key backup file: encode, authenticate, parse.
 */
#include "vault/keybackup.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api/reader.h"
#include "api/writer.h"

static const uint8_t magic[4] = {'T', 'V', 'K', 'B'};
static const char mac_label[] = "tokenvault key backup mac v1";

/* K_mac from the transport key, then the MAC over |data|. */
static int
backup_mac(const uint8_t tkey[HSM_TRANSPORT_KEY_LEN], const uint8_t *data, size_t len,
           uint8_t out[KEYBACKUP_MAC_LEN])
{
    uint8_t kmac[32];
    unsigned n = 0;
    int rc = KEYBACKUP_ERR_NO_MEMORY;

    if (HMAC(EVP_sha256(), tkey, HSM_TRANSPORT_KEY_LEN, (const uint8_t *)mac_label,
             sizeof(mac_label) - 1, kmac, &n) != NULL &&
        HMAC(EVP_sha256(), kmac, sizeof(kmac), data, len, out, &n) != NULL)
        rc = 0;
    OPENSSL_cleanse(kmac, sizeof(kmac));
    return rc;
}

int
keybackup_encode(const struct keybackup *b, const uint8_t tkey[HSM_TRANSPORT_KEY_LEN],
                 uint8_t **out, size_t *out_len)
{
    struct api_writer w;
    uint8_t mac[KEYBACKUP_MAC_LEN], *buf = NULL;
    size_t body;
    int r;

    if (b->num > KEYBACKUP_KEYS_MAX || b->num_objs > KEYBACKUP_OBJS_MAX)
        return KEYBACKUP_ERR_FORMAT;
    api_writer_init(&w, KEYBACKUP_FILE_MAX);
    r = api_writer_put_bytes(&w, magic, sizeof(magic));
    r = r ? r : api_writer_put_u8(&w, KEYBACKUP_VERSION);
    r = r ? r : api_writer_put_bytes(&w, b->set_id, SHARE_SET_ID_LEN);
    r = r ? r : api_writer_put_u64(&w, b->created_ms);
    r = r ? r : api_writer_put_u16(&w, (uint16_t)b->num);
    for (size_t i = 0; i < b->num && r == 0; i++) {
        const struct keybackup_key *k = &b->keys[i];

        r = api_writer_put_str8(&w, k->label);
        r = r ? r : api_writer_put_u8(&w, k->kind);
        r = r ? r : api_writer_put_bytes(&w, k->kcv, HSM_KCV_LEN);
        r = r ? r : api_writer_put_u16(&w, (uint16_t)k->spki_len);
        r = r ? r : api_writer_put_bytes(&w, k->spki, k->spki_len);
        r = r ? r : api_writer_put_u16(&w, (uint16_t)k->wrapped_len);
        r = r ? r : api_writer_put_bytes(&w, k->wrapped, k->wrapped_len);
    }
    r = r ? r : api_writer_put_u16(&w, (uint16_t)b->num_objs);
    for (size_t i = 0; i < b->num_objs && r == 0; i++) {
        const struct keybackup_obj *o = &b->objs[i];

        r = api_writer_put_u8(&w, o->type);
        r = r ? r : api_writer_put_str8(&w, o->label);
        r = r ? r : api_writer_put_str8(&w, o->set);
        r = r ? r : api_writer_put_u64(&w, o->expiration_ms);
        r = r ? r : api_writer_put_u16(&w, (uint16_t)o->der_len);
        r = r ? r : api_writer_put_bytes(&w, o->der, o->der_len);
    }
    if (r != 0) {
        r = KEYBACKUP_ERR_FORMAT;
        goto out;
    }
    body = w.len;
    if ((r = backup_mac(tkey, w.buf, body, mac)) != 0 ||
        api_writer_put_bytes(&w, mac, sizeof(mac)) != 0 || (buf = malloc(w.len)) == NULL) {
        r = r != 0 ? r : KEYBACKUP_ERR_NO_MEMORY;
        goto out;
    }
    memcpy(buf, w.buf, w.len);
    *out = buf;
    *out_len = w.len;
    r = 0;
out:
    api_writer_cleanup(&w);
    return r;
}

static int
get_prefixed(struct api_reader *r, uint8_t *out, size_t cap, size_t *out_len)
{
    struct api_reader field;
    uint16_t n = 0;

    if (api_reader_get_u16(r, &n) != 0 || n > cap || api_reader_get_bytes(r, &field, n) != 0)
        return KEYBACKUP_ERR_FORMAT;
    memcpy(out, field.data, n);
    *out_len = n;
    return 0;
}

/* The wallet objects after the keys. */
static int
parse_objs(struct api_reader *r, struct keybackup *b)
{
    uint16_t num = 0;

    if (api_reader_get_u16(r, &num) != 0 || num > KEYBACKUP_OBJS_MAX)
        return KEYBACKUP_ERR_FORMAT;
    if (num == 0)
        return 0;
    /* At least 14 bytes each: the count must fit in what is left. */
    if (num > api_reader_len(r) / 14u)
        return KEYBACKUP_ERR_FORMAT;
    if ((b->objs = calloc(num, sizeof(b->objs[0]))) == NULL)
        return KEYBACKUP_ERR_NO_MEMORY;
    for (b->num_objs = 0; b->num_objs < num; b->num_objs++) {
        struct keybackup_obj *o = &b->objs[b->num_objs];

        if (api_reader_get_u8(r, &o->type) != 0 || o->type < HSM_WOBJ_KEY_CERT ||
            o->type > HSM_WOBJ_ANCHOR_KEY ||
            api_reader_get_str8(r, o->label, sizeof(o->label), 1, HSM_LABEL_MAX) != 0 ||
            api_reader_get_str8(r, o->set, sizeof(o->set), 0, HSM_ANCHOR_SET_MAX) != 0 ||
            api_reader_get_u64(r, &o->expiration_ms) != 0 ||
            get_prefixed(r, o->der, sizeof(o->der), &o->der_len) != 0 || o->der_len == 0)
            return KEYBACKUP_ERR_FORMAT;
    }
    return 0;
}

int
keybackup_parse(struct keybackup *out, const uint8_t *in, size_t len)
{
    struct api_reader r, field;
    struct keybackup b;
    uint8_t version = 0;
    uint16_t num = 0;
    int rc = KEYBACKUP_ERR_FORMAT;

    memset(&b, 0, sizeof(b));
    api_reader_init(&r, in, len);
    if (api_reader_get_bytes(&r, &field, sizeof(magic)) != 0 ||
        memcmp(field.data, magic, sizeof(magic)) != 0 || api_reader_get_u8(&r, &version) != 0 ||
        version != KEYBACKUP_VERSION || api_reader_get_bytes(&r, &field, SHARE_SET_ID_LEN) != 0)
        goto out;
    memcpy(b.set_id, field.data, SHARE_SET_ID_LEN);
    if (api_reader_get_u64(&r, &b.created_ms) != 0 || api_reader_get_u16(&r, &num) != 0 ||
        num == 0 || num > KEYBACKUP_KEYS_MAX)
        goto out;
    /* num is bounded above, and each key takes at least 9 bytes: a count the
     * input cannot hold is refused before anything is allocated for it. */
    if (num > api_reader_len(&r) / 9u)
        goto out;
    if ((b.keys = calloc(num, sizeof(b.keys[0]))) == NULL) {
        rc = KEYBACKUP_ERR_NO_MEMORY;
        goto out;
    }
    for (b.num = 0; b.num < num; b.num++) {
        struct keybackup_key *k = &b.keys[b.num];

        if (api_reader_get_str8(&r, k->label, sizeof(k->label), 1, HSM_LABEL_MAX) != 0 ||
            api_reader_get_u8(&r, &k->kind) != 0 || k->kind < HSM_KIND_KEK ||
            k->kind > HSM_KIND_RSA_UNWRAP_SIGN || k->kind == HSM_KIND_DEK ||
            api_reader_get_bytes(&r, &field, HSM_KCV_LEN) != 0)
            goto out;
        memcpy(k->kcv, field.data, HSM_KCV_LEN);
        if (get_prefixed(&r, k->spki, sizeof(k->spki), &k->spki_len) != 0 ||
            get_prefixed(&r, k->wrapped, sizeof(k->wrapped), &k->wrapped_len) != 0 ||
            k->wrapped_len == 0)
            goto out;
        /* Secret keys have no public half; key pairs must. */
        if ((k->kind == HSM_KIND_KEK || k->kind == HSM_KIND_HMAC) != (k->spki_len == 0))
            goto out;
    }
    if ((rc = parse_objs(&r, &b)) != 0)
        goto out;
    rc = KEYBACKUP_ERR_FORMAT;
    if (api_reader_len(&r) != 0)
        goto out;
    *out = b;
    b.keys = NULL;
    b.objs = NULL;
    rc = 0;
out:
    keybackup_free(&b);
    return rc;
}

int
keybackup_decode(struct keybackup *out, const uint8_t *in, size_t len,
                 const uint8_t tkey[HSM_TRANSPORT_KEY_LEN])
{
    uint8_t mac[KEYBACKUP_MAC_LEN];
    int r;

    if (len <= KEYBACKUP_MAC_LEN || len > KEYBACKUP_FILE_MAX)
        return KEYBACKUP_ERR_FORMAT;
    if ((r = backup_mac(tkey, in, len - KEYBACKUP_MAC_LEN, mac)) != 0)
        return r;
    if (CRYPTO_memcmp(mac, in + len - KEYBACKUP_MAC_LEN, KEYBACKUP_MAC_LEN) != 0)
        return KEYBACKUP_ERR_MAC;
    return keybackup_parse(out, in, len - KEYBACKUP_MAC_LEN);
}

void
keybackup_free(struct keybackup *b)
{
    if (b == NULL)
        return;
    if (b->keys != NULL)
        OPENSSL_cleanse(b->keys, b->num * sizeof(b->keys[0]));
    free(b->keys);
    free(b->objs);
    b->keys = NULL;
    b->objs = NULL;
    b->num = b->num_objs = 0;
}
