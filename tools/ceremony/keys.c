/*
 * keys.c - init, keys, probe and wallet-keygen: the vault's key set made in
 * the HSM and listed as officers record it (label, type, attributes, KCV).
 */
#include "tools/ceremony/ceremony.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "api/hex.h"
#include "vault/keybackup.h"

/* The key set of DESIGN.md section 4 that `init` generates, in order. */
static const struct {
    const char *label;
    hsm_key_kind kind;
    const char *role;
} vault_keys[] = {
    { "vault-kek-v1", HSM_KIND_KEK, "KEK: wraps the DEKs" },
    { "vault-fingerprint", HSM_KIND_HMAC, "FPK of stores indexed before wrapped FPKs" },
    { "vault-session-mac", HSM_KIND_HMAC, "SIG: mapping e-mail fingerprints" },
    { "vault-audit-sign", HSM_KIND_EC_SIGN, "AUD: signs audit-log checkpoints" },
};
#define DEK_LABEL "vault-dek-v1"

/* The DEK file: "<wrapped DEK, hex> <KCV, hex>\n". Until the LMDB store keeps
 * the wrapped DEK in its meta database, this file carries it. */
#define DEK_FILE_LEN (2 * HSM_WRAPPED_DEK_LEN + 1 + 2 * HSM_KCV_LEN + 1)

/* Writes the wrapped DEK to a new 0600 file (never over a DEK that may still
 * protect data). */
static int
write_dek(const char *path, const uint8_t wrapped[HSM_WRAPPED_DEK_LEN],
          const uint8_t kcv[HSM_KCV_LEN])
{
    char line[DEK_FILE_LEN + 1];

    if (hex_encode(line, sizeof(line), wrapped, HSM_WRAPPED_DEK_LEN) != 0)
        return EXIT_FAIL;
    line[2 * HSM_WRAPPED_DEK_LEN] = ' ';
    for (size_t i = 0; i < HSM_KCV_LEN; i++)
        snprintf(line + 2 * HSM_WRAPPED_DEK_LEN + 1 + 2 * i, 3, "%02X", kcv[i]);
    line[DEK_FILE_LEN - 1] = '\n';
    return ceremony_write_new(path, line, DEK_FILE_LEN);
}

static int
read_dek(const char *path, uint8_t wrapped[HSM_WRAPPED_DEK_LEN], uint8_t kcv[HSM_KCV_LEN])
{
    char line[DEK_FILE_LEN + 1];
    size_t n = 0;

    if (ceremony_read_small(path, line, sizeof(line), &n) != EXIT_OK)
        return EXIT_FAIL;
    if (n != DEK_FILE_LEN || line[2 * HSM_WRAPPED_DEK_LEN] != ' ' || line[n - 1] != '\n' ||
        hex_decode(wrapped, HSM_WRAPPED_DEK_LEN, line) != 0 ||
        hex_decode(kcv, HSM_KCV_LEN, line + 2 * HSM_WRAPPED_DEK_LEN + 1) != 0) {
        ceremony_err("%s: not a wrapped-DEK file", path);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int
cmd_init(hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    hsm_key *key = NULL, *kek = NULL, *dek = NULL;
    int r, rc;

    for (size_t i = 0; i < sizeof(vault_keys) / sizeof(vault_keys[0]); i++) {
        r = hsm_key_generate(s, vault_keys[i].kind, vault_keys[i].label, &key);
        if (r != HSM_OK)
            return ceremony_report(vault_keys[i].label, r);
        if (vault_keys[i].kind == HSM_KIND_KEK)
            kek = key;
    }
    /* Without --dek, tokenvaultd makes DEK 1 at its first start and keeps it
     * wrapped in its store; --dek makes one here, for a token that has no
     * store yet to check (the file is the only copy). */
    if (o->dek_file != NULL) {
        r = hsm_dek_generate(s, kek, wrapped, kcv);
        if (r != HSM_OK)
            return ceremony_report("DEK generation", r);
        rc = write_dek(o->dek_file, wrapped, kcv);
        if (rc != EXIT_OK)
            return rc;
        r = hsm_dek_load(s, kek, DEK_LABEL, wrapped, sizeof(wrapped), kcv, &dek);
        if (r != HSM_OK)
            return ceremony_report("DEK unwrap", r);
    }
    printf("generated in the HSM:\n\n");
    for (size_t i = 0; i < sizeof(vault_keys) / sizeof(vault_keys[0]); i++) {
        r = hsm_key_find(s, vault_keys[i].label, &key);
        if (r != HSM_OK)
            return ceremony_report(vault_keys[i].label, r);
        if ((rc = ceremony_print_key(s, key, vault_keys[i].role)) != EXIT_OK)
            return rc;
    }
    if (dek == NULL) {
        printf("\nno DEK made here: tokenvaultd makes DEK 1 at its first start and keeps it\n"
               "wrapped under vault-kek-v1 in its store\n");
        return EXIT_OK;
    }
    if ((rc = ceremony_print_key(s, dek, "DEK: encrypts card records (session object, unwrapped from the KEK)")) !=
        EXIT_OK)
        return rc;
    printf("\nwrapped DEK (AES-KWP under vault-kek-v1) written to %s\n", o->dek_file);
    return EXIT_OK;
}

struct listing {
    hsm_session *s;
    const struct keybackup *from; /* --in: the backup this token was restored from */
    unsigned unsafe;
};

static int
list_visit(void *ctx, hsm_key *key)
{
    struct listing *l = ctx;

    if (ceremony_print_key_from(l->s, key, NULL, l->from) != EXIT_OK)
        l->unsafe++;
    return 0;
}

/* The key backup a token was restored from, for the listing: only labels,
 * kinds and check values are used. Its MAC needs the transport key, which
 * the officers do not rebuild for a review; the listing says so, and the
 * review uses the backup kept in the safe. */
static int
read_restored_from(const char *path, struct keybackup *out)
{
    uint8_t *file = NULL;
    size_t len = 0;
    char when[32] = "?";
    time_t t;
    struct tm tm;
    int rc;

    if ((rc = ceremony_read_backup(path, &file, &len)) != EXIT_OK)
        return rc;
    if (len <= KEYBACKUP_MAC_LEN || keybackup_parse(out, file, len - KEYBACKUP_MAC_LEN) != 0) {
        free(file);
        ceremony_err("%s: not a key backup file", path);
        return EXIT_FAIL;
    }
    free(file);
    t = (time_t)(out->created_ms / 1000u);
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("restored from: %s (key backup of %s, %zu keys; its MAC is checked at restore,\n"
           "               not here: use the copy kept in the safe)\n\n",
           path, when, out->num);
    return EXIT_OK;
}

int
cmd_keys(hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    hsm_key *kek = NULL, *dek = NULL;
    struct listing l = {.s = s};
    struct keybackup from = {0};
    unsigned version = 0;
    int r, rc;

    if (o->in != NULL && (rc = read_restored_from(o->in, &from)) != EXIT_OK)
        return rc;
    l.from = o->in != NULL ? &from : NULL;
    r = hsm_key_list(s, list_visit, &l);
    keybackup_free(&from);
    if (r != HSM_OK)
        return ceremony_report("key list", r);
    if (l.unsafe > 0) {
        printf("\n%u key(s) have unsafe attributes or could not be read: see UNSAFE above\n",
               l.unsafe);
        if (o->in == NULL)
            printf("(on a token restored from a key backup, give that file with --in: its keys\n"
                   "were unwrapped, so none is 'always sensitive')\n");
        return EXIT_UNSAFE;
    }
    if (o->dek_file == NULL)
        return EXIT_OK;
    if ((rc = read_dek(o->dek_file, wrapped, kcv)) != EXIT_OK)
        return rc;
    r = hsm_key_find_latest(s, "vault-kek", &kek, &version);
    if (r != HSM_OK)
        return ceremony_report("vault-kek", r);
    r = hsm_dek_load(s, kek, DEK_LABEL, wrapped, sizeof(wrapped), kcv, &dek);
    if (r != HSM_OK)
        return ceremony_report("DEK unwrap", r);
    return ceremony_print_key(s, dek, NULL);
}

/* Where one step of a wallet format runs on this token, as the probe found:
 * the words of SECURITY.md's per-module table. */
static const char *
where_kdf(hsm_path p)
{
    switch (p) {
    case HSM_PATH_IN_TOKEN: return "token";
    case HSM_PATH_DIGEST_KEY: return "token hashes Z (C_DigestKey); **key in host memory**";
    default: return "not available";
    }
}

static const char *
where_message_key(hsm_path p)
{
    switch (p) {
    case HSM_PATH_IN_TOKEN: return "token (derived key)";
    case HSM_PATH_DIGEST_KEY: return "token (key imported from host memory, then wiped)";
    default: return "not available";
    }
}

static const char *
where_unwrap(hsm_path p)
{
    switch (p) {
    case HSM_PATH_IN_TOKEN: return "token";
    case HSM_PATH_HOST_DECODE: return "token (raw RSA); **OAEP decoding and key in host memory**";
    default: return "not available";
    }
}

static const char *
where_if(int has, const char *yes)
{
    return has ? yes : "not available";
}

/* The rows of SECURITY.md's table, in its order: format, step, where. */
static void
probe_rows(const hsm_probe *p)
{
    const struct {
        const char *format, *step, *where;
    } rows[] = {
        { "all", "signatures (CMS, ECDSA, RSA), trust anchors", where_if(p->has_ecdsa, "token") },
        { "Apple EC_v1", "ECDH with the merchant key: Z", where_if(p->has_ecdh, "token") },
        { "Apple EC_v1", "KDF (SP 800-56A, SHA-256)", where_kdf(p->apple_ec_kdf) },
        { "Apple EC_v1", "AES-256-GCM", where_message_key(p->apple_ec_kdf) },
        { "Apple RSA_v1", "RSA-OAEP-SHA256 unwrap", where_unwrap(p->rsa_oaep_sha256) },
        { "Google ECv1/ECv2", "ECDH with the recipient key: Z", where_if(p->has_ecdh, "token") },
        { "Google ECv1/ECv2", "HKDF-SHA256", where_kdf(p->google_hkdf) },
        { "Google ECv1/ECv2", "HMAC-SHA256 verify, AES-CTR", where_message_key(p->google_hkdf) },
        { "Samsung JWE", "RSA1_5 / RSA-OAEP unwrap of the CEK",
          where_unwrap(p->rsa_pkcs1 == HSM_PATH_IN_TOKEN && p->rsa_oaep_sha1 == HSM_PATH_IN_TOKEN
                           ? HSM_PATH_IN_TOKEN
                           : HSM_PATH_NONE) },
        { "Samsung JWE", "RSA-OAEP-256 unwrap of the CEK",
          /* JWE keys are unwrap-only: no host decoding for them. */
          p->rsa_oaep_sha256 == HSM_PATH_IN_TOKEN ? "token" : "not available (refused)" },
        { "Samsung JWE", "AES-GCM content", where_if(p->has_gcm, "token") },
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        printf("| %s | %s | %s |\n", rows[i].format, rows[i].step, rows[i].where);
}

int
cmd_probe(hsm *h, bool markdown)
{
    const hsm_probe *p = hsm_probe_get(h);
    hsm_token_info ti;

    hsm_token_info_get(h, &ti);
    if (markdown) {
        printf("token: %s %s, Cryptoki %u.%u%s\n", ti.manufacturer, ti.model, ti.cryptoki_major,
               ti.cryptoki_minor, p->reduced_key_attributes ? ", reduced key attributes" : "");
        probe_rows(p);
        return EXIT_OK;
    }
    printf("token:            %s (%s %s, serial %s, Cryptoki %u.%u)\n", ti.label, ti.manufacturer,
           ti.model, ti.serial, ti.cryptoki_major, ti.cryptoki_minor);
    printf("Apple Pay EC_v1:  %s\n", hsm_path_name(p->apple_ec_kdf));
    if (p->apple_in_token_why[0] != '\0')
        printf("  not in token:   %s\n", p->apple_in_token_why);
    printf("Google Pay ECv2:  %s\n", hsm_path_name(p->google_hkdf));
    if (p->google_in_token_why[0] != '\0')
        printf("  not in token:   %s\n", p->google_in_token_why);
    printf("RSA-OAEP-SHA256:  %s\n", hsm_path_name(p->rsa_oaep_sha256));
    printf("RSA-OAEP-SHA1:    %s\n", hsm_path_name(p->rsa_oaep_sha1));
    printf("RSA PKCS#1 v1.5:  %s\n", hsm_path_name(p->rsa_pkcs1));
    printf("key attributes:   %s\n",
           p->reduced_key_attributes
               ? "reduced (no CKA_COPYABLE, CKA_ALLOWED_MECHANISMS; never extractable)"
               : "full");
    printf("missing:          %s\n", p->missing[0] != '\0' ? p->missing : "(none)");
    return EXIT_OK;
}

int
cmd_wallet_keygen(hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t spki[HSM_SPKI_MAX];
    unsigned char b64[2 * HSM_SPKI_MAX];
    size_t spki_len = 0;
    hsm_key_kind kind;
    hsm_key *key = NULL;
    int r, rc;

    if (o->label == NULL || o->kind == NULL) {
        fprintf(stderr, "tokenvault-ceremony: wallet-keygen needs --label and --kind\n");
        return EXIT_USAGE;
    }
    if (strcmp(o->kind, "ec") == 0)
        kind = HSM_KIND_EC_DERIVE;
    else if (strcmp(o->kind, "rsa") == 0)
        kind = HSM_KIND_RSA_UNWRAP;
    else if (strcmp(o->kind, "rsa-decrypt") == 0)
        kind = HSM_KIND_RSA_DECRYPT;
    else {
        fprintf(stderr, "tokenvault-ceremony: --kind is ec, rsa or rsa-decrypt\n");
        return EXIT_USAGE;
    }
    r = hsm_key_generate(s, kind, o->label, &key);
    if (r != HSM_OK)
        return ceremony_report(o->label, r);
    if ((rc = ceremony_print_key(s, key, NULL)) != EXIT_OK)
        return rc;
    r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len);
    if (r != HSM_OK)
        return ceremony_report("public key", r);
    EVP_EncodeBlock(b64, spki, (int)spki_len);
    printf("    public key (SPKI, base64): %s\n", b64);
    return EXIT_OK;
}

