/*
 * service.c - PING, STATUS and KEY_STATUS. PING is answered on the loop by the
 * dispatcher; STATUS asks the store and the HSM, so it runs on a worker.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vault/ops/ops.h"

/* The wire name of a probe's path (api/proto.h, KDF_PATH). */
static uint8_t
kdf_path(hsm_path p)
{
    switch (p) {
    case HSM_PATH_IN_TOKEN: return API_KDF_PATH_IN_TOKEN;
    case HSM_PATH_DIGEST_KEY: return API_KDF_PATH_DIGEST_KEY;
    case HSM_PATH_HOST_DECODE: return API_KDF_PATH_HOST_DECODE;
    case HSM_PATH_NONE: break;
    }
    return API_KDF_PATH_UNAVAILABLE;
}

void
ops_status(struct op_job *j)
{
    struct vault_service *svc = j->svc;
    struct api_status_resp resp;
    struct store_stats st;
    hsm_session *s = NULL;

    memset(&resp, 0, sizeof(resp));
    /* Unsealed (STATUS while sealed is answered on the loop, ops/officer.c):
     * a sealed-start service reports the M shares it took. */
    resp.sealed = false;
    if (svc->seal.set.threshold != 0) /* set at open; never changes */
        resp.shares_needed = resp.shares_received = svc->seal.set.threshold;
    /* The HSM is ready when a session can be had now: the pool re-opens a
     * lost token, within its backoff. */
    resp.hsm_ready = hsm_session_acquire(svc->hsm, &s) == 0;
    hsm_session_release(s);
    snprintf(resp.version, sizeof(resp.version), "%s", VAULT_VERSION_TEXT);
    resp.uptime = (uint64_t)time(NULL) - svc->started_at;
    resp.has_appliance_id = svc->keys.appliance_id[0] != '\0';
    memcpy(resp.appliance_id, svc->keys.appliance_id, sizeof(svc->keys.appliance_id));
    if (store_stats_get(svc->store, &st) == 0) {
        resp.has_record_count = resp.has_store_used = resp.has_store_size = true;
        resp.record_count = st.entries[STORE_DB_CARDS];
        resp.store_used = st.map_used;
        resp.store_size = st.map_size;
    }
    resp.has_dek_version = resp.has_reencrypt_pending = resp.has_reencrypted = true;
    resp.dek_version = keys_dek_current(&svc->keys);
    resp.reencrypted = atomic_load(&svc->reencrypt.moved);
    resp.reencrypt_pending = ops_reencrypt_pending(svc);
    resp.has_reencrypt_remaining = resp.has_reencrypt_total =
        ops_reencrypt_progress(svc, &resp.reencrypt_remaining, &resp.reencrypt_total);
    {
        const hsm_probe *p = hsm_probe_get(svc->hsm);

        resp.has_apple_kdf_path = resp.has_google_kdf_path = resp.has_oaep256_path = true;
        resp.apple_kdf_path = kdf_path(p->apple_ec_kdf);
        resp.google_kdf_path = kdf_path(p->google_hkdf);
        resp.oaep256_path = kdf_path(p->rsa_oaep_sha256);
    }
    op_reply(j, &resp);
}

/* ---- KEY_STATUS ---------------------------------------------------------------- */

/* At most API_LIST_ITEMS_MAX keys are listed: KEK and DEK versions (the
 * newest first when there are more), the fingerprint keys, the session tag
 * keys, the session-MAC and audit keys. */
struct key_list {
    hsm_session *s;
    struct api_key_item *items;
    size_t n;
};

static void
add_key(struct key_list *l, hsm_key *key, uint8_t klass, uint32_t version, bool current)
{
    struct api_key_item *it;
    hsm_key_info info;

    if (key == NULL || l->n == API_LIST_ITEMS_MAX || hsm_key_info_get(l->s, key, &info) != 0)
        return;
    it = &l->items[l->n++];
    snprintf(it->label, sizeof(it->label), "%s", info.label);
    it->key_class = klass;
    it->version = version;
    it->state = current ? API_KEY_STATE_CURRENT : API_KEY_STATE_RETIRED;
    memcpy(it->kcv.data, info.kcv, HSM_KCV_LEN);
    it->kcv.len = HSM_KCV_LEN;
}

void
ops_key_status(struct op_job *j)
{
    const struct vault_keys *k = &j->svc->keys;
    struct api_key_status_resp resp = {0};
    struct key_list l = {0};
    char label[HSM_LABEL_MAX + 1];
    uint32_t dek = keys_dek_current(k);
    hsm_key *key = NULL;

    if ((l.s = op_session(j)) == NULL)
        return; /* answered HSM_UNAVAILABLE */
    if ((l.items = calloc(API_LIST_ITEMS_MAX, sizeof(*l.items))) == NULL) {
        hsm_session_release(l.s);
        op_fail(j, API_STATUS_INTERNAL, 0, NULL);
        return;
    }
    for (uint32_t v = keys_kek_current(k); v >= 1; v--)
        if (hsm_key_versioned_label(label, sizeof(label), KEYS_KEK_BASE, v) == 0 &&
            hsm_key_find(l.s, label, &key) == 0)
            add_key(&l, key, API_KEY_CLASS_AES, v, v == keys_kek_current(k));
    for (uint32_t v = dek; v >= 1; v--)
        add_key(&l, keys_dek(k, v), API_KEY_CLASS_AES, v, v == dek);
    {
        /* The current FPK and, during a rebuild, the one before, as loaded
         * (wrapped or token keys); older versions only if they are token
         * keys (a wrapped one is unwrapped only while it is needed). */
        uint32_t fpk = 0;
        hsm_key *prev = NULL, *cur = keys_fpk(k, &fpk, &prev);

        for (uint32_t v = fpk; v >= 1; v--) {
            if (v == fpk)
                key = cur;
            else if (v + 1 == fpk && prev != NULL)
                key = prev;
            else if (keys_fpk_label(label, sizeof(label), v, false) != 0 ||
                     hsm_key_find(l.s, label, &key) != 0)
                continue;
            add_key(&l, key, API_KEY_CLASS_HMAC, v, v == fpk);
        }
    }
    {
        uint32_t stk = keys_stk_current(k);

        for (uint32_t v = stk; v >= 1; v--)
            add_key(&l, keys_stk(k, v), API_KEY_CLASS_HMAC, v, v == stk);
    }
    if (hsm_key_find(l.s, "vault-session-mac", &key) == 0)
        add_key(&l, key, API_KEY_CLASS_HMAC, 1, true);
    add_key(&l, k->aud, API_KEY_CLASS_EC, 1, true);
    hsm_session_release(l.s);
    resp.keys = l.items;
    resp.num_keys = l.n;
    op_reply(j, &resp);
    free(l.items);
}
