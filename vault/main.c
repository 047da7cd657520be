/*
 * tokenvaultd - the token vault service.
 *
 *   tokenvaultd [--config FILE] [--check-config] [--version]
 *
 * Logs go to stderr, one key=value line per event. SIGTERM or SIGINT drain
 * and stop; SIGHUP reloads clients, merchants and the log level.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <uv.h>

#include "vault/log.h"
#include "vault/service.h"

#define DEFAULT_CONFIG "/etc/tokenvault/tokenvault.conf"

/* Card data passes through this process's memory: no core file, no ptrace
 * by other processes of the same user (PR_SET_DUMPABLE 0 also makes
 * /proc/PID/mem unreadable to them). */
static int
harden(void)
{
    struct rlimit none = {0, 0};

    umask(077);
    if (setrlimit(RLIMIT_CORE, &none) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "harden", "reason", "cannot disable core dumps");
        return -1;
    }
    return 0;
}

static void
close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void
usage(FILE *f)
{
    fprintf(f, "usage: tokenvaultd [--config FILE] [--check-config] [--version]\n"
               "  --config FILE    configuration (default %s)\n"
               "  --check-config   load and check the configuration, then exit\n",
            DEFAULT_CONFIG);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = DEFAULT_CONFIG;
    struct vault_service svc;
    bool check_only = false;
    uv_loop_t loop;
    int c, rc = EXIT_FAILURE;

    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'k': check_only = true; break;
        case 'V': puts(VAULT_VERSION_TEXT); return EXIT_SUCCESS;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (check_only) {
        struct vault_config *cfg = NULL;
        char err[VAULT_CONFIG_ERR_MAX];

        if (vault_config_load(&cfg, config, err, sizeof(err)) != 0) {
            fprintf(stderr, "tokenvaultd: %s\n", err);
            return EXIT_FAILURE;
        }
        vault_config_free(cfg);
        printf("tokenvaultd: %s is valid\n", config);
        return EXIT_SUCCESS;
    }
    if (harden() != 0 || uv_loop_init(&loop) != 0)
        return EXIT_FAILURE;
    if (vault_service_open(&svc, &loop, config) == 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        rc = svc.failed ? EXIT_FAILURE : EXIT_SUCCESS;
    } else if (svc.server != NULL) {
        vault_server_close(svc.server);
        svc.server = NULL;
    }
    /* After a failed start some handles may still be open; close them all so
     * the loop can be closed. */
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    vault_service_close(&svc);
    if (uv_loop_close(&loop) != 0)
        vlog_msg(VAULT_LOG_WARN, "loop_close", "reason", "handles still open");
    vlog_msg(VAULT_LOG_INFO, "service_stopped", NULL, NULL);
    return rc;
}
