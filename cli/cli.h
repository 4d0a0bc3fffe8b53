/*
 * cli.h: shared pieces of the plexburst command-line tool: the command table, the option parser,
 * exit codes, and the output conventions (numbered phases between separator lines, state emojis
 * at the start of a line, [HH:MM:SS] on monitoring lines, results on stdout, diagnostics on
 * stderr as "plexburst: <message>").
 * The CLI uses only the public headers of libplexburst.
 */
#ifndef PB_CLI_H
#define PB_CLI_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <plexburst/plexburst.h>

/* Exit codes (docs/cli.md): a contract. */
#define CLI_EXIT_OK      0
#define CLI_EXIT_ERROR   1
#define CLI_EXIT_USAGE   2
#define CLI_EXIT_REFUSED 3 /* a guard refused the operation */
#define CLI_EXIT_CANCEL  4
#define CLI_EXIT_BUSY    5 /* another run holds the lock (or another writer the DB): try later */

typedef struct cli_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_cmd;

/* Declarative options: one table per command drives parsing (getopt_long), --help, the man page
 * and the shell completions (help.c). Rows may stop after `help`: the fields after it default to
 * 0 (the CLI builds with -Wno-missing-field-initializers for that). */
typedef enum { CLI_OPT_FLAG, CLI_OPT_STRING, CLI_OPT_INT, CLI_OPT_DOUBLE } cli_opt_type;

/* cli_opt.flags */
#define CLI_OPT_REPEAT                                                                             \
    1u                   /* may be given more than once (the last wins); else a repeat is refused */
#define CLI_OPT_NOENV 2u /* no PLEXBURST_* setting sets this option, whatever its name */

typedef struct cli_opt {
    const char *name; /* long name without dashes, e.g. "plex-dir" */
    cli_opt_type type;
    void *value;     /* int* for FLAG/INT, const char** for STRING, double* for DOUBLE */
    const char *arg; /* argument name shown in --help, e.g. "DIR" */
    const char *help;
    int short_name; /* a one-letter alias ('o': -o); 0: the usual one of the name (ui.c), if any */
    unsigned flags; /* CLI_OPT_* above */
} cli_opt;

/**
 * Parses argv (after the command name) against `opts` with getopt_long: --name VALUE,
 * --name=VALUE, short aliases (-o FILE), `--` ends the options; abbreviations and repeats (unless
 * CLI_OPT_REPEAT) are refused; numbers go through pb_number_parse (range checked). Positional
 * arguments are collected in `pos` (up to `max_pos`, count in *npos; pos may be NULL when none
 * are accepted); argv may be reordered (options first). Prints the command's help and returns 1
 * on --help or -h (the help's examples and environment names follow when the command returns:
 * cli_help_finish); prints a usage error and returns -1 on bad usage.
 */
int cli_parse(const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv,
              char **pos, int max_pos, int *npos);

/* Help that teaches (help.c): examples and environment names after each command's --help, the
 * man page and the bash and zsh completions, generated from the tables cli_parse reads. */
/** Prints the rest of a --help that cli_parse started (its examples and the environment names
 * of its options); nothing when no help was asked for. main() calls it after each command. */
void cli_help_finish(void);
/** The help of `cmd` after its usage line: the options, wrapped to 100 columns (ui.c's
 * cli_parse prints it; help.c keeps what the rest needs). */
void cli_help_print(const char *cmd, const char *usage, const cli_opt *opts);
/** 1 while cli_generate() collects the tables: cli_parse records them and returns 1. */
int cli_help_collecting(void);
/** Records one command's table while collecting (called by cli_parse). */
void cli_help_collect(const char *cmd, const char *usage, const cli_opt *opts);
/** `plexburst __generate DIR`: runs every command of `cmds` to collect its table, then writes
 * DIR/plexburst.1, DIR/plexburst.bash, DIR/_plexburst (zsh) and DIR/plexburst.env (every
 * setting, commented out); 0 or CLI_EXIT_ERROR. */
int cli_generate(const cli_cmd *cmds, const char *dir);
/** The PLEXBURST_* setting that also sets option `name` of command `cmd`, or NULL (into buf). */
const char *cli_help_env(const char *cmd, const cli_opt *o, char *buf, size_t cap);
/** The short alias of `o` (its own, else the usual one of its name), or 0. */
int cli_opt_short(const cli_opt *o);

/**
 * Completes or rolls back an interrupted apply of the Plex data dir `plex_dir` (state dir
 * `state_dir`, NULL: the default <plex_dir>.plexburst) before a command reads or writes it, and
 * says on stderr what it did. Every command that touches a home data dir calls it right after
 * cli_parse(), except those whose library call recovers as its first phase (pb_apply, pb_run).
 * `plex_dir` NULL: nothing to do.
 * @return 0, or the exit code the command returns at once.
 */
int cli_recover(const char *plex_dir, const char *state_dir);
/** cli_recover() for a command run with --json (`json` 1): a failure also prints the object of
 * cli_error_json() on stdout. */
int cli_recover_json(const char *cmd, int json, const char *plex_dir, const char *state_dir);
/** cli_recover() for a command given the library DB (--live D/<PB_PLEX_DB_REL>): recovers D; a
 * DB elsewhere (not inside a Plex data dir) or NULL has nothing to recover. */
int cli_recover_live(const char *live_db);

/* Output: phases and state lines. */
#define CLI_SEPARATOR "════════════════════════════════════════════════════════════════"
/** A title between two separator lines, after an empty line (a phase, SUMMARY, POST-MORTEM). */
void cli_banner(const char *title);
void cli_phase(int n, const char *title);
void cli_state(const char *emoji, const char *fmt, ...) PB_PRINTF(2, 3);
void cli_monitor(const char *emoji, const char *fmt, ...) PB_PRINTF(2, 3);
int cli_fail(const pb_error *err, int code);
void cli_usage_error(const char *cmd, const char *fmt, ...) PB_PRINTF(2, 3);
int cli_exit_code(int code);

/* The one JSON object of a --json command that fails, the shape of sync's and diff's:
 * {"command", "ok": false, "exit_code", "error": {"code", "name", "message"}}. */
/** That object (caller decrefs); `message` NULL or empty: the code's description. */
json_t *cli_error_json(const char *command, int code, const char *message);
/** cli_fail(), and with `json` 1 the object of cli_error_json() on stdout first; returns the
 * exit code (never 0). */
int cli_fail_json(const char *command, int json, const pb_error *err, int code);
/** After a usage error (cli_usage_error, or cli_parse returning -1): with `json` 1, or
 * "--json" among argv[0..argc) (a parse that stopped before reading it), prints the object of
 * cli_error_json() for PB_EINVALID with the usage error's text; returns CLI_EXIT_USAGE. */
int cli_usage_exit(const char *cmd, int json, int argc, char **argv);

/* Formatting shared by the commands. */
/** Human-readable bytes in binary units ("512 B", "12.3 MiB"); returns buf. */
const char *cli_bytes(char *buf, size_t cap, uint64_t n);
/** The wall clock as "HH:MM:SS" (the stamp of monitoring lines); returns buf (>= 9 bytes). */
const char *cli_clock(char *buf, size_t cap);
/** Seconds on the monotonic clock (for rates, ETAs and redraw intervals). */
double cli_now(void);
/** Prints `j` (not released) on stdout as json_dumps(j, flags) and a newline; 0, or
 * CLI_EXIT_ERROR when it cannot be encoded. */
int cli_print_json(const json_t *j, size_t flags);

/* Commands. */
int cmd_check(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_fingerprint(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_sigs(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_bootstrap(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_cloud(int argc, char **argv);
int cmd_agent(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
