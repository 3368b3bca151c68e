/*
 * objstore_s3: the S3 backend of objstore (see objstore.h), over libcurl.
 *
 * Signing. Every request is signed with SigV4 by src/sigv4.c, not by
 * libcurl's CURLOPT_AWS_SIGV4, whose 7.88 (Debian 12) orders signed headers
 * by whole line and so cannot sign SSE-KMS's pair of headers (sigv4.h).
 * What we sign is what we send: Host, x-amz-date, x-amz-content-sha256
 * (always the body's real SHA-256, never UNSIGNED-PAYLOAD, so a body
 * damaged on the way is refused by S3), Content-Type on POSTs, the session
 * token, and the encryption headers on requests that create an object.
 * libcurl adds headers of its own (Content-Length, Expect, Accept) that
 * are not signed, which S3 allows. The request's path and query go into
 * the signature as we wrote them, so they must already be canonical:
 *   - the path: every byte outside A-Za-z0-9-._~/ percent-encoded, once.
 *     Object names and the store's prefix are restricted to
 *     [A-Za-z0-9._/-] (objstore.c checks), so keys go in as they are;
 *     uri_encode() still runs over them as a guard.
 *   - the query: parameters in ascending order, each as name=value (also
 *     "uploads="), values encoded with '/' as %2F.
 * tests/dr/sigv4_proxy.py recomputes every signature with botocore and
 * checks these rules.
 *
 * Bodies. An object up to multipart_threshold (256 MiB) goes in one PUT:
 * from memory, or for put_file read from the file twice, once to hash it
 * and once as libcurl sends it, so that it is never held whole. A larger
 * object goes up in parts, each read from the file into part_buf. Either
 * way the body is hashed before it is sent, and sent again on a retry.
 *
 * Retries. Connection failures, timeouts, HTTP 5xx, 429 and S3's
 * "RequestTimeout" 400 are retried (opt->retries times) after
 * exponentially growing waits with jitter; any other answer fails at once
 * with S3's error Code and Message.
 */
#define _GNU_SOURCE
#include "objstore.h"

#include "buf.h"
#include "errbuf.h"
#include "sigv4.h"

#include <curl/curl.h>
#include <openssl/evp.h>

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define S3_TIMEOUT_MS_DEFAULT 30000
#define S3_RETRIES_DEFAULT 4
#define S3_PART_BYTES_DEFAULT ((size_t)8 << 20)
#define S3_PART_BYTES_MIN ((size_t)5 << 20) /* S3's minimum for all parts but the last */
#define S3_MULTIPART_THRESHOLD_DEFAULT ((size_t)256 << 20)
/* A request's time limit grows by its body's time at this speed, or at the
 * pacing rate when that is slower, so that a large PUT is not cut short. */
#define S3_SLOWEST_BYTES_PER_S ((uint64_t)1 << 20)
#define S3_HASH_CHUNK ((size_t)1 << 20) /* bytes read per step when hashing a file */
#define S3_PARTS_MAX 10000              /* S3's limit on parts per upload */
#define S3_BACKOFF_FIRST_MS 200
#define S3_BACKOFF_MAX_MS 5000
#define S3_MESSAGE_MAX 200 /* bytes of S3's error Message quoted in err */
#define S3_ETAG_MAX 128
#define S3_REGION_MAX 32

struct objstore_s3
{
    char *bucket_url; /* owned: the bucket, for listing (no trailing '/' in path style) */
    char *key_url;    /* owned: prefix of every object's URL, ending in '/' or root/ */
    char *root;       /* owned: "" or "prefix/": prepended to names in keys */
    char region[S3_REGION_MAX + 1];
    char *access_key;    /* owned */
    char *secret_key;    /* owned; never printed */
    char *session_token; /* owned, NULL when none; never printed */
    long timeout_ms;
    unsigned retries;
    size_t part_size;
    size_t multipart_threshold; /* larger objects go up in parts */
    uint64_t requests;          /* HTTP requests sent, retries included */
    uint64_t put_file_rate;     /* bytes/s for uploads from a file; 0: no limit */
    uint64_t send_rate;         /* the request being sent: put_file_rate or 0 */
    unsigned page_size;         /* max-keys for ListObjectsV2; 0: S3's default */
    CURL *curl;                 /* owned; reused so connections are kept alive */
    struct buf body;            /* the last response's body */
    char etag[S3_ETAG_MAX];     /* the last response's ETag header */
    char code[64];              /* the last response's S3 error Code, or "" */
    /* owned, NULL when none: the values of x-amz-server-side-encryption
     * and of its KMS key id, sent with requests that create an object */
    char *sse;
    char *sse_key;
    bool sse_now;   /* the request being sent creates an object */
    char *part_buf; /* owned: put_file's part, part_buf_cap bytes */
    size_t part_buf_cap;
    uint64_t rng; /* for backoff jitter */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init_once(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- small helpers ------------------------------------------------------ */

static uint64_t rng_next(uint64_t *state)
{
    /* splitmix64 */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void sha256_hex(const void *data, size_t len, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL);
    assert(ok == 1); /* SHA-256 of memory cannot fail short of a broken libcrypto */
    assert(md_len == 32);
    (void)ok;
    sigv4_hex(md, 32, hex);
}

struct put_source
{
    const char *data; /* borrowed, or NULL */
    int fd;
};

/* Points *out at bytes [off, off + n) of the source. */
static int source_read(struct objstore_s3 *s, const struct put_source *src, size_t off, size_t n,
                       const char **out, char *err, size_t errlen)
{
    if (src->data != NULL) {
        *out = src->data + off;
        return 0;
    }
    if (n > s->part_buf_cap) {
        char *p = cairn_realloc(s->part_buf, n);
        if (p == NULL) {
            errf(err, errlen, "out of memory for a %zu-byte part", n);
            return -1;
        }
        s->part_buf = p;
        s->part_buf_cap = n;
    }
    for (size_t done = 0; done < n;) {
        ssize_t r = pread(src->fd, s->part_buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            errf(err, errlen, "read source at %zu: %s", off + done,
                 r < 0 ? strerror(errno) : "file shorter than the given length");
            return -1;
        }
        done += (size_t)r;
    }
    *out = s->part_buf;
    return 0;
}

/* The SHA-256 of the len bytes of src, read S3_HASH_CHUNK at a time. */
static int sha256_hex_source(struct objstore_s3 *s, const struct put_source *src, size_t len,
                             char hex[65], char *err, size_t errlen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        errf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < S3_HASH_CHUNK ? len - off : S3_HASH_CHUNK;
        const char *piece;
        if (source_read(s, src, off, n, &piece, err, errlen) != 0) {
            EVP_MD_CTX_free(ctx);
            return -1;
        }
        EVP_DigestUpdate(ctx, piece, n);
        off += n;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    int ok = EVP_DigestFinal_ex(ctx, md, &md_len);
    EVP_MD_CTX_free(ctx);
    assert(ok == 1 && md_len == 32);
    (void)ok;
    sigv4_hex(md, 32, hex);
    return 0;
}

/* Appends s percent-encoded as SigV4 wants: every byte but A-Za-z0-9-._~
 * (and '/' when keep_slash) as %XX in upper case. */
static int uri_encode(struct buf *out, const char *s, int keep_slash)
{
    static const char digits[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (plain) {
            if (buf_append(out, s, 1) != 0) {
                return -1;
            }
        } else {
            char e[3] = {'%', digits[c >> 4], digits[c & 15]};
            if (buf_append(out, e, 3) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static int buf_puts(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

static int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) != 0) {
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* NUL-terminates b's contents without counting the NUL. */
static int buf_cstr(struct buf *b)
{
    if (buf_reserve(b, 1) != 0) {
        return -1;
    }
    b->data[b->len] = '\0';
    return 0;
}

/* --- minimal XML -------------------------------------------------------- */

/* S3's XML answers are small and flat; we need a few elements' text. This
 * finds the first <tag ...>TEXT</tag> in [p, end) and returns the text's
 * bounds, or NULL. Empty elements (<tag/>) have empty text. It does not
 * parse XML in general: CDATA and comments are not expected from S3. */
static const char *xml_find(const char *p, const char *end, const char *tag, const char **text,
                            const char **text_end)
{
    size_t tag_len = strlen(tag);
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        if (lt == NULL || (size_t)(end - lt) < tag_len + 2) {
            return NULL;
        }
        const char *after = lt + 1 + tag_len;
        if (memcmp(lt + 1, tag, tag_len) != 0 ||
            !(*after == '>' || *after == '/' || *after == ' ' || *after == '\t' || *after == '\r' ||
              *after == '\n')) {
            p = lt + 1;
            continue;
        }
        const char *gt = memchr(after, '>', (size_t)(end - after));
        if (gt == NULL) {
            return NULL;
        }
        if (gt[-1] == '/') {
            *text = *text_end = gt + 1;
            return gt + 1;
        }
        const char *q = gt + 1;
        /* The closing tag. */
        while (q < end) {
            const char *c = memchr(q, '<', (size_t)(end - q));
            if (c == NULL || (size_t)(end - c) < tag_len + 3) {
                return NULL;
            }
            if (c[1] == '/' && memcmp(c + 2, tag, tag_len) == 0 && c[2 + tag_len] == '>') {
                *text = gt + 1;
                *text_end = c;
                return c + 3 + tag_len;
            }
            q = c + 1;
        }
        return NULL;
    }
    return NULL;
}

static int utf8_put(struct buf *out, unsigned long cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buf_append(out, u, n);
}

/* Replaces out's contents with the text [p, end) with XML's entities
 * decoded (the five named ones and numeric ones), NUL-terminated. An
 * unknown or broken entity is kept as it is. Returns 0 or -1 (memory). */
static int xml_text(struct buf *out, const char *p, const char *end)
{
    out->len = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        if (buf_append(out, p, (size_t)(stop - p)) != 0) {
            return -1;
        }
        if (amp == NULL) {
            break;
        }
        const char *semi = memchr(amp, ';', (size_t)(end - amp) < 12 ? (size_t)(end - amp) : 12);
        int done = 0;
        if (semi != NULL) {
            size_t n = (size_t)(semi - amp - 1);
            const char *name = amp + 1;
            static const struct
            {
                const char *name;
                char c;
            } named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
            for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
                if (strlen(named[i].name) == n && memcmp(name, named[i].name, n) == 0) {
                    if (buf_append(out, &named[i].c, 1) != 0) {
                        return -1;
                    }
                    done = 1;
                    break;
                }
            }
            if (!done && n >= 2 && name[0] == '#') {
                char digits[12];
                int hex = name[1] == 'x' || name[1] == 'X';
                size_t dn = n - 1 - (size_t)hex;
                if (dn > 0 && dn < sizeof digits) {
                    memcpy(digits, name + 1 + hex, dn);
                    digits[dn] = '\0';
                    char *e;
                    unsigned long cp = strtoul(digits, &e, hex ? 16 : 10);
                    if (*e == '\0' && cp > 0 && cp <= 0x10ffff) {
                        if (utf8_put(out, cp) != 0) {
                            return -1;
                        }
                        done = 1;
                    }
                }
            }
        }
        if (done) {
            p = semi + 1;
        } else {
            if (buf_append(out, "&", 1) != 0) {
                return -1;
            }
            p = amp + 1;
        }
    }
    return buf_cstr(out);
}

/* Appends s with &, < and > escaped. */
static int xml_escape(struct buf *out, const char *s)
{
    for (; *s != '\0'; s++) {
        const char *e = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        if (e != NULL ? buf_puts(out, e) != 0 : buf_append(out, s, 1) != 0) {
            return -1;
        }
    }
    return 0;
}

/* --- requests ----------------------------------------------------------- */

enum s3_method { S3_GET, S3_PUT, S3_POST, S3_DELETE };

/* A request's body: len bytes of memory, or of a file from offset 0 (data
 * NULL), which is read as libcurl sends it rather than held in memory. */
struct s3_upload
{
    const char *data; /* borrowed, or NULL */
    int fd;           /* when data is NULL */
    size_t len;
    size_t pos;
    int read_errno; /* a failed read of fd: errno, or -1 for a short file */
};

static size_t s3_read_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct s3_upload *u = arg;
    size_t n = size * nmemb;
    if (n > u->len - u->pos) {
        n = u->len - u->pos;
    }
    if (u->data != NULL) {
        memcpy(ptr, u->data + u->pos, n);
    } else if (n > 0) {
        ssize_t r;
        do {
            r = pread(u->fd, ptr, n, (off_t)u->pos);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) {
            u->read_errno = r < 0 ? errno : -1;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)r;
    }
    u->pos += n;
    return n;
}

/* libcurl rewinds the body when it must send it again on the same request
 * (after a refused "Expect: 100-continue", say). */
static int s3_seek_cb(void *arg, curl_off_t offset, int origin)
{
    struct s3_upload *u = arg;
    if (origin != SEEK_SET || offset < 0 || (size_t)offset > u->len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    u->pos = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t s3_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct objstore_s3 *s = arg;
    size_t n = size * nmemb;
    if (buf_append(&s->body, ptr, n) != 0) {
        return 0; /* libcurl fails the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static size_t s3_header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct objstore_s3 *s = arg;
    size_t n = size * nmemb;
    if (n > 5 && strncasecmp(ptr, "etag:", 5) == 0) {
        const char *v = ptr + 5;
        const char *end = ptr + n;
        while (v < end && (*v == ' ' || *v == '\t')) {
            v++;
        }
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
            end--;
        }
        size_t len = (size_t)(end - v);
        if (len >= sizeof s->etag) {
            len = 0; /* not an ETag S3 would send; the caller reports none */
        }
        memcpy(s->etag, v, len);
        s->etag[len] = '\0';
    }
    return n;
}

static int curl_transient(CURLcode cc)
{
    switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
            return 1;
        default:
            return 0;
    }
}

/* Describes the last HTTP error answer in err: "HTTP 403
 * SignatureDoesNotMatch: The request signature ...", and sets s->code. */
static void s3_describe_error(struct objstore_s3 *s, long status, char *err, size_t errlen)
{
    const char *end = s->body.data + s->body.len;
    const char *t, *te;
    struct buf text;
    buf_init(&text);
    s->code[0] = '\0';
    if (s->body.len > 0 && xml_find(s->body.data, end, "Code", &t, &te) != NULL &&
        xml_text(&text, t, te) == 0) {
        snprintf(s->code, sizeof s->code, "%s", text.data);
    }
    char message[S3_MESSAGE_MAX + 1] = "";
    if (s->body.len > 0 && xml_find(s->body.data, end, "Message", &t, &te) != NULL &&
        xml_text(&text, t, te) == 0) {
        snprintf(message, sizeof message, "%s", text.data);
    }
    buf_free(&text);
    if (s->code[0] != '\0') {
        errf(err, errlen, "HTTP %ld %s%s%s", status, s->code, message[0] ? ": " : "", message);
    } else {
        errf(err, errlen, "HTTP %ld (no S3 error in the answer)", status);
    }
}

/* The time a request may take: the timeout, plus, for a PUT, its body's
 * time at S3_SLOWEST_BYTES_PER_S or at send_rate when that is slower (a
 * 256 MiB PUT gets 30 s + 256 s; a 4 MiB part paced at 512 KiB/s, 30 s +
 * 8 s). */
static long request_timeout_ms(const struct objstore_s3 *s, enum s3_method method, size_t len)
{
    if (method != S3_PUT) {
        return s->timeout_ms;
    }
    uint64_t speed = S3_SLOWEST_BYTES_PER_S;
    if (s->send_rate != 0 && s->send_rate < speed) {
        speed = s->send_rate;
    }
    return s->timeout_ms + (long)((uint64_t)len * 1000 / speed);
}

/* Frees a header list that may hold the session token. */
static void free_headers(struct curl_slist *headers)
{
    for (struct curl_slist *h = headers; h != NULL; h = h->next) {
        memset(h->data, 0, strlen(h->data));
    }
    curl_slist_free_all(headers);
}

/* The request's headers, signed now: hv (whose "x-amz-date" value is
 * amz_date, written here) and the Authorization. NULL when out of memory. */
static struct curl_slist *sign(const struct objstore_s3 *s, enum s3_method method, const char *path,
                               const char *query, const struct sigv4_header *hv, size_t nh,
                               const char *hash, char *amz_date)
{
    static const char *const names[] = {
        [S3_GET] = "GET", [S3_PUT] = "PUT", [S3_POST] = "POST", [S3_DELETE] = "DELETE"};
    sigv4_amz_date(time(NULL), amz_date);
    struct sigv4_request req = {
        .method = names[method],
        .path = path,
        .query = query,
        .headers = hv,
        .n_headers = nh,
        .payload_sha256 = hash,
        .amz_date = amz_date,
        .region = s->region,
        .service = "s3",
        .access_key = s->access_key,
        .secret_key = s->secret_key,
    };
    char auth[1024];
    if (sigv4_authorization(&req, auth, sizeof auth) != 0) {
        return NULL;
    }
    struct curl_slist *headers = NULL;
    struct buf line;
    buf_init(&line);
    for (size_t i = 0; i <= nh; i++) {
        line.len = 0;
        int bad = i < nh ? buf_printf(&line, "%s: %s", hv[i].name, hv[i].value)
                         : buf_printf(&line, "Authorization: %s", auth);
        struct curl_slist *h = NULL;
        if (bad == 0 && buf_cstr(&line) == 0) {
            h = curl_slist_append(headers, line.data);
        }
        if (h == NULL) {
            free_headers(headers);
            headers = NULL;
            break;
        }
        headers = h;
    }
    if (line.data != NULL) {
        memset(line.data, 0, line.len); /* may be the session token */
    }
    buf_free(&line);
    return headers;
}

/* Sends one request to url with the body data (or, data NULL, bytes
 * [0, len) of fd), retrying transient failures. The answer's body lands in
 * s->body, its ETag in s->etag. Returns 0 on a 2xx answer; -1 otherwise,
 * with the reason in err, *status the last HTTP status (0 when none came)
 * and s->code S3's error Code (or ""). what names the request in err
 * ("PUT", "PUT part 3/5"). */
static int s3_send(struct objstore_s3 *s, enum s3_method method, const char *url, const void *data,
                   int fd, size_t len, const char *what, long *status, char *err, size_t errlen)
{
    char hash[65];
    *status = 0;
    if (data == NULL && len > 0) {
        struct put_source src = {.data = NULL, .fd = fd};
        char reason[200];
        if (sha256_hex_source(s, &src, len, hash, reason, sizeof reason) != 0) {
            errf(err, errlen, "%s: %s", what, reason);
            return -1;
        }
    } else {
        sha256_hex(len > 0 ? data : "", len, hash);
    }
    /* Every header we send but the Authorization is signed. */
    struct sigv4_header hv[8];
    size_t nh = 0;
    char amz_date[17];
    char host[300];
    hv[nh++] = (struct sigv4_header){"host", host};
    hv[nh++] = (struct sigv4_header){"x-amz-date", amz_date};
    hv[nh++] = (struct sigv4_header){"x-amz-content-sha256", hash};
    if (method == S3_POST) {
        hv[nh++] = (struct sigv4_header){"content-type", "application/xml"};
    }
    if (s->session_token != NULL) {
        hv[nh++] = (struct sigv4_header){"x-amz-security-token", s->session_token};
    }
    if (s->sse_now && s->sse != NULL) {
        hv[nh++] = (struct sigv4_header){"x-amz-server-side-encryption", s->sse};
        if (s->sse_key != NULL) {
            hv[nh++] =
                (struct sigv4_header){"x-amz-server-side-encryption-aws-kms-key-id", s->sse_key};
        }
    }
    /* The URL is ours (object_url, bucket_url): scheme://host/path?query,
     * its path and query already canonical. */
    const char *authority = strstr(url, "://");
    authority = authority != NULL ? authority + 3 : url;
    size_t host_len = strcspn(authority, "/?");
    if (host_len >= sizeof host) {
        errf(err, errlen, "%s: the host name is too long", what);
        return -1;
    }
    memcpy(host, authority, host_len);
    host[host_len] = '\0';
    const char *path_start = authority + host_len;
    size_t path_len = strcspn(path_start, "?");
    char *path = cairn_malloc(path_len + 2);
    if (path == NULL) {
        errf(err, errlen, "%s: out of memory", what);
        return -1;
    }
    if (path_len > 0) {
        snprintf(path, path_len + 1, "%.*s", (int)path_len, path_start);
    } else {
        snprintf(path, 2, "/"); /* a URL without a path asks for the root */
    }
    const char *query = path_start[path_len] == '?' ? path_start + path_len + 1 : "";

    int rc = -1;
    *status = 0;
    for (unsigned attempt = 0;; attempt++) {
        CURL *c = s->curl;
        char curl_err[CURL_ERROR_SIZE] = "";
        struct s3_upload upload = {.data = data, .fd = fd, .len = len, .pos = 0};
        /* Signed afresh for each attempt: S3 refuses a date 15 minutes old. */
        struct curl_slist *headers = sign(s, method, path, query, hv, nh, hash, amz_date);
        if (headers == NULL) {
            errf(err, errlen, "%s: cannot sign the request (out of memory?)", what);
            break;
        }
        s->body.len = 0;
        s->etag[0] = '\0';
        s->code[0] = '\0';
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, request_timeout_ms(s, method, len));
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s3_write_cb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s3_header_cb);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
        switch (method) {
            case S3_GET:
                break;
            case S3_PUT:
                curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(c, CURLOPT_READFUNCTION, s3_read_cb);
                curl_easy_setopt(c, CURLOPT_READDATA, &upload);
                curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, s3_seek_cb);
                curl_easy_setopt(c, CURLOPT_SEEKDATA, &upload);
                curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
                /* libcurl paces the body itself, so the store gets it evenly. */
                curl_easy_setopt(c, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)s->send_rate);
                break;
            case S3_POST:
                curl_easy_setopt(c, CURLOPT_POST, 1L);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, len > 0 ? (const char *)data : "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
                break;
            case S3_DELETE:
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
                break;
        }
        s->requests++;
        CURLcode cc = curl_easy_perform(c);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
        free_headers(headers);
        int retry;
        if (cc != CURLE_OK && upload.read_errno != 0) {
            *status = 0;
            errf(err, errlen, "%s: read source at %zu: %s", what, upload.pos,
                 upload.read_errno > 0 ? strerror(upload.read_errno)
                                       : "file shorter than the given length");
            break;
        } else if (cc != CURLE_OK) {
            *status = 0;
            errf(err, errlen, "%s: %s", what, curl_err[0] ? curl_err : curl_easy_strerror(cc));
            retry = curl_transient(cc);
        } else {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
            int ok = *status >= 200 && *status < 300;
            /* CompleteMultipartUpload may answer 200 and then an error. */
            const char *t, *te;
            if (ok && method == S3_POST && s->body.len > 0 &&
                xml_find(s->body.data, s->body.data + s->body.len, "Error", &t, &te) != NULL) {
                ok = 0;
            }
            if (ok) {
                rc = 0;
                break;
            }
            char reason[320];
            s3_describe_error(s, *status, reason, sizeof reason);
            errf(err, errlen, "%s: %s", what, reason);
            retry = *status >= 500 || *status == 429 || strcmp(s->code, "RequestTimeout") == 0 ||
                    strcmp(s->code, "InternalError") == 0 || strcmp(s->code, "SlowDown") == 0;
        }
        if (!retry || attempt >= s->retries) {
            if (attempt > 0 && err != NULL) {
                size_t n = strlen(err);
                if (n < errlen) {
                    snprintf(err + n, errlen - n, " (after %u attempts)", attempt + 1);
                }
            }
            break;
        }
        /* Exponential backoff with jitter: the cap doubles per attempt, and
         * the wait is drawn from its upper half so that retries of many
         * clients spread out yet never come back at once. */
        unsigned cap = S3_BACKOFF_FIRST_MS << (attempt < 5 ? attempt : 5);
        if (cap > S3_BACKOFF_MAX_MS) {
            cap = S3_BACKOFF_MAX_MS;
        }
        sleep_ms(cap / 2 + (unsigned)(rng_next(&s->rng) % (cap / 2 + 1)));
    }
    cairn_free(path);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, NULL);
    return rc;
}

static int s3_request(struct objstore_s3 *s, enum s3_method method, const char *url,
                      const void *data, size_t len, const char *what, long *status, char *err,
                      size_t errlen)
{
    return s3_send(s, method, url, data, -1, len, what, status, err, errlen);
}

/* --- credentials -------------------------------------------------------- */

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        s[--n] = '\0';
    }
    return s;
}

/* Reads profile from an AWS shared credentials file (INI: [profile], then
 * key = value lines). */
static int credentials_from_file(struct objstore_s3 *s, const char *path, const char *profile,
                                 char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        errf(err, errlen,
             "no credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
             "are not set, and %s: %s",
             path, strerror(errno));
        return -1;
    }
    char line[2048];
    int in_profile = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
        char *l = trim(line);
        if (l[0] == '\0' || l[0] == '#' || l[0] == ';') {
            continue;
        }
        if (l[0] == '[') {
            char *close = strchr(l, ']');
            if (close != NULL) {
                *close = '\0';
            }
            in_profile = strcmp(trim(l + 1), profile) == 0;
            continue;
        }
        char *eq = strchr(l, '=');
        if (!in_profile || eq == NULL) {
            continue;
        }
        *eq = '\0';
        char *key = trim(l);
        char *value = trim(eq + 1);
        char **slot = strcasecmp(key, "aws_access_key_id") == 0       ? &s->access_key
                      : strcasecmp(key, "aws_secret_access_key") == 0 ? &s->secret_key
                      : strcasecmp(key, "aws_session_token") == 0     ? &s->session_token
                                                                      : NULL;
        if (slot != NULL) {
            cairn_free(*slot);
            if ((*slot = cairn_strdup(value)) == NULL) {
                errf(err, errlen, "out of memory");
                rc = -1;
            }
        }
    }
    memset(line, 0, sizeof line); /* may hold a secret */
    fclose(f);
    if (rc == 0 && (s->access_key == NULL || s->secret_key == NULL)) {
        errf(err, errlen,
             "no credentials: %s has no [%s] with aws_access_key_id and "
             "aws_secret_access_key",
             path, profile);
        rc = -1;
    }
    return rc;
}

static int credentials_load(struct objstore_s3 *s, const char *file, char *err, size_t errlen)
{
    const char *profile = getenv("AWS_PROFILE");
    if (profile == NULL || profile[0] == '\0') {
        profile = "default";
    }
    if (file != NULL) {
        return credentials_from_file(s, file, profile, err, errlen);
    }
    const char *id = getenv("AWS_ACCESS_KEY_ID");
    const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (id != NULL && id[0] != '\0' && secret != NULL && secret[0] != '\0') {
        const char *token = getenv("AWS_SESSION_TOKEN");
        s->access_key = cairn_strdup(id);
        s->secret_key = cairn_strdup(secret);
        if (token != NULL && token[0] != '\0') {
            s->session_token = cairn_strdup(token);
        }
        if (s->access_key == NULL || s->secret_key == NULL ||
            (token != NULL && token[0] != '\0' && s->session_token == NULL)) {
            errf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    const char *path = getenv("AWS_SHARED_CREDENTIALS_FILE");
    char home_path[1024];
    if (path == NULL || path[0] == '\0') {
        const char *home = getenv("HOME");
        snprintf(home_path, sizeof home_path, "%s/.aws/credentials", home != NULL ? home : "");
        path = home_path;
    }
    return credentials_from_file(s, path, profile, err, errlen);
}

/* --- open, close -------------------------------------------------------- */

static void free_secret(char *p)
{
    if (p != NULL) {
        memset(p, 0, strlen(p));
        cairn_free(p);
    }
}

void objstore_s3_close(struct objstore_s3 *s)
{
    if (s == NULL) {
        return;
    }
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
    }
    buf_free(&s->body);
    cairn_free(s->part_buf);
    cairn_free(s->sse);
    cairn_free(s->sse_key);
    cairn_free(s->bucket_url);
    cairn_free(s->key_url);
    cairn_free(s->root);
    cairn_free(s->access_key);
    free_secret(s->secret_key);
    free_secret(s->session_token);
    cairn_free(s);
}

/* The server-side encryption headers of opt, checked. */
static int sse_setup(struct objstore_s3 *s, const struct objstore_options *opt, char *err,
                     size_t errlen)
{
    const char *sse = opt->sse;
    const char *key = opt->sse_kms_key_id;
    if (sse != NULL && sse[0] == '\0') {
        sse = NULL;
    }
    if (key != NULL && key[0] == '\0') {
        key = NULL;
    }
    if (sse == NULL && key == NULL) {
        return 0;
    }
    if (sse == NULL || (strcmp(sse, "AES256") != 0 && strcmp(sse, "aws:kms") != 0)) {
        errf(err, errlen,
             sse == NULL ? "a KMS key id needs server-side encryption aws:kms"
                         : "server-side encryption \"%.40s\": AES256 or aws:kms",
             sse);
        return -1;
    }
    if (key != NULL && strcmp(sse, "aws:kms") != 0) {
        errf(err, errlen, "a KMS key id needs server-side encryption aws:kms, not %s", sse);
        return -1;
    }
    if (key != NULL) {
        size_t n = strlen(key);
        for (size_t i = 0; i < n; i++) {
            if (!isgraph((unsigned char)key[i])) {
                errf(err, errlen, "the KMS key id holds a space or control character");
                return -1;
            }
        }
        if (n > 2048) {
            errf(err, errlen, "the KMS key id is longer than 2048 bytes");
            return -1;
        }
    }
    s->sse = cairn_strdup(sse);
    s->sse_key = key != NULL ? cairn_strdup(key) : NULL;
    if (s->sse == NULL || (key != NULL && s->sse_key == NULL)) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* Splits an endpoint "http[s]://host[:port][/]" into scheme and host. */
static int endpoint_parse(const char *endpoint, char *scheme, size_t scheme_len, char *host,
                          size_t host_len, char *err, size_t errlen)
{
    const char *rest;
    if (strncmp(endpoint, "http://", 7) == 0) {
        snprintf(scheme, scheme_len, "http");
        rest = endpoint + 7;
    } else if (strncmp(endpoint, "https://", 8) == 0) {
        snprintf(scheme, scheme_len, "https");
        rest = endpoint + 8;
    } else {
        errf(err, errlen, "endpoint %s: not http:// or https://", endpoint);
        return -1;
    }
    size_t n = strcspn(rest, "/?#@");
    if (n == 0 || n >= host_len || (rest[n] != '\0' && strcmp(rest + n, "/") != 0)) {
        errf(err, errlen, "endpoint %s: want scheme://host[:port] with no path", endpoint);
        return -1;
    }
    memcpy(host, rest, n);
    host[n] = '\0';
    return 0;
}

int objstore_s3_open(const char *bucket, const char *prefix, const struct objstore_options *opt,
                     struct objstore_s3 **out, char *err, size_t errlen)
{
    static const struct objstore_options defaults = {.path_style = -1};
    if (opt == NULL) {
        opt = &defaults;
    }
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_result != CURLE_OK) {
        errf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_result));
        return -1;
    }
    struct objstore_s3 *s = cairn_calloc(1, sizeof *s);
    if (s == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    buf_init(&s->body);
    s->timeout_ms = opt->timeout_ms != 0 ? (long)opt->timeout_ms : S3_TIMEOUT_MS_DEFAULT;
    s->retries = opt->retries != 0 ? opt->retries : S3_RETRIES_DEFAULT;
    s->part_size = opt->part_size != 0 ? opt->part_size : S3_PART_BYTES_DEFAULT;
    s->multipart_threshold =
        opt->multipart_threshold != 0 ? opt->multipart_threshold : S3_MULTIPART_THRESHOLD_DEFAULT;
    s->put_file_rate = opt->put_file_rate;
    if (s->part_size < S3_PART_BYTES_MIN) {
        errf(err, errlen, "part size %zu is below S3's minimum of 5 MiB", s->part_size);
        goto fail;
    }
    if (sse_setup(s, opt, err, errlen) != 0) {
        goto fail;
    }

    const char *region = opt->region;
    if (region == NULL || region[0] == '\0') {
        region = getenv("AWS_REGION");
    }
    if (region == NULL || region[0] == '\0') {
        region = getenv("AWS_DEFAULT_REGION");
    }
    if (region == NULL || region[0] == '\0') {
        region = "us-east-1";
    }
    if (strlen(region) > S3_REGION_MAX ||
        strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(region)) {
        errf(err, errlen, "region \"%.40s\" is not like us-east-1", region);
        goto fail;
    }
    snprintf(s->region, sizeof s->region, "%s", region);

    /* No endpoint given: the AWS tools' variables name one (a MinIO or
     * Ceph of the environment's), the S3-specific one first. */
    const char *endpoint = opt->endpoint;
    if (endpoint == NULL || endpoint[0] == '\0') {
        endpoint = getenv("AWS_ENDPOINT_URL_S3");
    }
    if (endpoint == NULL || endpoint[0] == '\0') {
        endpoint = getenv("AWS_ENDPOINT_URL");
    }
    if (endpoint != NULL && endpoint[0] == '\0') {
        endpoint = NULL;
    }
    char scheme[8], host[256];
    if (endpoint != NULL) {
        if (endpoint_parse(endpoint, scheme, sizeof scheme, host, sizeof host, err, errlen) != 0) {
            goto fail;
        }
    } else {
        snprintf(scheme, sizeof scheme, "https");
        snprintf(host, sizeof host, "s3.%s.amazonaws.com", region);
    }
    /* Virtual-host addressing puts the bucket in the TLS name, which fails
     * for bucket names with dots: those go path style unless told. */
    int path_style = opt->path_style;
    if (path_style < 0) {
        path_style = endpoint != NULL || strchr(bucket, '.') != NULL;
    }
    s->root = cairn_malloc(strlen(prefix) + 2);
    if (s->root == NULL) {
        errf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(s->root, strlen(prefix) + 2, "%s%s", prefix, prefix[0] != '\0' ? "/" : "");
    struct buf u;
    buf_init(&u);
    if (path_style) {
        if (buf_printf(&u, "%s://%s/%s", scheme, host, bucket) != 0 || buf_cstr(&u) != 0 ||
            (s->bucket_url = cairn_strdup(u.data)) == NULL || buf_puts(&u, "/") != 0) {
            buf_free(&u);
            errf(err, errlen, "out of memory");
            goto fail;
        }
    } else {
        if (buf_printf(&u, "%s://%s.%s/", scheme, bucket, host) != 0 || buf_cstr(&u) != 0 ||
            (s->bucket_url = cairn_strdup(u.data)) == NULL) {
            buf_free(&u);
            errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (uri_encode(&u, s->root, 1) != 0 || buf_cstr(&u) != 0) {
        buf_free(&u);
        errf(err, errlen, "out of memory");
        goto fail;
    }
    s->key_url = buf_steal(&u);

    if (credentials_load(s, opt->credentials_file, err, errlen) != 0) {
        goto fail;
    }
    if (strchr(s->access_key, '/') != NULL || strchr(s->access_key, ',') != NULL) {
        errf(err, errlen, "the access key id holds a '/' or ','");
        goto fail;
    }
    s->curl = curl_easy_init();
    if (s->curl == NULL) {
        errf(err, errlen, "curl_easy_init failed");
        goto fail;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->rng = (uint64_t)now.tv_nsec ^ ((uint64_t)now.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
             (uint64_t)(uintptr_t)s;
    *out = s;
    return 0;

fail:
    objstore_s3_close(s);
    return -1;
}

void objstore_s3_set_list_page_size(struct objstore_s3 *s, unsigned max_keys)
{
    s->page_size = max_keys;
}

/* --- operations --------------------------------------------------------- */

uint64_t objstore_s3_requests(const struct objstore_s3 *s)
{
    return s->requests;
}

/* The URL of object name, with an optional query (already canonical). */
static char *object_url(const struct objstore_s3 *s, const char *name, const char *query)
{
    struct buf u;
    buf_init(&u);
    if (buf_puts(&u, s->key_url) != 0 || uri_encode(&u, name, 1) != 0 ||
        (query != NULL && (buf_puts(&u, "?") != 0 || buf_puts(&u, query) != 0)) ||
        buf_cstr(&u) != 0) {
        buf_free(&u);
        return NULL;
    }
    return buf_steal(&u);
}

/* The source of a put: memory, or a file read part by part. */
static int put_multipart(struct objstore_s3 *s, const char *name, const struct put_source *src,
                         size_t len, size_t part, char *err, size_t errlen)
{
    int rc = -1;
    long status;
    char *url = object_url(s, name, "uploads=");
    char *upload_id = NULL;
    struct buf q, xml, text;
    buf_init(&q);
    buf_init(&xml);
    buf_init(&text);
    if (url == NULL) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    /* The object's encryption is asked for here, not with its parts. */
    s->sse_now = true;
    int created =
        s3_request(s, S3_POST, url, NULL, 0, "CreateMultipartUpload", &status, err, errlen);
    s->sse_now = false;
    if (created != 0) {
        goto out;
    }
    const char *t, *te;
    if (xml_find(s->body.data, s->body.data + s->body.len, "UploadId", &t, &te) == NULL ||
        t == te || xml_text(&text, t, te) != 0) {
        errf(err, errlen, "CreateMultipartUpload: no UploadId in the answer");
        goto out;
    }
    upload_id = buf_steal(&text);
    struct buf enc_id;
    buf_init(&enc_id);
    if (uri_encode(&enc_id, upload_id, 0) != 0 || buf_cstr(&enc_id) != 0) {
        buf_free(&enc_id);
        errf(err, errlen, "out of memory");
        goto abort;
    }

    size_t parts = (len + part - 1) / part;
    if (buf_puts(&xml, "<CompleteMultipartUpload>") != 0) {
        buf_free(&enc_id);
        errf(err, errlen, "out of memory");
        goto abort;
    }
    for (size_t i = 0; i < parts; i++) {
        size_t off = i * part;
        size_t n = len - off < part ? len - off : part;
        const char *body;
        if (source_read(s, src, off, n, &body, err, errlen) != 0) {
            buf_free(&enc_id);
            goto abort;
        }
        char what[64];
        snprintf(what, sizeof what, "UploadPart %zu/%zu", i + 1, parts);
        q.len = 0;
        cairn_free(url);
        url = NULL;
        /* Parameters in ascending order (see the top of this file). */
        if (buf_printf(&q, "partNumber=%zu&uploadId=%s", i + 1, enc_id.data) != 0 ||
            buf_cstr(&q) != 0 || (url = object_url(s, name, q.data)) == NULL) {
            buf_free(&enc_id);
            errf(err, errlen, "out of memory");
            goto abort;
        }
        if (s3_request(s, S3_PUT, url, body, n, what, &status, err, errlen) != 0) {
            buf_free(&enc_id);
            goto abort;
        }
        if (s->etag[0] == '\0') {
            buf_free(&enc_id);
            errf(err, errlen, "%s: no ETag in the answer", what);
            goto abort;
        }
        if (buf_printf(&xml, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1) != 0 ||
            xml_escape(&xml, s->etag) != 0 || buf_puts(&xml, "</ETag></Part>") != 0) {
            buf_free(&enc_id);
            errf(err, errlen, "out of memory");
            goto abort;
        }
    }
    q.len = 0;
    cairn_free(url);
    url = NULL;
    if (buf_puts(&xml, "</CompleteMultipartUpload>") != 0 ||
        buf_printf(&q, "uploadId=%s", enc_id.data) != 0 || buf_cstr(&q) != 0 ||
        (url = object_url(s, name, q.data)) == NULL) {
        buf_free(&enc_id);
        errf(err, errlen, "out of memory");
        goto abort;
    }
    buf_free(&enc_id);
    if (s3_request(s, S3_POST, url, xml.data, xml.len, "CompleteMultipartUpload", &status, err,
                   errlen) != 0) {
        goto abort;
    }
    rc = 0;
    goto out;

abort:
    /* Best effort: parts of an upload never completed cost storage until
     * aborted (or until a bucket lifecycle rule does it). The first error
     * is the one reported. */
    q.len = 0;
    {
        struct buf enc;
        buf_init(&enc);
        char *abort_url = NULL;
        if (uri_encode(&enc, upload_id, 0) == 0 && buf_cstr(&enc) == 0 &&
            buf_printf(&q, "uploadId=%s", enc.data) == 0 && buf_cstr(&q) == 0 &&
            (abort_url = object_url(s, name, q.data)) != NULL) {
            char ignored[256];
            s3_request(s, S3_DELETE, abort_url, NULL, 0, "AbortMultipartUpload", &status, ignored,
                       sizeof ignored);
        }
        cairn_free(abort_url);
        buf_free(&enc);
    }
out:
    cairn_free(url);
    cairn_free(upload_id);
    buf_free(&q);
    buf_free(&xml);
    buf_free(&text);
    return rc;
}

int objstore_s3_put(struct objstore_s3 *s, const char *name, const void *data, int fd, size_t len,
                    char *err, size_t errlen)
{
    struct put_source src = {.data = data, .fd = data != NULL ? -1 : fd};
    /* S3 allows at most 10000 parts: grow the parts of a huge object. */
    size_t part = s->part_size;
    int rc;
    if (len / part >= S3_PARTS_MAX) {
        part = (len + S3_PARTS_MAX - 1) / S3_PARTS_MAX;
    }
    if (len > s->multipart_threshold) {
        s->send_rate = data == NULL ? s->put_file_rate : 0;
        rc = put_multipart(s, name, &src, len, part, err, errlen);
        s->send_rate = 0;
        return rc;
    }
    /* One PUT, a file's bytes read as they are sent: S3 stores the object
     * as it arrives, where a multipart upload has it assembled from its
     * parts afterwards (s3rver copies every byte again to do so). */
    char *url = object_url(s, name, NULL);
    if (url == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    long status;
    s->send_rate = data == NULL ? s->put_file_rate : 0;
    s->sse_now = true;
    rc = s3_send(s, S3_PUT, url, data, fd, len, "PUT", &status, err, errlen);
    s->sse_now = false;
    s->send_rate = 0;
    cairn_free(url);
    return rc;
}

int objstore_s3_get(struct objstore_s3 *s, const char *name, void **data, size_t *len, char *err,
                    size_t errlen)
{
    char *url = object_url(s, name, NULL);
    if (url == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    long status;
    int rc = s3_request(s, S3_GET, url, NULL, 0, "GET", &status, err, errlen);
    cairn_free(url);
    if (rc != 0) {
        if (status == 404 && (s->code[0] == '\0' || strcmp(s->code, "NoSuchKey") == 0)) {
            if (err != NULL && errlen > 0) {
                err[0] = '\0';
            }
            return OBJSTORE_ENOTFOUND;
        }
        return -1;
    }
    if (buf_cstr(&s->body) != 0) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    *len = s->body.len;
    *data = buf_steal(&s->body);
    return 0;
}

int objstore_s3_delete(struct objstore_s3 *s, const char *name, char *err, size_t errlen)
{
    char *url = object_url(s, name, NULL);
    if (url == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    long status;
    int rc = s3_request(s, S3_DELETE, url, NULL, 0, "DELETE", &status, err, errlen);
    cairn_free(url);
    if (rc != 0 && status == 404 && strcmp(s->code, "NoSuchBucket") != 0) {
        rc = 0; /* S3 answers 204 for an absent key; some servers 404 */
    }
    return rc;
}

struct listing_entry
{
    char *name; /* owned */
    uint64_t size;
};

struct listing
{
    struct listing_entry *v; /* owned */
    size_t n, cap;
};

static int listing_add(struct listing *l, const char *name, uint64_t size)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct listing_entry *v = cairn_realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    char *copy = cairn_strdup(name);
    if (copy == NULL) {
        return -1;
    }
    l->v[l->n].name = copy;
    l->v[l->n].size = size;
    l->n++;
    return 0;
}

static void listing_free(struct listing *l)
{
    for (size_t i = 0; i < l->n; i++) {
        cairn_free(l->v[i].name);
    }
    cairn_free(l->v);
}

static int listing_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct listing_entry *)a)->name, ((const struct listing_entry *)b)->name);
}

int objstore_s3_list(struct objstore_s3 *s, const char *prefix, objstore_list_cb cb, void *arg,
                     char *err, size_t errlen)
{
    int rc = -1;
    struct listing all = {0};
    struct buf url, key, token, full_prefix, text;
    buf_init(&url);
    buf_init(&key);
    buf_init(&token);
    buf_init(&full_prefix);
    buf_init(&text);
    size_t root_len = strlen(s->root);
    if (buf_puts(&full_prefix, s->root) != 0 || buf_puts(&full_prefix, prefix) != 0 ||
        buf_cstr(&full_prefix) != 0 || buf_cstr(&token) != 0) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    for (unsigned page = 1;; page++) {
        /* ListObjectsV2, parameters in ascending order. */
        url.len = 0;
        int bad = buf_puts(&url, s->bucket_url) != 0 || buf_puts(&url, "?") != 0;
        if (!bad && token.len > 0) {
            bad = buf_puts(&url, "continuation-token=") != 0 || uri_encode(&url, token.data, 0) ||
                  buf_puts(&url, "&") != 0;
        }
        bad = bad || buf_puts(&url, "list-type=2") != 0;
        if (!bad && s->page_size > 0) {
            bad = buf_printf(&url, "&max-keys=%u", s->page_size) != 0;
        }
        bad = bad || buf_puts(&url, "&prefix=") != 0 ||
              uri_encode(&url, full_prefix.data, 0) != 0 || buf_cstr(&url) != 0;
        if (bad) {
            errf(err, errlen, "out of memory");
            goto out;
        }
        char what[48];
        snprintf(what, sizeof what, "ListObjectsV2 page %u", page);
        long status;
        if (s3_request(s, S3_GET, url.data, NULL, 0, what, &status, err, errlen) != 0) {
            goto out;
        }
        const char *p = s->body.data;
        const char *end = p + s->body.len;
        const char *c, *ce, *t, *te;
        if (s->body.len == 0 || xml_find(p, end, "ListBucketResult", &c, &ce) == NULL) {
            errf(err, errlen, "%s: not a ListBucketResult", what);
            goto out;
        }
        while ((p = xml_find(p, end, "Contents", &c, &ce)) != NULL) {
            if (xml_find(c, ce, "Key", &t, &te) == NULL || xml_text(&key, t, te) != 0) {
                errf(err, errlen, "%s: an entry without a Key", what);
                goto out;
            }
            if (xml_find(c, ce, "Size", &t, &te) == NULL || xml_text(&text, t, te) != 0) {
                errf(err, errlen, "%s: %s has no Size", what, key.data);
                goto out;
            }
            char *size_end;
            errno = 0;
            unsigned long long size = strtoull(text.data, &size_end, 10);
            if (text.len == 0 || *size_end != '\0' || errno != 0 || text.data[0] == '-') {
                errf(err, errlen, "%s: %s has a bad Size", what, key.data);
                goto out;
            }
            if (key.len <= root_len || memcmp(key.data, s->root, root_len) != 0) {
                continue; /* not under our root: S3 would not send it */
            }
            if (listing_add(&all, key.data + root_len, (uint64_t)size) != 0) {
                errf(err, errlen, "out of memory");
                goto out;
            }
        }
        p = s->body.data;
        if (xml_find(p, end, "IsTruncated", &t, &te) == NULL || (size_t)(te - t) != 4 ||
            memcmp(t, "true", 4) != 0) {
            break;
        }
        if (xml_find(p, end, "NextContinuationToken", &t, &te) == NULL || t == te ||
            xml_text(&text, t, te) != 0) {
            errf(err, errlen, "%s: truncated without a NextContinuationToken", what);
            goto out;
        }
        if (token.len == text.len && memcmp(token.data, text.data, text.len) == 0) {
            errf(err, errlen, "%s: the same continuation token twice", what);
            goto out;
        }
        token.len = 0;
        if (buf_append(&token, text.data, text.len) != 0 || buf_cstr(&token) != 0) {
            errf(err, errlen, "out of memory");
            goto out;
        }
    }
    /* S3 lists in UTF-8 binary order, which is bytewise; some servers that
     * speak S3 (s3rver) do not, so sort here rather than trust them. */
    if (all.n > 1) {
        qsort(all.v, all.n, sizeof *all.v, listing_entry_cmp);
    }
    for (size_t i = 0; i < all.n; i++) {
        if (cb(arg, all.v[i].name, all.v[i].size) != 0) {
            break;
        }
    }
    rc = 0;
out:
    listing_free(&all);
    buf_free(&url);
    buf_free(&key);
    buf_free(&token);
    buf_free(&full_prefix);
    buf_free(&text);
    return rc;
}
