// The key browser: the key space as a tree by '/', one folder at a time,
// filtered by prefix or substring, paged with limit / after so that a folder
// of a million keys costs no more than one of ten.

import { api, watch } from "./api.js";
import { h, errorBox, formatBytes, setTitle, nextId } from "./dom.js";
import { keysHref, keyHref, newHref } from "./routes.js";

const page_sizes = [25, 50, 100, 250];
const page_size_default = 50;
// How many range requests one page may take when folders collapse many keys
// into one row, and how many keys a substring filter scans per page.
const tree_rounds_max = 8;
const contains_scan_keys_max = 20000;
// Continuing a range "after FOLDER + this" skips every key inside FOLDER
// whose remainder is valid UTF-8 (U+10FFFF encodes to the largest such bytes).
const skip_suffix = "\u{10FFFF}";

// Folder links from the root down to prefix.
export function breadcrumbs(prefix, { leaf } = {}) {
  const nav = h("nav", { class: "crumbs", "aria-label": "Folder path" });
  const ol = h("ol");
  ol.append(h("li", {}, h("a", { href: keysHref("") }, "root")));
  let acc = "";
  const parts = prefix.split("/");
  parts.pop(); // the part after the last '/' is not a folder
  for (const p of parts) {
    acc += p + "/";
    ol.append(h("li", {}, h("a", { href: keysHref(acc) }, p === "" ? "(empty)" : p)));
  }
  if (leaf !== undefined) ol.append(h("li", { "aria-current": "page" }, leaf));
  nav.append(ol);
  return nav;
}

// One page of the tree under prefix, starting after cursor.
// -> {entries: [{folder} | {kv}], next: cursor or null, revision}
async function treePage(prefix, cursor, size) {
  const entries = [];
  let after = cursor;
  let more = true;
  let revision = 0;
  let next = null;
  for (let round = 0; round < tree_rounds_max && more && entries.length < size; round++) {
    const res = await api.range(prefix, { limit: size, after: after || undefined, keysOnly: true });
    revision = res.revision;
    more = !!res.more;
    const kvs = res.kvs || [];
    let full = false;
    for (const kv of kvs) {
      const rest = kv.key.slice(prefix.length);
      const slash = rest.indexOf("/");
      const folder = slash >= 0 ? prefix + rest.slice(0, slash + 1) : null;
      const last = entries[entries.length - 1];
      if (folder && last && last.folder === folder) continue; // one row per folder
      if (entries.length >= size) {
        full = true; // kv starts the next page
        break;
      }
      entries.push(folder ? { folder } : { kv });
    }
    if (full) more = true;
    const last = entries[entries.length - 1];
    if (!last) {
      more = false; // an empty answer: nothing more
      break;
    }
    // Continue after the last row shown; after a folder, skip the rest of it.
    after = last.folder ? last.folder + skip_suffix : last.kv.key;
    if (full) break;
  }
  if (more) next = after;
  return { entries, next, revision };
}

// One page of keys starting with prefix + text (flat).
async function prefixPage(prefix, text, cursor, size) {
  const res = await api.range(prefix + text, { limit: size, after: cursor || undefined, keysOnly: true });
  const kvs = res.kvs || [];
  return {
    entries: kvs.map((kv) => ({ kv })),
    next: res.more && kvs.length ? kvs[kvs.length - 1].key : null,
    revision: res.revision,
  };
}

// One page of keys under prefix whose remainder contains text (any case).
// The node has no substring search, so this scans the range in big pages.
async function containsPage(prefix, text, cursor, size) {
  const needle = text.toLowerCase();
  const entries = [];
  let after = cursor;
  let scanned = 0;
  let revision = 0;
  for (;;) {
    const res = await api.range(prefix, { limit: 1000, after: after || undefined, keysOnly: true });
    revision = res.revision;
    const kvs = res.kvs || [];
    for (const kv of kvs) {
      scanned++;
      after = kv.key;
      if (kv.key.slice(prefix.length).toLowerCase().includes(needle)) {
        entries.push({ kv });
        if (entries.length >= size) return { entries, next: after, revision, scanned };
      }
    }
    if (!res.more || kvs.length === 0) return { entries, next: null, revision, scanned };
    if (scanned >= contains_scan_keys_max) return { entries, next: after, revision, scanned, partial: true };
  }
}

function highlight(text, needle) {
  if (!needle) return text;
  const i = text.toLowerCase().indexOf(needle.toLowerCase());
  if (i < 0) return text;
  return h("span", {}, [text.slice(0, i), h("mark", {}, text.slice(i, i + needle.length)), text.slice(i + needle.length)]);
}

export function render(main, { prefix, query }, ctx) {
  const filterText = query.get("q") || "";
  const match = query.get("match") === "contains" ? "contains" : "prefix";
  const stored = Number(sessionStorage.getItem("cairn.pageSize"));
  let size = page_sizes.includes(stored) ? stored : page_size_default;
  const cursors = [null]; // cursors[i]: where page i starts
  let pageIndex = 0;
  let nextCursor = null;
  let closed = false;
  let watcher = null;
  let reloadTimer = null;
  const changed = new Set(); // keys the watch reported since the last draw

  setTitle(prefix || "Keys");
  const filterId = nextId("filter");
  const matchId = nextId("match");
  const sizeId = nextId("size");
  const filter = h("input", {
    id: filterId,
    type: "search",
    value: filterText,
    placeholder: "Filter this folder…  ( / )",
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": filterId + "-hint",
  });
  const matchSel = h("select", { id: matchId }, [
    h("option", { value: "prefix", selected: match === "prefix" }, "starts with"),
    h("option", { value: "contains", selected: match === "contains" }, "contains"),
  ]);
  const sizeSel = h(
    "select",
    { id: sizeId },
    page_sizes.map((n) => h("option", { value: String(n), selected: n === size }, String(n))),
  );
  const listing = h("div", { class: "listing", "aria-live": "polite", "aria-busy": "true" });
  const status = h("p", { class: "pager-status muted", id: nextId("pager") });
  const prevBtn = h("button", { type: "button", class: "btn", disabled: true }, "← Previous");
  const nextBtn = h("button", { type: "button", class: "btn", disabled: true }, "Next →");

  const section = h("section", { class: "view keys-view" }, [
    h("div", { class: "page-head" }, [
      h("div", {}, [breadcrumbs(prefix), h("h1", {}, prefix ? prefix : "All keys")]),
      h("a", { class: "btn btn-primary", href: newHref(prefix), "aria-keyshortcuts": "n" }, "+ New key"),
    ]),
    h("form", { class: "filter-bar", role: "search", onsubmit: (e) => e.preventDefault() }, [
      h("div", { class: "field grow" }, [h("label", { for: filterId }, "Filter"), filter]),
      h("div", { class: "field" }, [h("label", { for: matchId }, "Match"), matchSel]),
      h("p", { class: "sr-only", id: filterId + "-hint" }, "Filters the keys in this folder. Press slash to focus."),
    ]),
    listing,
    h("nav", { class: "pager", "aria-label": "Pages" }, [
      prevBtn,
      status,
      nextBtn,
      h("div", { class: "field inline" }, [h("label", { for: sizeId }, "Per page"), sizeSel]),
    ]),
  ]);
  main.append(section);

  function setQuery() {
    const q = {};
    if (filter.value) q.q = filter.value;
    if (matchSel.value === "contains") q.match = "contains";
    const href = keysHref(prefix, q);
    // Replace, not push: typing in the filter should not fill the history.
    history.replaceState(null, "", href);
  }

  let loadSeq = 0;
  async function load() {
    const seq = ++loadSeq;
    listing.setAttribute("aria-busy", "true");
    const text = filter.value;
    let page;
    try {
      if (!text) page = await treePage(prefix, cursors[pageIndex], size);
      else if (matchSel.value === "contains") page = await containsPage(prefix, text, cursors[pageIndex], size);
      else page = await prefixPage(prefix, text, cursors[pageIndex], size);
    } catch (e) {
      if (seq !== loadSeq || closed) return;
      listing.replaceChildren(errorBox(e, "Listing keys"));
      listing.setAttribute("aria-busy", "false");
      return;
    }
    if (seq !== loadSeq || closed) return;
    nextCursor = page.next;
    draw(page, text);
    if (!watcher) startWatch(page.revision);
  }

  function draw(page, text) {
    listing.setAttribute("aria-busy", "false");
    if (page.entries.length === 0) {
      listing.replaceChildren(
        h("div", { class: "empty" }, [
          h("p", {}, text ? `No key in this folder ${matchSel.value === "contains" ? "contains" : "starts with"} “${text}”.` : "No keys here yet."),
          h("a", { class: "btn", href: newHref(prefix + (matchSel.value === "prefix" ? text : "")) }, "Create a key"),
        ]),
      );
    } else {
      const rows = page.entries.map((e) => {
        if (e.folder) {
          const name = e.folder.slice(prefix.length);
          return h("tr", { class: "row-folder" }, [
            h("td", { class: "name" }, [
              h("span", { class: "icon icon-folder", "aria-hidden": "true" }),
              h("a", { href: keysHref(e.folder), "data-key": e.folder }, name),
            ]),
            h("td", { class: "num muted", colspan: "3" }, "folder"),
          ]);
        }
        const kv = e.kv;
        const name = text ? kv.key.slice(prefix.length) : kv.key.slice(prefix.length) || "(this folder's own key)";
        return h("tr", { class: changed.has(kv.key) ? "row-key flash" : "row-key" }, [
          h("td", { class: "name" }, [
            h("span", { class: "icon icon-key", "aria-hidden": "true" }),
            h("a", { href: keyHref(kv.key), "data-key": kv.key }, highlight(name, text)),
          ]),
          h("td", { class: "num" }, kv.version !== undefined ? String(kv.version) : ""),
          h("td", { class: "num" }, kv.mod_revision !== undefined ? String(kv.mod_revision) : ""),
          h("td", { class: "num" }, formatBytes(kv.size)),
        ]);
      });
      changed.clear();
      listing.replaceChildren(
        h("table", { class: "keys-table" }, [
          h("caption", { class: "sr-only" }, `Keys under ${prefix || "the root"}`),
          h("thead", {}, h("tr", {}, [
            h("th", { scope: "col" }, "Name"),
            h("th", { scope: "col", class: "num" }, "Version"),
            h("th", { scope: "col", class: "num" }, "Revision"),
            h("th", { scope: "col", class: "num" }, "Size"),
          ])),
          h("tbody", {}, rows),
        ]),
      );
    }
    let s = `Page ${pageIndex + 1}`;
    if (page.entries.length) s += ` · ${page.entries.length} ${page.entries.length === 1 ? "entry" : "entries"}`;
    if (page.partial) s += ` · scanned ${page.scanned} keys, more to scan`;
    status.textContent = s;
    prevBtn.disabled = pageIndex === 0;
    nextBtn.disabled = !nextCursor;
  }

  function startWatch(revision) {
    watcher = watch(
      { prefix, rev: revision ? revision + 1 : undefined },
      (type, data) => {
        if (type === "put" || type === "delete") {
          if (data.kv) changed.add(data.kv.key);
        } else if (type !== "snapshot") {
          return;
        }
        // Several events of one burst redraw once.
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(load, 150);
      },
      ctx.live.set,
    );
  }

  function restart() {
    cursors.length = 1;
    pageIndex = 0;
    setQuery();
    load();
  }

  let typing = null;
  filter.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(restart, 200);
  });
  filter.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      clearTimeout(typing);
      restart();
    } else if (e.key === "ArrowDown") {
      const first = listing.querySelector("a");
      if (first) {
        e.preventDefault();
        first.focus();
      }
    }
  });
  // Arrow keys walk the rows.
  listing.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    const links = [...listing.querySelectorAll("td.name a")];
    const i = links.indexOf(document.activeElement);
    if (i < 0) return;
    e.preventDefault();
    const j = e.key === "ArrowDown" ? i + 1 : i - 1;
    if (j >= 0 && j < links.length) links[j].focus();
    else if (j < 0) filter.focus();
  });
  matchSel.addEventListener("change", restart);
  sizeSel.addEventListener("change", () => {
    size = Number(sizeSel.value);
    sessionStorage.setItem("cairn.pageSize", String(size));
    restart();
  });
  nextBtn.addEventListener("click", () => {
    if (!nextCursor) return;
    cursors[pageIndex + 1] = nextCursor;
    pageIndex++;
    load();
  });
  prevBtn.addEventListener("click", () => {
    if (pageIndex === 0) return;
    pageIndex--;
    load();
  });

  ctx.setActions({
    focusFilter: () => {
      filter.focus();
      filter.select();
    },
    newKey: () => {
      location.hash = newHref(prefix);
    },
  });
  load();
  return () => {
    closed = true;
    clearTimeout(reloadTimer);
    clearTimeout(typing);
    if (watcher) watcher.close();
  };
}
