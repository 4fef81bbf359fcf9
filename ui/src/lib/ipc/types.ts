// Types of the engine's IPC payloads (serde, camelCase). Mirrors
// engine/src/info.rs and engine/src/error.rs.

export interface IpcError {
  code: string;
  message: string;
}

export interface ImportRow {
  importId: number;
  path: string;
  sizeBytes: number;
  vendor: string | null;
  container: string | null;
  compression: string | null;
  rowsRead: number;
  rowsLoaded: number;
  rowsDuplicate: number;
  rowsQuarantined: number;
  linksAdded: number;
  startedAt: string;
  finishedAt: string | null;
  status: "complete" | "failed" | "cancelled" | "skipped" | string;
  message: string | null;
}

export interface VendorCount {
  vendor: string;
  events: number;
}

export interface EventNameCount {
  eventName: string;
  events: number;
}

export interface QuarantineReason {
  reason: string;
  rows: number;
}

export interface WorkspaceInfo {
  path: string;
  schemaVersion: number;
  totalEvents: number;
  distinctIds: number;
  identityLinks: number;
  quarantined: number;
  firstEvent: string | null;
  lastEvent: string | null;
  byVendor: VendorCount[];
  topEvents: EventNameCount[];
  quarantineReasons: QuarantineReason[];
  imports: ImportRow[];
}
