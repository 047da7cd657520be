/*
 * gen_frame_corpus - writes the seed corpus of fuzz_frame_decode into DIR:
 *
 *   gen_frame_corpus tests/fuzz/corpus/fuzz_frame_decode
 *
 * Each file is a frame body (what follows the length prefix), the fuzzer's
 * input. Valid frames: the request and the response of every operation filled
 * by tv_sample_fill in modes REQUIRED and ALL (an ALL frame identical to its
 * REQUIRED frame is not written twice), and error responses. Broken frames,
 * one per rule the fuzzer should start next to: truncated, duplicate field,
 * unknown tag, prohibited tag, bad UTF-8, trailing bytes, bad magic, bad
 * version, a list item cut short. Names say what is inside
 * (req-card_store-all, bad-duplicate-field). Run it again after a change to
 * the messages; the output is deterministic.
 */
#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/frame.h"
#include "tests/support/sample.h"

#define EXIT_TROUBLE 2
#define PATH_MAX_LEN 4096u

struct op {
    uint16_t opcode;
    const char *lower;
};

static const struct op ops[] = {
#define OP(op, lower, req, resp) {API_OP_##op, #lower},
    API_MSG_LIST(OP)
#undef OP
};

static const char *dir;
static unsigned written;

static void
save(const char *name, const uint8_t *body, size_t len)
{
    char path[PATH_MAX_LEN];
    FILE *f;

    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        errx(EXIT_TROUBLE, "path too long");
    f = fopen(path, "wb");
    if (f == NULL || fwrite(body, 1, len, f) != len || fclose(f) != 0)
        err(EXIT_TROUBLE, "%s", path);
    written++;
}

/* Encodes a sample of schema |s| as a whole frame into |w| (reset first). */
static void
sample_frame(struct api_writer *w, const struct api_header *h, const struct api_schema *s,
             unsigned seed, enum tv_sample_mode mode)
{
    struct api_field_error ferr;
    void *msg = calloc(1, s->size);
    int rc;

    if (msg == NULL || tv_sample_fill(s, msg, seed, mode) < 0)
        errx(EXIT_TROUBLE, "cannot fill %s", s->name);
    api_writer_reset(w);
    rc = api_frame_write(w, h, s, msg, &ferr);
    if (rc != 0)
        errx(EXIT_TROUBLE, "cannot encode %s: %s (tag 0x%04x)", s->name, api_strerror(rc),
             ferr.tag);
    api_msg_cleanup(s, msg);
    free(msg);
}

static const uint8_t *
body(const struct api_writer *w)
{
    return api_writer_data(w) + API_LEN_PREFIX;
}

static size_t
body_len(const struct api_writer *w)
{
    return api_writer_len(w) - API_LEN_PREFIX;
}

/* The valid frames of one direction of every operation. */
static void
gen_valid(struct api_writer *w, struct api_writer *prev)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        for (int resp = 0; resp < 2; resp++) {
            struct api_header h = {API_VERSION, resp ? API_FLAG_RESPONSE : 0, ops[i].opcode,
                                   API_STATUS_OK, 100 + i};
            const struct api_schema *s =
                resp ? api_schema_response(ops[i].opcode) : api_schema_request(ops[i].opcode);
            char name[128];

            sample_frame(prev, &h, s, (unsigned)i, TV_SAMPLE_REQUIRED);
            snprintf(name, sizeof(name), "%s-%s-required", resp ? "resp" : "req", ops[i].lower);
            save(name, body(prev), body_len(prev));
            sample_frame(w, &h, s, (unsigned)i, TV_SAMPLE_ALL);
            if (api_writer_len(w) == api_writer_len(prev) &&
                memcmp(api_writer_data(w), api_writer_data(prev), api_writer_len(w)) == 0)
                continue;
            snprintf(name, sizeof(name), "%s-%s-all", resp ? "resp" : "req", ops[i].lower);
            save(name, body(w), body_len(w));
        }
    }
}

static void
gen_errors(struct api_writer *w)
{
    const struct api_header req = {API_VERSION, 0, API_OP_CARD_STORE, API_STATUS_OK, 7};
    struct api_header h = {API_VERSION, API_FLAG_RESPONSE, API_OP_MIT_AUTHORIZE,
                           API_STATUS_LIMIT_EXCEEDED, 9};

    api_writer_reset(w);
    if (api_frame_write_error(w, &req, API_STATUS_MISSING_FIELD, API_TAG_PAN,
                              "required field absent") != 0)
        errx(EXIT_TROUBLE, "cannot encode an error");
    save("resp-error-missing_field", body(w), body_len(w));
    sample_frame(w, &h, api_schema_error(), 3, TV_SAMPLE_ALL);
    save("resp-error-all", body(w), body_len(w));
}

/* Appends one raw field. */
static void
put_field(struct api_writer *w, uint16_t tag, const void *value, size_t len)
{
    if (api_writer_put_u16(w, tag) != 0 || api_writer_put_u32(w, (uint32_t)len) != 0 ||
        api_writer_put_bytes(w, value, len) != 0)
        errx(EXIT_TROUBLE, "cannot append a field");
}

/* A valid CARD_STORE request (REQUIRED sample) in |w|; the caller appends
 * the bytes that break it. The length prefix is left as it was: the corpus
 * holds only what follows it. */
static void
card_store(struct api_writer *w)
{
    const struct api_header h = {API_VERSION, 0, API_OP_CARD_STORE, API_STATUS_OK, 42};

    sample_frame(w, &h, api_schema_request(API_OP_CARD_STORE), 5, TV_SAMPLE_REQUIRED);
}

static void
gen_broken(struct api_writer *w)
{
    static const uint8_t bad_utf8[] = {'J', 0xC0, 0xAF, 'n'};   /* overlong '/' */
    static const uint8_t surrogate[] = {0xED, 0xA0, 0x80};      /* U+D800 */
    static const char merchant[] = "m-1001";
    static const char cvc[] = "123";
    const struct api_header list_hdr = {API_VERSION, API_FLAG_RESPONSE, API_OP_CARD_LIST,
                                        API_STATUS_OK, 43};
    uint8_t *copy;
    size_t len;

    /* The last field (a 1-byte value) cut inside its value, then inside its
     * tag and length: TRUNCATED and TRAILING_BYTES. */
    card_store(w);
    save("bad-truncated-value", body(w), body_len(w) - 1);
    save("bad-truncated-field-header", body(w), body_len(w) - 3);

    card_store(w);
    put_field(w, API_TAG_MERCHANT, merchant, sizeof(merchant) - 1);
    save("bad-duplicate-field", body(w), body_len(w));

    card_store(w);
    put_field(w, 0x7777, merchant, sizeof(merchant) - 1);
    save("bad-unknown-tag", body(w), body_len(w));

    card_store(w);
    put_field(w, API_TAG_CVC, cvc, sizeof(cvc) - 1);
    save("bad-prohibited-cvc", body(w), body_len(w));

    card_store(w);
    put_field(w, API_TAG_HOLDER, bad_utf8, sizeof(bad_utf8));
    save("bad-utf8-overlong", body(w), body_len(w));

    card_store(w);
    put_field(w, API_TAG_HOLDER, surrogate, sizeof(surrogate));
    save("bad-utf8-surrogate", body(w), body_len(w));

    card_store(w);
    if (api_writer_put_u16(w, API_TAG_MERCHANT) != 0 || api_writer_put_u8(w, 0) != 0)
        errx(EXIT_TROUBLE, "cannot append");
    save("bad-trailing-bytes", body(w), body_len(w));

    /* Header errors: the same request with one header byte changed. */
    card_store(w);
    len = body_len(w);
    copy = malloc(len);
    if (copy == NULL)
        errx(EXIT_TROUBLE, "out of memory");
    memcpy(copy, body(w), len);
    copy[0] = 'X';
    save("bad-magic", copy, len);
    memcpy(copy, body(w), len);
    copy[2] = API_VERSION + 1;
    save("bad-version", copy, len);
    memcpy(copy, body(w), len);
    copy[4] = 0x7f;
    save("bad-opcode", copy, len);
    free(copy);

    /* A CARD_LIST response whose last list item is cut short inside the list
     * field, the field itself whole. */
    sample_frame(w, &list_hdr, api_schema_response(API_OP_CARD_LIST), 2, TV_SAMPLE_MAX);
    len = body_len(w);
    copy = malloc(len);
    if (copy == NULL)
        errx(EXIT_TROUBLE, "out of memory");
    memcpy(copy, body(w), len);
    /* Body: header, then the one CARDS field: tag u16, length u32, items.
     * Shorten the field by 2 bytes and say so in its length. */
    {
        size_t at = API_HEADER_LEN + 2;
        uint32_t flen = (uint32_t)copy[at] << 24 | (uint32_t)copy[at + 1] << 16 |
                        (uint32_t)copy[at + 2] << 8 | copy[at + 3];

        flen -= 2;
        copy[at] = (uint8_t)(flen >> 24);
        copy[at + 1] = (uint8_t)(flen >> 16);
        copy[at + 2] = (uint8_t)(flen >> 8);
        copy[at + 3] = (uint8_t)flen;
    }
    save("bad-list-item-truncated", copy, len - 2);
    free(copy);
}

int
main(int argc, char **argv)
{
    struct api_writer w, prev;

    if (argc != 2) {
        fprintf(stderr, "usage: gen_frame_corpus DIR\n");
        return EXIT_TROUBLE;
    }
    dir = argv[1];
    api_writer_init(&w, API_LEN_PREFIX + API_FRAME_MAX);
    api_writer_init(&prev, API_LEN_PREFIX + API_FRAME_MAX);
    gen_valid(&w, &prev);
    gen_errors(&w);
    gen_broken(&w);
    api_writer_cleanup(&w);
    api_writer_cleanup(&prev);
    printf("%s: %u files\n", dir, written);
    return 0;
}
