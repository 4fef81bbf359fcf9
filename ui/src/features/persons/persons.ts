// Persons: search, the person page (ids, merge history with why, warnings, properties,
// sessions) and the virtualised event timeline stepped through with the keyboard.
import { button, el, emptyState, fmtDuration, fmtInt, fmtTime, loading, table } from "../../components/dom";
import { personsTable } from "../../components/persons";
import type { Backend } from "../../lib/ipc/client";
import { go, link } from "../../lib/router";
import type { PersonDetail, TimelineEvent, TimelineSession } from "../../lib/ipc/types";
import { problem } from "../../lib/jobs";

export async function personsScreen(backend: Backend, params: URLSearchParams): Promise<HTMLElement> {
  const q = params.get("q") ?? "";
  const search = el("input", { type: "search", id: "person-search", placeholder: "Any id, email or name…", class: "search-big" });
  search.value = q;
  const results = el("div", { id: "person-results" });
  const run = async (text: string): Promise<void> => {
    results.replaceChildren(loading("Searching…"));
    try {
      const rows = await backend.searchPersons(text, 200);
      results.replaceChildren(
        el("p", { class: "muted" }, text ? `${fmtInt(rows.length)}${rows.length === 200 ? "+" : ""} persons match “${text}”` : "Most recently seen persons"),
        rows.length ? personsTable(rows) : emptyState("No one matches", "Search by any distinct id, device id, user id, email or name."),
      );
    } catch (e) {
      results.replaceChildren(problem(e));
    }
  };
  search.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      const text = search.value.trim();
      history.replaceState(null, "", link(["persons"], text ? { q: text } : undefined));
      void run(text);
    }
  });
  void run(q);
  setTimeout(() => search.focus(), 0);
  return el("div", { class: "page" }, el("h1", {}, "Persons"), search, results);
}

function copyLink(): HTMLButtonElement {
  const b = button("Copy link", () => {
    const url = `stitchbook://${location.hash}`;
    void navigator.clipboard?.writeText(location.hash).then(
      () => (b.textContent = "Link copied"),
      () => (b.textContent = url),
    );
  }, { id: "copy-link", title: "A link that reopens this view" });
  return b;
}

function sidePanel(d: PersonDetail, activeSession: string | null, personKey: string): HTMLElement {
  const ids = el("ul", { class: "ids", id: "person-ids" }, ...d.ids.map((i) => el("li", { class: "mono" }, i)));
  const merges = el(
    "ol",
    { class: "merges", id: "merge-history" },
    ...d.merges.map((m) =>
      el(
        "li",
        { class: `merge merge-${m.outcome}` },
        el("div", {}, el("span", { class: "mono" }, m.fromId), " → ", el("span", { class: "mono" }, m.intoId)),
        el("div", { class: "muted" }, `${m.kind} · ${m.outcome}${m.reason ? ` — ${m.reason}` : ""}`),
        el("div", { class: "muted small" }, `${fmtTime(m.tsUtc)} · ${m.sourceVendor ?? ""} ${m.sourceFile ? `${m.sourceFile.split(/[\\/]/).pop()}:${m.sourceLine ?? ""}` : ""}`),
      ),
    ),
  );
  const why = d.explain && d.explain.length
    ? el("ol", { class: "explain" }, ...d.explain.map((s) => el("li", {}, el("span", { class: "mono" }, s.id), " ", el("span", { class: "muted" }, `${s.via} — ${s.link.kind} ${s.link.fromId} → ${s.link.intoId}`))))
    : null;
  const props = d.properties && typeof d.properties === "object"
    ? table(["Property", "Value"], Object.entries(d.properties).map(([k, val]) => [k, typeof val === "string" ? val : JSON.stringify(val)]), { id: "person-properties" })
    : el("p", { class: "muted" }, "No person properties.");
  const sessions = el(
    "div",
    { class: "session-list", id: "session-list" },
    el("a", { href: link(["person", personKey]), class: activeSession ? "session-item" : "session-item active" }, el("b", {}, "All events"), el("span", { class: "muted" }, ` ${fmtInt(d.person.events)} events`)),
    ...d.sessions.map((s) =>
      el(
        "a",
        { href: link(["person", personKey, "session", s.sessionId]), class: s.sessionId === activeSession ? "session-item active" : "session-item", "data-session": s.sessionId },
        el("div", {}, el("b", {}, fmtTime(s.startedAt)), " ", el("span", { class: "muted" }, fmtDuration(s.durationS))),
        el("div", { class: "muted small" }, `${fmtInt(s.events)} events · ${s.entryUrl ?? "no page"}${s.isBounce ? " · bounce" : ""}`),
      ),
    ),
  );
  return el(
    "aside",
    { class: "person-side" },
    d.warnings.length ? el("div", { class: "warnings", id: "person-warnings" }, ...d.warnings.map((w) => el("div", { class: "warning" }, w))) : null,
    el("h3", {}, `Sessions (${fmtInt(d.sessions.length)})`),
    sessions,
    el("h3", {}, `Ids (${d.ids.length})`),
    ids,
    why ? el("details", {}, el("summary", {}, "How these ids joined"), why) : null,
    el("h3", {}, `Merge history (${d.merges.length})`),
    d.merges.length ? merges : el("p", { class: "muted", id: "merge-history" }, "No identity links."),
    el("h3", {}, "Properties"),
    props,
  );
}

const ROW_H = 30;
const PAGE = 500;

/** The virtualised timeline: only visible rows exist in the DOM; pages load on demand. */
class Timeline {
  readonly root: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly rows: HTMLElement;
  private readonly inspector: HTMLElement;
  private readonly pages = new Map<number, TimelineEvent[]>();
  private readonly loadingPages = new Set<number>();
  private total = 0;
  private sessions: TimelineSession[] = [];
  selected = 0;

  constructor(private backend: Backend, private personId: string, private session: string | null, private onMillis: (ms: number) => void) {
    this.spacer = el("div", { class: "tl-spacer" });
    this.rows = el("div", { class: "tl-rows" });
    this.viewport = el("div", { class: "tl-viewport", id: "timeline", tabindex: "0" }, this.spacer, this.rows);
    this.inspector = el("aside", { class: "inspector", id: "event-inspector" }, emptyState("No event selected", "Click an event or press j / k."));
    this.root = el("div", { class: "timeline" }, this.viewport, this.inspector);
    this.viewport.addEventListener("scroll", () => this.paint());
    this.viewport.addEventListener("keydown", (e) => this.key(e));
  }

  async load(): Promise<void> {
    const t0 = performance.now();
    const first = await this.backend.personTimeline(this.personId, this.session, 0, PAGE, true);
    this.total = first.total;
    this.sessions = first.sessions;
    this.pages.set(0, first.events);
    this.spacer.style.height = `${this.total * ROW_H}px`;
    this.paint();
    this.select(0);
    requestAnimationFrame(() => this.onMillis(performance.now() - t0));
  }

  get count(): number {
    return this.total;
  }

  get sessionCount(): number {
    return this.sessions.length;
  }

  focus(): void {
    this.viewport.focus();
  }

  private event(i: number): TimelineEvent | undefined {
    return this.pages.get(Math.floor(i / PAGE))?.[i % PAGE];
  }

  private ensure(page: number): void {
    if (page < 0 || page * PAGE >= this.total || this.pages.has(page) || this.loadingPages.has(page)) return;
    this.loadingPages.add(page);
    void this.backend.personTimeline(this.personId, this.session, page * PAGE, PAGE, false).then((p) => {
      this.pages.set(page, p.events);
      this.loadingPages.delete(page);
      this.paint();
      if (Math.floor(this.selected / PAGE) === page) this.inspect();
    });
  }

  private paint(): void {
    const top = this.viewport.scrollTop;
    const h = this.viewport.clientHeight || 600;
    const from = Math.max(0, Math.floor(top / ROW_H) - 10);
    const to = Math.min(this.total, Math.ceil((top + h) / ROW_H) + 10);
    this.ensure(Math.floor(from / PAGE));
    this.ensure(Math.floor((to - 1) / PAGE));
    const frag = document.createDocumentFragment();
    for (let i = from; i < to; i++) {
      const e = this.event(i);
      const row = el("div", { class: "tl-row", "data-index": String(i) });
      row.style.top = `${i * ROW_H}px`;
      if (!e) {
        row.append(el("span", { class: "muted" }, "…"));
      } else {
        if (e.sessionStart) row.classList.add("tl-session-start");
        if (i === this.selected) row.classList.add("selected");
        row.append(
          el("span", { class: "tl-time mono" }, fmtTime(e.tsUtc).slice(5, 19)),
          el("span", { class: "tl-gap mono" }, e.gapS === null ? "" : `+${fmtDuration(e.gapS)}`),
          el("span", { class: `tl-event kind-${e.kind}` }, e.event),
          el("span", { class: "tl-page muted" }, e.page ?? ""),
        );
        if (e.merges.length) row.append(el("span", { class: "tl-merge", title: e.merges.join("\n") }, "⇄ merge"));
        if (e.sessionStart) row.append(el("span", { class: "tl-session-label", title: e.sessionId ?? "" }, "session start"));
        row.addEventListener("click", () => this.select(i));
      }
      frag.append(row);
    }
    this.rows.replaceChildren(frag);
  }

  private inspect(): void {
    const e = this.event(this.selected);
    if (!e) return;
    const props = el("div", {}, loading("Loading properties…"));
    this.inspector.replaceChildren(
      el("h3", {}, e.event),
      el("div", { class: "muted small" }, `#${e.index + 1} of ${fmtInt(this.total)} · ${fmtTime(e.tsUtc)}`),
      table(["Field", "Value"], [
        ["distinct id", e.distinctId ?? "—"],
        ["session", e.sessionId ?? "—"],
        ["page", e.page ?? "—"],
        ["source", `${e.sourceVendor} · ${e.sourceFile.split(/[\\/]/).pop()}:${e.sourceLine}`],
        ...e.merges.map((m): [string, string] => ["identity", m]),
      ], { id: "event-fields" }),
      el("h4", {}, "Properties"),
      props,
    );
    const seq = e.eventSeq;
    void this.backend.timelineEventProperties(seq).then(
      (text) => {
        if (this.event(this.selected)?.eventSeq !== seq) return;
        let parsed: Record<string, unknown>;
        try {
          parsed = JSON.parse(text) as Record<string, unknown>;
        } catch {
          parsed = { properties: text };
        }
        props.replaceChildren(table(["Property", "Value"], Object.entries(parsed).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]), { id: "event-properties" }));
      },
      (err) => props.replaceChildren(problem(err)),
    );
  }

  select(i: number): void {
    if (this.total === 0) return;
    this.selected = Math.max(0, Math.min(this.total - 1, i));
    const top = this.selected * ROW_H;
    const vp = this.viewport;
    if (top < vp.scrollTop) vp.scrollTop = top;
    else if (top + ROW_H > vp.scrollTop + vp.clientHeight) vp.scrollTop = top + ROW_H - vp.clientHeight;
    this.paint();
    this.inspect();
  }

  private key(e: KeyboardEvent): void {
    const k = e.key;
    if (k === "j" || k === "ArrowDown") this.select(this.selected + 1);
    else if (k === "k" || k === "ArrowUp") this.select(this.selected - 1);
    else if (k === "n") {
      const next = this.sessions.find((s) => s.startIndex > this.selected);
      if (next) this.select(next.startIndex);
    } else if (k === "p") {
      const prev = [...this.sessions].reverse().find((s) => s.startIndex < this.selected);
      if (prev) this.select(prev.startIndex);
    } else if (k === "Home") this.select(0);
    else if (k === "End") this.select(this.total - 1);
    else if (k === "PageDown") this.select(this.selected + Math.floor(this.viewport.clientHeight / ROW_H));
    else if (k === "PageUp") this.select(this.selected - Math.floor(this.viewport.clientHeight / ROW_H));
    else return;
    e.preventDefault();
  }
}

export async function personScreen(backend: Backend, id: string, session: string | null): Promise<HTMLElement> {
  const t0 = performance.now();
  let d: PersonDetail;
  try {
    d = await backend.personDetail(id);
  } catch (e) {
    return el("div", { class: "page" }, problem(e), el("a", { href: link(["persons"], { q: id }) }, "Search persons"));
  }
  const p = d.person;
  const name = p.displayName ?? p.email ?? p.personId;
  const timing = el("span", { class: "muted small", id: "timeline-timing" });
  const tl = new Timeline(backend, p.personId, session, (ms) => {
    timing.textContent = `timeline painted in ${ms.toFixed(0)} ms (person page ${(performance.now() - t0).toFixed(0)} ms)`;
  });
  const head = el(
    "div",
    { class: "person-head" },
    el("div", {},
      el("h1", { id: "person-name" }, name),
      el("div", { class: "muted" },
        el("span", { class: "mono" }, p.personId), " · ",
        p.email ?? "no email", " · ",
        `${fmtInt(p.events)} events · ${fmtInt(p.sessions)} sessions · first ${fmtTime(p.createdAt)} · last ${fmtTime(p.lastSeen)}`),
      el("div", {},
        p.isIdentified ? el("span", { class: "badge badge-complete" }, "identified") : el("span", { class: "badge" }, "anonymous"),
        p.sharedDevice ? el("span", { class: "badge badge-warning" }, "shared device") : null)),
    el("div", { class: "row" }, copyLink(), button("Back to search", () => go(["persons"])))
  );
  const bar = el("div", { class: "timeline-bar" },
    el("b", {}, session ? "Session timeline" : "Timeline across sessions"),
    el("span", { class: "muted small" }, "j/k or ↑/↓ step · n/p next/previous session · / search"),
    timing);
  const page = el("div", { class: "person-page" }, head, el("div", { class: "person-body" }, sidePanel(d, session, p.personId), el("section", { class: "person-main" }, bar, tl.root)));
  void tl.load().then(() => tl.focus(), (e) => tl.root.replaceChildren(problem(e)));
  return page;
}
