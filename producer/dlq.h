/* dlq.h: `mutirao dlq list|retry|drop POOL ...` (producer/dlq.c). */
#ifndef MUTIRAO_DLQ_H
#define MUTIRAO_DLQ_H

/* Runs the subcommand in argv[0..argc) (argv[0] is list, retry or drop);
 * returns the process exit status: 0, 1 (an unknown pool or id, Redis or
 * Kafka failed) or 2 (bad usage). */
int cmd_dlq(int argc, char **argv);

#endif
