/*
 * tokenvault-admin - operator commands on a tokenvault appliance.
 *
 *   tokenvault-admin backup --store DIR --out DIR
 *   tokenvault-admin check --store DIR
 *
 * Every command is a row of the commands[] table: its name, the options it
 * needs and accepts, and its function. Options are parsed once for all of
 * them, and one a command does not take is a usage error, never ignored.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vault/fsck.h"
#include "vault/store.h"

/* Exit codes: 3 is a store that was read and found inconsistent. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_INCONSISTENT = 3 };

/* Room for store_backup's one-line reason: two paths and an LMDB message. */
#define ERR_MAX 8192u

/* Options, as bits for the commands table. */
enum {
    OPT_STORE = 1u << 0,
    OPT_OUT = 1u << 1,
};

struct opts {
    unsigned given; /* OPT_* bits seen */
    const char *store;
    const char *out;
};

static int
cmd_backup(const struct opts *o)
{
    char err[ERR_MAX], data[ERR_MAX];
    struct stat st;

    if (store_backup(o->store, o->out, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokenvault-admin: backup: %s\n", err);
        return EXIT_FAIL;
    }
    snprintf(data, sizeof(data), "%s/data.mdb", o->out);
    if (stat(data, &st) != 0) {
        fprintf(stderr, "tokenvault-admin: backup: %s missing after the copy\n", data);
        return EXIT_FAIL;
    }
    printf("backup of %s written to %s (%lld bytes, compacted, mode 0600)\n", o->store, data,
           (long long)st.st_size);
    return EXIT_OK;
}

static void
print_problem(void *ctx, const char *db, const char *what)
{
    (void)ctx;
    printf("PROBLEM %s: %s\n", db, what);
}

/* Read-only and without the HSM: safe beside a running service (an LMDB
 * read transaction sees one committed state) and on a copy. */
static int
cmd_check(const struct opts *o)
{
    char err[ERR_MAX];
    struct vault_store *st = NULL;
    struct store_txn t;
    struct fsck_counts n;
    int r;

    if (store_open_readonly(&st, o->store, err, sizeof(err)) != 0) {
        fprintf(stderr, "tokenvault-admin: check: %s\n", err);
        return EXIT_FAIL;
    }
    if ((r = store_read_begin(st, &t)) == 0) {
        r = vault_fsck(&t, print_problem, NULL, &n);
        store_read_end(&t);
    }
    store_close(st);
    if (r != 0) {
        fprintf(stderr, "tokenvault-admin: check: %s: cannot be read (%s)\n", o->store,
                api_status_name((unsigned)-r));
        return EXIT_FAIL;
    }
    printf("checked %s: %llu cards, %llu device PANs, %llu fingerprints, %llu customer entries,\n"
           "%llu links, %llu mappings, %llu mandates, %llu sessions, %llu QR requests,\n"
           "%llu audit entries chained%s\n",
           o->store, (unsigned long long)n.cards, (unsigned long long)n.dpans,
           (unsigned long long)n.fingerprints, (unsigned long long)n.customers,
           (unsigned long long)n.links, (unsigned long long)n.mappings,
           (unsigned long long)n.mandates, (unsigned long long)n.sessions,
           (unsigned long long)n.qr, (unsigned long long)n.audit_entries,
           n.fpk_rebuilding ? " (fingerprint index being rebuilt: records' own fingerprints not checked)" : "");
    if (n.problems > 0) {
        printf("%llu problem(s) found\n", (unsigned long long)n.problems);
        return EXIT_INCONSISTENT;
    }
    printf("consistent\n");
    return EXIT_OK;
}

static const struct command {
    const char *name;
    unsigned needs;   /* OPT_* bits that must be given */
    unsigned accepts; /* OPT_* bits that may be given (needs included) */
    int (*run)(const struct opts *o);
    const char *help;
} commands[] = {
    {"backup", OPT_STORE | OPT_OUT, OPT_STORE | OPT_OUT, cmd_backup,
     "copy a store consistently, also while the service runs (--store, --out)"},
    {"check", OPT_STORE, OPT_STORE, cmd_check,
     "check a store's indexes, records and audit chain, without the HSM (--store)"},
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: tokenvault-admin COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\noptions:\n"
               "  --store DIR   the store directory ([store] path of tokenvault.conf)\n"
               "  --out DIR     an existing, empty directory for the copy\n"
               "  --help        this text\n"
               "\nexit codes: 0 ok, 1 failure, 2 usage, 3 check found problems\n");
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
    const struct command *cmd = NULL;
    struct opts o = {0};
    int c;

    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.store = optarg;
            o.given |= OPT_STORE;
            break;
        case 'o':
            o.out = optarg;
            o.given |= OPT_OUT;
            break;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[optind], commands[i].name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        fprintf(stderr, "tokenvault-admin: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((o.given & cmd->needs) != cmd->needs || (o.given & ~cmd->accepts) != 0) {
        fprintf(stderr, "tokenvault-admin: %s: %s\n", cmd->name, cmd->help);
        return EXIT_USAGE;
    }
    return cmd->run(&o);
}
