/*
 * transcript.c - the ceremony transcript: what a ceremony printed, framed
 * with when, where and who, signed with the audit key in the HSM, written to
 * a new 0600 file, and recorded in the appliance's audit log.
 *
 * The transcript is what the command wrote to standard output, captured in
 * an unlinked temporary file and copied to the terminal at the end. Nothing
 * secret is ever written there: shares go to their own files or to
 * /dev/tty, never to standard output.
 */
#include "tools/ceremony/ceremony.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "vault/audit.h"
#include "vault/store.h"

/* Largest transcript kept (listings of many keys stay far below). */
#define TRANSCRIPT_MAX (1024u * 1024u)
#define SIG_PREFIX "signature: ecdsa-p256-sha256 "
#define AUDIT_KEY_LABEL "vault-audit-sign"

int
transcript_begin(struct transcript *t)
{
    memset(t, 0, sizeof(*t));
    t->saved_fd = -1;
    fflush(stdout);
    if ((t->capture = tmpfile()) == NULL || (t->saved_fd = dup(STDOUT_FILENO)) < 0 ||
        dup2(fileno(t->capture), STDOUT_FILENO) < 0) {
        ceremony_err("cannot capture the transcript: %s", strerror(errno));
        if (t->capture != NULL)
            fclose(t->capture);
        if (t->saved_fd >= 0)
            close(t->saved_fd);
        t->capture = NULL;
        return EXIT_FAIL;
    }
    t->started = time(NULL);
    return EXIT_OK;
}

/* Restores standard output and returns what was captured (malloc'd). */
static char *
take_output(struct transcript *t, size_t *out_len)
{
    char *buf = NULL;
    long n;

    fflush(stdout);
    (void)dup2(t->saved_fd, STDOUT_FILENO);
    close(t->saved_fd);
    t->saved_fd = -1;
    if ((n = ftell(t->capture)) < 0 || (size_t)n > TRANSCRIPT_MAX ||
        (buf = malloc((size_t)n + 1)) == NULL || fseek(t->capture, 0, SEEK_SET) != 0 ||
        fread(buf, 1, (size_t)n, t->capture) != (size_t)n) {
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
        *out_len = (size_t)n;
    }
    fclose(t->capture);
    t->capture = NULL;
    return buf;
}

static void
iso_time(time_t when, char out[32])
{
    struct tm tm;

    gmtime_r(&when, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The framed text: header, the output, the result. */
static char *
frame(const struct transcript *t, hsm *h, const struct ceremony_opts *o, const char *cmd,
      const char *output, size_t output_len, int rc, size_t *out_len)
{
    char when[32], end[32], officers[CEREMONY_OFFICERS_MAX * (64 + 2) + 1] = "";
    hsm_token_info ti;
    char *text = NULL;
    size_t cap = output_len + 4096, off = 0;
    int n;

    iso_time(t->started, when);
    iso_time(time(NULL), end);
    hsm_token_info_get(h, &ti);
    /* At most 64 characters of each name, so all CEREMONY_OFFICERS_MAX fit. */
    for (size_t i = 0; i < o->num_officers; i++) {
        n = snprintf(officers + off, sizeof(officers) - off, "%.64s%s", o->officers[i],
                     i + 1 < o->num_officers ? ", " : "");
        if (n < 0 || (size_t)n >= sizeof(officers) - off)
            return NULL;
        off += (size_t)n;
    }
    if ((text = malloc(cap)) == NULL)
        return NULL;
    n = snprintf(text, cap,
                 "tokenvault ceremony transcript\n"
                 "ceremony: %s\n"
                 "started: %s\n"
                 "ended: %s\n"
                 "token: %s (%s %s, serial %s)\n"
                 "officers: %s\n"
                 "audit log: %s%s\n"
                 "result: %s (exit %d)\n"
                 "--- output ---\n"
                 "%s"
                 "--- end of output ---\n",
                 cmd, when, end, ti.label, ti.manufacturer, ti.model, ti.serial,
                 officers[0] != '\0' ? officers : "(none named: --officer NAME)",
                 /* Said in the signed text, so that a ceremony left out of
                  * the audit log is a visible, recorded decision. */
                 o->store != NULL ? "recorded in the store " : "NOT recorded (no --store: ",
                 o->store != NULL ? o->store : "this appliance has no store yet)",
                 rc == EXIT_OK ? "done" : "FAILED", rc, output);
    if (n < 0 || (size_t)n >= cap) {
        free(text);
        return NULL;
    }
    *out_len = (size_t)n;
    return text;
}

/* Signs SHA-256 of |text| with the audit key; the signature line (with a
 * newline) goes to |line|. An empty line when the token has no audit key
 * yet (a probe before init): the transcript says it is unsigned. */
static int
sign_line(hsm_session *s, const char *text, size_t len, char *line, size_t cap)
{
    uint8_t md[SHA256_DIGEST_LENGTH], sig[HSM_ECDSA_SIG_MAX];
    unsigned char b64[2 * HSM_ECDSA_SIG_MAX + 4];
    size_t sig_len = 0;
    hsm_key *key = NULL;
    int r;

    SHA256((const uint8_t *)text, len, md);
    r = hsm_key_find(s, AUDIT_KEY_LABEL, &key);
    if (r == HSM_ERR_KEY_NOT_FOUND) {
        snprintf(line, cap, "unsigned: the token has no %s key\n", AUDIT_KEY_LABEL);
        return EXIT_OK;
    }
    if (r != HSM_OK || (r = hsm_ecdsa_sign(s, key, md, sizeof(md), sig, sizeof(sig), &sig_len)) != HSM_OK)
        return ceremony_report("transcript signature", r);
    EVP_EncodeBlock(b64, sig, (int)sig_len);
    snprintf(line, cap, SIG_PREFIX "%s %s\n", AUDIT_KEY_LABEL, b64);
    return EXIT_OK;
}

/* Appends the ceremony to the audit log of the store at o->store: the
 * ceremony's name, the officers, the result and the transcript's SHA-256,
 * chained like every entry (the daemon may run: LMDB serializes writers
 * across processes, and the chain head is read inside the transaction). */
static int
record(hsm *h, const struct ceremony_opts *o, const char *cmd, const char *text, size_t len, int rc)
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    char hash[2 * SHA256_DIGEST_LENGTH + 1], who[API_ID_MAX + 1] = "", detail[AUDIT_DETAIL_MAX + 1];
    struct audit_event ev = {0};
    struct vault_store *st = NULL;
    char err[256];
    int r;

    SHA256((const uint8_t *)text, len, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(hash + 2 * i, 3, "%02x", md[i]);
    for (size_t i = 0; i < o->num_officers && strlen(who) + 1 < sizeof(who); i++)
        snprintf(who + strlen(who), sizeof(who) - strlen(who), "%s%s", i ? "," : "", o->officers[i]);
    snprintf(detail, sizeof(detail), "%s", cmd);
    ev.event = "ceremony";
    ev.client = who[0] != '\0' ? who : "officer";
    ev.status = rc == EXIT_OK ? API_STATUS_OK : API_STATUS_INTERNAL;
    ev.token = hash;
    ev.detail = detail;
    if (store_open(&st, o->store, 0, err, sizeof(err)) != 0) {
        ceremony_err("%s", err);
        return EXIT_FAIL;
    }
    r = store_writer_start(st, h, 4);
    if (r == 0)
        r = audit_record(NULL, st, &ev, 1);
    store_close(st);
    if (r != 0) {
        ceremony_err("%s: cannot record the ceremony in the audit log: %s", o->store,
                     api_status_name((unsigned)-r));
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int
transcript_end(struct transcript *t, hsm *h, hsm_session *s, const struct ceremony_opts *o,
               const char *cmd, int rc)
{
    char *output = NULL, *text = NULL, path[512], line[512] = "";
    size_t output_len = 0, text_len = 0;
    int out = EXIT_FAIL;

    if (t->capture == NULL)
        return EXIT_OK;
    output = take_output(t, &output_len);
    if (output == NULL) {
        ceremony_err("the transcript could not be read back");
        return EXIT_FAIL;
    }
    fwrite(output, 1, output_len, stdout);
    fflush(stdout);
    /* A command line the tool refused did nothing: nothing to record. */
    if (rc == EXIT_USAGE) {
        out = EXIT_OK;
        goto done;
    }
    if ((text = frame(t, h, o, cmd, output, output_len, rc, &text_len)) == NULL ||
        sign_line(s, text, text_len, line, sizeof(line)) != EXIT_OK)
        goto done;
    if (o->transcript != NULL) {
        snprintf(path, sizeof(path), "%s", o->transcript);
    } else {
        char when[32];
        struct tm tm;

        gmtime_r(&t->started, &tm);
        strftime(when, sizeof(when), "%Y%m%dT%H%M%SZ", &tm);
        snprintf(path, sizeof(path), "ceremony-%s-%s-%ld.txt", cmd, when, (long)getpid());
    }
    /* The signature line follows the text it signs. */
    {
        char *longer = realloc(text, text_len + strlen(line) + 1);

        if (longer == NULL)
            goto done;
        text = longer;
    }
    memcpy(text + text_len, line, strlen(line) + 1);
    if (ceremony_write_new(path, text, text_len + strlen(line)) != EXIT_OK)
        goto done;
    printf("transcript written to %s%s\n", path, line[0] == 'u' ? " (unsigned)" : ", signed");
    if (o->store != NULL) {
        if (record(h, o, cmd, text, text_len, rc) != EXIT_OK)
            goto done;
        printf("ceremony recorded in the audit log of %s\n", o->store);
    } else {
        fflush(stdout);
        fprintf(stderr, "ceremony NOT recorded in an audit log: give --store DIR once the "
                        "appliance has a store\n");
    }
    out = EXIT_OK;
done:
    free(output);
    free(text);
    return out;
}

int
cmd_transcript_verify(const struct ceremony_opts *o)
{
    uint8_t spki[HSM_SPKI_MAX], md[SHA256_DIGEST_LENGTH], sig[HSM_ECDSA_SIG_MAX + 3];
    const unsigned char *p = spki;
    char *text = NULL, *at;
    size_t spki_len = 0, len = 0;
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int sig_len, rc = EXIT_FAIL;
    FILE *f = NULL;

    if (o->in == NULL || o->pubkey == NULL) {
        ceremony_err("transcript-verify needs --in FILE and --pubkey FILE");
        return EXIT_USAGE;
    }
    if (ceremony_read_pubkey(o->pubkey, spki, sizeof(spki), &spki_len) != EXIT_OK)
        return EXIT_FAIL;
    if ((f = fopen(o->in, "re")) == NULL || (text = malloc(TRANSCRIPT_MAX + 1)) == NULL) {
        ceremony_err("%s: cannot read", o->in);
        goto out;
    }
    len = fread(text, 1, TRANSCRIPT_MAX, f);
    text[len] = '\0';
    /* The signature is the last line; it signs every byte before it. */
    at = len > 0 ? strstr(text, "\n" SIG_PREFIX) : NULL;
    if (at == NULL || strlen(at) < 2 || memchr(text, '\0', len) != NULL) {
        printf("%s: no signature line: NOT a signed transcript\n", o->in);
        goto out;
    }
    at++;
    {
        char *b64 = strchr(at + strlen(SIG_PREFIX), ' ');
        size_t bl;

        if (b64 == NULL || (bl = strcspn(++b64, "\n")) == 0 || bl > 2 * HSM_ECDSA_SIG_MAX ||
            b64[bl] != '\n' || b64[bl + 1] != '\0' || bl % 4 != 0 ||
            (sig_len = EVP_DecodeBlock(sig, (unsigned char *)b64, (int)bl)) <= 0) {
            printf("%s: malformed signature line\n", o->in);
            goto out;
        }
        sig_len -= (b64[bl - 1] == '=') + (b64[bl - 2] == '=');
    }
    SHA256((const uint8_t *)text, (size_t)(at - text), md);
    if ((pk = d2i_PUBKEY(NULL, &p, (long)spki_len)) == NULL ||
        (ctx = EVP_PKEY_CTX_new(pk, NULL)) == NULL || EVP_PKEY_verify_init(ctx) != 1) {
        ceremony_err("cannot use the public key");
        goto out;
    }
    if (EVP_PKEY_verify(ctx, sig, (size_t)sig_len, md, sizeof(md)) != 1) {
        printf("%s: signature does NOT verify: the transcript was altered or signed by another "
               "key\n", o->in);
        goto out;
    }
    printf("%s: signature verified with the audit key\n", o->in);
    rc = EXIT_OK;
out:
    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    free(text);
    if (f != NULL)
        fclose(f);
    return rc;
}
