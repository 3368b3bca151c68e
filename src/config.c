#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errbuf.h"

enum kind { KIND_U64, KIND_STR };

struct setting
{
    const char *name;
    enum kind kind;
    const char *def;
    const char *help;
    size_t offset;
};

static const struct setting settings[] = {
#define CONFIG__ROW(name, kind, def, help) \
    {#name, KIND_##kind, def, help, offsetof(struct config, name)},
    CONFIG_SETTINGS(CONFIG__ROW)
#undef CONFIG__ROW
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/* Flags spell names with dashes (--data-dir), the table with underscores. */
static const struct setting *find_setting(const char *name, size_t len)
{
    size_t i;
    for (i = 0; i < N_SETTINGS; i++) {
        const char *s = settings[i].name;
        size_t j;
        if (strlen(s) != len) {
            continue;
        }
        for (j = 0; j < len; j++) {
            char c = name[j] == '-' ? '_' : name[j];
            if (c != s[j]) {
                break;
            }
        }
        if (j == len) {
            return &settings[i];
        }
    }
    return NULL;
}

static int set_value(struct config *c, const struct setting *s, const char *value, char *errmsg,
                     size_t errmsg_len, const char *where)
{
    void *field = (char *)c + s->offset;
    if (s->kind == KIND_U64) {
        char *end;
        unsigned long long v;
        if (value[0] == '\0' || value[0] == '-' || !isdigit((unsigned char)value[0])) {
            errf(errmsg, errmsg_len, "%s: %s wants a non-negative integer, got \"%s\"", where,
                 s->name, value);
            return -1;
        }
        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0') {
            errf(errmsg, errmsg_len, "%s: %s wants a non-negative integer, got \"%s\"", where,
                 s->name, value);
            return -1;
        }
        *(uint64_t *)field = v;
        return 0;
    }
    if (strlen(value) >= CONFIG_STR_MAX) {
        errf(errmsg, errmsg_len, "%s: %s is longer than %d bytes", where, s->name, CONFIG_STR_MAX);
        return -1;
    }
    {
        char *copy = cairn_strdup(value);
        if (copy == NULL) {
            errf(errmsg, errmsg_len, "out of memory");
            return -1;
        }
        cairn_free(*(char **)field);
        *(char **)field = copy;
    }
    return 0;
}

static char *trim(char *s)
{
    char *end;
    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }
    return s;
}

static int parse_file(struct config *c, const char *path, char *errmsg, size_t errmsg_len)
{
    FILE *f = fopen(path, "r");
    char line[CONFIG_STR_MAX + 256];
    unsigned lineno = 0;
    if (f == NULL) {
        errf(errmsg, errmsg_len, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char where[512];
        char *s;
        char *eq;
        char *name;
        const struct setting *set;
        lineno++;
        snprintf(where, sizeof(where), "%s:%u", path, lineno);
        /* fgets splits a longer line, and its tail would be read as a line
         * of its own (a long comment could then set anything). */
        if (strchr(line, '\n') == NULL) {
            int next = fgetc(f);
            if (next != EOF) {
                errf(errmsg, errmsg_len, "%s: line too long (at most %zu bytes)", where,
                     sizeof(line) - 2);
                fclose(f);
                return -1;
            }
        }
        s = trim(line);
        if (*s == '\0' || *s == '#') {
            continue;
        }
        eq = strchr(s, '=');
        if (eq == NULL) {
            errf(errmsg, errmsg_len, "%s: expected \"name = value\"", where);
            fclose(f);
            return -1;
        }
        *eq = '\0';
        name = trim(s);
        set = find_setting(name, strlen(name));
        if (set == NULL) {
            errf(errmsg, errmsg_len, "%s: unknown setting \"%s\"", where, name);
            fclose(f);
            return -1;
        }
        if (set_value(c, set, trim(eq + 1), errmsg, errmsg_len, where) != 0) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

static int apply_defaults(struct config *c, char *errmsg, size_t errmsg_len)
{
    size_t i;
    memset(c, 0, sizeof(*c));
    for (i = 0; i < N_SETTINGS; i++) {
        if (set_value(c, &settings[i], settings[i].def, errmsg, errmsg_len, "default") != 0) {
            return -1;
        }
    }
    return 0;
}

static int check(const struct config *c, char *errmsg, size_t errmsg_len)
{
    if (c->id == 0) {
        errf(errmsg, errmsg_len, "--id is required and must be a positive integer");
        return -1;
    }
    if (c->data_dir[0] == '\0') {
        errf(errmsg, errmsg_len, "--data-dir is required");
        return -1;
    }
    /* Halving the election timeout, not doubling the heartbeat, cannot wrap. */
    if (c->election_timeout_ms / 2 < c->heartbeat_timeout_ms || c->heartbeat_timeout_ms == 0) {
        errf(errmsg, errmsg_len,
             "--election-timeout-ms (%llu) must be at least twice --heartbeat-timeout-ms (%llu)",
             (unsigned long long)c->election_timeout_ms,
             (unsigned long long)c->heartbeat_timeout_ms);
        return -1;
    }
    if (c->install_snapshot_timeout_ms == 0 || c->install_snapshot_timeout_ms > 86400000) {
        errf(errmsg, errmsg_len, "--install-snapshot-timeout-ms must be between 1 and 86400000");
        return -1;
    }
    if (c->join > 1) {
        errf(errmsg, errmsg_len, "--join is 0 or 1, got %llu", (unsigned long long)c->join);
        return -1;
    }
    if (c->join == 1 && c->restore_from[0] != '\0') {
        errf(errmsg, errmsg_len,
             "--join and --restore-from exclude each other: a joining node gets its data "
             "from the cluster");
        return -1;
    }
    if (c->snapshot_threshold == 0 || c->snapshot_threshold > UINT32_MAX) {
        errf(errmsg, errmsg_len, "--snapshot-threshold must be 1 to 4294967295");
        return -1;
    }
    if (c->snapshot_log_percent > 10000) {
        errf(errmsg, errmsg_len,
             "--snapshot-log-percent is at most 10000 (a log a hundred times the state)");
        return -1;
    }
    if (c->max_key_bytes == 0 || c->max_txn_ops == 0) {
        errf(errmsg, errmsg_len, "--max-key-bytes and --max-txn-ops must be positive");
        return -1;
    }
    if (c->max_request_bytes > 64ull * 1024 * 1024) {
        errf(errmsg, errmsg_len, "--max-request-bytes is at most 67108864");
        return -1;
    }
    /* With max_request_bytes bounded above, comparing each limit with it
     * first keeps the sum below from wrapping around. */
    if (c->max_value_bytes > c->max_request_bytes || c->max_key_bytes > c->max_request_bytes ||
        c->max_request_bytes < c->max_value_bytes + c->max_key_bytes + 64) {
        errf(errmsg, errmsg_len,
             "--max-request-bytes (%llu) must exceed --max-value-bytes + --max-key-bytes + 64",
             (unsigned long long)c->max_request_bytes);
        return -1;
    }
    /* Both fit the wait list's 32-bit counts and a uv timer's range. */
    if (c->read_wait_max_ms > 3600000 || c->read_wait_queue_max > 1000000) {
        errf(errmsg, errmsg_len,
             "--read-wait-max-ms is at most 3600000 and --read-wait-queue-max at most 1000000");
        return -1;
    }
    if (c->http_threads < 2 || c->http_threads > 1024) {
        errf(errmsg, errmsg_len, "--http-threads must be between 2 and 1024");
        return -1;
    }
    /* Each stream holds a worker until its client goes: at least one worker
     * must stay free for every other request. */
    if (c->http_watch_streams_max >= c->http_threads) {
        errf(errmsg, errmsg_len,
             "--http-watch-streams-max (%llu) must be less than --http-threads (%llu)",
             (unsigned long long)c->http_watch_streams_max, (unsigned long long)c->http_threads);
        return -1;
    }
    if (strcmp(c->log_level, "trace") != 0 && strcmp(c->log_level, "info") != 0 &&
        strcmp(c->log_level, "warn") != 0 && strcmp(c->log_level, "error") != 0) {
        errf(errmsg, errmsg_len, "--log-level must be trace, info, warn or error, got \"%s\"",
             c->log_level);
        return -1;
    }
    return 0;
}

int config_parse(struct config *c, int argc, char **argv, char *errmsg, size_t errmsg_len)
{
    int i;
    const char *config_file = NULL;
    if (apply_defaults(c, errmsg, errmsg_len) != 0) {
        return -1;
    }
    /* The config file first, so that flags override it. */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_file = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_file = argv[i] + 9;
        }
    }
    if (config_file != NULL && parse_file(c, config_file, errmsg, errmsg_len) != 0) {
        return -1;
    }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name;
        const char *eq;
        const char *value;
        size_t name_len;
        const struct setting *s;
        char where[300];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            c->help = true;
            continue;
        }
        if (strcmp(arg, "--version") == 0) {
            c->version = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            errf(errmsg, errmsg_len, "unexpected argument \"%s\" (see --help)", arg);
            return -1;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (name_len == 6 && strncmp(name, "config", 6) == 0) {
            if (eq == NULL && i + 1 >= argc) {
                errf(errmsg, errmsg_len, "flag --config needs a value");
                return -1;
            }
            if (eq == NULL) {
                i++;
            }
            continue;
        }
        s = find_setting(name, name_len);
        if (s == NULL) {
            errf(errmsg, errmsg_len, "unknown flag --%.*s (see --help)", (int)name_len, name);
            return -1;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            errf(errmsg, errmsg_len, "flag --%.*s needs a value", (int)name_len, name);
            return -1;
        }
        snprintf(where, sizeof(where), "flag --%.*s", (int)name_len, name);
        if (set_value(c, s, value, errmsg, errmsg_len, where) != 0) {
            return -1;
        }
    }
    if (c->help || c->version) {
        return 0;
    }
    return check(c, errmsg, errmsg_len);
}

void config_free(struct config *c)
{
    size_t i;
    for (i = 0; i < N_SETTINGS; i++) {
        if (settings[i].kind == KIND_STR) {
            char **field = (char **)((char *)c + settings[i].offset);
            cairn_free(*field);
            *field = NULL;
        }
    }
}

void config_print_help(const char *prog)
{
    size_t i;
    printf("Usage: %s --id N --data-dir DIR [flags]\n\n"
           "cairnd is a node of a Cairn cluster: a replicated, versioned configuration store.\n"
           "Every flag can also be set in a file given with --config FILE, one\n"
           "\"name = value\" per line (names with underscores or dashes); flags win.\n\n",
           prog);
    for (i = 0; i < N_SETTINGS; i++) {
        char flag[64];
        size_t j;
        snprintf(flag, sizeof(flag), "--%s", settings[i].name);
        for (j = 2; flag[j] != '\0'; j++) {
            if (flag[j] == '_') {
                flag[j] = '-';
            }
        }
        printf("  %-32s %s", flag, settings[i].help);
        if (settings[i].def[0] != '\0' && strcmp(settings[i].name, "id") != 0) {
            printf(" [default: %s]", settings[i].def);
        }
        printf("\n");
    }
    printf("  %-32s %s\n", "--config FILE", "read settings from FILE");
    printf("  %-32s %s\n", "--help", "show this help");
    printf("  %-32s %s\n", "--version", "print the version");
    printf("\nSignals: SIGTERM or SIGINT stop the node cleanly; a leader first hands\n"
           "leadership to another voter.\n"
           "Environment: CAIRN_TRACE=1 logs at trace level; LIBRAFT_TRACE=1 traces raft.\n");
}
