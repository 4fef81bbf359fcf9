//! Funnels (semantics.md §3): SQL collects each person's matching events in time order with
//! the steps they match; the state machine in [`super::funnel_steps`] runs per person in Rust;
//! results aggregate to step counts, conversion rates, times, a time-to-convert histogram,
//! breakdowns and the persons behind every step.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::funnel_steps::{self, ExclusionMode, FunnelEvent, Order};
use super::query::{
    int_list, push_filters, push_property, DateRange, PropertyFilter, PropertySource,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Breakdown {
    pub property: String,
    #[serde(default)]
    pub source: PropertySource,
    #[serde(default = "first_touch")]
    pub attribution: Attribution,
    /// At most this many values; the rest are merged into "Other" (default 25).
    #[serde(default)]
    pub limit: Option<usize>,
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
    /// Only members of a saved cohort, minus members of another.
    #[serde(flatten)]
    #[ts(flatten)]
    pub scope: super::cohort::Scope,
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
        let unit: i64 = match self.window_unit {
            WindowUnit::Second => 1,
            WindowUnit::Minute => 60,
            WindowUnit::Hour => 3600,
            WindowUnit::Day => 86_400,
            WindowUnit::Week => 7 * 86_400,
            WindowUnit::Month => 30 * 86_400,
        };
        self.window.saturating_mul(unit).saturating_mul(1_000_000)
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
        if let Some(Breakdown {
            attribution: Attribution::Step { step },
            ..
        }) = &self.breakdown
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
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StepResult {
    pub index: usize,
    pub name: String,
    pub count: u64,
    /// count / first step's count
    pub conversion_overall: Option<f64>,
    /// count / previous step's count
    pub conversion_from_previous: Option<f64>,
    /// Seconds from the previous step, over conversions that took more than 0 s.
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
    pub steps: Vec<StepResult>,
    pub breakdown: Vec<BreakdownRow>,
    pub time_to_convert: Histogram,
    /// Said whenever values were merged into "Other".
    pub notes: Vec<String>,
    pub sql: String,
    pub millis: f64,
}

/// One person's outcome, kept for drill-down.
#[derive(Debug, Clone)]
pub struct PersonOutcome {
    pub person_id: String,
    pub value: String,
    pub reached: usize,
    pub step_times: Vec<f64>,
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
    let mut s =
        Sql::new("SELECT ep.person_id, epoch_us(e.ts_utc) AS t, e.event_seq, list_filter([");
    for (i, st) in q.steps.iter().enumerate() {
        if i > 0 {
            s.push(", ");
        }
        s.push("CASE WHEN e.event_name = ")
            .bind(st.event.clone())
            .push(" AND ");
        push_filters(&mut s, &st.filters)?;
        s.push(&format!(" THEN {} END", i + 1));
    }
    for x in &q.exclusions {
        for k in (x.from_step + 1)..=x.to_step {
            s.push(", CASE WHEN e.event_name = ")
                .bind(x.event.clone())
                .push(&format!(" THEN {} END", -((k + 1) as i64)));
        }
    }
    s.push("], lambda v: v IS NOT NULL) AS steps, ");
    match &q.breakdown {
        Some(b) => push_property(&mut s, b.source, &b.property),
        None => {
            s.push("NULL::VARCHAR");
        }
    }
    s.push(" AS bd FROM ").push(from);
    let needs_person = q.filters.iter().any(|f| f.source == PropertySource::Person)
        || q.steps
            .iter()
            .flat_map(|s| &s.filters)
            .any(|f| f.source == PropertySource::Person)
        || q.breakdown
            .as_ref()
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
        s.push(" AND e.event_name IN ");
        let mut names: Vec<&str> = q.steps.iter().map(|s| s.event.as_str()).collect();
        names.extend(q.exclusions.iter().map(|x| x.event.as_str()));
        names.sort_unstable();
        names.dedup();
        super::query::push_in_list(&mut s, names);
    }
    s.push(" AND ");
    push_filters(&mut s, &q.filters)?;
    s.embed(scope);
    s.push(" ORDER BY ep.person_id, t, e.event_seq");
    Ok(s)
}

/// Run the funnel. `now_us` resolves relative dates.
pub fn run(
    ws: &Workspace,
    q: &FunnelQuery,
    now_us: i64,
) -> Result<(FunnelResult, Vec<PersonOutcome>)> {
    q.validate()?;
    let started = Instant::now();
    let settings = ModelSettings::load(ws)?;
    let range = q.date_range.resolve(ws, now_us, &settings.time_zone)?;
    let breakdown: Vec<(PropertySource, &str)> = q
        .breakdown
        .iter()
        .map(|b| (b.source, b.property.as_str()))
        .collect();
    super::query::check_properties(
        ws,
        q.filters
            .iter()
            .chain(q.steps.iter().flat_map(|s| &s.filters)),
        &breakdown,
    )?;
    let scope = super::cohort::scope_sql(ws, &q.scope, "ep.person_id", now_us)?;
    let from = super::query::events_with_persons(ws)?;
    let sql = loader_sql(q, &from, range.from_us, range.to_us, &scope)?;
    let mut stmt = ws.conn().prepare(&sql.text)?;
    let mut rows = stmt.query(duckdb::params_from_iter(sql.params.iter()))?;
    let n = q.steps.len();
    let mut outcomes: Vec<PersonOutcome> = Vec::new();
    let mut current: Option<String> = None;
    let mut events: Vec<(FunnelEvent, Option<String>)> = Vec::new();
    while let Some(r) = rows.next()? {
        let person: String = r.get(0)?;
        let ts: i64 = r.get(1)?;
        let seq: i64 = r.get(2)?;
        let steps: Vec<i32> = int_list(r.get(3)?)
            .into_iter()
            .filter_map(|i| i32::try_from(i).ok())
            .collect();
        let bd: Option<String> = r.get(4)?;
        if current.as_deref() != Some(person.as_str()) {
            if let Some(p) = current.take() {
                evaluate(q, &p, &events, range.to_us, n, &mut outcomes);
            }
            events.clear();
            current = Some(person);
        }
        events.push((
            FunnelEvent {
                ts_us: ts,
                seq,
                steps,
            },
            bd,
        ));
    }
    if let Some(p) = current.take() {
        evaluate(q, &p, &events, range.to_us, n, &mut outcomes);
    }
    let names: Vec<String> = q
        .steps
        .iter()
        .map(|s| s.name.clone().unwrap_or_else(|| s.event.clone()))
        .collect();
    let zero = q.include_zero_second_times;
    let steps = aggregate(&names, outcomes.iter(), zero);
    let mut notes = Vec::new();
    let breakdown = match &q.breakdown {
        None => Vec::new(),
        Some(b) => {
            let mut by: BTreeMap<&str, Vec<&PersonOutcome>> = BTreeMap::new();
            for o in &outcomes {
                by.entry(o.value.as_str()).or_default().push(o);
            }
            let mut rows: Vec<BreakdownRow> = by
                .into_iter()
                .map(|(v, os)| BreakdownRow {
                    value: v.to_string(),
                    steps: aggregate(&names, os.into_iter(), zero),
                })
                .collect();
            // Rank by the deepest step, then shallower ones (PostHog's ordering).
            rows.sort_by(|a, b| {
                let ka: Vec<u64> = a.steps.iter().rev().map(|s| s.count).collect();
                let kb: Vec<u64> = b.steps.iter().rev().map(|s| s.count).collect();
                kb.cmp(&ka).then_with(|| a.value.cmp(&b.value))
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
                    outcomes
                        .iter()
                        .filter(|o| !keep.contains(&o.value.as_str())),
                    zero,
                );
                rows.push(BreakdownRow {
                    value: "Other".into(),
                    steps: other,
                });
            }
            rows
        }
    };
    let time_to_convert = histogram(
        &outcomes
            .iter()
            .filter(|o| o.reached >= n)
            .map(|o| o.step_times.iter().sum::<f64>())
            .collect::<Vec<_>>(),
    );
    Ok((
        FunnelResult {
            steps,
            breakdown,
            time_to_convert,
            notes,
            sql: sql.text.clone(),
            millis: started.elapsed().as_secs_f64() * 1000.0,
        },
        outcomes,
    ))
}

/// Which steps an event counts for under one breakdown value (None: the event is left out).
type StepsOf<'a> = dyn Fn(&FunnelEvent, &Option<String>) -> Option<Vec<i32>> + 'a;

/// Run the machine for one person, per breakdown value as the attribution says.
fn evaluate(
    q: &FunnelQuery,
    person: &str,
    events: &[(FunnelEvent, Option<String>)],
    to_us: i64,
    n: usize,
    out: &mut Vec<PersonOutcome>,
) {
    let order = match q.order {
        FunnelOrder::Ordered => Order::Ordered,
        FunnelOrder::Strict => Order::Strict,
        FunnelOrder::Unordered => Order::Unordered,
    };
    let mode = match q.exclusion_behaviour {
        ExclusionBehaviour::DropPerson => ExclusionMode::DropActor,
        ExclusionBehaviour::EndAttempt => ExclusionMode::EndAttempt,
    };
    let window = q.window_us();
    // Only events inside the date range may enter the funnel.
    let prepared = |keep: &StepsOf| {
        events
            .iter()
            .filter_map(|(e, bd)| {
                let mut steps = keep(e, bd)?;
                if e.ts_us > to_us {
                    steps.retain(|s| *s != 1);
                }
                Some(FunnelEvent {
                    ts_us: e.ts_us,
                    seq: e.seq,
                    steps,
                })
            })
            .collect::<Vec<_>>()
    };
    let mut push = |value: String, evs: Vec<FunnelEvent>| {
        let r = funnel_steps::run(&evs, n, window, order, mode);
        if let Some(reached) = r.reached {
            if reached >= 1 {
                out.push(PersonOutcome {
                    person_id: person.to_string(),
                    value,
                    reached,
                    step_times: r.step_times,
                });
            }
        }
    };
    let funnel_value = |first: bool| -> String {
        let mut it = events
            .iter()
            .filter(|(e, bd)| bd.is_some() && e.steps.iter().any(|s| *s > 0));
        let v = if first { it.next() } else { it.next_back() };
        v.and_then(|(_, bd)| bd.clone()).unwrap_or_default()
    };
    match q.breakdown.as_ref().map(|b| &b.attribution) {
        None => push(String::new(), prepared(&|e, _| Some(e.steps.clone()))),
        Some(Attribution::FirstTouch) => {
            push(funnel_value(true), prepared(&|e, _| Some(e.steps.clone())))
        }
        Some(Attribution::LastTouch) => {
            push(funnel_value(false), prepared(&|e, _| Some(e.steps.clone())))
        }
        Some(Attribution::Step { step }) => {
            let k = (*step + 1) as i32;
            let mut values: Vec<String> = events
                .iter()
                .filter(|(e, _)| e.steps.contains(&k))
                .map(|(_, bd)| bd.clone().unwrap_or_default())
                .collect();
            values.sort();
            values.dedup();
            for v in values {
                let evs = prepared(&|e, bd| {
                    let mut s = e.steps.clone();
                    if bd.clone().unwrap_or_default() != v {
                        s.retain(|x| *x != k);
                    }
                    Some(s)
                });
                push(v.clone(), evs);
            }
        }
        Some(Attribution::AllEvents) => {
            let mut values: Vec<String> = events.iter().filter_map(|(_, bd)| bd.clone()).collect();
            values.sort();
            values.dedup();
            for v in values {
                let evs =
                    prepared(&|e, bd| (bd.as_deref() == Some(v.as_str())).then(|| e.steps.clone()));
                push(v.clone(), evs);
            }
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

/// Step counts (cumulative: reached ≥ i), rates and times (0-second conversions left out
/// unless `zero_second_times`).
pub fn aggregate<'a>(
    names: &[String],
    outcomes: impl Iterator<Item = &'a PersonOutcome>,
    zero_second_times: bool,
) -> Vec<StepResult> {
    let n = names.len();
    let mut counts = vec![0u64; n];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); n];
    for o in outcomes {
        for i in 0..o.reached.min(n) {
            counts[i] += 1;
            if i >= 1 {
                if let Some(t) = o.step_times.get(i - 1) {
                    if *t > 0.0 || zero_second_times {
                        times[i].push(*t);
                    }
                }
            }
        }
    }
    (0..n)
        .map(|i| {
            let t = &mut times[i];
            StepResult {
                index: i,
                name: names[i].clone(),
                count: counts[i],
                conversion_overall: (counts[0] > 0).then(|| counts[i] as f64 / counts[0] as f64),
                conversion_from_previous: if i == 0 {
                    (counts[0] > 0).then_some(1.0)
                } else {
                    (counts[i - 1] > 0).then(|| counts[i] as f64 / counts[i - 1] as f64)
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

/// The persons behind a step: `step > 0` reached 1-based step `step`; `step < 0` reached
/// step `|step| − 1` and dropped off before `|step|` (semantics.md §3.9).
pub fn persons_at(
    outcomes: &[PersonOutcome],
    step: i64,
    value: Option<&str>,
) -> Result<Vec<String>> {
    if step == 0 || step == -1 {
        return Err(EngineError::InvalidQuery {
            code: "funnel_step",
            message: "a step is 1, 2, … (reached it) or −2, −3, … (dropped off before it)".into(),
        });
    }
    let mut seen: HashMap<&str, ()> = HashMap::new();
    let mut out: Vec<String> = outcomes
        .iter()
        .filter(|o| value.is_none_or(|v| o.value == v))
        .filter(|o| {
            if step > 0 {
                o.reached >= step as usize
            } else {
                o.reached == (-step - 1) as usize
            }
        })
        .filter(|o| seen.insert(o.person_id.as_str(), ()).is_none())
        .map(|o| o.person_id.clone())
        .collect();
    out.sort();
    Ok(out)
}
