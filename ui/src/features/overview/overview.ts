// The workspace overview: headline numbers, events by vendor, top events, quarantine
// reasons and the import log.
import { displayTimeZone, el, fileName, fmtBytes, fmtDay, fmtInt, fmtTime } from "../../components/dom";
import type { ImportRow, WorkspaceInfo } from "../../lib/ipc/types";

function stat(label: string, value: string, hint?: string, compact = false): HTMLElement {
  return el(
    "div",
    { class: "stat" },
    el("div", { class: compact ? "stat-value compact" : "stat-value" }, value),
    el("div", { class: "stat-label" }, label),
    hint ? el("div", { class: "stat-hint" }, hint) : null,
  );
}

function statusBadge(status: string): HTMLElement {
  return el("span", { class: `badge badge-${status}` }, status);
}

function bars(rows: { label: string; value: number }[], total: number): HTMLElement {
  const list = el("div", { class: "bars" });
  for (const r of rows) {
    const pct = total > 0 ? (100 * r.value) / total : 0;
    const fill = el("div", { class: "bar-fill" });
    fill.style.width = `${Math.max(pct, 0.5).toFixed(1)}%`;
    list.append(
      el(
        "div",
        { class: "bar-row" },
        el("div", { class: "bar-label", title: r.label }, r.label),
        el("div", { class: "bar-track" }, fill),
        el("div", { class: "bar-value" }, fmtInt(r.value)),
      ),
    );
  }
  return list;
}

function importsTable(rows: ImportRow[]): HTMLElement {
  const head = el(
    "tr",
    {},
    ...["#", "File", "Vendor", "Format", "Size", "Read", "Loaded", "Duplicates", "Quarantined", "Status", "Finished"].map(
      (h) => el("th", {}, h),
    ),
  );
  const body = el("tbody");
  for (const r of rows) {
    const fmt = [r.container, r.compression && r.compression !== "none" ? r.compression : null]
      .filter(Boolean)
      .join(" · ");
    const tr = el(
      "tr",
      { "data-import-id": String(r.importId) },
      el("td", { class: "num" }, String(r.importId)),
      el("td", { class: "file", title: r.path }, fileName(r.path)),
      el("td", {}, r.vendor ?? "—"),
      el("td", {}, fmt || "—"),
      el("td", { class: "num" }, fmtBytes(r.sizeBytes)),
      el("td", { class: "num" }, fmtInt(r.rowsRead)),
      el("td", { class: "num" }, fmtInt(r.rowsLoaded)),
      el("td", { class: "num" }, fmtInt(r.rowsDuplicate)),
      el("td", { class: r.rowsQuarantined > 0 ? "num warn" : "num" }, fmtInt(r.rowsQuarantined)),
      el("td", {}, statusBadge(r.status)),
      el("td", { class: "nowrap small" }, fmtTime(r.finishedAt)),
    );
    body.append(tr);
    if (r.message) {
      body.append(el("tr", { class: "msg-row" }, el("td", {}, ""), el("td", { colspan: "10", class: "msg" }, r.message)));
    }
  }
  return el("table", { class: "grid", id: "imports-table" }, el("thead", {}, head), body);
}

export function renderOverview(info: WorkspaceInfo): HTMLElement {
  const range =
    info.firstEvent && info.lastEvent
      ? `${fmtDay(info.firstEvent)} → ${fmtDay(info.lastEvent)}`
      : "no events yet";
  const stats = el(
    "section",
    { class: "stats" },
    stat("Events", fmtInt(info.totalEvents)),
    stat("Distinct ids", fmtInt(info.distinctIds)),
    stat("Identity links", fmtInt(info.identityLinks)),
    stat("Quarantined rows", fmtInt(info.quarantined), info.quarantined > 0 ? "kept with their reasons" : undefined),
    stat(`Date range (${displayTimeZone()})`, range, undefined, true),
  );

  const vendors = el(
    "section",
    { class: "card" },
    el("h2", {}, "Events by vendor"),
    info.byVendor.length
      ? bars(
          info.byVendor.map((v) => ({ label: v.vendor, value: v.events })),
          info.totalEvents,
        )
      : el("p", { class: "empty" }, "No events imported yet."),
  );
  const top = el(
    "section",
    { class: "card" },
    el("h2", {}, "Top events"),
    info.topEvents.length
      ? bars(
          info.topEvents.map((e) => ({ label: e.eventName, value: e.events })),
          info.topEvents[0]?.events ?? 0,
        )
      : el("p", { class: "empty" }, "No events imported yet."),
  );
  const quarantine = el(
    "section",
    { class: "card" },
    el("h2", {}, "Quarantine"),
    info.quarantineReasons.length
      ? el(
          "table",
          { class: "grid compact" },
          el("thead", {}, el("tr", {}, el("th", {}, "Reason"), el("th", {}, "Rows"))),
          el(
            "tbody",
            {},
            ...info.quarantineReasons.map((q) =>
              el("tr", {}, el("td", {}, q.reason), el("td", { class: "num" }, fmtInt(q.rows))),
            ),
          ),
        )
      : el("p", { class: "empty" }, "Nothing quarantined: every row read was loaded or recognised as a duplicate."),
  );

  const imports = el(
    "section",
    { class: "card wide" },
    el("h2", {}, `Imports (${info.imports.length})`),
    info.imports.length ? importsTable(info.imports) : el("p", { class: "empty" }, "No imports yet. Use `stitchbook import`."),
  );

  return el("div", { class: "overview" }, stats, el("div", { class: "cards" }, vendors, top, quarantine), imports);
}
