/*
 * test_client.c - libtokenvault against the in-test server: every operation
 * round-trips, error replies reach the caller, pipelined replies are matched
 * by id whatever their order, and every way the connection can fail (TLS
 * refusals, refused connect, timeouts, closes, hostile frames) has its own
 * client error and leaves the client usable for the next call.
 *
 * The process keeps SIGPIPE's default action on purpose: a client write that
 * raised it would kill the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "api/client.h"
#include "tests/support/sample.h"
#include "tests/support/test_server.h"

#define ENCODE_MAX (2 * API_FRAME_MAX)
/* Short deadlines keep the failure tests fast; a loaded CI machine still
 * answers a loopback request well within them. */
#define TEST_TIMEOUT_MS 400u
#define PIPELINE_REQUESTS 200u

static char certdir[64];
static char ca_file[128], cert_file[128], key_file[128], unix_path[128];

/* ---- fixture ----------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    (void)state;

    snprintf(certdir, sizeof(certdir), "/tmp/tv-client-XXXXXX");
    if (tv_test_certs(certdir) != 0)
        return -1;
    snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", certdir);
    snprintf(cert_file, sizeof(cert_file), "%s/client.pem", certdir);
    snprintf(key_file, sizeof(key_file), "%s/client.key", certdir);
    snprintf(unix_path, sizeof(unix_path), "%s/vault.sock", certdir);
    return 0;
}

static int
group_teardown(void **state)
{
    char cmd[128];
    (void)state;

    snprintf(cmd, sizeof(cmd), "rm -rf %s", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *
cert_path(const char *name)
{
    static char path[8][128];
    static unsigned next;
    char *p = path[next++ % 8];

    snprintf(p, sizeof(path[0]), "%s/%s", certdir, name);
    return p;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 8192);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 8191, f);
    assert_true(n > 0);
    fclose(f);
    return buf;
}

static void
tls_config(struct api_client_config *cfg, uint16_t port)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "localhost";
    cfg->port = port;
    cfg->ca_file = ca_file;
    cfg->cert_file = cert_file;
    cfg->key_file = key_file;
    cfg->request_timeout_ms = 10000;
}

/* What a handler does, switched by the test. */
enum mode {
    MODE_SAMPLE,
    MODE_ERROR,           /* NOT_FOUND with a tag; LIMIT_EXCEEDED with a rule for STATUS */
    MODE_SILENT_FIRST,    /* never answers the first request */
    MODE_CLOSE_AFTER,     /* answers the first request, then closes */
    MODE_CLOSE_FIRST,     /* closes on the first request without answering */
    MODE_UNKNOWN_ID,      /* answers with an id that was never sent */
    MODE_WRONG_OPCODE,    /* answers with another opcode */
    MODE_BAD_MAGIC,       /* a frame whose header is not ours */
    MODE_TOO_LONG,        /* a length prefix over API_FRAME_MAX */
    MODE_REQUEST_FLAGS,   /* a "response" without the RESPONSE flag */
    MODE_TRUNCATED_CLOSE, /* half a frame, then close */
    MODE_BAD_FIELD,       /* a whole frame whose body does not decode */
};

struct handler_ctx {
    atomic_int mode;
    atomic_int count; /* requests seen */
};

static int
write_raw(struct api_writer *out, const uint8_t *bytes, size_t len)
{
    return api_writer_put_bytes(out, bytes, len) < 0 ? -1 : 0;
}

static int
test_handler(void *arg, const struct api_frame *req, struct api_writer *out)
{
    struct handler_ctx *hc = arg;
    int n = atomic_fetch_add(&hc->count, 1);
    struct api_frame copy = *req;
    struct api_header h = req->hdr;
    size_t start;

    switch ((enum mode)atomic_load(&hc->mode)) {
    case MODE_SAMPLE:
        return tv_test_handler_sample(NULL, req, out);
    case MODE_ERROR:
        if (req->hdr.opcode == API_OP_STATUS) {
            struct api_error_resp e;

            memset(&e, 0, sizeof(e));
            strcpy(e.message, "mandate rule refused");
            e.has_rule = true;
            strcpy(e.rule, "max_amount");
            e.has_retry_after_ms = true;
            e.retry_after_ms = 1500;
            h.flags = API_FLAG_RESPONSE;
            h.status = API_STATUS_LIMIT_EXCEEDED;
            return api_frame_write(out, &h, api_schema_error(), &e, NULL) < 0 ? -1 : 0;
        }
        return api_frame_write_error(out, &req->hdr, API_STATUS_NOT_FOUND, API_TAG_TOKEN,
                                     "no such card") < 0
                   ? -1
                   : 0;
    case MODE_SILENT_FIRST:
        return n == 0 ? 0 : tv_test_handler_sample(NULL, req, out);
    case MODE_CLOSE_AFTER:
        if (tv_test_handler_sample(NULL, req, out) < 0)
            return -1;
        return n == 0 ? -1 : 0;
    case MODE_CLOSE_FIRST:
        return n == 0 ? -1 : tv_test_handler_sample(NULL, req, out);
    case MODE_UNKNOWN_ID:
        copy.hdr.request_id += 1000;
        return tv_test_handler_sample(NULL, &copy, out);
    case MODE_WRONG_OPCODE:
        copy.hdr.opcode = req->hdr.opcode == API_OP_PING ? API_OP_STATUS : API_OP_PING;
        return tv_test_handler_sample(NULL, &copy, out);
    case MODE_BAD_MAGIC:
        start = api_writer_len(out);
        if (tv_test_handler_sample(NULL, req, out) < 0)
            return -1;
        out->buf[start + API_LEN_PREFIX] ^= 0xFF;
        return 0;
    case MODE_TOO_LONG: {
        static const uint8_t big[] = {0x00, 0x01, 0x00, 0x01}; /* 65537 */

        return write_raw(out, big, sizeof(big));
    }
    case MODE_REQUEST_FLAGS:
        start = api_writer_len(out);
        if (tv_test_handler_sample(NULL, req, out) < 0)
            return -1;
        out->buf[start + API_LEN_PREFIX + 3] = 0; /* flags */
        return 0;
    case MODE_TRUNCATED_CLOSE: {
        static const uint8_t half[] = {0x00, 0x00, 0x00, 0x40, 0x54, 0x56, 0x01, 0x01};

        if (write_raw(out, half, sizeof(half)) < 0)
            return -1;
        return -1; /* and close */
    }
    case MODE_BAD_FIELD: {
        /* A PING response whose only field is an undefined tag. */
        uint8_t f[API_LEN_PREFIX + API_HEADER_LEN + 7] = {
            0, 0, 0, API_HEADER_LEN + 7, 0x54, 0x56, API_VERSION, API_FLAG_RESPONSE, 0x00,
            0x01, 0, 0};
        uint64_t id = req->hdr.request_id;

        for (int i = 0; i < 8; i++)
            f[12 + i] = (uint8_t)(id >> (56 - 8 * i));
        f[20] = 0x7F;
        f[21] = 0x7F;
        f[25] = 1;
        f[26] = 'x';
        return write_raw(out, f, sizeof(f));
    }
    }
    return -1;
}

static struct tv_test_server *
start_server(struct handler_ctx *hc, int reverse, const char *unix_sock)
{
    struct tv_test_server_config cfg = {
        .dir = certdir, .unix_path = unix_sock, .handler = test_handler, .ctx = hc,
        .reverse_batches = reverse};
    struct tv_test_server *s = NULL;

    assert_int_equal(tv_test_server_start(&s, &cfg), 0);
    return s;
}

static struct api_client *
new_client(const struct api_client_config *cfg)
{
    struct api_client *c = NULL;

    assert_int_equal(api_client_new(&c, cfg), 0);
    assert_non_null(c);
    return c;
}

/* Asserts that |msg| equals the sample response for request |id|, by
 * encoding both: the encoding is canonical (schema order, has_x honoured). */
static void
expect_sample(uint16_t opcode, const void *msg, uint64_t id)
{
    const struct api_schema *s = api_schema_response(opcode);
    void *want = malloc(s->size);
    struct api_writer a, b;

    assert_non_null(want);
    assert_int_equal(tv_sample_fill(s, want, (unsigned)id, TV_SAMPLE_ALL), 0);
    api_writer_init(&a, ENCODE_MAX);
    api_writer_init(&b, ENCODE_MAX);
    assert_int_equal(api_msg_encode(&a, s, msg, NULL), 0);
    assert_int_equal(api_msg_encode(&b, s, want, NULL), 0);
    /* An empty message leaves both writers without a buffer. */
    if (api_writer_len(&a) != api_writer_len(&b) ||
        (api_writer_len(&a) > 0 &&
         memcmp(api_writer_data(&a), api_writer_data(&b), api_writer_len(&a)) != 0))
        fail_msg("%s for request %llu differs from what the server encoded", s->name,
                 (unsigned long long)id);
    api_writer_cleanup(&a);
    api_writer_cleanup(&b);
    api_msg_cleanup(s, want);
    free(want);
}

/* A ping that must return |want|; on success its reply must be the sample
 * for request |id| (0: any id). */
static void
ping(struct api_client *c, int want, uint64_t id)
{
    struct api_ping_req req;
    struct api_ping_resp resp;
    struct api_error_resp err;

    memset(&req, 0, sizeof(req));
    req.has_echo = true;
    req.echo.len = 3;
    memcpy(req.echo.data, "abc", 3);
    assert_int_equal(api_call_ping(c, &req, &resp, &err), want);
    if (want == 0 && id != 0)
        expect_sample(API_OP_PING, &resp, id);
}

static int64_t
elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (int64_t)(t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void
sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* ---- calls ------------------------------------------------------------------------- */

/* Every typed call, generated from API_MSG_LIST like the library's: sample
 * request out, the server's sample response back, field for field. Ids run
 * from 1, so the response for the n-th call is the sample for seed n. */
static void
test_every_opcode(void **state)
{
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    uint64_t id = 0;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    c = new_client(&cfg);
#define CALL_ONE(op, lower, req_t, resp_t)                                                 \
    do {                                                                                   \
        struct req_t req;                                                                  \
        struct resp_t resp;                                                                \
        struct api_error_resp err;                                                         \
                                                                                           \
        assert_int_equal(api_schema_request(API_OP_##op)->size, sizeof(req));              \
        assert_int_equal(api_schema_response(API_OP_##op)->size, sizeof(resp));            \
        assert_int_equal(tv_sample_fill(api_schema_request(API_OP_##op), &req,             \
                                        (unsigned)id * 7, TV_SAMPLE_ALL),                  \
                         0);                                                               \
        memset(&err, 0x5a, sizeof(err));                                                   \
        assert_int_equal(api_call_##lower(c, &req, &resp, &err), 0);                       \
        expect_sample(API_OP_##op, &resp, ++id);                                           \
        assert_int_equal(err.message[0], 0); /* zeroed on success */                       \
        api_msg_cleanup(api_schema_request(API_OP_##op), &req);                            \
        api_msg_cleanup(api_schema_response(API_OP_##op), &resp);                          \
    } while (0);
    API_MSG_LIST(CALL_ONE)
#undef CALL_ONE
    assert_int_equal(api_client_in_flight(c), 0);
    /* One connection served them all, and the requests all decoded. */
    assert_int_equal(atomic_load(&hc.count), (int)id);
    api_client_free(c);
    tv_test_server_stop(s);
}

/* The client's use of replies relies on this: a decoded response never
 * borrows from the receive buffer, which is wiped after decoding. */
static void
assert_no_blob(const struct api_schema *s)
{
    for (size_t i = 0; i < s->num_fields; i++) {
        assert_int_not_equal(api_tag_info(s->fields[i].tag)->type, API_T_BLOB);
        if (s->fields[i].item != NULL)
            assert_no_blob(s->fields[i].item);
    }
}

static void
test_responses_own_their_bytes(void **state)
{
    (void)state;
#define NO_BLOB(op, lower, req_t, resp_t) assert_no_blob(api_schema_response(API_OP_##op));
    API_MSG_LIST(NO_BLOB)
#undef NO_BLOB
    assert_no_blob(api_schema_error());
}

static void
test_error_reply(void **state)
{
    struct handler_ctx hc = {MODE_ERROR, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    struct api_ping_req req;
    struct api_ping_resp resp;
    struct api_status_resp st;
    struct api_empty none;
    struct api_error_resp err;
    struct api_reply reply;
    uint64_t id = 0;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    c = new_client(&cfg);
    memset(&req, 0, sizeof(req));
    memset(&none, 0, sizeof(none));
    memset(&resp, 0x5a, sizeof(resp));
    assert_int_equal(api_call_ping(c, &req, &resp, &err), -API_STATUS_NOT_FOUND);
    assert_string_equal(err.message, "no such card");
    assert_true(err.has_error_tag);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    assert_false(err.has_rule);
    assert_false(resp.has_echo); /* zeroed */
    assert_int_equal(resp.server_time, 0);
    assert_string_equal(api_strerror(-API_STATUS_NOT_FOUND), "NOT_FOUND");

    /* The body's every field comes through; the connection stays. */
    assert_int_equal(api_call_status(c, &none, &st, &err), -API_STATUS_LIMIT_EXCEEDED);
    assert_string_equal(err.message, "mandate rule refused");
    assert_true(err.has_rule);
    assert_string_equal(err.rule, "max_amount");
    assert_true(err.has_retry_after_ms);
    assert_int_equal(err.retry_after_ms, 1500);
    /* err may be NULL. */
    assert_int_equal(api_call_ping(c, &req, &resp, NULL), -API_STATUS_NOT_FOUND);

    /* Pipelined: the error body is in the reply, no message struct. */
    assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), 0);
    assert_int_equal(api_client_collect(c, &reply), 0);
    assert_int_equal(reply.request_id, id);
    assert_int_equal(reply.opcode, API_OP_PING);
    assert_int_equal(reply.status, -API_STATUS_NOT_FOUND);
    assert_null(reply.msg);
    assert_string_equal(reply.error.message, "no such card");
    api_reply_cleanup(&reply);
    api_reply_cleanup(NULL);
    api_client_free(c);
    tv_test_server_stop(s);
}

/* ---- pipelining ------------------------------------------------------------------------ */

static const uint16_t all_ops[] = {
#define OP_ROW(op, lower, req_t, resp_t) API_OP_##op,
    API_MSG_LIST(OP_ROW)
#undef OP_ROW
};
#define NUM_OPS (sizeof(all_ops) / sizeof(all_ops[0]))

static int
submit_sample(struct api_client *c, uint16_t op, unsigned seed, uint64_t *id)
{
    const struct api_schema *rs = api_schema_request(op);
    void *req = malloc(rs->size);
    int r;

    assert_non_null(req);
    assert_int_equal(tv_sample_fill(rs, req, seed, TV_SAMPLE_ALL), 0);
    r = api_client_submit(c, op, req, id);
    api_msg_cleanup(rs, req);
    free(req);
    return r;
}

static void
pipeline(struct api_client *c, unsigned num)
{
    uint64_t ids[PIPELINE_REQUESTS] = {0};
    uint16_t ops[PIPELINE_REQUESTS];
    bool seen[PIPELINE_REQUESTS] = {false};
    uint64_t last = 0;
    unsigned out_of_order = 0;

    assert_true(num <= PIPELINE_REQUESTS);
    for (unsigned i = 0; i < num; i++) {
        ops[i] = all_ops[i % NUM_OPS];
        assert_int_equal(submit_sample(c, ops[i], i, &ids[i]), 0);
        assert_true(i == 0 || ids[i] == ids[i - 1] + 1);
    }
    assert_int_equal(api_client_in_flight(c), num);
    for (unsigned k = 0; k < num; k++) {
        struct api_reply reply;
        unsigned i;

        assert_int_equal(api_client_collect(c, &reply), 0);
        assert_true(reply.request_id >= ids[0] && reply.request_id < ids[0] + num);
        i = (unsigned)(reply.request_id - ids[0]);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(reply.opcode, ops[i]);
        assert_int_equal(reply.status, 0);
        assert_non_null(reply.msg);
        assert_ptr_equal(reply.schema, api_schema_response(ops[i]));
        expect_sample(ops[i], reply.msg, reply.request_id);
        if (reply.request_id < last)
            out_of_order++;
        last = reply.request_id;
        api_reply_cleanup(&reply);
    }
    assert_int_equal(api_client_in_flight(c), 0);
    if (num > 1)
        assert_true(out_of_order > 0); /* the server reversed its batches */
}

static void
test_pipeline_reverse(void **state)
{
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 1, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    struct api_reply reply;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    cfg.max_in_flight = 256;
    c = new_client(&cfg);
    pipeline(c, PIPELINE_REQUESTS);
    assert_int_equal(api_client_collect(c, &reply), API_ERR_INVALID_ARG); /* nothing in flight */
    /* Blocking calls work again once the pipeline is empty; ids continue. */
    ping(c, 0, PIPELINE_REQUESTS + 1);
    pipeline(c, PIPELINE_REQUESTS);
    assert_int_equal(atomic_load(&hc.count), 2 * PIPELINE_REQUESTS + 1);
    api_client_free(c);
    tv_test_server_stop(s);
}

static void
test_busy(void **state)
{
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    struct api_reply reply;
    struct api_ping_req req;
    struct api_ping_resp resp;
    uint64_t id;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    cfg.max_in_flight = 4;
    c = new_client(&cfg);
    memset(&req, 0, sizeof(req));
    for (int i = 0; i < 4; i++)
        assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), 0);
    assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), API_ERR_BUSY);
    assert_int_equal(api_client_in_flight(c), 4);
    /* Blocking call while the pipeline is busy. */
    assert_int_equal(api_call_ping(c, &req, &resp, NULL), API_ERR_BUSY);
    /* A collected reply frees a slot. */
    assert_int_equal(api_client_collect(c, &reply), 0);
    api_reply_cleanup(&reply);
    assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), 0);
    assert_int_equal(id, 5);
    /* Three still in flight: still BUSY. */
    assert_int_equal(api_client_collect(c, &reply), 0);
    api_reply_cleanup(&reply);
    assert_int_equal(api_call_ping(c, &req, &resp, NULL), API_ERR_BUSY);
    while (api_client_in_flight(c) > 0) {
        assert_int_equal(api_client_collect(c, &reply), 0);
        api_reply_cleanup(&reply);
    }
    ping(c, 0, 6);
    /* Bad arguments. */
    assert_int_equal(api_client_submit(c, 0x7777, &req, &id), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_submit(c, API_OP_PING, NULL, &id), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_call(c, 0x7777, &req, &resp, NULL), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_call(NULL, API_OP_PING, &req, &resp, NULL), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_collect(c, NULL), API_ERR_INVALID_ARG);
    /* A value the encoder refuses is never sent, and uses no id. */
    req.has_echo = true;
    req.echo.len = API_ECHO_MAX + 1;
    assert_int_equal(api_call_ping(c, &req, &resp, NULL), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_in_flight(c), 0);
    ping(c, 0, 7);
    api_client_free(c);
    tv_test_server_stop(s);
}

/* ---- TLS and connecting ------------------------------------------------------------------- */

static void
test_tls_refusals(void **state)
{
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    (void)state;

    /* Our certificate from another CA: the server refuses it. In TLS 1.3
     * that alert comes after our side of the handshake, at the first call. */
    tls_config(&cfg, tv_test_server_port(s));
    cfg.cert_file = cert_path("rogue-client.pem");
    cfg.key_file = cert_path("rogue-client.key");
    c = new_client(&cfg);
    ping(c, API_ERR_TLS, 0);
    api_client_free(c);

    /* The server checked against the wrong CA. */
    tls_config(&cfg, tv_test_server_port(s));
    cfg.ca_file = cert_path("rogue-ca.pem");
    c = new_client(&cfg);
    assert_int_equal(api_client_connect(c), API_ERR_TLS);
    ping(c, API_ERR_TLS, 0);
    api_client_free(c);

    /* A name the certificate does not carry, as a DNS name and as an IP. */
    tls_config(&cfg, tv_test_server_port(s));
    cfg.server_name = "vault.example";
    c = new_client(&cfg);
    assert_int_equal(api_client_connect(c), API_ERR_TLS);
    api_client_free(c);
    tls_config(&cfg, tv_test_server_port(s));
    cfg.host = "127.0.0.1";
    cfg.server_name = "127.0.0.2";
    c = new_client(&cfg);
    assert_int_equal(api_client_connect(c), API_ERR_TLS);
    api_client_free(c);

    /* The IP literal the certificate does carry; and the name given apart
     * from the host. */
    tls_config(&cfg, tv_test_server_port(s));
    cfg.host = "127.0.0.1";
    c = new_client(&cfg);
    assert_int_equal(api_client_connect(c), 0);
    assert_int_equal(api_client_connect(c), 0); /* already connected */
    api_client_free(c);
    tls_config(&cfg, tv_test_server_port(s));
    cfg.host = "127.0.0.1";
    cfg.server_name = "localhost";
    c = new_client(&cfg);
    ping(c, 0, 1);
    api_client_free(c);
    tv_test_server_stop(s);
}

static void
test_connect_refused(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    struct api_client_config cfg;
    struct api_client *c;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    (void)state;

    /* A port that was just free: nobody listens there. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    tls_config(&cfg, ntohs(sin.sin_port));
    c = new_client(&cfg);
    assert_int_equal(api_client_connect(c), API_ERR_CONNECT);
    ping(c, API_ERR_CONNECT, 0);
    api_client_free(c);

    /* No Unix socket at the path. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.unix_path = "/nonexistent/tokenvault.sock";
    c = new_client(&cfg);
    ping(c, API_ERR_CONNECT, 0);
    api_client_free(c);
}

/* A listener that accepts TCP (the kernel does) but never speaks TLS. */
static void
test_handshake_timeout(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    struct api_client_config cfg;
    struct api_client *c;
    struct timespec t0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    (void)state;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    tls_config(&cfg, ntohs(sin.sin_port));
    cfg.handshake_timeout_ms = 200;
    c = new_client(&cfg);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(api_client_connect(c), API_ERR_TIMEOUT);
    assert_true(elapsed_ms(&t0) >= 150);
    assert_true(elapsed_ms(&t0) < 3000);
    api_client_free(c);
    close(fd);
}

/* ---- the connection failing -------------------------------------------------------------- */

static void
test_request_timeout(void **state)
{
    struct handler_ctx hc = {MODE_SILENT_FIRST, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    struct timespec t0;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    cfg.request_timeout_ms = TEST_TIMEOUT_MS;
    c = new_client(&cfg);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ping(c, API_ERR_TIMEOUT, 0);
    assert_true(elapsed_ms(&t0) >= TEST_TIMEOUT_MS - 50);
    assert_true(elapsed_ms(&t0) < 5000);
    assert_int_equal(api_client_in_flight(c), 0);
    /* The next call opens a new connection; request 1 is never sent again,
     * and its id is not reused. */
    ping(c, 0, 2);
    assert_int_equal(atomic_load(&hc.count), 2);
    api_client_free(c);
    tv_test_server_stop(s);
}

static void
check_reconnect_after_close(const char *unix_sock)
{
    struct handler_ctx hc = {MODE_CLOSE_AFTER, 0};
    struct tv_test_server *s = start_server(&hc, 0, unix_sock);
    struct api_client_config cfg;
    struct api_client *c;

    if (unix_sock != NULL) {
        memset(&cfg, 0, sizeof(cfg));
        cfg.unix_path = unix_sock;
    } else {
        tls_config(&cfg, tv_test_server_port(s));
    }
    c = new_client(&cfg);
    ping(c, 0, 1);
    /* The server closed the connection after its reply (an idle timeout);
     * the client notices before it sends, so no request is lost. */
    sleep_ms(100);
    ping(c, 0, 2);
    ping(c, 0, 3);
    assert_int_equal(atomic_load(&hc.count), 3);
    api_client_free(c);
    tv_test_server_stop(s);
}

static void
test_reconnect_after_close(void **state)
{
    (void)state;
    check_reconnect_after_close(NULL);
}

static void
test_close_mid_request(void **state)
{
    struct handler_ctx hc = {MODE_CLOSE_FIRST, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    c = new_client(&cfg);
    ping(c, API_ERR_CONNECTION, 0);
    ping(c, 0, 2);
    /* Half a frame, then the close. */
    atomic_store(&hc.mode, MODE_TRUNCATED_CLOSE);
    ping(c, API_ERR_CONNECTION, 0);
    atomic_store(&hc.mode, MODE_SAMPLE);
    ping(c, 0, 4);
    api_client_free(c);
    tv_test_server_stop(s);
}

/* Each hostile reply: API_ERR_PROTOCOL, the connection closed, and the next
 * call fine on a new one. */
static void
test_hostile_replies(void **state)
{
    static const enum mode modes[] = {MODE_UNKNOWN_ID, MODE_WRONG_OPCODE, MODE_BAD_MAGIC,
                                      MODE_TOO_LONG,   MODE_REQUEST_FLAGS, MODE_BAD_FIELD};
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c;
    struct api_reply reply;
    struct api_ping_req req;
    uint64_t id = 0, next = 1;
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    c = new_client(&cfg);
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        atomic_store(&hc.mode, modes[i]);
        ping(c, API_ERR_PROTOCOL, 0);
        next++;
        atomic_store(&hc.mode, MODE_SAMPLE);
        ping(c, 0, next++);
    }
    /* Pipelined: the same, and the other requests in flight are forgotten. */
    memset(&req, 0, sizeof(req));
    assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), 0);
    assert_int_equal(api_client_submit(c, API_OP_PING, &req, &id), 0);
    atomic_store(&hc.mode, MODE_UNKNOWN_ID);
    assert_int_equal(api_client_collect(c, &reply), API_ERR_PROTOCOL);
    assert_int_equal(api_client_in_flight(c), 0);
    atomic_store(&hc.mode, MODE_SAMPLE);
    ping(c, 0, id + 1);
    api_client_free(c);
    tv_test_server_stop(s);
}

/* Requests pile onto a connection the server has closed: the writes fail
 * with EPIPE or a reset, never with SIGPIPE (which would end this process). */
static void
check_no_sigpipe(const char *unix_sock)
{
    static uint8_t packet[API_PACKET_MAX];
    struct handler_ctx hc = {MODE_CLOSE_FIRST, 0};
    struct tv_test_server *s = start_server(&hc, 0, unix_sock);
    struct api_wallet_decrypt_req req;
    struct api_client_config cfg;
    struct api_client *c;
    struct api_reply reply;
    uint64_t id = 0;
    int r = 0;

    if (unix_sock != NULL) {
        memset(&cfg, 0, sizeof(cfg));
        cfg.unix_path = unix_sock;
    } else {
        tls_config(&cfg, tv_test_server_port(s));
    }
    c = new_client(&cfg);
    assert_int_equal(tv_sample_fill(api_schema_request(API_OP_WALLET_DECRYPT), &req, 1,
                                    TV_SAMPLE_REQUIRED),
                     0);
    memset(packet, '{', sizeof(packet));
    req.packet.data = packet;
    req.packet.len = sizeof(packet);
    /* Each request is larger than the send batch, so each is sent at once. */
    for (int i = 0; i < 8 && r == 0; i++) {
        r = api_client_submit(c, API_OP_WALLET_DECRYPT, &req, &id);
        sleep_ms(20);
    }
    if (r == 0)
        r = api_client_collect(c, &reply);
    assert_int_equal(r, API_ERR_CONNECTION);
    assert_int_equal(api_client_in_flight(c), 0);
    ping(c, 0, 0); /* reconnects */
    api_client_free(c);
    tv_test_server_stop(s);
}

static void
test_no_sigpipe(void **state)
{
    (void)state;
    check_no_sigpipe(NULL);
    check_no_sigpipe(unix_path);
}

/* ---- configuration ---------------------------------------------------------------------- */

static void
test_pem_in_memory(void **state)
{
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 0, NULL);
    struct api_client_config cfg;
    struct api_client *c = NULL;
    char *ca = slurp(ca_file), *cert = slurp(cert_file), *key = slurp(key_file);
    (void)state;

    tls_config(&cfg, tv_test_server_port(s));
    cfg.ca_file = cfg.cert_file = cfg.key_file = NULL;
    cfg.ca_pem = ca;
    cfg.cert_pem = cert;
    cfg.key_pem = key;
    c = new_client(&cfg);
    /* The config is copied: the caller may wipe its PEM at once. */
    memset(key, 0, strlen(key));
    ping(c, 0, 1);
    api_client_free(c);

    /* Mixed: files for some, PEM for others. */
    tls_config(&cfg, tv_test_server_port(s));
    cfg.ca_file = NULL;
    cfg.ca_pem = ca;
    c = new_client(&cfg);
    ping(c, 0, 1);
    api_client_free(c);

    /* Text that is not PEM. */
    tls_config(&cfg, tv_test_server_port(s));
    cfg.cert_file = NULL;
    cfg.cert_pem = "not a certificate";
    c = NULL;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    assert_null(c);
    tls_config(&cfg, tv_test_server_port(s));
    cfg.ca_file = NULL;
    cfg.ca_pem = "";
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    free(ca);
    free(cert);
    free(key);
    tv_test_server_stop(s);
}

static void
test_config_errors(void **state)
{
    struct api_client_config cfg;
    struct api_client *c = NULL;
    char *key;
    (void)state;

    /* A key that is not the certificate's. */
    tls_config(&cfg, 7443);
    cfg.key_file = cert_path("server.key");
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    key = slurp(cert_path("rogue-client.key"));
    tls_config(&cfg, 7443);
    cfg.key_file = NULL;
    cfg.key_pem = key;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    free(key);
    /* An encrypted key: refused, never a passphrase prompt on the terminal. */
    {
        char cmd[512], *enc = cert_path("client-enc.key");

        snprintf(cmd, sizeof(cmd),
                 "openssl pkey -in %s -aes256 -passout pass:secret -out %s", key_file, enc);
        assert_int_equal(system(cmd), 0);
        tls_config(&cfg, 7443);
        cfg.key_file = enc;
        assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
        key = slurp(enc);
        tls_config(&cfg, 7443);
        cfg.key_file = NULL;
        cfg.key_pem = key;
        assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
        free(key);
    }
    /* Files that are missing or not what they should be. */
    tls_config(&cfg, 7443);
    cfg.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    tls_config(&cfg, 7443);
    cfg.cert_file = key_file;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    tls_config(&cfg, 7443);
    cfg.key_file = cert_file;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_CONFIG);
    /* Structure: exactly one of each pair, a destination, a port. */
    tls_config(&cfg, 7443);
    cfg.cert_pem = "x";
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    tls_config(&cfg, 7443);
    cfg.ca_file = NULL;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    tls_config(&cfg, 7443);
    cfg.key_file = NULL;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    tls_config(&cfg, 7443);
    cfg.unix_path = unix_path;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    tls_config(&cfg, 0);
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    tls_config(&cfg, 7443);
    cfg.host = NULL;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    tls_config(&cfg, 7443);
    cfg.max_in_flight = API_CLIENT_IN_FLIGHT_MAX + 1;
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    memset(&cfg, 0, sizeof(cfg));
    cfg.unix_path = "/tmp/a-path-longer-than-sun-path-allows-for-a-unix-socket-"
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    assert_int_equal(api_client_new(&c, &cfg), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_new(NULL, &cfg), API_ERR_INVALID_ARG);
    assert_int_equal(api_client_new(&c, NULL), API_ERR_INVALID_ARG);
    assert_null(c);
    /* Everything accepts NULL. */
    api_client_free(NULL);
    api_client_close(NULL);
    assert_int_equal(api_client_in_flight(NULL), 0);
    assert_int_equal(api_client_connect(NULL), API_ERR_INVALID_ARG);
}

/* ---- the Unix socket ---------------------------------------------------------------------- */

static void
test_unix_socket(void **state)
{
    struct handler_ctx hc = {MODE_SAMPLE, 0};
    struct tv_test_server *s = start_server(&hc, 1, unix_path);
    struct api_client_config cfg;
    struct api_client *c;
    struct api_status_resp st;
    struct api_empty none;
    (void)state;

    memset(&cfg, 0, sizeof(cfg));
    cfg.unix_path = unix_path;
    cfg.max_in_flight = 256;
    /* TLS fields do not apply to the Unix socket and are ignored. */
    cfg.ca_file = "/nonexistent/ca.pem";
    c = new_client(&cfg);
    assert_int_equal(tv_test_server_port(s), 0);
    ping(c, 0, 1);
    memset(&none, 0, sizeof(none));
    assert_int_equal(api_call_status(c, &none, &st, NULL), 0);
    expect_sample(API_OP_STATUS, &st, 2);
    pipeline(c, PIPELINE_REQUESTS);
    api_client_close(c);
    ping(c, 0, PIPELINE_REQUESTS + 3);
    api_client_free(c);
    tv_test_server_stop(s);
    check_reconnect_after_close(unix_path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_opcode),
        cmocka_unit_test(test_responses_own_their_bytes),
        cmocka_unit_test(test_error_reply),
        cmocka_unit_test(test_pipeline_reverse),
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_tls_refusals),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_reconnect_after_close),
        cmocka_unit_test(test_close_mid_request),
        cmocka_unit_test(test_hostile_replies),
        cmocka_unit_test(test_no_sigpipe),
        cmocka_unit_test(test_pem_in_memory),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_unix_socket),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
