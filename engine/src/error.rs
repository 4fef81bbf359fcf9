//! Typed engine errors. Every failure the UI or CLI may show is one of these; the IPC
//! boundary flattens them to `{code, reason, message}` via [`EngineError::to_ipc`]: `code` is
//! what a front end branches on, `reason` a stable finer code where there is one (an invalid
//! query's, a stale model's), `message` the sentence a person reads.

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
    /// The derived tables do not match the data, settings or code: queries need a model
    /// build first, which the front end offers as a visible job (`reason` says why).
    StaleModel,
    /// A failure of Stitchbook itself, not of the input.
    Internal,
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
    /// Queries need the model rebuilt first; `reason` is stable (see
    /// [`crate::model::Staleness`]).
    #[error("{message}")]
    ModelStale {
        reason: &'static str,
        message: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The one error shape that crosses the IPC boundary.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct IpcError {
    pub code: ErrorCode,
    /// A stable finer code, where there is one: an invalid query's (`funnel_needs_two_steps`),
    /// a stale model's (`settings_changed`).
    pub reason: Option<String>,
    pub message: String,
}

impl IpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        IpcError {
            code,
            reason: None,
            message: message.into(),
        }
    }
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
            EngineError::ModelStale { .. } => ErrorCode::StaleModel,
            EngineError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The stable finer code, where there is one.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            EngineError::InvalidQuery { code, .. } => Some(code),
            EngineError::ModelStale { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub fn to_ipc(&self) -> IpcError {
        IpcError {
            code: self.code(),
            reason: self.reason().map(str::to_string),
            message: match self {
                // The code travels in `reason`; the message is the sentence alone.
                EngineError::InvalidQuery { message, .. } => message.clone(),
                _ => self.to_string(),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The IPC error's JSON is a contract the UI branches on: pin its shape.
    #[test]
    fn ipc_error_json_is_pinned() {
        let json = |e: EngineError| serde_json::to_value(e.to_ipc()).unwrap();
        assert_eq!(
            json(EngineError::InvalidQuery {
                code: "funnel_needs_two_steps",
                message: "a funnel needs at least two steps".into(),
            }),
            serde_json::json!({"code": "invalidQuery", "reason": "funnel_needs_two_steps",
                "message": "a funnel needs at least two steps"})
        );
        assert_eq!(
            json(EngineError::ModelStale {
                reason: "settings_changed",
                message: "the model settings changed since the model was built".into(),
            }),
            serde_json::json!({"code": "staleModel", "reason": "settings_changed",
                "message": "the model settings changed since the model was built"})
        );
        assert_eq!(
            json(EngineError::Cancelled),
            serde_json::json!({"code": "cancelled", "reason": null, "message": "cancelled"})
        );
        assert_eq!(
            json(EngineError::Internal("the task panicked".into())),
            serde_json::json!({"code": "internal", "reason": null,
                "message": "internal error: the task panicked"})
        );
    }
}
