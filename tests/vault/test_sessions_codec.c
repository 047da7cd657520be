/*
 * test_sessions_codec - the records of vault/ops/sessions.h on their own:
 * a sale session and a mapping encode within their limits and decode back;
 * every truncation, trailing byte and out-of-range field is refused; the
 * signature's input is the documented, length-prefixed layout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vault/ops/sessions.h"

static void
longest_session(struct sale_session *s)
{
    memset(s, 0, sizeof(*s));
    s->state = OPS_SESSION_CONSUMED;
    s->key_version = UINT32_MAX;
    memset(s->merchant, 'M', API_ID_MAX);
    memset(s->access_token_hash, 0xAA, sizeof(s->access_token_hash));
    s->amount = API_AMOUNT_MAX;
    memcpy(s->currency, "EUR", 3);
    memset(s->device_hash, 0xDD, sizeof(s->device_hash));
    s->created_at_ms = 1767225600000ull;
    s->expires_at = 1767225600ull + API_LIFETIME_MAX;
}

static size_t
encode_session(const struct sale_session *s, uint8_t *out, size_t cap)
{
    struct api_writer w;
    size_t n;

    api_writer_init(&w, OPS_SESSION_MAX);
    assert_int_equal(ops_session_encode(&w, s), 0);
    n = api_writer_len(&w);
    assert_true(n <= cap);
    memcpy(out, api_writer_data(&w), n);
    api_writer_cleanup(&w);
    return n;
}

/* The longest session fits OPS_SESSION_MAX and comes back unchanged. */
static void
test_session_round_trip(void **state)
{
    struct sale_session s, back;
    uint8_t buf[OPS_SESSION_MAX];
    size_t n;

    (void)state;
    longest_session(&s);
    n = encode_session(&s, buf, sizeof(buf));
    assert_true(n <= OPS_SESSION_MAX);
    assert_int_equal(ops_session_decode(&back, buf, n), 0);
    assert_memory_equal(&back, &s, sizeof(s));
    /* Every shorter prefix, and one trailing byte, is refused (and zeroed). */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ops_session_decode(&back, buf, i), -API_STATUS_INTERNAL);
        assert_int_equal(back.state, 0);
    }
    buf[n] = 0;
    assert_int_equal(ops_session_decode(&back, buf, n + 1), -API_STATUS_INTERNAL);

    /* A session of key version 0 (vault-session-mac, from before the
     * session tag keys) is layout 1, four bytes shorter, and comes back. */
    s.key_version = 0;
    assert_int_equal(encode_session(&s, buf, sizeof(buf)), n - 4);
    assert_int_equal(buf[0], OPS_SESSION_VERSION_V1);
    assert_int_equal(ops_session_decode(&back, buf, n - 4), 0);
    assert_memory_equal(&back, &s, sizeof(s));
}

/* Fields out of range are neither written nor read. */
static void
test_session_refusals(void **state)
{
    struct sale_session s, back;
    struct api_writer w;
    uint8_t buf[OPS_SESSION_MAX];
    size_t n, cur_off;

    (void)state;
    longest_session(&s);
    n = encode_session(&s, buf, sizeof(buf));
    /* version, state, key version (never 0 in layout 2) */
    buf[0] = OPS_SESSION_VERSION + 1;
    assert_int_equal(ops_session_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[0] = OPS_SESSION_VERSION_V1; /* a layout-2 body read as layout 1 */
    assert_int_equal(ops_session_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[0] = OPS_SESSION_VERSION;
    memset(buf + 2, 0, 4);
    assert_int_equal(ops_session_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[5] = 9;
    assert_int_equal(ops_session_decode(&back, buf, n), 0);
    assert_int_equal(back.key_version, 9);
    for (unsigned st = 0; st < 256; st++) {
        buf[1] = (uint8_t)st;
        assert_int_equal(ops_session_decode(&back, buf, n),
                         st == OPS_SESSION_OPEN || st == OPS_SESSION_CONSUMED ? 0 : -API_STATUS_INTERNAL);
    }
    buf[1] = OPS_SESSION_CONSUMED;
    /* A blank in the merchant, a currency that is not three capitals. */
    buf[7] = ' ';
    assert_int_equal(ops_session_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[7] = 'M';
    cur_off = 1 + 1 + 4 + 1 + API_ID_MAX + API_HASH_LEN + 8;
    assert_int_equal(memcmp(buf + cur_off, "EUR", 3), 0);
    buf[cur_off + 1] = 'u';
    assert_int_equal(ops_session_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[cur_off + 1] = 0;
    assert_int_equal(ops_session_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[cur_off + 1] = 'U';
    assert_int_equal(ops_session_decode(&back, buf, n), 0);

    /* The encoder refuses what the decoder would. */
    api_writer_init(&w, OPS_SESSION_MAX);
    s.amount = API_AMOUNT_MAX + 1;
    assert_int_equal(ops_session_encode(&w, &s), -API_STATUS_INTERNAL);
    longest_session(&s);
    s.expires_at = s.created_at_ms / 1000u; /* not after its creation */
    assert_int_equal(ops_session_encode(&w, &s), -API_STATUS_INTERNAL);
    longest_session(&s);
    s.expires_at += 2; /* longer than API_LIFETIME_MAX (plus the rounding second) */
    assert_int_equal(ops_session_encode(&w, &s), -API_STATUS_INTERNAL);
    longest_session(&s);
    s.merchant[0] = '\0';
    assert_int_equal(ops_session_encode(&w, &s), -API_STATUS_INTERNAL);
    longest_session(&s);
    s.state = 0;
    assert_int_equal(ops_session_encode(&w, &s), -API_STATUS_INTERNAL);
    assert_int_equal(api_writer_len(&w), 0);
    api_writer_cleanup(&w);
}

static size_t
encode_mapping(const struct card_mapping *m, uint8_t *out)
{
    struct api_writer w;
    size_t n;

    api_writer_init(&w, OPS_MAPPING_MAX);
    assert_int_equal(ops_mapping_encode(&w, m), 0);
    n = api_writer_len(&w);
    memcpy(out, api_writer_data(&w), n);
    api_writer_cleanup(&w);
    return n;
}

static void
test_mapping_codec(void **state)
{
    struct card_mapping m, back;
    struct api_writer w;
    uint8_t buf[OPS_MAPPING_MAX + 1];
    size_t n;

    (void)state;
    memset(&m, 0, sizeof(m));
    memset(m.token, 'T', API_ID_MAX);
    m.has_email = true;
    memset(m.email_fp, 0xEE, sizeof(m.email_fp));
    m.created_at = API_TIME_MAX;
    n = encode_mapping(&m, buf);
    assert_true(n <= OPS_MAPPING_MAX);
    assert_int_equal(ops_mapping_decode(&back, buf, n), 0);
    assert_memory_equal(&back, &m, sizeof(m));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ops_mapping_decode(&back, buf, i), -API_STATUS_INTERNAL);
    buf[n] = 0;
    assert_int_equal(ops_mapping_decode(&back, buf, n + 1), -API_STATUS_INTERNAL);
    /* The e-mail flag is 0 or 1, and says whether a fingerprint follows. */
    buf[2 + API_ID_MAX] = 2;
    assert_int_equal(ops_mapping_decode(&back, buf, n), -API_STATUS_INTERNAL);
    buf[2 + API_ID_MAX] = 0;
    assert_int_equal(ops_mapping_decode(&back, buf, n), -API_STATUS_INTERNAL);

    /* Without an e-mail: no fingerprint bytes at all. */
    m.has_email = false;
    memset(m.email_fp, 0, sizeof(m.email_fp));
    m.created_at = 1767225600;
    n = encode_mapping(&m, buf);
    assert_int_equal(n, 1 + 1 + API_ID_MAX + 1 + 8);
    assert_int_equal(ops_mapping_decode(&back, buf, n), 0);
    assert_false(back.has_email);
    /* A token with a blank, a time past API_TIME_MAX. */
    buf[5] = ' ';
    assert_int_equal(ops_mapping_decode(&back, buf, n), -API_STATUS_INTERNAL);
    api_writer_init(&w, OPS_MAPPING_MAX);
    m.created_at = API_TIME_MAX + 1;
    assert_int_equal(ops_mapping_encode(&w, &m), -API_STATUS_INTERNAL);
    m.created_at = 0;
    m.token[0] = '\0';
    assert_int_equal(ops_mapping_encode(&w, &m), -API_STATUS_INTERNAL);
    api_writer_cleanup(&w);
}

/* The bytes the signature covers: label, then every field with its length. */
static void
test_mac_input(void **state)
{
    static const char label[] = "tokenvault/session/v1";
    struct sale_session s;
    struct api_writer w, w2;
    uint8_t nonce[OPS_NONCE_LEN];
    const uint8_t *p;
    size_t off = 0;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.state = OPS_SESSION_OPEN;
    memcpy(s.merchant, "m-1", 3);
    memset(s.access_token_hash, 0x11, API_HASH_LEN);
    s.amount = 0x0102030405060708ull;
    memcpy(s.currency, "EUR", 3);
    memset(s.device_hash, 0x22, API_HASH_LEN);
    s.created_at_ms = 1000;
    s.expires_at = 0x1122334455667788ull;
    memset(nonce, 0x33, sizeof(nonce));
    api_writer_init(&w, 512);
    assert_int_equal(ops_session_mac_input(&w, nonce, &s), 0);
    p = api_writer_data(&w);
    assert_int_equal(p[off], sizeof(label) - 1);
    assert_memory_equal(p + off + 1, label, sizeof(label) - 1);
    off += 1 + sizeof(label) - 1;
    assert_int_equal(p[off], OPS_NONCE_LEN);
    assert_memory_equal(p + off + 1, nonce, OPS_NONCE_LEN);
    off += 1 + OPS_NONCE_LEN;
    assert_int_equal(p[off], 3);
    assert_memory_equal(p + off + 1, "m-1", 3);
    off += 4;
    assert_int_equal(p[off], API_HASH_LEN);
    off += 1 + API_HASH_LEN;
    assert_memory_equal(p + off, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    off += 8;
    assert_int_equal(p[off], 3);
    assert_memory_equal(p + off + 1, "EUR", 3);
    off += 4;
    assert_int_equal(p[off], API_HASH_LEN);
    off += 1 + API_HASH_LEN;
    assert_memory_equal(p + off, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
    off += 8;
    assert_int_equal(api_writer_len(&w), off);
    /* The state and creation time are not signed: consuming a session does
     * not change what its signature covers. */
    s.state = OPS_SESSION_CONSUMED;
    s.created_at_ms = 2000;
    api_writer_init(&w2, 512);
    assert_int_equal(ops_session_mac_input(&w2, nonce, &s), 0);
    assert_int_equal(api_writer_len(&w2), api_writer_len(&w));
    assert_memory_equal(api_writer_data(&w2), api_writer_data(&w), api_writer_len(&w));
    api_writer_cleanup(&w2);
    api_writer_cleanup(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_round_trip),
        cmocka_unit_test(test_session_refusals),
        cmocka_unit_test(test_mapping_codec),
        cmocka_unit_test(test_mac_input),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
