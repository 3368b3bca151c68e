/*
 * log: one line per event on stderr: time, level, node id, message.
 * CAIRN_TRACE=1 in the environment turns on trace-level lines (and raft's
 * own tracer via LIBRAFT_TRACE, which raft reads itself).
 */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

#include <stdint.h>

enum log_level { LOG_TRACE = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

void log_init(uint64_t node_id, enum log_level min_level);
void log_printf(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_trace(...) log_printf(LOG_TRACE, __VA_ARGS__)
#define log_info(...) log_printf(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_printf(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_printf(LOG_ERROR, __VA_ARGS__)

#endif /* CAIRN_LOG_H */
