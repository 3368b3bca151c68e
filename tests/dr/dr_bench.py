#!/usr/bin/python3
"""The disaster-recovery benchmark (issue 6; docs/performance.md, "Disaster recovery").

Prints the figures behind the issue's four targets, measured on real processes:
a 3-node cairnd cluster of this build backing up to s3rver (tests/dr/node_modules)
on loopback, cairnctl, cairn-bench, and with --etcd a 3-member etcd 3.4 cluster.

  1. snapshot   `cairnctl snapshot save` end to end on a quiet cluster (the
                manifest's bytes_raw / bytes_stored, the leader's
                cairn_backup_snapshot_duration_seconds and its log line); then
                cairn-bench (closed loop, --bench-clients, put=20,get=80 on the
                data set's keys) for --window seconds without snapshots, and
                again with snapshots back to back from 2 s into the window:
                p50 / p99 side by side. Then the same pairs with the load
                paced at --bench-rate ops/s (cairn-bench --rate), which
                leaves the machine a spare core, as a service's load would.
  2. lag        --rate writes/s (open loop, HTTP PUTs from Python threads, each
                ack's time and revision recorded) for --lag-seconds while
                GET /v1/backup on the leader is polled every 50 ms: for every
                acknowledged revision, how long after its ack the archive
                reached it. Then the same with one snapshot taken mid-run.
  3. restore    the cluster is killed and its data wiped; 3 nodes start with
                --restore-from and the time until a linearizable
                `cairnctl get` returns a key written just before the kill is
                measured; also `cairnctl snapshot restore --data-dir` alone
                (latest, and a point-in-time restore that replays the log).
  4. etcd       (--etcd) the same data set in etcd: `etcdctl snapshot save`,
                and `etcdctl snapshot restore` of 3 members plus their start
                until a get succeeds.

--control 10,save,100 adds a control to step 1: the same interleaved measure with a
busy loop at nice 10 (the snapshot worker's nice value) in place of each save, taking
10%, as much as a quiet save used (the nodes' and s3rver's CPU time during it, above
their idle use), and 100% of one core, for as long as a quiet save. It does no backup
work, so its ratio is what this measure gives on the machine for CPU work that is not
Cairn's.

--s3-cpus 1 keeps s3rver (every thread of it) on vCPU 1; the nodes, the load and
the control stay free to run on any. A store on other machines spends none of the
cluster's CPU; confined to one vCPU, the stand-in at least does not move between
both (docs/performance.md, "s3rver on one vCPU").

--store file backs up to a file:// directory in --s3-dir instead of s3rver (the
same paced saves, the same log shipping): the figures then show what backups
cost the cluster without an object store's own CPU on the same two cores.

The data set: --keys keys bench/NNNNN (cairn-bench's names) with --value-size
values of random letters and digits, every value different (cairn-bench's own
values come from a pool of 16, which LZ4 would compress away). Loaded through
the leader's HTTP API from 16 threads. --values config loads text shaped like
configuration files instead ("section.name = value" lines, every value
different), which LZ4 shrinks as it shrinks real configuration.

Usage: dr_bench.py BUILD_DIR [--keys N] [--value-size B] [--values random|config]
                   [--etcd] [--runs 3]
                   [--window S] [--lag-seconds S] [--rate R] [--bench-clients N]
                   [--bench-rate R] [--s3-nice N] [--s3-cpus LIST] [--s3-dir DIR]
                   [--store s3|file]
                   [--control DUTY,...] [--port-base P] [--json FILE] [--keep]
Exit status: 0 when everything ran (targets are not judged here), 1 when
something failed to run, 77 when s3rver is not installed.
"""

import argparse
import base64
import datetime
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

from dr_test import Fail, metric, wait_port  # the end-to-end test's helpers

HERE = os.path.dirname(os.path.abspath(__file__))
ACCESS, SECRET = "S3RVER", "S3RVER"
BUCKET = "cairn-bench"
ALNUM = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TO_ALNUM = bytes(ALNUM[i % len(ALNUM)] for i in range(256))


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pct(values, p):
    """Nearest-rank percentile, as cairn-bench computes it."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def fmt(v, digits=1):
    if v is None or v != v:
        return "-"
    return "{:,.{d}f}".format(v, d=digits)


def msr(values, digits=1):
    """median [min-max] of a run's figures."""
    values = [v for v in values if v is not None and v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt(values[0], digits)
    return "%s [%s-%s]" % (fmt(med(values), digits), fmt(min(values), digits),
                           fmt(max(values), digits))


def random_values(n, size):
    raw = os.urandom(n * size).translate(TO_ALNUM)
    return [raw[i * size:(i + 1) * size].decode() for i in range(n)]


CONFIG_WORDS = ("timeout", "retries", "endpoint", "enabled", "replicas", "region", "pool",
                "max_connections", "log_level", "cache_ttl", "feature", "backend", "weight",
                "threshold", "interval", "owner", "tier", "zone", "port", "host", "path",
                "limit", "burst", "mode", "version", "secret_ref", "queue", "shard")
CONFIG_LEVELS = ("debug", "info", "warn", "error")


def config_values(n, size, seed=1):
    """Values shaped like configuration files: lines "section.name = value" drawn from a small
    vocabulary, with numbers, host names and tokens that differ from value to value. LZ4
    shrinks them about as it shrinks real configuration, unlike random_values."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        lines = []
        length = 0
        while length < size:
            w = rnd.choice(CONFIG_WORDS)
            kind = rnd.randrange(5)
            if kind == 0:
                v = str(rnd.randrange(1, 100000))
            elif kind == 1:
                v = "svc-%d.%s.internal:%d" % (rnd.randrange(400), rnd.choice(CONFIG_WORDS),
                                               rnd.randrange(1024, 65535))
            elif kind == 2:
                v = rnd.choice(("true", "false"))
            elif kind == 3:
                v = rnd.choice(CONFIG_LEVELS)
            else:
                v = "%016x" % rnd.getrandbits(64)
            line = "%s.%s = %s\n" % (rnd.choice(CONFIG_WORDS), w, v)
            lines.append(line)
            length += len(line)
        out.append(("# item %d\n" % i + "".join(lines))[:size])
    return out


class Http:
    """One keep-alive HTTP/1.1 connection (not shared between threads)."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.c = None

    def request(self, method, path, body=None):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection("127.0.0.1", self.port,
                                                        timeout=self.timeout)
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.c.request(method, path, body=body, headers=headers)
                r = self.c.getresponse()
                data = r.read()
                return r.status, data
            except (OSError, http.client.HTTPException):
                if self.c is not None:
                    self.c.close()
                self.c = None
                if attempt == 2:
                    raise
                time.sleep(0.05)

    def json(self, method, path, body=None):
        status, data = self.request(method, path, body)
        if status != 200:
            raise Fail("%s %s: HTTP %d: %s" % (method, path, status, data[:300]))
        return json.loads(data)

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


class Env:
    def __init__(self, args):
        self.a = args
        self.bin = os.path.join(os.path.abspath(args.build_dir), "bin")
        self.tmp = tempfile.mkdtemp(prefix="cairn-dr-bench-")
        self.pb = args.port_base
        self.procs = []
        self.nodes = []
        self.s3 = None
        self.etcd = []
        self.leader_id = None

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    # ports
    def client_port(self, i):
        return self.pb + i

    def raft_port(self, i):
        return self.pb + 10 + i

    def http_port(self, i):
        return self.pb + 20 + i

    def s3_port(self):
        return self.pb + 90

    def etcd_client_port(self, i):
        return self.pb + 100 + i

    def etcd_peer_port(self, i):
        return self.pb + 110 + i

    def all_ports(self):
        ports = [f(i) for i in (1, 2, 3) for f in (self.client_port, self.raft_port,
                                                    self.http_port)]
        ports.append(self.s3_port())
        if self.a.etcd:
            ports += [f(i) for i in (1, 2, 3) for f in (self.etcd_client_port,
                                                        self.etcd_peer_port)]
        return ports

    def url(self, prefix):
        if self.a.store == "file":
            d = os.path.join(self.s3_tmp, prefix)
            os.makedirs(d, exist_ok=True)
            return "file://" + d
        return "s3://%s/%s" % (BUCKET, prefix)

    def s3_args(self):
        if self.a.store == "file":
            return []
        return ["--backup-endpoint", "http://127.0.0.1:%d" % self.s3_port()]

    def env(self):
        e = dict(os.environ)
        e.update(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1")
        e["CAIRN_ENDPOINTS"] = self.endpoints()
        return e

    def endpoints(self):
        return ",".join("127.0.0.1:%d" % self.client_port(i) for i in (1, 2, 3))

    def start_s3(self):
        # Its files go to --s3-dir (tmpfs by default): written to the nodes' disk, each
        # snapshot's 100-200 MB of writeback stalled the Raft log's fsyncs behind it, a cost
        # an object store on other machines does not put on the cluster.
        if self.a.s3_dir:
            d = tempfile.mkdtemp(prefix="cairn-dr-bench-s3-", dir=self.a.s3_dir)
            self.s3_tmp = d
        else:
            d = self.path("s3rver")
            self.s3_tmp = None
        os.makedirs(d, exist_ok=True)
        if self.a.store == "file":
            # --store file: the same backups to a directory in --s3-dir, and no s3rver;
            # what a save costs the cluster without an object store's own CPU on its cores.
            self.s3_tmp = self.s3_tmp or d
            return
        # --s3-nice 19 lets s3rver take only the CPU the cluster and its clients leave (a save
        # costs it about twice the uploading node's CPU, which a real store would not take
        # from the cluster's cores); but then the shipping of the log waits for it, and the
        # recovery point lags by over a second under load, so by default it runs as usual.
        nice = self.a.s3_nice
        cpus = self.a.s3_cpus

        def confine():
            if cpus:
                os.sched_setaffinity(0, cpus)
            if nice:
                os.nice(nice)
        self.s3 = subprocess.Popen(
            [os.path.join(HERE, "node_modules", ".bin", "s3rver"), "-d", d, "-a", "127.0.0.1",
             "-p", str(self.s3_port()), "--silent", "--configure-bucket", BUCKET],
            cwd=HERE, stdout=subprocess.DEVNULL, stderr=open(self.path("s3rver.log"), "w"),
            preexec_fn=confine)
        if cpus and os.sched_getaffinity(self.s3.pid) != cpus:
            raise RuntimeError("s3rver runs on CPUs %s, not %s" %
                               (sorted(os.sched_getaffinity(self.s3.pid)), sorted(cpus)))
        wait_port(self.s3_port())

    def start_cluster(self, tag, extra):
        ic = ",".join("%d=127.0.0.1:%d/127.0.0.1:%d" % (i, self.raft_port(i), self.client_port(i))
                      for i in (1, 2, 3))
        self.nodes = []
        for i in (1, 2, 3):
            args = [os.path.join(self.bin, "cairnd"), "--id", str(i),
                    "--data-dir", self.path(tag, "n%d" % i),
                    "--client-addr", "127.0.0.1:%d" % self.client_port(i),
                    "--raft-addr", "127.0.0.1:%d" % self.raft_port(i),
                    "--http-addr", "127.0.0.1:%d" % self.http_port(i),
                    "--initial-cluster", ic] + extra
            out = open(self.path("%s-n%d.log" % (tag, i)), "a")
            p = subprocess.Popen(args, stdout=out, stderr=out, env=self.env())
            self.nodes.append(p)
            self.procs.append(p)
        return self.nodes

    def kill_cluster(self):
        for p in self.nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()
        self.nodes = []
        self.leader_id = None

    def ctl(self, *args, ok=True, timeout=300):
        r = subprocess.run([os.path.join(self.bin, "cairnctl")] + list(args), env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        if ok and r.returncode != 0:
            raise Fail("cairnctl %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                     r.stderr.strip()))
        return r

    def wait_leader(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            r = self.ctl("--json", "status", ok=False)
            if r.returncode == 0 or r.stdout.startswith("["):
                try:
                    st = json.loads(r.stdout)
                except ValueError:
                    st = []
                for s in st:
                    if s.get("state") == "leader":
                        self.leader_id = s["id"]
                        return self.leader_id
            time.sleep(0.1)
        raise Fail("no leader elected")

    def leader_http(self):
        if self.leader_id is None:
            self.wait_leader()
        return self.http_port(self.leader_id)

    def metrics(self, node):
        status, data = Http(self.http_port(node), timeout=10).request("GET", "/metrics")
        return data.decode()

    def node_log(self, tag, node):
        try:
            with open(self.path("%s-n%d.log" % (tag, node))) as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        for p in self.procs + self.etcd:
            if p.poll() is None:
                p.kill()
                p.wait()
        if self.s3 is not None and self.s3.poll() is None:
            self.s3.kill()
            self.s3.wait()
        if getattr(self, "s3_tmp", None):
            shutil.rmtree(self.s3_tmp, ignore_errors=True)


def histogram(text, name):
    """{le: count}, sum, count of a Prometheus histogram."""
    buckets = {}
    for m in re.finditer(r'^%s_bucket\{le="([^"]+)"\} (\S+)$' % re.escape(name), text, re.M):
        buckets[m.group(1)] = float(m.group(2))
    return buckets, metric(text, name + "_sum"), metric(text, name + "_count")


def log_time(stamp):
    """A cairnd log line's time (2026-01-02T03:04:05.678Z) as Unix seconds."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def key_name(i, keys):
    return "bench/%0*d" % (len(str(max(keys - 1, 1))), i)


def load_http(port, keys, values, threads=16):
    """PUT keys[i] = values[i] through the HTTP API. Returns (seconds, last revision)."""
    nxt = [0]
    lock = threading.Lock()
    errors = []
    last_rev = [0]

    def worker():
        h = Http(port)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(keys) or errors:
                    return
                body = json.dumps({"value": values[i]})
                out = h.json("PUT", "/v1/kv/" + urllib.parse.quote(keys[i], safe=""), body)
                with lock:
                    last_rev[0] = max(last_rev[0], out["revision"])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            h.close()

    t0 = time.time()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise Fail("load: %s" % errors[0])
    return time.time() - t0, last_rev[0]


# ---------------------------------------------------------------------------
# Cairn


def start_main_cluster(env):
    env.start_cluster("a", ["--backup-url", env.url("main")] + env.s3_args() + [
        "--backup-snapshot-interval-ms", "0"] + (env.a.cairnd_arg or []))
    env.wait_leader()
    # The first (empty) snapshot and verification happen on their own at start.
    end = time.time() + 30
    while time.time() < end:
        st = backup_status(env)
        if st.get("snapshots") and st.get("last_verify"):
            return
        time.sleep(0.2)


def backup_status(env):
    return Http(env.leader_http(), timeout=10).json("GET", "/v1/backup")


def wait_applied(env, timeout=120):
    """Until every node has applied what the leader has."""
    end = time.time() + timeout
    while time.time() < end:
        st = json.loads(env.ctl("--json", "status").stdout)
        top = max(s["commit_index"] for s in st)
        if len(st) == 3 and all(s["applied_index"] >= top for s in st):
            return
        time.sleep(0.2)
    raise Fail("the followers did not catch up")


def ship_failed(env):
    """Shipping failed: fail with the leader's words."""
    lines = []
    for n in (1, 2, 3):
        lines += re.findall(r"^.*backup: \w+ failed.*$", env.node_log("a", n), re.M)
    raise Fail("the leader failed to ship to the object store: %s" %
               (sorted(lines)[-1] if lines else "see the logs"))


def wait_archived(env, rev, timeout=120):
    end = time.time() + timeout
    failures0 = backup_status(env)["failures"]
    while time.time() < end:
        st = backup_status(env)
        if st["archive"]["archived_revision"] >= rev:
            return
        if st["failures"] > failures0:
            ship_failed(env)
        time.sleep(0.05)
    raise Fail("the archive did not reach revision %d" % rev)


def snapshot_save(env):
    """`cairnctl snapshot save` end to end: (seconds, manifest)."""
    t0 = time.time()
    r = env.ctl("--json", "snapshot", "save", timeout=600)
    dt = time.time() - t0
    return dt, json.loads(r.stdout)["snapshot"]


def snapshot_log_lines(env, tag):
    """The leader's "backup: snapshot at revision R uploaded (N bytes, M ms)" lines."""
    out = []
    for n in (1, 2, 3):
        for m in re.finditer(r"snapshot at revision (\d+) uploaded \((\d+) bytes, (\d+) ms\)",
                             env.node_log(tag, n)):
            out.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
    return out


def cairn_bench(env, window, extra_during=None, rate=0):
    """cairn-bench for warm-up 2 s + window s, a closed loop or (rate > 0) offering rate ops/s;
    extra_during(t_window_start, t_window_end) runs in this thread while it does. Returns the
    JSON result."""
    a = env.a
    args = [os.path.join(env.bin, "cairn-bench"), "--endpoints", env.endpoints(),
            "--clients", str(a.bench_clients), "--mix", "put=20,get=80", "--keys", str(a.keys),
            "--value-size", str(a.value_size), "--warmup", "2", "--duration", str(window),
            "--seed", str(int(time.time())), "--json"]
    if rate > 0:
        args += ["--rate", str(rate)]
    t0 = time.time()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    extra = None
    if extra_during is not None:
        extra = extra_during(t0 + 2, t0 + 2 + window)
    out, err = p.communicate(timeout=window + 120)
    if p.returncode != 0:
        raise Fail("cairn-bench: exit %d: %s" % (p.returncode, err.strip()))
    return json.loads(out), extra


def snapshot_pairs(env, rate):
    """Pairs of cairn-bench windows, without snapshots then with them back to back; a closed
    loop (rate 0) or rate ops/s offered."""
    a = env.a
    log("snapshot: %d x (cairn-bench %d s without snapshots, then %d s with), %s" %
        (a.runs, a.window, a.window, "%d ops/s offered" % rate if rate else "closed loop"))
    pairs = []
    for r in range(a.runs):
        idle, _ = cairn_bench(env, a.window, rate=rate)

        def snap_loop(w0, w1):
            saves = []
            time.sleep(max(0, w0 + 2 - time.time()))
            while True:
                t = time.time()
                # Stop when a snapshot would run well past the window.
                if saves and t + 0.5 * med([s["seconds"] for s in saves]) > w1:
                    break
                if t >= w1:
                    break
                env.ctl("put", "dr-bench/marker", "load-%d-%d-%d" % (rate, r, len(saves)))
                dt, snap = snapshot_save(env)
                saves.append({"start": t - w0, "seconds": dt, "manifest": snap})
            return saves

        loaded, saves = cairn_bench(env, a.window, snap_loop, rate=rate)
        busy = sum(min(s["start"] + s["seconds"], a.window) - s["start"] for s in saves)
        pairs.append({"idle": idle, "snapshots": loaded, "saves": saves,
                      "snapshot_share": busy / a.window, "rate": rate})
        log("  idle p50 %.2f p99 %.2f ms (%.0f ops/s); with %d snapshots (%.0f%% of the window)"
            " p50 %.2f p99 %.2f ms (%.0f ops/s)" %
            (idle["total"]["p50_ms"], idle["total"]["p99_ms"], idle["total"]["ops_per_s"],
             len(saves), 100 * busy / a.window, loaded["total"]["p50_ms"],
             loaded["total"]["p99_ms"], loaded["total"]["ops_per_s"]))
    return pairs


def cpu_seconds(pids):
    """User and system CPU time of these processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


class BusyLoop:
    """A CPU-bound stand-in for a save (--control): a process at the snapshot worker's nice
    value (10) that spins for duty x 5 ms of every 5 ms, for `seconds`. Each process is
    started ahead and waits for a byte on stdin, so that starting Python (some 20 ms of CPU)
    falls before the run or in the 0.5 s after a stand-in that no measure counts; it exits
    without spinning if stdin closes first (the benchmark stopped)."""

    CODE = ("import sys, time\n"
            "seconds, on, off = (float(x) for x in sys.argv[1:])\n"
            "if not sys.stdin.read(1):\n"
            "    sys.exit()\n"
            "end = time.monotonic() + seconds\n"
            "while time.monotonic() < end:\n"
            "    t = time.monotonic() + on\n"
            "    while time.monotonic() < t:\n"
            "        pass\n"
            "    if off > 0:\n"
            "        time.sleep(off)\n")

    def __init__(self, seconds, duty):
        period = 0.005
        self.args = ["%f" % seconds, "%f" % (period * duty), "%f" % (period * (1 - duty))]
        self.p = None

    def spawn(self):
        self.p = subprocess.Popen([sys.executable, "-c", self.CODE] + self.args,
                                  stdin=subprocess.PIPE,
                                  preexec_fn=lambda: os.nice(10))

    def __call__(self):
        """Runs one; returns (seconds, None)."""
        if self.p is None:
            self.spawn()
        t0 = time.monotonic()
        self.p.stdin.write(b"x")
        self.p.stdin.close()
        if self.p.wait() != 0:
            raise Fail("the busy loop exited with %d" % self.p.returncode)
        dt = time.monotonic() - t0
        self.spawn()
        return dt, None

    def close(self):
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.p = None


def snapshot_interleaved(env, rate, stand_in=None):
    """One cairn-bench run of 2 x runs x window seconds (a closed loop, or rate ops/s offered)
    while snapshots are taken with quiet gaps between them as long as the last save. Every
    request is sorted by when it started (cairn-bench --trace, CLOCK_MONOTONIC like
    time.monotonic()): during a save (from `cairnctl snapshot save` started to its exit) or
    quiet (no save running, and none ended in the 0.5 s before). Both kinds come from the same
    run, interleaved, so that drift of the machine over time falls on both alike.

    With stand_in (a BusyLoop), it runs in place of each save: the
    control that tells what this measure gives for work that is not Cairn's (--control)."""
    a = env.a
    duration = max(6, 2 * a.runs * a.window)
    trace = env.path("trace-%d.txt" % rate)
    log("snapshot: cairn-bench %d s, %s, with %s and quiet gaps taking turns" %
        (duration, "%d ops/s offered" % rate if rate else "closed loop",
         "a stand-in for each save" if stand_in else "snapshots"))
    args = [os.path.join(env.bin, "cairn-bench"), "--endpoints", env.endpoints(),
            "--clients", str(a.bench_clients), "--mix", "put=20,get=80", "--keys", str(a.keys),
            "--value-size", str(a.value_size), "--warmup", "2", "--duration", str(duration),
            "--seed", str(int(time.time())), "--json", "--trace", trace]
    if rate > 0:
        args += ["--rate", str(rate)]
    if stand_in is not None:
        stand_in.spawn()
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    w0, w1 = t0 + 2, t0 + 2 + duration
    saves = []
    gap = 1.0
    while True:
        time.sleep(max(0, w0 + gap - time.monotonic()) if not saves else gap)
        t = time.monotonic()
        if t + gap > w1:
            break
        env.ctl("put", "dr-bench/marker", "interleaved-%d-%d" % (rate, len(saves)))
        t = time.monotonic()
        dt, snap = stand_in() if stand_in else snapshot_save(env)
        saves.append({"start": t, "end": t + dt, "seconds": dt, "manifest": snap})
        gap = max(1.0, dt)
    out, err = p.communicate(timeout=duration + 120)
    if stand_in is not None:
        stand_in.close()
    if p.returncode != 0:
        raise Fail("cairn-bench: exit %d: %s" % (p.returncode, err.strip()))
    during, quiet = [], []
    per_save = [([], []) for _ in saves]  # (during save i, in the quiet gap before it)
    with open(trace) as f:
        for line in f:
            started_ns, ns, _ = line.split()
            t, ms = int(started_ns) / 1e9, int(ns) / 1e6
            cls = None
            for i, sv in enumerate(saves):
                if sv["start"] <= t <= sv["end"]:
                    cls = ("during", i)
                    break
                if t < sv["start"]:
                    prev_end = saves[i - 1]["end"] if i > 0 else w0
                    if t > prev_end + 0.5:
                        cls = ("quiet", i)
                    break
            else:
                if not saves or t > saves[-1]["end"] + 0.5:
                    cls = ("quiet", None)
            if cls is None:
                continue
            if cls[0] == "during":
                during.append(ms)
                per_save[cls[1]][0].append(ms)
            else:
                quiet.append(ms)
                if cls[1] is not None:
                    per_save[cls[1]][1].append(ms)
    if not a.keep:
        os.unlink(trace)
    busy = sum(sv["seconds"] for sv in saves)
    res = {"rate": rate, "duration": duration, "bench": json.loads(out), "t0_monotonic": w0,
           "saves": [{"start": sv["start"] - w0, "seconds": sv["seconds"],
                      "manifest": sv["manifest"]} for sv in saves],
           "snapshot_share": busy / duration,
           "during": {"n": len(during), "p50_ms": pct(during, 50), "p99_ms": pct(during, 99),
                      "p999_ms": pct(during, 99.9)},
           "quiet": {"n": len(quiet), "p50_ms": pct(quiet, 50), "p99_ms": pct(quiet, 99),
                     "p999_ms": pct(quiet, 99.9)},
           "per_save": [{"during_p99_ms": pct(d, 99), "quiet_p99_ms": pct(q, 99),
                         "n_during": len(d), "n_quiet": len(q)} for d, q in per_save]}
    res["ratio"] = res["during"]["p99_ms"] / res["quiet"]["p99_ms"] if quiet else float("nan")
    log("  %d saves (%.0f%% of the run); p99 during saves %.2f ms (%d requests), quiet %.2f ms "
        "(%d requests): %.2fx" % (len(saves), 100 * res["snapshot_share"],
                                  res["during"]["p99_ms"], len(during), res["quiet"]["p99_ms"],
                                  len(quiet), res["ratio"]))
    return res


def phase_snapshot(env, res):
    a = env.a
    log("snapshot: %d x cairnctl snapshot save on a quiet cluster" % a.runs)
    quiet = []
    nodes = [p.pid for p in env.nodes]
    store = [env.s3.pid] if env.s3 is not None else []
    idle_s = 2.0
    for r in range(a.runs):
        env.ctl("put", "dr-bench/marker", "quiet-%d" % r)  # a new index: a new snapshot name
        # The CPU a save costs: the nodes' and s3rver's CPU time during it, less what they
        # use idle (shipping, heartbeats) over as long, measured just before.
        c0 = (cpu_seconds(nodes), cpu_seconds(store))
        time.sleep(idle_s)
        c1 = (cpu_seconds(nodes), cpu_seconds(store))
        dt, snap = snapshot_save(env)
        c2 = (cpu_seconds(nodes), cpu_seconds(store))
        cpu = [max(0.0, (c2[i] - c1[i]) - (c1[i] - c0[i]) * dt / idle_s) for i in (0, 1)]
        quiet.append({"seconds": dt, "manifest": snap, "cpu_nodes_s": cpu[0],
                      "cpu_store_s": cpu[1]})
        log("  save %.2f s: revision %d, %d keys, %d versions, raw %d B, stored %d B; CPU above "
            "idle: nodes %.2f s, store %.2f s" %
            (dt, snap["revision"], snap["keys"], snap["versions"], snap["bytes_raw"],
             snap["bytes_stored"], cpu[0], cpu[1]))
        idle_s = dt
    res["snapshot_quiet"] = quiet
    # The same state downloaded to a local file, as etcdctl snapshot save does (no store).
    downloads = []
    f = env.path("download.snap")
    for r in range(a.runs):
        t0 = time.time()
        env.ctl("snapshot", "save", f, timeout=600)
        dt = time.time() - t0
        downloads.append({"seconds": dt, "bytes": os.path.getsize(f)})
        log("  save FILE %.2f s: %d B" % (dt, downloads[-1]["bytes"]))
        os.unlink(f)
    res["snapshot_download"] = downloads

    res["snapshot_interleaved"] = [snapshot_interleaved(env, 0)]
    if a.bench_rate > 0:
        res["snapshot_interleaved"].append(snapshot_interleaved(env, a.bench_rate))
    if a.pairs:
        res["snapshot_load"] = snapshot_pairs(env, 0)
        if a.bench_rate > 0:
            res["snapshot_paced"] = snapshot_pairs(env, a.bench_rate)
    # --control: the same measure with a busy loop in place of each save, as long as the
    # median quiet save, at each duty; what the measure gives for CPU work that is not Cairn's.
    seconds = med([s["seconds"] for s in quiet])
    # "save": the share of one core a quiet save used, nodes and store together.
    save_duty = med([min(1.0, (s["cpu_nodes_s"] + s["cpu_store_s"]) / s["seconds"])
                     for s in quiet]) * 100
    res["snapshot_control"] = []
    for duty in [save_duty if d == "save" else d for d in a.control]:
        for r in [0] + ([a.bench_rate] if a.bench_rate > 0 else []):
            it = snapshot_interleaved(env, r, BusyLoop(seconds, duty / 100))
            it["duty"], it["stand_in_seconds"] = duty, seconds
            res["snapshot_control"].append(it)
    m = env.metrics(env.leader_id)
    res["snapshot_histogram"] = histogram(m, "cairn_backup_snapshot_duration_seconds")
    res["snapshot_log"] = snapshot_log_lines(env, "a")
    # The leader's own duration (capture to manifest uploaded) of each save above.
    by_rev = {rev: ms for rev, _, ms in res["snapshot_log"]}
    pairs = (res.get("snapshot_load", []) + res.get("snapshot_paced", []) +
             res["snapshot_interleaved"])
    for s in quiet + [x for p in pairs for x in p["saves"]]:
        s["server_ms"] = by_rev.get(s["manifest"]["revision"])


class Writer:
    """An open-loop writer: write i is due at t0 + i / rate, whatever happened to the
    earlier ones, on one of `conns` HTTP connections. Records (revision, ack time)."""

    # 12 connections: with the two pollers' that is 14, under cairnd's 16 HTTP workers
    # (--http-threads). CivetWeb gives each keep-alive connection a worker of its own, so a
    # 17th connection waits for a worker to come free, and two writes once timed out at 10 s
    # that way.
    def __init__(self, port, keys, rate, seconds, value_size, conns=12):
        self.port, self.keys, self.rate, self.seconds = port, keys, rate, seconds
        self.conns = conns
        self.n = int(rate * seconds)
        self.pool = os.urandom(value_size * 64 + 65536).translate(TO_ALNUM).decode()
        self.value_size = value_size
        self.lock = threading.Lock()
        self.next = 0
        self.acks = []  # (revision, ack time, latency)
        self.errors = []
        self.late = 0

    def run(self):
        self.t0 = time.time() + 0.2
        ts = [threading.Thread(target=self.worker, args=(c,)) for c in range(self.conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.t_end = time.time()

    def worker(self, c):
        h = Http(self.port, timeout=10)
        rnd = int.from_bytes(os.urandom(4), "little")
        while True:
            with self.lock:
                i = self.next
                self.next += 1
            if i >= self.n:
                break
            due = self.t0 + i / self.rate
            now = time.time()
            if due > now:
                time.sleep(due - now)
            elif now - due > 0.05:
                self.late += 1
            rnd = (rnd * 1103515245 + 12345) & 0x7FFFFFFF
            off = rnd % (len(self.pool) - self.value_size)
            key = "lag/%04d" % (rnd % self.keys)
            body = '{"value":"%s"}' % self.pool[off:off + self.value_size]
            t_send = time.time()
            try:
                status, data = h.request("PUT", "/v1/kv/" + urllib.parse.quote(key, safe=""),
                                         body)
            except Exception as e:  # noqa: BLE001
                self.errors.append(str(e))
                continue
            t_ack = time.time()
            if status != 200:
                self.errors.append("HTTP %d %s" % (status, data[:200]))
                continue
            rev = json.loads(data)["revision"]
            with self.lock:
                self.acks.append((rev, t_ack, t_ack - t_send))
        h.close()


class Poller:
    """GET /v1/backup on the leader every `every` s: (time, archived_revision, lag_ms);
    /metrics every `metrics_every` s: cairn_backup_recovery_point_lag_seconds."""

    def __init__(self, env, every=0.05, metrics_every=0.25):
        self.env, self.every, self.metrics_every = env, every, metrics_every
        self.samples = []
        self.metric_samples = []
        self.failures = None
        self.stop = threading.Event()
        self.errors = []
        self.t = threading.Thread(target=self.loop)

    def start(self):
        self.t.start()

    def loop(self):
        h = Http(self.env.leader_http(), timeout=10)
        mh = Http(self.env.leader_http(), timeout=10)
        next_m = 0
        while not self.stop.is_set():
            t = time.time()
            try:
                st = h.json("GET", "/v1/backup")
                self.samples.append((time.time(), st["archive"]["archived_revision"],
                                     st["archive"]["lag_ms"]))
                self.failures = st.get("failures", 0)
                if t >= next_m:
                    next_m = t + self.metrics_every
                    _, data = mh.request("GET", "/metrics")
                    v = metric(data.decode(), "cairn_backup_recovery_point_lag_seconds")
                    if v is not None:
                        self.metric_samples.append(v)
            except Exception as e:  # noqa: BLE001
                self.errors.append(str(e))
            rest = t + self.every - time.time()
            if rest > 0:
                self.stop.wait(rest)
        h.close()
        mh.close()

    def finish(self):
        self.stop.set()
        self.t.join()


def lag_run(env, snapshot_at=None):
    """One run of target 2: returns its figures."""
    a = env.a
    port = env.leader_http()
    failures0 = backup_status(env)["failures"]
    # Its own 1,000 keys (lag/NNNN), so that the data set the snapshots and restores
    # carry does not grow by a version per write here.
    w = Writer(port, 1000, a.rate, a.lag_seconds, a.value_size)
    poll = Poller(env)
    poll.start()
    time.sleep(0.3)
    saves = []
    snap_thread = None
    if snapshot_at is not None:
        def snap():
            time.sleep(snapshot_at + 0.5)
            saves.append(snapshot_save(env))
        snap_thread = threading.Thread(target=snap)
        snap_thread.start()
    w.run()
    if snap_thread is not None:
        snap_thread.join()
    if not w.acks:
        poll.finish()
        raise Fail("lag: no write succeeded: %s" % (w.errors[:3],))
    top = max(r for r, _, _ in w.acks)
    end = time.time() + 60
    while time.time() < end and (not poll.samples or poll.samples[-1][1] < top):
        if poll.failures is not None and poll.failures > failures0:
            poll.finish()
            ship_failed(env)
        time.sleep(0.05)
    time.sleep(0.1)
    poll.finish()
    samples = poll.samples
    if not samples or samples[-1][1] < top:
        raise Fail("lag: the archive did not reach revision %d within 60 s" % top)
    # For each acknowledged revision: the first poll that saw the archive at or past it.
    lags = []
    acks = sorted(w.acks)
    j = 0
    for rev, t_ack, _ in acks:
        while samples[j][1] < rev:
            j += 1
        # The poll that saw it may have been sent before the ack arrived: the archive
        # already had it then, so count 0 (the poll interval bounds the error anyway).
        lags.append(max(0.0, samples[j][0] - t_ack))
    dur = w.t_end - w.t0
    gaps = [samples[k + 1][0] - samples[k][0] for k in range(len(samples) - 1)]
    return {
        "writes": len(w.acks), "errors": len(w.errors), "late": w.late,
        "rate": len(w.acks) / dur if dur > 0 else 0,
        "write_p50_ms": 1000 * pct([x for _, _, x in w.acks], 50),
        "write_p99_ms": 1000 * pct([x for _, _, x in w.acks], 99),
        "lag_p50_ms": 1000 * pct(lags, 50), "lag_p99_ms": 1000 * pct(lags, 99),
        "lag_max_ms": 1000 * max(lags),
        "poll_interval_p50_ms": 1000 * pct(gaps, 50) if gaps else None,
        "poll_interval_max_ms": 1000 * max(gaps) if gaps else None,
        "server_lag_samples": len(poll.metric_samples),
        "server_lag_p50_ms": 1000 * pct(poll.metric_samples, 50),
        "server_lag_p99_ms": 1000 * pct(poll.metric_samples, 99),
        "server_lag_max_ms": 1000 * max(poll.metric_samples) if poll.metric_samples else None,
        "status_lag_max_ms": max(s[2] for s in samples),
        "snapshot_seconds": saves[0][0] if saves else None,
        "first_revision": acks[0][0], "last_revision": top,
        "errors_sample": w.errors[:3] + poll.errors[:3],
        # Raw samples relative to the first write's due time: (s, archived_revision, lag_ms).
        "status_samples": [(round(t - w.t0, 3), rv, lg) for t, rv, lg in samples],
        "acks_first_last": [(acks[0][0], round(acks[0][1] - w.t0, 3)),
                            (acks[-1][0], round(acks[-1][1] - w.t0, 3))],
    }


def phase_lag(env, res):
    a = env.a
    for kind, snapshot_at in (("lag", None), ("lag_snapshot", a.lag_seconds / 2.0)):
        log("lag: %d x %d writes/s for %d s%s" % (a.runs, a.rate, a.lag_seconds,
                                                 "" if snapshot_at is None else
                                                 ", one snapshot %.0f s in" % snapshot_at))
        runs = []
        for r in range(a.runs):
            out = lag_run(env, snapshot_at)
            runs.append(out)
            log("  %d writes (%.0f/s, %d errors, %d sent >50 ms late), write p99 %.1f ms; "
                "lag p50 %.0f p99 %.0f max %.0f ms; server gauge p50 %.0f p99 %.0f max %.0f ms%s"
                % (out["writes"], out["rate"], out["errors"], out["late"], out["write_p99_ms"],
                   out["lag_p50_ms"], out["lag_p99_ms"], out["lag_max_ms"],
                   out["server_lag_p50_ms"], out["server_lag_p99_ms"],
                   out["server_lag_max_ms"] or 0,
                   "" if out["snapshot_seconds"] is None else
                   "; snapshot %.2f s" % out["snapshot_seconds"]))
            if out["errors"]:
                log("  errors: %s" % out["errors_sample"])
        res[kind] = runs


def phase_restore(env, res, keys, values):
    a = env.a
    url = env.url("main")
    # A point-in-time restore to the end of the lag runs replays their log from the
    # snapshot before them.
    pitr_rev = res["lag"][-1]["last_revision"] if res.get("lag") else None
    log("restore: a fresh snapshot, a sentinel write archived, then the cluster is killed")
    env.ctl("put", "dr-bench/marker", "final")
    dt, snap = snapshot_save(env)
    res["final_snapshot"] = {"seconds": dt, "manifest": snap}
    sentinel = "sentinel-%d" % int(time.time() * 1000)
    rev = json.loads(env.ctl("--json", "put", "dr-bench/sentinel", sentinel).stdout)["revision"]
    wait_archived(env, rev)
    status = backup_status(env)
    env.kill_cluster()
    shutil.rmtree(env.path("a"))

    clean_rev = res["snapshot_quiet"][0]["manifest"]["revision"]
    for kind, extra, key, want in (
            ("restore_cluster", [], "dr-bench/sentinel", sentinel),
            # The data set as loaded (the first quiet snapshot, no log): what etcd restores.
            ("restore_cluster_dataset", ["--restore-revision", str(clean_rev)],
             keys[-1], values[-1])):
        res[kind] = restore_cluster_runs(env, url, kind, extra, key, want)
    res["restore_sentinel_revision"] = rev
    res["restore_dataset_revision"] = clean_rev
    res["restore_archive"] = status["archive"]

    for kind, extra in (("restore_ctl", []),
                        ("restore_ctl_dataset", ["--revision", str(clean_rev)]),
                        ("restore_ctl_pitr", ["--revision", str(pitr_rev)] if pitr_rev else None)):
        if extra is None:
            continue
        runs = []
        for r in range(a.runs):
            d = env.path("ctl-%s-%d" % (kind, r))
            t0 = time.time()
            out = json.loads(env.ctl("--json", "snapshot", "restore", "--from", url,
                                     "--data-dir", d, *extra, *env.s3_args()).stdout)
            dt = time.time() - t0
            seed = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            runs.append({"seconds": dt, "out": out, "seed_bytes": seed})
            log("  cairnctl snapshot restore%s: %.2f s (snapshot at revision %d plus %d entries"
                " to revision %d; seed %d bytes)" % (" " + " ".join(extra) if extra else "", dt,
                                                     out["snapshot_revision"], out["entries"],
                                                     out["revision"], seed))
            shutil.rmtree(d, ignore_errors=True)
        res[kind] = runs


def restore_cluster_runs(env, url, kind, extra, key, want):
    a = env.a
    runs = []
    for r in range(a.runs):
        tag = "%s-%d" % (kind, r)
        t0 = time.time()
        env.start_cluster(tag, ["--backup-url", env.url("%s-%d" % (kind, r))] + env.s3_args()
                          + ["--restore-from", url, "--backup-snapshot-interval-ms", "0"] + extra)
        got = None
        deadline = t0 + 300
        while time.time() < deadline:
            rr = env.ctl("--timeout", "1000", "get", key, ok=False, timeout=30)
            if rr.returncode == 0:
                got = rr.stdout.strip()
                break
            if any(p.poll() is not None for p in env.nodes):
                raise Fail("restore: a node exited: see %s" % env.path("%s-n*.log" % tag))
            time.sleep(0.05)
        serving = time.time() - t0
        if got != want:
            raise Fail("restore: get %s gave %r, not %r" % (key, (got or "")[:80], want[:80]))
        # Where the time went, from the nodes' logs: seconds after the start of each step's
        # end (the slowest node).
        steps = {}
        for n in (1, 2, 3):
            text = env.node_log(tag, n)
            for step, pattern in (("restored", r"restored revision \d+ \(snapshot"),
                                  ("loaded", r"loaded the restored state")):
                m = re.search(r"^(\S+) INFO node=\d+ " + pattern, text, re.M)
                if m:
                    at = log_time(m.group(1)) - t0
                    steps[step] = max(steps.get(step, at), at)
        st = json.loads(env.ctl("--json", "status").stdout)
        nkeys = max(s["keys"] for s in st)
        runs.append({"seconds": serving, "steps": steps, "keys": nkeys,
                     "revision": max(s["revision"] for s in st)})
        log("  %s: 3 nodes restored and serving in %.2f s (%d keys, revision %d); downloaded "
            "and restored by %.2f s, state loaded by %.2f s" %
            (kind, serving, nkeys, runs[-1]["revision"], steps.get("restored", -1),
             steps.get("loaded", -1)))
        env.kill_cluster()
        shutil.rmtree(env.path(tag), ignore_errors=True)
    return runs


# ---------------------------------------------------------------------------
# etcd


def etcd_bin(name):
    for d in ("/usr/bin", "/usr/local/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def etcd_cluster_arg(env):
    return ",".join("e%d=http://127.0.0.1:%d" % (i, env.etcd_peer_port(i)) for i in (1, 2, 3))


def etcd_endpoints(env):
    return ",".join("127.0.0.1:%d" % env.etcd_client_port(i) for i in (1, 2, 3))


def start_etcd(env, tag):
    env.etcd = []
    for i in (1, 2, 3):
        args = [etcd_bin("etcd"), "--name", "e%d" % i, "--data-dir", env.path(tag, "e%d" % i),
                "--listen-client-urls", "http://127.0.0.1:%d" % env.etcd_client_port(i),
                "--advertise-client-urls", "http://127.0.0.1:%d" % env.etcd_client_port(i),
                "--listen-peer-urls", "http://127.0.0.1:%d" % env.etcd_peer_port(i),
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % env.etcd_peer_port(i),
                "--initial-cluster", etcd_cluster_arg(env), "--initial-cluster-state", "new",
                "--initial-cluster-token", "cairn-dr-bench", "--logger", "zap",
                "--log-outputs", "stderr"]
        out = open(env.path("%s-e%d.log" % (tag, i)), "a")
        env.etcd.append(subprocess.Popen(args, stdout=out, stderr=out))


def stop_etcd(env):
    for p in env.etcd:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait()
    env.etcd = []


def etcdctl(env, *args, ok=True, endpoints=None, timeout=600):
    e = dict(os.environ)
    e["ETCDCTL_API"] = "3"
    r = subprocess.run([etcd_bin("etcdctl"), "--endpoints", endpoints or etcd_endpoints(env)]
                       + list(args), env=e, capture_output=True, text=True, timeout=timeout)
    if ok and r.returncode != 0:
        raise Fail("etcdctl %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def etcd_leader(env, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        r = etcdctl(env, "endpoint", "status", "-w", "json", ok=False, timeout=10)
        try:
            for s in json.loads(r.stdout):
                if s["Status"]["leader"] == s["Status"]["header"]["member_id"]:
                    return s["Endpoint"]
        except (ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)
    raise Fail("etcd: no leader")


def etcd_load(env, keys, values, threads=16):
    ep = etcd_leader(env)
    port = int(ep.rsplit(":", 1)[1])
    nxt = [0]
    lock = threading.Lock()
    errors = []

    def worker():
        h = Http(port)
        try:
            while True:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(keys) or errors:
                    return
                body = json.dumps({"key": base64.b64encode(keys[i].encode()).decode(),
                                   "value": base64.b64encode(values[i].encode()).decode()})
                h.json("POST", "/v3/kv/put", body)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        finally:
            h.close()

    t0 = time.time()
    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise Fail("etcd load: %s" % errors[0])
    return time.time() - t0


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def phase_etcd(env, res, keys, values):
    a = env.a
    if etcd_bin("etcd") is None or etcd_bin("etcdctl") is None:
        log("etcd: not installed (apt-get install -y etcd-server etcd-client): skipped")
        res["etcd"] = {"skipped": "etcd or etcdctl is not installed"}
        return
    out = {}
    version = subprocess.run([etcd_bin("etcd"), "--version"], capture_output=True, text=True)
    out["version"] = version.stdout.splitlines()[0] if version.stdout else "?"
    log("etcd: 3 members, loading %d keys x %d B through the JSON gateway" %
        (len(keys), a.value_size))
    start_etcd(env, "etcd")
    etcd_leader(env)
    out["load_seconds"] = etcd_load(env, keys, values)
    etcdctl(env, "put", "dr-bench/sentinel", "etcd-sentinel")
    log("  loaded in %.1f s" % out["load_seconds"])
    leader = etcd_leader(env)
    saves = []
    for r in range(a.runs):
        f = env.path("etcd-%d.db" % r)
        t0 = time.time()
        etcdctl(env, "snapshot", "save", f, endpoints=leader)
        dt = time.time() - t0
        saves.append({"seconds": dt, "bytes": os.path.getsize(f)})
        log("  etcdctl snapshot save: %.2f s, %d bytes" % (dt, saves[-1]["bytes"]))
    out["save"] = saves
    out["data_dir_bytes"] = du(env.path("etcd", "e1"))
    stop_etcd(env)
    snap = env.path("etcd-0.db")
    restores = []
    for r in range(a.runs):
        tag = "etcd-r%d" % r
        t0 = time.time()
        procs = []
        for i in (1, 2, 3):
            e = dict(os.environ)
            e["ETCDCTL_API"] = "3"
            procs.append(subprocess.Popen(
                [etcd_bin("etcdctl"), "snapshot", "restore", snap, "--name", "e%d" % i,
                 "--data-dir", env.path(tag, "e%d" % i), "--initial-cluster",
                 etcd_cluster_arg(env), "--initial-cluster-token", "cairn-dr-bench-%d" % r,
                 "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % env.etcd_peer_port(i)],
                env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        for p in procs:
            _, err = p.communicate(timeout=600)
            if p.returncode != 0:
                raise Fail("etcdctl snapshot restore: %s" % err.strip())
        t_restored = time.time() - t0
        # Start the restored members as an existing cluster.
        env.etcd = []
        for i in (1, 2, 3):
            args = [etcd_bin("etcd"), "--name", "e%d" % i, "--data-dir", env.path(tag, "e%d" % i),
                    "--listen-client-urls", "http://127.0.0.1:%d" % env.etcd_client_port(i),
                    "--advertise-client-urls", "http://127.0.0.1:%d" % env.etcd_client_port(i),
                    "--listen-peer-urls", "http://127.0.0.1:%d" % env.etcd_peer_port(i),
                    "--initial-advertise-peer-urls",
                    "http://127.0.0.1:%d" % env.etcd_peer_port(i),
                    "--logger", "zap", "--log-outputs", "stderr"]
            o = open(env.path("%s-e%d.log" % (tag, i)), "a")
            env.etcd.append(subprocess.Popen(args, stdout=o, stderr=o))
        got = None
        deadline = time.time() + 300
        while time.time() < deadline:
            rr = etcdctl(env, "--command-timeout", "1s", "get", "dr-bench/sentinel",
                         "--print-value-only", ok=False, timeout=30)
            if rr.returncode == 0 and rr.stdout.strip():
                got = rr.stdout.strip()
                break
            time.sleep(0.05)
        serving = time.time() - t0
        if got != "etcd-sentinel":
            raise Fail("etcd restore: get gave %r" % got)
        n = etcdctl(env, "get", "bench/", "--prefix", "--limit", "1", "-w", "json")
        count = json.loads(n.stdout).get("count", 0)
        restores.append({"restore_seconds": t_restored, "serving_seconds": serving,
                         "keys": count, "data_dir_bytes": du(env.path(tag, "e1"))})
        log("  3 x etcdctl snapshot restore (in parallel) %.2f s; serving %.2f s after the "
            "restores began (%d keys)" % (t_restored, serving, count))
        stop_etcd(env)
        shutil.rmtree(env.path(tag), ignore_errors=True)
    out["restore"] = restores
    res["etcd"] = out


# ---------------------------------------------------------------------------
# Report


def report_interleaved(a, it):
    P = print
    rate = it["rate"]
    b = it["bench"]["total"]
    if "duty" in it:
        P("  control: in place of each save, a busy loop at nice 10 taking %.0f%% of one core "
          "for %.2f s (no backup work)" % (it["duty"], it["stand_in_seconds"]))
    what = "stand-in" if "duty" in it else "save"
    P("  cairn-bench, %d clients, put=20,get=80, %s, one %d s run with %ss and quiet gaps "
      "taking turns (%d %ss, %.0f%% of the run; %.0f ops/s in all):" %
      (a.bench_clients, "%d ops/s offered" % rate if rate else "closed loop", it["duration"],
       what, len(it["saves"]), what, 100 * it["snapshot_share"], b["ops_per_s"]))
    P("    %-28s %-12s %-10s %-10s %-10s" % ("requests started", "count", "p50 ms", "p99 ms",
                                              "p99.9 ms"))
    for label, key in (("in quiet gaps", "quiet"), ("during a " + what, "during")):
        c = it[key]
        P("    %-28s %-12s %-10s %-10s %-10s" % (label, fmt(c["n"], 0), fmt(c["p50_ms"], 2),
                                                  fmt(c["p99_ms"], 2), fmt(c["p999_ms"], 2)))
    per = [x["during_p99_ms"] / x["quiet_p99_ms"] for x in it["per_save"]
           if x["n_quiet"] and x["n_during"]]
    P("    p99 during / quiet: %.2f (%s); each %s against the gap before it: %s "
      "(%d of %d within 2x)" % (it["ratio"], "the control" if "duty" in it else "target <= 2",
                                what, ", ".join("%.2f" % x for x in per),
                                sum(1 for x in per if x <= 2), len(per)))


def report_pairs(a, pairs):
    P = print
    rate = pairs[0]["rate"]
    P("  cairn-bench, %d clients, put=20,get=80, %d s windows, %s:" %
      (a.bench_clients, a.window, "%d ops/s offered" % rate if rate else "closed loop"))
    P("    %-28s %-22s %-22s %-22s" % ("", "ops/s", "p50 ms", "p99 ms"))
    for label, key in (("without snapshots", "idle"), ("with snapshots", "snapshots")):
        P("    %-28s %-22s %-22s %-22s" % (
            label, msr([p[key]["total"]["ops_per_s"] for p in pairs], 0),
            msr([p[key]["total"]["p50_ms"] for p in pairs], 2),
            msr([p[key]["total"]["p99_ms"] for p in pairs], 2)))
        for op in ("put", "get"):
            if all(op in p[key].get("ops", {}) for p in pairs):
                P("    %-28s %-22s %-22s %-22s" % (
                    "  " + op, msr([p[key]["ops"][op]["ops_per_s"] for p in pairs], 0),
                    msr([p[key]["ops"][op]["p50_ms"] for p in pairs], 2),
                    msr([p[key]["ops"][op]["p99_ms"] for p in pairs], 2)))
    ratios = [p["snapshots"]["total"]["p99_ms"] / p["idle"]["total"]["p99_ms"] for p in pairs]
    P("    p99 with / without: %s (per run: %s); snapshots per window: %s, covering %s%% of it" %
      (msr(ratios, 2), ", ".join("%.2f" % x for x in ratios),
       ", ".join(str(len(p["saves"])) for p in pairs),
       msr([100 * p["snapshot_share"] for p in pairs], 0)))


def report(env, res):
    a = env.a
    P = print
    P()
    P("Disaster-recovery benchmark: %d keys x %d B (%s, all different), %d run(s) each; "
      "median [min-max]" % (a.keys, a.value_size,
                            "text shaped like configuration files" if a.values == "config"
                            else "random letters and digits", a.runs))
    if a.store == "file":
        P("machine: %d CPUs, load average before %s; store: file:// in %s (no s3rver)" %
          (os.cpu_count(), res["loadavg_before"], a.s3_dir or "the temporary directory"))
    else:
        P("machine: %d CPUs, load average before %s; s3rver at nice %d, %s, its files in %s" %
          (os.cpu_count(), res["loadavg_before"], a.s3_nice,
           "on vCPU %s" % ",".join(str(c) for c in sorted(a.s3_cpus)) if a.s3_cpus
           else "on any vCPU", a.s3_dir or "the temporary directory"))
    P("load: %d keys through HTTP in %.1f s (%.0f puts/s)" %
      (a.keys, res["load_seconds"], a.keys / res["load_seconds"]))
    P()
    P("1. Snapshot (target: taken and uploaded in < 5 s; client p99 <= 2x idle)")
    q = res["snapshot_quiet"]
    man = [s["manifest"] for s in q]
    P("  cairnctl snapshot save, quiet cluster   %s s" % msr([s["seconds"] for s in q], 2))
    P("  manifest: %d keys, %d versions, bytes_raw %s, bytes_stored %s (stored/raw %.3f)" %
      (man[-1]["keys"], man[-1]["versions"], fmt(man[-1]["bytes_raw"], 0),
       fmt(man[-1]["bytes_stored"], 0), man[-1]["bytes_stored"] / max(1, man[-1]["bytes_raw"])))
    P("  the leader's log, capture to uploaded  %s ms" % msr([s.get("server_ms") for s in q], 0))
    P("  CPU per save above idle: nodes %s s, %s %s s; %s%% of one core over the save" %
      (msr([s["cpu_nodes_s"] for s in q], 2), "the store" if a.store == "file" else "s3rver",
       msr([s["cpu_store_s"] for s in q], 2),
       msr([100 * (s["cpu_nodes_s"] + s["cpu_store_s"]) / s["seconds"] for s in q], 0)))
    if res.get("snapshot_download"):
        P("  cairnctl snapshot save FILE (download, checked) %s s" %
          msr([s["seconds"] for s in res["snapshot_download"]], 2))
    buckets, hsum, hcount = res["snapshot_histogram"]
    if hcount:
        P("  cairn_backup_snapshot_duration_seconds  count %d, mean %.2f s; buckets %s" %
          (hcount, hsum / hcount, ", ".join("le %s: %d" % (k, v) for k, v in buckets.items()
                                            if v and (k == "+Inf" or float(k) >= 0.1))))
    for it in res["snapshot_interleaved"]:
        report_interleaved(a, it)
    for key in ("snapshot_load", "snapshot_paced"):
        if key in res:
            report_pairs(a, res[key])
    for it in res.get("snapshot_control", []):
        report_interleaved(a, it)
    pairs = (res.get("snapshot_load", []) + res.get("snapshot_paced", []) +
             res["snapshot_interleaved"])
    under = [s for p in pairs for s in p["saves"]]
    if under:
        P("    snapshot save under load: %s s (the leader's log: %s ms); bytes_raw %s to %s" %
          (msr([s["seconds"] for s in under], 2), msr([s.get("server_ms") for s in under], 0),
           fmt(min(s["manifest"]["bytes_raw"] for s in under), 0),
           fmt(max(s["manifest"]["bytes_raw"] for s in under), 0)))
    P()
    if a.snapshot_only:
        return
    P("2. Recovery point lag at %d writes/s for %d s (target: < 1 s); ms from a write's ack "
      "to the first 50 ms poll of GET /v1/backup showing it archived" % (a.rate, a.lag_seconds))
    for kind, label in (("lag", "no snapshot"), ("lag_snapshot", "one snapshot mid-run")):
        runs = res.get(kind) or []
        if not runs:
            continue
        P("  %s:" % label)
        P("    writes/s %s (errors %s), write p99 %s ms" %
          (msr([r["rate"] for r in runs], 0), ", ".join(str(r["errors"]) for r in runs),
           msr([r["write_p99_ms"] for r in runs], 1)))
        P("    lag p50 %s, p99 %s, max %s ms" % (msr([r["lag_p50_ms"] for r in runs], 0),
                                               msr([r["lag_p99_ms"] for r in runs], 0),
                                               msr([r["lag_max_ms"] for r in runs], 0)))
        P("    server's cairn_backup_recovery_point_lag_seconds, sampled every 250 ms (%s "
          "samples): p50 %s, p99 %s, max %s ms" % (
              msr([r["server_lag_samples"] for r in runs], 0),
              msr([r["server_lag_p50_ms"] for r in runs], 0),
              msr([r["server_lag_p99_ms"] for r in runs], 0),
              msr([r["server_lag_max_ms"] for r in runs], 0)))
        if kind == "lag_snapshot":
            P("    snapshot save during the run: %s s" %
              msr([r["snapshot_seconds"] for r in runs], 2))
    P()
    P("3. Restore (target: a new cluster serving in < 10 s)")
    rc = res["restore_cluster"]
    fs = res["final_snapshot"]["manifest"]
    P("  from the snapshot at revision %d plus the archived log to revision %d" %
      (fs["revision"], res["restore_sentinel_revision"]))
    P("  3 x cairnd --restore-from, start to a linearizable get of the last write: %s s" %
      msr([r["seconds"] for r in rc], 2))
    for step, label in (("restored", "downloaded and restored (slowest node)"),
                        ("loaded", "restored state loaded (slowest node)")):
        P("    %-40s by %s s" % (label, msr([r["steps"].get(step) for r in rc], 2)))
    P("    (the rest: an election, which waits for an election timeout, and the read)")
    rd = res.get("restore_cluster_dataset")
    if rd:
        P("  the same, to the data set as loaded (revision %d, the first snapshot, no log): %s s"
          % (res["restore_dataset_revision"], msr([r["seconds"] for r in rd], 2)))
    for kind, label in (("restore_ctl", "latest"), ("restore_ctl_dataset", "the data set"),
                        ("restore_ctl_pitr", "point in time")):
        runs = res.get(kind)
        if runs:
            o = runs[-1]["out"]
            P("  cairnctl snapshot restore --data-dir (%s: snapshot at revision %d + %d "
              "entries): %s s, seed %s bytes" % (label, o["snapshot_revision"], o["entries"],
                                                 msr([r["seconds"] for r in runs], 2),
                                                 fmt(runs[-1]["seed_bytes"], 0)))
    e = res.get("etcd")
    if e:
        P()
        if "skipped" in e:
            P("4. etcd: skipped (%s)" % e["skipped"])
        else:
            P("4. etcd (%s), 3 members, the same keys and values" % e["version"])
            P("  load through the JSON gateway (16 threads): %.1f s" % e["load_seconds"])
            P("  etcdctl snapshot save (local file, no upload): %s s, %s bytes" %
              (msr([s["seconds"] for s in e["save"]], 2), fmt(e["save"][-1]["bytes"], 0)))
            P("  3 x etcdctl snapshot restore in parallel: %s s; then 3 members started until "
              "a get succeeds: %s s in all" %
              (msr([r["restore_seconds"] for r in e["restore"]], 2),
               msr([r["serving_seconds"] for r in e["restore"]], 2)))
            P("  data dir per member: %s bytes before, %s bytes restored" %
              (fmt(e["data_dir_bytes"], 0), fmt(e["restore"][-1]["data_dir_bytes"], 0)))


def control_duties(text):
    """--control: percentages of one core (1-100) or "save", comma-separated."""
    duties = []
    for x in text.split(","):
        if x == "save":
            duties.append(x)
        elif x.isdigit() and 1 <= int(x) <= 100:
            duties.append(int(x))
        else:
            raise argparse.ArgumentTypeError(
                "%r is not a share of one core: give percentages from 1 to 100, or 'save'" % x)
    return duties


def cpu_list(text):
    """--s3-cpus: CPU numbers, comma-separated, each one this process may use."""
    allowed = os.sched_getaffinity(0)
    try:
        cpus = {int(c) for c in text.split(",") if c.strip() != ""}
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a list of CPU numbers, e.g. 1 or 0,1" % text)
    bad = sorted(c for c in cpus if c not in allowed)
    if not cpus or bad:
        raise argparse.ArgumentTypeError(
            "%r: CPUs available here are %s" % (text, ",".join(str(c) for c in sorted(allowed))))
    return cpus


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--value-size", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--etcd", action="store_true")
    ap.add_argument("--values", choices=("random", "config"), default="random",
                    help="random letters and digits (LZ4 cannot shrink them; the default), or "
                    "text shaped like configuration files")
    ap.add_argument("--window", type=int, default=10, help="cairn-bench window, s [10]")
    ap.add_argument("--s3-dir", default="/dev/shm" if os.path.isdir("/dev/shm") else "",
                    help="where s3rver keeps its files (empty: the temporary directory, on the "
                         "nodes' disk) [/dev/shm]")
    ap.add_argument("--s3-nice", type=int, default=0,
                    help="nice value of s3rver [0]")
    ap.add_argument("--s3-cpus", metavar="LIST", type=cpu_list, default=set(),
                    help="run s3rver on these vCPUs only, e.g. 1 (default: any)")
    ap.add_argument("--store", choices=("s3", "file"), default="s3",
                    help="back up to s3rver, or to a file:// directory in --s3-dir [s3]")
    ap.add_argument("--bench-rate", type=int, default=1000,
                    help="ops/s the paced snapshot runs offer (0: closed loop only) [1000]")
    ap.add_argument("--bench-clients", type=int, default=8)
    ap.add_argument("--rate", type=int, default=1000, help="writes/s for the lag [1000]")
    ap.add_argument("--lag-seconds", type=int, default=30)
    ap.add_argument("--port-base", type=int, default=29100,
                    help="ports P+1..P+23, P+90, P+101..P+113 [29100]")
    ap.add_argument("--cairnd-arg", action="append", metavar="ARG",
                    help="one more argument for the measured cluster's nodes, e.g. "
                         "--cairnd-arg=--backup-snapshot-rate=25165824 (repeatable)")
    ap.add_argument("--pairs", action="store_true",
                    help="also measure the snapshots' effect the old way: --runs pairs of "
                         "windows, one without snapshots and one with them back to back")
    ap.add_argument("--control", metavar="DUTY,...", default=[],
                    type=control_duties,
                    help="also run the interleaved measure with, in place of each save, a busy "
                    "loop at nice 10 taking DUTY%% of one core for as long as a quiet save; "
                    "'save' is the share a quiet save used (e.g. 10,save,100): what the measure "
                    "gives on this machine for CPU work that is not Cairn's")
    ap.add_argument("--snapshot-only", action="store_true",
                    help="measure the snapshot figures only (no lag, restore or etcd)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    if a.s3_cpus and a.store != "s3":
        ap.error("--s3-cpus places s3rver, and --store %s runs none" % a.store)
    if a.store == "s3" and not os.path.exists(os.path.join(HERE, "node_modules", ".bin", "s3rver")):
        print("skip: s3rver is not installed (deploy/deps.sh --test)")
        return 77
    env = Env(a)
    busy = [p for p in env.all_ports() if not port_free(p)]
    if busy:
        print("dr_bench: ports in use: %s (--port-base)" % busy, file=sys.stderr)
        return 1
    res = {"args": vars(a), "loadavg_before": open("/proc/loadavg").read().split()[:3],
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    ok = False
    try:
        env.start_s3()
        start_main_cluster(env)
        keys = [key_name(i, a.keys) for i in range(a.keys)]
        values = (config_values if a.values == "config" else random_values)(a.keys,
                                                                             a.value_size)
        log("loading %d keys x %d B" % (a.keys, a.value_size))
        res["load_seconds"], _ = load_http(env.leader_http(), keys, values)
        wait_applied(env)
        log("  %.1f s (%.0f puts/s)" % (res["load_seconds"], a.keys / res["load_seconds"]))
        phase_snapshot(env, res)
        if not a.snapshot_only:
            phase_lag(env, res)
            phase_restore(env, res, keys, values)
        if a.etcd and not a.snapshot_only:
            phase_etcd(env, res, keys, values)
        res["loadavg_after"] = open("/proc/loadavg").read().split()[:3]
        report(env, res)
        ok = True
    except (Fail, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as e:
        print("dr_bench: FAIL: %s (logs in %s)" % (e, env.tmp), file=sys.stderr)
    finally:
        env.close()
        if a.json:
            with open(a.json, "w") as f:
                json.dump(res, f, indent=1, default=str)
        if ok and not a.keep:
            shutil.rmtree(env.tmp, ignore_errors=True)
        elif a.keep:
            print("kept %s" % env.tmp)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
