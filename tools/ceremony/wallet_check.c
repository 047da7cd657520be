/*
 * wallet_check.c - `tokenvault-ceremony wallet-check` (wallet_check.h): a
 * disputed or rejected wallet packet opened by the service's wallet engine
 * on the HSM, at a verification time support staff choose.
 *
 * Nothing here verifies or decrypts on its own: vault_wallets_load resolves
 * the merchant's keys and the trust anchors from the config and the token
 * exactly as tokenvaultd does at start, and vault_wallets_open runs every
 * check of the format in the HSM. This file reads the files, picks the
 * wallet and the time, and prints what the engine said: each check of
 * vault_wallets_checks with its outcome, and the card masked. The PAN,
 * holder and cryptogram never reach standard output (which is the
 * transcript): only the BIN and last 4 the vault may show (cardnum_bin_len,
 * PCI DSS 3.4.1), and whether a cryptogram or holder is present.
 */
#include "tools/ceremony/wallet_check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "api/proto.h"
#include "vault/cardnum.h"
#include "vault/config.h"
#include "vault/wallets.h"

/* Digits of the PAN shown at its end; the head is cardnum_bin_len's. */
#define LAST_DIGITS 4u
/* "9999-12-31T23:59:59.999Z" and a NUL. */
#define TIME_TEXT_MAX 32
/* Milliseconds in a second: --at and every wallet time are epoch ms. */
#define MS_PER_S 1000u
#define NS_PER_MS 1000000u
/* Digits of WALLET_EXPIRATION_MAX_MS, the largest --at in milliseconds; a
 * number of this many digits cannot overflow 64 bits. */
#define EPOCH_MS_DIGITS_MAX 15u
/* "YYYY-MM-DDTHH:MM:SS": what precedes the fraction or the Z. */
#define RFC3339_SECONDS_LEN 19u

/* What the command found out, for either printer. */
struct outcome {
    const char *merchant;
    const char *packet_path;
    size_t packet_len;
    char sha256[2 * SHA256_DIGEST_LENGTH + 1];
    int wallet;            /* enum api_wallet */
    bool detected;         /* --wallet not given: vault_wallets_detect chose */
    uint64_t at_ms;
    int err;               /* vault_wallets_open's result */
    char why[WALLET_WHY_MAX];
    const struct vault_wallet_check *checks;
    size_t failed;         /* index of the failing check; num_checks if none is it */
    size_t num_checks;
    const struct wallet_card *card; /* on success only */
};

/* ---- --at -------------------------------------------------------------------------- */

/* |n| ASCII digits at |p| as a number, or -1. */
static long
digits(const char *p, size_t n)
{
    long v = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int
days_in_month(long year, long month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : days[month - 1];
}

int
wallet_check_parse_time(const char *text, uint64_t *out_ms)
{
    size_t len = strlen(text);
    long year, mon, day, hour, min, sec, ms = 0;
    struct tm tm;
    time_t t;
    uint64_t v;

    if (len > 0 && strspn(text, "0123456789") == len) {
        if (len > EPOCH_MS_DIGITS_MAX)
            return -1;
        v = 0;
        for (size_t i = 0; i < len; i++)
            v = v * 10 + (uint64_t)(text[i] - '0');
        if (v > WALLET_EXPIRATION_MAX_MS)
            return -1;
        *out_ms = v;
        return 0;
    }
    /* YYYY-MM-DDTHH:MM:SS[.frac]Z (RFC 3339 section 5.6, UTC only: a packet's
     * times are UTC, and an offset is one more thing to get wrong on a call). */
    if (len < RFC3339_SECONDS_LEN + 1 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':')
        return -1;
    year = digits(text, 4);
    mon = digits(text + 5, 2);
    day = digits(text + 8, 2);
    hour = digits(text + 11, 2);
    min = digits(text + 14, 2);
    sec = digits(text + 17, 2);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) ||
        hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 || sec > 59)
        return -1;
    if (text[RFC3339_SECONDS_LEN] == '.') {
        const char *frac = text + RFC3339_SECONDS_LEN + 1;
        size_t n = strspn(frac, "0123456789");

        /* The digits, then the Z and nothing else; past milliseconds cut. */
        if (n == 0 || RFC3339_SECONDS_LEN + 1 + n != len - 1)
            return -1;
        for (size_t i = 0; i < 3; i++)
            ms = ms * 10 + (i < n ? frac[i] - '0' : 0);
    } else if (len != RFC3339_SECONDS_LEN + 1) {
        return -1;
    }
    if (text[len - 1] != 'Z' && text[len - 1] != 'z')
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = (int)(year - 1900);
    tm.tm_mon = (int)(mon - 1);
    tm.tm_mday = (int)day;
    tm.tm_hour = (int)hour;
    tm.tm_min = (int)min;
    tm.tm_sec = (int)sec;
    if ((t = timegm(&tm)) < 0)
        return -1;
    *out_ms = (uint64_t)t * MS_PER_S + (uint64_t)ms;
    return 0;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * MS_PER_S + (uint64_t)ts.tv_nsec / NS_PER_MS;
}

/* RFC 3339 UTC with milliseconds. */
static void
time_text(uint64_t ms, char out[TIME_TEXT_MAX])
{
    time_t t = (time_t)(ms / MS_PER_S);
    struct tm tm;
    char day[24];

    if (gmtime_r(&t, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, TIME_TEXT_MAX, "(epoch ms %llu)", (unsigned long long)ms);
        return;
    }
    snprintf(out, TIME_TEXT_MAX, "%s.%03uZ", day, (unsigned)(ms % MS_PER_S));
}

/* ---- small helpers ------------------------------------------------------------------ */

/* A merchant id as the protocol takes it (API_TAG_MERCHANT: printable
 * ASCII without spaces, 1..API_ID_MAX). */
static bool
merchant_ok(const char *m)
{
    size_t n = strlen(m);

    if (n == 0 || n > API_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 0x21 || m[i] > 0x7e)
            return false;
    return true;
}

/* Prints |s| with anything but printable ASCII as '?': file names and packet
 * fields reach a terminal and a transcript. */
static void
print_safe(const char *s)
{
    for (; *s != '\0'; s++)
        putchar(*s >= 0x20 && *s <= 0x7e ? *s : '?');
}

/* Whether each check passed, failed or did not run, as the engine's first
 * check failing with |err| decides (wallets.h: the checks run in order). */
static const char *
check_state(const struct outcome *oc, size_t i)
{
    /* wallet-check passes no expectation (vault_wallets_open's |expect|):
     * the amount and currency are printed, not compared. */
    if (oc->checks[i].err == WALLET_ERR_MISMATCH)
        return "not asked";
    if (oc->err == WALLET_OK)
        return "ok";
    if (oc->failed == oc->num_checks)
        return "unknown"; /* an error no check names (the HSM, memory): cannot tell */
    return i < oc->failed ? "ok" : i == oc->failed ? "failed" : "not run";
}

static const char *
status_name(int err)
{
    const char *n = api_status_name((unsigned)wallet_status(err));

    return n != NULL ? n : "INTERNAL";
}

/* The card number's ends, as the vault may show them. */
static void
card_ends(const struct wallet_card *c, char bin[API_PAN_MAX + 1], char last[LAST_DIGITS + 1])
{
    size_t n = strlen(c->pan), head = cardnum_bin_len(n);

    bin[0] = last[0] = '\0';
    /* Never both ends of a number too short to keep a digit hidden. */
    if (n < head + LAST_DIGITS + 1)
        return;
    memcpy(bin, c->pan, head);
    bin[head] = '\0';
    memcpy(last, c->pan + n - LAST_DIGITS, LAST_DIGITS);
    last[LAST_DIGITS] = '\0';
}

/* ---- text --------------------------------------------------------------------------- */

static void
print_text_card(const struct wallet_card *c)
{
    char bin[API_PAN_MAX + 1], last[LAST_DIGITS + 1], until[TIME_TEXT_MAX];
    const char *wallet = api_enum_name(API_TAG_WALLET, c->wallet);
    const char *auth = api_enum_name(API_TAG_AUTH_METHOD, c->auth_method);
    const char *brand = api_enum_name(API_TAG_BRAND, (unsigned)cardnum_brand(c->pan));

    card_ends(c, bin, last);
    time_text(c->valid_until_ms, until);
    printf("card:\n");
    printf("  wallet:              %s\n", wallet != NULL ? wallet : "?");
    printf("  version:             ");
    print_safe(c->version);
    printf("\n  card number:         BIN %s, last 4 %s (%zu digits; the rest is not shown)\n",
           bin[0] != '\0' ? bin : "(not shown)", last[0] != '\0' ? last : "(not shown)",
           strlen(c->pan));
    printf("  brand:               %s\n", brand != NULL ? brand : "unknown");
    printf("  expiry:              %02u/%04u\n", (unsigned)c->exp_month, (unsigned)c->exp_year);
    printf("  holder name:         %s\n", c->has_holder ? "present (not shown)" : "absent");
    printf("  auth method:         %s\n", auth != NULL ? auth : "?");
    printf("  cryptogram:          %s\n", c->has_cryptogram ? "present (not shown)" : "absent");
    printf("  ECI:                 ");
    print_safe(c->has_eci ? c->eci : "absent");
    printf("\n");
    if (c->has_amount)
        printf("  amount:              %llu (minor units)\n", (unsigned long long)c->amount);
    else
        printf("  amount:              absent\n");
    printf("  currency:            ");
    print_safe(c->has_currency ? c->currency : "absent");
    printf("\n  transaction id:      ");
    print_safe(c->transaction_id);
    printf("\n  valid until:         %s\n", until);
    printf("  card on file:        %s\n", c->cof_allowed ? "allowed by the wallet" : "not allowed");
}

static void
print_text(const struct outcome *oc)
{
    char at[TIME_TEXT_MAX];

    time_text(oc->at_ms, at);
    printf("wallet-check: a wallet packet opened with the service's wallet engine on this HSM\n");
    printf("merchant:              %s\n", oc->merchant);
    printf("packet:                ");
    print_safe(oc->packet_path);
    printf(" (%zu bytes)\n", oc->packet_len);
    printf("packet SHA-256:        %s\n", oc->sha256);
    printf("wallet:                %s%s\n", api_enum_name(API_TAG_WALLET, (unsigned)oc->wallet),
           oc->detected ? " (told from the packet's shape)" : " (--wallet)");
    printf("verification time:     %s (epoch ms %llu)\n", at, (unsigned long long)oc->at_ms);
    printf("checks:\n");
    for (size_t i = 0; i < oc->num_checks; i++) {
        const char *st = check_state(oc, i);

        printf("  %s: ", oc->checks[i].name);
        if (strcmp(st, "failed") == 0) {
            printf("FAILED: %s/%s: ", wallet_err_name(oc->err), status_name(oc->err));
            print_safe(oc->why);
            printf("\n");
        } else {
            printf("%s\n", st);
        }
    }
    if (oc->err == WALLET_OK) {
        printf("result:                opened\n");
        print_text_card(oc->card);
        return;
    }
    printf("result:                FAILED: %s/%s: ", wallet_err_name(oc->err),
           status_name(oc->err));
    print_safe(oc->why);
    printf("\n");
    if (oc->failed == oc->num_checks)
        printf("                       (no one check stands for it: which passed is not "
               "known)\n");
}

/* ---- JSON --------------------------------------------------------------------------- */

/* Sets |key| to |v| (taking it); clears *ok on any failure, so a caller
 * checks once at the end. */
static void
jset(json_t *obj, const char *key, json_t *v, bool *ok)
{
    if (v == NULL || json_object_set_new(obj, key, v) != 0)
        *ok = false;
}

static json_t *
json_card(const struct wallet_card *c, bool *ok)
{
    char bin[API_PAN_MAX + 1], last[LAST_DIGITS + 1], until[TIME_TEXT_MAX];
    const char *wallet = api_enum_name(API_TAG_WALLET, c->wallet);
    const char *auth = api_enum_name(API_TAG_AUTH_METHOD, c->auth_method);
    const char *brand = api_enum_name(API_TAG_BRAND, (unsigned)cardnum_brand(c->pan));
    json_t *o = json_object();

    if (o == NULL) {
        *ok = false;
        return NULL;
    }
    card_ends(c, bin, last);
    time_text(c->valid_until_ms, until);
    jset(o, "wallet", json_string(wallet != NULL ? wallet : "?"), ok);
    jset(o, "version", json_string(c->version), ok);
    jset(o, "bin", bin[0] != '\0' ? json_string(bin) : json_null(), ok);
    jset(o, "last4", last[0] != '\0' ? json_string(last) : json_null(), ok);
    jset(o, "panLength", json_integer((json_int_t)strlen(c->pan)), ok);
    jset(o, "brand", json_string(brand != NULL ? brand : "unknown"), ok);
    jset(o, "expiryMonth", json_integer(c->exp_month), ok);
    jset(o, "expiryYear", json_integer(c->exp_year), ok);
    jset(o, "holderPresent", json_boolean(c->has_holder), ok);
    jset(o, "authMethod", json_string(auth != NULL ? auth : "?"), ok);
    jset(o, "cryptogramPresent", json_boolean(c->has_cryptogram), ok);
    jset(o, "eci", c->has_eci ? json_string(c->eci) : json_null(), ok);
    jset(o, "amount", c->has_amount ? json_integer((json_int_t)c->amount) : json_null(), ok);
    jset(o, "currency", c->has_currency ? json_string(c->currency) : json_null(), ok);
    jset(o, "transactionId", json_string(c->transaction_id), ok);
    jset(o, "validUntil", json_string(until), ok);
    jset(o, "validUntilMs", json_integer((json_int_t)c->valid_until_ms), ok);
    jset(o, "cardOnFileAllowed", json_boolean(c->cof_allowed), ok);
    return o;
}

/* One object on one line (as `tokenvault --json` prints), with the keys in
 * a fixed order. The transcript lines every ceremony prints follow it. */
static int
print_json(const struct outcome *oc)
{
    json_t *o = json_object(), *checks = json_array(), *err = NULL;
    char at[TIME_TEXT_MAX];
    bool ok = o != NULL && checks != NULL;
    int rc = EXIT_FAIL;

    if (!ok)
        goto out;
    time_text(oc->at_ms, at);
    jset(o, "merchant", json_string(oc->merchant), &ok);
    jset(o, "packetFile", json_string(oc->packet_path), &ok);
    jset(o, "packetBytes", json_integer((json_int_t)oc->packet_len), &ok);
    jset(o, "packetSha256", json_string(oc->sha256), &ok);
    jset(o, "wallet", json_string(api_enum_name(API_TAG_WALLET, (unsigned)oc->wallet)), &ok);
    jset(o, "walletDetected", json_boolean(oc->detected), &ok);
    jset(o, "verificationTime", json_string(at), &ok);
    jset(o, "verificationTimeMs", json_integer((json_int_t)oc->at_ms), &ok);
    for (size_t i = 0; i < oc->num_checks && ok; i++) {
        json_t *c = json_object();
        const char *st = check_state(oc, i);

        if (c == NULL || json_array_append_new(checks, c) != 0) {
            json_decref(c);
            ok = false;
            break;
        }
        jset(c, "name", json_string(oc->checks[i].name), &ok);
        jset(c, "result", json_string(strcmp(st, "not run") == 0     ? "not_run"
                                      : strcmp(st, "not asked") == 0 ? "not_asked"
                                                                     : st),
             &ok);
        if (strcmp(st, "failed") == 0) {
            jset(c, "error", json_string(wallet_err_name(oc->err)), &ok);
            jset(c, "status", json_string(status_name(oc->err)), &ok);
            jset(c, "why", json_string(oc->why), &ok);
        }
    }
    jset(o, "checks", checks, &ok);
    checks = NULL;
    jset(o, "result", json_string(oc->err == WALLET_OK ? "opened" : "failed"), &ok);
    if (oc->err != WALLET_OK) {
        if ((err = json_object()) == NULL) {
            ok = false;
            goto out;
        }
        jset(err, "error", json_string(wallet_err_name(oc->err)), &ok);
        jset(err, "status", json_string(status_name(oc->err)), &ok);
        jset(err, "why", json_string(oc->why), &ok);
        jset(o, "failure", err, &ok);
        err = NULL;
        jset(o, "card", json_null(), &ok);
    } else {
        jset(o, "failure", json_null(), &ok);
        jset(o, "card", json_card(oc->card, &ok), &ok);
    }
    if (!ok || json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0 ||
        fputc('\n', stdout) == EOF)
        goto out;
    rc = EXIT_OK;
out:
    if (rc != EXIT_OK)
        ceremony_err("cannot build the JSON output");
    json_decref(checks);
    json_decref(err);
    json_decref(o);
    return rc;
}

/* ---- the command -------------------------------------------------------------------- */

/* How many keys |m| has configured for |wallet| (applepay_keys, ...). */
static size_t
keys_configured(const struct vault_merchant *m, int wallet)
{
    const struct vault_merchant_wallets *w = m->wallets;

    if (w == NULL)
        return 0;
    switch (wallet) {
    case API_WALLET_APPLE_PAY: return w->num_apple;
    case API_WALLET_GOOGLE_PAY: return w->num_google;
    case API_WALLET_SAMSUNG_PAY: return w->num_samsung;
    default: return 0;
    }
}

/* The exit code for what vault_wallets_open returned. */
static int
exit_for(int err)
{
    switch (err) {
    case WALLET_OK: return EXIT_OK;
    case WALLET_ERR_HSM: return EXIT_HSM; /* the HSM failed, not the packet */
    default: return EXIT_FAIL;
    }
}

int
cmd_wallet_check(hsm_session *s, const struct ceremony_opts *o, const struct wallet_check_opts *w)
{
    struct vault_config *cfg = NULL;
    const struct vault_merchant *m = NULL;
    struct vault_wallets *engine = NULL;
    struct wallet_card card;
    struct outcome oc;
    uint8_t md[SHA256_DIGEST_LENGTH];
    char err[VAULT_CONFIG_ERR_MAX] = "";
    char *packet = NULL;
    int rc = EXIT_FAIL, r;

    (void)o;
    memset(&card, 0, sizeof(card));
    memset(&oc, 0, sizeof(oc));
    if (w->config == NULL || w->packet == NULL || w->merchant == NULL) {
        ceremony_err("wallet-check needs --config FILE, --packet FILE and --merchant M");
        return EXIT_USAGE;
    }
    if (!merchant_ok(w->merchant)) {
        ceremony_err("--merchant: a merchant id is 1 to %u printable characters without spaces",
                     API_ID_MAX);
        return EXIT_USAGE;
    }
    oc.merchant = w->merchant;
    oc.packet_path = w->packet;
    oc.at_ms = now_ms();
    if (w->at != NULL && wallet_check_parse_time(w->at, &oc.at_ms) != 0) {
        ceremony_err("--at: RFC 3339 in UTC (2021-09-01T19:03:06Z) or epoch milliseconds");
        return EXIT_USAGE;
    }
    if (w->wallet != NULL && (oc.wallet = api_enum_from_name(API_TAG_WALLET, w->wallet)) <= 0) {
        ceremony_err("--wallet: apple_pay, google_pay or samsung_pay");
        return EXIT_USAGE;
    }

    /* The packet: a file support staff were handed, so read as untrusted and
     * bounded like the RPC's field; wiped at the end like every buffer that
     * held card data in transit. */
    if ((packet = malloc(WALLET_PACKET_MAX + 1)) == NULL) {
        ceremony_err("out of memory");
        goto out;
    }
    if (ceremony_read_small(w->packet, packet, WALLET_PACKET_MAX, &oc.packet_len) != EXIT_OK)
        goto out;
    packet[oc.packet_len] = '\0';
    if (oc.packet_len == 0) {
        ceremony_err("%s: empty", w->packet);
        goto out;
    }
    SHA256((const uint8_t *)packet, oc.packet_len, md);
    for (size_t i = 0; i < sizeof(md); i++)
        snprintf(oc.sha256 + 2 * i, 3, "%02x", md[i]);
    if (w->wallet == NULL) {
        oc.detected = true;
        if ((oc.wallet = vault_wallets_detect(packet, oc.packet_len)) == 0) {
            ceremony_err("%s: cannot tell which wallet made this packet; name it with --wallet "
                         "apple_pay|google_pay|samsung_pay", w->packet);
            rc = EXIT_USAGE;
            goto out;
        }
    }
    if ((oc.checks = vault_wallets_checks(oc.wallet)) == NULL) {
        ceremony_err("no checks are known for wallet %d", oc.wallet);
        goto out;
    }
    for (oc.num_checks = 0; oc.checks[oc.num_checks].name != NULL; oc.num_checks++)
        ;

    /* The merchant's wallet settings, as the service reads them. */
    if (vault_config_load(&cfg, w->config, err, sizeof(err)) != 0) {
        ceremony_err("%s", err);
        goto out;
    }
    /* A merchant without keys for this wallet fails before any check runs
     * (the service answers NOT_FOUND): said here, not as a failed check. */
    if ((m = vault_config_merchant(cfg, w->merchant)) == NULL) {
        ceremony_err("merchant %s: %s has no [merchant %s] section, so no wallet keys",
                     w->merchant, w->config, w->merchant);
        rc = EXIT_NOT_FOUND;
        goto out;
    }
    if (keys_configured(m, oc.wallet) == 0) {
        ceremony_err("merchant %s: %s configures no %s keys for it; the service refuses its %s "
                     "packets (UNKNOWN_KEY/NOT_FOUND)", w->merchant, w->config,
                     api_enum_name(API_TAG_WALLET, (unsigned)oc.wallet),
                     api_enum_name(API_TAG_WALLET, (unsigned)oc.wallet));
        rc = EXIT_NOT_FOUND;
        goto out;
    }
    if (vault_wallets_load(&engine, s, cfg, err, sizeof(err)) != 0) {
        ceremony_err("%s: the wallet settings do not load: %s", w->config, err);
        goto out;
    }

    r = vault_wallets_open(engine, s, w->merchant, oc.wallet, packet, oc.packet_len, oc.at_ms,
                           NULL, &card, oc.why, sizeof(oc.why));
    oc.err = r;
    oc.failed = oc.num_checks;
    for (size_t i = 0; r != WALLET_OK && i < oc.num_checks; i++) {
        if (oc.checks[i].err == r) {
            oc.failed = i;
            break;
        }
    }
    if (r != WALLET_OK && oc.why[0] == '\0')
        snprintf(oc.why, sizeof(oc.why), "%s", wallet_strerror(r));
    oc.card = r == WALLET_OK ? &card : NULL;
    if (w->json) {
        if ((rc = print_json(&oc)) == EXIT_OK)
            rc = exit_for(r);
    } else {
        print_text(&oc);
        rc = exit_for(r);
    }
out:
    wallet_card_wipe(&card);
    if (packet != NULL)
        OPENSSL_cleanse(packet, WALLET_PACKET_MAX + 1);
    free(packet);
    vault_wallets_free(engine);
    vault_config_free(cfg);
    fflush(stdout);
    return rc;
}
