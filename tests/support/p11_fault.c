/*
 * p11_fault.c - FAULT INJECTION, for tests only: libtv_p11_fault.so, a
 * PKCS#11 module that forwards to a real one (TV_P11_FAULT_TARGET) and fails
 * or slows down the calls a control file names. Fakes are allowed in this
 * project only to inject faults into a real component, and must say so in
 * their names: this one never answers for a token, it only lets SoftHSM's
 * answers through or replaces them with an error. Never installed, never
 * loaded by the product. Contract and control-file grammar: p11_fault.h.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "tests/support/p11_fault.h"

/* A handful of rules is what a test needs; the table is fixed-size so a
 * hostile file cannot make the module allocate. */
#define FAULT_RULES_MAX 32
/* Longest line, newline excluded: a rule is a few short words. */
#define FAULT_LINE_MAX 256
/* Largest control file read; a bigger one is ignored whole. */
#define FAULT_FILE_MAX (16 * 1024)
/* skip and count: far beyond any test, small enough that skip + count and the
 * per-rule call counter cannot overflow an unsigned long. */
#define FAULT_NUMBER_MAX 1000000000UL
#define FAULT_NUMBER_DIGITS 10
/* delay_ms: a test that needs a slower token than 10 s is a test that hangs. */
#define FAULT_DELAY_MAX_MS 10000UL
/* "0x" and at most 8 hex digits: CK_RV values are 32-bit in the standard. */
#define FAULT_HEX_DIGITS 8
/* Paths from the environment are copied; a longer one is refused. */
#define FAULT_PATH_MAX 4096
/* Largest output an injected failure finishes into to end the real
 * operation (RSA-4096 signatures and GCM records are far smaller). */
#define FAULT_SCRATCH_MAX 65536
/* Digest output for ending a digest operation: SHA-512, the longest. */
#define FAULT_DIGEST_SCRATCH 64

/* Every function hsm/ calls except C_Finalize (written out below), as
 * X(name, parameters, arguments, how an injected failure ends the real
 * operation). */
#define NO_END (void)0
#define FAULT_FUNCS(X)                                                                         \
    X(C_Initialize, (CK_VOID_PTR pInitArgs), (pInitArgs), NO_END)                              \
    X(C_GetInfo, (CK_INFO_PTR pInfo), (pInfo), NO_END)                                         \
    X(C_GetSlotList, (CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount), \
      (tokenPresent, pSlotList, pulCount), NO_END)                                             \
    X(C_GetTokenInfo, (CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo), (slotID, pInfo), NO_END)   \
    X(C_GetMechanismList,                                                                      \
      (CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount),        \
      (slotID, pMechanismList, pulCount), NO_END)                                              \
    X(C_GetMechanismInfo, (CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo), \
      (slotID, type, pInfo), NO_END)                                                           \
    X(C_SetPIN,                                                                                \
      (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,                 \
       CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen),                                            \
      (hSession, pOldPin, ulOldLen, pNewPin, ulNewLen), NO_END)                                \
    X(C_OpenSession,                                                                           \
      (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,          \
       CK_SESSION_HANDLE_PTR phSession),                                                       \
      (slotID, flags, pApplication, Notify, phSession), NO_END)                                \
    X(C_CloseSession, (CK_SESSION_HANDLE hSession), (hSession), NO_END)                        \
    X(C_CloseAllSessions, (CK_SLOT_ID slotID), (slotID), NO_END)                               \
    X(C_Login,                                                                                 \
      (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen), \
      (hSession, userType, pPin, ulPinLen), NO_END)                                            \
    X(C_Logout, (CK_SESSION_HANDLE hSession), (hSession), NO_END)                              \
    X(C_CreateObject,                                                                          \
      (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,               \
       CK_OBJECT_HANDLE_PTR phObject),                                                         \
      (hSession, pTemplate, ulCount, phObject), NO_END)                                        \
    X(C_DestroyObject, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject), (hSession, hObject), \
      NO_END)                                                                                  \
    X(C_GetAttributeValue,                                                                     \
      (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,       \
       CK_ULONG ulCount),                                                                      \
      (hSession, hObject, pTemplate, ulCount), NO_END)                                         \
    X(C_FindObjectsInit, (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount), \
      (hSession, pTemplate, ulCount), NO_END)                                                  \
    X(C_FindObjects,                                                                           \
      (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,   \
       CK_ULONG_PTR pulObjectCount),                                                           \
      (hSession, phObject, ulMaxObjectCount, pulObjectCount), NO_END)                          \
    X(C_FindObjectsFinal, (CK_SESSION_HANDLE hSession), (hSession), NO_END)                    \
    X(C_EncryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), NO_END)                                                    \
    X(C_Encrypt,                                                                               \
      (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pOut,    \
       CK_ULONG_PTR pulOutLen),                                                                \
      (hSession, pData, ulDataLen, pOut, pulOutLen),                                           \
      end_single(real->C_Encrypt, hSession, pData, ulDataLen))                                 \
    X(C_DecryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), NO_END)                                                    \
    X(C_Decrypt,                                                                               \
      (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pOut,    \
       CK_ULONG_PTR pulOutLen),                                                                \
      (hSession, pData, ulDataLen, pOut, pulOutLen),                                           \
      end_single(real->C_Decrypt, hSession, pData, ulDataLen))                                 \
    X(C_DigestInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism),                 \
      (hSession, pMechanism), NO_END)                                                          \
    X(C_DigestUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),     \
      (hSession, pPart, ulPartLen), end_digest(hSession))                                      \
    X(C_DigestKey, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey), (hSession, hKey),      \
      end_digest(hSession))                                                                    \
    X(C_DigestFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen), \
      (hSession, pDigest, pulDigestLen), end_digest(hSession))                                 \
    X(C_SignInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), NO_END)                                                    \
    X(C_Sign,                                                                                  \
      (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pOut,    \
       CK_ULONG_PTR pulOutLen),                                                                \
      (hSession, pData, ulDataLen, pOut, pulOutLen),                                           \
      end_single(real->C_Sign, hSession, pData, ulDataLen))                                    \
    X(C_VerifyInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), NO_END)                                                    \
    X(C_Verify,                                                                                \
      (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, \
       CK_ULONG ulSignatureLen),                                                               \
      (hSession, pData, ulDataLen, pSignature, ulSignatureLen),                                \
      (void)real->C_Verify(hSession, pData, ulDataLen, pSignature, ulSignatureLen))            \
    X(C_GenerateKey,                                                                           \
      (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,    \
       CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),                                          \
      (hSession, pMechanism, pTemplate, ulCount, phKey), NO_END)                               \
    X(C_GenerateKeyPair,                                                                       \
      (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPubTemplate, \
       CK_ULONG ulPubCount, CK_ATTRIBUTE_PTR pPrivTemplate, CK_ULONG ulPrivCount,              \
       CK_OBJECT_HANDLE_PTR phPubKey, CK_OBJECT_HANDLE_PTR phPrivKey),                         \
      (hSession, pMechanism, pPubTemplate, ulPubCount, pPrivTemplate, ulPrivCount, phPubKey,   \
       phPrivKey),                                                                             \
      NO_END)                                                                                  \
    X(C_WrapKey,                                                                               \
      (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, \
       CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen),         \
      (hSession, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen), NO_END)       \
    X(C_UnwrapKey,                                                                             \
      (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, \
       CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,          \
       CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),                                          \
      (hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulCount, \
       phKey),                                                                                 \
      NO_END)                                                                                  \
    X(C_DeriveKey,                                                                             \
      (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,     \
       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),              \
      (hSession, pMechanism, hBaseKey, pTemplate, ulCount, phKey), NO_END)                     \
    X(C_GenerateRandom, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandom, CK_ULONG ulRandomLen), \
      (hSession, pRandom, ulRandomLen), NO_END)

/* Function numbers: C_Finalize first, then the list. */
enum fault_fn {
    FN_C_Finalize,
#define X(name, params, args, end) FN_##name,
    FAULT_FUNCS(X)
#undef X
    FN_COUNT,
    FN_ANY = -1 /* "*" in a rule */
};

static const char *const fn_names[FN_COUNT] = {
    "C_Finalize",
#define X(name, params, args, end) #name,
    FAULT_FUNCS(X)
#undef X
};

/* Result names a rule may use: the codes the tests need (p11_fault.h) and
 * their neighbours; any other is written as 0x.. */
static const struct {
    const char *name;
    CK_RV rv;
} ckr_names[] = {
#define ROW(ckr) { #ckr, ckr }
    ROW(CKR_OK),
    ROW(CKR_HOST_MEMORY),
    ROW(CKR_SLOT_ID_INVALID),
    ROW(CKR_GENERAL_ERROR),
    ROW(CKR_FUNCTION_FAILED),
    ROW(CKR_ARGUMENTS_BAD),
    ROW(CKR_ATTRIBUTE_VALUE_INVALID),
    ROW(CKR_DATA_INVALID),
    ROW(CKR_DATA_LEN_RANGE),
    ROW(CKR_DEVICE_ERROR),
    ROW(CKR_DEVICE_MEMORY),
    ROW(CKR_DEVICE_REMOVED),
    ROW(CKR_ENCRYPTED_DATA_INVALID),
    ROW(CKR_ENCRYPTED_DATA_LEN_RANGE),
    ROW(CKR_FUNCTION_CANCELED),
    ROW(CKR_FUNCTION_NOT_SUPPORTED),
    ROW(CKR_KEY_HANDLE_INVALID),
    ROW(CKR_KEY_SIZE_RANGE),
    ROW(CKR_KEY_TYPE_INCONSISTENT),
    ROW(CKR_MECHANISM_INVALID),
    ROW(CKR_MECHANISM_PARAM_INVALID),
    ROW(CKR_OBJECT_HANDLE_INVALID),
    ROW(CKR_OPERATION_ACTIVE),
    ROW(CKR_OPERATION_NOT_INITIALIZED),
    ROW(CKR_PIN_INCORRECT),
    ROW(CKR_PIN_LOCKED),
    ROW(CKR_SESSION_CLOSED),
    ROW(CKR_SESSION_COUNT),
    ROW(CKR_SESSION_HANDLE_INVALID),
    ROW(CKR_SIGNATURE_INVALID),
    ROW(CKR_SIGNATURE_LEN_RANGE),
    ROW(CKR_TEMPLATE_INCONSISTENT),
    ROW(CKR_TOKEN_NOT_PRESENT),
    ROW(CKR_TOKEN_NOT_RECOGNIZED),
    ROW(CKR_USER_ALREADY_LOGGED_IN),
    ROW(CKR_USER_NOT_LOGGED_IN),
    ROW(CKR_WRAPPED_KEY_INVALID),
    ROW(CKR_BUFFER_TOO_SMALL),
    ROW(CKR_CRYPTOKI_NOT_INITIALIZED),
    ROW(CKR_CRYPTOKI_ALREADY_INITIALIZED),
#undef ROW
};

struct fault_rule {
    int fn;                  /* enum fault_fn or FN_ANY */
    CK_RV rv;                /* CKR_OK: forward after the delay */
    unsigned long skip;      /* matching calls let through first */
    unsigned long count;     /* calls that fire after those; 0 with !limited */
    bool limited;            /* count was given: spent after skip + count */
    unsigned long delay_ms;
    unsigned long seen;      /* matching calls since the file was loaded */
};

/* Identity of the control file as last loaded; a change means re-read. */
struct fault_file_id {
    bool present;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
};

/* State of one load of this module (dlclose unloads it with its state).
 * |lock| guards everything below it; |real| and the paths are set in
 * C_GetFunctionList before the list is handed out and not changed after. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *real_dl;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST fault_list;
static char control_path[FAULT_PATH_MAX];
static struct fault_rule rules[FAULT_RULES_MAX];
static size_t num_rules;
static struct fault_file_id loaded;
static unsigned long unparsable_lines;
static unsigned long calls[FN_COUNT], failed[FN_COUNT];
/* Secret key values that crossed the module boundary (spy counters). */
static unsigned long secret_values_in, secret_values_out;

/* ---- the control file ----------------------------------------------------- */

/* A view of bytes the parser walks, BoringSSL CBS style. */
struct cursor {
    const unsigned char *p;
    size_t len;
};

static bool
is_blank(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static void
skip_blanks(struct cursor *c)
{
    while (c->len > 0 && is_blank(c->p[0])) {
        c->p++;
        c->len--;
    }
}

/* Takes the next word (up to a blank or the end); false at the end. */
static bool
next_word(struct cursor *c, struct cursor *out)
{
    size_t n = 0;

    skip_blanks(c);
    while (n < c->len && !is_blank(c->p[n]))
        n++;
    if (n == 0)
        return false;
    out->p = c->p;
    out->len = n;
    c->p += n;
    c->len -= n;
    return true;
}

static bool
word_is(const struct cursor *w, const char *s)
{
    return strlen(s) == w->len && memcmp(w->p, s, w->len) == 0;
}

/* Decimal, 1..FAULT_NUMBER_DIGITS digits, at most |max|. */
static bool
parse_number(const struct cursor *w, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (w->len == 0 || w->len > FAULT_NUMBER_DIGITS)
        return false;
    for (size_t i = 0; i < w->len; i++) {
        if (w->p[i] < '0' || w->p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(w->p[i] - '0'); /* 10 digits fit in 64 bits */
    }
    if (v > max)
        return false;
    *out = v;
    return true;
}

static bool
parse_result(const struct cursor *w, CK_RV *out)
{
    CK_RV v = 0;

    for (size_t i = 0; i < sizeof(ckr_names) / sizeof(ckr_names[0]); i++) {
        if (word_is(w, ckr_names[i].name)) {
            *out = ckr_names[i].rv;
            return true;
        }
    }
    if (w->len < 3 || w->len > 2 + FAULT_HEX_DIGITS || w->p[0] != '0' ||
        (w->p[1] != 'x' && w->p[1] != 'X'))
        return false;
    for (size_t i = 2; i < w->len; i++) {
        unsigned char ch = w->p[i];
        unsigned d;

        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return false;
        v = v * 16 + d;
    }
    *out = v;
    return true;
}

static bool
parse_function(const struct cursor *w, int *out)
{
    if (word_is(w, "*")) {
        *out = FN_ANY;
        return true;
    }
    for (int i = 0; i < FN_COUNT; i++) {
        if (word_is(w, fn_names[i])) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* Parses one rule; false for anything that is not exactly a rule. */
static bool
parse_rule(struct cursor line, struct fault_rule *out)
{
    struct fault_rule r = { 0 };
    struct cursor w, num;
    bool have_skip = false, have_delay = false;

    if (!next_word(&line, &w) || !parse_function(&w, &r.fn))
        return false;
    if (!next_word(&line, &w) || !parse_result(&w, &r.rv))
        return false;
    while (next_word(&line, &w)) {
        if (!next_word(&line, &num))
            return false;
        if (word_is(&w, "skip") && !have_skip) {
            have_skip = true;
            if (!parse_number(&num, FAULT_NUMBER_MAX, &r.skip))
                return false;
        } else if (word_is(&w, "count") && !r.limited) {
            r.limited = true;
            if (!parse_number(&num, FAULT_NUMBER_MAX, &r.count))
                return false;
        } else if (word_is(&w, "delay_ms") && !have_delay) {
            have_delay = true;
            if (!parse_number(&num, FAULT_DELAY_MAX_MS, &r.delay_ms))
                return false;
        } else {
            return false; /* unknown or repeated option */
        }
    }
    *out = r;
    return true;
}

/* One line without its newline: a rule is added, a comment or blank line is
 * skipped, anything else counted. */
static void
load_line(struct cursor line)
{
    struct cursor probe;

    if (line.len > 0 && line.p[line.len - 1] == '\r')
        line.len--;
    if (line.len > FAULT_LINE_MAX) {
        unparsable_lines++;
        return;
    }
    /* Printable ASCII and blanks only: NUL or binary bytes mean garbage. */
    for (size_t i = 0; i < line.len; i++) {
        if (!is_blank(line.p[i]) && (line.p[i] < 0x21 || line.p[i] > 0x7e)) {
            unparsable_lines++;
            return;
        }
    }
    probe = line;
    skip_blanks(&probe);
    if (probe.len == 0 || probe.p[0] == '#')
        return;
    if (num_rules == FAULT_RULES_MAX || !parse_rule(line, &rules[num_rules])) {
        unparsable_lines++;
        return;
    }
    num_rules++;
}

static void
load_bytes(const unsigned char *buf, size_t len)
{
    struct cursor c = { buf, len };

    while (c.len > 0) {
        const unsigned char *nl = memchr(c.p, '\n', c.len);
        size_t n = nl != NULL ? (size_t)(nl - c.p) : c.len;
        struct cursor line = { c.p, n };

        load_line(line);
        c.p += n;
        c.len -= n;
        if (nl != NULL) {
            c.p++;
            c.len--;
        }
    }
}

static bool
same_file(const struct fault_file_id *id, const struct stat *st)
{
    return id->present && id->dev == st->st_dev && id->ino == st->st_ino &&
           id->size == st->st_size && id->mtim.tv_sec == st->st_mtim.tv_sec &&
           id->mtim.tv_nsec == st->st_mtim.tv_nsec;
}

/* Brings the rules up to date with the control file. Called with |lock|
 * held, on every wrapped call: one stat() when nothing changed. */
static void
rules_refresh_locked(void)
{
    static unsigned char buf[FAULT_FILE_MAX + 1]; /* under |lock| */
    struct stat st;
    size_t len = 0;
    ssize_t n = 0;
    int fd = -1;

    if (control_path[0] == '\0')
        return;
    if (stat(control_path, &st) != 0) {
        num_rules = 0;
        loaded.present = false;
        return;
    }
    if (same_file(&loaded, &st))
        return;
    num_rules = 0;
    loaded.present = false;
    /* The identity recorded is the opened file's, so a rename between the
     * stat and the open costs one extra re-read, never a stale table. */
    fd = open(control_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        goto out;
    loaded.present = true;
    loaded.dev = st.st_dev;
    loaded.ino = st.st_ino;
    loaded.size = st.st_size;
    loaded.mtim = st.st_mtim;
    while (len < sizeof(buf)) {
        n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (n < 0 || len > FAULT_FILE_MAX) {
        unparsable_lines++;
        goto out;
    }
    load_bytes(buf, len);
out:
    if (fd >= 0)
        close(fd);
}

/* Decides one call of |fn|: true if it is to fail with *out_rv. Sleeps the
 * firing rule's delay (outside the lock) before returning. */
static bool
fault_decide(enum fault_fn fn, CK_RV *out_rv)
{
    unsigned long delay_ms = 0;
    bool inject = false;
    CK_RV rv = CKR_OK;

    pthread_mutex_lock(&lock);
    calls[fn]++;
    rules_refresh_locked();
    for (size_t i = 0; i < num_rules; i++) {
        struct fault_rule *r = &rules[i];

        if (r->fn != (int)fn && (r->fn != FN_ANY || fn == FN_C_Finalize))
            continue;
        if (r->limited && r->seen >= r->skip + r->count)
            continue; /* spent */
        if (r->seen < ULONG_MAX)
            r->seen++;
        if (r->seen > r->skip) {
            delay_ms = r->delay_ms;
            rv = r->rv;
            inject = rv != CKR_OK;
        }
        break;
    }
    if (inject)
        failed[fn]++;
    pthread_mutex_unlock(&lock);
    if (delay_ms > 0) {
        struct timespec ts = { (time_t)(delay_ms / 1000), (long)(delay_ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    *out_rv = rv;
    return inject;
}

/* ---- ending the real operation after an injected failure ------------------ */

/* PKCS#11 2.40 section 5.2: a single-part C_Encrypt/C_Decrypt/C_Sign that
 * fails (other than CKR_BUFFER_TOO_SMALL) ends the operation. The real module
 * did not see the call, so finish it into scratch memory, wiped after. */
static void
end_single(CK_C_Sign fn, CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len)
{
    CK_ULONG n = 0;
    unsigned char *scratch = NULL;

    if (fn(session, data, data_len, NULL, &n) != CKR_OK)
        return; /* the length query failed: that ended it */
    if (n == 0 || n > FAULT_SCRATCH_MAX || (scratch = malloc(n)) == NULL)
        return; /* stays active; the caller's next *Init will say so */
    (void)fn(session, data, data_len, scratch, &n);
    explicit_bzero(scratch, n);
    free(scratch);
}

/* The same for a digest: an error from C_DigestUpdate, C_DigestKey or
 * C_DigestFinal ends it (C_DigestKey may have digested a secret: wiped). */
static void
end_digest(CK_SESSION_HANDLE session)
{
    unsigned char scratch[FAULT_DIGEST_SCRATCH];
    CK_ULONG n = sizeof(scratch);

    (void)real->C_DigestFinal(session, scratch, &n);
    explicit_bzero(scratch, sizeof(scratch));
}

/* ---- the wrappers --------------------------------------------------------- */

#define X(name, params, args, end)                                                             \
    static CK_RV fault_##name params                                                           \
    {                                                                                          \
        CK_RV rv = CKR_OK;                                                                     \
        if (fault_decide(FN_##name, &rv)) {                                                    \
            end;                                                                               \
            return rv;                                                                         \
        }                                                                                      \
        return real->name args;                                                                \
    }
FAULT_FUNCS(X)
#undef X

/* ---- the spy counters ----------------------------------------------------- */

static bool
tmpl_find(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type, const CK_ATTRIBUTE **out)
{
    for (CK_ULONG i = 0; t != NULL && i < n; i++) {
        if (t[i].type == type) {
            *out = &t[i];
            return true;
        }
    }
    return false;
}

/* C_CreateObject of a secret key with its value: a key that was in host
 * memory (hsm_secret_import). */
static CK_RV
spy_C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                   CK_OBJECT_HANDLE_PTR phObject)
{
    const CK_ATTRIBUTE *klass = NULL, *value = NULL;
    CK_RV rv = fault_C_CreateObject(hSession, pTemplate, ulCount, phObject);

    if (rv == CKR_OK && tmpl_find(pTemplate, ulCount, CKA_CLASS, &klass) &&
        klass->ulValueLen == sizeof(CK_OBJECT_CLASS) &&
        *(const CK_OBJECT_CLASS *)klass->pValue == CKO_SECRET_KEY &&
        tmpl_find(pTemplate, ulCount, CKA_VALUE, &value)) {
        pthread_mutex_lock(&lock);
        secret_values_in++;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

/* C_GetAttributeValue that returned the CKA_VALUE of a secret key. */
static CK_RV
spy_C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                        CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    const CK_ATTRIBUTE *value = NULL;
    CK_OBJECT_CLASS klass = 0;
    CK_ATTRIBUTE ask = { CKA_CLASS, &klass, sizeof(klass) };
    CK_RV rv = fault_C_GetAttributeValue(hSession, hObject, pTemplate, ulCount);

    if (tmpl_find(pTemplate, ulCount, CKA_VALUE, &value) && value->pValue != NULL &&
        value->ulValueLen != CK_UNAVAILABLE_INFORMATION &&
        real->C_GetAttributeValue(hSession, hObject, &ask, 1) == CKR_OK &&
        klass == CKO_SECRET_KEY) {
        pthread_mutex_lock(&lock);
        secret_values_out++;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

void
tv_p11_fault_spy_read(struct tv_p11_fault_spy *out)
{
    pthread_mutex_lock(&lock);
    out->digest_key_calls = calls[FN_C_DigestKey];
    out->derive_key_calls = calls[FN_C_DeriveKey];
    out->secret_values_in = secret_values_in;
    out->secret_values_out = secret_values_out;
    pthread_mutex_unlock(&lock);
}

/* Appends the counters to TV_P11_FAULT_STATS, if set, and starts them over:
 * each report covers one C_Initialize..C_Finalize, whether or not the module
 * was unloaded in between. Called with |lock|. */
static void
stats_flush_locked(void)
{
    const char *path = getenv("TV_P11_FAULT_STATS");
    FILE *f = NULL;

    if (path != NULL && path[0] != '\0' && (f = fopen(path, "ae")) != NULL) {
        fprintf(f, "# tv_p11_fault pid=%ld unparsable_lines=%lu\n", (long)getpid(),
                unparsable_lines);
        for (int i = 0; i < FN_COUNT; i++)
            fprintf(f, "%s %lu %lu\n", fn_names[i], calls[i], failed[i]);
        fprintf(f, "secret_values_in %lu 0\nsecret_values_out %lu 0\n", secret_values_in,
                secret_values_out);
        (void)fclose(f);
    }
    unparsable_lines = 0;
    secret_values_in = secret_values_out = 0;
    memset(calls, 0, sizeof(calls));
    memset(failed, 0, sizeof(failed));
}

/* C_Finalize is out of reach of "*" (fault_decide) and reports the counts. */
static CK_RV
fault_C_Finalize(CK_VOID_PTR pReserved)
{
    CK_RV rv = CKR_OK;

    if (!fault_decide(FN_C_Finalize, &rv))
        rv = real->C_Finalize(pReserved);
    pthread_mutex_lock(&lock);
    stats_flush_locked();
    pthread_mutex_unlock(&lock);
    return rv;
}

/* ---- loading -------------------------------------------------------------- */

/* Copies an environment variable into |out|; false if unset, empty or too
 * long. */
static bool
env_copy(const char *name, char *out, size_t cap)
{
    const char *v = getenv(name);

    if (v == NULL || v[0] == '\0' || strlen(v) >= cap)
        return false;
    memcpy(out, v, strlen(v) + 1);
    return true;
}

static CK_RV fault_get_function_list(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);

/* True if |fn| lies in this very module (or cannot be placed). Comparing it
 * with C_GetFunctionList would not do: the test executables link libp11-kit,
 * whose proxy exports a C_GetFunctionList too, and this RTLD_LOCAL object's
 * own references to that name bind to the executable's global scope first. */
static bool
in_this_module(CK_C_GetFunctionList fn)
{
    CK_C_GetFunctionList mine = fault_get_function_list;
    Dl_info other, self;

    if (dladdr(*(void **)&fn, &other) == 0 || dladdr(*(void **)&mine, &self) == 0)
        return true;
    return other.dli_fbase == self.dli_fbase;
}

static CK_RV
fault_get_function_list(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    char target[FAULT_PATH_MAX];
    CK_C_GetFunctionList get_list = NULL;
    CK_FUNCTION_LIST_PTR list = NULL;
    CK_RV rv = CKR_GENERAL_ERROR;

    if (ppFunctionList == NULL)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (!env_copy("TV_P11_FAULT_CONTROL", control_path, sizeof(control_path)))
        control_path[0] = '\0';
    loaded.present = false; /* read the control file afresh */
    num_rules = 0;
    if (real != NULL) {
        *ppFunctionList = &fault_list;
        rv = CKR_OK;
        goto out;
    }
    if (!env_copy("TV_P11_FAULT_TARGET", target, sizeof(target)))
        goto out;
    real_dl = dlopen(target, RTLD_NOW | RTLD_LOCAL);
    if (real_dl == NULL)
        goto out;
    *(void **)&get_list = dlsym(real_dl, "C_GetFunctionList");
    /* Pointed at itself it would recurse with |lock| held. */
    if (get_list == NULL || in_this_module(get_list) || get_list(&list) != CKR_OK || list == NULL)
        goto out;
    real = list;
    fault_list = *list;
    fault_list.C_GetFunctionList = fault_get_function_list;
    fault_list.C_Finalize = fault_C_Finalize;
#define X(name, params, args, end) fault_list.name = fault_##name;
    FAULT_FUNCS(X)
#undef X
    fault_list.C_CreateObject = spy_C_CreateObject;
    fault_list.C_GetAttributeValue = spy_C_GetAttributeValue;
    *ppFunctionList = &fault_list;
    rv = CKR_OK;
out:
    if (rv != CKR_OK && real == NULL && real_dl != NULL) {
        dlclose(real_dl);
        real_dl = NULL;
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

/* The one exported symbol. The list holds fault_get_function_list, not this
 * name, for the reason given at in_this_module. */
CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
    return fault_get_function_list(ppFunctionList);
}

/* dlclose of this module releases the real one too. */
__attribute__((destructor)) static void
fault_unload(void)
{
    if (real_dl != NULL)
        dlclose(real_dl);
}
