//! PII audit tests: detector quality on a labelled corpus, the shared samples, the field
//! report, review decisions across re-scans, the redacted export and its verification, the
//! audit report and the promise that raw values never reach logs, errors or reports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use stitchbook_engine::generate::{write_posthog_jsonl, GenerateOptions};
use stitchbook_engine::ingest::{import_paths, ImportOptions};
use stitchbook_engine::pii::{
    self, corpus, CustomRule, ExportFormat, ExportOptions, ExportStatus, RedactAction,
    RedactionRule, RedactionRules, ReviewStatus, Severity,
};
use stitchbook_engine::{CancelToken, JobCtx, JobEvent, Workspace};

const NOW: i64 = 1_735_689_600_000_000; // 2025-01-01T00:00:00Z

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/samples")
}

fn import(ws: &Workspace, path: &Path) {
    let r = import_paths(
        ws,
        &[path.to_path_buf()],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    assert!(r.files.iter().all(|f| f.rows_loaded > 0), "{path:?}");
}

/// PostHog export lines with hand-placed PII.
fn posthog_line(
    uuid: &str,
    event: &str,
    distinct_id: &str,
    ts: &str,
    props: serde_json::Value,
) -> String {
    serde_json::json!({
        "uuid": uuid, "event": event, "distinct_id": distinct_id, "timestamp": ts,
        "properties": props
    })
    .to_string()
}

const CARD: &str = "4242 4242 4242 4242";
const IBAN: &str = "GB82 WEST 1234 5698 7654 32";
const EMAIL: &str = "jane.doe@example.com";

fn handmade(dir: &Path) -> PathBuf {
    let lines = [
        posthog_line(
            "00000000-0000-4000-8000-000000000001",
            "checkout",
            EMAIL,
            "2024-03-01T10:00:00Z",
            serde_json::json!({"$set": {"email": EMAIL, "first_name": "Jane"}, "card": CARD,
                "items": [{"sku": "A-1", "gift_to": "bob.smith@example.org"}],
                "<script>alert(1)</script>": "ping jane.doe@example.com",
                "app_version": "1.2.3.4", "$ip": "198.51.100.23"}),
        ),
        posthog_line(
            "00000000-0000-4000-8000-000000000002",
            "payout",
            EMAIL,
            "2024-03-02T10:00:00Z",
            serde_json::json!({"bank": IBAN, "note": "call +44 20 7946 0958", "lat": 51.50735, "lng": -0.12776,
                "card": "4242 4242 4242 4241"}),
        ),
        posthog_line(
            "00000000-0000-4000-8000-000000000003",
            "$pageview",
            "anon-1",
            "2023-06-01T10:00:00Z",
            serde_json::json!({"$current_url": "https://x.io/?e=jane.doe%40example.com", "$ip": "198.51.100.24",
                "auth": "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc"}),
        ),
    ];
    let p = dir.join("handmade.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn finding<'a>(r: &'a [pii::Finding], path: &str, det: &str) -> &'a pii::Finding {
    r.iter()
        .find(|f| f.path == path && f.detector == det)
        .unwrap_or_else(|| {
            panic!(
                "no {det} finding at {path}: {:#?}",
                r.iter().map(|f| (&f.path, &f.detector)).collect::<Vec<_>>()
            )
        })
}

#[test]
fn labelled_corpus_precision_and_recall() {
    let c = corpus::corpus(3000, 42);
    let scores = corpus::evaluate(&c);
    println!("class         TP     FP     FN   precision  recall");
    for s in &scores {
        println!(
            "{:<12} {:>5}  {:>5}  {:>5}   {:.4}     {:.4}",
            s.class.as_str(),
            s.true_positives,
            s.false_positives,
            s.false_negatives,
            s.precision,
            s.recall
        );
    }
    for class in corpus::CLASSES {
        let misses: Vec<_> = c
            .iter()
            .filter(|x| {
                let found = pii::detect::detectors_in(&x.key, &x.value)
                    .into_iter()
                    .any(|d| corpus::Class::of(d) == Some(class));
                found != x.labels.contains(&class)
            })
            .take(4)
            .map(|x| format!("{}={:?} labels={:?}", x.key, x.value, x.labels))
            .collect();
        if !misses.is_empty() {
            println!("{} misses, e.g. {misses:?}", class.as_str());
        }
    }
    for s in &scores {
        assert!(s.true_positives >= 3000, "{s:?}");
        assert!(s.precision >= 0.95, "{s:?}");
        assert!(s.recall >= 0.99, "{s:?}");
    }
    // The near misses are in the corpus and none is flagged as one of the five classes.
    let near: Vec<_> = c.iter().filter(|x| x.labels.is_empty()).collect();
    assert!(near.len() >= 3000);
}

#[test]
fn shared_samples_email_and_ips_are_found() {
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &samples().join("posthog/events.jsonl"));
    // The original records kept: RudderStack's server-added request_ip is only there.
    import_paths(
        &ws,
        &[samples().join("rudderstack/rudder-server_original100.json.gz")],
        &ImportOptions {
            keep_raw: true,
            ..Default::default()
        },
        &JobCtx::silent(),
    )
    .unwrap();
    import(
        &ws,
        &samples().join("rudderstack/rudder-server_datalake_test_tracks.json.gz"),
    );
    import(
        &ws,
        &samples().join("segment/dbt-segment_example_segment_pages.csv"),
    );
    // Snowplow's user_ipaddress is already hashed in this sample; its user agents carry
    // version strings such as Chrome/86.0.4240.185 and Instagram 165.1.0.29.119.
    import(
        &ws,
        &samples().join("snowplow/dbt-snowplow-web_snowplow_web_events.csv"),
    );
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let email = finding(&r.findings, "properties.$set.email", "email");
    assert!(email.hits >= 1);
    assert_eq!(email.samples, ["x*****@p******.com"]);
    assert_eq!(email.files[0].vendor, "posthog");
    assert!(email
        .event_names
        .iter()
        .any(|n| n.name == "$set" || n.name == "$identify"));
    let ips: Vec<_> = r.findings.iter().filter(|f| f.detector == "ipv4").collect();
    let request_ip = finding(&r.findings, "raw.request_ip", "ipv4");
    assert_eq!(request_ip.samples, ["10.•.•.•"]);
    assert_eq!(request_ip.rows, 99);
    assert!(
        ips.iter().any(|f| f
            .files
            .iter()
            .any(|x| x.file.ends_with("datalake_test_tracks.json.gz"))),
        "{ips:#?}"
    );
    assert!(
        ips.iter()
            .any(|f| f.files.iter().any(|x| x.vendor == "segment")
                && f.samples.contains(&"8.•.•.•".to_string())),
        "{ips:#?}"
    );
    // Versions in user agents are not addresses.
    assert!(
        !ips.iter()
            .any(|f| f.files.iter().any(|x| x.vendor == "snowplow")),
        "{ips:#?}"
    );
    // The RudderStack sample is a CRM lead feed: emails, phones and key-named fields.
    finding(&r.findings, "properties.email", "email");
    finding(&r.findings, "properties.firstName", "person_name");
    finding(&r.findings, "properties.phone", "phone");
    finding(&r.findings, "properties.address", "postal_address");
    // Nothing raw in the report.
    let all = serde_json::to_string(&r).unwrap();
    assert!(!all.contains("xavier@posthog.com"));
    assert!(!all.contains("10.7.63.218"));
}

#[test]
fn field_report_on_handmade_events() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let f = &r.findings;
    let e = finding(f, "properties.$set.email", "email");
    assert_eq!((e.hits, e.rows), (1, 1));
    assert_eq!(e.samples, ["j*******@e******.com"]);
    assert!((e.event_share - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(e.event_names[0].name, "checkout");
    assert_eq!(
        e.first_seen.as_deref(),
        Some("2024-03-01T10:00:00.000000+00:00")
    );
    // distinct ids can be emails.
    assert_eq!(finding(f, "distinct_id", "email").rows, 2);
    assert_eq!(finding(f, "properties.items[].gift_to", "email").hits, 1);
    assert_eq!(finding(f, "properties.$current_url", "email").hits, 1);
    let card = finding(f, "properties.card", "credit_card");
    assert_eq!(card.hits, 1, "the Luhn-invalid card is not counted");
    assert_eq!(card.samples, ["•••• •••• •••• 4242"]);
    assert_eq!(card.severity, Severity::High);
    assert_eq!(
        finding(f, "properties.bank", "iban").samples,
        ["GB••••••••••••••••5432"]
    );
    finding(f, "properties.note", "phone");
    finding(f, "properties.lat", "geolocation");
    finding(f, "properties.lng", "geolocation");
    finding(f, "properties.auth", "bearer_token");
    finding(f, "properties.$set.first_name", "person_name");
    let ip = finding(f, "properties.$ip", "ipv4");
    assert_eq!((ip.hits, ip.rows), (2, 2));
    assert_eq!(
        ip.first_seen.as_deref(),
        Some("2023-06-01T10:00:00.000000+00:00")
    );
    assert_eq!(
        ip.last_seen.as_deref(),
        Some("2024-03-01T10:00:00.000000+00:00")
    );
    assert!(!f.iter().any(|x| x.path == "properties.app_version"));
    // Stored and read back with the same ids.
    let stored = pii::findings(&ws).unwrap();
    assert_eq!(stored.len(), f.len());
    assert!(stored.iter().all(|s| s.needs_review && s.review.is_none()));
    let ids: Vec<_> = f.iter().map(|x| x.id.clone()).collect();
    assert_eq!(
        stored
            .iter()
            .map(|s| s.finding.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(pii::scan_info(&ws).unwrap().unwrap().totals.events, 3);
}

#[test]
fn custom_rules_run_in_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let bad = CustomRule {
        name: "broken".into(),
        pattern: "(unclosed".into(),
        severity: Severity::Low,
    };
    let err = pii::rules::save(&ws, &bad, NOW).unwrap_err();
    assert!(err.to_string().contains("does not compile"), "{err}");
    let sku = CustomRule {
        name: "sku".into(),
        pattern: "^[A-Z]-[0-9]+$".into(),
        severity: Severity::Low,
    };
    pii::rules::save(&ws, &sku, NOW).unwrap();
    assert_eq!(pii::rules::list(&ws).unwrap(), vec![sku]);
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let f = finding(&r.findings, "properties.items[].sku", "custom:sku");
    assert_eq!((f.hits, f.severity), (1, Severity::Low));
    assert_eq!(f.samples, ["A••"]);
    assert!(pii::rules::delete(&ws, "sku").unwrap());
}

fn generated(dir: &Path, seed: u64, events: usize) -> PathBuf {
    let p = dir.join(format!("gen-{seed}.jsonl"));
    write_posthog_jsonl(
        &p,
        &GenerateOptions {
            events,
            seed,
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    p
}

#[test]
fn reviews_survive_rescans_and_changed_counts_need_review_again() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &generated(dir.path(), 1, 600));
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let ip = finding(&r.findings, "properties.$ip", "ipv4").clone();
    let email = finding(&r.findings, "properties.$set.email", "email").clone();
    let reviewed = pii::review(
        &ws,
        &ip.id,
        ReviewStatus::Expected,
        "needed for geo",
        "ana",
        NOW,
    )
    .unwrap();
    assert!(!reviewed.needs_review);
    let rv = reviewed.review.unwrap();
    assert_eq!(
        (
            rv.reviewer.as_str(),
            rv.reviewed_at.as_str(),
            rv.hits_at_review
        ),
        ("ana", "2025-01-01T00:00:00Z", ip.hits)
    );
    // A unique prefix works too.
    pii::review(
        &ws,
        &email.id[..8],
        ReviewStatus::NeedsRedaction,
        "",
        "ana",
        NOW + 1_000_000,
    )
    .unwrap();
    assert!(pii::review(&ws, "nope", ReviewStatus::Expected, "", "ana", NOW).is_err());
    assert!(pii::review(&ws, &ip.id, ReviewStatus::Expected, "", " ", NOW).is_err());

    // Same data: decisions stand.
    pii::scan(&ws, NOW + 5, &JobCtx::silent()).unwrap();
    let again = pii::finding(&ws, &ip.id).unwrap();
    assert!(!again.needs_review);
    assert_eq!(again.review.unwrap().status, ReviewStatus::Expected);

    // A new import changes the counts: flagged again, decision kept.
    import(&ws, &generated(dir.path(), 2, 300));
    pii::scan(&ws, NOW + 10, &JobCtx::silent()).unwrap();
    let after = pii::finding(&ws, &ip.id).unwrap();
    assert!(after.finding.hits > ip.hits);
    assert!(after.needs_review);
    assert_eq!(
        after.review.as_ref().unwrap().status,
        ReviewStatus::Expected
    );
    let trail = pii::review_log(&ws).unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[1].status, ReviewStatus::NeedsRedaction);
}

fn events_fingerprint(ws: &Workspace) -> (i64, i64) {
    ws.conn()
        .query_row(
            "SELECT count(*), sum(hash(event_uuid, CAST(properties AS VARCHAR), distinct_id)) % 1000000007 FROM events",
            [],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)?)),
        )
        .unwrap()
}

fn sha(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn redacted_export_rescans_clean_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    let src = generated(dir.path(), 3, 800);
    let hand = handmade(dir.path());
    import(&ws, &src);
    import(&ws, &hand);
    let (src_sha, hand_sha) = (sha(&src), sha(&hand));
    let before = events_fingerprint(&ws);
    let scan = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let ip = finding(&scan.findings, "properties.$ip", "ipv4").id.clone();
    let rules = RedactionRules {
        format: None,
        fields: vec![
            RedactionRule {
                path: Some("distinct_id".into()),
                detector: None,
                finding: None,
                action: RedactAction::Pseudonymize,
            },
            RedactionRule {
                path: Some("properties.$set.email".into()),
                detector: None,
                finding: None,
                action: RedactAction::Pseudonymize,
            },
            RedactionRule {
                path: None,
                detector: Some("email".into()),
                finding: None,
                action: RedactAction::Mask,
            },
            RedactionRule {
                path: None,
                detector: Some("credit_card".into()),
                finding: None,
                action: RedactAction::Mask,
            },
            RedactionRule {
                path: None,
                detector: Some("phone".into()),
                finding: None,
                action: RedactAction::Drop,
            },
            RedactionRule {
                path: None,
                detector: None,
                finding: Some(ip),
                action: RedactAction::Mask,
            },
            RedactionRule {
                path: Some("properties.bank".into()),
                detector: None,
                finding: None,
                action: RedactAction::Drop,
            },
        ],
    };
    let salt = b"not-in-the-output-7f3a".to_vec();
    for format in [
        ExportFormat::Parquet,
        ExportFormat::Csv,
        ExportFormat::Jsonl,
    ] {
        let out = dir.path().join(format!("out-{}", format.as_str()));
        let rep = pii::export(
            &ws,
            &rules,
            &ExportOptions {
                out_dir: out.clone(),
                format,
                keep_from_us: None,
                salt: Some(salt.clone()),
                now_us: NOW,
                vendor_shape: false,
                include_quarantine: false,
            },
            &JobCtx::silent(),
        )
        .unwrap();
        assert_eq!(
            rep.status,
            ExportStatus::Complete,
            "{format:?}: {:?}",
            rep.problems
        );
        assert_eq!(rep.rows_written, rep.rows_source);
        assert_eq!(rep.rows_source, before.0);
        assert!(rep.checks.iter().all(|c| c.ok && c.hits_after == 0));
        assert!(
            rep.checks.iter().all(|c| c.redacted > 0),
            "{:?}",
            rep.checks
        );
        // The re-scan finds no email, card, phone or IP anywhere; key-name findings remain.
        for d in ["email", "credit_card", "phone", "iban"] {
            assert!(
                !rep.rescan.iter().any(|f| f.detector == d),
                "{d} in {format:?}: {:#?}",
                rep.rescan
            );
        }
        assert!(!rep
            .rescan
            .iter()
            .any(|f| f.path == "properties.$ip" && f.detector == "ipv4"));
        let bytes = std::fs::read(&rep.data_file).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for raw in [
            EMAIL,
            "not-in-the-output-7f3a",
            "198.51.100.23",
            "GB82",
            "4242 4242 4242 4242",
        ] {
            assert!(!text.contains(raw), "{raw} in {format:?}");
        }
        let manifest = std::fs::read_to_string(out.join("pii-export.json")).unwrap();
        assert!(!manifest.contains("not-in-the-output"));
        assert!(!manifest.contains(EMAIL));
    }
    // Pseudonyms: the same input gets the same pseudonym across rows and columns.
    let c = duckdb::Connection::open_in_memory().unwrap();
    let pq = dir
        .path()
        .join("out-parquet/events.parquet")
        .to_string_lossy()
        .to_string();
    let (distinct_pn, set_email_pn): (i64, String) = c
        .query_row(
            "SELECT count(DISTINCT distinct_id) FILTER (WHERE event_uuid LIKE '00000000-0000-4000-8000-00000000000%' AND distinct_id <> (SELECT distinct_id FROM read_parquet(?) WHERE event_uuid LIKE '%0003')),
                    any_value(json_extract_string(properties, '$.\"$set\".email')) FILTER (WHERE event_uuid LIKE '%0001')
             FROM read_parquet(?)",
            [&pq, &pq],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(distinct_pn, 1, "both jane events share one pseudonym");
    let jane_id: String = c
        .query_row(
            "SELECT distinct_id FROM read_parquet(?) WHERE event_uuid LIKE '%0001'",
            [&pq],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        jane_id, set_email_pn,
        "distinct_id and $set.email hold the same value, so the same pseudonym"
    );
    assert!(jane_id.starts_with("pn_") && jane_id.len() == 19);
    // Masked in text, dropped keys gone.
    let (note, bank, gift): (Option<String>, Option<String>, String) = c
        .query_row(
            "SELECT json_extract_string(properties, '$.note'), json_extract_string(properties, '$.bank'),
                    (SELECT json_extract_string(properties, '$.items[0].gift_to') FROM read_parquet(?) WHERE event_uuid LIKE '%0001')
             FROM read_parquet(?) WHERE event_uuid LIKE '%0002'",
            [&pq, &pq],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((note, bank), (None, None));
    assert_eq!(gift, "b********@e******.org");
    // Sources untouched.
    assert_eq!(events_fingerprint(&ws), before);
    assert_eq!((sha(&src), sha(&hand)), (src_sha, hand_sha));
    assert_eq!(pii::exports(&ws).unwrap().len(), 3);
}

#[test]
fn an_export_that_does_not_rescan_clean_is_marked_failed() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    // A custom rule that recognises the pseudonyms themselves: the re-scan must catch it.
    pii::rules::save(
        &ws,
        &CustomRule {
            name: "pseudonym".into(),
            pattern: "pn_[0-9a-f]{16}".into(),
            severity: Severity::High,
        },
        NOW,
    )
    .unwrap();
    let rules = RedactionRules {
        format: Some(ExportFormat::Parquet),
        fields: vec![RedactionRule {
            path: Some("properties.$set.email".into()),
            detector: None,
            finding: None,
            action: RedactAction::Pseudonymize,
        }],
    };
    let rep = pii::export(
        &ws,
        &rules,
        &ExportOptions {
            out_dir: dir.path().join("x"),
            format: ExportFormat::Parquet,
            keep_from_us: None,
            salt: None,
            now_us: NOW,
            vendor_shape: false,
            include_quarantine: false,
        },
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Failed);
    assert_eq!(rep.checks[0].hits_after, 1);
    assert!(rep.problems[0].contains("properties.$set.email"));
    let stored = pii::exports(&ws).unwrap();
    assert_eq!(stored[0].status, ExportStatus::Failed);
    // Bad rules are refused with a code.
    let bad = RedactionRules {
        format: None,
        fields: vec![RedactionRule {
            path: Some("event_name".into()),
            detector: None,
            finding: None,
            action: RedactAction::Drop,
        }],
    };
    let e = pii::export(
        &ws,
        &bad,
        &ExportOptions {
            out_dir: dir.path().join("y"),
            format: ExportFormat::Csv,
            keep_from_us: None,
            salt: None,
            now_us: NOW,
            vendor_shape: false,
            include_quarantine: false,
        },
        &JobCtx::silent(),
    )
    .unwrap_err();
    assert!(e.to_string().starts_with("pii_invalid_rules"), "{e}");
}

#[test]
fn rules_file_toml_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("r.toml");
    std::fs::write(&t, "format = \"csv\"\n[[field]]\npath = \"properties.$set.email\"\naction = \"pseudonymize\"\n[[field]]\ndetector = \"email\"\naction = \"mask\"\n").unwrap();
    let r = RedactionRules::load(&t).unwrap();
    assert_eq!(r.format, Some(ExportFormat::Csv));
    assert_eq!(r.fields.len(), 2);
    assert_eq!(r.fields[1].detector.as_deref(), Some("email"));
    let j = dir.path().join("r.json");
    std::fs::write(
        &j,
        r#"{"field": [{"finding": "abc123", "action": "drop"}]}"#,
    )
    .unwrap();
    assert_eq!(
        RedactionRules::load(&j).unwrap().fields[0].action,
        RedactAction::Drop
    );
    std::fs::write(&j, r#"{"field": [{"path": "x", "action": "shred"}]}"#).unwrap();
    assert!(RedactionRules::load(&j).is_err());
}

#[test]
fn retention_counts_and_export_without_old_events() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let cutoff = 1_704_067_200_000_000; // 2024-01-01
    let s = pii::older_than(&ws, cutoff).unwrap();
    assert_eq!((s.older, s.kept), (1, 2));
    assert_eq!(s.by_file[0].events, 1);
    let rep = pii::export(
        &ws,
        &RedactionRules::default(),
        &ExportOptions {
            out_dir: dir.path().join("ret"),
            format: ExportFormat::Parquet,
            keep_from_us: Some(cutoff),
            salt: None,
            now_us: NOW,
            vendor_shape: false,
            include_quarantine: false,
        },
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Complete);
    assert_eq!(
        (rep.rows_source, rep.rows_written, rep.rows_left_out),
        (2, 2, 1)
    );
    assert_eq!(events_fingerprint(&ws).0, 3);
}

#[test]
fn audit_report_is_offline_escaped_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let card = finding(&r.findings, "properties.card", "credit_card")
        .id
        .clone();
    pii::review(
        &ws,
        &card,
        ReviewStatus::NeedsRedaction,
        "<b>test card</b> & more",
        "ana",
        NOW,
    )
    .unwrap();
    let rules = RedactionRules {
        format: None,
        fields: vec![RedactionRule {
            path: None,
            detector: Some("credit_card".into()),
            finding: None,
            action: RedactAction::Mask,
        }],
    };
    pii::export(
        &ws,
        &rules,
        &ExportOptions {
            out_dir: dir.path().join("o"),
            format: ExportFormat::Parquet,
            keep_from_us: None,
            salt: None,
            now_us: NOW,
            vendor_shape: false,
            include_quarantine: false,
        },
        &JobCtx::silent(),
    )
    .unwrap();
    let report = pii::audit_report(&ws, NOW).unwrap();
    assert_eq!(report.scope.files.len(), 1);
    assert_eq!(report.scope.files[0].sha256.len(), 64);
    assert_eq!(report.scope.events, 3);
    let out = dir.path().join("rep/report.html");
    let files = pii::write_report(&report, &out).unwrap();
    assert_eq!(files.len(), 3);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("data:image/png;base64,iVBORw0KGgo"),
        "an embedded PNG"
    );
    assert!(!html.contains("<script>"), "property names are escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;b&gt;test card&lt;/b&gt; &amp; more"));
    assert!(
        !html.contains("http://") && !html.contains("https://x.io"),
        "no external resources, no raw URLs"
    );
    assert!(html.contains("verified"));
    // Times read like times (issue 17 item 12): one readable format in the workspace zone,
    // never the raw `2024-01-02 13:15:33.000000+00:00` of the data.
    assert!(html.contains("generated 2025-01-01 00:00:00 UTC"), "{html}");
    assert!(
        !html.contains("+00:00") && !html.contains(".000000"),
        "raw ISO times in the report"
    );
    for f in &files {
        let t = std::fs::read_to_string(f).unwrap();
        for raw in [
            EMAIL,
            "4242 4242 4242 4242",
            "198.51.100.23",
            "sk_live_4eC39",
            "+44 20 7946 0958",
            "GB82 WEST",
        ] {
            assert!(!t.contains(raw), "{raw} in {f:?}");
        }
    }
    let csv = std::fs::read_to_string(dir.path().join("rep/report.csv")).unwrap();
    assert!(csv
        .lines()
        .next()
        .unwrap()
        .starts_with("id,severity,source,path,detector"));
    assert_eq!(csv.lines().count(), report.findings.len() + 1);
}

#[test]
fn raw_values_never_reach_progress_or_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &generated(dir.path(), 5, 20_000));
    import(&ws, &handmade(dir.path()));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = log.clone();
    let ctx = JobCtx::new(
        move |e: &JobEvent| sink.lock().unwrap().push(serde_json::to_string(e).unwrap()),
        CancelToken::new(),
    );
    let r = pii::scan(&ws, NOW, &ctx).unwrap();
    let rules = RedactionRules {
        format: None,
        fields: vec![RedactionRule {
            path: None,
            detector: Some("email".into()),
            finding: None,
            action: RedactAction::Pseudonymize,
        }],
    };
    let rep = pii::export(
        &ws,
        &rules,
        &ExportOptions {
            out_dir: dir.path().join("o"),
            format: ExportFormat::Jsonl,
            keep_from_us: None,
            salt: None,
            now_us: NOW,
            vendor_shape: false,
            include_quarantine: false,
        },
        &ctx,
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Complete);
    // A cancelled scan fails with Cancelled and says nothing else.
    let cancel = CancelToken::new();
    cancel.cancel();
    let err = pii::scan(&ws, NOW, &JobCtx::new(|_| {}, cancel)).unwrap_err();
    let mut emitted = log.lock().unwrap().clone();
    assert!(emitted.len() >= 2, "progress was reported");
    emitted.push(err.to_string());
    emitted.push(serde_json::to_string(&r).unwrap());
    emitted.push(serde_json::to_string(&rep).unwrap());
    // Every raw email, phone and IP in the workspace.
    let raws: Vec<String> = ws
        .conn()
        .prepare(
            "SELECT DISTINCT v FROM (
                SELECT json_extract_string(properties, '$.\"$set\".email') AS v FROM events
                UNION ALL SELECT json_extract_string(properties, '$.\"$ip\"') FROM events
                UNION ALL SELECT json_extract_string(properties, '$.\"$set\".phone') FROM events)
             WHERE v IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|x| x.unwrap())
        .collect();
    assert!(raws.len() > 100, "{}", raws.len());
    for line in &emitted {
        for raw in &raws {
            assert!(!line.contains(raw.as_str()), "raw value {raw} leaked");
        }
    }
}

#[test]
fn finding_events_page_through_hits_with_masked_values() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let sku = CustomRule {
        name: "sku".into(),
        pattern: "^[A-Z]-[0-9]+$".into(),
        severity: Severity::Low,
    };
    pii::rules::save(&ws, &sku, NOW).unwrap();
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let did = finding(&r.findings, "distinct_id", "email").clone();
    let page = pii::finding_events(&ws, &did.id, 0, 10).unwrap();
    assert_eq!(page.total, 2);
    assert!(!page.has_more);
    assert_eq!(
        page.events
            .iter()
            .map(|e| (e.event_name.as_str(), e.source_line))
            .collect::<Vec<_>>(),
        [("checkout", 1), ("payout", 2)]
    );
    assert!(page.events[0].source_file.ends_with("handmade.jsonl"));
    assert_eq!(page.events[0].masked, ["j*******@e******.com"]);
    // The distinct id is an email here: masked too.
    assert_eq!(
        page.events[0].distinct_id.as_deref(),
        Some("j*******@e******.com")
    );
    assert_eq!(page.events[0].ts, "2024-03-01T10:00:00.000000+00:00");
    // Paging counts hits.
    let first = pii::finding_events(&ws, &did.id, 0, 1).unwrap();
    assert_eq!((first.events.len(), first.has_more), (1, true));
    let second = pii::finding_events(&ws, &did.id, 1, 1).unwrap();
    assert_eq!((second.events.len(), second.has_more), (1, false));
    assert_eq!(second.events[0].event_seq, page.events[1].event_seq);
    assert!(pii::finding_events(&ws, &did.id, 2, 5)
        .unwrap()
        .events
        .is_empty());
    // Nested paths, arrays, key-name detectors and custom rules.
    let ip = finding(&r.findings, "properties.$ip", "ipv4");
    let ips = pii::finding_events(&ws, &ip.id, 0, 10).unwrap();
    assert_eq!(
        ips.events.iter().map(|e| e.source_line).collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(ips.events[0].masked, ["198.•.•.•"]);
    let gift = finding(&r.findings, "properties.items[].gift_to", "email");
    assert_eq!(
        pii::finding_events(&ws, &gift.id, 0, 10).unwrap().events[0].masked,
        ["b********@e******.org"]
    );
    let name = finding(&r.findings, "properties.$set.first_name", "person_name");
    assert_eq!(
        pii::finding_events(&ws, &name.id, 0, 10).unwrap().events[0].masked,
        ["J•••"]
    );
    let sku = finding(&r.findings, "properties.items[].sku", "custom:sku");
    assert_eq!(
        pii::finding_events(&ws, &sku.id, 0, 10).unwrap().events[0].masked,
        ["A••"]
    );
    // Every finding on events lists exactly its `rows` events.
    for f in r
        .findings
        .iter()
        .filter(|f| f.source == pii::Source::Events)
    {
        let all = pii::finding_events(&ws, &f.id, 0, 1000).unwrap();
        assert_eq!(all.events.len() as i64, f.rows, "{} {}", f.path, f.detector);
        let text = serde_json::to_string(&all).unwrap();
        for raw in [EMAIL, "198.51.100.23", CARD, "sk_live_4eC39", "GB82 WEST"] {
            assert!(!text.contains(raw), "{raw} in the drill-down of {}", f.path);
        }
    }
    assert!(pii::finding_events(&ws, &did.id, 0, 0).is_err());
    assert!(pii::finding_events(&ws, "ffffffffffff", 0, 10).is_err());
}

#[test]
fn reveal_returns_the_value_and_logs_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let r = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let ip = finding(&r.findings, "properties.$ip", "ipv4").clone();
    let page = pii::finding_events(&ws, &ip.id, 0, 10).unwrap();
    let seq = page.events[0].event_seq;
    assert!(pii::reveal_log(&ws).unwrap().is_empty());
    let v = pii::reveal(&ws, &ip.id, seq, "ana", "ticket 42", NOW).unwrap();
    assert_eq!(v.values, ["198.51.100.23"]);
    assert_eq!(v.path, "properties.$ip");
    let card = finding(&r.findings, "properties.card", "credit_card").clone();
    let card_seq = pii::finding_events(&ws, &card.id, 0, 1).unwrap().events[0].event_seq;
    assert_eq!(
        pii::reveal(&ws, &card.id, card_seq, "bo", "chargeback", NOW + 1)
            .unwrap()
            .values,
        [CARD]
    );
    // No hit, no reason, no reviewer, unknown event: an error and nothing logged.
    let other = pii::finding_events(
        &ws,
        &finding(&r.findings, "properties.bank", "iban").id,
        0,
        1,
    )
    .unwrap()
    .events[0]
        .event_seq;
    let err = pii::reveal(&ws, &ip.id, other, "ana", "why", NOW).unwrap_err();
    assert!(err.to_string().contains("no ipv4 hit"), "{err}");
    assert!(pii::reveal(&ws, &ip.id, seq, "ana", " ", NOW).is_err());
    assert!(pii::reveal(&ws, &ip.id, seq, "", "why", NOW).is_err());
    assert!(pii::reveal(&ws, &ip.id, 999_999_999, "ana", "why", NOW).is_err());
    let log = pii::reveal_log(&ws).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (
            log[0].reviewer.as_str(),
            log[0].reason.as_str(),
            log[0].path.as_str(),
            log[0].detector.as_str(),
            log[0].event_seq,
            log[0].finding_id.as_str()
        ),
        (
            "ana",
            "ticket 42",
            "properties.$ip",
            "ipv4",
            seq,
            ip.id.as_str()
        )
    );
    assert_eq!(log[0].revealed_at, "2025-01-01T00:00:00.000000+00:00");
    assert_eq!(log[1].reviewer, "bo");
    assert!(log[1].seq > log[0].seq);
    // The log table itself holds no value, and neither does the audit report.
    let table: String = ws
        .conn()
        .query_row(
            "SELECT string_agg(CAST(t AS VARCHAR), '|') FROM pii_reveal_log t",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let report = pii::audit_report(&ws, NOW).unwrap();
    assert_eq!(report.reveal_log, log);
    let out = dir.path().join("rep/report.html");
    let files = pii::write_report(&report, &out).unwrap();
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("Reveal log") && html.contains("chargeback"));
    let mut texts = vec![table, serde_json::to_string(&log).unwrap()];
    for f in &files {
        texts.push(std::fs::read_to_string(f).unwrap());
    }
    for t in &texts {
        for raw in ["198.51.100.23", CARD, "4242424242424242"] {
            assert!(!t.contains(raw), "{raw} logged");
        }
    }
}

#[test]
fn vendor_shape_export_redacts_the_raw_records_in_place() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    let plain = handmade(dir.path());
    // The same records again, gzipped, under another name.
    let gz = dir.path().join("again.jsonl.gz");
    {
        use std::io::Write;
        let text = std::fs::read_to_string(&plain).unwrap().replace(
            "00000000-0000-4000-8000-00000000000",
            "00000000-0000-4000-8000-10000000000",
        );
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap();
    }
    let keep = ImportOptions {
        keep_raw: true,
        ..Default::default()
    };
    import_paths(&ws, &[plain.clone(), gz.clone()], &keep, &JobCtx::silent()).unwrap();
    pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let rules = RedactionRules {
        format: None,
        fields: vec![
            RedactionRule {
                path: Some("properties.$set.email".into()),
                detector: None,
                finding: None,
                action: RedactAction::Pseudonymize,
            },
            RedactionRule {
                path: None,
                detector: Some("email".into()),
                finding: None,
                action: RedactAction::Mask,
            },
            RedactionRule {
                path: None,
                detector: Some("credit_card".into()),
                finding: None,
                action: RedactAction::Mask,
            },
            RedactionRule {
                path: Some("properties.bank".into()),
                detector: None,
                finding: None,
                action: RedactAction::Drop,
            },
        ],
    };
    let out = dir.path().join("vendor");
    let opts = ExportOptions {
        out_dir: out.clone(),
        format: ExportFormat::Jsonl,
        keep_from_us: None,
        salt: Some(b"s4lt".to_vec()),
        now_us: NOW,
        vendor_shape: true,
        include_quarantine: false,
    };
    let rep = pii::export(&ws, &rules, &opts, &JobCtx::silent()).unwrap();
    assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
    assert_eq!((rep.rows_source, rep.rows_written), (6, 6));
    assert!(
        rep.checks.iter().all(|c| c.ok && c.redacted > 0),
        "{:?}",
        rep.checks
    );
    let plain_out = out.join("handmade.redacted.jsonl");
    let gz_out = out.join("again.redacted.jsonl.gz");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz_out).unwrap())
        .read_to_string(&mut unzipped)
        .unwrap();
    for text in [std::fs::read_to_string(&plain_out).unwrap(), unzipped] {
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        // The vendor's shape: PostHog's own keys, not the canonical columns.
        assert!(lines[0].get("uuid").is_some() && lines[0].get("event_name").is_none());
        let set_email = lines[0]["properties"]["$set"]["email"].as_str().unwrap();
        assert!(set_email.starts_with("pn_"), "{set_email}");
        assert_eq!(lines[0]["distinct_id"], "j*******@e******.com");
        assert_eq!(lines[0]["properties"]["card"], "•••• •••• •••• 4242");
        assert!(lines[1]["properties"].get("bank").is_none());
        // Untouched fields stay as they were.
        assert_eq!(lines[0]["properties"]["app_version"], "1.2.3.4");
        assert!(!text.contains(EMAIL) && !text.contains(CARD) && !text.contains("GB82"));
    }
    // Without the original records there is nothing to write in the vendor's shape.
    let ws2 = Workspace::in_memory().unwrap();
    import(&ws2, &plain);
    let rep2 = pii::export(
        &ws2,
        &RedactionRules::default(),
        &ExportOptions {
            out_dir: dir.path().join("vendor2"),
            ..opts.clone()
        },
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep2.status, ExportStatus::Failed);
    assert!(
        rep2.problems.iter().any(|p| p.contains("--keep-raw")),
        "{:?}",
        rep2.problems
    );
    // Only as JSON lines.
    assert!(pii::export(
        &ws,
        &rules,
        &ExportOptions {
            format: ExportFormat::Csv,
            ..opts
        },
        &JobCtx::silent()
    )
    .is_err());
}

// ---------------------------------------------------------------- redaction everywhere

const CARL: &str = "carl@example.com";

/// The files an export wrote (not its manifest), as text, gzipped ones unpacked.
fn written_text(dir: &Path) -> String {
    use std::io::Read;
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() == "pii-export.json" {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        if p.extension().is_some_and(|x| x == "gz") {
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .unwrap();
            out.push_str(&s);
        } else {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn options(out: PathBuf, format: ExportFormat) -> ExportOptions {
    ExportOptions {
        out_dir: out,
        format,
        keep_from_us: None,
        salt: Some(b"s4lt".to_vec()),
        now_us: NOW,
        vendor_shape: false,
        include_quarantine: false,
    }
}

fn rule(path: Option<&str>, detector: Option<&str>, action: RedactAction) -> RedactionRule {
    RedactionRule {
        path: path.map(str::to_string),
        detector: detector.map(str::to_string),
        finding: None,
        action,
    }
}

#[test]
fn a_field_rule_redacts_its_values_wherever_they_appear() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_lines(
        dir.path(),
        "field.jsonl",
        &[
            posthog_line(
                "00000000-0000-4000-8000-000000000001",
                "signup",
                "u-100",
                "2024-03-01T10:00:00Z",
                serde_json::json!({"$set": {"email": CARL}, "plan": "pro"}),
            ),
            // The same address in another field's text, a nested array and a URL.
            posthog_line(
                "00000000-0000-4000-8000-000000000002",
                "invite",
                "u-101",
                "2024-03-01T11:00:00Z",
                serde_json::json!({"note": "invited by carl@example.com", "cc": [{"to": ["x", CARL]}],
                    "$current_url": "https://x.io/?e=carl%40example.com"}),
            ),
            // As a distinct id (the top column and the raw record).
            posthog_line(
                "00000000-0000-4000-8000-000000000003",
                "$pageview",
                CARL,
                "2024-03-01T12:00:00Z",
                serde_json::json!({"plan": "pro"}),
            ),
        ],
    );
    let ws = Workspace::in_memory().unwrap();
    import_paths(
        &ws,
        &[f],
        &ImportOptions {
            keep_raw: true,
            ..Default::default()
        },
        &JobCtx::silent(),
    )
    .unwrap();
    let rules = RedactionRules {
        format: None,
        fields: vec![rule(
            Some("properties.$set.email"),
            None,
            RedactAction::Pseudonymize,
        )],
    };
    for (format, vendor_shape) in [
        (ExportFormat::Jsonl, false),
        (ExportFormat::Csv, false),
        (ExportFormat::Parquet, false),
        (ExportFormat::Jsonl, true),
    ] {
        let out = dir
            .path()
            .join(format!("out-{}-{vendor_shape}", format.as_str()));
        let rep = pii::export(
            &ws,
            &rules,
            &ExportOptions {
                vendor_shape,
                ..options(out.clone(), format)
            },
            &JobCtx::silent(),
        )
        .unwrap();
        let text = written_text(&out);
        assert!(
            !text.contains(CARL) && !text.contains("carl%40example.com"),
            "{format:?} vendor={vendor_shape}: the address is left elsewhere"
        );
        assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
        // One address, one pseudonym, wherever it was.
        assert_eq!(rep.checks[0].values, 1);
        assert_eq!(rep.checks[0].values_after, 0);
        assert!(rep.checks[0].redacted >= 5, "{:?}", rep.checks);
        assert!(rep.remaining.is_empty());
        if format == ExportFormat::Jsonl && !vendor_shape {
            let rows: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let pn = rows[0]["properties"]["$set"]["email"].as_str().unwrap();
            assert!(pn.starts_with("pn_"), "{pn}");
            assert_eq!(rows[1]["properties"]["note"], format!("invited by {pn}"));
            assert_eq!(rows[1]["properties"]["cc"][0]["to"][1], pn);
            assert_eq!(rows[2]["distinct_id"], pn);
            // Other values are untouched.
            assert_eq!(rows[1]["properties"]["cc"][0]["to"][0], "x");
            assert_eq!(rows[1]["distinct_id"], "u-101");
        }
    }
}

#[test]
fn a_detector_rule_reaches_event_names_and_property_keys() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_lines(
        dir.path(),
        "names.jsonl",
        &[posthog_line(
            "00000000-0000-4000-8000-000000000001",
            "invite sent to carl@example.com",
            "u-1",
            "2024-03-01T10:00:00Z",
            serde_json::json!({"dana@example.com": true, "nested": {"erin@example.com": {"n": 1}}, "plan": "pro"}),
        )],
    );
    let ws = Workspace::in_memory().unwrap();
    import_paths(&ws, &[f], &ImportOptions::default(), &JobCtx::silent()).unwrap();
    // The scan finds them, and its paths do not spell them out.
    let scan = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let name = finding(&scan.findings, "event_name", "email");
    assert_eq!(name.samples, ["c***@e******.com"]);
    finding(&scan.findings, "properties.{key}", "email");
    finding(&scan.findings, "properties.nested.{key}", "email");
    let shown = serde_json::to_string(&scan.findings).unwrap();
    for raw in [CARL, "dana@example.com", "erin@example.com"] {
        assert!(!shown.contains(raw), "{raw} in the findings");
    }
    let rules = RedactionRules {
        format: None,
        fields: vec![rule(None, Some("email"), RedactAction::Mask)],
    };
    for format in [
        ExportFormat::Jsonl,
        ExportFormat::Csv,
        ExportFormat::Parquet,
    ] {
        let out = dir.path().join(format!("o-{}", format.as_str()));
        let rep = pii::export(
            &ws,
            &rules,
            &options(out.clone(), format),
            &JobCtx::silent(),
        )
        .unwrap();
        let text = written_text(&out);
        for raw in [CARL, "dana@example.com", "erin@example.com"] {
            assert!(!text.contains(raw), "{raw} left in {format:?}");
        }
        assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
        assert_eq!(rep.checks[0].values, 3);
        if format == ExportFormat::Jsonl {
            let row: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            assert_eq!(row["event_name"], "invite sent to c***@e******.com");
            assert_eq!(row["properties"]["d***@e******.com"], true);
            assert_eq!(row["properties"]["nested"]["e***@e******.com"]["n"], 1);
        }
    }
    // A finding rule on the event name's finding redacts by its detector.
    let rules = RedactionRules {
        format: None,
        fields: vec![RedactionRule {
            path: None,
            detector: None,
            finding: Some(name.id.clone()),
            action: RedactAction::Drop,
        }],
    };
    let out = dir.path().join("by-finding");
    let rep = pii::export(
        &ws,
        &rules,
        &options(out.clone(), ExportFormat::Jsonl),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
    let row: serde_json::Value = serde_json::from_str(written_text(&out).trim()).unwrap();
    // An event name cannot be dropped: the span is; a key that is an address goes.
    assert_eq!(row["event_name"], "invite sent to [redacted]");
    assert!(row["properties"].get("dana@example.com").is_none());
    assert_eq!(row["properties"]["plan"], "pro");
}

#[test]
fn findings_marked_needs_redaction_must_all_be_covered() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &handmade(dir.path()));
    let scan = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let phone = finding(&scan.findings, "properties.note", "phone")
        .id
        .clone();
    let ip = finding(&scan.findings, "properties.$ip", "ipv4").id.clone();
    let email = finding(&scan.findings, "properties.$set.email", "email")
        .id
        .clone();
    for id in [&phone, &ip, &email] {
        pii::review(&ws, id, ReviewStatus::NeedsRedaction, "", "ana", NOW).unwrap();
    }
    let emails_only = RedactionRules {
        format: None,
        fields: vec![rule(None, Some("email"), RedactAction::Mask)],
    };
    let out = dir.path().join("refused");
    let e = pii::export(
        &ws,
        &emails_only,
        &options(out.clone(), ExportFormat::Jsonl),
        &JobCtx::silent(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("pii_uncovered_findings"), "{e}");
    assert!(e.contains(&phone) && e.contains(&ip), "{e}");
    assert!(!e.contains(&email), "the email finding is covered: {e}");
    assert!(
        !e.contains("7946") && !e.contains("198.51"),
        "no raw value: {e}"
    );
    assert!(!out.exists(), "nothing written");
    // Covered by a detector rule, a path rule and a finding rule: written, and neither the
    // phone number nor the address is left.
    let all = RedactionRules {
        format: None,
        fields: vec![
            rule(None, Some("email"), RedactAction::Mask),
            rule(Some("properties.$ip"), None, RedactAction::Mask),
            RedactionRule {
                path: None,
                detector: None,
                finding: Some(phone.clone()),
                action: RedactAction::Pseudonymize,
            },
        ],
    };
    let out = dir.path().join("covered");
    let rep = pii::export(
        &ws,
        &all,
        &options(out.clone(), ExportFormat::Jsonl),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
    let text = written_text(&out);
    for raw in ["+44 20 7946 0958", "198.51.100.23", "198.51.100.24", EMAIL] {
        assert!(!text.contains(raw), "{raw} left");
    }
}

fn quarantine_fixture(dir: &Path) -> PathBuf {
    write_lines(
        dir,
        "q.jsonl",
        &[
            posthog_line(
                "00000000-0000-4000-8000-000000000001",
                "ok",
                "u-1",
                "2024-03-01T10:00:00Z",
                serde_json::json!({"plan": "pro"}),
            ),
            // No time that can be read: quarantined, with the address in its raw text.
            posthog_line(
                "00000000-0000-4000-8000-000000000002",
                "bad",
                "u-2",
                "not a time",
                serde_json::json!({"email": CARL}),
            ),
        ],
    )
}

#[test]
fn quarantined_records_are_scanned_and_redacted_or_left_out_and_said_so() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::in_memory().unwrap();
    let r = import_paths(
        &ws,
        &[quarantine_fixture(dir.path())],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(r.files[0].rows_quarantined, 1);
    let scan = pii::scan(&ws, NOW, &JobCtx::silent()).unwrap();
    let q = finding(&scan.findings, "quarantine.raw.properties.email", "email");
    assert_eq!(q.source, pii::Source::Quarantine);
    assert_eq!(q.samples, ["c***@e******.com"]);
    let rules = RedactionRules {
        format: None,
        fields: vec![rule(None, Some("email"), RedactAction::Mask)],
    };
    // Left out: said so.
    let out = dir.path().join("left-out");
    let rep = pii::export(
        &ws,
        &rules,
        &options(out.clone(), ExportFormat::Jsonl),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
    assert_eq!(
        (rep.quarantine_rows, rep.quarantine_file.as_deref()),
        (1, None)
    );
    assert!(
        rep.notes
            .iter()
            .any(|n| n.contains("1 quarantined record was left out")),
        "{:?}",
        rep.notes
    );
    assert!(!out.join("quarantine.jsonl").exists());
    assert!(!written_text(&out).contains(CARL));
    // Included: redacted, and verified.
    let out = dir.path().join("included");
    let rep = pii::export(
        &ws,
        &rules,
        &ExportOptions {
            include_quarantine: true,
            ..options(out.clone(), ExportFormat::Jsonl)
        },
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(rep.status, ExportStatus::Complete, "{:?}", rep.problems);
    let qtext = std::fs::read_to_string(out.join("quarantine.jsonl")).unwrap();
    assert!(!qtext.contains(CARL), "{qtext}");
    let rec: serde_json::Value = serde_json::from_str(qtext.trim()).unwrap();
    let raw: serde_json::Value = serde_json::from_str(rec["raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["properties"]["email"], "c***@e******.com");
    assert_eq!(raw["timestamp"], "not a time");
    assert!(rep.checks[0].redacted >= 1 && rep.checks[0].values_after == 0);
    // A finding marked "needs redaction" in the quarantine needs a rule only when the
    // quarantine is written.
    pii::review(&ws, &q.id, ReviewStatus::NeedsRedaction, "", "ana", NOW).unwrap();
    let none = RedactionRules::default();
    pii::export(
        &ws,
        &none,
        &options(dir.path().join("n1"), ExportFormat::Jsonl),
        &JobCtx::silent(),
    )
    .unwrap();
    let e = pii::export(
        &ws,
        &none,
        &ExportOptions {
            include_quarantine: true,
            ..options(dir.path().join("n2"), ExportFormat::Jsonl)
        },
        &JobCtx::silent(),
    )
    .unwrap_err();
    assert!(e.to_string().contains(&q.id), "{e}");
}
