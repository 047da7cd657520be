/*
 * tool_err.h - the error lines of the stand-alone tools (tokenvault-walletgen,
 * tokenvault-bench): "PROG: message" on stderr, and OpenSSL's reason for the
 * last failure. Define PROG before including it. Tools are one file each, so
 * these are static functions of that file.
 */
#ifndef TOKENVAULT_TOOLS_TOOL_ERR_H
#define TOKENVAULT_TOOLS_TOOL_ERR_H

#include <stdarg.h>
#include <stdio.h>

#include <openssl/err.h>

#ifndef PROG
#error "define PROG before including tools/tool_err.h"
#endif

static void err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
err(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

/* OpenSSL's reason for the last failure, then a clean queue. */
static void
err_ssl(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    err("%s%s%s", what, e != 0 ? ": " : "", buf);
    ERR_clear_error();
}

#endif
