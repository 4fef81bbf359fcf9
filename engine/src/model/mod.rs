//! The model layer: identity resolution, sessions and person rows, derived from `events` and
//! `identity_links` without re-reading files. [`rebuild`] recomputes every derived table in
//! one transaction under the workspace's [`ModelSettings`]; [`refresh`] does the same for
//! only what new imports touched when it can. A failed or cancelled pass leaves the previous
//! tables as they were.

pub mod identity;
pub mod person;
pub mod sessions;
pub mod timeline;

use std::time::Instant;

use serde::Serialize;
use ts_rs::TS;

use crate::jobs::{JobCtx, JobEvent};
use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// Bumped whenever the derivation changes: tables built by an older version are rebuilt.
pub const DERIVATION_VERSION: i32 = 7;

/// How distinct ids are merged into persons (semantics.md §1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum IdentityMode {
    /// PostHog's server rules: refuse to merge away an identified person when both ids
    /// already have persons, unless `$merge_dangerously`; a new id joins any person.
    Posthog,
    /// As `posthog`, and a new id never joins an identified person through another id.
    PosthogStrict,
    /// Mixpanel Simplified ID Merge: a device joins its first user; user ids never merge.
    MixpanelSimplified,
    /// Amplitude: the same rule as `mixpanel_simplified`.
    Amplitude,
    /// The Segment / Snowplow dbt packages: an anonymous id belongs to the last user id seen
    /// with it, retroactively; user ids never merge.
    WarehouseLastValue,
}

impl IdentityMode {
    pub const ALL: [IdentityMode; 5] = [
        IdentityMode::Posthog,
        IdentityMode::PosthogStrict,
        IdentityMode::MixpanelSimplified,
        IdentityMode::Amplitude,
        IdentityMode::WarehouseLastValue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMode::Posthog => "posthog",
            IdentityMode::PosthogStrict => "posthog_strict",
            IdentityMode::MixpanelSimplified => "mixpanel_simplified",
            IdentityMode::Amplitude => "amplitude",
            IdentityMode::WarehouseLastValue => "warehouse_last_value",
        }
    }

    /// The id an event resolves its person by: its distinct id, except under the warehouse
    /// stitch, where an event belongs to whoever its anonymous id belongs to (dbt's
    /// `blended_user_id`), whatever user id the event itself carries.
    pub fn person_key(self) -> &'static str {
        match self {
            IdentityMode::WarehouseLastValue => "coalesce(e.anon_id, e.distinct_id)",
            _ => "coalesce(e.distinct_id, e.anon_id)",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        IdentityMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "unknown identity mode \"{s}\": use posthog, posthog_strict, mixpanel_simplified, amplitude or warehouse_last_value"
                ))
            })
    }
}

/// The workspace's model settings (stored in `workspace_settings`).
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ModelSettings {
    pub identity_mode: IdentityMode,
    /// A new inferred session after a gap strictly longer than this.
    pub session_timeout_seconds: i64,
    /// A new inferred session when one would last strictly longer than this.
    pub session_max_length_seconds: i64,
    /// Off by default: also split inferred sessions at local midnight (Universal Analytics).
    pub split_at_midnight: bool,
    /// Off by default: also split when the campaign (utm source / medium / campaign) changes.
    pub split_on_campaign: bool,
    /// IANA time zone for calendar rules (midnight split, later: days and weeks).
    pub time_zone: String,
    /// `monday` or `sunday`.
    pub week_start: String,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            identity_mode: IdentityMode::Posthog,
            session_timeout_seconds: 1800,
            session_max_length_seconds: 86_400,
            split_at_midnight: false,
            split_on_campaign: false,
            time_zone: "UTC".into(),
            week_start: "monday".into(),
        }
    }
}

/// The setting keys, as `stitchbook settings` names them.
pub const SETTING_KEYS: &[&str] = &[
    "identity.mode",
    "sessions.timeout_seconds",
    "sessions.max_length_seconds",
    "sessions.split_at_midnight",
    "sessions.split_on_campaign",
    "time_zone",
    "week_start",
];

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(EngineError::InvalidArgument(format!(
            "{key} must be true or false, not \"{v}\""
        ))),
    }
}

fn parse_seconds(key: &str, v: &str, min: i64, max: i64) -> Result<i64> {
    match v.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(EngineError::InvalidArgument(format!(
            "{key} must be a whole number of seconds from {min} to {max}, not \"{v}\""
        ))),
    }
}

impl ModelSettings {
    pub fn load(ws: &Workspace) -> Result<Self> {
        let mut s = ModelSettings::default();
        for key in SETTING_KEYS {
            if let Some(v) = ws.setting(key)? {
                s.apply(ws, key, &v)?;
            }
        }
        Ok(s)
    }

    /// Validate and apply one setting (not saved).
    fn apply(&mut self, ws: &Workspace, key: &str, v: &str) -> Result<()> {
        match key {
            "identity.mode" => self.identity_mode = IdentityMode::parse(v)?,
            "sessions.timeout_seconds" => {
                self.session_timeout_seconds = parse_seconds(key, v, 1, 7 * 86_400)?
            }
            "sessions.max_length_seconds" => {
                self.session_max_length_seconds = parse_seconds(key, v, 60, 30 * 86_400)?
            }
            "sessions.split_at_midnight" => self.split_at_midnight = parse_bool(key, v)?,
            "sessions.split_on_campaign" => self.split_on_campaign = parse_bool(key, v)?,
            "time_zone" => {
                let known: bool = ws.conn().query_row(
                    "SELECT count(*) > 0 FROM pg_timezone_names() WHERE name = ?",
                    [v.trim()],
                    |r| r.get(0),
                )?;
                if !known {
                    return Err(EngineError::InvalidArgument(format!(
                        "unknown time zone \"{v}\": use an IANA name such as Europe/Berlin or UTC"
                    )));
                }
                self.time_zone = v.trim().to_string();
            }
            "week_start" => match v.trim().to_ascii_lowercase().as_str() {
                w @ ("monday" | "sunday") => self.week_start = w.to_string(),
                _ => {
                    return Err(EngineError::InvalidArgument(format!(
                        "week_start must be monday or sunday, not \"{v}\""
                    )))
                }
            },
            _ => {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown setting \"{key}\": one of {}",
                    SETTING_KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Validate and store one setting.
    pub fn set(ws: &Workspace, key: &str, value: &str) -> Result<ModelSettings> {
        let mut s = ModelSettings::load(ws)?;
        s.apply(ws, key, value)?;
        ws.set_setting(key, value.trim())?;
        Ok(s)
    }
}

#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct StageTiming {
    pub stage: String,
    pub secs: f64,
}

/// What a rebuild produced.
#[derive(Debug, Clone, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct RebuildReport {
    pub settings: ModelSettings,
    pub events: i64,
    pub links: i64,
    pub persons: i64,
    pub identified_persons: i64,
    pub merges_applied: i64,
    pub merges_refused: i64,
    pub shared_devices: i64,
    pub sessions: i64,
    pub events_in_sessions: i64,
    pub accounts: i64,
    /// Whether this pass updated the model incrementally (only what new imports touched)
    /// rather than rebuilding it.
    pub incremental: bool,
    /// The persons whose rows were recomputed (every person in a full rebuild).
    pub persons_touched: i64,
    pub stages: Vec<StageTiming>,
}

fn count(ws: &Workspace, sql: &str) -> Result<i64> {
    Ok(ws.conn().query_row(sql, [], |r| r.get(0))?)
}

const DERIVED: &[&str] = &[
    "profiles",
    "accounts",
    "account_activity",
    "person_map",
    "persons",
    "merge_log",
    "shared_devices",
    "sessions",
    "event_sessions",
    "model_state",
];

/// The temp tables a model pass may leave behind when it fails.
const TEMP_TABLES: &[&str] = &[
    "model_identified",
    "sess_base",
    "model_props",
    "model_params",
    "prof_ev",
    "acct_ev",
    "upd_old_pm",
    "upd_old_log",
    "upd_old_shared",
    "upd_seed",
    "upd_persons",
    "upd_touched",
    "upd_ids",
    "upd_devices",
    "upd_client",
    "upd_events",
    "upd_old_sessions",
    "upd_accounts",
];

/// The settings as model_state stores them.
fn settings_json(settings: &ModelSettings) -> Result<String> {
    serde_json::to_string(settings).map_err(|e| EngineError::Internal(e.to_string()))
}

/// Whether the derived tables are missing or were built from other data, settings or code.
pub fn is_stale(ws: &Workspace) -> Result<bool> {
    Ok(staleness(ws)?.is_some())
}

/// Why the derived tables do not match the workspace, as [`staleness`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staleness {
    /// Events were imported and the model was never built.
    NeverBuilt,
    /// Built by another version of the derivation (an older Stitchbook).
    OtherVersion,
    /// The identity, session, time zone or week settings changed since the build.
    SettingsChanged,
    /// Events or identity links were imported since the build.
    NewImports,
}

impl Staleness {
    /// The stable code the IPC error carries as its `reason`.
    pub fn code(self) -> &'static str {
        match self {
            Staleness::NeverBuilt => "never_built",
            Staleness::OtherVersion => "other_version",
            Staleness::SettingsChanged => "settings_changed",
            Staleness::NewImports => "new_imports",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Staleness::NeverBuilt => {
                "persons and sessions have not been built for this workspace's events yet"
            }
            Staleness::OtherVersion => {
                "persons and sessions were built by another version of Stitchbook"
            }
            Staleness::SettingsChanged => {
                "the identity, session or time settings changed since persons and sessions were built"
            }
            Staleness::NewImports => {
                "events were imported since persons and sessions were built"
            }
        }
    }
}

/// Why the model is stale, or None when it is fresh: the derived tables were built by this
/// derivation, under the current settings, from exactly the events and links there are (one
/// read of `model_state`; the app asks before every query).
pub fn staleness(ws: &Workspace) -> Result<Option<Staleness>> {
    let settings = settings_json(&ModelSettings::load(ws)?)?;
    let state: Option<(i64, bool, bool)> = ws
        .conn()
        .query_row(
            "SELECT derivation_version, settings::VARCHAR = ?::JSON::VARCHAR,
                    events_seen = (SELECT count(*) FROM events)
                      AND links_seen = (SELECT count(*) FROM identity_links)
             FROM model_state LIMIT 1",
            [settings],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            duckdb::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(match state {
        None => Some(Staleness::NeverBuilt),
        Some((v, _, _)) if v != i64::from(DERIVATION_VERSION) => Some(Staleness::OtherVersion),
        Some((_, false, _)) => Some(Staleness::SettingsChanged),
        Some((_, _, false)) => Some(Staleness::NewImports),
        Some(_) => None,
    })
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// For front ends that never rebuild silently: Ok when queries can read the model, else
/// [`EngineError::ModelStale`] saying why, so the user can start the rebuild as a visible
/// job. A workspace with no events and no links gets its empty model built here (there is
/// nothing to wait for).
pub fn require_fresh(ws: &Workspace) -> Result<()> {
    match staleness(ws)? {
        None => Ok(()),
        Some(s) => {
            let empty: bool = ws.conn().query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM events) AND NOT EXISTS (SELECT 1 FROM identity_links)",
                [],
                |r| r.get(0),
            )?;
            if empty {
                rebuild(ws, &JobCtx::silent()).map(|_| ())
            } else {
                Err(EngineError::ModelStale {
                    reason: s.code(),
                    message: format!("{}.", capitalised(s.message())),
                })
            }
        }
    }
}

/// The newest import the model has seen, when the model can be brought up to date by an
/// incremental pass: it was built by this derivation under the current settings, and the
/// events and links of the imports it saw are exactly the ones it counted (imports only ever
/// add rows, so the rest are new).
pub fn incremental_base(ws: &Workspace) -> Result<Option<i64>> {
    let loaded = ModelSettings::load(ws)?;
    let settings = settings_json(&loaded)?;
    // The derived tables an incremental pass extends (the replay's inputs exist in the modes
    // that replay links).
    let needed: &[&str] = if loaded.identity_mode == IdentityMode::WarehouseLastValue {
        &["event_groups", "person_events"]
    } else {
        &[
            "event_groups",
            "person_events",
            "id_first_seen",
            "id_users",
            "id_props",
        ]
    };
    for table in needed {
        let present: i64 = ws.conn().query_row(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()
                 AND schema_name = 'main' AND table_name = ?",
            [table],
            |r| r.get(0),
        )?;
        if present == 0 {
            return Ok(None);
        }
    }
    let r: Option<i64> = ws
        .conn()
        .query_row(
            "SELECT any_value(m.max_import_id) FROM model_state m
             WHERE m.derivation_version = ? AND m.settings::VARCHAR = ?::JSON::VARCHAR AND m.max_import_id IS NOT NULL
               AND m.events_seen = (SELECT count(*) FROM events WHERE import_id <= m.max_import_id)
               AND m.links_seen = (SELECT count(*) FROM identity_links WHERE import_id <= m.max_import_id)
               AND (SELECT count(*) FROM model_state) = 1",
            duckdb::params![DERIVATION_VERSION, settings],
            |r| r.get(0),
        )
        .map_err(EngineError::from)?;
    Ok(r)
}

/// Rebuild only when [`is_stale`]; incrementally when [`refresh`] can.
pub fn ensure_built(ws: &Workspace, ctx: &JobCtx) -> Result<Option<RebuildReport>> {
    if is_stale(ws)? {
        Ok(Some(refresh(ws, ctx)?))
    } else {
        Ok(None)
    }
}

/// Bring the model up to date: an incremental pass when the only change since the model was
/// built is new imports (their events and links), else a full [`rebuild`]. Both give the
/// same tables (engine/tests/incremental.rs compares them).
pub fn refresh(ws: &Workspace, ctx: &JobCtx) -> Result<RebuildReport> {
    match incremental_base(ws)? {
        Some(since) => run(ws, ctx, Pass::Update { since }),
        None => rebuild(ws, ctx),
    }
}

/// Recompute every derived table (identity, shared devices, sessions, persons, timelines,
/// profiles, accounts, insight facts) in one transaction.
pub fn rebuild(ws: &Workspace, ctx: &JobCtx) -> Result<RebuildReport> {
    run(ws, ctx, Pass::Full)
}

/// What a model pass recomputes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    /// Everything.
    Full,
    /// What the imports after `since` touched: identity is replayed in full (links are few
    /// and a replay is exact), then only the sessions, persons, timelines, profiles and
    /// accounts whose inputs changed are recomputed.
    Update { since: i64 },
}

fn run(ws: &Workspace, ctx: &JobCtx, pass: Pass) -> Result<RebuildReport> {
    let settings = ModelSettings::load(ws)?;
    let conn = ws.conn();
    ctx.cancel.attach(conn.interrupt_handle());
    // Bounded memory: DuckDB spills to the workspace's temp folder beyond this. (1.5 GB ran
    // out of memory in session assignment at 10M events; 4 GB completes.)
    // A memory limit the user chose for the workspace wins.
    let cap = crate::resources::MemoryCap::unless_chosen(ws, "4GB")?;
    conn.execute_batch("BEGIN TRANSACTION")?;
    let r = pass_in_transaction(ws, &settings, pass, ctx);
    let _ = cap.restore(conn);
    match r {
        Ok(mut report) => {
            let t = Instant::now();
            conn.execute_batch("COMMIT")?;
            report.stages.push(StageTiming {
                stage: "commit".into(),
                secs: t.elapsed().as_secs_f64(),
            });
            drop_temp_tables(conn);
            Ok(report)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            drop_temp_tables(conn);
            Err(e.cancelled_if(ctx.cancel.is_cancelled()))
        }
    }
}

/// Run the statements of `sql` (each ending in `;` at the end of a line) one by one, binding
/// `since` (the newest import a model pass had seen) to every `$1`: as a bound constant, the
/// filter on `import_id` skips the old events' row groups by their zone maps.
fn execute_with_since(conn: &duckdb::Connection, sql: &str, since: i64) -> Result<()> {
    for stmt in sql.split(";\n") {
        let body = stmt
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        if body.trim().is_empty() {
            continue;
        }
        if body.contains("$1") {
            conn.execute(&body, [since])?;
        } else {
            conn.execute_batch(&body)?;
        }
    }
    Ok(())
}

fn drop_temp_tables(conn: &duckdb::Connection) {
    for t in TEMP_TABLES {
        let _ = conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.{}",
            crate::sql::ident(t)
        ));
    }
}

/// The model SQL files' scope placeholders: everything in a full rebuild, the touched
/// persons, their events and the touched accounts in an incremental pass.
fn scoped(sql: &str, pass: Pass, key: &str) -> String {
    let (events, persons, accounts) = match pass {
        Pass::Full => ("TRUE".to_string(), "TRUE", "TRUE"),
        Pass::Update { .. } => (
            format!("{key} IN (SELECT distinct_id FROM temp.upd_ids)"),
            "person_id IN (SELECT person_id FROM temp.upd_persons)",
            "EXISTS (SELECT 1 FROM temp.upd_accounts u WHERE u.group_type = eg.group_type AND u.group_key = eg.group_key)",
        ),
    };
    sql.replace("{SCOPE_EVENTS}", &events)
        .replace("{SCOPE_PERSONS}", persons)
        .replace("{SCOPE_ACCOUNTS}", accounts)
        .replace("{PERSON_KEY}", key)
}

fn pass_in_transaction(
    ws: &Workspace,
    settings: &ModelSettings,
    pass: Pass,
    ctx: &JobCtx,
) -> Result<RebuildReport> {
    let conn = ws.conn();
    let mut stages = Vec::new();
    let mut t = Instant::now();
    let mut lap = |name: &str, t: &mut Instant| {
        stages.push(StageTiming {
            stage: name.to_string(),
            secs: t.elapsed().as_secs_f64(),
        });
        *t = Instant::now();
    };
    let phase = |p: &str| {
        ctx.emit(
            JobEvent::Progress {
                file: if pass == Pass::Full {
                    "rebuild".into()
                } else {
                    "model update".into()
                },
                file_index: 0,
                phase: p.into(),
                bytes_done: 0,
                bytes_total: 0,
                rows: 0,
            },
            true,
        )
    };
    let key = settings.identity_mode.person_key();
    let events = count(ws, "SELECT count(*) FROM events")?;
    let links = count(ws, "SELECT count(*) FROM identity_links")?;
    let max_import_id = count(ws, "SELECT coalesce(max(import_id), 0) FROM imports")?;
    match pass {
        Pass::Full => {
            for table in DERIVED {
                conn.execute_batch(&format!("DELETE FROM {}", crate::sql::ident(table)))?;
            }
        }
        Pass::Update { .. } => {
            // What the model holds now, to tell what the replay changes.
            conn.execute_batch(
                "CREATE OR REPLACE TEMP TABLE upd_old_pm AS SELECT distinct_id, person_id FROM person_map;
                 CREATE OR REPLACE TEMP TABLE upd_old_log AS
                     SELECT event_uuid, link_kind, from_id, into_id, outcome, reason FROM merge_log;
                 CREATE OR REPLACE TEMP TABLE upd_old_shared AS SELECT * FROM shared_devices;
                 DELETE FROM person_map; DELETE FROM merge_log; DELETE FROM shared_devices; DELETE FROM model_state;",
            )?;
        }
    }

    phase("identity");
    let since = match pass {
        Pass::Full => None,
        Pass::Update { since } => Some(since),
    };
    let identified = identity::resolve(conn, settings.identity_mode, since, ctx)?;
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE model_identified (person_id VARCHAR, is_identified BOOLEAN)",
    )?;
    {
        let mut app = conn.appender_to_catalog_and_db("model_identified", "temp", "main")?;
        for (p, i) in &identified {
            app.append_row(duckdb::params![p, i])?;
        }
        app.flush()?;
    }
    lap("identity", &mut t);
    ctx.cancel.check()?;

    phase("shared devices");
    conn.execute_batch(
        "INSERT INTO shared_devices
         SELECT d.anon_id, pm.person_id, d.users, d.events, d.first_seen, d.last_seen
         FROM (SELECT anon_id, list(DISTINCT user_id ORDER BY user_id) AS users, count(*) AS events,
                      min(ts_utc) AS first_seen, max(ts_utc) AS last_seen
               FROM events WHERE anon_id IS NOT NULL AND user_id IS NOT NULL AND anon_id <> user_id
               GROUP BY anon_id HAVING count(DISTINCT user_id) >= 2) d
         LEFT JOIN person_map pm ON pm.distinct_id = d.anon_id",
    )?;
    lap("shared devices", &mut t);
    ctx.cancel.check()?;

    if let Pass::Update { .. } = pass {
        phase("what changed");
        execute_with_since(
            conn,
            &scoped(include_str!("../../sql/model_scope.sql"), pass, key)
                .replace("{CLIENT_KEY}", sessions::CLIENT_KEY),
            since.unwrap_or(0),
        )?;
        lap("what changed", &mut t);
        ctx.cancel.check()?;
    }

    let reader = ws.clone_conn()?;
    ctx.cancel.attach_also(reader.interrupt_handle());
    sessions::assign(
        conn,
        settings,
        key,
        pass != Pass::Full,
        &reader,
        ctx,
        &|p| phase(p),
    )?;
    drop(reader);
    lap("session assignment", &mut t);
    ctx.cancel.check()?;
    // Every event's person, for queries (a view: nothing is copied).
    conn.execute_batch(&format!(
        "CREATE OR REPLACE VIEW event_persons AS
         SELECT e.event_seq, pm.person_id FROM events e LEFT JOIN person_map pm ON pm.distinct_id = {key}"
    ))?;
    phase("session rows");
    conn.execute_batch(include_str!("../../sql/model_sessions.sql"))?;
    conn.execute_batch("DROP TABLE temp.sess_base")?;
    lap("session rows", &mut t);
    ctx.cancel.check()?;

    phase("account groups");
    match pass {
        Pass::Full => conn.execute_batch(
            "CREATE OR REPLACE TABLE event_groups AS
             SELECT event_seq, kv.key AS group_type, unnest(kv.value) AS group_key FROM (
                 SELECT event_seq, unnest(map_entries(json_transform(groups, '\"MAP(VARCHAR, VARCHAR[])\"'))) AS kv
                 FROM events WHERE groups IS NOT NULL)",
        )?,
        Pass::Update { since } => execute_with_since(
            conn,
            &scoped(include_str!("../../sql/model_scope_close.sql"), pass, key),
            since,
        )?,
    }

    // Every person's events in timeline order, stored sorted by person so one person's
    // timeline reads a row group or two (zone maps), not the whole events table. An
    // incremental pass appends the touched persons' events, sorted among themselves.
    phase("timelines");
    let timeline = scoped(
        "WITH m AS (
            SELECT event_uuid, list(link_kind || ': ' || from_id || ' → ' || into_id || ' (' || outcome || ')' ORDER BY seq) AS merges
            FROM merge_log WHERE event_uuid IS NOT NULL GROUP BY event_uuid)
         SELECT pm.person_id, e.ts_utc, e.event_seq, es.session_id, e.event_name, e.event_kind,
                sb_page(e.hot, e.page_url, e.properties) AS page, e.distinct_id, e.source_vendor, e.source_file,
                e.source_line, m.merges
         FROM events e JOIN person_map pm ON pm.distinct_id = {PERSON_KEY}
         LEFT JOIN event_sessions es ON es.event_seq = e.event_seq
         LEFT JOIN m ON m.event_uuid = e.event_uuid
         WHERE {SCOPE_EVENTS}
         ORDER BY pm.person_id, e.ts_utc, e.event_seq",
        pass,
        key,
    );
    conn.execute_batch(&match pass {
        Pass::Full => format!("CREATE OR REPLACE TABLE person_events AS {timeline}"),
        Pass::Update { .. } => format!("INSERT INTO person_events {timeline}"),
    })?;
    lap("timelines", &mut t);
    ctx.cancel.check()?;

    phase("persons");
    conn.execute_batch(&scoped(
        include_str!("../../sql/model_persons.sql"),
        pass,
        key,
    ))?;
    conn.execute_batch("DROP TABLE temp.model_identified; DROP TABLE temp.model_props")?;
    lap("persons", &mut t);
    ctx.cancel.check()?;

    phase("profiles and accounts");
    conn.execute_batch(
        "CREATE OR REPLACE TEMP TABLE model_params (time_zone VARCHAR, week_start VARCHAR)",
    )?;
    conn.execute(
        "INSERT INTO model_params VALUES (?, ?)",
        duckdb::params![settings.time_zone, settings.week_start],
    )?;
    // The local date of each event: UTC needs no time zone database (much cheaper per event).
    let day = if crate::insights::query::is_utc(&settings.time_zone) {
        "CAST(make_timestamp(epoch_us(e.ts_utc)) AS DATE)"
    } else {
        "CAST(timezone((SELECT time_zone FROM model_params), e.ts_utc) AS DATE)"
    };
    conn.execute_batch(
        &scoped(include_str!("../../sql/model_profiles.sql"), pass, key).replace("{DAY}", day),
    )?;
    lap("profiles and accounts", &mut t);
    ctx.cancel.check()?;

    phase("insight facts");
    // Written in full by an incremental pass too: person_index is dense in person_id order,
    // so any person who comes or goes renumbers the persons after them, and renumbering the
    // kept rows (a list lookup per row) measured slower than writing the facts again (1M
    // events: 1.5 s against 1.2 s; 10M: 37 s against 15 s).
    conn.execute_batch(
        &include_str!("../../sql/model_facts.sql")
            .replace("{PERSON_KEY}", key)
            .replace("{DAY}", day),
    )?;
    conn.execute_batch("DROP TABLE temp.model_params")?;
    lap("insight facts", &mut t);

    let persons = count(ws, "SELECT count(*) FROM persons")?;
    let persons_touched = match pass {
        Pass::Full => persons,
        Pass::Update { .. } => count(ws, "SELECT count(*) FROM temp.upd_persons")?,
    };
    conn.execute(
        "INSERT INTO model_state VALUES (?, ?::JSON, ?, ?, now(), ?)",
        duckdb::params![
            DERIVATION_VERSION,
            settings_json(settings)?,
            events,
            links,
            max_import_id
        ],
    )?;
    Ok(RebuildReport {
        settings: settings.clone(),
        events,
        links,
        persons,
        identified_persons: count(ws, "SELECT count(*) FROM persons WHERE is_identified")?,
        merges_applied: count(
            ws,
            "SELECT count(*) FROM merge_log WHERE outcome = 'applied'",
        )?,
        merges_refused: count(
            ws,
            "SELECT count(*) FROM merge_log WHERE outcome = 'refused'",
        )?,
        shared_devices: count(ws, "SELECT count(*) FROM shared_devices")?,
        sessions: count(ws, "SELECT count(*) FROM sessions")?,
        events_in_sessions: count(ws, "SELECT count(*) FROM event_sessions")?,
        accounts: count(ws, "SELECT count(*) FROM accounts")?,
        incremental: pass != Pass::Full,
        persons_touched,
        stages,
    })
}
