/*
 * test_metrics.c - the Prometheus exposition: counts from many threads,
 * cumulative buckets, sum and count, and the textfile written whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/metrics.h"

#define THREADS 4
#define PER_THREAD 1000

static struct vault_metrics *m;

static void *
record(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        /* 100 µs and 3 ms, alternately */
        metrics_request(m, API_OP_CARD_STORE, API_STATUS_OK, i % 2 ? 100000u : 3000000u);
        metrics_hsm_call(m, METRICS_HSM_HMAC, 60000u);
    }
    return NULL;
}

/* The value of the series whose line starts with |series| (name and labels). */
static double
value(const char *text, const char *series)
{
    const char *p = text;
    size_t n = strlen(series);

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    return -1;
}

static void
test_counts_and_buckets(void **state)
{
    pthread_t th[THREADS];
    struct store_stats st = {.map_size = 1 << 20, .map_used = 4096, .commits = 3, .jobs = 10};
    struct metrics_gauges g = {.store = &st, .dek_version = 1, .kek_version = 2, .hsm_ready = true};
    char *text = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, record, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    metrics_request(m, 0x7777, API_STATUS_UNKNOWN_OPCODE, 1000);
    metrics_audit(m, true);
    metrics_audit(m, false);
    st.batch_hist[0] = 1; /* one commit of 1 job, two of 4..7 */
    st.batch_hist[2] = 2;
    assert_int_equal(metrics_render(m, &g, &text, &len), 0);
    assert_int_equal(strlen(text), len);

    assert_true(value(text, "tokenvault_requests_total{op=\"card_store\",status=\"OK\"}") ==
                THREADS * PER_THREAD);
    assert_true(value(text, "tokenvault_requests_total{op=\"unknown\",status=\"UNKNOWN_OPCODE\"}") ==
                1);
    /* No series for what never happened. */
    assert_null(strstr(text, "op=\"card_get\""));
    /* Cumulative: half at <= 100 µs, all at <= 5 ms and beyond. */
    assert_true(value(text, "tokenvault_request_duration_seconds_bucket{op=\"card_store\",le=\"5e-05\"}") ==
                0);
    assert_true(value(text, "tokenvault_request_duration_seconds_bucket{op=\"card_store\",le=\"0.0001\"}") ==
                THREADS * PER_THREAD / 2);
    assert_true(value(text, "tokenvault_request_duration_seconds_bucket{op=\"card_store\",le=\"0.005\"}") ==
                THREADS * PER_THREAD);
    assert_true(value(text, "tokenvault_request_duration_seconds_bucket{op=\"card_store\",le=\"+Inf\"}") ==
                THREADS * PER_THREAD);
    assert_true(value(text, "tokenvault_request_duration_seconds_count{op=\"card_store\"}") ==
                THREADS * PER_THREAD);
    {
        double sum = value(text, "tokenvault_request_duration_seconds_sum{op=\"card_store\"}");

        assert_true(sum > 6.19 && sum < 6.21); /* 2000 * 3 ms + 2000 * 0.1 ms */
    }
    assert_true(value(text, "tokenvault_hsm_call_duration_seconds_count{call=\"hmac\"}") ==
                THREADS * PER_THREAD);
    assert_true(value(text, "tokenvault_audit_failures_total") == 1);
    assert_true(value(text, "tokenvault_store_commit_batch_size_bucket{le=\"1\"}") == 1);
    assert_true(value(text, "tokenvault_store_commit_batch_size_bucket{le=\"3\"}") == 1);
    assert_true(value(text, "tokenvault_store_commit_batch_size_bucket{le=\"7\"}") == 3);
    assert_true(value(text, "tokenvault_store_map_used_bytes") == 4096);
    assert_true(value(text, "tokenvault_key_version{key=\"kek\"}") == 2);
    assert_true(value(text, "tokenvault_hsm_ready") == 1);
    /* Every metric has its HELP and TYPE. */
    assert_non_null(strstr(text, "# TYPE tokenvault_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE tokenvault_requests_total counter\n"));
    free(text);
}

static void
test_textfile(void **state)
{
    char dir[] = "/tmp/tv-metrics-XXXXXX", path[64], tmp[80], cmd[96];
    struct stat st;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tokenvault.prom", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(metrics_write_textfile(m, NULL, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_true(st.st_size > 100);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed into place */
    /* A directory that does not exist: an errno, not a crash. */
    assert_true(metrics_write_textfile(m, NULL, "/nonexistent/dir/x.prom") < 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    metrics_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_buckets),
        cmocka_unit_test(test_textfile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
