/*
 * client.c - libtokenvault: one connection to tokenvaultd, blocking and
 * pipelined calls; see client.h.
 *
 * Shape of a connection:
 *   - requests are encoded into |out| (an api_writer) and sent from there;
 *     nothing else writes to the socket;
 *   - replies are read into |in|, a buffer of one length prefix and one
 *     largest frame; each prefix is checked (api_frame_length) before its
 *     frame is kept, whole frames are decoded, matched against the in-flight
 *     table by request id and opcode, and queued in |ready| in arrival order;
 *   - the socket is non-blocking; every wait is a poll() bounded by a deadline.
 * While sending, replies are read and queued too: a server blocked writing
 * replies nobody reads would otherwise stop reading our requests (deadlock).
 * The ready queue cannot overflow: each entry answers an in-flight request,
 * and in-flight plus ready never exceeds max_in_flight.
 *
 * SIGPIPE: the TLS connection runs over a BIO of our own whose write is
 * send(MSG_NOSIGNAL), as the Unix path does, so a write to a closed socket
 * fails with EPIPE instead of killing the gateway. A BIO covers every write
 * OpenSSL makes (handshake, alerts, key updates, close_notify), which blocking
 * SIGPIPE around SSL_write would not, and it leaves the caller's signal mask
 * and pending signals alone.
 *
 * Nothing here prints. Errors are mapped to API_ERR_* where they happen; the
 * errno or OpenSSL code behind the last one is kept in |detail| (no secret can
 * be in it) for a debugger, as the API has no accessor for it yet.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "api/client.h"

/* Bytes of queued requests at which submit sends at once instead of waiting
 * for collect: one TLS record's worth, so a burst goes out in large writes
 * and a long burst does not sit in memory. */
#define CLIENT_SEND_BATCH 16384u
/* The output writer never holds more than a batch plus one largest frame:
 * submit sends as soon as a batch is reached. */
#define CLIENT_OUT_MAX (CLIENT_SEND_BATCH + API_LEN_PREFIX + API_FRAME_MAX)
/* The receive buffer holds one length prefix and the largest frame: a partial
 * frame always fits, and a peer can never make us buffer more. */
#define CLIENT_IN_CAP (API_LEN_PREFIX + API_FRAME_MAX)
/* Retry interval while a Unix socket's listen backlog is full: connect
 * returns EAGAIN there, and a non-blocking Unix connect cannot be polled. */
#define CLIENT_UNIX_RETRY_MS 10
/* "65535" and its NUL. */
#define CLIENT_PORT_TEXT 6u

/* A request sent and not yet answered. */
struct client_flight {
    uint64_t id;
    uint16_t opcode;
};

struct api_client {
    /* Where and how (copied from the config). */
    char *host;
    char *unix_path;
    char *server_name;
    uint16_t port;
    unsigned connect_timeout_ms;
    unsigned handshake_timeout_ms;
    unsigned request_timeout_ms;
    size_t max_in_flight;
    SSL_CTX *ctx;           /* NULL for the Unix socket */
    BIO_METHOD *bio_method; /* the MSG_NOSIGNAL socket BIO; outlives every SSL */

    /* The connection: fd -1 when closed. */
    int fd;
    SSL *ssl;
    uint64_t next_id; /* never reset, so an id is never reused across reconnects */

    struct api_writer out; /* encoded requests; out_sent bytes of it are sent */
    size_t out_sent;
    uint8_t *in; /* CLIENT_IN_CAP bytes; in_len hold a partial frame */
    size_t in_len;

    struct client_flight *flight; /* sorted by id: ids are issued in order */
    size_t num_flight;
    struct api_reply *ready; /* ring of max_in_flight replies not yet collected */
    size_t ready_head;
    size_t num_ready;

    unsigned long detail;
};

/* ---- time and waiting ------------------------------------------------------ */

static int64_t
now_ms(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC: a wall-clock step must not fire or stretch a deadline. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until |fd| has one of |events| or |deadline| passes. Returns 0,
 * API_ERR_TIMEOUT or API_ERR_CONNECTION (poll itself failed). POLLERR and
 * POLLHUP count as ready: the next read or write reports what happened. */
static int
wait_fd(struct api_client *c, int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int64_t left = deadline - now_ms();
        int n;

        if (left <= 0)
            return API_ERR_TIMEOUT;
        n = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR) {
            c->detail = (unsigned long)errno;
            return API_ERR_CONNECTION;
        }
    }
}

/* ---- the socket BIO ------------------------------------------------------------ */

static int
bio_sock_write(BIO *b, const char *data, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

static int
bio_sock_read(BIO *b, char *data, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    do
        n = recv(fd, data, (size_t)len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    /* libssl asks BIO_eof whether a 0 was the peer closing without
     * close_notify (a truncation it reports as UNEXPECTED_EOF). */
    if (n == 0)
        BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return (int)n;
}

static long
bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    if (cmd == BIO_CTRL_FLUSH)
        return 1; /* nothing is buffered here */
    if (cmd == BIO_CTRL_EOF)
        return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    return 0;
}

static int
bio_sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int
bio_method_new(BIO_METHOD **out)
{
    /* Not BIO_TYPE_DESCRIPTOR: BIO_get_fd on this BIO would answer 0. */
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tokenvault socket");

    if (m == NULL || BIO_meth_set_write(m, bio_sock_write) != 1 ||
        BIO_meth_set_read(m, bio_sock_read) != 1 || BIO_meth_set_ctrl(m, bio_sock_ctrl) != 1 ||
        BIO_meth_set_create(m, bio_sock_create) != 1) {
        BIO_meth_free(m);
        return API_ERR_NO_MEMORY;
    }
    *out = m;
    return 0;
}

/* ---- configuration --------------------------------------------------------------- */

/* OpenSSL asks for a passphrase on the terminal when a key is encrypted and no
 * callback is set; a library must never prompt, so an encrypted key is
 * refused (API_ERR_CONFIG) instead. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

/* Exactly one of |file| and |pem|. */
static bool
one_of(const char *file, const char *pem)
{
    return (file != NULL) != (pem != NULL);
}

static int
config_check(const struct api_client_config *cfg)
{
    struct sockaddr_un sun;

    if ((cfg->host != NULL) == (cfg->unix_path != NULL))
        return API_ERR_INVALID_ARG;
    if (cfg->max_in_flight > API_CLIENT_IN_FLIGHT_MAX)
        return API_ERR_INVALID_ARG;
    if (cfg->unix_path != NULL)
        return cfg->unix_path[0] != '\0' && strlen(cfg->unix_path) < sizeof(sun.sun_path)
                   ? 0
                   : API_ERR_INVALID_ARG;
    /* TLS material is required for TCP; given twice it is ambiguous. */
    if (cfg->host[0] == '\0' || cfg->port == 0 || !one_of(cfg->ca_file, cfg->ca_pem) ||
        !one_of(cfg->cert_file, cfg->cert_pem) || !one_of(cfg->key_file, cfg->key_pem))
        return API_ERR_INVALID_ARG;
    if (cfg->server_name != NULL && cfg->server_name[0] == '\0')
        return API_ERR_INVALID_ARG;
    return 0;
}

/* Adds every certificate of |pem| to the trust store; at least one. */
static int
load_ca_pem(SSL_CTX *ctx, const char *pem)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = NULL;
    size_t n = 0;
    int r = API_ERR_CONFIG;

    if (bio == NULL) {
        r = API_ERR_NO_MEMORY;
        goto out;
    }
    while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) != 1)
            goto out;
        X509_free(x);
        x = NULL;
        n++;
    }
    /* The loop ends at the first thing that is not a certificate; that must
     * be the end of the text. */
    if (n > 0 && ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE)
        r = 0;
out:
    X509_free(x);
    BIO_free(bio);
    return r;
}

/* The first certificate of |pem| is ours; any after it are intermediates sent
 * with it. */
static int
load_cert_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = NULL;
    int r = API_ERR_CONFIG;

    if (bio == NULL) {
        r = API_ERR_NO_MEMORY;
        goto out;
    }
    x = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL);
    if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1)
        goto out;
    X509_free(x);
    while ((x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1)
            goto out;
        x = NULL; /* owned by ctx now */
    }
    if (ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE)
        r = 0;
out:
    X509_free(x);
    BIO_free(bio);
    return r;
}

static int
load_key_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *key = NULL;
    int r = API_ERR_CONFIG;

    if (bio == NULL) {
        r = API_ERR_NO_MEMORY;
        goto out;
    }
    key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (key != NULL && SSL_CTX_use_PrivateKey(ctx, key) == 1)
        r = 0;
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    return r;
}

/* The TLS context: TLS 1.3 only, the server verified against the configured
 * CA alone (never the system store: only the vault's CA may vouch for it),
 * our certificate and its key. */
static int
tls_ctx_new(struct api_client *c, const struct api_client_config *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int r = API_ERR_NO_MEMORY;

    ERR_clear_error();
    if (ctx == NULL)
        goto out;
    r = API_ERR_CONFIG;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    /* Partial writes let a non-blocking send make progress record by record;
     * the writer may move its buffer between retries. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

    if (cfg->ca_file != NULL)
        r = SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) == 1 ? 0 : API_ERR_CONFIG;
    else
        r = load_ca_pem(ctx, cfg->ca_pem);
    if (r < 0)
        goto out;
    if (cfg->cert_file != NULL)
        r = SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) == 1 ? 0 : API_ERR_CONFIG;
    else
        r = load_cert_pem(ctx, cfg->cert_pem);
    if (r < 0)
        goto out;
    if (cfg->key_file != NULL)
        r = SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) == 1
                ? 0
                : API_ERR_CONFIG;
    else
        r = load_key_pem(ctx, cfg->key_pem);
    if (r < 0)
        goto out;
    /* A key for another certificate would only fail at the handshake, where
     * it looks like the server's fault. */
    if (SSL_CTX_check_private_key(ctx) != 1) {
        r = API_ERR_CONFIG;
        goto out;
    }
    c->ctx = ctx;
    ctx = NULL;
    r = 0;
out:
    if (r < 0)
        c->detail = ERR_peek_last_error();
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return r;
}

static int
str_copy(char **out, const char *s)
{
    char *copy;

    if (s == NULL)
        return 0;
    copy = strdup(s);
    if (copy == NULL)
        return API_ERR_NO_MEMORY;
    *out = copy;
    return 0;
}

int
api_client_new(struct api_client **out, const struct api_client_config *cfg)
{
    struct api_client *c = NULL;
    int r;

    if (out == NULL || cfg == NULL) {
        r = API_ERR_INVALID_ARG;
        goto out;
    }
    r = config_check(cfg);
    if (r < 0)
        goto out;
    r = API_ERR_NO_MEMORY;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto out;
    c->fd = -1;
    c->next_id = 1;
    api_writer_init(&c->out, CLIENT_OUT_MAX);
    c->port = cfg->port;
    c->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms
                                                    : API_CLIENT_CONNECT_TIMEOUT_MS;
    c->handshake_timeout_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms
                                                        : API_CLIENT_HANDSHAKE_TIMEOUT_MS;
    c->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms
                                                    : API_CLIENT_REQUEST_TIMEOUT_MS;
    c->max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : API_CLIENT_IN_FLIGHT_DEFAULT;
    if (str_copy(&c->host, cfg->host) < 0 || str_copy(&c->unix_path, cfg->unix_path) < 0 ||
        str_copy(&c->server_name, cfg->server_name != NULL ? cfg->server_name : cfg->host) < 0)
        goto out;
    c->in = malloc(CLIENT_IN_CAP);
    c->flight = calloc(c->max_in_flight, sizeof(*c->flight));
    c->ready = calloc(c->max_in_flight, sizeof(*c->ready));
    if (c->in == NULL || c->flight == NULL || c->ready == NULL)
        goto out;
    /* The TLS fields are ignored for the Unix socket: access there is by
     * file permission, and a shared config may carry both. */
    if (c->host != NULL) {
        r = bio_method_new(&c->bio_method);
        if (r < 0)
            goto out;
        r = tls_ctx_new(c, cfg);
        if (r < 0)
            goto out;
    }
    *out = c;
    c = NULL;
    r = 0;
out:
    api_client_free(c);
    return r;
}

/* ---- the connection ----------------------------------------------------------------- */

/* Closes the connection. |graceful|: it is healthy, so the server is told with
 * close_notify (never after a TLS or I/O error, where OpenSSL forbids
 * SSL_shutdown). Requests in flight are forgotten; replies already queued stay
 * for collect, because their outcome is known. */
static void
conn_close(struct api_client *c, bool graceful)
{
    if (c->ssl != NULL) {
        if (graceful && SSL_is_init_finished(c->ssl)) {
            ERR_clear_error();
            /* One non-blocking attempt: a close must not wait on the peer. */
            (void)SSL_shutdown(c->ssl);
        }
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    api_writer_reset(&c->out);
    c->out_sent = 0;
    if (c->in != NULL)
        OPENSSL_cleanse(c->in, c->in_len);
    c->in_len = 0;
    c->num_flight = 0;
    ERR_clear_error();
}

/* Waits for a non-blocking connect on |fd| to finish. */
static int
connect_wait(struct api_client *c, int fd, int64_t deadline)
{
    int err = 0, r;
    socklen_t len = sizeof(err);

    r = wait_fd(c, fd, POLLOUT, deadline);
    if (r < 0)
        return r == API_ERR_TIMEOUT ? r : API_ERR_CONNECT;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        c->detail = (unsigned long)err;
        return API_ERR_CONNECT;
    }
    return 0;
}

/* Connects to each address of the host in turn, within one deadline.
 * getaddrinfo itself cannot be bounded: it blocks as the resolver does. */
static int
open_tcp(struct api_client *c, int *out, int64_t deadline)
{
    struct addrinfo hints, *res = NULL;
    char port[CLIENT_PORT_TEXT];
    int r = API_ERR_CONNECT, fd = -1, gai;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%u", (unsigned)c->port);
    gai = getaddrinfo(c->host, port, &hints, &res);
    if (gai != 0) {
        c->detail = (unsigned long)(unsigned)gai;
        goto out;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1, cr = -1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            c->detail = (unsigned long)errno;
            continue;
        }
        /* Frames are small and each waits for its answer: no Nagle delay.
         * A non-blocking connect either succeeds now or is in progress. */
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
            ((cr = connect(fd, ai->ai_addr, ai->ai_addrlen)) < 0 && errno != EINPROGRESS)) {
            c->detail = (unsigned long)errno;
            r = API_ERR_CONNECT;
        } else {
            r = cr == 0 ? 0 : connect_wait(c, fd, deadline);
        }
        if (r == 0)
            break;
        close(fd);
        fd = -1;
        if (r == API_ERR_TIMEOUT)
            break;
    }
    if (r == 0) {
        *out = fd;
        fd = -1;
    }
out:
    if (res != NULL)
        freeaddrinfo(res);
    if (fd >= 0)
        close(fd);
    return r;
}

static int
open_unix(struct api_client *c, int *out, int64_t deadline)
{
    struct sockaddr_un sun;
    int fd, r = API_ERR_CONNECT;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    /* Length checked by api_client_new. */
    memcpy(sun.sun_path, c->unix_path, strlen(c->unix_path));
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->detail = (unsigned long)errno;
        return API_ERR_CONNECT;
    }
    for (;;) {
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
            r = 0;
            break;
        }
        if (errno == EINPROGRESS) {
            r = connect_wait(c, fd, deadline);
            break;
        }
        if (errno != EAGAIN && errno != EINTR) {
            c->detail = (unsigned long)errno;
            break;
        }
        if (now_ms() + CLIENT_UNIX_RETRY_MS > deadline) {
            r = API_ERR_TIMEOUT;
            break;
        }
        (void)poll(NULL, 0, CLIENT_UNIX_RETRY_MS);
    }
    if (r < 0) {
        close(fd);
        return r;
    }
    *out = fd;
    return 0;
}

static bool
is_ip_literal(const char *name)
{
    struct in6_addr a6;
    struct in_addr a4;

    return inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
}

/* A TLS session over |fd| that checks the server's name: a DNS name is sent
 * as SNI and matched against the certificate's DNS names; an IP literal is
 * never sent as SNI (RFC 6066) and must be in the certificate's IP names. */
static int
tls_session_new(struct api_client *c, int fd, SSL **out)
{
    X509_VERIFY_PARAM *param;
    SSL *ssl = SSL_new(c->ctx);
    BIO *bio = NULL;
    int r = API_ERR_NO_MEMORY;

    if (ssl == NULL)
        goto out;
    bio = BIO_new(c->bio_method);
    if (bio == NULL)
        goto out;
    BIO_set_data(bio, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, bio, bio); /* ssl owns bio */
    r = API_ERR_TLS;
    param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip_literal(c->server_name)) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, c->server_name) != 1)
            goto out;
    } else if (SSL_set_tlsext_host_name(ssl, c->server_name) != 1 ||
               SSL_set1_host(ssl, c->server_name) != 1) {
        goto out;
    }
    *out = ssl;
    ssl = NULL;
    r = 0;
out:
    SSL_free(ssl);
    return r;
}

/* Every failure but the deadline is API_ERR_TLS: the peer refused us, we
 * refused its certificate, or it closed mid-handshake. */
static int
tls_handshake(struct api_client *c, SSL *ssl, int fd, int64_t deadline)
{
    for (;;) {
        short events;
        int n, e, r;

        ERR_clear_error();
        n = SSL_connect(ssl);
        if (n == 1)
            return 0;
        e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            events = POLLIN;
        } else if (e == SSL_ERROR_WANT_WRITE) {
            events = POLLOUT;
        } else {
            c->detail = SSL_get_verify_result(ssl) != X509_V_OK
                            ? (unsigned long)SSL_get_verify_result(ssl)
                            : ERR_peek_last_error();
            return API_ERR_TLS;
        }
        r = wait_fd(c, fd, events, deadline);
        if (r < 0)
            return r == API_ERR_TIMEOUT ? r : API_ERR_TLS;
    }
}

static int
conn_open(struct api_client *c)
{
    int64_t deadline = now_ms() + c->connect_timeout_ms;
    SSL *ssl = NULL;
    int fd = -1, r;

    r = c->unix_path != NULL ? open_unix(c, &fd, deadline) : open_tcp(c, &fd, deadline);
    if (r < 0)
        goto out;
    if (c->ctx != NULL) {
        r = tls_session_new(c, fd, &ssl);
        if (r == 0)
            r = tls_handshake(c, ssl, fd, now_ms() + c->handshake_timeout_ms);
        if (r < 0)
            goto out;
    }
    c->fd = fd;
    c->ssl = ssl;
    fd = -1;
    ssl = NULL;
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    ERR_clear_error();
    return r;
}

/* Maps a failed SSL_read/SSL_write. WANT_* become the poll events to wait for
 * (return 0); a peer's close, with or without close_notify, is
 * API_ERR_CONNECTION; anything the TLS layer refused (an alert, a bad record)
 * is API_ERR_TLS. */
static int
tls_error(struct api_client *c, int ret, short *events)
{
    int e = SSL_get_error(c->ssl, ret);
    unsigned long code = ERR_peek_last_error();

    switch (e) {
    case SSL_ERROR_WANT_READ:
        *events |= POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *events |= POLLOUT;
        return 0;
    case SSL_ERROR_SSL:
        c->detail = code;
        ERR_clear_error();
        return ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING ? API_ERR_CONNECTION
                                                                          : API_ERR_TLS;
    default: /* ZERO_RETURN (close_notify), SYSCALL (reset, EOF) */
        c->detail = e == SSL_ERROR_SYSCALL ? (unsigned long)errno : (unsigned long)e;
        ERR_clear_error();
        return API_ERR_CONNECTION;
    }
}

/* Reads what is there into |buf|. Returns 0 with *out_n > 0, or with
 * *out_n == 0 and the events to wait for or'ed into *events; or
 * API_ERR_CONNECTION (closed, reset) or API_ERR_TLS. */
static int
conn_read(struct api_client *c, uint8_t *buf, size_t len, size_t *out_n, short *events)
{
    ssize_t n;

    *out_n = 0;
    if (c->ssl != NULL) {
        size_t got = 0;

        ERR_clear_error();
        if (SSL_read_ex(c->ssl, buf, len, &got) == 1) {
            *out_n = got;
            return 0;
        }
        return tls_error(c, 0, events);
    }
    do
        n = recv(c->fd, buf, len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        *out_n = (size_t)n;
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        *events |= POLLIN;
        return 0;
    }
    c->detail = n == 0 ? 0 : (unsigned long)errno;
    return API_ERR_CONNECTION;
}

/* Writes what it can of |buf|; same returns as conn_read. */
static int
conn_write(struct api_client *c, const uint8_t *buf, size_t len, size_t *out_n, short *events)
{
    ssize_t n;

    *out_n = 0;
    if (c->ssl != NULL) {
        size_t put = 0;
        uint8_t scratch[1];
        size_t got = 0;
        int r;

        ERR_clear_error();
        if (SSL_write_ex(c->ssl, buf, len, &put) == 1) {
            *out_n = put;
            return 0;
        }
        r = tls_error(c, 0, events);
        /* In TLS 1.3 the server checks our certificate after our handshake
         * has finished, so its refusal arrives as an alert, possibly followed
         * by a reset that fails this write first. The alert is the real
         * cause: look for it. */
        if (r == API_ERR_CONNECTION) {
            ERR_clear_error();
            if (SSL_read_ex(c->ssl, scratch, sizeof(scratch), &got) != 1 &&
                SSL_get_error(c->ssl, 0) == SSL_ERROR_SSL &&
                ERR_GET_REASON(ERR_peek_last_error()) != SSL_R_UNEXPECTED_EOF_WHILE_READING)
                r = API_ERR_TLS;
            ERR_clear_error();
        }
        return r;
    }
    do
        n = send(c->fd, buf, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0) {
        *out_n = (size_t)n;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *events |= POLLOUT;
        return 0;
    }
    c->detail = (unsigned long)errno;
    return API_ERR_CONNECTION;
}

/* Whether an idle connection (nothing in flight) is still open. A readable
 * socket is not proof of a close: a TLS 1.3 server sends session tickets
 * after the handshake, which a read consumes without yielding data. Data
 * while idle answers no request, so such a connection is not trusted
 * either; the request about to be sent goes on a fresh one. */
static bool
conn_idle_open(struct api_client *c)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    short events = 0;
    size_t n = 0;
    int r;

    if (c->in_len > 0)
        return false;
    if (c->ssl == NULL || !SSL_has_pending(c->ssl)) {
        do
            r = poll(&p, 1, 0);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            return true;
        if (r < 0)
            return false;
    }
    r = conn_read(c, c->in, CLIENT_IN_CAP, &n, &events);
    c->in_len = n; /* wiped by the close */
    return r == 0 && n == 0;
}

/* Connects unless connected; an idle connection the server has closed is
 * replaced first, so its close never costs a request. */
static int
conn_ensure(struct api_client *c)
{
    if (c->fd >= 0 && c->num_flight == 0 && !conn_idle_open(c))
        conn_close(c, false);
    if (c->fd >= 0)
        return 0;
    return conn_open(c);
}

int
api_client_connect(struct api_client *c)
{
    if (c == NULL)
        return API_ERR_INVALID_ARG;
    return conn_ensure(c);
}

void
api_client_close(struct api_client *c)
{
    if (c == NULL)
        return;
    conn_close(c, true);
    while (c->num_ready > 0) {
        api_reply_cleanup(&c->ready[c->ready_head]);
        c->ready_head = (c->ready_head + 1) % c->max_in_flight;
        c->num_ready--;
    }
    c->ready_head = 0;
}

void
api_client_free(struct api_client *c)
{
    if (c == NULL)
        return;
    if (c->ready != NULL)
        api_client_close(c);
    else
        conn_close(c, true);
    SSL_CTX_free(c->ctx);
    BIO_meth_free(c->bio_method);
    api_writer_cleanup(&c->out);
    free(c->in);
    free(c->flight);
    free(c->ready);
    free(c->host);
    free(c->unix_path);
    free(c->server_name);
    free(c);
}

/* ---- in flight and ready ------------------------------------------------------------ */

/* Index of request |id| in the flight table, or num_flight. */
static size_t
flight_find(const struct api_client *c, uint64_t id)
{
    size_t lo = 0, hi = c->num_flight;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (c->flight[mid].id == id)
            return mid;
        if (c->flight[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c->num_flight;
}

/* Takes one whole frame (the bytes after its length prefix): it must decode
 * as a response and answer a request in flight with that request's opcode;
 * anything else means the stream cannot be trusted (API_ERR_PROTOCOL). */
static int
accept_frame(struct api_client *c, const uint8_t *data, size_t len)
{
    struct api_frame f;
    struct api_reply *reply;
    size_t i;
    int r;

    r = api_frame_decode(&f, data, len, API_DIR_RESPONSE, NULL);
    if (r < 0) {
        r = r == API_ERR_NO_MEMORY ? r : API_ERR_PROTOCOL;
        goto out;
    }
    i = flight_find(c, f.hdr.request_id);
    if (i == c->num_flight || c->flight[i].opcode != f.hdr.opcode) {
        r = API_ERR_PROTOCOL;
        goto out;
    }
    memmove(&c->flight[i], &c->flight[i + 1], (c->num_flight - i - 1) * sizeof(c->flight[0]));
    c->num_flight--;
    reply = &c->ready[(c->ready_head + c->num_ready) % c->max_in_flight];
    memset(reply, 0, sizeof(*reply));
    reply->request_id = f.hdr.request_id;
    reply->opcode = f.hdr.opcode;
    reply->status = -(int)f.hdr.status;
    if (f.hdr.status == API_STATUS_OK) {
        /* Response schemas have no BLOB field (tested), so the message does
         * not borrow from |in|, which is wiped next. */
        reply->schema = f.schema;
        reply->msg = f.msg;
        f.msg = NULL;
    } else {
        memcpy(&reply->error, f.msg, sizeof(reply->error));
    }
    c->num_ready++;
out:
    api_frame_cleanup(&f);
    return r;
}

/* Moves every whole frame in |in| to the ready queue, wiping its bytes, and
 * keeps the partial frame that follows. A length prefix is checked as soon as
 * its 4 bytes are in, so |in| never holds more than one largest frame. */
static int
inbound_drain(struct api_client *c)
{
    size_t off = 0;
    int r = 0;

    while (c->in_len - off >= API_LEN_PREFIX) {
        uint32_t flen;

        if (api_frame_length(c->in + off, &flen) < 0) {
            r = API_ERR_PROTOCOL;
            break;
        }
        if (c->in_len - off - API_LEN_PREFIX < flen)
            break;
        r = accept_frame(c, c->in + off + API_LEN_PREFIX, flen);
        OPENSSL_cleanse(c->in + off, API_LEN_PREFIX + flen);
        off += API_LEN_PREFIX + flen;
        if (r < 0)
            break;
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        OPENSSL_cleanse(c->in + c->in_len - off, off);
        c->in_len -= off;
    }
    return r;
}

enum client_goal {
    GOAL_SENT,  /* everything in |out| is sent */
    GOAL_REPLY, /* a reply is in the ready queue */
};

/* Runs the connection (send, receive, wait) until |goal| holds. On any
 * failure the connection is closed: after a timeout, a lost frame or a
 * refused one, the stream's position is unknown. */
static int
conn_pump(struct api_client *c, enum client_goal goal, int64_t deadline)
{
    int r;

    for (;;) {
        size_t pending = api_writer_len(&c->out) - c->out_sent, n = 0;
        short events = 0;
        bool progress = false;

        r = inbound_drain(c);
        if (r < 0)
            goto out;
        /* Collect sends what is buffered before it returns a reply. */
        if (pending == 0 && (goal == GOAL_SENT || c->num_ready > 0))
            goto out;
        if (pending > 0) {
            r = conn_write(c, api_writer_data(&c->out) + c->out_sent, pending, &n, &events);
            if (r < 0)
                goto out;
            c->out_sent += n;
            progress = n > 0;
            if (c->out_sent == api_writer_len(&c->out)) {
                /* Sent requests carry PANs: wipe them now, not at reuse. */
                api_writer_reset(&c->out);
                c->out_sent = 0;
                if (goal == GOAL_SENT)
                    goto out;
            }
        }
        /* A partial frame is shorter than the largest, so there is room. */
        if (c->in_len < CLIENT_IN_CAP) {
            r = conn_read(c, c->in + c->in_len, CLIENT_IN_CAP - c->in_len, &n, &events);
            if (r < 0)
                goto out;
            c->in_len += n;
            progress = progress || n > 0;
        }
        if (!progress) {
            r = wait_fd(c, c->fd, events, deadline);
            if (r < 0)
                goto out;
        }
    }
out:
    if (r < 0)
        conn_close(c, false);
    return r;
}

/* ---- calls ---------------------------------------------------------------------------- */

/* Encodes one request into |out| and records it in flight. The connection is
 * made (or remade, if the server closed it while idle) first. */
static int
client_queue(struct api_client *c, uint16_t opcode, const void *req, uint64_t *out_id)
{
    struct api_header h;
    int r;

    if (c->num_flight == 0) {
        r = conn_ensure(c);
        if (r < 0)
            return r;
    }
    memset(&h, 0, sizeof(h));
    h.version = API_VERSION;
    h.opcode = opcode;
    h.request_id = c->next_id;
    r = api_frame_write(&c->out, &h, api_schema_request(opcode), req, NULL);
    if (r < 0)
        return r == API_ERR_NO_MEMORY ? r : API_ERR_INVALID_ARG; /* the encoder refused a value */
    c->flight[c->num_flight].id = h.request_id;
    c->flight[c->num_flight].opcode = opcode;
    c->num_flight++;
    c->next_id++;
    *out_id = h.request_id;
    return 0;
}

/* Sends what is buffered, waits for the next reply and moves it to *out. If
 * the connection fails, replies already queued stay for the next collect. */
static int
client_next_reply(struct api_client *c, struct api_reply *out)
{
    int r = 0;

    if (c->num_ready == 0 || api_writer_len(&c->out) > 0)
        r = conn_pump(c, GOAL_REPLY, now_ms() + c->request_timeout_ms);
    if (r < 0)
        return r;
    *out = c->ready[c->ready_head];
    memset(&c->ready[c->ready_head], 0, sizeof(*out));
    c->ready_head = (c->ready_head + 1) % c->max_in_flight;
    c->num_ready--;
    return 0;
}

int
api_client_call(struct api_client *c, uint16_t opcode, const void *req, void *resp,
                struct api_error_resp *err)
{
    const struct api_schema *s = api_schema_response(opcode);
    struct api_reply reply;
    uint64_t id;
    int r;

    memset(&reply, 0, sizeof(reply));
    if (c == NULL || req == NULL || resp == NULL || s == NULL) {
        r = API_ERR_INVALID_ARG;
        goto out;
    }
    memset(resp, 0, s->size);
    if (err != NULL)
        memset(err, 0, sizeof(*err));
    if (api_client_in_flight(c) > 0) {
        r = API_ERR_BUSY;
        goto out;
    }
    r = client_queue(c, opcode, req, &id);
    if (r < 0)
        goto out;
    r = client_next_reply(c, &reply);
    if (r < 0)
        goto out;
    if (reply.status == 0) {
        /* The caller's struct takes over the decoded lists. */
        memcpy(resp, reply.msg, s->size);
        OPENSSL_cleanse(reply.msg, s->size);
        free(reply.msg);
        reply.msg = NULL;
    } else if (err != NULL) {
        *err = reply.error;
    }
    r = reply.status;
out:
    api_reply_cleanup(&reply);
    return r;
}

/* One typed call per row of API_MSG_LIST. The return type cannot sit on its
 * own line inside a macro; grep for the lower name instead. */
#define CLIENT__CALL_DEF(op, lower, req_t, resp_t)                                      \
    int api_call_##lower(struct api_client *c, const struct req_t *req,               \
                         struct resp_t *resp, struct api_error_resp *err)             \
    {                                                                                 \
        return api_client_call(c, API_OP_##op, req, resp, err);                       \
    }
API_MSG_LIST(CLIENT__CALL_DEF)
#undef CLIENT__CALL_DEF

int
api_client_submit(struct api_client *c, uint16_t opcode, const void *req, uint64_t *out_id)
{
    uint64_t id;
    int r;

    if (c == NULL || req == NULL || out_id == NULL || api_schema_request(opcode) == NULL)
        return API_ERR_INVALID_ARG;
    if (api_client_in_flight(c) >= c->max_in_flight)
        return API_ERR_BUSY;
    r = client_queue(c, opcode, req, &id);
    if (r < 0)
        return r;
    if (api_writer_len(&c->out) >= CLIENT_SEND_BATCH) {
        r = conn_pump(c, GOAL_SENT, now_ms() + c->request_timeout_ms);
        if (r < 0)
            return r;
    }
    *out_id = id;
    return 0;
}

int
api_client_collect(struct api_client *c, struct api_reply *out)
{
    struct api_reply reply;
    int r;

    if (c == NULL || out == NULL || api_client_in_flight(c) == 0)
        return API_ERR_INVALID_ARG;
    r = client_next_reply(c, &reply);
    if (r < 0)
        return r;
    *out = reply;
    return 0;
}

size_t
api_client_in_flight(const struct api_client *c)
{
    return c == NULL ? 0 : c->num_flight + c->num_ready;
}

void
api_reply_cleanup(struct api_reply *r)
{
    if (r == NULL)
        return;
    if (r->msg != NULL) {
        api_msg_cleanup(r->schema, r->msg);
        free(r->msg);
    }
    OPENSSL_cleanse(r, sizeof(*r));
}
