/*
 * fuzz_settings.c: libFuzzer target of the readers of the files a user or a cloud set-up hands
 * plexburst: the .env settings file (engine/run/config.c, pb_config_load), plex_libraries.json
 * (pb_plex_libraries_load) and path_mappings.json (engine/plex/pathmap.c, pb_pathmap_parse).
 * The first input byte picks the reader (0: .env, 1: libraries, 2: path map), the rest is the
 * file: any input ends in a result or a one-line PB_EINVALID / PB_ECORRUPT, never a crash, a
 * hang or a read past a buffer.
 * Seed corpus: tests/fuzz/corpus/settings (the three files as the docs and tests write them).
 */
#include "config.h"
#include "fuzz_util.h"
#include "plexburst/pathmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int ok[] = {PB_EINVALID, PB_ECORRUPT, 0};
    pb_error e = PB_ERROR_INIT;
    int rc;
    if (!size)
        return 0;
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: {
        pb_config *c = NULL;
        rc = pb_config_load(&c, fuzz_file("settings.env", body, n), &e);
        if (rc == 0) {
            char desc[4096];
            pb_config_describe(c, desc, sizeof(desc));
            (void)pb_config_get(c, "PLEXBURST_PLEX_DIR");
        }
        pb_config_free(c);
        break;
    }
    case 1: {
        pb_plex_library *libs = NULL;
        size_t nlibs = 0;
        rc = pb_plex_libraries_load(&libs, &nlibs, fuzz_file("plex_libraries.json", body, n), &e);
        for (size_t i = 0; rc == 0 && i < nlibs; i++)
            if (strnlen(libs[i].name, sizeof(libs[i].name)) == sizeof(libs[i].name) ||
                libs[i].nlocations > 8)
                abort();
        free(libs);
        break;
    }
    default: {
        pb_pathmap *pm = NULL;
        rc = pb_pathmap_parse(&pm, (const char *)body, n, &e);
        /* each prefix mapped as a plain path, a file:// URL and a guid, with a tail */
        for (size_t i = 0; rc == 0 && i < pb_pathmap_count(pm) && i < 16; i++) {
            const char *from, *to;
            char in[3000];
            if (pb_pathmap_get(pm, i, &from, &to) != 0)
                abort();
            for (int kind = PB_PATH_PLAIN; kind <= PB_PATH_FILE_GUID; kind++) {
                char *out = NULL;
                size_t out_n = 0;
                int w = snprintf(in, sizeof(in), "%s%s/a%%20b%%2", kind > 1 ? "file://" : "", from);
                if (w < 0 || (size_t)w >= sizeof(in))
                    continue;
                int mr = pb_pathmap_map(pm, kind, in, (size_t)w, &out, &out_n);
                if (mr < 0 || (mr == 1 && (!out || strlen(out) != out_n)) || (mr == 0 && out))
                    abort();
                free(out);
            }
        }
        pb_pathmap_free(pm);
        break;
    }
    }
    fuzz_check_error(rc, &e, ok);
    return 0;
}
