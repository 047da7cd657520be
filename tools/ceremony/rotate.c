/*
 * rotate.c - the rotate ceremony: a new DEK version (--kind dek), a new
 * session tag key version (--kind stk), a new KEK version with a new DEK,
 * STK and fingerprint key under it (--kind kek), or a new fingerprint key
 * (--kind fpk), made in the HSM and made current in the appliance's store,
 * beside the running service.
 *
 * The new DEK is generated in the HSM, wrapped under the newest KEK and
 * written to the store's meta database with its audit entry, in one
 * transaction (vault/keys.c). tokenvaultd loads it at its next SIGHUP
 * (`systemctl reload tokenvaultd`), seals new records with it, and moves the
 * existing records to it in the background; retired versions keep opening
 * records and never seal one again.
 */
#include "tools/ceremony/ceremony.h"

#include <stdio.h>
#include <string.h>

#include "vault/audit.h"
#include "vault/keys.h"
#include "vault/store.h"

int
cmd_rotate(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    struct vault_audit audit = {0}; /* checkpoints are the service's to sign */
    struct vault_store *st = NULL;
    char err[256], who[API_ID_MAX + 1] = "";
    uint32_t version = 0;
    int r, rc = EXIT_FAIL;

    if (o->kind == NULL || o->store == NULL) {
        ceremony_err("rotate needs --kind dek|stk|kek|fpk and --store DIR (the appliance's "
                     "store)");
        return EXIT_USAGE;
    }
    if (strcmp(o->kind, "dek") != 0 && strcmp(o->kind, "kek") != 0 &&
        strcmp(o->kind, "fpk") != 0 && strcmp(o->kind, "stk") != 0) {
        ceremony_err("rotate --kind %s: dek, stk, kek or fpk", o->kind);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < o->num_officers && strlen(who) + 1 < sizeof(who); i++)
        snprintf(who + strlen(who), sizeof(who) - strlen(who), "%s%s", i ? "," : "", o->officers[i]);
    if (store_open(&st, o->store, 0, err, sizeof(err)) != 0) {
        ceremony_err("%s", err);
        return EXIT_FAIL;
    }
    if (store_writer_start(st, h, 4) != 0) {
        ceremony_err("%s: cannot start a writer", o->store);
        goto out;
    }
    /* A fingerprint-key rotation: the new FPK, current in the store with the
     * marker that makes the service rebuild the index. */
    if (strcmp(o->kind, "fpk") == 0) {
        if ((r = keys_fpk_rotate(h, st, &audit, who[0] != '\0' ? who : "officer", &version, err,
                                 sizeof(err))) != 0) {
            ceremony_err("%s", err);
            rc = r == -API_STATUS_HSM_UNAVAILABLE ? EXIT_HSM : EXIT_FAIL;
            goto out;
        }
        printf("vault-fpk-v%u generated in the HSM, wrapped under the newest KEK, and made "
               "current in %s\n", version, o->store);
        printf("now: systemctl reload tokenvaultd (SIGHUP); the service rebuilds the fingerprint "
               "index in the background (event=fpk_rebuilt when done) and finds duplicates under "
               "either key meanwhile\n");
        rc = EXIT_OK;
        goto out;
    }
    /* A KEK rotation: the new KEK, then a new STK and a new DEK wrapped
     * under it (the keys in use cannot be rewrapped: they are not
     * extractable). */
    if (strcmp(o->kind, "kek") == 0) {
        uint32_t kek = 0;

        if (keys_kek_rotate(s, &kek, err, sizeof(err)) != 0) {
            ceremony_err("%s", err);
            rc = EXIT_HSM;
            goto out;
        }
        printf("vault-kek-v%u generated in the HSM; older KEK versions wrap nothing new\n", kek);
    }
    /* A session tag key: signs the sale sessions and QR requests made from
     * the reload on; the older versions check what they signed until it
     * expires. Nothing to rebuild. */
    if (strcmp(o->kind, "stk") == 0 || strcmp(o->kind, "kek") == 0) {
        if ((r = keys_stk_rotate(h, st, &audit, who[0] != '\0' ? who : "officer", &version, err,
                                 sizeof(err))) != 0) {
            ceremony_err("%s", err);
            rc = r == -API_STATUS_HSM_UNAVAILABLE ? EXIT_HSM : EXIT_FAIL;
            goto out;
        }
        printf("vault-stk-v%u generated in the HSM, wrapped under the newest KEK, and made current "
               "in %s\n", version, o->store);
        if (strcmp(o->kind, "stk") == 0) {
            printf("now: systemctl reload tokenvaultd (SIGHUP) to load it (event=stk_loaded); "
                   "sessions and QR requests signed before keep passing under the version that "
                   "signed them\n");
            rc = EXIT_OK;
            goto out;
        }
    }
    if ((r = keys_dek_rotate(h, st, &audit, who[0] != '\0' ? who : "officer", &version, err,
                             sizeof(err))) != 0) {
        ceremony_err("%s", err);
        rc = r == -API_STATUS_HSM_UNAVAILABLE ? EXIT_HSM : EXIT_FAIL;
        goto out;
    }
    printf("vault-dek-v%u generated in the HSM, wrapped under the newest KEK, and made current in "
           "%s\n", version, o->store);
    printf("older DEK versions are retired: they open records and seal none\n");
    /* A KEK rotation moves the fingerprint key too: the index is rebuilt
     * under a new FPK wrapped under the new KEK, in the same background
     * pass that moves the records to the new DEK. */
    if (strcmp(o->kind, "kek") == 0) {
        uint32_t fpk = 0;

        r = keys_fpk_rotate(h, st, &audit, who[0] != '\0' ? who : "officer", &fpk, err,
                            sizeof(err));
        if (r == -API_STATUS_CONFLICT) {
            printf("the fingerprint key stays under the older KEK for now: %s; then run rotate "
                   "--kind fpk, before the older KEK is retired\n", err);
        } else if (r != 0) {
            ceremony_err("%s", err);
            rc = r == -API_STATUS_HSM_UNAVAILABLE ? EXIT_HSM : EXIT_FAIL;
            goto out;
        } else {
            printf("vault-fpk-v%u generated in the HSM, wrapped under the newest KEK, and made "
                   "current in %s\n", fpk, o->store);
        }
    }
    printf("now: systemctl reload tokenvaultd (SIGHUP) to load it; the service then moves every "
           "record to it in the background (tokenvault_reencrypt_pending goes to 0)\n");
    rc = EXIT_OK;
out:
    store_close(st);
    return rc;
}
