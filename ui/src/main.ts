import "./styles.css";
import { el, loading, setDisplayTimeZone } from "./components/dom";
import { tauriBackend, type Backend } from "./lib/ipc/client";
import { initJobs, jobBar, problem } from "./lib/jobs";
import { current, go, link } from "./lib/router";
import { dataScreen } from "./features/data/data";
import { insightsScreen } from "./features/insights/insights";
import { personScreen, personsScreen } from "./features/persons/persons";
import { sqlScreen } from "./features/sql/sql";
import { piiScreen } from "./features/pii/pii";
import { settingsScreen } from "./features/settings/settings";
import { welcomeScreen } from "./features/welcome/welcome";

const backend: Backend = tauriBackend;
const root = document.getElementById("app") as HTMLElement;
document.documentElement.dataset.theme = localStorage.getItem("theme") === "dark" ? "dark" : "light";

const NAV: { path: string; label: string; icon: string }[] = [
  { path: "data", label: "Data", icon: "▤" },
  { path: "insights/funnel", label: "Funnels", icon: "⏷" },
  { path: "insights/retention", label: "Retention", icon: "▦" },
  { path: "insights/trends", label: "Trends", icon: "∿" },
  { path: "insights/stickiness", label: "Stickiness", icon: "▮" },
  { path: "insights/lifecycle", label: "Lifecycle", icon: "◐" },
  { path: "insights/paths", label: "Paths", icon: "⇶" },
  { path: "insights/cohorts", label: "Cohorts", icon: "◎" },
  { path: "persons", label: "Persons", icon: "☺" },
  { path: "pii", label: "PII audit", icon: "⚑" },
  { path: "sql", label: "SQL", icon: "⌘" },
  { path: "settings", label: "Settings", icon: "⚙" },
];

function shell(workspace: string, active: string, body: HTMLElement): HTMLElement {
  const nav = el(
    "nav",
    { class: "sidebar" },
    el("div", { class: "brand" }, el("span", { class: "logo" }, "S"), "Stitchbook"),
    ...NAV.map((n) =>
      el("a", { href: `#/${n.path}`, class: active.startsWith(n.path) || (n.path.startsWith("insights/") && active === n.path) ? "nav-item active" : "nav-item", id: `nav-${n.path.replace("/", "-")}` }, el("span", { class: "nav-icon" }, n.icon), n.label),
    ),
    el("div", { class: "sidebar-foot" },
      el("div", { class: "ws-path", id: "workspace-path", title: workspace }, workspace.split(/[\\/]/).pop() ?? workspace),
      el("a", { href: link(["welcome"]), class: "nav-item small" }, "Switch workspace…")),
  );
  return el("div", { class: "app" }, nav, el("div", { class: "main-col" }, jobBar(), el("main", { class: "content", id: "content" }, body)));
}

let renderSeq = 0;
let zoneFor: string | null = null;

async function render(): Promise<void> {
  const seq = ++renderSeq;
  const r = current();
  try {
    const ws = r.path[0] === "welcome" ? null : await backend.currentWorkspace();
    if (!ws) {
      if (r.path[0] === "welcome") await backend.closeWorkspace();
      const w = await welcomeScreen(backend, () => go(["data"]));
      if (seq === renderSeq) root.replaceChildren(el("div", { class: "app app-welcome" }, w));
      return;
    }
    if (ws !== zoneFor) {
      // Every time on screen is shown in the workspace's time zone.
      setDisplayTimeZone((await backend.modelSettings()).timeZone);
      zoneFor = ws;
    }
    const active = r.path.slice(0, 2).join("/") || "data";
    const frame = shell(ws, active, loading());
    root.replaceChildren(frame);
    let body: HTMLElement;
    switch (r.path[0] ?? "data") {
      case "insights":
        body = await insightsScreen(backend, r.path[1] ?? "funnel", r.params);
        break;
      case "persons":
        body = await personsScreen(backend, r.params);
        break;
      case "person":
        body = await personScreen(backend, r.path[1] ?? "", r.path[2] === "session" ? (r.path[3] ?? null) : null);
        break;
      case "sql":
        body = await sqlScreen(backend);
        break;
      case "pii":
        body = await piiScreen(backend);
        break;
      case "settings":
        body = await settingsScreen(backend);
        break;
      default:
        body = await dataScreen(backend);
    }
    if (seq === renderSeq) frame.querySelector("#content")?.replaceChildren(body);
  } catch (e) {
    if (seq === renderSeq) {
      const content = root.querySelector("#content");
      const box = el("div", { class: "page" }, problem(e));
      if (content) content.replaceChildren(box);
      else root.replaceChildren(box);
    }
  }
}

// "/" is search, from anywhere but a text field.
document.addEventListener("keydown", (e) => {
  const t = e.target as HTMLElement | null;
  const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  if (e.key === "/" && !typing) {
    e.preventDefault();
    const box = document.getElementById("person-search") as HTMLInputElement | null;
    if (box) box.focus();
    else go(["persons"]);
  }
});

initJobs(backend, () => void render());
window.addEventListener("hashchange", () => void render());
void render();
