/* cli_top.h: `mutirao top`, the fleet live in a terminal (cli_top.c). */
#ifndef MUTIRAO_CLI_TOP_H
#define MUTIRAO_CLI_TOP_H

/* Its lines of `mutirao --help`. */
#define CLI_TOP_USAGE                                                                              \
    "  top [--once]              the pools and workers live, refreshed every second\n"             \
    "                            (keys: s sort, r reverse, q quit)\n"

/* Runs `mutirao top ARGS...`; the exit status. */
int cli_top_main(int argc, char **argv);

#endif
