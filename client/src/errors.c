/* The one table of error codes (cairn.h, CAIRN_ERRORS) turned into text. */
#include <stddef.h>

#include "cairn.h"

const char *cairn_strerror(int code)
{
    switch (code) {
#define CAIRN__TEXT(name, value, text) \
    case value:                        \
        return text;
        CAIRN_ERRORS(CAIRN__TEXT)
#undef CAIRN__TEXT
        default:
            return "unknown error";
    }
}

const char *cairn_errname(int code)
{
    switch (code) {
#define CAIRN__NAME(name, value, text) \
    case value:                        \
        return #name;
        CAIRN_ERRORS(CAIRN__NAME)
#undef CAIRN__NAME
        default:
            return "CAIRN_E?";
    }
}
