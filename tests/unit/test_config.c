/*
 * Unit tests of cairnd's settings (src/config.c): flags, the config file,
 * their precedence, and the messages a mistake produces. A message must name
 * what was wrong (the flag, or file:line) so an operator can fix it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

#define ARGS_MAX 32

struct parsed
{
    struct config c;
    char errmsg[512];
    int rv;
};

/* Parses a NULL-terminated list of arguments (after the program name). */
static int parse_argv(struct parsed *p, const char *const *args)
{
    char *argv[ARGS_MAX];
    int argc = 0;
    argv[argc++] = "cairnd";
    while (*args != NULL) {
        assert_true(argc < ARGS_MAX);
        argv[argc++] = (char *)*args++;
    }
    memset(p->errmsg, 0, sizeof(p->errmsg));
    p->rv = config_parse(&p->c, argc, argv, p->errmsg, sizeof(p->errmsg));
    return p->rv;
}

#define PARSE(p, ...) parse_argv((p), (const char *const[]){__VA_ARGS__, NULL})

/* Asserts that parsing failed with a message containing each fragment. */
static void expect_error(struct parsed *p, const char *fragment1, const char *fragment2)
{
    assert_int_equal(p->rv, -1);
    if (strstr(p->errmsg, fragment1) == NULL ||
        (fragment2 != NULL && strstr(p->errmsg, fragment2) == NULL)) {
        print_error("message \"%s\" lacks \"%s\" / \"%s\"\n", p->errmsg, fragment1,
                    fragment2 != NULL ? fragment2 : "");
        fail();
    }
    config_free(&p->c);
}

/* Writes text to a fresh temporary file; path receives its name. */
static void write_file(char *path, size_t len, const char *text)
{
    int fd;
    FILE *f;
    snprintf(path, len, "%s/cairn-test-config-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_defaults(void **state)
{
    struct parsed p;
    (void)state;
    assert_int_equal(PARSE(&p, "--id", "1", "--data-dir", "/tmp/n1"), 0);
    assert_int_equal(p.c.id, 1);
    assert_string_equal(p.c.data_dir, "/tmp/n1");
    assert_string_equal(p.c.raft_addr, "127.0.0.1:7101");
    assert_string_equal(p.c.client_addr, "127.0.0.1:7001");
    assert_string_equal(p.c.initial_cluster, "");
    assert_int_equal(p.c.election_timeout_ms, 1000);
    assert_int_equal(p.c.heartbeat_timeout_ms, 100);
    assert_int_equal(p.c.snapshot_threshold, 32768);
    assert_int_equal(p.c.snapshot_trailing, 8192);
    assert_int_equal(p.c.install_snapshot_timeout_ms, 10000);
    assert_int_equal(p.c.segment_size_bytes, 8388608);
    assert_int_equal(p.c.max_key_bytes, 4096);
    assert_int_equal(p.c.max_value_bytes, 1048576);
    assert_int_equal(p.c.max_txn_ops, 128);
    assert_int_equal(p.c.max_request_bytes, 2097152);
    assert_int_equal(p.c.session_output_max_bytes, 67108864);
    assert_int_equal(p.c.shutdown_transfer_timeout_ms, 3000);
    assert_string_equal(p.c.log_level, "info");
    /* HTTP listens on loopback unless told otherwise. */
    assert_string_equal(p.c.http_addr, "127.0.0.1:8001");
    assert_int_equal(p.c.http_threads, 16);
    assert_int_equal(p.c.http_watch_streams_max, 8);
    assert_int_equal(p.c.ready_lag_max, 1000);
    assert_false(p.c.help);
    assert_false(p.c.version);
    config_free(&p.c);
    assert_null(p.c.data_dir);
}

static void test_flag_forms(void **state)
{
    struct parsed p;
    (void)state;
    /* "--name value", "--name=value", dashes or underscores. */
    assert_int_equal(PARSE(&p, "--id=7", "--data_dir", "/d", "--raft-addr=10.0.0.1:1",
                           "--client_addr=10.0.0.1:2", "--election-timeout-ms", "3000",
                           "--heartbeat_timeout_ms=300", "--log-level", "warn"),
                     0);
    assert_int_equal(p.c.id, 7);
    assert_string_equal(p.c.data_dir, "/d");
    assert_string_equal(p.c.raft_addr, "10.0.0.1:1");
    assert_string_equal(p.c.client_addr, "10.0.0.1:2");
    assert_int_equal(p.c.election_timeout_ms, 3000);
    assert_int_equal(p.c.heartbeat_timeout_ms, 300);
    assert_string_equal(p.c.log_level, "warn");
    config_free(&p.c);

    /* A value may contain '=' and may be empty; the last occurrence wins. */
    assert_int_equal(PARSE(&p, "--id", "1", "--data-dir", "/a", "--data-dir=/b=c",
                           "--initial-cluster=", "--id=2"),
                     0);
    assert_string_equal(p.c.data_dir, "/b=c");
    assert_string_equal(p.c.initial_cluster, "");
    assert_int_equal(p.c.id, 2);
    config_free(&p.c);

    /* The full range of a 64-bit setting. */
    assert_int_equal(PARSE(&p, "--id", "18446744073709551615", "--data-dir", "/d"), 0);
    assert_int_equal(p.c.id, UINT64_MAX);
    config_free(&p.c);
}

static void test_help_and_version(void **state)
{
    struct parsed p;
    (void)state;
    /* No --id or --data-dir needed just to ask for help. */
    assert_int_equal(PARSE(&p, "--help"), 0);
    assert_true(p.c.help);
    config_free(&p.c);
    assert_int_equal(PARSE(&p, "-h"), 0);
    assert_true(p.c.help);
    config_free(&p.c);
    assert_int_equal(PARSE(&p, "--version"), 0);
    assert_true(p.c.version);
    config_free(&p.c);
}

static void test_flag_errors(void **state)
{
    struct parsed p;
    (void)state;
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--bogus-flag", "3");
    expect_error(&p, "--bogus-flag", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--colour=blue");
    expect_error(&p, "--colour", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "stray");
    expect_error(&p, "stray", NULL);
    PARSE(&p, "--id", "1", "-d", "/d");
    expect_error(&p, "-d", NULL);

    /* Bad integers name the setting and the value. */
    PARSE(&p, "--id", "abc", "--data-dir", "/d");
    expect_error(&p, "id", "\"abc\"");
    PARSE(&p, "--id", "12x", "--data-dir", "/d");
    expect_error(&p, "id", "\"12x\"");
    PARSE(&p, "--id", "-1", "--data-dir", "/d");
    expect_error(&p, "id", "\"-1\"");
    PARSE(&p, "--id", "+1", "--data-dir", "/d");
    expect_error(&p, "id", "\"+1\"");
    PARSE(&p, "--id", " 1", "--data-dir", "/d");
    expect_error(&p, "id", "\" 1\"");
    PARSE(&p, "--id=", "--data-dir", "/d");
    expect_error(&p, "id", "\"\"");
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--election-timeout-ms", "18446744073709551616");
    expect_error(&p, "election_timeout_ms", "18446744073709551616");

    /* Missing values. */
    PARSE(&p, "--id", "1", "--data-dir");
    expect_error(&p, "--data-dir", "needs a value");
    PARSE(&p, "--data-dir", "/d", "--id");
    expect_error(&p, "--id", "needs a value");
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--config");
    expect_error(&p, "--config", "needs a value");

    /* Strings have a limit too. */
    {
        char *long_value = malloc(CONFIG_STR_MAX + 1);
        assert_non_null(long_value);
        memset(long_value, 'x', CONFIG_STR_MAX);
        long_value[CONFIG_STR_MAX] = '\0';
        PARSE(&p, "--id", "1", "--data-dir", long_value);
        expect_error(&p, "data_dir", "longer than");
        free(long_value);
    }
}

static void test_required_and_cross_checks(void **state)
{
    struct parsed p;
    (void)state;
    PARSE(&p, "--data-dir", "/d");
    expect_error(&p, "--id", NULL);
    PARSE(&p, "--id", "0", "--data-dir", "/d");
    expect_error(&p, "--id", NULL);
    PARSE(&p, "--id", "1");
    expect_error(&p, "--data-dir", NULL);
    PARSE(&p, "--id", "1", "--data-dir=");
    expect_error(&p, "--data-dir", NULL);

    /* The election timeout must be at least twice the heartbeat. */
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--election-timeout-ms", "199");
    expect_error(&p, "--election-timeout-ms (199)", "--heartbeat-timeout-ms (100)");
    assert_int_equal(PARSE(&p, "--id", "1", "--data-dir", "/d", "--election-timeout-ms", "200"), 0);
    config_free(&p.c);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--heartbeat-timeout-ms", "0");
    expect_error(&p, "--heartbeat-timeout-ms", NULL);
    /* Twice a huge heartbeat does not wrap around to something small. */
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--heartbeat-timeout-ms", "9223372036854775808");
    expect_error(&p, "--election-timeout-ms", NULL);

    /* --join is a switch, and a joining node gets its data from the
     * cluster, not from a backup. */
    assert_int_equal(PARSE(&p, "--id", "4", "--data-dir", "/d", "--join", "1"), 0);
    assert_int_equal(p.c.join, 1);
    config_free(&p.c);
    PARSE(&p, "--id", "4", "--data-dir", "/d", "--join", "2");
    expect_error(&p, "--join is 0 or 1", NULL);
    PARSE(&p, "--id", "4", "--data-dir", "/d", "--join", "1", "--restore-from", "file:///b");
    expect_error(&p, "--join and --restore-from", NULL);

    PARSE(&p, "--id", "1", "--data-dir", "/d", "--snapshot-threshold", "0");
    expect_error(&p, "--snapshot-threshold", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--snapshot-threshold", "4294967296");
    expect_error(&p, "--snapshot-threshold", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--snapshot-log-percent", "10001");
    expect_error(&p, "--snapshot-log-percent", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--install-snapshot-timeout-ms", "0");
    expect_error(&p, "--install-snapshot-timeout-ms", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--max-txn-ops", "0");
    expect_error(&p, "--max-txn-ops", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--max-request-bytes", "1000");
    expect_error(&p, "--max-request-bytes", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--max-request-bytes", "67108865");
    expect_error(&p, "--max-request-bytes", NULL);
    /* A value limit so large that value + key + 64 wraps around. */
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--max-value-bytes", "18446744073709551600");
    expect_error(&p, "--max-request-bytes", NULL);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--log-level", "debug");
    expect_error(&p, "--log-level", "\"debug\"");

    /* Every HTTP watch stream holds a worker: one must stay for the rest. */
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--http-threads", "8", "--http-watch-streams-max",
          "8");
    expect_error(&p, "--http-watch-streams-max (8)", "--http-threads (8)");
    assert_int_equal(PARSE(&p, "--id", "1", "--data-dir", "/d", "--http-threads", "8",
                           "--http-watch-streams-max", "7"),
                     0);
    config_free(&p.c);
    PARSE(&p, "--id", "1", "--data-dir", "/d", "--http-threads", "1", "--http-watch-streams-max",
          "0");
    expect_error(&p, "--http-threads", NULL);
    /* An empty address turns HTTP off. */
    assert_int_equal(PARSE(&p, "--id", "1", "--data-dir", "/d", "--http-addr="), 0);
    assert_string_equal(p.c.http_addr, "");
    config_free(&p.c);
}

static void test_config_file(void **state)
{
    struct parsed p;
    char path[256];
    char flag[300];
    (void)state;
    write_file(path, sizeof(path),
               "# a Cairn node\n"
               "\n"
               "   # an indented comment\n"
               "id = 3\n"
               "data-dir=/var/lib/cairn\n"
               "  election_timeout_ms   =   2000   \n"
               "raft_addr = 10.0.0.3:7101\n"
               "initial_cluster = 1=a:1/a:2,3=c:1/c:2\n"
               "log_level = trace\n");
    assert_int_equal(PARSE(&p, "--config", path), 0);
    assert_int_equal(p.c.id, 3);
    assert_string_equal(p.c.data_dir, "/var/lib/cairn");
    assert_int_equal(p.c.election_timeout_ms, 2000);
    assert_string_equal(p.c.raft_addr, "10.0.0.3:7101");
    assert_string_equal(p.c.initial_cluster, "1=a:1/a:2,3=c:1/c:2");
    assert_string_equal(p.c.log_level, "trace");
    assert_int_equal(p.c.heartbeat_timeout_ms, 100); /* untouched default */
    config_free(&p.c);

    /* Flags override the file, wherever --config sits on the line. */
    snprintf(flag, sizeof(flag), "--config=%s", path);
    assert_int_equal(PARSE(&p, "--id", "9", flag, "--log-level=error"), 0);
    assert_int_equal(p.c.id, 9);
    assert_string_equal(p.c.log_level, "error");
    assert_string_equal(p.c.data_dir, "/var/lib/cairn");
    config_free(&p.c);
    assert_int_equal(PARSE(&p, "--config", path, "--data-dir", "/elsewhere"), 0);
    assert_string_equal(p.c.data_dir, "/elsewhere");
    assert_int_equal(p.c.id, 3);
    config_free(&p.c);
    unlink(path);
}

static void test_config_file_errors(void **state)
{
    struct parsed p;
    char path[256];
    char where[300];
    char *long_line;
    size_t n;
    (void)state;
    /* An unknown setting is reported as file:line. */
    write_file(path, sizeof(path), "# comment\nid = 1\nbogus_setting = 4\ndata_dir = /d\n");
    PARSE(&p, "--config", path);
    snprintf(where, sizeof(where), "%s:3", path);
    expect_error(&p, where, "bogus_setting");
    unlink(path);

    /* So is a bad integer, and a line that is not "name = value". */
    write_file(path, sizeof(path), "id = 1\ndata_dir = /d\n\nelection_timeout_ms = soon\n");
    PARSE(&p, "--config", path);
    snprintf(where, sizeof(where), "%s:4", path);
    expect_error(&p, where, "\"soon\"");
    unlink(path);
    write_file(path, sizeof(path), "id = 1\njust some words\n");
    PARSE(&p, "--config", path);
    snprintf(where, sizeof(where), "%s:2", path);
    expect_error(&p, where, "name = value");
    unlink(path);
    /* Comments are whole lines only: a trailing one is part of the value. */
    write_file(path, sizeof(path), "id = 1 # the first node\n");
    PARSE(&p, "--config", path);
    snprintf(where, sizeof(where), "%s:1", path);
    expect_error(&p, where, "id");
    unlink(path);

    /* A line longer than the reader's buffer must not be split into pieces
     * parsed as lines of their own: whatever the length of a comment, the
     * "id = 5" at its end stays part of it. The comment is either accepted
     * whole or refused as too long, at line 1. */
    long_line = malloc(CONFIG_STR_MAX + 640);
    assert_non_null(long_line);
    for (n = CONFIG_STR_MAX - 8; n < CONFIG_STR_MAX + 512; n++) {
        memset(long_line, '#', n);
        strcpy(long_line + n, "id = 5\nid = 1\ndata_dir = /d\n");
        write_file(path, sizeof(path), long_line);
        PARSE(&p, "--config", path);
        unlink(path);
        if (p.rv == 0) {
            assert_int_equal(p.c.id, 1);
            config_free(&p.c);
        } else {
            snprintf(where, sizeof(where), "%s:1:", path);
            expect_error(&p, where, "too long");
        }
    }
    /* A last line without a newline is still a line. */
    write_file(path, sizeof(path), "id = 1\ndata_dir = /no/newline");
    assert_int_equal(PARSE(&p, "--config", path), 0);
    assert_string_equal(p.c.data_dir, "/no/newline");
    config_free(&p.c);
    unlink(path);
    free(long_line);

    /* A file that cannot be read. */
    PARSE(&p, "--config", "/nonexistent/cairn.conf");
    expect_error(&p, "/nonexistent/cairn.conf", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_flag_forms),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_required_and_cross_checks),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_config_file_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
