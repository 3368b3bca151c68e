/*
 * cairnctl: the command-line client. Verbs in the spirit of etcdctl; every
 * failure exits non-zero with a message on stderr that says what went wrong.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "diff.h"
#include "dr_archive.h"
#include "help.h"
#include "member.h"
#include "snapshot.h"

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
    const char *endpoint;      /* status, metrics: one node */
    bool progress;             /* watch: print progress updates */
    const char *versions;      /* retention set: --versions N */
    const char *age;           /* retention set: --age DURATION */
    uint64_t min_revision;     /* get: --min-revision N */
    const char *max_staleness; /* get: --max-staleness DURATION */
    struct snapshot_opts snap; /* snapshot: --from, --data-dir, ... */
    struct member_opts member; /* member, leader: --voter, --to, ... */
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
            "                             from the contacted node without the leader;\n"
            "                             --min-revision N waits until that node has applied\n"
            "                             revision N (implies --stale), --max-staleness\n"
            "                             DURATION (500ms, 2s) refuses a node staler than that\n"
            "  del KEY                    delete a key; --prefix deletes every key under KEY\n"
            "  cas KEY MOD_REV VALUE      write VALUE only if KEY's mod_revision is MOD_REV\n"
            "                             (0: only if KEY does not exist)\n"
            "  txn                        read a transaction from stdin (see docs/cairnctl.md)\n"
            "  history KEY                list retained versions of KEY, newest first; --limit N\n"
            "  diff KEY REV1 REV2         line diff of KEY's values at REV1 and REV2\n"
            "  rollback KEY REV           write KEY's value at REV back as a new revision,\n"
            "                             unless KEY changes meanwhile\n"
            "  compact REV                discard history before revision REV\n"
            "  retention set PREFIX       history kept under PREFIX: --versions N, --age DURATION\n"
            "                             (90s, 30m, 12h, 7d); also: retention list,\n"
            "                             retention remove PREFIX, retention N (the \"\" policy)\n"
            "  watch KEY                  print KEY's changes as they come (--prefix: every key\n"
            "                             under KEY) from now or --rev R; --prev, --progress\n"
            "  status                     show every endpoint's role, term and indexes;\n"
            "                             --endpoint HOST:PORT asks one node\n"
            "  metrics                    print a node's metrics (Prometheus text format);\n"
            "                             --endpoint HOST:PORT chooses the node\n"
            "  member list                members: id, role, addresses, the leader's view of\n"
            "                             their catch-up progress\n"
            "  member add ID RAFT/CLIENT  add a node started with --join 1 as a standby\n"
            "                             (RAFT_HOST:PORT/CLIENT_HOST:PORT); --voter promotes it\n"
            "                             once caught up (--catch-up-timeout MS, default 300000)\n"
            "  member promote ID          a caught-up standby becomes a voter\n"
            "  member demote ID           a voter becomes a standby\n"
            "  member remove ID           remove a member (it stops by itself)\n"
            "  leader transfer            hand leadership to another voter (--to ID: that one)\n"
            "  snapshot save [FILE]       the leader uploads a snapshot to the backup store now;\n"
            "                             with FILE, a snapshot of the whole store is downloaded\n"
            "                             into FILE instead (no backup store needed)\n"
            "  snapshot list              snapshots and the restorable window (--from URL reads\n"
            "                             a store directly: file:///DIR or s3://BUCKET/PREFIX)\n"
            "  snapshot verify            restore the newest snapshot plus log in memory and\n"
            "                             check its state hash (--from URL: locally)\n"
            "  snapshot restore           --from URL --data-dir DIR [--revision R | --time T]\n"
            "                             [--fallback]: a new member's data directory\n"
            "                             (--from FILE: from a file of snapshot save FILE)\n"
            "  snapshot status [FILE]     the cluster's backup state (--json: all of it); with\n"
            "                             FILE, check a snapshot file and show what it holds\n"
            "                             S3 flags: --backup-endpoint URL, --backup-region R,\n"
            "                             --backup-addressing path|virtual-host,\n"
            "                             --backup-credentials-file F; --cluster ID\n"
            "\n"
            "Global flags:\n"
            "  --endpoints H:P,...        cluster endpoints (default: $CAIRN_ENDPOINTS, else\n"
            "                             %s)\n"
            "  --json                     machine-readable output\n"
            "  --timeout MS               per-call timeout (default 5000)\n"
            "  --version                  print cairnctl's version\n"
            "  --help                     this help; COMMAND --help (or help COMMAND):\n"
            "                             that command's flags\n",
            CAIRN_DEFAULT_ENDPOINTS);
}

static int parse_duration_ms(const char *s, uint64_t *out);

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
    if (o->max_staleness != NULL &&
        parse_duration_ms(o->max_staleness, &go.max_staleness_ms) != 0) {
        fprintf(stderr,
                "cairnctl: --max-staleness wants a duration such as 500ms or 2s, got \"%s\"\n",
                o->max_staleness);
        return EXIT_USAGE;
    }
    if (go.max_staleness_ms > 0 && !o->stale && o->min_revision == 0) {
        fprintf(stderr, "cairnctl: --max-staleness bounds stale reads: add --stale (or "
                        "--min-revision)\n");
        return EXIT_USAGE;
    }
    go.stale = o->stale;
    go.min_revision = o->min_revision;
    go.prefix = o->prefix;
    go.revision = o->rev;
    go.limit = o->limit;
    go.after = o->after;
    go.after_len = o->after != NULL ? strlen(o->after) : 0;
    rv = cairn_get(c, o->args[0], strlen(o->args[0]), &go, &r);
    if (rv != 0) {
        char what[64];
        /* Name the revision: "not found" at a past one is not "not found". */
        snprintf(what, sizeof(what), o->rev > 0 ? "get at revision %" PRIu64 : "get", o->rev);
        cairn_result_free(r);
        return fail(c, rv, what);
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

/* Milliseconds since the epoch as UTC ISO 8601: 2024-05-01T12:00:00.250Z. */
static void format_time(int64_t ms, char *out, size_t len)
{
    int64_t secs = ms / 1000;
    int frac = (int)(ms % 1000);
    time_t t;
    struct tm tm;
    char date[40];
    if (frac < 0) { /* before 1970: round the seconds down */
        frac += 1000;
        secs--;
    }
    t = (time_t)secs;
    if (gmtime_r(&t, &tm) == NULL || strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        snprintf(out, len, "%" PRId64 "ms", ms);
        return;
    }
    snprintf(out, len, "%s.%03dZ", date, frac);
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
        char when[64];
        format_time(kv->time_ms, when, sizeof(when));
        printf("%-10" PRIu64 " %-8" PRIu64 " %-24s %-8zu %s\n", kv->mod_revision, kv->version, when,
               kv->value_len, kv->deleted ? "delete" : "put");
    }
    if (r->ops[0].more) {
        fprintf(stderr, "cairnctl: history: older versions follow; raise --limit to see them\n");
    }
    cairn_result_free(r);
    return 0;
}

/* diff: a line diff of a key's values at two revisions, in the unified
 * format of diff -u. Lines are compared with their newline, so that a
 * missing newline at the end of a value shows, as it does in diff. */

/* The value of the key at one revision. */
struct diff_side
{
    uint64_t revision; /* the revision read at */
    bool exists;
    struct cairn_result *res; /* owned */
    const char *value;        /* into res; "" when absent */
    size_t value_len;
    uint64_t mod_revision;   /* 0 when absent */
    struct diff_line *lines; /* owned */
    size_t n_lines;
};

/* "@@ -3,2 +3 @@": diff -u leaves out a count of 1. */
static void print_range(char sign, size_t start, size_t count)
{
    printf("%c%zu", sign, start);
    if (count != 1) {
        printf(",%zu", count);
    }
}

static void diff_print_text(const char *key, const struct diff_side *x, const struct diff_side *y,
                            const struct diff_edit *e, size_t n, bool minimal)
{
    struct diff_hunk h;
    size_t at = 0;
    bool header = false;
    while (diff_next_hunk(e, n, &at, &h)) {
        size_t i;
        if (!header) {
            printf("--- %s @ revision %" PRIu64 "%s\n", key, x->revision,
                   x->exists ? "" : " (absent: diffed as empty)");
            printf("+++ %s @ revision %" PRIu64 "%s\n", key, y->revision,
                   y->exists ? "" : " (absent: diffed as empty)");
            header = true;
        }
        printf("@@ ");
        print_range('-', h.old_start, h.old_lines);
        printf(" ");
        print_range('+', h.new_start, h.new_lines);
        printf(" @@\n");
        for (i = h.start; i < h.end; i++) {
            const struct diff_line *l = diff_edit_line(&e[i], x->lines, y->lines);
            putchar(e[i].op);
            fwrite(l->p, 1, l->len, stdout);
            printf(l->newline ? "\n" : "\n\\ No newline at end of file\n");
        }
    }
    if (!minimal) {
        fprintf(stderr, "cairnctl: diff: the values differ in too many lines for a minimal "
                        "diff; the differing part is shown replaced as a whole\n");
    }
}

static void json_side(const char *name, const struct diff_side *s)
{
    printf("\"%s\":{\"revision\":%" PRIu64 ",\"exists\":%s,\"mod_revision\":%" PRIu64 ",", name,
           s->revision, s->exists ? "true" : "false", s->mod_revision);
    json_bytes("value", s->value, s->value_len);
    printf("}");
}

static void diff_print_json(const char *key, const struct diff_side *x, const struct diff_side *y,
                            const struct diff_edit *e, size_t n, bool minimal)
{
    struct diff_hunk h;
    size_t at = 0;
    size_t hunks = 0;
    bool identical = true;
    size_t i;
    for (i = 0; i < n; i++) {
        identical = identical && e[i].op == ' ';
    }
    printf("{");
    json_bytes("key", key, strlen(key));
    printf(",");
    json_side("from", x);
    printf(",");
    json_side("to", y);
    printf(",\"identical\":%s,\"minimal\":%s,\"hunks\":[", identical ? "true" : "false",
           minimal ? "true" : "false");
    while (diff_next_hunk(e, n, &at, &h)) {
        printf("%s{\"old_start\":%zu,\"old_lines\":%zu,\"new_start\":%zu,\"new_lines\":%zu,"
               "\"lines\":[",
               hunks++ > 0 ? "," : "", h.old_start, h.old_lines, h.new_start, h.new_lines);
        for (i = h.start; i < h.end; i++) {
            const struct diff_line *l = diff_edit_line(&e[i], x->lines, y->lines);
            printf("%s{\"op\":\"%c\",", i > h.start ? "," : "", e[i].op);
            json_bytes("text", l->p, l->len);
            printf(",\"newline\":%s}", l->newline ? "true" : "false");
        }
        printf("]}");
    }
    printf("]}\n");
}

/* The key's value at rev (0: now) into side; an absent key is empty. */
static int diff_read(cairn_client *c, const struct opts *o, const char *key, uint64_t rev,
                     struct diff_side *side)
{
    struct cairn_get_opts go;
    char what[64];
    int rv;
    memset(&go, 0, sizeof(go));
    go.revision = rev;
    go.stale = o->stale;
    rv = cairn_get(c, key, strlen(key), &go, &side->res);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        snprintf(what, sizeof(what), "diff: reading at revision %" PRIu64, rev);
        return fail(c, rv, what);
    }
    side->revision = side->res->revision;
    side->exists = rv == 0;
    side->value = "";
    if (side->exists) {
        const struct cairn_kv *kv = &side->res->ops[0].kvs[0];
        side->value = kv->value;
        side->value_len = kv->value_len;
        side->mod_revision = kv->mod_revision;
    }
    if (diff_split_lines(side->value, side->value_len, &side->lines, &side->n_lines) != 0) {
        fprintf(stderr, "cairnctl: diff: out of memory\n");
        return EXIT_FAIL;
    }
    return 0;
}

static int cmd_diff(cairn_client *c, const struct opts *o)
{
    struct diff_side sides[2];
    struct diff_edit *edits = NULL;
    size_t n_edits = 0;
    bool minimal = true;
    uint64_t revs[2];
    int rv = 0;
    int i;
    if (o->n_args != 3 || parse_u64(o->args[1], &revs[0], "REV1") != 0 ||
        parse_u64(o->args[2], &revs[1], "REV2") != 0) {
        fprintf(stderr, "cairnctl: diff wants KEY REV1 REV2 (0: the current revision)\n");
        return EXIT_USAGE;
    }
    memset(sides, 0, sizeof(sides));
    for (i = 0; i < 2 && rv == 0; i++) {
        rv = diff_read(c, o, o->args[0], revs[i], &sides[i]);
    }
    if (rv == 0 && diff_compute(sides[0].lines, sides[0].n_lines, sides[1].lines, sides[1].n_lines,
                                &edits, &n_edits, &minimal) != 0) {
        fprintf(stderr, "cairnctl: diff: out of memory\n");
        rv = EXIT_FAIL;
    }
    if (rv == 0 && o->json) {
        diff_print_json(o->args[0], &sides[0], &sides[1], edits, n_edits, minimal);
    } else if (rv == 0) {
        diff_print_text(o->args[0], &sides[0], &sides[1], edits, n_edits, minimal);
    }
    free(edits);
    for (i = 0; i < 2; i++) {
        free(sides[i].lines);
        cairn_result_free(sides[i].res);
    }
    return rv;
}

/* rollback: write the value a key had at a past revision back as a new
 * revision, with a compare-and-swap on the mod_revision read just before,
 * so that a change made in between is never overwritten. */

/* A shell command run between rollback's reads and its write, so that a test
 * can change the key right there and prove the write is then refused. */
#define ROLLBACK_TEST_HOOK_ENV "CAIRNCTL_TEST_ROLLBACK_HOOK"

static int cmd_rollback(cairn_client *c, const struct opts *o)
{
    struct cairn_get_opts go;
    struct cairn_result *past = NULL;
    struct cairn_result *now = NULL;
    struct cairn_result *r = NULL;
    const struct cairn_kv *old = NULL;
    const char *key;
    size_t key_len;
    const char *hook;
    uint64_t rev;
    uint64_t mod = 0;
    char what[96];
    int code = EXIT_FAIL;
    int rv;
    if (o->n_args != 2 || parse_u64(o->args[1], &rev, "REV") != 0 || rev == 0) {
        fprintf(stderr, "cairnctl: rollback wants KEY REV (a revision >= 1)\n");
        return EXIT_USAGE;
    }
    key = o->args[0];
    key_len = strlen(key);
    memset(&go, 0, sizeof(go));
    go.revision = rev;
    rv = cairn_get(c, key, key_len, &go, &past);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        snprintf(what, sizeof(what), "rollback: reading at revision %" PRIu64, rev);
        code = fail(c, rv, what);
        goto out;
    }
    old = rv == 0 ? &past->ops[0].kvs[0] : NULL;
    rv = cairn_get(c, key, key_len, NULL, &now);
    if (rv != 0 && rv != CAIRN_ENOTFOUND) {
        code = fail(c, rv, "rollback: reading the current value");
        goto out;
    }
    mod = rv == 0 ? now->ops[0].kvs[0].mod_revision : 0;
    if (old == NULL && mod == 0) {
        if (o->json) {
            printf("{\"revision\":%" PRIu64 ",\"changed\":false}\n", now->revision);
        } else {
            printf("%s did not exist at revision %" PRIu64 " and does not exist now: nothing to "
                   "do\n",
                   key, rev);
        }
        code = 0;
        goto out;
    }
    hook = getenv(ROLLBACK_TEST_HOOK_ENV);
    if (hook != NULL && hook[0] != '\0' && system(hook) != 0) {
        fprintf(stderr, "cairnctl: rollback: %s failed; nothing written\n", ROLLBACK_TEST_HOOK_ENV);
        goto out;
    }
    if (old != NULL) {
        /* mod 0 (absent now) makes it a create-only write. */
        rv = cairn_cas(c, key, key_len, mod, old->value, old->value_len, &r);
    } else {
        struct cairn_compare cmp;
        struct cairn_op ops[2];
        struct cairn_txn txn;
        memset(&cmp, 0, sizeof(cmp));
        cmp.key = key;
        cmp.key_len = key_len;
        cmp.target = CAIRN_CMP_MOD;
        cmp.op = CAIRN_CMP_EQUAL;
        cmp.number = mod;
        memset(ops, 0, sizeof(ops));
        ops[0].type = CAIRN_OP_DEL;
        ops[0].key = key;
        ops[0].key_len = key_len;
        ops[1].type = CAIRN_OP_GET; /* on failure, what the key is now */
        ops[1].key = key;
        ops[1].key_len = key_len;
        memset(&txn, 0, sizeof(txn));
        txn.compares = &cmp;
        txn.n_compares = 1;
        txn.then_ops = &ops[0];
        txn.n_then = 1;
        txn.else_ops = &ops[1];
        txn.n_else = 1;
        rv = cairn_txn(c, &txn, &r);
        if (rv == 0 && !r->succeeded) {
            rv = CAIRN_ECOMPARE;
        }
    }
    if (rv == CAIRN_ECOMPARE) {
        const struct cairn_op_result *cur = r != NULL && r->n_ops > 0 ? &r->ops[0] : NULL;
        fprintf(stderr,
                "cairnctl: rollback: %s changed after it was read (mod_revision %" PRIu64
                ", now %" PRIu64 "); nothing written (CAIRN_ECOMPARE)\n",
                key, mod, cur != NULL && cur->n_kvs > 0 ? cur->kvs[0].mod_revision : 0);
        goto out;
    }
    if (rv != 0) {
        code = fail(c, rv, "rollback");
        goto out;
    }
    if (o->json) {
        json_result(r);
    } else {
        printf("OK revision=%" PRIu64 "\n", r->revision);
    }
    code = 0;
out:
    cairn_result_free(past);
    cairn_result_free(now);
    cairn_result_free(r);
    return code;
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

/* retention: set, list and remove policies (see cairn_set_retention). */

/* A duration for --age: a number and a unit, ms, s, m, h or d (90s, 30m,
 * 12h, 7d); a bare 0 means no age limit. */
static int parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct
    {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    char *end;
    unsigned long long v;
    size_t i;
    if (s == NULL || !isdigit((unsigned char)s[0])) {
        return -1;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0) {
        return -1;
    }
    if (*end == '\0' && v == 0) {
        *out = 0;
        return 0;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            if (v > UINT64_MAX / units[i].ms) {
                return -1;
            }
            *out = v * units[i].ms;
            return 0;
        }
    }
    return -1;
}

/* The largest unit that expresses ms exactly: 7d, 90s, 1500ms; "-" for 0. */
static void format_duration(uint64_t ms, char *out, size_t len)
{
    static const struct
    {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    size_t i;
    if (ms == 0) {
        snprintf(out, len, "-");
        return;
    }
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms % units[i].ms == 0) {
            snprintf(out, len, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    snprintf(out, len, "%" PRIu64 "ms", ms);
}

/* A policy's limits as text: "10 versions", "7d", "5 versions, 12h"... */
static void describe_policy(const struct cairn_retention *p, char *out, size_t len)
{
    char age[32];
    format_duration(p->age_ms, age, sizeof(age));
    if (p->versions > 0 && p->age_ms > 0) {
        snprintf(out, len, "the last %" PRIu64 " versions, and only those younger than %s",
                 p->versions, age);
    } else if (p->versions > 0) {
        snprintf(out, len, "the last %" PRIu64 " versions, whatever their age", p->versions);
    } else {
        snprintf(out, len, "every version younger than %s", age);
    }
}

static void print_policy(const char *verb, const struct cairn_retention *p)
{
    char what[160];
    describe_policy(p, what, sizeof(what));
    printf("%s \"%.*s\": keep %s (the newest version always stays)\n", verb, (int)p->prefix_len,
           p->prefix, what);
}

static void json_policy(const struct cairn_retention *p)
{
    printf("{");
    json_bytes("prefix", p->prefix, p->prefix_len);
    printf(",\"versions\":%" PRIu64 ",\"age_ms\":%" PRIu64 "}", p->versions, p->age_ms);
}

static int retention_set(cairn_client *c, const struct opts *o)
{
    struct cairn_retention p;
    int rv;
    if (o->n_args != 2 || (o->versions == NULL && o->age == NULL)) {
        fprintf(stderr, "cairnctl: retention set wants PREFIX and --versions N and/or --age "
                        "DURATION\n");
        return EXIT_USAGE;
    }
    memset(&p, 0, sizeof(p));
    p.prefix = o->args[1];
    p.prefix_len = strlen(o->args[1]);
    if (o->versions != NULL && parse_u64(o->versions, &p.versions, "--versions") != 0) {
        return EXIT_USAGE;
    }
    if (o->age != NULL && parse_duration_ms(o->age, &p.age_ms) != 0) {
        fprintf(stderr,
                "cairnctl: --age wants a duration such as 90s, 30m, 12h or 7d, got \"%s\"\n",
                o->age);
        return EXIT_USAGE;
    }
    if (p.versions == 0 && p.age_ms == 0) {
        fprintf(stderr, "cairnctl: retention set: a policy with neither a version nor an age "
                        "limit keeps everything; use 'retention remove PREFIX' to drop one\n");
        return EXIT_USAGE;
    }
    rv = cairn_set_retention(c, &p);
    if (rv != 0) {
        return fail(c, rv, "retention set");
    }
    if (o->json) {
        json_policy(&p);
        printf("\n");
    } else {
        print_policy("retention for", &p);
    }
    return 0;
}

static int retention_remove(cairn_client *c, const struct opts *o)
{
    struct cairn_retention p;
    int rv;
    if (o->n_args != 2) {
        fprintf(stderr, "cairnctl: retention remove wants PREFIX\n");
        return EXIT_USAGE;
    }
    memset(&p, 0, sizeof(p));
    p.prefix = o->args[1];
    p.prefix_len = strlen(o->args[1]);
    rv = cairn_set_retention(c, &p);
    if (rv != 0) {
        return fail(c, rv, "retention remove");
    }
    if (p.prefix_len == 0) {
        /* "" always has a policy: removing it restores the default. */
        p.versions = CAIRN_RETENTION_VERSIONS_DEFAULT;
        if (o->json) {
            json_policy(&p);
            printf("\n");
        } else {
            print_policy("restored the default retention for", &p);
        }
    } else if (o->json) {
        printf("{");
        json_bytes("removed", p.prefix, p.prefix_len);
        printf("}\n");
    } else {
        printf("removed the retention policy for \"%s\"\n", p.prefix);
    }
    return 0;
}

/* The policies as the leader knows them: a follower may not have applied
 * the latest change yet. */
static int retention_list(cairn_client *c, const struct opts *o)
{
    struct cairn_status *s = NULL;
    size_t i;
    int rv = cairn_status(c, NULL, &s);
    if (rv == 0 && strcmp(s->state, "leader") != 0 && s->leader_address[0] != '\0') {
        char leader[256];
        snprintf(leader, sizeof(leader), "%s", s->leader_address);
        cairn_status_free(s);
        s = NULL;
        rv = cairn_status(c, leader, &s);
    }
    if (rv != 0) {
        return fail(c, rv, "retention list");
    }
    if (o->json) {
        printf("[");
        for (i = 0; i < s->n_retention; i++) {
            fputs(i > 0 ? "," : "", stdout);
            json_policy(&s->retention[i]);
        }
        printf("]\n");
    } else {
        printf("%-32s %-10s %s\n", "PREFIX", "VERSIONS", "MAX_AGE");
        for (i = 0; i < s->n_retention; i++) {
            const struct cairn_retention *p = &s->retention[i];
            int pad = p->prefix_len < 30 ? 30 - (int)p->prefix_len : 0;
            char versions[24];
            char age[32];
            snprintf(versions, sizeof(versions), "%" PRIu64, p->versions);
            format_duration(p->age_ms, age, sizeof(age));
            /* Quoted, so that the policy for "" shows. */
            printf("\"%.*s\"%*s %-10s %s\n", (int)p->prefix_len, p->prefix, pad, "",
                   p->versions == 0 ? "-" : versions, age);
        }
    }
    cairn_status_free(s);
    return 0;
}

static int cmd_retention(cairn_client *c, const struct opts *o)
{
    const char *sub = o->n_args > 0 ? o->args[0] : "";
    struct cairn_retention p;
    uint64_t n;
    int rv;
    if (strcmp(sub, "set") == 0) {
        return retention_set(c, o);
    }
    if (strcmp(sub, "remove") == 0) {
        return retention_remove(c, o);
    }
    if (strcmp(sub, "list") == 0 && o->n_args == 1) {
        return retention_list(c, o);
    }
    /* The older form, `retention N`: the policy for "" with N versions. */
    if (o->n_args != 1 || !isdigit((unsigned char)sub[0])) {
        fprintf(stderr, "cairnctl: retention wants set PREFIX [--versions N] [--age DURATION], "
                        "list, remove PREFIX, or N\n");
        return EXIT_USAGE;
    }
    if (parse_u64(sub, &n, "N") != 0 || n == 0) {
        fprintf(stderr, "cairnctl: retention N wants N >= 1 (versions to keep per key)\n");
        return EXIT_USAGE;
    }
    memset(&p, 0, sizeof(p));
    p.prefix = "";
    p.versions = n;
    rv = cairn_set_retention(c, &p);
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
           ",\"linearizable_reads\":%" PRIu64 ",\"watchers\":%" PRIu64 ",\"watch_events\":%" PRIu64
           ",\"watch_catchups\":%" PRIu64 ",\"watch_snapshots\":%" PRIu64
           ",\"state_hash\":\"%016" PRIx64 "\",\"cluster_id\":\"%016" PRIx64
           "\",\"restored_as\":\"%016" PRIx64 "\",\"members\":[",
           endpoint, s->id, s->state, s->leader_id, s->leader_address, s->term, s->commit_index,
           s->applied_index, s->last_index, s->revision, s->compact_revision, s->keys, s->bytes,
           s->retain_versions, s->snapshots, s->read_barriers, s->linearizable_reads, s->watchers,
           s->watch_events, s->watch_catchups, s->watch_snapshots, s->state_hash, s->cluster_id,
           s->restored_as);
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

/* metrics: one node's metrics as it renders them, byte for byte. */
static int cmd_metrics(cairn_client *c, const struct opts *o)
{
    char *text = NULL;
    size_t len = 0;
    int rv = cairn_metrics_text(c, o->endpoint, &text, &len);
    if (rv != 0) {
        return fail(c, rv, "metrics");
    }
    if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
        free(text);
        fprintf(stderr, "cairnctl: metrics: cannot write the output\n");
        return EXIT_FAIL;
    }
    free(text);
    return 0;
}

/* watch: print the changes of a key (or of every key under a prefix) as they
 * come, until SIGINT or SIGTERM. The library resumes the watch on another
 * node when the serving one fails, without gaps or repeats; this only
 * prints. Updates are taken from the watch's queue (cairn_watch_next) so
 * that printing happens here, on the main thread. */

/* How soon a SIGINT or SIGTERM is noticed while no update comes. */
#define WATCH_SIGNAL_POLL_MS 100

static volatile sig_atomic_t watch_stop;

static void watch_signal(int sig)
{
    (void)sig;
    watch_stop = 1;
}

static void watch_json_fields(const struct cairn_kv *kv)
{
    json_bytes("key", kv->key, kv->key_len);
    printf(",");
    json_bytes("value", kv->value, kv->value_len);
    printf(",\"create_revision\":%" PRIu64 ",\"mod_revision\":%" PRIu64 ",\"version\":%" PRIu64
           ",\"time_ms\":%" PRId64,
           kv->create_revision, kv->mod_revision, kv->version, kv->time_ms);
}

static void watch_print_event(const struct cairn_event *e, const struct opts *o)
{
    bool put = e->type == CAIRN_EVENT_PUT;
    if (o->json) {
        printf("{\"type\":\"%s\",", put ? "put" : "delete");
        watch_json_fields(&e->kv);
        printf(",\"prev\":");
        if (e->prev_kv != NULL) {
            json_kv(e->prev_kv);
        } else {
            printf("null");
        }
        printf("}\n");
        return;
    }
    printf("%s ", put ? "PUT" : "DELETE");
    fwrite(e->kv.key, 1, e->kv.key_len, stdout);
    if (put) {
        printf(" revision=%" PRIu64 " version=%" PRIu64 "\n", e->kv.mod_revision, e->kv.version);
        print_value(&e->kv);
    } else {
        printf(" revision=%" PRIu64 "\n", e->kv.mod_revision);
    }
    if (o->prev && e->prev_kv != NULL) {
        printf("PREV revision=%" PRIu64 "\n", e->prev_kv->mod_revision);
        print_value(e->prev_kv);
    }
}

/* A snapshot replaces the watched range: shown as one marked block. */
static void watch_print_snapshot(const struct cairn_watch_update *u, const struct opts *o)
{
    size_t i;
    if (o->json) {
        printf("{\"type\":\"snapshot_begin\",\"revision\":%" PRIu64 ",\"compact_revision\":%" PRIu64
               ",\"keys\":%zu}\n",
               u->revision, u->compact_revision, u->n_kvs);
    } else {
        printf("SNAPSHOT revision=%" PRIu64 " keys=%zu\n", u->revision, u->n_kvs);
    }
    for (i = 0; i < u->n_kvs; i++) {
        if (o->json) {
            printf("{\"type\":\"snapshot_kv\",");
            watch_json_fields(&u->kvs[i]);
            printf("}\n");
        } else {
            fwrite(u->kvs[i].key, 1, u->kvs[i].key_len, stdout);
            printf("\n");
            print_value(&u->kvs[i]);
        }
    }
    if (o->json) {
        printf("{\"type\":\"snapshot_end\",\"revision\":%" PRIu64 "}\n", u->revision);
    } else {
        printf("END SNAPSHOT revision=%" PRIu64 "\n", u->revision);
    }
}

static int cmd_watch(cairn_client *c, const struct opts *o)
{
    struct cairn_watch_opts wo;
    struct sigaction sa;
    cairn_watcher *w = NULL;
    int result = 0;
    int rv;
    if (o->n_args != 1) {
        fprintf(stderr, "cairnctl: watch wants one KEY (or prefix with --prefix)\n");
        return EXIT_USAGE;
    }
    /* No SA_RESTART: a signal must end the wait, not resume it. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watch_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    memset(&wo, 0, sizeof(wo));
    wo.prefix = o->prefix;
    wo.start_revision = o->rev;
    wo.prev_kv = o->prev;
    rv = cairn_watch(c, o->args[0], strlen(o->args[0]), &wo, NULL, NULL, &w);
    if (rv != 0) {
        return fail(c, rv, "watch");
    }
    while (!watch_stop) {
        struct cairn_watch_update *u = NULL;
        size_t i;
        rv = cairn_watch_next(w, WATCH_SIGNAL_POLL_MS, &u);
        if (rv == CAIRN_ETIMEOUT) {
            continue;
        }
        if (rv != 0) {
            fprintf(stderr, "cairnctl: watch: %s\n", cairn_strerror(rv));
            result = EXIT_FAIL;
            break;
        }
        switch (u->kind) {
            case CAIRN_WATCH_EVENTS:
                for (i = 0; i < u->n_events; i++) {
                    watch_print_event(&u->events[i], o);
                }
                break;
            case CAIRN_WATCH_SNAPSHOT:
                watch_print_snapshot(u, o);
                break;
            case CAIRN_WATCH_PROGRESS:
                if (o->progress && o->json) {
                    printf("{\"type\":\"progress\",\"revision\":%" PRIu64 "}\n", u->revision);
                } else if (o->progress) {
                    printf("PROGRESS revision=%" PRIu64 "\n", u->revision);
                }
                break;
            case CAIRN_WATCH_CANCELED:
                fprintf(stderr,
                        "cairnctl: watch: the watch ended after revision %" PRIu64 ": %s (%s)\n",
                        u->revision, u->message[0] != '\0' ? u->message : cairn_strerror(u->error),
                        cairn_errname(u->error));
                result = EXIT_FAIL;
                break;
        }
        /* Whoever reads the output (a pipe, a test) sees each update now. */
        fflush(stdout);
        if (u->kind == CAIRN_WATCH_CANCELED) {
            cairn_watch_update_free(u);
            break;
        }
        cairn_watch_update_free(u);
    }
    cairn_watch_cancel(w);
    return result;
}

/* --help: the command's page when a command is given, otherwise the global
 * help. An unknown command or verb is a usage error, as it is without --help. */
static int command_help(const char *cmd, const char *verb)
{
    int rv;
    if (cmd == NULL) {
        usage(stdout);
        return 0;
    }
    rv = help_page(stdout, stderr, cmd, verb);
    if (rv == HELP_NO_COMMAND) {
        fprintf(stderr, "cairnctl: unknown command \"%s\" (see --help)\n", cmd);
        return EXIT_USAGE;
    }
    if (rv == HELP_NO_VERB) {
        fprintf(stderr, "cairnctl: %s has no command \"%s\" (its commands are above)\n", cmd, verb);
        return EXIT_USAGE;
    }
    return 0;
}

static void restore_warning(const char *msg)
{
    fprintf(stderr, "cairnctl: warning: %s\n", msg);
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
    bool help = false;

    memset(&o, 0, sizeof(o));
    dr_set_warn(restore_warning);
    for (i = 1; i < argc; i++) {
        help = help || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0;
    }
    o.endpoints = getenv("CAIRN_ENDPOINTS");
    if (o.endpoints == NULL || o.endpoints[0] == '\0') {
        o.endpoints = CAIRN_DEFAULT_ENDPOINTS;
    }
    o.timeout_ms = 5000;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_next = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            continue; /* below, once the command is known */
        } else if (strcmp(a, "--version") == 0) {
            printf("cairnctl %d.%d\n", CAIRN_VERSION_MAJOR, CAIRN_VERSION_MINOR);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = true;
        } else if (strcmp(a, "--stale") == 0) {
            o.stale = true;
        } else if (strcmp(a, "--prefix") == 0) {
            o.prefix = true;
        } else if (strcmp(a, "--prev") == 0) {
            o.prev = true;
        } else if (strcmp(a, "--progress") == 0) {
            o.progress = true;
        } else if (strcmp(a, "--endpoints") == 0 && has_next) {
            o.endpoints = argv[++i];
        } else if (strcmp(a, "--endpoint") == 0 && has_next) {
            o.endpoint = argv[++i];
        } else if (strcmp(a, "--after") == 0 && has_next) {
            o.after = argv[++i];
        } else if (strcmp(a, "--from") == 0 && has_next) {
            o.snap.from = argv[++i];
        } else if (strcmp(a, "--data-dir") == 0 && has_next) {
            o.snap.data_dir = argv[++i];
        } else if (strcmp(a, "--cluster") == 0 && has_next) {
            o.snap.cluster = argv[++i];
        } else if (strcmp(a, "--time") == 0 && has_next) {
            o.snap.time = argv[++i];
        } else if (strcmp(a, "--voter") == 0) {
            o.member.voter = true;
        } else if (strcmp(a, "--to") == 0 && has_next) {
            if (parse_u64(argv[++i], &o.member.to, a) != 0) {
                return EXIT_USAGE;
            }
        } else if (strcmp(a, "--catch-up-timeout") == 0 && has_next) {
            if (parse_u64(argv[++i], &n, a) != 0) {
                return EXIT_USAGE;
            }
            o.member.catch_up_ms = n > 0 && n < 86400000 ? (int)n : 300000;
        } else if (strcmp(a, "--fallback") == 0) {
            o.snap.fallback = true;
        } else if (strcmp(a, "--backup-endpoint") == 0 && has_next) {
            o.snap.backup_endpoint = argv[++i];
        } else if (strcmp(a, "--backup-region") == 0 && has_next) {
            o.snap.backup_region = argv[++i];
        } else if (strcmp(a, "--backup-addressing") == 0 && has_next) {
            o.snap.backup_addressing = argv[++i];
        } else if (strcmp(a, "--backup-credentials-file") == 0 && has_next) {
            o.snap.backup_credentials_file = argv[++i];
        } else if (strcmp(a, "--revision") == 0 && has_next) {
            if (parse_u64(argv[++i], &o.snap.revision, a) != 0) {
                return EXIT_USAGE;
            }
        } else if (strcmp(a, "--versions") == 0 && has_next) {
            o.versions = argv[++i]; /* parsed by retention set */
        } else if (strcmp(a, "--age") == 0 && has_next) {
            o.age = argv[++i];
        } else if (strcmp(a, "--max-staleness") == 0 && has_next) {
            o.max_staleness = argv[++i]; /* parsed by get */
        } else if (strcmp(a, "--min-revision") == 0 && has_next) {
            if (parse_u64(argv[++i], &o.min_revision, a) != 0) {
                return EXIT_USAGE;
            }
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
            if (help) {
                continue; /* asking for help is never a usage error */
            }
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
    if (cmd != NULL && strcmp(cmd, "help") == 0) {
        help = true;
        cmd = o.n_args > 0 ? o.args[0] : NULL;
        memmove(o.args, o.args + 1, sizeof(o.args) - sizeof(o.args[0]));
        o.n_args = o.n_args > 0 ? o.n_args - 1 : 0;
    }
    if (help) {
        return command_help(cmd, o.n_args > 0 ? o.args[0] : NULL);
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
    } else if (strcmp(cmd, "diff") == 0) {
        rv = cmd_diff(c, &o);
    } else if (strcmp(cmd, "rollback") == 0) {
        rv = cmd_rollback(c, &o);
    } else if (strcmp(cmd, "status") == 0) {
        rv = cmd_status(c, &o);
    } else if (strcmp(cmd, "metrics") == 0) {
        rv = cmd_metrics(c, &o);
    } else if (strcmp(cmd, "watch") == 0) {
        rv = cmd_watch(c, &o);
    } else if (strcmp(cmd, "member") == 0 || strcmp(cmd, "leader") == 0) {
        o.member.verb = o.n_args > 0 ? o.args[0] : NULL;
        for (i = 1; i < o.n_args && o.member.n_args < 4; i++) {
            o.member.args[o.member.n_args++] = o.args[i];
        }
        o.member.json = o.json;
        if (o.member.catch_up_ms == 0) {
            o.member.catch_up_ms = 300000;
        }
        rv = strcmp(cmd, "member") == 0 ? cmd_member(c, &o.member) : cmd_leader(c, &o.member);
    } else if (strcmp(cmd, "snapshot") == 0) {
        o.snap.verb = o.n_args > 0 ? o.args[0] : NULL;
        o.snap.file = o.n_args > 1 ? o.args[1] : NULL;
        if (o.n_args > 2) {
            fprintf(stderr, "cairnctl: snapshot %s: unexpected argument \"%s\"\n", o.args[0],
                    o.args[2]);
            cairn_client_free(c);
            return EXIT_USAGE;
        }
        o.snap.json = o.json;
        rv = cmd_snapshot(c, &o.snap);
    } else {
        fprintf(stderr, "cairnctl: unknown command \"%s\" (see --help)\n", cmd);
        rv = EXIT_USAGE;
    }
    cairn_client_free(c);
    return rv;
}
