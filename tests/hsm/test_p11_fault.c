/*
 * test_p11_fault.c - the hsm layer on SoftHSM behind the FAULT-INJECTION
 * wrapper (support/p11_fault.c): what each injected CKR_ becomes, that the
 * layer recovers by itself once the fault is gone, with the same key and the
 * same MAC, and that a broken control file injects nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hsm/hsm.h"
#include "tests/support/p11_fault.h"
#include "tests/support/token.h"

/* Past the fixture's 200 ms maximum backoff (below), so a recovery is tried. */
#define PAST_BACKOFF_US (300 * 1000)
/* The slow-token rule's delay. */
#define SLOW_MS 200
#define MAC_LABEL "fault-mac"

static tv_token tok;
static char ctl[320];   /* the control file, in the token's directory */
static char stats[320]; /* the module's counters, written at C_Finalize */

/* tv_token_open with the wrapper as the module (token.c opens SoftHSM). */
static int
open_faulty(void)
{
    hsm_config cfg = { 0 };
    int r;

    cfg.module_path = TV_P11_FAULT_MODULE;
    cfg.token_label = TV_TEST_LABEL;
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 200;
    if (tok.pin == NULL && (r = hsm_pin_source_file(&tok.pin, tok.pin_file)) != HSM_OK)
        return r;
    return hsm_open(&tok.h, &cfg, tok.pin);
}

static int
setup(void **state)
{
    (void)state;
    if (tv_token_setup(&tok) != 0)
        return -1;
    snprintf(ctl, sizeof(ctl), "%s/p11-fault.ctl", tok.dir);
    snprintf(stats, sizeof(stats), "%s/p11-fault.stats", tok.dir);
    if (tv_p11_fault_env(ctl) != 0 || setenv("TV_P11_FAULT_STATS", stats, 1) != 0)
        return -1;
    if (open_faulty() != HSM_OK) {
        fprintf(stderr, "open through the wrapper: %s\n", hsm_last_detail());
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_teardown(&tok);
    unsetenv("TV_P11_FAULT_STATS");
    return 0;
}

/* HMAC of a fixed message with a fresh session; returns the HSM_ERR_ code. */
static int
sign_once(hsm_key *key, uint8_t mac[HSM_HMAC_SHA256_LEN])
{
    hsm_session *s = NULL;
    int r = hsm_session_acquire(tok.h, &s);

    if (r != HSM_OK)
        return r;
    r = hsm_hmac_sign(s, key, (const uint8_t *)"fault", 5, mac);
    hsm_session_release(s);
    return r;
}

static int
random_once(uint8_t *out, size_t len)
{
    hsm_session *s = NULL;
    int r = hsm_session_acquire(tok.h, &s);

    if (r != HSM_OK)
        return r;
    r = hsm_random(s, out, len);
    hsm_session_release(s);
    return r;
}

/* Generates the test's HMAC key and its reference MAC. */
static hsm_key *
mac_key(uint8_t mac[HSM_HMAC_SHA256_LEN])
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;

    assert_hsm(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_hsm(hsm_key_generate(s, HSM_KIND_HMAC, MAC_LABEL, &key), HSM_OK);
    hsm_session_release(s);
    assert_hsm(sign_once(key, mac), HSM_OK);
    return key;
}

static void
assert_detail(const char *want)
{
    if (strstr(hsm_last_detail(), want) == NULL)
        fail_msg("detail \"%s\" does not name %s", hsm_last_detail(), want);
}

static uint64_t
generation(void)
{
    hsm_token_info ti;

    hsm_token_info_get(tok.h, &ti);
    return ti.generation;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Closes the hsm (C_Finalize writes the counters) and returns the stats file
 * (malloc'd). */
static char *
stats_after_close(void)
{
    FILE *f;
    char *buf = calloc(1, 8192);
    size_t n;

    hsm_close(tok.h);
    tok.h = NULL;
    assert_non_null(buf);
    f = fopen(stats, "r");
    assert_non_null(f);
    n = fread(buf, 1, 8191, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* 1. No control file: everything is forwarded. */
static void
test_no_rules_forwards(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN], rnd[16];
    hsm_session *s = NULL;
    hsm_key *key;
    char *st;
    (void)state;

    key = mac_key(mac);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    assert_hsm(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_hsm(hsm_hmac_verify(s, key, (const uint8_t *)"fault", 5, mac, sizeof(mac)), HSM_OK);
    assert_hsm(hsm_random(s, rnd, sizeof(rnd)), HSM_OK);
    hsm_session_release(s);
    assert_int_equal(generation(), 1);
    /* The counters saw the calls and failed none. */
    st = stats_after_close();
    assert_non_null(strstr(st, "unparsable_lines=0\n"));
    assert_non_null(strstr(st, "\nC_Sign 2 0\n"));
    assert_non_null(strstr(st, "\nC_Verify 1 0\n"));
    assert_non_null(strstr(st, "\nC_Finalize 1 0\n"));
    free(st);
}

/* 2. One device error on C_Sign: that call is HSM_ERR_UNAVAILABLE, the next
 * re-opens and logs in again by itself (generation 2) with the same key. */
static void
test_device_error_once(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN];
    hsm_key *key;
    (void)state;

    key = mac_key(mac);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_ERROR count 1\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_UNAVAILABLE);
    assert_detail("C_Sign: CKR_DEVICE_ERROR");
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    assert_int_equal(generation(), 2);
}

/* What each failure injected on C_Sign becomes, and that the session is
 * usable after it: a loss recovers, any other failure leaves the session in
 * the pool, so the real operation must have ended with the injected call. */
static void
test_sign_codes(void **state)
{
    static const struct {
        const char *rule;
        int want;
        const char *detail;
    } cases[] = {
        { "C_Sign CKR_DEVICE_ERROR count 1", HSM_ERR_UNAVAILABLE, "CKR_DEVICE_ERROR" },
        { "C_Sign CKR_DEVICE_REMOVED count 1", HSM_ERR_UNAVAILABLE, "CKR_DEVICE_REMOVED" },
        { "C_Sign CKR_FUNCTION_FAILED count 1", HSM_ERR_INTERNAL, "CKR_FUNCTION_FAILED" },
        { "C_Sign CKR_GENERAL_ERROR count 1", HSM_ERR_INTERNAL, "CKR_GENERAL_ERROR" },
        { "C_Sign CKR_DEVICE_MEMORY count 1", HSM_ERR_NO_MEMORY, "CKR_DEVICE_MEMORY" },
        { "C_Sign CKR_HOST_MEMORY count 1", HSM_ERR_NO_MEMORY, "CKR_HOST_MEMORY" },
        { "C_Sign CKR_SESSION_HANDLE_INVALID count 1", HSM_ERR_UNAVAILABLE,
          "CKR_SESSION_HANDLE_INVALID" },
        { "C_Sign CKR_USER_NOT_LOGGED_IN count 1", HSM_ERR_UNAVAILABLE, "CKR_USER_NOT_LOGGED_IN" },
        { "C_Sign CKR_KEY_HANDLE_INVALID count 1", HSM_ERR_KEY_NOT_FOUND, "CKR_KEY_HANDLE_INVALID" },
        { "C_Sign CKR_DATA_LEN_RANGE count 1", HSM_ERR_INPUT, "CKR_DATA_LEN_RANGE" },
        { "C_Sign 0x30 count 1", HSM_ERR_UNAVAILABLE, "CKR_DEVICE_ERROR" },
        { "C_Sign 0x0000DEAD count 1", HSM_ERR_INTERNAL, "(0xdead)" },
    };
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN];
    hsm_key *key;
    (void)state;

    key = mac_key(mac);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r;

        assert_int_equal(tv_p11_fault_set(ctl, cases[i].rule), 0);
        if ((r = sign_once(key, again)) != cases[i].want)
            fail_msg("%s: %s, want %s (detail: %s)", cases[i].rule, hsm_strerror(r),
                     hsm_strerror(cases[i].want), hsm_last_detail());
        assert_detail(cases[i].detail);
        assert_hsm(sign_once(key, again), HSM_OK);
        assert_memory_equal(mac, again, sizeof(mac));
    }
}

/* 3. skip 2 count 1: calls 1-2 pass, 3 fails, 4 and later pass. */
static void
test_skip_count(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN];
    hsm_key *key;
    char *st;
    (void)state;

    key = mac_key(mac);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_ERROR skip 2 count 1\n"), 0);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_hsm(sign_once(key, again), HSM_ERR_UNAVAILABLE);
    assert_detail("CKR_DEVICE_ERROR");
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    /* The same with a failure that keeps the session: the 4th call reuses
     * it, which works only if the 3rd ended SoftHSM's sign operation. */
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_FUNCTION_FAILED skip 2 count 1\n"), 0);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_hsm(sign_once(key, again), HSM_ERR_INTERNAL);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    st = stats_after_close();
    /* 1 reference + 5 + 4 signs; 2 failed. */
    assert_non_null(strstr(st, "\nC_Sign 10 2\n"));
    free(st);
}

/* 4. The token removed: everything is unavailable while it is away, with
 * backoff; once back, the same key (found by label) gives the same MAC. */
static void
test_token_removed(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN], rnd[16];
    hsm_session *s = NULL;
    hsm_key *key, *found = NULL;
    (void)state;

    key = mac_key(mac);
    assert_int_equal(tv_p11_fault_set(ctl, "* CKR_DEVICE_REMOVED\n"), 0);
    /* A pooled session is lent without asking the token; its first call
     * fails and marks the token lost. */
    assert_hsm(sign_once(key, again), HSM_ERR_UNAVAILABLE);
    assert_detail("CKR_DEVICE_REMOVED");
    /* The recovery attempt fails (C_GetSlotList), then backoff. */
    assert_hsm(sign_once(key, again), HSM_ERR_UNAVAILABLE);
    assert_hsm(random_once(rnd, sizeof(rnd)), HSM_ERR_UNAVAILABLE);
    assert_detail("HSM unavailable"); /* waiting to retry, or tried again and failed */
    usleep(PAST_BACKOFF_US);
    assert_hsm(random_once(rnd, sizeof(rnd)), HSM_ERR_UNAVAILABLE);
    assert_hsm(hsm_session_acquire(tok.h, &s), HSM_ERR_UNAVAILABLE);
    assert_int_equal(generation(), 1);

    /* Back. */
    assert_int_equal(tv_p11_fault_set(ctl, ""), 0);
    usleep(PAST_BACKOFF_US);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    assert_int_equal(generation(), 2);
    assert_hsm(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_hsm(hsm_key_find(s, MAC_LABEL, &found), HSM_OK);
    assert_hsm(hsm_hmac_sign(s, found, (const uint8_t *)"fault", 5, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    assert_hsm(hsm_random(s, rnd, sizeof(rnd)), HSM_OK);
    hsm_session_release(s);
}

/* 5. A slow but working token: CKR_OK with a delay forwards after it. */
static void
test_slow_random(void **state)
{
    uint8_t rnd[32] = { 0 }, zero[32] = { 0 };
    hsm_session *s = NULL;
    uint64_t t0;
    (void)state;

    assert_hsm(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_int_equal(tv_p11_fault_set(ctl, "C_GenerateRandom CKR_OK delay_ms 200\n"), 0);
    t0 = now_ms();
    assert_hsm(hsm_random(s, rnd, sizeof(rnd)), HSM_OK);
    assert_true(now_ms() - t0 >= SLOW_MS);
    assert_memory_not_equal(rnd, zero, sizeof(rnd));
    /* Other functions are not slowed. */
    t0 = now_ms();
    assert_int_equal(tv_p11_fault_set(ctl, ""), 0);
    assert_hsm(hsm_random(s, rnd, sizeof(rnd)), HSM_OK);
    assert_true(now_ms() - t0 < SLOW_MS);
    hsm_session_release(s);
}

/* 6. A control file of garbage injects nothing and counts what it ignored. */
static void
test_garbage_ignored(void **state)
{
    static const char junk_lines[] =
        "# a comment, then a blank line\n"
        "\n"
        "   \t  \n"
        "C_Frobnicate CKR_DEVICE_ERROR\n"               /* 1 unknown function */
        "C_Sign CKR_NO_SUCH_CODE\n"                     /* 2 unknown result */
        "C_Sign\n"                                      /* 3 no result */
        "C_Sign 0x\n"                                   /* 4 empty hex */
        "C_Sign 0x123456789\n"                          /* 5 more than 8 hex digits */
        "C_Sign 0xZZ\n"                                 /* 6 */
        "C_Sign CKR_DEVICE_ERROR count -1\n"            /* 7 sign */
        "C_Sign CKR_DEVICE_ERROR count 99999999999999999999\n" /* 8 too long */
        "C_Sign CKR_DEVICE_ERROR count 1000000001\n"    /* 9 over the limit */
        "C_Sign CKR_DEVICE_ERROR delay_ms 10001\n"      /* 10 over the limit */
        "C_Sign CKR_DEVICE_ERROR skip\n"                /* 11 no number */
        "C_Sign CKR_DEVICE_ERROR count 1 count 2\n"     /* 12 repeated option */
        "C_Sign CKR_DEVICE_ERROR often 3\n"             /* 13 unknown option */
        "C_Sign CKR_DEVICE_ERROR count 1x\n"            /* 14 */
        "c_sign CKR_DEVICE_ERROR\n"                     /* 15 names are case-sensitive */
        "C_Sign ckr_device_error\n"                     /* 16 */
        "C_Sign CKR_DEVICE_ERROR # no trailing comments\n" /* 17 */
        "C_Sign\xff CKR_DEVICE_ERROR\n"                 /* 18 non-ASCII */
        "C_Sign CKR_DEVICE_ERROR\v\n";                  /* 19 control byte */
    static const unsigned char binary[] = { 'C', '_', 'S', 'i', 'g', 'n', 0, ' ', 'C', 'K', 'R', '_',
                                            'O', 'K', '\n', 0x00, 0x01, 0xfe, 0x80, '\n' };
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN], rnd[16];
    char *buf = NULL, *st;
    size_t len = 0, cap;
    hsm_key *key;
    (void)state;

    key = mac_key(mac);
    cap = sizeof(junk_lines) + sizeof(binary) + 2 * 400 + 33 * 40;
    buf = calloc(1, cap);
    assert_non_null(buf);
    memcpy(buf, junk_lines, sizeof(junk_lines) - 1);
    len = sizeof(junk_lines) - 1;
    memcpy(buf + len, binary, sizeof(binary)); /* 20, 21 */
    len += sizeof(binary);
    /* 22: a 300-byte line that would be a rule but for its length; 23: 400
     * bytes without a newline at the end... of the line, then a newline. */
    len += (size_t)snprintf(buf + len, cap - len, "C_Sign CKR_DEVICE_ERROR delay_ms 0%293s\n", "");
    memset(buf + len, 'A', 400);
    len += 400;
    buf[len++] = '\n';
    /* 32 harmless rules fill the table; the 33rd, which would fail every
     * C_Sign, is one too many (24). */
    for (int i = 0; i < 32; i++)
        len += (size_t)snprintf(buf + len, cap - len, "C_SetPIN CKR_PIN_INCORRECT\n");
    len += (size_t)snprintf(buf + len, cap - len, "C_Sign CKR_DEVICE_ERROR");
    assert_true(len < cap);
    assert_int_equal(tv_p11_fault_set_bytes(ctl, buf, len), 0);
    free(buf);

    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
    assert_hsm(random_once(rnd, sizeof(rnd)), HSM_OK);

    /* A file over 16 KiB is ignored whole, valid rules and all. */
    cap = 20 * 1024;
    buf = malloc(cap);
    assert_non_null(buf);
    for (len = 0; len + 24 <= cap;)
        len += (size_t)snprintf(buf + len, cap - len, "C_Sign CKR_DEVICE_ERROR\n");
    assert_int_equal(tv_p11_fault_set_bytes(ctl, buf, len), 0);
    free(buf);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_int_equal(generation(), 1);

    st = stats_after_close();
    assert_non_null(strstr(st, "unparsable_lines=25\n"));
    assert_non_null(strstr(st, "\nC_Sign 3 0\n"));
    free(st);
}

/* 7. Each new rule set counts from its first call, even written twice within
 * a timestamp tick with the same size, and even when it is the same text. */
static void
test_helper_replaces(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN], again[HSM_HMAC_SHA256_LEN], rnd[16];
    hsm_key *key;
    (void)state;

    key = mac_key(mac);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_ERROR\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_UNAVAILABLE);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_FUNCTION_FAILED\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_INTERNAL);
    assert_detail("CKR_FUNCTION_FAILED");
    assert_int_equal(tv_p11_fault_set(ctl, "C_GenerateRandom CKR_DEVICE_MEMORY\n"), 0);
    assert_hsm(random_once(rnd, sizeof(rnd)), HSM_ERR_NO_MEMORY);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));

    /* Same size, back to back, no call in between: the last one counts. */
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign 0x00000031\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_NO_MEMORY);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign 0x00000030\n"), 0);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign 0x00000032\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_UNAVAILABLE);
    assert_detail("CKR_DEVICE_REMOVED");

    /* The same text again is a new file: its count starts over. */
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_MEMORY count 1\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_NO_MEMORY);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_MEMORY count 1\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_NO_MEMORY);
    assert_hsm(sign_once(key, again), HSM_OK);

    /* Removing the file removes the rules. */
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_MEMORY\n"), 0);
    assert_hsm(sign_once(key, again), HSM_ERR_NO_MEMORY);
    assert_int_equal(unlink(ctl), 0);
    assert_hsm(sign_once(key, again), HSM_OK);
    assert_memory_equal(mac, again, sizeof(mac));
}

/* Threads share the rule table: a limited rule fires exactly |count| times
 * however the calls interleave (SoftHSM runs with CKF_OS_LOCKING_OK). */
#define RACE_THREADS 4
#define RACE_CALLS 50

struct race {
    hsm_key *key;
    int ok, failed, other;
};

static void *
race_thread(void *arg)
{
    struct race *rc = arg;
    uint8_t mac[HSM_HMAC_SHA256_LEN];

    for (int i = 0; i < RACE_CALLS; i++) {
        int r = sign_once(rc->key, mac);

        if (r == HSM_OK)
            rc->ok++;
        else if (r == HSM_ERR_NO_MEMORY)
            rc->failed++;
        else
            rc->other++;
    }
    return NULL;
}

static void
test_threads_share_rules(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN];
    struct race rc[RACE_THREADS] = { { 0 } };
    pthread_t th[RACE_THREADS];
    int ok = 0, failed = 0;
    hsm_key *key;
    char *st;
    (void)state;

    key = mac_key(mac);
    assert_int_equal(tv_p11_fault_set(ctl, "C_Sign CKR_DEVICE_MEMORY skip 10 count 20\n"), 0);
    for (int i = 0; i < RACE_THREADS; i++) {
        rc[i].key = key;
        assert_int_equal(pthread_create(&th[i], NULL, race_thread, &rc[i]), 0);
    }
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(rc[i].other, 0);
        ok += rc[i].ok;
        failed += rc[i].failed;
    }
    assert_int_equal(failed, 20);
    assert_int_equal(ok, RACE_THREADS * RACE_CALLS - 20);
    st = stats_after_close();
    assert_non_null(strstr(st, "\nC_Sign 201 20\n"));
    free(st);
}

/* Without a usable target the wrapper refuses to load (CKR_GENERAL_ERROR
 * from C_GetFunctionList), and the hsm says the module is unusable. */
static void
test_target_required(void **state)
{
    (void)state;

    hsm_close(tok.h);
    tok.h = NULL;
    assert_int_equal(unsetenv("TV_P11_FAULT_TARGET"), 0);
    assert_hsm(open_faulty(), HSM_ERR_MODULE);
    assert_int_equal(setenv("TV_P11_FAULT_TARGET", "/nonexistent/libsofthsm2.so", 1), 0);
    assert_hsm(open_faulty(), HSM_ERR_MODULE);
    /* Pointed at itself it would recurse. */
    assert_int_equal(setenv("TV_P11_FAULT_TARGET", TV_P11_FAULT_MODULE, 1), 0);
    assert_hsm(open_faulty(), HSM_ERR_MODULE);
    assert_int_equal(tv_p11_fault_env(ctl), 0);
    assert_hsm(open_faulty(), HSM_OK);
}

/* "*" spares C_Finalize, so the hsm closes even while the token is away. */
static void
test_star_spares_finalize(void **state)
{
    char *st;
    (void)state;

    assert_int_equal(tv_p11_fault_set(ctl, "* CKR_DEVICE_REMOVED\n"), 0);
    st = stats_after_close();
    assert_non_null(strstr(st, "\nC_Finalize 1 0\n"));
    assert_non_null(strstr(st, "\nC_CloseAllSessions 1 1\n"));
    free(st);
}

/* The last count the stats file holds for |fn| (each C_Finalize appends a
 * block; the newest is last). */
static unsigned long
last_calls(const char *st, const char *fn)
{
    size_t n = strlen(fn);
    unsigned long calls = 0;

    for (const char *p = st; (p = strstr(p, fn)) != NULL; p += n)
        if ((p == st || p[-1] == '\n') && p[n] == ' ')
            calls = strtoul(p + n + 1, NULL, 10);
    return calls;
}

/* Opens the wrapper, makes three MACs with the test key (the first under
 * |rules|, which may be NULL), closes, and returns how many sessions the
 * hsm opened; *first gets the first MAC's code. */
static unsigned long
sessions_for_three_macs(const char *rules, int *first)
{
    hsm_session *s = NULL;
    hsm_key *key = NULL;
    uint8_t mac[HSM_HMAC_SHA256_LEN];
    char *st;
    unsigned long n;

    assert_hsm(open_faulty(), HSM_OK);
    assert_hsm(hsm_session_acquire(tok.h, &s), HSM_OK);
    assert_hsm(hsm_key_find(s, MAC_LABEL, &key), HSM_OK);
    hsm_session_release(s);
    assert_int_equal(tv_p11_fault_set(ctl, rules), 0);
    *first = sign_once(key, mac);
    assert_int_equal(tv_p11_fault_set(ctl, NULL), 0);
    assert_hsm(sign_once(key, mac), HSM_OK);
    assert_hsm(sign_once(key, mac), HSM_OK);
    st = stats_after_close();
    n = last_calls(st, "C_OpenSession");
    free(st);
    return n;
}

/* A module that answers CKR_OPERATION_ACTIVE left an operation open on
 * the session: the session is closed when given back, not pooled, so the
 * next caller gets a fresh one (one C_OpenSession more than without it). */
static void
test_operation_active_session_dropped(void **state)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN];
    unsigned long plain, faulty;
    int first = 0;

    (void)state;
    (void)mac_key(mac);
    free(stats_after_close());
    plain = sessions_for_three_macs(NULL, &first);
    assert_hsm(first, HSM_OK);
    faulty = sessions_for_three_macs("C_SignInit CKR_OPERATION_ACTIVE count 1", &first);
    assert_hsm(first, HSM_ERR_INTERNAL);
    assert_int_equal(faulty, plain + 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_rules_forwards, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_error_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sign_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skip_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_helper_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_threads_share_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_star_spares_finalize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operation_active_session_dropped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
