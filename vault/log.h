/*
 * log.h - tokenvaultd's log: one line per event, key=value, to stderr (the
 * journal under systemd).
 *
 *   ts=2026-11-22T10:04:05.123Z level=info event=request op=card_store
 *   status=OK rid=17 client=gateway-a merchant=m-1001 ms=2.41
 *
 * A line is built field by field; every value goes through the same escaping,
 * so an untrusted string (a merchant id, a certificate subject) cannot forge a
 * field or a line: values with a space, '"', '=', '\\' or a byte outside
 * printable ASCII are quoted, with '"' and '\\' backslash-escaped and other
 * bytes written as \xNN. A line longer than VLOG_LINE_MAX is cut and ends with
 * truncated=1.
 *
 * What is never logged (SECURITY.md rule 1): a PAN, holder, e-mail, PIN, key,
 * share or raw request bytes. The log module cannot know what a value is, so
 * callers log ids, statuses and counts only; the tests scan the log for the
 * secrets they sent.
 *
 * Thread-safe: each line is one write(2) of at most VLOG_LINE_MAX bytes to an
 * O_APPEND descriptor or a pipe, so lines from threads never interleave.
 */
#ifndef TOKENVAULT_VAULT_LOG_H
#define TOKENVAULT_VAULT_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "vault/config.h"

/* Longest line written, newline included; below PIPE_BUF (4096) so a write to
 * a pipe is atomic. */
#define VLOG_LINE_MAX 2048u

/* The level at or above which lines are written (default INFO), and the
 * descriptor they go to (default 2). Any thread; takes effect for lines begun
 * afterwards (SIGHUP changes the level). */
void vlog_set_level(enum vault_log_level level);
enum vault_log_level vlog_get_level(void);
void vlog_set_fd(int fd);

struct vlog_line {
    char buf[VLOG_LINE_MAX];
    unsigned len;
    bool on;        /* false: below the level; the field calls do nothing */
    bool truncated;
};

/* vlog_begin starts a line for |event| (a fixed lower_snake word chosen by the
 * caller, not escaped) at |level|; returns whether it will be written, so a
 * caller can skip work for a line nobody will see. */
bool vlog_begin(struct vlog_line *l, enum vault_log_level level, const char *event);

/* Fields. |key| is a fixed lower_snake word, not escaped; values are. */
void vlog_str(struct vlog_line *l, const char *key, const char *value);
/* |len| bytes of |value| (need not be NUL-terminated). */
void vlog_strn(struct vlog_line *l, const char *key, const char *value, unsigned len);
void vlog_u64(struct vlog_line *l, const char *key, uint64_t value);
void vlog_i64(struct vlog_line *l, const char *key, int64_t value);
/* Milliseconds from nanoseconds, with two decimals ("2.41"). */
void vlog_ms(struct vlog_line *l, const char *key, uint64_t ns);

/* vlog_end writes the line with its newline. */
void vlog_end(struct vlog_line *l);

/* One-call form for simple events: vlog_msg(VAULT_LOG_ERROR, "store_open",
 * "reason", reason). |reason| is escaped like any value; NULL skips it. */
void vlog_msg(enum vault_log_level level, const char *event, const char *key, const char *value);

#endif
