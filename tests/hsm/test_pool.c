/*
 * test_pool.c - the session pool under concurrency: more threads than
 * sessions, each running the vault's everyday operations (HMAC, DEK GCM, RNG,
 * ECDH + Apple KDF), every result checked against one computed beforehand on
 * the main thread or on the host, and the pool never lending more sessions
 * than it was given.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsm/internal.h"
#include "tests/support/token.h"

/* Fewer sessions than threads, so that threads wait for one another. */
#define POOL_SESSIONS 4
#define NUM_THREADS 6
#define NUM_ITERS 300
/* ECDH + KDF is the slow operation; one iteration in this many runs it. */
#define ECDH_EVERY 50
/* Messages every thread signs, so the same MAC is computed concurrently. */
#define NUM_SHARED_MSGS 8
#define MSG_MAX 64
/* A record the size of a PAN with its metadata. */
#define RECORD_LEN 48
#define RANDOM_LEN 32
#define SHA256_LEN 32
/* How long the waiter gets to (wrongly) obtain a session beyond the limit. */
#define WAIT_CHECK_MS 200
/* How long a released session may take to reach the waiter. */
#define WAKE_TIMEOUT_MS 5000
#define WAKE_POLL_MS 10

static tv_token tok;
static hsm_key *kek, *hmac, *ecdh, *dek;

/* Reference values, computed before any worker starts. */
static uint8_t mac_own[NUM_THREADS][NUM_ITERS][HSM_HMAC_SHA256_LEN];
static uint8_t mac_shared[NUM_SHARED_MSGS][HSM_HMAC_SHA256_LEN];
static uint8_t peer_point[HSM_EC_P256_POINT_LEN];
static uint8_t other_info[1 + 13 + 5 + SHA256_LEN];
static uint8_t want_kdf[SHA256_LEN];

/* Sessions lent right now, counted by the workers between acquire and
 * release (a lower bound of the pool's own count), and the peaks seen. */
static atomic_uint num_holding;
static atomic_uint max_holding;
static atomic_uint max_num_lent; /* h->num_lent sampled under h->lock */
static atomic_uint max_num_open;

typedef struct worker {
    pthread_t thread;
    int id;
    unsigned failures;
    unsigned num_ecdh;
    char first_failure[256];
} worker;

static void
atomic_max(atomic_uint *peak, unsigned v)
{
    unsigned cur = atomic_load(peak);

    while (v > cur && !atomic_compare_exchange_weak(peak, &cur, v))
        ;
}

static size_t
own_msg(char out[MSG_MAX], int thread, int iter)
{
    return (size_t)snprintf(out, MSG_MAX, "pan-4111-%02d-%04d", thread, iter);
}

static size_t
shared_msg(char out[MSG_MAX], int i)
{
    return (size_t)snprintf(out, MSG_MAX, "shared-pan-5555-%d", i);
}

/* ---- host side: the expected Apple KDF output ----------------------------- */

/* otherInfo as Apple Pay EC_v1 builds it: len || "id-aes256-GCM" || "Apple" ||
 * SHA-256(merchant id). Its content only has to be fixed. */
static void
make_other_info(void)
{
    static const char alg[] = "id-aes256-GCM", party_u[] = "Apple";
    static const char merchant[] = "merchant.com.tokenvault.pooltest";
    unsigned int n = 0;
    uint8_t *p = other_info;

    *p++ = (uint8_t)(sizeof(alg) - 1);
    memcpy(p, alg, sizeof(alg) - 1);
    p += sizeof(alg) - 1;
    memcpy(p, party_u, sizeof(party_u) - 1);
    p += sizeof(party_u) - 1;
    assert_int_equal(EVP_Digest(merchant, sizeof(merchant) - 1, p, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, SHA256_LEN);
}

/* A peer key made by OpenSSL; Z = ECDH(peer, token key's public half) on the
 * host; want = SHA-256(00000001 || Z || otherInfo) (NIST SP 800-56A). */
static int
host_expected_kdf(hsm_session *s)
{
    static const uint8_t counter[4] = { 0, 0, 0, 1 };
    uint8_t spki[HSM_SPKI_MAX], z[HSM_ECDH_P256_Z_LEN];
    const unsigned char *p = spki;
    size_t spki_len = 0, z_len = sizeof(z), point_len = 0;
    EVP_PKEY *peer = NULL, *ours = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_MD_CTX *md = NULL;
    unsigned int n = 0;
    int r = -1;

    if (hsm_key_public_spki(s, ecdh, spki, sizeof(spki), &spki_len) != HSM_OK)
        goto out;
    ours = d2i_PUBKEY(NULL, &p, (long)spki_len);
    peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (ours == NULL || p != spki + spki_len || peer == NULL ||
        EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, peer_point,
                                        sizeof(peer_point), &point_len) != 1 ||
        point_len != HSM_EC_P256_POINT_LEN || peer_point[0] != 0x04)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, peer, NULL);
    if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, ours) != 1 ||
        EVP_PKEY_derive(ctx, z, &z_len) != 1 || z_len != sizeof(z))
        goto out;
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, counter, sizeof(counter)) != 1 ||
        EVP_DigestUpdate(md, z, sizeof(z)) != 1 ||
        EVP_DigestUpdate(md, other_info, sizeof(other_info)) != 1 ||
        EVP_DigestFinal_ex(md, want_kdf, &n) != 1 || n != SHA256_LEN)
        goto out;
    r = 0;
out:
    OPENSSL_cleanse(z, sizeof(z));
    EVP_MD_CTX_free(md);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(ours);
    return r;
}

/* ---- fixture -------------------------------------------------------------------- */

/* tv_token_open with a pool of POOL_SESSIONS. */
static int
open_small_pool(void)
{
    hsm_config cfg = { 0 };
    int r;

    cfg.module_path = TV_SOFTHSM_MODULE;
    cfg.token_label = TV_TEST_LABEL;
    cfg.max_sessions = POOL_SESSIONS;
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 200;
    if ((r = hsm_pin_source_file(&tok.pin, tok.pin_file)) != HSM_OK)
        return r;
    return hsm_open(&tok.h, &cfg, tok.pin);
}

static int
setup(void **state)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    hsm_session *s = NULL;
    char msg[MSG_MAX];
    int r = -1;

    (void)state;
    if (tv_token_setup(&tok) != 0 || open_small_pool() != HSM_OK ||
        hsm_session_acquire(tok.h, &s) != HSM_OK)
        goto out;
    if (hsm_key_generate(s, HSM_KIND_KEK, "pool-kek", &kek) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_HMAC, "pool-hmac", &hmac) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_EC_DERIVE, "pool-ecdh", &ecdh) != HSM_OK ||
        hsm_dek_generate(s, kek, wrapped, kcv) != HSM_OK ||
        hsm_dek_load(s, kek, "pool-dek", wrapped, sizeof(wrapped), kcv, &dek) != HSM_OK)
        goto out;
    for (int t = 0; t < NUM_THREADS; t++) {
        for (int i = 0; i < NUM_ITERS; i++) {
            size_t n = own_msg(msg, t, i);
            if (hsm_hmac_sign(s, hmac, (const uint8_t *)msg, n, mac_own[t][i]) != HSM_OK)
                goto out;
        }
    }
    for (int i = 0; i < NUM_SHARED_MSGS; i++) {
        size_t n = shared_msg(msg, i);
        if (hsm_hmac_sign(s, hmac, (const uint8_t *)msg, n, mac_shared[i]) != HSM_OK)
            goto out;
    }
    make_other_info();
    if (host_expected_kdf(s) != 0)
        goto out;
    r = 0;
out:
    if (r != 0)
        fprintf(stderr, "fixture: %s\n", hsm_last_detail());
    hsm_session_release(s);
    return r;
}

static int
teardown(void **state)
{
    (void)state;
    tv_token_teardown(&tok);
    return 0;
}

/* ---- the worker ------------------------------------------------------------------- */

static void
failed(worker *w, int iter, const char *what, int r)
{
    if (w->failures++ == 0)
        snprintf(w->first_failure, sizeof(w->first_failure), "thread %d iteration %d: %s: %s (%s)",
                 w->id, iter, what, hsm_strerror(r), hsm_last_detail());
}

/* The white-box view of the pool, under its lock. */
static void
sample_pool(void)
{
    unsigned lent, open;

    pthread_mutex_lock(&tok.h->lock);
    lent = tok.h->num_lent;
    open = tok.h->num_open;
    pthread_mutex_unlock(&tok.h->lock);
    atomic_max(&max_num_lent, lent);
    atomic_max(&max_num_open, open);
}

static void
one_hmac(worker *w, hsm_session *s, int iter, const char *msg, size_t len, const uint8_t *want,
         const uint8_t *other_mac)
{
    uint8_t mac[HSM_HMAC_SHA256_LEN];
    int r;

    if ((r = hsm_hmac_sign(s, hmac, (const uint8_t *)msg, len, mac)) != HSM_OK) {
        failed(w, iter, "hsm_hmac_sign", r);
        return;
    }
    if (CRYPTO_memcmp(mac, want, sizeof(mac)) != 0) {
        failed(w, iter, "HMAC differs from the main thread's", HSM_ERR_VERIFY);
        return;
    }
    if ((r = hsm_hmac_verify(s, hmac, (const uint8_t *)msg, len, mac, sizeof(mac))) != HSM_OK) {
        failed(w, iter, "hsm_hmac_verify", r);
        return;
    }
    /* Another message's MAC, and this one's with a bit flipped. */
    if ((r = hsm_hmac_verify(s, hmac, (const uint8_t *)msg, len, other_mac, sizeof(mac))) !=
        HSM_ERR_VERIFY) {
        failed(w, iter, "hsm_hmac_verify accepted another message's MAC", r);
        return;
    }
    mac[iter % HSM_HMAC_SHA256_LEN] ^= 0x01;
    if ((r = hsm_hmac_verify(s, hmac, (const uint8_t *)msg, len, mac, sizeof(mac))) !=
        HSM_ERR_VERIFY) {
        failed(w, iter, "hsm_hmac_verify accepted a flipped MAC", r);
    }
}

static void
one_gcm(worker *w, hsm_session *s, int iter)
{
    uint8_t pt[RECORD_LEN], ct[RECORD_LEN + HSM_GCM_TAG_LEN], back[RECORD_LEN + HSM_GCM_TAG_LEN];
    uint8_t iv[HSM_GCM_IV_LEN];
    char aad[MSG_MAX];
    size_t aad_len, ct_len = 0, back_len = 0;
    int r;

    memset(pt, 0, sizeof(pt));
    snprintf((char *)pt, sizeof(pt), "record of thread %d, iteration %d", w->id, iter);
    aad_len = (size_t)snprintf(aad, sizeof(aad), "tenant-%d/record-%d", w->id, iter);
    if ((r = hsm_gcm_encrypt(s, dek, (const uint8_t *)aad, aad_len, pt, sizeof(pt), iv, ct,
                             sizeof(ct), &ct_len)) != HSM_OK) {
        failed(w, iter, "hsm_gcm_encrypt", r);
        return;
    }
    if (ct_len != sizeof(ct)) {
        failed(w, iter, "GCM ciphertext length", HSM_ERR_INTERNAL);
        return;
    }
    if ((r = hsm_gcm_decrypt(s, dek, (const uint8_t *)aad, aad_len, iv, sizeof(iv), ct, ct_len,
                             back, sizeof(back), &back_len)) != HSM_OK) {
        failed(w, iter, "hsm_gcm_decrypt", r);
        return;
    }
    if (back_len != sizeof(pt) || memcmp(back, pt, sizeof(pt)) != 0) {
        failed(w, iter, "GCM round trip changed the record", HSM_ERR_INTERNAL);
        return;
    }
    /* The record bound to another tenant's AAD does not open. */
    aad[0] ^= 0x01;
    if ((r = hsm_gcm_decrypt(s, dek, (const uint8_t *)aad, aad_len, iv, sizeof(iv), ct, ct_len,
                             back, sizeof(back), &back_len)) != HSM_ERR_VERIFY) {
        failed(w, iter, "hsm_gcm_decrypt with another AAD", r);
    }
}

static void
one_random(worker *w, hsm_session *s, int iter)
{
    uint8_t a[RANDOM_LEN], b[RANDOM_LEN];
    int r;

    if ((r = hsm_random(s, a, sizeof(a))) != HSM_OK ||
        (r = hsm_random(s, b, sizeof(b))) != HSM_OK) {
        failed(w, iter, "hsm_random", r);
        return;
    }
    /* Two draws of 256 bits agree with probability 2^-256. */
    if (memcmp(a, b, sizeof(a)) == 0) {
        failed(w, iter, "hsm_random repeated itself", HSM_ERR_INTERNAL);
    }
}

static void
one_ecdh(worker *w, hsm_session *s, int iter)
{
    uint8_t key[SHA256_LEN];
    hsm_obj z = HSM_OBJ_NONE;
    int r;

    w->num_ecdh++;
    if ((r = hsm_ecdh_derive(s, ecdh, peer_point, sizeof(peer_point), &z)) != HSM_OK) {
        failed(w, iter, "hsm_ecdh_derive", r);
        return;
    }
    r = hsm_apple_kdf(s, z, other_info, sizeof(other_info), key);
    hsm_obj_destroy(s, z);
    if (r != HSM_OK) {
        failed(w, iter, "hsm_apple_kdf", r);
        return;
    }
    if (CRYPTO_memcmp(key, want_kdf, sizeof(key)) != 0)
        failed(w, iter, "Apple KDF differs from the host's", HSM_ERR_VERIFY);
    OPENSSL_cleanse(key, sizeof(key));
}

static void *
work(void *arg)
{
    worker *w = arg;
    char msg[MSG_MAX];

    for (int i = 0; i < NUM_ITERS; i++) {
        hsm_session *s = NULL;
        unsigned holding;
        size_t n;
        int r, shared = (i + w->id) % NUM_SHARED_MSGS;

        if ((r = hsm_session_acquire(tok.h, &s)) != HSM_OK) {
            failed(w, i, "hsm_session_acquire", r);
            continue;
        }
        holding = atomic_fetch_add(&num_holding, 1) + 1;
        atomic_max(&max_holding, holding);
        sample_pool();

        n = own_msg(msg, w->id, i);
        one_hmac(w, s, i, msg, n, mac_own[w->id][i], mac_shared[shared]);
        n = shared_msg(msg, shared);
        one_hmac(w, s, i, msg, n, mac_shared[shared], mac_own[w->id][i]);
        one_gcm(w, s, i);
        one_random(w, s, i);
        if (i % ECDH_EVERY == w->id % ECDH_EVERY)
            one_ecdh(w, s, i);

        sample_pool();
        atomic_fetch_sub(&num_holding, 1);
        hsm_session_release(s);
    }
    return NULL;
}

/* ---- tests -------------------------------------------------------------------------- */

static void
test_pool_concurrent_operations(void **state)
{
    worker w[NUM_THREADS];
    unsigned failures = 0, num_ecdh = 0;
    struct timespec t0, t1;
    (void)state;

    atomic_store(&num_holding, 0);
    atomic_store(&max_holding, 0);
    atomic_store(&max_num_lent, 0);
    atomic_store(&max_num_open, 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int t = 0; t < NUM_THREADS; t++) {
        memset(&w[t], 0, sizeof(w[t]));
        w[t].id = t;
        assert_int_equal(pthread_create(&w[t].thread, NULL, work, &w[t]), 0);
    }
    for (int t = 0; t < NUM_THREADS; t++) {
        assert_int_equal(pthread_join(w[t].thread, NULL), 0);
        if (w[t].failures > 0)
            print_message("%u failures, first: %s\n", w[t].failures, w[t].first_failure);
        failures += w[t].failures;
        num_ecdh += w[t].num_ecdh;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    print_message("%d threads x %d iterations on %d sessions: %.1f s; peak lent %u "
                  "(pool's count %u, open %u)\n",
                  NUM_THREADS, NUM_ITERS, POOL_SESSIONS,
                  (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
                  atomic_load(&max_holding), atomic_load(&max_num_lent),
                  atomic_load(&max_num_open));

    assert_int_equal(failures, 0);
    assert_int_equal(num_ecdh, NUM_THREADS * (NUM_ITERS / ECDH_EVERY));
    assert_true(atomic_load(&max_holding) >= 1);
    assert_true(atomic_load(&max_holding) <= POOL_SESSIONS);
    assert_true(atomic_load(&max_num_lent) <= POOL_SESSIONS);
    assert_true(atomic_load(&max_num_open) <= POOL_SESSIONS);
    /* Everything came back. */
    pthread_mutex_lock(&tok.h->lock);
    assert_int_equal(tok.h->num_lent, 0);
    assert_true(tok.h->num_open <= POOL_SESSIONS);
    pthread_mutex_unlock(&tok.h->lock);
}

/* Sessions a test holds itself, and its waiter thread: released and joined
 * by release_held even when an assertion ends the test early, so that one
 * failure cannot leave the pool exhausted (and the next test hanging). */
static hsm_session *held[POOL_SESSIONS];

typedef struct waiter {
    pthread_t thread;
    bool started;
    hsm_session *got;
    int r;
    atomic_int done;
} waiter;

static waiter wt;

static void *
wait_for_session(void *arg)
{
    waiter *w = arg;

    w->r = hsm_session_acquire(tok.h, &w->got);
    atomic_store(&w->done, 1);
    return NULL;
}

static int
release_held(void **state)
{
    (void)state;
    /* First the held sessions, which also wakes a waiter still blocked. */
    for (int i = 0; i < POOL_SESSIONS; i++) {
        hsm_session_release(held[i]);
        held[i] = NULL;
    }
    if (wt.started) {
        pthread_join(wt.thread, NULL);
        wt.started = false;
    }
    hsm_session_release(wt.got);
    wt.got = NULL;
    return 0;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* With every session lent, acquire waits (it neither opens a fifth session nor
 * fails), and it gets the session that comes back. */
static void
test_pool_waits_when_exhausted(void **state)
{
    hsm_session *returned;
    long waited = 0;
    (void)state;

    memset(&wt, 0, sizeof(wt));
    for (int i = 0; i < POOL_SESSIONS; i++)
        assert_hsm(hsm_session_acquire(tok.h, &held[i]), HSM_OK);
    for (int i = 0; i < POOL_SESSIONS; i++) {
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(held[i], held[j]);
    }
    assert_int_equal(pthread_create(&wt.thread, NULL, wait_for_session, &wt), 0);
    wt.started = true;
    sleep_ms(WAIT_CHECK_MS);
    assert_int_equal(atomic_load(&wt.done), 0);
    pthread_mutex_lock(&tok.h->lock);
    assert_int_equal(tok.h->num_lent, POOL_SESSIONS);
    assert_int_equal(tok.h->num_open, POOL_SESSIONS);
    pthread_mutex_unlock(&tok.h->lock);

    returned = held[0];
    held[0] = NULL;
    hsm_session_release(returned);
    while (atomic_load(&wt.done) == 0 && waited < WAKE_TIMEOUT_MS) {
        sleep_ms(WAKE_POLL_MS);
        waited += WAKE_POLL_MS;
    }
    assert_int_equal(atomic_load(&wt.done), 1);
    assert_int_equal(pthread_join(wt.thread, NULL), 0);
    wt.started = false;
    assert_hsm(wt.r, HSM_OK);
    assert_ptr_equal(wt.got, returned);
    pthread_mutex_lock(&tok.h->lock);
    assert_int_equal(tok.h->num_lent, POOL_SESSIONS);
    assert_int_equal(tok.h->num_open, POOL_SESSIONS);
    pthread_mutex_unlock(&tok.h->lock);
}

/* A session marked broken is closed at release, not pooled; its place is
 * free for a new one. */
static void
test_pool_broken_session_closed(void **state)
{
    hsm_session *broken;
    CK_SESSION_HANDLE old;
    CK_SESSION_INFO info;
    unsigned open_before;
    uint8_t buf[RANDOM_LEN];
    (void)state;

    assert_hsm(hsm_session_acquire(tok.h, &held[0]), HSM_OK);
    pthread_mutex_lock(&tok.h->lock);
    open_before = tok.h->num_open;
    pthread_mutex_unlock(&tok.h->lock);
    assert_true(open_before >= 1);
    old = held[0]->handle;
    broken = held[0];
    held[0] = NULL;
    broken->broken = true;
    hsm_session_release(broken);
    pthread_mutex_lock(&tok.h->lock);
    assert_int_equal(tok.h->num_open, open_before - 1);
    assert_int_equal(tok.h->num_lent, 0);
    pthread_mutex_unlock(&tok.h->lock);
    /* The token no longer knows the handle. */
    assert_int_equal(tok.h->p11->C_GetSessionInfo(old, &info), CKR_SESSION_HANDLE_INVALID);

    assert_hsm(hsm_session_acquire(tok.h, &held[0]), HSM_OK);
    assert_hsm(hsm_random(held[0], buf, sizeof(buf)), HSM_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_concurrent_operations),
        cmocka_unit_test_teardown(test_pool_waits_when_exhausted, release_held),
        cmocka_unit_test_teardown(test_pool_broken_session_closed, release_held),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
