/*
 * plexburst/sqldiff.h: generic row diff of two SQLite databases into a changeset in SQLite's
 * session format, the whole-DB logical checksum, and a strict changeset validator.
 *
 * Role: the row-delta primitives of the sync engine. This module knows nothing of Plex: the
 * engine decides which tables take part (the `include` filter) and guards the schemas first.
 * Prerequisites: SQLite with the session extension (only for consumers of the changesets), and
 * databases in UTF-8. Every function streams: memory does not grow with the size of a database
 * or of a changeset (it is bounded by fixed buffers plus the largest single row).
 *
 * Ownership: no function keeps a pointer to its arguments after it returns; pointers handed to
 * callbacks (table names, stats) are valid during the callback only.
 */
#ifndef PLEXBURST_SQLDIFF_H
#define PLEXBURST_SQLDIFF_H

#include <stdint.h>
#include <stdio.h>
#include "plexburst/errors.h"
#include "plexburst/io.h"

typedef struct sqlite3 sqlite3;

/** The largest piece handed to an output sink, and the size of the streaming buffers. */
#define PB_SQLDIFF_CHUNK 65536

/**
 * A pb_sink_fn writing to the `FILE *` given as payload (PB_EIO on a short write). The producers
 * of this module hand a sink pieces of 1..PB_SQLDIFF_CHUNK bytes; a sink returning a negative
 * PB_E* code stops the producer, which returns that code (any other non-zero value stops it
 * with PB_ECANCELLED).
 */
PB_EXTERN(int) pb_sqldiff_write_file(void *file, const void *data, size_t n, pb_error *err);

/**
 * Opens the DB at `path` for reading by one thread: the hook through which a caller registers
 * what the DB's schema needs (collations, virtual table modules) on the connection before it is
 * read. Return 0 with `*out` set (closed by the caller with sqlite3_close()), or a negative PB_E*
 * (PB_ENOTFOUND when the file does not exist) with detail in `err`.
 */
typedef int (*pb_sqldiff_open_fn)(sqlite3 **out, const char *path, void *payload, pb_error *err);

/**
 * The default opener: sqlite3_open_v2() read-only, without a per-call mutex, with a busy timeout
 * of PB_SQLDIFF_BUSY_MS. `payload` is unused.
 * @return 0, PB_ENOTFOUND when `path` does not exist, PB_ESQLITE.
 */
PB_EXTERN(int)
pb_sqldiff_open_default(sqlite3 **out, const char *path, void *payload, pb_error *err);

#define PB_SQLDIFF_BUSY_MS 30000

/* ---------------------------------------------------------------------------------------- */
/* Row diff                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/** Per-table result of a diff, handed to pb_diff_options.table_done after each table. */
typedef struct pb_diff_table_stats {
    const char *table;    /* table name, valid during the callback only */
    unsigned columns;     /* columns in the changeset (generated columns are not part of it) */
    int has_pk;           /* 1: keyed by its PRIMARY KEY; 0: a row multiset keyed by all columns */
    uint64_t rows_base;   /* rows read from the base DB */
    uint64_t rows_target; /* rows read from the target DB */
    uint64_t inserted;    /* INSERT records emitted */
    uint64_t updated;     /* UPDATE records emitted */
    uint64_t deleted;     /* DELETE records emitted */
    uint64_t bytes;       /* changeset bytes of this table, header included (0 if unchanged) */
} pb_diff_table_stats;

/** Per-table result of a checksum, handed to pb_diff_options.table_checksum. */
typedef struct pb_table_checksum {
    const char *table; /* table name, valid during the callback only */
    unsigned columns;  /* columns hashed */
    uint64_t rows;     /* rows in the table */
    uint8_t sum[16];   /* sum of the row hashes mod 2^128, big-endian */
} pb_table_checksum;

/* pb_diff_options.flags */
#define PB_DIFF_SINGLE_THREAD 0x1 /* read both DBs on the calling thread (default: 1 reader) */
#define PB_DIFF_PATCHSET      0x2 /* emit a patchset ('P' headers, no old values) */

typedef struct pb_diff_options {
    unsigned version; /* PB_DIFF_OPTIONS_VERSION */
    /**
     * Table filter: called once for every candidate table (internal `sqlite_*` tables, virtual
     * tables and their shadow tables are never candidates); return non-zero to include it.
     * NULL includes every candidate.
     */
    int (*include)(const char *table, void *payload);
    void *include_payload;
    /** Diff only: called after each table; a non-zero return cancels (PB_ECANCELLED). */
    int (*table_done)(const pb_diff_table_stats *stats, void *payload);
    /** Checksum only: called after each table; a non-zero return cancels (PB_ECANCELLED). */
    int (*table_checksum)(const pb_table_checksum *sum, void *payload);
    void *table_payload; /* payload of table_done and table_checksum */
    unsigned flags;      /* PB_DIFF_* */
    /** Version 2: opens each DB (NULL: pb_sqldiff_open_default); `open_payload` is its payload. */
    pb_sqldiff_open_fn open;
    void *open_payload;
    /**
     * Version 3, checksum only: called for each table before it is read. Returning 1 with
     * `*rows` and `sum` set (as a table_checksum callback reported them for a DB whose table
     * holds the same rows: pb_sqldiff_same_pages) makes the checksum take them instead of
     * reading the table; 0 reads it. NULL reads every table.
     */
    int (*reuse)(const char *table, uint64_t *rows, uint8_t sum[16], void *payload);
    void *reuse_payload;
} pb_diff_options;

/* Version 2 added open, version 3 reuse; older structures (without them) are still accepted. */
#define PB_DIFF_OPTIONS_VERSION 3
#define PB_DIFF_OPTIONS_INIT                                                                       \
    {                                                                                              \
        PB_DIFF_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL           \
    }

/** Sets `*opts` to PB_DIFF_OPTIONS_INIT. */
PB_EXTERN(void) pb_diff_options_init(pb_diff_options *opts);

/** Totals of a diff. */
typedef struct pb_diff_stats {
    uint64_t rows_base;         /* rows read from the base DB */
    uint64_t rows_target;       /* rows read from the target DB */
    uint64_t rows_compared;     /* row pairs matched by key and compared column by column */
    uint64_t inserted;          /* INSERT records */
    uint64_t updated;           /* UPDATE records */
    uint64_t deleted;           /* DELETE records */
    uint64_t bytes;             /* bytes handed to the output callback */
    unsigned tables;            /* tables diffed */
    unsigned tables_changed;    /* tables with at least one record */
    unsigned tables_without_pk; /* tables diffed as row multisets (no PK, or NULL in the PK) */
    unsigned tables_skipped;    /* internal, virtual and shadow tables, and tables filtered out */
} pb_diff_stats;

/**
 * Diffs two databases of the same schema: streams to `out` the changeset that turns the rows of
 * `base_path` into those of `target_path`, in SQLite's session CHANGESET format (readable by
 * sqlite3changeset_start(); see sqldiff/diff.c for the exact contract). Tables are visited in
 * name order (bytewise); a table without changes emits nothing, so identical DBs give zero bytes.
 *
 * Rows are matched by PRIMARY KEY with SQLite's own ordering (NULL < numbers < text < blob,
 * text and blobs bytewise). A value counts as changed when its storage class or its bytes
 * differ: 0.0 vs -0.0 and 1 vs 1.0 are changes here, while sqlite3session_diff() ignores them.
 * Tables without a PRIMARY KEY (or with a NULL in a nullable PK column) are diffed as row
 * multisets: the 'T' header flags every column as PK and only INSERT and DELETE records are
 * emitted, one per surplus copy of a row, all DELETEs of the table before its INSERTs (so that
 * an applier removing one identical row per DELETE and adding one per INSERT, in stream order,
 * never trips over a UNIQUE constraint); sqlite3changeset_apply() skips such tables (their PK
 * bytes do not match the table), so they need that applier.
 *
 * Both DBs are opened read-only through `opts->open` (default pb_sqldiff_open_default()), each in
 * one read transaction (a consistent snapshot); the target is read by a reader thread
 * (PB_DIFF_SINGLE_THREAD: none) while the calling thread reads the base and merges. Memory is
 * bounded (about 5 MB with SQLite's page caches), whatever the size of the DBs or of the
 * changeset.
 * @param stats        OUT, optional: totals, filled also on failure (what was done so far).
 * @param opts         optional; NULL means PB_DIFF_OPTIONS_INIT.
 * @param out          receives the changeset in pieces of at most PB_SQLDIFF_CHUNK bytes.
 * @return 0; PB_ESCHEMA when a table exists on one side only or its columns or primary key
 *         differ (checked for all tables before any output); PB_EINVALID for non-UTF-8 DBs;
 *         PB_ENOTFOUND, PB_ESQLITE, PB_ENOMEM, PB_ECANCELLED, or the output callback's code.
 */
PB_EXTERN(int)
pb_sqldiff_diff(pb_diff_stats *stats, const char *base_path, const char *target_path,
                const pb_diff_options *opts, pb_sink_fn out, void *out_payload, pb_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Logical checksum                                                                          */
/* ---------------------------------------------------------------------------------------- */

/** A whole-DB logical checksum (caller-allocated; nothing to free). */
typedef struct pb_checksum {
    uint8_t digest[16]; /* XXH3-128 over the sorted per-table (name, columns, count, sum) list */
    uint64_t rows;      /* rows hashed in all tables */
    unsigned tables;    /* tables hashed */
} pb_checksum;

#define PB_CHECKSUM_HEX_SIZE 33 /* 32 hex digits and a NUL */

/**
 * Computes the logical checksum of the DB at `path`: independent of the physical layout and of
 * row order (VACUUM, insertion order), sensitive to any value, storage class, row count, table
 * or column name. The encoding is specified at the top of sqldiff/checksum.c. Tables are chosen
 * like pb_sqldiff_diff does (`opts->include`). Not collision-resistant against an adversary.
 * @param out   OUT: the checksum.
 * @param opts  optional; uses include, table_checksum, flags, open and reuse.
 * @return 0, or PB_ENOTFOUND / PB_ESQLITE / PB_ENOMEM / PB_ECANCELLED with detail in `err`.
 */
PB_EXTERN(int)
pb_sqldiff_checksum(pb_checksum *out, const char *path, const pb_diff_options *opts, pb_error *err);

/* ---------------------------------------------------------------------------------------- */
/* Tables unchanged, by their pages                                                          */
/* ---------------------------------------------------------------------------------------- */

/** Totals of pb_sqldiff_same_pages. */
typedef struct pb_same_pages_stats {
    unsigned tables;         /* candidate tables of the target */
    unsigned tables_same;    /* reported the same */
    uint64_t pages_compared; /* pages read from both files and compared */
} pb_same_pages_stats;

/** Called for each table found the same; a non-zero return cancels (PB_ECANCELLED). */
typedef int (*pb_sqldiff_same_fn)(const char *table, void *payload);

/**
 * Finds the candidate tables (`opts->include`, as the diff chooses them) whose b-trees are
 * byte-identical in the files `base_path` and `target_path`, without reading a row: same page
 * geometry and encoding, same schema SQL and root page, every page of the table's b-tree in the
 * target (dbstat's walk: interior, leaf and overflow pages) equal to the base's page of that
 * number. Such a table holds the same rows in both (the rule is argued in sqldiff/pagecmp.c), so
 * a diff may leave it out and a checksum may reuse its sum (pb_diff_options.reuse). Tables the
 * comparison cannot prove the same (another layout, a page that differs) are not reported; when
 * either file is not at rest (a -wal with frames or a -journal beside it) or SQLite lacks dbstat,
 * none is. Both files must not change during the call (the caller's private copies).
 * @param stats  OUT, optional.
 * @param opts   optional; uses include and open.
 * @return 0, or PB_ENOTFOUND / PB_ESQLITE / PB_ENOMEM / PB_ECANCELLED with detail in `err`.
 */
PB_EXTERN(int)
pb_sqldiff_same_pages(pb_same_pages_stats *stats, const char *base_path, const char *target_path,
                      const pb_diff_options *opts, pb_sqldiff_same_fn same, void *payload,
                      pb_error *err);

/** Writes the digest of `sum` as 32 lower-case hex digits into `hex`; returns `hex`. */
PB_EXTERN(const char *) pb_checksum_hex(char hex[PB_CHECKSUM_HEX_SIZE], const pb_checksum *sum);

/** 1 when the digests of `a` and `b` are equal, else 0. */
PB_EXTERN(int) pb_checksum_equal(const pb_checksum *a, const pb_checksum *b);

/* ---------------------------------------------------------------------------------------- */
/* Changeset validation and summary                                                          */
/* ---------------------------------------------------------------------------------------- */

/** Per-table counts of a validated changeset, handed to the `table` callback at the end. */
typedef struct pb_changeset_table {
    const char *table; /* valid during the callback only */
    unsigned columns;
    const uint8_t *pk; /* `columns` PK bytes (0, or the PK position), valid during the callback */
    uint64_t inserted, updated, deleted;
} pb_changeset_table;

/** Totals of a validated changeset. */
typedef struct pb_changeset_summary {
    uint64_t bytes;    /* bytes read */
    uint64_t inserted; /* INSERT records */
    uint64_t updated;  /* UPDATE records */
    uint64_t deleted;  /* DELETE records */
    unsigned tables;   /* distinct tables */
    int patchset;      /* 1 when the stream is a patchset ('P' headers) */
} pb_changeset_summary;

typedef struct pb_changeset_check_options {
    unsigned version;      /* PB_CHANGESET_CHECK_OPTIONS_VERSION */
    uint64_t expect_bytes; /* when non-zero, the stream must have exactly this length */
    /** Optional: called once per distinct table, in order of first appearance, at the end;
     * a non-zero return cancels (PB_ECANCELLED). */
    int (*table)(const pb_changeset_table *t, void *payload);
    void *payload;
} pb_changeset_check_options;

#define PB_CHANGESET_CHECK_OPTIONS_VERSION 1
#define PB_CHANGESET_CHECK_OPTIONS_INIT                                                            \
    {                                                                                              \
        PB_CHANGESET_CHECK_OPTIONS_VERSION, 0, NULL, NULL                                          \
    }

/** Sets `*opts` to PB_CHANGESET_CHECK_OPTIONS_INIT. */
PB_EXTERN(void) pb_changeset_check_options_init(pb_changeset_check_options *opts);

/**
 * Walks a changeset (or patchset) stream and checks its structure strictly: table headers
 * (column count 1..32767, PK bytes 0 or a PK position with at least one PK column, a non-empty
 * NUL-terminated name, the same columns and PK bytes whenever a table reappears, at least one
 * change per header), change
 * records (known op, indirect flag 0/1, every value's type byte, varints, lengths and
 * bounds, no undefined value where the format forbids one, UPDATEs that change something, no
 * NaN), and the stream's end. Fills the summary and calls `opts->table` for per-table counts.
 *
 * A stream cut exactly between two changes is itself a valid, shorter changeset: only an
 * expected length (`opts->expect_bytes`, from the enclosing frame) detects that truncation.
 * Validate every changeset from outside before handing it to sqlite3changeset_*(): SQLite
 * 3.40.1's iterator loops forever on a stream cut inside a table header, and reads a header
 * without changes, or a shorter stream, as valid.
 * Memory is bounded by a PB_SQLDIFF_CHUNK buffer plus the table list (at most 4096 tables).
 * @param out  OUT, optional: totals, filled also on failure (what was read so far).
 * @return 0; PB_ECORRUPT with the byte offset in a one-line message; PB_ENOMEM,
 *         PB_ECANCELLED, or the source's code (a source fills at most PB_SQLDIFF_CHUNK bytes
 *         per call).
 */
PB_EXTERN(int)
pb_changeset_validate(pb_changeset_summary *out, pb_source_fn in, void *in_payload,
                      const pb_changeset_check_options *opts, pb_error *err);

/** pb_changeset_validate over the rest of a FILE (PB_EIO on a read error). */
PB_EXTERN(int)
pb_changeset_validate_file(pb_changeset_summary *out, FILE *f,
                           const pb_changeset_check_options *opts, pb_error *err);

/** pb_changeset_validate over a buffer of `n` bytes. */
PB_EXTERN(int)
pb_changeset_validate_mem(pb_changeset_summary *out, const void *data, size_t n,
                          const pb_changeset_check_options *opts, pb_error *err);

typedef struct pb_expand_options {
    unsigned version;        /* PB_EXPAND_OPTIONS_VERSION */
    pb_sqldiff_open_fn open; /* opens the base DB; NULL: pb_sqldiff_open_default */
    void *open_payload;
} pb_expand_options;

#define PB_EXPAND_OPTIONS_VERSION 1
#define PB_EXPAND_OPTIONS_INIT                                                                     \
    {                                                                                              \
        PB_EXPAND_OPTIONS_VERSION, NULL, NULL                                                      \
    }

/** Sets `*opts` to PB_EXPAND_OPTIONS_INIT. */
PB_EXTERN(void) pb_expand_options_init(pb_expand_options *opts);

/**
 * Rebuilds the CHANGESET of a change from its PATCHSET (PB_DIFF_PATCHSET) and the base DB it was
 * computed against: the old values a patchset leaves out are read from the base. The result is
 * byte for byte what pb_sqldiff_diff() writes without PB_DIFF_PATCHSET, so a sender can ship the
 * smaller patchset and a receiver holding the base can still run the 3-way merge.
 * @param summary OUT, optional: the patchset's validation summary.
 * @param opts    optional; NULL means PB_EXPAND_OPTIONS_INIT.
 * @return 0; PB_ECORRUPT when the patchset is malformed or touches rows the base lacks;
 *         PB_EINVALID when the input is a changeset; PB_ESCHEMA when a table is missing or of
 *         another shape in the base; PB_EIO, PB_ESQLITE, or the output callback's code.
 */
PB_EXTERN(int)
pb_changeset_expand(pb_changeset_summary *summary, const char *patchset_path, const char *base_path,
                    const pb_expand_options *opts, pb_sink_fn out, void *out_payload,
                    pb_error *err);

#endif
