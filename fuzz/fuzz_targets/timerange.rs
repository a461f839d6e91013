//! Fuzzes the TAMS timestamp and time-range parsers (query strings and JSON fields are
//! untrusted): never panic, and whatever parses must round-trip through its canonical form.
#![no_main]

use drey_core::{TimeRange, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ts) = s.parse::<Timestamp>() {
        assert_eq!(ts.to_string().parse::<Timestamp>().unwrap(), ts);
        let _ = ts.to_utc();
    }
    if let Ok(r) = s.parse::<TimeRange>() {
        let back: TimeRange = r.to_string().parse().unwrap();
        assert_eq!(back, r, "{s:?} -> {r}");
        let _ = r.intersect(&TimeRange::ETERNITY);
        assert!(TimeRange::ETERNITY.contains_range(&r));
    }
    let _ = Timestamp::parse_utc(s);
});
