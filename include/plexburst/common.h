/*
 * plexburst/common.h: version, export macro and the conventions shared by every public header.
 *
 * Conventions (docs/conventions.md): functions are pb_<module>_<verb>(); fallible functions return
 * int, 0 on success and a negative PB_E* code on failure, with detail in a caller-owned pb_error
 * (first error wins); library handles come in _new/_free pairs and every _free accepts NULL;
 * caller-allocated results are released with _dispose.
 */
#ifndef PLEXBURST_COMMON_H
#define PLEXBURST_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define PB_VERSION_MAJOR 0
#define PB_VERSION_MINOR 1
#define PB_VERSION_PATCH 0
#define PB_VERSION       "0.1.0"

#if defined(__GNUC__)
#define PB_EXTERN(type) extern __attribute__((visibility("default"))) type
#define PB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PB_EXTERN(type) extern type
#define PB_PRINTF(f, a)
#endif

/** The library's version string, e.g. "0.1.0". */
PB_EXTERN(const char *) pb_version(void);

#endif
