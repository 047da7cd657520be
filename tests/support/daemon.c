/*
 * daemon.c - running the real tokenvaultd in tests.
 */
#include "tests/support/daemon.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "tests/support/test_server.h"

extern char **environ;

/* How long the daemon may take to start (SoftHSM login, first DEK). */
#define START_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS 20000
/* Under TV_DAEMON_WRAPPER (valgrind) the daemon runs tens of times slower. */
#define WRAPPED_TIMEOUT_SCALE 15

static int
timeout_scale(void)
{
    const char *w = getenv("TV_DAEMON_WRAPPER");

    return w != NULL && w[0] != '\0' ? WRAPPED_TIMEOUT_SCALE : 1;
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A port nobody listens on now (the kernel's choice for port 0). */
static uint16_t
free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    uint16_t port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static unsigned
or_default(unsigned v, unsigned def)
{
    return v != 0 ? v : def;
}

int
tv_daemon_write_config(struct tv_daemon *d, const char *extra)
{
    const struct tv_daemon_opts *o = &d->opts;
    char text[8192], pin[PATH_MAX + 64], dek[128] = "";
    size_t dek_len = 0;

    if (o->dek_max_encryptions != 0)
        dek_len = (size_t)snprintf(dek, sizeof(dek), "dek_max_encryptions = %u\n",
                                   o->dek_max_encryptions);
    if (o->dek_max_age_days != 0)
        snprintf(dek + dek_len, sizeof(dek) - dek_len, "dek_max_age_days = %u\n",
                 o->dek_max_age_days);
    if (o->share_set != NULL)
        snprintf(pin, sizeof(pin), "pin_source = sealed\nshare_set = %s\n", o->share_set);
    else
        snprintf(pin, sizeof(pin), "pin_source = file\npin_file = %s\n", d->token.pin_file);
    if (o->recycle_after_objects != 0)
        snprintf(pin + strlen(pin), sizeof(pin) - strlen(pin), "recycle_after_objects = %u\n",
                 o->recycle_after_objects);

    snprintf(text, sizeof(text),
             "[service]\n"
             "listen = 127.0.0.1:%u\n"
             "officer_socket = %s\n"
             "max_connections = %u\n"
             "max_in_flight = %u\n"
             "queue_depth = %u\n"
             "workers = %u\n"
             "handshake_timeout_ms = %u\n"
             "idle_timeout_ms = %u\n"
             "log_level = debug\n"
             "[tls]\n"
             "cert = %s/server.pem\n"
             "key = %s/server.key\n"
             "client_ca = %s/ca.pem\n"
             "[hsm]\n"
             "module = %s\n"
             "token = %s\n"
             "%s"
             "[store]\n"
             "path = %s\n"
             "map_size_mb = %u\n"
             "%s"
             "[audit]\n"
             "checkpoint_entries = %u\n"
             "checkpoint_seconds = 3600\n"
             "[metrics]\n"
             "textfile = %s\n"
             "interval_seconds = 1\n"
             "[client gateway]\n"
             "subject = CN=gateway-test\n"
             "roles = store, list, wallet, session, qr, mandate\n"
             "merchants = m-1, m-pan\n"
             "[client lister]\n"
             "subject = CN=gateway-list\n"
             "roles = list\n"
             "merchants = m-1\n"
             "[client other]\n"
             "subject = CN=gateway-other\n"
             "roles = store, list, reveal\n"
             "merchants = m-2\n"
             "[client settlement]\n"
             "subject = CN=settlement-test\n"
             "roles = reveal, list\n"
             "merchants = *\n"
             "[merchant m-pan]\n"
             "token_format = pan\n"
             "%s",
             d->port, d->officer, or_default(o->max_connections, 64), or_default(o->max_in_flight, 64),
             or_default(o->queue_depth, 1024), or_default(o->workers, 2),
             or_default(o->handshake_timeout_ms, 5000), or_default(o->idle_timeout_ms, 60000),
             d->certs, d->certs, d->certs, o->module != NULL ? o->module : TV_SOFTHSM_MODULE, TV_TEST_LABEL, pin,
             d->store, or_default(o->map_size_mb, 64), dek, or_default(o->checkpoint_entries, 1000),
             d->metrics, extra != NULL ? extra : "");
    return tv_write_file(d->conf, text, 0600);
}

static int
make_keys(struct tv_daemon *d)
{
    static const struct {
        hsm_key_kind kind;
        const char *label;
    } keys[] = {
        {HSM_KIND_KEK, "vault-kek-v1"},
        {HSM_KIND_HMAC, "vault-fingerprint"},
        {HSM_KIND_HMAC, "vault-session-mac"},
        {HSM_KIND_EC_SIGN, "vault-audit-sign"},
    };
    hsm_session *s = NULL;
    hsm_key *k = NULL;
    int r = -1;

    if (tv_token_open(&d->token) != HSM_OK || hsm_session_acquire(d->token.h, &s) != HSM_OK)
        goto out;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (hsm_key_generate(s, keys[i].kind, keys[i].label, &k) != HSM_OK)
            goto out;
    r = 0;
out:
    hsm_session_release(s);
    /* The daemon is another process; this one lets go of the token. */
    hsm_close(d->token.h);
    d->token.h = NULL;
    return r;
}

int
tv_daemon_setup(struct tv_daemon *d, const struct tv_daemon_opts *opts)
{
    memset(d, 0, sizeof(*d));
    d->pid = -1;
    if (opts != NULL)
        d->opts = *opts;
    if (tv_token_setup(&d->token) != 0 || (!d->opts.no_keys && make_keys(d) != 0)) {
        fprintf(stderr, "tv_daemon_setup: token or keys failed\n");
        return -1;
    }
    snprintf(d->certs, sizeof(d->certs), "%s/certs-XXXXXX", d->token.dir);
    if (tv_test_certs(d->certs) != 0) {
        fprintf(stderr, "tv_daemon_setup: certificates failed\n");
        return -1;
    }
    snprintf(d->conf, sizeof(d->conf), "%s/tokenvault.conf", d->token.dir);
    snprintf(d->log, sizeof(d->log), "%s/tokenvaultd.log", d->token.dir);
    snprintf(d->store, sizeof(d->store), "%s/store", d->token.dir);
    snprintf(d->metrics, sizeof(d->metrics), "%s/tokenvault.prom", d->token.dir);
    if ((size_t)snprintf(d->officer, sizeof(d->officer), "%s/officer.sock", d->token.dir) >=
        sizeof(d->officer))
        return -1;
    d->port = free_port();
    if (d->port == 0 || tv_daemon_write_config(d, NULL) != 0) {
        fprintf(stderr, "tv_daemon_setup: config failed\n");
        return -1;
    }
    return 0;
}

void
tv_daemon_use_token(const struct tv_daemon *d)
{
    setenv("SOFTHSM2_CONF", d->token.conf, 1);
}

/* Words of TV_DAEMON_WRAPPER. */
#define DAEMON_ARGV_MAX 32

int
tv_daemon_start(struct tv_daemon *d)
{
    return tv_daemon_start_until(d, "service_started");
}

int
tv_daemon_start_until(struct tv_daemon *d, const char *event)
{
    /* TV_DAEMON_WRAPPER (scripts/memcheck): a command line the daemon runs
     * under, words split on blanks, e.g. valgrind and its options. */
    const char *wrapper = getenv("TV_DAEMON_WRAPPER");
    char *argv[DAEMON_ARGV_MAX + 4], wrap[1024];
    size_t argc = 0;
    posix_spawn_file_actions_t fa;
    char mark[64];
    off_t log_start;
    int fd, status;

    /* A test that failed half-way may have left its daemon running: stop it
     * rather than orphan it (an orphan holds ctest's output pipe open). */
    if (d->pid > 0)
        (void)tv_daemon_stop(d, SIGKILL);
    tv_daemon_use_token(d); /* the daemon inherits it */
    if (wrapper != NULL && wrapper[0] != '\0') {
        if (snprintf(wrap, sizeof(wrap), "%s", wrapper) >= (int)sizeof(wrap))
            return -1;
        for (char *w = strtok(wrap, " \t"); w != NULL && argc < DAEMON_ARGV_MAX;
             w = strtok(NULL, " \t"))
            argv[argc++] = w;
    }
    argv[argc++] = TV_TOKENVAULTD;
    argv[argc++] = "--config";
    argv[argc++] = d->conf;
    argv[argc] = NULL;
    snprintf(mark, sizeof(mark), "event=%s", event);
    if ((fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
        return -1;
    log_start = lseek(fd, 0, SEEK_END);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, 2);
    if (posix_spawn(&d->pid, argv[0], &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(fd);
        d->pid = -1;
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(fd);
    for (int waited = 0; waited < START_TIMEOUT_MS * timeout_scale(); waited += 20) {
        /* Only what this start appended counts: a daemon killed before
         * (SIGKILL) logged a start and no stop. */
        FILE *f = fopen(d->log, "r");
        char line[4096];
        int seen = 0;

        if (f != NULL && fseeko(f, log_start, SEEK_SET) == 0)
            while (fgets(line, sizeof(line), f) != NULL)
                seen += strstr(line, mark) != NULL;
        if (f != NULL)
            fclose(f);
        if (seen > 0)
            return 0;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = -1;
            return -1;
        }
        sleep_ms(20);
    }
    return -1;
}

int
tv_daemon_stop(struct tv_daemon *d, int sig)
{
    int status;

    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    for (int waited = 0; waited < STOP_TIMEOUT_MS * timeout_scale(); waited += 20) {
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            d->pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(20);
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &status, 0);
    d->pid = -1;
    return -1;
}

void
tv_daemon_teardown(struct tv_daemon *d)
{
    if (d->pid > 0)
        tv_daemon_stop(d, SIGKILL);
    tv_token_teardown(&d->token); /* removes the directory and all in it */
}

int
tv_daemon_tcp(const struct tv_daemon *d)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(d->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

SSL *
tv_daemon_raw_tls(const struct tv_daemon *d, const char *who, int *out_fd)
{
    char path[400];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = -1;

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    snprintf(path, sizeof(path), "%s/ca.pem", d->certs);
    if (SSL_CTX_load_verify_locations(ctx, path, NULL) != 1)
        goto out;
    if (who != NULL) {
        snprintf(path, sizeof(path), "%s/%s.pem", d->certs, who);
        if (SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM) != 1)
            goto out;
        snprintf(path, sizeof(path), "%s/%s.key", d->certs, who);
        if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1)
            goto out;
    }
    if ((fd = tv_daemon_tcp(d)) < 0 || (ssl = SSL_new(ctx)) == NULL)
        goto out;
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    *out_fd = fd;
    fd = -1;
out:
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    if (fd >= 0)
        close(fd);
    return ssl;
}

int
tv_daemon_client(const struct tv_daemon *d, const char *who, struct api_client **out)
{
    char ca[320], cert[320], key[320];
    struct api_client_config c = {
        .host = "127.0.0.1",
        .port = d->port,
        .server_name = "localhost",
        .ca_file = ca,
        .connect_timeout_ms = 5000,
        .handshake_timeout_ms = 5000,
        .request_timeout_ms = 20000u * (unsigned)timeout_scale(),
        .max_in_flight = API_CLIENT_IN_FLIGHT_MAX,
    };

    snprintf(ca, sizeof(ca), "%s/ca.pem", d->certs);
    if (who != NULL) {
        snprintf(cert, sizeof(cert), "%s/%s.pem", d->certs, who);
        snprintf(key, sizeof(key), "%s/%s.key", d->certs, who);
        c.cert_file = cert;
        c.key_file = key;
    }
    return api_client_new(out, &c);
}

int
tv_file_contains(const char *path, const void *needle, size_t len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, got;
    int r = -1;

    if (f == NULL)
        return -1;
    do {
        if (n == cap) {
            unsigned char *p = realloc(buf, cap = cap ? 2 * cap : 65536);
            if (p == NULL)
                goto out;
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    r = memmem(buf, n, needle, len) != NULL;
out:
    free(buf);
    fclose(f);
    return r;
}

void
tv_test_pan(unsigned n, char out[17])
{
    int sum = 0;

    snprintf(out, 17, "4000%011u", n);
    /* Luhn over the 15 digits, doubling from the rightmost one. */
    for (int i = 14; i >= 0; i--) {
        int dgt = out[i] - '0';

        if ((14 - i) % 2 == 0 && (dgt *= 2) > 9)
            dgt -= 9;
        sum += dgt;
    }
    out[15] = (char)('0' + (10 - sum % 10) % 10);
    out[16] = '\0';
}

struct api_date
tv_date_in_days(int days)
{
    time_t t = time(NULL) + (time_t)days * 86400;
    struct tm tm;
    struct api_date out;

    gmtime_r(&t, &tm);
    out.year = (uint16_t)(tm.tm_year + 1900);
    out.month = (uint8_t)(tm.tm_mon + 1);
    out.day = (uint8_t)tm.tm_mday;
    return out;
}

void
tv_session_check_req(struct api_session_check_req *out, const struct api_session_init_req *q,
                     const struct api_session_init_resp *resp)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->merchant, q->merchant, sizeof(out->merchant));
    /* Byte fields of different capacities: copied by length. */
    out->nonce.len = resp->nonce.len;
    memcpy(out->nonce.data, resp->nonce.data, resp->nonce.len);
    out->signature.len = resp->signature.len;
    memcpy(out->signature.data, resp->signature.data, resp->signature.len);
    out->access_token_hash.len = q->access_token_hash.len;
    memcpy(out->access_token_hash.data, q->access_token_hash.data, q->access_token_hash.len);
    out->amount = q->amount;
    memcpy(out->currency, q->currency, sizeof(out->currency));
    out->device_data.len = q->device_data.len;
    memcpy(out->device_data.data, q->device_data.data, q->device_data.len);
}

uint16_t
tv_future_year(void)
{
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    return (uint16_t)(tm.tm_year + 1900 + 3);
}

void
tv_card_store_req(struct api_card_store_req *q, const char *merchant, const char *customer,
                  const char *pan)
{
    memset(q, 0, sizeof(*q));
    snprintf(q->merchant, sizeof(q->merchant), "%s", merchant);
    snprintf(q->customer_number, sizeof(q->customer_number), "%s", customer);
    snprintf(q->pan, sizeof(q->pan), "%s", pan);
    q->exp_month = 7;
    q->exp_year = tv_future_year();
    q->has_holder = true;
    snprintf(q->holder, sizeof(q->holder), "%s", TV_HOLDER);
    q->has_email = true;
    snprintf(q->email, sizeof(q->email), "%s", TV_EMAIL);
    q->consent = true;
    q->verification = API_VERIFICATION_CVC2_3DS;
}

int
tv_run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    int st, n;

    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        return -1;
    st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int
tv_file_has(const char *path, const char *needle)
{
    if (tv_file_contains(path, needle, strlen(needle)) == 1)
        return 1;
    fprintf(stderr, "%s lacks '%s'; it holds:\n", path, needle);
    (void)tv_run("cat %s >&2", path);
    return 0;
}

int
tv_session_check(struct api_client *c, const struct api_session_check_req *q)
{
    struct api_session_check_resp resp;
    struct api_error_resp err;
    int r = api_call_session_check(c, q, &resp, &err);

    if (r == 0)
        api_msg_cleanup(api_schema_response(API_OP_SESSION_CHECK), &resp);
    return r;
}

int
tv_qr_issue(struct api_client *c, const char *merchant, const char *order_id,
            char out[API_QR_TOKEN_MAX + 1])
{
    struct api_qr_issue_req q = {0};
    struct api_qr_issue_resp resp;
    struct api_error_resp err;
    int r;

    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.order_id, sizeof(q.order_id), "%s", order_id);
    q.amount = 2500;
    memcpy(q.currency, "EUR", 4);
    q.lifetime = 600;
    r = api_call_qr_issue(c, &q, &resp, &err);
    if (r == 0) {
        memcpy(out, resp.qr_token, API_QR_TOKEN_MAX + 1);
        api_msg_cleanup(api_schema_response(API_OP_QR_ISSUE), &resp);
    }
    return r;
}

int
tv_qr_redeem(struct api_client *c, const char *merchant, const char *token, const char *payer_ref)
{
    struct api_qr_redeem_req q = {0};
    struct api_qr_redeem_resp resp;
    struct api_error_resp err;
    int r;

    snprintf(q.merchant, sizeof(q.merchant), "%s", merchant);
    snprintf(q.qr_token, sizeof(q.qr_token), "%s", token);
    snprintf(q.payer_ref, sizeof(q.payer_ref), "%s", payer_ref);
    r = api_call_qr_redeem(c, &q, &resp, &err);
    if (r == 0)
        api_msg_cleanup(api_schema_response(API_OP_QR_REDEEM), &resp);
    return r;
}
