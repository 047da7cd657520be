/*
 * fuzz_check.h - range checks the fuzz targets apply to what a parser
 * accepted: a target aborts when a parsed value is out of its documented
 * range.
 */
#ifndef TOKENVAULT_TESTS_FUZZ_FUZZ_CHECK_H
#define TOKENVAULT_TESTS_FUZZ_FUZZ_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* |s| is min..max decimal digits. */
static inline bool
fuzz_digits(const char *s, size_t min, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* |s| is 1..max printable ASCII characters, no blank. */
static inline bool
fuzz_printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    }
    return true;
}

#endif
