/*
 * fuzz_config_load - tokenvaultd's config file (vault/config.c), the one
 * file an operator hands the service. Any bytes either load into a config
 * whose values keep their documented ranges, or are refused with a reason
 * and no config: never a crash, a leak or an out-of-range value. The bytes
 * go through a memory file (memfd), read by the loader as any regular file.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vault/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every string of the config is NUL-terminated within its array. */
#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static void
check(const struct vault_config *c)
{
    if (c->workers < 1 || c->max_in_flight < 1 || c->max_in_flight > VAULT_IN_FLIGHT_MAX ||
        c->max_connections < 1 || c->queue_depth < 1 || c->num_clients > VAULT_CLIENTS_MAX ||
        c->num_merchants > VAULT_MERCHANTS_MAX || !TERMINATED(c->listen_host) ||
        !TERMINATED(c->officer_socket) || !TERMINATED(c->hsm_module) || !TERMINATED(c->hsm_token) ||
        !TERMINATED(c->pin_file) || !TERMINATED(c->store_path) || c->hsm_module[0] == '\0' ||
        c->store_path[0] == '\0')
        abort();
    for (size_t i = 0; i < c->num_clients; i++) {
        const struct vault_client *cl = &c->clients[i];

        if (!TERMINATED(cl->name) || !TERMINATED(cl->subject) || cl->name[0] == '\0' ||
            (cl->subject[0] == '\0' && !cl->has_fingerprint) ||
            (cl->num_merchants > 0 && cl->merchants == NULL))
            abort();
        for (size_t m = 0; m < cl->num_merchants; m++)
            if (!TERMINATED(cl->merchants[m]) || cl->merchants[m][0] == '\0')
                abort();
    }
    for (size_t i = 0; i < c->num_merchants; i++)
        if (!TERMINATED(c->merchants[i].id) || c->merchants[i].id[0] == '\0')
            abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    struct vault_config *c = NULL;
    char err[VAULT_CONFIG_ERR_MAX];

    if (fd < 0) {
        if ((fd = memfd_create("tv-fuzz-config", MFD_CLOEXEC)) < 0)
            abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size > 0 && pwrite(fd, data, size, 0) != (ssize_t)size))
        abort();
    err[0] = '\0';
    if (vault_config_load(&c, path, err, sizeof(err)) == 0) {
        if (c == NULL)
            abort();
        check(c);
        vault_config_free(c);
    } else if (c != NULL || err[0] == '\0') {
        abort(); /* a refusal leaves no config and always says why */
    }
    return 0;
}
