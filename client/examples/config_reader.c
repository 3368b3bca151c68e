/*
 * A service reading its configuration from Cairn: write a default if the key
 * is missing (compare-and-swap, so two instances starting together agree),
 * then read it back linearizably.
 *
 *   build/bin/cairn-example [ENDPOINTS] [KEY]
 */
#include <stdio.h>
#include <string.h>

#include "cairn.h"

int main(int argc, char **argv)
{
    const char *endpoints = argc > 1 ? argv[1] : NULL;
    const char *key = argc > 2 ? argv[2] : "services/example/config";
    const char *fallback = "{\"log_level\": \"info\"}";
    struct cairn_result *r = NULL;
    cairn_client *c;
    int err;
    int rv;

    c = cairn_client_new(endpoints, NULL, &err);
    if (c == NULL) {
        fprintf(stderr, "example: bad endpoints: %s\n", cairn_strerror(err));
        return 1;
    }
    /* mod_revision 0 means "only if the key does not exist yet". */
    rv = cairn_cas(c, key, strlen(key), 0, fallback, strlen(fallback), NULL);
    if (rv != 0 && rv != CAIRN_ECOMPARE) {
        fprintf(stderr, "example: cas: %s\n", cairn_errmsg(c));
        cairn_client_free(c);
        return 1;
    }
    rv = cairn_get(c, key, strlen(key), NULL, &r);
    if (rv != 0) {
        fprintf(stderr, "example: get: %s\n", cairn_errmsg(c));
        cairn_result_free(r);
        cairn_client_free(c);
        return 1;
    }
    printf("%s = %.*s (mod_revision %llu, version %llu)\n", key, (int)r->ops[0].kvs[0].value_len,
           r->ops[0].kvs[0].value, (unsigned long long)r->ops[0].kvs[0].mod_revision,
           (unsigned long long)r->ops[0].kvs[0].version);
    cairn_result_free(r);
    cairn_client_free(c);
    return 0;
}
