//! Vendor importers that are pure SQL over the staging tables: one SQL file per vendor for the
//! events (and optionally links and group snapshots), all on the shared pipeline.

use super::VendorImporter;
use crate::sql::Sql;

/// An importer defined by its SQL files.
pub struct SqlImporter {
    pub vendor: &'static str,
    pub required: &'static [&'static str],
    pub events: &'static str,
    pub links: Option<&'static str>,
    pub groups: Option<&'static str>,
}

impl VendorImporter for SqlImporter {
    fn vendor(&self) -> &'static str {
        self.vendor
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

/// Segment Spec records: raw S3 logs (gzip JSON lines) and SDK batch payloads.
pub const SEGMENT: SqlImporter = SqlImporter {
    vendor: "segment",
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
    required: &["event", "properties"],
    events: include_str!("../../sql/mixpanel_events.sql"),
    links: Some(include_str!("../../sql/mixpanel_links.sql")),
    groups: None,
};

pub const AMPLITUDE: SqlImporter = SqlImporter {
    vendor: "amplitude",
    required: &["event_type"],
    events: include_str!("../../sql/amplitude_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
};

pub const GA4: SqlImporter = SqlImporter {
    vendor: "ga4",
    required: &["event_name", "event_timestamp"],
    events: include_str!("../../sql/ga4_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
};

/// Snowplow atomic events as exported from a warehouse (CSV with a header, or Parquet).
pub const SNOWPLOW: SqlImporter = SqlImporter {
    vendor: "snowplow",
    required: &["event_id", "collector_tstamp"],
    events: include_str!("../../sql/snowplow_events.sql"),
    links: Some(include_str!("../../sql/snowplow_links.sql")),
    groups: None,
};

/// Segment warehouse tables and RudderStack data-lake rows (flattened snake_case).
pub const SEGMENT_WAREHOUSE: SqlImporter = SqlImporter {
    vendor: "segment",
    required: &["id", "received_at"],
    events: include_str!("../../sql/warehouse_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
};

pub const RUDDERSTACK_WAREHOUSE: SqlImporter = SqlImporter {
    vendor: "rudderstack",
    ..SEGMENT_WAREHOUSE
};
