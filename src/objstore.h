/*
 * objstore: a small blocking object store for disaster recovery (issue 6):
 * put, get, list and delete whole objects, either in a local directory
 * ("file:///abs/dir") or in an S3 bucket ("s3://bucket/optional/prefix").
 *
 * Threads. Every call blocks (disk or network I/O, retries with sleeps), so
 * call them from worker threads, never from the libuv loop. One struct
 * objstore may be used by one thread at a time; use one per thread for
 * parallel transfers.
 *
 * Names. An object name is relative to the store's root, like
 * "abc/snap/0001.manifest": 1 to OBJSTORE_NAME_MAX bytes of [A-Za-z0-9._/-],
 * no leading or trailing '/', no empty, "." or ".." segment. Such a name is
 * the same in a file system and in an S3 key, and needs no escaping.
 * In a directory, "a" and "a/b" cannot both exist (a file is not a
 * directory): such a put fails.
 *
 * Results. Every function returns 0 on success, -1 on an error (one line
 * naming the store's URL and the object in err, which is always
 * NUL-terminated when errlen > 0), or OBJSTORE_ENOTFOUND (objstore_get
 * only). No function ever writes credentials into err.
 *
 * Atomicity. A reader never sees a partial object: the file backend writes a
 * temporary file and renames it; S3 makes a PUT visible only once complete.
 *
 * S3 (src/objstore_s3.c): requests are signed with SigV4 by libcurl, with the
 * body's SHA-256 in x-amz-content-sha256. Objects larger than
 * multipart_threshold go up as a multipart upload of part_size parts, the
 * others in one PUT. Failures that may be transient (connection errors,
 * timeouts, HTTP 5xx and 429) are retried with exponential backoff and
 * jitter; other errors fail at once with S3's error Code and Message.
 */
#ifndef CAIRN_OBJSTORE_H
#define CAIRN_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

/* objstore_get: the object does not exist (a positive code). */
#define OBJSTORE_ENOTFOUND 1

/* The longest object name, in bytes (S3 allows 1024 for the whole key,
 * including the store's prefix). */
#define OBJSTORE_NAME_MAX 900

struct objstore; /* opaque */

/* Options; a NULL options pointer, or a zeroed struct with path_style -1,
 * means every default. Only the S3 backend reads them. The strings are
 * copied by objstore_open. */
struct objstore_options
{
    /* "http://127.0.0.1:9000" or "https://s3.eu-west-1.amazonaws.com" (no
     * path); NULL: AWS, https://BUCKET.s3.REGION.amazonaws.com. */
    const char *endpoint;
    /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, else "us-east-1". */
    const char *region;
    /* -1 auto (path style when an endpoint is given, or when the bucket name
     * holds a '.'), 0 virtual-host (BUCKET.host), 1 path style (host/BUCKET). */
    int path_style;
    /* NULL: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY and
     * $AWS_SESSION_TOKEN when the first two are set, else the shared
     * credentials file $AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials.
     * Either file is read for profile $AWS_PROFILE, else [default]. */
    const char *credentials_file;
    unsigned timeout_ms; /* per HTTP request; 0: 30000 */
    /* Attempts after the first on transient failures; 0: 4. The waits
     * double from 200 ms (capped at 5 s), each drawn uniformly from
     * [wait/2, wait]. */
    unsigned retries;
    size_t part_size; /* multipart part size; 0: 8 MiB; at least 5 MiB */
    /* Objects larger than this go up in parts; 0: 256 MiB. A multipart
     * upload retries a failed part alone, but the store assembles the parts
     * afterwards (s3rver copies every byte again), and it costs a request
     * per part. */
    size_t multipart_threshold;
    /* Uploads of objects read from a file (objstore_put_file) go no faster
     * than this many bytes/s (0: no limit): a snapshot's upload then takes
     * the store's CPU, and ours, a little at a time. */
    uint64_t put_file_rate;
    /* Server-side encryption asked of an S3 store for every object written:
     * NULL (the bucket's default encryption), "AES256" (SSE-S3, keys managed
     * by S3) or "aws:kms" (SSE-KMS), with sse_kms_key_id (a key ID, ARN or
     * alias/NAME; NULL: the account's default key for S3). Sent, and signed,
     * with PutObject and CreateMultipartUpload, as S3 wants them; reads need
     * nothing. A bucket policy that requires it refuses uploads without it.
     * A file store refuses the option. */
    const char *sse;
    const char *sse_kms_key_id;
};

/* Opens the store at url: "file:///abs/dir" (the directory must exist) or
 * "s3://bucket" or "s3://bucket/prefix". Opening does no network I/O: an S3
 * store that is unreachable or refuses the credentials fails on first use.
 * On success *out owns the store (objstore_close frees it); on failure *out
 * is NULL and err says why. */
int objstore_open(const char *url, const struct objstore_options *opt, struct objstore **out,
                  char *err, size_t errlen);
void objstore_close(struct objstore *s);
/* The URL the store was opened with; valid until objstore_close. */
const char *objstore_url(const struct objstore *s);

/* Stores len bytes of data (copied; len may be 0) under name, replacing any
 * object of that name. */
int objstore_put(struct objstore *s, const char *name, const void *data, size_t len, char *err,
                 size_t errlen);
/* Stores len bytes read from fd at offset 0 (pread: fd's offset is not
 * moved; the caller keeps fd open and closes it). Memory use is at most one
 * part, not the whole object; a short file is an error. */
int objstore_put_file(struct objstore *s, const char *name, int fd, size_t len, char *err,
                      size_t errlen);
/* Reads the whole object. On 0 the caller owns *data (cairn_free; it is
 * allocated even for an empty object, and NUL-terminated one byte past
 * *len for convenience); otherwise *data is NULL. Returns
 * OBJSTORE_ENOTFOUND, with nothing in err, when the object does not exist. */
int objstore_get(struct objstore *s, const char *name, void **data, size_t *len, char *err,
                 size_t errlen);

/* Called once per object, name relative to the store root and valid only
 * during the call; returning non-zero stops the listing (objstore_list then
 * returns 0). */
typedef int (*objstore_list_cb)(void *arg, const char *name, uint64_t size);
/* Calls cb for every object whose name starts with prefix ("" or NULL: all),
 * in ascending bytewise order of name. The prefix need not end at a '/'; it
 * must be "" or made of name characters. Both backends gather the whole
 * listing (names and sizes) in memory and sort it before the first call
 * (S3-compatible servers do not all list in S3's order), so a listing costs
 * memory in proportion to the objects under the prefix. In S3, objects
 * that another tool wrote may have names outside the rules above; they are
 * listed as they are (XML entities decoded). */
int objstore_list(struct objstore *s, const char *prefix, objstore_list_cb cb, void *arg, char *err,
                  size_t errlen);
/* Deletes the object; an absent object is not an error. */
int objstore_delete(struct objstore *s, const char *name, char *err, size_t errlen);

/* HTTP requests this store has sent, retries included (0 for a file
 * store): what a store that charges per request would count. */
uint64_t objstore_requests(const struct objstore *s);

/* For tests: make objstore_list ask S3 for at most max_keys keys per page
 * (0: S3's default of 1000), so that paging is exercised with few objects.
 * No effect on a file store. */
void objstore_set_list_page_size(struct objstore *s, unsigned max_keys);

/*
 * Internal: the S3 backend (src/objstore_s3.c), for src/objstore.c only.
 * objstore.c checks names and prefixes before calling these and prefixes
 * err with the store's URL, the operation and the name; these write only
 * the reason. They return what the functions above return.
 */
struct objstore_s3;
int objstore_s3_open(const char *bucket, const char *prefix, const struct objstore_options *opt,
                     struct objstore_s3 **out, char *err, size_t errlen);
void objstore_s3_close(struct objstore_s3 *s3);
/* Exactly one of data and fd >= 0 is the source. */
int objstore_s3_put(struct objstore_s3 *s3, const char *name, const void *data, int fd, size_t len,
                    char *err, size_t errlen);
int objstore_s3_get(struct objstore_s3 *s3, const char *name, void **data, size_t *len, char *err,
                    size_t errlen);
int objstore_s3_list(struct objstore_s3 *s3, const char *prefix, objstore_list_cb cb, void *arg,
                     char *err, size_t errlen);
int objstore_s3_delete(struct objstore_s3 *s3, const char *name, char *err, size_t errlen);
void objstore_s3_set_list_page_size(struct objstore_s3 *s3, unsigned max_keys);
uint64_t objstore_s3_requests(const struct objstore_s3 *s3);

#endif /* CAIRN_OBJSTORE_H */
