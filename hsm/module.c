/*
 * module.c - loading the PKCS#11 module, finding the token, the login, the
 * session pool, recovery after the token is lost, and the planned recycle of
 * a module that keeps destroyed session objects (hsm_config.
 * recycle_after_objects).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <p11-kit/uri.h>

#include "hsm/internal.h"

/* A PKCS#11 token label is a 32-byte field padded with spaces. */
#define TOKEN_LABEL_FIELD 32
/* Slots we look at; a HSM partition list is short. */
#define MAX_SLOTS 64
/* SoftHSM frees destroyed session objects from 2.7 on (SoftHSMv2 PR 875). */
#define SOFTHSM_MANUFACTURER "SoftHSM"
#define SOFTHSM_FIXED_MAJOR 2
#define SOFTHSM_FIXED_MINOR 7

uint64_t
hsm__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Copies a space-padded PKCS#11 text field into a C string. */
static void
field_copy(char *out, size_t cap, const unsigned char *field, size_t field_len)
{
    size_t n = field_len < cap - 1 ? field_len : cap - 1;

    memcpy(out, field, n);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
        n--;
    out[n] = '\0';
}

static bool
token_matches(struct hsm *h, const CK_TOKEN_INFO *ti)
{
    if (h->token_uri != NULL) {
        P11KitUri *uri = p11_kit_uri_new();
        bool ok = false;

        if (uri == NULL)
            return false;
        /* An unrecognized attribute makes p11-kit match nothing: fail closed. */
        if (p11_kit_uri_parse(h->token_uri, P11_KIT_URI_FOR_TOKEN | P11_KIT_URI_FOR_MODULE, uri) ==
            P11_KIT_URI_OK) {
            ok = p11_kit_uri_match_token_info(uri, (CK_TOKEN_INFO_PTR)ti) == 1 &&
                 p11_kit_uri_match_module_info(uri, &h->module_info) == 1;
        }
        p11_kit_uri_free(uri);
        return ok;
    }
    char label[TOKEN_LABEL_FIELD + 1];
    field_copy(label, sizeof(label), ti->label, sizeof(ti->label));
    return strcmp(label, h->token_label) == 0;
}

/* Finds the one initialized token that matches; more than one is an error
 * (logging into the wrong partition would be worse than not starting). */
static int
find_slot(struct hsm *h)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG num = MAX_SLOTS;
    CK_TOKEN_INFO ti;
    int found = 0;
    CK_RV rv;

    rv = h->p11->C_GetSlotList(CK_TRUE, slots, &num);
    if (rv != CKR_OK)
        return hsm__ckr(NULL, "C_GetSlotList", rv) == HSM_ERR_UNAVAILABLE ? HSM_ERR_UNAVAILABLE
                                                                            : HSM_ERR_TOKEN;
    for (CK_ULONG i = 0; i < num; i++) {
        if (h->p11->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        if ((ti.flags & CKF_TOKEN_INITIALIZED) == 0 || !token_matches(h, &ti))
            continue;
        if (found++ == 0) {
            h->slot = slots[i];
            h->token_info = ti;
        }
    }
    if (found == 0)
        return hsm__fail(HSM_ERR_TOKEN, "no initialized token matches %s",
                         h->token_uri != NULL ? h->token_uri : h->token_label);
    if (found > 1)
        return hsm__fail(HSM_ERR_TOKEN, "%d tokens match %s; name one exactly", found,
                         h->token_uri != NULL ? h->token_uri : h->token_label);
    field_copy(h->info_label, sizeof(h->info_label), h->token_info.label, 32);
    field_copy(h->info_manufacturer, sizeof(h->info_manufacturer), h->token_info.manufacturerID, 32);
    field_copy(h->info_model, sizeof(h->info_model), h->token_info.model, 16);
    field_copy(h->info_serial, sizeof(h->info_serial), h->token_info.serialNumber, 16);
    return HSM_OK;
}

/* Opens the keeper session and logs in. The keeper holds the login for the
 * whole application (PKCS#11 logins are per application, not per session) and
 * owns the DEK session objects. */
static int
login(struct hsm *h)
{
    uint8_t pin[HSM_PIN_BUF];
    size_t pin_len = 0;
    CK_RV rv;
    int r;

    rv = h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h->keeper);
    if (rv != CKR_OK) {
        h->keeper = CK_INVALID_HANDLE;
        return hsm__ckr(NULL, "C_OpenSession", rv);
    }
    r = hsm_pin_source_read(h->pin, pin, sizeof(pin), &pin_len);
    if (r != HSM_OK)
        goto out;
    rv = h->p11->C_Login(h->keeper, CKU_USER, pin, pin_len);
    OPENSSL_cleanse(pin, sizeof(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        r = hsm__ckr(NULL, "C_Login", rv);
        if (r != HSM_ERR_UNAVAILABLE)
            r = HSM_ERR_LOGIN;
        goto out;
    }
    r = HSM_OK;
out:
    OPENSSL_cleanse(pin, sizeof(pin));
    if (r != HSM_OK) {
        h->p11->C_CloseSession(h->keeper);
        h->keeper = CK_INVALID_HANDLE;
    }
    return r;
}

int
hsm_user_pin_change(hsm_session *s, const uint8_t *new_pin, size_t new_len)
{
    uint8_t old[HSM_PIN_BUF];
    size_t old_len = 0;
    CK_RV rv;
    int r;

    if (s == NULL || new_pin == NULL || new_len == 0 || new_len > HSM_PIN_MAX)
        return hsm__fail(HSM_ERR_INVALID_ARG, "hsm_user_pin_change: bad arguments");
    if ((r = hsm_pin_source_read(s->h->pin, old, sizeof(old), &old_len)) != HSM_OK)
        goto out;
    rv = s->h->p11->C_SetPIN(s->handle, old, old_len, (CK_UTF8CHAR_PTR)new_pin, new_len);
    r = hsm__ckr(s, "C_SetPIN", rv);
    if (r != HSM_OK && r != HSM_ERR_UNAVAILABLE)
        r = rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID ? HSM_ERR_INPUT : HSM_ERR_LOGIN;
out:
    OPENSSL_cleanse(old, sizeof(old));
    return r;
}

static void
pool_drop_free(struct hsm *h)
{
    while (h->free_list != NULL) {
        hsm_session *s = h->free_list;
        h->free_list = s->next;
        h->num_open--;
        free(s);
    }
}

/* Releases everything hsm_open acquired; |initialized| says whether
 * C_Initialize succeeded (so the module must be finalized). */
static void
hsm_free(struct hsm *h, bool initialized)
{
    if (initialized) {
        pthread_mutex_lock(&h->lock);
        pool_drop_free(h);
        pthread_mutex_unlock(&h->lock);
        if (h->keeper != CK_INVALID_HANDLE)
            h->p11->C_Logout(h->keeper);
        h->p11->C_CloseAllSessions(h->slot);
        h->p11->C_Finalize(NULL);
    }
    if (h->dl != NULL)
        dlclose(h->dl);
    hsm__keys_free(h);
    free(h->module_path);
    free(h->token_label);
    free(h->token_uri);
    free(h->init_args);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Whether the module is one that keeps destroyed session objects until
 * C_Finalize: SoftHSM before 2.7. */
static bool
module_keeps_destroyed(const CK_INFO *info)
{
    char manufacturer[sizeof(info->manufacturerID) + 1];

    field_copy(manufacturer, sizeof(manufacturer), info->manufacturerID,
               sizeof(info->manufacturerID));
    if (strncmp(manufacturer, SOFTHSM_MANUFACTURER, strlen(SOFTHSM_MANUFACTURER)) != 0)
        return false;
    return info->libraryVersion.major < SOFTHSM_FIXED_MAJOR ||
           (info->libraryVersion.major == SOFTHSM_FIXED_MAJOR &&
            info->libraryVersion.minor < SOFTHSM_FIXED_MINOR);
}

static char *
dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

int
hsm_open(hsm **out, const hsm_config *cfg, hsm_pin_source *pin)
{
    CK_C_GetFunctionList get_list = NULL;
    CK_C_INITIALIZE_ARGS init_args;
    struct hsm *h = NULL;
    bool initialized = false;
    hsm_session *s = NULL;
    CK_RV rv;
    int r;

    if (out == NULL || cfg == NULL || pin == NULL || cfg->module_path == NULL ||
        (cfg->token_label == NULL) == (cfg->token_uri == NULL))
        return hsm__fail(HSM_ERR_INVALID_ARG, "module path, PIN source and exactly one of token "
                                              "label or URI are required");
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return HSM_ERR_NO_MEMORY;
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->keeper = CK_INVALID_HANDLE;
    h->pin = pin;
    h->max_sessions = cfg->max_sessions != 0 ? cfg->max_sessions : HSM_SESSIONS_DEFAULT;
    h->backoff_initial_ms = cfg->backoff_initial_ms != 0 ? cfg->backoff_initial_ms
                                                         : HSM_BACKOFF_INITIAL_MS;
    h->backoff_max_ms = cfg->backoff_max_ms != 0 ? cfg->backoff_max_ms : HSM_BACKOFF_MAX_MS;
    h->backoff_ms = h->backoff_initial_ms;
    h->module_path = strdup(cfg->module_path);
    h->token_label = dup_or_null(cfg->token_label);
    h->token_uri = dup_or_null(cfg->token_uri);
    h->init_args = dup_or_null(cfg->init_args);
    h->reduced_attrs = cfg->reduced_key_attributes;
    if (h->module_path == NULL || (cfg->token_label != NULL && h->token_label == NULL) ||
        (cfg->token_uri != NULL && h->token_uri == NULL) ||
        (cfg->init_args != NULL && h->init_args == NULL)) {
        r = HSM_ERR_NO_MEMORY;
        goto out;
    }

    h->dl = dlopen(cfg->module_path, RTLD_NOW | RTLD_LOCAL);
    if (h->dl == NULL) {
        r = hsm__fail(HSM_ERR_MODULE, "cannot load PKCS#11 module %s: %s", cfg->module_path,
                      dlerror());
        goto out;
    }
    *(void **)&get_list = dlsym(h->dl, "C_GetFunctionList");
    if (get_list == NULL || get_list(&h->p11) != CKR_OK || h->p11 == NULL) {
        r = hsm__fail(HSM_ERR_MODULE, "%s has no usable C_GetFunctionList", cfg->module_path);
        goto out;
    }
    /* OS locking: SoftHSM hangs or crashes under threads without it
     * (HSM-NOTES Q7). pReserved carries a module init string (NSS softokn). */
    memset(&init_args, 0, sizeof(init_args));
    init_args.flags = CKF_OS_LOCKING_OK;
    init_args.pReserved = h->init_args;
    rv = h->p11->C_Initialize(&init_args);
    if (rv != CKR_OK) {
        (void)hsm__ckr(NULL, "C_Initialize", rv);
        r = HSM_ERR_MODULE;
        goto out;
    }
    initialized = true;
    rv = h->p11->C_GetInfo(&h->module_info);
    if (rv != CKR_OK) {
        (void)hsm__ckr(NULL, "C_GetInfo", rv);
        r = HSM_ERR_MODULE;
        goto out;
    }
    r = find_slot(h);
    if (r != HSM_OK)
        goto out;
    r = login(h);
    if (r != HSM_OK)
        goto out;
    h->generation = 1;
    h->recycle_after = cfg->recycle_after_objects;
    if (h->recycle_after == HSM_RECYCLE_AUTO)
        h->recycle_after = module_keeps_destroyed(&h->module_info) ? HSM_RECYCLE_SOFTHSM_OBJECTS
                                                                   : 0;

    r = hsm_session_acquire(h, &s);
    if (r != HSM_OK)
        goto out;
    r = hsm__probe(h, s);
    hsm_session_release(s);
    if (r != HSM_OK)
        goto out;
    *out = h;
    h = NULL;
    r = HSM_OK;
out:
    if (h != NULL)
        hsm_free(h, initialized);
    return r;
}

void
hsm_close(hsm *h)
{
    if (h != NULL)
        hsm_free(h, true);
}

void
hsm_token_info_get(hsm *h, hsm_token_info *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&h->lock);
    out->label = h->info_label;
    out->manufacturer = h->info_manufacturer;
    out->model = h->info_model;
    out->serial = h->info_serial;
    out->cryptoki_major = h->module_info.cryptokiVersion.major;
    out->cryptoki_minor = h->module_info.cryptokiVersion.minor;
    out->slot_id = h->slot;
    out->generation = h->generation;
    out->recycles = h->recycles;
    out->recycle_after_objects = h->recycle_after;
    out->temp_objects_destroyed = atomic_load(&h->temp_destroyed);
    pthread_mutex_unlock(&h->lock);
}

void
hsm__mark_down(struct hsm *h, uint64_t generation)
{
    pthread_mutex_lock(&h->lock);
    /* A failure seen in an older generation is already cured. */
    if (generation == h->generation && !h->down) {
        h->down = true;
        h->retry_at_ms = 0; /* first attempt at once; backoff after a failed one */
    }
    pthread_mutex_unlock(&h->lock);
}

/* Re-opens everything after a loss. Called with h->lock held; other threads
 * wait on the lock, which is what they should do while the token is away. */
static int
recover_locked(struct hsm *h)
{
    CK_C_INITIALIZE_ARGS init_args;
    CK_SLOT_ID slots[1];
    CK_ULONG num = 1;
    CK_RV rv;
    int r;

    /* Every old session handle is dead from here on; lent sessions notice by
     * their generation and are freed without C_CloseSession (a handle number
     * may be reused by a new session). */
    pool_drop_free(h);
    if (h->keeper != CK_INVALID_HANDLE) {
        h->p11->C_CloseAllSessions(h->slot);
        h->keeper = CK_INVALID_HANDLE;
    }
    rv = h->p11->C_GetSlotList(CK_TRUE, slots, &num);
    if (rv == CKR_CRYPTOKI_NOT_INITIALIZED) {
        memset(&init_args, 0, sizeof(init_args));
        init_args.flags = CKF_OS_LOCKING_OK;
        init_args.pReserved = h->init_args;
        rv = h->p11->C_Initialize(&init_args);
        if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
            r = hsm__ckr(NULL, "C_Initialize", rv);
            goto fail;
        }
    }
    r = find_slot(h);
    if (r != HSM_OK)
        goto fail;
    r = login(h);
    if (r != HSM_OK)
        goto fail;
    h->generation++;
    h->down = false;
    h->backoff_ms = h->backoff_initial_ms;
    return HSM_OK;
fail:
    h->retry_at_ms = hsm__now_ms() + h->backoff_ms;
    h->backoff_ms = h->backoff_ms * 2 > h->backoff_max_ms ? h->backoff_max_ms : h->backoff_ms * 2;
    return hsm__fail(HSM_ERR_UNAVAILABLE, "HSM unavailable, next attempt in %u ms (%s)",
                     (unsigned)(h->retry_at_ms - hsm__now_ms()), hsm_strerror(r));
}

CK_RV
hsm__destroy_obj(hsm_session *s, CK_OBJECT_HANDLE o)
{
    atomic_fetch_add(&s->h->temp_destroyed, 1);
    return s->h->p11->C_DestroyObject(s->handle, o);
}

/* Whether the module needs a recycle now. Called with h->lock held. */
static bool
recycle_due(const struct hsm *h)
{
    return h->recycle_after != 0 && !h->recycling && !h->down &&
           atomic_load(&h->temp_destroyed) - h->recycle_mark >= h->recycle_after;
}

/* The planned recycle (hsm_config.recycle_after_objects). Called with
 * h->lock held by the thread that found it due; every other acquirer waits
 * on h->cond meanwhile. It waits up to HSM_RECYCLE_DRAIN_MS for the lent
 * sessions to come back: operations in flight finish, none is cut off.
 * If they do not all come back (a thread can hold one while it waits for
 * another), it gives up until another quarter of the count has passed. Then
 * everything goes as after a lost token: the sessions closed, C_Finalize
 * (which is what frees the objects), and recover_locked re-initializes and
 * logs in; a failure there leaves the hsm down, retried with backoff.
 * HSM_OK or recover_locked's error. */
static int
recycle_locked(struct hsm *h)
{
    struct timespec until;
    int r;

    h->recycling = true;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += HSM_RECYCLE_DRAIN_MS / 1000u;
    until.tv_nsec += (long)(HSM_RECYCLE_DRAIN_MS % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (h->num_lent > 0) {
        if (pthread_cond_timedwait(&h->cond, &h->lock, &until) == ETIMEDOUT &&
            h->num_lent > 0) {
            /* Due again a quarter of the count on (at least one object
             * on: never at once, or every acquire would wait again). */
            h->recycle_mark = atomic_load(&h->temp_destroyed) - h->recycle_after +
                              (h->recycle_after >= 4 ? h->recycle_after / 4 : 1);
            h->recycling = false;
            pthread_cond_broadcast(&h->cond);
            return HSM_OK;
        }
    }
    pool_drop_free(h);
    if (h->keeper != CK_INVALID_HANDLE) {
        h->p11->C_CloseAllSessions(h->slot);
        h->keeper = CK_INVALID_HANDLE;
    }
    h->p11->C_Finalize(NULL);
    h->recycle_mark = atomic_load(&h->temp_destroyed);
    h->recycles++;
    h->down = true; /* until recover_locked has logged in again */
    h->retry_at_ms = 0;
    r = recover_locked(h);
    h->recycling = false;
    pthread_cond_broadcast(&h->cond);
    return r;
}

int
hsm_session_acquire(hsm *h, hsm_session **out)
{
    hsm_session *s = NULL;
    CK_SESSION_HANDLE handle;
    uint64_t generation;
    CK_RV rv;
    int r;

    if (h == NULL || out == NULL)
        return HSM_ERR_INVALID_ARG;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        if (h->recycling) {
            pthread_cond_wait(&h->cond, &h->lock);
            continue;
        }
        if (recycle_due(h)) {
            r = recycle_locked(h);
            if (r != HSM_OK) {
                pthread_mutex_unlock(&h->lock);
                return r;
            }
            continue;
        }
        if (h->down) {
            if (hsm__now_ms() < h->retry_at_ms) {
                pthread_mutex_unlock(&h->lock);
                return hsm__fail(HSM_ERR_UNAVAILABLE, "HSM unavailable (waiting to retry)");
            }
            r = recover_locked(h);
            if (r != HSM_OK) {
                pthread_mutex_unlock(&h->lock);
                return r;
            }
        }
        if (h->free_list != NULL) {
            s = h->free_list;
            h->free_list = s->next;
            s->next = NULL;
            break;
        }
        if (h->num_open < h->max_sessions) {
            h->num_open++;
            generation = h->generation;
            pthread_mutex_unlock(&h->lock);
            rv = h->p11->C_OpenSession(h->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
                                       &handle);
            pthread_mutex_lock(&h->lock);
            if (rv != CKR_OK || generation != h->generation) {
                h->num_open--;
                pthread_cond_signal(&h->cond);
                if (rv == CKR_OK)
                    continue; /* a recovery closed it meanwhile: try again */
                r = hsm__ckr(NULL, "C_OpenSession", rv);
                if (hsm__ckr_is_loss(rv) && generation == h->generation && !h->down) {
                    h->down = true;
                    h->retry_at_ms = 0;
                }
                pthread_mutex_unlock(&h->lock);
                return r;
            }
            s = calloc(1, sizeof(*s));
            if (s == NULL) {
                h->p11->C_CloseSession(handle);
                h->num_open--;
                pthread_mutex_unlock(&h->lock);
                return HSM_ERR_NO_MEMORY;
            }
            s->h = h;
            s->handle = handle;
            s->generation = generation;
            break;
        }
        pthread_cond_wait(&h->cond, &h->lock);
    }
    h->num_lent++;
    pthread_mutex_unlock(&h->lock);
    *out = s;
    return HSM_OK;
}

void
hsm_session_release(hsm_session *s)
{
    struct hsm *h;

    if (s == NULL)
        return;
    h = s->h;
    pthread_mutex_lock(&h->lock);
    h->num_lent--;
    if (s->generation != h->generation || s->broken) {
        /* Close only a session of the current generation that the token may
         * still know; an older handle died with C_CloseAllSessions. */
        if (s->generation == h->generation && !h->down)
            h->p11->C_CloseSession(s->handle);
        h->num_open--;
        free(s);
    } else {
        s->next = h->free_list;
        h->free_list = s;
    }
    /* A recycle waits for the last lent session on the same condition as
     * the acquirers: wake them all then, or it may sleep until its timeout. */
    if (h->recycling)
        pthread_cond_broadcast(&h->cond);
    else
        pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
}
