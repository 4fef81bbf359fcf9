import "./styles.css";
import { el } from "./components/dom";
import { errorMessage, tauriBackend, type Backend } from "./lib/ipc/client";
import { renderOverview } from "./features/overview/overview";

const backend: Backend = tauriBackend;
const root = document.getElementById("app") as HTMLElement;

function shell(workspace: string | null, body: HTMLElement): HTMLElement {
  const open = el("button", { class: "btn", id: "open-workspace" }, "Open workspace…");
  open.addEventListener("click", () => void chooseWorkspace());
  return el(
    "div",
    { class: "app" },
    el(
      "header",
      { class: "topbar" },
      el("div", { class: "brand" }, el("span", { class: "logo" }, "S"), "Stitchbook"),
      el("div", { class: "ws-path", id: "workspace-path", title: workspace ?? "" }, workspace ?? "No workspace open"),
      open,
    ),
    el("main", { class: "content" }, body),
  );
}

async function chooseWorkspace(): Promise<void> {
  try {
    const picked = await backend.pickWorkspace();
    if (picked) {
      await backend.openWorkspace(picked);
      await render();
    }
  } catch (e) {
    showError(errorMessage(e));
  }
}

function showError(message: string): void {
  root.replaceChildren(shell(null, el("div", { class: "error", id: "error" }, message)));
}

async function render(): Promise<void> {
  try {
    const ws = await backend.currentWorkspace();
    if (!ws) {
      root.replaceChildren(
        shell(
          null,
          el(
            "div",
            { class: "welcome" },
            el("h1", {}, "Open a workspace"),
            el("p", {}, "A workspace is one DuckDB file holding your imported exports. Create one with `stitchbook import <workspace> <files>`, then open it here."),
          ),
        ),
      );
      return;
    }
    root.replaceChildren(shell(ws, el("p", { class: "loading" }, "Loading…")));
    const info = await backend.workspaceSummary();
    root.replaceChildren(shell(ws, renderOverview(info)));
  } catch (e) {
    showError(errorMessage(e));
  }
}

void render();
