//! Trends with active users (semantics.md §5.1–§5.2), stickiness (§5.3) and lifecycle (§5.4)
//! over calendar periods in the workspace time zone.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::query::{
    int_list, period_index, period_labels, push_filters, push_period_index, DateRange, PeriodAt,
    PropertyFilter, Resolved,
};
use crate::model::ModelSettings;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Interval {
    Day,
    Week,
    Month,
}

impl Interval {
    fn unit(self) -> &'static str {
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TrendsQuery {
    pub series: Vec<Series>,
    pub date_range: DateRange,
    #[serde(default = "day")]
    pub interval: Interval,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SeriesResult {
    pub label: String,
    pub values: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct TrendsResult {
    /// Period start dates.
    pub dates: Vec<String>,
    pub series: Vec<SeriesResult>,
    pub sql: Vec<String>,
    pub millis: f64,
}

struct Frame {
    tz: String,
    sunday: bool,
    range: Resolved,
    periods: usize,
}

fn frame(ws: &Workspace, range: &DateRange, interval: Interval, now_us: i64) -> Result<Frame> {
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
    Ok(Frame {
        tz: settings.time_zone,
        sunday,
        range,
        periods: (last + 1) as usize,
    })
}

/// `(period index, person, session)` of matching events from `lookback` periods before the
/// range to its end.
fn rows_sql(
    f: &Frame,
    unit: &'static str,
    event: Option<&str>,
    filters: &[PropertyFilter],
    from_us: i64,
    with_sessions: bool,
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
    // Sessions are joined only when counted.
    s.push(if with_sessions {
        " AS p, ep.person_id, es.session_id FROM events e JOIN event_persons ep ON ep.event_seq = e.event_seq LEFT JOIN event_sessions es ON es.event_seq = e.event_seq"
    } else {
        " AS p, ep.person_id, NULL AS session_id FROM events e JOIN event_persons ep ON ep.event_seq = e.event_seq"
    })
    .push(" WHERE ep.person_id IS NOT NULL AND e.ts_utc >= make_timestamptz(")
        .bind(from_us)
        .push(") AND e.ts_utc <= make_timestamptz(")
        .bind(f.range.to_us)
        .push(")");
    if let Some(ev) = event {
        s.push(" AND e.event_name = ").bind(ev.to_string());
    }
    s.push(" AND ");
    push_filters(&mut s, filters)?;
    Ok(s)
}

pub fn trends(ws: &Workspace, q: &TrendsQuery, now_us: i64) -> Result<TrendsResult> {
    let started = Instant::now();
    if q.series.is_empty() {
        return Err(EngineError::InvalidQuery {
            code: "trends_no_series",
            message: "a trend needs at least one series".into(),
        });
    }
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let mut out = Vec::new();
    let mut sqls = Vec::new();
    for s in &q.series {
        let window: i64 = match s.math {
            Math::WeeklyActive => 7,
            Math::MonthlyActive => 30,
            _ => 1,
        };
        if window > 1 && q.interval != Interval::Day {
            return Err(EngineError::InvalidQuery {
                code: "trends_active_users_interval",
                message:
                    "weekly and monthly active users are computed per day: use the day interval"
                        .into(),
            });
        }
        let lookback_us = (window - 1) * 86_400_000_000;
        let mut sql = Sql::new("WITH r AS (");
        let inner = rows_sql(
            &f,
            q.interval.unit(),
            s.event.as_deref(),
            &s.filters,
            f.range.from_us - lookback_us - 86_400_000_000,
            s.math == Math::UniqueSessions,
        )?;
        sql.embed(&inner);
        sql.push(") SELECT d.i, ");
        sql.push(match s.math {
            Math::Total => "count(r.p)",
            Math::UniquePersons | Math::WeeklyActive | Math::MonthlyActive => {
                "count(DISTINCT r.person_id)"
            }
            Math::UniqueSessions => "count(DISTINCT r.session_id)",
        });
        sql.push(" FROM range(0, ")
            .bind(f.periods as i64)
            .push(") d(i) LEFT JOIN r ON r.p <= d.i AND r.p > d.i - ")
            .bind(window)
            .push(" GROUP BY d.i ORDER BY d.i");
        let mut st = ws.conn().prepare(&sql.text)?;
        let values: Vec<u64> = st
            .query_map(duckdb::params_from_iter(sql.params.iter()), |r| {
                r.get::<_, i64>(1)
            })?
            .map(|v| v.map(|n| n as u64))
            .collect::<duckdb::Result<_>>()?;
        out.push(SeriesResult {
            label: format!(
                "{} ({})",
                s.event.as_deref().unwrap_or("all events"),
                match s.math {
                    Math::Total => "events",
                    Math::UniquePersons => "unique persons",
                    Math::UniqueSessions => "sessions",
                    Math::WeeklyActive => "weekly active",
                    Math::MonthlyActive => "monthly active",
                }
            ),
            values,
        });
        sqls.push(sql.text);
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
        sql: sqls,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    })
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

pub fn stickiness(ws: &Workspace, q: &StickinessQuery, now_us: i64) -> Result<StickinessResult> {
    let started = Instant::now();
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let mut sql = Sql::new("WITH r AS (");
    sql.embed(&rows_sql(
        &f,
        q.interval.unit(),
        Some(&q.event),
        &q.filters,
        f.range.from_us,
        false,
    )?);
    sql.push(") SELECT n, count(*) FROM (SELECT person_id, count(DISTINCT p) AS n FROM r WHERE p >= 0 GROUP BY person_id) GROUP BY n");
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct LifecycleQuery {
    pub event: String,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    pub date_range: DateRange,
    #[serde(default = "day")]
    pub interval: Interval,
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

/// New (first active period is the one the person was created in), returning (active the
/// period before), resurrecting (otherwise), dormant (active the period before, not now).
pub fn lifecycle(ws: &Workspace, q: &LifecycleQuery, now_us: i64) -> Result<LifecycleResult> {
    let started = Instant::now();
    let f = frame(ws, &q.date_range, q.interval, now_us)?;
    let unit = q.interval.unit();
    let mut sql = Sql::new("WITH r AS (");
    // from one period before the range (a month at most 31 days, plus the range's own
    // period start up to 31 days before `from`)
    sql.embed(&rows_sql(
        &f,
        unit,
        Some(&q.event),
        &q.filters,
        f.range.from_us - 70 * 86_400_000_000,
        false,
    )?);
    sql.push("), a AS (SELECT person_id, list(DISTINCT p ORDER BY p) AS ps FROM r WHERE p >= -1 GROUP BY person_id) SELECT a.person_id, a.ps, ");
    push_period_index(
        &mut sql,
        unit,
        &f.tz,
        f.range.from_us,
        f.sunday,
        PeriodAt::Column("p.created_at"),
    );
    sql.push(" FROM a JOIN persons p USING (person_id)");
    let mut st = ws.conn().prepare(&sql.text)?;
    let rows = st.query_map(duckdb::params_from_iter(sql.params.iter()), |r| {
        Ok((
            r.get::<_, duckdb::types::Value>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    let n = f.periods as i64;
    let mut counts: HashMap<i64, (u64, u64, u64, i64)> = HashMap::new();
    for row in rows {
        let (ps, created) = row?;
        let active: BTreeSet<i64> = int_list(ps).into_iter().collect();
        let created = created.unwrap_or(i64::MIN);
        let mut previous = created;
        for (idx, &p) in active.iter().enumerate() {
            let c = counts.entry(p).or_default();
            if previous == p {
                c.0 += 1;
            } else if previous == p - 1 && idx != 0 {
                c.1 += 1;
            } else {
                c.2 += 1;
            }
            if !active.contains(&(p + 1)) {
                counts.entry(p + 1).or_default().3 -= 1;
            }
            previous = p;
        }
    }
    let dates = period_labels(ws, unit, &f.tz, f.range.from_us, f.sunday, f.periods)?;
    Ok(LifecycleResult {
        periods: (0..n)
            .map(|p| {
                let c = counts.get(&p).copied().unwrap_or_default();
                LifecyclePeriod {
                    date: dates[p as usize].clone(),
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
