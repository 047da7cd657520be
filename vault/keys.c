/*
 * keys.c - finding the long-term keys and loading the DEKs at start.
 */
#include "vault/keys.h"

#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vault/be64.h"
#include "vault/log.h"

#define META_DEK_CURRENT "dek.current"
#define META_APPLIANCE_ID "appliance_id"
#define META_FPK_CURRENT "fpk.current"
#define META_FPK_REBUILD "fpk.rebuild"
#define META_NAME_MAX 32u

/* The two kinds of key kept wrapped under the KEK in meta: "<meta>.v<N>" =
 * u32 KEK version | wrapped key | KCV, "<meta>.current" = u32 version. */
struct wrapped_family {
    const char *meta;       /* "dek" */
    const char *label_base; /* KEYS_DEK_BASE: the session object is "<base>-v<N>" */
    hsm_key_kind kind;
    const char *what;       /* in messages */
    const char *ev_generate, *ev_rotate;
    uint32_t max;           /* the last version a store can hold */
};

static const struct wrapped_family fam_dek = {
    "dek", KEYS_DEK_BASE, HSM_KIND_DEK, "DEK", "dek_generate", "dek_rotate",
    KEYS_DEK_MAX};
/* Fingerprint keys since they are kept wrapped: "fpk.v<N>" beside
 * "fpk.current" and "fpk.rebuild" (below). A version without "fpk.v<N>" is
 * the token key of a store from before (keys_fpk_label). */
static const struct wrapped_family fam_fpk = {
    "fpk", KEYS_FPK_WRAPPED_BASE, HSM_KIND_HMAC, "fingerprint key", "fpk_generate", "fpk_rotate",
    UINT32_MAX - 1};
static const struct wrapped_family fam_stk = {
    "stk", KEYS_STK_BASE, HSM_KIND_HMAC, "session tag key", "stk_generate", "stk_rotate",
    KEYS_STK_MAX};

int
vault_hsm_status(int hsm_err)
{
    return hsm_err == HSM_ERR_UNAVAILABLE ? -API_STATUS_HSM_UNAVAILABLE : -API_STATUS_INTERNAL;
}

uint32_t
keys_kek_current(const struct vault_keys *k)
{
    return __atomic_load_n(&k->kek_version, __ATOMIC_ACQUIRE);
}

uint32_t
keys_dek_current(const struct vault_keys *k)
{
    return __atomic_load_n(&k->dek_current, __ATOMIC_ACQUIRE);
}

hsm_key *
keys_dek(const struct vault_keys *k, uint32_t version)
{
    return version >= 1 && version <= KEYS_DEK_MAX ? k->dek[version] : NULL;
}

uint32_t
keys_stk_current(const struct vault_keys *k)
{
    return __atomic_load_n(&k->stk_current, __ATOMIC_ACQUIRE);
}

hsm_key *
keys_stk(const struct vault_keys *k, uint32_t version)
{
    if (version == 0)
        return k->smk;
    return version <= KEYS_STK_MAX ? k->stk[version] : NULL;
}

static void
be32_put(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static uint32_t
be32_get(const uint8_t in[4])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | in[3];
}

/* The first start of a store: DEK 1 made in the HSM and kept wrapped, and the
 * appliance id, committed with their audit entry. */
struct bootstrap_job {
    struct store_write w;
    const struct vault_audit *audit;
    uint8_t dek_meta[KEYS_DEK_META_LEN];
    uint8_t fpk_meta[KEYS_WRAPPED_META_LEN];
    char appliance_id[KEYS_APPLIANCE_ID_LEN + 1];
};

static int
bootstrap_apply(struct store_write *w, struct store_txn *t)
{
    struct bootstrap_job *j = (struct bootstrap_job *)w;
    struct audit_event ev = {.event = "dek_generate", .client = "tokenvaultd",
                             .status = API_STATUS_OK, .detail = "vault-dek-v1"};
    struct audit_event fev = {.event = "fpk_generate", .client = "tokenvaultd",
                              .status = API_STATUS_OK, .detail = KEYS_FPK_WRAPPED_BASE "-v1"};
    uint8_t cur[4];
    int r;

    be32_put(cur, 1);
    /* STORE_PUT_NEW: a concurrent start on the same store loses, never
     * replaces a DEK that records may already use. A new store has no card
     * yet, so its first fingerprint key is a wrapped one from the start. */
    if ((r = audit_append(j->audit, t, &ev)) != 0 || (r = audit_append(j->audit, t, &fev)) != 0 ||
        (r = store_put(t, STORE_DB_META, "fpk.v1", 6, j->fpk_meta, sizeof(j->fpk_meta),
                       STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_META, META_FPK_CURRENT, sizeof(META_FPK_CURRENT) - 1, cur,
                       sizeof(cur), STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_META, "dek.v1", 6, j->dek_meta, sizeof(j->dek_meta),
                       STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_META, META_DEK_CURRENT, sizeof(META_DEK_CURRENT) - 1, cur,
                       sizeof(cur), STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_META, META_APPLIANCE_ID, sizeof(META_APPLIANCE_ID) - 1,
                       j->appliance_id, strlen(j->appliance_id), STORE_PUT_NEW)) != 0)
        return r;
    return 0;
}

static void
bootstrap_done(struct store_write *w, int result)
{
}

static int
bootstrap(hsm_session *hs, struct vault_keys *k, struct vault_store *s,
          struct vault_audit *a, char *err, size_t err_len)
{
    struct bootstrap_job j = {.w = {.apply = bootstrap_apply, .done = bootstrap_done}, .audit = a};
    uint8_t rnd[KEYS_APPLIANCE_ID_LEN / 2];
    int e;

    be32_put(j.dek_meta, k->kek_version);
    be32_put(j.fpk_meta, k->kek_version);
    if ((e = hsm_dek_generate(hs, k->kek, j.dek_meta + 4, j.dek_meta + 4 + HSM_WRAPPED_DEK_LEN)) != 0 ||
        (e = hsm_wrapped_generate(hs, k->kek, HSM_KIND_HMAC, j.fpk_meta + 4,
                                  j.fpk_meta + 4 + HSM_WRAPPED_KEY_LEN)) != 0 ||
        (e = hsm_random(hs, rnd, sizeof(rnd))) != 0) {
        snprintf(err, err_len, "DEK and FPK generation: %s (%s)", hsm_strerror(e),
                 hsm_last_detail());
        return vault_hsm_status(e);
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(j.appliance_id + 2 * i, 3, "%02x", rnd[i]);
    if ((e = store_write_wait(s, &j.w)) != 0) {
        snprintf(err, err_len, "storing the first DEK: %s", api_status_name((unsigned)-e));
        return e;
    }
    vlog_msg(VAULT_LOG_INFO, "dek_generate", "label", "vault-dek-v1");
    vlog_msg(VAULT_LOG_INFO, "fpk_generate", "label", KEYS_FPK_WRAPPED_BASE "-v1");
    return 0;
}

/* Reads the current DEK version and the appliance id; NOT_FOUND on a new store. */
static int
read_meta(struct vault_store *s, struct vault_keys *k)
{
    struct store_txn t;
    MDB_val v;
    int r;

    if ((r = store_read_begin(s, &t)) != 0)
        return r;
    r = store_get(&t, STORE_DB_META, META_DEK_CURRENT, sizeof(META_DEK_CURRENT) - 1, &v);
    if (r == 0 && v.mv_size != 4)
        r = -API_STATUS_INTERNAL;
    if (r == 0)
        k->dek_current = be32_get(v.mv_data);
    if (r == 0 && (r = store_get(&t, STORE_DB_META, META_APPLIANCE_ID,
                                 sizeof(META_APPLIANCE_ID) - 1, &v)) == 0) {
        if (v.mv_size != KEYS_APPLIANCE_ID_LEN)
            r = -API_STATUS_INTERNAL;
        else
            memcpy(k->appliance_id, v.mv_data, KEYS_APPLIANCE_ID_LEN);
    }
    store_read_end(&t);
    return r;
}

/* Unwraps version |version| of |f| from meta under the KEK version it names,
 * into *out. A retired version (below |current|) whose KEK is no longer in
 * the token is left unloaded (*out NULL) with a warning: OPERATIONS.md lets
 * the officers destroy a KEK once nothing in use is wrapped under it. */
static int
load_wrapped(hsm_session *hs, const struct wrapped_family *f, struct vault_store *s,
             uint32_t version, uint32_t current, hsm_key **out, char *err, size_t err_len)
{
    char name[META_NAME_MAX], label[HSM_LABEL_MAX + 1], kek_label[HSM_LABEL_MAX + 1];
    uint8_t meta[KEYS_WRAPPED_META_LEN];
    struct store_txn t;
    hsm_key *kek = NULL;
    MDB_val v;
    int r, e;

    snprintf(name, sizeof(name), "%s.v%u", f->meta, version);
    if ((r = store_read_begin(s, &t)) != 0)
        return r;
    r = store_get(&t, STORE_DB_META, name, strlen(name), &v);
    if (r == 0 && v.mv_size != sizeof(meta))
        r = -API_STATUS_INTERNAL;
    if (r == 0)
        memcpy(meta, v.mv_data, sizeof(meta));
    store_read_end(&t);
    if (r != 0) {
        snprintf(err, err_len, "store meta %s: %s", name, api_status_name((unsigned)-r));
        return r;
    }
    if (hsm_key_versioned_label(kek_label, sizeof(kek_label), KEYS_KEK_BASE,
                                be32_get(meta)) != 0 ||
        hsm_key_versioned_label(label, sizeof(label), f->label_base, version) != 0) {
        snprintf(err, err_len, "%s %u: bad KEK version in meta", f->what, version);
        return -API_STATUS_INTERNAL;
    }
    e = hsm_key_find(hs, kek_label, &kek);
    if (e == HSM_ERR_KEY_NOT_FOUND && version < current) {
        struct vlog_line l;

        if (vlog_begin(&l, VAULT_LOG_WARN, "key_unavailable")) {
            vlog_str(&l, "label", label);
            vlog_str(&l, "kek", kek_label);
            vlog_str(&l, "reason", "its KEK is no longer in the token; the version is retired");
            vlog_end(&l);
        }
        *out = NULL;
        return 0;
    }
    if (e != 0 ||
        (e = hsm_wrapped_load(hs, kek, f->kind, label, meta + 4, HSM_WRAPPED_KEY_LEN,
                              meta + 4 + HSM_WRAPPED_KEY_LEN, out)) != 0) {
        snprintf(err, err_len, "%s %u (under %s): %s (%s)", f->what, version, kek_label,
                 hsm_strerror(e), hsm_last_detail());
        return vault_hsm_status(e);
    }
    return 0;
}

/* Reads a u32 meta value; |dflt| when absent. */
static int
meta_u32(struct vault_store *s, const char *name, uint32_t dflt, uint32_t *out, bool *out_present)
{
    struct store_txn t;
    MDB_val v;
    int r;

    if ((r = store_read_begin(s, &t)) != 0)
        return r;
    r = store_get(&t, STORE_DB_META, name, strlen(name), &v);
    *out_present = r == 0;
    if (r == 0 && v.mv_size != 4)
        r = -API_STATUS_INTERNAL;
    if (r == 0)
        *out = be32_get(v.mv_data);
    else if (r == -API_STATUS_NOT_FOUND)
        *out = dflt, r = 0;
    store_read_end(&t);
    return r;
}

/* Whether FPK |version| is kept wrapped ("fpk.v<N>" in meta), read in |t|. */
static bool
fpk_wrapped_in(struct store_txn *t, uint32_t version)
{
    char name[META_NAME_MAX];
    MDB_val v;

    snprintf(name, sizeof(name), "fpk.v%u", version);
    return store_get(t, STORE_DB_META, name, strlen(name), &v) == 0;
}

int
keys_fpk_label(char *out, size_t cap, uint32_t version, bool wrapped)
{
    if (wrapped)
        return hsm_key_versioned_label(out, cap, KEYS_FPK_WRAPPED_BASE, version) == 0 ? 0 : -1;
    if (version == 1)
        return snprintf(out, cap, "%s", KEYS_FPK_LABEL) < (int)cap ? 0 : -1;
    return hsm_key_versioned_label(out, cap, KEYS_FPK_LABEL, version) == 0 ? 0 : -1;
}

/* FPK |version|: unwrapped from meta when the store keeps it wrapped, else
 * the token key of a store from before. */
static int
load_fpk_version(hsm_session *hs, struct vault_store *s, uint32_t version, uint32_t current,
                 hsm_key **out, char *err, size_t err_len)
{
    char label[HSM_LABEL_MAX + 1];
    struct store_txn t;
    bool wrapped;
    int r, e = HSM_ERR_INVALID_ARG;

    if ((r = store_read_begin(s, &t)) != 0)
        return r;
    wrapped = fpk_wrapped_in(&t, version);
    store_read_end(&t);
    if (wrapped)
        return load_wrapped(hs, &fam_fpk, s, version, current, out, err, err_len);
    label[0] = '\0';
    if (keys_fpk_label(label, sizeof(label), version, false) != 0 ||
        (e = hsm_key_find(hs, label, out)) != 0) {
        snprintf(err, err_len, "fingerprint key %u %s: %s (%s)", version, label, hsm_strerror(e),
                 hsm_last_detail());
        return e == HSM_ERR_KEY_NOT_FOUND ? -API_STATUS_INTERNAL : vault_hsm_status(e);
    }
    return 0;
}

/* The current FPK, and the previous one while the index is rebuilt. */
static int
load_fpk(hsm_session *hs, struct vault_keys *k, struct vault_store *s, char *err, size_t err_len)
{
    uint32_t cur = 1, prev = 0;
    hsm_key *key = NULL, *old = NULL;
    bool present = false, rebuilding = false;
    int r;

    if ((r = meta_u32(s, META_FPK_CURRENT, 1, &cur, &present)) != 0 ||
        (r = meta_u32(s, META_FPK_REBUILD, 0, &prev, &rebuilding)) != 0) {
        snprintf(err, err_len, "store meta fpk: %s", api_status_name((unsigned)-r));
        return r;
    }
    if ((r = load_fpk_version(hs, s, cur, cur, &key, err, err_len)) != 0 ||
        (rebuilding && (r = load_fpk_version(hs, s, prev, cur, &old, err, err_len)) != 0))
        return r;
    /* A retired version whose KEK is gone loads as NULL; the one before
     * the current is not retired until the rebuild ends, and the rebuild
     * runs only while it is loaded. */
    if (rebuilding && old == NULL) {
        snprintf(err, err_len, "fingerprint key %u is needed until the index rebuild ends, and "
                 "its KEK is not in the token", prev);
        return -API_STATUS_INTERNAL;
    }
    __atomic_store_n(&k->fpk_prev, rebuilding ? old : NULL, __ATOMIC_RELEASE);
    __atomic_store_n(&k->fpk_version, cur, __ATOMIC_RELEASE);
    __atomic_store_n(&k->fpk, key, __ATOMIC_RELEASE);
    return 0;
}

hsm_key *
keys_fpk(const struct vault_keys *k, uint32_t *out_version, hsm_key **out_prev)
{
    hsm_key *key = __atomic_load_n(&k->fpk, __ATOMIC_ACQUIRE);

    if (out_version != NULL)
        *out_version = __atomic_load_n(&k->fpk_version, __ATOMIC_ACQUIRE);
    if (out_prev != NULL)
        *out_prev = __atomic_load_n(&k->fpk_prev, __ATOMIC_ACQUIRE);
    return key;
}

void
keys_fpk_retire(struct vault_keys *k)
{
    __atomic_store_n(&k->fpk_prev, NULL, __ATOMIC_RELEASE);
}

int
keys_fpk_rebuilt(const struct vault_audit *a, struct store_txn *t, uint32_t version)
{
    char label[HSM_LABEL_MAX + 1];
    struct audit_event ev = {.event = "fpk_rebuilt", .client = "tokenvaultd",
                             .status = API_STATUS_OK};
    int r;

    if (keys_fpk_label(label, sizeof(label), version, fpk_wrapped_in(t, version)) != 0)
        return -API_STATUS_INTERNAL;
    ev.detail = label;
    r = store_del(t, STORE_DB_META, META_FPK_REBUILD, sizeof(META_FPK_REBUILD) - 1, NULL, 0);
    if (r != 0 && r != -API_STATUS_NOT_FOUND)
        return r;
    return audit_append(a, t, &ev);
}

static int wrapped_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a,
                          const struct wrapped_family *f, const char *who, uint32_t *out_version,
                          char *err, size_t err_len);

/* The STK versions beyond those |k| holds: version 1 made first when the
 * store has none (a new store, or one from before STKs), each unwrapped
 * before the current version moves, so a worker that reads the new version
 * finds its key. */
static int
load_stks(hsm *h, hsm_session *hs, struct vault_keys *k, struct vault_store *s,
          const struct vault_audit *a, char *err, size_t err_len)
{
    uint32_t have = keys_stk_current(k), cur = 0, made = 0;
    bool present = false;
    int r;

    if ((r = meta_u32(s, "stk.current", 0, &cur, &present)) != 0) {
        snprintf(err, err_len, "store meta stk.current: %s", api_status_name((unsigned)-r));
        return r;
    }
    if (cur == 0 && a == NULL) {
        snprintf(err, err_len, "store meta: no stk.current");
        return -API_STATUS_INTERNAL;
    }
    if (cur == 0) {
        /* CONFLICT: a ceremony made it in the same instant; read it again. */
        r = wrapped_rotate(h, s, a, &fam_stk, "tokenvaultd", &made, err, err_len);
        if (r != 0 && r != -API_STATUS_CONFLICT)
            return r;
        if (r == 0)
            vlog_msg(VAULT_LOG_INFO, "stk_generate", "label", "vault-stk-v1");
        if ((r = meta_u32(s, "stk.current", 0, &cur, &present)) != 0)
            return r;
    }
    if (cur < 1 || cur > KEYS_STK_MAX) {
        snprintf(err, err_len, "store meta: STK version %u out of range", cur);
        return -API_STATUS_INTERNAL;
    }
    for (uint32_t v = have + 1; v <= cur; v++)
        if ((r = load_wrapped(hs, &fam_stk, s, v, cur, &k->stk[v], err, err_len)) != 0)
            return r;
    if (cur > have)
        __atomic_store_n(&k->stk_current, cur, __ATOMIC_RELEASE);
    return 0;
}

int
keys_load(struct vault_keys *out, hsm *h, struct vault_store *s, struct vault_audit *a,
          char *err, size_t err_len)
{
    hsm_session *hs = NULL;
    unsigned kek_version = 0;
    int r, e;

    memset(out, 0, sizeof(*out));
    if ((e = hsm_session_acquire(h, &hs)) != 0) {
        snprintf(err, err_len, "HSM session: %s (%s)", hsm_strerror(e), hsm_last_detail());
        return vault_hsm_status(e);
    }
    if ((e = hsm_key_find_latest(hs, KEYS_KEK_BASE, &out->kek, &kek_version)) != 0 ||
        (e = hsm_key_find(hs, KEYS_AUDIT_LABEL, &out->aud)) != 0 ||
        (e = hsm_key_find(hs, KEYS_SESSION_MAC_LABEL, &out->smk)) != 0) {
        snprintf(err, err_len,
                 "the vault keys are not all in the token: %s (%s); run tokenvault-ceremony init",
                 hsm_strerror(e), hsm_last_detail());
        r = e == HSM_ERR_KEY_NOT_FOUND ? -API_STATUS_INTERNAL : vault_hsm_status(e);
        goto out;
    }
    out->kek_version = kek_version;
    a->sign_key = out->aud;
    r = read_meta(s, out);
    if (r == -API_STATUS_NOT_FOUND) {
        if ((r = bootstrap(hs, out, s, a, err, err_len)) != 0 || (r = read_meta(s, out)) != 0)
            goto out;
    } else if (r != 0) {
        snprintf(err, err_len, "store meta: %s", api_status_name((unsigned)-r));
        goto out;
    }
    if ((r = load_fpk(hs, out, s, err, err_len)) != 0)
        goto out;
    if (out->dek_current < 1 || out->dek_current > KEYS_DEK_MAX) {
        snprintf(err, err_len, "store meta: DEK version %u out of range", out->dek_current);
        r = -API_STATUS_INTERNAL;
        goto out;
    }
    for (uint32_t v = 1; v <= out->dek_current; v++)
        if ((r = load_wrapped(hs, &fam_dek, s, v, out->dek_current, &out->dek[v], err,
                              err_len)) != 0)
            goto out;
    r = load_stks(h, hs, out, s, a, err, err_len);
out:
    hsm_session_release(hs);
    return r;
}

/* ---- DEK usage: records sealed and age, for automatic rotation --------------- */

/* meta "dek.v<N>.usage" = u64 records sealed | u64 created (unix ms). */
#define USAGE_LEN 16u

int
keys_dek_usage_add(struct store_txn *t, uint32_t version, uint64_t delta, uint64_t now_ms,
                   uint64_t *out_sealed, uint64_t *out_created_ms)
{
    char name[META_NAME_MAX];
    uint8_t val[USAGE_LEN];
    uint64_t sealed = 0, created = now_ms;
    MDB_val v;
    int r;

    snprintf(name, sizeof(name), "dek.v%u.usage", version);
    r = store_get(t, STORE_DB_META, name, strlen(name), &v);
    if (r == 0 && v.mv_size == USAGE_LEN) {
        sealed = vault_get_be64(v.mv_data);
        created = vault_get_be64((const uint8_t *)v.mv_data + 8);
    } else if (r != 0 && r != -API_STATUS_NOT_FOUND) {
        return r;
    }
    /* A store from before usage was kept: its DEK is counted from now. */
    sealed = delta > UINT64_MAX - sealed ? UINT64_MAX : sealed + delta;
    vault_put_be64(val, sealed);
    vault_put_be64(val + 8, created);
    if ((r = store_put(t, STORE_DB_META, name, strlen(name), val, sizeof(val), 0)) != 0)
        return r;
    *out_sealed = sealed;
    *out_created_ms = created;
    return 0;
}

/* ---- rotation of the wrapped keys ------------------------------------------- */

struct rotate_job {
    struct store_write w;
    const struct vault_audit *audit;
    const struct wrapped_family *f;
    const char *who;
    uint32_t from;                          /* <meta>.current when the key was made; 0: none */
    uint8_t meta[KEYS_WRAPPED_META_LEN];
};

static int
rotate_apply(struct store_write *w, struct store_txn *t)
{
    struct rotate_job *j = (struct rotate_job *)w;
    const struct wrapped_family *f = j->f;
    char name[META_NAME_MAX], cur_name[META_NAME_MAX], label[HSM_LABEL_MAX + 1];
    struct audit_event ev = {.event = j->from == 0 ? f->ev_generate : f->ev_rotate,
                             .client = j->who, .status = API_STATUS_OK};
    uint8_t cur[4];
    MDB_val v;
    int r;

    /* Two rotations at once: the second finds <meta>.current moved and loses. */
    snprintf(cur_name, sizeof(cur_name), "%s.current", f->meta);
    r = store_get(t, STORE_DB_META, cur_name, strlen(cur_name), &v);
    if (r != 0 && (r != -API_STATUS_NOT_FOUND || j->from != 0))
        return r == -API_STATUS_NOT_FOUND ? -API_STATUS_CONFLICT : r;
    if (r == 0 && (v.mv_size != 4 || be32_get(v.mv_data) != j->from))
        return -API_STATUS_CONFLICT;
    be32_put(cur, j->from + 1);
    snprintf(name, sizeof(name), "%s.v%u", f->meta, j->from + 1);
    if (hsm_key_versioned_label(label, sizeof(label), f->label_base, j->from + 1) != 0)
        return -API_STATUS_INTERNAL;
    ev.detail = label;
    if ((r = audit_append(j->audit, t, &ev)) != 0 ||
        (r = store_put(t, STORE_DB_META, name, strlen(name), j->meta, sizeof(j->meta),
                       STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_META, cur_name, strlen(cur_name), cur, sizeof(cur), 0)) != 0)
        return r;
    if (f != &fam_dek)
        return 0;
    /* A DEK's age counts from now, its records from zero. */
    {
        uint64_t sealed, created;

        return keys_dek_usage_add(t, j->from + 1, 0, audit_now_ms(), &sealed, &created);
    }
}

static void
rotate_done(struct store_write *w, int result)
{
}

/* Version current+1 of |f| made in the HSM under the newest KEK and made
 * current with its audit entry (a store without the family gets version 1,
 * audited as f->ev_generate). */
static int
wrapped_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a,
               const struct wrapped_family *f, const char *who, uint32_t *out_version,
               char *err, size_t err_len)
{
    struct rotate_job j = {.w = {.apply = rotate_apply, .done = rotate_done}, .audit = a,
                           .f = f, .who = who};
    char cur_name[META_NAME_MAX];
    hsm_session *hs = NULL;
    hsm_key *kek = NULL;
    unsigned kek_version = 0;
    bool present = false;
    int r, e;

    snprintf(cur_name, sizeof(cur_name), "%s.current", f->meta);
    if ((r = meta_u32(s, cur_name, 0, &j.from, &present)) != 0) {
        snprintf(err, err_len, "store meta %s: %s", cur_name, api_status_name((unsigned)-r));
        return r;
    }
    /* DEK 1 comes with the appliance id, from the service's first start. */
    if (f == &fam_dek && j.from == 0) {
        snprintf(err, err_len, "the store has no DEK yet: start tokenvaultd on it once");
        return -API_STATUS_NOT_FOUND;
    }
    if (j.from >= f->max) {
        snprintf(err, err_len, "%s version %u is the last this store can hold", f->what, j.from);
        return -API_STATUS_LIMIT_EXCEEDED;
    }
    if ((e = hsm_session_acquire(h, &hs)) != 0 ||
        (e = hsm_key_find_latest(hs, KEYS_KEK_BASE, &kek, &kek_version)) != 0 ||
        (e = hsm_wrapped_generate(hs, kek, f->kind, j.meta + 4,
                                  j.meta + 4 + HSM_WRAPPED_KEY_LEN)) != 0) {
        snprintf(err, err_len, "new %s: %s (%s)", f->what, hsm_strerror(e), hsm_last_detail());
        hsm_session_release(hs);
        return vault_hsm_status(e);
    }
    hsm_session_release(hs);
    be32_put(j.meta, kek_version);
    r = store_write_wait(s, &j.w);
    OPENSSL_cleanse(j.meta, sizeof(j.meta));
    if (r != 0) {
        snprintf(err, err_len, "storing %s %u: %s", f->what, j.from + 1,
                 api_status_name((unsigned)-r));
        return r;
    }
    *out_version = j.from + 1;
    return 0;
}

int
keys_dek_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a, const char *who,
                uint32_t *out_version, char *err, size_t err_len)
{
    return wrapped_rotate(h, s, a, &fam_dek, who, out_version, err, err_len);
}

int
keys_stk_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a, const char *who,
                uint32_t *out_version, char *err, size_t err_len)
{
    return wrapped_rotate(h, s, a, &fam_stk, who, out_version, err, err_len);
}

int
keys_refresh(struct vault_keys *k, hsm *h, struct vault_store *s, uint32_t *out_loaded, char *err,
             size_t err_len)
{
    struct vault_keys now;
    hsm_session *hs = NULL;
    uint32_t have = keys_dek_current(k);
    int r, e;

    *out_loaded = 0;
    memset(&now, 0, sizeof(now));
    if ((r = read_meta(s, &now)) != 0) {
        snprintf(err, err_len, "store meta: %s", api_status_name((unsigned)-r));
        return r;
    }
    if (now.dek_current > KEYS_DEK_MAX) {
        snprintf(err, err_len, "store meta: DEK version %u out of range", now.dek_current);
        return -API_STATUS_INTERNAL;
    }
    if ((e = hsm_session_acquire(h, &hs)) != 0) {
        snprintf(err, err_len, "HSM session: %s (%s)", hsm_strerror(e), hsm_last_detail());
        return vault_hsm_status(e);
    }
    /* A rotated fingerprint key (and its rebuild marker), and a rotated
     * STK, first. Each new DEK is unwrapped before the current version
     * moves, so a reader that sees the new version finds its key. A KEK
     * rotation came with them: note the newest KEK version. */
    if ((r = load_fpk(hs, k, s, err, err_len)) != 0 ||
        (r = load_stks(h, hs, k, s, NULL, err, err_len)) != 0)
        goto out;
    for (uint32_t v = have + 1; v <= now.dek_current; v++)
        if ((r = load_wrapped(hs, &fam_dek, s, v, now.dek_current, &k->dek[v], err,
                              err_len)) != 0)
            goto out;
    {
        hsm_key *kek = NULL;
        unsigned kek_version = 0;

        if (hsm_key_find_latest(hs, KEYS_KEK_BASE, &kek, &kek_version) == 0)
            __atomic_store_n(&k->kek_version, kek_version, __ATOMIC_RELEASE);
    }
    if (now.dek_current > have) {
        __atomic_store_n(&k->dek_current, now.dek_current, __ATOMIC_RELEASE);
        *out_loaded = now.dek_current - have;
    }
out:
    hsm_session_release(hs);
    return r;
}

int
keys_kek_rotate(hsm_session *hs, uint32_t *out_version, char *err, size_t err_len)
{
    char label[HSM_LABEL_MAX + 1];
    hsm_key *kek = NULL;
    unsigned version = 0;
    int e;

    if ((e = hsm_key_find_latest(hs, KEYS_KEK_BASE, &kek, &version)) != 0 ||
        (e = hsm_key_versioned_label(label, sizeof(label), KEYS_KEK_BASE, version + 1)) != 0 ||
        (e = hsm_key_generate(hs, HSM_KIND_KEK, label, &kek)) != 0) {
        snprintf(err, err_len, "new KEK: %s (%s)", hsm_strerror(e), hsm_last_detail());
        return vault_hsm_status(e);
    }
    *out_version = version + 1;
    return 0;
}

/* ---- FPK rotation ------------------------------------------------------------ */

struct fpk_job {
    struct store_write w;
    const struct vault_audit *audit;
    const char *who;
    uint32_t from;
    uint8_t meta[KEYS_WRAPPED_META_LEN]; /* the new version, wrapped */
};

static int
fpk_apply(struct store_write *w, struct store_txn *t)
{
    struct fpk_job *j = (struct fpk_job *)w;
    char label[HSM_LABEL_MAX + 1], name[META_NAME_MAX];
    struct audit_event ev = {.event = "fpk_rotate", .client = j->who, .status = API_STATUS_OK};
    uint8_t cur[4], from[4];
    MDB_val v;
    int r;

    r = store_get(t, STORE_DB_META, META_FPK_REBUILD, sizeof(META_FPK_REBUILD) - 1, &v);
    if (r == 0)
        return -API_STATUS_CONFLICT; /* the last rebuild has not finished */
    if (r != -API_STATUS_NOT_FOUND)
        return r;
    r = store_get(t, STORE_DB_META, META_FPK_CURRENT, sizeof(META_FPK_CURRENT) - 1, &v);
    if (r == 0 && (v.mv_size != 4 || be32_get(v.mv_data) != j->from))
        return -API_STATUS_CONFLICT;
    if (r != 0 && (r != -API_STATUS_NOT_FOUND || j->from != 1))
        return r != 0 && r != -API_STATUS_NOT_FOUND ? r : -API_STATUS_CONFLICT;
    if (keys_fpk_label(label, sizeof(label), j->from + 1, true) != 0)
        return -API_STATUS_INTERNAL;
    ev.detail = label;
    be32_put(cur, j->from + 1);
    be32_put(from, j->from);
    snprintf(name, sizeof(name), "fpk.v%u", j->from + 1);
    if ((r = audit_append(j->audit, t, &ev)) != 0 ||
        (r = store_put(t, STORE_DB_META, name, strlen(name), j->meta, sizeof(j->meta),
                       STORE_PUT_NEW)) != 0 ||
        (r = store_put(t, STORE_DB_META, META_FPK_CURRENT, sizeof(META_FPK_CURRENT) - 1, cur,
                       sizeof(cur), 0)) != 0 ||
        (r = store_put(t, STORE_DB_META, META_FPK_REBUILD, sizeof(META_FPK_REBUILD) - 1, from,
                       sizeof(from), STORE_PUT_NEW)) != 0)
        return r;
    return 0;
}

static void
fpk_done(struct store_write *w, int result)
{
}

int
keys_fpk_rotate(hsm *h, struct vault_store *s, const struct vault_audit *a, const char *who,
                uint32_t *out_version, char *err, size_t err_len)
{
    struct fpk_job j = {.w = {.apply = fpk_apply, .done = fpk_done}, .audit = a, .who = who};
    hsm_session *hs = NULL;
    hsm_key *kek = NULL;
    unsigned kek_version = 0;
    uint32_t cur = 1, prev = 0;
    bool present = false, rebuilding = false;
    int r, e;

    if ((r = meta_u32(s, META_FPK_CURRENT, 1, &cur, &present)) != 0 ||
        (r = meta_u32(s, META_FPK_REBUILD, 0, &prev, &rebuilding)) != 0) {
        snprintf(err, err_len, "store meta: %s", api_status_name((unsigned)-r));
        return r;
    }
    if (rebuilding) {
        snprintf(err, err_len, "the fingerprint index is still being rebuilt for FPK %u; wait for "
                 "event=fpk_rebuilt", cur);
        return -API_STATUS_CONFLICT;
    }
    if (cur >= fam_fpk.max) {
        snprintf(err, err_len, "FPK version %u is the last this store can hold", cur);
        return -API_STATUS_LIMIT_EXCEEDED;
    }
    j.from = cur;
    /* Wrapped under the newest KEK and used as a session object, as the
     * DEKs are: a token key would be read from its file by SoftHSM before
     * every fingerprint (BENCHMARKS.md). */
    if ((e = hsm_session_acquire(h, &hs)) != 0 ||
        (e = hsm_key_find_latest(hs, KEYS_KEK_BASE, &kek, &kek_version)) != 0 ||
        (e = hsm_wrapped_generate(hs, kek, HSM_KIND_HMAC, j.meta + 4,
                                  j.meta + 4 + HSM_WRAPPED_KEY_LEN)) != 0) {
        snprintf(err, err_len, "new fingerprint key: %s (%s)", hsm_strerror(e), hsm_last_detail());
        hsm_session_release(hs);
        return vault_hsm_status(e);
    }
    hsm_session_release(hs);
    be32_put(j.meta, kek_version);
    r = store_write_wait(s, &j.w);
    OPENSSL_cleanse(j.meta, sizeof(j.meta));
    if (r != 0) {
        snprintf(err, err_len, "making FPK %u current: %s", cur + 1, api_status_name((unsigned)-r));
        return r;
    }
    *out_version = cur + 1;
    return 0;
}
