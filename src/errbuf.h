/*
 * errbuf: the one way blocking code reports why it failed, by formatting a
 * sentence into a buffer its caller owns (char err[], size_t len). A NULL
 * buffer or a zero length means the caller does not want the reason.
 */
#ifndef CAIRN_ERRBUF_H
#define CAIRN_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static inline void errf(char *err, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void errf(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

#endif /* CAIRN_ERRBUF_H */
