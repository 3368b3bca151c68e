// src/openapi.json against the server (tests/openapi/run.sh BUILD_DIR):
//
//  1. the document is valid OpenAPI 3.0 (swagger-parser checks it against
//     the OpenAPI 3.0 schema and resolves every $ref);
//  2. it is complete: every route and method of src/http.c's route table is
//     documented, and nothing is documented that the table does not route;
//  3. a real 3-node cluster answers as documented: for every operation, the
//     requests below give each documented status, and each answer's content
//     type and body (SSE events included) validate against the documented
//     response (ajv, with OpenAPI's `nullable` turned into JSON Schema).
//     Each GET is sent as HEAD too; each path is sent a method it does not
//     list (405 with the documented methods in Allow). Every documented
//     status of every operation must be seen, or the test fails.
//
// Backups: the main cluster runs without --backup-url, so the backup actions
// answer 400 there (the status answers, with enabled false). A second
// cluster, with --backup-url file://TMP/backups, gives their 200s and 503s.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import SwaggerParser from "@apidevtools/swagger-parser";
import Ajv from "ajv";
import { startCluster, sleep } from "./cluster.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../..");
const buildDir = path.resolve(process.argv[2] || path.join(repo, "build"));
const docText = fs.readFileSync(path.join(repo, "src/openapi.json"), "utf8");
const doc = JSON.parse(docText);
const METHODS = ["get", "head", "put", "post", "delete"];
const failures = [];

// A kept-alive connection that the server closes (CivetWeb: idle for 5 s)
// just as a request goes out on it is reset. Node's fetch drops idle
// connections after 4 s, on a coarse timer, so the two can meet.
// Browsers send such a request again; so does this test, once. Anything
// else, and a second reset, still fails.
const fetchOnce = globalThis.fetch;
globalThis.fetch = async (url, init) => {
  try {
    return await fetchOnce(url, init);
  } catch (e) {
    if (e?.cause?.code !== "ECONNRESET") throw e;
    console.log(`note: ${init?.method ?? "GET"} ${url}: connection reset; sent again`);
    return await fetchOnce(url, init);
  }
};

function fail(msg) {
  failures.push(msg);
  console.log(`FAIL ${msg}`);
}

// 1. Valid OpenAPI 3.0 (validate() dereferences its argument: give it a copy).
await SwaggerParser.validate(structuredClone(doc));
console.log("ok   the document is valid OpenAPI 3.0");

// 2. Completeness against src/http.c's route table. Every line between its
// first and last line must be an entry, so that a table this parser does not
// understand fails the test instead of passing it.
function serverRoutes() {
  const src = fs.readFileSync(path.join(repo, "src/http.c"), "utf8");
  const start = src.indexOf("static const struct route routes[] = {");
  if (start < 0) throw new Error("src/http.c: no route table (static const struct route routes[])");
  const body = src.slice(start, src.indexOf("\n};", start)).split("\n").slice(1);
  const routes = [];
  for (const line of body) {
    if (/^\s*(\/\*.*\*\/)?\s*$/.test(line)) continue;
    const m = /^\s*\{"([^"]*)", HTTP_ROUTE_[A-Z_]+, ([A-Z_| ]+), \w+\},$/.exec(line);
    if (!m) throw new Error(`src/http.c: cannot read this route table line: ${line.trim()}`);
    const methods = m[2].split("|").map((s) => s.trim().replace(/^M_/, "").toLowerCase());
    routes.push({ path: m[1], prefix: m[1].length > 1 && m[1].endsWith("/"), methods });
  }
  if (routes.length < 10) throw new Error(`src/http.c: only ${routes.length} routes read`);
  return routes;
}

// The documented path a table entry stands for: itself, or for a prefix the
// one documented path made of the prefix and one template ("/v1/kv/{key}").
function docPathOf(route) {
  if (!route.prefix) return doc.paths[route.path] ? route.path : null;
  const found = Object.keys(doc.paths).filter((p) => p.startsWith(route.path) && /^\{[^}]+\}$/.test(p.slice(route.path.length)));
  return found.length === 1 ? found[0] : null;
}

const routes = serverRoutes();
const routed = new Map(); // documented path -> route
for (const r of routes) {
  const p = docPathOf(r);
  if (p === null) {
    fail(`route ${r.path}${r.prefix ? "*" : ""} (src/http.c) is not documented`);
    continue;
  }
  routed.set(p, r);
  for (const m of r.methods) if (!doc.paths[p][m]) fail(`${m.toUpperCase()} ${p} is routed but not documented`);
}
for (const [p, item] of Object.entries(doc.paths)) {
  const r = routed.get(p);
  for (const m of Object.keys(item).filter((k) => METHODS.includes(k) || ["options", "patch", "trace"].includes(k))) {
    if (!r || !r.methods.includes(m)) fail(`${m.toUpperCase()} ${p} is documented but src/http.c does not route it`);
  }
}
console.log(`ok   ${routes.length} routes of src/http.c checked against ${Object.keys(doc.paths).length} documented paths`);

// 3. Conformance. Schemas: OpenAPI 3.0's dialect turned into JSON Schema.
function toJsonSchema(node) {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== "object") return node;
  const out = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === "example" || k.startsWith("x-")) continue;
    if (k === "$ref") {
      out.$ref = v.replace("#/components/schemas/", "cairn#/$defs/");
      continue;
    }
    out[k] = k === "properties" ? Object.fromEntries(Object.entries(v).map(([n, s]) => [n, toJsonSchema(s)])) : toJsonSchema(v);
  }
  if (out.nullable === true) {
    delete out.nullable;
    if (out.type !== undefined) {
      out.type = [out.type, "null"];
      if (out.enum) out.enum = [...out.enum, null];
      return out;
    }
    const { description, ...rest } = out;
    return { ...(description ? { description } : {}), anyOf: [rest, { type: "null" }] };
  }
  delete out.nullable;
  return out;
}
const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false });
ajv.addFormat("int64", { type: "number", validate: (n) => Number.isInteger(n) });
ajv.addFormat("binary", true);
ajv.addSchema({ $id: "cairn", $defs: toJsonSchema(doc.components.schemas) });
const validators = new Map();
function validatorOf(schema) {
  const key = JSON.stringify(schema);
  if (!validators.has(key)) {
    validators.set(key, ajv.compile(toJsonSchema(schema)));
  }
  return validators.get(key);
}
function deref(x) {
  while (x && x.$ref) x = x.$ref.split("/").slice(1).reduce((o, k) => o[k], doc);
  return x;
}

// What a concrete path matches in the document (templates match any rest,
// "/" included, as the server's prefixes do).
function templateOf(p) {
  if (doc.paths[p]) return p;
  for (const t of Object.keys(doc.paths)) {
    const i = t.indexOf("{");
    if (i > 0 && p.startsWith(t.slice(0, i))) return t;
  }
  return null;
}

const seen = new Set(); // "METHOD template status"
let requests = 0;

// Send one request and hold the answer to the document. Returns the answer
// with .json (parsed) and .text.
async function check(node, method, target, { body, headers = {}, status, note = "" } = {}) {
  const url = new URL(target, node);
  const template = templateOf(url.pathname);
  const label = `${method} ${target.length > 80 ? target.slice(0, 77) + "..." : target}${note ? ` (${note})` : ""}`;
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(20000) };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(url, init);
  const text = await res.text();
  requests++;
  const answer = { status: res.status, headers: res.headers, text, json: undefined };
  try {
    answer.json = JSON.parse(text);
  } catch {}
  if (status !== undefined && res.status !== status) {
    fail(`${label}: status ${res.status}, want ${status}: ${text.slice(0, 200)}`);
    return answer;
  }
  const op = template && doc.paths[template][method.toLowerCase()];
  if (!op) {
    fail(`${label}: not documented`);
    return answer;
  }
  if (res.status === 404 && answer.json?.error?.message === "no such route" && !template.startsWith("/console/")) {
    fail(`${label}: a documented route answers 404 "no such route"`);
  }
  const documented = op.responses[String(res.status)];
  seen.add(`${method} ${template} ${documented ? res.status : "default"}`);
  const response = deref(documented ?? op.responses.default);
  if (!response) {
    fail(`${label}: status ${res.status} is not documented`);
    return answer;
  }
  const type = (res.headers.get("content-type") || "").split(";")[0].trim();
  if (method === "HEAD") {
    if (text !== "") fail(`${label}: HEAD answered a body`);
    return answer;
  }
  if (!response.content) {
    if (text !== "") fail(`${label}: status ${res.status} documents no body, got ${text.slice(0, 100)}`);
    return answer;
  }
  const media = response.content[type] || response.content["*/*"];
  if (!media) {
    fail(`${label}: content type ${type}, documented ${Object.keys(response.content).join(", ")}`);
    return answer;
  }
  if (type === "application/json") {
    const v = validatorOf(media.schema);
    if (answer.json === undefined || !v(answer.json)) {
      fail(`${label}: body does not match the documented schema: ${ajv.errorsText(v.errors)}: ${text.slice(0, 300)}`);
    }
  }
  return answer;
}

// Each GET, then the same as HEAD (documented as GET without a body).
async function get(node, target, opts = {}) {
  const a = await check(node, "GET", target, opts);
  const t = templateOf(new URL(target, node).pathname);
  if (t && doc.paths[t].head) await check(node, "HEAD", target, { ...opts, status: a.status });
  return a;
}

// A watch stream: reads events until want(events) holds, then closes it.
async function watchEvents(node, query, want, timeout_ms = 10000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeout_ms);
  const res = await fetch(new URL(`/v1/watch?${query}`, node), { signal: ac.signal });
  const op = doc.paths["/v1/watch"].get;
  const documented = op.responses[String(res.status)];
  seen.add(`GET /v1/watch ${documented ? res.status : "default"}`);
  requests++;
  const events = [];
  if (res.status !== 200) {
    clearTimeout(timer);
    return { status: res.status, json: JSON.parse(await res.text()), events };
  }
  const type = (res.headers.get("content-type") || "").split(";")[0];
  if (!documented.content[type]) fail(`GET /v1/watch?${query}: content type ${type}`);
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const msg = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const e = {};
        for (const line of msg.split("\n")) {
          const m = /^(id|event|data|retry): ?(.*)$/.exec(line);
          if (m) e[m[1]] = m[2];
          else if (!line.startsWith(":")) fail(`GET /v1/watch?${query}: not an SSE line: ${line}`);
        }
        if (e.event !== undefined) events.push(e);
      }
      if (want(events)) break;
    }
  } catch (e) {
    if (e.name !== "AbortError") throw e;
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  const schemas = documented["x-cairn-events"];
  for (const e of events) {
    const schema = schemas[e.event];
    if (!schema) {
      fail(`GET /v1/watch?${query}: undocumented event ${e.event}`);
      continue;
    }
    const v = validatorOf(schema);
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {}
    if (!v(data)) fail(`GET /v1/watch?${query}: ${e.event} data does not match: ${ajv.errorsText(v.errors)}: ${e.data}`);
    if (e.event !== "error" && !/^[0-9]+$/.test(e.id ?? "")) fail(`GET /v1/watch?${query}: ${e.event} without a numeric id`);
  }
  return { status: 200, events };
}

const cluster = await startCluster(buildDir, ["--http-watch-streams-max", "2", "--max-value-bytes", "1024", "--max-txn-ops", "4"]);
try {
  // Ask the leader: when the others are killed at the end, the gateway's
  // clients then still talk to a live node (it answers 503), rather than
  // to a dead leader (500 outcome_unknown: documented, but not the point).
  const leaderId = (await (await fetch(new URL("/v1/status", cluster.urls[0]))).json()).leader_id;
  const u = cluster.urls[leaderId - 1];
  const others = [1, 2, 3].filter((n) => n !== leaderId);
  const long = "k".repeat(5000); // over --max-key-bytes (4096)
  const served = await check(u, "GET", "/v1/openapi.json", { status: 200 });
  if (served.text !== docText) fail("GET /v1/openapi.json does not serve src/openapi.json as it is");
  await check(u, "HEAD", "/v1/openapi.json", { status: 200 });

  // Keys and values.
  const r0 = (await check(u, "PUT", "/v1/kv/oa/before", { body: { value: "0" }, status: 200 })).json.revision;
  const p1 = await check(u, "PUT", "/v1/kv/oa/a", { body: { value: "one\ntwo\n" }, status: 200 });
  const r1 = p1.json.revision;
  await check(u, "PUT", "/v1/kv/oa/a", { body: { value: "one\nthree\n", encoding: "utf8" }, status: 200, note: "prev_kv" });
  await check(u, "PUT", "/v1/kv/oa/bin", { body: { value: "/w==", encoding: "base64" }, status: 200 });
  await check(u, "PUT", "/v1/kv/oa%2Fenc", { body: "{\"value\": ", status: 400 });
  await check(u, "PUT", "/v1/kv/oa/a?cas=1", { body: { value: "x" }, status: 409 });
  await check(u, "PUT", "/v1/kv/oa/big", { body: { value: "v".repeat(2000) }, status: 413 });
  await get(u, "/v1/kv/oa/a", { status: 200 });
  await get(u, "/v1/kv/oa/bin?stale=true", { status: 200 });
  await get(cluster.urls[others[0] - 1], "/v1/kv/oa/?prefix=true&limit=1", { status: 200 });
  await get(u, "/v1/kv/oa/?prefix&keys_only=true&after=oa%2Fa", { status: 200 });
  await get(u, "/v1/kv/oa/a?limit=abc", { status: 400 });
  await get(u, "/v1/kv/oa/a?rev=999999999", { status: 400, note: "future_revision" });
  await get(u, "/v1/kv/oa/missing", { status: 404 });
  // Reads from a follower: read your writes (min_revision), bounded
  // staleness; a revision that never comes fails after the node's wait.
  const wrote = (await check(u, "PUT", "/v1/kv/oa/ryw", { body: { value: "mine" }, status: 200 })).json.revision;
  const ryw = await get(cluster.urls[others[0] - 1], `/v1/kv/oa/ryw?min_revision=${wrote}&max_staleness_ms=5000`, { status: 200 });
  if (ryw.json?.kv?.value !== "mine" || !(ryw.json?.revision >= wrote)) fail(`GET ?min_revision=${wrote} on a follower: ${ryw.text.slice(0, 200)}`);
  await get(cluster.urls[others[0] - 1], `/v1/kv?prefix=true&stale=true&max_staleness_ms=5000&min_revision=${wrote}`, { status: 200 });
  const never = await check(cluster.urls[others[0] - 1], "GET", `/v1/kv/oa/ryw?min_revision=${wrote + 1000000}`, { status: 503, note: "min_revision never applied" });
  if (never.json?.error?.code !== "unavailable" || !/not applied within/.test(never.json?.error?.message ?? "")) fail(`GET ?min_revision far ahead: ${never.text.slice(0, 200)}`);
  await get(u, "/v1/kv/oa/ryw?min_revision=x", { status: 400 });
  await get(u, `/v1/kv/${long}`, { status: 413 });
  await get(u, "/v1/kv?prefix=true", { status: 200 });
  await get(u, "/v1/kv", { status: 400 });
  await check(u, "DELETE", "/v1/kv/oa/gone", { status: 200 });
  await check(u, "DELETE", "/v1/kv/oa/a?cas=1&prefix=true", { status: 400 });
  await check(u, "DELETE", "/v1/kv/oa/a?cas=1", { status: 409 });
  await check(u, "DELETE", `/v1/kv/${long}`, { status: 413 });
  await check(u, "DELETE", "/v1/kv", { status: 400 });

  // Transactions.
  await check(u, "POST", "/v1/txn", {
    body: { compare: [{ key: "oa/a", target: "version", op: ">", number: 0 }], success: [{ op: "put", key: "oa/t", value: "1", prev_kv: true }, { op: "get", key: "oa/", prefix: true, limit: 2 }], failure: [{ op: "delete", key: "oa/t" }] },
    status: 200,
  });
  await check(u, "POST", "/v1/txn", { body: { frob: 1 }, status: 400 });
  const many = Array.from({ length: 5 }, () => ({ key: "oa/a", target: "version", op: ">", number: 0 }));
  await check(u, "POST", "/v1/txn", { body: { compare: many }, status: 413 });

  // History, diff, rollback (before the compaction below).
  const now = (await check(u, "GET", "/v1/kv/oa/a", { status: 200 })).json.kv.mod_revision;
  await get(u, "/v1/history/oa/a?values=true&limit=5", { status: 200 });
  await get(u, "/v1/history/oa/a?limit=x", { status: 400 });
  await get(u, `/v1/history/${long}`, { status: 413 });
  await get(u, `/v1/diff/oa/a?from=${r1}&to=${now}`, { status: 200 });
  await get(u, "/v1/diff/oa/a", { status: 400 });
  await get(u, `/v1/diff/${long}?from=1`, { status: 413 });
  await check(u, "POST", "/v1/rollback/oa/a", { body: {}, status: 400 });
  await check(u, "POST", "/v1/rollback/oa/a", { body: { revision: r0 }, status: 404 });
  await check(u, "POST", "/v1/rollback/oa/a", { body: { revision: r1, mod_revision: 1 }, status: 409 });
  await check(u, "POST", `/v1/rollback/${long}`, { body: { revision: r1 }, status: 413 });
  const rb = await check(u, "POST", "/v1/rollback/oa/a", { body: { revision: r1, mod_revision: now }, status: 200 });

  // Compaction, and what it makes old revisions answer.
  await check(u, "POST", "/v1/compact", { body: { revision: "x" }, status: 400 });
  await check(u, "POST", "/v1/compact", { body: { revision: rb.json.revision }, status: 200 });
  await get(u, `/v1/kv/oa/a?rev=${r1}`, { status: 410 });
  await get(u, `/v1/kv?prefix=true&rev=${r1}`, { status: 410 });
  await get(u, `/v1/diff/oa/a?from=${r1}`, { status: 410 });
  await check(u, "POST", "/v1/rollback/oa/a", { body: { revision: r1 }, status: 410 });

  // Retention.
  await check(u, "PUT", "/v1/retention/oa%2F", { body: { versions: 5, age_ms: 3600000 }, status: 200 });
  await check(u, "PUT", "/v1/retention/oa/", { body: {}, status: 400 });
  await check(u, "PUT", `/v1/retention/${long}`, { body: { versions: 5 }, status: 413 });
  await get(u, "/v1/retention", { status: 200 });
  await check(u, "DELETE", "/v1/retention/oa/", { status: 200 });
  await check(u, "DELETE", "/v1/retention/none/", { status: 404 });
  await check(u, "DELETE", `/v1/retention/${long}`, { status: 413 });
  await check(u, "PUT", "/v1/retention/keep/", { body: { versions: 3 }, status: 200 });

  // Status, health, metrics, the console.
  await get(u, "/v1/status", { status: 200 });
  await get(cluster.urls[others[1] - 1], "/v1/cluster", { status: 200 });
  await get(u, "/health", { status: 200 });
  await get(u, "/ready", { status: 200 });
  await get(u, "/metrics", { status: 200 });
  for (const p of ["/", "/index.html", "/console/app.js"]) {
    const a = await get(u, p, { status: 200 });
    await get(u, p, { status: 304, headers: { "If-None-Match": a.headers.get("etag") } });
  }
  await get(u, "/console/no-such-file.js", { status: 404 });

  // Membership: node 4 joins as a standby, is promoted, leads for a moment,
  // is demoted and removed (it stops by itself).
  const joining = await cluster.startJoining(4);
  const alone = await get(joining.url, "/v1/members", { status: 200 });
  if (alone.json?.joining !== true || alone.json?.members?.length !== 0) fail(`GET /v1/members of a joining node: ${alone.text.slice(0, 300)}`);
  await get(cluster.urls[others[0] - 1], "/v1/members", { status: 200 });
  await check(u, "POST", "/v1/members", { body: { id: "x", address: joining.address }, status: 400 });
  await check(u, "POST", "/v1/members", { body: { id: 9, address: "127.0.0.1:1/127.0.0.1:2" }, status: 503, note: "unreachable" });
  await check(u, "POST", "/v1/members", { body: { id: 4, address: joining.address }, status: 200 });
  await check(u, "POST", "/v1/members", { body: { id: 4, address: joining.address }, status: 400, note: "a member already" });
  const caughtBy = Date.now() + 20000;
  for (;;) {
    const list = await get(u, "/v1/members", { status: 200 });
    if (list.json?.members?.find((m) => m.id === 4)?.caught_up === true) break;
    if (Date.now() > caughtBy) {
      fail(`node 4 did not catch up: ${list.text.slice(0, 300)}`);
      break;
    }
    await sleep(100);
  }
  await check(u, "POST", "/v1/members/4", { body: { role: "leader" }, status: 400 });
  await check(u, "POST", "/v1/members/9", { body: { role: "voter" }, status: 404 });
  await check(u, "POST", "/v1/members/4", { body: { role: "voter" }, status: 200 });
  await check(u, "POST", "/v1/leader/transfer?to=x", { status: 400 });
  await check(u, "POST", "/v1/leader/transfer?to=9", { status: 404 });
  await check(u, "POST", "/v1/leader/transfer?to=4", { status: 200 });
  await check(joining.url, "POST", `/v1/leader/transfer?to=${leaderId}`, { status: 200 });
  await check(u, "POST", "/v1/members/4", { body: { role: "standby" }, status: 200 });
  await check(u, "DELETE", "/v1/members/9", { status: 404 });
  await check(u, "DELETE", "/v1/members/x", { status: 400 });
  await check(u, "DELETE", "/v1/members/4", { status: 200 });

  // Backups: this cluster has no --backup-url. Its status says so; the
  // actions are refused.
  const off = await get(u, "/v1/backup", { status: 200 });
  if (off.json?.enabled !== false) fail(`GET /v1/backup without --backup-url: enabled ${off.json?.enabled}`);
  await check(u, "POST", "/v1/backup/snapshot", { status: 400 });
  await check(u, "POST", "/v1/backup/verify", { status: 400 });
  // A snapshot downloads without a store: the artifact's magic, its length as announced.
  const dl = await check(u, "GET", "/v1/backup/download", { status: 200 });
  if (!dl.text.startsWith("CAIRNDR") || !/^attachment; filename="cairn-[0-9a-f]{16}-\d+\.cairnsnap"$/.test(dl.headers.get("content-disposition") ?? "")) {
    fail(`GET /v1/backup/download: ${dl.headers.get("content-disposition")} ${JSON.stringify(dl.text.slice(0, 8))}`);
  }

  // Watches: events of every kind but snapshot and error, validated.
  const w = watchEvents(u, `prefix=oa%2Fw%2F&prev_kv=true&progress_ms=100&rev=1`, (ev) => ev.some((e) => e.event === "delete") && ev.some((e) => e.event === "progress"));
  await sleep(300);
  await check(u, "PUT", "/v1/kv/oa/w/1", { body: { value: "a" }, status: 200 });
  await check(u, "DELETE", "/v1/kv/oa/w/1", { status: 200 });
  const wr = await w;
  if (!wr.events.some((e) => e.event === "put")) fail("GET /v1/watch: no put event");
  if ((await watchEvents(u, "", () => true)).status !== 400) fail("GET /v1/watch: no key: want 400");
  if ((await watchEvents(u, `key=${long}`, () => true)).status !== 413) fail("GET /v1/watch: a long key: want 413");
  // Two streams take --http-watch-streams-max; a third is refused. The
  // streams above free their slots once the node notices they are gone.
  const freeBy = Date.now() + 5000;
  while (!/^cairn_http_watch_streams 0$/m.test(await (await fetch(new URL("/metrics", u))).text()) && Date.now() < freeBy) await sleep(50);
  const hold = [1, 2].map(() => watchEvents(u, "key=oa/x&progress_ms=100", (ev) => ev.length >= 15));
  await sleep(500);
  const third = await watchEvents(u, "key=oa/x", () => true);
  if (third.status !== 503 || third.json?.error?.code !== "watch_streams_exhausted") fail(`GET /v1/watch beyond the cap: ${third.status} ${JSON.stringify(third.json)}`);
  await Promise.all(hold);

  // Methods a path does not list: 405, with the documented ones in Allow.
  for (const [p, item] of Object.entries(doc.paths)) {
    const concrete = p.replace(/\{[^}]+\}/, "x");
    const res = await fetch(new URL(concrete, u), { method: "PATCH" });
    const allow = ["get", "put", "post", "delete"].filter((m) => item[m]).map((m) => m.toUpperCase()).join(", ");
    const body = await res.text();
    requests++;
    if (res.status !== 405 || res.headers.get("allow") !== allow) fail(`PATCH ${concrete}: ${res.status} Allow "${res.headers.get("allow")}", want 405 Allow "${allow}": ${body}`);
  }

  // Everything under the whole key space: the last writes before the end.
  await get(u, "/v1/kv?prefix=true&limit=1000", { status: 200 });
  await check(u, "DELETE", "/v1/kv?prefix=true", { status: 200 });

  // A node cut off from a majority: not ready, and whatever needs the
  // leader answers 503 (after the gateway's 5 s wait: all at once).
  for (const n of others) cluster.kill(n);
  const until = Date.now() + 20000;
  while ((await fetch(new URL("/ready", u))).status !== 503 && Date.now() < until) await sleep(200);
  await Promise.all([
    get(u, "/ready", { status: 503 }),
    get(u, "/v1/kv/oa/a", { status: 503 }),
    get(u, "/v1/kv?prefix=true", { status: 503 }),
    check(u, "PUT", "/v1/kv/oa/a", { body: { value: "x" }, status: 503 }),
    check(u, "DELETE", "/v1/kv/oa/a", { status: 503 }),
    check(u, "DELETE", "/v1/kv?prefix=true", { status: 503 }),
    check(u, "POST", "/v1/txn", { body: { success: [{ op: "get", key: "oa/a" }] }, status: 503 }),
    get(u, "/v1/history/oa/a", { status: 503 }),
    get(u, "/v1/diff/oa/a?from=0", { status: 503 }),
    check(u, "POST", "/v1/rollback/oa/a", { body: { revision: r1 }, status: 503 }),
    check(u, "POST", "/v1/compact", { body: { revision: 1 }, status: 503 }),
    check(u, "PUT", "/v1/retention/oa/", { body: { versions: 1 }, status: 503 }),
    check(u, "DELETE", "/v1/retention/keep/", { status: 503 }),
    check(u, "POST", "/v1/members", { body: { id: 5, address: "127.0.0.1:1/127.0.0.1:2" }, status: 503 }),
    check(u, "POST", `/v1/members/${others[0]}`, { body: { role: "standby" }, status: 503 }),
    check(u, "DELETE", `/v1/members/${others[0]}`, { status: 503 }),
    check(u, "POST", "/v1/leader/transfer", { status: 503 }),
  ]);
  // Any node lists its own view, leader or not.
  await get(u, "/v1/members", { status: 200 });
  // Stale reads need no leader, unless they bound the staleness: without
  // a leader this node's has no bound.
  await get(u, "/v1/kv/oa/bin?stale=true", { status: 404 });
  for (const target of ["/v1/kv/oa/bin?stale=true&max_staleness_ms=1000", "/v1/kv?prefix=true&stale=true&max_staleness_ms=1000"]) {
    const tooStale = await get(u, target, { status: 503, note: "stale" });
    if (tooStale.json?.error?.code !== "stale") fail(`GET ${target} without a leader: ${tooStale.text.slice(0, 200)}`);
  }
} finally {
  await cluster.stop();
}

// Backups, with a location: a cluster of its own.
{
  const store = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-openapi-backups-"));
  fs.mkdirSync(path.join(store, "backups")); // a file:// location must exist
  const bc = await startCluster(buildDir, ["--backup-url", `file://${store}/backups`]);
  try {
    const leaderId = (await (await fetch(new URL("/v1/status", bc.urls[0]))).json()).leader_id;
    const b = bc.urls[leaderId - 1];
    const others = [1, 2, 3].filter((n) => n !== leaderId);
    const rev = (await check(b, "PUT", "/v1/kv/oa/backed-up", { body: { value: "1" }, status: 200 })).json.revision;
    const on = await get(b, "/v1/backup", { status: 200 });
    if (on.json?.enabled !== true || !on.json?.url?.startsWith("file://")) fail(`GET /v1/backup with --backup-url: ${on.text.slice(0, 300)}`);
    const saved = await check(b, "POST", "/v1/backup/snapshot", { status: 200 });
    if (!(saved.json?.snapshot?.revision >= rev)) fail(`POST /v1/backup/snapshot: snapshot of revision ${saved.json?.snapshot?.revision}, want at least ${rev}`);
    const verified = await check(b, "POST", "/v1/backup/verify", { status: 200 });
    if (verified.json?.ok !== true) fail(`POST /v1/backup/verify: ${verified.text.slice(0, 300)}`);
    // Asked of a follower, answered by the leader.
    const st = await get(bc.urls[others[0] - 1], "/v1/backup", { status: 200 });
    if (!st.json?.snapshots?.some((s) => s.revision === saved.json?.snapshot?.revision)) fail(`GET /v1/backup: the snapshot just taken is not listed: ${st.text.slice(0, 300)}`);
    for (const n of others) bc.kill(n);
    const until = Date.now() + 20000;
    while ((await fetch(new URL("/ready", b))).status !== 503 && Date.now() < until) await sleep(200);
    await Promise.all([
      get(b, "/v1/backup", { status: 503 }),
      check(b, "POST", "/v1/backup/snapshot", { status: 503 }),
      check(b, "POST", "/v1/backup/verify", { status: 503 }),
      check(b, "GET", "/v1/backup/download", { status: 503 }),
    ]);
  } finally {
    await bc.stop();
    fs.rmSync(store, { recursive: true, force: true });
  }
}

// Every documented status of every operation was seen.
for (const [p, item] of Object.entries(doc.paths)) {
  for (const m of METHODS) {
    if (!item[m]) continue;
    for (const s of Object.keys(item[m].responses)) {
      if (s !== "default" && !seen.has(`${m.toUpperCase()} ${p} ${s}`)) fail(`${m.toUpperCase()} ${p} ${s} is documented but no request of this test got it`);
    }
  }
}
if (failures.length) {
  console.log(`\n${failures.length} disagreement(s) between src/openapi.json and the server`);
  process.exit(1);
}
console.log(`ok   ${requests} requests answered as documented; every documented status seen`);
