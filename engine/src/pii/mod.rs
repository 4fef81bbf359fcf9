//! PII audit (issue 7): detectors, the field report, the review trail, the redacted export
//! with its verification re-scan, the audit report and a retention helper.
//!
//! Flow: [`scan`] walks the workspace and stores findings (one per source, JSON path and
//! detector); [`review`] records decisions that survive re-scans; [`export`] writes a
//! redacted copy and verifies it (a re-scan, and a search of the files written for every
//! original value redacted); [`report`] renders everything as offline HTML, CSV and
//! JSON; [`drill`] lists a finding's events (masked) and reveals one value, logged. Raw values
//! never leave the detectors: findings, logs, errors and reports carry
//! masked samples only.

mod collect;
pub mod corpus;
pub mod detect;
pub mod drill;
pub mod export;
mod flat;
pub mod mask;
pub mod report;
pub mod retention;
pub mod rules;
pub mod scan;
pub mod store;
mod stream;
mod values;
mod verify;

pub use detect::{Detector, Severity};
pub use drill::{
    finding_events, reveal, reveal_log, FindingEvent, FindingEvents, RevealLogEntry, Revealed,
};
pub use export::{
    export, exports, ExportFormat, ExportOptions, ExportReport, ExportStatus, RedactAction,
    RedactionCheck, RedactionRule, RedactionRules, RemainingValue,
};
pub use report::{audit_report, write_report, AuditReport};
pub use retention::{older_than, RetentionSummary};
pub use rules::CustomRule;
pub use scan::{finding_id, scan, Finding, NameCount, ScanResult, ScanTotals, Source, SourceFile};
pub use store::{
    finding, findings, review, review_log, scan_info, Review, ReviewStatus, ReviewedFinding,
    ScanInfo,
};
