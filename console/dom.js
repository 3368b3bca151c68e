// Small DOM helpers shared by the views. Text always goes in as text nodes,
// never as HTML, so keys and values cannot inject markup.

export function h(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  if (!Array.isArray(children)) children = [children];
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
export function nextId(stem) {
  return `${stem}-${++uid}`;
}

export function formatTime(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function relativeTime(ms) {
  if (!ms) return "";
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function formatBytes(n) {
  if (n === undefined || n === null) return "—";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// Toasts: short confirmations in a polite live region (index.html).
export function toast(message, kind = "ok") {
  const box = document.getElementById("toasts");
  const t = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.append(t);
  setTimeout(() => t.classList.add("toast-leaving"), 3500);
  setTimeout(() => t.remove(), 4000);
}

// An API error as a block the admin can read: the message, and the stable code
// to search the docs for.
export function errorBox(err, what) {
  const code = err && err.code ? err.code : "error";
  return h("div", { class: "error-box", role: "alert" }, [
    h("strong", {}, what ? `${what} failed: ` : "Error: "),
    h("span", { class: "error-message" }, err && err.message ? err.message : String(err)),
    " ",
    h("code", { class: "error-code" }, code),
  ]);
}

// confirmDialog resolves true when the admin confirms. Uses <dialog>, so
// focus is trapped and Esc cancels.
export function confirmDialog({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const titleId = nextId("dlg-title");
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": titleId }, [
      h("h2", { id: titleId }, title),
      typeof body === "string" ? h("p", {}, body) : body,
      h("div", { class: "dialog-actions" }, [
        h("button", { type: "button", class: "btn", value: "cancel", onclick: () => dlg.close("cancel") }, "Cancel"),
        h(
          "button",
          { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary", value: "ok", onclick: () => dlg.close("ok") },
          confirm,
        ),
      ]),
    ]);
    dlg.addEventListener("close", () => {
      resolve(dlg.returnValue === "ok");
      dlg.remove();
    });
    document.body.append(dlg);
    dlg.showModal();
    // Enter confirms a harmless action; a destructive one starts on Cancel.
    dlg.querySelector(danger ? ".dialog-actions .btn:first-child" : ".dialog-actions .btn:last-child").focus();
  });
}

export function setTitle(...parts) {
  document.title = [...parts, "Cairn"].filter(Boolean).join(" · ");
}
