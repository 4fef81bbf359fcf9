// App benchmark, measured in the real window (tauri-driver under Xvfb); prints figures, asserts
// nothing about time. Run by scripts/bench-app.sh.
//
//   STITCHBOOK_APP    the app binary
//   STITCHBOOK_BIG    a large workspace (e.g. 10M generated events, model built): launch to the
//                     first screen, then to the first chart
//   STITCHBOOK_HEAVY  a workspace whose first person has a very long timeline (100k events):
//                     opening it, then scrolling it for 3 s with frame times
import { click, find, go, js, startApp, stopApp, textOf, type, until } from "../e2e/wd.mjs";

const APP = process.env.STITCHBOOK_APP;
const BIG = process.env.STITCHBOOK_BIG;
const HEAVY = process.env.STITCHBOOK_HEAVY;
if (!APP) throw new Error("STITCHBOOK_APP must name the app binary");

const ms = (t0) => Math.round(performance.now() - t0);

if (BIG) {
  for (let run = 1; run <= 2; run++) {
    const t0 = performance.now();
    await startApp(APP, BIG);
    const launched = ms(t0);
    await find("#event-catalog", 120000);
    const data = ms(t0);
    // Run 1 goes to the first chart at once (its requests queue behind the data-quality
    // checks, which share the workspace connection, unless the workspace remembers their
    // result); run 2 waits for those checks first.
    let quality = "";
    if (run === 2) {
      await until(async () => !(await js("return document.querySelector('#quality-panel .loading') !== null")), "the quality checks", 120000);
      quality = `; quality checks done ${ms(t0)} ms after launch`;
    }
    const t1 = performance.now();
    await go("#/insights/trends");
    await find("#insight-chart canvas", 120000);
    const chart = ms(t1);
    const engine = await js("return document.querySelector('#debug-panel summary')?.textContent ?? ''");
    console.log(`big workspace run ${run}: window and session ${launched} ms; data screen painted ${data} ms after launch${quality}; trends chart ${chart} ms after navigating (${data + chart} ms after launch) ${engine}`);
    await stopApp();
  }
}

if (HEAVY) {
  await startApp(APP, HEAVY);
  await go("#/persons");
  await find("#person-search");
  const t0 = performance.now();
  await click(await find("#person-results a.person-link", 60000));
  await find("#timeline .tl-row.selected", 60000);
  const open = ms(t0);
  const timing = await textOf("#timeline-timing");
  const total = await js("return document.querySelector('#timeline')?.scrollHeight ?? 0");
  console.log(`heavy person: click to selected timeline row ${open} ms (WebDriver round trips included); ${timing}; scroll height ${total} px`);
  // Frame times: idle (the baseline of this display), wheel-speed scrolling (90 px, 3 rows,
  // per frame) and a fling across the whole timeline (about 550 rows per frame, a new page
  // every frame), 3 s each.
  for (const [what, step] of [["idle", 0], ["wheel-speed scroll", 90], ["fling across the whole timeline", -1]]) {
    const r = await frames(step);
    console.log(`heavy person ${what}: ${r.frames} frames in ${r.elapsed} ms, frame p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(1)} ms; rows in the DOM ${r.rowsMin}–${r.rowsMax}; last row shown ${r.lastIndex}`);
  }
  // Keyboard: 200 steps with j.
  const t2 = performance.now();
  await type(await find("#timeline"), "j".repeat(200));
  const idx = await js("return Number(document.querySelector('#timeline .tl-row.selected')?.dataset.index ?? -1)");
  console.log(`200 j presses: ${ms(t2)} ms (one WebDriver call), selected row ${idx}`);
  await stopApp();
}

/** Scroll the timeline by `step` px per animation frame (-1: the whole timeline in 180
 *  frames; 0: no scrolling) for 3 s and report the frame times. */
async function frames(step) {
  return js(`
    const vp = document.querySelector('#timeline');
    const step = arguments[0] < 0 ? Math.max(1, (vp.scrollHeight - vp.clientHeight) / 180) : arguments[0];
    vp.scrollTop = 0;
    return new Promise((resolve) => {
      const times = []; const rows = [];
      const start = performance.now(); let last = start;
      const tick = (t) => {
        times.push(t - last); last = t;
        if (step > 0) vp.scrollTop = Math.min(vp.scrollHeight, vp.scrollTop + step);
        rows.push(vp.querySelectorAll('.tl-row').length);
        if (t - start < 3000 && (step === 0 || vp.scrollTop + vp.clientHeight < vp.scrollHeight)) requestAnimationFrame(tick);
        else {
          const s = times.slice(1).sort((a, b) => a - b);
          const at = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
          const idx = [...vp.querySelectorAll('.tl-row')].map((r) => Number(r.dataset.index)).reduce((a, b) => Math.max(a, b), -1);
          resolve({ frames: times.length, elapsed: Math.round(t - start), p50: at(0.5), p95: at(0.95), max: s[s.length - 1] ?? 0, rowsMin: Math.min(...rows), rowsMax: Math.max(...rows), lastIndex: idx });
        }
      };
      requestAnimationFrame(tick);
    });`, [step]);
}
