/*
 * store_check.c - a test's store checked with vault/fsck.h (store_check.h).
 */
#include "tests/support/store_check.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vault/store.h"

void
tv_store_check(const char *dir, fsck_problem_fn fn, void *ctx, struct fsck_counts *out)
{
    char err[512];
    struct vault_store *st = NULL;
    struct store_txn t;

    if (store_open_readonly(&st, dir, err, sizeof(err)) != 0)
        fail_msg("%s: %s", dir, err);
    assert_int_equal(store_read_begin(st, &t), 0);
    assert_int_equal(vault_fsck(&t, fn, ctx, out), 0);
    store_read_end(&t);
    store_close(st);
}

struct fsck_counts
tv_store_consistent(const char *dir)
{
    struct fsck_counts n;

    tv_store_check(dir, NULL, NULL, &n);
    if (n.problems != 0)
        fail_msg("%llu inconsistencies in the store (tokenvault-admin check --store %s)",
                 (unsigned long long)n.problems, dir);
    return n;
}
