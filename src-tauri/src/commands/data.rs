//! The data overview, the quarantine, the SQL console, the model settings and DuckDB's
//! resources.

use stitchbook_engine::catalog::{self, CatalogEvent, EventProperties, QualityIssue};
use stitchbook_engine::console::{self, SqlTable};
use stitchbook_engine::info::{self, QuarantineRow};
use stitchbook_engine::insights::now::NowMode;
use stitchbook_engine::model::{self, ModelSettings, RebuildReport};
use stitchbook_engine::resources::ResourceSettings;
use stitchbook_engine::{IpcError, JobEvent};
use tauri::ipc::Channel;
use tauri::State;

use super::{blocking, ipc, jobs, on_reader, on_workspace, run_job};
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
    on_workspace(&state, catalog::quality_remembered).await
}

#[tauri::command]
pub async fn quarantine_rows(
    import_id: Option<i64>,
    limit: i64,
    state: State<'_, AppState>,
) -> Result<Vec<QuarantineRow>, IpcError> {
    on_reader(&state, move |ws| {
        info::quarantine_rows(ws, import_id, limit.clamp(1, 10_000))
    })
    .await
}

/// One read-only query (see the engine's console for what is allowed), stopped after the
/// workspace's time limit or by `cancel_job(job_id)`.
#[tauri::command]
pub async fn run_sql(
    statement: String,
    limit: usize,
    job_id: String,
    state: State<'_, AppState>,
) -> Result<SqlTable, IpcError> {
    let cancel = jobs::start(&state, &job_id)?;
    // The console reads whatever tables exist, stale or not: no model check.
    let result = on_reader(&state, move |ws| {
        let timeout = stitchbook_engine::resources::sql_timeout(ws)?;
        console::run(ws, &statement, limit.clamp(1, 100_000), timeout, &cancel)
    })
    .await;
    jobs::finish(&state, &job_id);
    result
}

/// The tables and views with their columns, for the console's schema list.
#[tauri::command]
pub async fn sql_schema(state: State<'_, AppState>) -> Result<SqlTable, IpcError> {
    on_reader(&state, console::schema).await
}

#[tauri::command]
pub async fn model_settings(state: State<'_, AppState>) -> Result<ModelSettings, IpcError> {
    on_reader(&state, ModelSettings::load).await
}

#[tauri::command]
pub async fn set_model_setting(
    key: String,
    value: String,
    state: State<'_, AppState>,
) -> Result<ModelSettings, IpcError> {
    // No model build first: the setting is what the next rebuild will use.
    blocking(&state, move |ws| {
        ModelSettings::set(ws, &key, &value).map_err(ipc)
    })
    .await
}

/// What "now" is for insights: the end of the data (default) or the wall clock.
#[tauri::command]
pub async fn now_setting(state: State<'_, AppState>) -> Result<NowMode, IpcError> {
    blocking(&state, |ws| NowMode::load(ws).map_err(ipc)).await
}

#[tauri::command]
pub async fn set_now_setting(
    value: String,
    state: State<'_, AppState>,
) -> Result<NowMode, IpcError> {
    blocking(&state, move |ws| NowMode::set(ws, &value).map_err(ipc)).await
}

#[tauri::command]
pub async fn resource_settings(state: State<'_, AppState>) -> Result<ResourceSettings, IpcError> {
    blocking(&state, |ws| ResourceSettings::load(ws).map_err(ipc)).await
}

/// DuckDB's memory limit or threads for this workspace, applied at once.
#[tauri::command]
pub async fn set_resource_setting(
    key: String,
    value: String,
    state: State<'_, AppState>,
) -> Result<ResourceSettings, IpcError> {
    blocking(&state, move |ws| {
        ResourceSettings::set(ws, &key, &value).map_err(ipc)
    })
    .await
}

/// Rebuild identity, sessions and profiles, reporting progress on `channel`; cancellable
/// with `cancel_job(job_id)`, in which case the previous model stays.
#[tauri::command]
pub async fn rebuild_model(
    job_id: String,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<RebuildReport, IpcError> {
    run_job(&state, &job_id, channel, model::rebuild).await
}

/// Bring a stale model up to date as a visible job: an incremental pass when only imports
/// were added since the build, else a full rebuild (see `model::refresh`).
#[tauri::command]
pub async fn update_model(
    job_id: String,
    channel: Channel<JobEvent>,
    state: State<'_, AppState>,
) -> Result<RebuildReport, IpcError> {
    run_job(&state, &job_id, channel, model::refresh).await
}
