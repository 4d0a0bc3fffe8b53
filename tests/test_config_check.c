/*
 * test_config_check.c: `plexburst check` probes the store and the cloud with the configured
 * credentials, one harmless call each: a listing of an s3:// store on the loopback S3 server
 * (scripts/s3-test-server), an ssh:// cloud on the loopback sshd (scripts/ssh-test-server)
 * running `true`. Good credentials (given in the user file: the files reach the store and the
 * SSH options) pass, wrong ones fail (exit 1) with a line naming the store or the cloud; no
 * secret is in the output. Skips (77) when neither server can run here.
 * Prerequisites: the built plexburst and mkplex; node/npm (S3), openssh-server (SSH).
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "testutil.h"
#include "transfer_util.h"

#define BUCKET "plexburst-test"
#define AK     "PBTESTKEY0001"
#define SK     "pbtest-secret-0001"
#define BAD_SK "wrong-secret-0002"

static char dir[2048], sshd_dir[2100], s3_dir[2100];
static int s3_port, ssh_port;
static char out[65536], err[8192];

/* Runs `plexburst check --json` under `env -i` with the user file holding `settings`; returns
 * the exit status, the JSON in out. */
static int check(const char *settings)
{
    char path[4300], o[4300], e[4300];
    snprintf(path, sizeof(path), "%s/xdg/plexburst/plexburst.env", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "PLEXBURST_PLEX_DIR=%s/plex\n%s", dir, settings);
    fclose(f);
    snprintf(o, sizeof(o), "%s/out.txt", dir);
    snprintf(e, sizeof(e), "%s/err.txt", dir);
    int rc = tu_sh("cd '%s' && env -i PATH=\"$PATH\" HOME='%s/home' PLEXBURST_SYSCONFDIR='%s/etc' "
                   "XDG_CONFIG_HOME='%s/xdg' '%s' check --json >'%s' 2>'%s'",
                   dir, dir, dir, dir, tu_build_path("plexburst"), o, e);
    char *so = tu_slurp(o), *se = tu_slurp(e);
    snprintf(out, sizeof(out), "%s", so ? so : "");
    snprintf(err, sizeof(err), "%s", se ? se : "");
    free(so);
    free(se);
    if (strstr(out, SK) || strstr(err, SK) || strstr(out, BAD_SK) || strstr(err, BAD_SK))
        fail_msg("a secret in the output: %s %s", out, err);
    return rc;
}

/* The status of the setup check `name` in out. */
static const char *status_of(const char *name, char *msg, size_t cap)
{
    static char st[16];
    json_t *j = json_loads(out, 0, NULL), *v;
    size_t i;
    st[0] = msg[0] = '\0';
    if (!j)
        fail_msg("not JSON: %s %s", out, err);
    json_array_foreach(json_object_get(j, "setup"), i, v)
    {
        if (!strcmp(json_string_value(json_object_get(v, "check")), name)) {
            snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(v, "status")));
            snprintf(msg, cap, "%s", json_string_value(json_object_get(v, "message")));
        }
    }
    json_decref(j);
    return st;
}

static void expect(int rc, int want_rc, const char *name, const char *want, const char *words)
{
    char msg[1024];
    const char *st = status_of(name, msg, sizeof(msg));
    if (rc != want_rc || strcmp(st, want) || (words && !strstr(msg, words)))
        fail_msg("%s: exit %d (expected %d), %s (expected %s): %s\n%s", name, rc, want_rc, st, want,
                 msg, err);
}

static void test_store(void **state)
{
    (void)state;
    if (s3_port <= 0) {
        print_message("no S3 test server here: the store's check not covered\n");
        return;
    }
    char s[1024];
    snprintf(s, sizeof(s),
             "PLEXBURST_STORE=s3://" BUCKET "/check\nPLEXBURST_S3_ENDPOINT=http://127.0.0.1:%d\n"
             "PLEXBURST_S3_REGION=fr-par\nPLEXBURST_S3_ACCESS_KEY=" AK
             "\nPLEXBURST_S3_SECRET_KEY=%s\n",
             s3_port, SK);
    expect(check(s), 0, "store", "ok", "s3://" BUCKET "/check");
    snprintf(s, sizeof(s),
             "PLEXBURST_STORE=s3://" BUCKET "/check\nPLEXBURST_S3_ENDPOINT=http://127.0.0.1:%d\n"
             "PLEXBURST_S3_REGION=fr-par\nPLEXBURST_S3_ACCESS_KEY=" AK
             "\nPLEXBURST_S3_SECRET_KEY=%s\n",
             s3_port, BAD_SK);
    expect(check(s), 1, "store", "fail", NULL);
    snprintf(s, sizeof(s),
             "PLEXBURST_STORE=s3://no-such-bucket-here/x\nPLEXBURST_S3_ENDPOINT=http://"
             "127.0.0.1:%d\nPLEXBURST_S3_REGION=fr-par\nPLEXBURST_S3_ACCESS_KEY=" AK
             "\nPLEXBURST_S3_SECRET_KEY=%s\n",
             s3_port, SK);
    expect(check(s), 1, "store", "fail", NULL);
}

static void test_cloud(void **state)
{
    (void)state;
    if (ssh_port <= 0) {
        print_message("no sshd here: the cloud's check not covered\n");
        return;
    }
    struct passwd *pw = getpwuid(geteuid());
    assert_non_null(pw);
    char s[8192];
    snprintf(s, sizeof(s),
             "PLEXBURST_CLOUD=ssh://%s@127.0.0.1:%d\nPLEXBURST_SSH_KEY=%s/client_ed25519\n"
             "PLEXBURST_KNOWN_HOSTS=%s/known_hosts\nPLEXBURST_SSH_AGENT=0\n",
             pw->pw_name, ssh_port, sshd_dir, sshd_dir);
    expect(check(s), 0, "cloud", "ok", "runs `true`");
    /* a key the server does not accept */
    snprintf(s, sizeof(s),
             "PLEXBURST_CLOUD=ssh://%s@127.0.0.1:%d\nPLEXBURST_SSH_KEY=%s/other_host_ed25519\n"
             "PLEXBURST_KNOWN_HOSTS=%s/known_hosts\nPLEXBURST_SSH_AGENT=0\n",
             pw->pw_name, ssh_port, sshd_dir, sshd_dir);
    expect(check(s), 1, "cloud", "fail", NULL);
    /* a host key that is not the server's */
    snprintf(s, sizeof(s),
             "PLEXBURST_CLOUD=ssh://%s@127.0.0.1:%d\nPLEXBURST_SSH_KEY=%s/client_ed25519\n"
             "PLEXBURST_SSH_HOST_KEY=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
             "PLEXBURST_SSH_AGENT=0\n",
             pw->pw_name, ssh_port, sshd_dir);
    expect(check(s), 1, "cloud", "fail", NULL);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "%s", tu_tmpdir("cfgcheck"));
    snprintf(sshd_dir, sizeof(sshd_dir), "%s/sshd", dir);
    snprintf(s3_dir, sizeof(s3_dir), "%s/s3", dir);
    if (tu_sh("cd '%s' && mkdir -p etc xdg/plexburst home sshd s3 && '%s' init --dir plex --scale "
              "tiny --no-tree >/dev/null",
              dir, tu_build_path("mkplex")) != 0)
        return -1;
    char log[4300];
    snprintf(log, sizeof(log), "%s/s3.log", dir);
    int rc = xu_s3_start(&s3_port, s3_dir, log);
    if (rc != 0 && rc != 77)
        return -1;
    snprintf(log, sizeof(log), "%s/sshd.log", dir);
    int rc2 = xu_sshd_start(&ssh_port, sshd_dir, log);
    if (rc2 != 0 && rc2 != 77)
        return -1;
    if (rc == 77 && rc2 == 77) {
        tu_sh("rm -rf '%s'", dir);
        tu_skip("neither the S3 test server nor sshd can run here");
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (ssh_port > 0)
        xu_sshd_stop(sshd_dir);
    if (s3_port > 0)
        xu_s3_stop(s3_dir);
    tu_sh("rm -rf '%s'", dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_cloud),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
