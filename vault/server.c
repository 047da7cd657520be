/*
 * server.c - the RPC server: libuv streams, TLS 1.3 through memory BIOs,
 * frames in, dispatch, answers out.
 *
 * Ownership: a connection is referenced by its two handles (stream, timer),
 * by each uv_write in progress and by each request in flight; it is freed when
 * the last reference goes, which for the handles is their close callback. So a
 * request answered after its connection closed still finds the connection,
 * sends nothing and only frees itself. A request is owned by the server from
 * decode until its answer has been handed to uv_write; the dispatcher only
 * borrows it.
 *
 * Threads: everything runs on the loop thread except vault_request_reply and
 * vault_request_error, which encode the answer in the caller's thread and put
 * the request on a mutex-protected queue that the loop empties (uv_async).
 */
#include "vault/server.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/log.h"

/* Bytes read from the socket per read callback, and plaintext taken from TLS
 * per SSL_read: one TLS record's worth. */
#define IO_CHUNK 16384u
/* A connection buffers at most one frame of input (PROTOCOL.md 7.1). */
#define CONN_IN_MAX (API_LEN_PREFIX + API_FRAME_MAX)
/* Room for an error response: prefix, header, a message of API_MESSAGE_MAX
 * and the optional errorTag and retryAfterMs fields. */
#define ERROR_FRAME_MAX 512u
/* Room for an OpenSSL error string in a log line. */
#define TLS_REASON_MAX 160u
/* The client name of every officer socket connection (server.h). */
#define OFFICER_CLIENT "officer"

/* Which deadline the connection's timer measures. */
enum timer_mode {
    TIMER_NONE,      /* requests in flight, nothing to wait for from the peer */
    TIMER_HANDSHAKE, /* handshake_timeout_ms */
    TIMER_FRAME,     /* VAULT_FRAME_TIMEOUT_MS for the frame begun */
    TIMER_IDLE,      /* idle_timeout_ms with nothing in flight */
    TIMER_WRITE,     /* idle_timeout_ms without write progress */
};

/* What the server keeps from the config it started with: a reload changes
 * the clients and the log level only (server.h). */
struct bounds {
    unsigned max_connections;
    unsigned max_in_flight;
    unsigned handshake_timeout_ms;
    unsigned idle_timeout_ms;
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
    struct req *next_done;   /* the completion queue */
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
    bool timer_restart; /* progress: start the current deadline again */
    bool officer;
    SSL *ssl; /* owns rbio and wbio */
    BIO *rbio, *wbio;
    bool ready;             /* handshake done and client known (always, on the officer socket) */
    bool closing;           /* uv_close called */
    bool reading;           /* uv_read_start in effect */
    bool close_after_write; /* the last answer is queued; close once it is written */
    unsigned refs;
    unsigned in_flight;
    size_t write_pending; /* bytes handed to uv_write and not yet written */
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
    const struct vault_config *cfg; /* clients; replaced by set_config */
    struct bounds b;
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
    pthread_mutex_t mu; /* guards done_head and done_tail */
    struct req *done_head, *done_tail;
    struct conn *conns;
    unsigned num_conns;
    unsigned num_tcp; /* what max_connections bounds; officers are not locked out by it */
    unsigned in_flight;
    unsigned handles; /* listener and async handles not yet closed */
    bool draining, closing;
    void (*drained)(void *ctx);
    void *drained_ctx;
    uint16_t port;
};

static void conn_close(struct conn *c);
static void conn_timer_update(struct conn *c);
static void conn_resume(struct conn *c);
static void check_drained(struct vault_server *s);
static void server_maybe_free(struct vault_server *s);

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

/* One log line and one metrics sample per answered request (server.h). Only
 * ids, names and the status: never a field value. */
static void
request_done(const struct vault_server *s, const struct api_header *hdr, unsigned status,
             const char *client, const char *merchant, uint64_t received_ns)
{
    const struct api_op_info *op = api_op_info(hdr->opcode);
    enum vault_log_level level = status == API_STATUS_INTERNAL ? VAULT_LOG_ERROR : VAULT_LOG_INFO;
    uint64_t ns = metrics_now_ns() - received_ns;
    struct vlog_line l;

    if (vlog_begin(&l, level, "request")) {
        vlog_str(&l, "op", op != NULL ? op->lower : "unknown");
        vlog_str(&l, "status", api_status_name(status));
        vlog_u64(&l, "rid", hdr->request_id);
        vlog_str(&l, "client", client);
        if (merchant != NULL)
            vlog_str(&l, "merchant", merchant);
        vlog_ms(&l, "ms", ns);
        vlog_end(&l);
    }
    metrics_request(s->metrics, hdr->opcode, status, ns);
}

/* Appends the error response to |req_hdr|. api_frame_write_error has no
 * retryAfterMs, which OVERLOADED needs. |message| is fixed ASCII text; NULL or
 * "" gives the status's own description (the field may not be empty). */
static int
write_error_frame(struct api_writer *w, const struct api_header *req_hdr, unsigned status,
                  uint16_t tag, const char *message, uint32_t retry_after_ms)
{
    struct api_header h = {API_VERSION, API_FLAG_RESPONSE, req_hdr->opcode, (uint16_t)status,
                           req_hdr->request_id};
    struct api_error_resp e;

    if ((message == NULL || message[0] == '\0') &&
        (message = api_status_description(status)) == NULL)
        message = "error";
    memset(&e, 0, sizeof(e));
    memcpy(e.message, message, strnlen(message, API_MESSAGE_MAX));
    e.has_error_tag = tag != 0;
    e.error_tag = tag;
    e.has_retry_after_ms = retry_after_ms != 0;
    e.retry_after_ms = retry_after_ms;
    return api_frame_write(w, &h, api_schema_error(), &e, NULL);
}

/* Hands an encoded answer to the loop. Any thread. The wake-up is sent under
 * the lock: once the loop has taken this request it may free the server, so
 * this thread must be done with |s| by then. */
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
    (void)uv_async_send(&s->async);
    pthread_mutex_unlock(&s->mu);
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
            vlog_u64(&l, "rid", h.request_id);
            vlog_u64(&l, "tag", fe.tag);
            vlog_str(&l, "reason", fe.message != NULL ? fe.message : "");
            vlog_end(&l);
        }
        r->status = API_STATUS_INTERNAL;
        /* If even this fails (no memory) the answer stays empty and the loop
         * closes the connection rather than leave the request unanswered. */
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
        r->status = API_STATUS_INTERNAL;
        (void)write_error_frame(&r->out, &pub->frame.hdr, API_STATUS_INTERNAL, 0, "internal error",
                                0);
    }
    req_complete(r);
}

void
vault_request_error_rule(struct vault_request *pub, unsigned status, uint16_t tag, const char *rule,
                         const char *message)
{
    struct req *r = (struct req *)pub;
    struct api_header h = {API_VERSION, API_FLAG_RESPONSE, pub->frame.hdr.opcode, (uint16_t)status,
                           pub->frame.hdr.request_id};
    struct api_error_resp e;

    if (status == API_STATUS_OK || api_status_name(status) == NULL || rule == NULL ||
        strlen(rule) > API_RULE_MAX) {
        vault_request_error(pub, status, tag, message, 0);
        return;
    }
    if ((message == NULL || message[0] == '\0') &&
        (message = api_status_description(status)) == NULL)
        message = "error";
    memset(&e, 0, sizeof(e));
    memcpy(e.message, message, strnlen(message, API_MESSAGE_MAX));
    e.has_error_tag = tag != 0;
    e.error_tag = tag;
    e.has_rule = true;
    memcpy(e.rule, rule, strlen(rule));
    /* The encoder checks the rule as the decoder would; a frame it refuses
     * is rolled back, and the answer goes out without the rule. */
    if (api_frame_write(&r->out, &h, api_schema_error(), &e, NULL) != 0) {
        vault_request_error(pub, status, tag, message, 0);
        return;
    }
    r->status = status;
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
    if (!c->officer)
        s->num_tcp--;
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
    c->reading = false;
    uv_close((uv_handle_t *)&c->h.stream, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* Reads nothing more and closes once what is queued has been written: the
 * peer gets its last answer (or TLS alert) before the close. */
static void
conn_close_after_write(struct conn *c)
{
    if (c->closing)
        return;
    c->close_after_write = true;
    if (c->write_pending == 0) {
        conn_close(c);
        return;
    }
    if (c->reading) {
        (void)uv_read_stop(&c->h.stream);
        c->reading = false;
    }
    conn_timer_update(c);
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
    OPENSSL_cleanse(wr->data, wr->len); /* may hold a PAN (officer socket: in clear) */
    free(wr);
    if (c->closing) {
        /* nothing: the close is under way */
    } else if (status < 0) {
        conn_close(c);
    } else if (c->close_after_write) {
        if (c->write_pending == 0)
            conn_close(c);
    } else {
        conn_resume(c);
        c->timer_restart = true; /* progress: the write (or idle) clock starts again */
        conn_timer_update(c);
    }
    check_drained(c->srv);
    conn_unref(c);
}

/* Queues a copy of |len| bytes on the stream. */
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

/* Sends what TLS has put in the write BIO (records, alerts). */
static int
flush_tls(struct conn *c)
{
    uint8_t buf[IO_CHUNK];
    int n;

    while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0)
        if (stream_write(c, buf, (size_t)n) != 0)
            return -1;
    return 0;
}

/* Sends |len| bytes of frames; a peer that does not read its answers stops
 * being read once VAULT_CONN_WRITE_MAX bytes wait. */
static void
conn_send(struct conn *c, const uint8_t *data, size_t len)
{
    int r;

    if (c->closing)
        return;
    if (c->officer)
        r = stream_write(c, data, len);
    else /* a memory BIO takes everything: SSL_write writes it all or fails */
        r = SSL_write(c->ssl, data, (int)len) == (int)len ? flush_tls(c) : -1;
    if (r != 0) {
        ERR_clear_error();
        conn_log(c, VAULT_LOG_WARN, "connection_write_failed", NULL);
        conn_close(c);
        return;
    }
    if (c->reading && c->write_pending > VAULT_CONN_WRITE_MAX) {
        (void)uv_read_stop(&c->h.stream);
        c->reading = false;
    }
}

/* An answer the server makes itself, before or instead of dispatch. */
static void
answer_now(struct conn *c, const struct api_header *hdr, unsigned status, uint16_t tag,
           const char *message, uint32_t retry_after_ms, const char *merchant, uint64_t received_ns)
{
    struct api_writer w;

    /* Logged first, as on_async does: the line exists once the peer has the
     * answer. */
    request_done(c->srv, hdr, status, c->client, merchant, received_ns);
    api_writer_init(&w, ERROR_FRAME_MAX);
    if (write_error_frame(&w, hdr, status, tag, message, retry_after_ms) == 0)
        conn_send(c, api_writer_data(&w), api_writer_len(&w));
    else
        conn_close(c); /* out of memory: an unanswered request must not hang the peer */
    api_writer_cleanup(&w);
}

/* ---- connections: timers ------------------------------------------------------------- */

static void
on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    static const char *const why[] = {
        [TIMER_NONE] = "timer", [TIMER_HANDSHAKE] = "handshake timeout",
        [TIMER_FRAME] = "frame timeout", [TIMER_IDLE] = "idle timeout",
        [TIMER_WRITE] = "peer not reading",
    };

    conn_log(c, c->timer_mode == TIMER_IDLE ? VAULT_LOG_DEBUG : VAULT_LOG_INFO, "connection_closed",
             why[c->timer_mode]);
    conn_close(c);
}

/* Chooses the one deadline that applies now. A deadline that stays the same
 * is not restarted unless timer_restart says so: bytes trickling into a frame
 * do not extend its deadline, a write that makes progress does. */
static void
conn_timer_update(struct conn *c)
{
    const struct bounds *b = &c->srv->b;
    enum timer_mode mode;
    uint64_t ms = 0;

    if (c->closing)
        return;
    if (!c->ready) {
        mode = TIMER_HANDSHAKE;
        ms = b->handshake_timeout_ms;
    } else if (c->write_pending > 0) {
        mode = TIMER_WRITE;
        ms = b->idle_timeout_ms;
    } else if (c->in_len > 0) {
        mode = TIMER_FRAME;
        ms = VAULT_FRAME_TIMEOUT_MS;
    } else if (c->in_flight == 0) {
        mode = TIMER_IDLE;
        ms = b->idle_timeout_ms;
    } else {
        mode = TIMER_NONE; /* the service is working on its requests */
    }
    if (mode == c->timer_mode && !c->timer_restart)
        return;
    c->timer_mode = mode;
    c->timer_restart = false;
    if (mode == TIMER_NONE) {
        (void)uv_timer_stop(&c->timer);
        return;
    }
    /* The loop's clock is read once per iteration; after a long one it is
     * behind, and the deadline would come early. */
    uv_update_time(c->srv->loop);
    (void)uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- connections: input ----------------------------------------------------------------- */

static bool
id_in_flight(const struct conn *c, uint64_t id)
{
    for (const struct req *r = c->reqs; r != NULL; r = r->next)
        if (r->pub.frame.hdr.request_id == id)
            return true;
    return false;
}

/* Decode failures whose stream is no longer trusted (PROTOCOL.md 7.3): only
 * the header rules F3..F6 give these statuses; the frame rule F7 and the field
 * rules keep the connection. */
static bool
closes_connection(unsigned status)
{
    return status == API_STATUS_BAD_REQUEST || status == API_STATUS_UNSUPPORTED_VERSION;
}

/* One whole frame: |data| is the frame after its length prefix. */
static void
handle_frame(struct conn *c, const uint8_t *data, size_t len)
{
    struct vault_server *s = c->srv;
    uint64_t now = metrics_now_ns();
    struct api_field_error fe = {0};
    const struct vault_client *cl = NULL;
    const struct api_field *mf;
    const char *merchant = NULL;
    struct req *r = NULL;

    if ((r = calloc(1, sizeof(*r))) == NULL || (r->bytes = malloc(len)) == NULL) {
        conn_log(c, VAULT_LOG_ERROR, "out_of_memory", NULL);
        conn_close(c);
        goto out;
    }
    memcpy(r->bytes, data, len);
    r->bytes_len = len;
    r->srv = s;
    r->pub.received_ns = now;
    api_writer_init(&r->out, API_LEN_PREFIX + API_FRAME_MAX);
    if (api_frame_decode(&r->pub.frame, r->bytes, len, API_DIR_REQUEST, &fe) != 0) {
        unsigned status = fe.status != 0 ? fe.status : API_STATUS_INTERNAL;

        answer_now(c, &r->pub.frame.hdr, status, fe.tag, fe.message, 0, NULL, now);
        if (closes_connection(status))
            conn_close_after_write(c);
        goto out;
    }
    if ((mf = api_schema_field(r->pub.frame.schema, API_TAG_MERCHANT)) != NULL)
        merchant = (const char *)r->pub.frame.msg + mf->off;
    /* Looked up at every request: a reload that removes a client applies to
     * its connections already open (server.h). */
    if (!c->officer) {
        if ((cl = vault_config_client(s->cfg, c->subject, c->fingerprint)) == NULL) {
            conn_log(c, VAULT_LOG_WARN, "client_removed",
                     "no [client] section names this certificate any more");
            answer_now(c, &r->pub.frame.hdr, API_STATUS_DENIED, 0, "client not configured", 0,
                       merchant, now);
            conn_close_after_write(c);
            goto out;
        }
        snprintf(c->client, sizeof(c->client), "%s", cl->name);
    }
    if (s->draining) {
        answer_now(c, &r->pub.frame.hdr, API_STATUS_SHUTTING_DOWN, 0,
                   "the service is shutting down", 0, merchant, now);
        goto out;
    }
    if (id_in_flight(c, r->pub.frame.hdr.request_id)) {
        answer_now(c, &r->pub.frame.hdr, API_STATUS_BAD_REQUEST, 0, "request id already in flight",
                   0, merchant, now);
        goto out;
    }
    if (c->in_flight >= s->b.max_in_flight) {
        answer_now(c, &r->pub.frame.hdr, API_STATUS_OVERLOADED, 0,
                   "too many requests in flight on this connection", VAULT_RETRY_AFTER_MS, merchant,
                   now);
        goto out;
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
    r->pub.client_cfg = cl;
    r->pub.merchant = merchant;
    r->pub.server_private_ = r;
    s->dispatch(s->ctx, &r->pub); /* may complete r at once, from here */
    r = NULL;
out:
    req_free(r);
}

/* Plaintext bytes of the stream: frames are cut out of them. */
static void
conn_feed(struct conn *c, const uint8_t *data, size_t len)
{
    while (len > 0 && !c->closing && !c->close_after_write) {
        size_t want = c->in_len < API_LEN_PREFIX ? API_LEN_PREFIX : API_LEN_PREFIX + c->frame_len;
        size_t take = len < want - c->in_len ? len : want - c->in_len;

        memcpy(c->in + c->in_len, data, take);
        c->in_len += take;
        data += take;
        len -= take;
        if (c->in_len == API_LEN_PREFIX) {
            int rc = api_frame_length(c->in, &c->frame_len);

            if (rc != 0) {
                /* The stream cannot be resynchronised: answer, then close. No
                 * header was read: opcode and request id 0 (PROTOCOL.md 7.3). */
                struct api_header h = {0};

                answer_now(c, &h, (unsigned)-rc, 0,
                           rc == -API_STATUS_TOO_LARGE ? "frame longer than the limit"
                                                       : "frame shorter than a header",
                           0, NULL, metrics_now_ns());
                c->in_len = 0;
                conn_close_after_write(c);
                return;
            }
        } else if (c->in_len == API_LEN_PREFIX + c->frame_len) {
            handle_frame(c, c->in + API_LEN_PREFIX, c->frame_len);
            OPENSSL_cleanse(c->in, c->in_len);
            c->in_len = 0;
            if (c->timer_mode == TIMER_FRAME)
                c->timer_restart = true; /* the next frame gets its own deadline */
        }
    }
    conn_timer_update(c);
}

/* After the handshake: who is this? 0, or -1 when the certificate names no
 * configured client (logged). */
static int
identify(struct conn *c)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    const struct vault_client *cl;
    unsigned fp_len = 0;
    BIO *mem = NULL;
    int n, r = -1;

    if (peer == NULL || X509_digest(peer, EVP_sha256(), c->fingerprint, &fp_len) != 1 ||
        fp_len != sizeof(c->fingerprint) || (mem = BIO_new(BIO_s_mem())) == NULL ||
        X509_NAME_print_ex(mem, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) < 0) {
        conn_log(c, VAULT_LOG_WARN, "handshake_failed", "no usable client certificate");
        goto out;
    }
    /* A subject cut to fit could equal another client's: refuse it whole. */
    if (BIO_pending(mem) > (int)VAULT_SUBJECT_MAX) {
        conn_log(c, VAULT_LOG_WARN, "unknown_client", "certificate subject too long");
        goto out;
    }
    n = BIO_read(mem, c->subject, VAULT_SUBJECT_MAX);
    c->subject[n > 0 ? n : 0] = '\0';
    if ((cl = vault_config_client(c->srv->cfg, c->subject, c->fingerprint)) == NULL) {
        conn_log(c, VAULT_LOG_WARN, "unknown_client", "no [client] section names this certificate");
        goto out;
    }
    snprintf(c->client, sizeof(c->client), "%s", cl->name);
    conn_log(c, VAULT_LOG_DEBUG, "connection_ready", NULL);
    r = 0;
out:
    BIO_free(mem);
    ERR_clear_error();
    return r;
}

/* Advances the handshake with what the read BIO holds. Returns 0 once the
 * connection is ready for frames, -1 while it is not (more to read, or the
 * connection is closing). */
static int
tls_handshake(struct conn *c)
{
    int n = SSL_do_handshake(c->ssl);
    bool failed = n != 1 && SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ;

    if (failed) { /* logged before the alert goes out */
        char reason[TLS_REASON_MAX];

        ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
        ERR_clear_error();
        conn_log(c, VAULT_LOG_INFO, "handshake_failed", reason);
    }
    if (flush_tls(c) != 0) { /* the server's flight, or its alert */
        conn_close(c);
        return -1;
    }
    if (failed)
        conn_close_after_write(c);
    if (n != 1)
        return -1;
    /* Closed right after the handshake, before any frame is read (PROTOCOL.md 2). */
    if (identify(c) != 0) {
        conn_close(c);
        return -1;
    }
    c->ready = true;
    conn_timer_update(c);
    return 0;
}

static void
tls_input(struct conn *c, const uint8_t *data, size_t len)
{
    uint8_t buf[IO_CHUNK];
    int n = 0;

    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        ERR_clear_error();
        conn_close(c);
        return;
    }
    if (!c->ready && tls_handshake(c) != 0)
        return;
    while (!c->closing && (n = SSL_read(c->ssl, buf, sizeof(buf))) > 0)
        conn_feed(c, buf, (size_t)n);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (c->closing)
        return;
    if (SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ) { /* close_notify, or a TLS error */
        ERR_clear_error();
        conn_close(c);
        return;
    }
    if (flush_tls(c) != 0) /* post-handshake messages (key updates) */
        conn_close(c);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One buffer serves every connection of the loop: it is filled and
     * consumed (then wiped) within one read callback. */
    static _Thread_local char chunk[IO_CHUNK];

    (void)h;
    (void)suggested;
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
    if (nread == 0)
        return;
    if (!c->closing && !c->close_after_write) {
        if (c->officer)
            conn_feed(c, (const uint8_t *)buf->base, (size_t)nread);
        else
            tls_input(c, (const uint8_t *)buf->base, (size_t)nread);
    }
    OPENSSL_cleanse(buf->base, (size_t)nread);
}

static void
conn_resume(struct conn *c)
{
    if (!c->closing && !c->close_after_write && !c->reading &&
        c->write_pending <= VAULT_CONN_WRITE_MAX &&
        uv_read_start(&c->h.stream, on_alloc, on_read) == 0)
        c->reading = true;
}

/* ---- accepting ----------------------------------------------------------------------- */

static int
conn_tls_init(struct conn *c)
{
    if ((c->ssl = SSL_new(c->srv->ssl_ctx)) == NULL || (c->rbio = BIO_new(BIO_s_mem())) == NULL ||
        (c->wbio = BIO_new(BIO_s_mem())) == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        ERR_clear_error();
        return -1;
    }
    /* An empty read BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    (void)uv_tcp_nodelay(&c->h.tcp, 1); /* answers are small and waited for */
    return 0;
}

static void
on_connection(uv_stream_t *listener, int status)
{
    struct vault_server *s = listener->data;
    bool officer = listener == (uv_stream_t *)&s->officer;
    const char *refused = NULL;
    struct conn *c;

    /* Known limit: without memory the connection is left pending, and libuv
     * offers no other on this listener until one is accepted. On Linux an
     * allocation this size fails only when the process is being killed. */
    if (status < 0 || (c = calloc(1, sizeof(*c))) == NULL) {
        vlog_msg(VAULT_LOG_ERROR, "accept_failed", "reason",
                 status < 0 ? uv_strerror(status) : "out of memory");
        return;
    }
    c->srv = s;
    c->officer = officer;
    if (officer)
        (void)uv_pipe_init(s->loop, &c->h.pipe, 0);
    else
        (void)uv_tcp_init(s->loop, &c->h.tcp);
    (void)uv_timer_init(s->loop, &c->timer);
    c->h.stream.data = c;
    c->timer.data = c;
    c->refs = 2; /* the two handles */
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->num_conns++;
    if (!officer)
        s->num_tcp++;
    if (uv_accept(listener, &c->h.stream) != 0)
        refused = "accept failed";
    else if (s->draining)
        refused = "draining";
    else if (!officer && s->num_tcp > s->b.max_connections)
        refused = "max_connections reached";
    else if (!officer && conn_tls_init(c) != 0)
        refused = "out of memory";
    if (refused != NULL) {
        vlog_msg(VAULT_LOG_WARN, "connection_refused", "reason", refused);
        conn_close(c);
        return;
    }
    if (officer) {
        snprintf(c->client, sizeof(c->client), "%s", OFFICER_CLIENT);
        c->ready = true;
    }
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
        if (r->prev != NULL)
            r->prev->next = r->next;
        else
            c->reqs = r->next;
        if (r->next != NULL)
            r->next->prev = r->prev;
        c->in_flight--;
        s->in_flight--;
        request_done(s, &r->pub.frame.hdr, r->status, r->pub.client, r->pub.merchant,
                     r->pub.received_ns);
        if (api_writer_len(&r->out) == 0)
            conn_close(c); /* no answer could be encoded: the peer must not wait for it */
        else
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

    if (!s->draining || s->drained == NULL || s->in_flight > 0 || writes_pending(s))
        return;
    fn = s->drained;
    s->drained = NULL;
    fn(s->drained_ctx);
}

/* The last handle's close callback frees the server: nothing else can refer
 * to it then. */
static void
on_server_handle_closed(uv_handle_t *h)
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
        uv_close((uv_handle_t *)&s->tcp, on_server_handle_closed);
    }
    if (s->officer_open) {
        s->officer_open = false;
        uv_close((uv_handle_t *)&s->officer, on_server_handle_closed);
        (void)unlink(s->officer_path);
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
    if (!s->closing || !s->async_open || s->in_flight > 0 || s->conns != NULL)
        return;
    s->async_open = false;
    uv_close((uv_handle_t *)&s->async, on_server_handle_closed);
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

/* ---- start ------------------------------------------------------------------------------ */

/* The TLS context of every connection: TLS 1.3 only, a client certificate
 * from [tls] client_ca required (PROTOCOL.md 2). NULL with |err| set. */
static SSL_CTX *
make_ssl_ctx(const struct vault_config *cfg, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    STACK_OF(X509_NAME) *cas = NULL;
    char reason[TLS_REASON_MAX];

    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
        snprintf(err, err_len, "TLS: %s", reason);
        goto fail;
    }
    /* No resumption: every connection proves its certificate again, and the
     * client list of the current config decides at every handshake. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CLEANSE_PLAINTEXT); /* received plaintext may be a PAN */
    (void)SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Idle connections hold no TLS buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        snprintf(err, err_len, "[tls] cert %s: cannot load", cfg->tls_cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, err_len, "[tls] key %s: cannot load or does not match the cert",
                 cfg->tls_key);
        goto fail;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1 ||
        (cas = SSL_load_client_CA_file(cfg->tls_client_ca)) == NULL) {
        snprintf(err, err_len, "[tls] client_ca %s: cannot load", cfg->tls_client_ca);
        goto fail;
    }
    SSL_CTX_set_client_CA_list(ctx, cas); /* takes cas */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    ERR_clear_error();
    return ctx;
fail:
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
    (void)uv_tcp_init(s->loop, &s->tcp);
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
    int rc = 0;

    if (path[0] == '\0')
        return 0;
    snprintf(s->officer_path, sizeof(s->officer_path), "%s", path);
    /* A socket left by a previous run is replaced; any other file is not. */
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, err_len, "[service] officer_socket %s: exists and is not a socket", path);
            return -1;
        }
        (void)unlink(path);
    }
    (void)uv_pipe_init(s->loop, &s->officer, 0);
    s->officer.data = s;
    s->officer_open = true;
    s->handles++;
    /* Mode 0600 before listen: until listen, a connect is refused, so no one
     * connects through the wider mode the umask gave at bind. */
    if ((rc = uv_pipe_bind(&s->officer, path)) != 0 || chmod(path, S_IRUSR | S_IWUSR) != 0 ||
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
    struct sigaction ign;
    struct vault_server *s = NULL;

    /* server.h: a write to a peer that reset its connection must fail with
     * EPIPE, not kill the service. */
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, NULL) != 0) {
        snprintf(err, err_len, "ignoring SIGPIPE: %s", strerror(errno));
        return -1;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    s->loop = c->loop;
    s->cfg = c->cfg;
    s->b.max_connections = c->cfg->max_connections;
    s->b.max_in_flight = c->cfg->max_in_flight;
    s->b.handshake_timeout_ms = c->cfg->handshake_timeout_ms;
    s->b.idle_timeout_ms = c->cfg->idle_timeout_ms;
    s->dispatch = c->dispatch;
    s->ctx = c->ctx;
    s->metrics = c->metrics;
    if ((s->ssl_ctx = make_ssl_ctx(c->cfg, err, err_len)) == NULL) {
        free(s);
        return -1;
    }
    pthread_mutex_init(&s->mu, NULL);
    (void)uv_async_init(s->loop, &s->async, on_async);
    s->async.data = s;
    s->async_open = true;
    s->handles++;
    if ((!c->officer_only && listen_tcp(s, err, err_len) != 0) ||
        listen_officer(s, err, err_len) != 0) {
        vault_server_close(s); /* freed when the loop has closed its handles */
        return -1;
    }
    *out = s;
    return 0;
}

int
vault_server_listen_tcp(struct vault_server *s, char *err, size_t err_len)
{
    if (s->tcp_open) {
        snprintf(err, err_len, "the TCP listener is already open");
        return -1;
    }
    return listen_tcp(s, err, err_len);
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
    vlog_set_level(cfg->log_level);
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
