/*
 * cmd_sigs.c: `plexburst sigs --plex-dir HOME --wanted LIST -o ANSWER`: step (b) of the export
 * protocol on the home side (pb_export_answer, include/plexburst/bundle.h): for each file of the
 * cloud's LIST (a manifest from `plexburst export --list-only`, or a text file of paths) that the
 * home lacks or holds in another version, says so, with a librsync signature of the home file.
 * Role: what the home sends the cloud so that the bundle carries deltas instead of whole files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plexburst/bundle.h>
#include "cli.h"

typedef unsigned long long ull;

int cmd_sigs(int argc, char **argv)
{
    const char *plex_dir = NULL, *wanted = NULL, *output = NULL, *manifest = NULL;
    const char *state_dir = NULL;
    int json = 0, whole = 0;
    const cli_opt opts[] = {
        {"plex-dir", CLI_OPT_STRING, &plex_dir, "DIR", "the home Plex data dir (required)"},
        {"wanted", CLI_OPT_STRING, &wanted, "LIST",
         "the cloud's LIST (manifest) or a text file of paths in walk order (required)"},
        {"output", CLI_OPT_STRING, &output, "FILE", "the ANSWER to write (required); also -o"},
        {"manifest", CLI_OPT_STRING, &manifest, "FILE",
         "a fresh manifest of the home dir (default: fingerprint it now)"},
        {"state-dir", CLI_OPT_STRING, &state_dir, "DIR", "state dir (default <DIR>.plexburst)"},
        {"whole-below", CLI_OPT_INT, &whole, "BYTES",
         "send files smaller than this whole (default 65536)"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object"},
        {NULL, 0, NULL, NULL, NULL}};
    char **av = calloc((size_t)argc + 1, sizeof(*av));
    if (!av)
        return CLI_EXIT_ERROR;
    for (int i = 0; i < argc; i++)
        av[i] = strcmp(argv[i], "-o") == 0 ? "--output" : argv[i];
    int rc =
        cli_parse("sigs", "--plex-dir HOME --wanted LIST -o ANSWER", opts, argc, av, NULL, 0, NULL);
    free(av);
    if (rc)
        return rc > 0 ? CLI_EXIT_OK : cli_usage_exit("sigs", json, argc, argv);
    if (!plex_dir || !wanted || !output) {
        cli_usage_error("sigs", "--plex-dir, --wanted and -o are required");
        return cli_usage_exit("sigs", json, 0, NULL);
    }
    if ((rc = cli_recover_json("sigs", json, plex_dir, state_dir)) != 0)
        return rc;
    pb_answer_options ao = PB_ANSWER_OPTIONS_INIT;
    ao.home_manifest = manifest;
    ao.state_dir = state_dir;
    ao.whole_below = whole > 0 ? (uint64_t)whole : 0;
    pb_export_stats st;
    pb_error err = PB_ERROR_INIT;
    rc = pb_export_answer(&st, plex_dir, wanted, output, &ao, &err);
    if (rc)
        return cli_fail_json("sigs", json, &err, rc);
    if (json) {
        json_t *j = json_pack("{s:s, s:b, s:i, s:n, s:s, s:I, s:I, s:f}", "command", "sigs", "ok",
                              1, "exit_code", CLI_EXIT_OK, "error", "answer", output, "answers",
                              (json_int_t)st.answers, "signature_bytes", (json_int_t)st.sig_bytes,
                              "ms", st.ms);
        rc = cli_print_json(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(j);
        return rc;
    }
    char b1[32];
    cli_state("✅",
              "answer %s: %llu paths the home lacks or holds in another version, %s of "
              "signatures (%.0f ms)",
              output, (ull)st.answers, cli_bytes(b1, sizeof(b1), st.sig_bytes), st.ms);
    return CLI_EXIT_OK;
}
