/*
 * service.c - tokenvaultd assembled: start-up, the dispatcher, signals and
 * the periodic jobs (audit checkpoints, the metrics file).
 */
#include "vault/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vault/log.h"
#include "vault/ops/ops.h"

/* retryAfterMs with SEALED: officers take minutes; callers need not spin. */
#define SEALED_RETRY_AFTER_MS 5000u

/* The operations this release serves, beyond PING (answered on the loop). */
static const struct {
    uint16_t opcode;
    op_handler_fn handler;
} served[] = {
    {API_OP_STATUS, ops_status},
    {API_OP_CARD_STORE, ops_card_store},
    {API_OP_CARD_GET, ops_card_get},
    {API_OP_CARD_LIST, ops_card_list},
    {API_OP_CARD_UPDATE, ops_card_update},
    {API_OP_CARD_DELETE, ops_card_delete},
    {API_OP_CARD_REVEAL, ops_card_reveal},
    {API_OP_KEY_STATUS, ops_key_status},
    {API_OP_WALLET_DECRYPT, ops_wallet_decrypt},
    {API_OP_MANDATE_CREATE, ops_mandate_create},
    {API_OP_MANDATE_GET, ops_mandate_get},
    {API_OP_MANDATE_CANCEL, ops_mandate_cancel},
    {API_OP_CIT_AUTHORIZE, ops_cit_authorize},
    {API_OP_MIT_AUTHORIZE, ops_mit_authorize},
    {API_OP_QR_ISSUE, ops_qr_issue},
    {API_OP_QR_REDEEM, ops_qr_redeem},
    {API_OP_QR_STATUS, ops_qr_status},
    {API_OP_SESSION_INIT, ops_session_init},
    {API_OP_SESSION_CHECK, ops_session_check},
    {API_OP_CARD_MAP, ops_card_map},
    {API_OP_MAP_RESOLVE, ops_map_resolve},
};

/* HSM sessions beside the workers': the writer's and one for STATUS checks
 * and start-up. */
#define EXTRA_SESSIONS 2u

static op_handler_fn
handler_of(uint16_t opcode)
{
    for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++)
        if (served[i].opcode == opcode)
            return served[i].handler;
    return NULL;
}

/* docs/PROTOCOL.md section 10: the officer socket serves its own operations
 * and the read-only service ones; TCP clients need the operation's role and,
 * when the request names a merchant, that merchant. */
static bool
allowed(const struct vault_request *req, const struct api_op_info *op)
{
    if (req->officer)
        return op->role == API_ROLE_OFFICER || op->opcode == API_OP_PING ||
               op->opcode == API_OP_STATUS || op->opcode == API_OP_KEY_STATUS;
    if (op->role == API_ROLE_OFFICER || req->client_cfg == NULL)
        return false;
    if (op->role == API_ROLE_ANY)
        return true;
    return vault_client_allows(req->client_cfg, op->role, req->merchant);
}

static void
answer_ping(struct vault_request *req)
{
    const struct api_ping_req *q = req->frame.msg;
    struct api_ping_resp resp;

    memset(&resp, 0, sizeof(resp));
    resp.has_echo = q->has_echo;
    resp.echo.len = q->echo.len;
    memcpy(resp.echo.data, q->echo.data, q->echo.len);
    resp.server_time = (uint64_t)time(NULL);
    vault_request_reply(req, &resp);
}

void
vault_service_dispatch(void *ctx, struct vault_request *req)
{
    struct vault_service *svc = ctx;
    const struct api_op_info *op = api_op_info(req->frame.hdr.opcode);
    const struct vault_merchant *m;
    op_handler_fn handler;
    struct op_job *j;

    if (op == NULL) { /* the server decodes known opcodes only */
        vault_request_error(req, API_STATUS_UNKNOWN_OPCODE, 0, "no such operation", 0);
        return;
    }
    if (!allowed(req, op)) {
        if ((j = op_job_new(svc, req, NULL)) == NULL)
            vault_request_error(req, API_STATUS_DENIED, 0, "not allowed", 0);
        else
            ops_deny(j);
        return;
    }
    if (op->opcode == API_OP_PING) {
        answer_ping(req);
        return;
    }
    if (op->opcode == API_OP_UNSEAL_SHARE) {
        vault_service_unseal_share(svc, req);
        return;
    }
    if (svc->sealed) {
        if (op->opcode == API_OP_STATUS)
            vault_service_status_sealed(svc, req);
        else
            vault_request_error(req, API_STATUS_SEALED, 0,
                                "the service waits for the officers' unseal shares",
                                SEALED_RETRY_AFTER_MS);
        return;
    }
    if ((handler = handler_of(op->opcode)) == NULL) {
        vault_request_error(req, API_STATUS_UNKNOWN_OPCODE, 0,
                            "operation not served by this release", 0);
        return;
    }
    if (atomic_load(&svc->queued) >= svc->cfg->queue_depth) {
        vault_request_error(req, API_STATUS_OVERLOADED, 0, "too many requests waiting; retry later",
                            VAULT_RETRY_AFTER_MS);
        return;
    }
    if ((j = op_job_new(svc, req, handler)) == NULL) {
        vault_request_error(req, API_STATUS_INTERNAL, 0, OP_MSG_INTERNAL, 0);
        return;
    }
    m = req->merchant != NULL ? vault_config_merchant(svc->cfg, req->merchant) : NULL;
    j->token_format = m != NULL ? m->token_format : VAULT_TOKEN_OPAQUE;
    j->roles = req->client_cfg != NULL ? req->client_cfg->roles : 0; /* valid only here */
    j->qr_max_lifetime_s = svc->cfg->qr_max_lifetime_seconds;
    j->qr_retention_s = svc->cfg->qr_retention_seconds;
    if (op->opcode == API_OP_SESSION_INIT)
        ops_session_configure(j, svc->cfg);
    if (op_job_queue(j) != 0) {
        op_job_free(j);
        vault_request_error(req, API_STATUS_INTERNAL, 0, OP_MSG_INTERNAL, 0);
    }
}

/* ---- periodic jobs ------------------------------------------------------------ */

struct checkpoint_job {
    struct store_write w;
    struct vault_service *svc;
    atomic_bool busy;
};
static struct checkpoint_job checkpoint_job;

static int
checkpoint_apply(struct store_write *w, struct store_txn *t)
{
    struct checkpoint_job *c = (struct checkpoint_job *)w;

    return audit_checkpoint(&c->svc->audit, t);
}

static void
checkpoint_done(struct store_write *w, int result)
{
    struct checkpoint_job *c = (struct checkpoint_job *)w;

    if (result != 0)
        vlog_msg(VAULT_LOG_ERROR, "audit_checkpoint_failed", "status",
                 api_status_name((unsigned)-result));
    atomic_store(&c->busy, false);
}

static void
on_checkpoint_timer(uv_timer_t *t)
{
    struct vault_service *svc = t->data;

    if (svc->sealed)
        return; /* no audit key before the HSM is open */
    if (atomic_exchange(&checkpoint_job.busy, true))
        return; /* the last one is still queued */
    checkpoint_job.svc = svc;
    checkpoint_job.w.apply = checkpoint_apply;
    checkpoint_job.w.done = checkpoint_done;
    if (store_write_submit(svc->store, &checkpoint_job.w) != 0)
        atomic_store(&checkpoint_job.busy, false);
}

static void
write_metrics(struct vault_service *svc)
{
    struct store_stats st;
    struct metrics_gauges g = {0};
    int r;

    if (svc->cfg->metrics_textfile[0] == '\0')
        return;
    g.store = store_stats_get(svc->store, &st) == 0 ? &st : NULL;
    g.worker_queue_depth = atomic_load(&svc->queued);
    g.connections = svc->server != NULL ? vault_server_connections(svc->server) : 0;
    g.requests_in_flight = svc->server != NULL ? vault_server_in_flight(svc->server) : 0;
    /* While sealed the keys are being loaded by the unseal worker. */
    g.dek_version = svc->sealed ? 0 : keys_dek_current(&svc->keys);
    g.reencrypted = atomic_load(&svc->reencrypt.moved);
    g.reencrypt_pending = ops_reencrypt_pending(svc);
    g.reencrypt_known = ops_reencrypt_progress(svc, &g.reencrypt_remaining, &g.reencrypt_total);
    g.kek_version = svc->sealed ? 0 : keys_kek_current(&svc->keys);
    g.stk_version = svc->sealed ? 0 : keys_stk_current(&svc->keys);
    g.sealed = svc->sealed;
    g.hsm_ready = !svc->sealed;
    /* While sealed the unseal worker may be opening the HSM. */
    if (!svc->sealed && svc->hsm != NULL) {
        hsm_token_info ti;

        hsm_token_info_get(svc->hsm, &ti);
        g.hsm_known = true;
        g.hsm_recycles = ti.recycles;
        g.hsm_temp_destroyed = ti.temp_objects_destroyed;
    }
    if ((r = metrics_write_textfile(svc->metrics, &g, svc->cfg->metrics_textfile)) != 0)
        vlog_msg(VAULT_LOG_WARN, "metrics_write_failed", "reason", strerror(-r));
}

static void
on_metrics_timer(uv_timer_t *t)
{
    write_metrics(t->data);
}

/* How often the re-encryption job may queue a batch (it queues nothing when
 * every record is on the current DEK). */
#define REENCRYPT_TICK_MS 20u

static void
on_reencrypt_timer(uv_timer_t *t)
{
    struct vault_service *svc = t->data;

    if (!svc->stopping)
        ops_reencrypt_tick(svc);
}

static void
on_dekpolicy_timer(uv_timer_t *t)
{
    ops_dekpolicy_tick(t->data);
}

static void
on_sweep_timer(uv_timer_t *t)
{
    ops_sweep_tick(t->data);
}

/* SIGHUP also loads the DEK, STK and FPK versions a rotate ceremony added
 * to the store. */
static void
refresh_work(uv_work_t *w)
{
    struct vault_service *svc = w->data;
    uint32_t loaded = 0, fpk_before = 0, fpk_after = 0, stk_before = keys_stk_current(&svc->keys);
    struct vlog_line l;
    char err[256];

    (void)keys_fpk(&svc->keys, &fpk_before, NULL);
    if (keys_refresh(&svc->keys, svc->hsm, svc->store, &loaded, err, sizeof(err)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "key_refresh_failed", "reason", err);
        return;
    }
    (void)keys_fpk(&svc->keys, &fpk_after, NULL);
    if (loaded > 0 && vlog_begin(&l, VAULT_LOG_INFO, "dek_loaded")) {
        vlog_u64(&l, "dek_version", keys_dek_current(&svc->keys));
        vlog_end(&l);
    }
    if (fpk_after != fpk_before && vlog_begin(&l, VAULT_LOG_INFO, "fpk_loaded")) {
        vlog_u64(&l, "fpk_version", fpk_after);
        vlog_end(&l);
    }
    if (keys_stk_current(&svc->keys) != stk_before && vlog_begin(&l, VAULT_LOG_INFO, "stk_loaded")) {
        vlog_u64(&l, "stk_version", keys_stk_current(&svc->keys));
        vlog_end(&l);
    }
}

static void
refresh_after(uv_work_t *w, int status)
{
    struct vault_service *svc = w->data;

    svc->refreshing = false;
    write_metrics(svc);
}

static void
refresh_keys(struct vault_service *svc)
{
    if (svc->sealed || svc->refreshing || svc->stopping)
        return;
    svc->refresh_work.data = svc;
    svc->refreshing = uv_queue_work(svc->loop, &svc->refresh_work, refresh_work, refresh_after) == 0;
}

/* ---- signals ------------------------------------------------------------------ */

static void
on_close_noop(uv_handle_t *h)
{
}

static void
on_drained(void *ctx)
{
    struct vault_service *svc = ctx;

    vlog_msg(VAULT_LOG_INFO, "service_drained", NULL, NULL);
    write_metrics(svc);
    uv_close((uv_handle_t *)&svc->checkpoint_timer, on_close_noop);
    uv_close((uv_handle_t *)&svc->metrics_timer, on_close_noop);
    uv_close((uv_handle_t *)&svc->reencrypt_timer, on_close_noop);
    uv_close((uv_handle_t *)&svc->dekpolicy_timer, on_close_noop);
    uv_close((uv_handle_t *)&svc->sweep_timer, on_close_noop);
    uv_close((uv_handle_t *)&svc->sig_term, on_close_noop);
    uv_close((uv_handle_t *)&svc->sig_int, on_close_noop);
    uv_close((uv_handle_t *)&svc->sig_hup, on_close_noop);
    vault_server_close(svc->server);
    svc->server = NULL;
}

void
vault_service_stop(struct vault_service *svc)
{
    if (svc->stopping)
        return;
    svc->stopping = true;
    vault_server_drain(svc->server, on_drained, svc);
}

static void
on_stop_signal(uv_signal_t *h, int signum)
{
    struct vault_service *svc = h->data;

    if (svc->stopping)
        return;
    vlog_msg(VAULT_LOG_INFO, "service_stopping", "signal", signum == SIGINT ? "SIGINT" : "SIGTERM");
    vault_service_stop(svc);
}

/* The wallet engine for |cfg|, resolved through a session of its own. */
static int
load_wallets(struct vault_service *svc, const struct vault_config *cfg, struct vault_wallets **out,
             char *reason, size_t reason_len)
{
    hsm_session *s = NULL;
    char err[256];
    int e = hsm_session_acquire(svc->hsm, &s);

    if (e != 0) {
        snprintf(reason, reason_len, "wallets: no HSM session: %s", hsm_strerror(e));
        return -1;
    }
    e = vault_wallets_load(out, s, cfg, err, sizeof(err));
    hsm_session_release(s);
    if (e != 0)
        snprintf(reason, reason_len, "wallets: %s", err);
    return e;
}

/* SIGHUP: clients, merchant settings, log level, queue_depth and the metrics
 * file come from the new config; listeners, TLS files, HSM, store, workers,
 * the server's bounds and timeouts and the checkpoint timer stay as started
 * (docs/OPERATIONS.md). A config that does not load changes nothing. */
static void
on_hup(uv_signal_t *h, int signum)
{
    struct vault_service *svc = h->data;
    struct vault_config *fresh = NULL;
    char err[VAULT_CONFIG_ERR_MAX];

    if (vault_config_load(&fresh, svc->cfg->path, err, sizeof(err)) != 0) {
        vlog_msg(VAULT_LOG_ERROR, "config_reload_failed", "reason", err);
        return;
    }
    /* The wallet keys the new config names, resolved before anything
     * changes: a reload that names a missing key keeps the old config. */
    if (!svc->sealed) {
        struct vault_wallets *w = NULL, *old;

        if (load_wallets(svc, fresh, &w, err, sizeof(err)) != 0) {
            vlog_msg(VAULT_LOG_ERROR, "config_reload_failed", "reason", err);
            vault_config_free(fresh);
            return;
        }
        pthread_mutex_lock(&svc->wallets_lock);
        old = svc->wallets;
        svc->wallets = w;
        pthread_mutex_unlock(&svc->wallets_lock);
        vault_wallets_free(old);
    }
    vault_server_set_config(svc->server, fresh);
    vlog_set_level(fresh->log_level);
    vault_config_free(svc->cfg);
    svc->cfg = fresh;
    ops_dekpolicy_configure(svc, fresh->dek_max_encryptions, fresh->dek_max_age_days);
    vlog_msg(VAULT_LOG_INFO, "config_reloaded", "path", fresh->path);
    refresh_keys(svc);
}

/* ---- open and close ---------------------------------------------------------------- */

static int
fail(const char *event, const char *reason)
{
    vlog_msg(VAULT_LOG_ERROR, event, "reason", reason);
    return -1;
}

/* Opens the HSM with the PIN source made at open (the file, or sealed
 * start's callback). Runs on the start-up thread, or a worker at unseal. */
int
vault_service_open_hsm(struct vault_service *svc, char *reason, size_t reason_len)
{
    const struct vault_config *c = svc->cfg;
    hsm_config hc = {0};
    int e;

    hc.module_path = c->hsm_module;
    if (strncmp(c->hsm_token, "pkcs11:", 7) == 0)
        hc.token_uri = c->hsm_token;
    else
        hc.token_label = c->hsm_token;
    hc.init_args = c->hsm_module_args[0] != '\0' ? c->hsm_module_args : NULL;
    hc.reduced_key_attributes = c->hsm_reduced_key_attributes == 1;
    hc.max_sessions = c->workers + EXTRA_SESSIONS;
    /* A sealed start keeps no PIN to log in again with after a recycle. */
    if (c->pin_source == VAULT_PIN_SEALED)
        hc.recycle_after_objects = 0;
    else if (c->hsm_recycle_after_objects == VAULT_HSM_RECYCLE_AUTO)
        hc.recycle_after_objects = HSM_RECYCLE_AUTO;
    else
        hc.recycle_after_objects = c->hsm_recycle_after_objects;
    if ((e = hsm_open(&svc->hsm, &hc, svc->pin)) != 0) {
        snprintf(reason, reason_len, "%s (%s)", hsm_strerror(e), hsm_last_detail());
        return -1;
    }
    return 0;
}

/* With the HSM open: the writer, then the keys (which may write DEK 1). */
int
vault_service_open_keys(struct vault_service *svc, char *reason, size_t reason_len)
{
    struct vault_wallets *w = NULL;

    if (store_writer_start(svc->store, svc->hsm, svc->cfg->queue_depth) != 0) {
        snprintf(reason, reason_len, "cannot start the writer thread");
        return -1;
    }
    svc->audit.checkpoint_entries = svc->cfg->audit_checkpoint_entries;
    if (keys_load(&svc->keys, svc->hsm, svc->store, &svc->audit, reason, reason_len) != 0 ||
        load_wallets(svc, svc->cfg, &w, reason, reason_len) != 0)
        return -1;
    pthread_mutex_lock(&svc->wallets_lock);
    svc->wallets = w;
    pthread_mutex_unlock(&svc->wallets_lock);
    return 0;
}

struct vault_wallets *
vault_service_wallets(struct vault_service *svc)
{
    struct vault_wallets *w;

    pthread_mutex_lock(&svc->wallets_lock);
    w = vault_wallets_ref(svc->wallets);
    pthread_mutex_unlock(&svc->wallets_lock);
    return w;
}

void
vault_service_log_started(struct vault_service *svc)
{
    struct vlog_line l;

    if (vlog_begin(&l, VAULT_LOG_INFO, "service_started")) {
        vlog_str(&l, "version", VAULT_VERSION_TEXT);
        vlog_str(&l, "listen", svc->cfg->listen_host);
        vlog_u64(&l, "port", vault_server_port(svc->server));
        vlog_str(&l, "appliance_id", svc->keys.appliance_id);
        vlog_u64(&l, "dek_version", keys_dek_current(&svc->keys));
        vlog_u64(&l, "kek_version", keys_kek_current(&svc->keys));
        vlog_u64(&l, "stk_version", keys_stk_current(&svc->keys));
        if (svc->wallets != NULL) {
            size_t m = 0, ar = 0, gr = 0;

            vault_wallets_counts(svc->wallets, &m, &ar, &gr);
            vlog_u64(&l, "wallet_merchants", m);
            vlog_u64(&l, "apple_roots", ar);
            vlog_u64(&l, "google_root_keys", gr);
        }
        vlog_end(&l);
    }
}

static int
start_handles(struct vault_service *svc)
{
    uv_timer_t *timers[] = {&svc->checkpoint_timer, &svc->metrics_timer, &svc->reencrypt_timer,
                            &svc->dekpolicy_timer, &svc->sweep_timer};
    uv_signal_t *sigs[] = {&svc->sig_term, &svc->sig_int, &svc->sig_hup};
    int nums[] = {SIGTERM, SIGINT, SIGHUP};
    uint64_t cp_ms = (uint64_t)svc->cfg->audit_checkpoint_seconds * 1000u;
    uint64_t m_ms = (uint64_t)svc->cfg->metrics_interval_seconds * 1000u;

    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(svc->loop, timers[i]);
        timers[i]->data = svc;
    }
    for (size_t i = 0; i < 3; i++) {
        uv_signal_init(svc->loop, sigs[i]);
        sigs[i]->data = svc;
        if (uv_signal_start(sigs[i], i == 2 ? on_hup : on_stop_signal, nums[i]) != 0)
            return fail("signal", "cannot install the signal handlers");
    }
    if (uv_timer_start(&svc->checkpoint_timer, on_checkpoint_timer, cp_ms, cp_ms) != 0 ||
        uv_timer_start(&svc->metrics_timer, on_metrics_timer, 0, m_ms) != 0 ||
        uv_timer_start(&svc->reencrypt_timer, on_reencrypt_timer, REENCRYPT_TICK_MS,
                       REENCRYPT_TICK_MS) != 0 ||
        uv_timer_start(&svc->dekpolicy_timer, on_dekpolicy_timer, DEKPOLICY_TICK_MS,
                       DEKPOLICY_TICK_MS) != 0 ||
        uv_timer_start(&svc->sweep_timer, on_sweep_timer, SWEEP_TICK_MS, SWEEP_TICK_MS) != 0)
        return fail("timer", "cannot start the timers");
    return 0;
}

int
vault_service_open(struct vault_service *svc, uv_loop_t *loop, const char *config_path)
{
    struct vault_server_config sc = {0};
    char err[VAULT_CONFIG_ERR_MAX], threads[16];
    struct vlog_line l;
    bool sealed;
    int r;

    memset(svc, 0, sizeof(*svc));
    svc->loop = loop;
    pthread_mutex_init(&svc->wallets_lock, NULL);
    atomic_init(&svc->queued, 0);
    svc->started_at = (uint64_t)time(NULL);
    if (vault_config_load(&svc->cfg, config_path, err, sizeof(err)) != 0)
        return fail("config", err);
    vlog_set_level(svc->cfg->log_level);
    /* libuv sizes its pool once, at the first queued work: the workers. */
    snprintf(threads, sizeof(threads), "%u", svc->cfg->workers);
    setenv("UV_THREADPOOL_SIZE", threads, 1);

    sealed = svc->cfg->pin_source == VAULT_PIN_SEALED;
    if (sealed) {
        if (seal_load(&svc->seal, svc->cfg->share_set, err, sizeof(err)) != 0)
            return fail("seal", err);
        if (hsm_pin_source_callback(&svc->pin, seal_pin_get, &svc->seal) != 0)
            return fail("hsm_pin", "out of memory");
        svc->sealed = true;
    } else if ((r = hsm_pin_source_file(&svc->pin, svc->cfg->pin_file)) != 0) {
        return fail("hsm_pin", hsm_strerror(r));
    }
    if (store_open(&svc->store, svc->cfg->store_path, svc->cfg->map_size, err, sizeof(err)) != 0)
        return fail("store_open", err);
    if (!sealed && (vault_service_open_hsm(svc, err, sizeof(err)) != 0 ||
                    vault_service_open_keys(svc, err, sizeof(err)) != 0))
        return fail(svc->hsm == NULL ? "hsm_open" : "keys", err);
    if (metrics_new(&svc->metrics) != 0)
        return fail("metrics", "out of memory");

    sc.loop = loop;
    sc.cfg = svc->cfg;
    sc.dispatch = vault_service_dispatch;
    sc.ctx = svc;
    sc.metrics = svc->metrics;
    sc.officer_only = sealed;
    if (vault_server_start(&svc->server, &sc, err, sizeof(err)) != 0)
        return fail("server_start", err);
    ops_dekpolicy_configure(svc, svc->cfg->dek_max_encryptions, svc->cfg->dek_max_age_days);
    if (start_handles(svc) != 0)
        return -1;
    if (sealed) {
        if (vlog_begin(&l, VAULT_LOG_INFO, "service_sealed")) {
            vlog_str(&l, "version", VAULT_VERSION_TEXT);
            vlog_str(&l, "officer_socket", svc->cfg->officer_socket);
            vlog_u64(&l, "shares_needed", svc->seal.set.threshold);
            vlog_end(&l);
        }
        return 0;
    }
    vault_service_log_started(svc);
    return 0;
}

void
vault_service_close(struct vault_service *svc)
{
    /* The writer commits what is queued before it stops; the HSM closes
     * only when no session is out. */
    store_close(svc->store);
    svc->store = NULL;
    vault_wallets_free(svc->wallets);
    svc->wallets = NULL;
    hsm_close(svc->hsm);
    svc->hsm = NULL;
    hsm_pin_source_free(svc->pin);
    svc->pin = NULL;
    seal_wipe(&svc->seal);
    metrics_free(svc->metrics);
    svc->metrics = NULL;
    vault_config_free(svc->cfg);
    svc->cfg = NULL;
    pthread_mutex_destroy(&svc->wallets_lock);
}
