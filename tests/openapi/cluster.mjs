// A real 3-node Cairn cluster for the OpenAPI tests: BUILD_DIR/bin/cairnd on
// loopback with temporary data directories. Node N (1..3) listens for
// clients on 127.0.0.1:(base + N), Raft on base + 100 + N and HTTP on
// base + 200 + N. Ports 25000-25999 are these tests' own, below Linux's
// ephemeral range (32768 up), where outgoing connections take their ports;
// still, a start that finds a port taken is tried again at the next base.
// CAIRN_OPENAPI_BASES=B1,B2,... chooses other bases (each uses B to B+203),
// for machines shared by several test runs.

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const bases = process.env.CAIRN_OPENAPI_BASES
  ? process.env.CAIRN_OPENAPI_BASES.split(",").map((b) => Number.parseInt(b, 10))
  : [25000, 25300, 25600];
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

// extraArgs: flags given to every node (small limits make the 413s cheap).
export async function startCluster(buildDir, extraArgs) {
  const attempts = 2 * bases.length;
  for (let i = 0; ; i++) {
    const base = bases[i % bases.length];
    try {
      return await startAt(base, buildDir, extraArgs);
    } catch (e) {
      if (!/address already in use/i.test(e.message) || i + 1 === attempts) throw e;
      console.log(`a port of ${base}-${base + 299} is taken (${e.message.split("\n")[1]}); trying again`);
      await sleep(1000);
    }
  }
}

async function startAt(base, buildDir, extraArgs) {
  const cairnd = path.join(buildDir, "bin", "cairnd");
  if (!fs.existsSync(cairnd)) throw new Error(`${cairnd} is missing: build first (cmake --build ${buildDir})`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-openapi-"));
  const ids = [1, 2, 3];
  const client = (n) => `127.0.0.1:${base + n}`;
  const raft = (n) => `127.0.0.1:${base + 100 + n}`;
  const httpAddr = (n) => `127.0.0.1:${base + 200 + n}`;
  const initial = ids.map((n) => `${n}=${raft(n)}/${client(n)}`).join(",");
  const procs = new Map();
  for (const n of ids) {
    const log = fs.openSync(path.join(dir, `node${n}.log`), "a");
    const p = spawn(
      cairnd,
      ["--id", String(n), "--data-dir", path.join(dir, `node${n}`), "--raft-addr", raft(n),
       "--client-addr", client(n), "--http-addr", httpAddr(n), "--initial-cluster", initial, ...extraArgs],
      { stdio: ["ignore", log, log] },
    );
    fs.closeSync(log);
    procs.set(n, p);
    p.on("exit", () => procs.delete(n));
  }
  // The nodes die with this process, however it ends.
  const killAll = () => {
    for (const p of procs.values()) p.kill("SIGKILL");
  };
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(sig, () => process.exit(1));

  async function stop() {
    for (const p of procs.values()) p.kill("SIGTERM");
    const until = Date.now() + 8000;
    while (procs.size && Date.now() < until) await sleep(100);
    killAll();
    while (procs.size) await sleep(50);
    if (process.env.CAIRN_OPENAPI_KEEP !== "1") fs.rmSync(dir, { recursive: true, force: true });
  }

  const deadline = Date.now() + ready_timeout_ms;
  for (;;) {
    const codes = await Promise.all(ids.map((n) => httpStatus(`http://${httpAddr(n)}/ready`)));
    if (codes.every((c) => c === 200)) break;
    const gone = ids.find((n) => !procs.has(n));
    if (gone !== undefined || Date.now() > deadline) {
      const log = fs.readFileSync(path.join(dir, `node${gone ?? 1}.log`), "utf8").split("\n").slice(-8).join("\n");
      await stop();
      throw new Error(`the cluster did not become ready (/ready: ${codes.join(", ")}); node ${gone ?? 1}'s log ends with:\n${log}`);
    }
    await sleep(200);
  }

  // Node n (beyond the first 3) started with --join 1: it waits until the
  // leader adds it. Resolves with its addresses once it serves HTTP.
  async function startJoining(n) {
    const log = fs.openSync(path.join(dir, `node${n}.log`), "a");
    const p = spawn(
      cairnd,
      ["--id", String(n), "--data-dir", path.join(dir, `node${n}`), "--raft-addr", raft(n),
       "--client-addr", client(n), "--http-addr", httpAddr(n), "--join", "1", ...extraArgs],
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
    return { url: `http://${httpAddr(n)}`, address: `${raft(n)}/${client(n)}` };
  }

  return {
    urls: ids.map((n) => `http://${httpAddr(n)}`),
    dir,
    kill: (n) => procs.get(n)?.kill("SIGKILL"),
    startJoining,
    stop,
  };
}
