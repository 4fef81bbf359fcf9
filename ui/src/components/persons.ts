// A list of person summaries; a click opens the person page.
import { csv, el, fmtInt, fmtTime } from "./dom";
import { link } from "../lib/router";
import type { PersonSummary } from "../lib/ipc/types";

export function personsTable(rows: PersonSummary[], id = "persons-table"): HTMLElement {
  const t = el("table", { class: "grid persons", id });
  t.append(
    el("thead", {}, el("tr", {}, ...["Person", "Email", "Ids", "Events", "Sessions", "Last seen"].map((h, i) => el("th", i >= 2 && i <= 4 ? { class: "num" } : {}, h)))),
  );
  const body = el("tbody");
  for (const p of rows) {
    const name = p.displayName ?? p.email ?? p.personId;
    const a = el("a", { href: link(["person", p.personId]), class: "person-link", "data-person": p.personId }, name);
    body.append(
      el(
        "tr",
        {},
        el("td", {}, a, p.sharedDevice ? el("span", { class: "badge badge-warning", title: "Uses a device shared with other identified users" }, "shared device") : null, p.isIdentified ? null : el("span", { class: "badge" }, "anonymous")),
        el("td", {}, p.email ?? "—"),
        el("td", { class: "num" }, fmtInt(p.distinctIds)),
        el("td", { class: "num" }, fmtInt(p.events)),
        el("td", { class: "num" }, fmtInt(p.sessions)),
        el("td", {}, fmtTime(p.lastSeen)),
      ),
    );
  }
  t.append(body);
  return el("div", { class: "table-scroll" }, t);
}

/** A person list as CSV (drill-downs and cohort members). */
export function personsCsv(rows: PersonSummary[]): string {
  return csv([["person_id", "name", "email", "events", "sessions", "last_seen"], ...rows.map((p) => [p.personId, p.displayName, p.email, p.events, p.sessions, p.lastSeen])]);
}
