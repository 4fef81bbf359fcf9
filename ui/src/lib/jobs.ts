// The app's running job (import, model build, PII scan, export), shown in a bar that stays on
// screen whatever page is open, with its progress and Cancel. Screens start jobs through
// `runJob`; the bar hears every progress event. Queries keep answering meanwhile (the shell
// runs them on their own connection).
import { button, el, errorBox, fmtInt } from "../components/dom";
import { errorMessage, newJobId, type Backend } from "./ipc/client";
import type { IpcError, JobEvent } from "./ipc/types";

interface Running {
  id: string;
  label: string;
  text: string;
  /** 0–100, or null while the job cannot say. */
  pct: number | null;
}

let backend: Backend | null = null;
let rerender: () => void = () => {};
let running: Running | null = null;
const listeners = new Set<() => void>();

/** Called once at start-up: the backend jobs run on, and how to redraw the current page
 *  (after a model build, so stale answers are asked again). */
export function initJobs(b: Backend, redraw: () => void): void {
  backend = b;
  rerender = redraw;
}

export function runningJob(): Readonly<Running> | null {
  return running;
}

function changed(): void {
  for (const f of listeners) f();
}

/** Describe a progress event for the bar. */
function describe(ev: JobEvent): { text: string; pct: number | null } | null {
  switch (ev.type) {
    case "progress": {
      const pct = ev.bytesTotal > 0 ? Math.min(100, (100 * ev.bytesDone) / ev.bytesTotal) : null;
      return { text: `${ev.phase}${ev.rows > 0 ? ` — ${fmtInt(ev.rows)} rows` : ""}`, pct };
    }
    case "warning":
      return { text: ev.message, pct: running?.pct ?? null };
    default:
      return null;
  }
}

/** Run a job under the bar: `start` gets the job id and the event sink to pass to the
 *  backend; `onEvent` (optional) also hears every event, for a screen's own display. */
export async function runJob<T>(
  label: string,
  start: (jobId: string, onEvent: (e: JobEvent) => void) => Promise<T>,
  onEvent?: (e: JobEvent) => void,
): Promise<T> {
  const id = newJobId();
  running = { id, label, text: "starting…", pct: null };
  changed();
  try {
    return await start(id, (ev) => {
      const d = describe(ev);
      if (d && running && running.id === id) {
        running = { ...running, ...d };
        changed();
      }
      onEvent?.(ev);
    });
  } finally {
    if (running?.id === id) running = null;
    changed();
  }
}

export async function cancelRunning(): Promise<void> {
  if (running && backend) await backend.cancelJob(running.id);
}

/** The bar: hidden while no job runs. One element for the app's life, moved into each
 *  page's frame. */
let bar: HTMLElement | null = null;
export function jobBar(): HTMLElement {
  if (bar) return bar;
  const label = el("strong", { id: "job-label" });
  const text = el("span", { class: "muted small", id: "job-text" });
  const fill = el("div", { class: "progress-fill" });
  const track = el("div", { class: "progress" }, fill);
  const cancel = button("Cancel", () => void cancelRunning(), { id: "job-cancel", class: "btn btn-small" });
  const node = el("div", { id: "job-bar", class: "job-bar", role: "status", hidden: "" }, label, track, text, cancel);
  const draw = (): void => {
    node.hidden = running === null;
    if (!running) return;
    label.textContent = running.label;
    text.textContent = running.text;
    track.classList.toggle("indeterminate", running.pct === null);
    fill.style.width = running.pct === null ? "" : `${running.pct.toFixed(0)}%`;
  };
  listeners.add(draw);
  draw();
  bar = node;
  return node;
}

function isIpcError(e: unknown): e is IpcError {
  return !!e && typeof e === "object" && "code" in e && "message" in e;
}

/** Whether an error says the model needs building before the query can run. */
export function isStaleModel(e: unknown): boolean {
  return isIpcError(e) && e.code === "staleModel";
}

/** Bring the model up to date as a visible job, then redraw the page. */
export async function updateModel(): Promise<void> {
  const b = backend;
  if (!b) return;
  await runJob("Updating persons and sessions", (id, on) => b.updateModel(id, on));
  rerender();
}

/** How a screen shows a failed call: the message, and for a stale model the reason with a
 *  button that builds it (as a job under the bar; the page is redrawn after). */
export function problem(e: unknown): HTMLElement {
  if (!isStaleModel(e)) return errorBox(errorMessage(e));
  const status = el("div", { class: "muted small" });
  const busy = running !== null;
  const go = button(busy ? "Wait for the running job…" : "Update the model", async () => {
    go.setAttribute("disabled", "");
    try {
      await updateModel();
    } catch (err) {
      status.replaceChildren(errorBox(errorMessage(err)));
      go.removeAttribute("disabled");
    }
  }, { class: "btn btn-primary", id: "update-model" });
  if (busy) {
    go.setAttribute("disabled", "");
    // When the running job ends, ask again: an import brings the model up to date itself.
    const f = (): void => {
      if (!go.isConnected || running === null) listeners.delete(f);
      if (running === null && go.isConnected) rerender();
    };
    listeners.add(f);
  }
  return el(
    "div",
    { class: "stale", role: "alert", id: "stale-model" },
    el("strong", {}, "Persons and sessions are out of date. "),
    (e as IpcError).message,
    " Updating them runs as a job; other pages keep working meanwhile.",
    el("div", { class: "row" }, go),
    status,
  );
}
