//! drey-core: drey's domain model with no IO — TAI time, TAMS time ranges, rates, ids and
//! the TAMS resources. The app crate does all networking, storage and database work.

pub mod hls;
pub mod id;
pub mod media;
pub mod model;
pub mod netguard;
pub mod rate;
pub mod sigv2;
pub mod sigv4;
pub mod time;
pub mod timerange;
pub mod token;

pub use id::{Id, IdError, validate_object_id};
pub use rate::{Rational, StrictRatio};
pub use time::{TimeError, Timestamp};
pub use timerange::TimeRange;

#[cfg(test)]
mod spec_examples;
