// End-to-end: the real Stitchbook window, driven over WebDriver (tauri-driver →
// WebKitWebDriver) under Xvfb. Plain W3C WebDriver over fetch; node's own test runner.
//
// Env: STITCHBOOK_APP (app binary), STITCHBOOK_DEMO (workspace), SCREENSHOT_DIR.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const APP = process.env.STITCHBOOK_APP;
const WORKSPACE = process.env.STITCHBOOK_DEMO;
const SHOTS = process.env.SCREENSHOT_DIR ?? "/tmp";
const DRIVER = "http://127.0.0.1:4444";
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

let driver;
let session;

async function wd(method, path, body) {
  const res = await fetch(`${DRIVER}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json.value;
}

async function waitForDriver() {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${DRIVER}/status`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error("tauri-driver did not start");
}

async function find(css, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const el = await wd("POST", `/session/${session}/element`, { using: "css selector", value: css });
      return el[ELEMENT];
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

const text = (id) => wd("GET", `/session/${session}/element/${id}/text`);
const prop = (id, name) => wd("GET", `/session/${session}/element/${id}/property/${name}`);

before(async () => {
  assert.ok(APP, "STITCHBOOK_APP must name the app binary");
  assert.ok(WORKSPACE, "STITCHBOOK_DEMO must name a workspace");
  driver = spawn("tauri-driver", ["--port", "4444"], { stdio: "ignore" });
  await waitForDriver();
  const s = await wd("POST", "/session", {
    capabilities: {
      alwaysMatch: { "tauri:options": { application: APP, args: ["--workspace", WORKSPACE] } },
    },
  });
  session = s.sessionId;
});

after(async () => {
  if (session) await wd("DELETE", `/session/${session}`).catch(() => {});
  // SIGTERM, not SIGKILL: SIGKILL leaves WebKitWebDriver running.
  driver?.kill("SIGTERM");
});

test("the window shows the workspace's import summary", async () => {
  const table = await find("#imports-table");
  const body = await text(table);
  assert.match(body, /demo_2023-11\.zip/);
  assert.match(body, /demo_events\.jsonl\.gz/);
  assert.match(body, /small_events\.jsonl/);
  assert.match(body, /app_events\.csv/);
  assert.match(body, /complete/);
  const path = await prop(await find("#workspace-path"), "textContent");
  assert.ok(path.endsWith(".duckdb"), path);
  const stats = await text(await find(".stats"));
  assert.match(stats, /Events/);
  assert.match(stats, /Quarantined rows/);
  // The demo mixes two vendors: an Amplitude zip first, then PostHog exports.
  assert.match(await text(await find('tr[data-import-id="1"]')), /amplitude/);
  assert.match(await text(await find('tr[data-import-id="2"]')), /posthog/);
  const png = await wd("GET", `/session/${session}/screenshot`);
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, "e2e-overview.png"), Buffer.from(png, "base64"));
});
