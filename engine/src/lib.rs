//! Stitchbook engine: load product-analytics exports into one canonical, deduplicated
//! DuckDB workspace and account for every row. No Tauri here; the desktop shell and the
//! `stitchbook` CLI are thin callers of this library.

pub mod bench;
pub mod catalog;
pub mod chart;
pub mod console;
pub mod demo;
pub mod error;
pub mod generate;
pub mod info;
pub mod ingest;
pub mod insights;
pub mod jobs;
pub mod model;
pub mod pii;
pub mod recent;
pub mod remembered;
pub mod resources;
pub mod sql;
pub mod timefmt;
pub mod workspace;

pub use error::{EngineError, ErrorCode, IpcError, Result};
pub use jobs::{CancelToken, JobCtx, JobEvent};
pub use workspace::Workspace;
