#include "http_status.h"

#include "cairn.h"

void http_status_of(int rv, int *status, const char **code)
{
    *status = 500;
    *code = "internal";
    switch (rv) {
        case CAIRN_EINVAL:
        case CAIRN_EMALFORMED:
            *status = 400;
            *code = "bad_request";
            break;
        case CAIRN_EFUTUREREV:
            *status = 400;
            *code = "future_revision";
            break;
        case CAIRN_ENOTFOUND:
            *status = 404;
            *code = "not_found";
            break;
        case CAIRN_ECOMPARE:
            *status = 409;
            *code = "compare_failed";
            break;
        case CAIRN_ECOMPACTED:
            *status = 410;
            *code = "compacted";
            break;
        case CAIRN_ETOOLARGE:
            *status = 413;
            *code = "too_large";
            break;
        case CAIRN_EBUSY:
            *status = 429;
            *code = "overloaded";
            break;
        case CAIRN_ENOLEADER:
        case CAIRN_ENOTLEADER:
            *status = 503;
            *code = "no_leader";
            break;
        case CAIRN_ETIMEOUT:
        case CAIRN_EUNAVAILABLE:
        case CAIRN_ESHUTDOWN:
            *status = 503;
            *code = "unavailable";
            break;
        case CAIRN_ESTALE:
            /* This node is staler than the read allows: another may not be. */
            *status = 503;
            *code = "stale";
            break;
        case CAIRN_EUNKNOWN:
            *status = 500;
            *code = "outcome_unknown";
            break;
        default:
            break;
    }
}
