/*
 * sigv4: AWS Signature Version 4 for S3 requests (header-based, payload
 * hash given), as AWS documents it ("Signature Version 4 signing process").
 *
 * objstore_s3 signs its requests with this rather than with libcurl's
 * CURLOPT_AWS_SIGV4, because the libcurl of Debian 12 (7.88) sorts the
 * signed headers by whole "name:value" line instead of by name: when one
 * header's name is a prefix of another's, as with SSE-KMS's
 * x-amz-server-side-encryption and x-amz-server-side-encryption-aws-kms-key-id,
 * it puts them in the wrong order and S3 refuses the signature (fixed in
 * curl 8.10, pull request 14370).
 */
#ifndef CAIRN_SIGV4_H
#define CAIRN_SIGV4_H

#include <stddef.h>
#include <time.h>

struct sigv4_header
{
    const char *name;  /* lower case; every header given is signed */
    const char *value; /* trimmed, inner runs of blanks folded to one, when signed */
};

struct sigv4_request
{
    const char *method; /* "GET", "PUT", ... */
    const char *path;   /* the URL's path, already in SigV4's canonical encoding */
    const char *query;  /* "" or the query, already canonical: sorted, each name=value */
    /* The headers to sign, in any order, at most SIGV4_HEADERS_MAX of them,
     * names unique; "host", "x-amz-date" and "x-amz-content-sha256" among
     * them. Sent as given. */
    const struct sigv4_header *headers;
    size_t n_headers;
    const char *payload_sha256; /* 64 hex digits, as in x-amz-content-sha256 */
    const char *amz_date;       /* YYYYMMDDTHHMMSSZ, as in x-amz-date */
    const char *region;
    const char *service; /* "s3" */
    const char *access_key;
    const char *secret_key;
};

#define SIGV4_HEADERS_MAX 16

/* n bytes as 2n lower-case hex digits and a NUL, as SigV4 writes digests. */
void sigv4_hex(const unsigned char *md, size_t n, char *out);

/* x-amz-date's value for t (UTC): 16 characters and a NUL. */
void sigv4_amz_date(time_t t, char out[17]);

/* Writes the Authorization header's value ("AWS4-HMAC-SHA256
 * Credential=..., SignedHeaders=..., Signature=...") into out. Returns 0,
 * or -1 when the request is malformed (too many headers, a repeated name,
 * a date not 16 characters) or out is too small or memory runs out. */
int sigv4_authorization(const struct sigv4_request *req, char *out, size_t outlen);

#endif /* CAIRN_SIGV4_H */
