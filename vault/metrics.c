/*
 * metrics.c - counters and histograms in relaxed atomics, rendered in the
 * Prometheus text format 0.0.4.
 */
#include "vault/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Upper bounds of the latency buckets, seconds: 50 µs (a PKCS#11 HMAC on a
 * fast token) to 10 s (a request stuck behind a lost HSM). */
static const double bucket_le[] = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,   0.05,   0.1,     0.25,   0.5,   1.0,    2.5,   5.0, 10.0};
#define NUM_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
/* Statuses are numbered below this (api/proto.h). */
#define STATUS_SLOTS 128u

static const uint16_t op_codes[] = {
#define METRICS__OP(name, num, area, verb, role, lower, summary) num,
    API_OP_LIST(METRICS__OP)
#undef METRICS__OP
};
#define NUM_OPS (sizeof(op_codes) / sizeof(op_codes[0]))
/* One more slot for opcodes the protocol does not know. */
#define OP_SLOTS (NUM_OPS + 1u)

static const char *const hsm_call_names[] = {
#define METRICS__HSM_NAME(name, str) str,
    METRICS_HSM_CALL_LIST(METRICS__HSM_NAME)
#undef METRICS__HSM_NAME
};

struct histogram {
    atomic_uint_fast64_t buckets[NUM_BUCKETS]; /* not cumulative; summed at render */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_ns;
};

struct vault_metrics {
    atomic_uint_fast64_t requests[OP_SLOTS][STATUS_SLOTS];
    struct histogram request_latency[OP_SLOTS];
    struct histogram hsm_latency[METRICS_HSM_COUNT_];
    atomic_uint_fast64_t audit_ok, audit_failed;
    uint64_t start_time;
};

uint64_t
metrics_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
metrics_new(struct vault_metrics **out)
{
    struct vault_metrics *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return -API_STATUS_INTERNAL;
    m->start_time = (uint64_t)time(NULL);
    *out = m;
    return 0;
}

void
metrics_free(struct vault_metrics *m)
{
    free(m);
}

static size_t
op_slot(uint16_t opcode)
{
    for (size_t i = 0; i < NUM_OPS; i++)
        if (op_codes[i] == opcode)
            return i;
    return NUM_OPS;
}

static void
observe(struct histogram *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    size_t b = 0;

    while (b < NUM_BUCKETS && s > bucket_le[b])
        b++;
    if (b < NUM_BUCKETS)
        atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void
metrics_request(struct vault_metrics *m, uint16_t opcode, unsigned status, uint64_t ns)
{
    size_t op = op_slot(opcode);

    if (m == NULL)
        return;
    atomic_fetch_add_explicit(&m->requests[op][status < STATUS_SLOTS ? status : STATUS_SLOTS - 1],
                              1, memory_order_relaxed);
    observe(&m->request_latency[op], ns);
}

void
metrics_hsm_call(struct vault_metrics *m, enum metrics_hsm_call call, uint64_t ns)
{
    if (m != NULL && (unsigned)call < METRICS_HSM_COUNT_)
        observe(&m->hsm_latency[call], ns);
}

void
metrics_audit(struct vault_metrics *m, bool ok)
{
    if (m != NULL)
        atomic_fetch_add_explicit(ok ? &m->audit_ok : &m->audit_failed, 1, memory_order_relaxed);
}

/* A growing text buffer; a failed allocation is sticky. */
struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void
add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(t->buf != NULL ? t->buf + t->len : NULL, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? 2 * t->cap : 16384;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(t->buf, cap);
        if (p == NULL) {
            t->failed = true;
            return;
        }
        t->buf = p;
        t->cap = cap;
    }
}

static const char *
op_label(size_t slot)
{
    const struct api_op_info *op = slot < NUM_OPS ? api_op_info(op_codes[slot]) : NULL;

    return op != NULL ? op->lower : "unknown";
}

/* Label values here are fixed names (op, status, call, db), never request
 * data; the format's escaping is therefore never needed, and kept out. */
static void
histogram(struct text *t, const char *name, const char *label, const char *value,
          const struct histogram *h)
{
    uint64_t cum = 0, count = atomic_load_explicit(&h->count, memory_order_relaxed);

    for (size_t b = 0; b < NUM_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        add(t, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value, bucket_le[b],
            (unsigned long long)cum);
    }
    /* Counts may move between the loads; +Inf is never below a bucket. */
    if (count < cum)
        count = cum;
    add(t, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, value, (unsigned long long)count);
    add(t, "%s_sum{%s=\"%s\"} %.9f\n", name, label, value,
        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    add(t, "%s_count{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)count);
}

static void
header(struct text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
render_store(struct text *t, const struct store_stats *st)
{
    uint64_t cum = 0, sum_lo = 0;

    header(t, "tokenvault_store_commits_total", "counter", "LMDB write transactions committed");
    add(t, "tokenvault_store_commits_total %llu\n", (unsigned long long)st->commits);
    header(t, "tokenvault_store_jobs_total", "counter", "write jobs committed (requests and timers)");
    add(t, "tokenvault_store_jobs_total %llu\n", (unsigned long long)st->jobs);
    /* Batch bucket i holds commits of 2^i .. 2^(i+1)-1 jobs: le = 2^(i+1)-1. */
    header(t, "tokenvault_store_commit_batch_size", "histogram", "jobs per group commit");
    for (unsigned i = 0; i < STORE_BATCH_BUCKETS; i++) {
        cum += st->batch_hist[i];
        sum_lo += st->batch_hist[i] << i;
        if (i + 1 < STORE_BATCH_BUCKETS)
            add(t, "tokenvault_store_commit_batch_size_bucket{le=\"%u\"} %llu\n", (2u << i) - 1,
                (unsigned long long)cum);
    }
    add(t, "tokenvault_store_commit_batch_size_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    /* The store keeps bucket counts only: the sum is the jobs committed. */
    (void)sum_lo;
    add(t, "tokenvault_store_commit_batch_size_sum %llu\n", (unsigned long long)st->jobs);
    add(t, "tokenvault_store_commit_batch_size_count %llu\n", (unsigned long long)cum);
    header(t, "tokenvault_store_entries", "gauge", "entries per database");
    for (unsigned i = 0; i < STORE_DB_COUNT_; i++)
        add(t, "tokenvault_store_entries{db=\"%s\"} %llu\n", store_db_name((enum store_db)i),
            (unsigned long long)st->entries[i]);
    header(t, "tokenvault_store_map_used_bytes", "gauge", "bytes of the LMDB map in use");
    add(t, "tokenvault_store_map_used_bytes %llu\n", (unsigned long long)st->map_used);
    header(t, "tokenvault_store_map_size_bytes", "gauge", "size of the LMDB map");
    add(t, "tokenvault_store_map_size_bytes %llu\n", (unsigned long long)st->map_size);
    header(t, "tokenvault_writer_queue_depth", "gauge", "write jobs waiting for the writer");
    add(t, "tokenvault_writer_queue_depth %llu\n", (unsigned long long)st->queued);
}

int
metrics_render(struct vault_metrics *m, const struct metrics_gauges *g, char **out, size_t *out_len)
{
    struct text t = {0};

    header(&t, "tokenvault_requests_total", "counter", "requests answered, by operation and status");
    for (size_t op = 0; op < OP_SLOTS; op++)
        for (unsigned st = 0; st < STATUS_SLOTS; st++) {
            uint64_t n = atomic_load_explicit(&m->requests[op][st], memory_order_relaxed);

            if (n != 0)
                add(&t, "tokenvault_requests_total{op=\"%s\",status=\"%s\"} %llu\n", op_label(op),
                    api_status_name(st), (unsigned long long)n);
        }
    header(&t, "tokenvault_request_duration_seconds", "histogram",
           "time from a request's last byte to its answer being queued");
    for (size_t op = 0; op < OP_SLOTS; op++)
        if (atomic_load_explicit(&m->request_latency[op].count, memory_order_relaxed) != 0)
            histogram(&t, "tokenvault_request_duration_seconds", "op", op_label(op),
                      &m->request_latency[op]);
    header(&t, "tokenvault_hsm_call_duration_seconds", "histogram", "PKCS#11 call latency");
    for (unsigned c = 0; c < METRICS_HSM_COUNT_; c++)
        histogram(&t, "tokenvault_hsm_call_duration_seconds", "call", hsm_call_names[c],
                  &m->hsm_latency[c]);
    header(&t, "tokenvault_audit_entries_total", "counter", "audit entries written by requests");
    add(&t, "tokenvault_audit_entries_total %llu\n",
        (unsigned long long)atomic_load_explicit(&m->audit_ok, memory_order_relaxed));
    header(&t, "tokenvault_audit_failures_total", "counter",
           "audit entries that could not be written (operations refused)");
    add(&t, "tokenvault_audit_failures_total %llu\n",
        (unsigned long long)atomic_load_explicit(&m->audit_failed, memory_order_relaxed));
    if (g != NULL) {
        if (g->store != NULL)
            render_store(&t, g->store);
        header(&t, "tokenvault_worker_queue_depth", "gauge", "requests waiting for a worker");
        add(&t, "tokenvault_worker_queue_depth %llu\n", (unsigned long long)g->worker_queue_depth);
        header(&t, "tokenvault_connections", "gauge", "open client connections");
        add(&t, "tokenvault_connections %llu\n", (unsigned long long)g->connections);
        header(&t, "tokenvault_requests_in_flight", "gauge", "requests accepted and not yet answered");
        add(&t, "tokenvault_requests_in_flight %llu\n", (unsigned long long)g->requests_in_flight);
        header(&t, "tokenvault_key_version", "gauge", "current version of each versioned key");
        if (g->dek_version != 0)
            add(&t, "tokenvault_key_version{key=\"dek\"} %u\n", g->dek_version);
        if (g->kek_version != 0)
            add(&t, "tokenvault_key_version{key=\"kek\"} %u\n", g->kek_version);
        header(&t, "tokenvault_sealed", "gauge", "1 while waiting for unseal shares");
        add(&t, "tokenvault_sealed %d\n", g->sealed ? 1 : 0);
        header(&t, "tokenvault_hsm_ready", "gauge", "1 when the HSM answers");
        add(&t, "tokenvault_hsm_ready %d\n", g->hsm_ready ? 1 : 0);
    }
    header(&t, "tokenvault_start_time_seconds", "gauge", "unix time the service started");
    add(&t, "tokenvault_start_time_seconds %llu\n", (unsigned long long)m->start_time);
    if (t.failed) {
        free(t.buf);
        return -API_STATUS_INTERNAL;
    }
    *out = t.buf;
    *out_len = t.len;
    return 0;
}

int
metrics_write_textfile(struct vault_metrics *m, const struct metrics_gauges *g, const char *path)
{
    char tmp[4096], *text = NULL;
    size_t len = 0, off = 0;
    int fd = -1, r = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    if (metrics_render(m, g, &text, &len) != 0)
        return -ENOMEM;
    /* 0644: the collector runs as another user; nothing here is secret. */
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644)) < 0 ||
        fchmod(fd, 0644) != 0) {
        r = -errno;
        goto out;
    }
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto out;
        }
        off += (size_t)n;
    }
    if (close(fd) != 0) {
        fd = -1;
        r = -errno;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        r = -errno;
out:
    if (fd >= 0)
        close(fd);
    if (r != 0)
        unlink(tmp);
    free(text);
    return r;
}
