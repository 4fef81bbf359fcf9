//! Stitchbook desktop shell. Commands only parse, call the engine and map the error; the
//! logic lives in `stitchbook-engine`.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod state;

use commands::{data, insights, jobs, persons, pii, workspace};
use state::AppState;

fn main() {
    let initial = state::initial_workspace(std::env::args().skip(1));
    let result = tauri::Builder::default()
        .manage(AppState::new(initial))
        .invoke_handler(tauri::generate_handler![
            workspace::current_workspace,
            workspace::open_workspace,
            workspace::close_workspace,
            workspace::recent_workspaces,
            workspace::pick_workspace,
            workspace::pick_new_workspace,
            workspace::open_demo,
            workspace::workspace_summary,
            workspace::choose_import,
            workspace::preview_import,
            workspace::run_import,
            jobs::cancel_job,
            insights::run_insight,
            insights::drill,
            insights::export_chart,
            insights::save_text_file,
            insights::saved_insights,
            insights::save_insight,
            insights::delete_insight,
            insights::cohorts,
            insights::save_cohort,
            insights::delete_cohort,
            insights::cohort_members,
            persons::search_persons,
            persons::person_detail,
            persons::person_timeline,
            persons::timeline_event_properties,
            data::catalog_events,
            data::event_properties,
            data::quality_issues,
            data::quarantine_rows,
            data::run_sql,
            data::sql_schema,
            data::model_settings,
            data::set_model_setting,
            data::now_setting,
            data::set_now_setting,
            data::resource_settings,
            data::set_resource_setting,
            data::rebuild_model,
            data::update_model,
            pii::pii_scan,
            pii::pii_scan_info,
            pii::pii_findings,
            pii::pii_review,
            pii::pii_export,
            pii::pii_report,
            pii::pii_finding_events,
            pii::pii_reveal,
            pii::pii_reveal_log,
            pii::pii_retention,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("stitchbook: could not start the app: {e}");
        std::process::exit(1);
    }
}
