//! PII detectors: pure functions over one value (and the key it sits under). Each detector
//! finds spans in a string; key-name heuristics flag a value by the name of its key alone.
//!
//! Decisions worth knowing (each has a test):
//! - Values are percent-decoded first when they contain `%XX`, so `jane%40example.com` is an
//!   email; matching is ASCII and case-insensitive where the format is (IBAN, `Bearer`).
//! - An email inside a URL's query or path (`?email=jane@example.com`) IS reported: it is the
//!   commonest way addresses leak into analytics. URL user-info (`https://user@host/`) and
//!   retina image names (`logo@2x.png`) are not emails.
//! - A dotted quad is not an IP when it is a version: under a key naming a version, after a
//!   letter or a single `/` (`v1.2.3.4`, `Chrome/106.0.0.0`), or followed by `-beta`-style
//!   suffixes. `http://10.0.0.1/` is an IP (the `//` of a URL host).
//! - Bare digit runs are phones or SSNs only under a key that says so (`phone`, `ssn`);
//!   otherwise a phone needs a `+` (E.164) or a national layout with separators.
//! - Card numbers must pass Luhn and match an issuer's prefix and length.
//! - PostHog `phc_` project tokens are public by design and not reported as secrets.
//! - Overlapping matches keep the longest span (a JWT inside `Bearer …` is one bearer token).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A built-in detector. Custom rules are reported as `custom:<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Detector {
    Email,
    Phone,
    Ipv4,
    Ipv6,
    CreditCard,
    Iban,
    UsSsn,
    Jwt,
    BearerToken,
    ApiKey,
    Geolocation,
    PersonName,
    BirthDate,
    PostalAddress,
    PostalCode,
    GovernmentId,
    Credential,
}

/// How bad a leak of this kind is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }
}

pub const ALL_DETECTORS: [Detector; 17] = [
    Detector::Email,
    Detector::Phone,
    Detector::Ipv4,
    Detector::Ipv6,
    Detector::CreditCard,
    Detector::Iban,
    Detector::UsSsn,
    Detector::Jwt,
    Detector::BearerToken,
    Detector::ApiKey,
    Detector::Geolocation,
    Detector::PersonName,
    Detector::BirthDate,
    Detector::PostalAddress,
    Detector::PostalCode,
    Detector::GovernmentId,
    Detector::Credential,
];

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::CreditCard => "credit_card",
            Detector::Iban => "iban",
            Detector::UsSsn => "us_ssn",
            Detector::Jwt => "jwt",
            Detector::BearerToken => "bearer_token",
            Detector::ApiKey => "api_key",
            Detector::Geolocation => "geolocation",
            Detector::PersonName => "person_name",
            Detector::BirthDate => "birth_date",
            Detector::PostalAddress => "postal_address",
            Detector::PostalCode => "postal_code",
            Detector::GovernmentId => "government_id",
            Detector::Credential => "credential",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL_DETECTORS.iter().copied().find(|d| d.as_str() == s)
    }

    pub fn severity(self) -> Severity {
        match self {
            Detector::CreditCard
            | Detector::Iban
            | Detector::UsSsn
            | Detector::Jwt
            | Detector::BearerToken
            | Detector::ApiKey
            | Detector::GovernmentId
            | Detector::Credential => Severity::High,
            Detector::Email
            | Detector::Phone
            | Detector::Geolocation
            | Detector::PersonName
            | Detector::BirthDate
            | Detector::PostalAddress => Severity::Medium,
            Detector::Ipv4 | Detector::Ipv6 | Detector::PostalCode => Severity::Low,
        }
    }

    /// Whether the detector looks at the value (rather than only the key's name). A masked or
    /// pseudonymised value can still sit under a `first_name` key; verification of a redacted
    /// export counts only value detectors for masked fields.
    pub fn reads_value(self) -> bool {
        !matches!(
            self,
            Detector::PersonName
                | Detector::BirthDate
                | Detector::PostalAddress
                | Detector::PostalCode
                | Detector::GovernmentId
                | Detector::Credential
        )
    }
}

/// One detected span in the (decoded) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub detector: Detector,
    pub start: usize,
    pub end: usize,
}

/// What the key name says about its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyHints {
    pub phone: bool,
    pub ssn: bool,
    pub version: bool,
    pub latitude: bool,
    pub longitude: bool,
    /// A key-name detector (first_name, dob, …) and nothing about the value.
    pub key_detector: Option<Detector>,
}

/// Lower-case letters and digits only: `First-Name`, `first_name` and `$firstName` agree.
pub fn normalize_key(key: &str) -> String {
    key.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

const NAME_KEYS: &[&str] = &[
    "firstname",
    "lastname",
    "fullname",
    "givenname",
    "familyname",
    "surname",
    "middlename",
    "maidenname",
    "fname",
    "lname",
];
const BIRTH_KEYS: &[&str] = &["dob", "dateofbirth", "birthday", "birthdate", "birthdt"];
const ADDRESS_KEYS: &[&str] = &[
    "address",
    "streetaddress",
    "street",
    "addressline1",
    "addressline2",
    "homeaddress",
    "billingaddress",
    "shippingaddress",
    "mailingaddress",
];
const POSTAL_KEYS: &[&str] = &["zip", "zipcode", "postcode", "postalcode"];
const ID_KEYS: &[&str] = &[
    "passport",
    "passportnumber",
    "passportno",
    "ssn",
    "socialsecuritynumber",
    "taxid",
    "taxnumber",
    "tin",
    "nationalid",
    "nationalidnumber",
    "nino",
    "driverslicense",
    "driverlicense",
    "driverslicence",
];
const CREDENTIAL_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "clientsecret",
    "apisecret",
    "apikey",
    "accesstoken",
    "refreshtoken",
    "privatekey",
    "authorization",
    "sessiontoken",
];

fn key_in(k: &str, list: &[&str]) -> bool {
    // Exact, or a longer key ending in a multi-word term (`billing_first_name`,
    // `$geoip_postal_code`); short terms (`zip`, `tin`, `dob`) must match exactly.
    list.iter()
        .any(|t| k == *t || (t.len() >= 6 && k.len() > t.len() && k.ends_with(t)))
}

/// [`key_hints`] remembered by key, for walkers that meet the same keys on every row.
#[derive(Clone, Default)]
pub(crate) struct KeyHintCache(std::collections::HashMap<String, KeyHints>);

impl KeyHintCache {
    pub(crate) fn get(&mut self, key: &str) -> KeyHints {
        if let Some(h) = self.0.get(key) {
            return *h;
        }
        let h = key_hints(key);
        self.0.insert(key.to_string(), h);
        h
    }
}

/// Read the hints in a key name (the last segment of a path).
pub fn key_hints(key: &str) -> KeyHints {
    let k = normalize_key(key);
    let key_detector = if key_in(&k, NAME_KEYS) {
        Some(Detector::PersonName)
    } else if key_in(&k, BIRTH_KEYS) {
        Some(Detector::BirthDate)
    } else if key_in(&k, POSTAL_KEYS) {
        Some(Detector::PostalCode)
    } else if key_in(&k, ADDRESS_KEYS)
        && ![
            "ipaddress",
            "ipaddr",
            "macaddress",
            "emailaddress",
            "walletaddress",
        ]
        .iter()
        .any(|n| k.ends_with(n))
    {
        // `ip_address`, `mac_address`, `email_address` are not postal addresses (their
        // values are checked by the value detectors).
        Some(Detector::PostalAddress)
    } else if key_in(&k, ID_KEYS) {
        Some(Detector::GovernmentId)
    } else if key_in(&k, CREDENTIAL_KEYS) {
        Some(Detector::Credential)
    } else {
        None
    };
    KeyHints {
        phone: k.contains("phone") || k.contains("mobile") || k == "tel" || k == "telephone",
        ssn: k == "ssn" || k.ends_with("ssn") || k.contains("socialsecurity"),
        version: k.contains("version") || k == "ver" || k.ends_with("ver") || k == "v",
        latitude: k == "lat" || k.ends_with("latitude") || k.ends_with("lat"),
        longitude: k == "lng"
            || k == "lon"
            || k == "long"
            || k.ends_with("longitude")
            || k.ends_with("lng")
            || k.ends_with("lon"),
        key_detector,
    }
}

/// Decode `%XX` escapes (only when there are any). Invalid escapes stay as they are.
pub fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    let b = s.as_bytes();
    let has_escape = b
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit());
    if !has_escape {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let h = |c: u8| (c as char).to_digit(16);
            if let (Some(x), Some(y)) = (h(b[i + 1]), h(b[i + 2])) {
                out.push((x * 16 + y) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Byte before `i`, if any.
fn before(b: &[u8], i: usize) -> Option<u8> {
    i.checked_sub(1).map(|j| b[j])
}

// ---------------------------------------------------------------- email

fn is_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-')
}
fn is_domain(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'.'
}

const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "avif", "css", "js", "pdf",
];

/// Email addresses.
pub fn find_emails(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    for at in memchr::memchr_iter(b'@', b) {
        let mut l = at;
        while l > 0 && is_local(b[l - 1]) {
            l -= 1;
        }
        while l < at && b[l] == b'.' {
            l += 1;
        }
        if l == at || b[at - 1] == b'.' {
            continue;
        }
        if is_url_userinfo(s, l) {
            continue;
        }
        let mut r = at + 1;
        while r < b.len() && is_domain(b[r]) {
            r += 1;
        }
        while r > at + 1 && matches!(b[r - 1], b'.' | b'-') {
            r -= 1;
        }
        let domain = &s[at + 1..r];
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.starts_with('-')) {
            continue;
        }
        let tld = labels[labels.len() - 1];
        if tld.len() < 2 || !tld.bytes().all(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        if labels.len() == 2 && FILE_EXTENSIONS.contains(&tld.to_ascii_lowercase().as_str()) {
            continue;
        }
        if s[l..at].contains("..") {
            continue;
        }
        out.push(Match {
            detector: Detector::Email,
            start: l,
            end: r,
        });
    }
}

/// `scheme://user@host`: the text from the last `://` up to `at_start` has no `/?#` or space.
fn is_url_userinfo(s: &str, local_start: usize) -> bool {
    let head = &s[..local_start];
    match head.rfind("://") {
        Some(p) => !head[p + 3..]
            .bytes()
            .any(|c| matches!(c, b'/' | b'?' | b'#' | b' ' | b'&' | b'=')),
        None => false,
    }
}

// ---------------------------------------------------------------- phone

/// Phone numbers: E.164 (`+` and 8–15 digits, separators allowed), North American
/// `(415) 555-2671` / `415-555-2671` / `415.555.2671` / `1-800-555-0199`, and national
/// numbers with a trunk `0` and spaces (`020 7946 0958`, `06 12 34 56 78`). Under a phone
/// key, any 7–15 digits.
pub fn find_phones(s: &str, hints: KeyHints, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts = c == b'+' || c == b'(' || c.is_ascii_digit();
        let boundary = match before(b, i) {
            None => true,
            Some(p) => !(alnum(p) || matches!(p, b'_' | b'.' | b'-' | b'/' | b'+' | b'@')),
        };
        if !(starts && boundary) {
            i += 1;
            continue;
        }
        // Extend over digits and separators (no two separators in a row, except ") ").
        let mut j = i + 1;
        while j < b.len() {
            let d = b[j];
            if d.is_ascii_digit() {
                j += 1;
            } else if matches!(d, b' ' | b'-' | b'.' | b'(' | b')') {
                let prev = b[j - 1];
                if !(prev.is_ascii_digit() || prev == b'+' || (prev == b')' && d == b' ')) {
                    break;
                }
                j += 1;
            } else {
                break;
            }
        }
        let mut end = j;
        while end > i && !b[end - 1].is_ascii_digit() {
            end -= 1;
        }
        if end <= i {
            i += 1;
            continue;
        }
        let after_ok = match b.get(end) {
            None => true,
            Some(&a) => {
                !(alnum(a)
                    || a == b'_'
                    || a == b'@'
                    || ((a == b'.' || a == b'-') && b.get(end + 1).is_some_and(|x| alnum(*x))))
            }
        };
        if after_ok && is_phone(&s[i..end], hints) {
            out.push(Match {
                detector: Detector::Phone,
                start: i,
                end,
            });
            i = end;
        } else if c == b'(' {
            // `(020 7946 0958)`: the parenthesis wraps the number, try again inside it.
            i += 1;
        } else {
            i = j.max(i + 1);
        }
    }
}

fn is_phone(cand: &str, hints: KeyHints) -> bool {
    let digits: String = cand.chars().filter(|c| c.is_ascii_digit()).collect();
    let n = digits.len();
    // Parentheses must balance and wrap digits only.
    let opens = cand.matches('(').count();
    if opens != cand.matches(')').count() || opens > 1 {
        return false;
    }
    let groups: Vec<usize> = cand
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect();
    let has_sep = cand.len() > n + usize::from(cand.starts_with('+'));
    if let Some(rest) = cand.strip_prefix('+') {
        return (8..=15).contains(&n)
            && !rest.starts_with('0')
            && !(groups.len() == 4 && cand.contains('.') && groups.iter().all(|g| *g <= 3));
    }
    if hints.phone && (7..=15).contains(&n) {
        return true;
    }
    if !has_sep {
        return false;
    }
    let dots = cand.contains('.');
    let first = digits.as_bytes()[0];
    // North American: 3-3-4, optionally a leading 1.
    let nanp = match groups.as_slice() {
        [3, 3, 4] => (b'2'..=b'9').contains(&first),
        [1, 3, 3, 4] => first == b'1' && (b'2'..=b'9').contains(&digits.as_bytes()[1]),
        _ => false,
    };
    if nanp {
        return true;
    }
    // National with a trunk 0 and spaces: 10–11 digits in groups of 2–6.
    !dots
        && first == b'0'
        && (10..=11).contains(&n)
        && cand.contains(' ')
        && groups.len() >= 2
        && groups.iter().all(|g| (2..=6).contains(g))
}

// ---------------------------------------------------------------- IP addresses

/// IPv4 dotted quads (no leading zeros), excluding version strings.
pub fn find_ipv4(s: &str, hints: KeyHints, out: &mut Vec<Match>) {
    if hints.version {
        return;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        // Skip to the end of this digit run when it is not at a boundary.
        let ok_before = match before(b, i) {
            None => true,
            Some(p) if p.is_ascii_digit() || p == b'.' || alnum(p) || p == b'_' => false,
            Some(b'/') => i >= 2 && b[i - 2] == b'/',
            Some(_) => true,
        };
        let mut octets = 0;
        let mut j = i;
        let mut valid = true;
        loop {
            let os = j;
            while j < b.len() && b[j].is_ascii_digit() && j - os < 4 {
                j += 1;
            }
            let len = j - os;
            if len == 0 || len > 3 || (len > 1 && b[os] == b'0') {
                valid = false;
                break;
            }
            let v: u32 = s[os..j].parse().unwrap_or(999);
            if v > 255 {
                valid = false;
                break;
            }
            octets += 1;
            if octets == 4 {
                break;
            }
            if j < b.len() && b[j] == b'.' && b.get(j + 1).is_some_and(u8::is_ascii_digit) {
                j += 1;
            } else {
                valid = false;
                break;
            }
        }
        let ok_after = match b.get(j) {
            None => true,
            Some(&a) if a.is_ascii_digit() || alnum(a) || a == b'_' => false,
            Some(b'.') | Some(b'-') => !b.get(j + 1).is_some_and(|x| alnum(*x)),
            Some(_) => true,
        };
        if valid && octets == 4 && ok_before && ok_after {
            out.push(Match {
                detector: Detector::Ipv4,
                start,
                end: j,
            });
            i = j;
        } else {
            // Move past this run of digits and dots.
            let mut k = i + 1;
            while k < b.len() && (b[k].is_ascii_digit() || b[k] == b'.') {
                k += 1;
            }
            i = k;
        }
    }
}

/// IPv6 addresses (validated by the standard library's parser), at least four hex digits.
pub fn find_ipv6(s: &str, hints: KeyHints, out: &mut Vec<Match>) {
    if hints.version {
        return;
    }
    let b = s.as_bytes();
    let tok = |c: u8| c.is_ascii_hexdigit() || c == b':' || c == b'.';
    let mut i = 0;
    while i < b.len() {
        if !tok(b[i]) || before(b, i).is_some_and(|p| alnum(p) || p == b'_' || tok(p)) {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && tok(b[j]) {
            j += 1;
        }
        let after_ok = b.get(j).is_none_or(|a| !(alnum(*a) || *a == b'_'));
        let mut end = j;
        while end > i && b[end - 1] == b'.' {
            end -= 1;
        }
        let cand = &s[i..end];
        let colons = cand.bytes().filter(|c| *c == b':').count();
        let hex = cand.bytes().filter(u8::is_ascii_hexdigit).count();
        if after_ok && colons >= 2 && hex >= 4 && cand.parse::<std::net::Ipv6Addr>().is_ok() {
            out.push(Match {
                detector: Detector::Ipv6,
                start: i,
                end,
            });
        }
        i = j.max(i + 1);
    }
}

// ---------------------------------------------------------------- cards

/// Luhn checksum over ASCII digits.
pub fn luhn_ok(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The card issuer for a digit string, by prefix and length.
pub fn card_issuer(d: &str) -> Option<&'static str> {
    let n = d.len();
    let p = |k: usize| -> u32 { d.get(..k).and_then(|x| x.parse().ok()).unwrap_or(0) };
    if d.starts_with('4') && matches!(n, 13 | 16 | 19) {
        return Some("visa");
    }
    if n == 16 && ((51..=55).contains(&p(2)) || (2221..=2720).contains(&p(4))) {
        return Some("mastercard");
    }
    if n == 15 && matches!(p(2), 34 | 37) {
        return Some("amex");
    }
    if (16..=19).contains(&n) && (p(4) == 6011 || p(2) == 65 || (644..=649).contains(&p(3))) {
        return Some("discover");
    }
    if (16..=19).contains(&n) && (3528..=3589).contains(&p(4)) {
        return Some("jcb");
    }
    if (14..=16).contains(&n) && ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39)) {
        return Some("diners");
    }
    if (16..=19).contains(&n) && p(2) == 62 {
        return Some("unionpay");
    }
    None
}

/// Payment card numbers: 13–19 digits (single spaces or dashes between groups allowed),
/// Luhn-valid, with a known issuer prefix.
pub fn find_cards(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // After a `+` it is an international phone number, not a card.
        if !b[i].is_ascii_digit()
            || before(b, i).is_some_and(|p| alnum(p) || p == b'_' || p == b'+')
        {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = Vec::with_capacity(19);
        while j < b.len() {
            if b[j].is_ascii_digit() {
                digits.push(b[j]);
                j += 1;
            } else if matches!(b[j], b' ' | b'-')
                && b.get(j + 1).is_some_and(u8::is_ascii_digit)
                && b[j - 1].is_ascii_digit()
            {
                j += 1;
            } else {
                break;
            }
        }
        let after_ok = b.get(j).is_none_or(|a| !(alnum(*a) || *a == b'_'));
        let d = String::from_utf8_lossy(&digits);
        if after_ok
            && (13..=19).contains(&digits.len())
            && luhn_ok(&digits)
            && card_issuer(&d).is_some()
        {
            out.push(Match {
                detector: Detector::CreditCard,
                start: i,
                end: j,
            });
        }
        i = j.max(i + 1);
    }
}

// ---------------------------------------------------------------- IBAN

/// IBAN lengths by country.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VG", 24),
    ("XK", 20),
];

/// ISO 13616 check: move the first four characters to the end, letters to numbers, mod 97.
pub fn iban_ok(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 15 || !b.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut rem = 0u32;
    for &c in b[4..].iter().chain(b[..4].iter()) {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// IBANs, compact or in groups of four, any case, with a valid length and mod-97 checksum.
pub fn find_ibans(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 15 <= b.len() {
        let ok_start = b[i].is_ascii_alphabetic()
            && b[i + 1].is_ascii_alphabetic()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && before(b, i).is_none_or(|p| !(alnum(p) || p == b'_'));
        if !ok_start {
            i += 1;
            continue;
        }
        let cc = s[i..i + 2].to_ascii_uppercase();
        let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == cc) else {
            i += 1;
            continue;
        };
        let mut compact = String::with_capacity(len);
        let mut j = i;
        while j < b.len() && compact.len() < len {
            if b[j].is_ascii_alphanumeric() {
                compact.push(b[j].to_ascii_uppercase() as char);
                j += 1;
            } else if b[j] == b' ' && j > i && b[j - 1] != b' ' {
                j += 1;
            } else {
                break;
            }
        }
        let after_ok = b.get(j).is_none_or(|a| !(alnum(*a) || *a == b'_'));
        if compact.len() == len && after_ok && iban_ok(&compact) {
            out.push(Match {
                detector: Detector::Iban,
                start: i,
                end: j,
            });
            i = j;
        } else {
            i += 1;
        }
    }
}

// ---------------------------------------------------------------- US SSN

/// Whether area/group/serial are in issued ranges (not 000, 666 or 9xx; not 00; not 0000).
pub fn ssn_valid(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// US social security numbers `123-45-6789` or `123 45 6789`; under an `ssn` key also nine
/// bare digits.
pub fn find_ssns(s: &str, hints: KeyHints, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 9 <= b.len() {
        if !b[i].is_ascii_digit()
            || before(b, i).is_some_and(|p| alnum(p) || matches!(p, b'_' | b'-' | b'.'))
        {
            i += 1;
            continue;
        }
        let d = |k: usize| b.get(k).is_some_and(u8::is_ascii_digit);
        let (end, parts) = if i + 11 <= b.len()
            && (0..3).all(|k| d(i + k))
            && matches!(b[i + 3], b'-' | b' ')
            && d(i + 4)
            && d(i + 5)
            && b[i + 6] == b[i + 3]
            && (7..11).all(|k| d(i + k))
        {
            (i + 11, (&s[i..i + 3], &s[i + 4..i + 6], &s[i + 7..i + 11]))
        } else if hints.ssn && (0..9).all(|k| d(i + k)) {
            (i + 9, (&s[i..i + 3], &s[i + 3..i + 5], &s[i + 5..i + 9]))
        } else {
            i += 1;
            continue;
        };
        let after_ok = b
            .get(end)
            .is_none_or(|a| !(alnum(*a) || matches!(*a, b'_' | b'-')));
        let n = |x: &str| x.parse::<u32>().unwrap_or(0);
        if after_ok && ssn_valid(n(parts.0), n(parts.1), n(parts.2)) {
            out.push(Match {
                detector: Detector::UsSsn,
                start: i,
                end,
            });
            i = end;
        } else {
            i += 1;
        }
    }
}

// ---------------------------------------------------------------- tokens and keys

fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// JSON Web Tokens: `eyJ…` header and payload, a signature (possibly empty).
pub fn find_jwts(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    static EYJ: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"eyJ"));
    for start in EYJ.find_iter(b) {
        if before(b, start).is_some_and(|p| b64url(p) || p == b'.') {
            continue;
        }
        let part = |from: usize| {
            let mut k = from;
            while k < b.len() && b64url(b[k]) {
                k += 1;
            }
            k
        };
        let h_end = part(start);
        if h_end - start < 10 || b.get(h_end) != Some(&b'.') {
            continue;
        }
        let p_start = h_end + 1;
        let p_end = part(p_start);
        if p_end - p_start < 10 || !b[p_start..].starts_with(b"eyJ") || b.get(p_end) != Some(&b'.')
        {
            continue;
        }
        let end = part(p_end + 1);
        if b.get(end).is_some_and(|a| *a == b'.') {
            continue;
        }
        out.push(Match {
            detector: Detector::Jwt,
            start,
            end,
        });
    }
}

/// `Bearer <token>` (any case), a token of at least 16 characters.
pub fn find_bearer(s: &str, out: &mut Vec<Match>) {
    if memchr::memchr2(b'b', b'B', s.as_bytes()).is_none() {
        return;
    }
    let lower = s.to_ascii_lowercase();
    let b = s.as_bytes();
    static BEARER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"bearer"));
    for start in BEARER.find_iter(lower.as_bytes()) {
        if before(b, start).is_some_and(alnum) {
            continue;
        }
        let mut k = start + 6;
        let spaces = k;
        while k < b.len() && b[k] == b' ' {
            k += 1;
        }
        if k == spaces {
            continue;
        }
        let t = k;
        while k < b.len()
            && (b[k].is_ascii_alphanumeric()
                || matches!(b[k], b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-'))
        {
            k += 1;
        }
        if k - t >= 16 {
            out.push(Match {
                detector: Detector::BearerToken,
                start,
                end: k,
            });
        }
    }
}

/// (prefix, minimum characters after it, maximum or 0 for no limit, upper-case alphanumeric only)
const KEY_PREFIXES: &[(&str, usize, usize, bool)] = &[
    ("sk_live_", 16, 0, false),
    ("sk_test_", 16, 0, false),
    ("rk_live_", 16, 0, false),
    ("rk_test_", 16, 0, false),
    ("whsec_", 24, 0, false),
    ("AKIA", 16, 16, true),
    ("ASIA", 16, 16, true),
    ("ghp_", 30, 0, false),
    ("gho_", 30, 0, false),
    ("ghu_", 30, 0, false),
    ("ghs_", 30, 0, false),
    ("ghr_", 30, 0, false),
    ("github_pat_", 22, 0, false),
    ("glpat-", 20, 0, false),
    ("xoxb-", 10, 0, false),
    ("xoxp-", 10, 0, false),
    ("xoxa-", 10, 0, false),
    ("xoxr-", 10, 0, false),
    ("xoxs-", 10, 0, false),
    ("xoxe-", 10, 0, false),
    ("AIza", 35, 35, false),
    ("sk-proj-", 20, 0, false),
    ("sk-ant-", 20, 0, false),
    ("sk-", 32, 0, false),
    ("npm_", 36, 36, false),
    ("shpat_", 32, 32, false),
    ("shpss_", 32, 32, false),
    ("SG.", 20, 0, false),
];

/// The known vendor prefix `v` starts with, if any.
pub fn key_prefix(v: &str) -> Option<&'static str> {
    KEY_PREFIXES
        .iter()
        .map(|k| k.0)
        .filter(|p| v.starts_with(p))
        .max_by_key(|p| p.len())
}

/// One searcher per key prefix, built once (building them per value cost more than searching).
static KEY_FINDERS: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
    std::sync::LazyLock::new(|| {
        KEY_PREFIXES
            .iter()
            .map(|k| memchr::memmem::Finder::new(k.0.as_bytes()))
            .collect()
    });

/// The first two bytes of every key prefix, as a 64K-bit set: a value holding none of these
/// pairs holds no key, which one pass over its bytes tells.
static KEY_PAIRS: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(|| {
    let mut bits = vec![0u64; 1024];
    for (p, ..) in KEY_PREFIXES {
        let b = p.as_bytes();
        let k = usize::from(b[0]) << 8 | usize::from(b[1]);
        bits[k >> 6] |= 1 << (k & 63);
    }
    bits
});

/// API keys and secrets with a known vendor prefix.
pub fn find_api_keys(s: &str, out: &mut Vec<Match>) {
    let b = s.as_bytes();
    let pairs = &*KEY_PAIRS;
    if !b.windows(2).any(|w| {
        let k = usize::from(w[0]) << 8 | usize::from(w[1]);
        pairs[k >> 6] & (1 << (k & 63)) != 0
    }) {
        return;
    }
    for (&(prefix, min, max, upper), finder) in KEY_PREFIXES.iter().zip(KEY_FINDERS.iter()) {
        for start in finder.find_iter(b) {
            if before(b, start).is_some_and(|p| alnum(p) || p == b'_' || p == b'-') {
                continue;
            }
            let mut k = start + prefix.len();
            let body = k;
            while k < b.len()
                && (if upper {
                    b[k].is_ascii_uppercase() || b[k].is_ascii_digit()
                } else {
                    b64url(b[k]) || (prefix == "SG." && b[k] == b'.')
                })
            {
                k += 1;
            }
            let n = k - body;
            let after_ok = b.get(k).is_none_or(|a| !alnum(*a));
            if n >= min && (max == 0 || n == max) && after_ok {
                out.push(Match {
                    detector: Detector::ApiKey,
                    start,
                    end: k,
                });
            }
        }
    }
}

// ---------------------------------------------------------------- geolocation

/// A decimal number with at least four decimal places, and its value.
fn precise_decimal(t: &str) -> Option<f64> {
    let t = t.trim();
    let body = t.strip_prefix(['-', '+']).unwrap_or(t);
    let (int, frac) = body.split_once('.')?;
    if int.is_empty()
        || int.len() > 3
        || frac.len() < 4
        || !int.bytes().all(|c| c.is_ascii_digit())
        || !frac.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    t.parse().ok()
}

/// Precise coordinates: a latitude or longitude key with ≥ 4 decimals, or a
/// `51.50735, -0.12776` pair in a string.
pub fn find_geo(s: &str, hints: KeyHints, out: &mut Vec<Match>) {
    if hints.latitude || hints.longitude {
        let limit = if hints.latitude { 90.0 } else { 180.0 };
        if precise_decimal(s).is_some_and(|v| v.abs() <= limit) {
            out.push(Match {
                detector: Detector::Geolocation,
                start: 0,
                end: s.len(),
            });
            return;
        }
    }
    let b = s.as_bytes();
    for comma in memchr::memchr_iter(b',', b) {
        let num = |c: u8| c.is_ascii_digit() || c == b'.' || c == b'-' || c == b'+';
        let mut l = comma;
        while l > 0 && num(b[l - 1]) {
            l -= 1;
        }
        let mut r = comma + 1;
        while r < b.len() && b[r] == b' ' {
            r += 1;
        }
        let rs = r;
        while r < b.len() && num(b[r]) {
            r += 1;
        }
        let boundary = before(b, l).is_none_or(|p| !alnum(p))
            && b.get(r).is_none_or(|a| !alnum(*a) && *a != b',');
        if !boundary || l == comma || rs == r {
            continue;
        }
        if let (Some(lat), Some(lng)) = (precise_decimal(&s[l..comma]), precise_decimal(&s[rs..r]))
        {
            if lat.abs() <= 90.0 && lng.abs() <= 180.0 {
                out.push(Match {
                    detector: Detector::Geolocation,
                    start: l,
                    end: r,
                });
            }
        }
    }
}

// ---------------------------------------------------------------- all together

/// Every value detector over one (already decoded) string. Overlapping spans keep the
/// longest. Key-name detectors are not included (see [`KeyHints::key_detector`]).
pub fn detect(s: &str, hints: KeyHints, out: &mut Vec<Match>) {
    out.clear();
    let b = s.as_bytes();
    let has_digit = b.iter().any(u8::is_ascii_digit);
    if memchr::memchr(b'@', b).is_some() {
        find_emails(s, out);
    }
    if has_digit {
        find_phones(s, hints, out);
        find_cards(s, out);
        find_ssns(s, hints, out);
        find_ibans(s, out);
        if memchr::memchr(b'.', b).is_some() {
            find_ipv4(s, hints, out);
            find_geo(s, hints, out);
        }
        if memchr::memchr(b':', b).is_some() {
            find_ipv6(s, hints, out);
        }
    }
    if s.len() >= 20 {
        find_jwts(s, out);
        find_bearer(s, out);
        find_api_keys(s, out);
    }
    if out.len() > 1 {
        // Longest first, then drop anything overlapping a kept span.
        out.sort_by(|x, y| {
            (y.end - y.start)
                .cmp(&(x.end - x.start))
                .then(x.start.cmp(&y.start))
        });
        let mut kept: Vec<Match> = Vec::with_capacity(out.len());
        for m in out.drain(..) {
            if !kept.iter().any(|k| m.start < k.end && k.start < m.end) {
                kept.push(m);
            }
        }
        kept.sort_by_key(|m| m.start);
        *out = kept;
    }
}

/// Detect in a raw value: percent-decoded first. Returns the decoded text the spans refer to.
pub fn detect_value<'a>(
    raw: &'a str,
    hints: KeyHints,
    out: &mut Vec<Match>,
) -> std::borrow::Cow<'a, str> {
    let decoded = percent_decode(raw);
    detect(&decoded, hints, out);
    decoded
}

/// The detectors found in one value under `key` (value detectors and the key-name detector),
/// sorted and deduplicated. A convenience for tests and callers without a hot loop.
pub fn detectors_in(key: &str, value: &str) -> Vec<Detector> {
    let hints = key_hints(key);
    let mut m = Vec::new();
    detect_value(value, hints, &mut m);
    let mut d: Vec<Detector> = m.iter().map(|m| m.detector).collect();
    if let Some(k) = hints.key_detector {
        if !value.trim().is_empty() {
            d.push(k);
        }
    }
    d.sort();
    d.dedup();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use Detector::*;

    fn found(key: &str, value: &str) -> Vec<Detector> {
        detectors_in(key, value)
    }

    /// The matched text for one detector.
    fn spans(key: &str, value: &str, d: Detector) -> Vec<String> {
        let mut m = Vec::new();
        let decoded = detect_value(value, key_hints(key), &mut m);
        m.iter()
            .filter(|x| x.detector == d)
            .map(|x| decoded[x.start..x.end].to_string())
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            spans("e", "jane.doe@example.com", Email),
            ["jane.doe@example.com"]
        );
        assert_eq!(
            spans("e", "Mail: <JANE+x@Mail.Example.CO.UK>.", Email),
            ["JANE+x@Mail.Example.CO.UK"]
        );
        assert_eq!(
            spans("e", "jane%40example.com", Email),
            ["jane@example.com"]
        );
        // In a URL query: reported (documented decision).
        assert_eq!(
            spans(
                "$current_url",
                "https://a.io/invite?email=jo%40b.org&x=1",
                Email
            ),
            ["jo@b.org"]
        );
        // Near misses.
        for v in [
            "logo@2x.png",
            "https://user@git.example.com/repo",
            "https://user:pw@host.example.com/",
            "@handle",
            "a@b",
            "x@localhost",
            "name at example dot com",
            "a..b@example.com",
        ] {
            assert!(spans("e", v, Email).is_empty(), "{v}");
        }
    }

    #[test]
    fn phones() {
        for v in [
            "+14155552671",
            "+1 (415) 555-2671",
            "(415) 555-2671",
            "415-555-2671",
            "415.555.2671",
            "1-800-555-0199",
            "+44 20 7946 0958",
            "020 7946 0958",
            "07700 900123",
            "06 12 34 56 78",
            "call +33 6 12 34 56 78 today",
        ] {
            assert_eq!(found("contact", v), [Phone], "{v}");
        }
        assert_eq!(found("phone_number", "4155552671"), [Phone]);
        assert_eq!(found("Mobile-Phone", "0044 7700900123"), [Phone]);
        for v in [
            "4155552671",
            "2024-01-15",
            "1694769302325",
            "10:15:02",
            "ORD-2024-000123",
            "1,234.56",
            "+0123456789",
            "555-1234",
            "v415-555-2671",
            "id_415-555-2671",
        ] {
            assert!(!found("contact", v).contains(&Phone), "{v}");
        }
    }

    #[test]
    fn ips_and_versions() {
        assert_eq!(spans("$ip", "203.0.113.7", Ipv4), ["203.0.113.7"]);
        assert_eq!(
            spans("x", "client 10.7.63.218, proxy", Ipv4),
            ["10.7.63.218"]
        );
        assert_eq!(
            spans("url", "http://192.168.0.1/admin", Ipv4),
            ["192.168.0.1"]
        );
        assert_eq!(
            spans(
                "ip",
                "::ffff:127.0.0.1 or [2001:db8::8a2e:370:7334]:443",
                Ipv6
            )
            .len(),
            2
        );
        assert_eq!(found("x", "FE80::1FF:FE23:4567:890A"), [Ipv6]);
        // Versions and other dotted things.
        assert!(found("app_version", "1.2.3.4").is_empty());
        assert!(found("$os_version", "10.15.7.1").is_empty());
        for v in [
            "v1.2.3.4",
            "Chrome/106.0.0.0 Safari/537.36",
            "1.2.3.4-beta",
            "256.1.1.1",
            "1.2.3",
            "01.02.03.04",
            "1.2.3.4.5",
            "00:1a:2b:3c:4d:5e",
            "10:15:02",
            "std::vector",
        ] {
            let f = found("x", v);
            assert!(!f.contains(&Ipv4) && !f.contains(&Ipv6), "{v}: {f:?}");
        }
    }

    #[test]
    fn cards() {
        for v in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4111-1111-1111-1111",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "card: 4012888888881881.",
        ] {
            assert_eq!(found("payment", v), [CreditCard], "{v}");
        }
        assert!(luhn_ok(b"79927398713"));
        for v in [
            "4242424242424241", // Luhn fails
            "4242 4242 4242 4243",
            "1234567812345670", // Luhn passes, no issuer
            "9242424242424242",
            "42424242424242424242", // too long
            "x4242424242424242",
        ] {
            assert!(!found("payment", v).contains(&CreditCard), "{v}");
        }
        assert_eq!(card_issuer("378282246310005"), Some("amex"));
        assert_eq!(card_issuer("5555555555554444"), Some("mastercard"));
    }

    #[test]
    fn ibans() {
        for v in [
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "gb82 west 1234 5698 7654 32",
            "DE89 3704 0044 0532 0130 00",
            "IBAN: FR1420041010050500013M02606.",
            "NL91ABNA0417164300",
        ] {
            assert_eq!(found("bank", v), [Iban], "{v}");
        }
        for v in [
            "GB83WEST12345698765432", // checksum
            "GB82WEST1234569876543",  // length
            "ZZ82WEST12345698765432", // country
            "XGB82WEST12345698765432",
        ] {
            assert!(!found("bank", v).contains(&Iban), "{v}");
        }
    }

    #[test]
    fn ssns() {
        assert_eq!(found("x", "SSN 123-45-6789"), [UsSsn]);
        assert_eq!(found("x", "123 45 6789"), [UsSsn]);
        assert!(found("ssn", "123456789").contains(&UsSsn));
        for v in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "123-45-678",
            "123-45 6789",
            "9123-45-6789",
        ] {
            assert!(!found("x", v).contains(&UsSsn), "{v}");
        }
        assert!(!found("x", "123456789").contains(&UsSsn));
    }

    #[test]
    fn tokens_and_keys() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        assert_eq!(found("x", jwt), [Jwt]);
        assert_eq!(
            found("headers", &format!("Authorization: Bearer {jwt}")),
            [BearerToken]
        );
        assert_eq!(found("h", "bearer abcdefghijklmnop1234"), [BearerToken]);
        assert!(found("h", "Bearer short").is_empty());
        for v in [
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "AKIAIOSFODNN7EXAMPLE",
            "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            "gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
            "xoxp-1234567890-abcdefghij",
            "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        ] {
            assert_eq!(found("config", v), [ApiKey], "{v}");
        }
        for v in [
            "phc_qgUFp5wz2BjC4RsFjMGpQ3PGDrsi6Q0CG0CP4NAac0I",
            "sk_live_short",
            "AKIA1234",
            "task_live_4eC39HqLyjWDarjtT1zdp7dc",
            "eyJhbGciOiJIUzI1NiJ9",
        ] {
            assert!(found("config", v).is_empty(), "{v}");
        }
    }

    #[test]
    fn geolocation() {
        assert_eq!(found("lat", "51.50735"), [Geolocation]);
        assert_eq!(found("$geoip_longitude", "-0.1278"), [Geolocation]);
        assert_eq!(found("where", "at 51.50735, -0.12776 today"), [Geolocation]);
        for (k, v) in [
            ("lat", "51.5"),
            ("lat", "123.45678"),
            ("x", "51.5, -0.1"),
            ("x", "1.23456"),
            ("price", "12.3456"),
        ] {
            assert!(!found(k, v).contains(&Geolocation), "{k}={v}");
        }
    }

    #[test]
    fn key_names() {
        for (k, d) in [
            ("first_name", PersonName),
            ("LastName", PersonName),
            ("$full-name", PersonName),
            ("billing_first_name", PersonName),
            ("dob", BirthDate),
            ("Birthday", BirthDate),
            ("address", PostalAddress),
            ("street", PostalAddress),
            ("zip", PostalCode),
            ("$geoip_postal_code", PostalCode),
            ("passport", GovernmentId),
            ("tax_id", GovernmentId),
            ("SSN", GovernmentId),
            ("password", Credential),
        ] {
            assert_eq!(key_hints(k).key_detector, Some(d), "{k}");
        }
        for k in [
            "name",
            "event",
            "zipper",
            "username",
            "token",
            "$browser",
            "street_view_enabled",
            "ip_address",
            "$context.ip_address",
            "mac_address",
            "email_address",
        ] {
            assert_eq!(key_hints(k).key_detector, None, "{k}");
        }
        // Empty values are not findings.
        assert!(found("first_name", "  ").is_empty());
    }

    #[test]
    fn percent_decoding_and_overlaps() {
        assert_eq!(percent_decode("a%40b%2Ec"), "a@b.c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        // An email made of digits is not also a phone.
        assert_eq!(found("x", "+14155552671@sms.example.com"), [Email]);
    }
}
