/*
 * server.h - the RPC server of tokenvaultd: a libuv TCP listener speaking TLS
 * 1.3 with client certificates (OpenSSL through memory BIOs, so libuv owns the
 * socket), and the officer Unix socket (no TLS; access by file mode). It reads
 * frames, decodes them with api/, and hands each decoded request to the
 * dispatcher; the dispatcher answers it later, from any thread.
 *
 * What the server decides itself (docs/PROTOCOL.md sections 2, 7, 9):
 *   - the handshake: TLS 1.3 only, a client certificate from the configured CA
 *     is required; a certificate that no [client] section names is logged and
 *     the connection closed right after the handshake;
 *   - framing errors: a bad length prefix (TOO_LARGE, shorter than a header)
 *     or a header refused by rules F3..F6 (BAD_REQUEST, UNSUPPORTED_VERSION)
 *     is answered and the connection closed (PROTOCOL.md 7.3: the stream is
 *     no longer trusted); a frame with an unknown opcode or fields that do not
 *     decode is answered with the decoder's status and errorTag, and the
 *     connection stays open;
 *   - bounds: past max_connections a new TCP connection is closed at once
 *     (officer socket connections do not count, so a flood of TCP peers
 *     cannot lock the officers out); a request past max_in_flight on its
 *     connection is answered OVERLOADED at once (retryAfterMs set); a request
 *     id already in flight on the connection is BAD_REQUEST; while draining
 *     every new request is SHUTTING_DOWN;
 *   - timeouts: the handshake must finish within handshake_timeout_ms, a frame
 *     once begun within VAULT_FRAME_TIMEOUT_MS, and a connection with nothing
 *     in flight is closed after idle_timeout_ms. A peer that stops reading its
 *     responses makes the server stop reading its requests once
 *     VAULT_CONN_WRITE_MAX bytes wait to be sent, and is closed when they
 *     make no progress for idle_timeout_ms. Memory per connection is
 *     therefore bounded by the in-flight bound and VAULT_CONN_WRITE_MAX.
 *   - one log line per request (op, status, request id, client, merchant,
 *     duration) and metrics_request, when the response is queued.
 *
 * Threads: every function here runs on the loop thread, except
 * vault_request_reply and vault_request_error, which any thread may call.
 */
#ifndef TOKENVAULT_VAULT_SERVER_H
#define TOKENVAULT_VAULT_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "api/frame.h"
#include "vault/config.h"
#include "vault/metrics.h"

/* A frame that has begun must be whole within this time (slow-loris bound). */
#define VAULT_FRAME_TIMEOUT_MS 10000u
/* Response bytes that may wait for a slow reader before the server stops
 * reading that connection's requests. */
#define VAULT_CONN_WRITE_MAX (4u * 65536u)
/* retryAfterMs sent with OVERLOADED by the server. */
#define VAULT_RETRY_AFTER_MS 50u

/* One decoded request. Owned by the server; the dispatcher borrows it until it
 * calls vault_request_reply or vault_request_error, exactly once. After that
 * call the request may already be freed. */
struct vault_request {
    struct api_frame frame;          /* header and decoded message */
    char client[API_ID_MAX + 1];     /* client name; "officer" on the local socket */
    bool officer;                    /* arrived on the officer socket */
    const struct vault_client *client_cfg; /* the config entry; NULL on the officer
                                              socket; valid only during dispatch */
    const char *merchant;            /* the request's merchant field, or NULL */
    uint64_t received_ns;            /* metrics_now_ns() when the frame was whole */
    void *server_private_;
};

/* Called on the loop thread for every request that decoded. */
typedef void (*vault_dispatch_fn)(void *ctx, struct vault_request *req);

struct vault_server_config {
    uv_loop_t *loop;
    const struct vault_config *cfg; /* listen, tls, officer_socket, bounds, clients */
    vault_dispatch_fn dispatch;
    void *ctx;
    struct vault_metrics *metrics; /* may be NULL */
    bool officer_only; /* sealed start: the TCP listener waits for
                          vault_server_listen_tcp */
};

struct vault_server;

/* vault_server_start loads the TLS certificate, key and client CA, binds the
 * TCP listener and the officer socket (mode 0600, replacing a stale socket
 * file) and starts accepting. |c->cfg| is borrowed until
 * vault_server_set_config replaces it. It also sets SIGPIPE to be ignored in
 * the process: libuv writes with write(2), and a peer that resets its
 * connection would otherwise kill the service (the error comes back as
 * EPIPE instead). Returns 0, or -1 with a reason in |err|;
 * after -1, run the loop to let the handles already opened close (nothing is
 * left once they have). */
int vault_server_start(struct vault_server **out, const struct vault_server_config *c, char *err,
                       size_t err_len);

/* vault_server_listen_tcp binds the TCP listener of a server started
 * officer_only (sealed start, once unsealed). 0, or -1 with a reason. */
int vault_server_listen_tcp(struct vault_server *s, char *err, size_t err_len);

/* The TCP port bound (useful when the config asked for port 0). */
uint16_t vault_server_port(const struct vault_server *s);

/* vault_server_set_config makes |cfg| the config for client lookups and log
 * level from now on (SIGHUP): open connections are re-checked at their next
 * request, so a removed client loses access at once (its request is answered
 * DENIED and the connection closed). Listen address, TLS files and bounds stay
 * as started. |cfg| is borrowed; the previous one may be freed once this
 * returns. */
void vault_server_set_config(struct vault_server *s, const struct vault_config *cfg);

/* vault_server_drain stops accepting connections and answers new requests
 * SHUTTING_DOWN; |drained| is called (on the loop) once no request is in
 * flight and every response has been written, or at once if none is. */
void vault_server_drain(struct vault_server *s, void (*drained)(void *ctx), void *ctx);

/* vault_server_close closes every connection and listener; |s| is freed once
 * libuv has closed every handle (run the loop until it returns). Requests
 * still in flight are freed when their dispatcher answers them. */
void vault_server_close(struct vault_server *s);

unsigned vault_server_connections(const struct vault_server *s);
unsigned vault_server_in_flight(const struct vault_server *s);

/* vault_request_reply answers |req| with status OK and |msg|, a struct of the
 * opcode's response schema (api_schema_response), encoded at once (the caller
 * may wipe |msg| when this returns). If it does not encode, the answer is
 * INTERNAL and the reason is logged. Any thread. */
void vault_request_reply(struct vault_request *req, const void *msg);

/* vault_request_error answers |req| with |status| (not OK), a fixed |message|
 * that never contains request values, the field at fault (|tag|, 0 for none)
 * and |retry_after_ms| (0 for none; only with RETRY statuses). Any thread. */
void vault_request_error(struct vault_request *req, unsigned status, uint16_t tag,
                         const char *message, uint32_t retry_after_ms);

/* vault_request_error_rule: vault_request_error (no retryAfterMs) with the
 * RULE field set to |rule|, the mandate rule a LIMIT_EXCEEDED names
 * (docs/PROTOCOL.md section 8). A rule the codec refuses (empty, too long,
 * not printable ASCII) is left out. Any thread. */
void vault_request_error_rule(struct vault_request *req, unsigned status, uint16_t tag,
                              const char *rule, const char *message);

#endif
