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

/// Run an insight (the model must be built).
pub fn run(ws: &Workspace, q: &Query, now_us: i64) -> Result<InsightResult> {
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
