/*
 * client.h - libtokenvault: the client gateways link to talk to tokenvaultd.
 *
 * One struct api_client is one connection to one vault: TLS 1.3 with a client
 * certificate over TCP, or plain frames over the local Unix socket (officer
 * tools). It connects lazily on the first call, checks the server certificate
 * against the configured CA and server name, and keeps deadlines for connect,
 * handshake and each request.
 *
 * Two ways to call:
 *   - blocking: api_call_<operation>() (one per opcode, generated from
 *     API_MSG_LIST) or api_client_call(); one request, wait for its answer;
 *   - pipelined: api_client_submit() many requests, then api_client_collect()
 *     their replies, which may arrive in any order and are matched by request
 *     id. Do not mix the two while pipelined requests are in flight
 *     (API_ERR_BUSY).
 *
 * Return values: 0 when the server answered OK; the negated wire status
 * (-API_STATUS_NOT_FOUND, ...) when it answered with an error, with its
 * message, field tag and rule in |err|; or an API_ERR_* client error. Only
 * API_ERR_CONNECTION and API_ERR_TIMEOUT leave a request's outcome unknown;
 * the client never resends a request on its own (a charge must not run twice).
 *
 * Reconnecting: after a broken connection or a timeout the connection is
 * closed; the next call opens a new one. Before sending on an idle connection
 * the client checks whether the server has closed it (idle timeout) and, if
 * so, reconnects first, so an idle close never costs a request.
 *
 * Threads: an api_client is not thread-safe; use one per thread (or guard it
 * with a lock). Different clients are independent. Response structs returned
 * to the caller own no client memory.
 */
#ifndef TOKENVAULT_API_CLIENT_H
#define TOKENVAULT_API_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "api/frame.h"
#include "api/msg.h"
#include "api/proto.h"

/* Defaults, milliseconds, used when a config field is 0. */
#define API_CLIENT_CONNECT_TIMEOUT_MS 5000u
#define API_CLIENT_HANDSHAKE_TIMEOUT_MS 5000u
#define API_CLIENT_REQUEST_TIMEOUT_MS 30000u
/* Requests a client keeps in flight by default, and at most. The server has
 * its own per-connection cap and answers OVERLOADED beyond it. */
#define API_CLIENT_IN_FLIGHT_DEFAULT 64u
#define API_CLIENT_IN_FLIGHT_MAX 4096u

struct api_client_config {
    /* Where: a TCP host and port (TLS), or a Unix socket path (no TLS; access
     * is by the socket's file permissions). Exactly one of host, unix_path. */
    const char *host;
    uint16_t port;
    const char *unix_path;

    /* TLS (TCP only). The name the server certificate must carry; defaults to
     * host. Each of CA, certificate and key is given as a file path or as PEM
     * text in memory (not both). All three are required for TCP. */
    const char *server_name;
    const char *ca_file;
    const char *ca_pem;
    const char *cert_file;
    const char *cert_pem;
    const char *key_file;
    const char *key_pem;

    unsigned connect_timeout_ms;
    unsigned handshake_timeout_ms;
    unsigned request_timeout_ms; /* per blocking call, or per collect */
    unsigned max_in_flight;
};

struct api_client;

/* api_client_new checks |cfg|, loads the CA, certificate and key (a key that
 * does not match its certificate is refused) and returns an unconnected
 * client in *out. The strings of |cfg| are copied. Returns 0,
 * API_ERR_INVALID_ARG, API_ERR_CONFIG or API_ERR_NO_MEMORY. */
API_WUR int api_client_new(struct api_client **out, const struct api_client_config *cfg);

/* api_client_free closes the connection (TLS close_notify) and frees |c|,
 * wiping its buffers. Accepts NULL. */
void api_client_free(struct api_client *c);

/* api_client_connect opens the connection now instead of at the first call.
 * Returns 0, API_ERR_CONNECT, API_ERR_TLS or API_ERR_TIMEOUT. */
API_WUR int api_client_connect(struct api_client *c);

/* api_client_close closes the connection; pipelined requests in flight are
 * forgotten. The next call reconnects. */
void api_client_close(struct api_client *c);

/* api_client_call sends one request of |opcode| (|req| is a struct of
 * api_schema_request(opcode)) and waits for its answer, decoded into |resp|
 * (a struct of api_schema_response(opcode), zeroed first; release it with
 * api_msg_cleanup). |err| (may be NULL) receives the error body when the
 * server answers an error; it is zeroed otherwise. */
API_WUR int api_client_call(struct api_client *c, uint16_t opcode, const void *req, void *resp,
                            struct api_error_resp *err);

/* Typed blocking calls, one per operation:
 *   int api_call_card_store(struct api_client *c,
 *                           const struct api_card_store_req *req,
 *                           struct api_card_store_resp *resp,
 *                           struct api_error_resp *err);
 * and so on for every row of API_MSG_LIST. Same contract as api_client_call. */
#define API__CALL_DECL(op, lower, req_t, resp_t)                                        \
    API_WUR int api_call_##lower(struct api_client *c, const struct req_t *req,       \
                                 struct resp_t *resp, struct api_error_resp *err);
API_MSG_LIST(API__CALL_DECL)
#undef API__CALL_DECL

/* api_client_submit queues one request and sends it (or buffers it until the
 * next collect). *out_id is its request id. Returns 0, API_ERR_BUSY when
 * max_in_flight requests are already waiting, an encoder error (the request
 * is not sent), or a connection error. */
API_WUR int api_client_submit(struct api_client *c, uint16_t opcode, const void *req,
                              uint64_t *out_id);

/* A reply collected from the pipeline. */
struct api_reply {
    uint64_t request_id;
    uint16_t opcode;
    int status;                       /* 0 or -API_STATUS_* of the answer */
    const struct api_schema *schema;  /* of msg */
    void *msg;                        /* the response struct when status is 0 */
    struct api_error_resp error;      /* the error body otherwise */
};

/* api_client_collect sends what is buffered and waits for the next reply,
 * whichever request it answers. Returns 0 with *out filled (release it with
 * api_reply_cleanup), API_ERR_INVALID_ARG when nothing is in flight,
 * API_ERR_TIMEOUT, or API_ERR_CONNECTION / API_ERR_PROTOCOL, after which the
 * connection is closed and every request still in flight has an unknown
 * outcome. */
API_WUR int api_client_collect(struct api_client *c, struct api_reply *out);

/* Requests submitted and not yet collected. */
size_t api_client_in_flight(const struct api_client *c);

/* api_reply_cleanup wipes and frees what a reply holds. Accepts NULL. */
void api_reply_cleanup(struct api_reply *r);

#endif
