// The console's shell: hash routing, the header, keyboard shortcuts and the
// live-updates indicator. Each view module exports render(main, params, ctx)
// and returns a cleanup function that closes its watches and timers.
//
//   #/keys/PREFIX[?q=TEXT&match=prefix|contains]   the key browser
//   #/key/KEY                                      one key: value, metadata, history
//   #/new/PREFIX                                   create a key
//   #/cluster                                      members, roles, indexes, lag
//   #/backups                                      snapshots, the log archive, verify

import { h, nextId } from "./dom.js";
import * as keysView from "./keys.js";
import * as keyView from "./key.js";
import * as clusterView from "./cluster.js";
import * as backupsView from "./backups.js";
import { backupsHref, clusterHref, newHref } from "./routes.js";

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/keys/";
  const qi = raw.indexOf("?");
  const path = qi >= 0 ? raw.slice(0, qi) : raw;
  const query = new URLSearchParams(qi >= 0 ? raw.slice(qi + 1) : "");
  const m = /^\/(keys|key|new|cluster|backups)(?:\/(.*))?$/.exec(path);
  if (!m) return { view: "notfound", path };
  let arg = "";
  try {
    arg = decodeURIComponent(m[2] || "");
  } catch {
    return { view: "notfound", path };
  }
  return { view: m[1], arg, query };
}

// The live indicator in the header tells whether the current view's watch
// stream is open.
const live = {
  set(state) {
    const el = document.getElementById("live");
    const text = { open: "Live", retrying: "Reconnecting…", closed: "Offline", none: "" }[state] ?? "";
    el.dataset.state = state;
    el.querySelector(".live-text").textContent = text;
    el.hidden = state === "none";
    el.title =
      state === "closed"
        ? "No live updates: the node refused the watch stream (it may be at --http-watch-streams-max). The page still works; reload to try again."
        : "Live updates from the node (Server-Sent Events)";
  },
};

let cleanup = null;
let viewActions = {};
let focusFilterOnRoute = false; // "/" pressed where there is no filter

function route() {
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  viewActions = {};
  live.set("none");
  const main = document.getElementById("main");
  main.replaceChildren();
  const r = parseHash();
  for (const a of document.querySelectorAll(".nav a")) {
    const current = (a.dataset.nav === "keys" && ["keys", "key", "new"].includes(r.view)) || a.dataset.nav === r.view;
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const ctx = {
    live,
    // A view names its keyboard actions (edit, save, cancel, ...) here.
    setActions: (actions) => {
      viewActions = actions || {};
    },
  };
  if (r.view === "keys") cleanup = keysView.render(main, { prefix: r.arg, query: r.query }, ctx);
  else if (r.view === "key") cleanup = keyView.render(main, { key: r.arg }, ctx);
  else if (r.view === "new") cleanup = keyView.renderNew(main, { prefix: r.arg, key: r.query.get("key") }, ctx);
  else if (r.view === "cluster") cleanup = clusterView.render(main, {}, ctx);
  else if (r.view === "backups") cleanup = backupsView.render(main, {}, ctx);
  else {
    main.append(
      h("section", { class: "view" }, [
        h("h1", {}, "Nothing here"),
        h("p", {}, ["No page at ", h("code", {}, "#" + r.path), ". "]),
        h("a", { href: "#/keys/" }, "Go to the key browser"),
      ]),
    );
  }
  if (focusFilterOnRoute && viewActions.focusFilter) viewActions.focusFilter();
  focusFilterOnRoute = false;
  // Move focus to the new page's heading for screen readers and keyboards,
  // unless the view already focused something.
  if (!main.contains(document.activeElement)) {
    const h1 = main.querySelector("h1");
    if (h1) {
      h1.setAttribute("tabindex", "-1");
      h1.focus({ preventScroll: true });
    }
  }
}

// Keyboard shortcuts. Single letters act only outside text fields; Ctrl/Cmd+S
// and Esc act everywhere.
const shortcuts = [
  ["/", "Focus the key filter"],
  ["↓ / ↑", "From the filter into the keys, and between them"],
  ["n", "New key"],
  ["e", "Edit the key shown"],
  ["Ctrl+S / ⌘S", "Save the edit"],
  ["Esc", "Cancel the edit, close a dialog"],
  ["h", "Jump to the key's history"],
  ["g k", "Go to the keys"],
  ["g c", "Go to the cluster"],
  ["g b", "Go to the backups"],
  ["?", "Show these shortcuts"],
];

function showShortcuts() {
  if (document.querySelector("dialog[open]")) return;
  const titleId = nextId("sc-title");
  const dlg = h("dialog", { class: "dialog", "aria-labelledby": titleId }, [
    h("h2", { id: titleId }, "Keyboard shortcuts"),
    h(
      "table",
      { class: "shortcuts" },
      h(
        "tbody",
        {},
        shortcuts.map(([k, what]) => h("tr", {}, [h("th", { scope: "row" }, h("kbd", {}, k)), h("td", {}, what)])),
      ),
    ),
    h("div", { class: "dialog-actions" }, [h("button", { type: "button", class: "btn btn-primary", onclick: () => dlg.close() }, "Close")]),
  ]);
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
}

let pendingG = 0;
function onKey(ev) {
  const inField = ev.target.closest && ev.target.closest("input, textarea, select, [contenteditable]");
  const mod = ev.ctrlKey || ev.metaKey;
  if (mod && !ev.altKey && ev.key.toLowerCase() === "s") {
    ev.preventDefault(); // never the browser's "save page" on the console
    if (viewActions.save) viewActions.save();
    return;
  }
  if (ev.key === "Escape") {
    if (document.querySelector("dialog[open]")) return; // the dialog handles it
    if (viewActions.cancel) {
      ev.preventDefault();
      viewActions.cancel();
    } else if (inField && ev.target.type === "search") {
      ev.target.blur();
    }
    return;
  }
  if (inField || mod || ev.altKey || document.querySelector("dialog[open]")) return;
  if (pendingG && Date.now() - pendingG < 1500) {
    pendingG = 0;
    if (ev.key === "k") location.hash = "#/keys/";
    else if (ev.key === "c") location.hash = clusterHref();
    else if (ev.key === "b") location.hash = backupsHref();
    return;
  }
  switch (ev.key) {
    case "/":
      if (viewActions.focusFilter) {
        ev.preventDefault();
        viewActions.focusFilter();
      } else {
        ev.preventDefault();
        focusFilterOnRoute = true;
        location.hash = "#/keys/";
      }
      break;
    case "e":
      if (viewActions.edit) {
        ev.preventDefault();
        viewActions.edit();
      }
      break;
    case "n":
      ev.preventDefault();
      if (viewActions.newKey) viewActions.newKey();
      else location.hash = newHref("");
      break;
    case "h":
      if (viewActions.history) {
        ev.preventDefault();
        viewActions.history();
      }
      break;
    case "g":
      pendingG = Date.now();
      break;
    case "?":
      ev.preventDefault();
      showShortcuts();
      break;
  }
}

// The skip link must not touch the hash: the hash is the page.
document.querySelector(".skip").addEventListener("click", (ev) => {
  ev.preventDefault();
  document.getElementById("main").focus();
});
window.addEventListener("hashchange", route);
document.addEventListener("keydown", onKey);
document.getElementById("shortcuts-btn").addEventListener("click", showShortcuts);
document.getElementById("node-name").textContent = location.host;
route();
