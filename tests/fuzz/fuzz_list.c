/*
 * fuzz_list.c: libFuzzer target of the compact LIST reader (engine/bundle/list.c,
 * pb_run__list_wanted), the cloud's list of its files the home compares with its own manifest:
 * any input ends in a wanted list or a one-line PB_ECORRUPT, never a crash, a hang or a read
 * past a buffer. The home side is the manifest of a small directory made once.
 * Seed corpus: tests/fuzz/corpus/list (the LIST of a mkplex tiny library).
 */
#include <sys/stat.h>

#include "fuzz_util.h"
#include "plexburst/fingerprint.h"
#include "run_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char home_manifest[4200];

/* The manifest of a small home (a few files in walk order) to compare against. */
static void make_home(void)
{
    pb_fingerprint_options o = PB_FINGERPRINT_OPTIONS_INIT;
    pb_fingerprint_result r;
    pb_error e = PB_ERROR_INIT;
    char home[4200], state[4200];
    snprintf(home, sizeof(home), "%s", fuzz_path("home"));
    snprintf(state, sizeof(state), "%s", fuzz_path("state"));
    if (mkdir(home, 0700) != 0 || !fuzz_file("home/a", (const uint8_t *)"a", 1) ||
        !fuzz_file("home/Media", (const uint8_t *)"media", 5))
        abort();
    o.state_dir = state;
    if (pb_fingerprint_run(&r, home, &o, &e) != 0) {
        fprintf(stderr, "fingerprint: %s\n", e.msg);
        abort();
    }
    snprintf(home_manifest, sizeof(home_manifest), "%s", r.manifest_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_ECORRUPT, 0};
    uint64_t listed = 0, wanted = 0, links = 0;
    pb_error e = PB_ERROR_INIT;
    if (!home_manifest[0])
        make_home();
    const char *list = fuzz_file("list", data, size);
    int rc =
        pb_run__list_wanted(&listed, &wanted, &links, list, home_manifest, fuzz_path("wanted"), &e);
    fuzz_check_error(rc, &e, ok);
    if (wanted > listed)
        abort();
    return 0;
}
