/*
 * codec.c - strict base64, base64url, hex and JSON for the wallet parsers.
 */
#include "vault/wallet/codec.h"

#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "api/reader.h"

void
wallet_why(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    for (char *p = why; *p != '\0'; p++) {
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    }
}

/* ---- base64 and base64url --------------------------------------------------- */

/* The 6-bit value of |c| in the standard (url = false) or URL alphabet, or -1. */
static int
b64_value(uint8_t c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Decodes |r| (characters of one alphabet, no padding) into |out|. A group of
 * 2 or 3 characters at the end carries 1 or 2 bytes; its unused low bits must
 * be zero, so each byte string has exactly one encoding. */
static int
b64_groups(struct api_reader *r, bool url, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t n = 0, len = api_reader_len(r);

    if (len % 4 == 1 || len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1) > cap)
        return WALLET_ERR_FORMAT;
    while (api_reader_len(r) > 0) {
        size_t group = api_reader_len(r) < 4 ? api_reader_len(r) : 4;
        uint32_t acc = 0;

        for (size_t j = 0; j < group; j++) {
            uint8_t c = 0;
            int v;

            if (api_reader_get_u8(r, &c) != 0 || (v = b64_value(c, url)) < 0)
                return WALLET_ERR_FORMAT;
            acc = acc << 6 | (uint32_t)v;
        }
        if (group == 2) {
            if ((acc & 0x0f) != 0)
                return WALLET_ERR_FORMAT;
            out[n++] = (uint8_t)(acc >> 4);
        } else if (group == 3) {
            if ((acc & 0x03) != 0)
                return WALLET_ERR_FORMAT;
            out[n++] = (uint8_t)(acc >> 10);
            out[n++] = (uint8_t)(acc >> 2);
        } else {
            out[n++] = (uint8_t)(acc >> 16);
            out[n++] = (uint8_t)(acc >> 8);
            out[n++] = (uint8_t)acc;
        }
    }
    *out_len = n;
    return WALLET_OK;
}

int
wallet_b64_decode(uint8_t *out, size_t cap, size_t *out_len, const char *b64, size_t len)
{
    struct api_reader r, body;
    size_t pad = 0, n = 0;

    if (out == NULL || out_len == NULL || b64 == NULL || len == 0 || len % 4 != 0)
        return WALLET_ERR_FORMAT;
    if (b64[len - 1] == '=')
        pad = b64[len - 2] == '=' ? 2 : 1;
    api_reader_init(&r, (const uint8_t *)b64, len);
    /* The padding says how long the last group is; what it pads is decoded
     * as the unpadded form, with the same zero-bits rule. */
    if (api_reader_get_bytes(&r, &body, len - pad) != 0 || b64_groups(&body, false, out, cap, &n) != 0)
        return WALLET_ERR_FORMAT;
    *out_len = n;
    return WALLET_OK;
}

int
wallet_b64url_decode(uint8_t *out, size_t cap, size_t *out_len, const char *s, size_t len)
{
    struct api_reader r;
    size_t n = 0;

    if (out_len == NULL || (len > 0 && (out == NULL || s == NULL)))
        return WALLET_ERR_FORMAT;
    api_reader_init(&r, (const uint8_t *)s, len);
    if (b64_groups(&r, true, out, cap, &n) != 0)
        return WALLET_ERR_FORMAT;
    *out_len = n;
    return WALLET_OK;
}

/* ---- hex -------------------------------------------------------------------- */

static int
hex_nibble(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int
wallet_hex_decode(uint8_t *out, size_t cap, size_t *out_len, const char *hex, size_t len)
{
    struct api_reader r;

    if (out == NULL || out_len == NULL || hex == NULL || len == 0 || len % 2 != 0 ||
        len / 2 > cap)
        return WALLET_ERR_FORMAT;
    api_reader_init(&r, (const uint8_t *)hex, len);
    for (size_t i = 0; i < len / 2; i++) {
        uint8_t hi = 0, lo = 0;
        int h, l;

        if (api_reader_get_u8(&r, &hi) != 0 || api_reader_get_u8(&r, &lo) != 0 ||
            (h = hex_nibble(hi)) < 0 || (l = hex_nibble(lo)) < 0)
            return WALLET_ERR_FORMAT;
        out[i] = (uint8_t)(h << 4 | l);
    }
    *out_len = len / 2;
    return WALLET_OK;
}

/* ---- JSON -------------------------------------------------------------------- */

/* The nesting scan: brackets outside strings, with escapes inside strings
 * skipped; no NUL anywhere. Whether the text is JSON is jansson's to say;
 * this only bounds how deep jansson will recurse on it. */
static int
json_depth_check(const char *json, size_t len, char *why, size_t why_cap)
{
    struct api_reader r;
    unsigned depth = 0;
    bool in_string = false;

    api_reader_init(&r, (const uint8_t *)json, len);
    while (api_reader_len(&r) > 0) {
        uint8_t c = 0;

        if (api_reader_get_u8(&r, &c) != 0)
            return WALLET_ERR_FORMAT;
        if (c == '\0') {
            wallet_why(why, why_cap, "a NUL byte in the JSON");
            return WALLET_ERR_FORMAT;
        }
        if (in_string) {
            if (c == '\\' && api_reader_skip(&r, 1) != 0)
                return WALLET_ERR_FORMAT;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > WALLET_JSON_DEPTH_MAX) {
                wallet_why(why, why_cap, "JSON nested deeper than %d", WALLET_JSON_DEPTH_MAX);
                return WALLET_ERR_FORMAT;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return WALLET_OK;
}

/* jansson copies every string it parses (a DPAN, a cryptogram) into its own
 * allocations and frees them without wiping; the heap would keep them. Its
 * allocator is process-wide, so it is set once, to one that wipes what it
 * frees. */
static void
json_free_wiped(void *p)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, malloc_usable_size(p));
    free(p);
}

static pthread_once_t json_alloc_once = PTHREAD_ONCE_INIT;

static void
json_alloc_set(void)
{
    json_set_alloc_funcs(malloc, json_free_wiped);
}

int
wallet_json_load(json_t **out, const char *json, size_t len, size_t max_len, char *why,
                 size_t why_cap)
{
    json_error_t jerr;
    json_t *v = NULL;

    if (out == NULL || json == NULL || len == 0 || len > max_len) {
        wallet_why(why, why_cap, "JSON empty or longer than %zu bytes", max_len);
        return WALLET_ERR_FORMAT;
    }
    if (json_depth_check(json, len, why, why_cap) != WALLET_OK)
        return WALLET_ERR_FORMAT;
    pthread_once(&json_alloc_once, json_alloc_set);
    v = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v == NULL) {
        wallet_why(why, why_cap, "not JSON (line %d column %d): %s", jerr.line, jerr.column,
                   jerr.text);
        return WALLET_ERR_FORMAT;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        wallet_why(why, why_cap, "JSON is not an object");
        return WALLET_ERR_FORMAT;
    }
    *out = v;
    return WALLET_OK;
}

const char *
wallet_json_str(const json_t *v, size_t max, size_t *out_len)
{
    const char *s = json_string_value(v);
    size_t len;

    if (s == NULL)
        return NULL;
    len = json_string_length(v);
    /* jansson keeps an escaped \u0000 only with JSON_ALLOW_NUL, which is not
     * given; checking costs nothing. */
    if (len == 0 || len > max || strlen(s) != len)
        return NULL;
    *out_len = len;
    return s;
}

bool
wallet_all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static bool
listed(const char *name, const char *const *list)
{
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(name, *list) == 0)
            return true;
    }
    return false;
}

int
wallet_json_fields(const json_t *obj, const char *what, const char *const *known,
                   const char *const *required, char *why, size_t why_cap)
{
    const char *name;
    json_t *v;

    if (!json_is_object(obj)) {
        wallet_why(why, why_cap, "%s is not an object", what);
        return WALLET_ERR_FORMAT;
    }
    json_object_foreach((json_t *)obj, name, v) {
        if (known != NULL && !listed(name, known)) {
            wallet_why(why, why_cap, "%s has an unknown member \"%.40s\"", what, name);
            return WALLET_ERR_FORMAT;
        }
    }
    for (; required != NULL && *required != NULL; required++) {
        if (json_object_get(obj, *required) == NULL) {
            wallet_why(why, why_cap, "%s has no \"%s\"", what, *required);
            return WALLET_ERR_FORMAT;
        }
    }
    return WALLET_OK;
}
