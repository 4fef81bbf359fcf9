//! PostHog batch exports, events model (formats.md §1). JSON lines (plain or gzip), CSV and
//! Parquet all arrive here as staged JSON objects.

use super::VendorImporter;
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
