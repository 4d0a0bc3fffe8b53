/*
 * changeset.c: strict, streaming validation of a changeset or patchset, with per-table counts.
 * Role: the gate in front of every changeset the engine receives or stores (corruption is
 * PB_ECORRUPT with a byte offset, never a silently shorter apply), and the summary the diff
 * report and the merge use. Prerequisites: none beyond libc; the format is SQLite's (see the
 * top of ext/session/sqlite3session.c and record.c).
 *
 * Rules checked beyond "sqlite3changeset_next() can parse it" (sqlite3changeset_start_strm()
 * accepts a stream cut at a change boundary, a 'T' header without changes, undefined values in
 * INSERTs, NaN reals and length varints beyond 31 bits; none of that passes here):
 *  - table header: 'T' (changeset) or 'P' (patchset), never both in one stream; varint column
 *    count 1..32767; one PK byte per column, 0 or a PK position (1..255, as
 *    sqlite3session_diff() writes them), at least one non-zero; a NUL-terminated UTF-8 name of
 *    1..4096 bytes; at least one change before the next header or the end; a table that
 *    reappears has the same columns and PK bytes.
 *  - change: op 18 (INSERT), 9 (DELETE) or 23 (UPDATE); indirect flag 0 or 1.
 *  - values: type byte 1..5 (0, undefined, only where allowed), 8-byte integers and reals (no
 *    NaN: SQLite cannot store it), text/blob lengths < 2^31 and present in full.
 *  - changeset INSERT / DELETE: every value defined. UPDATE: old.* defines every PK column;
 *    a non-PK column is defined in old.* exactly when it is in new.*, and at least one is.
 *    PK columns of new.* may be defined (sqlite3session_diff() does so when a PK value changes
 *    storage class).
 *  - patchset INSERT: every value defined; DELETE: exactly the PK values; UPDATE: one record
 *    with every PK value and at least one other value defined.
 *  - the end: at `expect_bytes` when given (the only way to detect a cut between changes).
 * Memory: one PB_SQLDIFF_CHUNK input buffer, and the table list (at most 4096 tables).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "record.h"

#define MAX_COLUMNS    32767
#define MAX_NAME       4096
#define MAX_TABLES     4096
#define MAX_VALUE_SIZE 0x7fffffffu

typedef struct vtable {
    char *name;
    unsigned ncol, npk;
    uint8_t *pk;
    uint64_t inserted, updated, deleted;
} vtable;

typedef struct reader {
    pb_source_fn in;
    void *payload;
    uint8_t *buf;
    size_t pos, len;
    uint64_t base; /* stream offset of buf[0] */
    int eof;
    pb_error *err;
} reader;

typedef struct validator {
    reader r;
    vtable *t;
    unsigned nt, capt;
    int patchset; /* -1 until the first header */
    vtable *cur;
    uint64_t group_changes;
    uint64_t group_start;
    uint8_t *def_old, *def_new; /* per column: value defined */
    uint8_t *hdr_pk;            /* PK bytes of the header being read */
    char *hdr_name;             /* its name, MAX_NAME + 1 bytes */
    pb_changeset_summary sum;
} validator;

static uint64_t tell(const reader *r)
{
    return r->base + r->pos;
}

/* Makes at least one byte available: 1, 0 at the end, or an error. */
static int fill(reader *r)
{
    if (r->pos < r->len)
        return 1;
    if (r->eof)
        return 0;
    r->base += r->len;
    r->pos = r->len = 0;
    size_t n = 0;
    int rc = r->in(r->payload, r->buf, PB_SQLDIFF_CHUNK, &n, r->err);
    if (rc)
        return pb_error_set(r->err, rc < 0 ? rc : PB_ECANCELLED,
                            "changeset: the source failed at byte %llu (%d)",
                            (unsigned long long)r->base, rc);
    if (n > PB_SQLDIFF_CHUNK)
        return pb_error_set(r->err, PB_EINVALID, "changeset: the source overran its buffer");
    if (n == 0) {
        r->eof = 1;
        return 0;
    }
    r->len = n;
    return 1;
}

static int truncated(validator *v, const char *what)
{
    return pb_error_set(v->r.err, PB_ECORRUPT, "changeset: byte %llu: truncated %s%s%s",
                        (unsigned long long)tell(&v->r), what, v->cur ? " in table " : "",
                        v->cur ? v->cur->name : "");
}

static int corrupt(validator *v, uint64_t at, const char *msg)
{
    return pb_error_set(v->r.err, PB_ECORRUPT, "changeset: byte %llu: %s%s%s",
                        (unsigned long long)at, msg, v->cur ? " in table " : "",
                        v->cur ? v->cur->name : "");
}

/* Reads one byte into *c: 1, 0 at the end, or an error. */
static int get_byte(validator *v, int *c)
{
    int rc = fill(&v->r);
    if (rc <= 0)
        return rc;
    *c = v->r.buf[v->r.pos++];
    return 1;
}

static int need_byte(validator *v, int *c, const char *what)
{
    int rc = get_byte(v, c);
    if (rc < 0)
        return rc;
    return rc == 0 ? truncated(v, what) : 0;
}

static int get_bytes(validator *v, uint8_t *dst, size_t n, const char *what)
{
    while (n) {
        int rc = fill(&v->r);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return truncated(v, what);
        size_t take = v->r.len - v->r.pos < n ? v->r.len - v->r.pos : n;
        if (dst) {
            memcpy(dst, v->r.buf + v->r.pos, take);
            dst += take;
        }
        v->r.pos += take;
        n -= take;
    }
    return 0;
}

/* Reads a varint that must fit in 31 bits. */
static int get_varint(validator *v, uint64_t *out, const char *what)
{
    uint64_t at = tell(&v->r), x = 0;
    int c = 0, error;
    for (int i = 0; i < 9; i++) {
        if ((error = need_byte(v, &c, what)) < 0)
            return error;
        if (i == 8) {
            x = (x << 8) | (uint64_t)c;
            break;
        }
        x = (x << 7) | (uint64_t)(c & 0x7f);
        if (!(c & 0x80))
            break;
    }
    if (x > MAX_VALUE_SIZE)
        return corrupt(v, at, "varint overflow");
    *out = x;
    return 0;
}

/* Reads one value; *defined tells whether it was undefined (type 0). */
static int get_value(validator *v, int allow_undef, uint8_t *defined)
{
    uint64_t at = tell(&v->r), n;
    uint8_t b[8];
    int type, error;
    char msg[64];

    if ((error = need_byte(v, &type, "value")) < 0)
        return error;
    switch (type) {
    case PB_REC_UNDEF:
        if (!allow_undef)
            return corrupt(v, at, "undefined value where the format forbids one");
        *defined = 0;
        return 0;
    case PB_REC_INT:
        error = get_bytes(v, NULL, 8, "integer value");
        break;
    case PB_REC_REAL: {
        if ((error = get_bytes(v, b, 8, "real value")) < 0)
            return error;
        uint64_t x = 0;
        double d;
        for (int i = 0; i < 8; i++)
            x = (x << 8) | b[i];
        memcpy(&d, &x, 8);
        if (isnan(d))
            return corrupt(v, at, "NaN real value");
        break;
    }
    case PB_REC_TEXT:
    case PB_REC_BLOB:
        if ((error = get_varint(v, &n, "value length")) < 0)
            return error;
        error = get_bytes(v, NULL, (size_t)n, type == PB_REC_TEXT ? "text value" : "blob value");
        break;
    case PB_REC_NULL:
        error = 0;
        break;
    default:
        snprintf(msg, sizeof(msg), "bad type byte 0x%02x", (unsigned)type);
        return corrupt(v, at, msg);
    }
    *defined = 1;
    return error;
}

/* Reads `ncol` values into the definedness array `def`. */
static int get_record(validator *v, unsigned ncol, int allow_undef, uint8_t *def)
{
    for (unsigned i = 0; i < ncol; i++) {
        int error = get_value(v, allow_undef, &def[i]);
        if (error < 0)
            return error;
    }
    return 0;
}

/* The table `name` seen before (its columns and PK bytes must not change), or a new entry. */
static int table_entry(validator *v, vtable **out, const char *name, size_t nlen, const uint8_t *pk,
                       unsigned ncol, unsigned npk, uint64_t at)
{
    char msg[160];
    for (unsigned i = 0; i < v->nt; i++) {
        vtable *t = &v->t[i];
        if (strcmp(t->name, name) != 0)
            continue;
        if (t->ncol != ncol) {
            snprintf(msg, sizeof(msg), "column count mismatch for table %.64s: %u, earlier %u",
                     name, ncol, t->ncol);
            return corrupt(v, at, msg);
        }
        if (memcmp(t->pk, pk, (size_t)ncol) != 0) {
            snprintf(msg, sizeof(msg), "primary key mismatch for table %.64s", name);
            return corrupt(v, at, msg);
        }
        *out = t;
        return 0;
    }
    if (v->nt == MAX_TABLES)
        return pb_error_set(v->r.err, PB_ENOMEM, "changeset: byte %llu: more than %d tables",
                            (unsigned long long)at, MAX_TABLES);
    if (v->nt == v->capt) {
        unsigned cap = v->capt ? v->capt * 2 : 16;
        vtable *nt = realloc(v->t, cap * sizeof(*nt));
        if (!nt)
            return pb_error_set(v->r.err, PB_ENOMEM, "changeset: out of memory");
        v->t = nt;
        v->capt = cap;
    }
    vtable *t = &v->t[v->nt];
    memset(t, 0, sizeof(*t));
    t->name = malloc(nlen + 1);
    t->pk = malloc((size_t)ncol);
    if (!t->name || !t->pk) {
        free(t->name);
        free(t->pk);
        return pb_error_set(v->r.err, PB_ENOMEM, "changeset: out of memory");
    }
    memcpy(t->name, name, nlen + 1);
    memcpy(t->pk, pk, (size_t)ncol);
    t->ncol = ncol;
    t->npk = npk;
    v->nt++;
    v->sum.tables = v->nt;
    *out = t;
    return 0;
}

/* Reads a header's NUL-terminated table name into v->hdr_name; its length in *nlen. */
static int read_table_name(validator *v, size_t *nlen, uint64_t at)
{
    int error, c;
    *nlen = 0;
    for (;;) {
        if ((error = need_byte(v, &c, "table name")) < 0)
            return error;
        if (c == 0)
            break;
        if (*nlen == MAX_NAME)
            return corrupt(v, at, "table name longer than 4096 bytes");
        v->hdr_name[(*nlen)++] = (char)c;
    }
    v->hdr_name[*nlen] = '\0';
    return *nlen ? 0 : corrupt(v, at, "empty table name");
}

static int read_header(validator *v, int kind, uint64_t at)
{
    int error;
    uint64_t ncol;
    uint8_t *pk = v->hdr_pk;
    size_t nlen = 0;
    unsigned npk = 0;
    char msg[160];

    if (v->cur && v->group_changes == 0)
        return corrupt(v, v->group_start, "table header without changes");
    int patchset = kind == 'P';
    if (v->patchset >= 0 && v->patchset != patchset)
        return corrupt(v, at, "changeset and patchset headers mixed in one stream");
    v->patchset = patchset;
    v->cur = NULL;
    if ((error = get_varint(v, &ncol, "table header")) < 0)
        return error;
    if (ncol == 0 || ncol > MAX_COLUMNS) {
        snprintf(msg, sizeof(msg), "column count %llu out of range", (unsigned long long)ncol);
        return corrupt(v, at, msg);
    }
    if ((error = get_bytes(v, pk, (size_t)ncol, "table header")) < 0)
        return error;
    for (unsigned i = 0; i < ncol; i++)
        if (pk[i])
            npk++;
    if (npk == 0)
        return corrupt(v, at, "table header without a primary key column");
    for (unsigned i = 0; i < ncol; i++)
        if (pk[i] > (npk < 255 ? npk : 255))
            return corrupt(v, at, "bad primary key flag");
    if ((error = read_table_name(v, &nlen, at)) < 0 ||
        (error = table_entry(v, &v->cur, v->hdr_name, nlen, pk, (unsigned)ncol, npk, at)) < 0)
        return error;
    v->group_changes = 0;
    v->group_start = at;
    return 0;
}

static int read_change(validator *v, int op, uint64_t at)
{
    vtable *t = v->cur;
    int error, indirect;
    char msg[64];

    if (!t) {
        snprintf(msg, sizeof(msg), "expected a table header, found 0x%02x", (unsigned)op);
        return corrupt(v, at, msg);
    }
    if (op != 18 && op != 9 && op != 23) {
        snprintf(msg, sizeof(msg), "unknown op 0x%02x", (unsigned)op);
        return corrupt(v, at, msg);
    }
    if ((error = need_byte(v, &indirect, "change")) < 0)
        return error;
    if (indirect != 0 && indirect != 1)
        return corrupt(v, at + 1, "bad indirect flag");

    if (op == 18) { /* INSERT: a full new.* record */
        if ((error = get_record(v, t->ncol, 0, v->def_new)) < 0)
            return error;
        t->inserted++;
        v->sum.inserted++;
    } else if (op == 9) { /* DELETE: full old.* record, or the PK only in a patchset */
        if ((error = get_record(v, v->patchset ? t->npk : t->ncol, 0, v->def_old)) < 0)
            return error;
        t->deleted++;
        v->sum.deleted++;
    } else if (!v->patchset) {
        unsigned changed = 0;
        if ((error = get_record(v, t->ncol, 1, v->def_old)) < 0)
            return error;
        uint64_t at_new = tell(&v->r);
        if ((error = get_record(v, t->ncol, 1, v->def_new)) < 0)
            return error;
        for (unsigned i = 0; i < t->ncol; i++) {
            if (t->pk[i]) {
                if (!v->def_old[i])
                    return corrupt(v, at, "UPDATE without its primary key value");
            } else if (v->def_old[i] != v->def_new[i]) {
                return corrupt(v, at_new, "UPDATE old and new values do not pair up");
            } else {
                changed += v->def_new[i];
            }
        }
        if (!changed)
            return corrupt(v, at, "UPDATE that changes nothing");
        t->updated++;
        v->sum.updated++;
    } else {
        unsigned changed = 0;
        if ((error = get_record(v, t->ncol, 1, v->def_new)) < 0)
            return error;
        for (unsigned i = 0; i < t->ncol; i++) {
            if (t->pk[i] && !v->def_new[i])
                return corrupt(v, at, "UPDATE without its primary key value");
            if (!t->pk[i])
                changed += v->def_new[i];
        }
        if (!changed)
            return corrupt(v, at, "UPDATE that changes nothing");
        t->updated++;
        v->sum.updated++;
    }
    v->group_changes++;
    return 0;
}

void pb_changeset_check_options_init(pb_changeset_check_options *opts)
{
    const pb_changeset_check_options init = PB_CHANGESET_CHECK_OPTIONS_INIT;
    *opts = init;
}

int pb_changeset_validate(pb_changeset_summary *out, pb_source_fn in, void *in_payload,
                          const pb_changeset_check_options *opts, pb_error *err)
{
    int error = 0, c;
    validator v;

    memset(&v, 0, sizeof(v));
    v.patchset = -1;
    v.r.in = in;
    v.r.payload = in_payload;
    v.r.err = err;
    if (!in) {
        error = pb_error_set(err, PB_EINVALID, "changeset: no input");
        goto done;
    }
    if (opts && opts->version != PB_CHANGESET_CHECK_OPTIONS_VERSION) {
        error =
            pb_error_set(err, PB_EINVALID, "changeset: unknown options version %u", opts->version);
        goto done;
    }
    v.r.buf = malloc(PB_SQLDIFF_CHUNK);
    v.def_old = malloc(MAX_COLUMNS);
    v.def_new = malloc(MAX_COLUMNS);
    v.hdr_pk = malloc(MAX_COLUMNS);
    v.hdr_name = malloc(MAX_NAME + 1);
    if (!v.r.buf || !v.def_old || !v.def_new || !v.hdr_pk || !v.hdr_name) {
        error = pb_error_set(err, PB_ENOMEM, "changeset: out of memory");
        goto done;
    }
    for (;;) {
        uint64_t at = tell(&v.r);
        int rc = get_byte(&v, &c);
        if (rc < 0) {
            error = rc;
            goto done;
        }
        if (rc == 0)
            break;
        if (c == 'T' || c == 'P')
            error = read_header(&v, c, at);
        else
            error = read_change(&v, c, at);
        if (error < 0)
            goto done;
    }
    if (v.cur && v.group_changes == 0) {
        error = corrupt(&v, v.group_start, "table header without changes");
        goto done;
    }
    if (opts && opts->expect_bytes && tell(&v.r) != opts->expect_bytes) {
        error = pb_error_set(err, PB_ECORRUPT,
                             "changeset: byte %llu: stream ends, expected %llu bytes (%s)",
                             (unsigned long long)tell(&v.r), (unsigned long long)opts->expect_bytes,
                             tell(&v.r) < opts->expect_bytes ? "truncated" : "trailing data");
        goto done;
    }
    for (unsigned i = 0; opts && opts->table && i < v.nt; i++) {
        pb_changeset_table ct;
        ct.table = v.t[i].name;
        ct.columns = v.t[i].ncol;
        ct.pk = v.t[i].pk;
        ct.inserted = v.t[i].inserted;
        ct.updated = v.t[i].updated;
        ct.deleted = v.t[i].deleted;
        if (opts->table(&ct, opts->payload)) {
            error = pb_error_set(err, PB_ECANCELLED, "changeset: summary cancelled");
            goto done;
        }
    }
done:
    v.sum.bytes = tell(&v.r);
    v.sum.patchset = v.patchset > 0;
    if (out)
        *out = v.sum;
    for (unsigned i = 0; i < v.nt; i++) {
        free(v.t[i].name);
        free(v.t[i].pk);
    }
    free(v.t);
    free(v.r.buf);
    free(v.def_old);
    free(v.def_new);
    free(v.hdr_pk);
    free(v.hdr_name);
    return error;
}

static int file_read(void *payload, void *data, size_t cap, size_t *got, pb_error *err)
{
    FILE *f = payload;
    *got = fread(data, 1, cap, f);
    if (*got == 0 && ferror(f))
        return pb_error_errno(err, "changeset: read failed"); /* first error wins */
    return 0;
}

int pb_changeset_validate_file(pb_changeset_summary *out, FILE *f,
                               const pb_changeset_check_options *opts, pb_error *err)
{
    if (!f)
        return pb_error_set(err, PB_EINVALID, "changeset: no file");
    return pb_changeset_validate(out, file_read, f, opts, err);
}

typedef struct mem_input {
    const uint8_t *p;
    size_t n;
} mem_input;

static int mem_read(void *payload, void *data, size_t cap, size_t *got, pb_error *err)
{
    (void)err;
    mem_input *m = payload;
    size_t take = m->n < cap ? m->n : cap;
    if (take)
        memcpy(data, m->p, take);
    m->p += take;
    m->n -= take;
    *got = take;
    return 0;
}

int pb_changeset_validate_mem(pb_changeset_summary *out, const void *data, size_t n,
                              const pb_changeset_check_options *opts, pb_error *err)
{
    mem_input m = {data, n};
    if (!data && n)
        return pb_error_set(err, PB_EINVALID, "changeset: no data");
    return pb_changeset_validate(out, mem_read, &m, opts, err);
}
