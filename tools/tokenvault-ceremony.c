/*
 * tokenvault-ceremony - the security officers' key tool.
 *
 * Every key is generated and used inside the HSM through hsm/; this program
 * only asks for them and prints what an officer records in the ceremony
 * transcript: label, type, attributes and key check value. The PIN comes from
 * a 0600 file named with --pin-file, never from the command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "hsm/hsm.h"
#include "vault/audit.h"
#include "vault/store.h"

/* Exit codes: distinct for usage errors, HSM refusals and missing keys. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_HSM = 3, EXIT_NOT_FOUND = 4 };

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* The key set of DESIGN.md section 4 that `init` generates, in order. */
static const struct {
    const char *label;
    hsm_key_kind kind;
    const char *role;
} vault_keys[] = {
    { "vault-kek-v1", HSM_KIND_KEK, "KEK: wraps the DEKs" },
    { "vault-fingerprint", HSM_KIND_HMAC, "FPK: keyed PAN fingerprints (dedup)" },
    { "vault-session-mac", HSM_KIND_HMAC, "SIG: sale-session and QR token MACs" },
    { "vault-audit-sign", HSM_KIND_EC_SIGN, "AUD: signs audit-log checkpoints" },
};
#define DEK_LABEL "vault-dek-v1"

struct opts {
    const char *module;
    const char *token;
    const char *token_uri;
    const char *pin_file;
    const char *dek_file;
    const char *label;
    const char *kind;
    const char *store;
    const char *pubkey;
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: tokenvault-ceremony [options] COMMAND\n"
            "\n"
            "commands:\n"
            "  init            generate the vault key set in the HSM; with --dek FILE also\n"
            "                  a DEK, written wrapped to FILE (new file, 0600); without it\n"
            "                  tokenvaultd makes the first DEK in its store\n"
            "  keys            list every vault key: type, attributes, key check value\n"
            "                  (with --dek FILE, the DEK too, unwrapped in the HSM)\n"
            "  probe           the token's mechanisms and the path each wallet format takes\n"
            "  audit-key       print the audit key's public half (PEM), to verify the\n"
            "                  audit log's checkpoints offline\n"
            "  audit-verify    check a store's audit log offline: --store DIR (a copy made\n"
            "                  by tokenvault-admin backup, or the live store) and --pubkey\n"
            "                  FILE (from audit-key); needs no HSM\n"
            "  wallet-keygen   generate a wallet key: --label L --kind ec|rsa|rsa-decrypt;\n"
            "                  prints its public key (DER SubjectPublicKeyInfo, base64)\n"
            "\n"
            "options:\n"
            "  --module PATH     PKCS#11 module (default " DEFAULT_MODULE ")\n"
            "  --token LABEL     token label, or --token-uri 'pkcs11:token=...'\n"
            "  --pin-file FILE   user PIN, in a file of mode 0600 owned by you\n"
            "  --dek FILE        wrapped DEK file (init writes it, keys reads it)\n"
            "  --label L, --kind K   for wallet-keygen\n"
            "  --help            this text\n"
            "\n"
            "exit codes: 0 ok, 1 failure, 2 usage, 3 HSM refused or unavailable, 4 key not found\n");
}

static int
exit_for(int err)
{
    switch (err) {
    case HSM_OK: return EXIT_OK;
    case HSM_ERR_INVALID_ARG: return EXIT_USAGE;
    case HSM_ERR_KEY_NOT_FOUND: return EXIT_NOT_FOUND;
    default: return EXIT_HSM;
    }
}

static int
report(const char *what, int err)
{
    fprintf(stderr, "tokenvault-ceremony: %s: %s (%s)\n", what, hsm_strerror(err),
            hsm_last_detail());
    return exit_for(err);
}

static void
print_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02X", b[i]);
}

/* "!name" for false; attributes the object type does not have are left out. */
static void
print_flag(const char *name, int v)
{
    if (v >= 0)
        printf(" %s%s", v ? "" : "!", name);
}

static int
print_key(hsm_session *s, hsm_key *key, const char *role)
{
    hsm_key_info i;
    int r = hsm_key_info_get(s, key, &i);

    if (r != HSM_OK)
        return report(hsm_key_label(key), r);
    printf("%-22s %-11s %-18s KCV ", i.label, hsm_key_kind_name(i.kind), i.type);
    print_hex(i.kcv, sizeof(i.kcv));
    printf("  (%s)\n", i.kcv_method);
    if (role != NULL)
        printf("    role:      %s\n", role);
    printf("    storage:  ");
    print_flag("token", i.token);
    print_flag("private", i.private_);
    print_flag("sensitive", i.sensitive);
    print_flag("extractable", i.extractable);
    print_flag("always-sensitive", i.always_sensitive);
    print_flag("never-extractable", i.never_extractable);
    print_flag("modifiable", i.modifiable);
    print_flag("copyable", i.copyable);
    printf("\n    usage:    ");
    print_flag("encrypt", i.encrypt);
    print_flag("decrypt", i.decrypt);
    print_flag("sign", i.sign);
    print_flag("verify", i.verify);
    print_flag("wrap", i.wrap);
    print_flag("unwrap", i.unwrap);
    print_flag("derive", i.derive);
    printf("\n");
    return EXIT_OK;
}

/* The DEK file: "<wrapped DEK, hex> <KCV, hex>\n". Until the LMDB store keeps
 * the wrapped DEK in its meta database, this file carries it. */
#define DEK_FILE_LEN (2 * HSM_WRAPPED_DEK_LEN + 1 + 2 * HSM_KCV_LEN + 1)

/* Writes the wrapped DEK to a new 0600 file (O_EXCL: never overwrite a DEK
 * that may still protect data). */
static int
write_dek(const char *path, const uint8_t wrapped[HSM_WRAPPED_DEK_LEN],
          const uint8_t kcv[HSM_KCV_LEN])
{
    char line[DEK_FILE_LEN + 1];
    size_t n = 0;
    int fd;

    for (size_t i = 0; i < HSM_WRAPPED_DEK_LEN; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%02x", wrapped[i]);
    line[n++] = ' ';
    for (size_t i = 0; i < HSM_KCV_LEN; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, "%02X", kcv[i]);
    line[n++] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "tokenvault-ceremony: %s: %s\n", path, strerror(errno));
        return EXIT_FAIL;
    }
    if (write(fd, line, n) != (ssize_t)n || fsync(fd) != 0) {
        fprintf(stderr, "tokenvault-ceremony: %s: write failed\n", path);
        close(fd);
        return EXIT_FAIL;
    }
    close(fd);
    return EXIT_OK;
}

static int
hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : out[i / 2] | v);
    }
    return 0;
}

static int
read_dek(const char *path, uint8_t wrapped[HSM_WRAPPED_DEK_LEN], uint8_t kcv[HSM_KCV_LEN])
{
    char line[DEK_FILE_LEN + 2];
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "tokenvault-ceremony: %s: %s\n", path, strerror(errno));
        return EXIT_FAIL;
    }
    n = fread(line, 1, sizeof(line), f);
    fclose(f);
    if (n != DEK_FILE_LEN || line[2 * HSM_WRAPPED_DEK_LEN] != ' ' || line[n - 1] != '\n' ||
        hex_decode(line, wrapped, HSM_WRAPPED_DEK_LEN) != 0 ||
        hex_decode(line + 2 * HSM_WRAPPED_DEK_LEN + 1, kcv, HSM_KCV_LEN) != 0) {
        fprintf(stderr, "tokenvault-ceremony: %s: not a wrapped-DEK file\n", path);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static int
cmd_init(hsm_session *s, const struct opts *o)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    hsm_key *key = NULL, *kek = NULL, *dek = NULL;
    int r, rc;

    for (size_t i = 0; i < sizeof(vault_keys) / sizeof(vault_keys[0]); i++) {
        r = hsm_key_generate(s, vault_keys[i].kind, vault_keys[i].label, &key);
        if (r != HSM_OK)
            return report(vault_keys[i].label, r);
        if (vault_keys[i].kind == HSM_KIND_KEK)
            kek = key;
    }
    /* Without --dek, tokenvaultd makes DEK 1 at its first start and keeps it
     * wrapped in its store; --dek makes one here, for a token that has no
     * store yet to check (the file is the only copy). */
    if (o->dek_file != NULL) {
        r = hsm_dek_generate(s, kek, wrapped, kcv);
        if (r != HSM_OK)
            return report("DEK generation", r);
        rc = write_dek(o->dek_file, wrapped, kcv);
        if (rc != EXIT_OK)
            return rc;
        r = hsm_dek_load(s, kek, DEK_LABEL, wrapped, sizeof(wrapped), kcv, &dek);
        if (r != HSM_OK)
            return report("DEK unwrap", r);
    }
    printf("generated in the HSM:\n\n");
    for (size_t i = 0; i < sizeof(vault_keys) / sizeof(vault_keys[0]); i++) {
        r = hsm_key_find(s, vault_keys[i].label, &key);
        if (r != HSM_OK)
            return report(vault_keys[i].label, r);
        if ((rc = print_key(s, key, vault_keys[i].role)) != EXIT_OK)
            return rc;
    }
    if (dek == NULL) {
        printf("\nno DEK made here: tokenvaultd makes DEK 1 at its first start and keeps it\n"
               "wrapped under vault-kek-v1 in its store\n");
        return EXIT_OK;
    }
    if ((rc = print_key(s, dek, "DEK: encrypts card records (session object, unwrapped from the KEK)")) !=
        EXIT_OK)
        return rc;
    printf("\nwrapped DEK (AES-KWP under vault-kek-v1) written to %s\n", o->dek_file);
    return EXIT_OK;
}

static int
list_visit(void *ctx, hsm_key *key)
{
    hsm_session *s = ctx;

    (void)print_key(s, key, NULL);
    return 0;
}

static int
cmd_keys(hsm_session *s, const struct opts *o)
{
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
    hsm_key *kek = NULL, *dek = NULL;
    unsigned version = 0;
    int r, rc;

    r = hsm_key_list(s, list_visit, s);
    if (r != HSM_OK)
        return report("key list", r);
    if (o->dek_file == NULL)
        return EXIT_OK;
    if ((rc = read_dek(o->dek_file, wrapped, kcv)) != EXIT_OK)
        return rc;
    r = hsm_key_find_latest(s, "vault-kek", &kek, &version);
    if (r != HSM_OK)
        return report("vault-kek", r);
    r = hsm_dek_load(s, kek, DEK_LABEL, wrapped, sizeof(wrapped), kcv, &dek);
    if (r != HSM_OK)
        return report("DEK unwrap", r);
    return print_key(s, dek, NULL);
}

static int
cmd_probe(hsm *h)
{
    const hsm_probe *p = hsm_probe_get(h);
    hsm_token_info ti;

    hsm_token_info_get(h, &ti);
    printf("token:            %s (%s %s, serial %s, Cryptoki %u.%u)\n", ti.label, ti.manufacturer,
           ti.model, ti.serial, ti.cryptoki_major, ti.cryptoki_minor);
    printf("Apple Pay EC_v1:  %s\n", hsm_path_name(p->apple_ec_kdf));
    printf("Google Pay ECv2:  %s\n", hsm_path_name(p->google_hkdf));
    printf("RSA-OAEP-SHA256:  %s\n", hsm_path_name(p->rsa_oaep_sha256));
    printf("RSA-OAEP-SHA1:    %s\n", hsm_path_name(p->rsa_oaep_sha1));
    printf("RSA PKCS#1 v1.5:  %s\n", hsm_path_name(p->rsa_pkcs1));
    printf("missing:          %s\n", p->missing[0] != '\0' ? p->missing : "(none)");
    return EXIT_OK;
}

static int
cmd_wallet_keygen(hsm_session *s, const struct opts *o)
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
        return report(o->label, r);
    if ((rc = print_key(s, key, NULL)) != EXIT_OK)
        return rc;
    r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len);
    if (r != HSM_OK)
        return report("public key", r);
    EVP_EncodeBlock(b64, spki, (int)spki_len);
    printf("    public key (SPKI, base64): %s\n", b64);
    return EXIT_OK;
}

/* The audit key's public half, PEM, for verifying the audit log's
 * checkpoints away from the appliance (docs/AUDIT.md). */
static int
cmd_audit_key(hsm_session *s)
{
    uint8_t spki[HSM_SPKI_MAX];
    unsigned char b64[2 * HSM_SPKI_MAX];
    size_t spki_len = 0;
    hsm_key *key = NULL;
    int r, n;

    if ((r = hsm_key_find(s, "vault-audit-sign", &key)) != HSM_OK)
        return report("vault-audit-sign", r);
    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK)
        return report("public key", r);
    n = EVP_EncodeBlock(b64, spki, (int)spki_len);
    printf("-----BEGIN PUBLIC KEY-----\n");
    /* PEM lines are 64 characters (RFC 7468). */
    for (int i = 0; i < n; i += 64)
        printf("%.*s\n", n - i < 64 ? n - i : 64, b64 + i);
    printf("-----END PUBLIC KEY-----\n");
    return EXIT_OK;
}

/* What audit-verify reports beyond audit_verify's counts: where the last
 * signed checkpoint is. */
static int
last_checkpoint_visit(void *ctx, const MDB_val *key, const MDB_val *val)
{
    uint64_t *last = ctx;
    struct audit_entry e;

    if (audit_decode(&e, val->mv_data, val->mv_size) == 0 && e.type == AUDIT_CHECKPOINT)
        *last = e.seq;
    return 0;
}

/* Reads an EC P-256 public key from PEM into DER SubjectPublicKeyInfo. */
static int
read_pubkey(const char *path, uint8_t *out, size_t cap, size_t *out_len)
{
    FILE *f = fopen(path, "r");
    EVP_PKEY *pk = NULL;
    unsigned char *p = out;
    int n, rc = EXIT_FAIL;

    if (f == NULL) {
        fprintf(stderr, "tokenvault-ceremony: %s: %s\n", path, strerror(errno));
        return EXIT_FAIL;
    }
    pk = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC) {
        fprintf(stderr, "tokenvault-ceremony: %s: not an EC public key in PEM\n", path);
        goto out;
    }
    if ((n = i2d_PUBKEY(pk, NULL)) <= 0 || (size_t)n > cap || i2d_PUBKEY(pk, &p) != n) {
        fprintf(stderr, "tokenvault-ceremony: %s: cannot encode the key\n", path);
        goto out;
    }
    *out_len = (size_t)n;
    rc = EXIT_OK;
out:
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return rc;
}

/* audit-verify: the hash chain from entry 1, every checkpoint's signature
 * under the exported key; the first broken entry is named. */
static int
cmd_audit_verify(const struct opts *o)
{
    uint8_t spki[HSM_SPKI_MAX];
    size_t spki_len = 0;
    uint64_t entries = 0, checkpoints = 0, bad = 0, last_cp = 0;
    struct vault_store *st = NULL;
    struct store_txn t = {0};
    char err[512];
    int r, rc;

    if (o->store == NULL || o->pubkey == NULL) {
        fprintf(stderr, "tokenvault-ceremony: audit-verify needs --store DIR and --pubkey FILE\n");
        return EXIT_USAGE;
    }
    if ((rc = read_pubkey(o->pubkey, spki, sizeof(spki), &spki_len)) != EXIT_OK)
        return rc;
    if (store_open_readonly(&st, o->store, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokenvault-ceremony: %s\n", err);
        return EXIT_FAIL;
    }
    if (store_read_begin(st, &t) != 0) {
        store_close(st);
        fprintf(stderr, "tokenvault-ceremony: %s: cannot read the store\n", o->store);
        return EXIT_FAIL;
    }
    r = audit_verify(&t, spki, spki_len, &entries, &checkpoints, &bad);
    if (r == 0)
        r = store_each(&t, STORE_DB_AUDIT, NULL, 0, last_checkpoint_visit, &last_cp);
    store_read_end(&t);
    store_close(st);
    if (r == -API_STATUS_SIGNATURE_INVALID || r == -API_STATUS_INTERNAL) {
        printf("audit log BROKEN at entry %llu: %s; the %llu entries before it verify\n",
               (unsigned long long)bad,
               r == -API_STATUS_INTERNAL ? "the entry is malformed"
                                         : "its chain link or checkpoint signature does not verify",
               (unsigned long long)entries);
        return EXIT_FAIL;
    }
    if (r != 0) {
        fprintf(stderr, "tokenvault-ceremony: reading the audit log: %s\n",
                api_status_name((unsigned)-r));
        return EXIT_FAIL;
    }
    printf("audit log verified: %llu entries, %llu signed checkpoints\n",
           (unsigned long long)entries, (unsigned long long)checkpoints);
    if (last_cp == 0)
        printf("no checkpoint yet: the chain links, but no entry is signed\n");
    else if (last_cp < entries)
        printf("entries %llu..%llu come after the last checkpoint (%llu): chained, not yet signed\n",
               (unsigned long long)last_cp + 1, (unsigned long long)entries,
               (unsigned long long)last_cp);
    else
        printf("every entry is covered by the last checkpoint (%llu)\n", (unsigned long long)last_cp);
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        { "module", required_argument, NULL, 'm' }, { "token", required_argument, NULL, 't' },
        { "token-uri", required_argument, NULL, 'u' }, { "pin-file", required_argument, NULL, 'p' },
        { "dek", required_argument, NULL, 'd' },    { "label", required_argument, NULL, 'l' },
        { "kind", required_argument, NULL, 'k' },   { "help", no_argument, NULL, 'h' },
        { "store", required_argument, NULL, 's' },  { "pubkey", required_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    struct opts o = { .module = DEFAULT_MODULE };
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    hsm_config cfg;
    hsm *h = NULL;
    const char *cmd;
    int c, r, rc = EXIT_FAIL;

    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.module = optarg; break;
        case 't': o.token = optarg; break;
        case 'u': o.token_uri = optarg; break;
        case 'p': o.pin_file = optarg; break;
        case 'd': o.dek_file = optarg; break;
        case 'l': o.label = optarg; break;
        case 'k': o.kind = optarg; break;
        case 's': o.store = optarg; break;
        case 'P': o.pubkey = optarg; break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    cmd = argv[optind];
    /* Offline: a copy of the store and a public key, no HSM. */
    if (strcmp(cmd, "audit-verify") == 0)
        return cmd_audit_verify(&o);
    if (strcmp(cmd, "init") != 0 && strcmp(cmd, "keys") != 0 && strcmp(cmd, "probe") != 0 &&
        strcmp(cmd, "wallet-keygen") != 0 && strcmp(cmd, "audit-key") != 0) {
        fprintf(stderr, "tokenvault-ceremony: unknown command %s\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((o.token == NULL) == (o.token_uri == NULL) || o.pin_file == NULL) {
        fprintf(stderr, "tokenvault-ceremony: need --pin-file and one of --token or --token-uri\n");
        return EXIT_USAGE;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.module_path = o.module;
    cfg.token_label = o.token;
    cfg.token_uri = o.token_uri;
    cfg.max_sessions = 2;
    if ((r = hsm_pin_source_file(&pin, o.pin_file)) != HSM_OK ||
        (r = hsm_open(&h, &cfg, pin)) != HSM_OK) {
        rc = report("open", r);
        goto out;
    }
    if ((r = hsm_session_acquire(h, &s)) != HSM_OK) {
        rc = report("session", r);
        goto out;
    }
    if (strcmp(cmd, "init") == 0)
        rc = cmd_init(s, &o);
    else if (strcmp(cmd, "keys") == 0)
        rc = cmd_keys(s, &o);
    else if (strcmp(cmd, "probe") == 0)
        rc = cmd_probe(h);
    else if (strcmp(cmd, "audit-key") == 0)
        rc = cmd_audit_key(s);
    else
        rc = cmd_wallet_keygen(s, &o);
out:
    hsm_session_release(s);
    hsm_close(h);
    hsm_pin_source_free(pin);
    return rc;
}
