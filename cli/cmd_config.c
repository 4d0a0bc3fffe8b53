/*
 * cmd_config.c: `plexburst config [--all] [--json]`: every effective setting, its value and where
 * it came from (default, the system file, the user file, --config FILE, the environment), with
 * secrets masked and credentials in URLs and commands redacted (plexburst/settings.h).
 * Role: the answer to "which value does plexburst use, and why". Exit 0; 2 when the configuration
 * does not load (one line naming the file and the line).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <plexburst/settings.h>

#include "cli.h"
#include "cli_config.h"

static const char *const file_names[3] = {"system", "user", "--config"};

/* "user /home/x/.config/plexburst/plexburst.env:3", "environment", "default" */
static void where(char *out, size_t cap, const pb_settings_item *it)
{
    if (it->file)
        snprintf(out, cap, "%s %s:%u", pb_settings_source_name(it->source), it->file, it->line);
    else
        snprintf(out, cap, "%s", pb_settings_source_name(it->source));
}

static int report_json(const pb_settings_list *l, int all)
{
    json_t *files = json_array(), *set = json_array();
    json_t *o = json_pack("{s:b, s:o, s:o}", "ok", 1, "files", files, "settings", set);
    for (int i = 0; o && i < 3; i++)
        if (l->paths[i])
            json_array_append_new(files, json_pack("{s:s, s:s, s:b}", "source", file_names[i],
                                                   "path", l->paths[i], "read", l->read[i]));
    for (size_t i = 0; o && i < l->n; i++) {
        const pb_settings_item *it = &l->items[i];
        if (!all && it->source == PB_SETTINGS_FROM_UNSET)
            continue;
        json_t *s = json_pack("{s:s, s:o, s:b, s:s}", "key", it->key, "value",
                              it->value ? json_string(it->value) : json_null(), "secret",
                              it->secret, "source", pb_settings_source_name(it->source));
        if (s && it->file) {
            json_object_set_new(s, "file", json_string(it->file));
            json_object_set_new(s, "line", json_integer(it->line));
        }
        if (s && it->unknown)
            json_object_set_new(s, "unknown", json_true());
        json_array_append_new(set, s);
    }
    int rc = o ? cli_print_json(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : CLI_EXIT_ERROR;
    json_decref(o);
    return rc;
}

static int report_human(const pb_settings_list *l, int all)
{
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->items[i].key) > w)
            w = strlen(l->items[i].key);
    cli_banner("CONFIGURATION FILES (later over earlier, the environment over all)");
    for (int i = 0; i < 3; i++)
        if (l->paths[i])
            cli_state(l->read[i] ? "✅" : "⚠️", "%-8s %s%s", file_names[i], l->paths[i],
                      l->read[i] ? "" : " (absent)");
    cli_banner("SETTINGS");
    for (size_t i = 0; i < l->n; i++) {
        const pb_settings_item *it = &l->items[i];
        char from[4200];
        if (it->unknown) {
            cli_state("⚠️", "%s is in the environment but is no setting (a typo?)", it->key);
            continue;
        }
        if (!all && it->source == PB_SETTINGS_FROM_UNSET)
            continue;
        where(from, sizeof(from), it);
        printf("   %-*s  %s  (%s)\n", (int)w, it->key, it->value ? it->value : "-", from);
    }
    return CLI_EXIT_OK;
}

int cmd_config(int argc, char **argv)
{
    int json = 0, all = 0, rc;
    const cli_opt opts[] = {
        {"all", CLI_OPT_FLAG, &all, NULL, "also list the settings that are unset"},
        {"json", CLI_OPT_FLAG, &json, NULL, "print one JSON object instead of text"},
        {NULL, 0, NULL, NULL, NULL},
    };
    rc = cli_parse("config", "[--config FILE] [--all] [--json]", opts, argc, argv, NULL, 0, NULL);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : cli_usage_exit("config", json, argc, argv);
    pb_settings_list l;
    pb_error err = PB_ERROR_INIT;
    if ((rc = pb_settings_load(&l, cli_config_file(), &err)) < 0) {
        cli_fail_json("config", json, &err, rc);
        return CLI_EXIT_USAGE;
    }
    rc = json ? report_json(&l, all) : report_human(&l, all);
    pb_settings_list_dispose(&l);
    return rc;
}
