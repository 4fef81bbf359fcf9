//! The cross-vendor equivalence test: the same simulated behaviour, written in every vendor's
//! export shape by `generate`, imports to the same events, persons and sessions, apart from
//! the documented vendor differences (Mixpanel and Segment export no session ids; Mixpanel,
//! GA4 and Snowplow event exports hold no group-profile updates).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::Path;

use stitchbook_engine::generate::{write_generated, GenFormat, GenerateOptions, GroundTruth};
use stitchbook_engine::ingest::{import_paths, FileOutcome, ImportOptions, ImportStatus};
use stitchbook_engine::{JobCtx, Workspace};

fn count(ws: &Workspace, sql: &str) -> i64 {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn text(ws: &Workspace, sql: &str) -> String {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Persons as "first identification of a device wins" resolves them over the imported
/// events and identity links: an event's user id, else the first user its device (anonymous
/// id) was linked to, else the device itself.
const PERSONS_SQL: &str = "
    WITH first_link AS (
        SELECT from_id, arg_min(to_id, (ts_utc, source_line)) AS to_id
        FROM identity_links WHERE link_kind IN ('identify', 'alias', 'merge', 'device_user_pair')
        GROUP BY from_id)
    SELECT count(DISTINCT coalesce(e.user_id, f.to_id, e.anon_id, e.distinct_id))
    FROM events e LEFT JOIN first_link f ON f.from_id = coalesce(e.anon_id, e.distinct_id)";

fn import(ws: &Workspace, path: &Path) -> FileOutcome {
    let mut r = import_paths(
        ws,
        &[path.to_path_buf()],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    r.files.remove(0)
}

struct Imported {
    format: GenFormat,
    truth: GroundTruth,
    ws: Workspace,
}

#[test]
fn every_vendor_shape_of_the_same_behaviour_imports_to_the_same_people_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        events: 5000,
        seed: 21,
        duplicate_rate: 0.02,
        malformed_rate: 0.004,
        ..Default::default()
    };
    let mut all = Vec::new();
    for format in GenFormat::ALL {
        let path = dir.path().join(format.default_file_name());
        let truth = write_generated(format, &path, &opts).unwrap();
        let ws = Workspace::in_memory().unwrap();
        let o = import(&ws, &path);
        let f = format.as_str();
        assert_eq!(o.status, ImportStatus::Complete, "{f}: {:?}", o.message);
        // Detected from content alone, as this vendor.
        assert_eq!(o.vendor.as_deref(), Some(f), "{f}");
        assert!(truth.duplicates_injected > 0 && truth.malformed_injected > 0);
        assert_eq!(o.rows_read as usize, truth.lines, "{f}: records read");
        assert_eq!(o.rows_loaded as usize, truth.records, "{f}: loaded");
        assert_eq!(
            o.rows_duplicate as usize, truth.duplicates_injected,
            "{f}: duplicates"
        );
        assert_eq!(
            o.rows_quarantined as usize, truth.malformed_injected,
            "{f}: quarantined"
        );
        // Event names as the vendor writes them.
        for (name, n) in &truth.events_by_vendor_name {
            let got: i64 = ws
                .conn()
                .query_row(
                    "SELECT count(*) FROM events WHERE event_name = ?",
                    [name],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(got as usize, *n, "{f}: events named {name}");
        }
        all.push(Imported { format, truth, ws });
    }

    let reference = &all[0];
    assert_eq!(reference.format, GenFormat::PostHog);
    let pageviews = reference.truth.events_by_name["$pageview"] as i64;
    let funnel = [
        "signed_up",
        "created_project",
        "invited_teammate",
        "upgraded_plan",
    ];
    for imp in &all {
        let f = imp.format.as_str();
        let ws = &imp.ws;
        // Page views are page events in every vendor.
        assert_eq!(
            count(ws, "SELECT count(*) FROM events WHERE event_kind = 'page'"),
            pageviews,
            "{f}: page views"
        );
        // Funnel steps keep their names in every vendor: the imported counts match PostHog's.
        for step in funnel {
            let n = |ws: &Workspace| -> i64 {
                ws.conn()
                    .query_row(
                        "SELECT count(*) FROM events WHERE event_name = ?",
                        [step],
                        |r| r.get(0),
                    )
                    .unwrap()
            };
            assert_eq!(n(ws), n(&reference.ws), "{f}: {step}");
            assert!(n(ws) > 0, "{f}: {step}");
        }
        // Every event keeps its device (anonymous id), identified or not.
        assert_eq!(
            count(ws, "SELECT count(*) FROM events WHERE anon_id IS NULL"),
            0,
            "{f}: events without a device id"
        );
        // The same persons, once devices are merged into the users they were identified as.
        let persons = count(ws, PERSONS_SQL);
        assert_eq!(
            persons as usize, imp.truth.resolved_persons,
            "{f}: persons after identity links"
        );
        assert_eq!(
            persons as usize, reference.truth.resolved_persons,
            "{f}: persons differ from PostHog's"
        );
        // The same identified users.
        assert_eq!(
            count(ws, "SELECT count(DISTINCT user_id) FROM events"),
            count(&reference.ws, "SELECT count(DISTINCT user_id) FROM events"),
            "{f}: identified users"
        );
        // Sessions: a session id per device session where the vendor exports one.
        let sessions = count(
            ws,
            "SELECT count(DISTINCT (anon_id, session_id)) FROM events WHERE session_id IS NOT NULL",
        );
        if imp.format.has_session_ids() {
            assert_eq!(sessions as usize, reference.truth.sessions, "{f}: sessions");
            assert_eq!(
                count(ws, "SELECT count(*) FROM events WHERE session_id IS NULL"),
                0,
                "{f}: events outside a session"
            );
        } else {
            assert_eq!(sessions, 0, "{f} exports no session ids");
        }
        // The same time span (to the millisecond: Snowplow and Mixpanel keep ms).
        assert_eq!(
            text(ws, "SELECT strftime(min(ts_utc), '%Y-%m-%d %H:%M:%S.%g') || ' / ' || strftime(max(ts_utc), '%Y-%m-%d %H:%M:%S.%g') FROM events"),
            text(&reference.ws, "SELECT strftime(min(ts_utc), '%Y-%m-%d %H:%M:%S.%g') || ' / ' || strftime(max(ts_utc), '%Y-%m-%d %H:%M:%S.%g') FROM events"),
            "{f}: time span"
        );
    }
    // Amplitude keeps one snapshot per distinct group state (its group_properties).
    let amplitude = all
        .iter()
        .find(|i| i.format == GenFormat::Amplitude)
        .unwrap();
    assert_eq!(
        count(&amplitude.ws, "SELECT count(*) FROM group_snapshots"),
        count(
            &reference.ws,
            "SELECT count(DISTINCT (group_type, group_key, properties::VARCHAR)) FROM group_snapshots"
        ),
        "amplitude: distinct group states"
    );
    // Group updates: vendors with group calls keep one snapshot per update.
    let group_updates = reference.truth.events_by_name["$groupidentify"] as i64;
    assert!(group_updates > 0);
    for imp in &all {
        if matches!(
            imp.format,
            GenFormat::PostHog | GenFormat::Segment | GenFormat::RudderStack
        ) {
            assert_eq!(
                count(&imp.ws, "SELECT count(*) FROM group_snapshots"),
                group_updates,
                "{}: group snapshots",
                imp.format.as_str()
            );
        }
    }
}

#[test]
fn amplitude_export_zip_members_keep_their_names_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.zip");
    let truth = write_generated(
        GenFormat::Amplitude,
        &path,
        &GenerateOptions {
            events: 1500,
            seed: 4,
            malformed_rate: 0.01,
            ..Default::default()
        },
    )
    .unwrap();
    let ws = Workspace::in_memory().unwrap();
    let o = import(&ws, &path);
    assert_eq!(o.container.as_deref(), Some("zip"));
    assert_eq!(o.rows_loaded as usize, truth.records);
    // source_file names the member (hour not zero-padded), source_line the line in it.
    let pattern =
        r".*export\.zip!/187520/187520_\d{4}-\d{2}-\d{2}_([0-9]|1[0-9]|2[0-3])#1\.json\.gz";
    for table in ["events", "quarantine"] {
        let mut stmt = ws
            .conn()
            .prepare(&format!(
                "SELECT count(*) FILTER (WHERE NOT regexp_full_match(source_file, ?)), count(*) FROM {table}"
            ))
            .unwrap();
        let (mismatched, n): (i64, i64) = stmt
            .query_row([pattern], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(mismatched, 0, "{table}: every row names its member");
        assert!(n > 0, "{table}");
    }
    assert!(count(&ws, "SELECT count(DISTINCT source_file) FROM events") > 10);
    assert!(
        count(&ws, "SELECT max(source_line) FROM events") < truth.records as i64 / 5,
        "lines count within each member"
    );
}

/// The committed samples: one simulated behaviour in every vendor's shape, in one folder.
/// Importing the folder detects each file's vendor from its content and loads what its
/// ground truth says.
#[test]
fn committed_every_vendor_folder_imports_by_content() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-data");
    let ws = Workspace::in_memory().unwrap();
    let report = import_paths(
        &ws,
        &[root.join("every-vendor")],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(report.files.len(), GenFormat::ALL.len());
    for format in GenFormat::ALL {
        let name = format.default_file_name();
        let o = report
            .files
            .iter()
            .find(|o| o.path.ends_with(name))
            .unwrap_or_else(|| panic!("{name} imported"));
        let truth: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                root.join("truth/every-vendor")
                    .join(format!("{name}.truth.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(o.vendor.as_deref(), Some(format.as_str()), "{name}");
        assert_eq!(
            (
                o.rows_read,
                o.rows_loaded,
                o.rows_duplicate,
                o.rows_quarantined
            ),
            (
                truth["lines"].as_u64().unwrap(),
                truth["records"].as_u64().unwrap(),
                truth["duplicates_injected"].as_u64().unwrap(),
                truth["malformed_injected"].as_u64().unwrap()
            ),
            "{name}"
        );
        let mut stmt = ws
            .conn()
            .prepare(
                "WITH first_link AS (
                    SELECT from_id, arg_min(to_id, (ts_utc, source_line)) AS to_id
                    FROM identity_links WHERE source_vendor = ? GROUP BY from_id)
                 SELECT count(DISTINCT coalesce(e.user_id, f.to_id, e.anon_id))
                 FROM events e LEFT JOIN first_link f ON f.from_id = e.anon_id
                 WHERE e.source_vendor = ?",
            )
            .unwrap();
        let persons: i64 = stmt
            .query_row([format.as_str(), format.as_str()], |r| r.get(0))
            .unwrap();
        assert_eq!(
            persons as u64,
            truth["resolved_persons"].as_u64().unwrap(),
            "{name}: persons"
        );
    }
}
