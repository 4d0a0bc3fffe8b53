/*
 * plexburst/number.h: the one strict reading of a number a user gives (a CLI option, a setting
 * from the environment or a .env file): plain decimal digits, a fraction only where allowed, the
 * whole string, finite and within a range. No sign, space, hex, exponent, nan or inf, so that a
 * typo is refused instead of silently meaning something else.
 */
#ifndef PLEXBURST_NUMBER_H
#define PLEXBURST_NUMBER_H

#include "plexburst/common.h"

/**
 * Reads `s` as a decimal number (a whole number when `whole`) in lo..hi.
 * @return 0 with *out set; -1 when `s` is not such a number (*out unchanged).
 */
PB_EXTERN(int) pb_number_parse(double *out, const char *s, int whole, double lo, double hi);

#endif
