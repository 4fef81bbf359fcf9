//! Stitchbook desktop shell. Commands only parse, call the engine and map the error; the
//! logic lives in `stitchbook-engine`.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod state;

use state::AppState;

fn main() {
    let initial = state::initial_workspace(std::env::args().skip(1));
    let result = tauri::Builder::default()
        .manage(AppState::new(initial))
        .invoke_handler(tauri::generate_handler![
            commands::workspace::current_workspace,
            commands::workspace::open_workspace,
            commands::workspace::pick_workspace,
            commands::workspace::workspace_summary,
        ])
        .run(tauri::generate_context!());
    if let Err(e) = result {
        eprintln!("stitchbook: could not start the app: {e}");
        std::process::exit(1);
    }
}
