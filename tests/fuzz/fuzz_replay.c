/*
 * fuzz_replay.c: the main() that turns a fuzz target (tests/fuzz/fuzz_<target>.c) into a plain
 * test: it feeds every file of the target's seed corpus, tests/fuzz/corpus/<target> (seeds and
 * the inputs of past findings), to LLVMFuzzerTestOneInput once, so that each finding stays fixed
 * in every build, with or without clang. A target aborts on a finding; this passes when none
 * does. Registered per target in tests/fuzz_replay.cmake (PB_FUZZ_TARGET names the target).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(void)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s", tu_source_path("tests/fuzz/corpus/" PB_FUZZ_TARGET));
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "no seed corpus %s\n", dir);
        return 1;
    }
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[4500];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *data = tu_slurp(path);
        FILE *f = fopen(path, "rb");
        long size = f && fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
        if (f)
            fclose(f);
        if (size < 0) {
            fprintf(stderr, "cannot read %s\n", path);
            return 1;
        }
        printf("%s (%ld bytes)\n", e->d_name, size);
        fflush(stdout);
        LLVMFuzzerTestOneInput((const uint8_t *)data, (size_t)size);
        free(data);
        n++;
    }
    closedir(d);
    printf("%d inputs of %s: no finding\n", n, PB_FUZZ_TARGET);
    return n ? 0 : 1;
}
