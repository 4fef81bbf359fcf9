// WebDriver helpers for the real app window: tauri-driver → WebKitWebDriver, plain W3C
// WebDriver over fetch. Shared by the e2e scenarios and the app benchmark.
import { spawn } from "node:child_process";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";

const DRIVER = "http://127.0.0.1:4444";
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const SHOTS = process.env.SCREENSHOT_DIR ?? "/tmp";

let driver;
let session;

export async function wd(method, path, body) {
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

/** Start tauri-driver (with `env` added to its environment, which the app inherits) and open
 *  the app on `workspace`. */
export async function startApp(app, workspace, env = {}) {
  driver = spawn("tauri-driver", ["--port", "4444"], { stdio: "ignore", env: { ...process.env, ...env } });
  await waitForDriver();
  const s = await wd("POST", "/session", {
    capabilities: {
      alwaysMatch: { "tauri:options": { application: app, args: ["--workspace", workspace] } },
    },
  });
  session = s.sessionId;
}

export async function stopApp() {
  if (session) await wd("DELETE", `/session/${session}`).catch(() => {});
  session = undefined;
  // SIGTERM, not SIGKILL: SIGKILL leaves WebKitWebDriver running.
  driver?.kill("SIGTERM");
  await new Promise((r) => (driver && driver.exitCode === null ? driver.once("exit", r) : r()));
}

export async function find(css, timeoutMs = 20000) {
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

export const text = (id) => wd("GET", `/session/${session}/element/${id}/text`);
// The text of the element `css` matches, found afresh (screens re-render while loading).
export async function textOf(css) {
  for (let i = 0; ; i++) {
    try {
      return await text(await find(css));
    } catch (e) {
      if (i > 20 || !/stale element/.test(String(e))) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
export const prop = (id, name) => wd("GET", `/session/${session}/element/${id}/property/${name}`);
export const click = (id) => wd("POST", `/session/${session}/element/${id}/click`, {});
export const type = (id, t) => wd("POST", `/session/${session}/element/${id}/value`, { text: t });
export const js = (script, args = []) => wd("POST", `/session/${session}/execute/sync`, { script, args });
/** A script that calls its last argument with the result (WebDriver's async execute). */
export const jsAsync = (script, args = []) => wd("POST", `/session/${session}/execute/async`, { script, args });
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function go(hash) {
  await js("location.hash = arguments[0];", [hash]);
}

export async function until(fn, what, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

export async function shot(name) {
  await sleep(500); // let chart animations settle
  const png = await wd("GET", `/session/${session}/screenshot`);
  mkdirSync(SHOTS, { recursive: true });
  writeFileSync(join(SHOTS, `${name}.png`), Buffer.from(png, "base64"));
}
