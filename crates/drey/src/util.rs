//! Small helpers shared across modules: wall-clock time in nanoseconds.

/// Nanoseconds since the Unix epoch (UTC wall clock), for created/updated times and GC.
pub fn unix_now_ns() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}
