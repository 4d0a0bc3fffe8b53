/*
 * help.c: help that teaches: each command's --help (options wrapped to 100 columns, then two or
 * three real examples and the environment names of its options), and the man page plexburst(1)
 * and the bash and zsh completions, generated from the same cli_opt tables that cli_parse reads
 * (`plexburst __generate DIR`, run by cli/CMakeLists.txt at build time: one source of truth).
 * Role: cli/ (cli.h). Prerequisites: the public headers only; the environment names come from
 * the engine's table of settings (plexburst/settings.h).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "plexburst/settings.h"

#define HELP_WIDTH 100

/* What a command's help adds to its table. `env`: "*" when every option whose name has a
 * setting (--plex-dir: PLEXBURST_PLEX_DIR) is also set by it (the runs' settings), else the
 * names of the options that are, separated by spaces (NULL: none). `words`: the words its first
 * positional argument takes (completions), NULL: a file. */
typedef struct help_cmd {
    const char *name;
    const char *env;
    const char *words;
    const char *examples[4];
} help_cmd;

#define PLEX "\"$PLEX\""

static const help_cmd k_help[] = {
    {"check",
     "plex-sqlite",
     NULL,
     {"plexburst check -p \"/var/lib/plexmediaserver/Library/Application Support/Plex Media "
      "Server\"",
      "plexburst check --plex-dir " PLEX " --json | jq .ok"}},
    {"fingerprint",
     NULL,
     NULL,
     {"plexburst fingerprint --plex-dir " PLEX,
      "plexburst fingerprint --plex-dir " PLEX " --rehash --json > manifest.json"}},
    {"diff",
     "plex-sqlite",
     NULL,
     {"plexburst diff --base base.db --cloud cloud.db",
      "plexburst diff --base base.db --changeset run.changeset.zst --json",
      "plexburst diff --base base.db --cloud cloud.db --live live.db --list"}},
    {"merge",
     "plex-sqlite",
     NULL,
     {"plexburst merge --base base.db --cloud cloud.db --live live.db --dry-run",
      "plexburst merge --base base.db --changeset run.changeset.zst --live live.db"}},
    {"export",
     NULL,
     NULL,
     {"plexburst export --cloud-dir cloud --base-db base.db --base-dir " PLEX " -o run.bundle",
      "plexburst export --cloud-dir cloud --list-only -o run.list",
      "plexburst export --cloud-dir cloud --base-db base.db --list run.list \\\n"
      "      --sigs run.answer -o run.bundle"}},
    {"sigs",
     NULL,
     NULL,
     {"plexburst sigs --plex-dir " PLEX " --wanted run.list -o run.answer",
      "plexburst sigs -p " PLEX " --wanted run.list -o run.answer --json"}},
    {"apply",
     "plex-sqlite",
     NULL,
     {"plexburst apply --plex-dir " PLEX " --dry-run run.bundle",
      "plexburst apply -p " PLEX " --plex-stop-cmd 'systemctl stop plexmediaserver' \\\n"
      "      --plex-start-cmd 'systemctl start plexmediaserver' run.bundle"}},
    {"bootstrap",
     "*",
     NULL,
     {"plexburst bootstrap --config /etc/plexburst/plexburst.env",
      "plexburst bootstrap --plex-dir " PLEX " --cloud scaleway --runner plex",
      "plexburst bootstrap -p " PLEX " --cloud local:/srv/burst --runner '{mkplex} init --dir "
      "{plex_dir}'"}},
    {"sync",
     "*",
     NULL,
     {"plexburst sync --config /etc/plexburst/plexburst.env",
      "plexburst sync --plex-dir " PLEX " --cloud scaleway --runner plex --dry-run",
      "plexburst sync -p " PLEX " --cloud ssh://root@burst.example --store s3://bucket/pb "
      "--runner plex"}},
    {"status",
     "plex-dir",
     NULL,
     {"plexburst status --plex-dir " PLEX " --limit 7",
      "plexburst status -p " PLEX " --run 20261207-021500-4f2a",
      "plexburst status -p " PLEX " --json | jq '.runs[0]'"}},
    {"report",
     "plex-dir",
     NULL,
     {"plexburst report --plex-dir " PLEX " --html nights.html",
      "plexburst report -p " PLEX " --html /srv/www/plex-nights.html --nights 30 --no-archives"}},
    {"cloud",
     NULL,
     "status reap prices",
     {"plexburst cloud prices", "plexburst cloud status --zone fr-par-2",
      "plexburst cloud reap --dry-run --plex-dir " PLEX}},
    {"demo",
     "mkplex",
     NULL,
     {"plexburst demo", "plexburst demo --scale tiny --workdir /tmp/pbdemo --json"}},
    {"agent",
     "mkplex",
     NULL,
     {"plexburst agent --workdir /srv/burst   # started by sync over SSH, not by hand",
      "plexburst agent --workdir /srv/burst --store s3://bucket/plexburst"}},
    {"config",
     "*",
     NULL,
     {"plexburst config", "plexburst config --config /etc/plexburst/plexburst.env"}},
};

static const help_cmd *find_help(const char *cmd)
{
    for (size_t i = 0; cmd && i < sizeof(k_help) / sizeof(*k_help); i++)
        if (strcmp(k_help[i].name, cmd) == 0)
            return &k_help[i];
    return NULL;
}

const char *cli_help_env(const char *cmd, const cli_opt *o, char *buf, size_t cap)
{
    const help_cmd *h = find_help(cmd);
    if (!h || !h->env || (o->flags & CLI_OPT_NOENV) || cap < 16)
        return NULL;
    if (strcmp(h->env, "*") != 0) {
        size_t len = strlen(o->name);
        const char *p = h->env;
        while ((p = strstr(p, o->name)) != NULL) {
            if ((p == h->env || p[-1] == ' ') && (p[len] == ' ' || p[len] == '\0'))
                break;
            p += len;
        }
        if (!p)
            return NULL;
    }
    size_t n = (size_t)snprintf(buf, cap, "PLEXBURST_");
    for (const char *s = o->name; *s && n + 1 < cap; s++)
        buf[n++] = *s == '-' ? '_' : (char)toupper((unsigned char)*s);
    buf[n] = '\0';
    return pb_settings_known(buf) ? buf : NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* --help                                                                                      */

/* Prints `text` from column `col` (already written), wrapping at spaces to HELP_WIDTH with
 * continuation lines indented by `indent`. */
static void wrap(FILE *f, const char *text, size_t col, size_t indent)
{
    const char *p = text;
    while (*p) {
        size_t room = HELP_WIDTH > col ? HELP_WIDTH - col : 1, len = strlen(p);
        if (len <= room) {
            fputs(p, f);
            break;
        }
        size_t cut = room;
        while (cut > 0 && p[cut] != ' ')
            cut--;
        if (cut == 0) { /* one long word: let it overflow rather than cut it */
            cut = strcspn(p, " ");
            if (!p[cut]) {
                fputs(p, f);
                break;
            }
        }
        fprintf(f, "%.*s\n%*s", (int)cut, p, (int)indent, "");
        p += cut + 1;
        col = indent;
    }
    fputc('\n', f);
}

/* "-o, --output FILE" or "    --json" into buf. */
static const char *left_column(char *buf, size_t cap, const cli_opt *o)
{
    int c = cli_opt_short(o);
    char sh[8] = "    ";
    if (c)
        snprintf(sh, sizeof(sh), "-%c, ", c);
    snprintf(buf, cap, "%s--%s%s%s", sh, o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    return buf;
}

/* The rest of the help asked for last (printed by cli_help_finish). */
static char *g_tail;

void cli_help_print(const char *cmd, const char *usage, const cli_opt *opts)
{
    char head[64], left[96], env[96];
    snprintf(head, sizeof(head), "usage: plexburst %s ", cmd);
    fputs(head, stdout);
    wrap(stdout, usage, strlen(head), 7 + strlen("plexburst ") + strlen(cmd) + 1);
    printf("\noptions:\n");
    size_t col = 0;
    for (const cli_opt *o = opts; o && o->name; o++) {
        size_t w = strlen(left_column(left, sizeof(left), o));
        if (w > col && w <= 30)
            col = w;
    }
    for (const cli_opt *o = opts; o && o->name; o++) {
        left_column(left, sizeof(left), o);
        if (strlen(left) > col) {
            printf("  %s\n%*s", left, (int)col + 4, "");
        } else {
            printf("  %-*s  ", (int)col, left);
        }
        wrap(stdout, o->help ? o->help : "", col + 4, col + 4);
    }
    printf("  %-*s  %s\n", (int)col, "-h, --help", "show this help");

    /* what follows the command's own epilog, if any: examples, then the environment */
    free(g_tail);
    g_tail = NULL;
    size_t cap = 4096, n = 0;
    char *t = malloc(cap);
    if (!t)
        return;
    t[0] = '\0';
    const help_cmd *h = find_help(cmd);
    if (h && h->examples[0]) {
        n += (size_t)snprintf(t + n, cap - n, "\nexamples:\n");
        for (int i = 0; i < 4 && h->examples[i] && n < cap; i++)
            n += (size_t)snprintf(t + n, cap - n, "  %s\n", h->examples[i]);
    }
    int any = 0;
    for (const cli_opt *o = opts; o && o->name && n < cap; o++) {
        if (!cli_help_env(cmd, o, env, sizeof(env)))
            continue;
        if (!any++)
            n += (size_t)snprintf(t + n, cap - n, "\nenvironment (an option given wins):\n");
        if (n < cap)
            n += (size_t)snprintf(t + n, cap - n, "  %-32s --%s\n", env, o->name);
    }
    g_tail = t;
}

void cli_help_finish(void)
{
    if (!g_tail)
        return;
    fputs(g_tail, stdout);
    fflush(stdout);
    free(g_tail);
    g_tail = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Collecting the tables                                                                       */

typedef struct coll_cmd {
    const char *name, *summary, *usage;
    cli_opt *opts;
    size_t n;
} coll_cmd;

static struct {
    int on;
    coll_cmd *cmds;
    size_t n;
} g_coll;

int cli_help_collecting(void)
{
    return g_coll.on;
}

void cli_help_collect(const char *cmd, const char *usage, const cli_opt *opts)
{
    size_t n = 0;
    while (opts && opts[n].name)
        n++;
    coll_cmd *c = &g_coll.cmds[g_coll.n];
    if (c->opts) /* a command that parsed twice: its first table counts */
        return;
    c->usage = usage;
    c->opts = calloc(n + 1, sizeof(*c->opts));
    if (!c->opts)
        return;
    for (size_t i = 0; i < n; i++) {
        c->opts[i] = opts[i];
        c->opts[i].value = NULL;
    }
    c->n = n;
}

/* ---------------------------------------------------------------------------------------- */
/* The man page                                                                                */

/* `s` as roff text: backslashes and dashes escaped, a leading dot or quote neutralised. */
static void roff(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else if (*s == '\n') {
            fputc('\n', f);
            if (s[1] == '.' || s[1] == '\'')
                fputs("\\&", f);
        } else
            fputc(*s, f);
    }
}

static void man_option(FILE *f, const char *cmd, const cli_opt *o)
{
    char env[96];
    int c = cli_opt_short(o);
    fputs(".TP\n", f);
    if (c)
        fprintf(f, "\\fB\\-%c\\fR, ", c);
    fputs("\\fB\\-\\-", f);
    roff(f, o->name);
    fputs("\\fR", f);
    if (o->arg) {
        fputs(" \\fI", f);
        roff(f, o->arg);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    roff(f, o->help ? o->help : "");
    if (cli_help_env(cmd, o, env, sizeof(env)))
        fprintf(f, " (environment: \\fB%s\\fR)", env);
    fputc('\n', f);
}

static void write_man(FILE *f)
{
    fprintf(f,
            ".\\\" plexburst(1): generated by `plexburst __generate` from the option tables.\n"
            ".TH PLEXBURST 1 \"\" \"plexburst %s\" \"User Commands\"\n",
            pb_version());
    fputs(".SH NAME\nplexburst \\- a Plex\\-aware delta sync engine for cloud bursting\n"
          ".SH SYNOPSIS\n.B plexburst\n.I command\n.RI [ options ]\n.br\n"
          ".B plexburst\n.BR \\-\\-help \" | \" \\-\\-version\n"
          ".SH DESCRIPTION\n"
          "plexburst lets a rented cloud server do the heavy work of a Plex Media Server "
          "(scanning, media analysis, thumbnails, markers) on a copy of the library, and brings "
          "back only what changed: the rows of Plex's SQLite databases and the new files, as a "
          "delta. A first \\fBbootstrap\\fR builds the library in the cloud; then \\fBsync\\fR "
          "runs every night (the systemd timer \\fBplexburst\\-sync.timer\\fR). The home's data "
          "dir is written all or nothing: Plex is stopped only around the merge, and an "
          "interrupted apply is completed or rolled back by the next command.\n"
          ".PP\nOptions take their value as the next word or after \\fB=\\fR; \\fB\\-\\-\\fR "
          "ends the options. Options left out come from the environment, then from "
          "\\fI/etc/plexburst/plexburst.env\\fR (see ENVIRONMENT).\n"
          ".SH COMMANDS\n",
          f);
    for (size_t i = 0; i < g_coll.n; i++) {
        const coll_cmd *c = &g_coll.cmds[i];
        if (!c->opts)
            continue;
        fprintf(f, ".SS \"plexburst %s\"\n", c->name);
        roff(f, c->summary);
        fputs(".\n.PP\n\\fBplexburst ", f);
        roff(f, c->name);
        fputs("\\fR ", f);
        roff(f, c->usage ? c->usage : "[options]");
        fputc('\n', f);
        for (size_t k = 0; k < c->n; k++)
            man_option(f, c->name, &c->opts[k]);
        const help_cmd *h = find_help(c->name);
        if (h && h->examples[0]) {
            fputs(".PP\nExamples:\n.RS\n.nf\n", f);
            for (int e = 0; e < 4 && h->examples[e]; e++) {
                roff(f, h->examples[e]);
                fputc('\n', f);
            }
            fputs(".fi\n.RE\n", f);
        }
    }
    fputs(".SH ENVIRONMENT\nEvery setting is read from the environment first, then from the "
          "configuration file; an option given on the command line wins over both. Secrets "
          "(keys, passphrases) are never printed or logged. The known settings:\n.PP\n.nf\n",
          f);
    for (size_t i = 0; pb_settings_name(i); i++)
        fprintf(f, "%s\n", pb_settings_name(i));
    fputs(".fi\n"
          ".SH FILES\n.TP\n.I /etc/plexburst/plexburst.env\n"
          "The settings, as \\fBPLEXBURST_*=value\\fR lines (read by "
          "\\fBplexburst\\-sync.service\\fR as its EnvironmentFile).\n"
          ".TP\n.I <plex dir>.plexburst/\n"
          "The state dir: the baseline, the records of runs, and one log per run in "
          "\\fIlogs/\\fR.\n"
          ".TP\n.I /lib/systemd/system/plexburst\\-sync.service, plexburst\\-sync.timer\n"
          "The nightly run: \\fBsystemctl enable \\-\\-now plexburst\\-sync.timer\\fR.\n"
          ".SH EXIT STATUS\n"
          "0 ok, 1 error, 2 usage, 3 refused by a guard, 4 cancelled (Ctrl\\-C, SIGTERM, "
          "SIGHUP).\n"
          ".SH SEE ALSO\n.BR systemctl (1),\n.BR systemd.timer (5),\n.BR sqlite3 (1),\n"
          ".BR rclone (1)\n",
          f);
}

/* ---------------------------------------------------------------------------------------- */
/* Completions                                                                                 */

/* What completes the value of `o`: 'd' directories, 'f' files, 'w' the words of its arg
 * ("tiny|small"), 'n' nothing. */
static char value_kind(const cli_opt *o)
{
    const char *a = o->arg ? o->arg : "";
    if (strchr(a, '|') && !strchr(a, '/') && !strchr(a, ':'))
        return strstr(a, "DIR") ? 'f' : 'w';
    if (strstr(a, "DIR"))
        return 'd';
    if (strstr(a, "FILE") || strstr(a, "DB") || strstr(a, "PATH") || strstr(a, "LIST") ||
        strstr(a, "ANSWER") || strstr(a, "MANIFEST") || strchr(a, '.') || !strcmp(a, "B") ||
        !strcmp(a, "C") || !strcmp(a, "L"))
        return 'f';
    return 'n';
}

static void write_bash(FILE *f)
{
    fputs("# bash completion of plexburst: generated by `plexburst __generate` from the option "
          "tables.\n_plexburst()\n{\n"
          "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
          "    if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
          "        COMPREPLY=($(compgen -W '--help --version",
          f);
    for (size_t i = 0; i < g_coll.n; i++)
        fprintf(f, " %s", g_coll.cmds[i].name);
    fputs("' -- \"$cur\"))\n        return\n    fi\n"
          "    local opts='' dirs='' files='' words='' none='' pos=''\n"
          "    case ${COMP_WORDS[1]} in\n",
          f);
    for (size_t i = 0; i < g_coll.n; i++) {
        const coll_cmd *c = &g_coll.cmds[i];
        if (!c->opts)
            continue;
        const help_cmd *h = find_help(c->name);
        fprintf(f, "    %s)\n        opts='--help", c->name);
        for (size_t k = 0; k < c->n; k++)
            fprintf(f, " --%s", c->opts[k].name);
        fputs("'\n", f);
        const char kinds[] = {'d', 'f', 'n'};
        const char *vars[] = {"dirs", "files", "none"};
        for (int v = 0; v < 3; v++) {
            int any = 0;
            for (size_t k = 0; k < c->n; k++) {
                if (c->opts[k].type == CLI_OPT_FLAG || value_kind(&c->opts[k]) != kinds[v])
                    continue;
                int s = cli_opt_short(&c->opts[k]);
                if (!any++)
                    fprintf(f, "        %s='", vars[v]);
                else
                    fputc(' ', f);
                fprintf(f, "--%s", c->opts[k].name);
                if (s)
                    fprintf(f, " -%c", s);
            }
            if (any)
                fputs("'\n", f);
        }
        for (size_t k = 0; k < c->n; k++)
            if (c->opts[k].type != CLI_OPT_FLAG && value_kind(&c->opts[k]) == 'w') {
                fprintf(f, "        [ \"$prev\" = --%s ] && words='", c->opts[k].name);
                for (const char *p = c->opts[k].arg; *p; p++)
                    fputc(*p == '|' ? ' ' : *p, f);
                fputs("'\n", f);
            }
        if (h && h->words)
            fprintf(f, "        pos='%s'\n", h->words);
        fputs("        ;;\n", f);
    }
    fputs("    esac\n"
          "    if [ -n \"$words\" ]; then\n"
          "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
          "    elif [[ \" $dirs \" == *\" $prev \"* ]]; then\n"
          "        COMPREPLY=($(compgen -d -- \"$cur\"))\n"
          "    elif [[ \" $files \" == *\" $prev \"* ]]; then\n"
          "        COMPREPLY=($(compgen -f -- \"$cur\"))\n"
          "    elif [[ \" $none \" == *\" $prev \"* ]]; then\n"
          "        COMPREPLY=()\n"
          "    elif [[ $cur == -* || -z $pos ]]; then\n"
          "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
          "    else\n"
          "        COMPREPLY=($(compgen -W \"$pos\" -- \"$cur\"))\n"
          "    fi\n"
          "}\n"
          "complete -o default -o bashdefault -F _plexburst plexburst\n",
          f);
}

/* A help text fit for zsh's _arguments: the first clause, without []:'\ characters. */
static void zsh_text(FILE *f, const char *s)
{
    size_t n = 0;
    for (; s && *s && n < 70; s++, n++) {
        if (*s == ';' || (*s == ' ' && s[1] == '('))
            break;
        if (strchr("[]:'\\`$", *s))
            continue;
        fputc(*s, f);
    }
}

static void write_zsh(FILE *f)
{
    fputs("#compdef plexburst\n"
          "# zsh completion of plexburst: generated by `plexburst __generate` from the option "
          "tables.\n\n_plexburst() {\n    local -a commands\n    commands=(\n",
          f);
    for (size_t i = 0; i < g_coll.n; i++) {
        fprintf(f, "        '%s:", g_coll.cmds[i].name);
        zsh_text(f, g_coll.cmds[i].summary);
        fputs("'\n", f);
    }
    fputs("    )\n"
          "    if (( CURRENT == 2 )); then\n"
          "        _describe -t commands 'plexburst command' commands\n"
          "        return\n"
          "    fi\n"
          "    local cmd=$words[2]\n"
          "    shift words\n"
          "    (( CURRENT-- ))\n"
          "    case $cmd in\n",
          f);
    for (size_t i = 0; i < g_coll.n; i++) {
        const coll_cmd *c = &g_coll.cmds[i];
        if (!c->opts)
            continue;
        const help_cmd *h = find_help(c->name);
        fprintf(f, "    %s)\n        _arguments -s \\\n", c->name ? c->name : "");
        fputs("            '(- *)'{-h,--help}'[show the help]' \\\n", f);
        for (size_t k = 0; k < c->n; k++) {
            const cli_opt *o = &c->opts[k];
            int s = cli_opt_short(o);
            const char *rep = o->type == CLI_OPT_FLAG || (o->flags & CLI_OPT_REPEAT) ? "*" : "";
            if (s)
                fprintf(f, "            '%s(-%c --%s)'{-%c,--%s%s}'[", rep, s, o->name, s, o->name,
                        o->type == CLI_OPT_FLAG ? "" : "=");
            else
                fprintf(f, "            '%s--%s%s[", rep, o->name,
                        o->type == CLI_OPT_FLAG ? "" : "=");
            zsh_text(f, o->help);
            fputc(']', f);
            if (o->type != CLI_OPT_FLAG) {
                fputc(':', f);
                zsh_text(f, o->arg);
                char k2 = value_kind(o);
                if (k2 == 'd')
                    fputs(":_files -/", f);
                else if (k2 == 'f')
                    fputs(":_files", f);
                else if (k2 == 'w') {
                    fputs(":(", f);
                    for (const char *p = o->arg; *p; p++)
                        fputc(*p == '|' ? ' ' : *p, f);
                    fputc(')', f);
                } else
                    fputs(": ", f);
            }
            fputs("' \\\n", f);
        }
        if (h && h->words)
            fprintf(f, "            '1:action:(%s)'\n", h->words);
        else
            fputs("            '*:file:_files'\n", f);
        fputs("        ;;\n", f);
    }
    fputs("    esac\n}\n\n_plexburst \"$@\"\n", f);
}

/* ---------------------------------------------------------------------------------------- */
/* The example configuration: every known setting, commented out                             */

/* The groups of the settings that no option of sync sets, by prefix (first match wins). */
static const struct {
    const char *prefix, *title;
} k_groups[] = {
    {"PLEXBURST_SSH_", "SSH transport (--cloud ssh://...; /usr/share/doc/plexburst/ssh.md)"},
    {"PLEXBURST_KNOWN_HOSTS", "SSH transport (--cloud ssh://...; /usr/share/doc/plexburst/ssh.md)"},
    {"PLEXBURST_S3_", "S3 store (--store s3://...; /usr/share/doc/plexburst/s3.md). Credentials "
                      "may also come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
    {"PLEXBURST_MEDIA", "the media the cloud's Plex reads (runner plex; plex-runner.md)"},
    {"PLEXBURST_SCW_", "Scaleway (--cloud scaleway; scaleway.md); the API key comes from "
                       "SCW_SECRET_KEY, SCW_DEFAULT_PROJECT_ID, SCW_DEFAULT_ZONE"},
    {"PLEXBURST_MAX_", "Scaleway limits (scaleway.md)"},
    {"PLEXBURST_CLOUD_DIR", "Scaleway (--cloud scaleway; scaleway.md)"},
    {"PLEXBURST_", "the cloud's Plex and its runner (runner plex; plex-runner.md) and tools"},
};

/* An example value of a few settings (the rest are left empty). */
static const char *example_value(const char *name)
{
    static const struct {
        const char *name, *value;
    } ex[] = {
        {"PLEXBURST_PLEX_DIR",
         "\"/var/lib/plexmediaserver/Library/Application Support/Plex Media Server\""},
        {"PLEXBURST_CLOUD", "scaleway"},
        {"PLEXBURST_RUNNER", "plex"},
        {"PLEXBURST_PLEX_STOP_CMD", "\"sudo -n systemctl stop plexmediaserver\""},
        {"PLEXBURST_PLEX_START_CMD", "\"sudo -n systemctl start plexmediaserver\""},
        {"PLEXBURST_MAX_DELETE_PCT", "5"},
        {"PLEXBURST_STORE", "s3://my-bucket/plexburst"},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(*ex); i++)
        if (strcmp(ex[i].name, name) == 0)
            return ex[i].value;
    return "";
}

/* The option of sync (or bootstrap) that `name` also sets, or NULL. */
static const cli_opt *run_option(const char *name)
{
    char env[96];
    for (size_t i = 0; i < g_coll.n; i++) {
        const coll_cmd *c = &g_coll.cmds[i];
        if (!c->opts || (strcmp(c->name, "sync") && strcmp(c->name, "bootstrap")))
            continue;
        for (size_t k = 0; k < c->n; k++)
            if (cli_help_env(c->name, &c->opts[k], env, sizeof(env)) && !strcmp(env, name))
                return &c->opts[k];
    }
    return NULL;
}

/* `text` as '#' comment lines of at most HELP_WIDTH columns. */
static void comment(FILE *f, const char *text)
{
    fputs("# ", f);
    while (strlen(text) > HELP_WIDTH - 2) {
        size_t cut = HELP_WIDTH - 2;
        while (cut > 0 && text[cut] != ' ')
            cut--;
        if (!cut)
            break;
        fprintf(f, "%.*s\n# ", (int)cut, text);
        text += cut + 1;
    }
    fprintf(f, "%s\n", text);
}

static void write_env(FILE *f)
{
    comment(f, "/etc/plexburst/plexburst.env: the settings of plexburst, as KEY=value lines "
               "(generated from the table of settings; every known setting is listed, commented "
               "out). Read by plexburst-sync.service (EnvironmentFile=); the environment of a "
               "command and its options win over it. Values with spaces go in double quotes. "
               "Keep this file readable by root only: it may hold keys.");
    fputs("\n", f);
    comment(f, "== the run (the options of `plexburst sync`; plexburst sync --help) ==");
    for (size_t i = 0; pb_settings_name(i); i++) {
        const cli_opt *o = run_option(pb_settings_name(i));
        if (!o)
            continue;
        char text[512];
        snprintf(text, sizeof(text), "--%s%s%s: %s", o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "", o->help ? o->help : "");
        comment(f, text);
        fprintf(f, "#%s=%s\n", pb_settings_name(i), example_value(pb_settings_name(i)));
    }
    const char *last = NULL;
    for (size_t i = 0; pb_settings_name(i); i++) {
        const char *name = pb_settings_name(i);
        if (run_option(name))
            continue;
        size_t g = 0;
        while (strncmp(name, k_groups[g].prefix, strlen(k_groups[g].prefix)) != 0)
            g++; /* the last group's prefix matches every setting */
        if (!last || strcmp(last, k_groups[g].title) != 0) {
            char title[256];
            snprintf(title, sizeof(title), "== %s ==", k_groups[g].title);
            fputs("\n", f);
            comment(f, title);
            last = k_groups[g].title;
        }
        fprintf(f, "#%s=%s\n", name, example_value(name));
    }
}

/* ---------------------------------------------------------------------------------------- */
/* __generate                                                                                  */

static int write_file(const char *dir, const char *name, void (*fn)(FILE *))
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "plexburst: cannot write %s: %s\n", path, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    fn(f);
    if (fclose(f) != 0) {
        fprintf(stderr, "plexburst: cannot write %s: %s\n", path, strerror(errno));
        return CLI_EXIT_ERROR;
    }
    return CLI_EXIT_OK;
}

int cli_generate(const cli_cmd *cmds, const char *dir)
{
    int error = CLI_EXIT_OK;
    size_t n = 0;
    while (cmds[n].name)
        n++;
    g_coll.cmds = calloc(n + 1, sizeof(*g_coll.cmds));
    if (!g_coll.cmds)
        return CLI_EXIT_ERROR;
    /* each command's --help path hands its table to cli_help_collect; what it prints besides
     * (an epilog) goes to /dev/null */
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    if (saved < 0 || null < 0 || dup2(null, 1) < 0) {
        fprintf(stderr, "plexburst: cannot redirect stdout: %s\n", strerror(errno));
        error = CLI_EXIT_ERROR;
        goto done;
    }
    g_coll.on = 1;
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].name[0] == '_' || !strcmp(cmds[i].name, "help") ||
            !strcmp(cmds[i].name, "version"))
            continue;
        char help[] = "--help", *argv[] = {help, NULL};
        coll_cmd *c = &g_coll.cmds[g_coll.n];
        c->name = cmds[i].name;
        c->summary = cmds[i].summary;
        cmds[i].fn(1, argv);
        g_coll.n++;
    }
    g_coll.on = 0;
    fflush(stdout);
    dup2(saved, 1);
    error = write_file(dir, "plexburst.1", write_man);
    if (!error)
        error = write_file(dir, "plexburst.bash", write_bash);
    if (!error)
        error = write_file(dir, "_plexburst", write_zsh);
    if (!error)
        error = write_file(dir, "plexburst.env", write_env);
done:
    if (saved >= 0)
        close(saved);
    if (null >= 0)
        close(null);
    for (size_t i = 0; i < g_coll.n; i++)
        free(g_coll.cmds[i].opts);
    free(g_coll.cmds);
    g_coll.cmds = NULL;
    g_coll.n = 0;
    free(g_tail);
    g_tail = NULL;
    return error;
}
