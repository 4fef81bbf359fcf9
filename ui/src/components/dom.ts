// Tiny DOM helpers: build elements with text content only (never innerHTML with data).

type Attrs = Record<string, string>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string | null | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

const nf = new Intl.NumberFormat("en-US");
export const fmtInt = (n: number): string => nf.format(n);

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fileName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] || path;
}

export const fmtPct = (v: number | null | undefined, digits = 1): string =>
  v === null || v === undefined || Number.isNaN(v) ? "—" : `${(v * 100).toFixed(digits)}%`;

export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return "—";
  if (Number.isInteger(v)) return fmtInt(v);
  return Math.abs(v) >= 100 ? fmtInt(Math.round(v)) : v.toFixed(2);
}

/** Seconds as `42s`, `3m 05s`, `2h 10m`, `3d 4h`. */
export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined) return "—";
  const t = Math.max(0, Math.round(s));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m ${String(t % 60).padStart(2, "0")}s`;
  if (t < 86400) return `${Math.floor(t / 3600)}h ${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(t / 86400)}d ${Math.floor((t % 86400) / 3600)}h`;
}

let displayZone = "UTC";
let zoneFormat: Intl.DateTimeFormat | null = null;

/** The workspace time zone (IANA name) every time on screen is shown in. */
export function setDisplayTimeZone(tz: string): void {
  const name = tz.trim() || "UTC";
  try {
    zoneFormat = new Intl.DateTimeFormat("en-US", {
      timeZone: name, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
    });
    displayZone = name;
  } catch {
    zoneFormat = null;
    displayZone = "UTC";
  }
}

/** The zone times are shown in, for headers ("Time (Europe/Berlin)"). */
export function displayTimeZone(): string {
  return displayZone;
}

/** Parses the engine's ISO 8601 forms (`…T…Z`, `… …+00:00`, no offset = UTC). */
function parseIso(iso: string): Date | null {
  let s = iso.trim().replace(" ", "T");
  if (!/[zZ]$|[+-]\d\d:?\d\d$/.test(s)) s += "Z";
  // Date keeps milliseconds; trim longer fractions so every engine accepts the text.
  s = s.replace(/(\.\d{3})\d+/, "$1");
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * One readable format for every time on screen, in the workspace time zone:
 * `2024-01-11T05:23:32.000000Z` → `2024-01-11 05:23:32 UTC` (or `06:23:32 CET` in Berlin).
 */
export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = parseIso(iso);
  if (!d) return iso;
  if (!zoneFormat) {
    return `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
  }
  const p: Record<string, string> = {};
  for (const x of zoneFormat.formatToParts(d)) p[x.type] = x.value;
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second} ${p.timeZoneName ?? displayZone}`;
}

/** A day in the workspace time zone, `3 Feb 2024`. */
export function fmtDay(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = parseIso(iso);
  if (!d) return iso;
  try {
    return new Intl.DateTimeFormat("en-GB", { timeZone: displayZone, day: "numeric", month: "short", year: "numeric" }).format(d);
  } catch {
    return d.toISOString().slice(0, 10);
  }
}

export function button(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  const b = el("button", { class: "btn", type: "button", ...attrs }, label);
  b.addEventListener("click", onClick);
  return b;
}

/** A table from headers and rows of cells (strings are text, never HTML). */
export function table(
  headers: string[],
  rows: (string | Node)[][],
  attrs: Record<string, string> = {},
  numeric: number[] = [],
): HTMLTableElement {
  const t = el("table", { class: "grid", ...attrs });
  t.append(el("thead", {}, el("tr", {}, ...headers.map((h, i) => el("th", numeric.includes(i) ? { class: "num" } : {}, h)))));
  const body = el("tbody");
  for (const r of rows) {
    body.append(el("tr", {}, ...r.map((c, i) => el("td", numeric.includes(i) ? { class: "num" } : {}, c))));
  }
  t.append(body);
  return t;
}

export function emptyState(title: string, hint: string): HTMLElement {
  return el("div", { class: "empty" }, el("div", { class: "empty-title" }, title), el("div", { class: "empty-hint" }, hint));
}

export function errorBox(message: string): HTMLElement {
  return el("div", { class: "error", role: "alert" }, message);
}

export function loading(text = "Loading…"): HTMLElement {
  return el("div", { class: "loading" }, el("span", { class: "spinner" }), text);
}

/** Quote a CSV cell. */
export function csv(rows: (string | number | null)[][]): string {
  return rows
    .map((r) =>
      r
        .map((c) => {
          const s = c === null ? "" : String(c);
          return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
        })
        .join(","),
    )
    .join("\n") + "\n";
}
