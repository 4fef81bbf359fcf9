//! The Rust fast path for PostHog JSON lines (`ingest::fast`) against the vendor's SQL mapping
//! (`posthog_events.sql`): the same files imported both ways give the same events, every
//! column, the same quarantine with the same reasons, links, group snapshots and counts.
//! JSON columns are compared as JSON (the fast path keeps the properties as written, minus
//! blanks; the SQL rewrites them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::io::Write;
use std::path::Path;

use stitchbook_engine::generate::{write_generated, GenFormat, GenerateOptions};
use stitchbook_engine::ingest::fast::map_posthog;
use stitchbook_engine::ingest::{import_paths, FileOutcome, ImportOptions, ImportStatus};
use stitchbook_engine::{JobCtx, Workspace};

fn import(dir: &Path, name: &str, file: &Path, sql_only: bool) -> (Workspace, FileOutcome) {
    let ws = Workspace::open(dir.join(name)).unwrap();
    let opts = ImportOptions {
        sql_mapping_only: sql_only,
        ..Default::default()
    };
    let mut r = import_paths(&ws, &[file.to_path_buf()], &opts, &JobCtx::silent()).unwrap();
    (ws, r.files.remove(0))
}

type Row = Vec<Option<String>>;

fn rows(ws: &Workspace, sql: &str) -> Vec<Row> {
    let mut st = ws.conn().prepare(sql).unwrap();
    let mut out = Vec::new();
    let mut rs = st.query([]).unwrap();
    while let Some(r) = rs.next().unwrap() {
        let n = r.as_ref().column_count();
        out.push(
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i).unwrap())
                .collect(),
        );
    }
    out
}

/// JSON text as a value, so that `{"a": 1}` and `{"a":1}` compare equal.
fn json(v: &Option<String>) -> Option<serde_json::Value> {
    v.as_ref().map(|s| serde_json::from_str(s).unwrap())
}

const EVENTS: &str = "SELECT source_file, source_line::VARCHAR, event_uuid, dedupe_key, event_name, event_kind,
    ts_utc::VARCHAR, received_at_utc::VARCHAR, distinct_id, user_id, anon_id, session_id,
    vendor_person_id, properties::VARCHAR, person_properties::VARCHAR, groups::VARCHAR, event_seq::VARCHAR,
    page_url, browser, os, device_type, hot::VARCHAR
    FROM events ORDER BY source_line";
const JSON_COLS: [usize; 3] = [13, 14, 15];

fn assert_same(file: &Path, dir: &Path) {
    let (sql_ws, sql) = import(dir, "sql.duckdb", file, true);
    let (fast_ws, fast) = import(dir, "fast.duckdb", file, false);
    assert_eq!(sql.status, ImportStatus::Complete, "{:?}", sql.message);
    assert_eq!(fast.status, ImportStatus::Complete, "{:?}", fast.message);
    assert_eq!(
        (
            fast.rows_read,
            fast.rows_loaded,
            fast.rows_duplicate,
            fast.rows_quarantined,
            fast.links_added
        ),
        (
            sql.rows_read,
            sql.rows_loaded,
            sql.rows_duplicate,
            sql.rows_quarantined,
            sql.links_added
        )
    );
    let a = rows(&sql_ws, EVENTS);
    let b = rows(&fast_ws, EVENTS);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for i in 0..x.len() {
            if JSON_COLS.contains(&i) {
                assert_eq!(json(&x[i]), json(&y[i]), "column {i} of {x:?}");
            } else {
                assert_eq!(x[i], y[i], "column {i} of {x:?} vs {y:?}");
            }
        }
    }
    for q in [
        "SELECT source_file, source_line::VARCHAR, reason, raw, raw_length::VARCHAR FROM quarantine ORDER BY source_line",
        "SELECT from_id, to_id, link_kind, ts_utc::VARCHAR, source_line::VARCHAR, event_uuid FROM identity_links ORDER BY source_line, link_kind",
        "SELECT group_type, group_key, properties::VARCHAR, as_of::VARCHAR, source_line::VARCHAR FROM group_snapshots ORDER BY source_line",
    ] {
        assert_eq!(rows(&sql_ws, q), rows(&fast_ws, q), "{q}");
    }
}

/// Records chosen to sit on every edge of the mapping: the fast path must map the plain ones
/// exactly as the SQL does and leave the rest to it.
const EDGES: &[&str] = &[
    r#"{"uuid":"u01","event":"$pageview","distinct_id":"d1","timestamp":"2024-01-01T00:00:00Z","created_at":"2024-01-01T00:00:01.5+00:00","properties":{"$current_url":"https://x.test/a","$session_id":"s1","$device_id":"dev1"}}"#,
    r#"{ "uuid" : "u02", "event" : "signup", "distinct_id" : "d1", "timestamp" : "2024-01-01 00:00:02", "properties" : { "plan" : "pro", "n" : [ 1, 2.50, 1e3 ], "s": "a b\t\"c\"" } }"#,
    r#"{"uuid":"u03","event":"$identify","distinct_id":"user_1","timestamp":"2024-01-01T01:00:00+05:30","properties":{"$anon_distinct_id":"d1","$groups":{"company":"c1","team":["t1","","t2"]}}}"#,
    r#"{"uuid":"u04","event":"e","distinct_id":"d2","timestamp":"2024-01-01T00:00:03-0800","properties":{"$is_identified":true,"$user_id":""}}"#,
    r#"{"uuid":"u05","event":"e","distinct_id":"d3","timestamp":"2024-01-01T00:00:04.1234567Z","properties":{"$is_identified":"true"}}"#,
    r#"{"uuid":"u06","event":"$groupidentify","distinct_id":"d3","timestamp":"2024-01-01T00:00:05Z","properties":{"$group_type":"company","$group_key":"c1","$group_set":{"name":"Acme"},"$groups":{"company":"c0"}}}"#,
    r#"{"event":"no_uuid","distinct_id":"d4","timestamp":"2024-01-01T00:00:06Z"}"#,
    r#"{"uuid":"u08","event":"e","distinct_id":12345,"timestamp":"2024-01-01T00:00:07Z"}"#,
    r#"{"uuid":"u09","event":"e","distinct_id":"  padded  ","timestamp":"2024-01-01T00:00:08Z"}"#,
    r#"{"uuid":"u10","event":"e","distinct_id":"","timestamp":"2024-01-01T00:00:09Z"}"#,
    r#"{"uuid":"u11","event":"e","distinct_id":"d5","timestamp":"2024-01-01T00:00:10Z",}"#,
    r#"{"uuid":"u12","event":"e","distinct_id":"d5","timestamp":NaN}"#,
    r#"{"uuid":"u13","event":"e","event":"f","distinct_id":"d5","timestamp":"2024-01-01T00:00:11Z"}"#,
    r#"{"uuid":"u14","event":"e","distinct_id":"d5","timestamp":"2024-01-01T00:00:12Z","properties":"{\"a\":1}"}"#,
    r#"{"uuid":"u15","event":"e","distinct_id":"d5","timestamp":"2024-01-01T00:00:13Z","person_properties":{"email":"a@b.test"},"person_id":"p5"}"#,
    r#"{"uuid":"u16","event":"e","distinct_id":"d5","timestamp":"2024-01-01T00:00:14Z","person_properties":"x"}"#,
    r#"{"uuid":"u17","event":"e","distinct_id":"d5","timestamp":"2024-01-01T00:00:15Z","created_at":12345}"#,
    r#"{"uuid":"u18","event":"e","distinct_id":"d5","timestamp":"2024-01-01T24:00:00Z"}"#,
    r#"{"uuid":"u19","event":"e","distinct_id":"d5","timestamp":"2024-01-01"}"#,
    r#"{"uuid":"u20","event":"e","distinct_id":"d5","timestamp":1704067200}"#,
    r#"{"uuid":"u21","event":"","distinct_id":"d5","timestamp":"2024-01-01T00:00:16Z"}"#,
    r#"{"uuid":"u22","event":"   ","distinct_id":"d5","timestamp":"2024-01-01T00:00:17Z"}"#,
    r#"{"uuid":"u23","event":"caf\u00e9 \ud83d\ude00","distinct_id":"d\u00e9","timestamp":"2024-01-01T00:00:18Z","properties":{"k\u00e9y":"v\/al"}}"#,
    r#"{"uuid":"u24","event":"e","distinct_id":"d5","timestamp":"2024-01-01T00:00:19Z","properties":{"bad":"\ud800"}}"#,
    r#"["uuid","u25"]"#,
    r#"{"uuid":"u01","event":"$pageview","distinct_id":"d1","timestamp":"2024-01-01T00:00:00Z"}"#,
    r#"{"uuid":"u27","event":"$create_alias","distinct_id":"d6","timestamp":"2024-01-01T00:00:20Z","properties":{"alias":"d7"}}"#,
    r#"{"uuid":"u28","event":"$merge_dangerously","distinct_id":"d6","timestamp":"2024-01-01T00:00:21Z","properties":{"alias":"d8"}}"#,
    r#"{"uuid":"u29","event":"$set","distinct_id":"d6","timestamp":"2024-01-01T00:00:22Z","properties":{"$set":{"plan":"x"}}}"#,
    r#"{"uuid":"u30","event":"$screen","distinct_id":"d6","timestamp":"2024-01-01T00:00:23Z","properties":{"$groups":{}}}"#,
    r#"{"uuid":"u31","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:24Z","properties":{"$groups":{"company":5}}}"#,
    r#"{"uuid":"u32","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:25Z","properties":{"$groups":{"company":" c9 "}}}"#,
    r#"{"uuid":"u33","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:26Z","properties":{"$session_id":7,"$device_id":null}}"#,
    r#"{"uuid":"u34","event":"e","distinct_id":"{\"a\":1}","timestamp":"2024-01-01T00:00:27Z"}"#,
    r#"{"uuid":"u35","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:28+19:00"}"#,
    r#"{"uuid":"u36","event":7,"distinct_id":"d6","timestamp":"2024-01-01T00:00:29Z"}"#,
    r#"{"uuid":"u37","event":"e","timestamp":"2024-01-01T00:00:30Z"}"#,
    r#"{"uuid":"u38","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:31Z","properties":[1]}"#,
    r#"{"uuid":"u39","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:32Z","properties":null,"person_id":null,"created_at":null}"#,
    r#"{"uuid":" u40","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:33Z"}"#,
    r#"not json at all"#,
    r#"{"uuid":"u42","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:34.5Z","properties":{"$user_id":"user_9","$device_id":"dev9","$session_id":""}}"#,
    r#"{"uuid":"u44","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:36Z","properties":{"url":"https://x.test/u","$browser":"Chrome","$os":"","$device_type":null}}"#,
    r#"{"uuid":"u45","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:37Z","properties":{"$current_url":null,"page_url":"https://x.test/p","$context":{"page":{"url":"https://x.test/c"}}}}"#,
    r#"{"uuid":"u46","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:38Z","properties":{"$context":{"page":{"url":"https://x.test/c"}},"$browser":5}}"#,
    r#"{"uuid":"u47","event":"e","distinct_id":"d6","timestamp":"2024-01-01T00:00:39Z","properties":{"$current_url":7}}"#,
    r#"{"uuid":"u43","event":"$identify","distinct_id":"user_2","timestamp":"2024-01-01T00:00:35Z","properties":{"$anon_distinct_id":"d9","$device_id":"dev2"}}"#,
];

#[test]
fn the_fast_path_maps_edge_cases_as_the_sql_does() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edges.jsonl");
    let mut f = std::fs::File::create(&file).unwrap();
    // A BOM, CRLF endings, a blank line and a line of invalid UTF-8 besides the records.
    f.write_all(b"\xEF\xBB\xBF").unwrap();
    for (i, l) in EDGES.iter().enumerate() {
        f.write_all(l.as_bytes()).unwrap();
        f.write_all(if i % 3 == 0 { b"\r\n" } else { b"\n" })
            .unwrap();
        if i == 5 {
            f.write_all(b"\n   \n").unwrap();
            f.write_all(b"{\"uuid\":\"u99\",\"event\":\"\xff\"}\n")
                .unwrap();
        }
    }
    drop(f);
    assert_same(&file, dir.path());
    // The plain records were mapped by the fast path, the odd ones were not.
    let mapped = EDGES
        .iter()
        .filter(|l| map_posthog(l.as_bytes()).is_some())
        .count();
    assert!(mapped >= 12, "{mapped}");
    assert!(mapped < EDGES.len() - 20, "{mapped}");
}

#[test]
fn the_fast_path_maps_generated_exports_as_the_sql_does() {
    let dir = tempfile::tempdir().unwrap();
    for (name, seed) in [("gen.jsonl", 7u64), ("gen.jsonl.gz", 8)] {
        let file = dir.path().join(name);
        let opts = GenerateOptions {
            events: 20_000,
            seed,
            duplicate_rate: 0.02,
            malformed_rate: 0.01,
            ..Default::default()
        };
        write_generated(GenFormat::PostHog, &file, &opts).unwrap();
        let sub = dir.path().join(format!("ws-{seed}"));
        std::fs::create_dir_all(&sub).unwrap();
        assert_same(&file, &sub);
    }
    // Nearly every generated record is one the fast path maps itself.
    let text = std::fs::read(dir.path().join("gen.jsonl")).unwrap();
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mapped = lines.iter().filter(|l| map_posthog(l).is_some()).count();
    assert!(
        mapped * 100 >= lines.len() * 95,
        "{mapped} of {}",
        lines.len()
    );
}
