// The Backups page's logic that needs no browser: sizes, durations, the
// archive's health and the order of snapshots, from the JSON of GET /v1/backup
// (docs/http.md, "Backups"). tests/console/logic.test.mjs runs it under node.

// "Behind" is the node's verdict (its "behind" flag: the recovery point lags
// more than cairnd's --backup-lag-alert-ms, or the archive cannot keep up),
// or a backlog of unarchived log at backlog_bad_ratio of its limit, which
// the node is about to give up on. Short of that, a recovery point lag (how
// much newer the last committed write is than the last archived one) past
// lag_warn_ms, or a backlog past backlog_warn_ratio, shows as "lagging": the
// archive ships about every second, so a few seconds is already unusual.
export const lag_warn_ms = 5 * 1000;
export const backlog_warn_ratio = 0.5;
export const backlog_bad_ratio = 0.9;

const units = ["B", "KiB", "MiB", "GiB", "TiB"];

// 1536 -> "1.5 KiB"; whole bytes below 1 KiB.
export function formatSize(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "—";
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

// 350 -> "350 ms", 4200 -> "4.2 s", 180000 -> "3 min", 7200000 -> "2.0 h".
export function formatDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60 * 1000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3600 * 1000) return `${Math.round(ms / 60000)} min`;
  if (ms < 86400 * 1000) return `${(ms / 3600000).toFixed(1)} h`;
  return `${(ms / 86400000).toFixed(1)} d`;
}

// "4.0 KiB of 256.0 MiB (0%)"; without a limit, just the size.
export function backlogText(bytes, max) {
  if (typeof max !== "number" || max <= 0) return formatSize(bytes);
  const pct = Math.min(100, Math.floor((100 * bytes) / max));
  return `${formatSize(bytes)} of ${formatSize(max)} (${pct}%)`;
}

// The archive's health as a badge: { level: "ok" | "warn" | "bad", label,
// reasons: [text] }. "bad" is labelled "behind": a disaster now would lose
// more than it should, or soon will.
export function archiveHealth(archive) {
  if (!archive) return { level: "bad", label: "unknown", reasons: ["The node reported no archive."] };
  const reasons = [];
  let level = "ok";
  const raise = (to, why) => {
    if (to === "bad" || level === "ok") level = to;
    reasons.push(why);
  };
  if (archive.behind === true) raise("bad", "The node reports the archive behind.");
  const lag = archive.lag_ms;
  if (typeof lag === "number" && lag >= lag_warn_ms) raise("warn", `Recovery point lag ${formatDuration(lag)}.`);
  const max = archive.backlog_max_bytes;
  if (typeof max === "number" && max > 0 && typeof archive.backlog_bytes === "number") {
    const ratio = archive.backlog_bytes / max;
    if (ratio >= backlog_bad_ratio) raise("bad", `Backlog at ${Math.floor(ratio * 100)}% of its limit.`);
    else if (ratio >= backlog_warn_ratio) raise("warn", `Backlog at ${Math.floor(ratio * 100)}% of its limit.`);
  }
  const label = { ok: "current", warn: "lagging", bad: "behind" }[level];
  return { level, label, reasons };
}

// Snapshots as the node lists them (oldest first), newest first; ties by
// time, then name, so that the order is stable.
export function newestFirst(snapshots) {
  return [...(snapshots || [])].sort(
    (a, b) => (b.revision ?? 0) - (a.revision ?? 0) || (b.time_ms ?? 0) - (a.time_ms ?? 0) || String(b.name).localeCompare(String(a.name)),
  );
}

// The first digits of a hash, enough to tell snapshots apart at a glance.
export function shortHash(hex, digits = 12) {
  if (typeof hex !== "string" || hex === "") return "—";
  return hex.length > digits ? hex.slice(0, digits) + "…" : hex;
}

// The outcome of the last snapshot or verification: { level, label }.
export function outcome(result) {
  if (!result) return { level: "none", label: "never" };
  return result.ok ? { level: "ok", label: "ok" } : { level: "bad", label: "failed" };
}

// Whether an error from GET /v1/backup means "this cluster has no backup
// location" (400 bad_request: cairnd runs without --backup-url) rather than
// a failure worth an error box.
export function isNotConfigured(err) {
  return !!err && err.status === 400 && err.code === "bad_request";
}
