/*
 * shares.c - M-of-N shares of a padded secret (libgfshare), their check
 * values, and the text files officers keep.
 */
#include "vault/shares.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libgfshare.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api/reader.h"
#include "api/hex.h"

/* Domain strings keep a check value from being mistaken for any other
 * SHA-256 the vault computes. */
static const char check_domain[] = "tokenvault share check v1";
static const char secret_domain[] = "tokenvault share secret v1";

static const char share_prefix[] = "tokenvault-share-1:";
static const char set_prefix[] = "tokenvault-share-set-1:";

/* Bytes of a share set: version, kind, id, M, N, N check values, the
 * secret's check. */
#define SET_HEAD_LEN (1u + 1u + SHARE_SET_ID_LEN + 2u)
#define SET_WIRE_MAX (SET_HEAD_LEN + SHARE_COUNT_MAX * SHARE_CHECK_LEN + SHARE_SECRET_CHECK_LEN)

const char *
share_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case SHARE_ERR_ARG: return "SHARE_ERR_ARG";
    case SHARE_ERR_FORMAT: return "SHARE_ERR_FORMAT";
    case SHARE_ERR_SET: return "SHARE_ERR_SET";
    case SHARE_ERR_CHECK: return "SHARE_ERR_CHECK";
    case SHARE_ERR_DUPLICATE: return "SHARE_ERR_DUPLICATE";
    case SHARE_ERR_TOO_FEW: return "SHARE_ERR_TOO_FEW";
    case SHARE_ERR_COMBINE: return "SHARE_ERR_COMBINE";
    case SHARE_ERR_RANDOM: return "SHARE_ERR_RANDOM";
    case SHARE_ERR_NO_MEMORY: return "SHARE_ERR_NO_MEMORY";
    default: return "SHARE_ERR_UNKNOWN";
    }
}

/* libgfshare draws its polynomial coefficients (and the bytes it overwrites
 * its buffers with before freeing them) through this hook, which takes no
 * context and returns nothing: a failure is remembered per thread and the
 * split that saw it fails. Its default is random(3), never acceptable. */
static _Thread_local bool rand_failed;

static void
fill_rand(unsigned char *buf, unsigned int len)
{
    if (RAND_priv_bytes(buf, (int)len) != 1) {
        rand_failed = true;
        memset(buf, 0, len);
    }
}

static void
use_our_rand(void)
{
    gfshare_fill_rand = fill_rand;
    rand_failed = false;
}

void
share_wipe(struct share *sh)
{
    OPENSSL_cleanse(sh, sizeof(*sh));
}

void
share_encode(const struct share *sh, uint8_t out[SHARE_WIRE_LEN])
{
    size_t n = 0;

    out[n++] = SHARE_VERSION;
    out[n++] = sh->kind;
    memcpy(out + n, sh->set_id, SHARE_SET_ID_LEN);
    n += SHARE_SET_ID_LEN;
    out[n++] = sh->index;
    out[n++] = sh->threshold;
    out[n++] = sh->count;
    memcpy(out + n, sh->value, SHARE_SECRET_LEN);
}

static bool
kind_ok(uint8_t kind)
{
    return kind == SHARE_KIND_PIN || kind == SHARE_KIND_TRANSPORT;
}

static bool
split_ok(unsigned threshold, unsigned count)
{
    return threshold >= SHARE_THRESHOLD_MIN && threshold <= count && count <= SHARE_COUNT_MAX;
}

int
share_decode(struct share *out, const uint8_t *in, size_t len)
{
    struct api_reader r, id, val;
    struct share sh;
    uint8_t version = 0;
    int rc = SHARE_ERR_FORMAT;

    memset(&sh, 0, sizeof(sh));
    api_reader_init(&r, in, len);
    if (api_reader_get_u8(&r, &version) != 0 || version != SHARE_VERSION ||
        api_reader_get_u8(&r, &sh.kind) != 0 || !kind_ok(sh.kind) ||
        api_reader_get_bytes(&r, &id, SHARE_SET_ID_LEN) != 0 ||
        api_reader_get_u8(&r, &sh.index) != 0 || api_reader_get_u8(&r, &sh.threshold) != 0 ||
        api_reader_get_u8(&r, &sh.count) != 0 ||
        api_reader_get_bytes(&r, &val, SHARE_SECRET_LEN) != 0 || api_reader_len(&r) != 0)
        goto out;
    if (!split_ok(sh.threshold, sh.count) || sh.index < 1 || sh.index > sh.count)
        goto out;
    memcpy(sh.set_id, id.data, SHARE_SET_ID_LEN);
    memcpy(sh.value, val.data, SHARE_SECRET_LEN);
    *out = sh;
    rc = 0;
out:
    share_wipe(&sh);
    return rc;
}

void
share_check_value(const struct share *sh, uint8_t out[SHARE_CHECK_LEN])
{
    uint8_t wire[SHARE_WIRE_LEN], md[32];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned mdlen = 0;

    share_encode(sh, wire);
    /* A digest that cannot run leaves an all-zero check value, which no
     * share will match: failing closed. */
    memset(md, 0, sizeof(md));
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(c, check_domain, sizeof(check_domain)) != 1 ||
        EVP_DigestUpdate(c, wire, sizeof(wire)) != 1 || EVP_DigestFinal_ex(c, md, &mdlen) != 1)
        memset(md, 0, sizeof(md));
    EVP_MD_CTX_free(c);
    OPENSSL_cleanse(wire, sizeof(wire));
    memcpy(out, md, SHARE_CHECK_LEN);
}

void
share_check_text(const uint8_t check[SHARE_CHECK_LEN], char out[SHARE_CHECK_TEXT_LEN + 1])
{
    snprintf(out, SHARE_CHECK_TEXT_LEN + 1, "%02X%02X-%02X%02X-%02X%02X", check[0], check[1],
             check[2], check[3], check[4], check[5]);
}

static int
secret_check(const uint8_t set_id[SHARE_SET_ID_LEN], const uint8_t padded[SHARE_SECRET_LEN],
             uint8_t out[SHARE_SECRET_CHECK_LEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned mdlen = 0;
    int rc = SHARE_ERR_NO_MEMORY;

    if (c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(c, secret_domain, sizeof(secret_domain)) == 1 &&
        EVP_DigestUpdate(c, set_id, SHARE_SET_ID_LEN) == 1 &&
        EVP_DigestUpdate(c, padded, SHARE_SECRET_LEN) == 1 && EVP_DigestFinal_ex(c, out, &mdlen) == 1)
        rc = 0;
    EVP_MD_CTX_free(c);
    return rc;
}

int
share_split(struct share_set *out_set, struct share *out_shares, uint8_t kind, unsigned threshold,
            unsigned count, const uint8_t *secret, size_t len)
{
    uint8_t padded[SHARE_SECRET_LEN], nrs[SHARE_COUNT_MAX];
    struct share sh[SHARE_COUNT_MAX];
    struct share_set set;
    gfshare_ctx *g = NULL;
    int rc = SHARE_ERR_ARG;

    memset(sh, 0, sizeof(sh));
    memset(&set, 0, sizeof(set));
    memset(padded, 0, sizeof(padded));
    if (!kind_ok(kind) || !split_ok(threshold, count) || secret == NULL || len == 0 ||
        len > SHARE_PAYLOAD_MAX)
        goto out;
    rc = SHARE_ERR_RANDOM;
    padded[0] = (uint8_t)len;
    memcpy(padded + 1, secret, len);
    if (RAND_priv_bytes(padded + 1 + len, (int)(SHARE_SECRET_LEN - 1 - len)) != 1 ||
        RAND_bytes(set.set_id, (int)sizeof(set.set_id)) != 1)
        goto out;
    set.kind = kind;
    set.threshold = (uint8_t)threshold;
    set.count = (uint8_t)count;
    for (unsigned i = 0; i < count; i++)
        nrs[i] = (uint8_t)(i + 1); /* x = 0 is the secret itself */
    use_our_rand();
    if ((g = gfshare_ctx_init_enc(nrs, count, (unsigned char)threshold, SHARE_SECRET_LEN)) == NULL) {
        rc = SHARE_ERR_NO_MEMORY;
        goto out;
    }
    gfshare_ctx_enc_setsecret(g, padded);
    for (unsigned i = 0; i < count; i++) {
        sh[i].kind = kind;
        memcpy(sh[i].set_id, set.set_id, SHARE_SET_ID_LEN);
        sh[i].index = nrs[i];
        sh[i].threshold = set.threshold;
        sh[i].count = set.count;
        gfshare_ctx_enc_getshare(g, (unsigned char)i, sh[i].value);
        share_check_value(&sh[i], set.check[i]);
    }
    gfshare_ctx_free(g);
    if (rand_failed)
        goto out;
    if ((rc = secret_check(set.set_id, padded, set.secret_check)) != 0)
        goto out;
    *out_set = set;
    memcpy(out_shares, sh, count * sizeof(sh[0]));
    rc = 0;
out:
    OPENSSL_cleanse(sh, sizeof(sh));
    OPENSSL_cleanse(padded, sizeof(padded));
    return rc;
}

int
share_verify(const struct share_set *set, const struct share *sh)
{
    uint8_t check[SHARE_CHECK_LEN];

    if (sh->kind != set->kind || CRYPTO_memcmp(sh->set_id, set->set_id, SHARE_SET_ID_LEN) != 0 ||
        sh->threshold != set->threshold || sh->count != set->count || sh->index < 1 ||
        sh->index > set->count)
        return SHARE_ERR_SET;
    share_check_value(sh, check);
    if (CRYPTO_memcmp(check, set->check[sh->index - 1], SHARE_CHECK_LEN) != 0)
        return SHARE_ERR_CHECK;
    return 0;
}

int
share_combine(const struct share_set *set, const struct share *shares, size_t num, uint8_t *out,
              size_t cap, size_t *out_len)
{
    uint8_t nrs[SHARE_COUNT_MAX], padded[SHARE_SECRET_LEN], check[SHARE_SECRET_CHECK_LEN];
    bool seen[SHARE_COUNT_MAX + 1];
    gfshare_ctx *g = NULL;
    size_t m = set->threshold;
    int rc;

    memset(seen, 0, sizeof(seen));
    memset(padded, 0, sizeof(padded));
    if (num < m)
        return SHARE_ERR_TOO_FEW;
    for (size_t i = 0; i < num; i++) {
        if ((rc = share_verify(set, &shares[i])) != 0)
            return rc;
        if (seen[shares[i].index])
            return SHARE_ERR_DUPLICATE;
        seen[shares[i].index] = true;
    }
    /* The first M shares determine the polynomial; the others were checked. */
    for (size_t i = 0; i < m; i++)
        nrs[i] = shares[i].index;
    use_our_rand();
    if ((g = gfshare_ctx_init_dec(nrs, (unsigned)m, SHARE_SECRET_LEN)) == NULL)
        return SHARE_ERR_NO_MEMORY;
    for (size_t i = 0; i < m; i++)
        gfshare_ctx_dec_giveshare(g, (unsigned char)i, (unsigned char *)shares[i].value);
    gfshare_ctx_dec_extract(g, padded);
    gfshare_ctx_free(g);
    rc = secret_check(set->set_id, padded, check);
    if (rc == 0 && CRYPTO_memcmp(check, set->secret_check, sizeof(check)) != 0)
        rc = SHARE_ERR_COMBINE;
    if (rc == 0 && (padded[0] == 0 || padded[0] > SHARE_PAYLOAD_MAX))
        rc = SHARE_ERR_COMBINE;
    if (rc == 0 && padded[0] > cap)
        rc = SHARE_ERR_ARG;
    if (rc == 0) {
        memcpy(out, padded + 1, padded[0]);
        *out_len = padded[0];
    }
    OPENSSL_cleanse(padded, sizeof(padded));
    return rc;
}

/* ---- text files ------------------------------------------------------------ */

static const char *
kind_name(uint8_t kind)
{
    return kind == SHARE_KIND_PIN ? "HSM user PIN" : "backup transport key";
}

int
share_format(const struct share *sh, char *out, size_t cap, size_t *out_len)
{
    uint8_t wire[SHARE_WIRE_LEN], check[SHARE_CHECK_LEN];
    char hex[2 * SHARE_WIRE_LEN + 1], id[2 * SHARE_SET_ID_LEN + 1], ct[SHARE_CHECK_TEXT_LEN + 1];
    int n, rc = SHARE_ERR_ARG;

    share_encode(sh, wire);
    share_check_value(sh, check);
    share_check_text(check, ct);
    if (hex_encode(hex, sizeof(hex), wire, sizeof(wire)) != 0 ||
        hex_encode(id, sizeof(id), sh->set_id, SHARE_SET_ID_LEN) != 0)
        goto out;
    n = snprintf(out, cap,
                 "# tokenvault share of the %s: share %u of %u, any %u rebuild it\n"
                 "# set %s, check value %s\n"
                 "# Keep this file to yourself; never copy it next to another share.\n"
                 "%s%s\n",
                 kind_name(sh->kind), sh->index, sh->count, sh->threshold, id, ct, share_prefix, hex);
    if (n < 0 || (size_t)n >= cap)
        goto out;
    *out_len = (size_t)n;
    rc = 0;
out:
    OPENSSL_cleanse(wire, sizeof(wire));
    OPENSSL_cleanse(hex, sizeof(hex));
    return rc;
}

/* Finds the one data line "<prefix><hex>" among comment ('#') and empty
 * lines and decodes its hex (at most |max| bytes) into |out|. A second data
 * line, any other line, or odd or bad hex is SHARE_ERR_FORMAT. */
static int
parse_hex_line(const char *prefix, const char *text, size_t len, uint8_t *out, size_t max,
               size_t *out_len)
{
    size_t plen = strlen(prefix), pos = 0, found = 0;
    int rc = SHARE_ERR_FORMAT;

    if (len > SHARE_FILE_MAX)
        return SHARE_ERR_FORMAT;
    while (pos < len) {
        const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : len - pos;

        pos += ll + (nl != NULL ? 1 : 0);
        if (ll == 0 || line[0] == '#')
            continue;
        if (found++ != 0 || ll < plen || memcmp(line, prefix, plen) != 0)
            return SHARE_ERR_FORMAT;
        ll -= plen;
        line += plen;
        if (ll % 2 != 0 || ll / 2 > max || memchr(line, '\0', ll) != NULL ||
            hex_decode(out, ll / 2, line) != 0)
            return SHARE_ERR_FORMAT;
        *out_len = ll / 2;
        rc = 0;
    }
    return rc;
}

int
share_parse(struct share *out, const char *text, size_t len)
{
    uint8_t wire[SHARE_WIRE_LEN];
    size_t n = 0;
    int rc = parse_hex_line(share_prefix, text, len, wire, sizeof(wire), &n);

    if (rc == 0)
        rc = share_decode(out, wire, n);
    OPENSSL_cleanse(wire, sizeof(wire));
    return rc;
}

static size_t
set_encode(const struct share_set *set, uint8_t *out)
{
    size_t n = 0;

    out[n++] = SHARE_VERSION;
    out[n++] = set->kind;
    memcpy(out + n, set->set_id, SHARE_SET_ID_LEN);
    n += SHARE_SET_ID_LEN;
    out[n++] = set->threshold;
    out[n++] = set->count;
    for (unsigned i = 0; i < set->count; i++, n += SHARE_CHECK_LEN)
        memcpy(out + n, set->check[i], SHARE_CHECK_LEN);
    memcpy(out + n, set->secret_check, SHARE_SECRET_CHECK_LEN);
    return n + SHARE_SECRET_CHECK_LEN;
}

int
share_set_format(const struct share_set *set, char *out, size_t cap, size_t *out_len)
{
    uint8_t wire[SET_WIRE_MAX];
    char hex[2 * SET_WIRE_MAX + 1], id[2 * SHARE_SET_ID_LEN + 1], ct[SHARE_CHECK_TEXT_LEN + 1];
    size_t n, used;
    int w;

    if (!kind_ok(set->kind) || !split_ok(set->threshold, set->count))
        return SHARE_ERR_ARG;
    n = set_encode(set, wire);
    if (hex_encode(hex, sizeof(hex), wire, n) != 0 ||
        hex_encode(id, sizeof(id), set->set_id, SHARE_SET_ID_LEN) != 0)
        return SHARE_ERR_ARG;
    w = snprintf(out, cap,
                 "# tokenvault share set of the %s: %u shares, any %u rebuild it\n"
                 "# set %s. Public: check values only, no share and no secret.\n",
                 kind_name(set->kind), set->count, set->threshold, id);
    if (w < 0 || (size_t)w >= cap)
        return SHARE_ERR_ARG;
    used = (size_t)w;
    for (unsigned i = 0; i < set->count; i++) {
        share_check_text(set->check[i], ct);
        w = snprintf(out + used, cap - used, "# share %u: check value %s\n", i + 1, ct);
        if (w < 0 || (size_t)w >= cap - used)
            return SHARE_ERR_ARG;
        used += (size_t)w;
    }
    w = snprintf(out + used, cap - used, "%s%s\n", set_prefix, hex);
    if (w < 0 || (size_t)w >= cap - used)
        return SHARE_ERR_ARG;
    *out_len = used + (size_t)w;
    return 0;
}

int
share_set_parse(struct share_set *out, const char *text, size_t len)
{
    uint8_t wire[SET_WIRE_MAX], version = 0;
    struct api_reader r, field;
    struct share_set set;
    size_t n = 0;
    int rc;

    if ((rc = parse_hex_line(set_prefix, text, len, wire, sizeof(wire), &n)) != 0)
        return rc;
    memset(&set, 0, sizeof(set));
    api_reader_init(&r, wire, n);
    if (api_reader_get_u8(&r, &version) != 0 || version != SHARE_VERSION ||
        api_reader_get_u8(&r, &set.kind) != 0 || !kind_ok(set.kind) ||
        api_reader_get_bytes(&r, &field, SHARE_SET_ID_LEN) != 0)
        return SHARE_ERR_FORMAT;
    memcpy(set.set_id, field.data, SHARE_SET_ID_LEN);
    if (api_reader_get_u8(&r, &set.threshold) != 0 || api_reader_get_u8(&r, &set.count) != 0 ||
        !split_ok(set.threshold, set.count))
        return SHARE_ERR_FORMAT;
    for (unsigned i = 0; i < set.count; i++) {
        if (api_reader_get_bytes(&r, &field, SHARE_CHECK_LEN) != 0)
            return SHARE_ERR_FORMAT;
        memcpy(set.check[i], field.data, SHARE_CHECK_LEN);
    }
    if (api_reader_get_bytes(&r, &field, SHARE_SECRET_CHECK_LEN) != 0 || api_reader_len(&r) != 0)
        return SHARE_ERR_FORMAT;
    memcpy(set.secret_check, field.data, SHARE_SECRET_CHECK_LEN);
    *out = set;
    return 0;
}
