#!/usr/bin/env python3
"""The test of cairn-lazyfs (lazyfs.c): what a crash must lose and keep.

    lazyfs_test.py PATH/TO/cairn-lazyfs

Mounts the file system twice over scratch directories, once as the harness
uses it and once with --ignore-sync (the self-test's sabotage), writes files
the ways cairnd and raft do, crashes, and checks every file. Exits 77 (ctest:
skipped) without root or /dev/fuse.
"""
import os
import subprocess
import sys
import tempfile
import time

CTL = ".lazyfs"
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


def write(path, data, off=None, flags=0, sync=None):
    """Writes data at off (None: the end); sync is None, 'fsync' or 'fdatasync'."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o644)
    try:
        os.lseek(fd, 0, os.SEEK_END) if off is None else os.lseek(fd, off, os.SEEK_SET)
        os.write(fd, data)
        if sync == "fsync":
            os.fsync(fd)
        elif sync == "fdatasync":
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def command(mnt, cmd):
    with open(os.path.join(mnt, CTL), "w") as f:
        f.write(cmd + "\n")
    return read(os.path.join(mnt, CTL)).decode()


class Mount:
    def __init__(self, binary, scratch, name, *flags):
        self.backing = os.path.join(scratch, name + ".disk")
        self.mnt = os.path.join(scratch, name)
        os.mkdir(self.backing)
        os.mkdir(self.mnt)
        self.log = open(os.path.join(scratch, name + ".log"), "w")
        self.proc = subprocess.Popen([binary, *flags, self.backing, self.mnt],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if os.path.ismount(self.mnt):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise SystemExit(f"lazyfs_test: {binary} did not mount {self.mnt}")

    def path(self, name):
        return os.path.join(self.mnt, name)

    def close(self):
        alive = self.proc.poll() is None
        subprocess.run(["umount", self.mnt], check=False)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            subprocess.run(["umount", "-l", self.mnt], check=False)
        self.log.close()
        return alive


def test_crash(m):
    p = m.path
    # Synced, then overwritten in its middle and appended to without a sync.
    write(p("a"), b"A" * 10000, 0, sync="fsync")
    write(p("a"), b"B" * 100, 5000)
    write(p("a"), b"C" * 3000)
    # Created and written, never synced.
    write(p("new"), b"never synced")
    # Written through O_DSYNC (raft's open segments), and with fdatasync.
    write(p("dsync"), b"D" * 5000, 0, flags=os.O_DSYNC)
    write(p("datasync"), b"E" * 3000, 0, sync="fdatasync")
    # Synced, then cut short; synced, then cut and grown past its old end.
    write(p("cut"), b"F" * 9000, 0, sync="fsync")
    os.truncate(p("cut"), 100)
    write(p("regrow"), b"G" * 5000, 0, sync="fsync")
    os.truncate(p("regrow"), 10)
    write(p("regrow"), b"H" * 100, 8000)
    # Space allocated and never synced (raft preallocates its segments).
    fd = os.open(p("prealloc"), os.O_RDWR | os.O_CREAT, 0o644)
    os.posix_fallocate(fd, 0, 1 << 20)
    os.close(fd)
    # Synced under one name, renamed, then written: names are durable at once.
    write(p("old-name"), b"I" * 4096, 0, sync="fsync")
    os.rename(p("old-name"), p("new-name"))
    write(p("new-name"), b"J" * 10, 0)
    # Written in a subdirectory (cairnd's backlog/).
    os.mkdir(p("dir"))
    write(p("dir/f"), b"K" * 50, 0, sync="fsync")
    write(p("dir/f"), b"L" * 50)
    # Unlinked while open and written: must not upset the file system.
    fd = os.open(p("gone"), os.O_RDWR | os.O_CREAT, 0o644)
    os.unlink(p("gone"))
    os.write(fd, b"M" * 100)
    os.close(fd)

    report = command(m.mnt, "crash")
    check("the crash's report", report.startswith("crash: ") and "with errors" not in report,
          True)
    # Seven files had unsynced changes; the unlinked one is not counted.
    check("files the crash rolled back", report.split(" files ")[0], "crash: 7")

    check("a: synced content, overwrite undone, append cut", read(p("a")), b"A" * 10000)
    check("new: created, never synced", read(p("new")), b"")
    check("dsync: written with O_DSYNC", read(p("dsync")), b"D" * 5000)
    check("datasync: fdatasync", read(p("datasync")), b"E" * 3000)
    check("cut: truncate undone", read(p("cut")), b"F" * 9000)
    check("regrow: truncate and regrowth undone", read(p("regrow")), b"G" * 5000)
    check("prealloc: unsynced allocation cut", os.path.getsize(p("prealloc")), 0)
    check("new-name: content as synced, under its new name", read(p("new-name")), b"I" * 4096)
    check("dir/f: append cut", read(p("dir/f")), b"K" * 50)
    check("the control file stays out of listings", CTL in os.listdir(m.mnt), False)

    # After a crash the ledger is empty: a second crash loses nothing more,
    # and a "sync" command makes what follows it count as synced.
    write(p("a"), b"N" * 10, 0)
    command(m.mnt, "sync")
    report = command(m.mnt, "crash")
    check("the crash after a sync", report.startswith("crash: 0 files"), True)
    check("a: the write before the sync command", read(p("a"))[:10], b"N" * 10)

    try:
        command(m.mnt, "explode")
        failures.append("an unknown command was accepted")
    except OSError:
        pass


def test_ignore_sync(m):
    p = m.path
    write(p("base"), b"O" * 100, 0)
    command(m.mnt, "sync")
    write(p("base"), b"P" * 100, 0, sync="fsync")
    write(p("dsync"), b"Q" * 100, 0, flags=os.O_DSYNC)
    command(m.mnt, "crash")
    check("--ignore-sync: a synced write is lost", read(p("base")), b"O" * 100)
    check("--ignore-sync: an O_DSYNC write is lost", read(p("dsync")), b"")


def main():
    binary = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        print("lazyfs_test: skipped: needs root and /dev/fuse")
        return 77
    with tempfile.TemporaryDirectory(prefix="cairn-lazyfs-") as scratch:
        for name, flags, test in (("plain", (), test_crash),
                                  ("sabotaged", ("--ignore-sync",), test_ignore_sync)):
            m = Mount(binary, scratch, name, *flags)
            try:
                test(m)
            finally:
                if not m.close():
                    failures.append(f"{name}: cairn-lazyfs died (see its log)")
    for f in failures:
        print("lazyfs_test: FAIL:", f)
    if failures:
        return 1
    print("lazyfs_test: a crash kept every synced byte and lost every unsynced one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
