// One key: its value (pretty-printed when JSON), its metadata, editing and
// deletion guarded by compare-and-swap, and its history with diffs and
// rollback. Also the "new key" page, which is the same editor with cas=0.
//
// Every write names the mod_revision the admin was looking at. When the node
// answers compare_failed (409), someone else wrote the key meanwhile: the
// editor fetches their version, shows it as a diff against the admin's text
// and lets the admin choose; nothing is ever overwritten unseen.

import { api, watch, decodeValue, byteLength } from "./api.js";
import { h, errorBox, formatBytes, formatTime, relativeTime, toast, confirmDialog, setTitle, nextId } from "./dom.js";
import { lineDiff, toHunks, renderDiff } from "./diff.js";
import { guessFormat, prettyJson, lint } from "./lint.js";
import { keysHref, keyHref, newHref } from "./routes.js";
import { breadcrumbs } from "./keys.js";

const history_limit = 200;

function parentPrefix(key) {
  const i = key.lastIndexOf("/");
  return i >= 0 ? key.slice(0, i + 1) : "";
}

function leafName(key) {
  const i = key.lastIndexOf("/");
  return i >= 0 ? key.slice(i + 1) : key;
}

// Syntax colours for pretty JSON: split the text into tokens, as spans.
function highlightJson(text) {
  const frag = document.createDocumentFragment();
  const re = /("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    if (m[1]) {
      frag.append(h("span", { class: m[2] ? "j-key" : "j-str" }, m[1]));
      if (m[2]) frag.append(m[2]);
    } else if (m[3]) frag.append(h("span", { class: "j-lit" }, m[3]));
    else frag.append(h("span", { class: "j-num" }, m[4]));
    last = re.lastIndex;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

function isDeletion(kv) {
  return kv.deleted === true || kv.event === "delete" || kv.version === 0;
}

// The editor shared by "edit" and "new". opts:
//   key (string) or keyInput (for new keys), text, binary, base (mod_revision
//   the text came from, 0 for a new key), onDone(result), onCancel().
function makeEditor(opts) {
  let base = opts.base;
  let busy = false;
  const startText = opts.text;
  const edId = nextId("editor");
  const fmtId = nextId("format");
  const initialFormat = opts.binary ? "text" : guessFormat(startText);
  const textarea = h("textarea", {
    id: edId,
    class: "editor",
    spellcheck: "false",
    autocapitalize: "off",
    autocomplete: "off",
    rows: "16",
    "aria-describedby": edId + "-lint " + edId + "-base",
  });
  textarea.value = startText;
  const formatSel = h("select", { id: fmtId }, [
    h("option", { value: "json", selected: initialFormat === "json" }, "JSON"),
    h("option", { value: "yaml", selected: initialFormat === "yaml" }, "YAML (lint)"),
    h("option", { value: "text", selected: initialFormat === "text" }, "Plain text"),
  ]);
  const prettyBtn = h("button", { type: "button", class: "btn btn-small" }, "Format JSON");
  const lintBox = h("div", { id: edId + "-lint", class: "lint", "aria-live": "polite" });
  const baseNote = h("p", { id: edId + "-base", class: "muted small" });
  const notice = h("div", { class: "notice", hidden: true, role: "status" });
  const errorSlot = h("div");
  const conflictSlot = h("div");
  const saveBtn = h("button", { type: "button", class: "btn btn-primary", "aria-keyshortcuts": "Control+S Meta+S" }, opts.keyInput ? "Create" : "Save");
  const cancelBtn = h("button", { type: "button", class: "btn", "aria-keyshortcuts": "Escape" }, "Cancel");
  const encoding = opts.binary ? "base64" : "utf8";

  function describeBase() {
    baseNote.textContent =
      base === 0
        ? "Saving creates the key only if it does not exist yet (compare-and-swap)."
        : `Saving replaces revision ${base} only if nobody changed the key since (compare-and-swap).`;
  }
  describeBase();

  let lastLint = null;
  function runLint() {
    const fmt = formatSel.value;
    prettyBtn.hidden = fmt !== "json";
    const problems = opts.binary ? [] : lint(textarea.value, fmt);
    // The box is a live region: redraw only when what it says changes, so a
    // screen reader is not told "well-formed" at every keystroke.
    const said = fmt + JSON.stringify(problems.slice(0, 8));
    if (said === lastLint) return;
    lastLint = said;
    lintBox.replaceChildren();
    lintBox.className = "lint";
    if (fmt === "text" || opts.binary) return;
    if (problems.length === 0) {
      lintBox.classList.add("lint-ok");
      lintBox.append(fmt === "json" ? "✓ Well-formed JSON" : "✓ No YAML lint warnings (a lint, not a full parser)");
      return;
    }
    lintBox.classList.add("lint-warn");
    lintBox.append(
      h("p", {}, fmt === "json" ? "⚠ Not well-formed JSON:" : "⚠ YAML lint warnings (a lint, not a full parser):"),
      h(
        "ul",
        {},
        problems.slice(0, 8).map((p) => h("li", {}, (p.line ? `line ${p.line}${p.col ? ", col " + p.col : ""}: ` : "") + p.message)),
      ),
    );
  }
  let lintTimer = null;
  // Until the admin picks a format, it follows the text (a new key starts
  // empty, so "text", and becomes JSON at the first "{").
  let formatChosen = false;
  formatSel.addEventListener("change", () => (formatChosen = true));
  textarea.addEventListener("input", () => {
    if (!formatChosen && !opts.binary) {
      const g = guessFormat(textarea.value);
      if (g !== "text" || textarea.value.trim() === "") formatSel.value = g;
    }
    clearTimeout(lintTimer);
    lintTimer = setTimeout(runLint, 150);
  });
  formatSel.addEventListener("change", runLint);
  prettyBtn.addEventListener("click", () => {
    const p = prettyJson(textarea.value);
    if (p === null) {
      toast("Cannot format: the text is not well-formed JSON.", "error");
      return;
    }
    textarea.value = p;
    runLint();
  });

  let conflict = null; // while the conflict panel is up: {keep}

  function currentKey() {
    return opts.keyInput ? opts.keyInput.value : opts.key;
  }

  async function save(cas = base) {
    if (busy || conflict) return; // a conflict is answered with its buttons
    const key = currentKey();
    errorSlot.replaceChildren();
    if (!key) {
      errorSlot.append(errorBox({ code: "bad_request", message: "The key needs a name." }, "Saving"));
      opts.keyInput && opts.keyInput.focus();
      return;
    }
    busy = true;
    saveBtn.disabled = true;
    saveBtn.textContent = "Saving…";
    try {
      const res = await api.put(key, textarea.value, encoding, cas);
      opts.onDone({ key, revision: res.revision });
    } catch (e) {
      if (e.code === "compare_failed") await showConflict(key);
      else errorSlot.append(errorBox(e, "Saving"));
    } finally {
      busy = false;
      saveBtn.disabled = false;
      saveBtn.textContent = opts.keyInput ? "Create" : "Save";
    }
  }

  // Someone else wrote the key: show theirs against ours, let the admin choose.
  async function showConflict(key) {
    let theirs = null;
    try {
      theirs = (await api.get(key)).kv;
    } catch (e) {
      if (e.code !== "not_found") {
        errorSlot.append(errorBox(e, "Reading the current value"));
        return;
      }
    }
    const theirText = theirs ? decodeValue(theirs).text : "";
    const theirRev = theirs ? theirs.mod_revision : 0;
    const mine = textarea.value;
    const hunks = toHunks(lineDiff(theirText, mine));
    const titleId = nextId("conflict");
    const overwrite = h("button", { type: "button", class: "btn btn-danger" }, "Overwrite with mine");
    const take = h("button", { type: "button", class: "btn" }, "Take theirs");
    const keep = h("button", { type: "button", class: "btn btn-primary" }, "Keep editing");
    const who = theirs
      ? `Someone else changed this key at revision ${theirRev} (version ${theirs.version}, ${formatTime(theirs.time_ms)}) while you were editing.`
      : base === 0
        ? "The key was created by someone else while you were editing."
        : "Someone else deleted this key while you were editing.";
    const panel = h("section", { class: "conflict", role: "alertdialog", "aria-labelledby": titleId }, [
      h("h2", { id: titleId }, "Conflict: your save was not applied"),
      h("p", {}, who),
      h("p", { class: "muted small" }, "The diff goes from their current value to yours."),
      renderDiff(hunks, theirs ? `theirs (revision ${theirRev})` : "theirs (deleted)", "yours"),
      h("div", { class: "actions" }, [keep, take, overwrite]),
      h(
        "p",
        { class: "muted small" },
        theirs
          ? `Overwrite writes your text only if the key is still at revision ${theirRev}. Keep editing makes revision ${theirRev} the one your next save replaces.`
          : "Overwrite recreates the key with your text, only if it is still absent.",
      ),
    ]);
    conflictSlot.replaceChildren(panel);
    textarea.disabled = true;
    const close = () => {
      conflictSlot.replaceChildren();
      textarea.disabled = false;
      conflict = null;
    };
    conflict = { keep: () => keep.click() };
    keep.addEventListener("click", () => {
      base = theirRev;
      describeBase();
      close();
      textarea.focus();
    });
    take.addEventListener("click", () => {
      close();
      opts.onDone({ key, revision: theirRev, tookTheirs: true });
    });
    overwrite.addEventListener("click", async () => {
      close();
      base = theirRev;
      describeBase();
      await save(theirRev);
    });
    keep.focus();
  }

  // Called when the watch reports a change while the admin edits.
  function changedElsewhere(kv, deleted) {
    notice.hidden = false;
    notice.replaceChildren(
      deleted
        ? `This key was deleted elsewhere at revision ${kv ? kv.mod_revision : "?"} while you edit. Saving will show you the conflict first.`
        : `This key was changed elsewhere at revision ${kv.mod_revision} while you edit. Saving will show you their change first.`,
    );
  }

  saveBtn.addEventListener("click", () => save());
  cancelBtn.addEventListener("click", () => cancel());
  async function cancel() {
    if (conflict) {
      conflict.keep();
      return;
    }
    if (textarea.value !== startText) {
      const ok = await confirmDialog({ title: "Discard your changes?", body: "Your edit has not been saved.", confirm: "Discard", danger: true });
      if (!ok) return;
    }
    opts.onCancel();
  }

  const el = h("div", { class: "editor-wrap" }, [
    notice,
    opts.binary
      ? h("p", { class: "notice" }, "This value is not valid UTF-8: you are editing it base64-encoded, and it is saved as base64.")
      : null,
    h("div", { class: "editor-bar" }, [
      h("label", { for: edId }, opts.keyInput ? "Value" : "Edit value"),
      h("span", { class: "grow" }),
      h("label", { for: fmtId, class: "small" }, "Check as"),
      formatSel,
      prettyBtn,
    ]),
    textarea,
    lintBox,
    baseNote,
    errorSlot,
    conflictSlot,
    h("div", { class: "actions" }, [saveBtn, cancelBtn, h("span", { class: "muted small hint" }, "Ctrl+S saves · Esc cancels")]),
  ]);
  runLint();
  return {
    el,
    focus: () => textarea.focus(),
    save: () => save(),
    cancel,
    changedElsewhere,
    dirty: () => textarea.value !== startText,
  };
}

function metaList(kv, revision) {
  const rows = [
    ["Revision", kv.mod_revision, "mod_revision: the store revision that last wrote the key"],
    ["Created at", kv.create_revision, "create_revision"],
    ["Version", kv.version, "how many times the key was written since it was created"],
    ["Size", formatBytes(kv.size ?? byteLength(kv.value || "")), null],
    ["Modified", kv.time_ms ? `${formatTime(kv.time_ms)} (${relativeTime(kv.time_ms)})` : "—", null],
    ["Encoding", kv.encoding === "base64" ? "binary (base64)" : "UTF-8", null],
    ["Store revision", revision, "the revision this page was read at"],
  ];
  return h(
    "dl",
    { class: "meta" },
    rows.flatMap(([k, v, title]) => [h("dt", { title: title || undefined }, k), h("dd", { "data-meta": k.toLowerCase().replace(/ /g, "-") }, String(v ?? "—"))]),
  );
}

export function render(main, { key }, ctx) {
  let closed = false;
  let kv = null; // what the page shows (null: absent)
  let readRevision = 0;
  let editor = null;
  let watcher = null;
  let pretty = true;
  let historyTimer = null;

  setTitle(key);
  const valueCard = h("div", { class: "card value-card" });
  const metaCard = h("aside", { class: "card meta-card", "aria-label": "Metadata" });
  const actions = h("div", { class: "head-actions" });
  const historyCard = h("section", { class: "card history-card", id: "history", "aria-labelledby": "history-title" });
  const section = h("section", { class: "view key-view" }, [
    h("div", { class: "page-head" }, [
      h("div", { class: "grow min0" }, [breadcrumbs(parentPrefix(key), { leaf: leafName(key) }), h("h1", { class: "key-title" }, h("code", {}, key))]),
      actions,
    ]),
    h("div", { class: "key-grid" }, [valueCard, metaCard]),
    historyCard,
  ]);
  main.append(section);

  function drawActions() {
    actions.replaceChildren();
    if (editor) return;
    if (kv) {
      actions.append(
        h("button", { type: "button", class: "btn btn-primary", "aria-keyshortcuts": "e", onclick: startEdit }, "Edit"),
        h("button", { type: "button", class: "btn btn-danger-outline", onclick: del }, "Delete"),
      );
    } else {
      actions.append(h("button", { type: "button", class: "btn btn-primary", onclick: startEdit }, "Create"));
    }
  }

  function drawValue(flash) {
    valueCard.replaceChildren();
    if (!kv) {
      valueCard.append(
        h("div", { class: "empty" }, [
          h("p", {}, "This key does not exist now."),
          h("p", { class: "muted small" }, "Its past versions, if any are retained, are listed under History."),
        ]),
      );
      metaCard.replaceChildren(h("p", { class: "muted" }, "No metadata: the key is absent."));
      return;
    }
    const { text, binary } = decodeValue(kv);
    const json = binary ? null : prettyJson(text);
    const fmt = binary ? "binary" : json !== null && guessFormat(text) === "json" ? "json" : guessFormat(text);
    const bar = h("div", { class: "value-bar" }, [
      h("h2", { class: "h-small" }, "Value"),
      h("span", { class: "badge" }, fmt === "json" ? "JSON" : fmt === "yaml" ? "YAML" : fmt === "binary" ? "base64" : "text"),
      h("span", { class: "grow" }),
    ]);
    if (json !== null && fmt === "json") {
      const toggle = h(
        "button",
        { type: "button", class: "btn btn-small", "aria-pressed": pretty ? "true" : "false" },
        pretty ? "Show raw" : "Pretty-print",
      );
      toggle.addEventListener("click", () => {
        pretty = !pretty;
        drawValue();
      });
      bar.append(toggle);
    }
    const copy = h("button", { type: "button", class: "btn btn-small" }, "Copy");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(text);
        toast("Value copied");
      } catch {
        toast("The browser refused the clipboard", "error");
      }
    });
    bar.append(copy);
    valueCard.append(bar);
    if (binary) {
      valueCard.append(
        h("p", { class: "notice" }, `This value is not valid UTF-8, so it is shown base64-encoded (${formatBytes(kv.size)} of bytes).`),
      );
    }
    const pre = h("pre", { class: "value current-value" + (flash ? " flash" : ""), tabindex: "0", "aria-label": "Value of " + key });
    if (json !== null && fmt === "json" && pretty) pre.append(highlightJson(json));
    else pre.textContent = text === "" ? "" : text;
    if (text === "") pre.append(h("span", { class: "muted" }, "(empty value)"));
    valueCard.append(pre);
    metaCard.replaceChildren(h("h2", { class: "h-small" }, "Metadata"), metaList(kv, readRevision));
  }

  function startEdit() {
    if (editor) return;
    const v = kv ? decodeValue(kv) : { text: "", binary: false };
    // The editor holds the stored text exactly; "Format JSON" pretty-prints
    // it on request, so a save never changes whitespace the admin did not see.
    const text = v.text;
    editor = makeEditor({
      key,
      text,
      binary: v.binary,
      base: kv ? kv.mod_revision : 0,
      onDone: async ({ revision, tookTheirs }) => {
        editor = null;
        if (!tookTheirs) toast(`Saved: revision ${revision}`);
        await reload();
      },
      onCancel: () => {
        editor = null;
        drawActions();
        drawValue();
      },
    });
    valueCard.replaceChildren(editor.el);
    drawActions();
    editor.focus();
  }

  async function del() {
    if (!kv) return;
    const ok = await confirmDialog({
      title: "Delete this key?",
      body: h("p", {}, ["Delete ", h("code", {}, key), ` (revision ${kv.mod_revision})? Its history stays readable until retention discards it.`]),
      confirm: "Delete",
      danger: true,
    });
    if (!ok) return;
    await doDelete(kv.mod_revision, kv);
  }

  async function doDelete(cas, seen) {
    try {
      await api.del(key, cas);
      toast(`Deleted ${key}`);
      location.hash = keysHref(parentPrefix(key));
    } catch (e) {
      if (e.code !== "compare_failed") {
        valueCard.prepend(errorBox(e, "Deleting"));
        return;
      }
      let now = null;
      try {
        now = (await api.get(key)).kv;
      } catch (e2) {
        if (e2.code !== "not_found") {
          valueCard.prepend(errorBox(e2, "Reading the current value"));
          return;
        }
      }
      if (!now) {
        toast("Someone else already deleted this key");
        await reload();
        return;
      }
      const ok = await confirmDialog({
        title: "The key changed since you looked",
        body: h("div", {}, [
          h("p", {}, `Someone else wrote revision ${now.mod_revision}. Delete it anyway?`),
          renderDiff(toHunks(lineDiff(decodeValue(seen).text, decodeValue(now).text)), `what you saw (revision ${seen.mod_revision})`, `now (revision ${now.mod_revision})`),
        ]),
        confirm: "Delete anyway",
        danger: true,
      });
      if (ok) await doDelete(now.mod_revision, now);
      else await reload();
    }
  }

  async function reload(flash) {
    try {
      const res = await api.get(key);
      kv = res.kv;
      readRevision = res.revision;
    } catch (e) {
      if (e.code === "not_found") {
        kv = null;
        readRevision = e.revision || readRevision;
      } else {
        valueCard.replaceChildren(errorBox(e, "Reading the key"));
        return;
      }
    }
    if (closed) return;
    if (!editor) {
      drawValue(flash);
      drawActions();
    }
    loadHistory();
    if (!watcher) startWatch();
  }

  function startWatch() {
    watcher = watch(
      { key, rev: readRevision ? readRevision + 1 : undefined },
      (type, data) => {
        if (type === "put" || type === "delete") {
          const deleted = type === "delete";
          const evKv = data.kv;
          if (!deleted && kv && evKv && evKv.mod_revision <= kv.mod_revision) return; // already shown
          if (editor) {
            editor.changedElsewhere(evKv, deleted);
            scheduleHistory();
            return;
          }
          if (deleted) {
            kv = null;
          } else {
            kv = evKv;
          }
          readRevision = Math.max(readRevision, data.revision || 0);
          drawValue(true);
          drawActions();
          scheduleHistory();
        } else if (type === "snapshot") {
          reload(true);
        }
      },
      ctx.live.set,
    );
  }

  function scheduleHistory() {
    clearTimeout(historyTimer);
    historyTimer = setTimeout(loadHistory, 200);
  }

  // History: every retained version, a diff between any two, rollback.
  let versions = [];
  let historyMore = false;
  // History lists versions without their values (a key's versions may be
  // megabytes each); a version's value is read when it is viewed or rolled
  // back to, and kept, as a past version never changes.
  const pastValues = new Map(); // mod_revision -> kv, or null when absent
  async function valueAt(rev) {
    if (!pastValues.has(rev)) {
      try {
        pastValues.set(rev, (await api.get(key, { rev })).kv);
      } catch (e) {
        if (e.code !== "not_found") throw e;
        pastValues.set(rev, null);
      }
    }
    return pastValues.get(rev);
  }
  let fromRev = null;
  let toRev = null;
  const diffSlot = h("div", { class: "diff-slot", "aria-live": "polite" });
  async function loadHistory() {
    let res;
    try {
      res = await api.history(key, { limit: history_limit });
    } catch (e) {
      if (closed) return;
      historyCard.replaceChildren(h("h2", { id: "history-title" }, "History"), e.code === "not_found" ? h("p", { class: "muted" }, "No retained versions.") : errorBox(e, "Reading the history"));
      return;
    }
    if (closed) return;
    versions = res.versions || [];
    historyMore = !!res.more;
    if (!versions.some((v) => v.mod_revision === fromRev)) fromRev = versions[1] ? versions[1].mod_revision : null;
    if (!versions.some((v) => v.mod_revision === toRev)) toRev = versions[0] ? versions[0].mod_revision : null;
    drawHistory();
  }

  function drawHistory() {
    const compareBtn = h("button", { type: "button", class: "btn", disabled: versions.length < 2 }, "Compare selected");
    compareBtn.addEventListener("click", () => showDiff(fromRev, toRev));
    const rows = versions.map((v, i) => {
      const rev = v.mod_revision;
      const gone = isDeletion(v);
      const fromRadio = h("input", { type: "radio", name: "diff-from", value: String(rev), checked: rev === fromRev, "aria-label": `Compare from revision ${rev}` });
      const toRadio = h("input", { type: "radio", name: "diff-to", value: String(rev), checked: rev === toRev, "aria-label": `Compare to revision ${rev}` });
      fromRadio.addEventListener("change", () => (fromRev = rev));
      toRadio.addEventListener("change", () => (toRev = rev));
      const viewBtn = h("button", { type: "button", class: "btn btn-small", "aria-expanded": "false", disabled: gone }, "View");
      const shown = h("pre", { class: "value small" }, "Loading…");
      const detail = h("tr", { class: "version-detail", hidden: true }, h("td", { colspan: "8" }, shown));
      viewBtn.addEventListener("click", async () => {
        if (detail.hidden) {
          try {
            const old = await valueAt(rev);
            shown.textContent = old ? decodeValue(old).text : "(absent)";
          } catch (e) {
            shown.replaceChildren(errorBox(e, "Reading the version"));
          }
        }
        detail.hidden = !detail.hidden;
        viewBtn.setAttribute("aria-expanded", detail.hidden ? "false" : "true");
        viewBtn.textContent = detail.hidden ? "View" : "Hide";
      });
      const isCurrent = i === 0 && kv && kv.mod_revision === rev;
      const rollBtn = isCurrent
        ? h("span", { class: "badge badge-current" }, "current")
        : h(
            "button",
            { type: "button", class: "btn btn-small", "aria-label": gone ? `Roll back to revision ${rev} (deletes the key)` : `Roll back to revision ${rev}` },
            "Roll back",
          );
      if (!isCurrent) rollBtn.addEventListener("click", () => rollback(v));
      return [
        h("tr", { class: gone ? "version-row deleted" : "version-row", "data-rev": String(rev) }, [
          h("td", { class: "radio", "data-label": "From" }, fromRadio),
          h("td", { class: "radio", "data-label": "To" }, toRadio),
          h("td", { class: "num rev", "data-label": "Revision" }, String(rev)),
          h("td", { class: "num" }, gone ? "—" : String(v.version)),
          h("td", {}, gone ? h("span", { class: "badge badge-del" }, "deleted") : "put"),
          h("td", { class: "time" }, [formatTime(v.time_ms), h("span", { class: "muted small" }, " " + relativeTime(v.time_ms))]),
          h("td", { class: "num" }, gone ? "—" : formatBytes(v.size)),
          h("td", { class: "row-actions" }, [viewBtn, " ", rollBtn]),
        ]),
        detail,
      ];
    });
    historyCard.replaceChildren(
      h("div", { class: "history-head" }, [
        h("h2", { id: "history-title", tabindex: "-1" }, "History"),
        h("span", { class: "muted small" }, `${versions.length} retained version${versions.length === 1 ? "" : "s"}${historyMore ? ` (the newest ${versions.length}; older ones are not shown)` : ""}`),
        h("span", { class: "grow" }),
        compareBtn,
      ]),
      h("div", { class: "table-scroll" }, [
        h("table", { class: "history-table" }, [
          h("caption", { class: "sr-only" }, "Retained versions, newest first"),
          h("thead", {}, h("tr", {}, [
            h("th", { scope: "col", class: "radio" }, "From"),
            h("th", { scope: "col", class: "radio" }, "To"),
            h("th", { scope: "col", class: "num" }, "Revision"),
            h("th", { scope: "col", class: "num" }, "Version"),
            h("th", { scope: "col" }, "Event"),
            h("th", { scope: "col" }, "Time"),
            h("th", { scope: "col", class: "num" }, "Size"),
            h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
          ])),
          h("tbody", {}, rows.flat()),
        ]),
      ]),
      diffSlot,
    );
  }

  async function showDiff(from, to) {
    if (!from || !to) return;
    diffSlot.replaceChildren(h("p", { class: "muted" }, "Computing the diff…"));
    try {
      const res = await api.diff(key, from, to);
      diffSlot.replaceChildren(
        h("h3", { class: "h-small" }, `Diff: revision ${from} → revision ${to}`),
        renderDiff(res.hunks, `revision ${from}`, `revision ${to}`),
      );
    } catch (e) {
      diffSlot.replaceChildren(errorBox(e, "The diff"));
    }
  }

  async function rollback(v) {
    const rev = v.mod_revision;
    const gone = isDeletion(v);
    const curText = kv ? decodeValue(kv).text : "";
    let old = null;
    if (!gone) {
      try {
        old = await valueAt(rev);
      } catch (e) {
        toast(`Cannot read revision ${rev}: ${e.message} (${e.code})`, "error");
        return;
      }
    }
    const body = h("div", {}, [
      h("p", {}, gone ? `The key did not exist at revision ${rev}: rolling back deletes it.` : `Write the value of revision ${rev} back as a new revision. Nothing is written if the key changes meanwhile.`),
      gone ? null : renderDiff(toHunks(lineDiff(curText, decodeValue(old).text)), kv ? `now (revision ${kv.mod_revision})` : "now (absent)", `revision ${rev}`),
    ]);
    const ok = await confirmDialog({ title: `Roll back to revision ${rev}?`, body, confirm: gone ? "Roll back (delete)" : "Roll back", danger: gone });
    if (!ok) return;
    try {
      const res = await api.rollback(key, rev);
      toast(`Rolled back to revision ${rev}: now revision ${res.revision}`);
      await reload(true);
    } catch (e) {
      if (e.code === "compare_failed") toast("The key changed while rolling back; nothing was written. Look again.", "error");
      else toast(`Rollback failed: ${e.message} (${e.code})`, "error");
      await reload();
    }
  }

  ctx.setActions({
    edit: () => startEdit(),
    save: () => editor && editor.save(),
    cancel: () => editor && editor.cancel(),
    history: () => {
      const t = document.getElementById("history-title");
      if (t) {
        t.scrollIntoView({ behavior: "smooth", block: "start" });
        t.focus({ preventScroll: true });
      }
    },
    newKey: () => {
      location.hash = newHref(parentPrefix(key));
    },
  });
  valueCard.append(h("p", { class: "muted" }, "Loading…"));
  reload();
  return () => {
    closed = true;
    clearTimeout(historyTimer);
    if (watcher) watcher.close();
  };
}

// The new-key page: a name (prefilled with the folder) and a value, created
// with cas=0 so that an existing key is never replaced unseen.
export function renderNew(main, { prefix, key }, ctx) {
  setTitle("New key");
  const nameId = nextId("keyname");
  const keyInput = h("input", { id: nameId, type: "text", class: "mono", value: key || prefix || "", spellcheck: "false", autocomplete: "off", required: true });
  const editor = makeEditor({
    keyInput,
    text: "",
    binary: false,
    base: 0,
    onDone: ({ key: k, revision, tookTheirs }) => {
      if (!tookTheirs) toast(`Created ${k}: revision ${revision}`);
      location.hash = keyHref(k);
    },
    onCancel: () => {
      location.hash = keysHref(prefix || "");
    },
  });
  main.append(
    h("section", { class: "view new-view" }, [
      h("div", { class: "page-head" }, [h("div", {}, [breadcrumbs(prefix || ""), h("h1", {}, "New key")])]),
      h("div", { class: "card" }, [
        h("div", { class: "field" }, [h("label", { for: nameId }, "Key"), keyInput, h("p", { class: "muted small" }, "Use '/' to place the key in folders, e.g. app/db/url.")]),
        editor.el,
      ]),
    ]),
  );
  ctx.setActions({ save: () => editor.save(), cancel: () => editor.cancel() });
  keyInput.focus();
  keyInput.setSelectionRange(keyInput.value.length, keyInput.value.length);
  return () => {};
}
