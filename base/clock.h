/*
 * clock.h: the monotonic clock every duration in plexburst is measured with (phase times,
 * downtime, timeouts, throttled progress), never the wall clock.
 * Role: base layer. Prerequisites: POSIX clock_gettime.
 */
#ifndef PB_CLOCK_H
#define PB_CLOCK_H

#include <time.h>

/** Milliseconds on CLOCK_MONOTONIC (an arbitrary origin: use differences only). */
static inline double pb_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#endif
