/*
 * answer.h (internal): the ANSWER file of the export protocol (format atop answer.c): a writer
 * (the home, pb_export_answer) and a strict streaming reader (the cloud, pb_export_build).
 */
#ifndef PB_ANSWER_H
#define PB_ANSWER_H

#include <stdint.h>
#include <stdio.h>
#include <xxhash.h>
#include "bundle_int.h"

typedef struct pb_answer_writer {
    FILE *f;
    XXH3_state_t *st;
    uint64_t count, sig_bytes;
    uint8_t *chunk;
    size_t chunk_len;
    const char *path; /* for messages */
} pb_answer_writer;

typedef struct pb_answer_reader {
    FILE *f;
    const char *path;
    XXH3_state_t *st;
    uint8_t home_root[16];
    uint64_t count, off, entry_off;
    int have, done;
    /* the current entry */
    int verdict;
    char epath[PB_BUNDLE_PATH_MAX + 1];
    size_t epath_len;
    uint64_t size;
    uint8_t hash[16];
    int sig_open; /* 'S' entry whose signature is not consumed yet */
    uint32_t chunk_left;
    uint64_t sig_total;
    char prev[PB_BUNDLE_PATH_MAX + 1];
    size_t prev_len;
} pb_answer_reader;

/** Creates the ANSWER at `path` and writes its header. */
int pb_answer__writer_open(pb_answer_writer *w, const char *path, const uint8_t home_root[16],
                           pb_error *err);
/** One entry (verdict 'M', 'W' or 'S'); an 'S' entry's signature follows through
 * pb_answer__writer_sig (a pb_sink_fn over the writer), closed by pb_answer__writer_sig_end. */
int pb_answer__writer_entry(pb_answer_writer *w, int verdict, const char *path, uint64_t size,
                            const uint8_t hash[16], pb_error *err);
int pb_answer__writer_sig(void *payload, const void *buf, size_t len, pb_error *err);
int pb_answer__writer_sig_end(pb_answer_writer *w, pb_error *err);
/** Writes the trailer and closes the file. */
int pb_answer__writer_finish(pb_answer_writer *w, pb_error *err);
/** Releases (removes nothing); accepts a writer never opened. */
void pb_answer__writer_close(pb_answer_writer *w);
/** Opens an ANSWER and checks its header. */
int pb_answer__reader_open(pb_answer_reader *r, const char *path, pb_error *err);
/** A pb_source_fn over the current 'S' entry's signature. */
int pb_answer__reader_sig(void *payload, void *buf, size_t cap, size_t *got, pb_error *err);
/** Moves to the next entry (r->have = 0 after the trailer, which is then checked). */
int pb_answer__reader_next(pb_answer_reader *r, pb_error *err);
/** Releases; accepts a reader never opened. */
void pb_answer__reader_close(pb_answer_reader *r);

#endif
