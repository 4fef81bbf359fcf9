// An insight result as a chart (ECharts option with a drill cell on every point), a table of
// its numbers, and the same numbers as CSV rows.
import { el, fmtDuration, fmtInt, fmtNum, fmtPct } from "../../components/dom";
import type { ChartOption } from "../../components/chart";
import type { AsOf, CohortRow, FunnelTrendPeriod, InsightResult, Query } from "../../lib/ipc/types";

export interface Rendered {
  option: ChartOption;
  /** A second chart under the first (funnel time to convert, retention curve). */
  second?: { title: string; option: ChartOption };
  table: HTMLElement;
  csv: (string | number | null)[][];
  notes: string[];
  sql: string;
  millis: number;
}

/** What a result is computed as of ("as of 3 Feb 2024, the end of the data"), and its
 *  warnings (a date range wholly outside the data), shown above the chart. */
export function asOfLine(asOf: AsOf, warnings: string[]): HTMLElement {
  return el("div", { class: "as-of", id: "insight-as-of" },
    el("p", { class: "muted small", "data-source": asOf.source, title: `Relative dates count back from this instant (${asOf.date}). Settings → Insights switches between the end of the data and the clock.` }, asOf.label),
    ...warnings.map((w) => el("div", { class: "warning insight-warning", role: "alert" }, w)));
}

const axisLabel = { color: "#64748b", fontSize: 11 };
const grid = { left: 56, right: 24, top: 36, bottom: 48, containLabel: true };

function numbersTable(headers: string[], rows: (string | number | null)[][], cellDrill?: (r: number, c: number) => string | null, onDrill?: (cell: string) => void): HTMLElement {
  const t = el("table", { class: "grid numbers" });
  t.append(el("thead", {}, el("tr", {}, ...headers.map((h, i) => el("th", i === 0 ? {} : { class: "num" }, h)))));
  const body = el("tbody");
  rows.forEach((r, ri) => {
    const tr = el("tr");
    r.forEach((c, ci) => {
      const text = c === null ? "—" : typeof c === "number" ? fmtNum(c) : c;
      const drill = cellDrill?.(ri, ci) ?? null;
      if (drill && onDrill && c !== null) {
        const a = el("button", { class: "cell-link", type: "button", "data-drill": drill, title: "Show these persons" }, text);
        a.addEventListener("click", () => onDrill(drill));
        tr.append(el("td", { class: ci === 0 ? "" : "num" }, a));
      } else {
        tr.append(el("td", { class: ci === 0 ? "" : "num" }, text));
      }
    });
    body.append(tr);
  });
  t.append(body);
  return el("div", { class: "table-scroll" }, t);
}

function heatColor(p: number | null): string {
  if (p === null) return "transparent";
  const a = 0.08 + 0.85 * Math.min(1, Math.max(0, p));
  return `rgba(29, 78, 216, ${a.toFixed(3)})`;
}

function retentionTable(cohorts: CohortRow[], meanSimple: (number | null)[], onDrill: (cell: string) => void, suffix = ""): HTMLElement {
  const periods = Math.max(0, ...cohorts.map((c) => c.values.length));
  // The whole table has the id; a breakdown row's table is marked by its value.
  const t = el("table", suffix === "" ? { class: "grid retention", id: "retention-table" } : { class: "grid retention retention-breakdown", "data-value": suffix.slice(1) });
  t.append(el("thead", {}, el("tr", {}, el("th", {}, "Cohort"), el("th", { class: "num" }, "Persons"), ...Array.from({ length: periods }, (_, k) => el("th", { class: "num" }, `${k}`)))));
  const body = el("tbody");
  cohorts.forEach((c, ci) => {
    const tr = el("tr", {}, el("td", {}, c.label), el("td", { class: "num" }, fmtInt(c.size)));
    for (let k = 0; k < periods; k++) {
      const v = c.values[k];
      if (v === null || v === undefined) {
        tr.append(el("td", { class: "num incomplete", title: "Not complete yet" }, ""));
        continue;
      }
      const p = c.size > 0 ? v / c.size : null;
      const b = el("button", { class: "cell-link", type: "button", "data-drill": `${ci}:${k}${suffix}`, title: `${fmtInt(v)} persons` }, fmtPct(p, 1));
      b.addEventListener("click", () => onDrill(`${ci}:${k}${suffix}`));
      const td = el("td", { class: "num heat" }, b);
      td.style.background = heatColor(p);
      if (p !== null && p > 0.5) td.classList.add("dark-cell");
      tr.append(td);
    }
    body.append(tr);
  });
  body.append(el("tr", { class: "mean" }, el("td", {}, "Mean"), el("td", {}, ""), ...meanSimple.map((m) => el("td", { class: "num" }, fmtPct(m, 1)))));
  t.append(body);
  return el("div", { class: "table-scroll" }, t);
}

export function render(r: InsightResult, q: Query, onDrill: (cell: string) => void): Rendered {
  switch (r.kind) {
    case "funnel": {
      const steps = r.steps;
      const labels = steps.map((s, i) => `${i + 1}. ${s.name}`);
      const seriesFor = (name: string, rows: typeof steps, suffix: string) => ({
        name,
        type: "bar",
        barMaxWidth: 64,
        label: { show: true, position: "top", formatter: (p: { dataIndex: number }) => fmtPct(rows[p.dataIndex]?.conversionOverall ?? null, 1), fontSize: 11 },
        data: rows.map((s, i) => ({ value: s.count, drill: `${i + 1}${suffix}` })),
      });
      const series = r.breakdown.length > 0 ? r.breakdown.map((b) => seriesFor(b.value, b.steps, `@${b.value}`)) : [seriesFor(r.count === "persons" ? "Persons" : r.count === "sessions" ? "Sessions" : "Attempts", steps, "")];
      const dropped = r.breakdown.length === 0
        ? [{
            name: "Dropped off",
            type: "bar",
            barMaxWidth: 64,
            barGap: "-100%",
            z: 1,
            itemStyle: { color: "rgba(100, 116, 139, 0.15)" },
            data: steps.map((_, i) => ({ value: steps[0]?.count ?? 0, drill: i > 0 ? `-${i + 1}` : undefined })),
          }]
        : [];
      const option: ChartOption = {
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        legend: { top: 0 },
        grid,
        xAxis: { type: "category", data: labels, axisLabel: { ...axisLabel, interval: 0, width: 140, overflow: "truncate" } },
        yAxis: { type: "value", name: "Persons", axisLabel },
        series: [...dropped, ...series],
      };
      const hist = r.timeToConvert;
      const second = hist.bins.length > 0
        ? {
            title: `Time to convert (average ${fmtDuration(hist.averageS)})`,
            option: {
              tooltip: { trigger: "axis" },
              grid,
              xAxis: { type: "category", data: hist.bins.map((b) => fmtDuration(b[0])), axisLabel },
              yAxis: { type: "value", name: "Persons", axisLabel },
              series: [{ type: "bar", data: hist.bins.map((b) => b[1]), itemStyle: { color: "#0891b2" } }],
            } as ChartOption,
          }
        : undefined;
      if (r.trends) {
        const tr = r.trends;
        const rate = (p: FunnelTrendPeriod) => p.conversionRate;
        // One line per breakdown value (or one for everyone), dashed where the window is still open.
        const lines = tr.breakdown.length > 0
          ? tr.breakdown.map((b) => ({ name: b.value === "" ? "None" : b.value, periods: b.periods, suffix: `@${b.value}` }))
          : [{ name: `Conversion, step ${tr.fromStep + 1} → ${tr.toStep + 1}`, periods: tr.periods, suffix: "" }];
        const series = lines.flatMap((l) => [
          { name: l.name, type: "line", data: l.periods.map((p, i) => ({ value: p.complete ? rate(p) : null, drill: `period:${i}:converted${l.suffix}` })) },
          { name: tr.breakdown.length > 0 ? l.name : "Incomplete (window still open)", type: "line", lineStyle: { type: "dashed" }, data: l.periods.map((p, i) => ({ value: p.complete ? null : rate(p), drill: `period:${i}:converted${l.suffix}` })) },
        ]);
        const option: ChartOption = {
          tooltip: { trigger: "axis", valueFormatter: (v: number) => fmtPct(v, 1) },
          legend: { top: 0, type: "scroll" },
          grid,
          xAxis: { type: "category", data: tr.periods.map((p) => p.date), axisLabel },
          yAxis: { type: "value", min: 0, max: 1, axisLabel: { ...axisLabel, formatter: (v: number) => `${Math.round(v * 100)}%` } },
          series,
        };
        const tableLines = tr.breakdown.length > 0 ? [{ value: "", periods: tr.periods, suffix: "" }, ...tr.breakdown.map((b) => ({ value: b.value === "" ? "None" : b.value, periods: b.periods, suffix: `@${b.value}` }))] : [{ value: "", periods: tr.periods, suffix: "" }];
        const rows: (string | number | null)[][] = [];
        const drills: { i: number; at: string }[] = [];
        for (const l of tableLines) {
          for (const [i, p] of l.periods.entries()) {
            rows.push([...(tr.breakdown.length > 0 ? [l.value === "" ? "All" : l.value] : []), p.date, p.entered, p.converted, fmtPct(p.conversionRate), p.complete ? "yes" : "no"]);
            drills.push({ i, at: l.suffix });
          }
        }
        const off = tr.breakdown.length > 0 ? 1 : 0;
        const headers = [...(off ? ["Breakdown"] : []), "Period", "Entered", "Converted", "Rate", "Complete"];
        const table = numbersTable(headers, rows, (ri, ci) => {
          const d = drills[ri];
          if (!d) return null;
          return ci === 1 + off ? `period:${d.i}:entered${d.at}` : ci === 2 + off ? `period:${d.i}:converted${d.at}` : null;
        }, onDrill);
        table.id = "funnel-trends-table";
        const csv: (string | number | null)[][] = [["breakdown", "period", "entered", "converted", "rate", "complete"]];
        for (const l of tableLines) for (const p of l.periods) csv.push([l.value, p.date, p.entered, p.converted, p.conversionRate, String(p.complete)]);
        return { option, table, csv, notes: r.notes, sql: r.sql, millis: r.millis };
      }
      const unit = r.count === "persons" ? "Persons" : r.count === "sessions" ? "Sessions" : "Attempts";
      const headers = ["Step", unit, "Overall", "From previous", "Dropped", "Avg time", "Median time"];
      const rows = steps.map((s, i) => [labels[i] ?? s.name, s.count, fmtPct(s.conversionOverall), fmtPct(s.conversionFromPrevious), i > 0 ? (steps[i - 1]?.count ?? 0) - s.count : null, fmtDuration(s.averageTimeS), fmtDuration(s.medianTimeS)]);
      const table = numbersTable(headers, rows, (ri, ci) => (ci === 1 ? `${ri + 1}` : ci === 4 && ri > 0 ? `-${ri + 1}` : null), onDrill);
      table.id = "funnel-table";
      const csvRows: (string | number | null)[][] = [["breakdown", ...headers]];
      for (const s of rows) csvRows.push(["", ...s.map((c) => c)]);
      for (const b of r.breakdown) for (const [i, s] of b.steps.entries()) csvRows.push([b.value, labels[i] ?? s.name, s.count, s.conversionOverall, s.conversionFromPrevious, null, s.averageTimeS, s.medianTimeS]);
      return { option, second, table, csv: csvRows, notes: r.notes, sql: r.sql, millis: r.millis };
    }
    case "retention": {
      const periods = Math.max(0, ...r.cohorts.map((c) => c.values.length));
      const option: ChartOption = {
        tooltip: { trigger: "axis", valueFormatter: (v: number) => fmtPct(v, 1) },
        legend: { top: 0, type: "scroll" },
        grid,
        xAxis: { type: "category", data: Array.from({ length: periods }, (_, k) => `${q.kind === "retention" ? q.period : "period"} ${k}`), axisLabel },
        yAxis: { type: "value", min: 0, max: 1, axisLabel: { ...axisLabel, formatter: (v: number) => `${Math.round(v * 100)}%` } },
        // Broken down: everyone's weighted mean and each value's (the first 10).
        series: r.breakdown.length === 0
          ? [
              { name: "Mean (simple)", type: "line", data: r.meanSimple, connectNulls: false },
              { name: "Mean (weighted by size)", type: "line", data: r.meanWeighted, lineStyle: { type: "dashed" } },
            ]
          : [
              { name: "Everyone (weighted)", type: "line", data: r.meanWeighted, lineStyle: { type: "dashed" } },
              ...r.breakdown.slice(0, 10).map((b) => ({ name: b.value, type: "line", data: b.meanWeighted })),
            ],
      };
      const parts = el("div", {}, retentionTable(r.cohorts, r.meanSimple, onDrill));
      for (const b of r.breakdown) {
        parts.append(el("h4", {}, b.value), retentionTable(b.cohorts, b.meanSimple, onDrill, `@${b.value}`));
      }
      const csvRows: (string | number | null)[][] = [["breakdown", "cohort", "persons", ...Array.from({ length: periods }, (_, k) => `period_${k}`)]];
      for (const c of r.cohorts) csvRows.push(["", c.label, c.size, ...c.values]);
      for (const b of r.breakdown) for (const c of b.cohorts) csvRows.push([b.value, c.label, c.size, ...c.values]);
      return { option, table: parts, csv: csvRows, notes: r.notes, sql: r.sql, millis: r.millis };
    }
    case "trends": {
      const option: ChartOption = {
        tooltip: { trigger: "axis" },
        legend: { top: 0, type: "scroll" },
        grid,
        xAxis: { type: "category", data: r.dates, axisLabel },
        yAxis: { type: "value", axisLabel },
        series: r.series.map((s) => ({
          name: s.label,
          type: "line",
          symbolSize: 6,
          data: s.values.map((v, i) => ({ value: v, drill: s.series === null ? undefined : `${s.series}:${i}${s.breakdownValue !== null ? `@${s.breakdownValue}` : ""}` })),
        })),
      };
      const headers = ["Period", ...r.series.map((s) => s.label)];
      const rows = r.dates.map((d, i) => [d, ...r.series.map((s) => s.values[i] ?? null)]);
      const table = numbersTable(headers, rows, (ri, ci) => {
        const s = r.series[ci - 1];
        return ci > 0 && s && s.series !== null ? `${s.series}:${ri}${s.breakdownValue !== null ? `@${s.breakdownValue}` : ""}` : null;
      }, onDrill);
      table.id = "trends-table";
      return { option, table, csv: [headers, ...rows], notes: r.notes, sql: r.sql.join(";\n\n"), millis: r.millis };
    }
    case "stickiness": {
      const unit = q.kind === "stickiness" ? q.interval : "period";
      const labels = r.persons.map((_, i) => `${i + 1} ${unit}${i === 0 ? "" : "s"}`);
      const option: ChartOption = {
        tooltip: { trigger: "axis" },
        grid,
        xAxis: { type: "category", data: labels, axisLabel },
        yAxis: { type: "value", name: "Persons", axisLabel },
        series: [{ type: "bar", data: r.persons.map((n, i) => ({ value: n, drill: `${i + 1}` })) }],
      };
      const rows = r.persons.map((n, i) => [labels[i] ?? "", n]);
      const table = numbersTable(["Active", "Persons"], rows, (ri, ci) => (ci === 1 ? `${ri + 1}` : null), onDrill);
      return { option, table, csv: [["active_periods", "persons"], ...r.persons.map((n, i) => [i + 1, n])], notes: [], sql: r.sql, millis: r.millis };
    }
    case "lifecycle": {
      const statuses = ["new", "returning", "resurrecting", "dormant"] as const;
      const colors = { new: "#16a34a", returning: "#1d4ed8", resurrecting: "#ca8a04", dormant: "#dc2626" };
      const option: ChartOption = {
        tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
        legend: { top: 0 },
        grid,
        xAxis: { type: "category", data: r.periods.map((p) => p.date), axisLabel },
        yAxis: { type: "value", axisLabel },
        series: statuses.map((s) => ({
          name: s,
          type: "bar",
          stack: s === "dormant" ? "down" : "up",
          itemStyle: { color: colors[s] },
          data: r.periods.map((p, i) => ({ value: p[s], drill: `${i}:${s}` })),
        })),
      };
      const rows = r.periods.map((p) => [p.date, p.new, p.returning, p.resurrecting, p.dormant]);
      const table = numbersTable(["Period", "New", "Returning", "Resurrecting", "Dormant"], rows, (ri, ci) => (ci > 0 ? `${ri}:${statuses[ci - 1]}` : null), onDrill);
      return { option, table, csv: [["period", ...statuses], ...rows], notes: [], sql: r.sql, millis: r.millis };
    }
    case "paths": {
      const option: ChartOption = {
        tooltip: { trigger: "item" },
        series: [{
          type: "sankey",
          left: 8,
          right: 140,
          top: 16,
          bottom: 16,
          nodeGap: 10,
          emphasis: { focus: "adjacency" },
          lineStyle: { color: "gradient", opacity: 0.35 },
          label: { fontSize: 11, formatter: (p: { name: string }) => p.name.replace(/^\d+_/, "") },
          data: r.nodes.map((n) => ({ name: n.key, value: n.persons, drill: n.key })),
          links: r.edges.map((e) => ({ source: e.source, target: e.target, value: e.paths, drill: `${e.source}>${e.target}` })),
        }],
      };
      const rows = r.edges.map((e) => [e.source, e.target, e.paths, e.persons, fmtPct(e.personShare)]);
      const table = numbersTable(["From", "To", "Paths", "Persons", "% of persons"], rows, (ri, ci) => {
        const e = r.edges[ri];
        return ci === 3 && e ? `${e.source}>${e.target}` : null;
      }, onDrill);
      return { option, table, csv: [["from", "to", "paths", "persons", "person_share"], ...r.edges.map((e) => [e.source, e.target, e.paths, e.persons, e.personShare])], notes: [`${fmtInt(r.totalPaths)} paths of ${fmtInt(r.totalPersons)} persons`, ...r.notes], sql: r.sql, millis: r.millis };
    }
  }
}
