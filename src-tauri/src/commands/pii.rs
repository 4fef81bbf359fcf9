//! The PII audit: scan with progress, the findings with their reviews, review decisions,
//! the verified redacted export and the audit report.

use stitchbook_engine::pii::{
    self, ExportFormat, ExportOptions, ExportReport, RedactionRules, ReviewStatus, ReviewedFinding,
    ScanInfo, ScanResult,
};
use stitchbook_engine::{IpcError, JobEvent};
use tauri::ipc::Channel;
use tauri::State;

use super::{now_us, on_workspace, run_job};
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
        pii::scan(ws, now, ctx)
    })
    .await
}

#[tauri::command]
pub async fn pii_scan_info(state: State<'_, AppState>) -> Result<Option<ScanInfo>, IpcError> {
    on_workspace(&state, pii::scan_info).await
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

/// Write a redacted copy into a folder the user picks; null if the dialog was dismissed.
#[tauri::command]
pub async fn pii_export(
    rules: RedactionRules,
    format: ExportFormat,
    job_id: String,
    now_ms: f64,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<Option<ExportReport>, IpcError> {
    let now = now_us(now_ms)?;
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
        keep_from_us: None,
        salt: None,
        now_us: now,
        vendor_shape: false,
    };
    run_job(&state, &job_id, channel, move |ws, ctx| {
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
