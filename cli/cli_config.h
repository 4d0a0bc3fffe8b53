/*
 * cli_config.h: `--config FILE` for every command, and `plexburst config`.
 * cli_config_take() runs in main() before the dispatch: it strips `--config FILE` and
 * `--config=FILE` from argv, checks the configuration (the system and user files, that file,
 * the environment) and hands the file on to the engine as PLEXBURST_CONFIG.
 */
#ifndef PB_CLI_CONFIG_H
#define PB_CLI_CONFIG_H

/**
 * Takes `--config FILE` / `--config=FILE` out of argv[1..*argc) (before a `--`), updating *argc;
 * sets PLEXBURST_CONFIG to it, then checks the configuration unless the command is help,
 * version or agent, or --help is asked. Prints one line on a failure.
 * @return 0, or the exit code to return at once (2: a missing or repeated FILE, a configuration
 * that does not load).
 */
int cli_config_take(int *argc, char **argv);

/** The FILE of --config, NULL when none was given. */
const char *cli_config_file(void);

/** The effective value of a setting (the environment, then the files; never print a secret's),
 * NULL when unset; valid until the program ends. The configuration already loaded fine in
 * cli_config_take(), so a failure here reads as unset. */
const char *cli_config_get(const char *key);

/** `plexburst config [--json] [--all]`. */
int cmd_config(int argc, char **argv);

#endif
