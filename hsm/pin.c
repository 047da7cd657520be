/*
 * pin.c - where the HSM user PIN comes from: a 0600 file, or a callback
 * (sealed start). Never an argument, an environment variable or a literal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "hsm/internal.h"

struct hsm_pin_source {
    char *path;           /* file source */
    hsm_pin_get_fn get;   /* callback source */
    void *ctx;
};

int
hsm_pin_source_file(hsm_pin_source **out, const char *path)
{
    hsm_pin_source *src = NULL;

    if (out == NULL || path == NULL || path[0] == '\0')
        return hsm__fail(HSM_ERR_INVALID_ARG, "PIN file path missing");
    src = calloc(1, sizeof(*src));
    if (src == NULL)
        return HSM_ERR_NO_MEMORY;
    src->path = strdup(path);
    if (src->path == NULL) {
        free(src);
        return HSM_ERR_NO_MEMORY;
    }
    *out = src;
    return HSM_OK;
}

int
hsm_pin_source_callback(hsm_pin_source **out, hsm_pin_get_fn get, void *ctx)
{
    hsm_pin_source *src = NULL;

    if (out == NULL || get == NULL)
        return HSM_ERR_INVALID_ARG;
    src = calloc(1, sizeof(*src));
    if (src == NULL)
        return HSM_ERR_NO_MEMORY;
    src->get = get;
    src->ctx = ctx;
    *out = src;
    return HSM_OK;
}

void
hsm_pin_source_free(hsm_pin_source *src)
{
    if (src == NULL)
        return;
    free(src->path);
    free(src);
}

/* Reads the PIN file after checking, on the open descriptor (no race with a
 * rename), that it is a regular file of ours that nobody else can read. */
static int
read_file(const char *path, uint8_t *buf, size_t cap, size_t *out_len)
{
    struct stat st;
    size_t len = 0;
    ssize_t n;
    int fd = -1, r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0) {
        r = hsm__fail(HSM_ERR_PIN_SOURCE, "PIN file %s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = hsm__fail(HSM_ERR_PIN_SOURCE, "PIN file %s: not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        r = hsm__fail(HSM_ERR_PIN_SOURCE,
                      "PIN file %s: mode %03o lets others read it; must be 0600 or 0400", path,
                      (unsigned)(st.st_mode & 0777));
        goto out;
    }
    if (st.st_uid != geteuid()) {
        r = hsm__fail(HSM_ERR_PIN_SOURCE, "PIN file %s: owned by uid %u, not by this user", path,
                      (unsigned)st.st_uid);
        goto out;
    }
    /* Read one byte more than a PIN may have, to tell "too long" from "full". */
    while (len < cap) {
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = hsm__fail(HSM_ERR_PIN_SOURCE, "PIN file %s: read: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    if (len == 0 || len > HSM_PIN_MAX) {
        r = hsm__fail(HSM_ERR_PIN_SOURCE, "PIN file %s: PIN must be 1..%d bytes", path, HSM_PIN_MAX);
        goto out;
    }
    *out_len = len;
    r = HSM_OK;
out:
    if (r != HSM_OK)
        OPENSSL_cleanse(buf, cap);
    if (fd >= 0)
        close(fd);
    return r;
}

int
hsm_pin_source_read(hsm_pin_source *src, uint8_t *buf, size_t cap, size_t *out_len)
{
    size_t len = 0;
    int r;

    if (src == NULL || buf == NULL || out_len == NULL || cap < HSM_PIN_BUF)
        return hsm__fail(HSM_ERR_INVALID_ARG, "PIN buffer too small");
    if (src->path != NULL)
        r = read_file(src->path, buf, cap, &len);
    else
        r = src->get(src->ctx, buf, HSM_PIN_MAX, &len);
    if (r == HSM_OK && (len == 0 || len > HSM_PIN_MAX))
        r = hsm__fail(HSM_ERR_PIN_SOURCE, "PIN source gave %zu bytes", len);
    if (r != HSM_OK) {
        OPENSSL_cleanse(buf, cap);
        return r;
    }
    *out_len = len;
    return HSM_OK;
}
