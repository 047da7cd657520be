/*
 * test_metrics.c - the Prometheus exposition: every line parsed back as the
 * text format 0.0.4 defines it, counts recorded from many threads, cumulative
 * buckets with sum and count, and the textfile replaced whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vault/metrics.h"

#define THREADS 4
#define PER_THREAD 1000
/* Samples and metric families one exposition may hold in this test. */
#define SAMPLES_MAX 4096
#define FAMILIES_MAX 64
#define LABELS_MAX 3

struct label {
    char key[32];
    char value[64];
};

struct sample {
    char name[96];
    struct label labels[LABELS_MAX];
    int num_labels;
    double value;
};

struct family {
    char name[96];
    char type[16];
    bool help;
};

struct exposition {
    struct sample samples[SAMPLES_MAX];
    int num_samples;
    struct family families[FAMILIES_MAX];
    int num_families;
};

static struct family *
family_find(struct exposition *e, const char *name, size_t len)
{
    for (int i = 0; i < e->num_families; i++)
        if (strlen(e->families[i].name) == len && memcmp(e->families[i].name, name, len) == 0)
            return &e->families[i];
    return NULL;
}

static bool
name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Copies a metric or label name at *p into out; NULL when there is none. */
static const char *
parse_name(const char *p, char *out, size_t cap)
{
    size_t n = 0;

    while (name_char(p[n], n == 0)) {
        if (n + 1 == cap)
            return NULL;
        out[n] = p[n];
        n++;
    }
    out[n] = '\0';
    return n != 0 ? p + n : NULL;
}

/* One label value, from after its opening quote: only \\, \" and \n escapes,
 * no raw newline. Returns the position after the closing quote. */
static const char *
parse_label_value(const char *p, char *out, size_t cap)
{
    size_t n = 0;

    for (; *p != '"'; p++) {
        char c = *p;

        if (c == '\0' || c == '\n' || n + 1 == cap)
            return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'n')
                c = '\n';
            else if (*p == '\\' || *p == '"')
                c = *p;
            else
                return NULL;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return p + 1;
}

/* The family a sample belongs to: itself, or a histogram's base name. */
static struct family *
sample_family(struct exposition *e, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    size_t len = strlen(name);

    for (size_t i = 0; i < 3; i++) {
        size_t sl = strlen(suffixes[i]);
        struct family *f;

        if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0 &&
            (f = family_find(e, name, len - sl)) != NULL && strcmp(f->type, "histogram") == 0)
            return f;
    }
    return family_find(e, name, len);
}

static bool
same_labels(const struct sample *a, const struct sample *b, const char *except)
{
    int na = 0, nb = 0;

    for (int i = 0; i < a->num_labels; i++) {
        bool found = false;

        if (except != NULL && strcmp(a->labels[i].key, except) == 0)
            continue;
        na++;
        for (int j = 0; j < b->num_labels; j++)
            if (strcmp(a->labels[i].key, b->labels[j].key) == 0 &&
                strcmp(a->labels[i].value, b->labels[j].value) == 0)
                found = true;
        if (!found)
            return false;
    }
    for (int j = 0; j < b->num_labels; j++)
        if (except == NULL || strcmp(b->labels[j].key, except) != 0)
            nb++;
    return na == nb;
}

/* Parses the whole text strictly; fails the test on any line a Prometheus
 * reader would refuse, a sample before its TYPE, or a repeated series. */
static void
parse(const char *text, struct exposition *e)
{
    const char *p = text;

    memset(e, 0, sizeof(*e));
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        struct sample *s;
        char *end;

        assert_non_null(nl);
        if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0) {
            bool help = p[2] == 'H';
            char name[96];
            const char *q = parse_name(p + 7, name, sizeof(name));
            struct family *f;

            assert_non_null(q);
            assert_int_equal(*q, ' ');
            assert_true(q + 1 < nl); /* a help text or a type */
            f = family_find(e, name, strlen(name));
            if (f == NULL) {
                assert_true(e->num_families < FAMILIES_MAX);
                f = &e->families[e->num_families++];
                assert_true(snprintf(f->name, sizeof(f->name), "%s", name) <
                            (int)sizeof(f->name));
            }
            if (help) {
                assert_false(f->help);
                f->help = true;
            } else {
                assert_string_equal(f->type, "");
                assert_true((size_t)(nl - q - 1) < sizeof(f->type));
                memcpy(f->type, q + 1, (size_t)(nl - q - 1));
                assert_true(strcmp(f->type, "counter") == 0 || strcmp(f->type, "gauge") == 0 ||
                            strcmp(f->type, "histogram") == 0);
            }
            p = nl + 1;
            continue;
        }
        assert_int_not_equal(*p, '#');
        assert_true(e->num_samples < SAMPLES_MAX);
        s = &e->samples[e->num_samples];
        p = parse_name(p, s->name, sizeof(s->name));
        assert_non_null(p);
        if (*p == '{') {
            do {
                struct label *l = &s->labels[s->num_labels];

                assert_true(s->num_labels < LABELS_MAX);
                p = parse_name(p + 1, l->key, sizeof(l->key));
                assert_non_null(p);
                assert_true(p[0] == '=' && p[1] == '"');
                p = parse_label_value(p + 2, l->value, sizeof(l->value));
                assert_non_null(p);
                for (int i = 0; i < s->num_labels; i++)
                    assert_string_not_equal(s->labels[i].key, l->key);
                s->num_labels++;
            } while (*p == ',');
            assert_int_equal(*p, '}');
            p++;
        }
        assert_int_equal(*p, ' ');
        s->value = strtod(p + 1, &end);
        assert_true(end > p + 1);
        assert_ptr_equal(end, nl);
        /* Its family was declared, with HELP and TYPE, before it. */
        assert_non_null(sample_family(e, s->name));
        assert_true(sample_family(e, s->name)->help);
        for (int i = 0; i < e->num_samples; i++)
            assert_false(strcmp(e->samples[i].name, s->name) == 0 &&
                         same_labels(&e->samples[i], s, NULL));
        e->num_samples++;
        p = nl + 1;
    }
}

static const char *
label(const struct sample *s, const char *key)
{
    for (int i = 0; i < s->num_labels; i++)
        if (strcmp(s->labels[i].key, key) == 0)
            return s->labels[i].value;
    return NULL;
}

/* The value of series |name| with labels "k=v,k=v" (NULL: none); -1 if absent. */
static double
value(const struct exposition *e, const char *name, const char *labels)
{
    for (int i = 0; i < e->num_samples; i++) {
        const struct sample *s = &e->samples[i];
        char want[256] = "", *save = NULL, *kv;
        int n = 0;
        bool match = strcmp(s->name, name) == 0;

        if (labels != NULL)
            snprintf(want, sizeof(want), "%s", labels);
        for (kv = strtok_r(want, ",", &save); match && kv != NULL; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');

            *eq = '\0';
            match = label(s, kv) != NULL && strcmp(label(s, kv), eq + 1) == 0;
            n++;
        }
        if (match && n == s->num_labels)
            return s->value;
    }
    return -1;
}

/* Every histogram series: finite buckets in increasing le, cumulative, then
 * +Inf equal to _count, and a _sum. Returns the number of series checked. */
static int
check_histograms(const struct exposition *e)
{
    int series = 0;

    for (int i = 0; i < e->num_samples; i++) {
        const struct sample *s = &e->samples[i];
        size_t len = strlen(s->name);
        char base[96], count_name[112], sum_name[112];
        double prev_le = -1, prev = 0;
        bool inf = false;
        int j;

        /* Start at the first bucket of each series. */
        if (len < 7 || strcmp(s->name + len - 7, "_bucket") != 0)
            continue;
        if (i > 0 && strcmp(e->samples[i - 1].name, s->name) == 0 &&
            same_labels(&e->samples[i - 1], s, "le"))
            continue;
        memcpy(base, s->name, len - 7);
        base[len - 7] = '\0';
        for (j = i; j < e->num_samples && strcmp(e->samples[j].name, s->name) == 0 &&
                    same_labels(&e->samples[j], s, "le");
             j++) {
            const char *le = label(&e->samples[j], "le");

            assert_non_null(le);
            assert_false(inf); /* +Inf is last */
            if (strcmp(le, "+Inf") == 0) {
                inf = true;
            } else {
                double b = strtod(le, NULL);

                assert_true(b > prev_le);
                prev_le = b;
            }
            assert_true(e->samples[j].value >= prev);
            prev = e->samples[j].value;
        }
        assert_true(inf);
        snprintf(count_name, sizeof(count_name), "%s_count", base);
        snprintf(sum_name, sizeof(sum_name), "%s_sum", base);
        assert_true(j + 1 < e->num_samples);
        assert_string_equal(e->samples[j].name, sum_name);
        assert_true(same_labels(&e->samples[j], s, "le"));
        assert_true(e->samples[j].value >= 0);
        assert_string_equal(e->samples[j + 1].name, count_name);
        assert_true(same_labels(&e->samples[j + 1], s, "le"));
        assert_true(e->samples[j + 1].value == prev);
        series++;
    }
    return series;
}

static struct vault_metrics *m;
static atomic_bool recording;
static struct exposition during, after;

static void *
record(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        /* 100 µs (a bucket bound: counted in it) and 3 ms, alternately. */
        metrics_request(m, API_OP_CARD_STORE, API_STATUS_OK, i % 2 ? 100000u : 3000000u);
        metrics_hsm_call(m, METRICS_HSM_HMAC, 60000u);
    }
    return NULL;
}

/* Expositions rendered while the recorders run, checked afterwards on the
 * main thread (a cmocka assertion must not fail on another thread). */
#define SNAPSHOTS 32
static char *snapshots[SNAPSHOTS];
static int num_renders;

static void *
render_during(void *arg)
{
    (void)arg;
    do {
        int slot = num_renders < SNAPSHOTS ? num_renders : SNAPSHOTS - 1;
        size_t len = 0;

        free(snapshots[slot]);
        snapshots[slot] = NULL;
        if (metrics_render(m, NULL, &snapshots[slot], &len) != 0)
            return NULL;
        num_renders++;
    } while (atomic_load(&recording));
    return NULL;
}

static void
test_counts_and_buckets(void **state)
{
    pthread_t th[THREADS], renderer;
    struct store_stats st = {.map_size = 1 << 20, .map_used = 4096, .commits = 9, .jobs = 40};
    struct metrics_gauges g = {.store = &st, .kek_version = 2, .stk_version = 5,
                               .hsm_ready = true, .connections = 3,
                               .hsm_known = true, .hsm_recycles = 2,
                               .hsm_temp_destroyed = 2000001};
    char *text = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    atomic_store(&recording, true);
    assert_int_equal(pthread_create(&renderer, NULL, render_during, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, record, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    atomic_store(&recording, false);
    assert_int_equal(pthread_join(renderer, NULL), 0);
    assert_true(num_renders > 0);
    /* Each one valid, with +Inf and _count never below a bucket. */
    for (int i = 0; i < SNAPSHOTS && i < num_renders; i++) {
        assert_non_null(snapshots[i]);
        parse(snapshots[i], &during);
        /* The HSM calls, and card_store once it has been recorded. */
        assert_in_range(check_histograms(&during), METRICS_HSM_COUNT_, METRICS_HSM_COUNT_ + 1);
        free(snapshots[i]);
    }

    metrics_request(m, 0x7777, API_STATUS_UNKNOWN_OPCODE, 1000);
    /* Numbers the protocol does not define share one series. */
    metrics_request(m, API_OP_CARD_GET, 99, 1000);
    metrics_request(m, API_OP_CARD_GET, 100000, 1000);
    /* Exactly on the lowest bound, and beyond the highest. */
    metrics_hsm_call(m, METRICS_HSM_SIGN, 50000u);
    metrics_hsm_call(m, METRICS_HSM_SIGN, 60ull * 1000000000u);
    metrics_hsm_call(m, METRICS_HSM_COUNT_, 1); /* not a call: ignored */
    metrics_audit(m, true);
    metrics_audit(m, true);
    metrics_audit(m, false);
    st.batch_hist[0] = 1; /* one commit of 1 job, two of 4..7, five of 512 or more */
    st.batch_hist[2] = 2;
    st.batch_hist[STORE_BATCH_BUCKETS - 1] = 5;
    assert_int_equal(metrics_render(m, &g, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    parse(text, &after);

    assert_true(value(&after, "tokenvault_requests_total", "op=card_store,status=OK") ==
                THREADS * PER_THREAD);
    assert_true(value(&after, "tokenvault_requests_total", "op=unknown,status=UNKNOWN_OPCODE") == 1);
    assert_true(value(&after, "tokenvault_requests_total", "op=card_get,status=unknown") == 2);
    /* Only series with counts; and labels are the protocol's own names. */
    for (int i = 0; i < after.num_samples; i++) {
        const struct sample *s = &after.samples[i];
        const char *op = label(s, "op"), *status = label(s, "status");

        if (strcmp(s->name, "tokenvault_requests_total") == 0)
            assert_true(s->value > 0);
        if (op != NULL && strcmp(op, "unknown") != 0) {
            bool known = false;

#define CHECK_OP(name, num, area, verb, role, lower, summary) known |= strcmp(op, #lower) == 0;
            API_OP_LIST(CHECK_OP)
#undef CHECK_OP
            assert_true(known);
        }
        if (status != NULL && strcmp(status, "unknown") != 0)
            assert_true(api_status_from_name(status) >= 0);
    }
    assert_true(value(&after, "tokenvault_requests_total", "op=card_list,status=OK") == -1);

    /* Cumulative: half at <= 100 µs, all at <= 5 ms and beyond. */
    assert_true(value(&after, "tokenvault_request_duration_seconds_bucket",
                      "op=card_store,le=0.00005") == 0);
    assert_true(value(&after, "tokenvault_request_duration_seconds_bucket",
                      "op=card_store,le=0.0001") == THREADS * PER_THREAD / 2.0);
    assert_true(value(&after, "tokenvault_request_duration_seconds_bucket",
                      "op=card_store,le=0.0025") == THREADS * PER_THREAD / 2.0);
    assert_true(value(&after, "tokenvault_request_duration_seconds_bucket",
                      "op=card_store,le=0.005") == THREADS * PER_THREAD);
    assert_true(value(&after, "tokenvault_request_duration_seconds_bucket", "op=card_store,le=+Inf") ==
                THREADS * PER_THREAD);
    assert_true(value(&after, "tokenvault_request_duration_seconds_count", "op=card_store") ==
                THREADS * PER_THREAD);
    /* 2000 * 3 ms + 2000 * 0.1 ms, written exactly. */
    assert_non_null(strstr(text, "\ntokenvault_request_duration_seconds_sum{op=\"card_store\"} 6.2\n"));
    assert_true(value(&after, "tokenvault_request_duration_seconds_count", "op=card_list") == -1);

    assert_true(value(&after, "tokenvault_hsm_call_duration_seconds_count", "call=hmac") ==
                THREADS * PER_THREAD);
    assert_true(value(&after, "tokenvault_hsm_call_duration_seconds_bucket", "call=sign,le=0.00005") ==
                1);
    assert_true(value(&after, "tokenvault_hsm_call_duration_seconds_bucket", "call=sign,le=10") == 1);
    assert_true(value(&after, "tokenvault_hsm_call_duration_seconds_bucket", "call=sign,le=+Inf") ==
                2);
    assert_true(value(&after, "tokenvault_hsm_call_duration_seconds_sum", "call=sign") == 60.00005);
    /* Every call has its series, counted or not. */
    assert_true(value(&after, "tokenvault_hsm_call_duration_seconds_count", "call=gcm_decrypt") == 0);
    /* card_store, card_get, unknown; five HSM calls; the batch sizes. */
    assert_int_equal(check_histograms(&after), 3 + METRICS_HSM_COUNT_ + 1);

    assert_true(value(&after, "tokenvault_audit_entries_total", NULL) == 2);
    assert_true(value(&after, "tokenvault_audit_failures_total", NULL) == 1);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=1") == 1);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=3") == 1);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=7") == 3);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=255") == 3);
    /* The last bucket is open-ended: only in +Inf. */
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=511") == 3);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=1023") == -1);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_bucket", "le=+Inf") == 8);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_count", NULL) == 8);
    assert_true(value(&after, "tokenvault_store_commit_batch_size_sum", NULL) == 40);
    assert_true(value(&after, "tokenvault_store_entries", "db=cards") == 0);
    assert_true(value(&after, "tokenvault_store_map_used_bytes", NULL) == 4096);
    assert_true(value(&after, "tokenvault_key_version", "key=kek") == 2);
    assert_true(value(&after, "tokenvault_key_version", "key=dek") == -1); /* 0: omitted */
    assert_true(value(&after, "tokenvault_key_version", "key=stk") == 5);
    assert_true(value(&after, "tokenvault_connections", NULL) == 3);
    assert_true(value(&after, "tokenvault_hsm_ready", NULL) == 1);
    assert_true(value(&after, "tokenvault_hsm_recycles_total", NULL) == 2);
    assert_true(value(&after, "tokenvault_hsm_temp_objects_destroyed_total", NULL) == 2000001);
    assert_true(value(&after, "tokenvault_sealed", NULL) == 0);
    assert_true(value(&after, "tokenvault_start_time_seconds", NULL) > 1.6e9);
    free(text);

    /* Without gauges: no store or gauge families, the counters still. */
    assert_int_equal(metrics_render(m, NULL, &text, &len), 0);
    parse(text, &after);
    assert_null(family_find(&after, "tokenvault_store_entries", strlen("tokenvault_store_entries")));
    assert_null(family_find(&after, "tokenvault_hsm_ready", strlen("tokenvault_hsm_ready")));
    assert_true(value(&after, "tokenvault_audit_entries_total", NULL) == 2);
    free(text);
}

static void
test_textfile(void **state)
{
    char dir[] = "/tmp/tv-metrics-XXXXXX", path[64], tmp[80], cmd[96], decoy[80];
    char *want = NULL, got[65536], old[16];
    size_t want_len = 0;
    ssize_t n;
    struct stat st;
    mode_t mask;
    int fd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/tokenvault.prom", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    snprintf(decoy, sizeof(decoy), "%s/decoy", dir);

    /* A reader holding the previous file keeps reading it whole. */
    assert_true((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    assert_int_equal(write(fd, "old\n", 4), 4);
    close(fd);
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    /* 0644 whatever the umask. */
    mask = umask(077);
    assert_int_equal(metrics_write_textfile(m, NULL, path), 0);
    umask(mask);
    assert_int_equal(read(fd, old, sizeof(old)), 4);
    assert_memory_equal(old, "old\n", 4);
    close(fd);

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0644);
    assert_int_not_equal(access(tmp, F_OK), 0); /* renamed into place */
    /* The file is the exposition, whole. */
    assert_int_equal(metrics_render(m, NULL, &want, &want_len), 0);
    assert_true((fd = open(path, O_RDONLY)) >= 0);
    n = read(fd, got, sizeof(got));
    close(fd);
    assert_int_equal(n, (ssize_t)want_len);
    assert_memory_equal(got, want, want_len);
    free(want);

    /* A link planted at the temporary name is not followed. */
    assert_true((fd = open(decoy, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    close(fd);
    assert_int_equal(symlink(decoy, tmp), 0);
    assert_int_equal(metrics_write_textfile(m, NULL, path), -ELOOP);
    assert_int_equal(stat(decoy, &st), 0);
    assert_int_equal(st.st_size, 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* ... and does not stay to fail every later write. */
    assert_int_equal(metrics_write_textfile(m, NULL, path), 0);

    /* A directory that does not exist, a path too long: errno, not a crash. */
    assert_int_equal(metrics_write_textfile(m, NULL, "/nonexistent/dir/x.prom"), -ENOENT);
    {
        static char long_path[PATH_MAX + 8];

        memset(long_path, 'a', sizeof(long_path) - 1);
        long_path[0] = '/';
        assert_int_equal(metrics_write_textfile(m, NULL, long_path), -ENAMETOOLONG);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    metrics_free(m);
    metrics_free(NULL);
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
