/*
 * metrics.h - counters and latency histograms of tokenvaultd, written in the
 * Prometheus text exposition format (version 0.0.4) to a file that
 * node_exporter's textfile collector reads.
 *
 * Why a textfile and not an HTTP endpoint: the appliance then opens no port
 * beyond the RPC, and the collector that already runs on the host exports the
 * file with its own TLS and access control. The file is rewritten every
 * interval (write to "<path>.tmp", fsync-free, then rename(2)), so a reader
 * never sees half a file.
 *
 * Metrics (all prefixed tokenvault_):
 *   requests_total{op,status}                   counter
 *   request_duration_seconds{op}                histogram
 *   hsm_call_duration_seconds{call}             histogram
 *   store_commit_batch_size                     histogram (from store_stats)
 *   store_commits_total, store_jobs_total       counters
 *   store_entries{db}                           gauge
 *   store_map_used_bytes, store_map_size_bytes  gauges
 *   writer_queue_depth, worker_queue_depth      gauges
 *   connections, requests_in_flight             gauges
 *   key_version{key}                            gauge (dek, kek)
 *   sealed, hsm_ready                           gauges 0/1
 *   hsm_recycles_total, hsm_temp_objects_destroyed_total  counters (hsm.h
 *                                               recycle_after_objects)
 *   audit_entries_total, audit_failures_total   counters
 *   start_time_seconds                          gauge
 *
 * Thread-safe: recording uses relaxed atomics (workers and the writer record
 * HSM latencies, the loop records requests).
 */
#ifndef TOKENVAULT_VAULT_METRICS_H
#define TOKENVAULT_VAULT_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "vault/store.h"

/* The HSM calls timed. */
#define METRICS_HSM_CALL_LIST(X) \
    X(HMAC, "hmac")              \
    X(GCM_ENCRYPT, "gcm_encrypt") \
    X(GCM_DECRYPT, "gcm_decrypt") \
    X(RANDOM, "random")          \
    X(SIGN, "sign")

enum metrics_hsm_call {
#define METRICS__HSM_ENUM(name, str) METRICS_HSM_##name,
    METRICS_HSM_CALL_LIST(METRICS__HSM_ENUM)
#undef METRICS__HSM_ENUM
    METRICS_HSM_COUNT_,
};

struct vault_metrics;

/* Values sampled when the file is written, not counted as they happen. */
struct metrics_gauges {
    const struct store_stats *store; /* NULL: store metrics omitted */
    uint64_t worker_queue_depth;
    uint64_t connections;
    uint64_t requests_in_flight;
    uint32_t dek_version, kek_version, stk_version; /* 0: omitted */
    uint64_t reencrypted;      /* records moved to the current DEK */
    bool reencrypt_pending;    /* a re-encryption pass has work left */
    bool reencrypt_known;      /* the two below were counted (else omitted) */
    uint64_t reencrypt_remaining; /* records still on a retired DEK */
    uint64_t reencrypt_total;  /* the re-encryption run's size */
    bool sealed, hsm_ready;
    bool hsm_known;            /* the two below were read (else omitted) */
    uint64_t hsm_recycles;     /* planned module re-initializations */
    uint64_t hsm_temp_destroyed; /* transient objects destroyed since start */
};

int metrics_new(struct vault_metrics **out);
void metrics_free(struct vault_metrics *m);

/* A request answered: its opcode, final status and time from its last byte
 * read to its response queued. Unknown opcodes count as op="unknown". */
void metrics_request(struct vault_metrics *m, uint16_t opcode, unsigned status, uint64_t ns);
void metrics_hsm_call(struct vault_metrics *m, enum metrics_hsm_call call, uint64_t ns);
void metrics_audit(struct vault_metrics *m, bool ok);

/* metrics_render writes the whole exposition into a buffer it allocates
 * (*out, NUL-terminated, *out_len bytes without the NUL; free() it).
 * 0 or -API_STATUS_INTERNAL on allocation failure. */
int metrics_render(struct vault_metrics *m, const struct metrics_gauges *g, char **out,
                   size_t *out_len);

/* metrics_write_textfile renders and replaces |path| atomically (mode 0644:
 * the collector runs as another user; nothing in it is secret). 0 or -errno. */
int metrics_write_textfile(struct vault_metrics *m, const struct metrics_gauges *g,
                           const char *path);

/* Monotonic nanoseconds, for the durations above. */
uint64_t metrics_now_ns(void);

#endif
