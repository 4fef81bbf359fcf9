// The data overview: the import summary, the event catalog with each event's properties,
// the data-quality panel and the quarantined rows with their reasons.
import { button, el, emptyState, errorBox, fmtBytes, fmtInt, fmtPct, fmtTime, loading, table } from "../../components/dom";
import { errorMessage, newJobId, type Backend } from "../../lib/ipc/client";
import type { ImportReport } from "../../lib/ipc/types";
import { forgetVocabulary } from "../insights/insights";
import { renderOverview } from "../overview/overview";

export async function dataScreen(backend: Backend): Promise<HTMLElement> {
  const [info, events, quality] = await Promise.all([backend.workspaceSummary(), backend.catalogEvents(), backend.qualityIssues()]);
  const props = el("section", { class: "card wide", id: "event-properties-card" }, emptyState("Pick an event", "Its properties, observed types, fill rate and examples appear here."));
  const showProps = async (name: string): Promise<void> => {
    props.replaceChildren(loading());
    try {
      const p = await backend.eventProperties(name);
      props.replaceChildren(
        el("h2", {}, `Properties of ${p.event}`),
        el("p", { class: "muted" }, p.sampled < p.total ? `Read from the latest ${fmtInt(p.sampled)} of ${fmtInt(p.total)} events.` : `Read from all ${fmtInt(p.total)} events.`),
        table(["Property", "Types", "Fill rate", "Examples"], p.properties.map((s) => [
          s.key,
          s.types.map(([t, n]) => `${t.toLowerCase()} (${fmtInt(n)})`).join(", "),
          fmtPct(s.fillRate),
          s.examples.join(" · "),
        ]), { id: "property-table" }, [2]),
      );
    } catch (e) {
      props.replaceChildren(errorBox(errorMessage(e)));
    }
  };
  const catalog = el("table", { class: "grid", id: "event-catalog" });
  catalog.append(el("thead", {}, el("tr", {}, ...["Event", "Events", "Persons", "% of persons", "First seen", "Last seen", "Vendors"].map((h, i) => el("th", i > 0 && i < 4 ? { class: "num" } : {}, h)))));
  const body = el("tbody");
  for (const e of events) {
    const name = el("button", { class: "cell-link", type: "button", "data-event": e.name }, e.name);
    name.addEventListener("click", () => void showProps(e.name));
    body.append(el("tr", {}, el("td", {}, name), el("td", { class: "num" }, fmtInt(e.events)), el("td", { class: "num" }, fmtInt(e.persons)), el("td", { class: "num" }, fmtPct(e.personShare)), el("td", {}, fmtTime(e.firstSeen)), el("td", {}, fmtTime(e.lastSeen)), el("td", {}, e.vendors.join(", "))));
  }
  catalog.append(body);

  const qualityCard = el(
    "section",
    { class: "card wide", id: "quality-panel" },
    el("h2", {}, "Data quality"),
    quality.length
      ? el("ul", { class: "quality" }, ...quality.map((q) => el("li", { class: `quality-${q.severity}`, "data-kind": q.kind }, el("b", {}, q.title), el("div", { class: "muted" }, q.detail), q.items.length ? el("div", { class: "mono small" }, q.items.slice(0, 12).join(" · ")) : null)))
      : el("p", { class: "muted" }, "No naming collisions, mixed types, duplicates, clock skew or shared devices found."),
  );

  const quarantine = el("section", { class: "card wide", id: "quarantine-card" }, el("h2", {}, "Quarantined rows"));
  const qBody = el("div", {}, el("p", { class: "muted" }, `${fmtInt(info.quarantined)} rows could not be loaded; each is kept with its file, line and reason.`));
  if (info.quarantined > 0) {
    qBody.append(button("Show quarantined rows", async () => {
      qBody.replaceChildren(loading());
      try {
        const rows = await backend.quarantineRows(null, 500);
        qBody.replaceChildren(table(["Import", "File", "Line", "Reason", "Raw"], rows.map((r) => [String(r.importId), r.sourceFile.split(/[\\/]/).pop() ?? r.sourceFile, String(r.sourceLine), r.reason, r.raw.slice(0, 160) + (r.truncated || r.raw.length > 160 ? "…" : "")]), { id: "quarantine-table" }, [0, 2]));
      } catch (e) {
        qBody.replaceChildren(errorBox(errorMessage(e)));
      }
    }, { id: "show-quarantine" }));
  }
  quarantine.append(qBody);

  return el(
    "div",
    { class: "page" },
    el("div", { class: "result-head" }, el("h1", {}, "Data"), importPanel(backend)),
    renderOverview(info),
    qualityCard,
    el("section", { class: "card wide" }, el("h2", {}, `Event catalog (${events.length})`), el("div", { class: "table-scroll" }, catalog)),
    props,
    quarantine,
  );
}

/** Import files or a folder: native picker, progress (file, phase, bytes, rows, MB/s),
 *  Cancel, and each file's outcome. */
function importPanel(backend: Backend): HTMLElement {
  const out = el("div", { class: "import-out", id: "import-status" });
  let job: string | null = null;
  const start = async (folder: boolean): Promise<void> => {
    job = newJobId();
    const bar = el("div", { class: "progress" }, el("div", { class: "progress-fill" }));
    const text = el("div", { class: "muted small" }, "Waiting for the file dialog…");
    out.replaceChildren(bar, text, button("Cancel", () => job && void backend.cancelJob(job), { id: "cancel-import" }));
    const t0 = performance.now();
    try {
      const r = await backend.importFiles(job, folder, (ev) => {
        if (ev.type === "progress") {
          const pct = ev.bytesTotal > 0 ? (100 * ev.bytesDone) / ev.bytesTotal : 0;
          (bar.firstChild as HTMLElement).style.width = `${pct.toFixed(0)}%`;
          const secs = (performance.now() - t0) / 1000;
          text.textContent = `File ${ev.fileIndex + 1}: ${ev.file.split(/[\\/]/).pop()} — ${ev.phase} — ${fmtBytes(ev.bytesDone)} of ${fmtBytes(ev.bytesTotal)} · ${fmtInt(ev.rows)} rows · ${(ev.bytesDone / 1e6 / Math.max(secs, 0.001)).toFixed(1)} MB/s`;
        } else if (ev.type === "warning") {
          text.textContent = ev.message;
        }
      });
      if (r) forgetVocabulary();
      out.replaceChildren(r ? importResult(r) : el("span"));
    } catch (e) {
      out.replaceChildren(errorBox(errorMessage(e)));
    } finally {
      job = null;
    }
  };
  return el("div", { class: "import-panel" },
    el("div", { class: "row" },
      button("Import files…", () => void start(false), { class: "btn btn-primary", id: "import-files" }),
      button("Import folder…", () => void start(true), { id: "import-folder" })),
    out);
}

function importResult(r: ImportReport): HTMLElement {
  return el("div", { class: r.cancelled ? "error" : "note" },
    el("b", {}, r.cancelled ? "Import cancelled — the workspace keeps what it had before the cancelled file." : "Import finished"),
    table(["File", "Vendor", "Read", "Loaded", "Duplicates", "Quarantined", "Status"], r.files.map((f) => [
      f.path.split(/[\\/]/).pop() ?? f.path,
      f.vendor ?? "—",
      fmtInt(f.rowsRead),
      fmtInt(f.rowsLoaded),
      fmtInt(f.rowsDuplicate),
      fmtInt(f.rowsQuarantined),
      f.identicalTo !== null ? `identical to import ${f.identicalTo}` : `${f.status}${f.message ? ` — ${f.message}` : ""}`,
    ]), { id: "import-result" }, [2, 3, 4, 5]),
    button("Refresh the overview", () => window.dispatchEvent(new HashChangeEvent("hashchange"))));
}
