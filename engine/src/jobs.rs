//! Long-running jobs: a progress sink throttled to about ten reports a second, and a cancel
//! token that also interrupts the DuckDB query in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One progress report. `done`/`total` are bytes of the current file during reading and
/// rows during SQL phases; `phase` says which.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[serde(tag = "type", rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum JobEvent {
    #[serde(rename_all = "camelCase")]
    Started { files: usize, total_bytes: u64 },
    #[serde(rename_all = "camelCase")]
    Progress {
        file: String,
        file_index: usize,
        phase: String,
        bytes_done: u64,
        bytes_total: u64,
        rows: u64,
    },
    #[serde(rename_all = "camelCase")]
    Warning { message: String },
    #[serde(rename_all = "camelCase")]
    Finished { files: usize },
    #[serde(rename_all = "camelCase")]
    Failed { message: String },
}

/// Cancellation shared between the job and whoever may cancel it.
#[derive(Clone, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
    /// The connections the job runs on (a handle of a closed connection does nothing).
    interrupt: Arc<Mutex<Vec<Arc<duckdb::InterruptHandle>>>>,
}

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    /// Request cancellation and interrupt the DuckDB queries in flight, if any.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Ok(guard) = self.interrupt.lock() {
            for h in guard.iter() {
                h.interrupt();
            }
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Attach the connection the job runs on, so `cancel` can interrupt it (in place of any
    /// attached before).
    pub fn attach(&self, handle: Arc<duckdb::InterruptHandle>) {
        if let Ok(mut guard) = self.interrupt.lock() {
            *guard = vec![handle];
        }
    }

    /// Attach a further connection the job reads on, beside the one attached.
    pub fn attach_also(&self, handle: Arc<duckdb::InterruptHandle>) {
        if let Ok(mut guard) = self.interrupt.lock() {
            guard.push(handle);
        }
    }

    pub fn check(&self) -> crate::Result<()> {
        if self.is_cancelled() {
            Err(crate::EngineError::Cancelled)
        } else {
            Ok(())
        }
    }
}

type Sink = Box<dyn Fn(&JobEvent) + Send + Sync>;

/// What a job gets to report progress and notice cancellation.
pub struct JobCtx {
    sink: Sink,
    pub cancel: CancelToken,
    last_progress: Mutex<Option<Instant>>,
    min_interval: Duration,
}

impl JobCtx {
    pub fn new(sink: impl Fn(&JobEvent) + Send + Sync + 'static, cancel: CancelToken) -> Self {
        JobCtx {
            sink: Box::new(sink),
            cancel,
            last_progress: Mutex::new(None),
            min_interval: Duration::from_millis(100),
        }
    }

    /// A context that reports nothing and is never cancelled.
    pub fn silent() -> Self {
        Self::new(|_| {}, CancelToken::new())
    }

    /// Send an event. `Progress` events are dropped when the previous one went out less
    /// than 100 ms ago, unless `force` is set (used for the last report of a phase).
    pub fn emit(&self, event: JobEvent, force: bool) {
        if let JobEvent::Progress { .. } = event {
            if let Ok(mut last) = self.last_progress.lock() {
                let now = Instant::now();
                if !force {
                    if let Some(t) = *last {
                        if now.duration_since(t) < self.min_interval {
                            return;
                        }
                    }
                }
                *last = Some(now);
            }
        }
        (self.sink)(&event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn progress_is_throttled_but_other_events_are_not() {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let ctx = JobCtx::new(
            move |_| {
                n2.fetch_add(1, Ordering::SeqCst);
            },
            CancelToken::new(),
        );
        for i in 0..1000u64 {
            ctx.emit(
                JobEvent::Progress {
                    file: "f".into(),
                    file_index: 0,
                    phase: "read".into(),
                    bytes_done: i,
                    bytes_total: 1000,
                    rows: i,
                },
                false,
            );
        }
        ctx.emit(JobEvent::Finished { files: 1 }, false);
        // 1000 calls in well under a second: one progress report plus Finished.
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn cancel_sets_flag() {
        let t = CancelToken::new();
        assert!(t.check().is_ok());
        t.cancel();
        assert!(matches!(t.check(), Err(crate::EngineError::Cancelled)));
    }
}
