/*
 * plexengine.h (internal): Plex's own SQLite engine: searching a given root (tests), and building
 * the command line that runs a SQL script through the engine on a DB.
 * Role: the merge (plexmerge.c) and the journaled apply (apply.c) pipe their SQL script into the
 * engine's stdin; `plexburst check` reports it.
 * The public finder is pb_plex_engine_find() in include/plexburst/plex_engine.h.
 */
#ifndef PB_PLEXENGINE_H
#define PB_PLEXENGINE_H

#include <stddef.h>
#include "plexburst/plex_engine.h"

/** Environment variable naming the engine (file or directory) when no path is configured. */
#define PB_PLEX_ENGINE_ENV "PLEXBURST_PLEX_SQLITE"

/**
 * Like pb_plex_engine_find(NULL) without the environment variable, but searches the standard
 * locations under `root` ("" or NULL = the real file system, "/tmp/x" = a fake tree in tests).
 * @return 0 with `out` filled, PB_ENOTFOUND.
 */
int pb_plex_engine_find_in(pb_plex_engine *out, const char *root, pb_error *err);

/** Maximum number of argv entries pb_plex_engine_argv produces, including the final NULL. */
#define PB_PLEX_ENGINE_MAXARGS 8

/** A command line for execv: argv[0..argc-1] and a NULL; strings live in the engine, the caller's
 * arguments, or the buffers below (so the struct must outlive the exec call). */
typedef struct pb_plex_engine_cmd {
    int argc;
    const char *argv[PB_PLEX_ENGINE_MAXARGS];
    char db[4096 + 2];    /* the DB path, "./"-prefixed when it starts with '-' */
    char load[4096 + 16]; /* ".load '<ext_path>'" for a stand-in shell */
} pb_plex_engine_cmd;

/**
 * Builds the command that runs a SQL script, read from stdin, through engine `e` on `db`:
 * - PB_ENGINE_PLEX_SQLITE:   "<path>" DB
 * - PB_ENGINE_PMS_SQLITE:    "<path>" --sqlite DB
 * - PB_ENGINE_SQLITE3_SHELL: "<path>" -bail -cmd ".load '<ext_path>'" DB (without -cmd when
 *   ext_path is NULL); the stand-in used by tests, with the plexcompat extension.
 * The shells keep going after a failed statement unless told otherwise: scripts should begin
 * with `.bail on` so that the exit status reports the first error.
 * @return 0, or PB_EINVALID (no engine, no DB, a path too long or with a newline).
 */
int pb_plex_engine_argv(pb_plex_engine_cmd *out, const pb_plex_engine *e, const char *db,
                        const char *ext_path, pb_error *err);

/**
 * Resolves a pb_plex_engine_choice (plexburst/plexmerge.h): PB_PLEX_ENGINE_IN_PROCESS gives 0;
 * PB_PLEX_ENGINE_PATH finds the engine at `path` (an error when it is not there);
 * PB_PLEX_ENGINE_AUTO looks in $PLEXBURST_PLEX_SQLITE and the standard locations and gives 0
 * when there is none.
 * @return 1 with `out` filled (write through the engine), 0 (in-process), or a negative PB_E*.
 */
int pb_plex_engine_resolve(pb_plex_engine *out, int choice, const char *path, pb_error *err);

/** One line naming the engine for reports: "plex-sqlite: /path", "plex-sqlite: /path --sqlite",
 * "plex-sqlite: /usr/bin/sqlite3 (sqlite3 stand-in, .load EXT)". */
void pb_plex_engine_describe(char *out, size_t cap, const pb_plex_engine *e, const char *ext_path);

/**
 * Runs the SQL script at `script` through engine `e` on `db` (pb_plex_engine_argv; `ext_path` is
 * used for a sqlite3 stand-in only) and waits for it: the script on stdin, stdout to /dev/null,
 * stderr to the file `errlog`. When `inherit_fd` >= 0 the engine gets a copy of it (as fd 3, or
 * 4), e.g. the apply lock: an flock then stays held until the engine exits, even if the caller
 * dies first.
 * @return 0 when the engine exited 0; PB_ERROR with its exit status or signal and the first line
 *         of its stderr; PB_EIO / PB_EINVALID when it cannot be started.
 */
int pb_plex_engine_run(const pb_plex_engine *e, const char *db, const char *ext_path,
                       const char *script, const char *errlog, int inherit_fd, pb_error *err);

#endif
