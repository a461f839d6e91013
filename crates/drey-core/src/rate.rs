//! Rational numbers (frame rates, segment durations, aspect ratios) as TAMS writes them:
//! `{"numerator": n, "denominator": d}` with the denominator defaulting to 1.

use serde::{Deserialize, Serialize};

/// A strictly positive rational, as the spec's schemas require (`exclusiveMinimum: 0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rational {
    pub numerator: std::num::NonZeroU64,
    #[serde(default = "one", skip_serializing_if = "Option::is_none")]
    pub denominator: Option<std::num::NonZeroU64>,
}

fn one() -> Option<std::num::NonZeroU64> {
    None
}

impl Rational {
    pub fn new(numerator: u64, denominator: u64) -> Option<Self> {
        Some(Rational {
            numerator: std::num::NonZeroU64::new(numerator)?,
            denominator: Some(std::num::NonZeroU64::new(denominator)?),
        })
    }

    pub fn denominator_or_one(&self) -> u64 {
        self.denominator.map_or(1, |d| d.get())
    }

    /// Duration of one period (1/rate) in nanoseconds, rounded down; `None` on overflow.
    pub fn period_nanos(&self) -> Option<i64> {
        let ns = u128::from(self.denominator_or_one()) * 1_000_000_000
            / u128::from(self.numerator.get());
        i64::try_from(ns).ok()
    }

    /// The value as a float (for display and metrics only).
    pub fn as_f64(&self) -> f64 {
        self.numerator.get() as f64 / self.denominator_or_one() as f64
    }
}

/// A ratio whose numerator and denominator are both required (aspect ratios).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StrictRatio {
    pub numerator: std::num::NonZeroU64,
    pub denominator: std::num::NonZeroU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_shapes() {
        let r: Rational = serde_json::from_str(r#"{"numerator": 25}"#).unwrap();
        assert_eq!(r.denominator_or_one(), 1);
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"numerator":25}"#);
        let r: Rational =
            serde_json::from_str(r#"{"numerator": 30000, "denominator": 1001}"#).unwrap();
        assert_eq!(r.period_nanos(), Some(33_366_666));
        assert!(serde_json::from_str::<Rational>(r#"{"numerator": 0}"#).is_err());
        assert!(serde_json::from_str::<Rational>(r#"{"numerator": 1, "denominator": 0}"#).is_err());
        assert!(serde_json::from_str::<StrictRatio>(r#"{"numerator": 16}"#).is_err());
    }
}
