//! Masked renderings of detected values: enough to recognise the kind and tell samples apart,
//! never enough to recover the value. Masks never match a detector again (bullets and
//! asterisks are not characters any detector accepts), which the redacted export relies on.

use super::detect::Detector;

const DOT: char = '•';

/// `jane.doe@example.com` → `j*******@e******.com`.
fn email(v: &str) -> String {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return generic(v);
    };
    let (host, tld) = domain.rsplit_once('.').unwrap_or((domain, ""));
    let stars = |s: &str| -> String {
        let mut c = s.chars();
        match c.next() {
            Some(f) => std::iter::once(f).chain(c.map(|_| '*')).collect(),
            None => String::new(),
        }
    };
    format!("{}@{}.{}", stars(local), stars(host), tld)
}

/// Every digit but the last `keep` becomes a bullet; separators and `+` stay.
fn digits_tail(v: &str, keep: usize) -> String {
    let total = v.chars().filter(char::is_ascii_digit).count();
    let mut seen = 0;
    v.chars()
        .map(|c| {
            if c.is_ascii_digit() {
                seen += 1;
                if seen + keep > total {
                    c
                } else {
                    DOT
                }
            } else {
                c
            }
        })
        .collect()
}

/// `4242 4242 4242 4242` → `•••• •••• •••• 4242` (regrouped in fours).
fn card(v: &str) -> String {
    let d: Vec<char> = v.chars().filter(char::is_ascii_digit).collect();
    let n = d.len();
    let mut out = String::new();
    for (i, c) in d.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(if i + 4 >= n { *c } else { DOT });
    }
    out
}

/// The first character, then bullets (at most eight).
pub fn generic(v: &str) -> String {
    let mut c = v.chars();
    match c.next() {
        Some(f) => {
            let rest = c.count().min(8);
            std::iter::once(f)
                .chain(std::iter::repeat_n(DOT, rest))
                .collect()
        }
        None => String::new(),
    }
}

/// Mask a matched value for `detector`.
pub fn mask(detector: Option<Detector>, v: &str) -> String {
    match detector {
        Some(Detector::Email) => email(v),
        Some(Detector::Phone) => digits_tail(v, 2),
        Some(Detector::CreditCard) => card(v),
        Some(Detector::UsSsn) => digits_tail(v, 4),
        Some(Detector::Ipv4) => match v.split_once('.') {
            Some((first, _)) => format!("{first}.{DOT}.{DOT}.{DOT}"),
            None => generic(v),
        },
        Some(Detector::Ipv6) => match v.split_once(':') {
            Some((first, _)) => format!("{first}:{DOT}{DOT}{DOT}"),
            None => generic(v),
        },
        Some(Detector::Iban) => {
            let compact: Vec<char> = v.chars().filter(|c| !c.is_whitespace()).collect();
            let n = compact.len();
            compact
                .iter()
                .enumerate()
                .map(|(i, c)| if i < 2 || i + 4 >= n { *c } else { DOT })
                .collect()
        }
        Some(Detector::Jwt) => format!("eyJ{DOT}{DOT}{DOT} (JWT, {} chars)", v.len()),
        Some(Detector::BearerToken) => format!("Bearer {DOT}{DOT}{DOT}{DOT}"),
        Some(Detector::ApiKey) => {
            // Keep the vendor prefix: it says whose key leaked.
            let head = super::detect::key_prefix(v).unwrap_or("");
            format!("{head}{DOT}{DOT}{DOT}{DOT}")
        }
        Some(Detector::Geolocation) => v
            .split(',')
            .map(|part| {
                let t = part.trim();
                match t.split_once('.') {
                    Some((int, frac)) => {
                        let first: String = frac.chars().take(1).collect();
                        format!("{int}.{first}{DOT}{DOT}{DOT}")
                    }
                    None => generic(t),
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => generic(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_look_as_documented() {
        assert_eq!(
            mask(Some(Detector::Email), "john@example.com"),
            "j***@e******.com"
        );
        assert_eq!(
            mask(Some(Detector::CreditCard), "4242-4242-4242-4242"),
            "•••• •••• •••• 4242"
        );
        assert_eq!(
            mask(Some(Detector::Phone), "+44 20 7946 0958"),
            "+•• •• •••• ••58"
        );
        assert_eq!(mask(Some(Detector::UsSsn), "123-45-6789"), "•••-••-6789");
        assert_eq!(mask(Some(Detector::Ipv4), "203.0.113.7"), "203.•.•.•");
        assert_eq!(
            mask(Some(Detector::ApiKey), "sk_live_abcdefghijklmnop"),
            "sk_live_••••"
        );
        assert_eq!(
            mask(Some(Detector::Iban), "GB82 WEST 1234 5698 7654 32"),
            "GB••••••••••••••••5432"
        );
        assert_eq!(
            mask(Some(Detector::Geolocation), "51.50735, -0.12776"),
            "51.5•••, -0.1•••"
        );
        assert_eq!(mask(None, "Jane"), "J•••");
        assert_eq!(mask(None, ""), "");
    }
}
