/* cli_ops.h: `mutirao pools`, `stats`, `task` and `workers` (cli_ops.c). */
#ifndef MUTIRAO_CLI_OPS_H
#define MUTIRAO_CLI_OPS_H

/* Their lines of `mutirao --help`. */
#define CLI_OPS_USAGE                                                                              \
    "  pools [--json]            every fleet pool: workers, queued, running,\n"                    \
    "                            completed, failed, retried, dead-lettered, rate\n"                \
    "  stats POOL [--json]       one pool's numbers, options and workers\n"                        \
    "  task ID [--json]          a fleet task: state, pool, worker, attempts, times,\n"            \
    "                            duration, error\n"                                                \
    "  workers [--json]          the live workers: id, host, pools, running, slots,\n"             \
    "                            last seen, version\n"

/* 1 if cmd is one of them. */
int cli_ops_is_command(const char *cmd);
/* Runs `mutirao CMD ARGS...`; the exit status. */
int cli_ops_main(const char *cmd, int argc, char **argv);

#endif
