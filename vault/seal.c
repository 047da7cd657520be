/*
 * seal.c - sealed start: counting officers' shares, rebuilding the PIN once.
 */
#include "vault/seal.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hsm/hsm.h"

int
seal_load(struct vault_seal *s, const char *set_path, char *err, size_t err_len)
{
    char text[SHARE_FILE_MAX + 1];
    FILE *f = NULL;
    size_t n;

    memset(s, 0, sizeof(*s));
    s->state = SEAL_WAITING;
    if ((f = fopen(set_path, "re")) == NULL) {
        snprintf(err, err_len, "[hsm] share_set %s: cannot open", set_path);
        return -1;
    }
    n = fread(text, 1, sizeof(text), f);
    fclose(f);
    if (n > SHARE_FILE_MAX || share_set_parse(&s->set, text, n) != 0) {
        snprintf(err, err_len, "[hsm] share_set %s: not a share set file", set_path);
        return -1;
    }
    if (s->set.kind != SHARE_KIND_PIN) {
        snprintf(err, err_len, "[hsm] share_set %s: a set of a transport key, not of the PIN",
                 set_path);
        return -1;
    }
    return 0;
}

int
seal_submit(struct vault_seal *s, const char *officer, const uint8_t *wire, size_t len)
{
    struct share sh;
    int r;

    if (s->state != SEAL_WAITING)
        return SHARE_ERR_ARG;
    if ((r = share_decode(&sh, wire, len)) != 0 || (r = share_verify(&s->set, &sh)) != 0)
        goto refused;
    for (size_t i = 0; i < s->num; i++)
        if (s->shares[i].index == sh.index) {
            r = SHARE_ERR_DUPLICATE;
            goto refused;
        }
    s->shares[s->num] = sh;
    snprintf(s->officers[s->num], sizeof(s->officers[0]), "%s", officer);
    s->num++;
    share_wipe(&sh);
    return 0;
refused:
    s->rejected++;
    share_wipe(&sh);
    return r;
}

static void
wipe_shares(struct vault_seal *s)
{
    OPENSSL_cleanse(s->shares, sizeof(s->shares));
}

int
seal_combine(struct vault_seal *s)
{
    int r;

    if (s->state != SEAL_WAITING || s->num < s->set.threshold)
        return SHARE_ERR_TOO_FEW;
    r = share_combine(&s->set, s->shares, s->num, s->pin, sizeof(s->pin), &s->pin_len);
    wipe_shares(s);
    if (r != 0) {
        s->num = 0;
        return r;
    }
    s->pin_ready = true;
    s->state = SEAL_OPENING;
    return 0;
}

int
seal_pin_get(void *ctx, uint8_t *buf, size_t cap, size_t *out_len)
{
    struct vault_seal *s = ctx;

    if (!s->pin_ready || s->pin_len > cap)
        return HSM_ERR_PIN_SOURCE;
    memcpy(buf, s->pin, s->pin_len);
    *out_len = s->pin_len;
    /* Given once: hsm_open wipes its copy right after C_Login. */
    OPENSSL_cleanse(s->pin, sizeof(s->pin));
    s->pin_ready = false;
    return HSM_OK;
}

void
seal_reset(struct vault_seal *s)
{
    seal_wipe(s);
    s->num = 0;
    s->state = SEAL_WAITING;
}

void
seal_wipe(struct vault_seal *s)
{
    wipe_shares(s);
    OPENSSL_cleanse(s->pin, sizeof(s->pin));
    s->pin_len = 0;
    s->pin_ready = false;
}
