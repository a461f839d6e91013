//! TAMS time ranges (`[0:0_10:0)`, `(5:0_`, `_`, `()`, `[1:0]`) and their algebra.
//!
//! A [`TimeRange`] is held normalised as a half-open interval `[start, end)` of nanoseconds,
//! with `None` for an unbounded side; an exclusive start `(s` becomes `[s+1ns` and an
//! inclusive end `e]` becomes `e+1ns)`. At nanosecond resolution this is exact, so every
//! TAMS range has one canonical form and range algebra is plain integer comparison. The
//! index stores segments in the same normalised form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::{TimeError, Timestamp};

/// A time range, normalised to `[start, end)`; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    start: Option<i64>,
    end: Option<i64>,
}

impl TimeRange {
    /// Eternity, `_`.
    pub const ETERNITY: TimeRange = TimeRange {
        start: None,
        end: None,
    };
    /// Never, `()`.
    pub const NEVER: TimeRange = TimeRange {
        start: Some(0),
        end: Some(0),
    };

    /// `[start, end)`; empty when `end <= start`.
    pub fn new(start: Option<Timestamp>, end: Option<Timestamp>) -> Self {
        TimeRange {
            start: start.map(Timestamp::as_nanos),
            end: end.map(Timestamp::as_nanos),
        }
        .canonical()
    }

    /// `[start, end)` from nanoseconds.
    pub fn from_nanos(start: i64, end: i64) -> Self {
        TimeRange {
            start: Some(start),
            end: Some(end),
        }
        .canonical()
    }

    /// The instantaneous range `[ts]`.
    pub fn instant(ts: Timestamp) -> Self {
        let s = ts.as_nanos();
        TimeRange {
            start: Some(s),
            end: s.checked_add(1),
        }
    }

    fn canonical(self) -> Self {
        match (self.start, self.end) {
            (Some(s), Some(e)) if e <= s => TimeRange::NEVER,
            _ => self,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!((self.start, self.end), (Some(s), Some(e)) if e <= s)
    }

    pub fn is_eternity(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// Both ends bounded and non-empty.
    pub fn is_bounded(&self) -> bool {
        self.start.is_some() && self.end.is_some() && !self.is_empty()
    }

    /// Inclusive start in nanoseconds, `None` when unbounded.
    pub fn start_nanos(&self) -> Option<i64> {
        self.start
    }

    /// Exclusive end in nanoseconds, `None` when unbounded.
    pub fn end_nanos(&self) -> Option<i64> {
        self.end
    }

    pub fn start(&self) -> Option<Timestamp> {
        self.start.map(Timestamp::from_nanos)
    }

    pub fn end(&self) -> Option<Timestamp> {
        self.end.map(Timestamp::from_nanos)
    }

    /// Length in nanoseconds, `None` when unbounded.
    pub fn duration_nanos(&self) -> Option<i64> {
        if self.is_empty() {
            return Some(0);
        }
        match (self.start, self.end) {
            (Some(s), Some(e)) => e.checked_sub(s),
            _ => None,
        }
    }

    /// The intersection; `NEVER` when disjoint.
    pub fn intersect(&self, other: &TimeRange) -> TimeRange {
        if self.is_empty() || other.is_empty() {
            return TimeRange::NEVER;
        }
        let start = match (self.start, other.start) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let end = match (self.end, other.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        TimeRange { start, end }.canonical()
    }

    /// True when the two ranges share at least one instant.
    pub fn overlaps(&self, other: &TimeRange) -> bool {
        !self.intersect(other).is_empty()
    }

    /// True when every instant of `other` is in `self` (an empty `other` is contained in
    /// every range).
    pub fn contains_range(&self, other: &TimeRange) -> bool {
        if other.is_empty() {
            return true;
        }
        if self.is_empty() {
            return false;
        }
        let start_ok = match (self.start, other.start) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a <= b,
        };
        let end_ok = match (self.end, other.end) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b <= a,
        };
        start_ok && end_ok
    }

    pub fn contains(&self, ts: Timestamp) -> bool {
        self.contains_range(&TimeRange::instant(ts))
    }

    /// The smallest range covering both (the convex hull).
    pub fn hull(&self, other: &TimeRange) -> TimeRange {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        let start = match (self.start, other.start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            _ => None,
        };
        let end = match (self.end, other.end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        TimeRange { start, end }
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("()");
        }
        let ts = Timestamp::from_nanos;
        match (self.start, self.end) {
            (None, None) => f.write_str("_"),
            (Some(s), None) => write!(f, "[{}_", ts(s)),
            (None, Some(e)) => write!(f, "_{})", ts(e)),
            (Some(s), Some(e)) if e.checked_sub(s) == Some(1) => write!(f, "[{}]", ts(s)),
            (Some(s), Some(e)) => write!(f, "[{}_{})", ts(s), ts(e)),
        }
    }
}

impl FromStr for TimeRange {
    type Err = TimeError;

    /// Parses the TAMS `TimeRange` syntax. The empty string is eternity, like `_`.
    fn from_str(input: &str) -> Result<Self, TimeError> {
        let bad = |reason| TimeError::MalformedTimeRange {
            input: input.to_owned(),
            reason,
        };
        let mut s = input;
        let start_inclusive = match s.as_bytes().first() {
            Some(b'[') => {
                s = &s[1..];
                Some(true)
            }
            Some(b'(') => {
                s = &s[1..];
                Some(false)
            }
            _ => None,
        };
        let end_inclusive = match s.as_bytes().last() {
            Some(b']') => {
                s = &s[..s.len() - 1];
                Some(true)
            }
            Some(b')') => {
                s = &s[..s.len() - 1];
                Some(false)
            }
            _ => None,
        };
        let parse_ts = |t: &str| -> Result<Option<i64>, TimeError> {
            if t.is_empty() {
                Ok(None)
            } else {
                t.parse::<Timestamp>().map(|t| Some(t.as_nanos()))
            }
        };
        match s.split_once('_') {
            None if s.is_empty() => {
                if start_inclusive.is_none() && end_inclusive.is_none() {
                    Ok(TimeRange::ETERNITY)
                } else {
                    // "()", "[]", "[" and the like: no timestamps, so nothing in range.
                    Ok(TimeRange::NEVER)
                }
            }
            None => {
                // An instant: "[ts]" or "ts".
                if start_inclusive == Some(false) || end_inclusive == Some(false) {
                    return Err(bad(
                        "an instantaneous timerange cannot use exclusive markers",
                    ));
                }
                let t = parse_ts(s)?.ok_or_else(|| bad("missing timestamp"))?;
                Ok(TimeRange::instant(Timestamp::from_nanos(t)))
            }
            Some((a, b)) => {
                if b.contains('_') {
                    return Err(bad("more than one '_'"));
                }
                let start = match parse_ts(a)? {
                    None => None,
                    Some(t) if start_inclusive == Some(false) => match t.checked_add(1) {
                        Some(t) => Some(t),
                        None => return Ok(TimeRange::NEVER),
                    },
                    Some(t) => Some(t),
                };
                let end = match parse_ts(b)? {
                    None => None,
                    // An inclusive end at the very last nanosecond is unbounded in effect.
                    Some(t) if end_inclusive == Some(true) => t.checked_add(1),
                    Some(t) => Some(t),
                };
                Ok(TimeRange { start, end }.canonical())
            }
        }
    }
}

impl Serialize for TimeRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tr(s: &str) -> TimeRange {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parse_and_format_table() {
        let cases = [
            ("[0:0_10:0)", "[0:0_10:0)"),
            ("[0:0_10:0]", "[0:0_10:1)"),
            ("(0:0_10:0)", "[0:1_10:0)"),
            ("0:0_10:0", "[0:0_10:0)"),
            ("(5:0_", "[5:1_"),
            ("[5:0_", "[5:0_"),
            ("_10:0)", "_10:0)"),
            ("_", "_"),
            ("", "_"),
            ("()", "()"),
            ("[]", "()"),
            ("[1694429247:0]", "[1694429247:0]"),
            ("1:0", "[1:0]"),
            ("[1:0_1:0]", "[1:0]"),
            ("[10:0_5:0)", "()"),
            ("[1:0_1:0)", "()"),
            ("[-1:500000000_0:0)", "[-1:500000000_0:0)"),
        ];
        for (input, canonical) in cases {
            assert_eq!(tr(input).to_string(), canonical, "{input}");
        }
        for bad in [
            "(1:0)",
            "(1:0]",
            "[1:0_2:0_3:0)",
            "[x_1:0)",
            "[01:0_2:0)",
            "[1:0_2:0))",
            "{1:0}",
        ] {
            assert!(
                bad.parse::<TimeRange>().is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn algebra() {
        let a = tr("[0:0_10:0)");
        let b = tr("[10:0_20:0)");
        let c = tr("[5:0_15:0)");
        assert!(!a.overlaps(&b), "touching half-open ranges do not overlap");
        assert!(a.overlaps(&c) && b.overlaps(&c));
        assert_eq!(a.intersect(&c), tr("[5:0_10:0)"));
        assert_eq!(a.hull(&b), tr("[0:0_20:0)"));
        assert!(TimeRange::ETERNITY.contains_range(&a));
        assert!(!a.contains_range(&c));
        assert!(a.contains(tr("[9:999999999]").start().unwrap()));
        assert!(!a.contains(tr("[10:0]").start().unwrap()));
        // The spec's edge case: [1:0_2:0) followed by the instant [2:0].
        assert!(!tr("[1:0_2:0)").overlaps(&tr("[2:0]")));
        assert!(tr("[1:0_2:0]").overlaps(&tr("[2:0]")));
        assert!(!TimeRange::NEVER.overlaps(&TimeRange::ETERNITY));
        assert!(tr("(5:0_").overlaps(&tr("_5:2)")));
        assert!(!tr("(5:0_").overlaps(&tr("_5:1)")));
    }

    fn arb_range() -> impl Strategy<Value = TimeRange> {
        (
            proptest::option::of(-1_000_000i64..1_000_000),
            proptest::option::of(-1_000_000i64..1_000_000),
        )
            .prop_map(|(s, e)| TimeRange { start: s, end: e }.canonical())
    }

    proptest! {
        #[test]
        fn format_parse_round_trip(r in arb_range()) {
            prop_assert_eq!(r.to_string().parse::<TimeRange>().unwrap(), r);
        }

        #[test]
        fn intersect_is_commutative_and_contained(a in arb_range(), b in arb_range()) {
            let i = a.intersect(&b);
            prop_assert_eq!(i, b.intersect(&a));
            prop_assert!(a.contains_range(&i) && b.contains_range(&i));
            prop_assert_eq!(a.overlaps(&b), !i.is_empty());
        }

        #[test]
        fn hull_contains_both(a in arb_range(), b in arb_range()) {
            let h = a.hull(&b);
            prop_assert!(h.contains_range(&a) && h.contains_range(&b));
        }

        #[test]
        fn overlap_matches_pointwise(a in arb_range(), b in arb_range(), t in -1_100_000i64..1_100_000) {
            let ts = Timestamp::from_nanos(t);
            if a.contains(ts) && b.contains(ts) {
                prop_assert!(a.overlaps(&b));
            }
        }

        #[test]
        fn parse_never_panics(s in "[\\[\\(]?[-0-9:_]{0,30}[\\]\\)]?") {
            let _ = s.parse::<TimeRange>();
        }
    }
}
