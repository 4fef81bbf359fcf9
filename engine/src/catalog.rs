//! The data overview: the event catalog, the properties of one event, and the data-quality
//! checks an analyst wants before trusting a number (naming collisions, mixed types,
//! duplicates removed, clock skew, shared devices).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::Result;

/// Property statistics read at most this many of an event's most recent rows.
pub const PROPERTY_SAMPLE: i64 = 20_000;

/// The mixed-types check reads this many of the most recently loaded events.
pub const TYPE_SAMPLE: i64 = 200_000;

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct CatalogEvent {
    pub name: String,
    #[ts(type = "number")]
    pub events: i64,
    #[ts(type = "number")]
    pub persons: i64,
    /// persons / all persons with any event.
    pub person_share: f64,
    pub first_seen: String,
    pub last_seen: String,
    pub vendors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PropertyStat {
    pub key: String,
    /// Observed JSON types with their counts, most frequent first (`VARCHAR`, `BIGINT`, …).
    pub types: Vec<(String, i64)>,
    /// Share of the sampled events that carry the key with a non-null value.
    pub fill_rate: f64,
    pub examples: Vec<String>,
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct EventProperties {
    pub event: String,
    /// Events read (the most recent, at most [`PROPERTY_SAMPLE`]).
    #[ts(type = "number")]
    pub sampled: i64,
    #[ts(type = "number")]
    pub total: i64,
    pub properties: Vec<PropertyStat>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct QualityIssue {
    /// naming_collision | mixed_types | duplicates_removed | clock_skew | shared_device | quarantine
    pub kind: String,
    /// info | warning
    pub severity: String,
    pub title: String,
    pub detail: String,
    #[ts(type = "number")]
    pub count: i64,
    /// The names, keys or ids involved.
    pub items: Vec<String>,
}

/// Every event name with its volume, reach and first/last time, most frequent first.
///
/// While the model is fresh the volumes, reach and times come from the insight facts
/// (`event_facts`, `person_days`: the same events joined to their persons), which is several
/// times faster on large workspaces; a test compares both.
pub fn events(ws: &Workspace) -> Result<Vec<CatalogEvent>> {
    let sql = if crate::insights::facts::available(ws)? {
        "WITH n AS (SELECT count(*) AS all_p FROM person_index),
              v AS (SELECT event_name, list(DISTINCT source_vendor ORDER BY source_vendor) AS vendors
                    FROM events GROUP BY 1),
              f AS (SELECT event_name, count(*) AS n, min(ts_us) AS lo, max(ts_us) AS hi
                    FROM event_facts GROUP BY 1),
              p AS (SELECT event_name, count(DISTINCT pid) AS p FROM person_days GROUP BY 1)
         SELECT f.event_name, f.n, p.p, p.p / greatest(n.all_p, 1),
                strftime(make_timestamptz(f.lo), '%Y-%m-%dT%H:%M:%SZ'),
                strftime(make_timestamptz(f.hi), '%Y-%m-%dT%H:%M:%SZ'), v.vendors
         FROM f JOIN p USING (event_name) JOIN v USING (event_name), n
         ORDER BY 2 DESC, 1"
            .to_string()
    } else {
        general_events_sql(ws)?
    };
    let mut st = ws.conn().prepare(&sql)?;
    let rows = st.query_map([], |r| {
        Ok(CatalogEvent {
            name: r.get(0)?,
            events: r.get(1)?,
            persons: r.get(2)?,
            person_share: r.get(3)?,
            first_seen: r.get(4)?,
            last_seen: r.get(5)?,
            vendors: crate::sql::text_list(r.get(6)?),
        })
    })?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

/// The catalog over `events` joined to `person_map`.
fn general_events_sql(ws: &Workspace) -> Result<String> {
    let source = crate::insights::query::events_with_persons(ws)?;
    Ok(format!(
        "WITH n AS (SELECT count(DISTINCT person_id) AS all_p FROM person_map)
         SELECT e.event_name, count(*), count(DISTINCT ep.person_id),
                count(DISTINCT ep.person_id) / greatest(any_value(n.all_p), 1),
                strftime(min(e.ts_utc), '%Y-%m-%dT%H:%M:%SZ'), strftime(max(e.ts_utc), '%Y-%m-%dT%H:%M:%SZ'),
                list(DISTINCT e.source_vendor ORDER BY e.source_vendor)
         FROM {source}, n
         GROUP BY e.event_name ORDER BY 2 DESC, 1"
    ))
}

/// The top-level properties of one event: observed types, fill rate and up to three example
/// values each, over its most recent [`PROPERTY_SAMPLE`] rows.
pub fn event_properties(ws: &Workspace, event: &str) -> Result<EventProperties> {
    let c = ws.conn();
    let total: i64 = c.query_row(
        "SELECT count(*) FROM events WHERE event_name = ?",
        [event],
        |r| r.get(0),
    )?;
    let mut st = c.prepare(
        "WITH latest AS (
            SELECT rowid AS r FROM events WHERE event_name = ?
            ORDER BY ts_utc DESC, event_seq DESC LIMIT ?),
         -- properties are read only for the chosen rows, not while choosing them
         s AS (SELECT e.properties FROM events e JOIN latest ON e.rowid = latest.r),
         n AS (SELECT count(*) AS n FROM s),
         -- each property set is parsed once, into its (key, value) pairs, whatever the keys
         -- are called; a value is JSON (SQL NULL for a JSON null)
         kv AS (
            SELECT p.key AS k, coalesce(json_type(p.value), 'NULL') AS t,
                   json_extract_string(p.value, '$') AS v
            FROM (SELECT unnest(map_entries(TRY_CAST(properties AS MAP(VARCHAR, JSON)))) AS p
                  FROM s)),
         types AS (
            SELECT k, list({'t': t, 'n': c} ORDER BY c DESC, t) AS types
            FROM (SELECT k, t, count(*) AS c FROM kv WHERE t <> 'NULL' GROUP BY k, t) GROUP BY k),
         ex AS (
            SELECT k, list(v ORDER BY c DESC, v)[1:3] AS examples
            FROM (SELECT k, v, count(*) AS c FROM kv WHERE t <> 'NULL' AND v IS NOT NULL GROUP BY k, v) GROUP BY k),
         fill AS (
            SELECT k, count(*) FILTER (WHERE t <> 'NULL') AS filled FROM kv GROUP BY k)
         SELECT fill.k, types.types, fill.filled / greatest(n.n, 1), ex.examples, n.n
         FROM fill LEFT JOIN types USING (k) LEFT JOIN ex USING (k) CROSS JOIN n
         ORDER BY 3 DESC, 1",
    )?;
    let mut sampled = total.min(PROPERTY_SAMPLE);
    let rows = st.query_map(duckdb::params![event, PROPERTY_SAMPLE], |r| {
        let types = match r.get::<_, duckdb::types::Value>(1)? {
            duckdb::types::Value::List(items) => items
                .into_iter()
                .filter_map(|i| match i {
                    duckdb::types::Value::Struct(fields) => {
                        let mut t = None;
                        let mut n = 0;
                        for (k, v) in fields.iter() {
                            match (k.as_str(), v) {
                                ("t", duckdb::types::Value::Text(s)) => t = Some(s.clone()),
                                ("n", duckdb::types::Value::BigInt(x)) => n = *x,
                                _ => {}
                            }
                        }
                        t.map(|t| (t, n))
                    }
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok((
            PropertyStat {
                key: r.get(0)?,
                types,
                fill_rate: r.get(2)?,
                examples: crate::sql::text_list(r.get(3)?),
            },
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut properties = Vec::new();
    for row in rows {
        let (p, n) = row?;
        sampled = n;
        properties.push(p);
    }
    Ok(EventProperties {
        event: event.to_string(),
        sampled,
        total,
        properties,
    })
}

/// A name reduced for comparison: words split at case changes and separators, lower-cased,
/// with plural and past-tense endings cut, then joined. `UserLogin`, `user_login` and
/// `User Logged In` all become `userlogin`.
pub fn name_key(name: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words.iter().map(|w| stem(w)).collect()
}

fn stem(w: &str) -> String {
    let mut s = w.to_string();
    let mut cut_verb = false;
    if s.len() > 4 && s.ends_with("ing") {
        s.truncate(s.len() - 3);
        cut_verb = true;
    } else if s.len() > 3 && s.ends_with("ed") {
        s.truncate(s.len() - 2);
        cut_verb = true;
    } else if s.len() > 3 && s.ends_with('s') && !s.ends_with("ss") {
        s.truncate(s.len() - 1);
    }
    // logged → logg → log, stopped → stop; passed and called keep their double letter
    let b = s.as_bytes();
    let n = b.len();
    if cut_verb
        && n > 2
        && b[n - 1] == b[n - 2]
        && b[n - 1].is_ascii_alphabetic()
        && !matches!(b[n - 1], b'l' | b's' | b'z')
    {
        s.truncate(n - 1);
    }
    s
}

/// Event names that are probably the same event spelt differently, as groups of two or more.
pub fn naming_collisions(names: &[(String, i64)]) -> Vec<Vec<(String, i64)>> {
    let mut groups: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for (n, c) in names {
        let key = name_key(n);
        if key.is_empty() {
            continue;
        }
        groups.entry(key).or_default().push((n.clone(), *c));
    }
    groups
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|mut g| {
            g.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            g
        })
        .collect()
}

/// Bump when the checks change: remembered results of older checks are not reused.
const QUALITY_VERSION: i64 = 2;

/// [`quality`], remembered in the workspace (see [`crate::remembered`]) while the events,
/// quarantine, imports and model build it read are the same.
pub fn quality_remembered(ws: &Workspace) -> Result<Vec<QualityIssue>> {
    let events = crate::remembered::events_fingerprint(ws)?;
    let rest: String = ws.conn().query_row(
        "SELECT concat_ws('/', ?, ?,
            (SELECT count(*) FROM quarantine),
            (SELECT count(*) FROM imports), (SELECT coalesce(sum(rows_duplicate), 0) FROM imports),
            (SELECT coalesce(CAST(max(built_at) AS VARCHAR), '') FROM model_state))",
        duckdb::params![QUALITY_VERSION, TYPE_SAMPLE],
        |r| r.get(0),
    )?;
    crate::remembered::remembered(ws, "quality", &format!("{events}/{rest}"), || quality(ws))
}

/// The data-quality panel. Clock skew is judged against each event's own receive time
/// (more than a day apart), so the result does not depend on today's date.
pub fn quality(ws: &Workspace) -> Result<Vec<QualityIssue>> {
    let c = ws.conn();
    let mut out = Vec::new();

    let names = c
        .prepare("SELECT event_name, count(*) FROM events GROUP BY 1 ORDER BY 1")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<duckdb::Result<Vec<_>>>()?;
    for g in naming_collisions(&names) {
        let total: i64 = g.iter().map(|x| x.1).sum();
        out.push(QualityIssue {
            kind: "naming_collision".into(),
            severity: "warning".into(),
            title: format!("{} spellings of one event", g.len()),
            detail: format!(
                "{} — {} events in all; counts split between them unless they are combined",
                g.iter()
                    .map(|(n, k)| format!("\"{n}\" ({k})"))
                    .collect::<Vec<_>>()
                    .join(", "),
                total
            ),
            count: total,
            items: g.into_iter().map(|x| x.0).collect(),
        });
    }

    // Mixed types: a top-level property key seen with two or more non-null JSON types,
    // over the latest loaded events (a row-id range: the scan reads only those row groups).
    let mut st = c.prepare(
        "WITH s AS (
            SELECT event_name, properties FROM events
            WHERE rowid >= (SELECT count(*) FROM events) - ?),
         -- each property set is parsed once, into its (key, value) pairs, whatever the keys
         -- are called; a value is JSON (SQL NULL for a JSON null)
         kv AS (
            SELECT event_name, p.key AS k, coalesce(json_type(p.value), 'NULL') AS t
            FROM (SELECT event_name,
                         unnest(map_entries(TRY_CAST(properties AS MAP(VARCHAR, JSON)))) AS p
                  FROM s))
         SELECT k, list(DISTINCT t ORDER BY t), list(DISTINCT event_name ORDER BY event_name), count(*)
         FROM kv WHERE t NOT IN ('NULL')
         GROUP BY k
         HAVING count(DISTINCT CASE WHEN t IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN 'NUMBER' ELSE t END) > 1
         ORDER BY k",
    )?;
    let rows = st.query_map([TYPE_SAMPLE], |r| {
        Ok((
            r.get::<_, String>(0)?,
            crate::sql::text_list(r.get(1)?),
            crate::sql::text_list(r.get(2)?),
            r.get::<_, i64>(3)?,
        ))
    })?;
    for row in rows {
        let (key, types, events, n) = row?;
        out.push(QualityIssue {
            kind: "mixed_types".into(),
            severity: "warning".into(),
            title: format!("\"{key}\" has mixed types"),
            detail: format!(
                "seen as {} in {} (among the latest {TYPE_SAMPLE} loaded events)",
                types.join(", "),
                events
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            count: n,
            items: vec![key],
        });
    }

    let dups: i64 = c.query_row(
        "SELECT coalesce(sum(rows_duplicate), 0)::BIGINT FROM imports WHERE status = 'complete'",
        [],
        |r| r.get(0),
    )?;
    if dups > 0 {
        out.push(QualityIssue {
            kind: "duplicates_removed".into(),
            severity: "info".into(),
            title: format!("{dups} duplicate rows removed"),
            detail:
                "rows whose event id (or dedupe key) was already loaded, or whose record was already quarantined, were counted and skipped"
                    .into(),
            count: dups,
            items: Vec::new(),
        });
    }

    let (skew, ahead, behind): (i64, i64, i64) = c.query_row(
        "SELECT count(*), count(*) FILTER (WHERE ts_utc > received_at_utc), count(*) FILTER (WHERE ts_utc < received_at_utc)
         FROM events WHERE received_at_utc IS NOT NULL
           AND abs(epoch_us(ts_utc) - epoch_us(received_at_utc)) > 86400000000",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if skew > 0 {
        out.push(QualityIssue {
            kind: "clock_skew".into(),
            severity: "warning".into(),
            title: format!("{skew} events more than a day from their receive time"),
            detail: format!(
                "{ahead} stamped in the future of when they arrived, {behind} arrived more than a day late (device clocks or offline queues)"
            ),
            count: skew,
            items: Vec::new(),
        });
    }

    let model_built: bool =
        c.query_row("SELECT count(*) > 0 FROM model_state", [], |r| r.get(0))?;
    if model_built {
        let mut st = c.prepare(
            "SELECT device_id, len(users), events FROM shared_devices ORDER BY len(users) DESC, events DESC, device_id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<duckdb::Result<Vec<_>>>()?;
        if !rows.is_empty() {
            out.push(QualityIssue {
                kind: "shared_device".into(),
                severity: "warning".into(),
                title: format!("{} devices used by two or more identified users", rows.len()),
                detail: "their anonymous events cannot be told apart; they were not merged into one person"
                    .into(),
                count: rows.len() as i64,
                items: rows.into_iter().take(20).map(|r| r.0).collect(),
            });
        }
    }

    let quarantined: i64 = c.query_row("SELECT count(*) FROM quarantine", [], |r| r.get(0))?;
    if quarantined > 0 {
        out.push(QualityIssue {
            kind: "quarantine".into(),
            severity: "info".into(),
            title: format!("{quarantined} rows quarantined"),
            detail: "rows that could not be loaded, each kept with its file, line and reason"
                .into(),
            count: quarantined,
            items: Vec::new(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_event_share_a_key() {
        assert_eq!(name_key("UserLogin"), "userlogin");
        assert_eq!(name_key("user_login"), "userlogin");
        assert_eq!(name_key("User Logged In"), "userlogin");
        assert_eq!(name_key("Signed Up"), "signup");
        assert_eq!(name_key("signup"), "signup");
        assert_eq!(name_key("Page Viewed"), "pageview");
        assert_eq!(name_key("pageviews"), "pageview");
        assert_eq!(name_key("$pageview"), "pageview");
        // different events stay apart
        assert_ne!(name_key("checkout_started"), name_key("checkout_completed"));
        assert_eq!(name_key("class_passed"), "classpass");
    }

    #[test]
    fn collisions_group_two_or_more_names_most_frequent_first() {
        let names = vec![
            ("UserLogin".to_string(), 3),
            ("user_login".to_string(), 10),
            ("User Logged In".to_string(), 1),
            ("purchase".to_string(), 5),
        ];
        let g = naming_collisions(&names);
        assert_eq!(g.len(), 1);
        let got: Vec<&str> = g[0].iter().map(|x| x.0.as_str()).collect();
        assert_eq!(got, ["user_login", "UserLogin", "User Logged In"]);
    }
}
