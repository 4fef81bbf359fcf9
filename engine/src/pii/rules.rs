//! Custom detectors saved in the workspace: a name, a regular expression (RE2 syntax, as
//! DuckDB's `regexp_matches` reads it) and a severity. Patterns are validated by DuckDB when
//! saved and always bound as parameters, never spliced into SQL.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::detect::Severity;
use crate::workspace::Workspace;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct CustomRule {
    pub name: String,
    pub pattern: String,
    pub severity: Severity,
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidQuery {
        code: "pii_invalid_rule",
        message,
    }
}

/// Save (or replace) a rule. The name must be a short identifier; the pattern must compile.
pub fn save(ws: &Workspace, rule: &CustomRule, now_us: i64) -> Result<()> {
    let ok_name = !rule.name.is_empty()
        && rule.name.len() <= 64
        && rule
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok_name {
        return Err(invalid(format!(
            "a rule name is 1-64 letters, digits, '_' or '-', not \"{}\"",
            rule.name
        )));
    }
    if rule.pattern.is_empty() {
        return Err(invalid("the pattern is empty".into()));
    }
    let compiled: duckdb::Result<bool> =
        ws.conn()
            .query_row("SELECT regexp_matches('', ?)", [&rule.pattern], |r| {
                r.get(0)
            });
    if let Err(e) = compiled {
        return Err(invalid(format!(
            "rule {}: the pattern does not compile: {e}",
            rule.name
        )));
    }
    ws.conn().execute(
        "INSERT OR REPLACE INTO pii_rules VALUES (?, ?, ?, make_timestamptz(?))",
        duckdb::params![rule.name, rule.pattern, rule.severity.as_str(), now_us],
    )?;
    Ok(())
}

pub fn list(ws: &Workspace) -> Result<Vec<CustomRule>> {
    let mut st = ws
        .conn()
        .prepare("SELECT name, pattern, severity FROM pii_rules ORDER BY name")?;
    let rows = st.query_map([], |r| {
        let sev: String = r.get(2)?;
        Ok(CustomRule {
            name: r.get(0)?,
            pattern: r.get(1)?,
            severity: Severity::parse(&sev).unwrap_or(Severity::Medium),
        })
    })?;
    Ok(rows.collect::<duckdb::Result<Vec<_>>>()?)
}

/// Delete a rule; false when there was none by that name.
pub fn delete(ws: &Workspace, name: &str) -> Result<bool> {
    Ok(ws
        .conn()
        .execute("DELETE FROM pii_rules WHERE name = ?", [name])?
        > 0)
}
