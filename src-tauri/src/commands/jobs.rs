//! Long jobs: the UI mints a job id, the command registers a cancel token under it, and
//! `cancel_job` interrupts the engine (and DuckDB) mid-flight.

use stitchbook_engine::{CancelToken, IpcError};
use tauri::State;

use super::lock_error;
use crate::state::AppState;

pub fn start(state: &AppState, job_id: &str) -> Result<CancelToken, IpcError> {
    let token = CancelToken::new();
    state
        .jobs
        .lock()
        .map_err(|_| lock_error())?
        .insert(job_id.to_string(), token.clone());
    Ok(token)
}

pub fn finish(state: &AppState, job_id: &str) {
    if let Ok(mut jobs) = state.jobs.lock() {
        jobs.remove(job_id);
    }
}

/// Cancel a running job; false when no job has that id (it already ended).
#[tauri::command]
pub fn cancel_job(job_id: String, state: State<'_, AppState>) -> Result<bool, IpcError> {
    let jobs = state.jobs.lock().map_err(|_| lock_error())?;
    Ok(match jobs.get(&job_id) {
        Some(t) => {
            t.cancel();
            true
        }
        None => false,
    })
}
