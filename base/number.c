/*
 * number.c: pb_number_parse (plexburst/number.h), the strict number reading shared by the CLI's
 * options and the engine's settings.
 * Role: base layer. Prerequisites: libc.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "plexburst/number.h"

int pb_number_parse(double *out, const char *s, int whole, double lo, double hi)
{
    const char *p = s;
    size_t digits = 0;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (!whole && *p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits++;
    if (!digits || *p || p - s > 32)
        return -1;
    errno = 0;
    double v = strtod(s, NULL);
    if (errno || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}
