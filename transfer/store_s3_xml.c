/*
 * store_s3_xml.c: reads the XML bodies of S3 responses with expat, as the bytes arrive: the
 * root element's name, an <Error>'s Code and Message, InitiateMultipartUploadResult's UploadId
 * and ListBucketResult's IsTruncated, NextContinuationToken and Contents (Key, Size,
 * LastModified). Elements are matched by name and depth below the root, namespaces ignored (S3
 * puts its elements in one default namespace). Memory is bounded: leaf texts by S3_TOKEN_MAX,
 * a page's keys by S3_RESP_MAX; expat refuses entity expansion attacks by itself.
 * Also: XML escaping of the CompleteMultipartUpload body.
 * Role: part of the S3 store (store_s3_int.h). Prerequisites: libexpat.
 */
#include <errno.h>
#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store_s3_int.h"

#define S3_MAX_ENTRIES 100000 /* a page holds max-keys (<= 1000) entries */

static void set_bad(s3_xml *x, const char *why)
{
    if (!x->bad) {
        x->bad = 1;
        x->why = why;
    }
}

/* Copies the collected text into `out`; 0, or -1 when it did not fit. */
static int take(const s3_xml *x, char *out, size_t cap)
{
    size_t n = x->text.len;
    if (x->text_over || n >= cap)
        return -1;
    memcpy(out, x->text.ptr ? x->text.ptr : "", n);
    out[n] = '\0';
    return 0;
}

/* ISO 8601 "YYYY-MM-DDTHH:MM:SS[.fff]Z" to ns since the epoch; 0 when malformed or out of the
 * range a 64-bit count of ns holds (years 1970..2261). */
static int64_t iso8601_ns(const char *s)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6)
        return 0;
    if (y < 1970 || y > 2261 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 60)
        return 0;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    int64_t ns = (int64_t)timegm(&tm) * 1000000000;
    const char *f = s + used;
    if (*f == '.') {
        int64_t scale = 100000000;
        for (f++; *f >= '0' && *f <= '9'; f++, scale /= 10)
            ns += (*f - '0') * scale;
    }
    return ns;
}

/* The end of a <Contents>: one entry of the page, or the reason it is malformed. */
static void end_contents(s3_xml *x)
{
    x->in_contents = 0;
    if (x->contents_bad)
        return;
    if (!x->has_key || !x->has_size) {
        x->contents_bad = 1;
        return;
    }
    char *endp;
    errno = 0;
    unsigned long long sz = strtoull(x->size_s, &endp, 10);
    if (errno || endp == x->size_s || *endp || x->size_s[0] == '-') {
        x->contents_bad = 2;
        return;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? 2 * x->cap : 64;
        s3_entry *e = cap <= S3_MAX_ENTRIES ? realloc(x->entries, cap * sizeof(*e)) : NULL;
        if (!e) {
            set_bad(x, "too many entries");
            return;
        }
        x->entries = e;
        x->cap = cap;
    }
    s3_entry *e = &x->entries[x->n];
    e->size = (uint64_t)sz;
    e->mtime_ns = x->lm[0] ? iso8601_ns(x->lm) : 0;
    e->key_off = x->keys.len;
    if (pb_buf_put(&x->keys, x->key, strlen(x->key) + 1, NULL) < 0) {
        set_bad(x, "listing too large");
        return;
    }
    x->n++;
}

/* The end of a leaf inside <Contents>. */
static void end_in_contents(s3_xml *x, const char *name)
{
    if (strcmp(name, "Key") == 0) {
        if (take(x, x->key, sizeof(x->key)) != 0)
            x->contents_bad = 1;
        else
            x->has_key = 1;
    } else if (strcmp(name, "Size") == 0) {
        if (take(x, x->size_s, sizeof(x->size_s)) != 0)
            x->contents_bad = 2;
        else
            x->has_size = 1;
    } else if (strcmp(name, "LastModified") == 0) {
        if (take(x, x->lm, sizeof(x->lm)) != 0)
            x->lm[0] = '\0';
    }
}

/* The end of a child of the root element. */
static void end_child(s3_xml *x, const char *name)
{
    if (strcmp(x->root, "Error") == 0) {
        if (strcmp(name, "Code") == 0 && take(x, x->code, sizeof(x->code)) != 0)
            x->code[0] = '\0';
        else if (strcmp(name, "Message") == 0 && take(x, x->message, sizeof(x->message)) != 0)
            x->message[0] = '\0';
    } else if (strcmp(name, "UploadId") == 0) {
        if (take(x, x->upload_id, sizeof(x->upload_id)) != 0)
            set_bad(x, "UploadId too long");
    } else if (strcmp(name, "IsTruncated") == 0) {
        x->truncated = x->text.ptr && strcmp(x->text.ptr, "true") == 0;
    } else if (strcmp(name, "NextContinuationToken") == 0) {
        if (take(x, x->token, sizeof(x->token)) != 0)
            set_bad(x, "continuation token too long");
    } else if (strcmp(name, "Contents") == 0 && x->in_contents) {
        end_contents(x);
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    s3_xml *x = ud;
    x->depth++;
    if (x->depth == 1)
        snprintf(x->root, sizeof(x->root), "%s", name);
    if (x->depth == 2 && strcmp(name, "Contents") == 0 &&
        strcmp(x->root, "ListBucketResult") == 0) {
        x->in_contents = 1;
        x->has_key = x->has_size = 0;
        x->lm[0] = '\0';
    }
    pb_buf_clear(&x->text);
    x->text_over = 0;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    s3_xml *x = ud;
    if (x->depth == 2)
        end_child(x, name);
    else if (x->depth == 3 && x->in_contents)
        end_in_contents(x, name);
    x->depth--;
    pb_buf_clear(&x->text);
    x->text_over = 0;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    s3_xml *x = ud;
    if (!x->text_over && pb_buf_put(&x->text, s, (size_t)len, NULL) < 0)
        x->text_over = 1;
}

/* A fresh expat parser with our handlers. */
static int make_parser(s3_xml *x)
{
    XML_Parser p = XML_ParserCreate("UTF-8");
    if (!p)
        return -1;
    XML_SetUserData(p, x);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_text);
    x->parser = p;
    return 0;
}

void s3_xml_init(s3_xml *x)
{
    memset(x, 0, sizeof(*x));
    pb_buf_init(&x->text, S3_TOKEN_MAX);
    pb_buf_init(&x->keys, S3_RESP_MAX);
}

void s3_xml_reset(s3_xml *x)
{
    pb_buf text = x->text, keys = x->keys;
    s3_entry *entries = x->entries;
    size_t cap = x->cap;
    if (x->parser)
        XML_ParserFree(x->parser);
    memset(x, 0, sizeof(*x));
    pb_buf_clear(&text);
    pb_buf_clear(&keys);
    x->text = text;
    x->keys = keys;
    x->entries = entries;
    x->cap = cap;
}

void s3_xml_feed(s3_xml *x, const char *data, size_t n, int last)
{
    if (x->bad)
        return;
    if (!x->parser && make_parser(x) != 0) {
        set_bad(x, "out of memory");
        return;
    }
    if (XML_Parse(x->parser, data, (int)n, last) != XML_STATUS_OK)
        set_bad(x, XML_ErrorString(XML_GetErrorCode(x->parser)));
    else if (last && !x->root[0])
        set_bad(x, "no XML document");
}

void s3_xml_dispose(s3_xml *x)
{
    if (!x)
        return;
    if (x->parser)
        XML_ParserFree(x->parser);
    x->parser = NULL;
    pb_buf_dispose(&x->text);
    pb_buf_dispose(&x->keys);
    free(x->entries);
    x->entries = NULL;
    x->n = x->cap = 0;
}

int s3_xml_escape(pb_buf *b, const char *s, pb_error *err)
{
    int error = 0;
    for (; *s && error == 0; s++) {
        const char *e = *s == '&'   ? "&amp;"
                        : *s == '<' ? "&lt;"
                        : *s == '>' ? "&gt;"
                        : *s == '"' ? "&quot;"
                                    : NULL;
        error = e ? pb_buf_puts(b, e, err) : pb_buf_put(b, s, 1, err);
    }
    return error;
}
