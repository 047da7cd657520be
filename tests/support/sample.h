/*
 * sample.h - valid sample values for any message struct, driven by its schema.
 *
 * Round-trip tests, the codec fuzz corpus and the in-test TLS server fill
 * messages with these, so every field of every message is exercised without
 * a hand-written sample per message.
 */
#ifndef TOKENVAULT_TESTS_SAMPLE_H
#define TOKENVAULT_TESTS_SAMPLE_H

#include "api/msg.h"

enum tv_sample_mode {
    TV_SAMPLE_REQUIRED, /* required fields only, short values */
    TV_SAMPLE_ALL,      /* every optional field too */
    TV_SAMPLE_MAX,      /* every field, every value at its largest length/value */
    TV_SAMPLE_MIN,      /* every field, every value at its smallest length/value */
};

/* tv_sample_fill zeroes |msg| (a struct of schema |s|) and fills it with valid
 * values chosen by |seed| and |mode|. Lists get 1..3 items (MAX: 3). Release
 * with api_msg_cleanup (lists are allocated). Returns 0, or -1 on allocation
 * failure. BLOB fields point to static bytes. */
int tv_sample_fill(const struct api_schema *s, void *msg, unsigned seed, enum tv_sample_mode mode);

#endif
