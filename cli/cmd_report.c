/*
 * cmd_report.c: `plexburst report --plex-dir HOME --html FILE [--nights N] [--no-archives]
 * [--json]`: writes one self-contained HTML page of what each night brought (report_html.c),
 * replacing FILE atomically. The whole archives the nights are compared with are estimated from
 * the data dir as it is now (pb_archive_estimate: zstd of a tar-like stream, counted, never
 * written; a few seconds per GiB), or left out with --no-archives (the DB pair's recorded size
 * stands in for the DB archive).
 * Role: option parsing over pb_run_status_read() and pb_archive_estimate() (plexburst/run.h);
 * reads the data dir, writes only FILE.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "cli.h"
#include "report_html.h"

#define REPORT_DEFAULT_NIGHTS 14

/* Writes the page to `path` through `path`.tmp-PID, fsynced, renamed over it. */
static int write_page(const char *path, const cli_report_input *in, pb_error *err)
{
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return pb_error_set(err, PB_EINVALID, "report: path too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return pb_error_set(err, PB_EIO, "report: cannot write %s: %s", tmp, strerror(errno));
    int bad = cli_report_html(f, in) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0;
    int e = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad || rename(tmp, path) != 0) {
        if (!bad)
            e = errno;
        unlink(tmp);
        return pb_error_set(err, PB_EIO, "report: cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int cmd_report(int argc, char **argv)
{
    const char *plex = NULL, *state = NULL, *html = NULL;
    int json = 0, nights = REPORT_DEFAULT_NIGHTS, no_archives = 0;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &plex, "DIR", "the home Plex data dir"},
        {"state-dir", CLI_OPT_STRING, &state, "DIR", "default: <plex dir>.plexburst"},
        {"html", CLI_OPT_STRING, &html, "FILE", "the page to write (replaced)"},
        {"nights", CLI_OPT_INT, &nights, "N", "the last N runs (default 14, at most 30 kept)"},
        {"no-archives", CLI_OPT_FLAG, &no_archives, NULL,
         "do not estimate the whole archives (saves reading the library)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("report", "--plex-dir HOME --html FILE [--nights N] [--no-archives]", opts,
                       argc, argv, NULL, 0, NULL);
    if (rc > 0)
        return CLI_EXIT_OK;
    if (rc < 0)
        return cli_usage_exit("report", json, argc, argv);
    if (!plex)
        plex = getenv("PLEXBURST_PLEX_DIR");
    if (!plex || !html || nights < 1) {
        cli_usage_error("report", !plex   ? "--plex-dir is required"
                                  : !html ? "--html FILE is required"
                                          : "--nights needs 1 or more");
        return cli_usage_exit("report", json, 0, NULL);
    }
    if ((rc = cli_recover_json("report", json, plex, state)) != 0)
        return rc;
    pb_error err = PB_ERROR_INIT;
    pb_run_status *s = calloc(1, sizeof(*s));
    if (!s)
        return cli_fail_json("report", json, &err, PB_ENOMEM);
    cli_report_input in = {.plex_dir = plex, .status = s, .nights = (size_t)nights};
    in.generated = (int64_t)time(NULL);
    if ((rc = pb_run_status_read(s, plex, state, &err)) < 0)
        goto fail;
    if (!no_archives) {
        if ((rc = pb_archive_estimate(&in.archive_db, NULL, plex, PB_ARCHIVE_DB, 0, &err)) < 0 ||
            (rc = pb_archive_estimate(&in.archive_library, NULL, plex, PB_ARCHIVE_LIBRARY, 0,
                                      &err)) < 0)
            goto fail;
        in.have_archives = 1;
    }
    if ((rc = write_page(html, &in, &err)) < 0)
        goto fail;
    size_t n = s->nruns < (size_t)nights ? s->nruns : (size_t)nights;
    if (json) {
        json_t *o =
            json_pack("{s:s, s:b, s:i, s:n, s:s, s:I, s:b, s:I, s:I}", "command", "report", "ok", 1,
                      "exit_code", CLI_EXIT_OK, "error", "html", html, "nights", (json_int_t)n,
                      "archives", in.have_archives, "archive_db", (json_int_t)in.archive_db,
                      "archive_library", (json_int_t)in.archive_library);
        rc = o ? cli_print_json(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : CLI_EXIT_ERROR;
        json_decref(o);
    } else {
        cli_state("📊", "report of %zu nights written to %s", n, html);
        rc = CLI_EXIT_OK;
    }
    free(s);
    return rc;
fail:
    free(s);
    return cli_fail_json("report", json, &err, rc);
}
