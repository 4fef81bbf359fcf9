//! Times as people read them: one format for every CLI table and report screen,
//! `2024-01-02 13:15:33 UTC`, in the workspace time zone (setting `time_zone`). JSON keeps
//! ISO 8601; only text meant for reading goes through here.

use jiff::{tz::TimeZone, Timestamp};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm), for the
/// few places that turn dates into instants per record without a time zone.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats instants in one time zone. Built once per command or screen.
#[derive(Clone, Debug)]
pub struct TimeFormat {
    tz: TimeZone,
}

impl Default for TimeFormat {
    fn default() -> Self {
        Self { tz: TimeZone::UTC }
    }
}

impl TimeFormat {
    /// A formatter for an IANA time zone name (`Europe/Berlin`, `UTC`). An unknown name
    /// falls back to UTC, which the output then names, so nothing is shown in a wrong zone
    /// without saying so.
    pub fn new(time_zone: &str) -> Self {
        let tz = match time_zone.trim() {
            "" | "UTC" | "utc" | "Etc/UTC" => TimeZone::UTC,
            name => TimeZone::get(name).unwrap_or(TimeZone::UTC),
        };
        Self { tz }
    }

    /// The workspace's formatter: its `time_zone` setting, else UTC.
    pub fn for_workspace(ws: &crate::Workspace) -> crate::Result<Self> {
        let tz = ws.setting("time_zone")?.unwrap_or_default();
        Ok(Self::new(&tz))
    }

    /// Microseconds since the epoch, as `2024-01-02 13:15:33 UTC`.
    pub fn micros(&self, us: i64) -> String {
        match Timestamp::from_microsecond(us) {
            Ok(t) => t
                .to_zoned(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string(),
            Err(_) => us.to_string(),
        }
    }

    /// Seconds since the epoch, as [`TimeFormat::micros`].
    pub fn seconds(&self, s: i64) -> String {
        self.micros(s.saturating_mul(1_000_000))
    }

    /// An ISO 8601 / RFC 3339 text as the engine writes it (`2024-01-02T13:15:33.000000Z`,
    /// `2024-01-02 13:15:33.000000+00:00`, `2024-01-02T13:15:33Z`) in the readable format.
    /// Text that is not a date-time is returned unchanged.
    pub fn iso(&self, text: &str) -> String {
        parse_instant(text)
            .map(|t| self.micros(t.as_microsecond()))
            .unwrap_or_else(|| text.to_string())
    }

    /// [`TimeFormat::iso`] for an optional value; `-` when absent.
    pub fn opt(&self, text: Option<&str>) -> String {
        text.map(|t| self.iso(t)).unwrap_or_else(|| "-".into())
    }

    /// A day only, `3 Feb 2024`, for dates in prose ("as of 3 Feb 2024").
    pub fn day_micros(&self, us: i64) -> String {
        match Timestamp::from_microsecond(us) {
            Ok(t) => t
                .to_zoned(self.tz.clone())
                .strftime("%-d %b %Y")
                .to_string(),
            Err(_) => us.to_string(),
        }
    }
}

fn parse_instant(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    if t.len() < 19 || t.as_bytes().get(4).is_none_or(|b| *b != b'-') {
        return None;
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Some(ts);
    }
    // `2024-01-02 13:15:33` and `2024-01-02T13:15:33.123` without an offset are UTC here:
    // the engine writes UTC everywhere it leaves the offset out.
    let civil = t.replacen(' ', "T", 1);
    civil
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
        .map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iso_shape_the_engine_writes_reads_the_same() {
        let f = TimeFormat::new("UTC");
        for s in [
            "2024-01-02T13:15:33.000000Z",
            "2024-01-02 13:15:33.000000+00:00",
            "2024-01-02T13:15:33Z",
            "2024-01-02T13:15:33.000000+00:00",
            "2024-01-02 13:15:33",
        ] {
            assert_eq!(f.iso(s), "2024-01-02 13:15:33 UTC", "{s}");
        }
        assert_eq!(f.iso("not a time"), "not a time");
        assert_eq!(f.opt(None), "-");
    }

    #[test]
    fn the_workspace_zone_applies_with_daylight_saving() {
        let f = TimeFormat::new("America/New_York");
        assert_eq!(f.iso("2024-01-02T13:15:33Z"), "2024-01-02 08:15:33 EST");
        assert_eq!(f.iso("2024-07-02T13:15:33Z"), "2024-07-02 09:15:33 EDT");
        // 2024-02-03 00:00 UTC is still the 2nd in New York.
        assert_eq!(f.day_micros(1_706_918_400_000_000), "2 Feb 2024");
        assert_eq!(
            TimeFormat::new("UTC").day_micros(1_706_918_400_000_000),
            "3 Feb 2024"
        );
        // An unknown zone name shows UTC and says so.
        assert_eq!(
            TimeFormat::new("Mars/Olympus").iso("2024-01-02T13:15:33Z"),
            "2024-01-02 13:15:33 UTC"
        );
    }
}
