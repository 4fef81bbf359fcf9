//! Trends with active users (semantics.md §5.1–§5.2), stickiness (§5.3) and lifecycle (§5.4)
//! over calendar periods in the workspace time zone.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::cohort::{self, Scope};
use super::facts;
use super::formula;
use super::query::{
    check_properties, int_list, json_path, period_index, period_labels, push_filters,
    push_period_index, push_property, DateRange, PeriodAt, PropertyFilter, PropertySource,
    Resolved,
};
use crate::model::ModelSettings;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Interval {
    #[default]
    Day,
    Week,
    Month,
}

impl Interval {
    pub(crate) fn unit(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
        }
    }
}

fn day() -> Interval {
    Interval::Day
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Math {
    /// Events.
    Total,
    /// Distinct persons in the period (DAU on a daily chart).
    UniquePersons,
    /// Distinct sessions.
    UniqueSessions,
    /// Distinct persons in the 7 days ending on each day (daily interval only).
    WeeklyActive,
    /// Distinct persons in the 30 days ending on each day (daily interval only).
    MonthlyActive,
    /// Distinct accounts (groups of `group_type`) with an event: daily active accounts.
    UniqueAccounts,
    /// Property math over the numeric `property`; an empty period is 0 (PostHog).
    Sum,
    Avg,
    Min,
    Max,
    Median,
    P75,
    P90,
    P95,
    P99,
}

impl Math {
    fn label(self) -> &'static str {
        match self {
            Math::Total => "events",
            Math::UniquePersons => "unique persons",
            Math::UniqueSessions => "sessions",
            Math::WeeklyActive => "weekly active",
            Math::MonthlyActive => "monthly active",
            Math::UniqueAccounts => "active accounts",
            Math::Sum => "sum",
            Math::Avg => "average",
            Math::Min => "min",
            Math::Max => "max",
            Math::Median => "median",
            Math::P75 => "p75",
            Math::P90 => "p90",
            Math::P95 => "p95",
            Math::P99 => "p99",
        }
    }

    /// The aggregate over rows `r` (columns p, person_id, session_id, v, acct, bd).
    fn aggregate(self) -> &'static str {
        match self {
            Math::Total => "count(*)",
            Math::UniquePersons | Math::WeeklyActive | Math::MonthlyActive => {
                "count(DISTINCT r.person_id)"
            }
            Math::UniqueSessions => "count(DISTINCT r.session_id)",
            Math::UniqueAccounts => "count(DISTINCT r.acct)",
            Math::Sum => "coalesce(sum(r.v), 0)",
            Math::Avg => "coalesce(avg(r.v), 0)",
            Math::Min => "coalesce(min(r.v), 0)",
            Math::Max => "coalesce(max(r.v), 0)",
            Math::Median => "coalesce(quantile_cont(r.v, 0.5), 0)",
            Math::P75 => "coalesce(quantile_cont(r.v, 0.75), 0)",
            Math::P90 => "coalesce(quantile_cont(r.v, 0.9), 0)",
            Math::P95 => "coalesce(quantile_cont(r.v, 0.95), 0)",
            Math::P99 => "coalesce(quantile_cont(r.v, 0.99), 0)",
        }
    }

    fn needs_property(self) -> bool {
        matches!(
            self,
            Math::Sum
                | Math::Avg
                | Math::Min
                | Math::Max
                | Math::Median
                | Math::P75
                | Math::P90
                | Math::P95
                | Math::P99
        )
    }

    /// Days each point looks back over (1: the period itself).
    fn window(self) -> i64 {
        match self {
            Math::WeeklyActive => 7,
            Math::MonthlyActive => 30,
            _ => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Series {
    /// An event name, or null for any event.
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    pub math: Math,
    /// The numeric event property of property math (sum, avg, min, max, median, pNN).
    #[serde(default)]
    pub property: Option<String>,
    /// The group type counted by `unique_accounts` (e.g. `company`).
    #[serde(default)]
    pub group_type: Option<String>,
    /// A label for output.
    #[serde(default)]
    pub name: Option<String>,
}

/// Split each series by an event or person property (top `limit` values by events, the rest
/// as "Other"; a missing or empty value is "None"), or by saved cohorts (a person may be in
/// several; no "Other").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum TrendsBreakdown {
    Property {
        property: String,
        #[serde(default)]
        source: PropertySource,
        /// Default 25.
        #[serde(default)]
        limit: Option<usize>,
    },
    Cohorts {
        cohorts: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TrendsQuery {
    pub series: Vec<Series>,
    pub date_range: DateRange,
    #[serde(default = "day")]
    pub interval: Interval,
    /// Filters every series' events must pass.
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    #[serde(default)]
    pub breakdown: Option<TrendsBreakdown>,
    /// A formula over the series (`A / B`), shown as one more series.
    #[serde(default)]
    pub formula: Option<String>,
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SeriesResult {
    pub label: String,
    /// The query's series (0-based); null for the formula.
    pub series: Option<usize>,
    /// The breakdown value, when broken down.
    pub breakdown_value: Option<String>,
    pub values: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TrendsResult {
    /// Period start dates.
    pub dates: Vec<String>,
    pub series: Vec<SeriesResult>,
    /// Said whenever breakdown values were merged into "Other".
    pub notes: Vec<String>,
    pub sql: Vec<String>,
    pub millis: f64,
}

/// A query's calendar periods: the resolved range, the time zone and week start, how many.
pub(crate) struct Frame {
    /// `events e JOIN person_map ep …`
    pub(crate) events: String,
    pub(crate) tz: String,
    pub(crate) sunday: bool,
    pub(crate) range: Resolved,
    pub(crate) periods: usize,
    /// The local day of the range's start, when the insight facts may be read.
    pub(crate) facts_from_day: Option<i64>,
}

pub(crate) fn frame(
    ws: &Workspace,
    range: &DateRange,
    interval: Interval,
    now_us: i64,
) -> Result<Frame> {
    let settings = ModelSettings::load(ws)?;
    let range = range.resolve(ws, now_us, &settings.time_zone)?;
    let sunday = settings.week_start == "sunday";
    let last = period_index(
        ws,
        interval.unit(),
        &settings.time_zone,
        range.from_us,
        sunday,
        range.to_us,
    )?;
    if last >= 5000 {
        return Err(EngineError::InvalidQuery {
            code: "too_many_periods",
            message: format!(
                "{} periods; narrow the date range or use a longer interval",
                last + 1
            ),
        });
    }
    let facts_from_day = if facts::available(ws)? {
        Some(facts::local_day(ws, &settings.time_zone, range.from_us)?.0)
    } else {
        None
    };
    Ok(Frame {
        events: super::query::events_with_persons(ws)?,
        tz: settings.time_zone,
        sunday,
        range,
        periods: (last + 1) as usize,
        facts_from_day,
    })
}

/// What a row loader selects besides the period and the person.
#[derive(Default)]
struct Columns<'a> {
    sessions: bool,
    value: Option<&'a str>,
    group_type: Option<&'a str>,
    breakdown: Option<(PropertySource, &'a str)>,
    /// The consumer only asks which persons were active in which periods (not how many
    /// events): rows may come deduplicated per (person, day).
    distinct_only: bool,
    /// The consumer ignores the rows of the local day holding the rows' start that come
    /// before it (a lookback): the facts may start at that day's midnight.
    floor_from: bool,
}

/// The loaded rows; `pid`: their `person_id` is the integer `person_index.pid` (the insight
/// facts' fast path), not the text id.
struct Rows {
    sql: Sql,
    pid: bool,
    /// Each (period, person) comes once (the facts' active days, by day, no breakdown).
    unique: bool,
}

/// Rows from the insight facts (see [`rows_sql`]), when they answer the query exactly:
/// filters only on the facts' property columns, no cohort scope, no sessions, accounts or
/// property math, and a breakdown (if any) on an event property stored as a facts column.
#[allow(clippy::too_many_arguments)] // the arguments of `rows_sql`, plus the workspace
fn fact_rows_sql(
    ws: &Workspace,
    f: &Frame,
    unit: &'static str,
    event: Option<&str>,
    filter_sets: &[&[PropertyFilter]],
    from_us: i64,
    cols: &Columns<'_>,
    scope: &Sql,
) -> Result<Option<(Sql, bool)>> {
    let Some(from_day) = f.facts_from_day else {
        return Ok(None);
    };
    if !facts::on_facts(filter_sets.iter().flat_map(|fs| fs.iter()))
        || !scope.text.trim().is_empty()
        || cols.sessions
        || cols.value.is_some()
        || cols.group_type.is_some()
    {
        return Ok(None);
    }
    let bd_col = match cols.breakdown {
        None => None,
        Some((source, key)) => match facts::column_of(source, key) {
            Some(c) => Some(c),
            None => return Ok(None),
        },
    };
    let mut s = Sql::new("SELECT ");
    let days = if !cols.distinct_only {
        None
    } else if cols.floor_from {
        facts::days_from_floor(ws, &f.tz, from_us, f.range.to_us)?
    } else {
        facts::whole_days(ws, &f.tz, from_us, f.range.to_us)?
    };
    if let Some((lo, hi)) = days {
        // Whole local days: the persons' active days say as much as the events, and the
        // events per day rank breakdown values (n). Rows may repeat a (day, person): the
        // consumers count distinct persons and periods.
        facts::push_day_period(&mut s, unit, from_day, f.sunday, "d.day");
        s.push(" AS p, d.pid AS person_id, NULL::VARCHAR AS session_id, NULL::DOUBLE AS v, NULL::VARCHAR AS acct, ");
        match bd_col {
            Some(c) => {
                s.push("coalesce(nullif(d.")
                    .push(c)
                    .push(", ''), 'None') AS bd, d.events AS n");
            }
            None => {
                s.push("NULL::VARCHAR AS bd, 1 AS n");
            }
        }
        let filtered = filter_sets.iter().any(|fs| !fs.is_empty());
        s.push(match (event, bd_col, filtered) {
            (None, None, false) => " FROM active_days d WHERE d.day >= ",
            _ => " FROM person_days d WHERE d.day >= ",
        });
        facts::push_date(&mut s, lo);
        s.push(" AND d.day <= ");
        facts::push_date(&mut s, hi);
        if let Some(ev) = event {
            s.push(" AND d.event_name = ").bind(ev.to_string());
        }
        for fs in filter_sets.iter().filter(|fs| !fs.is_empty()) {
            s.push(" AND ");
            facts::push_filters(&mut s, "d", fs)?;
        }
        let unique = event.is_none() && bd_col.is_none() && !filtered && unit == "day";
        return Ok(Some((s, unique)));
    }
    facts::push_day_period(&mut s, unit, from_day, f.sunday, "x.day");
    s.push(" AS p, x.pid AS person_id, NULL::VARCHAR AS session_id, NULL::DOUBLE AS v, NULL::VARCHAR AS acct, ");
    match bd_col {
        Some(c) => {
            s.push("coalesce(nullif(x.")
                .push(c)
                .push(", ''), 'None') AS bd");
        }
        None => {
            s.push("NULL::VARCHAR AS bd");
        }
    }
    s.push(", 1 AS n FROM event_facts x WHERE x.ts_us >= ")
        .bind(from_us)
        .push(" AND x.ts_us <= ")
        .bind(f.range.to_us);
    if let Some(ev) = event {
        s.push(" AND x.event_name = ").bind(ev.to_string());
    }
    for fs in filter_sets.iter().filter(|fs| !fs.is_empty()) {
        s.push(" AND ");
        facts::push_filters(&mut s, "x", fs)?;
    }
    Ok(Some((s, false)))
}

/// [`rows_sql`], from the insight facts when they can answer.
#[allow(clippy::too_many_arguments)] // the arguments of `rows_sql`, plus the workspace
fn load_rows(
    ws: &Workspace,
    f: &Frame,
    unit: &'static str,
    event: Option<&str>,
    filter_sets: &[&[PropertyFilter]],
    from_us: i64,
    cols: &Columns<'_>,
    scope: &Sql,
) -> Result<Rows> {
    if let Some((sql, unique)) =
        fact_rows_sql(ws, f, unit, event, filter_sets, from_us, cols, scope)?
    {
        return Ok(Rows {
            sql,
            pid: true,
            unique,
        });
    }
    Ok(Rows {
        sql: rows_sql(f, unit, event, filter_sets, from_us, cols, scope)?,
        pid: false,
        unique: false,
    })
}

/// Wrap a query whose first column is a person (`person_id`, an integer pid when `pid`)
/// so that it gives text person ids, sorted.
fn person_ids_sql(inner: Sql, pid: bool) -> Sql {
    if !pid {
        let mut s = Sql::new("SELECT * FROM (");
        s.embed(&inner);
        s.push(") ORDER BY 1");
        return s;
    }
    let mut s = Sql::new("SELECT pi.person_id FROM (");
    s.embed(&inner);
    s.push(") w JOIN person_index pi ON pi.pid = w.person_id ORDER BY 1");
    s
}

/// `(p, person_id, session_id, v, acct, bd)` of matching events from `from_us` to the
/// range's end, `p` the period index; `scope` is appended to the conditions.
fn rows_sql(
    f: &Frame,
    unit: &'static str,
    event: Option<&str>,
    filter_sets: &[&[PropertyFilter]],
    from_us: i64,
    cols: &Columns<'_>,
    scope: &Sql,
) -> Result<Sql> {
    let mut s = Sql::new("SELECT ");
    push_period_index(
        &mut s,
        unit,
        &f.tz,
        f.range.from_us,
        f.sunday,
        PeriodAt::Column("e.ts_utc"),
    );
    s.push(" AS p, ep.person_id, ");
    // Sessions are joined only when counted.
    s.push(if cols.sessions {
        "es.session_id, "
    } else {
        "NULL::VARCHAR AS session_id, "
    });
    match cols.value {
        Some(k) => {
            s.push("TRY_CAST(e.properties ->> ")
                .bind(json_path(k))
                .push(" AS DOUBLE) AS v, ");
        }
        None => {
            s.push("NULL::DOUBLE AS v, ");
        }
    }
    match cols.group_type {
        Some(g) => {
            s.push("unnest(coalesce(json_extract_string(e.groups, ")
                .bind(format!("{}[*]", json_path(g)))
                .push("), [])) AS acct, ");
        }
        None => {
            s.push("NULL::VARCHAR AS acct, ");
        }
    }
    match cols.breakdown {
        Some((source, key)) => {
            s.push("coalesce(nullif(");
            push_property(&mut s, source, key);
            s.push(", ''), 'None') AS bd");
        }
        None => {
            s.push("NULL::VARCHAR AS bd");
        }
    }
    s.push(" FROM ").push(&f.events);
    if cols.sessions {
        s.push(" LEFT JOIN event_sessions es ON es.event_seq = e.event_seq");
    }
    let person_props = cols
        .breakdown
        .is_some_and(|(src, _)| src == PropertySource::Person)
        || filter_sets
            .iter()
            .flat_map(|fs| fs.iter())
            .any(|x| x.source == PropertySource::Person);
    if person_props {
        s.push(" LEFT JOIN persons p ON p.person_id = ep.person_id");
    }
    s.push(" WHERE ep.person_id IS NOT NULL AND e.ts_utc >= make_timestamptz(")
        .bind(from_us)
        .push(") AND e.ts_utc <= make_timestamptz(")
        .bind(f.range.to_us)
        .push(")");
    if let Some(ev) = event {
        s.push(" AND e.event_name = ").bind(ev.to_string());
    }
    for fs in filter_sets {
        s.push(" AND ");
        push_filters(&mut s, fs)?;
    }
    s.embed(scope);
    Ok(s)
}

/// `WITH r AS (rows with the final breakdown value in bd) ` for one series: property
/// breakdowns keep the top `limit` values by events and call the rest "Other"; the CTE
/// `nv` holds the number of distinct values.
fn series_rows(
    ws: &Workspace,
    f: &Frame,
    q: &TrendsQuery,
    s: &Series,
    scope: &Sql,
    now_us: i64,
    cohort: Option<&str>,
) -> Result<Rows> {
    let window = s.math.window();
    let lookback_us = (window - 1) * 86_400_000_000;
    let bd = match &q.breakdown {
        Some(TrendsBreakdown::Property {
            property, source, ..
        }) => Some((*source, property.as_str())),
        _ => None,
    };
    let cols = Columns {
        sessions: s.math == Math::UniqueSessions,
        value: if s.math.needs_property() {
            s.property.as_deref()
        } else {
            None
        },
        group_type: if s.math == Math::UniqueAccounts {
            s.group_type.as_deref()
        } else {
            None
        },
        breakdown: bd,
        distinct_only: matches!(
            s.math,
            Math::UniquePersons | Math::WeeklyActive | Math::MonthlyActive
        ),
        // Daily points from a local midnight: the lookback starts `window` days before it,
        // give or take a daylight-saving hour, so the rows of its first day before it are
        // `window` or more days back, outside every point's trailing window.
        floor_from: q.interval == Interval::Day
            && f.facts_from_day.is_some()
            && facts::local_day(ws, &f.tz, f.range.from_us)?.1,
    };
    let mut scope = scope.clone();
    if let Some(name) = cohort {
        scope.embed(&cohort::scope_sql(
            ws,
            &Scope {
                cohort: Some(name.to_string()),
                exclude_cohort: None,
            },
            "ep.person_id",
            now_us,
        )?);
    }
    let rows = load_rows(
        ws,
        f,
        q.interval.unit(),
        s.event.as_deref(),
        &[&s.filters, &q.filters],
        f.range.from_us - lookback_us - 86_400_000_000,
        &cols,
        &scope,
    )?;
    let mut sql = Sql::new("WITH r0 AS (");
    sql.embed(&rows.sql);
    match &q.breakdown {
        Some(TrendsBreakdown::Property { limit, .. }) => {
            // Values ranked by events: the facts' rows carry their number of events (n). A
            // value that is literally "Other" ranks last: when values are merged, it is
            // merged too, so "Other" names one series.
            sql.push(if rows.pid {
                "), top AS (SELECT bd, row_number() OVER (ORDER BY bd = 'Other', sum(n) DESC, bd) AS rk FROM r0 WHERE p >= 0 GROUP BY bd), nv AS (SELECT count(*) AS n FROM top), r AS (SELECT r0.* EXCLUDE (bd), CASE WHEN top.rk <= "
            } else {
                "), top AS (SELECT bd, row_number() OVER (ORDER BY bd = 'Other', count(*) DESC, bd) AS rk FROM r0 WHERE p >= 0 GROUP BY bd), nv AS (SELECT count(*) AS n FROM top), r AS (SELECT r0.* EXCLUDE (bd), CASE WHEN top.rk <= "
            })
                .bind(limit.unwrap_or(25).max(1) as i64)
                .push(" THEN r0.bd ELSE 'Other' END AS bd FROM r0 LEFT JOIN top ON top.bd = r0.bd) ");
        }
        Some(TrendsBreakdown::Cohorts { .. }) => {
            sql.push("), nv AS (SELECT 0 AS n), r AS (SELECT r0.* EXCLUDE (bd), ")
                .bind(cohort.unwrap_or_default().to_string())
                .push(" AS bd FROM r0) ");
        }
        None => {
            sql.push("), nv AS (SELECT 0 AS n), r AS (SELECT * FROM r0) ");
        }
    }
    Ok(Rows {
        sql,
        pid: rows.pid,
        unique: rows.unique,
    })
}

impl TrendsQuery {
    fn validate(&self) -> Result<()> {
        if self.series.is_empty() {
            return Err(EngineError::InvalidQuery {
                code: "trends_no_series",
                message: "a trend needs at least one series".into(),
            });
        }
        if self.series.len() > 26 {
            return Err(EngineError::InvalidQuery {
                code: "trends_too_many_series",
                message: "a trend takes at most 26 series (A to Z)".into(),
            });
        }
        for s in &self.series {
            if s.math.window() > 1 && self.interval != Interval::Day {
                return Err(EngineError::InvalidQuery {
                    code: "trends_active_users_interval",
                    message:
                        "weekly and monthly active users are computed per day: use the day interval"
                            .into(),
                });
            }
            if s.math.needs_property() && s.property.is_none() {
                return Err(EngineError::InvalidQuery {
                    code: "trends_math_property",
                    message: format!("{} math needs a numeric \"property\"", s.math.label()),
                });
            }
            if s.math == Math::UniqueAccounts && s.group_type.is_none() {
                return Err(EngineError::InvalidQuery {
                    code: "trends_math_group_type",
                    message: "active accounts need a \"group_type\" (e.g. company)".into(),
                });
            }
        }
        if let Some(TrendsBreakdown::Cohorts { cohorts }) = &self.breakdown {
            if cohorts.is_empty() {
                return Err(EngineError::InvalidQuery {
                    code: "trends_breakdown",
                    message: "a cohort breakdown names at least one cohort".into(),
                });
            }
        }
        Ok(())
    }

    /// The cohorts broken down by (one `None` when not by cohort).
    fn cohort_runs(&self) -> Vec<Option<&str>> {
        match &self.breakdown {
            Some(TrendsBreakdown::Cohorts { cohorts }) => {
                cohorts.iter().map(|c| Some(c.as_str())).collect()
            }
            _ => vec![None],
        }
    }
}

/// Push the tail that aggregates `r` per (period, breakdown value), with `nv.n`.
///
/// Trailing windows (WAU, MAU) do not join every day to every event: each person's active
/// days become covered intervals `[first, last + window)`, merged where they touch, and a
/// running sum of interval starts (+1) and ends (−1) per value gives the count on each day.
/// The rows are then `(day of change, value, running count)`, to be carried forward.
///
/// Over the insight facts (`rows.pid`) the same counts come cheaper: rows known to be
/// unique per (period, person) are counted without DISTINCT, and each active day covers
/// `[p, min(next active day, p + window))`: these pieces are disjoint and their union is
/// the merged intervals, so one window function (lead) replaces the grouping.
fn push_aggregate(sql: &mut Sql, s: &Series, periods: usize, rows: &Rows) {
    let window = s.math.window();
    if rows.pid && window == 1 && rows.unique && s.math == Math::UniquePersons {
        sql.push(
            "SELECT r.p, r.bd, count(*), any_value(nv.n) FROM r, nv WHERE r.p >= 0 AND r.p < ",
        )
        .bind(periods as i64)
        .push(" GROUP BY r.p, r.bd");
    } else if rows.pid && window > 1 {
        sql.push(if rows.unique {
            ", pd AS (SELECT person_id, bd, p FROM r WHERE p < "
        } else {
            ", pd AS (SELECT DISTINCT person_id, bd, p FROM r WHERE p < "
        })
        .bind(periods as i64)
        .push("), g AS (SELECT bd, p, least(coalesce(lead(p) OVER (PARTITION BY person_id, bd ORDER BY p), p + ")
        .bind(window)
        .push("), p + ")
        .bind(window)
        .push(") AS e FROM pd), dx AS (SELECT bd, p AS d, 1 AS x FROM g UNION ALL SELECT bd, e AS d, -1 AS x FROM g) SELECT d, bd, CAST(sum(sum(x)) OVER (PARTITION BY bd ORDER BY d) AS DOUBLE), any_value(nv.n) FROM dx, nv GROUP BY d, bd");
    } else if window == 1 {
        sql.push("SELECT r.p, r.bd, ")
            .push(s.math.aggregate())
            .push(", any_value(nv.n) FROM r, nv WHERE r.p >= 0 AND r.p < ")
            .bind(periods as i64)
            .push(" GROUP BY r.p, r.bd");
    } else {
        sql.push(", pd AS (SELECT DISTINCT person_id, bd, p FROM r WHERE p < ")
            .bind(periods as i64)
            .push("), g AS (SELECT person_id, bd, p, CASE WHEN p - lag(p) OVER (PARTITION BY person_id, bd ORDER BY p) <= ")
            .bind(window)
            .push(" THEN 0 ELSE 1 END AS brk FROM pd), g2 AS (SELECT person_id, bd, p, sum(brk) OVER (PARTITION BY person_id, bd ORDER BY p ROWS UNBOUNDED PRECEDING) AS grp FROM g), iv AS (SELECT bd, min(p) AS s, max(p) + ")
            .bind(window)
            .push(" AS e FROM g2 GROUP BY person_id, bd, grp), dx AS (SELECT bd, s AS d, 1 AS x FROM iv UNION ALL SELECT bd, e AS d, -1 AS x FROM iv) SELECT d, bd, CAST(sum(sum(x)) OVER (PARTITION BY bd ORDER BY d) AS DOUBLE), any_value(nv.n) FROM dx, nv GROUP BY d, bd");
    }
}

fn series_label(s: &Series) -> String {
    s.name.clone().unwrap_or_else(|| {
        let what = match (&s.property, s.math.needs_property()) {
            (Some(p), true) => format!("{} of {p}", s.math.label()),
            _ => s.math.label().to_string(),
        };
        format!("{} ({what})", s.event.as_deref().unwrap_or("all events"))
    })
}

pub fn trends(ws: &Workspace, q: &TrendsQuery, now_us: i64) -> Result<TrendsResult> {
    let started = Instant::now();
    q.validate()?;
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let formula = q
        .formula
        .as_deref()
        .map(|t| formula::parse(t, q.series.len()))
        .transpose()?;
    let mut keys: Vec<(PropertySource, &str)> = q
        .series
        .iter()
        .filter(|s| s.math.needs_property())
        .filter_map(|s| s.property.as_deref().map(|p| (PropertySource::Event, p)))
        .collect();
    if let Some(TrendsBreakdown::Property {
        property, source, ..
    }) = &q.breakdown
    {
        keys.push((*source, property.as_str()));
    }
    check_properties(
        ws,
        q.filters
            .iter()
            .chain(q.series.iter().flat_map(|s| &s.filters)),
        &keys,
    )?;
    let scope = cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?;
    let mut out: Vec<SeriesResult> = Vec::new();
    let mut sqls = Vec::new();
    let mut notes = Vec::new();
    for (k, s) in q.series.iter().enumerate() {
        let mut by_value: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for c in q.cohort_runs() {
            let rows = series_rows(ws, &f, q, s, &scope, now_us, c)?;
            let mut sql = rows.sql.clone();
            push_aggregate(&mut sql, s, f.periods, &rows);
            let mut st = ws.conn().prepare(&sql.text)?;
            let mut rows = st.query(duckdb::params_from_iter(sql.params.iter()))?;
            let mut distinct = 0i64;
            if let Some(c) = c {
                by_value
                    .entry(c.to_string())
                    .or_insert(vec![0.0; f.periods]);
            }
            // Trailing windows: (day of change, value, count from then on).
            let mut changes: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
            while let Some(r) = rows.next()? {
                let p: i64 = r.get(0)?;
                let bd: Option<String> = r.get(1)?;
                let v: f64 = r.get(2)?;
                distinct = r.get::<_, Option<i64>>(3)?.unwrap_or(0);
                if s.math.window() > 1 {
                    changes
                        .entry(bd.unwrap_or_default())
                        .or_default()
                        .push((p, v));
                } else if let Some(slot) = by_value
                    .entry(bd.unwrap_or_default())
                    .or_insert(vec![0.0; f.periods])
                    .get_mut(p as usize)
                {
                    *slot = v;
                }
            }
            for (bd, mut ch) in changes {
                ch.sort_by_key(|c| c.0);
                let values = by_value.entry(bd).or_insert(vec![0.0; f.periods]);
                let mut k = 0;
                let mut current = 0.0;
                for (i, slot) in values.iter_mut().enumerate() {
                    while k < ch.len() && ch[k].0 <= i as i64 {
                        current = ch[k].1;
                        k += 1;
                    }
                    *slot = current;
                }
            }
            if let Some(TrendsBreakdown::Property { limit, .. }) = &q.breakdown {
                let limit = limit.unwrap_or(25).max(1) as i64;
                if distinct > limit {
                    notes.push(format!(
                        "series {}: {} of {distinct} breakdown values were merged into \"Other\" (limit {limit})",
                        (b'A' + k as u8) as char,
                        distinct - limit
                    ));
                }
            }
            sqls.push(sql.text);
        }
        if by_value.is_empty() {
            by_value.insert(String::new(), vec![0.0; f.periods]);
        }
        let mut rows: Vec<(String, Vec<f64>)> = by_value.into_iter().collect();
        if matches!(q.breakdown, Some(TrendsBreakdown::Property { .. })) {
            // Biggest first, "Other" last.
            rows.sort_by(|a, b| {
                super::query::other_last(&a.0, &b.0)
                    .then(b.1.iter().sum::<f64>().total_cmp(&a.1.iter().sum::<f64>()))
                    .then(a.0.cmp(&b.0))
            });
        } else if let Some(TrendsBreakdown::Cohorts { cohorts }) = &q.breakdown {
            rows.sort_by_key(|r| cohorts.iter().position(|c| *c == r.0));
        }
        let label = series_label(s);
        for (v, values) in rows {
            out.push(SeriesResult {
                label: if q.breakdown.is_some() {
                    format!("{label} · {v}")
                } else {
                    label.clone()
                },
                series: Some(k),
                breakdown_value: q.breakdown.is_some().then_some(v),
                values,
            });
        }
    }
    if let (Some(expr), Some(text)) = (&formula, &q.formula) {
        // Each breakdown value once, in the order of the first series.
        let mut seen = BTreeSet::new();
        let values: Vec<Option<String>> = out
            .iter()
            .map(|s| s.breakdown_value.clone())
            .filter(|v| seen.insert(v.clone()))
            .collect();
        for v in values {
            let of = |k: usize, i: usize| -> f64 {
                out.iter()
                    .find(|s| s.series == Some(k) && s.breakdown_value == v)
                    .map_or(0.0, |s| s.values[i])
            };
            let vals: Vec<f64> = (0..f.periods)
                .map(|i| formula::eval(expr, &|k| of(k, i)))
                .collect();
            out.push(SeriesResult {
                label: match &v {
                    Some(v) => format!("{text} · {v}"),
                    None => text.clone(),
                },
                series: None,
                breakdown_value: v,
                values: vals,
            });
        }
    }
    Ok(TrendsResult {
        dates: period_labels(
            ws,
            q.interval.unit(),
            &f.tz,
            f.range.from_us,
            f.sunday,
            f.periods,
        )?,
        series: out,
        notes,
        sql: sqls,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The persons behind one trend point: series `k`, period `i`, breakdown value (or cohort).
pub fn trend_persons(
    ws: &Workspace,
    q: &TrendsQuery,
    now_us: i64,
    k: usize,
    i: usize,
    value: Option<&str>,
) -> Result<Vec<String>> {
    q.validate()?;
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let s = q.series.get(k).ok_or_else(|| EngineError::InvalidQuery {
        code: "drill_cell",
        message: format!("this trend has {} series, not {}", q.series.len(), k + 1),
    })?;
    if i >= f.periods {
        return Err(EngineError::InvalidQuery {
            code: "drill_cell",
            message: format!("this trend has {} periods, not {}", f.periods, i + 1),
        });
    }
    let cohort = match &q.breakdown {
        Some(TrendsBreakdown::Cohorts { cohorts }) => {
            let v = value.ok_or_else(|| EngineError::InvalidQuery {
                code: "drill_cell",
                message: "name the cohort: series:period@cohort".into(),
            })?;
            Some(
                cohorts
                    .iter()
                    .find(|c| c.as_str() == v)
                    .ok_or_else(|| EngineError::InvalidQuery {
                        code: "drill_cell",
                        message: format!("\"{v}\" is not a cohort of this breakdown"),
                    })?
                    .as_str(),
            )
        }
        _ => None,
    };
    let scope = cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?;
    // Without a value, a property breakdown changes no row (its join is a left join), only
    // their labels: drop it, so the top values need not be ranked.
    let unlabelled;
    let q = if value.is_none() && matches!(q.breakdown, Some(TrendsBreakdown::Property { .. })) {
        unlabelled = TrendsQuery {
            breakdown: None,
            ..q.clone()
        };
        &unlabelled
    } else {
        q
    };
    let Rows { mut sql, pid, .. } = series_rows(ws, &f, q, s, &scope, now_us, cohort)?;
    sql.push("SELECT DISTINCT r.person_id FROM r WHERE r.p <= ")
        .bind(i as i64)
        .push(" AND r.p > ")
        .bind(i as i64 - s.math.window());
    if let (Some(v), Some(TrendsBreakdown::Property { .. })) = (value, &q.breakdown) {
        sql.push(" AND r.bd = ").bind(v.to_string());
    }
    if s.math == Math::UniqueAccounts {
        sql.push(" AND r.acct IS NOT NULL");
    }
    let sql = person_ids_sql(sql, pid);
    let mut st = ws.conn().prepare(&sql.text)?;
    let rows = st.query_map(duckdb::params_from_iter(sql.params.iter()), |r| r.get(0))?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StickinessQuery {
    pub event: String,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    pub date_range: DateRange,
    #[serde(default = "day")]
    pub interval: Interval,
    /// "x or more" instead of "exactly x".
    #[serde(default)]
    pub cumulative: bool,
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StickinessResult {
    /// `persons[i]` = persons active in exactly (or, cumulative, at least) i + 1 periods.
    pub persons: Vec<u64>,
    pub sql: String,
    pub millis: f64,
}

/// Per person, the number of periods in range with the event.
fn stickiness_sql(ws: &Workspace, q: &StickinessQuery, f: &Frame, now_us: i64) -> Result<Rows> {
    let rows = load_rows(
        ws,
        f,
        q.interval.unit(),
        Some(&q.event),
        &[&q.filters],
        f.range.from_us,
        &Columns {
            distinct_only: true,
            ..Columns::default()
        },
        &cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?,
    )?;
    let mut sql = Sql::new("WITH r AS (");
    sql.embed(&rows.sql);
    sql.push(") SELECT person_id, count(DISTINCT p) AS n FROM r WHERE p >= 0 GROUP BY person_id");
    Ok(Rows {
        sql,
        pid: rows.pid,
        unique: rows.unique,
    })
}

pub fn stickiness(ws: &Workspace, q: &StickinessQuery, now_us: i64) -> Result<StickinessResult> {
    let started = Instant::now();
    check_properties(ws, &q.filters, &[])?;
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let mut sql = Sql::new("SELECT n, count(*) FROM (");
    sql.embed(&stickiness_sql(ws, q, &f, now_us)?.sql);
    sql.push(") GROUP BY n");
    let mut st = ws.conn().prepare(&sql.text)?;
    let mut persons = vec![0u64; f.periods];
    for row in st.query_map(duckdb::params_from_iter(sql.params.iter()), |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (n, c) = row?;
        if n >= 1 && (n as usize) <= persons.len() {
            persons[n as usize - 1] = c as u64;
        }
    }
    if q.cumulative {
        for i in (0..persons.len().saturating_sub(1)).rev() {
            persons[i] += persons[i + 1];
        }
    }
    Ok(StickinessResult {
        persons,
        sql: sql.text,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The persons active in exactly `n` periods (at least `n` when cumulative).
pub fn stickiness_persons(
    ws: &Workspace,
    q: &StickinessQuery,
    now_us: i64,
    n: i64,
) -> Result<Vec<String>> {
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let rows = stickiness_sql(ws, q, &f, now_us)?;
    let mut sql = Sql::new("SELECT person_id FROM (");
    sql.embed(&rows.sql);
    sql.push(if q.cumulative {
        ") WHERE n >= "
    } else {
        ") WHERE n = "
    })
    .bind(n);
    let sql = person_ids_sql(sql, rows.pid);
    let mut st = ws.conn().prepare(&sql.text)?;
    let rows = st.query_map(duckdb::params_from_iter(sql.params.iter()), |r| r.get(0))?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

/// When a person is "new" in lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum NewBy {
    /// In the period of their first-ever matching event (default).
    FirstMatchingEvent,
    /// In the period the person was created (first event of any kind): PostHog's rule, by
    /// which someone created before their first matching event is "resurrecting".
    CreatedAt,
}

fn first_matching() -> NewBy {
    NewBy::FirstMatchingEvent
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct LifecycleQuery {
    pub event: String,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    pub date_range: DateRange,
    #[serde(default = "day")]
    pub interval: Interval,
    #[serde(default = "first_matching")]
    pub new_by: NewBy,
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct LifecyclePeriod {
    pub date: String,
    pub new: u64,
    pub returning: u64,
    pub resurrecting: u64,
    /// Reported negative, as PostHog shows it.
    pub dormant: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct LifecycleResult {
    pub periods: Vec<LifecyclePeriod>,
    pub sql: String,
    pub millis: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum LifecycleStatus {
    New,
    Returning,
    Resurrecting,
    Dormant,
}

impl LifecycleStatus {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "new" => Some(Self::New),
            "returning" => Some(Self::Returning),
            "resurrecting" => Some(Self::Resurrecting),
            "dormant" => Some(Self::Dormant),
            _ => None,
        }
    }
}

/// Every (person, period, status) of the lifecycle, periods within the range.
type Statuses = Vec<(String, i64, LifecycleStatus)>;

/// New (the first active period is the one the person became new in), returning (active the
/// period before), resurrecting (otherwise), dormant (active the period before, not now).
fn lifecycle_statuses(
    ws: &Workspace,
    q: &LifecycleQuery,
    f: &Frame,
    now_us: i64,
) -> Result<(Statuses, Sql)> {
    let unit = q.interval.unit();
    let scope = cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?;
    // from one period before the range (a month at most 31 days, plus the range's own
    // period start up to 31 days before `from`)
    let rows = load_rows(
        ws,
        f,
        unit,
        Some(&q.event),
        &[&q.filters],
        f.range.from_us - 70 * 86_400_000_000,
        &Columns {
            distinct_only: true,
            // Only periods from one before the range's are read (p >= -1): the 70th day
            // back is two or more periods earlier.
            floor_from: true,
            ..Columns::default()
        },
        &scope,
    )?;
    let mut sql = Sql::new("WITH r AS (");
    sql.embed(&rows.sql);
    sql.push("), a AS (SELECT person_id, list(DISTINCT p ORDER BY p) AS ps FROM r WHERE p >= -1 GROUP BY person_id)");
    match (q.new_by, rows.pid.then_some(f.facts_from_day).flatten()) {
        (NewBy::CreatedAt, Some(_)) => {
            sql.push(" SELECT pi.person_id, a.ps, ");
            push_period_index(
                &mut sql,
                unit,
                &f.tz,
                f.range.from_us,
                f.sunday,
                PeriodAt::Column("p.created_at"),
            );
            sql.push(" FROM a JOIN person_index pi ON pi.pid = a.person_id JOIN persons p ON p.person_id = pi.person_id");
        }
        (NewBy::FirstMatchingEvent, Some(from_day)) => {
            // The first matching event ever: its local day (filters on the days' columns).
            sql.push(
                ", fm AS (SELECT pid, min(day) AS first_day FROM person_days d WHERE event_name = ",
            )
            .bind(q.event.clone())
            .push(" AND ");
            facts::push_filters(&mut sql, "d", &q.filters)?;
            sql.push(
                " AND pid IN (SELECT person_id FROM a) GROUP BY pid) SELECT pi.person_id, a.ps, ",
            );
            facts::push_day_period(&mut sql, unit, from_day, f.sunday, "fm.first_day");
            sql.push(" FROM a JOIN fm ON fm.pid = a.person_id JOIN person_index pi ON pi.pid = a.person_id");
        }
        (NewBy::CreatedAt, None) => {
            sql.push(" SELECT a.person_id, a.ps, ");
            push_period_index(
                &mut sql,
                unit,
                &f.tz,
                f.range.from_us,
                f.sunday,
                PeriodAt::Column("p.created_at"),
            );
            sql.push(" FROM a JOIN persons p USING (person_id)");
        }
        (NewBy::FirstMatchingEvent, None) => {
            // The first matching event ever, however long before the range.
            sql.push(", fm AS (SELECT ep.person_id, min(e.ts_utc) AS first_ts FROM ")
                .push(&f.events);
            if q.filters.iter().any(|x| x.source == PropertySource::Person) {
                sql.push(" LEFT JOIN persons p ON p.person_id = ep.person_id");
            }
            sql.push(" WHERE e.event_name = ")
                .bind(q.event.clone())
                .push(" AND ep.person_id IN (SELECT person_id FROM a) AND ");
            push_filters(&mut sql, &q.filters)?;
            sql.push(" GROUP BY 1) SELECT a.person_id, a.ps, ");
            push_period_index(
                &mut sql,
                unit,
                &f.tz,
                f.range.from_us,
                f.sunday,
                PeriodAt::Column("fm.first_ts"),
            );
            sql.push(" FROM a JOIN fm USING (person_id)");
        }
    }
    sql.push(" ORDER BY 1");
    let mut st = ws.conn().prepare(&sql.text)?;
    let rows = st.query_map(duckdb::params_from_iter(sql.params.iter()), |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, duckdb::types::Value>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let n = f.periods as i64;
    let mut out: Statuses = Vec::new();
    for row in rows {
        let (person, ps, became_new) = row?;
        let active: BTreeSet<i64> = int_list(ps).into_iter().collect();
        let mut previous = became_new.unwrap_or(i64::MIN);
        let mut push = |p: i64, s: LifecycleStatus| {
            if (0..n).contains(&p) {
                out.push((person.clone(), p, s));
            }
        };
        for (idx, &p) in active.iter().enumerate() {
            if previous == p {
                push(p, LifecycleStatus::New);
            } else if previous == p - 1 && idx != 0 {
                push(p, LifecycleStatus::Returning);
            } else {
                push(p, LifecycleStatus::Resurrecting);
            }
            if !active.contains(&(p + 1)) {
                push(p + 1, LifecycleStatus::Dormant);
            }
            previous = p;
        }
    }
    Ok((out, sql))
}

pub fn lifecycle(ws: &Workspace, q: &LifecycleQuery, now_us: i64) -> Result<LifecycleResult> {
    let started = Instant::now();
    check_properties(ws, &q.filters, &[])?;
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let (statuses, sql) = lifecycle_statuses(ws, q, &f, now_us)?;
    let mut counts: HashMap<i64, (u64, u64, u64, i64)> = HashMap::new();
    for (_, p, s) in &statuses {
        let c = counts.entry(*p).or_default();
        match s {
            LifecycleStatus::New => c.0 += 1,
            LifecycleStatus::Returning => c.1 += 1,
            LifecycleStatus::Resurrecting => c.2 += 1,
            LifecycleStatus::Dormant => c.3 -= 1,
        }
    }
    let dates = period_labels(
        ws,
        q.interval.unit(),
        &f.tz,
        f.range.from_us,
        f.sunday,
        f.periods,
    )?;
    Ok(LifecycleResult {
        periods: dates
            .into_iter()
            .enumerate()
            .map(|(p, date)| {
                let c = counts.get(&(p as i64)).copied().unwrap_or_default();
                LifecyclePeriod {
                    date,
                    new: c.0,
                    returning: c.1,
                    resurrecting: c.2,
                    dormant: c.3,
                }
            })
            .collect(),
        sql: sql.text,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The persons behind one lifecycle bar.
pub fn lifecycle_persons(
    ws: &Workspace,
    q: &LifecycleQuery,
    now_us: i64,
    period: i64,
    status: LifecycleStatus,
) -> Result<Vec<String>> {
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let (statuses, _) = lifecycle_statuses(ws, q, &f, now_us)?;
    Ok(statuses
        .into_iter()
        .filter(|(_, p, s)| *p == period && *s == status)
        .map(|(person, _, _)| person)
        .collect())
}
