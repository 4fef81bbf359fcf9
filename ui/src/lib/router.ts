// Hash routes, so every screen (a person, a session) has a link that reopens it.
// #/overview, #/insights/funnel, #/persons?q=ada, #/person/<id>, #/person/<id>/session/<sid>,
// #/sql, #/settings, #/welcome.

export interface Route {
  path: string[];
  params: URLSearchParams;
}

export function current(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [p, q] = raw.split("?", 2);
  return {
    path: (p ?? "").split("/").filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(q ?? ""),
  };
}

export function link(path: string[], params?: Record<string, string>): string {
  const q = params ? new URLSearchParams(params).toString() : "";
  return `#/${path.map(encodeURIComponent).join("/")}${q ? `?${q}` : ""}`;
}

export function go(path: string[], params?: Record<string, string>): void {
  location.hash = link(path, params);
}
