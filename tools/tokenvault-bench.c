/*
 * tokenvault-bench - the benchmarks of BENCHMARKS.md, each against a running
 * tokenvaultd through the RPC, beside the raw limit of the same work
 * measured in the same run: the wallets (Apple Pay EC_v1 and Google Pay
 * ECv2 packets decrypted and vaulted), mobile sale sessions and MIT charges.
 *
 *   setup  the wallet side of a benchmark token, as tests/vault/
 *          test_wallet_decrypt.c's group_setup makes it: the vault key set,
 *          an Apple Pay merchant key with its Payment Processing certificate
 *          from a test Apple CA (the CA's root stored as the apple-root
 *          anchor), a Google Pay recipient key and Tink's test root signing
 *          key as the google-ECv2 anchor; the CA and the public keys go to
 *          the state directory for `run`
 *   run    pre-generates N distinct packets of one wallet (distinct
 *          transaction ids: the service refuses replays), then
 *            1. the raw limit: vault_wallets_open (every parse and HSM step
 *               of the packet, exactly what the service calls) and the
 *               vaulting's HSM steps (16 random bytes for the token, the
 *               record sealed with AES-256-GCM under a DEK) on as many
 *               threads as the service has workers, in this process: no
 *               RPC, no TLS, no LMDB, no audit;
 *            2. the service: the same packets over C TLS connections with
 *               the pipelined client API (api_client_submit/collect), up to
 *               P in flight on each (closed loop), or offered at a fixed
 *               rate (--rate: open loop, latency counted from the time each
 *               packet was due, so a late sender cannot hide queueing);
 *          and prints packets/s, latency percentiles, the status of every
 *          answer and the ratio service/raw. Any answer but OK fails the run.
 *   sessions  N SESSION_INIT + SESSION_CHECK pairs (each session checked as
 *          soon as its INIT is answered), then N SESSION_INIT alone and N
 *          SESSION_CHECK of those alone, pipelined over C connections with
 *          up to P in flight each (closed loop);
 *   mit    N cards stored with consent (CARD_STORE), one recurring mandate
 *          each (MANDATE_CREATE), then one MIT_AUTHORIZE per mandate (an
 *          approved charge blocks its mandate for the day: each request
 *          has its own), the same way.
 *          Both first measure two raw limits in this process: the HSM calls
 *          a worker makes (on as many threads as the service has workers),
 *          and the writer's transaction of each request run through the
 *          store's own writer (vault/store.h, durable group commits) in a
 *          scratch store, with C x P requests outstanding. They print
 *          requests/s, latency percentiles, tokenvaultd's CPU per request
 *          (--daemon-pid), the jobs per group commit (from the service's
 *          metrics file) and the ratios to both limits. Any answer but OK
 *          fails the run.
 *
 * It plays Apple and Google (it holds the test CA's and Tink's test signing
 * keys): a benchmark tool, never installed.
 *
 * Exit codes: 0 ok, 1 failure (a non-OK answer included), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "api/client.h"
#include "api/hex.h"
#include "hsm/hsm.h"
#include "tests/support/gen_apple.h"
#include "tests/support/gen_google.h"
#include "vault/cardnum.h"
#include "vault/audit.h"
#include "vault/config.h"
#include "vault/mandate.h"
#include "vault/ops/ops.h"
#include "vault/ops/sessions.h"
#include "vault/ops/sweep.h"
#include "vault/record.h"
#include "vault/store.h"
#include "vault/wallet/codec.h"
#include "vault/wallets.h"

#define PROG "tokenvault-bench"
#include "tools/bench_recipes.h"
#include "tools/tool_err.h"

extern char **environ;

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* The benchmark merchant: scripts/bench's config names these labels. */
#define BENCH_MERCHANT "m-bench"
#define APPLE_KEY_LABEL "bench-apple"
#define GOOGLE_KEY_LABEL "bench-google"
#define APPLE_ROOT_LABEL "bench-apple-root"
#define GOOGLE_ROOT_LABEL "bench-google-root"
/* Apple merchant identifier; the certificate carries its SHA-256. */
#define APPLE_MERCHANT_ID "merchant.com.example.bench"
/* The Tink test signing keys (tests/vectors, relative to --vectors). */
#define GOOGLE_ROOT_FILE "tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_PRIVATE_KEY_PKCS8_BASE64.txt"
#define GOOGLE_INTER_FILE \
    "tink-paymentmethodtoken/GOOGLE_SIGNING_EC_V2_INTERMEDIATE_PRIVATE_KEY_PKCS8_BASE64.txt"
/* Files in the state directory. */
#define STATE_APPLE_CA "apple-ca"
#define STATE_APPLE_SPKI "apple.spki"
#define STATE_GOOGLE_SPKI "google.spki"

/* Test device PANs (the networks' published test numbers, as in
 * test_wallet_decrypt.c) and what the packets say around them. */
#define APPLE_DPAN "4761120010000492"
#define GOOGLE_DPAN "5204740000001002"

/* Time constants. */
#define MS_PER_S UINT64_C(1000)
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
#define HOUR_MS (3600 * MS_PER_S)
/* The Google root anchor stays valid this long after setup: a month of runs. */
#define GOOGLE_ROOT_VALIDITY_MS (30 * 24 * HOUR_MS)
/* Google intermediate key and message validity in the packets: an hour,
 * far beyond a run. */
#define GOOGLE_PACKET_VALIDITY_MS HOUR_MS

/* Defaults and bounds of a run. */
#define PACKETS_DEFAULT 10000u
#define PACKETS_SMOKE 300u
#define PACKETS_MAX 1000000u
#define CONNECTIONS_DEFAULT 2u
#define CONNECTIONS_MAX 256u
#define IN_FLIGHT_DEFAULT 16u
#define RAW_THREADS_MAX 64u
#define RATE_MAX 1000000u
/* --seconds: a day at most. */
#define SECONDS_MAX 86400u
/* Generator threads: packet generation is not measured, only made fast. */
#define GEN_THREADS_MAX 16u
/* Room for a key file read from --vectors (base64 of a PKCS#8 P-256 key is
 * under 200 characters). */
#define SMALL_FILE_MAX 65536u
/* A DER SubjectPublicKeyInfo of the benchmark's keys (P-256: 91 bytes). */
#define SPKI_MAX HSM_SPKI_MAX
/* Status codes are below this (api/proto.h API_STATUS_LIST). */
#define STATUS_SLOTS 128u
/* A config error, an HSM detail: one line. */
#define ERR_MAX 1024u
/* How long the driver waits for one answer (the client's per-collect deadline). */
#define CLIENT_TIMEOUT_MS 30000u
/* Time an Apple packet must have left in the signing window when a phase
 * starts: the phase itself runs seconds to a minute. */
#define FRESH_MARGIN_S 90

/* What the sessions and mit commands send. */
#define BENCH_CURRENCY "EUR"
/* deviceData of a SESSION_INIT: a device fingerprint blob of a typical size. */
#define DEVICE_DATA_LEN 128u
/* Sale amounts vary with the session (minor units): base + i % span. */
#define SALE_AMOUNT_BASE 100u
#define SALE_AMOUNT_SPAN 10000u
/* The cards' expiry: years ahead of any run. */
#define CARD_EXP_MONTH 12u
#define CARD_EXP_YEAR 2031u
/* A Visa PAN: "4", 14 random digits, the Luhn digit. */
#define CARD_PAN_LEN 16u
/* The mandates: recurring every day (the smallest RecurringCount), limits
 * that every charge of the run keeps, ending in a year. */
#define MANDATE_EVERY_DAYS 1u
#define MANDATE_MIN_AMOUNT 1u
#define MANDATE_MAX_AMOUNT 100000000u
#define MANDATE_DAYS 365
#define MIT_AMOUNT 1999u
#define SECONDS_PER_DAY 86400
/* Defaults and bounds of the sessions and mit commands. */
#define SESSIONS_DEFAULT 40000u
#define CHARGES_DEFAULT 50000u
#define CARDS_DEFAULT 20000u
#define QR_REQUESTS_DEFAULT 40000u
/* A QR payment request's lifetime in the run (or [qr] max_lifetime_seconds
 * when that is shorter): long enough that none expires before its redeem. */
#define QR_LIFETIME_S 900u
#define COUNT_SMOKE 300u
#define COUNT_MAX 1000000u
/* The scratch store of the raw store limit (in the --state directory, on
 * the file system of the service's store as scripts/bench lays it out). */
#define RAW_STORE_DIR "raw-store"
/* Room for a million cards with their indexes and audit entries (about
 * 1.5 KB each); the map is sparse, only what is written takes disk. */
#define RAW_STORE_MAP_BYTES (UINT64_C(8) << 30)
/* Records written per setup job of the scratch store. */
#define RAW_STORE_SETUP_BATCH 500u
/* How often the driver looks for the next metrics file, and how much longer
 * than two of the service's intervals it waits for one. */
#define METRICS_POLL_MS 20u
#define METRICS_WAIT_SLACK_MS 2000u
/* perf record: the sampling rate and stack copy of the wallet profiles
 * (scripts/bench), and the time it is given to attach. */
#define PERF_FREQ "299"
#define PERF_CALL_GRAPH "dwarf,16384"
#define PERF_ATTACH_MS 500u

/* ---- messages --------------------------------------------------------------------- */

static void
err_hsm(const char *what, int e)
{
    err("%s: %s (%s)", what, hsm_strerror(e), hsm_last_detail());
}

/* ---- clocks ----------------------------------------------------------------------- */

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

static void
sleep_until_ns(uint64_t t)
{
    struct timespec ts = { .tv_sec = (time_t)(t / NS_PER_S), .tv_nsec = (long)(t % NS_PER_S) };

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* ---- files ------------------------------------------------------------------------ */

/* A regular file of at most SMALL_FILE_MAX bytes, NUL-terminated; *out malloc'd. */
static int
file_read(const char *path, uint8_t **out, size_t *out_len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r = -1;

    if (fd < 0 || fstat(fd, &st) != 0) {
        err("%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > (off_t)SMALL_FILE_MAX) {
        err("%s: not a regular file of at most %u bytes", path, SMALL_FILE_MAX);
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size + 1)) == NULL)
        goto out;
    while (n < (size_t)st.st_size && (got = read(fd, buf + n, (size_t)st.st_size - n)) > 0)
        n += (size_t)got;
    if (n != (size_t)st.st_size) {
        err("%s: short read", path);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    buf = NULL;
    r = 0;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return r;
}

/* A new file (mode 0600, never an existing one) holding |len| bytes. */
static int
file_write_new(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int ok;

    if (fd < 0) {
        err("%s: %s", path, strerror(errno));
        return -1;
    }
    ok = write(fd, data, len) == (ssize_t)len;
    if (close(fd) != 0)
        ok = 0;
    if (!ok) {
        err("%s: write failed", path);
        (void)unlink(path);
        return -1;
    }
    return 0;
}

static int
path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= cap) {
        err("%s/%s: path too long", dir, name);
        return -1;
    }
    return 0;
}

/* A base64 text file (trailing whitespace allowed) decoded; *out malloc'd,
 * the caller wipes it (these are signing keys). */
static int
b64_file_read(const char *dir, const char *rel, uint8_t **out, size_t *out_len)
{
    char path[PATH_MAX];
    uint8_t *text = NULL, *raw = NULL;
    size_t n = 0, cap;
    int r = -1;

    if (path_join(path, sizeof(path), dir, rel) != 0 || file_read(path, &text, &n) != 0)
        return -1;
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
        n--;
    cap = n / 4 * 3 + 3;
    if (n == 0 || (raw = malloc(cap)) == NULL ||
        wallet_b64_decode(raw, cap, out_len, (const char *)text, n) != WALLET_OK) {
        err("%s: not base64", path);
        goto out;
    }
    *out = raw;
    raw = NULL;
    r = 0;
out:
    OPENSSL_cleanse(text, n);
    free(text);
    free(raw);
    return r;
}

/* ---- options ---------------------------------------------------------------------- */

enum opt_id {
    O_MODULE, O_TOKEN, O_PIN_FILE, O_STATE, O_VECTORS, O_CONFIG, O_TLS, O_WALLET, O_PACKETS,
    O_CONNECTIONS, O_IN_FLIGHT, O_RATE, O_RAW_THREADS, O_SMOKE, O_COUNT, O_DAEMON_PID,
    O_PERF, O_MODULE_ARGS, O_REDUCED, O_SWEEP, O_SECONDS, O_NUM
};
#define B(id) (1u << (id))

static const struct option long_opts[] = {
    { "module", required_argument, NULL, O_MODULE },
    { "token", required_argument, NULL, O_TOKEN },
    { "pin-file", required_argument, NULL, O_PIN_FILE },
    { "state", required_argument, NULL, O_STATE },
    { "vectors", required_argument, NULL, O_VECTORS },
    { "config", required_argument, NULL, O_CONFIG },
    { "tls", required_argument, NULL, O_TLS },
    { "wallet", required_argument, NULL, O_WALLET },
    { "packets", required_argument, NULL, O_PACKETS },
    { "connections", required_argument, NULL, O_CONNECTIONS },
    { "in-flight", required_argument, NULL, O_IN_FLIGHT },
    { "rate", required_argument, NULL, O_RATE },
    { "raw-threads", required_argument, NULL, O_RAW_THREADS },
    { "smoke", no_argument, NULL, O_SMOKE },
    { "count", required_argument, NULL, O_COUNT },
    { "daemon-pid", required_argument, NULL, O_DAEMON_PID },
    { "perf", required_argument, NULL, O_PERF },
    { "module-args", required_argument, NULL, O_MODULE_ARGS },
    { "reduced-key-attributes", no_argument, NULL, O_REDUCED },
    { "sweep", no_argument, NULL, O_SWEEP },
    { "seconds", required_argument, NULL, O_SECONDS },
    { NULL, 0, NULL, 0 },
};

struct opts {
    unsigned given;
    const char *v[O_NUM];
};

static int cmd_setup(const struct opts *o);
static int cmd_run(const struct opts *o);
static int cmd_sessions(const struct opts *o);
static int cmd_mit(const struct opts *o);
static int cmd_cards(const struct opts *o);
static int cmd_qr(const struct opts *o);
static int cmd_recipes(const struct opts *o);

static const struct command {
    const char *name;
    unsigned needs, takes;
    int (*fn)(const struct opts *o);
} commands[] = {
    { "setup", B(O_MODULE) | B(O_TOKEN) | B(O_PIN_FILE) | B(O_STATE) | B(O_VECTORS), 0, cmd_setup },
    { "run", B(O_CONFIG) | B(O_STATE) | B(O_VECTORS) | B(O_TLS) | B(O_WALLET),
      B(O_PACKETS) | B(O_CONNECTIONS) | B(O_IN_FLIGHT) | B(O_RATE) | B(O_RAW_THREADS) | B(O_SMOKE) |
          B(O_SECONDS),
      cmd_run },
    { "sessions", B(O_CONFIG) | B(O_STATE) | B(O_TLS),
      B(O_COUNT) | B(O_CONNECTIONS) | B(O_IN_FLIGHT) | B(O_RAW_THREADS) | B(O_SMOKE) |
          B(O_DAEMON_PID) | B(O_PERF) | B(O_SECONDS),
      cmd_sessions },
    { "mit", B(O_CONFIG) | B(O_STATE) | B(O_TLS),
      B(O_COUNT) | B(O_CONNECTIONS) | B(O_IN_FLIGHT) | B(O_RAW_THREADS) | B(O_SMOKE) |
          B(O_DAEMON_PID) | B(O_PERF) | B(O_SECONDS),
      cmd_mit },
    { "cards", B(O_CONFIG) | B(O_STATE) | B(O_TLS),
      B(O_COUNT) | B(O_CONNECTIONS) | B(O_IN_FLIGHT) | B(O_RAW_THREADS) | B(O_SMOKE) |
          B(O_DAEMON_PID) | B(O_PERF) | B(O_SWEEP) | B(O_SECONDS),
      cmd_cards },
    { "qr", B(O_CONFIG) | B(O_STATE) | B(O_TLS),
      B(O_COUNT) | B(O_CONNECTIONS) | B(O_IN_FLIGHT) | B(O_RAW_THREADS) | B(O_SMOKE) |
          B(O_DAEMON_PID) | B(O_PERF) | B(O_SECONDS),
      cmd_qr },
    { "recipes", B(O_MODULE) | B(O_TOKEN) | B(O_PIN_FILE),
      B(O_MODULE_ARGS) | B(O_REDUCED) | B(O_COUNT) | B(O_SMOKE), cmd_recipes },
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " setup --module SO --token LABEL --pin-file F --state DIR --vectors DIR\n"
            "       " PROG " run --config CONF --state DIR --vectors DIR --tls DIR\n"
            "                --wallet apple|google [--packets N] [--connections C]\n"
            "                [--in-flight P] [--rate PACKETS_PER_S] [--raw-threads T]\n"
            "                [--seconds S] [--smoke]\n"
            "  setup: the vault keys, the wallet keys and anchors in the token (an empty one),\n"
            "         the test Apple CA and the public keys into DIR (new)\n"
            "  run:   N packets (default %u, --smoke %u) through the raw HSM steps on T threads\n"
            "         (default: the config's workers), then through tokenvaultd over C TLS\n"
            "         connections (default %u) with up to P in flight each (default %u);\n"
            "         --rate offers them at a fixed rate instead (open loop)\n"
            "       " PROG " sessions|mit|cards|qr --config CONF --state DIR --tls DIR\n"
            "                [--count N] [--connections C] [--in-flight P] [--raw-threads T]\n"
            "                [--daemon-pid PID [--perf FILE]] [--seconds S] [--smoke]\n"
            "  sessions: N SESSION_INIT + SESSION_CHECK pairs (default %u, --smoke %u), then N\n"
            "         of each alone, beside the raw limits: the HSM calls on T threads, the\n"
            "         store's transactions in a scratch store in DIR\n"
            "  mit:   N cards with a recurring mandate each (default %u), one MIT_AUTHORIZE\n"
            "         per mandate, beside the same raw limits\n"
            "  cards: N new cards (default %u): CARD_STORE, then CARD_GET, CARD_LIST and\n"
            "         CARD_REVEAL of each, beside the raw limits of the same HSM calls, the\n"
            "         same write transactions and the same reads\n"
            "         --sweep: then STORE (of new cards), GET and REVEAL offered open loop at\n"
            "         25..110 %% of what the closed loop did: the latency curve\n"
            "  qr:    N QR_ISSUE + QR_REDEEM pairs (default %u), then N of each alone, beside\n"
            "         the same kinds of raw limits\n"
            "         --daemon-pid: tokenvaultd's, for its CPU time per request; --perf: a\n"
            "         perf record of it during the pairs (sessions, qr), MIT or CARD_STORE phase\n"
            "         into FILE\n"
            "       " PROG " recipes --module SO --token LABEL --pin-file F [--module-args S]\n"
            "                [--reduced-key-attributes] [--count N] [--smoke]\n"
            "  --seconds S: a time limit on each measured phase through the service: no new\n"
            "         packet, item or pair starts after S seconds; the phase reports on what\n"
            "         it did, and a later phase uses only what an earlier one made\n"
            "  recipes: the token's part of each wallet format (default %u messages each,\n"
            "         --smoke %u), one thread, by the path the module's probe chose; makes\n"
            "         two keys in the token (use a scratch one)\n",
            PACKETS_DEFAULT, PACKETS_SMOKE, CONNECTIONS_DEFAULT, IN_FLIGHT_DEFAULT,
            SESSIONS_DEFAULT, COUNT_SMOKE, CHARGES_DEFAULT, CARDS_DEFAULT, QR_REQUESTS_DEFAULT,
            RECIPES_DEFAULT,
            RECIPES_SMOKE);
}

/* A decimal in [lo, hi]. */
static int
parse_uint(const char *name, const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end = NULL;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' || v < lo || v > hi) {
        err("--%s: %s is not a number in %u..%u", name, s, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

/* ---- the token's wallet side (setup) ---------------------------------------------- */

static int
cmd_setup(const struct opts *o)
{
    static const struct {
        hsm_key_kind kind;
        const char *label;
    } vault_keys[] = {
        /* What tokenvault-ceremony init makes (tests/support/daemon.c make_keys). */
        { HSM_KIND_KEK, "vault-kek-v1" },
        { HSM_KIND_HMAC, "vault-fingerprint" },
        { HSM_KIND_HMAC, "vault-session-mac" },
        { HSM_KIND_EC_SIGN, "vault-audit-sign" },
    };
    const hsm_config hc = {
        .module_path = o->v[O_MODULE],
        .token_label = strncmp(o->v[O_TOKEN], "pkcs11:", 7) == 0 ? NULL : o->v[O_TOKEN],
        .token_uri = strncmp(o->v[O_TOKEN], "pkcs11:", 7) == 0 ? o->v[O_TOKEN] : NULL,
    };
    hsm_pin_source *pin = NULL;
    hsm *h = NULL;
    hsm_session *s = NULL;
    hsm_key *k = NULL;
    struct gen_apple_ca *ca = NULL;
    uint8_t apple_spki[SPKI_MAX], google_spki[SPKI_MAX], merchant_id[SHA256_DIGEST_LENGTH];
    uint8_t *cert = NULL, *root = NULL, *root_spki = NULL;
    size_t apple_spki_len = 0, google_spki_len = 0, cert_len = 0, root_len = 0, root_spki_len = 0;
    char path[PATH_MAX];
    int e, r = EXIT_FAIL;

    if (mkdir(o->v[O_STATE], 0700) != 0 && errno != EEXIST) {
        err("%s: %s", o->v[O_STATE], strerror(errno));
        return EXIT_FAIL;
    }
    if ((e = hsm_pin_source_file(&pin, o->v[O_PIN_FILE])) != HSM_OK ||
        (e = hsm_open(&h, &hc, pin)) != HSM_OK || (e = hsm_session_acquire(h, &s)) != HSM_OK) {
        err_hsm("the token", e);
        goto out;
    }
    for (size_t i = 0; i < sizeof(vault_keys) / sizeof(vault_keys[0]); i++) {
        if ((e = hsm_key_generate(s, vault_keys[i].kind, vault_keys[i].label, &k)) != HSM_OK) {
            err_hsm(vault_keys[i].label, e);
            goto out;
        }
    }
    /* Apple: a key made in the HSM, its Payment Processing certificate from
     * the test CA, and the test root as the pinned anchor. */
    SHA256((const uint8_t *)APPLE_MERCHANT_ID, strlen(APPLE_MERCHANT_ID), merchant_id);
    if ((ca = gen_apple_ca_new(0)) == NULL) {
        err_ssl("the test Apple CA");
        goto out;
    }
    if ((e = hsm_key_generate(s, HSM_KIND_EC_DERIVE, APPLE_KEY_LABEL, &k)) != HSM_OK ||
        (e = hsm_key_public_spki(s, k, apple_spki, sizeof(apple_spki), &apple_spki_len)) !=
            HSM_OK) {
        err_hsm("the Apple Pay key", e);
        goto out;
    }
    if (gen_apple_merchant_cert(ca, apple_spki, apple_spki_len, merchant_id, &cert, &cert_len) !=
        0) {
        err_ssl("the Apple Pay certificate");
        goto out;
    }
    if ((e = hsm_key_cert_store(s, k, cert, cert_len)) != HSM_OK ||
        (e = hsm_anchor_cert_store(s, APPLE_ROOT_LABEL, HSM_ANCHOR_SET_APPLE_ROOT, ca->root_der,
                                   (size_t)ca->root_der_len)) != HSM_OK) {
        err_hsm("the Apple certificate and root", e);
        goto out;
    }
    /* Google: a recipient key, and Tink's test root key as the ECv2 anchor. */
    if (b64_file_read(o->v[O_VECTORS], GOOGLE_ROOT_FILE, &root, &root_len) != 0)
        goto out;
    if ((e = hsm_key_generate(s, HSM_KIND_EC_DERIVE, GOOGLE_KEY_LABEL, &k)) != HSM_OK ||
        (e = hsm_key_public_spki(s, k, google_spki, sizeof(google_spki), &google_spki_len)) !=
            HSM_OK) {
        err_hsm("the Google Pay key", e);
        goto out;
    }
    if (gen_google_spki(root, root_len, &root_spki, &root_spki_len) != 0) {
        err_ssl("the Google root key");
        goto out;
    }
    if ((e = hsm_anchor_key_store(s, GOOGLE_ROOT_LABEL, HSM_ANCHOR_SET_GOOGLE_PREFIX "ECv2",
                                  root_spki, root_spki_len,
                                  now_ms() + GOOGLE_ROOT_VALIDITY_MS)) != HSM_OK) {
        err_hsm("the Google root anchor", e);
        goto out;
    }
    if (path_join(path, sizeof(path), o->v[O_STATE], STATE_APPLE_CA) != 0)
        goto out;
    if (gen_apple_ca_save(ca, path) != 0) {
        err("%s: %s", path, strerror(errno));
        goto out;
    }
    if (path_join(path, sizeof(path), o->v[O_STATE], STATE_APPLE_SPKI) != 0 ||
        file_write_new(path, apple_spki, apple_spki_len) != 0 ||
        path_join(path, sizeof(path), o->v[O_STATE], STATE_GOOGLE_SPKI) != 0 ||
        file_write_new(path, google_spki, google_spki_len) != 0)
        goto out;
    printf("token ready: vault keys, %s (Apple Pay, certificate from the test CA), %s (Google "
           "Pay), anchors %s and %s; state in %s\n",
           APPLE_KEY_LABEL, GOOGLE_KEY_LABEL, APPLE_ROOT_LABEL, GOOGLE_ROOT_LABEL,
           o->v[O_STATE]);
    r = EXIT_OK;
out:
    hsm_session_release(s);
    hsm_close(h);
    hsm_pin_source_free(pin);
    gen_apple_ca_free(ca);
    free(cert);
    free(root_spki);
    if (root != NULL)
        OPENSSL_cleanse(root, root_len);
    free(root);
    return r;
}

/* ---- packets ---------------------------------------------------------------------- */

enum bench_wallet { BENCH_APPLE, BENCH_GOOGLE };

/* What the generators need, loaded from the state directory. */
struct gen_ctx {
    enum bench_wallet wallet;
    struct gen_apple_ca *ca;
    uint8_t merchant_id[SHA256_DIGEST_LENGTH];
    uint8_t spki[SPKI_MAX];
    size_t spki_len;
    uint8_t *google_root, *google_inter;
    size_t google_root_len, google_inter_len;
    uint64_t key_expiration_ms; /* one intermediate key for the run, as Google rotates daily */
    char run_tag[17];           /* random hex: message ids distinct across runs */
    time_t signing_time;
};

struct packets {
    char **p;
    size_t *len;
    size_t n;
};

static char *
apple_packet(const struct gen_ctx *g)
{
    static const char plain[] =
        "{\"applicationPrimaryAccountNumber\":\"" APPLE_DPAN "\","
        "\"applicationExpirationDate\":\"301231\",\"currencyCode\":\"826\","
        "\"transactionAmount\":4250,\"deviceManufacturerIdentifier\":\"040010030273\","
        "\"paymentDataType\":\"3DSecure\","
        "\"paymentData\":{\"onlinePaymentCryptogram\":\"AgAAAAAABk4DWZ4C28yUQAAAAAA=\","
        "\"eciIndicator\":\"7\"}}";

    /* gen_apple_token draws a random transactionId for each packet. */
    return gen_apple_token(g->ca, "EC_v1", g->spki, g->spki_len, g->merchant_id, plain,
                           g->signing_time, NULL);
}

static char *
google_packet(const struct gen_ctx *g, size_t i)
{
    char *msg = NULL, *out = NULL;
    struct gen_google_params p = {
        .protocol = "ECv2",
        .recipient_spki = g->spki,
        .recipient_spki_len = g->spki_len,
        .recipient_id = "merchant:" BENCH_MERCHANT,
        .key_expiration_ms = g->key_expiration_ms,
        .root_pkcs8 = g->google_root,
        .root_pkcs8_len = g->google_root_len,
        .intermediate_pkcs8 = g->google_inter,
        .intermediate_pkcs8_len = g->google_inter_len,
    };

    if (asprintf(&msg,
                 "{\"messageExpiration\":\"%" PRIu64 "\",\"messageId\":\"bench-%s-%zu\","
                 "\"paymentMethod\":\"CARD\",\"paymentMethodDetails\":{\"pan\":\"" GOOGLE_DPAN
                 "\",\"expirationMonth\":12,\"expirationYear\":2031,\"authMethod\":"
                 "\"CRYPTOGRAM_3DS\",\"cryptogram\":\"AAAAAA8AAAAAAAAAAAAAAAAAAAA=\","
                 "\"eciIndicator\":\"05\"}}",
                 g->key_expiration_ms, g->run_tag, i) < 0)
        return NULL;
    p.plaintext = (const uint8_t *)msg;
    p.plaintext_len = strlen(msg);
    if (gen_google_token(&p, &out, NULL) != 0)
        out = NULL;
    free(msg);
    return out;
}

struct gen_job {
    const struct gen_ctx *g;
    struct packets *pk;
    atomic_size_t *next;
    bool failed;
};

static void *
gen_thread(void *arg)
{
    struct gen_job *j = arg;
    size_t i;

    while ((i = atomic_fetch_add(j->next, 1)) < j->pk->n) {
        char *p = j->g->wallet == BENCH_APPLE ? apple_packet(j->g) : google_packet(j->g, i);

        if (p == NULL) {
            j->failed = true;
            break;
        }
        j->pk->p[i] = p;
        j->pk->len[i] = strlen(p);
    }
    return NULL;
}

static void
packets_free(struct packets *pk)
{
    if (pk->p != NULL)
        for (size_t i = 0; i < pk->n; i++)
            free(pk->p[i]);
    free(pk->p);
    free(pk->len);
    memset(pk, 0, sizeof(*pk));
}

/* N packets on as many threads as there are CPUs. */
static int
packets_make(struct packets *pk, const struct gen_ctx *g, size_t n)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t nt = cpus < 1 ? 1 : (size_t)cpus > GEN_THREADS_MAX ? GEN_THREADS_MAX : (size_t)cpus;
    pthread_t th[GEN_THREADS_MAX];
    struct gen_job jobs[GEN_THREADS_MAX];
    atomic_size_t next = 0;
    size_t started = 0;
    int r = 0;

    pk->n = n;
    pk->p = calloc(n, sizeof(*pk->p));
    pk->len = calloc(n, sizeof(*pk->len));
    if (pk->p == NULL || pk->len == NULL) {
        err("out of memory for %zu packets", n);
        return -1;
    }
    for (size_t t = 0; t < nt; t++) {
        jobs[t] = (struct gen_job){ .g = g, .pk = pk, .next = &next };
        if (pthread_create(&th[t], NULL, gen_thread, &jobs[t]) != 0)
            break;
        started++;
    }
    for (size_t t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        if (jobs[t].failed)
            r = -1;
    }
    if (started == 0 || r != 0) {
        err_ssl("packet generation failed");
        return -1;
    }
    return 0;
}

static int
gen_ctx_load(struct gen_ctx *g, const struct opts *o)
{
    char path[PATH_MAX];
    uint8_t *spki = NULL, rnd[8];
    size_t spki_len = 0;
    int r = -1;

    SHA256((const uint8_t *)APPLE_MERCHANT_ID, strlen(APPLE_MERCHANT_ID), g->merchant_id);
    if (path_join(path, sizeof(path), o->v[O_STATE],
                  g->wallet == BENCH_APPLE ? STATE_APPLE_SPKI : STATE_GOOGLE_SPKI) != 0 ||
        file_read(path, &spki, &spki_len) != 0)
        goto out;
    if (spki_len > sizeof(g->spki)) {
        err("%s: not a P-256 public key", path);
        goto out;
    }
    memcpy(g->spki, spki, spki_len);
    g->spki_len = spki_len;
    if (g->wallet == BENCH_APPLE) {
        if (path_join(path, sizeof(path), o->v[O_STATE], STATE_APPLE_CA) != 0)
            goto out;
        if ((g->ca = gen_apple_ca_load(path)) == NULL) {
            err_ssl("the test Apple CA (run setup first)");
            goto out;
        }
    } else if (b64_file_read(o->v[O_VECTORS], GOOGLE_ROOT_FILE, &g->google_root,
                             &g->google_root_len) != 0 ||
               b64_file_read(o->v[O_VECTORS], GOOGLE_INTER_FILE, &g->google_inter,
                             &g->google_inter_len) != 0) {
        goto out;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        err_ssl("RAND_bytes");
        goto out;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(g->run_tag + 2 * i, 3, "%02x", rnd[i]);
    g->key_expiration_ms = now_ms() + GOOGLE_PACKET_VALIDITY_MS;
    g->signing_time = time(NULL);
    r = 0;
out:
    free(spki);
    return r;
}

static void
gen_ctx_free(struct gen_ctx *g)
{
    gen_apple_ca_free(g->ca);
    if (g->google_root != NULL)
        OPENSSL_cleanse(g->google_root, g->google_root_len);
    if (g->google_inter != NULL)
        OPENSSL_cleanse(g->google_inter, g->google_inter_len);
    free(g->google_root);
    free(g->google_inter);
    memset(g, 0, sizeof(*g));
}

/* ---- statistics ------------------------------------------------------------------- */

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

struct lat_stats {
    double p50, p95, p99, p999, max; /* ms */
};

/* Nearest-rank percentiles of the |n| samples (ns) at |v|; sorts |v|. A
 * sample of 0 is an item that was never sent (a phase cut short by
 * --seconds) and is left out: no request is answered in 0 ns. */
static void
lat_stats_get(uint64_t *v, size_t n, struct lat_stats *out)
{
    double q[] = { 0.50, 0.95, 0.99, 0.999 };
    double *dst[] = { &out->p50, &out->p95, &out->p99, &out->p999 };
    size_t unsent = 0;

    memset(out, 0, sizeof(*out));
    qsort(v, n, sizeof(*v), cmp_u64);
    while (unsent < n && v[unsent] == 0)
        unsent++;
    v += unsent;
    n -= unsent;
    if (n == 0)
        return;
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        size_t rank = (size_t)(q[i] * (double)n + 0.999999);

        *dst[i] = (double)v[(rank == 0 ? 1 : rank) - 1] / (double)NS_PER_MS;
    }
    out->max = (double)v[n - 1] / (double)NS_PER_MS;
}

/* ---- the raw HSM limit ------------------------------------------------------------ */

/* CPU time (user + system) of this process so far, seconds. */
static double
cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

struct raw_ctx {
    hsm *h;
    struct vault_wallets *engine;
    hsm_key *dek;
    int wallet; /* enum api_wallet */
    const struct packets *pk;
    uint64_t *lat;
    atomic_size_t next;
    atomic_size_t failed;
    atomic_flag reported;
};

/* What the service's worker does after the packet is open (vault/ops/
 * wallets.c vault_card): the DPAN checked, a token from 16 HSM random bytes,
 * the record sealed under the DEK (AES-256-GCM in the HSM, IV from its RNG). */
static int
raw_vault(hsm_session *s, hsm_key *dek, const struct wallet_card *card, char *why, size_t cap)
{
    struct card_record rec;
    struct card_secret sec;
    uint8_t rnd[CARDNUM_OPAQUE_RANDOM_LEN];
    char token[API_ID_MAX + 1];
    enum api_brand brand;
    size_t pan_len = strlen(card->pan);
    int r = -1;

    memset(&rec, 0, sizeof(rec));
    memset(&sec, 0, sizeof(sec));
    if (cardnum_check(card->pan, &brand) != 0) {
        snprintf(why, cap, "the device PAN fails its check");
        goto out;
    }
    rec.kind = API_CARD_KIND_DPAN;
    rec.flags = RECORD_F_ACTIVE;
    rec.brand = (uint8_t)brand;
    rec.exp_month = card->exp_month;
    rec.exp_year = card->exp_year;
    memcpy(rec.bin, card->pan, cardnum_bin_len(pan_len));
    memcpy(rec.last4, card->pan + pan_len - API_LAST4_LEN, API_LAST4_LEN);
    snprintf(rec.merchant, sizeof(rec.merchant), "%s", BENCH_MERCHANT);
    memcpy(sec.pan, card->pan, sizeof(sec.pan));
    if (hsm_random(s, rnd, sizeof(rnd)) != HSM_OK ||
        cardnum_token_opaque(token, sizeof(token), rnd) != 0 ||
        record_seal(s, dek, 1, token, &rec, &sec) != 0) {
        snprintf(why, cap, "vaulting: %s", hsm_last_detail());
        goto out;
    }
    r = 0;
out:
    record_secret_wipe(&sec);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return r;
}

static void *
raw_thread(void *arg)
{
    struct raw_ctx *c = arg;
    hsm_session *s = NULL;
    struct wallet_card card;
    char why[WALLET_WHY_MAX];
    size_t i;
    int e;

    if ((e = hsm_session_acquire(c->h, &s)) != HSM_OK) {
        err_hsm("raw: a session", e);
        atomic_fetch_add(&c->failed, 1);
        return NULL;
    }
    while ((i = atomic_fetch_add(&c->next, 1)) < c->pk->n) {
        uint64_t t0 = mono_ns();

        memset(&card, 0, sizeof(card));
        why[0] = '\0';
        e = vault_wallets_open(c->engine, s, BENCH_MERCHANT, c->wallet, c->pk->p[i],
                               c->pk->len[i], now_ms(), NULL, &card, why, sizeof(why));
        if (e == WALLET_OK)
            e = raw_vault(s, c->dek, &card, why, sizeof(why));
        wallet_card_wipe(&card);
        c->lat[i] = mono_ns() - t0;
        if (e != 0) {
            atomic_fetch_add(&c->failed, 1);
            if (!atomic_flag_test_and_set(&c->reported))
                err("raw: packet %zu: %s: %s", i, e < 0 ? wallet_err_name(e) : "", why);
        }
    }
    hsm_session_release(s);
    return NULL;
}

struct raw_result {
    double seconds, pps;
    double cpu_ms; /* CPU time per packet, all threads, ms */
    struct lat_stats lat;
};

/* The raw limit: |threads| threads, each with its own session, over every
 * packet. The hsm is this process's own (SoftHSM keeps no state between
 * processes beyond the token files). */
/* The config's token, opened in this process with room for |max_sessions|
 * sessions; *pin and *out are the caller's to free. */
static int
raw_hsm_open(const struct vault_config *cfg, unsigned max_sessions, hsm_pin_source **pin,
             hsm **out)
{
    const hsm_config hc = {
        .module_path = cfg->hsm_module,
        .token_label = strncmp(cfg->hsm_token, "pkcs11:", 7) == 0 ? NULL : cfg->hsm_token,
        .token_uri = strncmp(cfg->hsm_token, "pkcs11:", 7) == 0 ? cfg->hsm_token : NULL,
        .max_sessions = max_sessions,
    };
    int e;

    if (cfg->pin_source != VAULT_PIN_FILE) {
        err("raw: the config's PIN must come from a file (pin_source = file)");
        return -1;
    }
    if ((e = hsm_pin_source_file(pin, cfg->pin_file)) != HSM_OK ||
        (e = hsm_open(out, &hc, *pin)) != HSM_OK) {
        err_hsm("raw: the token", e);
        return -1;
    }
    return 0;
}

/* A wrapped key of our own of |kind|, as the service makes its DEKs and
 * session tag keys: generated in the token under the KEK and loaded as a
 * session object. */
static int
raw_wrapped(hsm_session *s, hsm_key_kind kind, const char *label, hsm_key **out)
{
    hsm_key *kek = NULL;
    uint8_t wrapped[HSM_WRAPPED_KEY_LEN], kcv[HSM_KCV_LEN];
    int e;

    if ((e = hsm_key_find(s, "vault-kek-v1", &kek)) != HSM_OK ||
        (e = hsm_wrapped_generate(s, kek, kind, wrapped, kcv)) != HSM_OK ||
        (e = hsm_wrapped_load(s, kek, kind, label, wrapped, sizeof(wrapped), kcv, out)) != HSM_OK) {
        err_hsm(kind == HSM_KIND_DEK ? "raw: a DEK" : "raw: an HMAC key", e);
        return -1;
    }
    return 0;
}

static int
raw_dek(hsm_session *s, hsm_key **out)
{
    return raw_wrapped(s, HSM_KIND_DEK, "bench-raw-dek", out);
}

static int
raw_run(const struct vault_config *cfg, int wallet, const struct packets *pk, unsigned threads,
        struct raw_result *out)
{
    struct raw_ctx c;
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    pthread_t th[RAW_THREADS_MAX];
    char why[ERR_MAX];
    unsigned started = 0;
    uint64_t t0, t1;
    double cpu0;
    int e, r = -1;

    memset(&c, 0, sizeof(c));
    atomic_flag_clear(&c.reported);
    c.wallet = wallet;
    c.pk = pk;
    if ((c.lat = calloc(pk->n, sizeof(*c.lat))) == NULL)
        return -1;
    if (raw_hsm_open(cfg, threads + 1, &pin, &c.h) != 0)
        goto out;
    if ((e = hsm_session_acquire(c.h, &s)) != HSM_OK) {
        err_hsm("raw: a session", e);
        goto out;
    }
    if (vault_wallets_load(&c.engine, s, cfg, why, sizeof(why)) != 0) {
        err("raw: wallets: %s", why);
        goto out;
    }
    if (raw_dek(s, &c.dek) != 0)
        goto out;
    hsm_session_release(s);
    s = NULL;
    t0 = mono_ns();
    cpu0 = cpu_seconds();
    for (; started < threads; started++)
        if (pthread_create(&th[started], NULL, raw_thread, &c) != 0)
            break;
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    t1 = mono_ns();
    if (started != threads || atomic_load(&c.failed) != 0) {
        err("raw: %zu of %zu packets failed", atomic_load(&c.failed), pk->n);
        goto out;
    }
    out->seconds = (double)(t1 - t0) / (double)NS_PER_S;
    out->pps = (double)pk->n / out->seconds;
    out->cpu_ms = (cpu_seconds() - cpu0) * (double)MS_PER_S / (double)pk->n;
    lat_stats_get(c.lat, pk->n, &out->lat);
    r = 0;
out:
    hsm_session_release(s);
    vault_wallets_free(c.engine);
    hsm_close(c.h);
    hsm_pin_source_free(pin);
    free(c.lat);
    return r;
}

/* ---- the service over the RPC ----------------------------------------------------- */

/* The client's certificate files in the --tls directory. */
struct client_files {
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
};

/* A client of the service of |cfg| with the certificate in |tls| and up to
 * |in_flight| requests pipelined; |cf| holds the paths |cc| points to. */
static int
client_config_fill(struct api_client_config *cc, struct client_files *cf,
                   const struct vault_config *cfg, const char *tls, unsigned in_flight)
{
    memset(cc, 0, sizeof(*cc));
    if (path_join(cf->ca, sizeof(cf->ca), tls, "ca.pem") != 0 ||
        path_join(cf->cert, sizeof(cf->cert), tls, "client.pem") != 0 ||
        path_join(cf->key, sizeof(cf->key), tls, "client.key") != 0)
        return -1;
    cc->host = cfg->listen_host;
    /* A listener on every address is reached on the loopback. */
    if (strcmp(cfg->listen_host, "0.0.0.0") == 0 || strcmp(cfg->listen_host, "::") == 0)
        cc->host = "127.0.0.1";
    cc->port = cfg->listen_port;
    cc->server_name = "localhost";
    cc->ca_file = cf->ca;
    cc->cert_file = cf->cert;
    cc->key_file = cf->key;
    cc->request_timeout_ms = CLIENT_TIMEOUT_MS;
    cc->max_in_flight = in_flight;
    return 0;
}

struct svc_ctx {
    const struct packets *pk;
    int wallet;              /* enum api_wallet */
    const char *version;     /* what every answer must say: "EC_v1", "ECv2" */
    unsigned connections;
    unsigned in_flight;
    unsigned rate;           /* 0: closed loop */
    uint64_t t0;             /* start, monotonic ns (rate: packet j is due at t0 + j / rate) */
    uint64_t deadline;       /* --seconds: no packet starts after it (0: none) */
    uint64_t *lat;           /* per packet, ns */
    uint64_t *lag;           /* rate: per packet, how late it was sent, ns */
    pthread_barrier_t start;
};

struct svc_thread {
    struct svc_ctx *c;
    unsigned index;
    struct api_client *client;
    uint64_t *sent_at;  /* per request of this thread, ns (due time with --rate) */
    size_t *packet_of;  /* per request of this thread: the packet index */
    uint64_t counts[STATUS_SLOTS];
    uint64_t wrong;     /* OK answers that do not say what the packet holds */
    size_t sent;        /* packets sent */
    int client_err;     /* an API_ERR_* that stopped the thread */
    bool reported;
};

/* The k-th packet of thread |t|: packets are dealt round-robin, so with
 * --rate the connections together offer packet j at t0 + j / rate. */
static size_t
packet_index(const struct svc_ctx *c, unsigned t, size_t k)
{
    return (size_t)t + k * c->connections;
}

static size_t
thread_packets(const struct svc_ctx *c, unsigned t)
{
    return t >= c->pk->n ? 0 : (c->pk->n - t + c->connections - 1) / c->connections;
}

static uint64_t
due_ns(const struct svc_ctx *c, size_t j)
{
    return c->t0 + (uint64_t)((double)j * (double)NS_PER_S / (double)c->rate);
}

static void
note_reply(struct svc_thread *t, const struct api_reply *rep, uint64_t id0, uint64_t now)
{
    struct svc_ctx *c = t->c;
    uint64_t k = rep->request_id - id0;
    size_t j;

    if (rep->request_id < id0 || k >= thread_packets(c, t->index)) {
        /* The client numbers a connection's requests 1, 2, ...: anything
         * else is not one of ours. */
        t->client_err = API_ERR_PROTOCOL;
        return;
    }
    j = t->packet_of[k];
    c->lat[j] = now - t->sent_at[k];
    if (rep->status <= 0 && (unsigned)-rep->status < STATUS_SLOTS)
        t->counts[(unsigned)-rep->status]++;
    else
        t->counts[API_STATUS_INTERNAL]++;
    if (rep->status == 0) {
        const struct api_wallet_decrypt_resp *resp = rep->msg;

        if (rep->opcode != API_OP_WALLET_DECRYPT || resp->wallet != c->wallet ||
            strcmp(resp->wallet_version, c->version) != 0)
            t->wrong++;
    } else if (!t->reported) {
        t->reported = true;
        err("packet %zu: %s: %s", j, api_status_name((unsigned)-rep->status),
            rep->error.message);
    }
}

static void *
svc_thread(void *arg)
{
    struct svc_thread *t = arg;
    struct svc_ctx *c = t->c;
    size_t n = thread_packets(c, t->index), k = 0, done = 0;
    struct api_wallet_decrypt_req q;
    struct api_reply rep;
    uint64_t id = 0, id0 = 0;
    int r;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "%s", BENCH_MERCHANT);
    q.wallet = (uint8_t)c->wallet;
    pthread_barrier_wait(&c->start);
    while (done < n && t->client_err == 0) {
        uint64_t now = mono_ns();
        size_t j;
        bool can_send;

        if (c->deadline != 0 && k < n && now >= c->deadline) {
            n = k; /* --seconds: what was sent is answered, nothing new starts */
            if (done >= n)
                break;
        }
        j = k < n ? packet_index(c, t->index, k) : 0;
        can_send = k < n && api_client_in_flight(t->client) < c->in_flight;
        if (can_send && (c->rate == 0 || due_ns(c, j) <= now)) {
            q.packet.data = (const uint8_t *)c->pk->p[j];
            q.packet.len = c->pk->len[j];
            t->packet_of[k] = j;
            if (c->rate != 0) {
                t->sent_at[k] = due_ns(c, j);
                c->lag[j] = now - t->sent_at[k];
            } else {
                t->sent_at[k] = now;
            }
            if ((r = api_client_submit(t->client, API_OP_WALLET_DECRYPT, &q, &id)) != 0) {
                t->client_err = r;
                break;
            }
            if (k == 0)
                id0 = id;
            k++;
            continue;
        }
        if (api_client_in_flight(t->client) == 0) {
            sleep_until_ns(due_ns(c, j)); /* rate only: nothing to wait for but the clock */
            continue;
        }
        memset(&rep, 0, sizeof(rep));
        if ((r = api_client_collect(t->client, &rep)) != 0) {
            t->client_err = r;
            break;
        }
        note_reply(t, &rep, id0, mono_ns());
        api_reply_cleanup(&rep);
        done++;
    }
    t->sent = k;
    return NULL;
}

struct svc_result {
    uint64_t sent;     /* packets sent (all of them, unless --seconds cut the run short) */
    double seconds, pps;
    double client_cpu; /* this process's CPU time during the run / wall time: cores */
    struct lat_stats lat, lag;
    uint64_t counts[STATUS_SLOTS];
    uint64_t ok, not_ok, wrong;
};

static int
svc_run(const struct vault_config *cfg, const char *tls, int wallet, const char *version,
        const struct packets *pk, unsigned conns, unsigned in_flight, unsigned rate,
        unsigned seconds, struct svc_result *out)
{
    struct client_files cf;
    struct api_client_config cc;
    struct svc_ctx c;
    struct svc_thread *ts = NULL;
    pthread_t *th = NULL;
    unsigned started = 0;
    bool barrier = false;
    uint64_t t1;
    double cpu0;
    int e, r = -1;

    memset(&c, 0, sizeof(c));
    memset(out, 0, sizeof(*out));
    c.pk = pk;
    c.wallet = wallet;
    c.version = version;
    c.connections = conns;
    c.in_flight = in_flight;
    c.rate = rate;
    if (client_config_fill(&cc, &cf, cfg, tls, in_flight) != 0)
        return -1;
    if ((c.lat = calloc(pk->n, sizeof(*c.lat))) == NULL ||
        (c.lag = calloc(pk->n, sizeof(*c.lag))) == NULL ||
        (ts = calloc(conns, sizeof(*ts))) == NULL || (th = calloc(conns, sizeof(*th))) == NULL)
        goto out;
    for (unsigned i = 0; i < conns; i++) {
        size_t n = thread_packets(&c, i);

        ts[i].c = &c;
        ts[i].index = i;
        if ((ts[i].sent_at = calloc(n + 1, sizeof(uint64_t))) == NULL ||
            (ts[i].packet_of = calloc(n + 1, sizeof(size_t))) == NULL)
            goto out;
        /* Connected (TLS handshake done) before the clock starts. */
        if ((e = api_client_new(&ts[i].client, &cc)) != 0 ||
            (e = api_client_connect(ts[i].client)) != 0) {
            err("connection %u to %s:%u: %s", i, cc.host, cc.port, api_strerror(e));
            goto out;
        }
    }
    if (pthread_barrier_init(&c.start, NULL, conns + 1) != 0)
        goto out;
    barrier = true;
    for (; started < conns; started++)
        if (pthread_create(&th[started], NULL, svc_thread, &ts[started]) != 0)
            break;
    if (started != conns) {
        /* The barrier cannot open: this is not a state to limp on from. */
        err("cannot start %u threads", conns);
        abort();
    }
    c.t0 = mono_ns() + NS_PER_MS; /* every thread is past the barrier by then */
    if (seconds != 0)
        c.deadline = c.t0 + (uint64_t)seconds * NS_PER_S;
    cpu0 = cpu_seconds();
    pthread_barrier_wait(&c.start);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    t1 = mono_ns();
    out->client_cpu = (cpu_seconds() - cpu0) / ((double)(t1 - c.t0) / (double)NS_PER_S);
    r = 0;
    for (unsigned i = 0; i < conns; i++) {
        if (ts[i].client_err != 0) {
            err("connection %u: %s", i, api_strerror(ts[i].client_err));
            r = -1;
        }
        for (unsigned s = 0; s < STATUS_SLOTS; s++)
            out->counts[s] += ts[i].counts[s];
        out->wrong += ts[i].wrong;
        out->sent += ts[i].sent;
    }
    out->ok = out->counts[API_STATUS_OK];
    for (unsigned s = 1; s < STATUS_SLOTS; s++)
        out->not_ok += out->counts[s];
    out->seconds = (double)(t1 - c.t0) / (double)NS_PER_S;
    out->pps = (double)out->sent / out->seconds;
    if (r == 0) {
        lat_stats_get(c.lat, pk->n, &out->lat);
        if (rate != 0)
            lat_stats_get(c.lag, pk->n, &out->lag);
    }
out:
    if (barrier)
        pthread_barrier_destroy(&c.start);
    if (ts != NULL) {
        for (unsigned i = 0; i < conns; i++) {
            api_client_free(ts[i].client);
            free(ts[i].sent_at);
            free(ts[i].packet_of);
        }
    }
    free(ts);
    free(th);
    free(c.lat);
    free(c.lag);
    return r;
}

/* ---- run -------------------------------------------------------------------------- */

/* Apple packets carry the time they were signed, and the service refuses one
 * signed further back than its window: a run that takes longer (too many
 * packets for the machine) stops rather than count EXPIRED answers. */
static int
fresh_enough(const struct gen_ctx *g, const struct vault_config *cfg, const char *phase)
{
    time_t age = time(NULL) - g->signing_time;

    if (g->wallet == BENCH_APPLE && age + FRESH_MARGIN_S > (time_t)cfg->apple_signing_window_seconds) {
        err("the Apple packets were signed %lld s ago, too close to the service's %u s window "
            "for the %s phase: use fewer --packets",
            (long long)age, cfg->apple_signing_window_seconds, phase);
        return -1;
    }
    return 0;
}

static int
cmd_run(const struct opts *o)
{
    struct vault_config *cfg = NULL;
    struct gen_ctx g;
    struct packets pk = { 0 };
    struct raw_result raw = { 0 };
    struct svc_result svc;
    unsigned packets = PACKETS_DEFAULT, conns = CONNECTIONS_DEFAULT, in_flight = IN_FLIGHT_DEFAULT;
    unsigned rate = 0, raw_threads = 0, seconds = 0;
    char cerr[VAULT_CONFIG_ERR_MAX];
    const char *wname, *version;
    int wallet, r = EXIT_FAIL;
    uint64_t t0;
    double gen_s;

    memset(&g, 0, sizeof(g));
    memset(&svc, 0, sizeof(svc));
    if (strcmp(o->v[O_WALLET], "apple") == 0) {
        g.wallet = BENCH_APPLE;
        wallet = API_WALLET_APPLE_PAY;
        wname = "apple_pay";
        version = "EC_v1";
    } else if (strcmp(o->v[O_WALLET], "google") == 0) {
        g.wallet = BENCH_GOOGLE;
        wallet = API_WALLET_GOOGLE_PAY;
        wname = "google_pay";
        version = "ECv2";
    } else {
        err("--wallet: apple or google, not %s", o->v[O_WALLET]);
        return EXIT_USAGE;
    }
    if ((o->given & B(O_SMOKE)) != 0)
        packets = PACKETS_SMOKE;
    if (((o->given & B(O_PACKETS)) != 0 &&
         parse_uint("packets", o->v[O_PACKETS], 1, PACKETS_MAX, &packets) != 0) ||
        ((o->given & B(O_CONNECTIONS)) != 0 &&
         parse_uint("connections", o->v[O_CONNECTIONS], 1, CONNECTIONS_MAX, &conns) != 0) ||
        ((o->given & B(O_IN_FLIGHT)) != 0 &&
         parse_uint("in-flight", o->v[O_IN_FLIGHT], 1, API_CLIENT_IN_FLIGHT_MAX, &in_flight) !=
             0) ||
        ((o->given & B(O_RATE)) != 0 && parse_uint("rate", o->v[O_RATE], 1, RATE_MAX, &rate) != 0) ||
        ((o->given & B(O_RAW_THREADS)) != 0 &&
         parse_uint("raw-threads", o->v[O_RAW_THREADS], 1, RAW_THREADS_MAX, &raw_threads) != 0) ||
        ((o->given & B(O_SECONDS)) != 0 &&
         parse_uint("seconds", o->v[O_SECONDS], 1, SECONDS_MAX, &seconds) != 0))
        return EXIT_USAGE;
    if (vault_config_load(&cfg, o->v[O_CONFIG], cerr, sizeof(cerr)) != 0) {
        err("%s", cerr);
        return EXIT_FAIL;
    }
    if (raw_threads == 0)
        raw_threads = cfg->workers < RAW_THREADS_MAX ? cfg->workers : RAW_THREADS_MAX;
    if (in_flight > cfg->max_in_flight) {
        err("--in-flight %u is more than the service's max_in_flight %u", in_flight,
            cfg->max_in_flight);
        goto out;
    }

    if (gen_ctx_load(&g, o) != 0)
        goto out;
    t0 = mono_ns();
    if (packets_make(&pk, &g, packets) != 0)
        goto out;
    gen_s = (double)(mono_ns() - t0) / (double)NS_PER_S;
    printf("%s %s: %u packets, distinct transaction ids (generated in %.1f s)\n", wname, version,
           packets, gen_s);

    if (fresh_enough(&g, cfg, "raw") != 0 || raw_run(cfg, wallet, &pk, raw_threads, &raw) != 0)
        goto out;
    printf("raw HSM limit: vault_wallets_open + token random + record seal, in process, "
           "%u threads, no RPC/TLS/LMDB/audit\n"
           "  %.0f packets/s (%.2f s); per packet p50 %.2f ms p95 %.2f p99 %.2f max %.2f; "
           "CPU %.2f ms/packet\n",
           raw_threads, raw.pps, raw.seconds, raw.lat.p50, raw.lat.p95, raw.lat.p99, raw.lat.max,
           raw.cpu_ms);
    fflush(stdout);

    if (fresh_enough(&g, cfg, "service") != 0 ||
        svc_run(cfg, o->v[O_TLS], wallet, version, &pk, conns, in_flight, rate, seconds, &svc) !=
            0)
        goto out;
    if (rate == 0)
        printf("service: tokenvaultd (workers = %u) over TLS 1.3 mTLS, %u connections x %u in "
               "flight, closed loop\n",
               cfg->workers, conns, in_flight);
    else
        printf("service: tokenvaultd (workers = %u) over TLS 1.3 mTLS, offered %u packets/s "
               "open loop on %u connections (up to %u in flight each)\n",
               cfg->workers, rate, conns, in_flight);
    if (svc.sent != pk.n)
        printf("  --seconds %u: %" PRIu64 " of the %zu packets sent\n", seconds, svc.sent, pk.n);
    printf("  %.0f packets/s (%.2f s); latency p50 %.2f ms p95 %.2f p99 %.2f max %.2f%s\n",
           svc.pps, svc.seconds, svc.lat.p50, svc.lat.p95, svc.lat.p99, svc.lat.max,
           rate != 0 ? " (from when each packet was due)" : "");
    if (rate != 0)
        printf("  send lag (client late to send): p50 %.2f ms p99 %.2f max %.2f\n", svc.lag.p50,
               svc.lag.p99, svc.lag.max);
    /* The driver shares the machine with the service: what it took. */
    printf("  driver (TLS client) CPU: %.2f cores\n", svc.client_cpu);
    printf("  statuses:");
    for (unsigned s = 0; s < STATUS_SLOTS; s++)
        if (svc.counts[s] != 0)
            printf(" %s %" PRIu64, api_status_name(s), svc.counts[s]);
    printf("\n  service/raw: %.2f\n", svc.pps / raw.pps);
    /* One line for scripts/bench to tabulate. */
    printf("RESULT wallet=%s mode=%s packets=%u sent=%" PRIu64
           " connections=%u in_flight=%u rate=%u "
           "service_pps=%.0f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f "
           "raw_pps=%.0f raw_threads=%u raw_cpu_ms=%.3f ratio=%.2f client_cpu=%.2f ok=%" PRIu64
           " not_ok=%" PRIu64 "\n",
           wname, rate == 0 ? "closed" : "rate", packets, svc.sent, conns, in_flight, rate, svc.pps,
           svc.lat.p50, svc.lat.p95, svc.lat.p99, svc.lat.p999, svc.lat.max, raw.pps, raw_threads,
           raw.cpu_ms, svc.pps / raw.pps, svc.client_cpu, svc.ok, svc.not_ok);
    if (svc.not_ok != 0 || svc.wrong != 0 || svc.ok != svc.sent) {
        err("FAILED: %" PRIu64 " answers not OK, %" PRIu64 " OK answers not %s %s", svc.not_ok,
            svc.wrong, wname, version);
        goto out;
    }
    r = EXIT_OK;
out:
    packets_free(&pk);
    gen_ctx_free(&g);
    vault_config_free(cfg);
    return r;
}

/* ---- sessions and charges: shared ------------------------------------------------- */

/* What the service answered for one kind of request; what a phase sends. */
enum req_kind { RK_INIT, RK_CHECK, RK_CARD, RK_MANDATE, RK_MIT, RK_GET, RK_LIST, RK_REVEAL,
                RK_QR_ISSUE, RK_QR_REDEEM, RK_NUM };
static const char *const req_kind_name[RK_NUM] = {
    "SESSION_INIT", "SESSION_CHECK", "CARD_STORE", "MANDATE_CREATE", "MIT_AUTHORIZE",
    "CARD_GET", "CARD_LIST", "CARD_REVEAL", "QR_ISSUE", "QR_REDEEM",
};

/* A sale session of the run: what its SESSION_INIT sent and got back. */
struct sess_item {
    uint8_t nonce[OPS_NONCE_LEN];
    uint8_t sig[API_SIGNATURE_LEN];
    bool have; /* SESSION_INIT answered OK */
};

/* A stored card of the run with its mandate. */
struct card_item {
    char customer[API_CUSTOMER_NUMBER_MAX + 1];
    char pan[API_PAN_MAX + 1]; /* secret: wiped by cards_free */
    char token[API_ID_MAX + 1];
    char mandate[API_ID_MAX + 1];
    struct card_record *rec;   /* cards: the raw limit's sealed record, or NULL */
};

/* A QR payment request of the run: the token its QR_ISSUE got back, and
 * the raw limit's own (request id and tag made by the HSM pass). */
struct qr_item {
    char token[API_QR_TOKEN_MAX + 1];
    struct qr_token raw;
};

/* QR payment request |i| of a run: its order id and amount (distinct per
 * request; a redeem's answer must give them back). */
static void
qr_order_of(const char *tag, size_t i, char order[API_ID_MAX + 1], uint64_t *amount)
{
    snprintf(order, API_ID_MAX + 1, "qr-%s-%zu", tag, i);
    *amount = SALE_AMOUNT_BASE + i % SALE_AMOUNT_SPAN;
}

/* The record QR_ISSUE files for request |i| issued at |created_s| (vault/
 * ops/qr.c ops_qr_issue): what its tag covers. */
static void
qr_record_of(const char *tag, size_t i, uint64_t created_s, unsigned lifetime_s,
             struct qr_record *out)
{
    memset(out, 0, sizeof(*out));
    out->state = API_QR_ISSUED;
    out->created_at = created_s;
    out->expires_at = created_s + lifetime_s;
    qr_order_of(tag, i, out->order_id, &out->amount);
    snprintf(out->currency, sizeof(out->currency), "%s", BENCH_CURRENCY);
    snprintf(out->merchant, sizeof(out->merchant), "%s", BENCH_MERCHANT);
}

/* Session |i| of a run: the sale fields its SESSION_INIT and SESSION_CHECK
 * both carry (distinct per session; the check sends the same ones). */
static void
sale_fields(const char *tag, size_t i, uint8_t ath[API_HASH_LEN], uint64_t *amount,
            uint8_t device[DEVICE_DATA_LEN])
{
    char text[64];
    int n = snprintf(text, sizeof(text), "access-token-%s-%zu", tag, i);

    SHA256((const uint8_t *)text, (size_t)n, ath);
    *amount = SALE_AMOUNT_BASE + i % SALE_AMOUNT_SPAN;
    for (size_t k = 0; k < DEVICE_DATA_LEN; k++)
        device[k] = (uint8_t)(k * 31u + i);
    memcpy(device, text, (size_t)n < DEVICE_DATA_LEN ? (size_t)n : DEVICE_DATA_LEN);
}

/* The session as the service keeps it for sale_fields(tag, i) (vault/ops/
 * sessions.c ops_session_init): what its signature covers. */
static void
sale_session_of(const char *tag, size_t i, uint64_t created_ms, unsigned lifetime_s,
                struct sale_session *out)
{
    uint8_t device[DEVICE_DATA_LEN];

    memset(out, 0, sizeof(*out));
    out->state = OPS_SESSION_OPEN;
    snprintf(out->merchant, sizeof(out->merchant), "%s", BENCH_MERCHANT);
    sale_fields(tag, i, out->access_token_hash, &out->amount, device);
    snprintf(out->currency, sizeof(out->currency), "%s", BENCH_CURRENCY);
    SHA256(device, sizeof(device), out->device_hash);
    out->created_at_ms = created_ms;
    out->expires_at = (created_ms + (uint64_t)lifetime_s * MS_PER_S + MS_PER_S - 1) / MS_PER_S;
}

/* A random 16-digit Visa number with its Luhn digit: distinct cards, so that
 * CARD_STORE files each as new (the vault deduplicates by PAN). */
static int
pan_random(char out[API_PAN_MAX + 1])
{
    uint8_t rnd[CARD_PAN_LEN];
    unsigned sum = 0;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        err_ssl("RAND_bytes");
        return -1;
    }
    out[0] = '4';
    for (size_t k = 1; k < CARD_PAN_LEN - 1; k++)
        out[k] = (char)('0' + rnd[k] % 10); /* the bias does not matter here */
    /* Luhn: from the right, every second digit of the payload doubled. */
    for (size_t k = 0; k < CARD_PAN_LEN - 1; k++) {
        unsigned d = (unsigned)(out[CARD_PAN_LEN - 2 - k] - '0');

        if (k % 2 == 0)
            d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    out[CARD_PAN_LEN - 1] = (char)('0' + (10 - sum % 10) % 10);
    out[CARD_PAN_LEN] = '\0';
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

static void
cards_free(struct card_item *cards, size_t n)
{
    if (cards != NULL)
        OPENSSL_cleanse(cards, n * sizeof(*cards));
    free(cards);
}

/* The UTC date of unix time |t|. */
static void
date_of(time_t t, struct api_date *out)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    out->year = (uint16_t)(tm.tm_year + 1900);
    out->month = (uint8_t)(tm.tm_mon + 1);
    out->day = (uint8_t)tm.tm_mday;
}

/* Random hex: ids distinct across runs. */
static int
run_tag_make(char out[17])
{
    uint8_t rnd[8];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        err_ssl("RAND_bytes");
        return -1;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
    return 0;
}

/* The |nth| (1-based) space-separated field of |p| as a decimal. */
static int
stat_field(const char *p, unsigned nth, unsigned long long *out)
{
    char *end = NULL;

    for (unsigned k = 1; k < nth; k++) {
        while (*p == ' ')
            p++;
        while (*p != ' ' && *p != '\0')
            p++;
    }
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    *out = strtoull(p, &end, 10);
    return errno == 0 && (*end == ' ' || *end == '\0' || *end == '\n') ? 0 : -1;
}

/* A metrics line "NAME VALUE" for |name|: 0 with *out, -1 otherwise. */
static int
metric_line(const char *line, const char *name, unsigned long long *out)
{
    size_t n = strlen(name);
    char *end = NULL;

    if (strncmp(line, name, n) != 0 || line[n] != ' ' || line[n + 1] < '0' || line[n + 1] > '9')
        return -1;
    errno = 0;
    *out = strtoull(line + n + 1, &end, 10);
    return errno == 0 && (*end == '\n' || *end == '\0') ? 0 : -1;
}

/* tokenvaultd's CPU time so far (user + system) in seconds, from
 * /proc/PID/stat; -1 when unknown (no --daemon-pid). */
static double
daemon_cpu_seconds(long pid)
{
    char path[64], buf[1024];
    unsigned long long ut = 0, st = 0;
    const char *p;
    size_t n;
    FILE *f;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold anything: fields 3.. follow its last ')';
     * utime and stime are fields 14 and 15, the 12th and 13th after it. */
    if ((p = strrchr(buf, ')')) == NULL || stat_field(p + 1, 12, &ut) != 0 ||
        stat_field(p + 1, 13, &st) != 0)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* tokenvaultd's memory (/proc/PID/status), MiB; all 0 when unknown (no
 * --daemon-pid). The kernel keeps the peak resident set (VmHWM) over the
 * process's life, so after a phase it covers that phase and all before.
 * It counts the pages of the LMDB file the service has touched through its
 * map (RssFile), which grow with the store; the heap (RssAnon, now) is what
 * the service itself holds. */
struct daemon_mem {
    double peak_mb, anon_mb, file_mb;
};

/* The MiB of a /proc status line "NAME   VALUE kB" into *out, if |line| is
 * that field's. */
static void
status_mb(const char *line, const char *name, double *out)
{
    size_t n = strlen(name);
    unsigned long long kb;
    char *end = NULL;

    if (strncmp(line, name, n) != 0)
        return;
    errno = 0;
    kb = strtoull(line + n, &end, 10);
    if (errno == 0 && end != line + n)
        *out = (double)kb / 1024.0;
}

static void
daemon_mem_get(long pid, struct daemon_mem *out)
{
    char path[64], line[256];
    FILE *f;

    memset(out, 0, sizeof(*out));
    if (pid <= 0)
        return;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        status_mb(line, "VmHWM:", &out->peak_mb);
        status_mb(line, "RssAnon:", &out->anon_mb);
        status_mb(line, "RssFile:", &out->file_mb);
    }
    fclose(f);
}

/* The store's group-commit counters, from the service's metrics file. */
struct store_counts {
    uint64_t commits, jobs;
    bool ok;
};

static bool
file_changed(const struct stat *a, const struct stat *b)
{
    return a->st_ino != b->st_ino || a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
           a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

/* The counters as of now: the second metrics file written after this call
 * begins was collected after it (the service writes the file whole and
 * renames it). ok false when the config writes none or none came in time. */
static void
metrics_counts(const struct vault_config *cfg, struct store_counts *out)
{
    const char *path = cfg->metrics_textfile;
    struct stat prev, st;
    uint64_t deadline;
    unsigned seen = 0;
    bool have_c = false, have_j = false;
    char line[512];
    FILE *f;

    memset(out, 0, sizeof(*out));
    if (path[0] == '\0')
        return;
    if (stat(path, &prev) != 0)
        memset(&prev, 0, sizeof(prev));
    deadline = mono_ns() + ((uint64_t)cfg->metrics_interval_seconds * 2 * MS_PER_S +
                            METRICS_WAIT_SLACK_MS) * NS_PER_MS;
    while (seen < 2) {
        if (mono_ns() > deadline)
            return;
        sleep_until_ns(mono_ns() + METRICS_POLL_MS * NS_PER_MS);
        if (stat(path, &st) == 0 && file_changed(&st, &prev)) {
            prev = st;
            seen++;
        }
    }
    if ((f = fopen(path, "r")) == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long long v;

        if (metric_line(line, "tokenvault_store_commits_total", &v) == 0) {
            out->commits = v;
            have_c = true;
        } else if (metric_line(line, "tokenvault_store_jobs_total", &v) == 0) {
            out->jobs = v;
            have_j = true;
        }
    }
    fclose(f);
    out->ok = have_c && have_j;
}

/* ---- sessions and charges: the service over the RPC ------------------------------- */

/* What one phase sends: SESSION_INIT then SESSION_CHECK of each session
 * (pairs), each alone, or the steps of the MIT benchmark. */
enum drv_mode { DRV_PAIRS, DRV_INITS, DRV_CHECKS, DRV_CARDS, DRV_MANDATES, DRV_MIT, DRV_GET,
                DRV_LIST, DRV_REVEAL, DRV_QR_PAIRS, DRV_QR_ISSUES, DRV_QR_REDEEMS };

struct drv {
    enum drv_mode mode;
    const char *tag;          /* the run's: the sessions' sale fields, customer numbers */
    size_t n;                 /* items: sessions or cards */
    unsigned connections, in_flight;
    struct sess_item *sess;   /* DRV_PAIRS, DRV_INITS, DRV_CHECKS */
    struct card_item *cards;  /* DRV_CARDS, DRV_MANDATES, DRV_MIT */
    struct qr_item *qr;       /* DRV_QR_* */
    unsigned qr_lifetime_s;
    struct api_date charge_date, end_date;
    uint64_t *lat[RK_NUM];    /* per item, ns, for the kinds this phase sends */
    /* Pairs: when each item's first request (SESSION_INIT, QR_ISSUE) went
     * out, and from then until its second (SESSION_CHECK, QR_REDEEM) was
     * answered. */
    uint64_t *init_sent;
    uint64_t *pair_lat;
    const char *perf_out;     /* a perf record of tokenvaultd during the phase, or NULL */
    /* Open loop: requests offered at |rate| per second in all (0: closed
     * loop), request j due at t0 + j / rate over the connections, latency
     * counted from when it was due (one request per item: not DRV_PAIRS). */
    unsigned rate;
    uint64_t t0;
    /* --seconds: no new item starts |seconds| after t0 (0: every item); a
     * pair begun is finished. */
    unsigned seconds;
    uint64_t deadline;
    pthread_barrier_t start;
};

struct drv_conn {
    struct drv *d;
    unsigned index;
    struct api_client *client;
    size_t n_items;           /* items dealt to this connection */
    size_t next_k;            /* its next item to start */
    size_t items_sent;        /* items it started (skipping those an earlier phase did not make) */
    size_t expected, sent, done; /* requests */
    uint64_t id0;             /* the client's id of this connection's first request */
    size_t *item_of;          /* per request sent: its item, kind and send time */
    uint8_t *kind_of;
    uint64_t *sent_at;
    size_t *ready;            /* pairs: sessions whose INIT came back, to check */
    size_t ready_head, ready_tail;
    uint64_t counts[STATUS_SLOTS];
    uint64_t wrong;           /* OK answers that do not say what they should */
    uint64_t lag_max;         /* open loop: the latest a request went out after it was due, ns */
    int client_err;
    bool reported;
};

union drv_req {
    struct api_session_init_req init;
    struct api_session_check_req check;
    struct api_card_store_req card;
    struct api_mandate_create_req mandate;
    struct api_mit_authorize_req mit;
    struct api_card_ref get;
    struct api_customer_ref list;
    struct api_card_reveal_req reveal;
    struct api_qr_issue_req qr_issue;
    struct api_qr_redeem_req qr_redeem;
};

/* Pairs: each item's second request goes out once its first is answered
 * (a sale session checked, a QR payment request redeemed). */
static bool
drv_is_pairs(const struct drv *d)
{
    return d->mode == DRV_PAIRS || d->mode == DRV_QR_PAIRS;
}

static bool
is_first_of_pair(uint8_t kind)
{
    return kind == RK_INIT || kind == RK_QR_ISSUE;
}

static unsigned
drv_requests_per_item(const struct drv *d)
{
    return drv_is_pairs(d) ? 2u : 1u;
}

/* Whether item |i| has what this phase needs from an earlier one (which
 * --seconds may have cut short): the session opened, the card stored, its
 * mandate made, the QR request issued. */
static bool
drv_item_ready(const struct drv *d, size_t i)
{
    switch (d->mode) {
    case DRV_CHECKS: return d->sess[i].have;
    case DRV_MANDATES:
    case DRV_GET:
    case DRV_LIST:
    case DRV_REVEAL: return d->cards[i].token[0] != '\0';
    case DRV_MIT: return d->cards[i].mandate[0] != '\0';
    case DRV_QR_REDEEMS: return d->qr[i].token[0] != '\0';
    default: return true;
    }
}

/* Items are dealt round-robin: the k-th of connection |c| is item index +
 * k * connections of the whole phase. */
static size_t
drv_item_of(const struct drv_conn *c, size_t k)
{
    return (size_t)c->index + k * c->d->connections;
}

/* The ready items of |c| from its k-th on. */
static size_t
drv_ready_from(const struct drv_conn *c, size_t k)
{
    size_t n = 0;

    for (; k < c->n_items; k++)
        n += drv_item_ready(c->d, drv_item_of(c, k));
    return n;
}

/* Moves |c| past the items it cannot send in this phase. */
static void
drv_skip_unready(struct drv_conn *c)
{
    while (c->next_k < c->n_items && !drv_item_ready(c->d, drv_item_of(c, c->next_k)))
        c->next_k++;
}

static void
fill_init(const struct drv *d, size_t i, struct api_session_init_req *q)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", BENCH_MERCHANT);
    q->access_token_hash.len = API_HASH_LEN;
    q->device_data.len = DEVICE_DATA_LEN;
    sale_fields(d->tag, i, q->access_token_hash.data, &q->amount, q->device_data.data);
    snprintf(q->currency, sizeof(q->currency), "%s", BENCH_CURRENCY);
}

static void
fill_check(const struct drv *d, size_t i, struct api_session_check_req *q)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", BENCH_MERCHANT);
    q->nonce.len = OPS_NONCE_LEN;
    memcpy(q->nonce.data, d->sess[i].nonce, OPS_NONCE_LEN);
    q->signature.len = API_SIGNATURE_LEN;
    memcpy(q->signature.data, d->sess[i].sig, API_SIGNATURE_LEN);
    q->access_token_hash.len = API_HASH_LEN;
    q->device_data.len = DEVICE_DATA_LEN;
    sale_fields(d->tag, i, q->access_token_hash.data, &q->amount, q->device_data.data);
    snprintf(q->currency, sizeof(q->currency), "%s", BENCH_CURRENCY);
}

static void
fill_qr_issue(const struct drv *d, size_t i, struct api_qr_issue_req *q)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", BENCH_MERCHANT);
    qr_order_of(d->tag, i, q->order_id, &q->amount);
    snprintf(q->currency, sizeof(q->currency), "%s", BENCH_CURRENCY);
    q->lifetime = d->qr_lifetime_s;
}

static void
fill_qr_redeem(const struct drv *d, size_t i, struct api_qr_redeem_req *q)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", BENCH_MERCHANT);
    memcpy(q->qr_token, d->qr[i].token, sizeof(q->qr_token));
    snprintf(q->payer_ref, sizeof(q->payer_ref), "payer-%zu", i);
}

/* The next request of connection |c| into |q|: true with it filled, false
 * when it has nothing to send now. */
static bool
drv_next(struct drv_conn *c, union drv_req *q, uint16_t *opcode, size_t *item, uint8_t *kind)
{
    struct drv *d = c->d;
    size_t i;

    /* Pairs: a session whose INIT is back is checked (a request whose ISSUE
     * is back is redeemed) before a new one starts. */
    if (drv_is_pairs(d) && c->ready_head != c->ready_tail) {
        i = c->ready[c->ready_head++];
        if (d->mode == DRV_QR_PAIRS) {
            fill_qr_redeem(d, i, &q->qr_redeem);
            *opcode = API_OP_QR_REDEEM;
            *kind = RK_QR_REDEEM;
        } else {
            fill_check(d, i, &q->check);
            *opcode = API_OP_SESSION_CHECK;
            *kind = RK_CHECK;
        }
        *item = i;
        return true;
    }
    drv_skip_unready(c);
    if (c->next_k >= c->n_items)
        return false;
    i = drv_item_of(c, c->next_k++);
    c->items_sent++;
    *item = i;
    memset(q, 0, sizeof(*q));
    switch (d->mode) {
    case DRV_PAIRS:
    case DRV_INITS:
        fill_init(d, i, &q->init);
        *opcode = API_OP_SESSION_INIT;
        *kind = RK_INIT;
        break;
    case DRV_CHECKS:
        fill_check(d, i, &q->check);
        *opcode = API_OP_SESSION_CHECK;
        *kind = RK_CHECK;
        break;
    case DRV_CARDS:
        snprintf(q->card.merchant, sizeof(q->card.merchant), "%s", BENCH_MERCHANT);
        memcpy(q->card.customer_number, d->cards[i].customer, sizeof(q->card.customer_number));
        memcpy(q->card.pan, d->cards[i].pan, sizeof(q->card.pan));
        q->card.exp_month = CARD_EXP_MONTH;
        q->card.exp_year = CARD_EXP_YEAR;
        q->card.consent = true;
        q->card.verification = API_VERIFICATION_CVC2_3DS;
        *opcode = API_OP_CARD_STORE;
        *kind = RK_CARD;
        break;
    case DRV_MANDATES:
        snprintf(q->mandate.merchant, sizeof(q->mandate.merchant), "%s", BENCH_MERCHANT);
        memcpy(q->mandate.token, d->cards[i].token, sizeof(q->mandate.token));
        memcpy(q->mandate.customer_number, d->cards[i].customer,
               sizeof(q->mandate.customer_number));
        q->mandate.kind = API_MANDATE_KIND_RECURRING;
        q->mandate.has_min_amount = true;
        q->mandate.min_amount = MANDATE_MIN_AMOUNT;
        q->mandate.max_amount = MANDATE_MAX_AMOUNT;
        snprintf(q->mandate.currency, sizeof(q->mandate.currency), "%s", BENCH_CURRENCY);
        q->mandate.has_recurring_count = true;
        q->mandate.recurring_count = MANDATE_EVERY_DAYS;
        q->mandate.recurring_max_date = d->end_date;
        *opcode = API_OP_MANDATE_CREATE;
        *kind = RK_MANDATE;
        break;
    case DRV_MIT:
        snprintf(q->mit.merchant, sizeof(q->mit.merchant), "%s", BENCH_MERCHANT);
        memcpy(q->mit.token, d->cards[i].token, sizeof(q->mit.token));
        memcpy(q->mit.mandate_id, d->cards[i].mandate, sizeof(q->mit.mandate_id));
        q->mit.amount = MIT_AMOUNT;
        snprintf(q->mit.currency, sizeof(q->mit.currency), "%s", BENCH_CURRENCY);
        q->mit.date = d->charge_date;
        *opcode = API_OP_MIT_AUTHORIZE;
        *kind = RK_MIT;
        break;
    case DRV_GET:
        snprintf(q->get.merchant, sizeof(q->get.merchant), "%s", BENCH_MERCHANT);
        memcpy(q->get.token, d->cards[i].token, sizeof(q->get.token));
        *opcode = API_OP_CARD_GET;
        *kind = RK_GET;
        break;
    case DRV_LIST:
        snprintf(q->list.merchant, sizeof(q->list.merchant), "%s", BENCH_MERCHANT);
        memcpy(q->list.customer_number, d->cards[i].customer, sizeof(q->list.customer_number));
        *opcode = API_OP_CARD_LIST;
        *kind = RK_LIST;
        break;
    case DRV_REVEAL:
        snprintf(q->reveal.merchant, sizeof(q->reveal.merchant), "%s", BENCH_MERCHANT);
        memcpy(q->reveal.token, d->cards[i].token, sizeof(q->reveal.token));
        q->reveal.purpose = API_PURPOSE_AUTHORIZATION;
        *opcode = API_OP_CARD_REVEAL;
        *kind = RK_REVEAL;
        break;
    case DRV_QR_PAIRS:
    case DRV_QR_ISSUES:
        fill_qr_issue(d, i, &q->qr_issue);
        *opcode = API_OP_QR_ISSUE;
        *kind = RK_QR_ISSUE;
        break;
    case DRV_QR_REDEEMS:
        fill_qr_redeem(d, i, &q->qr_redeem);
        *opcode = API_OP_QR_REDEEM;
        *kind = RK_QR_REDEEM;
        break;
    }
    return true;
}

/* Whether an OK answer says what it should, keeping what later requests
 * need (the session's nonce and signature, the card's token, the mandate). */
static bool
drv_keep(struct drv_conn *c, size_t i, uint8_t kind, const struct api_reply *rep, uint64_t now)
{
    struct drv *d = c->d;

    switch (kind) {
    case RK_INIT: {
        const struct api_session_init_resp *r = rep->msg;

        if (rep->opcode != API_OP_SESSION_INIT || r->nonce.len != OPS_NONCE_LEN ||
            r->signature.len != API_SIGNATURE_LEN)
            return false;
        memcpy(d->sess[i].nonce, r->nonce.data, OPS_NONCE_LEN);
        memcpy(d->sess[i].sig, r->signature.data, API_SIGNATURE_LEN);
        d->sess[i].have = true;
        if (d->mode == DRV_PAIRS)
            c->ready[c->ready_tail++] = i;
        return true;
    }
    case RK_CHECK: {
        const struct api_session_check_resp *r = rep->msg;

        if (d->mode == DRV_PAIRS)
            d->pair_lat[i] = now - d->init_sent[i];
        return rep->opcode == API_OP_SESSION_CHECK && !r->has_token;
    }
    case RK_CARD: {
        const struct api_card_store_resp *r = rep->msg;

        if (rep->opcode != API_OP_CARD_STORE || r->dedup != API_DEDUP_NEW)
            return false;
        memcpy(d->cards[i].token, r->token, sizeof(d->cards[i].token));
        return true;
    }
    case RK_MANDATE: {
        const struct api_mandate_info *r = rep->msg;

        if (rep->opcode != API_OP_MANDATE_CREATE || r->status != API_MANDATE_ACTIVE)
            return false;
        memcpy(d->cards[i].mandate, r->mandate_id, sizeof(d->cards[i].mandate));
        return true;
    }
    case RK_MIT: {
        const struct api_mit_authorize_resp *r = rep->msg;

        return rep->opcode == API_OP_MIT_AUTHORIZE && r->charge_count == 1;
    }
    case RK_GET: {
        const struct api_card_info *r = rep->msg;

        return rep->opcode == API_OP_CARD_GET && strcmp(r->token, d->cards[i].token) == 0;
    }
    case RK_LIST: {
        const struct api_card_list_resp *r = rep->msg;

        return rep->opcode == API_OP_CARD_LIST && r->num_cards == 1 &&
               strcmp(r->cards[0].token, d->cards[i].token) == 0;
    }
    case RK_REVEAL: {
        const struct api_card_reveal_resp *r = rep->msg;

        return rep->opcode == API_OP_CARD_REVEAL &&
               CRYPTO_memcmp(r->pan, d->cards[i].pan, sizeof(r->pan)) == 0;
    }
    case RK_QR_ISSUE: {
        const struct api_qr_issue_resp *r = rep->msg;

        if (rep->opcode != API_OP_QR_ISSUE || strlen(r->qr_token) != QR_TOKEN_TEXT_LEN)
            return false;
        memcpy(d->qr[i].token, r->qr_token, sizeof(d->qr[i].token));
        if (d->mode == DRV_QR_PAIRS)
            c->ready[c->ready_tail++] = i;
        return true;
    }
    case RK_QR_REDEEM: {
        const struct api_qr_redeem_resp *r = rep->msg;
        char order[API_ID_MAX + 1];
        uint64_t amount;

        if (d->mode == DRV_QR_PAIRS)
            d->pair_lat[i] = now - d->init_sent[i];
        qr_order_of(d->tag, i, order, &amount);
        return rep->opcode == API_OP_QR_REDEEM && strcmp(r->order_id, order) == 0 &&
               r->amount == amount && strcmp(r->currency, BENCH_CURRENCY) == 0;
    }
    }
    return false;
}

static void
drv_reply(struct drv_conn *c, const struct api_reply *rep, uint64_t now)
{
    struct drv *d = c->d;
    uint64_t k = rep->request_id - c->id0;
    size_t i;
    uint8_t kind;
    bool good;

    if (rep->request_id < c->id0 || k >= c->sent) {
        c->client_err = API_ERR_PROTOCOL; /* not one of ours */
        return;
    }
    i = c->item_of[k];
    kind = c->kind_of[k];
    d->lat[kind][i] = now - c->sent_at[k];
    if (rep->status <= 0 && (unsigned)-rep->status < STATUS_SLOTS)
        c->counts[(unsigned)-rep->status]++;
    else
        c->counts[API_STATUS_INTERNAL]++;
    good = rep->status == 0 && drv_keep(c, i, kind, rep, now);
    if (rep->status == 0 && !good)
        c->wrong++;
    if (!good && !c->reported) {
        c->reported = true;
        if (rep->status != 0)
            err("%s %zu: %s: %s", req_kind_name[kind], i,
                api_status_name((unsigned)-rep->status), rep->error.message);
        else
            err("%s %zu: an OK answer that says something else", req_kind_name[kind], i);
    }
    /* A session whose INIT failed is never checked (a request whose ISSUE
     * failed never redeemed). */
    if (!good && is_first_of_pair(kind) && drv_is_pairs(d))
        c->expected--;
}

static void *
drv_thread(void *arg)
{
    struct drv_conn *c = arg;
    struct drv *d = c->d;
    union drv_req q;
    struct api_reply rep;
    uint16_t opcode = 0;
    uint8_t kind = 0;
    size_t item = 0;
    uint64_t id = 0, now;
    int r;

    pthread_barrier_wait(&d->start);
    while (c->done < c->expected && c->client_err == 0) {
        bool can_send = api_client_in_flight(c->client) < d->in_flight;
        uint64_t due = 0;

        drv_skip_unready(c);
        if (d->deadline != 0 && c->next_k < c->n_items && mono_ns() >= d->deadline) {
            /* --seconds: what was started is finished, nothing new starts. */
            c->expected -= drv_ready_from(c, c->next_k) * drv_requests_per_item(d);
            c->n_items = c->next_k;
            continue;
        }
        if (can_send && d->rate != 0 && c->next_k < c->n_items) {
            due = d->t0 + (uint64_t)((double)drv_item_of(c, c->next_k) * (double)NS_PER_S /
                                     (double)d->rate);
            if (due > mono_ns()) {
                can_send = false;
                if (api_client_in_flight(c->client) == 0) {
                    sleep_until_ns(due); /* nothing to wait for but the clock */
                    continue;
                }
            }
        }
        if (can_send && drv_next(c, &q, &opcode, &item, &kind)) {
            now = mono_ns();
            if (d->rate != 0) {
                if (now - due > c->lag_max)
                    c->lag_max = now - due;
                now = due;
            }
            r = api_client_submit(c->client, opcode, &q, &id);
            if (kind == RK_CARD)
                OPENSSL_cleanse(&q.card, sizeof(q.card)); /* the PAN */
            if (r != 0) {
                c->client_err = r;
                break;
            }
            if (c->sent == 0)
                c->id0 = id;
            if (id != c->id0 + c->sent) {
                c->client_err = API_ERR_PROTOCOL; /* ids are 1, 2, ... per connection */
                break;
            }
            c->item_of[c->sent] = item;
            c->kind_of[c->sent] = kind;
            c->sent_at[c->sent] = now;
            if (is_first_of_pair(kind) && drv_is_pairs(d))
                d->init_sent[item] = now;
            c->sent++;
            continue;
        }
        if (api_client_in_flight(c->client) == 0) {
            err("connection %u: nothing to send and nothing in flight", c->index);
            c->client_err = API_ERR_INVALID_ARG;
            break;
        }
        memset(&rep, 0, sizeof(rep));
        if ((r = api_client_collect(c->client, &rep)) != 0) {
            c->client_err = r;
            break;
        }
        drv_reply(c, &rep, mono_ns());
        api_reply_cleanup(&rep);
        c->done++;
    }
    OPENSSL_cleanse(&q, sizeof(q));
    return NULL;
}

/* What one phase did. */
struct drv_result {
    uint64_t items;        /* items started (and finished): all ready ones unless --seconds */
    uint64_t ready;        /* items the phase had to do */
    double seconds;
    double items_per_s, requests_per_s;
    double client_cpu;     /* the driver's CPU / wall time: cores */
    double daemon_cpu_ms;  /* tokenvaultd's CPU per item, ms; < 0 when unknown */
    struct daemon_mem mem; /* tokenvaultd's after the phase */
    double lag_max_ms;     /* open loop: the latest any request went out after it was due */
    struct lat_stats lat[RK_NUM], pair;
    struct store_counts before, after;
    uint64_t counts[STATUS_SLOTS];
    uint64_t requests, ok, not_ok, wrong;
};

static double
jobs_per_commit(const struct store_counts *a, const struct store_counts *b)
{
    if (!a->ok || !b->ok || b->commits <= a->commits)
        return 0;
    return (double)(b->jobs - a->jobs) / (double)(b->commits - a->commits);
}

static size_t
drv_conn_items(const struct drv *d, unsigned t)
{
    return t >= d->n ? 0 : (d->n - t + d->connections - 1) / d->connections;
}

/* perf record of process |pid| into |out| (DWARF unwinding: libcrypto and
 * SoftHSM have no frame pointers), as scripts/bench records the wallet runs.
 * The recorder's pid, or -1 when it does not start. */
static pid_t
perf_start(const char *out, long pid)
{
    char pid_s[32], *argv[] = {
        "perf", "record", "-q", "-F", PERF_FREQ, "--call-graph", PERF_CALL_GRAPH, "-p", pid_s,
        "-o", (char *)out, NULL,
    };
    pid_t p = -1;
    int e;

    snprintf(pid_s, sizeof(pid_s), "%ld", pid);
    if ((e = posix_spawnp(&p, "perf", NULL, NULL, argv, environ)) != 0) {
        err("perf: %s", strerror(e));
        return -1;
    }
    sleep_until_ns(mono_ns() + PERF_ATTACH_MS * NS_PER_MS);
    return p;
}

static void
perf_stop(pid_t p)
{
    int st;

    if (p <= 0)
        return;
    if (kill(p, SIGINT) != 0)
        err("perf: %s", strerror(errno));
    while (waitpid(p, &st, 0) < 0 && errno == EINTR)
        ;
}

/* One phase through tokenvaultd: every item of |d| over d->connections TLS
 * connections, up to d->in_flight requests in flight on each. 0 when every
 * request was answered (OK or not: the caller judges the counts). */
static int
drv_run(const struct vault_config *cfg, const char *tls, long daemon_pid, struct drv *d,
        struct drv_result *out)
{
    struct client_files cf;
    struct api_client_config cc;
    struct drv_conn *cs = NULL;
    pthread_t *th = NULL;
    unsigned conns = d->connections, started = 0;
    bool barrier = false;
    pid_t perf = -1;
    uint64_t t0, t1;
    double cpu0, dcpu0, dcpu1;
    int e, r = -1;

    memset(out, 0, sizeof(*out));
    if (d->rate != 0 && drv_is_pairs(d)) {
        err("an open-loop rate needs one request per item");
        return -1;
    }
    if (client_config_fill(&cc, &cf, cfg, tls, d->in_flight) != 0)
        return -1;
    for (unsigned k = 0; k < RK_NUM; k++)
        d->lat[k] = NULL;
    d->init_sent = d->pair_lat = NULL;
    for (unsigned k = 0; k < RK_NUM; k++)
        if ((d->lat[k] = calloc(d->n, sizeof(uint64_t))) == NULL)
            goto out;
    if (drv_is_pairs(d) && ((d->init_sent = calloc(d->n, sizeof(uint64_t))) == NULL ||
                                 (d->pair_lat = calloc(d->n, sizeof(uint64_t))) == NULL))
        goto out;
    if ((cs = calloc(conns, sizeof(*cs))) == NULL || (th = calloc(conns, sizeof(*th))) == NULL)
        goto out;
    for (unsigned i = 0; i < conns; i++) {
        size_t nreq;

        cs[i].d = d;
        cs[i].index = i;
        cs[i].n_items = drv_conn_items(d, i);
        nreq = cs[i].n_items * drv_requests_per_item(d);
        cs[i].expected = drv_ready_from(&cs[i], 0) * drv_requests_per_item(d);
        out->ready += cs[i].expected / drv_requests_per_item(d);
        if ((cs[i].item_of = calloc(nreq + 1, sizeof(size_t))) == NULL ||
            (cs[i].kind_of = calloc(nreq + 1, 1)) == NULL ||
            (cs[i].sent_at = calloc(nreq + 1, sizeof(uint64_t))) == NULL ||
            (cs[i].ready = calloc(cs[i].n_items + 1, sizeof(size_t))) == NULL)
            goto out;
        /* Connected (TLS handshake done) before the clock starts. */
        if ((e = api_client_new(&cs[i].client, &cc)) != 0 ||
            (e = api_client_connect(cs[i].client)) != 0) {
            err("connection %u to %s:%u: %s", i, cc.host, cc.port, api_strerror(e));
            goto out;
        }
    }
    if (pthread_barrier_init(&d->start, NULL, conns + 1) != 0)
        goto out;
    barrier = true;
    if (d->perf_out != NULL && daemon_pid > 0)
        perf = perf_start(d->perf_out, daemon_pid);
    metrics_counts(cfg, &out->before);
    for (; started < conns; started++)
        if (pthread_create(&th[started], NULL, drv_thread, &cs[started]) != 0)
            break;
    if (started != conns) {
        /* The barrier cannot open: this is not a state to limp on from. */
        err("cannot start %u threads", conns);
        abort();
    }
    dcpu0 = daemon_cpu_seconds(daemon_pid);
    cpu0 = cpu_seconds();
    t0 = mono_ns();
    d->t0 = t0; /* the threads read it after the barrier */
    d->deadline = d->seconds != 0 ? t0 + (uint64_t)d->seconds * NS_PER_S : 0;
    pthread_barrier_wait(&d->start);
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    t1 = mono_ns();
    dcpu1 = daemon_cpu_seconds(daemon_pid);
    perf_stop(perf);
    perf = -1;
    out->seconds = (double)(t1 - t0) / (double)NS_PER_S;
    out->client_cpu = (cpu_seconds() - cpu0) / out->seconds;
    for (unsigned i = 0; i < conns; i++)
        out->items += cs[i].items_sent;
    out->daemon_cpu_ms = dcpu0 < 0 || dcpu1 < 0 || out->items == 0
                             ? -1
                             : (dcpu1 - dcpu0) * 1e3 / (double)out->items;
    daemon_mem_get(daemon_pid, &out->mem);
    metrics_counts(cfg, &out->after);
    r = 0;
    for (unsigned i = 0; i < conns; i++) {
        if (cs[i].client_err != 0) {
            err("connection %u: %s", i, api_strerror(cs[i].client_err));
            r = -1;
        }
        for (unsigned s = 0; s < STATUS_SLOTS; s++)
            out->counts[s] += cs[i].counts[s];
        out->wrong += cs[i].wrong;
        out->requests += cs[i].items_sent * drv_requests_per_item(d);
        if ((double)cs[i].lag_max / (double)NS_PER_MS > out->lag_max_ms)
            out->lag_max_ms = (double)cs[i].lag_max / (double)NS_PER_MS;
    }
    out->ok = out->counts[API_STATUS_OK];
    for (unsigned s = 1; s < STATUS_SLOTS; s++)
        out->not_ok += out->counts[s];
    out->items_per_s = (double)out->items / out->seconds;
    out->requests_per_s = (double)(out->ok + out->not_ok) / out->seconds;
    if (r == 0) {
        switch (d->mode) {
        case DRV_PAIRS:
            lat_stats_get(d->lat[RK_INIT], d->n, &out->lat[RK_INIT]);
            lat_stats_get(d->lat[RK_CHECK], d->n, &out->lat[RK_CHECK]);
            lat_stats_get(d->pair_lat, d->n, &out->pair);
            break;
        case DRV_INITS: lat_stats_get(d->lat[RK_INIT], d->n, &out->lat[RK_INIT]); break;
        case DRV_CHECKS: lat_stats_get(d->lat[RK_CHECK], d->n, &out->lat[RK_CHECK]); break;
        case DRV_CARDS: lat_stats_get(d->lat[RK_CARD], d->n, &out->lat[RK_CARD]); break;
        case DRV_MANDATES: lat_stats_get(d->lat[RK_MANDATE], d->n, &out->lat[RK_MANDATE]); break;
        case DRV_MIT: lat_stats_get(d->lat[RK_MIT], d->n, &out->lat[RK_MIT]); break;
        case DRV_GET: lat_stats_get(d->lat[RK_GET], d->n, &out->lat[RK_GET]); break;
        case DRV_LIST: lat_stats_get(d->lat[RK_LIST], d->n, &out->lat[RK_LIST]); break;
        case DRV_REVEAL: lat_stats_get(d->lat[RK_REVEAL], d->n, &out->lat[RK_REVEAL]); break;
        case DRV_QR_PAIRS:
            lat_stats_get(d->lat[RK_QR_ISSUE], d->n, &out->lat[RK_QR_ISSUE]);
            lat_stats_get(d->lat[RK_QR_REDEEM], d->n, &out->lat[RK_QR_REDEEM]);
            lat_stats_get(d->pair_lat, d->n, &out->pair);
            break;
        case DRV_QR_ISSUES:
            lat_stats_get(d->lat[RK_QR_ISSUE], d->n, &out->lat[RK_QR_ISSUE]);
            break;
        case DRV_QR_REDEEMS:
            lat_stats_get(d->lat[RK_QR_REDEEM], d->n, &out->lat[RK_QR_REDEEM]);
            break;
        }
    }
out:
    perf_stop(perf);
    if (barrier)
        pthread_barrier_destroy(&d->start);
    if (cs != NULL) {
        for (unsigned i = 0; i < conns; i++) {
            api_client_free(cs[i].client);
            free(cs[i].item_of);
            free(cs[i].kind_of);
            free(cs[i].sent_at);
            free(cs[i].ready);
        }
    }
    free(cs);
    free(th);
    for (unsigned k = 0; k < RK_NUM; k++) {
        free(d->lat[k]);
        d->lat[k] = NULL;
    }
    free(d->init_sent);
    free(d->pair_lat);
    d->init_sent = d->pair_lat = NULL;
    return r;
}

/* Every request answered OK with what it should say, or the run fails. */
static int
drv_judge(const char *phase, const struct drv_result *res)
{
    if (res->not_ok != 0 || res->wrong != 0 || res->ok != res->requests) {
        err("FAILED (%s): %" PRIu64 " of %" PRIu64 " answers not OK, %" PRIu64
            " OK answers that say something else",
            phase, res->not_ok, res->requests, res->wrong);
        return -1;
    }
    return 0;
}

static void
print_statuses(const struct drv_result *res)
{
    if (res->items != res->ready)
        printf("  --seconds: %" PRIu64 " of %" PRIu64 " items started in time\n", res->items,
               res->ready);
    printf("  statuses:");
    for (unsigned s = 0; s < STATUS_SLOTS; s++)
        if (res->counts[s] != 0)
            printf(" %s %" PRIu64, api_status_name(s), res->counts[s]);
    printf("\n");
}

static void
print_lat(const char *what, const struct lat_stats *l)
{
    printf("  %-14s latency p50 %.2f ms p95 %.2f p99 %.2f p99.9 %.2f max %.2f\n", what, l->p50,
           l->p95, l->p99, l->p999, l->max);
}

/* The service side of a phase: the CPU, the group commit, the driver. */
static void
print_costs(const struct drv_result *res, const char *unit)
{
    double jpc = jobs_per_commit(&res->before, &res->after);

    if (res->daemon_cpu_ms >= 0)
        printf("  tokenvaultd CPU %.3f ms/%s, memory: peak RSS so far %.1f MiB, heap now %.1f "
               "MiB, store map pages %.1f MiB;",
               res->daemon_cpu_ms, unit, res->mem.peak_mb, res->mem.anon_mb, res->mem.file_mb);
    else
        printf("  tokenvaultd CPU unknown (no --daemon-pid);");
    if (jpc > 0)
        printf(" store: %" PRIu64 " commits for %" PRIu64 " write jobs (%.1f per commit);",
               res->after.commits - res->before.commits, res->after.jobs - res->before.jobs, jpc);
    printf(" driver CPU %.2f cores\n", res->client_cpu);
}

/* ---- sessions and charges: the raw limits ------------------------------------------ */

/* The HSM calls a worker makes, in this process on as many threads as the
 * service has workers, each with its own session:
 *   RH_INIT  SESSION_INIT: hsm_random (the 32-byte nonce) + hsm_hmac_sign
 *            over the session (vault/ops/sessions.c init_sign)
 *   RH_CHECK SESSION_CHECK: hsm_hmac_verify of that signature (check_prepare)
 *   RH_MIT   MIT_AUTHORIZE for a caller without the reveal role: hsm_random
 *            (16 bytes, the approval id; vault/ops/mandates.c random_id) */
/*   RH_GET, RH_LIST  the reads of CARD_GET and CARD_LIST (no HSM call; run by
 *            the same pass for the same measurement, see cards_read)
 *   RH_QR_ISSUE  QR_ISSUE: hsm_random (the 16-byte request id) + hsm_hmac_sign
 *            of the tag, the token encoded (vault/ops/qr.c ops_qr_issue)
 *   RH_QR_REDEEM QR_REDEEM: the token parsed, hsm_hmac_verify of its tag
 *            (ops_qr_redeem; its read of the record is left out: no store) */
enum rh_kind { RH_INIT, RH_CHECK, RH_MIT, RH_STORE, RH_REVEAL, RH_GET, RH_LIST, RH_QR_ISSUE,
               RH_QR_REDEEM };

struct rh_ctx {
    hsm *h;
    hsm_key *stk; /* a session tag key of the run, as the service's */
    hsm_key *fpk; /* RH_STORE: a fingerprint key of the run, wrapped as the service's */
    hsm_key *dek; /* RH_STORE, RH_REVEAL: a DEK of the run */
    struct card_item *cards; /* RH_STORE fills token and rec, RH_REVEAL opens rec */
    struct vault_store *store; /* RH_GET, RH_LIST: the scratch store read */
    enum rh_kind kind;
    const char *tag;
    uint64_t created_ms;
    unsigned lifetime_s;
    struct sess_item *sess; /* RH_INIT fills, RH_CHECK verifies */
    struct qr_item *qr;     /* RH_QR_ISSUE fills raw and token, RH_QR_REDEEM verifies */
    size_t n;
    uint64_t *lat;
    atomic_size_t next;
    atomic_size_t failed;
    atomic_flag reported;
};

/* The reads of CARD_GET and CARD_LIST (ops_card_get, ops_card_list): one
 * read transaction per request, the card (and for a list, each card the
 * customer holds) read and decoded. No HSM: neither opens a secret. */
struct read_list {
    struct store_txn *t;
    size_t found;
    int r;
};

static int
read_list_one(void *ctx, const MDB_val *val)
{
    struct read_list *l = ctx;
    char token[API_ID_MAX + 1];
    struct card_record rec;

    if (val->mv_size > API_ID_MAX) {
        l->r = -API_STATUS_INTERNAL;
        return 1;
    }
    memcpy(token, val->mv_data, val->mv_size);
    token[val->mv_size] = '\0';
    if ((l->r = ops_card_load(l->t, BENCH_MERCHANT, token, &rec)) != 0)
        return 1;
    l->found++;
    return 0;
}

static int
cards_read(struct rh_ctx *c, size_t i)
{
    const struct card_item *ci = &c->cards[i];
    struct store_txn t;
    struct card_record rec;
    int r;

    if ((r = store_read_begin(c->store, &t)) != 0)
        return r;
    if (c->kind == RH_GET) {
        r = ops_card_load(&t, BENCH_MERCHANT, ci->token, &rec);
    } else {
        uint8_t ck[API_ID_MAX + 1 + API_CUSTOMER_NUMBER_MAX];
        size_t mlen = strlen(BENCH_MERCHANT), clen = strlen(ci->customer);
        struct read_list l = {.t = &t};

        memcpy(ck, BENCH_MERCHANT, mlen);
        ck[mlen] = 0;
        memcpy(ck + mlen + 1, ci->customer, clen);
        r = store_dup_each(&t, STORE_DB_CUSTOMERS, ck, mlen + 1 + clen, read_list_one, &l);
        if (r == 0 || r == 1)
            r = l.r != 0 ? l.r : l.found == 1 ? 0 : -API_STATUS_NOT_FOUND;
    }
    store_read_end(&t);
    return r;
}

/* What a worker does for a new card (vault/ops/cards.c ops_card_store:
 * the fingerprint HMAC, the token's random bytes, the record sealed with
 * an IV from the HSM), or for a reveal (the record opened). */
static int
rh_card(struct rh_ctx *c, hsm_session *s, size_t i)
{
    struct card_item *ci = &c->cards[i];
    struct card_record *rec = ci->rec;
    struct card_secret sec;
    uint8_t rnd[CARDNUM_OPAQUE_RANDOM_LEN];
    enum api_brand brand;
    size_t pan_len = strlen(ci->pan);
    int e;

    memset(&sec, 0, sizeof(sec));
    if (c->kind == RH_REVEAL) {
        e = record_open(s, c->dek, ci->token, rec, &sec) == 0 &&
                    strcmp(sec.pan, ci->pan) == 0
                ? HSM_OK
                : HSM_ERR_VERIFY;
        record_secret_wipe(&sec);
        return e;
    }
    if (cardnum_check(ci->pan, &brand) != 0)
        return HSM_ERR_INPUT;
    memset(rec, 0, sizeof(*rec));
    rec->kind = API_CARD_KIND_CARD;
    rec->flags = RECORD_F_ACTIVE | RECORD_F_CONSENT;
    rec->verification = API_VERIFICATION_CVC2_3DS;
    rec->brand = (uint8_t)brand;
    rec->exp_month = CARD_EXP_MONTH;
    rec->exp_year = CARD_EXP_YEAR;
    rec->created_at = (uint64_t)time(NULL);
    memcpy(rec->bin, ci->pan, cardnum_bin_len(pan_len));
    memcpy(rec->last4, ci->pan + pan_len - API_LAST4_LEN, API_LAST4_LEN);
    snprintf(rec->merchant, sizeof(rec->merchant), "%s", BENCH_MERCHANT);
    if (ops_card_fingerprint(s, c->fpk, BENCH_MERCHANT, ci->pan, rec->fingerprint) != 0 ||
        hsm_random(s, rnd, sizeof(rnd)) != HSM_OK ||
        cardnum_token_opaque(ci->token, sizeof(ci->token), rnd) != 0)
        return HSM_ERR_INTERNAL;
    memcpy(sec.pan, ci->pan, sizeof(sec.pan));
    e = record_seal(s, c->dek, 1, ci->token, rec, &sec) == 0 ? HSM_OK : HSM_ERR_INTERNAL;
    record_secret_wipe(&sec);
    return e;
}

/* What a worker does for a QR payment request: the issue's random id, tag
 * and token text, or the redeem's parse and tag check. */
static int
rh_qr(struct rh_ctx *c, hsm_session *s, size_t i)
{
    struct qr_item *qi = &c->qr[i];
    struct qr_token *t = &qi->raw;
    struct qr_record rec;
    uint8_t in[QR_MAC_INPUT_MAX];
    size_t len = 0;
    int e;

    qr_record_of(c->tag, i, c->created_ms / MS_PER_S, c->lifetime_s, &rec);
    if (c->kind == RH_QR_REDEEM) {
        struct qr_token parsed;

        if (qr_token_parse(&parsed, qi->token, strlen(qi->token)) != 0 ||
            qr_mac_input(in, &len, parsed.version, parsed.id, &rec) != 0)
            return HSM_ERR_INTERNAL;
        return hsm_hmac_verify(s, c->stk, in, len, parsed.tag, sizeof(parsed.tag));
    }
    t->version = QR_TOKEN_VERSION;
    t->expires_at = rec.expires_at;
    if ((e = hsm_random(s, t->id, sizeof(t->id))) != HSM_OK)
        return e;
    if (qr_mac_input(in, &len, t->version, t->id, &rec) != 0)
        return HSM_ERR_INTERNAL;
    if ((e = hsm_hmac_sign(s, c->stk, in, len, t->tag)) != HSM_OK)
        return e;
    return qr_token_encode(qi->token, t) == 0 ? HSM_OK : HSM_ERR_INTERNAL;
}

static int
rh_one(struct rh_ctx *c, hsm_session *s, size_t i)
{
    struct sale_session sess;
    struct api_writer w;
    uint8_t rnd[CARDNUM_OPAQUE_RANDOM_LEN];
    char id[API_ID_MAX + 1];
    int e;

    if (c->kind == RH_MIT) {
        e = hsm_random(s, rnd, sizeof(rnd));
        if (e == HSM_OK && cardnum_token_opaque(id, sizeof(id), rnd) != 0)
            e = HSM_ERR_INTERNAL;
        return e;
    }
    if (c->kind == RH_STORE || c->kind == RH_REVEAL)
        return rh_card(c, s, i);
    if (c->kind == RH_GET || c->kind == RH_LIST)
        return cards_read(c, i) == 0 ? HSM_OK : HSM_ERR_INTERNAL;
    if (c->kind == RH_QR_ISSUE || c->kind == RH_QR_REDEEM)
        return rh_qr(c, s, i);
    if (c->kind == RH_INIT && (e = hsm_random(s, c->sess[i].nonce, OPS_NONCE_LEN)) != HSM_OK)
        return e;
    sale_session_of(c->tag, i, c->created_ms, c->lifetime_s, &sess);
    api_writer_init(&w, OPS_SESSION_MAX);
    if (ops_session_mac_input(&w, c->sess[i].nonce, &sess) != 0)
        e = HSM_ERR_INTERNAL;
    else if (c->kind == RH_INIT)
        e = hsm_hmac_sign(s, c->stk, api_writer_data(&w), api_writer_len(&w), c->sess[i].sig);
    else
        e = hsm_hmac_verify(s, c->stk, api_writer_data(&w), api_writer_len(&w), c->sess[i].sig,
                            API_SIGNATURE_LEN);
    api_writer_cleanup(&w);
    return e;
}

static void *
rh_thread(void *arg)
{
    struct rh_ctx *c = arg;
    hsm_session *s = NULL;
    size_t i;
    int e;

    if ((e = hsm_session_acquire(c->h, &s)) != HSM_OK) {
        err_hsm("raw: a session", e);
        atomic_fetch_add(&c->failed, 1);
        return NULL;
    }
    while ((i = atomic_fetch_add(&c->next, 1)) < c->n) {
        uint64_t t0 = mono_ns();

        e = rh_one(c, s, i);
        c->lat[i] = mono_ns() - t0;
        if (e != HSM_OK) {
            atomic_fetch_add(&c->failed, 1);
            if (!atomic_flag_test_and_set(&c->reported))
                err_hsm("raw: an HSM call", e);
        }
    }
    hsm_session_release(s);
    return NULL;
}

/* One pass of |c->kind| over |c->n| items on |threads| threads. */
static int
rh_pass(struct rh_ctx *c, unsigned threads, struct raw_result *out)
{
    pthread_t th[RAW_THREADS_MAX];
    unsigned started = 0;
    uint64_t t0, t1;
    double cpu0;

    memset(out, 0, sizeof(*out));
    atomic_store(&c->next, 0);
    atomic_store(&c->failed, 0);
    atomic_flag_clear(&c->reported);
    if ((c->lat = calloc(c->n, sizeof(*c->lat))) == NULL)
        return -1;
    t0 = mono_ns();
    cpu0 = cpu_seconds();
    for (; started < threads; started++)
        if (pthread_create(&th[started], NULL, rh_thread, c) != 0)
            break;
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    t1 = mono_ns();
    out->seconds = (double)(t1 - t0) / (double)NS_PER_S;
    out->pps = (double)c->n / out->seconds;
    out->cpu_ms = (cpu_seconds() - cpu0) * (double)MS_PER_S / (double)c->n;
    lat_stats_get(c->lat, c->n, &out->lat);
    free(c->lat);
    c->lat = NULL;
    if (started != threads || atomic_load(&c->failed) != 0) {
        err("raw: %zu of %zu steps failed", atomic_load(&c->failed), c->n);
        return -1;
    }
    return 0;
}

/* Two passes one after the other, as one: a pair is an INIT and a CHECK. */
static void
raw_sum(const struct raw_result *a, const struct raw_result *b, size_t n, struct raw_result *out)
{
    memset(out, 0, sizeof(*out));
    out->seconds = a->seconds + b->seconds;
    out->pps = (double)n / out->seconds;
    out->cpu_ms = a->cpu_ms + b->cpu_ms;
}

/* The store's part: the write transaction the service's writer runs for
 * each request, through the same store (vault/store.h: its writer thread and
 * its group commit, durable commits), in a scratch store of this process,
 * with as many requests outstanding as the service run keeps in flight, so
 * that the writer finds as much to group:
 *   RS_INIT  SESSION_INIT: the session put new, its expiry scheduled, the
 *            audit entry (init_apply)
 *   RS_CHECK SESSION_CHECK: the session read, decoded, put back consumed,
 *            the audit entry (check_apply)
 *   RS_MIT   MIT_AUTHORIZE: the card read and decoded, the mandate read,
 *            checked, put back with the charge, the audit entry (mit_apply)
 *   RS_QR_ISSUE  QR_ISSUE: the order index looked up, the request record put
 *            new, the index entry, the sweeper's entry, the audit entry
 *            (issue_apply)
 *   RS_QR_REDEEM QR_REDEEM: the record read, checked (merchant, paid,
 *            expiry), put back paid, the audit entry (redeem_apply)
 * Records, keys and audit entries are the service's, made by its encoders,
 * so every write has the service's size. No RPC, no TLS, no HSM but the
 * audit checkpoints the writer signs, as the service's does. */
enum rs_kind { RS_INIT, RS_CHECK, RS_MIT, RS_STORE, RS_REVEAL, RS_QR_ISSUE, RS_QR_REDEEM };

struct rs_ctx {
    struct vault_store *store;
    struct vault_audit audit;
    const char *client;        /* the config's client name, as audit entries carry it */
    enum rs_kind kind;
    size_t n;
    const char *tag;
    uint64_t created_ms;
    unsigned lifetime_s;
    struct sess_item *sess;    /* RS_INIT, RS_CHECK: the nonces */
    struct card_item *cards;   /* RS_MIT: tokens and mandate ids */
    struct qr_item *qr;        /* RS_QR_*: the request ids (raw) */
    uint64_t qr_retention_s;
    struct api_date charge_date;
    uint64_t *lat;
    atomic_size_t failed;
    atomic_flag reported;
    sem_t slots;               /* requests outstanding */
};

struct rs_job {
    struct store_write w; /* first: the writer hands it back */
    struct rs_ctx *c;
    size_t i;
    uint64_t t0;
};

static int
rs_audit(struct rs_ctx *c, struct store_txn *t, uint16_t opcode, size_t i, const char *token,
         const char *detail)
{
    struct audit_event e = {
        .event = "request",
        .client = c->client,
        .opcode = opcode,
        .status = API_STATUS_OK,
        .request_id = i + 1,
        .merchant = BENCH_MERCHANT,
        .token = token,
        .detail = detail,
    };

    return audit_append(&c->audit, t, &e);
}

/* The writer's part of a new card (ops_card_file, store_new,
 * link_customer): the fingerprint looked up, the record, its fingerprint
 * entry, the customer's entry and its reverse, the audit entry. Of a reveal
 * (reveal_apply): the audit entry, which commits before the PAN goes out. */
static int
rs_card(struct rs_ctx *c, struct store_txn *t, size_t i)
{
    const struct card_item *ci = &c->cards[i];
    uint8_t fk[FP_KEY_LEN_MAX], ck[API_ID_MAX + 1 + API_CUSTOMER_NUMBER_MAX];
    size_t fk_len, ck_len, mlen = strlen(BENCH_MERCHANT), held = 0;
    MDB_val v;
    int r;

    if (c->kind == RS_REVEAL)
        return rs_audit(c, t, API_OP_CARD_REVEAL, i, ci->token, "authorization");
    fk_len = ops_fp_key(fk, BENCH_MERCHANT, ci->rec->fingerprint);
    if ((r = store_get(t, STORE_DB_FINGERPRINTS, fk, fk_len, &v)) != -API_STATUS_NOT_FOUND)
        return r == 0 ? -API_STATUS_CONFLICT : r;
    memcpy(ck, BENCH_MERCHANT, mlen);
    ck[mlen] = 0;
    memcpy(ck + mlen + 1, ci->customer, strlen(ci->customer));
    ck_len = mlen + 1 + strlen(ci->customer);
    if ((r = ops_card_save(t, ci->token, ci->rec, STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_FINGERPRINTS, fk, fk_len, ci->token, strlen(ci->token),
                       STORE_PUT_NEW)) != 0 ||
        (r = store_dup_count(t, STORE_DB_CUSTOMERS, ck, ck_len, &held)) != 0 ||
        (r = store_put(t, STORE_DB_CUSTOMERS, ck, ck_len, ci->token, strlen(ci->token), 0)) != 0 ||
        (r = store_put(t, STORE_DB_LINKS, ci->token, strlen(ci->token), ci->customer,
                       strlen(ci->customer), 0)) != 0)
        return r;
    return rs_audit(c, t, API_OP_CARD_STORE, i, ci->token, "new");
}

/* The writer's part of a QR payment request, as the service's. */
static int
rs_qr(struct rs_ctx *c, struct store_txn *t, size_t i)
{
    const struct qr_token *tok = &c->qr[i].raw;
    uint8_t key[QR_ORDER_KEY_MAX], rkey[QR_RECORD_KEY_LEN];
    char idt[QR_REQUEST_ID_TEXT_LEN + 1];
    struct qr_record rec;
    uint64_t now = (uint64_t)time(NULL);
    size_t klen;
    MDB_val v;
    int r;

    qr_request_id_text(idt, tok->id);
    if (c->kind == RS_QR_REDEEM) {
        if ((r = ops_qr_load(t, tok->id, &rec)) != 0)
            return r;
        if (strcmp(rec.merchant, BENCH_MERCHANT) != 0)
            return -API_STATUS_NOT_FOUND;
        if (rec.state == API_QR_PAID)
            return -API_STATUS_REPLAYED;
        if (now >= rec.expires_at)
            return -API_STATUS_EXPIRED;
        rec.state = API_QR_PAID;
        rec.paid_at = now;
        snprintf(rec.payer_ref, sizeof(rec.payer_ref), "payer-%zu", i);
        if ((r = ops_qr_save(t, tok->id, &rec, 0)) != 0)
            return r;
        return rs_audit(c, t, API_OP_QR_REDEEM, i, idt, "paid");
    }
    qr_record_of(c->tag, i, c->created_ms / MS_PER_S, c->lifetime_s, &rec);
    klen = qr_order_key(key, rec.merchant, rec.order_id);
    if ((r = store_get(t, STORE_DB_QR, key, klen, &v)) != -API_STATUS_NOT_FOUND)
        return r == 0 ? -API_STATUS_CONFLICT : r;
    if ((r = ops_qr_save(t, tok->id, &rec, STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_QR, key, klen, tok->id, QR_REQUEST_ID_LEN, 0)) != 0 ||
        (r = ops_sweep_schedule(t, (rec.expires_at + c->qr_retention_s) * MS_PER_S, SWEEP_QR,
                                rkey, qr_record_key(rkey, tok->id))) != 0)
        return r;
    return rs_audit(c, t, API_OP_QR_ISSUE, i, idt, "issued");
}

static int
rs_apply(struct store_write *w, struct store_txn *t)
{
    struct rs_job *j = (struct rs_job *)w;
    struct rs_ctx *c = j->c;
    char hex[2 * OPS_NONCE_LEN + 1];
    struct sale_session s;
    MDB_val v;
    int r;

    if (c->kind == RS_INIT || c->kind == RS_CHECK) {
        const uint8_t *nonce = c->sess[j->i].nonce;

        if (hex_encode(hex, sizeof(hex), nonce, OPS_NONCE_LEN) != 0)
            return -API_STATUS_INTERNAL;
        if (c->kind == RS_INIT) {
            sale_session_of(c->tag, j->i, c->created_ms, c->lifetime_s, &s);
            if ((r = ops_session_save(t, nonce, &s, STORE_PUT_NEW)) != 0 ||
                (r = ops_sweep_schedule(t, s.expires_at * MS_PER_S, SWEEP_SESSION, nonce,
                                        OPS_NONCE_LEN)) != 0)
                return r;
            return rs_audit(c, t, API_OP_SESSION_INIT, j->i, hex, NULL);
        }
        if ((r = store_get(t, STORE_DB_SESSIONS, nonce, OPS_NONCE_LEN, &v)) != 0 ||
            (r = ops_session_decode(&s, v.mv_data, v.mv_size)) != 0)
            return r;
        if (s.state != OPS_SESSION_OPEN)
            return -API_STATUS_REPLAYED;
        s.state = OPS_SESSION_CONSUMED;
        if ((r = ops_session_save(t, nonce, &s, 0)) != 0)
            return r;
        return rs_audit(c, t, API_OP_SESSION_CHECK, j->i, hex, "sale");
    }
    if (c->kind == RS_STORE || c->kind == RS_REVEAL)
        return rs_card(c, t, j->i);
    if (c->kind == RS_QR_ISSUE || c->kind == RS_QR_REDEEM)
        return rs_qr(c, t, j->i);
    /* RS_MIT */
    {
        const struct card_item *ci = &c->cards[j->i];
        struct card_record rec;
        struct mandate_record m;
        struct mandate_refusal no;
        struct api_writer mw;
        uint8_t key[MANDATE_KEY_MAX];
        size_t key_len = mandate_key(key, ci->token, ci->mandate);
        int32_t today = mandate_day_of(time(NULL));

        if ((r = store_get(t, STORE_DB_CARDS, ci->token, strlen(ci->token), &v)) != 0 ||
            (r = record_decode(&rec, v.mv_data, v.mv_size)) != 0 ||
            (r = store_get(t, STORE_DB_MANDATES, key, key_len, &v)) != 0 ||
            (r = mandate_decode(&m, v.mv_data, v.mv_size)) != 0)
            return r;
        if (mandate_status_on(&m, today) != API_MANDATE_ACTIVE ||
            (rec.flags & RECORD_F_ACTIVE) == 0)
            return -API_STATUS_INACTIVE;
        if ((r = mandate_charge_check(&m, MIT_AMOUNT, BENCH_CURRENCY, &c->charge_date, today,
                                      &no)) != 0 ||
            (r = mandate_charge_record(&m, &c->charge_date)) != 0)
            return r;
        api_writer_init(&mw, MANDATE_MAX);
        r = mandate_encode(&mw, &m);
        if (r == 0)
            r = store_put(t, STORE_DB_MANDATES, key, key_len, api_writer_data(&mw),
                          api_writer_len(&mw), 0);
        api_writer_cleanup(&mw);
        if (r != 0)
            return r;
        return rs_audit(c, t, API_OP_MIT_AUTHORIZE, j->i, ci->token, "approved");
    }
}

static void
rs_done(struct store_write *w, int result)
{
    struct rs_job *j = (struct rs_job *)w;
    struct rs_ctx *c = j->c;

    c->lat[j->i] = mono_ns() - j->t0;
    if (result != 0) {
        atomic_fetch_add(&c->failed, 1);
        if (!atomic_flag_test_and_set(&c->reported))
            err("raw store: job %zu: %s", j->i, api_status_name((unsigned)-result));
    }
    sem_post(&c->slots);
}

/* One pass of |c->kind| over |c->n| items with up to |outstanding| jobs
 * queued or in the writer; *out_jpc gets the jobs per commit. */
static int
rs_pass(struct rs_ctx *c, unsigned outstanding, struct raw_result *out, double *out_jpc)
{
    struct rs_job *jobs = NULL;
    struct store_stats st0, st1;
    uint64_t t0, t1;
    double cpu0;
    size_t submitted = 0;
    int r = -1;

    memset(out, 0, sizeof(*out));
    *out_jpc = 0;
    atomic_store(&c->failed, 0);
    atomic_flag_clear(&c->reported);
    if ((c->lat = calloc(c->n, sizeof(*c->lat))) == NULL ||
        (jobs = calloc(c->n, sizeof(*jobs))) == NULL || sem_init(&c->slots, 0, outstanding) != 0)
        goto out;
    if (store_stats_get(c->store, &st0) != 0)
        goto done;
    t0 = mono_ns();
    cpu0 = cpu_seconds();
    for (; submitted < c->n; submitted++) {
        struct rs_job *j = &jobs[submitted];
        int e;

        while (sem_wait(&c->slots) != 0)
            ; /* EINTR */
        j->w.apply = rs_apply;
        j->w.done = rs_done;
        j->c = c;
        j->i = submitted;
        j->t0 = mono_ns();
        if ((e = store_write_submit(c->store, &j->w)) != 0) {
            err("raw store: submit: %s", api_status_name((unsigned)-e));
            sem_post(&c->slots);
            break;
        }
    }
    /* Every slot back: every job submitted is done. */
    for (unsigned k = 0; k < outstanding; k++)
        while (sem_wait(&c->slots) != 0)
            ;
    t1 = mono_ns();
    out->seconds = (double)(t1 - t0) / (double)NS_PER_S;
    out->pps = (double)c->n / out->seconds;
    out->cpu_ms = (cpu_seconds() - cpu0) * (double)MS_PER_S / (double)c->n;
    if (store_stats_get(c->store, &st1) == 0 && st1.commits > st0.commits)
        *out_jpc = (double)(st1.jobs - st0.jobs) / (double)(st1.commits - st0.commits);
    if (submitted == c->n && atomic_load(&c->failed) == 0) {
        lat_stats_get(c->lat, c->n, &out->lat);
        r = 0;
    } else {
        err("raw store: %zu of %zu jobs failed", atomic_load(&c->failed) + (c->n - submitted),
            c->n);
    }
done:
    sem_destroy(&c->slots);
out:
    free(jobs);
    free(c->lat);
    c->lat = NULL;
    return r;
}

/* The setup of the MIT pass, not measured: each card's record (sealed as
 * the service seals it) and its mandate, RAW_STORE_SETUP_BATCH per commit. */
struct rs_setup {
    struct store_write w;
    struct rs_ctx *c;
    hsm_session *s;
    hsm_key *dek;
    size_t from, to;
    uint64_t now_s;
    struct api_date end_date;
};

static int
rs_setup_apply(struct store_write *w, struct store_txn *t)
{
    struct rs_setup *u = (struct rs_setup *)w;
    struct card_record rec;
    struct card_secret sec;
    struct mandate_record m;
    struct api_writer wr;
    uint8_t key[MANDATE_KEY_MAX];
    enum api_brand brand;
    int r = 0;

    for (size_t i = u->from; r == 0 && i < u->to; i++) {
        struct card_item *ci = &u->c->cards[i];
        size_t pan_len = strlen(ci->pan);

        memset(&rec, 0, sizeof(rec));
        memset(&sec, 0, sizeof(sec));
        if (cardnum_check(ci->pan, &brand) != 0) {
            r = -API_STATUS_CARD_INVALID;
            break;
        }
        rec.kind = API_CARD_KIND_CARD;
        rec.flags = RECORD_F_ACTIVE | RECORD_F_CONSENT;
        rec.verification = API_VERIFICATION_CVC2_3DS;
        rec.brand = (uint8_t)brand;
        rec.exp_month = CARD_EXP_MONTH;
        rec.exp_year = CARD_EXP_YEAR;
        rec.created_at = u->now_s;
        memcpy(rec.bin, ci->pan, cardnum_bin_len(pan_len));
        memcpy(rec.last4, ci->pan + pan_len - API_LAST4_LEN, API_LAST4_LEN);
        snprintf(rec.merchant, sizeof(rec.merchant), "%s", BENCH_MERCHANT);
        memcpy(sec.pan, ci->pan, sizeof(sec.pan));
        r = record_seal(u->s, u->dek, 1, ci->token, &rec, &sec);
        record_secret_wipe(&sec);
        if (r != 0)
            break;
        api_writer_init(&wr, RECORD_MAX);
        r = record_encode(&wr, &rec);
        if (r == 0)
            r = store_put(t, STORE_DB_CARDS, ci->token, strlen(ci->token), api_writer_data(&wr),
                          api_writer_len(&wr), STORE_PUT_NEW);
        api_writer_cleanup(&wr);
        if (r != 0)
            break;
        memset(&m, 0, sizeof(m));
        m.kind = API_MANDATE_KIND_RECURRING;
        m.status = API_MANDATE_ACTIVE;
        m.min_amount = MANDATE_MIN_AMOUNT;
        m.max_amount = MANDATE_MAX_AMOUNT;
        snprintf(m.currency, sizeof(m.currency), "%s", BENCH_CURRENCY);
        m.recurring_count = MANDATE_EVERY_DAYS;
        m.max_date = u->end_date;
        m.created_at = u->now_s;
        snprintf(m.merchant, sizeof(m.merchant), "%s", BENCH_MERCHANT);
        memcpy(m.customer, ci->customer, sizeof(m.customer));
        api_writer_init(&wr, MANDATE_MAX);
        r = mandate_encode(&wr, &m);
        if (r == 0)
            r = store_put(t, STORE_DB_MANDATES, key, mandate_key(key, ci->token, ci->mandate),
                          api_writer_data(&wr), api_writer_len(&wr), STORE_PUT_NEW);
        api_writer_cleanup(&wr);
    }
    return r;
}

/* The scratch store: opened new in |dir| (which must not exist), its
 * writer started with |h| for the audit checkpoints. */
static int
rs_open(struct rs_ctx *c, const struct vault_config *cfg, hsm *h, hsm_session *s,
        const char *dir)
{
    char why[ERR_MAX];
    int e;

    memset(&c->audit, 0, sizeof(c->audit));
    c->audit.checkpoint_entries = cfg->audit_checkpoint_entries;
    if ((e = hsm_key_find(s, "vault-audit-sign", &c->audit.sign_key)) != HSM_OK) {
        err_hsm("raw store: the audit key", e);
        return -1;
    }
    if (store_open(&c->store, dir, RAW_STORE_MAP_BYTES, why, sizeof(why)) != 0) {
        err("raw store: %s: %s", dir, why);
        return -1;
    }
    if (store_writer_start(c->store, h, cfg->queue_depth) != 0) {
        err("raw store: the writer does not start");
        return -1;
    }
    return 0;
}

/* Removes the scratch store (LMDB's two files and the directory). */
static void
rs_remove(const char *dir)
{
    static const char *const files[] = { "data.mdb", "lock.mdb" };
    char path[PATH_MAX];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (path_join(path, sizeof(path), dir, files[i]) == 0 && unlink(path) != 0 &&
            errno != ENOENT)
            err("%s: %s", path, strerror(errno));
    if (rmdir(dir) != 0 && errno != ENOENT)
        err("%s: %s (left behind)", dir, strerror(errno));
}

static const char *
config_client_name(const struct vault_config *cfg)
{
    return cfg->num_clients > 0 ? cfg->clients[0].name : "gateway";
}

/* Options shared by the sessions and mit commands. */
struct load_opts {
    unsigned count, conns, in_flight, raw_threads;
    unsigned seconds; /* --seconds, 0 when not given */
    long daemon_pid;
    const char *perf_out; /* NULL: no profile */
};

static int
load_opts_parse(const struct opts *o, const struct vault_config *cfg, unsigned count_default,
                struct load_opts *out)
{
    unsigned pid = 0;

    out->count = (o->given & B(O_SMOKE)) != 0 ? COUNT_SMOKE : count_default;
    out->conns = CONNECTIONS_DEFAULT;
    out->in_flight = IN_FLIGHT_DEFAULT;
    out->raw_threads = 0;
    out->seconds = 0;
    out->daemon_pid = 0;
    if (((o->given & B(O_COUNT)) != 0 &&
         parse_uint("count", o->v[O_COUNT], 1, COUNT_MAX, &out->count) != 0) ||
        ((o->given & B(O_CONNECTIONS)) != 0 &&
         parse_uint("connections", o->v[O_CONNECTIONS], 1, CONNECTIONS_MAX, &out->conns) != 0) ||
        ((o->given & B(O_IN_FLIGHT)) != 0 &&
         parse_uint("in-flight", o->v[O_IN_FLIGHT], 1, API_CLIENT_IN_FLIGHT_MAX,
                    &out->in_flight) != 0) ||
        ((o->given & B(O_RAW_THREADS)) != 0 &&
         parse_uint("raw-threads", o->v[O_RAW_THREADS], 1, RAW_THREADS_MAX,
                    &out->raw_threads) != 0) ||
        ((o->given & B(O_DAEMON_PID)) != 0 &&
         parse_uint("daemon-pid", o->v[O_DAEMON_PID], 1, INT_MAX, &pid) != 0) ||
        ((o->given & B(O_SECONDS)) != 0 &&
         parse_uint("seconds", o->v[O_SECONDS], 1, SECONDS_MAX, &out->seconds) != 0))
        return -1;
    out->daemon_pid = (long)pid;
    out->perf_out = (o->given & B(O_PERF)) != 0 ? o->v[O_PERF] : NULL;
    if (out->perf_out != NULL && out->daemon_pid == 0) {
        err("--perf needs --daemon-pid");
        return -1;
    }
    if (out->raw_threads == 0)
        out->raw_threads = cfg->workers < RAW_THREADS_MAX ? cfg->workers : RAW_THREADS_MAX;
    if (out->in_flight > cfg->max_in_flight) {
        err("--in-flight %u is more than the service's max_in_flight %u", out->in_flight,
            cfg->max_in_flight);
        return -1;
    }
    return 0;
}

static void
print_raw(const char *what, const struct raw_result *r, const char *unit)
{
    printf("  %-34s %7.0f %s/s (%.2f s); per item p50 %.3f ms p99 %.3f; CPU %.3f ms/%s\n", what,
           r->pps, unit, r->seconds, r->lat.p50, r->lat.p99, r->cpu_ms, unit);
}

static void
print_raw_store(const char *what, const struct raw_result *r, double jpc, const char *unit)
{
    printf("  %-34s %7.0f %s/s (%.2f s); latency p50 %.2f ms p99 %.2f; %.1f jobs per commit\n",
           what, r->pps, unit, r->seconds, r->lat.p50, r->lat.p99, jpc);
}

/* One RESULT line for scripts/bench to tabulate. */
static void
print_result(const char *bench, const char *phase, const struct load_opts *lo,
             const struct drv_result *res, double ops, const struct lat_stats *l,
             const struct raw_result *raw_hsm, const struct raw_result *raw_store,
             double raw_store_jpc)
{
    printf("RESULT bench=%s phase=%s count=%u connections=%u in_flight=%u service_ops=%.0f "
           "requests_per_s=%.0f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f "
           "raw_hsm_ops=%.0f raw_hsm_cpu_ms=%.3f raw_threads=%u raw_store_ops=%.0f "
           "raw_store_jpc=%.1f ratio_hsm=%.2f ratio_store=%.2f daemon_cpu_ms=%.3f "
           "daemon_peak_mb=%.1f daemon_anon_mb=%.1f daemon_file_mb=%.1f service_jpc=%.1f "
           "client_cpu=%.2f ok=%" PRIu64 " not_ok=%" PRIu64 "\n",
           bench, phase, lo->count, lo->conns, lo->in_flight, ops, res->requests_per_s, l->p50,
           l->p95, l->p99, l->p999, l->max, raw_hsm->pps, raw_hsm->cpu_ms, lo->raw_threads,
           raw_store->pps, raw_store_jpc, raw_hsm->pps > 0 ? ops / raw_hsm->pps : 0,
           ops / raw_store->pps, res->daemon_cpu_ms, res->mem.peak_mb, res->mem.anon_mb,
           res->mem.file_mb,
           jobs_per_commit(&res->before, &res->after), res->client_cpu, res->ok, res->not_ok);
}

/* ---- two-step flows: sale sessions and QR payment requests ------------------------- */

/* A flow of two requests per item, benchmarked alike: pairs (the second
 * sent once the first is answered), then each step alone on new items. A
 * sale session is SESSION_INIT then SESSION_CHECK; a QR payment request is
 * QR_ISSUE then QR_REDEEM. Both make an HMAC in the HSM, then verify it. */
struct flow {
    const char *bench;          /* RESULT bench=, the command's name */
    unsigned count_default;
    enum drv_mode pairs, step_mode[2];
    enum req_kind kind[2];
    enum rh_kind rh[2];
    enum rs_kind rs[2];
    const char *unit[2];        /* "init", "check" */
    const char *phase[2];       /* RESULT phase= of each step alone */
    const char *raw_hsm[2];     /* what the raw HSM step does */
    const char *raw_store[2];   /* what the raw store step does */
};

static const struct flow flow_sessions = {
    .bench = "sessions",
    .count_default = SESSIONS_DEFAULT,
    .pairs = DRV_PAIRS,
    .step_mode = { DRV_INITS, DRV_CHECKS },
    .kind = { RK_INIT, RK_CHECK },
    .rh = { RH_INIT, RH_CHECK },
    .rs = { RS_INIT, RS_CHECK },
    .unit = { "init", "check" },
    .phase = { "inits", "checks" },
    .raw_hsm = { "HSM init (random + HMAC sign)", "HSM check (HMAC verify)" },
    .raw_store = { "store init (put, expiry, audit)", "store check (get, put, audit)" },
};

static const struct flow flow_qr = {
    .bench = "qr",
    .count_default = QR_REQUESTS_DEFAULT,
    .pairs = DRV_QR_PAIRS,
    .step_mode = { DRV_QR_ISSUES, DRV_QR_REDEEMS },
    .kind = { RK_QR_ISSUE, RK_QR_REDEEM },
    .rh = { RH_QR_ISSUE, RH_QR_REDEEM },
    .rs = { RS_QR_ISSUE, RS_QR_REDEEM },
    .unit = { "issue", "redeem" },
    .phase = { "issues", "redeems" },
    .raw_hsm = { "HSM issue (random + HMAC sign)", "HSM redeem (parse + HMAC verify)" },
    .raw_store = { "store issue (index, put, audit)", "store redeem (get, put, audit)" },
};

/* The raw limits of a flow's two steps and of the pair (the two one after
 * the other), of the HSM and of the store. */
struct flow_raw {
    struct raw_result hsm[2], hsm_pair;
    struct raw_result st[2], st_pair;
    double st_jpc[2];
};

/* The raw limits: the HSM calls on the workers' count of threads, then the
 * store's transactions with the service run's requests outstanding. */
static int
flow_raw(const struct vault_config *cfg, const char *state, const struct load_opts *lo,
         const struct flow *f, const char *tag, unsigned lifetime_s, struct flow_raw *out)
{
    struct rh_ctx h;
    struct rs_ctx st;
    struct sess_item *sess = NULL;
    struct qr_item *qr = NULL;
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    char dir[PATH_MAX];
    bool made = false;
    int e, r = -1;

    memset(&h, 0, sizeof(h));
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    if (f->pairs == DRV_QR_PAIRS)
        qr = calloc(lo->count, sizeof(*qr));
    else
        sess = calloc(lo->count, sizeof(*sess));
    if (qr == NULL && sess == NULL)
        return -1;
    if (raw_hsm_open(cfg, lo->raw_threads + 2, &pin, &h.h) != 0)
        goto out;
    if ((e = hsm_session_acquire(h.h, &s)) != HSM_OK) {
        err_hsm("raw: a session", e);
        goto out;
    }
    if (raw_wrapped(s, HSM_KIND_HMAC, "bench-raw-stk", &h.stk) != 0)
        goto out;
    h.tag = tag;
    h.created_ms = now_ms();
    h.lifetime_s = lifetime_s;
    h.sess = sess;
    h.qr = qr;
    h.n = lo->count;
    for (unsigned k = 0; k < 2; k++) {
        h.kind = f->rh[k];
        if (rh_pass(&h, lo->raw_threads, &out->hsm[k]) != 0)
            goto out;
    }
    raw_sum(&out->hsm[0], &out->hsm[1], lo->count, &out->hsm_pair);

    if (path_join(dir, sizeof(dir), state, RAW_STORE_DIR) != 0)
        goto out;
    rs_remove(dir); /* one a failed run left */
    made = true;
    if (rs_open(&st, cfg, h.h, s, dir) != 0)
        goto out;
    st.client = config_client_name(cfg);
    st.n = lo->count;
    st.tag = tag;
    st.created_ms = h.created_ms;
    st.lifetime_s = lifetime_s;
    st.sess = sess;
    st.qr = qr;
    st.qr_retention_s = cfg->qr_retention_seconds;
    for (unsigned k = 0; k < 2; k++) {
        st.kind = f->rs[k];
        if (rs_pass(&st, lo->conns * lo->in_flight, &out->st[k], &out->st_jpc[k]) != 0)
            goto out;
    }
    raw_sum(&out->st[0], &out->st[1], lo->count, &out->st_pair);
    r = 0;
out:
    store_close(st.store);
    if (made)
        rs_remove(dir);
    hsm_session_release(s);
    hsm_close(h.h);
    hsm_pin_source_free(pin);
    free(sess);
    free(qr);
    return r;
}

/* One phase of a flow through the service (mode: the pairs or one step),
 * printed and judged. */
static int
flow_phase(const struct vault_config *cfg, const struct opts *o, const struct load_opts *lo,
           const struct flow *f, struct drv *d, enum drv_mode mode, const struct flow_raw *raw)
{
    struct drv_result res;
    const struct raw_result *raw_hsm = &raw->hsm_pair, *raw_st = &raw->st_pair;
    const struct lat_stats *l = &res.pair;
    const char *unit = "pair", *phase = "pairs";
    double jpc = (raw->st_jpc[0] + raw->st_jpc[1]) / 2;
    unsigned k = mode == f->step_mode[1];

    d->mode = mode;
    d->perf_out = mode == f->pairs ? lo->perf_out : NULL;
    if (drv_run(cfg, o->v[O_TLS], lo->daemon_pid, d, &res) != 0)
        return -1;
    if (mode == f->pairs) {
        printf("service, pairs: tokenvaultd (workers = %u) over TLS 1.3 mTLS, %u connections x "
               "%u in flight, closed loop; each %s sent once its %s is answered\n",
               cfg->workers, lo->conns, lo->in_flight, req_kind_name[f->kind[1]],
               req_kind_name[f->kind[0]]);
        printf("  %.0f pairs/s = %.0f %ss/s, %.0f requests/s (%.2f s)\n", res.items_per_s,
               res.items_per_s, f->unit[1], res.requests_per_s, res.seconds);
        print_lat(req_kind_name[f->kind[0]], &res.lat[f->kind[0]]);
        print_lat(req_kind_name[f->kind[1]], &res.lat[f->kind[1]]);
        print_lat("pair", &res.pair);
    } else {
        raw_hsm = &raw->hsm[k];
        raw_st = &raw->st[k];
        jpc = raw->st_jpc[k];
        l = &res.lat[f->kind[k]];
        unit = f->unit[k];
        phase = f->phase[k];
        printf("service, %s alone%s: %u connections x %u in flight\n", req_kind_name[f->kind[k]],
               k == 1 ? " (of what the phase before made)" : "", lo->conns, lo->in_flight);
        printf("  %.0f %ss/s (%.2f s)\n", res.items_per_s, unit, res.seconds);
        print_lat(req_kind_name[f->kind[k]], l);
    }
    print_costs(&res, unit);
    print_statuses(&res);
    printf("  service/raw: %.2f of the HSM %s limit, %.2f of the store %s limit\n",
           res.items_per_s / raw_hsm->pps, unit, res.items_per_s / raw_st->pps, unit);
    print_result(f->bench, phase, lo, &res, res.items_per_s, l, raw_hsm, raw_st, jpc);
    fflush(stdout);
    return drv_judge(phase, &res);
}

static int
cmd_flow(const struct opts *o, const struct flow *f)
{
    struct vault_config *cfg = NULL;
    struct load_opts lo;
    struct flow_raw raw;
    struct drv d;
    struct sess_item *sess = NULL;
    struct qr_item *qr = NULL;
    char cerr[VAULT_CONFIG_ERR_MAX], tag[17], tag2[20];
    unsigned lifetime_s;
    int r = EXIT_FAIL;

    if (vault_config_load(&cfg, o->v[O_CONFIG], cerr, sizeof(cerr)) != 0) {
        err("%s", cerr);
        return EXIT_FAIL;
    }
    if (load_opts_parse(o, cfg, f->count_default, &lo) != 0) {
        r = EXIT_USAGE;
        goto out;
    }
    if (run_tag_make(tag) != 0)
        goto out;
    if (f->pairs == DRV_QR_PAIRS) {
        lifetime_s = cfg->qr_max_lifetime_seconds < QR_LIFETIME_S ? cfg->qr_max_lifetime_seconds
                                                                  : QR_LIFETIME_S;
        printf("qr: %u QR_ISSUE + QR_REDEEM pairs, then %u QR_ISSUE and %u QR_REDEEM each "
               "alone (merchant %s, lifetime %u s)\n",
               lo.count, lo.count, lo.count, BENCH_MERCHANT, lifetime_s);
    } else {
        lifetime_s = cfg->session_lifetime_seconds;
        printf("sessions: %u SESSION_INIT + SESSION_CHECK pairs, then %u SESSION_INIT and %u "
               "SESSION_CHECK each alone (merchant %s, deviceData %u bytes)\n",
               lo.count, lo.count, lo.count, BENCH_MERCHANT, DEVICE_DATA_LEN);
    }

    if (flow_raw(cfg, o->v[O_STATE], &lo, f, tag, lifetime_s, &raw) != 0)
        goto out;
    printf("raw limits, in process, no RPC/TLS:\n");
    print_raw(f->raw_hsm[0], &raw.hsm[0], f->unit[0]);
    print_raw(f->raw_hsm[1], &raw.hsm[1], f->unit[1]);
    printf("  %-34s %7.0f pair/s (%.2f s); CPU %.3f ms/pair\n", "HSM pair (the two)",
           raw.hsm_pair.pps, raw.hsm_pair.seconds, raw.hsm_pair.cpu_ms);
    printf("    (%u threads: the service's workers)\n", lo.raw_threads);
    print_raw_store(f->raw_store[0], &raw.st[0], raw.st_jpc[0], f->unit[0]);
    print_raw_store(f->raw_store[1], &raw.st[1], raw.st_jpc[1], f->unit[1]);
    printf("  %-34s %7.0f pair/s\n", "store pair (the two)", raw.st_pair.pps);
    printf("    (durable LMDB commits through vault/store.h's writer, %u jobs outstanding)\n",
           lo.conns * lo.in_flight);
    fflush(stdout);

    if (f->pairs == DRV_QR_PAIRS)
        qr = calloc(lo.count, sizeof(*qr));
    else
        sess = calloc(lo.count, sizeof(*sess));
    if (qr == NULL && sess == NULL)
        goto out;
    memset(&d, 0, sizeof(d));
    d.tag = tag;
    d.n = lo.count;
    d.connections = lo.conns;
    d.in_flight = lo.in_flight;
    d.sess = sess;
    d.qr = qr;
    d.qr_lifetime_s = lifetime_s;
    d.seconds = lo.seconds;
    if (flow_phase(cfg, o, &lo, f, &d, f->pairs, &raw) != 0)
        goto out;
    /* New items for the steps alone: the pairs used theirs up. */
    snprintf(tag2, sizeof(tag2), "%s-2", tag);
    d.tag = tag2;
    if (sess != NULL)
        memset(sess, 0, lo.count * sizeof(*sess));
    if (qr != NULL)
        memset(qr, 0, lo.count * sizeof(*qr));
    if (flow_phase(cfg, o, &lo, f, &d, f->step_mode[0], &raw) != 0 ||
        flow_phase(cfg, o, &lo, f, &d, f->step_mode[1], &raw) != 0)
        goto out;
    r = EXIT_OK;
out:
    if (sess != NULL)
        OPENSSL_cleanse(sess, lo.count * sizeof(*sess)); /* live sessions */
    free(sess);
    free(qr);
    vault_config_free(cfg);
    return r;
}

static int
cmd_sessions(const struct opts *o)
{
    return cmd_flow(o, &flow_sessions);
}

static int
cmd_qr(const struct opts *o)
{
    return cmd_flow(o, &flow_qr);
}

/* ---- MIT ---------------------------------------------------------------------------- */

struct mit_raw {
    struct raw_result hsm, st;
    double st_jpc;
};

/* The raw limits of MIT_AUTHORIZE: the worker's one HSM call (the approval
 * id: a caller without the reveal role opens no PAN), then the writer's
 * transaction on a scratch store holding |cards| as the service holds them. */
static int
mit_raw(const struct vault_config *cfg, const char *state, const struct load_opts *lo,
        struct card_item *cards, const struct api_date *charge_date,
        const struct api_date *end_date, struct mit_raw *out)
{
    struct rh_ctx h;
    struct rs_ctx st;
    struct rs_setup u;
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    hsm_key *dek = NULL;
    uint8_t rnd[CARDNUM_OPAQUE_RANDOM_LEN];
    char dir[PATH_MAX];
    bool made = false;
    int e, r = -1;

    memset(&h, 0, sizeof(h));
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    if (raw_hsm_open(cfg, lo->raw_threads + 2, &pin, &h.h) != 0)
        goto out;
    if ((e = hsm_session_acquire(h.h, &s)) != HSM_OK) {
        err_hsm("raw: a session", e);
        goto out;
    }
    h.n = lo->count;
    h.kind = RH_MIT;
    if (rh_pass(&h, lo->raw_threads, &out->hsm) != 0)
        goto out;

    if (path_join(dir, sizeof(dir), state, RAW_STORE_DIR) != 0)
        goto out;
    rs_remove(dir);
    made = true;
    if (rs_open(&st, cfg, h.h, s, dir) != 0 || raw_dek(s, &dek) != 0)
        goto out;
    /* The scratch cards: their own tokens and mandate ids (the service's
     * come later; both are 26 characters of base32). */
    for (size_t i = 0; i < lo->count; i++) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
            cardnum_token_opaque(cards[i].token, sizeof(cards[i].token), rnd) != 0 ||
            RAND_bytes(rnd, sizeof(rnd)) != 1 ||
            cardnum_token_opaque(cards[i].mandate, sizeof(cards[i].mandate), rnd) != 0) {
            err_ssl("raw store: ids");
            goto out;
        }
    }
    memset(&u, 0, sizeof(u));
    u.w.apply = rs_setup_apply;
    u.c = &st;
    u.s = s;
    u.dek = dek;
    u.now_s = (uint64_t)time(NULL);
    u.end_date = *end_date;
    st.cards = cards;
    for (size_t i = 0; i < lo->count; i += RAW_STORE_SETUP_BATCH) {
        u.from = i;
        u.to = i + RAW_STORE_SETUP_BATCH < lo->count ? i + RAW_STORE_SETUP_BATCH : lo->count;
        if ((e = store_write_wait(st.store, &u.w)) != 0) {
            err("raw store: setup: %s", api_status_name((unsigned)-e));
            goto out;
        }
    }
    st.client = config_client_name(cfg);
    st.n = lo->count;
    st.charge_date = *charge_date;
    st.kind = RS_MIT;
    if (rs_pass(&st, lo->conns * lo->in_flight, &out->st, &out->st_jpc) != 0)
        goto out;
    r = 0;
out:
    store_close(st.store);
    if (made)
        rs_remove(dir);
    for (size_t i = 0; i < lo->count; i++)
        cards[i].token[0] = cards[i].mandate[0] = '\0';
    hsm_session_release(s);
    hsm_close(h.h);
    hsm_pin_source_free(pin);
    return r;
}

static int
cmd_mit(const struct opts *o)
{
    struct vault_config *cfg = NULL;
    struct load_opts lo;
    struct mit_raw raw;
    struct drv d;
    struct drv_result cards_res, mandates_res, mit;
    struct card_item *cards = NULL;
    char cerr[VAULT_CONFIG_ERR_MAX], tag[17];
    time_t now = time(NULL);
    int r = EXIT_FAIL;

    if (vault_config_load(&cfg, o->v[O_CONFIG], cerr, sizeof(cerr)) != 0) {
        err("%s", cerr);
        return EXIT_FAIL;
    }
    if (load_opts_parse(o, cfg, CHARGES_DEFAULT, &lo) != 0) {
        r = EXIT_USAGE;
        goto out;
    }
    if (run_tag_make(tag) != 0 || (cards = calloc(lo.count, sizeof(*cards))) == NULL)
        goto out;
    for (size_t i = 0; i < lo.count; i++) {
        snprintf(cards[i].customer, sizeof(cards[i].customer), "c%s-%zu", tag, i);
        if (pan_random(cards[i].pan) != 0)
            goto out;
    }
    memset(&d, 0, sizeof(d));
    d.tag = tag;
    d.n = lo.count;
    d.connections = lo.conns;
    d.in_flight = lo.in_flight;
    d.cards = cards;
    /* Charged on the day the mandates are made: valid whenever the run ends. */
    date_of(now, &d.charge_date);
    date_of(now + (time_t)MANDATE_DAYS * SECONDS_PER_DAY, &d.end_date);
    printf("mit: %u cards stored with consent, one recurring mandate each (every %u day, "
           "%u..%u %s), one MIT_AUTHORIZE of %u per mandate; the client has no reveal role\n",
           lo.count, MANDATE_EVERY_DAYS, MANDATE_MIN_AMOUNT, MANDATE_MAX_AMOUNT, BENCH_CURRENCY,
           MIT_AMOUNT);

    if (mit_raw(cfg, o->v[O_STATE], &lo, cards, &d.charge_date, &d.end_date, &raw) != 0)
        goto out;
    printf("raw limits, in process, no RPC/TLS:\n");
    print_raw("HSM (random: the approval id)", &raw.hsm, "charge");
    printf("    (%u threads: the service's workers)\n", lo.raw_threads);
    print_raw_store("store (card, mandate, audit)", &raw.st, raw.st_jpc, "charge");
    printf("    (durable LMDB commits through vault/store.h's writer, %u jobs outstanding)\n",
           lo.conns * lo.in_flight);
    fflush(stdout);

    /* Setup through the service, not the measurement. */
    d.mode = DRV_CARDS;
    if (drv_run(cfg, o->v[O_TLS], lo.daemon_pid, &d, &cards_res) != 0)
        goto out;
    printf("setup, CARD_STORE: %.0f cards/s (%.2f s)\n", cards_res.items_per_s,
           cards_res.seconds);
    print_lat("CARD_STORE", &cards_res.lat[RK_CARD]);
    print_statuses(&cards_res);
    if (drv_judge("CARD_STORE", &cards_res) != 0)
        goto out;
    d.mode = DRV_MANDATES;
    if (drv_run(cfg, o->v[O_TLS], lo.daemon_pid, &d, &mandates_res) != 0)
        goto out;
    printf("setup, MANDATE_CREATE: %.0f mandates/s (%.2f s)\n", mandates_res.items_per_s,
           mandates_res.seconds);
    print_lat("MANDATE_CREATE", &mandates_res.lat[RK_MANDATE]);
    print_statuses(&mandates_res);
    if (drv_judge("MANDATE_CREATE", &mandates_res) != 0)
        goto out;
    fflush(stdout);

    d.mode = DRV_MIT;
    d.perf_out = lo.perf_out;
    d.seconds = lo.seconds; /* the measurement only: the setup made every card and mandate */
    if (drv_run(cfg, o->v[O_TLS], lo.daemon_pid, &d, &mit) != 0)
        goto out;
    printf("service, MIT_AUTHORIZE: tokenvaultd (workers = %u) over TLS 1.3 mTLS, %u "
           "connections x %u in flight, closed loop\n",
           cfg->workers, lo.conns, lo.in_flight);
    printf("  %.0f charges/s (%.2f s)\n", mit.items_per_s, mit.seconds);
    print_lat("MIT_AUTHORIZE", &mit.lat[RK_MIT]);
    print_costs(&mit, "charge");
    print_statuses(&mit);
    printf("  service/raw: %.2f of the store limit (%.3f of the HSM limit)\n",
           mit.items_per_s / raw.st.pps, mit.items_per_s / raw.hsm.pps);
    print_result("mit", "mit", &lo, &mit, mit.items_per_s, &mit.lat[RK_MIT], &raw.hsm, &raw.st,
                 raw.st_jpc);
    fflush(stdout);
    if (drv_judge("MIT_AUTHORIZE", &mit) != 0)
        goto out;
    r = EXIT_OK;
out:
    cards_free(cards, lo.count);
    vault_config_free(cfg);
    return r;
}

/* ---- cards: CARD_STORE, CARD_GET, CARD_LIST, CARD_REVEAL ----------------------------- */

struct cards_raw {
    struct raw_result hsm_store, hsm_reveal, st_store, st_reveal, rd_get, rd_list;
    double st_store_jpc, st_reveal_jpc;
};

/* The raw limits of the four operations on |cards|: the HSM calls, the
 * writer's transactions into a scratch store, the reads from it. The
 * tokens it draws are its own and are cleared before the service runs. */
static int
cards_raw(const struct vault_config *cfg, const char *state, const struct load_opts *lo,
          struct card_item *cards, struct cards_raw *out)
{
    struct rh_ctx h;
    struct rs_ctx st;
    struct card_record *recs = NULL;
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    char dir[PATH_MAX];
    bool made = false;
    int e, r = -1;

    memset(&h, 0, sizeof(h));
    memset(&st, 0, sizeof(st));
    memset(out, 0, sizeof(*out));
    if ((recs = calloc(lo->count, sizeof(*recs))) == NULL)
        return -1;
    for (size_t i = 0; i < lo->count; i++)
        cards[i].rec = &recs[i];
    if (raw_hsm_open(cfg, lo->raw_threads + 2, &pin, &h.h) != 0)
        goto out;
    if ((e = hsm_session_acquire(h.h, &s)) != HSM_OK) {
        err_hsm("raw: a session", e);
        goto out;
    }
    if (raw_wrapped(s, HSM_KIND_HMAC, "bench-raw-fpk", &h.fpk) != 0 || raw_dek(s, &h.dek) != 0)
        goto out;
    h.cards = cards;
    h.n = lo->count;
    h.kind = RH_STORE;
    if (rh_pass(&h, lo->raw_threads, &out->hsm_store) != 0)
        goto out;
    h.kind = RH_REVEAL;
    if (rh_pass(&h, lo->raw_threads, &out->hsm_reveal) != 0)
        goto out;

    if (path_join(dir, sizeof(dir), state, RAW_STORE_DIR) != 0)
        goto out;
    rs_remove(dir);
    made = true;
    if (rs_open(&st, cfg, h.h, s, dir) != 0)
        goto out;
    st.client = config_client_name(cfg);
    st.n = lo->count;
    st.cards = cards;
    st.kind = RS_STORE;
    if (rs_pass(&st, lo->conns * lo->in_flight, &out->st_store, &out->st_store_jpc) != 0)
        goto out;
    h.store = st.store;
    h.kind = RH_GET;
    if (rh_pass(&h, lo->raw_threads, &out->rd_get) != 0)
        goto out;
    h.kind = RH_LIST;
    if (rh_pass(&h, lo->raw_threads, &out->rd_list) != 0)
        goto out;
    st.kind = RS_REVEAL;
    if (rs_pass(&st, lo->conns * lo->in_flight, &out->st_reveal, &out->st_reveal_jpc) != 0)
        goto out;
    r = 0;
out:
    store_close(st.store);
    if (made)
        rs_remove(dir);
    for (size_t i = 0; i < lo->count; i++) {
        cards[i].token[0] = '\0';
        cards[i].rec = NULL;
    }
    if (recs != NULL)
        OPENSSL_cleanse(recs, lo->count * sizeof(*recs));
    free(recs);
    hsm_session_release(s);
    hsm_close(h.h);
    hsm_pin_source_free(pin);
    return r;
}

/* The lower of the two stages' limits: the service overlaps the workers'
 * HSM calls with the writer's commits, so the slower one bounds it. */
static const struct raw_result *
raw_bound(const struct raw_result *a, const struct raw_result *b)
{
    return a->pps <= b->pps ? a : b;
}

/* One service phase of the cards command, printed and judged. */
static int
cards_phase(const struct vault_config *cfg, const char *tls, const struct load_opts *lo,
            struct drv *d, enum drv_mode mode, enum req_kind kind, const char *phase,
            const struct raw_result *raw_hsm, const struct raw_result *raw_store, double jpc,
            double *out_rate)
{
    struct drv_result res;
    const struct raw_result *bound = raw_hsm != NULL ? raw_bound(raw_hsm, raw_store) : raw_store;
    static const struct raw_result none = {.pps = 0};

    d->mode = mode;
    d->perf_out = mode == DRV_CARDS ? lo->perf_out : NULL;
    if (drv_run(cfg, tls, lo->daemon_pid, d, &res) != 0)
        return -1;
    printf("service, %s: tokenvaultd (workers = %u) over TLS 1.3 mTLS, %u connections x %u in "
           "flight, closed loop\n",
           req_kind_name[kind], cfg->workers, lo->conns, lo->in_flight);
    printf("  %.0f requests/s (%.2f s); %.2f of the raw limit (%.0f/s)\n", res.items_per_s,
           res.seconds, res.items_per_s / bound->pps, bound->pps);
    print_lat(req_kind_name[kind], &res.lat[kind]);
    print_costs(&res, "request");
    print_statuses(&res);
    print_result("cards", phase, lo, &res, res.items_per_s, &res.lat[kind],
                 raw_hsm != NULL ? raw_hsm : &none, raw_store, jpc);
    fflush(stdout);
    *out_rate = res.items_per_s;
    return drv_judge(phase, &res);
}

/* Offered load as a share of what the closed loop did, in percent. */
static const unsigned sweep_levels[] = { 25, 50, 75, 90, 100, 110 };

/* One operation offered open loop at each sweep level; STORE gets new cards
 * at each level (a stored card would dedup). A line per level: offered,
 * achieved, latency from when each request was due, and how late the
 * driver itself was (when that is large, the driver, not the service, is
 * the bound). */
static int
cards_sweep(const struct vault_config *cfg, const char *tls, const struct load_opts *lo,
            struct drv *d, enum drv_mode mode, enum req_kind kind, double closed)
{
    struct card_item *fresh = NULL;
    struct card_item *stored = d->cards;
    int r = -1;

    printf("sweep, %s: open loop, %u connections x %u in flight, %zu requests per level; closed "
           "loop did %.0f/s\n",
           req_kind_name[kind], lo->conns, lo->in_flight, d->n, closed);
    printf("  %8s %9s %9s %8s %8s %8s %8s %9s\n", "offered", "req/s", "achieved", "p50 ms",
           "p99 ms", "p99.9 ms", "max ms", "late ms");
    for (size_t l = 0; l < sizeof(sweep_levels) / sizeof(sweep_levels[0]); l++) {
        struct drv_result res;

        if (mode == DRV_CARDS) {
            cards_free(fresh, d->n);
            if ((fresh = calloc(d->n, sizeof(*fresh))) == NULL)
                goto out;
            for (size_t i = 0; i < d->n; i++) {
                /* The run's tag, the level, the card: a customer of its own. */
                snprintf(fresh[i].customer, sizeof(fresh[i].customer), "k%.16s%02x-%u", d->tag,
                         (unsigned)(uint8_t)sweep_levels[l], (unsigned)i);
                if (pan_random(fresh[i].pan) != 0)
                    goto out;
            }
            d->cards = fresh;
        }
        d->mode = mode;
        d->perf_out = NULL;
        d->rate = (unsigned)(closed * sweep_levels[l] / 100.0);
        if (d->rate == 0)
            d->rate = 1;
        if (drv_run(cfg, tls, lo->daemon_pid, d, &res) != 0 || drv_judge(req_kind_name[kind], &res) != 0)
            goto out;
        printf("  %7u%% %9u %9.0f %8.2f %8.2f %8.2f %8.2f %9.2f\n", sweep_levels[l], d->rate,
               res.items_per_s, res.lat[kind].p50, res.lat[kind].p99, res.lat[kind].p999,
               res.lat[kind].max, res.lag_max_ms);
        printf("SWEEP bench=cards op=%s level=%u offered=%u achieved=%.0f p50_ms=%.2f p99_ms=%.2f "
               "p999_ms=%.2f max_ms=%.2f late_ms=%.2f\n",
               req_kind_name[kind], sweep_levels[l], d->rate, res.items_per_s, res.lat[kind].p50,
               res.lat[kind].p99, res.lat[kind].p999, res.lat[kind].max, res.lag_max_ms);
        fflush(stdout);
    }
    r = 0;
out:
    d->rate = 0;
    d->cards = stored;
    cards_free(fresh, d->n);
    return r;
}

static int
cmd_cards(const struct opts *o)
{
    struct vault_config *cfg = NULL;
    struct load_opts lo;
    struct cards_raw raw;
    struct drv d;
    struct card_item *cards = NULL;
    char cerr[VAULT_CONFIG_ERR_MAX], tag[17];
    double closed[4]; /* what the closed loop did: store, get, list, reveal */
    int r = EXIT_FAIL;

    if (vault_config_load(&cfg, o->v[O_CONFIG], cerr, sizeof(cerr)) != 0) {
        err("%s", cerr);
        return EXIT_FAIL;
    }
    if (load_opts_parse(o, cfg, CARDS_DEFAULT, &lo) != 0) {
        r = EXIT_USAGE;
        goto out;
    }
    if (run_tag_make(tag) != 0 || (cards = calloc(lo.count, sizeof(*cards))) == NULL)
        goto out;
    for (size_t i = 0; i < lo.count; i++) {
        snprintf(cards[i].customer, sizeof(cards[i].customer), "k%s-%zu", tag, i);
        if (pan_random(cards[i].pan) != 0)
            goto out;
    }
    printf("cards: %u new cards, one per customer, stored with consent; then CARD_GET, "
           "CARD_LIST and CARD_REVEAL (purpose authorization) of each\n",
           lo.count);
    if (cards_raw(cfg, o->v[O_STATE], &lo, cards, &raw) != 0)
        goto out;
    printf("raw limits, in process, no RPC/TLS:\n");
    print_raw("HSM store (HMAC, random, seal)", &raw.hsm_store, "card");
    print_raw("HSM reveal (open)", &raw.hsm_reveal, "reveal");
    printf("    (%u threads: the service's workers)\n", lo.raw_threads);
    print_raw_store("store: new card (5 puts, audit)", &raw.st_store, raw.st_store_jpc, "card");
    print_raw_store("store: reveal (audit)", &raw.st_reveal, raw.st_reveal_jpc, "reveal");
    printf("    (durable LMDB commits through vault/store.h's writer, %u jobs outstanding)\n",
           lo.conns * lo.in_flight);
    print_raw("reads: get (card)", &raw.rd_get, "get");
    print_raw("reads: list (customer, card)", &raw.rd_list, "list");
    printf("    (%u threads, a read transaction each)\n", lo.raw_threads);
    fflush(stdout);

    memset(&d, 0, sizeof(d));
    d.tag = tag;
    d.n = lo.count;
    d.connections = lo.conns;
    d.in_flight = lo.in_flight;
    d.cards = cards;
    d.seconds = lo.seconds;
    if (cards_phase(cfg, o->v[O_TLS], &lo, &d, DRV_CARDS, RK_CARD, "store", &raw.hsm_store,
                    &raw.st_store, raw.st_store_jpc, &closed[0]) != 0 ||
        cards_phase(cfg, o->v[O_TLS], &lo, &d, DRV_GET, RK_GET, "get", NULL, &raw.rd_get, 0,
                    &closed[1]) != 0 ||
        cards_phase(cfg, o->v[O_TLS], &lo, &d, DRV_LIST, RK_LIST, "list", NULL, &raw.rd_list,
                    0, &closed[2]) != 0 ||
        cards_phase(cfg, o->v[O_TLS], &lo, &d, DRV_REVEAL, RK_REVEAL, "reveal", &raw.hsm_reveal,
                    &raw.st_reveal, raw.st_reveal_jpc, &closed[3]) != 0)
        goto out;
    if ((o->given & B(O_SWEEP)) != 0 &&
        (cards_sweep(cfg, o->v[O_TLS], &lo, &d, DRV_CARDS, RK_CARD, closed[0]) != 0 ||
         cards_sweep(cfg, o->v[O_TLS], &lo, &d, DRV_GET, RK_GET, closed[1]) != 0 ||
         cards_sweep(cfg, o->v[O_TLS], &lo, &d, DRV_REVEAL, RK_REVEAL, closed[3]) != 0))
        goto out;
    r = EXIT_OK;
out:
    cards_free(cards, lo.count);
    vault_config_free(cfg);
    return r;
}

/* ---- recipes ------------------------------------------------------------------------ */

static int
cmd_recipes(const struct opts *o)
{
    struct recipes_opts r = {
        .module = o->v[O_MODULE],
        .module_args = (o->given & B(O_MODULE_ARGS)) != 0 ? o->v[O_MODULE_ARGS] : NULL,
        .reduced_key_attributes = (o->given & B(O_REDUCED)) != 0,
        .token = o->v[O_TOKEN],
        .pin_file = o->v[O_PIN_FILE],
        .count = (o->given & B(O_SMOKE)) != 0 ? RECIPES_SMOKE : RECIPES_DEFAULT,
    };

    if ((o->given & B(O_COUNT)) != 0 && parse_uint("count", o->v[O_COUNT], 1, 1000000, &r.count) != 0)
        return EXIT_USAGE;
    return bench_recipes(&r) == 0 ? EXIT_OK : EXIT_FAIL;
}

int
main(int argc, char **argv)
{
    const struct command *cmd = NULL;
    struct opts o;
    int c;

    memset(&o, 0, sizeof(o));
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        err("unknown command %s", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (c < 0 || c >= O_NUM) {
            usage(stderr);
            return EXIT_USAGE;
        }
        if ((o.given & B(c)) != 0) {
            err("--%s given twice", long_opts[c].name);
            return EXIT_USAGE;
        }
        if (((cmd->needs | cmd->takes) & B(c)) == 0) {
            err("%s does not take --%s", cmd->name, long_opts[c].name);
            return EXIT_USAGE;
        }
        o.given |= B(c);
        o.v[c] = optarg != NULL ? optarg : "";
    }
    if (optind != argc) {
        err("unexpected argument %s", argv[optind]);
        return EXIT_USAGE;
    }
    for (int i = 0; i < O_NUM; i++) {
        if ((cmd->needs & B(i)) != 0 && (o.given & B(i)) == 0) {
            err("%s needs --%s", cmd->name, long_opts[i].name);
            return EXIT_USAGE;
        }
    }
    return cmd->fn(&o);
}
