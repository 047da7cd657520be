/*
 * ops.h - what every operation shares: the job that carries one request from
 * the loop to a worker thread and, for writes, through the writer, and the
 * ways to finish it.
 *
 * Life of a job: the dispatcher makes it (op_job_new) on the loop and queues
 * it to the worker pool; the operation's handler runs on a worker; it either
 * answers at once (op_reply / op_fail) or submits j->write to the writer,
 * whose done answers. The job is freed once both the worker pool is finished
 * with it and the request is answered (two references), so neither side can
 * free memory the other still uses.
 *
 * Secrets a job holds (a PAN between the worker and the writer) live in the
 * job and are wiped when it is freed.
 */
#ifndef TOKENVAULT_VAULT_OPS_OPS_H
#define TOKENVAULT_VAULT_OPS_OPS_H

#include <stdatomic.h>
#include <uv.h>

#include "vault/audit.h"
#include "vault/cardnum.h"
#include "vault/mandate.h"
#include "vault/ops/sessions.h"
#include "vault/ops/qr.h"
#include "vault/record.h"
#include "vault/server.h"
#include "vault/service.h"
#include "vault/wallet/wallet.h"

struct op_job;
typedef void (*op_handler_fn)(struct op_job *j);

/* Per-operation state that must survive from worker to writer. */
struct op_card_state {
    struct card_record rec;
    struct card_secret sec;        /* wiped with the job */
    char token[API_ID_MAX + 1];
    enum vault_token_format format;
    uint8_t dedup;
    unsigned lookup;               /* REVEAL: the lookup's status, audited */
    struct card_record found;      /* the record the writer found or changed */
    char found_token[API_ID_MAX + 1];
    uint32_t fpk_version;          /* STORE: the FPK the fingerprint was made with */
    bool has_fp_prev;              /* STORE: also under the previous FPK (rebuild) */
    uint8_t fp_prev[RECORD_FINGERPRINT_LEN];
};

/* WALLET_DECRYPT: what the worker found, for the writer and the answer. */
struct op_wallet_state {
    struct wallet_card card;       /* secret: DPAN and cryptogram; wiped with the job */
    unsigned status;               /* API status of the decrypt (OK, or why it was refused) */
    const char *err_name;          /* the wallet error's name, for the audit entry */
    char why[WALLET_WHY_MAX];      /* the reason sent with a refusal: never a card byte */
    bool file;                     /* also keep the card on file for the customer */
    uint64_t now_ms;
    unsigned dpan_lifetime_s;      /* of the engine that opened the packet */
};

/* QR_ISSUE, QR_REDEEM (ops/qr.c): the request the worker made or checked,
 * and the outcome the writer decided, for the audit entry and the answer. */
struct op_qr_state {
    struct qr_token token;         /* ISSUE: the new (or existing) request's; REDEEM: as presented */
    struct qr_record rec;          /* the request as issued, then as the writer left it */
    char text[QR_TOKEN_TEXT_LEN + 1]; /* ISSUE: the token answered */
    unsigned retention_s;          /* ISSUE: swept this long after it expires */
    unsigned status;               /* OK, or the refusal decided (audited, then answered) */
    uint16_t err_tag;
    const char *err_message;
    const char *detail;            /* the audit entry's detail word */
};

/* MANDATE_*, CIT_AUTHORIZE, MIT_AUTHORIZE (ops/mandates.c): what the worker
 * prepared (ids from the HSM RNG, a reveal caller's PAN) and what the writer
 * decided, for the audit entry and the answer. */
struct op_mandate_state {
    struct card_record card;       /* the card the writer decided on */
    struct card_secret sec;        /* reveal callers only; wiped with the job */
    bool have_sec;
    uint8_t sec_fp[RECORD_FINGERPRINT_LEN]; /* the opened card's fingerprint and */
    uint64_t sec_created;          /* creation time: the writer checks it is its card */
    struct mandate_record m;       /* the mandate as the writer left it */
    char token[API_ID_MAX + 1];
    char id[API_ID_MAX + 1];       /* mandate id (CREATE: new, from the HSM RNG) */
    char approval[API_ID_MAX + 1]; /* CIT, MIT: from the HSM RNG */
    unsigned status;               /* OK, or the refusal decided (audited, then answered) */
    const char *rule;              /* LIMIT_EXCEEDED: the mandate rule */
};

struct op_job {
    uv_work_t work;
    struct store_write write;
    atomic_int refs;
    struct vault_service *svc;
    struct vault_request *req;
    op_handler_fn handler;
    void (*done_fn)(struct op_job *j, int result); /* after the writer */
    /* copied from the config on the loop: a SIGHUP may free it meanwhile */
    enum vault_token_format token_format;
    uint32_t roles; /* the client's roles (bit 1u << enum api_role): CIT/MIT reveal */
    unsigned qr_max_lifetime_s, qr_retention_s; /* [qr] */
    /* an error the writer's apply chose, for done to send */
    uint16_t err_tag;
    const char *err_message;
    union {
        struct op_card_state card;
        struct op_mandate_state mandate; /* MANDATE_*, CIT, MIT (ops/mandates.c) */
        struct op_session_state session; /* SESSION_*, CARD_MAP, MAP_RESOLVE (ops/sessions.c) */
        struct op_qr_state qr;
    } u;
    struct op_wallet_state wallet; /* WALLET_DECRYPT only */
};

/* op_job_new: a job for |req| with |handler| (loop thread). NULL when out of
 * memory. */
struct op_job *op_job_new(struct vault_service *svc, struct vault_request *req, op_handler_fn handler);

/* op_job_queue hands |j| to the worker pool; the loop's reference is dropped
 * when the pool is done with it. 0 or -1 (then the caller answers and frees). */
int op_job_queue(struct op_job *j);

/* op_job_free frees a job that was never queued. */
void op_job_free(struct op_job *j);

/* Finishing: exactly one of these per job, from any thread. They answer the
 * request and drop the request's reference. */
void op_reply(struct op_job *j, const void *msg);
void op_fail(struct op_job *j, int status, uint16_t tag, const char *message);
/* op_fail_rule: op_fail with the RULE a LIMIT_EXCEEDED names (a mandate rule). */
void op_fail_rule(struct op_job *j, int status, uint16_t tag, const char *rule, const char *message);

/* The fingerprint index key: merchant 0x00 fingerprint. */
#define FP_KEY_LEN_MAX (API_ID_MAX + 1u + RECORD_FINGERPRINT_LEN)
size_t ops_fp_key(uint8_t out[FP_KEY_LEN_MAX], const char *merchant,
                  const uint8_t fp[RECORD_FINGERPRINT_LEN]);

/* ops_card_fingerprint: HMAC-SHA256(|fpk|, merchant 0x00 PAN) in the HSM,
 * the dedup key of a card. 0 or a negated status. */
int ops_card_fingerprint(hsm_session *s, hsm_key *fpk, const char *merchant, const char *pan,
                         uint8_t out[RECORD_FINGERPRINT_LEN]);

/* ops_card_save encodes |rec| and puts it as the record of |token| (flags
 * as store_put). Inside a write job. */
int ops_card_save(struct store_txn *t, const char *token, const struct card_record *rec,
                  unsigned flags);

/* Card-on-file building blocks shared by STORE and WALLET_DECRYPT; each
 * works on j->u.card. */

/* ops_card_load reads the record of |token| if it belongs to |merchant|.
 * Another merchant's token is NOT_FOUND, so an answer never tells it
 * exists; a record that does not decode is logged and refused. */
int ops_card_load(struct store_txn *t, const char *merchant, const char *token,
                  struct card_record *out);

/* ops_customer_holds: whether |token| is one of |customer|'s cards at
 * |merchant|. 0 or -API_STATUS_NOT_FOUND (or a store status). */
int ops_customer_holds(struct store_txn *t, const char *merchant, const char *customer,
                       const char *token);

/* ops_time_hsm records an HSM call's duration since |t0| (metrics_now_ns). */
void ops_time_hsm(struct op_job *j, enum metrics_hsm_call call, uint64_t t0);

/* ops_card_fingerprints: the card's fingerprint under the current FPK (and
 * the previous one while the index is rebuilt) into rec.fingerprint /
 * fp_prev. 0 or a negated status. */
int ops_card_fingerprints(struct op_job *j, hsm_session *s, const char *merchant);

/* ops_card_token: a fresh token of the job's format for |pan|, from the HSM
 * RNG. */
int ops_card_token(struct op_job *j, hsm_session *s, const char *pan, char out[API_ID_MAX + 1]);

/* ops_card_seal: |sec| sealed into |rec| for |token| under the current DEK. */
int ops_card_seal(struct op_job *j, hsm_session *s, const char *token, struct card_record *rec,
                  const struct card_secret *sec);

/* ops_card_put_new (writer): rec saved under a token no record holds,
 * drawing and sealing again while the token is taken. */
int ops_card_put_new(struct op_job *j, struct store_txn *t);

/* What filing a card on file needs. */
struct card_filing {
    const char *merchant;
    const char *customer; /* CustomerNumber */
    uint8_t exp_month;
    uint16_t exp_year;
};

/* ops_card_file (writer): the card of j->u.card for the customer: found by
 * fingerprint (linked, expiry updated) or saved new with its index entries.
 * found / found_token / dedup say what happened. */
int ops_card_file(struct op_job *j, struct store_txn *t, const struct card_filing *f);

/* op_submit_write queues j->write with |apply|; its done answers through
 * |done|. On a submit failure the job is failed with that status. */
void op_submit_write(struct op_job *j, int (*apply)(struct store_write *, struct store_txn *),
                     void (*done)(struct op_job *j, int result));

/* The job a store_write belongs to. */
struct op_job *op_job_of_write(struct store_write *w);

/* op_audit fills an audit event for the job's request (client, op, request
 * id, merchant) with |status|, |token| and |detail|, and appends it. */
int op_audit(struct op_job *j, struct store_txn *t, unsigned status, const char *token,
             const char *detail);

/* An HSM session for the calling worker; NULL with the job failed
 * (HSM_UNAVAILABLE) when none can be had. Release with hsm_session_release. */
hsm_session *op_session(struct op_job *j);

/* Fixed messages, so the same failure reads the same everywhere. */
#define OP_MSG_NOT_FOUND "no such card for this merchant"
#define OP_MSG_HSM "the HSM cannot be reached"
#define OP_MSG_STORE "the store cannot be written"
#define OP_MSG_AUDIT "the audit log cannot be written; operation refused"
#define OP_MSG_INTERNAL "internal error; see the service log"

/* A status's default message. */
const char *op_message(int status);

/* The operations (vault/ops/<area>.c). Each runs on a worker thread. */
void ops_status(struct op_job *j);
void ops_card_store(struct op_job *j);
void ops_card_get(struct op_job *j);
void ops_card_list(struct op_job *j);
/* KEY_STATUS: the vault's keys, their versions, states and KCVs. */
void ops_key_status(struct op_job *j);
void ops_card_update(struct op_job *j);
void ops_card_delete(struct op_job *j);
void ops_card_reveal(struct op_job *j);
/* WALLET_DECRYPT (ops/wallets.c). */
void ops_wallet_decrypt(struct op_job *j);
/* MANDATE_CREATE, MANDATE_GET, MANDATE_CANCEL, CIT_AUTHORIZE, MIT_AUTHORIZE
 * (ops/mandates.c). */
void ops_mandate_create(struct op_job *j);
void ops_mandate_get(struct op_job *j);
void ops_mandate_cancel(struct op_job *j);
void ops_cit_authorize(struct op_job *j);
void ops_mit_authorize(struct op_job *j);
/* ops_mandates_card_delete (writer, CARD_DELETE): -API_STATUS_CONFLICT (with
 * j->err_tag / err_message set) while a mandate of |token| is active; else
 * deletes the card's cancelled and ended mandates. 0 or a negated status. */
int ops_mandates_card_delete(struct op_job *j, struct store_txn *t, const char *token);
/* SESSION_INIT, SESSION_CHECK, CARD_MAP, MAP_RESOLVE (ops/sessions.c). */
void ops_session_init(struct op_job *j);
void ops_session_check(struct op_job *j);
void ops_card_map(struct op_job *j);
void ops_map_resolve(struct op_job *j);
/* QR_ISSUE, QR_REDEEM, QR_STATUS (ops/qr.c). */
void ops_qr_issue(struct op_job *j);
void ops_qr_redeem(struct op_job *j);
void ops_qr_status(struct op_job *j);
/* ops_qr_load reads the record of request |id|: 0, -API_STATUS_NOT_FOUND,
 * a store status, or -API_STATUS_INTERNAL for a record that does not decode
 * (logged). ops_qr_save encodes |rec| and puts it as that record (flags as
 * store_put), inside a write job. */
int ops_qr_load(struct store_txn *t, const uint8_t id[QR_REQUEST_ID_LEN], struct qr_record *out);
int ops_qr_save(struct store_txn *t, const uint8_t id[QR_REQUEST_ID_LEN],
                const struct qr_record *rec, unsigned flags);
/* The sweeper's step for a SWEEP_QR entry (writer): the request record of
 * |key| and its order index entry (if it still names that request), once
 * the request has expired at |now_ms|. 0 or a negated store status. */
int ops_qr_sweep(struct store_txn *t, const uint8_t *key, size_t len, uint64_t now_ms);

/* The audit job of a refused request (DENIED), submitted from the loop: the
 * refusal is answered once it is recorded (or, if the log cannot be written,
 * answered anyway and logged: it is refused either way). */
void ops_deny(struct op_job *j);

#endif
