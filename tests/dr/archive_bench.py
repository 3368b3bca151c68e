#!/usr/bin/env python3
"""archive_bench.py BUILD_DIR [--segments N,N,...] [--fetch] [--fetch-seconds S]
                  [--port-base P] [--keep]

What a long log archive costs, in two parts.

Listing: how long `cairnctl snapshot list --from file://DIR` takes, and its
peak memory, on archives of N log segments each (one snapshot, then a chain of N
one-entry segments, one per 500 ms as the default shipping makes them). The
leader lists its store the same way at every prune (once a minute) and on
taking office, and a restore lists before it starts, so this is the cost of
knowing a long archive. Only names are read: the segments are empty files.

With --backup-compact-ms (docs/disaster-recovery.md, "Compaction") a 48-hour
archive holds a few hundred segments; without it, or written before it
existed, 345,600 at one shipment every 500 ms. Prints one line per size.

Fetching (--fetch; needs s3rver from tests/dr/node_modules): one node backs
up to s3rver, shipping every 20 ms with compaction off, under 100 writes/s
for 40 s (--fetch-seconds). That makes about 2,000 segments: as many as the
default 500 ms makes in 16 minutes of steady writes. `cairnctl snapshot verify --from`
then restores from the store in memory, fetching every segment one after the
other; then the node runs again with --backup-compact-ms 1000 until the
segments are merged, and verify runs again. Prints both times and counts.
Ports P+1, P+11 and P+90, P = 29300 by default. Exits 1 if anything fails or
the merged archive restores to another state.
"""
import argparse
import json
import os
import signal
import socket
import resource
import shutil
import subprocess
import sys
import tempfile
import time

CLUSTER = "c9c4deac3af1977a"


def build(root, n):
    os.makedirs(os.path.join(root, CLUSTER, "snap"))
    log = os.path.join(root, CLUSTER, "log")
    os.makedirs(log)
    t0 = 1795479338184
    manifest = {"name": "%s/snap/%020d.snap" % (CLUSTER, 3), "format": 1, "kind": "snapshot",
                "cluster_id": CLUSTER, "revision": 0, "raft_index": 3, "raft_term": 2,
                "time_ms": t0, "keys": 0, "versions": 0, "bytes_raw": 21, "bytes_stored": 285,
                "sha256": "00" * 32, "state_hash": "66f1397cd9153e3b"}
    with open(os.path.join(root, CLUSTER, "snap", "%020d.json" % 3), "w") as f:
        json.dump(manifest, f)
    for i in range(n):
        after = 3 + i
        name = "%020d-%020d-%020d-%013d.seg" % (after, after + 1, i + 1, t0 + 500 * (i + 1))
        open(os.path.join(log, name), "w").close()


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("nothing listens on port %d" % port)


def fetch(build, tmp, port, seconds):
    here = os.path.dirname(os.path.abspath(__file__))
    s3rver = os.path.join(here, "node_modules", ".bin", "s3rver")
    if not os.path.exists(s3rver):
        print("skip --fetch: s3rver is not installed (deploy/deps.sh --test)")
        return 0
    env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
    procs = []
    s3 = subprocess.Popen([s3rver, "-d", os.path.join(tmp, "s3"), "-a", "127.0.0.1", "-p",
                           str(port + 90), "--silent", "--configure-bucket", "bench"],
                          cwd=here, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(s3)
    os.makedirs(os.path.join(tmp, "s3"), exist_ok=True)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
               AWS_REGION="us-east-1", AWS_ENDPOINT_URL="http://127.0.0.1:%d" % (port + 90))
    url = "s3://bench/a"
    store = ["--backup-url", url, "--backup-endpoint", "http://127.0.0.1:%d" % (port + 90)]
    ctl = [os.path.join(build, "bin", "cairnctl"), "--endpoints", "127.0.0.1:%d" % (port + 1)]

    def node(extra):
        p = subprocess.Popen(
            [os.path.join(build, "bin", "cairnd"), "--id", "1", "--data-dir",
             os.path.join(tmp, "n1"), "--client-addr", "127.0.0.1:%d" % (port + 1),
             "--raft-addr", "127.0.0.1:%d" % (port + 11), "--http-addr", "",
             "--backup-ship-interval-ms", "20", "--backup-snapshot-interval-ms", "0",
             "--backup-verify-interval-ms", "0"] + store + extra,
            env=env, stdout=open(os.path.join(tmp, "n1.log"), "a"), stderr=subprocess.STDOUT)
        procs.append(p)
        wait_port(port + 1)
        return p

    def verify():
        t = time.monotonic()
        r = subprocess.run(ctl + ["--json", "snapshot", "verify", "--from", url],
                           capture_output=True, text=True, env=env)
        took = time.monotonic() - t
        if r.returncode != 0:
            raise RuntimeError("verify failed: %s" % r.stderr.strip())
        out = json.loads(r.stdout)
        return took, out

    def segments():
        r = subprocess.run(ctl + ["--json", "snapshot", "list", "--from", url],
                           capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise RuntimeError("list failed: %s" % r.stderr.strip())
        return json.loads(r.stdout)["segments"]

    try:
        wait_port(port + 90)
        p = node(["--backup-compact-ms", "0"])
        time.sleep(2)
        subprocess.run([os.path.join(build, "bin", "cairn-bench"), "--endpoints",
                        "127.0.0.1:%d" % (port + 1), "--clients", "4", "--rate", "100",
                        "--mix", "put=100", "--keys", "1000", "--warmup", "0", "--duration",
                        str(seconds)], check=True, stdout=subprocess.DEVNULL)
        written = time.time()
        time.sleep(2)
        p.send_signal(signal.SIGTERM)
        p.wait()
        n_before = segments()
        took_before, v = verify()
        print("fetch: %d segments, verify from s3rver %.2f s (%d entries to revision %d)" %
              (n_before, took_before, v["entries"], v["revision"]))
        p = node(["--backup-compact-ms", "1000"])
        # Windows of 1 s, then 12 s: every one has closed 12.2 s after the
        # last write; done once the count then holds still for 5 s.
        end = time.time() + 180
        last, since = segments(), time.time()
        while time.time() < end and (time.time() < written + 13 or time.time() - since < 5):
            time.sleep(0.5)
            n = segments()
            if n != last:
                last, since = n, time.time()
        p.send_signal(signal.SIGTERM)
        p.wait()
        n_after = segments()
        took_after, v2 = verify()
        print("fetch: %d segments after compaction, verify from s3rver %.2f s (%d entries to "
              "revision %d)" % (n_after, took_after, v2["entries"], v2["revision"]))
        if v2["revision"] != v["revision"] or v2["state_hash"] != v["state_hash"]:
            print("the compacted archive restores to another state", file=sys.stderr)
            return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--segments", default="1000,10000,100000,345600")
    ap.add_argument("--fetch", action="store_true")
    ap.add_argument("--fetch-seconds", type=int, default=40)
    ap.add_argument("--port-base", type=int, default=29300)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    ctl = os.path.join(a.build, "bin", "cairnctl")
    if not os.access(ctl, os.X_OK):
        print("no %s" % ctl, file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="cairn-catalog-bench-")
    print("%10s %10s %10s %s" % ("segments", "list (s)", "peak MiB", "restorable"))
    try:
        for n in [int(x) for x in a.segments.split(",")]:
            root = os.path.join(tmp, str(n))
            build(root, n)
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t = time.monotonic()
            r = subprocess.run([ctl, "--json", "snapshot", "list", "--from", "file://" + root],
                               capture_output=True, text=True)
            took = time.monotonic() - t
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if r.returncode != 0:
                print("cairnctl failed: %s" % r.stderr.strip(), file=sys.stderr)
                return 1
            out = json.loads(r.stdout)
            rng = out["ranges"]
            print("%10d %10.2f %10s %s" % (
                n, took, "%.0f" % (peak / 1024) if peak > before else "<%.0f" % (before / 1024),
                "revision %d to %d in %d range(s)" % (rng[0]["earliest_revision"],
                                                      rng[-1]["latest_revision"], len(rng))))
            if out["segments"] != n or rng[-1]["latest_revision"] != n:
                print("the listing holds %d segments reaching revision %d, not %d" %
                      (out["segments"], rng[-1]["latest_revision"], n), file=sys.stderr)
                return 1
            if not a.keep:
                shutil.rmtree(root)
        if a.fetch:
            return fetch(a.build, os.path.join(tmp, "fetch"), a.port_base, a.fetch_seconds)
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
