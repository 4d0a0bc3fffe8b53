/*
 * pagecmp.c: pb_sqldiff_same_pages(), the tables whose b-trees are byte-identical in two DB
 * files, found by comparing pages, without reading a row.
 * Role: bounds the row diff and the checksum by what changed: a table whose every page is the
 * same in both files holds the same rows, so a diff can leave it out and a checksum can take its
 * sum from the other file's. Prerequisites: SQLite's dbstat virtual table
 * (SQLITE_ENABLE_DBSTAT_VTAB, on in Debian's build; without it nothing is reported), both files at
 * rest.
 *
 * THE RULE. Table T is reported the same when, in both files, the page size, the reserved bytes
 * per page and the text encoding are equal, T's schema row has the same SQL and the same root
 * page, and every page of T's b-tree in the target (interior, leaf and overflow pages, as dbstat
 * walks them from the root) is byte-equal to the page of the same number in the base. The base's
 * b-tree from that root then reaches exactly the same pages (by induction from the root: equal
 * pages hold equal child and overflow pointers), so T holds the same rows in both. A file with a
 * -wal or -journal beside it is not at rest (its pages on disk may not be its content): then no
 * table is reported. The answer can miss tables that hold the same rows in another layout; it
 * never names a table whose rows differ. Two files with the same bytes past the first page's
 * 100-byte file header hold the same b-trees, the schema's included: that is found in one
 * sequential pass (it stops at the first difference), without a walk.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "pagecmp.h"
#include "tables.h"

static int sql_error(pb_error *err, sqlite3 *db, int rc, const char *what)
{
    return pb_error_setd(err, PB_ESQLITE, rc, "sqldiff: %s: %s", what,
                         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* 1 when `path` has a -wal with frames or a -journal beside it. */
static int not_at_rest(const char *path)
{
    char side[PATH_MAX + 16];
    struct stat st;
    snprintf(side, sizeof(side), "%s-wal", path);
    if (stat(side, &st) == 0 && st.st_size > 0)
        return 1;
    snprintf(side, sizeof(side), "%s-journal", path);
    return stat(side, &st) == 0;
}

/* The file's page size from its header (0: not a DB header we read), reserved bytes, encoding. */
static unsigned header_geometry(const uint8_t h[100], unsigned *reserved, unsigned *encoding)
{
    if (memcmp(h, "SQLite format 3", 16) != 0)
        return 0;
    unsigned ps = (unsigned)h[16] << 8 | h[17];
    *reserved = h[20];
    *encoding = (unsigned)h[56] << 24 | (unsigned)h[57] << 16 | (unsigned)h[58] << 8 | h[59];
    return ps == 1 ? 65536 : ps;
}

/* The schema row of `table` in `db`: its root page and SQL (`sql` owned by the caller). */
static int schema_row(int *root, char **sql, sqlite3 *db, const char *table, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    *root = 0;
    *sql = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT rootpage, sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?1", -1,
        &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 1);
        *root = sqlite3_column_int(st, 0);
        if (s && !(*sql = strdup(s)))
            rc = SQLITE_NOMEM;
        else
            rc = SQLITE_DONE;
    }
    int error = rc == SQLITE_DONE ? 0 : sql_error(err, db, rc, "reading the schema");
    sqlite3_finalize(st);
    return error;
}

/* Pages compared in one batch: their numbers are sorted and runs of consecutive pages read with
 * one pread per file (a table's pages mostly lie in runs). */
#define BATCH_PAGES 64

typedef struct pages {
    int fdb, fdt;
    unsigned ps;
    uint8_t *pb, *pt; /* BATCH_PAGES pages each */
    int64_t no[BATCH_PAGES];
    int n;
} pages;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* 1 when the batched pages are equal in both files (then the batch is emptied), else 0. */
static int batch_same(pages *p)
{
    qsort(p->no, (size_t)p->n, sizeof(p->no[0]), cmp_i64);
    for (int i = 0; i < p->n;) {
        int j = i + 1;
        while (j < p->n && p->no[j] == p->no[j - 1] + 1)
            j++;
        size_t len = (size_t)(j - i) * p->ps;
        off_t off = (off_t)(p->no[i] - 1) * p->ps;
        if (p->no[i] < 2 || pread(p->fdb, p->pb, len, off) != (ssize_t)len ||
            pread(p->fdt, p->pt, len, off) != (ssize_t)len || memcmp(p->pb, p->pt, len) != 0)
            return 0;
        while (j < p->n && p->no[j] == p->no[j - 1]) /* a page listed twice */
            j++;
        i = j;
    }
    p->n = 0;
    return 1;
}

/* 1 when the two files hold the same bytes past the first page's 100-byte file header (which
 * counts writes and versions): then every b-tree, the schema's included, is the same in both.
 * Stops at the first difference. */
static int files_same(pages *p)
{
    struct stat a, b;
    size_t chunk = (size_t)p->ps * BATCH_PAGES;
    if (fstat(p->fdb, &a) != 0 || fstat(p->fdt, &b) != 0 || a.st_size != b.st_size)
        return 0;
    for (off_t off = 0; off < b.st_size; off += (off_t)chunk) {
        size_t len = b.st_size - off < (off_t)chunk ? (size_t)(b.st_size - off) : chunk;
        if (pread(p->fdb, p->pb, len, off) != (ssize_t)len ||
            pread(p->fdt, p->pt, len, off) != (ssize_t)len)
            return 0;
        size_t skip = off == 0 ? 100 : 0;
        if (len <= skip || memcmp(p->pb + skip, p->pt + skip, len - skip) != 0)
            return 0;
    }
    return 1;
}

/* 1 when every page dbstat lists for `table` in the target equals the base's page. */
static int table_same(int *same, uint64_t *count, sqlite3_stmt *walk, const char *table, pages *p,
                      sqlite3 *db, pb_error *err)
{
    int rc;
    *same = 1;
    p->n = 0;
    sqlite3_reset(walk);
    if ((rc = sqlite3_bind_text(walk, 1, table, -1, SQLITE_STATIC)) != SQLITE_OK)
        return sql_error(err, db, rc, "walking the pages");
    while ((rc = sqlite3_step(walk)) == SQLITE_ROW) {
        p->no[p->n++] = sqlite3_column_int64(walk, 0);
        (*count)++;
        if (p->n == BATCH_PAGES && !batch_same(p)) {
            *same = 0;
            break;
        }
    }
    if (rc == SQLITE_DONE && p->n && !batch_same(p))
        *same = 0;
    sqlite3_reset(walk);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sql_error(err, db, rc, "walking the pages");
    return 0;
}

int pb_sqldiff_same_pages(pb_same_pages_stats *stats, const char *base_path,
                          const char *target_path, const pb_diff_options *opts,
                          pb_sqldiff_same_fn same, void *payload, pb_error *err)
{
    int error = 0, utf8 = 0;
    pages p = {-1, -1, 0, NULL, NULL, {0}, 0};
    sqlite3 *dbb = NULL, *dbt = NULL;
    sqlite3_stmt *walk = NULL;
    pb_tablelist l = {0};
    uint8_t hb[100], ht[100];
    pb_same_pages_stats s;
    memset(&s, 0, sizeof(s));

    if (!base_path || !target_path || !same)
        return pb_error_set(err, PB_EINVALID, "sqldiff: same_pages needs two paths and a callback");
    if (opts && (opts->version < 1 || opts->version > PB_DIFF_OPTIONS_VERSION))
        return pb_error_set(err, PB_EINVALID, "sqldiff: unknown options version %u", opts->version);
    if ((error = pb_tables__open(&dbb, &utf8, base_path, opts, 0, err)) < 0 ||
        (error = pb_tables__open(&dbt, &utf8, target_path, opts, 0, err)) < 0)
        goto done;
    if (not_at_rest(base_path) || not_at_rest(target_path))
        goto done; /* pages on disk may not be the content: nothing reported */
    if ((p.fdb = open(base_path, O_RDONLY | O_CLOEXEC)) < 0 ||
        (p.fdt = open(target_path, O_RDONLY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "sqldiff: cannot open %s", p.fdb < 0 ? base_path : target_path);
        goto done;
    }
    unsigned rb = 0, rt = 0, eb = 0, et = 0, ps;
    if (pread(p.fdb, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
        pread(p.fdt, ht, sizeof(ht), 0) != (ssize_t)sizeof(ht))
        goto done;
    ps = header_geometry(hb, &rb, &eb);
    if (!ps || ps != header_geometry(ht, &rt, &et) || rb != rt || eb != et)
        goto done; /* another geometry: no page can be compared */
    p.ps = ps;
    if (!(p.pb = malloc((size_t)ps * BATCH_PAGES)) || !(p.pt = malloc((size_t)ps * BATCH_PAGES))) {
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    int whole = files_same(&p); /* no table to walk: the files are the same */
    int rc = whole ? SQLITE_OK
                   : sqlite3_prepare_v2(dbt, "SELECT pageno FROM main.dbstat WHERE name = ?1", -1,
                                        &walk, NULL);
    if (rc != SQLITE_OK)
        goto done; /* no dbstat in this SQLite: nothing reported */
    if ((error = pb_tables__list(&l, dbt, opts, err)) < 0)
        goto done;
    for (size_t i = 0; i < l.n && !error; i++) {
        int root_b, root_t, eq = 0;
        char *sql_b = NULL, *sql_t = NULL;
        s.tables++;
        if ((error = schema_row(&root_b, &sql_b, dbb, l.t[i].name, err)) == 0 &&
            (error = schema_row(&root_t, &sql_t, dbt, l.t[i].name, err)) == 0 && root_b > 1 &&
            root_b == root_t && sql_b && sql_t && strcmp(sql_b, sql_t) == 0) {
            if (whole)
                eq = 1;
            else
                error = table_same(&eq, &s.pages_compared, walk, l.t[i].name, &p, dbt, err);
        }
        free(sql_b);
        free(sql_t);
        if (!error && eq) {
            s.tables_same++;
            if (same(l.t[i].name, payload))
                error = pb_error_set(err, PB_ECANCELLED, "sqldiff: page comparison cancelled");
        }
    }
done:
    if (stats)
        *stats = s;
    sqlite3_finalize(walk);
    pb_tables__dispose(&l);
    pb_tables__close(dbb);
    pb_tables__close(dbt);
    if (p.fdb >= 0)
        close(p.fdb);
    if (p.fdt >= 0)
        close(p.fdt);
    free(p.pb);
    free(p.pt);
    return error;
}

/* ---- rowid ranges of the leaves that differ ---------------------------------------------- */

/* A table b-tree's leaves in key order, read from the file (both files at rest). */
typedef struct leaves {
    int64_t *no;
    size_t n, cap;
} leaves;

static int leaves_add(leaves *l, int64_t no)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        int64_t *nn = realloc(l->no, cap * sizeof(*nn));
        if (!nn)
            return -1;
        l->no = nn;
        l->cap = cap;
    }
    l->no[l->n++] = no;
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A SQLite varint at p (at most 9 bytes, `end` bounds it); its length, 0 when cut short. */
static int get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int i = 0; i < 9; i++) {
        if (p + i >= end)
            return 0;
        if (i == 8) {
            *v = x << 8 | p[i];
            return 9;
        }
        x = x << 7 | (p[i] & 0x7f);
        if (!(p[i] & 0x80)) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

#define WALK_DEPTH 40

typedef struct walk {
    int fd;
    unsigned ps;
    int64_t npages, visited;
    int leaf_depth; /* the depth of the leaves once one was read (a b-tree is balanced) */
    leaves *out;
} walk;

/* Collects the leaves under page `no` (at `depth`) in key order. Children at the leaves' depth
 * are recorded without being read: every leaf is read later (compared or ranged), and checked to
 * be a table leaf then. 1: not a table b-tree as expected (the caller reads the table instead),
 * 0 done, -1 out of memory. */
static int walk_page(walk *w, int64_t no, int depth)
{
    int r = 0;
    uint8_t *pg = NULL;
    int64_t *kids = NULL;
    if (no < 1 || no > w->npages || ++w->visited > w->npages || depth >= WALK_DEPTH)
        return 1;
    if (!(pg = malloc(w->ps)))
        return -1;
    if (pread(w->fd, pg, w->ps, (off_t)(no - 1) * w->ps) != (ssize_t)w->ps) {
        r = 1;
        goto done;
    }
    const uint8_t *h = pg + (no == 1 ? 100 : 0);
    if (h[0] == 0x0d) {
        if (w->leaf_depth < 0)
            w->leaf_depth = depth;
        r = w->leaf_depth != depth ? 1 : leaves_add(w->out, no);
        goto done;
    }
    if (h[0] != 0x05) {
        r = 1; /* an index b-tree (WITHOUT ROWID) or damage */
        goto done;
    }
    unsigned ncell = (unsigned)h[3] << 8 | h[4];
    if (!(kids = malloc(((size_t)ncell + 1) * sizeof(*kids)))) {
        r = -1;
        goto done;
    }
    for (unsigned i = 0; i < ncell; i++) {
        size_t cp = (size_t)(h - pg) + 12 + 2 * (size_t)i;
        unsigned off = cp + 2 <= w->ps ? (unsigned)pg[cp] << 8 | pg[cp + 1] : w->ps;
        if (off + 4 > w->ps) {
            r = 1;
            goto done;
        }
        kids[i] = get32(pg + off);
    }
    kids[ncell] = get32(h + 8);
    free(pg);
    pg = NULL;
    for (unsigned i = 0; i <= ncell && !r; i++) {
        if (w->leaf_depth == depth + 1) {
            if (kids[i] < 1 || kids[i] > w->npages || ++w->visited > w->npages)
                r = 1;
            else
                r = leaves_add(w->out, kids[i]);
        } else {
            r = walk_page(w, kids[i], depth + 1);
        }
    }
done:
    free(pg);
    free(kids);
    return r;
}

static int walk_leaves(leaves *out, int fd, unsigned ps, int64_t npages, int64_t root)
{
    walk w = {fd, ps, npages, 0, -1, out};
    return walk_page(&w, root, 0);
}

/* The first and last rowid on a table leaf, and whether a cell spills to overflow pages.
 * 1 when the page cannot be read as a table leaf. */
static int leaf_keys(const uint8_t *pg, int64_t no, unsigned ps, unsigned usable, int *ncell_out,
                     int64_t *lo, int64_t *hi, int *spills)
{
    const uint8_t *h = pg + (no == 1 ? 100 : 0), *end = pg + ps;
    unsigned ncell = (unsigned)h[3] << 8 | h[4];
    uint64_t max_local = usable - 35;
    *ncell_out = (int)ncell;
    *spills = 0;
    if (h[0] != 0x0d)
        return 1;
    for (unsigned i = 0; i < ncell; i++) {
        size_t cp = (size_t)(h - pg) + 8 + 2 * (size_t)i;
        if (cp + 2 > ps)
            return 1;
        unsigned off = (unsigned)pg[cp] << 8 | pg[cp + 1];
        uint64_t payload, rowid;
        int a, b;
        if (off >= ps || !(a = get_varint(pg + off, end, &payload)) ||
            !(b = get_varint(pg + off + a, end, &rowid)))
            return 1;
        if (payload > max_local)
            *spills = 1;
        if (i == 0)
            *lo = (int64_t)rowid;
        if (i == ncell - 1)
            *hi = (int64_t)rowid;
    }
    return 0;
}

static int range_add(pb_rowid_ranges *r, int64_t lo, int64_t hi, int joins)
{
    if (joins && r->n) {
        r->r[r->n - 1].hi = hi;
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        pb_rowid_range *nr = realloc(r->r, cap * sizeof(*nr));
        if (!nr)
            return -1;
        r->r = nr;
        r->cap = cap;
    }
    r->r[r->n].lo = lo;
    r->r[r->n].hi = hi;
    r->n++;
    return 0;
}

void pb_rowid_ranges_dispose(pb_rowid_ranges *r)
{
    if (!r)
        return;
    free(r->r);
    memset(r, 0, sizeof(*r));
}

/* The ranges of the leaves of `l` in `fd` that are not in `shared` (sorted page numbers). */
static int ranges_of(pb_rowid_ranges *out, const leaves *l, const int64_t *shared, size_t nshared,
                     int fd, unsigned ps, unsigned usable, uint8_t *pg)
{
    int prev_out = 0; /* the previous leaf in key order was not shared: its range extends */
    for (size_t i = 0; i < l->n; i++) {
        int64_t no = l->no[i];
        if (nshared && bsearch(&no, shared, nshared, sizeof(*shared), cmp_i64)) {
            prev_out = 0;
            continue;
        }
        int64_t lo = 0, hi = 0;
        int ncell = 0, spills = 0;
        if (pread(fd, pg, ps, (off_t)(no - 1) * ps) != (ssize_t)ps ||
            leaf_keys(pg, no, ps, usable, &ncell, &lo, &hi, &spills))
            return 1;
        if (!ncell)
            continue; /* an empty root: no rows */
        if (range_add(out, lo, hi, prev_out) < 0)
            return -1;
        prev_out = 1;
    }
    return 0;
}

int pb_sqldiff_leaf_ranges(int *found, pb_rowid_ranges *base_out, pb_rowid_ranges *target_out,
                           const char *base_path, const char *target_path, const char *table,
                           const pb_diff_options *opts, pb_error *err)
{
    int error = 0, utf8 = 0, r = 1;
    sqlite3 *dbb = NULL, *dbt = NULL;
    leaves lb = {0}, lt = {0};
    int64_t *shared = NULL;
    size_t nshared = 0;
    uint8_t hb[100], ht[100], *pa = NULL, *pt = NULL;
    int fdb = -1, fdt = -1;
    char *sql_b = NULL, *sql_t = NULL;
    int root_b = 0, root_t = 0;

    *found = 0;
    memset(base_out, 0, sizeof(*base_out));
    memset(target_out, 0, sizeof(*target_out));
    if ((error = pb_tables__open(&dbb, &utf8, base_path, opts, 0, err)) < 0 ||
        (error = pb_tables__open(&dbt, &utf8, target_path, opts, 0, err)) < 0)
        goto done;
    if (not_at_rest(base_path) || not_at_rest(target_path))
        goto done;
    if ((error = schema_row(&root_b, &sql_b, dbb, table, err)) < 0 ||
        (error = schema_row(&root_t, &sql_t, dbt, table, err)) < 0)
        goto done;
    if (root_b < 1 || root_t < 1 || !sql_b || !sql_t || strcmp(sql_b, sql_t) != 0)
        goto done; /* the schema differs: the rows cannot be compared by pages */
    if ((fdb = open(base_path, O_RDONLY | O_CLOEXEC)) < 0 ||
        (fdt = open(target_path, O_RDONLY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "sqldiff: cannot open %s", fdb < 0 ? base_path : target_path);
        goto done;
    }
    unsigned rb = 0, rt = 0, eb = 0, et = 0, ps;
    struct stat sb, st;
    if (pread(fdb, hb, sizeof(hb), 0) != (ssize_t)sizeof(hb) ||
        pread(fdt, ht, sizeof(ht), 0) != (ssize_t)sizeof(ht) || fstat(fdb, &sb) != 0 ||
        fstat(fdt, &st) != 0)
        goto done;
    ps = header_geometry(hb, &rb, &eb);
    if (!ps || ps != header_geometry(ht, &rt, &et) || rb != rt || eb != et || ps - rb < 480)
        goto done;
    if (!(pa = malloc(ps)) || !(pt = malloc(ps))) {
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
        goto done;
    }
    if ((r = walk_leaves(&lb, fdb, ps, sb.st_size / ps, root_b)) != 0 ||
        (r = walk_leaves(&lt, fdt, ps, st.st_size / ps, root_t)) != 0)
        goto fallback;
    /* shared: a leaf of both trees at the same page number, byte-equal, no cell spilling to
     * overflow pages (their chains are not compared) */
    int64_t *sorted = malloc((lb.n ? lb.n : 1) * sizeof(*sorted));
    if (!sorted || !(shared = malloc((lt.n ? lt.n : 1) * sizeof(*shared)))) {
        free(sorted);
        r = -1;
        goto fallback;
    }
    memcpy(sorted, lb.no, lb.n * sizeof(*sorted));
    qsort(sorted, lb.n, sizeof(*sorted), cmp_i64);
    for (size_t i = 0; i < lt.n; i++) {
        int64_t no = lt.no[i], lo, hi;
        int ncell, spills;
        if (!bsearch(&no, sorted, lb.n, sizeof(*sorted), cmp_i64))
            continue;
        if (pread(fdb, pa, ps, (off_t)(no - 1) * ps) != (ssize_t)ps ||
            pread(fdt, pt, ps, (off_t)(no - 1) * ps) != (ssize_t)ps)
            continue;
        if (memcmp(pa, pt, ps) != 0 || leaf_keys(pt, no, ps, ps - rb, &ncell, &lo, &hi, &spills) ||
            spills)
            continue;
        shared[nshared++] = no;
    }
    free(sorted);
    /* worth it only when few leaves differ: else reading the table once costs less */
    if ((lb.n - nshared) + (lt.n - nshared) > lt.n / 2 + 1) {
        r = 0;
        goto fallback;
    }
    qsort(shared, nshared, sizeof(*shared), cmp_i64);
    if ((r = ranges_of(base_out, &lb, shared, nshared, fdb, ps, ps - rb, pa)) != 0 ||
        (r = ranges_of(target_out, &lt, shared, nshared, fdt, ps, ps - rb, pt)) != 0)
        goto fallback;
    *found = 1;
fallback:
    if (r < 0)
        error = pb_error_set(err, PB_ENOMEM, "sqldiff: out of memory");
    if (!*found) {
        pb_rowid_ranges_dispose(base_out);
        pb_rowid_ranges_dispose(target_out);
    }
done:
    free(lb.no);
    free(lt.no);
    free(shared);
    free(pa);
    free(pt);
    free(sql_b);
    free(sql_t);
    if (fdb >= 0)
        close(fdb);
    if (fdt >= 0)
        close(fdt);
    pb_tables__close(dbb);
    pb_tables__close(dbt);
    return error;
}
