//! The audit report: scope (files, hashes, date range, row counts), the findings with their
//! review decisions and the trail, redacted exports with their verification, and a chart of
//! hits per detector. Written as one self-contained HTML file (everything escaped, the chart
//! a `data:` URI PNG, no external resources) plus CSV (findings) and JSON (everything).

use std::path::{Path, PathBuf};

use serde::Serialize;
use ts_rs::TS;

use super::drill::{reveal_log, RevealLogEntry};
use super::export::{exports, ExportReport, ExportStatus};
use super::scan::NameCount;
use super::store::{findings, review_log, scan_info, Review, ReviewedFinding, ScanInfo};
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ScopeFile {
    pub path: String,
    pub vendor: Option<String>,
    pub sha256: String,
    #[ts(type = "number")]
    pub rows_loaded: i64,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct AuditScope {
    pub files: Vec<ScopeFile>,
    pub first_event: Option<String>,
    pub last_event: Option<String>,
    #[ts(type = "number")]
    pub events: i64,
    #[ts(type = "number")]
    pub persons: i64,
    #[ts(type = "number")]
    pub person_snapshots: i64,
    #[ts(type = "number")]
    pub group_snapshots: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct AuditReport {
    pub generated_at: String,
    /// The workspace time zone the HTML report shows its times in (the data keeps ISO 8601).
    pub time_zone: String,
    pub workspace: String,
    pub scope: AuditScope,
    pub scan: Option<ScanInfo>,
    pub findings: Vec<ReviewedFinding>,
    pub review_trail: Vec<Review>,
    /// Every reveal of a full value in the app (who, why, when, where; never the value).
    pub reveal_log: Vec<RevealLogEntry>,
    pub exports: Vec<ExportReport>,
    pub hits_by_detector: Vec<NameCount>,
}

/// Gather the report's contents. `now_us` stamps it.
pub fn audit_report(ws: &Workspace, now_us: i64) -> Result<AuditReport> {
    let c = ws.conn();
    let files = c
        .prepare(
            "SELECT path, vendor, content_sha256, rows_loaded, status FROM imports ORDER BY import_id",
        )?
        .query_map([], |r| {
            Ok(ScopeFile {
                path: r.get(0)?,
                vendor: r.get(1)?,
                sha256: r.get(2)?,
                rows_loaded: r.get(3)?,
                status: r.get(4)?,
            })
        })?
        .collect::<duckdb::Result<Vec<_>>>()?;
    let scope = c.query_row(
        "SELECT strftime(min(ts_utc), '%Y-%m-%dT%H:%M:%SZ'), strftime(max(ts_utc), '%Y-%m-%dT%H:%M:%SZ'),
                count(*), (SELECT count(*) FROM persons), (SELECT count(*) FROM person_snapshots),
                (SELECT count(*) FROM group_snapshots)
         FROM events",
        [],
        |r| {
            Ok(AuditScope {
                files: Vec::new(),
                first_event: r.get(0)?,
                last_event: r.get(1)?,
                events: r.get(2)?,
                persons: r.get(3)?,
                person_snapshots: r.get(4)?,
                group_snapshots: r.get(5)?,
            })
        },
    )?;
    let findings = findings(ws)?;
    let mut by: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    for f in &findings {
        *by.entry(f.finding.detector.clone()).or_default() += f.finding.hits;
    }
    let mut hits_by_detector: Vec<NameCount> = by
        .into_iter()
        .map(|(name, count)| NameCount { name, count })
        .collect();
    hits_by_detector.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    Ok(AuditReport {
        generated_at: crate::generate::rfc3339_micros(now_us),
        time_zone: ws
            .setting("time_zone")?
            .filter(|z| !z.trim().is_empty())
            .unwrap_or_else(|| "UTC".into()),
        workspace: ws.path().to_string_lossy().to_string(),
        scope: AuditScope { files, ..scope },
        scan: scan_info(ws)?,
        findings,
        review_trail: review_log(ws)?,
        reveal_log: reveal_log(ws)?,
        exports: exports(ws)?,
        hits_by_detector,
    })
}

/// HTML-escape text (element content and attribute values).
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Standard base64 (for the chart's data: URI).
pub fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for ch in bytes.chunks(3) {
        let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        o.push(T[(n >> 18) as usize & 63] as char);
        o.push(T[(n >> 12) as usize & 63] as char);
        o.push(if ch.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        o.push(if ch.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    o
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The report as one HTML page.
pub fn render_html(r: &AuditReport) -> Result<String> {
    let e = |s: &str| escape(s);
    // Times read like times: one format, in the workspace time zone.
    let tf = crate::timefmt::TimeFormat::new(&r.time_zone);
    let t = |s: &str| escape(&tf.iso(s));
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">");
    h.push_str("<title>PII audit report</title><style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f4f6}.high{color:#b91c1c;font-weight:600}.medium{color:#b45309}.low{color:#4b5563}.fail{color:#b91c1c;font-weight:600}.ok{color:#15803d}code{font-size:12px}</style></head><body>\n");
    h.push_str(&format!(
        "<h1>PII audit report</h1><p>Workspace <code>{}</code>, generated {}.</p>\n",
        e(&r.workspace),
        t(&r.generated_at)
    ));
    // Scope.
    let s = &r.scope;
    h.push_str("<h2>Scope</h2>");
    h.push_str(&format!(
        "<p>{} events from {} to {}; {} persons; {} person snapshots; {} group snapshots.</p>",
        s.events,
        t(s.first_event.as_deref().unwrap_or("—")),
        t(s.last_event.as_deref().unwrap_or("—")),
        s.persons,
        s.person_snapshots,
        s.group_snapshots
    ));
    h.push_str("<table><tr><th>File</th><th>Vendor</th><th>SHA-256</th><th>Rows loaded</th><th>Status</th></tr>");
    for f in &s.files {
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            e(&f.path),
            e(f.vendor.as_deref().unwrap_or("")),
            e(&f.sha256),
            f.rows_loaded,
            e(&f.status)
        ));
    }
    h.push_str("</table>\n");
    // Scan and chart.
    h.push_str("<h2>Findings</h2>");
    match &r.scan {
        Some(sc) => h.push_str(&format!(
            "<p>Scanned {} ({} values checked in {:.1} s). {} findings; {} need review.</p>",
            t(&sc.scanned_at),
            sc.totals.values_checked,
            sc.secs,
            r.findings.len(),
            r.findings.iter().filter(|f| f.needs_review).count()
        )),
        None => h.push_str("<p>No scan has been run.</p>"),
    }
    if !r.hits_by_detector.is_empty() {
        let labels: Vec<String> = r.hits_by_detector.iter().map(|n| n.name.clone()).collect();
        let values: Vec<f64> = r.hits_by_detector.iter().map(|n| n.count as f64).collect();
        let png = crate::chart::bar_chart_png(
            "Hits per detector",
            &labels,
            &values,
            "Detector",
            "Hits",
            (1000, 420),
        )?;
        h.push_str(&format!(
            "<img alt=\"Hits per detector\" width=\"1000\" height=\"420\" src=\"data:image/png;base64,{}\">",
            base64(&png)
        ));
    }
    h.push_str("<table><tr><th>Id</th><th>Severity</th><th>Source</th><th>Path</th><th>Detector</th><th>Hits</th><th>Rows</th><th>% events</th><th>% persons</th><th>Event names</th><th>Files</th><th>First / last seen</th><th>Masked samples</th><th>Review</th></tr>");
    for rf in &r.findings {
        let f = &rf.finding;
        let review = match &rf.review {
            Some(rv) => format!(
                "{} by {} at {}{}{}",
                e(match rv.status {
                    super::ReviewStatus::Expected => "expected",
                    super::ReviewStatus::NeedsRedaction => "needs redaction",
                    super::ReviewStatus::FalsePositive => "false positive",
                }),
                e(&rv.reviewer),
                t(&rv.reviewed_at),
                if rv.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", e(&rv.note))
                },
                if rf.needs_review {
                    format!(
                        " <span class=\"fail\">(hits changed from {}: review again)</span>",
                        rv.hits_at_review
                    )
                } else {
                    String::new()
                }
            ),
            None => "<span class=\"fail\">not reviewed</span>".into(),
        };
        h.push_str(&format!(
            "<tr><td><code>{}</code></td><td class=\"{sev}\">{sev}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}<br>{}</td><td>{}</td><td>{}</td></tr>",
            e(&f.id),
            e(f.source.as_str()),
            e(&f.path),
            e(&f.detector),
            f.hits,
            f.rows,
            pct(f.event_share),
            pct(f.person_share),
            e(&f.event_names.iter().map(|n| format!("{} ({})", n.name, n.count)).collect::<Vec<_>>().join(", ")),
            e(&f.files.iter().map(|x| format!("{} [{}]", x.file, x.vendor)).collect::<Vec<_>>().join(", ")),
            t(f.first_seen.as_deref().unwrap_or("")),
            t(f.last_seen.as_deref().unwrap_or("")),
            e(&f.samples.join("  ")),
            review,
            sev = f.severity.as_str(),
        ));
    }
    h.push_str("</table>\n<h2>Review trail</h2>");
    if r.review_trail.is_empty() {
        h.push_str("<p>No decisions recorded.</p>");
    } else {
        h.push_str("<table><tr><th>When</th><th>Reviewer</th><th>Finding</th><th>Decision</th><th>Hits then</th><th>Note</th></tr>");
        for rv in &r.review_trail {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                t(&rv.reviewed_at),
                e(&rv.reviewer),
                e(&rv.finding_id),
                e(rv.status.as_str()),
                rv.hits_at_review,
                e(&rv.note)
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("\n<h2>Reveal log</h2>");
    if r.reveal_log.is_empty() {
        h.push_str("<p>No value has been revealed.</p>");
    } else {
        h.push_str("<table><tr><th>When</th><th>Reviewer</th><th>Reason</th><th>Finding</th><th>Path</th><th>Detector</th><th>Event</th></tr>");
        for x in &r.reveal_log {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{} <code>{}</code></td></tr>",
                t(&x.revealed_at),
                e(&x.reviewer),
                e(&x.reason),
                e(&x.finding_id),
                e(&x.path),
                e(&x.detector),
                x.event_seq,
                e(&x.event_uuid)
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("\n<h2>Redacted exports</h2>");
    if r.exports.is_empty() {
        h.push_str("<p>No redacted exports.</p>");
    }
    for x in &r.exports {
        let ok = x.status == ExportStatus::Complete;
        h.push_str(&format!(
            "<h3><code>{}</code> ({}) — <span class=\"{}\">{}</span></h3><p>{}: {} rows written of {} in the source{}{}.</p>",
            e(&x.data_file),
            e(x.format.as_str()),
            if ok { "ok" } else { "fail" },
            if ok { "verified" } else { "FAILED verification" },
            t(&x.created_at),
            x.rows_written,
            x.rows_source,
            match &x.keep_from {
                Some(k) => format!("; {} events before {} left out", x.rows_left_out, e(k)),
                None => String::new(),
            },
            if x.problems.is_empty() {
                String::new()
            } else {
                format!("; problems: {}", e(&x.problems.join("; ")))
            }
        ));
        h.push_str("<table><tr><th>Field</th><th>Action</th><th>Values redacted</th><th>Hits in the re-scan</th><th>Original values left</th><th>Result</th></tr>");
        for c in &x.checks {
            h.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td class=\"{}\">{}</td></tr>",
                e(&c.target),
                e(match c.action {
                    super::RedactAction::Drop => "drop",
                    super::RedactAction::Mask => "mask",
                    super::RedactAction::Pseudonymize => "pseudonymize",
                }),
                c.redacted,
                c.hits_after,
                c.values_after,
                c.values,
                if c.ok { "ok" } else { "fail" },
                if c.ok { "clean" } else { "NOT CLEAN" }
            ));
        }
        h.push_str("</table>");
        for n in &x.notes {
            h.push_str(&format!("<p>{}</p>", e(n)));
        }
    }
    h.push_str("\n<p>Samples are masked; no raw value appears in this report.</p></body></html>\n");
    Ok(h)
}

/// The findings as CSV rows.
pub fn render_csv(r: &AuditReport) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| EngineError::InvalidArgument(format!("writing CSV: {e}"));
    w.write_record([
        "id",
        "severity",
        "source",
        "path",
        "detector",
        "hits",
        "rows",
        "event_share",
        "persons",
        "person_share",
        "event_names",
        "files",
        "first_seen",
        "last_seen",
        "samples",
        "review_status",
        "reviewer",
        "reviewed_at",
        "note",
        "needs_review",
    ])
    .map_err(err)?;
    for rf in &r.findings {
        let f = &rf.finding;
        let rv = rf.review.as_ref();
        w.write_record([
            f.id.clone(),
            f.severity.as_str().into(),
            f.source.as_str().into(),
            f.path.clone(),
            f.detector.clone(),
            f.hits.to_string(),
            f.rows.to_string(),
            format!("{:.6}", f.event_share),
            f.persons.to_string(),
            format!("{:.6}", f.person_share),
            f.event_names
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
                .join("|"),
            f.files
                .iter()
                .map(|x| x.file.clone())
                .collect::<Vec<_>>()
                .join("|"),
            f.first_seen.clone().unwrap_or_default(),
            f.last_seen.clone().unwrap_or_default(),
            f.samples.join("|"),
            rv.map(|r| r.status.as_str().to_string())
                .unwrap_or_default(),
            rv.map(|r| r.reviewer.clone()).unwrap_or_default(),
            rv.map(|r| r.reviewed_at.clone()).unwrap_or_default(),
            rv.map(|r| r.note.clone()).unwrap_or_default(),
            rf.needs_review.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| EngineError::InvalidArgument(format!("writing CSV: {e}")))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Write `<out>` (HTML) and, beside it, the same stem as `.csv` and `.json`. Returns the paths.
pub fn write_report(r: &AuditReport, out: &Path) -> Result<Vec<PathBuf>> {
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    }
    let csv_path = out.with_extension("csv");
    let json_path = out.with_extension("json");
    let json = serde_json::to_string_pretty(r).map_err(|e| EngineError::Internal(e.to_string()))?;
    for (p, text) in [
        (out.to_path_buf(), render_html(r)?),
        (csv_path.clone(), render_csv(r)?),
        (json_path.clone(), json),
    ] {
        std::fs::write(&p, text).map_err(|e| EngineError::io(&p, e))?;
    }
    Ok(vec![out.to_path_buf(), csv_path, json_path])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_base64() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
