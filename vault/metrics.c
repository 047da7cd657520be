/*
 * metrics.c - counters and histograms in relaxed atomics, rendered in the
 * Prometheus text format 0.0.4.
 *
 * Durations are kept in integer nanoseconds and written as exact decimal
 * seconds, so a bucket bound and a sum never pass through a rounding double.
 */
#include "vault/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_S 1000000000u

/* Upper bounds of the latency buckets, in nanoseconds: 50 µs (a PKCS#11 HMAC
 * on a fast token) to 10 s (a request stuck behind a lost HSM), in 1-2.5-5
 * steps, so the quantiles that matter (a 2 ms card store, a 50 ms wallet
 * decrypt) fall between close bounds. */
static const uint64_t latency_le_ns[] = {
    50000u,     100000u,     250000u,     500000u,     1000000u,    2500000u,
    5000000u,   10000000u,   25000000u,   50000000u,   100000000u,  250000000u,
    500000000u, 1000000000u, 2500000000u, 5000000000u, 10000000000u,
};
#define NUM_BUCKETS (sizeof(latency_le_ns) / sizeof(latency_le_ns[0]))

/* Wire statuses are numbered below this (api/proto.h); a slot each. */
#define STATUS_SLOTS 128u
#define METRICS__STATUS_FITS(name, num, cls, desc) \
    _Static_assert((num) < STATUS_SLOTS, "STATUS_SLOTS too small for " #name);
API_STATUS_LIST(METRICS__STATUS_FITS)
#undef METRICS__STATUS_FITS
/* One more slot for a status the protocol does not define: one series,
 * status="unknown", however many such numbers occur. */
#define STATUS_UNKNOWN STATUS_SLOTS

static const uint16_t op_codes[] = {
#define METRICS__OP(name, num, area, verb, role, lower, summary) num,
    API_OP_LIST(METRICS__OP)
#undef METRICS__OP
};
#define NUM_OPS (sizeof(op_codes) / sizeof(op_codes[0]))
/* One more slot for opcodes the protocol does not know (op="unknown"). */
#define OP_UNKNOWN NUM_OPS

/* The label value of anything outside the protocol's tables. */
#define UNKNOWN_LABEL "unknown"

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
    atomic_uint_fast64_t requests[NUM_OPS + 1][STATUS_SLOTS + 1];
    struct histogram request_latency[NUM_OPS + 1];
    struct histogram hsm_latency[METRICS_HSM_COUNT_];
    atomic_uint_fast64_t audit_ok, audit_failed;
    uint64_t start_time;
};

uint64_t
metrics_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
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
    return OP_UNKNOWN;
}

static unsigned
status_slot(unsigned status)
{
    return status < STATUS_SLOTS && api_status_name(status) != NULL ? status : STATUS_UNKNOWN;
}

static void
observe(struct histogram *h, uint64_t ns)
{
    size_t b = 0;

    while (b < NUM_BUCKETS && ns > latency_le_ns[b])
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
    atomic_fetch_add_explicit(&m->requests[op][status_slot(status)], 1, memory_order_relaxed);
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

/* ---- rendering ------------------------------------------------------------ */

/* First allocation of the text; a full exposition is about this size. */
#define TEXT_INITIAL_CAP 16384u

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
        size_t cap;
        char *p;

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
        cap = t->cap != 0 ? t->cap : TEXT_INITIAL_CAP;
        while (cap - t->len <= (size_t)n)
            cap *= 2;
        if ((p = realloc(t->buf, cap)) == NULL) {
            t->failed = true;
            return;
        }
        t->buf = p;
        t->cap = cap;
    }
}

/* A label value as the format wants it: '\\', '"' and newline escaped. The
 * values written here are fixed names (op, status, call, db, key), never
 * request data; escaping them anyway keeps the output valid whatever a table
 * comes to hold. */
static void
add_label_value(struct text *t, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\')
            add(t, "\\\\");
        else if (*v == '"')
            add(t, "\\\"");
        else if (*v == '\n')
            add(t, "\\n");
        else
            add(t, "%c", *v);
    }
}

/* Decimal seconds of |ns|, exact: "0.00005", "2.5", "10". */
static void
seconds(char out[32], uint64_t ns)
{
    int n = snprintf(out, 32, "%llu.%09llu", (unsigned long long)(ns / NS_PER_S),
                     (unsigned long long)(ns % NS_PER_S));

    while (out[n - 1] == '0')
        n--;
    if (out[n - 1] == '.')
        n--;
    out[n] = '\0';
}

/* Starts a sample line: name{k1="v1",k2="v2"} followed by a space; a NULL key
 * ends the labels. The caller adds the value and newline. */
static void
sample(struct text *t, const char *name, const char *k1, const char *v1, const char *k2,
       const char *v2)
{
    add(t, "%s", name);
    if (k1 != NULL) {
        add(t, "{%s=\"", k1);
        add_label_value(t, v1);
        if (k2 != NULL && v2 != NULL) {
            add(t, "\",%s=\"", k2);
            add_label_value(t, v2);
        }
        add(t, "\"}");
    }
    add(t, " ");
}

static void
sample_u64(struct text *t, const char *name, const char *k1, const char *v1, const char *k2,
           const char *v2, uint64_t value)
{
    sample(t, name, k1, v1, k2, v2);
    add(t, "%llu\n", (unsigned long long)value);
}

static void
header(struct text *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Writes a latency histogram's series for |label|=|value|. */
static void
histogram(struct text *t, const char *name, const char *label, const char *value,
          const struct histogram *h)
{
    char bucket[128], sum[128], count[128], le[32];
    uint64_t cum = 0, n = atomic_load_explicit(&h->count, memory_order_relaxed);

    snprintf(bucket, sizeof(bucket), "%s_bucket", name);
    snprintf(sum, sizeof(sum), "%s_sum", name);
    snprintf(count, sizeof(count), "%s_count", name);
    for (size_t b = 0; b < NUM_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        seconds(le, latency_le_ns[b]);
        sample_u64(t, bucket, label, value, "le", le, cum);
    }
    /* Recorders run while this reads: a bucket loaded after the count may be
     * ahead of it. +Inf and _count are never below a finite bucket. */
    if (n < cum)
        n = cum;
    sample_u64(t, bucket, label, value, "le", "+Inf", n);
    seconds(le, atomic_load_explicit(&h->sum_ns, memory_order_relaxed));
    sample(t, sum, label, value, NULL, NULL);
    add(t, "%s\n", le);
    sample_u64(t, count, label, value, NULL, NULL, n);
}

static const char *
op_label(size_t slot)
{
    const struct api_op_info *op = slot < NUM_OPS ? api_op_info(op_codes[slot]) : NULL;

    return op != NULL ? op->lower : UNKNOWN_LABEL;
}

static const char *
status_label(unsigned slot)
{
    const char *name = slot < STATUS_SLOTS ? api_status_name(slot) : NULL;

    return name != NULL ? name : UNKNOWN_LABEL;
}

static void
render_requests(struct text *t, struct vault_metrics *m)
{
    header(t, "tokenvault_requests_total", "counter", "requests answered, by operation and status");
    for (size_t op = 0; op <= NUM_OPS; op++)
        for (unsigned st = 0; st <= STATUS_SLOTS; st++) {
            uint64_t n = atomic_load_explicit(&m->requests[op][st], memory_order_relaxed);

            if (n != 0)
                sample_u64(t, "tokenvault_requests_total", "op", op_label(op), "status",
                           status_label(st), n);
        }
    header(t, "tokenvault_request_duration_seconds", "histogram",
           "time from a request's last byte read to its answer queued");
    for (size_t op = 0; op <= NUM_OPS; op++)
        if (atomic_load_explicit(&m->request_latency[op].count, memory_order_relaxed) != 0)
            histogram(t, "tokenvault_request_duration_seconds", "op", op_label(op),
                      &m->request_latency[op]);
    header(t, "tokenvault_hsm_call_duration_seconds", "histogram", "PKCS#11 call latency");
    for (unsigned c = 0; c < METRICS_HSM_COUNT_; c++)
        histogram(t, "tokenvault_hsm_call_duration_seconds", "call", hsm_call_names[c],
                  &m->hsm_latency[c]);
    header(t, "tokenvault_audit_entries_total", "counter", "audit entries written by requests");
    sample_u64(t, "tokenvault_audit_entries_total", NULL, NULL, NULL, NULL,
               atomic_load_explicit(&m->audit_ok, memory_order_relaxed));
    header(t, "tokenvault_audit_failures_total", "counter",
           "audit entries that could not be written (operations refused)");
    sample_u64(t, "tokenvault_audit_failures_total", NULL, NULL, NULL, NULL,
               atomic_load_explicit(&m->audit_failed, memory_order_relaxed));
}

/* A gauge or counter with one unlabelled sample. */
static void
scalar(struct text *t, const char *name, const char *type, const char *help, uint64_t value)
{
    header(t, name, type, help);
    sample_u64(t, name, NULL, NULL, NULL, NULL, value);
}

static void
render_store(struct text *t, const struct store_stats *st)
{
    char le[24];
    uint64_t cum = 0;

    scalar(t, "tokenvault_store_commits_total", "counter", "LMDB write transactions committed",
           st->commits);
    scalar(t, "tokenvault_store_jobs_total", "counter", "write jobs committed (requests and timers)",
           st->jobs);
    /* store_stats.batch_hist[i] counts commits of 2^i .. 2^(i+1)-1 jobs, the
     * last bucket open-ended: so le = 2^(i+1)-1 (1, 3, 7, ... 511), and the
     * last bucket is counted only in +Inf. The store keeps no sum of batch
     * sizes; _sum is the jobs kept, which leaves out jobs whose own apply
     * failed inside a committed batch (each one a refused request). */
    header(t, "tokenvault_store_commit_batch_size", "histogram",
           "jobs per group commit (le = 2^(i+1)-1; sum counts committed jobs only)");
    for (unsigned i = 0; i < STORE_BATCH_BUCKETS; i++) {
        cum += st->batch_hist[i];
        if (i + 1 == STORE_BATCH_BUCKETS)
            break;
        snprintf(le, sizeof(le), "%llu", (unsigned long long)((2ull << i) - 1u));
        sample_u64(t, "tokenvault_store_commit_batch_size_bucket", "le", le, NULL, NULL, cum);
    }
    sample_u64(t, "tokenvault_store_commit_batch_size_bucket", "le", "+Inf", NULL, NULL, cum);
    sample_u64(t, "tokenvault_store_commit_batch_size_sum", NULL, NULL, NULL, NULL, st->jobs);
    sample_u64(t, "tokenvault_store_commit_batch_size_count", NULL, NULL, NULL, NULL, cum);
    header(t, "tokenvault_store_entries", "gauge", "entries per database");
    for (unsigned i = 0; i < STORE_DB_COUNT_; i++)
        sample_u64(t, "tokenvault_store_entries", "db", store_db_name((enum store_db)i), NULL, NULL,
                   st->entries[i]);
    scalar(t, "tokenvault_store_map_used_bytes", "gauge", "bytes of the LMDB map in use",
           st->map_used);
    scalar(t, "tokenvault_store_map_size_bytes", "gauge", "size of the LMDB map", st->map_size);
    scalar(t, "tokenvault_writer_queue_depth", "gauge", "write jobs waiting for the writer",
           st->queued);
}

static void
render_gauges(struct text *t, const struct metrics_gauges *g)
{
    if (g->store != NULL)
        render_store(t, g->store);
    scalar(t, "tokenvault_worker_queue_depth", "gauge", "requests waiting for a worker",
           g->worker_queue_depth);
    scalar(t, "tokenvault_connections", "gauge", "open client connections", g->connections);
    scalar(t, "tokenvault_requests_in_flight", "gauge", "requests accepted and not yet answered",
           g->requests_in_flight);
    header(t, "tokenvault_key_version", "gauge", "current version of each versioned key");
    if (g->dek_version != 0)
        sample_u64(t, "tokenvault_key_version", "key", "dek", NULL, NULL, g->dek_version);
    if (g->kek_version != 0)
        sample_u64(t, "tokenvault_key_version", "key", "kek", NULL, NULL, g->kek_version);
    if (g->stk_version != 0)
        sample_u64(t, "tokenvault_key_version", "key", "stk", NULL, NULL, g->stk_version);
    scalar(t, "tokenvault_reencrypt_records_total", "counter",
           "records re-encrypted under the current DEK since start", g->reencrypted);
    scalar(t, "tokenvault_reencrypt_pending", "gauge",
           "1 while records sealed with a retired DEK may remain (a pass is running)",
           g->reencrypt_pending);
    if (g->reencrypt_known) {
        scalar(t, "tokenvault_reencrypt_remaining", "gauge",
               "records still sealed with a retired DEK (counted each pass, less those moved)",
               g->reencrypt_remaining);
        scalar(t, "tokenvault_reencrypt_run_records", "gauge",
               "records the current or last re-encryption run moved or has left to move",
               g->reencrypt_total);
    }
    scalar(t, "tokenvault_sealed", "gauge", "1 while waiting for unseal shares", g->sealed);
    scalar(t, "tokenvault_hsm_ready", "gauge", "1 when the HSM answers", g->hsm_ready);
    if (g->hsm_known) {
        scalar(t, "tokenvault_hsm_recycles_total", "counter",
               "planned re-initializations of the PKCS#11 module ([hsm] recycle_after_objects)",
               g->hsm_recycles);
        scalar(t, "tokenvault_hsm_temp_objects_destroyed_total", "counter",
               "transient key objects made and destroyed in the HSM since start",
               g->hsm_temp_destroyed);
    }
}

int
metrics_render(struct vault_metrics *m, const struct metrics_gauges *g, char **out, size_t *out_len)
{
    struct text t = {0};

    render_requests(&t, m);
    if (g != NULL)
        render_gauges(&t, g);
    scalar(&t, "tokenvault_start_time_seconds", "gauge", "unix time the service started",
           m->start_time);
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
    char tmp[PATH_MAX], *text = NULL;
    size_t len = 0, off = 0;
    int fd = -1, r = 0;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    if (metrics_render(m, g, &text, &len) != 0)
        return -ENOMEM;
    /* 0644 whatever the umask: the collector runs as another user and nothing
     * here is secret. O_NOFOLLOW: the textfile directory is often shared, and
     * a planted link must not redirect the write. */
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
    r = close(fd) != 0 ? -errno : 0;
    fd = -1;
    if (r == 0 && rename(tmp, path) != 0)
        r = -errno;
out:
    if (fd >= 0)
        close(fd);
    /* Never leave a half-written file (or a planted link) for the next run. */
    if (r != 0)
        unlink(tmp);
    free(text);
    return r;
}
