// The console's logic that needs no browser: the conflict view's line diff
// and the JSON / YAML checks, run by node directly on console/*.js.

import { test } from "node:test";
import assert from "node:assert/strict";
import { lineDiff, toHunks } from "../../console/diff.js";
import { guessFormat, lintJson, lintYaml, prettyJson } from "../../console/lint.js";

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
