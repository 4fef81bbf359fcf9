// The data overview: the import summary, the event catalog with each event's properties,
// the data-quality panel and the quarantined rows with their reasons.
import { button, el, emptyState, fmtInt, fmtPct, fmtTime, loading, table } from "../../components/dom";
import type { Backend } from "../../lib/ipc/client";
import { rememberVocabulary } from "../insights/insights";
import { renderOverview } from "../overview/overview";
import { importPanel } from "./import";
import { problem } from "../../lib/jobs";

export async function dataScreen(backend: Backend): Promise<HTMLElement> {
  const body = el("div", { class: "page-body" }, ...(await dataBody(backend)));
  // After an import the overview below the summary is read again; the summary stays.
  const refresh = async (): Promise<void> => {
    try {
      body.replaceChildren(...(await dataBody(backend)));
    } catch (e) {
      body.replaceChildren(problem(e));
    }
  };
  const imports = importPanel(backend, () => void refresh());
  return el(
    "div",
    { class: "page" },
    el("div", { class: "result-head" }, el("h1", {}, "Data"), imports.actions),
    imports.output,
    body,
  );
}

/** The overview, the quality panel, the event catalog with properties and the quarantine. */
async function dataBody(backend: Backend): Promise<HTMLElement[]> {
  const [info, events, workspace] = await Promise.all([backend.workspaceSummary(), backend.catalogEvents(), backend.currentWorkspace()]);
  rememberVocabulary(workspace ?? "", events, info);
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
      props.replaceChildren(problem(e));
    }
  };
  const catalog = el("table", { class: "grid", id: "event-catalog" });
  catalog.append(el("thead", {}, el("tr", {}, ...["Event", "Events", "Persons", "% of persons", "First seen", "Last seen", "Vendors"].map((h, i) => el("th", i > 0 && i < 4 ? { class: "num" } : {}, h)))));
  const body = el("tbody");
  for (const e of events) {
    const name = el("button", { class: "cell-link", type: "button", "data-event": e.name }, e.name);
    name.addEventListener("click", () => void showProps(e.name));
    body.append(el("tr", {}, el("td", {}, name), el("td", { class: "num" }, fmtInt(e.events)), el("td", { class: "num" }, fmtInt(e.persons)), el("td", { class: "num" }, fmtPct(e.personShare)), el("td", { class: "nowrap" }, fmtTime(e.firstSeen)), el("td", { class: "nowrap" }, fmtTime(e.lastSeen)), el("td", {}, e.vendors.join(", "))));
  }
  catalog.append(body);

  // The quality checks read every event's properties: on large workspaces they take seconds,
  // so the rest of the screen does not wait for them.
  const qualityBody = el("div", {}, loading("Checking data quality…"));
  const qualityCard = el("section", { class: "card wide", id: "quality-panel" }, el("h2", {}, "Data quality"), qualityBody);
  void backend.qualityIssues().then(
    (quality) => qualityBody.replaceChildren(quality.length
      ? el("ul", { class: "quality" }, ...quality.map((q) => el("li", { class: `quality-${q.severity}`, "data-kind": q.kind }, el("b", {}, q.title), el("div", { class: "muted" }, q.detail), q.items.length ? el("div", { class: "mono small" }, q.items.slice(0, 12).join(" · ")) : null)))
      : el("p", { class: "muted" }, "No naming collisions, mixed types, duplicates, clock skew or shared devices found.")),
    (e) => qualityBody.replaceChildren(problem(e)),
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
        qBody.replaceChildren(problem(e));
      }
    }, { id: "show-quarantine" }));
  }
  quarantine.append(qBody);

  return [
    renderOverview(info),
    qualityCard,
    el("section", { class: "card wide" }, el("h2", {}, `Event catalog (${events.length})`), el("div", { class: "table-scroll" }, catalog)),
    props,
    quarantine,
  ];
}
