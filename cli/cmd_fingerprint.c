/*
 * cmd_fingerprint.c: `plexburst fingerprint --plex-dir D [--state-dir DIR] [--json]`.
 * Role: step 1 of a sync run by hand: fingerprints the synced part of a Plex data directory,
 * writes its manifest into the state directory and reports files, bytes, hashed vs cached,
 * skipped specials, time and the root hash (human, or one JSON object with --json).
 * Progress goes to stderr: one redrawn line on a terminal, plain lines every few seconds else.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

typedef struct progress_state {
    int tty;
    int drawn;        /* a redrawn line is on screen */
    double last;      /* time of the last output */
    double interval;  /* seconds between outputs */
    uint64_t scanned; /* entries seen by the scan */
} progress_state;

static int on_progress(const pb_progress *p, void *payload)
{
    progress_state *ps = payload;
    double now = cli_now();
    int final = strcmp(p->phase, "done") == 0;

    if (!final && now - ps->last < ps->interval)
        return 0;
    ps->last = now;
    char line[160];
    if (strcmp(p->phase, "scan") == 0) {
        snprintf(line, sizeof(line), "scanning: %llu entries", (unsigned long long)p->items_done);
    } else {
        char done[32], total[32];
        cli_bytes(done, sizeof(done), p->bytes_done);
        cli_bytes(total, sizeof(total), p->bytes_total);
        if (p->items_total == 0 && !final)
            return 0; /* nothing to hash: no line */
        snprintf(line, sizeof(line), "hashing: %llu/%llu files, %s of %s (%.0f%%)",
                 (unsigned long long)p->items_done, (unsigned long long)p->items_total, done, total,
                 p->bytes_total ? 100.0 * (double)p->bytes_done / (double)p->bytes_total : 100.0);
    }
    if (ps->tty) {
        fprintf(stderr, "\r\033[K%s", final ? "" : line);
        ps->drawn = !final;
    } else if (!final) {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
    return 0;
}

static int print_json(const pb_fingerprint_result *r)
{
    json_t *o = json_pack(
        "{s:s, s:b, s:i, s:n, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:s, s:s, s:{s:I, s:I, s:I}}",
        "command", "fingerprint", "ok", 1, "exit_code", CLI_EXIT_OK, "error", "root", r->root_hex,
        "files", (json_int_t)r->files, "dirs", (json_int_t)r->dirs, "symlinks",
        (json_int_t)r->symlinks, "bytes", (json_int_t)r->bytes, "hashed", (json_int_t)r->hashed,
        "hashed_bytes", (json_int_t)r->hashed_bytes, "cached", (json_int_t)r->cached, "skipped",
        (json_int_t)r->skipped, "excluded", (json_int_t)r->excluded, "hard_link_groups",
        (json_int_t)r->hard_link_groups, "hard_links", (json_int_t)r->hard_links, "vanished",
        (json_int_t)r->vanished, "entries", (json_int_t)(r->files + r->dirs + r->symlinks),
        "manifest", r->manifest_path, "state_dir", r->state_dir, "timings_ms", "scan",
        (json_int_t)r->ms_scan, "hash", (json_int_t)r->ms_hash, "total", (json_int_t)r->ms_total);
    int rc = o ? cli_print_json(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : CLI_EXIT_ERROR;
    json_decref(o);
    if (rc) {
        pb_error err = PB_ERROR_INIT;
        pb_error_set(&err, PB_ERROR, "fingerprint: a path is not UTF-8, not shown as JSON");
        return cli_fail_json("fingerprint", 1, &err, PB_ERROR);
    }
    return CLI_EXIT_OK;
}

int cmd_fingerprint(int argc, char **argv)
{
    const char *plex_dir = NULL, *state_dir = NULL;
    int json = 0, rehash = 0;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &plex_dir, "D", "the Plex data directory (required)"},
        {"state-dir", CLI_OPT_STRING, &state_dir, "DIR",
         "plexburst's state folder (default: <D>.plexburst beside D)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object instead of text"},
        {"rehash", CLI_OPT_FLAG, &rehash, NULL, "ignore the hash cache and read every file"},
        {NULL, 0, NULL, NULL, NULL},
    };
    int rc = cli_parse("fingerprint", "--plex-dir D [--state-dir DIR] [--json]", opts, argc, argv,
                       NULL, 0, NULL);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : cli_usage_exit("fingerprint", json, argc, argv);
    if (!plex_dir) {
        cli_usage_error("fingerprint", "--plex-dir is required");
        return cli_usage_exit("fingerprint", json, 0, NULL);
    }
    if ((rc = cli_recover_json("fingerprint", json, plex_dir, state_dir)) != 0)
        return rc;

    progress_state ps = {isatty(STDERR_FILENO), 0, cli_now(), 0, 0};
    ps.interval = ps.tty ? 1.0 / 6 : 5.0;
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    fo.state_dir = state_dir;
    fo.rehash = rehash;
    fo.progress = on_progress;
    fo.payload = &ps;
    pb_fingerprint_result r;
    pb_error err = PB_ERROR_INIT;
    rc = pb_fingerprint_run(&r, plex_dir, &fo, &err);
    if (ps.drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
    if (rc < 0)
        return cli_fail_json("fingerprint", json, &err, rc);
    if (json)
        return print_json(&r);

    char bytes[32], hbytes[32];
    cli_bytes(bytes, sizeof(bytes), r.bytes);
    cli_bytes(hbytes, sizeof(hbytes), r.hashed_bytes);
    cli_state("🔍", "fingerprint of %s", plex_dir);
    printf("   files     %llu (%s), %llu directories, %llu symlinks\n", (unsigned long long)r.files,
           bytes, (unsigned long long)r.dirs, (unsigned long long)r.symlinks);
    printf("   hashed    %llu (%s read), %llu from cache\n", (unsigned long long)r.hashed, hbytes,
           (unsigned long long)r.cached);
    printf("   links     %llu hard-link groups (%llu extra paths)\n",
           (unsigned long long)r.hard_link_groups, (unsigned long long)r.hard_links);
    printf("   skipped   %llu specials (sockets, FIFOs, devices), %llu excluded entries\n",
           (unsigned long long)r.skipped, (unsigned long long)r.excluded);
    if (r.vanished)
        printf("   vanished  %llu entries disappeared during the run\n",
               (unsigned long long)r.vanished);
    printf("   time      %.2f s (scan %.2f s, hash %.2f s)\n", r.ms_total / 1000.0,
           r.ms_scan / 1000.0, r.ms_hash / 1000.0);
    printf("   manifest  %s\n", r.manifest_path);
    cli_state("✅", "root %s", r.root_hex);
    return CLI_EXIT_OK;
}
