// Canned IPC results shaped exactly like the engine's (the generated binding types check it).
import type { FunnelResult, PersonSummary, RetentionResult, TrendsResult } from "../src/lib/ipc/types";

export const funnel: FunnelResult = {
  count: "persons",
  steps: [
    { index: 0, name: "signed_up", count: 100, conversionOverall: 1, conversionFromPrevious: null, averageTimeS: null, medianTimeS: null, optional: false },
    { index: 1, name: "created_project", count: 60, conversionOverall: 0.6, conversionFromPrevious: 0.6, averageTimeS: 3600, medianTimeS: 1800, optional: false },
    { index: 2, name: "upgraded_plan", count: 15, conversionOverall: 0.15, conversionFromPrevious: 0.25, averageTimeS: 86400, medianTimeS: 7200, optional: false },
  ],
  breakdown: [],
  timeToConvert: { bins: [[0, 5], [3600, 10]], averageS: 4000 },
  trends: null,
  notes: [],
  sql: "SELECT 1",
  millis: 12.5,
};

export const retention: RetentionResult = {
  cohorts: [
    { label: "2024-01-01", size: 10, values: [10, 4, 2] },
    { label: "2024-01-08", size: 5, values: [5, 1, null] },
  ],
  meanSimple: [1, 0.3, 0.2],
  meanWeighted: [1, 0.333, 0.2],
  breakdown: [],
  notes: [],
  sql: "SELECT 2",
  millis: 3,
};

export const trends: TrendsResult = {
  dates: ["2024-01-01", "2024-01-02"],
  series: [{ label: "$pageview", series: 0, breakdownValue: null, values: [3, 4.5] }],
  notes: ["2 values merged into Other"],
  sql: ["SELECT 3"],
  millis: 1,
};

export const hostile: PersonSummary = {
  personId: "p-1",
  displayName: '<img src=x onerror="window.__xss=1">',
  email: "<script>window.__xss=2</script>",
  isIdentified: true,
  distinctIds: 2,
  createdAt: "2024-01-01T00:00:00Z",
  lastSeen: "2024-01-02T00:00:00Z",
  events: 10,
  sessions: 2,
  sharedDevice: true,
};
