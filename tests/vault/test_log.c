/*
 * test_log.c - log lines: format, levels, and escaping that no value can
 * break out of, checked by parsing every line back as key=value fields.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vault/log.h"

/* Fields a parsed test line may hold. */
#define FIELDS_MAX 256
/* Lines each thread writes, and how many threads, in the interleaving test. */
#define THREADS 4
#define LINES_PER_THREAD 250
/* Long enough that a line split into several writes would interleave. */
#define THREAD_VALUE_LEN 1500

static int fds[2];

struct field {
    char key[64];
    char val[VLOG_LINE_MAX];
    size_t val_len;
};

static struct field fields[FIELDS_MAX];

static int
setup(void **state)
{
    (void)state;
    if (pipe(fds) != 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0)
        return -1;
    vlog_set_fd(fds[1]);
    vlog_set_level(VAULT_LOG_INFO);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    vlog_set_fd(2);
    close(fds[0]);
    close(fds[1]);
    return 0;
}

/* Reads what one line wrote. */
static size_t
take(char *out, size_t cap)
{
    ssize_t n = read(fds[0], out, cap - 1);

    assert_true(n > 0);
    out[n] = '\0';
    return (size_t)n;
}

static void
assert_nothing_written(void)
{
    char c;

    assert_int_equal(read(fds[0], &c, 1), -1);
    assert_int_equal(errno, EAGAIN);
}

static int
hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parses one whole line (|len| bytes, ending in its only newline) as
 * space-separated key=value fields, unescaping quoted values, into fields[].
 * The number of fields, or -1 when a reader of the format would stumble. */
static int
parse(const char *line, size_t len)
{
    size_t i = 0;
    int n = 0;

    if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len) != line + len - 1)
        return -1;
    len--;
    while (i < len) {
        struct field *f = &fields[n];
        size_t k = 0;

        if (n == FIELDS_MAX || (n > 0 && line[i++] != ' '))
            return -1;
        while (i < len && ((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_' ||
                           (line[i] >= '0' && line[i] <= '9'))) {
            if (k + 1 == sizeof(f->key))
                return -1;
            f->key[k++] = line[i++];
        }
        f->key[k] = '\0';
        if (k == 0 || i == len || line[i++] != '=')
            return -1;
        f->val_len = 0;
        if (i < len && line[i] == '"') {
            for (i++;; i++) {
                if (i == len)
                    return -1; /* quote never closed */
                if (line[i] == '"')
                    break;
                if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
                    return -1;
                if (line[i] == '\\') {
                    if (i + 1 < len && (line[i + 1] == '"' || line[i + 1] == '\\')) {
                        f->val[f->val_len++] = line[++i];
                    } else if (i + 3 < len && line[i + 1] == 'x' && hex(line[i + 2]) >= 0 &&
                               hex(line[i + 3]) >= 0) {
                        f->val[f->val_len++] = (char)(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                        i += 3;
                    } else {
                        return -1;
                    }
                } else {
                    f->val[f->val_len++] = line[i];
                }
            }
            i++;
        } else {
            while (i < len && line[i] != ' ') {
                unsigned char c = (unsigned char)line[i];

                if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\')
                    return -1;
                f->val[f->val_len++] = line[i++];
            }
        }
        f->val[f->val_len] = '\0';
        n++;
    }
    return n;
}

static void
assert_field(int i, const char *key, const char *val)
{
    assert_string_equal(fields[i].key, key);
    assert_int_equal(fields[i].val_len, strlen(val));
    assert_string_equal(fields[i].val, val);
}

static void
test_format(void **state)
{
    struct vlog_line l;
    char buf[VLOG_LINE_MAX + 16];
    struct tm tm = {0};
    const char *end;
    size_t n;
    time_t t;

    (void)state;
    assert_true(vlog_begin(&l, VAULT_LOG_INFO, "request"));
    vlog_str(&l, "op", "card_store");
    vlog_u64(&l, "rid", UINT64_MAX);
    vlog_i64(&l, "code", INT64_MIN);
    vlog_ms(&l, "ms", 2414999);
    vlog_end(&l);
    n = take(buf, sizeof(buf));
    assert_int_equal(parse(buf, n), 7);
    assert_field(1, "level", "info");
    assert_field(2, "event", "request");
    assert_field(3, "op", "card_store");
    assert_field(4, "rid", "18446744073709551615");
    assert_field(5, "code", "-9223372036854775808");
    assert_field(6, "ms", "2.41");

    /* ts: RFC 3339 UTC with milliseconds, and now. */
    assert_string_equal(fields[0].key, "ts");
    assert_int_equal(fields[0].val_len, strlen("2026-11-22T10:04:05.123Z"));
    end = strptime(fields[0].val, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(end);
    assert_true(end[0] == '.' && isdigit((unsigned char)end[1]) && isdigit((unsigned char)end[2]) &&
                isdigit((unsigned char)end[3]));
    assert_string_equal(end + 4, "Z");
    t = timegm(&tm);
    assert_true(llabs((long long)(t - time(NULL))) <= 5);
}

static void
test_levels(void **state)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    struct vlog_line l;
    char buf[256];
    size_t n;

    (void)state;
    for (int set = VAULT_LOG_ERROR; set <= VAULT_LOG_DEBUG; set++) {
        vlog_set_level((enum vault_log_level)set);
        assert_int_equal(vlog_get_level(), set);
        for (int lvl = VAULT_LOG_ERROR; lvl <= VAULT_LOG_DEBUG; lvl++) {
            bool on = vlog_begin(&l, (enum vault_log_level)lvl, "e");

            assert_int_equal(on, lvl <= set);
            vlog_str(&l, "k", "v");
            vlog_u64(&l, "n", 1);
            vlog_end(&l);
            if (!on) {
                assert_nothing_written();
                continue;
            }
            n = take(buf, sizeof(buf));
            assert_int_equal(parse(buf, n), 5);
            assert_field(1, "level", names[lvl]);
        }
    }
    vlog_set_level(VAULT_LOG_INFO);
    /* The one-call form filters the same way. */
    vlog_msg(VAULT_LOG_DEBUG, "quiet", "reason", "x");
    assert_nothing_written();
}

static void
test_msg(void **state)
{
    char buf[256];
    size_t n;

    (void)state;
    vlog_msg(VAULT_LOG_ERROR, "store_open", "reason", "disk full");
    n = take(buf, sizeof(buf));
    assert_int_equal(parse(buf, n), 4);
    assert_field(1, "level", "error");
    assert_field(2, "event", "store_open");
    assert_field(3, "reason", "disk full");
    /* No reason: the event alone. */
    vlog_msg(VAULT_LOG_INFO, "service_stopped", NULL, NULL);
    n = take(buf, sizeof(buf));
    assert_int_equal(parse(buf, n), 3);
    vlog_msg(VAULT_LOG_INFO, "service_stopped", "reason", NULL);
    n = take(buf, sizeof(buf));
    assert_int_equal(parse(buf, n), 3);
}

static void
test_escaping(void **state)
{
    static const struct {
        const char *in;
        const char *out; /* as written, after "v=" */
    } cases[] = {
        {"plain", "plain"},
        {"two words", "\"two words\""},
        {"a=b", "\"a=b\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"x level=error", "\"x level=error\""},
        {"\" level=error event=forged x=\"", "\"\\\" level=error event=forged x=\\\"\""},
        {"line\nts=2026-01-01T00:00:00.000Z level=error event=forged",
         "\"line\\x0ats=2026-01-01T00:00:00.000Z level=error event=forged\""},
        {"cr\rlf", "\"cr\\x0dlf\""},
        {"tab\there", "\"tab\\x09here\""},
        {"\x01\x1b[31m\x7f", "\"\\x01\\x1b[31m\\x7f\""},
        {"caf\xc3\xa9", "\"caf\\xc3\\xa9\""},
        {"\xff", "\"\\xff\""},
        {"", "\"\""},
    };
    struct vlog_line l;
    char buf[512];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[256];

        assert_true(vlog_begin(&l, VAULT_LOG_INFO, "e"));
        vlog_str(&l, "v", cases[i].in);
        vlog_str(&l, "after", "1");
        vlog_end(&l);
        n = take(buf, sizeof(buf));
        snprintf(want, sizeof(want), " v=%s after=1\n", cases[i].out);
        assert_non_null(strstr(buf, want));
        /* Read back: exactly the fields written, the value unchanged, and the
         * real level untouched by the forged one. */
        assert_int_equal(parse(buf, n), 5);
        assert_field(1, "level", "info");
        assert_field(2, "event", "e");
        assert_field(3, "v", cases[i].in);
        assert_field(4, "after", "1");
    }
}

static void
test_strn(void **state)
{
    static const char bytes[] = {'a', 'b', '\0', 'c', 'd'};
    struct vlog_line l;
    char buf[256];
    size_t n;

    (void)state;
    assert_true(vlog_begin(&l, VAULT_LOG_INFO, "e"));
    vlog_strn(&l, "nul", bytes, sizeof(bytes));
    vlog_strn(&l, "prefix", "abcdef", 2);
    vlog_strn(&l, "none", "abc", 0);
    vlog_str(&l, "null", NULL);
    vlog_end(&l);
    n = take(buf, sizeof(buf));
    assert_non_null(strstr(buf, " nul=\"ab\\x00cd\" prefix=ab none=\"\" null=\"\"\n"));
    assert_int_equal(parse(buf, n), 7);
    assert_int_equal(fields[3].val_len, sizeof(bytes));
    assert_memory_equal(fields[3].val, bytes, sizeof(bytes));
}

static void
test_ms(void **state)
{
    static const struct {
        uint64_t ns;
        const char *out;
    } cases[] = {
        {0, "0.00"},
        {4999, "0.00"},
        {5000, "0.01"},
        {2414999, "2.41"},
        {2415000, "2.42"},
        {999995000, "1000.00"},
        {1000000000, "1000.00"},
        {UINT64_MAX, "18446744073709.55"},
    };
    struct vlog_line l;
    char buf[256];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(vlog_begin(&l, VAULT_LOG_INFO, "e"));
        vlog_ms(&l, "ms", cases[i].ns);
        vlog_end(&l);
        n = take(buf, sizeof(buf));
        assert_int_equal(parse(buf, n), 4);
        assert_field(3, "ms", cases[i].out);
    }
}

/* Writes a line of |value| and a field after it; returns its length. */
static size_t
long_line(char *buf, size_t cap, const char *value)
{
    struct vlog_line l;

    assert_true(vlog_begin(&l, VAULT_LOG_INFO, "big"));
    vlog_str(&l, "a", value);
    vlog_str(&l, "b", "after");
    vlog_end(&l);
    return take(buf, cap);
}

static void
test_truncation(void **state)
{
    static char big[3 * VLOG_LINE_MAX];
    char buf[2 * VLOG_LINE_MAX];
    struct vlog_line l;
    size_t n;
    int nf;

    (void)state;
    /* Unquoted: cut at the last byte that fits. */
    memset(big, 'x', sizeof(big) - 1);
    n = long_line(buf, sizeof(buf), big);
    assert_int_equal(n, VLOG_LINE_MAX);
    nf = parse(buf, n);
    assert_int_equal(nf, 5);
    assert_string_equal(fields[3].key, "a");
    assert_true(fields[3].val_len > VLOG_LINE_MAX - 100);
    assert_field(4, "truncated", "1");
    assert_null(strstr(buf, "after"));

    /* Quoted, every byte escaped: never cut inside an escape, and the quote
     * is closed before the marker, which stays a field of its own. */
    memset(big, '\x01', sizeof(big) - 1);
    n = long_line(buf, sizeof(buf), big);
    assert_true(n <= VLOG_LINE_MAX && n > VLOG_LINE_MAX - 4);
    assert_int_equal(parse(buf, n), 5);
    assert_int_equal(fields[3].val[0], '\x01');
    assert_field(4, "truncated", "1");

    /* Quoted, with the escape ending just at the cut. */
    for (size_t pad = 0; pad < 4; pad++) {
        memset(big, '\\', sizeof(big) - 1);
        memset(big, ' ', pad + 1);
        n = long_line(buf, sizeof(buf), big);
        assert_true(n <= VLOG_LINE_MAX);
        assert_int_equal(parse(buf, n), 5);
        assert_field(4, "truncated", "1");
    }

    /* Many small fields: those that fit whole, then the marker. */
    assert_true(vlog_begin(&l, VAULT_LOG_INFO, "many"));
    for (unsigned i = 0; i < 1000; i++)
        vlog_u64(&l, "field", 1234567);
    vlog_end(&l);
    n = take(buf, sizeof(buf));
    assert_true(n <= VLOG_LINE_MAX);
    nf = parse(buf, n);
    assert_true(nf > 100);
    for (int i = 3; i < nf - 1; i++)
        assert_field(i, "field", "1234567");
    assert_field(nf - 1, "truncated", "1");

    /* A long line that fits is not marked. */
    memset(big, 'y', sizeof(big));
    big[1000] = '\0';
    n = long_line(buf, sizeof(buf), big);
    assert_int_equal(parse(buf, n), 5);
    assert_field(4, "b", "after");
}

static void *
write_lines(void *arg)
{
    static char value[THREAD_VALUE_LEN + 1];
    struct vlog_line l;

    memset(value, 'v', THREAD_VALUE_LEN);
    for (unsigned i = 0; i < LINES_PER_THREAD; i++) {
        assert_true(vlog_begin(&l, VAULT_LOG_INFO, "thread"));
        vlog_u64(&l, "id", (uintptr_t)arg);
        vlog_str(&l, "v", value);
        vlog_end(&l);
    }
    return NULL;
}

static void
test_threads(void **state)
{
    char path[] = "/tmp/tv-log-XXXXXX";
    pthread_t th[THREADS];
    static char text[THREADS * LINES_PER_THREAD * (THREAD_VALUE_LEN + 100)];
    unsigned counts[THREADS] = {0};
    size_t len = 0;
    ssize_t r;
    char *p, *nl;
    int fd;

    (void)state;
    /* An O_APPEND file, as the service's stderr may be. */
    assert_true((fd = mkstemp(path)) >= 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(fcntl(fd, F_SETFL, O_APPEND), 0);
    vlog_set_fd(fd);
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, write_lines, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    vlog_set_fd(fds[1]);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while ((r = read(fd, text + len, sizeof(text) - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    text[len] = '\0';
    for (p = text; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        unsigned long id;

        assert_int_equal(parse(p, (size_t)(nl - p + 1)), 5);
        assert_string_equal(fields[3].key, "id");
        id = strtoul(fields[3].val, NULL, 10);
        assert_true(id < THREADS);
        counts[id]++;
        assert_int_equal(fields[4].val_len, THREAD_VALUE_LEN);
    }
    assert_ptr_equal(p, text + len);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(counts[i], LINES_PER_THREAD);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),   cmocka_unit_test(test_levels),
        cmocka_unit_test(test_msg),      cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_strn),     cmocka_unit_test(test_ms),
        cmocka_unit_test(test_truncation), cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
