#include "entry.h"

#include "mpread.h"

bool entry_parse(const char *data, size_t len, uint64_t *origin, int64_t *time_ms,
                 const char **payload, uint32_t *payload_len)
{
    struct mp_reader r;
    uint32_t n;
    uint64_t format;
    mp_init(&r, data, len);
    return mp_array(&r, &n) && n >= 4 && mp_uint(&r, &format) && format == ENTRY_FORMAT &&
           mp_uint(&r, origin) && mp_int(&r, time_ms) && mp_bytes(&r, payload, payload_len);
}

int entry_apply(struct kv *kv, const char *data, size_t len)
{
    uint64_t origin;
    int64_t time_ms;
    const char *payload;
    uint32_t payload_len;
    struct arena a;
    struct proto_request req;
    int rv;
    if (!entry_parse(data, len, &origin, &time_ms, &payload, &payload_len)) {
        return 0;
    }
    arena_init(&a);
    rv = proto_decode_request(payload, payload_len, &a, &req);
    if (rv == 0) {
        rv = kv_apply(kv, &req, time_ms, NULL);
    }
    arena_free(&a);
    return rv == CAIRN_ENOMEM ? CAIRN_ENOMEM : 0;
}
