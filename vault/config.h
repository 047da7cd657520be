/*
 * config.h - tokenvaultd's configuration file: INI (inih), every key checked
 * at load with a message that names the file, line, section, key and reason.
 *
 * Unknown sections and keys are errors, as are a key given twice, a missing
 * required key, a value out of its range, and a file named by the config that
 * cannot be used (a TLS key or PIN file readable by others, a missing CA). A
 * misspelt key must stop the service, not be ignored.
 *
 * A vault_config is immutable once loaded; reloading (SIGHUP) loads a new one
 * and the service swaps what may change at runtime (clients, log level).
 * Thread-safe to read.
 */
#ifndef TOKENVAULT_VAULT_CONFIG_H
#define TOKENVAULT_VAULT_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"

/* Bounds on what a config may declare; beyond them the file is refused. */
#define VAULT_CLIENTS_MAX 1024u
#define VAULT_MERCHANTS_MAX 65536u
/* Requests one connection may have in flight, at most; the client library's
 * own cap is the same. */
#define VAULT_IN_FLIGHT_MAX 4096u
/* A config file is small; a larger file is the wrong file. */
#define VAULT_CONFIG_FILE_MAX (1024u * 1024u)
/* inih's line buffer: a longer line would be split silently, so it is refused. */
#define VAULT_CONFIG_LINE_MAX 196u
#define VAULT_SUBJECT_MAX 512u
#define VAULT_HOST_MAX 255u
/* Room for the longest message load can produce. */
#define VAULT_CONFIG_ERR_MAX 512u

enum vault_log_level {
    VAULT_LOG_ERROR,
    VAULT_LOG_WARN,
    VAULT_LOG_INFO,
    VAULT_LOG_DEBUG,
};

enum vault_pin_source {
    VAULT_PIN_FILE,   /* a 0600 file read at every login */
    VAULT_PIN_SEALED, /* M-of-N officer shares over the officer socket */
};

enum vault_token_format {
    VAULT_TOKEN_OPAQUE,     /* 128 random bits, printable */
    VAULT_TOKEN_PAN_SHAPED, /* PAN length, BIN and last 4 kept, failing Luhn */
};

/* A client: who it is (certificate subject or SHA-256 fingerprint), what it
 * may do (roles) and for whom (merchants). */
struct vault_client {
    char name[API_ID_MAX + 1];
    char subject[VAULT_SUBJECT_MAX + 1]; /* RFC 2253, "" when matched by fingerprint */
    bool has_fingerprint;
    uint8_t fingerprint[32]; /* SHA-256 of the DER certificate */
    uint32_t roles;          /* bit (1u << enum api_role) */
    bool all_merchants;
    char (*merchants)[API_ID_MAX + 1]; /* sorted, for bsearch */
    size_t num_merchants;
};

/* Wallet keys per merchant: labels of keys in the token (vault/wallets.h
 * resolves them at start). Several per wallet while keys are rotated. */
#define VAULT_WALLET_KEYS_MAX 8u
#define VAULT_LABEL_MAX 64u        /* = HSM_LABEL_MAX */
#define VAULT_SAMSUNG_KID_MAX 128u /* = WALLET_SAMSUNG_KID_MAX */
/* "merchant:<id>" or "gateway:<id>"; Google's ids are short. */
#define VAULT_RECIPIENT_MAX 128u

struct vault_samsung_key_cfg {
    char label[VAULT_LABEL_MAX + 1];
    char kid[VAULT_SAMSUNG_KID_MAX + 1]; /* the JWE header's kid, compared exactly */
};

struct vault_merchant_wallets {
    size_t num_apple;
    char apple[VAULT_WALLET_KEYS_MAX][VAULT_LABEL_MAX + 1];
    char google_recipient[VAULT_RECIPIENT_MAX + 1]; /* "" when no Google Pay */
    size_t num_google;
    char google[VAULT_WALLET_KEYS_MAX][VAULT_LABEL_MAX + 1]; /* newest first */
    size_t num_samsung;
    struct vault_samsung_key_cfg samsung[VAULT_WALLET_KEYS_MAX];
};

struct vault_merchant {
    char id[API_ID_MAX + 1];
    enum vault_token_format token_format;
    struct vault_merchant_wallets *wallets; /* NULL when the merchant takes no wallet */
};

/* [hsm] recycle_after_objects when the file does not set it: the module
 * decides (hsm.h HSM_RECYCLE_AUTO). A file can say 0 (never) or a count up
 * to VAULT_HSM_RECYCLE_MAX. */
#define VAULT_HSM_RECYCLE_AUTO UINT_MAX
#define VAULT_HSM_RECYCLE_MAX 1000000000u

struct vault_config {
    char path[PATH_MAX];

    /* [service] */
    char listen_host[VAULT_HOST_MAX + 1];
    uint16_t listen_port;
    char officer_socket[108]; /* sun_path; "" = no officer socket */
    unsigned max_connections;
    unsigned max_in_flight; /* per connection */
    unsigned queue_depth;   /* requests waiting for a worker, all connections */
    unsigned workers;
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms;
    enum vault_log_level log_level;

    /* [tls] */
    char tls_cert[PATH_MAX];
    char tls_key[PATH_MAX];
    char tls_client_ca[PATH_MAX];

    /* [hsm] */
    char hsm_module[PATH_MAX];
    char hsm_token[PATH_MAX]; /* a token label or an RFC 7512 pkcs11: URI */
    char hsm_module_args[PATH_MAX]; /* the module's C_Initialize init string, "" for none */
    int hsm_reduced_key_attributes; /* 1: hsm_config.reduced_key_attributes */
    /* hsm_config.recycle_after_objects: VAULT_HSM_RECYCLE_AUTO when the file
     * does not say (the module decides), 0 never, else the count. */
    unsigned hsm_recycle_after_objects;
    enum vault_pin_source pin_source;
    char pin_file[PATH_MAX];
    char share_set[PATH_MAX]; /* sealed start: the public share set file */

    /* [store] */
    char store_path[PATH_MAX];
    uint64_t map_size; /* bytes */
    unsigned dek_max_encryptions; /* rotate the DEK after this many records sealed */
    unsigned dek_max_age_days;    /* and after this many days; 0: not by age */

    /* [audit] */
    unsigned audit_checkpoint_entries; /* a signed checkpoint after this many entries */
    unsigned audit_checkpoint_seconds; /* and at least this often while entries come */

    /* [wallet] */
    unsigned apple_signing_window_seconds; /* CMS signing time within this of now */
    unsigned samsung_max_age_seconds;      /* a Samsung packet's utc within this of now */
    unsigned dpan_lifetime_seconds;        /* a device PAN's token lives this long */

    /* [sessions] (mobile sale, seed 002) */
    unsigned session_lifetime_seconds;     /* a session's life when SESSION_INIT names none */
    unsigned session_max_lifetime_seconds; /* the longest a SESSION_INIT may ask for */

    /* [qr] */
    unsigned qr_max_lifetime_seconds; /* longest QR_ISSUE lifetime accepted */
    unsigned qr_retention_seconds;    /* a QR request is swept this long after it expires */

    /* [metrics] */
    char metrics_textfile[PATH_MAX]; /* "" = no metrics file */
    unsigned metrics_interval_seconds;

    struct vault_client *clients;
    size_t num_clients;
    struct vault_merchant *merchants; /* sorted by id */
    size_t num_merchants;
};

/* vault_config_load reads and checks the file at |path|. Returns 0 with a new
 * config in *out (release with vault_config_free), or -1 with a one-line
 * message in |err| ("tokenvault.conf:12: [tls] key: mode 0644 lets others
 * read it; use 0600"). */
int vault_config_load(struct vault_config **out, const char *path, char *err, size_t err_len);

/* vault_config_free frees |c|. Accepts NULL. */
void vault_config_free(struct vault_config *c);

/* The client whose certificate has this RFC 2253 subject or this SHA-256
 * fingerprint, or NULL. A fingerprint match wins over a subject match. */
const struct vault_client *vault_config_client(const struct vault_config *c, const char *subject,
                                               const uint8_t fingerprint[32]);

/* Whether |client| has |role| and may act for |merchant| (NULL: no merchant
 * involved). */
bool vault_client_allows(const struct vault_client *client, enum api_role role,
                         const char *merchant);

/* The settings of |merchant|, or NULL when it has no [merchant] section (the
 * defaults apply). */
const struct vault_merchant *vault_config_merchant(const struct vault_config *c,
                                                   const char *merchant);

const char *vault_log_level_name(enum vault_log_level level);

#endif
