//! The PII audit: scan with progress, the findings with their reviews, review decisions,
//! the verified redacted export and the audit report.

use stitchbook_engine::pii::drill::{FindingEvents, RevealLogEntry, Revealed};
use stitchbook_engine::pii::retention::RetentionSummary;
use stitchbook_engine::pii::{
    self, ExportFormat, ExportOptions, ExportReport, RedactionRules, ReviewStatus, ReviewedFinding,
    ScanInfo, ScanResult,
};
use stitchbook_engine::{IpcError, JobEvent};
use tauri::ipc::Channel;
use tauri::State;

use super::{now_us, on_reader, on_workspace, run_job};
use crate::state::AppState;

#[tauri::command]
pub async fn pii_scan(
    job_id: String,
    now_ms: f64,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<ScanResult, IpcError> {
    let now = now_us(now_ms)?;
    run_job(&state, &job_id, channel, move |ws, ctx| {
        // Findings name persons: a stale model is brought up to date first, in this job.
        stitchbook_engine::model::ensure_built(ws, ctx)?;
        pii::scan(ws, now, ctx)
    })
    .await
}

#[tauri::command]
pub async fn pii_scan_info(state: State<'_, AppState>) -> Result<Option<ScanInfo>, IpcError> {
    on_reader(&state, pii::scan_info).await
}

#[tauri::command]
pub async fn pii_findings(state: State<'_, AppState>) -> Result<Vec<ReviewedFinding>, IpcError> {
    on_workspace(&state, pii::findings).await
}

#[tauri::command]
pub async fn pii_review(
    finding_id: String,
    status: ReviewStatus,
    note: String,
    reviewer: String,
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<ReviewedFinding, IpcError> {
    let now = now_us(now_ms)?;
    on_workspace(&state, move |ws| {
        pii::review(ws, &finding_id, status, &note, &reviewer, now)
    })
    .await
}

/// A page of the events behind a finding, with the matches masked.
#[tauri::command]
pub async fn pii_finding_events(
    finding_id: String,
    offset: i64,
    limit: i64,
    state: State<'_, AppState>,
) -> Result<FindingEvents, IpcError> {
    on_workspace(&state, move |ws| {
        pii::drill::finding_events(ws, &finding_id, offset, limit)
    })
    .await
}

/// The full value of one hit, for a named reviewer with a reason; the access is logged first.
#[tauri::command]
pub async fn pii_reveal(
    finding_id: String,
    event_seq: i64,
    reviewer: String,
    reason: String,
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<Revealed, IpcError> {
    let now = now_us(now_ms)?;
    on_workspace(&state, move |ws| {
        pii::drill::reveal(ws, &finding_id, event_seq, &reviewer, &reason, now)
    })
    .await
}

#[tauri::command]
pub async fn pii_reveal_log(state: State<'_, AppState>) -> Result<Vec<RevealLogEntry>, IpcError> {
    on_workspace(&state, pii::drill::reveal_log).await
}

/// How many events are older than a cut-off (ms since the epoch), by source file.
#[tauri::command]
pub async fn pii_retention(
    cutoff_ms: f64,
    state: State<'_, AppState>,
) -> Result<RetentionSummary, IpcError> {
    let cutoff = now_us(cutoff_ms)?;
    on_workspace(&state, move |ws| pii::retention::older_than(ws, cutoff)).await
}

/// Write a redacted copy into a folder the user picks; null if the dialog was dismissed.
/// `keep_from_ms` leaves out older events (the retention helper); `vendor_shape` writes each
/// source file's records in their original shape instead of canonical rows.
#[allow(clippy::too_many_arguments)]
#[tauri::command]
pub async fn pii_export(
    rules: RedactionRules,
    format: ExportFormat,
    keep_from_ms: Option<f64>,
    vendor_shape: bool,
    job_id: String,
    now_ms: f64,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<Option<ExportReport>, IpcError> {
    let now = now_us(now_ms)?;
    let keep_from_us = keep_from_ms.map(now_us).transpose()?;
    let Some(dir) = rfd::AsyncFileDialog::new()
        .set_title("Folder for the redacted export")
        .pick_folder()
        .await
    else {
        return Ok(None);
    };
    let out_dir = dir.path().to_path_buf();
    let opts = ExportOptions {
        out_dir,
        format,
        keep_from_us,
        salt: None,
        now_us: now,
        vendor_shape,
        include_quarantine: false,
    };
    run_job(&state, &job_id, channel, move |ws, ctx| {
        stitchbook_engine::model::ensure_built(ws, ctx)?;
        pii::export(ws, &rules, &opts, ctx)
    })
    .await
    .map(Some)
}

/// Write the audit report (HTML, with CSV and JSON beside it) where the user picks; the
/// files written, or null if dismissed.
#[tauri::command]
pub async fn pii_report(
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<Option<Vec<String>>, IpcError> {
    let now = now_us(now_ms)?;
    let Some(file) = rfd::AsyncFileDialog::new()
        .set_title("Save the PII audit report")
        .set_file_name("pii-audit.html")
        .add_filter("HTML", &["html"])
        .save_file()
        .await
    else {
        return Ok(None);
    };
    let out = file.path().to_path_buf();
    on_workspace(&state, move |ws| {
        let r = pii::audit_report(ws, now)?;
        pii::write_report(&r, &out)
    })
    .await
    .map(|paths| {
        Some(
            paths
                .iter()
                .map(|p| p.to_string_lossy().to_string())
                .collect(),
        )
    })
}
