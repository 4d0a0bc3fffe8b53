/*
 * ui.c: option parsing and output conventions of the plexburst CLI (see cli.h).
 * Role: the only place that prints; the library reports through return codes and pb_error.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

#define SEPARATOR "════════════════════════════════════════════════════════════════"

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

void cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "plexburst %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see plexburst %s --help)\n", cmd);
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
        char *end = NULL;
        switch (o->type) {
        case CLI_OPT_STRING:
            *(const char **)o->value = val;
            break;
        case CLI_OPT_INT: {
            long v = strtol(val, &end, 10);
            if (!*val || *end) {
                cli_usage_error(cmd, "option --%s needs a whole number, not '%s'", o->name, val);
                return -1;
            }
            *(int *)o->value = (int)v;
            break;
        }
        case CLI_OPT_DOUBLE: {
            double v = strtod(val, &end);
            if (!*val || *end) {
                cli_usage_error(cmd, "option --%s needs a number, not '%s'", o->name, val);
                return -1;
            }
            *(double *)o->value = v;
            break;
        }
        default:
            break;
        }
    }
    if (npos)
        *npos = n;
    return 0;
}

void cli_phase(int n, const char *title)
{
    printf("\n%s\nPHASE %d: %s\n%s\n", SEPARATOR, n, title, SEPARATOR);
    fflush(stdout);
}

static void vline(int stamp, const char *emoji, const char *fmt, va_list ap)
{
    if (stamp) {
        char ts[16];
        time_t t = time(NULL);
        strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
        printf("[%s] ", ts);
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
    default:
        return CLI_EXIT_ERROR;
    }
}

int cli_fail(const pb_error *err, int code)
{
    fprintf(stderr, "plexburst: %s\n", err && err->msg[0] ? err->msg : pb_strerror(code));
    return cli_exit_code(code);
}
