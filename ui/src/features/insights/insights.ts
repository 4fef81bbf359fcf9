// The insights screen: a builder on the left, the chart and its numbers on the right, the
// persons behind any clicked number in a drawer, save/load, export and a debug panel.
import { button, csv, el, emptyState, errorBox, fmtInt, loading } from "../../components/dom";
import { mountChart } from "../../components/chart";
import { personsCsv, personsTable } from "../../components/persons";
import { errorMessage, type Backend } from "../../lib/ipc/client";
import { go, link } from "../../lib/router";
import type { CatalogEvent, Query, WorkspaceInfo } from "../../lib/ipc/types";
import { commonFields, defaultQuery, eventDatalist, kindFields, KINDS, type Kind, type Vocabulary } from "./builder";
import { asOfLine, render } from "./results";
import { cohortsScreen } from "./cohorts";
import { problem } from "../../lib/jobs";

/** One query per kind, kept while the app runs so switching tabs keeps the builder. */
const drafts = new Map<Kind, Query>();

/** Event names and the data's first/last day: a scan of every event, so kept per workspace
 *  until an import or rebuild changes the data ([`forgetVocabulary`]). */
let catalogCache: { workspace: string; events: string[]; firstDay: string | null; lastDay: string | null } | null = null;

export function forgetVocabulary(): void {
  catalogCache = null;
}

/** Keep what the data screen just read, so the first insight does not read it again. */
export function rememberVocabulary(workspace: string, events: CatalogEvent[], info: WorkspaceInfo): NonNullable<typeof catalogCache> {
  catalogCache = {
    workspace,
    events: events.map((e) => e.name),
    lastDay: info.lastEvent ? info.lastEvent.slice(0, 10) : null,
    firstDay: info.firstEvent ? info.firstEvent.slice(0, 10) : null,
  };
  return catalogCache;
}

export async function vocabulary(backend: Backend): Promise<Vocabulary> {
  const workspace = (await backend.currentWorkspace()) ?? "";
  let cache = catalogCache;
  if (!cache || cache.workspace !== workspace) {
    const [events, info] = await Promise.all([backend.catalogEvents(), backend.workspaceSummary()]);
    cache = rememberVocabulary(workspace, events, info);
  }
  const cohorts = await backend.cohorts();
  return { events: cache.events, cohorts: cohorts.map((c) => c.name), lastDay: cache.lastDay, firstDay: cache.firstDay };
}

export async function insightsScreen(backend: Backend, kind: string, params: URLSearchParams): Promise<HTMLElement> {
  const tabs = el(
    "nav",
    { class: "tabs" },
    ...[...KINDS, { kind: "cohorts", label: "Cohorts" }].map((k) =>
      el("a", { href: link(["insights", k.kind]), class: k.kind === kind ? "tab active" : "tab", id: `tab-${k.kind}` }, k.label),
    ),
  );
  const v = await vocabulary(backend);
  if (kind === "cohorts") {
    return el("div", { class: "insights" }, tabs, await cohortsScreen(backend, v));
  }
  const known = KINDS.find((k) => k.kind === kind);
  if (!known) return el("div", {}, tabs, errorBox(`There is no insight called “${kind}”.`));
  const saved = params.get("saved");
  let q: Query = drafts.get(known.kind) ?? defaultQuery(known.kind, v);
  if (saved) {
    const all = await backend.savedInsights();
    const hit = all.find((s) => s.name === saved);
    if (hit && hit.query.kind === known.kind) q = structuredClone(hit.query);
  }
  drafts.set(known.kind, q);
  return el("div", { class: "insights" }, tabs, insightView(backend, q, v, saved));
}

function insightView(backend: Backend, q: Query, v: Vocabulary, savedName: string | null): HTMLElement {
  const form = el("div", { class: "builder-form" });
  const result = el("section", { class: "result", id: "insight-result" });
  const drawer = el("aside", { class: "drawer", id: "drill-drawer", hidden: "" });
  const title = KINDS.find((k) => k.kind === q.kind)?.label ?? q.kind;
  let lastNow = Date.now();

  const markDirty = (): void => {
    runBtn.classList.add("btn-primary-pulse");
  };
  const redraw = (): void => {
    form.replaceChildren(eventDatalist(v), kindFields(q, v, markDirty, redraw), commonFields(q, v, markDirty));
    markDirty();
  };

  const openDrill = async (cell: string): Promise<void> => {
    drawer.hidden = false;
    drawer.replaceChildren(el("div", { class: "drawer-head" }, el("h3", {}, "Persons"), button("Close", () => (drawer.hidden = true), { class: "btn-icon" })), loading());
    try {
      const persons = await backend.drill(q, lastNow, cell);
      drawer.replaceChildren(
        el("div", { class: "drawer-head" }, el("h3", {}, `${fmtInt(persons.length)} persons`), el("span", { class: "muted" }, describeCell(q, cell)), button("Close", () => (drawer.hidden = true), { class: "btn-icon" })),
        persons.length > 0 ? personsTable(persons, "drill-persons") : emptyState("Nobody here", "No person is behind this number."),
        button("Export CSV", () => {
          void backend.saveTextFile(`${q.kind}_${cell.replace(/[^\w-]+/g, "_")}_persons.csv`, personsCsv(persons));
        }),
      );
    } catch (e) {
      drawer.replaceChildren(problem(e));
    }
  };

  const run = async (): Promise<void> => {
    runBtn.classList.remove("btn-primary-pulse");
    lastNow = Date.now();
    result.replaceChildren(loading("Computing…"));
    const started = performance.now();
    try {
      const r = await backend.runInsight(q, lastNow);
      const roundTrip = performance.now() - started;
      const out = render(r, q, (cell) => void openDrill(cell));
      const chartHost = el("div", { class: "chart", id: "insight-chart" });
      const debug = el("details", { class: "debug", id: "debug-panel" },
        el("summary", {}, `SQL and timing — engine ${out.millis.toFixed(1)} ms, round trip ${roundTrip.toFixed(0)} ms`),
        el("pre", { class: "sql" }, out.sql),
        el("pre", { class: "sql" }, JSON.stringify(q, null, 2)));
      const actions = el("div", { class: "result-actions" },
        button("Export PNG", () => void exportChart("png")),
        button("Export SVG", () => void exportChart("svg")),
        button("Export CSV", () => void backend.saveTextFile(`${q.kind}.csv`, csv(out.csv)).then((p) => p && toast(`Saved ${p}`))),
      );
      result.replaceChildren(
        el("div", { class: "result-head" }, el("h2", {}, savedName ?? title), actions),
        asOfLine(r.asOf, r.warnings),
        ...out.notes.map((n) => el("div", { class: "note" }, n)),
        chartHost,
      );
      if (out.second) {
        const host2 = el("div", { class: "chart chart-small", id: "insight-chart-2" });
        result.append(el("h3", {}, out.second.title), host2);
        requestAnimationFrame(() => mountChart(host2, out.second!.option));
      }
      result.append(el("h3", {}, "Numbers"), el("p", { class: "muted" }, "Click a number or a chart point to see the persons behind it."), out.table, debug);
      requestAnimationFrame(() => mountChart(chartHost, out.option, (cell) => void openDrill(cell)));
    } catch (e) {
      result.replaceChildren(problem(e));
    }
  };

  const exportChart = async (format: "png" | "svg"): Promise<void> => {
    try {
      const p = await backend.exportChart(q, lastNow, savedName ?? title, format);
      if (p) toast(`Saved ${p}`);
    } catch (e) {
      toast(errorMessage(e), true);
    }
  };

  const save = async (): Promise<void> => {
    const name = nameInput.value.trim();
    if (!name) {
      toast("Give the insight a name first", true);
      return;
    }
    try {
      await backend.saveInsight(name, q, Date.now());
      toast(`Saved “${name}”`);
      void refreshSaved();
    } catch (e) {
      toast(errorMessage(e), true);
    }
  };

  const savedKinds = new Map<string, Kind>();
  const savedSelect = el("select", { id: "saved-insights" }, el("option", { value: "" }, "Open saved…"));
  savedSelect.addEventListener("change", () => {
    const kind = savedKinds.get(savedSelect.value);
    if (kind) go(["insights", kind], { saved: savedSelect.value });
  });
  const refreshSaved = async (): Promise<void> => {
    const all = await backend.savedInsights();
    savedKinds.clear();
    savedSelect.replaceChildren(el("option", { value: "" }, all.length ? "Open saved…" : "No saved insights"));
    for (const s of all) {
      savedKinds.set(s.name, s.query.kind);
      savedSelect.append(el("option", { value: s.name }, `${s.name} (${s.query.kind})`));
    }
  };
  void refreshSaved();

  const nameInput = el("input", { type: "text", placeholder: "Name", id: "save-name" });
  if (savedName) nameInput.value = savedName;
  const runBtn = button("Run", () => void run(), { class: "btn btn-primary", id: "run-insight" });
  const side = el("div", { class: "builder" },
    el("div", { class: "builder-actions" }, runBtn, savedSelect),
    form,
    el("div", { class: "save-row" }, nameInput, button("Save", () => void save(), { id: "save-insight" })),
  );
  redraw();
  void run();
  return el("div", { class: "insight-layout" }, side, result, drawer);
}

export function toast(message: string, error = false): void {
  const t = el("div", { class: error ? "toast toast-error" : "toast", role: "status" }, message);
  document.body.append(t);
  setTimeout(() => t.remove(), 4000);
}

/** What a drill cell means, in words. */
function describeCell(q: Query, cell: string): string {
  const [point, value] = cell.split("@", 2);
  const by = value !== undefined ? ` · ${value}` : "";
  const p = point ?? "";
  switch (q.kind) {
    case "funnel": {
      const m = /^period:(\d+):(\w+)$/.exec(p);
      if (m) return `entry period ${Number(m[1]) + 1}: ${m[2]}${by}`;
      const n = Number(p);
      return n < 0 ? `dropped off before step ${-n}${by}` : `reached step ${n}${by}`;
    }
    case "retention": {
      const [c, k] = p.split(":");
      return `cohort ${Number(c) + 1}, period ${k}${by}`;
    }
    case "trends": {
      const [s, i] = p.split(":");
      return `series ${String.fromCharCode(65 + Number(s))}, period ${Number(i) + 1}${by}`;
    }
    case "stickiness":
      return `active in ${p} period(s)`;
    case "lifecycle": {
      const [i, st] = p.split(":");
      return `${st} in period ${Number(i) + 1}`;
    }
    case "paths":
      return p.replace(/(^|>)\d+_/g, "$1").replace(">", " → ");
  }
}
