//! A generated, labelled corpus of property values for measuring the detectors: true
//! positives in the layouts real exports carry (plain, embedded in text and URLs,
//! percent-encoded, mixed case, with punctuation around) and the near misses that trip naive
//! detectors (Luhn-invalid card numbers, version strings, bad IBAN checksums, timestamps,
//! ids, MAC addresses, retina file names, URL user-info).
//!
//! Labels are by construction, not by running the detectors.

use serde::Serialize;

use super::detect::{detectors_in, iban_ok, luhn_ok, Detector};
use crate::generate::Rng;

/// The classes the precision / recall targets apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Email,
    Phone,
    Ip,
    Card,
    Iban,
}

pub const CLASSES: [Class; 5] = [
    Class::Email,
    Class::Phone,
    Class::Ip,
    Class::Card,
    Class::Iban,
];

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Email => "email",
            Class::Phone => "phone",
            Class::Ip => "ip",
            Class::Card => "credit_card",
            Class::Iban => "iban",
        }
    }
    pub fn of(d: Detector) -> Option<Class> {
        match d {
            Detector::Email => Some(Class::Email),
            Detector::Phone => Some(Class::Phone),
            Detector::Ipv4 | Detector::Ipv6 => Some(Class::Ip),
            Detector::CreditCard => Some(Class::Card),
            Detector::Iban => Some(Class::Iban),
            _ => None,
        }
    }
}

/// One property value with the classes truly present in it.
#[derive(Debug, Clone, Serialize)]
pub struct Labelled {
    pub key: String,
    pub value: String,
    pub labels: Vec<Class>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub class: Class,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    pub precision: f64,
    pub recall: f64,
}

const FIRST: &[&str] = &[
    "jane", "John", "ana", "Li", "oMar", "sofia", "Kwame", "yuki", "ÉLodie", "raj",
];
const LAST: &[&str] = &[
    "doe", "Smith", "garcía", "wong", "okafor", "Rossi", "kowalski", "tanaka",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "mail.example.co.uk",
    "Company.IO",
    "gmail.com",
    "uni-bonn.de",
    "startup.dev",
];

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.below(xs.len() as u64) as usize]
}

fn digits(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.below(10) as u8))
        .collect()
}

fn ascii_name(rng: &mut Rng) -> String {
    pick(rng, FIRST)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect()
}

fn email(rng: &mut Rng) -> String {
    let f = ascii_name(rng);
    let l: String = pick(rng, LAST)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .collect();
    let local = match rng.below(4) {
        0 => format!("{f}.{l}"),
        1 => format!("{f}_{l}{}", rng.below(100)),
        2 => format!("{f}+news"),
        _ => format!("{}{}", &f[..1], l),
    };
    format!("{local}@{}", pick(rng, DOMAINS))
}

fn phone(rng: &mut Rng) -> (String, bool) {
    // (value, needs a phone key)
    let area = 200 + rng.below(800);
    let ex = 200 + rng.below(800);
    let line = digits(rng, 4);
    match rng.below(9) {
        0 => (format!("+1{area}{ex}{line}"), false),
        1 => (format!("+1 ({area}) {ex}-{line}"), false),
        2 => (format!("({area}) {ex}-{line}"), false),
        3 => (format!("{area}-{ex}-{line}"), false),
        4 => (
            format!("+44 20 {} {}", digits(rng, 4), digits(rng, 4)),
            false,
        ),
        5 => (format!("07{} {}", digits(rng, 3), digits(rng, 6)), false),
        6 => (
            format!(
                "+33 6 {} {} {} {}",
                digits(rng, 2),
                digits(rng, 2),
                digits(rng, 2),
                digits(rng, 2)
            ),
            false,
        ),
        7 => (format!("+4915{}", digits(rng, 9)), false),
        _ => (format!("{area}{ex}{line}"), true),
    }
}

fn ipv4(rng: &mut Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        1 + rng.below(223),
        rng.below(256),
        rng.below(256),
        1 + rng.below(254)
    )
}

fn ipv6(rng: &mut Rng) -> String {
    let g = |rng: &mut Rng| format!("{:x}", rng.below(0x10000));
    match rng.below(3) {
        0 => (0..8).map(|_| g(rng)).collect::<Vec<_>>().join(":"),
        1 => format!("2001:db8::{}:{}", g(rng), g(rng)),
        _ => format!("fe80::{}:{}:{}:{}", g(rng), g(rng), g(rng), g(rng)).to_uppercase(),
    }
}

/// A digit string of `len` with `prefix`, Luhn-valid (or deliberately invalid).
fn card_digits(rng: &mut Rng, prefix: &str, len: usize, valid: bool) -> String {
    let mut d = prefix.to_string();
    d.push_str(&digits(rng, len - prefix.len() - 1));
    for c in 0..10u8 {
        let mut t = d.clone();
        t.push(char::from(b'0' + c));
        if luhn_ok(t.as_bytes()) == valid {
            return t;
        }
    }
    d.push('0');
    d
}

fn card(rng: &mut Rng, valid: bool) -> String {
    let (prefix, len) = match rng.below(5) {
        0 => ("4", 16),
        1 => (
            ["51", "52", "53", "54", "55", "2221", "2720"][rng.below(7) as usize],
            16,
        ),
        2 => (["34", "37"][rng.below(2) as usize], 15),
        3 => ("6011", 16),
        _ => ("4", 13),
    };
    let d = card_digits(rng, prefix, len, valid);
    match rng.below(3) {
        0 => d,
        1 if len == 16 => d
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect::<Vec<_>>()
            .join(" "),
        1 if len == 15 => format!("{} {} {}", &d[..4], &d[4..10], &d[10..]),
        _ => {
            if len == 16 {
                format!("{}-{}-{}-{}", &d[..4], &d[4..8], &d[8..12], &d[12..])
            } else {
                d
            }
        }
    }
}

/// (country, BBAN layout: `n` digit, `a` upper letter, `c` alphanumeric)
const IBAN_LAYOUTS: &[(&str, &str)] = &[
    ("DE", "nnnnnnnnnnnnnnnnnn"),
    ("GB", "aaaannnnnnnnnnnnnn"),
    ("FR", "nnnnnnnnnnnnnnnnnnnnnnn"),
    ("NL", "aaaannnnnnnnnn"),
    ("ES", "nnnnnnnnnnnnnnnnnnnn"),
    ("IT", "annnnnnnnnncccccccccccc"),
    ("BE", "nnnnnnnnnnnn"),
    ("CH", "nnnnncccccccccccc"),
];

fn iban(rng: &mut Rng, valid: bool) -> String {
    let (cc, layout) = IBAN_LAYOUTS[rng.below(IBAN_LAYOUTS.len() as u64) as usize];
    let bban: String = layout
        .chars()
        .map(|k| match k {
            'n' => char::from(b'0' + rng.below(10) as u8),
            'a' => char::from(b'A' + rng.below(26) as u8),
            _ => {
                let x = rng.below(36) as u8;
                if x < 10 {
                    char::from(b'0' + x)
                } else {
                    char::from(b'A' + x - 10)
                }
            }
        })
        .collect();
    let valid_check = (2..=98u32)
        .find(|c| iban_ok(&format!("{cc}{c:02}{bban}")))
        .unwrap_or(2);
    let check = if valid {
        valid_check
    } else if valid_check >= 50 {
        valid_check - 1 - rng.below(40) as u32
    } else {
        valid_check + 1 + rng.below(40) as u32
    };
    let compact = format!("{cc}{check:02}{bban}");
    match rng.below(3) {
        0 => compact,
        1 => compact
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect::<Vec<_>>()
            .join(" "),
        _ => compact.to_lowercase(),
    }
}

/// Text around a value, as property values carry it.
fn embed(rng: &mut Rng, v: &str, class: Class) -> String {
    match rng.below(7) {
        0 | 1 => v.to_string(),
        2 => format!("Contact: {v}"),
        3 => format!("({v})."),
        4 => format!("\"{v}\","),
        5 => match class {
            Class::Email => format!(
                "https://app.example.com/invite?email={}&ref=mail",
                v.replace('@', "%40")
            ),
            Class::Ip => format!("http://{v}/admin"),
            _ => format!("<{v}>"),
        },
        _ => format!("note from support: {v} please"),
    }
}

/// Values that look close to PII and are not (for the five classes).
fn near_miss(rng: &mut Rng) -> (String, String) {
    let k = |s: &str| s.to_string();
    match rng.below(24) {
        0 => (k("card_number"), card(rng, false)),
        1 => (
            k("app_version"),
            format!(
                "{}.{}.{}.{}",
                rng.below(20),
                rng.below(20),
                rng.below(20),
                rng.below(200)
            ),
        ),
        2 => (
            k("label"),
            format!(
                "v{}.{}.{}.{}",
                1 + rng.below(9),
                rng.below(10),
                rng.below(10),
                rng.below(99)
            ),
        ),
        3 => (
            k("$user_agent"),
            format!(
                "Mozilla/5.0 (Macintosh) AppleWebKit/537.36 Chrome/{}.0.0.0 Safari/537.36",
                90 + rng.below(40)
            ),
        ),
        4 => (
            k("build"),
            format!(
                "{}.{}.{}.{}-beta",
                rng.below(5),
                rng.below(10),
                rng.below(10),
                rng.below(999)
            ),
        ),
        5 => (
            k("addr"),
            format!(
                "{}.{}.1.{}",
                256 + rng.below(100),
                rng.below(256),
                300 + rng.below(100)
            ),
        ),
        6 => (
            k("ts"),
            format!(
                "2024-0{}-1{}T10:15:0{}Z",
                1 + rng.below(9),
                rng.below(10),
                rng.below(10)
            ),
        ),
        7 => (k("$time"), format!("1694{}", digits(rng, 9))),
        8 => (k("id"), crate::generate::Rng::new(rng.next_u64()).uuid()),
        9 => (k("order"), format!("ORD-2024-{}", digits(rng, 6))),
        10 => (
            k("price"),
            format!("{},{}.{}", 1 + rng.below(9), digits(rng, 3), digits(rng, 2)),
        ),
        11 => (k("image"), format!("logo@{}x.png", 2 + rng.below(2))),
        12 => (
            k("$current_url"),
            format!("https://{}@git.example.com/repo", ascii_name(rng)),
        ),
        13 => (k("iban"), iban(rng, false)),
        14 => (
            k("mac"),
            (0..6)
                .map(|_| format!("{:02x}", rng.below(256)))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        15 => (
            k("time"),
            format!(
                "{:02}:{:02}:{:02}",
                rng.below(24),
                rng.below(60),
                rng.below(60)
            ),
        ),
        16 => {
            let n = 5 + rng.below(5) as usize;
            (k("count"), digits(rng, n))
        }
        17 => (k("zip_or_sku"), format!("SKU-{}-XL", digits(rng, 4))),
        18 => (
            k("semver"),
            format!("{}.{}.{}", rng.below(20), rng.below(20), rng.below(20)),
        ),
        19 => (
            k("location"),
            format!(
                "{}.{}, -0.{}",
                40 + rng.below(20),
                digits(rng, 5),
                digits(rng, 5)
            ),
        ),
        20 => (k("handle"), format!("@{}", ascii_name(rng))),
        21 => (
            k("sha"),
            format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()),
        ),
        22 => (
            k("date"),
            format!(
                "{:02}/{:02}/20{:02}",
                1 + rng.below(28),
                1 + rng.below(12),
                rng.below(30)
            ),
        ),
        _ => (
            k("amount"),
            format!("{}.{}", digits(rng, 4), digits(rng, 2)),
        ),
    }
}

/// `n` values per class plus as many near misses, deterministic for a seed.
pub fn corpus(n: usize, seed: u64) -> Vec<Labelled> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * 7);
    for _ in 0..n {
        let e = email(&mut rng);
        let e = if rng.chance(0.2) { e.to_uppercase() } else { e };
        out.push(Labelled {
            key: "email".into(),
            value: embed(&mut rng, &e, Class::Email),
            labels: vec![Class::Email],
        });
        let (p, keyed) = phone(&mut rng);
        out.push(Labelled {
            key: if keyed {
                "phone_number".into()
            } else {
                "contact".into()
            },
            value: if keyed {
                p
            } else {
                embed(&mut rng, &p, Class::Phone)
            },
            labels: vec![Class::Phone],
        });
        let ip = if rng.chance(0.7) {
            ipv4(&mut rng)
        } else {
            ipv6(&mut rng)
        };
        out.push(Labelled {
            key: "$ip".into(),
            value: embed(&mut rng, &ip, Class::Ip),
            labels: vec![Class::Ip],
        });
        let c = card(&mut rng, true);
        out.push(Labelled {
            key: "payment".into(),
            value: embed(&mut rng, &c, Class::Card),
            labels: vec![Class::Card],
        });
        let i = iban(&mut rng, true);
        out.push(Labelled {
            key: "bank".into(),
            value: embed(&mut rng, &i, Class::Iban),
            labels: vec![Class::Iban],
        });
        // A value holding two kinds at once.
        let e2 = email(&mut rng);
        // Bare digit runs count as phones only under a phone key, so free text gets a
        // formatted number.
        let p2 = loop {
            let (p, keyed) = phone(&mut rng);
            if !keyed {
                break p;
            }
        };
        out.push(Labelled {
            key: "message".into(),
            value: format!("Reach {e2} or call {p2}."),
            labels: vec![Class::Email, Class::Phone],
        });
        let (k, v) = near_miss(&mut rng);
        out.push(Labelled {
            key: k,
            value: v,
            labels: Vec::new(),
        });
    }
    out
}

/// Precision and recall per class: a value counts once per class.
pub fn evaluate(corpus: &[Labelled]) -> Vec<ClassScore> {
    let mut tp = [0u64; 5];
    let mut fp = [0u64; 5];
    let mut fn_ = [0u64; 5];
    for item in corpus {
        let found: Vec<Class> = detectors_in(&item.key, &item.value)
            .into_iter()
            .filter_map(Class::of)
            .collect();
        for (i, c) in CLASSES.iter().enumerate() {
            match (item.labels.contains(c), found.contains(c)) {
                (true, true) => tp[i] += 1,
                (false, true) => fp[i] += 1,
                (true, false) => fn_[i] += 1,
                (false, false) => {}
            }
        }
    }
    CLASSES
        .iter()
        .enumerate()
        .map(|(i, c)| ClassScore {
            class: *c,
            true_positives: tp[i],
            false_positives: fp[i],
            false_negatives: fn_[i],
            precision: tp[i] as f64 / (tp[i] + fp[i]).max(1) as f64,
            recall: tp[i] as f64 / (tp[i] + fn_[i]).max(1) as f64,
        })
        .collect()
}
