/*
 * export_answer.c: steps (a) and (b) of the export protocol (plexburst/export.h): the cloud
 * lists its files (pb_export_list: its manifest; pb_export_wanted: only what a home manifest
 * lacks), the home answers what it lacks or holds in another version, with librsync signatures
 * (pb_export_answer; the ANSWER format is specified atop answer.c).
 * Role: the cloud agent runs (a), the home runs (b); the CLI's sigs command.
 * Prerequisites: fingerprints and manifests (engine/files), librsync signatures (rsync.h).
 * Memory: streaming; a text LIST is read a line at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "answer.h"
#include "bundle_int.h"
#include "clock.h"
#include "fs.h"
#include "plexburst/export.h"
#include "plexburst/fingerprint.h"
#include "rsync.h"

int pb_export_list(pb_export_stats *out, const char *cloud_dir, const char *state_dir,
                   const char *list_path, pb_error *err)
{
    pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result fr;
    double t0 = pb_clock_ms();
    int error;

    if (out)
        memset(out, 0, sizeof(*out));
    if (!cloud_dir || !list_path)
        return pb_error_set(err, PB_EINVALID, "export list: cloud dir and list path needed");
    fo.state_dir = state_dir;
    fo.manifest_path = list_path;
    if ((error = pb_fingerprint_run(&fr, cloud_dir, &fo, err)) < 0)
        return error;
    if (out) {
        out->listed = fr.files;
        out->ms = pb_clock_ms() - t0;
    }
    return 0;
}

typedef struct wanted_ctx {
    FILE *f;
    pb_export_stats *st;
} wanted_ctx;

static int wanted_cb(pb_cmp_kind kind, const pb_manifest_entry *home,
                     const pb_manifest_entry *other, int subtree, void *payload)
{
    wanted_ctx *w = payload;
    (void)subtree;
    if (!other || other->type != PB_ENTRY_FILE || kind == PB_CMP_ONLY_HOME)
        return 0;
    if (kind == PB_CMP_UNCHANGED) {
        w->st->listed++;
        return 0;
    }
    w->st->listed++;
    if (home && home->type == PB_ENTRY_FILE && memcmp(home->hash, other->hash, 16) == 0)
        return 0;
    if (strchr(other->path, '\n'))
        return 0; /* cannot be a line; the bundle path rules refuse it anyway */
    w->st->answers++;
    return fprintf(w->f, "%s\n", other->path) < 0 ? 1 : 0;
}

int pb_export_wanted(pb_export_stats *out, const char *cloud_dir, const char *state_dir,
                     const char *home_manifest, const char *wanted_path, pb_error *err)
{
    int error = 0;
    char tmp[4200], part[4200];
    pb_export_stats local;
    pb_manifest *hm = NULL, *cm = NULL;
    wanted_ctx w = {NULL, NULL};
    double t0 = pb_clock_ms();

    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    if (!cloud_dir || !home_manifest || !wanted_path)
        return pb_error_set(err, PB_EINVALID, "export: cloud dir, home manifest and output needed");
    snprintf(tmp, sizeof(tmp), "%s.cloud-manifest", wanted_path);
    snprintf(part, sizeof(part), "%s.part", wanted_path);
    pb_export_stats ls;
    if ((error = pb_export_list(&ls, cloud_dir, state_dir, tmp, err)) < 0)
        goto done;
    if ((error = pb_manifest_open(&hm, home_manifest, err)) < 0 ||
        (error = pb_manifest_open(&cm, tmp, err)) < 0)
        goto done;
    if (!(w.f = fopen(part, "w"))) {
        error = pb_error_errno(err, "export: cannot create %s", part);
        goto done;
    }
    w.st = out;
    if ((error = pb_manifest_compare(hm, cm, wanted_cb, &w, NULL, err)) < 0)
        goto done;
    if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
        error = pb_error_errno(err, "export: cannot write %s", part);
        goto done;
    }
    fclose(w.f);
    w.f = NULL;
    if (rename(part, wanted_path) != 0) {
        error = pb_error_errno(err, "export: cannot rename %s", part);
        goto done;
    }
    out->ms = pb_clock_ms() - t0;
done:
    if (w.f)
        fclose(w.f);
    if (error < 0)
        unlink(part);
    pb_manifest_free(hm);
    pb_manifest_free(cm);
    unlink(tmp);
    return error;
}

/* ---- step (b): the ANSWER ---- */
typedef struct answer_ctx {
    pb_answer_writer w;
    int root_fd;
    uint64_t whole_below;
    pb_export_stats *st;
    pb_error *err;
    int error;
} answer_ctx;

/* Answers one path the home holds in another version (or not at all when it is not a regular
 * file we may read): hash, then signature unless small. */
static int answer_file(answer_ctx *a, const char *path, pb_error *err)
{
    int error = 0, dfd = -1, fd = -1;
    const char *name;
    struct stat st;
    uint8_t hash[16];
    uint64_t size = 0;

    error = pb_fs_open_parent(&dfd, &name, a->root_fd, path, NULL, NULL, err);
    if (error == PB_ENOTFOUND || error == PB_ECONFLICT) {
        pb_error_clear(err);
        return pb_answer__writer_entry(&a->w, 'M', path, 0, NULL, err);
    }
    if (error < 0)
        return error;
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd < 0 && errno != ENOENT && errno != ELOOP) {
            error = pb_error_errno(err, "answer: cannot open home file %s", path);
            goto done;
        }
        error = pb_answer__writer_entry(&a->w, 'M', path, 0, NULL, err);
        goto done;
    }
    if ((error = pb_bundle__hash_fd(hash, &size, fd, err)) < 0)
        goto done;
    if (size < a->whole_below) {
        error = pb_answer__writer_entry(&a->w, 'W', path, size, hash, err);
        goto done;
    }
    if ((error = pb_answer__writer_entry(&a->w, 'S', path, size, hash, err)) < 0)
        goto done;
    if (lseek(fd, 0, SEEK_SET) < 0) {
        error = pb_error_errno(err, "answer: seek failed on %s", path);
        goto done;
    }
    if ((error = pb_rsync_sig(fd, pb_answer__writer_sig, &a->w, NULL, NULL, err)) < 0 ||
        (error = pb_answer__writer_sig_end(&a->w, err)) < 0)
        goto done;
done:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return error;
}

static int answer_cmp_cb(pb_cmp_kind kind, const pb_manifest_entry *home,
                         const pb_manifest_entry *other, int subtree, void *payload)
{
    answer_ctx *a = payload;
    (void)subtree;
    if (!other || other->type != PB_ENTRY_FILE)
        return 0;
    if (kind == PB_CMP_NEW || (kind == PB_CMP_CHANGED && (!home || home->type != PB_ENTRY_FILE)))
        a->error = pb_answer__writer_entry(&a->w, 'M', other->path, 0, NULL, a->err);
    else if (kind == PB_CMP_CHANGED && memcmp(home->hash, other->hash, 16) != 0)
        a->error = answer_file(a, other->path, a->err);
    return a->error < 0 ? 1 : 0;
}

/* The LIST is a manifest ("PBMANIF1") or a text list of paths. */
static int is_manifest(const char *path, int *yes, pb_error *err)
{
    char m[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT
                   ? pb_error_setd(err, PB_ENOTFOUND, ENOENT, "list %s does not exist", path)
                   : pb_error_errno(err, "cannot open list %s", path);
    size_t n = fread(m, 1, 8, f);
    fclose(f);
    *yes = n == 8 && memcmp(m, "PBMANIF1", 8) == 0;
    return 0;
}

static int answer_text(answer_ctx *a, const char *list_path, pb_error *err)
{
    int error = 0;
    FILE *f = fopen(list_path, "r");
    char line[PB_BUNDLE_PATH_MAX + 2], prev[PB_BUNDLE_PATH_MAX + 1], why[300];
    size_t prev_len = 0;
    uint64_t lineno = 0;

    if (!f)
        return pb_error_errno(err, "cannot open list %s", list_path);
    while (fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        lineno++;
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        else if (!feof(f)) {
            error = pb_error_set(err, PB_ECORRUPT, "list %s: line %llu too long", list_path,
                                 (unsigned long long)lineno);
            goto done;
        }
        if (n == 0)
            continue;
        if (pb_bundle__path_check(line, n, why, sizeof(why)) < 0) {
            error = pb_error_set(err, PB_EUNSAFE, "list %s: line %llu: %s", list_path,
                                 (unsigned long long)lineno, why);
            goto done;
        }
        if (prev_len && pb_bundle__pathcmp(prev, prev_len, line, n) >= 0) {
            error = pb_error_set(err, PB_ECORRUPT, "list %s: line %llu: out of walk order",
                                 list_path, (unsigned long long)lineno);
            goto done;
        }
        memcpy(prev, line, n + 1);
        prev_len = n;
        if ((error = answer_file(a, line, err)) < 0)
            goto done;
    }
    if (ferror(f))
        error = pb_error_errno(err, "cannot read list %s", list_path);
done:
    fclose(f);
    return error;
}

int pb_export_answer(pb_export_stats *out, const char *home_dir, const char *list_path,
                     const char *answer_path, const pb_answer_options *opts, pb_error *err)
{
    int error = 0, manifest = 0, made_manifest = 0;
    answer_ctx a;
    pb_manifest *hm = NULL, *cm = NULL;
    char tmp_manifest[4200] = "", part[4200];
    uint8_t root[16] = {0};
    pb_export_stats local;
    double t0 = pb_clock_ms();

    memset(&a, 0, sizeof(a));
    a.root_fd = -1;
    if (!out)
        out = &local;
    memset(out, 0, sizeof(*out));
    if (!home_dir || !list_path || !answer_path)
        return pb_error_set(err, PB_EINVALID, "answer: home dir, list and output needed");
    if ((size_t)snprintf(part, sizeof(part), "%s.part", answer_path) >= sizeof(part))
        return pb_error_set(err, PB_EINVALID, "answer: path too long");
    a.whole_below = opts && opts->whole_below ? opts->whole_below : PB_RSYNC_WHOLE_BELOW;
    a.st = out;
    a.err = err;
    if ((a.root_fd = open(home_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        error = errno == ENOENT ? pb_error_setd(err, PB_ENOTFOUND, ENOENT,
                                                "home data dir %s does not exist", home_dir)
                                : pb_error_errno(err, "cannot open the home data dir %s", home_dir);
        goto done;
    }
    if ((error = is_manifest(list_path, &manifest, err)) < 0)
        goto done;
    if (manifest) {
        const char *hpath = opts ? opts->home_manifest : NULL;
        if (!hpath) {
            pb_fingerprint_options fo = PB_FINGERPRINT_OPTIONS_INIT;
            pb_fingerprint_result fr;
            snprintf(tmp_manifest, sizeof(tmp_manifest), "%s.home-manifest", answer_path);
            fo.state_dir = opts ? opts->state_dir : NULL;
            fo.manifest_path = tmp_manifest;
            if ((error = pb_fingerprint_run(&fr, home_dir, &fo, err)) < 0)
                goto done;
            made_manifest = 1;
            hpath = tmp_manifest;
        }
        if ((error = pb_manifest_open(&hm, hpath, err)) < 0 ||
            (error = pb_manifest_open(&cm, list_path, err)) < 0)
            goto done;
        memcpy(root, pb_manifest_get_info(hm)->root, 16);
    }
    if ((error = pb_answer__writer_open(&a.w, part, root, err)) < 0)
        goto done;
    if (manifest) {
        error = pb_manifest_compare(hm, cm, answer_cmp_cb, &a, NULL, err);
        if (a.error < 0)
            error = a.error;
    } else {
        error = answer_text(&a, list_path, err);
    }
    if (error < 0 || (error = pb_answer__writer_finish(&a.w, err)) < 0)
        goto done;
    out->answers = a.w.count;
    out->sig_bytes = a.w.sig_bytes;
    pb_answer__writer_close(&a.w);
    if (rename(part, answer_path) != 0) {
        error = pb_error_errno(err, "answer: cannot rename %s", part);
        goto done;
    }
    out->ms = pb_clock_ms() - t0;
done:
    pb_answer__writer_close(&a.w);
    if (error < 0)
        unlink(part);
    pb_manifest_free(hm);
    pb_manifest_free(cm);
    if (made_manifest)
        unlink(tmp_manifest);
    if (a.root_fd >= 0)
        close(a.root_fd);
    return error;
}

void pb_answer_options_init(pb_answer_options *opts)
{
    pb_answer_options def = PB_ANSWER_OPTIONS_INIT;
    *opts = def;
}
