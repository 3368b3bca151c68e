#!/usr/bin/python3
"""Read replicas: stale-read throughput with 3 voters plus 0, 1, 2 standby members (issue 7;
docs/performance.md, "Read replicas").

Usage: replica_bench.py BUILD_DIR [--replicas 0,1,2] [--cpu-per-node 0.15] [--runs 3]
                        [--window 8] [--clients 8] [--write-rate 200] [--keys 10000]
                        [--port-base 29700] [--json FILE] [--keep]

Every configuration is a fresh cluster of this build's cairnd on 127.0.0.1: 3 voters
(--initial-cluster), then R nodes started with --join 1 and added with `cairnctl member add`
(standby: they receive the log and vote on nothing). On one machine every node shares the
same cores, so adding a node cannot add CPU. Each cairnd therefore runs in a cgroup (v1 cpu
controller, /sys/fs/cgroup/cpu) with a CFS quota of --cpu-per-node cores. That stands in for
a machine of its own; the load generators run outside the quotas.

The measurement, --runs times per configuration: one cairn-bench per node other than the
leader (the followers and the replicas, where a service's reads go), --clients closed-loop
clients doing stale gets of the preloaded keys at that node (--mix stale=100 --stale-endpoint
NODE), all at once for --window seconds, plus one cairn-bench offering --write-rate puts/s
through the leader (--rate, put=100). It reports stale gets/s summed over the readers and per
reader, and the writes' p50/p99: adding replicas should add read capacity without slowing
writes.

Exit status: 0 when everything ran (the figures are not judged here), 1 when something did
not, 77 without root (cgroups).
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CGROOT = "/sys/fs/cgroup/cpu"


class Fail(Exception):
    pass


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S", time.gmtime()), msg), file=sys.stderr,
          flush=True)


def med(values):
    return statistics.median(values) if values else float("nan")


def msr(values, digits=0):
    if not values:
        return "-"
    f = "%%.%df" % digits
    if len(values) == 1:
        return f % values[0]
    return (f + " [" + f + "-" + f + "]") % (med(values), min(values), max(values))


class Cluster:
    def __init__(self, a, tag):
        self.a = a
        self.bin = os.path.join(os.path.abspath(a.build_dir), "bin")
        self.tmp = tempfile.mkdtemp(prefix="cairn-replica-bench-")
        self.tag = tag
        self.procs = {}
        self.cgroups = []

    def client(self, i):
        return "127.0.0.1:%d" % (self.a.port_base + i)

    def raft(self, i):
        return "127.0.0.1:%d" % (self.a.port_base + 20 + i)

    def endpoints(self, ids):
        return ",".join(self.client(i) for i in ids)

    def cgroup(self, i):
        path = os.path.join(CGROOT, "cairn-replica-bench-%d-n%d" % (os.getpid(), i))
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "cpu.cfs_period_us"), "w") as f:
            f.write("100000")
        with open(os.path.join(path, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(int(self.a.cpu_per_node * 100000)))
        self.cgroups.append(path)
        return path

    def start(self, i, extra):
        args = [os.path.join(self.bin, "cairnd"), "--id", str(i),
                "--data-dir", os.path.join(self.tmp, "n%d" % i),
                "--client-addr", self.client(i), "--raft-addr", self.raft(i),
                "--http-addr", ""] + extra
        out = open(os.path.join(self.tmp, "n%d.log" % i), "a")
        procs_file = os.path.join(self.cgroup(i), "cgroup.procs")

        def join_cgroup():  # in the child, before it execs cairnd
            with open(procs_file, "w") as f:
                f.write(str(os.getpid()))

        p = subprocess.Popen(args, stdout=out, stderr=out, preexec_fn=join_cgroup)
        self.procs[i] = p

    def ctl(self, *args, endpoints=None, ok=True):
        r = subprocess.run([os.path.join(self.bin, "cairnctl"), "--endpoints",
                            endpoints or self.endpoints([1, 2, 3])] + list(args),
                           capture_output=True, text=True, timeout=120)
        if ok and r.returncode != 0:
            raise Fail("cairnctl %s: exit %d: %s" % (" ".join(args), r.returncode,
                                                     r.stderr.strip()))
        return r

    def status(self, i):
        r = self.ctl("--json", "status", endpoints=self.client(i), ok=False)
        if r.returncode != 0:
            return None
        try:
            st = json.loads(r.stdout)
        except ValueError:
            return None
        return st[0] if isinstance(st, list) else st

    def wait(self, what, cond, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            v = cond()
            if v:
                return v
            time.sleep(0.1)
        raise Fail("timed out waiting for " + what)

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
        for cg in self.cgroups:
            try:
                os.rmdir(cg)
            except OSError:
                pass
        if not self.a.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


def bench(c, args):
    return subprocess.Popen([os.path.join(c.bin, "cairn-bench")] + args,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def measure(c, ids, a):
    procs = []
    for i in ids:
        procs.append((i, bench(c, ["--endpoints", c.endpoints([1, 2, 3]), "--mix", "stale=100",
                                   "--stale-endpoint", c.client(i), "--clients",
                                   str(a.clients), "--keys", str(a.keys), "--warmup", "2",
                                   "--duration", str(a.window), "--json"])))
    writer = bench(c, ["--endpoints", c.endpoints([1, 2, 3]), "--mix", "put=100", "--rate",
                       str(a.write_rate), "--clients", "4", "--keys", str(a.keys),
                       "--warmup", "2", "--duration", str(a.window), "--json"])
    per_node = {}
    for i, p in procs:
        out, err = p.communicate(timeout=a.window + 60)
        if p.returncode != 0:
            raise Fail("cairn-bench at node %d: exit %d: %s" % (i, p.returncode, err.strip()))
        per_node[i] = json.loads(out)["total"]
    out, err = writer.communicate(timeout=a.window + 60)
    if writer.returncode != 0:
        raise Fail("cairn-bench writer: exit %d: %s" % (writer.returncode, err.strip()))
    return per_node, json.loads(out)["total"]


def run_config(a, replicas):
    c = Cluster(a, "r%d" % replicas)
    try:
        ic = ",".join("%d=%s/%s" % (i, c.raft(i), c.client(i)) for i in (1, 2, 3))
        for i in (1, 2, 3):
            c.start(i, ["--initial-cluster", ic])
        c.wait("a leader", lambda: any((c.status(i) or {}).get("state") == "leader"
                                       for i in (1, 2, 3)))
        r = subprocess.run([os.path.join(c.bin, "cairn-bench"), "--endpoints",
                            c.endpoints([1, 2, 3]), "--preload", "--keys", str(a.keys),
                            "--value-size", "100", "--duration", "0"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise Fail("preload: " + r.stderr.strip())
        ids = [1, 2, 3]
        for k in range(replicas):
            i = 4 + k
            c.start(i, ["--join", "1"])
            c.wait("node %d to listen" % i, lambda: c.status(i) is not None)
            c.ctl("member", "add", str(i), "%s/%s" % (c.raft(i), c.client(i)))
            ids.append(i)
        leader_rev = max((c.status(i) or {}).get("revision", 0) for i in (1, 2, 3))
        for i in ids:
            c.wait("node %d to catch up" % i,
                   lambda: (c.status(i) or {}).get("revision", 0) >= leader_rev, timeout=120)
        members = json.loads(c.ctl("--json", "member", "list").stdout)
        leader = members["leader_id"]
        readers = [i for i in ids if i != leader]
        log("%d replicas: leader %d; roles %s; stale gets at %s" % (
            replicas, leader, ", ".join("%d %s" % (m["id"], m["role"])
                                        for m in members["members"]), readers))
        runs = []
        for run in range(a.runs):
            per_node, writes = measure(c, readers, a)
            total = sum(t["ops_per_s"] for t in per_node.values())
            runs.append({"per_node": per_node, "writes": writes, "stale_ops_per_s": total})
            log("  run %d: stale gets/s %.0f in all (%s); writes %.0f/s p50 %.2f p99 %.2f ms"
                % (run + 1, total, ", ".join("n%d %.0f" % (i, t["ops_per_s"])
                                             for i, t in sorted(per_node.items())),
                   writes["ops_per_s"], writes["p50_ms"], writes["p99_ms"]))
        return {"replicas": replicas, "nodes": ids, "readers": readers, "leader": leader,
                "runs": runs}
    finally:
        c.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build_dir")
    ap.add_argument("--replicas", default="0,1,2")
    ap.add_argument("--cpu-per-node", type=float, default=0.15)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--write-rate", type=int, default=200)
    ap.add_argument("--keys", type=int, default=10000)
    ap.add_argument("--port-base", type=int, default=29700)
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0 or not os.path.isdir(CGROOT):
        print("replica_bench: skipped: needs root and the cgroup v1 cpu controller at " + CGROOT,
              file=sys.stderr)
        return 77
    results = []
    try:
        for r in [int(x) for x in a.replicas.split(",")]:
            log("3 voters + %d replicas, each node capped at %.2f cores" % (r, a.cpu_per_node))
            results.append(run_config(a, r))
    except Fail as e:
        print("replica_bench: " + str(e), file=sys.stderr)
        return 1
    print()
    print("Read replicas: 3 voters + R standby members; each cairnd capped at %.2f cores "
          "(cgroup); %d clients of stale gets per node, %d puts/s offered; %d s windows; "
          "median [min-max] of %d runs" % (a.cpu_per_node, a.clients, a.write_rate, a.window,
                                            a.runs))
    print("%-9s %-8s %-26s %-22s %-16s %-16s" % ("replicas", "readers", "stale gets/s, in all",
                                                  "per reader", "put p50 ms", "put p99 ms"))
    for res in results:
        runs = res["runs"]
        print("%-9d %-8d %-26s %-22s %-16s %-16s" % (
            res["replicas"], len(res["readers"]), msr([r["stale_ops_per_s"] for r in runs]),
            msr([r["stale_ops_per_s"] / len(res["readers"]) for r in runs]),
            msr([r["writes"]["p50_ms"] for r in runs], 2),
            msr([r["writes"]["p99_ms"] for r in runs], 2)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
