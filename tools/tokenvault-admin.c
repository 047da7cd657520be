/*
 * tokenvault-admin - operator commands on a tokenvault appliance.
 *
 *   tokenvault-admin backup --store DIR --out DIR
 *
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vault/store.h"

#define EXIT_USAGE 2

struct opts {
    const char *store;
    const char *out;
};

static int
cmd_backup(const struct opts *o)
{
    char err[512];
    char data[4096];
    struct stat st;

    if (o->store == NULL || o->out == NULL) {
        fprintf(stderr, "tokenvault-admin: backup needs --store DIR and --out DIR\n");
        return EXIT_USAGE;
    }
    if (store_backup(o->store, o->out, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokenvault-admin: backup: %s\n", err);
        return EXIT_FAILURE;
    }
    snprintf(data, sizeof(data), "%s/data.mdb", o->out);
    if (stat(data, &st) != 0) {
        fprintf(stderr, "tokenvault-admin: backup: %s missing after the copy\n", data);
        return EXIT_FAILURE;
    }
    printf("backup of %s written to %s (%lld bytes, compacted)\n", o->store, data,
           (long long)st.st_size);
    return EXIT_SUCCESS;
}

/* Subcommands: each takes the parsed options. */
static const struct {
    const char *name;
    int (*run)(const struct opts *o);
    const char *help;
} commands[] = {
    {"backup", cmd_backup, "copy a store consistently while the service runs (--store, --out)"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: tokenvault-admin COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\noptions:\n"
               "  --store DIR   the store directory ([store] path of tokenvault.conf)\n"
               "  --out DIR     an existing, empty directory for the copy\n");
}

int
main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"store", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct opts o = {0};
    int c;

    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case 's': o.store = optarg; break;
        case 'o': o.out = optarg; break;
        case 'h': usage(stdout); return EXIT_SUCCESS;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            return commands[i].run(&o);
    fprintf(stderr, "tokenvault-admin: unknown command '%s'\n", argv[optind]);
    usage(stderr);
    return EXIT_USAGE;
}
