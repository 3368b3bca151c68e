/*
 * objstore: URL parsing, name checks, error context, and the file backend.
 * The S3 backend is in objstore_s3.c.
 *
 * The file backend keeps each object as a regular file at DIR/NAME. A put
 * writes DIR/PARENT/.BASE.~tmp.PID.N, fsyncs it, renames it over the name
 * and fsyncs the parent directory: after a crash the object is either the
 * old one or the new one, never a torn mix, and a concurrent reader sees
 * one or the other. Temporary names hold a '~', which no object name may,
 * so listings skip them (including ones a crash left behind).
 */
#define _GNU_SOURCE
#include "objstore.h"

#include "buf.h"
#include "errbuf.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

enum objstore_kind { OBJSTORE_FILE, OBJSTORE_S3 };

struct objstore
{
    enum objstore_kind kind;
    char *url;              /* owned */
    char *dir;              /* owned; file: the root directory, no trailing '/' */
    struct objstore_s3 *s3; /* owned; S3 */
    unsigned long tmp_seq;  /* file: makes temporary names unique in this process */
    uint64_t put_file_rate; /* file: bytes/s for objstore_put_file, 0: no limit */
};

/* Copying between a file and a file, or reading, goes by this much. */
#define FILE_CHUNK_BYTES (1u << 20)

/* Rewrites err (the backend's reason) as "URL: OP NAME: reason". */
static void err_wrap(const struct objstore *s, const char *op, const char *name, char *err,
                     size_t errlen)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    char reason[512];
    snprintf(reason, sizeof reason, "%s", err);
    snprintf(err, errlen, "%s: %s%s%s: %s", s->url, op, name != NULL ? " " : "",
             name != NULL ? name : "", reason[0] != '\0' ? reason : "failed");
}

static int name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '/';
}

/* 0 when name is a valid object name (see objstore.h); otherwise -1 with
 * the rule it breaks in why. A prefix (allow_prefix) may also be "" and may
 * end in '/' or in the middle of a segment. */
static int name_check(const char *name, int allow_prefix, const char **why)
{
    size_t len = strlen(name);
    if (len == 0) {
        if (allow_prefix) {
            return 0;
        }
        *why = "empty name";
        return -1;
    }
    if (len > OBJSTORE_NAME_MAX) {
        *why = "name longer than OBJSTORE_NAME_MAX bytes";
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char_ok((unsigned char)name[i])) {
            *why = "characters other than [A-Za-z0-9._/-]";
            return -1;
        }
    }
    if (name[0] == '/') {
        *why = "leading '/'";
        return -1;
    }
    /* Check every segment; a prefix's last segment may be partial (so "."
     * is fine there: it may become ".x") or empty (after a '/'). */
    const char *seg = name;
    for (;;) {
        const char *end = strchr(seg, '/');
        size_t n = end != NULL ? (size_t)(end - seg) : strlen(seg);
        int last = end == NULL;
        if (n == 0 && !(last && allow_prefix)) {
            *why = last ? "trailing '/'" : "empty segment ('//')";
            return -1;
        }
        if (!(last && allow_prefix) &&
            ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))) {
            *why = "'.' or '..' segment";
            return -1;
        }
        if (last) {
            break;
        }
        seg = end + 1;
    }
    return 0;
}

/* --- the file backend --------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = cairn_malloc(a + 1 + b + 1);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        errf(err, errlen, "open %s: %s", dir, strerror(errno));
        return -1;
    }
    if (fsync(fd) != 0) {
        errf(err, errlen, "fsync %s: %s", dir, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* Creates the directories of path's parents below the store root (path is
 * ROOT/NAME, name already checked), fsyncing each new directory's parent so
 * that the entry survives a crash. */
static int file_mkdirs(const struct objstore *s, char *path, char *err, size_t errlen)
{
    size_t root_len = strlen(s->dir);
    for (char *p = path + root_len + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        int rc = mkdir(path, 0755);
        int saved = errno;
        if (rc == 0) {
            char *slash = strrchr(path, '/');
            *slash = '\0';
            int frc = fsync_dir(path, err, errlen);
            *slash = '/';
            if (frc != 0) {
                *p = '/';
                return -1;
            }
        } else if (saved != EEXIST) {
            errf(err, errlen, "mkdir %s: %s", path, strerror(saved));
            *p = '/';
            return -1;
        } else {
            struct stat st;
            if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
                errf(err, errlen, "%s exists and is not a directory", path);
                *p = '/';
                return -1;
            }
        }
        *p = '/';
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads exactly len bytes at off; -1 with errno, or with errno 0 at EOF. */
static int pread_all(int fd, char *data, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = pread(fd, data, len, off);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (n == 0) {
            errno = 0;
            return -1;
        }
        data += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleep until `done` bytes since started_ns are within `rate` bytes/s. */
static void pace(uint64_t started_ns, uint64_t done, uint64_t rate)
{
    uint64_t due;
    struct timespec ts;
    if (rate == 0) {
        return;
    }
    due = started_ns + (uint64_t)((double)done * 1e9 / (double)rate);
    ts.tv_sec = (time_t)(due / 1000000000u);
    ts.tv_nsec = (long)(due % 1000000000u);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int file_put(struct objstore *s, const char *name, const void *data, int src_fd, size_t len,
                    char *err, size_t errlen)
{
    uint64_t started_ns = 0;
    int rc = -1;
    char *path = path_join(s->dir, name);
    char *tmp = NULL;
    char *chunk = NULL;
    int fd = -1;
    if (path == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    if (file_mkdirs(s, path, err, errlen) != 0) {
        goto out;
    }
    /* DIR/PARENT/.BASE.~tmp.PID.N beside the final name: same file system,
     * so the rename is atomic. */
    char *slash = strrchr(path, '/');
    size_t tmp_cap = strlen(path) + 64;
    tmp = cairn_malloc(tmp_cap);
    if (tmp == NULL) {
        errf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(tmp, tmp_cap, "%.*s/.%s.~tmp.%ld.%lu", (int)(slash - path), path, slash + 1,
             (long)getpid(), ++s->tmp_seq);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        errf(err, errlen, "create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (data != NULL || len == 0) {
        if (write_all(fd, data, len) != 0) {
            errf(err, errlen, "write %s: %s", tmp, strerror(errno));
            goto out_unlink;
        }
    } else {
        started_ns = mono_ns();
        chunk = cairn_malloc(FILE_CHUNK_BYTES);
        if (chunk == NULL) {
            errf(err, errlen, "out of memory");
            goto out_unlink;
        }
        for (size_t off = 0; off < len;) {
            size_t n = len - off < FILE_CHUNK_BYTES ? len - off : FILE_CHUNK_BYTES;
            if (pread_all(src_fd, chunk, n, (off_t)off) != 0) {
                errf(err, errlen, "read source: %s",
                     errno != 0 ? strerror(errno) : "file shorter than the given length");
                goto out_unlink;
            }
            if (write_all(fd, chunk, n) != 0) {
                errf(err, errlen, "write %s: %s", tmp, strerror(errno));
                goto out_unlink;
            }
            off += n;
            pace(started_ns, off, s->put_file_rate);
        }
    }
    if (fsync(fd) != 0) {
        errf(err, errlen, "fsync %s: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    if (close(fd) != 0) {
        fd = -1;
        errf(err, errlen, "close %s: %s", tmp, strerror(errno));
        goto out_unlink;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        errf(err, errlen, "rename to %s: %s", path, strerror(errno));
        goto out_unlink;
    }
    *slash = '\0';
    rc = fsync_dir(path, err, errlen);
    goto out;

out_unlink:
    unlink(tmp);
out:
    if (fd >= 0) {
        close(fd);
    }
    cairn_free(chunk);
    cairn_free(tmp);
    cairn_free(path);
    return rc;
}

static int file_get(struct objstore *s, const char *name, void **data, size_t *len, char *err,
                    size_t errlen)
{
    char *path = path_join(s->dir, name);
    if (path == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int saved = errno;
        cairn_free(path);
        if (saved == ENOENT || saved == ENOTDIR) {
            return OBJSTORE_ENOTFOUND;
        }
        errf(err, errlen, "open: %s", strerror(saved));
        return -1;
    }
    cairn_free(path);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        errf(err, errlen, "fstat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        /* A directory is where names continue, not an object. */
        close(fd);
        return OBJSTORE_ENOTFOUND;
    }
    size_t size = (size_t)st.st_size;
    char *p = cairn_malloc(size + 1);
    if (p == NULL) {
        errf(err, errlen, "out of memory for %zu bytes", size);
        close(fd);
        return -1;
    }
    if (pread_all(fd, p, size, 0) != 0) {
        errf(err, errlen, "read: %s", errno != 0 ? strerror(errno) : "file shrank");
        cairn_free(p);
        close(fd);
        return -1;
    }
    close(fd);
    p[size] = '\0';
    *data = p;
    *len = size;
    return 0;
}

struct file_entry
{
    char *name; /* owned */
    uint64_t size;
};

struct file_listing
{
    struct file_entry *v; /* owned */
    size_t n, cap;
};

static int file_entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct file_entry *)a)->name, ((const struct file_entry *)b)->name);
}

/* Adds every object below ROOT/rel (rel "" or "x/y/"), whose name starts
 * with prefix, to out. */
static int file_walk(const struct objstore *s, struct buf *rel, const char *prefix,
                     struct file_listing *out, char *err, size_t errlen)
{
    char *dir_path = rel->len == 0 ? cairn_strdup(s->dir) : NULL;
    if (rel->len > 0) {
        /* rel ends in '/': join without it. */
        dir_path = cairn_malloc(strlen(s->dir) + 1 + rel->len);
        if (dir_path != NULL) {
            sprintf(dir_path, "%s/%.*s", s->dir, (int)(rel->len - 1), rel->data);
        }
    }
    if (dir_path == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    DIR *d = opendir(dir_path);
    if (d == NULL) {
        int saved = errno;
        if (saved == ENOENT || saved == ENOTDIR) {
            cairn_free(dir_path);
            return 0;
        }
        errf(err, errlen, "opendir %s: %s", dir_path, strerror(saved));
        cairn_free(dir_path);
        return -1;
    }
    int rc = 0;
    size_t prefix_len = strlen(prefix);
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        const char *why;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strchr(e->d_name, '/') != NULL || name_check(e->d_name, 0, &why) != 0) {
            continue; /* temporary files and strangers */
        }
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) {
                continue; /* deleted meanwhile */
            }
            errf(err, errlen, "stat %s/%s: %s", dir_path, e->d_name, strerror(errno));
            rc = -1;
            break;
        }
        size_t mark = rel->len;
        if (buf_append(rel, e->d_name, strlen(e->d_name)) != 0) {
            errf(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        /* rel now holds the candidate's full name. Descend into a directory
         * only if names below it can match the prefix; keep a file only if
         * it matches. */
        size_t n = rel->len;
        if (S_ISDIR(st.st_mode)) {
            size_t cmp = n + 1 < prefix_len ? n + 1 : prefix_len;
            if (buf_append(rel, "/", 1) != 0) {
                errf(err, errlen, "out of memory");
                rc = -1;
            } else if (memcmp(rel->data, prefix, cmp) == 0) {
                rc = file_walk(s, rel, prefix, out, err, errlen);
            }
        } else if (S_ISREG(st.st_mode) && n >= prefix_len &&
                   memcmp(rel->data, prefix, prefix_len) == 0) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? out->cap * 2 : 64;
                struct file_entry *v = cairn_realloc(out->v, cap * sizeof *v);
                if (v == NULL) {
                    errf(err, errlen, "out of memory");
                    rc = -1;
                    rel->len = mark;
                    break;
                }
                out->v = v;
                out->cap = cap;
            }
            char *copy = cairn_malloc(n + 1);
            if (copy == NULL) {
                errf(err, errlen, "out of memory");
                rc = -1;
            } else {
                memcpy(copy, rel->data, n);
                copy[n] = '\0';
                out->v[out->n].name = copy;
                out->v[out->n].size = (uint64_t)st.st_size;
                out->n++;
            }
        }
        rel->len = mark;
    }
    if (rc == 0 && e == NULL && errno != 0) {
        errf(err, errlen, "readdir %s: %s", dir_path, strerror(errno));
        rc = -1;
    }
    closedir(d);
    cairn_free(dir_path);
    return rc;
}

static int file_list(struct objstore *s, const char *prefix, objstore_list_cb cb, void *arg,
                     char *err, size_t errlen)
{
    struct file_listing out = {0};
    struct buf rel;
    buf_init(&rel);
    /* Start at the deepest directory the prefix names in full. */
    const char *slash = strrchr(prefix, '/');
    int rc = 0;
    if (slash != NULL && buf_append(&rel, prefix, (size_t)(slash - prefix) + 1) != 0) {
        errf(err, errlen, "out of memory");
        rc = -1;
    }
    if (rc == 0) {
        rc = file_walk(s, &rel, prefix, &out, err, errlen);
    }
    if (rc == 0) {
        if (out.n > 1) {
            qsort(out.v, out.n, sizeof *out.v, file_entry_cmp);
        }
        for (size_t i = 0; i < out.n; i++) {
            if (cb(arg, out.v[i].name, out.v[i].size) != 0) {
                break;
            }
        }
    }
    for (size_t i = 0; i < out.n; i++) {
        cairn_free(out.v[i].name);
    }
    cairn_free(out.v);
    buf_free(&rel);
    return rc;
}

static int file_delete(struct objstore *s, const char *name, char *err, size_t errlen)
{
    char *path = path_join(s->dir, name);
    if (path == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cairn_free(path);
        return 0; /* not an object: nothing to delete */
    }
    if (unlink(path) != 0) {
        int saved = errno;
        cairn_free(path);
        if (saved == ENOENT || saved == ENOTDIR) {
            return 0;
        }
        errf(err, errlen, "unlink: %s", strerror(saved));
        return -1;
    }
    /* Empty directories stay: removing them would race with a put into
     * the same directory from another store. */
    *strrchr(path, '/') = '\0';
    int rc = fsync_dir(path, err, errlen);
    cairn_free(path);
    return rc;
}

/* --- the interface ------------------------------------------------------ */

static int open_file(struct objstore *s, const char *url, char *err, size_t errlen)
{
    const char *dir = url + strlen("file://");
    if (dir[0] != '/') {
        errf(err, errlen, "%s: a file URL needs an absolute path (file:///abs/dir)", url);
        return -1;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') {
        n--;
    }
    if (n == 1) {
        errf(err, errlen, "%s: the root directory cannot be a store", url);
        return -1;
    }
    s->dir = cairn_malloc(n + 1);
    if (s->dir == NULL) {
        errf(err, errlen, "%s: out of memory", url);
        return -1;
    }
    memcpy(s->dir, dir, n);
    s->dir[n] = '\0';
    struct stat st;
    if (stat(s->dir, &st) != 0) {
        errf(err, errlen, "%s: %s: %s", url, s->dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        errf(err, errlen, "%s: %s is not a directory", url, s->dir);
        return -1;
    }
    return 0;
}

static int open_s3(struct objstore *s, const char *url, const struct objstore_options *opt,
                   char *err, size_t errlen)
{
    const char *rest = url + strlen("s3://");
    size_t bucket_len = strcspn(rest, "/");
    char bucket[64];
    if (bucket_len < 3 || bucket_len > 63) {
        errf(err, errlen, "%s: a bucket name has 3 to 63 characters", url);
        return -1;
    }
    for (size_t i = 0; i < bucket_len; i++) {
        char c = rest[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) {
            errf(err, errlen, "%s: a bucket name is made of [a-z0-9.-]", url);
            return -1;
        }
    }
    memcpy(bucket, rest, bucket_len);
    bucket[bucket_len] = '\0';
    /* The prefix follows the object-name rules, so that ROOT + NAME needs
     * no escaping either; trailing slashes are dropped. */
    const char *prefix = rest + bucket_len;
    while (*prefix == '/') {
        prefix++;
    }
    char prefix_copy[OBJSTORE_NAME_MAX + 1];
    size_t plen = strlen(prefix);
    while (plen > 0 && prefix[plen - 1] == '/') {
        plen--;
    }
    const char *why = NULL;
    if (plen > 100) {
        errf(err, errlen, "%s: a prefix longer than 100 bytes", url);
        return -1;
    }
    memcpy(prefix_copy, prefix, plen);
    prefix_copy[plen] = '\0';
    if (plen > 0 && name_check(prefix_copy, 0, &why) != 0) {
        errf(err, errlen, "%s: bad prefix: %s", url, why);
        return -1;
    }
    char reason[256] = "";
    if (objstore_s3_open(bucket, prefix_copy, opt, &s->s3, reason, sizeof reason) != 0) {
        errf(err, errlen, "%s: %s", url, reason);
        return -1;
    }
    return 0;
}

int objstore_open(const char *url, const struct objstore_options *opt, struct objstore **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    if (url == NULL) {
        errf(err, errlen, "objstore: no URL");
        return -1;
    }
    struct objstore *s = cairn_calloc(1, sizeof *s);
    if (s == NULL || (s->url = cairn_strdup(url)) == NULL) {
        errf(err, errlen, "%s: out of memory", url);
        cairn_free(s);
        return -1;
    }
    int rc;
    s->put_file_rate = opt != NULL ? opt->put_file_rate : 0;
    if (strncmp(url, "file://", 7) == 0) {
        s->kind = OBJSTORE_FILE;
        if (opt != NULL && opt->sse != NULL) {
            errf(err, errlen, "%s: server-side encryption is for s3:// stores", url);
            rc = -1;
        } else {
            rc = open_file(s, url, err, errlen);
        }
    } else if (strncmp(url, "s3://", 5) == 0) {
        s->kind = OBJSTORE_S3;
        rc = open_s3(s, url, opt, err, errlen);
    } else {
        errf(err, errlen, "%s: not a store URL (file:///abs/dir or s3://bucket/prefix)", url);
        rc = -1;
    }
    if (rc != 0) {
        objstore_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

void objstore_close(struct objstore *s)
{
    if (s == NULL) {
        return;
    }
    if (s->s3 != NULL) {
        objstore_s3_close(s->s3);
    }
    cairn_free(s->dir);
    cairn_free(s->url);
    cairn_free(s);
}

const char *objstore_url(const struct objstore *s)
{
    return s->url;
}

uint64_t objstore_requests(const struct objstore *s)
{
    return s->kind == OBJSTORE_S3 ? objstore_s3_requests(s->s3) : 0;
}

void objstore_set_list_page_size(struct objstore *s, unsigned max_keys)
{
    if (s->kind == OBJSTORE_S3) {
        objstore_s3_set_list_page_size(s->s3, max_keys);
    }
}

/* Checks name for op; on failure err says why. */
static int check_name(const struct objstore *s, const char *op, const char *name, int is_prefix,
                      char *err, size_t errlen)
{
    const char *why = NULL;
    if (name == NULL) {
        errf(err, errlen, "%s: %s: no name", s->url, op);
        return -1;
    }
    if (name_check(name, is_prefix, &why) != 0) {
        errf(err, errlen, "%s: %s: invalid %s \"%.64s%s\": %s", s->url, op,
             is_prefix ? "prefix" : "name", name, strlen(name) > 64 ? "..." : "", why);
        return -1;
    }
    return 0;
}

static int put(struct objstore *s, const char *name, const void *data, int fd, size_t len,
               char *err, size_t errlen)
{
    if (check_name(s, "put", name, 0, err, errlen) != 0) {
        return -1;
    }
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    int rc = s->kind == OBJSTORE_FILE ? file_put(s, name, data, fd, len, err, errlen)
                                      : objstore_s3_put(s->s3, name, data, fd, len, err, errlen);
    if (rc != 0) {
        err_wrap(s, "put", name, err, errlen);
        return -1;
    }
    return 0;
}

int objstore_put(struct objstore *s, const char *name, const void *data, size_t len, char *err,
                 size_t errlen)
{
    if (data == NULL && len > 0) {
        errf(err, errlen, "%s: put %s: no data", s->url, name != NULL ? name : "");
        return -1;
    }
    static const char empty[1];
    return put(s, name, data != NULL ? data : empty, -1, len, err, errlen);
}

int objstore_put_file(struct objstore *s, const char *name, int fd, size_t len, char *err,
                      size_t errlen)
{
    if (fd < 0) {
        errf(err, errlen, "%s: put %s: bad file descriptor", s->url, name != NULL ? name : "");
        return -1;
    }
    return put(s, name, NULL, fd, len, err, errlen);
}

int objstore_get(struct objstore *s, const char *name, void **data, size_t *len, char *err,
                 size_t errlen)
{
    *data = NULL;
    *len = 0;
    if (check_name(s, "get", name, 0, err, errlen) != 0) {
        return -1;
    }
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    int rc = s->kind == OBJSTORE_FILE ? file_get(s, name, data, len, err, errlen)
                                      : objstore_s3_get(s->s3, name, data, len, err, errlen);
    if (rc == -1) {
        err_wrap(s, "get", name, err, errlen);
    }
    return rc;
}

int objstore_list(struct objstore *s, const char *prefix, objstore_list_cb cb, void *arg, char *err,
                  size_t errlen)
{
    if (prefix == NULL) {
        prefix = "";
    }
    if (check_name(s, "list", prefix, 1, err, errlen) != 0) {
        return -1;
    }
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    int rc = s->kind == OBJSTORE_FILE ? file_list(s, prefix, cb, arg, err, errlen)
                                      : objstore_s3_list(s->s3, prefix, cb, arg, err, errlen);
    if (rc != 0) {
        err_wrap(s, "list", prefix, err, errlen);
        return -1;
    }
    return 0;
}

int objstore_delete(struct objstore *s, const char *name, char *err, size_t errlen)
{
    if (check_name(s, "delete", name, 0, err, errlen) != 0) {
        return -1;
    }
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    int rc = s->kind == OBJSTORE_FILE ? file_delete(s, name, err, errlen)
                                      : objstore_s3_delete(s->s3, name, err, errlen);
    if (rc != 0) {
        err_wrap(s, "delete", name, err, errlen);
        return -1;
    }
    return 0;
}
