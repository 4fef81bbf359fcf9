//! JSON text to leaves without building a tree: one pass of serde_json's parser that writes
//! every scalar leaf's path, key and text into one reusable buffer.
//!
//! The walk is the scanner's: object keys are joined with `.`, array elements add `[]` and
//! keep their parent's key, numbers are rendered as serde_json renders them, strings are
//! unescaped, booleans and nulls are not leaves. Nothing is kept when the text is not JSON.
//! Every object key is also listed with its parent's path (keys can hold values too: an
//! email address used as a property name).

use std::fmt::Write;
use std::ops::Range;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The leaves of one JSON document. Reused between documents: no allocation once warm.
#[derive(Default)]
pub(crate) struct Flat {
    arena: String,
    path: String,
    leaves: Vec<[Range<u32>; 3]>,
    /// Object keys: (parent path, key), in the arena.
    keys: Vec<[Range<u32>; 2]>,
}

impl Flat {
    /// Parse `text`, rooted at `root`. False (and no leaves) when it is not one JSON value.
    pub(crate) fn parse(&mut self, root: &str, text: &str) -> bool {
        self.arena.clear();
        self.leaves.clear();
        self.keys.clear();
        self.path.clear();
        self.path.push_str(root);
        let mut de = serde_json::Deserializer::from_str(text);
        let key = 0..self.path.len();
        let ok = Walk { st: self, key }.deserialize(&mut de).is_ok() && de.end().is_ok();
        if !ok {
            self.leaves.clear();
            self.keys.clear();
        }
        ok
    }

    /// The number of object keys.
    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Key `i`: (its parent's path, the key).
    pub(crate) fn key(&self, i: usize) -> (&str, &str) {
        let [p, k] = &self.keys[i];
        let s = |r: &Range<u32>| &self.arena[r.start as usize..r.end as usize];
        (s(p), s(k))
    }

    fn push_key(&mut self, parent: usize, key: &Range<usize>) {
        let a = &mut self.arena;
        let p0 = a.len();
        a.push_str(&self.path[..parent]);
        let p1 = a.len();
        a.push_str(&self.path[key.clone()]);
        let k1 = a.len();
        self.keys.push([p0 as u32..p1 as u32, p1 as u32..k1 as u32]);
    }

    pub(crate) fn len(&self) -> usize {
        self.leaves.len()
    }

    /// Leaf `i`: (path, key, value).
    pub(crate) fn leaf(&self, i: usize) -> (&str, &str, &str) {
        let [p, k, v] = &self.leaves[i];
        let s = |r: &Range<u32>| &self.arena[r.start as usize..r.end as usize];
        (s(p), s(k), s(v))
    }

    fn push_leaf(&mut self, key: &Range<usize>, value: impl FnOnce(&mut String)) {
        let a = &mut self.arena;
        let p0 = a.len();
        a.push_str(&self.path);
        let p1 = a.len();
        a.push_str(&self.path[key.clone()]);
        let k1 = a.len();
        value(a);
        let v1 = a.len();
        self.leaves.push([
            p0 as u32..p1 as u32,
            p1 as u32..k1 as u32,
            k1 as u32..v1 as u32,
        ]);
    }
}

/// A value at the current path, under `key` (a range of the path).
struct Walk<'s> {
    st: &'s mut Flat,
    key: Range<usize>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.st.push_leaf(&self.key, |a| {
            let _ = write!(a, "{}", serde_json::Number::from(v));
        });
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.st.push_leaf(&self.key, |a| {
            let _ = write!(a, "{}", serde_json::Number::from(v));
        });
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        if let Some(n) = serde_json::Number::from_f64(v) {
            self.st.push_leaf(&self.key, |a| {
                let _ = write!(a, "{n}");
            });
        }
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.st.push_leaf(&self.key, |a| a.push_str(v));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let len = self.st.path.len();
        self.st.path.push_str("[]");
        while seq
            .next_element_seed(Walk {
                st: &mut *self.st,
                key: self.key.clone(),
            })?
            .is_some()
        {}
        self.st.path.truncate(len);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let len = self.st.path.len();
        loop {
            self.st.path.push('.');
            let start = self.st.path.len();
            if map.next_key_seed(Key(&mut self.st.path))?.is_none() {
                break;
            }
            let key = start..self.st.path.len();
            self.st.push_key(len, &key);
            map.next_value_seed(Walk {
                st: &mut *self.st,
                key,
            })?;
            self.st.path.truncate(len);
        }
        self.st.path.truncate(len);
        Ok(())
    }
}

/// An object key, appended to the path.
struct Key<'p>(&'p mut String);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The tree walk the scanner used before: the reference.
    fn tree(root: &str, text: &str) -> Option<Vec<(String, String, String)>> {
        fn walk(v: &Value, path: &mut String, key: &str, out: &mut Vec<(String, String, String)>) {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        let len = path.len();
                        path.push('.');
                        path.push_str(k);
                        walk(c, path, k, out);
                        path.truncate(len);
                    }
                }
                Value::Array(a) => {
                    let len = path.len();
                    path.push_str("[]");
                    for c in a {
                        walk(c, path, key, out);
                    }
                    path.truncate(len);
                }
                Value::String(s) => out.push((path.clone(), key.into(), s.clone())),
                Value::Number(n) => out.push((path.clone(), key.into(), n.to_string())),
                _ => {}
            }
        }
        let v: Value = serde_json::from_str(text).ok()?;
        let mut out = Vec::new();
        walk(&v, &mut root.to_string(), root, &mut out);
        out.sort();
        Some(out)
    }

    fn flat(root: &str, text: &str) -> Option<Vec<(String, String, String)>> {
        let mut f = Flat::default();
        if !f.parse(root, text) {
            return None;
        }
        let mut out: Vec<_> = (0..f.len())
            .map(|i| {
                let (p, k, v) = f.leaf(i);
                (p.to_string(), k.to_string(), v.to_string())
            })
            .collect();
        out.sort();
        Some(out)
    }

    #[test]
    fn same_leaves_as_the_tree_walk() {
        for text in [
            r#"{"$set":{"email":"a@b.io","n":5,"f":-0.12776,"big":1e300,"neg":-7},"t":true,"z":null}"#,
            r#"{"items":[{"sku":"A-1","to":"x\"y@z.io"},[1,[2.5]],"s"],"a.b":"dot","":"empty"}"#,
            r#"{"esc\u0041ped":"\u00e9t\u00e9 \\ \n","u":18446744073709551615,"i":-9223372036854775808}"#,
            r#""just a string""#,
            r#"[1,2,{"k":[]}]"#,
            "42",
            "{}",
        ] {
            assert_eq!(flat("properties", text), tree("properties", text), "{text}");
        }
        for bad in ["not json", "{\"a\":1} trailing", "{\"a\":", ""] {
            assert_eq!(flat("raw", bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_listed_with_their_parents() {
        let mut f = Flat::default();
        assert!(f.parse(
            "properties",
            r#"{"a@b.io":true,"n":{"x":null,"":[{"k":1}]}}"#
        ));
        let keys: Vec<_> = (0..f.key_count()).map(|i| f.key(i)).collect();
        assert_eq!(
            keys,
            [
                ("properties", "a@b.io"),
                ("properties", "n"),
                ("properties.n", "x"),
                ("properties.n", ""),
                ("properties.n.[]", "k"),
            ]
        );
        assert!(!f.parse("p", r#"{"a":"#));
        assert_eq!(f.key_count(), 0);
    }

    #[test]
    fn reused_between_documents() {
        let mut f = Flat::default();
        assert!(f.parse("p", r#"{"a":{"b":"1"}}"#));
        assert!(!f.parse("p", "{"));
        assert_eq!(f.len(), 0);
        assert!(f.parse("q", r#"{"c":["x"]}"#));
        assert_eq!(f.leaf(0), ("q.c[]", "c", "x"));
    }
}
