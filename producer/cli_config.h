/* cli_config.h: the --config FILE option that every `mutirao` command takes
 * (cli_config.c). */
#ifndef MUTIRAO_CLI_CONFIG_H
#define MUTIRAO_CLI_CONFIG_H

/* What cli_config_option returns when argv[*i] is not --config. */
#define CLI_CONFIG_OTHER (-1)

/* If argv[*i] is `--config FILE` or `--config=FILE`, makes FILE the file the
 * configuration is read from (config_use_file) and moves *i past its value.
 * Returns 0 then; CLI_CONFIG_OTHER, *i unchanged, for any other argument; or
 * 2, the usage status, after one line on stderr: "PROG: option --config
 * needs a file (see HINT)" without a value, "PROG: --config FILE: reason"
 * when FILE cannot be read. */
int cli_config_option(int argc, char **argv, int *i, const char *prog, const char *hint);

#endif
