// The console's only way to the node: the /v1 JSON API of docs/http.md.
//
// Every call returns the parsed JSON body or throws an ApiError that carries
// the API's stable error code ({"error": {"code", "message"}}), the HTTP
// status, and a message fit to show an admin as it is.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0 when the node could not be reached at all
    this.code = code;
  }
}

// A key goes in the path percent-encoded whole, '/' included: http.md accepts
// both forms, and this one survives keys with "//", "?", "#" or "%" in them.
export function keyPath(key) {
  return encodeURIComponent(key);
}

async function call(method, path, { query, body } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== false) q.set(k, String(v));
    }
    const s = q.toString();
    if (s) url += "?" + s;
  }
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "Could not reach the node: " + e.message);
  }
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      if (res.ok) throw new ApiError(res.status, "bad_response", "The node answered with something that is not JSON.");
    }
  }
  if (!res.ok) {
    const err = data && data.error;
    if (err && err.code) throw new ApiError(res.status, err.code, err.message || err.code);
    throw new ApiError(res.status, "http_" + res.status, `HTTP ${res.status} ${res.statusText}`.trim());
  }
  return data;
}

export const api = {
  get: (key, opts = {}) => call("GET", "/v1/kv/" + keyPath(key), { query: { rev: opts.rev } }),
  range: (prefix, { limit, after, keysOnly } = {}) =>
    call("GET", "/v1/kv/" + keyPath(prefix), {
      query: { prefix: "true", limit, after, keys_only: keysOnly ? "true" : undefined },
    }),
  // cas: the mod_revision the caller read (0: only if absent); always given
  // by the console, which never writes blind.
  put: (key, value, encoding, cas) =>
    call("PUT", "/v1/kv/" + keyPath(key), { query: { cas }, body: { value, encoding } }),
  del: (key, cas) => call("DELETE", "/v1/kv/" + keyPath(key), { query: { cas } }),
  history: (key, { limit = 200, values = false } = {}) =>
    call("GET", "/v1/history/" + keyPath(key), { query: { limit, values: values ? "true" : undefined } }),
  diff: (key, from, to) => call("GET", "/v1/diff/" + keyPath(key), { query: { from, to } }),
  rollback: (key, revision) => call("POST", "/v1/rollback/" + keyPath(key), { body: { revision } }),
  cluster: () => call("GET", "/v1/cluster"),
  // The leader's view of the configuration: roles and catch-up progress
  // (http.md, "Members").
  members: () => call("GET", "/v1/members"),
  status: () => call("GET", "/v1/status"),
  // Disaster recovery, asked of the leader (http.md, "Backups"). A snapshot
  // or a verification may take a while: the node waits up to 120 s.
  backup: () => call("GET", "/v1/backup"),
  backupSnapshot: () => call("POST", "/v1/backup/snapshot"),
  backupVerify: () => call("POST", "/v1/backup/verify"),
};

// Values: the API sends UTF-8 text as is and anything else as base64.
export function decodeValue(kv) {
  if (!kv) return { text: "", binary: false };
  if (kv.encoding === "base64") return { text: kv.value || "", binary: true };
  return { text: kv.value || "", binary: false };
}

export function byteLength(text) {
  return new TextEncoder().encode(text).length;
}

// A watch over /v1/watch as Server-Sent Events. EventSource reconnects by
// itself and sends Last-Event-ID, so the node resumes after the last revision
// delivered: no gaps, no repeats (http.md). onState hears "open" / "retrying".
export function watch({ key, prefix, rev }, onEvent, onState = () => {}) {
  const q = new URLSearchParams();
  if (prefix !== undefined) q.set("prefix", prefix);
  else q.set("key", key);
  if (rev) q.set("rev", String(rev));
  const es = new EventSource("/v1/watch?" + q.toString());
  const handler = (type) => (ev) => {
    let data = null;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return; // not ours to interpret; the next event will come
    }
    onEvent(type, data);
  };
  for (const type of ["put", "delete", "snapshot", "progress"]) es.addEventListener(type, handler(type));
  es.onopen = () => onState("open");
  es.onerror = () => onState(es.readyState === EventSource.CLOSED ? "closed" : "retrying");
  return { close: () => es.close() };
}
