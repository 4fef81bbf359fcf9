// Component tests in a DOM (jsdom) against canned engine results.
import { describe, expect, it, vi } from "vitest";
import { csv, fmtDay, fmtDuration, fmtPct, fmtTime, setDisplayTimeZone } from "../src/components/dom";
import { personsTable } from "../src/components/persons";
import { asOfLine, render } from "../src/features/insights/results";
import { defaultQuery, kindFields } from "../src/features/insights/builder";
import { guessMapping, importable, mappingForm, previewTable } from "../src/features/data/import";
import type { FilePreview } from "../src/lib/ipc/types";
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

  it("broken-down funnel trends draw a line per value and drill per value and period", () => {
    const period = (date: string, entered: number, converted: number, complete = true) => ({ date, entered, converted, conversionRate: entered > 0 ? converted / entered : null, complete });
    const trendsResult = {
      ...funnel,
      breakdown: [{ value: "Chrome", steps: funnel.steps }, { value: "Other", steps: funnel.steps }],
      trends: {
        interval: "week" as const,
        fromStep: 0,
        toStep: 2,
        periods: [period("2024-01-01", 3, 1), period("2024-01-08", 2, 2, false)],
        breakdown: [
          { value: "Chrome", periods: [period("2024-01-01", 2, 1), period("2024-01-08", 1, 1, false)] },
          { value: "Other", periods: [period("2024-01-01", 1, 0), period("2024-01-08", 1, 1, false)] },
        ],
      },
    };
    const onDrill = vi.fn();
    const out = render({ kind: "funnel", ...trendsResult }, defaultQuery("funnel", vocab), onDrill);
    const series = (out.option as { series: { name: string; data: { value: number | null; drill?: string }[] }[] }).series;
    // A complete and an incomplete line per value.
    expect(series.map((s) => s.name)).toEqual(["Chrome", "Chrome", "Other", "Other"]);
    expect(series[0]?.data.map((d) => d.value)).toEqual([0.5, null]);
    expect(series[3]?.data.map((d) => d.drill)).toEqual(["period:0:converted@Other", "period:1:converted@Other"]);
    const cells = [...out.table.querySelectorAll<HTMLButtonElement>("button[data-drill]")].map((b) => b.dataset.drill);
    expect(cells).toContain("period:1:entered");
    expect(cells).toContain("period:0:converted@Chrome");
    out.table.querySelector<HTMLButtonElement>('button[data-drill="period:1:entered@Other"]')?.click();
    expect(onDrill).toHaveBeenCalledWith("period:1:entered@Other");
    expect(out.csv[0]).toEqual(["breakdown", "period", "entered", "converted", "rate", "complete"]);
    expect(out.csv).toContainEqual(["Chrome", "2024-01-08", 1, 1, 1, "false"]);
  });

  it("the retention breakdown picker writes a property or a list of cohorts", () => {
    const q = defaultQuery("retention", { ...vocab, cohorts: ["paying", "internal"] });
    if (q.kind !== "retention") throw new Error("not retention");
    const form = kindFields(q, { ...vocab, cohorts: ["paying", "internal"] }, () => {}, () => {});
    document.body.replaceChildren(form);
    const kind = form.querySelector<HTMLSelectElement>("#retention-breakdown-kind");
    if (!kind) throw new Error("no breakdown picker");
    kind.value = "cohorts";
    kind.dispatchEvent(new Event("change"));
    const box = form.querySelector<HTMLInputElement>('[data-cohort="paying"]');
    if (!box) throw new Error("no cohort choices");
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    expect(q.breakdown).toEqual({ property: "", source: "person", limit: null, attribution: "start", cohorts: ["paying"] });
    kind.value = "event";
    kind.dispatchEvent(new Event("change"));
    const prop = form.querySelector<HTMLInputElement>("#retention-breakdown");
    if (!prop) throw new Error("no property input");
    prop.value = "$browser";
    prop.dispatchEvent(new Event("change"));
    expect(q.breakdown).toMatchObject({ property: "$browser", source: "event", cohorts: [] });
    expect(form.querySelector("#retention-attribution")).not.toBeNull();
  });

  it("a result says what it is as of, and warns about a range outside the data", () => {
    const asOf = { nowUs: 1706972400000000, source: "data_end" as const, date: "2024-02-03", label: "as of 3 Feb 2024, the end of the data" };
    const quiet = asOfLine(asOf, []);
    expect(quiet.textContent).toBe("as of 3 Feb 2024, the end of the data");
    expect(quiet.querySelector(".insight-warning")).toBeNull();
    const warned = asOfLine({ ...asOf, source: "wall_clock", label: "as of now, 1 Mar 2026" }, ["the date range (1 Feb 2026 – 1 Mar 2026) lies wholly after the data (1 Jan 2024 – 3 Feb 2024): every number is 0"]);
    expect(warned.querySelector("[data-source]")?.getAttribute("data-source")).toBe("wall_clock");
    expect(warned.querySelector('.insight-warning[role="alert"]')?.textContent).toContain("wholly after the data");
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
  it("times: one readable format in the workspace time zone, whatever ISO shape the engine sent", () => {
    setDisplayTimeZone("UTC");
    for (const iso of ["2024-01-02T13:15:33.000000Z", "2024-01-02 13:15:33.000000+00:00", "2024-01-02T13:15:33Z", "2024-01-02 13:15:33"]) {
      expect(fmtTime(iso)).toBe("2024-01-02 13:15:33 UTC");
    }
    setDisplayTimeZone("America/New_York");
    expect(fmtTime("2024-01-02T13:15:33.000000Z")).toBe("2024-01-02 08:15:33 EST");
    expect(fmtTime("2024-07-02T13:15:33Z")).toBe("2024-07-02 09:15:33 EDT");
    expect(fmtDay("2024-02-03T03:00:00Z")).toBe("2 Feb 2024");
    expect(fmtTime(null)).toBe("—");
    setDisplayTimeZone("UTC");
  });
});

describe("import wizard", () => {
  const generic: FilePreview = {
    path: "/data/clicks.csv", sizeBytes: 120, vendor: null, kind: null, container: "csv", compression: "none", target: null,
    problem: "could not recognise this csv file as any vendor's export", needsMapping: true,
    sourceColumns: ["when", "action", "who", "device_id", "amount"], rawSamples: ['{"when":"2024-03-01T10:00:00Z","action":"<img src=x onerror=\\"window.__xss=3\\">"}'],
    columns: [], rows: [], rejected: 0,
  };

  it("guesses a first mapping from the column names", () => {
    expect(guessMapping(generic.sourceColumns)).toEqual({ event: "action", timestamp: "when", timestamp_format: "iso8601", user_id: "who", anon_id: "device_id", session_id: null, distinct_id: null, event_id: null });
    expect(guessMapping(["a", "b"]).event).toBe("");
  });

  it("the mapping form offers the file's columns and reports edits", () => {
    const onChange = vi.fn();
    const form = mappingForm(generic.sourceColumns, guessMapping(generic.sourceColumns), onChange);
    const event = form.querySelector<HTMLSelectElement>('select[data-field="event"]');
    expect([...(event?.options ?? [])].map((o) => o.value)).toEqual(["", ...generic.sourceColumns]);
    expect(event?.value).toBe("action");
    const session = form.querySelector<HTMLSelectElement>('select[data-field="session_id"]');
    if (!session) throw new Error("no session select");
    session.value = "amount";
    session.dispatchEvent(new Event("change"));
    expect(onChange).toHaveBeenCalledWith(expect.objectContaining({ session_id: "amount" }));
  });

  it("previewed rows are text, and rows the import would quarantine are marked", () => {
    const p: FilePreview = {
      ...generic, vendor: "generic", problem: null, needsMapping: false, target: "events",
      columns: ["line", "event_name", "reject_reason"],
      rows: [["1", '<img src=x onerror="window.__xss=4">', null], ["2", "Clicked", "no valid time"]],
      rejected: 1,
    };
    const t = previewTable(p);
    document.body.append(t);
    expect(t.querySelectorAll("img").length).toBe(0);
    expect(t.querySelectorAll("tr.rejected").length).toBe(1);
    expect(t.textContent).toContain("null");
    expect((window as unknown as { __xss?: number }).__xss).toBeUndefined();
    expect(importable(p)).toBe(true);
    expect(importable(generic)).toBe(false);
  });
});
