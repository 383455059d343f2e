/* wlog.h: the worker's log lines on stderr, one per event, with context:
 * "2026-11-26T21:40:00.123Z INFO mutirao-worker[ID] pool=NAME task=ID ...". */
#ifndef MUTIRAO_WLOG_H
#define MUTIRAO_WLOG_H

enum { WLOG_DEBUG, WLOG_INFO, WLOG_WARN, WLOG_ERROR };

/* The worker id in every line and the lowest level written (default info). */
void wlog_setup(const char *worker_id, int level);
void wlog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
