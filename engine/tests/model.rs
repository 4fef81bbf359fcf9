//! The model layer against semantics.md's test vectors (TV-ID-*, TV-SES-*), each from tiny
//! literal events imported through the real pipeline, plus mode differences and generated
//! data with ground truth.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers fail loudly

use std::path::Path;

use serde_json::{json, Value};
use stitchbook_engine::ingest::{import_paths, ImportOptions};
use stitchbook_engine::model::{self, person, ModelSettings};
use stitchbook_engine::{JobCtx, Workspace};

const T0: i64 = 1_709_287_200; // 2024-03-01T10:00:00Z

fn iso(secs: i64) -> String {
    stitchbook_engine::generate::rfc3339_micros(secs * 1_000_000)
}

/// A PostHog event `secs` after T0.
fn ph(n: usize, secs: i64, distinct: &str, event: &str, props: Value) -> Value {
    json!({
        "uuid": format!("00000000-0000-4000-8000-{n:012}"),
        "event": event,
        "distinct_id": distinct,
        "timestamp": iso(T0 + secs),
        "properties": props,
    })
}

fn workspace(records: &[Value], settings: &[(&str, &str)]) -> Workspace {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.jsonl");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&p, text).unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &p);
    for (k, v) in settings {
        ModelSettings::set(&ws, k, v).unwrap();
    }
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    ws
}

fn import(ws: &Workspace, p: &Path) {
    let r = import_paths(
        ws,
        &[p.to_path_buf()],
        &ImportOptions::default(),
        &JobCtx::silent(),
    )
    .unwrap();
    assert_eq!(r.files[0].rows_quarantined, 0, "{:?}", r.files[0].message);
}

fn q(ws: &Workspace, sql: &str) -> i64 {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

fn s(ws: &Workspace, sql: &str) -> String {
    ws.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The persons as sorted id lists, e.g. [["U1", "anonA"], ["U2"]].
fn clusters(ws: &Workspace) -> Vec<Vec<String>> {
    let mut st = ws
        .conn()
        .prepare(
            "SELECT string_agg(m.distinct_id, '\x1f' ORDER BY m.distinct_id) FROM person_map m
             JOIN persons p USING (person_id) GROUP BY m.person_id ORDER BY 1",
        )
        .unwrap();
    st.query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|x| x.unwrap().split('\x1f').map(str::to_string).collect())
        .collect()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn identify(n: usize, secs: i64, into: &str, anon: &str) -> Value {
    ph(
        n,
        secs,
        into,
        "$identify",
        json!({ "$anon_distinct_id": anon }),
    )
}

#[test]
fn tv_id_1_basic_retroactive_merge() {
    let ws = workspace(
        &[
            ph(1, 0, "anonA", "$pageview", json!({})),
            identify(2, 60, "U1", "anonA"),
            ph(3, 120, "U1", "purchase", json!({})),
        ],
        &[],
    );
    assert_eq!(clusters(&ws), vec![ids(&["U1", "anonA"])]);
    assert_eq!(
        q(&ws, "SELECT count(*) FROM persons WHERE is_identified"),
        1
    );
    assert_eq!(
        s(
            &ws,
            "SELECT epoch(created_at)::BIGINT::VARCHAR FROM persons"
        ),
        T0.to_string()
    );
    // Unique users over all three events = 1.
    assert_eq!(
        q(&ws, "SELECT count(DISTINCT person_id) FROM event_persons"),
        1
    );
}

fn tv_id_2_base() -> Vec<Value> {
    vec![
        ph(1, 0, "anonA", "$pageview", json!({})),
        identify(2, 10, "U1", "anonA"),
        ph(3, 100, "U1", "$pageview", json!({})),
    ]
}

#[test]
fn tv_id_2a_shared_device_without_reset() {
    let mut ev = tv_id_2_base();
    ev.push(ph(4, 210, "U2", "purchase", json!({})));
    let ws = workspace(&ev, &[]);
    assert_eq!(clusters(&ws), vec![ids(&["U1", "anonA"]), ids(&["U2"])]);
}

#[test]
fn tv_id_2a_warehouse_last_value_gives_the_cookie_to_the_last_user() {
    // The same story as Segment calls under one cookie: U1 on e2/e3, U2 on e4.
    let seg = |n: usize, secs: i64, ty: &str, user: Option<&str>| {
        json!({"type": ty, "messageId": format!("m{n}"), "anonymousId": "cookie", "userId": user,
               "event": "purchase", "timestamp": iso(T0 + secs)})
    };
    let ev = [
        seg(1, 0, "page", None),
        seg(2, 10, "identify", Some("U1")),
        seg(3, 100, "page", Some("U1")),
        seg(4, 210, "track", Some("U2")),
    ];
    let ws = workspace(&ev, &[("identity.mode", "warehouse_last_value")]);
    // Every event of the cookie belongs to U2: one user, U1's own history included.
    assert_eq!(
        q(&ws, "SELECT count(DISTINCT person_id) FROM event_persons"),
        1
    );
    assert_eq!(
        q(&ws, "SELECT count(*) FROM persons WHERE person_id = (SELECT person_id FROM person_map WHERE distinct_id = 'U2')"),
        1
    );
    // Under the PostHog default the same calls give U1 the cookie (first identification).
    ModelSettings::set(&ws, "identity.mode", "posthog").unwrap();
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    assert_eq!(clusters(&ws), vec![ids(&["U1", "cookie"]), ids(&["U2"])]);
}

#[test]
fn tv_id_2b_raw_identify_to_a_new_id_attaches_it() {
    let mut ev = tv_id_2_base();
    ev.push(identify(4, 200, "U2", "U1"));
    let ws = workspace(&ev, &[]);
    assert_eq!(clusters(&ws), vec![ids(&["U1", "U2", "anonA"])]);
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM merge_log WHERE outcome = 'refused'"
        ),
        0,
        "no warning"
    );
    // The strict mode refuses it instead.
    ModelSettings::set(&ws, "identity.mode", "posthog_strict").unwrap();
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    assert_eq!(clusters(&ws), vec![ids(&["U1", "anonA"]), ids(&["U2"])]);
    assert!(s(
        &ws,
        "SELECT reason FROM merge_log WHERE outcome = 'refused'"
    )
    .starts_with("cannot_merge_already_identified"));
}

fn tv_id_2c() -> Vec<Value> {
    let mut ev = tv_id_2_base();
    // U2 already owns a person from another device.
    ev.push(ph(4, 150, "U2", "$pageview", json!({})));
    ev.push(identify(5, 200, "U2", "U1"));
    ev
}

#[test]
fn tv_id_2c_identify_between_two_existing_persons_is_refused() {
    let ws = workspace(&tv_id_2c(), &[]);
    assert_eq!(clusters(&ws), vec![ids(&["U1", "anonA"]), ids(&["U2"])]);
    let (outcome, reason): (String, String) = ws
        .conn()
        .query_row(
            "SELECT outcome, reason FROM merge_log WHERE from_id = 'U1' AND into_id = 'U2'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(outcome, "refused");
    assert!(
        reason.starts_with("cannot_merge_already_identified"),
        "{reason}"
    );
    // The $identify event itself is attributed to U2's person.
    assert_eq!(
        s(&ws, "SELECT ep.person_id FROM event_persons ep JOIN events e USING (event_seq) WHERE e.event_name = '$identify' AND e.distinct_id = 'U2'"),
        s(&ws, "SELECT person_id FROM person_map WHERE distinct_id = 'U2'")
    );
    // The refusal is a visible warning on the person.
    let d = person::detail(&ws, "U1", false, 10).unwrap();
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("cannot_merge_already_identified")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn tv_id_3_multi_device_merge_is_allowed_and_into_wins() {
    let ws = workspace(
        &[
            ph(
                1,
                0,
                "anonA",
                "$pageview",
                json!({"$set": {"plan": "team"}}),
            ),
            identify(2, 10, "U1", "anonA"),
            // the second device's person sets a conflicting value, later
            ph(
                3,
                20,
                "anonB",
                "$pageview",
                json!({"$set": {"plan": "free", "os": "iOS"}}),
            ),
            identify(4, 30, "U1", "anonB"),
        ],
        &[],
    );
    assert_eq!(clusters(&ws), vec![ids(&["U1", "anonA", "anonB"])]);
    // Property conflict: P1's value wins; P2's other keys are kept.
    assert_eq!(s(&ws, "SELECT properties->>'$.plan' FROM persons"), "team");
    assert_eq!(s(&ws, "SELECT properties->>'$.os' FROM persons"), "iOS");
    assert_eq!(
        q(&ws, "SELECT count(*) FROM persons WHERE is_identified"),
        1
    );
    let d = person::detail(&ws, "anonB", true, 10).unwrap();
    assert_eq!(d.merges.len(), 2);
    // Explain: anonB reached U1 through the second $identify, U1 reached anonA through the
    // first, each with its source line.
    let chain = person::chain(&ws, "anonB", "anonA").unwrap().unwrap();
    assert_eq!(
        chain
            .iter()
            .map(|s| (s.via.as_str(), s.id.as_str(), s.link.source_line))
            .collect::<Vec<_>>(),
        vec![("anonB", "U1", Some(4)), ("U1", "anonA", Some(2))]
    );
}

#[test]
fn tv_id_4_merge_dangerously_overrides_the_guard_rail() {
    let mut ev = tv_id_2c();
    // P2 (U2) set its plan at t+150; P1 (U1) sets a different one later, at t+250.
    ev[3]["properties"] = json!({"$set": {"plan": "p2"}});
    ev.push(ph(7, 250, "U1", "$set", json!({"$set": {"plan": "p1"}})));
    ev.push(ph(
        6,
        300,
        "U2",
        "$merge_dangerously",
        json!({ "alias": "U1" }),
    ));
    let ws = workspace(&ev, &[]);
    assert_eq!(clusters(&ws), vec![ids(&["U1", "U2", "anonA"])]);
    // Conflicting properties take P2's (the "into" person's) values.
    assert_eq!(s(&ws, "SELECT properties->>'$.plan' FROM persons"), "p2");
    assert_eq!(
        s(
            &ws,
            "SELECT epoch(created_at)::BIGINT::VARCHAR FROM persons"
        ),
        T0.to_string()
    );
    // P1 went into P2: the person keeps U2's person id.
    assert_eq!(
        s(&ws, "SELECT person_id FROM persons"),
        stitchbook_engine::model::identity::person_id_for("U2")
    );
}

#[test]
fn tv_id_5_illegal_ids_never_merge() {
    let ws = workspace(
        &[
            ph(1, 0, "anonA", "$pageview", json!({})),
            identify(2, 10, "null", "anonA"),
            ph(3, 20, "U1", "$create_alias", json!({ "alias": "  " })),
        ],
        &[],
    );
    assert_eq!(
        clusters(&ws),
        vec![ids(&["U1"]), ids(&["anonA"]), ids(&["null"])]
    );
    assert_eq!(
        q(&ws, "SELECT count(*) FROM merge_log WHERE outcome = 'refused' AND reason LIKE 'cannot_merge_with_illegal_distinct_id%'"),
        1
    );
}

#[test]
fn user_ids_never_merge_in_mixpanel_and_amplitude_modes() {
    // A second device's anonymous id identified as U1, then explicitly merged with U2.
    let ev = [
        ph(1, 0, "anonA", "$pageview", json!({})),
        identify(2, 10, "U1", "anonA"),
        ph(3, 20, "U2", "$pageview", json!({})),
        identify(4, 30, "U2", "anonA"),
    ];
    for mode in ["mixpanel_simplified", "amplitude"] {
        let ws = workspace(&ev, &[("identity.mode", mode)]);
        assert_eq!(
            clusters(&ws),
            vec![ids(&["U1", "anonA"]), ids(&["U2"])],
            "{mode}"
        );
        assert!(s(
            &ws,
            "SELECT reason FROM merge_log WHERE outcome = 'refused'"
        )
        .contains("two user ids never merge"));
    }
}

/// Events of one device at these offsets (seconds from 10:00:00).
fn device_events(offsets: &[i64]) -> Vec<Value> {
    offsets
        .iter()
        .enumerate()
        .map(|(i, &o)| {
            ph(
                i + 1,
                o,
                "dev",
                "$pageview",
                json!({"$current_url": format!("https://x.test/{i}")}),
            )
        })
        .collect()
}

fn session_shape(ws: &Workspace) -> Vec<(i64, i64, i64)> {
    let mut st = ws
        .conn()
        .prepare("SELECT events, duration_s, pageviews FROM sessions ORDER BY started_at")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn tv_ses_1_inactivity_boundary_is_strictly_greater() {
    let ws = workspace(&device_events(&[0, 1200, 3000, 4801]), &[]);
    assert_eq!(session_shape(&ws), vec![(3, 3000, 3), (1, 0, 1)]);
    assert_eq!(
        s(
            &ws,
            "SELECT entry_url || ' ' || exit_url FROM sessions ORDER BY started_at LIMIT 1"
        ),
        "https://x.test/0 https://x.test/2"
    );
}

#[test]
fn tv_ses_2_max_length_is_strictly_greater() {
    // Every 10 minutes from day 1 00:00 to day 2 00:30 (T0 is 10:00; shift to midnight).
    let start = -10 * 3600;
    let offsets: Vec<i64> = (0..=(24 * 6 + 3)).map(|k| start + k * 600).collect();
    let ws = workspace(&device_events(&offsets), &[]);
    let shape = session_shape(&ws);
    assert_eq!(shape.len(), 2);
    assert_eq!((shape[0].0, shape[0].1), (24 * 6 + 1, 86_400));
    assert_eq!((shape[1].0, shape[1].1), (3, 1200));
}

#[test]
fn tv_ses_3_no_midnight_split_unless_asked() {
    // 23:50 and 00:05 the next day.
    let ev = device_events(&[13 * 3600 + 50 * 60, 14 * 3600 + 5 * 60]);
    let ws = workspace(&ev, &[]);
    assert_eq!(q(&ws, "SELECT count(*) FROM sessions"), 1);
    let ws = workspace(&ev, &[("sessions.split_at_midnight", "true")]);
    assert_eq!(q(&ws, "SELECT count(*) FROM sessions"), 2);
    // Midnight is local: in New York both events fall on the same day (18:50, 19:05).
    let ws = workspace(
        &ev,
        &[
            ("sessions.split_at_midnight", "true"),
            ("time_zone", "America/New_York"),
        ],
    );
    assert_eq!(q(&ws, "SELECT count(*) FROM sessions"), 1);
}

#[test]
fn tv_ses_4_bounce_pageview_mode() {
    // Five devices, one session each: a (1 pv, 9 s), b (1 pv, 10 s), c (2 pv, 3 s),
    // d (1 pv + autocapture, 2 s), e (custom events only, 40 s).
    let mut ev = Vec::new();
    let mut n = 0;
    let mut add = |dev: &str, secs: i64, event: &str| {
        n += 1;
        ev.push(ph(n, secs, dev, event, json!({})));
    };
    add("a", 0, "$pageview");
    add("a", 9, "clicked");
    add("b", 0, "$pageview");
    add("b", 10, "clicked");
    add("c", 0, "$pageview");
    add("c", 3, "$pageview");
    add("d", 0, "$pageview");
    add("d", 2, "$autocapture");
    add("e", 0, "clicked");
    add("e", 40, "clicked");
    let ws = workspace(&ev, &[]);
    assert_eq!(
        s(&ws, "SELECT string_agg(device_id || '=' || coalesce(is_bounce::VARCHAR, 'null'), ' ' ORDER BY device_id) FROM sessions"),
        "a=true b=false c=false d=false e=null"
    );
    assert_eq!(
        s(
            &ws,
            "SELECT (avg(is_bounce::INT) * 100)::VARCHAR FROM sessions WHERE is_bounce IS NOT NULL"
        ),
        "25.0"
    );
}

#[test]
fn client_session_ids_are_used_as_they_are() {
    let ev = [
        ph(
            1,
            0,
            "anonA",
            "$pageview",
            json!({"$session_id": "s1", "$device_id": "d1"}),
        ),
        // an hour later, still s1: the client's id wins over the timeout
        ph(
            2,
            3600,
            "anonA",
            "$pageview",
            json!({"$session_id": "s1", "$device_id": "d1"}),
        ),
        ph(
            3,
            3700,
            "anonA",
            "$pageview",
            json!({"$session_id": "s2", "$device_id": "d1"}),
        ),
    ];
    let ws = workspace(&ev, &[]);
    assert_eq!(
        s(
            &ws,
            "SELECT string_agg(session_id || ':' || events, ' ' ORDER BY session_id) FROM sessions"
        ),
        "posthog:s1:2 posthog:s2:1"
    );
    assert_eq!(
        q(&ws, "SELECT count(*) FROM sessions WHERE source = 'client'"),
        2
    );
}

#[test]
fn generated_data_resolves_to_the_intended_persons_and_flags_shared_devices() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gen.jsonl");
    let truth = stitchbook_engine::generate::write_posthog_jsonl(
        &p,
        &stitchbook_engine::generate::GenerateOptions {
            events: 6000,
            seed: 5,
            malformed_rate: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &p);
    let r = model::rebuild(&ws, &JobCtx::silent()).unwrap();
    assert_eq!(r.persons as usize, truth.resolved_persons);
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM merge_log WHERE outcome = 'applied' AND link_kind = 'identify'"
        ) as usize,
        truth.merges.len()
    );
    assert_eq!(r.merges_refused, 0);
    assert_eq!(r.sessions as usize, truth.sessions);
    // Every shared device the generator made (and used by both people) is flagged.
    let flagged: Vec<String> = {
        let mut st = ws
            .conn()
            .prepare("SELECT device_id FROM shared_devices")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(!flagged.is_empty());
    for d in &flagged {
        assert!(
            truth.shared_devices.contains(d),
            "{d} is not a shared device"
        );
    }
    assert!(q(&ws, "SELECT count(*) FROM persons WHERE shared_device") >= flagged.len() as i64);
    // Identified persons carry the email their $identify set.
    assert!(
        q(
            &ws,
            "SELECT count(*) FROM persons WHERE email LIKE '%@example.com'"
        ) > 0
    );
}

#[test]
fn the_shared_posthog_sample_resolves_its_identify_into_one_person() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/samples/posthog/events.jsonl");
    let ws = Workspace::in_memory().unwrap();
    import_paths(&ws, &[p], &ImportOptions::default(), &JobCtx::silent()).unwrap();
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    let (anon, into): (String, String) = ws
        .conn()
        .query_row(
            "SELECT from_id, into_id FROM merge_log WHERE link_kind = 'identify'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        person::person_of(&ws, &anon).unwrap(),
        person::person_of(&ws, &into).unwrap()
    );
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM merge_log WHERE link_kind = 'identify' AND outcome = 'applied'"
        ),
        1
    );
}

#[test]
fn a_cancelled_rebuild_leaves_the_previous_model() {
    let ws = workspace(&tv_id_2c(), &[]);
    let before = clusters(&ws);
    ModelSettings::set(&ws, "identity.mode", "posthog_strict").unwrap();
    let token = stitchbook_engine::CancelToken::new();
    token.cancel();
    let ctx = JobCtx::new(|_| {}, token);
    assert!(matches!(
        model::rebuild(&ws, &ctx),
        Err(stitchbook_engine::EngineError::Cancelled)
    ));
    assert_eq!(clusters(&ws), before);
    assert!(model::is_stale(&ws).unwrap(), "settings changed: stale");
}

#[test]
fn profiles_and_accounts_roll_up_people_and_companies() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gen.jsonl");
    stitchbook_engine::generate::write_posthog_jsonl(
        &p,
        &stitchbook_engine::generate::GenerateOptions {
            events: 3000,
            seed: 9,
            malformed_rate: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let ws = Workspace::in_memory().unwrap();
    import(&ws, &p);
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    // One profile per person; every event and session with a person is counted once.
    assert_eq!(
        q(&ws, "SELECT count(*) FROM profiles"),
        q(&ws, "SELECT count(*) FROM persons")
    );
    assert_eq!(
        q(&ws, "SELECT sum(events)::BIGINT FROM profiles"),
        q(
            &ws,
            "SELECT count(*) FROM event_persons WHERE person_id IS NOT NULL"
        )
    );
    assert_eq!(
        q(&ws, "SELECT sum(sessions)::BIGINT FROM profiles"),
        q(
            &ws,
            "SELECT count(*) FROM sessions WHERE person_id IS NOT NULL"
        )
    );
    assert_eq!(
        q(&ws, "SELECT count(*) FROM profiles WHERE json_array_length(top_events) > 5 OR active_days < 1"),
        0
    );
    // Accounts: one per company seen in events' groups, with its members and snapshot name.
    assert_eq!(
        q(&ws, "SELECT count(*) FROM accounts"),
        q(
            &ws,
            "SELECT count(DISTINCT groups->>'$.company[0]') FROM events WHERE groups IS NOT NULL"
        )
    );
    let (key, members): (String, i64) = ws
        .conn()
        .query_row(
            "SELECT group_key, members FROM accounts ORDER BY members DESC, group_key LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let expected: i64 = ws
        .conn()
        .query_row(
            "SELECT count(DISTINCT ep.person_id) FROM events e JOIN event_persons ep USING (event_seq)
             WHERE e.groups->>'$.company[0]' = ?",
            [&key],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(members, expected);
    assert!(
        q(
            &ws,
            "SELECT count(*) FROM accounts WHERE name LIKE 'Company %'"
        ) > 0
    );
    assert_eq!(
        q(&ws, "SELECT sum(events)::BIGINT FROM account_activity"),
        q(&ws, "SELECT sum(events)::BIGINT FROM accounts")
    );
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM account_activity WHERE dayofweek(week_start) <> 1"
        ),
        0,
        "weeks start on Monday by default"
    );
    ModelSettings::set(&ws, "week_start", "sunday").unwrap();
    model::rebuild(&ws, &JobCtx::silent()).unwrap();
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM account_activity WHERE dayofweek(week_start) <> 0"
        ),
        0
    );
}

/// A small realistic story, rendered as text: one line per person, then their sessions.
#[test]
fn identity_clusters_and_sessions_snapshot() {
    let url = |path: &str| json!({"$current_url": format!("https://app.test{path}")});
    let with = |mut v: Value, k: &str, x: Value| {
        v[k] = x;
        v
    };
    let ev = vec![
        // Ada browses anonymously on her laptop, signs up, logs in.
        ph(
            1,
            0,
            "laptop",
            "$pageview",
            with(url("/"), "$session_id", json!("s-laptop-1")),
        ),
        ph(
            2,
            40,
            "laptop",
            "$pageview",
            with(url("/pricing"), "$session_id", json!("s-laptop-1")),
        ),
        ph(
            3,
            90,
            "ada",
            "$identify",
            json!({"$anon_distinct_id": "laptop", "$session_id": "s-laptop-1", "$set": {"email": "ada@example.com", "name": "Ada"}}),
        ),
        // Later on her phone, which she identifies too.
        ph(
            4,
            7200,
            "phone",
            "$pageview",
            with(url("/docs"), "$session_id", json!("s-phone-1")),
        ),
        ph(
            5,
            7230,
            "ada",
            "$identify",
            json!({"$anon_distinct_id": "phone", "$session_id": "s-phone-1"}),
        ),
        // Grace uses Ada's laptop without logging Ada out, then logs in as herself: no
        // $identify is sent (the browser is already identified) and her events carry her id.
        ph(
            6,
            9000,
            "ada",
            "$pageview",
            json!({"$current_url": "https://app.test/", "$session_id": "s-laptop-2", "$device_id": "laptop", "$user_id": "ada"}),
        ),
        ph(
            7,
            9060,
            "grace",
            "purchase",
            json!({"$session_id": "s-laptop-2", "$device_id": "laptop", "$user_id": "grace"}),
        ),
        // A server-side event for Grace without a session id, then one an hour later.
        ph(8, 9100, "grace", "invoice_paid", json!({})),
        ph(9, 12_800, "grace", "invoice_paid", json!({})),
        // A visitor who never logs in; and one refused merge with a placeholder id.
        ph(10, 500, "visitor", "$pageview", url("/blog")),
        identify(11, 600, "undefined", "visitor"),
    ];
    let ws = workspace(&ev, &[]);
    insta::assert_snapshot!(person::render(&ws).unwrap());
}

#[test]
fn a_timeline_pages_through_a_person_with_gaps_sessions_and_merge_markers() {
    // anonA browses, logs in as U1 (merge), comes back 2 hours later (new session).
    let ws = workspace(
        &[
            ph(
                1,
                0,
                "anonA",
                "$pageview",
                json!({"$current_url": "https://x.test/a"}),
            ),
            ph(
                2,
                30,
                "anonA",
                "$pageview",
                json!({"$current_url": "https://x.test/b"}),
            ),
            identify(3, 90, "U1", "anonA"),
            ph(4, 7290, "U1", "purchase", json!({"amount": 5})),
            ph(5, 7300, "other", "$pageview", json!({})),
        ],
        &[],
    );
    let pid = stitchbook_engine::model::person::person_of(&ws, "anonA")
        .unwrap()
        .unwrap();
    let page = stitchbook_engine::model::timeline::page(&ws, &pid, None, 0, 10, true).unwrap();
    assert_eq!(page.total, 4, "the other person's event is not here");
    let names: Vec<&str> = page.events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["$pageview", "$pageview", "$identify", "purchase"]);
    let gaps: Vec<Option<f64>> = page.events.iter().map(|e| e.gap_s).collect();
    assert_eq!(gaps, [None, Some(30.0), Some(60.0), Some(7200.0)]);
    assert_eq!(page.events[0].page.as_deref(), Some("https://x.test/a"));
    // Two sessions (the 2-hour gap splits them), each marked where it opens.
    let starts: Vec<bool> = page.events.iter().map(|e| e.session_start).collect();
    assert_eq!(starts, [true, false, false, true]);
    assert_eq!(page.sessions.len(), 2);
    assert_eq!(
        (page.sessions[1].start_index, page.sessions[1].events),
        (3, 1)
    );
    // The identify event carries its merge.
    assert_eq!(
        page.events[2].merges.len(),
        1,
        "{:?}",
        page.events[2].merges
    );
    assert!(
        page.events[2].merges[0].contains("anonA → U1"),
        "{:?}",
        page.events[2].merges
    );
    let props = stitchbook_engine::model::timeline::event_properties(&ws, page.events[3].event_seq)
        .unwrap();
    assert!(props.contains("\"amount\""), "{props}");
    assert!(stitchbook_engine::model::timeline::event_properties(&ws, -1).is_err());
    // A later page, and one session only.
    let p2 = stitchbook_engine::model::timeline::page(&ws, &pid, None, 2, 1, false).unwrap();
    assert_eq!((p2.offset, p2.events.len(), p2.events[0].index), (2, 1, 2));
    assert_eq!(
        p2.events[0].gap_s,
        Some(60.0),
        "gaps are computed over the whole timeline"
    );
    let sid = page.events[3].session_id.clone().unwrap();
    let one = stitchbook_engine::model::timeline::page(&ws, &pid, Some(&sid), 0, 10, true).unwrap();
    assert_eq!(one.total, 1);
    assert!(one.events[0].session_start);
    // Email lookup resolves too (none here) and unknown ids do not.
    assert!(
        stitchbook_engine::model::person::person_of(&ws, "nobody@x.test")
            .unwrap()
            .is_none()
    );
}

#[test]
fn the_catalog_counts_reach_and_the_quality_panel_finds_spelling_collisions() {
    let ws = workspace(
        &[
            ph(1, 0, "a", "UserLogin", json!({"plan": "pro"})),
            ph(2, 10, "b", "user_login", json!({"plan": 3})),
            ph(3, 20, "b", "User Logged In", json!({})),
            ph(4, 30, "c", "purchase", json!({"plan": "free"})),
        ],
        &[],
    );
    let cat = stitchbook_engine::catalog::events(&ws).unwrap();
    // The fresh model's facts give the same catalog as events joined to persons.
    assert!(stitchbook_engine::insights::facts::available(&ws).unwrap());
    let general = stitchbook_engine::insights::facts::with_general_path(|| {
        stitchbook_engine::catalog::events(&ws)
    })
    .unwrap();
    assert_eq!(format!("{cat:?}"), format!("{general:?}"));
    assert_eq!(cat.len(), 4);
    let login = cat.iter().find(|e| e.name == "user_login").unwrap();
    assert_eq!((login.events, login.persons), (1, 1));
    assert!((login.person_share - 1.0 / 3.0).abs() < 1e-9);
    let issues = stitchbook_engine::catalog::quality(&ws).unwrap();
    let names = issues
        .iter()
        .find(|i| i.kind == "naming_collision")
        .unwrap();
    assert_eq!(names.items.len(), 3, "{names:?}");
    let mixed = issues.iter().find(|i| i.kind == "mixed_types").unwrap();
    assert_eq!(mixed.items, ["plan"]);
    let props = stitchbook_engine::catalog::event_properties(&ws, "purchase").unwrap();
    assert_eq!(props.total, 1);
    assert_eq!(props.properties[0].key, "plan");
    assert_eq!(props.properties[0].examples, ["free"]);
}

#[test]
fn the_catalog_and_the_quality_checks_take_any_property_key() {
    use stitchbook_engine::catalog;
    let long = "k".repeat(10_000);
    let odd = [
        "",
        "a.b",
        "q\"uote",
        "back\\slash",
        "$",
        "[0]",
        "' OR 1=1 --",
        long.as_str(),
    ];
    let mut first = serde_json::Map::new();
    for (i, k) in odd.iter().enumerate() {
        first.insert(k.to_string(), json!(i));
    }
    // One event with 20,000 keys (a line of some 300 KB): each property set is read once.
    let wide: serde_json::Map<String, Value> = (0..20_000)
        .map(|i| (format!("key_{i:05}"), json!(i)))
        .collect();
    let ws = workspace(
        &[
            ph(1, 0, "a", "odd", Value::Object(first)),
            ph(2, 10, "b", "odd", json!({"": "one", "a.b": "dot"})),
            ph(3, 20, "c", "wide", Value::Object(wide)),
        ],
        &[],
    );
    let issues = catalog::quality(&ws).unwrap();
    let mixed: Vec<&str> = issues
        .iter()
        .filter(|i| i.kind == "mixed_types")
        .flat_map(|i| i.items.iter().map(String::as_str))
        .collect();
    assert_eq!(mixed, ["", "a.b"]);
    assert_eq!(catalog::quality_remembered(&ws).unwrap(), issues);
    assert_eq!(catalog::events(&ws).unwrap().len(), 2);
    let props = catalog::event_properties(&ws, "odd").unwrap();
    let mut keys: Vec<&str> = props.properties.iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    let mut want = odd.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want);
    let empty = props.properties.iter().find(|p| p.key.is_empty()).unwrap();
    assert!((empty.fill_rate - 1.0).abs() < 1e-9);
    assert_eq!(empty.types.len(), 2, "{empty:?}");
    let mut examples = empty.examples.clone();
    examples.sort_unstable();
    assert_eq!(examples, ["0", "one"]);
    let quote = props
        .properties
        .iter()
        .find(|p| p.key == "q\"uote")
        .unwrap();
    assert_eq!(quote.examples, ["2"]);
    let wide = catalog::event_properties(&ws, "wide").unwrap();
    assert_eq!(wide.properties.len(), 20_000);
    assert!(wide.properties.iter().all(|p| p.examples.len() == 1));
}

#[test]
fn the_quality_checks_and_event_totals_are_remembered_until_the_data_changes() {
    use stitchbook_engine::catalog;
    let ws = workspace(
        &[
            ph(1, 0, "a", "UserLogin", json!({})),
            ph(2, 10, "b", "user_login", json!({})),
        ],
        &[],
    );
    let first = catalog::quality_remembered(&ws).unwrap();
    assert_eq!(first, catalog::quality(&ws).unwrap());
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM remembered WHERE what = 'quality'"
        ),
        1
    );
    // Reused while nothing changed: a marked entry under the same fingerprint is returned.
    ws.conn()
        .execute_batch(
            r#"UPDATE remembered SET value = '[{"kind": "marker", "severity": "info", "title": "t", "detail": "d", "count": 0, "items": []}]' WHERE what = 'quality'"#,
        )
        .unwrap();
    let again = catalog::quality_remembered(&ws).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].kind, "marker");
    // More events: computed again, and the new result replaces the old one.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("more.jsonl");
    std::fs::write(
        &p,
        format!("{}\n", ph(3, 20, "c", "User Logged In", json!({}))),
    )
    .unwrap();
    import(&ws, &p);
    model::ensure_built(&ws, &JobCtx::silent()).unwrap();
    let after = catalog::quality_remembered(&ws).unwrap();
    assert_eq!(after, catalog::quality(&ws).unwrap());
    let names = after.iter().find(|i| i.kind == "naming_collision").unwrap();
    assert_eq!(names.items.len(), 3, "{names:?}");
    assert_eq!(
        q(
            &ws,
            "SELECT count(*) FROM remembered WHERE what = 'quality'"
        ),
        1
    );
    // The workspace summary's event totals follow the events the same way.
    let info = stitchbook_engine::info::workspace_info(&ws, 5).unwrap();
    assert_eq!((info.total_events, info.distinct_ids), (3, 3));
    ws.conn()
        .execute_batch(
            "UPDATE remembered SET value = '[7, 7, null, null]' WHERE what = 'events_totals'",
        )
        .unwrap();
    let info = stitchbook_engine::info::workspace_info(&ws, 5).unwrap();
    assert_eq!((info.total_events, info.distinct_ids), (7, 7), "reused");
    std::fs::write(&p, format!("{}\n", ph(4, 30, "d", "purchase", json!({})))).unwrap();
    import(&ws, &p);
    let info = stitchbook_engine::info::workspace_info(&ws, 5).unwrap();
    assert_eq!(
        (info.total_events, info.distinct_ids),
        (4, 4),
        "computed again"
    );
}

/// The SQL test for placeholder ids (the macro `sb_placeholder_id`, used per event by the
/// rebuild) agrees with the identity module's `illegal_id`.
#[test]
fn the_placeholder_macro_agrees_with_the_identity_module() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path().join("p.duckdb")).unwrap();
    let padded = format!("{}anonymous{}", " ".repeat(30), " ".repeat(30));
    let ids = [
        "",
        "   ",
        "null",
        "NULL",
        "Null",
        "\"anonymous\"",
        "'guest'",
        " Anonymous ",
        "0",
        "00",
        "user_1",
        "5a941980-3679-4402-9305-a4e65990225a",
        padded.as_str(),
        "\"not_authenticated\"",
        "\"not_authenticated_\"",
        "[object Object]",
        "[OBJECT OBJECT]",
        "None",
        "NONE",
        "'undefined'",
        "\"",
        "''",
        "id",
        "ID",
        "email",
        "e@x.test",
    ];
    for id in ids {
        let sql: bool = ws
            .conn()
            .query_row("SELECT sb_placeholder_id(?)", [id], |r| r.get(0))
            .unwrap();
        let rust = model::identity::illegal_id(id).is_some();
        assert_eq!(sql, rust, "{id:?}");
    }
    let null: bool = ws
        .conn()
        .query_row("SELECT sb_placeholder_id(NULL)", [], |r| r.get(0))
        .unwrap();
    assert!(null);
}

/// Front ends never rebuild silently: `require_fresh` says why the model is stale (a stable
/// reason the app offers a visible rebuild for), builds an empty workspace's model itself,
/// and passes once `refresh` ran. A second handle (`try_clone`, the app's query connection)
/// sees the same.
#[test]
fn require_fresh_names_why_the_model_is_stale() {
    use stitchbook_engine::{EngineError, ErrorCode};
    let reason = |ws: &Workspace| match model::require_fresh(ws) {
        Ok(()) => None,
        Err(e @ EngineError::ModelStale { .. }) => {
            assert_eq!(e.code(), ErrorCode::StaleModel);
            e.reason().map(str::to_string)
        }
        Err(e) => panic!("unexpected error {e}"),
    };
    // Nothing imported: the (empty) model is built on the spot, nothing to wait for.
    let empty = Workspace::in_memory().unwrap();
    assert_eq!(reason(&empty), None);
    assert!(!model::is_stale(&empty).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, records: &[Value]| {
        let p = dir.path().join(name);
        let text: String = records.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(&p, text).unwrap();
        p
    };
    let ws = Workspace::open(dir.path().join("ws.duckdb")).unwrap();
    let reader = ws.try_clone().unwrap();
    import(
        &ws,
        &write("a.jsonl", &[ph(1, 0, "anon-1", "$pageview", json!({}))]),
    );
    assert_eq!(reason(&reader).as_deref(), Some("never_built"));
    model::refresh(&ws, &JobCtx::silent()).unwrap();
    assert_eq!(reason(&reader), None);

    ModelSettings::set(&ws, "week_start", "sunday").unwrap();
    assert_eq!(reason(&reader).as_deref(), Some("settings_changed"));
    // Put back: the model built under these settings is fresh again, no rebuild needed.
    ModelSettings::set(&ws, "week_start", "monday").unwrap();
    assert_eq!(reason(&reader), None);

    import(
        &ws,
        &write("b.jsonl", &[ph(2, 60, "anon-1", "$pageview", json!({}))]),
    );
    assert_eq!(reason(&reader).as_deref(), Some("new_imports"));
    let r = model::refresh(&ws, &JobCtx::silent()).unwrap();
    assert!(r.incremental, "new imports alone update incrementally");
    assert_eq!(reason(&reader), None);

    ws.conn()
        .execute(
            "UPDATE model_state SET derivation_version = derivation_version - 1",
            [],
        )
        .unwrap();
    assert_eq!(reason(&reader).as_deref(), Some("other_version"));
}
