/* dashboard.h: `mutirao dashboard` (producer/dashboard.c). */
#ifndef MUTIRAO_DASHBOARD_H
#define MUTIRAO_DASHBOARD_H

/* Its lines of `mutirao --help`. */
#define DASHBOARD_USAGE                                                                            \
    "  dashboard [--listen ADDR] [--token-file FILE]\n"                                            \
    "                            a web page of the fleet: pools, workers, recent\n"                \
    "                            failures, dead letters to retry or drop\n"

/* Runs `mutirao dashboard ARGS...` (argv: what follows "dashboard"); the
 * exit status: 0 once stopped (SIGINT, SIGTERM), 1 when it cannot start, 2
 * on bad usage. */
int cmd_dashboard(int argc, char **argv);

#endif
