//! Deterministic sample-data generator. It simulates one product's users (vendor-neutral
//! [`SimEvent`]s) and writes them in a vendor's export shape, with a ground-truth file that
//! tests check imports against.
//!
//! The simulated behaviour: anonymous devices, some people identifying later, some with a
//! second device, a few shared devices used by two people without a reset, client session
//! ids, a four-step product funnel spread over sessions, company groups, PII in person
//! properties (emails, phones) and IPs on events; plus injected duplicates and malformed
//! lines at configurable rates.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::{EngineError, Result};

/// splitmix64: small, fast, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Microseconds since the Unix epoch → `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`.
pub fn rfc3339_micros(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let frac = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}+00:00",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Microseconds since the Unix epoch → `YYYY-MM-DDTHH:MM:SS.ffffffZ` (DuckDB's
/// `strftime(ts, '%Y-%m-%dT%H:%M:%S.%fZ')` in UTC, without its cost per row).
pub fn iso_utc_micros(us: i64) -> String {
    let mut s = rfc3339_micros(us);
    s.truncate(s.len() - "+00:00".len());
    s.push('Z');
    s
}

/// `YYYY-MM-DD` → µs since the epoch at 00:00 UTC.
pub fn date_to_micros(s: &str) -> Result<i64> {
    let bad = || EngineError::InvalidArgument(format!("\"{s}\" is not a date like 2024-01-31"));
    let parts: Vec<&str> = s.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let us = crate::timefmt::days_from_civil(y, m, d) * 86_400_000_000;
    // Refuse dates like 2023-02-30 that do not round-trip.
    if rfc3339_micros(us)[..10] != format!("{y:04}-{m:02}-{d:02}") {
        return Err(bad());
    }
    Ok(us)
}

/// Howard Hinnant's days → civil date.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// One simulated event, vendor-neutral.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub uuid: String,
    pub name: String,
    pub ts_us: i64,
    /// The id the SDK would send as distinct_id at that moment.
    pub distinct_id: String,
    pub device_id: String,
    pub user_id: Option<String>,
    pub session_id: String,
    /// When the session began, µs since the epoch (vendors whose session ids are start times).
    pub session_start_us: i64,
    pub person: usize,
    pub properties: Map<String, Value>,
    pub set: Option<Map<String, Value>>,
    pub anon_distinct_id: Option<String>,
    pub company: Option<String>,
    pub group_set: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TruthPerson {
    pub person: usize,
    pub user_id: Option<String>,
    pub devices: Vec<String>,
    pub company: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TruthMerge {
    pub from: String,
    pub into: String,
    /// Whether identity resolution should apply it. Always true: on a shared device the second
    /// person's login sends no $identify (as posthog-js behaves without a reset), so the
    /// device stays with its first user and the second user is a separate person.
    pub expected_to_apply: bool,
}

/// Ground truth written beside a generated file.
#[derive(Debug, Clone, Serialize)]
pub struct GroundTruth {
    pub format: String,
    pub seed: u64,
    pub unique_events: usize,
    pub duplicates_injected: usize,
    pub malformed_injected: usize,
    pub lines: usize,
    pub persons_intended: usize,
    pub identified_persons: usize,
    pub sessions: usize,
    pub shared_devices: Vec<String>,
    pub merges: Vec<TruthMerge>,
    pub identity_links_expected: usize,
    pub events_by_name: std::collections::BTreeMap<String, usize>,
    /// Records written for this vendor (events the vendor's export has a record for).
    pub records: usize,
    /// Records by the vendor's own event name.
    pub events_by_vendor_name: std::collections::BTreeMap<String, usize>,
    /// Persons after merging each device into the first user identified on it (the
    /// shared-device rule): what identity resolution should find in every vendor's file.
    pub resolved_persons: usize,
    pub persons: Vec<TruthPerson>,
}

#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub events: usize,
    pub seed: u64,
    pub duplicate_rate: f64,
    pub malformed_rate: f64,
    /// Start of the simulated period, µs since epoch.
    pub start_us: i64,
    /// Added to every person's number in user ids and emails, so exports generated with
    /// different seeds and offsets hold distinct users (the 100M bench writes it in parts).
    pub person_offset: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            events: 2000,
            seed: 1,
            duplicate_rate: 0.01,
            malformed_rate: 0.002,
            start_us: 1_704_067_200_000_000, // 2024-01-01T00:00:00Z
            person_offset: 0,
        }
    }
}

const PAGES: &[&str] = &[
    "/",
    "/pricing",
    "/docs",
    "/blog",
    "/features",
    "/dashboard",
    "/settings",
];
const FUNNEL: &[&str] = &[
    "signed_up",
    "created_project",
    "invited_teammate",
    "upgraded_plan",
];
const FIRST: &[&str] = &[
    "ada", "grace", "alan", "edsger", "barbara", "ken", "linus", "margaret", "donald", "frances",
];
const LAST: &[&str] = &[
    "lovelace", "hopper", "turing", "dijkstra", "liskov", "thompson", "torvalds", "hamilton",
    "knuth", "allen",
];
const BROWSERS: &[&str] = &["Chrome", "Firefox", "Safari", "Edge"];
const OSES: &[&str] = &["Mac OS X", "Windows", "Linux", "iOS", "Android"];

struct Person {
    devices: Vec<String>,
    user_id: Option<String>,
    email: String,
    phone: String,
    ip: String,
    company: Option<String>,
    browser: &'static str,
    os: &'static str,
    /// Devices on which this person has identified.
    identified_on: Vec<String>,
    funnel_step: usize,
    clock_us: i64,
}

/// Simulate until `events` events exist. Returns events in time order and the truth (minus
/// the injection counts, filled in by the writer).
pub fn simulate(opts: &GenerateOptions) -> (Vec<SimEvent>, GroundTruth) {
    let mut rng = Rng::new(opts.seed);
    let n_persons = (opts.events / 40).clamp(3, 200_000);
    let n_companies = (n_persons / 8).max(1);
    let mut persons: Vec<Person> = (0..n_persons)
        .map(|i| {
            let identified = rng.chance(0.7);
            let first = FIRST[rng.below(FIRST.len() as u64) as usize];
            let last = LAST[rng.below(LAST.len() as u64) as usize];
            let n = i + opts.person_offset;
            let mut devices = vec![rng.uuid()];
            if identified && rng.chance(0.25) {
                devices.push(rng.uuid());
            }
            Person {
                devices,
                user_id: identified.then(|| format!("user_{n:06}")),
                email: format!("{first}.{last}{n}@example.com"),
                phone: format!("+1555{:07}", rng.below(10_000_000)),
                ip: format!("203.0.113.{}", rng.below(254) + 1),
                company: identified.then(|| {
                    let c = rng.below(n_companies as u64) as usize + opts.person_offset / 8;
                    format!("company_{c:04}")
                }),
                browser: BROWSERS[rng.below(BROWSERS.len() as u64) as usize],
                os: OSES[rng.below(OSES.len() as u64) as usize],
                identified_on: Vec::new(),
                funnel_step: 0,
                clock_us: opts.start_us + (rng.below(14 * 86_400) as i64) * 1_000_000,
            }
        })
        .collect();
    // A few shared devices: an identified person's device later used by another identified
    // person who logs in without a reset.
    let identified: Vec<usize> = (0..n_persons)
        .filter(|&i| persons[i].user_id.is_some())
        .collect();
    let mut shared_devices = Vec::new();
    let n_shared = (identified.len() / 30).max(usize::from(identified.len() >= 2));
    for k in 0..n_shared {
        let a = identified[(2 * k) % identified.len()];
        let b = identified[(2 * k + 1) % identified.len()];
        if a == b {
            continue;
        }
        let dev = persons[a].devices[0].clone();
        if !persons[b].devices.contains(&dev) {
            persons[b].devices.push(dev.clone());
            shared_devices.push(dev);
        }
    }

    let mut events: Vec<SimEvent> = Vec::with_capacity(opts.events + 16);
    let mut merges: Vec<TruthMerge> = Vec::new();
    let mut person_cursor = 0usize;
    // A little more than asked: suppressed logins (below) must not leave the file short.
    let target = opts.events + opts.events / 50 + 16;
    while events.len() < target {
        let pi = person_cursor % n_persons;
        person_cursor += 1;
        // Next session for this person: 2 h to 3 days later.
        let gap = 7_200 + rng.below(3 * 86_400) as i64;
        let p = &mut persons[pi];
        p.clock_us += gap * 1_000_000;
        let dev_i = rng.below(p.devices.len() as u64) as usize;
        let device = p.devices[dev_i].clone();
        let session = rng.uuid();
        let mut t = p.clock_us;
        let session_start = t;
        let n_pages = 1 + rng.below(5) as usize;
        let logged_in_here = p.identified_on.contains(&device);
        let mut distinct = if logged_in_here {
            p.user_id.clone().unwrap_or_else(|| device.clone())
        } else {
            device.clone()
        };
        let base_props = |p: &Person, url: &str| -> Map<String, Value> {
            let mut m = Map::new();
            m.insert(
                "$current_url".into(),
                json!(format!("https://app.example.com{url}")),
            );
            m.insert("$pathname".into(), json!(url));
            m.insert("$browser".into(), json!(p.browser));
            m.insert("$os".into(), json!(p.os));
            m.insert("$ip".into(), json!(p.ip));
            m.insert("$lib".into(), json!("web"));
            m
        };
        for k in 0..n_pages {
            let url = PAGES[rng.below(PAGES.len() as u64) as usize];
            let p = &persons[pi];
            let mut props = base_props(p, url);
            if k == 0 {
                props.insert(
                    "$referrer".into(),
                    json!(if rng.chance(0.5) {
                        "$direct"
                    } else {
                        "https://www.google.com/"
                    }),
                );
            }
            events.push(SimEvent {
                uuid: rng.uuid(),
                name: "$pageview".into(),
                ts_us: t,
                distinct_id: distinct.clone(),
                device_id: device.clone(),
                user_id: if distinct != device {
                    p.user_id.clone()
                } else {
                    None
                },
                session_id: session.clone(),
                session_start_us: session_start,
                person: pi,
                properties: props,
                set: None,
                anon_distinct_id: None,
                company: if distinct != device {
                    p.company.clone()
                } else {
                    None
                },
                group_set: None,
            });
            t += (5 + rng.below(240) as i64) * 1_000_000;
        }
        // Log in on this device?
        let p = &persons[pi];
        if let Some(uid) = p.user_id.clone() {
            if !p.identified_on.contains(&device) && rng.chance(0.6) {
                let mut set = Map::new();
                set.insert("email".into(), json!(p.email));
                set.insert("phone".into(), json!(p.phone));
                set.insert(
                    "name".into(),
                    json!(p.email.split('@').next().unwrap_or_default()),
                );
                let mut props = base_props(p, "/login");
                props.insert("$anon_distinct_id".into(), json!(device));
                // Kept only if this is the device's first identification in time order
                // (see the filter after sorting), so every merge written applies.
                merges.push(TruthMerge {
                    from: device.clone(),
                    into: uid.clone(),
                    expected_to_apply: true,
                });
                events.push(SimEvent {
                    uuid: rng.uuid(),
                    name: "$identify".into(),
                    ts_us: t,
                    distinct_id: uid.clone(),
                    device_id: device.clone(),
                    user_id: Some(uid.clone()),
                    session_id: session.clone(),
                    session_start_us: session_start,
                    person: pi,
                    properties: props,
                    set: Some(set),
                    anon_distinct_id: Some(device.clone()),
                    company: p.company.clone(),
                    group_set: None,
                });
                t += 2_000_000;
                persons[pi].identified_on.push(device.clone());
                distinct = uid;
                // Occasionally the company's properties are (re)stated.
                let p = &persons[pi];
                if let Some(c) = &p.company {
                    if rng.chance(0.3) {
                        let mut gs = Map::new();
                        gs.insert("name".into(), json!(format!("Company {}", &c[8..])));
                        gs.insert(
                            "plan".into(),
                            json!(if rng.chance(0.5) { "free" } else { "team" }),
                        );
                        events.push(SimEvent {
                            uuid: rng.uuid(),
                            name: "$groupidentify".into(),
                            ts_us: t,
                            distinct_id: distinct.clone(),
                            device_id: device.clone(),
                            user_id: p.user_id.clone(),
                            session_id: session.clone(),
                            session_start_us: session_start,
                            person: pi,
                            properties: base_props(p, "/settings"),
                            set: None,
                            anon_distinct_id: None,
                            company: Some(c.clone()),
                            group_set: Some(gs),
                        });
                        t += 1_000_000;
                    }
                }
            }
        }
        // Funnel progress: at most one step per session, with drop-off.
        let p = &persons[pi];
        if p.funnel_step < FUNNEL.len() && (p.funnel_step == 0 || distinct != device) {
            let keep = [0.55, 0.6, 0.45, 0.35][p.funnel_step];
            if rng.chance(keep) {
                let step = FUNNEL[p.funnel_step];
                let mut props = base_props(p, "/dashboard");
                if step == "upgraded_plan" {
                    props.insert("plan".into(), json!("team"));
                    props.insert("amount".into(), json!(29 + rng.below(3) * 20));
                }
                events.push(SimEvent {
                    uuid: rng.uuid(),
                    name: step.into(),
                    ts_us: t,
                    distinct_id: distinct.clone(),
                    device_id: device.clone(),
                    user_id: if distinct != device {
                        p.user_id.clone()
                    } else {
                        None
                    },
                    session_id: session.clone(),
                    session_start_us: session_start,
                    person: pi,
                    properties: props,
                    set: None,
                    anon_distinct_id: None,
                    company: if distinct != device {
                        p.company.clone()
                    } else {
                        None
                    },
                    group_set: None,
                });
                persons[pi].funnel_step += 1;
                t += 3_000_000;
            }
        }
        persons[pi].clock_us = t;
    }
    events.sort_by(|a, b| a.ts_us.cmp(&b.ts_us).then_with(|| a.uuid.cmp(&b.uuid)));
    // A browser already identified as someone else sends no $identify when a second person
    // logs in without a reset (posthog-js only identifies from the anonymous state,
    // semantics.md §1.1): that person's events simply carry their own id from then on.
    let mut first_owner: std::collections::HashMap<String, String> = Default::default();
    events.retain(|e| {
        let Some(anon) = e
            .anon_distinct_id
            .as_ref()
            .filter(|_| e.name == "$identify")
        else {
            return true;
        };
        let owner = first_owner
            .entry(anon.clone())
            .or_insert_with(|| e.distinct_id.clone());
        *owner == e.distinct_id
    });
    // The earliest N: cutting a suffix in time keeps every merge a kept event depends on.
    events.truncate(opts.events);
    let sessions = events
        .iter()
        .map(|e| e.session_id.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let mut by_name = std::collections::BTreeMap::new();
    for e in &events {
        *by_name.entry(e.name.clone()).or_insert(0) += 1;
    }
    // Only merges whose $identify survived truncation count.
    let kept_identifies: std::collections::HashSet<(String, String)> = events
        .iter()
        .filter(|e| e.name == "$identify")
        .map(|e| {
            (
                e.anon_distinct_id.clone().unwrap_or_default(),
                e.distinct_id.clone(),
            )
        })
        .collect();
    merges.retain(|m| kept_identifies.contains(&(m.from.clone(), m.into.clone())));
    let truth = GroundTruth {
        format: String::new(),
        seed: opts.seed,
        unique_events: events.len(),
        duplicates_injected: 0,
        malformed_injected: 0,
        lines: 0,
        persons_intended: n_persons,
        identified_persons: identified.len(),
        sessions,
        shared_devices,
        identity_links_expected: merges.len(),
        merges,
        events_by_name: by_name,
        records: 0,
        events_by_vendor_name: Default::default(),
        resolved_persons: 0,
        persons: persons
            .iter()
            .enumerate()
            .map(|(i, p)| TruthPerson {
                person: i,
                user_id: p.user_id.clone(),
                devices: p.devices.clone(),
                company: p.company.clone(),
            })
            .collect(),
    };
    (events, truth)
}

/// One PostHog batch-export JSON line.
pub fn posthog_line(e: &SimEvent) -> String {
    let mut props = e.properties.clone();
    props.insert("$session_id".into(), json!(e.session_id));
    props.insert("$device_id".into(), json!(e.device_id));
    props.insert("distinct_id".into(), json!(e.distinct_id));
    if let Some(u) = &e.user_id {
        props.insert("$user_id".into(), json!(u));
        props.insert("$is_identified".into(), json!(true));
    }
    if let Some(a) = &e.anon_distinct_id {
        props.insert("$anon_distinct_id".into(), json!(a));
    }
    if let Some(s) = &e.set {
        props.insert("$set".into(), Value::Object(s.clone()));
    }
    if let Some(c) = &e.company {
        props.insert("$groups".into(), json!({ "company": c }));
    }
    if let Some(gs) = &e.group_set {
        props.insert("$group_type".into(), json!("company"));
        props.insert("$group_key".into(), json!(e.company));
        props.insert("$group_set".into(), Value::Object(gs.clone()));
    }
    json!({
        "uuid": e.uuid,
        "event": e.name,
        "distinct_id": e.distinct_id,
        "timestamp": rfc3339_micros(e.ts_us),
        "created_at": rfc3339_micros(e.ts_us + 1_500_000),
        "properties": props,
        "elements_chain": "",
    })
    .to_string()
}

/// The export shapes the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenFormat {
    /// PostHog batch export, events model: JSON lines.
    PostHog,
    /// Amplitude Export API: a zip of `<project>/<project>_<date>_<H>#<n>.json.gz` members
    /// (or JSON lines when the output name does not end in `.zip`).
    Amplitude,
    /// Mixpanel raw event export: JSON lines, `time` in milliseconds.
    Mixpanel,
    /// Segment raw S3 logs: JSON lines of Segment Spec calls.
    Segment,
    /// RudderStack object-storage dump: Segment Spec plus rudderId, channel, sessionId.
    RudderStack,
    /// GA4 BigQuery export extracted as JSON lines (INT64 as strings).
    Ga4,
    /// Snowplow enriched events: headerless 131-field TSV.
    Snowplow,
}

impl GenFormat {
    pub const ALL: [GenFormat; 7] = [
        GenFormat::PostHog,
        GenFormat::Amplitude,
        GenFormat::Mixpanel,
        GenFormat::Segment,
        GenFormat::RudderStack,
        GenFormat::Ga4,
        GenFormat::Snowplow,
    ];

    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "posthog" => GenFormat::PostHog,
            "amplitude" => GenFormat::Amplitude,
            "mixpanel" => GenFormat::Mixpanel,
            "segment" => GenFormat::Segment,
            "rudderstack" | "rudder" => GenFormat::RudderStack,
            "ga4" => GenFormat::Ga4,
            "snowplow" => GenFormat::Snowplow,
            _ => {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown generator format \"{s}\": use posthog, amplitude, mixpanel, segment, rudderstack, ga4 or snowplow"
                )))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GenFormat::PostHog => "posthog",
            GenFormat::Amplitude => "amplitude",
            GenFormat::Mixpanel => "mixpanel",
            GenFormat::Segment => "segment",
            GenFormat::RudderStack => "rudderstack",
            GenFormat::Ga4 => "ga4",
            GenFormat::Snowplow => "snowplow",
        }
    }

    /// A conventional file name for this shape.
    pub fn default_file_name(self) -> &'static str {
        match self {
            GenFormat::PostHog => "posthog_events.jsonl",
            GenFormat::Amplitude => "amplitude_export.zip",
            GenFormat::Mixpanel => "mixpanel_export.jsonl",
            GenFormat::Segment => "segment_events.json.gz",
            GenFormat::RudderStack => "rudderstack_events.json.gz",
            GenFormat::Ga4 => "ga4_events.jsonl",
            GenFormat::Snowplow => "snowplow_enriched.tsv",
        }
    }

    /// Whether the vendor exports a session id (Mixpanel and Segment do not).
    pub fn has_session_ids(self) -> bool {
        !matches!(self, GenFormat::Mixpanel | GenFormat::Segment)
    }

    /// The vendor's name for a simulated event, or None when the vendor's event export has no
    /// record for it: group profile updates are not events in Mixpanel's raw export, GA4 or
    /// Snowplow (they have no group calls).
    pub fn event_name(self, neutral: &str) -> Option<&str> {
        Some(match (self, neutral) {
            (GenFormat::PostHog, n) => n,
            (GenFormat::Amplitude, "$pageview") => "[Amplitude] Page Viewed",
            (GenFormat::Mixpanel, "$pageview") => "$mp_web_page_view",
            (GenFormat::Segment | GenFormat::RudderStack, "$pageview") => "page",
            (GenFormat::Segment | GenFormat::RudderStack, "$identify") => "identify",
            (GenFormat::Segment | GenFormat::RudderStack, "$groupidentify") => "group",
            (GenFormat::Ga4 | GenFormat::Snowplow, "$pageview") => "page_view",
            (GenFormat::Ga4 | GenFormat::Snowplow, "$identify") => "login",
            (GenFormat::Mixpanel | GenFormat::Ga4 | GenFormat::Snowplow, "$groupidentify") => {
                return None
            }
            (_, n) => n,
        })
    }
}

/// Text of µs since the epoch as `YYYY-MM-DD HH:MM:SS` plus `digits` fractional digits
/// (Amplitude: 6, Snowplow: 3), naive UTC.
fn naive_utc(us: i64, digits: usize) -> String {
    let full = rfc3339_micros(us);
    format!("{} {}", &full[..10], &full[11..20 + digits.min(6)])
        .trim_end_matches('.')
        .to_string()
}

fn prop<'a>(e: &'a SimEvent, k: &str) -> &'a Value {
    e.properties.get(k).unwrap_or(&Value::Null)
}

/// Custom (non-`$`) event properties, as every vendor carries them.
fn custom_props(e: &SimEvent) -> Map<String, Value> {
    e.properties
        .iter()
        .filter(|(k, _)| !k.starts_with('$'))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A stable 64-bit id from text (FNV-1a), for vendor ids derived from the simulation.
fn id64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One Amplitude Export API event line.
pub fn amplitude_line(e: &SimEvent, resolved: &str, n: usize) -> String {
    let name = GenFormat::Amplitude.event_name(&e.name).unwrap_or(&e.name);
    let mut ep = custom_props(e);
    ep.insert(
        "[Amplitude] Page URL".into(),
        prop(e, "$current_url").clone(),
    );
    ep.insert("[Amplitude] Page Path".into(), prop(e, "$pathname").clone());
    if let Some(r) = e.properties.get("$referrer") {
        ep.insert("referrer".into(), r.clone());
    }
    let mut line = json!({
        "$insert_id": e.uuid,
        "$schema": 13,
        "amplitude_id": id64(resolved) >> 20,
        "app": 187520,
        "city": "Springfield",
        "client_event_time": naive_utc(e.ts_us, 6),
        "country": "United States",
        "data": {},
        "data_type": "event",
        "device_family": e.properties.get("$os").cloned(),
        "device_id": e.device_id,
        "event_id": n,
        "event_properties": ep,
        "event_time": naive_utc(e.ts_us, 6),
        "event_type": name,
        "groups": e.company.as_ref().map(|c| json!({"company": [c]})).unwrap_or(json!({})),
        "ip_address": prop(e, "$ip"),
        "language": "English",
        "library": "amplitude-ts/2.11.0",
        "os_name": prop(e, "$browser"),
        "platform": "Web",
        "server_received_time": naive_utc(e.ts_us + 1_500_000, 6),
        "server_upload_time": naive_utc(e.ts_us + 2_000_000, 6),
        "session_id": e.session_start_us / 1000,
        "user_id": e.user_id,
        "user_properties": e.set.clone().map(Value::Object).unwrap_or(json!({})),
        "uuid": uuid_variant(&e.uuid),
    });
    if let (Some(gs), Some(c)) = (&e.group_set, &e.company) {
        line["group_properties"] = json!({ "company": { c.as_str(): gs } });
    }
    line.to_string()
}

/// A second deterministic UUID from a first (Amplitude's own `uuid` differs from the
/// sender's `$insert_id`).
fn uuid_variant(u: &str) -> String {
    let h = format!("{:016x}", id64(u));
    format!("{}{}", &h[..8], &u[8..])
}

/// One Mixpanel raw-export line (Original ID Merge style: the anonymous distinct_id is the
/// device id; `$identify` carries `$anon_id` and `$identified_id`).
pub fn mixpanel_line(e: &SimEvent) -> Option<String> {
    let name = GenFormat::Mixpanel.event_name(&e.name)?;
    let mut p = custom_props(e);
    p.insert("time".into(), json!(e.ts_us / 1000));
    p.insert("distinct_id".into(), json!(e.distinct_id));
    p.insert("$insert_id".into(), json!(e.uuid.replace('-', "")));
    p.insert("$device_id".into(), json!(e.device_id));
    if let Some(u) = &e.user_id {
        p.insert("$user_id".into(), json!(u));
    }
    p.insert("$current_url".into(), prop(e, "$current_url").clone());
    p.insert("$browser".into(), prop(e, "$browser").clone());
    p.insert("$os".into(), prop(e, "$os").clone());
    p.insert("ip".into(), prop(e, "$ip").clone());
    if let Some(r) = e.properties.get("$referrer") {
        p.insert("$referrer".into(), r.clone());
    }
    p.insert("mp_lib".into(), json!("web"));
    p.insert("mp_processing_time_ms".into(), json!(e.ts_us / 1000 + 1500));
    if let Some(c) = &e.company {
        p.insert("company".into(), json!(c));
    }
    if e.name == "$identify" {
        p.insert("$anon_id".into(), json!(e.anon_distinct_id));
        p.insert("$identified_id".into(), json!(e.distinct_id));
        if let Some(set) = &e.set {
            p.insert("$set".into(), Value::Object(set.clone()));
        }
    }
    Some(json!({ "event": name, "properties": p }).to_string())
}

/// One Segment Spec call as Segment's S3 logs hold it; `rudder` adds RudderStack's fields.
pub fn segment_line(e: &SimEvent, rudder: bool) -> String {
    let fmt = if rudder {
        GenFormat::RudderStack
    } else {
        GenFormat::Segment
    };
    let kind = match fmt.event_name(&e.name) {
        Some("page") => "page",
        Some("identify") => "identify",
        Some("group") => "group",
        _ => "track",
    };
    let ts = rfc3339_micros(e.ts_us).replace("+00:00", "Z");
    let mut context = json!({
        "ip": prop(e, "$ip"),
        "library": { "name": if rudder { "RudderLabs JavaScript SDK" } else { "analytics.js" }, "version": "3.0.0" },
        "os": { "name": prop(e, "$os") },
        "page": { "url": prop(e, "$current_url"), "path": prop(e, "$pathname"), "referrer": e.properties.get("$referrer").cloned().unwrap_or(Value::Null) },
        "userAgent": format!("Mozilla/5.0 ({})", prop(e, "$browser").as_str().unwrap_or_default()),
    });
    if rudder {
        context["sessionId"] = json!(e.session_start_us / 1000);
    }
    let mut rec = json!({
        "type": kind,
        "messageId": e.uuid,
        "anonymousId": e.device_id,
        "userId": e.user_id,
        "timestamp": ts,
        "originalTimestamp": ts,
        "sentAt": ts,
        "receivedAt": rfc3339_micros(e.ts_us + 1_500_000).replace("+00:00", "Z"),
        "context": context,
    });
    match kind {
        "track" => {
            rec["event"] = json!(e.name);
            rec["properties"] = Value::Object(custom_props(e));
        }
        "page" => {
            rec["properties"] =
                json!({ "url": prop(e, "$current_url"), "path": prop(e, "$pathname") });
        }
        "identify" => {
            rec["traits"] = e.set.clone().map(Value::Object).unwrap_or(json!({}));
        }
        _ => {
            rec["groupId"] = json!(e.company);
            rec["traits"] = e.group_set.clone().map(Value::Object).unwrap_or(json!({}));
        }
    }
    if rudder {
        rec["channel"] = json!("web");
        rec["rudderId"] = json!(uuid_variant(&e.device_id));
    }
    rec.to_string()
}

/// One GA4 BigQuery export row as a JSON-lines extract writes it (INT64 as strings).
pub fn ga4_line(e: &SimEvent, n: usize) -> Option<String> {
    let name = GenFormat::Ga4.event_name(&e.name)?;
    let sv = |k: &str, v: &Value| json!({"key": k, "value": {"string_value": v}});
    let mut params = vec![
        sv("page_location", prop(e, "$current_url")),
        json!({"key": "ga_session_id", "value": {"int_value": (e.session_start_us / 1_000_000).to_string()}}),
        json!({"key": "engagement_time_msec", "value": {"int_value": "100"}}),
    ];
    if let Some(r) = e.properties.get("$referrer") {
        params.push(sv("page_referrer", r));
    }
    if name == "login" {
        params.push(sv("method", &json!("password")));
    }
    for (k, v) in custom_props(e) {
        params.push(match &v {
            Value::Number(n) => json!({"key": k, "value": {"int_value": n.to_string()}}),
            _ => sv(&k, &v),
        });
    }
    let date = rfc3339_micros(e.ts_us);
    Some(
        json!({
            "event_date": format!("{}{}{}", &date[..4], &date[5..7], &date[8..10]),
            "event_timestamp": e.ts_us.to_string(),
            "event_name": name,
            "event_params": params,
            "event_bundle_sequence_id": n.to_string(),
            "batch_event_index": "0",
            "user_id": e.user_id,
            "user_pseudo_id": e.device_id,
            "user_properties": e.company.as_ref().map(|c| json!([{"key": "company", "value": {"string_value": c}}])).unwrap_or(json!([])),
            "device": {"category": "desktop", "operating_system": prop(e, "$os"), "web_info": {"browser": prop(e, "$browser")}},
            "geo": {"country": "United States", "city": "Springfield"},
            "stream_id": "4178230123",
            "platform": "WEB",
        })
        .to_string(),
    )
}

/// One Snowplow enriched event: 131 tab-separated fields (formats.md §6).
pub fn snowplow_line(e: &SimEvent) -> Option<String> {
    let name = GenFormat::Snowplow.event_name(&e.name)?;
    let mut f: Vec<String> = vec![String::new(); 131];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let page = name == "page_view";
    f[0] = "stitchbook-demo".into();
    f[1] = "web".into();
    f[2] = naive_utc(e.ts_us + 3_000_000, 3);
    f[3] = naive_utc(e.ts_us + 1_000_000, 3);
    f[4] = naive_utc(e.ts_us, 3);
    f[5] = if page { "page_view" } else { "unstruct" }.into();
    f[6] = e.uuid.clone();
    f[8] = "sp".into();
    f[9] = "js-3.24.0".into();
    f[10] = "ssc-2.10.0-kinesis".into();
    f[11] = "snowplow-enrich-kinesis-4.1.0".into();
    f[12] = e.user_id.clone().unwrap_or_default();
    f[13] = s(prop(e, "$ip"));
    f[15] = e.device_id.clone();
    f[17] = uuid_variant(&e.device_id);
    f[29] = s(prop(e, "$current_url"));
    f[31] = s(e.properties.get("$referrer").unwrap_or(&Value::Null));
    f[34] = "app.example.com".into();
    f[36] = s(prop(e, "$pathname"));
    f[76] = format!("Mozilla/5.0 ({})", s(prop(e, "$browser")));
    f[77] = s(prop(e, "$browser"));
    f[89] = s(prop(e, "$os"));
    if !page {
        let data = Value::Object(custom_props(e));
        f[58] = json!({
            "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
            "data": {"schema": format!("iglu:com.example/{name}/jsonschema/1-0-0"), "data": data}
        })
        .to_string();
    }
    f[119] = naive_utc(e.ts_us + 500_000, 3);
    f[123] = e.session_id.clone();
    f[124] = naive_utc(e.ts_us, 3);
    f[125] = if page {
        "com.snowplowanalytics.snowplow"
    } else {
        "com.example"
    }
    .into();
    f[126] = name.into();
    f[127] = "jsonschema".into();
    f[128] = "1-0-0".into();
    f[129] = format!("{:016x}", id64(&e.uuid));
    // A tab or newline inside a value would break the layout.
    for v in &mut f {
        if v.contains(['\t', '\n']) {
            *v = v.replace(['\t', '\n'], " ");
        }
    }
    Some(f.join("\t"))
}

/// The id a record's person resolves to under "first identification of a device wins" (the
/// posthog-js shared-device rule, semantics.md TV-ID-2a): the user id, else the first user
/// the device was identified as, else the device.
fn resolution(events: &[SimEvent]) -> Vec<String> {
    let mut owner: std::collections::HashMap<&str, &str> = Default::default();
    for e in events {
        if e.name == "$identify" {
            if let Some(a) = &e.anon_distinct_id {
                owner.entry(a.as_str()).or_insert(e.distinct_id.as_str());
            }
        }
    }
    events
        .iter()
        .map(|e| {
            e.user_id
                .clone()
                .or_else(|| owner.get(e.device_id.as_str()).map(|s| s.to_string()))
                .unwrap_or_else(|| e.device_id.clone())
        })
        .collect()
}

/// Where generated lines go: one (optionally gzip) stream, or Amplitude-style zip members,
/// one per hour of server upload time.
enum Sink {
    Stream(Box<dyn Write>),
    Zip {
        zip: Box<zip::ZipWriter<std::io::BufWriter<std::fs::File>>>,
        member: Option<(String, flate2::write::GzEncoder<Vec<u8>>)>,
    },
}

impl Sink {
    fn open(out: &Path, zip: bool) -> Result<Sink> {
        let file = std::fs::File::create(out).map_err(|e| EngineError::io(out, e))?;
        if zip {
            return Ok(Sink::Zip {
                zip: Box::new(zip::ZipWriter::new(std::io::BufWriter::new(file))),
                member: None,
            });
        }
        Ok(Sink::Stream(
            if out.extension().is_some_and(|x| x == "gz") {
                Box::new(flate2::write::GzEncoder::new(
                    std::io::BufWriter::new(file),
                    flate2::Compression::fast(),
                ))
            } else {
                Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
            },
        ))
    }

    /// Write one line; `member` names the zip member it belongs in.
    fn line(&mut self, member: &str, text: &str) -> std::io::Result<()> {
        match self {
            Sink::Stream(w) => writeln!(w, "{text}"),
            Sink::Zip { zip, member: cur } => {
                if cur.as_ref().is_none_or(|(m, _)| m != member) {
                    Self::flush_member(zip, cur.take())?;
                    *cur = Some((
                        member.to_string(),
                        flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()),
                    ));
                }
                match cur {
                    Some((_, gz)) => writeln!(gz, "{text}"),
                    None => Ok(()),
                }
            }
        }
    }

    fn flush_member(
        zip: &mut zip::ZipWriter<std::io::BufWriter<std::fs::File>>,
        m: Option<(String, flate2::write::GzEncoder<Vec<u8>>)>,
    ) -> std::io::Result<()> {
        if let Some((name, gz)) = m {
            let bytes = gz.finish()?;
            let o = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored)
                .large_file(bytes.len() as u64 >= u32::MAX as u64);
            zip.start_file(name, o).map_err(std::io::Error::other)?;
            zip.write_all(&bytes)?;
        }
        Ok(())
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Stream(mut w) => w.flush(),
            Sink::Zip { mut zip, member } => {
                Self::flush_member(&mut zip, member)?;
                zip.finish().map_err(std::io::Error::other)?.flush()
            }
        }
    }
}

/// Amplitude's member name for an event: `<project>/<project>_<date>_<H>#1.json.gz`, the
/// hour of server upload time, not zero-padded.
fn amplitude_member(ts_us: i64) -> String {
    let t = rfc3339_micros(ts_us + 2_000_000);
    let hour: u32 = t[11..13].parse().unwrap_or(0);
    format!("187520/187520_{}_{hour}#1.json.gz", &t[..10])
}

/// Write generated events in `format` to `out`, with duplicates and malformed lines injected
/// at the configured rates, and the ground truth to `<out>.truth.json`. Output is gzip when
/// the name ends in `.gz`; Amplitude output is an Export API zip when it ends in `.zip`.
pub fn write_generated(
    format: GenFormat,
    out: &Path,
    opts: &GenerateOptions,
) -> Result<GroundTruth> {
    let (events, mut truth) = simulate(opts);
    let resolved = resolution(&events);
    let mut rng = Rng::new(opts.seed.wrapping_add(0xD0C5));
    let zip = format == GenFormat::Amplitude && out.extension().is_some_and(|x| x == "zip");
    let mut sink = Sink::open(out, zip)?;
    let io = |e: std::io::Error| EngineError::io(out, e);
    let (mut dups, mut bad, mut lines, mut records) = (0, 0, 0, 0);
    let mut by_name: std::collections::BTreeMap<String, usize> = Default::default();
    let mut persons: std::collections::HashSet<&str> = Default::default();
    let mut recent: std::collections::VecDeque<String> = Default::default();
    for (i, e) in events.iter().enumerate() {
        let line = match format {
            GenFormat::PostHog => Some(posthog_line(e)),
            GenFormat::Amplitude => Some(amplitude_line(e, &resolved[i], i + 1)),
            GenFormat::Mixpanel => mixpanel_line(e),
            GenFormat::Segment => Some(segment_line(e, false)),
            GenFormat::RudderStack => Some(segment_line(e, true)),
            GenFormat::Ga4 => ga4_line(e, i + 1),
            GenFormat::Snowplow => snowplow_line(e),
        };
        let Some(line) = line else { continue };
        let member = if zip {
            amplitude_member(e.ts_us)
        } else {
            String::new()
        };
        records += 1;
        persons.insert(resolved[i].as_str());
        let name = format.event_name(&e.name).unwrap_or(&e.name);
        *by_name.entry(name.to_string()).or_insert(0) += 1;
        sink.line(&member, &line).map_err(io)?;
        lines += 1;
        if rng.chance(opts.malformed_rate) {
            // A line cut short, as a crashed writer leaves it.
            let mut cut = line.len() / 2;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            sink.line(&member, &line[..cut]).map_err(io)?;
            bad += 1;
            lines += 1;
        }
        recent.push_back(line);
        if recent.len() > 64 {
            recent.pop_front();
        }
        if rng.chance(opts.duplicate_rate) {
            // Redelivery of a recent event: the identical record.
            let k = rng.below(recent.len() as u64) as usize;
            sink.line(&member, &recent[k]).map_err(io)?;
            dups += 1;
            lines += 1;
        }
    }
    sink.finish().map_err(io)?;
    truth.format = format.as_str().into();
    truth.duplicates_injected = dups;
    truth.malformed_injected = bad;
    truth.lines = lines;
    truth.records = records;
    truth.resolved_persons = persons.len();
    truth.events_by_vendor_name = by_name;
    let truth_path = truth_path(out);
    let text =
        serde_json::to_string_pretty(&truth).map_err(|e| EngineError::Internal(e.to_string()))?;
    std::fs::write(&truth_path, text).map_err(|e| EngineError::io(&truth_path, e))?;
    Ok(truth)
}

/// A PostHog batch export (JSON lines; gzip when the name ends in `.gz`).
pub fn write_posthog_jsonl(out: &Path, opts: &GenerateOptions) -> Result<GroundTruth> {
    write_generated(GenFormat::PostHog, out, opts)
}

pub fn truth_path(out: &Path) -> std::path::PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".truth.json");
    std::path::PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse() {
        assert_eq!(date_to_micros("2024-01-01").unwrap(), 1_704_067_200_000_000);
        assert_eq!(date_to_micros("1970-01-01").unwrap(), 0);
        assert_eq!(date_to_micros("2000-02-29").unwrap(), 951_782_400_000_000);
        assert!(date_to_micros("2023-02-29").is_err());
        assert!(date_to_micros("2023-13-01").is_err());
        assert!(date_to_micros("yesterday").is_err());
    }

    #[test]
    fn dates_format() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(
            rfc3339_micros(1_704_067_200_000_001),
            "2024-01-01T00:00:00.000001+00:00"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000+00:00"
        );
        assert_eq!(
            iso_utc_micros(1_704_150_038_123_456),
            "2024-01-01T23:00:38.123456Z"
        );
        assert_eq!(iso_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn simulation_is_deterministic_and_sized() {
        let o = GenerateOptions {
            events: 500,
            ..Default::default()
        };
        let (a, ta) = simulate(&o);
        let (b, _) = simulate(&o);
        assert_eq!(a.len(), 500);
        assert_eq!(
            a.iter().map(|e| &e.uuid).collect::<Vec<_>>(),
            b.iter().map(|e| &e.uuid).collect::<Vec<_>>()
        );
        assert!(ta.events_by_name.contains_key("$identify"));
        assert!(ta.events_by_name.contains_key("signed_up"));
        assert!(!ta.shared_devices.is_empty());
    }
}
