pub mod workspace;

use stitchbook_engine::{EngineError, IpcError};

/// The one error shape the UI sees.
pub fn ipc(e: EngineError) -> IpcError {
    e.to_ipc()
}

pub fn lock_error() -> IpcError {
    IpcError {
        code: stitchbook_engine::ErrorCode::Database,
        message: "the workspace is busy in another task".into(),
    }
}
