/*
 * officer.c - sealed start on the officer socket: UNSEAL_SHARE, and STATUS
 * while sealed. Both run on the loop thread: the seal state is the loop's,
 * and a share is checked in microseconds. Only opening the HSM with the
 * rebuilt PIN, and loading the keys, go to a worker.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vault/log.h"
#include "vault/service.h"

static void
reply_progress(struct vault_service *svc, struct vault_request *req)
{
    struct api_unseal_share_resp resp;

    memset(&resp, 0, sizeof(resp));
    resp.sealed = svc->sealed;
    resp.shares_needed = svc->seal.set.threshold; /* 0 unless started sealed */
    resp.shares_received = svc->sealed ? (uint8_t)svc->seal.num : resp.shares_needed;
    vault_request_reply(req, &resp);
}

static void
log_share(const struct vault_request *req, const char *officer, const char *result,
          const struct vault_seal *seal)
{
    struct vlog_line l;

    if (vlog_begin(&l, result[0] == 'a' ? VAULT_LOG_INFO : VAULT_LOG_WARN, "unseal_share")) {
        vlog_str(&l, "officer", officer);
        vlog_str(&l, "result", result);
        vlog_u64(&l, "shares_received", seal->num);
        vlog_u64(&l, "shares_needed", seal->set.threshold);
        vlog_u64(&l, "request_id", req->frame.hdr.request_id);
        vlog_end(&l);
    }
}

/* On a worker: log in with the rebuilt PIN (the callback source gives it
 * once and wipes it), start the writer, load the keys, and audit who
 * unsealed. */
static void
unseal_work(uv_work_t *w)
{
    struct vault_service *svc = w->data;
    struct audit_event ev[SHARE_COUNT_MAX + 1];
    char detail[AUDIT_DETAIL_MAX + 1];
    size_t n = 0;
    int r;

    svc->unseal_result = 0;
    if (vault_service_open_hsm(svc, svc->unseal_reason, sizeof(svc->unseal_reason)) != 0) {
        svc->unseal_result = -API_STATUS_HSM_UNAVAILABLE;
        return;
    }
    if (vault_service_open_keys(svc, svc->unseal_reason, sizeof(svc->unseal_reason)) != 0) {
        svc->unseal_result = -API_STATUS_INTERNAL;
        return;
    }
    memset(ev, 0, sizeof(ev));
    for (size_t i = 0; i < svc->seal.num; i++, n++) {
        ev[n].event = "unseal_share";
        ev[n].client = svc->seal.officers[i];
        ev[n].opcode = API_OP_UNSEAL_SHARE;
        ev[n].status = API_STATUS_OK;
    }
    snprintf(detail, sizeof(detail), "refused=%u", svc->seal.rejected);
    ev[n].event = "unsealed";
    ev[n].client = "tokenvaultd";
    ev[n].status = API_STATUS_OK;
    ev[n].detail = detail;
    n++;
    /* Fail closed: an unseal that cannot be audited does not open the
     * service (SECURITY.md rule 4). */
    if ((r = audit_record(&svc->audit, svc->store, ev, n)) != 0) {
        snprintf(svc->unseal_reason, sizeof(svc->unseal_reason), "auditing the unseal: %s",
                 api_status_name((unsigned)-r));
        svc->unseal_result = -API_STATUS_AUDIT_UNAVAILABLE;
    }
}

static void
unseal_after(uv_work_t *w, int status)
{
    struct vault_service *svc = w->data;
    struct vault_request *req = svc->unseal_req;
    char err[256];

    svc->unseal_req = NULL;
    if (status != 0 && svc->unseal_result == 0) {
        svc->unseal_result = -API_STATUS_INTERNAL;
        snprintf(svc->unseal_reason, sizeof(svc->unseal_reason), "the work was cancelled");
    }
    if (svc->unseal_result == -API_STATUS_HSM_UNAVAILABLE) {
        /* Nothing opened: the officers may try again (a token that was
         * absent, a PIN the token refused). */
        vlog_msg(VAULT_LOG_ERROR, "unseal_failed", "reason", svc->unseal_reason);
        seal_reset(&svc->seal);
        vault_request_error(req, API_STATUS_HSM_UNAVAILABLE, 0,
                            "the HSM did not accept the login; submit the shares again", 0);
        return;
    }
    if (svc->unseal_result == 0 && !svc->stopping &&
        vault_server_listen_tcp(svc->server, err, sizeof(err)) != 0) {
        svc->unseal_result = -API_STATUS_INTERNAL;
        snprintf(svc->unseal_reason, sizeof(svc->unseal_reason), "%s", err);
    }
    seal_wipe(&svc->seal);
    if (svc->unseal_result != 0) {
        /* The HSM is open but the service cannot run (keys missing, audit
         * log unwritable, port taken): stop, as a failed start would. */
        vlog_msg(VAULT_LOG_ERROR, "unseal_failed", "reason", svc->unseal_reason);
        vault_request_error(req, (unsigned)-svc->unseal_result, 0,
                            "unsealed, but the service cannot start; see its log", 0);
        svc->failed = true;
        vault_service_stop(svc);
        return;
    }
    svc->seal.state = SEAL_OPEN;
    svc->sealed = false;
    reply_progress(svc, req);
    vault_service_log_started(svc);
}

void
vault_service_unseal_share(struct vault_service *svc, struct vault_request *req)
{
    const struct api_unseal_share_req *q = req->frame.msg;
    int r;

    if (!svc->sealed) {
        vault_request_error(req, API_STATUS_CONFLICT, 0, "the service is not sealed", 0);
        return;
    }
    if (svc->seal.state != SEAL_WAITING) {
        vault_request_error(req, API_STATUS_SEALED, 0, "the service is unsealing now", 1000u);
        return;
    }
    r = seal_submit(&svc->seal, q->officer, q->share.data, q->share.len);
    if (r != 0) {
        /* Which check failed (format, set, check value) is not said: the
         * officer learns the share is not usable, nothing more. */
        log_share(req, q->officer, r == SHARE_ERR_DUPLICATE ? "duplicate" : "refused", &svc->seal);
        vault_request_error(req, API_STATUS_SHARE_REJECTED, 0,
                            r == SHARE_ERR_DUPLICATE ? "a share with this index was already given"
                                                     : "the share was not accepted",
                            0);
        return;
    }
    log_share(req, q->officer, "accepted", &svc->seal);
    if (svc->seal.num < svc->seal.set.threshold) {
        reply_progress(svc, req);
        return;
    }
    if ((r = seal_combine(&svc->seal)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "unseal_failed", "reason", share_strerror(r));
        vault_request_error(req, API_STATUS_SHARE_REJECTED, 0,
                            "the shares do not rebuild the PIN; submit them again", 0);
        return;
    }
    svc->unseal_req = req;
    svc->unseal_work.data = svc;
    if (uv_queue_work(svc->loop, &svc->unseal_work, unseal_work, unseal_after) != 0) {
        svc->unseal_req = NULL;
        seal_reset(&svc->seal);
        vault_request_error(req, API_STATUS_INTERNAL, 0, "cannot start the unseal", 0);
    }
}

void
vault_service_status_sealed(struct vault_service *svc, struct vault_request *req)
{
    struct api_status_resp resp;
    struct store_stats st;

    memset(&resp, 0, sizeof(resp));
    resp.sealed = true;
    resp.shares_needed = svc->seal.set.threshold;
    resp.shares_received = (uint8_t)svc->seal.num;
    resp.hsm_ready = false;
    snprintf(resp.version, sizeof(resp.version), "%s", VAULT_VERSION_TEXT);
    resp.uptime = (uint64_t)time(NULL) - svc->started_at;
    if (store_stats_get(svc->store, &st) == 0) {
        resp.has_record_count = resp.has_store_used = resp.has_store_size = true;
        resp.record_count = st.entries[STORE_DB_CARDS];
        resp.store_used = st.map_used;
        resp.store_size = st.map_size;
    }
    vault_request_reply(req, &resp);
}
