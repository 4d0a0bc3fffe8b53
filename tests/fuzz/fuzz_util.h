/*
 * fuzz_util.h: what the libFuzzer targets of tests/fuzz share: a scratch directory for the
 * readers that take a path (made once per process under $TMPDIR, removed at exit), the input
 * written to a file there, and the check every target makes of an error: a code the parser may
 * return for bad input, and a one-line message.
 * Header only (static functions): each target is one C file plus the parsers it instruments.
 */
#ifndef PB_FUZZ_UTIL_H
#define PB_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "plexburst/errors.h"

static char fuzz_dir_path[4096];

static inline void fuzz_dir_remove(void)
{
    if (fuzz_dir_path[0])
        pb_fs_rmtree(fuzz_dir_path);
}

/* The process's scratch dir (in /dev/shm when writable: the readers reopen files often). */
static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *base = getenv("TMPDIR");
        if (access("/dev/shm", W_OK) == 0)
            base = "/dev/shm";
        snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/pbfuzz-XXXXXX",
                 base && *base ? base : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* A path in the scratch dir (static buffer per name slot: up to 4 at once). */
static inline const char *fuzz_path(const char *name)
{
    static char p[4][4200];
    static int slot;
    char *s = p[slot++ % 4];
    snprintf(s, 4200, "%s/%s", fuzz_dir(), name);
    return s;
}

/* Writes the input to the file `name` of the scratch dir; returns its path. */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
    return path;
}

/* An error the input may cause: its code among `ok` (0-terminated), one line. Aborts (the
 * fuzzer's finding) otherwise. */
static inline void fuzz_check_error(int rc, const pb_error *e, const int *ok)
{
    if (rc == 0 && !e->code)
        return;
    int code = e->code ? e->code : rc;
    int allowed = 0;
    for (const int *c = ok; *c; c++)
        allowed |= *c == code;
    if (!allowed || strchr(e->msg, '\n')) {
        fprintf(stderr, "unexpected error %d (rc %d): %s\n", e->code, rc, e->msg);
        abort();
    }
}

#endif
