//! Open a workspace and summarise it.

use std::path::PathBuf;

use stitchbook_engine::info::{workspace_info, WorkspaceInfo};
use stitchbook_engine::{IpcError, Workspace};
use tauri::State;

use super::{ipc, lock_error};
use crate::state::AppState;

fn ensure_open(state: &AppState) -> Result<(), IpcError> {
    let pending = state.pending.lock().map_err(|_| lock_error())?.take();
    if let Some(p) = pending {
        let ws = Workspace::open(&p).map_err(ipc)?;
        *state.workspace.lock().map_err(|_| lock_error())? = Some(ws);
    }
    Ok(())
}

/// The open workspace's path, or null.
#[tauri::command]
pub fn current_workspace(state: State<'_, AppState>) -> Result<Option<String>, IpcError> {
    ensure_open(&state)?;
    let guard = state.workspace.lock().map_err(|_| lock_error())?;
    Ok(guard
        .as_ref()
        .map(|w| w.path().to_string_lossy().to_string()))
}

#[tauri::command]
pub fn open_workspace(path: String, state: State<'_, AppState>) -> Result<String, IpcError> {
    let ws = Workspace::open(PathBuf::from(&path)).map_err(ipc)?;
    let shown = ws.path().to_string_lossy().to_string();
    *state.workspace.lock().map_err(|_| lock_error())? = Some(ws);
    Ok(shown)
}

/// Native "open workspace" dialog; returns the chosen path, or null if dismissed.
#[tauri::command]
pub async fn pick_workspace() -> Result<Option<String>, IpcError> {
    let picked = rfd::AsyncFileDialog::new()
        .set_title("Open a Stitchbook workspace")
        .add_filter("DuckDB workspace", &["duckdb", "db"])
        .pick_file()
        .await;
    Ok(picked.map(|f| f.path().to_string_lossy().to_string()))
}

#[tauri::command]
pub fn workspace_summary(state: State<'_, AppState>) -> Result<WorkspaceInfo, IpcError> {
    ensure_open(&state)?;
    let guard = state.workspace.lock().map_err(|_| lock_error())?;
    let ws = guard.as_ref().ok_or_else(|| IpcError {
        code: stitchbook_engine::ErrorCode::InvalidArgument,
        message: "no workspace is open".into(),
    })?;
    workspace_info(ws, 15).map_err(ipc)
}
