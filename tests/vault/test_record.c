/*
 * test_record.c - card records: the encoding round trip and every way a
 * malformed record is refused; sealing in SoftHSM and every way a moved or
 * altered record fails to open.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "tests/support/token.h"
#include "vault/record.h"

static tv_token tok;
static hsm_session *s;
static hsm_key *dek1, *dek2;

#define TOKEN_A "tokenaaaaaaaaaaaaaaaaaaaaa"
#define TOKEN_B "tokenbbbbbbbbbbbbbbbbbbbbb"

static int
setup(void **state)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    hsm_key *kek = NULL;

    (void)state;
    if (tv_token_setup(&tok) != 0 || tv_token_open(&tok) != HSM_OK ||
        hsm_session_acquire(tok.h, &s) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_KEK, "vault-kek-v1", &kek) != HSM_OK)
        return -1;
    if (hsm_dek_generate(s, kek, wrapped, kcv) != HSM_OK ||
        hsm_dek_load(s, kek, "vault-dek-v1", wrapped, sizeof(wrapped), kcv, &dek1) != HSM_OK ||
        hsm_dek_generate(s, kek, wrapped, kcv) != HSM_OK ||
        hsm_dek_load(s, kek, "vault-dek-v2", wrapped, sizeof(wrapped), kcv, &dek2) != HSM_OK)
        return -1;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    hsm_session_release(s);
    tv_token_teardown(&tok);
    return 0;
}

static void
sample(struct card_record *r, struct card_secret *sec)
{
    memset(r, 0, sizeof(*r));
    r->kind = API_CARD_KIND_CARD;
    r->flags = RECORD_F_ACTIVE | RECORD_F_CONSENT;
    r->verification = API_VERIFICATION_THREE_DS;
    r->brand = API_BRAND_VISA;
    r->exp_month = 9;
    r->exp_year = 2031;
    r->created_at = 1795348800;
    strcpy(r->bin, "41111111");
    strcpy(r->last4, "1111");
    strcpy(r->merchant, "m-1");
    strcpy(r->initial_txn_id, "txn-1");
    memset(r->fingerprint, 0xab, sizeof(r->fingerprint));
    memset(sec, 0, sizeof(*sec));
    strcpy(sec->pan, "4111111111111111");
    strcpy(sec->holder, "Grace Hopper");
    strcpy(sec->email, "grace@example.com");
}

static size_t
encode(const struct card_record *r, uint8_t *out)
{
    struct api_writer w;
    size_t n;

    api_writer_init(&w, RECORD_MAX);
    assert_int_equal(record_encode(&w, r), 0);
    n = api_writer_len(&w);
    memcpy(out, api_writer_data(&w), n);
    api_writer_cleanup(&w);
    return n;
}

static void
test_round_trip(void **state)
{
    struct card_record r, back;
    struct card_secret sec;
    uint8_t buf[RECORD_MAX];
    size_t n;

    (void)state;
    sample(&r, &sec);
    assert_int_equal(record_seal(s, dek1, 1, TOKEN_A, &r, &sec), 0);
    n = encode(&r, buf);
    assert_int_equal(record_decode(&back, buf, n), 0);
    assert_memory_equal(&back, &r, sizeof(r));
    /* The secrets are not in the stored bytes. */
    assert_null(memmem(buf, n, sec.pan, strlen(sec.pan)));
    assert_null(memmem(buf, n, sec.holder, strlen(sec.holder)));
    assert_null(memmem(buf, n, sec.email, strlen(sec.email)));
}

static void
test_max_record_fits(void **state)
{
    struct card_record r;
    struct card_secret sec;
    uint8_t buf[RECORD_MAX];

    (void)state;
    sample(&r, &sec);
    memset(r.merchant, 'm', API_ID_MAX);
    r.merchant[API_ID_MAX] = '\0';
    memset(r.initial_txn_id, 't', API_ID_MAX);
    r.initial_txn_id[API_ID_MAX] = '\0';
    memset(sec.pan, '4', API_PAN_MAX);
    sec.pan[API_PAN_MAX] = '\0';
    memset(sec.holder, 'h', API_HOLDER_MAX);
    sec.holder[API_HOLDER_MAX] = '\0';
    memset(sec.email, 'e', API_EMAIL_MAX);
    sec.email[API_EMAIL_MAX] = '\0';
    memset(buf, 0, sizeof(buf));
    {
        char token[API_ID_MAX + 1];

        memset(token, 'k', API_ID_MAX);
        token[API_ID_MAX] = '\0';
        assert_int_equal(record_seal(s, dek1, 1, token, &r, &sec), 0);
    }
    assert_int_equal(r.ct_len, 3 + API_PAN_MAX + API_HOLDER_MAX + API_EMAIL_MAX + HSM_GCM_TAG_LEN);
    assert_true(encode(&r, buf) <= RECORD_MAX);
}

static void
test_decode_refuses(void **state)
{
    struct card_record r, back;
    struct card_secret sec;
    uint8_t buf[RECORD_MAX], bad[RECORD_MAX + 1];
    size_t n;

    (void)state;
    sample(&r, &sec);
    assert_int_equal(record_seal(s, dek1, 1, TOKEN_A, &r, &sec), 0);
    n = encode(&r, buf);
    /* Every truncation. */
    for (size_t len = 0; len < n; len++)
        assert_int_equal(record_decode(&back, buf, len), -API_STATUS_INTERNAL);
    /* A trailing byte. */
    memcpy(bad, buf, n);
    bad[n] = 0;
    assert_int_equal(record_decode(&back, bad, n + 1), -API_STATUS_INTERNAL);
    /* Version, kind, flags, verification, brand, month out of range. */
    {
        static const struct {
            size_t off;
            uint8_t v;
        } pokes[] = {{0, 2}, {1, 0}, {1, 3}, {2, 0x80}, {3, 0}, {3, 6}, {4, 0}, {4, 11}, {5, 0}, {5, 13}};

        for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
            memcpy(bad, buf, n);
            bad[pokes[i].off] = pokes[i].v;
            assert_int_equal(record_decode(&back, bad, n), -API_STATUS_INTERNAL);
        }
    }
    /* A letter in the BIN; a NUL inside the merchant id. The BIN starts after
     * the 24 fixed bytes and its length byte. */
    memcpy(bad, buf, n);
    bad[24 + 1] = 'x';
    assert_int_equal(record_decode(&back, bad, n), -API_STATUS_INTERNAL);
    memcpy(bad, buf, n);
    bad[24 + 1 + 8 + 1 + 4 + 1 + 1] = 0; /* second byte of "m-1" */
    assert_int_equal(record_decode(&back, bad, n), -API_STATUS_INTERNAL);
    /* The struct is left zeroed on failure. */
    {
        struct card_record zero;

        memset(&zero, 0, sizeof(zero));
        assert_memory_equal(&back, &zero, sizeof(zero));
    }
}

/* What must not open: another token, merchant or kind; an altered byte of
 * the ciphertext, tag or IV; another DEK version, under either key. */
static void
test_moved_or_altered_fails(void **state)
{
    struct card_record a, b, x;
    struct card_secret sec, out, zero;

    (void)state;
    memset(&zero, 0, sizeof(zero));
    sample(&a, &sec);
    assert_int_equal(record_seal(s, dek1, 1, TOKEN_A, &a, &sec), 0);
    assert_int_equal(record_open(s, dek1, TOKEN_A, &a, &out), 0);
    assert_string_equal(out.pan, sec.pan);
    assert_string_equal(out.holder, sec.holder);
    assert_string_equal(out.email, sec.email);

    /* Ciphertext of A placed in B's record. */
    sample(&b, &sec);
    strcpy(sec.pan, "5555555555554444");
    assert_int_equal(record_seal(s, dek1, 1, TOKEN_B, &b, &sec), 0);
    x = b;
    memcpy(x.iv, a.iv, sizeof(x.iv));
    memcpy(x.ct, a.ct, a.ct_len);
    x.ct_len = a.ct_len;
    assert_int_equal(record_open(s, dek1, TOKEN_B, &x, &out), -API_STATUS_INTERNAL);
    assert_memory_equal(&out, &zero, sizeof(out));
    /* A's record under another token name. */
    assert_int_equal(record_open(s, dek1, TOKEN_B, &a, &out), -API_STATUS_INTERNAL);
    /* Another merchant, another kind. */
    x = a;
    strcpy(x.merchant, "m-2");
    assert_int_equal(record_open(s, dek1, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    x = a;
    x.kind = API_CARD_KIND_DPAN;
    assert_int_equal(record_open(s, dek1, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    /* A flipped bit in the ciphertext, the tag, the IV. */
    x = a;
    x.ct[0] ^= 0x01;
    assert_int_equal(record_open(s, dek1, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    x = a;
    x.ct[x.ct_len - 1] ^= 0x80;
    assert_int_equal(record_open(s, dek1, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    x = a;
    x.iv[5] ^= 0x10;
    assert_int_equal(record_open(s, dek1, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    /* The DEK version changed: neither key opens it. */
    x = a;
    x.dek_version = 2;
    assert_int_equal(record_open(s, dek1, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    assert_int_equal(record_open(s, dek2, TOKEN_A, &x, &out), -API_STATUS_INTERNAL);
    assert_int_equal(record_open(s, dek2, TOKEN_A, &a, &out), -API_STATUS_INTERNAL);
    assert_memory_equal(&out, &zero, sizeof(out));
    /* The untouched record still opens. */
    assert_int_equal(record_open(s, dek1, TOKEN_A, &a, &out), 0);
    record_secret_wipe(&out);
}

/* Each seal draws a fresh IV: the same secrets never give the same bytes. */
static void
test_fresh_iv(void **state)
{
    struct card_record a, b;
    struct card_secret sec;

    (void)state;
    sample(&a, &sec);
    b = a;
    assert_int_equal(record_seal(s, dek1, 1, TOKEN_A, &a, &sec), 0);
    assert_int_equal(record_seal(s, dek1, 1, TOKEN_A, &b, &sec), 0);
    assert_memory_not_equal(a.iv, b.iv, sizeof(a.iv));
    assert_memory_not_equal(a.ct, b.ct, a.ct_len);
}

/* What decode would refuse is not written either: a record that could not
 * be read back (a header value out of range) is an internal error. */
static void
test_encode_refuses(void **state)
{
    struct card_record r;
    struct card_secret sec;
    struct api_writer w;
    static const struct {
        size_t off, size;
        uint32_t bad;
    } cases[] = {
        { offsetof(struct card_record, kind), 1, 0 },
        { offsetof(struct card_record, kind), 1, 3 },
        { offsetof(struct card_record, flags), 1, 0x80 },
        { offsetof(struct card_record, verification), 1, 0 },
        { offsetof(struct card_record, brand), 1, 0 },
        { offsetof(struct card_record, exp_month), 1, 13 },
        { offsetof(struct card_record, exp_year), 2, 1999 },
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sample(&r, &sec);
        assert_int_equal(record_seal(s, dek1, 1, TOKEN_A, &r, &sec), 0);
        if (cases[i].size == 1)
            *((uint8_t *)&r + cases[i].off) = (uint8_t)cases[i].bad;
        else
            *(uint16_t *)((uint8_t *)&r + cases[i].off) = (uint16_t)cases[i].bad;
        api_writer_init(&w, RECORD_MAX);
        assert_int_equal(record_encode(&w, &r), -API_STATUS_INTERNAL);
        api_writer_cleanup(&w);
    }
    record_secret_wipe(&sec);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_max_record_fits),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_moved_or_altered_fails),
        cmocka_unit_test(test_fresh_iv),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
