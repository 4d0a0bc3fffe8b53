/*
 * sums.c: the per-table checksums kept beside a DB file (sums.h), and the checksum that reads
 * only the tables whose pages changed since a reference DB.
 * Role: engine/run, home side: the snapshot is summed against the home's baseline copy, the next
 * baseline copy against the snapshot, so a night reads the tables that changed, not the library.
 * Prerequisites: pb_sqldiff_checksum (its per-table shares and reuse), pb_sqldiff_same_pages.
 *
 * FORMAT of <db>.sums (version 1), text: a first line "plexburst-sums 1 <digest>\n", the DB's
 * checksum as 32 lower-case hex digits, then one line per table "<rows> <sum> <table>\n": the
 * table's row count in decimal, its sum (pb_table_checksum.sum) as 32 hex digits, its name (a
 * name holding a newline is left out: that table is read again). A file whose digest is not the
 * one expected is ignored. Trust: a share is only ever taken for a table whose pages equal the
 * reference's; a wrong share gives a wrong digest, which the cloud's rebuild check and the next
 * baseline's check catch (the run then uploads or rebuilds whole).
 *
 * THE DIFF'S SECOND FILTER (pb_sums_mark_equal): a table whose pages moved but whose row count,
 * sum and schema SQL equal the reference's holds the same rows (as the checksum sees them: a
 * multiset for rowid tables without a PRIMARY KEY, as in the diff), so the diff leaves it out.
 * This is the case of every table a night's merge wrote at home: the home's live DB and the
 * next baseline copy get the same rows through different writes, so the first idle night after
 * a real one would otherwise diff all of them. What it costs: a wrong "equal" would need an
 * XXH3-128 collision of two row multisets, the same assumption the snapshot's id and the cloud's
 * rebuild check already make (a collision there passes the check too).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>

#include "buf.h"
#include "fs.h"
#include "hex.h"
#include "pagecmp.h"
#include "plexburst/compat.h"
#include "plexburst/sqldiff.h"
#include "sums.h"

#define SUMS_MAGIC   "plexburst-sums 1 "
#define SUMS_MAX     (16u << 20)
#define SUMS_PATHCAP (PATH_MAX + 16)

void pb_sums_dispose(pb_sums *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->e[i].table);
    free(s->e);
    memset(s, 0, sizeof(*s));
}

static pb_sums_entry *find(const pb_sums *s, const char *table)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->e[i].table, table) == 0)
            return &s->e[i];
    return NULL;
}

static pb_sums_entry *add(pb_sums *s, const char *table)
{
    pb_sums_entry *e = find(s, table);
    if (e)
        return e;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        pb_sums_entry *ne = realloc(s->e, cap * sizeof(*ne));
        if (!ne)
            return NULL;
        s->e = ne;
        s->cap = cap;
    }
    e = &s->e[s->n];
    memset(e, 0, sizeof(*e));
    if (!(e->table = strdup(table)))
        return NULL;
    s->n++;
    return e;
}

int pb_sums_same(const pb_sums *s, const char *table)
{
    const pb_sums_entry *e = find(s, table);
    return e && e->same;
}

static void sums_path(char *out, const char *db)
{
    snprintf(out, SUMS_PATHCAP, "%s.sums", db);
}

void pb_sums_load(pb_sums *s, const char *db, const uint8_t digest[16])
{
    char path[SUMS_PATHCAP], hex[33], *text = NULL;
    size_t n = 0;
    pb_error e = PB_ERROR_INIT;
    pb_sums_dispose(s);
    sums_path(path, db);
    pb_hex_encode(hex, digest, 16);
    if (pb_fs_read_file(&text, &n, path, SUMS_MAX, &e) < 0)
        return;
    size_t ml = strlen(SUMS_MAGIC);
    char *p = text, *end = text + n;
    if (n < ml + 33 || memcmp(p, SUMS_MAGIC, ml) != 0 || memcmp(p + ml, hex, 32) != 0 ||
        p[ml + 32] != '\n')
        goto bad;
    for (p += ml + 33; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p)), *q;
        if (!nl)
            goto bad;
        *nl = '\0';
        uint64_t rows = strtoull(p, &q, 10);
        uint8_t sum[16];
        char shex[33];
        if (q == p || *q != ' ' || strlen(q + 1) < 34 || q[33] != ' ')
            goto bad;
        memcpy(shex, q + 1, 32);
        shex[32] = '\0';
        pb_sums_entry *en;
        if (pb_hex_decode(sum, 16, shex) != 0 || !q[34] || find(s, q + 34) ||
            !(en = add(s, q + 34)))
            goto bad;
        en->rows = rows;
        memcpy(en->sum, sum, 16);
        p = nl + 1;
    }
    free(text);
    return;
bad:
    free(text);
    pb_sums_dispose(s);
}

int pb_sums_save(const pb_sums *s, const char *db, const uint8_t digest[16], pb_error *err)
{
    char path[SUMS_PATHCAP], hex[33];
    pb_buf b;
    int error = 0;
    pb_buf_init(&b, SUMS_MAX);
    sums_path(path, db);
    pb_hex_encode(hex, digest, 16);
    error = pb_buf_printf(&b, err, SUMS_MAGIC "%s\n", hex);
    for (size_t i = 0; i < s->n && !error; i++) {
        if (strchr(s->e[i].table, '\n'))
            continue;
        pb_hex_encode(hex, s->e[i].sum, 16);
        error = pb_buf_printf(&b, err, "%" PRIu64 " %s %s\n", s->e[i].rows, hex, s->e[i].table);
    }
    if (!error)
        error = pb_fs_write_file(path, b.ptr, b.len, 0600, err);
    pb_buf_dispose(&b);
    return error;
}

int pb_sums_move(const char *from, const char *to, pb_error *err)
{
    char a[SUMS_PATHCAP], b[SUMS_PATHCAP];
    sums_path(a, from);
    sums_path(b, to);
    if (!pb_fs_exists(a)) {
        unlink(b);
        return 0;
    }
    if (rename(a, b) != 0)
        return pb_error_errno(err, "cannot rename %s", a);
    return 0;
}

void pb_sums_remove(const char *db)
{
    char path[SUMS_PATHCAP];
    sums_path(path, db);
    unlink(path);
}

typedef struct sums_job {
    pb_sums *out;
    const pb_sums *ref;
    unsigned reused;
    int nomem;
} sums_job;

static int on_same(const char *table, void *payload)
{
    sums_job *j = payload;
    const pb_sums_entry *r = find(j->ref, table);
    pb_sums_entry *e;
    if (!r)
        return 0; /* the reference has no share for it: read it */
    if (!(e = add(j->out, table))) {
        j->nomem = 1;
        return 1;
    }
    e->same = 1;
    e->rows = r->rows;
    memcpy(e->sum, r->sum, 16);
    return 0;
}

static int on_reuse(const char *table, uint64_t *rows, uint8_t sum[16], void *payload)
{
    sums_job *j = payload;
    const pb_sums_entry *e = find(j->out, table);
    if (!e || !(e->same || e->ranged))
        return 0;
    *rows = e->rows;
    memcpy(sum, e->sum, 16);
    j->reused++;
    return 1;
}

static int on_table(const pb_table_checksum *c, void *payload)
{
    sums_job *j = payload;
    pb_sums_entry *e = add(j->out, c->table);
    if (!e) {
        j->nomem = 1;
        return 1;
    }
    e->rows = c->rows;
    memcpy(e->sum, c->sum, 16);
    return 0;
}

/* a - b + c on 128-bit sums written high 8 bytes first (mod 2^128) */
static void sum_update(uint8_t out[16], const uint8_t a[16], const uint8_t b[16],
                       const uint8_t c[16])
{
    unsigned x = 0;
    uint8_t t[16];
    int borrow = 0;
    for (int i = 15; i >= 0; i--) {
        int d = a[i] - b[i] - borrow;
        borrow = d < 0;
        t[i] = (uint8_t)d;
    }
    for (int i = 15; i >= 0; i--) {
        x = (unsigned)t[i] + c[i] + (x >> 8);
        out[i] = (uint8_t)x;
    }
}

/* The tables of the reference whose pages differ: summed from the reference's share and the
 * rows of the leaves that differ, when the page layout tells them (pagecmp.h). */
static int ranged_shares(sums_job *j, const char *db, const char *ref, const pb_diff_options *o,
                         pb_error *err)
{
    int error = 0;
    for (size_t i = 0; i < j->ref->n && !error; i++) {
        const pb_sums_entry *r = &j->ref->e[i];
        const pb_sums_entry *cur = find(j->out, r->table);
        pb_rowid_ranges rb = {0}, rt = {0};
        int found = 0;
        uint64_t nb = 0, nt = 0;
        uint8_t sb[16], st[16];
        if (cur && cur->same)
            continue;
        if ((error = pb_sqldiff_leaf_ranges(&found, &rb, &rt, ref, db, r->table, o, err)) == 0 &&
            found && (error = pb_sqldiff_sum_ranges(&nb, sb, ref, r->table, &rb, o, err)) == 0 &&
            (error = pb_sqldiff_sum_ranges(&nt, st, db, r->table, &rt, o, err)) == 0 &&
            nb <= r->rows) {
            pb_sums_entry *e = add(j->out, r->table);
            if (!e) {
                j->nomem = 1;
                error = PB_ENOMEM;
            } else {
                e->ranged = 1;
                e->rows = r->rows - nb + nt;
                sum_update(e->sum, r->sum, sb, st);
            }
        }
        pb_rowid_ranges_dispose(&rb);
        pb_rowid_ranges_dispose(&rt);
    }
    return error;
}

int pb_sums_checksum(uint8_t digest[16], pb_sums *out, unsigned *reused, const char *db,
                     const char *ref, const pb_sums *ref_sums, pb_error *err)
{
    int error = 0;
    sums_job j = {out, ref_sums, 0, 0};
    pb_diff_options o = PB_DIFF_OPTIONS_INIT;
    pb_checksum c;
    pb_sums_dispose(out);
    o.open = pb_compat_open_reader;
    if (ref && ref_sums && ref_sums->n) {
        struct stat a, b;
        if (stat(ref, &a) == 0 && stat(db, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            /* one file under two names (a hard link): every table is the same */
            for (size_t i = 0; i < ref_sums->n && !j.nomem; i++)
                on_same(ref_sums->e[i].table, &j);
        } else if ((error = pb_sqldiff_same_pages(NULL, ref, db, &o, on_same, &j, err)) < 0) {
            goto done;
        }
    }
    if (ref && ref_sums && (error = ranged_shares(&j, db, ref, &o, err)) < 0)
        goto done;
    o.reuse = on_reuse;
    o.reuse_payload = &j;
    o.table_checksum = on_table;
    o.table_payload = &j;
    if ((error = pb_sqldiff_checksum(&c, db, &o, err)) < 0)
        goto done;
    memcpy(digest, c.digest, 16);
    if (reused)
        *reused = j.reused;
done:
    if (j.nomem) {
        *err = (pb_error)PB_ERROR_INIT;
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
    }
    if (error)
        pb_sums_dispose(out);
    return error;
}

/* The schema SQL of table `name` in `db` (owned by the caller; NULL when none). */
static int table_sql(char **sql, sqlite3 *db, const char *name, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    *sql = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        rc = s && !(*sql = strdup(s)) ? SQLITE_NOMEM : SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return pb_error_setd(err, PB_ESQLITE, rc, "sums: reading the schema: %s",
                             sqlite3_errmsg(db));
    return 0;
}

int pb_sums_mark_equal(pb_sums *s, unsigned *marked, const char *db, const char *ref_db,
                       const pb_sums *ref_sums, pb_error *err)
{
    int error = 0, rc;
    sqlite3 *a = NULL, *b = NULL;
    unsigned n = 0;
    if (marked)
        *marked = 0;
    if (!ref_sums || !ref_sums->n)
        return 0;
    for (size_t i = 0; i < s->n && !error; i++) {
        pb_sums_entry *e = &s->e[i];
        const pb_sums_entry *r = find(ref_sums, e->table);
        char *sa = NULL, *sb = NULL;
        if (e->same || !r || r->rows != e->rows || memcmp(r->sum, e->sum, 16) != 0)
            continue;
        if (!a && ((rc = sqlite3_open_v2(db, &a, SQLITE_OPEN_READONLY, NULL)) != SQLITE_OK ||
                   (rc = sqlite3_open_v2(ref_db, &b, SQLITE_OPEN_READONLY, NULL)) != SQLITE_OK)) {
            error = pb_error_setd(err, PB_ESQLITE, rc, "sums: cannot open %s: %s", b ? ref_db : db,
                                  sqlite3_errstr(rc));
            break;
        }
        if ((error = table_sql(&sa, a, e->table, err)) == 0 &&
            (error = table_sql(&sb, b, e->table, err)) == 0 && sa && sb && strcmp(sa, sb) == 0) {
            e->same = 1;
            n++;
        }
        free(sa);
        free(sb);
    }
    sqlite3_close(a);
    sqlite3_close(b);
    if (marked)
        *marked = n;
    return error;
}
