/*
 * ftsdefer.h (internal): deferred, set-based maintenance of Plex's FTS4 title indexes during a
 * merge. Plex keeps its external-content FTS4 tables (fts4_*_titles_icu) in step with
 * metadata_items and tags through row triggers: every written row tokenises its title again and,
 * because deletes and inserts alternate with unordered docids, flushes its own FTS segment (most
 * of a nightly merge's CPU). On the merge's connection the deferral switches the DB's triggers
 * off (SQLITE_DBCONFIG_ENABLE_TRIGGER; TEMP triggers, such as the apply's commit marker, still
 * fire). Inside the merge's transaction, before its first write, one set-based DELETE removes
 * the FTS entries of the rows the changeset updates or deletes (FTS flushes its pending terms at
 * every statement that opens a savepoint, so row-by-row deletes would still write a segment each);
 * TEMP triggers delete the entry of any other row at its first write and remember every row
 * written; just before COMMIT one INSERT ... SELECT ... ORDER BY id re-indexes every remembered row
 * that still exists, in the same transaction. An UPDATE that sets none of the indexed columns
 * (nor the id) leaves a row's FTS entry as it is (external content: the entry is the tokens of
 * those columns): such UPDATE records are not re-indexed and the TEMP update triggers fire only
 * for "UPDATE OF" those columns (an analysis night's extra_data / changed_at updates are most of
 * its updates). The index ends exactly as the row triggers would leave it. It applies only when
 * every trigger of the DB is a recognised FTS trigger of main (the 4 events of each maintained FTS
 * table, bodies as Plex writes them); otherwise nothing changes.
 * Role: the two write paths of a merge (apply_merge.c, plexmerge.c), in-process and in the
 * script Plex's engine runs (there with `.dbconfig enable_trigger off`).
 * Prerequisites: SQLite >= 3.35 (TEMP triggers fire with the DB's triggers off).
 */
#ifndef PB_FTSDEFER_H
#define PB_FTSDEFER_H

#include <sqlite3.h>

#include "plexburst/errors.h"
#include "plexburst/merge.h"

typedef struct pb_ftsdefer pb_ftsdefer;

/**
 * Inspects the triggers of every DB on `db` (main's, and those of the attached DBs on tables
 * their input writes: then the deferral does not apply) and reads the keys of the UPDATE records
 * that set an indexed column (or the id) and of the DELETE records of main's input (a raw
 * changeset) on the maintained tables: the rows whose FTS entries go in one statement before the
 * merge writes (a row written without such a record is handled by the TEMP triggers). `*out` is
 * NULL when the deferral does not apply (no FTS trigger, or a trigger it does not recognise), else
 * a plan the caller frees with pb_ftsdefer_free.
 * @return 0, PB_ENOMEM or PB_ESQLITE.
 */
int pb_ftsdefer_new(pb_ftsdefer **out, sqlite3 *db, const pb_merge_input *inputs, size_t ninputs,
                    pb_error *err);

/** SQL creating the TEMP tables and triggers (complete statements, newline-terminated). */
const char *pb_ftsdefer_setup_sql(const pb_ftsdefer *d);

/** SQL deleting the FTS entries of the changeset's rows in one statement per FTS table, to run
 * inside the merge's transaction before its first write (pb_merge_options.sql_before_writes). */
const char *pb_ftsdefer_before_sql(const pb_ftsdefer *d);

/** SQL re-indexing the remembered rows, to run inside the merge's transaction before COMMIT. */
const char *pb_ftsdefer_finish_sql(const pb_ftsdefer *d);

/** The merge connection's settings, as SQL to run first on it (before any TEMP object: a change
 * of temp_store drops them): the temp store in memory, so that SQLite's statement journals
 * (opened by every write in the merge's transaction) are not spilled to a file in /var/tmp
 * (measured on the medium fixture: 76k of the merge's 165k pwrite calls, ~0.2 s of system CPU).
 * A statement journal lives only for one statement; the merge's TEMP tables are small. */
const char *pb_ftsdefer_conn_sql(void);

/** The script form of the switch, a shell dot-command line: ".dbconfig enable_trigger off\n". */
const char *pb_ftsdefer_script_switch(void);

/** In-process: switches the connection's triggers off and runs the setup SQL. */
int pb_ftsdefer_install(pb_ftsdefer *d, sqlite3 *db, pb_error *err);

/** In-process: drops the TEMP objects and switches the triggers back on. Accepts NULL. */
void pb_ftsdefer_uninstall(pb_ftsdefer *d, sqlite3 *db);

/** Accepts NULL. */
void pb_ftsdefer_free(pb_ftsdefer *d);

#endif
