//! What an insight is computed as of, and what it refuses (issue 17 items 2, 3 and 10):
//! `now` is the end of an export's data unless the workspace or the caller says otherwise, a
//! range outside the data is warned about, retention periods that are not over are never
//! counted as complete, and a misspelt event name is refused with the closest names.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use serde_json::{json, Value};
use stitchbook_engine::ingest::{import_paths, ImportOptions};
use stitchbook_engine::insights::cohort::{self, CohortDef};
use stitchbook_engine::insights::now::{self, NowMode, NowSource};
use stitchbook_engine::insights::retention::{self, RetentionQuery, RetentionResult};
use stitchbook_engine::insights::{self, facts, saved, InsightResult, Query};
use stitchbook_engine::model;
use stitchbook_engine::{EngineError, JobCtx, Workspace};

/// 2024-01-01T00:00:00Z (a Monday).
const DAY0: i64 = 1_704_067_200;
const D: i64 = 86_400;
/// The caller's clock: 2026-03-01T00:00:00Z, long after every fixture's data.
const CLOCK: i64 = 1_772_323_200_000_000;

fn us(seconds_after_day0: i64) -> i64 {
    (DAY0 + seconds_after_day0) * 1_000_000
}

fn ev(n: usize, at: i64, distinct: &str, event: &str, props: Value) -> Value {
    json!({
        "uuid": format!("00000000-0000-4000-8000-{n:012}"),
        "event": event,
        "distinct_id": distinct,
        "timestamp": stitchbook_engine::generate::rfc3339_micros(at * 1_000_000),
        "properties": props,
    })
}

fn ws_from(records: &[Value]) -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.jsonl");
    std::fs::write(
        &p,
        records.iter().map(|r| format!("{r}\n")).collect::<String>(),
    )
    .unwrap();
    let ws = Workspace::in_memory().unwrap();
    let r = import_paths(&ws, &[p], &ImportOptions::default(), &JobCtx::silent()).unwrap();
    assert_eq!(r.files[0].rows_quarantined, 0);
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    ws
}

/// Events as (seconds after 2024-01-01, person, event).
fn ws_of(events: &[(i64, &str, &str)]) -> Workspace {
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, (t, p, e))| ev(i + 1, DAY0 + t, p, e, json!({})))
        .collect();
    ws_from(&records)
}

fn code_and_message<T: std::fmt::Debug>(r: Result<T, EngineError>) -> (&'static str, String) {
    match r {
        Err(EngineError::InvalidQuery { code, message }) => (code, message),
        other => panic!("expected a refused query, got {other:?}"),
    }
}

fn query(v: Value) -> Query {
    serde_json::from_value(v).unwrap()
}

// ---- item 2: "now" for an export ----

/// Views on 2024-01-15 … 2024-01-21 (the last at 15:00), one person a day.
fn late_january() -> Workspace {
    let events: Vec<(i64, String, &str)> = (14..21)
        .map(|d| (d * D + 15 * 3600, format!("p{d}"), "view"))
        .collect();
    let refs: Vec<(i64, &str, &str)> = events
        .iter()
        .map(|(t, p, e)| (*t, p.as_str(), *e))
        .collect();
    ws_of(&refs)
}

#[test]
fn now_is_the_end_of_the_data_unless_the_setting_or_the_caller_says_otherwise() {
    let ws = late_january();
    let last = us(20 * D + 15 * 3600);
    let a = now::resolve(&ws, None, CLOCK).unwrap();
    assert_eq!(
        (a.now_us, a.source, a.date.as_str()),
        (last, NowSource::DataEnd, "2024-01-21")
    );
    assert_eq!(a.label, "as of 21 Jan 2024, the end of the data");
    // An explicit now wins.
    let given = us(3 * D);
    let a = now::resolve(&ws, Some(given), CLOCK).unwrap();
    assert_eq!((a.now_us, a.source), (given, NowSource::Given));
    // The wall-clock setting takes the caller's clock; an explicit now still wins.
    NowMode::set(&ws, "wall_clock").unwrap();
    assert_eq!(NowMode::load(&ws).unwrap(), NowMode::WallClock);
    let a = now::resolve(&ws, None, CLOCK).unwrap();
    assert_eq!((a.now_us, a.source), (CLOCK, NowSource::WallClock));
    assert_eq!(a.label, "as of now, 1 Mar 2026");
    assert_eq!(now::resolve(&ws, Some(given), CLOCK).unwrap().now_us, given);
    assert!(NowMode::set(&ws, "tomorrow").is_err());
    // Data dated after the clock: the clock, said so.
    NowMode::set(&ws, "data_end").unwrap();
    let a = now::resolve(&ws, None, us(10 * D)).unwrap();
    assert_eq!((a.now_us, a.source), (us(10 * D), NowSource::WallClock));
    assert!(a.label.contains("after the clock"), "{}", a.label);
}

fn weekly_views() -> Query {
    query(
        json!({"kind": "trends", "series": [{"event": "view", "math": "unique_persons"}],
        "date_range": {"from": "-6d"}, "interval": "day"}),
    )
}

fn total(r: &InsightResult) -> f64 {
    match r {
        InsightResult::Trends(t) => t.series[0].values.iter().sum(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_relative_range_counts_back_from_the_end_of_the_data() {
    let ws = late_january();
    let q = weekly_views();
    let a = insights::answer(&ws, &q, None, CLOCK).unwrap();
    assert_eq!(a.as_of.source, NowSource::DataEnd);
    assert_eq!(total(&a.result), 7.0, "-6d … now holds the last seven days");
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    // The answer says what it is computed as of, next to the result's own fields.
    let v = serde_json::to_value(&a).unwrap();
    assert_eq!(v["kind"], "trends");
    assert_eq!(v["asOf"]["label"], "as of 21 Jan 2024, the end of the data");
    assert!(v["series"].is_array() && v["warnings"].is_array());
    // A saved insight runs as of the same instant.
    saved::save(&ws, "last week", &q, CLOCK).unwrap();
    let again = saved::load_to_run(&ws, "last week").unwrap();
    let b = insights::answer(&ws, &again, None, CLOCK).unwrap();
    assert_eq!(total(&b.result), 7.0);
}

#[test]
fn a_range_wholly_outside_the_data_is_warned_about_not_silently_zero() {
    let ws = late_january();
    // On the wall clock, "-6d" is March 2026: nothing, and the answer says why.
    NowMode::set(&ws, "wall_clock").unwrap();
    let a = insights::answer(&ws, &weekly_views(), None, CLOCK).unwrap();
    assert_eq!(total(&a.result), 0.0);
    assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
    let w = &a.warnings[0];
    assert!(
        w.contains("after the data (15 Jan 2024 – 21 Jan 2024)") && w.contains("every number is 0"),
        "{w}"
    );
    assert!(
        w.contains("count back from now") && w.contains("insights.now"),
        "{w}"
    );
    // A fixed range before the data too; a range that overlaps it is not warned about.
    NowMode::set(&ws, "data_end").unwrap();
    for (range, warned) in [
        (json!({"from": "2023-01-01", "to": "2023-12-31"}), true),
        (json!({"from": "2024-01-21", "to": "2024-02-28"}), false),
    ] {
        let q = query(json!({"kind": "stickiness", "event": "view", "date_range": range}));
        let a = insights::answer(&ws, &q, None, CLOCK).unwrap();
        assert_eq!(!a.warnings.is_empty(), warned, "{range}: {:?}", a.warnings);
        if warned {
            assert!(
                a.warnings[0].contains("before the data"),
                "{:?}",
                a.warnings
            );
        }
    }
}

#[test]
fn cohorts_have_members_as_of_the_end_of_the_data() {
    let ws = late_january();
    let def: CohortDef = serde_json::from_value(json!({"criteria": [
        {"type": "performed", "event": "view", "within_days": 3}]}))
    .unwrap();
    let at = now::resolve(&ws, None, CLOCK).unwrap();
    // The views of Jan 19, 20 and 21 (15:00) are within 3 days of Jan 21 15:00; Jan 18's
    // is exactly 3 days before: out.
    assert_eq!(cohort::member_ids(&ws, &def, at.now_us).unwrap().len(), 3);
    assert!(cohort::member_ids(&ws, &def, CLOCK).unwrap().is_empty());
}

// ---- item 3: retention's incomplete periods (semantics.md §4.1, TV-RET-4) ----

/// semantics.md §4.4's data (u1: D0 D1 D2, u2: D0 D2, u3: D1, u4: D1 D2) with a browser on
/// each event and a plan on each person.
fn retention_ws() -> Workspace {
    let rows = [
        (10, "u1", "Chrome"),
        (D + 10, "u1", "Chrome"),
        (2 * D + 10, "u1", "Chrome"),
        (20, "u2", "Firefox"),
        (2 * D + 20, "u2", "Firefox"),
        (D + 30, "u3", "Chrome"),
        (D + 40, "u4", "Safari"),
        (2 * D + 40, "u4", "Safari"),
    ];
    let records: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (t, p, b))| {
            let plan = if *p == "u1" || *p == "u4" {
                "pro"
            } else {
                "free"
            };
            ev(
                i + 1,
                DAY0 + t,
                p,
                "$pageview",
                json!({"$browser": b, "$set": {"plan": plan}}),
            )
        })
        .collect();
    let ws = ws_from(&records);
    let def: CohortDef = serde_json::from_value(json!({"criteria": [
        {"type": "property", "filter": {"key": "plan", "op": "equals", "value": "pro"}}]}))
    .unwrap();
    cohort::save(&ws, "pro", &def, CLOCK).unwrap();
    ws
}

fn rq(extra: Value) -> RetentionQuery {
    let mut v = json!({"start": {"event": "$pageview"}, "returning": {"event": "$pageview"},
        "date_range": {"from": "2024-01-01", "to": "2024-01-03"}, "intervals": 3});
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

type Triangle = Vec<Vec<Option<u64>>>;

fn table(cohorts: &[retention::CohortRow]) -> Triangle {
    cohorts.iter().map(|c| c.values.clone()).collect()
}

/// Every table of a result (the whole, then each breakdown row's) with its means.
fn tables(r: &RetentionResult) -> Vec<(String, Triangle, Vec<Option<f64>>)> {
    let mut out = vec![(
        "all".to_string(),
        table(&r.cohorts),
        r.mean_weighted.clone(),
    )];
    for b in &r.breakdown {
        out.push((b.value.clone(), table(&b.cohorts), b.mean_weighted.clone()));
    }
    out
}

#[test]
fn tv_ret_4_the_period_holding_now_is_incomplete_and_left_out_of_the_mean() {
    let ws = retention_ws();
    // Now is D2 12:00: D2 is not over.
    let now = us(2 * D + 12 * 3600);
    let (r, _) = retention::run(&ws, &rq(json!({})), now).unwrap();
    assert_eq!(
        table(&r.cohorts),
        vec![
            vec![Some(2), Some(1), None],
            vec![Some(3), None, None],
            vec![None, None, None]
        ]
    );
    assert_eq!(r.cohorts[2].size, 3, "the cohort so far is still its size");
    // Period 1 from cohort D0 only; period 2 from none.
    assert_eq!(r.mean_simple, vec![Some(1.0), Some(0.5), None]);
    assert_eq!(r.mean_weighted, vec![Some(1.0), Some(0.5), None]);
}

#[test]
fn every_retention_mode_and_breakdown_leaves_out_the_period_holding_now() {
    let ws = retention_ws();
    let now = us(2 * D + 12 * 3600);
    let modes = [
        json!({}),
        json!({"retention_type": "first_time"}),
        json!({"cumulative": true}),
        json!({"time_window": "rolling24h"}),
        json!({"breakdown": {"property": "plan"}}),
        json!({"breakdown": {"property": "$browser", "source": "event"}}),
        json!({"breakdown": {"property": "$browser", "source": "event", "attribution": "all_events"}}),
        json!({"breakdown": {"cohorts": ["pro"]}}),
        json!({"cohort": "pro"}),
    ];
    for mode in modes {
        let q = rq(mode.clone());
        for general in [false, true] {
            let (r, _) = if general {
                facts::with_general_path(|| retention::run(&ws, &q, now))
            } else {
                retention::run(&ws, &q, now)
            }
            .unwrap();
            let all = tables(&r);
            assert!(
                all.len() > 1 || q.breakdown.is_none(),
                "{mode}: no breakdown rows"
            );
            for (value, t, mean) in all {
                for (c, row) in t.iter().enumerate() {
                    for (k, cell) in row.iter().enumerate() {
                        assert!(
                            c + k < 2 || cell.is_none(),
                            "{mode} general={general} {value}: cell ({c}, {k}) holds now but is {cell:?}"
                        );
                    }
                }
                assert_eq!(mean[2], None, "{mode} general={general} {value}: {mean:?}");
            }
        }
    }
}

#[test]
fn retention_periods_after_the_data_are_incomplete_not_a_cliff() {
    let ws = retention_ws();
    // The data ends on D2; the range and the intervals run a week past it.
    let q = rq(json!({"date_range": {"from": "2024-01-01", "to": "2024-01-07"}, "intervals": 5}));
    let (r, _) = retention::run(&ws, &q, CLOCK).unwrap();
    assert_eq!(
        table(&r.cohorts)[0],
        vec![Some(2), Some(1), Some(2), None, None]
    );
    assert_eq!(table(&r.cohorts)[3], vec![None; 5], "D3 is after the data");
    assert_eq!(r.mean_weighted[3], None);
    assert_eq!(r.mean_simple[2], Some(1.0), "period 2: cohort D0 only");
    // The same by default, as of the end of the data.
    let a = insights::answer(&ws, &Query::Retention(q), None, CLOCK).unwrap();
    let InsightResult::Retention(d) = a.result else {
        panic!()
    };
    assert_eq!(d.mean_weighted[3], None);
}

#[test]
fn a_week_cut_by_the_end_of_the_range_is_incomplete() {
    // Each person opens the app every Monday and Thursday of three weeks; the range ends
    // on Wednesday of week 2, so week 2 is cut short: its cells are not complete.
    let mut events = Vec::new();
    for p in ["a", "b"] {
        for w in 0..3 {
            events.push((w * 7 * D + 3600, p, "open"));
            events.push((w * 7 * D + 3 * D + 3600, p, "open"));
        }
    }
    let ws = ws_of(&events);
    let q: RetentionQuery = serde_json::from_value(json!({
        "start": {"event": "open"}, "returning": {"event": "open"}, "period": "week",
        "intervals": 2, "date_range": {"from": "2024-01-01", "to": "2024-01-10"}}))
    .unwrap();
    let (r, _) = retention::run(&ws, &q, CLOCK).unwrap();
    assert_eq!(
        table(&r.cohorts),
        vec![vec![Some(2), None], vec![None, None]]
    );
    assert_eq!(r.mean_weighted, vec![Some(1.0), None]);
    // A range that ends with the week leaves it complete.
    let mut whole = q.clone();
    whole.date_range.to = Some("2024-01-14".into());
    let (r, _) = retention::run(&ws, &whole, CLOCK).unwrap();
    assert_eq!(
        table(&r.cohorts),
        vec![vec![Some(2), Some(2)], vec![Some(2), None]]
    );
}

// ---- item 10: misspelt event names ----

fn names_ws() -> Workspace {
    ws_from(&[
        ev(1, DAY0, "a", "signup", json!({"$browser": "Chrome"})),
        ev(2, DAY0 + 60, "a", "purchase", json!({})),
        ev(
            3,
            DAY0 + 120,
            "a",
            "$pageview",
            json!({"$current_url": "https://x.example/pricing"}),
        ),
        ev(4, DAY0 + 180, "a", "logout", json!({})),
        ev(5, DAY0 + 240, "b", "signup", json!({})),
    ])
}

const RANGE: &str = r#"{"from": "2024-01-01", "to": "2024-01-31"}"#;

fn range() -> Value {
    serde_json::from_str(RANGE).unwrap()
}

#[test]
fn a_misspelt_event_is_refused_with_the_closest_names_in_every_insight() {
    let ws = names_ws();
    let r = range();
    let cases = [
        (
            json!({"kind": "funnel", "steps": [{"event": "signup"}, {"event": "purchse"}], "date_range": r}),
            "purchse",
            "purchase",
        ),
        (
            json!({"kind": "funnel", "steps": [{"event": "signup"}, {"event": "purchase"}],
                "exclusions": [{"event": "logut", "from_step": 0, "to_step": 1}], "date_range": r}),
            "logut",
            "logout",
        ),
        (
            json!({"kind": "trends", "series": [{"event": "Signup", "math": "total"}], "date_range": r}),
            "Signup",
            "signup",
        ),
        (
            json!({"kind": "retention", "start": {"event": "signup"}, "returning": {"event": "purchace"},
                "date_range": r}),
            "purchace",
            "purchase",
        ),
        (
            json!({"kind": "retention", "start": {"event": "sign_up"}, "returning": {"event": "purchase"},
                "date_range": r}),
            "sign_up",
            "signup",
        ),
        (
            json!({"kind": "stickiness", "event": "pageview", "date_range": r}),
            "pageview",
            "$pageview",
        ),
        (
            json!({"kind": "lifecycle", "event": "singup", "date_range": r}),
            "singup",
            "signup",
        ),
        (
            json!({"kind": "paths", "start": "signnup", "date_range": r}),
            "signnup",
            "signup",
        ),
        (
            json!({"kind": "paths", "events": ["signup", "logoff"], "date_range": r}),
            "logoff",
            "logout",
        ),
    ];
    for (v, wrong, closest) in cases {
        let q = query(v.clone());
        for result in [
            insights::run(&ws, &q, CLOCK).map(|_| ()),
            insights::drill(&ws, &q, CLOCK, "1").map(|_| ()),
        ] {
            let (code, message) = code_and_message(result);
            assert_eq!(code, "unknown_event", "{v}");
            assert!(
                message.contains(&format!(
                    "no event is named \"{wrong}\" (closest: \"{closest}\""
                )),
                "{v}: {message}"
            );
        }
    }
    // A cohort definition too, when saved and when used.
    let def: CohortDef = serde_json::from_value(json!({"criteria": [
        {"type": "performed", "event": "purchases", "within_days": 30}]}))
    .unwrap();
    let (code, message) = code_and_message(cohort::save(&ws, "buyers", &def, CLOCK));
    assert_eq!(code, "unknown_event");
    assert!(message.contains("(closest: \"purchase\""), "{message}");
    let (code, _) = code_and_message(cohort::member_ids(&ws, &def, CLOCK));
    assert_eq!(code, "unknown_event");
    // A page path is not an event name.
    let q =
        query(json!({"kind": "paths", "start": "/pricing", "page_paths": true, "date_range": r}));
    assert!(insights::run(&ws, &q, CLOCK).is_ok());
    // A misspelt property names its closest keys the same way.
    let q = query(
        json!({"kind": "trends", "series": [{"event": "signup", "math": "total"}],
        "breakdown": {"type": "property", "property": "$browsr"}, "date_range": r}),
    );
    let (code, message) = code_and_message(insights::run(&ws, &q, CLOCK));
    assert_eq!(code, "unknown_property");
    assert!(message.contains("(closest: \"$browser\""), "{message}");
}

#[test]
fn an_event_with_no_rows_in_the_range_is_not_misspelt() {
    let ws = names_ws();
    // logout exists, just not in 2025.
    let q = query(
        json!({"kind": "trends", "series": [{"event": "logout", "math": "total"}],
        "date_range": {"from": "2025-01-01", "to": "2025-01-31"}}),
    );
    let a = insights::answer(&ws, &q, None, CLOCK).unwrap();
    assert_eq!(total(&a.result), 0.0);
    assert!(a.warnings[0].contains("after the data"), "{:?}", a.warnings);
}

#[test]
fn a_saved_insight_or_cohort_whose_event_is_gone_says_so() {
    let ws = names_ws();
    let q = query(
        json!({"kind": "funnel", "steps": [{"event": "signup"}, {"event": "logout"}],
        "date_range": range()}),
    );
    saved::save(&ws, "churn", &q, CLOCK).unwrap();
    let def: CohortDef = serde_json::from_value(json!({"criteria": [
        {"type": "performed", "event": "logout", "within_days": 30}]}))
    .unwrap();
    cohort::save(&ws, "leavers", &def, CLOCK).unwrap();
    assert!(saved::load_to_run(&ws, "churn").is_ok());
    // The events are gone (say, the workspace was rebuilt from another export).
    ws.conn()
        .execute("DELETE FROM events WHERE event_name = 'logout'", [])
        .unwrap();
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    let (code, message) = code_and_message(saved::load_to_run(&ws, "churn"));
    assert_eq!(code, "unknown_event");
    assert!(
        message
            .starts_with("the saved insight \"churn\" names an event this workspace does not have")
            && message.contains("no event is named \"logout\""),
        "{message}"
    );
    // It can still be shown, to be mended.
    assert!(saved::load(&ws, "churn").is_ok());
    let scoped = query(
        json!({"kind": "trends", "series": [{"event": "signup", "math": "total"}],
        "date_range": range(), "cohort": "leavers"}),
    );
    let (code, message) = code_and_message(insights::run(&ws, &scoped, CLOCK));
    assert_eq!(code, "unknown_event");
    assert!(
        message.starts_with("the saved cohort \"leavers\""),
        "{message}"
    );
}
