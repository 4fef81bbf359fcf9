// The IPC contract: generated from the engine's Rust types by ts-rs (engine `cargo test`
// writes ./bindings; CI fails when regenerating changes them). Import types from here.
export type { ErrorCode } from "./bindings/ErrorCode";
export type { EventNameCount } from "./bindings/EventNameCount";
export type { ImportRow } from "./bindings/ImportRow";
export type { IpcError } from "./bindings/IpcError";
export type { QuarantineReason } from "./bindings/QuarantineReason";
export type { QuarantineRow } from "./bindings/QuarantineRow";
export type { VendorCount } from "./bindings/VendorCount";
export type { WorkspaceInfo } from "./bindings/WorkspaceInfo";
export type { ExplainStep } from "./bindings/ExplainStep";
export type { IdentityMode } from "./bindings/IdentityMode";
export type { MergeEntry } from "./bindings/MergeEntry";
export type { ModelSettings } from "./bindings/ModelSettings";
export type { PersonDetail } from "./bindings/PersonDetail";
export type { PersonSummary } from "./bindings/PersonSummary";
export type { RebuildReport } from "./bindings/RebuildReport";
export type { SessionRow } from "./bindings/SessionRow";
export type { StageTiming } from "./bindings/StageTiming";
export type { Query } from "./bindings/Query";
export type { InsightResult } from "./bindings/InsightResult";
export type { FunnelQuery } from "./bindings/FunnelQuery";
export type { RetentionQuery } from "./bindings/RetentionQuery";
export type { TrendsQuery } from "./bindings/TrendsQuery";
export type { StickinessQuery } from "./bindings/StickinessQuery";
export type { LifecycleQuery } from "./bindings/LifecycleQuery";
export type { PathsQuery } from "./bindings/PathsQuery";
export type { FunnelResult } from "./bindings/FunnelResult";
export type { RetentionResult } from "./bindings/RetentionResult";
export type { TrendsResult } from "./bindings/TrendsResult";
export type { StickinessResult } from "./bindings/StickinessResult";
export type { LifecycleResult } from "./bindings/LifecycleResult";
export type { PathsResult } from "./bindings/PathsResult";
export type { CohortRow } from "./bindings/CohortRow";
export type { PropertyFilter } from "./bindings/PropertyFilter";
export type { FilterOp } from "./bindings/FilterOp";
export type { Math } from "./bindings/Math";
export type { Interval } from "./bindings/Interval";
export type { SavedInsight } from "./bindings/SavedInsight";
export type { SavedCohort } from "./bindings/SavedCohort";
export type { CohortDef } from "./bindings/CohortDef";
export type { SqlTable } from "./bindings/SqlTable";
export type { TimelineEvent } from "./bindings/TimelineEvent";
export type { TimelinePage } from "./bindings/TimelinePage";
export type { TimelineSession } from "./bindings/TimelineSession";
export type { CatalogEvent } from "./bindings/CatalogEvent";
export type { EventProperties } from "./bindings/EventProperties";
export type { PropertyStat } from "./bindings/PropertyStat";
export type { QualityIssue } from "./bindings/QualityIssue";
export type { RecentWorkspace } from "./bindings/RecentWorkspace";
export type { ReviewedFinding } from "./bindings/ReviewedFinding";
export type { ReviewStatus } from "./bindings/ReviewStatus";
export type { ScanInfo } from "./bindings/ScanInfo";
export type { ScanResult } from "./bindings/ScanResult";
export type { ExportReport } from "./bindings/ExportReport";
export type { ExportFormat } from "./bindings/ExportFormat";
export type { RedactAction } from "./bindings/RedactAction";
export type { RedactionRules } from "./bindings/RedactionRules";

/** A progress report of a long job (the engine's `JobEvent`). */
export type JobEvent =
  | { type: "started"; files: number; totalBytes: number }
  | { type: "progress"; file: string; fileIndex: number; phase: string; bytesDone: number; bytesTotal: number; rows: number }
  | { type: "warning"; message: string }
  | { type: "finished"; files: number }
  | { type: "failed"; message: string };

/** One file's import outcome (the engine's `FileOutcome`; the fields the UI reads). */
export interface ImportedFile {
  path: string;
  importId: number | null;
  vendor: string | null;
  rowsRead: number;
  rowsLoaded: number;
  rowsDuplicate: number;
  rowsQuarantined: number;
  status: "complete" | "failed" | "cancelled" | "skipped";
  message: string | null;
  identicalTo: number | null;
}

/** The engine's `ImportReport`. */
export interface ImportReport {
  files: ImportedFile[];
  cancelled: boolean;
}
