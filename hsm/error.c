/*
 * error.c - the one place where CKR_ codes become HSM_ERR_ codes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hsm/internal.h"

CK_BBOOL hsm__true = CK_TRUE;
CK_BBOOL hsm__false = CK_FALSE;

int
hsm__copy_out(uint8_t *out, size_t cap, const uint8_t *src, size_t len, size_t *out_len)
{
    *out_len = len;
    if (out == NULL || cap < len)
        return HSM_ERR_BUFFER;
    memcpy(out, src, len);
    return HSM_OK;
}

/* Detail of the last failure on this thread, for the log. Short and free of
 * secrets: a call name and a CKR name, or a fixed message of this layer. */
#define DETAIL_MAX 160
static _Thread_local char detail[DETAIL_MAX];

const char *
hsm_last_detail(void)
{
    return detail;
}

int
hsm__fail(int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return err;
}

const char *
hsm_strerror(int err)
{
    switch (err) {
    case HSM_OK: return "HSM_OK";
    case HSM_ERR_INVALID_ARG: return "HSM_ERR_INVALID_ARG";
    case HSM_ERR_MODULE: return "HSM_ERR_MODULE";
    case HSM_ERR_TOKEN: return "HSM_ERR_TOKEN";
    case HSM_ERR_PIN_SOURCE: return "HSM_ERR_PIN_SOURCE";
    case HSM_ERR_LOGIN: return "HSM_ERR_LOGIN";
    case HSM_ERR_UNAVAILABLE: return "HSM_ERR_UNAVAILABLE";
    case HSM_ERR_KEY_NOT_FOUND: return "HSM_ERR_KEY_NOT_FOUND";
    case HSM_ERR_KEY_TYPE: return "HSM_ERR_KEY_TYPE";
    case HSM_ERR_VERIFY: return "HSM_ERR_VERIFY";
    case HSM_ERR_MECHANISM: return "HSM_ERR_MECHANISM";
    case HSM_ERR_BUFFER: return "HSM_ERR_BUFFER";
    case HSM_ERR_NO_MEMORY: return "HSM_ERR_NO_MEMORY";
    case HSM_ERR_EXISTS: return "HSM_ERR_EXISTS";
    case HSM_ERR_INPUT: return "HSM_ERR_INPUT";
    case HSM_ERR_INTERNAL: return "HSM_ERR_INTERNAL";
    }
    return "HSM_ERR_UNKNOWN";
}

/* Every CKR_ the vault can meet, one row each: name and project error. */
static const struct {
    CK_RV rv;
    const char *name;
    int err;
} ckr_table[] = {
#define ROW(ckr, err) { ckr, #ckr, err }
    ROW(CKR_OK, HSM_OK),
    ROW(CKR_CANCEL, HSM_ERR_INTERNAL),
    ROW(CKR_HOST_MEMORY, HSM_ERR_NO_MEMORY),
    ROW(CKR_SLOT_ID_INVALID, HSM_ERR_UNAVAILABLE),
    ROW(CKR_GENERAL_ERROR, HSM_ERR_INTERNAL),
    ROW(CKR_FUNCTION_FAILED, HSM_ERR_INTERNAL),
    ROW(CKR_ARGUMENTS_BAD, HSM_ERR_MECHANISM),
    ROW(CKR_ATTRIBUTE_READ_ONLY, HSM_ERR_KEY_TYPE),
    ROW(CKR_ATTRIBUTE_SENSITIVE, HSM_ERR_KEY_TYPE),
    ROW(CKR_ATTRIBUTE_TYPE_INVALID, HSM_ERR_MECHANISM),
    ROW(CKR_ATTRIBUTE_VALUE_INVALID, HSM_ERR_INPUT),
    ROW(CKR_ACTION_PROHIBITED, HSM_ERR_KEY_TYPE),
    ROW(CKR_DATA_INVALID, HSM_ERR_INPUT),
    ROW(CKR_DATA_LEN_RANGE, HSM_ERR_INPUT),
    ROW(CKR_DEVICE_ERROR, HSM_ERR_UNAVAILABLE),
    ROW(CKR_DEVICE_MEMORY, HSM_ERR_NO_MEMORY),
    ROW(CKR_DEVICE_REMOVED, HSM_ERR_UNAVAILABLE),
    ROW(CKR_ENCRYPTED_DATA_INVALID, HSM_ERR_VERIFY),
    ROW(CKR_ENCRYPTED_DATA_LEN_RANGE, HSM_ERR_VERIFY),
    ROW(CKR_FUNCTION_CANCELED, HSM_ERR_INTERNAL),
    ROW(CKR_FUNCTION_NOT_SUPPORTED, HSM_ERR_MECHANISM),
    ROW(CKR_KEY_HANDLE_INVALID, HSM_ERR_KEY_NOT_FOUND),
    ROW(CKR_KEY_SIZE_RANGE, HSM_ERR_KEY_TYPE),
    ROW(CKR_KEY_TYPE_INCONSISTENT, HSM_ERR_KEY_TYPE),
    ROW(CKR_KEY_INDIGESTIBLE, HSM_ERR_MECHANISM),
    ROW(CKR_KEY_FUNCTION_NOT_PERMITTED, HSM_ERR_KEY_TYPE),
    ROW(CKR_KEY_NOT_WRAPPABLE, HSM_ERR_KEY_TYPE),
    ROW(CKR_KEY_UNEXTRACTABLE, HSM_ERR_KEY_TYPE),
    ROW(CKR_MECHANISM_INVALID, HSM_ERR_MECHANISM),
    ROW(CKR_MECHANISM_PARAM_INVALID, HSM_ERR_MECHANISM),
    ROW(CKR_OBJECT_HANDLE_INVALID, HSM_ERR_KEY_NOT_FOUND),
    ROW(CKR_OPERATION_ACTIVE, HSM_ERR_INTERNAL),
    ROW(CKR_OPERATION_NOT_INITIALIZED, HSM_ERR_INTERNAL),
    ROW(CKR_PIN_INCORRECT, HSM_ERR_LOGIN),
    ROW(CKR_PIN_INVALID, HSM_ERR_LOGIN),
    ROW(CKR_PIN_LEN_RANGE, HSM_ERR_LOGIN),
    ROW(CKR_PIN_EXPIRED, HSM_ERR_LOGIN),
    ROW(CKR_PIN_LOCKED, HSM_ERR_LOGIN),
    ROW(CKR_SESSION_CLOSED, HSM_ERR_UNAVAILABLE),
    ROW(CKR_SESSION_COUNT, HSM_ERR_UNAVAILABLE),
    ROW(CKR_SESSION_HANDLE_INVALID, HSM_ERR_UNAVAILABLE),
    ROW(CKR_SESSION_READ_ONLY, HSM_ERR_INTERNAL),
    ROW(CKR_SIGNATURE_INVALID, HSM_ERR_VERIFY),
    ROW(CKR_SIGNATURE_LEN_RANGE, HSM_ERR_VERIFY),
    ROW(CKR_TEMPLATE_INCOMPLETE, HSM_ERR_INTERNAL),
    ROW(CKR_TEMPLATE_INCONSISTENT, HSM_ERR_KEY_TYPE),
    ROW(CKR_TOKEN_NOT_PRESENT, HSM_ERR_UNAVAILABLE),
    ROW(CKR_TOKEN_NOT_RECOGNIZED, HSM_ERR_UNAVAILABLE),
    ROW(CKR_TOKEN_WRITE_PROTECTED, HSM_ERR_INTERNAL),
    ROW(CKR_UNWRAPPING_KEY_HANDLE_INVALID, HSM_ERR_KEY_NOT_FOUND),
    ROW(CKR_UNWRAPPING_KEY_SIZE_RANGE, HSM_ERR_KEY_TYPE),
    ROW(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, HSM_ERR_KEY_TYPE),
    ROW(CKR_USER_ALREADY_LOGGED_IN, HSM_OK),
    ROW(CKR_USER_NOT_LOGGED_IN, HSM_ERR_UNAVAILABLE),
    ROW(CKR_USER_PIN_NOT_INITIALIZED, HSM_ERR_LOGIN),
    ROW(CKR_USER_TYPE_INVALID, HSM_ERR_LOGIN),
    ROW(CKR_WRAPPED_KEY_INVALID, HSM_ERR_VERIFY),
    ROW(CKR_WRAPPED_KEY_LEN_RANGE, HSM_ERR_VERIFY),
    ROW(CKR_WRAPPING_KEY_HANDLE_INVALID, HSM_ERR_KEY_NOT_FOUND),
    ROW(CKR_WRAPPING_KEY_SIZE_RANGE, HSM_ERR_KEY_TYPE),
    ROW(CKR_WRAPPING_KEY_TYPE_INCONSISTENT, HSM_ERR_KEY_TYPE),
    ROW(CKR_RANDOM_SEED_NOT_SUPPORTED, HSM_ERR_MECHANISM),
    ROW(CKR_RANDOM_NO_RNG, HSM_ERR_MECHANISM),
    ROW(CKR_DOMAIN_PARAMS_INVALID, HSM_ERR_INPUT),
    ROW(CKR_CURVE_NOT_SUPPORTED, HSM_ERR_MECHANISM),
    ROW(CKR_BUFFER_TOO_SMALL, HSM_ERR_BUFFER),
    ROW(CKR_CRYPTOKI_NOT_INITIALIZED, HSM_ERR_UNAVAILABLE),
    ROW(CKR_CRYPTOKI_ALREADY_INITIALIZED, HSM_ERR_MODULE),
#undef ROW
};

const char *
hsm__ckr_name(CK_RV rv)
{
    for (size_t i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++) {
        if (ckr_table[i].rv == rv)
            return ckr_table[i].name;
    }
    return "CKR_(unknown)";
}

/* Codes after which the session, the login or the whole token is gone: the
 * only cure is to re-open and log in again. */
bool
hsm__ckr_is_loss(CK_RV rv)
{
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_DEVICE_REMOVED:
    case CKR_DEVICE_ERROR:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_SLOT_ID_INVALID:
        return true;
    }
    return false;
}

static int
map(hsm_session *s, const char *call, CK_RV rv, bool verify)
{
    int err = HSM_ERR_INTERNAL;

    if (rv == CKR_OK)
        return HSM_OK;
    for (size_t i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++) {
        if (ckr_table[i].rv == rv) {
            err = ckr_table[i].err;
            break;
        }
    }
    if (hsm__ckr_is_loss(rv)) {
        err = HSM_ERR_UNAVAILABLE;
        if (s != NULL) {
            s->broken = true;
            hsm__mark_down(s->h, s->generation);
        }
    } else if (rv == CKR_OPERATION_ACTIVE && s != NULL) {
        /* A module that left an operation open after a failure: this
         * session would refuse every *Init from now on. It is closed when
         * given back, and the pool opens a fresh one. */
        s->broken = true;
    } else if (verify && err != HSM_ERR_KEY_TYPE && err != HSM_ERR_MECHANISM &&
               err != HSM_ERR_NO_MEMORY && err != HSM_ERR_BUFFER &&
               err != HSM_ERR_KEY_NOT_FOUND) {
        err = HSM_ERR_VERIFY;
    }
    snprintf(detail, sizeof(detail), "%s: %s (0x%lx)", call, hsm__ckr_name(rv), (unsigned long)rv);
    return err;
}

int
hsm__ckr(hsm_session *s, const char *call, CK_RV rv)
{
    return map(s, call, rv, false);
}

int
hsm__ckr_verify(hsm_session *s, const char *call, CK_RV rv)
{
    return map(s, call, rv, true);
}

int
hsm__ckr_signature(hsm_session *s, const char *call, CK_RV rv)
{
    /* The table maps exactly the two signature codes to HSM_ERR_VERIFY. */
    return map(s, call, rv, false);
}
