// The SQL console: one read-only query over the workspace's tables, a results grid, CSV
// export, and the schema beside it.
import { button, csv, el, fmtInt, loading, table } from "../../components/dom";
import { newJobId, type Backend } from "../../lib/ipc/client";
import { problem } from "../../lib/jobs";

const EXAMPLE = "SELECT event_name, count(*) AS events, count(DISTINCT distinct_id) AS ids\nFROM events\nGROUP BY 1\nORDER BY 2 DESC\nLIMIT 20";

export async function sqlScreen(backend: Backend): Promise<HTMLElement> {
  const editor = el("textarea", { class: "sql-editor mono", id: "sql-editor", spellcheck: "false" });
  editor.value = sessionStorage.getItem("sql") ?? EXAMPLE;
  const out = el("div", { class: "sql-out", id: "sql-result" });
  let last: { columns: string[]; rows: (string | null)[][] } | null = null;
  let jobId: string | null = null;
  const cancel = button("Cancel", () => {
    if (jobId) void backend.cancelJob(jobId);
  }, { class: "btn", id: "cancel-sql", disabled: "" });
  const run = async (): Promise<void> => {
    if (jobId) return;
    sessionStorage.setItem("sql", editor.value);
    out.replaceChildren(loading("Running…"));
    jobId = newJobId();
    cancel.removeAttribute("disabled");
    try {
      const t = await backend.runSql(editor.value, 10000, jobId);
      last = t;
      out.replaceChildren(
        el("div", { class: "muted", id: "sql-status" }, `${fmtInt(t.rows.length)}${t.truncated ? "+" : ""} rows · ${t.millis.toFixed(1)} ms${t.truncated ? " · showing the first 10,000" : ""}`),
        el("div", { class: "table-scroll" }, table(t.columns, t.rows.map((r) => r.map((c) => (c === null ? "NULL" : c))), { id: "sql-grid" })),
      );
    } catch (e) {
      out.replaceChildren(problem(e));
    } finally {
      jobId = null;
      cancel.setAttribute("disabled", "");
    }
  };
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void run();
    }
  });
  const schema = await backend.sqlSchema();
  const byTable = new Map<string, string[]>();
  for (const r of schema.rows) {
    const [t, c, ty] = r;
    if (!t || !c) continue;
    byTable.set(t, [...(byTable.get(t) ?? []), `${c} ${(ty ?? "").toLowerCase()}`]);
  }
  const side = el(
    "aside",
    { class: "schema", id: "sql-schema" },
    el("h3", {}, "Tables"),
    ...[...byTable.entries()].map(([t, cols]) => el("details", {}, el("summary", { class: "mono" }, t), el("ul", { class: "mono small" }, ...cols.map((c) => el("li", {}, c))))),
  );
  return el(
    "div",
    { class: "page sql-page" },
    el("div", { class: "sql-main" },
      el("h1", {}, "SQL console"),
      el("p", { class: "muted" }, "One read-only SELECT over this workspace's tables (Ctrl+Enter runs). Files outside the workspace cannot be read; a query stops after the time limit in Settings, or with Cancel."),
      editor,
      el("div", { class: "row" },
        button("Run", () => void run(), { class: "btn btn-primary", id: "run-sql" }),
        cancel,
        button("Export CSV", () => {
          if (last) void backend.saveTextFile("query.csv", csv([last.columns, ...last.rows]));
        })),
      out),
    side,
  );
}
