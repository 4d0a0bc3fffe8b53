/*
 * report_scan.c: the figures of a pb_plex_report gathered from changesets (see report.h): per
 * table and per library section rows inserted, updated and deleted, the first new titles,
 * analysis progress (sonic, loudness, preview thumbnails, markers).
 * Role: what the diff and merge commands show, beside the merge's decisions (report.c).
 * Prerequisites: SQLite's session extension (changeset iterator); the base DB for the values an
 * UPDATE record does not carry (an item's section and type).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "report.h"

/* ---------------------------------------------------------------------------------------------
 * int64 -> int64 map (open addressing), for media_items -> section and the marker tag set
 */

typedef struct idmap {
    int64_t *keys, *vals;
    unsigned char *used;
    size_t n, cap;
} idmap;

static void idmap_free(idmap *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof(*m));
}

static size_t idmap_slot(const idmap *m, int64_t k)
{
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (m->cap - 1);
}

static int idmap_put(idmap *m, int64_t k, int64_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        idmap old = *m;
        size_t cap = old.cap ? old.cap * 2 : 256;
        m->keys = malloc(cap * sizeof(int64_t));
        m->vals = malloc(cap * sizeof(int64_t));
        m->used = calloc(cap, 1);
        m->cap = cap;
        m->n = 0;
        if (!m->keys || !m->vals || !m->used) {
            idmap_free(m);
            *m = old;
            return PB_ENOMEM;
        }
        for (size_t i = 0; i < old.cap; i++)
            if (old.used[i])
                idmap_put(m, old.keys[i], old.vals[i]);
        idmap_free(&old);
    }
    size_t i = idmap_slot(m, k);
    while (m->used[i] && m->keys[i] != k)
        i = (i + 1) & (m->cap - 1);
    if (!m->used[i]) {
        m->used[i] = 1;
        m->keys[i] = k;
        m->n++;
    }
    m->vals[i] = v;
    return 0;
}

static int idmap_get(const idmap *m, int64_t k, int64_t *v)
{
    if (!m->cap)
        return 0;
    size_t i = idmap_slot(m, k);
    while (m->used[i]) {
        if (m->keys[i] == k) {
            if (v)
                *v = m->vals[i];
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The scan
 */

struct pb_plex_scan {
    pb_plex_report *r;
    sqlite3 *base;
    const pb_plex_policy *pol;
    sqlite3_stmt *q_item, *q_media, *q_part;
    idmap media_section; /* media_items id -> section, from the changeset's own records */
    idmap marker_tags;   /* tags of tag_type 12 (base and inserted) */
};

static int scan_sqlerr(pb_error *err, sqlite3 *db, const char *what)
{
    return pb_error_setd(err, PB_ESQLITE, sqlite3_extended_errcode(db), "report: %s: %s", what,
                         sqlite3_errmsg(db));
}

static pb_plex_section_report *section_get(pb_plex_report *r, int64_t id)
{
    for (size_t i = 0; i < r->nsections; i++)
        if (r->sections[i].id == id)
            return &r->sections[i];
    pb_plex_section_report *s = realloc(r->sections, (r->nsections + 1) * sizeof(*s));
    if (!s)
        return NULL;
    r->sections = s;
    s = &r->sections[r->nsections++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    snprintf(s->name, sizeof(s->name), "%s", id > 0 ? "(new section)" : "(no section)");
    return s;
}

/* Runs a query of rows (id, value) and hands them to `fn`. */
static int scan_rows(pb_plex_scan *s, const char *sql, int (*fn)(pb_plex_scan *s, sqlite3_stmt *st),
                     pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->base, sql, -1, &st, NULL), error = 0;
    if (rc != SQLITE_OK)
        return scan_sqlerr(err, s->base, "reading the base DB");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if ((error = fn(s, st)) != 0) {
            sqlite3_finalize(st);
            return pb_error_set(err, error, "report: out of memory");
        }
    if (rc != SQLITE_DONE)
        error = scan_sqlerr(err, s->base, "reading the base DB");
    sqlite3_finalize(st);
    return error;
}

static int row_section(pb_plex_scan *s, sqlite3_stmt *st)
{
    pb_plex_section_report *sec = section_get(s->r, sqlite3_column_int64(st, 0));
    if (!sec)
        return PB_ENOMEM;
    const char *name = (const char *)sqlite3_column_text(st, 1);
    snprintf(sec->name, sizeof(sec->name), "%s", name ? name : "");
    sec->section_type = sqlite3_column_int(st, 2);
    return 0;
}

static int row_items(pb_plex_scan *s, sqlite3_stmt *st)
{
    pb_plex_section_report *sec = section_get(s->r, sqlite3_column_int64(st, 0));
    if (!sec)
        return PB_ENOMEM;
    sec->items = (uint64_t)sqlite3_column_int64(st, 1);
    return 0;
}

static int row_parts(pb_plex_scan *s, sqlite3_stmt *st)
{
    pb_plex_section_report *sec = section_get(s->r, sqlite3_column_int64(st, 0));
    if (!sec)
        return PB_ENOMEM;
    sec->parts = (uint64_t)sqlite3_column_int64(st, 1);
    return 0;
}

static int row_marker(pb_plex_scan *s, sqlite3_stmt *st)
{
    return idmap_put(&s->marker_tags, sqlite3_column_int64(st, 0), 1);
}

void pb_plex_scan_free(pb_plex_scan *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->q_item);
    sqlite3_finalize(s->q_media);
    sqlite3_finalize(s->q_part);
    idmap_free(&s->media_section);
    idmap_free(&s->marker_tags);
    free(s);
}

int pb_plex_scan_new(pb_plex_scan **out, pb_plex_report *r, sqlite3 *base,
                     const pb_plex_policy *pol, pb_error *err)
{
    int error = 0;
    pb_plex_scan *s = NULL;

    if (!out || !r || !base || !pol)
        return pb_error_set(err, PB_EINVALID, "report: nothing to scan with");
    *out = NULL;
    if (!(s = calloc(1, sizeof(*s))))
        return pb_error_set(err, PB_ENOMEM, "report: out of memory");
    s->r = r;
    s->base = base;
    s->pol = pol;
    if ((error =
             scan_rows(s, "SELECT id, name, section_type FROM main.library_sections ORDER BY id",
                       row_section, err)) != 0)
        goto done;
    if ((error = scan_rows(s,
                           "SELECT coalesce(library_section_id, 0), count(*) FROM "
                           "main.metadata_items GROUP BY 1",
                           row_items, err)) != 0)
        goto done;
    if ((error = scan_rows(s,
                           "SELECT coalesce(mi.library_section_id, 0), count(*) FROM "
                           "main.media_parts p JOIN main.media_items mi ON mi.id = p.media_item_id "
                           "GROUP BY 1",
                           row_parts, err)) != 0)
        goto done;
    if ((error = scan_rows(s, "SELECT id FROM main.tags WHERE tag_type = 12", row_marker, err)) !=
        0)
        goto done;
    if (sqlite3_prepare_v2(base,
                           "SELECT coalesce(library_section_id, 0), metadata_type FROM "
                           "main.metadata_items WHERE id = ?",
                           -1, &s->q_item, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(base,
                           "SELECT coalesce(library_section_id, 0) FROM main.media_items WHERE "
                           "id = ?",
                           -1, &s->q_media, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(base,
                           "SELECT coalesce(mi.library_section_id, 0), p.media_item_id FROM "
                           "main.media_parts p LEFT JOIN main.media_items mi ON mi.id = "
                           "p.media_item_id WHERE p.id = ?",
                           -1, &s->q_part, NULL) != SQLITE_OK) {
        error = scan_sqlerr(err, base, "reading the base DB");
        goto done;
    }
    *out = s;
    s = NULL;
done:
    pb_plex_scan_free(s);
    return error;
}

/* Looks one id up with a prepared statement; 1 and the first columns when found. */
static int lookup(sqlite3_stmt *q, int64_t id, int64_t *a, int64_t *b)
{
    int found = 0;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        found = 1;
        if (a)
            *a = sqlite3_column_int64(q, 0);
        if (b)
            *b = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    return found;
}

/* 1 when the text holds the extra_data key (or key prefix, "ln:") `key`, either in the JSON form
 * ("ln:loudness": ...) or in the URL-encoded form (ln%3Aloudness=...). */
static int has_key(const char *text, const char *key)
{
    char json[64], url[64];
    const char *colon = strchr(key, ':');
    if (!text || !colon)
        return 0;
    snprintf(json, sizeof(json), "\"%s", key);
    if (strstr(text, json))
        return 1;
    snprintf(url, sizeof(url), "%.*s%%3A%s", (int)(colon - key), key, colon + 1);
    for (const char *p = strstr(text, url); p; p = strstr(p + 1, url))
        if (p == text || p[-1] == '&' || p[-1] == '?' || p[-1] == '"')
            return 1;
    return 0;
}

/* Values of a record: new (INSERT, UPDATE when changed) and old (DELETE, UPDATE when changed). */
typedef struct rec {
    sqlite3_changeset_iter *it;
    int op, ncol;
} rec;

static sqlite3_value *rv_new(const rec *r, int col)
{
    sqlite3_value *v = NULL;
    if (col < 0 || col >= r->ncol || r->op == SQLITE_DELETE)
        return NULL;
    if (sqlite3changeset_new(r->it, col, &v) != SQLITE_OK)
        return NULL;
    return v;
}

static sqlite3_value *rv_old(const rec *r, int col)
{
    sqlite3_value *v = NULL;
    if (col < 0 || col >= r->ncol || r->op == SQLITE_INSERT)
        return NULL;
    if (sqlite3changeset_old(r->it, col, &v) != SQLITE_OK)
        return NULL;
    return v;
}

/* The value after the change, or before it for a DELETE. */
static sqlite3_value *rv_cur(const rec *r, int col)
{
    return r->op == SQLITE_DELETE ? rv_old(r, col) : rv_new(r, col);
}

/* The row's key (integer PK "id"): new for INSERT, old otherwise. */
static int64_t rv_id(const rec *r, int col)
{
    sqlite3_value *v = r->op == SQLITE_INSERT ? rv_new(r, col) : rv_old(r, col);
    return v ? sqlite3_value_int64(v) : 0;
}

static const char *vtext(sqlite3_value *v)
{
    return v && sqlite3_value_type(v) != SQLITE_NULL ? (const char *)sqlite3_value_text(v) : NULL;
}

static int gained(const rec *r, int col, const char *key)
{
    sqlite3_value *nv = rv_new(r, col);
    if (!nv || !has_key(vtext(nv), key))
        return 0;
    return r->op == SQLITE_INSERT || !has_key(vtext(rv_old(r, col)), key);
}

static const char *type_name(int t)
{
    switch (t) {
    case 1:
        return "movie";
    case 2:
        return "show";
    case 3:
        return "season";
    case 4:
        return "episode";
    case 8:
        return "artist";
    case 9:
        return "album";
    case 10:
        return "track";
    case 12:
        return "extra";
    case 13:
        return "photo";
    case 14:
        return "photoalbum";
    case 15:
        return "playlist";
    case 18:
        return "collection";
    case 42:
        return "optimized";
    default:
        return "item";
    }
}

/* Column positions of the tables the report looks into. */
typedef struct cols {
    int id, section, type, title, extra, media_item, mav, tag_id, text, tag_type, name, stype;
} cols;

static void cols_for(const pb_plex_policy *pol, const char *schema, const char *t, cols *c)
{
    c->id = pb_plex_policy_column(pol, schema, t, "id");
    c->section = pb_plex_policy_column(pol, schema, t, "library_section_id");
    c->type = pb_plex_policy_column(pol, schema, t, "metadata_type");
    c->title = pb_plex_policy_column(pol, schema, t, "title");
    c->extra = pb_plex_policy_column(pol, schema, t, "extra_data");
    c->media_item = pb_plex_policy_column(pol, schema, t, "media_item_id");
    c->mav = pb_plex_policy_column(pol, schema, t, "media_analysis_version");
    c->tag_id = pb_plex_policy_column(pol, schema, t, "tag_id");
    c->text = pb_plex_policy_column(pol, schema, t, "text");
    c->tag_type = pb_plex_policy_column(pol, schema, t, "tag_type");
    c->name = pb_plex_policy_column(pol, schema, t, "name");
    c->stype = pb_plex_policy_column(pol, schema, t, "section_type");
}

static int section_of_media(pb_plex_scan *s, int64_t media_item_id, int64_t *sec)
{
    if (idmap_get(&s->media_section, media_item_id, sec))
        return 1;
    return lookup(s->q_media, media_item_id, sec, NULL);
}

static int scan_metadata_item(pb_plex_scan *s, const rec *r, const cols *c)
{
    pb_plex_report *rep = s->r;
    int64_t id = rv_id(r, c->id), sec = 0, type = 0, bsec = 0, btype = 0;
    sqlite3_value *v;
    int have_base = r->op == SQLITE_UPDATE && lookup(s->q_item, id, &bsec, &btype);

    if ((v = rv_cur(r, c->section)) != NULL)
        sec = sqlite3_value_int64(v);
    else if (have_base)
        sec = bsec;
    if ((v = rv_cur(r, c->type)) != NULL)
        type = sqlite3_value_int64(v);
    else if (have_base)
        type = btype;
    pb_plex_section_report *ps = section_get(rep, sec);
    if (!ps)
        return PB_ENOMEM;
    if (r->op == SQLITE_INSERT) {
        ps->items_inserted++;
        rep->new_items++;
        if (rep->ntitles < PB_PLEX_REPORT_TITLES) {
            pb_plex_new_title *t = &rep->titles[rep->ntitles++];
            const char *title = vtext(rv_new(r, c->title));
            t->id = id;
            t->section_id = sec;
            t->metadata_type = (int)type;
            snprintf(t->type, sizeof(t->type), "%s", type_name((int)type));
            snprintf(t->title, sizeof(t->title), "%s", title ? title : "");
        }
    } else if (r->op == SQLITE_UPDATE) {
        ps->items_updated++;
    } else {
        ps->items_deleted++;
    }
    if (type == 10 && gained(r, c->extra, "ms:musicAnalysisVersion"))
        rep->analysis.sonic_tracks++;
    if (gained(r, c->extra, "ln:"))
        rep->analysis.loudness_items++;
    return 0;
}

static int scan_media_item(pb_plex_scan *s, const rec *r, const cols *c)
{
    int64_t id = rv_id(r, c->id);
    sqlite3_value *v;
    if (r->op != SQLITE_UPDATE && (v = rv_cur(r, c->section)) != NULL)
        if (idmap_put(&s->media_section, id, sqlite3_value_int64(v)) != 0)
            return PB_ENOMEM;
    sqlite3_value *nv = rv_new(r, c->mav), *ov = rv_old(r, c->mav);
    if (nv && sqlite3_value_int64(nv) > 0 &&
        (r->op == SQLITE_INSERT || (ov && sqlite3_value_int64(nv) > sqlite3_value_int64(ov))))
        s->r->analysis.media_analyzed++;
    return 0;
}

static int scan_media_part(pb_plex_scan *s, const rec *r, const cols *c)
{
    int64_t id = rv_id(r, c->id), sec = 0, mid = 0;
    sqlite3_value *v = rv_cur(r, c->media_item);
    if (v)
        section_of_media(s, sqlite3_value_int64(v), &sec);
    else if (lookup(s->q_part, id, &sec, &mid) && sec == 0)
        section_of_media(s, mid, &sec);
    pb_plex_section_report *ps = section_get(s->r, sec);
    if (!ps)
        return PB_ENOMEM;
    if (r->op == SQLITE_INSERT)
        ps->parts_inserted++;
    else if (r->op == SQLITE_UPDATE)
        ps->parts_updated++;
    else
        ps->parts_deleted++;
    if (gained(r, c->extra, "mi:indexes"))
        s->r->analysis.preview_parts++;
    return 0;
}

static int scan_media_stream(pb_plex_scan *s, const rec *r, const cols *c)
{
    if (gained(r, c->extra, "ln:"))
        s->r->analysis.loudness_streams++;
    return 0;
}

static int scan_tagging(pb_plex_scan *s, const rec *r, const cols *c)
{
    if (r->op != SQLITE_INSERT)
        return 0;
    sqlite3_value *v = rv_new(r, c->tag_id);
    if (!v || !idmap_get(&s->marker_tags, sqlite3_value_int64(v), NULL))
        return 0;
    s->r->analysis.markers++;
    const char *text = vtext(rv_new(r, c->text));
    if (text && strcmp(text, "intro") == 0)
        s->r->analysis.intro_markers++;
    else if (text && strcmp(text, "credits") == 0)
        s->r->analysis.credits_markers++;
    return 0;
}

static int scan_section(pb_plex_scan *s, const rec *r, const cols *c)
{
    if (r->op != SQLITE_INSERT)
        return 0;
    pb_plex_section_report *ps = section_get(s->r, rv_id(r, c->id));
    if (!ps)
        return PB_ENOMEM;
    const char *name = vtext(rv_new(r, c->name));
    sqlite3_value *t = rv_new(r, c->stype);
    if (name)
        snprintf(ps->name, sizeof(ps->name), "%s", name);
    if (t)
        ps->section_type = sqlite3_value_int(t);
    return 0;
}

/* stdin-like reader for sqlite3changeset_start_strm. */
static int read_file(void *payload, void *data, int *n)
{
    FILE *f = payload;
    size_t got = fread(data, 1, (size_t)*n, f);
    if (got == 0 && ferror(f))
        return SQLITE_IOERR;
    *n = (int)got;
    return SQLITE_OK;
}

typedef int (*rec_fn)(pb_plex_scan *s, const rec *r, const cols *c);

/* The walk's current table. */
typedef struct walk_table {
    char name[256];
    int ncol;                 /* -1 before the first record */
    pb_plex_table_report *tr; /* its report entry (NULL in the pre-pass) */
    rec_fn fn;                /* the figures of its records, or NULL */
    cols c;
} walk_table;

/* The scanner of a table of the main DB, or NULL. */
static rec_fn scanner_for(const char *schema, const char *tab)
{
    static const struct {
        const char *table;
        rec_fn fn;
    } k_scanners[] = {
        {"metadata_items", scan_metadata_item},
        {"media_items", scan_media_item},
        {"media_parts", scan_media_part},
        {"media_streams", scan_media_stream},
        {"taggings", scan_tagging},
        {"library_sections", scan_section},
    };
    if (strcmp(schema, "main") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof(k_scanners) / sizeof(k_scanners[0]); i++)
        if (strcmp(tab, k_scanners[i].table) == 0)
            return k_scanners[i].fn;
    return NULL;
}

/* Switches the walk to table `tab` (checked against the DBs' shape). */
static int enter_table(pb_plex_scan *s, walk_table *w, const char *schema, const char *tab,
                       int ncol, int pre, const char *path, pb_error *err)
{
    snprintf(w->name, sizeof(w->name), "%s", tab);
    w->ncol = ncol;
    int want = pb_plex_policy_ncolumns(s->pol, schema, tab);
    if (want < 0)
        return pb_error_set(err, PB_ESCHEMA, "changeset %s: table %s.%s does not exist in the DBs",
                            path, schema, tab);
    if (want != ncol)
        return pb_error_set(err, PB_ESCHEMA, "changeset %s: table %s.%s has %d columns, the DBs %d",
                            path, schema, tab, ncol, want);
    cols_for(s->pol, schema, tab, &w->c);
    w->fn = pre ? NULL : scanner_for(schema, tab);
    w->tr = NULL;
    if (!pre && !(w->tr = pb_plex_report_table(s->r, schema, tab,
                                               pb_plex_policy_class(s->pol, schema, tab))))
        return pb_error_set(err, PB_ENOMEM, "report: out of memory");
    return 0;
}

/* The pre-pass: collects the marker tags (tag_type 12) the changeset inserts. */
static int pre_record(pb_plex_scan *s, const walk_table *w, const rec *r, const char *schema,
                      pb_error *err)
{
    if (r->op != SQLITE_INSERT || strcmp(schema, "main") != 0 || strcmp(w->name, "tags") != 0)
        return 0;
    sqlite3_value *tt = rv_new(r, w->c.tag_type);
    if (tt && sqlite3_value_int64(tt) == 12 &&
        idmap_put(&s->marker_tags, rv_id(r, w->c.id), 1) != 0)
        return pb_error_set(err, PB_ENOMEM, "report: out of memory");
    return 0;
}

/* Counts one record and hands it to its table's scanner. */
static int scan_record(pb_plex_scan *s, const walk_table *w, const rec *r, pb_error *err)
{
    if (r->op == SQLITE_INSERT) {
        w->tr->cs_inserted++;
        s->r->cs_inserted++;
    } else if (r->op == SQLITE_UPDATE) {
        w->tr->cs_updated++;
        s->r->cs_updated++;
    } else {
        w->tr->cs_deleted++;
        s->r->cs_deleted++;
    }
    if (strcmp(w->name, "blobs") == 0 && r->op == SQLITE_INSERT)
        s->r->analysis.blobs++;
    int error = w->fn ? w->fn(s, r, &w->c) : 0;
    return error ? pb_error_set(err, error, "report: out of memory") : 0;
}

/* One walk over the changeset; `pre` = only collect inserted marker tags. */
static int walk(pb_plex_scan *s, const char *schema, const char *path, int pre, pb_error *err)
{
    int error = 0, rc;
    FILE *f = NULL;
    sqlite3_changeset_iter *it = NULL;
    walk_table w;
    uint64_t nrec = 0;

    memset(&w, 0, sizeof(w));
    memset(&w.c, -1, sizeof(w.c));
    w.ncol = -1;
    if (!(f = fopen(path, "rb"))) {
        if (errno == ENOENT)
            return pb_error_set(err, PB_ENOTFOUND, "changeset %s: no such file", path);
        return pb_error_errno(err, "changeset %s", path);
    }
    if ((rc = sqlite3changeset_start_strm(&it, read_file, f)) != SQLITE_OK) {
        error = pb_error_setd(err, PB_ECORRUPT, rc, "changeset %s: unreadable (%s)", path,
                              sqlite3_errstr(rc));
        goto done;
    }
    while (!error && (rc = sqlite3changeset_next(it)) == SQLITE_ROW) {
        const char *tab;
        int ncol, op, indirect;
        if ((rc = sqlite3changeset_op(it, &tab, &ncol, &op, &indirect)) != SQLITE_OK)
            break;
        nrec++;
        if ((strcmp(tab, w.name) != 0 || ncol != w.ncol) &&
            (error = enter_table(s, &w, schema, tab, ncol, pre, path, err)) < 0)
            goto done;
        rec r = {it, op, ncol};
        error = pre ? pre_record(s, &w, &r, schema, err) : scan_record(s, &w, &r, err);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW && !error)
        error = pb_error_setd(err, PB_ECORRUPT, rc,
                              "changeset %s: corrupt or truncated after %llu records (%s)", path,
                              (unsigned long long)nrec, sqlite3_errstr(rc));
done:
    if (it) {
        rc = sqlite3changeset_finalize(it);
        if (!error && rc != SQLITE_OK)
            error = pb_error_setd(err, PB_ECORRUPT, rc, "changeset %s: corrupt (%s)", path,
                                  sqlite3_errstr(rc));
    }
    if (f)
        fclose(f);
    return error;
}

int pb_plex_scan_changeset(pb_plex_scan *s, const char *schema, const char *path, pb_error *err)
{
    int error;
    if (!s || !schema || !path)
        return pb_error_set(err, PB_EINVALID, "report: no changeset");
    if (strcmp(schema, "main") == 0 && (error = walk(s, schema, path, 1, err)) != 0)
        return error;
    return walk(s, schema, path, 0, err);
}
