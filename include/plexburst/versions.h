/*
 * plexburst/versions.h: the versions of the libraries libplexburst runs with (SQLite, librsync,
 * zstd, libcurl, libssh2, ICU, jansson), asked of each library at run time, not taken from the
 * headers it was built against: `plexburst --version` prints them for bug reports.
 */
#ifndef PLEXBURST_VERSIONS_H
#define PLEXBURST_VERSIONS_H

#include "plexburst/common.h"

/** One library and the version it reports ("3.40.1"). */
typedef struct pb_dep_version {
    const char *name; /* "SQLite", "librsync", ... (static) */
    char version[48];
} pb_dep_version;

/**
 * Fills out[0..cap) with the libraries in use, in a fixed order.
 * @return the number of libraries known (may exceed cap: only cap are filled).
 */
PB_EXTERN(size_t) pb_versions_deps(pb_dep_version *out, size_t cap);

#endif
