/*
 * compat.c: the Plex-SQLite compatibility layer: the `icu_root` and `naturalsort` collations,
 * the FTS3/FTS4 tokenizer `collating` and a read-only `spellfix1` module, built on ICU.
 * Role: lets stock SQLite open, check and write real Plex DBs (include/plexburst/compat.h). The
 * same file is compiled twice: into libplexburst (pb_compat_register, pb_compat_open), and with
 * -DPB_COMPAT_EXTENSION as the loadable extension plexcompat.so (entry sqlite3_plexcompat_init,
 * for `sqlite3 -cmd '.load build/plexcompat'`). The shared core (compat_register_core) uses only
 * SQLite and ICU; the pb_error wrappers exist only in the library build.
 * Prerequisites: SQLite built with FTS3/4 (Debian's is), ICU 60 or newer. docs/compat.md says what
 * differs from Plex's own engine.
 */
#include <stdlib.h>
#include <string.h>

#ifdef PB_COMPAT_EXTENSION
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
#else
#include <errno.h>
#include <sys/stat.h>
#include <sqlite3.h>
#include "plexburst/compat.h"
#endif

#include <unicode/ubrk.h>
#include <unicode/ucol.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

/* ---------------------------------------------------------------------------------------------
 * The FTS3 tokenizer ABI (SQLite's fts3_tokenizer.h, which Debian does not install). Stable since
 * SQLite 3.6; iVersion 1 adds xLanguageid.
 */
typedef struct sqlite3_tokenizer_module sqlite3_tokenizer_module;
typedef struct sqlite3_tokenizer sqlite3_tokenizer;
typedef struct sqlite3_tokenizer_cursor sqlite3_tokenizer_cursor;

struct sqlite3_tokenizer_module {
    int iVersion;
    int (*xCreate)(int argc, const char *const *argv, sqlite3_tokenizer **ppTokenizer);
    int (*xDestroy)(sqlite3_tokenizer *pTokenizer);
    int (*xOpen)(sqlite3_tokenizer *pTokenizer, const char *pInput, int nBytes,
                 sqlite3_tokenizer_cursor **ppCursor);
    int (*xClose)(sqlite3_tokenizer_cursor *pCursor);
    int (*xNext)(sqlite3_tokenizer_cursor *pCursor, const char **ppToken, int *pnBytes,
                 int *piStartOffset, int *piEndOffset, int *piPosition);
    int (*xLanguageid)(sqlite3_tokenizer_cursor *pCsr, int iLangid);
};

struct sqlite3_tokenizer {
    const sqlite3_tokenizer_module *pModule;
};

struct sqlite3_tokenizer_cursor {
    sqlite3_tokenizer *pTokenizer;
};

/* ---------------------------------------------------------------------------------------------
 * Collations. Each connection gets its own collators (freed with the connection); a UCollator is
 * used only under the connection's mutex.
 */

static void collator_free(void *p)
{
    ucol_close((UCollator *)p);
}

/* icu_root: ICU's root collation (CLDR root = DUCET with CLDR tailoring), default attributes
 * (tertiary strength, non-ignorable), exactly what `ucol_open("")` gives. */
static int icu_root_cmp(void *ctx, int n1, const void *s1, int n2, const void *s2)
{
    UErrorCode st = U_ZERO_ERROR;
    UCollationResult r =
        ucol_strcollUTF8((UCollator *)ctx, (const char *)s1, n1, (const char *)s2, n2, &st);
    if (U_FAILURE(st)) { /* cannot happen for valid lengths; keep a total order anyway */
        int c = memcmp(s1, s2, (size_t)(n1 < n2 ? n1 : n2));
        return c ? c : (n1 > n2) - (n1 < n2);
    }
    return (int)r;
}

/*
 * naturalsort: the strings are cut into runs of ASCII digits and runs of anything else.
 * - two digit runs compare by value: leading zeros skipped, then the longer run is larger, then
 *   bytewise (any length, no integer conversion, so no overflow);
 * - two other runs compare with the root collator at SECONDARY strength: case-insensitive,
 *   accent-sensitive ("file" = "FILE", "e" < "é"), punctuation and spaces significant;
 * - a digit run sorts before a non-digit run; a string that is a run-prefix of the other first.
 * When all runs are equal (e.g. "File 007" vs "file 7"), the bytes decide (memcmp, then length),
 * so the order is total and two values are equal only when their bytes are.
 */
static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int naturalsort_cmp(void *ctx, int n1, const void *s1, int n2, const void *s2)
{
    const unsigned char *a = s1, *b = s2;
    int i = 0, j = 0;
    while (i < n1 && j < n2) {
        int da = is_digit(a[i]), db = is_digit(b[j]);
        int ei = i, ej = j;
        while (ei < n1 && is_digit(a[ei]) == da)
            ei++;
        while (ej < n2 && is_digit(b[ej]) == db)
            ej++;
        if (da != db)
            return da ? -1 : 1;
        if (da) {
            int zi = i, zj = j;
            while (zi < ei - 1 && a[zi] == '0')
                zi++;
            while (zj < ej - 1 && b[zj] == '0')
                zj++;
            int la = ei - zi, lb = ej - zj;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = memcmp(a + zi, b + zj, (size_t)la);
            if (c)
                return c < 0 ? -1 : 1;
        } else {
            UErrorCode st = U_ZERO_ERROR;
            UCollationResult r = ucol_strcollUTF8((UCollator *)ctx, (const char *)a + i, ei - i,
                                                  (const char *)b + j, ej - j, &st);
            if (U_SUCCESS(st) && r != UCOL_EQUAL)
                return (int)r;
        }
        i = ei;
        j = ej;
    }
    if (i < n1 || j < n2)
        return i < n1 ? 1 : -1;
    int c = memcmp(s1, s2, (size_t)(n1 < n2 ? n1 : n2));
    if (c)
        return c < 0 ? -1 : 1;
    return (n1 > n2) - (n1 < n2);
}

static int register_collation(sqlite3 *db, const char *name, UColAttributeValue strength,
                              int (*cmp)(void *, int, const void *, int, const void *), char **msg)
{
    UErrorCode st = U_ZERO_ERROR;
    UCollator *coll = ucol_open("", &st);
    if (U_FAILURE(st)) {
        *msg = sqlite3_mprintf("ICU root collator: %s", u_errorName(st));
        return SQLITE_ERROR;
    }
    if (strength != UCOL_DEFAULT)
        ucol_setStrength(coll, strength);
    /* Unlike other SQLite interfaces, a failed create_collation_v2 does not call the
     * destructor: free the collator here. */
    int rc = sqlite3_create_collation_v2(db, name, SQLITE_UTF8, coll, cmp, collator_free);
    if (rc != SQLITE_OK) {
        *msg = sqlite3_mprintf("collation %s: %s", name, sqlite3_errmsg(db));
        ucol_close(coll);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The `collating` tokenizer. Argument: "<locale>[@key=value;...]" with ICU's collation keywords;
 * Plex uses 'root@colStrength=primary;colAlternate=shifted'.
 *
 * Words come from ICU's word break iterator (UAX #29) over UTF-16; segments with rule status
 * UBRK_WORD_NONE (spaces, punctuation) are skipped. A token is the word's ICU sort key at the
 * collator's settings, without its 0x00 terminator: two words get the same token exactly when the
 * collator says they are equal, so at primary strength case, accents and (with colAlternate=
 * shifted) punctuation inside a word do not matter ("Amélie" = "AMELIE" = "amelie"). Query
 * strings go through the same tokenizer, so they match. Primary-only sort keys of a string's
 * prefix are byte prefixes of its key (ICU writes no primary-compression terminator at the end
 * of a level), so FTS prefix queries like `amé*` work. Tokens are opaque bytes, not text.
 */

typedef struct coll_tokenizer {
    sqlite3_tokenizer base;
    UCollator *coll;
    UBreakIterator *brk; /* template, cloned per cursor */
} coll_tokenizer;

typedef struct coll_cursor {
    sqlite3_tokenizer_cursor base;
    UBreakIterator *brk;
    UChar *text;    /* the input as UTF-16 */
    int32_t *u8off; /* UTF-8 byte offset of each UTF-16 unit, plus the end */
    int32_t len;    /* UTF-16 units */
    int32_t start;  /* current boundary */
    int position;   /* next token position */
    uint8_t *key;   /* token buffer */
    int32_t key_cap;
} coll_cursor;

typedef struct attr_keyword {
    const char *key;
    UColAttribute attr;
} attr_keyword;

static const attr_keyword attr_keywords[] = {
    {"colStrength", UCOL_STRENGTH},          {"colAlternate", UCOL_ALTERNATE_HANDLING},
    {"colBackwards", UCOL_FRENCH_COLLATION}, {"colCaseLevel", UCOL_CASE_LEVEL},
    {"colCaseFirst", UCOL_CASE_FIRST},       {"colNormalization", UCOL_NORMALIZATION_MODE},
    {"colNumeric", UCOL_NUMERIC_COLLATION},
};

typedef struct attr_value {
    const char *name;
    UColAttributeValue value;
} attr_value;

static const attr_value attr_values[] = {
    {"primary", UCOL_PRIMARY},
    {"secondary", UCOL_SECONDARY},
    {"tertiary", UCOL_TERTIARY},
    {"quaternary", UCOL_QUATERNARY},
    {"identical", UCOL_IDENTICAL},
    {"level1", UCOL_PRIMARY},
    {"level2", UCOL_SECONDARY},
    {"level3", UCOL_TERTIARY},
    {"level4", UCOL_QUATERNARY},
    {"shifted", UCOL_SHIFTED},
    {"non-ignorable", UCOL_NON_IGNORABLE},
    {"noignore", UCOL_NON_IGNORABLE},
    {"on", UCOL_ON},
    {"off", UCOL_OFF},
    {"yes", UCOL_ON},
    {"no", UCOL_OFF},
    {"true", UCOL_ON},
    {"false", UCOL_OFF},
    {"upper", UCOL_UPPER_FIRST},
    {"lower", UCOL_LOWER_FIRST},
};

/* Applies "key=value;key=value" to coll; returns 0 or -1 for an unknown key or value. */
static int apply_keywords(UCollator *coll, const char *kw)
{
    while (*kw) {
        const char *end = strchr(kw, ';');
        size_t n = end ? (size_t)(end - kw) : strlen(kw);
        const char *eq = memchr(kw, '=', n);
        if (n > 0) {
            if (!eq)
                return -1;
            size_t kn = (size_t)(eq - kw), vn = n - kn - 1;
            const attr_keyword *k = NULL;
            const attr_value *v = NULL;
            for (size_t i = 0; i < sizeof(attr_keywords) / sizeof(*attr_keywords); i++)
                if (strlen(attr_keywords[i].key) == kn &&
                    sqlite3_strnicmp(attr_keywords[i].key, kw, (int)kn) == 0)
                    k = &attr_keywords[i];
            for (size_t i = 0; i < sizeof(attr_values) / sizeof(*attr_values); i++)
                if (strlen(attr_values[i].name) == vn &&
                    sqlite3_strnicmp(attr_values[i].name, eq + 1, (int)vn) == 0)
                    v = &attr_values[i];
            if (!k || !v)
                return -1;
            UErrorCode st = U_ZERO_ERROR;
            ucol_setAttribute(coll, k->attr, v->value, &st);
            if (U_FAILURE(st))
                return -1;
        }
        kw += n + (end ? 1 : 0);
    }
    return 0;
}

static int tok_destroy(sqlite3_tokenizer *p)
{
    coll_tokenizer *t = (coll_tokenizer *)p;
    if (t) {
        ubrk_close(t->brk);
        ucol_close(t->coll);
        sqlite3_free(t);
    }
    return SQLITE_OK;
}

static int tok_create(int argc, const char *const *argv, sqlite3_tokenizer **out)
{
    char locale[96] = "";
    const char *spec = argc > 0 && argv[0] ? argv[0] : "root";
    const char *at = strchr(spec, '@');
    size_t n = at ? (size_t)(at - spec) : strlen(spec);
    UErrorCode st = U_ZERO_ERROR;
    coll_tokenizer *t = NULL;

    *out = NULL;
    if (n >= sizeof(locale))
        return SQLITE_ERROR;
    memcpy(locale, spec, n);
    locale[n] = '\0';
    if (strcmp(locale, "root") == 0)
        locale[0] = '\0'; /* ICU's name for root is "" */
    t = sqlite3_malloc(sizeof(*t));
    if (!t)
        return SQLITE_NOMEM;
    memset(t, 0, sizeof(*t));
    t->coll = ucol_open(locale, &st);
    if (U_FAILURE(st) || (at && apply_keywords(t->coll, at + 1) != 0))
        goto fail;
    st = U_ZERO_ERROR;
    t->brk = ubrk_open(UBRK_WORD, locale, NULL, 0, &st);
    if (U_FAILURE(st))
        goto fail;
    *out = &t->base;
    return SQLITE_OK;
fail:
    tok_destroy(&t->base);
    return SQLITE_ERROR;
}

static int tok_close(sqlite3_tokenizer_cursor *p)
{
    coll_cursor *c = (coll_cursor *)p;
    if (c) {
        ubrk_close(c->brk);
        sqlite3_free(c->text);
        sqlite3_free(c->u8off);
        sqlite3_free(c->key);
        sqlite3_free(c);
    }
    return SQLITE_OK;
}

static int tok_open(sqlite3_tokenizer *p, const char *in, int nbytes,
                    sqlite3_tokenizer_cursor **out)
{
    coll_tokenizer *t = (coll_tokenizer *)p;
    coll_cursor *c = NULL;
    UErrorCode st = U_ZERO_ERROR;
    int32_t i = 0, n;

    *out = NULL;
    if (!in)
        nbytes = 0;
    else if (nbytes < 0)
        nbytes = (int)strlen(in);
    c = sqlite3_malloc(sizeof(*c));
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    /* A UTF-8 string never has more UTF-16 units than bytes. */
    c->text = sqlite3_malloc64(((sqlite3_uint64)nbytes + 1) * sizeof(UChar));
    c->u8off = sqlite3_malloc64(((sqlite3_uint64)nbytes + 1) * sizeof(int32_t));
    if (!c->text || !c->u8off)
        goto nomem;
    n = 0;
    while (i < nbytes) {
        int32_t at = i;
        UChar32 ch;
        U8_NEXT((const uint8_t *)in, i, nbytes, ch);
        if (ch < 0)
            ch = 0xFFFD; /* ill-formed UTF-8 */
        c->u8off[n] = at;
        if (U_IS_BMP(ch)) {
            c->text[n++] = (UChar)ch;
        } else {
            c->text[n++] = U16_LEAD(ch);
            c->u8off[n] = at;
            c->text[n++] = U16_TRAIL(ch);
        }
    }
    c->u8off[n] = nbytes;
    c->len = n;
#if U_ICU_VERSION_MAJOR_NUM >= 69
    c->brk = ubrk_clone(t->brk, &st);
#else
    c->brk = ubrk_safeClone(t->brk, NULL, NULL, &st);
#endif
    if (U_FAILURE(st))
        goto fail;
    ubrk_setText(c->brk, c->text, c->len, &st);
    if (U_FAILURE(st))
        goto fail;
    c->start = ubrk_first(c->brk);
    *out = &c->base;
    return SQLITE_OK;
nomem:
    tok_close(&c->base);
    return SQLITE_NOMEM;
fail:
    tok_close(&c->base);
    return SQLITE_ERROR;
}

static int tok_next(sqlite3_tokenizer_cursor *p, const char **token, int *nbytes, int *start,
                    int *end, int *position)
{
    coll_cursor *c = (coll_cursor *)p;
    coll_tokenizer *t = (coll_tokenizer *)c->base.pTokenizer;
    for (;;) {
        int32_t s = c->start, e = ubrk_next(c->brk);
        if (e == UBRK_DONE)
            return SQLITE_DONE;
        c->start = e;
        if (ubrk_getRuleStatus(c->brk) < UBRK_WORD_NONE_LIMIT)
            continue; /* spaces, punctuation */
        int32_t need = ucol_getSortKey(t->coll, c->text + s, e - s, c->key, c->key_cap);
        if (need > c->key_cap) {
            uint8_t *k = sqlite3_realloc(c->key, need + 32);
            if (!k)
                return SQLITE_NOMEM;
            c->key = k;
            c->key_cap = need + 32;
            need = ucol_getSortKey(t->coll, c->text + s, e - s, c->key, c->key_cap);
        }
        if (need <= 1)
            continue; /* only ignorable characters: no token */
        *token = (const char *)c->key;
        *nbytes = need - 1; /* without the 0x00 terminator */
        *start = c->u8off[s];
        *end = c->u8off[e];
        *position = c->position++;
        return SQLITE_OK;
    }
}

static const sqlite3_tokenizer_module collating_module = {
    0, tok_create, tok_destroy, tok_open, tok_close, tok_next, NULL,
};

/* Registers through fts3_tokenizer(name, pointer), which needs ENABLE_FTS3_TOKENIZER for the
 * 2-argument form; the previous setting is restored afterwards. */
static int register_tokenizer(sqlite3 *db, char **msg)
{
    const sqlite3_tokenizer_module *mod = &collating_module;
    sqlite3_stmt *stmt = NULL;
    int prev = 0, rc;

    /* Already registered (a second pb_compat_register, or the extension loaded twice)?
     * fts3_tokenizer() refuses to re-insert the same pointer, with a misleading "out of memory". */
    if (sqlite3_prepare_v2(db, "SELECT fts3_tokenizer(?1)", -1, &stmt, NULL) == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, "collating", -1, SQLITE_STATIC);
        int same = sqlite3_step(stmt) == SQLITE_ROW &&
                   sqlite3_column_bytes(stmt, 0) == sizeof(mod) &&
                   memcmp(sqlite3_column_blob(stmt, 0), &mod, sizeof(mod)) == 0;
        sqlite3_finalize(stmt);
        stmt = NULL;
        if (same)
            return SQLITE_OK;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, -1, &prev);
    if (!prev)
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 1, (int *)0);
    rc = sqlite3_prepare_v2(db, "SELECT fts3_tokenizer(?1, ?2)", -1, &stmt, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, "collating", -1, SQLITE_STATIC);
        sqlite3_bind_blob(stmt, 2, &mod, sizeof(mod), SQLITE_TRANSIENT);
        rc = sqlite3_step(stmt);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
    }
    if (rc != SQLITE_OK)
        *msg = sqlite3_mprintf("tokenizer collating: %s", sqlite3_errmsg(db));
    sqlite3_finalize(stmt);
    if (!prev)
        sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, (int *)0);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * spellfix1, read-only: the real column set and shadow table `<name>_vocab` (DDL byte-identical
 * to SQLite's ext/misc/spellfix.c), a full scan of the vocabulary (distance, score, matchlen and
 * the hidden columns are NULL), no fuzzy search, and writes refused. plexburst never writes them;
 * Plex rebuilds them itself.
 */

typedef struct spellfix_vtab {
    sqlite3_vtab base;
    sqlite3 *db;
    char *schema;
    char *name;
} spellfix_vtab;

typedef struct spellfix_cursor {
    sqlite3_vtab_cursor base;
    sqlite3_stmt *scan; /* word, rank, NULL, langid, id */
    int eof;
} spellfix_cursor;

static int spellfix_disconnect(sqlite3_vtab *p)
{
    spellfix_vtab *v = (spellfix_vtab *)p;
    sqlite3_free(v->schema);
    sqlite3_free(v->name);
    sqlite3_free(v);
    return SQLITE_OK;
}

static int spellfix_exec(sqlite3 *db, char **err, const char *fmt, const char *schema,
                         const char *name)
{
    char *sql = sqlite3_mprintf(fmt, schema, name, name);
    if (!sql)
        return SQLITE_NOMEM;
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        *err = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    sqlite3_free(sql);
    return rc;
}

static int spellfix_init(sqlite3 *db, int argc, const char *const *argv, sqlite3_vtab **out,
                         char **err, int create)
{
    spellfix_vtab *v = NULL;
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(word,rank,distance,langid,score,matchlen,"
                                      "phonehash HIDDEN,top HIDDEN,scope HIDDEN,srchcnt HIDDEN,"
                                      "soundslike HIDDEN,command HIDDEN)");
    *out = NULL;
    if (rc != SQLITE_OK)
        return rc;
    if (create) {
        rc = spellfix_exec(db, err,
                           "CREATE TABLE IF NOT EXISTS \"%w\".\"%w_vocab\"(\n"
                           "  id INTEGER PRIMARY KEY,\n"
                           "  rank INT,\n"
                           "  langid INT,\n"
                           "  word TEXT,\n"
                           "  k1 TEXT,\n"
                           "  k2 TEXT\n"
                           ");\n",
                           argv[1], argv[2]);
        if (rc == SQLITE_OK)
            rc = spellfix_exec(db, err,
                               "CREATE INDEX IF NOT EXISTS \"%w\".\"%w_vocab_index_langid_k2\" "
                               "ON \"%w_vocab\"(langid,k2);",
                               argv[1], argv[2]);
        if (rc != SQLITE_OK)
            return rc;
    }
    v = sqlite3_malloc(sizeof(*v));
    if (!v)
        return SQLITE_NOMEM;
    memset(v, 0, sizeof(*v));
    v->db = db;
    v->schema = sqlite3_mprintf("%s", argv[1]);
    v->name = sqlite3_mprintf("%s", argv[2]);
    if (!v->schema || !v->name) {
        spellfix_disconnect(&v->base);
        return SQLITE_NOMEM;
    }
    *out = &v->base;
    return SQLITE_OK;
}

static int spellfix_create(sqlite3 *db, void *aux, int argc, const char *const *argv,
                           sqlite3_vtab **out, char **err)
{
    return spellfix_init(db, argc, argv, out, err, 1);
}

static int spellfix_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                            sqlite3_vtab **out, char **err)
{
    return spellfix_init(db, argc, argv, out, err, 0);
}

static int spellfix_destroy(sqlite3_vtab *p)
{
    spellfix_vtab *v = (spellfix_vtab *)p;
    char *err = NULL;
    int rc =
        spellfix_exec(v->db, &err, "DROP TABLE IF EXISTS \"%w\".\"%w_vocab\"", v->schema, v->name);
    if (rc != SQLITE_OK) {
        sqlite3_free(p->zErrMsg);
        p->zErrMsg = err;
        return rc;
    }
    return spellfix_disconnect(p);
}

static int spellfix_best_index(sqlite3_vtab *p, sqlite3_index_info *info)
{
    info->estimatedCost = 1e6; /* a full scan; constraints are checked by SQLite */
    return SQLITE_OK;
}

static int spellfix_open(sqlite3_vtab *p, sqlite3_vtab_cursor **out)
{
    spellfix_cursor *c = sqlite3_malloc(sizeof(*c));
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof(*c));
    c->eof = 1;
    *out = &c->base;
    return SQLITE_OK;
}

static int spellfix_close(sqlite3_vtab_cursor *p)
{
    spellfix_cursor *c = (spellfix_cursor *)p;
    sqlite3_finalize(c->scan);
    sqlite3_free(c);
    return SQLITE_OK;
}

static int spellfix_step(spellfix_cursor *c)
{
    int rc = sqlite3_step(c->scan);
    c->eof = rc != SQLITE_ROW;
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return SQLITE_OK;
    spellfix_vtab *v = (spellfix_vtab *)c->base.pVtab;
    sqlite3_free(v->base.zErrMsg);
    v->base.zErrMsg = sqlite3_mprintf("%s", sqlite3_errmsg(v->db));
    return rc;
}

static int spellfix_filter(sqlite3_vtab_cursor *p, int idx, const char *idxstr, int argc,
                           sqlite3_value **argv)
{
    spellfix_cursor *c = (spellfix_cursor *)p;
    spellfix_vtab *v = (spellfix_vtab *)p->pVtab;
    if (!c->scan) {
        char *sql = sqlite3_mprintf("SELECT word, rank, NULL, langid, id FROM \"%w\".\"%w_vocab\"",
                                    v->schema, v->name);
        if (!sql)
            return SQLITE_NOMEM;
        int rc = sqlite3_prepare_v2(v->db, sql, -1, &c->scan, NULL);
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            sqlite3_free(v->base.zErrMsg);
            v->base.zErrMsg = sqlite3_mprintf("%s", sqlite3_errmsg(v->db));
            return rc;
        }
    } else {
        sqlite3_reset(c->scan);
    }
    return spellfix_step(c);
}

static int spellfix_next(sqlite3_vtab_cursor *p)
{
    return spellfix_step((spellfix_cursor *)p);
}

static int spellfix_eof(sqlite3_vtab_cursor *p)
{
    return ((spellfix_cursor *)p)->eof;
}

static int spellfix_column(sqlite3_vtab_cursor *p, sqlite3_context *ctx, int i)
{
    spellfix_cursor *c = (spellfix_cursor *)p;
    if (i <= 3) /* word, rank, distance (NULL), langid */
        sqlite3_result_value(ctx, sqlite3_column_value(c->scan, i));
    else
        sqlite3_result_null(ctx);
    return SQLITE_OK;
}

static int spellfix_rowid(sqlite3_vtab_cursor *p, sqlite_int64 *rowid)
{
    *rowid = sqlite3_column_int64(((spellfix_cursor *)p)->scan, 4);
    return SQLITE_OK;
}

static int spellfix_update(sqlite3_vtab *p, int argc, sqlite3_value **argv, sqlite_int64 *rowid)
{
    sqlite3_free(p->zErrMsg);
    p->zErrMsg = sqlite3_mprintf("spellfix1 tables are read-only in plexburst");
    return SQLITE_ERROR;
}

static const sqlite3_module spellfix_module = {
    .iVersion = 0,
    .xCreate = spellfix_create,
    .xConnect = spellfix_connect,
    .xBestIndex = spellfix_best_index,
    .xDisconnect = spellfix_disconnect,
    .xDestroy = spellfix_destroy,
    .xOpen = spellfix_open,
    .xClose = spellfix_close,
    .xFilter = spellfix_filter,
    .xNext = spellfix_next,
    .xEof = spellfix_eof,
    .xColumn = spellfix_column,
    .xRowid = spellfix_rowid,
    .xUpdate = spellfix_update,
};

/* ---------------------------------------------------------------------------------------------
 * The shared core: registers everything on db. Returns a SQLite code; on failure *msg holds a
 * sqlite3_malloc'ed one-line message.
 */
static int compat_register_core(sqlite3 *db, char **msg)
{
    int rc;
    *msg = NULL;
    rc = register_collation(db, "icu_root", UCOL_DEFAULT, icu_root_cmp, msg);
    if (rc == SQLITE_OK)
        rc = register_collation(db, "naturalsort", UCOL_SECONDARY, naturalsort_cmp, msg);
    if (rc == SQLITE_OK)
        rc = register_tokenizer(db, msg);
    if (rc == SQLITE_OK) {
        rc = sqlite3_create_module_v2(db, "spellfix1", &spellfix_module, NULL, NULL);
        if (rc != SQLITE_OK)
            *msg = sqlite3_mprintf("module spellfix1: %s", sqlite3_errmsg(db));
    }
    return rc;
}

#ifdef PB_COMPAT_EXTENSION

/* Entry point for sqlite3_load_extension / the shell's `.load plexcompat`. */
extern __attribute__((visibility("default"))) int
sqlite3_plexcompat_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi);

int sqlite3_plexcompat_init(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
    SQLITE_EXTENSION_INIT2(pApi);
    char *msg = NULL;
    int rc = compat_register_core(db, &msg);
    if (rc != SQLITE_OK && pzErrMsg)
        *pzErrMsg = msg;
    else
        sqlite3_free(msg);
    return rc;
}

#else /* the library */

int pb_compat_register(sqlite3 *db, pb_error *err)
{
    char *msg = NULL;
    if (!db)
        return pb_error_set(err, PB_EINVALID, "compat: no connection");
    int rc = compat_register_core(db, &msg);
    if (rc != SQLITE_OK) {
        pb_error_setd(err, PB_ESQLITE, rc, "compat: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return PB_ESQLITE;
    }
    return 0;
}

int pb_compat_open(sqlite3 **out, const char *path, int flags, pb_error *err)
{
    sqlite3 *db = NULL;
    int error = 0, rc, oflags;
    struct stat st;

    if (out)
        *out = NULL;
    if (!out || !path || !*path)
        return pb_error_set(err, PB_EINVALID, "compat: no database path");
    if ((flags & PB_OPEN_READONLY) && (flags & PB_OPEN_CREATE))
        return pb_error_set(err, PB_EINVALID, "compat: cannot create %s read-only", path);
    if (!(flags & PB_OPEN_CREATE) && strcmp(path, ":memory:") != 0 &&
        strncmp(path, "file:", 5) != 0 && stat(path, &st) != 0) {
        if (errno == ENOENT)
            return pb_error_set(err, PB_ENOTFOUND, "compat: cannot open %s: no such file", path);
        return pb_error_errno(err, "compat: cannot open %s", path);
    }
    oflags = (flags & PB_OPEN_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (flags & PB_OPEN_CREATE)
        oflags |= SQLITE_OPEN_CREATE;
    oflags |= SQLITE_OPEN_URI;
    if (flags & PB_OPEN_NOMUTEX)
        oflags |= SQLITE_OPEN_NOMUTEX;
    rc = sqlite3_open_v2(path, &db, oflags, NULL);
    if (rc != SQLITE_OK) {
        error = pb_error_setd(err, PB_ESQLITE, rc, "compat: cannot open %s: %s", path,
                              db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto done;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, PB_COMPAT_BUSY_MS);
    error = pb_compat_register(db, err);
    if (error)
        goto done;
    rc = sqlite3_exec(db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        error = pb_error_setd(err, PB_ESQLITE, rc, "compat: cannot open %s: %s", path,
                              sqlite3_errmsg(db));
        goto done;
    }
    *out = db;
    db = NULL;
done:
    sqlite3_close(db);
    return error;
}

int pb_compat_open_reader(sqlite3 **out, const char *path, void *payload, pb_error *err)
{
    (void)payload;
    return pb_compat_open(out, path, PB_OPEN_READONLY | PB_OPEN_NOMUTEX, err);
}

#endif
