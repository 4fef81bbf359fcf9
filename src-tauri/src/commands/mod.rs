//! Tauri commands: each parses its arguments, calls the engine off the UI thread and maps
//! the error to the one `{code, message}` shape.

pub mod data;
pub mod insights;
pub mod jobs;
pub mod persons;
pub mod pii;
pub mod workspace;

use stitchbook_engine::{EngineError, ErrorCode, IpcError, Workspace};

use crate::state::AppState;

/// The one error shape the UI sees.
pub fn ipc(e: EngineError) -> IpcError {
    e.to_ipc()
}

pub fn lock_error() -> IpcError {
    IpcError {
        code: ErrorCode::Database,
        message: "the workspace is busy in another task".into(),
    }
}

pub fn no_workspace() -> IpcError {
    IpcError {
        code: ErrorCode::InvalidArgument,
        message: "no workspace is open".into(),
    }
}

fn internal(e: impl std::fmt::Display) -> IpcError {
    IpcError {
        code: ErrorCode::Io,
        message: format!("the task stopped unexpectedly: {e}"),
    }
}

/// Open the workspace named at start-up, if it has not been opened yet.
pub fn ensure_open(state: &AppState) -> Result<(), IpcError> {
    let pending = state.pending.lock().map_err(|_| lock_error())?.take();
    if let Some(p) = pending {
        let ws = Workspace::open(&p).map_err(ipc)?;
        *state.workspace.lock().map_err(|_| lock_error())? = Some(ws);
    }
    Ok(())
}

/// Run `f` on the open workspace on a blocking thread: DuckDB work never runs on the UI
/// thread, and the workspace lock serialises it.
pub async fn blocking<T, F>(state: &AppState, f: F) -> Result<T, IpcError>
where
    T: Send + 'static,
    F: FnOnce(&Workspace) -> Result<T, IpcError> + Send + 'static,
{
    ensure_open(state)?;
    let shared = state.workspace.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let guard = shared.lock().map_err(|_| lock_error())?;
        let ws = guard.as_ref().ok_or_else(no_workspace)?;
        f(ws)
    })
    .await
    .map_err(internal)?
}

/// [`blocking`], with the model built first (queries read persons and sessions).
pub async fn on_workspace<T, F>(state: &AppState, f: F) -> Result<T, IpcError>
where
    T: Send + 'static,
    F: FnOnce(&Workspace) -> stitchbook_engine::Result<T> + Send + 'static,
{
    blocking(state, move |ws| {
        stitchbook_engine::model::ensure_built(ws, &stitchbook_engine::JobCtx::silent())
            .map_err(ipc)?;
        f(ws).map_err(ipc)
    })
    .await
}

/// `now` for analytics: the instant the UI sent (milliseconds since the epoch), so the
/// engine never reads the clock.
pub fn now_us(now_ms: f64) -> Result<i64, IpcError> {
    if !now_ms.is_finite() || now_ms < 0.0 {
        return Err(IpcError {
            code: ErrorCode::InvalidArgument,
            message: format!("\"now\" must be milliseconds since 1970 (got {now_ms})"),
        });
    }
    Ok((now_ms * 1000.0) as i64)
}

/// Run a long job on the open workspace with progress on `channel`, cancellable under
/// `job_id`.
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
    let cancel = jobs::start(state, job_id)?;
    let result = blocking(state, move |ws| {
        let ctx = stitchbook_engine::JobCtx::new(move |ev| drop(channel.send(ev.clone())), cancel);
        f(ws, &ctx).map_err(ipc)
    })
    .await;
    jobs::finish(state, job_id);
    result
}
