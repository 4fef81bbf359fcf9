// The compliance reviewer's screen: scan, the findings (masked samples only) with filters,
// review decisions, the verified redacted export and the audit report.
import { button, displayTimeZone, el, emptyState, errorBox, fileName, fmtInt, fmtPct, fmtTime, loading, table } from "../../components/dom";
import type { Backend } from "../../lib/ipc/client";
import type { ExportFormat, ExportReport, FindingEvents, RedactAction, RedactionRules, RetentionSummary, RevealLogEntry, ReviewedFinding, ReviewStatus } from "../../lib/ipc/types";
import { problem, runJob } from "../../lib/jobs";

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
          status.replaceChildren(problem(e));
          decide.value = "";
        }
      });
      const st = statusOf(f);
      tb.append(el("tr", { "data-status": st },
        el("td", { class: "mono" }, f.path, el("div", { class: "muted small" }, f.source)),
        el("td", {}, f.detector),
        el("td", {}, el("span", { class: `badge sev-${f.severity}` }, f.severity)),
        el("td", { class: "num" }, f.source === "events"
          ? button(fmtInt(f.hits), () => void openEvents(f), { class: "cell-link", "data-events": f.id, title: "List the events behind this finding (masked)" })
          : fmtInt(f.hits)),
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

  // Drill-down: the events behind a finding, masked, with a logged reveal of one value.
  const drawer = el("aside", { class: "drawer", id: "pii-events-drawer", hidden: "" });
  const PAGE = 100;
  const openEvents = async (f: ReviewedFinding): Promise<void> => {
    drawer.hidden = false;
    const reason = el("input", { type: "text", id: "pii-reveal-reason", placeholder: "Reason for revealing (logged)", class: "grow" });
    const msg = el("div", {});
    const tbody = el("tbody");
    const more = el("div", {});
    const head = el("div", { class: "drawer-head" }, el("h3", {}, `${f.detector} in ${f.path}`), button("Close", () => { drawer.hidden = true; }, { id: "pii-events-close" }));
    const summary = el("p", { class: "muted small" }, "Loading…");
    drawer.replaceChildren(head, summary,
      el("div", { class: "row" }, el("span", { class: "muted small" }, "Reveal needs your name (above) and a reason; each reveal is logged, the value never is."), reason),
      msg,
      el("div", { class: "table-scroll tall" }, el("table", { class: "grid compact", id: "pii-events" },
        el("thead", {}, el("tr", {}, ...[`Time (${displayTimeZone()})`, "Event", "Distinct id", "Person", "Value (masked)", "Source", ""].map((h) => el("th", {}, h)))), tbody)),
      more);
    const page = async (offset: number): Promise<void> => {
      more.replaceChildren(loading());
      let r: FindingEvents;
      try {
        r = await backend.piiFindingEvents(f.id, offset, PAGE);
      } catch (e) {
        more.replaceChildren(problem(e));
        return;
      }
      summary.textContent = `${fmtInt(r.total)} events hit this finding; showing ${fmtInt(offset + r.events.length)}.`;
      for (const ev of r.events) {
        const value = el("td", { class: "mono small" }, ev.masked.join(" · "));
        const reveal = button("Reveal", async () => {
          const who = reviewer.value.trim();
          const why = reason.value.trim();
          if (!who || !why) {
            msg.replaceChildren(errorBox("Enter your name as reviewer and a reason before revealing a value."));
            return;
          }
          try {
            const v = await backend.piiReveal(f.id, ev.eventSeq, who, why, Date.now());
            msg.replaceChildren();
            value.replaceChildren(el("span", { class: "revealed" }, v.values.join(" · ")), el("div", { class: "muted small" }, `revealed to ${who}, log entry #${v.logSeq}`));
            reveal.remove();
            void loadLog();
          } catch (e) {
            msg.replaceChildren(problem(e));
          }
        }, { class: "btn btn-small pii-reveal", "data-event": String(ev.eventSeq) });
        tbody.append(el("tr", {},
          el("td", { class: "small nowrap" }, fmtTime(ev.ts)),
          el("td", {}, ev.eventName),
          el("td", { class: "mono small" }, ev.distinctId ?? "—"),
          el("td", { class: "small" }, ev.personId ? el("a", { href: `#/person/${encodeURIComponent(ev.personId)}`, class: "person-link", title: ev.personId }, ev.personId.length > 13 ? `${ev.personId.slice(0, 12)}…` : ev.personId) : "—"),
          value,
          el("td", { class: "muted small" }, `${fileName(ev.sourceFile)}:${ev.sourceLine}`),
          el("td", {}, reveal)));
      }
      more.replaceChildren(r.hasMore ? button(`Next ${PAGE}`, () => void page(offset + r.events.length), { id: "pii-events-more" }) : el("span"));
    };
    await page(0);
  };

  // The reveal (access) log: who saw which value, when and why.
  const logCard = el("div", { id: "pii-reveal-log" });
  const loadLog = async (): Promise<void> => {
    try {
      const log: RevealLogEntry[] = await backend.piiRevealLog();
      logCard.replaceChildren(log.length === 0
        ? el("p", { class: "muted" }, "No value has been revealed.")
        : table(["#", "When", "Reviewer", "Reason", "Field", "Detector", "Event"], log.map((x) => [String(x.seq), fmtTime(x.revealedAt), x.reviewer, x.reason, x.path, x.detector, x.eventUuid]), { class: "grid compact" }, [0]));
    } catch (e) {
      logCard.replaceChildren(problem(e));
    }
  };

  // Retention helper: events older than a cut-off, and an export without them.
  const cutoff = el("input", { type: "date", id: "pii-cutoff" });
  const dropOld = el("input", { type: "checkbox", id: "pii-drop-old" });
  const retentionOut = el("div", { id: "pii-retention-result" });
  const cutoffMs = (): number | null => (cutoff.value ? Date.parse(`${cutoff.value}T00:00:00Z`) : null);
  const countOld = async (): Promise<void> => {
    const ms = cutoffMs();
    if (ms === null || Number.isNaN(ms)) {
      retentionOut.replaceChildren(errorBox("Choose a cut-off date."));
      return;
    }
    retentionOut.replaceChildren(loading());
    try {
      const r: RetentionSummary = await backend.piiRetention(ms);
      retentionOut.replaceChildren(
        el("p", {}, `${fmtInt(r.older)} events are older than ${fmtTime(r.cutoff)}; ${fmtInt(r.kept)} are on or after it.`),
        r.byFile.length > 0 ? table(["Vendor", "File", "Older events", "First", "Last"], r.byFile.map((x) => [x.vendor, fileName(x.file), fmtInt(x.events), fmtTime(x.firstEvent), fmtTime(x.lastEvent)]), { class: "grid compact" }, [2]) : el("span"));
    } catch (e) {
      retentionOut.replaceChildren(problem(e));
    }
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
    scanBtn.setAttribute("disabled", "");
    const phase = el("span", {}, "Scanning every field…");
    status.replaceChildren(el("div", { class: "loading" }, el("span", { class: "spinner" }), phase, " ", button("Cancel", () => scanJob && void backend.cancelJob(scanJob))));
    try {
      const r = await runJob("Scanning for PII", (id, on) => {
        scanJob = id;
        return backend.piiScan(id, Date.now(), on);
      }, (ev) => {
        if (ev.type === "progress") phase.textContent = `Scanning: ${ev.phase} — ${fmtInt(ev.rows)} rows`;
      });
      status.replaceChildren(el("div", { class: "note" }, `Scanned ${fmtInt(r.totals.events)} events and ${fmtInt(r.totals.persons)} persons (${fmtInt(r.totals.valuesChecked)} values) in ${(r.millis / 1000).toFixed(1)} s: ${fmtInt(r.findings.length)} findings.`));
      await load();
    } catch (e) {
      status.replaceChildren(problem(e));
    } finally {
      scanJob = null;
      scanBtn.removeAttribute("disabled");
    }
  }, { class: "btn btn-primary", id: "pii-scan" });

  // The export wizard: every finding marked "needs redaction" becomes a rule.
  const action = el("select", { id: "pii-action" }, el("option", { value: "pseudonymize" }, "Pseudonymise (salted SHA-256)"), el("option", { value: "mask" }, "Mask"), el("option", { value: "drop" }, "Drop the field"));
  const format = el("select", { id: "pii-format" }, el("option", { value: "parquet" }, "Parquet"), el("option", { value: "csv" }, "CSV"), el("option", { value: "jsonl" }, "JSON lines"));
  const vendorShape = el("input", { type: "checkbox", id: "pii-vendor-shape" });
  const vendorLabel = el("label", { class: "check", title: "Each source file's records in their vendor's own shape, gzipped if the source was" }, vendorShape, "Original vendor shape");
  const syncShape = (): void => {
    vendorShape.disabled = format.value !== "jsonl";
    if (vendorShape.disabled) vendorShape.checked = false;
  };
  format.addEventListener("change", syncShape);
  syncShape();
  const exportOut = el("div", { id: "pii-export-result" });
  const exportBtn = button("Export a redacted copy…", async () => {
    const marked = all.filter((f) => f.review?.status === "needs_redaction");
    if (marked.length === 0) {
      exportOut.replaceChildren(errorBox("Mark at least one finding “Needs redaction” first."));
      return;
    }
    const keepFrom = dropOld.checked ? cutoffMs() : null;
    if (dropOld.checked && (keepFrom === null || Number.isNaN(keepFrom))) {
      exportOut.replaceChildren(errorBox("Choose the retention cut-off date, or untick “Leave out older events”."));
      return;
    }
    let job: string | null = null;
    const phase = el("span", {}, `Writing and re-scanning (${marked.length} fields)…`);
    exportOut.replaceChildren(el("div", { class: "loading" }, el("span", { class: "spinner" }), phase, " ", button("Cancel", () => job && void backend.cancelJob(job))));
    try {
      const rules: RedactionRules = { format: null, field: marked.map((f) => ({ path: null, detector: null, finding: f.id, action: action.value as RedactAction })) };
      const r = await runJob("Writing the redacted export", (id, on) => {
        job = id;
        return backend.piiExport(rules, format.value as ExportFormat, keepFrom, vendorShape.checked, id, Date.now(), on);
      }, (ev) => {
        if (ev.type === "progress") phase.textContent = `${ev.phase} — ${fmtInt(ev.rows)} rows`;
      });
      exportOut.replaceChildren(r ? exportResult(r) : el("span"));
    } catch (e) {
      exportOut.replaceChildren(problem(e));
    }
  }, { id: "pii-export" });

  const reportBtn = button("Write audit report…", async () => {
    try {
      const files = await backend.piiReport(Date.now());
      if (files) status.replaceChildren(el("div", { class: "note" }, `Wrote ${files.join(", ")}`));
    } catch (e) {
      status.replaceChildren(problem(e));
    }
  }, { id: "pii-report" });

  await Promise.all([load(), loadLog()]);
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
      el("div", { class: "row wrap" }, action, format, vendorLabel, el("label", { class: "check" }, dropOld, "Leave out events before the retention cut-off"), exportBtn), exportOut),
    el("section", { class: "card" }, el("h2", {}, "Retention"),
      el("p", { class: "muted" }, "Count the events older than a date, by source file. Nothing is deleted: tick “Leave out events before the retention cut-off” above to export a copy without them."),
      el("div", { class: "row wrap" }, el("span", {}, "Older than"), cutoff, button("Count", () => void countOld(), { id: "pii-count-old" })), retentionOut),
    el("section", { class: "card" }, el("h2", {}, "Reveal log"), el("p", { class: "muted" }, "Every full value shown in this app, who asked and why. Values themselves are never logged."), logCard),
    drawer,
  );
}

function exportResult(r: ExportReport): HTMLElement {
  return el("div", { class: r.status === "complete" ? "note" : "error" },
    el("b", {}, r.status === "complete" ? "Verified" : `Export ${r.status}`),
    ` — ${fmtInt(r.rowsWritten)} of ${fmtInt(r.rowsSource)} rows written to ${r.dataFile}`,
    el("ul", {}, ...r.checks.map((c) => el("li", {}, `${c.target}: ${c.action}, ${fmtInt(c.redacted)} values changed, ${fmtInt(c.hitsAfter)} hits after, ${fmtInt(c.valuesAfter)} of ${fmtInt(c.values)} original values left — ${c.ok ? "ok" : "FAILED"}`))),
    ...r.remaining.map((x) => el("div", {}, `Left in ${x.file} line ${x.line} at ${x.path}: ${x.sample} (${x.target})`)),
    ...r.problems.map((p) => el("div", {}, p)),
    ...r.notes.map((n) => el("div", { class: "muted" }, n)));
}
