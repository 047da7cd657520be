/*
 * test_ceremony_common.c - the key review of `tokenvault-ceremony keys`
 * (ceremony_key_unsafe): a key as the vault generates it passes, and each
 * attribute an officer must not accept is counted on its own: a readable
 * value, extractable under any key, ever readable (but an imported wallet
 * key), copyable, modifiable, and a usage the key's kind must not have or
 * lacks. The attributes come from hsm_key_info as the token reports them.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "tools/ceremony/ceremony.h"

/* A key of |kind| with the attributes hsm_key_generate gives it. */
static hsm_key_info
generated(hsm_key_kind kind)
{
    hsm_key_info i;
    bool pair = kind != HSM_KIND_KEK && kind != HSM_KIND_HMAC;

    memset(&i, 0, sizeof(i));
    snprintf(i.label, sizeof(i.label), "k-%s", hsm_key_kind_name(kind));
    i.kind = kind;
    i.token = i.private_ = i.sensitive = i.extractable = i.wrap_with_trusted = 1;
    i.always_sensitive = i.local = 1;
    i.never_extractable = i.modifiable = i.copyable = 0;
    /* Attributes a private key does not have read as -1. */
    i.encrypt = i.verify = i.wrap = pair ? -1 : 0;
    i.decrypt = i.sign = i.unwrap = i.derive = 0;
    switch (kind) {
    case HSM_KIND_KEK: i.wrap = i.unwrap = 1; break;
    case HSM_KIND_HMAC: i.sign = i.verify = 1; break;
    case HSM_KIND_EC_SIGN: i.sign = 1; break;
    case HSM_KIND_EC_DERIVE: i.derive = 1; break;
    case HSM_KIND_EC_DERIVE_SIGN: i.derive = i.sign = 1; break;
    case HSM_KIND_RSA_UNWRAP: i.unwrap = 1; break;
    case HSM_KIND_RSA_UNWRAP_SIGN: i.unwrap = i.sign = 1; break;
    case HSM_KIND_RSA_DECRYPT: i.unwrap = i.decrypt = 1; break;
    default: break;
    }
    return i;
}

static bool
ec(hsm_key_kind k)
{
    return k == HSM_KIND_EC_SIGN || k == HSM_KIND_EC_DERIVE || k == HSM_KIND_EC_DERIVE_SIGN;
}

static const hsm_key_kind kinds[] = {
    HSM_KIND_KEK,         HSM_KIND_HMAC,          HSM_KIND_EC_SIGN,
    HSM_KIND_EC_DERIVE,   HSM_KIND_EC_DERIVE_SIGN, HSM_KIND_RSA_UNWRAP,
    HSM_KIND_RSA_UNWRAP_SIGN, HSM_KIND_RSA_DECRYPT,
};
#define NUM_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static void
test_generated_keys_pass(void **state)
{
    (void)state;
    for (size_t k = 0; k < NUM_KINDS; k++) {
        hsm_key_info i = generated(kinds[k]);

        assert_int_equal(ceremony_key_unsafe(&i, false), 0);
    }
}

static void
test_each_storage_attribute_counts(void **state)
{
    (void)state;
    for (size_t k = 0; k < NUM_KINDS; k++) {
        hsm_key_info i;

        i = generated(kinds[k]);
        i.sensitive = 0; /* its value can be read */
        assert_int_equal(ceremony_key_unsafe(&i, false), 1);
        i = generated(kinds[k]);
        i.wrap_with_trusted = 0; /* any key may wrap it out */
        assert_int_equal(ceremony_key_unsafe(&i, false), 1);
        i.extractable = 0; /* ...unless it is not extractable at all */
        assert_int_equal(ceremony_key_unsafe(&i, false), 0);
        i = generated(kinds[k]);
        i.copyable = 1;
        assert_int_equal(ceremony_key_unsafe(&i, false), 1);
        i = generated(kinds[k]);
        i.modifiable = 1;
        assert_int_equal(ceremony_key_unsafe(&i, false), 1);
        /* Several at once: each is counted. */
        i.copyable = 1;
        i.sensitive = 0;
        assert_int_equal(ceremony_key_unsafe(&i, false), 3);
    }
}

/* Ever readable: unsafe, but for the wallet kinds wallet-import brings in
 * (made outside the HSM by nature, CKA_LOCAL false). */
static void
test_ever_readable(void **state)
{
    (void)state;
    for (size_t k = 0; k < NUM_KINDS; k++) {
        hsm_key_info i = generated(kinds[k]);
        bool importable = kinds[k] == HSM_KIND_EC_DERIVE || kinds[k] == HSM_KIND_RSA_UNWRAP ||
                          kinds[k] == HSM_KIND_RSA_DECRYPT;

        i.always_sensitive = 0;
        assert_int_equal(ceremony_key_unsafe(&i, false), 1); /* made here, then exposed */
        i.local = 0;
        assert_int_equal(ceremony_key_unsafe(&i, false), importable ? 0 : 1);
    }
}

/* Each usage flipped: a usage the kind must not have, or one it lacks. */
static void
test_each_usage_counts(void **state)
{
    unsigned bad = 0;

    (void)state;
    for (size_t k = 0; k < NUM_KINDS; k++) {
        for (size_t u = 0; u < 7; u++) {
            hsm_key_info i = generated(kinds[k]);
            int *use[7] = {&i.encrypt, &i.decrypt, &i.sign, &i.verify, &i.wrap, &i.unwrap, &i.derive};

            if (*use[u] < 0)
                continue; /* not an attribute of this object */
            if (u == 1 && ec(kinds[k]))
                continue; /* no mechanism decrypts with an EC key: not judged */
            *use[u] = !*use[u];
            if (ceremony_key_unsafe(&i, false) != 1) {
                print_error("%s: usage %zu flipped not counted once\n", hsm_key_kind_name(kinds[k]), u);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generated_keys_pass),
        cmocka_unit_test(test_each_storage_attribute_counts),
        cmocka_unit_test(test_ever_readable),
        cmocka_unit_test(test_each_usage_counts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
