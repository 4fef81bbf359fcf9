// The welcome screen: recent workspaces, open or create one, or open the demo.
import { button, el, fmtTime } from "../../components/dom";
import { newJobId, type Backend } from "../../lib/ipc/client";
import { problem } from "../../lib/jobs";

export async function welcomeScreen(backend: Backend, opened: () => void): Promise<HTMLElement> {
  const status = el("div", { id: "welcome-status" });
  const open = async (path: string): Promise<void> => {
    status.replaceChildren(el("div", { class: "loading" }, `Opening ${path}…`));
    try {
      await backend.openWorkspace(path);
      opened();
    } catch (e) {
      status.replaceChildren(problem(e));
    }
  };
  const recent = await backend.recentWorkspaces().catch(() => []);
  let demoJob: string | null = null;
  const demo = button("Open the demo workspace", async () => {
    demoJob = newJobId();
    status.replaceChildren(el("div", { class: "loading" }, el("span", { class: "spinner" }), "Opening the demo (built from sample-data the first time)…", button("Cancel", () => demoJob && void backend.cancelJob(demoJob))));
    try {
      await backend.openDemo(demoJob, false, (ev) => {
        if (ev.type === "progress") status.firstElementChild?.replaceChildren(el("span", { class: "spinner" }), `Importing ${ev.file.split(/[\\/]/).pop()} — ${ev.phase}`);
      });
      opened();
    } catch (e) {
      status.replaceChildren(problem(e));
    } finally {
      demoJob = null;
    }
  }, { class: "btn btn-primary", id: "open-demo" });
  return el(
    "div",
    { class: "welcome" },
    el("h1", {}, "Stitchbook"),
    el("p", { class: "muted" }, "Open product-analytics exports on this machine: nothing is uploaded."),
    el("div", { class: "row" },
      demo,
      button("Open workspace…", async () => {
        const p = await backend.pickWorkspace();
        if (p) await open(p);
      }, { id: "open-workspace-btn" }),
      button("New workspace…", async () => {
        const p = await backend.pickNewWorkspace();
        if (p) await open(p);
      })),
    status,
    el("h2", {}, "Recent workspaces"),
    recent.length
      ? el("ul", { class: "recent", id: "recent-list" }, ...recent.map((r) => {
          const b = el("button", { class: "cell-link", type: "button", title: r.path }, r.path);
          if (!r.exists) b.setAttribute("disabled", "");
          b.addEventListener("click", () => void open(r.path));
          return el("li", {}, b, el("span", { class: "muted small" }, r.exists ? ` opened ${fmtTime(r.openedAt)}` : " (missing)"));
        }))
      : el("p", { class: "muted" }, "None yet."),
    el("p", { class: "muted small" }, "After opening a new workspace, import exports from its Data screen (or with `stitchbook import <workspace> <files>`)."),
  );
}
