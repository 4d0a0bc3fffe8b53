/*
 * ui.c: option parsing (libc's getopt_long over the commands' cli_opt tables), output conventions
 * and formatting helpers of the plexburst CLI (see cli.h), and the recovery of an interrupted
 * apply that commands run after parsing. The help texts live in help.c.
 * Role: shared by every cli/cmd_*.c; the library reports through return codes and pb_error,
 * the CLI prints.
 */
#include <ctype.h>
#include <getopt.h>
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

/* The usual short alias of an option, by name (a row's own short_name wins). */
int cli_opt_short(const cli_opt *o)
{
    static const struct {
        const char *name;
        int c;
    } shorts[] = {
        {"plex-dir", 'p'}, {"output", 'o'}, {"dry-run", 'n'}, {"quiet", 'q'}, {"config", 'c'}};
    if (o->short_name)
        return o->short_name > 0 && o->short_name < 128 ? o->short_name : 0;
    for (size_t i = 0; i < sizeof(shorts) / sizeof(*shorts); i++)
        if (strcmp(shorts[i].name, o->name) == 0)
            return shorts[i].c;
    return 0;
}

/* The value `val` of option `o` stored; 0, or -1 after the usage error. */
static int store_value(const char *cmd, const cli_opt *o, const char *val)
{
    if (o->type == CLI_OPT_FLAG) {
        *(int *)o->value = 1;
        return 0;
    }
    if (o->type == CLI_OPT_STRING) {
        *(const char **)o->value = val;
        return 0;
    }
    double lo, hi, v;
    opt_range(o->name, &lo, &hi);
    if (pb_number_parse(&v, val, o->type == CLI_OPT_INT, lo, hi) < 0) {
        cli_usage_error(cmd, "option --%s needs a decimal %s in %.15g..%.15g, not '%s'", o->name,
                        o->type == CLI_OPT_INT ? "whole number" : "number", lo, hi, val);
        return -1;
    }
    if (o->type == CLI_OPT_INT)
        *(int *)o->value = (int)v;
    else
        *(double *)o->value = v;
    return 0;
}

/* 1 if the word `tok` names long option `name` in full (--name or --name=...). */
static int names_in_full(const char *tok, const char *name)
{
    size_t len = strlen(name);
    return strncmp(tok, "--", 2) == 0 && strncmp(tok + 2, name, len) == 0 &&
           (tok[2 + len] == '\0' || tok[2 + len] == '=');
}

/* A usage error for `tok`, a word that is no option of the command. */
static void unknown_option(const char *cmd, const char *tok, const char *near)
{
    size_t w = strcspn(tok, "=");
    if (near)
        cli_usage_error(cmd, "unknown option '%.*s' (did you mean --%s?)", (int)(w < 100 ? w : 100),
                        tok, near);
    else
        cli_usage_error(cmd, "unknown option '%.*s'", (int)(w < 100 ? w : 100), tok);
}

/* getopt_long's val of the i-th option: past every character, so that none is mistaken. */
#define LONG_VAL(i) (256 + (int)(i))

int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv,
              char **pos, int max_pos, int *npos)
{
    if (cli_help_collecting()) {
        cli_help_collect(cmd, usage, opts);
        return 1;
    }
    size_t n = 0;
    while (opts && opts[n].name)
        n++;
    int error = 0, np = 0;
    struct option *lo = calloc(n + 2, sizeof(*lo));
    char *shorts = calloc(3 * n + 4, 1), **av = calloc((size_t)argc + 2, sizeof(*av));
    unsigned char *seen = calloc(n + 1, 1);
    if (!lo || !shorts || !av || !seen) {
        fprintf(stderr, "plexburst %s: out of memory\n", cmd);
        error = -1;
        goto done;
    }
    /* ':' first: a missing value comes back as ':', and getopt prints nothing itself */
    size_t k = 0;
    shorts[k++] = ':';
    shorts[k++] = 'h';
    for (size_t i = 0; i < n; i++) {
        int c = cli_opt_short(&opts[i]);
        lo[i].name = opts[i].name;
        lo[i].has_arg = opts[i].type == CLI_OPT_FLAG ? no_argument : required_argument;
        lo[i].val = LONG_VAL(i);
        if (c) {
            shorts[k++] = (char)c;
            if (opts[i].type != CLI_OPT_FLAG)
                shorts[k++] = ':';
        }
    }
    lo[n].name = "help";
    lo[n].val = 'h';
    av[0] = (char *)cmd; /* getopt reads from av[1]; av is ours to reorder */
    for (int i = 0; i < argc; i++)
        av[i + 1] = argv[i];

    opterr = 0;
    optind = 0; /* glibc: a full re-initialisation (cli_parse may run more than once) */
    for (;;) {
        int c = getopt_long(argc + 1, av, shorts, lo, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            cli_help_print(cmd, usage, opts);
            error = 1;
            goto done;
        }
        if (c == '?' || c == ':') {
            /* glibc accepts an unambiguous prefix of a long name: a script must not depend on
             * one (a new option would break it), so a word not naming its option in full is
             * unknown */
            const char *tok = av[optind - 1];
            const char *name = optopt >= LONG_VAL(0) ? opts[optopt - LONG_VAL(0)].name : NULL;
            if (name && !names_in_full(tok, name))
                unknown_option(cmd, tok, name);
            else if (c == ':' && name)
                cli_usage_error(cmd, "option --%s needs a value", name);
            else if (c == ':') {
                size_t i = 0;
                while (i < n && cli_opt_short(&opts[i]) != optopt)
                    i++;
                cli_usage_error(cmd, "option -%c%s%s%s needs a value", optopt, i < n ? " (--" : "",
                                i < n ? opts[i].name : "", i < n ? ")" : "");
            } else if (name)
                cli_usage_error(cmd, "option --%s takes no value", name);
            else if (optopt)
                cli_usage_error(cmd, "unknown option '-%c'", optopt);
            else
                unknown_option(cmd, tok, NULL);
            error = -1;
            goto done;
        }
        size_t i = 0;
        if (c >= LONG_VAL(0)) {
            i = (size_t)(c - LONG_VAL(0));
            /* the word that named it: before its value when that came as the next word */
            const char *tok = optarg && optarg == av[optind - 1] ? av[optind - 2] : av[optind - 1];
            if (!names_in_full(tok, opts[i].name)) {
                unknown_option(cmd, tok, opts[i].name);
                error = -1;
                goto done;
            }
        } else {
            while (i < n && cli_opt_short(&opts[i]) != c)
                i++;
            if (i == n) { /* cannot happen: every letter of `shorts` is an option's */
                cli_usage_error(cmd, "unknown option '-%c'", c);
                error = -1;
                goto done;
            }
        }
        if (seen[i] && opts[i].type != CLI_OPT_FLAG && !(opts[i].flags & CLI_OPT_REPEAT)) {
            cli_usage_error(cmd, "option --%s given twice", opts[i].name);
            error = -1;
            goto done;
        }
        seen[i] = 1;
        if (store_value(cmd, &opts[i], optarg) < 0) {
            error = -1;
            goto done;
        }
    }
    for (int i = optind; i < argc + 1; i++) {
        if (!pos || np >= max_pos) {
            cli_usage_error(cmd, "unexpected argument '%s'", av[i]);
            error = -1;
            goto done;
        }
        pos[np++] = av[i];
    }
    if (npos)
        *npos = np;
done:
    free(lo);
    free(shorts);
    free(av);
    free(seen);
    return error;
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
