/*
 * harness: see harness.h for the contract. The parts that must work while
 * the test is dying (the alarm handler) use only async-signal-safe calls and
 * state kept in fixed-size static arrays.
 */
#define _GNU_SOURCE /* nftw, strsignal, prctl */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CHILDREN_MAX 64
#define LOGS_MAX 64
#define MOUNTS_MAX 8
#define PORTS_MAX 256
#define LOG_TAIL_BYTES 6144
#define PORT_MIN 20000

/* Shared with the signal handler: plain arrays, written before they are
 * published through the volatile slots. */
static char g_dir[IT_PATH_MAX];
static char g_name[64];
static volatile sig_atomic_t g_failed;
static volatile pid_t g_children[CHILDREN_MAX];
static char g_logs[LOGS_MAX][IT_PATH_MAX];
static volatile sig_atomic_t g_n_logs;
static char g_mounts[MOUNTS_MAX][IT_PATH_MAX];
static volatile sig_atomic_t g_mounted[MOUNTS_MAX];

static int64_t g_start_ms;
static int g_ports[PORTS_MAX];
static int g_n_ports;
static unsigned g_clusters;
static uint64_t g_rng;
static pthread_mutex_t g_fail_mu = PTHREAD_MUTEX_INITIALIZER;

/* Time and output */

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int64_t ms)
{
    struct timespec ts;
    if (ms <= 0) {
        return;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void it_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%s +%.3fs] %s\n", g_name, (double)(it_now_ms() - g_start_ms) / 1000.0, line);
}

const char *const it_small_snapshot_flags[] = {
    "--snapshot-threshold",
    "64",
    "--snapshot-log-percent",
    "0",
    "--snapshot-trailing",
    "16",
    "--segment-size-bytes",
    "65536",
    NULL,
};

const char *it_dir(void)
{
    return g_dir;
}

/* Async-signal-safe output. */
static void sig_write(const char *s)
{
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, s, len);
        if (n <= 0) {
            return;
        }
        s += n;
        len -= (size_t)n;
    }
}

/* Print the end of a file with open/lseek/read/write only (async-signal-safe). */
static void dump_tail(const char *path)
{
    char buf[LOG_TAIL_BYTES];
    off_t size;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    size = lseek(fd, 0, SEEK_END);
    if (size > (off_t)sizeof(buf)) {
        lseek(fd, size - (off_t)sizeof(buf), SEEK_SET);
    } else {
        lseek(fd, 0, SEEK_SET);
    }
    sig_write("----- tail of ");
    sig_write(path);
    sig_write(" -----\n");
    n = read(fd, buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        sig_write(buf);
        if (buf[n - 1] != '\n') {
            sig_write("\n");
        }
    }
    close(fd);
}

/* Children and mounts */

static void track_child(pid_t pid)
{
    int i;
    for (i = 0; i < CHILDREN_MAX; i++) {
        if (g_children[i] == 0) {
            g_children[i] = pid;
            return;
        }
    }
    kill(pid, SIGKILL);
    it_fail(__FILE__, __LINE__, "track_child", "more than %d children", CHILDREN_MAX);
}

static void untrack_child(pid_t pid)
{
    int i;
    for (i = 0; i < CHILDREN_MAX; i++) {
        if (g_children[i] == pid) {
            g_children[i] = 0;
        }
    }
}

static void track_log(const char *path)
{
    int i;
    for (i = 0; i < g_n_logs; i++) {
        if (strcmp(g_logs[i], path) == 0) {
            return;
        }
    }
    if (g_n_logs < LOGS_MAX) {
        snprintf(g_logs[g_n_logs], IT_PATH_MAX, "%s", path);
        g_n_logs = g_n_logs + 1;
    }
}

void it_track_mount(const char *path)
{
    int i;
    for (i = 0; i < MOUNTS_MAX; i++) {
        if (!g_mounted[i]) {
            snprintf(g_mounts[i], IT_PATH_MAX, "%s", path);
            g_mounted[i] = 1;
            return;
        }
    }
    it_fail(__FILE__, __LINE__, "it_track_mount", "more than %d mounts", MOUNTS_MAX);
}

void it_untrack_mount(const char *path)
{
    int i;
    for (i = 0; i < MOUNTS_MAX; i++) {
        if (g_mounted[i] && strcmp(g_mounts[i], path) == 0) {
            g_mounted[i] = 0;
        }
    }
}

/* Async-signal-safe: kill and unmount, no reaping. */
static void kill_everything(void)
{
    int i;
    for (i = 0; i < CHILDREN_MAX; i++) {
        pid_t pid = g_children[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
        }
    }
    for (i = 0; i < MOUNTS_MAX; i++) {
        if (g_mounted[i]) {
            umount2(g_mounts[i], MNT_DETACH);
            g_mounted[i] = 0;
        }
    }
}

static void dump_logs(void)
{
    int i;
    for (i = 0; i < g_n_logs; i++) {
        dump_tail(g_logs[i]);
    }
}

static void alarm_handler(int sig)
{
    (void)sig;
    g_failed = 1;
    sig_write("\nFAIL: test timed out (watchdog alarm); killing every cairnd\n");
    kill_everything();
    dump_logs();
    sig_write("logs and data kept in ");
    sig_write(g_dir);
    sig_write("\n");
    _exit(1);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void at_exit_cleanup(void)
{
    int i;
    kill_everything();
    for (i = 0; i < CHILDREN_MAX; i++) {
        pid_t pid = g_children[i];
        if (pid > 0) {
            waitpid(pid, NULL, 0);
            g_children[i] = 0;
        }
    }
    if (g_dir[0] == '\0') {
        return;
    }
    if (g_failed || getenv("CAIRN_IT_KEEP") != NULL) {
        fprintf(stderr, "[%s] logs and data kept in %s\n", g_name, g_dir);
        return;
    }
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void it_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    /* Only the first failure reports and exits; other threads wait for exit
     * to end them. */
    if (pthread_mutex_trylock(&g_fail_mu) != 0) {
        for (;;) {
            pause();
        }
    }
    g_failed = 1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "\n[%s +%.3fs] FAIL %s:%d: %s%s%s\n", g_name,
            (double)(it_now_ms() - g_start_ms) / 1000.0, file, line, cond, msg[0] ? ": " : "", msg);
    fflush(stderr);
    /* Stop the nodes first so the logs end where the failure happened. */
    kill_everything();
    dump_logs();
    exit(1);
}

void it_init(const char *test_name, unsigned timeout_s)
{
    const char *tmp = getenv("TMPDIR");
    struct sigaction sa;
    g_start_ms = it_now_ms();
    snprintf(g_name, sizeof(g_name), "%s", test_name);
    if (tmp == NULL || tmp[0] == '\0') {
        tmp = "/tmp";
    }
    snprintf(g_dir, sizeof(g_dir), "%s/cairn-it-XXXXXX", tmp);
    if (mkdtemp(g_dir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", g_dir, strerror(errno));
        g_dir[0] = '\0';
        exit(1);
    }
    g_rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20) ^ (uint64_t)it_now_ms();
    atexit(at_exit_cleanup);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = alarm_handler;
    sigaction(SIGALRM, &sa, NULL);
    /* A client that writes to a closed socket must get EPIPE, not die. */
    signal(SIGPIPE, SIG_IGN);
    alarm(timeout_s);
    setvbuf(stderr, NULL, _IOLBF, 0);
    it_log("cairnd: %s; directory %s; watchdog %us", CAIRND_PATH, g_dir, timeout_s);
}

/* Ports */

static uint64_t rng_next(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static int ephemeral_low(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int lo = 32768;
    int hi = 60999;
    if (f != NULL) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2) {
            lo = 32768;
        }
        fclose(f);
    }
    return lo;
}

static bool port_bindable(int port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;
    if (fd < 0) {
        return false;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* CAIRN_IT_PORTS=LO-HI confines the ports to a range, for machines where
 * several people run tests at once and agree on who uses which ports. */
static bool port_range_from_env(int *lo, int *hi)
{
    const char *spec = getenv("CAIRN_IT_PORTS");
    if (spec == NULL || spec[0] == '\0') {
        return false;
    }
    IT_ASSERT(sscanf(spec, "%d-%d", lo, hi) == 2 && *lo > 0 && *lo < *hi && *hi <= 65535,
              "CAIRN_IT_PORTS=\"%s\" is not LO-HI", spec);
    return true;
}

/* CAIRN_IT_SLOT=K/N (set by ctest for each test, tests/integration/
 * CMakeLists.txt) narrows [*lo, *hi] to its K-th of N equal parts, so that
 * tests run side by side (ctest -j) never pick the same port: checking that
 * a port binds does not keep another test from binding it first. Left
 * whole when a part would hold fewer than 64 ports. */
static void port_range_slot(int *lo, int *hi)
{
    const char *spec = getenv("CAIRN_IT_SLOT");
    int k;
    int n;
    int width;
    if (spec == NULL || spec[0] == '\0') {
        return;
    }
    IT_ASSERT(sscanf(spec, "%d/%d", &k, &n) == 2 && n > 0 && k >= 0 && k < n,
              "CAIRN_IT_SLOT=\"%s\" is not K/N", spec);
    width = (*hi - *lo + 1) / n;
    if (width < 64) {
        return;
    }
    *lo += k * width;
    *hi = *lo + width - 1;
}

int it_pick_port(void)
{
    int lo = ephemeral_low();
    int range_lo = PORT_MIN;
    int range_hi = lo - 1;
    bool ranged = port_range_from_env(&range_lo, &range_hi) || lo - PORT_MIN >= 1000;
    int attempt;
    int i;
    IT_ASSERT(g_n_ports < PORTS_MAX, "too many ports");
    if (ranged) {
        port_range_slot(&range_lo, &range_hi);
    }
    for (attempt = 0; attempt < 10000; attempt++) {
        int port;
        bool taken = false;
        if (ranged) {
            port = range_lo + (int)(rng_next() % (uint64_t)(range_hi - range_lo + 1));
        } else {
            /* A machine whose ephemeral range starts low: let the kernel pick,
             * and keep what is >= PORT_MIN. */
            struct sockaddr_in a;
            socklen_t len = sizeof(a);
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            memset(&a, 0, sizeof(a));
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            port = 0;
            if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
                getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
                port = ntohs(a.sin_port);
            }
            if (fd >= 0) {
                close(fd);
            }
            if (port < PORT_MIN) {
                continue;
            }
        }
        for (i = 0; i < g_n_ports; i++) {
            taken |= g_ports[i] == port;
        }
        if (taken || !port_bindable(port)) {
            continue;
        }
        g_ports[g_n_ports++] = port;
        return port;
    }
    it_fail(__FILE__, __LINE__, "it_pick_port", "no free port found");
}

/* Files */

size_t it_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}

char *it_read_file(const char *path, size_t from)
{
    FILE *f = fopen(path, "rb");
    char *data;
    size_t size;
    size_t n;
    if (f == NULL) {
        return NULL;
    }
    size = it_file_size(path);
    size = size > from ? size - from : 0;
    data = malloc(size + 1);
    IT_ASSERT(data != NULL, "out of memory");
    if (fseek(f, (long)from, SEEK_SET) != 0) {
        size = 0;
    }
    n = fread(data, 1, size, f);
    data[n] = '\0';
    fclose(f);
    /* Logs may hold NUL bytes from binary noise; make them searchable. */
    for (size = 0; size < n; size++) {
        if (data[size] == '\0') {
            data[size] = '?';
        }
    }
    return data;
}

bool it_file_contains(const char *path, const char *needle)
{
    char *data = it_read_file(path, 0);
    bool found = data != NULL && strstr(data, needle) != NULL;
    free(data);
    return found;
}

void it_check_sanitizer_reports(const char *path)
{
    static const char *const patterns[] = {
        "ERROR: AddressSanitizer",  "ERROR: LeakSanitizer", "runtime error:",
        "WARNING: ThreadSanitizer", "cairnd: fatal",        ": Assertion `",
    };
    char *data = it_read_file(path, 0);
    size_t i;
    if (data == NULL) {
        return;
    }
    for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
        const char *hit = strstr(data, patterns[i]);
        if (hit != NULL) {
            char excerpt[2048];
            snprintf(excerpt, sizeof(excerpt), "%s", hit);
            free(data);
            it_fail(__FILE__, __LINE__, "no sanitizer report", "%s reports \"%s\":\n%s", path,
                    patterns[i], excerpt);
        }
    }
    free(data);
}

/* Processes */

/* Reap pid within timeout_ms; returns true with *status set. */
static bool wait_exit(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            *status = 0;
            return true;
        }
        if (it_now_ms() >= deadline) {
            return false;
        }
        it_sleep_ms(10);
    }
}

static void describe_status(int status, char *out, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(out, len, "exit code %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(out, len, "wait status %#x", status);
    }
}

/* fork + execve with output to out_fd. argv and envp are built by the caller
 * before the fork: the child only calls async-signal-safe functions, since a
 * test may have other threads running. */
static pid_t spawn(char *const *argv, char *const *envp, int out_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    IT_ASSERT(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        sigset_t none;
        /* Die with the test, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        signal(SIGALRM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(out_fd, STDOUT_FILENO);
        dup2(out_fd, STDERR_FILENO);
        execve(argv[0], argv, envp);
        _exit(127);
    }
    track_child(pid);
    return pid;
}

static char **build_env(const char *const *extra)
{
    size_t n = 0;
    size_t m = 0;
    size_t i;
    char **envp;
    while (environ[n] != NULL) {
        n++;
    }
    while (extra != NULL && m < IT_ENV_MAX && extra[m] != NULL) {
        m++;
    }
    envp = calloc(n + m + 1, sizeof(*envp));
    IT_ASSERT(envp != NULL, "out of memory");
    for (i = 0; i < m; i++) {
        envp[i] = (char *)extra[i];
    }
    for (i = 0; i < n; i++) {
        envp[m + i] = environ[i];
    }
    return envp;
}

int it_run_cairnd(const char *const *args, const char *out_path, int timeout_ms)
{
    char *argv[IT_ARGS_MAX + 2];
    char **envp = build_env(NULL);
    size_t n = 0;
    int status = 0;
    int fd;
    pid_t pid;
    argv[n++] = (char *)CAIRND_PATH;
    while (args[n - 1] != NULL && n < IT_ARGS_MAX + 1) {
        argv[n] = (char *)args[n - 1];
        n++;
    }
    argv[n] = NULL;
    fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    IT_ASSERT(fd >= 0, "open %s: %s", out_path, strerror(errno));
    track_log(out_path);
    pid = spawn(argv, envp, fd);
    close(fd);
    free(envp);
    if (!wait_exit(pid, timeout_ms, &status)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        untrack_child(pid);
        it_fail(__FILE__, __LINE__, "it_run_cairnd", "cairnd did not exit within %d ms",
                timeout_ms);
    }
    untrack_child(pid);
    return status;
}

/* Clusters */

struct it_node *it_node(struct it_cluster *c, unsigned id)
{
    IT_ASSERT(id >= 1 && id <= c->n, "no node %u", id);
    return &c->nodes[id - 1];
}

bool it_node_running(const struct it_cluster *c, unsigned id)
{
    return id >= 1 && id <= c->n && c->nodes[id - 1].pid > 0;
}

struct it_cluster *it_cluster_new(unsigned n, const char *const *args)
{
    struct it_cluster *c = calloc(1, sizeof(*c));
    char dir[IT_PATH_MAX];
    struct cairn_options opts;
    size_t off = 0;
    unsigned i;
    int err = 0;
    IT_ASSERT(c != NULL, "out of memory");
    IT_ASSERT(n >= 1 && n <= IT_NODES_MAX, "cluster of %u nodes", n);
    c->n = n;
    g_clusters++;
    IT_FORMAT(dir, "%s/cluster%u", g_dir, g_clusters);
    IT_ASSERT(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
    for (i = 0; args != NULL && args[i] != NULL; i++) {
        IT_ASSERT(i < IT_ARGS_MAX - 1, "too many flags");
        c->args[i] = args[i];
    }
    for (i = 0; i < n; i++) {
        struct it_node *node = &c->nodes[i];
        node->id = i + 1;
        node->raft_port = it_pick_port();
        node->client_port = it_pick_port();
        snprintf(node->raft_addr, sizeof(node->raft_addr), "127.0.0.1:%d", node->raft_port);
        snprintf(node->client_addr, sizeof(node->client_addr), "127.0.0.1:%d", node->client_port);
        IT_FORMAT(node->data_dir, "%s/node%u", dir, node->id);
        IT_FORMAT(node->log_path, "%s/node%u.log", dir, node->id);
        track_log(node->log_path);
        off += (size_t)snprintf(c->initial_cluster + off, sizeof(c->initial_cluster) - off,
                                "%s%u=%s/%s", i > 0 ? "," : "", node->id, node->raft_addr,
                                node->client_addr);
        IT_ASSERT(off < sizeof(c->initial_cluster), "initial cluster too long");
        snprintf(c->endpoints + strlen(c->endpoints), sizeof(c->endpoints) - strlen(c->endpoints),
                 "%s%s", i > 0 ? "," : "", node->client_addr);
    }
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = 2000;
    opts.connect_timeout_ms = 500;
    c->admin = cairn_client_new(c->endpoints, &opts, &err);
    IT_ASSERT(c->admin != NULL, "cairn_client_new: %s", cairn_errname(err));
    it_log("cluster of %u in %s: %s", n, dir, c->initial_cluster);
    return c;
}

void it_node_start(struct it_cluster *c, unsigned id)
{
    struct it_node *node = it_node(c, id);
    char *argv[2 * IT_ARGS_MAX + 16];
    char id_str[16];
    char marker[2048];
    char **envp;
    size_t n = 0;
    size_t i;
    size_t off;
    int fd;
    IT_ASSERT(node->pid == 0, "node %u is already running", id);
    snprintf(id_str, sizeof(id_str), "%u", id);
    argv[n++] = (char *)CAIRND_PATH;
    argv[n++] = "--id";
    argv[n++] = id_str;
    argv[n++] = "--data-dir";
    argv[n++] = node->data_dir;
    argv[n++] = "--raft-addr";
    argv[n++] = node->raft_addr;
    argv[n++] = "--client-addr";
    argv[n++] = node->client_addr;
    argv[n++] = "--initial-cluster";
    argv[n++] = c->initial_cluster;
    /* No HTTP unless the test asks for it (a later --http-addr wins): the
     * default address, 127.0.0.1:8001, would be the same for every node. */
    argv[n++] = "--http-addr=";
    for (i = 0; i < IT_ARGS_MAX && c->args[i] != NULL; i++) {
        argv[n++] = (char *)c->args[i];
    }
    for (i = 0; i < IT_ARGS_MAX && node->args[i] != NULL; i++) {
        argv[n++] = (char *)node->args[i];
    }
    argv[n] = NULL;
    envp = build_env(node->env);
    fd = open(node->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    IT_ASSERT(fd >= 0, "open %s: %s", node->log_path, strerror(errno));
    off = (size_t)snprintf(marker, sizeof(marker),
                           "=== harness: start #%u of node %u:", node->starts + 1, id);
    for (i = 0; node->env[i] != NULL && i < IT_ENV_MAX && off < sizeof(marker); i++) {
        off += (size_t)snprintf(marker + off, sizeof(marker) - off, " %s", node->env[i]);
    }
    for (i = 0; i < n && off < sizeof(marker); i++) {
        off += (size_t)snprintf(marker + off, sizeof(marker) - off, " %s", argv[i]);
    }
    if (off < sizeof(marker)) {
        snprintf(marker + off, sizeof(marker) - off, "\n");
    }
    IT_ASSERT(write(fd, marker, strlen(marker)) == (ssize_t)strlen(marker), "write %s",
              node->log_path);
    node->pid = spawn(argv, envp, fd);
    node->starts++;
    close(fd);
    free(envp);
    it_log("started node %u (pid %d, client %s, raft %s)", id, (int)node->pid, node->client_addr,
           node->raft_addr);
}

/* Fail the test if a node the harness believes running has exited. */
static void check_alive(struct it_cluster *c, unsigned id)
{
    struct it_node *node = it_node(c, id);
    int status = 0;
    char how[128];
    if (node->pid <= 0) {
        return;
    }
    if (waitpid(node->pid, &status, WNOHANG) == node->pid) {
        untrack_child(node->pid);
        node->pid = 0;
        describe_status(status, how, sizeof(how));
        it_fail(__FILE__, __LINE__, "node alive", "node %u exited unexpectedly: %s (log %s)", id,
                how, node->log_path);
    }
}

int it_node_stop(struct it_cluster *c, unsigned id, int timeout_ms)
{
    struct it_node *node = it_node(c, id);
    int status = 0;
    char how[128];
    IT_ASSERT(node->pid > 0, "node %u is not running", id);
    kill(node->pid, SIGTERM);
    if (!wait_exit(node->pid, timeout_ms, &status)) {
        kill(node->pid, SIGKILL);
        waitpid(node->pid, NULL, 0);
        untrack_child(node->pid);
        node->pid = 0;
        it_fail(__FILE__, __LINE__, "it_node_stop", "node %u did not exit within %d ms of SIGTERM",
                id, timeout_ms);
    }
    untrack_child(node->pid);
    node->pid = 0;
    describe_status(status, how, sizeof(how));
    it_log("stopped node %u with SIGTERM: %s", id, how);
    return status;
}

void it_node_signal(struct it_cluster *c, unsigned id, int sig)
{
    struct it_node *node = it_node(c, id);
    IT_ASSERT(node->pid > 0, "node %u is not running", id);
    IT_ASSERT(kill(node->pid, sig) == 0, "kill node %u: %s", id, strerror(errno));
}

bool it_node_exited(struct it_cluster *c, unsigned id, int *status)
{
    struct it_node *node = it_node(c, id);
    char how[128];
    IT_ASSERT(node->pid > 0, "node %u is not running", id);
    if (waitpid(node->pid, status, WNOHANG) != node->pid) {
        return false;
    }
    untrack_child(node->pid);
    node->pid = 0;
    describe_status(*status, how, sizeof(how));
    it_log("node %u exited: %s", id, how);
    return true;
}

void it_node_kill(struct it_cluster *c, unsigned id)
{
    struct it_node *node = it_node(c, id);
    IT_ASSERT(node->pid > 0, "node %u is not running", id);
    kill(node->pid, SIGKILL);
    waitpid(node->pid, NULL, 0);
    untrack_child(node->pid);
    node->pid = 0;
    it_log("killed node %u with SIGKILL", id);
}

int it_node_status(struct it_cluster *c, unsigned id, struct cairn_status **out)
{
    int rv;
    *out = NULL;
    if (id == 0) {
        unsigned i;
        for (i = 1; i <= c->n; i++) {
            if (it_node_running(c, i) && it_node_status(c, i, out) == 0) {
                return 0;
            }
        }
        return CAIRN_EUNAVAILABLE;
    }
    check_alive(c, id);
    rv = cairn_status(c->admin, it_node(c, id)->client_addr, out);
    if (rv != 0) {
        check_alive(c, id);
    }
    return rv;
}

unsigned it_leader(struct it_cluster *c)
{
    unsigned agreed = 0;
    unsigned i;
    bool leader_says_so = false;
    for (i = 1; i <= c->n; i++) {
        struct cairn_status *st;
        if (!it_node_running(c, i)) {
            continue;
        }
        if (it_node_status(c, i, &st) != 0) {
            return 0;
        }
        if (st->leader_id == 0 || (agreed != 0 && st->leader_id != agreed)) {
            cairn_status_free(st);
            return 0;
        }
        agreed = (unsigned)st->leader_id;
        if (st->id == st->leader_id && strcmp(st->state, "leader") == 0) {
            leader_says_so = true;
        }
        cairn_status_free(st);
    }
    return leader_says_so && it_node_running(c, agreed) ? agreed : 0;
}

unsigned it_wait_leader(struct it_cluster *c, unsigned not_id, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    for (;;) {
        unsigned leader = it_leader(c);
        if (leader != 0 && leader != not_id) {
            return leader;
        }
        IT_ASSERT(it_now_ms() < deadline, "no leader agreed on within %d ms", timeout_ms);
        it_sleep_ms(25);
    }
}

uint64_t it_wait_converged(struct it_cluster *c, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    uint64_t last_applied = 0;
    uint64_t last_rev = 0;
    int stable = 0;
    for (;;) {
        uint64_t applied = 0;
        uint64_t rev = 0;
        uint64_t hash = 0;
        bool hashes_differ = false;
        bool same = true;
        bool first = true;
        unsigned i;
        char seen[512] = "";
        for (i = 1; i <= c->n && same; i++) {
            struct cairn_status *st;
            if (!it_node_running(c, i)) {
                continue;
            }
            if (it_node_status(c, i, &st) != 0) {
                same = false;
                break;
            }
            snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen),
                     " node %u: applied %llu rev %llu;", i, (unsigned long long)st->applied_index,
                     (unsigned long long)st->revision);
            if (first) {
                applied = st->applied_index;
                rev = st->revision;
                hash = st->state_hash;
                first = false;
            } else if (st->applied_index != applied || st->revision != rev) {
                same = false;
            } else if (st->state_hash != hash) {
                hashes_differ = true;
            }
            cairn_status_free(st);
        }
        /* Equal twice in a row, 100 ms apart: nothing was still in flight. */
        if (same && !first && applied == last_applied && rev == last_rev) {
            if (++stable >= 2) {
                /* Same log applied, so the same state: anything else means
                 * the replicas diverged. */
                IT_ASSERT(!hashes_differ, "replicas at the same index hold different states:%s",
                          seen);
                return rev;
            }
        } else {
            stable = same ? 1 : 0;
        }
        last_applied = applied;
        last_rev = rev;
        IT_ASSERT(it_now_ms() < deadline, "nodes did not converge within %d ms:%s", timeout_ms,
                  seen);
        it_sleep_ms(100);
    }
}

cairn_client *it_client(struct it_cluster *c, unsigned id, int timeout_ms)
{
    struct cairn_options opts;
    cairn_client *client;
    int err = 0;
    memset(&opts, 0, sizeof(opts));
    opts.timeout_ms = timeout_ms;
    client = cairn_client_new(id == 0 ? c->endpoints : it_node(c, id)->client_addr, &opts, &err);
    IT_ASSERT(client != NULL, "cairn_client_new: %s", cairn_errname(err));
    return client;
}

unsigned it_cluster_start(struct it_cluster *c)
{
    unsigned i;
    unsigned leader;
    int64_t t0 = it_now_ms();
    for (i = 1; i <= c->n; i++) {
        it_node_start(c, i);
    }
    leader = it_wait_leader(c, 0, 30000);
    it_log("leader is node %u after %lld ms", leader, (long long)(it_now_ms() - t0));
    return leader;
}

void it_cluster_free(struct it_cluster *c)
{
    unsigned i;
    int status[IT_NODES_MAX];
    bool stopped[IT_NODES_MAX];
    /* Stop every node at once: what an operator's "stop the cluster" does. A
     * clean stop must end with exit code 0 (and, under ASan, no leak). */
    for (i = 1; i <= c->n; i++) {
        stopped[i - 1] = it_node_running(c, i);
        if (stopped[i - 1]) {
            check_alive(c, i);
            kill(c->nodes[i - 1].pid, SIGTERM);
        }
    }
    for (i = 1; i <= c->n; i++) {
        struct it_node *node = &c->nodes[i - 1];
        if (!stopped[i - 1]) {
            continue;
        }
        if (!wait_exit(node->pid, 20000, &status[i - 1])) {
            it_fail(__FILE__, __LINE__, "it_cluster_free",
                    "node %u did not exit within 20 s of SIGTERM", i);
        }
        untrack_child(node->pid);
        node->pid = 0;
    }
    for (i = 1; i <= c->n; i++) {
        it_check_sanitizer_reports(c->nodes[i - 1].log_path);
    }
    for (i = 1; i <= c->n; i++) {
        char how[128];
        if (!stopped[i - 1]) {
            continue;
        }
        describe_status(status[i - 1], how, sizeof(how));
        IT_ASSERT(WIFEXITED(status[i - 1]) && WEXITSTATUS(status[i - 1]) == 0,
                  "node %u did not stop cleanly on SIGTERM: %s", i, how);
    }
    cairn_client_free(c->admin);
    free(c);
}
