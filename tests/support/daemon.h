/*
 * daemon.h - the real tokenvaultd for integration tests: a SoftHSM token of
 * its own with the vault's key set (generated in the token, as the ceremony
 * does), the test certificates, a config file, and the daemon run as a child
 * process whose log (stderr) goes to a file the tests can scan.
 *
 * The config names these clients (certificates from make_certs.sh):
 *   gateway    CN=gateway-test     store, list, wallet, session, qr, mandate   m-1, m-pan
 *   lister     CN=gateway-list     list                  m-1
 *   other      CN=gateway-other    store, list, reveal   m-2
 *   settlement CN=settlement-test  reveal, list          *
 * and CN=nobody is signed by the test CA but named by no [client] section.
 * Merchant m-pan has token_format = pan.
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_DAEMON_H
#define TOKENVAULT_TESTS_SUPPORT_DAEMON_H

#include <stdint.h>
#include <sys/types.h>

#include "api/client.h"
#include "tests/support/token.h"

/* Settings a test may change; 0 keeps the harness default. */
struct tv_daemon_opts {
    unsigned max_connections;
    unsigned max_in_flight;
    unsigned queue_depth;
    unsigned workers;
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned map_size_mb;
    unsigned checkpoint_entries;
    const char *share_set; /* sealed start with this share set file; NULL: PIN file */
    int no_keys;           /* an empty token (a restore target) */
    unsigned dek_max_encryptions; /* automatic DEK rotation after this many */
    unsigned dek_max_age_days;    /* automatic DEK rotation at this age ([store]) */
    const char *module;           /* [hsm] module; NULL: SoftHSM (TV_SOFTHSM_MODULE) */
    unsigned recycle_after_objects; /* [hsm] recycle_after_objects; 0: left out */
};

struct tv_daemon {
    tv_token token;
    char certs[300];   /* make_certs.sh output */
    char conf[300];
    char log[300];     /* the daemon's stderr */
    char store[300];   /* the LMDB directory */
    char metrics[300]; /* the Prometheus textfile */
    char officer[108]; /* the officer socket */
    struct tv_daemon_opts opts;
    uint16_t port;
    pid_t pid;
};

/* tv_daemon_setup makes the token, its keys (vault-kek-v1,
 * vault-fingerprint, vault-session-mac, vault-audit-sign), the certificates
 * and the config. Returns 0 or -1 with a message on stderr. */
int tv_daemon_setup(struct tv_daemon *d, const struct tv_daemon_opts *opts);

/* tv_daemon_use_token points SOFTHSM2_CONF (inherited by the daemon and
 * the tools run after) at |d|'s token: for tests with two appliances. */
void tv_daemon_use_token(const struct tv_daemon *d);

/* tv_daemon_write_config rewrites the config from d->opts (for SIGHUP tests,
 * |extra| is appended verbatim; NULL for none). */
int tv_daemon_write_config(struct tv_daemon *d, const char *extra);

/* tv_daemon_start runs tokenvaultd (TV_TOKENVAULTD) and waits until its log
 * says service_started (or it exits: -1). */
int tv_daemon_start(struct tv_daemon *d);

/* The same, waiting for the log event |event| ("service_sealed" for a
 * sealed start) instead of service_started. */
int tv_daemon_start_until(struct tv_daemon *d, const char *event);

/* tv_daemon_stop sends |sig| and waits for the exit; returns the exit status
 * (0..255), or -1 if it died by a signal or would not stop in 20 s (then it
 * is killed). */
int tv_daemon_stop(struct tv_daemon *d, int sig);

/* Stops the daemon if running and removes every file. */
void tv_daemon_teardown(struct tv_daemon *d);

/* tv_daemon_client: a libtokenvault client with the certificate |who|
 * ("client", "list-client", "other-client", "reveal-client",
 * "unknown-client", "rogue-client", or NULL for none). */
int tv_daemon_client(const struct tv_daemon *d, const char *who, struct api_client **out);

/* tv_daemon_tcp: a plain TCP connection to the daemon's port (for clients
 * that misbehave before or instead of TLS), with 5 s socket timeouts; the
 * descriptor, or -1. */
int tv_daemon_tcp(const struct tv_daemon *d);

/* tv_daemon_raw_tls: a TLS 1.3 client of the daemon over a fresh TCP
 * connection, with the certificate |who| (as tv_daemon_client; NULL: none),
 * not yet connected: the caller runs SSL_connect (or expects it to fail),
 * then reads and writes raw frames. *out_fd is the socket. NULL on failure.
 * Free with SSL_free and close the socket. */
struct ssl_st;
struct ssl_st *tv_daemon_raw_tls(const struct tv_daemon *d, const char *who, int *out_fd);

/* Holder and e-mail of every test card (tests scan files for them). */
#define TV_HOLDER "Ada Lovelace"
#define TV_EMAIL "ada.lovelace@example.com"
/* tv_test_pan writes the |n|th test Visa number (16 digits, Luhn-valid,
 * distinct for each n < 10^11) into |out|. */
void tv_test_pan(unsigned n, char out[17]);
/* The UTC date |days| days from now (negative: before). */
struct api_date tv_date_in_days(int days);
/* tv_session_check_req fills |out| with the SESSION_CHECK an app would
 * send for the session made by |q| and answered by |resp|: the same data,
 * nonce and signature (no clientCardId, no e-mail). */
void tv_session_check_req(struct api_session_check_req *out, const struct api_session_init_req *q,
                          const struct api_session_init_resp *resp);
/* tv_session_check sends |q| on |c|: 0, or the refusal's negated status
 * (the answer is freed). */
int tv_session_check(struct api_client *c, const struct api_session_check_req *q);
/* tv_qr_issue: a QR payment request of |merchant| for |order_id|, 25.00 EUR,
 * 600 s; its token into |out| on 0, else the negated status. */
int tv_qr_issue(struct api_client *c, const char *merchant, const char *order_id,
                char out[API_QR_TOKEN_MAX + 1]);
/* tv_qr_redeem: QR_REDEEM of |token| for |merchant| by |payer_ref|: 0, or
 * the negated status. */
int tv_qr_redeem(struct api_client *c, const char *merchant, const char *token,
                 const char *payer_ref);
/* A card's expiry year three years from now. */
uint16_t tv_future_year(void);
/* A CARD_STORE request for |pan| with the test holder and e-mail, expiry
 * 07/tv_future_year(), consent and CVC2+3DS verification. */
void tv_card_store_req(struct api_card_store_req *q, const char *merchant, const char *customer,
                       const char *pan);

/* tv_run runs a shell command line (printf format) and returns its exit
 * status, or -1 if it did not exit or the line was too long. */
int tv_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* tv_file_has: 1 if the text file holds |needle|; else prints the file to
 * stderr, for the failing test's log, and returns 0. */
int tv_file_has(const char *path, const char *needle);

/* tv_file_contains: whether the file holds |needle| anywhere (1), not (0),
 * or cannot be read (-1). */
int tv_file_contains(const char *path, const void *needle, size_t len);

#endif
