/*
 * seal.h - sealed start: the HSM user PIN rebuilt from M officers' shares
 * (vault/shares.h) submitted over the officer socket.
 *
 * tokenvaultd configured with pin_source = sealed opens its store and the
 * officer socket only, and answers SEALED to everything but PING, STATUS and
 * UNSEAL_SHARE. Each share is checked on arrival against the public share
 * set ([hsm] share_set): a share of another set, a damaged share or one whose
 * index was already given is refused (SHARE_REJECTED) and not counted; the
 * answer does not say which check failed. Once M distinct valid shares are
 * in, the PIN is rebuilt and checked against the set's secret hash before
 * the token sees it, handed to hsm_open through a PIN-source callback that
 * gives it once, and wiped; the shares are wiped too.
 *
 * Consequence: the service cannot log in again by itself. If the token is
 * lost after unseal (device removed, login state lost), requests fail
 * HSM_UNAVAILABLE until the service is restarted and unsealed again
 * (docs/OPERATIONS.md). That is the price of never keeping the PIN.
 *
 * Threads: seal_submit and the queries run on the loop thread;
 * seal_pin_get runs wherever hsm_open runs (a worker), after the loop has
 * stopped touching the seal (state SEAL_OPENING).
 */
#ifndef TOKENVAULT_VAULT_SEAL_H
#define TOKENVAULT_VAULT_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/proto.h"
#include "vault/shares.h"

enum seal_state {
    SEAL_WAITING = 1, /* fewer than M shares */
    SEAL_OPENING,     /* M shares in; the HSM is being opened */
    SEAL_OPEN,        /* unsealed */
};

struct vault_seal {
    struct share_set set;
    enum seal_state state;
    struct share shares[SHARE_COUNT_MAX];
    char officers[SHARE_COUNT_MAX][API_ID_MAX + 1];
    size_t num;
    unsigned rejected; /* shares refused since start, for the audit entry */
    uint8_t pin[SHARE_PAYLOAD_MAX];
    size_t pin_len;
    bool pin_ready;
};

/* seal_load reads the share set file. 0, or -1 with a reason in |err|. */
int seal_load(struct vault_seal *s, const char *set_path, char *err, size_t err_len);

/* seal_submit takes one officer's share (wire bytes). Returns 0 when it was
 * counted, or a SHARE_ERR_* (refused; nothing changed): SHARE_ERR_FORMAT,
 * SHARE_ERR_SET, SHARE_ERR_CHECK, SHARE_ERR_DUPLICATE. Refused too when not
 * SEAL_WAITING (SHARE_ERR_ARG). */
int seal_submit(struct vault_seal *s, const char *officer, const uint8_t *share, size_t len);

/* seal_combine, when M shares are in, rebuilds the PIN, keeps it for
 * seal_pin_get, wipes the shares and moves to SEAL_OPENING. SHARE_ERR_*
 * otherwise (the shares are then dropped: officers submit again). */
int seal_combine(struct vault_seal *s);

/* The hsm_pin_get_fn for hsm_pin_source_callback: copies the PIN once and
 * wipes it; later calls fail HSM_ERR_PIN_SOURCE. */
int seal_pin_get(void *ctx, uint8_t *buf, size_t cap, size_t *out_len);

/* seal_reset wipes the PIN and the shares and waits for shares again (after
 * an unseal attempt that did not open the HSM). The refused count stays. */
void seal_reset(struct vault_seal *s);

/* Wipes everything secret (at unseal and at close). */
void seal_wipe(struct vault_seal *s);

#endif
