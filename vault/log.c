/*
 * log.c - key=value log lines, one write(2) each.
 */
#include "vault/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int log_level = VAULT_LOG_INFO;
static atomic_int log_fd = 2;

/* Room kept at the end of a line for " truncated=1\n". */
#define TRUNC_MARK " truncated=1"
#define LINE_RESERVE (sizeof(TRUNC_MARK) + 1u)

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

/* Appends raw bytes; past the room left, the line is marked truncated. */
static void
put(struct vlog_line *l, const char *s, size_t n)
{
    size_t room = VLOG_LINE_MAX - LINE_RESERVE - l->len;

    if (l->truncated)
        return;
    if (n > room) {
        l->truncated = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += (unsigned)n;
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
    put(l, head, (size_t)n);
    put(l, event, strlen(event));
    return true;
}

static bool
needs_quotes(const unsigned char *v, size_t len)
{
    if (len == 0)
        return true;
    for (size_t i = 0; i < len; i++)
        if (v[i] <= 0x20 || v[i] >= 0x7f || v[i] == '"' || v[i] == '=' || v[i] == '\\')
            return true;
    return false;
}

void
vlog_strn(struct vlog_line *l, const char *key, const char *value, unsigned len)
{
    const unsigned char *v = (const unsigned char *)value;

    if (!l->on)
        return;
    put(l, " ", 1);
    put(l, key, strlen(key));
    put(l, "=", 1);
    if (!needs_quotes(v, len)) {
        put(l, value, len);
        return;
    }
    /* Quoted: '"' and '\\' escaped, anything outside printable ASCII as \xNN,
     * so a value can never end the field or the line early. */
    put(l, "\"", 1);
    for (unsigned i = 0; i < len; i++) {
        char esc[5];

        if (v[i] == '"' || v[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)v[i];
            put(l, esc, 2);
        } else if (v[i] < 0x20 || v[i] >= 0x7f) {
            snprintf(esc, sizeof(esc), "\\x%02x", v[i]);
            put(l, esc, 4);
        } else {
            put(l, (const char *)&v[i], 1);
        }
    }
    put(l, "\"", 1);
}

void
vlog_str(struct vlog_line *l, const char *key, const char *value)
{
    if (value == NULL)
        value = "";
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

void
vlog_ms(struct vlog_line *l, const char *key, uint64_t ns)
{
    char v[32];
    uint64_t hundredths = (ns + 5000u) / 10000u;

    if (!l->on)
        return;
    snprintf(v, sizeof(v), "%llu.%02llu", (unsigned long long)(hundredths / 100u),
             (unsigned long long)(hundredths % 100u));
    vlog_str(l, key, v);
}

void
vlog_end(struct vlog_line *l)
{
    ssize_t w;

    if (!l->on)
        return;
    if (l->truncated) {
        memcpy(l->buf + l->len, TRUNC_MARK, sizeof(TRUNC_MARK) - 1);
        l->len += (unsigned)(sizeof(TRUNC_MARK) - 1);
    }
    l->buf[l->len++] = '\n';
    /* One write: lines from threads never interleave. A log that cannot be
     * written is not worth failing a request over; the audit log is the
     * record that must not be lost. */
    w = write(atomic_load(&log_fd), l->buf, l->len);
    (void)w;
    l->on = false;
}

void
vlog_msg(enum vault_log_level level, const char *event, const char *key, const char *value)
{
    struct vlog_line l;

    if (!vlog_begin(&l, level, event))
        return;
    if (key != NULL)
        vlog_str(&l, key, value);
    vlog_end(&l);
}
