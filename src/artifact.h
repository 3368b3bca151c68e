/*
 * artifact: the container of everything Cairn puts in object storage
 * (docs/disaster-recovery.md, "Formats"). Pure: bytes in, bytes out.
 *
 *   offset  size  what
 *   0       8     magic "CAIRNDR" and format byte 1
 *   8       1     kind: 'S' snapshot, 'L' log segment
 *   9       3     zero
 *   12      4     header length H, big-endian
 *   16      H     header: the artifact's manifest as a JSON object
 *   16+H    ...   body: one LZ4 frame (content checksum on)
 *   end-32  32    SHA-256 of every byte before it
 *
 * The trailing SHA-256 makes a truncated (partially uploaded) or altered
 * object fail before anything in it is believed; the LZ4 frame's own
 * checksum then guards the decompression.
 */
#ifndef CAIRN_ARTIFACT_H
#define CAIRN_ARTIFACT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define ARTIFACT_MAGIC "CAIRNDR\x01"
#define ARTIFACT_PREFIX_SIZE 16
#define ARTIFACT_TRAILER_SIZE 32
#define ARTIFACT_HEADER_MAX (1u << 20)

enum artifact_kind {
    ARTIFACT_SNAPSHOT = 'S',
    ARTIFACT_SEGMENT = 'L',
};

/* Where a writer's bytes go. Returns 0, or non-zero to fail the write. */
typedef int (*artifact_sink)(void *arg, const void *data, size_t len);

struct artifact_writer
{
    void *lz4; /* LZ4F_cctx */
    void *sha; /* EVP_MD_CTX */
    char *out; /* owned: one compressed chunk */
    size_t out_cap;
    artifact_sink sink;
    void *arg;
    uint64_t raw_bytes;    /* body bytes fed in */
    uint64_t stored_bytes; /* every byte handed to the sink */
    int failed;
};

/* Start an artifact of kind with header (JSON text). Returns 0 or -1. */
int artifact_writer_begin(struct artifact_writer *w, enum artifact_kind kind, const char *header,
                          size_t header_len, artifact_sink sink, void *arg);
/* Compress len body bytes into the artifact. Returns 0 or -1. */
int artifact_writer_write(struct artifact_writer *w, const void *data, size_t len);
/* Finish: end the LZ4 frame, append the SHA-256 (also copied to sha256 when
 * not NULL) and free everything. Returns 0 or -1 (everything freed too). */
int artifact_writer_end(struct artifact_writer *w, unsigned char sha256[32]);
/* Give up on an artifact begun; frees everything. */
void artifact_writer_abort(struct artifact_writer *w);

/* A sink appending to a struct buf. */
int artifact_sink_buf(void *arg, const void *data, size_t len);

/* A parsed artifact: pointers into the caller's bytes. */
struct artifact
{
    enum artifact_kind kind;
    const char *header;
    size_t header_len;
    const char *body; /* the LZ4 frame */
    size_t body_len;
    unsigned char sha256[32];
};

/* Read an artifact's first ARTIFACT_PREFIX_SIZE bytes: checks the magic and
 * the format, and gives the kind (not checked: artifact_parse does, after the
 * checksum) and the header's length. For reading a header without the whole
 * object; artifact_parse checks the rest. Returns 0, or -1 with a sentence in
 * err. */
int artifact_prefix(const unsigned char p[ARTIFACT_PREFIX_SIZE], unsigned *kind, size_t *header_len,
                    char *err, size_t errlen);

/* Check data[0..len): magic, lengths and the SHA-256. Returns 0, or -1 with
 * a sentence in err ("truncated", "checksum mismatch", ...). */
int artifact_parse(const void *data, size_t len, struct artifact *a, char *err, size_t errlen);

/* Decompress the body into out (appended), refusing more than max bytes.
 * Returns 0, or -1 with a sentence in err. */
int artifact_body(const struct artifact *a, struct buf *out, size_t max, char *err, size_t errlen);

/* SHA-256 of data, and as 64 lowercase hex digits plus NUL. */
void artifact_sha256(const void *data, size_t len, unsigned char out[32]);
void artifact_hex(const unsigned char *bytes, size_t n, char *out);

#endif /* CAIRN_ARTIFACT_H */
