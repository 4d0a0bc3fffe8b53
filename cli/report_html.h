/*
 * report_html.h: the run records as people read them: the record helpers `status` and `report`
 * share (cmd_status.c), and the one self-contained HTML page of `plexburst report --html`
 * (report_html.c: inline CSS and SVG plots, no script, nothing fetched).
 */
#ifndef PB_REPORT_HTML_H
#define PB_REPORT_HTML_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <plexburst/plexburst.h>

/** "YYYY-MM-DD HH:MM[:SS]" of `epoch` in local time ("-" when unknown); returns buf. */
const char *cli_record_date(char *buf, size_t cap, int64_t epoch, int seconds);
/** The analyses a run brought: sonic tracks + loudness items + previews + markers + media. */
uint64_t cli_record_analyses(const pb_run_record *r);
/** One record as JSON (caller decrefs; NULL when it cannot be encoded); `full` adds the phases,
 * the rows by table and the new titles. */
json_t *cli_record_json(const pb_run_record *r, int full);

/** What the page compares the nights with. */
typedef struct cli_report_input {
    const char *plex_dir;
    const pb_run_status *status;          /* runs newest first */
    size_t nights;                        /* the last N runs plotted */
    int have_archives;                    /* the estimates below were made */
    uint64_t archive_db, archive_library; /* whole archives, zstd (pb_archive_estimate) */
    int64_t generated;                    /* epoch seconds */
} cli_report_input;

/** Writes the page to `f`; 0, or -1 on a write error (errno set). */
int cli_report_html(FILE *f, const cli_report_input *in);

#endif
