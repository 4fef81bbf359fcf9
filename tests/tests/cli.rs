//! CLI runs end to end: the `stitchbook` binary on the committed sample data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bin() -> PathBuf {
    // target/<profile>/deps/cli-<hash> → target/<profile>/stitchbook
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let b = dir.join("stitchbook");
    assert!(b.exists(), "build the CLI first: {}", b.display());
    b
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn truth(name: &str) -> Value {
    let p = repo()
        .join("sample-data/truth")
        .join(format!("{name}.truth.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn import_samples_as_json_matches_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("demo.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let posthog = repo()
        .join("sample-data/posthog")
        .to_string_lossy()
        .to_string();
    let (code, out, err) = run(&["import", &ws_s, &posthog, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        let name = Path::new(f["path"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let t = truth(&name);
        assert_eq!(f["status"], "complete");
        assert_eq!(f["vendor"], "posthog");
        assert_eq!(f["rowsRead"], t["lines"], "{name}");
        assert_eq!(f["rowsLoaded"], t["unique_events"], "{name}");
        assert_eq!(f["rowsDuplicate"], t["duplicates_injected"], "{name}");
        assert_eq!(f["rowsQuarantined"], t["malformed_injected"], "{name}");
    }
    let gz = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with(".gz"))
        .unwrap();
    assert_eq!(gz["compression"], "gzip");

    // The generic CSV with its mapping.
    let csv = repo()
        .join("sample-data/generic/app_events.csv")
        .to_string_lossy()
        .to_string();
    let mapping = repo()
        .join("sample-data/generic/app_events.mapping.toml")
        .to_string_lossy()
        .to_string();
    let (code, out, err) = run(&["import", &ws_s, &csv, "--mapping", &mapping, "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count() as u64 - 1;
    assert_eq!(report["files"][0]["rowsLoaded"], rows);

    // info reflects both sources.
    let (code, out, _) = run(&["info", &ws_s, "--json"]);
    assert_eq!(code, 0);
    let info: Value = serde_json::from_str(&out).unwrap();
    let expected = truth("demo_events.jsonl.gz")["unique_events"]
        .as_u64()
        .unwrap()
        + truth("small_events.jsonl")["unique_events"]
            .as_u64()
            .unwrap()
        + rows;
    assert_eq!(info["totalEvents"].as_u64().unwrap(), expected);
    let vendors: Vec<&str> = info["byVendor"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vendor"].as_str().unwrap())
        .collect();
    assert_eq!(vendors, vec!["posthog", "generic"]);
    assert_eq!(info["imports"].as_array().unwrap().len(), 3);

    // The human table names every file and the totals.
    let (code, out, _) = run(&["import", &ws_s, &posthog]);
    assert_eq!(code, 0);
    assert!(out.contains("demo_events.jsonl.gz"));
    assert!(out.contains("identical to import #1"));
    assert!(out.contains("TOTAL (2 files)"));
}

#[test]
fn refused_files_exit_nonzero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("w.duckdb").to_string_lossy().to_string();
    let bad = dir.path().join("letter.txt");
    std::fs::write(&bad, "hello, world\n").unwrap();
    let (code, out, _) = run(&["import", &ws, &bad.to_string_lossy()]);
    assert_eq!(code, 1);
    assert!(out.contains("letter.txt"));
    assert!(out.contains("could not recognise"));

    let (code, _, err) = run(&["import", &ws, "/no/such/file.jsonl"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/file.jsonl"));

    let (code, _, err) = run(&["import", &ws, &bad.to_string_lossy(), "--format", "excel"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown format"));
}

#[test]
fn generate_then_quarantine_lists_the_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g.jsonl");
    let out_s = out.to_string_lossy().to_string();
    let (code, _, err) = run(&[
        "generate",
        "--events",
        "300",
        "--seed",
        "4",
        "--malformed",
        "0.05",
        "--out",
        &out_s,
    ]);
    assert_eq!(code, 0, "{err}");
    let t: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{out_s}.truth.json")).unwrap())
            .unwrap();
    let ws = dir.path().join("w.duckdb").to_string_lossy().to_string();
    let (code, _, _) = run(&["import", &ws, &out_s]);
    assert_eq!(code, 0);
    let (code, listing, _) = run(&["quarantine", &ws, "--json", "--limit", "1000"]);
    assert_eq!(code, 0);
    let rows: Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(
        rows.as_array().unwrap().len() as u64,
        t["malformed_injected"].as_u64().unwrap()
    );
    assert!(rows[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON"));
    // Same seed, same bytes.
    let again = dir.path().join("g2.jsonl");
    run(&[
        "generate",
        "--events",
        "300",
        "--seed",
        "4",
        "--malformed",
        "0.05",
        "--out",
        &again.to_string_lossy(),
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn newer_workspace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("w.duckdb");
    {
        let w = stitchbook_engine::Workspace::open(&ws).unwrap();
        w.conn()
            .execute(
                "INSERT INTO schema_migrations VALUES (999, 'future', now())",
                [],
            )
            .unwrap();
    }
    let (code, _, err) = run(&["info", &ws.to_string_lossy()]);
    assert_eq!(code, 2);
    assert!(err.contains("newer Stitchbook"), "{err}");
}

/// The model commands on the two-vendor story: an Amplitude zip and a PostHog export of the
/// same product, where user ids carry across the migration.
#[test]
fn persons_person_explain_sessions_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("m.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let amp = repo().join("sample-data/amplitude/demo_2023-11.zip");
    let ph = repo().join("sample-data/posthog/demo_events.jsonl.gz");
    let (code, out, err) = run(&[
        "import",
        &ws_s,
        &amp.to_string_lossy(),
        &ph.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("model (posthog mode):"), "{out}");

    // A person seen in both vendors: search by user id.
    let (code, out, err) = run(&["persons", &ws_s, "--search", "user_000034", "--json"]);
    assert_eq!(code, 0, "{err}");
    let persons: Value = serde_json::from_str(&out).unwrap();
    let p = &persons.as_array().unwrap()[0];
    let pid = p["personId"].as_str().unwrap().to_string();
    assert!(p["isIdentified"].as_bool().unwrap());

    let (code, out, err) = run(&["person", &ws_s, "user_000034", "--explain", "--json"]);
    assert_eq!(code, 0, "{err}");
    let d: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(d["person"]["personId"], pid.as_str());
    let steps = d["explain"].as_array().unwrap();
    assert_eq!(steps.len() + 1, d["ids"].as_array().unwrap().len());
    // Each id joined through a link with its source event: file and line.
    let vendors: std::collections::BTreeSet<&str> = steps
        .iter()
        .map(|s| s["link"]["sourceVendor"].as_str().unwrap())
        .collect();
    assert_eq!(
        vendors.into_iter().collect::<Vec<_>>(),
        ["amplitude", "posthog"]
    );
    assert!(steps
        .iter()
        .all(|s| s["link"]["sourceLine"].as_i64().unwrap() > 0));
    let other = steps.last().unwrap()["id"].as_str().unwrap().to_string();

    // The chain between two of the ids, as text.
    let (code, out, _) = run(&["person", &ws_s, &other, "--explain", "--to", "user_000034"]);
    assert_eq!(code, 0);
    assert!(out.contains("via "), "{out}");

    let (code, out, _) = run(&["sessions", &ws_s, "--person", "user_000034", "--json"]);
    assert_eq!(code, 0);
    let sessions: Value = serde_json::from_str(&out).unwrap();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len() as i64, p["sessions"].as_i64().unwrap());
    assert!(sessions.iter().all(|s| s["personId"] == pid.as_str()));

    // A settings change rebuilds: the warehouse stitch, then back.
    let (code, out, err) = run(&[
        "settings",
        &ws_s,
        "--set",
        "identity.mode=warehouse_last_value",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("model (warehouse_last_value mode)"), "{out}");
    let (code, _, err) = run(&["settings", &ws_s, "--set", "identity.mode=nonsense"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown identity mode"), "{err}");
    let (code, out, _) = run(&["rebuild", &ws_s, "--json"]);
    assert_eq!(code, 0);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["settings"]["identityMode"], "warehouse_last_value");
    assert!(r["sessions"].as_i64().unwrap() > 0);

    let (code, _, err) = run(&["person", &ws_s, "no-such-id"]);
    assert_eq!(code, 2);
    assert!(err.contains("no person has the id"), "{err}");
}

#[test]
fn run_and_drill_the_example_funnel() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("f.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let ph = repo().join("sample-data/posthog/demo_events.jsonl.gz");
    let (code, _, err) = run(&["import", &ws_s, &ph.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let q = repo().join("sample-data/queries/funnel_signup_to_upgrade.json");
    let q_s = q.to_string_lossy().to_string();
    let (code, out, err) = run(&["run", &ws_s, "--query", &q_s, "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["kind"], "funnel");
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    let counts: Vec<i64> = steps.iter().map(|s| s["count"].as_i64().unwrap()).collect();
    assert!(
        counts[0] > 0 && counts.windows(2).all(|w| w[0] >= w[1]),
        "{counts:?}"
    );
    // The breakdown rows add up to the whole (first touch: one value per person).
    let sum: i64 = r["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["steps"][0]["count"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, counts[0]);
    // Dropped off before step 2 = entered minus reached step 2.
    let (code, out, _) = run(&["drill", &ws_s, "--query", &q_s, "--cell", "-2", "--json"]);
    assert_eq!(code, 0);
    let persons: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        persons.as_array().unwrap().len() as i64,
        counts[0] - counts[1]
    );
    let (code, out, _) = run(&["run", &ws_s, "--query", &q_s, "--explain"]);
    assert_eq!(code, 0);
    assert!(out.contains("signed_up") && out.contains("SELECT"), "{out}");
    // Every example query answers, as a table and as JSON.
    let mut n = 0;
    for f in std::fs::read_dir(repo().join("sample-data/queries")).unwrap() {
        let f = f.unwrap().path().to_string_lossy().to_string();
        for extra in [None, Some("--json")] {
            let mut args = vec![
                "run",
                ws_s.as_str(),
                "--query",
                f.as_str(),
                "--now",
                "2024-03-01T00:00:00Z",
            ];
            args.extend(extra);
            let (code, out, err) = run(&args);
            assert_eq!(code, 0, "{f}: {err}");
            assert!(!out.trim().is_empty(), "{f}");
        }
        // And draws its chart.
        let png = dir.path().join(format!("chart{n}.png"));
        let png_s = png.to_string_lossy().to_string();
        let (code, _, err) = run(&["run", &ws_s, "--query", &f, "--png", &png_s]);
        assert_eq!(code, 0, "{f}: {err}");
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"), "{f}");
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn run_is_as_of_the_end_of_the_data_and_refuses_misspelt_events() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("n.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let ph = repo().join("sample-data/posthog/demo_events.jsonl.gz");
    let (code, _, err) = run(&["import", &ws_s, &ph.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    // The sample's events end on 2024-02-03: "-4w" counts back from there.
    let q = dir.path().join("q.json");
    std::fs::write(
        &q,
        r#"{"kind": "trends", "series": [{"event": "signed_up", "math": "total"}], "date_range": {"from": "-4w"}, "interval": "week"}"#,
    )
    .unwrap();
    let q_s = q.to_string_lossy().to_string();
    let (code, out, err) = run(&["run", &ws_s, "--query", &q_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("as of 3 Feb 2024, the end of the data") && !out.contains("warning:"),
        "{out}"
    );
    let (code, out, err) = run(&["run", &ws_s, "--query", &q_s, "--json"]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["asOf"]["source"], "data_end");
    assert_eq!(r["warnings"], serde_json::json!([]));
    let total: f64 = r["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(total > 0.0, "{out}");
    // On the wall clock the same range is after the data: a warning, not silent zeros.
    let (code, out, err) = run(&["settings", &ws_s, "--set", "insights.now=wall_clock"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("insights.now                 wall_clock"),
        "{out}"
    );
    let (code, out, err) = run(&["run", &ws_s, "--query", &q_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("as of now")
            && out.contains("warning: the date range")
            && out.contains("after the data"),
        "{out}"
    );
    // --now still wins.
    let (code, out, err) = run(&[
        "run",
        &ws_s,
        "--query",
        &q_s,
        "--now",
        "2024-02-03T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("as given") && !out.contains("warning:"),
        "{out}"
    );
    // A misspelt event is refused with the closest names.
    std::fs::write(
        &q,
        r#"{"kind": "funnel", "steps": [{"event": "signed_up"}, {"event": "upgraded_pla"}], "date_range": {"from": "2024-01-01", "to": "2024-02-03"}}"#,
    )
    .unwrap();
    let (code, _, err) = run(&["run", &ws_s, "--query", &q_s]);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown_event")
            && err.contains("no event is named \"upgraded_pla\" (closest: \"upgraded_plan\""),
        "{err}"
    );
}

#[test]
fn sql_cohorts_and_saved_insights() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("c.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let ph = repo().join("sample-data/posthog/demo_events.jsonl.gz");
    let (code, _, err) = run(&["import", &ws_s, &ph.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    // Read-only SQL answers queries and refuses writes.
    let (code, out, err) = run(&["sql", &ws_s, "SELECT count(*) AS n FROM persons", "--json"]);
    assert_eq!(code, 0, "{err}");
    let t: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(t["columns"][0], "n");
    let persons: i64 = t["rows"][0][0].as_str().unwrap().parse().unwrap();
    assert!(persons > 0);
    let (code, _, err) = run(&["sql", &ws_s, "DELETE FROM events"]);
    assert_eq!(code, 2);
    assert!(err.contains("read-only"), "{err}");
    // The app console's rules: no files, no second statement, a time limit.
    let passwd = format!("SELECT * FROM read_csv('{}')", ph.display());
    for bad in [
        passwd.as_str(),
        "SELECT 1); SET VARIABLE x = 1; SELECT (1",
        "SELECT 1; CHECKPOINT",
    ] {
        let (code, _, err) = run(&["sql", &ws_s, bad]);
        assert_eq!(code, 2, "{bad}");
        assert!(err.contains("sql_read_only"), "{bad}: {err}");
    }
    let (code, _, err) = run(&[
        "sql",
        &ws_s,
        "SELECT count(*) FROM range(1000000000000)",
        "--timeout",
        "1",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("sql_timeout"), "{err}");
    // A saved cohort, its members as CSV, and its use as an exclusion.
    let def = repo().join("sample-data/cohorts/internal_users.json");
    let (code, out, err) = run(&[
        "cohort",
        "save",
        &ws_s,
        "internal users",
        "--definition",
        &def.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("saved cohort"), "{out}");
    let csv = dir.path().join("members.csv");
    let (code, _, err) = run(&[
        "cohort",
        "members",
        &ws_s,
        "internal users",
        "--csv",
        &csv.to_string_lossy(),
    ]);
    assert_eq!(code, 0, "{err}");
    let members = std::fs::read_to_string(&csv).unwrap().lines().count() - 1;
    assert!(members > 0);
    let q = dir.path().join("q.json");
    std::fs::write(
        &q,
        r#"{"kind": "trends", "series": [{"math": "unique_persons"}], "date_range": {"from": "2023-01-01", "to": "2024-12-31"}, "interval": "month", "exclude_cohort": "internal users"}"#,
    )
    .unwrap();
    let (code, out, err) = run(&[
        "run",
        &ws_s,
        "--query",
        &q.to_string_lossy(),
        "--json",
        "--save-as",
        "monthly",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let total: f64 = r["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!(
        total > 0.0 && total < persons as f64,
        "{total} of {persons}"
    );
    // The saved insight runs by name and gives the same answer.
    let (code, out2, err) = run(&["run", &ws_s, "--saved", "monthly", "--json"]);
    assert_eq!(code, 0, "{err}");
    let r2: Value = serde_json::from_str(&out2).unwrap();
    assert_eq!(r["series"], r2["series"]);
    let (code, out, _) = run(&["insight", "list", &ws_s]);
    assert_eq!(code, 0);
    assert!(out.contains("monthly") && out.contains("trends"), "{out}");
}

#[test]
fn pii_scan_review_export_report_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("pii.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let sample = repo()
        .join("sample-data/posthog")
        .to_string_lossy()
        .to_string();
    let (code, _, err) = run(&["import", &ws_s, &sample]);
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(&["pii", "scan", &ws_s, "--json"]);
    assert_eq!(code, 0, "{err}");
    let scan: Value = serde_json::from_str(&out).unwrap();
    let findings = scan["findings"].as_array().unwrap();
    let email = findings
        .iter()
        .find(|f| f["path"] == "properties.$set.email" && f["detector"] == "email")
        .expect("the generated emails are found");
    assert!(email["samples"][0]
        .as_str()
        .unwrap()
        .contains("@e******.com"));
    assert!(findings
        .iter()
        .any(|f| f["path"] == "properties.$ip" && f["detector"] == "ipv4"));
    // Raw values never printed: the generator's addresses end in @example.com.
    assert!(!out.contains("@example.com") && !err.contains("@example.com"));
    let id = email["id"].as_str().unwrap();

    let (code, out, err) = run(&[
        "pii",
        "review",
        &ws_s,
        id,
        "--status",
        "needs_redaction",
        "--note",
        "pseudonymize",
        "--reviewer",
        "ana",
        "--at",
        "2025-01-02T03:04:05Z",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["review"]["status"], "needs_redaction");
    assert_eq!(r["review"]["reviewedAt"], "2025-01-02T03:04:05Z");
    assert_eq!(r["needsReview"], false);
    let (code, _, err) = run(&[
        "pii",
        "review",
        &ws_s,
        id,
        "--status",
        "maybe",
        "--reviewer",
        "ana",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("needs_redaction"), "{err}");
    let (_, out, _) = run(&["pii", "list", &ws_s, "--pending", "--json"]);
    let pending: Value = serde_json::from_str(&out).unwrap();
    assert!(pending.as_array().unwrap().iter().all(|f| f["id"] != id));

    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[field]]\npath = \"distinct_id\"\naction = \"pseudonymize\"\n[[field]]\ndetector = \"email\"\naction = \"mask\"\n[[field]]\npath = \"properties.$ip\"\naction = \"drop\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("export");
    let (code, out, err) = run(&[
        "pii",
        "export",
        &ws_s,
        "--rules",
        &rules.to_string_lossy(),
        "--out",
        &out_dir.to_string_lossy(),
        "--format",
        "csv",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let x: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(x["status"], "complete");
    assert_eq!(x["rowsWritten"], x["rowsSource"]);
    let csv = std::fs::read_to_string(out_dir.join("events.csv")).unwrap();
    assert!(!csv.contains("@example.com") && !csv.contains("203.0.113."));
    assert_eq!(
        csv.lines().count() as i64,
        x["rowsWritten"].as_i64().unwrap() + 1
    );

    let report = dir.path().join("audit/report.html");
    let (code, _, err) = run(&["pii", "report", &ws_s, "--out", &report.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("needs_redaction") && html.contains("data:image/png;base64,"));
    assert!(!html.contains("@example.com"));
    assert!(
        dir.path().join("audit/report.csv").exists()
            && dir.path().join("audit/report.json").exists()
    );

    let (code, out, err) = run(&[
        "pii",
        "retention",
        &ws_s,
        "--before",
        "2024-01-15",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let ret: Value = serde_json::from_str(&out).unwrap();
    let (older, kept) = (
        ret["older"].as_i64().unwrap(),
        ret["kept"].as_i64().unwrap(),
    );
    assert!(older > 0 && kept > 0);
    // The email finding is marked needs_redaction: an export without a rule for it is
    // refused, naming it, and writes nothing.
    let (code, _, err) = run(&[
        "pii",
        "retention",
        &ws_s,
        "--before",
        "2024-01-15",
        "--export",
        &dir.path().join("unredacted").to_string_lossy(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("pii_uncovered_findings") && err.contains(id),
        "{err}"
    );
    assert!(!dir.path().join("unredacted").exists());
    let (code, out, err) = run(&[
        "pii",
        "retention",
        &ws_s,
        "--before",
        "2024-01-15",
        "--export",
        &dir.path().join("recent").to_string_lossy(),
        "--rules",
        &rules.to_string_lossy(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let x: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(x["rowsWritten"].as_i64().unwrap(), kept);
    assert_eq!(x["rowsLeftOut"].as_i64().unwrap(), older);

    let (code, _, err) = run(&["pii", "rule", "add", &ws_s, "bad", "(unclosed"]);
    assert_ne!(code, 0);
    assert!(err.contains("pii_invalid_rule"), "{err}");
}

/// Issue 17 item 12: CLI tables show times in one readable format in the workspace time zone
/// (never raw ISO with microseconds and offsets); `--json` keeps ISO 8601.
#[test]
fn cli_tables_show_readable_times_in_the_workspace_zone() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("tz.duckdb");
    let ws_s = ws.to_string_lossy().to_string();
    let file = dir.path().join("e.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"uuid":"00000000-0000-0000-0000-000000000001","event":"$pageview","distinct_id":"u1","timestamp":"2024-01-02T13:15:33.000000Z","properties":{}}"#,
            "\n",
            r#"{"uuid":"00000000-0000-0000-0000-000000000002","event":"$pageview","distinct_id":"u1","timestamp":"2024-07-02T13:15:33.000000Z","properties":{}}"#,
            "\n"
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["import", &ws_s, &file.to_string_lossy()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["settings", &ws_s, "--set", "time_zone=America/New_York"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["info", &ws_s]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("2024-01-02 08:15:33 EST .. 2024-07-02 09:15:33 EDT"),
        "{out}"
    );
    let (_, out, _) = run(&["catalog", &ws_s]);
    assert!(out.contains("2024-01-02 08:15:33 EST"), "{out}");
    assert!(!out.contains("+00:00") && !out.contains("T13:15"), "{out}");
    let (_, out, _) = run(&["timeline", &ws_s, "u1"]);
    assert!(out.contains("2024-07-02 09:15:33 EDT"), "{out}");
    // JSON keeps ISO 8601 in UTC.
    let (_, out, _) = run(&["info", &ws_s, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["firstEvent"]
            .as_str()
            .unwrap()
            .starts_with("2024-01-02T13:15:33"),
        "{out}"
    );
}
