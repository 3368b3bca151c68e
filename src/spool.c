#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "log.h"
#include "mpread.h"

#define BASE_FILE "base"
#define SUFFIX ".spool"

static void file_path(const char *dir, uint64_t first, char *out, size_t len)
{
    snprintf(out, len, "%s/%020" PRIu64 SUFFIX, dir, first);
}

int spool_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int pack_cb(void *data, const char *bytes, size_t len)
{
    return buf_append(data, bytes, len) == 0 ? 0 : -1;
}

int spool_record_encode(struct buf *out, const struct spool_record *r)
{
    msgpack_packer pk;
    int rv = 0;
    msgpack_packer_init(&pk, out, pack_cb);
    rv |= msgpack_pack_array(&pk, 5);
    rv |= msgpack_pack_uint64(&pk, r->index);
    rv |= msgpack_pack_int64(&pk, r->time_ms);
    rv |= msgpack_pack_uint64(&pk, r->revision);
    rv |= msgpack_pack_uint64(&pk, r->hash);
    rv |= msgpack_pack_bin(&pk, r->entry_len);
    rv |= msgpack_pack_bin_body(&pk, r->entry, r->entry_len);
    return rv == 0 ? 0 : -1;
}

bool spool_record_decode(const char *data, size_t len, struct spool_record *r)
{
    struct mp_reader mr;
    uint32_t n;
    uint32_t i;
    mp_init(&mr, data, len);
    if (!mp_array(&mr, &n) || n < 5 || !mp_uint(&mr, &r->index) || !mp_int(&mr, &r->time_ms) ||
        !mp_uint(&mr, &r->revision) || !mp_uint(&mr, &r->hash) ||
        !mp_bytes(&mr, &r->entry, &r->entry_len)) {
        return false;
    }
    for (i = 5; i < n; i++) {
        if (!mp_skip(&mr)) { /* a later version's fields */
            return false;
        }
    }
    return mp_done(&mr);
}

/* Walk the records of one file's bytes; returns the length of the valid
 * prefix (a torn tail is not counted). */
static size_t scan(const char *data, size_t len, uint64_t *first, uint64_t *last, spool_read_cb cb,
                   void *arg, uint64_t after, uint64_t through, int *cb_rv)
{
    size_t off = 0;
    while (len - off >= 4) {
        const unsigned char *p = (const unsigned char *)data + off;
        size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
        struct spool_record r;
        if (n > len - off - 4 || !spool_record_decode(data + off + 4, n, &r)) {
            break;
        }
        if (first != NULL && *first == 0) {
            *first = r.index;
        }
        if (last != NULL) {
            *last = r.index;
        }
        if (cb != NULL && r.index > after && r.index <= through) {
            *cb_rv = cb(arg, &r);
            if (*cb_rv != 0) {
                return off;
            }
        }
        off += 4 + n;
    }
    return off;
}

int spool_read_file(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *p;
    size_t got = 0;
    if (fd < 0) {
        return -1;
    }
    if (fstat(fd, &st) != 0) {
        close(fd);
        return -1;
    }
    p = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (p == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, p + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    *data = p;
    *len = got;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The first indexes of the files in dir, ascending (malloc'd). */
static int list_files(const char *dir, uint64_t **out, unsigned *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t *v = NULL;
    unsigned n = 0;
    unsigned cap = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char *end;
        unsigned long long first;
        if (len != 20 + strlen(SUFFIX) || strcmp(e->d_name + 20, SUFFIX) != 0) {
            continue;
        }
        first = strtoull(e->d_name, &end, 10);
        if (end != e->d_name + 20) {
            continue;
        }
        if (n == cap) {
            uint64_t *nv;
            cap = cap == 0 ? 16 : cap * 2;
            nv = realloc(v, cap * sizeof(*v));
            if (nv == NULL) {
                free(v);
                closedir(d);
                return -1;
            }
            v = nv;
        }
        v[n++] = first;
    }
    closedir(d);
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_u64);
    }
    *out = v;
    *n_out = n;
    return 0;
}

static int add_file(struct spool *sp, uint64_t first, uint64_t bytes)
{
    if (sp->n_files == sp->cap_files) {
        unsigned cap = sp->cap_files == 0 ? 16 : sp->cap_files * 2;
        struct spool_file *f = realloc(sp->files, cap * sizeof(*f));
        if (f == NULL) {
            return -1;
        }
        sp->files = f;
        sp->cap_files = cap;
    }
    sp->files[sp->n_files].first = first;
    sp->files[sp->n_files].bytes = bytes;
    sp->n_files++;
    return 0;
}

static void write_base(struct spool *sp)
{
    char path[4096];
    char tmp[4096];
    char text[32];
    int fd;
    int len = snprintf(text, sizeof(text), "%" PRIu64 "\n", sp->base);
    snprintf(path, sizeof(path), "%s/" BASE_FILE, sp->dir);
    snprintf(tmp, sizeof(tmp), "%s/" BASE_FILE ".tmp", sp->dir);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_warn("backlog: cannot write %s: %s", tmp, strerror(errno));
        return;
    }
    if (write(fd, text, (size_t)len) != len || fdatasync(fd) != 0) {
        /* Keep the base file as it was: a partial one would replace it. */
        log_warn("backlog: cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        log_warn("backlog: cannot rename %s: %s", tmp, strerror(errno));
    }
}

int spool_open(struct spool *sp, const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
    uint64_t *firsts = NULL;
    unsigned n = 0;
    unsigned i;
    char path[4096];
    FILE *f;
    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
    buf_init(&sp->pending);
    sp->max_bytes = max_bytes;
    sp->dir = strdup(dir);
    if (sp->dir == NULL) {
        errf(err, errlen, "out of memory");
        return -1;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        errf(err, errlen, "backlog directory %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof(path), "%s/" BASE_FILE, dir);
    f = fopen(path, "r");
    if (f != NULL) {
        unsigned long long b = 0;
        if (fscanf(f, "%llu", &b) == 1) {
            sp->base = b;
        }
        fclose(f);
    }
    if (list_files(dir, &firsts, &n) != 0) {
        errf(err, errlen, "backlog directory %s: %s", dir, strerror(errno));
        return -1;
    }
    sp->last = sp->base;
    for (i = 0; i < n; i++) {
        struct stat st;
        file_path(dir, firsts[i], path, sizeof(path));
        if (firsts[i] <= sp->base || stat(path, &st) != 0) {
            unlink(path); /* before the base: left by a reset that crashed */
            continue;
        }
        if (add_file(sp, firsts[i], (uint64_t)st.st_size) != 0) {
            free(firsts);
            errf(err, errlen, "out of memory");
            return -1;
        }
        sp->bytes += (uint64_t)st.st_size;
    }
    free(firsts);
    if (sp->n_files > 0) {
        /* Only the newest file can have a torn tail; it gives last too. */
        struct spool_file *nf = &sp->files[sp->n_files - 1];
        char *data;
        size_t len;
        uint64_t first = 0;
        uint64_t last = 0;
        size_t valid;
        file_path(dir, nf->first, path, sizeof(path));
        if (spool_read_file(path, &data, &len) != 0) {
            errf(err, errlen, "backlog file %s: %s", path, strerror(errno));
            return -1;
        }
        valid = scan(data, len, &first, &last, NULL, NULL, 0, 0, NULL);
        free(data);
        if (valid < len) {
            log_warn("backlog: cutting a torn record (%zu bytes) off %s", len - valid, path);
            if (truncate(path, (off_t)valid) != 0) {
                errf(err, errlen, "backlog file %s: %s", path, strerror(errno));
                return -1;
            }
            sp->bytes -= len - valid;
            nf->bytes = valid;
        }
        if (last == 0) {
            /* Empty newest file: its records were all torn. */
            unlink(path);
            sp->n_files--;
            if (sp->n_files > 0) {
                /* An older file ends before this one's first index. */
                sp->last = nf->first - 1;
            }
        } else {
            sp->last = last;
        }
    }
    return 0;
}

void spool_close(struct spool *sp)
{
    spool_flush(sp, false);
    if (sp->fd >= 0) {
        close(sp->fd);
    }
    free(sp->files);
    free(sp->dir);
    buf_free(&sp->pending);
    memset(sp, 0, sizeof(*sp));
    sp->fd = -1;
}

static void drop_oldest(struct spool *sp)
{
    char path[4096];
    struct spool_file *f = &sp->files[0];
    file_path(sp->dir, f->first, path, sizeof(path));
    unlink(path);
    sp->bytes -= f->bytes;
    if (sp->n_files > 1) {
        sp->base = sp->files[1].first - 1;
    } else {
        sp->base = sp->last;
        if (sp->fd >= 0) {
            close(sp->fd);
            sp->fd = -1;
        }
    }
    memmove(sp->files, sp->files + 1, (sp->n_files - 1) * sizeof(*sp->files));
    sp->n_files--;
    sp->gaps++;
    write_base(sp);
}

int spool_append(struct spool *sp, const struct spool_record *r)
{
    size_t at;
    unsigned char len[4];
    size_t n;
    if (r->index <= sp->last) {
        return 0; /* spooled before a restart */
    }
    if (sp->fd < 0 || (sp->n_files > 0 && sp->files[sp->n_files - 1].bytes >= SPOOL_FILE_MAX)) {
        char path[4096];
        if (spool_flush(sp, false) != 0) {
            return -1;
        }
        if (sp->fd >= 0) {
            close(sp->fd);
        }
        file_path(sp->dir, r->index, path, sizeof(path));
        sp->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (sp->fd < 0) {
            log_warn("backlog: cannot create %s: %s", path, strerror(errno));
            return -1;
        }
        if (add_file(sp, r->index, 0) != 0) {
            return -1;
        }
    }
    at = sp->pending.len; /* after the roll-over above, which flushes */
    if (buf_append(&sp->pending, "\0\0\0\0", 4) != 0 || spool_record_encode(&sp->pending, r) != 0) {
        sp->pending.len = at;
        return -1;
    }
    n = sp->pending.len - at - 4;
    len[0] = (unsigned char)(n >> 24);
    len[1] = (unsigned char)(n >> 16);
    len[2] = (unsigned char)(n >> 8);
    len[3] = (unsigned char)n;
    memcpy(sp->pending.data + at, len, 4);
    sp->files[sp->n_files - 1].bytes += 4 + n;
    sp->bytes += 4 + n;
    sp->last = r->index;
    while (sp->bytes > sp->max_bytes && sp->n_files > 1) {
        drop_oldest(sp); /* a gap: dr.c says so when it matters */
    }
    return 0;
}

void spool_reset(struct spool *sp, uint64_t base)
{
    sp->pending.len = 0;
    if (sp->fd >= 0) {
        close(sp->fd);
        sp->fd = -1;
    }
    sp->base = base;
    sp->last = base;
    write_base(sp); /* first: a crash in between leaves files below it */
    while (sp->n_files > 0) {
        char path[4096];
        file_path(sp->dir, sp->files[sp->n_files - 1].first, path, sizeof(path));
        unlink(path);
        sp->n_files--;
    }
    sp->bytes = 0;
    sp->gaps++;
}

int spool_flush(struct spool *sp, bool sync)
{
    size_t off = 0;
    while (off < sp->pending.len) {
        ssize_t n = write(sp->fd, sp->pending.data + off, sp->pending.len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            log_warn("backlog: write failed (%s); starting over after the gap", strerror(errno));
            spool_reset(sp, sp->last);
            return -1;
        }
        off += (size_t)n;
    }
    sp->pending.len = 0;
    if (sync && sp->fd >= 0 && fdatasync(sp->fd) != 0) {
        log_warn("backlog: fdatasync failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void spool_trim(struct spool *sp, uint64_t through)
{
    /* File i holds indexes below file i + 1's first. */
    while (sp->n_files > 1 && sp->files[1].first - 1 <= through) {
        char path[4096];
        file_path(sp->dir, sp->files[0].first, path, sizeof(path));
        unlink(path);
        sp->bytes -= sp->files[0].bytes;
        memmove(sp->files, sp->files + 1, (sp->n_files - 1) * sizeof(*sp->files));
        sp->n_files--;
    }
}

int spool_read(const char *dir, uint64_t after, uint64_t through, spool_read_cb cb, void *arg,
               char *err, size_t errlen)
{
    uint64_t *firsts = NULL;
    unsigned n = 0;
    unsigned i;
    uint64_t next = after; /* every index up to here was seen */
    int rv = 0;
    if (list_files(dir, &firsts, &n) != 0) {
        errf(err, errlen, "backlog directory %s: %s", dir, strerror(errno));
        return -1;
    }
    for (i = 0; i < n && rv == 0; i++) {
        char path[4096];
        char *data;
        size_t len;
        int cb_rv = 0;
        uint64_t last = 0;
        if (i + 1 < n && firsts[i + 1] - 1 <= after) {
            continue; /* wholly before the range */
        }
        if (firsts[i] > through) {
            break;
        }
        file_path(dir, firsts[i], path, sizeof(path));
        if (spool_read_file(path, &data, &len) != 0) {
            errf(err, errlen, "backlog file %s: %s", path, strerror(errno));
            rv = -1;
            break;
        }
        scan(data, len, NULL, &last, cb, arg, after, through, &cb_rv);
        free(data);
        rv = cb_rv;
        if (last > next) {
            next = last;
        }
    }
    free(firsts);
    if (rv == 0 && next < through) {
        errf(err, errlen, "backlog ends at index %" PRIu64 ", before %" PRIu64, next, through);
        rv = -1;
    }
    return rv;
}
