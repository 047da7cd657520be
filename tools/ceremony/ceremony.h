/*
 * ceremony.h - what the subcommands of tokenvault-ceremony share: the
 * options, exit codes, error reporting, key printing and the rules for the
 * files a ceremony writes. Each subcommand lives in the source file of its
 * ceremony (keys.c, audit.c, shares.c, backup.c, ...); main.c dispatches.
 */
#ifndef TOKENVAULT_TOOLS_CEREMONY_CEREMONY_H
#define TOKENVAULT_TOOLS_CEREMONY_CEREMONY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "hsm/hsm.h"

/* Exit codes: distinct for usage errors, HSM refusals and missing keys. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_HSM = 3, EXIT_NOT_FOUND = 4,
       EXIT_UNSAFE = 5 /* a key's attributes are unsafe (keys, init) */ };

#define CEREMONY_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
/* Officers named on one command line (--officer, repeated). */
#define CEREMONY_OFFICERS_MAX 16

struct ceremony_opts {
    const char *module;
    const char *module_args; /* --module-args: the module's init string */
    int reduced_key_attributes; /* --reduced-key-attributes (hsm_config) */
    int markdown;           /* probe --markdown: the SECURITY.md table rows */
    const char *token;
    const char *token_uri;
    const char *pin_file;
    const char *so_pin_file;
    const char *dek_file;
    const char *label;
    const char *kind;
    const char *store;
    const char *pubkey;
    const char *out;        /* a file a ceremony writes */
    const char *share_dir;  /* where pin-split and backup write share files */
    const char *in;         /* a file a ceremony reads */
    const char *set_file;   /* the public share-set file */
    const char *socket;     /* tokenvaultd's officer socket */
    const char *transcript; /* where the ceremony transcript goes */
    const char *subject;    /* CSR subject common name (applepay-key, samsungpay-key) */
    const char *cert;       /* --cert FILE: the imported key's certificate (wallet-import) */
    const char *shares[CEREMONY_OFFICERS_MAX]; /* --share FILE, repeated */
    size_t num_shares;
    const char *officers[CEREMONY_OFFICERS_MAX];
    size_t num_officers;
    unsigned threshold, count; /* --threshold M --shares N */
    int keep_pin;
};

/* Prints "tokenvault-ceremony: WHAT: HSM_ERR_X (detail)" and returns the
 * exit code for the error. */
int ceremony_report(const char *what, int err);
/* The exit code for an HSM_ERR_* code. */
int ceremony_exit_for(int err);
/* Prints an error line "tokenvault-ceremony: ..." (printf format). */
void ceremony_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void ceremony_print_hex(const uint8_t *b, size_t n);
/* ceremony_key_unsafe counts the unsafe attributes of a key (readable value,
 * extractable under any key, ever readable -- except a wallet key imported
 * by wallet-import, which is named as such --, modifiable, copyable, a usage
 * its kind must not have), printing an UNSAFE line for each when |print|. */
int ceremony_key_unsafe(const hsm_key_info *i, bool print);

/* The key's label, kind, type, KCV and attributes, as officers record them;
 * |role| (may be NULL) says what the key is for. Each unsafe attribute
 * (readable value, extractable under any key, modifiable, copyable, a usage
 * its kind must not have) gets an UNSAFE line, and EXIT_UNSAFE is returned. */
int ceremony_print_key(hsm_session *s, hsm_key *key, const char *role);

struct keybackup;
/* The same for a token restored from the key backup |from| (may be NULL):
 * a key that was unwrapped (CKA_LOCAL false) and whose label and check value
 * are in |from| is named "restored". PKCS#11 never marks an unwrapped key
 * "always sensitive", so that is not counted against it there; every other
 * attribute is judged as for any key. */
int ceremony_print_key_from(hsm_session *s, hsm_key *key, const char *role,
                            const struct keybackup *from);

/* ceremony_key_kcv: the check value a key backup records for |key| (|info|
 * read by hsm_key_info_get): for a secret key the digest the token makes of
 * it (C_DigestKey), which any token holding the key gives again; for a pair,
 * SHA-256 of its public key. An HSM_ERR_* code. */
int ceremony_key_kcv(hsm_session *s, hsm_key *key, const hsm_key_info *info,
                     uint8_t out[HSM_KCV_LEN]);

/* ceremony_read_backup reads a key backup file (a regular file of at most
 * KEYBACKUP_FILE_MAX bytes) into a new buffer (*out, free it). EXIT_OK or
 * EXIT_FAIL with the reason printed. */
int ceremony_read_backup(const char *path, uint8_t **out, size_t *out_len);

/* Writes |len| bytes to a new file |path| of mode 0600 (O_EXCL: a ceremony
 * never overwrites a file that may hold the only copy of something) and
 * fsyncs it. Returns EXIT_OK or EXIT_FAIL with the reason printed. */
int ceremony_write_new(const char *path, const void *data, size_t len);

/* Reads a whole small file (at most |cap| bytes; a larger one is refused)
 * into |buf|. Returns EXIT_OK or EXIT_FAIL with the reason printed. */
int ceremony_read_small(const char *path, char *buf, size_t cap, size_t *out_len);

/* Shares (vault/shares.h), for pin-split, backup, restore and unseal.
 * Each returns EXIT_OK or an exit code with the reason printed. */
struct share_set;
struct share;
int ceremony_read_share_set(const char *path, struct share_set *out);
int ceremony_read_share_file(const char *path, struct share *out);
/* Usage error unless --share-dir is given or both ends are a terminal. */
int ceremony_check_share_dest(const struct ceremony_opts *o);
/* Writes each share to DIR/share-<i>-of-<N>.txt (new, 0600), or with |dir|
 * NULL shows them on the terminal one officer at a time; on failure removes
 * the files written. */
int ceremony_deal_shares(const char *dir, const struct share *sh, unsigned count);
/* The set id and each share's check value, for the transcript. */
void ceremony_print_set(const struct share_set *set);

/* Reads an EC public key (PEM) into DER SubjectPublicKeyInfo. */
int ceremony_read_pubkey(const char *path, uint8_t *out, size_t cap, size_t *out_len);

/* The ceremony transcript (transcript.c): transcript_begin captures
 * standard output; transcript_end gives it back to the terminal, frames it
 * (ceremony, times, token, officers, result), signs it with the audit key,
 * writes it to --transcript FILE (or ./ceremony-<cmd>-<time>-<pid>.txt; new
 * file, 0600) and, with --store DIR, appends the ceremony to that store's
 * audit log. */
struct transcript {
    FILE *capture;
    int saved_fd;
    time_t started;
};
int transcript_begin(struct transcript *t);
int transcript_end(struct transcript *t, hsm *h, hsm_session *s, const struct ceremony_opts *o,
                   const char *cmd, int rc);

/* The subcommands. Those given |s| run with an open, logged-in HSM. */
int cmd_init(hsm_session *s, const struct ceremony_opts *o);
int cmd_keys(hsm_session *s, const struct ceremony_opts *o);
/* probe: what the token can do and where each wallet step runs; with
 * |markdown|, the rows of SECURITY.md's per-module table (scripts/hsm-table). */
int cmd_probe(hsm *h, bool markdown);
int cmd_wallet_keygen(hsm_session *s, const struct ceremony_opts *o);
int cmd_audit_key(hsm_session *s);
int cmd_audit_verify(const struct ceremony_opts *o);
int cmd_pin_split(hsm *h, hsm_session *s, const struct ceremony_opts *o);
int cmd_share_check(const struct ceremony_opts *o);
int cmd_unseal(const struct ceremony_opts *o);
int cmd_transcript_verify(const struct ceremony_opts *o);
int cmd_rotate(hsm *h, hsm_session *s, const struct ceremony_opts *o);
int cmd_backup(hsm *h, hsm_session *s, const struct ceremony_opts *o);
int cmd_restore(hsm *h, hsm_session *s, const struct ceremony_opts *o);
/* Wallet keys, their certificates and trust anchors (wallet.c). */
int cmd_applepay_key(hsm_session *s, const struct ceremony_opts *o);
int cmd_applepay_cert(hsm_session *s, const struct ceremony_opts *o);
int cmd_googlepay_key(hsm_session *s, const struct ceremony_opts *o);
int cmd_samsungpay_key(hsm_session *s, const struct ceremony_opts *o);
int cmd_trust_anchor(hsm_session *s, const struct ceremony_opts *o);
/* |config| (may be NULL): tokenvaultd's config; the keys it names are then
 * also listed merchant by merchant, and one missing from the token gives
 * EXIT_NOT_FOUND. */
int cmd_wallet_keys(hsm_session *s, const struct ceremony_opts *o, const char *config);
/* Imports a wallet private key from --in (wallet.c); the one wallet key
 * not made in the HSM. */
int cmd_wallet_import(hsm_session *s, const struct ceremony_opts *o);

#endif
