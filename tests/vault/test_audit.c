/*
 * test_audit.c - the audit log: the chain, signed checkpoints verified with
 * the audit key's public half, and every tampering found.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/token.h"
#include "vault/audit.h"
#include "vault/store.h"

static tv_token tok;
static hsm_key *aud, *other;
static uint8_t spki[HSM_SPKI_MAX], other_spki[HSM_SPKI_MAX];
static size_t spki_len, other_len;
static int seq;

static int
setup(void **state)
{
    hsm_session *s = NULL;

    (void)state;
    if (tv_token_setup(&tok) != 0 || tv_token_open(&tok) != HSM_OK ||
        hsm_session_acquire(tok.h, &s) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_EC_SIGN, "vault-audit-sign", &aud) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_EC_SIGN, "another-ec", &other) != HSM_OK ||
        hsm_key_public_spki(s, aud, spki, sizeof(spki), &spki_len) != HSM_OK ||
        hsm_key_public_spki(s, other, other_spki, sizeof(other_spki), &other_len) != HSM_OK)
        return -1;
    hsm_session_release(s);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_teardown(&tok);
    return 0;
}

static struct vault_store *
open_store(uint64_t map)
{
    struct vault_store *s = NULL;
    char path[400], err[256];

    snprintf(path, sizeof(path), "%s/store%d", tok.dir, seq++);
    assert_int_equal(store_open(&s, path, map, err, sizeof(err)), 0);
    assert_int_equal(store_writer_start(s, tok.h, 64), 0);
    return s;
}

struct append_job {
    struct store_write w;
    const struct vault_audit *a;
    struct audit_event e;
};

static int
append_apply(struct store_write *w, struct store_txn *t)
{
    struct append_job *j = (struct append_job *)w;

    return audit_append(j->a, t, &j->e);
}

static int
checkpoint_apply(struct store_write *w, struct store_txn *t)
{
    struct append_job *j = (struct append_job *)w;

    return audit_checkpoint(j->a, t);
}

static void
noop_done(struct store_write *w, int result)
{
    (void)w;
    (void)result;
}

static int
append(struct vault_store *s, const struct vault_audit *a, unsigned i)
{
    char rid_token[32];
    struct append_job j = {{append_apply, noop_done, NULL, 0}, a,
                           {"request", "gateway", API_OP_CARD_STORE, API_STATUS_OK, i, "m-1",
                            rid_token, "new"}};

    snprintf(rid_token, sizeof(rid_token), "token-%u", i);
    return store_write_wait(s, &j.w);
}

/* Rewrites entry |seq| with |edit| applied, through a job. */
struct edit_job {
    struct store_write w;
    uint64_t seq;
    int del;
};

static void
be64(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(v >> (56 - 8 * i));
}

static int
edit_apply(struct store_write *w, struct store_txn *t)
{
    struct edit_job *j = (struct edit_job *)w;
    uint8_t key[8], val[AUDIT_ENTRY_MAX];
    MDB_val v;
    int r;

    be64(key, j->seq);
    if (j->del)
        return store_del(t, STORE_DB_AUDIT, key, 8, NULL, 0);
    if ((r = store_get(t, STORE_DB_AUDIT, key, 8, &v)) != 0)
        return r;
    memcpy(val, v.mv_data, v.mv_size);
    val[v.mv_size - 2] ^= 0x01; /* inside the detail, or the signature */
    return store_put(t, STORE_DB_AUDIT, key, 8, val, v.mv_size, 0);
}

static int
verify(struct vault_store *s, const uint8_t *key, size_t key_len, uint64_t *entries,
       uint64_t *checkpoints, uint64_t *bad)
{
    struct store_txn t;
    int r;

    assert_int_equal(store_read_begin(s, &t), 0);
    r = audit_verify(&t, key, key_len, entries, checkpoints, bad);
    store_read_end(&t);
    return r;
}

static void
test_chain_and_checkpoints(void **state)
{
    struct vault_audit a = {aud, 5};
    struct vault_store *s = open_store(16u << 20);
    struct append_job cp = {{checkpoint_apply, noop_done, NULL, 0}, &a, {0}};
    uint64_t entries = 0, checkpoints = 0, bad = 0;
    struct store_txn t;
    MDB_val k, v;
    struct audit_entry e;

    (void)state;
    for (unsigned i = 1; i <= 12; i++)
        assert_int_equal(append(s, &a, i), 0);
    /* 12 events, a checkpoint after every 5 entries: after seq 5 and 11. */
    assert_int_equal(verify(s, spki, spki_len, &entries, &checkpoints, &bad), 0);
    assert_int_equal(entries, 14);
    assert_int_equal(checkpoints, 2);
    /* The timer's checkpoint: one now, none when nothing came since. */
    assert_int_equal(store_write_wait(s, &cp.w), 0);
    assert_int_equal(store_write_wait(s, &cp.w), 0);
    assert_int_equal(verify(s, spki, spki_len, &entries, &checkpoints, &bad), 0);
    assert_int_equal(entries, 15);
    assert_int_equal(checkpoints, 3);

    /* What an entry holds. */
    assert_int_equal(store_read_begin(s, &t), 0);
    assert_int_equal(store_get(&t, STORE_DB_AUDIT, "\0\0\0\0\0\0\0\1", 8, &v), 0);
    assert_int_equal(audit_decode(&e, v.mv_data, v.mv_size), 0);
    assert_int_equal(e.type, AUDIT_EVENT);
    assert_int_equal(e.seq, 1);
    assert_string_equal(e.client, "gateway");
    assert_int_equal(e.opcode, API_OP_CARD_STORE);
    assert_string_equal(e.merchant, "m-1");
    assert_string_equal(e.token, "token-1");
    assert_string_equal(e.detail, "new");
    assert_int_equal(e.request_id, 1);
    assert_int_equal(store_last(&t, STORE_DB_AUDIT, &k, &v), 0);
    assert_int_equal(audit_decode(&e, v.mv_data, v.mv_size), 0);
    assert_int_equal(e.type, AUDIT_CHECKPOINT);
    assert_string_equal(e.key_label, "vault-audit-sign");
    store_read_end(&t);

    /* Another key's public half does not verify the checkpoints. */
    assert_int_equal(verify(s, other_spki, other_len, NULL, NULL, &bad),
                     -API_STATUS_SIGNATURE_INVALID);
    assert_int_equal(bad, 6);
    store_close(s);
}

static void
test_tampering_found(void **state)
{
    struct vault_audit a = {aud, 4};
    struct vault_store *s = open_store(16u << 20);
    struct edit_job ed = {{edit_apply, noop_done, NULL, 0}, 3, 0};
    uint64_t bad = 0;

    (void)state;
    for (unsigned i = 1; i <= 9; i++)
        assert_int_equal(append(s, &a, i), 0);
    assert_int_equal(verify(s, spki, spki_len, NULL, NULL, NULL), 0);
    /* One byte of entry 3 changed: entry 4's prev_hash no longer matches. */
    assert_int_equal(store_write_wait(s, &ed.w), 0);
    assert_int_equal(verify(s, spki, spki_len, NULL, NULL, &bad), -API_STATUS_SIGNATURE_INVALID);
    assert_int_equal(bad, 4);
    store_close(s);

    /* An entry deleted from the middle. */
    s = open_store(16u << 20);
    for (unsigned i = 1; i <= 9; i++)
        assert_int_equal(append(s, &a, i), 0);
    ed.seq = 6;
    ed.del = 1;
    assert_int_equal(store_write_wait(s, &ed.w), 0);
    assert_int_equal(verify(s, spki, spki_len, NULL, NULL, &bad), -API_STATUS_SIGNATURE_INVALID);
    assert_int_equal(bad, 6);
    store_close(s);

    /* The last checkpoint's signature altered (nothing after it to chain). */
    s = open_store(16u << 20);
    for (unsigned i = 1; i <= 4; i++)
        assert_int_equal(append(s, &a, i), 0);
    ed.seq = 5; /* the checkpoint after 4 events */
    ed.del = 0;
    assert_int_equal(verify(s, spki, spki_len, NULL, NULL, NULL), 0);
    assert_int_equal(store_write_wait(s, &ed.w), 0);
    assert_true(verify(s, spki, spki_len, NULL, NULL, &bad) != 0);
    assert_int_equal(bad, 5);
    store_close(s);
}

/* A full map: the append fails and the chain still holds. The entry fails
 * either in its own nested transaction (AUDIT_UNAVAILABLE) or when the
 * batch commits (STORE_UNAVAILABLE); tokenvaultd answers a reveal
 * AUDIT_UNAVAILABLE for both. */
static void
test_full_map(void **state)
{
    struct vault_audit a = {aud, 1000};
    struct vault_store *s = open_store(1u << 20);
    uint64_t entries = 0;
    unsigned i;
    int r = 0;

    (void)state;
    for (i = 1; i < 100000; i++)
        if ((r = append(s, &a, i)) != 0)
            break;
    assert_true(i > 100);
    assert_true(r == -API_STATUS_AUDIT_UNAVAILABLE || r == -API_STATUS_STORE_UNAVAILABLE);
    assert_int_equal(verify(s, spki, spki_len, &entries, NULL, NULL), 0);
    assert_true(entries >= i - 1);
    store_close(s);
}

static void
test_decode_refuses(void **state)
{
    uint8_t buf[AUDIT_ENTRY_MAX];
    struct audit_entry e;

    (void)state;
    memset(buf, 0, sizeof(buf));
    buf[0] = AUDIT_VERSION;
    buf[1] = 3; /* no such type */
    assert_int_equal(audit_decode(&e, buf, 64), -API_STATUS_INTERNAL);
    buf[1] = AUDIT_EVENT; /* seq 0 is never written */
    assert_int_equal(audit_decode(&e, buf, 64), -API_STATUS_INTERNAL);
    assert_int_equal(audit_decode(&e, buf, 3), -API_STATUS_INTERNAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_and_checkpoints),
        cmocka_unit_test(test_tampering_found),
        cmocka_unit_test(test_full_map),
        cmocka_unit_test(test_decode_refuses),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
