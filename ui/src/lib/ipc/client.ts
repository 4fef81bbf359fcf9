// The one typed client the UI talks to. A Tauri implementation for the app, and the same
// interface can be given a fixture implementation for tests in a plain browser.
import { invoke } from "@tauri-apps/api/core";
import type { IpcError, WorkspaceInfo } from "./types";

export interface Backend {
  currentWorkspace(): Promise<string | null>;
  openWorkspace(path: string): Promise<string>;
  pickWorkspace(): Promise<string | null>;
  workspaceSummary(): Promise<WorkspaceInfo>;
}

export const tauriBackend: Backend = {
  currentWorkspace: () => invoke<string | null>("current_workspace"),
  openWorkspace: (path) => invoke<string>("open_workspace", { path }),
  pickWorkspace: () => invoke<string | null>("pick_workspace"),
  workspaceSummary: () => invoke<WorkspaceInfo>("workspace_summary"),
};

export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) {
    return String((e as IpcError).message);
  }
  return String(e);
}
