/*
 * hex.h: lower-case hexadecimal encoding of digests and ids (XXH3-128 digests, run ids).
 * Role: base layer. Prerequisites: none.
 */
#ifndef PB_HEX_H
#define PB_HEX_H

#include <stddef.h>
#include <stdint.h>

/** Writes 2n lower-case hex digits of `in` and a NUL to `out` (2n + 1 bytes). */
void pb_hex_encode(char *out, const uint8_t *in, size_t n);
/**
 * Reads exactly 2n hex digits (either case) from `hex` into `out`; the string must end there.
 * @return 0, or -1 when `hex` is not 2n hex digits (out is then unspecified).
 */
int pb_hex_decode(uint8_t *out, size_t n, const char *hex);
/** The value of one hex digit (either case): 0 to 15, or -1 when `c` is not one. */
int pb_hex_digit(char c);

#endif
