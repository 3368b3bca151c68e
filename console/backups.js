// The Backups page: whether this cluster backs up and where to, the snapshots
// stored (newest first), the window a restore can reach, the log archive's
// progress, the last snapshot and verification, and two actions: take a
// snapshot now and verify now. Everything comes from GET /v1/backup (asked
// of the leader by whichever node serves the console), refreshed every five
// seconds while the page is visible.

import { api } from "./api.js";
import { h, errorBox, formatTime, relativeTime, setTitle, toast } from "./dom.js";
import { archiveHealth, backlogText, formatDuration, formatSize, isNotConfigured, newestFirst, outcome, shortHash } from "./backup_logic.js";

const refresh_ms = 5000;

function num(v) {
  return v === undefined || v === null ? "—" : String(v);
}

// A time and how long ago, as one element.
function when(ms) {
  if (!ms) return "—";
  return h("span", { class: "when" }, [formatTime(ms), h("span", { class: "muted small" }, " " + relativeTime(ms))]);
}

// A definition list from [label, value] pairs (value: text or nodes).
function dl(pairs) {
  return h(
    "dl",
    { class: "meta" },
    pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}

function badge(level, label) {
  return h("span", { class: `badge badge-${level}` }, label);
}

export function render(main, _params, ctx) {
  setTitle("Backups");
  let timer = null;
  let closed = false;
  let busy = false; // a snapshot or verification is running from this page
  let highlight = null; // the revision of the snapshot this page just took
  let last = null; // the last status drawn

  const updated = h("p", { class: "muted small", id: "backups-updated" });
  const snapBtn = h("button", { type: "button", class: "btn btn-primary", onclick: () => act("save") }, "Take snapshot now");
  const verifyBtn = h("button", { type: "button", class: "btn", onclick: () => act("verify") }, "Verify now");
  // A snapshot saved by the browser, like `cairnctl snapshot save FILE`: no store needed.
  const downloadLink = h(
    "a",
    { class: "btn", href: "/v1/backup/download", download: true, title: "The whole store as a file; restore it with cairnctl snapshot restore --from FILE" },
    "Download snapshot",
  );
  const actionResult = h("div", { class: "backup-action", "aria-live": "polite" });
  const summary = h("div", { class: "summary", "aria-live": "polite" });
  const body = h("div", { class: "backups-body" }, h("p", { class: "muted" }, "Loading…"));
  main.append(
    h("section", { class: "view backups-view" }, [
      h("div", { class: "page-head" }, [h("h1", {}, "Backups"), updated]),
      h("div", { class: "actions backup-actions" }, [snapBtn, verifyBtn, downloadLink]),
      actionResult,
      summary,
      body,
    ]),
  );

  function setButtons(enabled) {
    snapBtn.disabled = !enabled || busy;
    verifyBtn.disabled = !enabled || busy;
  }
  setButtons(false);

  async function load() {
    clearTimeout(timer);
    timer = null;
    let res;
    try {
      res = await api.backup();
    } catch (e) {
      if (closed) return;
      last = null;
      summary.replaceChildren();
      if (isNotConfigured(e)) {
        body.replaceChildren(notConfigured(e));
      } else {
        body.replaceChildren(errorBox(e, "Reading the backup status"));
      }
      setButtons(false);
      schedule();
      return;
    }
    if (closed) return;
    last = res;
    draw(res);
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
    schedule();
  }

  function schedule() {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => (document.hidden ? schedule() : load()), refresh_ms);
  }

  // e: the error that said so (a node that answers the status with 400), or
  // null (one that answers with "enabled": false).
  function notConfigured(e) {
    return h("div", { class: "card backups-disabled" }, [
      h("h2", {}, "Backups are not enabled"),
      h("p", {}, [
        "This cluster keeps no snapshots or log archive outside its own nodes. Start every node with ",
        h("code", {}, "--backup-url"),
        " (for example ",
        h("code", {}, "file:///var/backups/cairn"),
        ") to enable them. A snapshot can still be downloaded with the button above.",
      ]),
      e ? h("p", { class: "muted small" }, ["The node said: ", h("span", { class: "error-message" }, e.message), " ", h("code", { class: "error-code" }, e.code)]) : null,
    ]);
  }

  function draw(st) {
    const enabled = st.enabled !== false;
    setButtons(enabled);
    if (!enabled) {
      summary.replaceChildren();
      body.replaceChildren(notConfigured(null));
      return;
    }
    const snaps = newestFirst(st.snapshots);
    const health = archiveHealth(st.archive);
    const snapOutcome = outcome(st.last_snapshot);
    const verifyOutcome = outcome(st.last_verify);
    const card = (label, value, cls, attrs = {}) =>
      h("div", { class: "stat " + (cls || ""), ...attrs }, [h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value)]);
    const w = st.window;
    summary.replaceChildren(
      card("Backups", "enabled", "ok"),
      card("Snapshots", String(snaps.length)),
      card("Restorable", w ? `${w.earliest_revision}…${w.latest_revision}` : "nothing yet", w ? "" : "warn", { id: "backup-window-stat" }),
      card("Archive", health.label, health.level, { id: "backup-archive-stat" }),
      card("Last verification", verifyOutcome.label, verifyOutcome.level === "bad" ? "bad" : verifyOutcome.level === "ok" ? "ok" : "", {
        id: "backup-verify-stat",
      }),
    );

    const a = st.archive || {};
    const archiveCard = h("div", { class: "card backup-archive" }, [
      h("h2", {}, ["Log archive ", h("span", { class: `badge badge-${health.level}`, id: "archive-badge", title: health.reasons.join(" ") || "Up to date" }, health.label)]),
      dl([
        ["Archived revision", num(a.archived_revision)],
        ["Archived index", num(a.archived_index)],
        ["Archived at", when(a.archived_time_ms)],
        ["Recovery point lag", formatDuration(a.lag_ms)],
        ["Backlog", backlogText(a.backlog_bytes, a.backlog_max_bytes)],
        st.segments !== undefined ? ["Log segments", num(st.segments)] : null,
      ].filter(Boolean)),
      health.reasons.length ? h("ul", { class: "backup-reasons" }, health.reasons.map((r) => h("li", {}, r))) : null,
    ]);

    const windowCard = h("div", { class: "card backup-window" }, [
      h("h2", {}, "Restorable window"),
      w
        ? dl([
            ["Earliest", [`revision ${w.earliest_revision}`, h("br"), when(w.earliest_time_ms)]],
            ["Latest", [`revision ${w.latest_revision}`, h("br"), when(w.latest_time_ms)]],
            w.gaps ? ["Breaks in the log", h("span", { class: "backup-gaps" }, String(w.gaps))] : null,
          ].filter(Boolean))
        : h("p", { class: "muted" }, "Nothing can be restored yet: no snapshot is stored."),
    ]);

    const ls = st.last_snapshot;
    const lv = st.last_verify;
    const lastCard = h("div", { class: "card backup-last" }, [
      h("h2", {}, "Last results"),
      h("h3", {}, ["Snapshot ", badge(snapOutcome.level, snapOutcome.label)]),
      ls
        ? dl([
            ["Time", when(ls.time_ms)],
            ["Revision", num(ls.revision)],
            ls.error ? ["Error", h("span", { class: "error-message" }, ls.error)] : null,
          ].filter(Boolean))
        : h("p", { class: "muted" }, "No snapshot taken since this node took charge."),
      h("h3", {}, ["Verification ", h("span", { id: "verify-badge", class: `badge badge-${verifyOutcome.level}` }, verifyOutcome.label)]),
      lv
        ? dl([
            ["Time", when(lv.time_ms)],
            ["Revision", num(lv.revision)],
            ["From snapshot", num(lv.snapshot_revision)],
            ["Log entries", num(lv.entries)],
            lv.error ? ["Error", h("span", { class: "error-message" }, lv.error)] : null,
          ].filter(Boolean))
        : h("p", { class: "muted" }, "Not verified yet."),
    ]);

    const locationCard = h("div", { class: "card backup-location" }, [
      h("h2", {}, "Location"),
      dl([
        ["URL", h("code", { id: "backup-url" }, st.url || "—")],
        ["Cluster id", h("code", {}, st.cluster_id || "—")],
        ["Failures", num(st.failures)],
      ]),
    ]);

    const rows = snaps.map((s) =>
      h(
        "tr",
        {
          class: "snapshot-row" + (highlight !== null && s.revision === highlight ? " flash" : ""),
          "data-revision": String(s.revision),
        },
        [
          h("th", { scope: "row", class: "num" }, String(s.revision)),
          h("td", { class: "time" }, when(s.time_ms)),
          h("td", { class: "num", "data-label": "Keys" }, num(s.keys)),
          h("td", { class: "num", "data-label": "Stored", title: `${formatSize(s.bytes_raw)} before compression` }, formatSize(s.bytes_stored)),
          h("td", { class: "hash", "data-label": "SHA-256" }, h("code", { title: s.sha256 || "" }, shortHash(s.sha256))),
          h("td", { class: "hash", "data-label": "State hash" }, h("code", {}, s.state_hash || "—")),
        ],
      ),
    );
    highlight = null; // flashed once
    const table = snaps.length
      ? h("div", { class: "table-scroll card flush" }, [
          h("table", { class: "snapshots-table" }, [
            h("caption", { class: "sr-only" }, "Snapshots, newest first"),
            h("thead", {}, h("tr", {}, [
              h("th", { scope: "col", class: "num" }, "Revision"),
              h("th", { scope: "col" }, "Time"),
              h("th", { scope: "col", class: "num" }, "Keys"),
              h("th", { scope: "col", class: "num" }, "Size stored"),
              h("th", { scope: "col" }, "SHA-256"),
              h("th", { scope: "col" }, "State hash"),
            ])),
            h("tbody", {}, rows),
          ]),
        ])
      : h("div", { class: "card empty" }, h("p", { class: "muted" }, "No snapshot stored yet. Take one now, or wait for the schedule."));

    body.replaceChildren(
      h("div", { class: "backup-grid" }, [windowCard, archiveCard, lastCard, locationCard]),
      h("h2", { class: "snapshots-head" }, "Snapshots"),
      table,
    );
  }

  // "save" or "verify": run it, show what came of it, refresh.
  async function act(verb) {
    if (busy) return;
    busy = true;
    setButtons(true);
    const what = verb === "save" ? "Taking a snapshot" : "Verifying";
    actionResult.replaceChildren(h("p", { class: "muted", role: "status" }, what + "…"));
    try {
      if (verb === "save") {
        const res = await api.backupSnapshot();
        if (closed) return;
        const s = res.snapshot || {};
        highlight = s.revision ?? null;
        actionResult.replaceChildren(
          h("p", { class: "backup-ok", role: "status" }, [
            badge("ok", "stored"),
            ` Snapshot of revision ${num(s.revision)}: ${num(s.keys)} keys, ${formatSize(s.bytes_stored)}.`,
          ]),
        );
        toast(`Snapshot of revision ${num(s.revision)} stored`);
      } else {
        const v = await api.backupVerify();
        if (closed) return;
        const o = outcome(v);
        actionResult.replaceChildren(
          h("p", { class: o.level === "ok" ? "backup-ok" : "backup-failed", role: o.level === "ok" ? "status" : "alert" }, [
            h("span", { class: `badge badge-${o.level}`, id: "verify-result" }, o.label),
            o.level === "ok"
              ? ` Restored revision ${num(v.revision)} from the snapshot of revision ${num(v.snapshot_revision)} and ${num(v.entries)} archived entries.`
              : ` Verification failed: ${v.error || "no reason given"}`,
          ]),
        );
        if (o.level === "ok") toast("Backups verified");
        else toast("Verification failed", "error");
      }
    } catch (e) {
      if (closed) return;
      actionResult.replaceChildren(errorBox(e, what));
    } finally {
      busy = false;
      if (!closed) {
        setButtons(last !== null && last.enabled !== false);
        await load();
      }
    }
  }

  load();
  ctx.setActions({});
  return () => {
    closed = true;
    clearTimeout(timer);
  };
}
