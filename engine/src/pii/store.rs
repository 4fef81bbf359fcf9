//! Findings and review decisions in the workspace. A scan replaces the findings; decisions
//! stay, keyed by the finding's stable id, and a decision made when the finding had a
//! different hit count is flagged for review again.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::detect::Severity;
use super::scan::{finding_order, Finding, NameCount, ScanTotals, Source, SourceFile};
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum ReviewStatus {
    /// Known and acceptable (e.g. an email the product needs).
    Expected,
    /// Must not leave the workspace unredacted.
    NeedsRedaction,
    /// Not PII after all.
    FalsePositive,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Expected => "expected",
            ReviewStatus::NeedsRedaction => "needs_redaction",
            ReviewStatus::FalsePositive => "false_positive",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s.replace('-', "_").as_str() {
            "expected" => Ok(ReviewStatus::Expected),
            "needs_redaction" => Ok(ReviewStatus::NeedsRedaction),
            "false_positive" => Ok(ReviewStatus::FalsePositive),
            _ => Err(EngineError::InvalidArgument(format!(
                "review status is expected, needs_redaction or false_positive, not \"{s}\""
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Review {
    pub finding_id: String,
    pub status: ReviewStatus,
    pub note: String,
    pub reviewer: String,
    pub reviewed_at: String,
    #[ts(type = "number")]
    pub hits_at_review: i64,
}

/// A finding with its review state: what the PII screen lists.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ReviewedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub review: Option<Review>,
    /// Never reviewed, or the hit count changed since the decision.
    pub needs_review: bool,
}

/// The latest scan's summary.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ScanInfo {
    pub scanned_at: String,
    pub totals: ScanTotals,
    #[ts(type = "number")]
    pub findings: i64,
    pub secs: f64,
}

pub(crate) fn save_scan(
    ws: &Workspace,
    now_us: i64,
    totals: &ScanTotals,
    findings: &[Finding],
    secs: f64,
) -> Result<()> {
    let c = ws.conn();
    in_transaction(c, || {
        c.execute_batch("DELETE FROM pii_findings; DELETE FROM pii_scans")?;
        c.execute(
            "INSERT INTO pii_scans VALUES (make_timestamptz(?), ?, ?, ?, ?, ?, ?, ?)",
            duckdb::params![
                now_us,
                totals.events,
                totals.persons,
                totals.person_rows,
                totals.snapshot_rows,
                totals.values_checked,
                findings.len() as i64,
                secs
            ],
        )?;
        let mut st = c.prepare(
            "INSERT INTO pii_findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                 TRY_CAST(? AS TIMESTAMPTZ), TRY_CAST(? AS TIMESTAMPTZ), ?)",
        )?;
        for f in findings {
            st.execute(duckdb::params![
                f.id,
                f.source.as_str(),
                f.path,
                f.detector,
                f.severity.as_str(),
                f.hits,
                f.rows,
                f.persons,
                f.event_share,
                f.person_share,
                to_json(&f.event_names)?,
                to_json(&f.files)?,
                f.first_seen,
                f.last_seen,
                to_json(&f.samples)?,
            ])?;
        }
        Ok(())
    })
}

/// Run `f` in one transaction: committed when it succeeds, rolled back otherwise.
fn in_transaction(c: &duckdb::Connection, f: impl FnOnce() -> Result<()>) -> Result<()> {
    c.execute_batch("BEGIN TRANSACTION")?;
    match f() {
        Ok(()) => {
            c.execute_batch("COMMIT")?;
            Ok(())
        }
        Err(e) => {
            let _ = c.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| EngineError::Internal(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de> + Default>(s: &str) -> T {
    serde_json::from_str(s).unwrap_or_default()
}

#[derive(Deserialize, Default)]
struct NameCountRow {
    name: String,
    count: i64,
}
#[derive(Deserialize, Default)]
struct FileRow {
    file: String,
    vendor: String,
}

/// The latest scan, or None before the first.
pub fn scan_info(ws: &Workspace) -> Result<Option<ScanInfo>> {
    let mut st = ws.conn().prepare(
        "SELECT strftime(scanned_at, '%Y-%m-%dT%H:%M:%SZ'), events, persons, person_rows,
                snapshot_rows, values_checked, findings, secs FROM pii_scans",
    )?;
    let mut rows = st.query([])?;
    match rows.next()? {
        Some(r) => Ok(Some(ScanInfo {
            scanned_at: r.get(0)?,
            totals: ScanTotals {
                events: r.get(1)?,
                persons: r.get(2)?,
                person_rows: r.get(3)?,
                snapshot_rows: r.get(4)?,
                values_checked: r.get(5)?,
            },
            findings: r.get(6)?,
            secs: r.get(7)?,
        })),
        None => Ok(None),
    }
}

const REVIEW_COLS: &str = "r.finding_id, r.status, r.note, r.reviewer,
    strftime(r.reviewed_at, '%Y-%m-%dT%H:%M:%SZ'), r.hits_at_review";

fn review_from(r: &duckdb::Row<'_>, at: usize) -> duckdb::Result<Option<Review>> {
    let id: Option<String> = r.get(at)?;
    let Some(finding_id) = id else {
        return Ok(None);
    };
    let status: String = r.get(at + 1)?;
    Ok(Some(Review {
        finding_id,
        status: ReviewStatus::parse(&status).unwrap_or(ReviewStatus::Expected),
        note: r.get(at + 2)?,
        reviewer: r.get(at + 3)?,
        reviewed_at: r.get(at + 4)?,
        hits_at_review: r.get(at + 5)?,
    }))
}

/// The latest scan's findings with their reviews, most severe first.
pub fn findings(ws: &Workspace) -> Result<Vec<ReviewedFinding>> {
    let sql = format!(
        "SELECT f.finding_id, f.source, f.path, f.detector, f.severity, f.hits, f.rows, f.persons,
                f.event_share, f.person_share, CAST(f.event_names AS VARCHAR), CAST(f.files AS VARCHAR),
                strftime(f.first_seen, '%Y-%m-%dT%H:%M:%S.%f+00:00'),
                strftime(f.last_seen, '%Y-%m-%dT%H:%M:%S.%f+00:00'), CAST(f.samples AS VARCHAR),
                {REVIEW_COLS}
         FROM pii_findings f LEFT JOIN pii_reviews r USING (finding_id)"
    );
    let mut st = ws.conn().prepare(&sql)?;
    let rows = st.query_map([], |r| {
        let source: String = r.get(1)?;
        let severity: String = r.get(4)?;
        let names: String = r.get(10)?;
        let files: String = r.get(11)?;
        let samples: String = r.get(14)?;
        let finding = Finding {
            id: r.get(0)?,
            source: Source::parse(&source).unwrap_or(Source::Events),
            path: r.get(2)?,
            detector: r.get(3)?,
            severity: Severity::parse(&severity).unwrap_or(Severity::Medium),
            hits: r.get(5)?,
            rows: r.get(6)?,
            persons: r.get(7)?,
            event_share: r.get(8)?,
            person_share: r.get(9)?,
            event_names: from_json::<Vec<NameCountRow>>(&names)
                .into_iter()
                .map(|n| NameCount {
                    name: n.name,
                    count: n.count,
                })
                .collect(),
            files: from_json::<Vec<FileRow>>(&files)
                .into_iter()
                .map(|f| SourceFile {
                    file: f.file,
                    vendor: f.vendor,
                })
                .collect(),
            first_seen: r.get(12)?,
            last_seen: r.get(13)?,
            samples: from_json(&samples),
        };
        let review = review_from(r, 15)?;
        Ok((finding, review))
    })?;
    let mut pairs = rows.collect::<duckdb::Result<Vec<_>>>()?;
    pairs.sort_by(|a, b| finding_order(&a.0, &b.0));
    Ok(pairs
        .into_iter()
        .map(|(finding, review)| {
            let needs_review = review
                .as_ref()
                .is_none_or(|r| r.hits_at_review != finding.hits);
            ReviewedFinding {
                finding,
                review,
                needs_review,
            }
        })
        .collect())
}

/// Find a finding by id (or a unique id prefix of at least 4 characters).
pub fn finding(ws: &Workspace, id: &str) -> Result<ReviewedFinding> {
    let all = findings(ws)?;
    let hits: Vec<ReviewedFinding> = all
        .into_iter()
        .filter(|f| f.finding.id == id || (id.len() >= 4 && f.finding.id.starts_with(id)))
        .collect();
    match hits.len() {
        1 => Ok(hits.into_iter().next().ok_or_else(|| unknown(id))?),
        0 => Err(unknown(id)),
        _ => Err(EngineError::InvalidQuery {
            code: "pii_ambiguous_finding",
            message: format!("{id} matches {} findings; give more of the id", hits.len()),
        }),
    }
}

fn unknown(id: &str) -> EngineError {
    EngineError::InvalidQuery {
        code: "pii_unknown_finding",
        message: format!("no finding {id} in the latest scan (run `stitchbook pii scan` first)"),
    }
}

/// Record a decision on a finding. `at_us` is the review time (the caller's clock).
pub fn review(
    ws: &Workspace,
    finding_id: &str,
    status: ReviewStatus,
    note: &str,
    reviewer: &str,
    at_us: i64,
) -> Result<ReviewedFinding> {
    if reviewer.trim().is_empty() {
        return Err(EngineError::InvalidArgument(
            "a review needs the reviewer's name".into(),
        ));
    }
    let f = finding(ws, finding_id)?;
    let c = ws.conn();
    let id = &f.finding.id;
    in_transaction(c, || {
        c.execute(
            "INSERT OR REPLACE INTO pii_reviews VALUES (?, ?, ?, ?, make_timestamptz(?), ?, ?, ?, ?)",
            duckdb::params![
                id,
                status.as_str(),
                note,
                reviewer,
                at_us,
                f.finding.hits,
                f.finding.source.as_str(),
                f.finding.path,
                f.finding.detector
            ],
        )?;
        c.execute(
            "INSERT INTO pii_review_log (finding_id, status, note, reviewer, reviewed_at, hits_at_review)
             VALUES (?, ?, ?, ?, make_timestamptz(?), ?)",
            duckdb::params![id, status.as_str(), note, reviewer, at_us, f.finding.hits],
        )?;
        Ok(())
    })?;
    finding(ws, id)
}

/// Every decision made, oldest first (the review trail).
pub fn review_log(ws: &Workspace) -> Result<Vec<Review>> {
    let mut st = ws.conn().prepare(&format!(
        "SELECT {REVIEW_COLS} FROM pii_review_log r ORDER BY r.seq"
    ))?;
    let rows = st.query_map([], |r| review_from(r, 0))?;
    Ok(rows
        .collect::<duckdb::Result<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}
