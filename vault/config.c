/* config.c - load and check tokenvaultd's INI file; see config.h. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/config.h"

/* Defaults of the [service] keys. */
#define DEFAULT_MAX_CONNECTIONS 1024u
#define DEFAULT_MAX_IN_FLIGHT 64u
#define DEFAULT_QUEUE_DEPTH 4096u
#define DEFAULT_WORKERS 4u
#define DEFAULT_HANDSHAKE_TIMEOUT_MS 5000u
#define DEFAULT_IDLE_TIMEOUT_MS 300000u
#define DEFAULT_MAP_SIZE_MB 1024u
#define DEFAULT_CHECKPOINT_ENTRIES 1000u
#define DEFAULT_CHECKPOINT_SECONDS 300u
/* node_exporter's textfile collector rereads files at every scrape (15 s by
 * default); writing more often buys nothing. */
#define DEFAULT_METRICS_INTERVAL_SECONDS 15u
/* Automatic DEK rotation. AES-GCM with random 96-bit IVs must stay well below
 * 2^32 encryptions per key (NIST SP 800-38D section 8.3): 2^30 leaves a
 * factor of four for counts lost in a crash; and a yearly cryptoperiod. */
#define DEFAULT_DEK_MAX_ENCRYPTIONS (1u << 30)
#define DEK_MAX_ENCRYPTIONS_LIMIT (1u << 31)
#define DEFAULT_DEK_MAX_AGE_DAYS 365u
/* Apple's own guidance: a token signed more than 5 minutes from now is
 * refused (WALLETS.md 1.4). */
#define DEFAULT_APPLE_WINDOW_SECONDS 300u
/* Samsung documents no window; a payment sheet is completed within minutes,
 * so a quarter of an hour either side of utc leaves room for clock skew. */
#define DEFAULT_SAMSUNG_MAX_AGE_SECONDS 900u
/* A device PAN is good for one authorization (the cryptogram is single use);
 * an hour covers the authorization and its retries, and a capture by token
 * later uses the card on file, not the DPAN record. */
#define DEFAULT_DPAN_LIFETIME_SECONDS 3600u
/* QR payment requests: the protocol's own bound unless the operator sets a
 * shorter one; kept a week after they expire, so QR_STATUS still answers for
 * an order (and a paid order cannot be issued again) while a merchant
 * settles and reconciles. The audit log keeps them for good. */
#define DEFAULT_QR_MAX_LIFETIME_SECONDS API_LIFETIME_MAX
#define DEFAULT_QR_RETENTION_SECONDS 604800u
#define QR_RETENTION_SECONDS_MAX 31536000u
/* A mobile sale is initiated and checked within minutes (seed 002: the app
 * goes straight from initiate sale to perform sale); a quarter of an hour
 * covers a slow payer, and an hour is the most a session may be asked to
 * live unless the operator allows more (up to API_LIFETIME_MAX). */
#define DEFAULT_SESSION_LIFETIME_SECONDS 900u
#define DEFAULT_SESSION_MAX_LIFETIME_SECONDS 3600u

enum kind {
    K_STR,      /* non-empty text */
    K_PATH,     /* an absolute path */
    K_UINT,     /* unsigned in [min, max] */
    K_MB,       /* megabytes in [min, max], stored as bytes (uint64_t) */
    K_ENUM,     /* one of names[], stored as int */
    K_HOSTPORT, /* HOST:PORT into listen_host / listen_port */
};

struct key_def {
    const char *section;
    const char *key;
    enum kind kind;
    size_t off;
    size_t size;
    uint64_t min, max;
    const char *const *names;
    bool required;
};

static const char *const log_levels[] = {"error", "warn", "info", "debug", NULL};
static const char *const pin_sources[] = {"file", "sealed", NULL};
static const char *const no_yes[] = {"no", "yes", NULL};
static const char *const token_formats[] = {"opaque", "pan", NULL};

#define F(m) offsetof(struct vault_config, m), sizeof(((struct vault_config *)0)->m)
static const struct key_def keys[] = {
    {"service", "listen", K_HOSTPORT, F(listen_host), 0, 0, NULL, true},
    {"service", "officer_socket", K_PATH, F(officer_socket), 0, 0, NULL, false},
    {"service", "max_connections", K_UINT, F(max_connections), 1, 65536, NULL, false},
    {"service", "max_in_flight", K_UINT, F(max_in_flight), 1, VAULT_IN_FLIGHT_MAX, NULL, false},
    {"service", "queue_depth", K_UINT, F(queue_depth), 1, 1000000, NULL, false},
    {"service", "workers", K_UINT, F(workers), 1, 256, NULL, false},
    {"service", "handshake_timeout_ms", K_UINT, F(handshake_timeout_ms), 100, 600000, NULL, false},
    {"service", "idle_timeout_ms", K_UINT, F(idle_timeout_ms), 1000, 86400000, NULL, false},
    {"service", "log_level", K_ENUM, F(log_level), 0, 0, log_levels, false},
    {"tls", "cert", K_PATH, F(tls_cert), 0, 0, NULL, true},
    {"tls", "key", K_PATH, F(tls_key), 0, 0, NULL, true},
    {"tls", "client_ca", K_PATH, F(tls_client_ca), 0, 0, NULL, true},
    {"hsm", "module", K_PATH, F(hsm_module), 0, 0, NULL, true},
    {"hsm", "token", K_STR, F(hsm_token), 0, 0, NULL, true},
    {"hsm", "module_args", K_STR, F(hsm_module_args), 0, 0, NULL, false},
    {"hsm", "reduced_key_attributes", K_ENUM, F(hsm_reduced_key_attributes), 0, 0, no_yes, false},
    {"hsm", "recycle_after_objects", K_UINT, F(hsm_recycle_after_objects), 0,
     VAULT_HSM_RECYCLE_MAX, NULL, false},
    {"hsm", "pin_source", K_ENUM, F(pin_source), 0, 0, pin_sources, false},
    {"hsm", "pin_file", K_PATH, F(pin_file), 0, 0, NULL, false},
    {"hsm", "share_set", K_PATH, F(share_set), 0, 0, NULL, false},
    {"store", "path", K_PATH, F(store_path), 0, 0, NULL, true},
    /* 1 MB is far too small for a real vault; it is allowed so the tests can
     * fill a map and prove the service fails closed when it is full. */
    {"store", "map_size_mb", K_MB, F(map_size), 1, 1048576, NULL, false},
    {"store", "dek_max_encryptions", K_UINT, F(dek_max_encryptions), 1, DEK_MAX_ENCRYPTIONS_LIMIT,
     NULL, false},
    {"store", "dek_max_age_days", K_UINT, F(dek_max_age_days), 0, 3650, NULL, false},
    {"audit", "checkpoint_entries", K_UINT, F(audit_checkpoint_entries), 1, 1000000, NULL, false},
    {"audit", "checkpoint_seconds", K_UINT, F(audit_checkpoint_seconds), 1, 86400, NULL, false},
    {"wallet", "apple_signing_window_seconds", K_UINT, F(apple_signing_window_seconds), 1, 3600,
     NULL, false},
    {"wallet", "samsung_max_age_seconds", K_UINT, F(samsung_max_age_seconds), 60, 86400, NULL,
     false},
    {"wallet", "dpan_lifetime_seconds", K_UINT, F(dpan_lifetime_seconds), 1, 2592000, NULL, false},
    {"qr", "max_lifetime_seconds", K_UINT, F(qr_max_lifetime_seconds), 1, API_LIFETIME_MAX, NULL,
     false},
    {"qr", "retention_seconds", K_UINT, F(qr_retention_seconds), 0, QR_RETENTION_SECONDS_MAX, NULL,
     false},
    {"sessions", "default_lifetime_seconds", K_UINT, F(session_lifetime_seconds), 1,
     API_LIFETIME_MAX, NULL, false},
    {"sessions", "max_lifetime_seconds", K_UINT, F(session_max_lifetime_seconds), 1,
     API_LIFETIME_MAX, NULL, false},
    {"metrics", "textfile", K_PATH, F(metrics_textfile), 0, 0, NULL, false},
    {"metrics", "interval_seconds", K_UINT, F(metrics_interval_seconds), 1, 3600, NULL, false},
};
#undef F
#define NUM_KEYS (sizeof(keys) / sizeof(keys[0]))

struct load {
    struct vault_config *c;
    char *err;
    size_t err_len;
    bool seen[NUM_KEYS];
    char section[VAULT_CONFIG_LINE_MAX + 1]; /* the section of the previous key */
    struct vault_client *client;             /* current [client NAME] */
    struct vault_merchant *merchant;         /* current [merchant ID] */
    bool client_seen_roles, client_seen_merchants;
};

static const char *const global_sections[] = {"service", "tls",     "hsm",
                                              "store",   "audit",   "metrics",
                                              "wallet",  "qr",      "sessions"};

static int set_err(struct load *l, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
set_err(struct load *l, const char *section, const char *key, const char *fmt, ...)
{
    char reason[VAULT_CONFIG_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (key != NULL)
        snprintf(l->err, l->err_len, "[%s] %s: %s", section, key, reason);
    else
        snprintf(l->err, l->err_len, "[%s]: %s", section, reason);
    return 0; /* inih: stop */
}

/* Config values are echoed in errors; only printable ASCII is accepted so a
 * message cannot carry control characters to a terminal or log. */
static bool
printable(const char *v)
{
    for (; *v != '\0'; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

static bool
id_ok(const char *v)
{
    size_t len = strlen(v);

    if (len == 0 || len > API_ID_MAX)
        return false;
    for (; *v != '\0'; v++)
        if ((unsigned char)*v < 0x21 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

static int
parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    unsigned long long x;

    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < min || x > max)
        return -1;
    *out = x;
    return 0;
}

static int
copy_str(char *dst, size_t size, const char *v)
{
    size_t len = strlen(v);

    if (len == 0 || len >= size)
        return -1;
    memcpy(dst, v, len + 1);
    return 0;
}

static int
set_key(struct load *l, const struct key_def *k, const char *v)
{
    uint8_t *m = (uint8_t *)l->c + k->off;
    uint64_t x;

    switch (k->kind) {
    case K_STR:
        if (copy_str((char *)m, k->size, v) < 0)
            return set_err(l, k->section, k->key, "empty or longer than %zu bytes", k->size - 1);
        return 1;
    case K_PATH:
        if (v[0] != '/')
            return set_err(l, k->section, k->key, "must be an absolute path");
        if (copy_str((char *)m, k->size, v) < 0)
            return set_err(l, k->section, k->key, "path longer than %zu bytes", k->size - 1);
        return 1;
    case K_UINT:
        if (parse_uint(v, k->min, k->max, &x) < 0)
            return set_err(l, k->section, k->key, "'%s' is not a whole number in %llu..%llu", v,
                           (unsigned long long)k->min, (unsigned long long)k->max);
        *(unsigned *)m = (unsigned)x;
        return 1;
    case K_MB:
        if (parse_uint(v, k->min, k->max, &x) < 0)
            return set_err(l, k->section, k->key, "'%s' is not a whole number in %llu..%llu", v,
                           (unsigned long long)k->min, (unsigned long long)k->max);
        x *= 1024u * 1024u;
        memcpy(m, &x, sizeof(x));
        return 1;
    case K_ENUM:
        for (int i = 0; k->names[i] != NULL; i++) {
            if (strcmp(k->names[i], v) == 0) {
                *(int *)m = i;
                return 1;
            }
        }
        return set_err(l, k->section, k->key, "'%s' is not one of the accepted values", v);
    case K_HOSTPORT: {
        const char *colon = strrchr(v, ':');
        size_t hlen = colon != NULL ? (size_t)(colon - v) : 0;

        if (colon == NULL || hlen == 0 || hlen > VAULT_HOST_MAX ||
            parse_uint(colon + 1, 1, 65535, &x) < 0)
            return set_err(l, k->section, k->key, "'%s' is not HOST:PORT with a port 1..65535", v);
        memcpy(l->c->listen_host, v, hlen);
        l->c->listen_host[hlen] = '\0';
        l->c->listen_port = (uint16_t)x;
        return 1;
    }
    }
    return set_err(l, k->section, k->key, "internal: unknown key kind");
}

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* "sha256:AB:CD:..." or 64 hex digits, colons between bytes allowed. */
static int
parse_fingerprint(const char *v, uint8_t out[32])
{
    size_t n = 0;

    if (strncmp(v, "sha256:", 7) == 0)
        v += 7;
    while (*v != '\0') {
        int hi, lo;

        if (*v == ':' && n > 0) {
            v++;
            continue;
        }
        hi = hexval((unsigned char)v[0]);
        lo = hi >= 0 ? hexval((unsigned char)v[1]) : -1;
        if (lo < 0 || n == 32)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
        v += 2;
    }
    return n == 32 ? 0 : -1;
}

/* Splits a comma-separated list, trimming blanks; calls |each| per item. */
static int
for_each_item(const char *v, int (*each)(struct load *, const char *), struct load *l)
{
    char item[VAULT_CONFIG_LINE_MAX + 1];

    while (*v != '\0') {
        const char *end = strchr(v, ',');
        size_t len = end != NULL ? (size_t)(end - v) : strlen(v);

        while (len > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        if (len == 0 || len >= sizeof(item))
            return each(l, "");
        memcpy(item, v, len);
        item[len] = '\0';
        if (each(l, item) == 0)
            return 0;
        if (end == NULL)
            break;
        v = end + 1;
        if (*v == '\0')
            return each(l, "");
    }
    return 1;
}

static int
add_role(struct load *l, const char *name)
{
    int role = api_role_from_name(name);

    if (role < 0 || role == API_ROLE_ANY || role == API_ROLE_OFFICER)
        return set_err(l, l->section, "roles",
                       "'%s' is not a role (store, list, reveal, wallet, session, mandate, qr, "
                       "admin)", name);
    if (l->client->roles & (1u << role))
        return set_err(l, l->section, "roles", "role '%s' given twice", name);
    l->client->roles |= 1u << role;
    return 1;
}

/* Compares merchant ids; also used on struct vault_merchant arrays, whose
 * first member is the id. */
static int
cmp_merchant_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int
add_merchant(struct load *l, const char *id)
{
    struct vault_client *cl = l->client;
    char(*grown)[API_ID_MAX + 1];

    if (strcmp(id, "*") == 0 || !id_ok(id))
        return set_err(l, l->section, "merchants",
                       "'%s' is not a merchant id (1..64 printable characters, no blanks), or "
                       "'*' is not alone", id);
    if (cl->num_merchants == VAULT_MERCHANTS_MAX)
        return set_err(l, l->section, "merchants", "more than %u merchants",
                       VAULT_MERCHANTS_MAX);
    grown = realloc(cl->merchants, (cl->num_merchants + 1) * sizeof(*grown));
    if (grown == NULL)
        return set_err(l, l->section, "merchants", "out of memory");
    cl->merchants = grown;
    if (copy_str(cl->merchants[cl->num_merchants], sizeof(cl->merchants[0]), id) < 0)
        return set_err(l, l->section, "merchants", "'%s' is longer than %u characters", id,
                       API_ID_MAX);
    cl->num_merchants++;
    return 1;
}

static int
client_key(struct load *l, const char *key, const char *v)
{
    struct vault_client *cl = l->client;

    if (strcmp(key, "subject") == 0) {
        if (cl->subject[0] != '\0')
            return set_err(l, l->section, key, "given twice");
        if (!printable(v) || copy_str(cl->subject, sizeof(cl->subject), v) < 0)
            return set_err(l, l->section, key, "empty, too long, or not printable ASCII");
        return 1;
    }
    if (strcmp(key, "fingerprint") == 0) {
        if (cl->has_fingerprint)
            return set_err(l, l->section, key, "given twice");
        if (parse_fingerprint(v, cl->fingerprint) < 0)
            return set_err(l, l->section, key, "not a SHA-256 fingerprint (64 hex digits)");
        cl->has_fingerprint = true;
        return 1;
    }
    if (strcmp(key, "roles") == 0) {
        if (l->client_seen_roles)
            return set_err(l, l->section, key, "given twice");
        l->client_seen_roles = true;
        return for_each_item(v, add_role, l);
    }
    if (strcmp(key, "merchants") == 0) {
        if (l->client_seen_merchants)
            return set_err(l, l->section, key, "given twice");
        l->client_seen_merchants = true;
        if (strcmp(v, "*") == 0) {
            cl->all_merchants = true;
            return 1;
        }
        return for_each_item(v, add_merchant, l);
    }
    return set_err(l, l->section, key, "unknown key (subject, fingerprint, roles, merchants)");
}

/* Checks the client just finished, at the next section or the end, while
 * l->section still names its section. */
static int
client_done(struct load *l)
{
    struct vault_client *cl = l->client;

    l->client = NULL;
    if (cl == NULL)
        return 1;
    if ((cl->subject[0] != '\0') == cl->has_fingerprint)
        return set_err(l, l->section, NULL, "client '%s' needs exactly one of subject, fingerprint",
                       cl->name);
    if (cl->roles == 0)
        return set_err(l, l->section, NULL, "client '%s' has no roles", cl->name);
    if (!cl->all_merchants && cl->num_merchants == 0)
        return set_err(l, l->section, NULL,
                       "client '%s' has no merchants (a list, or '*' for all)", cl->name);
    if (cl->num_merchants > 0)
        qsort(cl->merchants, cl->num_merchants, sizeof(*cl->merchants), cmp_merchant_id);
    for (size_t i = 1; i < cl->num_merchants; i++)
        if (strcmp(cl->merchants[i - 1], cl->merchants[i]) == 0)
            return set_err(l, l->section, "merchants", "merchant '%s' listed twice",
                           cl->merchants[i]);
    return 1;
}

/* Appends a zeroed element of |size| bytes to the array *|arr| of *|num|
 * (at most |max|) and returns it, or NULL with the error set. */
static void *
grow(struct load *l, const char *section, void **arr, size_t *num, size_t size, size_t max)
{
    uint8_t *grown;

    if (*num == max) {
        set_err(l, section, NULL, "more than %zu such sections", max);
        return NULL;
    }
    grown = realloc(*arr, (*num + 1) * size);
    if (grown == NULL) {
        set_err(l, section, NULL, "out of memory");
        return NULL;
    }
    *arr = grown;
    memset(grown + *num * size, 0, size);
    return grown + (*num)++ * size;
}

/* ---- [merchant ID] ---------------------------------------------------------- */

/* A key label: what hsm/ accepts (printable, no blanks, 1..VAULT_LABEL_MAX). */
static bool
label_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == ',')
            return false;
    return true;
}

static struct vault_merchant_wallets *
merchant_wallets(struct load *l)
{
    if (l->merchant->wallets == NULL &&
        (l->merchant->wallets = calloc(1, sizeof(*l->merchant->wallets))) == NULL)
        set_err(l, l->section, NULL, "out of memory");
    return l->merchant->wallets;
}

/* One label into |list|: valid, not listed twice, at most
 * VAULT_WALLET_KEYS_MAX. */
static int
add_label(struct load *l, const char *key, char (*list)[VAULT_LABEL_MAX + 1], size_t *num,
          const char *label)
{
    if (!label_ok(label, VAULT_LABEL_MAX))
        return set_err(l, l->section, key, "'%s' is not a key label (1..%u printable characters, "
                       "no blanks or commas)", label, VAULT_LABEL_MAX);
    for (size_t i = 0; i < *num; i++)
        if (strcmp(list[i], label) == 0)
            return set_err(l, l->section, key, "'%s' listed twice", label);
    if (*num == VAULT_WALLET_KEYS_MAX)
        return set_err(l, l->section, key, "more than %u keys", VAULT_WALLET_KEYS_MAX);
    if (copy_str(list[*num], sizeof(list[0]), label) < 0)
        return set_err(l, l->section, key, "'%s' is longer than %u characters", label,
                       VAULT_LABEL_MAX);
    (*num)++;
    return 1;
}

static int
add_apple(struct load *l, const char *label)
{
    struct vault_merchant_wallets *w = l->merchant->wallets;

    return add_label(l, "applepay_keys", w->apple, &w->num_apple, label);
}

static int
add_google(struct load *l, const char *label)
{
    struct vault_merchant_wallets *w = l->merchant->wallets;

    return add_label(l, "googlepay_keys", w->google, &w->num_google, label);
}

/* "label:kid". A kid is base64 of a hash in Samsung's packets, so it never
 * holds a colon or a comma; the first colon splits. */
static int
add_samsung(struct load *l, const char *item)
{
    struct vault_merchant_wallets *w = l->merchant->wallets;
    const char *colon = strchr(item, ':');
    char label[VAULT_LABEL_MAX + 1];
    size_t n = colon != NULL ? (size_t)(colon - item) : 0;
    struct vault_samsung_key_cfg *k;

    if (colon == NULL || n == 0 || n > VAULT_LABEL_MAX)
        return set_err(l, l->section, "samsungpay_keys", "'%s' is not LABEL:KID", item);
    memcpy(label, item, n);
    label[n] = '\0';
    if (!label_ok(colon + 1, VAULT_SAMSUNG_KID_MAX))
        return set_err(l, l->section, "samsungpay_keys",
                       "'%s': the kid must be 1..%u printable characters, no blanks or commas",
                       item, VAULT_SAMSUNG_KID_MAX);
    if (!label_ok(label, VAULT_LABEL_MAX))
        return set_err(l, l->section, "samsungpay_keys", "'%s' is not a key label (1..%u "
                       "printable characters, no blanks or commas)", label, VAULT_LABEL_MAX);
    for (size_t i = 0; i < w->num_samsung; i++)
        if (strcmp(w->samsung[i].kid, colon + 1) == 0 || strcmp(w->samsung[i].label, label) == 0)
            return set_err(l, l->section, "samsungpay_keys", "'%s': label or kid listed twice",
                           item);
    if (w->num_samsung == VAULT_WALLET_KEYS_MAX)
        return set_err(l, l->section, "samsungpay_keys", "more than %u keys",
                       VAULT_WALLET_KEYS_MAX);
    k = &w->samsung[w->num_samsung];
    if (copy_str(k->label, sizeof(k->label), label) < 0 ||
        copy_str(k->kid, sizeof(k->kid), colon + 1) < 0)
        return set_err(l, l->section, "samsungpay_keys", "'%s': label or kid too long", item);
    w->num_samsung++;
    return 1;
}

/* "merchant:<id>" or "gateway:<id>" (Google's recipient id forms). */
static bool
recipient_ok(const char *v)
{
    const char *id = strncmp(v, "merchant:", 9) == 0  ? v + 9
                     : strncmp(v, "gateway:", 8) == 0 ? v + 8
                                                      : NULL;

    return id != NULL && label_ok(id, VAULT_RECIPIENT_MAX) && strlen(v) <= VAULT_RECIPIENT_MAX;
}

static int
merchant_key(struct load *l, const char *key, const char *value)
{
    struct vault_merchant_wallets *w;

    if (strcmp(key, "token_format") == 0) {
        for (int i = 0; token_formats[i] != NULL; i++) {
            if (strcmp(token_formats[i], value) == 0) {
                l->merchant->token_format = (enum vault_token_format)i;
                return 1;
            }
        }
        return set_err(l, l->section, key, "'%s' is not opaque or pan", value);
    }
    if (strcmp(key, "applepay_keys") != 0 && strcmp(key, "googlepay_keys") != 0 &&
        strcmp(key, "googlepay_recipient") != 0 && strcmp(key, "samsungpay_keys") != 0)
        return set_err(l, l->section, key,
                       "unknown key (token_format, applepay_keys, googlepay_recipient, "
                       "googlepay_keys, samsungpay_keys)");
    if ((w = merchant_wallets(l)) == NULL)
        return 0;
    if (strcmp(key, "googlepay_recipient") == 0) {
        if (w->google_recipient[0] != '\0')
            return set_err(l, l->section, key, "given twice");
        if (!recipient_ok(value))
            return set_err(l, l->section, key,
                           "'%s' is not merchant:<id> or gateway:<id> (at most %u characters)",
                           value, VAULT_RECIPIENT_MAX);
        if (copy_str(w->google_recipient, sizeof(w->google_recipient), value) < 0)
            return set_err(l, l->section, key, "longer than %u characters", VAULT_RECIPIENT_MAX);
        return 1;
    }
    if ((strcmp(key, "applepay_keys") == 0 && w->num_apple > 0) ||
        (strcmp(key, "googlepay_keys") == 0 && w->num_google > 0) ||
        (strcmp(key, "samsungpay_keys") == 0 && w->num_samsung > 0))
        return set_err(l, l->section, key, "given twice");
    if (strcmp(key, "applepay_keys") == 0)
        return for_each_item(value, add_apple, l);
    if (strcmp(key, "googlepay_keys") == 0)
        return for_each_item(value, add_google, l);
    return for_each_item(value, add_samsung, l);
}

/* Google Pay needs both the recipient id and its keys. */
static int
merchant_done(struct load *l, const struct vault_merchant *m)
{
    const struct vault_merchant_wallets *w = m->wallets;
    char section[API_ID_MAX + 10];

    if (w == NULL)
        return 1;
    snprintf(section, sizeof(section), "merchant %s", m->id);
    if ((w->google_recipient[0] != '\0') != (w->num_google > 0))
        return set_err(l, section, w->num_google > 0 ? "googlepay_recipient" : "googlepay_keys",
                       "Google Pay needs both googlepay_recipient and googlepay_keys");
    return 1;
}

/* Starts the section |section|. check_headers() has already refused unknown
 * and repeated section names. */
static int
open_section(struct load *l, const char *section)
{
    struct vault_config *c = l->c;

    l->merchant = NULL;
    if (strncmp(section, "client ", 7) == 0) {
        const char *name = section + 7;

        if (!id_ok(name))
            return set_err(l, section, NULL, "client name must be 1..64 printable characters");
        l->client = grow(l, section, (void **)&c->clients, &c->num_clients, sizeof(*c->clients),
                         VAULT_CLIENTS_MAX);
        if (l->client == NULL)
            return 0;
        if (copy_str(l->client->name, sizeof(l->client->name), name) < 0)
            return set_err(l, section, NULL, "client name longer than %u characters", API_ID_MAX);
        l->client_seen_roles = l->client_seen_merchants = false;
        return 1;
    }
    if (strncmp(section, "merchant ", 9) == 0) {
        const char *id = section + 9;

        if (!id_ok(id))
            return set_err(l, section, NULL, "merchant id must be 1..64 printable characters");
        l->merchant = grow(l, section, (void **)&c->merchants, &c->num_merchants,
                           sizeof(*c->merchants), VAULT_MERCHANTS_MAX);
        if (l->merchant == NULL)
            return 0;
        if (copy_str(l->merchant->id, sizeof(l->merchant->id), id) < 0)
            return set_err(l, section, NULL, "merchant id longer than %u characters", API_ID_MAX);
        return 1;
    }
    for (unsigned i = 0; i < sizeof(global_sections) / sizeof(global_sections[0]); i++) {
        if (strcmp(global_sections[i], section) == 0)
            return 1;
    }
    return set_err(l, section, NULL,
                   "unknown section (service, tls, hsm, store, audit, metrics, wallet, qr, sessions, "
                   "client NAME, merchant ID)");
}

static int
on_key(void *user, const char *section, const char *key, const char *value)
{
    struct load *l = user;
    size_t len;

    if (strcmp(section, l->section) != 0) {
        /* inih reports each key with its section; a section seen before
         * under the same name is caught by open_section. */
        if (client_done(l) == 0)
            return 0;
        /* Not copy_str: keys before the first section come with "". */
        len = strlen(section);
        if (len >= sizeof(l->section))
            return set_err(l, "?", NULL, "section name too long");
        memcpy(l->section, section, len + 1);
        if (open_section(l, section) == 0)
            return 0;
    }
    if (!printable(key) || !printable(value))
        return set_err(l, section, "?", "not printable ASCII");
    if (l->client != NULL)
        return client_key(l, key, value);
    if (l->merchant != NULL)
        return merchant_key(l, key, value);
    for (size_t i = 0; i < NUM_KEYS; i++) {
        if (strcmp(keys[i].section, section) != 0 || strcmp(keys[i].key, key) != 0)
            continue;
        if (l->seen[i])
            return set_err(l, section, key, "given twice");
        l->seen[i] = true;
        return set_key(l, &keys[i], value);
    }
    return set_err(l, section, key, "unknown key");
}

/* A file the service must read: a regular file it can open. |private| files
 * (TLS key, PIN) must also have no group or other permission bits. */
static int
check_file(struct load *l, const char *section, const char *key, const char *path, bool private)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return set_err(l, section, key, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return set_err(l, section, key, "%s: not a regular file", path);
    if (access(path, R_OK) < 0)
        return set_err(l, section, key, "%s: not readable: %s", path, strerror(errno));
    if (private && (st.st_mode & 077) != 0)
        return set_err(l, section, key, "%s: mode %04o lets others read it; use 0600", path,
                       (unsigned)(st.st_mode & 07777));
    return 1;
}

static int
check_all(struct load *l)
{
    struct vault_config *c = l->c;
    struct stat st;

    if (client_done(l) == 0)
        return 0;
    for (size_t i = 0; i < NUM_KEYS; i++)
        if (keys[i].required && !l->seen[i])
            return set_err(l, keys[i].section, keys[i].key, "required key missing");
    if (c->pin_source == VAULT_PIN_FILE) {
        if (c->pin_file[0] == '\0')
            return set_err(l, "hsm", "pin_file", "required when pin_source = file");
        if (check_file(l, "hsm", "pin_file", c->pin_file, true) == 0)
            return 0;
    } else if (c->pin_file[0] != '\0') {
        return set_err(l, "hsm", "pin_file", "not used with pin_source = sealed; remove it");
    }
    if (c->pin_source == VAULT_PIN_SEALED) {
        if (c->officer_socket[0] == '\0')
            return set_err(l, "service", "officer_socket", "required when pin_source = sealed");
        if (c->share_set[0] == '\0')
            return set_err(l, "hsm", "share_set", "required when pin_source = sealed");
        if (check_file(l, "hsm", "share_set", c->share_set, false) == 0)
            return 0;
    } else if (c->share_set[0] != '\0') {
        return set_err(l, "hsm", "share_set", "used only with pin_source = sealed; remove it");
    }
    /* A recycle logs in again, and a sealed start does not keep the PIN. */
    if (c->pin_source == VAULT_PIN_SEALED && c->hsm_recycle_after_objects != 0 &&
        c->hsm_recycle_after_objects != VAULT_HSM_RECYCLE_AUTO)
        return set_err(l, "hsm", "recycle_after_objects",
                       "needs pin_source = file (a recycle logs in again; a sealed start keeps "
                       "no PIN); 0 or remove it");
    if (c->session_lifetime_seconds > c->session_max_lifetime_seconds)
        return set_err(l, "sessions", "default_lifetime_seconds",
                       "%u is longer than max_lifetime_seconds (%u)", c->session_lifetime_seconds,
                       c->session_max_lifetime_seconds);
    if (c->num_clients == 0)
        return set_err(l, "client", NULL, "no [client NAME] section: nobody could connect");
    for (size_t i = 0; i < c->num_clients; i++)
        for (size_t k = i + 1; k < c->num_clients; k++) {
            const struct vault_client *a = &c->clients[i], *b = &c->clients[k];

            if ((a->subject[0] != '\0' && strcmp(a->subject, b->subject) == 0) ||
                (a->has_fingerprint && b->has_fingerprint &&
                 memcmp(a->fingerprint, b->fingerprint, 32) == 0))
                return set_err(l, "client", NULL, "clients '%s' and '%s' match the same certificate",
                               a->name, b->name);
        }
    if (check_file(l, "tls", "cert", c->tls_cert, false) == 0 ||
        check_file(l, "tls", "key", c->tls_key, true) == 0 ||
        check_file(l, "tls", "client_ca", c->tls_client_ca, false) == 0 ||
        check_file(l, "hsm", "module", c->hsm_module, false) == 0)
        return 0;
    if (stat(c->store_path, &st) == 0 && !S_ISDIR(st.st_mode))
        return set_err(l, "store", "path", "%s: not a directory", c->store_path);
    if (stat(c->store_path, &st) == 0 && (st.st_mode & 002) != 0)
        return set_err(l, "store", "path", "%s: writable by others", c->store_path);
    for (size_t i = 0; i < c->num_merchants; i++)
        if (merchant_done(l, &c->merchants[i]) == 0)
            return 0;
    if (c->num_merchants > 0)
        qsort(c->merchants, c->num_merchants, sizeof(*c->merchants), cmp_merchant_id);
    return 1;
}

struct header {
    const char *name; /* points into the text; ends at ']' */
    size_t len;
    size_t line;
};

static int
cmp_header(const void *a, const void *b)
{
    const struct header *x = a, *y = b;
    int c = strncmp(x->name, y->name, x->len < y->len ? x->len : y->len);

    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->line < y->line ? -1 : 1;
}

static bool
known_section(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(global_sections) / sizeof(global_sections[0]); i++)
        if (strlen(global_sections[i]) == len && strncmp(global_sections[i], name, len) == 0)
            return true;
    return (len > 7 && strncmp(name, "client ", 7) == 0) ||
           (len > 9 && strncmp(name, "merchant ", 9) == 0);
}

/* Every [section] header, before inih runs: inih merges a repeated section
 * silently and never reports one without keys, but two [hsm] blocks or a
 * misspelt empty section are mistakes to show, not to resolve. */
static int
check_headers(const char *text, const char *path, char *err, size_t err_len)
{
    struct header *h = NULL;
    size_t n = 0, cap = 0, line = 1;
    int r = -1;

    for (const char *p = text; *p != '\0'; line++) {
        const char *eol = strchr(p, '\n'), *close;

        if (eol == NULL)
            eol = p + strlen(p);
        while (p < eol && (*p == ' ' || *p == '\t'))
            p++;
        if (p < eol && *p == '[') {
            close = memchr(p, ']', (size_t)(eol - p));
            if (close == NULL) {
                snprintf(err, err_len, "%s:%zu: section header without ']'", path, line);
                goto out;
            }
            if (!known_section(p + 1, (size_t)(close - p - 1))) {
                snprintf(err, err_len,
                         "%s:%zu: [%.*s]: unknown section (service, tls, hsm, store, client NAME, "
                         "merchant ID)", path, line, (int)(close - p - 1), p + 1);
                goto out;
            }
            if (n == cap) {
                struct header *grown;

                cap = cap ? cap * 2 : 16;
                grown = realloc(h, cap * sizeof(*h));
                if (grown == NULL) {
                    snprintf(err, err_len, "%s: out of memory", path);
                    goto out;
                }
                h = grown;
            }
            h[n++] = (struct header){p + 1, (size_t)(close - p - 1), line};
        }
        p = *eol == '\n' ? eol + 1 : eol;
    }
    if (n > 0)
        qsort(h, n, sizeof(*h), cmp_header);
    for (size_t i = 1; i < n; i++) {
        if (h[i].len == h[i - 1].len && strncmp(h[i].name, h[i - 1].name, h[i].len) == 0) {
            snprintf(err, err_len, "%s:%zu: [%.*s]: section given twice (first at line %zu)",
                     path, h[i].line, (int)h[i].len, h[i].name, h[i - 1].line);
            goto out;
        }
    }
    r = 0;
out:
    free(h);
    return r;
}

/* Reads the whole file (bounded) so that overlong lines, NUL bytes and a
 * wrong file are refused before inih sees them. */
static char *
read_config(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    size_t len = 0, line = 1, col = 0;
    ssize_t n;

    if (fd < 0) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > VAULT_CONFIG_FILE_MAX) {
        snprintf(err, err_len, "%s: not a regular file of at most %u bytes", path,
                 VAULT_CONFIG_FILE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto out;
    }
    while (len < (size_t)st.st_size &&
           (n = read(fd, buf + len, (size_t)st.st_size - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == '\n') {
            line++;
            col = 0;
            continue;
        }
        if (buf[i] == '\0' || ++col > VAULT_CONFIG_LINE_MAX) {
            snprintf(err, err_len, "%s:%zu: %s", path, line,
                     buf[i] == '\0' ? "NUL byte" : "line longer than 196 characters");
            free(buf);
            buf = NULL;
            goto out;
        }
    }
out:
    close(fd);
    return buf;
}

int
vault_config_load(struct vault_config **out, const char *path, char *err, size_t err_len)
{
    struct vault_config *c = NULL;
    struct load l;
    char *text = NULL, reason[VAULT_CONFIG_ERR_MAX] = "";
    int line, r = -1;

    *out = NULL;
    text = read_config(path, err, err_len);
    if (text == NULL || check_headers(text, path, err, err_len) < 0)
        goto out;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto out;
    }
    if (copy_str(c->path, sizeof(c->path), path) < 0) {
        snprintf(err, err_len, "config path too long");
        goto out;
    }
    c->max_connections = DEFAULT_MAX_CONNECTIONS;
    c->max_in_flight = DEFAULT_MAX_IN_FLIGHT;
    c->queue_depth = DEFAULT_QUEUE_DEPTH;
    c->workers = DEFAULT_WORKERS;
    c->handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT_MS;
    c->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    c->log_level = VAULT_LOG_INFO;
    c->map_size = (uint64_t)DEFAULT_MAP_SIZE_MB * 1024u * 1024u;
    c->dek_max_encryptions = DEFAULT_DEK_MAX_ENCRYPTIONS;
    c->dek_max_age_days = DEFAULT_DEK_MAX_AGE_DAYS;
    c->audit_checkpoint_entries = DEFAULT_CHECKPOINT_ENTRIES;
    c->audit_checkpoint_seconds = DEFAULT_CHECKPOINT_SECONDS;
    c->metrics_interval_seconds = DEFAULT_METRICS_INTERVAL_SECONDS;
    c->apple_signing_window_seconds = DEFAULT_APPLE_WINDOW_SECONDS;
    c->samsung_max_age_seconds = DEFAULT_SAMSUNG_MAX_AGE_SECONDS;
    c->dpan_lifetime_seconds = DEFAULT_DPAN_LIFETIME_SECONDS;
    c->qr_max_lifetime_seconds = DEFAULT_QR_MAX_LIFETIME_SECONDS;
    c->qr_retention_seconds = DEFAULT_QR_RETENTION_SECONDS;
    c->hsm_recycle_after_objects = VAULT_HSM_RECYCLE_AUTO;
    c->session_lifetime_seconds = DEFAULT_SESSION_LIFETIME_SECONDS;
    c->session_max_lifetime_seconds = DEFAULT_SESSION_MAX_LIFETIME_SECONDS;
    memset(&l, 0, sizeof(l));
    l.c = c;
    l.err = reason;
    l.err_len = sizeof(reason);
    /* Plain INI: no continuation lines, no inline comments (a ';' or '#' in a
     * value is part of it), stop at the first error. Process-wide inih
     * settings; the config is loaded from one thread. */
    ini_allow_multiline = false;
    ini_allow_inline_comments = false;
    ini_stop_on_first_error = true;
    line = ini_parse_string(text, on_key, &l);
    if (line != 0) {
        if (reason[0] == '\0')
            snprintf(reason, sizeof(reason), "not a 'key = value' line or a [section]");
        snprintf(err, err_len, "%s:%d: %s", path, line, reason);
        goto out;
    }
    if (check_all(&l) == 0) {
        snprintf(err, err_len, "%s: %s", path, reason);
        goto out;
    }
    *out = c;
    c = NULL;
    r = 0;
out:
    free(text);
    vault_config_free(c);
    return r;
}

void
vault_config_free(struct vault_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->num_clients; i++)
        free(c->clients[i].merchants);
    for (size_t i = 0; i < c->num_merchants; i++)
        free(c->merchants[i].wallets);
    free(c->clients);
    free(c->merchants);
    free(c);
}

const struct vault_client *
vault_config_client(const struct vault_config *c, const char *subject,
                    const uint8_t fingerprint[32])
{
    const struct vault_client *by_subject = NULL;

    for (size_t i = 0; i < c->num_clients; i++) {
        const struct vault_client *cl = &c->clients[i];

        if (fingerprint != NULL && cl->has_fingerprint &&
            CRYPTO_memcmp(cl->fingerprint, fingerprint, 32) == 0)
            return cl; /* public values, but compared as auditors expect: in constant time */
        if (subject != NULL && cl->subject[0] != '\0' && strcmp(cl->subject, subject) == 0)
            by_subject = cl;
    }
    return by_subject;
}

bool
vault_client_allows(const struct vault_client *client, enum api_role role, const char *merchant)
{
    if (client == NULL || (unsigned)role >= API_ROLE_COUNT_)
        return false;
    if (role != API_ROLE_ANY && !(client->roles & (1u << role)))
        return false;
    if (merchant == NULL || client->all_merchants)
        return true;
    if (client->num_merchants == 0)
        return false;
    return bsearch(merchant, client->merchants, client->num_merchants, sizeof(*client->merchants),
                   cmp_merchant_id) != NULL;
}

const struct vault_merchant *
vault_config_merchant(const struct vault_config *c, const char *merchant)
{
    if (c->num_merchants == 0)
        return NULL;
    return bsearch(merchant, c->merchants, c->num_merchants, sizeof(*c->merchants),
                   cmp_merchant_id);
}

const char *
vault_log_level_name(enum vault_log_level level)
{
    return (unsigned)level < 4 ? log_levels[level] : "?";
}
