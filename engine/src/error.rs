//! Typed engine errors. Every failure the UI or CLI may show is one of these; the IPC
//! boundary flattens them to `{code, message}` via [`EngineError::to_ipc`].

use std::path::PathBuf;

use serde::Serialize;
use ts_rs::TS;

/// The small set of codes a front end may branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum ErrorCode {
    Io,
    Database,
    Cancelled,
    UnreadableFile,
    UnsupportedFormat,
    WorkspaceTooNew,
    InvalidMapping,
    InvalidArgument,
    InvalidQuery,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Database(#[from] duckdb::Error),
    #[error("cancelled")]
    Cancelled,
    #[error("{path}: {reason}")]
    UnreadableFile { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    UnsupportedFormat { path: PathBuf, reason: String },
    #[error("workspace {path} was written by a newer Stitchbook (schema version {found}, this build supports up to {supported}); upgrade Stitchbook to open it")]
    WorkspaceTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("mapping file {path}: {reason}")]
    InvalidMapping { path: PathBuf, reason: String },
    #[error("{0}")]
    InvalidArgument(String),
    /// An insight query that cannot run; `code` is stable (e.g. `funnel_needs_two_steps`).
    #[error("{code}: {message}")]
    InvalidQuery { code: &'static str, message: String },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The one error shape that crosses the IPC boundary.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct IpcError {
    pub code: ErrorCode,
    pub message: String,
}

impl EngineError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn unreadable(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EngineError::UnreadableFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn unsupported(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EngineError::UnsupportedFormat {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Io { .. } => ErrorCode::Io,
            EngineError::Database(_) => ErrorCode::Database,
            EngineError::Cancelled => ErrorCode::Cancelled,
            EngineError::UnreadableFile { .. } => ErrorCode::UnreadableFile,
            EngineError::UnsupportedFormat { .. } => ErrorCode::UnsupportedFormat,
            EngineError::WorkspaceTooNew { .. } => ErrorCode::WorkspaceTooNew,
            EngineError::InvalidMapping { .. } => ErrorCode::InvalidMapping,
            EngineError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            EngineError::InvalidQuery { .. } => ErrorCode::InvalidQuery,
        }
    }

    pub fn to_ipc(&self) -> IpcError {
        IpcError {
            code: self.code(),
            message: self.to_string(),
        }
    }

    /// DuckDB reports an interrupted query as a generic failure; callers that armed a
    /// cancel token turn it into `Cancelled` with this.
    pub fn cancelled_if(self, cancelled: bool) -> Self {
        if cancelled {
            EngineError::Cancelled
        } else {
            self
        }
    }
}
