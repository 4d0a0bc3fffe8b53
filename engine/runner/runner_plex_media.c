/*
 * runner_plex_media.c: the plex runner's guard of the media mount and the VFS warm-up. A degraded
 * mount made Plex delete 221 of 224 movies in the scripts this project replaces; before any
 * scan, every section location must be listed and not empty, a sample of its files readable
 * (first 64 KiB) and, when PLEXBURST_MEDIA_SENTINEL names a file, that file present at each
 * location root. The checks run in a child process watched with a timeout, since a FUSE mount
 * whose backend went away can hang a reader. Before deep analysis the first 64 KiB of every
 * media file are read once (rclone's VFS cache warmed: no ENOENT storms when Plex's analysers
 * open many files at once).
 * Role: engine/runner (runner_plex.h). Prerequisites: POSIX (fork, poll).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "runner_plex.h"

#define HEAD (64 * 1024)

/* Reads the first 64 KiB of path; 0 or -1. */
static int read_head(const char *path)
{
    static char buf[HEAD];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    return n < 0 ? -1 : 0;
}

/* Depth-first walk of dir reading the head of up to `max` regular files (max < 0: all);
 * *files counts them. -1 with msg on the first failure. */
static int walk(const char *dir, long max, long *files, int depth, char *msg, size_t cap)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(msg, cap, "cannot list %.900s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    for (;;) {
        if (rc != 0 || (max >= 0 && *files >= max))
            break;
        errno = 0;
        if (!(e = readdir(d))) {
            /* a FUSE mount reports a failed listing here, not at opendir */
            if (errno) {
                snprintf(msg, cap, "cannot list %.900s: %s", dir, strerror(errno));
                rc = -1;
            }
            break;
        }
        if (e->d_name[0] == '.')
            continue;
        char p[4096];
        struct stat st;
        if (snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= (int)sizeof(p))
            continue;
        if (stat(p, &st) != 0) {
            snprintf(msg, cap, "cannot stat %.900s: %s", p, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode) && depth < 32) {
            rc = walk(p, max, files, depth + 1, msg, cap);
        } else if (S_ISREG(st.st_mode)) {
            if (read_head(p) != 0) {
                snprintf(msg, cap, "cannot read %.900s: %s", p, strerror(errno));
                rc = -1;
            }
            (*files)++;
        }
    }
    closedir(d);
    return rc;
}

/* The child's checks; writes "ok N" or "fail MESSAGE" to fd. */
static void check_child(int fd, const pb_runner_plex_cfg *c, const pb_runner_plex_section *s, int n,
                        int warm)
{
    char msg[1200] = "";
    long total = 0;
    if (c->mounted) {
        /* the mount's backend itself: a cached listing would hide a dead bucket */
        char cmd[4096];
        int st = -1;
        pb_error e = PB_ERROR_INIT;
        snprintf(cmd, sizeof(cmd),
                 "rclone %slsf '%s' --max-depth 1 --low-level-retries 1 --retries 1 "
                 "--contimeout 5s --timeout 10s >/dev/null 2>&1",
                 strncmp(c->media, "s3://", 5) == 0 ? "--config /dev/null " : "", c->remote);
        if (pb_proc_shell(&st, cmd, &e) != 0 || st != 0)
            snprintf(msg, sizeof(msg), "the media's backend does not answer (rclone lsf %.900s)",
                     c->remote);
    }
    for (int i = 0; i < n && !msg[0]; i++)
        for (int k = 0; k < s[i].nloc && !msg[0]; k++) {
            const char *loc = s[i].loc[k];
            DIR *d = opendir(loc);
            long entries = 0;
            struct dirent *e;
            if (!d) {
                snprintf(msg, sizeof(msg), "cannot list %.900s: %s", loc, strerror(errno));
                break;
            }
            for (errno = 0; (e = readdir(d)); errno = 0)
                entries += e->d_name[0] != '.';
            int lerr = errno;
            closedir(d);
            if (lerr) {
                snprintf(msg, sizeof(msg), "cannot list %.900s: %s", loc, strerror(lerr));
                break;
            }
            if (!entries) {
                snprintf(msg, sizeof(msg), "%.900s is empty", loc);
                break;
            }
            if (c->sentinel[0]) {
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", loc, c->sentinel);
                if (access(p, R_OK) != 0) {
                    snprintf(msg, sizeof(msg), "the sentinel %.900s is missing", p);
                    break;
                }
            }
            long files = 0;
            if (walk(loc, warm ? -1 : 3, &files, 0, msg, sizeof(msg)) != 0)
                break;
            if (!files)
                snprintf(msg, sizeof(msg), "%.900s holds no file", loc);
            total += files;
        }
    char out[1300];
    int len = msg[0] ? snprintf(out, sizeof(out), "fail %s", msg)
                     : snprintf(out, sizeof(out), "ok %ld", total);
    if (write(fd, out, (size_t)len) != len)
        _exit(1);
    _exit(0);
}

static int run_checked(const pb_runner_plex_cfg *c, const pb_runner_plex_section *s, int n,
                       int warm, double timeout_s, long *files, char *msg, size_t cap)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        snprintf(msg, cap, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        snprintf(msg, cap, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        check_child(pfd[1], c, s, n, warm);
    }
    close(pfd[1]);
    char buf[1400];
    size_t got = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = -1;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        double left = timeout_s - ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9);
        if (left <= 0) {
            snprintf(msg, cap, "the media did not answer within %.0f s", timeout_s);
            break;
        }
        struct pollfd p = {pfd[0], POLLIN, 0};
        int pr = poll(&p, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        ssize_t k = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
        if (k > 0) {
            got += (size_t)k;
            continue;
        }
        buf[got] = '\0';
        if (strncmp(buf, "ok ", 3) == 0) {
            *files = atol(buf + 3);
            rc = 0;
        } else {
            snprintf(msg, cap, "%s", strncmp(buf, "fail ", 5) == 0 ? buf + 5 : "the check died");
        }
        break;
    }
    close(pfd[0]);
    if (rc != 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, NULL, rc == 0 ? 0 : WNOHANG) < 0 && errno == EINTR)
        ;
    return rc;
}

int pb_runner_plex_media_guard(const pb_runner_plex_cfg *c, const pb_runner_plex_section *s, int n,
                               FILE *log, pb_error *err)
{
    char msg[1400];
    long files = 0;
    if (run_checked(c, s, n, 0, c->mount_timeout_s, &files, msg, sizeof(msg)) != 0) {
        pb_runner_plex_say(
            log,
            "🚨 the media mount looks degraded: %s; the night stops here, nothing of it goes home",
            msg);
        return pb_error_set(err, PB_EREFUSED, "plex: the media mount looks degraded: %s", msg);
    }
    pb_runner_plex_say(log, "✅ media checked: every location listed, %ld sample file(s) read",
                       files);
    return 0;
}

int pb_runner_plex_media_warm(const pb_runner_plex_cfg *c, const pb_runner_plex_section *s, int n,
                              FILE *log, pb_error *err)
{
    char msg[1400];
    long files = 0;
    if (run_checked(c, s, n, 1, c->mount_timeout_s * 20, &files, msg, sizeof(msg)) != 0) {
        pb_runner_plex_say(log, "🚨 the media mount looks degraded: %s; no analysis started", msg);
        return pb_error_set(err, PB_EREFUSED, "plex: the media mount looks degraded: %s", msg);
    }
    pb_runner_plex_say(log, "✅ media cache warmed: the first 64 KiB of %ld file(s) read", files);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The rclone mount                                                                           */

static const char *env_or(const char *a, const char *b)
{
    const char *v = getenv(a);
    if (v && *v)
        return v;
    v = b ? getenv(b) : NULL;
    return v && *v ? v : NULL;
}

/* 1 when `dir` is a mount point (/proc/self/mountinfo). */
static int is_mounted(const char *dir)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    char line[8192];
    int found = 0;
    while (f && !found && fgets(line, sizeof(line), f)) {
        char *p = line;
        for (int i = 0; i < 4 && p; i++) /* id parent major:minor root MOUNTPOINT */
            p = strchr(p + 1, ' ');
        if (!p)
            continue;
        p++;
        size_t n = strcspn(p, " ");
        found = strlen(dir) == n && strncmp(p, dir, n) == 0;
    }
    if (f)
        fclose(f);
    return found;
}

static void rclone_log(const pb_runner_plex_cfg *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s/rclone-%s.log", c->state_dir, c->run_id);
}

int pb_runner_plex_media_mount(pb_runner_plex_cfg *c, FILE *log, pb_error *err)
{
    const char *m = getenv("PLEXBURST_MEDIA");
    char cmd[20000], logf[4300], cache[4300];
    int st = -1;
    if (!m || !*m)
        return 0;
    snprintf(c->media, sizeof(c->media), "%s", m);
    const char *conf = "";
    if (strncmp(m, "s3://", 5) == 0) {
        /* the store's S3 settings unless the media's own are given; through rclone's
         * environment variables (this process only), never a file with keys */
        const char *ep = env_or("PLEXBURST_MEDIA_S3_ENDPOINT", "PLEXBURST_S3_ENDPOINT");
        const char *rg = env_or("PLEXBURST_MEDIA_S3_REGION", "PLEXBURST_S3_REGION");
        const char *ak = env_or("PLEXBURST_MEDIA_S3_ACCESS_KEY", "PLEXBURST_S3_ACCESS_KEY");
        const char *sk = env_or("PLEXBURST_MEDIA_S3_SECRET_KEY", "PLEXBURST_S3_SECRET_KEY");
        const char *pv = env_or("PLEXBURST_MEDIA_S3_PROVIDER", NULL);
        if (!ep || !ak || !sk)
            return pb_error_set(err, PB_EINVALID,
                                "plex: PLEXBURST_MEDIA %s needs an S3 endpoint and keys "
                                "(PLEXBURST_MEDIA_S3_* or PLEXBURST_S3_*)",
                                m);
        setenv("RCLONE_CONFIG_PBMEDIA_TYPE", "s3", 1);
        setenv("RCLONE_CONFIG_PBMEDIA_PROVIDER",
               pv                        ? pv
               : strstr(ep, "scw.cloud") ? "Scaleway"
                                         : "Other",
               1);
        setenv("RCLONE_CONFIG_PBMEDIA_ENDPOINT", ep, 1);
        setenv("RCLONE_CONFIG_PBMEDIA_REGION", rg ? rg : "us-east-1", 1);
        setenv("RCLONE_CONFIG_PBMEDIA_ACCESS_KEY_ID", ak, 1);
        setenv("RCLONE_CONFIG_PBMEDIA_SECRET_ACCESS_KEY", sk, 1);
        setenv("RCLONE_CONFIG_PBMEDIA_FORCE_PATH_STYLE", "true", 1);
        unsetenv("AWS_CA_BUNDLE"); /* Debian's rclone 1.60 s3 backend fails with it */
        snprintf(c->remote, sizeof(c->remote), "pbmedia:%s", m + 5);
        conf = "--config /dev/null ";
    } else if (strchr(m, ':') && m[0] != '/') {
        snprintf(c->remote, sizeof(c->remote), "%s", m);
    } else {
        return pb_error_set(err, PB_EINVALID,
                            "plex: PLEXBURST_MEDIA is neither s3://BUCKET/PREFIX nor an rclone "
                            "NAME:PATH: %s",
                            m);
    }
    rclone_log(c, logf, sizeof(logf));
    snprintf(cache, sizeof(cache), "%s",
             env_or("PLEXBURST_MEDIA_CACHE_DIR", NULL) ? env_or("PLEXBURST_MEDIA_CACHE_DIR", NULL)
                                                       : "");
    if (!cache[0])
        snprintf(cache, sizeof(cache), "%s/rclone-cache", c->state_dir);
    const char *uid = env_or("PLEXBURST_MEDIA_UID", NULL),
               *gid = env_or("PLEXBURST_MEDIA_GID", NULL);
    char ids[128] = "";
    if (uid || gid)
        snprintf(ids, sizeof(ids), "%s%s%s%s", uid ? " --uid " : "", uid ? uid : "",
                 gid ? " --gid " : "", gid ? gid : "");
    if (is_mounted(c->media_mount)) { /* a stale mount of an earlier night */
        snprintf(cmd, sizeof(cmd), "fusermount -uz '%s' 2>/dev/null || umount -l '%s'",
                 c->media_mount, c->media_mount);
        pb_proc_shell(&st, cmd, err);
    }
    /* CLOUD-TRANSPORT §6.1: read-only, full VFS cache, long dir cache without polling (the
     * bucket is static during a burst), fast fingerprints, other users (Plex) allowed */
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s' '%s' && rclone %smount '%s' '%s' --read-only --allow-other%s "
             "--vfs-cache-mode full --cache-dir '%s' --vfs-cache-max-size 50G "
             "--vfs-cache-max-age 1000h --vfs-fast-fingerprint --dir-cache-time 1000h "
             "--poll-interval 0 --vfs-read-chunk-size 32M --vfs-read-chunk-size-limit off "
             "--buffer-size 16M %s --daemon --log-file '%s' -v",
             c->media_mount, cache, conf, c->remote, c->media_mount, ids, cache,
             env_or("PLEXBURST_MEDIA_RCLONE_FLAGS", NULL)
                 ? env_or("PLEXBURST_MEDIA_RCLONE_FLAGS", NULL)
                 : "",
             logf);
    pb_runner_plex_say(log, "🔄 mounting %s read-only at %s (rclone)", c->remote, c->media_mount);
    fflush(NULL);
    if (pb_proc_shell(&st, cmd, err) != 0 || st != 0)
        return pb_error_set(err, PB_ERROR, "plex: rclone mount of %s failed (status %d, see %s)",
                            c->remote, st, logf);
    for (int i = 0; i < 300 && !is_mounted(c->media_mount); i++)
        usleep(100 * 1000);
    if (!is_mounted(c->media_mount))
        return pb_error_set(err, PB_ERROR, "plex: %s is not mounted after 30 s (see %s)",
                            c->media_mount, logf);
    c->mounted = 1;
    pb_runner_plex_say(log, "✅ media mounted at %s", c->media_mount);
    return 0;
}

void pb_runner_plex_media_unmount(pb_runner_plex_cfg *c, int failed, FILE *log)
{
    char cmd[8192], logf[4300];
    int st = -1;
    pb_error e = PB_ERROR_INIT;
    if (!c->mounted)
        return;
    rclone_log(c, logf, sizeof(logf));
    if (failed)
        pb_runner_plex_log_tail(log, logf, "rclone", 20, NULL);
    snprintf(cmd, sizeof(cmd),
             "fusermount -u '%s' 2>/dev/null || fusermount -uz '%s' 2>/dev/null || umount -l '%s'",
             c->media_mount, c->media_mount, c->media_mount);
    fflush(NULL);
    if (pb_proc_shell(&st, cmd, &e) != 0 || st != 0)
        pb_runner_plex_say(log, "⚠️ could not unmount %s", c->media_mount);
    else
        pb_runner_plex_say(log, "✅ media unmounted from %s", c->media_mount);
    c->mounted = 0;
}

/* Replaces every occurrence of `secret` (when 6 bytes or longer) in line with <secret>. */
static void mask(char *line, size_t cap, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    if (sl < 6)
        return;
    for (char *p = strstr(line, secret); p; p = strstr(p, secret)) {
        size_t rest = strlen(p + sl);
        if ((size_t)(p - line) + 8 + rest + 1 > cap)
            break;
        memmove(p + 8, p + sl, rest + 1);
        memcpy(p, "<secret>", 8);
        p += 8;
    }
}

/* Environment names whose values never leave the cloud in a log tail. */
static const char *const secret_env[] = {
    "PLEXBURST_MEDIA_S3_ACCESS_KEY",
    "PLEXBURST_MEDIA_S3_SECRET_KEY",
    "PLEXBURST_S3_ACCESS_KEY",
    "PLEXBURST_S3_SECRET_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "PLEXBURST_PLEX_CLAIM",
    "PLEX_CLAIM",
    "RCLONE_CONFIG_PBMEDIA_ACCESS_KEY_ID",
    "RCLONE_CONFIG_PBMEDIA_SECRET_ACCESS_KEY",
};

void pb_runner_plex_log_tail(FILE *log, const char *path, const char *label, int lines,
                             const char *secret)
{
    char ring[40][1024], red[1200];
    int n = 0;
    if (lines > 40)
        lines = 40;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    while ((got = getline(&line, &lcap, f)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        snprintf(ring[n % lines], sizeof(ring[0]), "%s", line);
        n++;
    }
    free(line);
    fclose(f);
    if (!n)
        return;
    pb_runner_plex_say(log, "📦 the last lines of %s's log (%s):", label, path);
    for (int i = n > lines ? n - lines : 0; i < n; i++) {
        char *l = ring[i % lines];
        for (size_t k = 0; k < sizeof(secret_env) / sizeof(*secret_env); k++)
            mask(l, sizeof(ring[0]), getenv(secret_env[k]));
        mask(l, sizeof(ring[0]), secret);
        pb_runner_redact_text(red, sizeof(red), l);
        pb_runner_plex_say(log, "   %s: %s", label, red);
    }
}
