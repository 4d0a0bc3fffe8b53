/*
 * schema.c: applies a Plex `.schema` dump (fixtures/plex-schema.sql) to an empty database,
 * skipping the objects SQLite creates itself (sqlite_* tables, virtual-table shadow tables).
 * Role: the fixture tool mkplex and the tests build Plex-shaped DBs with it (schema.h).
 * Prerequisites: the compatibility layer registered on the connection (icu_root, collating,
 * spellfix1), since the script creates objects that use them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema.h"

/* Suffixes of the shadow tables that virtual tables create (FTS3/4, FTS5, R*Tree, spellfix1). */
static const char *const shadow_suffixes[] = {
    "content", "segments", "segdir", "docsize", "stat",  "data", "idx",
    "config",  "node",     "rowid",  "parent",  "vocab", NULL,
};

typedef struct ddl {
    int is_create;
    int is_virtual;
    char kind[16];      /* TABLE, INDEX, TRIGGER, VIEW, ... (upper case as written) */
    char name[256];     /* object name, unquoted, without schema */
    char on_table[256]; /* for INDEX: the indexed table */
} ddl;

static const char *skip_space(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* Reads one identifier or keyword (bare, "q", 'q', `q` or [q]) into out; 0 when there is none. */
static int next_word(const char **pp, char *out, size_t cap)
{
    const char *p = skip_space(*pp);
    size_t n = 0;
    char close = 0;
    if (*p == '"' || *p == '\'' || *p == '`')
        close = *p;
    else if (*p == '[')
        close = ']';
    if (close) {
        p++;
        while (*p) {
            if (*p == close) {
                if (close != ']' && p[1] == close) {
                    p++;
                } else {
                    p++;
                    break;
                }
            }
            if (n + 1 < cap)
                out[n++] = *p;
            p++;
        }
    } else {
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
               *p == '_' || *p == '$' || (unsigned char)*p >= 0x80) {
            if (n + 1 < cap)
                out[n++] = *p;
            p++;
        }
        if (n == 0)
            return 0;
    }
    out[n] = '\0';
    *pp = p;
    return 1;
}

/* Reads a possibly schema-qualified name, keeping the last part. */
static int next_name(const char **pp, char *out, size_t cap)
{
    if (!next_word(pp, out, cap))
        return 0;
    const char *p = skip_space(*pp);
    if (*p == '.') {
        p++;
        if (!next_word(&p, out, cap))
            return 0;
        *pp = p;
    }
    return 1;
}

static void parse_ddl(const char *stmt, ddl *d)
{
    char w[256];
    const char *p = stmt;
    memset(d, 0, sizeof(*d));
    if (!next_word(&p, w, sizeof(w)) || strcasecmp(w, "CREATE") != 0)
        return;
    d->is_create = 1;
    while (next_word(&p, w, sizeof(w))) {
        if (strcasecmp(w, "TEMP") == 0 || strcasecmp(w, "TEMPORARY") == 0 ||
            strcasecmp(w, "UNIQUE") == 0)
            continue;
        if (strcasecmp(w, "VIRTUAL") == 0) {
            d->is_virtual = 1;
            continue;
        }
        break;
    }
    snprintf(d->kind, sizeof(d->kind), "%.15s", w);
    const char *save = p;
    if (next_word(&p, w, sizeof(w)) && strcasecmp(w, "IF") == 0) {
        next_word(&p, w, sizeof(w)); /* NOT */
        next_word(&p, w, sizeof(w)); /* EXISTS */
    } else {
        p = save;
    }
    if (!next_name(&p, d->name, sizeof(d->name)))
        return;
    if (strcasecmp(d->kind, "INDEX") == 0 && next_word(&p, w, sizeof(w)) &&
        strcasecmp(w, "ON") == 0)
        next_name(&p, d->on_table, sizeof(d->on_table));
}

/* Splits sql into complete statements; calls fn(stmt, ctx) for each (NUL-terminated copy). The
 * remainder after the last complete statement (comments) is passed too. Returns 0, fn's error,
 * or PB_ENOMEM. */
static int for_each_statement(const char *sql, int (*fn)(const char *, void *), void *ctx)
{
    const char *start = sql, *p = sql;
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (;; p++) {
        if (*p != ';' && *p != '\0')
            continue;
        size_t n = (size_t)(p - start) + (*p == ';');
        if (n + 1 > cap) {
            char *nb = realloc(buf, n + 1 + 256);
            if (!nb) {
                rc = PB_ENOMEM;
                break;
            }
            buf = nb;
            cap = n + 1 + 256;
        }
        memcpy(buf, start, n);
        buf[n] = '\0';
        if (*p == '\0' || sqlite3_complete(buf)) {
            if (*skip_space(buf) && (rc = fn(buf, ctx)) != 0)
                break;
            start = p + 1;
        }
        if (*p == '\0')
            break;
    }
    free(buf);
    return rc;
}

typedef struct apply_ctx {
    sqlite3 *db;
    pb_error *err;
    int pass;     /* 1: collect virtual tables, 2: execute */
    int n;        /* statement number (pass 2) */
    char **vtabs; /* names of the script's virtual tables */
    int nvtabs;
    char **deferred; /* index name, then statement, pairs */
    int ndeferred;
    int oom;
} apply_ctx;

static int push(char ***arr, int *n, const char *s)
{
    char **na = realloc(*arr, sizeof(char *) * (size_t)(*n + 1));
    if (!na)
        return -1;
    *arr = na;
    if (!(na[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

static int is_shadow(const apply_ctx *c, const char *name)
{
    for (int i = 0; i < c->nvtabs; i++) {
        size_t n = strlen(c->vtabs[i]);
        if (strncasecmp(name, c->vtabs[i], n) != 0 || name[n] != '_')
            continue;
        for (const char *const *s = shadow_suffixes; *s; s++)
            if (strcasecmp(name + n + 1, *s) == 0)
                return 1;
    }
    return 0;
}

static int exec_stmt(apply_ctx *c, const char *stmt)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, stmt, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        const char *s = skip_space(stmt);
        pb_error_setd(c->err, PB_ESQLITE, rc, "schema: statement %d failed: %s (%.80s)", c->n,
                      msg ? msg : sqlite3_errmsg(c->db), s);
        sqlite3_free(msg);
        return PB_ESQLITE;
    }
    return 0;
}

static int apply_one(const char *stmt, void *ctx)
{
    apply_ctx *c = ctx;
    ddl d;
    parse_ddl(stmt, &d);
    if (c->pass == 1) {
        if (d.is_create && d.is_virtual && d.name[0] && push(&c->vtabs, &c->nvtabs, d.name) != 0)
            return pb_error_set(c->err, PB_ENOMEM, "schema: out of memory");
        return 0;
    }
    c->n++;
    if (d.is_create && !d.is_virtual && strcasecmp(d.kind, "TABLE") == 0 &&
        (strncasecmp(d.name, "sqlite_", 7) == 0 || is_shadow(c, d.name)))
        return 0;
    if (d.is_create && strcasecmp(d.kind, "INDEX") == 0 && is_shadow(c, d.on_table)) {
        if (push(&c->deferred, &c->ndeferred, d.name) != 0 ||
            push(&c->deferred, &c->ndeferred, stmt) != 0)
            return pb_error_set(c->err, PB_ENOMEM, "schema: out of memory");
        return 0;
    }
    return exec_stmt(c, stmt);
}

static int index_exists(sqlite3 *db, const char *name, int *exists, pb_error *err)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT 1 FROM sqlite_master WHERE type='index' AND name=?1 COLLATE NOCASE", -1, &st,
        NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        *exists = rc == SQLITE_ROW;
        rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK)
        pb_error_setd(err, PB_ESQLITE, rc, "schema: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : PB_ESQLITE;
}

int pb_plex_schema_apply(sqlite3 *db, const char *sql, pb_error *err)
{
    apply_ctx c = {db, err, 1, 0, NULL, 0, NULL, 0, 0};
    int error = 0, in_tx = 0;

    if (!db || !sql)
        return pb_error_set(err, PB_EINVALID, "schema: no database or script");
    error = for_each_statement(sql, apply_one, &c);
    if (error) {
        pb_error_set(err, error, "schema: out of memory");
        goto done;
    }
    if (sqlite3_get_autocommit(db)) {
        int rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            error = pb_error_setd(err, PB_ESQLITE, rc, "schema: BEGIN: %s", sqlite3_errmsg(db));
            goto done;
        }
        in_tx = 1;
    }
    c.pass = 2;
    error = for_each_statement(sql, apply_one, &c);
    if (error) {
        pb_error_set(err, error, "schema: out of memory"); /* unless a statement failed */
        goto done;
    }
    for (int i = 0; i + 1 < c.ndeferred; i += 2) {
        int exists = 0;
        error = index_exists(db, c.deferred[i], &exists, err);
        if (error)
            goto done;
        if (!exists && (error = exec_stmt(&c, c.deferred[i + 1])) != 0)
            goto done;
    }
    if (in_tx) {
        int rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            error = pb_error_setd(err, PB_ESQLITE, rc, "schema: COMMIT: %s", sqlite3_errmsg(db));
            goto done;
        }
        in_tx = 0;
    }
done:
    if (in_tx)
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < c.nvtabs; i++)
        free(c.vtabs[i]);
    free(c.vtabs);
    for (int i = 0; i < c.ndeferred; i++)
        free(c.deferred[i]);
    free(c.deferred);
    return error;
}
