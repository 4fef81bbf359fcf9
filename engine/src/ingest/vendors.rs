//! Vendor importers that are pure SQL over the staging tables: one SQL file per vendor for the
//! events (and optionally links and group snapshots), all on the shared pipeline.

use super::fast::Shape;
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
    /// A Rust mapper for the records it is sure of (the rest still go through `events`).
    pub fast: Option<Shape>,
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

    fn fast(&self) -> Option<Shape> {
        self.fast
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
    fast: Some(Shape::PostHogEvents),
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
    fast: None,
};

/// Segment Spec records: raw S3 logs (gzip JSON lines) and SDK batch payloads.
pub const SEGMENT: SqlImporter = SqlImporter {
    vendor: "segment",
    target: Target::Events,
    required: &["type"],
    events: include_str!("../../sql/segment_events.sql"),
    links: Some(include_str!("../../sql/segment_links.sql")),
    groups: Some(include_str!("../../sql/segment_groups.sql")),
    fast: None,
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
    fast: None,
};

pub const AMPLITUDE: SqlImporter = SqlImporter {
    vendor: "amplitude",
    target: Target::Events,
    required: &["event_type"],
    events: include_str!("../../sql/amplitude_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: Some(include_str!("../../sql/amplitude_groups.sql")),
    fast: None,
};

/// Amplitude merged-ids files: `merged_vendor_id` identity links between amplitude_ids.
pub const AMPLITUDE_MERGED_IDS: SqlImporter = SqlImporter {
    vendor: "amplitude",
    target: Target::Links,
    required: &["amplitude_id", "merged_amplitude_id"],
    events: include_str!("../../sql/amplitude_merged_ids.sql"),
    links: None,
    groups: None,
    fast: None,
};

pub const GA4: SqlImporter = SqlImporter {
    vendor: "ga4",
    target: Target::Events,
    required: &["event_name", "event_timestamp"],
    events: include_str!("../../sql/ga4_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
    fast: None,
};

/// Snowplow atomic events as exported from a warehouse (CSV with a header, or Parquet).
pub const SNOWPLOW: SqlImporter = SqlImporter {
    vendor: "snowplow",
    target: Target::Events,
    required: &["event_id", "collector_tstamp"],
    events: include_str!("../../sql/snowplow_events.sql"),
    links: Some(include_str!("../../sql/snowplow_links.sql")),
    groups: None,
    fast: None,
};

/// Segment warehouse tables and RudderStack data-lake rows (flattened snake_case).
pub const SEGMENT_WAREHOUSE: SqlImporter = SqlImporter {
    vendor: "segment",
    target: Target::Events,
    required: &["id", "received_at"],
    events: include_str!("../../sql/warehouse_events.sql"),
    links: Some(include_str!("../../sql/device_user_pairs.sql")),
    groups: None,
    fast: None,
};

pub const RUDDERSTACK_WAREHOUSE: SqlImporter = SqlImporter {
    vendor: "rudderstack",
    ..SEGMENT_WAREHOUSE
};

/// The 131 fields of a Snowplow enriched event, in TSV order (formats.md §6.1; the
/// documented index table, 0 `app_id` … 130 `true_tstamp`).
pub const SNOWPLOW_ENRICHED_COLUMNS: [&str; 131] = [
    "app_id",
    "platform",
    "etl_tstamp",
    "collector_tstamp",
    "dvce_created_tstamp",
    "event",
    "event_id",
    "txn_id",
    "name_tracker",
    "v_tracker",
    "v_collector",
    "v_etl",
    "user_id",
    "user_ipaddress",
    "user_fingerprint",
    "domain_userid",
    "domain_sessionidx",
    "network_userid",
    "geo_country",
    "geo_region",
    "geo_city",
    "geo_zipcode",
    "geo_latitude",
    "geo_longitude",
    "geo_region_name",
    "ip_isp",
    "ip_organization",
    "ip_domain",
    "ip_netspeed",
    "page_url",
    "page_title",
    "page_referrer",
    "page_urlscheme",
    "page_urlhost",
    "page_urlport",
    "page_urlpath",
    "page_urlquery",
    "page_urlfragment",
    "refr_urlscheme",
    "refr_urlhost",
    "refr_urlport",
    "refr_urlpath",
    "refr_urlquery",
    "refr_urlfragment",
    "refr_medium",
    "refr_source",
    "refr_term",
    "mkt_medium",
    "mkt_source",
    "mkt_term",
    "mkt_content",
    "mkt_campaign",
    "contexts",
    "se_category",
    "se_action",
    "se_label",
    "se_property",
    "se_value",
    "unstruct_event",
    "tr_orderid",
    "tr_affiliation",
    "tr_total",
    "tr_tax",
    "tr_shipping",
    "tr_city",
    "tr_state",
    "tr_country",
    "ti_orderid",
    "ti_sku",
    "ti_name",
    "ti_category",
    "ti_price",
    "ti_quantity",
    "pp_xoffset_min",
    "pp_xoffset_max",
    "pp_yoffset_min",
    "pp_yoffset_max",
    "useragent",
    "br_name",
    "br_family",
    "br_version",
    "br_type",
    "br_renderengine",
    "br_lang",
    "br_features_pdf",
    "br_features_flash",
    "br_features_java",
    "br_features_director",
    "br_features_quicktime",
    "br_features_realplayer",
    "br_features_windowsmedia",
    "br_features_gears",
    "br_features_silverlight",
    "br_cookies",
    "br_colordepth",
    "br_viewwidth",
    "br_viewheight",
    "os_name",
    "os_family",
    "os_manufacturer",
    "os_timezone",
    "dvce_type",
    "dvce_ismobile",
    "dvce_screenwidth",
    "dvce_screenheight",
    "doc_charset",
    "doc_width",
    "doc_height",
    "tr_currency",
    "tr_total_base",
    "tr_tax_base",
    "tr_shipping_base",
    "ti_currency",
    "ti_price_base",
    "base_currency",
    "geo_timezone",
    "mkt_clickid",
    "mkt_network",
    "etl_tags",
    "dvce_sent_tstamp",
    "refr_domain_userid",
    "refr_dvce_tstamp",
    "derived_contexts",
    "domain_sessionid",
    "derived_tstamp",
    "event_vendor",
    "event_name",
    "event_format",
    "event_version",
    "event_fingerprint",
    "true_tstamp",
];
