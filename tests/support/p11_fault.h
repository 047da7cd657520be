/*
 * p11_fault.h - FAULT INJECTION for tests only: libtv_p11_fault.so, a
 * PKCS#11 module that wraps a real one (SoftHSM in the tests) and makes
 * chosen calls fail or slow down, and the helpers a test uses to drive it.
 * Never installed; the product never loads it.
 *
 * The module (tests/support/p11_fault.c) is loaded by path like any PKCS#11
 * module (hsm_config.module_path = TV_P11_FAULT_MODULE). Its environment:
 *
 *   TV_P11_FAULT_TARGET   the real module to forward to (required: without
 *                         it, or if it cannot be loaded, C_GetFunctionList
 *                         returns CKR_GENERAL_ERROR).
 *   TV_P11_FAULT_CONTROL  the control file (optional: unset, every call is
 *                         forwarded). Both are read when C_GetFunctionList
 *                         is called, that is at hsm_open.
 *   TV_P11_FAULT_STATS    a file to which C_Finalize appends, for
 *                         debugging, "# tv_p11_fault pid=P unparsable_lines=U"
 *                         and then one line "FUNCTION calls failed" per
 *                         wrapped function, counted since the module was
 *                         loaded or last finalized, then starts the counts
 *                         over (optional: unset, nothing is written
 *                         anywhere; read at each C_Finalize).
 *
 * It also counts, without changing anything, the key values that cross the
 * module's boundary, so a test can prove a path keeps them inside (see
 * tv_p11_fault_spy_read): C_CreateObject of a CKO_SECRET_KEY with CKA_VALUE
 * (a key that was in host memory), C_GetAttributeValue that returned a
 * secret key's CKA_VALUE; with the calls of C_DigestKey (whose output is a
 * function of a key) and C_DeriveKey.
 *
 * The functions wrapped are those hsm/ calls ("p11->C_" in the hsm sources);
 * every other entry of the function list is the real module's, untouched.
 *
 * Control file. It is stat()ed on every wrapped call and re-read when its
 * (st_dev, st_ino, st_size, st_mtim) changes; a missing file means no rules.
 * A re-read starts every rule's counters from zero. Grammar, one rule a line:
 *
 *   line     = [blanks] [rule | "#" anything] [blanks] ["\r"] "\n"
 *   rule     = function blanks result *(blanks option)
 *   function = "C_" name of a wrapped function | "*"
 *   result   = "CKR_" name from the module's table (p11_fault.c: every code
 *              the hsm layer maps, CKR_OK included) | "0x" 1*8 hex digits
 *   option   = "skip" blanks number | "count" blanks number
 *            | "delay_ms" blanks number      (each option at most once)
 *   number   = 1*10 decimal digits; skip and count <= 1000000000,
 *              delay_ms <= 10000
 *   blanks   = 1*(" " | "\t")
 *
 * "*" matches every wrapped function except C_Finalize, so that a module can
 * always be finalized (an explicit "C_Finalize ..." rule still applies).
 * Rules are tried in file order; the first one that matches the function and
 * is not spent decides:
 *   - its first |skip| matching calls are forwarded untouched (default 0);
 *   - the next |count| calls (default: all of them) fire: they sleep
 *     |delay_ms| (default 0) and then return |result| without reaching the
 *     real module, or, for CKR_OK, are forwarded ("slow but working");
 *   - after that the rule is spent and later rules may match.
 * An injected failure of C_Encrypt, C_Decrypt, C_Sign, C_Verify,
 * C_DigestUpdate, C_DigestKey or C_DigestFinal also ends the operation in the
 * real module (by finishing it into a scratch buffer that is wiped), as the
 * specification says a failed call does; otherwise the session would answer
 * CKR_OPERATION_ACTIVE to its next *Init, which no real token would.
 *
 * Hostile or broken files never crash it: a line that is not a rule, a
 * comment or blank (unknown names, bad or out-of-range numbers, duplicate or
 * unknown options, trailing words, bytes outside printable ASCII, lines over
 * 256 bytes, rules past the 32nd) is ignored and counted (unparsable_lines);
 * a file over 16 KiB is ignored whole and counts as one.
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_P11_FAULT_H
#define TOKENVAULT_TESTS_SUPPORT_P11_FAULT_H

#include <stddef.h>

/* tv_p11_fault_env points the module at SoftHSM (TV_P11_FAULT_TARGET =
 * TV_SOFTHSM_MODULE) and at |control_path| (TV_P11_FAULT_CONTROL), with
 * setenv, so children started with fork/exec (the daemon) inherit both; it
 * removes any control file left at |control_path|. Call it before hsm_open
 * with TV_P11_FAULT_MODULE. Not thread-safe (setenv). Returns 0, or -1 with
 * errno set. */
int tv_p11_fault_env(const char *control_path);

/* tv_p11_fault_set replaces the rules at |control_path| with |rules| (the
 * grammar above); NULL or "" writes an empty file (no rules). The file is
 * written beside it under a temporary name and renamed over it, with a new
 * inode and a modification time later than any this process wrote before, so
 * the module sees every version on its next call even when two are written
 * within the file system's timestamp granularity. Returns 0, or -1 (the old
 * rules stay). */
int tv_p11_fault_set(const char *control_path, const char *rules);

/* tv_p11_fault_set_bytes: the same with |len| raw bytes (NUL and any other
 * byte allowed), for tests that feed the module garbage. */
int tv_p11_fault_set_bytes(const char *control_path, const void *data, size_t len);

/* The spy counters, since the module was loaded or last finalized. */
struct tv_p11_fault_spy {
    unsigned long digest_key_calls;
    unsigned long derive_key_calls;
    unsigned long secret_values_in;   /* secret keys created from host bytes */
    unsigned long secret_values_out;  /* secret key values read by the host */
};

/* Exported by the module itself (libtv_p11_fault.so), for a test in the
 * process that loaded it: tv_p11_fault_spy (p11_fault_ctl.c) finds it. */
void tv_p11_fault_spy_read(struct tv_p11_fault_spy *out);

/* tv_p11_fault_spy reads the counters of the module this process loaded
 * (hsm_open with TV_P11_FAULT_MODULE). Returns 0, or -1 if it is not loaded. */
int tv_p11_fault_spy(struct tv_p11_fault_spy *out);

#endif
