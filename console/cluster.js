// The cluster page: every member with its state (leader or follower), its
// role in the configuration (voter, standby, spare), the term, commit and
// applied indexes, health, lag and catch-up progress, refreshed every two
// seconds while the page is visible (/v1/cluster for each member's own
// status, /v1/members for the leader's view of roles and progress).

import { api } from "./api.js";
import { h, errorBox, setTitle } from "./dom.js";

const refresh_ms = 2000;
// A member this many entries behind the leader's commit shows as lagging.
const lag_warn_entries = 100;

// /v1/cluster names each member's addresses raft_address, client_address and
// http_address; the other spellings are accepted so that a rename does not
// blank the page.
function addr(m, kind) {
  return (m.addresses && m.addresses[kind]) || m[kind + "_address"] || m[kind + "_addr"] || m[kind] || "";
}

function roleOf(m, leaderId) {
  if (m.state === "leader" || m.role === "leader" || (leaderId && String(m.id) === String(leaderId))) return "leader";
  return m.state || m.role || "unknown";
}

function health(m) {
  if (m.reachable === false) return { label: "unreachable", cls: "bad" };
  if (typeof m.lag === "number" && m.lag > lag_warn_entries) return { label: `lagging (${m.lag})`, cls: "warn" };
  return { label: "healthy", cls: "ok" };
}

// The leader's view of a member's replication: "caught up", or how far it
// has come ("catching up 120 / 4000"); "—" when no leader answered.
function catchUp(p, lastIndex) {
  if (!p || p.match_index === null || p.match_index === undefined) return { label: "—", cls: "" };
  if (p.caught_up) return { label: "caught up", cls: "ok" };
  return { label: `catching up ${p.match_index} / ${lastIndex}`, cls: "warn" };
}

function num(v) {
  return v === undefined || v === null ? "—" : String(v);
}

export function render(main, _params, ctx) {
  setTitle("Cluster");
  let timer = null;
  let closed = false;
  const summary = h("div", { class: "summary", "aria-live": "polite" });
  const body = h("div", { class: "cluster-body" }, h("p", { class: "muted" }, "Loading…"));
  const updated = h("p", { class: "muted small", id: "cluster-updated" });
  main.append(
    h("section", { class: "view cluster-view" }, [
      h("div", { class: "page-head" }, [h("h1", {}, "Cluster"), updated]),
      summary,
      body,
    ]),
  );

  async function load() {
    timer = null;
    let res;
    let members = null;
    try {
      [res, members] = await Promise.all([api.cluster(), api.members().catch(() => null)]);
    } catch (e) {
      if (closed) return;
      body.replaceChildren(errorBox(e, "Reading the cluster"));
      summary.replaceChildren();
      schedule();
      return;
    }
    if (closed) return;
    draw(res, members);
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
    schedule();
  }

  function schedule() {
    if (closed) return;
    timer = setTimeout(() => (document.hidden ? schedule() : load()), refresh_ms);
  }

  function draw(res, list) {
    const progress = new Map(((list && list.members) || []).map((p) => [String(p.id), p]));
    const lastIndex = list ? list.last_index : undefined;
    // /v1/members is the newer view of the configuration while a change
    // commits: a member it lists that /v1/cluster does not yet is shown too.
    const members = [...(res.members || res.nodes || [])];
    for (const p of progress.values()) {
      if (!members.some((m) => String(m.id) === String(p.id))) members.push({ ...p, reachable: undefined });
    }
    const leaderId = res.leader ?? res.leader_id ?? (members.find((m) => m.state === "leader" || m.role === "leader") || {}).id;
    const leader = members.find((m) => roleOf(m, leaderId) === "leader");
    const term = res.term ?? (leader && leader.term) ?? Math.max(0, ...members.map((m) => m.term || 0));
    const healthy = members.filter((m) => health(m).cls === "ok").length;
    const card = (label, value, cls) =>
      h("div", { class: "stat " + (cls || "") }, [h("div", { class: "stat-label" }, label), h("div", { class: "stat-value" }, value)]);
    summary.replaceChildren(
      card("Leader", leader ? `node ${leader.id}` : "none", leader ? "" : "bad"),
      card("Term", num(term)),
      card("Members", String(members.length)),
      card("Healthy", `${healthy} / ${members.length}`, healthy === members.length ? "ok" : "warn"),
      card("Revision", num(res.revision)),
    );
    const rows = members.map((m) => {
      const role = roleOf(m, leaderId);
      const hl = health(m);
      const p = progress.get(String(m.id));
      const voting = (p && p.role) || (["voter", "standby", "spare"].includes(m.role) ? m.role : "—");
      const cu = catchUp(p, lastIndex);
      const http = addr(m, "http");
      return h("tr", { class: role === "leader" ? "member leader" : "member", "data-member": String(m.id) }, [
        h("th", { scope: "row" }, [
          String(m.id),
          m.name ? h("span", { class: "muted small" }, " " + m.name) : null,
          res.id !== undefined && String(res.id) === String(m.id) ? h("span", { class: "muted small this-node" }, " (this node)") : null,
        ]),
        h("td", { class: "role" }, h("span", { class: "badge role-" + role }, role)),
        h("td", { class: "voting", "data-label": "Member" }, h("span", { class: "badge member-" + voting }, voting)),
        h("td", { class: "addrs" }, [
          h("div", {}, ["client ", h("code", {}, addr(m, "client") || "—")]),
          h("div", {}, ["raft ", h("code", {}, addr(m, "raft") || "—")]),
          h("div", {}, ["http ", http ? h("a", { href: `http://${http}/#/cluster` }, h("code", {}, http)) : h("code", {}, "—")]),
        ]),
        h("td", { class: "num", "data-label": "Term" }, num(m.term)),
        h("td", { class: "num", "data-label": "Commit" }, num(m.commit ?? m.commit_index)),
        h("td", { class: "num", "data-label": "Applied" }, num(m.applied ?? m.applied_index)),
        h("td", { class: "num", "data-label": "Lag" }, num(m.lag)),
        h("td", { class: "health-cell" }, h("span", { class: "health health-" + hl.cls }, hl.label)),
        h("td", { class: "catch-up", "data-label": "Catch-up" }, h("span", { class: "health health-" + cu.cls }, cu.label)),
      ]);
    });
    body.replaceChildren(
      h("div", { class: "table-scroll card flush" }, [
        h("table", { class: "cluster-table" }, [
          h("caption", { class: "sr-only" }, "Cluster members"),
          h("thead", {}, h("tr", {}, [
            h("th", { scope: "col" }, "Node"),
            h("th", { scope: "col" }, "State"),
            h("th", { scope: "col" }, "Member"),
            h("th", { scope: "col" }, "Addresses"),
            h("th", { scope: "col", class: "num" }, "Term"),
            h("th", { scope: "col", class: "num" }, "Commit"),
            h("th", { scope: "col", class: "num" }, "Applied"),
            h("th", { scope: "col", class: "num" }, "Lag"),
            h("th", { scope: "col" }, "Health"),
            h("th", { scope: "col" }, "Catch-up"),
          ])),
          h("tbody", {}, rows),
        ]),
      ]),
      h("p", { class: "muted small" }, `Lag is the leader's commit index minus the member's applied index; above ${lag_warn_entries} entries a member shows as lagging. Member: voters elect the leader and commit writes; standbys receive the log (read replicas) without a vote. Catch-up is the leader's view: the log index the member has acknowledged out of the leader's last.`),
    );
  }

  load();
  ctx.setActions({});
  return () => {
    closed = true;
    clearTimeout(timer);
  };
}
