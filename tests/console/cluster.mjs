// A real 3-node Cairn cluster for the browser tests: build/bin/cairnd of the
// build tree under test, on loopback, with temporary data directories.
//
// Node N (1..3) listens for clients on 127.0.0.1:(base + N), Raft on
// base + 100 + N and HTTP on base + 200 + N; base is 24000 unless
// CAIRN_CONSOLE_PORT_BASE says otherwise (ports 24000-24999 are the
// console tests' own; see base_step below).
//
// Every node also gets --backup-url file://DIR/backups (one backup
// location in the cluster's temporary directory).

import { spawn, execFile } from "node:child_process";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ready_timeout_ms = 30000;

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function httpStatus(url) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

// A run killed outright (SIGKILL, e.g. at ctest's timeout) cannot stop its
// nodes; the next run stops them from the pid file, so that the ports are
// free. A pid counts only while it is still a cairnd (pids are reused).
function stalePidFile(base) {
  return path.join(os.tmpdir(), `cairn-console-${base}.pids`);
}

function alive(pid) {
  try {
    // The state is the field after the parenthesized command name.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function killStale(base) {
  let pids = [];
  try {
    pids = fs.readFileSync(stalePidFile(base), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return;
  }
  // The first pid is the run that wrote the file: while it lives, its nodes
  // are not stale but another run's (this one then moves to other ports).
  const runner = pids.shift();
  if (alive(runner)) return;
  for (const pid of pids) {
    let comm = "";
    try {
      comm = fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    } catch {
      continue;
    }
    if (comm === "cairnd") process.kill(pid, "SIGKILL");
  }
  // Until they are gone, their ports are not free.
  const until = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < until) await sleep(50);
  fs.rmSync(stalePidFile(base), { force: true });
}

// The ports lie below Linux's ephemeral range (32768 up), but another run
// may hold them: a node that cannot bind moves the whole cluster to the next
// base (24000, 24300, 24600: all in 24000-24999).
const base_step = 300;
const base_tries = 3;

class PortInUse extends Error {}

export async function startCluster(buildDir) {
  const first = Number(process.env.CAIRN_CONSOLE_PORT_BASE || 24000);
  for (let i = 0; ; i++) {
    try {
      return await startClusterAt(buildDir, first + i * base_step);
    } catch (e) {
      if (!(e instanceof PortInUse) || i + 1 >= base_tries) throw e;
      console.error(`# ${e.message}; trying ports from ${first + (i + 1) * base_step}`);
    }
  }
}

// Whether every port can be bound now (a listener of another run, or a
// connection's ephemeral port, makes it fail). Checked before starting, as
// /ready answered by someone else's node would pass for ours.
async function portsFree(ports) {
  for (const port of ports) {
    const ok = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once("error", () => resolve(false));
      srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
    });
    if (!ok) return false;
  }
  return true;
}

async function startClusterAt(buildDir, base) {
  const bin = path.join(buildDir, "bin");
  const cairnd = path.join(bin, "cairnd");
  const cairnctl = path.join(bin, "cairnctl");
  for (const f of [cairnd, cairnctl]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: build first (cmake --build ${buildDir})`);
  }
  await killStale(base);
  const ports = [1, 2, 3].flatMap((n) => [base + n, base + 100 + n, base + 200 + n]);
  if (!(await portsFree(ports))) throw new PortInUse(`a port of base ${base} is in use`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-console-"));
  const ids = [1, 2, 3];
  const client = (n) => `127.0.0.1:${base + n}`;
  const raft = (n) => `127.0.0.1:${base + 100 + n}`;
  const httpAddr = (n) => `127.0.0.1:${base + 200 + n}`;
  const initial = ids.map((n) => `${n}=${raft(n)}/${client(n)}`).join(",");
  const endpoints = ids.map(client).join(",");
  const procs = new Map();
  const backupUrl = `file://${path.join(dir, "backups")}`;
  if (backupUrl) fs.mkdirSync(path.join(dir, "backups")); // a file:// location must exist

  function start(n) {
    const log = fs.openSync(path.join(dir, `node${n}.log`), "a");
    const p = spawn(
      cairnd,
      [
        "--id", String(n),
        "--data-dir", path.join(dir, `node${n}`),
        "--raft-addr", raft(n),
        "--client-addr", client(n),
        "--http-addr", httpAddr(n),
        "--initial-cluster", initial,
        ...(backupUrl ? ["--backup-url", backupUrl] : []),
      ],
      { stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    procs.set(n, p);
    p.on("exit", () => procs.delete(n));
  }
  for (const n of ids) start(n);
  const pidFile = stalePidFile(base);
  fs.writeFileSync(pidFile, [process.pid, ...[...procs.values()].map((p) => p.pid)].join("\n") + "\n");
  // If this process is told to stop, the nodes stop with it.
  const killAll = () => {
    for (const p of procs.values()) p.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      killAll();
      process.exit(1);
    });
  }

  // Ready: every node's /ready says it has a leader and has caught up.
  const deadline = Date.now() + ready_timeout_ms;
  for (;;) {
    const codes = await Promise.all(ids.map((n) => httpStatus(`http://${httpAddr(n)}/ready`)));
    if (codes.every((c) => c === 200) && procs.size === ids.length) break;
    for (const n of ids) {
      if (!procs.has(n)) {
        const tail = fs.readFileSync(path.join(dir, `node${n}.log`), "utf8").split("\n").slice(-8).join("\n");
        await stop();
        if (/address already in use/.test(tail)) throw new PortInUse(`node ${n}: a port of base ${base} is in use`);
        throw new Error(`cairnd node ${n} exited while starting; its log ends with:\n${tail}`);
      }
    }
    if (Date.now() > deadline) {
      await stop({ keepDir: true });
      throw new Error(`the cluster was not ready within ${ready_timeout_ms} ms (/ready: ${codes.join(", ")}); logs in ${dir}`);
    }
    await sleep(200);
  }

  function ctl(...args) {
    return new Promise((resolve, reject) => {
      execFile(cairnctl, ["--endpoints", endpoints, ...args], { timeout: 15000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`cairnctl ${args.join(" ")}: ${stderr || err.message}`));
        else resolve(stdout);
      });
    });
  }

  async function stop({ keepDir = false } = {}) {
    for (const p of procs.values()) p.kill("SIGTERM");
    const until = Date.now() + 8000;
    while (procs.size && Date.now() < until) await sleep(100);
    for (const p of procs.values()) p.kill("SIGKILL");
    while (procs.size) await sleep(50);
    fs.rmSync(pidFile, { force: true });
    if (!keepDir && process.env.CAIRN_CONSOLE_KEEP !== "1") fs.rmSync(dir, { recursive: true, force: true });
  }

  // Node n (beyond the first 3) started with --join 1, waiting to be added;
  // resolves with its member address once it serves HTTP.
  async function startJoining(n) {
    const log = fs.openSync(path.join(dir, `node${n}.log`), "a");
    const p = spawn(
      cairnd,
      ["--id", String(n), "--data-dir", path.join(dir, `node${n}`), "--raft-addr", raft(n),
       "--client-addr", client(n), "--http-addr", httpAddr(n), "--join", "1"],
      { stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    procs.set(n, p);
    p.on("exit", () => procs.delete(n));
    const until = Date.now() + ready_timeout_ms;
    while ((await httpStatus(`http://${httpAddr(n)}/health`)) !== 200) {
      if (!procs.has(n) || Date.now() > until) throw new Error(`joining node ${n} does not serve /health`);
      await sleep(100);
    }
    return `${raft(n)}/${client(n)}`;
  }

  return {
    url: `http://${httpAddr(1)}`,
    urls: ids.map((n) => `http://${httpAddr(n)}`),
    dir,
    backupUrl, // null: the nodes run without --backup-url
    // The changes "made elsewhere" go through cairnctl and the native protocol.
    put: (key, value) => ctl("put", key, value),
    del: (key) => ctl("del", key),
    ctl,
    startJoining,
    get: async (key) => {
      try {
        return await ctl("get", key);
      } catch (e) {
        if (/not found/.test(e.message)) return null;
        throw e;
      }
    },
    stop,
  };
}
