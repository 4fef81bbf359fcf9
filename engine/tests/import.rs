//! Import pipeline tests: the real samples, generated files against their ground truth, the
//! generic importer, the bad-input corpus, re-import and cancellation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::sync::Arc;

use stitchbook_engine::generate::{write_posthog_jsonl, GenerateOptions};
use stitchbook_engine::ingest::{
    import_paths, ColumnMapping, FileOutcome, FormatOverride, ImportOptions, ImportStatus,
};
use stitchbook_engine::{CancelToken, JobCtx, JobEvent, Workspace};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad")
        .join(name)
}

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/samples")
}

fn count(ws: &Workspace, sql: &str) -> i64 {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Row counts of every data table, to prove a failed import changed nothing.
fn data_counts(ws: &Workspace) -> [i64; 5] {
    [
        count(ws, "SELECT count(*) FROM events"),
        count(ws, "SELECT count(*) FROM identity_links"),
        count(ws, "SELECT count(*) FROM quarantine"),
        count(ws, "SELECT count(*) FROM group_snapshots"),
        count(ws, "SELECT count(*) FROM person_snapshots"),
    ]
}

fn import_one(ws: &Workspace, path: &Path, format: Option<&str>) -> FileOutcome {
    let opts = ImportOptions {
        format: format.map(|f| FormatOverride::parse(f).unwrap()),
        ..Default::default()
    };
    let mut r = import_paths(ws, &[path.to_path_buf()], &opts, &JobCtx::silent()).unwrap();
    assert_eq!(r.files.len(), 1);
    r.files.remove(0)
}

fn assert_invariant(o: &FileOutcome) {
    assert_eq!(
        o.rows_read,
        o.rows_loaded + o.rows_duplicate + o.rows_quarantined,
        "rows read = loaded + duplicates + quarantined for {}",
        o.path
    );
}

#[derive(Debug)]
enum Expect {
    /// read, loaded, duplicates, quarantined
    Rows(u64, u64, u64, u64),
    /// The file is refused with a message containing this text (and the file name).
    Fails(&'static str),
}

fn check_case(name: &str, path: &Path, format: Option<&str>, expect: Expect) {
    let ws = Workspace::in_memory().unwrap();
    let before = data_counts(&ws);
    let o = import_one(&ws, path, format);
    let after = data_counts(&ws);
    match expect {
        Expect::Rows(read, loaded, dup, quar) => {
            assert_eq!(o.status, ImportStatus::Complete, "{name}: {:?}", o.message);
            assert_eq!(
                (
                    o.rows_read,
                    o.rows_loaded,
                    o.rows_duplicate,
                    o.rows_quarantined
                ),
                (read, loaded, dup, quar),
                "{name}"
            );
            assert_invariant(&o);
            assert_eq!(
                after[0] - before[0],
                loaded as i64,
                "{name}: events written"
            );
            assert_eq!(
                after[2] - before[2],
                quar as i64,
                "{name}: quarantine rows written"
            );
            // Every quarantined row has a reason, its line and a length.
            assert_eq!(
                count(&ws, "SELECT count(*) FROM quarantine WHERE reason = '' OR source_line < 1 OR raw_length < 0"),
                0
            );
        }
        Expect::Fails(text) => {
            assert!(
                matches!(o.status, ImportStatus::Failed | ImportStatus::Skipped),
                "{name}: expected a refusal, got {:?}",
                o.status
            );
            let msg = o.message.clone().unwrap_or_default();
            assert!(msg.contains(text), "{name}: message {msg:?} lacks {text:?}");
            let file = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                msg.contains(&file),
                "{name}: message {msg:?} does not name the file"
            );
            assert_eq!(
                before, after,
                "{name}: a refused file must not change the data"
            );
            assert_eq!(
                count(
                    &ws,
                    "SELECT count(*) FROM imports WHERE status IN ('failed', 'skipped')"
                ),
                1,
                "{name}: the attempt is logged"
            );
        }
    }
}

#[test]
fn bad_input_corpus() {
    use Expect::*;
    let cases: Vec<(&str, Option<&str>, Expect)> = vec![
        (
            "truncated.jsonl.gz",
            None,
            Fails("gzip stream is truncated or corrupt"),
        ),
        ("valid_multimember.jsonl.gz", None, Rows(4, 4, 0, 0)),
        ("invalid_json_middle.jsonl", None, Rows(5, 3, 0, 2)),
        ("invalid_utf8.jsonl", None, Rows(3, 2, 0, 1)),
        ("utf8_bom.jsonl", None, Rows(2, 2, 0, 0)),
        ("crlf.jsonl", None, Rows(3, 3, 0, 0)),
        ("timestamps_1900_2300.jsonl", None, Rows(2, 2, 0, 0)),
        ("numbers_for_strings.jsonl", None, Rows(4, 2, 0, 2)),
        ("empty.jsonl", None, Fails("empty")),
        ("whitespace_only.jsonl", None, Fails("no records")),
        ("utf16.jsonl", None, Fails("UTF-16")),
        ("not_an_export.txt", None, Fails("could not recognise")),
        ("unknown_vendor.jsonl", None, Fails("could not recognise")),
        ("missing_event.jsonl", None, Rows(2, 1, 0, 1)),
        ("bad_timestamp.jsonl", None, Rows(3, 1, 0, 2)),
        ("non_object_lines.jsonl", None, Rows(5, 1, 0, 4)),
        ("properties_as_text.jsonl", None, Rows(3, 1, 0, 2)),
        ("duplicate_uuid.jsonl", None, Rows(4, 2, 2, 0)),
        ("no_trailing_newline.jsonl", None, Rows(2, 2, 0, 0)),
        ("blank_lines.jsonl", None, Rows(2, 2, 0, 0)),
        ("empty_event_name.jsonl", None, Rows(3, 1, 0, 2)),
        ("nul_bytes.jsonl", None, Rows(3, 2, 0, 1)),
        ("posthog_ragged.csv", None, Rows(4, 2, 0, 2)),
        ("quoted_multiline.csv", None, Rows(2, 2, 0, 0)),
        ("header_mismatch.csv", None, Fails("could not recognise")),
        (
            "header_mismatch.csv",
            Some("posthog"),
            Fails("missing uuid, event, distinct_id, timestamp"),
        ),
        ("corrupt.parquet", None, Fails("Parquet")),
    ];
    assert!(cases.len() >= 25);
    for (name, fmt, expect) in cases {
        check_case(name, &fixture(name), fmt, expect);
    }
}

#[test]
fn quarantine_reasons_name_the_problem() {
    let ws = Workspace::in_memory().unwrap();
    for f in [
        "invalid_json_middle.jsonl",
        "invalid_utf8.jsonl",
        "numbers_for_strings.jsonl",
        "bad_timestamp.jsonl",
        "posthog_ragged.csv",
    ] {
        import_one(&ws, &fixture(f), None);
    }
    let reasons: Vec<(String, i64, String)> = ws
        .conn()
        .prepare("SELECT regexp_extract(source_file, '[^/]+$'), source_line, reason FROM quarantine ORDER BY 1, 2")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let find = |file: &str, line: i64| -> String {
        reasons
            .iter()
            .find(|r| r.0 == file && r.1 == line)
            .map(|r| r.2.clone())
            .unwrap_or_else(|| panic!("no quarantine row for {file}:{line} in {reasons:?}"))
    };
    assert!(find("invalid_json_middle.jsonl", 2).starts_with("invalid JSON: "));
    assert!(find("invalid_json_middle.jsonl", 4).starts_with("invalid JSON: "));
    assert!(find("invalid_utf8.jsonl", 2).starts_with("invalid UTF-8"));
    assert_eq!(
        find("numbers_for_strings.jsonl", 2),
        "field \"event\" must be a string, found ubigint"
    );
    assert!(find("numbers_for_strings.jsonl", 3)
        .starts_with("field \"timestamp\" must be an ISO-8601 string"));
    assert_eq!(
        find("bad_timestamp.jsonl", 2),
        "unparseable timestamp \"yesterday\""
    );
    assert_eq!(
        find("posthog_ragged.csv", 2),
        "expected 5 fields as in the header, found 3"
    );
    assert_eq!(
        find("posthog_ragged.csv", 3),
        "expected 5 fields as in the header, found 6"
    );
}

#[test]
fn typed_values_survive() {
    let ws = Workspace::in_memory().unwrap();
    import_one(&ws, &fixture("timestamps_1900_2300.jsonl"), None);
    let years: Vec<i64> = ws
        .conn()
        .prepare("SELECT year(ts_utc) FROM events ORDER BY ts_utc")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(years, vec![1900, 2300]);

    // Fixtures reuse event ids across files, so each gets its own workspace.
    let ws = Workspace::in_memory().unwrap();
    import_one(&ws, &fixture("numbers_for_strings.jsonl"), None);
    assert_eq!(
        count(&ws, "SELECT count(*) FROM events WHERE distinct_id = '42'"),
        1
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE event_uuid = '12345'"
        ),
        1
    );

    let ws = Workspace::in_memory().unwrap();
    import_one(&ws, &fixture("properties_as_text.jsonl"), None);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE properties->>'$.plan' = 'pro' AND session_id = 's9'"
        ),
        1
    );
}

#[test]
fn csv_records_are_numbered_by_data_row_not_physical_line() {
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &fixture("quoted_multiline.csv"), None);
    assert_eq!(o.rows_loaded, 2);
    assert_eq!(
        count(
            &ws,
            "SELECT source_line FROM events WHERE event_uuid = 'u2'"
        ),
        2
    );
}

#[test]
fn posthog_sample_loads_with_counts_from_the_file() {
    let path = samples().join("posthog/events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let uuids: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["uuid"].as_str().map(str::to_string))
        .collect();
    let identifies = text
        .lines()
        .filter(|l| l.contains("\"event\":\"$identify\""))
        .count() as i64;
    let groupidentifies = text
        .lines()
        .filter(|l| l.contains("\"event\":\"$groupidentify\""))
        .count() as i64;

    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &path, None);
    assert_eq!(o.status, ImportStatus::Complete);
    assert_eq!(o.vendor.as_deref(), Some("posthog"));
    assert_eq!(o.rows_read, lines);
    assert_eq!(o.rows_loaded, uuids.len() as u64);
    assert_invariant(&o);
    assert_eq!(
        count(&ws, "SELECT count(*) FROM events"),
        uuids.len() as i64
    );
    // source_line is the line in the file, 1-based, one row per line.
    assert_eq!(count(&ws, "SELECT min(source_line) FROM events"), 1);
    assert_eq!(
        count(&ws, "SELECT max(source_line) FROM events"),
        lines as i64
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE event_kind = 'identify'"
        ),
        identifies
    );
    // the $identify carries $anon_distinct_id ≠ distinct_id: one identify link
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM identity_links WHERE link_kind = 'identify'"
        ),
        identifies
    );
    assert_eq!(
        count(&ws, "SELECT count(*) FROM group_snapshots"),
        groupidentifies
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE session_id IS NULL AND event_name = '$pageview'"
        ),
        0
    );
    // timestamps are read as UTC instants from their RFC 3339 text
    let first: String = ws
        .conn()
        .query_row(
            "SELECT strftime(ts_utc, '%Y-%m-%dT%H:%M:%S.%f') FROM events WHERE source_line = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first, "2023-09-15T09:15:02.325000");
}

#[test]
fn posthog_persons_export_gives_snapshots_and_person_map_links() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("persons.jsonl");
    let rows = [
        r#"{"team_id":1,"distinct_id":"anon-1","person_id":"P1","properties":{"email":"a@example.com"},"person_version":2,"person_distinct_id_version":0,"created_at":"2024-03-01T10:00:00+00:00","_inserted_at":"2024-03-02T00:00:00+00:00","is_deleted":false}"#,
        r#"{"team_id":1,"distinct_id":"user-1","person_id":"P1","properties":"{\"email\":\"a@example.com\"}","person_version":2,"person_distinct_id_version":1,"created_at":"2024-03-01T10:00:00+00:00","_inserted_at":"2024-03-02T00:00:00+00:00","is_deleted":false}"#,
        r#"{"team_id":1,"distinct_id":"gone","person_id":"P2","properties":{},"person_version":1,"person_distinct_id_version":0,"created_at":"2024-03-01T11:00:00+00:00","_inserted_at":"2024-03-02T00:00:00+00:00","is_deleted":true}"#,
        r#"{"team_id":1,"distinct_id":"","person_id":"P3","properties":{},"person_version":1,"person_distinct_id_version":0,"created_at":"2024-03-01T11:00:00+00:00","_inserted_at":"2024-03-02T00:00:00+00:00","is_deleted":false}"#,
    ];
    std::fs::write(&p, rows.join("\n") + "\n").unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(o.kind, Some(stitchbook_engine::ingest::RecordKind::Persons));
    assert_eq!(
        (
            o.rows_read,
            o.rows_loaded,
            o.rows_duplicate,
            o.rows_quarantined
        ),
        (4, 3, 0, 1),
        "{:?}",
        o.message
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM person_snapshots"), 3);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM person_snapshots WHERE properties->>'$.email' = 'a@example.com'"
        ),
        2
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM identity_links WHERE link_kind = 'person_map' AND to_id = 'P1'"
        ),
        2
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM identity_links WHERE from_id = 'gone'"
        ),
        0,
        "deleted persons map nothing"
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM events"), 0);
    let again = import_one(&ws, &p, None);
    // The quarantined row, already in the quarantine, is a duplicate too.
    assert_eq!(
        (
            again.rows_loaded,
            again.rows_duplicate,
            again.rows_quarantined
        ),
        (0, 4, 0)
    );
}

#[test]
fn capture_request_dump_is_refused_clearly() {
    check_case(
        "requests_dump",
        &samples().join("posthog/requests_dump.jsonl"),
        None,
        Expect::Fails("not an export"),
    );
}

/// Expected counts computed from the file by DuckDB's own readers (independently of the
/// importer): (records, distinct vendor keys).
fn expected(sql: &str) -> (u64, u64) {
    let c = duckdb::Connection::open_in_memory().unwrap();
    c.query_row(sql, [], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
    })
    .unwrap()
}

#[test]
fn every_shared_sample_loads_as_its_vendor() {
    let s = samples();
    let p = |f: &str| s.join(f).to_string_lossy().to_string();
    let cases: Vec<(&str, &str, (u64, u64), u64)> = vec![
        // (file, vendor, (records, distinct keys) from the file, quarantined)
        (
            "rudderstack/rudder-server_original100.json.gz",
            "rudderstack",
            expected(&format!("SELECT count(*), count(DISTINCT messageId) FROM read_json('{}', format = 'newline_delimited', columns = {{messageId: 'VARCHAR'}})", p("rudderstack/rudder-server_original100.json.gz"))),
            0,
        ),
        (
            "rudderstack/rudder-server_datalake_test_tracks.json.gz",
            "rudderstack",
            expected(&format!("SELECT count(*), count(DISTINCT id) FROM read_json('{}', format = 'newline_delimited', columns = {{id: 'VARCHAR'}})", p("rudderstack/rudder-server_datalake_test_tracks.json.gz"))),
            0,
        ),
        (
            "snowplow/dbt-snowplow-web_snowplow_web_events.csv",
            "snowplow",
            expected(&format!("SELECT count(*), count(DISTINCT (event_id, coalesce(event_fingerprint, ''))) FROM read_csv('{}', all_varchar = true)", p("snowplow/dbt-snowplow-web_snowplow_web_events.csv"))),
            0,
        ),
        (
            "segment/dbt-segment_example_segment_pages.csv",
            "segment",
            expected(&format!("SELECT count(*), count(DISTINCT id) FROM read_csv('{}', all_varchar = true)", p("segment/dbt-segment_example_segment_pages.csv"))),
            0,
        ),
        (
            "mixpanel/mixpanel-go_export_test_extracted.jsonl",
            "mixpanel",
            expected(&format!("SELECT count(*), count(DISTINCT (event, properties->>'$.time', properties->>'$.\"$insert_id\"')) FROM read_json('{}', format = 'newline_delimited', columns = {{event: 'VARCHAR', properties: 'JSON'}})", p("mixpanel/mixpanel-go_export_test_extracted.jsonl"))),
            0,
        ),
        (
            "amplitude/airbyte-source-amplitude_events.derived.jsonl",
            "amplitude",
            expected(&format!("SELECT count(*), count(DISTINCT (device_id, \"$insert_id\")) FROM read_json('{}', format = 'newline_delimited', columns = {{device_id: 'VARCHAR', \"$insert_id\": 'VARCHAR'}})", p("amplitude/airbyte-source-amplitude_events.derived.jsonl"))),
            0,
        ),
    ];
    for (file, vendor, (records, keys), quarantined) in cases {
        let ws = Workspace::in_memory().unwrap();
        let o = import_one(&ws, &s.join(file), None);
        assert_eq!(o.vendor.as_deref(), Some(vendor), "{file}: {:?}", o.message);
        assert_eq!(o.status, ImportStatus::Complete, "{file}: {:?}", o.message);
        assert_eq!(o.rows_read, records, "{file}");
        assert_eq!(o.rows_quarantined, quarantined, "{file}");
        assert_eq!(o.rows_loaded, keys, "{file}");
        assert_invariant(&o);
        assert_eq!(
            count(
                &ws,
                "SELECT count(*) FROM events WHERE ts_utc IS NULL OR event_name = ''"
            ),
            0
        );
    }

    // GA4: four files, keyed as formats.md §9.2 recommends.
    for f in [
        "ga4/dbt-ga4_base_events_fixture_extracted.jsonl",
        "ga4/dataform-ga4-sessions_event_id_input.derived.jsonl",
        "ga4/dataform-ga4-sessions_form_events_input.derived.jsonl",
        "ga4/dataform-ga4-sessions_purchase_input.derived.jsonl",
    ] {
        let (records, keys) = expected(&format!(
            "SELECT count(*), count(DISTINCT (stream_id, user_pseudo_id, event_timestamp, event_name, event_bundle_sequence_id, batch_event_index)) FROM read_json('{}', format = 'newline_delimited', columns = {{stream_id: 'VARCHAR', user_pseudo_id: 'VARCHAR', event_timestamp: 'VARCHAR', event_name: 'VARCHAR', event_bundle_sequence_id: 'VARCHAR', batch_event_index: 'VARCHAR'}})",
            p(f)
        ));
        let ws = Workspace::in_memory().unwrap();
        let o = import_one(&ws, &s.join(f), None);
        assert_eq!(o.vendor.as_deref(), Some("ga4"), "{f}: {:?}", o.message);
        assert_eq!(
            (o.rows_read, o.rows_loaded, o.rows_quarantined),
            (records, keys, 0),
            "{f}: {:?}",
            o.message
        );
        // ga_session_id is flattened from event_params into a typed property
        assert_eq!(
            count(&ws, "SELECT count(*) FROM events WHERE json_type(properties, '$.ga_session_id') NOT IN ('BIGINT', 'UBIGINT')"),
            0,
            "{f}"
        );
    }

    // Segment SDK batches: every fixture has the same messageId, so each file is imported on
    // its own; identity and groups come from the alias and group calls.
    let ws = Workspace::in_memory().unwrap();
    for f in ["track", "page", "screen", "identify", "group", "alias"] {
        let ws1 = Workspace::in_memory().unwrap();
        let o = import_one(
            &ws1,
            &s.join(format!("segment/analytics-go_test-enqueue-{f}.json")),
            None,
        );
        assert_eq!(o.vendor.as_deref(), Some("segment"), "{f}");
        assert_eq!((o.rows_read, o.rows_loaded), (1, 1), "{f}: {:?}", o.message);
        assert_eq!(
            count(
                &ws1,
                "SELECT count(*) FROM events WHERE event_kind = ?"
                    .replace('?', &format!("'{f}'"))
                    .as_str()
            ),
            1,
            "{f}"
        );
        if f == "alias" {
            assert_eq!(count(&ws1, "SELECT count(*) FROM identity_links WHERE link_kind = 'alias' AND from_id = 'A' AND to_id = 'B'"), 1);
        }
        if f == "group" {
            assert_eq!(count(&ws1, "SELECT count(*) FROM group_snapshots"), 1);
        }
    }
    let o = import_one(
        &ws,
        &s.join("segment/analytics-go_test-context-track.json"),
        None,
    );
    assert_eq!((o.vendor.as_deref(), o.rows_loaded), (Some("segment"), 1));
    // batch-level context applies to the record
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE (properties->'$.\"$context\"') IS NOT NULL"
        ),
        1
    );

    // Amplitude records wrapped as Airbyte messages: the events stream loads (here as
    // duplicates of the derived file), the other streams are quarantined with a reason.
    let ws = Workspace::in_memory().unwrap();
    import_one(
        &ws,
        &s.join("amplitude/airbyte-source-amplitude_events.derived.jsonl"),
        None,
    );
    let o = import_one(
        &ws,
        &s.join("amplitude/airbyte-source-amplitude_expected_records.jsonl"),
        None,
    );
    let text = std::fs::read_to_string(
        s.join("amplitude/airbyte-source-amplitude_expected_records.jsonl"),
    )
    .unwrap();
    let events_stream = text
        .lines()
        .filter(|l| l.contains("\"stream\": \"events\""))
        .count() as u64;
    assert_eq!(o.vendor.as_deref(), Some("amplitude"));
    assert_eq!(o.rows_read, text.lines().count() as u64);
    assert_eq!((o.rows_loaded, o.rows_duplicate), (0, events_stream));
    assert_eq!(o.rows_quarantined, o.rows_read - events_stream);
    assert_invariant(&o);
}

#[test]
fn vendor_bad_inputs_are_quarantined_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ws = Workspace::in_memory().unwrap();
    let mp = write(
        "mixpanel.jsonl",
        "{\"event\":\"a\",\"properties\":{\"time\":1684951135,\"distinct_id\":\"u1\",\"$insert_id\":\"i1\"}}\n{\"event\":\"b\"}\n{\"event\":\"c\",\"properties\":{\"distinct_id\":\"u1\"}}\n{\"event\":\"d\",\"properties\":{\"time\":1684951135000,\"distinct_id\":\"u1\",\"$insert_id\":\"i2\"}}\n",
    );
    let o = import_one(&ws, &mp, Some("mixpanel"));
    assert_eq!(
        (o.rows_read, o.rows_loaded, o.rows_quarantined),
        (4, 2, 2),
        "{:?}",
        o.message
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE reason = 'missing field \"properties\"'"
        ),
        1
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM quarantine WHERE reason = 'missing or non-numeric properties.time'"), 1);
    // seconds and milliseconds give the same instant
    assert_eq!(
        count(
            &ws,
            "SELECT count(DISTINCT ts_utc) FROM events WHERE source_vendor = 'mixpanel'"
        ),
        1
    );

    let ga = write(
        "ga4.jsonl",
        "{\"event_date\":\"20240101\",\"event_timestamp\":\"1704067200000000\",\"event_name\":\"page_view\",\"user_pseudo_id\":\"p1\",\"event_params\":[{\"key\":\"ga_session_id\",\"value\":{\"int_value\":\"1704067200\"}}]}\n{\"event_date\":\"20240101\",\"event_timestamp\":\"1704067201000000\",\"event_name\":\"page_view\",\"user_pseudo_id\":\"p1\",\"event_params\":{\"ga_session_id\":1}}\n{\"event_date\":\"20240101\",\"event_timestamp\":\"soon\",\"event_name\":\"page_view\",\"user_pseudo_id\":\"p1\"}\n",
    );
    let o = import_one(&ws, &ga, None);
    assert_eq!(
        (
            o.vendor.as_deref(),
            o.rows_read,
            o.rows_loaded,
            o.rows_quarantined
        ),
        (Some("ga4"), 3, 1, 2),
        "{:?}",
        o.message
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE reason LIKE 'malformed \"event_params\"%'"
        ),
        1
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE session_id = 'p1:1704067200'"
        ),
        1
    );

    let seg = write(
        "segment.jsonl",
        "{\"type\":\"track\",\"messageId\":\"m1\",\"event\":\"Signed Up\",\"anonymousId\":\"a1\",\"userId\":\"u1\",\"timestamp\":\"2024-01-01T00:00:00Z\"}\n{\"type\":\"track\",\"messageId\":\"m2\",\"anonymousId\":\"a1\",\"timestamp\":\"2024-01-01T00:00:01Z\"}\n{\"type\":\"launch\",\"messageId\":\"m3\",\"anonymousId\":\"a1\",\"timestamp\":\"2024-01-01T00:00:02Z\"}\n{\"type\":\"page\",\"messageId\":\"m4\",\"timestamp\":\"2024-01-01T00:00:03Z\"}\n",
    );
    let o = import_one(&ws, &seg, None);
    assert_eq!(
        (
            o.vendor.as_deref(),
            o.rows_read,
            o.rows_loaded,
            o.rows_quarantined
        ),
        (Some("segment"), 4, 1, 3),
        "{:?}",
        o.message
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM identity_links WHERE link_kind = 'device_user_pair' AND from_id = 'a1' AND to_id = 'u1'"), 1);
}

fn generated(
    dir: &Path,
    name: &str,
    events: usize,
    seed: u64,
) -> (PathBuf, stitchbook_engine::generate::GroundTruth) {
    let p = dir.join(name);
    let truth = write_posthog_jsonl(
        &p,
        &GenerateOptions {
            events,
            seed,
            duplicate_rate: 0.02,
            malformed_rate: 0.005,
            ..Default::default()
        },
    )
    .unwrap();
    (p, truth)
}

#[test]
fn generated_files_load_as_their_ground_truth_says() {
    let dir = tempfile::tempdir().unwrap();
    for (name, seed) in [("gen.jsonl", 11u64), ("gen.jsonl.gz", 12)] {
        let (p, truth) = generated(dir.path(), name, 4000, seed);
        assert!(truth.duplicates_injected > 0 && truth.malformed_injected > 0);
        let ws = Workspace::in_memory().unwrap();
        let o = import_one(&ws, &p, None);
        assert_eq!(o.rows_read as usize, truth.lines, "{name}");
        assert_eq!(o.rows_loaded as usize, truth.unique_events, "{name}");
        assert_eq!(
            o.rows_duplicate as usize, truth.duplicates_injected,
            "{name}"
        );
        assert_eq!(
            o.rows_quarantined as usize, truth.malformed_injected,
            "{name}"
        );
        assert_invariant(&o);
        assert_eq!(
            count(&ws, "SELECT count(*) FROM identity_links") as usize,
            truth.identity_links_expected,
            "{name}"
        );
        for (event, n) in &truth.events_by_name {
            let mut stmt = ws
                .conn()
                .prepare("SELECT count(*) FROM events WHERE event_name = ?")
                .unwrap();
            let got: i64 = stmt.query_row([event], |r| r.get(0)).unwrap();
            assert_eq!(got as usize, *n, "{name}: {event}");
        }
        // Every event of an identified, logged-in person carries its company group.
        assert!(
            count(
                &ws,
                "SELECT count(*) FROM events WHERE (groups->'$.company') IS NOT NULL"
            ) > 0
        );
    }
}

#[test]
fn reimport_adds_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (p, truth) = generated(dir.path(), "again.jsonl", 1500, 3);
    let ws = Workspace::in_memory().unwrap();
    let first = import_one(&ws, &p, None);
    let after_first = data_counts(&ws);
    let second = import_one(&ws, &p, None);
    let after_second = data_counts(&ws);
    assert_eq!(first.rows_loaded as usize, truth.unique_events);
    assert!(first.rows_quarantined > 0);
    assert_eq!(second.rows_loaded, 0);
    assert_eq!(second.rows_quarantined, 0, "already quarantined");
    assert_eq!(
        second.rows_duplicate as usize,
        truth.unique_events + truth.duplicates_injected + truth.malformed_injected
    );
    assert_invariant(&second);
    assert_eq!(second.identical_to, first.import_id);
    assert!(second
        .message
        .unwrap_or_default()
        .contains("identical to import"));
    assert_eq!(
        after_first, after_second,
        "events, links, quarantine and snapshots unchanged"
    );
    // The import log still records both imports, and each quarantined row belongs to one.
    assert_eq!(count(&ws, "SELECT count(*) FROM imports"), 2);
    assert_eq!(
        count(&ws, "SELECT sum(rows_quarantined) FROM imports"),
        after_second[2]
    );
}

#[test]
fn a_record_quarantined_before_is_a_duplicate_in_another_file_but_new_bad_records_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ok = |i: u32| {
        format!("{{\"uuid\":\"u{i}\",\"event\":\"e\",\"distinct_id\":\"d\",\"timestamp\":\"2024-01-01T00:00:0{i}Z\"}}")
    };
    let bad = "{\"uuid\":\"b1\",\"event\":\"e\",\"distinct_id\":\"d\",\"timestamp\":\"soon\"}";
    let a = dir.path().join("a.jsonl");
    std::fs::write(&a, format!("{}\n{bad}\n{bad}\n", ok(1))).unwrap();
    let b = dir.path().join("b.jsonl");
    std::fs::write(&b, format!("{}\n{bad}\nnot json\n{}\n", ok(1), ok(2))).unwrap();
    let ws = Workspace::in_memory().unwrap();
    let first = import_one(&ws, &a, None);
    // Within one file every bad line is kept, with its own line number.
    assert_eq!((first.rows_loaded, first.rows_quarantined), (1, 2));
    let second = import_one(&ws, &b, None);
    assert_eq!(
        (
            second.rows_read,
            second.rows_loaded,
            second.rows_duplicate,
            second.rows_quarantined
        ),
        (4, 1, 2, 1),
        "{:?}",
        second.message
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE source_file LIKE '%b.jsonl' AND source_line = 3 AND raw = 'not json'"
        ),
        1
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM quarantine"), 3);
}

fn cancel_at(phase: &'static str) -> (JobCtx, CancelToken) {
    let token = CancelToken::new();
    let t2 = token.clone();
    let ctx = JobCtx::new(
        move |ev| {
            if let JobEvent::Progress { phase: p, rows, .. } = ev {
                if p == phase && *rows > 0 {
                    t2.cancel();
                }
            }
        },
        token.clone(),
    );
    (ctx, token)
}

#[test]
fn cancelled_import_leaves_workspace_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = generated(dir.path(), "base.jsonl", 800, 5);
    let (big, truth) = generated(dir.path(), "big.jsonl", 40_000, 6);
    for phase in ["reading", "parsing", "deduplicating", "writing"] {
        let ws = Workspace::in_memory().unwrap();
        import_one(&ws, &base, None);
        let before = data_counts(&ws);
        let (ctx, _token) = cancel_at(phase);
        let report = import_paths(
            &ws,
            std::slice::from_ref(&big),
            &ImportOptions::default(),
            &ctx,
        )
        .unwrap();
        assert!(report.cancelled, "{phase}");
        assert_eq!(report.files[0].status, ImportStatus::Cancelled, "{phase}");
        assert_eq!(data_counts(&ws), before, "{phase}: workspace unchanged");
        assert_eq!(
            count(
                &ws,
                "SELECT count(*) FROM imports WHERE status = 'cancelled'"
            ),
            1,
            "{phase}"
        );
        // The workspace is still usable: the same file imports fully afterwards.
        let o = import_one(&ws, &big, None);
        assert_eq!(
            o.rows_loaded as usize, truth.unique_events,
            "{phase}: {:?}",
            o.message
        );
    }
}

#[test]
fn cancel_from_another_thread_interrupts() {
    let dir = tempfile::tempdir().unwrap();
    let (big, _) = generated(dir.path(), "big.jsonl", 60_000, 8);
    let ws = Workspace::in_memory().unwrap();
    let token = CancelToken::new();
    let t2 = token.clone();
    let started = Arc::new(std::sync::Barrier::new(2));
    let s2 = started.clone();
    let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ctx = JobCtx::new(
        move |ev| {
            if matches!(ev, JobEvent::Started { .. }) {
                s2.wait();
            }
        },
        token.clone(),
    );
    let sent2 = sent.clone();
    let canceller = std::thread::spawn(move || {
        started.wait();
        std::thread::sleep(std::time::Duration::from_millis(150));
        t2.cancel();
        sent2.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let report = import_paths(&ws, &[big], &ImportOptions::default(), &ctx).unwrap();
    canceller.join().unwrap();
    assert!(sent.load(std::sync::atomic::Ordering::SeqCst));
    // Either it finished before the cancel arrived, or it was cancelled cleanly.
    if report.cancelled {
        assert_eq!(data_counts(&ws), [0, 0, 0, 0, 0]);
    } else {
        assert_eq!(report.files[0].status, ImportStatus::Complete);
    }
}

#[test]
fn progress_reports_bytes_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (big, _) = generated(dir.path(), "p.jsonl", 30_000, 9);
    let size = std::fs::metadata(&big).unwrap().len();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let ctx = JobCtx::new(
        move |ev| s2.lock().unwrap().push(ev.clone()),
        CancelToken::new(),
    );
    let ws = Workspace::in_memory().unwrap();
    import_paths(&ws, &[big], &ImportOptions::default(), &ctx).unwrap();
    let events = seen.lock().unwrap();
    assert!(matches!(
        events.first(),
        Some(JobEvent::Started { files: 1, .. })
    ));
    assert!(matches!(
        events.last(),
        Some(JobEvent::Finished { files: 1 })
    ));
    let last_read = events
        .iter()
        .rev()
        .find_map(|e| match e {
            JobEvent::Progress {
                phase,
                bytes_done,
                bytes_total,
                rows,
                ..
            } if phase == "reading" => Some((*bytes_done, *bytes_total, *rows)),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_read.0, size);
    assert_eq!(last_read.1, size);
    assert!(last_read.2 > 30_000);
}

#[test]
fn large_and_deep_records_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    // A 20 MB single line: one event with a huge property.
    let big = dir.path().join("big_line.jsonl");
    let huge = "x".repeat(20 * 1024 * 1024);
    let line = serde_json::json!({"uuid": "u-big", "event": "$pageview", "distinct_id": "d", "timestamp": "2024-03-01T10:00:00Z", "properties": {"blob": huge}});
    std::fs::write(&big, format!("{line}\n")).unwrap();
    check_case("20 MB line", &big, None, Expect::Rows(1, 1, 0, 0));

    // 1000-deep nesting inside properties.
    let deep = dir.path().join("deep.jsonl");
    let nested = format!("{}1{}", "{\"a\":".repeat(1000), "}".repeat(1000));
    let ok = r#"{"uuid":"u1","event":"e","distinct_id":"d","timestamp":"2024-03-01T10:00:00Z","properties":{}}"#;
    let text = format!(
        "{ok}\n{{\"uuid\":\"u2\",\"event\":\"e\",\"distinct_id\":\"d\",\"timestamp\":\"2024-03-01T10:00:00Z\",\"properties\":{nested}}}\n"
    );
    std::fs::write(&deep, text).unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &deep, None);
    assert_eq!(o.status, ImportStatus::Complete);
    assert_eq!(o.rows_read, 2);
    assert_invariant(&o);
    assert!(o.rows_loaded >= 1);
}

fn write_parquet(ws: &Workspace, select: &str, out: &Path) {
    ws.conn()
        .execute(
            &format!("COPY ({select}) TO '{}' (FORMAT parquet)", out.display()),
            [],
        )
        .unwrap();
}

#[test]
fn posthog_parquet_and_csv_load_and_dedupe_across_imports() {
    let dir = tempfile::tempdir().unwrap();
    let sample = samples().join("posthog/events.jsonl");
    let scratch = Workspace::in_memory().unwrap();
    let select = format!(
        "SELECT uuid, event, distinct_id, CAST(timestamp AS TIMESTAMPTZ) AS timestamp, CAST(properties AS VARCHAR) AS properties, elements_chain
         FROM read_json('{}', format = 'newline_delimited', columns = {{uuid: 'VARCHAR', event: 'VARCHAR', distinct_id: 'VARCHAR', timestamp: 'VARCHAR', properties: 'JSON', elements_chain: 'VARCHAR'}})",
        sample.display()
    );
    let pq = dir.path().join("events.parquet");
    write_parquet(&scratch, &select, &pq);
    let csv = dir.path().join("events.csv");
    scratch
        .conn()
        .execute(
            &format!(
                "COPY ({select}) TO '{}' (HEADER, DELIMITER ',')",
                csv.display()
            ),
            [],
        )
        .unwrap();

    let ws = Workspace::in_memory().unwrap();
    let a = import_one(&ws, &pq, None);
    assert_eq!(
        (a.vendor.as_deref(), a.container.as_deref()),
        (Some("posthog"), Some("parquet"))
    );
    assert_eq!(
        (a.rows_read, a.rows_loaded, a.rows_quarantined),
        (82, 82, 0),
        "{:?}",
        a.message
    );
    // Same instants as the JSON lines sample.
    let first: String = ws
        .conn()
        .query_row(
            "SELECT strftime(ts_utc, '%Y-%m-%dT%H:%M:%S.%f') FROM events WHERE event_uuid = '018a981f-4b35-7c66-825e-8b0eeae65714'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(first, "2023-09-15T09:15:02.325000");
    let b = import_one(&ws, &csv, None);
    assert_eq!(
        (b.vendor.as_deref(), b.container.as_deref()),
        (Some("posthog"), Some("csv"))
    );
    assert_eq!(
        (b.rows_read, b.rows_loaded, b.rows_duplicate),
        (82, 0, 82),
        "{:?}",
        b.message
    );
    let c = import_one(&ws, &sample, None);
    assert_eq!((c.rows_loaded, c.rows_duplicate), (0, 82));
    assert_eq!(count(&ws, "SELECT count(*) FROM events"), 82);
    // properties parsed from text in both containers
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE session_id IS NOT NULL"
        ),
        count(
            &ws,
            "SELECT count(*) FROM events WHERE properties->>'$.\"$session_id\"' IS NOT NULL"
        )
    );
}

#[test]
fn parquet_with_the_wrong_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    let pq = dir.path().join("wrong.parquet");
    write_parquet(&ws, "SELECT 1 AS id, 'x' AS name", &pq);
    check_case(
        "wrong schema parquet",
        &pq,
        Some("posthog"),
        Expect::Fails("missing uuid"),
    );
    check_case(
        "unknown parquet",
        &pq,
        None,
        Expect::Fails("could not recognise"),
    );
}

#[test]
fn generic_csv_and_parquet_with_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("app_events.csv");
    std::fs::write(
        &csv,
        "id,action,at_ms,uid,device,sess,plan\n\
         e1,open,1709287200000,,dev-1,s1,free\n\
         e2,signup,1709287260000,u-1,dev-1,s1,free\n\
         e3,upgrade,1709290800000,u-1,dev-1,s2,pro\n\
         e3,upgrade,1709290800000,u-1,dev-1,s2,pro\n\
         e4,,1709290900000,u-1,dev-1,s2,pro\n\
         e5,open,not-a-time,,dev-2,s3,free\n",
    )
    .unwrap();
    let mapping_path = dir.path().join("mapping.toml");
    std::fs::write(
        &mapping_path,
        "event = \"action\"\ntimestamp = \"at_ms\"\ntimestamp_format = \"epoch_ms\"\nuser_id = \"uid\"\nanon_id = \"device\"\nsession_id = \"sess\"\nevent_id = \"id\"\n",
    )
    .unwrap();
    let mapping = ColumnMapping::load(&mapping_path).unwrap();
    let opts = ImportOptions {
        mapping: Some(mapping.clone()),
        ..Default::default()
    };
    let ws = Workspace::in_memory().unwrap();
    let r = import_paths(&ws, std::slice::from_ref(&csv), &opts, &JobCtx::silent()).unwrap();
    let o = &r.files[0];
    assert_eq!(o.vendor.as_deref(), Some("generic"));
    assert_eq!(
        (
            o.rows_read,
            o.rows_loaded,
            o.rows_duplicate,
            o.rows_quarantined
        ),
        (6, 3, 1, 2),
        "{:?}",
        o.message
    );
    assert_eq!(
        count(&ws, "SELECT count(*) FROM events WHERE user_id = 'u-1'"),
        2
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE distinct_id = 'dev-1'"
        ),
        1
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE properties->>'$.plan' = 'pro'"
        ),
        1
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE properties->>'$.action' IS NOT NULL"
        ),
        0,
        "mapped columns are not repeated in properties"
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM identity_links WHERE link_kind = 'device_user_pair' AND from_id = 'dev-1' AND to_id = 'u-1'"), 1);
    let ts: String = ws
        .conn()
        .query_row(
            "SELECT strftime(ts_utc, '%Y-%m-%dT%H:%M:%S') FROM events WHERE event_uuid = 'e1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ts, "2024-03-01T10:00:00");

    // The same data as Parquet, with typed columns.
    let pq = dir.path().join("app_events.parquet");
    write_parquet(
        &ws,
        &format!("SELECT id, action, CAST(at_ms AS BIGINT) AS at_ms, uid, device, sess, plan FROM read_csv('{}', all_varchar = true) WHERE at_ms <> 'not-a-time'", csv.display()),
        &pq,
    );
    let ws2 = Workspace::in_memory().unwrap();
    let r = import_paths(&ws2, &[pq], &opts, &JobCtx::silent()).unwrap();
    let o = &r.files[0];
    assert_eq!(
        (
            o.rows_read,
            o.rows_loaded,
            o.rows_duplicate,
            o.rows_quarantined
        ),
        (5, 3, 1, 1),
        "{:?}",
        o.message
    );
    assert_eq!(
        count(&ws2, "SELECT count(*) FROM events WHERE session_id = 's2'"),
        1
    );

    // A mapping naming a column the file lacks is refused with the column's name.
    let bad = ColumnMapping {
        session_id: Some("session".into()),
        ..mapping
    };
    let r = import_paths(
        &ws2,
        &[csv],
        &ImportOptions {
            mapping: Some(bad),
            ..Default::default()
        },
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(r.files[0].status, ImportStatus::Failed);
    assert!(r.files[0]
        .message
        .clone()
        .unwrap_or_default()
        .contains("missing session"));
}

#[test]
fn folders_are_read_recursively_and_each_file_accounted() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("exports/2024/03");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::copy(fixture("crlf.jsonl"), sub.join("a.jsonl")).unwrap();
    std::fs::copy(
        fixture("bad_timestamp.jsonl"),
        dir.path().join("exports/b.jsonl"),
    )
    .unwrap();
    std::fs::copy(
        fixture("unknown_vendor.jsonl"),
        dir.path().join("exports/c.jsonl"),
    )
    .unwrap();
    std::fs::write(dir.path().join("exports/.DS_Store"), "junk").unwrap();
    let ws = Workspace::in_memory().unwrap();
    let r = import_paths(
        &ws,
        &[dir.path().join("exports")],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(r.files.len(), 3);
    let statuses: Vec<_> = r.files.iter().map(|f| f.status).collect();
    assert_eq!(
        statuses,
        vec![
            ImportStatus::Complete,
            ImportStatus::Complete,
            ImportStatus::Failed
        ]
    );
    let (read, loaded, dup, quar) = r.totals();
    assert_eq!(read, loaded + dup + quar);
    // b.jsonl's first event has the same uuid as a.jsonl's: a duplicate across files.
    assert_eq!((read, loaded, dup, quar), (6, 3, 1, 2));
    assert_eq!(count(&ws, "SELECT count(*) FROM events"), 3);
}

#[test]
fn format_override_is_validated() {
    assert!(FormatOverride::parse("posthog").is_ok());
    assert!(FormatOverride::parse("posthog:csv").is_ok());
    assert!(FormatOverride::parse("parquet").is_ok());
    assert!(FormatOverride::parse("excel").is_err());
    assert_eq!(
        FormatOverride::parse("posthog:csv").unwrap().label(),
        "posthog:csv"
    );
    // The override is recorded in the import log as given.
    let ws = Workspace::in_memory().unwrap();
    import_one(&ws, &fixture("crlf.jsonl"), Some("posthog:jsonl"));
    let recorded: String = ws
        .conn()
        .query_row("SELECT format_override FROM imports", [], |r| r.get(0))
        .unwrap();
    assert_eq!(recorded, "posthog:jsonl");
}

#[test]
fn vendor_container_corpus() {
    // Amplitude Export API zips.
    check_case(
        "zip with a corrupt member",
        &fixture("amplitude_corrupt_member.zip"),
        None,
        Expect::Fails("zip member 187520/187520_2024-03-01_10#1.json.gz is truncated or corrupt"),
    );
    check_case(
        "zip member that is not gzip",
        &fixture("amplitude_member_not_gzip.zip"),
        None,
        Expect::Fails("is neither gzip nor JSON lines"),
    );
    check_case(
        "zip without data members",
        &fixture("amplitude_no_members.zip"),
        None,
        Expect::Fails("holds no .json.gz or .json members (found: README.txt)"),
    );
    // A plain-text member named .json.gz is read as it is; a broken line is quarantined
    // with its member and line; the macOS resource fork is skipped and reported.
    check_case(
        "zip member in plain text",
        &fixture("amplitude_member_plain_json.zip"),
        None,
        Expect::Rows(6, 5, 0, 1),
    );
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &fixture("amplitude_member_plain_json.zip"), None);
    assert_eq!(o.vendor.as_deref(), Some("amplitude"));
    assert!(
        o.message
            .as_deref()
            .unwrap_or_default()
            .contains("skipped 1 zip member(s) that are not JSON lines: __MACOSX/._x"),
        "{:?}",
        o.message
    );
    let (file, line): (String, i64) = ws
        .conn()
        .query_row("SELECT source_file, source_line FROM quarantine", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(
        file.ends_with("amplitude_member_plain_json.zip!/187520/187520_2024-03-01_9#1.json.gz"),
        "{file}"
    );
    assert_eq!(line, 4);
    // Members in natural order: hour 9 before hour 10.
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE source_file LIKE '%_9#1.json.gz' AND source_line = 1 AND event_uuid = '10000000-0000-4000-8000-000000000001'"
        ),
        1
    );

    // Snowplow enriched TSV: rows with the wrong number of fields are quarantined.
    check_case(
        "Snowplow TSV with short and long rows",
        &fixture("snowplow_short_rows.tsv"),
        None,
        Expect::Rows(4, 2, 0, 2),
    );
    let ws = Workspace::in_memory().unwrap();
    import_one(&ws, &fixture("snowplow_short_rows.tsv"), None);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM quarantine WHERE reason = 'expected 131 fields (the Snowplow enriched-event layout), found 100' AND source_line = 2"
        ),
        1
    );
    // Self-describing JSON columns arrive as JSON, quotes intact.
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE properties->>'$.contexts.data[0].data.q' = 'a \"quoted\" word' AND session_id = 'sess-1' AND anon_id = 'duid-1'"
        ),
        2
    );
    check_case(
        "Snowplow TSV too short to recognise",
        &fixture("snowplow_all_short.tsv"),
        None,
        Expect::Fails("could not recognise"),
    );
    check_case(
        "Snowplow TSV too short, named with --format",
        &fixture("snowplow_all_short.tsv"),
        Some("snowplow"),
        Expect::Rows(2, 0, 0, 2),
    );
}

#[test]
fn a_file_with_two_vendors_records_is_ambiguous_and_names_the_override() {
    check_case(
        "two vendors in one file",
        &fixture("ambiguous_vendors.jsonl"),
        None,
        Expect::Fails("ambiguous: its records look like PostHog events (first at line 1) and Mixpanel events (first at line 3); name the format with --format posthog or --format mixpanel"),
    );
    check_case(
        "two vendors, PostHog named",
        &fixture("ambiguous_vendors.jsonl"),
        Some("posthog"),
        Expect::Rows(3, 2, 0, 1),
    );
}

#[test]
fn ga4_repeated_param_keys_keep_the_first_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ga4_dupes.jsonl");
    std::fs::write(
        &p,
        "{\"event_date\":\"20240101\",\"event_timestamp\":\"1704067200000000\",\"event_name\":\"page_view\",\"user_pseudo_id\":\"p1\",\"event_params\":[{\"key\":\"page_title\",\"value\":{\"string_value\":\"first\"}},{\"key\":\"page_title\",\"value\":{\"string_value\":\"second\"}},{\"key\":\"ga_session_id\",\"value\":{\"int_value\":\"17\"}}]}\n",
    )
    .unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(
        (o.rows_loaded, o.rows_quarantined),
        (1, 0),
        "{:?}",
        o.message
    );
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM events WHERE (properties->>'$.page_title') = 'first' AND (properties->>'$.ga_session_id') = '17' AND session_id = 'p1:17'"
        ),
        1
    );
}

// ---- the import wizard's preview ----

use stitchbook_engine::ingest::preview::{preview, ImportChoice};

#[test]
fn preview_maps_the_first_records_as_the_import_would_without_a_workspace() {
    let path = samples().join("posthog/events.jsonl");
    let p = preview(&path, &ImportOptions::default(), 5).unwrap();
    assert_eq!(p.vendor.as_deref(), Some("posthog"));
    assert_eq!(p.container.as_deref(), Some("jsonl"));
    assert_eq!(p.target.as_deref(), Some("events"));
    assert!(p.problem.is_none(), "{:?}", p.problem);
    assert!(!p.needs_mapping);
    assert_eq!(p.rows.len(), 5, "the preview stops at the limit");
    let col = |name: &str| p.columns.iter().position(|c| c == name).unwrap();
    // The same values the import writes for those lines.
    let ws = Workspace::in_memory().unwrap();
    import_one(&ws, &path, None);
    for row in &p.rows {
        let line: i64 = row[col("line")].as_ref().unwrap().parse().unwrap();
        let (name, distinct): (String, String) = ws
            .conn()
            .query_row(
                "SELECT event_name, distinct_id FROM events WHERE source_line = ?",
                [line],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row[col("event_name")].as_deref(), Some(name.as_str()));
        assert_eq!(row[col("distinct_id")].as_deref(), Some(distinct.as_str()));
    }
    assert!(
        p.source_columns.iter().any(|c| c == "event"),
        "{:?}",
        p.source_columns
    );
}

#[test]
fn preview_of_an_unrecognised_csv_offers_its_columns_then_maps_with_a_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("clicks.csv");
    std::fs::write(
        &csv,
        "when,action,who,device,amount\n\
         2024-03-01T10:00:00Z,Opened app,u1,d1,3\n\
         not a time,Clicked,u2,d2,4\n\
         2024-03-01T10:05:00Z,Clicked,u1,d1,5\n",
    )
    .unwrap();
    let p = preview(&csv, &ImportOptions::default(), 20).unwrap();
    assert!(p.needs_mapping, "{p:?}");
    assert!(p
        .problem
        .as_deref()
        .unwrap()
        .contains("could not recognise"));
    assert_eq!(
        p.source_columns,
        ["when", "action", "who", "device", "amount"]
    );
    assert_eq!(p.raw_samples.len(), 3);
    assert!(p.rows.is_empty());

    let choice: ImportChoice = serde_json::from_value(serde_json::json!({
        "index": 0, "format": null,
        "mapping": {"event": "action", "timestamp": "when", "timestamp_format": "iso8601",
                    "user_id": "who", "anon_id": "device", "session_id": null,
                    "distinct_id": null, "event_id": null}
    }))
    .unwrap();
    let p = preview(&csv, &choice.options().unwrap(), 20).unwrap();
    assert_eq!(p.vendor.as_deref(), Some("generic"));
    assert!(!p.needs_mapping && p.problem.is_none(), "{p:?}");
    assert_eq!(p.rows.len(), 3);
    assert_eq!(
        p.rejected, 1,
        "the row without a valid time would be quarantined"
    );
    let col = |name: &str| p.columns.iter().position(|c| c == name).unwrap();
    assert_eq!(p.rows[0][col("event_name")].as_deref(), Some("Opened app"));
    assert_eq!(p.rows[0][col("user_id")].as_deref(), Some("u1"));
    assert!(p.rows[1][col("reject_reason")].is_some());

    // The import with the same choice gives the same accounting.
    let ws = Workspace::in_memory().unwrap();
    let r = stitchbook_engine::ingest::import_plan(
        &ws,
        &[(csv.clone(), choice.options().unwrap())],
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(
        (r.files[0].rows_loaded, r.files[0].rows_quarantined),
        (2, 1)
    );
}

#[test]
fn import_choices_refuse_bad_overrides_and_mappings() {
    let bad_format: ImportChoice =
        serde_json::from_value(serde_json::json!({"index": 0, "format": "excel", "mapping": null}))
            .unwrap();
    assert!(bad_format.options().is_err());
    let bad_mapping: ImportChoice = serde_json::from_value(serde_json::json!({
        "index": 0, "format": null,
        "mapping": {"event": "", "timestamp": "t", "timestamp_format": "iso8601", "user_id": null,
                    "anon_id": null, "session_id": null, "distinct_id": null, "event_id": null}
    }))
    .unwrap();
    assert!(bad_mapping.options().is_err());
}

#[test]
fn preview_reads_only_the_first_records_of_every_container() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    let jsonl = dir.path().join("ph.jsonl");
    write_posthog_jsonl(
        &jsonl,
        &GenerateOptions {
            events: 500,
            malformed_rate: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let parquet = dir.path().join("ph.parquet");
    write_parquet(
        &ws,
        &format!(
            "SELECT * FROM read_json_auto('{}', format = 'newline_delimited')",
            jsonl.display()
        ),
        &parquet,
    );
    for f in [&jsonl, &parquet] {
        let p = preview(f, &ImportOptions::default(), 7).unwrap();
        assert_eq!(
            p.vendor.as_deref(),
            Some("posthog"),
            "{}: {p:?}",
            f.display()
        );
        assert_eq!(p.rows.len(), 7, "{}", f.display());
    }
}

/// The quarantine reason of one line of the workspace's only file.
fn reason_at(ws: &Workspace, line: i64) -> String {
    ws.conn()
        .query_row(
            "SELECT reason FROM quarantine WHERE source_line = ?",
            [line],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("no quarantine row for line {line}: {e}"))
}

#[test]
fn records_without_a_person_id_or_of_another_vendor_are_quarantined_past_the_sniffed_head() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, lines: &[String]| {
        let p = dir.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p
    };
    // 60 good records: more than the format check reads.
    let posthog: Vec<String> = (0..60)
        .map(|i| format!("{{\"uuid\":\"p{i}\",\"event\":\"$pageview\",\"distinct_id\":\"d{i}\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"properties\":{{}}}}"))
        .collect();
    let amplitude_rec = |i: usize, ids: &str| {
        format!("{{\"uuid\":\"a{i}\",\"event_type\":\"Played\",\"event_time\":\"2024-01-01 00:00:00.000000\",\"amplitude_id\":{i}{ids}}}")
    };
    let mixpanel_rec = "{\"event\":\"Played\",\"properties\":{\"time\":1704067200,\"distinct_id\":\"m1\",\"$insert_id\":\"mx\"}}".to_string();
    let segment_rec = "{\"type\":\"track\",\"messageId\":\"s1\",\"event\":\"Played\",\"userId\":\"u1\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"properties\":{\"time\":1704067200}}".to_string();
    let persons_rec =
        "{\"distinct_id\":\"d1\",\"person_id\":\"p1\",\"person_version\":1,\"properties\":{}}"
            .to_string();

    // A PostHog file: another vendor's records and records without a distinct_id after line 60.
    let mut lines = posthog.clone();
    lines.extend([
        amplitude_rec(1, ",\"user_id\":\"u1\""),
        mixpanel_rec.clone(),
        segment_rec.clone(),
        persons_rec,
        "{\"uuid\":\"p98\",\"event\":\"$pageview\",\"timestamp\":\"2024-01-01T00:00:00Z\"}".into(),
        "{\"uuid\":\"p99\",\"event\":\"$pageview\",\"distinct_id\":\" \",\"timestamp\":\"2024-01-01T00:00:00Z\"}".into(),
    ]);
    let p = write("posthog.jsonl", &lines);
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(o.vendor.as_deref(), Some("posthog"));
    assert_eq!(
        (o.rows_read, o.rows_loaded, o.rows_quarantined),
        (66, 60, 6),
        "{:?}",
        o.message
    );
    assert_eq!(
        reason_at(&ws, 61),
        "looks like an Amplitude record in a PostHog file"
    );
    assert_eq!(
        reason_at(&ws, 62),
        "looks like a Mixpanel record in a PostHog file"
    );
    assert_eq!(
        reason_at(&ws, 63),
        "looks like a Segment record in a PostHog file"
    );
    assert_eq!(
        reason_at(&ws, 64),
        "looks like a PostHog persons record in a PostHog events file"
    );
    assert_eq!(reason_at(&ws, 65), "missing field \"distinct_id\"");
    assert_eq!(reason_at(&ws, 66), "field \"distinct_id\" is empty");
    assert_eq!(
        count(&ws, "SELECT count(*) FROM events WHERE distinct_id IS NULL"),
        0
    );

    // The same with the vendor named: the records of the other shapes are still quarantined.
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, Some("posthog"));
    assert_eq!((o.rows_loaded, o.rows_quarantined), (60, 6));
    assert_eq!(
        reason_at(&ws, 63),
        "looks like a Segment record in a PostHog file"
    );

    // Amplitude: a record needs a user_id or a device_id.
    let mut lines: Vec<String> = (0..60)
        .map(|i| amplitude_rec(i + 100, &format!(",\"device_id\":\"dev{i}\"")))
        .collect();
    lines.push(posthog[0].clone());
    lines.push(amplitude_rec(1, ",\"user_id\":\"\",\"device_id\":null"));
    lines.push(segment_rec.clone());
    let p = write("amplitude.jsonl", &lines);
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(o.vendor.as_deref(), Some("amplitude"));
    assert_eq!(
        (o.rows_loaded, o.rows_quarantined),
        (60, 3),
        "{:?}",
        o.message
    );
    assert_eq!(
        reason_at(&ws, 61),
        "looks like a PostHog record in an Amplitude file"
    );
    assert_eq!(reason_at(&ws, 62), "neither \"user_id\" nor \"device_id\"");
    assert_eq!(
        reason_at(&ws, 63),
        "looks like a Segment record in an Amplitude file"
    );

    // Mixpanel events may lack a distinct_id (formats.md §3.1) and still load; a Segment
    // record that happens to carry properties.time does not.
    let mut lines: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "{{\"event\":\"Played\",\"properties\":{{\"time\":{},\"$insert_id\":\"i{i}\"}}}}",
                1704067200 + i
            )
        })
        .collect();
    lines.push(segment_rec.clone());
    let p = write("mixpanel.jsonl", &lines);
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(o.vendor.as_deref(), Some("mixpanel"));
    assert_eq!(
        (o.rows_loaded, o.rows_quarantined),
        (60, 1),
        "{:?}",
        o.message
    );
    assert_eq!(
        reason_at(&ws, 61),
        "looks like a Segment record in a Mixpanel file"
    );

    // Segment and RudderStack records share one mapping and may mix; a PostHog record may not.
    let mut lines: Vec<String> = (0..60)
        .map(|i| format!("{{\"type\":\"track\",\"messageId\":\"m{i}\",\"event\":\"Played\",\"anonymousId\":\"a{i}\",\"timestamp\":\"2024-01-01T00:00:00Z\"}}"))
        .collect();
    lines.push("{\"type\":\"page\",\"messageId\":\"r1\",\"rudderId\":\"x\",\"channel\":\"web\",\"anonymousId\":\"a1\",\"timestamp\":\"2024-01-01T00:00:00Z\"}".into());
    lines.push(posthog[0].clone());
    let p = write("segment.jsonl", &lines);
    let ws = Workspace::in_memory().unwrap();
    let o = import_one(&ws, &p, None);
    assert_eq!(o.vendor.as_deref(), Some("segment"));
    assert_eq!(
        (o.rows_loaded, o.rows_quarantined),
        (61, 1),
        "{:?}",
        o.message
    );
    assert_eq!(
        reason_at(&ws, 62),
        "looks like a PostHog record in a Segment file"
    );
}

/// Every loaded event as comparable text, in a stable order.
fn event_rows(ws: &Workspace) -> Vec<String> {
    ws.conn()
        .prepare(
            "SELECT concat_ws(' | ', source_line, event_uuid, event_name, event_kind, ts_utc, distinct_id, user_id, anon_id, properties::VARCHAR, person_properties::VARCHAR, groups::VARCHAR)
             FROM events ORDER BY source_line",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_one_line_segment_batch_loads_like_the_same_batch_pretty_printed() {
    let dir = tempfile::tempdir().unwrap();
    let batch = |n: usize, first: usize, pad: usize| {
        let records: Vec<serde_json::Value> = (first..first + n)
            .map(|i| {
                let call = ["track", "page", "identify"][i % 3];
                serde_json::json!({
                    "type": call,
                    "event": "Played",
                    "messageId": format!("m{i}"),
                    "anonymousId": format!("a{}", i % 7),
                    "userId": if i % 2 == 0 { serde_json::Value::Null } else { format!("u{i}").into() },
                    "timestamp": format!("2024-01-01T00:{:02}:00Z", i % 60),
                    "properties": {"i": i, "pad": "x".repeat(pad)},
                    "traits": {"plan": "pro"},
                })
            })
            .collect();
        serde_json::json!({
            "batch": records,
            "context": {"library": {"name": "analytics-go", "version": "3.0.0"}},
            "messageId": "batch-id",
            "sentAt": "2024-01-01T01:00:00Z",
        })
    };
    let load = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let ws = Workspace::in_memory().unwrap();
        let o = import_one(&ws, &p, None);
        assert_eq!(o.status, ImportStatus::Complete, "{name}: {:?}", o.message);
        assert_eq!(o.vendor.as_deref(), Some("segment"), "{name}");
        assert_eq!(o.container.as_deref(), Some("json"), "{name}");
        assert_eq!(o.rows_quarantined, 0, "{name}");
        event_rows(&ws)
    };
    let doc = batch(9, 0, 10);
    let pretty = load("pretty.json", serde_json::to_string_pretty(&doc).unwrap());
    assert_eq!(pretty.len(), 9);
    assert!(pretty[0].contains("analytics-go"), "batch context applies");
    assert_eq!(load("one_line.json", doc.to_string()), pretty);
    assert_eq!(load("one_line_nl.jsonl", doc.to_string() + "\n"), pretty);

    // Longer than the prefix the format check reads (256 KiB), on one line.
    let big = batch(400, 0, 1000);
    let pretty = load(
        "big_pretty.json",
        serde_json::to_string_pretty(&big).unwrap(),
    );
    assert_eq!(pretty.len(), 400);
    assert_eq!(load("big_one_line.json", big.to_string()), pretty);

    // One batch payload per line: the records of every batch, numbered in order.
    let both = load(
        "two_batches.jsonl",
        format!("{}\n{}\n", batch(3, 0, 1), batch(2, 3, 1)),
    );
    let one = load("five.json", batch(5, 0, 1).to_string());
    assert_eq!(both, one);
}

/// The import log's row for `file`: status and message.
fn log_row(ws: &Workspace, file: &str) -> (String, Option<String>) {
    ws.conn()
        .query_row(
            "SELECT status, message FROM imports WHERE path LIKE '%' || ? ORDER BY import_id DESC LIMIT 1",
            [file],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

#[test]
fn an_import_cut_off_midway_is_logged_as_interrupted_when_the_workspace_is_next_opened() {
    let dir = tempfile::tempdir().unwrap();
    let ws_path = dir.path().join("w.duckdb");
    let (base, _) = generated(dir.path(), "base.jsonl", 300, 21);
    let (big, truth) = generated(dir.path(), "big.jsonl", 20_000, 22);
    let before = {
        let ws = Workspace::open(&ws_path).unwrap();
        import_one(&ws, &base, None);
        data_counts(&ws)
    };
    for phase in ["reading", "writing"] {
        let ws = Workspace::open(&ws_path).unwrap();
        // A crash in the middle of the import, simulated by a panic from its progress report.
        let ctx = JobCtx::new(
            move |ev| {
                if let JobEvent::Progress { phase: p, .. } = ev {
                    if p == phase {
                        panic!("simulated crash while {phase}");
                    }
                }
            },
            CancelToken::new(),
        );
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            import_paths(
                &ws,
                std::slice::from_ref(&big),
                &ImportOptions::default(),
                &ctx,
            )
        }));
        assert!(r.is_err(), "{phase}: the import was cut off");
        // The attempt was logged before the file's transaction began.
        assert_eq!(log_row(&ws, "big.jsonl").0, "running", "{phase}");
        drop(ws);

        let ws = Workspace::open(&ws_path).unwrap();
        let (status, message) = log_row(&ws, "big.jsonl");
        assert_eq!(status, "interrupted", "{phase}");
        assert_eq!(
            message.as_deref(),
            Some(stitchbook_engine::ingest::INTERRUPTED_MESSAGE)
        );
        assert_eq!(
            data_counts(&ws),
            before,
            "{phase}: nothing of the file was written"
        );
        let info = stitchbook_engine::info::workspace_info(&ws, 5).unwrap();
        assert_eq!(
            info.imports.last().map(|i| i.status.as_str()),
            Some("interrupted")
        );
    }
    // Importing the file again works, and the log keeps every attempt.
    let ws = Workspace::open(&ws_path).unwrap();
    let o = import_one(&ws, &big, None);
    assert_eq!(o.rows_loaded as usize, truth.unique_events);
    assert_eq!(log_row(&ws, "big.jsonl").0, "complete");
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM imports WHERE status = 'interrupted'"
        ),
        2
    );
    assert_eq!(
        count(&ws, "SELECT count(*) FROM imports WHERE status = 'running'"),
        0
    );
}

const CHILD_IMPORT: &str = "STITCHBOOK_TEST_CHILD_IMPORT";

#[test]
fn a_killed_import_process_leaves_an_interrupted_row_in_the_log() {
    if let Ok(job) = std::env::var(CHILD_IMPORT) {
        // The child: import, and die without any cleanup while writing.
        let (ws_path, file) = job.split_once('\n').unwrap();
        let ws = Workspace::open(ws_path).unwrap();
        let ctx = JobCtx::new(
            |ev| {
                if matches!(ev, JobEvent::Progress { phase, .. } if phase == "writing") {
                    std::process::abort();
                }
            },
            CancelToken::new(),
        );
        let _ = import_paths(&ws, &[PathBuf::from(file)], &ImportOptions::default(), &ctx);
        panic!("the child import was expected to die while writing");
    }
    let dir = tempfile::tempdir().unwrap();
    let ws_path = dir.path().join("w.duckdb");
    let (base, _) = generated(dir.path(), "base.jsonl", 300, 23);
    let (big, _) = generated(dir.path(), "big.jsonl", 5_000, 24);
    let before = {
        let ws = Workspace::open(&ws_path).unwrap();
        import_one(&ws, &base, None);
        data_counts(&ws)
    };
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_killed_import_process_leaves_an_interrupted_row_in_the_log",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_IMPORT,
            format!("{}\n{}", ws_path.display(), big.display()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child process died");
    let ws = Workspace::open(&ws_path).unwrap();
    assert_eq!(log_row(&ws, "big.jsonl").0, "interrupted");
    assert_eq!(data_counts(&ws), before);
}

/// An import caps DuckDB's memory at 4 GB while it runs (its staged rows spill beyond the
/// cap) and puts the limit back afterwards. The limit is DuckDB's global setting, read here
/// from a second connection while the import reports progress.
#[test]
fn an_import_caps_memory_and_restores_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("cap.duckdb")).unwrap();
    let limit = |c: &duckdb::Connection| -> String {
        c.query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
            .unwrap()
    };
    // "19.2 GiB" in GiB.
    let gib = |s: &str| -> f64 {
        let (n, unit) = s.split_once(' ').unwrap();
        let n: f64 = n.parse().unwrap();
        match unit {
            "GiB" => n,
            "MiB" => n / 1024.0,
            other => panic!("unit {other}"),
        }
    };
    let before = limit(ws.conn());
    let other = std::sync::Mutex::new(ws.clone_conn().unwrap());
    let during: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&during);
    let ctx = JobCtx::new(
        move |ev| {
            if matches!(ev, JobEvent::Progress { .. }) {
                let c = other.lock().unwrap();
                seen.lock().unwrap().push(limit(&c));
            }
        },
        CancelToken::new(),
    );
    let file = dir.path().join("e.jsonl");
    write_posthog_jsonl(&file, &GenerateOptions::default()).unwrap();
    let r = import_paths(&ws, &[file], &ImportOptions::default(), &ctx).unwrap();
    assert_eq!(
        r.files[0].status,
        ImportStatus::Complete,
        "{:?}",
        r.files[0].message
    );
    let during = during.lock().unwrap().clone();
    assert!(!during.is_empty());
    for l in &during {
        assert!(
            gib(l) <= 4.0_f64.min(gib(&before)),
            "{l} while importing (before: {before})"
        );
    }
    assert_eq!(limit(ws.conn()), before);
}
