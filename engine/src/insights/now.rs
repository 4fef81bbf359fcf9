//! Which instant "now" is for an insight. An export ends in the past, so by default `now` is
//! the end of the workspace's data (its last event's time): relative ranges (`-4w`) count
//! back from there, cohorts are evaluated there, and periods after it are not complete. The
//! `insights.now` setting switches to the wall clock; an explicit `--now` always wins.
//!
//! The engine never reads the clock: callers (the CLI, the app) pass the clock's value in,
//! and [`resolve`] picks the instant.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::workspace::Workspace;
use crate::{EngineError, Result};

/// The workspace setting (`stitchbook settings --set insights.now=wall_clock`).
pub const SETTING: &str = "insights.now";

/// What `now` is when the caller gives none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum NowMode {
    /// The last event's time (the clock, if the data runs past it or there is none).
    #[default]
    DataEnd,
    /// The clock's time.
    WallClock,
}

impl NowMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NowMode::DataEnd => "data_end",
            NowMode::WallClock => "wall_clock",
        }
    }

    pub fn parse(v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "data_end" | "data" | "end_of_data" => Ok(NowMode::DataEnd),
            "wall_clock" | "clock" | "now" => Ok(NowMode::WallClock),
            _ => Err(EngineError::InvalidArgument(format!(
                "{SETTING} must be data_end (the last event's time) or wall_clock, not \"{v}\""
            ))),
        }
    }

    /// The workspace's choice (default: the end of the data).
    pub fn load(ws: &Workspace) -> Result<Self> {
        match ws.setting(SETTING)? {
            Some(v) => NowMode::parse(&v),
            None => Ok(NowMode::default()),
        }
    }

    /// Validate and store the workspace's choice.
    pub fn set(ws: &Workspace, value: &str) -> Result<Self> {
        let mode = NowMode::parse(value)?;
        ws.set_setting(SETTING, mode.as_str())?;
        Ok(mode)
    }
}

/// Where the instant came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub enum NowSource {
    /// The last event's time.
    DataEnd,
    /// The clock the caller passed.
    WallClock,
    /// Given explicitly (`--now`).
    Given,
}

/// The instant an insight is computed as of, and how to say so.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
#[ts(export, export_to = "../../ui/src/lib/ipc/bindings/")]
pub struct AsOf {
    /// µs since 1970.
    #[ts(type = "number")]
    pub now_us: i64,
    pub source: NowSource,
    /// The local day of `now` in the workspace time zone, `YYYY-MM-DD`.
    pub date: String,
    /// How to say it: "as of 3 Feb 2024, the end of the data", "as of now, 5 Mar 2026".
    pub label: String,
}

/// The first and last event's times (µs); none for a workspace without events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSpan {
    pub first_us: i64,
    pub last_us: i64,
}

/// The span of the workspace's events (remembered until the events change).
pub fn data_span(ws: &Workspace) -> Result<Option<DataSpan>> {
    let fingerprint = crate::remembered::events_fingerprint(ws)?;
    let span: Option<(i64, i64)> =
        crate::remembered::remembered(ws, "events_span", &fingerprint, || {
            let (first, last): (Option<i64>, Option<i64>) = ws.conn().query_row(
                "SELECT epoch_us(min(ts_utc)), epoch_us(max(ts_utc)) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(first.zip(last))
        })?;
    Ok(span.map(|(first_us, last_us)| DataSpan { first_us, last_us }))
}

/// Why `now` is what it is, before it is put in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Given,
    DataEnd,
    Clock,
    /// The end of the data was asked for, but there are no events.
    ClockNoData,
    /// The end of the data was asked for, but some events are dated after the clock.
    ClockDataAhead,
}

/// The rule: an explicit `now` wins; else the setting's choice, where the end of the data
/// falls back to the clock when there is no data or the data runs past the clock.
fn pick(mode: NowMode, given: Option<i64>, clock_us: i64, data_last_us: Option<i64>) -> (i64, Why) {
    if let Some(t) = given {
        return (t, Why::Given);
    }
    match (mode, data_last_us) {
        (NowMode::WallClock, _) => (clock_us, Why::Clock),
        (NowMode::DataEnd, None) => (clock_us, Why::ClockNoData),
        (NowMode::DataEnd, Some(last)) if last > clock_us => (clock_us, Why::ClockDataAhead),
        (NowMode::DataEnd, Some(last)) => (last, Why::DataEnd),
    }
}

/// `now` for an insight: `given` (an explicit `--now`) if any, else the workspace setting's
/// choice between the end of its data and `clock_us` (the caller's clock).
pub fn resolve(ws: &Workspace, given: Option<i64>, clock_us: i64) -> Result<AsOf> {
    let mode = NowMode::load(ws)?;
    let last = match (given, mode) {
        (None, NowMode::DataEnd) => data_span(ws)?.map(|s| s.last_us),
        _ => None,
    };
    let (now_us, why) = pick(mode, given, clock_us, last);
    let tz = crate::model::ModelSettings::load(ws)?.time_zone;
    let (date, day, time): (String, String, String) = ws.conn().query_row(
        "SELECT strftime(timezone(?, make_timestamptz(?)), '%Y-%m-%d'),
                strftime(timezone(?, make_timestamptz(?)), '%-d %b %Y'),
                strftime(timezone(?, make_timestamptz(?)), '%H:%M')",
        duckdb::params![tz, now_us, tz, now_us, tz, now_us],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let (source, label) = match why {
        Why::Given => (
            NowSource::Given,
            format!("as of {day} {time} ({tz}), as given"),
        ),
        Why::DataEnd => (
            NowSource::DataEnd,
            format!("as of {day}, the end of the data"),
        ),
        Why::Clock => (NowSource::WallClock, format!("as of now, {day}")),
        Why::ClockNoData => (
            NowSource::WallClock,
            format!("as of now, {day} (the workspace has no events)"),
        ),
        Why::ClockDataAhead => (
            NowSource::WallClock,
            format!("as of now, {day} (some events are dated after the clock)"),
        ),
    };
    Ok(AsOf {
        now_us,
        source,
        date,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_now_wins_then_the_setting_decides() {
        let (clock, last) = (2_000, 1_000);
        assert_eq!(
            pick(NowMode::DataEnd, Some(5), clock, Some(last)),
            (5, Why::Given)
        );
        assert_eq!(
            pick(NowMode::WallClock, Some(5), clock, Some(last)),
            (5, Why::Given)
        );
        assert_eq!(
            pick(NowMode::DataEnd, None, clock, Some(last)),
            (last, Why::DataEnd)
        );
        assert_eq!(
            pick(NowMode::WallClock, None, clock, Some(last)),
            (clock, Why::Clock)
        );
        assert_eq!(
            pick(NowMode::DataEnd, None, clock, None),
            (clock, Why::ClockNoData)
        );
        assert_eq!(
            pick(NowMode::DataEnd, None, clock, Some(3_000)),
            (clock, Why::ClockDataAhead)
        );
    }

    #[test]
    fn the_setting_parses_its_two_values() {
        assert_eq!(NowMode::parse("data_end").ok(), Some(NowMode::DataEnd));
        assert_eq!(
            NowMode::parse(" Wall-Clock ").ok(),
            Some(NowMode::WallClock)
        );
        assert!(NowMode::parse("yesterday").is_err());
    }
}
