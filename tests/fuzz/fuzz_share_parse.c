/*
 * fuzz_share_parse - what officers hand the vault: a share file, a share set
 * file, a share's wire bytes on the officer socket. Any input parses or is
 * refused with SHARE_ERR_FORMAT; what parses is in range and formats back to
 * a file that parses to the same thing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vault/shares.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_share(const struct share *sh)
{
    char text[SHARE_FILE_MAX];
    struct share back;
    size_t len = 0;

    if (sh->threshold < SHARE_THRESHOLD_MIN || sh->threshold > sh->count ||
        sh->count > SHARE_COUNT_MAX || sh->index < 1 || sh->index > sh->count)
        abort();
    if (share_format(sh, text, sizeof(text), &len) != 0 || share_parse(&back, text, len) != 0 ||
        memcmp(&back, sh, sizeof(back)) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly |size| bytes, so reading past it is caught. */
    char *copy = malloc(size > 0 ? size : 1);
    struct share_set set;
    struct share sh;
    int r;

    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    if ((r = share_parse(&sh, copy, size)) == 0)
        check_share(&sh);
    else if (r != SHARE_ERR_FORMAT)
        abort();
    if ((r = share_decode(&sh, (const uint8_t *)copy, size)) == 0)
        check_share(&sh);
    else if (r != SHARE_ERR_FORMAT)
        abort();
    if ((r = share_set_parse(&set, copy, size)) == 0) {
        char text[SHARE_FILE_MAX];
        size_t len = 0;

        if (set.threshold < SHARE_THRESHOLD_MIN || set.threshold > set.count ||
            set.count > SHARE_COUNT_MAX || share_set_format(&set, text, sizeof(text), &len) != 0)
            abort();
        (void)share_verify(&set, &sh);
    } else if (r != SHARE_ERR_FORMAT) {
        abort();
    }
    free(copy);
    return 0;
}
