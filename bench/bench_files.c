/*
 * bench_files.c: benchmark of fingerprints against the stat-walk and read-everything anchors
 * (a bare stat walk, reading every file). On one data directory, in one process: the stat walk (the
 * real `find D -printf '%s %T@\n'` as a child), our unchanged re-fingerprint (warm cache),
 * first-time hashing vs `find D -type f -print0 | xargs -0 cat > /dev/null` (and cat over exactly
 * the manifest's files), and peak RSS. Prints one JSON object. Targets: unchanged <= 1.5x find,
 * first-time >= 80 % of cat's throughput.
 *
 * usage: bench_files [--generate N] [--big K] [--runs R] [--state DIR] D
 *   --generate N  first write a synthetic tree of N files of 1-8 KiB (text-like, 10 % of them
 *                 hard-linked into a second folder as Plex does) and K files of 20-50 MB into D
 *   --runs R      repetitions of each timing, the best is reported (default 3)
 * Run on demand only (it reads the whole tree several times).
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <plexburst/plexburst.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs `sh -c cmd` and returns its wall time, or -1. */
static double run_sh(const char *cmd)
{
    pid_t pid;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    double t0 = now();
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return now() - t0;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_files: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0755) < 0 && errno != EEXIST)
                die(path);
            *p = '/';
        }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die(path);
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

static void write_file(const char *path, size_t size, unsigned *seed, int text, char *buf,
                       size_t cap)
{
    static const char *words[] = {"<Directory ", "title=\"",
                                  "summary=\"",  "The ",
                                  "night ",      "agent=\"tv.plex.agents.movie\" ",
                                  "/>\n",        "rating=\"7.1\" "};
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die(path);
    while (size) {
        size_t n = size < cap ? size : cap;
        for (size_t i = 0; i < n;) {
            if (text) {
                const char *w = words[rnd(seed) % 8];
                while (*w && i < n)
                    buf[i++] = *w++;
            } else {
                unsigned v = rnd(seed);
                for (int k = 0; k < 3 && i < n; k++)
                    buf[i++] = (char)(v >> (8 * k));
            }
        }
        if (write(fd, buf, n) != (ssize_t)n)
            die(path);
        size -= n;
    }
    close(fd);
}

static void generate(const char *d, long n, long big)
{
    unsigned seed = 42;
    size_t cap = 1 << 20;
    char *buf = malloc(cap), path[4096], lnk[4096];
    long per_bundle = 8;
    for (long i = 0; i < n; i++) {
        long b = i / per_bundle;
        snprintf(path, sizeof(path), "%s/Metadata/Movies/%lx/%06lx.bundle/Contents/_stored", d,
                 b % 16, b);
        if (i % per_bundle == 0) {
            mkdirs(path);
            snprintf(lnk, sizeof(lnk), "%s/Metadata/Movies/%lx/%06lx.bundle/Contents/_combined", d,
                     b % 16, b);
            mkdirs(lnk);
        }
        size_t len = strlen(path);
        snprintf(path + len, sizeof(path) - len, "/f%ld.xml", i);
        write_file(path, 1024 + rnd(&seed) % (7 * 1024), &seed, 1, buf, cap);
        if (i % 10 == 0) { /* Plex hard-links chosen assets into _combined */
            snprintf(lnk, sizeof(lnk),
                     "%s/Metadata/Movies/%lx/%06lx.bundle/Contents/_combined/f%ld.xml", d, b % 16,
                     b, i);
            if (link(path, lnk) < 0 && errno != EEXIST)
                die(lnk);
        }
    }
    for (long i = 0; i < big; i++) {
        snprintf(path, sizeof(path), "%s/Media/localhost/%lx/%08lx.bundle/Contents/Indexes", d,
                 i % 16, i);
        mkdirs(path);
        size_t len = strlen(path);
        snprintf(path + len, sizeof(path) - len, "/index-sd.bif");
        write_file(path, (20 + rnd(&seed) % 31) * 1000000ul, &seed, 0, buf, cap);
    }
    free(buf);
    /* age everything so that no entry is racy */
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "find '%s' -exec touch -h -d '-1 hour' {} +", d);
    if (run_sh(cmd) < 0)
        die("touch");
}

static int fp(pb_fingerprint_result *r, const char *d, const char *state)
{
    pb_error err = PB_ERROR_INIT;
    pb_fingerprint_options o = PB_FINGERPRINT_OPTIONS_INIT;
    o.state_dir = state;
    int rc = pb_fingerprint_run(r, d, &o, &err);
    if (rc)
        fprintf(stderr, "bench_files: fingerprint: %s\n", err.msg);
    return rc;
}

/* Writes the NUL-separated paths of the manifest's files (absolute) to list. */
static int file_list(const char *manifest, const char *d, const char *list)
{
    pb_error err = PB_ERROR_INIT;
    pb_manifest *m = NULL;
    const pb_manifest_entry *e;
    FILE *f = fopen(list, "w");
    int rc;
    if (!f || pb_manifest_open(&m, manifest, &err) < 0)
        return -1;
    while ((rc = pb_manifest_next(m, &e, &err)) == 1)
        if (e->type == PB_ENTRY_FILE)
            fprintf(f, "%s/%s%c", d, e->path, '\0');
    pb_manifest_free(m);
    fclose(f);
    return rc;
}

static double best(double a, double b)
{
    return a < 0 ? b : (b < a ? b : a);
}

int main(int argc, char **argv)
{
    long gen = 0, big = 4;
    int runs = 3;
    const char *d = NULL, *state = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--generate") && i + 1 < argc)
            gen = atol(argv[++i]);
        else if (!strcmp(argv[i], "--big") && i + 1 < argc)
            big = atol(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--state") && i + 1 < argc)
            state = argv[++i];
        else if (argv[i][0] != '-')
            d = argv[i];
        else {
            fprintf(stderr, "usage: bench_files [--generate N] [--big K] [--runs R] "
                            "[--state DIR] D\n");
            return 2;
        }
    }
    if (!d) {
        fprintf(stderr, "usage: bench_files [--generate N] [--big K] [--runs R] D\n");
        return 2;
    }
    if (gen) {
        double t0 = now();
        mkdir(d, 0755);
        generate(d, gen, big);
        fprintf(stderr, "generated %ld + %ld files in %.1f s\n", gen, big, now() - t0);
    }
    char st[4096], cmd[16384], list[4200];
    if (state)
        snprintf(st, sizeof(st), "%s", state);
    else
        snprintf(st, sizeof(st), "%s.bench-state", d);
    snprintf(list, sizeof(list), "%s/files.list", st);

    /* warm the page cache, then the anchors */
    snprintf(cmd, sizeof(cmd), "find '%s' -type f -print0 | xargs -0 cat > /dev/null", d);
    run_sh(cmd);
    double t_find = -1, t_cat = -1, t_cat_list = -1, t_first = -1, t_unch = -1;
    pb_fingerprint_result r1, r2;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    for (int i = 0; i < runs; i++) {
        snprintf(cmd, sizeof(cmd), "find '%s' -printf '%%s %%T@\\n' > /dev/null", d);
        t_find = best(t_find, run_sh(cmd));
        snprintf(cmd, sizeof(cmd), "find '%s' -type f -print0 | xargs -0 cat > /dev/null", d);
        t_cat = best(t_cat, run_sh(cmd));
    }
    for (int i = 0; i < runs; i++) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", st);
        run_sh(cmd);
        double t0 = now();
        if (fp(&r1, d, st) < 0)
            return 1;
        t_first = best(t_first, now() - t0);
    }
    if (file_list(r1.manifest_path, d, list) < 0)
        return 1;
    for (int i = 0; i < runs; i++) {
        snprintf(cmd, sizeof(cmd), "xargs -0 cat < '%s' > /dev/null", list);
        t_cat_list = best(t_cat_list, run_sh(cmd));
        double t0 = now();
        if (fp(&r2, d, st) < 0)
            return 1;
        t_unch = best(t_unch, now() - t0);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mb = (double)r1.bytes / 1e6;
    json_t *j = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:i, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:f, "
        "s:f, s:I, s:{s:f, s:f}}",
        "dir", d, "files", (json_int_t)r1.files, "dirs", (json_int_t)r1.dirs, "bytes",
        (json_int_t)r1.bytes, "hard_link_groups", (json_int_t)r1.hard_link_groups, "runs", runs,
        "find_printf_s", t_find, "unchanged_s", t_unch, "unchanged_vs_find", t_unch / t_find,
        "unchanged_hashed", (json_int_t)r2.hashed, "cat_s", t_cat, "cat_manifest_files_s",
        t_cat_list, "first_s", t_first, "first_hashed", (json_int_t)r1.hashed, "cat_MBps",
        mb / t_cat, "first_MBps", mb / t_first, "first_vs_cat", t_cat / t_first,
        "first_vs_cat_manifest_files", t_cat_list / t_first, "peak_rss_kib",
        (json_int_t)ru.ru_maxrss, "targets", "unchanged_vs_find_max", 1.5, "first_vs_cat_min", 0.8);
    if (!j || json_dumpf(j, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(4)) != 0)
        return 1;
    putchar('\n');
    json_decref(j);
    return 0;
}
