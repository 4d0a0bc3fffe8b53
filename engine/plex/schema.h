/*
 * schema.h (internal): applying a Plex schema script (a `.schema` dump such as
 * fixtures/plex-schema.sql) to an empty database.
 * Role: used by the fixture tool mkplex and by tests to build DBs "as in real Plex installs".
 */
#ifndef PB_PLEXSCHEMA_H
#define PB_PLEXSCHEMA_H

#include <sqlite3.h>
#include "plexburst/errors.h"

/**
 * Executes the statements of `sql` (a `.schema` dump: NUL-terminated, comments allowed) on `db`,
 * which must have the compatibility layer registered (pb_compat_register / pb_compat_open),
 * skipping what SQLite creates itself:
 * - `CREATE TABLE sqlite_*` (sqlite_sequence, sqlite_stat1, ...);
 * - the shadow tables of the script's virtual tables (`<vtab>_content|_segments|_segdir|_docsize|
 *   _stat` for FTS3/4, `_data|_idx|_config` for FTS5, `_node|_rowid|_parent` for R*Tree,
 *   `_vocab` for spellfix1), which CREATE VIRTUAL TABLE creates.
 * Indexes on those shadow tables are deferred to the end and created only when the virtual table
 * did not already create an index of that name. Everything runs in one transaction when `db` is
 * in autocommit mode (rolled back on failure).
 * @return 0, or PB_ESQLITE (statement number and SQLite message in `err`), PB_EINVALID.
 */
int pb_plex_schema_apply(sqlite3 *db, const char *sql, pb_error *err);

#endif
