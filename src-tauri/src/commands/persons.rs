//! Persons and the session timeline (the support agent's screen).

use stitchbook_engine::model::person::{self, PersonDetail, PersonSummary};
use stitchbook_engine::model::timeline::{self, TimelinePage};
use stitchbook_engine::{EngineError, IpcError};
use tauri::State;

use super::on_workspace;
use crate::state::AppState;

/// Persons whose ids, email or name contain `text`, most recently seen first.
#[tauri::command]
pub async fn search_persons(
    text: String,
    limit: usize,
    state: State<'_, AppState>,
) -> Result<Vec<PersonSummary>, IpcError> {
    on_workspace(&state, move |ws| {
        person::search(ws, Some(text.trim()), limit.clamp(1, 500))
    })
    .await
}

/// Everything about the person any of whose ids (or whose email) is `id`.
#[tauri::command]
pub async fn person_detail(
    id: String,
    state: State<'_, AppState>,
) -> Result<PersonDetail, IpcError> {
    on_workspace(&state, move |ws| person::detail(ws, &id, true, 500)).await
}

/// A page of the person's timeline (one session's, when `session` is given).
#[tauri::command]
pub async fn person_timeline(
    person_id: String,
    session: Option<String>,
    offset: usize,
    limit: usize,
    with_sessions: bool,
    state: State<'_, AppState>,
) -> Result<TimelinePage, IpcError> {
    on_workspace(&state, move |ws| {
        let pid = person::person_of(ws, &person_id)?.ok_or_else(|| {
            EngineError::InvalidArgument(format!("no person has the id \"{person_id}\""))
        })?;
        timeline::page(ws, &pid, session.as_deref(), offset, limit, with_sessions)
    })
    .await
}

/// One timeline event's properties (JSON text) for the inspector.
#[tauri::command]
pub async fn timeline_event_properties(
    event_seq: i64,
    state: State<'_, AppState>,
) -> Result<String, IpcError> {
    on_workspace(&state, move |ws| timeline::event_properties(ws, event_seq)).await
}
