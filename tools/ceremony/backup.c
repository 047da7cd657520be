/*
 * backup.c - backup and restore: the HSM's long-term keys cloned to a second
 * appliance under a transport key that exists only as M-of-N officer shares
 * (docs/OPERATIONS.md, "Key backup and clone").
 *
 * In the HSM: the transport key's trust (set by the SO), every wrap and
 * unwrap, the check values. In host memory: the transport key's bytes, while
 * they are split or rebuilt (shares exist on the host by nature), wiped right
 * after; the backup file's MAC. The file holds only wrapped keys.
 */
#include "tools/ceremony/ceremony.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "vault/keybackup.h"
#include "vault/shares.h"

struct collect {
    hsm_key *keys[KEYBACKUP_KEYS_MAX];
    size_t num;
};

static int
collect_visit(void *ctx, hsm_key *key)
{
    struct collect *c = ctx;

    if (c->num == KEYBACKUP_KEYS_MAX)
        return -1;
    c->keys[c->num++] = key;
    return 0;
}

static int
wrap_all(hsm_session *s, hsm_obj tw, struct keybackup *b)
{
    struct collect *c = calloc(1, sizeof(*c));
    hsm_key_info info;
    int r, rc = EXIT_FAIL;

    if (c == NULL)
        return EXIT_FAIL;
    if ((r = hsm_key_list(s, collect_visit, c)) != HSM_OK) {
        rc = ceremony_report("key list", r);
        goto out;
    }
    if (c->num == 0 || (b->keys = calloc(c->num, sizeof(b->keys[0]))) == NULL) {
        ceremony_err("no key to back up");
        goto out;
    }
    for (b->num = 0; b->num < c->num; b->num++) {
        struct keybackup_key *k = &b->keys[b->num];
        hsm_key *key = c->keys[b->num];

        if ((r = hsm_key_info_get(s, key, &info)) != HSM_OK ||
            (r = ceremony_key_kcv(s, key, &info, k->kcv)) != HSM_OK ||
            (r = hsm_key_backup_wrap(s, tw, key, k->wrapped, sizeof(k->wrapped),
                                     &k->wrapped_len)) != HSM_OK) {
            rc = ceremony_report(hsm_key_label(key), r);
            goto out;
        }
        snprintf(k->label, sizeof(k->label), "%s", info.label);
        k->kind = (uint8_t)info.kind;
        if (info.kind != HSM_KIND_KEK && info.kind != HSM_KIND_HMAC &&
            (r = hsm_key_public_spki(s, key, k->spki, sizeof(k->spki), &k->spki_len)) != HSM_OK) {
            rc = ceremony_report(info.label, r);
            goto out;
        }
        printf("  %-24s %-15s KCV ", k->label, hsm_key_kind_name(info.kind));
        ceremony_print_hex(k->kcv, HSM_KCV_LEN);
        printf("\n");
    }
    rc = EXIT_OK;
out:
    free(c);
    return rc;
}

/* Wallet certificates and trust anchors go along, as they are (public). */
static int
obj_visit(void *ctx, const hsm_wallet_obj *obj)
{
    struct keybackup *b = ctx;
    struct keybackup_obj *o;

    if (b->num_objs == KEYBACKUP_OBJS_MAX || obj->der_len > sizeof(o->der))
        return -1;
    o = &b->objs[b->num_objs++];
    o->type = (uint8_t)obj->type;
    snprintf(o->label, sizeof(o->label), "%s", obj->label);
    snprintf(o->set, sizeof(o->set), "%s", obj->set);
    o->expiration_ms = obj->expiration_ms;
    memcpy(o->der, obj->der, obj->der_len);
    o->der_len = obj->der_len;
    printf("  %-24s %s\n", o->label,
           o->type == HSM_WOBJ_KEY_CERT ? "certificate of its key" : "trust anchor");
    return 0;
}

static int
collect_objs(hsm_session *s, struct keybackup *b)
{
    int r;

    if ((b->objs = calloc(KEYBACKUP_OBJS_MAX, sizeof(b->objs[0]))) == NULL)
        return EXIT_FAIL;
    printf("wallet certificates and trust anchors (public, carried as they are):\n");
    if ((r = hsm_wallet_obj_list(s, obj_visit, b)) != HSM_OK)
        return r == -1 ? (ceremony_err("more than %u wallet objects", KEYBACKUP_OBJS_MAX), EXIT_FAIL)
                       : ceremony_report("wallet objects", r);
    if (b->num_objs == 0)
        printf("  (none)\n");
    return EXIT_OK;
}

int
cmd_backup(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t tkey[HSM_TRANSPORT_KEY_LEN], *file = NULL;
    struct share sh[SHARE_COUNT_MAX];
    struct share_set set;
    struct keybackup b = {0};
    char set_text[SHARE_FILE_MAX];
    size_t file_len = 0, set_len = 0;
    hsm_pin_source *so = NULL;
    hsm_obj tw = HSM_OBJ_NONE;
    struct timespec now;
    int r, rc = EXIT_FAIL;

    (void)h;
    memset(sh, 0, sizeof(sh));
    if (o->threshold < SHARE_THRESHOLD_MIN || o->threshold > o->count ||
        o->count > SHARE_COUNT_MAX || o->set_file == NULL || o->out == NULL ||
        o->so_pin_file == NULL) {
        ceremony_err("backup needs --so-pin-file FILE, --threshold M --shares N (%u <= M <= N <= "
                     "%u), --set-file FILE and --out FILE", SHARE_THRESHOLD_MIN, SHARE_COUNT_MAX);
        return EXIT_USAGE;
    }
    if (ceremony_check_share_dest(o) != EXIT_OK)
        return EXIT_USAGE;
    if ((r = hsm_pin_source_file(&so, o->so_pin_file)) != HSM_OK) {
        rc = ceremony_report("SO PIN file", r);
        goto out;
    }
    if ((r = hsm_random(s, tkey, sizeof(tkey))) != HSM_OK) {
        rc = ceremony_report("transport key", r);
        goto out;
    }
    if ((r = share_split(&set, sh, SHARE_KIND_TRANSPORT, o->threshold, o->count, tkey,
                         sizeof(tkey))) != 0) {
        ceremony_err("split: %s", share_strerror(r));
        goto out;
    }
    if ((r = hsm_transport_key_trusted(s, so, tkey, &tw)) != HSM_OK) {
        rc = ceremony_report("trusted transport key (SO)", r);
        goto out;
    }
    printf("keys wrapped under the transport key:\n");
    if ((rc = wrap_all(s, tw, &b)) != EXIT_OK || (rc = collect_objs(s, &b)) != EXIT_OK)
        goto out;
    rc = EXIT_FAIL;
    memcpy(b.set_id, set.set_id, SHARE_SET_ID_LEN);
    clock_gettime(CLOCK_REALTIME, &now);
    b.created_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
    if (keybackup_encode(&b, tkey, &file, &file_len) != 0 ||
        share_set_format(&set, set_text, sizeof(set_text), &set_len) != 0) {
        ceremony_err("cannot encode the backup");
        goto out;
    }
    if (ceremony_write_new(o->out, file, file_len) != EXIT_OK)
        goto out;
    if (ceremony_write_new(o->set_file, set_text, set_len) != EXIT_OK) {
        (void)unlink(o->out);
        goto out;
    }
    if (ceremony_deal_shares(o->share_dir, sh, o->count) != EXIT_OK) {
        (void)unlink(o->out);
        (void)unlink(o->set_file);
        goto out;
    }
    printf("%zu keys and %zu wallet objects backed up to %s (mode 0600)\n", b.num, b.num_objs,
           o->out);
    printf("transport key (from the HSM's RNG, trusted by the SO, destroyed now):\n");
    ceremony_print_set(&set);
    printf("share set (public) written to %s\n", o->set_file);
    rc = EXIT_OK;
out:
    hsm_obj_destroy(s, tw);
    OPENSSL_cleanse(tkey, sizeof(tkey));
    OPENSSL_cleanse(sh, sizeof(sh));
    keybackup_free(&b);
    free(file);
    hsm_pin_source_free(so);
    return rc;
}

/* Reads the backup file (binary, bounded) into a new buffer. */
/* Rebuilds the transport key from the officers' share files. */
static int
rebuild_transport(const struct ceremony_opts *o, struct share_set *set,
                  uint8_t tkey[HSM_TRANSPORT_KEY_LEN])
{
    struct share sh[CEREMONY_OFFICERS_MAX];
    size_t len = 0;
    int r, rc = EXIT_FAIL;

    memset(sh, 0, sizeof(sh));
    if (ceremony_read_share_set(o->set_file, set) != EXIT_OK)
        goto out;
    if (set->kind != SHARE_KIND_TRANSPORT) {
        ceremony_err("%s: the share set of a PIN, not of a transport key", o->set_file);
        goto out;
    }
    for (size_t i = 0; i < o->num_shares; i++)
        if (ceremony_read_share_file(o->shares[i], &sh[i]) != EXIT_OK)
            goto out;
    r = share_combine(set, sh, o->num_shares, tkey, HSM_TRANSPORT_KEY_LEN, &len);
    if (r == 0 && len != HSM_TRANSPORT_KEY_LEN)
        r = SHARE_ERR_COMBINE;
    if (r != 0) {
        /* Which share is wrong is not said: only that these do not do. */
        ceremony_err("the shares do not rebuild the transport key (%s)",
                     r == SHARE_ERR_TOO_FEW ? "fewer than the threshold"
                     : r == SHARE_ERR_DUPLICATE ? "a share given twice"
                                                : "a share is not of this set or is damaged");
        goto out;
    }
    rc = EXIT_OK;
out:
    OPENSSL_cleanse(sh, sizeof(sh));
    return rc;
}

/* Wallet certificates (beside their restored keys) and trust anchors. */
static int
restore_objs(hsm_session *s, const struct keybackup *b)
{
    hsm_key *key = NULL;
    int r;

    for (size_t i = 0; i < b->num_objs; i++) {
        const struct keybackup_obj *o = &b->objs[i];

        switch (o->type) {
        case HSM_WOBJ_KEY_CERT:
            r = hsm_key_find(s, o->label, &key);
            if (r == HSM_OK)
                r = hsm_key_cert_store(s, key, o->der, o->der_len);
            break;
        case HSM_WOBJ_ANCHOR_CERT:
            r = hsm_anchor_cert_store(s, o->label, o->set, o->der, o->der_len);
            break;
        default:
            r = hsm_anchor_key_store(s, o->label, o->set, o->der, o->der_len, o->expiration_ms);
            break;
        }
        if (r != HSM_OK)
            return ceremony_report(o->label, r);
        printf("  %-24s %s restored\n", o->label,
               o->type == HSM_WOBJ_KEY_CERT ? "certificate" : "trust anchor");
    }
    return EXIT_OK;
}

static int
restore_all(hsm_session *s, hsm_obj tu, const struct keybackup *b)
{
    uint8_t kcv[HSM_KCV_LEN];
    hsm_key_info info;
    hsm_key *key = NULL;
    int r;

    /* Every label must be free before anything is restored. */
    for (size_t i = 0; i < b->num; i++) {
        r = hsm_key_find(s, b->keys[i].label, &key);
        if (r != HSM_ERR_KEY_NOT_FOUND) {
            ceremony_err("%s: %s on this token; restore goes to a token without the vault's keys",
                         b->keys[i].label, r == HSM_OK ? "a key with this label exists" : hsm_strerror(r));
            return r == HSM_OK ? EXIT_FAIL : ceremony_exit_for(r);
        }
    }
    for (size_t i = 0; i < b->num_objs; i++) {
        if (b->objs[i].type == HSM_WOBJ_KEY_CERT)
            continue; /* labelled like its key, checked above */
        if ((r = hsm_label_check_free(s, b->objs[i].label)) != HSM_OK) {
            ceremony_err("%s: %s on this token", b->objs[i].label,
                         r == HSM_ERR_EXISTS ? "an object with this label exists" : hsm_strerror(r));
            return r == HSM_ERR_EXISTS ? EXIT_FAIL : ceremony_exit_for(r);
        }
    }
    printf("keys restored, check values compared with the backup's:\n");
    for (size_t i = 0; i < b->num; i++) {
        const struct keybackup_key *k = &b->keys[i];

        if ((r = hsm_key_restore(s, tu, (hsm_key_kind)k->kind, k->label, k->wrapped,
                                 k->wrapped_len, k->spki_len ? k->spki : NULL, k->spki_len,
                                 &key)) != HSM_OK ||
            (r = hsm_key_info_get(s, key, &info)) != HSM_OK || (r = ceremony_key_kcv(s, key, &info, kcv)) != HSM_OK)
            return ceremony_report(k->label, r);
        printf("  %-24s %-15s KCV ", k->label, hsm_key_kind_name(info.kind));
        ceremony_print_hex(kcv, HSM_KCV_LEN);
        if (CRYPTO_memcmp(kcv, k->kcv, HSM_KCV_LEN) != 0) {
            printf("  MISMATCH (backup: ");
            ceremony_print_hex(k->kcv, HSM_KCV_LEN);
            printf(")\n");
            ceremony_err("%s: the restored key is not the backed-up key", k->label);
            return EXIT_FAIL;
        }
        printf("  matches\n");
    }
    return restore_objs(s, b);
}

int
cmd_restore(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t tkey[HSM_TRANSPORT_KEY_LEN], *file = NULL;
    struct share_set set;
    struct keybackup b = {0};
    size_t file_len = 0;
    hsm_obj tu = HSM_OBJ_NONE;
    int r, rc = EXIT_FAIL;

    (void)h;
    if (o->in == NULL || o->set_file == NULL || o->num_shares == 0) {
        ceremony_err("restore needs --in FILE, --set-file FILE and the officers' --share FILE");
        return EXIT_USAGE;
    }
    if (rebuild_transport(o, &set, tkey) != EXIT_OK || ceremony_read_backup(o->in, &file, &file_len) != EXIT_OK)
        goto out;
    if ((r = keybackup_decode(&b, file, file_len, tkey)) != 0) {
        ceremony_err("%s: %s", o->in, r == KEYBACKUP_ERR_MAC
                                          ? "altered, or made with another transport key"
                                          : "not a key backup file");
        goto out;
    }
    if (CRYPTO_memcmp(b.set_id, set.set_id, SHARE_SET_ID_LEN) != 0) {
        ceremony_err("%s: made with another share set", o->in);
        goto out;
    }
    if ((r = hsm_transport_key_import(s, tkey, &tu)) != HSM_OK) {
        rc = ceremony_report("transport key", r);
        goto out;
    }
    OPENSSL_cleanse(tkey, sizeof(tkey));
    if ((rc = restore_all(s, tu, &b)) != EXIT_OK)
        goto out;
    printf("%zu keys and %zu wallet objects restored from %s\n", b.num, b.num_objs, o->in);
    rc = EXIT_OK;
out:
    hsm_obj_destroy(s, tu);
    OPENSSL_cleanse(tkey, sizeof(tkey));
    keybackup_free(&b);
    free(file);
    return rc;
}
