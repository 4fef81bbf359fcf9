//! Tauri commands: each parses its arguments, calls the engine off the UI thread and maps
//! the error to the one `{code, message}` shape.

pub mod data;
pub mod insights;
pub mod jobs;
pub mod persons;
pub mod pii;
pub mod workspace;

use std::sync::Arc;

use stitchbook_engine::{EngineError, ErrorCode, IpcError, Workspace};

use crate::state::{AppState, OpenWorkspace};

/// The one error shape the UI sees.
pub fn ipc(e: EngineError) -> IpcError {
    e.to_ipc()
}

pub fn lock_error() -> IpcError {
    IpcError::new(
        ErrorCode::Internal,
        "a task on the workspace failed and left it locked; reopen the workspace",
    )
}

pub fn no_workspace() -> IpcError {
    IpcError::new(ErrorCode::InvalidArgument, "no workspace is open")
}

fn internal(e: impl std::fmt::Display) -> IpcError {
    IpcError::new(
        ErrorCode::Internal,
        format!("the task stopped unexpectedly: {e}"),
    )
}

/// Refuse to replace or close the open workspace while a job writes to it.
pub fn no_job_running(state: &AppState) -> Result<(), IpcError> {
    if state.jobs.lock().map_err(|_| lock_error())?.is_empty() {
        Ok(())
    } else {
        Err(IpcError::new(
            ErrorCode::InvalidArgument,
            "a job is still running on this workspace: wait for it or cancel it first",
        ))
    }
}

/// Make `ws` the open workspace.
pub fn install(state: &AppState, ws: Workspace) -> Result<String, IpcError> {
    let open = OpenWorkspace::new(ws).map_err(ipc)?;
    let shown = open.path.clone();
    *state.open.lock().map_err(|_| lock_error())? = Some(Arc::new(open));
    Ok(shown)
}

/// The open workspace, opening the one named at start-up first if need be (on a blocking
/// thread: opening may migrate the file).
pub async fn current(state: &AppState) -> Result<Option<Arc<OpenWorkspace>>, IpcError> {
    let pending = state.pending.lock().map_err(|_| lock_error())?.take();
    if let Some(p) = pending {
        let ws = tauri::async_runtime::spawn_blocking(move || Workspace::open(&p))
            .await
            .map_err(internal)?
            .map_err(ipc)?;
        install(state, ws)?;
    }
    Ok(state.open.lock().map_err(|_| lock_error())?.clone())
}

/// Run `f` on the open workspace's query handle on a blocking thread: DuckDB work never runs
/// on the UI thread, and never waits for a job (jobs hold the other handle).
pub async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, IpcError>
where
    T: Send + 'static,
    F: FnOnce(&Workspace) -> Result<T, IpcError> + Send + 'static,
{
    let open = current(state).await?.ok_or_else(no_workspace)?;
    tauri::async_runtime::spawn_blocking(move || {
        let ws = open.reader.lock().map_err(|_| lock_error())?;
        f(&ws)
    })
    .await
    .map_err(internal)?
}

/// [`blocking`] for queries that read persons and sessions: they need a fresh model. A stale
/// one is an error (`staleModel`, with the reason) the UI answers by offering the rebuild as
/// a visible job; nothing is rebuilt behind the user's back.
pub async fn on_workspace<T, F>(state: &AppState, f: F) -> Result<T, IpcError>
where
    T: Send + 'static,
    F: FnOnce(&Workspace) -> stitchbook_engine::Result<T> + Send + 'static,
{
    blocking(state, move |ws| {
        stitchbook_engine::model::require_fresh(ws).map_err(ipc)?;
        f(ws).map_err(ipc)
    })
    .await
}

/// [`blocking`] for what does not read the model (settings, the import list, saved queries).
pub async fn on_reader<T, F>(state: &AppState, f: F) -> Result<T, IpcError>
where
    T: Send + 'static,
    F: FnOnce(&Workspace) -> stitchbook_engine::Result<T> + Send + 'static,
{
    blocking(state, move |ws| f(ws).map_err(ipc)).await
}

/// `now` for analytics: the instant the UI sent (milliseconds since the epoch), so the
/// engine never reads the clock.
pub fn now_us(now_ms: f64) -> Result<i64, IpcError> {
    if !now_ms.is_finite() || now_ms < 0.0 {
        return Err(IpcError::new(
            ErrorCode::InvalidArgument,
            format!("\"now\" must be milliseconds since 1970 (got {now_ms})"),
        ));
    }
    Ok((now_ms * 1000.0) as i64)
}

/// Run a long job on the open workspace's writing handle with progress on `channel`,
/// cancellable under `job_id`. Queries go on meanwhile on the other handle.
pub async fn run_job<T, F>(
    state: &AppState,
    job_id: &str,
    channel: tauri::ipc::Channel<stitchbook_engine::JobEvent>,
    f: F,
) -> Result<T, IpcError>
where
    T: Send + 'static,
    F: FnOnce(
            &stitchbook_engine::Workspace,
            &stitchbook_engine::JobCtx,
        ) -> stitchbook_engine::Result<T>
        + Send
        + 'static,
{
    let open = current(state).await?.ok_or_else(no_workspace)?;
    let cancel = jobs::start(state, job_id)?;
    let result = tauri::async_runtime::spawn_blocking(move || {
        let ws = open.writer.lock().map_err(|_| lock_error())?;
        let ctx = stitchbook_engine::JobCtx::new(move |ev| drop(channel.send(ev.clone())), cancel);
        f(&ws, &ctx).map_err(ipc)
    })
    .await
    .map_err(internal);
    jobs::finish(state, job_id);
    result?
}
