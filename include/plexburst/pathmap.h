/*
 * plexburst/pathmap.h: path mapping between two machines' library paths (cloud -> home for a
 * merge, home -> cloud for the upload side): a set of prefix mappings, loaded from
 * path_mappings.json, applied to the four Plex path columns (section_locations.root_path,
 * media_parts.file, media_streams.url, file:// guids) as the merge policy's map_text.
 */
#ifndef PLEXBURST_PATHMAP_H
#define PLEXBURST_PATHMAP_H

#include <stddef.h>
#include "plexburst/errors.h"

/** A set of prefix mappings `from -> to` (cloud -> home for a merge). */
typedef struct pb_pathmap pb_pathmap;

/** Kinds of Plex path values (pb_pathmap_kind). */
typedef enum pb_path_kind {
    PB_PATH_NONE = 0,     /* not a path column */
    PB_PATH_PLAIN = 1,    /* a plain path: section_locations.root_path, media_parts.file */
    PB_PATH_FILE_URL = 2, /* a URL-encoded file:// URL: media_streams.url */
    PB_PATH_FILE_GUID = 3 /* metadata_items.guid: mapped only when it starts with file:// */
} pb_path_kind;

/** An empty mapping set. Free with pb_pathmap_free(). */
PB_EXTERN(int) pb_pathmap_new(pb_pathmap **out, pb_error *err);

/**
 * Loads `path_mappings.json`: `{"mappings": {"/cloud/prefix": "/home/prefix", ...}}`.
 * @return 0, PB_ENOTFOUND, PB_EIO, or PB_EINVALID (malformed JSON, empty or duplicate prefixes).
 */
PB_EXTERN(int) pb_pathmap_load(pb_pathmap **out, const char *json_path, pb_error *err);

/** Like pb_pathmap_load, from JSON text. */
PB_EXTERN(int) pb_pathmap_parse(pb_pathmap **out, const char *json, size_t n, pb_error *err);

/**
 * Adds `from -> to`. Trailing separators are ignored ("/data/" = "/data"), except for a root "/".
 * @return 0, PB_EINVALID (empty, or `from` already present), PB_ENOMEM.
 */
PB_EXTERN(int) pb_pathmap_add(pb_pathmap *pm, const char *from, const char *to, pb_error *err);

/**
 * The inverse set (`to -> from`), e.g. home -> cloud for the sync's upload side.
 * @return 0, or PB_EINVALID when two prefixes map to the same target (not invertible).
 */
PB_EXTERN(int) pb_pathmap_invert(pb_pathmap **out, const pb_pathmap *pm, pb_error *err);

/** Number of mappings (0 for NULL). */
PB_EXTERN(size_t) pb_pathmap_count(const pb_pathmap *pm);

/** The i-th mapping (in the order added), or -1 when out of range. */
PB_EXTERN(int) pb_pathmap_get(const pb_pathmap *pm, size_t i, const char **from, const char **to);

/** The kind of the Plex column `table.column` (PB_PATH_NONE for every other column). */
PB_EXTERN(int) pb_pathmap_kind(const char *table, const char *column);

/**
 * Maps one value of the given kind. The longest matching prefix wins; a prefix matches only at a
 * path-component boundary ("/data" matches "/data" and "/data/x", never "/database").
 * PB_PATH_FILE_URL values are percent-decoded to match, and the new prefix is re-encoded the way
 * Plex encodes (`%20` for a space, `%25` for `%`, RFC 3986 path characters literal, other bytes
 * as uppercase %XX); the part after the prefix keeps its original encoding byte for byte.
 * @param out    OUT: a malloc'd NUL-terminated copy when the value changes (length in *out_n).
 * @return 1 when mapped, 0 when the value is left as is (*out NULL), PB_ENOMEM.
 */
PB_EXTERN(int)
pb_pathmap_map(const pb_pathmap *pm, int kind, const char *in, size_t n, char **out, size_t *out_n);

/** Frees the set; accepts NULL. */
PB_EXTERN(void) pb_pathmap_free(pb_pathmap *pm);

#endif
