#include "artifact.h"

#include <lz4frame.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"

void artifact_hex(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

void artifact_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

int artifact_sink_buf(void *arg, const void *data, size_t len)
{
    return buf_append(arg, data, len);
}

/* Hand bytes to the sink and the running SHA-256. */
static int emit(struct artifact_writer *w, const void *data, size_t len)
{
    if (w->failed || len == 0) {
        return w->failed ? -1 : 0;
    }
    if (EVP_DigestUpdate(w->sha, data, len) != 1 || w->sink(w->arg, data, len) != 0) {
        w->failed = 1;
        return -1;
    }
    w->stored_bytes += len;
    return 0;
}

static const LZ4F_preferences_t lz4_prefs = {
    .frameInfo =
        {
            .blockSizeID = LZ4F_max256KB,
            .blockMode = LZ4F_blockIndependent,
            .contentChecksumFlag = LZ4F_contentChecksumEnabled,
        },
    .compressionLevel = 0, /* fast */
};

/* Body bytes are fed in pieces of at most this size. */
#define ARTIFACT_CHUNK (256u * 1024u)

int artifact_writer_begin(struct artifact_writer *w, enum artifact_kind kind, const char *header,
                          size_t header_len, artifact_sink sink, void *arg)
{
    unsigned char prefix[ARTIFACT_PREFIX_SIZE];
    LZ4F_cctx *cctx = NULL;
    size_t n;
    memset(w, 0, sizeof(*w));
    if (header_len > ARTIFACT_HEADER_MAX) {
        return -1;
    }
    w->sink = sink;
    w->arg = arg;
    w->sha = EVP_MD_CTX_new();
    if (LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION))) {
        cctx = NULL;
    }
    w->lz4 = cctx;
    w->out_cap = LZ4F_compressBound(ARTIFACT_CHUNK, &lz4_prefs) + LZ4F_HEADER_SIZE_MAX;
    w->out = cairn_malloc(w->out_cap);
    if (w->sha == NULL || w->lz4 == NULL || w->out == NULL ||
        EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1) {
        artifact_writer_abort(w);
        return -1;
    }
    memcpy(prefix, ARTIFACT_MAGIC, 8);
    prefix[8] = (unsigned char)kind;
    prefix[9] = prefix[10] = prefix[11] = 0;
    prefix[12] = (unsigned char)(header_len >> 24);
    prefix[13] = (unsigned char)(header_len >> 16);
    prefix[14] = (unsigned char)(header_len >> 8);
    prefix[15] = (unsigned char)header_len;
    if (emit(w, prefix, sizeof(prefix)) != 0 || emit(w, header, header_len) != 0) {
        artifact_writer_abort(w);
        return -1;
    }
    n = LZ4F_compressBegin(cctx, w->out, w->out_cap, &lz4_prefs);
    if (LZ4F_isError(n) || emit(w, w->out, n) != 0) {
        artifact_writer_abort(w);
        return -1;
    }
    return 0;
}

int artifact_writer_write(struct artifact_writer *w, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0 && !w->failed) {
        size_t piece = len < ARTIFACT_CHUNK ? len : ARTIFACT_CHUNK;
        size_t n = LZ4F_compressUpdate(w->lz4, w->out, w->out_cap, p, piece, NULL);
        if (LZ4F_isError(n) || emit(w, w->out, n) != 0) {
            w->failed = 1;
            break;
        }
        w->raw_bytes += piece;
        p += piece;
        len -= piece;
    }
    return w->failed ? -1 : 0;
}

int artifact_writer_end(struct artifact_writer *w, unsigned char sha256[32])
{
    unsigned char digest[32];
    unsigned int dlen = sizeof(digest);
    size_t n;
    int rv = -1;
    if (!w->failed) {
        n = LZ4F_compressEnd(w->lz4, w->out, w->out_cap, NULL);
        if (!LZ4F_isError(n) && emit(w, w->out, n) == 0 &&
            EVP_DigestFinal_ex(w->sha, digest, &dlen) == 1 &&
            w->sink(w->arg, digest, sizeof(digest)) == 0) {
            w->stored_bytes += sizeof(digest);
            if (sha256 != NULL) {
                memcpy(sha256, digest, sizeof(digest));
            }
            rv = 0;
        }
    }
    artifact_writer_abort(w);
    return rv;
}

void artifact_writer_abort(struct artifact_writer *w)
{
    if (w->lz4 != NULL) {
        LZ4F_freeCompressionContext(w->lz4);
        w->lz4 = NULL;
    }
    if (w->sha != NULL) {
        EVP_MD_CTX_free(w->sha);
        w->sha = NULL;
    }
    cairn_free(w->out);
    w->out = NULL;
}

int artifact_prefix(const unsigned char p[ARTIFACT_PREFIX_SIZE], unsigned *kind, size_t *header_len,
                    char *err, size_t errlen)
{
    if (memcmp(p, ARTIFACT_MAGIC, 7) != 0) {
        errf(err, errlen, "not a Cairn backup artifact (bad magic)");
        return -1;
    }
    if (p[7] != (unsigned char)ARTIFACT_MAGIC[7]) {
        errf(err, errlen, "artifact format %u is not supported (this build reads %u)", p[7],
             (unsigned)(unsigned char)ARTIFACT_MAGIC[7]);
        return -1;
    }
    *kind = p[8];
    *header_len = (size_t)p[12] << 24 | (size_t)p[13] << 16 | (size_t)p[14] << 8 | p[15];
    return 0;
}

int artifact_parse(const void *data, size_t len, struct artifact *a, char *err, size_t errlen)
{
    const unsigned char *p = data;
    unsigned char digest[32];
    unsigned kind;
    size_t header_len;
    memset(a, 0, sizeof(*a));
    if (len < ARTIFACT_PREFIX_SIZE + ARTIFACT_TRAILER_SIZE) {
        errf(err, errlen, "truncated: %zu bytes is shorter than any artifact", len);
        return -1;
    }
    if (artifact_prefix(p, &kind, &header_len, err, errlen) != 0) {
        return -1;
    }
    artifact_sha256(p, len - ARTIFACT_TRAILER_SIZE, digest);
    if (memcmp(digest, p + len - ARTIFACT_TRAILER_SIZE, sizeof(digest)) != 0) {
        errf(err, errlen, "checksum mismatch: the object is corrupt or partially written");
        return -1;
    }
    if (kind != ARTIFACT_SNAPSHOT && kind != ARTIFACT_SEGMENT) {
        errf(err, errlen, "unknown artifact kind 0x%02x", kind);
        return -1;
    }
    if (header_len > len - ARTIFACT_PREFIX_SIZE - ARTIFACT_TRAILER_SIZE) {
        errf(err, errlen, "truncated: header of %zu bytes runs past the end", header_len);
        return -1;
    }
    a->kind = (enum artifact_kind)kind;
    a->header = (const char *)p + ARTIFACT_PREFIX_SIZE;
    a->header_len = header_len;
    a->body = a->header + header_len;
    a->body_len = len - ARTIFACT_PREFIX_SIZE - ARTIFACT_TRAILER_SIZE - header_len;
    memcpy(a->sha256, digest, sizeof(digest));
    return 0;
}

int artifact_body(const struct artifact *a, struct buf *out, size_t max, char *err, size_t errlen)
{
    LZ4F_dctx *dctx = NULL;
    const char *src = a->body;
    size_t left = a->body_len;
    size_t produced = 0;
    size_t hint = 1;
    int rv = -1;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION))) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    while (hint != 0) {
        size_t dst_len = 1u << 20;
        size_t src_len = left;
        if (buf_reserve(out, dst_len) != 0) {
            errf(err, errlen, "out of memory");
            goto out;
        }
        hint = LZ4F_decompress(dctx, out->data + out->len, &dst_len, src, &src_len, NULL);
        if (LZ4F_isError(hint)) {
            errf(err, errlen, "body does not decompress: %s", LZ4F_getErrorName(hint));
            goto out;
        }
        out->len += dst_len;
        produced += dst_len;
        src += src_len;
        left -= src_len;
        if (produced > max) {
            errf(err, errlen, "body is larger than the %zu bytes allowed", max);
            goto out;
        }
        if (hint != 0 && left == 0 && dst_len == 0) {
            errf(err, errlen, "truncated: the compressed body ends early");
            goto out;
        }
    }
    if (left != 0) {
        errf(err, errlen, "%zu bytes follow the compressed body", left);
        goto out;
    }
    rv = 0;
out:
    LZ4F_freeDecompressionContext(dctx);
    return rv;
}
