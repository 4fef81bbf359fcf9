//! Insights over the model: each is a plain function from one serializable query value (the
//! same value the UI sends, the CLI reads and a saved insight stores) to a result that
//! carries the SQL that produced it and its timing. Analytics code never reads the clock:
//! `now` comes in as a parameter; the time zone from the workspace settings.

pub mod activity;
pub mod cohort;
pub mod facts;
pub mod formula;
pub mod funnel;
pub mod funnel_steps;
pub mod named;
pub mod now;
pub mod paths;
pub mod query;
pub mod retention;
pub mod saved;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::person::{self, PersonSummary};
use crate::workspace::Workspace;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Query {
    Funnel(funnel::FunnelQuery),
    Retention(retention::RetentionQuery),
    Trends(activity::TrendsQuery),
    Stickiness(activity::StickinessQuery),
    Lifecycle(activity::LifecycleQuery),
    Paths(paths::PathsQuery),
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum InsightResult {
    Funnel(funnel::FunnelResult),
    Retention(retention::RetentionResult),
    Trends(activity::TrendsResult),
    Stickiness(activity::StickinessResult),
    Lifecycle(activity::LifecycleResult),
    Paths(paths::PathsResult),
}

impl Query {
    pub fn date_range(&self) -> &query::DateRange {
        match self {
            Query::Funnel(f) => &f.date_range,
            Query::Retention(r) => &r.date_range,
            Query::Trends(t) => &t.date_range,
            Query::Stickiness(t) => &t.date_range,
            Query::Lifecycle(t) => &t.date_range,
            Query::Paths(p) => &p.date_range,
        }
    }

    /// Every event name the query names (funnel steps and exclusions, series, retention's
    /// start and return events, paths' events and start or end items that are not page
    /// paths).
    pub fn event_names(&self) -> Vec<&str> {
        match self {
            Query::Funnel(f) => f
                .steps
                .iter()
                .map(|s| s.event.as_str())
                .chain(f.exclusions.iter().map(|x| x.event.as_str()))
                .collect(),
            Query::Retention(r) => vec![r.start.event.as_str(), r.returning.event.as_str()],
            Query::Trends(t) => t.series.iter().filter_map(|s| s.event.as_deref()).collect(),
            Query::Stickiness(t) => vec![t.event.as_str()],
            Query::Lifecycle(t) => vec![t.event.as_str()],
            Query::Paths(p) => p
                .events
                .iter()
                .map(String::as_str)
                .chain(
                    [&p.start, &p.end]
                        .into_iter()
                        .flatten()
                        .map(String::as_str)
                        // With page paths, `/pricing` is a page's path, not an event.
                        .filter(|i| !(p.page_paths && i.starts_with('/'))),
                )
                .collect(),
        }
    }
}

/// An insight's result with the instant it is computed as of and what the reader should
/// know about it (a date range wholly outside the data).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Answer {
    #[serde(flatten)]
    #[ts(flatten)]
    pub result: InsightResult,
    pub as_of: now::AsOf,
    pub warnings: Vec<String>,
}

/// Run an insight as of `given_now` (an explicit `--now`), or else the workspace's choice
/// between the end of its data and `clock_us` (the caller's clock; see [`now::resolve`]).
pub fn answer(ws: &Workspace, q: &Query, given_now: Option<i64>, clock_us: i64) -> Result<Answer> {
    let as_of = now::resolve(ws, given_now, clock_us)?;
    let result = run(ws, q, as_of.now_us)?;
    let warnings = range_warnings(ws, q.date_range(), &as_of)?;
    Ok(Answer {
        result,
        as_of,
        warnings,
    })
}

/// A warning when the date range lies wholly before or after the workspace's events: every
/// number is then 0, and the reader should hear why.
pub fn range_warnings(
    ws: &Workspace,
    range: &query::DateRange,
    as_of: &now::AsOf,
) -> Result<Vec<String>> {
    let Some(span) = now::data_span(ws)? else {
        return Ok(vec!["the workspace has no events: every number is 0".into()]);
    };
    let tz = crate::model::ModelSettings::load(ws)?.time_zone;
    let r = range.resolve(ws, as_of.now_us, &tz)?;
    let side = if r.to_us < span.first_us {
        "before"
    } else if r.from_us > span.last_us {
        "after"
    } else {
        return Ok(Vec::new());
    };
    let day = |us: i64| -> Result<String> {
        Ok(ws.conn().query_row(
            "SELECT strftime(timezone(?, make_timestamptz(?)), '%-d %b %Y')",
            duckdb::params![tz, us],
            |row| row.get(0),
        )?)
    };
    let relative = |s: &str| s.trim().starts_with('-') || s.trim() == "now";
    let is_relative = relative(&range.from) || range.to.as_deref().is_none_or(relative);
    let mut w = format!(
        "the date range ({} – {}) lies wholly {side} the data ({} – {}): every number is 0",
        day(r.from_us)?,
        day(r.to_us)?,
        day(span.first_us)?,
        day(span.last_us)?
    );
    if is_relative {
        w.push_str(&format!(
            "; its relative dates count back from {}",
            as_of.label.trim_start_matches("as of ")
        ));
        if as_of.source == now::NowSource::WallClock {
            w.push_str(" (the insights.now setting counts from the end of the data instead)");
        }
    }
    Ok(vec![w])
}

/// Run an insight (the model must be built).
pub fn run(ws: &Workspace, q: &Query, now_us: i64) -> Result<InsightResult> {
    query::check_events(ws, q.event_names())?;
    match q {
        Query::Funnel(f) => Ok(InsightResult::Funnel(funnel::run(ws, f, now_us)?.0)),
        Query::Retention(r) => Ok(InsightResult::Retention(retention::run(ws, r, now_us)?.0)),
        Query::Trends(t) => Ok(InsightResult::Trends(activity::trends(ws, t, now_us)?)),
        Query::Stickiness(t) => Ok(InsightResult::Stickiness(activity::stickiness(
            ws, t, now_us,
        )?)),
        Query::Lifecycle(t) => Ok(InsightResult::Lifecycle(activity::lifecycle(
            ws, t, now_us,
        )?)),
        Query::Paths(p) => Ok(InsightResult::Paths(paths::run(ws, p, now_us)?.0)),
    }
}

/// The persons behind one number. Funnels: `cell` is a step (`2` reached step 2, `-2`
/// dropped off before step 2), optionally `step@breakdown value`, or a funnel-trends period
/// `period:3:converted` (`:dropped`, `:entered`; 0-based). Retention: `cohort:period`
/// (0-based), e.g. `0:1`. Trends: `series:period[@value]` (0-based). Stickiness: a number of
/// active periods. Lifecycle: `period:status`. Paths: a node `2_signup` or an edge
/// `1_home>2_signup`.
pub fn drill(ws: &Workspace, q: &Query, now_us: i64, cell: &str) -> Result<Vec<PersonSummary>> {
    query::check_events(ws, q.event_names())?;
    match q {
        Query::Funnel(f) => {
            let cell = funnel::FunnelCell::parse(f, cell)?;
            let detail = funnel::detail(ws, f, now_us)?;
            person::summaries(ws, &detail.persons(&cell)?)
        }
        Query::Retention(r) => {
            let bad = || crate::EngineError::InvalidQuery {
                code: "drill_cell",
                message: format!(
                    "\"{cell}\" is not a retention cell such as 0:1 (cohort:period) or 0:1@value"
                ),
            };
            let (point, value) = match cell.split_once('@') {
                Some((a, v)) => (a, Some(v)),
                None => (cell, None),
            };
            let (c, k) = point.split_once(':').ok_or_else(bad)?;
            let c: usize = c.trim().parse().map_err(|_| bad())?;
            let k: usize = k.trim().parse().map_err(|_| bad())?;
            let (_, cells) = retention::run(ws, r, now_us)?;
            person::summaries(ws, &cells.persons(c, k, value)?)
        }
        Query::Paths(p) => {
            let (_, who) = paths::run(ws, p, now_us)?;
            let ids: Vec<String> = who
                .get(cell.trim())
                .ok_or_else(|| crate::EngineError::InvalidQuery {
                    code: "drill_cell",
                    message: format!(
                        "\"{cell}\" is not a node (2_signup) or an edge (1_home>2_signup) of these paths"
                    ),
                })?
                .iter()
                .cloned()
                .collect();
            person::summaries(ws, &ids)
        }
        Query::Trends(t) => {
            let bad = || {
                crate::EngineError::InvalidQuery {
                code: "drill_cell",
                message: format!(
                    "\"{cell}\" is not a trend point such as 0:5 (series:period, 0-based), 0:5@Chrome"
                ),
            }
            };
            let (point, value) = match cell.split_once('@') {
                Some((a, v)) => (a, Some(v)),
                None => (cell, None),
            };
            let (k, i) = point.split_once(':').ok_or_else(bad)?;
            let k: usize = k.trim().parse().map_err(|_| bad())?;
            let i: usize = i.trim().parse().map_err(|_| bad())?;
            person::summaries(ws, &activity::trend_persons(ws, t, now_us, k, i, value)?)
        }
        Query::Stickiness(t) => {
            let n: i64 = cell
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| crate::EngineError::InvalidQuery {
                    code: "drill_cell",
                    message: format!("\"{cell}\" is not a number of active periods (1, 2, …)"),
                })?;
            person::summaries(ws, &activity::stickiness_persons(ws, t, now_us, n)?)
        }
        Query::Lifecycle(t) => {
            let bad = || {
                crate::EngineError::InvalidQuery {
                code: "drill_cell",
                message: format!(
                    "\"{cell}\" is not a lifecycle bar such as 3:new (period:new|returning|resurrecting|dormant)"
                ),
            }
            };
            let (p, s) = cell.split_once(':').ok_or_else(bad)?;
            let p: i64 = p.trim().parse().map_err(|_| bad())?;
            let s = activity::LifecycleStatus::parse(s.trim()).ok_or_else(bad)?;
            person::summaries(ws, &activity::lifecycle_persons(ws, t, now_us, p, s)?)
        }
    }
}
