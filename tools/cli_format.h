/*
 * cli_format.h - message structs as text: the human `wireName: value` lines
 * and the --json object of the tokenvault command line.
 *
 * Driven by the schemas of api/msg.h like cli_args.h: fields in schema order,
 * keyed by the tag's wire name, absent optional fields left out. A value is
 * written as the command line accepts it back (cli_request_set): enum names,
 * decimal integers, true/false, dates YYYY-MM-DD, bytes in lower-case hex.
 *
 * Values may be secrets (a revealed PAN): every string this module returns is
 * released with cli_text_free, which wipes it.
 *
 * Thread-safe apart from jansson's allocator settings, which the caller owns.
 */
#ifndef TOKENVAULT_TOOLS_CLI_FORMAT_H
#define TOKENVAULT_TOOLS_CLI_FORMAT_H

#include <stdio.h>

#include <jansson.h>

#include "api/msg.h"
#include "tools/cli_args.h"

/* cli_value_format sets *out to the text of field |f| of |msg| (a struct of
 * the schema |f| belongs to): what cli_request_set parses back to the same
 * value. BLOB fields come out as hex. Returns 0, CLI_ERR_NO_MEMORY, or
 * CLI_ERR_USAGE for a LIST field or an undefined tag. *out is owned by the
 * caller: release it with cli_text_free. */
int cli_value_format(char **out, const struct api_field *f, const void *msg);

/* cli_text_free wipes and frees a string of this module. Accepts NULL. */
void cli_text_free(char *s);

/* cli_msg_json sets *out to a new JSON object of |msg| (schema |s|): wire
 * names as keys, lists as arrays of objects, booleans as JSON booleans,
 * integers as JSON integers (as decimal strings above INT64_MAX, which JSON
 * numbers do not carry exactly), everything else as the strings of
 * cli_value_format. Returns 0 or CLI_ERR_NO_MEMORY (also for a string jansson
 * refuses). The caller owns *out (json_decref). */
int cli_msg_json(json_t **out, const struct api_schema *s, const void *msg);

/* cli_msg_print writes |msg| (schema |s|) to |f| as `wireName: value` lines
 * in schema order; a list as `name[1]:` followed by its item's lines indented
 * by two spaces, or `name: none` when empty. Returns 0, CLI_ERR_NO_MEMORY, or
 * CLI_ERR_USAGE when writing fails. */
int cli_msg_print(FILE *f, const struct api_schema *s, const void *msg);

/* cli_option_help sets *out to a one-line description of the values field
 * |f| accepts: type, limits, enum names ("enum: visa | mastercard | ..."). */
int cli_option_help(char **out, const struct api_field *f);

#endif
