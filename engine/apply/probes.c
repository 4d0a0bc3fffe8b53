/*
 * probes.c: the commit probes of an online merge (engine/apply/probes.h). Online, Plex holds the
 * DBs in WAL, so no super-journal makes main, blobs and the commit marker atomic; a preupdate hook
 * keeps up to 8 rows per DB (their hashes before and after the merge) and the commit hook writes
 * them durably to <state dir>/apply.probes before SQLite commits. Recovery without a marker reads
 * them back (pb_probes__decide): journal.c explains the whole scheme.
 * Role: apply_merge.c installs the hooks, recover.c decides with them.
 * Prerequisites: SQLite built with SQLITE_ENABLE_PREUPDATE_HOOK, libxxhash.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fs.h"
#include "hex.h"
#include "journal.h"
#include "plexburst/compat.h"
#include "probes.h"

/* 32 hex digits at the start of a line (ending there or at its newline). */
static int hex16_line(uint8_t out[16], const char *s)
{
    char h[33];
    size_t n = strcspn(s, "\n");
    if (n != 32)
        return -1;
    memcpy(h, s, 32);
    h[32] = '\0';
    return pb_hex_decode(out, 16, h);
}

#define MAX_PROBES    16
#define PROBES_PER_DB 8

typedef struct probe {
    char schema[8];
    char *table;
    int64_t rowid;
    int pre_present, post_present;
    uint8_t pre[16], post[16];
    int valid;
} probe;

struct pb_probes {
    probe p[MAX_PROBES];
    int n, per_db[2];
    char path[PATH_MAX + 32];
    int failed;
};

static void hash_begin(XXH3_state_t *st, int ncol)
{
    uint8_t b[4] = {(uint8_t)ncol, (uint8_t)(ncol >> 8), (uint8_t)(ncol >> 16),
                    (uint8_t)(ncol >> 24)};
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, b, 4);
}

static void hash_value(XXH3_state_t *st, int type, int64_t iv, double dv, const void *data, int n)
{
    uint8_t t = (uint8_t)type, b[8];
    XXH3_128bits_update(st, &t, 1);
    if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
        uint64_t u;
        if (type == SQLITE_INTEGER)
            u = (uint64_t)iv;
        else
            memcpy(&u, &dv, 8);
        for (int i = 0; i < 8; i++)
            b[i] = (uint8_t)(u >> (8 * i));
        XXH3_128bits_update(st, b, 8);
    } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
        uint32_t len = (uint32_t)n;
        for (int i = 0; i < 4; i++)
            b[i] = (uint8_t)(len >> (8 * i));
        XXH3_128bits_update(st, b, 4);
        if (n)
            XXH3_128bits_update(st, data, (size_t)n);
    }
}

static void hash_sqlvalue(XXH3_state_t *st, sqlite3_value *v)
{
    int t = sqlite3_value_type(v);
    const void *d = NULL;
    if (t == SQLITE_TEXT)
        d = sqlite3_value_text(v);
    else if (t == SQLITE_BLOB)
        d = sqlite3_value_blob(v);
    hash_value(st, t, t == SQLITE_INTEGER ? sqlite3_value_int64(v) : 0,
               t == SQLITE_FLOAT ? sqlite3_value_double(v) : 0, d,
               t == SQLITE_TEXT || t == SQLITE_BLOB ? sqlite3_value_bytes(v) : 0);
}

static void preupdate_row(sqlite3 *db, int old, uint8_t out[16])
{
    XXH3_state_t *st = XXH3_createState();
    int n = sqlite3_preupdate_count(db);
    if (!st) {
        memset(out, 0, 16);
        return;
    }
    hash_begin(st, n);
    for (int i = 0; i < n; i++) {
        sqlite3_value *v = NULL;
        if ((old ? sqlite3_preupdate_old(db, i, &v) : sqlite3_preupdate_new(db, i, &v)) !=
                SQLITE_OK ||
            !v) {
            hash_value(st, 0, 0, 0, NULL, 0);
            continue;
        }
        hash_sqlvalue(st, v);
    }
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    memcpy(out, c.digest, 16);
    XXH3_freeState(st);
}

static void on_preupdate(void *payload, sqlite3 *db, int op, const char *schema, const char *table,
                         sqlite3_int64 k1, sqlite3_int64 k2)
{
    pb_probes *p = payload;
    int si = strcmp(schema, "main") == 0 ? 0 : strcmp(schema, "blobs") == 0 ? 1 : -1;
    if (si < 0 || strncmp(table, "sqlite_", 7) == 0 || strncmp(table, "pb_", 3) == 0)
        return;
    int64_t key = op == SQLITE_INSERT ? k2 : k1;
    for (int i = 0; i < p->n; i++) {
        probe *q = &p->p[i];
        if (!q->valid || q->rowid != key || strcmp(q->schema, schema) || strcmp(q->table, table))
            continue;
        if (op == SQLITE_UPDATE && k1 != k2) {
            q->valid = 0; /* a rowid change: not a usable probe */
            return;
        }
        q->post_present = op != SQLITE_DELETE;
        if (q->post_present)
            preupdate_row(db, 0, q->post);
        return;
    }
    if (p->n >= MAX_PROBES || p->per_db[si] >= PROBES_PER_DB || (op == SQLITE_UPDATE && k1 != k2))
        return;
    probe *q = &p->p[p->n];
    memset(q, 0, sizeof(*q));
    if (!(q->table = strdup(table)))
        return;
    snprintf(q->schema, sizeof(q->schema), "%s", schema);
    q->rowid = key;
    q->valid = 1;
    q->pre_present = op != SQLITE_INSERT;
    if (q->pre_present)
        preupdate_row(db, 1, q->pre);
    q->post_present = op != SQLITE_DELETE;
    if (q->post_present)
        preupdate_row(db, 0, q->post);
    p->n++;
    p->per_db[si]++;
}

/* The commit hook: writes the probes durably before SQLite commits; non-zero = roll back. */
static int on_commit(void *payload)
{
    pb_probes *p = payload;
    char *text = NULL;
    size_t cap = 256 + (size_t)MAX_PROBES * 400, len = 0;
    char h1[33], h2[33];
    pb_error e = PB_ERROR_INIT;

    pb_journal__crash_point("commit");
    if (!(text = malloc(cap)))
        return 1;
    len += (size_t)snprintf(text + len, cap - len, "plexburst-probes 1\n");
    for (int i = 0; i < p->n; i++) {
        probe *q = &p->p[i];
        if (!q->valid || (q->pre_present == q->post_present &&
                          (!q->pre_present || memcmp(q->pre, q->post, 16) == 0)))
            continue;
        if (strlen(q->table) > 200)
            continue;
        pb_hex_encode(h1, q->pre, 16);
        pb_hex_encode(h2, q->post, 16);
        len += (size_t)snprintf(text + len, cap - len, "%s\t%s\t%lld\t%s\t%s\n", q->schema,
                                q->table, (long long)q->rowid, q->pre_present ? h1 : "-",
                                q->post_present ? h2 : "-");
    }
    {
        XXH128_canonical_t c;
        uint8_t d[16];
        XXH128_canonicalFromHash(&c, XXH3_128bits(text, len));
        memcpy(d, c.digest, 16);
        pb_hex_encode(h1, d, 16);
        len += (size_t)snprintf(text + len, cap - len, "end %s\n", h1);
    }
    int error = pb_fs_write_file(p->path, text, len, 0600, &e);
    free(text);
    if (error < 0) {
        p->failed = 1;
        return 1;
    }
    pb_journal__crash_point("probes");
    return 0;
}

int pb_probes__install(pb_probes **out, sqlite3 *db, const char *path, pb_error *err)
{
    pb_probes *p = calloc(1, sizeof(*p));
    *out = NULL;
    if (!p)
        return pb_error_set(err, PB_ENOMEM, "probes: out of memory");
    snprintf(p->path, sizeof(p->path), "%s", path);
    sqlite3_preupdate_hook(db, on_preupdate, p);
    sqlite3_commit_hook(db, on_commit, p);
    *out = p;
    return 0;
}

void pb_probes__free(pb_probes *p, sqlite3 *db)
{
    if (!p)
        return;
    if (db) {
        sqlite3_preupdate_hook(db, NULL, NULL);
        sqlite3_commit_hook(db, NULL, NULL);
    }
    for (int i = 0; i < p->n; i++)
        free(p->p[i].table);
    free(p);
}

/* One probe line: the row as it is now against its pre- and post-merge hashes; counts it as
 * committed (nc), not committed (nr) or undecided (nu). */
static void probe_line(sqlite3 *db, XXH3_state_t *hs, const char *line, int *nc, int *nr, int *nu)
{
    char schema[8], table[256], pre[40], post[40];
    long long rowid;
    if (sscanf(line, "%7[^\t]\t%255[^\t]\t%lld\t%39[^\t]\t%39s", schema, table, &rowid, pre,
               post) != 5)
        return;
    char *sql =
        sqlite3_mprintf("SELECT * FROM \"%w\".\"%w\" WHERE rowid = %lld", schema, table, rowid);
    sqlite3_stmt *q = NULL;
    int rc = sql ? sqlite3_prepare_v2(db, sql, -1, &q, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    int present = 0;
    uint8_t h[16];
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int n = sqlite3_column_count(q);
        hash_begin(hs, n);
        for (int i = 0; i < n; i++)
            hash_sqlvalue(hs, sqlite3_column_value(q, i));
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(hs));
        memcpy(h, c.digest, 16);
        present = 1;
    }
    sqlite3_finalize(q);
    uint8_t ph[16], qh[16];
    int pre_present = strcmp(pre, "-") != 0, post_present = strcmp(post, "-") != 0;
    if ((pre_present && pb_hex_decode(ph, 16, pre) < 0) ||
        (post_present && pb_hex_decode(qh, 16, post) < 0))
        return;
    int is_post = present ? post_present && memcmp(h, qh, 16) == 0 : !post_present;
    int is_pre = present ? pre_present && memcmp(h, ph, 16) == 0 : !pre_present;
    if (is_post && !is_pre)
        (*nc)++;
    else if (is_pre && !is_post)
        (*nr)++;
    else
        (*nu)++;
}

int pb_probes__decide(const char *probes_path, const char *plex_dir, int has_blobs,
                      const char *run_id, const char *journal_path, int *committed, pb_error *err)
{
    FILE *f = fopen(probes_path, "r");
    char line[600], main_db[PATH_MAX + 80], blobs_db[PATH_MAX + 80];
    int nc = 0, nr = 0, nu = 0, error = 0, ended = 0;
    sqlite3 *db = NULL;
    XXH3_state_t *st = NULL, *hs = NULL;

    *committed = 0;
    if (!f)
        return 0; /* the commit hook never wrote: nothing was committed */
    if (!(st = XXH3_createState()) || !(hs = XXH3_createState())) {
        error = pb_error_set(err, PB_ENOMEM, "probes: out of memory");
        goto done;
    }
    XXH3_128bits_reset(st);
    pb_journal__live_paths(plex_dir, main_db, blobs_db, sizeof(main_db));
    if ((error = pb_compat_open(&db, main_db, PB_OPEN_READONLY, err)) < 0)
        goto done;
    if (has_blobs) {
        char *sql = sqlite3_mprintf("ATTACH %Q AS blobs", blobs_db);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
        sqlite3_free(sql);
    }
    if (!fgets(line, sizeof(line), f) || strcmp(line, "plexburst-probes 1\n") != 0) {
        error = pb_error_set(err, PB_ECORRUPT, "probe file %s is malformed", probes_path);
        goto done;
    }
    XXH3_128bits_update(st, line, strlen(line));
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "end ", 4) == 0) {
            uint8_t want[16], d[16];
            XXH128_canonical_t c;
            XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
            memcpy(d, c.digest, 16);
            if (hex16_line(want, line + 4) == 0 && memcmp(want, d, 16) == 0)
                ended = 1;
            break;
        }
        XXH3_128bits_update(st, line, strlen(line));
        probe_line(db, hs, line, &nc, &nr, &nu);
    }
    if (!ended) {
        /* a torn probe file: the commit hook did not finish, so SQLite did not commit */
        goto done;
    }
    if (nc && !nr)
        *committed = 1;
    else if (nr && !nc)
        *committed = 0;
    else if (nc || nr || nu)
        error = pb_error_set(err, PB_ECONFLICT,
                             "cannot tell whether the interrupted online merge of run %s "
                             "committed (%d probe rows say yes, %d no, %d neither): compare the "
                             "DB with the bundle, then remove %s",
                             run_id, nc, nr, nu, journal_path);
done:
    if (db)
        sqlite3_close(db);
    XXH3_freeState(st);
    XXH3_freeState(hs);
    fclose(f);
    return error;
}
