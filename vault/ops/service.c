/*
 * service.c - PING and STATUS. PING is answered on the loop by the
 * dispatcher; STATUS asks the store and the HSM, so it runs on a worker.
 */
#include <string.h>
#include <time.h>

#include "vault/ops/ops.h"

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
    op_reply(j, &resp);
}
