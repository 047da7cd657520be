/*
 * shares.c - pin-split, share-check and unseal: the HSM user PIN in M-of-N
 * officer shares, and sealed start (docs/OPERATIONS.md, "Sealed start").
 *
 * pin-split sets a fresh PIN that nobody has seen (24 characters drawn from
 * the HSM's RNG) before splitting it, so that after the ceremony no single
 * person knows the PIN: that is the split knowledge PCI DSS 3.6.6 asks for.
 * --keep-pin splits the current PIN instead, for a token whose PIN policy is
 * managed elsewhere; then whoever wrote the PIN file still knows it.
 */
#include "tools/ceremony/ceremony.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "api/client.h"
#include "vault/shares.h"

/* A generated PIN: 24 symbols of 5 bits = 120 bits, in an alphabet with no
 * look-alike characters (no 0/O, 1/I), accepted by every token we know. */
#define NEW_PIN_LEN 24u
static const char pin_alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

static int
make_pin(hsm_session *s, uint8_t pin[NEW_PIN_LEN])
{
    uint8_t rnd[NEW_PIN_LEN];
    int r = hsm_random(s, rnd, sizeof(rnd));

    if (r == HSM_OK)
        for (size_t i = 0; i < NEW_PIN_LEN; i++)
            pin[i] = (uint8_t)pin_alphabet[rnd[i] & 31u]; /* 32 symbols: no bias */
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return r;
}

int
ceremony_check_share_dest(const struct ceremony_opts *o)
{
    if (o->share_dir == NULL && !isatty(STDIN_FILENO)) {
        ceremony_err("without --share-dir DIR the shares are shown on a terminal, one officer "
                     "at a time; this is not a terminal");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

int
ceremony_read_share_file(const char *path, struct share *out)
{
    char text[SHARE_FILE_MAX + 1];
    size_t n = 0;
    int r;

    if (ceremony_read_small(path, text, SHARE_FILE_MAX, &n) != EXIT_OK)
        return EXIT_FAIL;
    r = share_parse(out, text, n);
    OPENSSL_cleanse(text, sizeof(text));
    if (r != 0) {
        ceremony_err("%s: not a tokenvault share file (%s)", path, share_strerror(r));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int
ceremony_read_share_set(const char *path, struct share_set *out)
{
    char text[SHARE_FILE_MAX + 1];
    size_t n = 0;
    int r;

    if (ceremony_read_small(path, text, SHARE_FILE_MAX, &n) != EXIT_OK)
        return EXIT_FAIL;
    if ((r = share_set_parse(out, text, n)) != 0) {
        ceremony_err("%s: not a tokenvault share set file (%s)", path, share_strerror(r));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

/* Shows one share to one officer on the terminal itself (/dev/tty), never
 * on standard output, which the ceremony transcript records: the screen is
 * cleared before and after, and the next officer is called only when this
 * one presses Enter. */
static int
show_share(const char *text, unsigned index, unsigned count)
{
    /* Two streams on the terminal: C forbids switching one stream between
     * reading and writing without a positioning call, which a tty has not. */
    FILE *in = fopen("/dev/tty", "re"), *out = fopen("/dev/tty", "we");
    int c = EOF;

    if (in == NULL || out == NULL) {
        ceremony_err("/dev/tty: cannot show the shares on the terminal; use --share-dir");
        if (in != NULL)
            fclose(in);
        if (out != NULL)
            fclose(out);
        return EXIT_FAIL;
    }
    fprintf(out, "\033[H\033[2J\033[3J");
    fprintf(out, "Share %u of %u. Only the officer who keeps it may look at the screen now.\n"
                 "Press Enter to show it.", index, count);
    fflush(out);
    while ((c = fgetc(in)) != '\n' && c != EOF)
        ;
    if (c != EOF) {
        fprintf(out, "\n%s\nCopy it exactly (the check value lets you confirm it later).\n"
                     "Press Enter to clear the screen.", text);
        fflush(out);
        while ((c = fgetc(in)) != '\n' && c != EOF)
            ;
    }
    fprintf(out, "\033[H\033[2J\033[3J");
    fclose(out);
    fclose(in);
    return c == EOF ? EXIT_FAIL : EXIT_OK;
}

int
ceremony_deal_shares(const char *dir, const struct share *sh, unsigned count)
{
    char text[SHARE_FILE_MAX], path[PATH_MAX];
    size_t len = 0;
    unsigned done = 0;
    int rc = EXIT_FAIL;

    for (; done < count; done++) {
        if (share_format(&sh[done], text, sizeof(text), &len) != 0)
            goto out;
        if (dir != NULL) {
            if ((size_t)snprintf(path, sizeof(path), "%s/share-%u-of-%u.txt", dir, done + 1,
                                 count) >= sizeof(path) ||
                ceremony_write_new(path, text, len) != EXIT_OK)
                goto out;
        } else if (show_share(text, done + 1, count) != EXIT_OK) {
            goto out;
        }
    }
    rc = EXIT_OK;
out:
    OPENSSL_cleanse(text, sizeof(text));
    if (rc != EXIT_OK && dir != NULL)
        for (unsigned i = 0; i < done; i++)
            if ((size_t)snprintf(path, sizeof(path), "%s/share-%u-of-%u.txt", dir, i + 1,
                                 count) < sizeof(path))
                (void)unlink(path);
    return rc;
}

void
ceremony_print_set(const struct share_set *set)
{
    char ct[SHARE_CHECK_TEXT_LEN + 1];

    printf("share set ");
    ceremony_print_hex(set->set_id, SHARE_SET_ID_LEN);
    printf(": %u shares, any %u rebuild the secret\n", set->count, set->threshold);
    for (unsigned i = 0; i < set->count; i++) {
        share_check_text(set->check[i], ct);
        printf("  share %u: check value %s\n", i + 1, ct);
    }
}

int
cmd_pin_split(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    uint8_t pin[HSM_PIN_BUF];
    struct share sh[SHARE_COUNT_MAX];
    struct share_set set;
    char set_text[SHARE_FILE_MAX];
    size_t pin_len = 0, set_len = 0;
    hsm_pin_source *src = NULL;
    int r, rc = EXIT_FAIL;

    (void)h;
    memset(sh, 0, sizeof(sh));
    if (o->threshold < SHARE_THRESHOLD_MIN || o->threshold > o->count ||
        o->count > SHARE_COUNT_MAX || o->set_file == NULL) {
        ceremony_err("pin-split needs --threshold M --shares N (%u <= M <= N <= %u) and "
                     "--set-file FILE", SHARE_THRESHOLD_MIN, SHARE_COUNT_MAX);
        return EXIT_USAGE;
    }
    if (ceremony_check_share_dest(o) != EXIT_OK)
        return EXIT_USAGE;
    if (o->keep_pin) {
        if ((r = hsm_pin_source_file(&src, o->pin_file)) != HSM_OK ||
            (r = hsm_pin_source_read(src, pin, sizeof(pin), &pin_len)) != HSM_OK) {
            rc = ceremony_report("PIN file", r);
            goto out;
        }
    } else if ((r = make_pin(s, pin)) != HSM_OK) {
        rc = ceremony_report("random PIN", r);
        goto out;
    } else {
        pin_len = NEW_PIN_LEN;
    }
    if (pin_len > SHARE_PAYLOAD_MAX) {
        ceremony_err("the PIN is longer than %u bytes; sealed start cannot carry it",
                     SHARE_PAYLOAD_MAX);
        goto out;
    }
    if ((r = share_split(&set, sh, SHARE_KIND_PIN, o->threshold, o->count, pin, pin_len)) != 0) {
        ceremony_err("split: %s", share_strerror(r));
        goto out;
    }
    if (share_set_format(&set, set_text, sizeof(set_text), &set_len) != 0 ||
        ceremony_write_new(o->set_file, set_text, set_len) != EXIT_OK)
        goto out;
    if (ceremony_deal_shares(o->share_dir, sh, o->count) != EXIT_OK) {
        (void)unlink(o->set_file);
        goto out;
    }
    /* Only once every share is out does the token take the new PIN: a
     * failure before leaves the old PIN working and no share of a PIN that
     * was never set. */
    if (!o->keep_pin && (r = hsm_user_pin_change(s, pin, pin_len)) != HSM_OK) {
        rc = ceremony_report("set the new PIN", r);
        ceremony_err("the token kept its old PIN: destroy the shares just made");
        (void)unlink(o->set_file);
        goto out;
    }
    printf("%s\n", o->keep_pin ? "the current user PIN was split"
                               : "a new user PIN, made from the HSM's RNG and seen by nobody, "
                                 "is set and split");
    ceremony_print_set(&set);
    if (o->share_dir != NULL)
        printf("shares written to %s/share-<i>-of-%u.txt (mode 0600): hand each to one officer\n",
               o->share_dir, o->count);
    printf("share set (public) written to %s: tokenvaultd's [hsm] share_set\n", o->set_file);
    if (!o->keep_pin)
        printf("the old PIN file no longer works: destroy it\n");
    rc = EXIT_OK;
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    OPENSSL_cleanse(sh, sizeof(sh));
    hsm_pin_source_free(src);
    return rc;
}

int
cmd_share_check(const struct ceremony_opts *o)
{
    uint8_t check[SHARE_CHECK_LEN];
    char ct[SHARE_CHECK_TEXT_LEN + 1];
    struct share_set set;
    struct share sh;
    int r, rc = EXIT_FAIL;

    memset(&sh, 0, sizeof(sh));
    if (o->num_shares != 1) {
        ceremony_err("share-check needs one --share FILE");
        return EXIT_USAGE;
    }
    if (ceremony_read_share_file(o->shares[0], &sh) != EXIT_OK)
        goto out;
    share_check_value(&sh, check);
    share_check_text(check, ct);
    printf("share %u of %u (any %u rebuild the %s), set ", sh.index, sh.count, sh.threshold,
           sh.kind == SHARE_KIND_PIN ? "HSM user PIN" : "backup transport key");
    ceremony_print_hex(sh.set_id, SHARE_SET_ID_LEN);
    printf(", check value %s\n", ct);
    if (o->set_file != NULL) {
        if (ceremony_read_share_set(o->set_file, &set) != EXIT_OK)
            goto out;
        if ((r = share_verify(&set, &sh)) != 0) {
            printf("this share does NOT belong to the set in %s (%s)\n", o->set_file,
                   r == SHARE_ERR_SET ? "another set" : "its value does not match its check value");
            goto out;
        }
        printf("it belongs to the set in %s\n", o->set_file);
    }
    rc = EXIT_OK;
out:
    share_wipe(&sh);
    return rc;
}

int
cmd_unseal(const struct ceremony_opts *o)
{
    struct api_client_config cfg = {.unix_path = o->socket, .request_timeout_ms = 60000};
    struct api_unseal_share_req req;
    struct api_unseal_share_resp resp;
    struct api_error_resp err;
    struct api_client *c = NULL;
    struct share sh;
    int r, rc = EXIT_FAIL;

    memset(&req, 0, sizeof(req));
    memset(&sh, 0, sizeof(sh));
    if (o->socket == NULL || o->num_shares != 1 || o->num_officers != 1) {
        ceremony_err("unseal needs --socket PATH, one --share FILE and one --officer NAME");
        return EXIT_USAGE;
    }
    if (strlen(o->officers[0]) > API_ID_MAX) {
        ceremony_err("--officer: at most %u characters", API_ID_MAX);
        return EXIT_USAGE;
    }
    if (ceremony_read_share_file(o->shares[0], &sh) != EXIT_OK)
        goto out;
    if (sh.kind != SHARE_KIND_PIN) {
        ceremony_err("%s: a share of a backup transport key, not of the PIN", o->shares[0]);
        goto out;
    }
    snprintf(req.officer, sizeof(req.officer), "%s", o->officers[0]);
    share_encode(&sh, req.share.data);
    req.share.len = SHARE_WIRE_LEN;
    if ((r = api_client_new(&c, &cfg)) != 0) {
        ceremony_err("client: %s", api_strerror(r));
        goto out;
    }
    r = api_call_unseal_share(c, &req, &resp, &err);
    if (r == -API_STATUS_SHARE_REJECTED) {
        printf("share refused: %s\n", err.message);
        goto out;
    }
    if (r == -API_STATUS_CONFLICT) {
        printf("the service is not sealed: nothing to do\n");
        rc = EXIT_OK;
        goto out;
    }
    if (r != 0) {
        ceremony_err("%s: %s%s%s", o->socket, api_strerror(r), err.message[0] != '\0' ? ": " : "",
                     err.message);
        goto out;
    }
    if (!resp.sealed)
        printf("the service is unsealed (%u of %u shares were given)\n", resp.shares_received,
               resp.shares_needed);
    else
        printf("share accepted: %u of %u; the service stays sealed until %u more\n",
               resp.shares_received, resp.shares_needed,
               (unsigned)(resp.shares_needed - resp.shares_received));
    rc = EXIT_OK;
out:
    OPENSSL_cleanse(&req, sizeof(req));
    share_wipe(&sh);
    api_client_free(c);
    return rc;
}
