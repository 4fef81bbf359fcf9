// Model settings (identity mode, session rules, time zone, week start) and a rebuild (a job
// under the app's job bar); what "now" is for insights; DuckDB's memory limit and threads; the theme.
import { button, el, fmtInt, setDisplayTimeZone } from "../../components/dom";
import type { Backend } from "../../lib/ipc/client";
import type { NowMode, ResourceSettings } from "../../lib/ipc/types";
import { forgetVocabulary } from "../insights/insights";
import { problem, runJob } from "../../lib/jobs";

const MODES: [string, string][] = [
  ["posthog", "PostHog (default)"],
  ["posthog_strict", "PostHog, strict guard rail"],
  ["mixpanel_simplified", "Mixpanel simplified ID merge"],
  ["amplitude", "Amplitude"],
  ["warehouse_last_value", "Warehouse last-value stitch (dbt)"],
];

/** The engine's setting keys (`stitchbook settings --set`), by the control's id. */
const KEYS: Record<string, string> = {
  identity_mode: "identity.mode",
  session_timeout_seconds: "sessions.timeout_seconds",
  session_max_length_seconds: "sessions.max_length_seconds",
  split_at_midnight: "sessions.split_at_midnight",
  split_on_campaign: "sessions.split_on_campaign",
  time_zone: "time_zone",
  week_start: "week_start",
};

export async function settingsScreen(backend: Backend): Promise<HTMLElement> {
  const [s, res, nowMode] = await Promise.all([backend.modelSettings(), backend.resourceSettings(), backend.nowSetting()]);
  const status = el("div", { id: "settings-status" });
  const set = async (key: string, value: string): Promise<void> => {
    try {
      const k = KEYS[key] ?? key;
      await backend.setModelSetting(k, value);
      if (k === "time_zone") setDisplayTimeZone(value);
      status.replaceChildren(el("div", { class: "note" }, `Saved ${k} = ${value}. Rebuild to apply it to persons and sessions.`));
    } catch (e) {
      status.replaceChildren(problem(e));
    }
  };
  const row = (label: string, control: HTMLElement, hint: string): HTMLElement =>
    el("label", { class: "setting" }, el("span", { class: "field-label" }, label), control, el("span", { class: "field-hint" }, hint));
  const sel = (key: string, value: string, options: [string, string][]): HTMLSelectElement => {
    const x = el("select", { id: `setting-${key}` }, ...options.map(([v, l]) => el("option", v === value ? { value: v, selected: "" } : { value: v }, l)));
    x.addEventListener("change", () => void set(key, x.value));
    return x;
  };
  const txt = (key: string, value: string): HTMLInputElement => {
    const x = el("input", { type: "text", id: `setting-${key}`, value });
    x.addEventListener("change", () => void set(key, x.value.trim()));
    return x;
  };
  // The rebuild runs as a job under the app's job bar (progress and Cancel stay on screen
  // on every page); this card reports how it ended.
  const rebuild = button("Rebuild now", async () => {
    rebuild.setAttribute("disabled", "");
    status.replaceChildren(el("div", { class: "muted small" }, "Rebuilding… (progress in the bar above; other pages keep working)"));
    const started = performance.now();
    try {
      const r = await runJob("Rebuilding persons and sessions", (id, on) => backend.rebuildModel(id, on));
      forgetVocabulary();
      status.replaceChildren(el("div", { class: "note" }, `Rebuilt in ${((performance.now() - started) / 1000).toFixed(1)} s: ${fmtInt(r.persons)} persons (${fmtInt(r.identifiedPersons)} identified), ${fmtInt(r.sessions)} sessions, ${fmtInt(r.mergesApplied)} merges applied, ${fmtInt(r.mergesRefused)} refused.`));
    } catch (e) {
      status.replaceChildren(problem(e));
    } finally {
      rebuild.removeAttribute("disabled");
    }
  }, { class: "btn btn-primary", id: "rebuild" });
  const theme = el("select", { id: "theme" }, el("option", { value: "light" }, "Light"), el("option", { value: "dark" }, "Dark"));
  theme.value = document.documentElement.dataset.theme === "dark" ? "dark" : "light";
  theme.addEventListener("change", () => {
    document.documentElement.dataset.theme = theme.value;
    localStorage.setItem("theme", theme.value);
  });
  const m = s;
  // DuckDB's resources: applied at once, kept in the workspace, no rebuild needed.
  const resStatus = el("div", { id: "resource-status" });
  const effective = el("p", { class: "muted small", id: "resource-effective" });
  const showEffective = (r: ResourceSettings): void => {
    effective.textContent = `In effect: memory limit ${r.effectiveMemoryLimit}, ${r.effectiveThreads} thread${r.effectiveThreads === 1 ? "" : "s"}.`;
  };
  showEffective(res);
  const resInput = (key: string, value: number | null, placeholder: string): HTMLInputElement => {
    const x = el("input", { type: "number", min: "1", id: `setting-${key.replace(".", "-")}`, placeholder, value: value === null ? "" : String(value) });
    x.addEventListener("change", async () => {
      try {
        const r = await backend.setResourceSetting(key, x.value.trim() || "default");
        showEffective(r);
        resStatus.replaceChildren(el("div", { class: "note" }, `Saved ${key} = ${x.value.trim() || "default"}.`));
      } catch (e) {
        resStatus.replaceChildren(problem(e));
      }
    });
    return x;
  };
  // What "now" is for insights: applied to the next run, no rebuild needed.
  const nowStatus = el("div", { id: "now-status" });
  const nowSelect = el("select", { id: "setting-insights-now" },
    ...([["data_end", "The end of the data (its last event)"], ["wall_clock", "The clock (today)"]] as [NowMode, string][])
      .map(([v, l]) => el("option", v === nowMode ? { value: v, selected: "" } : { value: v }, l)));
  nowSelect.addEventListener("change", async () => {
    try {
      const m = await backend.setNowSetting(nowSelect.value as NowMode);
      nowStatus.replaceChildren(el("div", { class: "note" }, `Saved insights.now = ${m}.`));
    } catch (e) {
      nowStatus.replaceChildren(problem(e));
    }
  });
  return el(
    "div",
    { class: "page settings" },
    el("h1", {}, "Settings"),
    el("section", { class: "card" },
      el("h2", {}, "Identity and sessions"),
      row("Identity mode", sel("identity_mode", m.identityMode, MODES), "How anonymous and device ids merge into persons."),
      row("Session timeout (s)", txt("session_timeout_seconds", String(m.sessionTimeoutSeconds)), "A new inferred session after a longer gap (default 1800)."),
      row("Session max length (s)", txt("session_max_length_seconds", String(m.sessionMaxLengthSeconds)), "Split inferred sessions longer than this (default 86400)."),
      row("Split at midnight", sel("split_at_midnight", String(m.splitAtMidnight), [["false", "No"], ["true", "Yes (Universal Analytics)"]]), "Local midnight in the workspace time zone."),
      row("Split on campaign change", sel("split_on_campaign", String(m.splitOnCampaign), [["false", "No"], ["true", "Yes"]]), "When utm source / medium / campaign changes."),
      row("Time zone", txt("time_zone", m.timeZone), "IANA name, e.g. Europe/Berlin; days and weeks use it."),
      row("Week starts on", sel("week_start", m.weekStart, [["monday", "Monday"], ["sunday", "Sunday"]]), "For weekly insights and account activity."),
      el("div", { class: "row" }, rebuild),
      status),
    el("section", { class: "card" },
      el("h2", {}, "Insights"),
      row("Insights are as of", nowSelect, "Relative ranges (-4w) count back from here, cohorts are evaluated here, and later periods are incomplete. An export ends in the past: the end of its data is the default."),
      nowStatus),
    el("section", { class: "card" },
      el("h2", {}, "DuckDB resources"),
      row("Memory limit (MB)", resInput("duckdb.memory_limit_mb", res.memoryLimitMb, "default: 80% of RAM"), "Beyond it DuckDB spills to disk. Empty for the default; rebuilds and PII jobs otherwise cap themselves (4 GB, 1 GB)."),
      row("Threads", resInput("duckdb.threads", res.threads, "default: one per core"), "Fewer threads leave cores for other work."),
      row("SQL console time limit (s)", resInput("sql.timeout_seconds", res.sqlTimeoutSeconds, "default: 30"), "A console query running longer is stopped."),
      effective,
      resStatus),
    el("section", { class: "card" }, el("h2", {}, "Appearance"), row("Theme", theme, "Light or dark.")),
  );
}
