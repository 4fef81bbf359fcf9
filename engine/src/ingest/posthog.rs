//! PostHog batch exports, events model (formats.md §1). JSON lines (plain or gzip), CSV and
//! Parquet all arrive here as staged JSON objects.

use super::{Target, VendorImporter};
use crate::sql::Sql;

pub struct PostHogImporter;

impl VendorImporter for PostHogImporter {
    fn vendor(&self) -> &'static str {
        "posthog"
    }

    fn required_columns(&self) -> Vec<String> {
        ["uuid", "event", "distinct_id", "timestamp"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn events_sql(&self) -> Sql {
        Sql::new(include_str!("../../sql/posthog_events.sql"))
    }

    fn links_sql(&self) -> Option<Sql> {
        Some(Sql::new(include_str!("../../sql/posthog_links.sql")))
    }

    fn groups_sql(&self) -> Option<Sql> {
        Some(Sql::new(include_str!("../../sql/posthog_groups.sql")))
    }
}

/// PostHog batch exports, persons model: person property snapshots plus the exported
/// distinct_id → person_id mapping as `person_map` identity links.
pub struct PostHogPersonsImporter;

impl VendorImporter for PostHogPersonsImporter {
    fn vendor(&self) -> &'static str {
        "posthog"
    }

    fn target(&self) -> Target {
        Target::PersonSnapshots
    }

    fn required_columns(&self) -> Vec<String> {
        ["distinct_id", "person_id"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn events_sql(&self) -> Sql {
        Sql::new(include_str!("../../sql/posthog_persons.sql"))
    }

    fn links_sql(&self) -> Option<Sql> {
        Some(Sql::new(
            "SELECT distinct_id AS from_id, person_key AS to_id, 'person_map' AS link_kind, as_of AS ts_utc, line, NULL AS event_uuid
             FROM stg_loaded WHERE NOT is_deleted",
        ))
    }
}
