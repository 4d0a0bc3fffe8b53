/*
 * carry_int.h (internal): a bootstrap replaces the home's library DB with the cloud's; the
 * carry keeps everything the home owns (carry.c: user tables home-wins, carry_map.c: the id maps
 * between the two libraries and the home's playlists, collections, labels and locked edits).
 * Role: engine/run, bootstrap.c's INSTALL. Prerequisites: SQLite with the compatibility layer.
 */
#ifndef PB_RUN_CARRY_INT_H
#define PB_RUN_CARRY_INT_H

#include <stdint.h>
#include <sqlite3.h>
#include "plexburst/errors.h"

/** What a carry kept (row counts). */
typedef struct pb_run_carry {
    uint64_t accounts, settings, views; /* rows of these three user tables (in user_rows) */
    uint64_t user_rows;                 /* rows of every user table, the home's side */
    uint64_t user_tables;               /* user tables carried */
    uint64_t lists;                     /* playlists and collections the new library lacked */
    uint64_t tags;                      /* collection and label tags added */
    uint64_t taggings;                  /* collection and label memberships added */
    uint64_t edited;                    /* items whose locked edits and uploads were kept */
    uint64_t dropped;                   /* home rows about items no longer in the library */
} pb_run_carry;

/**
 * Carries the home's user state and edits from `old_db` (the library being replaced) into
 * `new_db` (the cloud's, staged, not live), in one transaction of `new_db`: nothing is written
 * when it fails. Items are matched between the two libraries by stable keys (media_parts.file,
 * then guid and type; sections by uuid, then name and type; tags by type, tag and key), never by
 * id. Then: the home's playlists and collections the new library lacks are added, with their
 * collection and label tags and memberships; items the home locked keep the home's editable
 * fields (user_fields with them) and uploaded artwork; every user-class table of the Plex policy
 * (pb_plex_class_by_name: play state, plays, ratings, playlist entries, play queues, accounts,
 * devices, ...) becomes the home's rows, their references to library rows mapped onto the new ids
 * (rows about items no longer in the library are dropped and counted, except guid-keyed ones,
 * whose stale reference is set to NULL).
 * @return 0, PB_ESQLITE, PB_ENOMEM, an open error.
 */
int pb_run__carry_home(pb_run_carry *out, const char *new_db, const char *old_db, pb_error *err);

/* carry_map.c, on the carry's connection (new DB as main, old attached as `old`) */

/** Builds the temp maps temp.pbm_<table>(old_id, new_id) of the library tables. */
int pb_run__carry_maps(sqlite3 *c, pb_error *err);

/** The library table whose map translates `column` of `table`, or NULL (kept verbatim). */
const char *pb_run__carry_ref(const char *table, const char *column);

/**
 * INSERTs rows of old.`table` into main.`table` (the columns both have): `where` (NULL: every
 * row) over alias `o`; each reference to a mapped library table translated; the `id` column
 * translated through temp.pbm_`table` when `self_map`, dropped (a new id) when `new_id`, else
 * kept. Rows with a reference the maps lack are skipped (counted in `*dropped`) unless
 * `null_unmapped`, which stores NULL instead.
 */
int pb_run__carry_copy(sqlite3 *c, const char *table, const char *where, int self_map, int new_id,
                       int null_unmapped, uint64_t *rows, uint64_t *dropped, pb_error *err);

/** The home's playlists, collections, their tags and memberships, locked edits, uploads. */
int pb_run__carry_library(sqlite3 *c, pb_run_carry *out, pb_error *err);

#endif
