// The query builders: one form per insight kind plus the shared date range, filters and
// cohort pickers. Each form edits a plain query value (the same JSON the CLI reads).
import { button, el } from "../../components/dom";
import type {
  Attribution,
  FilterOp,
  FunnelQuery,
  Interval,
  LifecycleQuery,
  Math as TrendMath,
  PathsQuery,
  PropertyFilter,
  Query,
  RetentionQuery,
  StickinessQuery,
  TrendsQuery,
} from "../../lib/ipc/types";

export type Kind = Query["kind"];

export const KINDS: { kind: Kind; label: string }[] = [
  { kind: "funnel", label: "Funnel" },
  { kind: "retention", label: "Retention" },
  { kind: "trends", label: "Trends" },
  { kind: "stickiness", label: "Stickiness" },
  { kind: "lifecycle", label: "Lifecycle" },
  { kind: "paths", label: "Paths" },
];

/** What the forms offer: event names from the catalog, saved cohorts, the data's last day. */
export interface Vocabulary {
  events: string[];
  cohorts: string[];
  lastDay: string | null;
  firstDay: string | null;
}

function dayBefore(day: string, days: number): string {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - days);
  return d.toISOString().slice(0, 10);
}

function defaultRange(v: Vocabulary, days = 30): { from: string; to: string | null } {
  if (!v.lastDay) return { from: "-30d", to: null };
  const from = dayBefore(v.lastDay, days - 1);
  return { from: v.firstDay && from < v.firstDay ? v.firstDay : from, to: v.lastDay };
}

function pick(events: string[], wanted: string[], fallback: number): string {
  return wanted.find((w) => events.includes(w)) ?? events[fallback] ?? events[0] ?? "";
}

/** A sensible first query of each kind for this workspace. */
export function defaultQuery(kind: Kind, v: Vocabulary): Query {
  const ev = v.events;
  const range = defaultRange(v);
  switch (kind) {
    case "funnel": {
      const q: FunnelQuery = {
        steps: [
          { event: pick(ev, ["signed_up", "sign_up", "Sign Up"], 0), filters: [], name: null, optional: false, window: null },
          { event: pick(ev, ["created_project", "$pageview"], 1), filters: [], name: null, optional: false, window: null },
          { event: pick(ev, ["invited_teammate", "upgraded_plan"], 2), filters: [], name: null, optional: false, window: null },
        ],
        date_range: defaultRange(v, 60),
        order: "ordered",
        window: 14,
        window_unit: "day",
        exclusions: [],
        exclusion_behaviour: "drop_person",
        bound_all_steps: false,
        filters: [],
        breakdown: null,
        include_zero_second_times: false,
        hold_constant: [],
        count: "persons",
        display: "steps",
        interval: "week",
        from_step: null,
        to_step: null,
      };
      return { kind, ...q };
    }
    case "retention": {
      const start = pick(ev, ["signed_up", "$pageview"], 0);
      const q: RetentionQuery = {
        start: { event: start, filters: [] },
        returning: { event: pick(ev, ["$pageview", "app_opened"], 0), filters: [] },
        date_range: defaultRange(v, 56),
        period: "week",
        intervals: 8,
        retention_type: "first_time",
        cumulative: false,
        time_window: "calendar",
        breakdown: null,
      };
      return { kind, ...q };
    }
    case "trends": {
      const q: TrendsQuery = {
        series: [{ event: pick(ev, ["$pageview"], 0), filters: [], math: "unique_persons", property: null, group_type: null, name: null }],
        date_range: range,
        interval: "day",
        filters: [],
        breakdown: null,
        formula: null,
      };
      return { kind, ...q };
    }
    case "stickiness": {
      const q: StickinessQuery = { event: pick(ev, ["$pageview"], 0), filters: [], date_range: range, interval: "day", cumulative: false };
      return { kind, ...q };
    }
    case "lifecycle": {
      const q: LifecycleQuery = { event: pick(ev, ["$pageview"], 0), filters: [], date_range: range, interval: "day", new_by: "first_matching_event" };
      return { kind, ...q };
    }
    case "paths": {
      const q: PathsQuery = {
        date_range: range,
        start: null,
        end: null,
        steps: 5,
        split: "gap",
        gap_seconds: 1800,
        events: [],
        filters: [],
        page_paths: true,
        collapse_repeats: true,
        node_limit: 30,
      };
      return { kind, ...q };
    }
  }
}

// ---- small form controls ---------------------------------------------------------------

function field(label: string, control: HTMLElement, hint?: string): HTMLElement {
  return el("label", { class: "field" }, el("span", { class: "field-label" }, label), control, hint ? el("span", { class: "field-hint" }, hint) : null);
}

function select<T extends string>(value: T, options: [T, string][], onChange: (v: T) => void, attrs: Record<string, string> = {}): HTMLSelectElement {
  const s = el("select", attrs);
  for (const [v, label] of options) {
    const o = el("option", { value: v }, label);
    if (v === value) o.selected = true;
    s.append(o);
  }
  s.addEventListener("change", () => onChange(s.value as T));
  return s;
}

function input(value: string, onChange: (v: string) => void, attrs: Record<string, string> = {}): HTMLInputElement {
  const i = el("input", { type: "text", ...attrs });
  i.value = value;
  i.addEventListener("change", () => onChange(i.value));
  return i;
}

function numberInput(value: number, onChange: (v: number) => void, min = 1, max = 1000): HTMLInputElement {
  const i = el("input", { type: "number", min: String(min), max: String(max), class: "num-input" });
  i.value = String(value);
  i.addEventListener("change", () => {
    const n = Number(i.value);
    if (Number.isFinite(n)) onChange(Math.min(max, Math.max(min, Math.round(n))));
  });
  return i;
}

function checkbox(label: string, value: boolean, onChange: (v: boolean) => void, attrs: Record<string, string> = {}): HTMLElement {
  const c = el("input", { type: "checkbox", ...attrs });
  c.checked = value;
  c.addEventListener("change", () => onChange(c.checked));
  return el("label", { class: "check" }, c, label);
}

/** An event picker: a text input with the catalog's names as suggestions. */
function eventInput(value: string, _v: Vocabulary, onChange: (v: string) => void, attrs: Record<string, string> = {}): HTMLInputElement {
  return input(value, onChange, { list: "event-names", placeholder: "event name", class: "event-input", ...attrs });
}

export function eventDatalist(v: Vocabulary): HTMLDataListElement {
  return el("datalist", { id: "event-names" }, ...v.events.map((e) => el("option", { value: e })));
}

const OPS: [FilterOp, string][] = [
  ["equals", "="],
  ["not_equals", "≠"],
  ["contains", "contains"],
  ["regex", "matches regex"],
  ["greater_than", ">"],
  ["less_than", "<"],
  ["is_set", "is set"],
  ["is_not_set", "is not set"],
];

function filterValue(op: FilterOp, raw: string): PropertyFilter["value"] {
  if (op === "is_set" || op === "is_not_set") return null;
  if ((op === "greater_than" || op === "less_than") && raw.trim() !== "" && Number.isFinite(Number(raw))) return Number(raw);
  return raw;
}

/** An editable list of property filters. */
export function filtersEditor(filters: PropertyFilter[], onChange: () => void, label = "Filters"): HTMLElement {
  const box = el("div", { class: "filters" });
  const draw = (): void => {
    box.replaceChildren();
    filters.forEach((f, i) => {
      const value = input(f.value === null ? "" : String(f.value), (x) => {
        f.value = filterValue(f.op, x);
        onChange();
      }, { placeholder: "value", class: "filter-value" });
      value.disabled = f.op === "is_set" || f.op === "is_not_set";
      box.append(
        el(
          "div",
          { class: "filter-row" },
          select(f.source, [["event", "event"], ["person", "person"]], (x) => {
            f.source = x;
            onChange();
          }),
          input(f.key, (x) => {
            f.key = x.trim();
            onChange();
          }, { placeholder: "property", class: "filter-key" }),
          select(f.op, OPS, (x) => {
            f.op = x;
            f.value = filterValue(x, value.value);
            draw();
            onChange();
          }),
          value,
          button("×", () => {
            filters.splice(i, 1);
            draw();
            onChange();
          }, { class: "btn-icon", title: "Remove filter" }),
        ),
      );
    });
    box.append(
      button(`+ ${label === "Filters" ? "filter" : label}`, () => {
        filters.push({ key: "", source: "event", op: "equals", value: "" });
        draw();
      }, { class: "btn-link" }),
    );
  };
  draw();
  return el("div", { class: "field" }, el("span", { class: "field-label" }, label), box);
}

type BreakdownKind = "" | "event" | "person" | "cohorts";

/** What a breakdown editor edits: by nothing, an event or person property, or saved cohorts. */
interface BreakdownState {
  kind: BreakdownKind;
  property: string;
  cohorts: string[];
}

const BREAKDOWN_KINDS: [BreakdownKind, string][] = [["", "None"], ["event", "Event property"], ["person", "Person property"], ["cohorts", "Saved cohorts"]];

/**
 * A breakdown picker: what to break down by, then the property (with its own options from
 * `extra`) or the saved cohorts to compare. `apply` gets every change.
 */
function breakdownEditor(
  state: BreakdownState,
  kinds: BreakdownKind[],
  v: Vocabulary,
  apply: (s: BreakdownState) => void,
  id: string,
  extra?: (s: BreakdownState) => HTMLElement | null,
): HTMLElement {
  const box = el("div", { class: "breakdown" });
  const draw = (): void => {
    const kind = select(state.kind, BREAKDOWN_KINDS.filter(([k]) => kinds.includes(k)), (k) => {
      state.kind = k;
      apply(state);
      draw();
    }, { id: `${id}-kind` });
    const parts: (HTMLElement | null)[] = [kind];
    let below: HTMLElement | null = null;
    if (state.kind === "event" || state.kind === "person") {
      parts.push(input(state.property, (x) => {
        state.property = x.trim();
        apply(state);
      }, { placeholder: state.kind === "event" ? "e.g. $browser" : "e.g. plan", id, class: "filter-key" }));
      // The property's own options (attribution) on a line of their own.
      const more = extra?.(state) ?? null;
      if (more) below = el("div", { class: "row" }, el("span", { class: "muted" }, "Value from"), more);
    } else if (state.kind === "cohorts") {
      below = v.cohorts.length === 0
        ? el("span", { class: "muted" }, "No saved cohorts yet: create one under Cohorts.")
        : el("div", { class: "row wrap" }, ...v.cohorts.map((c) => checkbox(c, state.cohorts.includes(c), (on) => {
            state.cohorts = on ? [...state.cohorts, c] : state.cohorts.filter((x) => x !== c);
            apply(state);
          }, { "data-cohort": c })));
    }
    box.replaceChildren(el("div", { class: "row" }, ...parts), ...(below ? [below] : []));
  };
  draw();
  return box;
}

function attributionKey(a: Attribution | undefined): string {
  if (!a) return "first_touch";
  return a.type === "step" ? `step:${a.step}` : a.type;
}

interface Scoped {
  cohort?: string;
  exclude_cohort?: string;
}

/** Date range, and the cohort to include / exclude. */
export function commonFields(q: Query, v: Vocabulary, onChange: () => void): HTMLElement {
  const range = q.date_range;
  const presets: [string, string][] = [["", "Custom"], ["7", "Last 7 days of data"], ["30", "Last 30 days of data"], ["90", "Last 90 days of data"], ["all", "All data"]];
  const from = input(range.from, (x) => {
    range.from = x.trim();
    onChange();
  }, { class: "date-input", placeholder: "YYYY-MM-DD or -30d", id: "range-from" });
  const to = input(range.to ?? "", (x) => {
    range.to = x.trim() === "" ? null : x.trim();
    onChange();
  }, { class: "date-input", placeholder: "now", id: "range-to" });
  const preset = select("", presets, (p) => {
    if (p === "all") {
      range.from = v.firstDay ?? "-365d";
      range.to = v.lastDay;
    } else if (p) {
      const r = defaultRange(v, Number(p));
      range.from = r.from;
      range.to = r.to;
    }
    from.value = range.from;
    to.value = range.to ?? "";
    onChange();
  });
  const scoped = q as Scoped;
  const cohortOpts: [string, string][] = [["", "Everyone"], ...v.cohorts.map((c): [string, string] => [c, c])];
  const exclOpts: [string, string][] = [["", "Nobody"], ...v.cohorts.map((c): [string, string] => [c, c])];
  return el(
    "div",
    { class: "common" },
    field("Date range", el("div", { class: "row" }, from, el("span", { class: "muted" }, "to"), to, preset), "Whole days in the workspace time zone; relative ranges count back from now."),
    el(
      "div",
      { class: "row" },
      field("Cohort", select(scoped.cohort ?? "", cohortOpts, (c) => {
        if (c) scoped.cohort = c;
        else delete scoped.cohort;
        onChange();
      }, { id: "cohort" })),
      field("Exclude", select(scoped.exclude_cohort ?? "", exclOpts, (c) => {
        if (c) scoped.exclude_cohort = c;
        else delete scoped.exclude_cohort;
        onChange();
      }, { id: "exclude-cohort" })),
    ),
  );
}

const INTERVALS: [Interval, string][] = [["day", "Day"], ["week", "Week"], ["month", "Month"]];

const MATHS: [TrendMath, string][] = [
  ["total", "Total events"],
  ["unique_persons", "Unique persons"],
  ["unique_sessions", "Unique sessions"],
  ["weekly_active", "Weekly active (7-day)"],
  ["monthly_active", "Monthly active (30-day)"],
  ["unique_accounts", "Unique accounts"],
  ["sum", "Sum of property"],
  ["avg", "Average of property"],
  ["min", "Min of property"],
  ["max", "Max of property"],
  ["median", "Median of property"],
  ["p90", "90th percentile"],
  ["p95", "95th percentile"],
  ["p99", "99th percentile"],
];

/** The kind-specific part of the form. */
export function kindFields(q: Query, v: Vocabulary, onChange: () => void, redraw: () => void): HTMLElement {
  const box = el("div", { class: "kind-fields" });
  switch (q.kind) {
    case "funnel": {
      const steps = el("ol", { class: "steps" });
      q.steps.forEach((s, i) => {
        steps.append(
          el(
            "li",
            {},
            eventInput(s.event, v, (x) => {
              s.event = x.trim();
              onChange();
            }, { "data-step": String(i) }),
            i > 0 && i < q.steps.length - 1
              ? checkbox("optional", s.optional, (x) => {
                  s.optional = x;
                  onChange();
                })
              : null,
            q.steps.length > 2
              ? button("×", () => {
                  q.steps.splice(i, 1);
                  q.exclusions = q.exclusions.filter((e) => e.to_step < q.steps.length);
                  redraw();
                }, { class: "btn-icon", title: "Remove step" })
              : null,
          ),
        );
      });
      box.append(
        el("div", { class: "field" }, el("span", { class: "field-label" }, "Steps"), steps,
          q.steps.length < 20 ? button("+ step", () => {
            q.steps.push({ event: v.events[0] ?? "", filters: [], name: null, optional: false, window: null });
            redraw();
          }, { class: "btn-link", id: "add-step" }) : null),
        el(
          "div",
          { class: "row" },
          field("Order", select(q.order, [["ordered", "Sequential"], ["strict", "Strict order"], ["unordered", "Any order"]], (x) => {
            q.order = x;
            onChange();
          })),
          field("Conversion window", el("div", { class: "row" }, numberInput(Number(q.window), (n) => {
            q.window = n;
            onChange();
          }, 1, 10000), select(q.window_unit, [["minute", "minutes"], ["hour", "hours"], ["day", "days"], ["week", "weeks"], ["month", "months"]], (x) => {
            q.window_unit = x;
            onChange();
          }))),
        ),
        el(
          "div",
          { class: "row" },
          field("Count", select(q.count, [["persons", "Unique persons"], ["totals", "Attempts (totals)"], ["sessions", "Sessions"]], (x) => {
            q.count = x;
            onChange();
          }, { id: "funnel-count" })),
          field("Show", select(q.display, [["steps", "Steps"], ["trends", "Conversion over time"]], (x) => {
            q.display = x;
            redraw();
          }, { id: "funnel-display" })),
        ),
        q.display === "trends"
          ? field("Entry periods", select(q.interval, INTERVALS, (x) => {
              q.interval = x;
              onChange();
            }))
          : el("span"),
        field("Hold constant", input(q.hold_constant.join(", "), (x) => {
          q.hold_constant = x.split(",").map((p) => p.trim()).filter(Boolean);
          onChange();
        }, { placeholder: "e.g. order_id" }), "Every step of a chain must share these event properties."),
        field("Breakdown", breakdownEditor(
          { kind: q.breakdown ? (q.breakdown.cohorts.length > 0 ? "cohorts" : q.breakdown.source) : "", property: q.breakdown?.property ?? "", cohorts: q.breakdown?.cohorts ?? [] },
          ["", "event", "person", "cohorts"],
          v,
          (b) => {
            const attribution = q.breakdown?.attribution ?? { type: "first_touch" as const };
            q.breakdown = b.kind === "event" || b.kind === "person"
              ? { property: b.property, source: b.kind, attribution, limit: q.breakdown?.limit ?? null, cohorts: [] }
              : b.kind === "cohorts"
                ? { property: "", source: "event", attribution, limit: null, cohorts: b.cohorts }
                : null;
            if (!q.breakdown || q.breakdown.property || q.breakdown.cohorts.length > 0) onChange();
          },
          "funnel-breakdown",
          () => select(attributionKey(q.breakdown?.attribution), [
            ["first_touch", "First touch"],
            ["last_touch", "Last touch"],
            ...q.steps.map((s, i): [string, string] => [`step:${i}`, `Step ${i + 1} (${s.event})`]),
            ["all_events", "Every event, per value"],
          ], (x) => {
            if (!q.breakdown) return;
            q.breakdown.attribution = x.startsWith("step:") ? { type: "step", step: Number(x.slice(5)) } : { type: x as "first_touch" | "last_touch" | "all_events" };
            if (q.breakdown.property) onChange();
          }, { id: "funnel-attribution", title: "Which events give a person their value" }),
        ), "Properties: the top 25 values, the rest in “Other”. Cohorts: one row each."),
        checkbox("Every step inside the date range", q.bound_all_steps, (x) => {
          q.bound_all_steps = x;
          onChange();
        }),
        checkbox("Count 0-second conversions in times", q.include_zero_second_times, (x) => {
          q.include_zero_second_times = x;
          onChange();
        }),
        field("Exclusion behaviour", select(q.exclusion_behaviour, [["drop_person", "Drop the person (PostHog)"], ["end_attempt", "End the attempt (Mixpanel)"]], (x) => {
          q.exclusion_behaviour = x;
          onChange();
        })),
      );
      const excl = el("div", { class: "filters" });
      q.exclusions.forEach((x, i) => {
        excl.append(el("div", { class: "filter-row" }, eventInput(x.event, v, (e) => {
          x.event = e.trim();
          onChange();
        }), el("span", { class: "muted" }, `between step ${x.from_step + 1} and ${x.to_step + 1}`), button("×", () => {
          q.exclusions.splice(i, 1);
          redraw();
        }, { class: "btn-icon" })));
      });
      excl.append(button("+ exclusion", () => {
        q.exclusions.push({ event: v.events[0] ?? "", from_step: 0, to_step: q.steps.length - 1 });
        redraw();
      }, { class: "btn-link" }));
      box.append(el("div", { class: "field" }, el("span", { class: "field-label" }, "Exclusions"), excl));
      box.append(filtersEditor(q.filters, onChange));
      break;
    }
    case "retention": {
      box.append(
        field("Start event", eventInput(q.start.event, v, (x) => {
          q.start.event = x.trim();
          onChange();
        }, { id: "retention-start" })),
        field("Return event", eventInput(q.returning.event, v, (x) => {
          q.returning.event = x.trim();
          onChange();
        }, { id: "retention-return" })),
        el("div", { class: "row" },
          field("Period", select(q.period, INTERVALS, (x) => {
            q.period = x;
            onChange();
          }, { id: "retention-period" })),
          field("Periods", numberInput(q.intervals, (n) => {
            q.intervals = n;
            onChange();
          }, 2, 60)),
          field("Cohorts", select(q.retention_type, [["first_time", "First time"], ["recurring", "Recurring"]], (x) => {
            q.retention_type = x;
            onChange();
          })),
        ),
        el("div", { class: "row" },
          field("Returns", select(q.cumulative ? "on_or_after" : "on", [["on", "On period N"], ["on_or_after", "On or after period N"]], (x) => {
            q.cumulative = x === "on_or_after";
            onChange();
          })),
          field("Periods are", select(q.time_window, [["calendar", "Calendar"], ["rolling24h", "Rolling 24 h"]], (x) => {
            q.time_window = x;
            onChange();
          })),
        ),
        field("Breakdown", breakdownEditor(
          { kind: q.breakdown ? (q.breakdown.cohorts.length > 0 ? "cohorts" : q.breakdown.source) : "", property: q.breakdown?.property ?? "", cohorts: q.breakdown?.cohorts ?? [] },
          ["", "event", "person", "cohorts"],
          v,
          (b) => {
            const attribution = q.breakdown?.attribution ?? "start";
            q.breakdown = b.kind === "event" || b.kind === "person"
              ? { property: b.property, source: b.kind, limit: null, attribution, cohorts: [] }
              : b.kind === "cohorts"
                ? { property: "", source: "person", limit: null, attribution, cohorts: b.cohorts }
                : null;
            const ready = !q.breakdown || q.breakdown.property !== "" || q.breakdown.cohorts.length > 0;
            if (ready) onChange();
          },
          "retention-breakdown",
          (b) => b.kind === "event"
            ? select(q.breakdown?.attribution ?? "start", [["start", "Value on the start event"], ["all_events", "Every event, per value (PostHog)"]], (x) => {
                if (!q.breakdown) return;
                q.breakdown.attribution = x;
                if (q.breakdown.property) onChange();
              }, { id: "retention-attribution" })
            : null,
        ), "Properties: the top 10 values, the rest in “Other”. Cohorts: one table each."),
      );
      break;
    }
    case "trends": {
      const list = el("div", { class: "series" });
      q.series.forEach((s, i) => {
        const letter = String.fromCharCode(65 + i);
        const prop = input(s.property ?? "", (x) => {
          s.property = x.trim() || null;
          onChange();
        }, { placeholder: "numeric property", class: "filter-key" });
        const group = input(s.group_type ?? "", (x) => {
          s.group_type = x.trim() || null;
          onChange();
        }, { placeholder: "group type, e.g. company", class: "filter-key" });
        const needsProp = !["total", "unique_persons", "unique_sessions", "weekly_active", "monthly_active", "unique_accounts"].includes(s.math);
        prop.hidden = !needsProp;
        group.hidden = s.math !== "unique_accounts";
        list.append(
          el("div", { class: "series-row" },
            el("span", { class: "series-letter" }, letter),
            eventInput(s.event ?? "", v, (x) => {
              s.event = x.trim() || null;
              onChange();
            }, { placeholder: "any event" }),
            select(s.math, MATHS, (x) => {
              s.math = x;
              redraw();
            }),
            prop,
            group,
            q.series.length > 1 ? button("×", () => {
              q.series.splice(i, 1);
              redraw();
            }, { class: "btn-icon" }) : null,
          ),
        );
      });
      box.append(
        el("div", { class: "field" }, el("span", { class: "field-label" }, "Series"), list,
          button("+ series", () => {
            q.series.push({ event: v.events[0] ?? null, filters: [], math: "total", property: null, group_type: null, name: null });
            redraw();
          }, { class: "btn-link" })),
        el("div", { class: "row" },
          field("Interval", select(q.interval, INTERVALS, (x) => {
            q.interval = x;
            onChange();
          }, { id: "trends-interval" })),
          field("Formula", input(q.formula ?? "", (x) => {
            q.formula = x.trim() || null;
            onChange();
          }, { placeholder: "e.g. A / B" })),
        ),
        field("Breakdown", breakdownEditor(
          {
            kind: !q.breakdown ? "" : q.breakdown.type === "cohorts" ? "cohorts" : q.breakdown.source,
            property: q.breakdown?.type === "property" ? q.breakdown.property : "",
            cohorts: q.breakdown?.type === "cohorts" ? q.breakdown.cohorts : [],
          },
          ["", "event", "person", "cohorts"],
          v,
          (b) => {
            q.breakdown = b.kind === "event" || b.kind === "person"
              ? { type: "property", property: b.property, source: b.kind, limit: null }
              : b.kind === "cohorts"
                ? { type: "cohorts", cohorts: b.cohorts }
                : null;
            const ready = !q.breakdown || (q.breakdown.type === "property" ? q.breakdown.property !== "" : q.breakdown.cohorts.length > 0);
            if (ready) onChange();
          },
          "trends-breakdown",
        ), "Properties: the top 25 values by events, the rest in “Other”. Cohorts: one line each."),
      );
      box.append(filtersEditor(q.filters, onChange));
      break;
    }
    case "stickiness":
    case "lifecycle": {
      box.append(
        field("Event", eventInput(q.event, v, (x) => {
          q.event = x.trim();
          onChange();
        })),
        field("Interval", select(q.interval, INTERVALS, (x) => {
          q.interval = x;
          onChange();
        })),
      );
      if (q.kind === "stickiness") {
        box.append(checkbox("Cumulative (N or more periods)", q.cumulative, (x) => {
          q.cumulative = x;
          onChange();
        }));
      } else {
        box.append(field("New means", select(q.new_by, [["first_matching_event", "First matching event"], ["created_at", "Person created (PostHog)"]], (x) => {
          q.new_by = x;
          onChange();
        })));
      }
      box.append(filtersEditor(q.filters, onChange));
      break;
    }
    case "paths": {
      box.append(
        el("div", { class: "row" },
          field("Start at", input(q.start ?? "", (x) => {
            q.start = x.trim() || null;
            onChange();
          }, { placeholder: "event or /page (optional)" })),
          field("End at", input(q.end ?? "", (x) => {
            q.end = x.trim() || null;
            onChange();
          }, { placeholder: "optional" })),
        ),
        el("div", { class: "row" },
          field("Steps", numberInput(q.steps, (n) => {
            q.steps = n;
            onChange();
          }, 2, 20)),
          field("Split paths", select(q.split, [["gap", "At 30-min gaps"], ["session", "At sessions"], ["none", "Never"]], (x) => {
            q.split = x;
            onChange();
          })),
          field("Node limit", numberInput(q.node_limit, (n) => {
            q.node_limit = n;
            onChange();
          }, 5, 200)),
        ),
        checkbox("Page views as their URL path", q.page_paths, (x) => {
          q.page_paths = x;
          onChange();
        }),
        checkbox("Collapse repeated events", q.collapse_repeats, (x) => {
          q.collapse_repeats = x;
          onChange();
        }),
      );
      box.append(filtersEditor(q.filters, onChange));
      break;
    }
  }
  return box;
}
