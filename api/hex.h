/*
 * hex.h - hexadecimal text, strict both ways: the files officers handle
 * (shares, share sets, wrapped DEKs) and byte fields on the CLI.
 */
#ifndef TOKENVAULT_API_HEX_H
#define TOKENVAULT_API_HEX_H

#include <stddef.h>
#include <stdint.h>

/* hex_encode writes 2*len lower-case digits and a NUL into |out| (cap >=
 * 2*len + 1). Returns 0, or -1 if |out| is too small (nothing written). */
int hex_encode(char *out, size_t cap, const uint8_t *in, size_t len);

/* hex_decode reads exactly 2*n digits (either case) from |hex| into |out|.
 * Returns 0, or -1 on any other character (|out| may be partly written; the
 * caller wipes it when it is secret). */
int hex_decode(uint8_t *out, size_t n, const char *hex);

#endif
