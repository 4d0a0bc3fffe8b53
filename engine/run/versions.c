/*
 * versions.c: the versions of the linked libraries, asked at run time (plexburst/versions.h).
 * Role: `plexburst --version`. Prerequisites: the libraries' own version calls (sqlite3_libversion,
 * rs_librsync_version, ZSTD_versionString, curl_version_info, libssh2_version, u_getVersion,
 * jansson_version_str).
 */
#include <stdio.h>
#include <string.h>
#include <curl/curl.h>
#include <jansson.h>
#include <librsync.h>
#include <libssh2.h>
#include <sqlite3.h>
#include <unicode/uversion.h>
#include <zstd.h>

#include "plexburst/versions.h"

static void put(pb_dep_version *out, size_t cap, size_t i, const char *name, const char *v)
{
    if (i >= cap)
        return;
    out[i].name = name;
    snprintf(out[i].version, sizeof(out[i].version), "%s", v && *v ? v : "?");
}

size_t pb_versions_deps(pb_dep_version *out, size_t cap)
{
    size_t n = 0;
    put(out, cap, n++, "SQLite", sqlite3_libversion());
    /* librsync's string reads "librsync 2.3.2" */
    const char *rs = rs_librsync_version;
    put(out, cap, n++, "librsync", strncmp(rs, "librsync ", 9) == 0 ? rs + 9 : rs);
    put(out, cap, n++, "zstd", ZSTD_versionString());
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    char curl[48];
    snprintf(curl, sizeof(curl), "%s%s%s", cv ? cv->version : "?", cv && cv->ssl_version ? " " : "",
             cv && cv->ssl_version ? cv->ssl_version : "");
    put(out, cap, n++, "libcurl", curl);
    put(out, cap, n++, "libssh2", libssh2_version(0));
    UVersionInfo uv;
    char icu[U_MAX_VERSION_STRING_LENGTH];
    u_getVersion(uv);
    u_versionToString(uv, icu);
    put(out, cap, n++, "ICU", icu);
    put(out, cap, n++, "jansson", jansson_version_str());
    return n;
}
