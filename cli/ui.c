/*
 * ui.c: option parsing, output conventions and formatting helpers of the plexburst CLI (see
 * cli.h), and the recovery of an interrupted apply that commands run after parsing.
 * Role: shared by every cli/cmd_*.c; the library reports through return codes and pb_error,
 * the CLI prints.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "plexburst/units.h"
#include "plexburst/number.h"

static void print_help(const char *cmd, const char *usage, const cli_opt *opts)
{
    printf("usage: plexburst %s %s\n\noptions:\n", cmd, usage);
    for (const cli_opt *o = opts; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-28s %s\n", left, o->help);
    }
    printf("  %-28s %s\n", "--help", "show this help");
}

/* The last usage error's text, for the --json object of a command that stops on it. */
static char last_usage[512];

void cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_usage, sizeof(last_usage), fmt, ap);
    va_end(ap);
    fprintf(stderr, "plexburst %s: %s (see plexburst %s --help)\n", cmd, last_usage, cmd);
}

int cli_usage_exit(const char *cmd, int json, int argc, char **argv)
{
    for (int i = 0; !json && argv && i < argc; i++)
        json = strcmp(argv[i], "--json") == 0;
    if (json) {
        json_t *j = cli_error_json(cmd, PB_EINVALID, last_usage[0] ? last_usage : NULL);
        cli_print_json(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(j);
    }
    return CLI_EXIT_USAGE;
}

/* The range of a numeric option, by name: percentages 0..100, compression levels 1..19, counts
 * and sizes 0..INT_MAX. */
static void opt_range(const char *name, double *lo, double *hi)
{
    static const struct {
        const char *name;
        double lo, hi;
    } ranges[] = {{"max-delete-pct", 0, 100}, {"zstd-level", 1, 19}};
    *lo = 0;
    *hi = INT_MAX;
    for (size_t i = 0; i < sizeof(ranges) / sizeof(*ranges); i++)
        if (strcmp(ranges[i].name, name) == 0) {
            *lo = ranges[i].lo;
            *hi = ranges[i].hi;
        }
}

int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv,
              char **pos, int max_pos, int *npos)
{
    int n = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(cmd, usage, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!pos || n >= max_pos) {
                cli_usage_error(cmd, "unexpected argument '%s'", a);
                return -1;
            }
            pos[n++] = argv[i];
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = opts;
        while (o && o->name && (strlen(o->name) != len || strncmp(o->name, name, len) != 0))
            o++;
        if (!o || !o->name) {
            cli_usage_error(cmd, "unknown option '%s'", a);
            return -1;
        }
        if (o->type == CLI_OPT_FLAG) {
            if (eq) {
                cli_usage_error(cmd, "option --%s takes no value", o->name);
                return -1;
            }
            *(int *)o->value = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            cli_usage_error(cmd, "option --%s needs a value", o->name);
            return -1;
        }
        if (o->type == CLI_OPT_STRING) {
            *(const char **)o->value = val;
            continue;
        }
        double lo, hi, v;
        opt_range(o->name, &lo, &hi);
        if (pb_number_parse(&v, val, o->type == CLI_OPT_INT, lo, hi) < 0) {
            cli_usage_error(cmd, "option --%s needs a decimal %s in %g..%g, not '%s'", o->name,
                            o->type == CLI_OPT_INT ? "whole number" : "number", lo, hi, val);
            return -1;
        }
        if (o->type == CLI_OPT_INT)
            *(int *)o->value = (int)v;
        else
            *(double *)o->value = v;
    }
    if (npos)
        *npos = n;
    return 0;
}

void cli_banner(const char *title)
{
    printf("\n%s\n%s\n%s\n", CLI_SEPARATOR, title, CLI_SEPARATOR);
    fflush(stdout);
}

void cli_phase(int n, const char *title)
{
    char line[256];
    snprintf(line, sizeof(line), "PHASE %d: %s", n, title);
    cli_banner(line);
}

static void vline(int stamp, const char *emoji, const char *fmt, va_list ap)
{
    if (stamp) {
        char ts[16];
        printf("[%s] ", cli_clock(ts, sizeof(ts)));
    }
    if (emoji)
        printf("%s ", emoji);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
}

void cli_state(const char *emoji, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(0, emoji, fmt, ap);
    va_end(ap);
}

void cli_monitor(const char *emoji, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vline(1, emoji, fmt, ap);
    va_end(ap);
}

int cli_exit_code(int code)
{
    switch (code) {
    case PB_OK:
        return CLI_EXIT_OK;
    case PB_EINVALID:
        return CLI_EXIT_USAGE;
    case PB_EREFUSED:
        return CLI_EXIT_REFUSED;
    case PB_ESCHEMA:
        return CLI_EXIT_REFUSED;
    case PB_ECANCELLED:
        return CLI_EXIT_CANCEL;
    case PB_EBUSY:
        return CLI_EXIT_BUSY;
    default:
        return CLI_EXIT_ERROR;
    }
}

int cli_fail(const pb_error *err, int code)
{
    fprintf(stderr, "plexburst: %s\n", err && err->msg[0] ? err->msg : pb_strerror(code));
    return cli_exit_code(code);
}

json_t *cli_error_json(const char *command, int code, const char *message)
{
    int exit_code = cli_exit_code(code);
    json_t *o = json_object();
    json_object_set_new(o, "command", json_string(command));
    json_object_set_new(o, "ok", json_false());
    json_object_set_new(o, "exit_code", json_integer(exit_code ? exit_code : CLI_EXIT_ERROR));
    json_object_set_new(o, "error",
                        json_pack("{s:i, s:s, s:s}", "code", code, "name", pb_strerror(code),
                                  "message", message && *message ? message : pb_strerror(code)));
    return o;
}

int cli_fail_json(const char *command, int json, const pb_error *err, int code)
{
    if (json) {
        json_t *j = cli_error_json(command, code, err ? err->msg : NULL);
        cli_print_json(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(j);
    }
    int exit_code = cli_fail(err, code);
    return exit_code ? exit_code : CLI_EXIT_ERROR;
}

/* ---------------------------------------------------------------------------------------- */
/* Recovery of an interrupted apply                                                           */

int cli_recover_json(const char *cmd, int json, const char *plex_dir, const char *state_dir)
{
    pb_recover_result r;
    pb_error err = PB_ERROR_INIT;
    if (!plex_dir)
        return CLI_EXIT_OK;
    int rc = pb_apply_recover_ex(&r, plex_dir, state_dir, &err);
    if (rc) {
        pb_error why = PB_ERROR_INIT;
        pb_error_set(&why, rc, "cannot recover the interrupted apply of %s: %s", plex_dir,
                     err.msg[0] ? err.msg : pb_strerror(rc));
        return cli_fail_json(cmd, json, &why, rc);
    }
    if (r.action)
        fprintf(stderr, "plexburst: recovered an interrupted apply: %s\n", r.detail);
    if (r.action && r.plex_stopped)
        fprintf(stderr, "plexburst: the interrupted apply had stopped Plex: start it again\n");
    return CLI_EXIT_OK;
}

int cli_recover(const char *plex_dir, const char *state_dir)
{
    return cli_recover_json(NULL, 0, plex_dir, state_dir);
}

int cli_recover_live(const char *live_db)
{
    char dir[4096];
    size_t rel = strlen(PB_PLEX_DB_REL), n = live_db ? strlen(live_db) : 0;
    if (n <= rel + 1 || strcmp(live_db + n - rel, PB_PLEX_DB_REL) != 0 ||
        live_db[n - rel - 1] != '/' || n - rel - 1 >= sizeof(dir))
        return CLI_EXIT_OK;
    memcpy(dir, live_db, n - rel - 1);
    dir[n - rel - 1] = '\0';
    return cli_recover(dir, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Formatting                                                                                 */

const char *cli_bytes(char *buf, size_t cap, uint64_t n)
{
    return pb_units_bytes(buf, cap, n);
}

const char *cli_clock(char *buf, size_t cap)
{
    struct tm tm;
    time_t t = time(NULL);
    if (!localtime_r(&t, &tm) || strftime(buf, cap, "%H:%M:%S", &tm) == 0)
        snprintf(buf, cap, "--:--:--");
    return buf;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cli_print_json(const json_t *j, size_t flags)
{
    char *s = j ? json_dumps(j, flags) : NULL;
    if (!s)
        return CLI_EXIT_ERROR;
    puts(s);
    fflush(stdout);
    free(s);
    return CLI_EXIT_OK;
}
