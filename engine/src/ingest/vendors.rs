//! Vendor importers that are pure SQL over the staging tables: one SQL file per vendor for the
//! events (and optionally links and group snapshots), all on the shared pipeline.

use super::{Target, VendorImporter};
use crate::sql::Sql;

/// An importer defined by its SQL files.
pub struct SqlImporter {
    pub vendor: &'static str,
    pub target: Target,
    pub required: &'static [&'static str],
    pub events: &'static str,
    pub links: Option<&'static str>,
    pub groups: Option<&'static str>,
}

impl VendorImporter for SqlImporter {
    fn vendor(&self) -> &'static str {
        self.vendor
    }

    fn target(&self) -> Target {
        self.target
    }

    fn required_columns(&self) -> Vec<String> {
        self.required.iter().map(|s| s.to_string()).collect()
    }

    fn events_sql(&self) -> Sql {
        Sql::new(self.events)
    }

    fn links_sql(&self) -> Option<Sql> {
        self.links.map(Sql::new)
    }

    fn groups_sql(&self) -> Option<Sql> {
        self.groups.map(Sql::new)
    }
}

/// PostHog batch exports, events model (formats.md §1): JSON lines (plain or gzip), CSV and
/// Parquet all arrive as staged JSON objects.
pub const POSTHOG: SqlImporter = SqlImporter {
    vendor: "posthog",
    target: Target::Events,
    required: &["uuid", "event", "distinct_id", "timestamp"],
    events: include_str!("../../sql/posthog_events.sql"),
    links: Some(include_str!("../../sql/posthog_links.sql")),
    groups: Some(include_str!("../../sql/posthog_groups.sql")),
};

/// PostHog batch exports, persons model: person property snapshots plus the exported
/// distinct_id → person_id mapping as `person_map` identity links.
pub const POSTHOG_PERSONS: SqlImporter = SqlImporter {
    vendor: "posthog",
    target: Target::PersonSnapshots,
    required: &["distinct_id", "person_id"],
    events: include_str!("../../sql/posthog_persons.sql"),
    links: Some(
        "SELECT distinct_id AS from_id, person_key AS to_id, 'person_map' AS link_kind, as_of AS ts_utc, line, NULL AS event_uuid
         FROM stg_loaded WHERE NOT is_deleted",
    ),
    groups: None,
};

/// Segment Spec records: raw S3 logs (gzip JSON lines) and SDK batch payloads.
pub const SEGMENT: SqlImporter = SqlImporter {
    vendor: "segment",
    target: Target::Events,
    required: &["type"],
    events: include_str!("../../sql/segment_events.sql"),
    links: Some(include_str!("../../sql/segment_links.sql")),
    groups: Some(include_str!("../../sql/segment_groups.sql")),
};

/// RudderStack object-storage dumps: the Segment Spec plus channel, rudderId and
/// context.sessionId.
pub const RUDDERSTACK: SqlImporter = SqlImporter {
    vendor: "rudderstack",
    ..SEGMENT
};

pub const MIXPANEL: SqlImporter = SqlImporter {
    vendor: "mixpanel",
    target: Target::Events,
    required: &["event", "properties"],
    events: include_str!("../../sql/mixpanel_events.sql"),
    links: Some(include_str!("../../sql/mixpanel_links.sql")),
    groups: None,
};

pub const AMPLITUDE: SqlImporter = SqlImporter {
    vendor: "amplitude",
    target: Target::Events,
    required: &["event_type"],
    events: include_str!("../../sql/amplitude_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
};

pub const GA4: SqlImporter = SqlImporter {
    vendor: "ga4",
    target: Target::Events,
    required: &["event_name", "event_timestamp"],
    events: include_str!("../../sql/ga4_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
};

/// Snowplow atomic events as exported from a warehouse (CSV with a header, or Parquet).
pub const SNOWPLOW: SqlImporter = SqlImporter {
    vendor: "snowplow",
    target: Target::Events,
    required: &["event_id", "collector_tstamp"],
    events: include_str!("../../sql/snowplow_events.sql"),
    links: Some(include_str!("../../sql/snowplow_links.sql")),
    groups: None,
};

/// Segment warehouse tables and RudderStack data-lake rows (flattened snake_case).
pub const SEGMENT_WAREHOUSE: SqlImporter = SqlImporter {
    vendor: "segment",
    target: Target::Events,
    required: &["id", "received_at"],
    events: include_str!("../../sql/warehouse_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
};

pub const RUDDERSTACK_WAREHOUSE: SqlImporter = SqlImporter {
    vendor: "rudderstack",
    ..SEGMENT_WAREHOUSE
};
