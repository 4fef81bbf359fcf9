//! The serializable insight query: what the UI sends, the CLI reads as JSON and a saved
//! insight stores. Values from it reach SQL only as bound parameters.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// A date range: `YYYY-MM-DD` dates (whole days in the workspace time zone), or relative
/// offsets from `now` such as `-30d`, `-4w`, `-3m` (from the start of that day). `to`
/// defaults to `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct DateRange {
    pub from: String,
    #[serde(default)]
    pub to: Option<String>,
}

/// A date range resolved to µs since the epoch, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Resolved {
    #[ts(type = "number")]
    pub from_us: i64,
    #[ts(type = "number")]
    pub to_us: i64,
}

impl DateRange {
    /// Resolve with an injected `now` (µs) in time zone `tz`.
    pub fn resolve(&self, ws: &Workspace, now_us: i64, tz: &str) -> Result<Resolved> {
        let from = resolve_end(ws, &self.from, now_us, tz, false)?;
        let to = match &self.to {
            Some(t) => resolve_end(ws, t, now_us, tz, true)?,
            None => now_us,
        };
        if to < from {
            return Err(EngineError::InvalidQuery {
                code: "empty_date_range",
                message: format!(
                    "empty date range: \"{}\" is after \"{}\"",
                    self.from,
                    self.to.as_deref().unwrap_or("now")
                ),
            });
        }
        Ok(Resolved {
            from_us: from,
            to_us: to,
        })
    }
}

fn resolve_end(ws: &Workspace, s: &str, now_us: i64, tz: &str, end: bool) -> Result<i64> {
    let s = s.trim();
    let bad = || EngineError::InvalidQuery {
        code: "date_range",
        message: format!(
            "\"{s}\" is not a date (YYYY-MM-DD) or a relative offset (-7d, -4w, -3m, now)"
        ),
    };
    if s == "now" {
        return Ok(now_us);
    }
    // The local day (start, or end when `end`) of a date, or of now minus an offset.
    let sql = if let Some(rel) = s.strip_prefix('-') {
        let (n, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: i64 = n.parse().map_err(|_| bad())?;
        let unit = match unit {
            "d" => "day",
            "w" => "week",
            "m" => "month",
            "y" => "year",
            _ => return Err(bad()),
        };
        let mut q = Sql::new("SELECT epoch_us(timezone(");
        q.bind(tz.to_string())
            .push(", CAST(CAST(timezone(")
            .bind(tz.to_string())
            .push(", make_timestamptz(")
            .bind(now_us)
            .push(")) AS DATE) - (")
            .bind(n)
            .push(" * INTERVAL '1 ")
            .push(unit)
            .push("') AS TIMESTAMP)))");
        q
    } else {
        if s.len() != 10 || s.as_bytes()[4] != b'-' || s.as_bytes()[7] != b'-' {
            return Err(bad());
        }
        let mut q = Sql::new("SELECT epoch_us(timezone(");
        q.bind(tz.to_string())
            .push(", CAST(TRY_CAST(")
            .bind(s.to_string())
            .push(" AS DATE) AS TIMESTAMP)))");
        q
    };
    let v: Option<i64> = ws
        .conn()
        .prepare(&sql.text)?
        .query_row(duckdb::params_from_iter(sql.params.iter()), |r| r.get(0))?;
    let start = v.ok_or_else(bad)?;
    Ok(if end && s.len() == 10 && !s.starts_with('-') {
        start + 86_400_000_000 - 1
    } else {
        start
    })
}

/// Where a property is read; event properties unless said otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum PropertySource {
    #[default]
    Event,
    Person,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum FilterOp {
    Equals,
    NotEquals,
    Contains,
    Regex,
    GreaterThan,
    LessThan,
    IsSet,
    IsNotSet,
}

/// A filter on an event property or a person property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct PropertyFilter {
    pub key: String,
    #[serde(default)]
    pub source: PropertySource,
    pub op: FilterOp,
    #[serde(default)]
    #[ts(type = "string | number | boolean | null")]
    pub value: Option<serde_json::Value>,
}

/// A JSON path for a property key, quoted so any key is safe: `$."key"`.
pub fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Push `(the property as text)` for `source`: events as `e`, persons as `p`.
pub fn push_property(s: &mut Sql, source: PropertySource, key: &str) {
    s.push(match source {
        PropertySource::Event => "(e.properties ->> ",
        PropertySource::Person => "(p.properties ->> ",
    });
    s.bind(json_path(key)).push(")");
}

fn value_text(v: &Option<serde_json::Value>, f: &PropertyFilter) -> Result<String> {
    match v {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Null) | None => Err(EngineError::InvalidArgument(format!(
            "the filter on \"{}\" needs a value",
            f.key
        ))),
        Some(other) => Ok(other.to_string()),
    }
}

/// Push the SQL condition of one filter.
pub fn push_filter(s: &mut Sql, f: &PropertyFilter) -> Result<()> {
    push_filter_on(s, f, &|s: &mut Sql| push_property(s, f.source, &f.key))
}

/// Push the SQL condition of one filter on the property's text as `prop` pushes it (the
/// JSON property, or a column holding the same text).
pub fn push_filter_on(s: &mut Sql, f: &PropertyFilter, prop: &dyn Fn(&mut Sql)) -> Result<()> {
    match f.op {
        FilterOp::IsSet => {
            prop(s);
            s.push(" IS NOT NULL");
        }
        FilterOp::IsNotSet => {
            prop(s);
            s.push(" IS NULL");
        }
        FilterOp::Equals => {
            prop(s);
            s.push(" = ").bind(value_text(&f.value, f)?);
        }
        FilterOp::NotEquals => {
            prop(s);
            s.push(" IS DISTINCT FROM ").bind(value_text(&f.value, f)?);
        }
        FilterOp::Contains => {
            s.push("contains(lower(");
            prop(s);
            s.push("), lower(")
                .bind(value_text(&f.value, f)?)
                .push("))");
        }
        FilterOp::Regex => {
            s.push("regexp_matches(");
            prop(s);
            s.push(", ").bind(value_text(&f.value, f)?).push(")");
        }
        FilterOp::GreaterThan | FilterOp::LessThan => {
            let n = f
                .value
                .as_ref()
                .and_then(|v| {
                    v.as_f64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "the filter on \"{}\" compares numbers: give a number",
                        f.key
                    ))
                })?;
            s.push("TRY_CAST(");
            prop(s);
            s.push(" AS DOUBLE)")
                .push(if f.op == FilterOp::GreaterThan {
                    " > "
                } else {
                    " < "
                })
                .bind(n);
        }
    }
    Ok(())
}

/// The breakdown row of the values beyond a limit (and of a value that is literally this).
pub const OTHER: &str = "Other";

/// Breakdown values in order with [`OTHER`] after all the others.
pub fn other_last(a: &str, b: &str) -> std::cmp::Ordering {
    (a == OTHER).cmp(&(b == OTHER))
}

/// Push `(?, ?, …)` binding each value.
pub fn push_in_list<'a>(s: &mut Sql, values: impl IntoIterator<Item = &'a str>) {
    s.push("(");
    for (i, v) in values.into_iter().enumerate() {
        if i > 0 {
            s.push(", ");
        }
        s.bind(v.to_string());
    }
    s.push(")");
}

/// Push `f1 AND f2 ...` (or TRUE).
pub fn push_filters(s: &mut Sql, filters: &[PropertyFilter]) -> Result<()> {
    push_filters_with(s, filters, &push_filter)
}

/// Push `f1 AND f2 ...` (or TRUE), each condition as `one` pushes it.
pub fn push_filters_with(
    s: &mut Sql,
    filters: &[PropertyFilter],
    one: &dyn Fn(&mut Sql, &PropertyFilter) -> Result<()>,
) -> Result<()> {
    if filters.is_empty() {
        s.push("TRUE");
        return Ok(());
    }
    for (i, f) in filters.iter().enumerate() {
        if i > 0 {
            s.push(" AND ");
        }
        s.push("(");
        one(s, f)?;
        s.push(")");
    }
    Ok(())
}

/// What a period index is taken of: a timestamp column, or an instant bound as a parameter.
#[derive(Debug, Clone, Copy)]
pub enum PeriodAt<'a> {
    Column(&'a str),
    Micros(i64),
}

/// Push the index of the calendar period (`day`, `week` or `month`, in time zone `tz`) that
/// holds `at`, counted from the period holding `from_us` (0). Weeks start on Monday, or on
/// Sunday when `sunday`.
pub fn push_period_index(
    s: &mut Sql,
    unit: &'static str,
    tz: &str,
    from_us: i64,
    sunday: bool,
    at: PeriodAt<'_>,
) {
    let shift = if sunday && unit == "week" {
        "INTERVAL 1 DAY"
    } else {
        "INTERVAL 0 DAY"
    };
    if is_utc(tz) {
        // UTC needs no time zone database: naive timestamps from the epoch are the local
        // time, and this is much cheaper per event than an ICU conversion.
        s.push("date_diff('")
            .push(unit)
            .push("', date_trunc('")
            .push(unit)
            .push("', make_timestamp(")
            .bind(from_us)
            .push(") + ")
            .push(shift)
            .push("), date_trunc('")
            .push(unit)
            .push("', make_timestamp(");
        match at {
            PeriodAt::Column(c) => {
                s.push("epoch_us(").push(c).push(")");
            }
            PeriodAt::Micros(us) => {
                s.bind(us);
            }
        }
        s.push(") + ").push(shift).push("))");
        return;
    }
    s.push("date_diff('")
        .push(unit)
        .push("', date_trunc('")
        .push(unit)
        .push("', CAST(timezone(")
        .bind(tz.to_string())
        .push(", make_timestamptz(")
        .bind(from_us)
        .push(")) AS TIMESTAMP) + ")
        .push(shift)
        .push("), date_trunc('")
        .push(unit)
        .push("', CAST(timezone(")
        .bind(tz.to_string())
        .push(", ");
    match at {
        PeriodAt::Column(c) => {
            s.push(c);
        }
        PeriodAt::Micros(us) => {
            s.push("make_timestamptz(").bind(us).push(")");
        }
    }
    s.push(") AS TIMESTAMP) + ").push(shift).push("))");
}

/// `events e JOIN person_map ep ON …`: every event with its person (`ep.person_id`), by the
/// identity mode's key. A direct join on the distinct id, not a self-join through the
/// `event_persons` view.
pub fn events_with_persons(ws: &Workspace) -> Result<String> {
    let mode = crate::model::ModelSettings::load(ws)?.identity_mode;
    Ok(format!(
        "events e JOIN person_map ep ON ep.distinct_id = {}",
        mode.person_key()
    ))
}

/// UTC, by any of its usual names.
pub fn is_utc(tz: &str) -> bool {
    matches!(
        tz.to_ascii_uppercase().as_str(),
        "UTC" | "ETC/UTC" | "GMT" | "ETC/GMT" | "Z" | "ZULU" | "UNIVERSAL"
    )
}

/// The period index of one instant (see [`push_period_index`]).
pub fn period_index(
    ws: &Workspace,
    unit: &'static str,
    tz: &str,
    from_us: i64,
    sunday: bool,
    at_us: i64,
) -> Result<i64> {
    let mut q = Sql::new("SELECT ");
    push_period_index(&mut q, unit, tz, from_us, sunday, PeriodAt::Micros(at_us));
    Ok(ws
        .conn()
        .prepare(&q.text)?
        .query_row(duckdb::params_from_iter(q.params.iter()), |r| r.get(0))?)
}

/// The integers of a DuckDB list value (other values: empty).
pub fn int_list(v: duckdb::types::Value) -> Vec<i64> {
    match v {
        duckdb::types::Value::List(x) => x
            .into_iter()
            .filter_map(|i| match i {
                duckdb::types::Value::BigInt(n) => Some(n),
                duckdb::types::Value::Int(n) => Some(i64::from(n)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The texts of a DuckDB list value, NULL items as None (other values: empty).
pub fn text_list(v: duckdb::types::Value) -> Vec<Option<String>> {
    match v {
        duckdb::types::Value::List(x) => x
            .into_iter()
            .map(|i| match i {
                duckdb::types::Value::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The local start dates (`YYYY-MM-DD`) of periods 0..n from the period holding `from_us`.
pub fn period_labels(
    ws: &Workspace,
    unit: &'static str,
    tz: &str,
    from_us: i64,
    sunday: bool,
    n: usize,
) -> Result<Vec<String>> {
    Ok(period_starts(ws, unit, tz, from_us, sunday, n)?
        .into_iter()
        .map(|(d, _)| d)
        .collect())
}

/// Periods 0..n from the period holding `from_us`: each one's local start date
/// (`YYYY-MM-DD`) and the instant it starts (µs), in time zone `tz`.
pub fn period_starts(
    ws: &Workspace,
    unit: &'static str,
    tz: &str,
    from_us: i64,
    sunday: bool,
    n: usize,
) -> Result<Vec<(String, i64)>> {
    let shift = if sunday && unit == "week" {
        "INTERVAL 1 DAY"
    } else {
        "INTERVAL 0 DAY"
    };
    let mut q = Sql::new("SELECT strftime(d, '%Y-%m-%d'), epoch_us(timezone(");
    q.bind(tz.to_string())
        .push(", d)) FROM (SELECT i, date_trunc('")
        .push(unit)
        .push("', CAST(timezone(")
        .bind(tz.to_string())
        .push(", make_timestamptz(")
        .bind(from_us)
        .push(")) AS TIMESTAMP) + ")
        .push(shift)
        .push(") - ")
        .push(shift)
        .push(" + to_")
        .push(match unit {
            "week" => "weeks",
            "month" => "months",
            _ => "days",
        })
        .push("(CAST(i AS INTEGER)) AS d FROM range(0, ")
        .bind(n as i64)
        .push(") t(i)) ORDER BY i");
    let mut st = ws.conn().prepare(&q.text)?;
    let rows = st.query_map(duckdb::params_from_iter(q.params.iter()), |r| {
        Ok((r.get(0)?, r.get(1)?))
    })?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

/// Refuse properties no event (or person) has: a misspelt key would otherwise give an
/// empty chart. `is not set` and `not equals` filters may name absent keys.
pub fn check_properties<'a>(
    ws: &Workspace,
    filters: impl IntoIterator<Item = &'a PropertyFilter>,
    more: &[(PropertySource, &str)],
) -> Result<()> {
    let mut keys: Vec<(PropertySource, &str)> = filters
        .into_iter()
        .filter(|f| !matches!(f.op, FilterOp::IsNotSet | FilterOp::NotEquals))
        .map(|f| (f.source, f.key.as_str()))
        .collect();
    keys.extend_from_slice(more);
    keys.sort_by_key(|k| (k.0 == PropertySource::Person, k.1));
    keys.dedup();
    for (source, key) in keys {
        let mut q = Sql::new(match source {
            PropertySource::Event => {
                "SELECT count(*) FROM (SELECT 1 FROM events WHERE json_exists(properties, "
            }
            PropertySource::Person => {
                "SELECT count(*) FROM (SELECT 1 FROM persons WHERE json_exists(properties, "
            }
        });
        q.bind(json_path(key)).push(") LIMIT 1)");
        let n: i64 = ws
            .conn()
            .prepare(&q.text)?
            .query_row(duckdb::params_from_iter(q.params.iter()), |r| r.get(0))?;
        if n == 0 {
            let known = property_keys(ws, source)?;
            return Err(EngineError::InvalidQuery {
                code: "unknown_property",
                message: format!(
                    "no {} has the property \"{key}\"{} (property names are case-sensitive)",
                    match source {
                        PropertySource::Event => "event",
                        PropertySource::Person => "person",
                    },
                    closest_said(key, known.iter().map(String::as_str)),
                ),
            });
        }
    }
    Ok(())
}

/// The property keys of the most recent events (at most [`crate::catalog::PROPERTY_SAMPLE`])
/// or of every person: the names a misspelt key is compared with.
fn property_keys(ws: &Workspace, source: PropertySource) -> Result<Vec<String>> {
    let sql = match source {
        PropertySource::Event => {
            "SELECT DISTINCT k FROM (SELECT unnest(json_keys(properties)) AS k FROM
               (SELECT properties FROM events ORDER BY event_seq DESC LIMIT ?))"
        }
        PropertySource::Person => {
            "SELECT DISTINCT k FROM (SELECT unnest(json_keys(properties)) AS k FROM
               (SELECT properties FROM persons LIMIT ?))"
        }
    };
    let mut st = ws.conn().prepare(sql)?;
    let rows = st.query_map([crate::catalog::PROPERTY_SAMPLE], |r| r.get(0))?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

/// Up to three of `known` closest to `wanted`, closest first: names that are the same
/// words spelt another way ([`crate::catalog::name_key`]: `signUp`, `sign_up`, `Signed up`)
/// first, then by similarity of the lower-cased names (edit distance and common prefix).
pub fn closest_names<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let key = crate::catalog::name_key(wanted);
    let low = wanted.to_lowercase();
    let mut scored: Vec<(bool, f64, &str)> = known
        .into_iter()
        .filter(|n| *n != wanted)
        .map(|n| {
            let l = n.to_lowercase();
            let similar =
                strsim::normalized_damerau_levenshtein(&low, &l) + strsim::jaro_winkler(&low, &l);
            (crate::catalog::name_key(n) != key, -similar, n)
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(b.2)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, _, n)| n.to_string())
        .collect()
}

/// ` (closest: "a", "b", "c")`, or nothing when there is nothing to compare with.
fn closest_said<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    let near = closest_names(wanted, known);
    if near.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = near.iter().map(|n| format!("\"{n}\"")).collect();
    format!(" (closest: {})", quoted.join(", "))
}

/// Every event name in the workspace, sorted (remembered until the events change).
pub fn event_names(ws: &Workspace) -> Result<Vec<String>> {
    let fingerprint = crate::remembered::events_fingerprint(ws)?;
    crate::remembered::remembered(ws, "event_names", &fingerprint, || {
        let mut st = ws
            .conn()
            .prepare("SELECT DISTINCT event_name FROM events")?;
        let mut names = st
            .query_map([], |r| r.get(0))?
            .collect::<duckdb::Result<Vec<String>>>()?;
        // Rust's order, for the binary search.
        names.sort_unstable();
        Ok(names)
    })
}

/// Refuse event names the workspace has never seen: a misspelt name would otherwise give an
/// empty chart. Checked against every event loaded, whatever the query's date range, so an
/// event with no rows in the range is not refused. The error names the closest names.
pub fn check_events<'a>(ws: &Workspace, names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let known = event_names(ws)?;
    let missing: Vec<&str> = names
        .into_iter()
        .filter(|n| known.binary_search_by(|k| k.as_str().cmp(n)).is_err())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let said: Vec<String> = missing
        .iter()
        .map(|n| {
            format!(
                "no event is named \"{n}\"{}",
                closest_said(n, known.iter().map(String::as_str))
            )
        })
        .collect();
    Err(EngineError::InvalidQuery {
        code: "unknown_event",
        message: format!(
            "{} in this workspace (event names are case-sensitive)",
            said.join("; ")
        ),
    })
}

/// An error about a saved insight's or cohort's events, said with its name: the event it was
/// saved with is no longer in the workspace (or never was). Other errors pass unchanged.
pub fn in_saved(noun: &str, name: &str, e: EngineError) -> EngineError {
    match e {
        EngineError::InvalidQuery {
            code: "unknown_event",
            message,
        } => EngineError::InvalidQuery {
            code: "unknown_event",
            message: format!(
                "the saved {noun} \"{name}\" names an event this workspace does not have: {message}"
            ),
        },
        e => e,
    }
}
