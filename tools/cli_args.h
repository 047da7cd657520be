/*
 * cli_args.h - the tokenvault command line, read into request structs.
 *
 * Everything here is derived from api/proto.h and api/msg.h: the subcommands
 * are the rows of API_OP_LIST ("card store"), the options of a subcommand are
 * the fields of its request schema, named from the tag's C name in kebab case
 * (CUSTOMER_NUMBER -> --customer-number), and each value is parsed by the
 * rules of the tag's type and checked against the tag's limits. No code is
 * written per operation.
 *
 * Fields whose tag is API_TAG_SECRET (PAN, holder, e-mail, CVC, share) are
 * never taken from argv, where every user of the machine can read them
 * (/proc/PID/cmdline) and shells keep them in history; they come as
 * `name=value` lines (cli_request_set_secrets) from stdin or a file.
 *
 * Pure: no I/O. Not thread-safe per request; the tables are constant.
 */
#ifndef TOKENVAULT_TOOLS_CLI_ARGS_H
#define TOKENVAULT_TOOLS_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/msg.h"
#include "api/proto.h"

/* Errors of this module. */
enum {
    CLI_ERR_USAGE = -2001,     /* a bad option or value; the message says which */
    CLI_ERR_NO_MEMORY = -2002,
};

/* Room for a message naming an option and the rule it broke. */
#define CLI_WHY_MAX 256u
/* Longest option name: the longest tag C name (kebab case) plus its NUL. */
#define CLI_OPTION_NAME_MAX 32u
/* Most bytes of secret lines read for one request: every secret tag at its
 * longest (a share as hex is 512 characters, an e-mail 254), with its name,
 * several times over; more than this is not a secrets file. */
#define CLI_SECRETS_MAX 8192u

/* "cli_strerror" style name of a CLI_ERR_* code. Never NULL. */
const char *cli_strerror(int r);

/* One subcommand: a row of API_OP_LIST. */
struct cli_op {
    uint16_t opcode;
    const char *area;    /* "card" */
    const char *verb;    /* "store" */
    enum api_role role;  /* the role the service requires */
    const char *summary;
};

/* Every subcommand in API_OP_LIST order; *out_num set to the count. */
const struct cli_op *cli_op_all(size_t *out_num);
/* The subcommand |area| |verb|, or NULL. */
const struct cli_op *cli_op_find(const char *area, const char *verb);
/* Whether any subcommand has |area|. */
bool cli_area_exists(const char *area);

/* cli_option_name writes the option name of |tag| without dashes
 * ("customer-number") to |out| (CLI_OPTION_NAME_MAX bytes). Returns 0 or
 * CLI_ERR_USAGE for an undefined tag. */
int cli_option_name(char out[CLI_OPTION_NAME_MAX], uint16_t tag);

/* The field of schema |s| whose option name is |name| (without dashes), or
 * NULL. LIST fields have no option. */
const struct api_field *cli_option_find(const struct api_schema *s, const char *name);

/* Where a value came from: argv may not carry secrets; the secret lines carry
 * nothing else. */
enum cli_source {
    CLI_SRC_ARGV,
    CLI_SRC_SECRET,
};

/* A request being read from the command line. Zero it, then
 * cli_request_init; release with cli_request_cleanup on every path. */
struct cli_request {
    const struct cli_op *op;
    const struct api_schema *schema;
    void *msg;      /* owned: a struct of |schema|, calloc'd */
    uint64_t given; /* bit i: field i of the schema was set */
    uint8_t *blob;  /* owned: the BLOB field's bytes (the wallet packet) */
    size_t blob_len;
};

/* cli_request_init prepares |r| for |op|: allocates the zeroed request
 * struct. Returns 0, CLI_ERR_NO_MEMORY, or CLI_ERR_USAGE if the opcode has no
 * schema. */
int cli_request_init(struct cli_request *r, const struct cli_op *op);

/* cli_request_set parses |text| as the value of field |f| of the request and
 * stores it (setting has_x for optional fields). BOOL: true/false/yes/no/1/0;
 * integers: decimal, in the tag's range; ENUM: a name of api_enum_from_name;
 * CURRENCY: 3 letters; DATE: YYYY-MM-DD or DD.MM.YYYY; BYTES: hex; TEXT, ID,
 * DIGITS: as given, checked by api_field_check. BLOB fields are refused here
 * (cli_request_set_blob). Returns 0 or CLI_ERR_USAGE with a message in |why|
 * that names the option and the rule, never the value (it may be secret):
 * a secret field from argv, a non-secret field from the secret lines, a field
 * given twice, or a value its type or limits refuse. */
int cli_request_set(struct cli_request *r, const struct api_field *f, const char *text,
                    enum cli_source src, char why[CLI_WHY_MAX]);

/* cli_request_set_blob stores |data|/|len| as the BLOB field |f|. Takes
 * ownership of |data| (malloc'd) on success and on failure: it is wiped and
 * freed by cli_request_cleanup or here. Returns 0 or CLI_ERR_USAGE (length
 * outside the tag's limits, not a BLOB field, given twice). */
int cli_request_set_blob(struct cli_request *r, const struct api_field *f, uint8_t *data,
                         size_t len, char why[CLI_WHY_MAX]);

/* cli_request_set_secrets reads |len| bytes of `name=value` lines (blank lines
 * and lines starting with '#' are skipped; "\r\n" is accepted) and sets each
 * named secret field of the request. Returns 0 or CLI_ERR_USAGE: an unknown
 * name, a name that is not a secret field of this request, a line without
 * '=', a value its type refuses, more than CLI_SECRETS_MAX bytes. |text| is
 * not modified; the caller wipes it. */
int cli_request_set_secrets(struct cli_request *r, const char *text, size_t len,
                            char why[CLI_WHY_MAX]);

/* Whether the request has a secret field, and whether one of them is
 * required. */
bool cli_request_has_secrets(const struct cli_request *r, bool *out_required);

/* cli_request_check is called once every value is set: each required field
 * must have been given, and the whole request must pass the encoder's rules.
 * Returns 0, CLI_ERR_USAGE (|why| names the option) or CLI_ERR_NO_MEMORY. */
int cli_request_check(struct cli_request *r, char why[CLI_WHY_MAX]);

/* cli_request_cleanup wipes and frees the request and the blob, and zeroes
 * |r|. Accepts NULL and a zeroed request. */
void cli_request_cleanup(struct cli_request *r);

#endif
