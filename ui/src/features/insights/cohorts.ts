// Saved cohorts: the list, their members (with CSV export) and an editor for behavioural,
// property and first-seen criteria combined with all / any.
import { button, el, emptyState, fmtInt, loading } from "../../components/dom";
import { personsCsv, personsTable } from "../../components/persons";
import type { Backend } from "../../lib/ipc/client";
import type { CohortDef, SavedCohort } from "../../lib/ipc/types";
import { eventDatalist, filtersEditor, type Vocabulary } from "./builder";
import type { Criterion } from "../../lib/ipc/bindings/Criterion";
import type { PropertyFilter } from "../../lib/ipc/types";
import { problem } from "../../lib/jobs";

function describe(c: Criterion): string {
  switch (c.type) {
    case "performed":
      return `did ${c.event} at least ${c.at_least}× in the last ${c.within_days} days`;
    case "not_performed":
      return `did not do ${c.event} in the last ${c.within_days} days`;
    case "property":
      return `person ${c.filter.key} ${c.filter.op.replace(/_/g, " ")} ${c.filter.value ?? ""}`;
    case "first_seen":
      return `first seen ${c.date_range.from} – ${c.date_range.to ?? "now"}`;
  }
}

export async function cohortsScreen(backend: Backend, v: Vocabulary): Promise<HTMLElement> {
  const list = el("div", { class: "cohort-list" });
  const detail = el("section", { class: "result", id: "cohort-detail" });
  const draw = async (): Promise<void> => {
    const all = await backend.cohorts();
    list.replaceChildren(el("h3", {}, "Saved cohorts"));
    if (all.length === 0) list.append(emptyState("No cohorts yet", "Create one with the editor."));
    for (const c of all) {
      const row = el("div", { class: "cohort-item" },
        el("div", { class: "cohort-name" }, c.name),
        el("div", { class: "muted" }, `${c.definition.match === "all" ? "All of" : "Any of"}: ${c.definition.criteria.map(describe).join("; ")}`),
        el("div", { class: "row" },
          button("Members", () => void members(c)),
          button("Delete", () => {
            if (confirm(`Delete the cohort “${c.name}”?`)) void backend.deleteCohort(c.name).then(draw);
          })),
      );
      list.append(row);
    }
  };
  const members = async (c: SavedCohort): Promise<void> => {
    detail.replaceChildren(loading());
    try {
      const rows = await backend.cohortMembers(c.name, Date.now());
      detail.replaceChildren(
        el("div", { class: "result-head" }, el("h2", {}, `${c.name}: ${fmtInt(rows.length)} members`),
          button("Export CSV", () => void backend.saveTextFile(`${c.name}_members.csv`, personsCsv(rows)))),
        rows.length ? personsTable(rows, "cohort-members") : emptyState("No members", "Nobody matches this cohort as of now."),
      );
    } catch (e) {
      detail.replaceChildren(problem(e));
    }
  };

  // The editor.
  const def: CohortDef = { match: "all", criteria: [] };
  const criteriaBox = el("div", { class: "filters" });
  const drawCriteria = (): void => {
    criteriaBox.replaceChildren();
    def.criteria.forEach((c, i) => {
      const remove = button("×", () => {
        def.criteria.splice(i, 1);
        drawCriteria();
      }, { class: "btn-icon" });
      const num = (value: number, set: (n: number) => void): HTMLInputElement => {
        const x = el("input", { type: "number", min: "1", class: "num-input" });
        x.value = String(value);
        x.addEventListener("change", () => set(Math.max(1, Number(x.value) || 1)));
        return x;
      };
      const ev = (value: string, set: (s: string) => void): HTMLInputElement => {
        const x = el("input", { type: "text", list: "event-names", class: "event-input" });
        x.value = value;
        x.addEventListener("change", () => set(x.value.trim()));
        return x;
      };
      let row: HTMLElement;
      switch (c.type) {
        case "performed":
          row = el("div", { class: "filter-row" }, "did", ev(c.event, (s) => (c.event = s)), "at least", num(c.at_least, (n) => (c.at_least = n)), "times in the last", num(c.within_days, (n) => (c.within_days = n)), "days", remove);
          break;
        case "not_performed":
          row = el("div", { class: "filter-row" }, "did not do", ev(c.event, (s) => (c.event = s)), "in the last", num(c.within_days, (n) => (c.within_days = n)), "days", remove);
          break;
        case "property": {
          const filters: PropertyFilter[] = [c.filter];
          row = el("div", { class: "filter-row" }, filtersEditor(filters, () => {
            if (filters[0]) c.filter = { ...filters[0], source: "person" };
          }, "person property"), remove);
          break;
        }
        case "first_seen": {
          const from = el("input", { type: "text", class: "date-input", placeholder: "YYYY-MM-DD" });
          from.value = c.date_range.from;
          from.addEventListener("change", () => (c.date_range.from = from.value.trim()));
          const to = el("input", { type: "text", class: "date-input", placeholder: "now" });
          to.value = c.date_range.to ?? "";
          to.addEventListener("change", () => (c.date_range.to = to.value.trim() || null));
          row = el("div", { class: "filter-row" }, "first seen from", from, "to", to, remove);
          break;
        }
      }
      criteriaBox.append(row);
    });
  };
  const add = (c: Criterion): void => {
    def.criteria.push(c);
    drawCriteria();
  };
  const first = v.events[0] ?? "";
  const name = el("input", { type: "text", placeholder: "Cohort name", id: "cohort-name" });
  const match = el("select", {}, el("option", { value: "all" }, "all of"), el("option", { value: "any" }, "any of"));
  match.addEventListener("change", () => (def.match = match.value === "any" ? "any" : "all"));
  const status = el("div");
  const editor = el("div", { class: "builder" },
    eventDatalist(v),
    el("h3", {}, "New cohort"),
    name,
    el("div", { class: "row" }, "Persons matching", match),
    criteriaBox,
    el("div", { class: "row wrap" },
      button("+ did event", () => add({ type: "performed", event: first, filters: [], at_least: 1, within_days: 30 }), { class: "btn-link" }),
      button("+ did not do", () => add({ type: "not_performed", event: first, filters: [], within_days: 30 }), { class: "btn-link" }),
      button("+ person property", () => add({ type: "property", filter: { key: "", source: "person", op: "equals", value: "" } }), { class: "btn-link" }),
      button("+ first seen", () => add({ type: "first_seen", date_range: { from: v.firstDay ?? "-30d", to: v.lastDay } }), { class: "btn-link" })),
    button("Save cohort", async () => {
      try {
        await backend.saveCohort(name.value.trim(), def, Date.now());
        status.replaceChildren(el("div", { class: "note" }, `Saved “${name.value.trim()}”.`));
        await draw();
      } catch (e) {
        status.replaceChildren(problem(e));
      }
    }, { class: "btn btn-primary", id: "save-cohort" }),
    status,
  );
  await draw();
  detail.replaceChildren(emptyState("Pick a cohort", "Its members appear here, with a CSV export."));
  return el("div", { class: "insight-layout" }, el("div", { class: "builder-col" }, editor, list), detail);
}
