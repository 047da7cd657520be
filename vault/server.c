/*
 * server.c - the RPC server: libuv streams, TLS 1.3 through memory BIOs,
 * frames in, dispatch, answers out.
 *
 * Ownership: a connection is referenced by its two handles (stream, timer)
 * and by each request in flight; it is freed when the last reference goes,
 * which for the handles is their close callback. A request is owned by the
 * server from decode until its answer has been queued on the loop; the
 * dispatcher only borrows it.
 */
#include "vault/server.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/log.h"

/* Plaintext read from TLS per SSL_read. */
#define TLS_READ_CHUNK 16384u
/* A connection buffers at most one frame of input. */
#define CONN_IN_MAX (API_LEN_PREFIX + API_FRAME_MAX)
/* Room for an error response (header + fixed message + tag + retry). */
#define ERROR_FRAME_MAX 512u

enum timer_mode {
    TIMER_NONE,
    TIMER_HANDSHAKE,
    TIMER_FRAME,
    TIMER_IDLE,
    TIMER_WRITE,
};

struct conn;

struct req {
    struct vault_request pub; /* first: the dispatcher's view */
    struct vault_server *srv;
    struct conn *conn;
    uint8_t *bytes; /* the frame after its length prefix; BLOB fields point here */
    size_t bytes_len;
    struct api_writer out; /* the encoded answer */
    unsigned status;
    struct req *next_done;
    struct req *next, *prev; /* the connection's requests in flight */
};

struct conn {
    struct vault_server *srv;
    union {
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer;
    enum timer_mode timer_mode;
    bool officer;
    SSL *ssl;
    BIO *rbio, *wbio;
    bool ready;   /* handshake done and client known (always, on the officer socket) */
    bool closing; /* uv_close called */
    bool reading;
    bool close_after_write;
    unsigned refs;
    unsigned in_flight;
    size_t write_pending;
    struct req *reqs;
    char client[API_ID_MAX + 1];
    char subject[VAULT_SUBJECT_MAX + 1];
    uint8_t fingerprint[32];
    size_t in_len;
    uint32_t frame_len; /* of the frame being read, once its prefix is in */
    uint8_t in[CONN_IN_MAX];
    struct conn *next, *prev;
};

struct write_req {
    uv_write_t w;
    struct conn *conn;
    size_t len;
    uint8_t data[];
};

struct vault_server {
    uv_loop_t *loop;
    const struct vault_config *cfg;
    vault_dispatch_fn dispatch;
    void *ctx;
    struct vault_metrics *metrics;
    SSL_CTX *ssl_ctx;
    uv_tcp_t tcp;
    uv_pipe_t officer;
    bool tcp_open, officer_open;
    char officer_path[sizeof(((struct vault_config *)0)->officer_socket)];
    uv_async_t async;
    bool async_open;
    pthread_mutex_t mu;
    struct req *done_head, *done_tail;
    struct conn *conns;
    unsigned num_conns, in_flight;
    unsigned handles; /* listener and async handles not yet closed */
    bool draining, closing;
    void (*drained)(void *ctx);
    void *drained_ctx;
    uint16_t port;
};

static void conn_close(struct conn *c);
static void conn_timer_update(struct conn *c);
static void check_drained(struct vault_server *s);
static void server_maybe_free(struct vault_server *s);
static void conn_resume(struct conn *c);

/* ---- requests ----------------------------------------------------------------- */

static void
req_free(struct req *r)
{
    if (r == NULL)
        return;
    api_frame_cleanup(&r->pub.frame);
    api_writer_cleanup(&r->out);
    if (r->bytes != NULL) {
        OPENSSL_cleanse(r->bytes, r->bytes_len); /* may hold a PAN */
        free(r->bytes);
    }
    OPENSSL_cleanse(r, sizeof(*r));
    free(r);
}

static void
log_request(const struct req *r, const struct conn *c)
{
    const struct api_op_info *op = api_op_info(r->pub.frame.hdr.opcode);
    struct vlog_line l;
    enum vault_log_level level = r->status == API_STATUS_INTERNAL ? VAULT_LOG_ERROR : VAULT_LOG_INFO;

    if (!vlog_begin(&l, level, "request"))
        return;
    vlog_str(&l, "op", op != NULL ? op->lower : "unknown");
    vlog_str(&l, "status", api_status_name(r->status));
    vlog_u64(&l, "rid", r->pub.frame.hdr.request_id);
    vlog_str(&l, "client", c != NULL ? c->client : r->pub.client);
    if (r->pub.merchant != NULL)
        vlog_str(&l, "merchant", r->pub.merchant);
    vlog_ms(&l, "ms", metrics_now_ns() - r->pub.received_ns);
    vlog_end(&l);
}

/* Hands an encoded answer to the loop. Any thread. */
static void
req_complete(struct req *r)
{
    struct vault_server *s = r->srv;

    pthread_mutex_lock(&s->mu);
    r->next_done = NULL;
    if (s->done_tail != NULL)
        s->done_tail->next_done = r;
    else
        s->done_head = r;
    s->done_tail = r;
    pthread_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
}

static int
write_error_frame(struct api_writer *w, const struct api_header *req_hdr, unsigned status,
                  uint16_t tag, const char *message, uint32_t retry_after_ms)
{
    struct api_header h = {API_VERSION, API_FLAG_RESPONSE, req_hdr->opcode, (uint16_t)status,
                           req_hdr->request_id};
    struct api_error_resp e;
    struct api_field_error fe;
    size_t n = strlen(message);

    memset(&e, 0, sizeof(e));
    if (n > API_MESSAGE_MAX)
        n = API_MESSAGE_MAX;
    memcpy(e.message, message, n);
    e.has_error_tag = tag != 0;
    e.error_tag = tag;
    e.has_retry_after_ms = retry_after_ms != 0;
    e.retry_after_ms = retry_after_ms;
    return api_frame_write(w, &h, api_schema_error(), &e, &fe);
}

void
vault_request_reply(struct vault_request *pub, const void *msg)
{
    struct req *r = (struct req *)pub;
    struct api_header h = {API_VERSION, API_FLAG_RESPONSE, pub->frame.hdr.opcode, API_STATUS_OK,
                           pub->frame.hdr.request_id};
    struct api_field_error fe = {0};
    struct vlog_line l;

    r->status = API_STATUS_OK;
    if (api_frame_write(&r->out, &h, api_schema_response(h.opcode), msg, &fe) != 0) {
        if (vlog_begin(&l, VAULT_LOG_ERROR, "response_encode_failed")) {
            vlog_u64(&l, "tag", fe.tag);
            vlog_str(&l, "reason", fe.message != NULL ? fe.message : "");
            vlog_end(&l);
        }
        api_writer_reset(&r->out);
        r->status = API_STATUS_INTERNAL;
        (void)write_error_frame(&r->out, &pub->frame.hdr, API_STATUS_INTERNAL, 0,
                                "internal error; see the service log", 0);
    }
    req_complete(r);
}

void
vault_request_error(struct vault_request *pub, unsigned status, uint16_t tag, const char *message,
                    uint32_t retry_after_ms)
{
    struct req *r = (struct req *)pub;

    if (status == API_STATUS_OK || api_status_name(status) == NULL)
        status = API_STATUS_INTERNAL;
    r->status = status;
    if (write_error_frame(&r->out, &pub->frame.hdr, status, tag, message, retry_after_ms) != 0) {
        api_writer_reset(&r->out);
        r->status = API_STATUS_INTERNAL;
        (void)write_error_frame(&r->out, &pub->frame.hdr, API_STATUS_INTERNAL, 0, "internal error",
                                0);
    }
    req_complete(r);
}

/* ---- connections: lifetime -------------------------------------------------------- */

static void
conn_unref(struct conn *c)
{
    struct vault_server *s = c->srv;

    if (--c->refs > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->num_conns--;
    SSL_free(c->ssl); /* frees both BIOs */
    OPENSSL_cleanse(c->in, sizeof(c->in));
    free(c);
    check_drained(s);
    server_maybe_free(s);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static void
conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->h.stream, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void
conn_log(const struct conn *c, enum vault_log_level level, const char *event, const char *reason)
{
    struct vlog_line l;

    if (!vlog_begin(&l, level, event))
        return;
    if (c->client[0] != '\0')
        vlog_str(&l, "client", c->client);
    else if (c->subject[0] != '\0')
        vlog_str(&l, "subject", c->subject);
    if (reason != NULL)
        vlog_str(&l, "reason", reason);
    vlog_end(&l);
}

/* ---- connections: output ------------------------------------------------------------ */

static void
on_written(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct conn *c = wr->conn;

    c->write_pending -= wr->len;
    OPENSSL_cleanse(wr->data, wr->len);
    free(wr);
    if (status < 0 && !c->closing) {
        conn_close(c);
    } else if (!c->closing) {
        if (c->close_after_write && c->write_pending == 0) {
            conn_close(c);
        } else {
            conn_resume(c);
            c->timer_mode = TIMER_NONE; /* progress: restart the write/idle clock */
            conn_timer_update(c);
        }
    }
    check_drained(c->srv);
    conn_unref(c);
}

/* Queues |len| bytes on the stream. */
static int
stream_write(struct conn *c, const uint8_t *data, size_t len)
{
    struct write_req *wr;
    uv_buf_t b;

    if (len == 0)
        return 0;
    if ((wr = malloc(sizeof(*wr) + len)) == NULL)
        return -1;
    wr->conn = c;
    wr->len = len;
    memcpy(wr->data, data, len);
    b = uv_buf_init((char *)wr->data, (unsigned)len);
    if (uv_write(&wr->w, &c->h.stream, &b, 1, on_written) != 0) {
        OPENSSL_cleanse(wr->data, len);
        free(wr);
        return -1;
    }
    c->refs++;
    c->write_pending += len;
    return 0;
}

/* Sends what TLS has put in the write BIO. */
static int
flush_tls(struct conn *c)
{
    uint8_t buf[TLS_READ_CHUNK];
    int n;

    while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
        if (stream_write(c, buf, (size_t)n) != 0)
            return -1;
    return 0;
}

static void
conn_send(struct conn *c, const uint8_t *data, size_t len)
{
    int r = 0;

    if (c->closing)
        return;
    if (c->officer) {
        r = stream_write(c, data, len);
    } else {
        /* A memory BIO takes everything: SSL_write writes it all or fails. */
        if (SSL_write(c->ssl, data, (int)len) != (int)len)
            r = -1;
        if (r == 0)
            r = flush_tls(c);
    }
    if (r != 0) {
        conn_log(c, VAULT_LOG_WARN, "connection_write_failed", NULL);
        conn_close(c);
        return;
    }
    /* A peer that does not read its answers stops being read. */
    if (c->reading && c->write_pending > VAULT_CONN_WRITE_MAX) {
        uv_read_stop(&c->h.stream);
        c->reading = false;
    }
}

/* An answer the server makes itself, before or instead of dispatch. */
static void
answer_now(struct conn *c, const struct api_header *hdr, unsigned status, uint16_t tag,
           const char *message, uint32_t retry_after_ms, uint64_t received_ns)
{
    struct api_writer w;
    struct req log_r;

    api_writer_init(&w, ERROR_FRAME_MAX);
    if (write_error_frame(&w, hdr, status, tag, message, retry_after_ms) == 0)
        conn_send(c, api_writer_data(&w), api_writer_len(&w));
    api_writer_cleanup(&w);
    memset(&log_r, 0, sizeof(log_r));
    log_r.pub.frame.hdr = *hdr;
    log_r.pub.received_ns = received_ns;
    log_r.status = status;
    log_request(&log_r, c);
    metrics_request(c->srv->metrics, hdr->opcode, status, metrics_now_ns() - received_ns);
}

/* ---- connections: timers ------------------------------------------------------------- */

static void
on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    static const char *const why[] = {"", "handshake timeout", "frame timeout", "idle timeout",
                                      "peer not reading"};

    conn_log(c, c->timer_mode == TIMER_IDLE ? VAULT_LOG_DEBUG : VAULT_LOG_INFO, "connection_closed",
             why[c->timer_mode]);
    conn_close(c);
}

/* Chooses the one deadline that applies now. A mode that stays the same is
 * not restarted: bytes trickling into a frame do not extend its deadline. */
static void
conn_timer_update(struct conn *c)
{
    const struct vault_config *cfg = c->srv->cfg;
    enum timer_mode mode;
    uint64_t ms = 0;

    if (c->closing)
        return;
    if (!c->ready) {
        mode = TIMER_HANDSHAKE;
        ms = cfg->handshake_timeout_ms;
    } else if (c->write_pending > 0) {
        mode = TIMER_WRITE;
        ms = cfg->idle_timeout_ms;
    } else if (c->in_len > 0) {
        mode = TIMER_FRAME;
        ms = VAULT_FRAME_TIMEOUT_MS;
    } else if (c->in_flight == 0) {
        mode = TIMER_IDLE;
        ms = cfg->idle_timeout_ms;
    } else {
        mode = TIMER_NONE; /* the service is working on its requests */
    }
    if (mode == c->timer_mode)
        return;
    c->timer_mode = mode;
    if (mode == TIMER_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- connections: input ----------------------------------------------------------------- */

static struct req *
find_inflight(const struct conn *c, uint64_t id)
{
    for (struct req *r = c->reqs; r != NULL; r = r->next)
        if (r->pub.frame.hdr.request_id == id)
            return r;
    return NULL;
}

/* One whole frame: |data| is the frame after its length prefix. */
static void
handle_frame(struct conn *c, const uint8_t *data, size_t len)
{
    struct vault_server *s = c->srv;
    uint64_t now = metrics_now_ns();
    struct api_field_error fe = {0};
    const struct api_field *mf;
    struct req *r;
    int rc;

    if ((r = calloc(1, sizeof(*r))) == NULL || (r->bytes = malloc(len)) == NULL) {
        free(r);
        conn_log(c, VAULT_LOG_ERROR, "out_of_memory", NULL);
        conn_close(c);
        return;
    }
    memcpy(r->bytes, data, len);
    r->bytes_len = len;
    r->srv = s;
    r->pub.received_ns = now;
    api_writer_init(&r->out, API_LEN_PREFIX + API_FRAME_MAX);
    rc = api_frame_decode(&r->pub.frame, r->bytes, len, API_DIR_REQUEST, &fe);
    if (rc != 0) {
        answer_now(c, &r->pub.frame.hdr, (unsigned)-rc, fe.tag,
                   fe.message != NULL ? fe.message : "malformed request", 0, now);
        req_free(r);
        return;
    }
    if (s->draining) {
        answer_now(c, &r->pub.frame.hdr, API_STATUS_SHUTTING_DOWN, 0,
                   "the service is shutting down", VAULT_RETRY_AFTER_MS, now);
        req_free(r);
        return;
    }
    if (c->in_flight >= s->cfg->max_in_flight) {
        answer_now(c, &r->pub.frame.hdr, API_STATUS_OVERLOADED, 0,
                   "too many requests in flight on this connection", VAULT_RETRY_AFTER_MS, now);
        req_free(r);
        return;
    }
    if (find_inflight(c, r->pub.frame.hdr.request_id) != NULL) {
        answer_now(c, &r->pub.frame.hdr, API_STATUS_BAD_REQUEST, 0, "request id already in flight",
                   0, now);
        req_free(r);
        return;
    }
    r->conn = c;
    c->refs++;
    c->in_flight++;
    s->in_flight++;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    r->pub.officer = c->officer;
    memcpy(r->pub.client, c->client, sizeof(r->pub.client));
    /* Looked up at every request: a reload that removes a client or a role
     * applies to connections already open. */
    r->pub.client_cfg = c->officer ? NULL : vault_config_client(s->cfg, c->subject, c->fingerprint);
    mf = api_schema_field(r->pub.frame.schema, API_TAG_MERCHANT);
    r->pub.merchant = mf != NULL ? (const char *)r->pub.frame.msg + mf->off : NULL;
    r->pub.server_private_ = r;
    conn_timer_update(c);
    s->dispatch(s->ctx, &r->pub);
}

/* Plaintext bytes of the stream: frames are cut out of them. */
static void
conn_feed(struct conn *c, const uint8_t *data, size_t len)
{
    while (len > 0 && !c->closing && !c->close_after_write) {
        size_t need, take;

        if (c->in_len < API_LEN_PREFIX)
            need = API_LEN_PREFIX - c->in_len;
        else
            need = API_LEN_PREFIX + c->frame_len - c->in_len;
        take = len < need ? len : need;
        memcpy(c->in + c->in_len, data, take);
        c->in_len += take;
        data += take;
        len -= take;
        if (c->in_len == API_LEN_PREFIX) {
            int rc = api_frame_length(c->in, &c->frame_len);

            if (rc != 0) {
                /* The stream cannot be resynchronised: answer, then close. */
                struct api_header h = {0};

                answer_now(c, &h, (unsigned)-rc, 0,
                           rc == -API_STATUS_TOO_LARGE ? "frame longer than the limit"
                                                       : "frame shorter than a header",
                           0, metrics_now_ns());
                c->in_len = 0;
                c->close_after_write = true;
                if (c->write_pending == 0)
                    conn_close(c);
                return;
            }
        }
        if (c->in_len >= API_LEN_PREFIX && c->in_len == API_LEN_PREFIX + c->frame_len) {
            handle_frame(c, c->in + API_LEN_PREFIX, c->frame_len);
            OPENSSL_cleanse(c->in, c->in_len);
            c->in_len = 0;
        }
    }
    conn_timer_update(c);
}

/* After the handshake: who is this? */
static int
identify(struct conn *c)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    const struct vault_client *cl;
    unsigned fp_len = 0;
    BIO *mem = NULL;
    int n;

    if (peer == NULL || X509_digest(peer, EVP_sha256(), c->fingerprint, &fp_len) != 1 ||
        fp_len != sizeof(c->fingerprint) || (mem = BIO_new(BIO_s_mem())) == NULL)
        goto fail;
    if (X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) < 0)
        goto fail;
    n = BIO_read(mem, c->subject, sizeof(c->subject) - 1);
    c->subject[n > 0 ? n : 0] = '\0';
    BIO_free(mem);
    mem = NULL;
    if ((cl = vault_config_client(c->srv->cfg, c->subject, c->fingerprint)) == NULL) {
        conn_log(c, VAULT_LOG_WARN, "unknown_client", "no [client] section names this certificate");
        return -1;
    }
    memcpy(c->client, cl->name, sizeof(c->client));
    conn_log(c, VAULT_LOG_DEBUG, "connection_ready", NULL);
    return 0;
fail:
    BIO_free(mem);
    conn_log(c, VAULT_LOG_WARN, "handshake_failed", "no usable client certificate");
    return -1;
}

static void
tls_input(struct conn *c, const uint8_t *data, size_t len)
{
    uint8_t buf[TLS_READ_CHUNK];
    int n = 0;

    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        conn_close(c);
        return;
    }
    if (!c->ready) {
        n = SSL_do_handshake(c->ssl);
        (void)flush_tls(c); /* the server's flight, or its alert */
        if (n != 1) {
            int e = SSL_get_error(c->ssl, n);

            if (e != SSL_ERROR_WANT_READ) {
                char reason[160];

                ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
                conn_log(c, VAULT_LOG_INFO, "handshake_failed", reason);
                ERR_clear_error();
                c->close_after_write = true;
                if (c->write_pending == 0)
                    conn_close(c);
            }
            return;
        }
        if (identify(c) != 0) {
            conn_close(c);
            return;
        }
        c->ready = true;
        c->timer_mode = TIMER_NONE;
        conn_timer_update(c);
    }
    while (!c->closing && (n = SSL_read(c->ssl, buf, sizeof(buf))) > 0)
        conn_feed(c, buf, (size_t)n);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (!c->closing) {
        int e = SSL_get_error(c->ssl, n);

        if (e == SSL_ERROR_ZERO_RETURN || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_NONE)) {
            ERR_clear_error();
            conn_close(c);
            return;
        }
        (void)flush_tls(c); /* post-handshake messages */
    }
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static _Thread_local char chunk[TLS_READ_CHUNK];

    buf->base = chunk;
    buf->len = sizeof(chunk);
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;

    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    if (c->officer)
        conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
    else
        tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
    OPENSSL_cleanse(buf->base, (size_t)nread);
}

static void
conn_resume(struct conn *c)
{
    if (!c->closing && !c->reading && c->write_pending <= VAULT_CONN_WRITE_MAX &&
        uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
        c->reading = true;
}

/* ---- accepting ----------------------------------------------------------------------- */

static void
on_connection(uv_stream_t *listener, int status)
{
    struct vault_server *s = listener->data;
    bool officer = listener == (uv_stream_t *)&s->officer;
    struct conn *c;

    if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->srv = s;
    c->officer = officer;
    if (officer)
        uv_pipe_init(s->loop, &c->h.pipe, 0);
    else
        uv_tcp_init(s->loop, &c->h.tcp);
    uv_timer_init(s->loop, &c->timer);
    c->h.stream.data = c;
    c->timer.data = c;
    c->refs = 2; /* the two handles */
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->num_conns++;
    if (uv_accept(listener, &c->h.stream) != 0) {
        conn_close(c);
        return;
    }
    if (s->num_conns > s->cfg->max_connections || s->draining) {
        vlog_msg(VAULT_LOG_WARN, "connection_refused",
                 "reason", s->draining ? "draining" : "max_connections reached");
        conn_close(c);
        return;
    }
    if (officer) {
        snprintf(c->client, sizeof(c->client), "officer");
        c->ready = true;
    } else {
        if ((c->ssl = SSL_new(s->ssl_ctx)) == NULL || (c->rbio = BIO_new(BIO_s_mem())) == NULL ||
            (c->wbio = BIO_new(BIO_s_mem())) == NULL) {
            BIO_free(c->rbio);
            BIO_free(c->wbio);
            c->rbio = c->wbio = NULL;
            conn_close(c);
            return;
        }
        /* An empty read BIO means "wait for more", not end of stream. */
        BIO_set_mem_eof_return(c->rbio, -1);
        SSL_set_bio(c->ssl, c->rbio, c->wbio);
        SSL_set_accept_state(c->ssl);
    }
    if (!officer)
        (void)uv_tcp_nodelay(&c->h.tcp, 1); /* answers are small and waited for */
    conn_resume(c);
    conn_timer_update(c);
}

/* ---- completions on the loop -------------------------------------------------------------- */

static void
on_async(uv_async_t *a)
{
    struct vault_server *s = a->data;
    struct req *r, *next;

    pthread_mutex_lock(&s->mu);
    r = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    for (; r != NULL; r = next) {
        struct conn *c = r->conn;

        next = r->next_done;
        log_request(r, c);
        metrics_request(s->metrics, r->pub.frame.hdr.opcode, r->status,
                        metrics_now_ns() - r->pub.received_ns);
        if (r->prev != NULL)
            r->prev->next = r->next;
        else
            c->reqs = r->next;
        if (r->next != NULL)
            r->next->prev = r->prev;
        c->in_flight--;
        s->in_flight--;
        conn_send(c, api_writer_data(&r->out), api_writer_len(&r->out));
        conn_timer_update(c);
        req_free(r);
        conn_unref(c);
    }
    check_drained(s);
    server_maybe_free(s);
}

/* ---- draining and closing ------------------------------------------------------------------- */

static bool
writes_pending(const struct vault_server *s)
{
    for (const struct conn *c = s->conns; c != NULL; c = c->next)
        if (c->write_pending > 0)
            return true;
    return false;
}

static void
check_drained(struct vault_server *s)
{
    void (*fn)(void *);

    if (s == NULL || !s->draining || s->drained == NULL || s->in_flight > 0 || writes_pending(s))
        return;
    fn = s->drained;
    s->drained = NULL;
    fn(s->drained_ctx);
}

/* The last handle's close callback frees the server: nothing else can
 * refer to it then. */
static void
on_listener_closed(uv_handle_t *h)
{
    struct vault_server *s = h->data;

    if (--s->handles > 0 || !s->closing)
        return;
    SSL_CTX_free(s->ssl_ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void
close_listeners(struct vault_server *s)
{
    if (s->tcp_open) {
        s->tcp_open = false;
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    }
    if (s->officer_open) {
        s->officer_open = false;
        uv_close((uv_handle_t *)&s->officer, on_listener_closed);
        unlink(s->officer_path);
    }
}

void
vault_server_drain(struct vault_server *s, void (*drained)(void *ctx), void *ctx)
{
    s->draining = true;
    s->drained = drained;
    s->drained_ctx = ctx;
    close_listeners(s);
    check_drained(s);
}

/* Once closing and with no connection or request left, closes the async
 * handle; its close callback (or the last listener's) frees the server. The
 * async handle stays open while requests are in flight: their answers still
 * wake the loop. */
static void
server_maybe_free(struct vault_server *s)
{
    if (s == NULL || !s->closing)
        return;
    if (s->async_open && s->in_flight == 0 && s->conns == NULL) {
        s->async_open = false;
        uv_close((uv_handle_t *)&s->async, on_listener_closed);
    }
}

void
vault_server_close(struct vault_server *s)
{
    struct conn *c, *next;

    if (s == NULL)
        return;
    s->closing = true;
    s->draining = true;
    close_listeners(s);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        conn_close(c);
    }
    server_maybe_free(s);
}

/* ---- start ------------------------------------------------------------------------------------ */

static SSL_CTX *
make_ssl_ctx(const struct vault_config *cfg, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    STACK_OF(X509_NAME) *cas = NULL;
    char reason[160];

    if (ctx == NULL)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
        goto fail;
    /* No resumption: every connection proves its certificate again. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(err, err_len, "[tls] cert %s: cannot load", cfg->tls_cert);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_len, "[tls] key %s: cannot load or does not match the cert", cfg->tls_key);
        goto out;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1 ||
        (cas = SSL_load_client_CA_file(cfg->tls_client_ca)) == NULL) {
        snprintf(err, err_len, "[tls] client_ca %s: cannot load", cfg->tls_client_ca);
        goto out;
    }
    SSL_CTX_set_client_CA_list(ctx, cas);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return ctx;
fail:
    ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
    snprintf(err, err_len, "TLS: %s", reason);
out:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static int
listen_tcp(struct vault_server *s, char *err, size_t err_len)
{
    struct sockaddr_storage addr;
    struct sockaddr_storage bound;
    int len = sizeof(bound), rc;

    if (uv_ip4_addr(s->cfg->listen_host, s->cfg->listen_port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(s->cfg->listen_host, s->cfg->listen_port, (struct sockaddr_in6 *)&addr) != 0) {
        snprintf(err, err_len, "[service] listen: '%s' is not an IP address", s->cfg->listen_host);
        return -1;
    }
    uv_tcp_init(s->loop, &s->tcp);
    s->tcp.data = s;
    s->tcp_open = true;
    s->handles++;
    if ((rc = uv_tcp_bind(&s->tcp, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->tcp, SOMAXCONN, on_connection)) != 0) {
        snprintf(err, err_len, "[service] listen %s:%u: %s", s->cfg->listen_host,
                 s->cfg->listen_port, uv_strerror(rc));
        return -1;
    }
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &len) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

static int
listen_officer(struct vault_server *s, char *err, size_t err_len)
{
    const char *path = s->cfg->officer_socket;
    struct stat st;
    int rc;

    if (path[0] == '\0')
        return 0;
    snprintf(s->officer_path, sizeof(s->officer_path), "%s", path);
    /* A socket left by a previous run is replaced; any other file is not. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, err_len, "[service] officer_socket %s: exists and is not a socket", path);
            return -1;
        }
        unlink(path);
    }
    uv_pipe_init(s->loop, &s->officer, 0);
    s->officer.data = s;
    s->officer_open = true;
    s->handles++;
    if ((rc = uv_pipe_bind(&s->officer, path)) != 0 || chmod(path, 0600) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->officer, SOMAXCONN, on_connection)) != 0) {
        snprintf(err, err_len, "[service] officer_socket %s: %s", path,
                 rc != 0 ? uv_strerror(rc) : strerror(errno));
        return -1;
    }
    return 0;
}

int
vault_server_start(struct vault_server **out, const struct vault_server_config *c, char *err,
                   size_t err_len)
{
    struct vault_server *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    s->loop = c->loop;
    s->cfg = c->cfg;
    s->dispatch = c->dispatch;
    s->ctx = c->ctx;
    s->metrics = c->metrics;
    pthread_mutex_init(&s->mu, NULL);
    if ((s->ssl_ctx = make_ssl_ctx(c->cfg, err, err_len)) == NULL) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -1;
    }
    uv_async_init(s->loop, &s->async, on_async);
    s->async.data = s;
    s->async_open = true;
    s->handles++;
    if (listen_tcp(s, err, err_len) != 0 || listen_officer(s, err, err_len) != 0) {
        vault_server_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

uint16_t
vault_server_port(const struct vault_server *s)
{
    return s->port;
}

void
vault_server_set_config(struct vault_server *s, const struct vault_config *cfg)
{
    s->cfg = cfg;
}

unsigned
vault_server_connections(const struct vault_server *s)
{
    return s->num_conns;
}

unsigned
vault_server_in_flight(const struct vault_server *s)
{
    return s->in_flight;
}
