/*
 * it_bad_start: cairnd refuses to start on a bad configuration or a bad
 * data directory, exits non-zero, and says why on stderr in words an
 * operator can act on:
 *
 *   unknown flag                  "unknown flag --no-such-flag"
 *   missing --id                  "--id is required"
 *   --initial-cluster without     "does not list this node"
 *     this node
 *   data dir is a regular file    "is not a directory"
 *   data dir not writable         "not writable"   (read-only tmpfs as root)
 *   disk full                     "disk is full"   (a full 2 MiB tmpfs)
 *   client port in use            "already in use"
 *   raft port in use              "already in use"
 *   data dir of another node      "belongs to node 1"
 *
 * Each case also checks that the process exited (not crashed) and left no
 * sanitizer report. The mount-based cases need root (or CAP_SYS_ADMIN); as
 * another user they fall back to chmod 0500 (not writable) or are skipped
 * with a message (disk full).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 20000

static unsigned g_case;

/* Run cairnd with args; assert it exits with a non-zero code and that its
 * output contains every one of the NULL-terminated words. */
static void expect_refusal(const char *what, const char *const *args, const char *const *words)
{
    char out[IT_PATH_MAX];
    char *text;
    int status;
    size_t i;
    g_case++;
    snprintf(out, sizeof(out), "%s/case%u.out", it_dir(), g_case);
    status = it_run_cairnd(args, out, RUN_TIMEOUT_MS);
    text = it_read_file(out, 0);
    IT_ASSERT(text != NULL, "%s: no output file", what);
    IT_ASSERT(WIFEXITED(status), "%s: cairnd did not exit normally (status %#x):\n%s", what, status,
              text);
    IT_ASSERT(WEXITSTATUS(status) != 0, "%s: cairnd exited 0:\n%s", what, text);
    for (i = 0; words[i] != NULL; i++) {
        IT_ASSERT(strstr(text, words[i]) != NULL, "%s: output lacks \"%s\":\n%s", what, words[i],
                  text);
    }
    it_check_sanitizer_reports(out);
    /* Show the operator's view: the last line is the error. */
    {
        char *line = strstr(text, "cairnd: ");
        char *nl = line != NULL ? strchr(line, '\n') : NULL;
        if (nl != NULL) {
            *nl = '\0';
        }
        it_log("%s: exit %d, \"%s\"", what, WEXITSTATUS(status), line != NULL ? line : text);
    }
    free(text);
}

static bool try_mount_tmpfs(const char *dir, const char *opts)
{
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0) {
        it_log("mount tmpfs (%s) on %s: %s", opts, dir, strerror(errno));
        return false;
    }
    it_track_mount(dir);
    return true;
}

static void unmount(const char *dir)
{
    IT_ASSERT(umount2(dir, MNT_DETACH) == 0, "umount %s: %s", dir, strerror(errno));
    it_untrack_mount(dir);
}

static int listen_on(int port)
{
    struct sockaddr_in a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    IT_ASSERT(fd >= 0, "socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    IT_ASSERT(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %d: %s", port,
              strerror(errno));
    IT_ASSERT(listen(fd, 1) == 0, "listen");
    return fd;
}

int main(void)
{
    char dir[IT_PATH_MAX];
    char file[IT_PATH_MAX];
    char raft_addr[32];
    char client_addr[32];
    int fd;

    it_init("it_bad_start", IT_TIMEOUT_S);
    snprintf(raft_addr, sizeof(raft_addr), "127.0.0.1:%d", it_pick_port());
    snprintf(client_addr, sizeof(client_addr), "127.0.0.1:%d", it_pick_port());
    snprintf(dir, sizeof(dir), "%s/data", it_dir());

    {
        const char *args[] = {"--id", "1", "--data-dir", dir, "--no-such-flag", "1", NULL};
        const char *words[] = {"unknown flag --no-such-flag", NULL};
        expect_refusal("unknown flag", args, words);
    }
    {
        /* The address is checked before anything is opened: no crash while
         * unwinding a half-started node (uv_close on a handle never made). */
        const char *args[] = {"--id",        "1",       "--data-dir",    dir,
                              "--raft-addr", raft_addr, "--client-addr", "127.0.0.1:70x1",
                              NULL};
        const char *words[] = {"--client-addr \"127.0.0.1:70x1\" is not an IPv4 HOST:PORT", NULL};
        expect_refusal("bad client address", args, words);
    }
    {
        const char *args[] = {"--id",
                              "1",
                              "--data-dir",
                              dir,
                              "--raft-addr",
                              raft_addr,
                              "--client-addr",
                              client_addr,
                              "--backup-url",
                              "s3://bucket",
                              "--backup-multipart-threshold",
                              "1048576",
                              NULL};
        const char *words[] = {"--backup-multipart-threshold 1048576: at least 5 MiB", NULL};
        expect_refusal("multipart threshold below 5 MiB", args, words);
    }
    {
        const char *args[] = {"--data-dir", dir, NULL};
        const char *words[] = {"--id is required", NULL};
        expect_refusal("missing --id", args, words);
    }
    {
        const char *args[] = {"--id", "0", "--data-dir", dir, NULL};
        const char *words[] = {"--id is required and must be a positive integer", NULL};
        expect_refusal("--id 0", args, words);
    }

    {
        char sub[IT_PATH_MAX];
        const char *args[] = {"--id",
                              "1",
                              "--data-dir",
                              sub,
                              "--raft-addr",
                              raft_addr,
                              "--client-addr",
                              client_addr,
                              "--initial-cluster",
                              "2=127.0.0.1:1/127.0.0.1:2",
                              NULL};
        const char *words[] = {"--initial-cluster does not list this node", NULL};
        IT_FORMAT(sub, "%s/not-listed", it_dir());
        expect_refusal("--initial-cluster without this node", args, words);
    }

    /* A data directory that is a regular file. */
    snprintf(file, sizeof(file), "%s/a-file", it_dir());
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    IT_ASSERT(fd >= 0 && write(fd, "x", 1) == 1, "create %s", file);
    close(fd);
    {
        const char *args[] = {"--id",        "1",       "--data-dir",    file,
                              "--raft-addr", raft_addr, "--client-addr", client_addr,
                              NULL};
        const char *words[] = {file, "is not a directory", NULL};
        expect_refusal("data dir is a regular file", args, words);
    }

    /* A data directory that cannot be written. Root ignores permission bits,
     * so as root the directory is a read-only tmpfs. */
    {
        char ro[IT_PATH_MAX];
        const char *args[] = {"--id",        "1",       "--data-dir",    ro,
                              "--raft-addr", raft_addr, "--client-addr", client_addr,
                              NULL};
        const char *words[] = {ro, "not writable", NULL};
        snprintf(ro, sizeof(ro), "%s/readonly", it_dir());
        IT_ASSERT(mkdir(ro, 0755) == 0, "mkdir %s", ro);
        if (geteuid() == 0 && try_mount_tmpfs(ro, "ro,size=1m")) {
            expect_refusal("data dir on a read-only file system", args, words);
            unmount(ro);
        } else {
            IT_ASSERT(geteuid() != 0, "as root, mounting a read-only tmpfs must work");
            IT_ASSERT(chmod(ro, 0500) == 0, "chmod %s", ro);
            expect_refusal("data dir without write permission", args, words);
            chmod(ro, 0755);
        }
    }

    /* A full disk: a 2 MiB tmpfs filled up by a file. */
    {
        char mnt[IT_PATH_MAX];
        char data[IT_PATH_MAX];
        char filler[IT_PATH_MAX];
        char block[65536];
        const char *args[] = {"--id",        "1",       "--data-dir",    data,
                              "--raft-addr", raft_addr, "--client-addr", client_addr,
                              NULL};
        const char *words[] = {data, "disk is full", NULL};
        snprintf(mnt, sizeof(mnt), "%s/tiny", it_dir());
        IT_FORMAT(data, "%s/data", mnt);
        IT_FORMAT(filler, "%s/filler", mnt);
        IT_ASSERT(mkdir(mnt, 0755) == 0, "mkdir %s", mnt);
        if (try_mount_tmpfs(mnt, "size=2m")) {
            ssize_t n;
            size_t total = 0;
            IT_ASSERT(mkdir(data, 0755) == 0, "mkdir %s: %s", data, strerror(errno));
            fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            IT_ASSERT(fd >= 0, "create %s", filler);
            memset(block, 'f', sizeof(block));
            while ((n = write(fd, block, sizeof(block))) > 0) {
                total += (size_t)n;
            }
            IT_ASSERT(n < 0 && errno == ENOSPC, "filling the tmpfs ends with ENOSPC");
            close(fd);
            it_log("filled %s with %zu bytes", mnt, total);
            expect_refusal("disk full", args, words);
            unmount(mnt);
        } else {
            it_log("SKIP disk full: mounting a tmpfs is not permitted here");
        }
    }

    /* The client port already taken. */
    {
        char taken[32];
        int port = it_pick_port();
        int sock = listen_on(port);
        char sub[IT_PATH_MAX];
        const char *args[] = {"--id",          "1",   "--data-dir", sub, "--raft-addr", raft_addr,
                              "--client-addr", taken, NULL};
        const char *words[] = {taken, "already in use", NULL};
        snprintf(taken, sizeof(taken), "127.0.0.1:%d", port);
        snprintf(sub, sizeof(sub), "%s/port-client", it_dir());
        expect_refusal("client port in use", args, words);
        close(sock);
    }
    /* The Raft port already taken. */
    {
        char taken[32];
        int port = it_pick_port();
        int sock = listen_on(port);
        char sub[IT_PATH_MAX];
        const char *args[] = {"--id",          "1",         "--data-dir", sub, "--raft-addr", taken,
                              "--client-addr", client_addr, NULL};
        const char *words[] = {taken, "already in use", NULL};
        snprintf(taken, sizeof(taken), "127.0.0.1:%d", port);
        snprintf(sub, sizeof(sub), "%s/port-raft", it_dir());
        expect_refusal("raft port in use", args, words);
        close(sock);
    }

    /* A data directory that another node used: start node 1 for real, stop
     * it, then point node 2 at its directory. */
    {
        struct it_cluster *c = it_cluster_new(1, NULL);
        char id2_raft[32];
        char id2_client[32];
        char id2_cluster[128];
        int status;
        it_cluster_start(c);
        status = it_node_stop(c, 1, 20000);
        IT_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "node 1 stops cleanly");
        snprintf(id2_raft, sizeof(id2_raft), "127.0.0.1:%d", it_pick_port());
        snprintf(id2_client, sizeof(id2_client), "127.0.0.1:%d", it_pick_port());
        snprintf(id2_cluster, sizeof(id2_cluster), "2=%s/%s", id2_raft, id2_client);
        {
            const char *args[] = {"--id",
                                  "2",
                                  "--data-dir",
                                  it_node(c, 1)->data_dir,
                                  "--raft-addr",
                                  id2_raft,
                                  "--client-addr",
                                  id2_client,
                                  "--initial-cluster",
                                  id2_cluster,
                                  NULL};
            const char *words[] = {it_node(c, 1)->data_dir, "belongs to node 1", NULL};
            expect_refusal("data dir of another node", args, words);
        }
        /* The rightful owner still starts from it. */
        it_node_start(c, 1);
        it_wait_leader(c, 0, 20000);
        it_cluster_free(c);
    }
    it_log("PASS");
    return 0;
}
