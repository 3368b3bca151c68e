#include "sigv4.h"

#include "buf.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sigv4_hex(const unsigned char *md, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hmac(const unsigned char *key, size_t key_len, const void *data, size_t len,
                unsigned char out[32])
{
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) == NULL || n != 32) {
        return -1;
    }
    return 0;
}

void sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* A header's value as SigV4 signs it: without leading or trailing blanks,
 * each inner run of blanks one space. */
static int put_value(struct buf *b, const char *v)
{
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    int blank = 0;
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t') {
            blank = 1;
            continue;
        }
        if (blank && buf_append(b, " ", 1) != 0) {
            return -1;
        }
        blank = 0;
        if (buf_append(b, v, 1) != 0) {
            return -1;
        }
    }
    return 0;
}

static int put_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

static int by_name(const void *a, const void *b)
{
    const struct sigv4_header *x = *(const struct sigv4_header *const *)a;
    const struct sigv4_header *y = *(const struct sigv4_header *const *)b;
    return strcmp(x->name, y->name);
}

int sigv4_authorization(const struct sigv4_request *req, char *out, size_t outlen)
{
    const struct sigv4_header *sorted[SIGV4_HEADERS_MAX];
    struct buf canon;
    struct buf names;
    int rc = -1;
    if (req->n_headers == 0 || req->n_headers > SIGV4_HEADERS_MAX || strlen(req->amz_date) != 16) {
        return -1;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        sorted[i] = &req->headers[i];
    }
    /* By name alone: a name that is a prefix of another sorts first. */
    qsort(sorted, req->n_headers, sizeof(sorted[0]), by_name);
    for (size_t i = 1; i < req->n_headers; i++) {
        if (strcmp(sorted[i - 1]->name, sorted[i]->name) == 0) {
            return -1;
        }
    }
    buf_init(&canon);
    buf_init(&names);
    if (put_str(&canon, req->method) != 0 || put_str(&canon, "\n") != 0 ||
        put_str(&canon, req->path) != 0 || put_str(&canon, "\n") != 0 ||
        put_str(&canon, req->query) != 0 || put_str(&canon, "\n") != 0) {
        goto out;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        if (put_str(&canon, sorted[i]->name) != 0 || put_str(&canon, ":") != 0 ||
            put_value(&canon, sorted[i]->value) != 0 || put_str(&canon, "\n") != 0 ||
            (i > 0 && put_str(&names, ";") != 0) || put_str(&names, sorted[i]->name) != 0) {
            goto out;
        }
    }
    if (put_str(&canon, "\n") != 0 || buf_append(&canon, names.data, names.len) != 0 ||
        put_str(&canon, "\n") != 0 || put_str(&canon, req->payload_sha256) != 0 ||
        buf_append(&names, "", 1) != 0) {
        goto out;
    }

    unsigned char md[32];
    unsigned int md_len = 0;
    char canon_hex[65];
    if (EVP_Digest(canon.data, canon.len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        goto out;
    }
    sigv4_hex(md, 32, canon_hex);

    char date[9];
    memcpy(date, req->amz_date, 8);
    date[8] = '\0';
    char scope[160];
    if ((size_t)snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, req->region,
                         req->service) >= sizeof scope) {
        goto out;
    }
    char to_sign[300];
    int n = snprintf(to_sign, sizeof to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", req->amz_date, scope,
                     canon_hex);
    if (n < 0 || (size_t)n >= sizeof to_sign) {
        goto out;
    }

    /* The signing key: the secret, narrowed to the day, region, service. */
    size_t secret_len = strlen(req->secret_key);
    unsigned char *k0 = malloc(secret_len + 4);
    unsigned char k1[32], k2[32];
    if (k0 == NULL) {
        goto out;
    }
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, req->secret_key, secret_len);
    int bad = hmac(k0, secret_len + 4, date, 8, k1) != 0 ||
              hmac(k1, 32, req->region, strlen(req->region), k2) != 0 ||
              hmac(k2, 32, req->service, strlen(req->service), k1) != 0 ||
              hmac(k1, 32, "aws4_request", 12, k2) != 0 ||
              hmac(k2, 32, to_sign, (size_t)n, md) != 0;
    memset(k0, 0, secret_len + 4);
    free(k0);
    memset(k1, 0, sizeof k1);
    memset(k2, 0, sizeof k2);
    if (bad) {
        goto out;
    }
    char sig[65];
    sigv4_hex(md, 32, sig);
    n = snprintf(out, outlen, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                 req->access_key, scope, names.data, sig);
    if (n >= 0 && (size_t)n < outlen) {
        rc = 0;
    }
out:
    buf_free(&canon);
    buf_free(&names);
    return rc;
}
