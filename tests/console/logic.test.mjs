// The console's logic that needs no browser: the conflict view's line diff,
// the JSON / YAML checks and the Backups page's formatting and thresholds,
// run by node directly on console/*.js.

import { test } from "node:test";
import assert from "node:assert/strict";
import { lineDiff, toHunks } from "../../console/diff.js";
import { guessFormat, lintJson, lintYaml, prettyJson } from "../../console/lint.js";
import {
  archiveHealth,
  backlog_bad_ratio,
  backlog_warn_ratio,
  backlogText,
  formatDuration,
  formatSize,
  isNotConfigured,
  lag_warn_ms,
  newestFirst,
  outcome,
  shortHash,
} from "../../console/backup_logic.js";

const ops = (a, b) => lineDiff(a, b).map((l) => l.op + l.text);

test("lineDiff: a shortest edit, removals before additions", () => {
  assert.deepEqual(ops("a\nb\nc", "a\nb\nc"), [" a", " b", " c"]);
  assert.deepEqual(ops("a\nb\nc", "a\nB\nc"), [" a", "-b", "+B", " c"]);
  assert.deepEqual(ops("", "x"), ["-", "+x"]);
  assert.deepEqual(ops("a\nb\nc\nd", "b\nd\ne"), ["-a", " b", "-c", " d", "+e"]);
});

test("toHunks: three lines of context, nearby changes merged", () => {
  const a = Array.from({ length: 20 }, (_, i) => `l${i + 1}`).join("\n");
  const b = a.replace("l2\n", "L2\n").replace("l18", "L18");
  const hunks = toHunks(lineDiff(a, b));
  assert.equal(hunks.length, 2);
  assert.equal(hunks[0].from_line, 1);
  assert.equal(hunks[1].from_line, 15);
  assert.equal(hunks[1].lines.filter((l) => l.op === " ").length, 5); // 3 before, 2 after (end)
  const near = a.replace("l5\n", "L5\n").replace("l9\n", "L9\n");
  assert.equal(toHunks(lineDiff(a, near)).length, 1);
  assert.deepEqual(toHunks(lineDiff(a, a)), []);
});

test("JSON: well-formedness with a line and column", () => {
  assert.deepEqual(lintJson('{"a": 1}'), []);
  const [p] = lintJson('{\n  "a": 1,\n  "b": tru\n}');
  assert.equal(p.line, 3);
  assert.equal(prettyJson('{"a":[1,2]}'), '{\n  "a": [\n    1,\n    2\n  ]\n}');
  assert.equal(prettyJson("{"), null);
});

test("YAML lint: the common mistakes, and silence on good files", () => {
  const good = [
    "# service",
    "name: web",
    "ports:",
    "  - 80",
    "  - 443",
    "env:",
    "  - name: A",
    "    value: '1'",
    "  - name: B",
    "    value: \"it's\"",
    "script: |",
    "  echo a: b",
    "  echo a: b",
    "flow: {a: 1, b: [1, 2]}",
    "url: http://x:80/#frag",
  ].join("\n");
  assert.deepEqual(lintYaml(good), []);
  const msgs = (t) => lintYaml(t).map((p) => `${p.line}: ${p.message}`);
  assert.match(msgs("a:\n\tb: 1")[0], /^2: Tab in indentation/);
  assert.match(msgs("a:\n  b: 1\n   c: 2")[0], /^3: Indentation of 3/);
  assert.match(msgs("a:\n    b: 1\n  c: 2")[0], /^3: Indentation of 2 matches no enclosing level/);
  assert.match(msgs('a: "open\nb: 1')[0], /^1: Unclosed double quote/);
  assert.match(msgs("a: [1, 2\nb: 1").at(-1), /^1: '\[' is never closed/);
  assert.match(msgs("a: 1\nb: 2\na: 3")[0], /^3: Duplicate key "a" \(first on line 1\)/);
  // The same key in two sibling mappings is fine.
  assert.deepEqual(lintYaml("x:\n  a: 1\ny:\n  a: 2"), []);
  assert.deepEqual(lintYaml("- a: 1\n- a: 2"), []);
});

test("guessFormat", () => {
  assert.equal(guessFormat('{"a":1}'), "json");
  assert.equal(guessFormat("[1]"), "json");
  assert.equal(guessFormat("a: 1\nb: 2"), "yaml");
  assert.equal(guessFormat("postgres://db:5432/app"), "text");
  assert.equal(guessFormat(""), "text");
});

test("backups: sizes and durations", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(1023), "1023 B");
  assert.equal(formatSize(1536), "1.5 KiB");
  assert.equal(formatSize(268435456), "256.0 MiB");
  assert.equal(formatSize(3 * 1024 ** 3), "3.0 GiB");
  assert.equal(formatSize(undefined), "—");
  assert.equal(formatDuration(350), "350 ms");
  assert.equal(formatDuration(4200), "4.2 s");
  assert.equal(formatDuration(180000), "3 min");
  assert.equal(formatDuration(2 * 3600000), "2.0 h");
  assert.equal(formatDuration(null), "—");
  assert.equal(backlogText(4096, 268435456), "4.0 KiB of 256.0 MiB (0%)");
  assert.equal(backlogText(3 * 1024 * 1024, 4 * 1024 * 1024), "3.0 MiB of 4.0 MiB (75%)");
  assert.equal(backlogText(10, 0), "10 B");
});

test("backups: the archive badge's thresholds", () => {
  const a = (o) => ({ lag_ms: 350, backlog_bytes: 4096, backlog_max_bytes: 1 << 28, behind: false, ...o });
  assert.deepEqual(archiveHealth(a({})), { level: "ok", label: "current", reasons: [] });
  assert.equal(archiveHealth(a({ lag_ms: lag_warn_ms - 1 })).level, "ok");
  assert.equal(archiveHealth(a({ lag_ms: lag_warn_ms })).label, "lagging");
  // However long the lag, "behind" is the node's word (its alert threshold
  // is its own setting), or a backlog about to overflow.
  assert.equal(archiveHealth(a({ lag_ms: 3600000 })).label, "lagging");
  assert.equal(archiveHealth(a({ backlog_bytes: (1 << 28) * backlog_warn_ratio })).level, "warn");
  assert.equal(archiveHealth(a({ backlog_bytes: (1 << 28) * backlog_bad_ratio })).level, "bad");
  // The node's flag wins over quiet numbers, and a warning never lowers "behind".
  const flagged = archiveHealth(a({ behind: true, lag_ms: lag_warn_ms }));
  assert.equal(flagged.label, "behind");
  assert.equal(flagged.reasons.length, 2);
  assert.equal(archiveHealth(null).level, "bad");
});

test("backups: snapshots newest first, short hashes, outcomes", () => {
  const snaps = [
    { name: "a", revision: 100, time_ms: 1 },
    { name: "c", revision: 140, time_ms: 3 },
    { name: "b", revision: 120, time_ms: 2 },
  ];
  assert.deepEqual(newestFirst(snaps).map((s) => s.revision), [140, 120, 100]);
  assert.deepEqual(snaps.map((s) => s.revision), [100, 140, 120], "the input is left as it was");
  assert.deepEqual(newestFirst(undefined), []);
  assert.equal(shortHash("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), "9f86d081884c…");
  assert.equal(shortHash("0123456789ab"), "0123456789ab");
  assert.equal(shortHash(""), "—");
  assert.deepEqual(outcome(null), { level: "none", label: "never" });
  assert.deepEqual(outcome({ ok: true }), { level: "ok", label: "ok" });
  assert.deepEqual(outcome({ ok: false, error: "sha256 mismatch" }), { level: "bad", label: "failed" });
  assert.equal(isNotConfigured({ status: 400, code: "bad_request" }), true);
  assert.equal(isNotConfigured({ status: 503, code: "no_leader" }), false);
});
