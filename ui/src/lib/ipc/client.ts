// The one typed client the UI talks to. A Tauri implementation for the app; tests give the
// same interface a fixture implementation (see fixture.ts).
import { Channel, invoke } from "@tauri-apps/api/core";
import type {
  Answer,
  CatalogEvent,
  CohortDef,
  EventProperties,
  FilePreview,
  ImportChoice,
  ImportReport,
  IpcError,
  JobEvent,
  ModelSettings,
  NowMode,
  PersonDetail,
  PersonSummary,
  QualityIssue,
  QuarantineRow,
  Query,
  RedactionRules,
  ReviewedFinding,
  ReviewStatus,
  ScanInfo,
  ScanResult,
  ExportFormat,
  FindingEvents,
  Revealed,
  RevealLogEntry,
  RetentionSummary,
  ResourceSettings,
  ExportReport,
  RebuildReport,
  RecentWorkspace,
  SavedCohort,
  SavedInsight,
  SqlTable,
  TimelinePage,
  WorkspaceInfo,
} from "./types";

export interface Backend {
  currentWorkspace(): Promise<string | null>;
  openWorkspace(path: string): Promise<string>;
  closeWorkspace(): Promise<void>;
  recentWorkspaces(): Promise<RecentWorkspace[]>;
  pickWorkspace(): Promise<string | null>;
  pickNewWorkspace(): Promise<string | null>;
  openDemo(jobId: string, rebuild: boolean, onEvent: (e: JobEvent) => void): Promise<string>;
  cancelJob(jobId: string): Promise<boolean>;
  workspaceSummary(): Promise<WorkspaceInfo>;
  chooseImport(folder: boolean): Promise<FilePreview[] | null>;
  previewImport(choice: ImportChoice): Promise<FilePreview>;
  runImport(jobId: string, files: ImportChoice[], onEvent: (e: JobEvent) => void): Promise<ImportReport>;

  /** `nowMs` is the clock: the engine computes as of the end of the data unless the
   *  workspace's insights.now setting asks for the clock (the answer says which). */
  runInsight(query: Query, nowMs: number): Promise<Answer>;
  drill(query: Query, nowMs: number, cell: string): Promise<PersonSummary[]>;
  exportChart(query: Query, nowMs: number, title: string, format: "png" | "svg"): Promise<string | null>;
  saveTextFile(suggestedName: string, contents: string): Promise<string | null>;
  savedInsights(): Promise<SavedInsight[]>;
  saveInsight(name: string, query: Query, nowMs: number): Promise<void>;
  deleteInsight(name: string): Promise<boolean>;
  cohorts(): Promise<SavedCohort[]>;
  saveCohort(name: string, definition: CohortDef, nowMs: number): Promise<void>;
  deleteCohort(name: string): Promise<boolean>;
  cohortMembers(name: string, nowMs: number): Promise<PersonSummary[]>;

  searchPersons(text: string, limit: number): Promise<PersonSummary[]>;
  personDetail(id: string): Promise<PersonDetail>;
  personTimeline(personId: string, session: string | null, offset: number, limit: number, withSessions: boolean): Promise<TimelinePage>;
  timelineEventProperties(eventSeq: number): Promise<string>;

  catalogEvents(): Promise<CatalogEvent[]>;
  eventProperties(event: string): Promise<EventProperties>;
  qualityIssues(): Promise<QualityIssue[]>;
  quarantineRows(importId: number | null, limit: number): Promise<QuarantineRow[]>;
  runSql(statement: string, limit: number, jobId: string): Promise<SqlTable>;
  sqlSchema(): Promise<SqlTable>;
  modelSettings(): Promise<ModelSettings>;
  setModelSetting(key: string, value: string): Promise<ModelSettings>;
  nowSetting(): Promise<NowMode>;
  setNowSetting(value: NowMode): Promise<NowMode>;
  resourceSettings(): Promise<ResourceSettings>;
  setResourceSetting(key: string, value: string): Promise<ResourceSettings>;
  rebuildModel(jobId: string, onEvent: (e: JobEvent) => void): Promise<RebuildReport>;
  /** Bring a stale model up to date (incremental after imports, else a full rebuild). */
  updateModel(jobId: string, onEvent: (e: JobEvent) => void): Promise<RebuildReport>;

  piiScan(jobId: string, nowMs: number, onEvent: (e: JobEvent) => void): Promise<ScanResult>;
  piiScanInfo(): Promise<ScanInfo | null>;
  piiFindings(): Promise<ReviewedFinding[]>;
  piiReview(findingId: string, status: ReviewStatus, note: string, reviewer: string, nowMs: number): Promise<ReviewedFinding>;
  piiExport(rules: RedactionRules, format: ExportFormat, keepFromMs: number | null, vendorShape: boolean, jobId: string, nowMs: number, onEvent: (e: JobEvent) => void): Promise<ExportReport | null>;
  piiReport(nowMs: number): Promise<string[] | null>;
  piiFindingEvents(findingId: string, offset: number, limit: number): Promise<FindingEvents>;
  piiReveal(findingId: string, eventSeq: number, reviewer: string, reason: string, nowMs: number): Promise<Revealed>;
  piiRevealLog(): Promise<RevealLogEntry[]>;
  piiRetention(cutoffMs: number): Promise<RetentionSummary>;
}

const openedAt = (): string => new Date().toISOString();

function channel(onEvent: (e: JobEvent) => void): Channel<JobEvent> {
  const c = new Channel<JobEvent>();
  c.onmessage = onEvent;
  return c;
}

export const tauriBackend: Backend = {
  currentWorkspace: () => invoke("current_workspace"),
  openWorkspace: (path) => invoke("open_workspace", { path, openedAt: openedAt() }),
  closeWorkspace: () => invoke("close_workspace"),
  recentWorkspaces: () => invoke("recent_workspaces"),
  pickWorkspace: () => invoke("pick_workspace"),
  pickNewWorkspace: () => invoke("pick_new_workspace"),
  openDemo: (jobId, rebuild, onEvent) =>
    invoke("open_demo", { jobId, openedAt: openedAt(), rebuild, channel: channel(onEvent) }),
  cancelJob: (jobId) => invoke("cancel_job", { jobId }),
  workspaceSummary: () => invoke("workspace_summary"),
  chooseImport: (folder) => invoke("choose_import", { folder }),
  previewImport: (choice) => invoke("preview_import", { choice }),
  runImport: (jobId, files, onEvent) => invoke("run_import", { jobId, files, channel: channel(onEvent) }),

  runInsight: (query, nowMs) => invoke("run_insight", { query, nowMs }),
  drill: (query, nowMs, cell) => invoke("drill", { query, nowMs, cell }),
  exportChart: (query, nowMs, title, format) => invoke("export_chart", { query, nowMs, title, format }),
  saveTextFile: (suggestedName, contents) => invoke("save_text_file", { suggestedName, contents }),
  savedInsights: () => invoke("saved_insights"),
  saveInsight: (name, query, nowMs) => invoke("save_insight", { name, query, nowMs }),
  deleteInsight: (name) => invoke("delete_insight", { name }),
  cohorts: () => invoke("cohorts"),
  saveCohort: (name, definition, nowMs) => invoke("save_cohort", { name, definition, nowMs }),
  deleteCohort: (name) => invoke("delete_cohort", { name }),
  cohortMembers: (name, nowMs) => invoke("cohort_members", { name, nowMs }),

  searchPersons: (text, limit) => invoke("search_persons", { text, limit }),
  personDetail: (id) => invoke("person_detail", { id }),
  personTimeline: (personId, session, offset, limit, withSessions) =>
    invoke("person_timeline", { personId, session, offset, limit, withSessions }),
  timelineEventProperties: (eventSeq) => invoke("timeline_event_properties", { eventSeq }),

  catalogEvents: () => invoke("catalog_events"),
  eventProperties: (event) => invoke("event_properties", { event }),
  qualityIssues: () => invoke("quality_issues"),
  quarantineRows: (importId, limit) => invoke("quarantine_rows", { importId, limit }),
  runSql: (statement, limit, jobId) => invoke("run_sql", { statement, limit, jobId }),
  sqlSchema: () => invoke("sql_schema"),
  modelSettings: () => invoke("model_settings"),
  setModelSetting: (key, value) => invoke("set_model_setting", { key, value }),
  nowSetting: () => invoke("now_setting"),
  setNowSetting: (value) => invoke("set_now_setting", { value }),
  resourceSettings: () => invoke("resource_settings"),
  setResourceSetting: (key, value) => invoke("set_resource_setting", { key, value }),
  rebuildModel: (jobId, onEvent) => invoke("rebuild_model", { jobId, channel: channel(onEvent) }),
  updateModel: (jobId, onEvent) => invoke("update_model", { jobId, channel: channel(onEvent) }),

  piiScan: (jobId, nowMs, onEvent) => invoke("pii_scan", { jobId, nowMs, channel: channel(onEvent) }),
  piiScanInfo: () => invoke("pii_scan_info"),
  piiFindings: () => invoke("pii_findings"),
  piiReview: (findingId, status, note, reviewer, nowMs) => invoke("pii_review", { findingId, status, note, reviewer, nowMs }),
  piiExport: (rules, format, keepFromMs, vendorShape, jobId, nowMs, onEvent) => invoke("pii_export", { rules, format, keepFromMs, vendorShape, jobId, nowMs, channel: channel(onEvent) }),
  piiReport: (nowMs) => invoke("pii_report", { nowMs }),
  piiFindingEvents: (findingId, offset, limit) => invoke("pii_finding_events", { findingId, offset, limit }),
  piiReveal: (findingId, eventSeq, reviewer, reason, nowMs) => invoke("pii_reveal", { findingId, eventSeq, reviewer, reason, nowMs }),
  piiRevealLog: () => invoke("pii_reveal_log"),
  piiRetention: (cutoffMs) => invoke("pii_retention", { cutoffMs }),
};

/** A readable message with its code (the finer reason where there is one), for any
 *  rejected IPC call. */
export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    const err = e as IpcError;
    const code = err.reason ?? err.code;
    return code ? `${err.message} (${code})` : String(err.message);
  }
  return String(e);
}

export function newJobId(): string {
  return `job-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
