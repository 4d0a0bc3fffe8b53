/*
 * report_view.c: human and JSON rendering of a pb_plex_report for `plexburst diff` / `merge`
 * (see report_view.h). Human output follows cli.h: numbered phases between separator lines, state
 * emojis at line starts, a POST-MORTEM naming the failed phase; --json prints one object.
 * Role: display only; the figures come from libplexburst (plexburst/plexmerge.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report_view.h"

void report_view_init(report_view *v, const char *command, const pb_plex_report *r, int merge,
                      int json, int list)
{
    memset(v, 0, sizeof(*v));
    v->command = command;
    v->r = r;
    v->merge = merge;
    v->json = json;
    v->list = list;
    if (json && list)
        v->actions = json_array();
}

/* ---------------------------------------------------------------------------------------------
 * Human output
 */

/* The number a phase is shown under, and its title. */
static int phase_number(const report_view *v, int phase)
{
    if (!v->merge && phase == PB_PHASE_MERGE)
        return 4;
    return phase;
}

static void phase_header(report_view *v, int phase)
{
    char title[64];
    if (phase == PB_PHASE_MERGE && !v->merge)
        snprintf(title, sizeof(title), "3-WAY VIEW (DRY-RUN MERGE)");
    else if (phase == PB_PHASE_MERGE && v->r->dry_run)
        snprintf(title, sizeof(title), "MERGE (DRY RUN)");
    else
        snprintf(title, sizeof(title), "%s", pb_plex_phase_name(phase));
    cli_phase(phase_number(v, phase), title);
    v->headed = phase;
}

typedef unsigned long long ull;

static void show_schema(const report_view *v)
{
    const pb_plex_schema_verdict *s = &v->r->schema;
    if (!s->checked)
        return;
    if (!s->ok) {
        cli_state("❌", "%s", s->message);
        return;
    }
    cli_state("✅", "%s", s->message);
    printf("   base %s, cloud %s%s%s; %llu migrations, %llu tables compared\n", s->base_version,
           s->cloud_version[0] ? s->cloud_version : "(changeset)",
           s->live_version[0] ? ", home " : "", s->live_version, (ull)s->nversions,
           (ull)s->ntables);
}

static void show_diff(const report_view *v)
{
    const pb_plex_report *r = v->r;
    char raw[32], z[32];
    size_t active = 0;
    for (size_t i = 0; i < r->ntables; i++)
        active += r->tables[i].cs_inserted + r->tables[i].cs_updated + r->tables[i].cs_deleted > 0;
    cli_state("📦",
              "changeset: %llu records (%llu inserted, %llu updated, %llu deleted) in %zu "
              "tables, %s raw, %s zstd",
              (ull)(r->cs_inserted + r->cs_updated + r->cs_deleted), (ull)r->cs_inserted,
              (ull)r->cs_updated, (ull)r->cs_deleted, active,
              cli_bytes(raw, sizeof(raw), r->bytes_changeset),
              cli_bytes(z, sizeof(z), r->bytes_changeset_zstd));
    if (active) {
        cli_state("📊", "per table (changeset records):");
        printf("   %-40s %-8s %9s %9s %9s\n", "table", "class", "inserted", "updated", "deleted");
        for (size_t i = 0; i < r->ntables; i++) {
            const pb_plex_table_report *t = &r->tables[i];
            if (t->cs_inserted + t->cs_updated + t->cs_deleted == 0)
                continue;
            char name[140];
            snprintf(name, sizeof(name), "%s%s%s", strcmp(t->schema, "main") ? t->schema : "",
                     strcmp(t->schema, "main") ? "." : "", t->table);
            printf("   %-40s %-8s %9llu %9llu %9llu\n", name, pb_plex_class_name(t->table_class),
                   (ull)t->cs_inserted, (ull)t->cs_updated, (ull)t->cs_deleted);
        }
    }
    if (r->nsections) {
        cli_state("📊", "per library section (items = metadata_items, parts = media_parts):");
        for (size_t i = 0; i < r->nsections; i++) {
            const pb_plex_section_report *s = &r->sections[i];
            if (s->id == 0 && s->items_inserted + s->items_updated + s->items_deleted +
                                      s->parts_inserted + s->parts_updated + s->parts_deleted ==
                                  0)
                continue;
            char label[160];
            if (s->id > 0)
                snprintf(label, sizeof(label), "\"%s\" (id %lld)", s->name, (long long)s->id);
            else
                snprintf(label, sizeof(label), "%s", s->name);
            printf("   %-30s %6llu items: +%llu ~%llu -%llu   %6llu parts: +%llu ~%llu -%llu\n",
                   label, (ull)s->items, (ull)s->items_inserted, (ull)s->items_updated,
                   (ull)s->items_deleted, (ull)s->parts, (ull)s->parts_inserted,
                   (ull)s->parts_updated, (ull)s->parts_deleted);
        }
    }
    if (r->new_items) {
        cli_state("📊", "new items: %llu%s", (ull)r->new_items,
                  r->new_items > r->ntitles ? " (the first ones)" : "");
        for (size_t i = 0; i < r->ntitles; i++)
            printf("   %-10s %s (section %lld)\n", r->titles[i].type, r->titles[i].title,
                   (long long)r->titles[i].section_id);
    }
    const pb_plex_analysis *a = &r->analysis;
    cli_state("📊",
              "analysis: %llu tracks with sonic analysis, loudness on %llu items and %llu "
              "streams, preview thumbnails on %llu parts, %llu markers (%llu intro, %llu credits), "
              "%llu media analysed, %llu blobs",
              (ull)a->sonic_tracks, (ull)a->loudness_items, (ull)a->loudness_streams,
              (ull)a->preview_parts, (ull)a->markers, (ull)a->intro_markers,
              (ull)a->credits_markers, (ull)a->media_analyzed, (ull)a->blobs);
    if (r->nunknown) {
        char names[600] = "";
        size_t shown = r->nunknown < 8 ? r->nunknown : 8;
        for (size_t i = 0; i < shown; i++) {
            size_t len = strlen(names);
            snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "", r->unknown_tables[i]);
        }
        cli_state("⚠️", "%zu tables of unknown class kept as home state: %s%s", r->nunknown,
                  names, r->nunknown > shown ? ", ..." : "");
    }
}

static void show_guards(const report_view *v)
{
    const pb_plex_deletion_verdict *d = &v->r->deletion;
    if (!d->checked)
        return;
    if (d->ok) {
        cli_state("✅", "%s", d->message);
        return;
    }
    cli_state("🚨", "%s", d->message);
    if (v->merge)
        cli_state("❌", "merge refused: nothing was written");
    else
        cli_state("⚠️",
                  "a merge of this changeset would be refused (--max-delete-pct raises the "
                  "limit when the deletions are intended)");
}

static void show_backup(const report_view *v)
{
    const pb_plex_report *r = v->r;
    if (r->backup_dir[0])
        cli_state("✅", "backup of the live DB%s in %s (%u older removed)",
                  r->with_blobs ? " pair" : "", r->backup_dir, r->backups_removed);
}

static void show_listed(const pb_plex_listed *l, size_t n, ull total)
{
    for (size_t i = 0; i < n; i++) {
        printf("   %s %s.%s id %lld", pb_plex_op_name(l[i].op), l[i].schema, l[i].table,
               (long long)l[i].old_id);
        if (l[i].new_id && l[i].new_id != l[i].old_id)
            printf(" -> %lld", (long long)l[i].new_id);
        if (l[i].column[0])
            printf(" column %s", l[i].column);
        printf(": %s\n", pb_plex_resolution_name(l[i].resolution));
    }
    if (total > n)
        printf("   ... and %llu more\n", total - (ull)n);
}

static void show_merge(const report_view *v)
{
    const pb_plex_report *r = v->r;
    const pb_merge_counts *m = &r->merge;
    if (r->merged)
        cli_state("✅", "merged into the live DB with %s", r->engine);
    else if (r->dry_run && r->phase >= PB_PHASE_DONE)
        cli_state("🔍", "dry run against the live DB, nothing written: %s", r->engine);
    else if (!r->ok)
        return;
    cli_state("📊",
              "rows: %llu inserted, %llu updated, %llu deleted, %llu already as the cloud has "
              "them, %llu no longer at home",
              (ull)m->inserted, (ull)m->updated, (ull)m->deleted, (ull)m->same, (ull)m->notfound);
    if (m->merged)
        cli_state("🔀",
                  "%llu columns changed on both sides merged key by key (extra_data: the "
                  "cloud's analysis keys added, the home's keys kept)",
                  (ull)m->merged);
    if (m->conflicts) {
        cli_state("⚠️",
                  "%llu conflicts: changed on both sides (home value kept, except deletions "
                  "and rows listed as cloud_won)",
                  (ull)m->conflicts);
        show_listed(r->conflicts, r->nconflicts, m->conflicts + m->merged);
    } else {
        cli_state("✅", "no conflicts");
        if (m->merged)
            show_listed(r->conflicts, r->nconflicts, m->merged);
    }
    if (m->remapped || m->natkey_mapped) {
        cli_state("📊",
                  "%llu cloud inserts renumbered above the home ids, %llu mapped onto existing "
                  "home rows (natural key)",
                  (ull)m->remapped, (ull)m->natkey_mapped);
        show_listed(r->remaps, r->nremaps, m->remapped + m->natkey_mapped);
    }
    if (m->user_state_dropped)
        cli_state("📊", "%llu user-state records dropped (home wins)", (ull)m->user_state_dropped);
    if (r->with_blobs && r->merged) {
        if (r->atomic_pair)
            cli_state("✅", "library and blobs DBs committed together (one transaction)");
        else
            cli_state("⚠️",
                      "library and blobs DBs committed one after the other (WAL mode kept: "
                      "is Plex running?)");
    }
}

static void show_phase(report_view *v, int phase)
{
    switch (phase) {
    case PB_PHASE_SCHEMA:
        show_schema(v);
        break;
    case PB_PHASE_DIFF:
        show_diff(v);
        break;
    case PB_PHASE_GUARDS:
        show_guards(v);
        break;
    case PB_PHASE_BACKUP:
        show_backup(v);
        break;
    case PB_PHASE_MERGE:
        show_merge(v);
        break;
    default:
        break;
    }
    v->shown = phase;
}

void report_print_body(const report_view *v)
{
    const pb_plex_report *r = v->r;
    if (r->phase >= PB_PHASE_SCHEMA)
        show_schema(v);
    if (r->phase > PB_PHASE_DIFF || (r->phase == PB_PHASE_DIFF && r->ok))
        show_diff(v);
    if (r->phase >= PB_PHASE_GUARDS)
        show_guards(v);
    if (r->phase >= PB_PHASE_BACKUP)
        show_backup(v);
    if (r->three_way && (r->phase > PB_PHASE_MERGE || (r->phase == PB_PHASE_MERGE && r->ok)))
        show_merge(v);
}

/* The backup phase when the library skipped it (dry run, --keep-backups 0). */
static void skipped_backup(report_view *v)
{
    phase_header(v, PB_PHASE_BACKUP);
    if (v->r->dry_run)
        cli_state("⚠️", "dry run: no backup taken");
    else
        cli_state("⚠️", "backups disabled (--keep-backups 0)");
    v->shown = PB_PHASE_BACKUP;
}

void report_on_phase(int phase, void *payload)
{
    report_view *v = payload;
    if (v->json)
        return;
    if (v->headed && v->shown < v->headed)
        show_phase(v, v->headed);
    if (phase >= PB_PHASE_DONE)
        return;
    if (v->merge && phase == PB_PHASE_MERGE && v->headed < PB_PHASE_BACKUP)
        skipped_backup(v);
    phase_header(v, phase);
}

void report_on_action(const pb_merge_action *a, void *payload)
{
    report_view *v = payload;
    if (!v->list)
        return;
    v->nactions++;
    if (v->json) {
        if (v->actions && v->nactions <= 1000000)
            json_array_append_new(v->actions,
                                  json_pack("{s:s, s:s, s:s, s:I, s:I, s:s?, s:s}", "schema",
                                            a->schema, "table", a->table, "op",
                                            pb_plex_op_name(a->op), "old_id", (json_int_t)a->old_id,
                                            "new_id", (json_int_t)a->new_id, "column", a->column,
                                            "resolution", pb_plex_resolution_name(a->resolution)));
        return;
    }
    printf("   %-6s %s.%s id %lld", pb_plex_op_name(a->op), a->schema, a->table,
           (long long)a->old_id);
    if (a->new_id && a->new_id != a->old_id)
        printf(" -> %lld", (long long)a->new_id);
    if (a->column)
        printf(" column %s", a->column);
    printf(": %s\n", pb_plex_resolution_name(a->resolution));
}

static const char *advice(int code)
{
    switch (code) {
    case PB_EREFUSED:
        return "a cloud mount that failed makes Plex delete a section's items: check the cloud "
               "run; if the deletions are intended, raise --max-delete-pct";
    case PB_ESCHEMA:
        return "run the same Plex build on both sides and take a new baseline";
    case PB_ECORRUPT:
        return "the input is truncated or malformed: fetch or compute it again";
    case PB_ENOTFOUND:
        return "check the paths given";
    case PB_EBUSY:
        return "another process holds the DB: stop Plex and run again";
    case PB_ECONFLICT:
        return "a write would break a constraint of the home DB: keep the message and report it";
    case PB_EINVALID:
        return "check the options (plexburst merge --help)";
    default:
        return "read the message above";
    }
}

static void post_mortem(const report_view *v, int rc, const pb_error *err)
{
    const pb_plex_report *r = v->r;
    int phase = r->phase;
    cli_banner("POST-MORTEM");
    if (phase > PB_PHASE_NONE && phase < PB_PHASE_DONE)
        cli_state("❌", "PHASE %d (%s) failed: %s", phase_number(v, phase),
                  pb_plex_phase_name(phase), err && err->msg[0] ? err->msg : pb_strerror(rc));
    else
        cli_state("❌", "failed before PHASE 1: %s",
                  err && err->msg[0] ? err->msg : pb_strerror(rc));
    if (v->merge && !r->merged)
        cli_state("📊", "the live DB was not changed%s%s", r->backup_dir[0] ? "; backup in " : "",
                  r->backup_dir);
    else if (!v->merge)
        cli_state("📊", "nothing was written (diff is read-only)");
    cli_state("🔍", "%s", advice(rc));
}

static void show_timings(const report_view *v)
{
    const pb_plex_report *r = v->r;
    cli_state("📊",
              "timings: schema %.0f ms, diff %.0f ms, guards %.0f ms, backup %.0f ms, merge %.0f "
              "ms, total %.0f ms",
              r->ms.schema, r->ms.diff, r->ms.guards, r->ms.backup, r->ms.merge, r->ms.total);
}

int report_finish(report_view *v, int rc, const pb_error *err)
{
    int code = cli_exit_code(rc);
    if (v->json) {
        json_t *j = report_to_json(v, rc);
        cli_print_json(j, JSON_INDENT(2) | JSON_ENSURE_ASCII);
        json_decref(j);
        json_decref(v->actions);
        v->actions = NULL;
        if (rc)
            cli_fail(err, rc);
        return code;
    }
    if (rc == 0) {
        if (v->headed && v->shown < v->headed)
            show_phase(v, v->headed);
        show_timings(v);
        return code;
    }
    /* the failing phase: its verdict when it has one, else the error line */
    int failing = v->r->phase;
    if (v->headed == failing && v->shown < failing &&
        (failing == PB_PHASE_SCHEMA || failing == PB_PHASE_GUARDS))
        show_phase(v, failing);
    else if (v->headed == failing && v->shown < failing)
        cli_state("❌", "%s", err && err->msg[0] ? err->msg : pb_strerror(rc));
    post_mortem(v, rc, err);
    return cli_fail(err, rc);
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 */

json_t *report_counts_json(const pb_merge_counts *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "inserted",
                     (json_int_t)c->inserted, "updated", (json_int_t)c->updated, "deleted",
                     (json_int_t)c->deleted, "conflicts", (json_int_t)c->conflicts, "remapped",
                     (json_int_t)c->remapped, "natkey_mapped", (json_int_t)c->natkey_mapped,
                     "user_state_dropped", (json_int_t)c->user_state_dropped, "notfound",
                     (json_int_t)c->notfound, "same", (json_int_t)c->same, "merged",
                     (json_int_t)c->merged);
}

static json_t *listed_json(const pb_plex_listed *l, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:I, s:I, s:s?, s:s}", "schema", l[i].schema, "table",
                         l[i].table, "op", pb_plex_op_name(l[i].op), "old_id",
                         (json_int_t)l[i].old_id, "new_id", (json_int_t)l[i].new_id, "column",
                         l[i].column[0] ? l[i].column : NULL, "resolution",
                         pb_plex_resolution_name(l[i].resolution)));
    return a;
}

/* rows.*: the merge's decisions when a live DB took part; for a 2-way diff, what a merge would
 * do by class (library records written, user-state records dropped). */
static json_t *rows_json(const pb_plex_report *r)
{
    if (r->three_way)
        return report_counts_json(&r->merge);
    pb_merge_counts c;
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < r->ntables; i++) {
        const pb_plex_table_report *t = &r->tables[i];
        if (t->table_class == PB_CLASS_USER) {
            c.user_state_dropped += t->cs_inserted + t->cs_updated + t->cs_deleted;
        } else {
            c.inserted += t->cs_inserted;
            c.updated += t->cs_updated;
            c.deleted += t->cs_deleted;
        }
    }
    return report_counts_json(&c);
}

static json_t *guards_json(const pb_plex_report *r)
{
    const pb_plex_schema_verdict *s = &r->schema;
    const pb_plex_deletion_verdict *d = &r->deletion;
    json_t *worst =
        d->section_id || d->deleted
            ? json_pack("{s:I, s:s, s:s, s:I, s:I, s:f}", "section_id", (json_int_t)d->section_id,
                        "section", d->section_name, "what", d->what, "deleted",
                        (json_int_t)d->deleted, "total", (json_int_t)d->total, "pct", d->pct)
            : json_null();
    json_t *guards = json_object();
    json_object_set_new(
        guards, "schema",
        json_pack("{s:b, s:b, s:{s:s?, s:s?, s:s?}, s:I, s:I, s:s?, s:s}", "checked", s->checked,
                  "ok", s->ok, "versions", "base", s->base_version[0] ? s->base_version : NULL,
                  "cloud", s->cloud_version[0] ? s->cloud_version : NULL, "home",
                  s->live_version[0] ? s->live_version : NULL, "migrations",
                  (json_int_t)s->nversions, "tables", (json_int_t)s->ntables, "first_difference",
                  s->first_difference[0] ? s->first_difference : NULL, "message", s->message));
    json_object_set_new(guards, "deletion",
                        json_pack("{s:b, s:b, s:f, s:o, s:s}", "checked", d->checked, "ok", d->ok,
                                  "max_pct", d->max_pct, "worst", worst, "message", d->message));
    return guards;
}

static json_t *tables_json(const pb_plex_report *r)
{
    json_t *tables = json_array();
    for (size_t i = 0; i < r->ntables; i++) {
        const pb_plex_table_report *t = &r->tables[i];
        json_t *jt = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I}}", "schema", t->schema, "table",
                               t->table, "class", pb_plex_class_name(t->table_class), "changeset",
                               "inserted", (json_int_t)t->cs_inserted, "updated",
                               (json_int_t)t->cs_updated, "deleted", (json_int_t)t->cs_deleted);
        if (r->three_way)
            json_object_set_new(jt, "merge", report_counts_json(&t->merge));
        json_array_append_new(tables, jt);
    }
    return tables;
}

static json_t *sections_json(const pb_plex_report *r)
{
    json_t *sections = json_array();
    for (size_t i = 0; i < r->nsections; i++) {
        const pb_plex_section_report *x = &r->sections[i];
        json_array_append_new(
            sections,
            json_pack("{s:I, s:s, s:i, s:I, s:I, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}}", "id",
                      (json_int_t)x->id, "name", x->name, "section_type", x->section_type, "items",
                      (json_int_t)x->items, "parts", (json_int_t)x->parts, "items_changed",
                      "inserted", (json_int_t)x->items_inserted, "updated",
                      (json_int_t)x->items_updated, "deleted", (json_int_t)x->items_deleted,
                      "parts_changed", "inserted", (json_int_t)x->parts_inserted, "updated",
                      (json_int_t)x->parts_updated, "deleted", (json_int_t)x->parts_deleted));
    }
    return sections;
}

static json_t *titles_json(const pb_plex_report *r)
{
    json_t *titles = json_array();
    for (size_t i = 0; i < r->ntitles; i++)
        json_array_append_new(titles, json_pack("{s:I, s:s, s:s, s:i, s:I}", "id",
                                                (json_int_t)r->titles[i].id, "title",
                                                r->titles[i].title, "type", r->titles[i].type,
                                                "metadata_type", r->titles[i].metadata_type,
                                                "section_id", (json_int_t)r->titles[i].section_id));
    return titles;
}

static json_t *analysis_json(const pb_plex_analysis *a)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "sonic_tracks",
                     (json_int_t)a->sonic_tracks, "loudness_items", (json_int_t)a->loudness_items,
                     "loudness_streams", (json_int_t)a->loudness_streams, "preview_parts",
                     (json_int_t)a->preview_parts, "markers", (json_int_t)a->markers,
                     "intro_markers", (json_int_t)a->intro_markers, "credits_markers",
                     (json_int_t)a->credits_markers, "media_analyzed",
                     (json_int_t)a->media_analyzed, "blobs", (json_int_t)a->blobs);
}

json_t *report_to_json(const report_view *v, int rc)
{
    const pb_plex_report *r = v->r;
    json_t *o = json_object();

    json_object_set_new(o, "command", json_string(v->command));
    json_object_set_new(o, "ok", json_boolean(rc == 0 && r->ok));
    json_object_set_new(o, "exit_code", json_integer(cli_exit_code(rc)));
    json_object_set_new(o, "phase", json_string(pb_plex_phase_name(r->phase)));
    if (rc)
        json_object_set_new(o, "error",
                            json_pack("{s:i, s:s, s:s}", "code", rc, "name", pb_strerror(rc),
                                      "message", r->error[0] ? r->error : pb_strerror(rc)));
    else
        json_object_set_new(o, "error", json_null());
    json_object_set_new(o, "dry_run", json_boolean(r->dry_run));
    json_object_set_new(o, "three_way", json_boolean(r->three_way));
    json_object_set_new(o, "merged", json_boolean(r->merged));
    json_object_set_new(o, "engine", r->engine[0] ? json_string(r->engine) : json_null());
    json_object_set_new(o, "blobs", json_boolean(r->with_blobs));
    json_object_set_new(o, "atomic_pair", json_boolean(r->atomic_pair));

    json_object_set_new(o, "rows", rows_json(r));
    json_object_set_new(o, "changeset",
                        json_pack("{s:I, s:I, s:I}", "inserted", (json_int_t)r->cs_inserted,
                                  "updated", (json_int_t)r->cs_updated, "deleted",
                                  (json_int_t)r->cs_deleted));
    json_object_set_new(o, "bytes",
                        json_pack("{s:I, s:I}", "changeset", (json_int_t)r->bytes_changeset,
                                  "changeset_zstd", (json_int_t)r->bytes_changeset_zstd));
    json_object_set_new(o, "guards", guards_json(r));
    json_object_set_new(o, "tables", tables_json(r));
    json_object_set_new(o, "sections", sections_json(r));
    json_object_set_new(o, "new_items", json_integer((json_int_t)r->new_items));
    json_object_set_new(o, "new_titles", titles_json(r));
    json_object_set_new(o, "analysis", analysis_json(&r->analysis));
    json_object_set_new(o, "conflicts", listed_json(r->conflicts, r->nconflicts));
    json_object_set_new(o, "remaps", listed_json(r->remaps, r->nremaps));
    json_t *unknown = json_array();
    for (size_t i = 0; i < r->nunknown && i < 8; i++)
        json_array_append_new(unknown, json_string(r->unknown_tables[i]));
    json_object_set_new(o, "unknown_tables", unknown);
    json_object_set_new(o, "backup",
                        r->backup_dir[0] ? json_pack("{s:s, s:i}", "dir", r->backup_dir, "removed",
                                                     (int)r->backups_removed)
                                         : json_null());
    json_object_set_new(o, "timings_ms",
                        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "schema", r->ms.schema, "diff",
                                  r->ms.diff, "guards", r->ms.guards, "backup", r->ms.backup,
                                  "merge", r->ms.merge, "total", r->ms.total));
    if (v->actions)
        json_object_set(o, "actions", v->actions);
    return o;
}

/* ---------------------------------------------------------------------------------------------
 * Running a command
 */

int report_run(const char *command, int merge, pb_plex_merge_options *o, int json, int list)
{
    pb_plex_report r;
    pb_error err = PB_ERROR_INIT;
    report_view v;

    memset(&r, 0, sizeof(r));
    report_view_init(&v, command, &r, merge, json, list);
    o->on_phase = report_on_phase;
    o->phase_payload = &v;
    o->on_action = report_on_action;
    o->action_payload = &v;
    int rc = merge ? pb_plex_merge(o, &r, &err) : pb_plex_diff(o, &r, &err);
    int code = report_finish(&v, rc, &err);
    pb_plex_report_dispose(&r);
    return code;
}
