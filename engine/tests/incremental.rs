//! The incremental model against a full rebuild (issue 18): generated data split into
//! several files, each imported into a modelled workspace and followed by an incremental
//! `model::refresh`, must leave every derived table exactly as one full rebuild over the same
//! imports does. The files interleave in time (every file holds events from the whole
//! period, so later files carry late-arriving events inside existing sessions), and the last
//! one identifies an anonymous person with a user who already has a person of their own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stitchbook_engine::generate::{self, GenerateOptions, Rng};
use stitchbook_engine::ingest::{import_paths, ImportOptions};
use stitchbook_engine::model::{self, ModelSettings};
use stitchbook_engine::{JobCtx, Workspace};

/// Every table the model derives, with the columns that depend on when it ran left out.
const DERIVED: &[(&str, &str)] = &[
    ("person_map", "*"),
    ("persons", "*"),
    ("merge_log", "*"),
    ("shared_devices", "*"),
    ("sessions", "*"),
    ("event_sessions", "*"),
    ("profiles", "*"),
    ("accounts", "*"),
    ("account_activity", "*"),
    ("person_events", "*"),
    ("event_groups", "*"),
    ("person_index", "*"),
    ("event_facts", "*"),
    ("person_days", "*"),
    ("active_days", "*"),
    ("model_state", "* EXCLUDE (built_at)"),
];

fn import(ws: &Workspace, p: &Path) {
    let r = import_paths(
        ws,
        &[p.to_path_buf()],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    assert!(r.files[0].rows_loaded > 0, "{:?}", r.files[0].message);
}

fn q(ws: &Workspace, sql: &str) -> i64 {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Deal `lines` (each with the simulated person it belongs to) into `n` files: a third of
/// the persons only ever appear in the first file; the others' events are dealt at random (so
/// each file spans the whole period). Then append `last` to the last file.
fn split(
    dir: &Path,
    lines: &[(usize, String)],
    n: usize,
    last: &[String],
    ext: &str,
) -> Vec<PathBuf> {
    let mut rng = Rng::new(7);
    let mut parts: Vec<String> = vec![String::new(); n];
    for (person, l) in lines {
        // about half to the first file, the rest spread over the others
        let k = if person % 3 == 0 || rng.chance(0.5) {
            0
        } else {
            1 + rng.below(n as u64 - 1) as usize
        };
        parts[k].push_str(l);
        parts[k].push('\n');
    }
    for l in last {
        parts[n - 1].push_str(l);
        parts[n - 1].push('\n');
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let p = dir.join(format!("part{i}.{ext}"));
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect()
}

/// Import the files one by one into a workspace modelled after each, and all of them into a
/// second workspace modelled once; then compare every derived table.
fn incremental_equals_full(name: &str, files: &[PathBuf], settings: &[(&str, &str)]) -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    let inc_path = dir.path().join("incremental.duckdb");
    let full_path = dir.path().join("full.duckdb");
    {
        let full = Workspace::open(&full_path).unwrap();
        for (k, v) in settings {
            ModelSettings::set(&full, k, v).unwrap();
        }
        for f in files {
            import(&full, f);
        }
        let r = model::rebuild(&full, &JobCtx::silent()).unwrap();
        assert!(!r.incremental);
        assert!(r.persons > 10, "{name}: {r:?}");
    }
    let inc = Workspace::open(&inc_path).unwrap();
    for (k, v) in settings {
        ModelSettings::set(&inc, k, v).unwrap();
    }
    let mut touched = Vec::new();
    for (i, f) in files.iter().enumerate() {
        import(&inc, f);
        assert!(model::is_stale(&inc).unwrap());
        let r = model::refresh(&inc, &JobCtx::silent()).unwrap();
        // The first file has no model to update; every later one updates incrementally.
        assert_eq!(r.incremental, i > 0, "{name}: file {i}");
        assert!(!model::is_stale(&inc).unwrap());
        touched.push((r.persons_touched, r.persons));
    }
    // An update recomputes the persons the new file touched, not everyone (a third of the
    // persons have no events after the first file).
    let (last_touched, persons) = *touched.last().unwrap();
    assert!(
        last_touched > 0 && last_touched < persons,
        "{name}: {touched:?}"
    );

    // (ATTACH takes no bound parameters; the path is the test's own temp folder, quoted.)
    let quoted = full_path.to_string_lossy().replace('\'', "''");
    inc.conn()
        .execute_batch(&format!("ATTACH '{quoted}' AS full_ws (READ_ONLY)"))
        .unwrap();
    for (table, cols) in DERIVED {
        let rows = q(&inc, &format!("SELECT count(*) FROM {table}"));
        let full_rows = q(&inc, &format!("SELECT count(*) FROM full_ws.{table}"));
        assert_eq!(rows, full_rows, "{name}: {table} row count");
        let only_inc = q(
            &inc,
            &format!(
                "SELECT count(*) FROM (SELECT {cols} FROM {table} EXCEPT ALL SELECT {cols} FROM full_ws.{table})"
            ),
        );
        let only_full = q(
            &inc,
            &format!(
                "SELECT count(*) FROM (SELECT {cols} FROM full_ws.{table} EXCEPT ALL SELECT {cols} FROM {table})"
            ),
        );
        assert_eq!(
            (only_inc, only_full),
            (0, 0),
            "{name}: {table} differs (rows only in the incremental model, only in the full rebuild)"
        );
    }
    assert!(q(&inc, "SELECT count(*) FROM sessions") > 10, "{name}");
    inc
}

fn simulated(events: usize, seed: u64) -> Vec<generate::SimEvent> {
    generate::simulate(&GenerateOptions {
        events,
        seed,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..Default::default()
    })
    .0
}

fn iso(us: i64) -> String {
    generate::rfc3339_micros(us)
}

/// Two anonymous visitors and two signed-in users, each a person of their own in the first
/// file. In the last file, visitor-x gets a late event inside its first session and is
/// identified as user-x; visitor-y is merged into user-y by an event sent from user-y's own
/// device (dev-y has no new event, yet its sessions now belong to user-y). Two users share
/// dev-s: a late event of user-s1 there starts their session earlier, which gives the event
/// of user-s2 inside it (who has no new event and is not the session's person) another
/// session id. `t0_us` is the start of the simulated period.
fn two_existing_persons(t0_us: i64) -> (Vec<String>, Vec<String>) {
    type Rec = (u32, i64, &'static str, &'static str, Value);
    let lines = |recs: Vec<Rec>| -> Vec<String> {
        recs.into_iter()
            .map(|(n, secs, distinct, event, props)| {
                json!({
                    "uuid": format!("10000000-0000-4000-8000-{n:012}"),
                    "event": event,
                    "distinct_id": distinct,
                    "timestamp": iso(t0_us + secs * 1_000_000),
                    "properties": props,
                })
                .to_string()
            })
            .collect()
    };
    let first: Vec<Rec> = vec![
        (
            1,
            60,
            "visitor-x",
            "$pageview",
            json!({"$current_url": "https://x.test/"}),
        ),
        (
            2,
            90,
            "visitor-x",
            "$pageview",
            json!({"$current_url": "https://x.test/a"}),
        ),
        (
            3,
            86_400,
            "user-x",
            "logged_in",
            json!({"$set": {"plan": "free"}}),
        ),
        (
            6,
            100,
            "visitor-y",
            "$pageview",
            json!({"$device_id": "dev-y"}),
        ),
        (
            7,
            130,
            "visitor-y",
            "$pageview",
            json!({"$device_id": "dev-y"}),
        ),
        (
            8,
            3_600,
            "user-y",
            "logged_in",
            json!({"$device_id": "dev-u"}),
        ),
        (
            10,
            200,
            "user-s1",
            "$pageview",
            json!({"$device_id": "dev-s"}),
        ),
        (
            11,
            230,
            "user-s2",
            "$pageview",
            json!({"$device_id": "dev-s"}),
        ),
        (
            12,
            260,
            "user-s1",
            "$pageview",
            json!({"$device_id": "dev-s"}),
        ),
    ];
    let last: Vec<Rec> = vec![
        (4, 75, "visitor-x", "$autocapture", json!({})),
        (
            5,
            2 * 86_400,
            "user-x",
            "$identify",
            json!({"$anon_distinct_id": "visitor-x", "$set": {"plan": "pro"}}),
        ),
        (
            9,
            3 * 86_400,
            "user-y",
            "$merge_dangerously",
            json!({"$device_id": "dev-u", "alias": "visitor-y"}),
        ),
        (
            13,
            100,
            "user-s1",
            "$pageview",
            json!({"$device_id": "dev-s"}),
        ),
    ];
    (lines(first), lines(last))
}

#[test]
fn posthog_updates_equal_a_full_rebuild() {
    let sim = simulated(6_000, 11);
    let t0 = GenerateOptions::default().start_us;
    // A third of the devices send no session id: their sessions are split by inactivity.
    let lines: Vec<(usize, String)> = sim
        .iter()
        .map(|e| {
            let mut v: Value = serde_json::from_str(&generate::posthog_line(e)).unwrap();
            if e.device_id.as_bytes().last().is_some_and(|b| b % 3 == 0) {
                v["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("$session_id");
            }
            (e.person, v.to_string())
        })
        .collect();
    let (first, last) = two_existing_persons(t0);
    let mut all: Vec<(usize, String)> = first.into_iter().map(|l| (0, l)).collect();
    all.extend(lines);
    let dir = tempfile::tempdir().unwrap();
    let files = split(dir.path(), &all, 3, &last, "jsonl");
    for mode in ["posthog", "posthog_strict", "mixpanel_simplified"] {
        let ws = incremental_equals_full(
            &format!("posthog export, {mode} identity"),
            &files,
            &[("identity.mode", mode)],
        );
        // The last file merged two persons that both existed before it, and its late
        // autocapture landed inside the visitor's first session.
        assert_eq!(
            q(&ws, "SELECT count(DISTINCT person_id) FROM person_map WHERE distinct_id IN ('visitor-x', 'user-x')"),
            1,
            "{mode}"
        );
        assert_eq!(
            q(&ws, "SELECT events FROM sessions WHERE device_id = 'visitor-x' ORDER BY started_at LIMIT 1"),
            3,
            "{mode}"
        );
        assert_eq!(
            q(
                &ws,
                "SELECT count(*) FROM sessions s JOIN person_map pm ON pm.person_id = s.person_id
                 WHERE s.device_id = 'dev-y' AND pm.distinct_id = 'user-y'"
            ),
            1,
            "{mode}"
        );
        assert_eq!(
            q(
                &ws,
                "SELECT count(*) FROM sessions WHERE device_id = 'dev-s' AND events = 4"
            ),
            1,
            "{mode}"
        );
    }
    incremental_equals_full(
        "posthog export, Berlin days, midnight and campaign splits",
        &files,
        &[
            ("time_zone", "Europe/Berlin"),
            ("sessions.split_at_midnight", "true"),
            ("sessions.split_on_campaign", "true"),
            ("week_start", "sunday"),
        ],
    );
}

#[test]
fn segment_updates_equal_a_full_rebuild() {
    let sim = simulated(4_000, 5);
    let lines: Vec<(usize, String)> = sim
        .iter()
        .map(|e| (e.person, generate::segment_line(e, false)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let files = split(dir.path(), &lines, 3, &[], "jsonl");
    for mode in ["warehouse_last_value", "posthog"] {
        incremental_equals_full(
            &format!("segment export, {mode} identity"),
            &files,
            &[("identity.mode", mode)],
        );
    }
}

#[test]
fn a_changed_setting_rebuilds_in_full() {
    let sim = simulated(1_500, 2);
    let lines: Vec<(usize, String)> = sim
        .iter()
        .map(|e| (e.person, generate::posthog_line(e)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let files = split(dir.path(), &lines, 2, &[], "jsonl");
    let ws = Workspace::open(dir.path().join("ws.duckdb")).unwrap();
    import(&ws, &files[0]);
    assert!(!model::refresh(&ws, &JobCtx::silent()).unwrap().incremental);
    import(&ws, &files[1]);
    ModelSettings::set(&ws, "sessions.timeout_seconds", "600").unwrap();
    // The sessions of every device depend on the timeout: nothing can be kept.
    let r = model::refresh(&ws, &JobCtx::silent()).unwrap();
    assert!(!r.incremental);
    assert_eq!(r.persons_touched, r.persons);
    assert!(!model::is_stale(&ws).unwrap());
}
