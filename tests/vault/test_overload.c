/*
 * test_overload.c - the real tokenvaultd under hostile load, all at once:
 * ten times its allowed connections held half-open, garbage before the
 * handshake, TLS records announced and never sent, clients that send
 * requests and never read the answers, a client that writes a frame a byte
 * at a time, and oversized frames. Meanwhile a well-behaved client, already
 * connected, keeps working: every one of its requests is answered, with a
 * bounded latency, and the daemon's memory stays bounded. When the attack
 * stops, new clients connect and are served again.
 *
 * The numbers it prints (the good client's latency before and during the
 * attack, the daemon's peak memory, how many hostile connections the
 * service closed) are the overload entry of BENCHMARKS.md.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api/client.h"
#include "api/frame.h"
#include "tests/support/daemon.h"

/* The service's bounds in this test. */
#define MAX_CONNECTIONS 32u
#define MAX_IN_FLIGHT 16u
#define HANDSHAKE_TIMEOUT_MS 1000u
#define IDLE_TIMEOUT_MS 3000u
/* Ten times the allowed connections, held half-open. */
#define FLOOD_CONNECTIONS (10u * MAX_CONNECTIONS)
#define ATTACK_MS 5000u
/* The well-behaved client's bound while under attack: generous for two
 * cores shared with every attacker thread of this process; the measured
 * values are printed. */
#define GOOD_P99_MAX_MS 250.0
/* Peak resident memory the first attack may add to the daemon, and a
 * second, identical one on top of it: bounded means the second adds little.
 * AddressSanitizer keeps freed memory in quarantine (256 MB by default), so
 * a sanitizer build gets loose bounds; the release numbers are in
 * BENCHMARKS.md. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_GROWTH_MAX_KB (768u * 1024u)
#define RSS_REPEAT_MAX_KB (512u * 1024u)
#else
#define RSS_GROWTH_MAX_KB (64u * 1024u)
#define RSS_REPEAT_MAX_KB (24u * 1024u)
#endif
#define LAT_MAX 200000u

static struct tv_daemon d;
static atomic_bool stop;
static atomic_uint closed_by_service;
static char token[API_ID_MAX + 1];

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The daemon's peak resident set (VmHWM), kB. */
static unsigned long
daemon_hwm_kb(void)
{
    char path[64], line[256];
    unsigned long kb = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)d.pid);
    assert_non_null(f = fopen(path, "r"));
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = strtoul(line + 6, NULL, 10);
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

/* Whether the service closed |fd| (a read sees EOF or a reset). */
static bool
closed(int fd)
{
    char b[256];
    ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);

    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* ---- attackers ----------------------------------------------------------------- */

/* Ten times max_connections TCP connections that never start TLS; each one
 * the service closes (beyond the limit at once, the others at the handshake
 * timeout) is opened again. */
static void *
flood(void *arg)
{
    int fds[FLOOD_CONNECTIONS];

    (void)arg;
    for (unsigned i = 0; i < FLOOD_CONNECTIONS; i++)
        fds[i] = tv_daemon_tcp(&d);
    while (!atomic_load(&stop)) {
        for (unsigned i = 0; i < FLOOD_CONNECTIONS && !atomic_load(&stop); i++) {
            if (fds[i] >= 0 && !closed(fds[i]))
                continue;
            if (fds[i] >= 0) {
                close(fds[i]);
                atomic_fetch_add(&closed_by_service, 1);
            }
            fds[i] = tv_daemon_tcp(&d);
        }
        usleep(20000);
    }
    for (unsigned i = 0; i < FLOOD_CONNECTIONS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return NULL;
}

/* Garbage where a ClientHello belongs, and a TLS record header announcing
 * 64 KB that never come. */
static void *
garbage(void *arg)
{
    uint8_t junk[4096];

    (void)arg;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 131u + 7u);
    while (!atomic_load(&stop)) {
        int a = tv_daemon_tcp(&d), b = tv_daemon_tcp(&d);
        static const uint8_t header[] = {0x16, 0x03, 0x01, 0xff, 0xff};

        if (a >= 0) {
            (void)!send(a, junk, sizeof(junk), MSG_NOSIGNAL);
            close(a);
        }
        if (b >= 0) {
            (void)!send(b, header, sizeof(header), MSG_NOSIGNAL);
            usleep(50000);
            close(b);
        }
    }
    return NULL;
}

/* Authenticated clients that fill their pipeline and never read: the
 * service must stop reading from them, not buffer without end. */
static void *
no_reader(void *arg)
{
    struct api_client *c[4] = {NULL};
    struct api_card_ref q = {0};
    uint64_t id;

    (void)arg;
    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    for (unsigned k = 0; k < 4; k++) {
        if (tv_daemon_client(&d, "client", &c[k]) != 0 || api_client_connect(c[k]) != 0)
            continue;
        for (unsigned i = 0; i < MAX_IN_FLIGHT; i++)
            if (api_client_submit(c[k], API_OP_CARD_GET, &q, &id) != 0)
                break;
    }
    while (!atomic_load(&stop))
        usleep(20000);
    for (unsigned k = 0; k < 4; k++)
        api_client_free(c[k]);
    return NULL;
}

/* One authenticated client writes a PING frame a byte every 100 ms (within
 * the partial-frame timeout); another announces a frame over API_FRAME_MAX. */
static void *
slow_and_oversized(void *arg)
{
    uint8_t frame[64];
    size_t len = 0;
    int fd_slow = -1, fd_big = -1;
    SSL *slow = tv_daemon_raw_tls(&d, "client", &fd_slow);
    SSL *big = tv_daemon_raw_tls(&d, "client", &fd_big);
    struct api_writer w;

    (void)arg;
    struct api_header h = {.version = API_VERSION, .opcode = API_OP_PING, .request_id = 1};
    struct api_empty ping = {0};

    api_writer_init(&w, sizeof(frame));
    if (api_frame_write(&w, &h, api_schema_request(API_OP_PING), &ping, NULL) == 0 &&
        api_writer_len(&w) <= sizeof(frame)) {
        len = api_writer_len(&w);
        memcpy(frame, api_writer_data(&w), len);
    }
    api_writer_cleanup(&w);
    if (big != NULL && SSL_connect(big) == 1) {
        static const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};

        (void)SSL_write(big, huge, sizeof(huge));
    }
    if (slow != NULL && SSL_connect(slow) == 1) {
        for (size_t i = 0; i < len && !atomic_load(&stop); i++) {
            (void)SSL_write(slow, frame + i, 1);
            usleep(100000);
        }
    }
    while (!atomic_load(&stop))
        usleep(20000);
    SSL_free(slow);
    SSL_free(big);
    if (fd_slow >= 0)
        close(fd_slow);
    if (fd_big >= 0)
        close(fd_big);
    return NULL;
}

/* ---- the well-behaved client ---------------------------------------------------- */

struct good {
    struct api_client *c;
    double lat_ms[LAT_MAX];
    size_t n;
    unsigned failed;
};

/* CARD_GETs for |ms| milliseconds, each timed. */
static void
good_run(struct good *g, unsigned ms)
{
    uint64_t end = mono_ns() + (uint64_t)ms * 1000000u;
    struct api_card_ref q = {0};

    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    g->n = 0;
    g->failed = 0;
    while (mono_ns() < end && g->n < LAT_MAX) {
        struct api_card_info info;
        struct api_error_resp err;
        uint64_t t0 = mono_ns();

        if (api_call_card_get(g->c, &q, &info, &err) != 0) {
            g->failed++;
            continue;
        }
        api_msg_cleanup(api_schema_response(API_OP_CARD_GET), &info);
        g->lat_ms[g->n++] = (double)(mono_ns() - t0) / 1e6;
        usleep(2000); /* a gateway's pace, not a load generator's */
    }
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double
pct(struct good *g, double p)
{
    qsort(g->lat_ms, g->n, sizeof(g->lat_ms[0]), cmp_double);
    return g->n == 0 ? 0 : g->lat_ms[(size_t)(p * (double)(g->n - 1))];
}

/* ---- the test -------------------------------------------------------------------- */

static int
setup(void **state)
{
    struct tv_daemon_opts o = {
        .max_connections = MAX_CONNECTIONS,
        .max_in_flight = MAX_IN_FLIGHT,
        .handshake_timeout_ms = HANDSHAKE_TIMEOUT_MS,
        .idle_timeout_ms = IDLE_TIMEOUT_MS,
    };
    struct api_client *c = NULL;
    struct api_card_store_req q;
    struct api_card_store_resp resp;
    struct api_error_resp err;
    int r;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (tv_daemon_setup(&d, &o) != 0 || tv_daemon_start(&d) != 0 ||
        tv_daemon_client(&d, "client", &c) != 0)
        return -1;
    tv_card_store_req(&q, "m-1", "overload-1", "4111111111111111");
    r = api_call_card_store(c, &q, &resp, &err);
    api_msg_cleanup(api_schema_request(API_OP_CARD_STORE), &q);
    api_client_free(c);
    if (r != 0)
        return -1;
    memcpy(token, resp.token, sizeof(token));
    api_msg_cleanup(api_schema_response(API_OP_CARD_STORE), &resp);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    tv_daemon_teardown(&d);
    return 0;
}

/* Every attacker at once for ATTACK_MS while |g| works; its latency
 * percentiles into the outs. */
static void
attack(struct good *g, double *p50, double *p99)
{
    pthread_t th[4];
    void *(*const attackers[4])(void *) = {flood, garbage, no_reader, slow_and_oversized};

    atomic_store(&stop, false);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, attackers[i], NULL), 0);
    usleep(300000); /* the flood is in place */
    good_run(g, ATTACK_MS);
    *p50 = pct(g, 0.50);
    *p99 = pct(g, 0.99);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
}

static void
test_serves_under_attack(void **state)
{
    static struct good g;
    unsigned long hwm0, hwm1, hwm2;
    double base_p50, base_p99, att_p50, att_p99, again_p50, again_p99;
    struct api_client *late = NULL;
    struct api_card_ref q = {0};
    struct api_card_info info;
    struct api_error_resp err;

    (void)state;
    assert_int_equal(tv_daemon_client(&d, "client", &g.c), 0);
    assert_int_equal(api_client_connect(g.c), 0);
    good_run(&g, 1000);
    assert_int_equal(g.failed, 0);
    base_p50 = pct(&g, 0.50);
    base_p99 = pct(&g, 0.99);
    hwm0 = daemon_hwm_kb();

    attack(&g, &att_p50, &att_p99);
    hwm1 = daemon_hwm_kb();
    print_message("good client: %zu CARD_GETs under attack, %u failed; p50 %.2f ms p99 %.2f ms "
                  "(before: p50 %.2f p99 %.2f)\n",
                  g.n, g.failed, att_p50, att_p99, base_p50, base_p99);
    assert_int_equal(g.failed, 0);
    assert_true(g.n > 100);
    attack(&g, &again_p50, &again_p99);
    hwm2 = daemon_hwm_kb();
    print_message("again: %zu CARD_GETs, %u failed; p50 %.2f ms p99 %.2f ms\n", g.n, g.failed,
                  again_p50, again_p99);
    print_message("daemon peak RSS: %lu kB before, %lu kB after one attack (+%lu kB), %lu kB "
                  "after two (+%lu kB more); hostile connections closed by the service: %u\n",
                  hwm0, hwm1, hwm1 - hwm0, hwm2, hwm2 - hwm1, atomic_load(&closed_by_service));
    assert_int_equal(g.failed, 0);
    assert_true(g.n > 100);
    assert_true(att_p99 < GOOD_P99_MAX_MS && again_p99 < GOOD_P99_MAX_MS);
    assert_true(hwm1 - hwm0 < RSS_GROWTH_MAX_KB);
    assert_true(hwm2 - hwm1 < RSS_REPEAT_MAX_KB);
    assert_true(atomic_load(&closed_by_service) > FLOOD_CONNECTIONS - MAX_CONNECTIONS);

    /* After the attack, a new client gets a slot and is served (the
     * half-open connections are gone by the handshake timeout). */
    usleep((HANDSHAKE_TIMEOUT_MS + 500) * 1000);
    assert_int_equal(tv_daemon_client(&d, "client", &late), 0);
    snprintf(q.merchant, sizeof(q.merchant), "m-1");
    snprintf(q.token, sizeof(q.token), "%s", token);
    assert_int_equal(api_call_card_get(late, &q, &info, &err), 0);
    api_msg_cleanup(api_schema_response(API_OP_CARD_GET), &info);
    api_client_free(late);
    api_client_free(g.c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_under_attack),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
