/*
 * cloud_scaleway_config.c: the Scaleway account of the `scaleway` cloud (cloud_scaleway.h), read
 * as Scaleway's own tools read it so that users of the scw CLI bring their setup unchanged: the
 * environment (SCW_ACCESS_KEY, SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID, SCW_DEFAULT_ZONE,
 * SCW_API_URL, SCW_PROFILE) wins over the shared config file ($SCW_CONFIG_PATH, else
 * $XDG_CONFIG_HOME/scw/config.yaml, else ~/.config/scw/config.yaml), whose `profiles:` map is
 * read with libyaml (profile SCW_PROFILE, else the file's active_profile, over its top level).
 * Role: engine/cloud. Prerequisites: libyaml.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cloud_scaleway.h"
#include "fs.h"

static const char *env(const char *k)
{
    const char *v = getenv(k);
    return v && *v ? v : NULL;
}

/* The scalar value of `key` in the mapping node `map` (NULL when absent or not a scalar). */
static const char *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        if (k && v && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : NULL;
    }
    return NULL;
}

static yaml_node_t *map_node(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, key) == 0)
            return yaml_document_get_node(doc, p->value);
    }
    return NULL;
}

static void put(char *dst, size_t cap, const char *v)
{
    if (v && *v)
        snprintf(dst, cap, "%s", v);
}

/* One level of the file (the top, or a profile) into `a`. */
static void take_level(pb_scw_account *a, yaml_document_t *doc, yaml_node_t *m)
{
    put(a->access_key, sizeof(a->access_key), map_get(doc, m, "access_key"));
    put(a->secret_key, sizeof(a->secret_key), map_get(doc, m, "secret_key"));
    put(a->project, sizeof(a->project), map_get(doc, m, "default_project_id"));
    put(a->zone, sizeof(a->zone), map_get(doc, m, "default_zone"));
    put(a->api_url, sizeof(a->api_url), map_get(doc, m, "api_url"));
}

static int config_path(char *out, size_t cap)
{
    const char *p = env("SCW_CONFIG_PATH");
    if (p)
        return snprintf(out, cap, "%s", p), pb_fs_exists(out);
    if ((p = env("XDG_CONFIG_HOME")))
        snprintf(out, cap, "%s/scw/config.yaml", p);
    else if ((p = env("HOME")))
        snprintf(out, cap, "%s/.config/scw/config.yaml", p);
    else
        return 0;
    return pb_fs_exists(out);
}

static int read_file(pb_scw_account *a, const char *path, pb_error *err)
{
    int error = 0;
    char *text = NULL;
    size_t n = 0;
    yaml_parser_t parser;
    yaml_document_t doc;
    int have_parser = 0, have_doc = 0;
    if ((error = pb_fs_read_file(&text, &n, path, 1 << 20, err)) < 0)
        goto done;
    if (!yaml_parser_initialize(&parser)) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory (YAML parser)");
        goto done;
    }
    have_parser = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, n);
    if (!yaml_parser_load(&parser, &doc)) {
        error = pb_error_set(err, PB_EINVALID,
                             "the Scaleway config file %s is not valid YAML: %s "
                             "(line %zu)",
                             path, parser.problem ? parser.problem : "?",
                             (size_t)parser.problem_mark.line + 1);
        goto done;
    }
    have_doc = 1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) /* an empty file */
        goto done;
    if (root->type != YAML_MAPPING_NODE) {
        error =
            pb_error_set(err, PB_EINVALID, "the Scaleway config file %s is not a mapping", path);
        goto done;
    }
    take_level(a, &doc, root);
    const char *prof = env("SCW_PROFILE");
    if (!prof)
        prof = map_get(&doc, root, "active_profile");
    if (prof && *prof) {
        yaml_node_t *p = map_node(&doc, map_node(&doc, root, "profiles"), prof);
        if (!p && env("SCW_PROFILE")) {
            error = pb_error_set(err, PB_EINVALID,
                                 "SCW_PROFILE=%s: no such profile in %s (profiles:)", prof, path);
            goto done;
        }
        if (p) {
            take_level(a, &doc, p);
            snprintf(a->profile, sizeof(a->profile), "%s", prof);
        }
    }
    snprintf(a->source, sizeof(a->source), "%s", path);
done:
    if (have_doc)
        yaml_document_delete(&doc);
    if (have_parser)
        yaml_parser_delete(&parser);
    if (text) {
        memset(text, 0, n);
        free(text);
    }
    return error;
}

int pb_scw_account_load(pb_scw_account *a, const char *zone, pb_error *err)
{
    int error;
    char path[PATH_MAX];
    memset(a, 0, sizeof(*a));
    if (config_path(path, sizeof(path)) && (error = read_file(a, path, err)) < 0)
        return error;
    put(a->access_key, sizeof(a->access_key), env("SCW_ACCESS_KEY"));
    put(a->secret_key, sizeof(a->secret_key), env("SCW_SECRET_KEY"));
    put(a->project, sizeof(a->project), env("SCW_DEFAULT_PROJECT_ID"));
    put(a->zone, sizeof(a->zone), env("SCW_DEFAULT_ZONE"));
    put(a->api_url, sizeof(a->api_url), env("SCW_API_URL"));
    put(a->zone, sizeof(a->zone), zone);
    if (!a->zone[0])
        snprintf(a->zone, sizeof(a->zone), "%s", PB_SCW_DEFAULT_ZONE);
    if (!a->api_url[0])
        snprintf(a->api_url, sizeof(a->api_url), "%s", PB_SCW_DEFAULT_API);
    size_t n = strlen(a->api_url);
    while (n > 0 && a->api_url[n - 1] == '/')
        a->api_url[--n] = '\0';
    if (!a->source[0])
        snprintf(a->source, sizeof(a->source), "environment");
    if (!a->secret_key[0])
        return pb_error_set(err, PB_EINVALID,
                            "no Scaleway secret key: set SCW_SECRET_KEY (or secret_key in the scw "
                            "config file, ~/.config/scw/config.yaml)");
    if (!a->project[0])
        return pb_error_set(err, PB_EINVALID,
                            "no Scaleway project: set SCW_DEFAULT_PROJECT_ID (or "
                            "default_project_id in the scw config file)");
    char zones[8][32];
    if (pb_scw_region_zones(a->zone, zones, 8) == 0)
        return pb_error_set(err, PB_EINVALID,
                            "unknown Scaleway zone '%s' (fr-par-1..3, nl-ams-1..3, pl-waw-1..3)",
                            a->zone);
    return 0;
}

size_t pb_scw_region_zones(const char *zone, char out[][32], size_t cap)
{
    static const char *const all[] = {"fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2",
                                      "nl-ams-3", "pl-waw-1", "pl-waw-2", "pl-waw-3"};
    size_t n = 0, k = sizeof(all) / sizeof(*all);
    int known = 0;
    for (size_t i = 0; i < k; i++)
        known |= strcmp(all[i], zone) == 0;
    if (!known || cap == 0)
        return 0;
    snprintf(out[n++], 32, "%s", zone);
    for (size_t i = 0; i < k && n < cap; i++)
        if (strncmp(all[i], zone, 6) == 0 && strcmp(all[i], zone) != 0)
            snprintf(out[n++], 32, "%s", all[i]);
    return n;
}
