/*
 * test_keys.c - key templates as the token enforces them: values unreadable,
 * keys unwrappable, each key usable only for its declared use; lookup by
 * label, ID and version; key check values against an independent computation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

static tv_token tok;
static hsm_session *s;

static int
setup(void **state)
{
    (void)state;
    return tv_token_session_setup(&tok, &s);
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_session_teardown(&tok, &s);
    return 0;
}

/* Raw PKCS#11, to look at the keys from outside the layer under test. */
static CK_RV
raw_read_value(hsm_key *k)
{
    uint8_t v[512];
    /* RSA keys keep their secret in CKA_PRIVATE_EXPONENT, the others in CKA_VALUE. */
    bool rsa = k->kind == HSM_KIND_RSA_UNWRAP || k->kind == HSM_KIND_RSA_DECRYPT;
    CK_ATTRIBUTE a = { rsa ? CKA_PRIVATE_EXPONENT : CKA_VALUE, v, sizeof(v) };
    return s->h->p11->C_GetAttributeValue(s->handle, k->handle, &a, 1);
}

static void
test_generate_every_kind(void **state)
{
    static const struct {
        hsm_key_kind kind;
        const char *label, *type;
        int encrypt, decrypt, sign, wrap, unwrap, derive;
    } want[] = {
        { HSM_KIND_KEK, "g-kek-v1", "AES-256", 0, 0, 0, 1, 1, 0 },
        { HSM_KIND_HMAC, "g-hmac", "GENERIC-SECRET-256", 0, 0, 1, 0, 0, 0 },
        { HSM_KIND_EC_SIGN, "g-ec-sign", "EC-P256", -1, 0, 1, -1, 0, 0 },
        { HSM_KIND_EC_DERIVE, "g-ec-derive", "EC-P256", -1, 0, 0, -1, 0, 1 },
        { HSM_KIND_RSA_UNWRAP, "g-rsa-unwrap", "RSA-2048", -1, 0, 0, -1, 1, 0 },
        { HSM_KIND_RSA_DECRYPT, "g-rsa-decrypt", "RSA-2048", -1, 1, 0, -1, 1, 0 },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        hsm_key *k = NULL, *again = NULL;
        hsm_key_info info;

        assert_int_equal(hsm_key_generate(s, want[i].kind, want[i].label, &k), HSM_OK);
        assert_int_equal(hsm_key_info_get(s, k, &info), HSM_OK);
        assert_string_equal(info.label, want[i].label);
        assert_int_equal(info.kind, want[i].kind);
        assert_string_equal(info.type, want[i].type);
        assert_int_equal(info.token, 1);
        assert_int_equal(info.private_, 1);
        assert_int_equal(info.sensitive, 1);
        /* Extractable only under a trusted key (the backup ceremony). */
        assert_int_equal(info.extractable, 1);
        assert_int_equal(info.wrap_with_trusted, 1);
        assert_int_equal(info.always_sensitive, 1);
        assert_int_equal(info.never_extractable, 0);
        assert_int_equal(info.modifiable, 0);
        assert_int_equal(info.copyable, 0);
        if (want[i].encrypt >= 0)
            assert_int_equal(info.encrypt, want[i].encrypt);
        assert_int_equal(info.decrypt, want[i].decrypt);
        assert_int_equal(info.sign, want[i].sign);
        if (want[i].wrap >= 0)
            assert_int_equal(info.wrap, want[i].wrap);
        assert_int_equal(info.unwrap, want[i].unwrap);
        assert_int_equal(info.derive, want[i].derive);
        /* The value cannot be read. */
        assert_int_equal(raw_read_value(k), CKR_ATTRIBUTE_SENSITIVE);
        /* Found again by label and by ID (the label bytes). */
        assert_int_equal(hsm_key_find(s, want[i].label, &again), HSM_OK);
        assert_ptr_equal(again, k);
        assert_int_equal(hsm_key_find_by_id(s, (const uint8_t *)want[i].label,
                                            strlen(want[i].label), &again),
                         HSM_OK);
        assert_ptr_equal(again, k);
        /* A label is used once. */
        assert_int_equal(hsm_key_generate(s, want[i].kind, want[i].label, &again), HSM_ERR_EXISTS);
    }
}

static void
test_usage_is_enforced_by_the_token(void **state)
{
    hsm_key *kek = NULL, *kek2 = NULL, *fpk = NULL;
    uint8_t iv[12] = { 0 }, buf[64];
    CK_GCM_PARAMS gcm = { iv, 12, 96, NULL, 0, 128 };
    CK_MECHANISM m_gcm = { CKM_AES_GCM, &gcm, sizeof(gcm) };
    CK_MECHANISM m_kwp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
    CK_MECHANISM m_hmac = { CKM_SHA256_HMAC, NULL, 0 };
    CK_ULONG n = sizeof(buf);
    (void)state;

    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "u-kek-v1", &kek), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "u-kek-v2", &kek2), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_HMAC, "u-fpk", &fpk), HSM_OK);
    /* The KEK does not encrypt data, and cannot sign. */
    assert_int_not_equal(s->h->p11->C_EncryptInit(s->handle, &m_gcm, kek->handle), CKR_OK);
    assert_int_not_equal(s->h->p11->C_SignInit(s->handle, &m_hmac, kek->handle), CKR_OK);
    /* No long-term key can be wrapped out by a user's key, not even by
     * another KEK: only a CKA_TRUSTED key, which only the SO can make. */
    assert_int_equal(s->h->p11->C_WrapKey(s->handle, &m_kwp, kek2->handle, fpk->handle, buf, &n),
                     CKR_KEY_NOT_WRAPPABLE);
    n = sizeof(buf);
    assert_int_equal(s->h->p11->C_WrapKey(s->handle, &m_kwp, kek2->handle, kek->handle, buf, &n),
                     CKR_KEY_NOT_WRAPPABLE);
    /* The HMAC key does not encrypt or wrap. */
    assert_int_not_equal(s->h->p11->C_EncryptInit(s->handle, &m_gcm, fpk->handle), CKR_OK);
    n = sizeof(buf);
    assert_int_not_equal(s->h->p11->C_WrapKey(s->handle, &m_kwp, fpk->handle, kek->handle, buf, &n),
                         CKR_OK);
    /* Attributes cannot be loosened afterwards. */
    {
        CK_BBOOL f = CK_FALSE, t = CK_TRUE;
        CK_ATTRIBUTE a = { CKA_WRAP_WITH_TRUSTED, &f, sizeof(f) };
        CK_ATTRIBUTE b = { CKA_SENSITIVE, &f, sizeof(f) };
        CK_ATTRIBUTE c = { CKA_ENCRYPT, &t, sizeof(t) };
        assert_int_not_equal(s->h->p11->C_SetAttributeValue(s->handle, fpk->handle, &b, 1), CKR_OK);
        assert_int_not_equal(s->h->p11->C_SetAttributeValue(s->handle, fpk->handle, &c, 1), CKR_OK);
        assert_int_not_equal(s->h->p11->C_SetAttributeValue(s->handle, fpk->handle, &a, 1), CKR_OK);
    }
}

static void
test_versions_and_lookup(void **state)
{
    hsm_key *k = NULL;
    unsigned v = 0;
    char label[HSM_LABEL_MAX + 1];
    (void)state;

    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(hsm_key_versioned_label(label, sizeof(label), "ver-kek", i == 3 ? 10 : i),
                         HSM_OK);
        assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, label, &k), HSM_OK);
    }
    /* Decoys that must not count as versions. */
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "ver-kek-v02", &k), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "ver-kek-v99x", &k), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "ver-kekx-v50", &k), HSM_OK);
    assert_int_equal(hsm_key_find_latest(s, "ver-kek", &k, &v), HSM_OK);
    assert_int_equal(v, 10);
    assert_string_equal(hsm_key_label(k), "ver-kek-v10");
    assert_int_equal(hsm_key_find_latest(s, "no-such", &k, &v), HSM_ERR_KEY_NOT_FOUND);
    assert_int_equal(hsm_key_find(s, "no-such-key", &k), HSM_ERR_KEY_NOT_FOUND);
    assert_int_equal(hsm_key_find(s, "bad label", &k), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_key_find(s, "", &k), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "x\n-v1", &k), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_DEK, "a-dek", &k), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_key_versioned_label(label, sizeof(label), "ver-kek", 0), HSM_ERR_INVALID_ARG);
    assert_int_equal(hsm_key_versioned_label(label, sizeof(label), "ver-kek", 1000000),
                     HSM_ERR_INVALID_ARG);
    {
        char longlabel[HSM_LABEL_MAX + 2];
        memset(longlabel, 'a', sizeof(longlabel) - 1);
        longlabel[sizeof(longlabel) - 1] = '\0';
        assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, longlabel, &k), HSM_ERR_INVALID_ARG);
    }
}

/* KCVs against an independent computation: keys of known value are created
 * with raw PKCS#11 and the KCV the layer reports is compared with OpenSSL's
 * AES-ECB of a zero block, and with SHA-1 of the value for a generic secret. */
static void
test_kcv_known_answer(void **state)
{
    static const CK_OBJECT_CLASS secret = CKO_SECRET_KEY;
    static const CK_KEY_TYPE aes = CKK_AES, generic = CKK_GENERIC_SECRET;
    CK_BBOOL t = CK_TRUE;
    uint8_t value[32], zero[16] = { 0 }, ecb[32], sha1[20];
    int ecb_len = 0;
    CK_OBJECT_HANDLE o;
    hsm_key *k = NULL;
    hsm_key_info info;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    (void)state;

    for (size_t i = 0; i < sizeof(value); i++)
        value[i] = (uint8_t)(0xa0 + i);
    CK_ATTRIBUTE ta[] = { { CKA_CLASS, (void *)&secret, sizeof(secret) },
                          { CKA_KEY_TYPE, (void *)&aes, sizeof(aes) },
                          { CKA_VALUE, value, 32 }, { CKA_TOKEN, &t, 1 }, { CKA_WRAP, &t, 1 },
                          { CKA_LABEL, "kcv-aes", 7 } };
    CK_ATTRIBUTE tg[] = { { CKA_CLASS, (void *)&secret, sizeof(secret) },
                          { CKA_KEY_TYPE, (void *)&generic, sizeof(generic) },
                          { CKA_VALUE, value, 32 }, { CKA_TOKEN, &t, 1 }, { CKA_SIGN, &t, 1 },
                          { CKA_LABEL, "kcv-hmac", 8 } };
    assert_int_equal(s->h->p11->C_CreateObject(s->handle, ta, 6, &o), CKR_OK);
    assert_int_equal(s->h->p11->C_CreateObject(s->handle, tg, 6, &o), CKR_OK);

    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_ecb(), NULL, value, NULL), 1);
    EVP_CIPHER_CTX_set_padding(c, 0);
    assert_int_equal(EVP_EncryptUpdate(c, ecb, &ecb_len, zero, 16), 1);
    assert_int_equal(hsm_key_find(s, "kcv-aes", &k), HSM_OK);
    assert_int_equal(hsm_key_info_get(s, k, &info), HSM_OK);
    assert_string_equal(info.kcv_method, "AES-ECB(0^128)");
    assert_memory_equal(info.kcv, ecb, 3);

    assert_int_equal(EVP_Digest(value, 32, sha1, NULL, EVP_sha1(), NULL), 1);
    assert_int_equal(hsm_key_find(s, "kcv-hmac", &k), HSM_OK);
    assert_int_equal(hsm_key_info_get(s, k, &info), HSM_OK);
    assert_string_equal(info.kcv_method, "SHA-1(value)");
    assert_memory_equal(info.kcv, sha1, 3);
    EVP_CIPHER_CTX_free(c);
}

struct seen {
    char labels[64][HSM_LABEL_MAX + 1];
    size_t n;
};

static int
collect_tail(void *ctx, hsm_key *key)
{
    struct seen *sn = ctx;
    if (sn->n < 64)
        snprintf(sn->labels[sn->n++], HSM_LABEL_MAX + 1, "%s", hsm_key_label(key));
    return 0;
}

static void
test_list_sorted(void **state)
{
    struct seen sn = { .n = 0 };
    hsm_key *k = NULL;
    size_t first = 0;
    (void)state;

    /* Labels made by this test sort after every other test's ("zz-"). */
    assert_int_equal(hsm_key_generate(s, HSM_KIND_HMAC, "zz-b", &k), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_EC_SIGN, "zz-c", &k), HSM_OK);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, "zz-a", &k), HSM_OK);
    sn.n = 0;
    assert_int_equal(hsm_key_list(s, collect_tail, &sn), HSM_OK);
    assert_true(sn.n >= 3);
    first = sn.n - 3;
    assert_string_equal(sn.labels[first], "zz-a");
    assert_string_equal(sn.labels[first + 1], "zz-b");
    assert_string_equal(sn.labels[first + 2], "zz-c");
    for (size_t i = 1; i < sn.n; i++)
        assert_true(strcmp(sn.labels[i - 1], sn.labels[i]) < 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_every_kind),
        cmocka_unit_test(test_usage_is_enforced_by_the_token),
        cmocka_unit_test(test_versions_and_lookup),
        cmocka_unit_test(test_kcv_known_answer),
        cmocka_unit_test(test_list_sorted),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
