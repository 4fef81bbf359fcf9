//! Identity resolution (semantics.md §1): identify / alias / merge / device–user links are
//! replayed in (timestamp, import, line) order through a union-find, together with the first
//! appearance of every distinct id, under the workspace's identity mode. The result is the
//! `person_map` (distinct id → person) and a `merge_log` entry for every link, applied or
//! refused with its reason. Events are never rewritten: queries resolve persons through
//! `person_map`.

use std::collections::{HashMap, HashSet};

use duckdb::Connection;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::IdentityMode;
use crate::jobs::JobCtx;
use crate::Result;

/// Ids no merge may use (semantics.md §1.1, PostHog's `isDistinctIdIllegal`), plus their
/// quoted forms. Case-insensitive ones first.
const ILLEGAL_ANY_CASE: &[&str] = &[
    "anonymous",
    "guest",
    "distinctid",
    "distinct_id",
    "id",
    "not_authenticated",
    "email",
    "undefined",
    "true",
    "false",
];
const ILLEGAL_EXACT: &[&str] = &[
    "[object Object]",
    "NaN",
    "None",
    "none",
    "null",
    "0",
    "undefined",
];

/// Why an id cannot take part in a merge, if it cannot.
pub fn illegal_id(id: &str) -> Option<&'static str> {
    let t = id.trim();
    if t.is_empty() {
        return Some("an empty or whitespace-only id");
    }
    let unquoted = t
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| t.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(t);
    if ILLEGAL_ANY_CASE
        .iter()
        .any(|w| w.eq_ignore_ascii_case(unquoted))
        || ILLEGAL_EXACT.contains(&unquoted)
    {
        return Some("a placeholder id (such as null, undefined, anonymous or 0)");
    }
    None
}

/// A deterministic person id from the distinct id that created the person.
pub fn person_id_for(first_distinct_id: &str) -> String {
    let h = Sha256::digest(format!("stitchbook-person:{first_distinct_id}").as_bytes());
    let x: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// One identity link as replayed.
#[derive(Debug, Clone)]
pub struct Link {
    pub from: String,
    pub into: String,
    pub kind: String,
    pub ts_us: Option<i64>,
    pub import_id: i64,
    pub line: i64,
    pub vendor: String,
    pub file: String,
    pub event_uuid: Option<String>,
}

/// What became of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub outcome: &'static str,
    pub reason: Option<String>,
}

impl Decision {
    fn applied(reason: &str) -> Self {
        Decision {
            outcome: "applied",
            reason: Some(reason.to_string()),
        }
    }
    fn refused(reason: String) -> Self {
        Decision {
            outcome: "refused",
            reason: Some(reason),
        }
    }
    fn unchanged(reason: &str) -> Self {
        Decision {
            outcome: "unchanged",
            reason: Some(reason.to_string()),
        }
    }
}

/// The union-find over distinct ids. A component is a person; `exists` says whether an id
/// has been seen yet (PostHog creates a person at an id's first event).
#[derive(Default)]
pub struct Graph {
    index: HashMap<String, u32>,
    ids: Vec<String>,
    parent: Vec<u32>,
    exists: Vec<bool>,
    /// Per root: the person's id, whether it is identified, whether it holds a user id.
    person: Vec<String>,
    identified: Vec<bool>,
    has_user: Vec<bool>,
    /// Per root: person properties so far.
    props: Vec<Option<Box<Map<String, Value>>>>,
    users: HashSet<String>,
}

impl Graph {
    pub fn new(users: HashSet<String>) -> Self {
        Graph {
            users,
            ..Default::default()
        }
    }

    fn idx(&mut self, id: &str) -> u32 {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.index.insert(id.to_string(), i);
        self.ids.push(id.to_string());
        self.parent.push(i);
        self.exists.push(false);
        self.person.push(String::new());
        self.identified.push(false);
        self.has_user.push(self.users.contains(id));
        self.props.push(None);
        i
    }

    fn root(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let p = self.parent[i as usize];
            self.parent[i as usize] = self.parent[p as usize];
            i = p;
        }
        i
    }

    /// The first appearance of an id: it gets a person of its own unless it already has one.
    pub fn see(&mut self, id: &str) {
        let i = self.idx(id);
        if !self.exists[i as usize] {
            self.exists[i as usize] = true;
            self.person[i as usize] = person_id_for(id);
        }
    }

    /// Attach `other` (no person yet) to `into`'s person, or merge `other`'s person into it.
    fn join(&mut self, into_root: u32, other: u32, identify: bool) {
        let o = self.root(other);
        self.parent[o as usize] = into_root;
        self.exists[other as usize] = true;
        let (r, o) = (into_root as usize, o as usize);
        self.identified[r] = self.identified[r] || self.identified[o] || identify;
        self.has_user[r] = self.has_user[r] || self.has_user[o];
        // {...other, ...into}: the "into" person wins on conflict (semantics.md §1.1 step 7).
        if let Some(mut merged) = self.props[o].take() {
            if let Some(into) = self.props[r].take() {
                merged.extend(*into);
            }
            self.props[r] = Some(merged);
        }
    }

    /// Apply an event's person properties to the person of `id`: `set` overwrites, `once`
    /// only fills keys not yet set.
    pub fn set_props(
        &mut self,
        id: &str,
        set: Option<Map<String, Value>>,
        once: Option<Map<String, Value>>,
    ) {
        self.see(id);
        let i = self.idx(id);
        let r = self.root(i) as usize;
        let props = self.props[r].get_or_insert_with(Default::default);
        for (k, v) in set.into_iter().flatten() {
            if !v.is_null() && v != Value::String("EMPTY".into()) {
                props.insert(k, v);
            }
        }
        for (k, v) in once.into_iter().flatten() {
            if !v.is_null() {
                props.entry(k).or_insert(v);
            }
        }
    }

    /// Person id → properties, for persons that have any.
    pub fn properties(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for i in 0..self.ids.len() {
            if self.exists[i] && self.parent[i] as usize == i {
                if let Some(p) = &self.props[i] {
                    if !p.is_empty() {
                        out.push((
                            self.person[i].clone(),
                            Value::Object((**p).clone()).to_string(),
                        ));
                    }
                }
            }
        }
        out
    }

    /// Replay one link under `mode` (semantics.md §1.1 `mergeDistinctIds`, §1.5).
    pub fn link(&mut self, mode: IdentityMode, from: &str, into: &str, kind: &str) -> Decision {
        if from == into {
            return Decision::unchanged("the two ids are the same");
        }
        for id in [from, into] {
            if let Some(why) = illegal_id(id) {
                return Decision::refused(format!(
                    "cannot_merge_with_illegal_distinct_id: {:?} is {why}",
                    id
                ));
            }
        }
        let (f, t) = (self.idx(from), self.idx(into));
        let (fe, te) = (self.exists[f as usize], self.exists[t as usize]);
        let forced = kind == "merge";
        // A co-occurrence of a device and a user id is weaker evidence than an explicit
        // identify: it never attaches to an identified person (the strict rule).
        let strict = mode == IdentityMode::PosthogStrict || kind == "device_user_pair";
        let user_rule = matches!(
            mode,
            IdentityMode::MixpanelSimplified | IdentityMode::Amplitude
        );
        let identify = kind != "person_map";
        match (fe, te) {
            (false, false) => {
                if user_rule && self.has_user[f as usize] && self.has_user[t as usize] {
                    self.see(from);
                    self.see(into);
                    return Decision::refused(
                        "two user ids never merge in this mode; each is its own person".into(),
                    );
                }
                self.see(into);
                let tr = self.root(t);
                self.join(tr, f, identify);
                Decision::applied("neither id had a person: one new person holds both")
            }
            (true, false) | (false, true) => {
                let (existing, new) = if fe { (f, t) } else { (t, f) };
                let er = self.root(existing);
                if user_rule && self.has_user[er as usize] && self.has_user[new as usize] {
                    self.see(self.ids[new as usize].clone().as_str());
                    return Decision::refused(format!(
                        "{} already belongs to a person with a user id; two user ids never merge in this mode",
                        self.ids[existing as usize]
                    ));
                }
                // The new id joins the existing person; when the new id is the "into" side and
                // the existing person is identified, the strict rule refuses (PostHog itself
                // attaches it: TV-ID-2b).
                if !forced && strict && fe && self.identified[er as usize] {
                    self.see(into);
                    return Decision::refused(format!(
                        "cannot_merge_already_identified: {from} belongs to an identified person; {into} starts its own person (strict rule)"
                    ));
                }
                self.join(er, new, identify);
                Decision::applied("one id was new: it joined the other's person")
            }
            (true, true) => {
                let (fr, tr) = (self.root(f), self.root(t));
                if fr == tr {
                    self.identified[tr as usize] |= identify;
                    return Decision::unchanged("both ids already belong to the same person");
                }
                if user_rule && self.has_user[fr as usize] && self.has_user[tr as usize] {
                    return Decision::refused(
                        "both persons hold user ids; two user ids never merge in this mode".into(),
                    );
                }
                if !forced && self.identified[fr as usize] {
                    return Decision::refused(format!(
                        "cannot_merge_already_identified: {from} belongs to an identified person; only $merge_dangerously may merge it"
                    ));
                }
                self.join(tr, fr, identify);
                Decision::applied("the persons were merged (the \"into\" person is kept)")
            }
        }
    }

    /// (distinct id, person id) for every id that has a person.
    pub fn mapping(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(self.ids.len());
        for i in 0..self.ids.len() as u32 {
            if !self.exists[i as usize] {
                continue;
            }
            let r = self.root(i);
            out.push((
                self.ids[i as usize].clone(),
                self.person[r as usize].clone(),
            ));
        }
        out
    }

    /// Person id → identified (the target of an identify, alias or merge, or holding a user
    /// id), for every person.
    pub fn identified_persons(&mut self) -> HashMap<String, bool> {
        let mut out = HashMap::new();
        for i in 0..self.ids.len() as u32 {
            if self.exists[i as usize] && self.root(i) == i {
                let r = i as usize;
                out.insert(
                    self.person[r].clone(),
                    self.identified[r] || self.has_user[r],
                );
            }
        }
        out
    }
}

/// Order of a replay item: links before an id's first appearance at the same instant and
/// record (the merge happens while the event is processed).
type Key = (i64, i64, i64, u8);

/// An event that sets person properties: key, the id, `$set`, `$set_once` and the vendor's
/// person properties, as JSON text.
type PropsRow = (Key, String, Option<String>, Option<String>, Option<String>);

/// The replay's inputs from the events, kept as derived tables so that an incremental model
/// pass reads only the new events: `id_first_seen` (every id's first appearance),
/// `id_users` (the ids seen as a user id) and `id_props` (the events that set person
/// properties). `since`: the newest import already in the tables (None: build them anew).
fn prepare_inputs(conn: &Connection, since: Option<i64>) -> Result<()> {
    const FIRST_SEEN: &str = "SELECT id, {'ts': ts_utc, 'seq': event_seq} AS first, import_id FROM (
            SELECT distinct_id AS id, ts_utc, event_seq, import_id FROM events WHERE distinct_id IS NOT NULL
            UNION ALL
            SELECT anon_id, ts_utc, event_seq, import_id FROM events WHERE anon_id IS NOT NULL AND anon_id IS DISTINCT FROM distinct_id)";
    const PROPS: &str = "SELECT coalesce(distinct_id, anon_id) AS id, epoch_us(ts_utc) AS ts_us, event_seq,
            CASE WHEN contains(properties::VARCHAR, '\"$set\"') THEN json_extract(properties, '$.\"$set\"')::VARCHAR END AS set_props,
            CASE WHEN contains(properties::VARCHAR, '\"$set_once\"') THEN json_extract(properties, '$.\"$set_once\"')::VARCHAR END AS once_props,
            CASE WHEN json_type(person_properties) = 'OBJECT' AND person_properties::VARCHAR <> '{}' THEN person_properties::VARCHAR END AS vendor_props
         FROM events
         WHERE coalesce(distinct_id, anon_id) IS NOT NULL
           AND (contains(properties::VARCHAR, '\"$set') OR (person_properties IS NOT NULL AND person_properties::VARCHAR <> '{}'))";
    match since {
        None => conn.execute_batch(&format!(
            "CREATE OR REPLACE TABLE id_first_seen AS SELECT id, min(first) AS first FROM ({FIRST_SEEN}) GROUP BY id;
             CREATE OR REPLACE TABLE id_users AS
                 SELECT DISTINCT user_id AS id FROM events WHERE NOT sb_placeholder_id(user_id);
             CREATE OR REPLACE TABLE id_props AS {PROPS};"
        ))?,
        Some(since) => super::execute_with_since(
            conn,
            &format!(
                "CREATE OR REPLACE TABLE id_first_seen_next AS
                 SELECT id, min(first) AS first FROM (
                     SELECT id, first FROM id_first_seen
                     UNION ALL
                     SELECT id, first FROM ({FIRST_SEEN}) WHERE import_id > $1)
                 GROUP BY id;
                 DROP TABLE id_first_seen;
                 ALTER TABLE id_first_seen_next RENAME TO id_first_seen;
                 INSERT INTO id_users
                 SELECT DISTINCT user_id FROM events
                 WHERE import_id > $1 AND NOT sb_placeholder_id(user_id) AND user_id NOT IN (SELECT id FROM id_users);
                 INSERT INTO id_props {PROPS} AND import_id > $1;"
            ),
            since,
        )?,
    }
    Ok(())
}

/// Replay the workspace's links and first appearances; write person_map and merge_log.
/// `since`: in an incremental pass, the newest import the model had seen (the replay is
/// still complete: only its inputs are read incrementally). Returns person id → identified.
pub fn resolve(
    conn: &Connection,
    mode: IdentityMode,
    since: Option<i64>,
    ctx: &JobCtx,
) -> Result<HashMap<String, bool>> {
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE model_props (person_id VARCHAR, properties JSON)",
    )?;
    if mode == IdentityMode::WarehouseLastValue {
        let identified = warehouse_last_value(conn)?;
        // No merges to replay: each key's latest value wins.
        conn.execute_batch(include_str!("../../sql/model_props_latest.sql"))?;
        return Ok(identified);
    }
    prepare_inputs(conn, since)?;
    ctx.cancel.check()?;
    let users: HashSet<String> = {
        let mut st = conn.prepare(
            "SELECT id FROM id_users
             UNION SELECT DISTINCT to_id FROM identity_links
             WHERE link_kind IN ('identify', 'alias', 'device_user_pair') AND NOT sb_placeholder_id(to_id)",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<duckdb::Result<_>>()?
    };
    let mut links: Vec<(Key, Link)> = {
        let mut st = conn.prepare(
            "SELECT from_id, to_id, link_kind, epoch_us(ts_utc), import_id, source_line, source_vendor, source_file, event_uuid
             FROM identity_links
             WHERE link_kind IN ('identify', 'alias', 'merge', 'device_user_pair')",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Link {
                from: r.get(0)?,
                into: r.get(1)?,
                kind: r.get(2)?,
                ts_us: r.get(3)?,
                import_id: r.get(4)?,
                line: r.get(5)?,
                vendor: r.get(6)?,
                file: r.get(7)?,
                event_uuid: r.get(8)?,
            })
        })?;
        rows.map(|l| l.map(|l| ((l.ts_us.unwrap_or(i64::MIN), l.import_id, l.line, 0u8), l)))
            .collect::<duckdb::Result<_>>()?
    };
    links.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.from.cmp(&b.1.from)));
    ctx.cancel.check()?;
    let mut seen: Vec<(Key, String)> = {
        let mut st = conn.prepare(
            "SELECT id, epoch_us(first.ts), first.seq >> 32, first.seq & 4294967295 FROM id_first_seen",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                (
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    1u8,
                ),
                r.get::<_, String>(0)?,
            ))
        })?;
        rows.collect::<duckdb::Result<_>>()?
    };
    seen.sort();
    ctx.cancel.check()?;

    let props: Vec<PropsRow> = {
        let mut st = conn.prepare(
            "SELECT id, ts_us, event_seq >> 32, event_seq & 4294967295, set_props, once_props, vendor_props FROM id_props",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                (
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    2u8,
                ),
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?;
        rows.collect::<duckdb::Result<_>>()?
    };
    ctx.cancel.check()?;
    // One ordered stream: at the same instant and record, the link first, then the id's first
    // appearance, then the event's properties (PostHog merges, then applies $set).
    enum Item {
        Link(usize),
        Seen(usize),
        Props(usize),
    }
    let mut items: Vec<(Key, Item)> = Vec::with_capacity(links.len() + seen.len() + props.len());
    items.extend(links.iter().enumerate().map(|(i, l)| (l.0, Item::Link(i))));
    items.extend(seen.iter().enumerate().map(|(i, x)| (x.0, Item::Seen(i))));
    items.extend(props.iter().enumerate().map(|(i, x)| (x.0, Item::Props(i))));
    items.sort_by_key(|x| x.0);
    let obj = |t: &Option<String>| -> Option<Map<String, Value>> {
        t.as_deref()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            .and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            })
    };

    let mut g = Graph::new(users);
    let mut log = conn.appender("merge_log")?;
    let mut seq: i64 = 0;
    for (_, item) in &items {
        let l = match item {
            Item::Seen(i) => {
                g.see(&seen[*i].1);
                continue;
            }
            Item::Props(i) => {
                let (_, id, set, once, vendor_props) = &props[*i];
                // vendor person properties are the state as of the event; $set applies on top
                let mut set_all = obj(vendor_props);
                if let Some(s) = obj(set) {
                    set_all.get_or_insert_with(Map::new).extend(s);
                }
                g.set_props(id, set_all, obj(once));
                continue;
            }
            Item::Link(i) => &links[*i].1,
        };
        seq += 1;
        let d = g.link(mode, &l.from, &l.into, &l.kind);
        log.append_row(duckdb::params![
            seq,
            l.ts_us
                .map(|t| duckdb::types::Value::Timestamp(duckdb::types::TimeUnit::Microsecond, t))
                .unwrap_or(duckdb::types::Value::Null),
            l.vendor,
            l.file,
            l.line,
            l.event_uuid,
            l.kind,
            l.from,
            l.into,
            d.outcome,
            d.reason
        ])?;
        if seq % 65_536 == 0 {
            ctx.cancel.check()?;
        }
    }
    log.flush()?;
    drop(log);
    let mut pm = conn.appender("person_map")?;
    for (id, person) in g.mapping() {
        pm.append_row(duckdb::params![id, person])?;
    }
    pm.flush()?;
    drop(pm);
    let mut mp = conn.appender_to_catalog_and_db("model_props", "temp", "main")?;
    for (person, props) in g.properties() {
        mp.append_row(duckdb::params![person, props])?;
    }
    mp.flush()?;
    Ok(g.identified_persons())
}

/// The Segment / Snowplow dbt stitch (semantics.md §1.4): every anonymous id belongs to the
/// last user id seen with it; user ids never merge.
fn warehouse_last_value(conn: &Connection) -> Result<HashMap<String, bool>> {
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE wh_last AS
         SELECT anon_id, arg_max(user_id, (ts_utc, event_seq)) AS user_id, count(DISTINCT user_id) AS users
         FROM events WHERE anon_id IS NOT NULL AND user_id IS NOT NULL AND anon_id <> user_id
         GROUP BY anon_id;
         CREATE OR REPLACE TEMP TABLE wh_ids AS
         SELECT DISTINCT id FROM (
             SELECT distinct_id AS id FROM events WHERE distinct_id IS NOT NULL
             UNION ALL SELECT anon_id FROM events WHERE anon_id IS NOT NULL
             UNION ALL SELECT user_id FROM events WHERE user_id IS NOT NULL);",
    )?;
    let mut st = conn.prepare(
        "SELECT i.id, coalesce(w.user_id, i.id) AS owner, w.user_id IS NOT NULL OR i.id IN (SELECT user_id FROM events WHERE user_id IS NOT NULL) AS identified
         FROM wh_ids i LEFT JOIN wh_last w ON w.anon_id = i.id",
    )?;
    let rows: Vec<(String, String, bool)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<duckdb::Result<_>>()?;
    let mut identified = HashMap::new();
    let mut pm = conn.appender("person_map")?;
    for (id, owner, ident) in rows {
        let p = person_id_for(&owner);
        pm.append_row(duckdb::params![id, p])?;
        let e = identified.entry(p).or_insert(false);
        *e |= ident;
    }
    pm.flush()?;
    drop(pm);
    conn.execute_batch(
        "INSERT INTO merge_log
         SELECT row_number() OVER (ORDER BY anon_id), NULL, NULL, NULL, NULL, NULL, 'last_value', anon_id, user_id, 'applied',
                CASE WHEN users > 1 THEN 'the last of ' || users || ' user ids seen on this anonymous id (earlier ones do not keep its history)'
                     ELSE 'the user id seen on this anonymous id' END
         FROM wh_last;
         DROP TABLE wh_last; DROP TABLE wh_ids;",
    )?;
    Ok(identified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_ids_are_refused() {
        for id in [
            "",
            "  ",
            "null",
            "\"null\"",
            "'undefined'",
            "Anonymous",
            "GUEST",
            "0",
            "None",
            "none",
            "NaN",
            "[object Object]",
            "distinct_id",
            "email",
            "true",
        ] {
            assert!(illegal_id(id).is_some(), "{id:?}");
        }
        for id in ["user-1", "NULLABLE", "0a", "anon-7", "nan"] {
            assert!(illegal_id(id).is_none(), "{id:?}");
        }
    }
}
