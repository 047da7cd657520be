/*
 * test_backup.c - key backup and restore in SoftHSM: a transport key only
 * the SO can make trusted, every kind of long-term key wrapped under it and
 * unwrapped again with the attributes of its kind, the same key check values
 * and the same behaviour; and the refusals: a wrong SO PIN, a user's key
 * that is not trusted, an altered blob, a label already taken.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

static tv_token tok;
static hsm_session *s;
static hsm_pin_source *so_pin, *bad_so_pin;
static const uint8_t tkey[HSM_TRANSPORT_KEY_LEN] = "0123456789abcdef0123456789abcdef";

static int
setup(void **state)
{
    char path[400];

    (void)state;
    if (tv_token_setup(&tok) != 0 || tv_token_open(&tok) != HSM_OK ||
        hsm_session_acquire(tok.h, &s) != HSM_OK)
        return -1;
    snprintf(path, sizeof(path), "%s/so-pin", tok.dir);
    if (tv_write_file(path, TV_TEST_SO_PIN "\n", 0600) != 0 ||
        hsm_pin_source_file(&so_pin, path) != HSM_OK)
        return -1;
    snprintf(path, sizeof(path), "%s/bad-so-pin", tok.dir);
    if (tv_write_file(path, "not-the-so-pin\n", 0600) != 0 ||
        hsm_pin_source_file(&bad_so_pin, path) != HSM_OK)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    hsm_session_release(s);
    tv_token_teardown(&tok);
    hsm_pin_source_free(so_pin);
    hsm_pin_source_free(bad_so_pin);
    return 0;
}

static void
assert_same_key(hsm_key *a, hsm_key *b)
{
    hsm_key_info ia, ib;
    uint8_t ka[HSM_KCV_LEN], kb[HSM_KCV_LEN];

    assert_int_equal(hsm_key_info_get(s, a, &ia), HSM_OK);
    assert_int_equal(hsm_key_info_get(s, b, &ib), HSM_OK);
    assert_int_equal(ia.kind, ib.kind);
    assert_string_equal(ia.type, ib.type);
    assert_int_equal(ib.sensitive, 1);
    assert_int_equal(ib.extractable, 1);
    assert_int_equal(ib.wrap_with_trusted, 1);
    assert_int_equal(ib.copyable, 0);
    assert_int_equal(ia.encrypt, ib.encrypt);
    assert_int_equal(ia.decrypt, ib.decrypt);
    assert_int_equal(ia.sign, ib.sign);
    assert_int_equal(ia.wrap, ib.wrap);
    assert_int_equal(ia.unwrap, ib.unwrap);
    assert_int_equal(ia.derive, ib.derive);
    if (ia.kcv_method[0] == 'S' && strcmp(ia.kcv_method, ib.kcv_method) == 0)
        assert_memory_equal(ia.kcv, ib.kcv, HSM_KCV_LEN); /* SHA-256(SPKI) of pairs */
    if (a->klass == CKO_SECRET_KEY) {
        assert_int_equal(hsm_key_digest_kcv(s, a, ka), HSM_OK);
        assert_int_equal(hsm_key_digest_kcv(s, b, kb), HSM_OK);
        assert_memory_equal(ka, kb, HSM_KCV_LEN);
    }
}

static void
test_clone_every_kind(void **state)
{
    static const hsm_key_kind kinds[] = {
        HSM_KIND_KEK, HSM_KIND_HMAC, HSM_KIND_EC_SIGN, HSM_KIND_EC_DERIVE,
        HSM_KIND_RSA_UNWRAP, HSM_KIND_RSA_DECRYPT,
        /* The wallet kinds that sign their own CSR: Apple Pay, Samsung Pay. */
        HSM_KIND_EC_DERIVE_SIGN, HSM_KIND_RSA_UNWRAP_SIGN,
    };
    enum { NUM_KINDS = sizeof(kinds) / sizeof(kinds[0]) };
    hsm_key *orig[NUM_KINDS], *copy = NULL;
    uint8_t wrapped[HSM_BACKUP_WRAPPED_MAX], spki[HSM_SPKI_MAX];
    size_t wl = 0, sl = 0;
    hsm_obj tw = HSM_OBJ_NONE, tu = HSM_OBJ_NONE;
    char label[HSM_LABEL_MAX + 1];

    (void)state;
    for (size_t i = 0; i < NUM_KINDS; i++) {
        snprintf(label, sizeof(label), "b-%s", hsm_key_kind_name(kinds[i]));
        assert_int_equal(hsm_key_generate(s, kinds[i], label, &orig[i]), HSM_OK);
    }
    assert_int_equal(hsm_transport_key_trusted(s, so_pin, tkey, &tw), HSM_OK);
    assert_int_equal(hsm_transport_key_import(s, tkey, &tu), HSM_OK);
    for (size_t i = 0; i < NUM_KINDS; i++) {
        assert_int_equal(hsm_key_backup_wrap(s, tw, orig[i], wrapped, sizeof(wrapped), &wl), HSM_OK);
        sl = 0;
        if (orig[i]->klass == CKO_PRIVATE_KEY)
            assert_int_equal(hsm_key_public_spki(s, orig[i], spki, sizeof(spki), &sl), HSM_OK);
        snprintf(label, sizeof(label), "copy-%s", hsm_key_kind_name(kinds[i]));
        assert_int_equal(hsm_key_restore(s, tu, kinds[i], label, wrapped, wl, sl ? spki : NULL, sl,
                                         &copy),
                         HSM_OK);
        assert_same_key(orig[i], copy);
        /* A restored wallet key signs its CSR, which hsm_csr_make checks
         * against the restored public half: the private half is the
         * original's. */
        if (kinds[i] == HSM_KIND_EC_DERIVE_SIGN || kinds[i] == HSM_KIND_RSA_UNWRAP_SIGN) {
            uint8_t csr[HSM_CSR_MAX];
            size_t csr_len = 0;

            assert_hsm(hsm_csr_make(s, copy, "clone", csr, sizeof(csr), &csr_len), HSM_OK);
        }
        /* The label is used once. */
        assert_int_equal(hsm_key_restore(s, tu, kinds[i], label, wrapped, wl, sl ? spki : NULL, sl,
                                         &copy),
                         HSM_ERR_EXISTS);
        /* An altered blob does not unwrap. */
        wrapped[wl / 2] ^= 0x01;
        snprintf(label, sizeof(label), "bad-%s", hsm_key_kind_name(kinds[i]));
        assert_int_equal(hsm_key_restore(s, tu, kinds[i], label, wrapped, wl, sl ? spki : NULL, sl,
                                         &copy),
                         HSM_ERR_VERIFY);
    }
    /* A restored key works: the audit-style key signs, the original's
     * public half verifies... and a cloned HMAC key gives the same MAC. */
    {
        uint8_t m1[HSM_HMAC_SHA256_LEN], m2[HSM_HMAC_SHA256_LEN];
        hsm_key *h2 = NULL;

        assert_int_equal(hsm_key_find(s, "copy-hmac", &h2), HSM_OK);
        assert_int_equal(hsm_hmac_sign(s, orig[1], (const uint8_t *)"4111", 4, m1), HSM_OK);
        assert_int_equal(hsm_hmac_sign(s, h2, (const uint8_t *)"4111", 4, m2), HSM_OK);
        assert_memory_equal(m1, m2, sizeof(m1));
    }
    hsm_obj_destroy(s, tw);
    hsm_obj_destroy(s, tu);
}

static void
test_refusals(void **state)
{
    hsm_obj t = HSM_OBJ_NONE;
    hsm_key *k = NULL, *again = NULL;
    uint8_t wrapped[HSM_BACKUP_WRAPPED_MAX];
    size_t wl = 0;

    (void)state;
    assert_int_equal(hsm_key_generate(s, HSM_KIND_HMAC, "r-hmac", &k), HSM_OK);
    /* A wrong SO PIN: refused, and the user is logged in again after. */
    assert_int_equal(hsm_transport_key_trusted(s, bad_so_pin, tkey, &t), HSM_ERR_LOGIN);
    assert_int_equal(hsm_key_find(s, "r-hmac", &again), HSM_OK);
    assert_int_equal(hsm_hmac_sign(s, again, (const uint8_t *)"x", 1, wrapped), HSM_OK);
    /* The user's own transport key (not trusted) cannot wrap a vault key. */
    assert_int_equal(hsm_transport_key_import(s, tkey, &t), HSM_OK);
    assert_int_not_equal(hsm_key_backup_wrap(s, t, k, wrapped, sizeof(wrapped), &wl), HSM_OK);
    hsm_obj_destroy(s, t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clone_every_kind),
        cmocka_unit_test(test_refusals),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
