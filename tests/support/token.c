#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "api/hex.h"
#include "tests/support/token.h"

extern char **environ;

int
tv_write_file(const char *path, const char *data, unsigned mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    size_t n = strlen(data);

    if (fd < 0)
        return -1;
    if (fchmod(fd, mode) != 0 || write(fd, data, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return close(fd);
}

static int
run(char *const argv[])
{
    pid_t pid;
    int status = 0, devnull;
    posix_spawn_file_actions_t fa;

    posix_spawn_file_actions_init(&fa);
    devnull = open("/dev/null", O_WRONLY);
    posix_spawn_file_actions_adddup2(&fa, devnull, 1);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(devnull);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    close(devnull);
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* SoftHSM2: a token directory and a config, the token made by softhsm2-util. */
static int
setup_softhsm(tv_token *t)
{
    char tokens[320], conf_text[400];
    char *argv[] = { "softhsm2-util", "--init-token", "--free", "--label", TV_TEST_LABEL,
                     "--so-pin", TV_TEST_SO_PIN, "--pin", TV_TEST_USER_PIN, NULL };

    t->module = TV_SOFTHSM_MODULE;
    t->label = TV_TEST_LABEL;
    snprintf(tokens, sizeof(tokens), "%s/tokens", t->dir);
    snprintf(t->conf, sizeof(t->conf), "%s/softhsm2.conf", t->dir);
    snprintf(conf_text, sizeof(conf_text),
             "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
    if (mkdir(tokens, 0700) != 0 || tv_write_file(t->conf, conf_text, 0600) != 0) {
        fprintf(stderr, "fixture files: %s\n", strerror(errno));
        return -1;
    }
    setenv("SOFTHSM2_CONF", t->conf, 1);
    if (run(argv) != 0) {
        fprintf(stderr, "softhsm2-util --init-token failed\n");
        return -1;
    }
    return 0;
}

/* NSS softokn: a key database made by certutil with the user PIN as its
 * password; the module finds it through its init string. */
static int
setup_nss(tv_token *t)
{
    char db[320], pw[320], sqldb[330];
    char *argv[] = { "certutil", "-N", "-d", sqldb, "-f", pw, NULL };

    t->module = TV_NSS_MODULE;
    t->label = TV_TEST_NSS_LABEL;
    snprintf(db, sizeof(db), "%s/nssdb", t->dir);
    snprintf(pw, sizeof(pw), "%s/nss-password", t->dir);
    snprintf(sqldb, sizeof(sqldb), "sql:%s", db);
    snprintf(t->init_args, sizeof(t->init_args),
             "configdir='%s' certPrefix='' keyPrefix='' secmod='' flags=noModDB", sqldb);
    if (mkdir(db, 0700) != 0 || tv_write_file(pw, TV_TEST_USER_PIN "\n", 0600) != 0) {
        fprintf(stderr, "fixture files: %s\n", strerror(errno));
        return -1;
    }
    if (run(argv) != 0) {
        fprintf(stderr, "certutil -N failed\n");
        return -1;
    }
    return 0;
}

int
tv_token_setup(tv_token *t)
{
    const char *module = getenv("TV_TEST_MODULE");

    memset(t, 0, sizeof(*t));
    t->nss = module != NULL && strcmp(module, "nss") == 0;
    snprintf(t->dir, sizeof(t->dir), "%s/tv-test-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(t->dir) == NULL) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(t->pin_file, sizeof(t->pin_file), "%s/pin", t->dir);
    if (tv_write_file(t->pin_file, TV_TEST_USER_PIN "\n", 0600) != 0) {
        fprintf(stderr, "fixture files: %s\n", strerror(errno));
        return -1;
    }
    return t->nss ? setup_nss(t) : setup_softhsm(t);
}

void
tv_token_config(const tv_token *t, hsm_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->module_path = t->module;
    cfg->token_label = t->label;
    cfg->init_args = t->init_args[0] != '\0' ? t->init_args : NULL;
    /* NSS softokn's database cannot store CKA_COPYABLE or
     * CKA_ALLOWED_MECHANISMS on token objects (CKR_GENERAL_ERROR). */
    cfg->reduced_key_attributes = t->nss;
    cfg->backoff_initial_ms = 20;
    cfg->backoff_max_ms = 200;
}

int
tv_token_open(tv_token *t)
{
    hsm_config cfg;
    int r;

    tv_token_config(t, &cfg);
    if (t->pin == NULL && (r = hsm_pin_source_file(&t->pin, t->pin_file)) != HSM_OK)
        return r;
    return hsm_open(&t->h, &cfg, t->pin);
}

int
tv_token_open_spied(tv_token *t)
{
    hsm_config cfg;
    int r;

    tv_token_config(t, &cfg);
    cfg.module_path = TV_P11_FAULT_MODULE;
    if (setenv("TV_P11_FAULT_TARGET", t->module, 1) != 0 || unsetenv("TV_P11_FAULT_CONTROL") != 0)
        return HSM_ERR_INVALID_ARG;
    if (t->pin == NULL && (r = hsm_pin_source_file(&t->pin, t->pin_file)) != HSM_OK)
        return r;
    return hsm_open(&t->h, &cfg, t->pin);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
tv_token_teardown(tv_token *t)
{
    hsm_close(t->h);
    t->h = NULL;
    hsm_pin_source_free(t->pin);
    t->pin = NULL;
    if (t->dir[0] != '\0')
        nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
session_setup(tv_token *t, hsm_session **s, bool spied)
{
    int r;

    if (tv_token_setup(t) != 0)
        return -1;
    r = spied ? tv_token_open_spied(t) : tv_token_open(t);
    if (r == HSM_OK)
        r = hsm_session_acquire(t->h, s);
    if (r != HSM_OK) {
        fprintf(stderr, "fixture: %s (%s)\n", hsm_strerror(r), hsm_last_detail());
        return -1;
    }
    return 0;
}

int
tv_token_session_setup(tv_token *t, hsm_session **s)
{
    return session_setup(t, s, false);
}

int
tv_token_session_setup_spied(tv_token *t, hsm_session **s)
{
    return session_setup(t, s, true);
}

void
tv_token_session_teardown(tv_token *t, hsm_session **s)
{
    if (*s != NULL)
        hsm_session_release(*s);
    *s = NULL;
    tv_token_teardown(t);
}

char *
tv_vector_read(const char *rel, size_t *out_len)
{
    char path[512];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/%s", TV_VECTORS_DIR, rel);
    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "vector %s: %s\n", path, strerror(errno));
        abort();
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    buf[n] = '\0';
    if (out_len != NULL)
        *out_len = (size_t)n;
    return buf;
}

unsigned char *
tv_b64(const char *b64, size_t *out_len)
{
    size_t len = strlen(b64), pad = 0;
    unsigned char *out = malloc(len / 4 * 3 + 3);
    int n;

    while (len > 0 && (b64[len - 1] == '\n' || b64[len - 1] == '\r'))
        len--;
    if (len >= 1 && b64[len - 1] == '=')
        pad++;
    if (len >= 2 && b64[len - 2] == '=')
        pad++;
    if (out == NULL || len % 4 != 0 ||
        (n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len)) < 0)
        abort();
    *out_len = (size_t)n - pad;
    return out;
}

unsigned char *
tv_vector_b64(const char *rel, size_t *out_len)
{
    char *text = tv_vector_read(rel, NULL);
    unsigned char *der = text != NULL ? tv_b64(text, out_len) : NULL;

    free(text);
    return der;
}

unsigned char *
tv_hex(const char *hex, size_t *out_len)
{
    size_t len = strlen(hex);
    unsigned char *out = malloc(len / 2 + 1);

    if (out == NULL || len % 2 != 0 || hex_decode(out, len / 2, hex) != 0)
        abort();
    *out_len = len / 2;
    return out;
}

uint64_t
tv_random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}
