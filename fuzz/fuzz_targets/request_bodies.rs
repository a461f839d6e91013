//! Fuzzes the JSON request bodies drey parses (flows, segments, storage requests): never
//! panic in deserialisation or validation, and a valid flow re-serialises to a flow that
//! parses and validates again.
#![no_main]

use drey_core::model::{Flow, SegmentPost, StoragePost};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = serde_json::from_slice::<Flow>(data)
        && f.validate().is_ok()
    {
        let again: Flow = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        again.validate().unwrap();
    }
    if let Ok(s) = serde_json::from_slice::<SegmentPost>(data) {
        let _ = s.validate();
    }
    let _ = serde_json::from_slice::<Vec<SegmentPost>>(data);
    let _ = serde_json::from_slice::<StoragePost>(data);
});
