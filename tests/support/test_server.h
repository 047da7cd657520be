/*
 * test_server.h - a minimal tokenvault server for tests: one thread, TLS 1.3
 * requiring a client certificate from the test CA (or a Unix socket without
 * TLS), decoding requests with the real codec and answering through a handler.
 *
 * Connections are served one at a time, in the order they arrive; a second
 * client waits in the listen backlog until the first one's connection ends.
 * Each read is one batch: the whole requests it completes are handed to the
 * handler in order (or in reverse with reverse_batches) and the replies of
 * the batch are sent together. A request that does not decode is answered
 * with api_frame_write_error (the decoder's status and tag); a bad length
 * prefix closes the connection, as the stream cannot be resynchronised.
 *
 * Certificates come from tests/support/make_certs.sh.
 */
#ifndef TOKENVAULT_TESTS_SUPPORT_TEST_SERVER_H
#define TOKENVAULT_TESTS_SUPPORT_TEST_SERVER_H

#include <stdint.h>

#include "api/frame.h"
#include "api/writer.h"

struct tv_test_server;

/* Appends zero or more whole response frames (api_frame_write /
 * api_frame_write_error) to |out|. Return 0, or <0 to make the server close
 * the connection after sending what is in |out|. Runs on the server thread. */
typedef int (*tv_test_handler)(void *ctx, const struct api_frame *req, struct api_writer *out);

struct tv_test_server_config {
    const char *dir;         /* certificates from make_certs.sh (ca.pem, server.pem, server.key) */
    const char *unix_path;   /* non-NULL: listen on this Unix socket, no TLS, instead of TCP 127.0.0.1 */
    tv_test_handler handler; /* NULL: tv_test_handler_sample */
    void *ctx;
    int reverse_batches;     /* answer the requests of one read batch in reverse order */
};

/* Listens (TCP on 127.0.0.1, a free port; or the Unix path, replacing a stale
 * socket file) and starts the server thread. Returns 0 or -1. */
/* tv_test_certs creates a fresh directory from the mkdtemp template |tmpl|
 * (rewritten in place, e.g. "/tmp/tv-cli-XXXXXX") and fills it with
 * tests/support/make_certs.sh: ca.pem, server.pem/key, client.pem/key and the
 * rogue-* set. Returns 0 or -1. */
int tv_test_certs(char *tmpl);

int tv_test_server_start(struct tv_test_server **out, const struct tv_test_server_config *cfg);

/* The TCP port; 0 for a Unix socket server. */
uint16_t tv_test_server_port(const struct tv_test_server *s);

/* Stops the thread (within the 5 s socket timeouts at worst), closes
 * everything, removes the Unix socket file and frees |s|. Accepts NULL. */
void tv_test_server_stop(struct tv_test_server *s);

/* Answers every request OK with its response struct filled by
 * tv_sample_fill(api_schema_response(op), msg, (unsigned)request_id, TV_SAMPLE_ALL). */
int tv_test_handler_sample(void *ctx, const struct api_frame *req, struct api_writer *out);

#endif
