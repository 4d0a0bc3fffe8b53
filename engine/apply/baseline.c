/*
 * baseline.c: the baseline record of a home data dir, <state dir>/baseline (plexburst/baseline.h):
 * the ids of the DB pair the home's last apply or bootstrap left, which the next bundle must be
 * based on. One small text file, replaced atomically:
 *   plexburst-baseline 1
 *   main <32 hex digits>
 *   blobs <32 hex digits, or "-" without a blobs DB>
 * Role: pb_apply checks a bundle's base against it (unless the caller vouches for the base) and
 * the journal records the bundle's target ids in it when a run ends (recover.c).
 * Prerequisites: sqldiff's logical checksum (the ids).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "hex.h"
#include "plexburst/baseline.h"
#include "plexburst/compat.h"
#include "plexburst/sqldiff.h"

#define MAGIC "plexburst-baseline 1\n"

int pb_baseline_compute(pb_baseline *out, const char *db, const char *blobs, pb_error *err)
{
    pb_checksum c;
    pb_diff_options copts = PB_DIFF_OPTIONS_INIT;
    int error;
    copts.open = pb_compat_open_reader;
    memset(out, 0, sizeof(*out));
    if ((error = pb_sqldiff_checksum(&c, db, &copts, err)) < 0)
        return error;
    memcpy(out->main, c.digest, 16);
    if (blobs) {
        if ((error = pb_sqldiff_checksum(&c, blobs, &copts, err)) < 0)
            return error;
        memcpy(out->blobs, c.digest, 16);
        out->has_blobs = 1;
    }
    return 0;
}

int pb_baseline_write(const char *state_dir, const pb_baseline *b, pb_error *err)
{
    char text[200], path[PATH_MAX + 32], m[33], bl[33];
    pb_hex_encode(m, b->main, 16);
    pb_hex_encode(bl, b->blobs, 16);
    int n = snprintf(text, sizeof(text), MAGIC "main %s\nblobs %s\n", m, b->has_blobs ? bl : "-");
    snprintf(path, sizeof(path), "%s/baseline", state_dir);
    return pb_fs_write_file(path, text, (size_t)n, 0600, err);
}

/* "<key> <32 hex digits>\n" into out; 0 or -1. */
static int parse_line(uint8_t out[16], const char *line, const char *key)
{
    size_t k = strlen(key);
    char hex[33];
    if (strncmp(line, key, k) != 0 || line[k] != ' ' || strlen(line + k + 1) != 33 ||
        line[k + 33] != '\n')
        return -1;
    memcpy(hex, line + k + 1, 32);
    hex[32] = '\0';
    return pb_hex_decode(out, 16, hex);
}

int pb_baseline_read(pb_baseline *out, const char *state_dir, pb_error *err)
{
    char path[PATH_MAX + 32], line[128];
    FILE *f;
    int ok = 0;
    memset(out, 0, sizeof(*out));
    snprintf(path, sizeof(path), "%s/baseline", state_dir);
    if (!(f = fopen(path, "r")))
        return errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                               "no baseline recorded in %s", state_dir)
                               : pb_error_errno(err, "cannot read %s", path);
    if (fgets(line, sizeof(line), f) && strcmp(line, MAGIC) == 0 && fgets(line, sizeof(line), f) &&
        parse_line(out->main, line, "main") == 0 && fgets(line, sizeof(line), f)) {
        if (strcmp(line, "blobs -\n") == 0)
            ok = 1;
        else if (parse_line(out->blobs, line, "blobs") == 0)
            ok = out->has_blobs = 1;
    }
    fclose(f);
    return ok ? 0 : pb_error_set(err, PB_ECORRUPT, "baseline record %s is malformed", path);
}
