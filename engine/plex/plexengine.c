/*
 * plexengine.c: finds Plex's own SQLite engine ("Plex SQLite", or "Plex Media Server --sqlite")
 * builds the command line that runs a SQL script through it, and runs it.
 * Role: Plex's engine has the real icu_root collation and collating tokenizer, so plexburst
 * prefers it for the final write into a live Plex DB (docs/compat.md); without it the in-process
 * compatibility layer is used. Locations follow DBRepair's host list.
 * Prerequisites: POSIX (stat, access).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plexengine.h"
#include "plexburst/plex.h"
#include "plexburst/plexmerge.h"

extern char **environ;

#define PLEX_SQLITE_NAME "Plex SQLite"
#define PMS_NAME         "Plex Media Server"

/* Install directories holding "Plex SQLite" and "Plex Media Server", most common first. */
static const char *const standard_dirs[] = {
    "/usr/lib/plexmediaserver",     /* Debian/Ubuntu/Fedora/Arch packages, plexinc, lsio, binhex */
    "/app/usr/lib/plexmediaserver", /* hotio image */
    "/var/packages/PlexMediaServer/target",        /* Synology DSM 7 */
    "/var/packages/Plex Media Server/target",      /* Synology DSM 6 */
    "/volume1/@appstore/PlexMediaServer",          /* Synology, package store on volume1 */
    "/volume1/@appstore/Plex Media Server",        /* Synology DSM 6 */
    "/share/CACHEDEV1_DATA/.qpkg/PlexMediaServer", /* QNAP QTS/QuTS */
    "/share/MD0_DATA/.qpkg/PlexMediaServer",       /* QNAP, older models */
    "/snap/plexmediaserver/current",               /* Snap */
    "/snap/plexmediaserver/current/usr/lib/plexmediaserver",
    "/apps/plexmediaserver/Binaries",                     /* Netgear ReadyNAS */
    "/volume1/.@plugins/AppCentral/plexmediaserver",      /* ASUSTOR */
    "/mnt/HD/HD_a2/Nas_Prog/plexmediaserver/binaries",    /* Western Digital OS5 */
    "/Applications/Plex Media Server.app/Contents/MacOS", /* macOS */
    "/usr/local/share/plexmediaserver",                   /* FreeBSD */
    "/usr/local/share/plexmediaserver-plexpass",          /* FreeBSD, Plex Pass port */
    NULL,
};

const char *pb_plex_engine_kind_name(pb_plex_engine_kind kind)
{
    switch (kind) {
    case PB_ENGINE_PLEX_SQLITE:
        return "plex_sqlite";
    case PB_ENGINE_PMS_SQLITE:
        return "pms_sqlite";
    case PB_ENGINE_SQLITE3_SHELL:
        return "sqlite3_shell";
    default:
        return "none";
    }
}

static int is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The kind of an executable given by name: "Plex Media Server" runs with --sqlite, a name
 * starting with "sqlite3" is a stand-in shell, anything else is treated like "Plex SQLite". */
static pb_plex_engine_kind kind_of(const char *path)
{
    const char *b = base_name(path);
    if (strcmp(b, PMS_NAME) == 0)
        return PB_ENGINE_PMS_SQLITE;
    if (strncmp(b, "sqlite3", 7) == 0)
        return PB_ENGINE_SQLITE3_SHELL;
    return PB_ENGINE_PLEX_SQLITE;
}

/* Fills out with path made absolute (without resolving symlinks: the name decides the kind). */
static int set_engine(pb_plex_engine *out, const char *path, pb_plex_engine_kind kind,
                      pb_error *err)
{
    int n;
    if (path[0] == '/') {
        n = snprintf(out->path, sizeof(out->path), "%s", path);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof(cwd)))
            return pb_error_errno(err, "plex engine: cannot resolve %s", path);
        n = snprintf(out->path, sizeof(out->path), "%s/%s", cwd, path);
    }
    if (n < 0 || (size_t)n >= sizeof(out->path))
        return pb_error_set(err, PB_EINVALID, "plex engine: path too long: %.200s", path);
    out->kind = kind;
    return 0;
}

/* Looks for "Plex SQLite", then "Plex Media Server" in dir; 0, or 1 when neither is there. */
static int find_in_dir(pb_plex_engine *out, const char *dir, pb_error *err)
{
    static const char *const names[] = {PLEX_SQLITE_NAME, PMS_NAME};
    static const pb_plex_engine_kind kinds[] = {PB_ENGINE_PLEX_SQLITE, PB_ENGINE_PMS_SQLITE};
    char path[4096];
    for (int i = 0; i < 2; i++) {
        int n = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (n > 0 && (size_t)n < sizeof(path) && is_executable_file(path))
            return set_engine(out, path, kinds[i], err);
    }
    return 1;
}

int pb_plex_engine_find_in(pb_plex_engine *out, const char *root, pb_error *err)
{
    char dir[4096];
    if (!out)
        return pb_error_set(err, PB_EINVALID, "plex engine: no result");
    memset(out, 0, sizeof(*out));
    if (!root)
        root = "";
    for (const char *const *d = standard_dirs; *d; d++) {
        int n = snprintf(dir, sizeof(dir), "%s%s", root, *d);
        if (n < 0 || (size_t)n >= sizeof(dir))
            continue;
        int rc = find_in_dir(out, dir, err);
        if (rc <= 0)
            return rc;
    }
    return pb_error_set(err, PB_ENOTFOUND,
                        "plex engine: no Plex SQLite in the standard locations (set --plex-sqlite "
                        "or " PB_PLEX_ENGINE_ENV ")");
}

int pb_plex_engine_find(pb_plex_engine *out, const char *configured, pb_error *err)
{
    struct stat st;
    if (!out)
        return pb_error_set(err, PB_EINVALID, "plex engine: no result");
    memset(out, 0, sizeof(*out));
    if (!configured) {
        const char *env = getenv(PB_PLEX_ENGINE_ENV);
        if (env && *env)
            configured = env;
    }
    if (!configured)
        return pb_plex_engine_find_in(out, "", err);
    if (stat(configured, &st) != 0) {
        if (errno == ENOENT)
            return pb_error_set(err, PB_ENOTFOUND, "plex engine: %s does not exist", configured);
        return pb_error_errno(err, "plex engine: %s", configured);
    }
    if (S_ISDIR(st.st_mode)) {
        int rc = find_in_dir(out, configured, err);
        if (rc > 0)
            return pb_error_set(err, PB_ENOTFOUND,
                                "plex engine: no executable \"" PLEX_SQLITE_NAME "\" or \"" PMS_NAME
                                "\" in %s",
                                configured);
        return rc;
    }
    if (!is_executable_file(configured))
        return pb_error_set(err, PB_ENOTFOUND, "plex engine: %s is not an executable file",
                            configured);
    return set_engine(out, configured, kind_of(configured), err);
}

int pb_plex_engine_argv(pb_plex_engine_cmd *out, const pb_plex_engine *e, const char *db,
                        const char *ext_path, pb_error *err)
{
    int n = 0;
    if (!out || !e || e->kind == PB_ENGINE_NONE || !e->path[0])
        return pb_error_set(err, PB_EINVALID, "plex engine: no engine to run");
    if (!db || !*db || strchr(db, '\n'))
        return pb_error_set(err, PB_EINVALID, "plex engine: invalid database path");
    memset(out, 0, sizeof(*out));
    /* A DB path starting with '-' would be read as an option. */
    int len = snprintf(out->db, sizeof(out->db), "%s%s", db[0] == '-' ? "./" : "", db);
    if (len < 0 || (size_t)len >= sizeof(out->db))
        return pb_error_set(err, PB_EINVALID, "plex engine: database path too long");
    out->argv[n++] = e->path;
    switch (e->kind) {
    case PB_ENGINE_PMS_SQLITE:
        out->argv[n++] = "--sqlite";
        break;
    case PB_ENGINE_SQLITE3_SHELL:
        out->argv[n++] = "-bail";
        if (ext_path) {
            /* The shell's dot-command parser: '...' is literal; "..." knows \" and \\. */
            if (strchr(ext_path, '\n'))
                return pb_error_set(err, PB_EINVALID, "plex engine: invalid extension path");
            if (!strchr(ext_path, '\'')) {
                len = snprintf(out->load, sizeof(out->load), ".load '%s'", ext_path);
            } else {
                size_t k = strlen(".load \"");
                const char *p = ext_path;
                memcpy(out->load, ".load \"", k);
                for (; *p && k + 4 < sizeof(out->load); p++) {
                    if (*p == '"' || *p == '\\')
                        out->load[k++] = '\\';
                    out->load[k++] = *p;
                }
                out->load[k++] = '"';
                out->load[k] = '\0';
                len = *p ? -1 : (int)k;
            }
            if (len < 0 || (size_t)len >= sizeof(out->load))
                return pb_error_set(err, PB_EINVALID, "plex engine: extension path too long");
            out->argv[n++] = "-cmd";
            out->argv[n++] = out->load;
        }
        break;
    default:
        break;
    }
    out->argv[n++] = out->db;
    out->argv[n] = NULL;
    out->argc = n;
    return 0;
}

int pb_plex_engine_resolve(pb_plex_engine *out, int choice, const char *path, pb_error *err)
{
    memset(out, 0, sizeof(*out));
    if (choice == PB_PLEX_ENGINE_IN_PROCESS)
        return 0;
    if (choice == PB_PLEX_ENGINE_PATH) {
        if (!path || !*path)
            return pb_error_set(err, PB_EINVALID, "plex engine: no engine path (--plex-sqlite)");
        int error = pb_plex_engine_find(out, path, err);
        return error ? error : 1;
    }
    if (choice != PB_PLEX_ENGINE_AUTO)
        return pb_error_set(err, PB_EINVALID, "plex engine: unknown engine choice %d", choice);
    pb_error quiet = PB_ERROR_INIT;
    int rc = pb_plex_engine_find(out, NULL, &quiet);
    if (rc == 0)
        return 1;
    if (rc == PB_ENOTFOUND)
        return 0;
    return pb_error_set(err, rc, "%s", quiet.msg);
}

void pb_plex_engine_describe(char *out, size_t cap, const pb_plex_engine *e, const char *ext_path)
{
    if (e->kind == PB_ENGINE_PMS_SQLITE)
        snprintf(out, cap, "plex-sqlite: %s --sqlite", e->path);
    else if (e->kind == PB_ENGINE_SQLITE3_SHELL)
        snprintf(out, cap, "plex-sqlite: %s (sqlite3 stand-in%s%s)", e->path,
                 ext_path ? ", .load " : "", ext_path ? ext_path : "");
    else
        snprintf(out, cap, "plex-sqlite: %s", e->path);
}

/* The first non-empty line of the engine's stderr, for the error message. */
static void first_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    out[0] = '\0';
    if (!f)
        return;
    char line[400];
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0]) {
            snprintf(out, cap, "%s", line);
            break;
        }
    }
    fclose(f);
}

int pb_plex_engine_run(const pb_plex_engine *e, const char *db, const char *ext_path,
                       const char *script, const char *errlog, int inherit_fd, pb_error *err)
{
    int error = 0, in = -1, errfd = -1, nullfd = -1, status = 0, fa_init = 0;
    pb_plex_engine_cmd cmd;
    posix_spawn_file_actions_t fa;
    pid_t pid;

    if ((error = pb_plex_engine_argv(
             &cmd, e, db, e->kind == PB_ENGINE_SQLITE3_SHELL ? ext_path : NULL, err)) != 0)
        return error;
    if ((in = open(script, O_RDONLY | O_CLOEXEC)) < 0 ||
        (errfd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        (nullfd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0) {
        error = pb_error_errno(err, "plex engine: cannot prepare the engine's input and output");
        goto done;
    }
    if (posix_spawn_file_actions_init(&fa) != 0) {
        error = pb_error_set(err, PB_ENOMEM, "plex engine: out of memory");
        goto done;
    }
    fa_init = 1;
    /* dup2 clears FD_CLOEXEC on the copies; the inherited fd goes last, to a number that is not
     * its own (dup2 onto itself would keep the flag) */
    if (posix_spawn_file_actions_adddup2(&fa, in, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, nullfd, 1) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, errfd, 2) != 0 ||
        (inherit_fd >= 0 &&
         posix_spawn_file_actions_adddup2(&fa, inherit_fd, inherit_fd == 3 ? 4 : 3) != 0)) {
        error = pb_error_set(err, PB_ENOMEM, "plex engine: out of memory");
        goto done;
    }
    int rc = posix_spawn(&pid, cmd.argv[0], &fa, NULL, (char *const *)cmd.argv, environ);
    if (rc != 0) {
        errno = rc;
        error = pb_error_errno(err, "plex engine: cannot run %s", cmd.argv[0]);
        goto done;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            error = pb_error_errno(err, "plex engine: waiting for %s", cmd.argv[0]);
            goto done;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char line[400];
        first_line(errlog, line, sizeof(line));
        if (WIFEXITED(status))
            error = pb_error_set(err, PB_ERROR, "the engine %s failed (exit %d): %s", cmd.argv[0],
                                 WEXITSTATUS(status), line[0] ? line : "no message");
        else
            error = pb_error_set(err, PB_ERROR, "the engine %s was killed by signal %d",
                                 cmd.argv[0], WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    }
done:
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    if (in >= 0)
        close(in);
    if (errfd >= 0)
        close(errfd);
    if (nullfd >= 0)
        close(nullfd);
    return error;
}
