/*
 * list.c: the compact LIST the agent sends instead of its whole manifest, and the home's
 * side of it (declared in engine/run/run_int.h).
 * The cloud's manifest (docs/manifest.md) carries per entry what the cloud itself needs (mtimes,
 * Merkle directory hashes, hard-link groups, offsets): about 600 bytes per file before zstd. The
 * home needs only, per file the cloud wrote, its path, type, mode, size and content hash, to
 * tell whether it holds the same. The compact list is that, front-coded (format below); the
 * home looks up each listed path in its own tree (pb_fingerprint_lookup: its hash cache, a read
 * only for a file the cache does not describe), so a night costs the home what the cloud wrote,
 * not the size of the library, and hands pb_export_answer() the text list of the paths it lacks
 * or holds in another version: the answer then names only those, and the cloud builds the
 * bundle from its full manifest and that answer.
 *
 * FORMAT compact-v1: "PBLIST1\n", then per file or symlink in walk order:
 *   type u8 ('F' or 'L') | mode varint | size varint | hash (16, XXH3-128) |
 *   shared varint (bytes shared with the previous path) | suffix length varint | suffix
 * and a final 0 byte. Varints are LEB128. Paths obey the bundle path rules (no NUL, no
 * newline). Travels zstd-compressed.
 * Role: run/agent.c (writer), run/sync.c (reader). Prerequisites: the manifest reader and the
 * fingerprint lookup (engine/files).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bundle_int.h"
#include "plexburst/fingerprint.h"
#include "run_int.h"

#define MAGIC    "PBLIST1\n"
#define PATH_CAP 4096

static int put_varint(FILE *f, uint64_t v)
{
    do {
        int c = (int)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        if (fputc(c, f) == EOF)
            return -1;
    } while (v);
    return 0;
}

static int get_varint(FILE *f, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        int c = fgetc(f);
        if (c == EOF)
            return -1;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return 0;
    }
    return -1;
}

int pb_run__list_compact(uint64_t *entries, const char *manifest, const char *out, pb_error *err)
{
    int error = 0;
    pb_manifest *m = NULL;
    FILE *f = NULL;
    char prev[PATH_CAP + 1] = "";
    size_t prev_n = 0;
    *entries = 0;
    if ((error = pb_manifest_open(&m, manifest, err)) < 0)
        return error;
    if (!(f = fopen(out, "wb"))) {
        error = pb_error_errno(err, "cannot create %s", out);
        goto done;
    }
    fputs(MAGIC, f);
    for (;;) {
        const pb_manifest_entry *e;
        int rc = pb_manifest_next(m, &e, err);
        if (rc < 0) {
            error = rc;
            goto done;
        }
        if (rc == 0)
            break;
        if (e->type == PB_ENTRY_DIR)
            continue;
        size_t n = strlen(e->path);
        if (n > PATH_CAP || memchr(e->path, '\n', n)) {
            error =
                pb_error_set(err, PB_EUNSAFE, "list: unusable path in the manifest: %s", e->path);
            goto done;
        }
        size_t shared = 0;
        while (shared < n && shared < prev_n && prev[shared] == e->path[shared])
            shared++;
        if (fputc(e->type, f) == EOF || put_varint(f, e->mode) || put_varint(f, e->size) ||
            fwrite(e->hash, 1, PB_HASH_LEN, f) != PB_HASH_LEN || put_varint(f, shared) ||
            put_varint(f, n - shared) || fwrite(e->path + shared, 1, n - shared, f) != n - shared) {
            error = pb_error_errno(err, "cannot write %s", out);
            goto done;
        }
        memcpy(prev, e->path, n + 1);
        prev_n = n;
        (*entries)++;
    }
    if (fputc(0, f) == EOF || fflush(f) != 0)
        error = pb_error_errno(err, "cannot write %s", out);
done:
    if (f && fclose(f) != 0 && !error)
        error = pb_error_errno(err, "cannot write %s", out);
    pb_manifest_free(m);
    if (error)
        remove(out);
    return error;
}

int pb_run__list_wanted(uint64_t *listed, uint64_t *wanted, uint64_t *links, const char *compact,
                        pb_fingerprint_lookup *home, const char *out, pb_error *err)
{
    int error = 0;
    FILE *in = NULL, *w = NULL;
    pb_fingerprint_entry h;
    char path[PATH_CAP + 1], prev[PATH_CAP + 1] = "", magic[8];
    size_t prev_n = 0;
    *listed = *wanted = *links = 0;
    if (!(in = fopen(compact, "rb")))
        return pb_error_errno(err, "cannot open %s", compact);
    if (fread(magic, 1, 8, in) != 8 || memcmp(magic, MAGIC, 8) != 0) {
        error = pb_error_set(err, PB_ECORRUPT, "list: %s is not a compact list", compact);
        goto done;
    }
    if (!(w = fopen(out, "wb"))) {
        error = pb_error_errno(err, "cannot create %s", out);
        goto done;
    }
    for (uint64_t i = 0;; i++) {
        int type = fgetc(in);
        if (type == 0)
            break;
        uint64_t mode, size, shared, suffix;
        uint8_t hash[PB_HASH_LEN];
        if ((type != 'F' && type != 'L') || get_varint(in, &mode) || get_varint(in, &size) ||
            fread(hash, 1, PB_HASH_LEN, in) != PB_HASH_LEN || get_varint(in, &shared) ||
            get_varint(in, &suffix) || shared > prev_n || shared + suffix > PATH_CAP ||
            shared + suffix == 0) {
            error = pb_error_set(err, PB_ECORRUPT, "list: entry %llu is malformed",
                                 (unsigned long long)i);
            goto done;
        }
        memcpy(path, prev, shared);
        if (fread(path + shared, 1, suffix, in) != suffix) {
            error = pb_error_set(err, PB_ECORRUPT, "list: entry %llu is truncated",
                                 (unsigned long long)i);
            goto done;
        }
        size_t n = (size_t)(shared + suffix);
        path[n] = '\0';
        if (memchr(path, '\n', n) || memchr(path, '\0', n) ||
            (i && pb_bundle__pathcmp(prev, prev_n, path, n) >= 0)) {
            error = pb_error_set(err, PB_ECORRUPT,
                                 "list: entry %llu (%s) is out of walk order or unusable",
                                 (unsigned long long)i, path);
            goto done;
        }
        memcpy(prev, path, n + 1);
        prev_n = n;
        (*listed)++;
        /* what the home holds there, looked up (the home's other paths are not asked about) */
        if ((error = pb_fingerprint_lookup_get(home, path, &h, err)) < 0)
            goto done;
        int same = h.type == type && h.size == size && memcmp(h.hash, hash, PB_HASH_LEN) == 0 &&
                   (type != 'F' || h.mode == (uint32_t)mode);
        if (!same && type == 'L') {
            (*links)++; /* a bundle carries regular files only: the cloud's symlinks stay there */
        } else if (!same) {
            if (fwrite(path, 1, n, w) != n || fputc('\n', w) == EOF) {
                error = pb_error_errno(err, "cannot write %s", out);
                goto done;
            }
            (*wanted)++;
        }
    }
    if (fflush(w) != 0)
        error = pb_error_errno(err, "cannot write %s", out);
done:
    if (w && fclose(w) != 0 && !error)
        error = pb_error_errno(err, "cannot write %s", out);
    if (in)
        fclose(in);
    if (error)
        remove(out);
    return error;
}
