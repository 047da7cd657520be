/*
 * common.c - the job every operation runs in, and how it ends.
 */
#include "vault/ops/ops.h"

#include <openssl/crypto.h>
#include <stddef.h>
#include <stdlib.h>

#include "vault/log.h"

struct op_job *
op_job_new(struct vault_service *svc, struct vault_request *req, op_handler_fn handler)
{
    struct op_job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->svc = svc;
    j->req = req;
    j->handler = handler;
    atomic_init(&j->refs, 2); /* the worker pool's and the request's */
    return j;
}

static void
job_unref(struct op_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    OPENSSL_cleanse(j, sizeof(*j)); /* the card state may hold a PAN */
    free(j);
}

void
op_job_free(struct op_job *j)
{
    if (j == NULL)
        return;
    OPENSSL_cleanse(j, sizeof(*j));
    free(j);
}

static void
work_cb(uv_work_t *w)
{
    struct op_job *j = (struct op_job *)((char *)w - offsetof(struct op_job, work));

    atomic_fetch_sub(&j->svc->queued, 1);
    j->handler(j);
}

static void
after_work_cb(uv_work_t *w, int status)
{
    struct op_job *j = (struct op_job *)((char *)w - offsetof(struct op_job, work));

    /* UV_ECANCELED never happens: the service does not cancel work. */
    job_unref(j);
}

int
op_job_queue(struct op_job *j)
{
    atomic_fetch_add(&j->svc->queued, 1);
    if (uv_queue_work(j->svc->loop, &j->work, work_cb, after_work_cb) != 0) {
        atomic_fetch_sub(&j->svc->queued, 1);
        return -1;
    }
    return 0;
}

void
op_reply(struct op_job *j, const void *msg)
{
    vault_request_reply(j->req, msg);
    j->req = NULL;
    job_unref(j);
}

const char *
op_message(int status)
{
    switch (status) {
    case API_STATUS_NOT_FOUND: return OP_MSG_NOT_FOUND;
    case API_STATUS_HSM_UNAVAILABLE: return OP_MSG_HSM;
    case API_STATUS_STORE_UNAVAILABLE: return OP_MSG_STORE;
    case API_STATUS_AUDIT_UNAVAILABLE: return OP_MSG_AUDIT;
    case API_STATUS_OVERLOADED: return "too many requests waiting; retry later";
    case API_STATUS_SHUTTING_DOWN: return "the service is shutting down";
    default: return api_status_description((unsigned)status);
    }
}

void
op_fail(struct op_job *j, int status, uint16_t tag, const char *message)
{
    if (status < 0)
        status = -status;
    if (status == API_STATUS_OK) /* a bug; never answer OK without a body */
        status = API_STATUS_INTERNAL;
    vault_request_error(j->req, (unsigned)status, tag, message != NULL ? message : op_message(status),
                        api_status_class((unsigned)status) == API_CLASS_RETRY ? VAULT_RETRY_AFTER_MS : 0);
    j->req = NULL;
    job_unref(j);
}

void
op_fail_rule(struct op_job *j, int status, uint16_t tag, const char *rule, const char *message)
{
    if (status < 0)
        status = -status;
    vault_request_error_rule(j->req, (unsigned)status, tag, rule,
                             message != NULL ? message : op_message(status));
    j->req = NULL;
    job_unref(j);
}

struct op_job *
op_job_of_write(struct store_write *w)
{
    return (struct op_job *)((char *)w - offsetof(struct op_job, write));
}

/* The writer's done for every operation: it runs the operation's own. */
static void
write_done(struct store_write *w, int result)
{
    struct op_job *j = op_job_of_write(w);

    j->done_fn(j, result);
}

void
op_submit_write(struct op_job *j, int (*apply)(struct store_write *, struct store_txn *),
                void (*done)(struct op_job *j, int result))
{
    int r;

    j->write.apply = apply;
    j->write.done = write_done;
    j->done_fn = done;
    if ((r = store_write_submit(j->svc->store, &j->write)) != 0)
        op_fail(j, r, 0, NULL);
}

int
op_audit(struct op_job *j, struct store_txn *t, unsigned status, const char *token,
         const char *detail)
{
    struct audit_event e = {
        .event = "request",
        .client = j->req->client,
        .opcode = j->req->frame.hdr.opcode,
        .status = (uint16_t)status,
        .request_id = j->req->frame.hdr.request_id,
        .merchant = j->req->merchant,
        .token = token,
        .detail = detail,
    };
    int r = audit_append(&j->svc->audit, t, &e);

    metrics_audit(j->svc->metrics, r == 0);
    return r;
}

hsm_session *
op_session(struct op_job *j)
{
    hsm_session *s = NULL;
    int e = hsm_session_acquire(j->svc->hsm, &s);

    if (e != 0) {
        vlog_msg(VAULT_LOG_ERROR, "hsm_session", "hsm", hsm_last_detail());
        op_fail(j, vault_hsm_status(e), 0, NULL);
        return NULL;
    }
    return s;
}

static int
deny_apply(struct store_write *w, struct store_txn *t)
{
    return op_audit(op_job_of_write(w), t, API_STATUS_DENIED, NULL, "denied");
}

static void
deny_done(struct op_job *j, int result)
{
    if (result != 0)
        vlog_msg(VAULT_LOG_ERROR, "audit_denied_failed", "status", api_status_name((unsigned)-result));
    op_fail(j, API_STATUS_DENIED, 0, "the client's roles or merchants do not allow this");
}

void
ops_deny(struct op_job *j)
{
    /* Never queued to the worker pool: the request's is the only reference. */
    atomic_store(&j->refs, 1);
    j->write.apply = deny_apply;
    j->write.done = write_done;
    j->done_fn = deny_done;
    if (store_write_submit(j->svc->store, &j->write) != 0)
        deny_done(j, -API_STATUS_AUDIT_UNAVAILABLE);
}
