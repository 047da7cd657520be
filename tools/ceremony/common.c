/*
 * common.c - error reporting, key printing and file rules shared by every
 * ceremony.
 */
#include "tools/ceremony/ceremony.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "vault/keybackup.h"

int
ceremony_exit_for(int err)
{
    switch (err) {
    case HSM_OK: return EXIT_OK;
    case HSM_ERR_INVALID_ARG: return EXIT_USAGE;
    case HSM_ERR_KEY_NOT_FOUND: return EXIT_NOT_FOUND;
    default: return EXIT_HSM;
    }
}

int
ceremony_report(const char *what, int err)
{
    fprintf(stderr, "tokenvault-ceremony: %s: %s (%s)\n", what, hsm_strerror(err),
            hsm_last_detail());
    return ceremony_exit_for(err);
}

void
ceremony_err(const char *fmt, ...)
{
    va_list ap;

    fputs("tokenvault-ceremony: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void
ceremony_print_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02X", b[i]);
}

/* "!name" for false; attributes the object type does not have are left out. */
static void
print_flag(const char *name, int v)
{
    if (v >= 0)
        printf(" %s%s", v ? "" : "!", name);
}

/* The usages each kind must have, in the order encrypt, decrypt, sign,
 * verify, wrap, unwrap, derive (-1: not applicable to the object). */
static const struct {
    hsm_key_kind kind;
    int use[7];
} expected[] = {
    {HSM_KIND_KEK, {0, 0, 0, 0, 1, 1, 0}},
    {HSM_KIND_HMAC, {0, 0, 1, 1, 0, 0, 0}},
    {HSM_KIND_EC_SIGN, {-1, -1, 1, -1, -1, 0, 0}},
    {HSM_KIND_EC_DERIVE, {-1, -1, 0, -1, -1, 0, 1}},
    {HSM_KIND_EC_DERIVE_SIGN, {-1, -1, 1, -1, -1, 0, 1}},
    {HSM_KIND_RSA_UNWRAP, {-1, 0, 0, -1, -1, 1, 0}},
    {HSM_KIND_RSA_UNWRAP_SIGN, {-1, 0, 1, -1, -1, 1, 0}},
    {HSM_KIND_RSA_DECRYPT, {-1, 1, 0, -1, -1, 1, 0}},
};

/* The kinds wallet-import makes. */
static bool
wallet_importable(hsm_key_kind k)
{
    return k == HSM_KIND_EC_DERIVE || k == HSM_KIND_RSA_UNWRAP || k == HSM_KIND_RSA_DECRYPT;
}

/* Prints a line for each attribute an officer must not accept; returns how
 * many. A DEK is a session object and is not judged here. |restored|: the
 * caller matched the key to the backup the token was restored from. */
static int
key_unsafe(const hsm_key_info *i, bool restored, bool print)
{
    const int have[7] = {i->encrypt, i->decrypt, i->sign, i->verify, i->wrap, i->unwrap, i->derive};
    static const char *const names[7] = {"encrypt", "decrypt", "sign", "verify",
                                         "wrap", "unwrap", "derive"};
    int n = 0;

    if (i->kind == HSM_KIND_DEK)
        return 0;
    if (i->sensitive != 1 && ++n && print)
        printf("    UNSAFE:    not sensitive: its value can be read out of the HSM\n");
    if (i->extractable == 1 && i->wrap_with_trusted != 1 && ++n && print)
        printf("    UNSAFE:    extractable under any key, not only an SO-made trusted one\n");
    /* A wallet key a merchant brought from another processor (wallet-import)
     * was in clear before the HSM by nature; the import ceremony records it.
     * A key restored from a backup was unwrapped, and PKCS#11 marks no
     * unwrapped key "always sensitive"; the caller matched it to the backup.
     * Any other key that was ever readable is unsafe. */
    if (i->always_sensitive != 1 && i->local == 0 && restored) {
        if (print)
            printf("    restored:  unwrapped from the key backup given with --in (label and\n"
                   "               check value match it), so never 'always sensitive'\n");
    } else if (i->always_sensitive != 1 && i->local == 0 && wallet_importable(i->kind)) {
        if (print)
            printf("    imported:  made outside the HSM and imported (wallet-import), so never\n"
                   "               'always sensitive'; check its import transcript\n");
    } else if (i->always_sensitive != 1 && ++n && print)
        printf("    UNSAFE:    not always sensitive: its value was readable once\n");
    if (i->copyable == 1 && ++n && print)
        printf("    UNSAFE:    copyable: a copy could get other attributes\n");
    if (i->modifiable == 1 && ++n && print)
        printf("    UNSAFE:    modifiable: a PIN holder can change its usages\n");
    for (size_t k = 0; k < sizeof(expected) / sizeof(expected[0]); k++) {
        if (expected[k].kind != i->kind)
            continue;
        for (size_t u = 0; u < 7; u++)
            if (expected[k].use[u] >= 0 && have[u] >= 0 && have[u] != expected[k].use[u] && ++n &&
                print)
                printf("    UNSAFE:    %s %s, which a %s key must %s\n", have[u] ? "can" : "cannot",
                       names[u], hsm_key_kind_name(i->kind), have[u] ? "not" : "do");
    }
    return n;
}

int
ceremony_key_unsafe(const hsm_key_info *i, bool print)
{
    return key_unsafe(i, false, print);
}

int
ceremony_key_kcv(hsm_session *s, hsm_key *key, const hsm_key_info *info, uint8_t out[HSM_KCV_LEN])
{
    if (info->kind == HSM_KIND_KEK || info->kind == HSM_KIND_HMAC)
        return hsm_key_digest_kcv(s, key, out);
    memcpy(out, info->kcv, HSM_KCV_LEN);
    return HSM_OK;
}

/* Whether |key| is one |from| holds: same label, same check value. */
static int
in_backup(hsm_session *s, hsm_key *key, const hsm_key_info *info, const struct keybackup *from,
          bool *out)
{
    uint8_t kcv[HSM_KCV_LEN];
    int r;

    *out = false;
    if (from == NULL || info->local != 0)
        return HSM_OK;
    for (size_t k = 0; k < from->num; k++) {
        if (strcmp(from->keys[k].label, info->label) != 0)
            continue;
        if ((r = ceremony_key_kcv(s, key, info, kcv)) != HSM_OK)
            return r;
        *out = from->keys[k].kind == info->kind &&
               CRYPTO_memcmp(kcv, from->keys[k].kcv, HSM_KCV_LEN) == 0;
        return HSM_OK;
    }
    return HSM_OK;
}

int
ceremony_print_key(hsm_session *s, hsm_key *key, const char *role)
{
    return ceremony_print_key_from(s, key, role, NULL);
}

int
ceremony_print_key_from(hsm_session *s, hsm_key *key, const char *role,
                        const struct keybackup *from)
{
    hsm_key_info i;
    bool restored = false;
    int r = hsm_key_info_get(s, key, &i);

    if (r == HSM_OK)
        r = in_backup(s, key, &i, from, &restored);
    if (r != HSM_OK)
        return ceremony_report(hsm_key_label(key), r);
    printf("%-22s %-15s %-18s KCV ", i.label, hsm_key_kind_name(i.kind), i.type);
    ceremony_print_hex(i.kcv, sizeof(i.kcv));
    printf("  (%s)\n", i.kcv_method);
    if (role != NULL)
        printf("    role:      %s\n", role);
    printf("    storage:  ");
    print_flag("token", i.token);
    print_flag("private", i.private_);
    print_flag("sensitive", i.sensitive);
    print_flag("extractable", i.extractable);
    print_flag("always-sensitive", i.always_sensitive);
    print_flag("never-extractable", i.never_extractable);
    print_flag("wrap-with-trusted", i.wrap_with_trusted);
    print_flag("modifiable", i.modifiable);
    print_flag("copyable", i.copyable);
    printf("\n    usage:    ");
    print_flag("encrypt", i.encrypt);
    print_flag("decrypt", i.decrypt);
    print_flag("sign", i.sign);
    print_flag("verify", i.verify);
    print_flag("wrap", i.wrap);
    print_flag("unwrap", i.unwrap);
    print_flag("derive", i.derive);
    printf("\n");
    return key_unsafe(&i, restored, true) == 0 ? EXIT_OK : EXIT_UNSAFE;
}

int
ceremony_write_new(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        ceremony_err("%s: %s", path, strerror(errno));
        return EXIT_FAIL;
    }
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        ceremony_err("%s: write failed", path);
        close(fd);
        (void)unlink(path);
        return EXIT_FAIL;
    }
    close(fd);
    return EXIT_OK;
}

int
ceremony_read_small(const char *path, char *buf, size_t cap, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t n = 0;
    ssize_t got;

    if (fd < 0) {
        ceremony_err("%s: %s", path, strerror(errno));
        return EXIT_FAIL;
    }
    while (n < cap && (got = read(fd, buf + n, cap - n)) > 0)
        n += (size_t)got;
    /* One more byte tells a file that fills the buffer from a larger one. */
    if (n == cap && read(fd, &(char){0}, 1) > 0) {
        close(fd);
        ceremony_err("%s: larger than %zu bytes", path, cap);
        return EXIT_FAIL;
    }
    close(fd);
    *out_len = n;
    return EXIT_OK;
}

int
ceremony_read_backup(const char *path, uint8_t **out, size_t *out_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf = NULL;

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > KEYBACKUP_FILE_MAX || (buf = malloc((size_t)st.st_size)) == NULL ||
        read(fd, buf, (size_t)st.st_size) != st.st_size) {
        ceremony_err("%s: not a readable key backup file", path);
        if (fd >= 0)
            close(fd);
        free(buf);
        return EXIT_FAIL;
    }
    close(fd);
    *out = buf;
    *out_len = (size_t)st.st_size;
    return EXIT_OK;
}
