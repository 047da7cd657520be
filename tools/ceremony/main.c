/*
 * tokenvault-ceremony - the security officers' key tool.
 *
 * Every key is generated and used inside the HSM through hsm/; this program
 * only asks for them and prints what an officer records in the ceremony
 * transcript: label, type, attributes and key check value. The PIN comes from
 * a 0600 file named with --pin-file, or from officers' shares, never from the
 * command line. One subcommand per ceremony (docs/OPERATIONS.md has the
 * procedure for each, with who must be present).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/ceremony/ceremony.h"
#include "tools/ceremony/wallet_check.h"

/* How a subcommand runs: offline (no HSM), or with the HSM open and a user
 * session. */
enum needs { OFFLINE, WITH_HSM };

struct command {
    const char *name;
    enum needs needs;
    bool record; /* changes the token: always leaves a signed transcript */
    int (*offline)(const struct ceremony_opts *o);
    int (*with_hsm)(hsm *h, hsm_session *s, const struct ceremony_opts *o);
};

static int
run_init(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_init(s, o);
}

static int
run_keys(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_keys(s, o);
}

static int
run_probe(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)s;
    return cmd_probe(h, o->markdown != 0);
}

static int
run_wallet_keygen(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_wallet_keygen(s, o);
}

static int
run_audit_key(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    (void)o;
    return cmd_audit_key(s);
}

/* The wallet-key ceremonies (wallet.c) need only the session. */
static int
run_applepay_key(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_applepay_key(s, o);
}

static int
run_applepay_cert(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_applepay_cert(s, o);
}

static int
run_googlepay_key(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_googlepay_key(s, o);
}

static int
run_samsungpay_key(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_samsungpay_key(s, o);
}

static int
run_trust_anchor(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_trust_anchor(s, o);
}

/* Options of wallet-check; --config serves wallet-keys too. */
static struct wallet_check_opts wallet_check_opts;

static int
run_wallet_keys(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_wallet_keys(s, o, wallet_check_opts.config);
}

static int
run_wallet_import(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_wallet_import(s, o);
}

/* wallet-check's own options (wallet_check.h), set by parse_args. */

static int
run_wallet_check(hsm *h, hsm_session *s, const struct ceremony_opts *o)
{
    (void)h;
    return cmd_wallet_check(s, o, &wallet_check_opts);
}

static const struct command commands[] = {
    {"init", WITH_HSM, true, NULL, run_init},
    {"keys", WITH_HSM, false, NULL, run_keys},
    {"probe", WITH_HSM, false, NULL, run_probe},
    {"wallet-keygen", WITH_HSM, true, NULL, run_wallet_keygen},
    {"audit-key", WITH_HSM, false, NULL, run_audit_key},
    {"audit-verify", OFFLINE, false, cmd_audit_verify, NULL},
    {"pin-split", WITH_HSM, true, NULL, cmd_pin_split},
    {"share-check", OFFLINE, false, cmd_share_check, NULL},
    {"unseal", OFFLINE, false, cmd_unseal, NULL},
    {"backup", WITH_HSM, true, NULL, cmd_backup},
    {"restore", WITH_HSM, true, NULL, cmd_restore},
    {"rotate", WITH_HSM, true, NULL, cmd_rotate},
    {"applepay-key", WITH_HSM, true, NULL, run_applepay_key},
    {"applepay-cert", WITH_HSM, true, NULL, run_applepay_cert},
    {"googlepay-key", WITH_HSM, true, NULL, run_googlepay_key},
    {"samsungpay-key", WITH_HSM, true, NULL, run_samsungpay_key},
    {"trust-anchor", WITH_HSM, true, NULL, run_trust_anchor},
    {"wallet-keys", WITH_HSM, false, NULL, run_wallet_keys},
    {"wallet-import", WITH_HSM, true, NULL, run_wallet_import},
    /* Decrypts a card packet: always recorded (SECURITY.md rule 4). */
    {"wallet-check", WITH_HSM, true, NULL, run_wallet_check},
    {"transcript-verify", OFFLINE, false, cmd_transcript_verify, NULL},
    {NULL, OFFLINE, false, NULL, NULL},
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: tokenvault-ceremony [options] COMMAND\n"
            "\n"
            "commands (docs/OPERATIONS.md has the procedure for each):\n"
            "  init            generate the vault key set in the HSM; with --dek FILE also\n"
            "                  a DEK, written wrapped to FILE (new file, 0600); without it\n"
            "                  tokenvaultd makes the first DEK in its store\n"
            "  keys            list every key: type, attributes, key check value, and a\n"
            "                  warning for any key whose attributes are unsafe\n"
            "                  (with --dek FILE, the DEK too, unwrapped in the HSM;\n"
            "                  with --in BACKUP on a clone, its restored keys are named)\n"
            "  probe           the token's mechanisms and the path each wallet format takes\n"
            "  pin-split       set a fresh random user PIN (from the HSM's RNG) and split it\n"
            "                  into --shares N shares, any --threshold M of which rebuild it;\n"
            "                  --share-dir DIR writes one 0600 file per officer, otherwise each\n"
            "                  share is shown on the terminal to one officer at a time;\n"
            "                  --set-file FILE gets the public check values tokenvaultd\n"
            "                  needs for sealed start; --keep-pin splits the current PIN\n"
            "  backup          clone the HSM's keys: a transport key from the HSM's RNG,\n"
            "                  made CKA_TRUSTED by the SO (--so-pin-file), split into\n"
            "                  --shares N shares (--threshold M, --share-dir DIR,\n"
            "                  --set-file FILE); every key wrapped under it into --out FILE\n"
            "  restore         on another token: --in FILE, --set-file FILE and M --share FILE\n"
            "                  rebuild the transport key; every key is unwrapped with its\n"
            "                  attributes and its check value compared with the backup's\n"
            "  rotate          --kind dek|stk|kek|fpk --store DIR: a new DEK version (stk: a\n"
            "                  new session tag key; kek: a new KEK, and a DEK, an STK and an\n"
            "                  FPK under it; fpk: a new fingerprint key), made in the HSM, current in\n"
            "                  the store; tokenvaultd loads it on SIGHUP and moves every\n"
            "                  record to it (fpk: rebuilds the index; stk: nothing to move)\n"
            "  share-check     print a share's set, index and check value (--share FILE), and\n"
            "                  with --set-file whether it belongs to that set; needs no HSM\n"
            "  unseal          submit one share (--share FILE) to a sealed tokenvaultd over\n"
            "                  its officer socket (--socket PATH), as --officer NAME\n"
            "  transcript-verify  check a ceremony transcript's signature offline: --in FILE\n"
            "                  and --pubkey FILE (from audit-key); needs no HSM\n"
            "  audit-key       print the audit key's public half (PEM), to verify the\n"
            "                  audit log's checkpoints offline\n"
            "  audit-verify    check a store's audit log offline: --store DIR (a copy made\n"
            "                  by tokenvault-admin backup, or the live store) and --pubkey\n"
            "                  FILE (from audit-key); needs no HSM\n"
            "  wallet-keygen   generate a wallet key: --label L --kind ec|rsa|rsa-decrypt;\n"
            "                  prints its public key (DER SubjectPublicKeyInfo, base64)\n"
            "  applepay-key    Apple Pay EC P-256 key --label L and its CSR, signed in the\n"
            "                  HSM, to --out FILE (new file); --subject CN (default: L)\n"
            "  applepay-cert   store Apple's Payment Processing certificate (--in FILE, PEM\n"
            "                  or DER) for key --label L; refused unless it certifies that key\n"
            "  googlepay-key   Google Pay EC P-256 key --label L; prints the public key as\n"
            "                  Google asks for it (base64 uncompressed point)\n"
            "  samsungpay-key  Samsung Pay RSA-2048 key --label L and its CSR to --out FILE\n"
            "  trust-anchor    store a trust anchor --label L from --in FILE: --kind\n"
            "                  apple-root (Apple Root CA - G3) or google-keys (keys.json)\n"
            "  wallet-keys     list wallet keys, their certificates and the trust anchors:\n"
            "                  KCV, merchant id, expiry; with --config FILE (tokenvault.conf)\n"
            "                  also the keys each merchant names (exit 4 if one is missing)\n"
            "  wallet-import   import an existing wallet private key (a merchant moving from\n"
            "                  another processor): --label L --kind ec|rsa|rsa-decrypt --in\n"
            "                  KEYFILE (PEM or DER, PKCS#8/SEC1/PKCS#1, unencrypted, mode\n"
            "                  0600 and yours) [--cert FILE, refused unless it certifies the\n"
            "                  key]; sensitive in the HSM; KEYFILE is not deleted: destroy it\n"
            "  wallet-check    support: open a disputed wallet packet as the service does,\n"
            "                  on the HSM: --config FILE (tokenvault.conf) --packet FILE\n"
            "                  --merchant M [--wallet W] [--at TIME] [--json]; prints each\n"
            "                  check (ok, FAILED, not run) and, if it opens, the card with\n"
            "                  BIN and last 4 only; always leaves a signed transcript\n"
            "\n"
            "options:\n"
            "  --module PATH     PKCS#11 module (default " CEREMONY_DEFAULT_MODULE ")\n"
            "  --module-args S   the module's init string (C_Initialize pReserved), as NSS\n"
            "                    softokn needs: \"configdir='sql:DIR' ...\" (OPERATIONS.md)\n"
            "  --reduced-key-attributes  for a module that cannot store CKA_COPYABLE and\n"
            "                    CKA_ALLOWED_MECHANISMS on token objects (NSS softokn)\n"
            "  --token LABEL     token label, or --token-uri 'pkcs11:token=...'\n"
            "  --pin-file FILE   user PIN, in a file of mode 0600 owned by you\n"
            "  --officer NAME    an officer present (repeat for each); recorded\n"
            "  --transcript FILE the ceremony transcript (new file, 0600), signed with the\n"
            "                    audit key; ceremonies that change the token always write\n"
            "                    one (default ./ceremony-<command>-<time>-<pid>.txt)\n"
            "  --store DIR       also record the ceremony in that store's audit log\n"
            "  --dek FILE        wrapped DEK file (init writes it, keys reads it)\n"
            "  --label L, --kind K   for wallet-keygen, the wallet keys, trust-anchor\n"
            "  --in FILE, --out FILE, --subject CN   for the wallet keys and trust-anchor\n"
            "  --cert FILE       the imported key's certificate (wallet-import)\n"
            "  --threshold M, --shares N, --share-dir DIR, --set-file FILE\n"
            "                    for pin-split (and --keep-pin) and backup\n"
            "  --so-pin-file FILE  the token's SO PIN (0600), for backup\n"
            "  --share FILE      a share file (share-check, unseal)\n"
            "  --socket PATH     tokenvaultd's officer socket (unseal)\n"
            "  --config FILE, --packet FILE, --merchant M   for wallet-check\n"
            "  --wallet W        apple_pay, google_pay or samsung_pay (wallet-check;\n"
            "                    default: told from the packet)\n"
            "  --at TIME         wallet-check's verification time: RFC 3339 UTC\n"
            "                    (2021-09-01T19:03:06Z) or epoch ms (default: now)\n"
            "  --json            wallet-check: one JSON object on the first line\n"
            "  --help            this text\n"
            "\n"
            "exit codes: 0 ok, 1 failure, 2 usage, 3 HSM refused or unavailable, 4 key not found,\n"
            "            5 a key with unsafe attributes\n"
            "            wallet-check: 0 the packet opens, 1 a check fails, 3 the HSM failed,\n"
            "            4 the merchant has no keys for the wallet in --config\n");
}

static int
parse_count(const char *arg, unsigned *out)
{
    char *end = NULL;
    unsigned long v = strtoul(arg, &end, 10);

    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || v > 255)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* wallet-check's long options. */
enum { OPT_WC_CONFIG = 0x1000, OPT_WC_PACKET, OPT_WC_MERCHANT, OPT_WC_WALLET, OPT_WC_AT,
       OPT_WC_JSON, OPT_MODULE_ARGS, OPT_REDUCED, OPT_MARKDOWN };

static int
parse_args(int argc, char **argv, struct ceremony_opts *o, const char **cmd)
{
    static const struct option long_opts[] = {
        {"module", required_argument, NULL, 'm'},   {"token", required_argument, NULL, 't'},
        {"token-uri", required_argument, NULL, 'u'}, {"pin-file", required_argument, NULL, 'p'},
        {"dek", required_argument, NULL, 'd'},      {"label", required_argument, NULL, 'l'},
        {"kind", required_argument, NULL, 'k'},     {"help", no_argument, NULL, 'h'},
        {"store", required_argument, NULL, 's'},    {"pubkey", required_argument, NULL, 'P'},
        {"out", required_argument, NULL, 'o'},      {"in", required_argument, NULL, 'i'},
        {"set-file", required_argument, NULL, 'S'}, {"socket", required_argument, NULL, 'U'},
        {"share", required_argument, NULL, 'H'},    {"officer", required_argument, NULL, 'O'},
        {"threshold", required_argument, NULL, 'M'}, {"shares", required_argument, NULL, 'N'},
        {"keep-pin", no_argument, NULL, 'K'},       {"so-pin-file", required_argument, NULL, 'Q'},
        {"transcript", required_argument, NULL, 'T'},
        {"share-dir", required_argument, NULL, 'D'}, {"subject", required_argument, NULL, 'J'},
        {"cert", required_argument, NULL, 'C'},
        /* wallet-check (numbers past any short option). */
        {"config", required_argument, NULL, OPT_WC_CONFIG},
        {"packet", required_argument, NULL, OPT_WC_PACKET},
        {"merchant", required_argument, NULL, OPT_WC_MERCHANT},
        {"wallet", required_argument, NULL, OPT_WC_WALLET},
        {"at", required_argument, NULL, OPT_WC_AT},
        {"json", no_argument, NULL, OPT_WC_JSON},
        {"module-args", required_argument, NULL, OPT_MODULE_ARGS},
        {"reduced-key-attributes", no_argument, NULL, OPT_REDUCED},
        {"markdown", no_argument, NULL, OPT_MARKDOWN},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->module = optarg; break;
        case OPT_MODULE_ARGS: o->module_args = optarg; break;
        case OPT_REDUCED: o->reduced_key_attributes = 1; break;
        case OPT_MARKDOWN: o->markdown = 1; break;
        case 't': o->token = optarg; break;
        case 'u': o->token_uri = optarg; break;
        case 'p': o->pin_file = optarg; break;
        case 'Q': o->so_pin_file = optarg; break;
        case 'd': o->dek_file = optarg; break;
        case 'l': o->label = optarg; break;
        case 'k': o->kind = optarg; break;
        case 's': o->store = optarg; break;
        case 'P': o->pubkey = optarg; break;
        case 'o': o->out = optarg; break;
        case 'D': o->share_dir = optarg; break;
        case 'i': o->in = optarg; break;
        case 'S': o->set_file = optarg; break;
        case 'U': o->socket = optarg; break;
        case 'T': o->transcript = optarg; break;
        case 'J': o->subject = optarg; break;
        case 'C': o->cert = optarg; break;
        case 'K': o->keep_pin = 1; break;
        case 'H':
            if (o->num_shares == CEREMONY_OFFICERS_MAX) {
                ceremony_err("at most %d --share", CEREMONY_OFFICERS_MAX);
                return EXIT_USAGE;
            }
            o->shares[o->num_shares++] = optarg;
            break;
        case 'O':
            if (o->num_officers == CEREMONY_OFFICERS_MAX) {
                ceremony_err("at most %d --officer", CEREMONY_OFFICERS_MAX);
                return EXIT_USAGE;
            }
            o->officers[o->num_officers++] = optarg;
            break;
        case 'M':
        case 'N':
            if (parse_count(optarg, c == 'M' ? &o->threshold : &o->count) != 0) {
                ceremony_err("--%s takes a number from 0 to 255", c == 'M' ? "threshold" : "shares");
                return EXIT_USAGE;
            }
            break;
        case OPT_WC_CONFIG: wallet_check_opts.config = optarg; break;
        case OPT_WC_PACKET: wallet_check_opts.packet = optarg; break;
        case OPT_WC_MERCHANT: wallet_check_opts.merchant = optarg; break;
        case OPT_WC_WALLET: wallet_check_opts.wallet = optarg; break;
        case OPT_WC_AT: wallet_check_opts.at = optarg; break;
        case OPT_WC_JSON: wallet_check_opts.json = 1; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    *cmd = argv[optind];
    return EXIT_OK;
}

int
main(int argc, char **argv)
{
    struct ceremony_opts o = {.module = CEREMONY_DEFAULT_MODULE};
    struct transcript t = {.saved_fd = -1};
    const struct command *cmd = NULL;
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    hsm_config cfg;
    hsm *h = NULL;
    const char *name = NULL;
    int r, rc;

    if ((rc = parse_args(argc, argv, &o, &name)) != EXIT_OK)
        return rc;
    for (cmd = commands; cmd->name != NULL && strcmp(cmd->name, name) != 0; cmd++)
        ;
    if (cmd->name == NULL) {
        ceremony_err("unknown command %s", name);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (cmd->needs == OFFLINE)
        return cmd->offline(&o);
    if ((o.token == NULL) == (o.token_uri == NULL) || o.pin_file == NULL) {
        ceremony_err("need --pin-file and one of --token or --token-uri");
        return EXIT_USAGE;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.module_path = o.module;
    cfg.init_args = o.module_args;
    cfg.reduced_key_attributes = o.reduced_key_attributes != 0;
    cfg.token_label = o.token;
    cfg.token_uri = o.token_uri;
    /* The command's session, the store writer's, and one for a helper. */
    cfg.max_sessions = 4;
    rc = EXIT_FAIL;
    if ((r = hsm_pin_source_file(&pin, o.pin_file)) != HSM_OK ||
        (r = hsm_open(&h, &cfg, pin)) != HSM_OK) {
        rc = ceremony_report("open", r);
        goto out;
    }
    if ((r = hsm_session_acquire(h, &s)) != HSM_OK) {
        rc = ceremony_report("session", r);
        goto out;
    }
    if ((cmd->record || o.transcript != NULL) && transcript_begin(&t) != EXIT_OK)
        goto out;
    rc = cmd->with_hsm(h, s, &o);
    if (t.capture != NULL && (r = transcript_end(&t, h, s, &o, cmd->name, rc)) != EXIT_OK &&
        rc == EXIT_OK)
        rc = r;
out:
    hsm_session_release(s);
    hsm_close(h);
    hsm_pin_source_free(pin);
    return rc;
}
