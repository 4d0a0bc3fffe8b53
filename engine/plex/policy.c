/*
 * policy.c: the Plex merge policy, read from the live schema (see policy.h).
 * Role: tells the generic 3-way merge of sqldiff/ which Plex tables are scanner/analysis output
 * (merged column by column), which are home user state (home wins) and which are derived (never
 * shipped); which columns reference which ids (renumbering of colliding inserts); which inserts
 * are the same thing as a live row (natural keys), which are items both sides added (same-row
 * keys: one media file, one item); and maps cloud paths to home paths.
 * Prerequisites: a connection with the DBs attached under the schema names the merge uses.
 *
 * Class table, by name; anything else falls back to user state (home wins, the safe
 * default: plexburst never overwrites home data whose meaning it does not know, and the report
 * lists such tables):
 *   library  metadata_items, media_items, media_parts, media_streams, tags, taggings,
 *            directories, section_locations, library_sections, metadata_relations, blobs,
 *            locatables, location_places, metadata_item_clusters, metadata_item_clusterings,
 *            media_provider_resources, metadata_agent_provider*, external_metadata_*,
 *            stream_types, media_metadata_mappings, versioned_metadata_items,
 *            library_timeline_entries
 *   user     metadata_item_settings, metadata_item_views, metadata_item_setting_markers,
 *            metadata_item_accounts, *_settings, play_queue*, download_queue*, statistics_*,
 *            accounts, devices, preferences, activities, library_section_permissions,
 *            remote_id_translation, hub_templates, plugins, plugin_prefixes, plugin_permissions,
 *            custom_channels, media_subscriptions, media_grabs,
 *            metadata_subscription_desired_items, schema_migrations
 *   derived  sqlite_*, every virtual table (FTS, spellfix1, the photo rtree `locations`) and its
 *            shadow tables, fts*_*, spellfix_*, *_vocab
 * Columns follow the 3-way rule; an `extra_data` column both sides changed is merged per JSON key
 * (extradata.c: the cloud's analysis keys join the home's edits, `url` recomputed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extradata.h"
#include "plexburst/compat.h"
#include "policy.h"

/* ---------------------------------------------------------------------------------------------
 * Classes by name
 */

static const char *const library_names[] = {
    "metadata_items",
    "media_items",
    "media_parts",
    "media_streams",
    "tags",
    "taggings",
    "directories",
    "section_locations",
    "library_sections",
    "metadata_relations",
    "blobs",
    "locatables",
    "location_places",
    "metadata_item_clusters",
    "metadata_item_clusterings",
    "media_provider_resources",
    "stream_types",
    "media_metadata_mappings",
    "versioned_metadata_items",
    "library_timeline_entries",
    NULL,
};

static const char *const user_names[] = {
    "metadata_item_settings",
    "metadata_item_views",
    "metadata_item_setting_markers",
    "metadata_item_accounts",
    "accounts",
    "devices",
    "preferences",
    "activities",
    "library_section_permissions",
    "remote_id_translation",
    "hub_templates",
    "plugins",
    "plugin_prefixes",
    "plugin_permissions",
    "custom_channels",
    "media_subscriptions",
    "media_grabs",
    "metadata_subscription_desired_items",
    "schema_migrations",
    NULL,
};

static int in_list(const char *const *list, const char *s)
{
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int pb_plex_class_by_name(const char *t, int *known)
{
    if (known)
        *known = 1;
    if (!t)
        goto unknown;
    if (starts(t, "sqlite_") || starts(t, "fts3_") || starts(t, "fts4_") || starts(t, "fts5_") ||
        starts(t, "spellfix_") || ends(t, "_vocab"))
        return PB_CLASS_DERIVED;
    if (in_list(library_names, t) || starts(t, "metadata_agent_provider") ||
        starts(t, "external_metadata_"))
        return PB_CLASS_LIBRARY;
    if (in_list(user_names, t) || ends(t, "_settings") || starts(t, "play_queue") ||
        starts(t, "download_queue") || starts(t, "statistics_"))
        return PB_CLASS_USER;
unknown:
    if (known)
        *known = 0;
    return PB_CLASS_USER;
}

/* ---------------------------------------------------------------------------------------------
 * The policy
 */

typedef struct pp_table {
    const char *schema, *name; /* pooled */
    int cls;
    int known;
    int ipk; /* an INTEGER PRIMARY KEY (rowid alias) */
    const char **cols;
    unsigned char *notnull; /* per column: declared NOT NULL (or the integer PK) */
    size_t ncols;
} pp_table;

struct pb_plex_policy {
    pb_merge_policy mp;
    const pb_pathmap *pm;
    pp_table *t;
    size_t nt, ct;
    pb_merge_ref *refs;
    size_t nrefs, crefs;
    pb_merge_natkey *nk;
    size_t nnk, cnk;
    pb_merge_natkey *sk; /* same-row keys */
    size_t nsk, csk;
    pb_merge_ref *srefs; /* refs a same-row identity follows */
    size_t nsrefs, csrefs;
    const char **unknown;
    size_t nunknown, cunknown;
    char **pool; /* every string above */
    size_t npool, cpool;
};

#define GROW(arr, n, cap)                                                                          \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            size_t ncap_ = (cap) ? (cap)*2 : 16;                                                   \
            void *np_ = realloc((arr), ncap_ * sizeof(*(arr)));                                    \
            if (!np_)                                                                              \
                return PB_ENOMEM;                                                                  \
            (arr) = np_;                                                                           \
            (cap) = ncap_;                                                                         \
        }                                                                                          \
    } while (0)

static int pool_add(pb_plex_policy *p, char *s)
{
    if (!s)
        return PB_ENOMEM;
    if (p->npool == p->cpool) {
        size_t ncap = p->cpool ? p->cpool * 2 : 64;
        char **np = realloc(p->pool, ncap * sizeof(*np));
        if (!np) {
            free(s);
            return PB_ENOMEM;
        }
        p->pool = np;
        p->cpool = ncap;
    }
    p->pool[p->npool++] = s;
    return 0;
}

static const char *pool_str(pb_plex_policy *p, const char *s)
{
    char *d = strdup(s);
    return pool_add(p, d) == 0 ? d : NULL;
}

void pb_plex_policy_free(pb_plex_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->npool; i++)
        free(p->pool[i]);
    for (size_t i = 0; i < p->nt; i++) {
        free(p->t[i].cols);
        free(p->t[i].notnull);
    }
    free(p->pool);
    free(p->t);
    free(p->refs);
    free(p->nk);
    free(p->sk);
    free(p->srefs);
    free(p->unknown);
    free(p);
}

static const pp_table *find_table(const pb_plex_policy *p, const char *schema, const char *name)
{
    for (size_t i = 0; i < p->nt; i++)
        if (strcmp(p->t[i].name, name) == 0 && (!schema || strcmp(p->t[i].schema, schema) == 0))
            return &p->t[i];
    return NULL;
}

static int has_col(const pp_table *t, const char *c)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i], c) == 0)
            return 1;
    return 0;
}

static int col_notnull(const pp_table *t, const char *c)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->cols[i], c) == 0)
            return t->notnull && t->notnull[i];
    return 0;
}

int pb_plex_policy_class(const pb_plex_policy *p, const char *schema, const char *table)
{
    const pp_table *t = p ? find_table(p, schema, table) : NULL;
    if (t)
        return t->cls;
    return pb_plex_class_by_name(table, NULL);
}

int pb_plex_policy_include(const pb_plex_policy *p, const char *schema, const char *table)
{
    return pb_plex_policy_class(p, schema, table) != PB_CLASS_DERIVED;
}

typedef struct include_ctx {
    const pb_plex_policy *pol;
    const char *schema;
} include_ctx;

static int include_table(const char *table, void *payload)
{
    const include_ctx *c = payload;
    return pb_plex_policy_include(c->pol, c->schema, table);
}

int pb_plex_policy_diff_file(const pb_plex_policy *p, const char *schema, const char *base,
                             const char *cloud, const char *raw, const char *what,
                             pb_diff_stats *ds, pb_error *err)
{
    int error = 0;
    FILE *f = NULL;
    include_ctx ic = {p, schema};
    pb_diff_options dopts = PB_DIFF_OPTIONS_INIT;
    pb_diff_stats mine;

    dopts.include = include_table;
    dopts.include_payload = &ic;
    dopts.open = pb_compat_open_reader;
    if (!(f = fopen(raw, "wb")))
        return pb_error_errno(err, "%s: cannot write %s", what, raw);
    error = pb_sqldiff_diff(ds ? ds : &mine, base, cloud, &dopts, pb_sqldiff_write_file, f, err);
    if (fclose(f) != 0 && !error)
        error = pb_error_errno(err, "%s: cannot write %s", what, raw);
    return error;
}

int pb_plex_policy_column(const pb_plex_policy *p, const char *schema, const char *table,
                          const char *column)
{
    const pp_table *t = p ? find_table(p, schema, table) : NULL;
    for (size_t i = 0; t && i < t->ncols; i++)
        if (strcmp(t->cols[i], column) == 0)
            return (int)i;
    return -1;
}

int pb_plex_policy_ncolumns(const pb_plex_policy *p, const char *schema, const char *table)
{
    const pp_table *t = p ? find_table(p, schema, table) : NULL;
    return t ? (int)t->ncols : -1;
}

const char *pb_plex_policy_unknown(const pb_plex_policy *p, size_t i)
{
    return p && i < p->nunknown ? p->unknown[i] : NULL;
}

const pb_merge_policy *pb_plex_policy_merge(const pb_plex_policy *p)
{
    return p ? &p->mp : NULL;
}

/* merge.h callbacks */
static int cb_class(const char *schema, const char *table, void *payload)
{
    return pb_plex_policy_class(payload, schema, table);
}

static int cb_column_rule(const char *schema, const char *table, const char *column, void *payload)
{
    (void)schema, (void)table, (void)column, (void)payload;
    /* Every column follows the 3-way rule, bookkeeping timestamps included (docs/cli.md). */
    return PB_COL_DEFAULT;
}

/* Both sides changed a column: `extra_data` (any library table) is merged per JSON key
 * (extradata.c); anything else, or values that are not JSON objects, take the default rule. */
static int cb_merge_column(const char *schema, const char *table, const char *column,
                           sqlite3_value *base, sqlite3_value *cloud, sqlite3_value *live,
                           char **out, size_t *out_n, void *payload)
{
    (void)schema, (void)table, (void)payload;
    if (strcmp(column, "extra_data") != 0 || sqlite3_value_type(cloud) != SQLITE_TEXT ||
        sqlite3_value_type(live) != SQLITE_TEXT)
        return 0;
    int bt = sqlite3_value_type(base);
    if (bt != SQLITE_TEXT && bt != SQLITE_NULL)
        return 0;
    const char *b = bt == SQLITE_TEXT ? (const char *)sqlite3_value_text(base) : NULL;
    size_t nb = b ? (size_t)sqlite3_value_bytes(base) : 0;
    const char *c = (const char *)sqlite3_value_text(cloud);
    size_t nc = (size_t)sqlite3_value_bytes(cloud);
    const char *l = (const char *)sqlite3_value_text(live);
    size_t nl = (size_t)sqlite3_value_bytes(live);
    if (!c || !l)
        return PB_ENOMEM;
    return pb_extra_data_merge(b, nb, c, nc, l, nl, out, out_n);
}

static int cb_map_text(const char *schema, const char *table, const char *column, const char *in,
                       size_t n, char **out, size_t *out_n, void *payload)
{
    const pb_plex_policy *p = payload;
    (void)schema;
    int kind = pb_pathmap_kind(table, column);
    if (kind == PB_PATH_NONE || !p->pm)
        return 0;
    return pb_pathmap_map(p->pm, kind, in, n, out, out_n);
}

/* ---------------------------------------------------------------------------------------------
 * Reading the schema
 */

/* Shadow-table suffixes of the virtual-table modules Plex uses (and FTS5 for newer builds). */
static const char *const shadow_suffixes[] = {
    "_content", "_segments", "_segdir", "_docsize", "_stat",  "_data", "_idx",
    "_config",  "_node",     "_rowid",  "_parent",  "_vocab", NULL};

static int sql_err(pb_error *err, sqlite3 *db, const char *what)
{
    return pb_error_setd(err, PB_ESQLITE, sqlite3_extended_errcode(db), "plex policy: %s: %s", what,
                         sqlite3_errmsg(db));
}

/* Quotes an identifier for SQL ("a""b"). */
static char *quote_ident(const char *s)
{
    return sqlite3_mprintf("\"%w\"", s);
}

/* Prepares `PRAGMA "schema".pragma("arg")` into *st. */
static int pragma_prepare(sqlite3 *db, const char *schema, const char *pragma, const char *arg,
                          sqlite3_stmt **st, pb_error *err)
{
    char *sql = sqlite3_mprintf("PRAGMA \"%w\".%s(\"%w\")", schema, pragma, arg);
    if (!sql)
        return pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    sqlite3_free(sql);
    return rc == SQLITE_OK ? 0 : sql_err(err, db, arg);
}

static int load_columns(pb_plex_policy *p, sqlite3 *db, pp_table *t, pb_error *err)
{
    int error = 0, npk = 0, pk_integer = 0;
    sqlite3_stmt *st = NULL;
    size_t cap = 0;

    if ((error = pragma_prepare(db, t->schema, "table_info", t->name, &st, err)) != 0)
        goto done;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *type = (const char *)sqlite3_column_text(st, 2);
        int pk = sqlite3_column_int(st, 5);
        if (t->ncols == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            const char **nc = realloc(t->cols, ncap * sizeof(*nc));
            if (nc)
                t->cols = nc;
            unsigned char *nn = nc ? realloc(t->notnull, ncap) : NULL;
            if (!nn) {
                error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
                goto done;
            }
            t->notnull = nn;
            cap = ncap;
        }
        t->notnull[t->ncols] = sqlite3_column_int(st, 3) || pk;
        if (!(t->cols[t->ncols] = pool_str(p, name ? name : ""))) {
            error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
            goto done;
        }
        t->ncols++;
        if (pk) {
            npk++;
            pk_integer = type && sqlite3_stricmp(type, "INTEGER") == 0;
        }
    }
    if (rc != SQLITE_DONE) {
        error = sql_err(err, db, t->name);
        goto done;
    }
    t->ipk = npk == 1 && pk_integer;
done:
    sqlite3_finalize(st);
    return error;
}

static int add_table(pb_plex_policy *p, const char *schema, const char *name, int virt)
{
    GROW(p->t, p->nt, p->ct);
    pp_table *t = &p->t[p->nt];
    memset(t, 0, sizeof(*t));
    t->schema = pool_str(p, schema);
    t->name = pool_str(p, name);
    if (!t->schema || !t->name)
        return PB_ENOMEM;
    t->cls = virt ? PB_CLASS_DERIVED : pb_plex_class_by_name(name, &t->known);
    if (virt)
        t->known = 1;
    p->nt++;
    return 0;
}

/* Marks the shadow tables of virtual table `vt` in `schema` as derived. */
static void mark_shadows(pb_plex_policy *p, const char *schema, const char *vt)
{
    size_t n = strlen(vt);
    for (size_t i = 0; i < p->nt; i++) {
        pp_table *t = &p->t[i];
        if (strcmp(t->schema, schema) != 0 || strncmp(t->name, vt, n) != 0)
            continue;
        for (const char *const *s = shadow_suffixes; *s; s++)
            if (strcmp(t->name + n, *s) == 0) {
                t->cls = PB_CLASS_DERIVED;
                t->known = 1;
            }
    }
}

static int load_schema(pb_plex_policy *p, sqlite3 *db, const char *schema, pb_error *err)
{
    int error = 0, rc;
    char *qs = quote_ident(schema);
    char *sql = qs ? sqlite3_mprintf("SELECT name, sql LIKE 'CREATE VIRTUAL TABLE%%' FROM "
                                     "%s.sqlite_master WHERE type = 'table' ORDER BY name",
                                     qs)
                   : NULL;
    sqlite3_stmt *st = NULL;
    size_t first = p->nt;

    if (!sql) {
        error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
        goto done;
    }
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        error = sql_err(err, db, schema);
        goto done;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!name)
            continue;
        if (add_table(p, schema, name, sqlite3_column_int(st, 1)) != 0) {
            error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
            goto done;
        }
    }
    if (rc != SQLITE_DONE) {
        error = sql_err(err, db, schema);
        goto done;
    }
    for (size_t i = first; i < p->nt; i++)
        if (p->t[i].cls == PB_CLASS_DERIVED && strncmp(p->t[i].name, "sqlite_", 7) != 0)
            mark_shadows(p, schema, p->t[i].name);
    for (size_t i = first; i < p->nt; i++) {
        if ((error = load_columns(p, db, &p->t[i], err)) != 0)
            goto done;
        if (!p->t[i].known) {
            int seen = 0;
            for (size_t j = 0; j < p->nunknown; j++)
                seen |= strcmp(p->unknown[j], p->t[i].name) == 0;
            if (!seen) {
                if (p->nunknown == p->cunknown) {
                    size_t ncap = p->cunknown ? p->cunknown * 2 : 8;
                    const char **nu = realloc(p->unknown, ncap * sizeof(*nu));
                    if (!nu) {
                        error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
                        goto done;
                    }
                    p->unknown = nu;
                    p->cunknown = ncap;
                }
                p->unknown[p->nunknown++] = p->t[i].name;
            }
        }
    }
done:
    sqlite3_finalize(st);
    sqlite3_free(sql);
    sqlite3_free(qs);
    return error;
}

/* ---------------------------------------------------------------------------------------------
 * References
 */

/* Columns whose target is not derivable from their name. NULL target = the table itself. */
static const struct {
    const char *column, *target;
} ref_aliases[] = {
    {"parent_id", NULL},
    {"parent_directory_id", "directories"},
    {"related_metadata_item_id", "metadata_items"},
    {"playlist_id", "metadata_items"},
    {"target_metadata_item_id", "metadata_items"},
    {"target_library_section_id", "library_sections"},
    {"target_section_location_id", "section_locations"},
    {"target_tag_id", "tags"},
    {"selected_audio_stream_id", "media_streams"},
    {"selected_subtitle_stream_id", "media_streams"},
    {"selected_media_id", "media_items"},
    {"version_media_id", "media_items"},
    {"queue_id", "download_queues"},
};

/* Columns that look like references but are not plain ones: plex.tv account ids, the
 * polymorphic locatables.locatable_id (target type unverified), blobs.linked_id (conditional,
 * below), remote_id_translation.local_id. */
static const char *const ref_ignored[] = {"account_id", "linked_id", "local_id", "locatable_id",
                                          NULL};

static int add_ref(pb_plex_policy *p, const char *schema, const char *table, const char *column,
                   const char *tschema, const char *ttable, const char *when_col,
                   const char *when_val)
{
    GROW(p->refs, p->nrefs, p->crefs);
    pb_merge_ref *r = &p->refs[p->nrefs];
    memset(r, 0, sizeof(*r));
    r->schema = schema;
    r->table = table;
    r->column = column;
    r->target_schema = tschema;
    r->target_table = ttable;
    r->when_column = when_col;
    r->when_value = when_val;
    p->nrefs++;
    return 0;
}

const char *pb_plex_ref_alias(const char *table, const char *column)
{
    for (size_t i = 0; i < sizeof(ref_aliases) / sizeof(ref_aliases[0]); i++)
        if (strcmp(ref_aliases[i].column, column) == 0)
            return ref_aliases[i].target ? ref_aliases[i].target : table;
    return NULL;
}

/* The library table with an integer PK that `column` of `t` references, or NULL. */
static const pp_table *ref_target(const pb_plex_policy *p, const pp_table *t, const char *column)
{
    char stem[160], cand[200];
    size_t n = strlen(column);

    if (in_list(ref_ignored, column))
        return NULL;
    const char *alias = pb_plex_ref_alias(t->name, column);
    if (alias) {
        const pp_table *tt = find_table(p, t->schema, alias);
        return tt && tt->cls == PB_CLASS_LIBRARY && tt->ipk ? tt : NULL;
    }
    if (n <= 3 || n >= sizeof(stem) || strcmp(column + n - 3, "_id") != 0)
        return NULL;
    memcpy(stem, column, n - 3);
    stem[n - 3] = '\0';
    for (int f = 0; f < 3; f++) {
        if (f == 0)
            snprintf(cand, sizeof(cand), "%ss", stem);
        else if (f == 1)
            snprintf(cand, sizeof(cand), "%ses", stem);
        else if (n - 3 > 1 && stem[n - 4] == 'y')
            snprintf(cand, sizeof(cand), "%.*sies", (int)(n - 4), stem);
        else
            continue;
        const pp_table *tt = find_table(p, t->schema, cand);
        if (tt)
            return tt->cls == PB_CLASS_LIBRARY && tt->ipk ? tt : NULL;
    }
    return NULL;
}

static int build_refs(pb_plex_policy *p)
{
    const pp_table *main_parts = find_table(p, "main", "media_parts");
    const pp_table *main_streams = find_table(p, "main", "media_streams");

    for (size_t i = 0; i < p->nt; i++) {
        const pp_table *t = &p->t[i];
        if (t->cls != PB_CLASS_LIBRARY)
            continue;
        for (size_t c = 0; c < t->ncols; c++) {
            const pp_table *tt = ref_target(p, t, t->cols[c]);
            if (tt &&
                add_ref(p, t->schema, t->name, t->cols[c], tt->schema, tt->name, NULL, NULL) != 0)
                return PB_ENOMEM;
        }
        /* blobs.linked_id -> main.media_parts / main.media_streams by linked_type */
        if (strcmp(t->name, "blobs") == 0 && has_col(t, "linked_id") && has_col(t, "linked_type")) {
            if (main_parts && main_parts->ipk &&
                add_ref(p, t->schema, t->name, "linked_id", "main", "media_parts", "linked_type",
                        "media_part") != 0)
                return PB_ENOMEM;
            if (main_streams && main_streams->ipk &&
                add_ref(p, t->schema, t->name, "linked_id", "main", "media_streams", "linked_type",
                        "media_stream") != 0)
                return PB_ENOMEM;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Natural keys
 */

static const struct {
    const char *table;
    const char *columns[4];
} natkey_fixed[] = {
    {"tags", {"tag_type", "tag", "key", NULL}},
    {"library_sections", {"uuid", NULL}},
    {"metadata_agent_providers", {"identifier", NULL}},
    {"blobs", {"linked_type", "linked_id", "blob_type", NULL}},
};

static int same_natkey(const pb_merge_natkey *a, const char *schema, const char *table,
                       const char *const *cols, size_t ncols)
{
    if (strcmp(a->schema, schema) != 0 || strcmp(a->table, table) != 0)
        return 0;
    for (size_t i = 0; i < ncols; i++)
        if (!a->columns[i] || strcmp(a->columns[i], cols[i]) != 0)
            return 0;
    return a->columns[ncols] == NULL;
}

static int add_natkey(pb_plex_policy *p, const pp_table *t, const char *const *cols, size_t ncols)
{
    if (ncols == 0 || ncols > 7)
        return 0;
    for (size_t i = 0; i < ncols; i++)
        if (!has_col(t, cols[i]))
            return 0;
    for (size_t i = 0; i < p->nnk; i++)
        if (same_natkey(&p->nk[i], t->schema, t->name, cols, ncols))
            return 0;
    GROW(p->nk, p->nnk, p->cnk);
    pb_merge_natkey *k = &p->nk[p->nnk];
    memset(k, 0, sizeof(*k));
    k->schema = t->schema;
    k->table = t->name;
    for (size_t i = 0; i < ncols; i++) {
        const char *c = NULL;
        for (size_t j = 0; j < t->ncols && !c; j++)
            if (strcmp(t->cols[j], cols[i]) == 0)
                c = t->cols[j];
        k->columns[i] = c;
    }
    p->nnk++;
    return 0;
}

/* Every UNIQUE index of a library table (not the PK, no expressions, no partial index). */
static int unique_natkeys(pb_plex_policy *p, sqlite3 *db, const pp_table *t, pb_error *err)
{
    int error = 0, rc;
    sqlite3_stmt *st = NULL, *ci = NULL;

    if ((error = pragma_prepare(db, t->schema, "index_list", t->name, &st, err)) != 0)
        goto done;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *iname = (const char *)sqlite3_column_text(st, 1);
        const char *origin = (const char *)sqlite3_column_text(st, 3);
        if (!iname || !sqlite3_column_int(st, 2) || sqlite3_column_int(st, 4) ||
            (origin && strcmp(origin, "pk") == 0))
            continue;
        if ((error = pragma_prepare(db, t->schema, "index_info", iname, &ci, err)) != 0)
            goto done;
        const char *cols[8];
        size_t ncols = 0;
        int ok = 1;
        char names[8][128];
        while (sqlite3_step(ci) == SQLITE_ROW) {
            const char *c = (const char *)sqlite3_column_text(ci, 2);
            if (!c || ncols >= 7) {
                ok = 0; /* an expression, or too wide */
                break;
            }
            snprintf(names[ncols], sizeof(names[ncols]), "%s", c);
            cols[ncols] = names[ncols];
            ncols++;
        }
        sqlite3_finalize(ci);
        ci = NULL;
        /* natural keys match with `IS` (NULL = NULL) while a UNIQUE index lets NULLs repeat: a
         * nullable column could map an insert onto an unrelated row, so such indexes are left out
         * (a real duplicate then fails the merge loudly instead of merging silently wrong) */
        for (size_t k = 0; ok && k < ncols; k++)
            ok = col_notnull(t, cols[k]);
        if (ok && add_natkey(p, t, cols, ncols) != 0) {
            error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
            goto done;
        }
    }
    if (rc != SQLITE_DONE)
        error = sql_err(err, db, t->name);
done:
    sqlite3_finalize(ci);
    sqlite3_finalize(st);
    return error;
}

static int build_natkeys(pb_plex_policy *p, sqlite3 *db, pb_error *err)
{
    for (size_t i = 0; i < p->nt; i++) {
        const pp_table *t = &p->t[i];
        if (t->cls != PB_CLASS_LIBRARY)
            continue;
        for (size_t k = 0; k < sizeof(natkey_fixed) / sizeof(natkey_fixed[0]); k++) {
            if (strcmp(natkey_fixed[k].table, t->name) != 0)
                continue;
            size_t n = 0;
            while (n < 4 && natkey_fixed[k].columns[n])
                n++;
            if (add_natkey(p, t, natkey_fixed[k].columns, n) != 0)
                return pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
        }
        int error = unique_natkeys(p, db, t, err);
        if (error)
            return error;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Items both sides added
 *
 * While the cloud runs, the home's Plex may scan a new file the cloud scans too: both insert an
 * item, its media and part (and streams). A media_parts.file present on both sides (the cloud's
 * path mapped to the home's) is the same media: the cloud's part is written into the home's part,
 * and the identity follows the part's media item, that media's metadata item and the item's
 * parents (season, show / album, artist) when the cloud inserted them too; a cloud stream of such
 * a part with the same type and index as a home stream of it is that stream. Everything else the
 * cloud inserted below them (more streams, taggings, blobs) is re-pointed at the home's rows.
 */

static const struct {
    const char *table;
    const char *columns[4];
} same_fixed[] = {
    {"media_parts", {"file", NULL}},
    {"media_streams", {"media_part_id", "stream_type_id", "index", NULL}},
};

static const struct {
    const char *table, *column, *target;
} same_ref_fixed[] = {
    {"media_parts", "media_item_id", "media_items"},
    {"media_items", "metadata_item_id", "metadata_items"},
    {"metadata_items", "parent_id", "metadata_items"},
};

static int build_same(pb_plex_policy *p)
{
    for (size_t i = 0; i < p->nt; i++) {
        const pp_table *t = &p->t[i];
        if (t->cls != PB_CLASS_LIBRARY || strcmp(t->schema, "main") != 0 || !t->ipk)
            continue;
        for (size_t k = 0; k < sizeof(same_fixed) / sizeof(same_fixed[0]); k++) {
            if (strcmp(same_fixed[k].table, t->name) != 0)
                continue;
            int ok = 1;
            size_t n = 0;
            for (; n < 4 && same_fixed[k].columns[n]; n++)
                ok &= has_col(t, same_fixed[k].columns[n]);
            if (!ok)
                continue;
            GROW(p->sk, p->nsk, p->csk);
            pb_merge_natkey *key = &p->sk[p->nsk++];
            memset(key, 0, sizeof(*key));
            key->schema = t->schema;
            key->table = t->name;
            for (size_t c = 0; c < n; c++)
                key->columns[c] = same_fixed[k].columns[c];
        }
        for (size_t k = 0; k < sizeof(same_ref_fixed) / sizeof(same_ref_fixed[0]); k++) {
            const pp_table *tt = find_table(p, "main", same_ref_fixed[k].target);
            if (strcmp(same_ref_fixed[k].table, t->name) != 0 ||
                !has_col(t, same_ref_fixed[k].column) || !tt || !tt->ipk ||
                tt->cls != PB_CLASS_LIBRARY)
                continue;
            GROW(p->srefs, p->nsrefs, p->csrefs);
            pb_merge_ref *r = &p->srefs[p->nsrefs++];
            memset(r, 0, sizeof(*r));
            r->schema = t->schema;
            r->table = t->name;
            r->column = same_ref_fixed[k].column;
            r->target_schema = tt->schema;
            r->target_table = tt->name;
        }
    }
    return 0;
}

int pb_plex_policy_new(pb_plex_policy **out, sqlite3 *db, const char *const *schemas,
                       size_t nschemas, const pb_pathmap *pm, pb_error *err)
{
    int error = 0;
    pb_plex_policy *p = NULL;

    if (!out || !db || !schemas || nschemas == 0)
        return pb_error_set(err, PB_EINVALID, "plex policy: no database");
    *out = NULL;
    if (!(p = calloc(1, sizeof(*p))))
        return pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
    p->pm = pm;
    for (size_t i = 0; i < nschemas; i++)
        if ((error = load_schema(p, db, schemas[i], err)) != 0)
            goto done;
    if (build_refs(p) != 0) {
        error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
        goto done;
    }
    if ((error = build_natkeys(p, db, err)) != 0)
        goto done;
    if (build_same(p) != 0) {
        error = pb_error_set(err, PB_ENOMEM, "plex policy: out of memory");
        goto done;
    }
    p->mp.version = PB_MERGE_POLICY_VERSION;
    p->mp.table_class = cb_class;
    p->mp.column_rule = cb_column_rule;
    p->mp.map_text = pm && pb_pathmap_count(pm) ? cb_map_text : NULL;
    p->mp.refs = p->refs;
    p->mp.nrefs = p->nrefs;
    p->mp.natkeys = p->nk;
    p->mp.nnatkeys = p->nnk;
    p->mp.payload = p;
    p->mp.merge_column = cb_merge_column;
    p->mp.same_keys = p->sk;
    p->mp.nsame_keys = p->nsk;
    p->mp.same_refs = p->srefs;
    p->mp.nsame_refs = p->nsrefs;
    *out = p;
    p = NULL;
done:
    pb_plex_policy_free(p);
    return error;
}
