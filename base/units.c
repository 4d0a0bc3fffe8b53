/*
 * units.c: pb_units_bytes (plexburst/units.h), the one byte-count formatter of the project.
 * Role: base layer, used by the engine's messages and the CLI. Prerequisites: libc.
 */
#include <stdio.h>

#include "plexburst/units.h"

const char *pb_units_bytes(char *buf, size_t cap, uint64_t n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 6) {
        v /= 1024;
        u++;
    }
    /* 1023.96 KiB would print as "1024.0 KiB": the next unit reads better */
    if (u && u < 6 && v >= 1023.95) {
        v /= 1024;
        u++;
    }
    if (cap)
        snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
    return buf;
}
