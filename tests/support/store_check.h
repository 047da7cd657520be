/*
 * store_check.h - the offline consistency check (vault/fsck.h) of a test's
 * store directory, opened read-only beside a running daemon or after it.
 * For the tests that prove nothing was lost or half-written: crash, HSM
 * faults, fsck itself.
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_STORE_CHECK_H
#define TOKENVAULT_TESTS_SUPPORT_STORE_CHECK_H

#include "vault/fsck.h"

/* tv_store_check runs vault_fsck on the store at |dir| (|fn| and |ctx| as
 * vault_fsck's; |fn| may be NULL) and fills *out. The open, the read and the
 * walk must succeed (the cmocka test fails otherwise); the problems found
 * are the caller's to judge. */
void tv_store_check(const char *dir, fsck_problem_fn fn, void *ctx, struct fsck_counts *out);

/* tv_store_consistent: the same, failing the test when any problem is found.
 * Returns the counts. */
struct fsck_counts tv_store_consistent(const char *dir);

#endif
