// The cluster page: every member with its role, the leader, the term, commit
// and applied indexes, health and lag, refreshed every two seconds while the
// page is visible (/v1/cluster).

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
    try {
      res = await api.cluster();
    } catch (e) {
      if (closed) return;
      body.replaceChildren(errorBox(e, "Reading the cluster"));
      summary.replaceChildren();
      schedule();
      return;
    }
    if (closed) return;
    draw(res);
    updated.textContent = "Updated " + new Date().toLocaleTimeString();
    schedule();
  }

  function schedule() {
    if (closed) return;
    timer = setTimeout(() => (document.hidden ? schedule() : load()), refresh_ms);
  }

  function draw(res) {
    const members = res.members || res.nodes || [];
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
      const http = addr(m, "http");
      return h("tr", { class: role === "leader" ? "member leader" : "member", "data-member": String(m.id) }, [
        h("th", { scope: "row" }, [
          String(m.id),
          m.name ? h("span", { class: "muted small" }, " " + m.name) : null,
          res.id !== undefined && String(res.id) === String(m.id) ? h("span", { class: "muted small this-node" }, " (this node)") : null,
        ]),
        h("td", { class: "role" }, h("span", { class: "badge role-" + role }, role)),
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
      ]);
    });
    body.replaceChildren(
      h("div", { class: "table-scroll card flush" }, [
        h("table", { class: "cluster-table" }, [
          h("caption", { class: "sr-only" }, "Cluster members"),
          h("thead", {}, h("tr", {}, [
            h("th", { scope: "col" }, "Node"),
            h("th", { scope: "col" }, "Role"),
            h("th", { scope: "col" }, "Addresses"),
            h("th", { scope: "col", class: "num" }, "Term"),
            h("th", { scope: "col", class: "num" }, "Commit"),
            h("th", { scope: "col", class: "num" }, "Applied"),
            h("th", { scope: "col", class: "num" }, "Lag"),
            h("th", { scope: "col" }, "Health"),
          ])),
          h("tbody", {}, rows),
        ]),
      ]),
      h("p", { class: "muted small" }, `Lag is the leader's commit index minus the member's applied index; above ${lag_warn_entries} entries a member shows as lagging.`),
    );
  }

  load();
  ctx.setActions({});
  return () => {
    closed = true;
    clearTimeout(timer);
  };
}
