/*
 * test_scaleway_units.c: the pieces of the scaleway cloud without a server:
 *   - the account: SCW_* over the scw config file, its profiles (SCW_PROFILE, active_profile),
 *     an unknown profile, a malformed file, the missing secret key and project, the region's zones;
 *   - the keys: the client key file is a valid OpenSSH ed25519 key (ssh-keygen -y gives the public
 *     line), the host key in the user data has the pinned SHA256 fingerprint (ssh-keygen -l);
 *   - the user data: YAML (libyaml) whose ssh_keys / users / write_files are what cloud-init
 *     reads, with the self-destruct timer at the cap and the secret only when given.
 * Prerequisites: ssh-keygen for the key checks (those parts skipped without it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "cloud_scaleway.h"
#include "testutil.h"

static char dir[4096];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void clear_env(void)
{
    static const char *const keys[] = {
        "SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID", "SCW_DEFAULT_ZONE",
        "SCW_API_URL",    "SCW_PROFILE",    "SCW_CONFIG_PATH",        "XDG_CONFIG_HOME"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
        unsetenv(keys[i]);
}

static void test_account(void **state)
{
    (void)state;
    pb_scw_account a;
    pb_error err = PB_ERROR_INIT;
    char cfg[4400], xdg[4200];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("scwu"));
    snprintf(cfg, sizeof(cfg), "%s/config.yaml", dir);
    clear_env();
    setenv("HOME", dir, 1); /* no ~/.config/scw/config.yaml there */
    /* nothing at all */
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "SCW_SECRET_KEY"));
    /* the file, its active profile over its top level */
    write_file(cfg, "access_key: SCWTOPLEVEL000000000\n"
                    "secret_key: 00000000-top0-0000-0000-000000000000\n"
                    "default_project_id: 00000000-0000-0000-0000-00000000top0\n"
                    "default_zone: nl-ams-1\n"
                    "active_profile: work\n"
                    "profiles:\n"
                    "  work:\n"
                    "    secret_key: 11111111-work-1111-1111-111111111111\n"
                    "    default_zone: pl-waw-2\n"
                    "  other:\n"
                    "    default_project_id: 22222222-0000-0000-0000-0000000other\n"
                    "    api_url: http://127.0.0.1:9/\n");
    setenv("SCW_CONFIG_PATH", cfg, 1);
    pb_error_clear(&err);
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), 0);
    assert_string_equal(a.secret_key, "11111111-work-1111-1111-111111111111");
    assert_string_equal(a.project, "00000000-0000-0000-0000-00000000top0");
    assert_string_equal(a.zone, "pl-waw-2");
    assert_string_equal(a.profile, "work");
    assert_string_equal(a.api_url, PB_SCW_DEFAULT_API);
    assert_string_equal(a.source, cfg);
    /* SCW_PROFILE picks another profile; the API URL loses its trailing slash */
    setenv("SCW_PROFILE", "other", 1);
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), 0);
    assert_string_equal(a.secret_key, "00000000-top0-0000-0000-000000000000");
    assert_string_equal(a.project, "22222222-0000-0000-0000-0000000other");
    assert_string_equal(a.zone, "nl-ams-1");
    assert_string_equal(a.api_url, "http://127.0.0.1:9");
    /* the environment wins, --cloud scaleway:ZONE over all */
    setenv("SCW_SECRET_KEY", "33333333-envv-3333-3333-333333333333", 1);
    setenv("SCW_DEFAULT_ZONE", "fr-par-3", 1);
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), 0);
    assert_string_equal(a.secret_key, "33333333-envv-3333-3333-333333333333");
    assert_string_equal(a.zone, "fr-par-3");
    assert_int_equal(pb_scw_account_load(&a, "fr-par-2", &err), 0);
    assert_string_equal(a.zone, "fr-par-2");
    /* an unknown zone, an unknown profile, a malformed file */
    pb_error_clear(&err);
    assert_int_equal(pb_scw_account_load(&a, "mars-1", &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "unknown Scaleway zone"));
    setenv("SCW_PROFILE", "nope", 1);
    pb_error_clear(&err);
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "no such profile"));
    unsetenv("SCW_PROFILE");
    write_file(cfg, "profiles: [unclosed\n");
    pb_error_clear(&err);
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "not valid YAML"));
    /* $XDG_CONFIG_HOME/scw/config.yaml when SCW_CONFIG_PATH is unset; no project: refused */
    clear_env();
    snprintf(xdg, sizeof(xdg), "%s/xdg", dir);
    assert_int_equal(tu_sh("mkdir -p '%s/scw'", xdg), 0);
    snprintf(cfg, sizeof(cfg), "%s/scw/config.yaml", xdg);
    write_file(cfg, "secret_key: 44444444-xdg0-4444-4444-444444444444\n");
    setenv("XDG_CONFIG_HOME", xdg, 1);
    pb_error_clear(&err);
    assert_int_equal(pb_scw_account_load(&a, NULL, &err), PB_EINVALID);
    assert_non_null(strstr(err.msg, "SCW_DEFAULT_PROJECT_ID"));
    /* the region's zones, the given one first */
    char zones[8][32];
    assert_int_equal(pb_scw_region_zones("nl-ams-2", zones, 8), 3);
    assert_string_equal(zones[0], "nl-ams-2");
    assert_string_equal(zones[1], "nl-ams-1");
    assert_string_equal(zones[2], "nl-ams-3");
    clear_env();
    tu_sh("rm -rf '%s'", dir);
}

/* The scalar at `a.b` (mapping keys) of the document, "" when absent. */
static const char *yaml_at(yaml_document_t *d, yaml_node_t *n, const char *a, const char *b)
{
    for (int level = 0; level < 2 && n; level++) {
        const char *key = level == 0 ? a : b;
        if (!key)
            break;
        yaml_node_t *next = NULL;
        if (n->type != YAML_MAPPING_NODE)
            return "";
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(d, p->key);
            if (k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
                next = yaml_document_get_node(d, p->value);
        }
        n = next;
    }
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
}

static void test_keys_and_user_data(void **state)
{
    (void)state;
    pb_scw_keys k;
    pb_error err = PB_ERROR_INIT;
    char path[4300], out[1024];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("scwk"));
    snprintf(path, sizeof(path), "%s/client_ed25519", dir);
    assert_int_equal(pb_scw_keys_generate(&k, path, "run1", &err), 0);
    assert_true(access(path, R_OK) == 0);
    assert_non_null(strstr(k.host_public, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"));
    assert_int_equal(strncmp(k.host_pin, "SHA256:", 7), 0);
    assert_int_equal(strlen(k.host_pin), 7 + 43);
    pb_scw_userdata u = {&k,         "run1", "/var/lib/plexburst", 2.5, NULL, "https://api.example",
                         "fr-par-1", NULL};
    char *ud = pb_scw_userdata_build(&u);
    assert_non_null(ud);
    assert_int_equal(strncmp(ud, "#cloud-config\n", 14), 0);
    assert_null(strstr(ud, "X-Auth-Token"));
    assert_non_null(strstr(ud, "OnBootSec=150min"));
    /* valid YAML with the keys where cloud-init reads them */
    yaml_parser_t p;
    yaml_document_t d;
    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)ud, strlen(ud));
    assert_true(yaml_parser_load(&p, &d));
    yaml_node_t *root = yaml_document_get_root_node(&d);
    assert_non_null(root);
    assert_string_equal(yaml_at(&d, root, "ssh_keys", "ed25519_private"), k.host_private);
    assert_string_equal(yaml_at(&d, root, "ssh_keys", "ed25519_public"), k.host_public);
    assert_string_equal(yaml_at(&d, root, "disable_root", NULL), "false");
    assert_non_null(strstr(ud, k.client_public));
    char host_key[4300];
    snprintf(host_key, sizeof(host_key), "%s/host_ed25519", dir);
    write_file(host_key, yaml_at(&d, root, "ssh_keys", "ed25519_private"));
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    /* with a self-destruct key: the terminate call holds it */
    u.selfdestruct_secret = "55555555-sd00-5555-5555-555555555555";
    char *ud2 = pb_scw_userdata_build(&u);
    assert_non_null(strstr(ud2, "X-Auth-Token: 55555555-sd00-5555-5555-555555555555"));
    assert_non_null(
        strstr(ud2, "https://api.example/instance/v1/zones/fr-par-1/servers/$id/action"));
    free(ud2);
    free(ud);
    /* OpenSSH reads both keys: the client's public line, the host key's fingerprint = the pin */
    if (tu_sh("command -v ssh-keygen >/dev/null") == 0) {
        tu_sh("chmod 600 '%s'", host_key);
        assert_int_equal(tu_sh_out(out, sizeof(out), "ssh-keygen -y -f '%s'", path), 0);
        char want[256];
        snprintf(want, sizeof(want), "%s", k.client_public);
        *strrchr(want, ' ') = '\0'; /* without the comment */
        assert_non_null(strstr(out, want));
        assert_int_equal(tu_sh_out(out, sizeof(out), "ssh-keygen -l -f '%s'", host_key), 0);
        assert_non_null(strstr(out, k.host_pin));
    } else {
        print_message("ssh-keygen missing: the OpenSSH cross-check is skipped\n");
    }
    pb_scw_keys_wipe(&k);
    assert_int_equal(k.host_private[0], 0);
    tu_sh("rm -rf '%s'", dir);
}

/* The plex runner's default start: the user data pulls plexinc/pms-docker at the home's
 * version; no version, or one that is not a plain tag, pulls nothing. */
static void test_user_data_plex_image(void **state)
{
    (void)state;
    pb_scw_keys k;
    pb_error err = PB_ERROR_INIT;
    char path[4300];
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("scwi"));
    snprintf(path, sizeof(path), "%s/client_ed25519", dir);
    assert_int_equal(pb_scw_keys_generate(&k, path, "run2", &err), 0);
    pb_scw_userdata u = {&k,
                         "run2",
                         "/var/lib/plexburst",
                         2,
                         NULL,
                         "https://api.example",
                         "fr-par-1",
                         "1.40.2.8395-c67dce28e"};
    char *ud = pb_scw_userdata_build(&u);
    assert_non_null(ud);
    assert_non_null(strstr(ud, "  - [docker, pull, 'plexinc/pms-docker:1.40.2.8395-c67dce28e']\n"));
    /* still YAML, the pull is runcmd's last item */
    yaml_parser_t p;
    yaml_document_t d;
    assert_true(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, (const unsigned char *)ud, strlen(ud));
    assert_true(yaml_parser_load(&p, &d));
    yaml_node_t *root = yaml_document_get_root_node(&d), *run = NULL;
    for (yaml_node_pair_t *q = root->data.mapping.pairs.start; q < root->data.mapping.pairs.top;
         q++) {
        yaml_node_t *key = yaml_document_get_node(&d, q->key);
        if (!strcmp((const char *)key->data.scalar.value, "runcmd"))
            run = yaml_document_get_node(&d, q->value);
    }
    assert_non_null(run);
    assert_int_equal(run->type, YAML_SEQUENCE_NODE);
    yaml_node_t *last = yaml_document_get_node(&d, run->data.sequence.items.top[-1]);
    assert_int_equal(last->type, YAML_SEQUENCE_NODE);
    assert_int_equal(last->data.sequence.items.top - last->data.sequence.items.start, 3);
    yaml_node_t *img = yaml_document_get_node(&d, last->data.sequence.items.start[2]);
    assert_string_equal((const char *)img->data.scalar.value,
                        "plexinc/pms-docker:1.40.2.8395-c67dce28e");
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    free(ud);
    /* a version that is not a tag never reaches the YAML */
    const char *bad[] = {"1.0'; rm -rf /", "1.0\n- x", "", "1.0 2", "a/b", "1.0:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_false(pb_scw_version_ok(bad[i]));
        u.plex_version = bad[i];
        ud = pb_scw_userdata_build(&u);
        assert_non_null(ud);
        assert_null(strstr(ud, "docker, pull"));
        free(ud);
    }
    u.plex_version = NULL;
    ud = pb_scw_userdata_build(&u);
    assert_null(strstr(ud, "pms-docker"));
    free(ud);
    assert_true(pb_scw_version_ok("1.41.0.8992-8463ad060"));
    pb_scw_keys_wipe(&k);
    tu_sh("rm -rf '%s'", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account),
        cmocka_unit_test(test_keys_and_user_data),
        cmocka_unit_test(test_user_data_plex_image),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
