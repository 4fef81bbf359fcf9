//! The data overview, the quarantine, the SQL console and the model settings.

use stitchbook_engine::catalog::{self, CatalogEvent, EventProperties, QualityIssue};
use stitchbook_engine::console::{self, SqlTable};
use stitchbook_engine::info::{self, QuarantineRow};
use stitchbook_engine::model::{self, ModelSettings, RebuildReport};
use stitchbook_engine::{IpcError, JobCtx, JobEvent};
use tauri::ipc::Channel;
use tauri::State;

use super::{ensure_open, internal, ipc, jobs, lock_error, no_workspace, on_workspace};
use crate::state::AppState;

#[tauri::command]
pub async fn catalog_events(state: State<'_, AppState>) -> Result<Vec<CatalogEvent>, IpcError> {
    on_workspace(&state, catalog::events).await
}

#[tauri::command]
pub async fn event_properties(
    event: String,
    state: State<'_, AppState>,
) -> Result<EventProperties, IpcError> {
    on_workspace(&state, move |ws| catalog::event_properties(ws, &event)).await
}

#[tauri::command]
pub async fn quality_issues(state: State<'_, AppState>) -> Result<Vec<QualityIssue>, IpcError> {
    on_workspace(&state, catalog::quality).await
}

#[tauri::command]
pub async fn quarantine_rows(
    import_id: Option<i64>,
    limit: i64,
    state: State<'_, AppState>,
) -> Result<Vec<QuarantineRow>, IpcError> {
    on_workspace(&state, move |ws| {
        info::quarantine_rows(ws, import_id, limit.clamp(1, 10_000))
    })
    .await
}

/// One read-only query (see the engine's console for what is allowed).
#[tauri::command]
pub async fn run_sql(
    statement: String,
    limit: usize,
    state: State<'_, AppState>,
) -> Result<SqlTable, IpcError> {
    on_workspace(&state, move |ws| {
        console::run_guarded(ws, &statement, limit.clamp(1, 100_000))
    })
    .await
}

/// The tables and views with their columns, for the console's schema list.
#[tauri::command]
pub async fn sql_schema(state: State<'_, AppState>) -> Result<SqlTable, IpcError> {
    on_workspace(&state, console::schema).await
}

#[tauri::command]
pub async fn model_settings(state: State<'_, AppState>) -> Result<ModelSettings, IpcError> {
    on_workspace(&state, ModelSettings::load).await
}

#[tauri::command]
pub async fn set_model_setting(
    key: String,
    value: String,
    state: State<'_, AppState>,
) -> Result<ModelSettings, IpcError> {
    ensure_open(&state)?;
    let shared = state.workspace.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let guard = shared.lock().map_err(|_| lock_error())?;
        let ws = guard.as_ref().ok_or_else(no_workspace)?;
        ModelSettings::set(ws, &key, &value).map_err(ipc)
    })
    .await
    .map_err(internal)?
}

/// Rebuild identity, sessions and profiles, reporting progress on `channel`; cancellable
/// with `cancel_job(job_id)`, in which case the previous model stays.
#[tauri::command]
pub async fn rebuild_model(
    job_id: String,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<RebuildReport, IpcError> {
    ensure_open(&state)?;
    let cancel = jobs::start(&state, &job_id)?;
    let shared = state.workspace.clone();
    let result = tauri::async_runtime::spawn_blocking(move || {
        let guard = shared.lock().map_err(|_| lock_error())?;
        let ws = guard.as_ref().ok_or_else(no_workspace)?;
        let ctx = JobCtx::new(move |ev| drop(channel.send(ev.clone())), cancel);
        model::rebuild(ws, &ctx).map_err(ipc)
    })
    .await
    .map_err(internal);
    jobs::finish(&state, &job_id);
    result?
}
