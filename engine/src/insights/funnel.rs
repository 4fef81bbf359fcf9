//! Funnels (semantics.md §3): SQL collects each person's matching events in time order with
//! the steps they match; the state machine in [`super::funnel_steps`] runs per person in Rust;
//! results aggregate to step counts, conversion rates, times, a time-to-convert histogram,
//! breakdowns, conversion per entry period (funnel trends) and the persons behind every
//! number.
//!
//! What is counted (`count`): persons (each person's best chain), attempts (`totals`, see
//! [`funnel_steps::attempts`]) or sessions (a chain inside one model session, each session's
//! best chain). `hold_constant` and sessions split a person's events into partitions (by the
//! held values, by session) and the machine runs on each partition alone, so every step of
//! a chain shares them; events missing a held value (or a session) take no part.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::activity::Interval;
use super::funnel_steps::{self, ActorResult, ExclusionMode, FunnelEvent, Order, Rules};
use super::query::{
    int_list, push_filters, push_property, text_list, DateRange, PropertyFilter, PropertySource,
};
use crate::model::ModelSettings;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelStep {
    pub event: String,
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    /// A label for output (default: the event name).
    #[serde(default)]
    pub name: Option<String>,
    /// The step may be skipped; the steps after it are still required, and its count is
    /// the chains that did it (not the first or last step; ordered and strict funnels).
    #[serde(default)]
    pub optional: bool,
    /// At most this long (inclusive) after the previous step the chain did, on top of the
    /// funnel's window from step 1 (not on the first step; ordered and strict funnels).
    #[serde(default)]
    pub window: Option<StepWindow>,
}

/// A per-step conversion window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StepWindow {
    pub value: i64,
    pub unit: WindowUnit,
}

/// What a funnel counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum FunnelCount {
    /// Unique persons, each by their best chain.
    #[default]
    Persons,
    /// Attempts: a person can enter again after converting or once the window since their
    /// latest entry has passed ([`funnel_steps::attempts`]).
    Totals,
    /// Unique sessions: a chain stays inside one session; each session by its best chain.
    Sessions,
}

impl FunnelCount {
    /// The counted noun, for tables and axes.
    pub fn noun(self) -> &'static str {
        match self {
            FunnelCount::Persons => "Persons",
            FunnelCount::Totals => "Attempts",
            FunnelCount::Sessions => "Sessions",
        }
    }
}

/// How a funnel is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum FunnelDisplay {
    /// Counts per step.
    #[default]
    Steps,
    /// Also the conversion from `from_step` to `to_step` per entry period.
    Trends,
}

/// An exclusion between two steps (0-based, `from_step < to_step`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelExclusion {
    pub event: String,
    pub from_step: usize,
    pub to_step: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum FunnelOrder {
    Ordered,
    Strict,
    Unordered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum WindowUnit {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum ExclusionBehaviour {
    /// PostHog: drop the person from the whole funnel.
    DropPerson,
    /// Mixpanel: end the attempt; steps reached still count.
    EndAttempt,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Attribution {
    FirstTouch,
    LastTouch,
    /// The values seen on this step's events (0-based).
    Step {
        step: usize,
    },
    /// Every value, the funnel run on only the events carrying it.
    AllEvents,
}

/// Split the funnel by an event or person property (each unit's value as `attribution`
/// says; the top `limit` rows, the rest merged into "Other"), or by saved cohorts (one row
/// per cohort, in the order given, over its members' units; a person may be in several
/// rows; no "Other").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Breakdown {
    /// The property; empty when breaking down by `cohorts`.
    #[serde(default)]
    pub property: String,
    #[serde(default)]
    pub source: PropertySource,
    #[serde(default = "first_touch")]
    pub attribution: Attribution,
    /// At most this many values; the rest are merged into "Other" (default 25).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Break down by these saved cohorts instead of a property.
    #[serde(default)]
    pub cohorts: Vec<String>,
}

fn first_touch() -> Attribution {
    Attribution::FirstTouch
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelQuery {
    pub steps: Vec<FunnelStep>,
    pub date_range: DateRange,
    #[serde(default = "ordered")]
    pub order: FunnelOrder,
    /// Conversion window (default 14 days), inclusive, from the chain's first step.
    #[serde(default = "fourteen")]
    pub window: i64,
    #[serde(default = "day")]
    pub window_unit: WindowUnit,
    #[serde(default)]
    pub exclusions: Vec<FunnelExclusion>,
    #[serde(default = "drop_person")]
    pub exclusion_behaviour: ExclusionBehaviour,
    /// false (default): only the first step must be in the date range; later steps may
    /// follow within the window. true: every step inside the range (PostHog's rule).
    #[serde(default)]
    pub bound_all_steps: bool,
    /// Filters every event must pass.
    #[serde(default)]
    pub filters: Vec<PropertyFilter>,
    #[serde(default)]
    pub breakdown: Option<Breakdown>,
    /// Count 0-second conversions in the average and median times (default false: they are
    /// left out, PostHog's rule).
    #[serde(default)]
    pub include_zero_second_times: bool,
    /// Event properties every step of a chain must share (e.g. `order_id`).
    #[serde(default)]
    pub hold_constant: Vec<String>,
    #[serde(default)]
    pub count: FunnelCount,
    #[serde(default)]
    pub display: FunnelDisplay,
    /// Entry periods of funnel trends (default day).
    #[serde(default)]
    pub interval: Interval,
    /// Funnel trends: the conversion from this step (0-based, default the first)…
    #[serde(default)]
    pub from_step: Option<usize>,
    /// …to this one (default the last).
    #[serde(default)]
    pub to_step: Option<usize>,
    /// Only members of a saved cohort, minus members of another.
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: super::cohort::Scope,
}

fn window_us(value: i64, unit: WindowUnit) -> i64 {
    let unit: i64 = match unit {
        WindowUnit::Second => 1,
        WindowUnit::Minute => 60,
        WindowUnit::Hour => 3600,
        WindowUnit::Day => 86_400,
        WindowUnit::Week => 7 * 86_400,
        WindowUnit::Month => 30 * 86_400,
    };
    value.saturating_mul(unit).saturating_mul(1_000_000)
}

fn ordered() -> FunnelOrder {
    FunnelOrder::Ordered
}
fn fourteen() -> i64 {
    14
}
fn day() -> WindowUnit {
    WindowUnit::Day
}
fn drop_person() -> ExclusionBehaviour {
    ExclusionBehaviour::DropPerson
}

impl FunnelQuery {
    pub fn window_us(&self) -> i64 {
        window_us(self.window, self.window_unit)
    }

    /// The machine's rules for this funnel.
    pub fn rules(&self) -> Rules {
        let mut rules = Rules::new(
            self.steps.len(),
            self.window_us(),
            match self.order {
                FunnelOrder::Ordered => Order::Ordered,
                FunnelOrder::Strict => Order::Strict,
                FunnelOrder::Unordered => Order::Unordered,
            },
            match self.exclusion_behaviour {
                ExclusionBehaviour::DropPerson => ExclusionMode::DropActor,
                ExclusionBehaviour::EndAttempt => ExclusionMode::EndAttempt,
            },
        );
        rules.optional = std::iter::once(false)
            .chain(self.steps.iter().map(|s| s.optional))
            .collect();
        rules.step_windows_us = std::iter::once(None)
            .chain(
                self.steps
                    .iter()
                    .map(|s| s.window.map(|w| window_us(w.value, w.unit))),
            )
            .collect();
        rules
    }

    /// The breakdown when it is by a property (not by cohorts).
    pub fn property_breakdown(&self) -> Option<&Breakdown> {
        self.breakdown.as_ref().filter(|b| b.cohorts.is_empty())
    }

    /// The cohorts broken down by (empty when not by cohorts).
    pub fn breakdown_cohorts(&self) -> &[String] {
        self.breakdown
            .as_ref()
            .map_or(&[], |b| b.cohorts.as_slice())
    }

    /// Funnel trends' (from, to) steps, 0-based.
    pub fn trend_steps(&self) -> (usize, usize) {
        (
            self.from_step.unwrap_or(0),
            self.to_step.unwrap_or(self.steps.len().saturating_sub(1)),
        )
    }

    pub fn validate(&self) -> Result<()> {
        let n = self.steps.len();
        if n < 2 {
            return Err(EngineError::InvalidQuery {
                code: "funnel_needs_two_steps",
                message: format!("a funnel needs at least 2 steps, this one has {n}"),
            });
        }
        if self.window <= 0 {
            return Err(EngineError::InvalidQuery {
                code: "funnel_window",
                message: "the conversion window must be positive".into(),
            });
        }
        for x in &self.exclusions {
            if x.from_step >= x.to_step || x.to_step >= n {
                return Err(EngineError::InvalidQuery {
                    code: "funnel_exclusion_range",
                    message: format!(
                        "exclusion \"{}\" must cover steps from < to ≤ {} (0-based); got {}..{}",
                        x.event,
                        n - 1,
                        x.from_step,
                        x.to_step
                    ),
                });
            }
            if self.order == FunnelOrder::Unordered && (x.from_step != 0 || x.to_step != n - 1) {
                return Err(EngineError::InvalidQuery {
                    code: "funnel_exclusion_range",
                    message: "any-order funnels take only exclusions over the whole funnel".into(),
                });
            }
        }
        self.validate_steps()?;
        if self.display == FunnelDisplay::Trends
            || self.from_step.is_some()
            || self.to_step.is_some()
        {
            let (from, to) = self.trend_steps();
            if from >= to || to >= n {
                return Err(EngineError::InvalidQuery {
                    code: "funnel_trend_steps",
                    message: format!(
                        "funnel trends convert from a step to a later one (0-based, < {n}); got {from} → {to}"
                    ),
                });
            }
        }
        if let Some(b) = &self.breakdown {
            let by_property = !b.property.trim().is_empty();
            let by_cohorts = !b.cohorts.is_empty();
            if by_property == by_cohorts {
                return Err(EngineError::InvalidQuery {
                    code: "funnel_breakdown",
                    message: "a funnel breakdown names either a property or saved cohorts".into(),
                });
            }
        }
        if let Some(Breakdown {
            attribution: Attribution::Step { step },
            ..
        }) = self.property_breakdown()
        {
            if *step >= n {
                return Err(EngineError::InvalidQuery {
                    code: "funnel_attribution_step",
                    message: format!("attribution step {step} is not a step of this funnel"),
                });
            }
        }
        Ok(())
    }

    /// Optional steps and per-step windows (semantics.md §3.7).
    fn validate_steps(&self) -> Result<()> {
        let n = self.steps.len();
        let bad =
            |code: &'static str, message: String| Err(EngineError::InvalidQuery { code, message });
        for (i, st) in self.steps.iter().enumerate() {
            if st.optional {
                if i == 0 || i == n - 1 {
                    return bad(
                        "funnel_optional_step",
                        format!(
                            "step {} cannot be optional: only steps between the first and the last can",
                            i + 1
                        ),
                    );
                }
                if self.order == FunnelOrder::Unordered {
                    return bad(
                        "funnel_optional_step",
                        "any-order funnels have no optional steps".into(),
                    );
                }
                let next = &self.steps[i + 1];
                if next.event == st.event && next.filters == st.filters {
                    return bad(
                        "funnel_optional_step",
                        format!(
                            "optional step {} is the same as the step after it, so it could never be skipped",
                            i + 1
                        ),
                    );
                }
            }
            if let Some(w) = st.window {
                if i == 0 {
                    return bad(
                        "funnel_step_window",
                        "the first step has no previous step to have a window from".into(),
                    );
                }
                if w.value <= 0 {
                    return bad(
                        "funnel_step_window",
                        format!("step {}'s window must be positive", i + 1),
                    );
                }
                if self.order == FunnelOrder::Unordered {
                    return bad(
                        "funnel_step_window",
                        "any-order funnels have no per-step windows".into(),
                    );
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StepResult {
    pub index: usize,
    pub name: String,
    /// Optional: the count is the chains that did this step.
    pub optional: bool,
    pub count: u64,
    /// count / first step's count
    pub conversion_overall: Option<f64>,
    /// count / the previous required step's count
    pub conversion_from_previous: Option<f64>,
    /// Seconds from the previous step the chain did, over conversions that took more than
    /// 0 s.
    pub average_time_s: Option<f64>,
    pub median_time_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct BreakdownRow {
    pub value: String,
    pub steps: Vec<StepResult>,
}

/// Time-to-convert buckets `[start seconds, persons]` (semantics.md §3.9).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Histogram {
    pub bins: Vec<(f64, u64)>,
    pub average_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelResult {
    /// What the counts count.
    pub count: FunnelCount,
    pub steps: Vec<StepResult>,
    pub breakdown: Vec<BreakdownRow>,
    pub time_to_convert: Histogram,
    /// Conversion per entry period (`display: trends`).
    pub trends: Option<FunnelTrends>,
    /// Said whenever values were merged into "Other".
    pub notes: Vec<String>,
    pub sql: String,
    pub millis: f64,
}

/// Funnel trends: per period in which units entered (their chain's first step, workspace
/// time zone), how many got to `from_step` and how many of those to `to_step`.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelTrends {
    pub interval: Interval,
    pub from_step: usize,
    pub to_step: usize,
    pub periods: Vec<FunnelTrendPeriod>,
    /// The same periods per breakdown value (the funnel's breakdown rows, in their order,
    /// "Other" included), when broken down.
    pub breakdown: Vec<FunnelTrendSeries>,
}

/// Funnel trends for one breakdown value.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelTrendSeries {
    pub value: String,
    pub periods: Vec<FunnelTrendPeriod>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct FunnelTrendPeriod {
    /// The period's local start date.
    pub date: String,
    pub entered: u64,
    pub converted: u64,
    /// converted / entered (None when nobody entered).
    pub conversion_rate: Option<f64>,
    /// False while an entry in this period could still convert: its window has not ended
    /// by `now` (or, with `bound_all_steps`, by the range's end). The rate can still rise.
    pub complete: bool,
}

/// One counted unit (a person, an attempt or a session), kept for drill-down.
#[derive(Debug, Clone)]
pub struct PersonOutcome {
    pub person_id: String,
    pub value: String,
    pub result: ActorResult,
}

/// One unit that entered a funnel-trends period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendCell {
    pub period: usize,
    pub person_id: String,
    /// The breakdown value ("" when not broken down).
    pub value: String,
    pub converted: bool,
}

/// Everything behind a funnel's numbers.
#[derive(Debug, Clone)]
pub struct FunnelDetail {
    pub outcomes: Vec<PersonOutcome>,
    pub trend_cells: Vec<TrendCell>,
    rules: Rules,
    /// The breakdown values shown by name when the rest were merged into "Other".
    kept: Option<Vec<String>>,
    /// A cohort breakdown's members, by cohort.
    cohorts: BTreeMap<String, BTreeSet<String>>,
}

/// The loader's SQL: each person's events in range with their step numbers and breakdown.
/// `from` is [`super::query::events_with_persons`].
pub fn loader_sql(
    q: &FunnelQuery,
    from: &str,
    from_us: i64,
    to_us: i64,
    scope: &Sql,
) -> Result<Sql> {
    let mut s = Sql::new("SELECT ep.person_id, epoch_us(e.ts_utc) AS t, e.event_seq, ");
    push_steps(&mut s, q, "e.event_name")?;
    s.push(" AS steps, ");
    match q.property_breakdown() {
        Some(b) => push_property(&mut s, b.source, &b.property),
        None => {
            s.push("NULL::VARCHAR");
        }
    }
    s.push(" AS bd, ");
    if q.hold_constant.is_empty() {
        s.push("NULL::VARCHAR[]");
    } else {
        s.push("[");
        for (i, key) in q.hold_constant.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            push_property(&mut s, PropertySource::Event, key);
        }
        s.push("]");
    }
    s.push(if q.count == FunnelCount::Sessions {
        " AS hold, es.session_id AS sid FROM "
    } else {
        " AS hold, NULL::VARCHAR AS sid FROM "
    })
    .push(from);
    if q.count == FunnelCount::Sessions {
        s.push(" LEFT JOIN event_sessions es ON es.event_seq = e.event_seq");
    }
    let needs_person = q.filters.iter().any(|f| f.source == PropertySource::Person)
        || q.steps
            .iter()
            .flat_map(|s| &s.filters)
            .any(|f| f.source == PropertySource::Person)
        || q.property_breakdown()
            .is_some_and(|b| b.source == PropertySource::Person);
    if needs_person {
        s.push(" LEFT JOIN persons p ON p.person_id = ep.person_id");
    }
    s.push(" WHERE ep.person_id IS NOT NULL AND e.ts_utc >= make_timestamptz(")
        .bind(from_us)
        .push(") AND e.ts_utc <= make_timestamptz(")
        .bind(if q.bound_all_steps {
            to_us
        } else {
            to_us.saturating_add(q.window_us())
        })
        .push(")");
    if q.order != FunnelOrder::Strict {
        s.push(" AND e.event_name");
        push_entry_names(&mut s, &entries(q));
    }
    s.push(" AND ");
    push_filters(&mut s, &q.filters)?;
    s.embed(scope);
    s.push(" ORDER BY ep.person_id, t, e.event_seq");
    Ok(s)
}

/// The loader's SQL from the insight facts, when they answer the query exactly: filters
/// only on the facts' property columns, no held properties, no sessions, no cohort scope,
/// and a breakdown (if any) on an event property stored as a facts column. Rows of (pid,
/// time, event_seq, mask, breakdown value), the person as its `person_index.pid`, in
/// person_id order (`person_index` is numbered in that order); bit `i` of the mask says
/// the event matches entry `i` of [`entries`].
fn fact_loader_sql(q: &FunnelQuery, from_us: i64, to_us: i64) -> Result<Option<FactLoader>> {
    let filters_on_facts = super::facts::on_facts(
        q.filters
            .iter()
            .chain(q.steps.iter().flat_map(|s| &s.filters)),
    );
    if !filters_on_facts
        || !q.hold_constant.is_empty()
        || q.count == FunnelCount::Sessions
        || q.scope.cohort.is_some()
        || q.scope.exclude_cohort.is_some()
    {
        return Ok(None);
    }
    let bd = match q.property_breakdown() {
        None => None,
        Some(b) => match super::facts::column_of(b.source, &b.property) {
            Some(c) => Some(c),
            None => return Ok(None),
        },
    };
    let entries = entries(q);
    if entries.len() > 62 {
        return Ok(None);
    }
    let mut s = Sql::new("SELECT x.pid, x.ts_us AS t, x.event_seq, (");
    for (i, (_, event, filters)) in entries.iter().enumerate() {
        if i > 0 {
            s.push(" + ");
        }
        s.push("CASE WHEN x.event_name = ")
            .bind(event.to_string())
            .push(" AND ");
        super::facts::push_filters(&mut s, "x", filters)?;
        s.push(&format!(" THEN {} ELSE 0 END", 1i64 << i));
    }
    s.push(")::BIGINT AS mask, ");
    match bd {
        Some(c) => {
            s.push("x.").push(c);
        }
        None => {
            s.push("NULL::VARCHAR");
        }
    }
    s.push(" AS bd FROM event_facts x WHERE x.ts_us >= ")
        .bind(from_us)
        .push(" AND x.ts_us <= ")
        .bind(if q.bound_all_steps {
            to_us
        } else {
            to_us.saturating_add(q.window_us())
        });
    if q.order != FunnelOrder::Strict {
        s.push(" AND x.event_name");
        push_entry_names(&mut s, &entries);
    }
    s.push(" AND ");
    super::facts::push_filters(&mut s, "x", &q.filters)?;
    s.push(" ORDER BY x.pid, t, x.event_seq");
    Ok(Some(FactLoader {
        sql: s,
        entries: entries.iter().map(|e| e.0).collect(),
    }))
}

/// [`fact_loader_sql`]'s query, and the step (or negative exclusion step) of each bit of
/// its rows' masks ([`entries`]' numbers).
struct FactLoader {
    sql: Sql,
    entries: Vec<i32>,
}

impl FactLoader {
    /// The steps of a mask, in [`entries`]' order.
    fn steps(&self, mask: i64) -> Vec<i32> {
        self.entries
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1i64 << i) != 0)
            .map(|(_, s)| *s)
            .collect()
    }
}

/// Read a [`FactLoader`]'s rows (as Arrow batches: a few columns of many rows) into
/// `collect`, persons as text ids.
fn load_facts(
    ws: &Workspace,
    loader: &FactLoader,
    collect: &mut Collector,
    detail: &mut FunnelDetail,
) -> Result<()> {
    use crate::sql::arrow_column;
    use duckdb::arrow::array::{Array, Int32Array, Int64Array, StringArray};
    use duckdb::arrow::datatypes::DataType;
    use std::collections::HashMap;
    let ids = super::facts::person_ids(ws)?;
    let mut known: HashMap<i64, Arc<[i32]>> = HashMap::new();
    let mut stmt = ws.conn().prepare(&loader.sql.text)?;
    for batch in stmt.query_arrow(duckdb::params_from_iter(loader.sql.params.iter()))? {
        let pid = arrow_column::<Int32Array>(&batch, 0, &DataType::Int32)?;
        let ts = arrow_column::<Int64Array>(&batch, 1, &DataType::Int64)?;
        let seq = arrow_column::<Int64Array>(&batch, 2, &DataType::Int64)?;
        let mask = arrow_column::<Int64Array>(&batch, 3, &DataType::Int64)?;
        let bd = arrow_column::<StringArray>(&batch, 4, &DataType::Utf8)?;
        for i in 0..batch.num_rows() {
            let person = super::facts::person_at(&ids, pid.value(i))?;
            // Few distinct masks: each one's steps are made once and shared.
            let m = mask.value(i);
            let steps = match known.get(&m) {
                Some(s) => s.clone(),
                None => {
                    let s: Arc<[i32]> = loader.steps(m).into();
                    known.insert(m, s.clone());
                    s
                }
            };
            let row = Row {
                ev: FunnelEvent {
                    ts_us: ts.value(i),
                    seq: seq.value(i),
                    steps,
                },
                bd: (!bd.is_null(i)).then(|| bd.value(i).to_string()),
                part: Some(Vec::new()),
            };
            collect.push(person, row, detail);
        }
    }
    Ok(())
}

/// Groups loaded rows (sorted by person) by person and runs [`evaluate`] on each person's
/// events.
struct Collector<'a> {
    ctx: &'a Context<'a>,
    current: Option<String>,
    events: Vec<Row>,
}

impl Collector<'_> {
    fn push(&mut self, person: &str, row: Row, detail: &mut FunnelDetail) {
        if self.current.as_deref() != Some(person) {
            if let Some(p) = self.current.take() {
                evaluate(self.ctx, &p, &self.events, detail);
            }
            self.events.clear();
            self.current = Some(person.to_string());
        }
        self.events.push(row);
    }

    fn finish(&mut self, detail: &mut FunnelDetail) {
        if let Some(p) = self.current.take() {
            evaluate(self.ctx, &p, &self.events, detail);
        }
        self.events.clear();
    }
}

/// What an event can match, in order: steps 1…N (with their filters), then each
/// exclusion's negative steps `-(k+1)` for the steps `k` it covers. Both loaders list an
/// event's matches in this order.
fn entries(q: &FunnelQuery) -> Vec<(i32, &str, &[PropertyFilter])> {
    let mut out: Vec<(i32, &str, &[PropertyFilter])> = (1..)
        .zip(&q.steps)
        .map(|(i, st)| (i, st.event.as_str(), st.filters.as_slice()))
        .collect();
    for x in &q.exclusions {
        for k in (x.from_step + 1)..=x.to_step {
            out.push((-((k + 1) as i32), x.event.as_str(), &[]));
        }
    }
    out
}

/// Push `IN (…)` of the event names of [`entries`] (each once).
fn push_entry_names(s: &mut Sql, entries: &[(i32, &str, &[PropertyFilter])]) {
    let mut names: Vec<&str> = entries.iter().map(|e| e.1).collect();
    names.sort_unstable();
    names.dedup();
    s.push(" IN ");
    super::query::push_in_list(s, names);
}

/// Push the list of the steps an event matches ([`entries`]' numbers), its name in
/// column `name`, its properties in `e.properties`.
fn push_steps(s: &mut Sql, q: &FunnelQuery, name: &str) -> Result<()> {
    s.push("list_filter([");
    for (i, (step, event, filters)) in entries(q).into_iter().enumerate() {
        if i > 0 {
            s.push(", ");
        }
        s.push("CASE WHEN ")
            .push(name)
            .push(" = ")
            .bind(event.to_string())
            .push(" AND ");
        push_filters(s, filters)?;
        s.push(&format!(" THEN {step} END"));
    }
    s.push("], lambda v: v IS NOT NULL)");
    Ok(())
}

/// One loaded event: what the machine sees, its breakdown value and its partition (None:
/// it lacks a held value or a session and takes no part).
struct Row {
    ev: FunnelEvent,
    bd: Option<String>,
    part: Option<Vec<String>>,
}

/// Funnel trends' periods: start instants of periods 0..=n (the last one ends period n−1).
struct Periods {
    starts: Vec<i64>,
    from: usize,
    to: usize,
}

impl Periods {
    fn of(&self, ts_us: i64) -> Option<usize> {
        let i = self.starts.partition_point(|s| *s <= ts_us);
        (i >= 1 && i < self.starts.len()).then(|| i - 1)
    }
}

/// What [`evaluate`] needs besides the person's events.
struct Context<'a> {
    q: &'a FunnelQuery,
    rules: Rules,
    to_us: i64,
    periods: Option<Periods>,
}

/// Run the funnel. `now_us` resolves relative dates and says which trend periods are
/// complete.
pub fn run(
    ws: &Workspace,
    q: &FunnelQuery,
    now_us: i64,
) -> Result<(FunnelResult, Arc<FunnelDetail>)> {
    q.validate()?;
    let started = Instant::now();
    let settings = ModelSettings::load(ws)?;
    let range = q.date_range.resolve(ws, now_us, &settings.time_zone)?;
    let mut properties: Vec<(PropertySource, &str)> = q
        .property_breakdown()
        .iter()
        .map(|b| (b.source, b.property.as_str()))
        .collect();
    properties.extend(
        q.hold_constant
            .iter()
            .map(|k| (PropertySource::Event, k.as_str())),
    );
    super::query::check_properties(
        ws,
        q.filters
            .iter()
            .chain(q.steps.iter().flat_map(|s| &s.filters)),
        &properties,
    )?;
    let periods = match q.display {
        FunnelDisplay::Steps => None,
        FunnelDisplay::Trends => {
            let f = super::activity::frame(ws, &q.date_range, q.interval, now_us)?;
            // One more start than periods: the end of the last one.
            Some(super::query::period_starts(
                ws,
                q.interval.unit(),
                &f.tz,
                f.range.from_us,
                f.sunday,
                f.periods + 1,
            )?)
        }
    };
    let (labels, periods): (Vec<String>, Option<Periods>) = match periods {
        Some(starts) => {
            let (from, to) = q.trend_steps();
            let (labels, starts) = starts.into_iter().unzip();
            (labels, Some(Periods { starts, from, to }))
        }
        None => (Vec::new(), None),
    };
    let fresh = super::facts::available(ws)?;
    let memo = if fresh {
        memo_key(ws, q, now_us)?
    } else {
        None
    };
    let fast = if fresh {
        fact_loader_sql(q, range.from_us, range.to_us)?
    } else {
        None
    };
    let mut rules = q.rules();
    if q.order == FunnelOrder::Unordered {
        // Any step can begin an any-order chain: only those beginning in range count.
        rules.entry_between = Some((i64::MIN, range.to_us.saturating_add(1)));
    }
    let ctx = Context {
        q,
        rules,
        to_us: range.to_us,
        periods,
    };
    let mut detail = FunnelDetail {
        outcomes: Vec::new(),
        trend_cells: Vec::new(),
        rules: ctx.rules.clone(),
        kept: None,
        cohorts: BTreeMap::new(),
    };
    let mut collect = Collector {
        ctx: &ctx,
        current: None,
        events: Vec::new(),
    };
    let sql = match fast {
        Some(loader) => {
            load_facts(ws, &loader, &mut collect, &mut detail)?;
            loader.sql
        }
        None => {
            let scope = super::cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?;
            let from = super::query::events_with_persons(ws)?;
            let sql = loader_sql(q, &from, range.from_us, range.to_us, &scope)?;
            let mut stmt = ws.conn().prepare(&sql.text)?;
            let mut rows = stmt.query(duckdb::params_from_iter(sql.params.iter()))?;
            while let Some(r) = rows.next()? {
                // Borrowed: most rows continue the current person (no allocation per row).
                let person = r.get_ref(0)?.as_str().map_err(|e| {
                    duckdb::Error::FromSqlConversionFailure(
                        0,
                        duckdb::types::Type::Text,
                        Box::new(e),
                    )
                })?;
                let steps: Vec<i32> = int_list(r.get(3)?)
                    .into_iter()
                    .filter_map(|i| i32::try_from(i).ok())
                    .collect();
                let hold = text_list(r.get(5)?);
                let sid: Option<String> = r.get(6)?;
                let part = match q.count {
                    FunnelCount::Sessions => sid.map(|s| vec![s]),
                    _ => Some(Vec::new()),
                }
                .and_then(|mut key| {
                    for v in hold {
                        key.push(v?);
                    }
                    Some(key)
                });
                let row = Row {
                    ev: FunnelEvent {
                        ts_us: r.get(1)?,
                        seq: r.get(2)?,
                        steps: steps.into(),
                    },
                    bd: r.get(4)?,
                    part,
                };
                collect.push(person, row, &mut detail);
            }
            sql
        }
    };
    collect.finish(&mut detail);
    let names: Vec<String> = q
        .steps
        .iter()
        .map(|s| s.name.clone().unwrap_or_else(|| s.event.clone()))
        .collect();
    let zero = q.include_zero_second_times;
    let rules = &ctx.rules;
    let steps = aggregate(&names, rules, detail.outcomes.iter(), zero);
    let mut notes = Vec::new();
    let breakdown = match q.property_breakdown() {
        None if !q.breakdown_cohorts().is_empty() => {
            // One row per cohort, over its members' units.
            let mut members = BTreeMap::new();
            for name in q.breakdown_cohorts() {
                let def = super::cohort::load(ws, name)?;
                let ids: BTreeSet<String> = super::cohort::member_ids(ws, &def, now_us)?
                    .into_iter()
                    .collect();
                members.insert(name.clone(), ids);
            }
            detail.cohorts = members;
            q.breakdown_cohorts()
                .iter()
                .map(|name| BreakdownRow {
                    value: name.clone(),
                    steps: aggregate(
                        &names,
                        rules,
                        detail
                            .outcomes
                            .iter()
                            .filter(|o| detail.in_row(&o.person_id, &o.value, name)),
                        zero,
                    ),
                })
                .collect()
        }
        None => Vec::new(),
        Some(b) => {
            let mut by: BTreeMap<&str, Vec<&PersonOutcome>> = BTreeMap::new();
            for o in &detail.outcomes {
                by.entry(o.value.as_str()).or_default().push(o);
            }
            let mut rows: Vec<BreakdownRow> = by
                .into_iter()
                .map(|(v, os)| BreakdownRow {
                    value: v.to_string(),
                    steps: aggregate(&names, rules, os.into_iter(), zero),
                })
                .collect();
            // Rank by the deepest step, then shallower ones (PostHog's ordering); a value
            // that is literally "Other" last, so that it joins the merged "Other" row.
            rows.sort_by(|a, b| {
                let ka: Vec<u64> = a.steps.iter().rev().map(|s| s.count).collect();
                let kb: Vec<u64> = b.steps.iter().rev().map(|s| s.count).collect();
                super::query::other_last(&a.value, &b.value)
                    .then_with(|| kb.cmp(&ka))
                    .then_with(|| a.value.cmp(&b.value))
            });
            let limit = b.limit.unwrap_or(25).max(1);
            if rows.len() > limit {
                let rest = rows.split_off(limit);
                notes.push(format!(
                    "{} more breakdown values were merged into \"Other\" (limit {limit})",
                    rest.len()
                ));
                let keep: Vec<&str> = rows.iter().map(|r| r.value.as_str()).collect();
                let other = aggregate(
                    &names,
                    rules,
                    detail
                        .outcomes
                        .iter()
                        .filter(|o| !keep.contains(&o.value.as_str())),
                    zero,
                );
                rows.push(BreakdownRow {
                    value: super::query::OTHER.into(),
                    steps: other,
                });
            }
            rows
        }
    };
    let n = q.steps.len();
    let time_to_convert = histogram(
        &detail
            .outcomes
            .iter()
            .filter(|o| o.result.reached >= n)
            .filter_map(|o| {
                let (a, b) = (o.result.entered_at()?, o.result.last_at()?);
                Some((b - a) as f64 / 1e6)
            })
            .collect::<Vec<_>>(),
    );
    if let Some(other) = breakdown
        .iter()
        .position(|r| r.value == super::query::OTHER)
    {
        detail.kept = Some(breakdown[..other].iter().map(|r| r.value.clone()).collect());
    }
    let trends = ctx.periods.as_ref().map(|p| {
        // Entries in a period can convert until its last instant (or the range's end) plus
        // the window; with bound_all_steps nothing after the range's end is seen.
        let horizon = if q.bound_all_steps {
            now_us.min(range.to_us)
        } else {
            now_us
        };
        let tally = |cells: &mut dyn Iterator<Item = &TrendCell>| -> Vec<FunnelTrendPeriod> {
            let mut periods: Vec<FunnelTrendPeriod> = labels
                .iter()
                .take(p.starts.len().saturating_sub(1))
                .enumerate()
                .map(|(i, date)| {
                    let last_entry = (p.starts[i + 1] - 1).min(range.to_us);
                    FunnelTrendPeriod {
                        date: date.clone(),
                        entered: 0,
                        converted: 0,
                        conversion_rate: None,
                        complete: last_entry.saturating_add(q.window_us()) <= horizon,
                    }
                })
                .collect();
            for c in cells {
                if let Some(period) = periods.get_mut(c.period) {
                    period.entered += 1;
                    period.converted += u64::from(c.converted);
                }
            }
            for period in &mut periods {
                period.conversion_rate = (period.entered > 0)
                    .then(|| period.converted as f64 / period.entered as f64);
            }
            periods
        };
        let periods = tally(&mut detail.trend_cells.iter());
        let incomplete = periods.iter().filter(|p| !p.complete).count();
        if incomplete > 0 {
            notes.push(format!(
                "the last {incomplete} period(s) are incomplete: their entries' conversion window runs past {}",
                if q.bound_all_steps { "now or the range's end (bound_all_steps)" } else { "now" }
            ));
        }
        // Per breakdown row, in the rows' order ("Other": the values not kept).
        let series = breakdown
            .iter()
            .map(|row| FunnelTrendSeries {
                value: row.value.clone(),
                periods: tally(
                    &mut detail
                        .trend_cells
                        .iter()
                        .filter(|c| detail.in_row(&c.person_id, &c.value, &row.value)),
                ),
            })
            .collect();
        FunnelTrends {
            interval: q.interval,
            from_step: p.from,
            to_step: p.to,
            periods,
            breakdown: series,
        }
    });
    let detail = Arc::new(detail);
    if let Some(key) = memo {
        ws.memo_put(key, detail.clone());
    }
    Ok((
        FunnelResult {
            count: q.count,
            steps,
            breakdown,
            time_to_convert,
            trends,
            notes,
            sql: sql.text.clone(),
            millis: started.elapsed().as_secs_f64() * 1000.0,
        },
        detail,
    ))
}

/// What a funnel's outcomes are remembered under (see [`detail`]): the query, `now` and
/// the model build. None (not remembered) while the model is not fresh, or with a cohort
/// scope or breakdown (a saved cohort can change without a rebuild).
fn memo_key(ws: &Workspace, q: &FunnelQuery, now_us: i64) -> Result<Option<String>> {
    if q.scope.cohort.is_some()
        || q.scope.exclude_cohort.is_some()
        || !q.breakdown_cohorts().is_empty()
    {
        return Ok(None);
    }
    let built: Option<String> = ws.conn().query_row(
        "SELECT CAST(max(built_at) AS VARCHAR) FROM model_state",
        [],
        |r| r.get(0),
    )?;
    let query = serde_json::to_string(q).map_err(|e| EngineError::Internal(e.to_string()))?;
    Ok(built.map(|b| format!("funnel\u{1f}{b}\u{1f}{now_us}\u{1f}{query}")))
}

/// The persons behind a funnel's numbers: those of the last [`run`] of the same query at
/// the same `now` on the same model build (a drill-down right after the insight), else a
/// new run.
pub fn detail(ws: &Workspace, q: &FunnelQuery, now_us: i64) -> Result<Arc<FunnelDetail>> {
    q.validate()?;
    if super::facts::available(ws)? {
        if let Some(key) = memo_key(ws, q, now_us)? {
            if let Some(d) = ws.memo_get::<FunnelDetail>(&key) {
                return Ok(d);
            }
        }
    }
    Ok(run(ws, q, now_us)?.1)
}

/// Which steps an event counts for under one breakdown value (None: the event is left out).
type StepsOf<'a> = dyn Fn(&FunnelEvent, &Option<String>) -> Option<Arc<[i32]>> + 'a;

/// The counted units of one person's events (already cut to one breakdown value): the
/// machine runs on each partition; persons and sessions keep their best chain (PostHog's
/// `max_step` rule, partitions in key order), totals every attempt. Units that never
/// entered, or whose best chain was excluded, are left out.
fn units(ctx: &Context, rules: &Rules, events: &[(FunnelEvent, &Row)]) -> Vec<ActorResult> {
    let mut parts: BTreeMap<&[String], Vec<FunnelEvent>> = BTreeMap::new();
    if events
        .iter()
        .all(|(_, row)| row.part.as_deref() == Some(&[]))
    {
        // One partition (no sessions, nothing held): all the events.
        parts.insert(&[], events.iter().map(|(e, _)| e.clone()).collect());
    } else {
        for (e, row) in events {
            if let Some(key) = &row.part {
                parts.entry(key.as_slice()).or_default().push(e.clone());
            }
        }
    }
    let mut out: Vec<ActorResult> = Vec::new();
    match ctx.q.count {
        FunnelCount::Totals => {
            for evs in parts.values() {
                out.extend(funnel_steps::attempts(evs, rules));
            }
        }
        FunnelCount::Persons | FunnelCount::Sessions => {
            // Persons: one group; sessions: a group per session (the key's first value).
            let mut best: BTreeMap<Option<&String>, ActorResult> = BTreeMap::new();
            for (key, evs) in &parts {
                let group = match ctx.q.count {
                    FunnelCount::Sessions => key.first(),
                    _ => None,
                };
                let r = funnel_steps::run(evs, rules);
                match best.get(&group) {
                    Some(b) if !r.beats(b) => {}
                    _ => {
                        best.insert(group, r);
                    }
                }
            }
            out.extend(best.into_values());
        }
    }
    out.retain(|r| r.reached >= 1 && !r.excluded);
    out
}

/// Run the machine for one person, per breakdown value as the attribution says; with
/// funnel trends, once more per entry period (and value).
fn evaluate(ctx: &Context, person: &str, events: &[Row], detail: &mut FunnelDetail) {
    let q = ctx.q;
    let to_us = ctx.to_us;
    // Only events inside the date range may enter the funnel.
    let prepared = |keep: &StepsOf| {
        events
            .iter()
            .filter_map(|row| {
                let e = &row.ev;
                let mut steps = keep(e, &row.bd)?;
                // (Any order: the rules' entry bound does this, for every step.)
                if e.ts_us > to_us && q.order != FunnelOrder::Unordered && steps.contains(&1) {
                    steps = steps.iter().copied().filter(|s| *s != 1).collect();
                }
                Some((
                    FunnelEvent {
                        ts_us: e.ts_us,
                        seq: e.seq,
                        steps,
                    },
                    row,
                ))
            })
            .collect::<Vec<_>>()
    };
    let funnel_value = |first: bool| -> String {
        let mut it = events
            .iter()
            .filter(|row| row.bd.is_some() && row.ev.steps.iter().any(|s| *s > 0));
        let v = if first { it.next() } else { it.next_back() };
        v.and_then(|row| row.bd.clone()).unwrap_or_default()
    };
    let all = |e: &FunnelEvent, _: &Option<String>| Some(e.steps.clone());
    // (breakdown value, the events as the machine sees them under it)
    let mut runs: Vec<(String, Vec<(FunnelEvent, &Row)>)> = Vec::new();
    match q.property_breakdown().map(|b| &b.attribution) {
        None => runs.push((String::new(), prepared(&all))),
        Some(Attribution::FirstTouch) => runs.push((funnel_value(true), prepared(&all))),
        Some(Attribution::LastTouch) => runs.push((funnel_value(false), prepared(&all))),
        Some(Attribution::Step { step }) => {
            let k = (*step + 1) as i32;
            let mut values: Vec<String> = events
                .iter()
                .filter(|row| row.ev.steps.contains(&k))
                .map(|row| row.bd.clone().unwrap_or_default())
                .collect();
            values.sort();
            values.dedup();
            for v in values {
                let evs = prepared(&|e, bd| {
                    if bd.as_deref().unwrap_or_default() != v {
                        Some(e.steps.iter().copied().filter(|x| *x != k).collect())
                    } else {
                        Some(e.steps.clone())
                    }
                });
                runs.push((v, evs));
            }
        }
        Some(Attribution::AllEvents) => {
            let mut values: Vec<String> = events.iter().filter_map(|row| row.bd.clone()).collect();
            values.sort();
            values.dedup();
            for v in values {
                let evs =
                    prepared(&|e, bd| (bd.as_deref() == Some(v.as_str())).then(|| e.steps.clone()));
                runs.push((v, evs));
            }
        }
    }
    for (value, evs) in runs {
        let first_outcome = detail.outcomes.len();
        for result in units(ctx, &ctx.rules, &evs) {
            detail.outcomes.push(PersonOutcome {
                person_id: person.to_string(),
                value: value.clone(),
                result,
            });
        }
        if let Some(periods) = &ctx.periods {
            trend_cells(ctx, periods, person, &value, &evs, first_outcome, detail);
        }
    }
}

/// Funnel trends for one person under one breakdown value. Totals: each attempt (the
/// person's outcomes from `first_outcome` on) in the period of its entry. Persons and
/// sessions (semantics.md §3.9): per period holding an event that can start one of the
/// person's chains, the machine runs with only chains starting in that period counted
/// ([`Rules::entry_between`]); each unit that got to `from` counts once there, converted if
/// it got to `to`, even when the conversion falls in a later period.
fn trend_cells(
    ctx: &Context,
    periods: &Periods,
    person: &str,
    value: &str,
    events: &[(FunnelEvent, &Row)],
    first_outcome: usize,
    detail: &mut FunnelDetail,
) {
    let rules = &ctx.rules;
    let (from, to) = (periods.from + 1, periods.to + 1);
    let mut cell = |period: usize, r: &ActorResult| {
        if rules.counts_at(r, from) {
            detail.trend_cells.push(TrendCell {
                period,
                person_id: person.to_string(),
                value: value.to_string(),
                converted: rules.counts_at(r, to),
            });
        }
    };
    if ctx.q.count == FunnelCount::Totals {
        let mine: Vec<ActorResult> = detail.outcomes[first_outcome..]
            .iter()
            .map(|o| o.result.clone())
            .collect();
        for r in &mine {
            if let Some(p) = r.entered_at().and_then(|t| periods.of(t)) {
                cell(p, r);
            }
        }
        return;
    }
    let entries: BTreeSet<usize> = events
        .iter()
        .filter(|(e, _)| rules.is_entry(e))
        .filter_map(|(e, _)| periods.of(e.ts_us))
        .collect();
    for p in entries {
        let mut rules = rules.clone();
        let hi = rules.entry_between.map_or(i64::MAX, |(_, hi)| hi);
        rules.entry_between = Some((periods.starts[p], periods.starts[p + 1].min(hi)));
        for r in units(ctx, &rules, events) {
            cell(p, &r);
        }
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// The nearest required step before 0-based step `i` (the basis of its step-to-step rate).
fn previous_required(rules: &Rules, i: usize) -> usize {
    (0..i)
        .rev()
        .find(|&j| !rules.is_optional(j + 1))
        .unwrap_or(0)
}

/// Step counts (cumulative: reached ≥ i; an optional step: did it), rates and times (0-second
/// conversions left out unless `zero_second_times`).
pub fn aggregate<'a>(
    names: &[String],
    rules: &Rules,
    outcomes: impl Iterator<Item = &'a PersonOutcome>,
    zero_second_times: bool,
) -> Vec<StepResult> {
    let n = names.len();
    let mut counts = vec![0u64; n];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
    for o in outcomes {
        let step_times = o.result.step_times();
        for i in 0..n {
            if !rules.counts_at(&o.result, i + 1) {
                continue;
            }
            counts[i] += 1;
            if let Some(Some(t)) = i.checked_sub(1).and_then(|j| step_times.get(j)) {
                if *t > 0.0 || zero_second_times {
                    times[i].push(*t);
                }
            }
        }
    }
    (0..n)
        .map(|i| {
            let t = &mut times[i];
            let basis = counts[previous_required(rules, i)];
            StepResult {
                index: i,
                name: names[i].clone(),
                optional: rules.is_optional(i + 1),
                count: counts[i],
                conversion_overall: (counts[0] > 0).then(|| counts[i] as f64 / counts[0] as f64),
                conversion_from_previous: if i == 0 {
                    (counts[0] > 0).then_some(1.0)
                } else {
                    (basis > 0).then(|| counts[i] as f64 / basis as f64)
                },
                average_time_s: (!t.is_empty()).then(|| t.iter().sum::<f64>() / t.len() as f64),
                median_time_s: median(t),
            }
        })
        .collect()
}

/// Time-to-convert bins: `clamp(ceil(cbrt n), 1, 60)` bins of width `ceil((max−min)/bins)`
/// from `floor(min)`, bin_count + 1 bucket starts (semantics.md §3.9).
pub fn histogram(times: &[f64]) -> Histogram {
    if times.is_empty() {
        return Histogram {
            bins: Vec::new(),
            average_s: None,
        };
    }
    let n = times.len();
    let bins = ((n as f64).cbrt().ceil() as usize).clamp(1, 60);
    let min = times.iter().cloned().fold(f64::INFINITY, f64::min).floor();
    let max = times
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil();
    let mut width = ((max - min) / bins as f64).ceil();
    if width <= 0.0 {
        width = 60.0;
    }
    let mut counts = vec![0u64; bins + 1];
    for t in times {
        let i = (((t - min) / width).floor() as usize).min(bins);
        counts[i] += 1;
    }
    Histogram {
        bins: (0..=bins)
            .map(|i| ((min + i as f64 * width).round(), counts[i]))
            .collect(),
        average_s: Some(times.iter().sum::<f64>() / n as f64),
    }
}

/// Which units of a funnel-trends period: all that entered, those that converted, those
/// that did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendPersons {
    Entered,
    Converted,
    Dropped,
}

/// A drillable funnel number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunnelCell {
    /// `2` (counted at step 2), `-2` (dropped off before it), `2@value`.
    Step { step: i64, value: Option<String> },
    /// `period:3:converted` (`:dropped`, `:entered`), 0-based, with `display: trends`;
    /// `period:3:converted@value` for one breakdown value.
    Period {
        period: usize,
        which: TrendPersons,
        value: Option<String>,
    },
}

impl FunnelCell {
    pub fn parse(q: &FunnelQuery, cell: &str) -> Result<Self> {
        let bad = |message: String| EngineError::InvalidQuery {
            code: "drill_cell",
            message,
        };
        let Some(rest) = cell.trim().strip_prefix("period:") else {
            let (step, value) = match cell.split_once('@') {
                Some((s, v)) => (s, Some(v.to_string())),
                None => (cell, None),
            };
            let step = step.trim().parse().map_err(|_| {
                bad(format!(
                    "\"{cell}\" is not a funnel step such as 2, -2 or 2@Chrome"
                ))
            })?;
            return Ok(FunnelCell::Step { step, value });
        };
        if q.display != FunnelDisplay::Trends {
            return Err(bad("period cells need a funnel with display: trends".into()));
        }
        let not_a_period = || {
            bad(format!(
                "\"{cell}\" is not a funnel-trends cell such as period:3:converted (or :dropped, :entered)"
            ))
        };
        let (rest, value) = match rest.split_once('@') {
            Some((r, v)) => (r, Some(v.to_string())),
            None => (rest, None),
        };
        let (p, which) = rest.split_once(':').ok_or_else(not_a_period)?;
        let period = p.trim().parse().map_err(|_| not_a_period())?;
        let which = match which.trim() {
            "entered" => TrendPersons::Entered,
            "converted" => TrendPersons::Converted,
            "dropped" => TrendPersons::Dropped,
            _ => return Err(not_a_period()),
        };
        Ok(FunnelCell::Period {
            period,
            which,
            value,
        })
    }
}

impl FunnelDetail {
    /// The persons behind a cell, sorted, each once.
    pub fn persons(&self, cell: &FunnelCell) -> Result<Vec<String>> {
        match cell {
            FunnelCell::Step { step, value } => self.persons_at(*step, value.as_deref()),
            FunnelCell::Period {
                period,
                which,
                value,
            } => Ok(self.trend_persons(*period, *which, value.as_deref())),
        }
    }

    /// The persons behind a step: `step > 0` counted at 1-based step `step`; `step < 0`
    /// counted at the required step before `|step|` but not at `|step|` (dropped off before
    /// it; semantics.md §3.9). Sorted, each person once.
    pub fn persons_at(&self, step: i64, value: Option<&str>) -> Result<Vec<String>> {
        let n = self.rules.n_steps;
        let k = step.unsigned_abs() as usize;
        if step == 0 || step == -1 || k > n {
            return Err(EngineError::InvalidQuery {
                code: "funnel_step",
                message: format!(
                    "a step is 1 … {n} (reached it) or −2 … −{n} (dropped off before it)"
                ),
            });
        }
        let basis = previous_required(&self.rules, k - 1) + 1;
        let ids = self
            .outcomes
            .iter()
            .filter(|o| value.is_none_or(|v| self.in_row(&o.person_id, &o.value, v)))
            .filter(|o| {
                if step > 0 {
                    self.rules.counts_at(&o.result, k)
                } else {
                    self.rules.counts_at(&o.result, basis) && !self.rules.counts_at(&o.result, k)
                }
            })
            .map(|o| o.person_id.as_str());
        Ok(sorted_unique(ids))
    }

    /// Whether a person's unit with breakdown value `value` belongs to the row shown as
    /// `row`: a cohort row holds its members, "Other" every value not shown by name.
    fn in_row(&self, person: &str, value: &str, row: &str) -> bool {
        if let Some(members) = self.cohorts.get(row) {
            return members.contains(person);
        }
        match &self.kept {
            Some(kept) if row == super::query::OTHER => !kept.iter().any(|k| k == value),
            _ => value == row,
        }
    }

    /// The persons behind a funnel-trends period (0-based), of one breakdown row when
    /// `value` is given; sorted, each once.
    pub fn trend_persons(
        &self,
        period: usize,
        which: TrendPersons,
        value: Option<&str>,
    ) -> Vec<String> {
        sorted_unique(
            self.trend_cells
                .iter()
                .filter(|c| c.period == period)
                .filter(|c| value.is_none_or(|v| self.in_row(&c.person_id, &c.value, v)))
                .filter(|c| match which {
                    TrendPersons::Entered => true,
                    TrendPersons::Converted => c.converted,
                    TrendPersons::Dropped => !c.converted,
                })
                .map(|c| c.person_id.as_str()),
        )
    }
}

fn sorted_unique<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    ids.map(str::to_string)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}
