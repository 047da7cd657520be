/*
 * tokenvault-bench - the wallet benchmark (BENCHMARKS.md): Apple Pay EC_v1
 * and Google Pay ECv2 packets decrypted and vaulted by a running tokenvaultd
 * through the RPC, beside the raw HSM limit of the same steps measured in
 * the same run.
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
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "api/client.h"
#include "hsm/hsm.h"
#include "tests/support/gen_apple.h"
#include "tests/support/gen_google.h"
#include "vault/cardnum.h"
#include "vault/config.h"
#include "vault/record.h"
#include "vault/wallet/codec.h"
#include "vault/wallets.h"

#define PROG "tokenvault-bench"

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

/* ---- messages --------------------------------------------------------------------- */

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
err(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

static void
err_ssl(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    err("%s%s%s", what, e != 0 ? ": " : "", buf);
    ERR_clear_error();
}

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
    O_CONNECTIONS, O_IN_FLIGHT, O_RATE, O_RAW_THREADS, O_SMOKE, O_NUM
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
    { NULL, 0, NULL, 0 },
};

struct opts {
    unsigned given;
    const char *v[O_NUM];
};

static int cmd_setup(const struct opts *o);
static int cmd_run(const struct opts *o);

static const struct command {
    const char *name;
    unsigned needs, takes;
    int (*fn)(const struct opts *o);
} commands[] = {
    { "setup", B(O_MODULE) | B(O_TOKEN) | B(O_PIN_FILE) | B(O_STATE) | B(O_VECTORS), 0, cmd_setup },
    { "run", B(O_CONFIG) | B(O_STATE) | B(O_VECTORS) | B(O_TLS) | B(O_WALLET),
      B(O_PACKETS) | B(O_CONNECTIONS) | B(O_IN_FLIGHT) | B(O_RATE) | B(O_RAW_THREADS) | B(O_SMOKE),
      cmd_run },
};

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " setup --module SO --token LABEL --pin-file F --state DIR --vectors DIR\n"
            "       " PROG " run --config CONF --state DIR --vectors DIR --tls DIR\n"
            "                --wallet apple|google [--packets N] [--connections C]\n"
            "                [--in-flight P] [--rate PACKETS_PER_S] [--raw-threads T] [--smoke]\n"
            "  setup: the vault keys, the wallet keys and anchors in the token (an empty one),\n"
            "         the test Apple CA and the public keys into DIR (new)\n"
            "  run:   N packets (default %u, --smoke %u) through the raw HSM steps on T threads\n"
            "         (default: the config's workers), then through tokenvaultd over C TLS\n"
            "         connections (default %u) with up to P in flight each (default %u);\n"
            "         --rate offers them at a fixed rate instead (open loop)\n",
            PACKETS_DEFAULT, PACKETS_SMOKE, CONNECTIONS_DEFAULT, IN_FLIGHT_DEFAULT);
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
    double p50, p95, p99, max; /* ms */
};

/* Nearest-rank percentiles of |n| samples (ns); sorts |v|. */
static void
lat_stats_get(uint64_t *v, size_t n, struct lat_stats *out)
{
    double q[] = { 0.50, 0.95, 0.99 };
    double *dst[] = { &out->p50, &out->p95, &out->p99 };

    memset(out, 0, sizeof(*out));
    if (n == 0)
        return;
    qsort(v, n, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < 3; i++) {
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
static int
raw_run(const struct vault_config *cfg, int wallet, const struct packets *pk, unsigned threads,
        struct raw_result *out)
{
    const hsm_config hc = {
        .module_path = cfg->hsm_module,
        .token_label = strncmp(cfg->hsm_token, "pkcs11:", 7) == 0 ? NULL : cfg->hsm_token,
        .token_uri = strncmp(cfg->hsm_token, "pkcs11:", 7) == 0 ? cfg->hsm_token : NULL,
        .max_sessions = threads + 1,
    };
    struct raw_ctx c;
    hsm_pin_source *pin = NULL;
    hsm_session *s = NULL;
    hsm_key *kek = NULL;
    uint8_t wrapped[HSM_WRAPPED_DEK_LEN], kcv[HSM_KCV_LEN];
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
    if (cfg->pin_source != VAULT_PIN_FILE) {
        err("raw: the config's PIN must come from a file (pin_source = file)");
        goto out;
    }
    if ((e = hsm_pin_source_file(&pin, cfg->pin_file)) != HSM_OK ||
        (e = hsm_open(&c.h, &hc, pin)) != HSM_OK || (e = hsm_session_acquire(c.h, &s)) != HSM_OK) {
        err_hsm("raw: the token", e);
        goto out;
    }
    if (vault_wallets_load(&c.engine, s, cfg, why, sizeof(why)) != 0) {
        err("raw: wallets: %s", why);
        goto out;
    }
    /* A DEK of our own, as the service makes its own: generated in the
     * token under the KEK and loaded as a session object. */
    if ((e = hsm_key_find(s, "vault-kek-v1", &kek)) != HSM_OK ||
        (e = hsm_dek_generate(s, kek, wrapped, kcv)) != HSM_OK ||
        (e = hsm_dek_load(s, kek, "bench-raw-dek", wrapped, sizeof(wrapped), kcv, &c.dek)) !=
            HSM_OK) {
        err_hsm("raw: a DEK", e);
        goto out;
    }
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

struct svc_ctx {
    const struct packets *pk;
    int wallet;              /* enum api_wallet */
    const char *version;     /* what every answer must say: "EC_v1", "ECv2" */
    unsigned connections;
    unsigned in_flight;
    unsigned rate;           /* 0: closed loop */
    uint64_t t0;             /* start, monotonic ns (rate: packet j is due at t0 + j / rate) */
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
        size_t j = k < n ? packet_index(c, t->index, k) : 0;
        bool can_send = k < n && api_client_in_flight(t->client) < c->in_flight;

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
    return NULL;
}

struct svc_result {
    double seconds, pps;
    double client_cpu; /* this process's CPU time during the run / wall time: cores */
    struct lat_stats lat, lag;
    uint64_t counts[STATUS_SLOTS];
    uint64_t ok, not_ok, wrong;
};

static int
svc_run(const struct vault_config *cfg, const char *tls, int wallet, const char *version,
        const struct packets *pk, unsigned conns, unsigned in_flight, unsigned rate,
        struct svc_result *out)
{
    char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    struct api_client_config cc = {
        .host = cfg->listen_host,
        .port = cfg->listen_port,
        .server_name = "localhost",
        .ca_file = ca,
        .cert_file = cert,
        .key_file = key,
        .request_timeout_ms = CLIENT_TIMEOUT_MS,
        .max_in_flight = in_flight,
    };
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
    /* A listener on every address is reached on the loopback. */
    if (strcmp(cfg->listen_host, "0.0.0.0") == 0 || strcmp(cfg->listen_host, "::") == 0)
        cc.host = "127.0.0.1";
    if (path_join(ca, sizeof(ca), tls, "ca.pem") != 0 ||
        path_join(cert, sizeof(cert), tls, "client.pem") != 0 ||
        path_join(key, sizeof(key), tls, "client.key") != 0)
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
    }
    out->ok = out->counts[API_STATUS_OK];
    for (unsigned s = 1; s < STATUS_SLOTS; s++)
        out->not_ok += out->counts[s];
    out->seconds = (double)(t1 - c.t0) / (double)NS_PER_S;
    out->pps = (double)pk->n / out->seconds;
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
    unsigned rate = 0, raw_threads = 0;
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
         parse_uint("raw-threads", o->v[O_RAW_THREADS], 1, RAW_THREADS_MAX, &raw_threads) != 0))
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
        svc_run(cfg, o->v[O_TLS], wallet, version, &pk, conns, in_flight, rate, &svc) != 0)
        goto out;
    if (rate == 0)
        printf("service: tokenvaultd (workers = %u) over TLS 1.3 mTLS, %u connections x %u in "
               "flight, closed loop\n",
               cfg->workers, conns, in_flight);
    else
        printf("service: tokenvaultd (workers = %u) over TLS 1.3 mTLS, offered %u packets/s "
               "open loop on %u connections (up to %u in flight each)\n",
               cfg->workers, rate, conns, in_flight);
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
    printf("RESULT wallet=%s mode=%s packets=%u connections=%u in_flight=%u rate=%u "
           "service_pps=%.0f p50_ms=%.2f p95_ms=%.2f p99_ms=%.2f max_ms=%.2f raw_pps=%.0f "
           "raw_threads=%u raw_cpu_ms=%.3f ratio=%.2f client_cpu=%.2f ok=%" PRIu64 " not_ok=%" PRIu64 "\n",
           wname, rate == 0 ? "closed" : "rate", packets, conns, in_flight, rate, svc.pps,
           svc.lat.p50, svc.lat.p95, svc.lat.p99, svc.lat.max, raw.pps, raw_threads,
           raw.cpu_ms, svc.pps / raw.pps, svc.client_cpu, svc.ok, svc.not_ok);
    if (svc.not_ok != 0 || svc.wrong != 0 || svc.ok != packets) {
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
