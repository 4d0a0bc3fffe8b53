/*
 * runner_plex_libs.c: the sections of the night. plex_libraries.json is read in both formats —
 * the project's {"libraries":[{"name","type","locations"[,"agent","scanner","language"]}]} and
 * the seed scripts' own file, a bare list of {"title","type","agent","scanner","language",
 * "paths"} — with all its locations, given as the cloud's Plex sees them. Sections of the
 * injected DB with the same title are reused; missing ones are created
 * (POST /library/sections?name=&type=&agent=&scanner=&language=&location=…).
 * Role: engine/runner (runner_plex.h). Prerequisites: jansson.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner_plex.h"

/* One entry normalised to {title,type,agent,scanner,language,paths[]}. */
static int norm_entry(json_t *arr, json_t *e, size_t i, pb_error *err)
{
    const char *title = json_string_value(json_object_get(e, "title"));
    if (!title)
        title = json_string_value(json_object_get(e, "name"));
    const char *type = json_string_value(json_object_get(e, "type"));
    json_t *paths = json_object_get(e, "paths");
    if (!paths)
        paths = json_object_get(e, "locations");
    if (!paths)
        paths = json_object_get(e, "location");
    if (!title || !*title || !type || !*type)
        return pb_error_set(err, PB_EINVALID,
                            "plex libraries: entry %zu needs a title (or name) and a type", i);
    json_t *p = json_array();
    if (json_is_string(paths)) {
        json_array_append(p, paths);
    } else {
        size_t k;
        json_t *v;
        json_array_foreach(paths, k, v) if (json_is_string(v)) json_array_append(p, v);
    }
    if (json_array_size(p) == 0) {
        json_decref(p);
        return pb_error_set(err, PB_EINVALID, "plex libraries: '%s' has no paths (locations)",
                            title);
    }
    json_t *o = json_pack("{s:s, s:s, s:o}", "title", title, "type", type, "paths", p);
    static const char *const opt[] = {"agent", "scanner", "language"};
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(e, opt[k]);
        if (json_is_string(v))
            json_object_set(o, opt[k], v);
    }
    json_array_append_new(arr, o);
    return 0;
}

int pb_runner_plex_libraries_load(json_t **out, const char *path, pb_error *err)
{
    json_error_t je;
    *out = NULL;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return pb_error_set(err, PB_EINVALID, "plex libraries: %s line %d: %s", path, je.line,
                            je.text);
    json_t *list = json_is_array(root) ? root : json_object_get(root, "libraries");
    if (!json_is_array(list)) {
        json_decref(root);
        return pb_error_set(err, PB_EINVALID,
                            "plex libraries: %s is neither {\"libraries\":[...]} nor a list", path);
    }
    json_t *arr = json_array();
    size_t i;
    json_t *e;
    int error = 0;
    json_array_foreach(list, i, e) if (!error) error = norm_entry(arr, e, i, err);
    json_decref(root);
    if (error) {
        json_decref(arr);
        return error;
    }
    *out = arr;
    return 0;
}

/* Plex's section types and their default agent/scanner (python-plexapi library.py `add`). */
static void defaults(const char *type, const char **agent, const char **scanner,
                     const char **language)
{
    *language = "en-US";
    if (!strcmp(type, "show")) {
        *agent = "tv.plex.agents.series";
        *scanner = "Plex TV Series";
    } else if (!strcmp(type, "artist") || !strcmp(type, "music")) {
        *agent = "tv.plex.agents.music";
        *scanner = "Plex Music";
    } else if (!strcmp(type, "photo")) {
        *agent = "com.plexapp.agents.none";
        *scanner = "Plex Photo Scanner";
    } else {
        *agent = "tv.plex.agents.movie";
        *scanner = "Plex Movie";
    }
}

static void from_directory(pb_runner_plex_section *s, json_t *d)
{
    memset(s, 0, sizeof(*s));
    json_t *k = json_object_get(d, "key");
    s->id = json_is_string(k) ? atol(json_string_value(k)) : (long)json_integer_value(k);
    const char *t = json_string_value(json_object_get(d, "title"));
    const char *ty = json_string_value(json_object_get(d, "type"));
    snprintf(s->title, sizeof(s->title), "%s", t ? t : "");
    snprintf(s->type, sizeof(s->type), "%s", ty ? ty : "");
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(d, "Location"), i, l)
    {
        const char *p = json_string_value(json_object_get(l, "path"));
        if (p && s->nloc < 32)
            snprintf(s->loc[s->nloc++], sizeof(s->loc[0]), "%s", p);
    }
}

/* GET /library/sections: the Directory array (new reference, never NULL on success). */
static int list_sections(pb_runner_plex_http *h, json_t **dirs, pb_error *err)
{
    long code;
    json_t *o = NULL;
    int error = pb_runner_plex_call(h, "GET", "/library/sections", &code, &o, err);
    if (error)
        return error;
    if (code != 200 || !o) {
        json_decref(o);
        return pb_error_set(err, PB_ENET, "plex: GET /library/sections answered %ld", code);
    }
    json_t *d = json_object_get(json_object_get(o, "MediaContainer"), "Directory");
    *dirs = json_is_array(d) ? json_incref(d) : json_array();
    json_decref(o);
    return 0;
}

static int create_section(pb_runner_plex_http *h, json_t *lib, FILE *log, pb_error *err)
{
    const char *title = json_string_value(json_object_get(lib, "title"));
    const char *type = json_string_value(json_object_get(lib, "type"));
    const char *agent, *scanner, *language;
    defaults(type, &agent, &scanner, &language);
    const char *v;
    if ((v = json_string_value(json_object_get(lib, "agent"))))
        agent = v;
    if ((v = json_string_value(json_object_get(lib, "scanner"))))
        scanner = v;
    if ((v = json_string_value(json_object_get(lib, "language"))))
        language = v;
    size_t cap = 65536, n = 0;
    char *q = malloc(cap), esc[3200];
    if (!q)
        return pb_error_set(err, PB_ENOMEM, "out of memory");
    n += (size_t)snprintf(q + n, cap - n, "/library/sections?name=");
    pb_runner_plex_escape(esc, sizeof(esc), title);
    n += (size_t)snprintf(q + n, cap - n, "%s&type=", esc);
    pb_runner_plex_escape(esc, sizeof(esc), !strcmp(type, "music") ? "artist" : type);
    n += (size_t)snprintf(q + n, cap - n, "%s&agent=", esc);
    pb_runner_plex_escape(esc, sizeof(esc), agent);
    n += (size_t)snprintf(q + n, cap - n, "%s&scanner=", esc);
    pb_runner_plex_escape(esc, sizeof(esc), scanner);
    n += (size_t)snprintf(q + n, cap - n, "%s&language=", esc);
    pb_runner_plex_escape(esc, sizeof(esc), language);
    n += (size_t)snprintf(q + n, cap - n, "%s", esc);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(lib, "paths"), i, p)
    {
        pb_runner_plex_escape(esc, sizeof(esc), json_string_value(p));
        if (n + strlen(esc) + 16 < cap)
            n += (size_t)snprintf(q + n, cap - n, "&location=%s", esc);
    }
    long code;
    int error = pb_runner_plex_call(h, "POST", q, &code, NULL, err);
    free(q);
    if (!error && code != 200 && code != 201)
        error = pb_error_set(err, PB_EREFUSED, "plex: creating the section '%s' answered %ld",
                             title, code);
    if (!error)
        pb_runner_plex_say(log, "✅ section '%s' (%s) created with %zu location(s)", title, type,
                           json_array_size(json_object_get(lib, "paths")));
    return error;
}

int pb_runner_plex_sections(pb_runner_plex_http *h, const pb_runner_plex_cfg *c,
                            pb_runner_plex_section **out, int *n, FILE *log, pb_error *err)
{
    int error = 0;
    json_t *libs = NULL, *dirs = NULL;
    pb_runner_plex_section *s = NULL;
    *out = NULL;
    *n = 0;
    if (c->libraries[0] && (error = pb_runner_plex_libraries_load(&libs, c->libraries, err)) < 0)
        goto done;
    if ((error = list_sections(h, &dirs, err)) < 0)
        goto done;
    size_t i, k;
    json_t *l, *d;
    int created = 0;
    json_array_foreach(libs, i, l)
    {
        const char *title = json_string_value(json_object_get(l, "title"));
        int found = 0;
        json_array_foreach(dirs, k, d)
        {
            const char *t = json_string_value(json_object_get(d, "title"));
            found = found || (t && strcmp(t, title) == 0);
        }
        if (found) {
            pb_runner_plex_say(log, "✅ section '%s' exists (reused)", title);
            continue;
        }
        if ((error = create_section(h, l, log, err)) < 0)
            goto done;
        created = 1;
    }
    if (created) {
        json_decref(dirs);
        dirs = NULL;
        if ((error = list_sections(h, &dirs, err)) < 0)
            goto done;
    }
    s = calloc(json_array_size(dirs) + 1, sizeof(*s));
    if (!s) {
        error = pb_error_set(err, PB_ENOMEM, "out of memory");
        goto done;
    }
    json_array_foreach(dirs, k, d)
    {
        const char *t = json_string_value(json_object_get(d, "title"));
        int wanted = !libs;
        json_array_foreach(libs, i, l) wanted =
            wanted || (t && !strcmp(t, json_string_value(json_object_get(l, "title"))));
        if (wanted)
            from_directory(&s[(*n)++], d);
    }
    if (libs && (size_t)*n < json_array_size(libs)) {
        error = pb_error_set(err, PB_EREFUSED, "plex: %zu section(s) of %s are missing in Plex",
                             json_array_size(libs) - (size_t)*n, c->libraries);
        goto done;
    }
    *out = s;
    s = NULL;
done:
    free(s);
    json_decref(libs);
    json_decref(dirs);
    return error;
}
