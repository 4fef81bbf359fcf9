// The compliance reviewer's screen: scan, the findings (masked samples only) with filters,
// review decisions, the verified redacted export and the audit report.
import { button, el, emptyState, errorBox, fmtInt, fmtPct, fmtTime, loading } from "../../components/dom";
import { errorMessage, newJobId, type Backend } from "../../lib/ipc/client";
import type { ExportFormat, ExportReport, RedactAction, ReviewedFinding, ReviewStatus } from "../../lib/ipc/types";

const STATUS: [ReviewStatus, string][] = [["expected", "Expected"], ["needs_redaction", "Needs redaction"], ["false_positive", "False positive"]];

function statusOf(f: ReviewedFinding): string {
  if (!f.review) return "unreviewed";
  return f.needsReview ? "changed" : f.review.status;
}

export async function piiScreen(backend: Backend): Promise<HTMLElement> {
  const info = await backend.piiScanInfo();
  const status = el("div", { id: "pii-status" });
  const body = el("div", { id: "pii-body" });
  const filters = { severity: "", detector: "", status: "" };
  let all: ReviewedFinding[] = [];
  const reviewer = el("input", { type: "text", id: "pii-reviewer", placeholder: "Your name" });
  reviewer.value = localStorage.getItem("reviewer") ?? "";
  reviewer.addEventListener("change", () => localStorage.setItem("reviewer", reviewer.value.trim()));

  const draw = (): void => {
    const rows = all.filter((f) => (!filters.severity || f.severity === filters.severity) && (!filters.detector || f.detector === filters.detector) && (!filters.status || statusOf(f) === filters.status));
    if (all.length === 0) {
      body.replaceChildren(emptyState(info ? "No personal data found" : "Not scanned yet", info ? "The last scan found nothing." : "Scan the workspace to list its personal data."));
      return;
    }
    const t = el("table", { class: "grid", id: "pii-findings" });
    t.append(el("thead", {}, el("tr", {}, ...["Field", "Detector", "Severity", "Hits", "% events", "% persons", "Where", "Samples (masked)", "Review"].map((h, i) => el("th", i >= 3 && i <= 5 ? { class: "num" } : {}, h)))));
    const tb = el("tbody");
    for (const f of rows) {
      const note = el("input", { type: "text", placeholder: "note", class: "filter-value" });
      note.value = f.review?.note ?? "";
      const decide = el("select", { "data-finding": f.id }, el("option", { value: "" }, f.review ? "Change…" : "Decide…"), ...STATUS.map(([v, l]) => el("option", { value: v }, l)));
      decide.addEventListener("change", async () => {
        if (!decide.value) return;
        try {
          const who = reviewer.value.trim();
          const updated = await backend.piiReview(f.id, decide.value as ReviewStatus, note.value.trim(), who, Date.now());
          all = all.map((x) => (x.id === f.id ? updated : x));
          draw();
        } catch (e) {
          status.replaceChildren(errorBox(errorMessage(e)));
          decide.value = "";
        }
      });
      const st = statusOf(f);
      tb.append(el("tr", { "data-status": st },
        el("td", { class: "mono" }, f.path, el("div", { class: "muted small" }, f.source)),
        el("td", {}, f.detector),
        el("td", {}, el("span", { class: `badge sev-${f.severity}` }, f.severity)),
        el("td", { class: "num" }, fmtInt(f.hits)),
        el("td", { class: "num" }, fmtPct(f.eventShare)),
        el("td", { class: "num" }, fmtPct(f.personShare)),
        el("td", { class: "small" }, f.eventNames.slice(0, 3).map((n) => n.name).join(", "), el("div", { class: "muted" }, `${fmtTime(f.firstSeen)} → ${fmtTime(f.lastSeen)}`)),
        el("td", { class: "mono small" }, f.samples.slice(0, 3).join(" · ")),
        el("td", {}, el("span", { class: `badge review-${st}` }, st.replace("_", " ")), f.review ? el("div", { class: "muted small" }, `${f.review.reviewer}: ${f.review.note}`) : null, el("div", { class: "row" }, decide, note)),
      ));
    }
    t.append(tb);
    body.replaceChildren(el("p", { class: "muted" }, `${fmtInt(rows.length)} of ${fmtInt(all.length)} findings`), el("div", { class: "table-scroll tall" }, t));
  };

  const load = async (): Promise<void> => {
    body.replaceChildren(loading());
    all = await backend.piiFindings();
    const det = [...new Set(all.map((f) => f.detector))].sort();
    detectorSel.replaceChildren(el("option", { value: "" }, "All detectors"), ...det.map((d) => el("option", { value: d }, d)));
    draw();
  };

  const sel = (id: string, opts: [string, string][], key: keyof typeof filters): HTMLSelectElement => {
    const s = el("select", { id }, ...opts.map(([v, l]) => el("option", { value: v }, l)));
    s.addEventListener("change", () => {
      filters[key] = s.value;
      draw();
    });
    return s;
  };
  const detectorSel = sel("pii-detector", [["", "All detectors"]], "detector");

  let scanJob: string | null = null;
  const scanBtn = button("Scan now", async () => {
    scanJob = newJobId();
    scanBtn.setAttribute("disabled", "");
    const phase = el("span", {}, "Scanning every field…");
    status.replaceChildren(el("div", { class: "loading" }, el("span", { class: "spinner" }), phase, " ", button("Cancel", () => scanJob && void backend.cancelJob(scanJob))));
    try {
      const r = await backend.piiScan(scanJob, Date.now(), (ev) => {
        if (ev.type === "progress") phase.textContent = `Scanning: ${ev.phase} — ${fmtInt(ev.rows)} rows`;
      });
      status.replaceChildren(el("div", { class: "note" }, `Scanned ${fmtInt(r.totals.events)} events and ${fmtInt(r.totals.persons)} persons (${fmtInt(r.totals.valuesChecked)} values) in ${(r.millis / 1000).toFixed(1)} s: ${fmtInt(r.findings.length)} findings.`));
      await load();
    } catch (e) {
      status.replaceChildren(errorBox(errorMessage(e)));
    } finally {
      scanJob = null;
      scanBtn.removeAttribute("disabled");
    }
  }, { class: "btn btn-primary", id: "pii-scan" });

  // The export wizard: every finding marked "needs redaction" becomes a rule.
  const action = el("select", { id: "pii-action" }, el("option", { value: "pseudonymize" }, "Pseudonymise (salted SHA-256)"), el("option", { value: "mask" }, "Mask"), el("option", { value: "drop" }, "Drop the field"));
  const format = el("select", { id: "pii-format" }, el("option", { value: "parquet" }, "Parquet"), el("option", { value: "csv" }, "CSV"), el("option", { value: "jsonl" }, "JSON lines"));
  const exportOut = el("div", { id: "pii-export-result" });
  const exportBtn = button("Export a redacted copy…", async () => {
    const marked = all.filter((f) => f.review?.status === "needs_redaction");
    if (marked.length === 0) {
      exportOut.replaceChildren(errorBox("Mark at least one finding “Needs redaction” first."));
      return;
    }
    const job = newJobId();
    exportOut.replaceChildren(el("div", { class: "loading" }, el("span", { class: "spinner" }), `Writing and re-scanning (${marked.length} fields)…`, button("Cancel", () => void backend.cancelJob(job))));
    try {
      const r = await backend.piiExport({ format: null, field: marked.map((f) => ({ path: null, detector: null, finding: f.id, action: action.value as RedactAction })) }, format.value as ExportFormat, job, Date.now(), () => {});
      exportOut.replaceChildren(r ? exportResult(r) : el("span"));
    } catch (e) {
      exportOut.replaceChildren(errorBox(errorMessage(e)));
    }
  }, { id: "pii-export" });

  const reportBtn = button("Write audit report…", async () => {
    try {
      const files = await backend.piiReport(Date.now());
      if (files) status.replaceChildren(el("div", { class: "note" }, `Wrote ${files.join(", ")}`));
    } catch (e) {
      status.replaceChildren(errorBox(errorMessage(e)));
    }
  }, { id: "pii-report" });

  await load();
  return el(
    "div",
    { class: "page" },
    el("h1", {}, "PII audit"),
    el("p", { class: "muted" }, info ? `Last scan ${fmtTime(info.scannedAt)}: ${fmtInt(info.findings)} findings over ${fmtInt(info.totals.events)} events. Samples are masked; raw values never leave the engine.` : "Finds emails, phones, IPs, cards, IBANs, SSNs, tokens, keys, locations and personal key names in every field, locally."),
    el("div", { class: "row wrap" }, scanBtn, reportBtn, el("span", { class: "muted" }, "Reviewer"), reviewer),
    status,
    el("div", { class: "row wrap pii-filters" },
      sel("pii-severity", [["", "All severities"], ["high", "High"], ["medium", "Medium"], ["low", "Low"]], "severity"),
      detectorSel,
      sel("pii-review-status", [["", "Any status"], ["unreviewed", "Unreviewed"], ["changed", "Changed since review"], ["expected", "Expected"], ["needs_redaction", "Needs redaction"], ["false_positive", "False positive"]], "status")),
    body,
    el("section", { class: "card" }, el("h2", {}, "Redacted export"),
      el("p", { class: "muted" }, "Writes a copy of the events with every field marked “Needs redaction” changed; the source files and the workspace are not touched. The copy is re-scanned: any hit left in a redacted field, or a row count that differs, marks the export failed."),
      el("div", { class: "row wrap" }, action, format, exportBtn), exportOut),
  );
}

function exportResult(r: ExportReport): HTMLElement {
  return el("div", { class: r.status === "complete" ? "note" : "error" },
    el("b", {}, r.status === "complete" ? "Verified" : `Export ${r.status}`),
    ` — ${fmtInt(r.rowsWritten)} of ${fmtInt(r.rowsSource)} rows written to ${r.dataFile}`,
    el("ul", {}, ...r.checks.map((c) => el("li", {}, `${c.target}: ${c.action}, ${fmtInt(c.redacted)} values changed, ${fmtInt(c.hitsAfter)} hits after — ${c.ok ? "ok" : "FAILED"}`))),
    ...r.problems.map((p) => el("div", {}, p)));
}
