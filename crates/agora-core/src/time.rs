//! Timestamps: integer milliseconds since the Unix epoch, shown as RFC 3339 UTC.
//!
//! Both storage backends keep times as `BIGINT` milliseconds: the same column type and the
//! same comparisons on SQLite and PostgreSQL, exact and index-friendly.

use std::fmt;

use serde::{Serialize, Serializer};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The wall clock, read once at the edge and passed inward.
    pub fn now() -> Self {
        Self((OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub const fn plus_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    pub const fn plus_seconds(self, s: i64) -> Self {
        Self(self.0.saturating_add(s.saturating_mul(1000)))
    }

    /// The calendar month (UTC) this falls in, `YYYY-MM`: the period of monthly quotas.
    pub fn month(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .map(|t| format!("{:04}-{:02}", t.year(), u8::from(t.month())))
            .unwrap_or_else(|_| "0000-00".to_owned())
    }

    /// Reads an RFC 3339 time (as `to_rfc3339` writes it), to the millisecond.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok().map(Self)
    }

    /// RFC 3339 UTC with exactly three fractional digits, so that the strings of two
    /// times sort as the times do (`…:00.120Z` before `…:00.125Z`; the shortest form,
    /// `…:00.12Z`, would sort after it).
    pub fn to_rfc3339(self) -> String {
        const FORMAT: &[time::format_description::BorrowedFormatItem<'_>] = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|t| t.format(FORMAT).ok())
            .unwrap_or_else(|| self.0.to_string())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// Reads what [`Serialize`] writes (RFC 3339), for times kept inside stored JSON.
impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("not an RFC 3339 time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc_with_millis() {
        assert_eq!(Timestamp::from_millis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::from_millis(120).to_rfc3339(), "1970-01-01T00:00:00.120Z");
        assert_eq!(Timestamp::from_millis(1_700_000_000_123).to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(Timestamp::from_millis(1000).plus_seconds(2).millis(), 3000);
        assert_eq!(Timestamp::from_millis(1_700_000_000_123).month(), "2023-11");
        assert_eq!(Timestamp::from_millis(0).month(), "1970-01");
    }

    #[test]
    fn formatted_times_sort_as_the_times_do() {
        let times: Vec<Timestamp> = [0, 1, 10, 100, 120, 125, 999, 1000, 1001, 60_000]
            .into_iter()
            .map(Timestamp::from_millis)
            .collect();
        for pair in times.windows(2) {
            assert!(pair[0].to_rfc3339() < pair[1].to_rfc3339(), "{:?}", pair);
        }
    }

    #[test]
    fn parses_what_it_formats() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-14T23:13:20.5+01:00"),
            Some(Timestamp::from_millis(1_700_000_000_500))
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }
}
