/* test_server.c - the in-test tokenvault server; see test_server.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tests/support/sample.h"
#include "tests/support/test_server.h"

/* A stuck peer (a half-sent record, a client that never finishes its
 * handshake) holds the thread at most this long. */
#define SERVER_IO_TIMEOUT_S 5
/* One length prefix and the largest frame: a partial frame always fits. */
#define SERVER_IN_CAP (API_LEN_PREFIX + API_FRAME_MAX)
/* Most whole frames one buffer can hold: each is at least a prefix and a header. */
#define SERVER_BATCH_MAX (SERVER_IN_CAP / (API_LEN_PREFIX + API_HEADER_LEN) + 1)
/* Replies to one batch; generous, the sample replies are small. */
#define SERVER_OUT_MAX (64u * 1024u * 1024u)
#define SERVER_BACKLOG 16

struct tv_test_server {
    SSL_CTX *ctx; /* NULL for the Unix socket */
    int lfd;
    int wake[2]; /* written by stop; the thread polls it with every socket */
    uint16_t port;
    char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    tv_test_handler handler;
    void *hctx;
    int reverse;
    pthread_t thread;
    bool started;
};

/* Waits until |fd| is readable; false when the server is stopping. */
static bool
wait_readable(struct tv_test_server *s, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->wake[0], .events = POLLIN}};

    for (;;) {
        int n = poll(p, 2, -1);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[1].revents & POLLIN))
            return false;
        return true;
    }
}

static int
send_all(SSL *ssl, int fd, const uint8_t *data, size_t len)
{
    while (len > 0) {
        size_t n = 0;

        if (ssl != NULL) {
            if (SSL_write_ex(ssl, data, len, &n) != 1)
                return -1;
        } else {
            ssize_t w = send(fd, data, len, MSG_NOSIGNAL);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
            n = (size_t)w;
        }
        data += n;
        len -= n;
    }
    return 0;
}

/* Decodes one request and lets the handler answer it; a request that does
 * not decode gets the decoder's error, as tokenvaultd answers it. */
static int
handle_frame(struct tv_test_server *s, const uint8_t *data, size_t len, struct api_writer *out)
{
    struct api_field_error fe;
    struct api_frame f;
    int r;

    r = api_frame_decode(&f, data, len, API_DIR_REQUEST, &fe);
    if (r < 0)
        return api_frame_write_error(out, &f.hdr, fe.status != 0 ? fe.status : API_STATUS_INTERNAL,
                                     fe.tag, fe.message) < 0
                   ? -1
                   : 0;
    r = s->handler(s->hctx, &f, out);
    api_frame_cleanup(&f);
    return r;
}

static void
serve_conn(struct tv_test_server *s, int fd)
{
    struct timeval tv = {.tv_sec = SERVER_IO_TIMEOUT_S};
    size_t *offs = calloc(SERVER_BATCH_MAX, sizeof(*offs));
    size_t *lens = calloc(SERVER_BATCH_MAX, sizeof(*lens));
    uint8_t *in = malloc(SERVER_IN_CAP);
    struct api_writer out;
    size_t in_len = 0;
    bool healthy = false;
    SSL *ssl = NULL;

    api_writer_init(&out, SERVER_OUT_MAX);
    if (offs == NULL || lens == NULL || in == NULL)
        goto out;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        goto out;
    if (s->ctx != NULL) {
        ssl = SSL_new(s->ctx);
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1)
            goto out;
    }
    healthy = true;
    for (;;) {
        size_t n = 0, pos = 0, count = 0;
        bool closing = false;

        if ((ssl == NULL || !SSL_has_pending(ssl)) && !wait_readable(s, fd))
            break;
        if (ssl != NULL) {
            if (SSL_read_ex(ssl, in + in_len, SERVER_IN_CAP - in_len, &n) != 1) {
                healthy = SSL_get_error(ssl, 0) == SSL_ERROR_ZERO_RETURN;
                break;
            }
        } else {
            ssize_t got = recv(fd, in + in_len, SERVER_IN_CAP - in_len, 0);

            if (got <= 0)
                break;
            n = (size_t)got;
        }
        in_len += n;
        /* The whole frames of this read are one batch. */
        while (in_len - pos >= API_LEN_PREFIX) {
            uint32_t flen;

            if (api_frame_length(in + pos, &flen) < 0) {
                closing = true;
                break;
            }
            if (in_len - pos - API_LEN_PREFIX < flen)
                break;
            offs[count] = pos + API_LEN_PREFIX;
            lens[count] = flen;
            count++;
            pos += API_LEN_PREFIX + flen;
        }
        for (size_t k = 0; k < count && !closing; k++) {
            size_t i = s->reverse ? count - 1 - k : k;

            if (handle_frame(s, in + offs[i], lens[i], &out) < 0)
                closing = true;
        }
        if (send_all(ssl, fd, api_writer_data(&out), api_writer_len(&out)) < 0) {
            healthy = false;
            break;
        }
        api_writer_reset(&out);
        OPENSSL_cleanse(in, pos);
        memmove(in, in + pos, in_len - pos);
        in_len -= pos;
        if (closing)
            break;
    }
out:
    if (ssl != NULL) {
        if (healthy)
            (void)SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    ERR_clear_error();
    api_writer_cleanup(&out);
    if (in != NULL)
        OPENSSL_clear_free(in, SERVER_IN_CAP);
    free(offs);
    free(lens);
}

static void *
server_main(void *arg)
{
    struct tv_test_server *s = arg;
    sigset_t pipe;

    /* A reply to a client that has gone raises SIGPIPE in the thread that
     * wrote it: keep it pending here, so the test process (whose client must
     * never raise it) keeps the default action. */
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    while (wait_readable(s, s->lfd)) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0)
            continue;
        serve_conn(s, fd);
        close(fd);
    }
    return NULL;
}

static int
server_ctx(SSL_CTX **out, const char *dir)
{
    char ca[512], cert[512], key[512];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int r = -1;

    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(cert, sizeof(cert), "%s/server.pem", dir);
    snprintf(key, sizeof(key), "%s/server.key", dir);
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        goto out;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    *out = ctx;
    ctx = NULL;
    r = 0;
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return r;
}

static int
listen_tcp(struct tv_test_server *s)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(s->lfd, SERVER_BACKLOG) < 0 ||
        getsockname(s->lfd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    s->port = ntohs(sin.sin_port);
    return 0;
}

static int
listen_unix(struct tv_test_server *s, const char *path)
{
    struct sockaddr_un sun;

    if (strlen(path) >= sizeof(sun.sun_path))
        return -1;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, strlen(path));
    unlink(path);
    s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
        return -1;
    memcpy(s->unix_path, path, strlen(path) + 1);
    return listen(s->lfd, SERVER_BACKLOG);
}

int
tv_test_server_start(struct tv_test_server **out, const struct tv_test_server_config *cfg)
{
    struct tv_test_server *s = calloc(1, sizeof(*s));
    int r = -1;

    if (s == NULL)
        return -1;
    s->lfd = -1;
    s->wake[0] = s->wake[1] = -1;
    s->handler = cfg->handler != NULL ? cfg->handler : tv_test_handler_sample;
    s->hctx = cfg->ctx;
    s->reverse = cfg->reverse_batches;
    if (cfg->unix_path != NULL)
        r = listen_unix(s, cfg->unix_path);
    else if (server_ctx(&s->ctx, cfg->dir) == 0)
        r = listen_tcp(s);
    if (r == 0)
        r = pipe2(s->wake, O_CLOEXEC);
    if (r == 0)
        r = pthread_create(&s->thread, NULL, server_main, s) == 0 ? 0 : -1;
    if (r < 0) {
        tv_test_server_stop(s);
        return -1;
    }
    s->started = true;
    *out = s;
    return 0;
}

uint16_t
tv_test_server_port(const struct tv_test_server *s)
{
    return s->port;
}

void
tv_test_server_stop(struct tv_test_server *s)
{
    if (s == NULL)
        return;
    if (s->started) {
        if (write(s->wake[1], "x", 1) != 1)
            abort(); /* the thread would never stop */
        pthread_join(s->thread, NULL);
    }
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    if (s->unix_path[0] != '\0')
        unlink(s->unix_path);
    SSL_CTX_free(s->ctx);
    free(s);
}

int
tv_test_handler_sample(void *ctx, const struct api_frame *req, struct api_writer *out)
{
    const struct api_schema *s = api_schema_response(req->hdr.opcode);
    struct api_header h = req->hdr;
    void *msg = malloc(s->size);
    int r = -1;

    if (msg == NULL)
        return -1;
    if (tv_sample_fill(s, msg, (unsigned)req->hdr.request_id, TV_SAMPLE_ALL) == 0) {
        h.version = API_VERSION;
        h.flags = API_FLAG_RESPONSE;
        h.status = API_STATUS_OK;
        r = api_frame_write(out, &h, s, msg, NULL) < 0 ? -1 : 0;
    }
    api_msg_cleanup(s, msg);
    free(msg);
    return r;
}

int
tv_test_certs(char *tmpl)
{
    char cmd[PATH_MAX + 64];

    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >/dev/null 2>&1", TV_MAKE_CERTS, tmpl);
    return system(cmd) == 0 ? 0 : -1;
}
