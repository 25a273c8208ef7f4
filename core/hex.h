#pragma once
/* hex.h - bytes as lowercase hex and back: digest values (HA1, Digest
 * responses), the opaque, the Lua script's SHA-1, the sipX signature. One
 * codec for every module, so the digits and the case rules cannot drift. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "slice.h"

/* hex_encode - lowercase hex of @n bytes into @out: 2*@n bytes, no NUL (the
 * caller terminates where it wants a C string). Returns 2*@n. */
size_t hex_encode(const uint8_t *in, size_t n, char *out);
/* hex_decode - exactly 2*@n hex digits of either case into @out; false for
 * any other length or byte (@out may then be partly written). */
bool hex_decode(struct slice hex, uint8_t *out, size_t n);
