/* wallets.c - the wallet engine; see wallets.h. */
#include "vault/wallets.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "vault/wallet/anchors.h"
#include "vault/wallet/apple.h"
#include "vault/wallet/codec.h"
#include "vault/wallet/google.h"
#include "vault/wallet/samsung.h"

_Static_assert(VAULT_LABEL_MAX == HSM_LABEL_MAX, "config labels are HSM labels");
_Static_assert(VAULT_SAMSUNG_KID_MAX == WALLET_SAMSUNG_KID_MAX, "one kid limit");
/* Every configured key fits the format's context (one assertion per format:
 * the limits are equal today, and each may change on its own). */
_Static_assert(VAULT_WALLET_KEYS_MAX <= WALLET_APPLE_KEYS_MAX, "Apple keys fit");
_Static_assert(VAULT_WALLET_KEYS_MAX <= WALLET_GOOGLE_KEYS_MAX, "Google keys fit");
_Static_assert(VAULT_WALLET_KEYS_MAX <= WALLET_SAMSUNG_KEYS_MAX, "Samsung keys fit");

/* One merchant's keys, resolved. */
struct merchant {
    char id[API_ID_MAX + 1];
    struct wallet_apple_key apple[VAULT_WALLET_KEYS_MAX];
    size_t num_apple;
    char google_recipient[VAULT_RECIPIENT_MAX + 1];
    hsm_key *google[VAULT_WALLET_KEYS_MAX];
    size_t num_google;
    char samsung_kid[VAULT_WALLET_KEYS_MAX][VAULT_SAMSUNG_KID_MAX + 1];
    struct wallet_samsung_key samsung[VAULT_WALLET_KEYS_MAX]; /* kid points into samsung_kid */
    size_t num_samsung;
};

struct vault_wallets {
    atomic_int refs;
    struct merchant *m; /* sorted by id, as the config's merchants */
    size_t num;
    uint8_t *apple_roots[WALLET_APPLE_ROOTS_MAX];
    size_t apple_root_lens[WALLET_APPLE_ROOTS_MAX];
    size_t num_apple_roots;
    struct wallet_root_keys google_roots;
    struct wallet_vcache *apple_chains;  /* verified Apple chains */
    struct wallet_vcache *google_keys;   /* verified Google intermediate keys */
    uint64_t apple_window_ms;
    uint64_t samsung_max_age_ms;
    unsigned dpan_lifetime_s;
};

struct load {
    struct vault_wallets *w;
    char *err;
    size_t err_len;
    int failed;
};

/* ---- anchors ------------------------------------------------------------------ */

static int
anchor_visit(void *ctx, const hsm_wallet_obj *obj)
{
    struct load *l = ctx;
    struct vault_wallets *w = l->w;
    const size_t gp_len = sizeof(HSM_ANCHOR_SET_GOOGLE_PREFIX) - 1;

    if (obj->type == HSM_WOBJ_ANCHOR_CERT && strcmp(obj->set, HSM_ANCHOR_SET_APPLE_ROOT) == 0) {
        uint8_t *copy;

        if (w->num_apple_roots == WALLET_APPLE_ROOTS_MAX) {
            snprintf(l->err, l->err_len, "more than %d Apple root anchors in the token",
                     WALLET_APPLE_ROOTS_MAX);
            return l->failed = -1;
        }
        if ((copy = malloc(obj->der_len)) == NULL) {
            snprintf(l->err, l->err_len, "out of memory");
            return l->failed = -1;
        }
        memcpy(copy, obj->der, obj->der_len);
        w->apple_roots[w->num_apple_roots] = copy;
        w->apple_root_lens[w->num_apple_roots++] = obj->der_len;
        return 0;
    }
    if (obj->type == HSM_WOBJ_ANCHOR_KEY &&
        strncmp(obj->set, HSM_ANCHOR_SET_GOOGLE_PREFIX, gp_len) == 0) {
        struct wallet_root_key *k;
        const char *protocol = obj->set + gp_len;
        size_t protocol_len = strlen(protocol);

        if (w->google_roots.num == WALLET_ROOT_KEYS_MAX) {
            snprintf(l->err, l->err_len, "more than %d Google root keys in the token",
                     WALLET_ROOT_KEYS_MAX);
            return l->failed = -1;
        }
        if (protocol_len > WALLET_PROTOCOL_MAX || obj->der_len > WALLET_SPKI_MAX) {
            snprintf(l->err, l->err_len, "Google root key %s: set %s or key too long", obj->label,
                     obj->set);
            return l->failed = -1;
        }
        k = &w->google_roots.keys[w->google_roots.num++];
        memset(k, 0, sizeof(*k));
        memcpy(k->protocol, protocol, protocol_len + 1);
        k->has_expiration = obj->expiration_ms != 0;
        k->expiration_ms = obj->expiration_ms;
        memcpy(k->spki, obj->der, obj->der_len);
        k->spki_len = obj->der_len;
    }
    return 0;
}

/* ---- merchant keys --------------------------------------------------------------- */

/* A string of the config into a field of the same limit. The config loader
 * checked its length, so one that does not fit is a broken invariant. */
static int
copy_field(struct load *l, const char *what, char *dst, size_t size, const char *src)
{
    size_t len = strnlen(src, size);

    if (len == size) {
        snprintf(l->err, l->err_len, "%s longer than %zu bytes", what, size - 1);
        return -1;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

/* The key labelled |label|, of one of |kinds| (ending with 0). */
static int
find_key(struct load *l, hsm_session *s, const char *merchant, const char *what,
         const char *label, const hsm_key_kind *kinds, hsm_key **out)
{
    hsm_key_info info;
    int r = hsm_key_find(s, label, out);

    if (r != HSM_OK) {
        snprintf(l->err, l->err_len, "merchant %s: %s key '%s': %s", merchant, what, label,
                 r == HSM_ERR_KEY_NOT_FOUND ? "no such key in the token" : hsm_strerror(r));
        return -1;
    }
    if ((r = hsm_key_info_get(s, *out, &info)) != HSM_OK) {
        snprintf(l->err, l->err_len, "merchant %s: %s key '%s': %s", merchant, what, label,
                 hsm_strerror(r));
        return -1;
    }
    for (size_t i = 0; kinds[i] != 0; i++)
        if (info.kind == kinds[i])
            return 0;
    snprintf(l->err, l->err_len, "merchant %s: %s key '%s' is a %s key, which cannot open %s packets",
             merchant, what, label, hsm_key_kind_name(info.kind), what);
    return -1;
}

/* publicKeyHash and merchant id from the Apple certificate stored with the
 * key: the packet names the key by the hash of the certificate's SPKI. */
static int
apple_cert_facts(struct load *l, hsm_session *s, const char *merchant, const char *label,
                 struct wallet_apple_key *k)
{
    uint8_t *der = NULL, *spki = NULL;
    const uint8_t *p;
    size_t len = 0;
    X509 *x = NULL;
    int n, r, rc = -1;

    if ((der = malloc(HSM_CERT_MAX)) == NULL) {
        snprintf(l->err, l->err_len, "out of memory");
        return -1;
    }
    if ((r = hsm_key_cert_get(s, k->key, der, HSM_CERT_MAX, &len)) != HSM_OK) {
        snprintf(l->err, l->err_len,
                 "merchant %s: Apple Pay key '%s' has no Apple certificate in the token "
                 "(tokenvault-ceremony applepay-cert): %s",
                 merchant, label, hsm_strerror(r));
        goto out;
    }
    p = der;
    if ((x = d2i_X509(NULL, &p, (long)len)) == NULL || p != der + len ||
        (n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki)) <= 0) {
        snprintf(l->err, l->err_len, "merchant %s: Apple Pay key '%s': its certificate does not parse",
                 merchant, label);
        goto out;
    }
    SHA256(spki, (size_t)n, k->pkh);
    if (wallet_cert_merchant_id(k->merchant_id, der, len) != WALLET_OK) {
        snprintf(l->err, l->err_len,
                 "merchant %s: Apple Pay key '%s': its certificate has no Apple Pay merchant id "
                 "(a Merchant Identity certificate instead of a Payment Processing one?)",
                 merchant, label);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_free(spki);
    X509_free(x);
    free(der);
    return rc;
}

static int
merchant_load(struct load *l, hsm_session *s, const struct vault_merchant *cm, struct merchant *m)
{
    static const hsm_key_kind apple_kinds[] = { HSM_KIND_EC_DERIVE, HSM_KIND_EC_DERIVE_SIGN,
                                                HSM_KIND_RSA_DECRYPT, HSM_KIND_RSA_UNWRAP,
                                                HSM_KIND_RSA_UNWRAP_SIGN, 0 };
    static const hsm_key_kind google_kinds[] = { HSM_KIND_EC_DERIVE, HSM_KIND_EC_DERIVE_SIGN, 0 };
    /* Not RSA_DECRYPT: that path decodes the CEK in host memory (samsung.h). */
    static const hsm_key_kind samsung_kinds[] = { HSM_KIND_RSA_UNWRAP, HSM_KIND_RSA_UNWRAP_SIGN,
                                                  0 };
    const struct vault_merchant_wallets *cw = cm->wallets;

    if (copy_field(l, "merchant id", m->id, sizeof(m->id), cm->id) != 0)
        return -1;
    for (size_t i = 0; i < cw->num_apple; i++) {
        struct wallet_apple_key *k = &m->apple[i];

        if (find_key(l, s, cm->id, "Apple Pay", cw->apple[i], apple_kinds, &k->key) != 0 ||
            apple_cert_facts(l, s, cm->id, cw->apple[i], k) != 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (memcmp(m->apple[j].pkh, k->pkh, sizeof(k->pkh)) == 0) {
                snprintf(l->err, l->err_len,
                         "merchant %s: Apple Pay keys '%s' and '%s' have the same certificate key",
                         cm->id, cw->apple[j], cw->apple[i]);
                return -1;
            }
    }
    m->num_apple = cw->num_apple;
    if (copy_field(l, "Google Pay recipient", m->google_recipient, sizeof(m->google_recipient),
                   cw->google_recipient) != 0)
        return -1;
    for (size_t i = 0; i < cw->num_google; i++)
        if (find_key(l, s, cm->id, "Google Pay", cw->google[i], google_kinds, &m->google[i]) != 0)
            return -1;
    m->num_google = cw->num_google;
    for (size_t i = 0; i < cw->num_samsung; i++) {
        if (find_key(l, s, cm->id, "Samsung Pay", cw->samsung[i].label, samsung_kinds,
                     &m->samsung[i].key) != 0)
            return -1;
        if (copy_field(l, "Samsung Pay kid", m->samsung_kid[i], sizeof(m->samsung_kid[i]),
                       cw->samsung[i].kid) != 0)
            return -1;
        m->samsung[i].kid = m->samsung_kid[i];
    }
    m->num_samsung = cw->num_samsung;
    return 0;
}

int
vault_wallets_load(struct vault_wallets **out, hsm_session *s, const struct vault_config *cfg,
                   char *err, size_t err_len)
{
    struct vault_wallets *w = calloc(1, sizeof(*w));
    struct load l = { .w = w, .err = err, .err_len = err_len };
    bool wants_apple = false, wants_google = false;
    size_t n = 0;
    int r;

    if (w == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    w->apple_window_ms = (uint64_t)cfg->apple_signing_window_seconds * 1000u;
    w->samsung_max_age_ms = (uint64_t)cfg->samsung_max_age_seconds * 1000u;
    w->dpan_lifetime_s = cfg->dpan_lifetime_seconds;
    atomic_init(&w->refs, 1);
    for (size_t i = 0; i < cfg->num_merchants; i++)
        n += cfg->merchants[i].wallets != NULL;
    if (n > 0 && (w->m = calloc(n, sizeof(*w->m))) == NULL) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    /* The config's merchants are sorted by id: so are these. */
    for (size_t i = 0; i < cfg->num_merchants; i++) {
        const struct vault_merchant *cm = &cfg->merchants[i];

        if (cm->wallets == NULL)
            continue;
        if (merchant_load(&l, s, cm, &w->m[w->num]) != 0)
            goto fail;
        wants_apple |= w->m[w->num].num_apple > 0;
        wants_google |= w->m[w->num].num_google > 0;
        w->num++;
    }
    if ((r = hsm_wallet_obj_list(s, anchor_visit, &l)) != HSM_OK || l.failed) {
        if (!l.failed)
            snprintf(err, err_len, "reading the trust anchors: %s", hsm_strerror(r));
        goto fail;
    }
    if (wants_apple && w->num_apple_roots == 0) {
        snprintf(err, err_len, "a merchant takes Apple Pay but the token holds no Apple root "
                               "(tokenvault-ceremony trust-anchor --kind apple-root)");
        goto fail;
    }
    if (wants_google && w->google_roots.num == 0) {
        snprintf(err, err_len, "a merchant takes Google Pay but the token holds no Google root "
                               "key (tokenvault-ceremony trust-anchor --kind google-keys)");
        goto fail;
    }
    if (wallet_vcache_new(&w->apple_chains) != WALLET_OK ||
        wallet_vcache_new(&w->google_keys) != WALLET_OK) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    *out = w;
    return 0;
fail:
    vault_wallets_free(w);
    return -1;
}

struct vault_wallets *
vault_wallets_ref(struct vault_wallets *w)
{
    if (w != NULL)
        atomic_fetch_add(&w->refs, 1);
    return w;
}

unsigned
vault_wallets_dpan_lifetime(const struct vault_wallets *w)
{
    return w->dpan_lifetime_s;
}

void
vault_wallets_free(struct vault_wallets *w)
{
    if (w == NULL || atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    for (size_t i = 0; i < w->num_apple_roots; i++)
        free(w->apple_roots[i]);
    wallet_vcache_free(w->apple_chains);
    wallet_vcache_free(w->google_keys);
    free(w->m);
    free(w);
}

void
vault_wallets_counts(const struct vault_wallets *w, size_t *merchants, size_t *apple_roots,
                     size_t *google_roots)
{
    *merchants = w->num;
    *apple_roots = w->num_apple_roots;
    *google_roots = w->google_roots.num;
}

/* ---- opening ------------------------------------------------------------------- */

static int
cmp_merchant(const void *key, const void *elem)
{
    return strcmp(key, ((const struct merchant *)elem)->id);
}

/* The gateway's expectations, for the fields the packet carries. */
static int
check_expect(const struct wallet_card *c, const struct vault_wallet_expect *e, char *why,
             size_t why_cap)
{
    if (e == NULL)
        return WALLET_OK;
    if (e->has_amount && c->has_amount && c->amount != e->amount) {
        wallet_why(why, why_cap, "amount: the packet says %llu, the gateway expects %llu",
                   (unsigned long long)c->amount, (unsigned long long)e->amount);
        return WALLET_ERR_MISMATCH;
    }
    if (e->has_currency && c->has_currency && strcmp(c->currency, e->currency) != 0) {
        wallet_why(why, why_cap, "currency: the packet says %s, the gateway expects %s",
                   c->currency, e->currency);
        return WALLET_ERR_MISMATCH;
    }
    return WALLET_OK;
}

static int
no_keys(const char *merchant, const char *wallet, char *why, size_t why_cap)
{
    wallet_why(why, why_cap, "merchant %s has no %s keys configured", merchant, wallet);
    return WALLET_ERR_UNKNOWN_KEY;
}

int
vault_wallets_open(struct vault_wallets *w, hsm_session *s, const char *merchant, int wallet,
                   const char *packet, size_t len, uint64_t now_ms,
                   const struct vault_wallet_expect *expect, struct wallet_card *out, char *why,
                   size_t why_cap)
{
    const struct merchant *m;
    struct wallet_card c;
    int r;

    if (w == NULL || s == NULL || merchant == NULL || packet == NULL || out == NULL) {
        wallet_why(why, why_cap, "bad arguments");
        return WALLET_ERR_FORMAT;
    }
    m = w->num > 0 ? bsearch(merchant, w->m, w->num, sizeof(*w->m), cmp_merchant) : NULL;
    memset(&c, 0, sizeof(c));
    switch (wallet) {
    case API_WALLET_APPLE_PAY: {
        const uint8_t *roots[WALLET_APPLE_ROOTS_MAX];
        struct wallet_apple_ctx ctx = {
            .roots = roots,
            .root_lens = w->apple_root_lens,
            .num_roots = w->num_apple_roots,
            .now_ms = now_ms,
            .window_ms = w->apple_window_ms,
            .cache = w->apple_chains,
        };

        if (m == NULL || m->num_apple == 0)
            return no_keys(merchant, "Apple Pay", why, why_cap);
        for (size_t i = 0; i < w->num_apple_roots; i++)
            roots[i] = w->apple_roots[i];
        ctx.keys = m->apple;
        ctx.num_keys = m->num_apple;
        r = wallet_apple_open(s, &ctx, packet, len, &c, why, why_cap);
        break;
    }
    case API_WALLET_GOOGLE_PAY: {
        struct wallet_google_ctx ctx = {
            .roots = &w->google_roots,
            .now_ms = now_ms,
            .cache = w->google_keys,
        };

        if (m == NULL || m->num_google == 0)
            return no_keys(merchant, "Google Pay", why, why_cap);
        ctx.recipient_id = m->google_recipient;
        ctx.keys = m->google;
        ctx.num_keys = m->num_google;
        r = wallet_google_open(s, &ctx, packet, len, &c, why, why_cap);
        break;
    }
    case API_WALLET_SAMSUNG_PAY: {
        struct wallet_samsung_ctx ctx = {
            .now_ms = now_ms,
            .max_age_ms = w->samsung_max_age_ms,
        };

        if (m == NULL || m->num_samsung == 0)
            return no_keys(merchant, "Samsung Pay", why, why_cap);
        ctx.keys = m->samsung;
        ctx.num_keys = m->num_samsung;
        r = wallet_samsung_open(s, &ctx, packet, len, &c, why, why_cap);
        break;
    }
    default:
        wallet_why(why, why_cap, "unknown wallet %d", wallet);
        return WALLET_ERR_UNSUPPORTED;
    }
    if (r == WALLET_OK)
        r = check_expect(&c, expect, why, why_cap);
    if (r == WALLET_OK)
        *out = c;
    wallet_card_wipe(&c);
    return r;
}

/* ---- for tools ------------------------------------------------------------------ */

int
vault_wallets_detect(const char *packet, size_t len)
{
    json_t *root;
    int wallet = 0;
    size_t dots = 0;

    if (packet == NULL || len == 0 || len > WALLET_PACKET_MAX)
        return 0;
    if (packet[0] != '{' && packet[0] != ' ' && packet[0] != '\n' && packet[0] != '\t' &&
        packet[0] != '\r') {
        /* A JWE compact serialization: five base64url parts. */
        for (size_t i = 0; i < len; i++)
            dots += packet[i] == '.';
        return dots == 4 ? API_WALLET_SAMSUNG_PAY : 0;
    }
    if ((root = json_loadb(packet, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return 0;
    if (json_object_get(root, "protocolVersion") != NULL)
        wallet = API_WALLET_GOOGLE_PAY;
    else if (json_object_get(root, "3DS") != NULL)
        wallet = API_WALLET_SAMSUNG_PAY;
    else if (json_is_string(json_object_get(root, "version")) &&
             json_object_get(root, "header") != NULL)
        wallet = API_WALLET_APPLE_PAY;
    json_decref(root);
    return wallet;
}

const struct vault_wallet_check *
vault_wallets_checks(int wallet)
{
    static const struct vault_wallet_check apple[] = {
        { "packet: JSON, base64 and the fields of the version", WALLET_ERR_FORMAT },
        { "version EC_v1 or RSA_v1", WALLET_ERR_UNSUPPORTED },
        { "Apple root in the HSM", WALLET_ERR_NO_ANCHOR },
        { "leaf and intermediate marker OIDs, chain to the pinned root", WALLET_ERR_CHAIN },
        { "certificates valid at the verification time", WALLET_ERR_EXPIRED },
        { "CMS signing time within the window", WALLET_ERR_SIGNING_TIME },
        { "CMS signature over the signed fields (in the HSM)", WALLET_ERR_SIGNATURE },
        { "publicKeyHash names a key of this merchant", WALLET_ERR_UNKNOWN_KEY },
        { "content key and AES-GCM tag (in the HSM)", WALLET_ERR_DECRYPT },
        { "amount and currency as the gateway expects", WALLET_ERR_MISMATCH },
        { NULL, 0 },
    };
    static const struct vault_wallet_check google[] = {
        { "token: JSON, signedKey and signedMessage strings", WALLET_ERR_FORMAT },
        { "protocolVersion ECv1, ECv2 or ECv2SigningOnly", WALLET_ERR_UNSUPPORTED },
        { "Google root keys of the protocol in the HSM", WALLET_ERR_NO_ANCHOR },
        { "this merchant has Google Pay keys", WALLET_ERR_UNKNOWN_KEY },
        { "intermediate key and message signatures for the recipient id (in the HSM)",
          WALLET_ERR_SIGNATURE },
        { "intermediate key and message not expired", WALLET_ERR_EXPIRED },
        { "HMAC tag and AES-CTR with a recipient key (in the HSM)", WALLET_ERR_DECRYPT },
        { NULL, 0 },
    };
    static const struct vault_wallet_check samsung[] = {
        { "packet: paymentCredential JSON or JWE compact, header", WALLET_ERR_FORMAT },
        { "alg RSA1_5/RSA-OAEP/RSA-OAEP-256, enc A128GCM/A256GCM", WALLET_ERR_UNSUPPORTED },
        { "kid names a key of this merchant", WALLET_ERR_UNKNOWN_KEY },
        { "content key unwrapped and AES-GCM tag (in the HSM)", WALLET_ERR_DECRYPT },
        { "utc within the window", WALLET_ERR_EXPIRED },
        { "amount and currency as the gateway expects", WALLET_ERR_MISMATCH },
        { NULL, 0 },
    };

    switch (wallet) {
    case API_WALLET_APPLE_PAY:
        return apple;
    case API_WALLET_GOOGLE_PAY:
        return google;
    case API_WALLET_SAMSUNG_PAY:
        return samsung;
    }
    return NULL;
}
