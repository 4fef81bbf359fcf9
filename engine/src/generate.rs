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
    /// false when the merge is expected to be refused (a shared device already identified
    /// as someone else).
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
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            events: 2000,
            seed: 1,
            duplicate_rate: 0.01,
            malformed_rate: 0.002,
            start_us: 1_704_067_200_000_000, // 2024-01-01T00:00:00Z
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
            let mut devices = vec![rng.uuid()];
            if identified && rng.chance(0.25) {
                devices.push(rng.uuid());
            }
            Person {
                devices,
                user_id: identified.then(|| format!("user_{i:06}")),
                email: format!("{first}.{last}{i}@example.com"),
                phone: format!("+1555{:07}", rng.below(10_000_000)),
                ip: format!("203.0.113.{}", rng.below(254) + 1),
                company: identified
                    .then(|| format!("company_{:04}", rng.below(n_companies as u64))),
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
    let mut device_owner: std::collections::HashMap<String, String> = Default::default();
    let mut sessions = 0usize;
    let mut person_cursor = 0usize;
    while events.len() < opts.events {
        let pi = person_cursor % n_persons;
        person_cursor += 1;
        // Next session for this person: 2 h to 3 days later.
        let gap = 7_200 + rng.below(3 * 86_400) as i64;
        let p = &mut persons[pi];
        p.clock_us += gap * 1_000_000;
        let dev_i = rng.below(p.devices.len() as u64) as usize;
        let device = p.devices[dev_i].clone();
        let session = rng.uuid();
        sessions += 1;
        let mut t = p.clock_us;
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
                let owner = device_owner.get(&device).cloned();
                merges.push(TruthMerge {
                    from: device.clone(),
                    into: uid.clone(),
                    expected_to_apply: owner.as_deref().is_none_or(|o| o == uid),
                });
                device_owner.entry(device.clone()).or_insert(uid.clone());
                events.push(SimEvent {
                    uuid: rng.uuid(),
                    name: "$identify".into(),
                    ts_us: t,
                    distinct_id: uid.clone(),
                    device_id: device.clone(),
                    user_id: Some(uid.clone()),
                    session_id: session.clone(),
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
    events.truncate(opts.events);
    events.sort_by(|a, b| a.ts_us.cmp(&b.ts_us).then_with(|| a.uuid.cmp(&b.uuid)));
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

/// Write a generated export to `out` (gzip when the name ends in `.gz`) and its ground
/// truth to `<out>.truth.json`.
pub fn write_posthog_jsonl(out: &Path, opts: &GenerateOptions) -> Result<GroundTruth> {
    let (events, mut truth) = simulate(opts);
    let mut rng = Rng::new(opts.seed.wrapping_add(0xD0C5));
    let file = std::fs::File::create(out).map_err(|e| EngineError::io(out, e))?;
    let mut w: Box<dyn Write> = if out.extension().is_some_and(|x| x == "gz") {
        Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(std::io::BufWriter::with_capacity(1 << 20, file))
    };
    let mut dups = 0;
    let mut bad = 0;
    let mut lines = 0;
    let mut recent: Vec<String> = Vec::new();
    for e in &events {
        let line = posthog_line(e);
        writeln!(w, "{line}").map_err(|e| EngineError::io(out, e))?;
        lines += 1;
        if rng.chance(opts.malformed_rate) {
            // A line cut short, as a crashed writer leaves it.
            let cut = &line[..line.len() / 2];
            writeln!(w, "{cut}").map_err(|e| EngineError::io(out, e))?;
            bad += 1;
            lines += 1;
        }
        recent.push(line);
        if recent.len() > 64 {
            recent.remove(0);
        }
        if rng.chance(opts.duplicate_rate) {
            // Redelivery of a recent event: identical record, same uuid.
            let i = rng.below(recent.len() as u64) as usize;
            writeln!(w, "{}", recent[i]).map_err(|e| EngineError::io(out, e))?;
            dups += 1;
            lines += 1;
        }
    }
    w.flush().map_err(|e| EngineError::io(out, e))?;
    drop(w);
    truth.format = "posthog".into();
    truth.duplicates_injected = dups;
    truth.malformed_injected = bad;
    truth.lines = lines;
    let truth_path = truth_path(out);
    let text = serde_json::to_string_pretty(&truth)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
    std::fs::write(&truth_path, text).map_err(|e| EngineError::io(&truth_path, e))?;
    Ok(truth)
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
