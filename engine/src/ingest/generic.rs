//! Generic CSV / JSON lines / Parquet files with an explicit column mapping, given as a small
//! JSON or TOML file:
//!
//! ```toml
//! event = "event_name"
//! timestamp = "ts"
//! timestamp_format = "epoch_ms"   # iso8601 (default) | epoch_s | epoch_ms | epoch_us | a strptime pattern
//! user_id = "user"
//! anon_id = "device"
//! session_id = "session"
//! event_id = "id"                 # optional: the dedupe key
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::VendorImporter;
use crate::sql::Sql;
use crate::{EngineError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct ColumnMapping {
    pub event: String,
    pub timestamp: String,
    #[serde(default = "default_ts_format")]
    pub timestamp_format: String,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub anon_id: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub distinct_id: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
}

fn default_ts_format() -> String {
    "iso8601".to_string()
}

impl ColumnMapping {
    /// Read a mapping from a `.toml` or `.json` file (by content: JSON if it starts with `{`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        let invalid = |reason: String| EngineError::InvalidMapping {
            path: path.to_path_buf(),
            reason,
        };
        let m: ColumnMapping = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?
        } else {
            toml::from_str(&text).map_err(|e| invalid(e.to_string()))?
        };
        m.validate().map_err(invalid)?;
        Ok(m)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.event.trim().is_empty() || self.timestamp.trim().is_empty() {
            return Err("\"event\" and \"timestamp\" must name columns".into());
        }
        match self.timestamp_format.as_str() {
            "iso8601" | "epoch_s" | "epoch_ms" | "epoch_us" => Ok(()),
            f if f.contains('%') => Ok(()),
            f => Err(format!(
                "timestamp_format \"{f}\" is not one of iso8601, epoch_s, epoch_ms, epoch_us or a strptime pattern such as \"%d/%m/%Y %H:%M:%S\""
            )),
        }
    }

    fn mapped_columns(&self) -> Vec<&str> {
        let mut v = vec![self.event.as_str(), self.timestamp.as_str()];
        for c in [
            &self.user_id,
            &self.anon_id,
            &self.session_id,
            &self.distinct_id,
            &self.event_id,
        ]
        .into_iter()
        .flatten()
        {
            v.push(c.as_str());
        }
        v
    }

    /// Columns the mapping names that a file lacks.
    pub fn missing_in(&self, columns: &[String]) -> Vec<String> {
        self.mapped_columns()
            .into_iter()
            .filter(|c| !columns.iter().any(|k| k == c))
            .map(str::to_string)
            .collect()
    }
}

/// JSON pointer to a top-level key (RFC 6901 escaping).
fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

pub struct GenericImporter {
    pub mapping: ColumnMapping,
}

impl GenericImporter {
    fn col(sql: &mut Sql, key: &Option<String>) {
        match key {
            Some(k) => {
                sql.push("CASE WHEN ok THEN json_extract(raw, ")
                    .bind(pointer(k))
                    .push(") END");
            }
            None => {
                sql.push("NULL::JSON");
            }
        }
    }
}

impl VendorImporter for GenericImporter {
    fn vendor(&self) -> &'static str {
        "generic"
    }

    fn required_columns(&self) -> Vec<String> {
        self.mapping
            .mapped_columns()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn events_sql(&self) -> Sql {
        let m = &self.mapping;
        let mut s = Sql::new(
            "WITH v AS (SELECT line, raw, sb_json_reason(raw) AS json_reason, json_reason IS NULL AS ok FROM stg_json WHERE reason IS NULL), t AS (SELECT line, raw, json_reason, ok, ",
        );
        Self::col(&mut s, &Some(m.event.clone()));
        s.push(" AS c_event, ");
        Self::col(&mut s, &Some(m.timestamp.clone()));
        s.push(" AS c_ts, ");
        Self::col(&mut s, &m.user_id);
        s.push(" AS c_user, ");
        Self::col(&mut s, &m.anon_id);
        s.push(" AS c_anon, ");
        Self::col(&mut s, &m.session_id);
        s.push(" AS c_session, ");
        Self::col(&mut s, &m.distinct_id);
        s.push(" AS c_distinct, ");
        Self::col(&mut s, &m.event_id);
        s.push(" AS c_id FROM v), p AS (SELECT *, ");
        match m.timestamp_format.as_str() {
            "iso8601" => s.push("sb_ts(sb_str(c_ts))"),
            "epoch_s" => s.push("sb_epoch(sb_str(c_ts), 's')"),
            "epoch_ms" => s.push("sb_epoch(sb_str(c_ts), 'ms')"),
            "epoch_us" => s.push("sb_epoch(sb_str(c_ts), 'us')"),
            pattern => s
                .push("try_strptime(sb_str(c_ts), ")
                .bind(pattern.to_string())
                .push(")::TIMESTAMPTZ"),
        };
        s.push(" AS ts, CASE WHEN json_type(c_event) = 'VARCHAR' THEN nullif(trim(c_event ->> '$'), '') END AS ev FROM t) SELECT line, ");
        s.push("CASE WHEN sb_id(c_id) IS NULL THEN sb_uuid_of(raw) ELSE sb_id(c_id) END AS event_uuid, CASE WHEN sb_id(c_id) IS NULL THEN 'md5:' || md5(raw) ELSE sb_id(c_id) END AS dedupe_key, ");
        s.push("ev AS event_name, 'track' AS event_kind, ts AS ts_utc, NULL::TIMESTAMPTZ AS received_at_utc, ");
        s.push("coalesce(sb_id(c_distinct), sb_id(c_user), sb_id(c_anon)) AS distinct_id, sb_id(c_user) AS user_id, sb_id(c_anon) AS anon_id, sb_id(c_session) AS session_id, NULL AS vendor_person_id, ");
        s.push("CASE WHEN ok THEN json_merge_patch(raw::JSON, json_object(");
        for (i, c) in m.mapped_columns().into_iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.bind(c.to_string()).push(", NULL");
        }
        s.push(
            ")) END AS properties, NULL::JSON AS person_properties, NULL::JSON AS groups, CASE ",
        );
        s.push("WHEN NOT ok THEN json_reason ");
        s.push("WHEN c_event IS NULL OR json_type(c_event) = 'NULL' THEN 'missing event name column ' || ")
            .bind(format!("\"{}\"", m.event))
            .push(" WHEN ev IS NULL THEN 'the event name must be non-empty text' ");
        s.push("WHEN c_ts IS NULL OR json_type(c_ts) = 'NULL' OR trim(sb_str(c_ts)) = '' THEN 'missing timestamp' ");
        s.push("WHEN ts IS NULL THEN 'unparseable timestamp \"' || sb_show(coalesce(sb_str(c_ts), c_ts::VARCHAR)) || '\" (expected ' || ")
            .bind(m.timestamp_format.clone())
            .push(" || ')' || coalesce(': ' || sb_ts_why(sb_str(c_ts)), '') END AS reject_reason FROM p");
        s
    }

    fn links_sql(&self) -> Option<Sql> {
        (self.mapping.user_id.is_some() && self.mapping.anon_id.is_some())
            .then(|| Sql::new(include_str!("../../sql/device_user_pairs.sql")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_and_json_mappings() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("m.toml");
        std::fs::write(&t, "event = \"name\"\ntimestamp = \"at\"\ntimestamp_format = \"epoch_ms\"\nuser_id = \"uid\"\n").unwrap();
        let m = ColumnMapping::load(&t).unwrap();
        assert_eq!(m.event, "name");
        assert_eq!(m.user_id.as_deref(), Some("uid"));
        let j = dir.path().join("m.json");
        std::fs::write(&j, r#"{"event": "e", "timestamp": "t"}"#).unwrap();
        let m = ColumnMapping::load(&j).unwrap();
        assert_eq!(m.timestamp_format, "iso8601");
    }

    #[test]
    fn bad_mappings_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("m.toml");
        std::fs::write(
            &t,
            "event = \"e\"\ntimestamp = \"t\"\ntimestamp_format = \"guess\"\n",
        )
        .unwrap();
        assert!(matches!(
            ColumnMapping::load(&t),
            Err(EngineError::InvalidMapping { .. })
        ));
        std::fs::write(&t, "event = \"e\"\n").unwrap();
        assert!(matches!(
            ColumnMapping::load(&t),
            Err(EngineError::InvalidMapping { .. })
        ));
        std::fs::write(&t, "event = \"e\"\ntimestamp = \"t\"\ncolour = \"red\"\n").unwrap();
        assert!(matches!(
            ColumnMapping::load(&t),
            Err(EngineError::InvalidMapping { .. })
        ));
    }

    #[test]
    fn pointer_escapes() {
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
    }
}
