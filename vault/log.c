/*
 * log.c - key=value log lines, one write(2) each.
 *
 * A line is assembled in the caller's struct vlog_line. When it would exceed
 * VLOG_LINE_MAX it is cut, never split across writes: what follows the cut is
 * dropped and the line ends " truncated=1\n". Only a long value is cut inside
 * (see VLOG_CUT_MIN); a cut never lands inside an escape sequence and never
 * leaves a quote open, so the marker can always be read as a field of its own.
 */
#include "vault/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = VAULT_LOG_INFO;
static atomic_int log_fd = 2;

/* Ends a line that was cut. */
#define TRUNC_MARK " truncated=1"
#define TRUNC_MARK_LEN (sizeof(TRUNC_MARK) - 1u)
/* Bytes kept back at the end of every line for the marker and the newline,
 * so vlog_end can always add them. */
#define LINE_RESERVE (TRUNC_MARK_LEN + 1u)
/* "\xNN": the longest form one value byte takes. */
#define ESCAPE_MAX 4u

void
vlog_set_level(enum vault_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum vault_log_level
vlog_get_level(void)
{
    return (enum vault_log_level)atomic_load(&log_level);
}

void
vlog_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

/* Bytes that may still be added before the reserve; 0 once the line is cut. */
static size_t
room(const struct vlog_line *l)
{
    return l->truncated ? 0 : VLOG_LINE_MAX - LINE_RESERVE - l->len;
}

/* Whether |n| more bytes fit; when they do not, the line is cut here. */
static bool
fits(struct vlog_line *l, size_t n)
{
    if (n <= room(l))
        return true;
    l->truncated = true;
    return false;
}

static void
append(struct vlog_line *l, const void *s, size_t n)
{
    memcpy(l->buf + l->len, s, n);
    l->len += (unsigned)n;
}

/* Appends as much of |s| as fits: for text that may be cut at any byte (the
 * header, an unquoted value, which holds no escapes). */
static void
append_cut(struct vlog_line *l, const char *s, size_t n)
{
    size_t r = room(l);

    if (n > r) {
        n = r;
        l->truncated = true;
    }
    append(l, s, n);
}

bool
vlog_begin(struct vlog_line *l, enum vault_log_level level, const char *event)
{
    struct timespec ts;
    struct tm tm;
    char head[96];
    int n;

    l->len = 0;
    l->truncated = false;
    l->on = (int)level <= atomic_load(&log_level);
    if (!l->on)
        return false;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(head, sizeof(head), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000L, vault_log_level_name(level));
    append_cut(l, head, (size_t)n);
    append_cut(l, event, strlen(event));
    return true;
}

/* Values shorter than this are written whole or not at all: ids, numbers and
 * names are (API_ID_MAX and below), and a cut one would read as another valid
 * value. Only longer free text is cut, with the marker right after it. */
#define VLOG_CUT_MIN 256u

/* How byte |c| of a quoted value is written: '"' and '\\' backslash-escaped,
 * anything outside printable ASCII as \xNN, so a value can never end its
 * field or its line early. Fills |out|, returns the length. */
static size_t
escape_byte(unsigned char c, char out[ESCAPE_MAX])
{
    static const char digits[] = "0123456789abcdef";

    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c < 0x20 || c >= 0x7f) {
        out[0] = '\\';
        out[1] = 'x';
        out[2] = digits[c >> 4];
        out[3] = digits[c & 0xf];
        return ESCAPE_MAX;
    }
    out[0] = (char)c;
    return 1;
}

/* How |v| is written: whether it is quoted (empty, or holding a byte that is
 * escaped, a space or '='), and its length as written. */
static size_t
written_len(const unsigned char *v, size_t len, bool *out_quoted)
{
    char esc[ESCAPE_MAX];
    size_t n = 0;
    bool quoted = len == 0;

    for (size_t i = 0; i < len; i++) {
        size_t e = escape_byte(v[i], esc);

        quoted |= e != 1 || v[i] == ' ' || v[i] == '=';
        n += e;
    }
    *out_quoted = quoted;
    return quoted ? n + 2u : n;
}

void
vlog_strn(struct vlog_line *l, const char *key, const char *value, unsigned len)
{
    const unsigned char *v = (const unsigned char *)value;
    size_t key_len, value_len;
    bool quoted;

    if (!l->on)
        return;
    key_len = strlen(key);
    value_len = written_len(v, len, &quoted);
    /* A short value goes whole or not at all; a long one at least starts,
     * and with its quotes: the closing quote always has its byte. */
    if (!fits(l, key_len + 2u + (len < VLOG_CUT_MIN ? value_len : quoted ? 2u : 0u)))
        return;
    append(l, " ", 1);
    append(l, key, key_len);
    append(l, "=", 1);
    if (!quoted) {
        append_cut(l, value, len);
        return;
    }
    append(l, "\"", 1);
    for (unsigned i = 0; i < len; i++) {
        char esc[ESCAPE_MAX];
        size_t n = escape_byte(v[i], esc);

        /* + 1: the closing quote's byte stays free. */
        if (!fits(l, n + 1u))
            break;
        append(l, esc, n);
    }
    append(l, "\"", 1);
}

void
vlog_str(struct vlog_line *l, const char *key, const char *value)
{
    if (value == NULL)
        value = "";
    /* Nothing longer than a line can be written anyway. */
    vlog_strn(l, key, value, (unsigned)strnlen(value, VLOG_LINE_MAX));
}

void
vlog_u64(struct vlog_line *l, const char *key, uint64_t value)
{
    char v[24];

    if (!l->on)
        return;
    snprintf(v, sizeof(v), "%llu", (unsigned long long)value);
    vlog_str(l, key, v);
}

void
vlog_i64(struct vlog_line *l, const char *key, int64_t value)
{
    char v[24];

    if (!l->on)
        return;
    snprintf(v, sizeof(v), "%lld", (long long)value);
    vlog_str(l, key, v);
}

/* Nanoseconds in one hundredth of a millisecond, the last digit shown. */
#define NS_PER_CENTI_MS 10000u

void
vlog_ms(struct vlog_line *l, const char *key, uint64_t ns)
{
    char v[32];
    /* Rounded half up, without adding to |ns| (which may be UINT64_MAX). */
    uint64_t centi = ns / NS_PER_CENTI_MS + (ns % NS_PER_CENTI_MS >= NS_PER_CENTI_MS / 2u);

    if (!l->on)
        return;
    snprintf(v, sizeof(v), "%llu.%02llu", (unsigned long long)(centi / 100u),
             (unsigned long long)(centi % 100u));
    vlog_str(l, key, v);
}

void
vlog_end(struct vlog_line *l)
{
    int fd = atomic_load(&log_fd);
    ssize_t w;

    if (!l->on)
        return;
    if (l->truncated)
        append(l, TRUNC_MARK, TRUNC_MARK_LEN);
    append(l, "\n", 1);
    /* One write: lines from threads never interleave. A log that cannot be
     * written is not worth failing a request over (the audit log is the record
     * that must not be lost), but a signal arriving first is no reason to lose
     * the line. */
    do
        w = write(fd, l->buf, l->len);
    while (w < 0 && errno == EINTR);
    l->on = false;
}

void
vlog_msg(enum vault_log_level level, const char *event, const char *key, const char *value)
{
    struct vlog_line l;

    if (!vlog_begin(&l, level, event))
        return;
    if (key != NULL && value != NULL)
        vlog_str(&l, key, value);
    vlog_end(&l);
}
