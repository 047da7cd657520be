/*
 * test_shares.c - M-of-N shares: every subset of M rebuilds the secret,
 * fewer do not, and every kind of wrong share or file is refused with its
 * own error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "vault/shares.h"

static const uint8_t pin[] = "KX7QPZ2M9RTWH3JC5NBV8DLF";
#define PIN_LEN (sizeof(pin) - 1)

struct split {
    struct share_set set;
    struct share sh[SHARE_COUNT_MAX];
};

static void
split_3_of_5(struct split *s)
{
    assert_int_equal(share_split(&s->set, s->sh, SHARE_KIND_PIN, 3, 5, pin, PIN_LEN), 0);
}

static void
test_every_subset_rebuilds(void **state)
{
    struct split s;
    struct share pick[3];
    uint8_t out[SHARE_PAYLOAD_MAX];
    size_t len = 0;
    unsigned subsets = 0;

    (void)state;
    split_3_of_5(&s);
    for (unsigned a = 0; a < 5; a++)
        for (unsigned b = a + 1; b < 5; b++)
            for (unsigned c = b + 1; c < 5; c++) {
                /* In any order: the shares name their own x coordinates. */
                pick[0] = s.sh[c];
                pick[1] = s.sh[a];
                pick[2] = s.sh[b];
                memset(out, 0, sizeof(out));
                assert_int_equal(share_combine(&s.set, pick, 3, out, sizeof(out), &len), 0);
                assert_int_equal(len, PIN_LEN);
                assert_memory_equal(out, pin, PIN_LEN);
                subsets++;
            }
    assert_int_equal(subsets, 10);
    /* All five at once: the extra shares are checked, the result the same. */
    assert_int_equal(share_combine(&s.set, s.sh, 5, out, sizeof(out), &len), 0);
    assert_memory_equal(out, pin, PIN_LEN);
}

static void
test_too_few_and_duplicates(void **state)
{
    struct split s;
    struct share pick[3];
    uint8_t out[SHARE_PAYLOAD_MAX];
    size_t len = 0;

    (void)state;
    split_3_of_5(&s);
    assert_int_equal(share_combine(&s.set, s.sh, 2, out, sizeof(out), &len), SHARE_ERR_TOO_FEW);
    pick[0] = s.sh[0];
    pick[1] = s.sh[1];
    pick[2] = s.sh[0];
    assert_int_equal(share_combine(&s.set, pick, 3, out, sizeof(out), &len), SHARE_ERR_DUPLICATE);
}

static void
test_wrong_shares_refused(void **state)
{
    struct split s, other;
    struct share pick[3];
    uint8_t out[SHARE_PAYLOAD_MAX];
    size_t len = 0;

    (void)state;
    split_3_of_5(&s);
    split_3_of_5(&other);
    assert_int_equal(share_verify(&s.set, &s.sh[3]), 0);
    /* A share of another split of the same PIN. */
    assert_int_equal(share_verify(&s.set, &other.sh[3]), SHARE_ERR_SET);
    /* One changed bit in the value. */
    pick[0] = s.sh[0];
    pick[1] = s.sh[1];
    pick[2] = s.sh[2];
    pick[2].value[17] ^= 0x01;
    assert_int_equal(share_verify(&s.set, &pick[2]), SHARE_ERR_CHECK);
    assert_int_equal(share_combine(&s.set, pick, 3, out, sizeof(out), &len), SHARE_ERR_CHECK);
    /* Another kind, another M or N, an index out of range. */
    pick[2] = s.sh[2];
    pick[2].kind = SHARE_KIND_TRANSPORT;
    assert_int_equal(share_verify(&s.set, &pick[2]), SHARE_ERR_SET);
    pick[2] = s.sh[2];
    pick[2].threshold = 2;
    assert_int_equal(share_verify(&s.set, &pick[2]), SHARE_ERR_SET);
    pick[2] = s.sh[2];
    pick[2].index = 6;
    assert_int_equal(share_verify(&s.set, &pick[2]), SHARE_ERR_SET);
    /* A set whose secret hash was altered: the rebuilt secret is refused
     * before anyone could try it on a token. */
    s.set.secret_check[0] ^= 0x80;
    assert_int_equal(share_combine(&s.set, s.sh, 3, out, sizeof(out), &len), SHARE_ERR_COMBINE);
}

static void
test_split_arguments(void **state)
{
    struct split s;
    uint8_t big[SHARE_PAYLOAD_MAX + 1];

    (void)state;
    memset(big, 'A', sizeof(big));
    assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_PIN, 1, 5, pin, PIN_LEN), SHARE_ERR_ARG);
    assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_PIN, 4, 3, pin, PIN_LEN), SHARE_ERR_ARG);
    assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_PIN, 2, SHARE_COUNT_MAX + 1, pin, PIN_LEN),
                     SHARE_ERR_ARG);
    assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_PIN, 2, 3, pin, 0), SHARE_ERR_ARG);
    assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_PIN, 2, 3, big, sizeof(big)),
                     SHARE_ERR_ARG);
    assert_int_equal(share_split(&s.set, s.sh, 'X', 2, 3, pin, PIN_LEN), SHARE_ERR_ARG);
    /* The longest payload and a 2-of-2 split work. */
    assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_TRANSPORT, 2, 2, big, SHARE_PAYLOAD_MAX), 0);
    /* The most shares: the set file still formats and parses. */
    {
        char text[SHARE_FILE_MAX];
        struct share_set back;
        size_t len = 0;

        assert_int_equal(share_split(&s.set, s.sh, SHARE_KIND_PIN, 2, SHARE_COUNT_MAX, pin, PIN_LEN), 0);
        assert_int_equal(share_set_format(&s.set, text, sizeof(text), &len), 0);
        assert_int_equal(share_set_parse(&back, text, len), 0);
        assert_memory_equal(&back, &s.set, sizeof(back));
    }
}

/* The padding is random: two splits of the same PIN share no share value
 * and no check value, so check values say nothing about the PIN. */
static void
test_padding_hides_the_secret(void **state)
{
    struct split a, b;

    (void)state;
    split_3_of_5(&a);
    split_3_of_5(&b);
    for (unsigned i = 0; i < 5; i++) {
        assert_memory_not_equal(a.sh[i].value, b.sh[i].value, SHARE_SECRET_LEN);
        assert_memory_not_equal(a.set.check[i], b.set.check[i], SHARE_CHECK_LEN);
    }
    assert_memory_not_equal(a.set.secret_check, b.set.secret_check, SHARE_SECRET_CHECK_LEN);
}

static void
test_files_round_trip(void **state)
{
    struct split s;
    struct share back;
    struct share_set set_back;
    char text[SHARE_FILE_MAX], ct[SHARE_CHECK_TEXT_LEN + 1];
    size_t len = 0;

    (void)state;
    split_3_of_5(&s);
    assert_int_equal(share_format(&s.sh[1], text, sizeof(text), &len), 0);
    assert_int_equal(strlen(text), len);
    share_check_text(s.set.check[1], ct);
    assert_non_null(strstr(text, ct)); /* the officer sees the check value */
    assert_non_null(strstr(text, "share 2 of 5, any 3"));
    assert_int_equal(share_parse(&back, text, len), 0);
    assert_memory_equal(&back, &s.sh[1], sizeof(back));
    assert_int_equal(share_set_format(&s.set, text, sizeof(text), &len), 0);
    assert_non_null(strstr(text, ct));
    assert_int_equal(share_set_parse(&set_back, text, len), 0);
    assert_memory_equal(&set_back, &s.set, sizeof(set_back));
    assert_int_equal(share_verify(&set_back, &back), 0);
}

static void
test_hostile_files(void **state)
{
    struct split s;
    struct share back;
    struct share_set set_back;
    char text[SHARE_FILE_MAX], bad[SHARE_FILE_MAX * 2];
    char *data;
    size_t len = 0;

    (void)state;
    split_3_of_5(&s);
    assert_int_equal(share_format(&s.sh[0], text, sizeof(text), &len), 0);
    data = strstr(text, "tokenvault-share-1:");
    assert_non_null(data);
    /* Empty, comments only, a set where a share is expected. */
    assert_int_equal(share_parse(&back, "", 0), SHARE_ERR_FORMAT);
    assert_int_equal(share_parse(&back, "# nothing\n", 10), SHARE_ERR_FORMAT);
    assert_int_equal(share_set_parse(&set_back, text, len), SHARE_ERR_FORMAT);
    /* Two data lines. */
    snprintf(bad, sizeof(bad), "%s%s", text, data);
    assert_int_equal(share_parse(&back, bad, strlen(bad)), SHARE_ERR_FORMAT);
    /* A stray line, trailing text after the hex, a bad digit, a short one. */
    snprintf(bad, sizeof(bad), "hello\n%s", text);
    assert_int_equal(share_parse(&back, bad, strlen(bad)), SHARE_ERR_FORMAT);
    snprintf(bad, sizeof(bad), "%.*s00\n", (int)(len - 1), text);
    assert_int_equal(share_parse(&back, bad, strlen(bad)), SHARE_ERR_FORMAT);
    memcpy(bad, text, len + 1);
    bad[len - 3] = 'g';
    assert_int_equal(share_parse(&back, bad, len), SHARE_ERR_FORMAT);
    snprintf(bad, sizeof(bad), "%.*s\n", (int)(len - 3), text);
    assert_int_equal(share_parse(&back, bad, strlen(bad)), SHARE_ERR_FORMAT);
    /* An embedded NUL. */
    memcpy(bad, text, len + 1);
    bad[len - 5] = '\0';
    assert_int_equal(share_parse(&back, bad, len), SHARE_ERR_FORMAT);
    /* Longer than any share file. */
    memset(bad, '#', sizeof(bad));
    assert_int_equal(share_parse(&back, bad, sizeof(bad)), SHARE_ERR_FORMAT);
    /* Wire bytes: wrong version, length, index 0. */
    {
        uint8_t wire[SHARE_WIRE_LEN + 1];

        share_encode(&s.sh[0], wire);
        assert_int_equal(share_decode(&back, wire, SHARE_WIRE_LEN), 0);
        assert_int_equal(share_decode(&back, wire, SHARE_WIRE_LEN - 1), SHARE_ERR_FORMAT);
        wire[SHARE_WIRE_LEN] = 0;
        assert_int_equal(share_decode(&back, wire, SHARE_WIRE_LEN + 1), SHARE_ERR_FORMAT);
        wire[0] = 2;
        assert_int_equal(share_decode(&back, wire, SHARE_WIRE_LEN), SHARE_ERR_FORMAT);
        wire[0] = SHARE_VERSION;
        wire[2 + SHARE_SET_ID_LEN] = 0;
        assert_int_equal(share_decode(&back, wire, SHARE_WIRE_LEN), SHARE_ERR_FORMAT);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_subset_rebuilds),
        cmocka_unit_test(test_too_few_and_duplicates),
        cmocka_unit_test(test_wrong_shares_refused),
        cmocka_unit_test(test_split_arguments),
        cmocka_unit_test(test_padding_hides_the_secret),
        cmocka_unit_test(test_files_round_trip),
        cmocka_unit_test(test_hostile_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
