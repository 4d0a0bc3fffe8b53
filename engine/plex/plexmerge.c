/*
 * plexmerge.c: pb_plex_diff() and pb_plex_merge() (plexburst/plexmerge.h): the five phases of
 * merging a cloud run's rows into the live home Plex DB pair.
 * Role: the orchestration over the generic pieces: schema guard (guards.c), row diff
 * (sqldiff.h), report scan (report_scan.c), deletion guard, backup (backup.c), 3-way merge under
 * the Plex policy (merge.h + policy.c), written by Plex's own engine through a generated SQL script
 * (plexengine.h) or in-process through the compatibility layer.
 * Prerequisites: the DBs are Plex library (and blobs) DBs; for the merge Plex should be stopped
 * (the journal-mode switch that makes main + blobs atomic needs exclusive access; when it cannot
 * be had, each file still commits atomically and the report says so).
 *
 * Cross-file atomicity: Plex runs its DBs in WAL mode, where a transaction over two attached DBs
 * commits per file. Before writing, both files are switched to journal_mode=DELETE (SQLite then
 * ties them with a super-journal: all or nothing across the pair) and back to WAL afterwards, also
 * after a failure.
 */
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>

#include "plexburst/compat.h"
#include "plexburst/plexmerge.h"
#include "plexburst/sqldiff.h"
#include "backup.h"
#include "clock.h"
#include "guards.h"
#include "ftsdefer.h"
#include "plexengine.h"
#include "policy.h"
#include "report.h"
#include "zstream.h"

/* The defaults (max_delete_pct 5, keep_backups 3) are in PB_PLEX_MERGE_OPTIONS_INIT.
 * The bytes.changeset_zstd figure: level 19 as the bundle's changesets are compressed (the
 * cloud side), with the window capped at 1 MiB and the input size pledged, so that zstd sizes its
 * match tables to the changeset: about 18 MB at most on the home box instead of ~85 MB (level 19
 * alone), and the same bytes as plain level 19 for changesets below 1 MiB (docs/cli.md). */
#define DEFAULT_ZSTD_LEVEL     19
#define REPORT_ZSTD_WINDOW_LOG 20
#define BACKUP_SUBDIR          "plexburst-backups"

void pb_plex_merge_options_init(pb_plex_merge_options *o)
{
    if (!o)
        return;
    const pb_plex_merge_options init = PB_PLEX_MERGE_OPTIONS_INIT;
    *o = init;
}

/* ---------------------------------------------------------------------------------------------
 * The run's state
 */

typedef struct run {
    const pb_plex_merge_options *o;
    pb_plex_report *r;
    int merge; /* pb_plex_merge (else pb_plex_diff) */
    int write; /* the live DBs are written (merge and not dry-run) */
    int blobs; /* the blobs DB takes part */
    pb_pathmap *pm_owned;
    const pb_pathmap *pm;
    pb_plex_policy *pol;
    char work[4096];
    int work_made;
    char cs_main[4200], cs_blobs[4200]; /* raw changesets */
    char z_main[4200], z_blobs[4200];   /* their zstd copies */
    char script[4200], errlog[4200];
} run;

static void phase(run *x, int p)
{
    x->r->phase = p;
    if (x->o->on_phase)
        x->o->on_phase(p, x->o->phase_payload);
}

/* Test hook (tests only): when the environment variable PB_TEST_CRASH_AFTER is N > 0, the process
 * raises SIGKILL right after the merge's N-th record written (executed, or rendered into the
 * script on the engine path), to test crash recovery by SQLite's journal. */
static unsigned long long g_crash_after;

static void crash_after_write(uint64_t writes, void *payload)
{
    (void)payload;
    if (writes == g_crash_after)
        raise(SIGKILL);
}

static void crash_hook_install(pb_merge_options *mo)
{
    const char *crash = getenv("PB_TEST_CRASH_AFTER");
    if (crash && *crash && (g_crash_after = strtoull(crash, NULL, 10)) > 0)
        mo->after_write = crash_after_write;
}

static int check_options(run *x, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    if (!o || o->version != PB_PLEX_MERGE_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID,
                            "merge: options not initialised "
                            "(pb_plex_merge_options_init)");
    if (!o->base || !*o->base)
        return pb_error_set(err, PB_EINVALID, "merge: no base DB (--base)");
    if (!!o->cloud == !!o->changeset)
        return pb_error_set(err, PB_EINVALID,
                            "merge: give either the cloud DB (--cloud) or a changeset");
    if (x->merge && !o->live)
        return pb_error_set(err, PB_EINVALID, "merge: no live DB (--live)");
    x->blobs = o->blobs_base || o->blobs_cloud || o->blobs_live || o->blobs_changeset;
    if (x->blobs) {
        if (!o->blobs_base)
            return pb_error_set(err, PB_EINVALID, "merge: blobs given without --blobs-base");
        if (!!o->blobs_cloud == !!o->blobs_changeset)
            return pb_error_set(err, PB_EINVALID,
                                "merge: blobs given without --blobs-cloud (or a blobs changeset)");
        if ((x->merge || o->live) && !o->blobs_live)
            return pb_error_set(err, PB_EINVALID, "merge: blobs given without --blobs-live");
        if (!x->merge && !o->live && o->blobs_live)
            return pb_error_set(err, PB_EINVALID, "diff: --blobs-live needs --live");
    }
    if (o->max_delete_pct < 0)
        return pb_error_set(err, PB_EINVALID, "merge: negative --max-delete-pct");
    if (o->engine == PB_PLEX_ENGINE_PATH && (!o->plex_sqlite || !*o->plex_sqlite))
        return pb_error_set(err, PB_EINVALID, "merge: no engine path (--plex-sqlite)");
    if (o->engine < PB_PLEX_ENGINE_AUTO || o->engine > PB_PLEX_ENGINE_IN_PROCESS)
        return pb_error_set(err, PB_EINVALID, "merge: unknown engine choice %d", o->engine);
    return 0;
}

static int make_work(run *x, pb_error *err)
{
    const char *base = x->o->work_dir;
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int n = snprintf(x->work, sizeof(x->work), "%s/plexburst-merge-XXXXXX", base);
    if (n < 0 || (size_t)n >= sizeof(x->work))
        return pb_error_set(err, PB_EINVALID, "merge: work directory path too long");
    if (!mkdtemp(x->work))
        return pb_error_errno(err, "merge: cannot create a work directory in %s", base);
    x->work_made = 1;
    snprintf(x->cs_main, sizeof(x->cs_main), "%s/main.changeset", x->work);
    snprintf(x->z_main, sizeof(x->z_main), "%s/main.changeset.zst", x->work);
    snprintf(x->cs_blobs, sizeof(x->cs_blobs), "%s/blobs.changeset", x->work);
    snprintf(x->z_blobs, sizeof(x->z_blobs), "%s/blobs.changeset.zst", x->work);
    snprintf(x->script, sizeof(x->script), "%s/merge.sql", x->work);
    snprintf(x->errlog, sizeof(x->errlog), "%s/engine.log", x->work);
    return 0;
}

static void remove_work(run *x)
{
    if (!x->work_made || x->o->keep_work)
        return;
    const char *files[] = {x->cs_main, x->z_main, x->cs_blobs, x->z_blobs, x->script, x->errlog};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(x->work);
}

/* ---------------------------------------------------------------------------------------------
 * Opening DBs
 */

static int attach(sqlite3 *db, const char *path, const char *schema, const char *what,
                  pb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return pb_error_set(err, errno == ENOENT ? PB_ENOTFOUND : PB_EIO,
                            "merge: cannot open the %s DB %s: %s", what, path, strerror(errno));
    char *sql = sqlite3_mprintf("ATTACH %Q AS \"%w\"", path, schema);
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return pb_error_setd(err, PB_ESQLITE, sqlite3_extended_errcode(db),
                             "merge: cannot attach the %s DB %s: %s", what, path,
                             sqlite3_errmsg(db));
    return 0;
}

/* Opens `main_path` (+ `blobs_path` attached as "blobs"); read-only unless `rw`. */
static int open_pair(sqlite3 **out, const char *main_path, const char *blobs_path, int rw,
                     const char *what, pb_error *err)
{
    sqlite3 *db = NULL;
    int error = pb_compat_open(&db, main_path, rw ? 0 : PB_OPEN_READONLY, err);
    if (!error && blobs_path)
        error = attach(db, blobs_path, "blobs", what, err);
    if (error) {
        sqlite3_close(db);
        db = NULL;
    }
    *out = db;
    return error;
}

/* ---------------------------------------------------------------------------------------------
 * Phase 2: diff
 */

static int is_zstd(const char *path, int *yes, pb_error *err)
{
    unsigned char m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return pb_error_set(err, errno == ENOENT ? PB_ENOTFOUND : PB_EIO,
                            "merge: cannot open the changeset %s: %s", path, strerror(errno));
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    *yes = n == 4 && m[0] == 0x28 && m[1] == 0xB5 && m[2] == 0x2F && m[3] == 0xFD;
    return 0;
}

static int compress_file(const char *in_path, const char *out_path, int level, uint64_t *in_bytes,
                         uint64_t *out_bytes, pb_error *err)
{
    int error = 0;
    FILE *in = fopen(in_path, "rb"), *out = NULL;
    struct stat st;
    if (!in)
        return pb_error_errno(err, "merge: cannot read %s", in_path);
    if (fstat(fileno(in), &st) != 0) {
        error = pb_error_errno(err, "merge: cannot read %s", in_path);
        goto done;
    }
    if (!(out = fopen(out_path, "wb"))) {
        error = pb_error_errno(err, "merge: cannot write %s", out_path);
        goto done;
    }
    pb_zstd_params zp = {level, 0, REPORT_ZSTD_WINDOW_LOG, 1, (uint64_t)st.st_size};
    error = pb_zstd_compress_stream_ex(in, out, &zp, in_bytes, out_bytes, err);
    if (fclose(out) != 0 && !error)
        error = pb_error_errno(err, "merge: cannot write %s", out_path);
done:
    fclose(in);
    return error;
}

/* Gets the raw changeset of one DB into `raw`: diffed, or taken from a given file (zstd or raw,
 * validated strictly). `*path_used` is the raw file to read. */
static int get_changeset(run *x, const char *schema, const char *base, const char *cloud,
                         const char *given, const char *raw, const char **path_used, pb_error *err)
{
    int error = 0;
    FILE *f = NULL, *in = NULL;
    *path_used = raw;
    if (cloud)
        return pb_plex_policy_diff_file(x->pol, schema, base, cloud, raw, "merge", NULL, err);
    int z = 0;
    if ((error = is_zstd(given, &z, err)) != 0)
        return error;
    if (z) {
        if (!(in = fopen(given, "rb")))
            return pb_error_errno(err, "merge: cannot read %s", given);
        if (!(f = fopen(raw, "wb"))) {
            fclose(in);
            return pb_error_errno(err, "merge: cannot write %s", raw);
        }
        error = pb_zstd_decompress_stream(in, f, 0, NULL, err);
        if (fclose(f) != 0 && !error)
            error = pb_error_errno(err, "merge: cannot write %s", raw);
        fclose(in);
        if (error)
            return error;
    } else {
        *path_used = given;
    }
    /* a changeset from elsewhere is checked strictly before anything reads it */
    if (!(in = fopen(*path_used, "rb")))
        return pb_error_errno(err, "merge: cannot read %s", *path_used);
    pb_changeset_summary sum;
    error = pb_changeset_validate_file(&sum, in, NULL, err);
    fclose(in);
    return error;
}

static int phase_diff(run *x, const char **main_cs, const char **blobs_cs, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    pb_plex_report *r = x->r;
    int error = 0;
    sqlite3 *ref = NULL, *base = NULL;
    pb_plex_scan *scan = NULL;
    const char *schemas[2] = {"main", "blobs"};
    uint64_t raw = 0, z = 0;

    /* the policy reads the live schema (the base's when there is no live DB; equal by phase 1) */
    if (o->live)
        error = open_pair(&ref, o->live, x->blobs ? o->blobs_live : NULL, 0, "home blobs", err);
    else
        error = open_pair(&ref, o->base, x->blobs ? o->blobs_base : NULL, 0, "base blobs", err);
    if (error)
        goto done;
    if ((error = pb_plex_policy_new(&x->pol, ref, schemas, x->blobs ? 2 : 1, x->pm, err)) != 0)
        goto done;
    for (const char *u; (u = pb_plex_policy_unknown(x->pol, r->nunknown)) != NULL;) {
        if (r->nunknown < sizeof(r->unknown_tables) / sizeof(r->unknown_tables[0]))
            snprintf(r->unknown_tables[r->nunknown], sizeof(r->unknown_tables[0]), "%s", u);
        r->nunknown++;
    }

    if ((error = get_changeset(x, "main", o->base, o->cloud, o->changeset, x->cs_main, main_cs,
                               err)) != 0)
        goto done;
    if (x->blobs && (error = get_changeset(x, "blobs", o->blobs_base, o->blobs_cloud,
                                           o->blobs_changeset, x->cs_blobs, blobs_cs, err)) != 0)
        goto done;

    int level = o->zstd_level > 0 ? o->zstd_level : DEFAULT_ZSTD_LEVEL;
    if ((error = compress_file(*main_cs, x->z_main, level, &raw, &z, err)) != 0)
        goto done;
    r->bytes_changeset += raw;
    r->bytes_changeset_zstd += z;
    if (x->blobs) {
        if ((error = compress_file(*blobs_cs, x->z_blobs, level, &raw, &z, err)) != 0)
            goto done;
        r->bytes_changeset += raw;
        r->bytes_changeset_zstd += z;
    }

    if ((error = open_pair(&base, o->base, NULL, 0, "base", err)) != 0)
        goto done;
    if ((error = pb_plex_scan_new(&scan, r, base, x->pol, err)) != 0)
        goto done;
    if ((error = pb_plex_scan_changeset(scan, "main", *main_cs, err)) != 0)
        goto done;
    if (x->blobs && (error = pb_plex_scan_changeset(scan, "blobs", *blobs_cs, err)) != 0)
        goto done;
done:
    pb_plex_scan_free(scan);
    sqlite3_close(base);
    sqlite3_close(ref);
    return error;
}

/* ---------------------------------------------------------------------------------------------
 * Phase 5: merge
 */

static int get_journal_mode(const char *path, char *mode, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int ok = -1;
    mode[0] = '\0';
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        snprintf(mode, cap, "%s", (const char *)sqlite3_column_text(st, 0));
        ok = 0;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Sets the journal mode of the DB file at `path`; 0 when it is now `mode`. */
static int set_journal_mode(const char *path, const char *mode)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int ok = -1;
    char *sql = sqlite3_mprintf("PRAGMA journal_mode=%s", mode);
    if (sql && sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), mode) == 0)
            ok = 0;
    }
    sqlite3_free(sql);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Journal modes of the live pair, switched for an atomic commit and restored after. */
typedef struct journals {
    const char *path[2];
    int switched[2];
} journals;

static void journals_restore(journals *j)
{
    for (int i = 0; i < 2; i++)
        if (j->switched[i]) {
            set_journal_mode(j->path[i], "wal");
            j->switched[i] = 0;
        }
}

/* Switches WAL files to DELETE when there are two files; sets r->atomic_pair. */
static void journals_prepare(run *x, journals *j)
{
    memset(j, 0, sizeof(*j));
    j->path[0] = x->o->live;
    j->path[1] = x->blobs ? x->o->blobs_live : NULL;
    if (!j->path[1]) {
        x->r->atomic_pair = 1; /* one file: always atomic */
        return;
    }
    int atomic = 1;
    for (int i = 0; i < 2; i++) {
        char mode[32];
        if (get_journal_mode(j->path[i], mode, sizeof(mode)) != 0) {
            atomic = 0;
            continue;
        }
        if (sqlite3_stricmp(mode, "wal") == 0) {
            if (set_journal_mode(j->path[i], "delete") == 0)
                j->switched[i] = 1;
            else
                atomic = 0; /* another connection (Plex running?): per-file atomicity only */
        } else if (sqlite3_stricmp(mode, "delete") != 0 && sqlite3_stricmp(mode, "truncate") != 0 &&
                   sqlite3_stricmp(mode, "persist") != 0) {
            atomic = 0;
        }
    }
    x->r->atomic_pair = atomic;
}

static void on_action(const pb_merge_action *a, void *payload)
{
    run *x = payload;
    pb_plex_report_note_action(x->r, a);
    if (x->o->on_action)
        x->o->on_action(a, x->o->action_payload);
}

/* Runs the engine on the live DB with the script on stdin. */
static int run_engine(run *x, const pb_plex_engine *e, pb_error *err)
{
    return pb_plex_engine_run(e, x->o->live, x->o->compat_extension, x->script, x->errlog, -1, err);
}

/* The script the engine runs: shell settings, ATTACH, then the merge's transaction. */
static int script_header(run *x, FILE *f)
{
    fprintf(f, ".bail on\n.timeout 30000\nPRAGMA foreign_keys=OFF;\n%s", pb_ftsdefer_conn_sql());
    if (x->blobs) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs;\n", x->o->blobs_live);
        if (!sql)
            return PB_ENOMEM;
        fputs(sql, f);
        sqlite3_free(sql);
    }
    return 0;
}

/* The inputs and options of the 3-way merge, and its counts. */
typedef struct merge_call {
    pb_merge_input inputs[2];
    size_t ninputs;
    pb_merge_options mo;
    pb_merge_stats *stats;
} merge_call;

/* Decides against the live pair opened read-only and writes the merge as a SQL script
 * (x->script), with the engine's preamble when `header`. */
static int write_script(run *x, merge_call *m, int header, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    sqlite3 *live = NULL;
    FILE *script = NULL;
    pb_ftsdefer *fts = NULL;
    int error = open_pair(&live, o->live, x->blobs ? o->blobs_live : NULL, 0, "home blobs", err);
    if (error)
        goto done;
    if (!(script = fopen(x->script, "w"))) {
        error = pb_error_errno(err, "merge: cannot write %s", x->script);
        goto done;
    }
    if (header && script_header(x, script) != 0) {
        error = pb_error_set(err, PB_ENOMEM, "merge: out of memory");
        goto done;
    }
    /* the engine's connection: Plex's FTS triggers off, their work deferred (ftsdefer.h) */
    if (header && (error = pb_ftsdefer_new(&fts, live, m->inputs, m->ninputs, err)) != 0)
        goto done;
    if (fts && (fputs(pb_ftsdefer_script_switch(), script) < 0 ||
                fputs(pb_ftsdefer_setup_sql(fts), script) < 0)) {
        error = pb_error_errno(err, "merge: cannot write %s", x->script);
        goto done;
    }
    m->mo.script = script;
    m->mo.sql_before_writes = fts ? pb_ftsdefer_before_sql(fts) : NULL;
    m->mo.sql_before_commit = fts ? pb_ftsdefer_finish_sql(fts) : NULL;
    error = pb_merge_apply(live, m->inputs, m->ninputs, pb_plex_policy_merge(x->pol), &m->mo,
                           m->stats, err);
    m->mo.script = NULL;
    m->mo.sql_before_writes = m->mo.sql_before_commit = NULL;
done:
    pb_ftsdefer_free(fts);
    sqlite3_close(live);
    if (script && fclose(script) != 0 && !error)
        error = pb_error_errno(err, "merge: cannot write %s", x->script);
    return error;
}

/* Writes the live pair in-process, through the compatibility layer. */
static int merge_in_process(run *x, merge_call *m, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    sqlite3 *live = NULL;
    pb_ftsdefer *fts = NULL;
    int error = open_pair(&live, o->live, x->blobs ? o->blobs_live : NULL, 1, "home blobs", err);
    if (!error && sqlite3_exec(live, pb_ftsdefer_conn_sql(), NULL, NULL, NULL) != SQLITE_OK)
        error = pb_error_set(err, PB_ESQLITE, "merge: %s", sqlite3_errmsg(live));
    /* Plex's FTS triggers off on this connection, their work deferred (ftsdefer.h) */
    if (!error && (error = pb_ftsdefer_new(&fts, live, m->inputs, m->ninputs, err)) == 0 && fts)
        error = pb_ftsdefer_install(fts, live, err);
    if (!error) {
        m->mo.sql_before_writes = fts ? pb_ftsdefer_before_sql(fts) : NULL;
        m->mo.sql_before_commit = fts ? pb_ftsdefer_finish_sql(fts) : NULL;
        error = pb_merge_apply(live, m->inputs, m->ninputs, pb_plex_policy_merge(x->pol), &m->mo,
                               m->stats, err);
        m->mo.sql_before_writes = m->mo.sql_before_commit = NULL;
    }
    pb_ftsdefer_uninstall(fts, live);
    pb_ftsdefer_free(fts);
    sqlite3_close(live);
    return error;
}

static int phase_merge(run *x, const char *main_cs, const char *blobs_cs, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    pb_plex_report *r = x->r;
    int error = 0, use_engine;
    pb_plex_engine e;
    journals j;
    merge_call m = {
        {{"main", main_cs}, {"blobs", blobs_cs}}, x->blobs ? 2 : 1, PB_MERGE_OPTIONS_INIT, NULL};

    memset(&j, 0, sizeof(j));
    m.mo.on_action = on_action;
    m.mo.action_payload = x;
    crash_hook_install(&m.mo);
    if (!(m.stats = calloc(1, sizeof(*m.stats))))
        return pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    if ((use_engine = pb_plex_engine_resolve(&e, o->engine, o->plex_sqlite, err)) < 0) {
        error = use_engine;
        goto done;
    }
    char engine_desc[sizeof(r->engine)];
    if (use_engine)
        pb_plex_engine_describe(engine_desc, sizeof(engine_desc), &e, o->compat_extension);
    else
        snprintf(engine_desc, sizeof(engine_desc), "in-process compatibility layer");

    if (!x->write) {
        /* dry run: decide against the live DB opened read-only, script discarded */
        snprintf(r->engine, sizeof(r->engine), "none (dry run; would write with %.4150s)",
                 engine_desc);
        error = write_script(x, &m, 0, err);
        goto done;
    }
    snprintf(r->engine, sizeof(r->engine), "%s", engine_desc);
    journals_prepare(x, &j);
    if (use_engine)
        error = write_script(x, &m, 1, err);
    if (use_engine && !error)
        error = run_engine(x, &e, err);
    else if (!use_engine)
        error = merge_in_process(x, &m, err);
    if (!error)
        r->merged = 1;
done:
    journals_restore(&j);
    if (pb_plex_report_add_merge(r, m.stats, x->pol) != 0 && !error)
        error = pb_error_set(err, PB_ENOMEM, "merge: out of memory");
    free(m.stats);
    return error;
}

/* ---------------------------------------------------------------------------------------------
 * The two entry points
 */

static void default_backup_dir(const char *live, char *out, size_t cap)
{
    const char *slash = strrchr(live, '/');
    if (!slash)
        snprintf(out, cap, "%s", BACKUP_SUBDIR);
    else if (slash == live)
        snprintf(out, cap, "/%s", BACKUP_SUBDIR);
    else
        snprintf(out, cap, "%.*s/%s", (int)(slash - live), live, BACKUP_SUBDIR);
}

/* 1. The schema guard over every DB given. */
static int phase_schema(run *x, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    pb_plex_db_set dbs = {o->base,
                          o->cloud,
                          o->live,
                          x->blobs ? o->blobs_base : NULL,
                          x->blobs ? o->blobs_cloud : NULL,
                          x->blobs ? o->blobs_live : NULL};
    return pb_plex_guard_schema(&x->r->schema, &dbs, err);
}

/* 3. The deletion guard: reported by a diff, enforced by a merge. */
static int phase_guards(run *x, const char *main_cs, const char *blobs_cs, pb_error *err)
{
    pb_plex_report *r = x->r;
    pb_error gerr = PB_ERROR_INIT;
    pb_plex_deletion_input in = {r, x->o->base, x->blobs ? x->o->blobs_base : NULL, main_cs,
                                 x->blobs ? blobs_cs : NULL};
    int g =
        pb_plex_guard_deletion_all(&r->deletion, &in, x->o->max_delete_pct, x->merge ? err : &gerr);
    if (g && g != PB_EREFUSED) /* the base or a changeset could not be read: never a pass */
        return x->merge ? g : pb_error_set(err, g, "%s", gerr.msg);
    return x->merge ? g : 0;
}

/* 4. The backup of the live pair. */
static int phase_backup(run *x, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    char dir[4096];
    if (o->backup_dir && *o->backup_dir)
        snprintf(dir, sizeof(dir), "%s", o->backup_dir);
    else
        default_backup_dir(o->live, dir, sizeof(dir));
    return pb_plex_backup(x->r->backup_dir, sizeof(x->r->backup_dir), &x->r->backups_removed, dir,
                          o->live, x->blobs ? o->blobs_live : NULL, o->keep_backups, err);
}

/* Announces a phase; returns its start time. */
static double phase_start(run *x, int p)
{
    phase(x, p);
    return pb_clock_ms();
}

static int run_all(run *x, pb_error *err)
{
    const pb_plex_merge_options *o = x->o;
    pb_plex_report *r = x->r;
    int error = 0;
    const char *main_cs = NULL, *blobs_cs = NULL;
    double t0 = pb_clock_ms(), t;

    if ((error = check_options(x, err)) != 0)
        goto done;
    r->dry_run = !x->write;
    r->three_way = o->live != NULL;
    r->with_blobs = x->blobs;
    if (o->pathmap) {
        x->pm = o->pathmap;
    } else if (o->path_map) {
        if ((error = pb_pathmap_load(&x->pm_owned, o->path_map, err)) != 0)
            goto done;
        x->pm = x->pm_owned;
    }
    if ((error = make_work(x, err)) != 0)
        goto done;

    t = phase_start(x, PB_PHASE_SCHEMA);
    error = phase_schema(x, err);
    r->ms.schema = pb_clock_ms() - t;
    if (error)
        goto done;
    t = phase_start(x, PB_PHASE_DIFF);
    error = phase_diff(x, &main_cs, &blobs_cs, err);
    r->ms.diff = pb_clock_ms() - t;
    if (error)
        goto done;
    t = phase_start(x, PB_PHASE_GUARDS);
    error = phase_guards(x, main_cs, blobs_cs, err);
    r->ms.guards = pb_clock_ms() - t;
    if (error)
        goto done;
    if (x->write && o->keep_backups > 0) {
        t = phase_start(x, PB_PHASE_BACKUP);
        error = phase_backup(x, err);
        r->ms.backup = pb_clock_ms() - t;
        if (error)
            goto done;
    }
    if (o->live) { /* a dry run for a 3-way diff */
        t = phase_start(x, PB_PHASE_MERGE);
        error = phase_merge(x, main_cs, blobs_cs, err);
        r->ms.merge = pb_clock_ms() - t;
        if (error)
            goto done;
    }
    phase(x, PB_PHASE_DONE);
    r->ok = 1;
done:
    r->ms.total = pb_clock_ms() - t0;
    if (error) {
        r->ok = 0;
        r->error_code = error;
        snprintf(r->error, sizeof(r->error), "%s",
                 err && err->code ? err->msg : pb_strerror(error));
    }
    remove_work(x);
    pb_plex_policy_free(x->pol);
    pb_pathmap_free(x->pm_owned);
    return error;
}

/* One diff (merge 0) or merge run into `report` (may be NULL). */
static int run_entry(const pb_plex_merge_options *opts, pb_plex_report *report, int merge,
                     pb_error *err)
{
    pb_plex_report tmp;
    if (!report)
        report = &tmp;
    memset(report, 0, sizeof(*report));
    run x = {.o = opts, .r = report, .merge = merge, .write = merge && opts && !opts->dry_run};
    int error = run_all(&x, err);
    if (report == &tmp)
        pb_plex_report_dispose(&tmp);
    return error;
}

int pb_plex_diff(const pb_plex_merge_options *opts, pb_plex_report *report, pb_error *err)
{
    return run_entry(opts, report, 0, err);
}

int pb_plex_merge(const pb_plex_merge_options *opts, pb_plex_report *report, pb_error *err)
{
    return run_entry(opts, report, 1, err);
}
