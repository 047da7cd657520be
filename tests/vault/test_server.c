/*
 * test_server.c - the RPC server on its own: its libuv loop runs in a thread,
 * clients use real sockets, the real client library and raw TLS for the bytes
 * the library will not send. A test dispatcher answers PING at once, CARD_GET
 * with NOT_FOUND (noting what the server told it about the request), and
 * holds STATUS requests until the test answers them from its own thread.
 *
 * Each test starts its own server with the bounds it needs and stops it at
 * the end; stopping checks that the loop has no handle left, and the suite
 * runs under LeakSanitizer, so a connection or request not freed fails it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api/client.h"
#include "api/frame.h"
#include "tests/support/test_server.h"
#include "vault/config.h"
#include "vault/log.h"
#include "vault/metrics.h"
#include "vault/server.h"

/* Small bounds keep the tests fast (the config's minimums are 100 ms for the
 * handshake and 1000 ms idle). */
#define HANDSHAKE_MS 300u
#define IDLE_MS 1000u
#define DEFAULT_CONNS 16u
#define DEFAULT_IN_FLIGHT 8u
/* Requests the dispatcher can hold at once. */
#define HELD_MAX 64u
/* How long a test waits for something the server does at once, and the
 * socket timeout of raw connections: far above what loopback needs. */
#define WAIT_MS 10000u
#define SOCK_TIMEOUT_S 5
/* How often a test looks again at what the server has done. */
#define POLL_US 10000
/* Time for the server to notice a close on loopback (nothing shows it). */
#define CLOSE_SEEN_US 200000
/* A close "at once" comes well before the idle timeout could explain it; a
 * close "after a timeout" comes within PROMPT_S of it. */
#define AT_ONCE_S (IDLE_MS / 2000.0)
#define PROMPT_S 2.0
/* The frame timeout test waits VAULT_FRAME_TIMEOUT_MS; its socket waits longer. */
#define FRAME_TEST_TIMEOUT_S 15
#define RESP_MAX (API_LEN_PREFIX + API_FRAME_MAX)
/* Pings per write in the backpressure test, and the most written before the
 * server must have stopped reading (far more than its buffers plus the
 * kernel's take). */
#define PUMP_BATCH 256u
#define PUMP_MAX_BYTES (256u * 1024u * 1024u)
/* A send blocked this long means the server has stopped reading; well under
 * NOT_READING_IDLE_MS, after which the server closes the connection (longer
 * than IDLE_MS, so a loaded machine still sees the send block first). */
#define SEND_BLOCKED_US 300000
#define NOT_READING_IDLE_MS 3000u
#define SMALL_SOCKET_BUF 4096

static char dir[64];
static char conf_path[128], removed_path[128], officer_path[128], log_path[128];
static char ca_file[128], cert_file[128], key_file[128];
static int log_fd = -1;

/* The server and its loop thread. */
static struct {
    uv_loop_t loop;
    uv_async_t cmd;
    pthread_t thread;
    struct vault_server *srv;
    struct vault_config *cfg;
    struct vault_config *cfg_next; /* given by set_config, freed at stop */
    struct vault_metrics *metrics;
    uint16_t port;
    bool running; /* the loop thread runs */
} h;

/* Shared between the loop thread and the test thread, under mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct vault_request *held[HELD_MAX];
static unsigned num_held;
static bool held_overflow;
static void (*job_fn)(void *);
static void *job_arg;
static bool job_done;
static bool drained;

/* What the dispatcher saw of the last CARD_GET. */
static struct {
    char client[API_ID_MAX + 1];
    bool officer;
    bool has_client_cfg;
    bool has_merchant;
    char merchant[API_ID_MAX + 1];
    uint64_t received_ns;
} seen;

/* ---- the dispatcher (loop thread: no cmocka asserts here) ------------------------------- */

static void
answer_ping(struct vault_request *req)
{
    const struct api_ping_req *q = req->frame.msg;
    struct api_ping_resp resp;

    memset(&resp, 0, sizeof(resp));
    resp.has_echo = q->has_echo;
    resp.echo.len = q->echo.len;
    memcpy(resp.echo.data, q->echo.data, q->echo.len);
    resp.server_time = (uint64_t)time(NULL);
    vault_request_reply(req, &resp);
}

static void
dispatch(void *ctx, struct vault_request *req)
{
    (void)ctx;
    switch (req->frame.hdr.opcode) {
    case API_OP_PING:
        answer_ping(req);
        break;
    case API_OP_STATUS:
        pthread_mutex_lock(&mu);
        if (num_held < HELD_MAX) {
            held[num_held++] = req;
            req = NULL;
        } else {
            held_overflow = true;
        }
        pthread_cond_broadcast(&cv);
        pthread_mutex_unlock(&mu);
        if (req != NULL)
            vault_request_error(req, API_STATUS_INTERNAL, 0, "test holds too many", 0);
        break;
    case API_OP_CARD_GET:
        pthread_mutex_lock(&mu);
        snprintf(seen.client, sizeof(seen.client), "%s", req->client);
        seen.officer = req->officer;
        seen.has_client_cfg = req->client_cfg != NULL;
        seen.has_merchant = req->merchant != NULL;
        snprintf(seen.merchant, sizeof(seen.merchant), "%s",
                 req->merchant != NULL ? req->merchant : "");
        seen.received_ns = req->received_ns;
        pthread_mutex_unlock(&mu);
        vault_request_error(req, API_STATUS_NOT_FOUND, API_TAG_TOKEN, "no such card", 0);
        break;
    default:
        vault_request_error(req, API_STATUS_UNKNOWN_OPCODE, 0, "not served by the test", 0);
        break;
    }
}

/* Answers the |n| oldest held STATUS requests OK, from the calling thread. */
static void
release_held(unsigned n)
{
    struct api_status_resp st;
    struct vault_request *take[HELD_MAX];

    memset(&st, 0, sizeof(st));
    snprintf(st.version, sizeof(st.version), "test");
    pthread_mutex_lock(&mu);
    if (n > num_held)
        n = num_held;
    /* held is an array of pointers: sizeof(held[0]) is a pointer's size. */
    memcpy(take, held, n * sizeof(held[0])); /* NOLINT(bugprone-sizeof-expression) */
    /* NOLINTNEXTLINE(bugprone-sizeof-expression) */
    memmove(held, held + n, (num_held - n) * sizeof(held[0]));
    num_held -= n;
    pthread_mutex_unlock(&mu);
    for (unsigned i = 0; i < n; i++)
        vault_request_reply(take[i], &st);
}

static void
deadline_after(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000u;
    ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until the dispatcher holds |n| requests; false after WAIT_MS. */
static bool
wait_held(unsigned n)
{
    struct timespec until;
    bool ok;

    deadline_after(&until, WAIT_MS);
    pthread_mutex_lock(&mu);
    while (num_held < n && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    ok = num_held >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static double
now_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- running things on the loop --------------------------------------------------------- */

static void
on_cmd(uv_async_t *a)
{
    void (*fn)(void *);
    void *arg;

    (void)a;
    pthread_mutex_lock(&mu);
    fn = job_fn;
    arg = job_arg;
    job_fn = NULL;
    pthread_mutex_unlock(&mu);
    if (fn == NULL)
        return;
    fn(arg);
    pthread_mutex_lock(&mu);
    job_done = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Runs |fn| on the loop thread (the server's functions are loop-only) and
 * waits for it. */
static void
on_loop(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&mu);
    job_fn = fn;
    job_arg = arg;
    job_done = false;
    pthread_mutex_unlock(&mu);
    assert_int_equal(uv_async_send(&h.cmd), 0);
    pthread_mutex_lock(&mu);
    while (!job_done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

struct counts {
    unsigned connections, in_flight;
};

static void
get_counts(void *arg)
{
    struct counts *c = arg;

    c->connections = vault_server_connections(h.srv);
    c->in_flight = vault_server_in_flight(h.srv);
}

/* Waits until the server counts |conns| connections and |in_flight|
 * requests; false after WAIT_MS. */
static bool
wait_counts(unsigned conns, unsigned in_flight)
{
    struct counts c = {0};
    double until = now_s() + WAIT_MS / 1000.0;

    for (;;) {
        on_loop(get_counts, &c);
        if (c.connections == conns && c.in_flight == in_flight)
            return true;
        if (now_s() > until)
            return false;
        usleep(POLL_US);
    }
}

static void *
loop_main(void *arg)
{
    (void)arg;
    (void)uv_run(&h.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- config and server lifetime --------------------------------------------------------- */

static void
write_config(const char *path, bool with_gateway, unsigned max_conns, unsigned max_in_flight,
             unsigned idle_ms)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fprintf(f,
            "[service]\n"
            "listen = 127.0.0.1:7443\n"
            "officer_socket = %s\n"
            "max_connections = %u\n"
            "max_in_flight = %u\n"
            "handshake_timeout_ms = %u\n"
            "idle_timeout_ms = %u\n"
            "log_level = info\n"
            "[tls]\n"
            "cert = %s/server.pem\n"
            "key = %s/server.key\n"
            "client_ca = %s/ca.pem\n"
            "[hsm]\n"
            "module = " TV_SOFTHSM_MODULE "\n"
            "token = vault\n"
            "pin_file = %s/pin\n"
            "[store]\n"
            "path = %s/data\n"
            "[client gateway-list]\n"
            "subject = CN=gateway-list\n"
            "roles = list\n"
            "merchants = m-1\n",
            officer_path, max_conns, max_in_flight, HANDSHAKE_MS, idle_ms, dir, dir, dir, dir, dir);
    if (with_gateway)
        fprintf(f, "[client gateway-test]\n"
                   "subject = CN=gateway-test\n"
                   "roles = store, list\n"
                   "merchants = *\n");
    assert_int_equal(fclose(f), 0);
}

static struct vault_config *
load_config(const char *path)
{
    struct vault_config *cfg = NULL;
    char err[VAULT_CONFIG_ERR_MAX];

    if (vault_config_load(&cfg, path, err, sizeof(err)) != 0)
        fail_msg("config: %s", err);
    cfg->listen_port = 0; /* any free port; the file only takes 1..65535 */
    return cfg;
}

static void
server_start_idle(unsigned max_conns, unsigned max_in_flight, unsigned idle_ms)
{
    struct vault_server_config sc;
    char err[256];

    memset(&h, 0, sizeof(h));
    pthread_mutex_lock(&mu);
    num_held = 0;
    held_overflow = false;
    drained = false;
    memset(&seen, 0, sizeof(seen));
    pthread_mutex_unlock(&mu);
    write_config(conf_path, true, max_conns, max_in_flight, idle_ms);
    h.cfg = load_config(conf_path);
    assert_int_equal(metrics_new(&h.metrics), 0);
    assert_int_equal(uv_loop_init(&h.loop), 0);
    assert_int_equal(uv_async_init(&h.loop, &h.cmd, on_cmd), 0);
    memset(&sc, 0, sizeof(sc));
    sc.loop = &h.loop;
    sc.cfg = h.cfg;
    sc.dispatch = dispatch;
    sc.metrics = h.metrics;
    if (vault_server_start(&h.srv, &sc, err, sizeof(err)) != 0)
        fail_msg("server: %s", err);
    h.port = vault_server_port(h.srv);
    assert_true(h.port != 0);
    assert_int_equal(pthread_create(&h.thread, NULL, loop_main, NULL), 0);
    h.running = true;
}

static void
server_start(unsigned max_conns, unsigned max_in_flight)
{
    server_start_idle(max_conns, max_in_flight, IDLE_MS);
}

static void
close_all(void *arg)
{
    (void)arg;
    vault_server_close(h.srv);
    h.srv = NULL;
    uv_close((uv_handle_t *)&h.cmd, NULL);
}

/* Closes the server with whatever is still held, then answers those
 * requests: the server must free them although their connections are gone,
 * and its loop must end with every handle closed. */
static void
server_stop(void)
{
    on_loop(close_all, NULL);
    release_held(HELD_MAX);
    assert_int_equal(pthread_join(h.thread, NULL), 0);
    assert_int_equal(uv_loop_close(&h.loop), 0);
    assert_false(held_overflow);
    metrics_free(h.metrics);
    vault_config_free(h.cfg);
    vault_config_free(h.cfg_next);
    memset(&h, 0, sizeof(h));
}

/* ---- clients ---------------------------------------------------------------------------- */

static struct api_client *
tls_client(void)
{
    struct api_client_config cfg;
    struct api_client *c = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.port = h.port;
    cfg.ca_file = ca_file;
    cfg.cert_file = cert_file;
    cfg.key_file = key_file;
    cfg.request_timeout_ms = WAIT_MS;
    assert_int_equal(api_client_new(&c, &cfg), 0);
    return c;
}

static struct api_client *
officer_client(void)
{
    struct api_client_config cfg;
    struct api_client *c = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.unix_path = officer_path;
    cfg.request_timeout_ms = WAIT_MS;
    assert_int_equal(api_client_new(&c, &cfg), 0);
    return c;
}

/* A PING with an echo; checks the echo on success. Returns what the call
 * returned. */
static int
ping(struct api_client *c, struct api_error_resp *err)
{
    struct api_ping_req q;
    struct api_ping_resp resp;
    int r;

    memset(&q, 0, sizeof(q));
    q.has_echo = true;
    q.echo.len = 5;
    memcpy(q.echo.data, "hello", 5);
    r = api_call_ping(c, &q, &resp, err);
    if (r == 0) {
        assert_true(resp.has_echo);
        assert_int_equal(resp.echo.len, 5);
        assert_memory_equal(resp.echo.data, "hello", 5);
        assert_true(resp.server_time > 0);
    }
    return r;
}

static int
card_get(struct api_client *c, struct api_error_resp *err)
{
    struct api_card_ref q;
    struct api_card_info resp;

    memset(&q, 0, sizeof(q));
    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "tok-1");
    return api_call_card_get(c, &q, &resp, err);
}

/* ---- raw connections -------------------------------------------------------------------- */

struct raw {
    SSL *ssl; /* NULL: plain TCP */
    int fd;
};

/* A TCP connection to the server, with |timeout_s| on reads and writes, and
 * socket buffers of |buf| bytes (0: the system's). */
static void
raw_tcp(struct raw *r, unsigned timeout_s, int buf)
{
    struct sockaddr_in a;
    struct timeval tv = {(time_t)timeout_s, 0};

    memset(r, 0, sizeof(*r));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(h.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
    if (buf > 0) {
        assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf)), 0);
        assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf)), 0);
    }
    assert_int_equal(connect(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

/* A TLS connection presenting |who|.pem (NULL: no certificate). Returns
 * SSL_connect's result: a TLS 1.3 client finishes before the server has
 * judged its certificate, so a refusal shows at the first read. */
static int
raw_tls(struct raw *r, const char *who, unsigned timeout_s, int buf)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char path[256];
    int n;

    assert_non_null(ctx);
    raw_tcp(r, timeout_s, buf);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca_file, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (who != NULL) {
        snprintf(path, sizeof(path), "%s/%s.pem", dir, who);
        assert_int_equal(SSL_CTX_use_certificate_file(ctx, path, SSL_FILETYPE_PEM), 1);
        snprintf(path, sizeof(path), "%s/%s.key", dir, who);
        assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM), 1);
    }
    r->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL keeps its reference */
    assert_non_null(r->ssl);
    assert_int_equal(SSL_set_fd(r->ssl, r->fd), 1);
    assert_int_equal(SSL_set1_host(r->ssl, "localhost"), 1);
    n = SSL_connect(r->ssl);
    ERR_clear_error();
    return n;
}

static void
raw_close(struct raw *r)
{
    SSL_free(r->ssl);
    close(r->fd);
    ERR_clear_error();
    memset(r, 0, sizeof(*r));
}

static int
raw_send(struct raw *r, const uint8_t *data, size_t len)
{
    if (r->ssl != NULL)
        return SSL_write(r->ssl, data, (int)len) == (int)len ? 0 : -1;
    return send(r->fd, data, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static void
raw_write(struct raw *r, const struct api_writer *w)
{
    assert_int_equal(raw_send(r, api_writer_data(w), api_writer_len(w)), 0);
}

/* Reads up to |len| bytes: >0, 0 when the server ended the connection (EOF,
 * reset or TLS alert), -1 when the socket timeout passed first. */
static int
raw_recv(struct raw *r, uint8_t *buf, size_t len)
{
    int n;

    if (r->ssl == NULL) {
        ssize_t got = recv(r->fd, buf, len, 0);

        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return -1;
        return got > 0 ? (int)got : 0;
    }
    n = SSL_read(r->ssl, buf, (int)len);
    if (n > 0)
        return n;
    n = SSL_get_error(r->ssl, n) == SSL_ERROR_WANT_READ ? -1 : 0;
    ERR_clear_error();
    return n;
}

static int
raw_read_n(struct raw *r, uint8_t *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        int n = raw_recv(r, buf + got, len - got);

        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Reads one response frame into |out| (release with api_frame_cleanup);
 * -1 when the connection ends or times out first. */
static int
raw_read(struct raw *r, struct api_frame *out)
{
    static uint8_t buf[RESP_MAX];
    struct api_field_error fe;
    uint32_t len = 0;

    if (raw_read_n(r, buf, API_LEN_PREFIX) != 0 || api_frame_length(buf, &len) != 0 ||
        raw_read_n(r, buf + API_LEN_PREFIX, len) != 0)
        return -1;
    return api_frame_decode(out, buf + API_LEN_PREFIX, len, API_DIR_RESPONSE, &fe) == 0 ? 0 : -1;
}

/* Reads one response and checks its request id, status and errorTag. */
static void
expect_answer(struct raw *r, uint64_t rid, unsigned status, uint16_t tag)
{
    struct api_frame f = {0};
    const struct api_error_resp *e;

    assert_int_equal(raw_read(r, &f), 0);
    assert_int_equal(f.hdr.request_id, rid);
    assert_int_equal(f.hdr.status, status);
    if (status != API_STATUS_OK) {
        e = f.msg;
        if (e == NULL) {
            fail_msg("status %u without an error body", status);
            return; /* not reached: cmocka's fail_msg is not declared noreturn */
        }
        assert_int_equal(e->has_error_tag ? e->error_tag : 0, tag);
    }
    api_frame_cleanup(&f);
}

/* Waits for the server to end the connection with nothing more sent (a TLS
 * alert is not data); returns the seconds it took, or fails when data comes
 * or the socket timeout passes first. */
static double
expect_closed(struct raw *r)
{
    uint8_t buf[64];
    double t0 = now_s();

    assert_int_equal(raw_recv(r, buf, sizeof(buf)), 0);
    return now_s() - t0;
}

/* Appends a request frame of |opcode| built by the encoder. */
static void
put_request(struct api_writer *w, uint16_t opcode, uint64_t rid, const void *msg)
{
    struct api_header hd = {API_VERSION, 0, opcode, 0, rid};

    assert_int_equal(api_frame_write(w, &hd, api_schema_request(opcode), msg, NULL), 0);
}

static void
put_ping(struct api_writer *w, uint64_t rid)
{
    struct api_ping_req q;

    memset(&q, 0, sizeof(q));
    q.has_echo = true;
    q.echo.len = API_ECHO_MAX;
    memset(q.echo.data, 'e', API_ECHO_MAX);
    put_request(w, API_OP_PING, rid, &q);
}

static void
put_status(struct api_writer *w, uint64_t rid)
{
    struct api_empty q = {0};

    put_request(w, API_OP_STATUS, rid, &q);
}

/* A frame header written byte by byte, for frames the encoder refuses. */
static void
put_raw_header(struct api_writer *w, size_t *mark, uint16_t magic, uint16_t opcode, uint64_t rid)
{
    assert_int_equal(api_writer_begin_u32(w, mark), 0);
    assert_int_equal(api_writer_put_u16(w, magic), 0);
    assert_int_equal(api_writer_put_u8(w, API_VERSION), 0);
    assert_int_equal(api_writer_put_u8(w, 0), 0);
    assert_int_equal(api_writer_put_u16(w, opcode), 0);
    assert_int_equal(api_writer_put_u16(w, 0), 0);
    assert_int_equal(api_writer_put_u64(w, rid), 0);
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static bool
log_has(const char *needle)
{
    char *text = slurp(log_path);
    bool found = strstr(text, needle) != NULL;

    free(text);
    return found;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    char path[160];
    int fd;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/tv-server-XXXXXX");
    if (tv_test_certs(dir) != 0)
        return -1;
    snprintf(conf_path, sizeof(conf_path), "%s/tokenvault.conf", dir);
    snprintf(removed_path, sizeof(removed_path), "%s/removed.conf", dir);
    snprintf(officer_path, sizeof(officer_path), "%s/officer.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/server.log", dir);
    snprintf(ca_file, sizeof(ca_file), "%s/ca.pem", dir);
    snprintf(cert_file, sizeof(cert_file), "%s/client.pem", dir);
    snprintf(key_file, sizeof(key_file), "%s/client.key", dir);
    /* [hsm] and [store] must name usable files, though nothing here uses them. */
    snprintf(path, sizeof(path), "%s/pin", dir);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0 || write(fd, "1234\n", 5) != 5 ||
        close(fd) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/data", dir);
    if (mkdir(path, 0700) != 0)
        return -1;
    if ((log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600)) < 0)
        return -1;
    vlog_set_fd(log_fd);
    vlog_set_level(VAULT_LOG_DEBUG);
    return 0;
}

static int
group_teardown(void **state)
{
    char cmd[128];

    (void)state;
    vlog_set_fd(2);
    close(log_fd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A test that failed half way has left its server running: stop it, so the
 * next test starts clean. */
static int
teardown(void **state)
{
    (void)state;
    if (h.running)
        server_stop();
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* PING over TLS: the answer, its log line and its metrics sample. */
static void
test_ping_tls(void **state)
{
    struct api_client *c;
    char *text = NULL;
    size_t len = 0;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    c = tls_client();
    assert_int_equal(ping(c, NULL), 0);
    assert_int_equal(ping(c, NULL), 0);
    api_client_free(c);
    assert_true(log_has("event=request op=ping status=OK rid=2 client=gateway-test ms="));
    assert_int_equal(metrics_render(h.metrics, NULL, &text, &len), 0);
    assert_non_null(strstr(text, "tokenvault_requests_total{op=\"ping\",status=\"OK\"} 2\n"));
    free(text);
    server_stop();
}

/* PING over the officer socket, which is mode 0600. */
static void
test_ping_officer(void **state)
{
    struct api_client *c;
    struct stat st;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    assert_int_equal(lstat(officer_path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    c = officer_client();
    assert_int_equal(ping(c, NULL), 0);
    api_client_free(c);
    assert_true(log_has("status=OK rid=1 client=officer ms="));
    server_stop();
    /* Closing removes the socket file. */
    assert_int_equal(lstat(officer_path, &st), -1);
}

/* The request as the dispatcher sees it: client, config entry, merchant,
 * time; and an error answer with its tag reaches the client. */
static void
test_request_fields(void **state)
{
    struct api_client *c;
    struct api_error_resp err;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    c = tls_client();
    assert_int_equal(card_get(c, &err), -API_STATUS_NOT_FOUND);
    assert_true(err.has_error_tag);
    assert_int_equal(err.error_tag, API_TAG_TOKEN);
    assert_string_equal(err.message, "no such card");
    api_client_free(c);
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.client, "gateway-test");
    assert_false(seen.officer);
    assert_true(seen.has_client_cfg);
    assert_true(seen.has_merchant);
    assert_string_equal(seen.merchant, "m-1");
    assert_true(seen.received_ns > 0);
    pthread_mutex_unlock(&mu);
    assert_true(log_has("op=card_get status=NOT_FOUND rid=1 client=gateway-test merchant=m-1 ms="));

    c = officer_client();
    assert_int_equal(card_get(c, &err), -API_STATUS_NOT_FOUND);
    api_client_free(c);
    pthread_mutex_lock(&mu);
    assert_string_equal(seen.client, "officer");
    assert_true(seen.officer);
    assert_false(seen.has_client_cfg);
    pthread_mutex_unlock(&mu);
    server_stop();
}

/* Without a client certificate, or with one from another CA, the handshake
 * fails and no frame is answered. */
static void
test_handshake_refused(void **state)
{
    static const char *const who[] = {NULL, "rogue-client"};
    struct api_writer w;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    for (size_t i = 0; i < sizeof(who) / sizeof(who[0]); i++) {
        struct raw r;

        api_writer_init(&w, RESP_MAX);
        put_ping(&w, 1);
        if (raw_tls(&r, who[i], SOCK_TIMEOUT_S, 0) == 1)
            (void)raw_send(&r, api_writer_data(&w), api_writer_len(&w));
        assert_true(expect_closed(&r) < AT_ONCE_S);
        raw_close(&r);
        api_writer_cleanup(&w);
    }
    /* Refused by TLS itself, not only by the client lookup after it. */
    assert_true(log_has("peer did not return a certificate\""));
    assert_true(log_has("certificate verify failed\""));
    assert_true(wait_counts(0, 0));
    server_stop();
}

/* A certificate from the right CA that no [client] section names: the
 * handshake completes, then the connection is closed before any frame. */
static void
test_unknown_client(void **state)
{
    struct api_writer w;
    struct raw r;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    api_writer_init(&w, RESP_MAX);
    put_ping(&w, 1);
    assert_int_equal(raw_tls(&r, "unknown-client", SOCK_TIMEOUT_S, 0), 1);
    (void)raw_send(&r, api_writer_data(&w), api_writer_len(&w));
    assert_true(expect_closed(&r) < AT_ONCE_S);
    raw_close(&r);
    api_writer_cleanup(&w);
    assert_true(log_has("event=unknown_client subject=\"CN=nobody\""));
    server_stop();
}

/* A length prefix over API_FRAME_MAX, or under a header: answered with
 * request id 0, then the connection is closed. */
static void
test_bad_length_prefix(void **state)
{
    static const struct {
        uint8_t prefix[API_LEN_PREFIX];
        unsigned status;
    } cases[] = {
        {{0x00, 0x01, 0x00, 0x01}, API_STATUS_TOO_LARGE},  /* API_FRAME_MAX + 1 */
        {{0xff, 0xff, 0xff, 0xff}, API_STATUS_TOO_LARGE},
        {{0x00, 0x00, 0x00, 0x0f}, API_STATUS_BAD_REQUEST}, /* API_HEADER_LEN - 1 */
    };

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct raw r;

        assert_int_equal(raw_tls(&r, "client", SOCK_TIMEOUT_S, 0), 1);
        assert_int_equal(raw_send(&r, cases[i].prefix, API_LEN_PREFIX), 0);
        expect_answer(&r, 0, cases[i].status, 0);
        assert_true(expect_closed(&r) < AT_ONCE_S);
        raw_close(&r);
    }
    server_stop();
}

/* Fields that do not decode, and an unknown opcode, are answered with the
 * decoder's status and tag, and the connection goes on. A header the
 * decoder refuses (bad magic) is answered, then the connection is closed. */
static void
test_decode_errors(void **state)
{
    static const uint8_t long_echo[API_ECHO_MAX + 1] = {0};
    struct api_writer w;
    size_t mark;
    struct raw r;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    assert_int_equal(raw_tls(&r, "client", SOCK_TIMEOUT_S, 0), 1);
    api_writer_init(&w, RESP_MAX);
    /* rid 1: a tag no message has */
    put_raw_header(&w, &mark, API_MAGIC, API_OP_PING, 1);
    assert_int_equal(api_writer_put_u16(&w, 0x7ffe), 0);
    assert_int_equal(api_writer_put_u32(&w, 0), 0);
    assert_int_equal(api_writer_end_u32(&w, mark), 0);
    /* rid 2: an echo one byte too long */
    put_raw_header(&w, &mark, API_MAGIC, API_OP_PING, 2);
    assert_int_equal(api_writer_put_u16(&w, API_TAG_ECHO), 0);
    assert_int_equal(api_writer_put_u32(&w, sizeof(long_echo)), 0);
    assert_int_equal(api_writer_put_bytes(&w, long_echo, sizeof(long_echo)), 0);
    assert_int_equal(api_writer_end_u32(&w, mark), 0);
    /* rid 3: a field header cut short */
    put_raw_header(&w, &mark, API_MAGIC, API_OP_PING, 3);
    assert_int_equal(api_writer_put_u16(&w, API_TAG_ECHO), 0);
    assert_int_equal(api_writer_end_u32(&w, mark), 0);
    /* rid 4: an opcode no version defines */
    put_raw_header(&w, &mark, API_MAGIC, 0x7777, 4);
    assert_int_equal(api_writer_end_u32(&w, mark), 0);
    /* rid 5: still served */
    put_ping(&w, 5);
    raw_write(&r, &w);
    expect_answer(&r, 1, API_STATUS_UNKNOWN_FIELD, 0x7ffe);
    expect_answer(&r, 2, API_STATUS_BAD_LENGTH, API_TAG_ECHO);
    expect_answer(&r, 3, API_STATUS_TRAILING_BYTES, 0);
    expect_answer(&r, 4, API_STATUS_UNKNOWN_OPCODE, 0);
    expect_answer(&r, 5, API_STATUS_OK, 0);

    /* rid 6: not our magic; the stream is not trusted any more */
    api_writer_reset(&w);
    put_raw_header(&w, &mark, 0x4854, API_OP_PING, 6);
    assert_int_equal(api_writer_end_u32(&w, mark), 0);
    put_ping(&w, 7);
    raw_write(&r, &w);
    expect_answer(&r, 6, API_STATUS_BAD_REQUEST, 0);
    assert_true(expect_closed(&r) < AT_ONCE_S);
    raw_close(&r);
    api_writer_cleanup(&w);
    server_stop();
}

/* Past max_in_flight a request is answered OVERLOADED at once with
 * retryAfterMs; the connection stays usable, other connections are served,
 * and the held requests are answered from another thread. */
static void
test_max_in_flight(void **state)
{
    struct api_client *a, *b;
    struct api_empty q = {0};
    struct api_reply reply;
    uint64_t id[3];

    (void)state;
    server_start(DEFAULT_CONNS, 2);
    a = tls_client();
    b = tls_client();
    assert_int_equal(ping(b, NULL), 0);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(api_client_submit(a, API_OP_STATUS, &q, &id[i]), 0);
    assert_int_equal(api_client_collect(a, &reply), 0);
    assert_int_equal(reply.request_id, id[2]);
    assert_int_equal(reply.status, -API_STATUS_OVERLOADED);
    assert_true(reply.error.has_retry_after_ms);
    assert_int_equal(reply.error.retry_after_ms, VAULT_RETRY_AFTER_MS);
    api_reply_cleanup(&reply);
    assert_true(wait_held(2));
    assert_true(wait_counts(2, 2));
    assert_int_equal(ping(b, NULL), 0);

    release_held(2); /* from this thread, not the loop's */
    for (unsigned i = 0; i < 2; i++) {
        assert_int_equal(api_client_collect(a, &reply), 0);
        assert_true(reply.request_id == id[0] || reply.request_id == id[1]);
        assert_int_equal(reply.status, 0);
        api_reply_cleanup(&reply);
    }
    assert_true(wait_counts(2, 0));
    assert_int_equal(ping(a, NULL), 0);
    api_client_free(a);
    api_client_free(b);
    server_stop();
}

/* A request id already in flight on the connection is BAD_REQUEST; the
 * first request with that id is still answered. */
static void
test_duplicate_id(void **state)
{
    struct api_writer w;
    struct raw r;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    assert_int_equal(raw_tls(&r, "client", SOCK_TIMEOUT_S, 0), 1);
    api_writer_init(&w, RESP_MAX);
    put_status(&w, 5);
    put_status(&w, 5);
    raw_write(&r, &w);
    expect_answer(&r, 5, API_STATUS_BAD_REQUEST, 0);
    assert_true(log_has("op=status status=BAD_REQUEST rid=5"));
    assert_true(wait_held(1));
    release_held(1);
    expect_answer(&r, 5, API_STATUS_OK, 0);
    /* Answered, the id may be used again. */
    api_writer_reset(&w);
    put_ping(&w, 5);
    raw_write(&r, &w);
    expect_answer(&r, 5, API_STATUS_OK, 0);
    raw_close(&r);
    api_writer_cleanup(&w);
    server_stop();
}

/* Past max_connections a new TCP connection is closed at once; the open ones
 * and the officer socket are still served, and a freed slot is usable. */
static void
test_max_connections(void **state)
{
    struct api_client *a, *b, *o;
    struct raw r;

    (void)state;
    server_start(2, DEFAULT_IN_FLIGHT);
    a = tls_client();
    b = tls_client();
    assert_int_equal(ping(a, NULL), 0);
    assert_int_equal(ping(b, NULL), 0);
    /* Closed before the server's first flight: no handshake. */
    assert_int_not_equal(raw_tls(&r, "client", SOCK_TIMEOUT_S, 0), 1);
    raw_close(&r);
    assert_true(log_has("reason=\"max_connections reached\""));
    assert_int_equal(ping(a, NULL), 0);
    assert_int_equal(ping(b, NULL), 0);
    o = officer_client();
    assert_int_equal(ping(o, NULL), 0);
    api_client_free(o);

    api_client_free(a);
    assert_true(wait_counts(1, 0));
    a = tls_client();
    assert_int_equal(ping(a, NULL), 0);
    api_client_free(a);
    api_client_free(b);
    server_stop();
}

/* A peer that never starts its handshake is closed after
 * handshake_timeout_ms; one that goes quiet after a request, after
 * idle_timeout_ms. */
static void
test_handshake_and_idle_timeouts(void **state)
{
    struct api_writer w;
    struct raw r;
    double t;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    raw_tcp(&r, SOCK_TIMEOUT_S, 0);
    t = expect_closed(&r);
    assert_true(t > HANDSHAKE_MS / 1000.0 * 0.8 && t < PROMPT_S);
    raw_close(&r);

    assert_int_equal(raw_tls(&r, "client", SOCK_TIMEOUT_S, 0), 1);
    api_writer_init(&w, RESP_MAX);
    put_ping(&w, 1);
    raw_write(&r, &w);
    expect_answer(&r, 1, API_STATUS_OK, 0);
    t = expect_closed(&r);
    assert_true(t > IDLE_MS / 1000.0 * 0.8 && t < IDLE_MS / 1000.0 + PROMPT_S);
    raw_close(&r);
    api_writer_cleanup(&w);
    assert_true(wait_counts(0, 0));
    server_stop();
}

/* A frame begun and left hanging is closed after VAULT_FRAME_TIMEOUT_MS (not
 * after the shorter idle timeout). The one slow test. */
static void
test_frame_timeout(void **state)
{
    struct api_writer w;
    struct raw r;
    double t;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    assert_int_equal(raw_tls(&r, "client", FRAME_TEST_TIMEOUT_S, 0), 1);
    api_writer_init(&w, RESP_MAX);
    put_ping(&w, 1);
    assert_int_equal(raw_send(&r, api_writer_data(&w), API_LEN_PREFIX + 4), 0);
    t = expect_closed(&r);
    assert_true(t > VAULT_FRAME_TIMEOUT_MS / 1000.0 - 0.5);
    assert_true(t < VAULT_FRAME_TIMEOUT_MS / 1000.0 + PROMPT_S);
    raw_close(&r);
    api_writer_cleanup(&w);
    assert_true(log_has("reason=\"frame timeout\""));
    server_stop();
}

/* A peer that sends requests and never reads the answers: the server stops
 * reading it (the peer's send blocks while the connection is still open),
 * and closes it once its writes have made no progress for idle_timeout_ms. */
static void
test_peer_not_reading(void **state)
{
    struct timeval send_wait = {0, SEND_BLOCKED_US};
    struct counts open_now = {0};
    struct api_writer w;
    size_t sent = 0;
    uint64_t rid = 1;
    struct raw r;
    int e = SSL_ERROR_NONE;

    (void)state;
    server_start_idle(DEFAULT_CONNS, DEFAULT_IN_FLIGHT, NOT_READING_IDLE_MS);
    /* Small buffers, so the answers back up and the sends block quickly. */
    assert_int_equal(raw_tls(&r, "client", SOCK_TIMEOUT_S, SMALL_SOCKET_BUF), 1);
    assert_int_equal(setsockopt(r.fd, SOL_SOCKET, SO_SNDTIMEO, &send_wait, sizeof(send_wait)), 0);
    api_writer_init(&w, PUMP_BATCH * 128u);
    while (e == SSL_ERROR_NONE) {
        int n;

        api_writer_reset(&w);
        for (unsigned i = 0; i < PUMP_BATCH; i++)
            put_ping(&w, rid++);
        n = SSL_write(r.ssl, api_writer_data(&w), (int)api_writer_len(&w));
        if (n != (int)api_writer_len(&w))
            e = SSL_get_error(r.ssl, n);
        sent += api_writer_len(&w);
        assert_true(sent < PUMP_MAX_BYTES);
    }
    ERR_clear_error();
    api_writer_cleanup(&w);
    /* Blocked, not refused: the server has stopped reading and not closed. */
    assert_int_equal(e, SSL_ERROR_WANT_WRITE);
    on_loop(get_counts, &open_now);
    assert_int_equal(open_now.connections, 1);
    assert_true(wait_counts(0, 0)); /* within WAIT_MS, once idle_timeout_ms passed */
    assert_true(log_has("reason=\"peer not reading\""));
    raw_close(&r);
    server_stop();
}

static void
drain_done(void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&mu);
    drained = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void
start_drain(void *arg)
{
    (void)arg;
    vault_server_drain(h.srv, drain_done, NULL);
}

static bool
drained_now(void)
{
    bool d;

    pthread_mutex_lock(&mu);
    d = drained;
    pthread_mutex_unlock(&mu);
    return d;
}

/* Draining: new requests get SHUTTING_DOWN, no connection is accepted, and
 * drained is called once the request in flight has been answered. */
static void
test_drain(void **state)
{
    struct api_client *b;
    struct api_writer w;
    struct raw a;
    struct stat st;
    double until;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    b = tls_client();
    assert_int_equal(ping(b, NULL), 0);
    assert_int_equal(raw_tls(&a, "client", SOCK_TIMEOUT_S, 0), 1);
    api_writer_init(&w, RESP_MAX);
    put_status(&w, 1);
    raw_write(&a, &w);
    assert_true(wait_held(1));

    on_loop(start_drain, NULL);
    assert_false(drained_now());
    assert_int_equal(ping(b, NULL), -API_STATUS_SHUTTING_DOWN);
    assert_int_equal(lstat(officer_path, &st), -1); /* the officer socket is gone too */
    {
        struct sockaddr_in sa;
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons(h.port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
        assert_int_equal(errno, ECONNREFUSED);
        close(fd);
    }
    assert_false(drained_now());

    release_held(1);
    expect_answer(&a, 1, API_STATUS_OK, 0);
    until = now_s() + WAIT_MS / 1000.0;
    while (!drained_now() && now_s() < until)
        usleep(POLL_US);
    assert_true(drained_now());
    raw_close(&a);
    api_writer_cleanup(&w);
    api_client_free(b);
    server_stop();
}

/* Requests answered (from another thread) after their connection has closed
 * are freed, and the connection with the last of them; one still held when
 * the server itself is closed is freed when server_stop answers it. */
static void
test_answer_after_close(void **state)
{
    struct api_writer w;
    struct raw a, b;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    api_writer_init(&w, RESP_MAX);
    put_status(&w, 1);
    put_status(&w, 2);
    assert_int_equal(raw_tls(&a, "client", SOCK_TIMEOUT_S, 0), 1);
    raw_write(&a, &w);
    assert_true(wait_held(2));
    api_writer_reset(&w);
    put_status(&w, 3);
    assert_int_equal(raw_tls(&b, "client", SOCK_TIMEOUT_S, 0), 1);
    raw_write(&b, &w);
    assert_true(wait_held(3));
    raw_close(&a);
    usleep(CLOSE_SEEN_US); /* the server sees the close; its requests keep the connection */
    assert_true(wait_counts(2, 3));
    release_held(1);
    assert_true(wait_counts(2, 2));
    release_held(1);
    assert_true(wait_counts(1, 1)); /* a's connection is freed with its last request */
    api_writer_cleanup(&w);
    server_stop(); /* answers b's request after the close */
    raw_close(&b);
}

static void
swap_config(void *arg)
{
    vault_server_set_config(h.srv, arg);
}

/* A reload that removes a client: its open connection's next request is
 * DENIED and the connection closed; a new connection is refused. */
static void
test_client_removed(void **state)
{
    struct api_client *c;
    struct api_error_resp err;

    (void)state;
    server_start(DEFAULT_CONNS, DEFAULT_IN_FLIGHT);
    c = tls_client();
    assert_int_equal(ping(c, NULL), 0);
    write_config(removed_path, false, DEFAULT_CONNS, DEFAULT_IN_FLIGHT, IDLE_MS);
    h.cfg_next = load_config(removed_path);
    on_loop(swap_config, h.cfg_next);
    assert_int_equal(ping(c, &err), -API_STATUS_DENIED);
    assert_true(log_has("event=client_removed client=gateway-test"));
    assert_true(wait_counts(0, 0));
    assert_true(ping(c, NULL) < 0);
    api_client_free(c);
    server_stop();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ping_tls, teardown),
        cmocka_unit_test_teardown(test_ping_officer, teardown),
        cmocka_unit_test_teardown(test_request_fields, teardown),
        cmocka_unit_test_teardown(test_handshake_refused, teardown),
        cmocka_unit_test_teardown(test_unknown_client, teardown),
        cmocka_unit_test_teardown(test_bad_length_prefix, teardown),
        cmocka_unit_test_teardown(test_decode_errors, teardown),
        cmocka_unit_test_teardown(test_max_in_flight, teardown),
        cmocka_unit_test_teardown(test_duplicate_id, teardown),
        cmocka_unit_test_teardown(test_max_connections, teardown),
        cmocka_unit_test_teardown(test_handshake_and_idle_timeouts, teardown),
        cmocka_unit_test_teardown(test_frame_timeout, teardown),
        cmocka_unit_test_teardown(test_peer_not_reading, teardown),
        cmocka_unit_test_teardown(test_drain, teardown),
        cmocka_unit_test_teardown(test_answer_after_close, teardown),
        cmocka_unit_test_teardown(test_client_removed, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
