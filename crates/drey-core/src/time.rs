//! TAI timestamps in the TAMS `sec:ns` form and their conversion to and from UTC.
//!
//! drey's one internal time base is a signed count of nanoseconds on the flow's timeline,
//! held in an `i64` (see `docs/design/time.md`). For TAI timelines the origin is the PTP
//! epoch, 1970-01-01T00:00:00 TAI, so the `i64` covers the years 1678 to 2262. Timestamps
//! outside that span are rejected at parse time with [`TimeError::OutOfRange`] rather than
//! wrapped. Conversions to other units (RTMP ms, 90 kHz PTS, HLS seconds, UTC) happen only
//! at the edges, through the functions here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Nanoseconds in one second.
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// Errors from parsing timestamps and time ranges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "malformed timestamp {input:?}: expected \"[-]seconds:nanoseconds\" (e.g. \"10:500000000\")"
    )]
    MalformedTimestamp { input: String },
    #[error("timestamp {input:?} is out of the supported range (about ±292 years around 1970)")]
    OutOfRange { input: String },
    #[error("malformed timerange {input:?}: {reason}")]
    MalformedTimeRange { input: String, reason: &'static str },
    #[error(
        "malformed date-time {input:?}: expected RFC 3339 / ISO 8601 UTC (e.g. 2026-11-22T10:00:00Z)"
    )]
    MalformedDateTime { input: String },
}

/// A signed timestamp with nanosecond resolution (TAMS `Timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    /// Builds a timestamp from whole seconds and a nanosecond part, both carrying the sign of
    /// the value (as `-1:500000000` means minus 1.5 s). `None` on overflow.
    pub fn from_parts(secs: i64, nanos: u32) -> Option<Self> {
        if nanos >= NS_PER_SEC as u32 {
            return None;
        }
        secs.checked_mul(NS_PER_SEC)
            .and_then(|s| {
                if secs < 0 {
                    s.checked_sub(i64::from(nanos))
                } else {
                    s.checked_add(i64::from(nanos))
                }
            })
            .map(Timestamp)
    }

    pub fn from_secs(secs: i64) -> Option<Self> {
        secs.checked_mul(NS_PER_SEC).map(Timestamp)
    }

    pub fn checked_add(self, other: Timestamp) -> Option<Timestamp> {
        self.0.checked_add(other.0).map(Timestamp)
    }

    pub fn checked_sub(self, other: Timestamp) -> Option<Timestamp> {
        self.0.checked_sub(other.0).map(Timestamp)
    }

    pub fn saturating_add(self, other: Timestamp) -> Timestamp {
        Timestamp(self.0.saturating_add(other.0))
    }

    /// The TAI timestamp for a UTC instant, applying the TAI-UTC offset (leap seconds) in
    /// force at that instant.
    pub fn from_utc(utc: time::OffsetDateTime) -> Option<Self> {
        let unix_ns = i64::try_from(utc.unix_timestamp_nanos()).ok()?;
        let offset = tai_utc_offset_secs_at_unix(unix_ns.div_euclid(NS_PER_SEC));
        unix_ns.checked_add(offset * NS_PER_SEC).map(Timestamp)
    }

    /// The UTC instant of this TAI timestamp.
    pub fn to_utc(self) -> time::OffsetDateTime {
        // The offset depends on the UTC time, which depends on the offset: resolve by trying
        // the offset at the TAI-as-unix estimate, then correcting once.
        let tai_secs = self.0.div_euclid(NS_PER_SEC);
        let mut offset = tai_utc_offset_secs_at_unix(tai_secs);
        let corrected = tai_utc_offset_secs_at_unix(tai_secs - offset);
        if corrected != offset {
            offset = corrected;
        }
        let unix_ns = i128::from(self.0) - i128::from(offset) * i128::from(NS_PER_SEC);
        time::OffsetDateTime::from_unix_timestamp_nanos(unix_ns)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses an RFC 3339 date-time (UTC or with an offset) into a TAI timestamp.
    pub fn parse_utc(s: &str) -> Result<Self, TimeError> {
        let err = || TimeError::MalformedDateTime {
            input: s.to_owned(),
        };
        let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| err())?;
        Timestamp::from_utc(dt).ok_or_else(err)
    }

    /// The current time as a TAI timestamp.
    pub fn now_tai() -> Self {
        Timestamp::from_utc(time::OffsetDateTime::now_utc()).unwrap_or(Timestamp::ZERO)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abs = self.0.unsigned_abs();
        let secs = abs / NS_PER_SEC as u64;
        let nanos = abs % NS_PER_SEC as u64;
        if self.0 < 0 {
            write!(f, "-{secs}:{nanos}")
        } else {
            write!(f, "{secs}:{nanos}")
        }
    }
}

impl FromStr for Timestamp {
    type Err = TimeError;

    /// Parses the TAMS form `^-?(0|[1-9][0-9]*):(0|[1-9][0-9]{0,8})$` exactly.
    fn from_str(s: &str) -> Result<Self, TimeError> {
        let malformed = || TimeError::MalformedTimestamp {
            input: s.to_owned(),
        };
        let (neg, rest) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (sec_s, ns_s) = rest.split_once(':').ok_or_else(malformed)?;
        let canonical_digits = |d: &str, max_len: usize| {
            !d.is_empty()
                && d.len() <= max_len
                && d.bytes().all(|b| b.is_ascii_digit())
                && (d == "0" || !d.starts_with('0'))
        };
        if !canonical_digits(sec_s, usize::MAX) || !canonical_digits(ns_s, 9) {
            return Err(malformed());
        }
        let out_of_range = || TimeError::OutOfRange {
            input: s.to_owned(),
        };
        let secs: i64 = sec_s.parse().map_err(|_| out_of_range())?;
        let nanos: u32 = ns_s.parse().map_err(|_| malformed())?;
        let secs = if neg { -secs } else { secs };
        if neg && secs == 0 {
            // "-0:5" is minus 5 ns: the sign applies to the whole value.
            return Ok(Timestamp(-i64::from(nanos)));
        }
        Timestamp::from_parts(secs, nanos).ok_or_else(out_of_range)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Leap seconds: (UTC unix second at which the new offset starts, TAI-UTC in seconds).
/// From IERS Bulletin C; the last one was 2017-01-01. Before 1972 UTC was not offset by
/// whole seconds; drey uses the 1972 value of 10 s there.
const LEAP_SECONDS: &[(i64, i64)] = &[
    (63_072_000, 10),    // 1972-01-01
    (78_796_800, 11),    // 1972-07-01
    (94_694_400, 12),    // 1973-01-01
    (126_230_400, 13),   // 1974-01-01
    (157_766_400, 14),   // 1975-01-01
    (189_302_400, 15),   // 1976-01-01
    (220_924_800, 16),   // 1977-01-01
    (252_460_800, 17),   // 1978-01-01
    (283_996_800, 18),   // 1979-01-01
    (315_532_800, 19),   // 1980-01-01
    (362_793_600, 20),   // 1981-07-01
    (394_329_600, 21),   // 1982-07-01
    (425_865_600, 22),   // 1983-07-01
    (489_024_000, 23),   // 1985-07-01
    (567_993_600, 24),   // 1988-01-01
    (631_152_000, 25),   // 1990-01-01
    (662_688_000, 26),   // 1991-01-01
    (709_948_800, 27),   // 1992-07-01
    (741_484_800, 28),   // 1993-07-01
    (773_020_800, 29),   // 1994-07-01
    (820_454_400, 30),   // 1996-01-01
    (867_715_200, 31),   // 1997-07-01
    (915_148_800, 32),   // 1999-01-01
    (1_136_073_600, 33), // 2006-01-01
    (1_230_768_000, 34), // 2009-01-01
    (1_341_100_800, 35), // 2012-07-01
    (1_435_708_800, 36), // 2015-07-01
    (1_483_228_800, 37), // 2017-01-01
];

/// TAI - UTC in whole seconds at the given UTC unix second.
pub fn tai_utc_offset_secs_at_unix(unix_secs: i64) -> i64 {
    match LEAP_SECONDS.partition_point(|&(start, _)| start <= unix_secs) {
        0 => 10,
        i => LEAP_SECONDS[i - 1].1,
    }
}

/// Formats a UTC instant as RFC 3339 with a `Z` suffix (the `date-time` of the TAMS schemas).
/// `YYYYMMDDTHHMMSSZ` (basic ISO 8601, as SigV4 dates and file names use it).
pub fn format_utc_compact(dt: time::OffsetDateTime) -> String {
    let t = dt.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub fn format_utc(dt: time::OffsetDateTime) -> String {
    dt.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let ok = [
            ("0:0", 0),
            ("1:40000000", 1_040_000_000),
            ("-1:500000000", -1_500_000_000),
            ("-0:5", -5),
            ("1694429247:40000000", 1_694_429_247_040_000_000),
            ("9223372036:854775807", i64::MAX),
            ("-9223372036:854775808", i64::MIN),
        ];
        for (s, ns) in ok {
            assert_eq!(s.parse::<Timestamp>().unwrap().as_nanos(), ns, "{s}");
        }
        let malformed = [
            "",
            "0",
            ":0",
            "0:",
            "01:0",
            "0:01",
            "0:1000000000",
            "a:0",
            "+1:0",
            "1:0 ",
            "--1:0",
            "1.5:0",
        ];
        for s in malformed {
            assert!(
                matches!(
                    s.parse::<Timestamp>(),
                    Err(TimeError::MalformedTimestamp { .. })
                ),
                "{s} should be malformed"
            );
        }
        for s in [
            "9223372037:0",
            "99999999999999999999999:0",
            "9223372036:854775808",
        ] {
            assert!(
                matches!(s.parse::<Timestamp>(), Err(TimeError::OutOfRange { .. })),
                "{s} should be out of range"
            );
        }
    }

    #[test]
    fn utc_conversion_applies_leap_seconds() {
        // The spec's own example: TAI 1694429247:0 is 2023-09-11T10:46:50Z.
        let ts: Timestamp = "1694429247:0".parse().unwrap();
        assert_eq!(format_utc(ts.to_utc()), "2023-09-11T10:46:50Z");
        assert_eq!(Timestamp::parse_utc("2023-09-11T10:46:50Z").unwrap(), ts);
        // Before the 2017 leap second the offset was 36 s.
        let before = Timestamp::parse_utc("2016-12-31T23:59:59Z").unwrap();
        let after = Timestamp::parse_utc("2017-01-01T00:00:00Z").unwrap();
        assert_eq!(after.as_nanos() - before.as_nanos(), 2 * NS_PER_SEC);
        assert_eq!(format_utc(after.to_utc()), "2017-01-01T00:00:00Z");
        assert_eq!(format_utc(before.to_utc()), "2016-12-31T23:59:59Z");
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(ns in any::<i64>()) {
            let ts = Timestamp::from_nanos(ns);
            prop_assert_eq!(ts.to_string().parse::<Timestamp>().unwrap(), ts);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Timestamp>();
        }

        #[test]
        fn utc_round_trip(secs in 0i64..4_000_000_000, nanos in 0u32..1_000_000_000) {
            let ts = Timestamp::from_parts(secs, nanos).unwrap();
            // A TAI instant inside a leap second has no distinct UTC; skip those.
            let back = Timestamp::from_utc(ts.to_utc()).unwrap();
            prop_assert!((back.as_nanos() - ts.as_nanos()).abs() <= NS_PER_SEC);
            let utc = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let tai = Timestamp::from_utc(utc).unwrap();
            prop_assert_eq!(tai.to_utc(), utc);
        }
    }
}
