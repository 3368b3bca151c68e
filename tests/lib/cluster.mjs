// A real 3-node Cairn cluster for the Node.js tests (the console's in
// tests/console, the OpenAPI document's in tests/openapi): BUILD_DIR/bin/cairnd
// on loopback, with temporary data directories.
//
// Node N (1..3) listens for clients on 127.0.0.1:(base + N), Raft on
// base + 100 + N and HTTP on base + 200 + N. Each suite has bases of its own
// below Linux's ephemeral range (32768 up), where outgoing connections take
// their ports; still, another run may hold one, so a start that finds a port
// taken moves the whole cluster to the next base.

import { spawn, execFile } from "node:child_process";
import net from "node:net";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const ready_timeout_ms = 30000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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
function stalePidFile(name, base) {
  return path.join(os.tmpdir(), `cairn-${name}-${base}.pids`);
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

async function killStale(name, base) {
  let pids = [];
  try {
    pids = fs.readFileSync(stalePidFile(name, base), "utf8").split("\n").filter(Boolean).map(Number);
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
  fs.rmSync(stalePidFile(name, base), { force: true });
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

class PortInUse extends Error {}

// The nodes die with this process, however it ends: one set of handlers for
// every cluster the process starts.
const running = new Set();
let handlersInstalled = false;
function killEverything() {
  for (const procs of running) for (const p of procs.values()) p.kill("SIGKILL");
}
function installHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", killEverything);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
    process.on(sig, () => {
      killEverything();
      process.exit(1);
    });
  }
}

// options:
//   name       the suite's name: in the temporary directory's name, the pid file's
//              and the variable CAIRN_<NAME>_KEEP=1 that keeps the directory
//   bases      the port bases to try, in order (each uses base + 1 .. base + 203)
//   extraArgs  flags given to every node
//   backup     give every node --backup-url file://DIR/backups
export async function startCluster(buildDir, { name, bases, extraArgs = [], backup = false }) {
  for (let i = 0; ; i++) {
    try {
      return await startAt(buildDir, bases[i], { name, extraArgs, backup });
    } catch (e) {
      if (!(e instanceof PortInUse) || i + 1 >= bases.length) throw e;
      console.error(`# ${e.message}; trying ports from ${bases[i + 1]}`);
    }
  }
}

async function startAt(buildDir, base, { name, extraArgs, backup }) {
  const bin = path.join(buildDir, "bin");
  const cairnd = path.join(bin, "cairnd");
  const cairnctl = path.join(bin, "cairnctl");
  for (const f of [cairnd, cairnctl]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: build first (cmake --build ${buildDir})`);
  }
  await killStale(name, base);
  const ports = [1, 2, 3].flatMap((n) => [base + n, base + 100 + n, base + 200 + n]);
  if (!(await portsFree(ports))) throw new PortInUse(`a port of base ${base} is in use`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cairn-${name}-`));
  const ids = [1, 2, 3];
  const client = (n) => `127.0.0.1:${base + n}`;
  const raft = (n) => `127.0.0.1:${base + 100 + n}`;
  const httpAddr = (n) => `127.0.0.1:${base + 200 + n}`;
  const initial = ids.map((n) => `${n}=${raft(n)}/${client(n)}`).join(",");
  const endpoints = ids.map(client).join(",");
  const procs = new Map();
  const backupUrl = backup ? `file://${path.join(dir, "backups")}` : null;
  if (backupUrl) fs.mkdirSync(path.join(dir, "backups")); // a file:// location must exist
  running.add(procs);
  installHandlers();

  function spawnNode(n, how) {
    const log = fs.openSync(path.join(dir, `node${n}.log`), "a");
    const p = spawn(
      cairnd,
      ["--id", String(n), "--data-dir", path.join(dir, `node${n}`), "--raft-addr", raft(n),
       "--client-addr", client(n), "--http-addr", httpAddr(n), ...how,
       ...(backupUrl ? ["--backup-url", backupUrl] : []), ...extraArgs],
      { stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    procs.set(n, p);
    p.on("exit", () => procs.delete(n));
  }
  for (const n of ids) spawnNode(n, ["--initial-cluster", initial]);
  const pidFile = stalePidFile(name, base);
  fs.writeFileSync(pidFile, [process.pid, ...[...procs.values()].map((p) => p.pid)].join("\n") + "\n");

  async function stop({ keepDir = false } = {}) {
    for (const p of procs.values()) p.kill("SIGTERM");
    const until = Date.now() + 8000;
    while (procs.size && Date.now() < until) await sleep(100);
    for (const p of procs.values()) p.kill("SIGKILL");
    while (procs.size) await sleep(50);
    running.delete(procs);
    fs.rmSync(pidFile, { force: true });
    const keep = process.env[`CAIRN_${name.toUpperCase()}_KEEP`] === "1";
    if (!keepDir && !keep) fs.rmSync(dir, { recursive: true, force: true });
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

  // Node n (beyond the first 3) started with --join 1: it waits until the
  // leader adds it. Resolves with its HTTP URL and its member address once it
  // serves HTTP.
  async function startJoining(n) {
    spawnNode(n, ["--join", "1"]);
    const until = Date.now() + ready_timeout_ms;
    while ((await httpStatus(`http://${httpAddr(n)}/health`)) !== 200) {
      if (!procs.has(n) || Date.now() > until) throw new Error(`joining node ${n} does not serve /health`);
      await sleep(100);
    }
    return { url: `http://${httpAddr(n)}`, address: `${raft(n)}/${client(n)}` };
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
    get: async (key) => {
      try {
        return await ctl("get", key);
      } catch (e) {
        if (/not found/.test(e.message)) return null;
        throw e;
      }
    },
    kill: (n) => procs.get(n)?.kill("SIGKILL"),
    startJoining,
    stop,
  };
}
