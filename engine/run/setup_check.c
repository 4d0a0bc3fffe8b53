/*
 * setup_check.c: is this host ready to sync (plexburst/setup.h): the store and the cloud answer
 * with their credentials (one harmless call each), the runner is usable, the Plex stop and start
 * commands exist (never run), the data dir belongs to the user Plex runs as, and the state dir has
 * room for a baseline. One item per check, never a secret in a message.
 * Role: the second half of `plexburst check` (the first: engine/plex/check.c).
 * Prerequisites: config.c (the settings), transport_config.c (store and SSH options), the
 * scaleway admin calls (a read-only listing).
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "config.h"
#include "plexburst/plex.h"
#include "plexburst/scaleway.h"
#include "plexburst/setup.h"
#include "ssh.h"
#include "transport_config.h"

#define MIB (1024ull * 1024ull)

typedef struct sx {
    pb_setup_report *r;
    size_t cap;
    const pb_config *cfg;
    int offline, nomem;
} sx;

void pb_setup_options_init(pb_setup_options *o)
{
    pb_setup_options d = PB_SETUP_OPTIONS_INIT;
    *o = d;
}

const char *pb_setup_status_mark(pb_setup_status s)
{
    return s == PB_SETUP_OK ? "✅" : s == PB_SETUP_WARN ? "⚠️" : "❌";
}

__attribute__((format(printf, 4, 5))) static void add(sx *x, pb_setup_status st, const char *name,
                                                      const char *fmt, ...)
{
    pb_setup_report *r = x->r;
    if (r->n == x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16;
        pb_setup_item *p = realloc(r->items, nc * sizeof(*p));
        if (!p) {
            x->nomem = 1;
            return;
        }
        r->items = p;
        x->cap = nc;
    }
    pb_setup_item *it = &r->items[r->n++];
    it->status = st;
    snprintf(it->name, sizeof(it->name), "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof(it->message), fmt, ap);
    va_end(ap);
    if (st == PB_SETUP_FAIL)
        r->failed = 1;
}

/* "12.3 GiB" */
static const char *human(char *buf, size_t cap, uint64_t n)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

/* The first word of a command line found: an absolute path executable, or on PATH. */
static int find_program(char *out, size_t cap, const char *cmdline)
{
    char word[PATH_MAX];
    const char *p = cmdline;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn(p, " \t;|&<>()");
    if (n == 0 || n >= sizeof(word))
        return 0;
    memcpy(word, p, n);
    word[n] = '\0';
    snprintf(out, cap, "%s", word);
    if (strchr(word, '/'))
        return access(word, X_OK) == 0;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    while (*path) {
        size_t dn = strcspn(path, ":");
        char full[PATH_MAX];
        struct stat st;
        if (snprintf(full, sizeof(full), "%.*s/%s", (int)dn, dn ? path : ".", word) <
                (int)sizeof(full) &&
            stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0) {
            snprintf(out, cap, "%s", full);
            return 1;
        }
        path += dn + (path[dn] == ':');
    }
    return 0;
}

/* ---- the store ---- */

static int first_object(const char *name, const pb_store_info *st, void *payload)
{
    (void)name;
    (void)st;
    (void)payload;
    return 1; /* one is enough */
}

static void check_store(sx *x, const char *url)
{
    if (!url) {
        add(x, PB_SETUP_OK, "store", "store: the cloud's default (no PLEXBURST_STORE)");
        return;
    }
    if (strncmp(url, "s3://", 5) != 0) {
        const char *dir = strncmp(url, "file://", 7) == 0 ? url + 7 : url;
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && access(dir, W_OK | X_OK) == 0)
            add(x, PB_SETUP_OK, "store", "store: %s is a writable directory", dir);
        else if (stat(dir, &st) != 0 && errno == ENOENT)
            add(x, PB_SETUP_WARN, "store", "store: %s does not exist yet (made by the first run)",
                dir);
        else
            add(x, PB_SETUP_FAIL, "store", "store: %s is not a writable directory", dir);
        return;
    }
    if (x->offline) {
        add(x, PB_SETUP_WARN, "store", "store: %s not contacted (--offline)", url);
        return;
    }
    pb_store *s = NULL;
    pb_error e = PB_ERROR_INIT;
    int rc = pb_transport_config_store_open_with(&s, url, pb_transport_config_cfg_get,
                                                 (void *)x->cfg, &e);
    if (rc == 0)
        rc = pb_store_list(s, "", first_object, NULL, &e);
    if (rc >= 0)
        add(x, PB_SETUP_OK, "store", "store: %s answers a listing with these credentials", url);
    else
        add(x, PB_SETUP_FAIL, "store", "%s%s", strncmp(e.msg, "store:", 6) ? "store: " : "", e.msg);
    pb_store_free(s);
}

/* ---- the cloud ---- */

static void check_ssh(sx *x, const char *url)
{
    pb_ssh_target t;
    pb_ssh_options so = PB_SSH_OPTIONS_INIT;
    pb_ssh *s = NULL;
    pb_error e = PB_ERROR_INIT;
    int status = -1;
    int rc = pb_ssh_url_parse(&t, url, &e);
    if (rc == 0)
        rc = pb_transport_config_ssh(&so, &t, pb_transport_config_cfg_get, (void *)x->cfg, &e);
    if (rc == 0) {
        so.reconnect_tries = 1;
        rc = pb_ssh_connect(&s, &so, &e);
    }
    if (rc == 0)
        rc = pb_ssh_exec(s, "true", NULL, 0, NULL, 0, NULL, 0, &status, &e);
    if (rc == 0 && status == 0)
        add(x, PB_SETUP_OK, "cloud", "cloud: %s accepts these credentials and runs `true`",
            pb_ssh_desc(s));
    else if (rc == 0)
        add(x, PB_SETUP_FAIL, "cloud", "cloud: %s: `true` exited with status %d", pb_ssh_desc(s),
            status);
    else
        add(x, PB_SETUP_FAIL, "cloud", "cloud: %s", e.msg);
    pb_ssh_free(s);
}

static int count_server(const pb_scaleway_server *s, void *payload)
{
    (void)s;
    (void)payload;
    return 0;
}

static void check_scaleway(sx *x, const char *cloud)
{
    pb_scaleway_options o = PB_SCALEWAY_OPTIONS_INIT;
    pb_error e = PB_ERROR_INIT;
    unsigned n = 0;
    const char *zone = strchr(cloud, ':');
    if (zone && zone[1])
        o.zone = zone + 1;
    if (pb_scaleway_status(&o, count_server, NULL, &n, &e) == 0)
        add(x, PB_SETUP_OK, "cloud",
            "cloud: the Scaleway API accepts these credentials (%u server%s tagged plexburst)", n,
            n == 1 ? "" : "s");
    else
        add(x, PB_SETUP_FAIL, "cloud", "cloud: %s", e.msg);
}

static void check_cloud(sx *x, const char *cloud)
{
    if (!cloud || strncmp(cloud, "local", 5) == 0)
        add(x, PB_SETUP_OK, "cloud", "cloud: %s (the agent runs on this host)",
            cloud ? cloud : "local");
    else if (x->offline)
        add(x, PB_SETUP_WARN, "cloud", "cloud: %s not contacted (--offline)", cloud);
    else if (strncmp(cloud, "ssh://", 6) == 0)
        check_ssh(x, cloud);
    else if (strncmp(cloud, "scaleway", 8) == 0)
        check_scaleway(x, cloud);
    else
        add(x, PB_SETUP_FAIL, "cloud", "cloud: unknown kind '%s' (local, ssh://, scaleway)", cloud);
}

/* ---- the runner and the Plex commands ---- */

static void check_plex_runner(sx *x)
{
    const char *tasks = pb_config_get(x->cfg, "PLEXBURST_ANALYSIS");
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s", tasks ? tasks : "scan,analyze,thumbnails,markers");
    for (char *s = NULL, *t = strtok_r(tmp, ",", &s); t; t = strtok_r(NULL, ",", &s))
        if (strcmp(t, "scan") && strcmp(t, "analyze") && strcmp(t, "thumbnails") &&
            strcmp(t, "markers") && strcmp(t, "loudness") && strcmp(t, "sonic")) {
            add(x, PB_SETUP_FAIL, "runner",
                "runner: plex: PLEXBURST_ANALYSIS names '%s' (known: "
                "scan, analyze, thumbnails, markers, loudness, sonic)",
                t);
            return;
        }
    if (!pb_config_get(x->cfg, "PLEXBURST_MEDIA"))
        add(x, PB_SETUP_WARN, "runner",
            "runner: plex: no PLEXBURST_MEDIA: the cloud's Plex sees the media where the "
            "libraries' paths already point");
    else if (!pb_config_get(x->cfg, "PLEXBURST_PLEX_LIBRARIES"))
        add(x, PB_SETUP_WARN, "runner",
            "runner: plex: no PLEXBURST_PLEX_LIBRARIES: bootstrap cannot create the sections");
    else
        add(x, PB_SETUP_OK, "runner", "runner: plex: media, libraries and analysis tasks set");
}

static void check_runner(sx *x, const char *runner, const char *cloud)
{
    char prog[PATH_MAX];
    if (!runner) {
        add(x, PB_SETUP_WARN, "runner",
            "runner: none set (PLEXBURST_RUNNER or --runner; bootstrap and sync need one)");
        return;
    }
    if (strcmp(runner, "plex") == 0) {
        check_plex_runner(x);
        return;
    }
    if (cloud && strncmp(cloud, "local", 5) != 0)
        add(x, PB_SETUP_OK, "runner", "runner: a command run on the cloud (not looked for here)");
    else if (strncmp(runner, "{mkplex}", 8) == 0 || find_program(prog, sizeof(prog), runner))
        add(x, PB_SETUP_OK, "runner", "runner: a command; its program is found%s%s",
            runner[0] == '{' ? "" : ": ", runner[0] == '{' ? "" : prog);
    else
        add(x, PB_SETUP_FAIL, "runner", "runner: the command's program '%s' is not found", prog);
}

static void check_plex_cmd(sx *x, const char *what, const char *key, int online)
{
    const char *cmd = pb_config_get(x->cfg, key);
    char prog[PATH_MAX];
    if (!cmd)
        add(x, online ? PB_SETUP_OK : PB_SETUP_WARN, what, "%s: none set (%s)%s", what, key,
            online ? ": the merge runs online" : ": stop Plex yourself before a merge, or set it");
    else if (find_program(prog, sizeof(prog), cmd))
        add(x, PB_SETUP_OK, what, "%s: %s found (not run)", what, prog);
    else
        add(x, PB_SETUP_FAIL, what, "%s: the program '%s' of %s is not found", what, prog, key);
}

/* ---- the data dir and the state dir ---- */

static void check_owner(sx *x, const char *plex_dir)
{
    struct stat st, db;
    char path[PATH_MAX + 128];
    if (stat(plex_dir, &st) != 0) {
        add(x, PB_SETUP_FAIL, "data dir", "data dir: %s: %s", plex_dir, strerror(errno));
        return;
    }
    struct passwd *pw = getpwuid(st.st_uid);
    char owner[160];
    snprintf(owner, sizeof(owner), "%s (uid %u)", pw ? pw->pw_name : "?", (unsigned)st.st_uid);
    snprintf(path, sizeof(path), "%s/%s", plex_dir, PB_PLEX_DB_REL);
    if (stat(path, &db) == 0 && db.st_uid != st.st_uid) {
        add(x, PB_SETUP_FAIL, "data dir",
            "data dir: owned by %s but its library DB by uid %u: Plex may not open what it cannot "
            "write",
            owner, (unsigned)db.st_uid);
        return;
    }
    uid_t me = geteuid();
    if (me == st.st_uid)
        add(x, PB_SETUP_OK, "data dir", "data dir: owned by %s, the user running this", owner);
    else if (me == 0)
        add(x, PB_SETUP_WARN, "data dir",
            "data dir: owned by %s (the user Plex runs as); running as root: run as that user "
            "so that new files keep their owner",
            owner);
    else if (access(plex_dir, W_OK | X_OK) == 0)
        add(x, PB_SETUP_WARN, "data dir",
            "data dir: owned by %s, writable by uid %u: new files get uid %u, not Plex's", owner,
            (unsigned)me, (unsigned)me);
    else
        add(x, PB_SETUP_FAIL, "data dir",
            "data dir: owned by %s; uid %u cannot write it (run as that user)", owner,
            (unsigned)me);
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void check_disk(sx *x, const char *plex_dir, const char *state_dir)
{
    char path[PATH_MAX + 128], a[32], b[32], c[32];
    snprintf(path, sizeof(path), "%s/%s", plex_dir, PB_PLEX_DB_REL);
    uint64_t pair = file_size(path);
    snprintf(path, sizeof(path), "%s/%s", plex_dir, PB_PLEX_BLOBS_REL);
    pair += file_size(path);
    /* the baseline keeps a copy of the pair; a run's snapshot and work need as much again at
     * worst: the pair plus a quarter, at least 64 MiB */
    uint64_t margin = pair / 4 > 64 * MIB ? pair / 4 : 64 * MIB;
    x->r->baseline_need = pair + margin;
    /* the state dir, or the nearest existing parent when it is not made yet */
    if (state_dir)
        snprintf(path, sizeof(path), "%s", state_dir);
    else
        snprintf(path, sizeof(path), "%s.plexburst", plex_dir);
    struct statvfs vs;
    while (statvfs(path, &vs) != 0) {
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) {
            snprintf(path, sizeof(path), "/");
            if (statvfs(path, &vs) != 0) {
                add(x, PB_SETUP_FAIL, "disk", "disk: cannot read the free space of %s",
                    state_dir ? state_dir : "the state dir");
                return;
            }
            break;
        }
        *slash = '\0';
    }
    x->r->disk_free = (uint64_t)vs.f_bavail * vs.f_frsize;
    add(x, x->r->disk_free >= x->r->baseline_need ? PB_SETUP_OK : PB_SETUP_FAIL, "disk",
        "disk: %s free for the state dir (%s); a baseline needs about %s (the DB pair, %s, and "
        "a margin)",
        human(a, sizeof(a), x->r->disk_free), path, human(b, sizeof(b), x->r->baseline_need),
        human(c, sizeof(c), pair));
}

int pb_setup_check(pb_setup_report *out, const pb_setup_options *o, pb_error *err)
{
    pb_config *cfg = NULL;
    int error = 0;
    memset(out, 0, sizeof(*out));
    if (!o || o->version != PB_SETUP_OPTIONS_VERSION)
        return pb_error_set(err, PB_EINVALID, "check: options of an unknown version");
    const char *file = o->config_file ? o->config_file : getenv("PLEXBURST_CONFIG");
    if ((error = pb_config_load(&cfg, file && *file ? file : NULL, err)) < 0 ||
        (error = pb_config_check_env(err)) < 0)
        goto done;
    sx x = {.r = out, .cfg = cfg, .offline = o->offline};
    const char *plex = o->plex_dir ? o->plex_dir : pb_config_get(cfg, "PLEXBURST_PLEX_DIR");
    const char *state = o->state_dir ? o->state_dir : pb_config_get(cfg, "PLEXBURST_STATE_DIR");
    const char *cloud = pb_config_get(cfg, "PLEXBURST_CLOUD");
    const char *online = pb_config_get(cfg, "PLEXBURST_ONLINE");
    int on = online && (!strcmp(online, "1") || !strcmp(online, "true"));
    check_store(&x, pb_config_get(cfg, "PLEXBURST_STORE"));
    check_cloud(&x, cloud);
    check_runner(&x, pb_config_get(cfg, "PLEXBURST_RUNNER"), cloud);
    check_plex_cmd(&x, "plex stop", "PLEXBURST_PLEX_STOP_CMD", on);
    check_plex_cmd(&x, "plex start", "PLEXBURST_PLEX_START_CMD", on);
    if (plex) {
        check_owner(&x, plex);
        check_disk(&x, plex, state);
    }
    if (x.nomem)
        error = pb_error_set(err, PB_ENOMEM, "check: out of memory");
done:
    if (error < 0)
        pb_setup_report_dispose(out);
    pb_config_free(cfg);
    return error;
}

void pb_setup_report_dispose(pb_setup_report *r)
{
    if (!r)
        return;
    free(r->items);
    memset(r, 0, sizeof(*r));
}
