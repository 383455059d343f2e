/* envopt.h: the runtime's tuning variables (MUTIRAO_PROCS, MUTIRAO_SLICE_MS,
 * MUTIRAO_PREEMPT), read once each. A value that is not a whole number in
 * range is not silently replaced: the process log says which variable,
 * what was expected and which value is used instead. */
#ifndef MUTIRAO_ENVOPT_H
#define MUTIRAO_ENVOPT_H

/* The integer in environment variable name, if it is one from min to max;
 * def when the variable is unset or empty; def with a warning otherwise. */
long envopt_int(const char *name, long min, long max, long def);

#endif
