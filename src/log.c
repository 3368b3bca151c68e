#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static uint64_t log_node_id;
static enum log_level log_min_level = LOG_INFO;

void log_init(uint64_t node_id, enum log_level min_level)
{
    log_node_id = node_id;
    log_min_level = min_level;
}

void log_printf(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"TRACE", "INFO", "WARN", "ERROR"};
    struct timespec ts;
    struct tm tm;
    char when[32];
    char line[1024];
    va_list ap;
    if (level < log_min_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines from threads do not interleave. */
    fprintf(stderr, "%s.%03ldZ %s node=%llu %s\n", when, ts.tv_nsec / 1000000L, names[level],
            (unsigned long long)log_node_id, line);
}
