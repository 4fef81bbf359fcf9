//! Open, create and summarise workspaces; the recent list; the demo.

use std::path::PathBuf;

use stitchbook_engine::info::{workspace_info, WorkspaceInfo};
use stitchbook_engine::ingest::preview::{FilePreview, ImportChoice, PREVIEW_RECORDS};
use stitchbook_engine::ingest::{self, ImportOptions};
use stitchbook_engine::recent::{self, RecentWorkspace};
use stitchbook_engine::{IpcError, JobCtx, JobEvent, Workspace};
use tauri::ipc::Channel;
use tauri::State;

use super::{current, install, internal, ipc, jobs, lock_error, no_job_running, on_reader};
use crate::state::{demo_path, AppState};

/// The open workspace's path, or null. Answers at once, even while a job runs.
#[tauri::command]
pub async fn current_workspace(state: State<'_, AppState>) -> Result<Option<String>, IpcError> {
    Ok(current(&state).await?.map(|o| o.path.clone()))
}

fn remember(path: &str, opened_at: &str) {
    if let Some(file) = recent::default_file() {
        // The recent list is a convenience: failing to write it must not fail the open.
        if let Err(e) = recent::touch(&file, path, opened_at) {
            eprintln!("stitchbook: could not update the recent list: {e}");
        }
    }
}

/// Open (or create) the workspace at `path`; it becomes the first recent workspace.
#[tauri::command]
pub async fn open_workspace(
    path: String,
    opened_at: String,
    state: State<'_, AppState>,
) -> Result<String, IpcError> {
    no_job_running(&state)?;
    // Let go of the workspace open now first: the same file may be opened again.
    *state.open.lock().map_err(|_| lock_error())? = None;
    let ws = tauri::async_runtime::spawn_blocking(move || Workspace::open(PathBuf::from(&path)))
        .await
        .map_err(internal)?
        .map_err(ipc)?;
    let shown = install(&state, ws)?;
    *state.pending.lock().map_err(|_| lock_error())? = None;
    remember(&shown, &opened_at);
    Ok(shown)
}

/// Close the open workspace (back to the welcome screen).
#[tauri::command]
pub fn close_workspace(state: State<'_, AppState>) -> Result<(), IpcError> {
    no_job_running(&state)?;
    *state.pending.lock().map_err(|_| lock_error())? = None;
    *state.open.lock().map_err(|_| lock_error())? = None;
    Ok(())
}

#[tauri::command]
pub fn recent_workspaces() -> Result<Vec<RecentWorkspace>, IpcError> {
    match recent::default_file() {
        Some(f) => recent::list(&f).map_err(ipc),
        None => Ok(Vec::new()),
    }
}

/// Native "open workspace" dialog; the chosen path, or null if dismissed.
#[tauri::command]
pub async fn pick_workspace() -> Result<Option<String>, IpcError> {
    let picked = rfd::AsyncFileDialog::new()
        .set_title("Open a Stitchbook workspace")
        .add_filter("DuckDB workspace", &["duckdb", "db"])
        .pick_file()
        .await;
    Ok(picked.map(|f| f.path().to_string_lossy().to_string()))
}

/// Native "new workspace" dialog; the chosen path (with a `.duckdb` extension), or null.
#[tauri::command]
pub async fn pick_new_workspace() -> Result<Option<String>, IpcError> {
    let mut dialog = rfd::AsyncFileDialog::new()
        .set_title("Create a Stitchbook workspace")
        .set_file_name("workspace.duckdb")
        .add_filter("DuckDB workspace", &["duckdb"]);
    if let Some(dir) = Workspace::default_dir() {
        dialog = dialog.set_directory(dir);
    }
    Ok(dialog.save_file().await.map(|f| {
        let mut p = f.path().to_path_buf();
        if p.extension().is_none() {
            p.set_extension("duckdb");
        }
        p.to_string_lossy().to_string()
    }))
}

/// Open the demo workspace, building it from the project's sample data when it is missing
/// (progress on `channel`, cancellable under `job_id`).
#[tauri::command]
pub async fn open_demo(
    job_id: String,
    opened_at: String,
    rebuild: bool,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<String, IpcError> {
    let out = demo_path().ok_or_else(|| {
        IpcError::new(
            stitchbook_engine::ErrorCode::Io,
            "this system has no app data folder for the demo workspace",
        )
    })?;
    no_job_running(&state)?;
    let target = out.clone();
    let shown_target = target.to_string_lossy().to_string();
    {
        let mut slot = state.open.lock().map_err(|_| lock_error())?;
        if slot.as_ref().is_some_and(|o| o.path == shown_target) && !rebuild {
            drop(slot);
            *state.pending.lock().map_err(|_| lock_error())? = None;
            remember(&shown_target, &opened_at);
            return Ok(shown_target);
        }
        // Let go of the workspace open now (perhaps the demo file, which may be rebuilt).
        *slot = None;
    }
    let cancel = jobs::start(&state, &job_id)?;
    let result = tauri::async_runtime::spawn_blocking(move || {
        let ws = if target.exists() && !rebuild {
            Workspace::open(&target).map_err(ipc)?
        } else {
            let sample = stitchbook_engine::demo::source_sample_data();
            let ctx = JobCtx::new(move |ev| drop(channel.send(ev.clone())), cancel);
            // The app's own demo file, missing or rebuilt at the user's request.
            stitchbook_engine::demo::build(&sample, &target, true, &ctx).map_err(ipc)?
        };
        Ok::<_, IpcError>(ws)
    })
    .await
    .map_err(internal);
    jobs::finish(&state, &job_id);
    install(&state, result??)?;
    *state.pending.lock().map_err(|_| lock_error())? = None;
    let shown = out.to_string_lossy().to_string();
    remember(&shown, &opened_at);
    Ok(shown)
}

#[tauri::command]
pub async fn workspace_summary(state: State<'_, AppState>) -> Result<WorkspaceInfo, IpcError> {
    on_reader(&state, |ws| workspace_info(ws, 15)).await
}

/// Test automation cannot drive the native file dialog: when this variable is set (by the
/// end-to-end tests), its paths (separated by the platform's path separator) are "picked".
const PICK_ENV: &str = "STITCHBOOK_PICK";

/// Files (or one folder) the user picks for import, held by the shell: the UI refers to
/// them by position and never sends a path to import.
async fn pick_import_paths(folder: bool) -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os(PICK_ENV) {
        return std::env::split_paths(&v).collect();
    }
    if folder {
        rfd::AsyncFileDialog::new()
            .set_title("Import a folder of exports")
            .pick_folder()
            .await
            .map(|f| vec![f.path().to_path_buf()])
            .unwrap_or_default()
    } else {
        rfd::AsyncFileDialog::new()
            .set_title("Import export files")
            .pick_files()
            .await
            .map(|v| v.iter().map(|f| f.path().to_path_buf()).collect())
            .unwrap_or_default()
    }
}

/// Step 1 of the import wizard: pick files or a folder, and preview each file (detected
/// vendor and format, the first rows mapped to the canonical columns). Null if the dialog
/// was dismissed.
#[tauri::command]
pub async fn choose_import(
    folder: bool,
    state: State<'_, AppState>,
) -> Result<Option<Vec<FilePreview>>, IpcError> {
    let picked = pick_import_paths(folder).await;
    if picked.is_empty() {
        return Ok(None);
    }
    let files = tauri::async_runtime::spawn_blocking(move || {
        let files = ingest::expand_paths(&picked)?;
        let previews = files
            .iter()
            .map(|f| ingest::preview::preview(f, &ImportOptions::default(), PREVIEW_RECORDS))
            .collect::<stitchbook_engine::Result<Vec<_>>>()?;
        Ok::<_, stitchbook_engine::EngineError>((files, previews))
    })
    .await
    .map_err(internal)?
    .map_err(ipc)?;
    *state.import_files.lock().map_err(|_| lock_error())? = files.0;
    Ok(Some(files.1))
}

fn chosen_file(state: &AppState, index: usize) -> Result<PathBuf, IpcError> {
    state
        .import_files
        .lock()
        .map_err(|_| lock_error())?
        .get(index)
        .cloned()
        .ok_or_else(|| {
            IpcError::new(
                stitchbook_engine::ErrorCode::InvalidArgument,
                format!("no picked file number {index}; pick the files again"),
            )
        })
}

/// Preview one picked file again with a format override or a column mapping.
#[tauri::command]
pub async fn preview_import(
    choice: ImportChoice,
    state: State<'_, AppState>,
) -> Result<FilePreview, IpcError> {
    let path = chosen_file(&state, choice.index)?;
    let opts = choice.options().map_err(ipc)?;
    tauri::async_runtime::spawn_blocking(move || {
        ingest::preview::preview(&path, &opts, PREVIEW_RECORDS)
    })
    .await
    .map_err(internal)?
    .map_err(ipc)
}

/// Step 2: import the chosen picked files, each with its options, with progress on
/// `channel` and Cancel under `job_id`, then rebuild the model.
#[tauri::command]
pub async fn run_import(
    job_id: String,
    files: Vec<ImportChoice>,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<ingest::ImportReport, IpcError> {
    let mut plan = Vec::with_capacity(files.len());
    for c in &files {
        plan.push((chosen_file(&state, c.index)?, c.options().map_err(ipc)?));
    }
    if plan.is_empty() {
        return Err(IpcError::new(
            stitchbook_engine::ErrorCode::InvalidArgument,
            "no files chosen for import",
        ));
    }
    super::run_job(&state, &job_id, channel, move |ws, ctx| {
        let report = ingest::import_plan(ws, &plan, ctx)?;
        if !report.cancelled && stitchbook_engine::model::is_stale(ws)? {
            stitchbook_engine::model::refresh(ws, ctx)?;
        }
        Ok(report)
    })
    .await
}
