// End-to-end: the real Stitchbook window, driven over WebDriver (tauri-driver →
// WebKitWebDriver) under Xvfb (helpers in wd.mjs); node's own test runner.
// The scenarios run in order in one window on the demo workspace; the last one switches to
// a workspace of hostile property values, and the import wizard loads files into that one.
//
// Env: STITCHBOOK_APP (app binary), STITCHBOOK_DEMO (workspace), STITCHBOOK_XSS (workspace
// built from fixtures/xss_events.jsonl), SCREENSHOT_DIR.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { click, find, go, js, jsAsync, prop, shot, sleep, startApp, stopApp, text, textOf, type, until } from "./wd.mjs";

const APP = process.env.STITCHBOOK_APP;
const WORKSPACE = process.env.STITCHBOOK_DEMO;
const XSS = process.env.STITCHBOOK_XSS;
// A generated workspace big enough that a rebuild takes seconds (the responsiveness step).
const BIG = process.env.STITCHBOOK_BIG;
// What the import dialog "picks" (the app's STITCHBOOK_PICK test hook): a generic CSV that
// needs a column mapping, with two bad rows, and a Segment export the app recognises.
const HERE = dirname(fileURLToPath(import.meta.url));
const PICKED = [join(HERE, "fixtures", "generic_events.csv"), resolve(HERE, "..", "..", "sample-data", "every-vendor", "segment_events.json.gz")];

before(async () => {
  assert.ok(APP, "STITCHBOOK_APP must name the app binary");
  assert.ok(WORKSPACE, "STITCHBOOK_DEMO must name a workspace");
  await startApp(APP, WORKSPACE, { STITCHBOOK_PICK: PICKED.join(delimiter) });
});

after(stopApp);

test("the data screen shows the imports, the event catalog and the quality panel", async () => {
  const table = await find("#imports-table");
  const body = await text(table);
  assert.match(body, /demo_2023-11\.zip/);
  assert.match(body, /demo_events\.jsonl\.gz/);
  assert.match(body, /app_events\.csv/);
  assert.match(body, /complete/);
  const path = await prop(await find("#workspace-path"), "title");
  assert.ok(path.endsWith(".duckdb"), path);
  assert.match(await text(await find(".stats")), /Quarantined rows/);
  assert.match(await text(await find('tr[data-import-id="1"]')), /amplitude/);
  assert.match(await text(await find("#event-catalog")), /\$pageview/);
  await until(async () => /duplicate rows removed/.test(await textOf("#quality-panel")), "the data-quality checks");
  assert.match(await text(await find("#import-files")), /Import files/);
  await shot("e2e-data-top");
  await click(await find('#event-catalog button[data-event="$pageview"]'));
  assert.match(await text(await find("#property-table")), /\$current_url/);
  await shot("e2e-data");
});

test("a funnel is built by clicking, and a drop-off opens a person's timeline stepped with the keyboard", async () => {
  await click(await find("#nav-insights-funnel"));
  const t = await find("#funnel-table");
  const rows = await text(t);
  assert.match(rows, /1\. signed_up/);
  assert.match(rows, /2\. created_project/);
  await find("#insight-chart canvas");
  await shot("e2e-funnel");
  // Add a step and rerun: the table grows.
  await click(await find("#add-step"));
  await click(await find("#run-insight"));
  await until(async () => /4\. /.test(await text(await find("#funnel-table"))), "a fourth step");
  // Drop-offs before step 2 → persons drawer.
  await click(await find('#funnel-table button[data-drill="-2"]'));
  const first = await find("#drill-persons a.person-link");
  assert.match(await text(await find("#drill-drawer")), /persons/);
  await shot("e2e-funnel-drill");
  const started = Date.now();
  await click(first);
  await find("#timeline .tl-row.selected");
  const clickToPaint = Date.now() - started;
  const timing = await text(await find("#timeline-timing"));
  console.log(`person page: click to selected timeline row ${clickToPaint} ms (WebDriver round trips included); ${timing}`);
  assert.match(await text(await find("#merge-history")), /→|No identity links/);
  const tl = await find("#timeline");
  const sel = async () => Number(await js("return Number(document.querySelector('#timeline .tl-row.selected')?.dataset.index ?? -1)"));
  assert.equal(await sel(), 0);
  await type(tl, "jjj");
  assert.equal(await sel(), 3);
  await type(tl, "k");
  assert.equal(await sel(), 2);
  const inspector = await text(await find("#event-inspector"));
  assert.match(inspector, /properties/i);
  assert.match(inspector, /#3 of /);
  // n jumps to the next session's first event.
  const next = Number(await js("return Number([...document.querySelectorAll('#timeline .tl-row.tl-session-start')].map(r => Number(r.dataset.index)).filter(i => i > 2)[0] ?? -1)"));
  assert.ok(next > 0, "the person has a later session");
  await type(tl, "n");
  assert.equal(await sel(), next);
  await shot("e2e-timeline");
  // The deep link reopens the same person.
  const hash = await js("return location.hash");
  assert.match(hash, /^#\/person\//);
});

test("a person is found by email and a session link opens that session's timeline", async () => {
  await go("#/persons");
  const box = await find("#person-search");
  await type(box, "ada\uE007");
  await until(async () => /ada/.test(await text(await find("#person-results"))), "search results");
  await click(await find("#person-results a.person-link"));
  await click(await find("#session-list a[data-session]"));
  await until(async () => /\/session\//.test(await js("return location.hash")), "session route");
  await find("#timeline .tl-row.selected");
  assert.match(await text(await find(".timeline-bar")), /Session timeline/);
  await shot("e2e-person");
});

test("the retention table shows cohorts with clickable cells", async () => {
  await go("#/insights/retention");
  const t = await find("#retention-table");
  const body = await text(t);
  assert.match(body, /Cohort/);
  assert.match(body, /Mean/);
  const cells = await js("return document.querySelectorAll('#retention-table button[data-drill]').length");
  assert.ok(cells > 3, `retention cells: ${cells}`);
  // An export ends in the past: the result says it is as of the end of the data.
  assert.match(await text(await find("#insight-as-of")), /^as of \d{1,2} \w{3} \d{4}, the end of the data$/);
  await find("#insight-chart canvas");
  await shot("e2e-retention");
  await click(await find('#retention-table button[data-drill="0:0"]'));
  await find("#drill-persons");
  await js("[...document.querySelectorAll('#drill-drawer button')].find((b) => b.textContent === 'Close').click(); return true");
  // Broken down by the browser on each cohort's start event: a table per value, drilled per value.
  const set = (css, value) => js(`const e = document.querySelector(${JSON.stringify(css)}); e.value = ${JSON.stringify(value)}; e.dispatchEvent(new Event("change")); return true`);
  await set("#retention-breakdown-kind", "event");
  await find("#retention-breakdown");
  await set("#retention-breakdown", "$browser");
  await click(await find("#run-insight"));
  await until(async () => Number(await js("return document.querySelectorAll('table.retention-breakdown').length")) >= 2, "a retention table per browser");
  const values = await js("return [...document.querySelectorAll('table.retention-breakdown')].map(t => t.dataset.value)");
  assert.ok(values.includes("Chrome"), `breakdown values: ${values}`);
  await sleep(600);
  await shot("e2e-retention-breakdown");
  await js("document.querySelector('table.retention-breakdown').scrollIntoView(); return true");
  await click(await find('table.retention-breakdown[data-value="Chrome"] button[data-drill="0:0@Chrome"]'));
  await until(async () => /· Chrome/.test(await textOf("#drill-drawer")), "the Chrome cohort's persons");
});

test("funnel trends are broken down by browser, a line and a drillable row per value", async () => {
  await go("#/insights/funnel");
  await find("#funnel-table");
  const set = (css, value) => js(`const e = document.querySelector(${JSON.stringify(css)}); e.value = ${JSON.stringify(value)}; e.dispatchEvent(new Event("change")); return true`);
  await set("#funnel-display", "trends");
  await find("#funnel-breakdown-kind");
  await set("#funnel-breakdown-kind", "event");
  await find("#funnel-breakdown");
  await set("#funnel-breakdown", "$browser");
  await click(await find("#run-insight"));
  await until(async () => /Breakdown/.test(await textOf("#funnel-trends-table").catch(() => "")), "the broken-down funnel trends table");
  const body = await textOf("#funnel-trends-table");
  assert.match(body, /Chrome/);
  await sleep(600);
  await shot("e2e-funnel-trends-breakdown");
  await click(await find('#funnel-trends-table button[data-drill^="period:0:entered@Chrome"]'));
  await until(async () => /entry period 1: entered · Chrome/.test(await textOf("#drill-drawer")), "the persons who entered on Chrome in the first period");
});

test("trends, lifecycle and paths render their charts", async () => {
  for (const [kind, marker] of [["trends", "#trends-table"], ["lifecycle", "#insight-chart canvas"], ["paths", "#insight-chart canvas"], ["stickiness", "#insight-chart canvas"]]) {
    await go(`#/insights/${kind}`);
    await find(marker);
    await sleep(600);
    await shot(`e2e-${kind}`);
  }
});

test("the SQL console runs a read-only query and refuses file access", async () => {
  await go("#/sql");
  const ed = await find("#sql-editor");
  await js("document.querySelector('#sql-editor').value = arguments[0]", ["SELECT event_name, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 5"]);
  await click(await find("#run-sql"));
  const grid = await text(await find("#sql-grid"));
  assert.match(grid, /event_name/);
  assert.match(grid, /\$pageview/);
  assert.match(await text(await find("#sql-schema")), /events/);
  await shot("e2e-sql");
  await js("document.querySelector('#sql-editor').value = arguments[0]", ["SELECT * FROM read_text('/etc/passwd')"]);
  await click(await find("#run-sql"));
  assert.match(await text(await find("#sql-result .error")), /sql_read_only|file access/);
  assert.ok(ed);
});

test("settings save model settings and DuckDB's threads", async () => {
  await go("#/settings");
  const mode = await find("#setting-identity_mode");
  assert.equal(await prop(mode, "value"), "posthog");
  // A model setting is saved under the engine's key.
  await js("const s = document.querySelector('#setting-week_start'); s.value = 'sunday'; s.dispatchEvent(new Event('change'));");
  await until(async () => /Saved week_start = sunday/.test(await textOf("#settings-status")), "the saved week start");
  await js("const s = document.querySelector('#setting-week_start'); s.value = 'monday'; s.dispatchEvent(new Event('change'));");
  await until(async () => /Saved week_start = monday/.test(await textOf("#settings-status")), "the week start put back");
  // DuckDB's threads apply at once and read back in effect.
  await js("const i = document.querySelector('#setting-duckdb-threads'); i.value = '1'; i.dispatchEvent(new Event('change'));");
  await until(async () => /1 thread\b/.test(await textOf("#resource-effective")), "one thread in effect");
  await shot("e2e-settings");
  await js("const i = document.querySelector('#setting-duckdb-threads'); i.value = ''; i.dispatchEvent(new Event('change'));");
  await until(async () => /Saved duckdb.threads = default/.test(await textOf("#resource-status")), "threads back to the default");
});

test("a stale model is offered as a visible update, never rebuilt behind the user's back", async () => {
  // A week-start change makes persons and sessions stale: the insight says why and offers
  // the update, which runs as a job.
  await go("#/settings");
  await find("#setting-week_start");
  await js("const s = document.querySelector('#setting-week_start'); s.value = 'sunday'; s.dispatchEvent(new Event('change'));");
  await until(async () => /Saved week_start = sunday/.test(await textOf("#settings-status")), "the saved week start");
  await go("#/insights/retention");
  await until(async () => /settings changed/.test(await textOf("#stale-model").catch(() => "")), "the stale-model notice");
  await shot("e2e-stale-model");
  await click(await find("#update-model"));
  await find("#retention-table", 60000);
  // Put the week start back: stale again until updated.
  await go("#/settings");
  await find("#setting-week_start");
  await js("const s = document.querySelector('#setting-week_start'); s.value = 'monday'; s.dispatchEvent(new Event('change'));");
  await until(async () => /Saved week_start = monday/.test(await textOf("#settings-status")), "the week start put back");
  await go("#/insights/retention");
  await click(await find("#update-model"));
  await find("#retention-table", 60000);
});

test("the PII audit scans, lists masked findings and records a review", async () => {
  await go("#/pii");
  await find("#pii-scan");
  await sleep(500);
  await js("document.querySelector('#pii-reviewer').value = ''");
  await type(await find("#pii-reviewer"), "e2e reviewer");
  await click(await find("#pii-scan"));
  await until(async () => /Scanned .* findings/.test(await textOf("#pii-status")), "the scan summary", 60000);
  await find("#pii-findings", 60000);
  const body = await textOf("#pii-findings");
  assert.match(body, /email/);
  assert.match(body, /\*\*\*@/, "samples are masked");
  // No unmasked demo address is on screen.
  assert.doesNotMatch(await textOf("#pii-body"), /[a-z]+\.[a-z]+\d*@example\.com/);
  const id = await js("const s = [...document.querySelectorAll('#pii-findings tr')].find(r => /email/.test(r.textContent))?.querySelector('select'); return s?.dataset.finding ?? null");
  assert.ok(id, "an email finding");
  await js("const s = document.querySelector(`#pii-findings select[data-finding='${arguments[0]}']`); s.value = 'needs_redaction'; s.dispatchEvent(new Event('change'));", [id]);
  await until(async () => /needs redaction/.test(await textOf("#pii-findings")), "the review badge");
  assert.match(await textOf("#pii-findings"), /e2e reviewer/);
  await shot("e2e-pii");
  // Drill into the email finding's events: masked values; one reveal, with a reason, is logged.
  await click(await find(`#pii-findings button[data-events='${id}']`));
  await until(async () => /events hit this finding/.test(await textOf("#pii-events-drawer")), "the finding's events");
  const masked = await textOf("#pii-events tbody tr:first-child");
  assert.match(masked, /\*\*\*@/);
  assert.doesNotMatch(masked, /[a-z]+\.[a-z]+\d*@example\.com/);
  await click(await find("#pii-events button.pii-reveal"));
  assert.match(await textOf("#pii-events-drawer .error"), /reason/);
  await type(await find("#pii-reveal-reason"), "e2e: support ticket 42");
  await click(await find("#pii-events button.pii-reveal"));
  await until(async () => /log entry #\d+/.test(await textOf("#pii-events tbody tr:first-child")), "the revealed value");
  assert.match(await textOf("#pii-events tbody tr:first-child .revealed"), /@/);
  await shot("e2e-pii-reveal");
  await click(await find("#pii-events-close"));
  await until(async () => /support ticket 42/.test(await textOf("#pii-reveal-log")), "the reveal log entry");
  assert.doesNotMatch(await textOf("#pii-reveal-log"), /@example\.com/, "the log never holds the value");
  // Retention helper: events older than a date.
  await js("const i = document.querySelector('#pii-cutoff'); i.value = '2023-11-15'; i.dispatchEvent(new Event('change'));");
  await click(await find("#pii-count-old"));
  await until(async () => /events are older than 2023-11-15/.test(await textOf("#pii-retention-result")), "the retention count");
});

test("the window answers within 200 ms while a rebuild runs, and shows the job's progress", async () => {
  assert.ok(BIG, "STITCHBOOK_BIG must name a workspace big enough to rebuild for seconds");
  await js("return window.__TAURI_INTERNALS__.invoke('open_workspace', { path: arguments[0], openedAt: '2024-01-01T00:00:00Z' })", [BIG]);
  await go("#/settings");
  await js("location.reload()");
  await until(async () => /Rebuild now/.test(await textOf("#rebuild").catch(() => "")), "the settings of the big workspace");
  await click(await find("#rebuild"));
  await until(async () => js("return !document.getElementById('job-bar').hidden"), "the job bar");
  assert.match(await textOf("#job-label"), /Rebuilding persons and sessions/);
  await shot("e2e-job-bar");
  // While the job holds the workspace, a navigation paints the new page's frame at once (the
  // page's own clock) and the bar is still there, with the job's progress.
  const nav = await jsAsync(`const done = arguments[arguments.length - 1];
    const t0 = performance.now();
    location.hash = '#/data';
    const tick = () => {
      if (document.querySelector('#nav-data.active')) {
        done({ ms: performance.now() - t0, running: !document.getElementById('job-bar').hidden });
      } else setTimeout(tick, 2);
    };
    tick();`);
  console.log(`during the rebuild the window answered a navigation in ${nav.ms.toFixed(0)} ms`);
  assert.ok(nav.running, "the rebuild was still running when the page answered");
  assert.ok(nav.ms < 200, `the window took ${nav.ms.toFixed(0)} ms to answer during the rebuild`);
  // The data screen's own queries answer during the job too (they read on their own connection).
  await find("#imports-table");
  await shot("e2e-data-during-rebuild");
  await until(async () => js("return document.getElementById('job-bar').hidden"), "the rebuild to end", 180000);
});

test("hostile property values are shown as text and never run", async () => {
  assert.ok(XSS, "STITCHBOOK_XSS must name the hostile workspace");
  await js("return window.__TAURI_INTERNALS__.invoke('open_workspace', { path: arguments[0], openedAt: '2024-01-01T00:00:00Z' })", [XSS]);
  await go("#/data");
  await js("location.reload()");
  // The reload replaces the page under us: read the catalog once the new one shows.
  await until(async () => /<script>window.__xss=2<\/script>/.test(await textOf("#event-catalog").catch(() => "")), "the hostile event catalog");
  await click(await find("#event-catalog button[data-event^='<img']"));
  await find("#property-table");
  await go("#/persons");
  await click(await find("#person-results a.person-link"));
  await find("#timeline .tl-row.selected");
  await type(await find("#timeline"), "jj");
  await go("#/insights/trends");
  await find("#trends-table");
  await sleep(500);
  const state = await js("return { xss: window.__xss ?? null, imgs: document.querySelectorAll('img').length, scripts: [...document.querySelectorAll('script')].filter(s => s.textContent.includes('__xss')).length }");
  assert.deepEqual(state, { xss: null, imgs: 0, scripts: 0 });
  await go("#/persons");
  await click(await find("#person-results a.person-link"));
  assert.match(await text(await find("#person-name")), /<img src=x/);
  await shot("e2e-xss");
});

test("the import wizard previews, maps a generic CSV and reports each file's outcome", async () => {
  await go("#/data");
  await click(await find("#import-files"));
  const wizard = await find("#import-wizard");
  const body = await text(wizard);
  assert.match(body, /generic_events\.csv/);
  assert.match(body, /segment_events\.json\.gz/);
  assert.match(body, /segment/);
  // The generic file gets a mapping form with guesses from its column names.
  const eventCol = await js("return document.querySelector('#import-wizard select[data-field=\"event\"]')?.value ?? null");
  assert.equal(eventCol, "action");
  assert.equal(await js("return document.querySelector('#import-wizard select[data-field=\"timestamp\"]').value"), "when");
  await click(await find("#import-wizard .preview-mapping"));
  await until(async () => /would be quarantined/.test(await textOf("#import-wizard")), "the mapped preview");
  assert.match(await textOf("#import-wizard .preview-table"), /Viewed Report/);
  const marked = await js("return document.querySelectorAll('#import-wizard .preview-table tr.rejected').length");
  assert.equal(marked, 2, "the unparseable time and the missing event name are marked");
  await shot("e2e-import-wizard");
  assert.match(await textOf("#start-import"), /Import 2 files/);
  await click(await find("#start-import"));
  const summary = await find("#import-summary", 60000);
  const result = await text(summary);
  assert.match(result, /Import finished/i);
  const csvRow = await js("return [...document.querySelectorAll('#import-result tbody tr')].find(r => /generic_events/.test(r.textContent))?.innerText ?? ''");
  assert.match(csvRow, /\b8\b[\s\S]*\b6\b[\s\S]*\b0\b[\s\S]*\b2\b/, `read 8, loaded 6, 0 duplicates, 2 quarantined: ${csvRow}`);
  assert.match(result, /segment_events/);
  await click(await find("#import-result tbody tr:first-child button.cell-link"));
  await until(async () => /not a time/.test(await textOf("#import-quarantine")), "the quarantined rows with their reasons");
  // The overview below the summary is read again: the new files are in the imports table.
  await until(async () => /generic_events\.csv/.test(await textOf("#imports-table")), "the refreshed imports table");
  await shot("e2e-import-summary");
});
