/*
 * fuzz_list.c: libFuzzer target of the compact LIST reader (engine/bundle/list.c,
 * pb_run__list_wanted), the cloud's list of its files the home looks up in its own tree: any
 * input ends in a wanted list or a one-line PB_ECORRUPT, never a crash, a hang, a read past a
 * buffer or a path looked up outside the home. The home is a small directory made once.
 * Seed corpus: tests/fuzz/corpus/list (the LIST of a mkplex tiny library).
 */
#include <sys/stat.h>

#include "fuzz_util.h"
#include "plexburst/fingerprint.h"
#include "run_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pb_fingerprint_lookup *home_lookup;

/* A small home (a few files) whose paths the lists are looked up in, through one session. */
static void make_home(void)
{
    pb_error e = PB_ERROR_INIT;
    char home[4200], state[4200];
    snprintf(home, sizeof(home), "%s", fuzz_path("home"));
    snprintf(state, sizeof(state), "%s", fuzz_path("state"));
    if (mkdir(home, 0700) != 0 || mkdir(fuzz_path("home/Metadata"), 0700) != 0 ||
        !fuzz_file("home/a", (const uint8_t *)"a", 1) ||
        !fuzz_file("home/Media", (const uint8_t *)"media", 5) ||
        !fuzz_file("home/Metadata/x", (const uint8_t *)"x", 1))
        abort();
    if (pb_fingerprint_lookup_open(&home_lookup, home, state, &e) != 0) {
        fprintf(stderr, "lookup: %s\n", e.msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, 0};
    uint64_t listed = 0, wanted = 0, links = 0;
    pb_error e = PB_ERROR_INIT;
    if (!home_lookup)
        make_home();
    const char *list = fuzz_file("list", data, size);
    int rc =
        pb_run__list_wanted(&listed, &wanted, &links, list, home_lookup, fuzz_path("wanted"), &e);
    fuzz_check_error(rc, &e, ok);
    if (wanted > listed)
        abort();
    return 0;
}
