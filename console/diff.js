// Line diffs. History diffs come from the node (/v1/diff); the conflict view
// diffs two texts the browser already holds (the admin's edit and the value
// someone else wrote), with the small LCS below.

import { h } from "./dom.js";

// Past this many line pairs between the common head and tail, the differing
// middle is shown as replaced whole rather than spending seconds on a table.
const lcs_cells_max = 4_000_000;

// lineDiff(a, b) -> [{op: " " | "-" | "+", text}], a shortest edit script
// from a to b after trimming their common head and tail.
export function lineDiff(a, b) {
  const x = a.split("\n");
  const y = b.split("\n");
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  const out = x.slice(0, head).map((text) => ({ op: " ", text }));
  const n = xs.length;
  const m = ys.length;
  if (n * m > lcs_cells_max) {
    for (const text of xs) out.push({ op: "-", text });
    for (const text of ys) out.push({ op: "+", text });
  } else {
    // len[i][j]: LCS length of xs[i..] and ys[j..], in one flat array.
    const w = m + 1;
    const len = new Uint32Array((n + 1) * w);
    for (let i = n - 1; i >= 0; i--) {
      for (let j = m - 1; j >= 0; j--) {
        len[i * w + j] = xs[i] === ys[j] ? len[(i + 1) * w + j + 1] + 1 : Math.max(len[(i + 1) * w + j], len[i * w + j + 1]);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && xs[i] === ys[j]) {
        out.push({ op: " ", text: xs[i++] });
        j++;
      } else if (i < n && (j === m || len[(i + 1) * w + j] >= len[i * w + j + 1])) {
        // Removals before additions, as diff -u prints them.
        out.push({ op: "-", text: xs[i++] });
      } else {
        out.push({ op: "+", text: ys[j++] });
      }
    }
  }
  for (const text of x.slice(x.length - tail)) out.push({ op: " ", text });
  return out;
}

// Groups a whole-file edit script into hunks with `context` lines around each
// change, in the shape /v1/diff answers: [{from_line, to_line, lines}].
export function toHunks(lines, context = 3) {
  const hunks = [];
  let fromLine = 1;
  let toLine = 1;
  const pos = lines.map((l) => {
    const p = { from: fromLine, to: toLine };
    if (l.op !== "+") fromLine++;
    if (l.op !== "-") toLine++;
    return p;
  });
  let k = 0;
  while (k < lines.length) {
    if (lines[k].op === " ") {
      k++;
      continue;
    }
    let start = Math.max(0, k - context);
    let end = k;
    // Extend while the next change is within 2 * context unchanged lines.
    for (;;) {
      while (end < lines.length && lines[end].op !== " ") end++;
      let next = end;
      while (next < lines.length && lines[next].op === " ") next++;
      if (next < lines.length && next - end <= 2 * context) end = next;
      else break;
    }
    const stop = Math.min(lines.length, end + context);
    hunks.push({ from_line: pos[start].from, to_line: pos[start].to, lines: lines.slice(start, stop) });
    k = stop;
  }
  return hunks;
}

// Renders hunks as a table an admin can read: old and new line numbers, a
// sign, the text. fromLabel / toLabel name the two sides.
export function renderDiff(hunks, fromLabel, toLabel) {
  const wrap = h("div", { class: "diff" });
  wrap.append(
    h("div", { class: "diff-legend" }, [
      h("span", { class: "diff-del-swatch" }, "− " + fromLabel),
      h("span", { class: "diff-add-swatch" }, "+ " + toLabel),
    ]),
  );
  if (!hunks || hunks.length === 0) {
    wrap.append(h("p", { class: "muted diff-same" }, "The two versions are identical."));
    return wrap;
  }
  const table = h("table", { class: "diff-table" });
  const caption = h("caption", { class: "sr-only" }, `Line differences from ${fromLabel} to ${toLabel}`);
  table.append(caption);
  const body = h("tbody");
  for (const hunk of hunks) {
    let a = hunk.from_line ?? hunk.old_start ?? 1;
    let b = hunk.to_line ?? hunk.new_start ?? 1;
    const fromN = hunk.from_lines ?? hunk.lines.filter((l) => l.op !== "+").length;
    const toN = hunk.to_lines ?? hunk.lines.filter((l) => l.op !== "-").length;
    body.append(h("tr", { class: "diff-hunk" }, [h("td", { colspan: "4" }, `@@ -${a},${fromN} +${b},${toN} @@`)]));
    for (const line of hunk.lines) {
      const cls = line.op === "+" ? "diff-add" : line.op === "-" ? "diff-del" : "diff-ctx";
      const sign = line.op === "+" ? "+" : line.op === "-" ? "−" : " ";
      body.append(
        h("tr", { class: cls }, [
          h("td", { class: "ln" }, line.op === "+" ? "" : String(a)),
          h("td", { class: "ln" }, line.op === "-" ? "" : String(b)),
          h("td", { class: "sign", "aria-label": line.op === "+" ? "added" : line.op === "-" ? "removed" : "unchanged" }, sign),
          h("td", { class: "text" }, line.encoding === "base64" ? [h("span", { class: "badge" }, "base64"), " ", line.text] : line.text),
        ]),
      );
      if (line.op !== "+") a++;
      if (line.op !== "-") b++;
      // The node marks a last line without "\n", as diff -u does: without the
      // mark, "c" and "c\n" would look like a line removed and added unchanged.
      if (line.newline === false) {
        body.append(h("tr", { class: "diff-nonl" }, [h("td", { colspan: "3" }), h("td", { class: "text muted" }, "\\ No newline at end of value")]));
      }
    }
  }
  table.append(body);
  wrap.append(h("div", { class: "diff-scroll" }, [table]));
  return wrap;
}
