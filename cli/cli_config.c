/*
 * cli_config.c: `--config FILE` accepted by every command (cli_config.h): taken out of argv
 * before the command parses its options, checked once, handed to the engine as PLEXBURST_CONFIG
 * (which loads the system file, the user file, then this one; plexburst/settings.h).
 * Role: called by main() before the dispatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plexburst/settings.h>

#include "cli.h"
#include "cli_config.h"

static const char *given;

const char *cli_config_file(void)
{
    return given;
}

const char *cli_config_get(const char *key)
{
    static char *kept[16];
    static size_t n;
    char *v = NULL;
    pb_error err = PB_ERROR_INIT;
    if (pb_settings_get(&v, key, given, &err) < 0 || !v)
        return NULL;
    if (n == sizeof(kept) / sizeof(*kept)) { /* more than any command asks for */
        free(v);
        return NULL;
    }
    return kept[n++] = v;
}

/* Removes argv[i .. i+n) from argv[0..*argc). */
static void drop(int *argc, char **argv, int i, int n)
{
    memmove(&argv[i], &argv[i + n], (size_t)(*argc - i - n + 1) * sizeof(*argv));
    *argc -= n;
}

static int needs_check(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "version") ||
        !strcmp(argv[1], "agent") || argv[1][0] == '-')
        return 0;
    for (int i = 2; i < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 0;
    return 1;
}

int cli_config_take(int *argc, char **argv)
{
    for (int i = 1; i < *argc && strcmp(argv[i], "--");) {
        const char *file = NULL;
        int n = 0;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "plexburst: --config needs a FILE\n");
                return CLI_EXIT_USAGE;
            }
            file = argv[i + 1];
            n = 2;
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
            n = 1;
        } else {
            i++;
            continue;
        }
        if (given) {
            fprintf(stderr, "plexburst: --config is given twice (%s, %s)\n", given, file);
            return CLI_EXIT_USAGE;
        }
        if (!*file) {
            fprintf(stderr, "plexburst: --config needs a FILE\n");
            return CLI_EXIT_USAGE;
        }
        given = file;
        drop(argc, argv, i, n);
    }
    if (given && setenv("PLEXBURST_CONFIG", given, 1) != 0) {
        fprintf(stderr, "plexburst: cannot set PLEXBURST_CONFIG\n");
        return CLI_EXIT_ERROR;
    }
    if (!needs_check(*argc, argv))
        return 0;
    pb_error err = PB_ERROR_INIT;
    int rc = pb_settings_check(given, &err);
    if (rc == 0)
        return 0;
    fprintf(stderr, "plexburst: %s\n", err.msg);
    for (int i = 2; i < *argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--json")) { /* the one JSON object of a failed --json command */
            json_t *j = cli_error_json(argv[1], rc, err.msg);
            json_object_set_new(j, "exit_code", json_integer(CLI_EXIT_USAGE));
            cli_print_json(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            json_decref(j);
            break;
        }
    return CLI_EXIT_USAGE; /* a configuration that does not load: nothing is done */
}
