/*
 * report_view.h: rendering of a pb_plex_report (plexburst/plexmerge.h) for `plexburst diff` and
 * `plexburst merge`: numbered phases printed as the run goes, a POST-MORTEM on failure, and the
 * one JSON object of --json.
 * Role: shared by cmd_diff.c and cmd_merge.c, and cmd_apply.c (--dry-run: the body); prints only.
 */
#ifndef PB_CLI_REPORT_H
#define PB_CLI_REPORT_H

#include <jansson.h>
#include <plexburst/plexmerge.h>

typedef struct report_view {
    const char *command;     /* "diff" or "merge" */
    const pb_plex_report *r; /* filled by the library while it runs */
    int merge;               /* the merge command (else diff) */
    int json;                /* --json: print nothing until the final object */
    int list;                /* --list: print (or collect) every merge decision */
    int shown;               /* last phase whose results were printed */
    int headed;              /* last phase whose header was printed */
    json_t *actions;         /* --json --list: the decisions */
    unsigned long long nactions;
} report_view;

/** Initialises a view; `r` is the report the library fills. */
void report_view_init(report_view *v, const char *command, const pb_plex_report *r, int merge,
                      int json, int list);

/** pb_plex_merge_options.on_phase: prints the finished phases' results and the next header. */
void report_on_phase(int phase, void *view);

/** pb_plex_merge_options.on_action: prints or collects a decision when --list is on. */
void report_on_action(const pb_merge_action *a, void *view);

/**
 * Prints what is left after the run: the remaining phases' results and the summary, or the
 * POST-MORTEM; with --json the one object. The one-line error goes to stderr.
 * @return the exit code (0 ok, 1 error, 2 usage, 3 refused by a guard).
 */
int report_finish(report_view *v, int rc, const pb_error *err);

/**
 * Prints the report's results as `plexburst diff` does (schema verdict, changeset figures per
 * table and section, new titles, analysis, guards, and with a live DB the 3-way view), without
 * the phase headers: for a command that numbers its own phases (`plexburst apply --dry-run`).
 * Only the phases the report reached are printed; human output only.
 */
void report_print_body(const report_view *v);

/** Merge counts as the JSON object of the --json contracts (diff, merge, apply, sync). */
json_t *report_counts_json(const pb_merge_counts *c);

/** The report as one JSON object (the --json contract, docs/cli.md); caller decrefs. */
json_t *report_to_json(const report_view *v, int rc);

/**
 * Runs pb_plex_merge (merge) or pb_plex_diff with `o` (callbacks set here) and renders the report.
 * @return the exit code.
 */
int report_run(const char *command, int merge, pb_plex_merge_options *o, int json, int list);

/** The exit-code paragraph of --help. */
#define REPORT_EXIT_CODES                                                                          \
    "\nexit codes: 0 ok, 1 error (nothing written), 2 usage, 3 refused by a guard (deletion or\n"  \
    "schema; nothing written)\n"

#endif
