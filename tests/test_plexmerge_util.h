/*
 * test_plexmerge_util.h: hand-made Plex DB scenarios for the merge tests (base, cloud, live, and
 * optionally the blobs pair), plus small SQL and file helpers.
 * The scenario: a Movies and a Music section; the cloud analyses (loudness, sonic, previews,
 * markers), adds two movies with media, a local extra, a section location and tags; the home adds
 * a home video, a playlist and tags that collide with the cloud's ids, edits a title the cloud
 * also changed, and writes user state. tests/test_plexmerge.c lists what a merge must give.
 */
#ifndef PB_TEST_PLEXMERGE_UTIL_H
#define PB_TEST_PLEXMERGE_UTIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct pm_scenario {
    char dir[4096];
    char base[4200], cloud[4200], live[4200];
    char bbase[4200], bcloud[4200], blive[4200]; /* empty without blobs */
    char pathmap[4200];                          /* path_mappings.json when mapped */
} pm_scenario;

typedef struct pm_options {
    int blobs;  /* build the blobs pair too */
    int wal;    /* live DBs in WAL mode (as Plex keeps them) */
    int mapped; /* base/cloud at /cloud/My Media, live at /home/Media (+ path_mappings.json) */
    int cloud_changes; /* default 1: apply the cloud's changes */
    int home_changes;  /* default 1: apply the home's changes */
} pm_options;

#define PM_OPTIONS_DEFAULT                                                                         \
    {                                                                                              \
        0, 0, 0, 1, 1                                                                              \
    }

/** Builds a scenario in a fresh directory. */
void pm_build(pm_scenario *s, const char *tag, const pm_options *o);

/** Executes SQL on a DB (compat layer registered); fails the test on error. */
void pm_exec(const char *path, const char *sql);
/** First column of the first row as an integer (-1 when no row). */
int64_t pm_int(const char *path, const char *sql);
/** First column of the first row as text ("" when no row or NULL). */
void pm_text(const char *path, const char *sql, char *out, size_t cap);
/** The logical checksum (pb_sqldiff_checksum) of a DB, as hex. */
void pm_checksum(const char *path, char hex[33]);
/** Copies a file (cp). */
void pm_copy(const char *src, const char *dst);
/** Reads a whole file into a malloc'd NUL-terminated buffer. */
char *pm_slurp(const char *path);

/* Merge options (for test_plexmerge.c, test_plexmerge_crash.c and test_plexmerge_oracle.c). */
#include "plexburst/plexmerge.h"

/** The engine stand-in: the stock sqlite3 shell, with build/plexcompat loaded, for Plex SQLite. */
#define PM_STAND_IN "/usr/bin/sqlite3"

/** Initialised merge options over base, cloud and live and, when bbase is non-empty, their blobs
 * DBs; written in-process. The strings must outlive the options. */
void pm_merge_options(pb_plex_merge_options *o, const char *base, const char *cloud,
                      const char *live, const char *bbase, const char *bcloud, const char *blive);
/** Writes through the engine stand-in (skips when it is not installed). */
void pm_use_stand_in(pb_plex_merge_options *o);
/** The unattended set-up of the stress tests: no backups, zstd level 1, work files in work_dir,
 * any share of deletions allowed (knobs and kills may delete much of a tiny section), the engine
 * stand-in when engine is set. */
void pm_stress_options(pb_plex_merge_options *o, const char *work_dir, int engine);

/* The CLI (for test_plexmerge_cli.c and test_plexmerge_mkplex.c). */
#include <jansson.h>

/** stdout of the last pm_cli() run. */
extern char pm_out[1 << 20];
/** Runs `plexburst <args>` (skips when not built); stdout in pm_out, stderr in err. */
int pm_cli(char *err, size_t cap, const char *dir, const char *args);
/** pm_out parsed as one JSON object (fails otherwise). */
json_t *pm_json(void);
/** The value at a dotted path (fails when missing). */
json_t *pm_path(json_t *j, const char *dotted);
/** The --json contract keys (docs/cli.md). */
void pm_contract(json_t *j, int merge);
/** Human output: emojis only at line starts, no exclamation marks. */
void pm_conventions(const char *text);
/** 1 when `s` is exactly one newline-terminated line. */
int pm_one_line(const char *s);

#endif
