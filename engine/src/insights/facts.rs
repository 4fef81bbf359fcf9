//! Fast paths over the rebuild's insight facts (`engine/sql/model_facts.sql`):
//! `person_index` (a dense integer `pid` per person, numbered in person_id order),
//! `event_facts` (every event with a person: name, time in µs, `pid`, local `day`, a few
//! common properties as columns; sorted by name and time), `person_days` (events per
//! name, day, person and property columns) and `active_days` (distinct day, person).
//!
//! Invariants: the facts are used only while the model is fresh ([`crate::model::is_stale`]
//! is false), so they hold the same events, persons and time zone as the general path
//! would see; an insight uses them only for the query shapes they can answer exactly
//! (filters only on the properties held as columns; no cohorts, sessions or property math),
//! and otherwise takes the general path over `events` × `person_map`. The tests compare
//! both paths on fixtures.

use std::cell::Cell;

use super::query::{PropertyFilter, PropertySource};
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::Result;

/// Event properties stored as `event_facts` columns: (property key, column). Must list the
/// columns `model_facts.sql` writes.
pub const FACT_PROPERTIES: &[(&str, &str)] = &[
    ("$browser", "browser"),
    ("$os", "os"),
    ("$device_type", "device_type"),
];

thread_local! {
    static GENERAL_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Run `f` with the fast paths off on this thread (for tests that compare both paths).
pub fn with_general_path<T>(f: impl FnOnce() -> T) -> T {
    let before = GENERAL_ONLY.with(|g| g.replace(true));
    let out = f();
    GENERAL_ONLY.with(|g| g.set(before));
    out
}

/// Whether the facts may be read: the model is fresh (same events, links, settings and
/// derivation version), and the fast paths are not switched off.
pub fn available(ws: &Workspace) -> Result<bool> {
    if GENERAL_ONLY.with(|g| g.get()) {
        return Ok(false);
    }
    Ok(!crate::model::is_stale(ws)?)
}

/// The `event_facts` column holding an event property, if it is one of [`FACT_PROPERTIES`].
pub fn column_of(source: PropertySource, key: &str) -> Option<&'static str> {
    if source != PropertySource::Event {
        return None;
    }
    FACT_PROPERTIES
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, c)| *c)
}

/// Whether every filter is on an event property the facts hold as a column (so that the
/// facts can answer with the filters applied).
pub fn on_facts<'a>(filters: impl IntoIterator<Item = &'a PropertyFilter>) -> bool {
    filters
        .into_iter()
        .all(|f| column_of(f.source, &f.key).is_some())
}

/// Push `f1 AND f2 ...` (or TRUE) over the facts' columns of table alias `alias` (see
/// [`on_facts`]): the columns hold each property's text as `->>` gives it, so the
/// conditions are the general path's.
pub fn push_filters(s: &mut Sql, alias: &str, filters: &[PropertyFilter]) -> Result<()> {
    super::query::push_filters_with(s, filters, &|s, f| {
        let col = column_of(f.source, &f.key).ok_or_else(|| {
            crate::EngineError::InvalidArgument(format!(
                "\"{}\" is not a column of the insight facts",
                f.key
            ))
        })?;
        super::query::push_filter_on(s, f, &|s: &mut Sql| {
            s.push(alias).push(".").push(col);
        })
    })
}

/// The local date (days since 1970-01-01) of an instant in time zone `tz`, and whether
/// the instant is the local date's first microsecond.
pub fn local_day(ws: &Workspace, tz: &str, us: i64) -> Result<(i64, bool)> {
    let mut q = Sql::new("WITH d AS (SELECT CAST(timezone(");
    q.bind(tz.to_string())
        .push(", make_timestamptz(")
        .bind(us)
        .push(")) AS DATE) AS d) SELECT d - DATE '1970-01-01', epoch_us(timezone(")
        .bind(tz.to_string())
        .push(", CAST(d AS TIMESTAMP))) = ")
        .bind(us)
        .push(" FROM d");
    Ok(ws
        .conn()
        .prepare(&q.text)?
        .query_row(duckdb::params_from_iter(q.params.iter()), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?)
}

/// The local days `[lo, hi]` holding exactly the instants `lo_us..=hi_us`, when both ends
/// fall on local midnights (so a filter on days equals the filter on times).
pub fn whole_days(ws: &Workspace, tz: &str, lo_us: i64, hi_us: i64) -> Result<Option<(i64, i64)>> {
    let (lo, lo_exact) = local_day(ws, tz, lo_us)?;
    let (hi_next, hi_exact) = local_day(ws, tz, hi_us.saturating_add(1))?;
    Ok((lo_exact && hi_exact && hi_next > lo).then_some((lo, hi_next - 1)))
}

/// As [`whole_days`], but the first day is the one holding `lo_us` even when `lo_us` is
/// not its first instant: for consumers that ignore the rows of that day before `lo_us`
/// (a lookback far enough back that a daylight-saving shift must not matter).
pub fn days_from_floor(
    ws: &Workspace,
    tz: &str,
    lo_us: i64,
    hi_us: i64,
) -> Result<Option<(i64, i64)>> {
    let (lo, _) = local_day(ws, tz, lo_us)?;
    let (hi_next, hi_exact) = local_day(ws, tz, hi_us.saturating_add(1))?;
    Ok((hi_exact && hi_next > lo).then_some((lo, hi_next - 1)))
}

/// Push `DATE '1970-01-01' + day` for a day number.
pub fn push_date(s: &mut Sql, day: i64) {
    s.push("(DATE '1970-01-01' + CAST(")
        .bind(day)
        .push(" AS INTEGER))");
}

/// Push the index of the calendar period holding the local date in column `col`, counted
/// from the period holding local day `from_day` (0): the same value as
/// [`super::query::push_period_index`] on the event's time.
pub fn push_day_period(s: &mut Sql, unit: &'static str, from_day: i64, sunday: bool, col: &str) {
    if unit == "day" {
        s.push("(").push(col).push(" - ");
        push_date(s, from_day);
        s.push(")");
        return;
    }
    let shift = if sunday && unit == "week" { " + 1" } else { "" };
    s.push("date_diff('")
        .push(unit)
        .push("', date_trunc('")
        .push(unit)
        .push("', ");
    push_date(s, from_day);
    s.push(shift)
        .push("), date_trunc('")
        .push(unit)
        .push("', ")
        .push(col)
        .push(shift)
        .push("))");
}

/// Every person's text id at its `person_index.pid` (index 0 unused).
pub fn person_ids(ws: &Workspace) -> Result<Vec<String>> {
    let mut st = ws
        .conn()
        .prepare("SELECT pid, person_id FROM person_index ORDER BY pid")?;
    let mut rows = st.query([])?;
    let mut ids = vec![String::new()];
    while let Some(r) = rows.next()? {
        let pid: i64 = r.get(0)?;
        if pid != ids.len() as i64 {
            return Err(crate::EngineError::InvalidArgument(format!(
                "person_index is not dense at {pid} (rebuild the model)"
            )));
        }
        ids.push(r.get(1)?);
    }
    Ok(ids)
}

/// The text id of `person_index.pid` `pid` in [`person_ids`]' list.
pub fn person_at(ids: &[String], pid: i32) -> crate::Result<&str> {
    usize::try_from(pid)
        .ok()
        .and_then(|i| ids.get(i))
        .map(String::as_str)
        .ok_or_else(|| {
            crate::EngineError::InvalidArgument(format!(
                "person {pid} is not in person_index (rebuild the model)"
            ))
        })
}
