#!/usr/bin/python3
"""Disaster recovery, end to end (ctest label dr; docs/disaster-recovery.md).

Real processes throughout: a 3-node cairnd cluster of this build, s3rver
from npm behind tests/dr/sigv4_proxy.py (which checks every request's SigV4
signature with botocore, since s3rver does not), cairnctl, and the file://
backend. Each check below fails without the behaviour it names:

  s3_scheduled     a scheduled snapshot appears in S3 with a valid manifest
  s3_lost_cluster  the whole cluster is killed and its data wiped; a new
                   cluster restored from S3 (cairnd --restore-from) serves
                   every write acknowledged up to the recovery point, and
                   that point is within a few seconds of the last write
  s3_mid_revision  a restore to a revision in the middle equals the store as
                   it was at that revision (read then with get --rev)
  s3_failover      the leader is killed: the next leader ships on from its
                   own backlog, and the archive has no gap
  s3_store_down    the object store stops for a while: the cluster keeps
                   serving, /ready stays up, cairn_backup_behind turns 1;
                   when it returns shipping catches up and nothing is lost
  file_corrupt     a corrupted snapshot is refused with a clear error; with
                   --fallback the restore uses the earlier snapshot plus
                   more log and reaches the same state
  file_retention   retention tiers prune snapshots and the log they no
                   longer need, and never the newest snapshot
  file_download    with no backup store at all, snapshot save FILE downloads
                   the whole store (in several pieces) into FILE; status FILE
                   checks it; three members restored from it (restore --from
                   FILE, or cairnd --restore-from FILE) serve the same keys
                   and history; a damaged file is refused; a failed download
                   leaves an older FILE as it was; a leader killed during a
                   download hands it to the next
  signatures       the proxy accepted many requests and rejected none

Usage: dr_test.py BUILD_DIR [CHECK...]   (exit 77: cannot run here)
"""

import base64
import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# 281xx..283xx: below the ephemeral range, unused by other tests
PORT_BASE = int(os.environ.get("CAIRN_DR_PORT_BASE", "28100"))
ACCESS, SECRET = "S3RVER", "S3RVER"
BUCKET = "cairn-dr"


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise Fail("port %d did not open" % port)


class Env:
    def __init__(self, build):
        self.build = build
        self.bin = os.path.join(build, "bin")
        self.tmp = tempfile.mkdtemp(prefix="cairn-dr-")
        self.procs = []
        self.s3 = None
        self.proxy = None

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def start_s3(self):
        d = self.path("s3rver")
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ)
        # s3rver 3.7.1 makes list continuation tokens with DES, which OpenSSL
        # 3 only has in its legacy provider (DEPS.md).
        env["NODE_OPTIONS"] = "--openssl-legacy-provider"
        self.s3 = subprocess.Popen(
            [os.path.join(HERE, "node_modules", ".bin", "s3rver"), "-d", d, "-a", "127.0.0.1",
             "-p", str(PORT_BASE + 90), "--silent", "--configure-bucket", BUCKET],
            cwd=HERE, env=env, stdout=subprocess.DEVNULL,
            stderr=open(self.path("s3rver.log"), "w"))
        wait_port(PORT_BASE + 90)
        self.start_proxy()

    def start_proxy(self, port=PORT_BASE + 91, extra=(), log="proxy.log"):
        """The signature-checking proxy in front of s3rver; the one at PORT_BASE + 91 is the
        tests' usual store (self.proxy), others (extra flags) are the caller's."""
        p = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(HERE, "sigv4_proxy.py"), "--listen",
             str(port), "--target", str(PORT_BASE + 90), "--access-key", ACCESS,
             "--secret", SECRET] + list(extra),
            stdout=subprocess.DEVNULL, stderr=open(self.path(log), "a"))
        if port == PORT_BASE + 91:
            self.proxy = p
        else:
            self.procs.append(p)
        wait_port(port)

    def stop_proxy(self):
        self.proxy.terminate()
        self.proxy.wait()

    def proxy_stats(self, port=PORT_BASE + 91):
        with urllib.request.urlopen("http://127.0.0.1:%d/__sigv4_proxy/stats" % port,
                                    timeout=5) as r:
            return json.load(r)

    def s3_args(self):
        return ["--backup-endpoint", "http://127.0.0.1:%d" % (PORT_BASE + 91)]

    def env(self):
        e = dict(os.environ)
        e.update(AWS_ACCESS_KEY_ID=ACCESS, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1")
        e["CAIRN_ENDPOINTS"] = self.endpoints()
        return e

    def endpoints(self, n=3):
        return ",".join("127.0.0.1:%d" % (PORT_BASE + i) for i in range(1, n + 1))

    def start_cluster(self, tag, extra, n=3):
        ic = ",".join("%d=127.0.0.1:%d/127.0.0.1:%d" % (i, PORT_BASE + 10 + i, PORT_BASE + i)
                      for i in range(1, n + 1))
        nodes = []
        for i in range(1, n + 1):
            data = self.path(tag, "n%d" % i)
            args = [os.path.join(self.bin, "cairnd"), "--id", str(i), "--data-dir", data,
                    "--client-addr", "127.0.0.1:%d" % (PORT_BASE + i),
                    "--raft-addr", "127.0.0.1:%d" % (PORT_BASE + 10 + i),
                    "--http-addr", "127.0.0.1:%d" % (PORT_BASE + 20 + i),
                    "--initial-cluster", ic, "--segment-size-bytes", "1048576"] + extra
            log = open(self.path("%s-n%d.log" % (tag, i)), "a")
            p = subprocess.Popen(args, stdout=log, stderr=log, env=self.env())
            p.cairn_args = args
            p.cairn_log = log
            nodes.append(p)
            self.procs.append(p)
        self.wait_leader()
        return nodes

    def restart(self, p):
        q = subprocess.Popen(p.cairn_args, stdout=p.cairn_log, stderr=p.cairn_log, env=self.env())
        q.cairn_args = p.cairn_args
        q.cairn_log = p.cairn_log
        self.procs.append(q)
        return q

    def kill(self, nodes):
        for p in nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait()

    def ctl(self, *args, ok=True, n=3, stdin=None, extra_env=None):
        e = self.env()
        e["CAIRN_ENDPOINTS"] = self.endpoints(n)
        e.update(extra_env or {})
        r = subprocess.run([os.path.join(self.bin, "cairnctl")] + list(args), env=e,
                           capture_output=True, text=True, timeout=180, input=stdin)
        if ok and r.returncode != 0:
            raise Fail("cairnctl %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def wait_leader(self, n=3, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            r = self.ctl("put", "__probe", "x", ok=False, n=n)
            if r.returncode == 0:
                return
            time.sleep(0.2)
        raise Fail("no leader elected")

    def backup_status(self):
        return json.loads(self.ctl("--json", "snapshot", "status").stdout)

    def metrics(self, node=1):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % (PORT_BASE + 20 + node),
                                    timeout=5) as r:
            return r.read().decode()

    def http_status(self, node=1):
        with urllib.request.urlopen("http://127.0.0.1:%d/v1/status" % (PORT_BASE + 20 + node),
                                    timeout=5) as r:
            return json.loads(r.read().decode())

    def ready(self, node=1):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/ready" % (PORT_BASE + 20 + node),
                                        timeout=5) as r:
                return r.status == 200
        except Exception:
            return False

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for p in (self.proxy, self.s3):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def wait_named(env, provisional, what, n=3, timeout=15):
    """The restored cluster's id once its first leader named it: every node reports the same
    id, not the provisional one, and the provisional one as restored_as."""
    end = time.time() + timeout
    status = None
    while time.time() < end:
        status = json.loads(env.ctl("--json", "status", n=n).stdout)
        ids = {s.get("cluster_id") for s in status}
        if len(ids) == 1 and provisional not in ids and \
                all(s.get("restored_as") == provisional for s in status):
            named = ids.pop()
            check(int(named, 16) < 1 << 63, "%s: the cluster was named %s, an id with the "
                  "provisional bit" % (what, named))
            for node in range(1, n + 1):  # HTTP's status says the same as the native one
                doc = env.http_status(node)
                check(doc.get("cluster_id") == named and doc.get("restored_as") == provisional,
                      "%s: GET /v1/status of node %d: cluster_id %s, restored_as %s; want %s, %s"
                      % (what, node, doc.get("cluster_id"), doc.get("restored_as"), named,
                         provisional))
            return named
        time.sleep(0.2)
    raise Fail("%s: the restored cluster was not named anew (provisional %s): %s" %
               (what, provisional, [(s.get("cluster_id"), s.get("restored_as")) for s in status]))


def put(env, key, value, n=3):
    if len(value) > 4096:  # big values go through stdin
        r = env.ctl("--json", "put", key, stdin=value, n=n)
    else:
        r = env.ctl("--json", "put", key, value, n=n)
    return json.loads(r.stdout)["revision"]


def dump(env, rev=None, n=3):
    """Every key's value, as cairnctl get --prefix shows it (at rev)."""
    state = {}
    after = None
    while True:
        args = ["--json", "get", "--prefix", "k/", "--limit", "100000"]
        if rev is not None:
            args += ["--rev", str(rev)]
        if after is not None:
            args += ["--after", after]
        res = json.loads(env.ctl(*args, n=n).stdout)["results"][0]
        state.update({kv["key"]: kv["value"] for kv in res["kvs"]})
        if not res["more"] or not res["kvs"]:
            return state
        after = res["kvs"][-1]["key"]


def differences(got, want):
    """A short account of how two stores differ."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    changed = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    return "missing %s, extra %s, different %s" % (missing[:5], extra[:5], [
        (k, got[k][:20], want[k][:20]) for k in changed[:5]])


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def expected_at(log, rev):
    state = {}
    for key, value, r in log:
        if r <= rev:
            state[key] = value
    return state


def run_s3(env, only):
    env.start_s3()
    url = "s3://%s/prod" % BUCKET
    common = ["--backup-url", url] + env.s3_args() + [
        "--backup-lag-alert-ms", "3000", "--backup-verify-interval-ms", "0"]
    nodes = env.start_cluster("a", common + ["--backup-snapshot-interval-ms", "4000"])
    log = []  # (key, value, revision) of every acknowledged write

    # s3_scheduled: with nothing asked for, snapshots appear on the schedule.
    for i in range(30):
        log.append(("k/%03d" % i, "v%d-0" % i, put(env, "k/%03d" % i, "v%d-0" % i)))
    time.sleep(5)
    listing = json.loads(env.ctl("--json", "snapshot", "list", "--from", url,
                                 *env.s3_args()).stdout)
    snaps = listing["snapshots"]
    check(len(snaps) >= 1, "s3_scheduled: no snapshot in S3 after 5 s")
    newest = snaps[-1]
    for field in ("cluster_id", "revision", "raft_index", "raft_term", "time_ms", "keys",
                  "versions", "bytes_raw", "bytes_stored", "sha256", "state_hash", "format"):
        check(field in newest, "s3_scheduled: manifest lacks %s" % field)
    check(len(newest["sha256"]) == 64 and newest["format"] == 1, "s3_scheduled: bad manifest")
    check(newest["revision"] >= 30, "s3_scheduled: the scheduled snapshot missed the writes "
          "(revision %d)" % newest["revision"])
    print("ok s3_scheduled: snapshot at revision %d, %d bytes stored" %
          (newest["revision"], newest["bytes_stored"]))

    # s3_mid_revision: remember the store at a revision in the middle.
    for i in range(30):
        log.append(("k/%03d" % i, "v%d-1" % i, put(env, "k/%03d" % i, "v%d-1" % i)))
    mid = log[-15][2]
    mid_state = dump(env, rev=mid)
    check(mid_state == expected_at(log, mid), "the cluster's own read at the middle revision "
          "disagrees with the write log")
    for i in range(30):
        log.append(("k/%03d" % i, "v%d-2" % i, put(env, "k/%03d" % i, "v%d-2" % i)))

    # s3_failover: the responsible node dies mid-stream.
    status = json.loads(env.ctl("--json", "status").stdout)
    leader = [s["id"] for s in status if s["state"] == "leader"][0]
    env.kill([nodes[leader - 1]])
    env.wait_leader()
    for i in range(30):
        log.append(("k/%03d" % i, "v%d-f" % i, put(env, "k/%03d" % i, "v%d-f" % i)))
    end = time.time() + 20
    while time.time() < end:
        st = env.backup_status()
        if st["responsible"] and st["archive"]["archived_revision"] >= log[-1][2]:
            break
        time.sleep(0.3)
    check(st["archive"]["archived_revision"] >= log[-1][2],
          "s3_failover: the new leader did not ship the writes made after the failover")
    nodes[leader - 1] = env.restart(nodes[leader - 1])
    # The endpoint from AWS_ENDPOINT_URL, as the AWS tools take it, instead of the flag.
    listing = json.loads(env.ctl("--json", "snapshot", "list", "--from", url, extra_env={
        "AWS_ENDPOINT_URL": env.s3_args()[1]}).stdout)
    check(len(listing["ranges"]) == 1 and listing["ranges"][0]["latest_revision"] >= log[-1][2],
          "s3_failover: the archive has a gap or stops short: %s" % listing["ranges"])
    print("ok s3_failover: node %d (leader) killed; the next leader shipped on to revision %d "
          "with no gap" % (leader, listing["ranges"][0]["latest_revision"]))

    # s3_store_down: the store goes away; writes go on.
    env.stop_proxy()
    down_since = time.time()
    for i in range(40):
        log.append(("k/%03d" % (i % 30), "v%d-3" % i, put(env, "k/%03d" % (i % 30), "v%d-3" % i)))
        time.sleep(0.1)
    # More than one segment's worth (16 MiB) of backlog: it must go out in pieces.
    for i in range(20):
        big = base64.b64encode(os.urandom(700 * 1024)).decode()
        log.append(("k/big%02d" % i, big, put(env, "k/big%02d" % i, big)))
    behind = None
    while time.time() - down_since < 15:
        leader_metrics = [env.metrics(n) for n in (1, 2, 3)]
        behind = max(metric(m, "cairn_backup_behind") or 0 for m in leader_metrics)
        if behind == 1:
            break
        time.sleep(0.5)
    check(behind == 1, "s3_store_down: cairn_backup_behind never turned 1")
    check(all(env.ready(n) for n in (1, 2, 3)), "s3_store_down: /ready failed with the store down")
    failures = sum(metric(m, 'cairn_backup_failures_total{job="ship"}') or 0
                   for m in leader_metrics)
    check(failures >= 1, "s3_store_down: no failed shipment counted")
    env.start_proxy()
    end = time.time() + 30
    caught_up = False
    while time.time() < end:
        st = env.backup_status()
        if st["archive"]["archived_revision"] >= log[-1][2] and st["archive"]["lag_ms"] == 0:
            caught_up = True
            break
        time.sleep(0.5)
    check(caught_up, "s3_store_down: shipping did not catch up after the store came back")

    def segment_sizes():
        sizes = []
        for root, _, files in os.walk(env.path("s3rver")):
            if "/log/" in root + "/":
                sizes += [os.path.getsize(os.path.join(root, f)) for f in files
                          if f.endswith(".seg._S3rver_object")]
        return sizes
    # A snapshot taken when the store came back may have reached the end first: the recovery
    # point is there, and the log follows it into the archive.
    sizes = segment_sizes()
    while time.time() < end and not any(z > 8 << 20 for z in sizes):
        time.sleep(0.5)
        sizes = segment_sizes()
    check(sizes and max(sizes) < 18 << 20 and sum(1 for z in sizes if z > 8 << 20) >= 1,
          "s3_store_down: the backlog did not go out in bounded segments: %s" % sorted(sizes)[-5:])
    print("ok s3_store_down: %d ship failures while down, caught up after in segments of at "
          "most %.1f MiB" % (failures, max(sizes) / 1048576))

    # s3_lost_cluster: a last burst, then everything is lost at once.
    for i in range(20):
        log.append(("k/%03d" % i, "v%d-4" % i, put(env, "k/%03d" % i, "v%d-4" % i)))
    last_ack = time.time()
    time.sleep(2.5)  # the recovery point lags by about a second
    env.kill(nodes)
    killed = time.time()
    shutil.rmtree(env.path("a"))
    t0 = time.time()
    nodes = env.start_cluster("b", ["--backup-url", "s3://%s/restored" % BUCKET] + env.s3_args()
                              + ["--restore-from", url])
    restore_s = time.time() - t0
    restored = dump(env)
    status = json.loads(env.ctl("--json", "status").stdout)
    rev = max(s["revision"] for s in status)
    acked_before = [r for (_, _, r) in log]
    check(rev >= max(acked_before), "s3_lost_cluster: restored revision %d misses writes "
          "acknowledged %.1f s before the kill (last %d)" % (rev, killed - last_ack,
                                                             max(acked_before)))
    check(restored == expected_at(log, rev), "s3_lost_cluster: the restored store differs from "
          "every write acknowledged up to revision %d: %s" %
          (rev, differences(restored, expected_at(log, rev))))
    print("ok s3_lost_cluster: restored revision %d (last acknowledged %d) in %.1f s" %
          (rev, max(acked_before), restore_s))
    # The new cluster writes on, with a cluster id of its own.
    put(env, "k/new", "after-restore")
    env.kill(nodes)

    # s3_mid_revision: a restore to the middle revision, served by one node.
    mid_dir = env.path("mid", "n1")
    r = env.ctl("--json", "snapshot", "restore", "--from", url, "--revision", str(mid),
                "--data-dir", mid_dir, *env.s3_args())
    check(json.loads(r.stdout)["revision"] == mid, "s3_mid_revision: restored to another revision")
    nodes = env.start_cluster("mid", [], n=1)
    got = dump(env, n=1)
    check(got == mid_state, "s3_mid_revision: the store restored to revision %d differs from "
          "the store as it was then" % mid)
    env.kill(nodes)
    print("ok s3_mid_revision: revision %d restored exactly (%d keys)" % (mid, len(got)))

    stats = env.proxy_stats()
    check(stats["rejected"] == 0, "signatures: the proxy rejected %d requests: %s" %
          (stats["rejected"], stats.get("problems")))
    check(stats["accepted"] >= 10, "signatures: too few requests went through the proxy")
    check(stats["refused"] == 0 and stats["encrypted_creates"] == 0,
          "signatures: encryption headers where none were asked for: %s" % stats)
    print("ok signatures: %d requests signed correctly (since the proxy's restart), "
          "%d cut short by a killed sender" % (stats["accepted"], stats["incomplete"]))

    s3_encryption(env)
    save_during_save(env)


def save_during_save(env):
    """A snapshot asked for while another is uploading answers with a new one that holds every
    write acknowledged before the request, not with the one already under way (which began
    before it). The upload is slowed to 512 KiB/s so that the two overlap."""
    url = "s3://%s/overlap" % BUCKET
    nodes = env.start_cluster("overlap", ["--backup-url", url] + env.s3_args() + [
        "--backup-verify-interval-ms", "0", "--backup-snapshot-interval-ms", "0",
        "--backup-snapshot-rate", "524288"], n=1)
    rnd = random.Random(7)
    for i in range(2):
        v = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(700000))
        put(env, "big/%d" % i, v, n=1)
    first = {}

    def save_first():
        r = env.ctl("--json", "snapshot", "save", ok=False, n=1)
        first["rc"], first["out"], first["at"] = r.returncode, r.stdout, time.time()

    t = threading.Thread(target=save_first)
    t.start()
    time.sleep(1.0)  # the first save is capturing or uploading its 1.4 MB for ~2.7 s
    late = put(env, "late", "after the first save began", n=1)
    asked = time.time()
    second = json.loads(env.ctl("--json", "snapshot", "save", n=1).stdout)["snapshot"]
    t.join()
    check(first.get("rc") == 0, "save_during_save: the first save failed: %s" % first)
    one = json.loads(first["out"])["snapshot"]
    check(one["revision"] < late and first["at"] > asked,
          "save_during_save: the saves did not overlap (first at revision %d, done %.2f s after "
          "the second was asked); the test proves nothing" % (one["revision"], first["at"] - asked))
    check(second["revision"] >= late,
          "save_during_save: the second save answered with a snapshot at revision %d, without "
          "the write at revision %d acknowledged before it was asked" % (second["revision"], late))
    env.kill(nodes)
    print("ok save_during_save: a save asked during another's upload got revision %d (the one "
          "under way: %d)" % (second["revision"], one["revision"]))


def s3_encryption(env):
    """--backup-sse against a bucket policy that requires SSE-KMS with one key (a second
    sigv4_proxy, --require-sse): snapshots, in one PUT and in parts, and log segments go up;
    verify and restore read them back; a node without --backup-sse is refused."""
    port = PORT_BASE + 92
    key = "alias/cairn-dr-test"
    env.start_proxy(port, ["--require-sse", "aws:kms", "--require-sse-kms-key-id", key],
                    "proxy-sse.log")

    def stats():
        return env.proxy_stats(port)

    store = ["--backup-endpoint", "http://127.0.0.1:%d" % port]
    url = "s3://%s/encrypted" % BUCKET
    # Parts of 5 MiB from 5 MiB up: a snapshot of the values below goes up in parts.
    common = ["--backup-url", url] + store + [
        "--backup-verify-interval-ms", "0", "--backup-snapshot-interval-ms", "0",
        "--backup-multipart-threshold", "5242880", "--backup-part-size", "5242880"]
    nodes = env.start_cluster("sse", common + ["--backup-sse", "aws:kms",
                                               "--backup-sse-kms-key-id", key], n=1)
    rnd = random.Random(5)
    for i in range(7):
        v = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(900000))
        last = put(env, "k/enc%d" % i, v, n=1)
    saved = json.loads(env.ctl("--json", "snapshot", "save", n=1).stdout)["snapshot"]
    check(saved["revision"] >= last and saved["bytes_stored"] > 5 << 20,
          "s3_encryption: the snapshot (%s) is not the large one" % saved)
    env.ctl("--json", "snapshot", "verify", n=1)
    got = stats()
    check(got["rejected"] == 0 and got["refused"] == 0,
          "s3_encryption: the store refused requests: %s" % got)
    # At least: the first snapshot and its manifest, a log segment, and the large snapshot's
    # CreateMultipartUpload and manifest.
    check(got["encrypted_creates"] >= 5, "s3_encryption: only %d encrypted creations: %s" %
          (got["encrypted_creates"], got))
    env.kill(nodes)
    d = env.path("sse-restored", "n1")
    r = json.loads(env.ctl("--json", "snapshot", "restore", "--from", url, "--data-dir", d,
                           *store).stdout)
    check(r["revision"] >= last, "s3_encryption: restored to revision %d < %d" %
          (r["revision"], last))

    # Without --backup-sse the policy refuses every object, and says so.
    nodes = env.start_cluster("nosse", ["--backup-url", "s3://%s/plain" % BUCKET] + store +
                              ["--backup-verify-interval-ms", "0",
                               "--backup-snapshot-interval-ms", "0"], n=1)
    r = env.ctl("snapshot", "save", ok=False, n=1)
    check(r.returncode != 0 and "AccessDenied" in r.stderr,
          "s3_encryption: a node without --backup-sse was not refused: %s %s" %
          (r.stdout, r.stderr))
    check(stats()["refused"] > 0, "s3_encryption: nothing refused")
    env.kill(nodes)
    print("ok s3_encryption: %d objects created with SSE-KMS (one in parts, %d bytes) under a "
          "policy requiring it; verified and restored; a node without --backup-sse refused "
          "(AccessDenied)" % (got["encrypted_creates"], saved["bytes_stored"]))


def file_cluster(env, tag, dirname, extra=(), n=3):
    """A cluster of n nodes backing up to a new directory, with snapshots and verification on
    demand only: (nodes, store directory, store URL)."""
    store = env.path(dirname)
    os.makedirs(store)
    url = "file://" + store
    nodes = env.start_cluster(tag, ["--backup-url", url, "--backup-snapshot-interval-ms", "0",
                                    "--backup-verify-interval-ms", "0"] + list(extra), n=n)
    return nodes, store, url


def run_file(env):
    nodes, store, url = file_cluster(env, "f", "filestore")
    log = []
    for i in range(10):
        log.append(("k/%03d" % i, "a%d" % i, put(env, "k/%03d" % i, "a%d" % i)))
    env.ctl("snapshot", "save")
    for i in range(10):
        log.append(("k/%03d" % i, "b%d" % i, put(env, "k/%03d" % i, "b%d" % i)))
    saved = json.loads(env.ctl("--json", "snapshot", "save").stdout)["snapshot"]
    for i in range(5):
        log.append(("k/%03d" % i, "c%d" % i, put(env, "k/%03d" % i, "c%d" % i)))
    last = log[-1][2]
    end = time.time() + 10
    while env.backup_status()["archive"]["archived_revision"] < last and time.time() < end:
        time.sleep(0.2)
    r = env.ctl("snapshot", "verify")
    check(r.returncode == 0, "file: verify failed before any corruption")
    # status, for a human: where to, how far the archive is, the last results.
    r = env.ctl("snapshot", "status")
    lines = {l.split()[0] + (" " + l.split()[1] if l.startswith("last") else ""): l
             for l in r.stdout.splitlines() if l.strip()}
    check(url in lines.get("backups", "") and
          ("revision %d " % last) in lines.get("archive", "") and
          "current" in lines.get("archive", "") and
          lines.get("last verify", "").startswith("last verify    ok at") and
          lines.get("last snapshot", "").startswith("last snapshot  ok at"),
          "file: snapshot status prints %r" % r.stdout)
    env.kill(nodes)

    # Corrupt the newest snapshot: one byte in the middle.
    path = os.path.join(store, saved["name"])
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0xFF]))
    r = env.ctl("snapshot", "restore", "--from", url, "--data-dir", env.path("c1"), ok=False)
    check(r.returncode != 0, "file_corrupt: a corrupted snapshot was accepted")
    check("checksum mismatch" in r.stderr and saved["name"] in r.stderr,
          "file_corrupt: the error does not name the corrupt object: %r" % r.stderr)
    check(not os.path.exists(os.path.join(env.path("c1"), "seed.cairnsnap")),
          "file_corrupt: a refused restore left a seed behind")
    r = env.ctl("snapshot", "verify", "--from", url, ok=False)
    check(r.returncode != 0, "file_corrupt: verify passed over a corrupt snapshot")
    r = env.ctl("--json", "snapshot", "restore", "--from", url, "--data-dir", env.path("c2", "n1"),
                "--fallback")
    out = json.loads(r.stdout)
    check(out["revision"] == last and out["skipped_snapshots"] == 1,
          "file_corrupt: --fallback did not reach revision %d from the earlier snapshot: %s" %
          (last, r.stdout))
    check("cairnctl: warning: " in r.stderr and "falling back to an earlier snapshot" in r.stderr
          and saved["name"] in r.stderr,
          "file_corrupt: --fallback did not warn, under cairnctl's name, which snapshot it "
          "skipped: %r" % r.stderr)
    nodes = env.start_cluster("c2", [], n=1)
    check(dump(env, n=1) == expected_at(log, last), "file_corrupt: the fallback restore differs")
    join_restored(env, "c2", log, url)
    env.kill(nodes)
    unrestored_peer(env, url, log[9][2])
    simultaneous_start(env, url, log[9][2])
    client_while_starting(env, url, log[9][2])
    retry_after_failed_start(env, url, log, log[9][2], log[14][2])
    ctl_restored_apart(env, url, log, log[9][2], log[14][2])
    print("ok file_corrupt: refused with \"%s\"; --fallback restored revision %d" %
          (r.stderr.strip().splitlines()[0] if r.stderr.strip() else "checksum mismatch", last))


def join_restored(env, tag, log, url):
    """file_join: a member added to a restored cluster (the usual way: empty, --join 1, member
    add) must get the restored state, not the bare Raft log, which starts without it."""
    out = open(env.path("%s-n2.log" % tag), "a")
    p = subprocess.Popen(node_args(env, tag, 2, 2, ["--join", "1"]), stdout=out, stderr=out,
                         env=env.env())
    env.procs.append(p)
    wait_port(PORT_BASE + 2)
    env.ctl("member", "add", "2", "127.0.0.1:%d/127.0.0.1:%d" % (PORT_BASE + 12, PORT_BASE + 2),
            "--voter", n=1)
    log.append(("k/joined", "j", put(env, "k/joined", "j")))
    last = log[-1][2]
    end = time.time() + 10
    while True:
        st = json.loads(env.ctl("--json", "status", n=2).stdout)
        if len(st) == 2 and st[0]["applied_index"] == st[1]["applied_index"]:
            break
        check(time.time() < end, "file_join: the new member did not catch up: %s" % st)
        time.sleep(0.2)
    check(st[0]["state_hash"] == st[1]["state_hash"] and st[0]["revision"] == st[1]["revision"],
          "file_join: the member added to the restored cluster diverged: node 1 at revision %d "
          "(%d keys, hash %s), node 2 at revision %d (%d keys, hash %s)" %
          (st[0]["revision"], st[0]["keys"], st[0]["state_hash"], st[1]["revision"],
           st[1]["keys"], st[1]["state_hash"]))
    e = env.env()
    e["CAIRN_ENDPOINTS"] = "127.0.0.1:%d" % (PORT_BASE + 2)
    r = subprocess.run([os.path.join(env.bin, "cairnctl"), "--json", "get", "--prefix", "k/",
                        "--stale", "--limit", "100000"], env=e, capture_output=True, text=True,
                       timeout=60)
    got = {kv["key"]: kv["value"] for kv in json.loads(r.stdout)["results"][0]["kvs"]}
    check(got == expected_at(log, last),
          "file_join: the new member's own state differs: %s" %
          differences(got, expected_at(log, last)))
    print("ok file_join: a member added to the restored cluster holds its %d keys" % len(got))

    # file_rerestore: node 2's disk is replaced, and it starts as one of the restored set would,
    # but the point it restores to is not the cluster's. Replaying the cluster's log onto that
    # state would diverge: it must refuse, and leave the directory new.
    env.kill([p])
    shutil.rmtree(env.path(tag, "n2"))
    start_refused(env, node_args(env, tag, 2, 2, ["--restore-from", url, "--restore-revision",
                                                  str(log[9][2])]),
                  "file_rerestore", "not the same restore point")
    check(not os.path.exists(os.path.join(env.path(tag, "n2"), "seed.cairnsnap")),
          "file_rerestore: the refused start left its seed behind")
    print("ok file_rerestore: a node restored to another point is refused")


def node_args(env, tag, i, n, extra):
    ic = ",".join("%d=127.0.0.1:%d/127.0.0.1:%d" % (k, PORT_BASE + 10 + k, PORT_BASE + k)
                  for k in range(1, n + 1))
    return [os.path.join(env.bin, "cairnd"), "--id", str(i), "--data-dir",
            env.path(tag, "n%d" % i), "--client-addr", "127.0.0.1:%d" % (PORT_BASE + i),
            "--raft-addr", "127.0.0.1:%d" % (PORT_BASE + 10 + i),
            "--http-addr", "127.0.0.1:%d" % (PORT_BASE + 20 + i), "--initial-cluster", ic,
            "--segment-size-bytes", "1048576"] + extra


def start_refused(env, args, what, expect):
    """Run a cairnd that must refuse to start: its stderr."""
    q = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env.env())
    try:
        err = q.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        q.kill()
        err = q.communicate()[1]
    check(q.returncode > 0 and expect in err,
          "%s: the node started: exit %d, %s" % (what, q.returncode, err[-400:]))
    return err


def unrestored_peer(env, url, rev):
    """file_unrestored: a member started without --restore-from, before the restored ones, would
    be sent the cluster's log without the restored state. The restored node sees it and refuses,
    leaving its directory new."""
    out = open(env.path("u-n2.log"), "a")
    p = subprocess.Popen(node_args(env, "u", 2, 2, []), stdout=out, stderr=out, env=env.env())
    env.procs.append(p)
    wait_port(PORT_BASE + 2)
    start_refused(env, node_args(env, "u", 1, 2, ["--restore-from", url, "--restore-revision",
                                                  str(rev)]),
                  "file_unrestored", "started without --restore-from")
    check(not os.path.exists(os.path.join(env.path("u", "n1"), "seed.cairnsnap")),
          "file_unrestored: the refused start left its seed behind")
    env.kill([p])
    print("ok file_unrestored: a restored node refuses to join a member that was not restored")


def simultaneous_start(env, url, rev):
    """file_simultaneous: the same mistake as file_unrestored, with both nodes started at once,
    so that each asks the other before either serves (CAIRN_TEST_PEER_CHECK_DELAY_MS holds both
    checks until both have begun). Each answers status from before its check (src/preflight.h),
    so the one that asks second sees the other: at least one of them refuses, with the message
    for its side, and a refused restored node leaves no seed. Without that, both would start."""
    e = env.env()
    e["CAIRN_TEST_PEER_CHECK_DELAY_MS"] = "1500"
    procs, outs = [], []
    for i, extra in ((1, ["--restore-from", url, "--restore-revision", str(rev)]), (2, [])):
        outs.append(open(env.path("s-n%d.log" % i), "w+"))
        procs.append(subprocess.Popen(node_args(env, "s", i, 2, extra), stdout=subprocess.DEVNULL,
                                      stderr=outs[-1], env=e))
    end = time.time() + 8
    while time.time() < end and all(q.poll() is None for q in procs):
        time.sleep(0.1)
    time.sleep(0.5)  # the other one's check, if it was still under way
    env.kill(procs)
    errs = []
    for f in outs:
        f.seek(0)
        errs.append(f.read())
        f.close()
    refused = [q.returncode > 0 for q in procs]
    check(any(refused), "file_simultaneous: a restored and an unrestored member both started")
    check(not refused[0] or "started without --restore-from" in errs[0],
          "file_simultaneous: the restored node's refusal: %s" % errs[0][-400:])
    check(not refused[1] or "is starting restored from a backup" in errs[1],
          "file_simultaneous: the unrestored node's refusal: %s" % errs[1][-400:])
    check(not refused[0] or not os.path.exists(os.path.join(env.path("s", "n1"), "seed.cairnsnap")),
          "file_simultaneous: the refused start left its seed behind")
    print("ok file_simultaneous: of a restored and an unrestored member started together, %s "
          "refused" % " and ".join(w for w, r in zip(("the restored", "the unrestored"), refused)
                                   if r))


def retry_after_failed_start(env, url, log, first, second):
    """file_retry: a cairnd --restore-from start that fails after its restore (here the Raft port
    is taken) leaves a seed that no node ran. The next start with --restore-from restores again,
    to what it asks now, instead of taking that seed for the node's data; once the node has run,
    --restore-from is ignored (with a warning)."""
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", PORT_BASE + 11))
    blocker.listen(1)
    try:
        start_refused(env, node_args(env, "rt", 1, 1, ["--restore-from", url,
                                                       "--restore-revision", str(first)]),
                      "file_retry", "cannot listen for Raft peers")
    finally:
        blocker.close()
    check(os.path.exists(os.path.join(env.path("rt", "n1"), "restore-pending")),
          "file_retry: the failed start left no restore-pending marker")
    out = open(env.path("rt-n1.log"), "a")
    args = node_args(env, "rt", 1, 1, ["--restore-from", url, "--restore-revision", str(second)])
    p = subprocess.Popen(args, stdout=out, stderr=out, env=env.env())
    env.procs.append(p)
    env.wait_leader(n=1)
    got = dump(env, n=1)
    check(got == expected_at(log, second),
          "file_retry: after a failed start, --restore-revision %d restored %s" %
          (second, "the first start's revision %d" % first if got == expected_at(log, first)
           else differences(got, expected_at(log, second))))
    check(not os.path.exists(os.path.join(env.path("rt", "n1"), "restore-pending")),
          "file_retry: the marker outlived the node's first run")
    env.kill([p])
    # The node has run: its data is its own now, whatever --restore-from says.
    args = node_args(env, "rt", 1, 1, ["--restore-from", url, "--restore-revision", str(first)])
    p = subprocess.Popen(args, stdout=out, stderr=out, env=env.env())
    env.procs.append(p)
    env.wait_leader(n=1)
    check(dump(env, n=1) == expected_at(log, second),
          "file_retry: a restart with another --restore-revision replaced a node's data")
    env.kill([p])
    with open(env.path("rt-n1.log")) as f:
        check("--restore-from ignored" in f.read(),
              "file_retry: the restart did not warn that --restore-from was ignored")
    print("ok file_retry: a start that failed after restoring revision %d restored %d when "
          "asked again; a node that ran keeps its data" % (first, second))


def ctl_restored_apart(env, url, log, first, second):
    """file_ctl_apart: two members restored with cairnctl snapshot restore to different points
    (as when the store's newest point moves on between them) would each run on its own base
    under one log. The second to start asks its peers first, as a node restoring with
    --restore-from does, refuses, and keeps its seed; restored again to the first one's point,
    it starts and the two agree."""
    for i, rev in ((1, first), (2, second)):
        env.ctl("snapshot", "restore", "--from", url, "--data-dir", env.path("ca", "n%d" % i),
                "--revision", str(rev))
    out = open(env.path("ca-n1.log"), "a")
    p = subprocess.Popen(node_args(env, "ca", 1, 2, []), stdout=out, stderr=out, env=env.env())
    env.procs.append(p)
    wait_port(PORT_BASE + 1)
    start_refused(env, node_args(env, "ca", 2, 2, []), "file_ctl_apart",
                  "not the same restore point")
    check(os.path.exists(os.path.join(env.path("ca", "n2"), "seed.cairnsnap")),
          "file_ctl_apart: the refused start deleted a seed cairnctl wrote")
    env.ctl("snapshot", "restore", "--from", url, "--data-dir", env.path("ca", "n2"),
            "--revision", str(first))
    out2 = open(env.path("ca-n2.log"), "a")
    q = subprocess.Popen(node_args(env, "ca", 2, 2, []), stdout=out2, stderr=out2,
                         env=env.env())
    env.procs.append(q)
    env.wait_leader(n=2)
    put(env, "k/after", "z", n=2)
    end = time.time() + 10
    while True:
        st = json.loads(env.ctl("--json", "status", n=2).stdout)
        if len(st) == 2 and st[0]["applied_index"] == st[1]["applied_index"] and \
                st[0]["state_hash"] == st[1]["state_hash"]:
            break
        check(time.time() < end, "file_ctl_apart: the two members disagree: %s" % st)
        time.sleep(0.2)
    env.kill([p, q])
    print("ok file_ctl_apart: a member restored by cairnctl to another point is refused; "
          "restored to the same one, it starts")


def client_while_starting(env, url, rev):
    """file_starting: a node restoring from the store answers status while it starts (state
    starting, the revision it restores), and a client's write sent meanwhile is not refused: it
    is told no leader is known yet, waits and tries again, and succeeds once the node serves."""
    e = env.env()
    e["CAIRN_TEST_PEER_CHECK_DELAY_MS"] = "2000"
    out = open(env.path("w-n1.log"), "w")
    p = subprocess.Popen(node_args(env, "w", 1, 1, ["--restore-from", url, "--restore-revision",
                                                     str(rev)]),
                         stdout=out, stderr=out, env=e)
    env.procs.append(p)
    wait_port(PORT_BASE + 1)
    r = env.ctl("--json", "status", "--endpoint", "127.0.0.1:%d" % (PORT_BASE + 1), n=1)
    st = json.loads(r.stdout)
    st = st[0] if isinstance(st, list) else st
    check(st["state"] == "starting" and st["revision"] == rev,
          "file_starting: a starting node's status: %s" % r.stdout)
    r = env.ctl("--timeout", "10000", "put", "k/while-starting", "x", n=1, ok=False)
    env.kill([p])
    check(r.returncode == 0, "file_starting: a write sent while the node started failed: %s" %
          r.stderr)
    print("ok file_starting: a starting node answers status (starting, revision %d), and a write "
          "sent meanwhile waits for it" % rev)


def quiet_lag(env):
    """file_quiet_lag: entries a snapshot covers before any shipment took them are archived;
    on a cluster that then stays quiet the recovery point lag is 0, not growing until
    cairn_backup_behind raises a false alarm. (Shipping is slowed down so that the snapshot is
    what archives the write.) Nor is the snapshot overdue after two intervals of 1 s: with
    nothing changed, the schedule skips it."""
    store = env.path("quietstore")
    os.makedirs(store)
    nodes = env.start_cluster("q", ["--backup-url", "file://" + store,
                                    "--backup-snapshot-interval-ms", "1000",
                                    "--backup-verify-interval-ms", "0",
                                    "--backup-ship-interval-ms", "60000",
                                    "--backup-lag-alert-ms", "1000"], n=1)
    rev = put(env, "k/quiet", "q")
    saved = json.loads(env.ctl("--json", "snapshot", "save", n=1).stdout)["snapshot"]
    check(saved["revision"] >= rev, "file_quiet_lag: the snapshot missed the write")
    time.sleep(2.5)
    st = json.loads(env.ctl("--json", "snapshot", "status", n=1).stdout)
    behind = metric(env.metrics(1), "cairn_backup_behind")
    env.kill(nodes)
    check(st["archive"]["archived_revision"] >= rev and st["archive"]["lag_ms"] == 0 and
          not st["archive"]["behind"] and behind == 0,
          "file_quiet_lag: a quiet cluster with everything archived reports a lag of %d ms, "
          "behind %s (metric %s)" %
          (st["archive"]["lag_ms"], st["archive"]["behind"], behind))
    print("ok file_quiet_lag: a quiet, fully archived cluster reports no lag and is not behind")


def status_follows_shipping(env):
    """file_status_window: the leader's status shows the archive as it is between listings. A
    snapshot taken before the entries ahead of it were shipped is listed (the leader lists the
    store right after a snapshot) with the log ending short of it; the shipment that follows
    closes that break, and status must show it closed, not wait a minute for the next
    listing."""
    nodes, store, url = file_cluster(env, "sw", "window", ["--backup-ship-interval-ms", "2000"])
    end = time.time() + 10
    while env.backup_status()["archive"]["archived_index"] == 0 and time.time() < end:
        time.sleep(0.2)
    time.sleep(2.5)  # past the first shipment
    put(env, "k/w0", "a")  # shipped at once: the last shipment was long ago
    time.sleep(0.3)
    put(env, "k/w1", "a")  # waits for the next, 2 s after that
    env.ctl("snapshot", "save")
    last = put(env, "k/w2", "b")
    end = time.time() + 10
    status = env.backup_status()
    while status["archive"]["archived_revision"] < last and time.time() < end:
        time.sleep(0.2)
        status = env.backup_status()
    time.sleep(0.5)
    window = env.backup_status()["window"]
    # cairnctl snapshot list asks the cluster, and prints what list --from prints.
    asked = env.ctl("snapshot", "list").stdout.splitlines()
    read = env.ctl("snapshot", "list", "--from", url).stdout.splitlines()
    env.kill(nodes)
    check(asked == read, "file_status_window: snapshot list shows %s, and from the store %s" %
          (asked, read))
    check(window["gaps"] == 0 and window["latest_revision"] >= last,
          "file_status_window: with the archive whole to revision %d, the leader's status shows "
          "%s" % (last, window))
    print("ok file_status_window: status shows the archive whole to revision %d" % last)
    quiet_window(env)
    save_window(env)


def quiet_window(env):
    """file_quiet_window: reads after the last write (each a Raft barrier, which the log
    archive does not hold) and then a snapshot: the snapshot is named after the last entry
    that changed the state, so the log reaches it and no break is shown. Before, the window
    showed one break on a healthy cluster until the next write."""
    nodes, store, url = file_cluster(env, "qw", "quietwindow")
    for i in range(4):
        last = put(env, "k/q%d" % i, "v")
    end = time.time() + 10
    while env.backup_status()["archive"]["archived_revision"] < last and time.time() < end:
        time.sleep(0.2)
    for i in range(5):
        env.ctl("get", "k/q%d" % (i % 4))
    saved = json.loads(env.ctl("--json", "snapshot", "save").stdout)["snapshot"]
    window = env.backup_status()["window"]
    listing = env.ctl("snapshot", "list", "--from", url).stdout
    # Asked again with nothing changed: the stored snapshot answers, not rewritten.
    again = json.loads(env.ctl("--json", "snapshot", "save").stdout)["snapshot"]
    env.kill(nodes)
    check(again["name"] == saved["name"] and again["sha256"] == saved["sha256"],
          "file_quiet_window: a second save of the same state wrote %s over %s" % (again, saved))
    check(saved["revision"] == last, "file_quiet_window: snapshot at revision %d, not %d" %
          (saved["revision"], last))
    check(window["gaps"] == 0 and window["latest_revision"] == last,
          "file_quiet_window: a quiet cluster's window is %s; the store lists:\n%s" %
          (window, listing))
    print("ok file_quiet_window: reads, then a snapshot: the window is whole (revisions %d-%d)" %
          (window["earliest_revision"], last))


def save_window(env):
    """file_save_window: a save answers once the log archive reaches the new snapshot, so that a
    listing right after it shows no break just before the snapshot. Shipping runs every 3 s here,
    and the write just before the save is one that no shipment has taken yet: before, the save
    answered at once and the listing showed two ranges until the next shipment."""
    nodes, store, url = file_cluster(env, "sv", "savewindow", ["--backup-ship-interval-ms", "3000"])
    end = time.time() + 10
    while env.backup_status()["archive"]["archived_index"] == 0 and time.time() < end:
        time.sleep(0.2)
    time.sleep(3.5)  # past the first shipment's interval
    put(env, "k/s0", "a")  # shipped at once: the last shipment was long ago
    time.sleep(0.3)
    last = put(env, "k/s1", "b")  # the next shipment is up to 3 s away
    began = time.time()
    saved = json.loads(env.ctl("--json", "snapshot", "save").stdout)["snapshot"]
    took = time.time() - began
    listed = json.loads(env.ctl("--json", "snapshot", "list", "--from", url).stdout)
    window = env.backup_status()["window"]
    env.kill(nodes)
    check(saved["revision"] >= last, "file_save_window: the snapshot (revision %d) missed the "
          "write at %d" % (saved["revision"], last))
    ranges = listed["ranges"]
    check(len(ranges) == 1 and ranges[0]["latest_revision"] >= saved["revision"],
          "file_save_window: right after a save at revision %d, the store lists the ranges %s"
          % (saved["revision"], ranges))
    check(window["gaps"] == 0 and window["latest_revision"] >= saved["revision"],
          "file_save_window: right after a save at revision %d, the leader's status shows %s" %
          (saved["revision"], window))
    check(took < 2.5, "file_save_window: the save took %.1f s: it waited for the scheduled "
          "shipment instead of shipping at once" % took)
    print("ok file_save_window: a listing right after a save shows one range, to revision %d "
          "(the save took %.0f ms)" % (ranges[0]["latest_revision"], took * 1000))


def download(env):
    """snapshot save FILE / status FILE / restore --from FILE, with no store."""
    nodes = env.start_cluster("dl", [])
    log = []
    rnd = random.Random(7)
    for i in range(40):
        log.append(("k/%03d" % i, "a%d" % i, put(env, "k/%03d" % i, "a%d" % i)))
    # Values that LZ4 cannot shrink: the snapshot spans several 1 MiB reads.
    for i in range(6):
        v = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(400000))
        log.append(("k/big%d" % i, v, put(env, "k/big%d" % i, v)))
    for i in range(10):
        log.append(("k/%03d" % i, "b%d" % i, put(env, "k/%03d" % i, "b%d" % i)))
    last = log[-1][2]
    history = env.ctl("--json", "history", "k/003").stdout
    path = env.path("dl.snap")
    r = env.ctl("snapshot", "save", path)
    check(r.stdout.startswith("saved: revision %d " % last),
          "file_download: save did not report revision %d: %r" % (last, r.stdout))
    size = os.path.getsize(path)
    check(size > 2 << 20, "file_download: the snapshot is only %d bytes" % size)
    check(not os.path.exists(path + ".part"), "file_download: the .part file stayed")
    # Nothing of the download stays on the leader.
    for i in (1, 2, 3):
        d = env.path("dl", "n%d" % i)
        check(not [f for f in os.listdir(d) if f.startswith("export")],
              "file_download: node %d kept its export file" % i)
    st = json.loads(env.ctl("--json", "snapshot", "status", path).stdout)
    check(st["revision"] == last and st["bytes_stored"] == size and
          st["name"].startswith(st["cluster_id"] + "/snap/"),
          "file_download: status FILE says %s" % st)
    r = env.ctl("snapshot", "status", path)
    check("state hash" in r.stdout and "(checked)" in r.stdout,
          "file_download: status FILE prints %r" % r.stdout)
    # Two downloads one after the other both work (the first one ended).
    path2 = env.path("dl2.snap")
    env.ctl("snapshot", "save", path2)
    check(json.loads(env.ctl("--json", "snapshot", "status", path2).stdout)["revision"] == last,
          "file_download: the second download differs")
    r = env.ctl("snapshot", "status")
    check("not configured" in r.stdout, "file_download: status without a store: %r" % r.stdout)
    # Flags that have no meaning with FILE are refused.
    r = env.ctl("snapshot", "save", path2, "--revision", "3", ok=False)
    check(r.returncode == 2, "file_download: save FILE --revision was accepted")
    env.kill(nodes)

    # A download that cannot reach the cluster leaves the older file alone.
    before = open(path2, "rb").read()
    r = env.ctl("--timeout", "1000", "snapshot", "save", path2, ok=False)
    check(r.returncode == 1 and open(path2, "rb").read() == before and
          not os.path.exists(path2 + ".part"),
          "file_download: a failed save touched the file: %r" % r.stderr)

    # Damaged: refused, and no seed written.
    bad = env.path("dl-bad.snap")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3] ^= 0x01
    open(bad, "wb").write(bytes(data))
    for args in (["snapshot", "status", bad],
                 ["snapshot", "restore", "--from", bad, "--data-dir", env.path("dlbad")]):
        r = env.ctl(*args, ok=False)
        check(r.returncode == 1 and "checksum mismatch" in r.stderr,
              "file_download: %s accepted a damaged file: %r" % (args[1], r.stderr))
    check(not os.path.exists(os.path.join(env.path("dlbad"), "seed.cairnsnap")),
          "file_download: a refused restore left a seed behind")
    r = env.ctl("snapshot", "restore", "--from", path, "--data-dir", env.path("x"), "--revision",
                "5", ok=False)
    check(r.returncode == 2, "file_download: restore --from FILE --revision was accepted")
    # A backup directory given as a path is told to be a URL; an empty store says so.
    empty = env.path("emptystore")
    os.makedirs(empty)
    r = env.ctl("snapshot", "restore", "--from", empty, "--data-dir", env.path("x"), ok=False)
    check(r.returncode == 1 and "is a directory" in r.stderr and "file://" + empty in r.stderr,
          "file_download: a directory as --from: %r" % r.stderr)
    r = env.ctl("snapshot", "list", "--from", "file://" + empty)
    check("holds no backups" in r.stdout, "file_download: an empty store lists %r" % r.stdout)

    # A new cluster from the file serves the same keys and history.
    for i in (1, 2, 3):
        r = env.ctl("--json", "snapshot", "restore", "--from", path, "--data-dir",
                    env.path("dlr", "n%d" % i))
        provisional = json.loads(r.stdout)["cluster_id"]
    # Restored again before it ever started: replaced, and said so.
    r = env.ctl("snapshot", "restore", "--from", path, "--data-dir", env.path("dlr", "n1"))
    check("held the seed of an earlier restore" in r.stderr,
          "file_download: a replaced seed went unmentioned: %r" % r.stderr)
    nodes = env.start_cluster("dlr", [])
    first_id = wait_named(env, provisional, "file_download")
    got = dump(env)
    check(got == expected_at(log, last), "file_download: the restored store differs: %s" %
          differences(got, expected_at(log, last)))
    check(json.loads(env.ctl("--json", "history", "k/003").stdout)["results"] ==
          json.loads(history)["results"],
          "file_download: the history of k/003 differs after the restore")
    env.kill(nodes)
    # cairnd --restore-from FILE does the same at start.
    nodes = env.start_cluster("dlr2", ["--restore-from", path])
    got = dump(env)
    check(got == expected_at(log, last), "file_download: --restore-from FILE differs: %s" %
          differences(got, expected_at(log, last)))
    # The same point restored twice: two clusters, two ids, or their backups would mix.
    second_id = wait_named(env, provisional, "file_download")
    check(second_id != first_id, "file_download: two restores of one point share the cluster "
          "id %s" % first_id)
    env.kill(nodes)
    leader_dies_during_download(env)
    leader_dies_during_reading(env)
    print("ok file_download: %d bytes at revision %d, restored into 3 members twice; a leader "
          "killed during a download handed it on, before and during the reading" % (size, last))


def concurrent_downloads(env, last, most=4):
    """Downloads at once (each held in its writing by CAIRN_TEST_EXPORT_DELAY_MS): up to `most`
    proceed side by side, each into its own file; one more is refused with CAIRN_EBUSY. There was
    one at a time. First, a download whose client dies while the leader writes it: the leader
    drops it once written, instead of keeping one of the places for 60 s."""
    p = subprocess.Popen([os.path.join(env.bin, "cairnctl"), "snapshot", "save",
                          env.path("dlc-gone.snap")], env=env.env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    p.kill()
    p.wait()
    end = time.time() + 10
    while not any("its client is gone; dropped" in open(env.path("dlk-n%d.log" % i)).read()
                  for i in (1, 2, 3)):
        check(time.time() < end, "file_concurrent: an abandoned download was not dropped")
        time.sleep(0.2)
    procs = [subprocess.Popen([os.path.join(env.bin, "cairnctl"), "--timeout", "15000",
                               "snapshot", "save", env.path("dlc%d.snap" % i)],
                              env=env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(most + 1)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    done = [i for i, (_, _, rc) in enumerate(results) if rc == 0]
    busy = [i for i, (_, err, rc) in enumerate(results)
            if rc == 1 and "CAIRN_EBUSY" in err and "the most at once" in err]
    check(len(done) == most and len(busy) == 1,
          "file_concurrent: of %d downloads at once, %d finished and %d were refused as busy: %s"
          % (most + 1, len(done), len(busy), [(rc, err.strip()) for _, err, rc in results]))
    for i in done:
        st = json.loads(env.ctl("--json", "snapshot", "status", env.path("dlc%d.snap" % i)).stdout)
        check(st["revision"] == last, "file_concurrent: download %d is of revision %d, not %d" %
              (i, st["revision"], last))
    print("ok file_concurrent: %d downloads at once, one more refused as busy" % most)


def leader_dies_during_download(env):
    """The leader is killed while it writes the snapshot (held there by
    CAIRN_TEST_EXPORT_DELAY_MS): cairnctl asks the next leader, and the file holds every write
    acknowledged before. Without the retry it failed with CAIRN_EUNKNOWN."""
    os.environ["CAIRN_TEST_EXPORT_DELAY_MS"] = "1500"
    try:
        nodes = env.start_cluster("dlk", [])
    finally:
        del os.environ["CAIRN_TEST_EXPORT_DELAY_MS"]
    for i in range(5):
        last = put(env, "k/%d" % i, "v%d" % i)
    concurrent_downloads(env, last)
    leader = json.loads(env.ctl("--json", "status").stdout)[0]["leader"]
    path = env.path("dlk.snap")
    # --timeout: an election after the leader's death may take a few seconds.
    p = subprocess.Popen([os.path.join(env.bin, "cairnctl"), "--timeout", "15000", "snapshot",
                          "save", path],
                         env=env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    time.sleep(0.7)
    env.kill([nodes[leader - 1]])
    out, err = p.communicate(timeout=60)
    check(p.returncode == 0, "file_download: the leader's death failed the download: %s" % err)
    st = json.loads(env.ctl("--json", "snapshot", "status", path).stdout)
    check(st["revision"] >= last, "file_download: after the leader died, revision %d < %d" %
          (st["revision"], last))
    env.kill(nodes)


def reads_off_the_loop(env, leader):
    """file_download_reads: while a download's pieces are read (each read held 300 ms), the
    leader answers other clients at once: the file is read off its event loop. Reading on the
    loop held every request behind the piece being read (a median wait near 150 ms)."""
    put(env, "k/small", "s")
    path = env.path("dlr-loop.snap")
    p = subprocess.Popen([os.path.join(env.bin, "cairnctl"), "snapshot", "save", path],
                         env=env.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.time() + 30
    while not (os.path.exists(path + ".part") and os.path.getsize(path + ".part") > 0):
        check(p.poll() is None and time.time() < end,
              "file_download_reads: the download did not begin its reading")
        time.sleep(0.01)
    waits = []
    while p.poll() is None and len(waits) < 20:
        t0 = time.time()
        env.ctl("--endpoints", "127.0.0.1:%d" % (PORT_BASE + leader), "get", "k/small")
        waits.append(time.time() - t0)
    out, err = p.communicate(timeout=60)
    check(p.returncode == 0, "file_download_reads: the download failed: %s" % err)
    waits.sort()
    check(len(waits) >= 5 and waits[len(waits) // 2] < 0.1,
          "file_download_reads: gets during the reading took %s s" %
          ["%.3f" % w for w in waits])
    print("ok file_download_reads: %d gets during a download's reading, median %.0f ms" %
          (len(waits), waits[len(waits) // 2] * 1000))


def leader_dies_during_reading(env):
    """The leader is killed between two 1 MiB reads of the file (each held 300 ms by
    CAIRN_TEST_EXPORT_READ_DELAY_MS, cairnctl stopped meanwhile): cairnctl truncates FILE.part
    and downloads it afresh from the next leader. Without that it failed with
    CAIRN_ENOTFOUND."""
    os.environ["CAIRN_TEST_EXPORT_READ_DELAY_MS"] = "300"
    try:
        nodes = env.start_cluster("dlr", [])
    finally:
        del os.environ["CAIRN_TEST_EXPORT_READ_DELAY_MS"]
    rnd = random.Random(11)
    # Three 1 MiB reads: values LZ4 cannot shrink.
    for i in range(6):
        v = "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(400000))
        last = put(env, "k/big%d" % i, v)
    leader = json.loads(env.ctl("--json", "status").stdout)[0]["leader"]
    reads_off_the_loop(env, leader)
    term = json.loads(env.ctl("--json", "member", "list").stdout)["term"]
    path = env.path("dlr.snap")
    e = env.env()
    e["CAIRN_ENDPOINTS"] = env.endpoints()
    p = subprocess.Popen([os.path.join(env.bin, "cairnctl"), "--timeout", "15000", "snapshot",
                          "save", path], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    # The first piece is in FILE.part: stop cairnctl, kill the leader, let cairnctl go on.
    end = time.time() + 30
    while not (os.path.exists(path + ".part") and os.path.getsize(path + ".part") > 0):
        if p.poll() is not None:
            out, err = p.communicate()
            raise Fail("file_download: the download ended (exit %d) before its first piece was "
                       "seen: %s%s" % (p.returncode, out, err))
        check(time.time() < end, "file_download: no piece of the download in 30 s")
        time.sleep(0.01)
    p.send_signal(signal.SIGSTOP)
    got = os.path.getsize(path + ".part")
    env.kill([nodes[leader - 1]])
    p.send_signal(signal.SIGCONT)
    out, err = p.communicate(timeout=60)
    check(got < 3 << 20, "file_download: %d bytes were read before the leader died" % got)
    check(p.returncode == 0, "file_download: the leader's death during the reading failed the "
          "download: %s" % err)
    st = json.loads(env.ctl("--json", "snapshot", "status", path).stdout)
    check(st["revision"] >= last and st["bytes_stored"] == os.path.getsize(path),
          "file_download: after the leader died during the reading: %s" % st)
    # Taken afresh by the next leader, in a later term.
    check(st["raft_term"] > term, "file_download: the file is of term %d, the dead leader's "
          "(%d)" % (st["raft_term"], term))
    env.kill(nodes)


def run_retention(env):
    # Everything for 2 s, then one snapshot per hour (the oldest of its hour).
    nodes, store, url = file_cluster(env, "r", "retained", ["--backup-retention", "2s:all,1h:1h"])
    end = time.time() + 10
    while not json.loads(env.ctl("--json", "snapshot", "list", "--from", url).stdout)["snapshots"]:
        check(time.time() < end, "file_retention: no first snapshot")
        time.sleep(0.2)
    first = json.loads(env.ctl("--json", "snapshot", "list", "--from", url).stdout)["snapshots"][0]
    saved = []
    for round_ in range(3):
        for i in range(5):
            put(env, "k/%03d" % i, "r%d-%d" % (round_, i))
        saved.append(json.loads(env.ctl("--json", "snapshot", "save").stdout)["snapshot"])
        time.sleep(2.5)
    put(env, "k/last", "x")
    last = json.loads(env.ctl("--json", "snapshot", "save").stdout)["snapshot"]
    time.sleep(1.5)  # the prune that follows a snapshot
    listing = json.loads(env.ctl("--json", "snapshot", "list", "--from", url).stdout)
    names = [sn["name"] for sn in listing["snapshots"]]
    # What the tiers keep: the newest, the 2 s window (only the newest is that
    # young by now), and the oldest snapshot of each hour.
    hour = 3600 * 1000
    every = [first] + saved + [last]
    expected = {last["name"]}
    seen_hours = set()
    for sn in every:
        if sn["time_ms"] // hour not in seen_hours:
            seen_hours.add(sn["time_ms"] // hour)
            expected.add(sn["name"])
    check(set(names) == expected, "file_retention: kept %s, expected %s" %
          (sorted(names), sorted(expected)))
    # The log: with every snapshot kept past the window (1 ms buckets), the
    # log before the newest snapshot older than the window goes.
    env.kill(nodes)
    nodes = env.start_cluster("r", ["--backup-url", url, "--backup-snapshot-interval-ms", "0",
                                    "--backup-verify-interval-ms", "0",
                                    "--backup-retention", "2s:all,1h:1ms"])
    time.sleep(2.5)
    put(env, "k/final", "y")
    env.ctl("snapshot", "save")
    time.sleep(1.5)

    def segments():
        found = []
        for _, _, files in os.walk(store):
            found += [f for f in files if f.endswith(".seg")]
        return found

    segs = segments()
    old_segs = [f for f in segs if int(f.split("-")[1]) <= last["raft_index"]]
    check(not old_segs, "file_retention: log segments before the point-in-time window stayed: %s"
          % old_segs)
    check(env.ctl("snapshot", "verify", "--from", url, ok=False).returncode == 0,
          "file_retention: the store no longer verifies after pruning")
    env.kill(nodes)
    print("ok file_retention: %d snapshots kept of %d; the log before revision %d pruned, %d "
          "segments left" % (len(names), len(every), last["revision"], len(segs)))


def compaction(env):
    """file_compaction: the archive's small segments are merged (windows of 1 s, then 12 s), and
    the merged archive still verifies and restores to a revision in the middle and to the
    end."""
    nodes, store, url = file_cluster(env, "m", "compacted", ["--backup-ship-interval-ms", "100",
                                                             "--backup-compact-ms", "1000"])

    def segments():
        found = []
        for _, _, files in os.walk(store):
            found += [f for f in files if f.endswith(".seg")]
        return found

    log = []
    end = time.time() + 4
    i = 0
    while time.time() < end:
        log.append(("k/%03d" % (i % 20), "m%d" % i, put(env, "k/%03d" % (i % 20), "m%d" % i)))
        i += 1
        time.sleep(0.03)
    last = log[-1][2]
    shipped = sum(metric(env.metrics(n), "cairn_backup_segments_total") or 0 for n in (1, 2, 3))
    check(shipped >= 15, "file_compaction: only %d segments shipped; the test needs more" % shipped)
    # The last 1 s window closes 0.2 s after it ends, the last 12 s window 0.2 s after its end.
    deadline = time.time() + 30
    while time.time() < deadline and (len(segments()) > 2 or
                                      env.backup_status()["archive"]["archived_revision"] < last):
        time.sleep(0.5)
    left = segments()
    merged = sum(metric(env.metrics(n), "cairn_backup_segments_merged_total") or 0
                 for n in (1, 2, 3))
    check(len(left) <= 2, "file_compaction: %d segments shipped, %d still in the store: %s" %
          (shipped, len(left), sorted(left)[:5]))
    check(merged >= shipped - 2, "file_compaction: cairn_backup_segments_merged_total is %d" %
          merged)
    listing = json.loads(env.ctl("--json", "snapshot", "list", "--from", url).stdout)
    check(len(listing["ranges"]) == 1 and listing["ranges"][0]["latest_revision"] >= last,
          "file_compaction: the restorable window is %s" % listing["ranges"])
    check(env.ctl("snapshot", "verify", "--from", url, ok=False).returncode == 0,
          "file_compaction: the merged archive does not verify")
    env.kill(nodes)
    mid = log[len(log) // 2][2]
    for tag, rev in (("mm", mid), ("ml", last)):
        env.ctl("snapshot", "restore", "--from", url, "--data-dir", env.path(tag, "n1"),
                "--revision", str(rev))
        nodes = env.start_cluster(tag, [], n=1)
        got = dump(env, n=1)
        check(got == expected_at(log, rev), "file_compaction: the restore to revision %d differs: %s"
              % (rev, differences(got, expected_at(log, rev))))
        env.kill(nodes)
    print("ok file_compaction: %d segments merged into %d; verified, and restored to revisions %d "
          "and %d" % (shipped, len(left), mid, last))


def compaction_fails(env):
    """file_compact_fails: a merge that cannot be written (the store's disk full) is counted in
    cairn_backup_failures_total{job="compact"}, the node carries on, and nothing is lost: its
    inputs stay until a merge is written. Needs root for the small tmpfs; skipped otherwise."""
    if os.geteuid() != 0:
        print("skip file_compact_fails: mounting a small tmpfs needs root")
        return
    store = env.path("smallstore")
    os.makedirs(store)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", store]).returncode != 0:
        print("skip file_compact_fails: cannot mount a tmpfs")
        return
    name = 'cairn_backup_failures_total{job="compact"}'
    nodes = []
    try:
        url = "file://" + store
        nodes = env.start_cluster("cf", ["--backup-url", url, "--backup-snapshot-interval-ms", "0",
                                         "--backup-verify-interval-ms", "0",
                                         "--backup-ship-interval-ms", "100",
                                         "--backup-compact-ms", "1000"], n=1)
        end = time.time() + 1.5
        i = 0
        while time.time() < end:
            put(env, "k/%03d" % (i % 20), "f%d" % i)
            i += 1
            time.sleep(0.03)
        fd = os.open(os.path.join(store, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass  # full
        os.close(fd)
        deadline = time.time() + 20
        while (metric(env.metrics(1), name) or 0) < 1 and time.time() < deadline:
            time.sleep(0.5)
        failures = metric(env.metrics(1), name)
        check(failures is not None and failures >= 1,
              "file_compact_fails: %s is %s with the store full" % (name, failures))
        os.unlink(os.path.join(store, "filler"))
        last = put(env, "k/after", "x")
        deadline = time.time() + 10
        while env.backup_status()["archive"]["archived_revision"] < last and time.time() < deadline:
            time.sleep(0.2)
        r = env.ctl("--json", "snapshot", "verify", "--from", url, ok=False)
        check(r.returncode == 0 and json.loads(r.stdout)["revision"] == last,
              "file_compact_fails: after the failed merges the store verifies to %s, not revision "
              "%d" % (r.stdout.strip() or r.stderr.strip(), last))
    finally:
        env.kill(nodes)
        subprocess.run(["umount", "-l", store])
    print("ok file_compact_fails: %d failed merges counted; the store verifies to revision %d" %
          (failures, last))


def full_disk(env):
    """file_full_disk: a restore into a data directory with no room fails with the system's
    error, keeps nothing there (no partial seed to fill the disk, no seed to start from), and
    works once there is room. Both ways: cairnctl snapshot restore and cairnd --restore-from.
    Needs root for the small tmpfs; skipped otherwise."""
    if os.geteuid() != 0:
        print("skip file_full_disk: mounting a small tmpfs needs root")
        return
    nodes, store, url = file_cluster(env, "d", "fullstore", n=1)
    for i in range(8):  # about 360 KB of seed: each value its own
        last = put(env, "big/%d" % i,
                   "".join(random.choice(string.ascii_letters) for _ in range(60000)))
    env.ctl("snapshot", "save", n=1)
    env.kill(nodes)
    tiny = env.path("tiny")
    os.makedirs(tiny)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", tiny]).returncode != 0:
        print("skip file_full_disk: cannot mount a tmpfs")
        return
    try:
        data = os.path.join(tiny, "n1")
        r = env.ctl("snapshot", "restore", "--from", url, "--data-dir", data, ok=False)
        check(r.returncode != 0 and "No space left on device" in r.stderr,
              "file_full_disk: cairnctl restore into a full disk: exit %d, %r" %
              (r.returncode, r.stderr))
        left = os.listdir(data) if os.path.isdir(data) else []
        check(left == [], "file_full_disk: a failed restore left %s behind" % left)
        args = node_args(env, "d2", 1, 1, ["--restore-from", url])
        args[args.index("--data-dir") + 1] = data
        err = start_refused(env, args, "file_full_disk", "No space left on device")
        left = os.listdir(data) if os.path.isdir(data) else []
        check(all(not n.startswith("seed") for n in left),
              "file_full_disk: a failed --restore-from left %s behind" % left)
        subprocess.run(["mount", "-o", "remount,size=16m", tiny], check=True)
        shutil.rmtree(data, ignore_errors=True)
        r = env.ctl("--json", "snapshot", "restore", "--from", url, "--data-dir", data)
        check(json.loads(r.stdout)["revision"] == last,
              "file_full_disk: the restore with room did not reach revision %d: %s" %
              (last, r.stdout))
    finally:
        subprocess.run(["umount", "-l", tiny])
    said = [ln for ln in err.splitlines() if "No space left" in ln][0]
    said = said[said.find("error:"):] if "error:" in said else said
    print("ok file_full_disk: a restore without room fails (%s) and leaves nothing; with room "
          "it works" % said[:100])


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    env = Env(sys.argv[1])
    only = sys.argv[2:]
    if not os.path.exists(os.path.join(HERE, "node_modules", ".bin", "s3rver")):
        print("skip: s3rver is not installed (deploy/deps.sh --test)")
        return 77
    try:
        if not only or "file" in only:
            quiet_lag(env)
            download(env)
            run_file(env)
            run_retention(env)
            status_follows_shipping(env)
            compaction(env)
            compaction_fails(env)
            full_disk(env)
        if not only or "s3" in only:
            run_s3(env, only)
        # Sanitizer builds: a node's report counts even if the others carried on.
        for name in os.listdir(env.tmp):
            if name.endswith(".log"):
                with open(env.path(name), errors="replace") as f:
                    text = f.read()
                check("Sanitizer" not in text and "runtime error:" not in text,
                      "%s holds a sanitizer report" % name)
    except Fail as e:
        print("FAIL: %s (logs in %s)" % (e, env.tmp))
        env.close()
        return 1
    env.close()
    shutil.rmtree(env.tmp, ignore_errors=True)
    print("dr: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
