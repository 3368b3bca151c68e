#!/usr/bin/env python3
"""catalog_bench.py BUILD_DIR [--segments N,N,...] [--keep]

How long `cairnctl snapshot list --from file://DIR` takes, and its peak memory,
on archives of N log segments each (one snapshot, then a chain of N
one-entry segments, one per 500 ms as the default shipping makes them). The
leader lists its store the same way at every prune (once a minute) and on
taking office, and a restore lists before it starts, so this is the cost of
knowing a long archive. Only names are read: the segments are empty files.

With --backup-compact-ms (docs/disaster-recovery.md, "Compaction") a 48-hour
archive holds a few hundred segments; without it, or written before it
existed, 345,600 at one shipment every 500 ms. Prints one line per size.
"""
import argparse
import json
import os
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--segments", default="1000,10000,100000,345600")
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
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
