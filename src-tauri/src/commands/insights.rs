//! Insights: run, drill to persons, export (chart images by the engine, CSV), saved
//! insights and cohorts.

use std::path::PathBuf;

use stitchbook_engine::insights::cohort::{self, SavedCohort};
use stitchbook_engine::insights::saved::{self, SavedInsight};
use stitchbook_engine::insights::{self, Answer, Query};
use stitchbook_engine::model::person::PersonSummary;
use stitchbook_engine::{EngineError, IpcError};
use tauri::State;

use super::{ipc, now_us, on_reader, on_workspace};
use crate::state::AppState;

/// Run an insight as of the end of the data, or as of `now_ms` (the UI's clock) when the
/// workspace's insights.now setting says so.
#[tauri::command]
pub async fn run_insight(
    query: Query,
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<Answer, IpcError> {
    let clock = now_us(now_ms)?;
    on_workspace(&state, move |ws| insights::answer(ws, &query, None, clock)).await
}

/// The persons behind one number (see the engine's `insights::drill` for `cell`), as of the
/// same instant as [`run_insight`].
#[tauri::command]
pub async fn drill(
    query: Query,
    now_ms: f64,
    cell: String,
    state: State<'_, AppState>,
) -> Result<Vec<PersonSummary>, IpcError> {
    let clock = now_us(now_ms)?;
    on_workspace(&state, move |ws| {
        let now = insights::now::resolve(ws, None, clock)?.now_us;
        insights::drill(ws, &query, now, &cell)
    })
    .await
}

/// Render the insight with the engine's chart renderer to a file the user picks (PNG or
/// SVG); the path written, or null if the dialog was dismissed.
#[tauri::command]
pub async fn export_chart(
    query: Query,
    now_ms: f64,
    title: String,
    format: String,
    state: State<'_, AppState>,
) -> Result<Option<String>, IpcError> {
    let clock = now_us(now_ms)?;
    let ext = match format.as_str() {
        "png" | "svg" => format.clone(),
        other => {
            return Err(ipc(EngineError::InvalidArgument(format!(
                "a chart is exported as png or svg, not {other}"
            ))))
        }
    };
    let stem: String = title
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    let picked = rfd::AsyncFileDialog::new()
        .set_title("Export chart")
        .set_file_name(format!("{stem}.{ext}"))
        .add_filter(ext.to_uppercase(), &[ext.as_str()])
        .save_file()
        .await;
    let Some(file) = picked else { return Ok(None) };
    let path: PathBuf = file.path().to_path_buf();
    let shown = path.to_string_lossy().to_string();
    on_workspace(&state, move |ws| {
        let now = insights::now::resolve(ws, None, clock)?.now_us;
        let r = insights::run(ws, &query, now)?;
        stitchbook_engine::chart::render(&r, &title, &path, stitchbook_engine::chart::SIZE)
    })
    .await?;
    Ok(Some(shown))
}

/// Save text the UI produced (CSV of an insight's numbers, a member list) to a file the user
/// picks; the path written, or null if dismissed.
#[tauri::command]
pub async fn save_text_file(
    suggested_name: String,
    contents: String,
) -> Result<Option<String>, IpcError> {
    let picked = rfd::AsyncFileDialog::new()
        .set_title("Export")
        .set_file_name(&suggested_name)
        .add_filter("CSV", &["csv"])
        .save_file()
        .await;
    let Some(file) = picked else { return Ok(None) };
    let path = file.path().to_path_buf();
    std::fs::write(&path, contents).map_err(|e| ipc(EngineError::io(&path, e)))?;
    Ok(Some(path.to_string_lossy().to_string()))
}

#[tauri::command]
pub async fn saved_insights(state: State<'_, AppState>) -> Result<Vec<SavedInsight>, IpcError> {
    on_reader(&state, saved::list).await
}

#[tauri::command]
pub async fn save_insight(
    name: String,
    query: Query,
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<(), IpcError> {
    let now = now_us(now_ms)?;
    on_reader(&state, move |ws| saved::save(ws, &name, &query, now)).await
}

#[tauri::command]
pub async fn delete_insight(name: String, state: State<'_, AppState>) -> Result<bool, IpcError> {
    on_reader(&state, move |ws| saved::delete(ws, &name)).await
}

#[tauri::command]
pub async fn cohorts(state: State<'_, AppState>) -> Result<Vec<SavedCohort>, IpcError> {
    on_workspace(&state, cohort::list).await
}

#[tauri::command]
pub async fn save_cohort(
    name: String,
    definition: cohort::CohortDef,
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<(), IpcError> {
    let now = now_us(now_ms)?;
    on_workspace(&state, move |ws| cohort::save(ws, &name, &definition, now)).await
}

#[tauri::command]
pub async fn delete_cohort(name: String, state: State<'_, AppState>) -> Result<bool, IpcError> {
    on_reader(&state, move |ws| cohort::delete(ws, &name)).await
}

#[tauri::command]
pub async fn cohort_members(
    name: String,
    now_ms: f64,
    state: State<'_, AppState>,
) -> Result<Vec<PersonSummary>, IpcError> {
    let clock = now_us(now_ms)?;
    on_workspace(&state, move |ws| {
        let now = insights::now::resolve(ws, None, clock)?.now_us;
        cohort::members(ws, &name, now)
    })
    .await
}
