// Component tests in a DOM (jsdom) against canned engine results.
import { describe, expect, it, vi } from "vitest";
import { csv, fmtDuration, fmtPct } from "../src/components/dom";
import { personsTable } from "../src/components/persons";
import { render } from "../src/features/insights/results";
import { defaultQuery } from "../src/features/insights/builder";
import { funnel, hostile, retention, trends } from "./fixture";

const vocab = { events: ["signed_up", "created_project", "upgraded_plan", "$pageview"], cohorts: [], lastDay: "2024-01-31", firstDay: "2024-01-01" };

describe("insight results", () => {
  it("a funnel's table drills into reached and dropped-off persons", () => {
    const onDrill = vi.fn();
    const out = render({ kind: "funnel", ...funnel }, defaultQuery("funnel", vocab), onDrill);
    const cells = [...out.table.querySelectorAll<HTMLButtonElement>("button[data-drill]")].map((b) => b.dataset.drill);
    expect(cells).toEqual(["1", "2", "-2", "3", "-3"]);
    out.table.querySelector<HTMLButtonElement>('button[data-drill="-3"]')?.click();
    expect(onDrill).toHaveBeenCalledWith("-3");
    // dropped before step 3 = 60 - 15
    expect(out.table.textContent).toContain("45");
    expect(out.second?.title).toContain("1h 06m");
    expect(out.sql).toBe("SELECT 1");
  });

  it("retention marks incomplete cells instead of showing 0 and drills per cell", () => {
    const out = render({ kind: "retention", ...retention }, defaultQuery("retention", vocab), () => {});
    const incomplete = out.table.querySelectorAll("td.incomplete");
    expect(incomplete.length).toBe(1);
    expect(out.table.querySelector('button[data-drill="0:1"]')?.textContent).toBe("40.0%");
    expect(out.csv[2]).toEqual(["", "2024-01-08", 5, 5, 1, null]);
  });

  it("trend points carry their series and period", () => {
    const out = render({ kind: "trends", ...trends }, defaultQuery("trends", vocab), () => {});
    const series = (out.option as { series: { data: { drill?: string }[] }[] }).series;
    expect(series[0]?.data.map((d) => d.drill)).toEqual(["0:0", "0:1"]);
    expect(out.notes).toEqual(["2 values merged into Other"]);
    expect(out.table.textContent).toContain("4.50");
  });
});

describe("untrusted values", () => {
  it("person names and emails are text, never markup", () => {
    const t = personsTable([hostile]);
    document.body.append(t);
    expect(t.querySelectorAll("img, script").length).toBe(0);
    expect(t.textContent).toContain('<img src=x onerror="window.__xss=1">');
    expect((window as unknown as { __xss?: number }).__xss).toBeUndefined();
    expect(t.textContent).toContain("shared device");
  });

  it("CSV quotes separators, quotes and formula-like cells", () => {
    expect(csv([["a,b", 'say "hi"', "=SUM(A1)", 3, null]])).toBe('"a,b","say ""hi""","=SUM(A1)",3,\n');
  });
});

describe("formatting", () => {
  it("durations and percentages", () => {
    expect(fmtDuration(42)).toBe("42s");
    expect(fmtDuration(185)).toBe("3m 05s");
    expect(fmtDuration(7800)).toBe("2h 10m");
    expect(fmtDuration(90000)).toBe("1d 1h");
    expect(fmtPct(0.1234)).toBe("12.3%");
    expect(fmtPct(null)).toBe("—");
  });
});
