// The status page (GET /) in a real browser: Debian's headless Chromium,
// driven by playwright-core, against the real hub (target/debug/switchyard)
// running the bundled example config (examples/plugins.toml) with its real
// plugins. Run by scripts/test after the cargo tests: `npm ci && npm test`
// in this directory, after `cargo build --workspace --bins`.
//
// Environment:
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   SWITCHYARD_SCREENSHOT where to save the page's screenshot (default: a
//                        temp dir; docs/status-page.png is made with this)
//
// It never sleeps for a fixed time: every step waits for a condition, with
// a deadline, and a failure prints the hub's log.

import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const HUB_BIN = join(ROOT, "target/debug/switchyard");
const EXAMPLE = join(ROOT, "examples/plugins.toml");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_MS = 30_000;
// The hub runs with an admin token (`[hub] admin_token_env`): the API
// answers 401 without it, as in production.
const TOKEN = randomBytes(18).toString("base64url");

/** `fetch` of the admin API, with the token. */
function adminFetch(path, init = {}) {
  return fetch(`${base}${path}`, {
    ...init,
    headers: { ...(init.headers ?? {}), authorization: `Bearer ${TOKEN}` },
  });
}

/** The example config, made to run here: a free port, an admin token, a
 * temp database and events file, the debug binaries, dead letters instead of skipping a
 * record an enricher fails, and a faster poll. Everything else as written. */
function exampleConfig(dir) {
  const text = readFileSync(EXAMPLE, "utf8");
  const rewrites = [
    [/^listen = .*$/m, 'listen = "127.0.0.1:0"\nadmin_token_env = "SWITCHYARD_ADMIN_TOKEN"'],
    [/^database = .*$/m, `database = "sqlite://${join(dir, "hub.db")}"`],
    [/^path = "events\.jsonl"$/m, `path = "${join(dir, "events.jsonl")}"`],
    [/^on_error = .*$/m, 'on_error = "dead-letter"'],
    [/^interval = "10s"$/m, 'interval = "2s"'],
  ];
  let config = text.replaceAll("../target/release/", `${ROOT}/target/debug/`);
  for (const [pattern, replacement] of rewrites) {
    assert.match(config, pattern, `examples/plugins.toml changed: ${pattern} matches nothing`);
    config = config.replace(pattern, replacement);
  }
  const plugins = [...config.matchAll(/^\[plugins\.([A-Za-z0-9_-]+)\]$/gm)].map((m) => m[1]);
  return { config, plugins };
}

/** Polls `check` until it returns a truthy value, or fails after `ms`. */
async function eventually(what, check, ms = TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

let dir;
let hub;
let hubLog = "";
let base;
let plugins;
let configText;
let browser;

/** Runs a test body; on failure, the error carries the hub's log. */
function withHubLog(body) {
  return async (t) => {
    try {
      await body(t);
    } catch (error) {
      error.message += `\n---- the hub's log ----\n${hubLog}\n---- end of the hub's log ----`;
      throw error;
    }
  };
}

async function postWebhook(body) {
  const response = await fetch(`${base}/webhooks/webhooks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 202, `webhook answered ${response.status}: ${await response.text()}`);
}

/** A new page that fails the test on any console error or page error (a
 * CSP violation, an exception in the page's script). */
async function openPage(context, path = `/#token=${TOKEN}`) {
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.problems = problems;
  const response = await page.goto(`${base}${path}`);
  assert.equal(response.status(), 200);
  return page;
}

const stateCell = (page, name) => page.locator(`#plugins tr[data-plugin="${name}"] td.col-state`);

describe("the status page in headless Chromium", () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "switchyard-page-"));
    const example = exampleConfig(dir);
    plugins = example.plugins;
    configText = example.config;
    writeFileSync(join(dir, "plugins.toml"), example.config);
    hub = spawn(HUB_BIN, ["run", "--config", join(dir, "plugins.toml")], {
      cwd: dir,
      env: { ...process.env, SWITCHYARD_LOG: "info", NO_COLOR: "1", SWITCHYARD_ADMIN_TOKEN: TOKEN },
      stdio: ["ignore", "pipe", "pipe"],
    });
    hub.stdout.on("data", (chunk) => (hubLog += chunk));
    hub.stderr.on("data", (chunk) => (hubLog += chunk));
    hub.on("error", (error) => (hubLog += `\ncould not start ${HUB_BIN}: ${error.message}\n`));
    try {
      const addr = await eventually("the hub's listen address in its log", () => {
        if (hub.exitCode !== null) throw new Error(`the hub exited with ${hub.exitCode}`);
        return /HTTP server listening addr=(\S+)/.exec(hubLog)?.[1];
      });
      base = `http://${addr}`;
      await eventually("GET /readyz to answer 200", async () => (await fetch(`${base}/readyz`)).status === 200);
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
    } catch (error) {
      error.message += `\n---- the hub's log ----\n${hubLog}`;
      throw error;
    }
  });

  after(async () => {
    await browser?.close();
    if (hub && hub.exitCode === null) {
      const exited = new Promise((done) => hub.once("exit", done));
      hub.kill("SIGTERM");
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("GET / is the page, with a strict Content-Security-Policy and its embedded assets", withHubLog(async () => {
    const response = await fetch(`${base}/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(response.headers.get("content-security-policy"), /^default-src 'self';/);
    for (const [path, type] of [
      ["/page/app.js", "text/javascript; charset=utf-8"],
      ["/page/style.css", "text/css; charset=utf-8"],
      ["/page/icon.svg", "image/svg+xml"],
    ]) {
      const asset = await fetch(`${base}${path}`);
      assert.equal(asset.status, 200, path);
      assert.equal(asset.headers.get("content-type"), type, path);
    }
    // The page asks for the newest records; a wrong order is the usual 400.
    const bad = await adminFetch("/api/v1/records?order=sideways");
    assert.equal(bad.status, 400);
    assert.equal((await bad.json()).code, "bad_request");
  }));

  test("shows every plugin of the example config, and stop and start work", withHubLog(async () => {
    const context = await browser.newContext();
    const page = await openPage(context);
    assert.deepEqual(plugins, ["generator", "webhooks", "sentiment", "archive"]);
    for (const name of plugins) {
      await stateCell(page, name).filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    }
    const shown = await page.locator("#plugins tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.plugin));
    assert.deepEqual(shown, plugins, "every plugin, in config order");
    const archive = page.locator('#plugins tr[data-plugin="archive"]');
    assert.match(await archive.locator("td.col-pid").textContent(), /^\d+$/);
    assert.equal(await archive.locator("td.col-health").textContent(), "healthy");
    assert.equal(await archive.locator("td.col-breaker").textContent(), "closed");
    // The output's lag, from /metrics; only outputs have one.
    await archive.locator("td.col-lag").filter({ hasText: /\d+ (s|min|h)$/ }).waitFor({ timeout: TIMEOUT_MS });
    assert.equal(await page.locator('#plugins tr[data-plugin="generator"] td.col-lag').textContent(), "—");

    await archive.locator("button.action-stop").click();
    await stateCell(page, "archive").filter({ hasText: /^stopped$/ }).waitFor({ timeout: TIMEOUT_MS });
    assert.equal(await archive.locator("td.col-pid").textContent(), "—");
    assert.ok(await archive.locator("button.action-stop").isDisabled(), "no stop for a stopped plugin");
    const api = await (await adminFetch("/api/v1/plugins/archive")).json();
    assert.equal(api.state, "stopped", "the hub, not only the page, has it stopped");

    await archive.locator("button.action-start").click();
    await stateCell(page, "archive").filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    assert.match(await archive.locator("td.col-pid").textContent(), /^\d+$/);
    assert.deepEqual(page.problems, []);
    await context.close();
  }));

  test("recent records, filtered by source", withHubLog(async () => {
    await postWebhook({ id: "w1", type: "review", text: "I love this, it works great" });
    const context = await browser.newContext();
    const page = await openPage(context);
    const rows = page.locator("#records tbody tr");
    // Both inputs' records show up unfiltered (the generator polls every 2 s).
    await page.locator('#records tr[data-source="generator"]').first().waitFor({ timeout: TIMEOUT_MS });
    await page.locator('#records tr[data-source="webhooks"]').first().waitFor({ timeout: TIMEOUT_MS });

    await page.selectOption("#source-filter", "webhooks");
    const webhookRow = page.locator("#records tbody tr", { hasText: "w1" });
    await webhookRow.waitFor({ timeout: TIMEOUT_MS });
    assert.match(await webhookRow.locator("td.payload").textContent(), /"label":"positive"/, "stored after enrichment");
    await eventually("only webhooks records", async () => {
      const sources = await rows.evaluateAll((all) => all.map((row) => row.dataset.source));
      return sources.length > 0 && sources.every((source) => source === "webhooks");
    });

    await page.selectOption("#source-filter", "generator");
    await eventually("only generator records, newest first", async () => {
      const ids = await rows.evaluateAll((all) => all.map((row) => [row.dataset.source, Number(row.dataset.record)]));
      return ids.length > 0 && ids.every(([source]) => source === "generator") &&
        ids.every(([, id], i) => i === 0 || id < ids[i - 1][1]);
    });
    assert.deepEqual(page.problems, []);
    await context.close();
  }));

  test("a dead letter shows up; once the config is fixed and reloaded, replay stores it; another is deleted", withHubLog(async () => {
    // `text` must be a string: the sentiment enricher fails the record
    // permanently, and with on_error = "dead-letter" the hub parks it.
    await postWebhook({ id: "bad-1", type: "review", text: 42 });
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    const page = await openPage(context);
    const letter = page.locator("#dead-letters tbody tr", { hasText: "webhooks/bad-1" });
    await letter.waitFor({ timeout: TIMEOUT_MS });
    assert.match(await letter.textContent(), /sentiment.*enrich.*is not a string/);
    const firstId = await letter.getAttribute("data-dead-letter");

    // Every section filled in: the picture for the README.
    await page.locator("#records tbody tr").first().waitFor({ timeout: TIMEOUT_MS });
    for (const name of plugins) {
      await stateCell(page, name).filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    }
    const screenshot = process.env.SWITCHYARD_SCREENSHOT || join(dir, "status-page.png");
    await page.screenshot({ path: screenshot, fullPage: true });

    // The operator fixes the cause: the enricher reads only `filler` from
    // now on, so the number in `text` no longer matters. A reload restarts
    // only the enricher; then replaying the dead letter stores the record.
    const fixed = configText.replace(/^text_fields = .*$/m, 'text_fields = ["filler"]');
    assert.notEqual(fixed, configText, "examples/plugins.toml has no text_fields line");
    writeFileSync(join(dir, "plugins.toml"), fixed);
    const reload = await adminFetch("/api/v1/reload", { method: "POST" });
    const plan = await reload.json();
    assert.equal(reload.status, 200, JSON.stringify(plan));
    assert.deepEqual(plan.restarted, ["sentiment"]);
    assert.deepEqual(plan.unchanged, plugins.filter((name) => name !== "sentiment"));
    await stateCell(page, "sentiment").filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    await letter.locator("button.action-replay").click();
    await page.locator("#dead-message", { hasText: `Dead letter ${firstId} replayed: stored as record` }).waitFor({ timeout: TIMEOUT_MS });
    await page.locator(`#dead-letters tr[data-dead-letter="${firstId}"]`).waitFor({ state: "detached", timeout: TIMEOUT_MS });
    await page.locator("#dead-empty").waitFor({ state: "visible", timeout: TIMEOUT_MS });
    let listed = await (await adminFetch("/api/v1/dead-letters")).json();
    assert.deepEqual(listed.dead_letters, [], "replayed in the hub too");
    const stored = await eventually("the replayed record to be stored", async () => {
      const page = await (await adminFetch("/api/v1/records?source=webhooks&limit=1000")).json();
      return page.records.find((record) => record.source_id === "bad-1");
    });
    assert.equal(typeof stored.payload.sentiment?.label, "string", JSON.stringify(stored));

    // A record that fails under the new config is parked too; delete it.
    await postWebhook({ id: "bad-2", type: "review", filler: 7 });
    const second = page.locator("#dead-letters tbody tr", { hasText: "webhooks/bad-2" });
    await second.waitFor({ timeout: TIMEOUT_MS });
    await second.locator("button.action-delete").click();
    await page.locator("#dead-empty").waitFor({ state: "visible", timeout: TIMEOUT_MS });
    listed = await (await adminFetch("/api/v1/dead-letters")).json();
    assert.deepEqual(listed.dead_letters, [], "deleted in the hub too");
    assert.deepEqual(page.problems, []);
    await context.close();
  }));

  // The hub requires its admin token: the API answers 401 without it,
  // while the page itself (it holds no data) is served to anyone.
  test("with an admin token: the page asks once, keeps it in sessionStorage, takes #token=", withHubLog(async () => {
    const open = await fetch(`${base}/`);
    assert.equal(open.status, 200, "the page needs no token");
    const refused = await fetch(`${base}/api/v1/plugins`);
    assert.equal(refused.status, 401);
    assert.equal((await refused.json()).code, "unauthorized");

    const context = await browser.newContext();
    const seen = [];
    context.on("request", (request) => {
      if (new URL(request.url()).pathname.startsWith("/api/v1/")) {
        seen.push(request.headers().authorization ?? null);
      }
    });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    const form = page.locator("#token-form");
    await form.waitFor({ state: "visible", timeout: TIMEOUT_MS });
    assert.equal(await page.locator("#plugins tbody tr").count(), 0);

    await page.fill("#token-input", "wrong");
    await page.click("#token-form button[type=submit]");
    await page.locator("#token-error", { hasText: "refused" }).waitFor({ timeout: TIMEOUT_MS });

    await page.fill("#token-input", TOKEN);
    await page.click("#token-form button[type=submit]");
    await form.waitFor({ state: "hidden", timeout: TIMEOUT_MS });
    await stateCell(page, "archive").filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    assert.equal(await page.evaluate(() => sessionStorage.getItem("switchyard.admin_token")), TOKEN);
    seen.length = 0;
    await page.reload();
    await stateCell(page, "archive").filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    assert.ok(await form.isHidden(), "not asked again after a reload");
    assert.ok(seen.length > 0 && seen.every((h) => h === `Bearer ${TOKEN}`), `headers sent: ${seen}`);

    // A new tab has its own sessionStorage: #token= fills it in, then the
    // token leaves the address bar.
    const tab = await context.newPage();
    await tab.goto(`${base}/#token=${TOKEN}`);
    await stateCell(tab, "archive").filter({ hasText: /^running$/ }).waitFor({ timeout: TIMEOUT_MS });
    assert.equal(new URL(tab.url()).hash, "");
    assert.ok(await tab.locator("#token-form").isHidden());
    await context.close();
  }));
});
