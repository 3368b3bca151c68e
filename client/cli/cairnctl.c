/*
 * cairnctl: the command-line client. Verbs in the spirit of etcdctl; every
 * failure exits non-zero with a message on stderr that says what went wrong.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

struct opts
{
    const char *endpoints;
    bool json;
    int timeout_ms;
    bool stale;
    bool prefix;
    bool prev;
    uint64_t rev;
    uint64_t limit;
    const char *after;
    const char *endpoint; /* status: one node */
    char *args[8];
    int n_args;
};

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cairnctl [global flags] COMMAND [flags] [args]\n"
            "\n"
            "Commands:\n"
            "  put KEY [VALUE]            write VALUE (read from stdin when omitted); --prev\n"
            "                             prints the previous value\n"
            "  get KEY                    read a key; --prefix reads every key under KEY,\n"
            "                             --limit N, --after KEY continues a range,\n"
            "                             --rev R reads at a past revision, --stale answers\n"
            "                             from the contacted node without the leader\n"
            "  del KEY                    delete a key; --prefix deletes every key under KEY\n"
            "  cas KEY MOD_REV VALUE      write VALUE only if KEY's mod_revision is MOD_REV\n"
            "                             (0: only if KEY does not exist)\n"
            "  txn                        read a transaction from stdin (see docs/cairnctl.md)\n"
            "  history KEY                list retained versions of KEY, newest first; --limit N\n"
            "  compact REV                discard history before revision REV\n"
            "  retention N                keep the last N versions of each key (cluster-wide)\n"
            "  status                     show every endpoint's role, term and indexes;\n"
            "                             --endpoint HOST:PORT asks one node\n"
            "\n"
            "Global flags:\n"
            "  --endpoints H:P,...        cluster endpoints (default: $CAIRN_ENDPOINTS, else\n"
            "                             %s)\n"
            "  --json                     machine-readable output\n"
            "  --timeout MS               per-call timeout (default 5000)\n"
            "  --help                     this help\n",
            CAIRN_DEFAULT_ENDPOINTS);
}

static int fail(cairn_client *c, int rv, const char *what)
{
    fprintf(stderr, "cairnctl: %s: %s (%s)\n", what, c != NULL ? cairn_errmsg(c) : "",
            cairn_errname(rv));
    return EXIT_FAIL;
}

static int parse_u64(const char *s, uint64_t *out, const char *what)
{
    char *end;
    unsigned long long v;
    errno = 0;
    if (s == NULL || *s == '\0' || *s == '-') {
        fprintf(stderr, "cairnctl: %s wants a non-negative integer\n", what);
        return -1;
    }
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        fprintf(stderr, "cairnctl: %s wants a non-negative integer, got \"%s\"\n", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* JSON output: strings that are valid UTF-8 are escaped; others are given as
 * base64 under a "_base64" name, so no byte is ever lost. */

static bool valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        size_t j;
        if (c < 0x80) {
            i++;
            continue;
        }
        len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (len == 0 || i + len > n || (len == 2 && c < 0xc2)) {
            return false;
        }
        for (j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += len;
    }
    return true;
}

static void json_bytes(const char *name, const char *p, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = (const unsigned char *)p;
    size_t i;
    if (valid_utf8(s, n)) {
        printf("\"%s\":\"", name);
        for (i = 0; i < n; i++) {
            unsigned char c = s[i];
            if (c == '"' || c == '\\') {
                printf("\\%c", c);
            } else if (c == '\n') {
                printf("\\n");
            } else if (c == '\t') {
                printf("\\t");
            } else if (c < 0x20) {
                printf("\\u%04x", c);
            } else {
                putchar(c);
            }
        }
        printf("\"");
        return;
    }
    printf("\"%s_base64\":\"", name);
    for (i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) {
            v |= (unsigned)s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= s[i + 2];
        }
        putchar(b64[(v >> 18) & 63]);
        putchar(b64[(v >> 12) & 63]);
        putchar(i + 1 < n ? b64[(v >> 6) & 63] : '=');
        putchar(i + 2 < n ? b64[v & 63] : '=');
    }
    printf("\"");
}

static void json_kv(const struct cairn_kv *kv)
{
    printf("{");
    json_bytes("key", kv->key, kv->key_len);
    printf(",");
    json_bytes("value", kv->value, kv->value_len);
    printf(",\"create_revision\":%" PRIu64 ",\"mod_revision\":%" PRIu64 ",\"version\":%" PRIu64
           ",\"time_ms\":%" PRId64 ",\"deleted\":%s}",
           kv->create_revision, kv->mod_revision, kv->version, kv->time_ms,
           kv->deleted ? "true" : "false");
}

static void json_result(const struct cairn_result *r)
{
    size_t i;
    size_t j;
    printf("{\"revision\":%" PRIu64 ",\"compact_revision\":%" PRIu64
           ",\"succeeded\":%s,\"results\":[",
           r->revision, r->compact_revision, r->succeeded ? "true" : "false");
    for (i = 0; i < r->n_ops; i++) {
        const struct cairn_op_result *op = &r->ops[i];
        printf("%s{\"deleted\":%" PRIu64 ",\"more\":%s,\"kvs\":[", i > 0 ? "," : "", op->deleted,
               op->more ? "true" : "false");
        for (j = 0; j < op->n_kvs; j++) {
            if (j > 0) {
                printf(",");
            }
            json_kv(&op->kvs[j]);
        }
        printf("]}");
    }
    printf("]}\n");
}

static void print_value(const struct cairn_kv *kv)
{
    fwrite(kv->value, 1, kv->value_len, stdout);
    printf("\n");
}

static char *read_stdin(size_t *len)
{
    size_t cap = 4096;
    size_t n = 0;
    char *data = malloc(cap);
    size_t got;
    while (data != NULL && (got = fread(data + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(data, cap * 2);
            if (bigger == NULL) {
                free(data);
                return NULL;
            }
            data = bigger;
            cap *= 2;
        }
    }
    *len = n;
    return data;
}

static int cmd_put(cairn_client *c, const struct opts *o)
{
    struct cairn_put_opts po = {o->prev};
    struct cairn_result *r = NULL;
    char *stdin_value = NULL;
    const char *value;
    size_t value_len;
    int rv;
    if (o->n_args < 1 || o->n_args > 2) {
        fprintf(stderr, "cairnctl: put wants KEY [VALUE]\n");
        return EXIT_USAGE;
    }
    if (o->n_args == 2) {
        value = o->args[1];
        value_len = strlen(value);
    } else {
        stdin_value = read_stdin(&value_len);
        if (stdin_value == NULL) {
            fprintf(stderr, "cairnctl: cannot read the value from stdin\n");
            return EXIT_FAIL;
        }
        value = stdin_value;
    }
    rv = cairn_put(c, o->args[0], strlen(o->args[0]), value, value_len, &po, &r);
    free(stdin_value);
    if (rv != 0) {
        return fail(c, rv, "put");
    }
    if (o->json) {
        json_result(r);
    } else {
        printf("OK revision=%" PRIu64 "\n", r->revision);
        if (o->prev && r->n_ops > 0 && r->ops[0].n_kvs > 0) {
            print_value(&r->ops[0].kvs[0]);
        }
    }
    cairn_result_free(r);
    return 0;
}

static int cmd_get(cairn_client *c, const struct opts *o)
{
    struct cairn_get_opts go;
    struct cairn_result *r = NULL;
    size_t i;
    int rv;
    if (o->n_args != 1) {
        fprintf(stderr, "cairnctl: get wants one KEY (or prefix with --prefix)\n");
        return EXIT_USAGE;
    }
    memset(&go, 0, sizeof(go));
    go.stale = o->stale;
    go.prefix = o->prefix;
    go.revision = o->rev;
    go.limit = o->limit;
    go.after = o->after;
    go.after_len = o->after != NULL ? strlen(o->after) : 0;
    rv = cairn_get(c, o->args[0], strlen(o->args[0]), &go, &r);
    if (rv != 0) {
        cairn_result_free(r);
        return fail(c, rv, "get");
    }
    if (o->json) {
        json_result(r);
    } else if (!o->prefix) {
        print_value(&r->ops[0].kvs[0]);
    } else {
        for (i = 0; i < r->ops[0].n_kvs; i++) {
            const struct cairn_kv *kv = &r->ops[0].kvs[i];
            fwrite(kv->key, 1, kv->key_len, stdout);
            printf("\n");
            print_value(kv);
        }
        if (r->ops[0].more) {
            fprintf(stderr, "cairnctl: more keys follow; continue with --after '%s'\n",
                    r->ops[0].kvs[r->ops[0].n_kvs - 1].key);
        }
    }
    cairn_result_free(r);
    return 0;
}

static int cmd_del(cairn_client *c, const struct opts *o)
{
    struct cairn_del_opts dopts = {o->prefix, o->prev};
    struct cairn_result *r = NULL;
    size_t i;
    int rv;
    if (o->n_args != 1) {
        fprintf(stderr, "cairnctl: del wants one KEY\n");
        return EXIT_USAGE;
    }
    rv = cairn_del(c, o->args[0], strlen(o->args[0]), &dopts, &r);
    if (rv != 0) {
        return fail(c, rv, "del");
    }
    if (o->json) {
        json_result(r);
    } else {
        printf("%" PRIu64 "\n", r->ops[0].deleted);
        for (i = 0; i < r->ops[0].n_kvs; i++) {
            fwrite(r->ops[0].kvs[i].key, 1, r->ops[0].kvs[i].key_len, stdout);
            printf("\n");
            print_value(&r->ops[0].kvs[i]);
        }
    }
    cairn_result_free(r);
    return 0;
}

static int cmd_cas(cairn_client *c, const struct opts *o)
{
    struct cairn_result *r = NULL;
    uint64_t mod;
    int rv;
    if (o->n_args != 3) {
        fprintf(stderr, "cairnctl: cas wants KEY MOD_REV VALUE\n");
        return EXIT_USAGE;
    }
    if (parse_u64(o->args[1], &mod, "MOD_REV") != 0) {
        return EXIT_USAGE;
    }
    rv = cairn_cas(c, o->args[0], strlen(o->args[0]), mod, o->args[2], strlen(o->args[2]), &r);
    if (rv != 0 && rv != CAIRN_ECOMPARE) {
        return fail(c, rv, "cas");
    }
    if (o->json) {
        json_result(r);
    } else if (rv == 0) {
        printf("OK revision=%" PRIu64 "\n", r->revision);
    }
    if (rv == CAIRN_ECOMPARE) {
        const struct cairn_op_result *cur = r->n_ops > 0 ? &r->ops[0] : NULL;
        fprintf(stderr, "cairnctl: cas: compare failed: current mod_revision is %" PRIu64 "\n",
                cur != NULL && cur->n_kvs > 0 ? cur->kvs[0].mod_revision : 0);
        cairn_result_free(r);
        return EXIT_FAIL;
    }
    cairn_result_free(r);
    return 0;
}

/* txn reads three sections from stdin separated by blank lines:
 *   compares:  TARGET KEY OP NUMBER-OR-VALUE   (TARGET: value|version|mod|create,
 *                                               OP: = != < >)
 *   then ops:  put KEY VALUE | del KEY | get KEY
 *   else ops:  same as then
 */
#define TXN_MAX 128

struct txn_text
{
    struct cairn_compare cmps[TXN_MAX];
    struct cairn_op ops[2][TXN_MAX];
    size_t n_cmps;
    size_t n_ops[2];
};

static char *next_word(char **p)
{
    char *s = *p;
    char *w;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    w = s;
    while (*s != '\0' && *s != ' ' && *s != '\t') {
        s++;
    }
    if (*s != '\0') {
        *s++ = '\0';
    }
    *p = s;
    return w;
}

static int parse_txn_line(struct txn_text *t, int section, char *line, unsigned lineno)
{
    char *p = line;
    char *a = next_word(&p);
    char *b = next_word(&p);
    if (section == 0) {
        struct cairn_compare *cmp = &t->cmps[t->n_cmps];
        char *op = next_word(&p);
        char *rest = p;
        while (*rest == ' ') {
            rest++;
        }
        if (a == NULL || b == NULL || op == NULL || t->n_cmps == TXN_MAX) {
            fprintf(stderr, "cairnctl: txn line %u: want TARGET KEY OP VALUE\n", lineno);
            return -1;
        }
        memset(cmp, 0, sizeof(*cmp));
        cmp->key = b;
        cmp->key_len = strlen(b);
        if (strcmp(a, "value") == 0) {
            cmp->target = CAIRN_CMP_VALUE;
            cmp->value = rest;
            cmp->value_len = strlen(rest);
        } else {
            cmp->target = strcmp(a, "version") == 0  ? CAIRN_CMP_VERSION
                          : strcmp(a, "mod") == 0    ? CAIRN_CMP_MOD
                          : strcmp(a, "create") == 0 ? CAIRN_CMP_CREATE
                                                     : (enum cairn_cmp_target) - 1;
            if ((int)cmp->target < 0 || parse_u64(rest, &cmp->number, "compare") != 0) {
                fprintf(stderr, "cairnctl: txn line %u: bad compare\n", lineno);
                return -1;
            }
        }
        cmp->op = strcmp(op, "=") == 0    ? CAIRN_CMP_EQUAL
                  : strcmp(op, "!=") == 0 ? CAIRN_CMP_NOT_EQUAL
                  : strcmp(op, "<") == 0  ? CAIRN_CMP_LESS
                  : strcmp(op, ">") == 0  ? CAIRN_CMP_GREATER
                                          : (enum cairn_cmp_op) - 1;
        if ((int)cmp->op < 0) {
            fprintf(stderr, "cairnctl: txn line %u: operator must be = != < >\n", lineno);
            return -1;
        }
        t->n_cmps++;
        return 0;
    }
    {
        int s = section - 1;
        struct cairn_op *op = &t->ops[s][t->n_ops[s]];
        if (a == NULL || b == NULL || t->n_ops[s] == TXN_MAX) {
            fprintf(stderr, "cairnctl: txn line %u: want put KEY VALUE | del KEY | get KEY\n",
                    lineno);
            return -1;
        }
        memset(op, 0, sizeof(*op));
        op->key = b;
        op->key_len = strlen(b);
        if (strcmp(a, "put") == 0) {
            char *rest = p;
            while (*rest == ' ') {
                rest++;
            }
            op->type = CAIRN_OP_PUT;
            op->value = rest;
            op->value_len = strlen(rest);
        } else if (strcmp(a, "del") == 0) {
            op->type = CAIRN_OP_DEL;
        } else if (strcmp(a, "get") == 0) {
            op->type = CAIRN_OP_GET;
        } else {
            fprintf(stderr, "cairnctl: txn line %u: unknown operation \"%s\"\n", lineno, a);
            return -1;
        }
        t->n_ops[s]++;
        return 0;
    }
}

static int cmd_txn(cairn_client *c, const struct opts *o)
{
    static struct txn_text t;
    struct cairn_txn txn;
    struct cairn_result *r = NULL;
    char *lines[3 * TXN_MAX + 8];
    size_t n_lines = 0;
    char buf[65536];
    int section = 0;
    unsigned lineno = 0;
    size_t i;
    int rv;
    while (fgets(buf, sizeof(buf), stdin) != NULL) {
        size_t len = strlen(buf);
        lineno++;
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
            buf[--len] = '\0';
        }
        if (len == 0) {
            if (++section > 2) {
                break;
            }
            continue;
        }
        if (n_lines == sizeof(lines) / sizeof(lines[0])) {
            fprintf(stderr, "cairnctl: txn: too many lines\n");
            return EXIT_USAGE;
        }
        lines[n_lines] = strdup(buf);
        if (lines[n_lines] == NULL || parse_txn_line(&t, section, lines[n_lines], lineno) != 0) {
            return EXIT_USAGE;
        }
        n_lines++;
    }
    memset(&txn, 0, sizeof(txn));
    txn.compares = t.cmps;
    txn.n_compares = t.n_cmps;
    txn.then_ops = t.ops[0];
    txn.n_then = t.n_ops[0];
    txn.else_ops = t.ops[1];
    txn.n_else = t.n_ops[1];
    rv = cairn_txn(c, &txn, &r);
    for (i = 0; i < n_lines; i++) {
        free(lines[i]);
    }
    if (rv != 0) {
        return fail(c, rv, "txn");
    }
    if (o->json) {
        json_result(r);
    } else {
        printf("%s revision=%" PRIu64 "\n", r->succeeded ? "SUCCEEDED" : "FAILED", r->revision);
        for (i = 0; i < r->n_ops; i++) {
            size_t j;
            for (j = 0; j < r->ops[i].n_kvs; j++) {
                fwrite(r->ops[i].kvs[j].key, 1, r->ops[i].kvs[j].key_len, stdout);
                printf("\n");
                print_value(&r->ops[i].kvs[j]);
            }
        }
    }
    cairn_result_free(r);
    return 0;
}

static int cmd_history(cairn_client *c, const struct opts *o)
{
    struct cairn_result *r = NULL;
    size_t i;
    int rv;
    if (o->n_args != 1) {
        fprintf(stderr, "cairnctl: history wants one KEY\n");
        return EXIT_USAGE;
    }
    rv = cairn_history(c, o->args[0], strlen(o->args[0]), o->limit, &r);
    if (rv != 0) {
        return fail(c, rv, "history");
    }
    if (o->json) {
        json_result(r);
        cairn_result_free(r);
        return 0;
    }
    if (r->ops[0].n_kvs == 0) {
        fprintf(stderr, "cairnctl: history: no retained versions of %s\n", o->args[0]);
        cairn_result_free(r);
        return EXIT_FAIL;
    }
    printf("%-10s %-8s %-24s %-8s %s\n", "REVISION", "VERSION", "TIME", "SIZE", "EVENT");
    for (i = 0; i < r->ops[0].n_kvs; i++) {
        const struct cairn_kv *kv = &r->ops[0].kvs[i];
        char when[40];
        time_t secs = (time_t)(kv->time_ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
        printf("%-10" PRIu64 " %-8" PRIu64 " %s.%03dZ %-8zu %s\n", kv->mod_revision, kv->version,
               when, (int)(kv->time_ms % 1000), kv->value_len, kv->deleted ? "delete" : "put");
    }
    cairn_result_free(r);
    return 0;
}

static int cmd_compact(cairn_client *c, const struct opts *o)
{
    struct cairn_result *r = NULL;
    uint64_t rev;
    int rv;
    if (o->n_args != 1 || parse_u64(o->args[0], &rev, "REV") != 0) {
        fprintf(stderr, "cairnctl: compact wants REV\n");
        return EXIT_USAGE;
    }
    rv = cairn_compact(c, rev, &r);
    if (rv != 0) {
        return fail(c, rv, "compact");
    }
    if (o->json) {
        json_result(r);
    } else {
        printf("compacted at revision %" PRIu64 "\n", r->compact_revision);
    }
    cairn_result_free(r);
    return 0;
}

static int cmd_retention(cairn_client *c, const struct opts *o)
{
    uint64_t n;
    int rv;
    if (o->n_args != 1 || parse_u64(o->args[0], &n, "N") != 0) {
        fprintf(stderr, "cairnctl: retention wants N (versions to keep per key)\n");
        return EXIT_USAGE;
    }
    rv = cairn_set_retention(c, n);
    if (rv != 0) {
        return fail(c, rv, "retention");
    }
    if (!o->json) {
        printf("keeping the last %" PRIu64 " versions of each key\n", n);
    } else {
        printf("{\"retain_versions\":%" PRIu64 "}\n", n);
    }
    return 0;
}

static void json_status(const struct cairn_status *s, const char *endpoint)
{
    size_t i;
    printf("{\"endpoint\":\"%s\",\"id\":%" PRIu64 ",\"state\":\"%s\",\"leader\":%" PRIu64
           ",\"leader_address\":\"%s\",\"term\":%" PRIu64 ",\"commit_index\":%" PRIu64
           ",\"applied_index\":%" PRIu64 ",\"last_index\":%" PRIu64 ",\"revision\":%" PRIu64
           ",\"compact_revision\":%" PRIu64 ",\"keys\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"retain_versions\":%" PRIu64 ",\"snapshots\":%" PRIu64 ",\"read_barriers\":%" PRIu64
           ",\"linearizable_reads\":%" PRIu64 ",\"members\":[",
           endpoint, s->id, s->state, s->leader_id, s->leader_address, s->term, s->commit_index,
           s->applied_index, s->last_index, s->revision, s->compact_revision, s->keys, s->bytes,
           s->retain_versions, s->snapshots, s->read_barriers, s->linearizable_reads);
    for (i = 0; i < s->n_members; i++) {
        printf("%s{\"id\":%" PRIu64 ",\"raft_address\":\"%s\",\"client_address\":\"%s\","
               "\"role\":\"%s\"}",
               i > 0 ? "," : "", s->members[i].id, s->members[i].raft_address,
               s->members[i].client_address, s->members[i].role);
    }
    printf("]}");
}

static int cmd_status(cairn_client *c, const struct opts *o)
{
    const char *list = o->endpoint != NULL ? o->endpoint : o->endpoints;
    char copy[4096];
    char *save = NULL;
    char *ep;
    int failures = 0;
    int count = 0;
    snprintf(copy, sizeof(copy), "%s", list);
    if (o->json) {
        printf("[");
    } else {
        printf("%-22s %-4s %-10s %-6s %-8s %-8s %-8s %-8s %s\n", "ENDPOINT", "ID", "STATE", "TERM",
               "COMMIT", "APPLIED", "REV", "KEYS", "LEADER");
    }
    for (ep = strtok_r(copy, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
        struct cairn_status *s = NULL;
        int rv = cairn_status(c, ep, &s);
        if (rv != 0) {
            fprintf(stderr, "cairnctl: status: %s: %s (%s)\n", ep, cairn_errmsg(c),
                    cairn_errname(rv));
            failures++;
            continue;
        }
        if (o->json) {
            if (count > 0) {
                printf(",");
            }
            json_status(s, ep);
        } else {
            printf("%-22s %-4" PRIu64 " %-10s %-6" PRIu64 " %-8" PRIu64 " %-8" PRIu64 " %-8" PRIu64
                   " %-8" PRIu64 " %" PRIu64 "\n",
                   ep, s->id, s->state, s->term, s->commit_index, s->applied_index, s->revision,
                   s->keys, s->leader_id);
        }
        count++;
        cairn_status_free(s);
    }
    if (o->json) {
        printf("]\n");
    }
    return failures > 0 ? EXIT_FAIL : 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct cairn_options copts;
    cairn_client *c;
    const char *cmd = NULL;
    int err = 0;
    int i;
    int rv;
    uint64_t n;

    memset(&o, 0, sizeof(o));
    o.endpoints = getenv("CAIRN_ENDPOINTS");
    if (o.endpoints == NULL || o.endpoints[0] == '\0') {
        o.endpoints = CAIRN_DEFAULT_ENDPOINTS;
    }
    o.timeout_ms = 5000;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--stale") == 0) {
            o.stale = true;
        } else if (strcmp(a, "--prefix") == 0) {
            o.prefix = true;
        } else if (strcmp(a, "--prev") == 0) {
            o.prev = true;
        } else if (strcmp(a, "--endpoints") == 0 && has_next) {
            o.endpoints = argv[++i];
        } else if (strcmp(a, "--endpoint") == 0 && has_next) {
            o.endpoint = argv[++i];
        } else if (strcmp(a, "--after") == 0 && has_next) {
            o.after = argv[++i];
        } else if ((strcmp(a, "--rev") == 0 || strcmp(a, "--limit") == 0 ||
                    strcmp(a, "--timeout") == 0) &&
                   has_next) {
            if (parse_u64(argv[i + 1], &n, a) != 0) {
                return EXIT_USAGE;
            }
            i++;
            if (strcmp(a, "--rev") == 0) {
                o.rev = n;
            } else if (strcmp(a, "--limit") == 0) {
                o.limit = n;
            } else {
                o.timeout_ms = n > 0 && n < 3600000 ? (int)n : 5000;
            }
        } else if (strncmp(a, "--", 2) == 0 && strlen(a) > 2) {
            fprintf(stderr, "cairnctl: unknown flag %s or missing value (see --help)\n", a);
            return EXIT_USAGE;
        } else if (cmd == NULL) {
            cmd = a;
        } else if (o.n_args < 8) {
            o.args[o.n_args++] = argv[i];
        } else {
            fprintf(stderr, "cairnctl: too many arguments\n");
            return EXIT_USAGE;
        }
    }
    if (cmd == NULL) {
        usage(stderr);
        return EXIT_USAGE;
    }
    memset(&copts, 0, sizeof(copts));
    copts.timeout_ms = o.timeout_ms;
    c = cairn_client_new(o.endpoints, &copts, &err);
    if (c == NULL) {
        fprintf(stderr, "cairnctl: bad endpoints \"%s\": want host:port,... (%s)\n", o.endpoints,
                cairn_errname(err));
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "put") == 0) {
        rv = cmd_put(c, &o);
    } else if (strcmp(cmd, "get") == 0) {
        rv = cmd_get(c, &o);
    } else if (strcmp(cmd, "del") == 0) {
        rv = cmd_del(c, &o);
    } else if (strcmp(cmd, "cas") == 0) {
        rv = cmd_cas(c, &o);
    } else if (strcmp(cmd, "txn") == 0) {
        rv = cmd_txn(c, &o);
    } else if (strcmp(cmd, "history") == 0) {
        rv = cmd_history(c, &o);
    } else if (strcmp(cmd, "compact") == 0) {
        rv = cmd_compact(c, &o);
    } else if (strcmp(cmd, "retention") == 0) {
        rv = cmd_retention(c, &o);
    } else if (strcmp(cmd, "status") == 0) {
        rv = cmd_status(c, &o);
    } else {
        fprintf(stderr, "cairnctl: unknown command \"%s\" (see --help)\n", cmd);
        rv = EXIT_USAGE;
    }
    cairn_client_free(c);
    return rv;
}
