/*
 * audit.c - the hash-chained, HSM-checkpointed audit log.
 *
 * Entry bytes (docs/AUDIT.md):
 *   u8 version | u8 type | u64 seq | u64 time_ms | 32 prev_hash | body
 *   event body:      u16 opcode | u16 status | u64 request_id |
 *                    str8 event | str8 client | str8 merchant | str8 token | str8 detail
 *   checkpoint body: str8 key label | u16 sig_len | DER ECDSA signature
 * str8 is a u8 length and that many bytes. A checkpoint's signature is over
 * SHA-256 of its own bytes before sig_len, which include prev_hash: it signs
 * the whole chain before it.
 */
#include "vault/audit.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/reader.h"
#include "api/writer.h"
#include "vault/be64.h"
#include "vault/log.h"

#define META_CHECKPOINT "audit.checkpoint"
#define SEQ_LEN 8u

uint64_t
audit_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Ids and fixed words are never longer than their field; cut rather than
 * fail, so a log entry is never lost to its own formatting. */
static int
put_str8(struct api_writer *w, const char *s, size_t max)
{
    char buf[UINT8_MAX + 1];

    snprintf(buf, sizeof(buf) < max + 1 ? sizeof(buf) : max + 1, "%s", s != NULL ? s : "");
    return api_writer_put_str8(w, buf);
}

/* The chain head: the next sequence number and the hash of the last entry. */
static int
chain_head(struct store_txn *t, uint64_t *out_next, uint8_t out_hash[AUDIT_HASH_LEN])
{
    MDB_val k, v;
    int r = store_last(t, STORE_DB_AUDIT, &k, &v);

    if (r == -API_STATUS_NOT_FOUND) {
        *out_next = 1;
        memset(out_hash, 0, AUDIT_HASH_LEN);
        return 0;
    }
    if (r != 0 || k.mv_size != SEQ_LEN)
        return r != 0 ? r : -API_STATUS_INTERNAL;
    *out_next = vault_get_be64(k.mv_data) + 1;
    if (EVP_Digest(v.mv_data, v.mv_size, out_hash, NULL, EVP_sha256(), NULL) != 1)
        return -API_STATUS_INTERNAL;
    return 0;
}

static int
put_header(struct api_writer *w, uint8_t type, uint64_t seq, const uint8_t prev[AUDIT_HASH_LEN])
{
    int e = 0;

    e = e ? e : api_writer_put_u8(w, AUDIT_VERSION);
    e = e ? e : api_writer_put_u8(w, type);
    e = e ? e : api_writer_put_u64(w, seq);
    e = e ? e : api_writer_put_u64(w, audit_now_ms());
    e = e ? e : api_writer_put_bytes(w, prev, AUDIT_HASH_LEN);
    return e;
}

static int
store_entry(struct store_txn *t, uint64_t seq, const struct api_writer *w)
{
    uint8_t key[SEQ_LEN];

    vault_put_be64(key, seq);
    return store_put(t, STORE_DB_AUDIT, key, sizeof(key), api_writer_data(w), api_writer_len(w),
                     STORE_PUT_NEW);
}

/* Appends a checkpoint signed in the HSM. */
static int
append_checkpoint(const struct vault_audit *a, struct store_txn *t)
{
    struct api_writer w;
    uint8_t prev[AUDIT_HASH_LEN], digest[32], sig[HSM_ECDSA_SIG_MAX], key[SEQ_LEN];
    size_t sig_len = 0;
    uint64_t seq;
    int e;

    api_writer_init(&w, AUDIT_ENTRY_MAX);
    if ((e = chain_head(t, &seq, prev)) != 0)
        goto out;
    e = put_header(&w, AUDIT_CHECKPOINT, seq, prev);
    e = e ? e : put_str8(&w, hsm_key_label(a->sign_key), HSM_LABEL_MAX);
    if (e != 0)
        goto out;
    if (EVP_Digest(api_writer_data(&w), api_writer_len(&w), digest, NULL, EVP_sha256(), NULL) != 1) {
        e = -API_STATUS_INTERNAL;
        goto out;
    }
    if ((e = hsm_ecdsa_sign(t->hsm, a->sign_key, digest, sizeof(digest), sig, sizeof(sig),
                            &sig_len)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "audit_checkpoint", "hsm", hsm_last_detail());
        goto out;
    }
    e = api_writer_put_u16(&w, (uint16_t)sig_len);
    e = e ? e : api_writer_put_bytes(&w, sig, sig_len);
    e = e ? e : store_entry(t, seq, &w);
    vault_put_be64(key, seq);
    e = e ? e : store_put(t, STORE_DB_META, META_CHECKPOINT, sizeof(META_CHECKPOINT) - 1, key,
                          sizeof(key), 0);
out:
    api_writer_cleanup(&w);
    return e;
}

/* The sequence number of the last checkpoint (0: none yet). */
static int
last_checkpoint(struct store_txn *t, uint64_t *out)
{
    MDB_val v;
    int r = store_get(t, STORE_DB_META, META_CHECKPOINT, sizeof(META_CHECKPOINT) - 1, &v);

    if (r == -API_STATUS_NOT_FOUND) {
        *out = 0;
        return 0;
    }
    if (r != 0 || v.mv_size != SEQ_LEN)
        return r != 0 ? r : -API_STATUS_INTERNAL;
    *out = vault_get_be64(v.mv_data);
    return 0;
}

/* Any failure to write the log is one status for the caller; the cause is
 * logged here, once. */
static int
audit_fail(int r)
{
    struct vlog_line l;

    if (vlog_begin(&l, VAULT_LOG_ERROR, "audit_write_failed")) {
        vlog_str(&l, "status", api_status_name((unsigned)-r));
        vlog_i64(&l, "mdb", store_last_mdb_error());
        vlog_end(&l);
    }
    return -API_STATUS_AUDIT_UNAVAILABLE;
}

int
audit_append(const struct vault_audit *a, struct store_txn *t, const struct audit_event *e)
{
    struct api_writer w;
    uint8_t prev[AUDIT_HASH_LEN];
    uint64_t seq, cp;
    int r;

    api_writer_init(&w, AUDIT_ENTRY_MAX);
    if ((r = chain_head(t, &seq, prev)) != 0)
        goto out;
    r = put_header(&w, AUDIT_EVENT, seq, prev);
    r = r ? r : api_writer_put_u16(&w, e->opcode);
    r = r ? r : api_writer_put_u16(&w, e->status);
    r = r ? r : api_writer_put_u64(&w, e->request_id);
    r = r ? r : put_str8(&w, e->event, AUDIT_DETAIL_MAX);
    r = r ? r : put_str8(&w, e->client, API_ID_MAX);
    r = r ? r : put_str8(&w, e->merchant, API_ID_MAX);
    r = r ? r : put_str8(&w, e->token, API_ID_MAX);
    r = r ? r : put_str8(&w, e->detail, AUDIT_DETAIL_MAX);
    r = r ? r : store_entry(t, seq, &w);
    if (r != 0)
        goto out;
    /* A checkpoint is due: without an HSM session now it waits for the next
     * append or the timer; the event itself is recorded either way. */
    if (a != NULL && a->sign_key != NULL && t->hsm != NULL && a->checkpoint_entries > 0 &&
        (r = last_checkpoint(t, &cp)) == 0 && seq - cp >= a->checkpoint_entries)
        r = append_checkpoint(a, t);
out:
    api_writer_cleanup(&w);
    return r == 0 ? 0 : audit_fail(r);
}

int
audit_checkpoint(const struct vault_audit *a, struct store_txn *t)
{
    uint8_t prev[AUDIT_HASH_LEN];
    uint64_t next, cp;
    int r;

    if (a == NULL || a->sign_key == NULL || t->hsm == NULL)
        return audit_fail(-API_STATUS_HSM_UNAVAILABLE);
    if ((r = chain_head(t, &next, prev)) != 0 || (r = last_checkpoint(t, &cp)) != 0)
        return audit_fail(r);
    if (next - 1 <= cp) /* nothing since the last checkpoint */
        return 0;
    return (r = append_checkpoint(a, t)) == 0 ? 0 : audit_fail(r);
}

int
audit_decode(struct audit_entry *out, const uint8_t *data, size_t len)
{
    struct api_reader rd, v;
    uint8_t version;
    uint16_t sig_len;
    int r = -API_STATUS_INTERNAL;

    memset(out, 0, sizeof(*out));
    api_reader_init(&rd, data, len);
    if (api_reader_get_u8(&rd, &version) != 0 || version != AUDIT_VERSION ||
        api_reader_get_u8(&rd, &out->type) != 0 || api_reader_get_u64(&rd, &out->seq) != 0 ||
        out->seq == 0 || api_reader_get_u64(&rd, &out->time_ms) != 0 ||
        api_reader_get_bytes(&rd, &v, AUDIT_HASH_LEN) != 0)
        goto out;
    memcpy(out->prev_hash, v.data, AUDIT_HASH_LEN);
    if (out->type == AUDIT_EVENT) {
        if (api_reader_get_u16(&rd, &out->opcode) != 0 || api_reader_get_u16(&rd, &out->status) != 0 ||
            api_reader_get_u64(&rd, &out->request_id) != 0 ||
            api_reader_get_str8(&rd, out->event, sizeof(out->event), 0, AUDIT_DETAIL_MAX) != 0 ||
            api_reader_get_str8(&rd, out->client, sizeof(out->client), 0, API_ID_MAX) != 0 ||
            api_reader_get_str8(&rd, out->merchant, sizeof(out->merchant), 0, API_ID_MAX) != 0 ||
            api_reader_get_str8(&rd, out->token, sizeof(out->token), 0, API_ID_MAX) != 0 ||
            api_reader_get_str8(&rd, out->detail, sizeof(out->detail), 0, AUDIT_DETAIL_MAX) != 0)
            goto out;
    } else if (out->type == AUDIT_CHECKPOINT) {
        if (api_reader_get_str8(&rd, out->key_label, sizeof(out->key_label), 0, HSM_LABEL_MAX) != 0)
            goto out;
        out->signed_len = len - api_reader_len(&rd);
        if (api_reader_get_u16(&rd, &sig_len) != 0 || sig_len == 0 ||
            sig_len > sizeof(out->sig) || api_reader_get_bytes(&rd, &v, sig_len) != 0)
            goto out;
        memcpy(out->sig, v.data, sig_len);
        out->sig_len = sig_len;
    } else {
        goto out;
    }
    if (api_reader_len(&rd) == 0)
        r = 0;
out:
    if (r != 0)
        memset(out, 0, sizeof(*out));
    return r;
}

struct verify_ctx {
    EVP_PKEY *pub;
    uint64_t expect_seq, entries, checkpoints, bad_seq;
    uint8_t prev[AUDIT_HASH_LEN];
    int result;
};

static int
verify_one(void *arg, const MDB_val *key, const MDB_val *val)
{
    struct verify_ctx *c = arg;
    struct audit_entry e;
    uint8_t digest[32];
    EVP_PKEY_CTX *pctx = NULL;
    int ok;

    if (key->mv_size != SEQ_LEN || audit_decode(&e, val->mv_data, val->mv_size) != 0) {
        c->result = -API_STATUS_INTERNAL;
        c->bad_seq = c->expect_seq;
        return 1;
    }
    if (vault_get_be64(key->mv_data) != c->expect_seq || e.seq != c->expect_seq ||
        CRYPTO_memcmp(e.prev_hash, c->prev, AUDIT_HASH_LEN) != 0)
        goto bad;
    if (e.type == AUDIT_CHECKPOINT && c->pub != NULL) {
        if (EVP_Digest(val->mv_data, e.signed_len, digest, NULL, EVP_sha256(), NULL) != 1 ||
            (pctx = EVP_PKEY_CTX_new(c->pub, NULL)) == NULL || EVP_PKEY_verify_init(pctx) != 1)
            goto bad;
        ok = EVP_PKEY_verify(pctx, e.sig, e.sig_len, digest, sizeof(digest));
        EVP_PKEY_CTX_free(pctx);
        if (ok != 1)
            goto bad;
    }
    if (e.type == AUDIT_CHECKPOINT)
        c->checkpoints++;
    c->entries++;
    c->expect_seq++;
    if (EVP_Digest(val->mv_data, val->mv_size, c->prev, NULL, EVP_sha256(), NULL) != 1)
        goto bad;
    return 0;
bad:
    c->result = -API_STATUS_SIGNATURE_INVALID;
    c->bad_seq = c->expect_seq;
    return 1;
}

int
audit_verify(struct store_txn *t, const uint8_t *spki, size_t spki_len, uint64_t *out_entries,
             uint64_t *out_checkpoints, uint64_t *out_bad_seq)
{
    struct verify_ctx c = {.expect_seq = 1};
    const unsigned char *p = spki;
    int r;

    if (spki != NULL && (c.pub = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL)
        return -API_STATUS_INTERNAL;
    r = store_each(t, STORE_DB_AUDIT, NULL, 0, verify_one, &c);
    if (r == 1)
        r = c.result;
    EVP_PKEY_free(c.pub);
    if (out_entries != NULL)
        *out_entries = c.entries;
    if (out_checkpoints != NULL)
        *out_checkpoints = c.checkpoints;
    if (out_bad_seq != NULL)
        *out_bad_seq = c.bad_seq;
    return r;
}

/* One write job that appends a few events together. */
struct record_job {
    struct store_write w;
    const struct vault_audit *a;
    const struct audit_event *events;
    size_t num;
};

static int
record_apply(struct store_write *w, struct store_txn *t)
{
    struct record_job *j = (struct record_job *)w;
    int r = 0;

    for (size_t i = 0; i < j->num && r == 0; i++)
        r = audit_append(j->a, t, &j->events[i]);
    return r;
}

static void
record_done(struct store_write *w, int result)
{
}

int
audit_record(const struct vault_audit *a, struct vault_store *s, const struct audit_event *events,
             size_t num)
{
    struct record_job j = {.w = {.apply = record_apply, .done = record_done},
                           .a = a, .events = events, .num = num};

    return store_write_wait(s, &j.w);
}
