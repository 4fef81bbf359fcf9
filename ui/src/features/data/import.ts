// The import wizard: pick files or a folder, see what each file was detected as and its first
// rows mapped to the canonical columns, map generic files by hand, then import with progress
// and Cancel, and read each file's outcome (with its quarantined rows).
import { button, el, errorBox, fileName, fmtBytes, fmtInt, loading, table } from "../../components/dom";
import { errorMessage, type Backend } from "../../lib/ipc/client";
import type { ColumnMapping, FilePreview, ImportChoice, ImportReport } from "../../lib/ipc/types";
import { forgetVocabulary } from "../insights/insights";
import { problem, runJob } from "../../lib/jobs";

const FORMATS: [string, string][] = [
  ["", "Detect automatically"],
  ["posthog", "PostHog"],
  ["amplitude", "Amplitude"],
  ["mixpanel", "Mixpanel"],
  ["segment", "Segment"],
  ["rudderstack", "RudderStack"],
  ["snowplow", "Snowplow"],
  ["ga4", "Google Analytics 4"],
];

const TS_FORMATS: [string, string][] = [
  ["iso8601", "ISO 8601 (2024-03-01T10:00:00Z)"],
  ["epoch_s", "Seconds since 1970"],
  ["epoch_ms", "Milliseconds since 1970"],
  ["epoch_us", "Microseconds since 1970"],
];

/** The mapping form's fields: [key, label, required, name patterns used to guess]. */
const FIELDS: [keyof ColumnMapping, string, boolean, RegExp][] = [
  ["event", "Event name", true, /^(event|event_?name|action|name|type)$/i],
  ["timestamp", "Time", true, /^(timestamp|time|ts|when|date|event_?time|created_?at)$/i],
  ["user_id", "User id", false, /^(user_?id|user|uid|customer_?id|who)$/i],
  ["anon_id", "Anonymous / device id", false, /^(anon(ymous)?_?id|device_?id|device|cookie_?id)$/i],
  ["distinct_id", "Distinct id", false, /^distinct_?id$/i],
  ["session_id", "Session id", false, /^session(_?id)?$/i],
  ["event_id", "Event id (dedupe key)", false, /^(event_?id|uuid|message_?id|insert_?id|id)$/i],
];

/** A first mapping guessed from the column names; the user confirms or changes it. */
export function guessMapping(columns: string[]): ColumnMapping {
  const used = new Set<string>();
  const pick = (re: RegExp): string | null => {
    const c = columns.find((c) => re.test(c.trim()) && !used.has(c)) ?? null;
    if (c) used.add(c);
    return c;
  };
  const m: ColumnMapping = { event: "", timestamp: "", timestamp_format: "iso8601", user_id: null, anon_id: null, session_id: null, distinct_id: null, event_id: null };
  for (const [key, , , re] of FIELDS) {
    const c = pick(re);
    if (key === "event" || key === "timestamp") m[key] = c ?? "";
    else (m as unknown as Record<string, string | null>)[key] = c;
  }
  return m;
}

function describe(p: FilePreview): string {
  const parts = [p.vendor && p.vendor !== "generic" ? p.vendor : p.vendor === "generic" ? "generic (mapped)" : "not recognised"];
  if (p.kind && p.kind !== "events") parts.push(p.kind.replace(/_/g, " "));
  if (p.container) parts.push(p.container + (p.compression && p.compression !== "none" ? ` (${p.compression})` : ""));
  if (p.target && p.target !== "events") parts.push(`→ ${p.target}`);
  return parts.join(" · ");
}

/** One picked file in the wizard: its detection, options and preview. */
interface FileState {
  index: number;
  preview: FilePreview;
  include: boolean;
  format: string;
  mapping: ColumnMapping | null;
}

export const importable = (p: FilePreview): boolean => p.problem === null;

/** The mapped preview rows as a table; rows the import would quarantine are marked. */
export function previewTable(p: FilePreview): HTMLElement {
  if (p.rows.length === 0) return el("p", { class: "muted" }, "No rows to preview.");
  const reject = p.columns.indexOf("reject_reason");
  const t = el("table", { class: "grid compact preview-table" });
  t.append(el("thead", {}, el("tr", {}, ...p.columns.map((c) => el("th", {}, c)))));
  const body = el("tbody");
  for (const r of p.rows) {
    const bad = reject >= 0 && r[reject] !== null;
    body.append(el("tr", bad ? { class: "rejected" } : {}, ...r.map((v) => {
      const s = v ?? "";
      return el("td", s.length > 60 ? { title: s } : {}, v === null ? el("span", { class: "muted" }, "null") : s.length > 60 ? `${s.slice(0, 60)}…` : s);
    })));
  }
  t.append(body);
  return el("div", { class: "table-scroll" }, t);
}

function select(options: [string, string][], value: string, attrs: Record<string, string> = {}): HTMLSelectElement {
  const s = el("select", attrs, ...options.map(([v, label]) => el("option", { value: v }, label)));
  s.value = value;
  return s;
}

/** The column mapping form for a generic file; `onChange` gets the edited mapping. */
export function mappingForm(columns: string[], m: ColumnMapping, onChange: (m: ColumnMapping) => void): HTMLElement {
  const form = el("div", { class: "mapping-form" });
  const cols: [string, string][] = columns.map((c) => [c, c]);
  for (const [key, label, required] of FIELDS) {
    const current = (m[key] as string | null) ?? "";
    const s = select(required ? [["", "Choose a column…"], ...cols] : [["", "— not in this file —"], ...cols], current, { "data-field": key });
    s.addEventListener("change", () => {
      const v = s.value;
      if (key === "event" || key === "timestamp") m[key] = v;
      else (m as unknown as Record<string, string | null>)[key] = v === "" ? null : v;
      onChange(m);
    });
    form.append(el("label", {}, el("span", {}, `${label}${required ? " *" : ""}`), s));
  }
  const custom = !TS_FORMATS.some(([v]) => v === m.timestamp_format);
  const fmt = select([...TS_FORMATS, ["custom", "Pattern (strptime)…"]], custom ? "custom" : m.timestamp_format, { "data-field": "timestamp_format" });
  const pattern = el("input", { type: "text", placeholder: "%d/%m/%Y %H:%M:%S", value: custom ? m.timestamp_format : "", class: custom ? "" : "hidden" });
  fmt.addEventListener("change", () => {
    pattern.classList.toggle("hidden", fmt.value !== "custom");
    m.timestamp_format = fmt.value === "custom" ? pattern.value || "%Y-%m-%d %H:%M:%S" : fmt.value;
    onChange(m);
  });
  pattern.addEventListener("change", () => {
    m.timestamp_format = pattern.value;
    onChange(m);
  });
  form.append(el("label", {}, el("span", {}, "Time format"), fmt, pattern));
  return form;
}

/** Import files or a folder through the wizard: the buttons, and where the wizard, the
 *  progress and the summary appear. */
export function importPanel(backend: Backend, onImported: () => void): { actions: HTMLElement; output: HTMLElement } {
  const out = el("div", { class: "import-out", id: "import-status" });
  let job: string | null = null;

  const run = async (files: FileState[]): Promise<void> => {
    const chosen = files.filter((f) => f.include);
    const choices: ImportChoice[] = chosen.map((f) => ({ index: f.index, format: f.format || null, mapping: f.mapping }));
    const bar = el("div", { class: "progress" }, el("div", { class: "progress-fill" }));
    const text = el("div", { class: "muted small", id: "import-progress" }, "Starting…");
    out.replaceChildren(el("section", { class: "card wide" }, el("h2", {}, `Importing ${chosen.length} file${chosen.length === 1 ? "" : "s"}`), bar, text, button("Cancel", () => job && void backend.cancelJob(job), { id: "cancel-import" })));
    const t0 = performance.now();
    try {
      const label = `Importing ${chosen.length} file${chosen.length === 1 ? "" : "s"}`;
      const r = await runJob(label, (id, on) => {
        job = id;
        return backend.runImport(id, choices, on);
      }, (ev) => {
        if (ev.type === "progress") {
          const pct = ev.bytesTotal > 0 ? (100 * ev.bytesDone) / ev.bytesTotal : 0;
          (bar.firstChild as HTMLElement).style.width = `${pct.toFixed(0)}%`;
          const secs = (performance.now() - t0) / 1000;
          text.textContent = `File ${ev.fileIndex + 1} of ${chosen.length}: ${fileName(ev.file)} — ${ev.phase} — ${fmtBytes(ev.bytesDone)} of ${fmtBytes(ev.bytesTotal)} · ${fmtInt(ev.rows)} rows · ${(ev.bytesDone / 1e6 / Math.max(secs, 0.001)).toFixed(1)} MB/s`;
        } else if (ev.type === "warning") {
          text.textContent = ev.message;
        }
      });
      forgetVocabulary();
      out.replaceChildren(importResult(backend, r));
      onImported();
    } catch (e) {
      out.replaceChildren(problem(e));
    } finally {
      job = null;
    }
  };

  const wizard = (previews: FilePreview[]): HTMLElement => {
    const files: FileState[] = previews.map((p, index) => ({
      index,
      preview: p,
      include: importable(p),
      format: "",
      mapping: p.needsMapping ? guessMapping(p.sourceColumns) : null,
    }));
    const go = button("", () => void run(files), { class: "btn btn-primary", id: "start-import" });
    const refresh = (): void => {
      const n = files.filter((f) => f.include).length;
      go.textContent = n === 0 ? "Nothing to import" : `Import ${n} file${n === 1 ? "" : "s"}`;
      go.disabled = n === 0;
    };
    const list = el("div", { class: "import-files" });
    for (const f of files) {
      const section = el("div", { class: "import-file" });
      const render = (): void => {
        const p = f.preview;
        const include = el("input", { type: "checkbox", class: "include-file" });
        include.checked = f.include;
        include.disabled = !importable(p);
        include.addEventListener("change", () => {
          f.include = include.checked;
          refresh();
        });
        const format = select(FORMATS, f.format, { class: "format-override", "aria-label": "Format" });
        format.addEventListener("change", () => {
          f.format = format.value;
          void again();
        });
        const head = el("div", { class: "import-file-head" },
          el("label", { class: "check" }, include, el("b", { title: p.path }, fileName(p.path))),
          el("span", { class: "muted" }, `${fmtBytes(p.sizeBytes)} · ${describe(p)}`),
          f.mapping ? null : format);
        const parts: (HTMLElement | null)[] = [head];
        if (p.problem) parts.push(errorBox(p.problem));
        if (f.mapping) {
          const m = f.mapping;
          parts.push(el("p", { class: "muted small" }, "Map this file's columns to the canonical ones. Unmapped columns are kept as event properties."));
          parts.push(mappingForm(p.sourceColumns, m, () => undefined));
          parts.push(el("div", { class: "row" },
            button("Preview with this mapping", () => void again(), { class: "btn preview-mapping" }),
            button("Not a generic file", () => { f.mapping = null; f.format = ""; void again(); })));
        } else if (p.sourceColumns.length > 0 && ["csv", "tsv", "jsonl", "parquet"].includes(p.container ?? "")) {
          parts.push(button("Map columns by hand", () => { f.mapping = guessMapping(p.sourceColumns); render(); }));
        }
        if (p.rows.length > 0) {
          parts.push(el("div", { class: "muted small" }, `First ${p.rows.length} rows as they would be loaded${p.rejected > 0 ? ` — ${p.rejected} would be quarantined (marked)` : ""}:`));
          parts.push(previewTable(p));
        } else if (p.rawSamples.length > 0) {
          parts.push(el("details", { open: "" }, el("summary", {}, `First ${p.rawSamples.length} records as read`), el("pre", { class: "mono small raw-samples" }, p.rawSamples.join("\n"))));
        }
        section.replaceChildren(...parts.filter((x): x is HTMLElement => x !== null));
      };
      const again = async (): Promise<void> => {
        section.replaceChildren(loading("Previewing…"));
        try {
          f.preview = await backend.previewImport({ index: f.index, format: f.format || null, mapping: f.mapping });
          f.include = importable(f.preview);
        } catch (e) {
          f.preview = { ...f.preview, problem: errorMessage(e), rows: [] };
          f.include = false;
        }
        render();
        refresh();
      };
      render();
      list.append(section);
    }
    refresh();
    return el("section", { class: "card wide", id: "import-wizard" },
      el("h2", {}, `Import ${files.length} file${files.length === 1 ? "" : "s"}`),
      el("p", { class: "muted small" }, "Each file is checked before anything is written. Each file is imported in one transaction: a failed or cancelled file leaves the workspace as it was."),
      list,
      el("div", { class: "row" }, go, button("Discard", () => out.replaceChildren())));
  };

  const choose = async (folder: boolean): Promise<void> => {
    out.replaceChildren(loading("Waiting for the file dialog…"));
    try {
      const previews = await backend.chooseImport(folder);
      out.replaceChildren(previews ? wizard(previews) : el("span"));
    } catch (e) {
      out.replaceChildren(problem(e));
    }
  };
  return {
    actions: el("div", { class: "row" },
      button("Import files…", () => void choose(false), { class: "btn btn-primary", id: "import-files" }),
      button("Import folder…", () => void choose(true), { id: "import-folder" })),
    output: out,
  };
}

function importResult(backend: Backend, r: ImportReport): HTMLElement {
  const quarantined = el("div", { id: "import-quarantine" });
  const rows = r.files.map((f) => [
    fileName(f.path),
    f.vendor ?? "—",
    fmtInt(f.rowsRead),
    fmtInt(f.rowsLoaded),
    fmtInt(f.rowsDuplicate),
    f.rowsQuarantined > 0 && f.importId !== null
      ? button(fmtInt(f.rowsQuarantined), () => void showQuarantine(f.importId as number, fileName(f.path)), { class: "cell-link", title: "Show the quarantined rows and their reasons" })
      : fmtInt(f.rowsQuarantined),
    f.identicalTo !== null ? `identical to import ${f.identicalTo}` : `${f.status}${f.message ? ` — ${f.message}` : ""}`,
  ]);
  const showQuarantine = async (importId: number, name: string): Promise<void> => {
    quarantined.replaceChildren(loading());
    try {
      const q = await backend.quarantineRows(importId, 500);
      quarantined.replaceChildren(el("h3", {}, `Quarantined rows of ${name}`), table(["Line", "Reason", "Raw"], q.map((x) => [String(x.sourceLine), x.reason, x.raw.slice(0, 160) + (x.truncated || x.raw.length > 160 ? "…" : "")]), { class: "grid compact" }, [0]));
    } catch (e) {
      quarantined.replaceChildren(problem(e));
    }
  };
  const totals = r.files.reduce((a, f) => [a[0] + f.rowsRead, a[1] + f.rowsLoaded, a[2] + f.rowsDuplicate, a[3] + f.rowsQuarantined], [0, 0, 0, 0]);
  const section = el("section", { class: `card wide ${r.cancelled ? "error" : ""}`, id: "import-summary" },
    el("h2", {}, r.cancelled ? "Import cancelled" : "Import finished"),
    el("p", { class: "muted" }, r.cancelled
      ? "The workspace keeps what it had before the cancelled file."
      : `${fmtInt(totals[0])} rows read: ${fmtInt(totals[1])} loaded, ${fmtInt(totals[2])} duplicates, ${fmtInt(totals[3])} quarantined.`),
    table(["File", "Vendor", "Read", "Loaded", "Duplicates", "Quarantined", "Status"], rows, { id: "import-result" }, [2, 3, 4, 5]),
    quarantined,
    button("Close", () => section.remove()));
  return section;
}
