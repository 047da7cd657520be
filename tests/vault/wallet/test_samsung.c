/*
 * test_samsung.c - Samsung Pay JWE: Samsung's guide sample parsed (and, with
 * no key for its kid, refused as UNKNOWN_KEY), packets made by
 * tests/support/gen_samsung.c for RSA-2048 keys generated inside SoftHSM as
 * the wallet-key ceremony makes them, opened to the expected card, and one
 * hostile variant per check with its exact error. The RFC 7516 section 11.5
 * countermeasure is checked end to end: an RSA1_5 padding failure and a bad
 * tag give the same code, reason and HSM detail. Every test also checks that
 * no session object outlives the call.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hsm/internal.h"
#include "tests/support/gen_samsung.h"
#include "tests/support/spy.h"
#include "tests/support/token.h"
#include "vault/wallet/codec.h"
#include "vault/wallet/samsung.h"

#define SAMPLE "samsung-guide-sample/paymentCredential_sample.json"
#define SAMPLE_KID "BjOukXvhUxYNp8R0Tk6cnNh+YYajexHxtUgEEtyac/M="
/* The sample's part lengths, decoded (its README). */
#define SAMPLE_HEADER_LEN 133
#define SAMPLE_CIPHERTEXT_LEN 186
/* Kids of the generated keys (Samsung's are base64 of a hash; any
 * printable text is a kid). */
#define KID_A "kid-A/Zm9vYmFy+=="
#define KID_B "kid-B/YmFyYmF6+=="
/* The clock of the generated packets, and the window the vault allows. */
#define NOW_MS 1700000000000ULL
#define MAX_AGE_MS (15ULL * 60 * 1000)
#define BUF_MAX 65536
#define SPKI_MAX 1024
#define JWE_PARTS 5
/* Part indices of a JWE compact serialization. */
enum { P_HEADER, P_KEY, P_IV, P_CT, P_TAG };

#define assert_wallet(expr, want)                                                            \
    do {                                                                                     \
        int r_ = (expr);                                                                     \
        if (r_ != (want))                                                                    \
            fail_msg("%s = %s, want %s (why: %s)", #expr, wallet_err_name(r_),              \
                     wallet_err_name(want), why);                                            \
    } while (0)

/* One token and three keys for the whole group: RSA key generation is the
 * slow part, and no test changes a key. */
static tv_token tok;
static hsm_session *s;
static hsm_key *key_a, *key_b;   /* HSM_KIND_RSA_UNWRAP_SIGN, as the ceremony makes them */
static hsm_key *key_decrypt;     /* HSM_KIND_RSA_DECRYPT: allows host OAEP decoding */
static uint8_t spki_a[SPKI_MAX], spki_b[SPKI_MAX], spki_d[SPKI_MAX];
static size_t spki_a_len, spki_b_len, spki_d_len;

static const char PAYLOAD_FMT[] =
    "{\"amount\":\"5000\",\"currency_code\":\"USD\",\"utc\":\"%" PRIu64 "\","
    "\"eci_indicator\":\"5\",\"tokenPAN\":\"4895370012003478\",\"tokenPanExpiration\":\"1229\","
    "\"cryptogram\":\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\"}";

static int
group_setup(void **state)
{
    (void)state;
    if (tv_token_session_setup_spied(&tok, &s) != 0)
        return -1;
    if (hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "spay-a", &key_a) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_RSA_UNWRAP_SIGN, "spay-b", &key_b) != HSM_OK ||
        hsm_key_generate(s, HSM_KIND_RSA_DECRYPT, "spay-decrypt", &key_decrypt) != HSM_OK ||
        hsm_key_public_spki(s, key_a, spki_a, sizeof(spki_a), &spki_a_len) != HSM_OK ||
        hsm_key_public_spki(s, key_b, spki_b, sizeof(spki_b), &spki_b_len) != HSM_OK ||
        hsm_key_public_spki(s, key_decrypt, spki_d, sizeof(spki_d), &spki_d_len) != HSM_OK) {
        fprintf(stderr, "keys: %s\n", hsm_last_detail());
        return -1;
    }
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    tv_token_session_teardown(&tok, &s);
    return 0;
}

/* Session objects (CEKs) alive in the test's session: none may outlive a
 * call, whatever its outcome. */
static unsigned long
session_objects(void)
{
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = { { CKA_TOKEN, &no, sizeof(no) } };
    CK_OBJECT_HANDLE found[64];
    CK_ULONG n = 0, total = 0;

    assert_int_equal(s->h->p11->C_FindObjectsInit(s->handle, t, 1), CKR_OK);
    do {
        assert_int_equal(s->h->p11->C_FindObjects(s->handle, found, 64, &n), CKR_OK);
        total += n;
    } while (n > 0);
    assert_int_equal(s->h->p11->C_FindObjectsFinal(s->handle), CKR_OK);
    return total;
}

static const struct wallet_samsung_key keys_ab[] = { { KID_A, NULL }, { KID_B, NULL } };

static struct wallet_samsung_ctx
ctx_of(struct wallet_samsung_key *keys, size_t n)
{
    struct wallet_samsung_ctx c = { keys, n, NOW_MS, MAX_AGE_MS };

    return c;
}

/* The two generated keys under their kids. */
static void
keys_fill(struct wallet_samsung_key out[2])
{
    memcpy(out, keys_ab, sizeof(keys_ab));
    out[0].key = key_a;
    out[1].key = key_b;
}

static char *
payload_at(uint64_t utc)
{
    char *p = NULL;

    assert_true(asprintf(&p, PAYLOAD_FMT, utc) > 0);
    return p;
}

struct make {
    const char *alg, *enc, *kid, *header, *payload;
    const uint8_t *spki;
    size_t spki_len, cek_len;
    bool cred;
};

/* A generated packet: defaults RSA1_5, A128GCM, key A, the payload at NOW_MS,
 * bare JWE. */
static char *
make(struct make m)
{
    char *def = NULL, *out = NULL;
    struct gen_samsung_params p = { 0 };

    if (m.payload == NULL)
        m.payload = def = payload_at(NOW_MS);
    p.recipient_spki = m.spki != NULL ? m.spki : spki_a;
    p.recipient_spki_len = m.spki != NULL ? m.spki_len : spki_a_len;
    p.kid = m.kid != NULL ? m.kid : KID_A;
    p.alg = m.alg != NULL ? m.alg : "RSA1_5";
    p.enc = m.enc != NULL ? m.enc : "A128GCM";
    p.plaintext = (const uint8_t *)m.payload;
    p.plaintext_len = strlen(m.payload);
    p.header_json = m.header;
    p.cek_len = m.cek_len;
    p.payment_credential = m.cred;
    assert_int_equal(gen_samsung_packet(&p, &out, NULL), 0);
    free(def);
    return out;
}

/* wallet_samsung_open on |packet| with |ctx|; checks no object is left. */
static int
open_packet(const struct wallet_samsung_ctx *ctx, const char *packet, struct wallet_card *card,
            char *why)
{
    unsigned long before = session_objects();
    int r;

    why[0] = '\0';
    r = wallet_samsung_open(s, ctx, packet, strlen(packet), card, why, WALLET_WHY_MAX);
    assert_int_equal(session_objects(), before);
    if (r != WALLET_OK && why[0] == '\0')
        fail_msg("%s without a reason", wallet_err_name(r));
    return r;
}

/* open_packet with keys A and B, expecting |want|. */
static void
expect(const char *packet, int want)
{
    struct wallet_samsung_key keys[2];
    struct wallet_samsung_ctx ctx;
    struct wallet_card card;
    char why[WALLET_WHY_MAX] = "";

    keys_fill(keys);
    ctx = ctx_of(keys, 2);
    assert_wallet(open_packet(&ctx, packet, &card, why), want);
    if (want == WALLET_OK)
        wallet_card_wipe(&card);
}

/* ---- rebuilding a JWE ---------------------------------------------------------- */

struct parts {
    char *p[JWE_PARTS];
};

static void
parts_split(struct parts *out, const char *jwe)
{
    const char *at = jwe;

    for (int i = 0; i < JWE_PARTS; i++) {
        const char *dot = strchr(at, '.');
        size_t n = dot != NULL ? (size_t)(dot - at) : strlen(at);

        assert_true(i == JWE_PARTS - 1 ? dot == NULL : dot != NULL);
        out->p[i] = strndup(at, n);
        at += n + 1;
    }
}

static char *
parts_join(const struct parts *pt)
{
    char *out = NULL;

    assert_true(asprintf(&out, "%s.%s.%s.%s.%s", pt->p[0], pt->p[1], pt->p[2], pt->p[3],
                         pt->p[4]) > 0);
    return out;
}

static void
parts_free(struct parts *pt)
{
    for (int i = 0; i < JWE_PARTS; i++)
        free(pt->p[i]);
}

/* Part |i| replaced by the base64url of |bytes|. */
static void
parts_set(struct parts *pt, int i, const uint8_t *bytes, size_t len)
{
    free(pt->p[i]);
    assert_int_equal(gen_samsung_b64url(bytes, len, &pt->p[i]), 0);
}

/* |jwe| with one bit of decoded part |i| byte |at| flipped. */
static char *
flip(const char *jwe, int i, size_t at)
{
    struct parts pt;
    uint8_t buf[BUF_MAX];
    size_t n = 0;
    char *out;

    parts_split(&pt, jwe);
    assert_int_equal(wallet_b64url_decode(buf, sizeof(buf), &n, pt.p[i], strlen(pt.p[i])), 0);
    assert_true(at < n);
    buf[at] ^= 0x01;
    parts_set(&pt, i, buf, n);
    out = parts_join(&pt);
    parts_free(&pt);
    return out;
}

/* |jwe| with part |i| replaced by |len| random bytes. */
static char *
random_part(const char *jwe, int i, size_t len)
{
    struct parts pt;
    uint8_t buf[BUF_MAX];
    char *out;

    assert_int_equal(RAND_bytes(buf, (int)len), 1);
    parts_split(&pt, jwe);
    parts_set(&pt, i, buf, len);
    out = parts_join(&pt);
    parts_free(&pt);
    return out;
}

/* |jwe| with part |i| replaced by the text |text|. */
static char *
text_part(const char *jwe, int i, const char *text)
{
    struct parts pt;
    char *out;

    parts_split(&pt, jwe);
    free(pt.p[i]);
    pt.p[i] = strdup(text);
    out = parts_join(&pt);
    parts_free(&pt);
    return out;
}

/* A malloc'd copy of |text| with the first |from| replaced by |to|. */
static char *
replace(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    char *r = NULL;

    if (at == NULL)
        fail_msg("\"%s\" not in the text", from);
    assert_true(asprintf(&r, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)) > 0);
    return r;
}

/* ---- Samsung's guide sample ------------------------------------------------------ */

static void
test_sample_parses(void **state)
{
    char *text = tv_vector_read(SAMPLE, NULL);
    struct wallet_samsung_packet p = { 0 }, bare = { 0 };
    struct wallet_samsung_jwe j = { 0 };
    struct wallet_samsung_header h;
    char why[WALLET_WHY_MAX] = "";
    (void)state;

    assert_wallet(wallet_samsung_packet_parse(&p, text, strlen(text), why, sizeof(why)), WALLET_OK);
    assert_non_null(p.json);
    assert_wallet(wallet_samsung_jwe_parse(&j, p.jwe, p.jwe_len, why, sizeof(why)), WALLET_OK);
    assert_int_equal(j.header_len, SAMPLE_HEADER_LEN);
    assert_int_equal(j.encrypted_key_len, 256);
    assert_int_equal(j.iv_len, 12);
    assert_int_equal(j.ciphertext_len, SAMPLE_CIPHERTEXT_LEN);
    assert_int_equal(j.tag_len, 16);
    /* The AAD is the first part as received. */
    assert_int_equal(j.header_b64_len, strchr(p.jwe, '.') - p.jwe);
    assert_ptr_equal(j.header_b64, p.jwe);
    assert_wallet(wallet_samsung_header_parse(&h, j.header, j.header_len, why, sizeof(why)),
                  WALLET_OK);
    assert_int_equal(h.alg, WALLET_SAMSUNG_RSA1_5);
    assert_int_equal(h.enc, WALLET_SAMSUNG_A128GCM);
    assert_string_equal(h.kid, SAMPLE_KID);
    /* The same JWE handed over bare. */
    assert_wallet(wallet_samsung_packet_parse(&bare, p.jwe, p.jwe_len, why, sizeof(why)),
                  WALLET_OK);
    assert_null(bare.json);
    assert_ptr_equal(bare.jwe, p.jwe);
    assert_int_equal(bare.jwe_len, p.jwe_len);
    wallet_samsung_packet_clear(&bare);
    wallet_samsung_jwe_clear(&j);
    wallet_samsung_jwe_clear(NULL);
    wallet_samsung_packet_clear(&p);
    wallet_samsung_packet_clear(NULL);
    free(text);
}

static void
test_sample_unknown_key(void **state)
{
    char *text = tv_vector_read(SAMPLE, NULL);
    struct wallet_samsung_key keys[2];
    struct wallet_samsung_ctx none = ctx_of(NULL, 0), ab;
    struct wallet_card card;
    uint8_t pt[BUF_MAX];
    size_t n = 0;
    char why[WALLET_WHY_MAX] = "";
    (void)state;

    keys_fill(keys);
    ab = ctx_of(keys, 2);
    assert_wallet(open_packet(&none, text, &card, why), WALLET_ERR_UNKNOWN_KEY);
    assert_wallet(open_packet(&ab, text, &card, why), WALLET_ERR_UNKNOWN_KEY);
    assert_null(strstr(why, SAMPLE_KID));
    assert_wallet(wallet_samsung_unseal(s, &ab, text, strlen(text), pt, sizeof(pt), &n, why,
                                        sizeof(why)),
                  WALLET_ERR_UNKNOWN_KEY);
    /* The kid is compared exactly: a prefix or another case is no match. */
    keys[0].kid = "BjOukXvhUxYNp8R0Tk6cnNh+YYajexHxtUgEEtyac/M";
    keys[1].kid = "bjOukXvhUxYNp8R0Tk6cnNh+YYajexHxtUgEEtyac/M=";
    assert_wallet(open_packet(&ab, text, &card, why), WALLET_ERR_UNKNOWN_KEY);
    /* Its kid on one of our keys: the key is not Samsung's, so the tag fails. */
    keys[0].kid = SAMPLE_KID;
    assert_wallet(open_packet(&ab, text, &card, why), WALLET_ERR_DECRYPT);
    free(text);
}

/* ---- generated packets, opened ---------------------------------------------------- */

static void
check_card(const struct wallet_card *c, const char *packet, const char *version)
{
    struct wallet_samsung_packet p = { 0 };
    char why[WALLET_WHY_MAX] = "", want_id[64];
    uint8_t digest[32];
    unsigned int dlen = 0;

    assert_int_equal(c->wallet, API_WALLET_SAMSUNG_PAY);
    assert_string_equal(c->version, version);
    assert_string_equal(c->pan, "4895370012003478");
    assert_int_equal(c->exp_month, 12);
    assert_int_equal(c->exp_year, 2029);
    assert_false(c->has_holder);
    assert_int_equal(c->auth_method, API_AUTH_CRYPTOGRAM_3DS);
    assert_true(c->has_cryptogram);
    assert_string_equal(c->cryptogram, "AgAAAAAABk4DWZ4C28yUQAAAAAA=");
    assert_true(c->has_eci);
    assert_string_equal(c->eci, "5");
    assert_true(c->has_amount);
    assert_true(c->amount == 5000);
    assert_true(c->has_currency);
    assert_string_equal(c->currency, "USD");
    assert_true(c->valid_until_ms == NOW_MS + MAX_AGE_MS);
    assert_false(c->cof_allowed);
    /* "jwe-" and the first 16 bytes of SHA-256 of the JWE compact string,
     * computed here independently. */
    assert_wallet(wallet_samsung_packet_parse(&p, packet, strlen(packet), why, sizeof(why)),
                  WALLET_OK);
    assert_int_equal(EVP_Digest(p.jwe, p.jwe_len, digest, &dlen, EVP_sha256(), NULL), 1);
    strcpy(want_id, "jwe-");
    for (int i = 0; i < 16; i++)
        snprintf(want_id + 4 + 2 * i, 3, "%02x", digest[i]);
    assert_string_equal(c->transaction_id, want_id);
    wallet_samsung_packet_clear(&p);
}

static void
test_open_each_alg_enc(void **state)
{
    static const struct {
        const char *alg, *enc, *version;
    } cases[] = {
        { "RSA1_5", "A128GCM", "RSA1_5/A128GCM" },
        { "RSA1_5", "A256GCM", "RSA1_5/A256GCM" },
        { "RSA-OAEP", "A128GCM", "RSA-OAEP/A128GCM" },
        { "RSA-OAEP", "A256GCM", "RSA-OAEP/A256GCM" },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int cred = 0; cred <= 1; cred++) {
            struct wallet_samsung_key keys[2];
            struct wallet_samsung_ctx ctx;
            struct wallet_card card;
            char why[WALLET_WHY_MAX] = "";
            char *packet = make((struct make){ .alg = cases[i].alg, .enc = cases[i].enc,
                                               .cred = cred });

            tv_spy spy;

            keys_fill(keys);
            ctx = ctx_of(keys, 2);
            /* The content key is unwrapped into the token and used there:
             * no key value crosses the module boundary (spy.h). */
            tv_spy_begin(&spy);
            assert_wallet(open_packet(&ctx, packet, &card, why), WALLET_OK);
            tv_spy_check(&spy, HSM_PATH_IN_TOKEN, false);
            check_card(&card, packet, cases[i].version);
            wallet_card_wipe(&card);
            assert_int_equal(card.pan[0], '\0');
            free(packet);
        }
    }
}

static void
test_unseal_plaintext(void **state)
{
    struct wallet_samsung_key keys[2];
    struct wallet_samsung_ctx ctx;
    char *payload = payload_at(NOW_MS);
    char *packet = make((struct make){ .payload = payload, .cred = true });
    uint8_t pt[BUF_MAX];
    size_t n = 0;
    char why[WALLET_WHY_MAX] = "";
    (void)state;

    keys_fill(keys);
    ctx = ctx_of(keys, 2);
    assert_wallet(wallet_samsung_unseal(s, &ctx, packet, strlen(packet), pt, sizeof(pt), &n, why,
                                        sizeof(why)),
                  WALLET_OK);
    assert_int_equal(n, strlen(payload));
    assert_memory_equal(pt, payload, n);
    OPENSSL_cleanse(pt, n);
    /* A buffer one byte short of the plaintext is refused before any HSM work. */
    assert_wallet(wallet_samsung_unseal(s, &ctx, packet, strlen(packet), pt, strlen(payload) - 1,
                                        &n, why, sizeof(why)),
                  WALLET_ERR_FORMAT);
    /* Arguments. */
    assert_wallet(wallet_samsung_unseal(NULL, &ctx, packet, strlen(packet), pt, sizeof(pt), &n,
                                        why, sizeof(why)),
                  WALLET_ERR_FORMAT);
    assert_wallet(wallet_samsung_unseal(s, NULL, packet, strlen(packet), pt, sizeof(pt), &n, why,
                                        sizeof(why)),
                  WALLET_ERR_FORMAT);
    keys[1].key = NULL;
    assert_wallet(wallet_samsung_unseal(s, &ctx, packet, strlen(packet), pt, sizeof(pt), &n, why,
                                        sizeof(why)),
                  WALLET_ERR_FORMAT);
    ctx = ctx_of(keys, WALLET_SAMSUNG_KEYS_MAX + 1);
    assert_wallet(wallet_samsung_unseal(s, &ctx, packet, strlen(packet), pt, sizeof(pt), &n, why,
                                        sizeof(why)),
                  WALLET_ERR_FORMAT);
    free(packet);
    free(payload);
}

static void
test_kid_selects_key(void **state)
{
    char *for_a = make((struct make){ .kid = KID_A });
    char *for_b = make((struct make){ .kid = KID_B, .spki = spki_b, .spki_len = spki_b_len });
    char *b_named_a = make((struct make){ .kid = KID_A, .spki = spki_b, .spki_len = spki_b_len });
    char *oaep_b_named_a = make((struct make){ .alg = "RSA-OAEP", .kid = KID_A, .spki = spki_b,
                                               .spki_len = spki_b_len });
    struct wallet_samsung_key keys[2], only_b[1];
    struct wallet_samsung_ctx ctx, ctx_b;
    struct wallet_card card;
    char why[WALLET_WHY_MAX] = "";
    (void)state;

    keys_fill(keys);
    ctx = ctx_of(keys, 2);
    assert_wallet(open_packet(&ctx, for_a, &card, why), WALLET_OK);
    wallet_card_wipe(&card);
    assert_wallet(open_packet(&ctx, for_b, &card, why), WALLET_OK);
    wallet_card_wipe(&card);
    /* The order of the keys does not matter: the kid picks. */
    only_b[0] = keys[1];
    keys[1] = keys[0];
    keys[0] = only_b[0];
    assert_wallet(open_packet(&ctx, for_a, &card, why), WALLET_OK);
    wallet_card_wipe(&card);
    /* Only B configured: A's packet names an unknown kid. */
    ctx_b = ctx_of(only_b, 1);
    assert_wallet(open_packet(&ctx_b, for_a, &card, why), WALLET_ERR_UNKNOWN_KEY);
    assert_wallet(open_packet(&ctx_b, for_b, &card, why), WALLET_OK);
    wallet_card_wipe(&card);
    /* Encrypted to B but named A: A's key is used, and fails (no trial of
     * the others). */
    assert_wallet(open_packet(&ctx, b_named_a, &card, why), WALLET_ERR_DECRYPT);
    assert_wallet(open_packet(&ctx, oaep_b_named_a, &card, why), WALLET_ERR_DECRYPT);
    free(for_a);
    free(for_b);
    free(b_named_a);
    free(oaep_b_named_a);
}

/* RSA-OAEP-256: SoftHSM 2.6 has OAEP with SHA-1 only, and the Samsung key is
 * unwrap-only, so the module refuses (UNSUPPORTED, naming the mechanism)
 * rather than decode OAEP on the host; a key that would allow the host
 * decoding (HSM_KIND_RSA_DECRYPT) is refused too. */
static void
test_oaep256(void **state)
{
    char *packet = make((struct make){ .alg = "RSA-OAEP-256" });
    char *packet_d = make((struct make){ .alg = "RSA-OAEP-256", .spki = spki_d,
                                         .spki_len = spki_d_len });
    struct wallet_samsung_key keys[2], dk[1] = { { KID_A, NULL } };
    struct wallet_samsung_ctx ctx, ctx_d;
    struct wallet_samsung_header h;
    struct wallet_samsung_jwe j = { 0 };
    struct wallet_card card;
    char why[WALLET_WHY_MAX] = "", version[API_WALLET_VERSION_MAX + 1];
    (void)state;

    /* It parses: the header is one this vault knows. */
    assert_wallet(wallet_samsung_jwe_parse(&j, packet, strlen(packet), why, sizeof(why)), WALLET_OK);
    assert_wallet(wallet_samsung_header_parse(&h, j.header, j.header_len, why, sizeof(why)),
                  WALLET_OK);
    assert_int_equal(h.alg, WALLET_SAMSUNG_RSA_OAEP_256);
    wallet_samsung_jwe_clear(&j);
    assert_wallet(wallet_samsung_version(version, sizeof(version), h.alg, WALLET_SAMSUNG_A128GCM),
                  WALLET_OK);
    assert_string_equal(version, "OAEP-256/A128GCM");
    assert_wallet(wallet_samsung_version(version, sizeof(version), h.alg, WALLET_SAMSUNG_A256GCM),
                  WALLET_OK);
    assert_string_equal(version, "OAEP-256/A256GCM");

    keys_fill(keys);
    ctx = ctx_of(keys, 2);
    if (hsm_probe_get(tok.h)->rsa_oaep_sha256 == HSM_PATH_IN_TOKEN) {
        /* A token that does OAEP-SHA256 itself opens it in the token. */
        assert_wallet(open_packet(&ctx, packet, &card, why), WALLET_OK);
        wallet_card_wipe(&card);
    } else {
        assert_wallet(open_packet(&ctx, packet, &card, why), WALLET_ERR_UNSUPPORTED);
        assert_non_null(strstr(why, "CKM_RSA_PKCS_OAEP"));
        assert_non_null(strstr(why, "SHA256"));
    }
    dk[0].key = key_decrypt;
    ctx_d = ctx_of(dk, 1);
    assert_wallet(open_packet(&ctx_d, packet_d, &card, why), WALLET_ERR_UNSUPPORTED);
    assert_non_null(strstr(why, "host"));
    free(packet);
    free(packet_d);
}

/* ---- tampering: the tag catches it ----------------------------------------------- */

static void
test_flipped_bytes(void **state)
{
    static const char *const algs[] = { "RSA1_5", "RSA-OAEP" };
    (void)state;

    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        char *packet = make((struct make){ .alg = algs[a] });
        char *bad[] = {
            flip(packet, P_CT, 0), flip(packet, P_CT, 40), flip(packet, P_TAG, 0),
            flip(packet, P_TAG, 15), flip(packet, P_IV, 0), flip(packet, P_IV, 11),
            flip(packet, P_KEY, 0), flip(packet, P_KEY, 100), flip(packet, P_KEY, 255),
        };

        expect(packet, WALLET_OK);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            expect(bad[i], WALLET_ERR_DECRYPT);
            free(bad[i]);
        }
        free(packet);
    }
}

/* The protected header is the AAD, byte for byte as received: a header that
 * means the same (members reordered) or differs in a member nobody reads
 * ("typ") still fails the tag. */
static void
test_header_is_aad(void **state)
{
    static const char same[] = "{\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\",\"alg\":\"RSA1_5\","
                               "\"channelSecurityContext\":\"RSA_PKI\",\"typ\":\"JOSE\"}";
    char *packet = make((struct make){ 0 });
    struct parts pt;
    uint8_t hdr[WALLET_SAMSUNG_HEADER_MAX];
    size_t n = 0;
    char *typ_changed, *reordered, *text;
    (void)state;

    parts_split(&pt, packet);
    assert_int_equal(wallet_b64url_decode(hdr, sizeof(hdr), &n, pt.p[0], strlen(pt.p[0])), 0);
    text = strndup((const char *)hdr, n);
    typ_changed = replace(text, "JOSE", "JOSF");
    parts_set(&pt, P_HEADER, (const uint8_t *)typ_changed, strlen(typ_changed));
    free(typ_changed);
    typ_changed = parts_join(&pt);
    parts_set(&pt, P_HEADER, (const uint8_t *)same, strlen(same));
    reordered = parts_join(&pt);
    expect(typ_changed, WALLET_ERR_DECRYPT);
    expect(reordered, WALLET_ERR_DECRYPT);
    parts_free(&pt);
    free(typ_changed);
    free(reordered);
    free(text);
    free(packet);
}

/* RFC 7516 section 11.5: an RSA1_5 encrypted key that is garbage (no valid
 * padding) must fail exactly like a bad tag: same code, same reason, and
 * the same last HSM detail (what a log would show), because both failures
 * come out of the same GCM call. */
static void
test_rsa1_5_no_oracle(void **state)
{
    struct wallet_samsung_key keys[2];
    struct wallet_samsung_ctx ctx;
    struct wallet_card card;
    char why_tag[WALLET_WHY_MAX] = "", why_key[WALLET_WHY_MAX] = "";
    char detail_tag[256], detail_key[256];
    char *packet = make((struct make){ 0 });
    char *bad_tag = flip(packet, P_TAG, 3);
    (void)state;

    keys_fill(keys);
    ctx = ctx_of(keys, 2);
    assert_int_equal(open_packet(&ctx, bad_tag, &card, why_tag), WALLET_ERR_DECRYPT);
    snprintf(detail_tag, sizeof(detail_tag), "%s", hsm_last_detail());
    for (int round = 0; round < 8; round++) {
        char *garbage = random_part(packet, P_KEY, 256);

        assert_int_equal(open_packet(&ctx, garbage, &card, why_key), WALLET_ERR_DECRYPT);
        snprintf(detail_key, sizeof(detail_key), "%s", hsm_last_detail());
        assert_string_equal(why_key, why_tag);
        assert_string_equal(detail_key, detail_tag);
        assert_non_null(strstr(detail_key, "C_Decrypt"));
        free(garbage);
    }
    free(bad_tag);
    free(packet);
}

/* A correctly padded CEK of a length that is no AES key (or not the one
 * enc names): SoftHSM 2.6 cannot report the unwrapped length (HSM-NOTES
 * Q4), so what it does with such a key decides; whatever it does, it must
 * look like a bad tag, or the padding outcome leaks. A 32-byte CEK under
 * A128GCM whose content really is AES-256 opens: the sender chose a
 * stronger key than it named, and anyone can make a packet for the
 * merchant's public key anyway (Samsung signs nothing). */
static void
test_cek_length(void **state)
{
    static const size_t odd[] = { 1, 5, 15, 17, 20, 31, 33, 48, 64 };
    static const char *const algs[] = { "RSA1_5", "RSA-OAEP" };
    (void)state;

    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        char why_tag[WALLET_WHY_MAX] = "";
        struct wallet_samsung_key keys[2];
        struct wallet_samsung_ctx ctx;
        struct wallet_card card;
        char *packet = make((struct make){ .alg = algs[a] });
        char *bad_tag = flip(packet, P_TAG, 0);

        keys_fill(keys);
        ctx = ctx_of(keys, 2);
        assert_int_equal(open_packet(&ctx, bad_tag, &card, why_tag), WALLET_ERR_DECRYPT);
        for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
            char why[WALLET_WHY_MAX] = "";
            char *p = make((struct make){ .alg = algs[a], .cek_len = odd[i] });

            assert_wallet(open_packet(&ctx, p, &card, why), WALLET_ERR_DECRYPT);
            assert_string_equal(why, why_tag);
            free(p);
        }
        {
            char why[WALLET_WHY_MAX] = "";
            char *p24 = make((struct make){ .alg = algs[a], .cek_len = 24 });
            char *p32 = make((struct make){ .alg = algs[a], .cek_len = 32 });
            char *p16 = make((struct make){ .alg = algs[a], .enc = "A256GCM", .cek_len = 16 });
            int r24 = open_packet(&ctx, p24, &card, why);

            /* AES-192 content under "A128GCM": opens where the token takes
             * the key as it comes, never fails any other way. */
            /* A content key of the other AES size opens on a token that
             * cannot tell an unwrapped key's length (SoftHSM 2.6 reads
             * CKA_VALUE_LEN 0) and is refused, like any wrong key, on one
             * that can (NSS softokn). */
            int want_other = tok.nss ? WALLET_ERR_DECRYPT : WALLET_OK;

            if (r24 == WALLET_OK)
                wallet_card_wipe(&card);
            else
                assert_wallet(r24, WALLET_ERR_DECRYPT);
            assert_wallet(open_packet(&ctx, p32, &card, why), want_other);
            wallet_card_wipe(&card);
            assert_wallet(open_packet(&ctx, p16, &card, why), want_other);
            wallet_card_wipe(&card);
            free(p24);
            free(p32);
            free(p16);
        }
        free(bad_tag);
        free(packet);
    }
}

/* ---- the header ------------------------------------------------------------------- */

static void
test_header_unsupported(void **state)
{
    static const char *const headers[] = {
        "{\"alg\":\"RSA-OAEP-384\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"dir\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"ECDH-ES\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"rsa1_5\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"none\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":5,\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A192GCM\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128CBC-HS256\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":[\"A128GCM\"],\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\",\"zip\":\"DEF\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\",\"crit\":[\"exp\"],\"exp\":1}",
        /* A JWS header is no JWE we take. */
        "{\"alg\":\"RS256\",\"kid\":\"" KID_A "\"}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char *p = make((struct make){ .header = headers[i] });
        char why[WALLET_WHY_MAX] = "";
        struct wallet_samsung_header h;

        assert_wallet(wallet_samsung_header_parse(&h, (const uint8_t *)headers[i],
                                                  strlen(headers[i]), why, sizeof(why)),
                      WALLET_ERR_UNSUPPORTED);
        expect(p, WALLET_ERR_UNSUPPORTED);
        free(p);
    }
}

static void
test_header_format(void **state)
{
    static const char *const headers[] = {
        "",
        "[]",
        "\"RSA1_5\"",
        "not json",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\"}",                         /* no kid */
        /* NOLINTNEXTLINE(bugprone-suspicious-missing-comma): KID_A is pasted in */
        "{\"enc\":\"A128GCM\",\"kid\":\"" KID_A "\"}",                       /* no alg */
        "{\"alg\":\"RSA1_5\",\"kid\":\"" KID_A "\"}",                        /* no enc */
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"a b\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":7}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\\u0000\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\",\"typ\":1}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\",\"channelSecurityContext\":\"\"}",
        /* Members we do not take (see samsung.h). */
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\",\"jku\":\"https://x\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\",\"cty\":\"JWT\"}",
        /* Duplicates, nesting, trailing data. */
        "{\"alg\":\"RSA1_5\",\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\",\"kid\":\"" KID_A "\"}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\",\"x\":[[[[[[[[[1]]]]]]]]]}",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\"} x",
        "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"k\"}{}",
    };
    (void)state;

    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        char why[WALLET_WHY_MAX] = "";
        struct wallet_samsung_header h;

        assert_wallet(wallet_samsung_header_parse(&h, (const uint8_t *)headers[i],
                                                  strlen(headers[i]), why, sizeof(why)),
                      WALLET_ERR_FORMAT);
        assert_true(why[0] != '\0');
        if (headers[i][0] != '\0') {
            char *p = make((struct make){ .header = headers[i] });

            expect(p, WALLET_ERR_FORMAT);
            free(p);
        }
    }
    /* A kid of the longest length parses; one longer does not. */
    {
        char kid[WALLET_SAMSUNG_KID_MAX + 2], hdr[512];
        char why[WALLET_WHY_MAX] = "";
        struct wallet_samsung_header h;

        memset(kid, 'k', sizeof(kid));
        kid[WALLET_SAMSUNG_KID_MAX] = '\0';
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"%s\"}", kid);
        assert_wallet(wallet_samsung_header_parse(&h, (const uint8_t *)hdr, strlen(hdr), why,
                                                  sizeof(why)),
                      WALLET_OK);
        assert_int_equal(strlen(h.kid), WALLET_SAMSUNG_KID_MAX);
        kid[WALLET_SAMSUNG_KID_MAX] = 'k';
        kid[WALLET_SAMSUNG_KID_MAX + 1] = '\0';
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"RSA1_5\",\"enc\":\"A128GCM\",\"kid\":\"%s\"}", kid);
        assert_wallet(wallet_samsung_header_parse(&h, (const uint8_t *)hdr, strlen(hdr), why,
                                                  sizeof(why)),
                      WALLET_ERR_FORMAT);
    }
}

/* ---- the compact serialization -------------------------------------------------- */

static void
test_jwe_structure(void **state)
{
    char *packet = make((struct make){ 0 });
    struct parts pt;
    char *four = NULL, *six = NULL, *bad[24];
    size_t nb = 0;
    uint8_t zeros[512] = { 0 }; /* the longest part made below */
    (void)state;

    parts_split(&pt, packet);
    /* Part count. */
    assert_true(asprintf(&four, "%s.%s.%s.%s", pt.p[0], pt.p[1], pt.p[2], pt.p[3]) > 0);
    assert_true(asprintf(&six, "%s.", packet) > 0);
    bad[nb++] = four;
    bad[nb++] = six;
    assert_true(asprintf(&bad[nb++], "%s.%s", packet, pt.p[4]) > 0);
    assert_true(asprintf(&bad[nb++], ".%s", packet) > 0);
    /* Padding, whitespace, other alphabets. */
    assert_true(asprintf(&bad[nb++], "%s=", packet) > 0);
    {
        char *ivpad = NULL;

        assert_true(asprintf(&ivpad, "%s==", pt.p[P_IV]) > 0);
        bad[nb++] = text_part(packet, P_IV, ivpad);
        free(ivpad);
    }
    assert_true(asprintf(&bad[nb++], "%s ", packet) > 0);
    assert_true(asprintf(&bad[nb++], "%s\n", packet) > 0);
    bad[nb++] = replace(packet, ".", ". ");
    bad[nb++] = text_part(packet, P_TAG, "qTYmdmn4ne93juljNmWkJg+/");
    /* Lengths: IV 16 and 11, key 255 and 257 and empty, tag 15 and 17 and
     * empty, ciphertext empty, header empty. */
    {
        struct parts q;
        static const struct {
            int part;
            size_t len;
        } lens[] = { { P_IV, 16 }, { P_IV, 11 }, { P_KEY, 255 }, { P_KEY, 257 }, { P_KEY, 0 },
                     { P_TAG, 15 }, { P_TAG, 17 }, { P_TAG, 0 }, { P_CT, 0 }, { P_HEADER, 0 },
                     { P_KEY, 512 } };

        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            parts_split(&q, packet);
            parts_set(&q, lens[i].part, zeros, lens[i].len);
            bad[nb++] = parts_join(&q);
            parts_free(&q);
        }
    }
    /* Truncated anywhere: in a part, at a dot. */
    bad[nb++] = strndup(packet, strlen(packet) - 1);
    bad[nb++] = strndup(packet, strlen(pt.p[0]) + 1 + strlen(pt.p[1]));
    bad[nb++] = strndup(packet, strlen(pt.p[0]) + 1 + strlen(pt.p[1]) / 2);
    assert_true(nb <= sizeof(bad) / sizeof(bad[0]));
    for (size_t i = 0; i < nb; i++) {
        struct wallet_samsung_jwe j = { 0 };
        char why[WALLET_WHY_MAX] = "";

        assert_wallet(wallet_samsung_jwe_parse(&j, bad[i], strlen(bad[i]), why, sizeof(why)),
                      WALLET_ERR_FORMAT);
        expect(bad[i], WALLET_ERR_FORMAT);
        free(bad[i]);
    }
    /* Unused low bits of the last group must be zero ("Jg" ends the real
     * tag; "Jh" decodes to the same bytes with a stray bit). */
    {
        struct wallet_samsung_jwe j = { 0 };
        char why[WALLET_WHY_MAX] = "";
        char *sample = tv_vector_read(SAMPLE, NULL);
        char *stray = replace(sample, "NmWkJg\"", "NmWkJh\"");

        expect(stray, WALLET_ERR_FORMAT);
        assert_wallet(wallet_samsung_jwe_parse(&j, "a", 1, why, sizeof(why)), WALLET_ERR_FORMAT);
        assert_wallet(wallet_samsung_jwe_parse(&j, "....", 4, why, sizeof(why)), WALLET_ERR_FORMAT);
        assert_wallet(wallet_samsung_jwe_parse(NULL, packet, strlen(packet), why, sizeof(why)),
                      WALLET_ERR_FORMAT);
        free(stray);
        free(sample);
    }
    parts_free(&pt);
    free(packet);
}

static void
test_packet_size(void **state)
{
    char *packet = make((struct make){ 0 });
    size_t big = WALLET_PACKET_MAX + 1;
    char *huge = malloc(big + 1);
    struct wallet_samsung_packet p = { 0 };
    struct wallet_samsung_jwe j = { 0 };
    char why[WALLET_WHY_MAX] = "";
    struct parts pt;
    (void)state;

    /* A ciphertext that fills the packet: one byte over is refused before
     * JSON or base64 are looked at. */
    parts_split(&pt, packet);
    memset(huge, 'A', big);
    huge[big] = '\0';
    {
        size_t fixed = strlen(pt.p[0]) + strlen(pt.p[1]) + strlen(pt.p[2]) + strlen(pt.p[4]) + 4;
        char *ct = strndup(huge, big - fixed);
        char *over;

        free(pt.p[P_CT]);
        pt.p[P_CT] = ct;
        over = parts_join(&pt);
        assert_int_equal(strlen(over), big);
        expect(over, WALLET_ERR_FORMAT);
        assert_wallet(wallet_samsung_jwe_parse(&j, over, strlen(over), why, sizeof(why)),
                      WALLET_ERR_FORMAT);
        free(over);
    }
    /* JSON packets: the same limit. */
    huge[0] = '{';
    assert_wallet(wallet_samsung_packet_parse(&p, huge, big, why, sizeof(why)), WALLET_ERR_FORMAT);
    expect(huge, WALLET_ERR_FORMAT);
    assert_wallet(wallet_samsung_packet_parse(&p, "", 0, why, sizeof(why)), WALLET_ERR_FORMAT);
    parts_free(&pt);
    free(huge);
    free(packet);
}

/* A packet at the size limit is taken and decrypted: the limit is the
 * packet's, not some smaller internal buffer's. */
static void
test_packet_max(void **state)
{
    char *head = payload_at(NOW_MS), *packet = NULL, *payload;
    size_t head_len = strlen(head), base, extra;
    (void)state;

    packet = make((struct make){ .payload = head });
    base = strlen(packet);
    free(packet);
    /* Every 3 plaintext bytes add 4 characters; start just above the limit
     * and shrink until the packet fits. */
    extra = (WALLET_PACKET_MAX - base) / 4 * 3 + 3;
    payload = malloc(head_len + extra + 16);
    assert_non_null(payload);
    for (;; extra--) {
        snprintf(payload, head_len + extra + 16, "%.*s,\"pad\":\"%*s\"}", (int)(head_len - 1),
                 head, (int)extra, "");
        packet = make((struct make){ .payload = payload });
        if (strlen(packet) <= WALLET_PACKET_MAX)
            break;
        free(packet);
    }
    assert_true(strlen(packet) > WALLET_PACKET_MAX - 4);
    expect(packet, WALLET_OK);
    free(packet);
    free(payload);
    free(head);
}

/* ---- the paymentCredential -------------------------------------------------------- */

static void
test_credential(void **state)
{
    char *good = make((struct make){ .cred = true });
    struct {
        const char *from, *to;
        int want;
    } cases[] = {
        { "\"method\":\"3DS\"", "\"method\":\"ONLINE\"", WALLET_ERR_UNSUPPORTED },
        { "\"method\":\"3DS\"", "\"method\":3", WALLET_ERR_FORMAT },
        { "\"method\":\"3DS\"", "\"methods\":\"3DS\"", WALLET_ERR_FORMAT },
        { "\"type\":\"S\"", "\"type\":\"G\"", WALLET_ERR_UNSUPPORTED },
        { "\"version\":\"100\"", "\"version\":\"200\"", WALLET_ERR_UNSUPPORTED },
        { "\"version\":\"100\"", "\"version\":100", WALLET_ERR_FORMAT },
        { "\"version\":\"100\"", "\"version\":\"100\",\"extra\":1", WALLET_ERR_FORMAT },
        { "\"type\":\"S\",", "", WALLET_ERR_FORMAT },
        { "\"3DS\":{\"data\":\"", "\"3DS\":{\"data\":\"ey\",\"dat\":\"", WALLET_ERR_FORMAT },
        { "\"3DS\":{\"data\":\"", "\"3DS\":{\"data\":5,\"x\":\"", WALLET_ERR_FORMAT },
        { "\"3DS\":{", "\"3DS\":[{", WALLET_ERR_FORMAT },
        /* Duplicates, at each level. */
        { "\"method\":\"3DS\"", "\"method\":\"3DS\",\"method\":\"3DS\"", WALLET_ERR_FORMAT },
        { "\"type\":\"S\"", "\"type\":\"S\",\"type\":\"S\"", WALLET_ERR_FORMAT },
        { "\"3DS\":{", "\"3DS\":{\"data\":\"x\",", WALLET_ERR_FORMAT },
        /* Deep nesting where nothing is read. */
        { "\"card_brand\":\"VI\"", "\"card_brand\":[[[[[[[[[\"VI\"]]]]]]]]]", WALLET_ERR_FORMAT },
        /* Other top-level members are not read (see samsung.h). */
        { "\"card_brand\":\"VI\"", "\"card_brand\":[[[\"VI\"]]],\"wallet_dm_id\":\"x\"",
          WALLET_OK },
        { "\"recurring_payment\":false}", "\"recurring_payment\":false} ", WALLET_OK },
        { "\"recurring_payment\":false}", "\"recurring_payment\":false}x", WALLET_ERR_FORMAT },
        { "\"recurring_payment\":false}", "\"recurring_payment\":false}{}", WALLET_ERR_FORMAT },
    };
    (void)state;

    expect(good, WALLET_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *p = replace(good, cases[i].from, cases[i].to);

        expect(p, cases[i].want);
        free(p);
    }
    {
        /* Leading JSON whitespace still means JSON; a bare JWE has none. */
        char *lead = NULL;

        assert_true(asprintf(&lead, " \n%s", good) > 0);
        expect(lead, WALLET_OK);
        free(lead);
    }
    {
        /* A NUL byte inside the packet. */
        struct wallet_samsung_packet p = { 0 };
        char why[WALLET_WHY_MAX] = "";
        char text[] = "{\"method\":\"3DS\"\0}";

        assert_wallet(wallet_samsung_packet_parse(&p, text, sizeof(text) - 1, why, sizeof(why)),
                      WALLET_ERR_FORMAT);
    }
    free(good);
}

/* ---- the plaintext --------------------------------------------------------------- */

static void
test_payload_parse(void **state)
{
    static const char jwe[] = "a.b.c.d.e";
    struct wallet_card c;
    char why[WALLET_WHY_MAX] = "";
    char *good = payload_at(NOW_MS);
    (void)state;

    assert_wallet(wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA1_5, WALLET_SAMSUNG_A128GCM,
                                               jwe, strlen(jwe), (const uint8_t *)good,
                                               strlen(good), NOW_MS, MAX_AGE_MS, why, sizeof(why)),
                  WALLET_OK);
    assert_string_equal(c.version, "RSA1_5/A128GCM");
    assert_int_equal(strlen(c.transaction_id), WALLET_SAMSUNG_ID_LEN);
    assert_memory_equal(c.transaction_id, "jwe-", 4);
    wallet_card_wipe(&c);
    free(good);

    /* Minimal: no amount, currency, cryptogram or eci: PAN_ONLY. Unknown
     * members are allowed. */
    {
        static const char pt[] = "{\"utc\":\"1700000000000\",\"tokenPAN\":\"520000000000\","
                                 "\"tokenPanExpiration\":\"0100\",\"newField\":{\"a\":1}}";

        assert_wallet(wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA_OAEP,
                                                   WALLET_SAMSUNG_A256GCM, jwe, strlen(jwe),
                                                   (const uint8_t *)pt, strlen(pt), NOW_MS,
                                                   MAX_AGE_MS, why, sizeof(why)),
                      WALLET_OK);
        assert_int_equal(c.auth_method, API_AUTH_PAN_ONLY);
        assert_false(c.has_cryptogram || c.has_eci || c.has_amount || c.has_currency);
        assert_int_equal(c.exp_month, 1);
        assert_int_equal(c.exp_year, 2000);
        assert_string_equal(c.version, "RSA-OAEP/A256GCM");
        assert_string_equal(c.pan, "520000000000");
        wallet_card_wipe(&c);
    }
    /* amount "0" and the largest amount. */
    {
        static const char *const ok[] = {
            "{\"utc\":\"1700000000000\",\"tokenPAN\":\"5200000000000000007\","
            "\"tokenPanExpiration\":\"1299\",\"amount\":\"0\"}",
            "{\"utc\":\"1700000000000\",\"tokenPAN\":\"5200000000000000007\","
            "\"tokenPanExpiration\":\"1299\",\"amount\":\"999999999999999\"}",
        };

        for (size_t i = 0; i < 2; i++) {
            assert_wallet(wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA1_5,
                                                       WALLET_SAMSUNG_A128GCM, jwe, strlen(jwe),
                                                       (const uint8_t *)ok[i], strlen(ok[i]),
                                                       NOW_MS, MAX_AGE_MS, why, sizeof(why)),
                          WALLET_OK);
            assert_true(c.amount == (i == 0 ? 0 : API_AMOUNT_MAX));
            assert_int_equal(c.exp_year, 2099);
            wallet_card_wipe(&c);
        }
    }
}

static void
test_payload_bad(void **state)
{
    static const struct {
        const char *from, *to;
    } cases[] = {
        { "\"4895370012003478\"", "\"48953700120\"" },           /* 11 digits */
        { "\"4895370012003478\"", "\"48953700120034781234\"" },  /* 20 digits */
        { "\"4895370012003478\"", "\"489537001200347A\"" },
        { "\"4895370012003478\"", "4895370012003478" },           /* a number */
        { "\"4895370012003478\"", "\"\"" },
        { "\"4895370012003478\"", "\" 4895370012003478\"" },
        { "\"1229\"", "\"1329\"" },                               /* month 13 */
        { "\"1229\"", "\"0029\"" },                               /* month 0 */
        { "\"1229\"", "\"129\"" },
        { "\"1229\"", "\"12/29\"" },
        { "\"1229\"", "1229" },
        { "\"1229\"", "\"12290\"" },
        { "\"USD\"", "\"usd\"" },
        { "\"USD\"", "\"US\"" },
        { "\"USD\"", "\"USDD\"" },
        { "\"USD\"", "\"U5D\"" },
        { "\"USD\"", "840" },
        { "\"5000\"", "\"-5000\"" },
        { "\"5000\"", "\"50.00\"" },
        { "\"5000\"", "\"05000\"" },
        { "\"5000\"", "5000" },
        { "\"5000\"", "\"1000000000000000\"" },                  /* over API_AMOUNT_MAX */
        { "\"5\"", "\"123\"" },                                   /* eci over API_ECI_MAX */
        { "\"5\"", "\"x\"" },
        { "\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\"", "\"Ag AA\"" },
        { "\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\"", "7" },
        { ",\"cryptogram\":\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\"", "" }, /* eci without cryptogram */
        { "\"utc\"", "\"UTC\"" },                                 /* utc missing */
        { "\"utc\":\"", "\"utc\":\"0" },                          /* leading zero */
        { "\"tokenPAN\"", "\"tokenPan\"" },
        { "\"tokenPAN\"", "\"tokenPanExpiration\":\"0101\",\"tokenPAN\"" }, /* duplicate */
        { "{", "{\"x\":[[[[[[[[[1]]]]]]]]]," },
    };
    char *good = payload_at(NOW_MS);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wallet_card c;
        char why[WALLET_WHY_MAX] = "";
        char *pt = replace(good, cases[i].from, cases[i].to);

        assert_wallet(wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA1_5,
                                                   WALLET_SAMSUNG_A128GCM, "j", 1,
                                                   (const uint8_t *)pt, strlen(pt), NOW_MS,
                                                   MAX_AGE_MS, why, sizeof(why)),
                      WALLET_ERR_FORMAT);
        /* Reasons name the check, never the value. */
        assert_null(strstr(why, "4895370012003478"));
        assert_null(strstr(why, "AgAAAAAABk4"));
        free(pt);
    }
    /* Not JSON, not an object, trailing data. */
    {
        static const char *const texts[] = { "", "[]", "x", "{} x", "{}{}" };

        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
            struct wallet_card c;
            char why[WALLET_WHY_MAX] = "";

            assert_wallet(wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA1_5,
                                                       WALLET_SAMSUNG_A128GCM, "j", 1,
                                                       (const uint8_t *)texts[i], strlen(texts[i]),
                                                       NOW_MS, MAX_AGE_MS, why, sizeof(why)),
                          WALLET_ERR_FORMAT);
        }
    }
    /* Unknown alg/enc numbers. */
    {
        struct wallet_card c;
        char why[WALLET_WHY_MAX] = "";

        assert_wallet(wallet_samsung_payload_parse(&c, 0, WALLET_SAMSUNG_A128GCM, "j", 1,
                                                   (const uint8_t *)good, strlen(good), NOW_MS,
                                                   MAX_AGE_MS, why, sizeof(why)),
                      WALLET_ERR_FORMAT);
        assert_wallet(wallet_samsung_payload_parse(&c, WALLET_SAMSUNG_RSA1_5, 3, "j", 1,
                                                   (const uint8_t *)good, strlen(good), NOW_MS,
                                                   MAX_AGE_MS, why, sizeof(why)),
                      WALLET_ERR_FORMAT);
    }
    free(good);
}

/* The same hostile plaintexts, sealed for real and opened: the error comes
 * out of open unchanged, and the plaintext never stays behind. */
static void
test_open_bad_payload(void **state)
{
    static const struct {
        const char *from, *to;
    } cases[] = {
        { "\"4895370012003478\"", "\"4895\"" },
        { "\"1229\"", "\"1329\"" },
        { "\"USD\"", "\"usd\"" },
        { "{", "not json {" },
    };
    char *good = payload_at(NOW_MS);
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *pt = replace(good, cases[i].from, cases[i].to);
        char *p = make((struct make){ .payload = pt, .cred = true });

        expect(p, WALLET_ERR_FORMAT);
        free(p);
        free(pt);
    }
    free(good);
}

static void
test_utc_window(void **state)
{
    static const struct {
        uint64_t utc;
        int want;
    } cases[] = {
        { NOW_MS - MAX_AGE_MS - 1, WALLET_ERR_EXPIRED },
        { NOW_MS - MAX_AGE_MS, WALLET_OK },
        { NOW_MS, WALLET_OK },
        { NOW_MS + MAX_AGE_MS, WALLET_OK },
        { NOW_MS + MAX_AGE_MS + 1, WALLET_ERR_EXPIRED },
        { 1, WALLET_ERR_EXPIRED },
        { WALLET_EXPIRATION_MAX_MS, WALLET_ERR_EXPIRED },
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct wallet_samsung_key keys[2];
        struct wallet_samsung_ctx ctx;
        struct wallet_card card;
        char why[WALLET_WHY_MAX] = "";
        char *pt = payload_at(cases[i].utc);
        char *p = make((struct make){ .payload = pt });

        keys_fill(keys);
        ctx = ctx_of(keys, 2);
        assert_wallet(open_packet(&ctx, p, &card, why), cases[i].want);
        if (cases[i].want == WALLET_OK) {
            assert_true(card.valid_until_ms == cases[i].utc + MAX_AGE_MS);
            wallet_card_wipe(&card);
        }
        free(p);
        free(pt);
    }
    /* Clocks at the edges of uint64: no wrap-around. */
    {
        struct wallet_card c;
        char why[WALLET_WHY_MAX] = "";
        char *pt = payload_at(1000);

        assert_wallet(wallet_samsung_payload_parse(&c, 1, 1, "j", 1, (const uint8_t *)pt,
                                                   strlen(pt), 500, 600, why, sizeof(why)),
                      WALLET_OK);
        wallet_card_wipe(&c);
        assert_wallet(wallet_samsung_payload_parse(&c, 1, 1, "j", 1, (const uint8_t *)pt,
                                                   strlen(pt), 1000, UINT64_MAX, why, sizeof(why)),
                      WALLET_OK);
        assert_true(c.valid_until_ms == UINT64_MAX);
        wallet_card_wipe(&c);
        assert_wallet(wallet_samsung_payload_parse(&c, 1, 1, "j", 1, (const uint8_t *)pt,
                                                   strlen(pt), UINT64_MAX, 5, why, sizeof(why)),
                      WALLET_ERR_EXPIRED);
        free(pt);
    }
    {
        /* utc longer than 15 digits or past year 9999. */
        struct wallet_card c;
        char why[WALLET_WHY_MAX] = "";
        char *pt = payload_at(WALLET_EXPIRATION_MAX_MS + 1);

        assert_wallet(wallet_samsung_payload_parse(&c, 1, 1, "j", 1, (const uint8_t *)pt,
                                                   strlen(pt), NOW_MS, UINT64_MAX, why,
                                                   sizeof(why)),
                      WALLET_ERR_FORMAT);
        free(pt);
    }
}

/* The same packet always has the same id (the vault refuses it the second
 * time); two packets with the same plaintext do not. */
static void
test_transaction_id(void **state)
{
    char *a = make((struct make){ 0 }), *b = make((struct make){ 0 });
    char *a_cred = NULL;
    struct wallet_samsung_key keys[2];
    struct wallet_samsung_ctx ctx;
    struct wallet_card ca, ca2, cb, cc;
    char why[WALLET_WHY_MAX] = "", id[WALLET_SAMSUNG_ID_LEN + 1];
    (void)state;

    keys_fill(keys);
    ctx = ctx_of(keys, 2);
    assert_wallet(open_packet(&ctx, a, &ca, why), WALLET_OK);
    assert_wallet(open_packet(&ctx, a, &ca2, why), WALLET_OK);
    assert_wallet(open_packet(&ctx, b, &cb, why), WALLET_OK);
    assert_string_equal(ca.transaction_id, ca2.transaction_id);
    assert_string_not_equal(ca.transaction_id, cb.transaction_id);
    /* The id is the JWE's: the same JWE inside a paymentCredential has it too. */
    assert_true(asprintf(&a_cred, "{\"method\":\"3DS\",\"3DS\":{\"type\":\"S\",\"version\":\"100\","
                                  "\"data\":\"%s\"}}",
                         a) > 0);
    assert_wallet(open_packet(&ctx, a_cred, &cc, why), WALLET_OK);
    assert_string_equal(ca.transaction_id, cc.transaction_id);
    assert_wallet(wallet_samsung_transaction_id(id, sizeof(id), a, strlen(a)), WALLET_OK);
    assert_string_equal(id, ca.transaction_id);
    assert_wallet(wallet_samsung_transaction_id(id, WALLET_SAMSUNG_ID_LEN, a, strlen(a)),
                  WALLET_ERR_FORMAT);
    wallet_card_wipe(&ca);
    wallet_card_wipe(&ca2);
    wallet_card_wipe(&cb);
    wallet_card_wipe(&cc);
    free(a);
    free(b);
    free(a_cred);
}

static void
test_names(void **state)
{
    char v[API_WALLET_VERSION_MAX + 1];
    (void)state;

    assert_string_equal(wallet_samsung_alg_name(WALLET_SAMSUNG_RSA1_5), "RSA1_5");
    assert_string_equal(wallet_samsung_alg_name(WALLET_SAMSUNG_RSA_OAEP_256), "RSA-OAEP-256");
    assert_null(wallet_samsung_alg_name(0));
    assert_null(wallet_samsung_alg_name(4));
    assert_string_equal(wallet_samsung_enc_name(WALLET_SAMSUNG_A256GCM), "A256GCM");
    assert_null(wallet_samsung_enc_name(3));
    assert_int_equal(wallet_samsung_version(v, sizeof(v), 1, 1), WALLET_OK);
    assert_int_equal(wallet_samsung_version(v, 10, 1, 1), WALLET_ERR_FORMAT);
    assert_int_equal(wallet_samsung_version(v, sizeof(v), 9, 1), WALLET_ERR_FORMAT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_parses),
        cmocka_unit_test(test_sample_unknown_key),
        cmocka_unit_test(test_open_each_alg_enc),
        cmocka_unit_test(test_unseal_plaintext),
        cmocka_unit_test(test_kid_selects_key),
        cmocka_unit_test(test_oaep256),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_header_is_aad),
        cmocka_unit_test(test_rsa1_5_no_oracle),
        cmocka_unit_test(test_cek_length),
        cmocka_unit_test(test_header_unsupported),
        cmocka_unit_test(test_header_format),
        cmocka_unit_test(test_jwe_structure),
        cmocka_unit_test(test_packet_size),
        cmocka_unit_test(test_packet_max),
        cmocka_unit_test(test_credential),
        cmocka_unit_test(test_payload_parse),
        cmocka_unit_test(test_payload_bad),
        cmocka_unit_test(test_open_bad_payload),
        cmocka_unit_test(test_utc_window),
        cmocka_unit_test(test_transaction_id),
        cmocka_unit_test(test_names),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
