/*
 * test_sigv4: the SigV4 signer (src/sigv4.h) against AWS's own worked
 * examples for S3 (the "GET Object" and "PUT Object" examples of AWS's
 * "Signature Calculations for the Authorization Header" page, with its
 * example keys) and against botocore's signatures of requests like ours,
 * including the SSE-KMS pair of headers whose names share a prefix, which
 * Debian 12's libcurl signs in the wrong order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sigv4.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ACCESS "AKIAIOSFODNN7EXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

static void expect_auth(const char *method, const char *path, const char *query,
                        const struct sigv4_header *h, size_t n, const char *payload,
                        const char *date, const char *want)
{
    struct sigv4_request req = {
        .method = method,
        .path = path,
        .query = query,
        .headers = h,
        .n_headers = n,
        .payload_sha256 = payload,
        .amz_date = date,
        .region = "us-east-1",
        .service = "s3",
        .access_key = ACCESS,
        .secret_key = SECRET,
    };
    char out[1024];
    assert_int_equal(sigv4_authorization(&req, out, sizeof out), 0);
    assert_string_equal(out, want);
}

static void test_aws_get_example(void **state)
{
    (void)state;
    /* Given out of order: the signer sorts. */
    const struct sigv4_header h[] = {
        {"x-amz-date", "20130524T000000Z"},
        {"range", "bytes=0-9"},
        {"host", "examplebucket.s3.amazonaws.com"},
        {"x-amz-content-sha256", EMPTY_SHA256},
    };
    expect_auth("GET", "/test.txt", "", h, 4, EMPTY_SHA256, "20130524T000000Z",
                "AWS4-HMAC-SHA256 Credential=" ACCESS "/20130524/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

static void test_aws_put_example(void **state)
{
    (void)state;
    const char *payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    const struct sigv4_header h[] = {
        {"host", "examplebucket.s3.amazonaws.com"},
        {"date", "Fri, 24 May 2013 00:00:00 GMT"},
        {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
        {"x-amz-date", "20130524T000000Z"},
        {"x-amz-content-sha256", payload},
    };
    expect_auth("PUT", "/test%24file.text", "", h, 5, payload, "20130524T000000Z",
                "AWS4-HMAC-SHA256 Credential=" ACCESS "/20130524/us-east-1/s3/aws4_request, "
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

/* A name that is a prefix of another sorts first: with the key id's header
 * first (libcurl 7.88's order) S3 computes another signature. */
static void test_sse_kms_prefix_order(void **state)
{
    (void)state;
    const struct sigv4_header h[] = {
        {"x-amz-server-side-encryption-aws-kms-key-id", "alias/cairn"},
        {"x-amz-server-side-encryption", "aws:kms"},
        {"host", "127.0.0.1:9000"},
        {"content-type", "application/xml"},
        {"x-amz-date", "20261124T070000Z"},
        {"x-amz-content-sha256", EMPTY_SHA256},
    };
    expect_auth("POST", "/bucket/p/a.snap", "uploads=", h, 6, EMPTY_SHA256, "20261124T070000Z",
                "AWS4-HMAC-SHA256 Credential=" ACCESS "/20261124/us-east-1/s3/aws4_request, "
                "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;"
                "x-amz-server-side-encryption;x-amz-server-side-encryption-aws-kms-key-id, "
                "Signature=39e2d373184f9af5f712debbc1a5b97ada0979a8a11091c2b589dbac77b59183");
}

/* Values are signed trimmed, inner blanks folded; the query as given. */
static void test_blanks_and_query(void **state)
{
    (void)state;
    const struct sigv4_header h[] = {
        {"host", "examplebucket.s3.amazonaws.com"},
        {"x-amz-content-sha256", EMPTY_SHA256},
        {"x-amz-date", "20130524T000000Z"},
        {"x-amz-meta-a", "  two   words "},
    };
    expect_auth("GET", "/", "list-type=2&max-keys=2&prefix=J", h, 4, EMPTY_SHA256,
                "20130524T000000Z",
                "AWS4-HMAC-SHA256 Credential=" ACCESS "/20130524/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-meta-a, "
                "Signature=f7422d803a29f79448790ca7958570d9fb0a072cc4ccee0f17f76769952bb34c");
}

static void test_refusals(void **state)
{
    (void)state;
    struct sigv4_header h[SIGV4_HEADERS_MAX + 1];
    char names[SIGV4_HEADERS_MAX + 1][16];
    for (int i = 0; i <= SIGV4_HEADERS_MAX; i++) {
        snprintf(names[i], sizeof names[i], "x-amz-h%02d", i);
        h[i] = (struct sigv4_header){names[i], "v"};
    }
    struct sigv4_request req = {
        .method = "GET",
        .path = "/",
        .query = "",
        .headers = h,
        .n_headers = SIGV4_HEADERS_MAX + 1,
        .payload_sha256 = EMPTY_SHA256,
        .amz_date = "20130524T000000Z",
        .region = "us-east-1",
        .service = "s3",
        .access_key = ACCESS,
        .secret_key = SECRET,
    };
    char out[1024];
    assert_int_equal(sigv4_authorization(&req, out, sizeof out), -1); /* too many */
    req.n_headers = 3;
    assert_int_equal(sigv4_authorization(&req, out, sizeof out), 0);
    h[2].name = names[0];
    assert_int_equal(sigv4_authorization(&req, out, sizeof out), -1); /* a name twice */
    h[2].name = names[2];
    req.amz_date = "20130524";
    assert_int_equal(sigv4_authorization(&req, out, sizeof out), -1); /* not a full date */
    req.amz_date = "20130524T000000Z";
    assert_int_equal(sigv4_authorization(&req, out, 40), -1); /* no room */
}

static void test_amz_date(void **state)
{
    (void)state;
    char d[17];
    sigv4_amz_date(1369353600, d); /* 2013-05-24 00:00:00 UTC */
    assert_string_equal(d, "20130524T000000Z");
    sigv4_amz_date(1795518245, d);
    assert_string_equal(d, "20261124T110405Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_get_example),
        cmocka_unit_test(test_aws_put_example),
        cmocka_unit_test(test_sse_kms_prefix_order),
        cmocka_unit_test(test_blanks_and_query),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_amz_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
