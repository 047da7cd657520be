/*
 * audit.c - audit-key (the audit key's public half) and audit-verify (the
 * audit log checked offline, without the HSM).
 */
#include "tools/ceremony/ceremony.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "vault/audit.h"
#include "vault/store.h"

/* The audit key's public half, PEM, for verifying the audit log's
 * checkpoints away from the appliance (docs/AUDIT.md). */
int
cmd_audit_key(hsm_session *s)
{
    uint8_t spki[HSM_SPKI_MAX];
    unsigned char b64[2 * HSM_SPKI_MAX];
    size_t spki_len = 0;
    hsm_key *key = NULL;
    int r, n;

    if ((r = hsm_key_find(s, "vault-audit-sign", &key)) != HSM_OK)
        return ceremony_report("vault-audit-sign", r);
    if ((r = hsm_key_public_spki(s, key, spki, sizeof(spki), &spki_len)) != HSM_OK)
        return ceremony_report("public key", r);
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
int
ceremony_read_pubkey(const char *path, uint8_t *out, size_t cap, size_t *out_len)
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
int
cmd_audit_verify(const struct ceremony_opts *o)
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
    if ((rc = ceremony_read_pubkey(o->pubkey, spki, sizeof(spki), &spki_len)) != EXIT_OK)
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

