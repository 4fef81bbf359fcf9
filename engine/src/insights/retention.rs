//! Retention (semantics.md §4): cohorts by the period of a start event, returns by the period
//! of a return event. Calendar periods in the workspace time zone by default (PostHog), or
//! rolling 24-hour windows from each person's first start event (Amplitude, PostHog's
//! `24_hour_windows`). A return in the cohort's own period is not a return; period 0 is the
//! cohort. Cells not yet complete are `None`, never 0.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::query::{
    int_list, period_index, period_labels, push_filters, push_period_index, push_property,
    DateRange, PeriodAt, PropertyFilter, PropertySource, Resolved,
};
use crate::model::ModelSettings;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct EventSpec {
    pub event: String,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Period {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum RetentionType {
    /// A person is in the cohort of every period with a start event (PostHog default).
    Recurring,
    /// A person is in the cohort of their first-ever start event, if it is in range.
    FirstTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum TimeWindow {
    Calendar,
    Rolling24h,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RetentionQuery {
    pub start: EventSpec,
    pub returning: EventSpec,
    pub date_range: DateRange,
    #[serde(default = "day")]
    pub period: Period,
    /// Number of cohorts and of periods per cohort (default 8).
    #[serde(default = "eight")]
    pub intervals: usize,
    #[serde(default = "recurring")]
    pub retention_type: RetentionType,
    /// "On or after": a person who returned in period k counts in every period up to k.
    #[serde(default)]
    pub cumulative: bool,
    #[serde(default = "calendar")]
    pub time_window: TimeWindow,
    /// Split the table by a person property (top `limit` values by persons, the rest as
    /// "Other", a missing value as "None").
    #[serde(default)]
    pub breakdown: Option<RetentionBreakdown>,
    /// Only members of a saved cohort, minus members of another.
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: super::cohort::Scope,
}

/// Split the table by a property or by saved cohorts.
///
/// - A person property (the default `source`): each person's current value.
/// - An event property: the value on the start event that put the person in the cohort
///   (`attribution: start`, the default: the earliest start event of the cohort's period,
///   or the first-ever one for first-time and rolling cohorts; returns count whatever they
///   carry), or PostHog's rule (`all_events`): one table per value over only the start and
///   return events carrying it, so a person can be in several rows and a return counts only
///   under the value it carries.
/// - `cohorts`: one row per saved cohort, in the order given; a person may be in several
///   rows and there is no "Other".
///
/// Property values: the top `limit` (default 10) keep their name, the rest are merged into
/// "Other" (said in the notes), a missing or empty value is "None". Person property values
/// rank by persons, event property values by their cohorts' total size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RetentionBreakdown {
    /// The property; empty when breaking down by `cohorts`.
    #[serde(default)]
    pub property: String,
    /// Where the property is read (default: the person).
    #[serde(default = "person_source")]
    pub source: PropertySource,
    /// Default 10.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Which events' values count, for an event property.
    #[serde(default)]
    pub attribution: RetentionAttribution,
    /// Break down by these saved cohorts instead of a property.
    #[serde(default)]
    pub cohorts: Vec<String>,
}

/// Which events give an event-property breakdown its values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum RetentionAttribution {
    /// The start event that put the person in the cohort.
    #[default]
    Start,
    /// Every start and return event, per value (PostHog).
    AllEvents,
}

fn person_source() -> PropertySource {
    PropertySource::Person
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RetentionBreakdownRow {
    pub value: String,
    pub cohorts: Vec<CohortRow>,
    pub mean_simple: Vec<Option<f64>>,
    pub mean_weighted: Vec<Option<f64>>,
}

fn day() -> Period {
    Period::Day
}
fn eight() -> usize {
    8
}
fn recurring() -> RetentionType {
    RetentionType::Recurring
}
fn calendar() -> TimeWindow {
    TimeWindow::Calendar
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct CohortRow {
    /// The cohort's first day (local date).
    pub label: String,
    pub size: u64,
    /// Persons per period; None where the period is not complete yet.
    pub values: Vec<Option<u64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RetentionResult {
    pub cohorts: Vec<CohortRow>,
    /// Mean of the cohorts' percentages per period (complete cells of non-empty cohorts).
    pub mean_simple: Vec<Option<f64>>,
    /// Σ count / Σ size per period over the same cells.
    pub mean_weighted: Vec<Option<f64>>,
    /// The same table per breakdown value, when broken down.
    pub breakdown: Vec<RetentionBreakdownRow>,
    /// Said whenever breakdown values were merged into "Other".
    pub notes: Vec<String>,
    pub sql: String,
    pub millis: f64,
}

impl RetentionQuery {
    fn validate(&self) -> Result<()> {
        if self.intervals == 0 || self.intervals > 400 {
            return Err(EngineError::InvalidQuery {
                code: "retention_intervals",
                message: format!("intervals must be 1 to 400, not {}", self.intervals),
            });
        }
        if self.cumulative && self.time_window == TimeWindow::Rolling24h {
            return Err(EngineError::InvalidQuery {
                code: "retention_cumulative_rolling",
                message: "cumulative retention works on calendar periods only".into(),
            });
        }
        if let Some(b) = &self.breakdown {
            let by_property = !b.property.trim().is_empty();
            let by_cohorts = !b.cohorts.is_empty();
            if by_property == by_cohorts {
                return Err(EngineError::InvalidQuery {
                    code: "retention_breakdown",
                    message: "a retention breakdown names either a property or saved cohorts"
                        .into(),
                });
            }
        }
        Ok(())
    }

    fn unit(&self) -> &'static str {
        match self.period {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    fn rolling_us(&self) -> i64 {
        86_400_000_000
            * match self.period {
                Period::Day => 1,
                Period::Week => 7,
                Period::Month => 30,
            }
    }
}

/// The persons in each (cohort, period) cell.
pub type Cells = HashMap<(usize, usize), Vec<Arc<str>>>;

/// The persons behind a retention result: the whole table's cells, and each breakdown
/// row's (by the row's value or cohort name, "Other" included).
#[derive(Debug, Clone, Default)]
pub struct RetentionCells {
    pub all: Cells,
    pub by_value: BTreeMap<String, Cells>,
}

impl RetentionCells {
    /// The persons of cell (cohort `c`, period `k`), of one breakdown row when `value` is
    /// given; sorted.
    pub fn persons(&self, c: usize, k: usize, value: Option<&str>) -> Result<Vec<String>> {
        let cells = match value {
            None => &self.all,
            Some(v) => self
                .by_value
                .get(v)
                .ok_or_else(|| EngineError::InvalidQuery {
                    code: "drill_cell",
                    message: format!("\"{v}\" is not a breakdown row of this retention table"),
                })?,
        };
        let mut ids: Vec<String> = cells
            .get(&(c, k))
            .map(|ps| ps.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }
}

/// One person's starts and returns: period indexes (calendar) or times (rolling) in time
/// order, with each event's breakdown value when broken down by an event property.
struct Stream {
    person: String,
    starts: Vec<i64>,
    start_values: Vec<Option<String>>,
    returns: Vec<i64>,
    return_values: Vec<Option<String>>,
}

/// A breakdown value as shown: missing or empty is "None".
fn shown(v: &Option<String>) -> String {
    match v.as_deref() {
        None | Some("") => "None".to_string(),
        Some(s) => s.to_string(),
    }
}

pub fn run(
    ws: &Workspace,
    q: &RetentionQuery,
    now_us: i64,
) -> Result<(RetentionResult, RetentionCells)> {
    q.validate()?;
    let started = Instant::now();
    let event_breakdown = q
        .breakdown
        .as_ref()
        .filter(|b| b.cohorts.is_empty() && b.source == PropertySource::Event);
    let mut properties: Vec<(PropertySource, &str)> = Vec::new();
    if let Some(b) = q.breakdown.as_ref().filter(|b| b.cohorts.is_empty()) {
        properties.push((b.source, b.property.as_str()));
    }
    super::query::check_properties(
        ws,
        q.start.filters.iter().chain(&q.returning.filters),
        &properties,
    )?;
    let settings = ModelSettings::load(ws)?;
    let range = q.date_range.resolve(ws, now_us, &settings.time_zone)?;
    let sunday = settings.week_start == "sunday";
    let calendar = q.time_window == TimeWindow::Calendar;
    // The facts answer an event-property breakdown on one of their property columns.
    let fact_column = event_breakdown.map(|b| super::facts::column_of(b.source, &b.property));
    // The facts' rows per person, period and value (see [`value_streams`]) or their lists.
    let fast = if super::facts::on_facts(q.start.filters.iter().chain(&q.returning.filters))
        && q.scope.cohort.is_none()
        && q.scope.exclude_cohort.is_none()
        && fact_column != Some(None)
        && super::facts::available(ws)?
    {
        Some(match fact_column.flatten() {
            None => (fact_streams_sql(ws, q, &settings, range, calendar)?, false),
            Some(column) => (
                fact_value_streams_sql(ws, q, &settings, range, calendar, column)?,
                true,
            ),
        })
    } else {
        None
    };
    let (s, by_pid) = match fast {
        Some((s, valued)) => (s, valued.then_some(true)),
        None => (
            general_streams_sql(ws, q, &settings, range, calendar, now_us)?,
            event_breakdown.map(|_| false),
        ),
    };
    let streams: Vec<Stream> = match by_pid {
        Some(by_pid) => value_streams(ws, &s, by_pid)?,
        None => {
            let mut st = ws.conn().prepare(&s.text)?;
            st.query_map(duckdb::params_from_iter(s.params.iter()), |r| {
                Ok(Stream {
                    person: r.get(0)?,
                    starts: int_list(r.get(1)?),
                    returns: int_list(r.get(2)?),
                    start_values: Vec::new(),
                    return_values: Vec::new(),
                })
            })?
            .collect::<duckdb::Result<_>>()?
        }
    };
    // Cells are complete only when their period has ended by `now`, by the end of the date
    // range and by the end of the data's last local day (semantics.md §4.1: the period
    // holding now is not complete, and a period after the data or the range would show a
    // fake drop to 0). Cells from this period index on (cohort + period) are incomplete.
    let limit_us = complete_until(ws, &settings.time_zone, now_us, range)?;
    let first_incomplete: i64 = if calendar {
        period_index(
            ws,
            q.unit(),
            &settings.time_zone,
            range.from_us,
            sunday,
            limit_us,
        )?
    } else {
        // A rolling cohort c holds first start events up to the end of window c, so its
        // period k ends up to window c + k + 1 ends: complete when that is by the limit.
        (limit_us - range.from_us).div_euclid(q.rolling_us()) - 1
    };
    let mut cells = RetentionCells::default();
    let add = |cells: &mut Cells, person: &Arc<str>, found: Vec<(usize, Vec<usize>)>| {
        for (c, ks) in found {
            for k in ks {
                cells.entry((c, k)).or_default().push(person.clone());
            }
        }
    };
    for st in &streams {
        let person: Arc<str> = Arc::from(st.person.as_str());
        let found = person_cells(q, calendar, range.from_us, &st.starts, &st.returns);
        if let Some(b) = event_breakdown {
            match b.attribution {
                RetentionAttribution::Start => {
                    for (c, ks) in &found {
                        let v = start_value(calendar, st, *c);
                        add(
                            cells.by_value.entry(v).or_default(),
                            &person,
                            vec![(*c, ks.clone())],
                        );
                    }
                }
                RetentionAttribution::AllEvents => {
                    let mut values: Vec<String> = st.start_values.iter().map(shown).collect();
                    values.sort_unstable();
                    values.dedup();
                    for v in values {
                        let pick = |xs: &[i64], vs: &[Option<String>]| -> Vec<i64> {
                            xs.iter()
                                .zip(vs)
                                .filter(|(_, x)| shown(x) == v)
                                .map(|(t, _)| *t)
                                .collect()
                        };
                        let starts = pick(&st.starts, &st.start_values);
                        let returns = pick(&st.returns, &st.return_values);
                        let f = person_cells(q, calendar, range.from_us, &starts, &returns);
                        add(cells.by_value.entry(v).or_default(), &person, f);
                    }
                }
            }
        }
        add(&mut cells.all, &person, found);
    }
    let labels = period_labels(
        ws,
        q.unit(),
        &settings.time_zone,
        range.from_us,
        sunday,
        q.intervals,
    )?;
    let (cohorts, mean_simple, mean_weighted) = table(&labels, &cells.all, first_incomplete);
    let mut notes = Vec::new();
    let mut breakdown = Vec::new();
    if let Some(b) = &q.breakdown {
        let limit = b.limit.unwrap_or(10).max(1);
        let mut order: Option<Vec<String>> = None;
        if !b.cohorts.is_empty() {
            for name in &b.cohorts {
                let def = super::cohort::load(ws, name)?;
                let members: HashSet<String> = super::cohort::member_ids(ws, &def, now_us)?
                    .into_iter()
                    .collect();
                cells.by_value.insert(
                    name.clone(),
                    keep_persons(&cells.all, &|p| members.contains(p)),
                );
            }
            order = Some(b.cohorts.clone());
        } else if b.source == PropertySource::Person {
            let values = person_values(ws, &b.property, limit, &mut notes)?;
            let mut names: Vec<&str> = values.values().map(String::as_str).collect();
            names.sort_unstable();
            names.dedup();
            for v in names {
                cells.by_value.insert(
                    v.to_string(),
                    keep_persons(&cells.all, &|p| {
                        values.get(p).map(String::as_str) == Some(v)
                    }),
                );
            }
        } else {
            merge_tail(&mut cells.by_value, limit, &b.property, &mut notes);
        }
        let mut rows: Vec<RetentionBreakdownRow> = cells
            .by_value
            .iter()
            .map(|(v, c)| {
                let (cohorts, mean_simple, mean_weighted) = table(&labels, c, first_incomplete);
                RetentionBreakdownRow {
                    value: v.clone(),
                    cohorts,
                    mean_simple,
                    mean_weighted,
                }
            })
            .collect();
        match order {
            // Cohorts: as asked, empty ones too.
            Some(order) => rows.sort_by_key(|r| order.iter().position(|c| *c == r.value)),
            None => {
                rows.retain(|r| r.cohorts.iter().any(|c| c.size > 0));
                // Biggest first, "Other" last.
                rows.sort_by(|a, b| {
                    let size =
                        |r: &RetentionBreakdownRow| r.cohorts.iter().map(|c| c.size).sum::<u64>();
                    super::query::other_last(&a.value, &b.value)
                        .then(size(b).cmp(&size(a)))
                        .then(a.value.cmp(&b.value))
                });
            }
        }
        breakdown = rows;
    }
    Ok((
        RetentionResult {
            cohorts,
            mean_simple,
            mean_weighted,
            breakdown,
            notes,
            sql: s.text.clone(),
            millis: started.elapsed().as_secs_f64() * 1000.0,
        },
        cells,
    ))
}

/// One person's cohorts and the periods counted in each (period 0 always): from start and
/// return period indexes (calendar) or times (rolling).
fn person_cells(
    q: &RetentionQuery,
    calendar: bool,
    from_us: i64,
    starts: &[i64],
    returns: &[i64],
) -> Vec<(usize, Vec<usize>)> {
    let n = q.intervals;
    let (cohorts, returned): (BTreeSet<i64>, BTreeSet<i64>) = if calendar {
        let cohorts: BTreeSet<i64> = match q.retention_type {
            RetentionType::Recurring => starts.iter().copied().collect(),
            RetentionType::FirstTime => starts.iter().min().copied().into_iter().collect(),
        };
        (cohorts, returns.iter().copied().collect())
    } else {
        // One cohort per person, from their first start event; returns by elapsed windows.
        let Some(t0) = starts.iter().min().copied() else {
            return Vec::new();
        };
        if t0 < from_us {
            return Vec::new();
        }
        let c = (t0 - from_us).div_euclid(q.rolling_us());
        let r: BTreeSet<i64> = returns
            .iter()
            .filter(|t| **t >= t0)
            .map(|t| c + (t - t0).div_euclid(q.rolling_us()))
            .collect();
        (BTreeSet::from([c]), r)
    };
    let mut out = Vec::new();
    for &c in &cohorts {
        if c < 0 || c as usize >= n {
            continue;
        }
        let mut reached: Vec<usize> = vec![0];
        for k in 1..n {
            if returned.contains(&(c + k as i64)) {
                reached.push(k);
            }
        }
        if q.cumulative {
            let max = *reached.last().unwrap_or(&0);
            reached = (0..=max).collect();
        }
        out.push((c as usize, reached));
    }
    out
}

/// The breakdown value of a person's cohort `c` under start attribution: the value on the
/// earliest start event of that period (calendar), or on the first start event (rolling,
/// where a person has one cohort). Starts are in time order.
fn start_value(calendar: bool, st: &Stream, c: usize) -> String {
    let at = if calendar {
        st.starts.iter().position(|p| *p == c as i64)
    } else {
        st.starts
            .iter()
            .enumerate()
            .min_by_key(|(i, t)| (**t, *i))
            .map(|(i, _)| i)
    };
    shown(&at.and_then(|i| st.start_values.get(i).cloned()).flatten())
}

/// The cells of the persons `keep` accepts.
fn keep_persons(cells: &Cells, keep: &dyn Fn(&str) -> bool) -> Cells {
    cells
        .iter()
        .map(|(at, ps)| (*at, ps.iter().filter(|p| keep(p)).cloned().collect()))
        .collect()
}

/// Keep the `limit` event-property values with the largest cohorts (Σ period-0 counts,
/// ties by value) and merge the rest into "Other" (each person once per cell), with a note.
fn merge_tail(
    by_value: &mut BTreeMap<String, Cells>,
    limit: usize,
    property: &str,
    notes: &mut Vec<String>,
) {
    if by_value.len() <= limit {
        return;
    }
    let size = |c: &Cells| -> usize {
        c.iter()
            .filter(|((_, k), _)| *k == 0)
            .map(|(_, ps)| ps.len())
            .sum()
    };
    let mut ranked: Vec<(usize, String)> =
        by_value.iter().map(|(v, c)| (size(c), v.clone())).collect();
    // A value that is literally "Other" ranks last: it joins the merged row of that name.
    ranked.sort_by(|a, b| {
        super::query::other_last(&a.1, &b.1)
            .then(b.0.cmp(&a.0))
            .then(a.1.cmp(&b.1))
    });
    let total = ranked.len();
    let mut other: HashMap<(usize, usize), BTreeSet<Arc<str>>> = HashMap::new();
    for (_, v) in ranked.into_iter().skip(limit) {
        if let Some(c) = by_value.remove(&v) {
            for (at, ps) in c {
                other.entry(at).or_default().extend(ps);
            }
        }
    }
    if let Some(c) = by_value.remove(super::query::OTHER) {
        for (at, ps) in c {
            other.entry(at).or_default().extend(ps);
        }
    }
    by_value.insert(
        super::query::OTHER.to_string(),
        other
            .into_iter()
            .map(|(at, ps)| (at, ps.into_iter().collect()))
            .collect(),
    );
    notes.push(format!(
        "{} of {total} values of \"{property}\" were merged into \"Other\" (limit {limit})",
        total - limit
    ));
}

/// Per person (sorted by person id): start and return period indexes (calendar) or times
/// (rolling) in time order, from `events` × `person_map`; with an event-property breakdown,
/// rows per person, period and value instead (see [`value_streams`]).
fn general_streams_sql(
    ws: &Workspace,
    q: &RetentionQuery,
    settings: &ModelSettings,
    range: Resolved,
    calendar: bool,
    now_us: i64,
) -> Result<Sql> {
    let sunday = settings.week_start == "sunday";
    let event_property = q
        .breakdown
        .as_ref()
        .filter(|b| b.cohorts.is_empty() && b.source == PropertySource::Event)
        .map(|b| b.property.as_str());
    // Calendar: a period index relative to the period holding date_from, in local time.
    let bucket = |s: &mut Sql| {
        if calendar {
            push_period_index(
                s,
                q.unit(),
                &settings.time_zone,
                range.from_us,
                sunday,
                PeriodAt::Column("e.ts_utc"),
            );
        } else {
            s.push("epoch_us(e.ts_utc)");
        }
    };
    // `FILTER (WHERE …)` of the start (k = 0) or return (k = 1) events.
    let which = |s: &mut Sql, k: usize| -> Result<()> {
        let spec = if k == 0 { &q.start } else { &q.returning };
        s.push(" FILTER (WHERE e.event_name = ")
            .bind(spec.event.clone())
            .push(" AND ");
        push_filters(s, &spec.filters)?;
        if k == 1 || q.retention_type == RetentionType::Recurring {
            s.push(" AND e.ts_utc >= make_timestamptz(")
                .bind(range.from_us)
                .push(")");
        }
        if k == 0 {
            s.push(" AND e.ts_utc <= make_timestamptz(")
                .bind(range.to_us)
                .push(")");
        }
        s.push(")");
        Ok(())
    };
    let mut s = match event_property {
        // Rows per person, period and value (see [`value_streams`]).
        Some(key) => {
            let mut s = Sql::new("SELECT ep.person_id, ");
            bucket(&mut s);
            s.push(" AS p, ");
            push_property(&mut s, PropertySource::Event, key);
            s.push(" AS v");
            for (k, name) in ["sk", "rk"].into_iter().enumerate() {
                s.push(", min(epoch_us(e.ts_utc))");
                which(&mut s, k)?;
                s.push(" AS ").push(name);
            }
            s
        }
        None => {
            let mut s = Sql::new("SELECT ep.person_id");
            for k in 0..2 {
                s.push(", list(");
                bucket(&mut s);
                s.push(" ORDER BY e.ts_utc, e.event_seq)");
                which(&mut s, k)?;
            }
            s
        }
    };
    s.push(" FROM ")
        .push(&super::query::events_with_persons(ws)?)
        .push(" WHERE ep.person_id IS NOT NULL AND e.event_name IN (")
        .bind(q.start.event.clone())
        .push(", ")
        .bind(q.returning.event.clone())
        .push(") AND e.ts_utc <= make_timestamptz(")
        .bind(range.to_us.max(range.from_us))
        .push(")");
    s.embed(&super::cohort::scope_sql(
        ws,
        &q.scope,
        "ep.person_id",
        now_us,
    )?);
    s.push(match event_property {
        Some(_) => " GROUP BY ALL HAVING sk IS NOT NULL OR rk IS NOT NULL ORDER BY ep.person_id",
        None => " GROUP BY ep.person_id ORDER BY ep.person_id",
    });
    Ok(s)
}

/// [`general_streams_sql`] from the insight facts (filters only on the facts' columns, no
/// cohort scope): distinct (person, local day) pairs when the range is whole local days and
/// periods are calendar ones, else the facts' events. Lists hold distinct values; the
/// caller treats them as sets.
fn fact_streams_sql(
    ws: &Workspace,
    q: &RetentionQuery,
    settings: &ModelSettings,
    range: Resolved,
    calendar: bool,
) -> Result<Sql> {
    let sunday = settings.week_start == "sunday";
    let tz = &settings.time_zone;
    let from_day = super::facts::local_day(ws, tz, range.from_us)?.0;
    let hi_us = range.to_us.max(range.from_us);
    let days = if calendar {
        super::facts::whole_days(ws, tz, range.from_us, hi_us)?
    } else {
        None
    };
    let mut s = Sql::new("SELECT pi.person_id, x.starts, x.returns FROM (SELECT pid");
    for (k, spec) in [&q.start, &q.returning].into_iter().enumerate() {
        s.push(", list(DISTINCT ");
        if calendar {
            super::facts::push_day_period(&mut s, q.unit(), from_day, sunday, "day");
        } else {
            s.push("ts_us");
        }
        s.push(") FILTER (WHERE event_name = ")
            .bind(spec.event.clone())
            .push(" AND ");
        super::facts::push_filters(&mut s, "f", &spec.filters)?;
        // Starts: from the range's start when recurring (first-time: all time); returns:
        // from the range's start; both to its end.
        if k == 1 || q.retention_type == RetentionType::Recurring {
            match days {
                Some((lo, _)) => {
                    s.push(" AND day >= ");
                    super::facts::push_date(&mut s, lo);
                }
                None => {
                    s.push(" AND ts_us >= ").bind(range.from_us);
                }
            }
        }
        if k == 0 {
            match days {
                Some((_, hi)) if range.to_us >= range.from_us => {
                    s.push(" AND day <= ");
                    super::facts::push_date(&mut s, hi);
                }
                _ => {
                    s.push(" AND ts_us <= ").bind(range.to_us);
                }
            }
        }
        s.push(if k == 0 {
            ") AS starts"
        } else {
            ") AS returns"
        });
    }
    s.push(match days {
        Some(_) => " FROM person_days f WHERE event_name IN (",
        None => " FROM event_facts f WHERE event_name IN (",
    })
    .bind(q.start.event.clone())
    .push(", ")
    .bind(q.returning.event.clone())
    .push(")");
    match days {
        Some((_, hi)) => {
            s.push(" AND day <= ");
            super::facts::push_date(&mut s, hi);
        }
        None => {
            s.push(" AND ts_us <= ").bind(hi_us);
        }
    }
    s.push(" GROUP BY pid) x JOIN person_index pi ON pi.pid = x.pid ORDER BY pi.person_id");
    Ok(s)
}

/// [`general_streams_sql`] with an event-property breakdown, from `event_facts` (filters
/// only on the facts' columns, no cohort scope, the property one of the facts' columns).
fn fact_value_streams_sql(
    ws: &Workspace,
    q: &RetentionQuery,
    settings: &ModelSettings,
    range: Resolved,
    calendar: bool,
    column: &'static str,
) -> Result<Sql> {
    let sunday = settings.week_start == "sunday";
    let from_day = super::facts::local_day(ws, &settings.time_zone, range.from_us)?.0;
    // One row per person, period (time when rolling) and value, with the time of its first
    // start and first return event; [`value_streams`] puts them in order. (Ordered list
    // aggregates over every event ran out of memory at 10M events; list aggregates of the
    // grouped rows took twice as long as this.)
    let mut s = Sql::new("SELECT pid, ");
    if calendar {
        super::facts::push_day_period(&mut s, q.unit(), from_day, sunday, "day");
    } else {
        s.push("ts_us");
    }
    s.push(" AS p, ").push(column).push(" AS v");
    for (k, spec) in [&q.start, &q.returning].into_iter().enumerate() {
        s.push(", min(ts_us) FILTER (WHERE event_name = ")
            .bind(spec.event.clone())
            .push(" AND ");
        super::facts::push_filters(&mut s, "f", &spec.filters)?;
        // Starts: from the range's start when recurring (first-time: all time), to its
        // end; returns: from the range's start.
        if k == 1 || q.retention_type == RetentionType::Recurring {
            s.push(" AND ts_us >= ").bind(range.from_us);
        }
        if k == 0 {
            s.push(" AND ts_us <= ").bind(range.to_us);
        }
        s.push(if k == 0 { ") AS sk" } else { ") AS rk" });
    }
    s.push(" FROM event_facts f WHERE event_name IN (")
        .bind(q.start.event.clone())
        .push(", ")
        .bind(q.returning.event.clone())
        .push(") AND ts_us <= ")
        .bind(range.to_us.max(range.from_us))
        .push(" GROUP BY ALL HAVING sk IS NOT NULL OR rk IS NOT NULL ORDER BY pid");
    Ok(s)
}

/// The streams of the rows of [`fact_value_streams_sql`] (persons as `person_index.pid`)
/// or [`general_streams_sql`] with an event-property breakdown (persons as text ids),
/// sorted by person: each person's start and return periods (times when rolling) by the
/// time of their first event, then by value (events at the same instant: the smallest
/// value first, no value before any).
fn value_streams(ws: &Workspace, s: &Sql, by_pid: bool) -> Result<Vec<Stream>> {
    use crate::sql::arrow_column;
    use duckdb::arrow::array::{Array, Int32Array, Int64Array, StringArray};
    use duckdb::arrow::datatypes::DataType;
    /// A batch's person column.
    enum Persons {
        Pids(Int32Array),
        Ids(StringArray),
    }
    let ids = if by_pid {
        super::facts::person_ids(ws)?
    } else {
        Vec::new()
    };
    type Keyed = Vec<(i64, Option<String>, i64)>;
    let mut out = Vec::new();
    let mut current: Option<(String, Keyed, Keyed)> = None;
    let finish = |out: &mut Vec<Stream>,
                  (person, mut starts, mut returns): (String, Keyed, Keyed)| {
        starts.sort_unstable();
        returns.sort_unstable();
        let (starts, start_values) = starts.into_iter().map(|(_, v, p)| (p, v)).unzip();
        let (returns, return_values) = returns.into_iter().map(|(_, v, p)| (p, v)).unzip();
        out.push(Stream {
            person,
            starts,
            start_values,
            returns,
            return_values,
        });
    };
    let mut st = ws.conn().prepare(&s.text)?;
    // Arrow batches: a few columns of many rows.
    for batch in st.query_arrow(duckdb::params_from_iter(s.params.iter()))? {
        let persons = if by_pid {
            Persons::Pids(arrow_column(&batch, 0, &DataType::Int32)?)
        } else {
            Persons::Ids(arrow_column(&batch, 0, &DataType::Utf8)?)
        };
        let p = arrow_column::<Int64Array>(&batch, 1, &DataType::Int64)?;
        let v = arrow_column::<StringArray>(&batch, 2, &DataType::Utf8)?;
        let sk = arrow_column::<Int64Array>(&batch, 3, &DataType::Int64)?;
        let rk = arrow_column::<Int64Array>(&batch, 4, &DataType::Int64)?;
        for i in 0..batch.num_rows() {
            let person: &str = match &persons {
                Persons::Pids(pids) => super::facts::person_at(&ids, pids.value(i))?,
                Persons::Ids(texts) => texts.value(i),
            };
            if current.as_ref().is_none_or(|c| c.0 != person) {
                let next = (person.to_string(), Vec::new(), Vec::new());
                if let Some(c) = current.replace(next) {
                    finish(&mut out, c);
                }
            }
            let value = (!v.is_null(i)).then(|| v.value(i).to_string());
            if let Some(c) = current.as_mut() {
                if !sk.is_null(i) {
                    c.1.push((sk.value(i), value.clone(), p.value(i)));
                }
                if !rk.is_null(i) {
                    c.2.push((rk.value(i), value, p.value(i)));
                }
            }
        }
    }
    if let Some(c) = current.take() {
        finish(&mut out, c);
    }
    Ok(out)
}

/// The instant before which retention periods are complete: the earliest of `now`, the end
/// of the date range and the end of the local day of the workspace's last event.
fn complete_until(ws: &Workspace, tz: &str, now_us: i64, range: Resolved) -> Result<i64> {
    let mut limit = now_us.min(range.to_us.saturating_add(1));
    if let Some(span) = super::now::data_span(ws)? {
        let end_of_day: i64 = ws.conn().query_row(
            "SELECT epoch_us(timezone(?, CAST(CAST(timezone(?, make_timestamptz(?)) AS DATE) + 1 AS TIMESTAMP)))",
            duckdb::params![tz, tz, span.last_us],
            |r| r.get(0),
        )?;
        limit = limit.min(end_of_day);
    }
    Ok(limit)
}

/// The triangle and mean curves of some cells; cell (c, k) is complete (a number) when
/// c + k is before `first_incomplete`, else None, and left out of the means.
fn table(
    labels: &[String],
    cells: &Cells,
    first_incomplete: i64,
) -> (Vec<CohortRow>, Vec<Option<f64>>, Vec<Option<f64>>) {
    let n = labels.len();
    let count = |c: usize, k: usize| -> u64 { cells.get(&(c, k)).map_or(0, |v| v.len()) as u64 };
    let mut cohorts = Vec::with_capacity(n);
    for (c, label) in labels.iter().enumerate() {
        let size = count(c, 0);
        let values = (0..n)
            .map(|k| (((c + k) as i64) < first_incomplete).then(|| count(c, k)))
            .collect();
        cohorts.push(CohortRow {
            label: label.clone(),
            size,
            values,
        });
    }
    let mut mean_simple = Vec::with_capacity(n);
    let mut mean_weighted = Vec::with_capacity(n);
    for k in 0..n {
        let rows: Vec<(u64, u64)> = cohorts
            .iter()
            .filter(|r| r.size > 0)
            .filter_map(|r| r.values[k].map(|v| (v, r.size)))
            .collect();
        if rows.is_empty() {
            mean_simple.push(None);
            mean_weighted.push(None);
        } else {
            mean_simple.push(Some(
                rows.iter().map(|(v, s)| *v as f64 / *s as f64).sum::<f64>() / rows.len() as f64,
            ));
            let (a, b) = rows
                .iter()
                .fold((0u64, 0u64), |acc, (v, s)| (acc.0 + v, acc.1 + s));
            mean_weighted.push(Some(a as f64 / b as f64));
        }
    }
    (cohorts, mean_simple, mean_weighted)
}

/// Each person's value of a person property: the top `limit` values by persons keep their
/// name, the rest become "Other" (with a note), a missing or empty value is "None".
pub fn person_values(
    ws: &Workspace,
    property: &str,
    limit: usize,
    notes: &mut Vec<String>,
) -> Result<HashMap<String, String>> {
    let mut q = Sql::new("WITH v AS (SELECT person_id, coalesce(nullif(properties ->> ");
    q.bind(super::query::json_path(property))
        .push(", ''), 'None') AS v FROM persons), r AS (SELECT v, row_number() OVER (ORDER BY count(*) DESC, v) AS rk FROM v GROUP BY v) SELECT v.person_id, CASE WHEN r.rk <= ")
        .bind(limit as i64)
        .push(" THEN v.v ELSE 'Other' END, (SELECT count(*) FROM r) FROM v JOIN r USING (v)");
    let mut st = ws.conn().prepare(&q.text)?;
    let mut rows = st.query(duckdb::params_from_iter(q.params.iter()))?;
    let mut out = HashMap::new();
    let mut distinct = 0i64;
    while let Some(r) = rows.next()? {
        out.insert(r.get::<_, String>(0)?, r.get::<_, String>(1)?);
        distinct = r.get(2)?;
    }
    if distinct as usize > limit {
        notes.push(format!(
            "{} of {distinct} values of \"{property}\" were merged into \"Other\" (limit {limit})",
            distinct as usize - limit
        ));
    }
    Ok(out)
}
