#include "mpread.h"

#include <string.h>

void mp_init(struct mp_reader *r, const void *data, size_t len)
{
    r->p = data;
    r->end = r->p + len;
    r->err = false;
    r->nomem = false;
}

static bool fail(struct mp_reader *r)
{
    r->err = true;
    return false;
}

static size_t remaining(const struct mp_reader *r)
{
    return (size_t)(r->end - r->p);
}

/* Read an n-byte big-endian unsigned integer. */
static bool read_be(struct mp_reader *r, unsigned n, uint64_t *v)
{
    uint64_t x = 0;
    unsigned i;
    if (r->err || remaining(r) < n) {
        return fail(r);
    }
    for (i = 0; i < n; i++) {
        x = (x << 8) | r->p[i];
    }
    r->p += n;
    *v = x;
    return true;
}

static bool read_byte(struct mp_reader *r, uint8_t *b)
{
    if (r->err || remaining(r) < 1) {
        return fail(r);
    }
    *b = *r->p++;
    return true;
}

/* A container of n objects needs at least n (array) or 2n (map) more bytes. */
static bool read_count(struct mp_reader *r, uint8_t tag, uint8_t fix_mask, uint8_t fix_tag,
                       uint8_t tag16, uint8_t tag32, unsigned per_item, uint32_t *n)
{
    uint64_t v;
    if ((tag & fix_mask) == fix_tag) {
        v = tag & 0x0f;
    } else if (tag == tag16) {
        if (!read_be(r, 2, &v)) {
            return false;
        }
    } else if (tag == tag32) {
        if (!read_be(r, 4, &v)) {
            return false;
        }
    } else {
        return fail(r);
    }
    if (v > remaining(r) / per_item) {
        return fail(r);
    }
    *n = (uint32_t)v;
    return true;
}

bool mp_array(struct mp_reader *r, uint32_t *n)
{
    uint8_t tag;
    if (!read_byte(r, &tag)) {
        return false;
    }
    return read_count(r, tag, 0xf0, 0x90, 0xdc, 0xdd, 1, n);
}

bool mp_map(struct mp_reader *r, uint32_t *n)
{
    uint8_t tag;
    if (!read_byte(r, &tag)) {
        return false;
    }
    return read_count(r, tag, 0xf0, 0x80, 0xde, 0xdf, 2, n);
}

bool mp_int(struct mp_reader *r, int64_t *v)
{
    uint8_t tag;
    uint64_t x;
    if (!read_byte(r, &tag)) {
        return false;
    }
    if (tag <= 0x7f) {
        *v = tag;
        return true;
    }
    if (tag >= 0xe0) {
        *v = (int8_t)tag;
        return true;
    }
    switch (tag) {
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            unsigned n = 1u << (tag - 0xcc);
            if (!read_be(r, n, &x)) {
                return false;
            }
            if (x > INT64_MAX) {
                return fail(r);
            }
            *v = (int64_t)x;
            return true;
        }
        case 0xd0:
            if (!read_be(r, 1, &x)) {
                return false;
            }
            *v = (int8_t)x;
            return true;
        case 0xd1:
            if (!read_be(r, 2, &x)) {
                return false;
            }
            *v = (int16_t)x;
            return true;
        case 0xd2:
            if (!read_be(r, 4, &x)) {
                return false;
            }
            *v = (int32_t)x;
            return true;
        case 0xd3:
            if (!read_be(r, 8, &x)) {
                return false;
            }
            memcpy(v, &x, sizeof(*v));
            return true;
        default:
            return fail(r);
    }
}

bool mp_uint(struct mp_reader *r, uint64_t *v)
{
    uint8_t tag;
    if (r->err || remaining(r) < 1) {
        return fail(r);
    }
    tag = *r->p;
    if (tag >= 0xcc && tag <= 0xcf) {
        r->p++;
        return read_be(r, 1u << (tag - 0xcc), v);
    }
    {
        int64_t s;
        if (!mp_int(r, &s)) {
            return false;
        }
        if (s < 0) {
            return fail(r);
        }
        *v = (uint64_t)s;
        return true;
    }
}

bool mp_bool(struct mp_reader *r, bool *v)
{
    uint8_t tag;
    if (!read_byte(r, &tag)) {
        return false;
    }
    if (tag == 0xc2 || tag == 0xc3) {
        *v = tag == 0xc3;
        return true;
    }
    return fail(r);
}

bool mp_bytes(struct mp_reader *r, const char **data, uint32_t *len)
{
    uint8_t tag;
    uint64_t n;
    if (!read_byte(r, &tag)) {
        return false;
    }
    if ((tag & 0xe0) == 0xa0) {
        n = tag & 0x1f;
    } else if (tag == 0xd9 || tag == 0xc4) {
        if (!read_be(r, 1, &n)) {
            return false;
        }
    } else if (tag == 0xda || tag == 0xc5) {
        if (!read_be(r, 2, &n)) {
            return false;
        }
    } else if (tag == 0xdb || tag == 0xc6) {
        if (!read_be(r, 4, &n)) {
            return false;
        }
    } else {
        return fail(r);
    }
    if (n > remaining(r)) {
        return fail(r);
    }
    *data = (const char *)r->p;
    *len = (uint32_t)n;
    r->p += n;
    return true;
}

bool mp_try_nil(struct mp_reader *r)
{
    if (!r->err && remaining(r) > 0 && *r->p == 0xc0) {
        r->p++;
        return true;
    }
    return false;
}

static bool skip_n(struct mp_reader *r, uint64_t n)
{
    if (r->err || n > remaining(r)) {
        return fail(r);
    }
    r->p += n;
    return true;
}

static bool skip_depth(struct mp_reader *r, unsigned depth)
{
    uint8_t tag;
    uint64_t n;
    uint32_t count;
    uint32_t i;
    if (depth > MP_DEPTH_MAX) {
        return fail(r);
    }
    if (r->err || remaining(r) < 1) {
        return fail(r);
    }
    tag = *r->p;
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3) {
        r->p++;
        return true;
    }
    if ((tag & 0xf0) == 0x90 || tag == 0xdc || tag == 0xdd) {
        if (!mp_array(r, &count)) {
            return false;
        }
        for (i = 0; i < count; i++) {
            if (!skip_depth(r, depth + 1)) {
                return false;
            }
        }
        return true;
    }
    if ((tag & 0xf0) == 0x80 || tag == 0xde || tag == 0xdf) {
        if (!mp_map(r, &count)) {
            return false;
        }
        for (i = 0; i < 2 * (uint64_t)count; i++) {
            if (!skip_depth(r, depth + 1)) {
                return false;
            }
        }
        return true;
    }
    if ((tag & 0xe0) == 0xa0 || tag == 0xd9 || tag == 0xda || tag == 0xdb || tag == 0xc4 ||
        tag == 0xc5 || tag == 0xc6) {
        const char *d;
        uint32_t len;
        return mp_bytes(r, &d, &len);
    }
    r->p++;
    switch (tag) {
        case 0xcc:
        case 0xd0:
            return skip_n(r, 1);
        case 0xcd:
        case 0xd1:
            return skip_n(r, 2);
        case 0xce:
        case 0xd2:
        case 0xca:
            return skip_n(r, 4);
        case 0xcf:
        case 0xd3:
        case 0xcb:
            return skip_n(r, 8);
        case 0xd4:
            return skip_n(r, 2);
        case 0xd5:
            return skip_n(r, 3);
        case 0xd6:
            return skip_n(r, 5);
        case 0xd7:
            return skip_n(r, 9);
        case 0xd8:
            return skip_n(r, 17);
        case 0xc7:
        case 0xc8:
        case 0xc9: {
            unsigned w = tag == 0xc7 ? 1 : tag == 0xc8 ? 2 : 4;
            if (!read_be(r, w, &n)) {
                return false;
            }
            return skip_n(r, n + 1);
        }
        default:
            return fail(r);
    }
}

bool mp_skip(struct mp_reader *r)
{
    return skip_depth(r, 0);
}

bool mp_done(const struct mp_reader *r)
{
    return !r->err && r->p == r->end;
}
