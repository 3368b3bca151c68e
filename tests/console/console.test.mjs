// The web console in a real browser (Debian's chromium, driven by
// playwright-core) against a real 3-node cluster. Run by run.sh:
//
//   tests/console/run.sh BUILD_DIR
//
// Each test opens its own page; changes "made elsewhere" go through cairnctl.
// Every request any page makes is recorded: the console must never reach
// past the node that serves it.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { startCluster } from "./cluster.mjs";

const buildDir = path.resolve(process.env.CAIRN_BUILD_DIR || "build");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = path.join(buildDir, "console-screenshots");
// Generous: the machine may be busy with other test groups.
const expect_ms = 15000;
const test_timeout_ms = 90000;

// Every test has a deadline (STYLE.md): a hung browser fails, not stalls.
function check(name, fn) {
  return test(name, { timeout: test_timeout_ms }, fn);
}

let cluster;
let browser;
let context;
const requests = []; // every URL any page asked for
const pageErrors = [];

before(async () => {
  cluster = await startCluster(buildDir);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu"] });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  context.on("request", (r) => requests.push(r.url()));
  fs.mkdirSync(shots, { recursive: true });
});

after(async () => {
  if (context) await context.close();
  if (browser) await browser.close();
  if (cluster) await cluster.stop();
});

async function open(hash) {
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${hash}: ${e.message}`));
  page.setDefaultTimeout(expect_ms);
  await page.goto(`${cluster.url}/#${hash}`);
  return page;
}

// Writes through the HTTP API without a guard, for setting up state fast.
async function seed(key, value) {
  const res = await fetch(`${cluster.url}/v1/kv/${encodeURIComponent(key)}`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ value }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `seeding ${key}: ${JSON.stringify(body)}`);
  return body.revision;
}

async function until(fn, what, ms = expect_ms) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function ctlValue(key) {
  const v = await cluster.get(key);
  return v === null ? null : v.replace(/\n$/, "");
}

async function keyLinks(page) {
  return page.locator(".keys-table td.name a").allTextContents();
}

check("the console loads from the node alone: no request leaves it", async () => {
  const page = await open("/keys/");
  await page.getByRole("heading", { name: "All keys" }).waitFor();
  await page.waitForLoadState("networkidle").catch(() => {});
  const origin = new URL(cluster.url).origin;
  const foreign = requests.filter((u) => !u.startsWith(origin + "/") && !u.startsWith("data:"));
  assert.deepEqual(foreign, [], "requests to anything but the node");
  // The page, its stylesheet and modules all came from the embedded assets.
  assert.ok(requests.some((u) => u.endsWith("/console/app.js")));
  assert.ok(requests.some((u) => u.endsWith("/console/console.css")));
  await page.screenshot({ path: path.join(shots, "keys-root.png") });
  await page.close();
});

check("browse the tree by '/' and filter by prefix and by substring", async () => {
  await seed("tree/app/db/url", "postgres://db:5432/app");
  await seed("tree/app/db/user", "app");
  await seed("tree/app/web/port", "8080");
  await seed("tree/other", "x");
  const page = await open("/keys/tree/");
  await until(async () => (await keyLinks(page)).join(",") === "app/,other", "the folder tree/");
  await page.getByRole("link", { name: "app/" }).click();
  await until(async () => (await keyLinks(page)).join(",") === "db/,web/", "the folder tree/app/");
  await page.getByRole("link", { name: "db/" }).click();
  await until(async () => (await keyLinks(page)).join(",") === "url,user", "the folder tree/app/db/");
  // Breadcrumbs lead back up.
  await page.getByRole("navigation", { name: "Folder path" }).getByRole("link", { name: "tree" }).click();
  await until(async () => (await keyLinks(page)).join(",") === "app/,other", "back at tree/");

  // "/" focuses the filter; a prefix filter lists matching keys flat.
  await page.locator("body").press("/");
  const filter = page.getByLabel("Filter", { exact: true });
  assert.equal(await filter.evaluate((el) => el === document.activeElement), true, "/ focuses the filter");
  await filter.fill("app/d");
  await until(async () => (await keyLinks(page)).join(",") === "app/db/url,app/db/user", "prefix filter app/d");
  await page.screenshot({ path: path.join(shots, "keys-filter.png") });
  await page.getByLabel("Match").selectOption("contains");
  await filter.fill("PORT");
  await until(async () => (await keyLinks(page)).join(",") === "app/web/port", "substring filter PORT");
  await filter.fill("nothing-like-this");
  await page.getByText("No key in this folder").waitFor();
  await page.close();
});

check("a folder of many keys is one row, and odd key names survive the URL", async () => {
  for (let i = 0; i < 60; i++) await seed(`wide/many/k${i}`, String(i));
  const odd = "wide/odd name?#%&+=";
  await seed(odd, "odd");
  await seed("wide/z", "z");
  const page = await open("/keys/wide/");
  await page.getByLabel("Per page").selectOption("25");
  // 60 keys under many/ are skipped over with one `after`, not paged through.
  await until(async () => (await keyLinks(page)).join(",") === "many/,odd name?#%&+=,z", "the folder wide/");
  assert.equal(await page.getByRole("button", { name: "Next →", exact: true }).isDisabled(), true);
  await page.getByRole("link", { name: "odd name?#%&+=" }).click();
  await page.getByRole("heading", { name: odd }).waitFor();
  assert.equal(await page.locator("pre.current-value").textContent(), "odd");
  await page.close();
});

check("page through more than one page of keys", async () => {
  const n = 120;
  for (let i = 0; i < n; i++) await seed(`paged/k${String(i).padStart(3, "0")}`, String(i));
  const page = await open("/keys/paged/");
  await page.getByLabel("Per page").selectOption("50");
  const seen = [];
  await until(async () => (await keyLinks(page))[0] === "k000", "page 1");
  for (let p = 1; ; p++) {
    const links = await keyLinks(page);
    seen.push(...links);
    const next = page.getByRole("button", { name: "Next →", exact: true });
    if (await next.isDisabled()) break;
    assert.equal(links.length, 50, `page ${p} is full`);
    const first = links[0];
    await next.click();
    await until(async () => (await keyLinks(page))[0] !== first, `page ${p + 1}`);
  }
  assert.equal(seen.length, n, "every key once, across pages");
  assert.equal(new Set(seen).size, n, "no key twice");
  assert.deepEqual(seen, [...seen].sort(), "in key order");
  await page.getByText(/Page 3/).waitFor();
  await page.getByRole("button", { name: "← Previous", exact: true }).click();
  await until(async () => (await keyLinks(page))[0] === "k050", "back to page 2");
  await page.close();
});

check("a key page shows JSON pretty-printed, and its metadata", async () => {
  await seed("show/app.json", '{"port":8080,"hosts":["a","b"]}');
  const stored = '{"port":8081,"hosts":["a","b","c"],"tls":{"enabled":true}}';
  const rev = await seed("show/app.json", stored);
  const page = await open("/key/show/app.json");
  const pre = page.locator("pre.current-value");
  await until(async () => (await pre.textContent()).includes('"port": 8081'), "pretty JSON");
  const text = await pre.textContent();
  assert.match(text, /^\{\n {2}"port": 8081,\n {2}"hosts": \[/, "indented two spaces, one member a line");
  assert.equal(await page.locator('dd[data-meta="revision"]').textContent(), String(rev));
  assert.equal(await page.locator('dd[data-meta="version"]').textContent(), "2");
  assert.equal(await page.locator('dd[data-meta="size"]').textContent(), `${Buffer.byteLength(stored)} B`);
  await page.screenshot({ path: path.join(shots, "key-json.png"), fullPage: true });
  await page.getByRole("button", { name: "Show raw", exact: true }).click();
  assert.equal(await pre.textContent(), stored);
  await page.close();
});

check("create, edit and delete a key, each guarded by compare-and-swap", async () => {
  const page = await open("/keys/crud/");
  await page.locator("body").press("n");
  const name = page.getByLabel("Key", { exact: true });
  await name.waitFor();
  assert.equal(await name.inputValue(), "crud/");
  await name.fill("crud/feature.json");
  const value = page.getByLabel("Value", { exact: true });
  await value.fill('{"enabled": tru');
  await page.getByText("Not well-formed JSON").waitFor();
  await value.fill('{"enabled": true}');
  await page.getByText("Well-formed JSON").waitFor();
  await value.press("Control+s");
  await page.getByRole("heading", { name: "crud/feature.json" }).waitFor();
  await until(async () => (await ctlValue("crud/feature.json")) === '{"enabled": true}', "the created value in cairnctl");

  // Edit: e opens the editor, Ctrl+S saves with cas=<the loaded mod_revision>.
  await page.locator("body").press("e");
  const editor = page.getByLabel("Edit value");
  await editor.waitFor();
  await editor.fill('{"enabled": false}');
  await editor.press("Control+s");
  await page.getByText("Saved: revision").waitFor();
  await until(async () => (await ctlValue("crud/feature.json")) === '{"enabled": false}', "the edited value");
  // The toast comes before the page has read the key back: wait for that.
  await until(async () => (await page.locator('dd[data-meta="version"]').textContent()) === "2", "version 2 on the page");

  // Esc cancels an edit without writing.
  await page.locator("body").press("e");
  await editor.fill("not saved");
  await editor.press("Escape");
  await page.getByRole("button", { name: "Discard", exact: true }).click();
  await page.getByRole("button", { name: "Edit", exact: true }).waitFor();
  assert.equal(await ctlValue("crud/feature.json"), '{"enabled": false}');

  // Creating a key that exists is refused (cas=0) and shown as a conflict.
  const page2 = await open("/new/crud/");
  await page2.getByLabel("Key", { exact: true }).fill("crud/feature.json");
  await page2.getByLabel("Value", { exact: true }).fill("clobber");
  await page2.getByRole("button", { name: "Create", exact: true }).click();
  await page2.getByText("Conflict: your save was not applied").waitFor();
  await page2.close();
  assert.equal(await ctlValue("crud/feature.json"), '{"enabled": false}');

  await page.getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("heading", { name: "crud/" }).waitFor();
  await until(async () => (await ctlValue("crud/feature.json")) === null, "the key deleted");
  await page.close();
});

check("a conflicting change made with cairnctl shows as a diff and the admin resolves it", async () => {
  await seed("conf/db.yaml", "host: db1\nport: 5432\nuser: app");
  const page = await open("/key/conf/db.yaml");
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  const editor = page.getByLabel("Edit value");
  await editor.fill("host: db1\nport: 5433\nuser: app");
  // Meanwhile someone else changes the key.
  await cluster.put("conf/db.yaml", "host: db2\nport: 5432\nuser: app");
  await page.getByText(/changed elsewhere at revision/).waitFor();
  await editor.press("Control+s");
  const conflict = page.getByRole("alertdialog");
  await conflict.getByText("Conflict: your save was not applied").waitFor();
  const del = await conflict.locator("tr.diff-del td.text").allTextContents();
  const add = await conflict.locator("tr.diff-add td.text").allTextContents();
  assert.deepEqual(del, ["host: db2", "port: 5432"], "their lines");
  assert.deepEqual(add, ["host: db1", "port: 5433"], "my lines");
  await page.screenshot({ path: path.join(shots, "conflict.png"), fullPage: true });
  // Their change stays until the admin decides.
  assert.equal(await ctlValue("conf/db.yaml"), "host: db2\nport: 5432\nuser: app");

  // Keep editing, merge by hand, save: guarded by their mod_revision now.
  await conflict.getByRole("button", { name: "Keep editing", exact: true }).click();
  await editor.fill("host: db2\nport: 5433\nuser: app");
  await editor.press("Control+s");
  await page.getByText("Saved: revision").waitFor();
  assert.equal(await ctlValue("conf/db.yaml"), "host: db2\nport: 5433\nuser: app");

  // Once more, and this time overwrite with mine.
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await editor.fill("host: mine\nport: 5433\nuser: app");
  await cluster.put("conf/db.yaml", "host: theirs\nport: 5433\nuser: app");
  await page.getByText(/changed elsewhere at revision/).waitFor();
  await editor.press("Control+s");
  await conflict.getByRole("button", { name: "Overwrite with mine", exact: true }).click();
  await page.getByText("Saved: revision").first().waitFor();
  await until(async () => (await ctlValue("conf/db.yaml")) === "host: mine\nport: 5433\nuser: app", "mine written");

  // And take theirs.
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await editor.fill("host: discarded");
  await cluster.put("conf/db.yaml", "host: final");
  await page.getByText(/changed elsewhere at revision/).waitFor();
  await editor.press("Control+s");
  await conflict.getByRole("button", { name: "Take theirs", exact: true }).click();
  await until(async () => (await page.locator("pre.current-value").textContent()) === "host: final", "theirs shown");
  assert.equal(await ctlValue("conf/db.yaml"), "host: final");

  // Deleted meanwhile: the conflict says so, and overwriting recreates it
  // (guarded by cas=0: only while it is still absent).
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await editor.fill("host: back");
  await cluster.del("conf/db.yaml");
  await page.getByText(/deleted elsewhere at revision/).waitFor();
  await editor.press("Control+s");
  await conflict.getByText("Someone else deleted this key while you were editing.").waitFor();
  await conflict.getByRole("button", { name: "Overwrite with mine", exact: true }).click();
  await until(async () => (await ctlValue("conf/db.yaml")) === "host: back", "the key recreated");
  await page.close();
});

check("history: every version, a diff between two, and a rollback", async () => {
  const r1 = await seed("hist/app.conf", "a = 1\nb = 2\nc = 3");
  await seed("hist/app.conf", "a = 1\nb = 20\nc = 3");
  const r3 = await seed("hist/app.conf", "a = 1\nb = 20\nc = 3\nd = 4");
  const page = await open("/key/hist/app.conf");
  const rows = page.locator("tr.version-row");
  await until(async () => (await rows.count()) === 3, "three versions");
  assert.equal(await rows.first().getAttribute("data-rev"), String(r3), "newest first");
  await page.getByLabel(`Compare from revision ${r1}`, { exact: true }).check();
  await page.getByLabel(`Compare to revision ${r3}`, { exact: true }).check();
  await page.getByRole("button", { name: "Compare selected", exact: true }).click();
  const diff = page.locator(".diff-slot");
  await diff.getByText(`Diff: revision ${r1} → revision ${r3}`).waitFor();
  // "c = 3" ends the old value without a newline and has one in the new: as
  // in diff -u, it counts as changed, and the page says why.
  assert.deepEqual(await diff.locator("tr.diff-del td.text").allTextContents(), ["b = 2", "c = 3"]);
  assert.deepEqual(await diff.locator("tr.diff-add td.text").allTextContents(), ["b = 20", "c = 3", "d = 4"]);
  assert.equal(await diff.getByText("\\ No newline at end of value").count(), 2);
  await page.screenshot({ path: path.join(shots, "history-diff.png"), fullPage: true });

  // View reads an old version's value on demand.
  await page.locator(`tr.version-row[data-rev="${r1}"]`).getByRole("button", { name: "View", exact: true }).click();
  const oldValue = page.locator(`tr.version-row[data-rev="${r1}"] + tr.version-detail pre`);
  await until(async () => (await oldValue.textContent()) === "a = 1\nb = 2\nc = 3", "the old value shown");

  await page.getByRole("button", { name: `Roll back to revision ${r1}`, exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Roll back", exact: true }).click();
  await page.getByText(`Rolled back to revision ${r1}`).waitFor();
  await until(async () => (await ctlValue("hist/app.conf")) === "a = 1\nb = 2\nc = 3", "the old value back");
  await until(async () => (await rows.count()) === 4, "the rollback in the history");
  await until(async () => (await page.locator("pre.current-value").textContent()) === "a = 1\nb = 2\nc = 3", "the page shows it");
  await page.close();
});

check("live updates: a change made with cairnctl appears without a reload", async () => {
  await seed("live/flag", "off");
  const page = await open("/key/live/flag");
  await until(async () => (await page.locator("pre.current-value").textContent()) === "off", "the value");
  await page.getByText("Live", { exact: true }).waitFor();
  await page.evaluate(() => (window.__noReload = true));
  await cluster.put("live/flag", "on");
  await until(async () => (await page.locator("pre.current-value").textContent()) === "on", "the new value, live");
  assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
  assert.equal(await page.locator('dd[data-meta="version"]').textContent(), "2");

  // The key browser too: a key created elsewhere shows up in its folder.
  const list = await open("/keys/live/");
  await until(async () => (await keyLinks(list)).join(",") === "flag", "the folder");
  await list.getByText("Live", { exact: true }).waitFor();
  await cluster.put("live/new-key", "1");
  await until(async () => (await keyLinks(list)).join(",") === "flag,new-key", "the new key, live");
  await list.close();
  await page.close();
});

check("the cluster page lists 3 members with one leader", async () => {
  const page = await open("/cluster");
  const rows = page.locator("tr.member");
  await until(async () => (await rows.count()) === 3, "three members");
  await until(async () => (await page.locator("tr.member .role-leader").count()) === 1, "exactly one leader");
  const leaderText = await page.locator(".stat").first().textContent();
  assert.match(leaderText, /Leader\s*node \d/);
  await page.screenshot({ path: path.join(shots, "cluster.png") });
  await page.close();
});

check("the cluster page shows a joining node's role and catch-up, then its promotion", async () => {
  const { address } = await cluster.startJoining(4);
  await cluster.ctl("member", "add", "4", address);
  const page = await open("/cluster");
  const row = page.locator('tr.member[data-member="4"]');
  await until(async () => (await row.count()) === 1, "node 4 listed");
  await until(async () => (await row.locator(".voting").textContent()) === "standby", "node 4 a standby");
  await until(async () => (await row.locator(".catch-up").textContent()) === "caught up", "node 4 caught up");
  await page.screenshot({ path: path.join(shots, "cluster-standby.png") });
  await cluster.ctl("member", "promote", "4");
  await until(async () => (await row.locator(".voting").textContent()) === "voter", "node 4 a voter");
  await cluster.ctl("member", "remove", "4");
  await until(async () => (await page.locator("tr.member").count()) === 3, "back to three members");
  await page.close();
});

check("YAML lint and keyboard help", async () => {
  const page = await open("/new/lint/");
  await page.getByLabel("Key", { exact: true }).fill("lint/x.yaml");
  const value = page.getByLabel("Value", { exact: true });
  await page.getByLabel("Check as").selectOption("yaml");
  await value.fill("a: 1\nb:\n\tc: 2\na: 3\nd: [1, 2\n");
  const lint = page.locator(".lint");
  await lint.getByText("Tab in indentation").waitFor();
  await lint.getByText('Duplicate key "a"').waitFor();
  await lint.getByText("'[' is never closed").waitFor();
  await value.press("Escape");
  await page.getByRole("button", { name: "Discard", exact: true }).click();
  const p2 = await open("/keys/");
  await p2.locator("body").press("?");
  await p2.getByRole("dialog", { name: "Keyboard shortcuts" }).waitFor();
  await p2.keyboard.press("Escape");
  await page.close();
  await p2.close();
});

check("API errors show their message and code; binary values show as base64", async () => {
  // A key over the node's limit (4096 bytes by default): 413 too_large.
  const page = await open("/new/err/");
  await page.getByLabel("Key", { exact: true }).fill("err/" + "k".repeat(5000));
  await page.getByLabel("Value", { exact: true }).fill("v");
  await page.getByRole("button", { name: "Create", exact: true }).click();
  const box = page.getByRole("alert").filter({ hasText: "Saving failed" });
  await box.waitFor();
  assert.equal(await box.locator(".error-code").textContent(), "too_large");
  await page.close();

  const res = await fetch(`${cluster.url}/v1/kv/err%2Fbinary`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ value: "//79AA==", encoding: "base64" }),
  });
  assert.equal(res.status, 200);
  const bin = await open("/key/err/binary");
  await bin.getByText("not valid UTF-8, so it is shown base64-encoded").waitFor();
  assert.equal(await bin.locator("pre.current-value").textContent(), "//79AA==");
  await bin.close();
});

check("backups: take a snapshot and verify from the Backups page", async () => {
  const page = await open("/keys/");
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Backups" }).click();
  await page.getByRole("heading", { name: "Backups", exact: true }).waitFor();
  const snap = page.getByRole("button", { name: "Take snapshot now" });
  const verify = page.getByRole("button", { name: "Verify now" });
  await until(async () => (await page.locator("#backup-url").textContent()) === cluster.backupUrl, "the backup URL");
  const rev = await seed("backup/probe", "1");
  await until(async () => !(await snap.isDisabled()), "the snapshot button");
  await snap.click();
  // The snapshot of the cluster's current revision, first (newest) in the table.
  await page.locator(`tr.snapshot-row[data-revision="${rev}"]`).waitFor({ timeout: 60000 });
  assert.equal(await page.locator("tr.snapshot-row").first().getAttribute("data-revision"), String(rev));
  await page.locator(".backup-action").getByText(`Snapshot of revision ${rev}`).waitFor();
  await until(async () => !(await verify.isDisabled()), "the verify button");
  await verify.click();
  await until(async () => (await page.locator("#verify-result").textContent()) === "ok", "the verification", 60000);
  await until(async () => (await page.locator("#verify-badge").textContent()) === "ok", "the last verification shown ok");
  // How many log segments the archive holds (GET /v1/backup "segments").
  await until(async () => /^[1-9][\d,]*$/.test((await page.locator('.backup-archive dt:has-text("Log segments") + dd').textContent()) ?? ""), "the log segments count");
  // A snapshot saved by the browser: a snapshot artifact, named after the cluster and revision.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: "Download snapshot" }).click()]);
  assert.match(download.suggestedFilename(), /^cairn-[0-9a-f]{16}-\d+\.cairnsnap$/);
  const saved = fs.readFileSync(await download.path());
  assert.equal(saved.subarray(0, 7).toString(), "CAIRNDR");
  assert.ok(saved.length > 100, `a snapshot of ${saved.length} bytes`);
  await page.screenshot({ path: path.join(shots, "backups.png"), fullPage: true });
  await page.close();
});

check("phone width: one column, nothing wider than the screen", async () => {
  const phone = await browser.newContext({ viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true });
  phone.on("request", (r) => requests.push(r.url()));
  const page = await phone.newPage();
  await page.goto(`${cluster.url}/#/key/hist/app.conf`);
  await page.locator("tr.version-row").first().waitFor({ timeout: expect_ms });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 376, `page is ${width}px wide on a 375px screen`);
  await page.screenshot({ path: path.join(shots, "phone-key.png"), fullPage: true });
  await phone.close();
});

check("no page error, and still no request beyond the node", async () => {
  assert.deepEqual(pageErrors, []);
  const origin = new URL(cluster.url).origin;
  assert.deepEqual(requests.filter((u) => !u.startsWith(origin + "/") && !u.startsWith("data:")), []);
});
