/*
 * test_module.c - loading, token choice, login, and recovery: a token that
 * loses its sessions or its library state answers HSM_ERR_UNAVAILABLE for the
 * failed call, then comes back with the same keys after a re-login, with
 * backoff while it cannot. The planned recycle of a module that keeps
 * destroyed session objects: keys work across it, it waits for lent
 * sessions, and gives up for now when one is not returned.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

static tv_token tok;

static int
setup(void **state)
{
    (void)state;
    return tv_token_setup(&tok);
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_teardown(&tok);
    return 0;
}

static int
open_with(const char *module, const char *label, const char *uri, hsm **out)
{
    hsm_config cfg = { 0 };
    hsm_pin_source *pin = NULL;
    int r;

    cfg.module_path = module;
    cfg.token_label = label;
    cfg.token_uri = uri;
    if ((r = hsm_pin_source_file(&pin, tok.pin_file)) != HSM_OK)
        return r;
    r = hsm_open(out, &cfg, pin);
    if (r == HSM_OK)
        hsm_close(*out);
    hsm_pin_source_free(pin);
    return r;
}

static void
test_open_and_info(void **state)
{
    hsm_token_info ti;
    (void)state;

    assert_int_equal(tv_token_open(&tok), HSM_OK);
    hsm_token_info_get(tok.h, &ti);
    assert_string_equal(ti.label, TV_TEST_LABEL);
    assert_string_equal(ti.manufacturer, "SoftHSM project");
    assert_int_equal(ti.cryptoki_major, 2);
    assert_int_equal(ti.generation, 1);
    /* SoftHSM 2.6 lacks OAEP-SHA256: the probe says so and picks the fallback. */
    assert_int_equal(hsm_probe_get(tok.h)->rsa_oaep_sha256, HSM_PATH_HOST_DECODE);
    assert_int_equal(hsm_probe_get(tok.h)->apple_ec_kdf, HSM_PATH_DIGEST_KEY);
    assert_int_equal(hsm_probe_get(tok.h)->has_gcm, 1);
    assert_non_null(strstr(hsm_probe_get(tok.h)->missing, "CKM_HKDF_DERIVE"));
    hsm_close(tok.h);
    tok.h = NULL;
}

static void
test_open_failures(void **state)
{
    hsm *h = NULL;
    (void)state;

    assert_int_equal(open_with("/nonexistent/libpkcs11.so", TV_TEST_LABEL, NULL, &h), HSM_ERR_MODULE);
    assert_int_equal(open_with("/lib/x86_64-linux-gnu/libc.so.6", TV_TEST_LABEL, NULL, &h),
                     HSM_ERR_MODULE);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, "no-such-token", NULL, &h), HSM_ERR_TOKEN);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL, NULL, &h), HSM_ERR_INVALID_ARG);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, TV_TEST_LABEL, "pkcs11:token=x", &h),
                     HSM_ERR_INVALID_ARG);
    /* Wrong PIN: refused as a login error, and the detail never holds the PIN. */
    assert_int_equal(tv_write_file(tok.pin_file, "wrong-pin-0000\n", 0600), 0);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, TV_TEST_LABEL, NULL, &h), HSM_ERR_LOGIN);
    assert_non_null(strstr(hsm_last_detail(), "CKR_PIN_INCORRECT"));
    assert_null(strstr(hsm_last_detail(), "wrong-pin"));
    /* A PIN file others can read is refused before the token sees it. */
    assert_int_equal(tv_write_file(tok.pin_file, TV_TEST_USER_PIN "\n", 0644), 0);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, TV_TEST_LABEL, NULL, &h), HSM_ERR_PIN_SOURCE);
    assert_int_equal(tv_write_file(tok.pin_file, TV_TEST_USER_PIN "\n", 0600), 0);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, TV_TEST_LABEL, NULL, &h), HSM_OK);
}

static void
test_token_uri(void **state)
{
    hsm *h = NULL;
    (void)state;

    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL, "pkcs11:token=" TV_TEST_LABEL, &h), HSM_OK);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL,
                               "pkcs11:token=" TV_TEST_LABEL ";manufacturer=SoftHSM%20project", &h),
                     HSM_OK);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL, "pkcs11:token=other", &h), HSM_ERR_TOKEN);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL,
                               "pkcs11:token=" TV_TEST_LABEL ";model=NoSuchModel", &h),
                     HSM_ERR_TOKEN);
    /* Malformed URIs match nothing: fail closed. */
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL, "pkcs11:token=%zz", &h), HSM_ERR_TOKEN);
    assert_int_equal(open_with(TV_SOFTHSM_MODULE, NULL, "https://example/", &h), HSM_ERR_TOKEN);
}

/* Signs a fixed message with the key; returns the HSM_ERR_ code. */
static int
sign_once(hsm *h, hsm_key *key, uint8_t mac[32])
{
    hsm_session *s = NULL;
    int r = hsm_session_acquire(h, &s);

    if (r != HSM_OK)
        return r;
    r = hsm_hmac_sign(s, key, (const uint8_t *)"recover", 7, mac);
    hsm_session_release(s);
    return r;
}

/* A token HMAC key, a KEK and a DEK unwrapped under it, the DEK's sealing
 * of "card" and the key's MAC of "recover": what must still work after the
 * module comes back. */
struct kit {
    hsm_key *fpk, *kek, *dek, *stk; /* stk: an HMAC key kept wrapped, like the vault's */
    uint8_t mac[32], stk_mac[32], iv[HSM_GCM_IV_LEN], ct[64];
    size_t ct_len;
};

static void
kit_make(hsm *h, const char *prefix, struct kit *k)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    char label[64];
    hsm_session *s = NULL;

    memset(k, 0, sizeof(*k));
    assert_int_equal(hsm_session_acquire(h, &s), HSM_OK);
    snprintf(label, sizeof(label), "%s-fpk", prefix);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_HMAC, label, &k->fpk), HSM_OK);
    snprintf(label, sizeof(label), "%s-kek-v1", prefix);
    assert_int_equal(hsm_key_generate(s, HSM_KIND_KEK, label, &k->kek), HSM_OK);
    assert_int_equal(hsm_dek_generate(s, k->kek, wrapped, kcv), HSM_OK);
    snprintf(label, sizeof(label), "%s-dek-v1", prefix);
    assert_int_equal(hsm_dek_load(s, k->kek, label, wrapped, sizeof(wrapped), kcv, &k->dek),
                     HSM_OK);
    assert_int_equal(hsm_gcm_encrypt(s, k->dek, NULL, 0, (const uint8_t *)"card", 4, k->iv, k->ct,
                                     sizeof(k->ct), &k->ct_len),
                     HSM_OK);
    assert_hsm(hsm_wrapped_generate(s, k->kek, HSM_KIND_HMAC, wrapped, kcv), HSM_OK);
    snprintf(label, sizeof(label), "%s-stk-v1", prefix);
    assert_hsm(hsm_wrapped_load(s, k->kek, HSM_KIND_HMAC, label, wrapped, sizeof(wrapped), kcv,
                                &k->stk),
               HSM_OK);
    hsm_session_release(s);
    assert_int_equal(sign_once(h, k->fpk, k->mac), HSM_OK);
    assert_int_equal(sign_once(h, k->stk, k->stk_mac), HSM_OK);
}

/* The kit's key signs as before and its DEK opens what it sealed. */
static void
kit_works(hsm *h, const struct kit *k)
{
    hsm_session *s = NULL;
    uint8_t mac[32], pt[64];
    size_t pt_len = 0;

    assert_int_equal(sign_once(h, k->fpk, mac), HSM_OK);
    assert_memory_equal(k->mac, mac, 32);
    assert_int_equal(sign_once(h, k->stk, mac), HSM_OK);
    assert_memory_equal(k->stk_mac, mac, 32);
    assert_int_equal(hsm_session_acquire(h, &s), HSM_OK);
    assert_int_equal(hsm_gcm_decrypt(s, k->dek, NULL, 0, k->iv, HSM_GCM_IV_LEN, k->ct, k->ct_len,
                                     pt, sizeof(pt), &pt_len),
                     HSM_OK);
    assert_memory_equal(pt, "card", 4);
    hsm_session_release(s);
}

static void
test_recovery_after_token_loss(void **state)
{
    hsm_session *s = NULL;
    struct kit k;
    uint8_t mac2[32], pt[64];
    size_t pt_len = 0;
    hsm_token_info ti;
    (void)state;

    assert_int_equal(tv_token_open(&tok), HSM_OK);
    kit_make(tok.h, "rec", &k);

    /* 1. The token drops every session and the login (as a reset HSM does). */
    assert_int_equal(tok.h->p11->C_CloseAllSessions(tok.h->slot), CKR_OK);
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_ERR_UNAVAILABLE);
    assert_non_null(strstr(hsm_last_detail(), "CKR_SESSION_HANDLE_INVALID"));
    /* The next call re-opens, logs in again, re-finds the key by label. */
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_OK);
    assert_memory_equal(k.mac, mac2, 32);
    hsm_token_info_get(tok.h, &ti);
    assert_int_equal(ti.generation, 2);
    /* The DEK session object died with its session: it is unwrapped again. */
    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(hsm_gcm_decrypt(s, k.dek, NULL, 0, k.iv, HSM_GCM_IV_LEN, k.ct, k.ct_len, pt,
                                     sizeof(pt), &pt_len),
                     HSM_OK);
    assert_memory_equal(pt, "card", 4);
    hsm_session_release(s);

    /* 2. Lost while the PIN cannot be read: unavailable, with backoff. */
    assert_int_equal(chmod(tok.pin_file, 0644), 0);
    assert_int_equal(tok.h->p11->C_CloseAllSessions(tok.h->slot), CKR_OK);
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_ERR_UNAVAILABLE);
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_ERR_UNAVAILABLE); /* attempt fails */
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_ERR_UNAVAILABLE); /* within backoff */
    assert_non_null(strstr(hsm_last_detail(), "waiting to retry"));
    assert_int_equal(chmod(tok.pin_file, 0600), 0);
    usleep(300 * 1000); /* past the fixture's 200 ms maximum backoff */
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_OK);
    assert_memory_equal(k.mac, mac2, 32);

    /* 3. The library itself was finalized under us: re-initialized. */
    assert_int_equal(tok.h->p11->C_Finalize(NULL), CKR_OK);
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_ERR_UNAVAILABLE);
    kit_works(tok.h, &k);
    hsm_close(tok.h);
    tok.h = NULL;
}

/* One transient object made and destroyed in its own session: what a wallet
 * packet's content key costs the module. */
static void
one_temp_object(hsm *h)
{
    static const uint8_t key[32] = { 1, 2, 3 };
    hsm_session *s = NULL;
    hsm_obj o = HSM_OBJ_NONE;

    assert_int_equal(hsm_session_acquire(h, &s), HSM_OK);
    assert_int_equal(hsm_secret_import(s, HSM_USE_AES_GCM_DECRYPT, key, sizeof(key), &o), HSM_OK);
    hsm_obj_destroy(s, o);
    hsm_session_release(s);
}

static void
test_recycle_after_objects(void **state)
{
    hsm_config cfg;
    hsm_session *s = NULL, *s2 = NULL;
    struct kit k;
    uint8_t mac2[32], pt[64];
    size_t pt_len = 0;
    hsm_token_info ti;
    (void)state;

    /* What the module decides alone: SoftHSM 2.6 keeps destroyed objects. */
    tv_token_config(&tok, &cfg);
    cfg.recycle_after_objects = HSM_RECYCLE_AUTO;
    assert_int_equal(hsm_pin_source_file(&tok.pin, tok.pin_file), HSM_OK);
    assert_int_equal(hsm_open(&tok.h, &cfg, tok.pin), HSM_OK);
    hsm_token_info_get(tok.h, &ti);
    assert_int_equal(ti.recycle_after_objects,
                     strstr(ti.manufacturer, "SoftHSM") != NULL ? HSM_RECYCLE_SOFTHSM_OBJECTS : 0);
    hsm_close(tok.h);

    /* Every 8 transient objects. */
    cfg.recycle_after_objects = 8;
    assert_int_equal(hsm_open(&tok.h, &cfg, tok.pin), HSM_OK);
    kit_make(tok.h, "rcy", &k);

    for (int i = 0; i < 20; i++)
        one_temp_object(tok.h);
    hsm_token_info_get(tok.h, &ti);
    /* The 20, and the two keys the kit's DEK and STK were generated as
     * before they were wrapped. */
    assert_int_equal(ti.temp_objects_destroyed, 22);
    /* Due after the 8th and the 16th: each recycled at the next acquire. */
    assert_int_equal(ti.recycles, 2);
    assert_int_equal(ti.generation, 3);
    /* The token key is found again, the DEK and the STK unwrapped again. */
    kit_works(tok.h, &k);
    assert_int_equal(hsm_session_acquire(tok.h, &s), HSM_OK);

    /* A session held while its thread asks for another: the recycle waits
     * HSM_RECYCLE_DRAIN_MS for it, gives up, and lends the second one. */
    for (int i = 0; i < 8; i++) {
        static const uint8_t key[16] = { 9 };
        hsm_obj o = HSM_OBJ_NONE;

        assert_int_equal(hsm_secret_import(s, HSM_USE_AES_GCM_DECRYPT, key, sizeof(key), &o),
                         HSM_OK);
        hsm_obj_destroy(s, o);
    }
    assert_int_equal(hsm_session_acquire(tok.h, &s2), HSM_OK);
    hsm_token_info_get(tok.h, &ti);
    assert_int_equal(ti.recycles, 2);
    assert_int_equal(hsm_hmac_sign(s2, k.fpk, (const uint8_t *)"recover", 7, mac2), HSM_OK);
    assert_memory_equal(k.mac, mac2, 32);
    assert_int_equal(hsm_gcm_decrypt(s, k.dek, NULL, 0, k.iv, HSM_GCM_IV_LEN, k.ct, k.ct_len, pt,
                                     sizeof(pt), &pt_len),
                     HSM_OK);
    hsm_session_release(s2);
    hsm_session_release(s);
    /* Due again a quarter of the count later; the next acquire, with
     * nothing held, recycles. */
    for (int i = 0; i < 2; i++)
        one_temp_object(tok.h);
    hsm_token_info_get(tok.h, &ti);
    assert_int_equal(ti.recycles, 2);
    assert_int_equal(sign_once(tok.h, k.fpk, mac2), HSM_OK);
    assert_memory_equal(k.mac, mac2, 32);
    hsm_token_info_get(tok.h, &ti);
    assert_int_equal(ti.recycles, 3);
    assert_int_equal(ti.generation, 4);
    hsm_close(tok.h);
    tok.h = NULL;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_and_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_after_token_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recycle_after_objects, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
