//! Cohorts: behavioural ("did E at least n times in the last D days", "did not do E"),
//! property-based and first-seen-in-period criteria combined with AND/OR, saved in the
//! workspace by name, and usable as a filter, an exclusion and a breakdown in every insight.
//! Relative windows count back from the query's `now`; nothing here reads the clock.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::named::NamedStore;
use super::query::{push_filter, push_filters, DateRange, PropertyFilter, PropertySource};
use crate::model::person::{self, PersonSummary};
use crate::model::ModelSettings;
use crate::sql::Sql;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Combine {
    /// Every criterion (AND).
    All,
    /// At least one criterion (OR).
    Any,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum Criterion {
    /// Did `event` at least `at_least` times in the `within_days` days up to now.
    Performed {
        event: String,
        #[serde(default)]
        filters: Vec<PropertyFilter>,
        #[serde(default = "one")]
        at_least: i64,
        within_days: i64,
    },
    /// Did not do `event` in the `within_days` days up to now.
    NotPerformed {
        event: String,
        #[serde(default)]
        filters: Vec<PropertyFilter>,
        within_days: i64,
    },
    /// A person property filter (its `source` is taken as person).
    Property { filter: PropertyFilter },
    /// First seen (first event of any kind) inside the date range.
    FirstSeen { date_range: DateRange },
}

fn one() -> i64 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct CohortDef {
    #[serde(rename = "match", default = "all")]
    pub combine: Combine,
    pub criteria: Vec<Criterion>,
}

fn all() -> Combine {
    Combine::All
}

/// Who an insight counts: members of one saved cohort, minus members of another (for
/// example internal and test users). Flattened into every insight query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct Scope {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub cohort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub exclude_cohort: Option<String>,
}

fn bad(message: String) -> EngineError {
    EngineError::InvalidQuery {
        code: "cohort_definition",
        message,
    }
}

impl CohortDef {
    pub fn validate(&self) -> Result<()> {
        if self.criteria.is_empty() {
            return Err(bad("a cohort needs at least one criterion".into()));
        }
        for c in &self.criteria {
            match c {
                Criterion::Performed {
                    at_least,
                    within_days,
                    ..
                } => {
                    if *at_least < 1 || *within_days < 1 {
                        return Err(bad(
                            "\"performed\" needs at_least ≥ 1 and within_days ≥ 1".into()
                        ));
                    }
                }
                Criterion::NotPerformed { within_days, .. } => {
                    if *within_days < 1 {
                        return Err(bad("\"not_performed\" needs within_days ≥ 1".into()));
                    }
                }
                Criterion::Property { .. } | Criterion::FirstSeen { .. } => {}
            }
        }
        Ok(())
    }

    /// The event names of its `performed` and `not_performed` criteria.
    pub fn event_names(&self) -> Vec<&str> {
        self.criteria
            .iter()
            .filter_map(|c| match c {
                Criterion::Performed { event, .. } | Criterion::NotPerformed { event, .. } => {
                    Some(event.as_str())
                }
                Criterion::Property { .. } | Criterion::FirstSeen { .. } => None,
            })
            .collect()
    }
}

/// Push `SELECT person_id FROM persons p WHERE …`: the cohort's members as of `now_us`.
/// A definition naming an event the workspace does not have is refused.
pub fn push_members_sql(s: &mut Sql, ws: &Workspace, def: &CohortDef, now_us: i64) -> Result<()> {
    def.validate()?;
    super::query::check_events(ws, def.event_names())?;
    let from = super::query::events_with_persons(ws)?;
    s.push("SELECT p.person_id FROM persons p WHERE ");
    for (i, c) in def.criteria.iter().enumerate() {
        if i > 0 {
            s.push(match def.combine {
                Combine::All => " AND ",
                Combine::Any => " OR ",
            });
        }
        s.push("(");
        match c {
            Criterion::Performed {
                event,
                filters,
                at_least,
                within_days,
            } => {
                s.push("p.person_id IN (");
                push_did(s, &from, event, filters, *within_days, now_us)?;
                s.push(" HAVING count(*) >= ").bind(*at_least).push(")");
            }
            Criterion::NotPerformed {
                event,
                filters,
                within_days,
            } => {
                s.push("p.person_id NOT IN (");
                push_did(s, &from, event, filters, *within_days, now_us)?;
                s.push(")");
            }
            Criterion::Property { filter } => {
                let f = PropertyFilter {
                    source: PropertySource::Person,
                    ..filter.clone()
                };
                push_filter(s, &f)?;
            }
            Criterion::FirstSeen { date_range } => {
                let tz = ModelSettings::load(ws)?.time_zone;
                let r = date_range.resolve(ws, now_us, &tz)?;
                s.push("p.person_id IN (SELECT person_id FROM profiles WHERE first_seen >= make_timestamptz(")
                    .bind(r.from_us)
                    .push(") AND first_seen <= make_timestamptz(")
                    .bind(r.to_us)
                    .push("))");
            }
        }
        s.push(")");
    }
    Ok(())
}

fn push_did(
    s: &mut Sql,
    from: &str,
    event: &str,
    filters: &[PropertyFilter],
    within_days: i64,
    now_us: i64,
) -> Result<()> {
    let needs_person = filters.iter().any(|f| f.source == PropertySource::Person);
    s.push("SELECT ep.person_id FROM ").push(from);
    if needs_person {
        s.push(" LEFT JOIN persons p ON p.person_id = ep.person_id");
    }
    s.push(" WHERE ep.person_id IS NOT NULL AND e.event_name = ")
        .bind(event.to_string())
        .push(" AND e.ts_utc > make_timestamptz(")
        .bind(now_us.saturating_sub(within_days.saturating_mul(86_400_000_000)))
        .push(") AND e.ts_utc <= make_timestamptz(")
        .bind(now_us)
        .push(") AND ");
    push_filters(s, filters)?;
    s.push(" GROUP BY ep.person_id");
    Ok(())
}

const STORE: NamedStore = NamedStore {
    table: "cohorts",
    column: "definition",
    noun: "cohort",
    unknown_code: "unknown_cohort",
    invalid_code: "cohort_definition",
    list_hint: "stitchbook cohort list",
};

/// A saved cohort's definition; refused, with the cohort's name, when it names an event
/// the workspace does not have.
pub fn load(ws: &Workspace, name: &str) -> Result<CohortDef> {
    let def: CohortDef = STORE.load(ws, name)?;
    super::query::check_events(ws, def.event_names())
        .map_err(|e| super::query::in_saved("cohort", name, e))?;
    Ok(def)
}

/// Save (or replace) a cohort; `now_us` stamps it.
pub fn save(ws: &Workspace, name: &str, def: &CohortDef, now_us: i64) -> Result<()> {
    def.validate()?;
    super::query::check_events(ws, def.event_names())?;
    STORE.save(ws, name, def, now_us)
}

/// Delete a saved cohort; false when there was none.
pub fn delete(ws: &Workspace, name: &str) -> Result<bool> {
    STORE.delete(ws, name)
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct SavedCohort {
    pub name: String,
    pub definition: CohortDef,
}

/// Every saved cohort, by name.
pub fn list(ws: &Workspace) -> Result<Vec<SavedCohort>> {
    Ok(STORE
        .list(ws)?
        .into_iter()
        .map(|(name, definition)| SavedCohort { name, definition })
        .collect())
}

/// The member ids of a definition as of `now_us`, sorted.
pub fn member_ids(ws: &Workspace, def: &CohortDef, now_us: i64) -> Result<Vec<String>> {
    let mut s = Sql::new("");
    push_members_sql(&mut s, ws, def, now_us)?;
    s.push(" ORDER BY 1");
    let mut st = ws.conn().prepare(&s.text)?;
    let rows = st.query_map(duckdb::params_from_iter(s.params.iter()), |r| r.get(0))?;
    Ok(rows.collect::<duckdb::Result<_>>()?)
}

/// The members of a saved cohort as person summaries.
pub fn members(ws: &Workspace, name: &str, now_us: i64) -> Result<Vec<PersonSummary>> {
    let def = load(ws, name)?;
    person::summaries(ws, &member_ids(ws, &def, now_us)?)
}

/// ` AND <col> IN (members) AND <col> NOT IN (excluded)` for a scope (empty when the scope
/// is empty). `col` is a trusted column expression such as `ep.person_id`.
pub fn scope_sql(ws: &Workspace, scope: &Scope, col: &str, now_us: i64) -> Result<Sql> {
    let mut s = Sql::new("");
    for (name, op) in [
        (&scope.cohort, " IN ("),
        (&scope.exclude_cohort, " NOT IN ("),
    ] {
        if let Some(name) = name {
            let def = load(ws, name)?;
            s.push(" AND ").push(col).push(op);
            push_members_sql(&mut s, ws, &def, now_us)?;
            s.push(")");
        }
    }
    Ok(s)
}

/// Members of a cohort as CSV: person id, display id, email, first and last seen, events.
pub fn members_csv(rows: &[PersonSummary]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| EngineError::InvalidArgument(format!("writing CSV: {e}"));
    w.write_record([
        "person_id",
        "name",
        "email",
        "identified",
        "distinct_ids",
        "created_at",
        "last_seen",
        "events",
        "sessions",
    ])
    .map_err(io)?;
    for p in rows {
        w.write_record([
            p.person_id.as_str(),
            p.display_name.as_deref().unwrap_or(""),
            p.email.as_deref().unwrap_or(""),
            if p.is_identified { "true" } else { "false" },
            &p.distinct_ids.to_string(),
            p.created_at.as_deref().unwrap_or(""),
            p.last_seen.as_deref().unwrap_or(""),
            &p.events.to_string(),
            &p.sessions.to_string(),
        ])
        .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| EngineError::InvalidArgument(format!("writing CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| EngineError::InvalidArgument(format!("CSV: {e}")))
}
