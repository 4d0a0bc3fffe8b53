/*
 * plexburst/units.h: the one way plexburst writes a byte count for people: binary units, one
 * decimal from KiB on ("512 B", "12.3 MiB", "1.5 GiB"). The CLI, the run's log lines and the
 * engine's messages all use it, so that a figure reads the same everywhere.
 */
#ifndef PLEXBURST_UNITS_H
#define PLEXBURST_UNITS_H

#include <stddef.h>
#include <stdint.h>
#include "plexburst/common.h"

/** Longest text pb_units_bytes writes, with its terminating NUL ("1023.9 EiB"). */
#define PB_UNITS_BYTES_MAX 16

/**
 * Writes `n` bytes as "<v> <unit>" into buf (cap bytes, PB_UNITS_BYTES_MAX is always enough;
 * truncated, still terminated, when smaller).
 * @return buf.
 */
PB_EXTERN(const char *) pb_units_bytes(char *buf, size_t cap, uint64_t n);

#endif
