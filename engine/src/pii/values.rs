//! The original values a redacted export must not carry: every value at a redacted field's
//! path and every span a redacted detector flags, gathered from the source before anything is
//! written. The redaction replaces them wherever they appear in the output (other fields'
//! text, keys, event names, raw records); the verification searches the written files for
//! them.
//!
//! What counts as an occurrence (both steps use this definition): a value of at least
//! [`MIN_SPREAD`] characters (not a short number, not `true`/`false`/`null`) anywhere in any
//! string, compared ASCII-case-insensitively, as long as it does not cut a word (the
//! characters on either side of a match are not letters or digits continuing it); its
//! percent-encoded forms (`carl%40example.com`) count too. Shorter values carry no identity
//! of their own outside their field: they are redacted, and checked, at the path they came
//! from only.
//!
//! Memory: the values are held once each (a hash map while gathering, then a list and an
//! Aho-Corasick automaton over them); never rows.

use std::collections::HashMap;

use aho_corasick::AhoCorasick;

use super::detect::{detect_value, KeyHints};
use super::mask::mask;
use crate::{EngineError, Result};

/// Values shorter than this (in characters) are matched only at their own path.
pub(crate) const MIN_SPREAD: usize = 4;

/// Whether a value is matched wherever it appears, not only at its own path.
pub(crate) fn spreads(v: &str) -> bool {
    let n = v.chars().count();
    n >= MIN_SPREAD
        && !(n < 6 && v.bytes().all(|b| b.is_ascii_digit()))
        && !["true", "false", "null"]
            .iter()
            .any(|w| v.eq_ignore_ascii_case(w))
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether `text[start..end]` is an occurrence: it does not cut a word at either end.
pub(crate) fn at_boundary(text: &str, start: usize, end: usize) -> bool {
    let (Some(inner), Some(before), Some(after)) =
        (text.get(start..end), text.get(..start), text.get(end..))
    else {
        return false;
    };
    let cuts_start = before.chars().next_back().is_some_and(is_word)
        && inner.chars().next().is_some_and(is_word);
    let cuts_end =
        after.chars().next().is_some_and(is_word) && inner.chars().next_back().is_some_and(is_word);
    !cuts_start && !cuts_end
}

/// The forms of a value searched for: itself and its percent-encoded spellings (every
/// reserved byte encoded; only `@` encoded; spaces as `+`).
pub(crate) fn spellings(v: &str) -> Vec<String> {
    let mut out = vec![v.to_string()];
    let mut full = String::with_capacity(v.len() * 3);
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            full.push(char::from(b));
        } else {
            full.push_str(&format!("%{b:02X}"));
        }
    }
    for s in [
        full,
        v.replace('@', "%40"),
        v.replace(' ', "+").replace('@', "%40"),
    ] {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

/// A masked rendering of an original value, for reports: as its kind when a detector
/// recognises the whole value, else the first character and bullets.
pub(crate) fn sample(v: &str) -> String {
    let mut m = Vec::new();
    let decoded = detect_value(v, KeyHints::default(), &mut m);
    if m.len() == 1 && m[0].start == 0 && m[0].end == decoded.len() {
        mask(Some(m[0].detector), &decoded)
    } else {
        mask(None, v)
    }
}

/// The rules that redact one value: the first (lowest index, whose action the value gets
/// wherever no other rule applies) and all of them (the first 64, as bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Claim {
    pub first: u16,
    pub all: u64,
}

impl Claim {
    fn of(rule: usize) -> Self {
        Claim {
            first: rule.min(usize::from(u16::MAX)) as u16,
            all: if rule < 64 { 1 << rule } else { 0 },
        }
    }
    fn join(&mut self, o: Claim) {
        self.first = self.first.min(o.first);
        self.all |= o.all;
    }
    /// Every rule claiming the value.
    pub(crate) fn rules(self) -> impl Iterator<Item = usize> {
        let first = usize::from(self.first);
        std::iter::once(first)
            .chain((0..64).filter(move |r| *r != first && self.all & (1 << r) != 0))
    }
}

/// Values being gathered (one worker's, or all merged), with the rules that redact each.
#[derive(Default)]
pub(crate) struct Found {
    spread: HashMap<Box<str>, Claim>,
    /// Short values by the path they sit at.
    exact: HashMap<String, HashMap<Box<str>, Claim>>,
}

impl Found {
    pub(crate) fn add(&mut self, path: &str, value: &str, rule: usize) {
        let claim = Claim::of(rule);
        let v = value.trim();
        if v.is_empty() {
            return;
        }
        if spreads(v) {
            claim_in(&mut self.spread, v, claim);
            return;
        }
        if !self.exact.contains_key(path) {
            self.exact.insert(path.to_string(), HashMap::new());
        }
        if let Some(m) = self.exact.get_mut(path) {
            claim_in(m, value, claim);
        }
    }

    pub(crate) fn merge(&mut self, other: Found) {
        for (v, c) in other.spread {
            self.spread.entry(v).or_insert(c).join(c);
        }
        for (p, m) in other.exact {
            let mine = self.exact.entry(p).or_default();
            for (v, c) in m {
                mine.entry(v).or_insert(c).join(c);
            }
        }
    }
}

fn claim_in(m: &mut HashMap<Box<str>, Claim>, v: &str, claim: Claim) {
    match m.get_mut(v) {
        Some(c) => c.join(claim),
        None => {
            m.insert(v.into(), claim);
        }
    }
}

/// The gathered values, ready to search for.
pub(crate) struct Values {
    /// Values matched anywhere, sorted, and the rules of each.
    values: Vec<Box<str>>,
    claims: Vec<Claim>,
    /// Short values: path → value → rules.
    exact: HashMap<String, HashMap<Box<str>, Claim>>,
    /// Over every spelling of every value; pattern → value index in `pattern_value`.
    ac: Option<AhoCorasick>,
    pattern_value: Vec<u32>,
    /// The shortest pattern's length in bytes (no shorter text can hold one).
    shortest: usize,
}

impl Values {
    pub(crate) fn build(found: Found) -> Result<Self> {
        let mut pairs: Vec<(Box<str>, Claim)> = found.spread.into_iter().collect();
        pairs.sort();
        let (values, claims): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let mut v = Values {
            values,
            claims,
            exact: found.exact,
            ac: None,
            pattern_value: Vec::new(),
            shortest: 0,
        };
        v.shortest = v.values.iter().map(|x| x.len()).min().unwrap_or(0);
        let (ac, pv) = v.automaton(false)?;
        v.ac = ac;
        v.pattern_value = pv;
        Ok(v)
    }

    /// An automaton over every spelling of the values matched anywhere, and over the short
    /// values too when `with_short` (their pattern ids come after the others'); each
    /// pattern's value index (short values: `u32::MAX`).
    pub(crate) fn automaton(&self, with_short: bool) -> Result<(Option<AhoCorasick>, Vec<u32>)> {
        let mut patterns = Vec::new();
        let mut owner = Vec::new();
        for (i, v) in self.values.iter().enumerate() {
            for s in spellings(v) {
                patterns.push(s);
                owner.push(i as u32);
            }
        }
        if with_short {
            let mut short: Vec<&str> = self
                .exact
                .values()
                .flat_map(|m| m.keys().map(|k| &**k))
                .filter(|k| !k.is_empty())
                .collect();
            short.sort_unstable();
            short.dedup();
            for s in short {
                patterns.push(s.to_string());
                owner.push(u32::MAX);
            }
        }
        if patterns.is_empty() {
            return Ok((None, owner));
        }
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&patterns)
            .map_err(|e| {
                EngineError::InvalidArgument(format!("indexing the values to redact: {e}"))
            })?;
        Ok((Some(ac), owner))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.exact.is_empty()
    }

    pub(crate) fn value(&self, i: u32) -> &str {
        self.values.get(i as usize).map_or("", |v| &**v)
    }

    /// The rule whose action value `i` gets.
    pub(crate) fn rule(&self, i: u32) -> usize {
        self.claims
            .get(i as usize)
            .map_or(0, |c| usize::from(c.first))
    }

    /// Every rule redacting value `i`.
    pub(crate) fn claim(&self, i: u32) -> Claim {
        self.claims
            .get(i as usize)
            .copied()
            .unwrap_or(Claim { first: 0, all: 1 })
    }

    /// The rules of a short value at `path`, if it is one.
    pub(crate) fn exact_claim(&self, path: &str, value: &str) -> Option<Claim> {
        self.exact.get(path).and_then(|m| m.get(value)).copied()
    }

    /// Distinct values per rule (of `n` rules).
    pub(crate) fn per_rule(&self, n: usize) -> Vec<i64> {
        let mut out = vec![0i64; n];
        let all = self
            .claims
            .iter()
            .chain(self.exact.values().flat_map(|m| m.values()));
        for c in all {
            for r in c.rules() {
                if let Some(x) = out.get_mut(r) {
                    *x += 1;
                }
            }
        }
        out
    }

    /// Whether `text` may hold a value (no word-boundary check): a cheap first look.
    pub(crate) fn may_hold(&self, text: &str) -> bool {
        text.len() >= self.shortest && self.ac.as_ref().is_some_and(|ac| ac.is_match(text))
    }

    /// The occurrences to replace in `text`: (start, end, value index), left to right, not
    /// overlapping (at one start the longest wins).
    pub(crate) fn occurrences(&self, text: &str, out: &mut Vec<(usize, usize, u32)>) {
        out.clear();
        let Some(ac) = &self.ac else { return };
        for m in ac.find_overlapping_iter(text) {
            if at_boundary(text, m.start(), m.end()) {
                if let Some(&v) = self.pattern_value.get(m.pattern().as_usize()) {
                    out.push((m.start(), m.end(), v));
                }
            }
        }
        if out.len() > 1 {
            out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let mut end = 0;
            out.retain(|m| {
                let keep = m.0 >= end;
                if keep {
                    end = m.1;
                }
                keep
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(list: &[(&str, &str, usize)]) -> Values {
        let mut f = Found::default();
        for (p, v, r) in list {
            f.add(p, v, *r);
        }
        Values::build(f).unwrap_or_else(|e| panic!("{e}"))
    }

    fn found(v: &Values, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        v.occurrences(text, &mut out);
        out.iter()
            .map(|(s, e, _)| text[*s..*e].to_string())
            .collect()
    }

    #[test]
    fn occurrences_respect_words_case_and_encodings() {
        let v = values(&[
            ("properties.email", "carl@example.com", 0),
            ("distinct_id", "anon-1", 1),
            ("properties.age", "42", 2),
        ]);
        assert_eq!(
            found(&v, "invite sent to Carl@Example.com, cc carl%40example.com"),
            ["Carl@Example.com", "carl%40example.com"]
        );
        // A longer id is another id; a short value is not searched for outside its path.
        assert!(found(&v, "anon-10 is 42 years").is_empty());
        assert_eq!(found(&v, "id=anon-1;"), ["anon-1"]);
        assert_eq!(
            v.exact_claim("properties.age", "42").map(|c| c.first),
            Some(2)
        );
        assert_eq!(v.exact_claim("properties.other", "42"), None);
        assert_eq!(v.per_rule(3), [1, 1, 1]);
        assert!(v.may_hold("xCARL@EXAMPLE.COMx"));
        assert!(found(&v, "xcarl@example.com").is_empty());
        assert!(!v.may_hold("nothing here"));
    }

    #[test]
    fn the_first_rule_wins_and_spans_do_not_overlap() {
        let mut a = Found::default();
        a.add("p", "jane.doe@example.com", 3);
        let mut b = Found::default();
        b.add("q", "jane.doe@example.com", 1);
        b.add("q", "doe@example.com", 2);
        a.merge(b);
        let v = Values::build(a).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        v.occurrences("to jane.doe@example.com", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].0, out[0].1), (3, 23));
        assert_eq!(v.value(out[0].2), "jane.doe@example.com");
        assert_eq!(v.rule(out[0].2), 1);
        assert_eq!(v.claim(out[0].2).rules().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(v.per_rule(4), [0, 1, 1, 1]);
        assert_eq!(sample("jane.doe@example.com"), "j*******@e******.com");
    }

    #[test]
    fn short_numbers_and_literals_stay_at_their_path() {
        assert!(!spreads("12345") && spreads("123456") && !spreads("Bob"));
        assert!(!spreads("TRUE") && spreads("Jane"));
    }
}
