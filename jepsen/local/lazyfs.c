/*
 * cairn-lazyfs: a FUSE file system that can lose what was written but not
 * synced, for the local fault harness's "lose-unsynced" fault (run.sh,
 * jepsen/local/README.md). It stands in for a machine that loses power: the
 * process dies, and of its files only what it had fsynced is left.
 *
 *   cairn-lazyfs [--ignore-sync] BACKING MOUNTPOINT   (stays in the foreground)
 *   echo crash > MOUNTPOINT/.lazyfs     drop every unsynced write
 *   echo sync  > MOUNTPOINT/.lazyfs     count everything as synced
 *   cat MOUNTPOINT/.lazyfs              what the last command did
 *
 * Every operation passes through to the directory BACKING at once, so
 * processes see their writes as on any file system. What the file system
 * adds is a ledger, per file: the file's size when it was last synced, and
 * the content it had then of every 4 KiB page written (or cut off by a
 * truncate) since. fsync and fdatasync of a file, and any write to a file
 * opened with O_SYNC or O_DSYNC, close the file's ledger: that content is
 * now durable. "crash" writes every ledger's old pages back and truncates
 * each file to its synced size, which puts the files where a power cut
 * would have left them on a file system that keeps nothing it was not made
 * to. The caller kills the processes using the mount first: a process still
 * writing would race the rollback.
 *
 * What it does not model. Directory entries (create, rename, unlink, mkdir)
 * are durable at once, as on a journalling file system in ordered mode
 * after its next commit; a lost rename or a lost new file is not simulated.
 * Nor are torn pages: a page is either all old or all new. And a write
 * through O_SYNC or O_DSYNC counts the whole file as synced, where Linux
 * promises only that write's range: lenient where a writer mixes the two on
 * one file, which neither raft nor cairnd does. Those are the
 * limits the harness documents (docs/jepsen.md). The ledger lives in memory:
 * a file written in small pieces without a sync keeps one old page for each
 * page touched, so a process that never syncs grows it.
 *
 * --ignore-sync sabotages the file system for the harness's self-test: syncs
 * close no ledger, so a crash loses everything written since the last "sync"
 * command, as a disk that lies about its cache would. A run on it must be
 * found INVALID (tests/scripts/chaos_selftest.sh).
 *
 * One thread (-s) serves every request, so the ledger needs no lock.
 */
#define FUSE_USE_VERSION 31
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define PAGE_BYTES 4096
/* The control file, at the root of the mount and nowhere in BACKING. */
#define CTL_NAME ".lazyfs"
#define CTL_PATH "/" CTL_NAME
#define CTL_REPORT_BYTES 256

/* One page's content as of the file's last sync (len < PAGE_BYTES for the
 * page that holds the synced end of the file). */
struct old_page
{
    uint64_t index;
    size_t len;
    unsigned char data[PAGE_BYTES];
};

/* The ledger of one file written since its last sync. */
struct ledger
{
    dev_t dev;
    ino_t ino;
    int fd;                  /* owned: the backing file, read-write */
    off_t synced_size;       /* the size the file had at its last sync */
    uint64_t unsynced_bytes; /* written since the last sync, for the report */
    struct old_page **pages; /* owned: an open-addressing table, NULL = free */
    size_t pages_cap;        /* a power of two */
    size_t pages_len;
    struct ledger *next;
};

static int backing_fd = -1;    /* the BACKING directory */
static struct ledger *ledgers; /* every file with unsynced writes */
static char ctl_report[CTL_REPORT_BYTES] = "no command yet\n";
static bool ignore_sync; /* --ignore-sync: the sabotage */

/* "/a/b" -> "a/b", "/" -> "." : paths relative to backing_fd. */
static const char *rel(const char *path)
{
    while (*path == '/') {
        path++;
    }
    return *path == '\0' ? "." : path;
}

/* path is NULL for a file unlinked while open (hard_remove below). */
static bool is_ctl(const char *path)
{
    return path != NULL && strcmp(path, CTL_PATH) == 0;
}

/* The control file's handle carries this in place of a descriptor. */
#define CTL_FH UINT64_MAX

static bool is_ctl_fh(const struct fuse_file_info *fi)
{
    return fi->fh == CTL_FH;
}

/* --- the ledger --- */

/* The link that points at the ledger of the file (dev, ino): *link is NULL
 * when the file has none. */
static struct ledger **ledger_link(dev_t dev, ino_t ino)
{
    struct ledger **link = &ledgers;
    while (*link != NULL && ((*link)->dev != dev || (*link)->ino != ino)) {
        link = &(*link)->next;
    }
    return link;
}

/* The ledger of the file open as fd, made if the file has none; NULL with
 * errno set when it cannot be. */
static struct ledger *ledger_get(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return NULL;
    }
    struct ledger *l = *ledger_link(st.st_dev, st.st_ino);
    if (l != NULL) {
        return l;
    }
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        return NULL;
    }
    /* Our own descriptor: the process's may be read-only for a truncate,
     * and it may be closed long before a crash. */
    char self[64];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    l->fd = open(self, O_RDWR | O_CLOEXEC);
    if (l->fd < 0) {
        free(l);
        return NULL;
    }
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    l->synced_size = st.st_size;
    l->pages_cap = 16;
    l->pages = calloc(l->pages_cap, sizeof *l->pages);
    if (l->pages == NULL) {
        close(l->fd);
        free(l);
        return NULL;
    }
    l->next = ledgers;
    ledgers = l;
    return l;
}

static size_t page_slot(const struct ledger *l, uint64_t index)
{
    size_t mask = l->pages_cap - 1;
    size_t i = (size_t)(index * 0x9e3779b97f4a7c15ull) & mask;
    while (l->pages[i] != NULL && l->pages[i]->index != index) {
        i = (i + 1) & mask;
    }
    return i;
}

static int pages_grow(struct ledger *l)
{
    struct old_page **old = l->pages;
    size_t old_cap = l->pages_cap;
    l->pages_cap = old_cap * 2;
    l->pages = calloc(l->pages_cap, sizeof *l->pages);
    if (l->pages == NULL) {
        l->pages = old;
        l->pages_cap = old_cap;
        return -ENOMEM;
    }
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i] != NULL) {
            l->pages[page_slot(l, old[i]->index)] = old[i];
        }
    }
    free(old);
    return 0;
}

/* Keeps the synced content of every page of [off, off + len) that lies below
 * the synced size and is not kept yet. Its current content is that content:
 * a page below the synced size changes only through a write or a truncate,
 * and both come here first. */
static int ledger_keep(struct ledger *l, off_t off, off_t len)
{
    if (len <= 0 || off >= l->synced_size) {
        return 0;
    }
    off_t end = off + len < l->synced_size ? off + len : l->synced_size;
    for (uint64_t p = (uint64_t)off / PAGE_BYTES; (off_t)(p * PAGE_BYTES) < end; p++) {
        if ((l->pages_len + 1) * 2 > l->pages_cap) {
            int rv = pages_grow(l);
            if (rv != 0) {
                return rv;
            }
        }
        size_t slot = page_slot(l, p);
        if (l->pages[slot] != NULL) {
            continue;
        }
        struct old_page *page = malloc(sizeof *page);
        if (page == NULL) {
            return -ENOMEM;
        }
        off_t start = (off_t)(p * PAGE_BYTES);
        off_t want = l->synced_size - start < PAGE_BYTES ? l->synced_size - start : PAGE_BYTES;
        ssize_t n = pread(l->fd, page->data, (size_t)want, start);
        if (n < 0) {
            int err = errno;
            free(page);
            return -err;
        }
        /* A file already cut below its synced size reads short here; the
         * cut part was kept by the truncate that cut it, so this page is
         * the kept one or lies in what the cut left. Zeros are right for
         * the rest: a truncate-and-extend reads back as zeros. */
        memset(page->data + n, 0, (size_t)(want - n));
        page->index = p;
        page->len = (size_t)want;
        l->pages[slot] = page;
        l->pages_len++;
    }
    return 0;
}

static void ledger_free(struct ledger *l)
{
    for (size_t i = 0; i < l->pages_cap; i++) {
        free(l->pages[i]);
    }
    free(l->pages);
    close(l->fd);
    free(l);
}

/* The file open as fd is synced: its ledger closes. */
static void ledger_sync_fd(int fd)
{
    struct stat st;
    if (ignore_sync || fstat(fd, &st) != 0) {
        return;
    }
    struct ledger **link = ledger_link(st.st_dev, st.st_ino);
    struct ledger *l = *link;
    if (l != NULL) {
        *link = l->next;
        ledger_free(l);
    }
}

/* Every ledger rolled back (crash) or closed (sync); the report says what. */
static int ledger_all(bool crash)
{
    unsigned files = 0;
    uint64_t pages = 0, bytes = 0, cut = 0;
    int err = 0;
    while (ledgers != NULL) {
        struct ledger *l = ledgers;
        ledgers = l->next;
        struct stat st;
        bool stat_ok = fstat(l->fd, &st) == 0;
        if (stat_ok && st.st_nlink == 0) {
            /* Unlinked since: nothing of it is left to roll back. */
            ledger_free(l);
            continue;
        }
        files++;
        bytes += l->unsynced_bytes;
        if (crash) {
            if (stat_ok && st.st_size > l->synced_size) {
                cut += (uint64_t)(st.st_size - l->synced_size);
            }
            for (size_t i = 0; i < l->pages_cap; i++) {
                struct old_page *page = l->pages[i];
                if (page == NULL) {
                    continue;
                }
                pages++;
                if (pwrite(l->fd, page->data, page->len, (off_t)(page->index * PAGE_BYTES)) !=
                    (ssize_t)page->len) {
                    err = errno != 0 ? errno : EIO;
                }
            }
            if (ftruncate(l->fd, l->synced_size) != 0) {
                err = errno;
            }
        }
        ledger_free(l);
    }
    if (crash) {
        snprintf(ctl_report, sizeof ctl_report,
                 "crash: %u files rolled back, %" PRIu64 " bytes of unsynced writes lost, %" PRIu64
                 " pages restored, %" PRIu64 " bytes cut%s\n",
                 files, bytes, pages, cut, err != 0 ? " (with errors)" : "");
    } else {
        snprintf(ctl_report, sizeof ctl_report,
                 "sync: %u files, %" PRIu64 " bytes of unsynced writes kept\n", files, bytes);
    }
    return err != 0 ? -err : 0;
}

/* --- the operations --- */

static void *lazy_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* No caching of names or attributes, so that the size a rollback
     * leaves is the size the next stat sees; data pages are dropped on
     * every open (no keep_cache), so the restarted process reads the
     * rolled-back content. */
    cfg->use_ino = 1;
    cfg->entry_timeout = 0;
    cfg->attr_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->hard_remove = 1;
    return NULL;
}

static int lazy_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        memset(st, 0, sizeof *st);
        st->st_mode = S_IFREG | 0600;
        st->st_nlink = 1;
        st->st_size = (off_t)strlen(ctl_report);
        return 0;
    }
    int rv = fi != NULL ? fstat((int)fi->fh, st)
                        : fstatat(backing_fd, rel(path), st, AT_SYMLINK_NOFOLLOW);
    return rv == 0 ? 0 : -errno;
}

static int lazy_access(const char *path, int mask)
{
    if (is_ctl(path)) {
        return 0;
    }
    return faccessat(backing_fd, rel(path), mask, 0) == 0 ? 0 : -errno;
}

static int lazy_readlink(const char *path, char *buf, size_t size)
{
    ssize_t n = readlinkat(backing_fd, rel(path), buf, size - 1);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    return 0;
}

static int lazy_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
                        struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    int fd = openat(backing_fd, rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int err = errno;
        close(fd);
        return -err;
    }
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, 0, 0) != 0) {
            break;
        }
    }
    closedir(dir);
    return 0;
}

static int lazy_mkdir(const char *path, mode_t mode)
{
    return mkdirat(backing_fd, rel(path), mode) == 0 ? 0 : -errno;
}

static int lazy_unlink(const char *path)
{
    if (is_ctl(path)) {
        return -EPERM;
    }
    return unlinkat(backing_fd, rel(path), 0) == 0 ? 0 : -errno;
}

static int lazy_rmdir(const char *path)
{
    return unlinkat(backing_fd, rel(path), AT_REMOVEDIR) == 0 ? 0 : -errno;
}

static int lazy_symlink(const char *target, const char *path)
{
    return symlinkat(target, backing_fd, rel(path)) == 0 ? 0 : -errno;
}

static int lazy_rename(const char *from, const char *to, unsigned int flags)
{
    if (is_ctl(from) || is_ctl(to)) {
        return -EPERM;
    }
    return renameat2(backing_fd, rel(from), backing_fd, rel(to), flags) == 0 ? 0 : -errno;
}

static int lazy_link(const char *from, const char *to)
{
    return linkat(backing_fd, rel(from), backing_fd, rel(to), 0) == 0 ? 0 : -errno;
}

static int lazy_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    int rv = fi != NULL ? fchmod((int)fi->fh, mode) : fchmodat(backing_fd, rel(path), mode, 0);
    return rv == 0 ? 0 : -errno;
}

static int lazy_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    int rv = fi != NULL ? fchown((int)fi->fh, uid, gid)
                        : fchownat(backing_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW);
    return rv == 0 ? 0 : -errno;
}

static int lazy_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        return 0;
    }
    int fd = fi != NULL ? (int)fi->fh : openat(backing_fd, rel(path), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rv = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rv = -errno;
    } else if (size != st.st_size) {
        struct ledger *l = ledger_get(fd);
        if (l == NULL) {
            rv = -errno;
        } else if (size < st.st_size) {
            rv = ledger_keep(l, size, st.st_size - size);
        }
        if (rv == 0 && ftruncate(fd, size) != 0) {
            rv = -errno;
        }
    }
    if (fi == NULL) {
        close(fd);
    }
    return rv;
}

static int lazy_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        return 0;
    }
    int rv = fi != NULL ? futimens((int)fi->fh, tv)
                        : utimensat(backing_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW);
    return rv == 0 ? 0 : -errno;
}

/* The backing file is opened without O_DIRECT (the kernel's buffers need
 * not be aligned) and without O_SYNC or O_DSYNC: BACKING's own durability
 * does not matter, only the ledger's idea of it. fi->flags keeps them. */
static int backing_flags(int flags)
{
    return (flags & ~(O_DIRECT | O_SYNC | O_DSYNC)) | O_CLOEXEC;
}

static int lazy_open(const char *path, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        fi->direct_io = 1;
        fi->fh = CTL_FH;
        return 0;
    }
    int fd = openat(backing_fd, rel(path), backing_flags(fi->flags));
    if (fd < 0) {
        return -errno;
    }
    fi->fh = (uint64_t)fd;
    return 0;
}

static int lazy_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        return -EEXIST;
    }
    int fd = openat(backing_fd, rel(path), backing_flags(fi->flags) | O_CREAT, mode);
    if (fd < 0) {
        return -errno;
    }
    fi->fh = (uint64_t)fd;
    return 0;
}

static int lazy_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    if (is_ctl(path)) {
        size_t len = strlen(ctl_report);
        if ((size_t)off >= len) {
            return 0;
        }
        size_t n = len - (size_t)off < size ? len - (size_t)off : size;
        memcpy(buf, ctl_report + off, n);
        return (int)n;
    }
    ssize_t n = pread((int)fi->fh, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int ctl_command(const char *buf, size_t size)
{
    char cmd[16] = {0};
    size_t n = size < sizeof cmd - 1 ? size : sizeof cmd - 1;
    memcpy(cmd, buf, n);
    cmd[strcspn(cmd, " \n")] = '\0';
    if (strcmp(cmd, "crash") == 0) {
        return ledger_all(true);
    }
    if (strcmp(cmd, "sync") == 0) {
        return ledger_all(false);
    }
    snprintf(ctl_report, sizeof ctl_report, "unknown command \"%s\" (crash or sync)\n", cmd);
    return -EINVAL;
}

static int lazy_write(const char *path, const char *buf, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
    if (is_ctl_fh(fi)) {
        int rv = ctl_command(buf, size);
        return rv != 0 ? rv : (int)size;
    }
    int fd = (int)fi->fh;
    bool sync = (fi->flags & (O_SYNC | O_DSYNC)) != 0 && !ignore_sync;
    struct ledger *l = NULL;
    if (!sync) {
        if (fi->flags & O_APPEND) {
            struct stat st;
            if (fstat(fd, &st) != 0) {
                return -errno;
            }
            off = st.st_size;
        }
        l = ledger_get(fd);
        if (l == NULL) {
            return -errno;
        }
        int rv = ledger_keep(l, off, (off_t)size);
        if (rv != 0) {
            return rv;
        }
    }
    ssize_t n = pwrite(fd, buf, size, off);
    if (n < 0) {
        return -errno;
    }
    if (sync) {
        ledger_sync_fd(fd);
    } else {
        l->unsynced_bytes += (uint64_t)n;
    }
    return (int)n;
}

static int lazy_statfs(const char *path, struct statvfs *st)
{
    return fstatvfs(backing_fd, st) == 0 ? 0 : -errno;
}

static int lazy_release(const char *path, struct fuse_file_info *fi)
{
    if (!is_ctl_fh(fi)) {
        close((int)fi->fh);
    }
    return 0;
}

static int lazy_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    if (!is_ctl_fh(fi)) {
        ledger_sync_fd((int)fi->fh);
    }
    return 0;
}

static int lazy_fallocate(const char *path, int mode, off_t off, off_t len,
                          struct fuse_file_info *fi)
{
    if (is_ctl_fh(fi)) {
        return -EOPNOTSUPP;
    }
    int fd = (int)fi->fh;
    if (mode != 0 && mode != FALLOC_FL_KEEP_SIZE) {
        /* Holes punched or ranges zeroed change content: keep it first. */
        struct ledger *l = ledger_get(fd);
        if (l == NULL) {
            return -errno;
        }
        int rv = ledger_keep(l, off, len);
        if (rv != 0) {
            return rv;
        }
    } else if (ledger_get(fd) == NULL) {
        /* A size that grows is undone by the crash's truncate. */
        return -errno;
    }
    return fallocate(fd, mode, off, len) == 0 ? 0 : -errno;
}

static const struct fuse_operations lazy_ops = {
    .init = lazy_init,
    .getattr = lazy_getattr,
    .access = lazy_access,
    .readlink = lazy_readlink,
    .readdir = lazy_readdir,
    .mkdir = lazy_mkdir,
    .unlink = lazy_unlink,
    .rmdir = lazy_rmdir,
    .symlink = lazy_symlink,
    .rename = lazy_rename,
    .link = lazy_link,
    .chmod = lazy_chmod,
    .chown = lazy_chown,
    .truncate = lazy_truncate,
    .utimens = lazy_utimens,
    .open = lazy_open,
    .create = lazy_create,
    .read = lazy_read,
    .write = lazy_write,
    .statfs = lazy_statfs,
    .release = lazy_release,
    .fsync = lazy_fsync,
    .fallocate = lazy_fallocate,
};

int main(int argc, char **argv)
{
    int arg = 1;
    if (argc > 1 && strcmp(argv[1], "--ignore-sync") == 0) {
        ignore_sync = true;
        arg++;
    }
    if (argc - arg != 2 || argv[arg][0] == '-' || argv[arg + 1][0] == '-') {
        fprintf(stderr,
                "usage: cairn-lazyfs [--ignore-sync] BACKING MOUNTPOINT\n"
                "  then: echo crash > MOUNTPOINT/" CTL_NAME " drops every write not synced\n");
        return 2;
    }
    backing_fd = open(argv[arg], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (backing_fd < 0) {
        fprintf(stderr, "cairn-lazyfs: %s: %s\n", argv[arg], strerror(errno));
        return 1;
    }
    /* Foreground, one thread; any user may use the mount. */
    char *fuse_argv[] = {
        argv[0], argv[arg + 1], "-f", "-s", "-o", "fsname=cairn-lazyfs,allow_other", NULL};
    return fuse_main(6, fuse_argv, &lazy_ops, NULL);
}
