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
